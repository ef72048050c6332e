//! Leader election on a `coordination.k8s.io/v1` Lease, with `kube-lease-manager`: only the
//! replica holding the lease reconciles; the others serve the webhook, health and metrics and
//! wait.
//!
//! The lease manager takes, renews and releases the lease. On top of it a watchdog reads the
//! Lease every `check_interval` and keeps the [`Fence`] open only until our last confirmed
//! renewal plus the lease duration minus a safety margin: if renewals stop being confirmed (an
//! API server this replica cannot reach), the fence closes before any other replica may take
//! the lease over, and every write is refused from then on — not only once the lease manager
//! notices a new holder.

mod fence;

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::{Api, Client};
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use fence::now_ms;
pub use fence::{Fence, NotLeader};

/// Leader election settings.
#[derive(Clone, Debug)]
pub struct LeaderSettings {
    /// The Lease's name (`install::rbac::LEASE_NAME`: the install grants it by name).
    pub lease_name: String,
    /// The Lease's namespace (the operator's, `POD_NAMESPACE`).
    pub namespace: String,
    /// This replica's identity (its pod name).
    pub identity: String,
    /// How long a lease is valid after its last renewal, seconds.
    pub duration_secs: u64,
    /// How long before expiry the holder renews, seconds (also the tolerated clock skew).
    pub grace_secs: u64,
    /// How often the watchdog reads the Lease.
    pub check_interval: Duration,
}

impl LeaderSettings {
    /// Settings for `identity` competing for `lease_name` in `namespace`: a 15 s lease renewed
    /// 5 s before it expires, checked every second.
    pub fn new(lease_name: &str, namespace: &str, identity: &str) -> Self {
        LeaderSettings {
            lease_name: lease_name.to_string(),
            namespace: namespace.to_string(),
            identity: identity.to_string(),
            duration_secs: 15,
            grace_secs: 5,
            check_interval: Duration::from_secs(1),
        }
    }

    /// The fence closes this long before the lease would expire without a renewal.
    fn safety_ms(&self) -> i64 {
        i64::try_from(self.grace_secs.saturating_mul(1000) / 2).unwrap_or(0)
    }
}

/// Leader election could not start.
#[derive(Debug, thiserror::Error)]
#[error("leader election on Lease {namespace}/{name} could not start: {source}")]
pub struct LeaderError {
    /// The Lease's namespace.
    pub namespace: String,
    /// The Lease's name.
    pub name: String,
    /// The lease manager's error.
    #[source]
    pub source: kube_lease_manager::LeaseManagerError,
}

/// A running leader election. [`Leadership::watch`] tells whether this replica leads;
/// [`Leadership::release`] gives the lease up (on shutdown).
pub struct Leadership {
    leader: watch::Receiver<bool>,
    fence: Fence,
    lease: Option<watch::Receiver<bool>>,
    manager: JoinHandle<kube_lease_manager::Result<LeaseManager>>,
    watchdog: JoinHandle<()>,
}

impl Leadership {
    /// Starts competing for the lease. `fence` is opened and closed as leadership comes and
    /// goes (pass the fence the backend and store check).
    pub async fn start(
        client: Client,
        settings: LeaderSettings,
        fence: Fence,
    ) -> Result<Self, LeaderError> {
        fence.close();
        let manager = LeaseManagerBuilder::new(client.clone(), &settings.lease_name)
            .with_namespace(&settings.namespace)
            .with_identity(&settings.identity)
            .with_duration(settings.duration_secs)
            .with_grace(settings.grace_secs)
            .build()
            .await
            .map_err(|source| LeaderError {
                namespace: settings.namespace.clone(),
                name: settings.lease_name.clone(),
                source,
            })?;
        let (lease, manager) = manager.watch().await;
        let (leader_tx, leader) = watch::channel(false);
        let watchdog = tokio::spawn(watchdog(
            Api::namespaced(client, &settings.namespace),
            settings,
            lease.clone(),
            fence.clone(),
            leader_tx,
        ));
        Ok(Leadership {
            leader,
            fence,
            lease: Some(lease),
            manager,
            watchdog,
        })
    }

    /// `true` while this replica leads (the fence is open); changes are notified.
    pub fn watch(&self) -> watch::Receiver<bool> {
        self.leader.clone()
    }

