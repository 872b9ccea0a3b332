//! Health checks (architecture 10.2), done properly: every server is
//! checked at once, each with its own timeout, and the real duration of each
//! check is measured (10.2 records a timestamp instead). A hung server
//! (SIGSTOP) answers "unhealthy" when its timeout passes, never hangs the probe.

use crate::config::Config;
use crate::postgres::{connect, ConnectTarget};
use serde::Serialize;
use std::time::{Duration, Instant};

/// What a server is to us.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Primary,
    Replica,
    Mongodb,
}

/// The outcome of one server's check.
#[derive(Debug, Clone, Serialize)]
pub struct ServerHealth {
    pub name: String,
    pub role: Role,
    pub healthy: bool,
    pub response_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What the server said it is (version), when healthy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Every server's health; healthy when all of them are.
#[derive(Debug, Clone, Serialize)]
pub struct HealthReport {
    pub healthy: bool,
    pub servers: Vec<ServerHealth>,
}

impl HealthReport {
    /// Whether the servers that must be up are: the primary and MongoDB, and
    /// the replicas too when `replicas_required` (reads fall back to the
    /// primary, so a replica down degrades, not breaks).
    pub fn ready(&self, replicas_required: bool) -> bool {
        self.servers.iter().all(|s| s.healthy || (s.role == Role::Replica && !replicas_required))
    }
}

/// Like [`check`], on the pools of a running cluster and a MongoDB client
/// (what `/readyz` uses: no connection set up per probe). Each server within `timeout`.
pub async fn check_cluster(
    cluster: &crate::PgCluster,
    mongo: &mongodb::Client,
    database: &str,
    timeout: Duration,
) -> HealthReport {
    use crate::postgres::Route;
    let status = cluster.status();
    let mut checks = Vec::new();
    checks.push(pool_check(cluster.clone(), "primary".into(), Role::Primary, Route::Primary, timeout));
    for (i, r) in status.replicas.iter().enumerate() {
        checks.push(pool_check(
            cluster.clone(),
            format!("replica {i} ({})", r.host),
            Role::Replica,
            Route::Replica(i),
            timeout,
        ));
    }
    let db = mongo.database(database);
    let mongo_check = finish("mongodb".into(), Role::Mongodb, timeout, async move {
        let hello = db.run_command(mongodb::bson::doc! { "hello": 1 }).await?;
        let writable = hello.get_bool("isWritablePrimary").unwrap_or(false);
        let set = hello.get_str("setName").unwrap_or("standalone").to_string();
        Ok::<_, crate::Error>((format!("replica set {set}"), (!writable).then_some("no writable primary")))
    });
    let (mut servers, mongo) = futures::join!(futures::future::join_all(checks), mongo_check);
    servers.push(mongo);
    HealthReport { healthy: servers.iter().all(|s| s.healthy), servers }
}

async fn pool_check(
    cluster: crate::PgCluster,
    name: String,
    role: Role,
    route: crate::postgres::Route,
    timeout: Duration,
) -> ServerHealth {
    let work = async move {
        let client = cluster.checkout(route).await?;
        server_answers_as(&client, role).await
    };
    finish(name, role, timeout, work).await
}

/// The server's version, and what is wrong if it is not in the role we expect
/// (a primary in recovery, a replica promoted behind our back).
async fn server_answers_as(
    client: &tokio_postgres::Client,
    role: Role,
) -> crate::Result<(String, Option<&'static str>)> {
    let row = client.query_one("select current_setting('server_version'), pg_is_in_recovery()", &[]).await?;
    let (version, in_recovery): (String, bool) = (row.get(0), row.get(1));
    let wrong_role = match role {
        Role::Primary if in_recovery => Some("the primary is in recovery (read-only)"),
        Role::Replica if !in_recovery => Some("the replica is not in recovery (promoted?)"),
        _ => None,
    };
    Ok((format!("PostgreSQL {version}"), wrong_role))
}

/// Checks the primary, each replica and MongoDB, concurrently, each within `timeout`.
pub async fn check(config: &Config, timeout: Duration) -> HealthReport {
    let mut checks = Vec::new();
    checks.push(tokio::spawn(pg(config.clone(), "primary".into(), Role::Primary, ConnectTarget::Primary, timeout)));
    for (i, host) in config.postgres.replicas.iter().enumerate() {
        let name = format!("replica {i} ({host})");
        checks.push(tokio::spawn(pg(config.clone(), name, Role::Replica, ConnectTarget::Replica(i), timeout)));
    }
    checks.push(tokio::spawn(mongo(config.clone(), timeout)));
    let mut servers = Vec::new();
    for c in checks {
        match c.await {
            Ok(s) => servers.push(s),
            Err(e) => servers.push(ServerHealth {
                name: "check".into(),
                role: Role::Primary,
                healthy: false,
                response_ms: 0.0,
                error: Some(format!("the check itself failed: {e}")),
                detail: None,
            }),
        }
    }
    HealthReport { healthy: servers.iter().all(|s| s.healthy), servers }
}

async fn pg(config: Config, name: String, role: Role, target: ConnectTarget, timeout: Duration) -> ServerHealth {
    let work = async {
        let client = connect(&config.postgres, target).await?;
        server_answers_as(&client, role).await
    };
    finish(name, role, timeout, work).await
}

async fn mongo(config: Config, timeout: Duration) -> ServerHealth {
    let work = async {
        let db = crate::mongo::mongo_database(&config.mongo).await?;
        let hello = db.run_command(mongodb::bson::doc! { "hello": 1 }).await?;
        let writable = hello.get_bool("isWritablePrimary").unwrap_or(false);
        let set = hello.get_str("setName").unwrap_or("standalone").to_string();
        Ok::<_, crate::Error>((format!("replica set {set}"), (!writable).then_some("no writable primary")))
    };
    finish("mongodb".into(), Role::Mongodb, timeout, work).await
}

async fn finish<F>(name: String, role: Role, timeout: Duration, work: F) -> ServerHealth
where
    F: std::future::Future<Output = crate::Result<(String, Option<&'static str>)>>,
{
    let start = Instant::now();
    let outcome = tokio::time::timeout(timeout, work).await;
    let response_ms = start.elapsed().as_secs_f64() * 1000.0;
    let (healthy, error, detail) = match outcome {
        Ok(Ok((detail, None))) => (true, None, Some(detail)),
        Ok(Ok((detail, Some(problem)))) => (false, Some(problem.to_string()), Some(detail)),
        Ok(Err(e)) => (false, Some(e.to_string()), None),
        Err(_) => (false, Some(format!("no answer within {} ms", timeout.as_millis())), None),
    };
    ServerHealth { name, role, healthy, response_ms, error, detail }
}
