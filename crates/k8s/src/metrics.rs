//! The operator's Prometheus metrics: resources per lifecycle state and JobManager deployment
//! status, reconciles (count, duration, errors by category) and Flink REST call latency.
//!
//! Every label value comes from a closed set — an enum of this crate or `api`, a
//! `&'static str` error category, or a Flink client path template (ids replaced by
//! placeholders, see `flink::observe`) — so the number of series is bounded whatever the
//! cluster holds. Object names, namespaces and error messages are never labels.
//!
//! [`Metrics::new`] registers the families in a [`Registry`] that other parts of the operator
//! may add their own metrics to before it is handed to the HTTP server
//! ([`crate::http::HttpState`]), which serves it at `/metrics`.

use std::time::Instant;

use api::{
    FlinkDeployment, FlinkSessionJob, FlinkStateSnapshot, FlinkStateSnapshotState,
    JobManagerDeploymentStatus, ResourceLifecycleState,
};
use flink::{CallObserver, ObservedCall};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// Prefix of every metric registered here.
pub const PREFIX: &str = "flinkpilot";

/// The kind of a resource, as a label value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ResourceKind {
    /// `FlinkDeployment`.
    FlinkDeployment,
    /// `FlinkSessionJob`.
    FlinkSessionJob,
    /// `FlinkStateSnapshot`.
    FlinkStateSnapshot,
}

impl ResourceKind {
    /// The Kubernetes kind, e.g. `FlinkDeployment`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FlinkDeployment => FlinkDeployment::CRD_INFO.kind,
            Self::FlinkSessionJob => FlinkSessionJob::CRD_INFO.kind,
            Self::FlinkStateSnapshot => FlinkStateSnapshot::CRD_INFO.kind,
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    kind: &'static str,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    kind: &'static str,
    category: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FlinkCallLabels {
    /// A path template of the Flink client (`/jobs/:jobid/savepoints/:triggerid`): ids never
    /// appear, so the set is the set of endpoints the client calls.
    endpoint: String,
    method: &'static str,
    outcome: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Reconciles range from a cache hit (milliseconds) to a savepoint wait (tens of seconds).
fn reconcile_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

/// REST calls: milliseconds on a healthy JobManager up to the client's timeout.
fn flink_call_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.002, 2.0, 14))
}

/// The operator's metric families. Cheap to clone (the families are shared); hand one clone to
/// every part of the controller.
#[derive(Clone, Debug)]
pub struct Metrics {
    resources: Family<StateLabels, Gauge>,
    jobmanager_deployments: Family<StateLabels, Gauge>,
    reconciles: Family<KindLabels, Counter>,
    reconcile_errors: Family<ErrorLabels, Counter>,
    reconcile_duration: HistogramFamily<KindLabels>,
    flink_request_duration: HistogramFamily<FlinkCallLabels>,
}

impl Metrics {
    /// Creates the families and registers them in `registry` under the `flinkpilot_` prefix.
    pub fn new(registry: &mut Registry) -> Self {
        let metrics = Self {
            resources: Family::default(),
            jobmanager_deployments: Family::default(),
            reconciles: Family::default(),
            reconcile_errors: Family::default(),
            reconcile_duration: Family::new_with_constructor(reconcile_histogram),
            flink_request_duration: Family::new_with_constructor(flink_call_histogram),
        };
        let r = registry.sub_registry_with_prefix(PREFIX);
        r.register(
            "resources",
            "Resources per kind and lifecycle state (status.lifecycleState; FlinkStateSnapshot: \
             status.state)",
            metrics.resources.clone(),
        );
        r.register(
            "jobmanager_deployments",
            "FlinkDeployments per JobManager deployment status \
             (status.jobManagerDeploymentStatus)",
            metrics.jobmanager_deployments.clone(),
        );
        r.register(
            "reconciles",
            "Reconciles started, per kind",
            metrics.reconciles.clone(),
        );
        r.register(
            "reconcile_errors",
            "Reconciles that ended in an error, per kind and error category",
            metrics.reconcile_errors.clone(),
        );
        r.register_with_unit(
            "reconcile_duration",
            "Time a reconcile took, per kind",
            Unit::Seconds,
            metrics.reconcile_duration.clone(),
        );
        r.register_with_unit(
            "flink_rest_request_duration",
            "Latency of Flink REST calls (each attempt), per endpoint path template, method and \
             outcome (ok, http_4xx, http_5xx, http_other, timeout, unreachable, decode)",
            Unit::Seconds,
            metrics.flink_request_duration.clone(),
        );
        metrics
    }

