//! Prometheus metrics: the recorder with true histograms (buckets, aggregatable across
//! servers) and HELP text for every metric, per-route request metrics, and the standard
//! process metrics. The metric table is `docs/api.md`, "Metrics".

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Latency buckets in seconds: 100 µs … 60 s.
const SECONDS_BUCKETS: &[f64] = &[
    0.0001, 0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];
/// Group-size buckets (single deposits settled together, at most 256).
const GROUP_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

/// The process-wide recorder (installed once; `None` if another recorder was installed
/// first, e.g. by an embedding program).
pub fn recorder() -> Option<PrometheusHandle> {
    static HANDLE: std::sync::OnceLock<Option<PrometheusHandle>> = std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("microcash_deposit_group_size".into()),
                        GROUP_BUCKETS,
                    )
                })
                .ok()?
                .install_recorder()
                .ok()?;
            describe();
            // Present from the first scrape, before anything happened.
            metrics::gauge!("microcash_connections_open").set(0.0);
            metrics::counter!("microcash_connections_refused_total").increment(0);
            Some(handle)
        })
        .clone()
}

fn describe() {
    describe_counter!(
        "microcash_stage_records_total",
        "Records through each clearing pipeline stage (read, verify, commit)."
    );
    describe_histogram!(
        "microcash_stage_seconds",
        Unit::Seconds,
        "Time one chunk spends in a pipeline stage."
    );
    describe_gauge!(
        "microcash_queue_depth",
        "Items waiting between pipeline stages or in the batch queue."
    );
    describe_counter!(
        "microcash_rejections_total",
        "Records refused, by verdict code."
    );
    describe_histogram!(
        "microcash_fsync_seconds",
        Unit::Seconds,
        "Journal append and fsync of one commit group."
    );
    describe_histogram!(
        "microcash_commit_seconds",
        Unit::Seconds,
        "Settlement of one chunk: spent-set checks and commit."
    );
    describe_histogram!(
        "microcash_batch_seconds",
        Unit::Seconds,
        "Wall time to clear a whole batch."
    );
    describe_counter!("microcash_batches_received_total", "Batches uploaded.");
    describe_histogram!(
        "microcash_deposit_group_size",
        "Single deposits verified and settled together (one fsync)."
    );
    describe_counter!(
        "microcash_http_errors_total",
        "Error answers, by error code."
    );
    describe_counter!(
        "microcash_http_requests_total",
        "HTTP requests answered, by route template, method and status."
    );
    describe_histogram!(
        "microcash_http_request_duration_seconds",
        Unit::Seconds,
        "Time to answer an HTTP request, by route template and method."
    );
    describe_gauge!("microcash_connections_open", "Connections open now.");
    describe_counter!(
        "microcash_connections_refused_total",
        "Connections closed at once because the connection limit was reached."
    );
    describe_gauge!(
        "process_resident_memory_bytes",
        Unit::Bytes,
        "Resident memory of the server process."
    );
    describe_gauge!(
        "process_open_fds",
        "Open file descriptors of the server process."
    );
    describe_gauge!(
        "process_start_time_seconds",
        Unit::Seconds,
        "Start time of the server process, Unix seconds."
    );
}

/// Counts and times every request by its route template (`unmatched` for 404s).
pub async fn track_requests(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("microcash_http_requests_total",
        "route" => route.clone(), "method" => method.clone(), "status" => status)
    .increment(1);
    metrics::histogram!("microcash_http_request_duration_seconds",
        "route" => route, "method" => method)
    .record(started.elapsed().as_secs_f64());
    response
}

/// Samples the process metrics (on each scrape), from /proc on Linux.
pub fn sample_process() {
    static STARTED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let started = *STARTED.get_or_init(crate::unix_now);
    metrics::gauge!("process_start_time_seconds").set(started as f64);
    let page = 4096.0;
    if let Ok(statm) = std::fs::read_to_string("/proc/self/statm") {
        if let Some(rss) = statm
            .split_whitespace()
            .nth(1)
            .and_then(|v| v.parse::<f64>().ok())
        {
            metrics::gauge!("process_resident_memory_bytes").set(rss * page);
        }
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        metrics::gauge!("process_open_fds").set(fds.count() as f64);
    }
}

/// `process_cpu_seconds_total` in Prometheus text, read at scrape time. Written by hand:
/// it is a counter of fractional seconds, which the `metrics` crate's integer counters
/// cannot carry (a gauge named `_total` is refused by `promtool check metrics`).
pub fn process_cpu_text() -> String {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return String::new();
    };
    // Fields after the command name (which may hold spaces): utime is the 14th field,
    // stime the 15th, in clock ticks (100 per second on Linux).
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
    match (ticks(11), ticks(12)) {
        (Some(user), Some(system)) => format!(
            "# HELP process_cpu_seconds_total User and system CPU time of the server process.\n\
             # TYPE process_cpu_seconds_total counter\n\
             process_cpu_seconds_total {}\n",
            (user + system) / 100.0
        ),
        _ => String::new(),
    }
}
