//! `postgres.routing`: how reads are spread over replicas, when a replica is
//! left out, how a lost primary is found again, and how transactions retry.

use super::model::duration_str;
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct RoutingConfig {
    /// A replica whose replay position is further than this behind the
    /// primary's current WAL position gets no `Eventual` reads.
    pub max_replica_lag_bytes: u64,
    /// A replica whose last replayed transaction is older than this (while it
    /// is behind the primary) gets no `Eventual` reads.
    #[serde(with = "duration_str")]
    pub max_replica_lag: Duration,
    /// How often each server is probed (health, recovery state, lag).
    #[serde(with = "duration_str")]
    pub probe_interval: Duration,
    /// A probe (connect included) slower than this counts as a failure.
    #[serde(with = "duration_str")]
    pub probe_timeout: Duration,
    /// Consecutive failed probes before a replica is ejected. A read that
    /// loses its connection ejects the replica at once, whatever this says.
    pub eject_after_failures: u32,
    /// Consecutive good probes before an ejected replica gets reads again.
    pub readmit_after_successes: u32,
    /// How many other servers a read that lost its server is retried on.
    pub read_retries: u32,
    /// While no primary is known, a write tries to find one at most this
    /// often; writes in between fail at once with `Unavailable`.
    #[serde(with = "duration_str")]
    pub primary_retry_interval: Duration,
    /// Run an empty query on every checkout (what deadpool-postgres calls
    /// `Verified`; postgres/conn.rs does it) instead of only checking that
    /// the socket is open (`Fast`).
    pub verify_on_checkout: bool,
    /// Attempts of a transaction that fails with 40001 or 40P01, the first included.
    pub tx_max_attempts: u32,
    /// Backoff before the second attempt; doubled each time, with jitter.
    #[serde(with = "duration_str")]
    pub tx_backoff_initial: Duration,
    /// The backoff never grows beyond this.
    #[serde(with = "duration_str")]
    pub tx_backoff_max: Duration,
    /// How often pools are trimmed (idle timeout, max lifetime) and refilled to `min_size`.
    #[serde(with = "duration_str")]
    pub maintenance_interval: Duration,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        RoutingConfig {
            // 16 MiB is one WAL segment: a replica that far behind is replaying
            // a burst, and a reader would notice the missing rows.
            max_replica_lag_bytes: 16 * 1024 * 1024,
            // The usual alert threshold for PostgreSQL replication lag (anchors:
            // monitoring); beyond it a user sees stale pages.
            max_replica_lag: Duration::from_secs(5),
            // Once a second: a dead replica costs at most a second of retried
            // reads, and the probes cost nothing measurable.
            probe_interval: Duration::from_secs(1),
            // A local-network server answers `select` in milliseconds; a
            // second without an answer is a hung or overloaded server.
            probe_timeout: Duration::from_secs(1),
            // Two in a row, so one lost packet does not move traffic around.
            eject_after_failures: 2,
            // Two in a row, so a flapping server is not readmitted on a fluke.
            readmit_after_successes: 2,
            // With two replicas and the primary, one retry reaches a live server
            // unless two fail at once.
            read_retries: 2,
            // Short enough that writes resume within a fraction of a second of
            // a promotion, long enough not to hammer dead hosts with connects.
            primary_retry_interval: Duration::from_millis(200),
            // `Fast` (socket open) on checkout; the probe and the retry of a
            // read on a lost connection catch the rest (docs/pool-choice.md).
            verify_on_checkout: false,
            // Serialization failures under real contention clear in a few
            // tries; more would hide a design problem behind latency.
            tx_max_attempts: 5,
            // About one short transaction's duration.
            tx_backoff_initial: Duration::from_millis(10),
            // Caps the total wait of 5 attempts around one second.
            tx_backoff_max: Duration::from_millis(500),
            // Idle and lifetime limits are minutes; checking every 10 s is precise enough.
            maintenance_interval: Duration::from_secs(10),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, LoadOptions, Profile};

    fn load(env: &[(&str, &str)]) -> crate::Result<Config> {
        let dir = tempfile::tempdir().expect("temp dir");
        Config::load(LoadOptions {
            file: None,
            profile: Some(Profile::Development),
            env: Some(env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
            dir: Some(dir.path().to_path_buf()),
        })
    }

    #[test]
    fn routing_settings_have_defaults_and_read_durations_as_text() {
        let c = load(&[]).expect("defaults load");
        assert_eq!(c.postgres.routing.max_replica_lag, Duration::from_secs(5));
        assert_eq!(c.postgres.routing.probe_interval, Duration::from_secs(1));
        let c = load(&[
            ("FWDB__POSTGRES__ROUTING__PROBE_INTERVAL", "250ms"),
            ("FWDB__POSTGRES__ROUTING__MAX_REPLICA_LAG_BYTES", "1024"),
        ])
        .expect("overrides load");
        assert_eq!(c.postgres.routing.probe_interval, Duration::from_millis(250));
        assert_eq!(c.postgres.routing.max_replica_lag_bytes, 1024);
    }

    #[test]
    fn out_of_range_routing_settings_are_reported_with_their_keys() {
        let e = load(&[
            ("FWDB__POSTGRES__ROUTING__PROBE_INTERVAL", "0s"),
            ("FWDB__POSTGRES__ROUTING__TX_MAX_ATTEMPTS", "0"),
            ("FWDB__POSTGRES__ROUTING__TX_BACKOFF_INITIAL", "2s"),
            ("FWDB__POSTGRES__ROUTING__EJECT_AFTER_FAILURES", "0"),
        ])
        .expect_err("invalid");
        let keys: Vec<&str> = e.config_problems().iter().map(|p| p.key.as_str()).collect();
        for k in [
            "postgres.routing.probe_interval",
            "postgres.routing.tx_max_attempts",
            "postgres.routing.tx_backoff_initial",
            "postgres.routing.eject_after_failures",
        ] {
            assert!(keys.contains(&k), "{k} in {keys:?}");
        }
        assert!(e.to_string().contains("env FWDB__POSTGRES__ROUTING__TX_MAX_ATTEMPTS"), "{e}");
    }
}
