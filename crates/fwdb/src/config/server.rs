//! `[server]`: what `fwdb up` serves over HTTP (health, readiness, metrics,
//! the status page) and how it observes queries (slow-query log, top list).

use super::model::duration_str;
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerConfig {
    /// Where `fwdb up` listens (`/healthz`, `/readyz`, `/metrics`, `/`).
    /// Port 0 picks a free port (printed on stdout). Loopback by default:
    /// the status page shows statement texts.
    pub listen: String,
    /// Each server's readiness check gives up after this, so a hung server
    /// (SIGSTOP) answers "unhealthy" instead of hanging the probe.
    #[serde(with = "duration_str")]
    pub check_timeout: Duration,
    /// Each query of a metrics scrape gives up after this.
    #[serde(with = "duration_str")]
    pub scrape_timeout: Duration,
    /// Statements slower than this are logged (duration, normalized text, route).
    #[serde(with = "duration_str")]
    pub slow_query_threshold: Duration,
    /// How many statements of pg_stat_statements `/metrics` and the page show.
    pub top_statements: usize,
    /// Whether a down replica makes `/readyz` answer 503 (reads fall back to
    /// the primary, so by default only the primary and MongoDB are required).
    pub replicas_required: bool,
    /// After SIGTERM, in-flight requests get this long to finish.
    #[serde(with = "duration_str")]
    pub drain_timeout: Duration,
    /// `fwdb check queries`: a sequential scan is flagged on tables with more rows than this.
    pub seq_scan_min_rows: i64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8080".into(),
            // Readiness probes (Kubernetes) default to a 1 s timeout: answer before it.
            check_timeout: Duration::from_millis(800),
            scrape_timeout: Duration::from_secs(2),
            // Section 12's checklist: statements over 100 ms deserve a look.
            slow_query_threshold: Duration::from_millis(100),
            top_statements: 10,
            replicas_required: false,
            drain_timeout: Duration::from_secs(10),
            seq_scan_min_rows: 1000,
        }
    }
}
