//! The cell reaches no address of the host's, whatever the host has: tried in a network
//! namespace this test makes, with interfaces holding a public-looking address, a
//! private one and the metadata address, a listener on all of them, and an address added
//! while the cell runs. Never against a real address of this machine.

mod common;

use common::{bwrap, run_in_cell, Options};
use slipway_sandbox::Network;
use std::io::Write;
use std::process::Command;
use std::time::Duration;

const INNER: &str = "inner_every_host_address_is_closed_to_the_cell";
const MARK: &str = "SLIPWAY_TEST_IN_OWN_NETNS";

#[test]
fn the_cell_reaches_no_address_of_the_host() {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    assert!(
        root,
        "needs root to make a network namespace with interfaces of its own; the unprivileged \
         run skips this test by name"
    );
    let output = Command::new("unshare")
        .args(["--net", "--"])
        .arg(std::env::current_exe().unwrap())
        .args([INNER, "--exact", "--ignored", "--nocapture"])
        .env(MARK, "1")
        .output()
        .expect("unshare (util-linux) runs");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{said}");
    assert!(
        said.contains("1 passed"),
        "the inner test did not run: {said}"
    );
}

fn ip(script: &str) {
    let status = Command::new("sh").args(["-ec", script]).status().unwrap();
    assert!(status.success(), "{script}");
}

#[tokio::test]
#[ignore = "run by the_cell_reaches_no_address_of_the_host, in a network namespace of its own"]
async fn inner_every_host_address_is_closed_to_the_cell() {
    assert!(
        std::env::var_os(MARK).is_some(),
        "run only in a namespace of its own"
    );
    // veth pairs: this kernel may lack the dummy driver.
    ip("ip link set lo up
        ip link add d0 type veth peer name d0p; ip link set d0p up
        ip addr add 198.51.100.7/24 dev d0; ip link set d0 up
        ip route add default via 198.51.100.1 dev d0
        ip link add d1 type veth peer name d1p; ip link set d1p up; ip link set d1 up
        ip addr add 10.77.0.1/24 dev d1
        ip addr add 203.0.113.9/32 dev d1
        ip addr add 169.254.169.254/32 dev d1");
    let listener = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let _ = stream.write_all(b"the host\n");
        }
    });
    // An address the host gains while the cell runs.
    std::thread::spawn(|| {
        std::thread::sleep(Duration::from_millis(300));
        ip("ip addr add 203.0.113.50/32 dev d1");
    });
    let probe = format!(
        r#"python3 - <<'EOF'
import socket, time, threading
own = socket.socket(); own.bind(("127.0.0.1", 0)); own.listen(1)
def probe(address, port):
    try:
        socket.create_connection((address, port), timeout=2).close()
        return "open"
    except OSError as error:
        return "closed"
print("own loopback", probe("127.0.0.1", own.getsockname()[1]))
time.sleep(3)
for address in ["10.77.0.1", "203.0.113.9", "169.254.169.254", "203.0.113.50", "198.51.100.1"]:
    print(address, probe(address, {port}))
EOF"#
    );
    let ws = tempfile::tempdir().unwrap();
    let ran = run_in_cell(
        &bwrap(Vec::new()),
        ws.path(),
        &probe,
        Options {
            network: Network::Outbound,
            timeout: Duration::from_secs(60),
            ..Options::default()
        },
    )
    .await;
    let said = ran.lines.join("\n");
    assert!(
        said.contains("own loopback open"),
        "the probe did not run: {said}"
    );
    for address in [
        "10.77.0.1",
        "203.0.113.9",
        "169.254.169.254",
        "203.0.113.50",
    ] {
        assert!(
            said.contains(&format!("{address} closed")),
            "the cell reached the host at {address}:\n{said}\n{:?}",
            ran.notes
        );
    }
}
