//! Two pieces of book-keeping of [`VectorIndex`](super::VectorIndex): the order of its
//! collection files on disk, and when a failed background HNSW build may be tried again.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// The last change written to disk per collection. Writers snapshot a collection under the
/// index's lock but write the file after releasing it, so two writers can reach the disk
/// in the opposite order of their changes; a snapshot older than what is on disk is then
/// skipped instead of overwriting the newer one.
#[derive(Debug, Default)]
pub(crate) struct Written(HashMap<String, u64>);

impl Written {
    /// Whether the snapshot of change `seq` must be written (nothing newer is on disk).
    pub(crate) fn is_stale(&self, collection: &str, seq: u64) -> bool {
        self.0.get(collection).is_some_and(|&w| w >= seq)
    }

    /// Change `seq` is on disk.
    pub(crate) fn record(&mut self, collection: &str, seq: u64) {
        self.0.insert(collection.to_string(), seq);
    }
}

/// Background HNSW builds: those running, and the failed ones with their failure count,
/// so a build that keeps failing is retried with a growing pause instead of on every
/// search.
#[derive(Debug, Default)]
pub(crate) struct Builds {
    running: HashSet<String>,
    failed: HashMap<String, (Instant, u32)>,
}

/// The pause after the `n`th failure in a row: 30 s, doubling, at most an hour.
pub(crate) fn backoff(n: u32) -> Duration {
    let secs = 30u64.saturating_mul(1 << n.saturating_sub(1).min(7));
    Duration::from_secs(secs.min(3600))
}

impl Builds {
    /// Start a build of `collection` at `now` unless one is running or its last failure
    /// is too recent; true if the caller should build.
    pub(crate) fn try_start(&mut self, collection: &str, now: Instant) -> bool {
        if self.running.contains(collection) {
            return false;
        }
        if let Some((at, n)) = self.failed.get(collection) {
            if now.duration_since(*at) < backoff(*n) {
                return false;
            }
        }
        self.running.insert(collection.to_string());
        true
    }

    /// The build of `collection` ended at `now`.
    pub(crate) fn finish(&mut self, collection: &str, ok: bool, now: Instant) {
        self.running.remove(collection);
        if ok {
            self.failed.remove(collection);
        } else {
            let n = self.failed.get(collection).map_or(0, |(_, n)| *n);
            self.failed.insert(collection.to_string(), (now, n + 1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_build_waits_longer_each_time() {
        assert_eq!(backoff(1), Duration::from_secs(30));
        assert_eq!(backoff(2), Duration::from_secs(60));
        assert_eq!(backoff(20), Duration::from_secs(3600));
        let mut b = Builds::default();
        let t0 = Instant::now();
        assert!(b.try_start("c", t0));
        assert!(!b.try_start("c", t0), "one build at a time");
        b.finish("c", false, t0);
        assert!(!b.try_start("c", t0 + Duration::from_secs(29)));
        assert!(b.try_start("c", t0 + Duration::from_secs(30)));
        b.finish("c", false, t0 + Duration::from_secs(30));
        assert!(!b.try_start("c", t0 + Duration::from_secs(89)));
        assert!(b.try_start("c", t0 + Duration::from_secs(90)));
        b.finish("c", true, t0 + Duration::from_secs(90));
        assert!(
            b.try_start("c", t0 + Duration::from_secs(91)),
            "success clears the pause"
        );
        assert!(b.try_start("other", t0), "collections are independent");
    }

    #[test]
    fn older_snapshots_never_replace_newer_files() {
        let mut w = Written::default();
        assert!(!w.is_stale("c", 1));
        w.record("c", 2);
        assert!(w.is_stale("c", 1));
        assert!(w.is_stale("c", 2));
        assert!(!w.is_stale("c", 3));
        assert!(!w.is_stale("d", 1));
    }
}
