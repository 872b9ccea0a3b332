//! A small service using both stores through fwdb: the first thing a new
//! service author should read.
//!
//! - `GET  /designs/{id}`: the design from MongoDB, with its avatar from PostgreSQL.
//! - `POST /designs`: creates a design (validated in Rust; its avatar must exist
//!   in PostgreSQL and be the same user's).
//! - `PUT  /designs/{id}/name`: `{"expectedVersion": 1, "changedBy": "...", "name": "..."}`;
//!   a stale version is 409.
//!
//! Configuration is fwdb's (fwdb.toml, FWDB__* variables). The handles are
//! created ONCE at start-up and shared: one MongoDB client, one PostgreSQL
//! cluster (pools and routing) per process.
//!
//! Run: `cargo run -p design-service` (listens on $DESIGN_SERVICE_LISTEN, default
//! 127.0.0.1:8080; port 0 picks a free one). It prints `listening on http://ADDR`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use fwdb::{AvatarRepo, DesignPatch, DesignRepo, ErrorKind, Mongo, NewDesign, PgCluster, Repository};
use serde_json::{json, Value};
use std::io::Write;
use std::sync::Arc;

/// What every handler shares: created once in `main`.
struct AppState {
    mongo: Mongo,
    pg: PgCluster,
    designs: DesignRepo,
    avatars: AvatarRepo,
}

type Shared = Arc<AppState>;

/// fwdb's errors as HTTP answers: the kind decides the status; the message names the field.
struct ApiError(fwdb::Error);

impl From<fwdb::Error> for ApiError {
    fn from(e: fwdb::Error) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match self.0.kind() {
            ErrorKind::Validation => StatusCode::BAD_REQUEST,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::Timeout | ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        (status, Json(json!({ "error": self.0.to_string() }))).into_response()
    }
}

async fn get_design(State(s): State<Shared>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let id = fwdb::parse_design_id(&id)?;
    let design = s.designs.get(&s.mongo, id).await?;
    let avatar = match design.avatar_id {
        Some(a) => s.avatars.find_by_id(&s.pg, a).await?,
        None => None,
    };
    Ok(Json(json!({ "design": design, "avatar": avatar })))
}

async fn create_design(State(s): State<Shared>, Json(body): Json<Value>) -> Result<(StatusCode, Json<Value>), ApiError> {
    let new = NewDesign::from_json(body)?;
    let design = s.designs.create_checked(&s.mongo, &s.pg, &new).await?;
    Ok((StatusCode::CREATED, Json(json!({ "design": design }))))
}

async fn rename(State(s): State<Shared>, Path(id): Path<String>, Json(body): Json<Value>) -> Result<Json<Value>, ApiError> {
    let id = fwdb::parse_design_id(&id)?;
    let patch = DesignPatch::from_json(body)?;
    let design = s.designs.update(&s.mongo, id, &patch).await?;
    Ok(Json(json!({ "design": design })))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = fwdb::Config::load(fwdb::LoadOptions::default())?;
    let state = Arc::new(AppState {
        mongo: Mongo::connect(&config).await?,
        pg: PgCluster::connect(&config.postgres).await?,
        designs: DesignRepo::new(),
        avatars: AvatarRepo::new(),
    });
    let app = Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/designs", post(create_design))
        .route("/designs/{id}", get(get_design))
        .route("/designs/{id}/name", put(rename))
        .with_state(state);
    let addr = std::env::var("DESIGN_SERVICE_LISTEN").unwrap_or_else(|_| "127.0.0.1:8080".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    std::io::stdout().flush()?;
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
