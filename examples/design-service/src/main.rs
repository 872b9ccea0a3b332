//! A small service using both stores through fwdb: the first thing a new
//! service author should read.
//!
//! - `GET  /designs/{id}`: the design from MongoDB, with its avatar from PostgreSQL.
//! - `POST /designs`: creates a design (validated in Rust; its avatar must exist
//!   in PostgreSQL and be the same user's).
//! - `PUT  /designs/{id}/name`: `{"expectedVersion": 1, "changedBy": "...", "name": "..."}`;
//!   a stale version is 409.
//!
//! Every body is JSON in camelCase; every error is
//! `{"error": {"code": "...", "message": "..."}}` (see `api.rs`), malformed
//! JSON and unknown routes included.
//!
//! Configuration is fwdb's (fwdb.toml, FWDB__* variables). The handles are
//! created ONCE at start-up and shared: one MongoDB client, one PostgreSQL
//! cluster (pools and routing) per process.
//!
//! SIGTERM (what orchestrators send) and Ctrl-C stop it gracefully: it stops
//! accepting connections, lets the requests in flight finish (for up to
//! `server.drain_timeout`), closes its pools and exits 0.
//!
//! Run: `cargo run -p design-service` (listens on $DESIGN_SERVICE_LISTEN, default
//! 127.0.0.1:8080; port 0 picks a free one). It prints `listening on http://ADDR`.

mod api;

use api::{ApiError, DesignBody, DesignId, DesignWithAvatar, JsonBody};
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use fwdb::{AvatarRepo, DesignPatch, DesignRepo, Mongo, NewDesign, PgCluster, Repository};
use serde_json::{json, Value};
use std::io::Write;
use std::sync::Arc;
use tokio::signal::unix::{signal, SignalKind};

/// What every handler shares: created once in `main`.
struct AppState {
    mongo: Mongo,
    pg: PgCluster,
    designs: DesignRepo,
    avatars: AvatarRepo,
}

type Shared = Arc<AppState>;

async fn get_design(State(s): State<Shared>, DesignId(id): DesignId) -> Result<Json<DesignWithAvatar>, ApiError> {
    let design = s.designs.get(&s.mongo, id).await?;
    let avatar = match design.avatar_id {
        Some(a) => s.avatars.find_by_id(&s.pg, a).await?,
        None => None,
    };
    Ok(Json(DesignWithAvatar { design, avatar: avatar.map(Into::into) }))
}

async fn create_design(
    State(s): State<Shared>,
    JsonBody(body): JsonBody,
) -> Result<(StatusCode, Json<DesignBody>), ApiError> {
    let new = NewDesign::from_json(body)?;
    let design = s.designs.create_checked(&s.mongo, &s.pg, &new).await?;
    Ok((StatusCode::CREATED, Json(DesignBody { design })))
}

async fn rename(
    State(s): State<Shared>,
    DesignId(id): DesignId,
    JsonBody(body): JsonBody,
) -> Result<Json<DesignBody>, ApiError> {
    let patch = DesignPatch::from_json(body)?;
    let design = s.designs.update(&s.mongo, id, &patch).await?;
    Ok(Json(DesignBody { design }))
}

async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

fn router(state: Shared) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/designs", post(create_design))
        .route("/designs/{id}", get(get_design))
        .route("/designs/{id}/name", put(rename))
        .fallback(api::no_route)
        .method_not_allowed_fallback(api::wrong_method)
        .with_state(state)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Installed first: from here on SIGTERM starts a drain instead of killing the process.
    let mut term = signal(SignalKind::terminate())?;
    let config = fwdb::Config::load(fwdb::LoadOptions::default())?;
    let state = Arc::new(AppState {
        mongo: Mongo::connect(&config).await?,
        pg: PgCluster::connect(&config.postgres).await?,
        designs: DesignRepo::new(),
        avatars: AvatarRepo::new(),
    });
    let addr = std::env::var("DESIGN_SERVICE_LISTEN").unwrap_or_else(|_| "127.0.0.1:8080".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    std::io::stdout().flush()?;

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let app = router(state.clone());
    let mut server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop_rx.await;
            })
            .await
    });
    let why = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = tokio::signal::ctrl_c() => "Ctrl-C",
        ended = &mut server => return Err(format!("the HTTP server stopped on its own: {ended:?}").into()),
    };
    let limit = config.server.drain_timeout;
    eprintln!("{why} received: finishing the requests in flight (up to {limit:?}, server.drain_timeout)");
    let _ = stop_tx.send(());
    let drained = tokio::time::timeout(limit, &mut server).await;
    if drained.is_err() {
        server.abort();
        eprintln!("warning: requests still running after {limit:?} were cut");
    }
    state.pg.close();
    // After a full drain nothing holds a cursor or session: nothing to wait for.
    state.mongo.client().clone().shutdown().immediate(drained.is_err()).await;
    match drained {
        Ok(Ok(Err(e))) => Err(e.into()),
        Ok(Err(e)) => Err(e.into()),
        Ok(Ok(Ok(()))) | Err(_) => {
            eprintln!("stopped");
            Ok(())
        }
    }
}
