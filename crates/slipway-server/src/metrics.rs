//! Prometheus metrics: request counts and latency histograms by route.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: String,
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WorkerLabels {
    pub worker: String,
    pub role: String,
}

type AgeFamily = Family<WorkerLabels, Gauge<f64, AtomicU64>>;

type LatencyFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub latency: LatencyFamily,
    /// Steps that passed only on a retry (`[test] retries`), as the store counts them.
    flaky_steps: Counter,
    /// Jobs queued, by kind, as the store counts them at each scrape.
    queue_depth: Family<KindLabels, Gauge>,
    /// Seconds since each live process's last heartbeat.
    worker_heartbeat_age: AgeFamily,
}

fn latency_histogram() -> Histogram {
    // 0.25 ms to ~4 s.
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.000_25, 2.0, 15,
    ))
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("slipway");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency: LatencyFamily = Family::new_with_constructor(latency_histogram);
        registry.register(
            "http_requests",
            "HTTP requests by method, route and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by method and route",
            latency.clone(),
        );
        let flaky_steps = Counter::default();
        registry.register(
            "flaky_steps",
            "Validation steps that passed only after a failed try",
            flaky_steps.clone(),
        );
        let queue_depth = Family::<KindLabels, Gauge>::default();
        registry.register(
            "queue_depth",
            "Jobs waiting to run, by kind",
            queue_depth.clone(),
        );
        let worker_heartbeat_age = AgeFamily::default();
        registry.register(
            "worker_heartbeat_age_seconds",
            "Seconds since each live process (serve or worker running jobs) was heard from",
            worker_heartbeat_age.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            flaky_steps,
            queue_depth,
            worker_heartbeat_age,
        }
    }

    /// Brings the flaky-step counter up to the store's count.
    pub fn observe_flaky_steps(&self, stored: u64) {
        let counted = self.flaky_steps.get();
        if stored > counted {
            self.flaky_steps.inc_by(stored - counted);
        }
    }

    /// Sets the queue's depth by kind (kinds no longer queued are dropped).
    pub fn observe_queue(&self, depth: &[(String, i64)]) {
        self.queue_depth.clear();
        for (kind, count) in depth {
            self.queue_depth
                .get_or_create(&KindLabels { kind: kind.clone() })
                .set(*count);
        }
    }

    /// Sets each live process's heartbeat age (processes no longer live are dropped).
    pub fn observe_workers(&self, workers: &[slipway_store::WorkerRecord]) {
        self.worker_heartbeat_age.clear();
        let now = time::OffsetDateTime::now_utc();
        for worker in workers {
            let labels = WorkerLabels {
                worker: worker.id.clone(),
                role: worker.role.clone(),
            };
            let age = (now - worker.heartbeat_at).as_seconds_f64().max(0.0);
            self.worker_heartbeat_age.get_or_create(&labels).set(age);
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
