//! How long a goal check's page state takes to build (the script in the page, the reply,
//! the bounds and masking here) on a large page: 300 interactive elements (150 kept), a
//! table of 2,000 rows of text. Prints the median and worst of 50 reads after a warm-up.
//! Usage: cargo run -p slipway-browser --example page_state_bench   (needs chromium)

use std::time::Instant;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut html = String::from("<title>Big page</title><h1>Orders</h1><form>");
    for i in 0..100 {
        html.push_str(&format!(
            "<label for='f{i}'>Field {i}</label><input id='f{i}' name='f{i}' value='v{i}'>\
             <button type='button'>Save {i}</button><a href='/o/{i}'>Order {i}</a>"
        ));
    }
    html.push_str("</form><table>");
    for i in 0..2_000 {
        html.push_str(&format!(
            "<tr><td>row {i}</td><td>customer number {i} ordered three things</td></tr>"
        ));
    }
    html.push_str("</table>");
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("page.html");
    std::fs::write(&file, &html)?;
    let browser = slipway_browser::Browser::launch().await?;
    let page = browser.open(&format!("file://{}", file.display())).await?;
    let state = page.state().await?;
    println!(
        "page: {} KiB of HTML; state: {} elements, {} chars of text",
        html.len() / 1024,
        state.elements.len(),
        state.text.len()
    );
    let mut times = Vec::new();
    for _ in 0..50 {
        let started = Instant::now();
        let state = page.state().await?;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(state.elements.len(), 150);
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "page state: median {:.1} ms, worst {:.1} ms (50 reads)",
        times[25], times[49]
    );
    browser.close().await;
    Ok(())
}