    /// Counts a reconcile of `kind` and returns a guard that records its duration when dropped.
    /// Call [`ReconcileGuard::failed`] on it when the reconcile ends in an error.
    #[must_use = "the duration is recorded when the guard is dropped at the end of the reconcile"]
    pub fn reconcile_started(&self, kind: ResourceKind) -> ReconcileGuard {
        let labels = KindLabels {
            kind: kind.as_str(),
        };
        self.reconciles.get_or_create(&labels).inc();
        ReconcileGuard {
            metrics: self.clone(),
            kind,
            start: Instant::now(),
        }
    }

    /// Sets the number of `kind` resources (`FlinkDeployment` or `FlinkSessionJob`) in each
    /// lifecycle state. States missing from `counts` are set to 0, so a state nothing is in any
    /// more does not keep its last count.
    pub fn set_lifecycle_counts(
        &self,
        kind: ResourceKind,
        counts: impl IntoIterator<Item = (ResourceLifecycleState, u64)>,
    ) {
        let counts: Vec<_> = counts.into_iter().collect();
        for state in ResourceLifecycleState::ALL {
            let n = sum_for(&counts, *state);
            self.set_resources(kind, state.as_str(), n);
        }
    }

    /// Sets the number of `FlinkStateSnapshot`s in each state (0 for states not in `counts`).
    pub fn set_snapshot_counts(
        &self,
        counts: impl IntoIterator<Item = (FlinkStateSnapshotState, u64)>,
    ) {
        let counts: Vec<_> = counts.into_iter().collect();
        for state in FlinkStateSnapshotState::ALL {
            let n = sum_for(&counts, *state);
            self.set_resources(ResourceKind::FlinkStateSnapshot, state.as_str(), n);
        }
    }

    /// Sets the number of `FlinkDeployment`s per JobManager deployment status (0 for statuses
    /// not in `counts`).
    pub fn set_jobmanager_status_counts(
        &self,
        counts: impl IntoIterator<Item = (JobManagerDeploymentStatus, u64)>,
    ) {
        let counts: Vec<_> = counts.into_iter().collect();
        for status in JobManagerDeploymentStatus::ALL {
            let labels = StateLabels {
                kind: ResourceKind::FlinkDeployment.as_str(),
                state: status.as_str(),
            };
            self.jobmanager_deployments
                .get_or_create(&labels)
                .set(gauge_value(sum_for(&counts, *status)));
        }
    }

    fn set_resources(&self, kind: ResourceKind, state: &'static str, n: u64) {
        let labels = StateLabels {
            kind: kind.as_str(),
            state,
        };
        self.resources.get_or_create(&labels).set(gauge_value(n));
    }
}

fn sum_for<T: PartialEq + Copy>(counts: &[(T, u64)], wanted: T) -> u64 {
    counts
        .iter()
        .filter(|(s, _)| *s == wanted)
        .map(|(_, n)| n)
        .sum()
}

