//! [`Fence`]: whether this replica may write to the API server right now.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A write that was refused because this replica does not (or no longer) hold the lease.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "this flinkpilot replica does not hold the leader lease (any more); the replica that holds it \
     does the work"
)]
pub struct NotLeader;

/// Whether this replica may write: every write to the API server (children, status,
/// finalizers, events) checks it right before it is sent.
///
/// With leader election the fence is open only while the lease is ours *and* our last
/// confirmed renewal is recent enough that no other replica can have taken it over: it closes
/// by itself when renewals stop being confirmed (an API server this replica cannot reach), not
/// only when the lease manager notices another holder. Clones share the state.
#[derive(Clone, Debug)]
pub struct Fence(Arc<AtomicI64>);

/// `valid_until` of a fence that never closes.
const FOREVER: i64 = i64::MAX;

impl Fence {
    /// A fence that is always open: a single operator without leader election, and tests.
    pub fn open() -> Self {
        Fence(Arc::new(AtomicI64::new(FOREVER)))
    }

    /// A closed fence (a replica that has not won the lease yet).
    pub fn closed() -> Self {
        Fence(Arc::new(AtomicI64::new(0)))
    }

    /// `Ok` while writes are allowed.
    pub fn check(&self) -> Result<(), NotLeader> {
        if now_ms() < self.0.load(Ordering::Acquire) {
            Ok(())
        } else {
            Err(NotLeader)
        }
    }

    /// Whether writes are allowed now.
    pub fn is_open(&self) -> bool {
        self.check().is_ok()
    }

    /// Allows writes until `until_ms` (epoch milliseconds).
    pub(crate) fn open_until(&self, until_ms: i64) {
        self.0.store(until_ms, Ordering::Release);
    }

    /// Refuses writes from now on.
    pub(crate) fn close(&self) {
        self.0.store(0, Ordering::Release);
    }
}

/// Now, epoch milliseconds.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fence_refuses_writes_once_its_time_is_up() {
        let fence = Fence::closed();
        assert_eq!(fence.check(), Err(NotLeader));
        fence.open_until(now_ms() + 60_000);
        assert!(fence.is_open());
        let clone = fence.clone();
        fence.open_until(now_ms() - 1);
        assert!(!clone.is_open(), "clones share the state");
        fence.open_until(now_ms() + 60_000);
        fence.close();
        assert!(!fence.is_open());
        assert!(Fence::open().is_open());
    }
}
