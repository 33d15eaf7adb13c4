//! Headless Chromium driven over the Chrome DevTools Protocol (chromiumoxide): launched with
//! a fresh profile and the flags a CI machine needs, with the few page operations the
//! dashboard's end-to-end tests (and later the pipeline's browser checks) use.

mod check;
mod goal;
mod mask;
pub mod page_state;
pub mod pipe;

pub use check::{ConsoleMessage, Report, RequestProblem, StepTime, Target};
pub use goal::{GoalStep, Planner};
pub use mask::mask_strings;

use anyhow::{bail, Context};
use chromiumoxide::browser::{Browser as Cdp, BrowserConfig};
use chromiumoxide::page::ScreenshotParams;
use futures_util::StreamExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long `wait_for` waits by default.
pub const WAIT: Duration = Duration::from_secs(30);

/// A headless Chromium, launched here or reached over its DevTools WebSocket; closed when
/// dropped.
pub struct Browser {
    cdp: Cdp,
    handler: tokio::task::JoinHandle<()>,
    _profile: Option<tempfile::TempDir>,
}

/// The Chromium to run: `SLIPWAY_CHROMIUM`, else the first of the usual names on `PATH`.
pub fn chromium() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("SLIPWAY_CHROMIUM") {
        let path = PathBuf::from(path);
        if !path.is_file() {
            bail!(
                "SLIPWAY_CHROMIUM names {}, which is not a file",
                path.display()
            );
        }
        return Ok(path);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in ["chromium", "chromium-browser", "google-chrome", "chrome"] {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    bail!("Chromium was not found: install it (apt-get install chromium) or set SLIPWAY_CHROMIUM")
}

impl Browser {
    /// Starts headless Chromium with a fresh profile.
    pub async fn launch() -> anyhow::Result<Self> {
        let profile = tempfile::tempdir().context("a profile directory")?;
        let config = BrowserConfig::builder()
            .chrome_executable(chromium()?)
            .user_data_dir(profile.path())
            .no_sandbox()
            .window_size(1280, 900)
            .args([
                "--headless=new",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
                "--disable-sync",
                "--disable-dev-shm-usage",
            ])
            .build()
            .map_err(anyhow::Error::msg)?;
        let (cdp, mut events) = Cdp::launch(config)
            .await
            .context("Chromium did not start")?;
        let handler = tokio::spawn(async move {
            // Errors here are CDP messages this client cannot parse; the browser goes on.
            while events.next().await.is_some() {}
        });
        Ok(Self {
            cdp,
            handler,
            _profile: Some(profile),
        })
    }

    /// A Chromium started elsewhere (in a validation's sandbox), by its DevTools WebSocket.
    pub async fn connect(ws_url: &str) -> anyhow::Result<Self> {
        // No default viewport: each check sets its own, so a new tab skips that emulation.
        let config = chromiumoxide::handler::HandlerConfig {
            viewport: None,
            ..Default::default()
        };
        let (cdp, mut events) = Cdp::connect_with_config(ws_url, config)
            .await
            .with_context(|| format!("connecting to Chromium at {ws_url}"))?;
        let handler = tokio::spawn(async move { while events.next().await.is_some() {} });
        Ok(Self {
            cdp,
            handler,
            _profile: None,
        })
    }

    /// A new tab at `url`, once it has loaded.
    pub async fn open(&self, url: &str) -> anyhow::Result<Page> {
        let page = self
            .cdp
            .new_page(url)
            .await
            .with_context(|| format!("opening {url}"))?;
        page.wait_for_navigation().await?;
        Ok(Page { page })
    }

    /// Closes the browser; one that no longer answers (it crashed) is given up on after a
    /// few seconds rather than waited for.
    pub async fn close(mut self) {
        let bounded = Duration::from_secs(3);
        let _ = tokio::time::timeout(bounded, self.cdp.close()).await;
        let _ = tokio::time::timeout(bounded, self.cdp.wait()).await;
        self.handler.abort();
    }
}

/// A tab.
pub struct Page {
    page: chromiumoxide::Page,
}

impl Page {
    /// Goes to `url` and waits for the load.
    pub async fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.page.goto(url).await?.wait_for_navigation().await?;
        self.wait_for("document.readyState === 'complete'").await
    }

    /// The value of a JavaScript expression (promises are awaited).
    pub async fn eval<T: serde::de::DeserializeOwned>(
        &self,
        expression: &str,
    ) -> anyhow::Result<T> {
        let result = self
            .page
            .evaluate(expression)
            .await
            .with_context(|| format!("evaluating {expression}"))?;
        result
            .into_value()
            .with_context(|| format!("the value of {expression}"))
    }

    /// Waits until the JavaScript expression is truthy (at most `WAIT`).
    pub async fn wait_for(&self, expression: &str) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let ok: bool = self
                .eval(&format!("!!({expression})"))
                .await
                .unwrap_or(false);
            if ok {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                bail!("waited {WAIT:?} for: {expression}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Clicks the element `selector` names.
    pub async fn click(&self, selector: &str) -> anyhow::Result<()> {
        self.page
            .find_element(selector)
            .await
            .with_context(|| format!("no element {selector}"))?
            .click()
            .await?;
        Ok(())
    }

    /// Clicks `selector` and waits until the page it leads to has loaded (the current
    /// document is marked first, so its own state cannot pass for the next page's).
    pub async fn click_and_wait(&self, selector: &str) -> anyhow::Result<()> {
        self.eval::<bool>("window.__leaving = true").await?;
        self.click(selector).await?;
        self.wait_for("!window.__leaving && document.readyState === 'complete'")
            .await
    }

    /// Types `text` into the field `selector` names (after focusing it with a click).
    pub async fn type_into(&self, selector: &str, text: &str) -> anyhow::Result<()> {
        self.page
            .find_element(selector)
            .await
            .with_context(|| format!("no element {selector}"))?
            .click()
            .await?
            .type_str(text)
            .await?;
        Ok(())
    }

    /// Emulates a screen `width` × `height` CSS pixels (a phone, say).
    pub async fn set_viewport(&self, width: i64, height: i64, mobile: bool) -> anyhow::Result<()> {
        use chromiumoxide::cdp::browser_protocol::emulation::SetDeviceMetricsOverrideParams;
        let params = SetDeviceMetricsOverrideParams::new(width, height, 2.0, mobile);
        self.page.execute(params).await?;
        Ok(())
    }

    /// Emulates the system's colour scheme: `dark` or `light`.
    pub async fn prefer_color_scheme(&self, scheme: &str) -> anyhow::Result<()> {
        use chromiumoxide::cdp::browser_protocol::emulation::{
            MediaFeature, SetEmulatedMediaParams,
        };
        let params = SetEmulatedMediaParams::builder()
            .feature(MediaFeature::new("prefers-color-scheme", scheme))
            .build();
        self.page.execute(params).await?;
        Ok(())
    }

    /// The page's URL.
    /// The compact state a goal check's model is shown (unmasked).
    pub async fn state(&self) -> anyhow::Result<slipway_core::ui_goal::PageState> {
        page_state::page_state(&self.page, &|text: &str| text.to_owned())
            .await
            .map_err(anyhow::Error::msg)
    }

    pub async fn url(&self) -> anyhow::Result<String> {
        Ok(self.page.url().await?.unwrap_or_default())
    }

    /// Saves a PNG screenshot of the whole page.
    pub async fn screenshot(&self, path: &Path) -> anyhow::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        self.page
            .save_screenshot(ScreenshotParams::builder().full_page(true).build(), path)
            .await?;
        Ok(())
    }
}
