//! The cost of the sandbox: making a cell (user + network namespaces, cgroup, and pasta for
//! outbound), and running `true` in an existing cell (bwrap with its own PID, IPC, UTS and
//! cgroup namespaces, joined to the cell's network namespace).
//! Run: cargo run --release -p slipway-sandbox --example cell_bench

use slipway_sandbox::{CellSpec, CommandSpec, Isolation, Network, Quotas, Sandbox};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

fn summary(name: &str, mut times: Vec<Duration>) {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{name}: min {:.1} ms, median {:.1} ms, p90 {:.1} ms ({} runs)",
        ms(times[0]),
        ms(times[times.len() / 2]),
        ms(times[times.len() * 9 / 10]),
        times.len()
    );
}

#[tokio::main]
async fn main() {
    let sandbox = Sandbox::new(Isolation::detect(), Vec::new());
    assert!(
        sandbox.is_isolated(),
        "needs bubblewrap: apt-get install bubblewrap passt"
    );
    for network in [Network::None, Network::Outbound] {
        let (mut make, mut run) = (Vec::new(), Vec::new());
        for i in 0..30 {
            let ws = tempfile::tempdir().unwrap();
            let scratch = tempfile::tempdir().unwrap();
            slipway_sandbox::give_to_sandbox(&sandbox, ws.path()).unwrap();
            let started = Instant::now();
            let cell = sandbox
                .cell(&CellSpec {
                    visible: &[],
                    workspace: ws.path(),
                    scratch: scratch.path(),
                    network,
                    quotas: Quotas::default(),
                    hidden: &[],
                    name: &format!("bench-{i}"),
                })
                .await
                .unwrap();
            make.push(started.elapsed());
            for _ in 0..5 {
                let (tx, _rx) = tokio::sync::mpsc::channel(slipway_sandbox::LINES_IN_FLIGHT);
                let started = Instant::now();
                let process = cell
                    .spawn(
                        &CommandSpec {
                            command: "true",
                            cwd: ws.path(),
                            env: &[],
                        },
                        tx,
                    )
                    .unwrap();
                process
                    .wait(Duration::from_secs(10), &CancellationToken::new())
                    .await;
                run.push(started.elapsed());
            }
            cell.close().await;
        }
        summary(&format!("make a cell, network {network:?}"), make);
        summary(&format!("run `true` in a cell, network {network:?}"), run);
    }
}
