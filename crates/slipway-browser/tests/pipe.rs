//! DevTools over a pipe, relayed to chromiumoxide's WebSocket: real Chromium, no port.

use slipway_browser::Browser;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;

#[tokio::test]
async fn a_browser_driven_over_its_pipe_opens_pages_and_answers() {
    let chromium = slipway_browser::chromium().expect("Chromium is installed");
    let profile = tempfile::tempdir().unwrap();
    let (commands_in, commands_out) = std::io::pipe().unwrap();
    let (answers_in, answers_out) = std::io::pipe().unwrap();
    let (read_fd, write_fd) = (commands_in.as_raw_fd(), answers_out.as_raw_fd());
    let mut command = tokio::process::Command::new(chromium);
    command
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(["--remote-debugging-pipe", "about:blank"])
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    // SAFETY (test): dup2 is async-signal-safe.
    unsafe {
        command.as_std_mut().pre_exec(move || {
            for (from, to) in [(read_fd, 3), (write_fd, 4)] {
                if libc::dup2(from, to) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let mut child = command.spawn().unwrap();
    drop((commands_in, answers_out));
    let port = slipway_browser::pipe::relay(OwnedFd::from(commands_out), OwnedFd::from(answers_in))
        .await
        .unwrap();
    let browser = Browser::connect(&slipway_browser::pipe::url(port))
        .await
        .unwrap();
    let page = browser
        .open("data:text/html,<title>piped</title><p>hello</p>")
        .await
        .unwrap();
    let title: String = page.eval("document.title").await.unwrap();
    assert_eq!(title, "piped");
    // One client only: a second connection to the relay's port is refused.
    assert!(tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err());
    browser.close().await;
    // Closing over the pipe ends the browser (this returns only once it has).
    child.wait().await.unwrap();
}
