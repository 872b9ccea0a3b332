//! `fwdb-bench postgres`: the benchmark of issue 4 ("Benchmark, not a timed
//! test"). Starts a private local stack, applies the schema, and measures,
//! interleaved round by round (every contender once per round, in turn, the
//! order turning by one each round; ratios are medians of per-round ratios):
//!
//! - point read by primary key, a filtered list of 20 rows, a single insert
//!   (shared.users) at 1, 16 and 64 concurrent tasks, through fwdb's
//!   repository (`UserRepo` on a `PgCluster`, Strong and, with replicas,
//!   Eventual reads; Strong again with `postgres.pool.multiplex = 0`), raw
//!   tokio-postgres with prepared statements (one client per task, and the
//!   tasks sharing 8 clients), sqlx (`PgPool`) and SeaORM;
//! - a bulk insert of 10,000 rows through each, and through COPY FROM STDIN
//!   (tokio-postgres) and `psql \copy`;
//! - pgbench -S -M prepared at the same client counts (the server's ceiling);
//! - a pool checkout, uncontended and contended: bare deadpool-postgres against
//!   `PgCluster::checkout`.
//!
//! Every contender talks plain TCP with a SCRAM password to the same servers.
//! Usage: `cargo run --release -p fwdb-bench -- postgres [--rounds N] [--secs S] [--replicas N]`;
//! `--paired` (paired.rs) measures only the 0.95 target's contenders, in short
//! back-to-back slices, with an interval for each cell; `--pin` (pin.rs);
//! `mongo` (issue 5) and `backup` (issue 8) are in mongo.rs and backup.rs.

use fwdb::{Consistency, NewUser, PgCluster, Repository, Route, User, UserRepo};
use fwdb_testkit::{Node, Stack, StackOptions};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

mod backup;
mod cpu;
mod mongo;
mod paired;
mod pin;
mod pool;
mod raw;

use raw::{raw_user, sql_insert, sql_list, sql_point};

type BoxErr = Box<dyn std::error::Error + Send + Sync>;
type Res<T> = std::result::Result<T, BoxErr>;

const SEED_ROWS: usize = 10_000;
const BULK_ROWS: usize = 10_000;
const CONCURRENCY: [usize; 3] = [1, 16, 64];
const POOL: usize = 64;
/// Clients the tasks of `Who::RawShared` share: fwdb's default `postgres.pool.multiplex`.
const RAW_SHARED: usize = 8;

