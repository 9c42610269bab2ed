//! Prometheus metrics (`GET /metrics`, text exposition format), with the
//! `prometheus-client` crate: one registry per server, no globals. Counters
//! and histograms are moved where things happen; gauges of current state
//! (open streams, pool use, breaker) are read when scraped.

use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::{Arc, OnceLock};

/// Labels of an HTTP request.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The matched route (`/api/livechat/sessions/{id}`), or `unmatched`.
    pub route: String,
    /// The method.
    pub method: String,
    /// The status code.
    pub status: u16,
}

/// Labels of a request's duration.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// The matched route, or `unmatched`.
    pub route: String,
    /// The method.
    pub method: String,
}

/// Labels of a storage error.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// `unavailable` (busy, timed out), `unreachable` (an outage), `internal`.
    pub kind: &'static str,
}

/// A value read at scrape time.
pub type Reading = Box<dyn Fn() -> i64 + Send + Sync>;

/// A gauge read at scrape time: its name, its help, how to read it.
pub type Gauge = (&'static str, &'static str, Reading);

/// The scrape-time gauges, installed once the parts that own them exist.
type Gauges = Arc<OnceLock<Vec<Gauge>>>;

/// Every metric of one server.
pub struct Metrics {
    registry: Registry,
    /// Requests by route, method and status.
    pub requests: Family<RequestLabels, Counter>,
    /// Request durations by route and method, in seconds.
    pub durations: Family<RouteLabels, Histogram>,
    /// Messages stored (not replays).
    pub messages_sent: Counter,
    /// Storage errors by kind.
    pub storage_errors: Family<ErrorLabels, Counter>,
    /// From a notice reaching this node to its events being sent on a stream, in seconds.
    pub fanout_lag: Histogram,
    /// Streams cut off for falling behind.
    pub streams_lagged: Counter,
    /// Reads of a session's new events by this node's fan-out (one serves every local subscriber).
    pub fanout_reads: Counter,
    /// Reads of a session's events by one stream itself (subscribing, resuming, falling behind).
    pub stream_reads: Counter,
    /// Gauges read at scrape time, installed once the parts that own them exist.
    readings: Gauges,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

/// Encodes the scrape-time gauges.
struct Readings(Gauges);

impl std::fmt::Debug for Readings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Readings")
    }
}

impl prometheus_client::collector::Collector for Readings {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for (name, help, read) in self.0.get().into_iter().flatten() {
            let metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            ConstGauge::new(read()).encode(metric)?;
        }
        Ok(())
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every metric registered under the `livechat` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("livechat");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests answered", requests.clone());
        let durations = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
        });
        registry.register("http_request_duration_seconds", "Time to answer a request", durations.clone());
        let messages_sent = Counter::default();
        registry.register("messages_sent", "Messages stored", messages_sent.clone());
        let storage_errors = Family::<ErrorLabels, Counter>::default();
        registry.register("storage_errors", "Storage errors by kind", storage_errors.clone());
        let fanout_lag = Histogram::new(exponential_buckets(0.000_1, 2.0, 16));
        registry.register(
            "fanout_lag_seconds",
            "From a committed event's notice to its delivery on a stream",
            fanout_lag.clone(),
        );
        let streams_lagged = Counter::default();
        registry.register("streams_lagged", "Streams closed for falling too far behind", streams_lagged.clone());
        let fanout_reads = Counter::default();
        registry.register(
            "fanout_reads",
            "Reads of new events by the node's fan-out, shared by its subscribers",
            fanout_reads.clone(),
        );
        let stream_reads = Counter::default();
        registry.register(
            "stream_reads",
            "Reads of events by one stream for itself (subscribe, resume, behind the cache)",
            stream_reads.clone(),
        );
        let readings = Arc::new(OnceLock::new());
        registry.register_collector(Box::new(Readings(readings.clone())));
        Self {
            registry,
            requests,
            durations,
            messages_sent,
            storage_errors,
            fanout_lag,
            streams_lagged,
            fanout_reads,
            stream_reads,
            readings,
        }
    }

    /// Installs the scrape-time gauges (once; later calls are ignored).
    pub fn read_at_scrape(&self, readings: Vec<Gauge>) {
        let _ = self.readings.set(readings);
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(err) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %err, "metrics encoding failed");
        }
        out
    }
}
