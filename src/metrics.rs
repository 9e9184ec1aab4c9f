//! Prometheus metrics: requests by route template and status, score posts
//! by outcome, and the projector's lag. This module owns the recorder and
//! the counters the engine moves; `api::metrics` serves them.
//!
//! The recorder is process-wide (the `metrics` facade allows one), so it is
//! installed once and shared by every app started in the process; counters
//! then add up across them, which is what one process serving means.

use std::sync::OnceLock;

use gradebook_domain::score::ScoreOutcome;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the recorder on first use and returns its handle.
pub fn install() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        // Buckets (not summaries) so durations add up across nodes.
        let recorder = PrometheusBuilder::new()
            .set_buckets(&[
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ])
            .expect("the bucket list is not empty")
            .build_recorder();
        let handle = recorder.handle();
        // Fails only if an embedding program installed its own recorder;
        // then ours renders what it has and theirs receives the counts.
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics shows only its own");
        }
        describe();
        handle
    })
}

fn describe() {
    metrics::describe_counter!(
        "gradebook_http_requests_total",
        "HTTP requests by method, route template and status"
    );
    metrics::describe_histogram!(
        "gradebook_http_request_duration_seconds",
        "HTTP request duration by method and route template"
    );
    metrics::describe_counter!(
        "gradebook_score_posts_total",
        "Score posts by outcome (accepted, cleared, unchanged, ignored_stale, rejected) and rejection reason"
    );
    metrics::describe_gauge!(
        "gradebook_projector_lag_events",
        "Events in the log not yet applied to the read tables"
    );
    metrics::describe_gauge!(
        "gradebook_projector_lag_seconds",
        "Age of the oldest event not yet applied to the read tables"
    );
    metrics::describe_gauge!(
        "gradebook_projector_leader",
        "1 on the node whose projector applies events (the advisory-lock holder), else 0"
    );
    metrics::describe_counter!(
        "gradebook_write_conflicts_total",
        "Writes that lost an optimistic-concurrency race and were retried"
    );
    // Every outcome shows from the start, at 0, so dashboards and alerts
    // need not special-case a series that has not appeared yet.
    use gradebook_domain::score::RejectReason;
    for outcome in [
        ScoreOutcome::Accepted,
        ScoreOutcome::Cleared,
        ScoreOutcome::Unchanged,
        ScoreOutcome::IgnoredStale,
        ScoreOutcome::Rejected(RejectReason::CourseLocked),
        ScoreOutcome::Rejected(RejectReason::UserNotEnrolled),
        ScoreOutcome::Rejected(RejectReason::LineItemDeleted),
    ] {
        let (outcome, reason) = outcome_labels(&outcome);
        metrics::counter!("gradebook_score_posts_total", "outcome" => outcome, "reason" => reason)
            .increment(0);
    }
}

/// The label values of a score outcome: (outcome, reason).
pub fn outcome_labels(outcome: &ScoreOutcome) -> (&'static str, &'static str) {
    match outcome {
        ScoreOutcome::Accepted => ("accepted", ""),
        ScoreOutcome::Cleared => ("cleared", ""),
        ScoreOutcome::Unchanged => ("unchanged", ""),
        ScoreOutcome::IgnoredStale => ("ignored_stale", ""),
        ScoreOutcome::Rejected(reason) => ("rejected", reason.code()),
    }
}

/// Counts one score post; called by whatever posts scores.
pub fn score_outcome(outcome: &ScoreOutcome) {
    let (outcome, reason) = outcome_labels(outcome);
    metrics::counter!("gradebook_score_posts_total", "outcome" => outcome, "reason" => reason)
        .increment(1);
}