fn gauge_value(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Every Flink REST call of the clients the backend builds lands in
/// `flinkpilot_flink_rest_request_duration_seconds`.
impl CallObserver for Metrics {
    fn observe(&self, call: &ObservedCall<'_>) {
        let labels = FlinkCallLabels {
            endpoint: call.endpoint.to_string(),
            method: call.method,
            outcome: call.outcome.as_str(),
        };
        self.flink_request_duration
            .get_or_create(&labels)
            .observe(call.duration.as_secs_f64());
    }
}

/// Times one reconcile; records its duration when dropped (see [`Metrics::reconcile_started`]).
#[derive(Debug)]
pub struct ReconcileGuard {
    metrics: Metrics,
    kind: ResourceKind,
    start: Instant,
}

impl ReconcileGuard {
    /// Counts this reconcile as failed with an error of `category`: a short, fixed name such as
    /// `flink_unreachable` or `invalid_spec` (the error type's category, never its message).
    pub fn failed(&self, category: &'static str) {
        let labels = ErrorLabels {
            kind: self.kind.as_str(),
            category,
        };
        self.metrics.reconcile_errors.get_or_create(&labels).inc();
    }
}

impl Drop for ReconcileGuard {
    fn drop(&mut self) {
        let labels = KindLabels {
            kind: self.kind.as_str(),
        };
        self.metrics
            .reconcile_duration
            .get_or_create(&labels)
            .observe(self.start.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::text::encode;

    fn setup() -> (Metrics, Registry) {
        let mut registry = Registry::default();
        let metrics = Metrics::new(&mut registry);
        (metrics, registry)
    }

    fn text(registry: &Registry) -> String {
        let mut out = String::new();
        encode(&mut out, registry).unwrap();
        out
    }

    /// The value of the sample line that starts with `series` (name and labels).
    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .map(|v| v.parse().unwrap())
    }

    #[test]
    fn lifecycle_counts_set_every_state_and_zero_the_missing_ones() {
        let (m, r) = setup();
        m.set_lifecycle_counts(
            ResourceKind::FlinkDeployment,
            [
                (ResourceLifecycleState::Stable, 3),
                (ResourceLifecycleState::Failed, 1),
            ],
        );
        m.set_lifecycle_counts(
            ResourceKind::FlinkDeployment,
            [(ResourceLifecycleState::Stable, 4)],
        );
        let t = text(&r);
        let series = |state: &str| {
            format!("flinkpilot_resources{{kind=\"FlinkDeployment\",state=\"{state}\"}}")
        };
        assert_eq!(sample(&t, &series("STABLE")), Some(4.0), "{t}");
        assert_eq!(sample(&t, &series("FAILED")), Some(0.0), "{t}");
        for state in ResourceLifecycleState::ALL {
            assert!(sample(&t, &series(state.as_str())).is_some(), "{t}");
        }
    }

    #[test]
    fn snapshot_and_jobmanager_counts_use_their_own_states() {
        let (m, r) = setup();
        m.set_snapshot_counts([(FlinkStateSnapshotState::Completed, 7)]);
        m.set_jobmanager_status_counts([
            (JobManagerDeploymentStatus::Ready, 2),
            (JobManagerDeploymentStatus::Error, 1),
        ]);
        let t = text(&r);
        assert_eq!(
            sample(
                &t,
                "flinkpilot_resources{kind=\"FlinkStateSnapshot\",state=\"COMPLETED\"}"
            ),
            Some(7.0),
            "{t}"
        );
        assert_eq!(
            sample(
                &t,
                "flinkpilot_jobmanager_deployments{kind=\"FlinkDeployment\",state=\"READY\"}"
            ),
            Some(2.0),
            "{t}"
        );
        assert_eq!(
            sample(
                &t,
                "flinkpilot_jobmanager_deployments{kind=\"FlinkDeployment\",state=\"MISSING\"}"
            ),
            Some(0.0),
            "{t}"
        );
    }

    #[test]
    fn reconcile_guard_counts_times_and_records_failures() {
        let (m, r) = setup();
        {
            let _ok = m.reconcile_started(ResourceKind::FlinkDeployment);
        }
        {
            let failing = m.reconcile_started(ResourceKind::FlinkDeployment);
            failing.failed("flink_unreachable");
        }
        let t = text(&r);
        assert_eq!(
            sample(&t, "flinkpilot_reconciles_total{kind=\"FlinkDeployment\"}"),
            Some(2.0),
            "{t}"
        );
        assert_eq!(
            sample(
                &t,
                "flinkpilot_reconcile_errors_total{kind=\"FlinkDeployment\",category=\"flink_unreachable\"}"
            ),
            Some(1.0),
            "{t}"
        );
        assert_eq!(
            sample(
                &t,
                "flinkpilot_reconcile_duration_seconds_count{kind=\"FlinkDeployment\"}"
            ),
            Some(2.0),
            "{t}"
        );
    }

    #[test]
    fn flink_calls_land_in_their_latency_bucket_per_template_method_and_outcome() {
        let (m, r) = setup();
        let call = |outcome, ms| ObservedCall {
            endpoint: "/jobs/:jobid/savepoints",
            method: "POST",
            outcome,
            duration: std::time::Duration::from_millis(ms),
        };
        m.observe(&call(flink::CallOutcome::Ok, 3));
        m.observe(&call(flink::CallOutcome::Timeout, 10_000));
        let t = text(&r);
        let series = |suffix: &str, le: &str, outcome: &str| {
            format!(
                "flinkpilot_flink_rest_request_duration_seconds_{suffix}{{{le}endpoint=\"/jobs/:jobid/savepoints\",method=\"POST\",outcome=\"{outcome}\"}}"
            )
        };
        assert_eq!(
            sample(&t, &series("bucket", "le=\"0.004\",", "ok")),
            Some(1.0),
            "{t}"
        );
        assert_eq!(
            sample(&t, &series("bucket", "le=\"0.002\",", "ok")),
            Some(0.0),
            "{t}"
        );
        assert_eq!(
            sample(&t, &series("count", "", "timeout")),
            Some(1.0),
            "{t}"
        );
    }

    #[test]
    fn exposition_is_openmetrics_text_with_help_type_and_eof() {
        let (m, r) = setup();
        let _ = m.reconcile_started(ResourceKind::FlinkSessionJob);
        let t = text(&r);
        assert!(
            t.contains("# HELP flinkpilot_reconciles Reconciles started, per kind.\n"),
            "{t}"
        );
        assert!(t.contains("# TYPE flinkpilot_reconciles counter\n"), "{t}");
        assert!(
            t.contains("# TYPE flinkpilot_reconcile_duration_seconds histogram\n"),
            "{t}"
        );
        assert!(
            t.contains("# UNIT flinkpilot_reconcile_duration_seconds seconds\n"),
            "{t}"
        );
        assert!(t.ends_with("# EOF\n"), "{t}");
    }
}