mod users {
    //! shared.users as a SeaORM entity.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(schema_name = "shared", table_name = "users")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub email: String,
        pub first_name: String,
        pub last_name: String,
        pub role: String,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
        pub deleted_at: Option<DateTimeUtc>,
        pub created_by: Option<Uuid>,
        pub updated_by: Option<Uuid>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

#[derive(sqlx::FromRow, Debug)]
#[allow(dead_code)]
struct SqlxUser {
    id: Uuid,
    email: String,
    first_name: String,
    last_name: String,
    role: String,
    created_at: chrono::DateTime<chrono::Utc>,
    updated_at: chrono::DateTime<chrono::Utc>,
    deleted_at: Option<chrono::DateTime<chrono::Utc>>,
    created_by: Option<Uuid>,
    updated_by: Option<Uuid>,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Who {
    Raw,
    /// Raw tokio-postgres, the tasks sharing [`RAW_SHARED`] clients (pipelined).
    RawShared,
    /// Raw tokio-postgres through a deadpool of 64 clients, deadpool's default FIFO queue (as fwdb's pools).
    PoolFifo,
    /// The same with a LIFO queue.
    PoolLifo,
    FwdbStrong,
    /// fwdb Strong with `postgres.pool.multiplex = 0`: every read checks a connection out.
    FwdbOwn,
    FwdbEventual,
    Sqlx,
    SeaOrm,
}

impl Who {
    fn name(self) -> &'static str {
        match self {
            Who::Raw => "raw tokio-postgres",
            Who::RawShared => "raw tokio-postgres, tasks sharing 8 clients",
            Who::PoolFifo => "raw via deadpool (FIFO, default)",
            Who::PoolLifo => "raw via deadpool (LIFO)",
            Who::FwdbStrong => "fwdb repo (Strong)",
            Who::FwdbOwn => "fwdb repo (Strong, multiplex 0)",
            Who::FwdbEventual => "fwdb repo (Eventual)",
            Who::Sqlx => "sqlx",
            Who::SeaOrm => "SeaORM",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Op {
    Point,
    List,
    Insert,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Point => "point read by id",
            Op::List => "filtered list of 20",
            Op::Insert => "single insert",
        }
    }
}

struct RawClient {
    c: tokio_postgres::Client,
    point: tokio_postgres::Statement,
    list: tokio_postgres::Statement,
    insert: tokio_postgres::Statement,
    bulk: tokio_postgres::Statement,
}

struct Ctx {
    cluster: PgCluster,
    /// The same servers with `postgres.pool.multiplex = 0`.
    own: PgCluster,
    strong: UserRepo,
    eventual: UserRepo,
    raw: Vec<RawClient>,
    sqlx: sqlx::PgPool,
    dp_fifo: deadpool_postgres::Pool,
    dp_lifo: deadpool_postgres::Pool,
    orm: sea_orm::DatabaseConnection,
    ids: Vec<Uuid>,
    seq: AtomicU64,
    run: String,
}

impl Ctx {
    fn email(&self) -> String {
        format!("b{}-{}@bench.example", self.run, self.seq.fetch_add(1, Ordering::Relaxed))
    }
}

const SQL_BULK: &str = "INSERT INTO shared.users (id, email, first_name, last_name, role, created_by, updated_by) \
    SELECT unnest($1::uuid[]), unnest($2::text[]), unnest($3::text[]), unnest($4::text[]), unnest($5::text[]), $6::uuid, $7::uuid";

/// One call of `op` by `who`, task `task`; `rng` picks the id.
async fn once(
    ctx: &Ctx,
    who: Who,
    op: Op,
    task: usize,
    rng: &mut u64,
    list_q: &fwdb::Query<User>,
    list_e: &fwdb::Query<User>,
) -> Res<()> {
    *rng ^= *rng << 13;
    *rng ^= *rng >> 7;
    *rng ^= *rng << 17;
    let id = ctx.ids[(*rng % ctx.ids.len() as u64) as usize];
    // Raw's statements, pipelined by tasks that share clients as fwdb's reads share connections.
    let task = if who == Who::RawShared { task % RAW_SHARED } else { task };
    match (who, op) {
        (Who::Raw | Who::RawShared, Op::Point) => {
            let r = &ctx.raw[task];
            let rows = r.c.query(&r.point, &[&id]).await?;
            let u = raw_user(rows.first().ok_or("no row")?)?;
            std::hint::black_box(u);
        }
        (Who::Raw | Who::RawShared, Op::List) => {
            let r = &ctx.raw[task];
            let rows = r.c.query(&r.list, &[&"user"]).await?;
            let v = rows.iter().map(raw_user).collect::<Res<Vec<_>>>()?;
            assert_eq!(v.len(), 20);
        }
        (Who::Raw | Who::RawShared, Op::Insert) => {
            let r = &ctx.raw[task];
            let none: Option<Uuid> = None;
            let rows = r.c.query(&r.insert, &[&ctx.email(), &"Ada", &"Lovelace", &"user", &none, &none]).await?;
            std::hint::black_box(raw_user(rows.first().ok_or("no row")?)?);
        }
        (Who::PoolFifo | Who::PoolLifo, _) => {
            let c = if who == Who::PoolFifo { ctx.dp_fifo.get().await? } else { ctx.dp_lifo.get().await? };
            match op {
                Op::Point => {
                    let st = c.prepare_cached(&sql_point()).await?;
                    let rows = c.query(&st, &[&id]).await?;
                    std::hint::black_box(raw_user(rows.first().ok_or("no row")?)?);
                }
                Op::List => {
                    let st = c.prepare_cached(&sql_list()).await?;
                    let rows = c.query(&st, &[&"user"]).await?;
                    let v = rows.iter().map(raw_user).collect::<Res<Vec<_>>>()?;
                    assert_eq!(v.len(), 20);
                }
                Op::Insert => {
                    let st = c.prepare_cached(&sql_insert()).await?;
                    let none: Option<Uuid> = None;
                    let rows = c.query(&st, &[&ctx.email(), &"Ada", &"Lovelace", &"user", &none, &none]).await?;
                    std::hint::black_box(raw_user(rows.first().ok_or("no row")?)?);
                }
            }
        }
        (Who::FwdbOwn, Op::Point) => {
            let u = ctx.strong.find_by_id(&ctx.own, id).await?.ok_or("no row")?;
            std::hint::black_box(u);
        }
        (Who::FwdbOwn, Op::List) => {
            let v = ctx.strong.find_all(&ctx.own, list_q).await?;
            assert_eq!(v.len(), 20);
        }
        (Who::FwdbOwn, Op::Insert) => {
            let u = ctx.strong.create(&ctx.own, &NewUser::new(ctx.email(), "Ada", "Lovelace")).await?;
            std::hint::black_box(u);
        }
        (Who::FwdbStrong | Who::FwdbEventual, Op::Point) => {
            let repo = if who == Who::FwdbStrong { &ctx.strong } else { &ctx.eventual };
            let u = repo.find_by_id(&ctx.cluster, id).await?.ok_or("no row")?;
            std::hint::black_box(u);
        }
        (Who::FwdbStrong | Who::FwdbEventual, Op::List) => {
            let (repo, q) = if who == Who::FwdbStrong { (&ctx.strong, list_q) } else { (&ctx.eventual, list_e) };
            let v = repo.find_all(&ctx.cluster, q).await?;
            assert_eq!(v.len(), 20);
        }
        (Who::FwdbStrong | Who::FwdbEventual, Op::Insert) => {
            let u = ctx.strong.create(&ctx.cluster, &NewUser::new(ctx.email(), "Ada", "Lovelace")).await?;
            std::hint::black_box(u);
        }
        (Who::Sqlx, Op::Point) => {
            let u: Option<SqlxUser> = sqlx::query_as(&sql_point()).bind(id).fetch_optional(&ctx.sqlx).await?;
            std::hint::black_box(u.ok_or("no row")?);
        }
        (Who::Sqlx, Op::List) => {
            let v: Vec<SqlxUser> = sqlx::query_as(&sql_list()).bind("user").fetch_all(&ctx.sqlx).await?;
            assert_eq!(v.len(), 20);
        }
        (Who::Sqlx, Op::Insert) => {
            let none: Option<Uuid> = None;
            let u: SqlxUser = sqlx::query_as(&sql_insert())
                .bind(ctx.email())
                .bind("Ada")
                .bind("Lovelace")
                .bind("user")
                .bind(none)
                .bind(none)
                .fetch_one(&ctx.sqlx)
                .await?;
            std::hint::black_box(u);
        }
        (Who::SeaOrm, Op::Point) => {
            use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
            let u = users::Entity::find_by_id(id).filter(users::Column::DeletedAt.is_null()).one(&ctx.orm).await?;
            std::hint::black_box(u.ok_or("no row")?);
        }
        (Who::SeaOrm, Op::List) => {
            use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
            let v = users::Entity::find()
                .filter(users::Column::Role.eq("user"))
                .filter(users::Column::DeletedAt.is_null())
                .order_by_asc(users::Column::Id)
                .limit(20)
                .all(&ctx.orm)
                .await?;
            assert_eq!(v.len(), 20);
        }
        (Who::SeaOrm, Op::Insert) => {
            use sea_orm::{ActiveModelTrait, ActiveValue::Set};
            let m = users::ActiveModel {
                id: Set(Uuid::new_v4()),
                email: Set(ctx.email()),
                first_name: Set("Ada".into()),
                last_name: Set("Lovelace".into()),
                role: Set("user".into()),
                ..Default::default()
            };
            std::hint::black_box(m.insert(&ctx.orm).await?);
        }
    }
    Ok(())
}

/// Statement caches and pools, not counted.
async fn warm_up(ctx: &Arc<Ctx>, who: &[Who]) -> Res<()> {
    eprintln!("warm-up ...");
    for op in [Op::Point, Op::List, Op::Insert] {
        for &w in who {
            measure(ctx, w, op, POOL, 0.3).await?;
        }
    }
    Ok(())
}

/// Operations per second of `conc` tasks calling `op` through `who` for `secs`.
async fn measure(ctx: &Arc<Ctx>, who: Who, op: Op, conc: usize, secs: f64) -> Res<f64> {
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(secs);
    let handles: Vec<_> = (0..conc)
        .map(|task| {
            let ctx = ctx.clone();
            tokio::spawn(async move {
                let list_q = ctx.strong.query().filter(User::ROLE.eq("user")).limit(20);
                let list_e = ctx.eventual.query().filter(User::ROLE.eq("user")).limit(20);
                let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ ((task as u64 + 1) * 0x1234_5678_9ABC);
                let mut n = 0u64;
                while Instant::now() < deadline {
                    once(&ctx, who, op, task, &mut rng, &list_q, &list_e).await?;
                    n += 1;
                }
                Ok::<u64, BoxErr>(n)
            })
        })
        .collect();
    let mut total = 0;
    for h in handles {
        total += h.await??;
    }
    Ok(total as f64 / start.elapsed().as_secs_f64())
}

struct BulkRows {
    ids: Vec<Uuid>,
    emails: Vec<String>,
    first: Vec<String>,
    last: Vec<String>,
    role: Vec<String>,
}

fn bulk_rows(ctx: &Ctx) -> BulkRows {
    let n = BULK_ROWS;
    BulkRows {
        ids: (0..n).map(|_| Uuid::new_v4()).collect(),
        emails: (0..n).map(|_| ctx.email()).collect(),
        first: (0..n).map(|i| format!("First{i}")).collect(),
        last: (0..n).map(|i| format!("Last{i}")).collect(),
        role: vec!["user".to_string(); n],
    }
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum BulkWho {
    Copy,
    PsqlCopy,
    Raw,
    Fwdb,
    Sqlx,
    SeaOrm,
}

impl BulkWho {
    fn name(self) -> &'static str {
        match self {
            BulkWho::Copy => "COPY FROM STDIN (tokio-postgres, csv)",
            BulkWho::PsqlCopy => "psql \\copy (csv file, incl. process start)",
            BulkWho::Raw => "raw tokio-postgres (unnest, prepared)",
            BulkWho::Fwdb => "fwdb repo create_many",
            BulkWho::Sqlx => "sqlx (unnest)",
            BulkWho::SeaOrm => "SeaORM insert_many",
        }
    }
}

struct PsqlCtx {
    bin: std::path::PathBuf,
    host: String,
    port: u16,
    user: String,
    password: String,
    db: String,
    dir: std::path::PathBuf,
}

/// Seconds to insert 10,000 rows through `who`.
async fn bulk(ctx: &Ctx, who: BulkWho, psql: &PsqlCtx) -> Res<f64> {
    let rows = bulk_rows(ctx);
    let none: Option<Uuid> = None;
    match who {
        BulkWho::Copy => {
            use futures::SinkExt;
            let mut csv = String::with_capacity(BULK_ROWS * 100);
            let start = Instant::now();
            for i in 0..BULK_ROWS {
                csv.push_str(&format!(
                    "{},{},{},{},{}\n",
                    rows.ids[i], rows.emails[i], rows.first[i], rows.last[i], rows.role[i]
                ));
            }
            let c = &ctx.raw[0].c;
            let sink = c
                .copy_in("COPY shared.users (id, email, first_name, last_name, role) FROM STDIN WITH (FORMAT csv)")
                .await?;
            futures::pin_mut!(sink);
            sink.send(bytes::Bytes::from(csv)).await?;
            let n = sink.finish().await?;
            assert_eq!(n as usize, BULK_ROWS);
            Ok(start.elapsed().as_secs_f64())
        }
        BulkWho::PsqlCopy => {
            let file = psql.dir.join("bulk.csv");
            let mut csv = String::with_capacity(BULK_ROWS * 100);
            for i in 0..BULK_ROWS {
                csv.push_str(&format!(
                    "{},{},{},{},{}\n",
                    rows.ids[i], rows.emails[i], rows.first[i], rows.last[i], rows.role[i]
                ));
            }
            std::fs::write(&file, csv)?;
            let start = Instant::now();
            let out = tokio::process::Command::new(psql.bin.join("psql"))
                .args([
                    "-X",
                    "-q",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-h",
                    &psql.host,
                    "-p",
                    &psql.port.to_string(),
                    "-U",
                    &psql.user,
                    "-d",
                    &psql.db,
                ])
                .arg("-c")
                .arg(format!(
                    "\\copy shared.users (id, email, first_name, last_name, role) FROM '{}' WITH (FORMAT csv)",
                    file.display()
                ))
                .env("PGPASSWORD", &psql.password)
                .env("PGSSLMODE", "disable")
                .output()
                .await?;
            let secs = start.elapsed().as_secs_f64();
            if !out.status.success() {
                return Err(format!("psql \\copy failed: {}", String::from_utf8_lossy(&out.stderr)).into());
            }
            Ok(secs)
        }
        BulkWho::Raw => {
            let start = Instant::now();
            let r = &ctx.raw[0];
            let n =
                r.c.execute(&r.bulk, &[&rows.ids, &rows.emails, &rows.first, &rows.last, &rows.role, &none, &none])
                    .await?;
            assert_eq!(n as usize, BULK_ROWS);
            Ok(start.elapsed().as_secs_f64())
        }
        BulkWho::Fwdb => {
            let new: Vec<NewUser> = (0..BULK_ROWS)
                .map(|i| NewUser {
                    email: rows.emails[i].clone(),
                    first_name: rows.first[i].clone(),
                    last_name: rows.last[i].clone(),
                    role: rows.role[i].clone(),
                })
                .collect();
            let start = Instant::now();
            let ids = ctx.strong.create_many(&ctx.cluster, &new).await?;
            assert_eq!(ids.len(), BULK_ROWS);
            Ok(start.elapsed().as_secs_f64())
        }
        BulkWho::Sqlx => {
            let start = Instant::now();
            let res = sqlx::query(SQL_BULK)
                .bind(&rows.ids)
                .bind(&rows.emails)
                .bind(&rows.first)
                .bind(&rows.last)
                .bind(&rows.role)
                .bind(none)
                .bind(none)
                .execute(&ctx.sqlx)
                .await?;
            assert_eq!(res.rows_affected() as usize, BULK_ROWS);
            Ok(start.elapsed().as_secs_f64())
        }
        BulkWho::SeaOrm => {
            use sea_orm::{ActiveValue::Set, EntityTrait};
            let models: Vec<users::ActiveModel> = (0..BULK_ROWS)
                .map(|i| users::ActiveModel {
                    id: Set(rows.ids[i]),
                    email: Set(rows.emails[i].clone()),
                    first_name: Set(rows.first[i].clone()),
                    last_name: Set(rows.last[i].clone()),
                    role: Set(rows.role[i].clone()),
                    ..Default::default()
                })
                .collect();
            let start = Instant::now();
            users::Entity::insert_many(models).exec(&ctx.orm).await?;
            Ok(start.elapsed().as_secs_f64())
        }
    }
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    if s.is_empty() {
        return f64::NAN;
    }
    let m = s.len() / 2;
    if s.len() % 2 == 1 {
        s[m]
    } else {
        (s[m - 1] + s[m]) / 2.0
    }
}

/// The median of round-by-round ratios: each round's pair ran minutes apart
/// at most, under the same load, so this ratio moves less than the ratio of
/// medians when the machine's load changes between rounds.
fn paired_ratio(v: &[f64], base: &[f64]) -> f64 {
    let ratios: Vec<f64> = v.iter().zip(base).map(|(x, b)| x / b).collect();
    median(&ratios)
}

fn uptime() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Raises max_connections on every server (replicas first: a standby must
/// allow at least as many as its primary) and restarts them.
fn raise_max_connections(stack: &Stack, n: usize) -> Res<()> {
    let nodes: Vec<Node> = (0..stack.info().replicas.len()).map(Node::Replica).chain([Node::Primary]).collect();
    for node in nodes {
        stack.psql(node, "postgres", &format!("ALTER SYSTEM SET max_connections = {n}"))?;
        stack.stop_node(node)?;
        stack.start_node(node)?;
    }
    stack.wait_for_replicas()?;
    Ok(())
}

async fn pgbench(psql: &PsqlCtx, db: &str, clients: usize, secs: f64) -> Res<f64> {
    let out = tokio::process::Command::new(psql.bin.join("pgbench"))
        .args(["-n", "-S", "-M", "prepared", "-h", &psql.host, "-p", &psql.port.to_string(), "-U", &psql.user])
        .args([
            "-c",
            &clients.to_string(),
            "-j",
            &clients.min(2).to_string(),
            "-T",
            &(secs.ceil() as u64).max(1).to_string(),
            db,
        ])
        .env("PGPASSWORD", &psql.password)
        .env("PGSSLMODE", "disable")
        .output()
        .await?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!("pgbench failed: {}{}", text, String::from_utf8_lossy(&out.stderr)).into());
    }
    text.lines()
        .find_map(|l| l.strip_prefix("tps = ").and_then(|r| r.split_whitespace().next()).and_then(|n| n.parse().ok()))
        .ok_or_else(|| format!("no tps in pgbench output: {text}").into())
}

/// Nanoseconds per checkout (get + return), `tasks` tasks sharing `total` checkouts.
async fn checkout_cost(
    fwdb: Option<PgCluster>,
    dp: Option<deadpool_postgres::Pool>,
    tasks: usize,
    total: usize,
) -> Res<f64> {
    let per = total / tasks;
    let start = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let (f, d) = (fwdb.clone(), dp.clone());
            tokio::spawn(async move {
                for _ in 0..per {
                    if let Some(f) = &f {
                        let c = f.checkout(Route::Primary).await?;
                        drop(std::hint::black_box(c));
                    } else if let Some(d) = &d {
                        let c = d.get().await?;
                        drop(std::hint::black_box(c));
                    }
                }
                Ok::<(), BoxErr>(())
            })
        })
        .collect();
    for h in handles {
        h.await??;
    }
    Ok(start.elapsed().as_nanos() as f64 / (per * tasks) as f64)
}

