//! The HTTP side of `fwdb up` (axum): `/healthz`, `/readyz`, `/metrics` and
//! the status page `/`.
//!
//! It lives in the command, not the library: the library gives the data
//! (`fwdb::check_cluster_health`, `fwdb::MetricsCollector`, `fwdb::render_metrics`)
//! without tying services to one HTTP framework; a service exposes those on
//! its own router in a few lines, as this module does.

mod page;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use fwdb::{HealthReport, MetricsCollector};
use serde::Serialize;
use std::collections::VecDeque;

/// One readiness check: (Unix time, per server (name, response ms, healthy)).
pub(crate) type Sample = (f64, Vec<(String, f64, bool)>);
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// How many readiness samples the status page charts.
const SAMPLES_KEPT: usize = 60;

/// What the handlers share.
pub struct AppState {
    pub collector: MetricsCollector,
    /// Set on SIGTERM: `/readyz` and `/healthz` answer 503 while in-flight requests finish.
    pub draining: AtomicBool,
    /// (Unix time, per server (name, response ms, healthy)) of recent checks, oldest first.
    samples: Mutex<VecDeque<Sample>>,
}

impl AppState {
    pub fn new(collector: MetricsCollector) -> Arc<AppState> {
        Arc::new(AppState { collector, draining: AtomicBool::new(false), samples: Mutex::new(VecDeque::new()) })
    }

    /// Every server's health, on the cluster's pools, each within `server.check_timeout`.
    pub async fn health(&self) -> HealthReport {
        let c = &self.collector;
        let report = fwdb::check_cluster_health(
            c.cluster(),
            c.mongo(),
            &c.config().mongo.database,
            c.config().server.check_timeout,
        )
        .await;
        let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
        let mut s = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        s.push_back((now, report.servers.iter().map(|x| (x.name.clone(), x.response_ms, x.healthy)).collect()));
        while s.len() > SAMPLES_KEPT {
            s.pop_front();
        }
        report
    }

    fn samples(&self) -> Vec<Sample> {
        self.samples.lock().unwrap_or_else(|p| p.into_inner()).iter().cloned().collect()
    }
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(status_page))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// Samples readiness every `every` so the page's chart has a history; stops with the runtime.
pub fn spawn_sampler(state: Arc<AppState>, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if state.draining.load(Ordering::Relaxed) {
                break;
            }
            state.health().await;
        }
    })
}

async fn healthz(State(st): State<Arc<AppState>>) -> Response {
    if st.draining.load(Ordering::Relaxed) {
        return (StatusCode::SERVICE_UNAVAILABLE, "draining\n").into_response();
    }
    "ok\n".into_response()
}

#[derive(Serialize)]
struct Readiness {
    /// ready, degraded (a replica down), unready or draining.
    status: &'static str,
    ready: bool,
    #[serde(flatten)]
    report: HealthReport,
}

async fn readyz(State(st): State<Arc<AppState>>) -> Response {
    let report = st.health().await;
    let draining = st.draining.load(Ordering::Relaxed);
    let ready = !draining && report.ready(st.collector.config().server.replicas_required);
    let status = if draining {
        "draining"
    } else if !ready {
        "unready"
    } else if report.healthy {
        "ready"
    } else {
        "degraded"
    };
    let code = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, Json(Readiness { status, ready, report })).into_response()
}

async fn metrics(State(st): State<Arc<AppState>>) -> Response {
    let snapshot = st.collector.collect().await;
    match fwdb::render_metrics(&snapshot) {
        Ok(text) => ([(header::CONTENT_TYPE, fwdb::METRICS_CONTENT_TYPE)], text).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}

async fn status_page(State(st): State<Arc<AppState>>) -> Html<String> {
    let (health, snapshot) = futures_join(st.health(), st.collector.collect()).await;
    Html(page::render(&health, &snapshot, &st.samples(), st.collector.config().server.replicas_required))
}

async fn futures_join<A, B>(
    a: impl std::future::Future<Output = A>,
    b: impl std::future::Future<Output = B>,
) -> (A, B) {
    tokio::join!(a, b)
}
