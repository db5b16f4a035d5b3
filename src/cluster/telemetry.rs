//! Prometheus metrics of a worker or partition owner, served on `--metrics-addr`
//! (`GET /metrics`). The metric table is `docs/cluster.md`, "Metrics".

use std::net::SocketAddr;

use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

use super::ClusterError;

const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Installs the recorder and serves it on `addr` from a task of the current runtime.
pub async fn serve(addr: SocketAddr) -> Result<(), ClusterError> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
        .map_err(|e| ClusterError::Config(format!("metrics: {e}")))?
        .install_recorder()
        .map_err(|e| ClusterError::Config(format!("metrics: {e}")))?;
    describe();
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let handle = handle.clone();
            async move { handle.render() }
        }),
    );
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ClusterError::Io {
            path: addr.to_string().into(),
            source,
        })?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(error = %e, "metrics endpoint stopped");
        }
    });
    Ok(())
}

fn describe() {
    // The owner's spent set reports its commits as the single machine's does.
    describe_histogram!(
        "microcash_fsync_seconds",
        Unit::Seconds,
        "Journal append and fsync of one commit group."
    );
    describe_counter!(
        "microcash_cluster_records_verified_total",
        "Records a worker verified (each chunk once per delivery)."
    );
    describe_counter!(
        "microcash_cluster_chunks_verified_total",
        "Chunks a worker verified and put into the global order."
    );
    describe_counter!(
        "microcash_cluster_seq_bytes_total",
        "Bytes of verified chunks a worker published to MC_SEQ."
    );
    describe_histogram!(
        "microcash_cluster_verify_seconds",
        Unit::Seconds,
        "Time a worker spends on one chunk: verification and account facts."
    );
    describe_counter!(
        "microcash_cluster_bad_messages_total",
        "Work chunks that did not decode (dropped)."
    );
    describe_gauge!(
        "microcash_cluster_partition_up",
        "1 while this process holds the partition's lease."
    );
    describe_gauge!(
        "microcash_cluster_applied_batch",
        "Batch number (MC_SEQ announce sequence) the owner is applying."
    );
    describe_gauge!(
        "microcash_cluster_applied_chunk",
        "Chunks of that batch the owner has applied."
    );
    describe_gauge!(
        "microcash_cluster_applied_seq",
        "MC_SEQ stream sequence of the last verified chunk the owner applied."
    );
    describe_gauge!(
        "microcash_cluster_pending_chunks",
        "Chunks of the batch in progress not yet applied (the owner's lag)."
    );
    describe_counter!(
        "microcash_cluster_records_decided_total",
        "Records the owner decided (all partitions decide every record)."
    );
    describe_counter!(
        "microcash_cluster_keys_applied_total",
        "Spent-set keys the owner recorded."
    );
    describe_histogram!(
        "microcash_cluster_chunk_seconds",
        Unit::Seconds,
        "Time an owner spends on one chunk: waiting for it and the votes, deciding, settling."
    );
}
