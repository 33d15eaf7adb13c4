//! Queued-to-started latency across processes: one store (the server) queues jobs, another
//! (a worker, with its own pools and listener) leases them, woken by the store's wake-ups
//! (PostgreSQL's NOTIFY) or, when none arrive (SQLite), by a poll every second as the
//! engine's workers do. Each job is queued when the worker is idle, so the figure is the
//! wake-up and lease path, not a backlog: from the enqueue's commit to the lease's. Run by
//! `bench/queue.sh`.
//!
//! Usage: queue_latency DATABASE_URL [jobs, default 200]

use slipway_store::{MasterKey, NewJob, Store};
use std::time::{Duration, Instant};

const IDLE_POLL: Duration = Duration::from_secs(1);

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .expect("usage: queue_latency DATABASE_URL [jobs]");
    let jobs: usize = args
        .next()
        .map_or(200, |n| n.parse().expect("a number of jobs"));
    use base64::Engine;
    let key = MasterKey::from_base64(&base64::engine::general_purpose::STANDARD.encode([7u8; 32]))
        .unwrap();
    let server = Store::open(&url, &key).await.unwrap();
    let worker = Store::open(&url, &key).await.unwrap();
    let (started_tx, mut started) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    let mut wakeups = worker.job_wakeups();
    tokio::spawn(async move {
        loop {
            match worker
                .lease("bench", &["bench"], Duration::from_secs(30))
                .await
                .unwrap()
            {
                Some(job) => {
                    let _ = started_tx.send(Instant::now());
                    worker.complete(&job).await.unwrap();
                }
                None => {
                    tokio::select! {
                        _ = wakeups.recv() => {}
                        _ = tokio::time::sleep(IDLE_POLL) => {}
                    }
                }
            }
        }
    });
    let mut latencies = Vec::with_capacity(jobs);
    for n in 0..jobs {
        // Let the worker go idle (waiting for a wake-up) before each job.
        tokio::time::sleep(Duration::from_millis(20)).await;
        server
            .enqueue(&NewJob {
                kind: "bench".into(),
                payload: format!("{{\"n\":{n}}}"),
                dedupe_key: None,
                max_attempts: 1,
            })
            .await
            .unwrap();
        // Queued: committed (the worker may even have it already).
        let queued = Instant::now();
        let at = started.recv().await.unwrap();
        latencies.push(at.saturating_duration_since(queued));
    }
    latencies.sort();
    let pick = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    println!(
        "{} jobs queued-to-started: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        jobs,
        pick(0.50).as_secs_f64() * 1e3,
        pick(0.99).as_secs_f64() * 1e3,
        latencies.last().unwrap().as_secs_f64() * 1e3
    );
}