    /// Stops acting as leader at once and hands the lease back, so a standby takes over without
    /// waiting for it to expire.
    pub async fn release(mut self) {
        self.fence.close();
        self.watchdog.abort();
        let _ = (&mut self.watchdog).await;
        // The lease manager releases the lease once nobody listens to it any more.
        drop(self.lease.take());
        match tokio::time::timeout(Duration::from_secs(5), &mut self.manager).await {
            Ok(Ok(Ok(_))) => tracing::info!("leader lease released"),
            Ok(Ok(Err(e))) => {
                tracing::warn!(error = %e, "could not release the leader lease; it expires by itself")
            }
            Ok(Err(_)) | Err(_) => {
                self.manager.abort();
                tracing::warn!(
                    "the lease manager did not stop in time; the lease expires by itself"
                );
            }
        }
    }
}

/// Keeps the fence open while the lease is ours and its renewal recent; publishes leadership.
async fn watchdog(
    leases: Api<Lease>,
    settings: LeaderSettings,
    mut lease: watch::Receiver<bool>,
    fence: Fence,
    leader: watch::Sender<bool>,
) {
    // The fence refuses writes by itself once its deadline passes; this loop moves the deadline
    // and tells the controller (within one `check_interval`) to stop.
    let mut ticks = tokio::time::interval(settings.check_interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            changed = lease.changed() => {
                if changed.is_err() {
                    fence.close();
                    leader.send_replace(false);
                    return;
                }
            }
        }
        let holds = *lease.borrow_and_update();
        if !holds {
            fence.close();
        } else {
            match leases.get_opt(&settings.lease_name).await {
                Ok(Some(l)) => match valid_until(&l, &settings) {
                    Some(until) => fence.open_until(until),
                    None => fence.close(),
                },
                Ok(None) => fence.close(),
                // Unconfirmed: the fence keeps its last deadline and closes when it passes.
                Err(e) => tracing::warn!(error = %e, "cannot read the leader lease"),
            }
        }
        let leading = fence.is_open();
        leader.send_if_modified(|was| {
            let changed = *was != leading;
            if changed {
                if leading {
                    tracing::info!(identity = %settings.identity, "leading: this replica reconciles");
                } else {
                    tracing::warn!(identity = %settings.identity, "not leading (any more): reconciling stops");
                }
            }
            *was = leading;
            changed
        });
    }
}

/// Until when (epoch ms) the lease is certainly ours: our identity holds it and its last
/// renewal plus its duration, minus the safety margin, lies ahead.
fn valid_until(lease: &Lease, settings: &LeaderSettings) -> Option<i64> {
    let spec = lease.spec.as_ref()?;
    if spec.holder_identity.as_deref() != Some(settings.identity.as_str()) {
        return None;
    }
    let renewed = spec.renew_time.as_ref().or(spec.acquire_time.as_ref())?;
    let renewed_ms = renewed.0.as_millisecond();
    let duration_ms = i64::from(spec.lease_duration_seconds?) * 1000;
    let until = renewed_ms + duration_ms - settings.safety_ms();
    (until > now_ms()).then_some(until)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lease(holder: &str, renewed_ago_ms: i64, duration: i32) -> Lease {
        let renewed =
            k8s_openapi::jiff::Timestamp::from_millisecond(now_ms() - renewed_ago_ms).unwrap();
        serde_json::from_value(json!({
            "metadata": {"name": "l"},
            "spec": {
                "holderIdentity": holder,
                "leaseDurationSeconds": duration,
                "renewTime": renewed.to_string(),
            }
        }))
        .unwrap()
    }

    #[test]
    fn the_fence_lasts_until_renewal_plus_duration_minus_the_safety_margin() {
        let settings = LeaderSettings::new("l", "ns", "me");
        let until = valid_until(&lease("me", 1_000, 15), &settings).unwrap();
        let expected = now_ms() - 1_000 + 15_000 - 2_500;
        assert!((until - expected).abs() < 100, "{until} vs {expected}");
        assert_eq!(valid_until(&lease("other", 1_000, 15), &settings), None);
        assert_eq!(
            valid_until(&lease("me", 14_000, 15), &settings),
            None,
            "too close to expiry"
        );
    }
}