struct Args {
    rounds: usize,
    secs: Option<f64>,
    replicas: usize,
    /// Only the 0.95 target's contenders, in short back-to-back slices (paired.rs).
    paired: bool,
    /// Servers on one CPU, the client on the other (pin.rs).
    pin: bool,
    /// `postgres.pool.multiplex` of fwdb's cluster (the other fwdb contender has 0).
    multiplex: u32,
    /// The task counts of `--paired` (all of [`CONCURRENCY`] unless `--tasks`).
    tasks: Vec<usize>,
}

impl Args {
    /// Seconds per cell; with `--paired`, per slice (two slices per contender and round).
    fn secs(&self) -> f64 {
        self.secs.unwrap_or(if self.paired { 0.4 } else { 1.0 })
    }
}

const USAGE: &str = "usage: fwdb-bench postgres [--rounds N (3)] [--secs S per cell (1.0)] [--replicas N (2)]
                           [--paired: raw, bare LIFO pool and fwdb Strong (plain, multiplexed) only, slices of --secs (0.4) ordered ABCDDCBA]
                           [--pin: the servers on CPU 1, this client on CPU 0]
                           [--tasks 1,16,64: the task counts of --paired]
                           [--multiplex N (8, the default): postgres.pool.multiplex of fwdb's cluster; \"multiplex 0\" has 0]
       fwdb-bench mongo [--rounds N (11)] [--ops N (200)]
       fwdb-bench backup [--rows N (1000000)] [--level L] [--rounds N (1)]
       fwdb-bench pool [--checkouts N (64000)]   (bb8 too with --features fwdb/bb8,fwdb/bb8-postgres)
(each subcommand takes --help)";

fn args() -> Res<Args> {
    let mut a = Args {
        rounds: 3,
        secs: None,
        replicas: 2,
        paired: false,
        pin: false,
        multiplex: 8,
        tasks: CONCURRENCY.to_vec(),
    };
    let mut it = std::env::args().skip(1);
    let mut what = None;
    while let Some(x) = it.next() {
        match x.as_str() {
            "--rounds" => a.rounds = it.next().ok_or("--rounds N")?.parse()?,
            "--secs" => a.secs = Some(it.next().ok_or("--secs S")?.parse()?),
            "--paired" => a.paired = true,
            "--pin" => a.pin = true,
            "--multiplex" => a.multiplex = it.next().ok_or("--multiplex N")?.parse()?,
            "--tasks" => {
                let list = it.next().ok_or("--tasks N[,N...]")?;
                a.tasks = list
                    .split(',')
                    .map(|t| t.trim().parse())
                    .collect::<Result<_, _>>()
                    .map_err(|e| format!("--tasks {list}: {e}"))?;
            }
            "--replicas" => a.replicas = it.next().ok_or("--replicas N")?.parse()?,
            "postgres" => what = Some(x),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    if what.is_none() {
        return Err(USAGE.into());
    }
    Ok(a)
}

fn main() -> Res<()> {
    if std::env::args().nth(1).as_deref() == Some("mongo") {
        return mongo::main(std::env::args().skip(2).collect());
    }
    if std::env::args().nth(1).as_deref() == Some("pool") {
        return pool::main(std::env::args().skip(2).collect());
    }
    if std::env::args().nth(1).as_deref() == Some("backup") {
        return backup::main(std::env::args().skip(2));
    }
    let a = args()?;
    eprintln!("load before start: {}", uptime());
    let t0 = Instant::now();
    if a.pin {
        // Children inherit the mask: every server started from here on.
        pin::this_thread_to(pin::SERVER_CPU)?;
    }
    let stack = Stack::start(StackOptions { replicas: a.replicas, mongo: false, ..Default::default() })?;
    eprintln!("stack up in {:.1} s: {}", t0.elapsed().as_secs_f64(), stack.summary());
    let res = (|| -> Res<()> {
        raise_max_connections(&stack, 800)?;
        let db = stack.create_database()?;
        let scratch = stack.create_database()?;
        let mut rt = tokio::runtime::Builder::new_multi_thread();
        if a.pin {
            // The servers (restarted above) stay on theirs; the runtime's
            // threads inherit this one.
            pin::this_thread_to(pin::CLIENT_CPU)?;
            rt.worker_threads(1);
        }
        let rt = rt.enable_all().build()?;
        rt.block_on(run(&stack, &db, &scratch, &a))
    })();
    let _ = stack.stop();
    res
}

/// The same transport for every contender: plain TCP, SCRAM password, no TLS.
pub(crate) fn plain_tcp(cfg: &mut fwdb::Config) {
    cfg.postgres.tls.mode = fwdb::SslMode::Disable;
    cfg.postgres.tls.ca_file = None;
    cfg.postgres.tls.cert_file = None;
    cfg.postgres.tls.key_file = None;
}

async fn run(stack: &Stack, db: &str, scratch: &str, a: &Args) -> Res<()> {
    let info = stack.info();
    let pool = POOL.to_string();
    let overrides = [("FWDB__POSTGRES__POOL__MIN_SIZE", pool.as_str()), ("FWDB__POSTGRES__POOL__MAX_SIZE", "100")];
    let mut cfg = info.config(db, db, &overrides)?;
    plain_tcp(&mut cfg);
    // Schema.
    let lock = fwdb::connect(&cfg.postgres, fwdb::ConnectTarget::Primary).await?;
    let conn = fwdb::connect(&cfg.postgres, fwdb::ConnectTarget::Primary).await?;
    let set = fwdb::MigrationSource::Embedded.load(fwdb::Store::Postgres)?;
    fwdb::Migrator::postgres(&lock, &conn, &set)?.up(&Default::default()).await?;
    drop((lock, conn));

    let (host, port) = (info.host.clone(), info.primary.port);
    let mut pgc = tokio_postgres::Config::new();
    pgc.host(&host).port(port).user(&info.app_user).password(&info.app_password).dbname(db);
    pgc.ssl_mode(tokio_postgres::config::SslMode::Disable);

    // Raw clients, one per task.
    let mut raw = Vec::new();
    for _ in 0..POOL {
        let (c, connection) = pgc.connect(tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        let point = c.prepare(&sql_point()).await?;
        let list = c.prepare(&sql_list()).await?;
        let insert = c.prepare(&sql_insert()).await?;
        let bulk = c.prepare(SQL_BULK).await?;
        raw.push(RawClient { c, point, list, insert, bulk });
    }
    // Seed.
    let seed_ids: Vec<Uuid> = (0..SEED_ROWS).map(|_| Uuid::new_v4()).collect();
    let emails: Vec<String> = (0..SEED_ROWS).map(|i| format!("seed{i}@bench.example")).collect();
    let firsts: Vec<String> = (0..SEED_ROWS).map(|i| format!("First{i}")).collect();
    let lasts: Vec<String> = (0..SEED_ROWS).map(|i| format!("Last{i}")).collect();
    let roles: Vec<String> = vec!["user".into(); SEED_ROWS];
    let none: Option<Uuid> = None;
    raw[0].c.execute(&raw[0].bulk, &[&seed_ids, &emails, &firsts, &lasts, &roles, &none, &none]).await?;
    raw[0].c.batch_execute("ANALYZE shared.users").await?;
    stack.wait_for_replicas()?;

    cfg.postgres.pool.multiplex = a.multiplex;
    let cluster = PgCluster::connect(&cfg.postgres).await?;
    let mut own_cfg = cfg.postgres.clone();
    own_cfg.pool.multiplex = 0;
    let own = PgCluster::connect(&own_cfg).await?;
    let sqlx = sqlx::postgres::PgPoolOptions::new()
        .max_connections(POOL as u32)
        .min_connections(POOL as u32)
        .connect_with(
            sqlx::postgres::PgConnectOptions::new()
                .host(&host)
                .port(port)
                .username(&info.app_user)
                .password(&info.app_password)
                .database(db)
                .ssl_mode(sqlx::postgres::PgSslMode::Disable),
        )
        .await?;
    let mut opts = sea_orm::ConnectOptions::new(format!(
        "postgres://{}:{}@{}:{}/{}?sslmode=disable",
        info.app_user, info.app_password, host, port, db
    ));
    opts.max_connections(POOL as u32).min_connections(POOL as u32).sqlx_logging(false);
    let orm = sea_orm::Database::connect(opts).await?;

    let dp_of = |mode: deadpool::managed::QueueMode| -> Res<deadpool_postgres::Pool> {
        use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
        let m = Manager::from_config(
            pgc.clone(),
            tokio_postgres::NoTls,
            ManagerConfig { recycling_method: RecyclingMethod::Fast },
        );
        Ok(Pool::builder(m).max_size(POOL).queue_mode(mode).runtime(deadpool_postgres::Runtime::Tokio1).build()?)
    };
    let dp_fifo = dp_of(deadpool::managed::QueueMode::Fifo)?;
    let dp_lifo = dp_of(deadpool::managed::QueueMode::Lifo)?;
    for p in [&dp_fifo, &dp_lifo] {
        for w in futures::future::join_all((0..POOL).map(|_| p.get())).await {
            drop(w?);
        }
    }
    let ctx = Arc::new(Ctx {
        dp_fifo,
        dp_lifo,
        cluster: cluster.clone(),
        own: own.clone(),
        strong: UserRepo::new().with_consistency(Consistency::Strong),
        eventual: UserRepo::new().with_consistency(Consistency::Eventual),
        raw,
        sqlx,
        orm,
        ids: seed_ids,
        seq: AtomicU64::new(0),
        run: format!("{:x}", std::process::id()),
    });
    {
        let q = ctx.strong.query().filter(User::ROLE.eq("user")).limit(20);
        eprintln!("fwdb's list statement: {}", q.to_sql()?.sql);
        eprintln!("raw/sqlx list statement: {}", sql_list());
    }
    let status = cluster.status();
    let eligible = status.replicas.iter().filter(|r| r.eligible).count();
    eprintln!("replicas eligible for Eventual reads: {eligible} of {}", status.replicas.len());

    let mut who = vec![Who::Raw, Who::RawShared, Who::PoolFifo, Who::PoolLifo, Who::FwdbStrong, Who::FwdbOwn];
    if !info.replicas.is_empty() {
        who.push(Who::FwdbEventual);
    }
    who.extend([Who::Sqlx, Who::SeaOrm]);
    if a.paired {
        warm_up(&ctx, &paired::WHO).await?;
        println!("{}", paired::run(&ctx, a.rounds, a.secs(), &a.tasks).await?);
        cluster.close();
        own.close();
        return Ok(());
    }

    // pgbench's own database.
    let psql = PsqlCtx {
        bin: info.pg_bin_dir.clone(),
        host: host.clone(),
        port,
        user: info.app_user.clone(),
        password: info.app_password.clone(),
        db: db.to_string(),
        dir: info.dir.clone(),
    };
    let init = tokio::process::Command::new(psql.bin.join("pgbench"))
        .args(["-i", "-q", "-s", "10", "-h", &host, "-p", &port.to_string(), "-U", &info.app_user, scratch])
        .env("PGPASSWORD", &info.app_password)
        .env("PGSSLMODE", "disable")
        .output()
        .await?;
    if !init.status.success() {
        return Err(format!("pgbench -i failed: {}", String::from_utf8_lossy(&init.stderr)).into());
    }

    // Checkout pools: 16 connections each, so 64 tasks contend.
    let mut small =
        info.config(db, db, &[("FWDB__POSTGRES__POOL__MIN_SIZE", "16"), ("FWDB__POSTGRES__POOL__MAX_SIZE", "16")])?;
    plain_tcp(&mut small);
    let small_cluster = PgCluster::connect(&small.postgres).await?;
    let dp = {
        use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
        let m = Manager::from_config(
            pgc.clone(),
            tokio_postgres::NoTls,
            ManagerConfig { recycling_method: RecyclingMethod::Fast },
        );
        let p = Pool::builder(m).max_size(16).runtime(deadpool_postgres::Runtime::Tokio1).build()?;
        let warm = futures::future::join_all((0..16).map(|_| p.get())).await;
        for w in warm {
            drop(w?);
        }
        p
    };

    warm_up(&ctx, &who).await?;

    let mut results: BTreeMap<(Op, usize, Who), Vec<f64>> = BTreeMap::new();
    let mut pgb: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    let mut bulk_res: BTreeMap<BulkWho, Vec<f64>> = BTreeMap::new();
    let mut co: BTreeMap<(&'static str, usize), Vec<f64>> = BTreeMap::new();
    let mut loads = Vec::new();
    let bulk_who = [BulkWho::Copy, BulkWho::PsqlCopy, BulkWho::Raw, BulkWho::Fwdb, BulkWho::Sqlx, BulkWho::SeaOrm];
    for round in 0..a.rounds {
        loads.push(uptime());
        eprintln!("round {} of {} (load {})", round + 1, a.rounds, uptime());
        for &c in &CONCURRENCY {
            for op in [Op::Point, Op::List, Op::Insert] {
                // The order turns by one every round, so no contender always
                // runs first (after another operation) or last.
                for &w in who.iter().cycle().skip(round % who.len()).take(who.len()) {
                    if w == Who::FwdbEventual && op == Op::Insert {
                        continue; // writes always go to the primary: same as Strong
                    }
                    let r = measure(&ctx, w, op, c, a.secs()).await?;
                    results.entry((op, c, w)).or_default().push(r);
                }
            }
            pgb.entry(c).or_default().push(pgbench(&psql, scratch, c, a.secs()).await?);
        }
        for &b in &bulk_who {
            bulk_res.entry(b).or_default().push(bulk(&ctx, b, &psql).await?);
        }
        for tasks in [1usize, 64] {
            let total = 40_000;
            co.entry(("deadpool-postgres bare (Fast)", tasks))
                .or_default()
                .push(checkout_cost(None, Some(dp.clone()), tasks, total).await?);
            co.entry(("fwdb PgCluster::checkout(Primary)", tasks))
                .or_default()
                .push(checkout_cost(Some(small_cluster.clone()), None, tasks, total).await?);
        }
    }
    loads.push(uptime());

    // Report.
    let mut out = String::new();
    out.push_str(&format!(
        "\nfwdb-bench postgres: {} rounds x {:.1} s per cell, interleaved; PostgreSQL {} with {} replicas, plain TCP + SCRAM; load averages (1/5/15 min) at each round: {}\n\n",
        a.rounds,
        a.secs(),
        info.pg_version,
        info.replicas.len(),
        loads.join(" | ")
    ));
    out.push_str("| operation | tasks | contender | median ops/s | rounds (ops/s) | vs raw (medians) | vs raw (median of per-round ratios) |\n| --- | ---: | --- | ---: | --- | ---: | ---: |\n");
    for op in [Op::Point, Op::List, Op::Insert] {
        for &c in &CONCURRENCY {
            let raw_runs = results.get(&(op, c, Who::Raw)).map(|v| v.as_slice()).unwrap_or(&[]);
            let base = median(raw_runs);
            for &w in &who {
                let Some(v) = results.get(&(op, c, w)) else { continue };
                let m = median(v);
                let each: Vec<String> = v.iter().map(|x| format!("{x:.0}")).collect();
                out.push_str(&format!(
                    "| {} | {c} | {} | {m:.0} | {} | {:.2} | {:.2} |\n",
                    op.name(),
                    w.name(),
                    each.join(", "),
                    m / base,
                    paired_ratio(v, raw_runs)
                ));
            }
            if op == Op::Point {
                let v = &pgb[&c];
                let m = median(v);
                let each: Vec<String> = v.iter().map(|x| format!("{x:.0}")).collect();
                out.push_str(&format!(
                    "| {} | {c} | pgbench -S -M prepared (ceiling) | {m:.0} | {} | {:.2} | {:.2} |\n",
                    op.name(),
                    each.join(", "),
                    m / base,
                    paired_ratio(v, raw_runs)
                ));
            }
        }
    }
    out.push_str(&format!("\nBulk insert of {BULK_ROWS} rows (1 task):\n\n| contender | median ms | rounds (ms) | rows/s | vs raw | vs COPY |\n| --- | ---: | --- | ---: | ---: | ---: |\n"));
    let raw_ms = median(&bulk_res[&BulkWho::Raw]);
    let copy_ms = median(&bulk_res[&BulkWho::Copy]);
    for &b in &bulk_who {
        let v = &bulk_res[&b];
        let m = median(v);
        let each: Vec<String> = v.iter().map(|x| format!("{:.0}", x * 1e3)).collect();
        out.push_str(&format!(
            "| {} | {:.0} | {} | {:.0} | {:.2} | {:.2} |\n",
            b.name(),
            m * 1e3,
            each.join(", "),
            BULK_ROWS as f64 / m,
            raw_ms / m,
            copy_ms / m
        ));
    }
    out.push_str("\nPool checkout (get + return), pools of 16 warm connections; 64 tasks = contended:\n\n| pool | tasks | median ns per checkout | rounds (ns) |\n| --- | ---: | ---: | --- |\n");
    for ((name, t), v) in &co {
        let each: Vec<String> = v.iter().map(|x| format!("{x:.0}")).collect();
        out.push_str(&format!("| {name} | {t} | {:.0} | {} |\n", median(v), each.join(", ")));
    }
    println!("{out}");
    cluster.close();
    own.close();
    small_cluster.close();
    Ok(())
}
