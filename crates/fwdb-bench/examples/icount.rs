//! Instructions per call, fwdb against a bare deadpool pool running the same
//! prepared statement: the measurement behind "instruction counts" in
//! docs/benchmarks.md. Seconds are noisy on a shared 2-core
//! machine; callgrind's instruction counts are not. Each measured loop is an
//! `#[inline(never)]` function `m_*`, so callgrind collects it alone:
//!
//! ```sh
//! cargo build --release -p fwdb-bench --example icount
//! N=2000 valgrind --tool=callgrind --collect-atstart=no --toggle-collect='icount::m_*' \
//!   --callgrind-out-file=out.fw_point target/release/examples/icount fw_point
//! ```
//! (or bare_point, raw_point, fw_list, bare_list, fw_insert, bare_insert); divide
//! "Collected" by N; `MULTIPLEX=0` turns fwdb's shared reads off. The bare side builds its SQL with `format!` per call, as
//! `fwdb-bench postgres` does (about 2,800 instructions fwdb does not pay).
//! `raw_point` is the benchmark's baseline: one dedicated client, the
//! statement prepared once, no pool.
use fwdb::{Consistency, NewUser, PgCluster, Repository, User, UserRepo};
use fwdb_testkit::{Stack, StackOptions};
use uuid::Uuid;
type Res<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;
#[path = "../src/raw.rs"]
#[allow(dead_code)]
mod raw;
use raw::{raw_user, sql_insert, sql_list, sql_point};

struct Ctx {
    cluster: PgCluster,
    repo: UserRepo,
    dp: deadpool_postgres::Pool,
    raw: tokio_postgres::Client,
    raw_point: tokio_postgres::Statement,
    ids: Vec<Uuid>,
    n: usize,
}
static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
fn email() -> String {
    format!("ic{}-{}@x.example", std::process::id(), SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}

async fn fw_point(c: &Ctx, n: usize) -> Res<()> {
    for i in 0..n {
        let u = c.repo.find_by_id(&c.cluster, c.ids[i % c.ids.len()]).await?.ok_or("no")?;
        std::hint::black_box(u);
    }
    Ok(())
}
async fn bare_point(c: &Ctx, n: usize) -> Res<()> {
    for i in 0..n {
        let k = c.dp.get().await?;
        let st = k.prepare_cached(&sql_point()).await?;
        let rows = k.query(&st, &[&c.ids[i % c.ids.len()]]).await?;
        std::hint::black_box(raw_user(rows.first().ok_or("no")?)?);
    }
    Ok(())
}
async fn raw_point(c: &Ctx, n: usize) -> Res<()> {
    for i in 0..n {
        let rows = c.raw.query(&c.raw_point, &[&c.ids[i % c.ids.len()]]).await?;
        std::hint::black_box(raw_user(rows.first().ok_or("no")?)?);
    }
    Ok(())
}
async fn fw_list(c: &Ctx, n: usize) -> Res<()> {
    let q = c.repo.query().filter(User::ROLE.eq("user")).limit(20);
    for _ in 0..n {
        let v = c.repo.find_all(&c.cluster, &q).await?;
        assert_eq!(v.len(), 20);
    }
    Ok(())
}
async fn bare_list(c: &Ctx, n: usize) -> Res<()> {
    for _ in 0..n {
        let k = c.dp.get().await?;
        let st = k.prepare_cached(&sql_list()).await?;
        let rows = k.query(&st, &[&"user"]).await?;
        let v = rows.iter().map(raw_user).collect::<Res<Vec<_>>>()?;
        assert_eq!(v.len(), 20);
    }
    Ok(())
}
async fn fw_insert(c: &Ctx, n: usize) -> Res<()> {
    for _ in 0..n {
        let u = c.repo.create(&c.cluster, &NewUser::new(email(), "Ada", "Lovelace")).await?;
        std::hint::black_box(u);
    }
    Ok(())
}
async fn bare_insert(c: &Ctx, n: usize) -> Res<()> {
    for _ in 0..n {
        let k = c.dp.get().await?;
        let st = k.prepare_cached(&sql_insert()).await?;
        let none: Option<Uuid> = None;
        let rows = k.query(&st, &[&email(), &"Ada", &"Lovelace", &"user", &none, &none]).await?;
        std::hint::black_box(raw_user(rows.first().ok_or("no")?)?);
    }
    Ok(())
}

#[inline(never)]
fn m_fw_point(rt: &tokio::runtime::Runtime, c: &Ctx) -> Res<()> {
    rt.block_on(fw_point(c, c.n))
}
#[inline(never)]
fn m_bare_point(rt: &tokio::runtime::Runtime, c: &Ctx) -> Res<()> {
    rt.block_on(bare_point(c, c.n))
}
#[inline(never)]
fn m_raw_point(rt: &tokio::runtime::Runtime, c: &Ctx) -> Res<()> {
    rt.block_on(raw_point(c, c.n))
}
#[inline(never)]
fn m_fw_list(rt: &tokio::runtime::Runtime, c: &Ctx) -> Res<()> {
    rt.block_on(fw_list(c, c.n))
}
#[inline(never)]
fn m_bare_list(rt: &tokio::runtime::Runtime, c: &Ctx) -> Res<()> {
    rt.block_on(bare_list(c, c.n))
}
#[inline(never)]
fn m_fw_insert(rt: &tokio::runtime::Runtime, c: &Ctx) -> Res<()> {
    rt.block_on(fw_insert(c, c.n))
}
#[inline(never)]
fn m_bare_insert(rt: &tokio::runtime::Runtime, c: &Ctx) -> Res<()> {
    rt.block_on(bare_insert(c, c.n))
}

fn main() -> Res<()> {
    let stack = Stack::start(StackOptions { replicas: 0, mongo: false, ..Default::default() })?;
    let res = (|| -> Res<()> {
        let db = stack.create_database()?;
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let info = stack.info();
        let mut cfg = info.config(&db, &db, &[("FWDB__POSTGRES__POOL__MIN_SIZE", "2")])?;
        // MULTIPLEX=0: fwdb's reads check a connection out instead of sharing one.
        if let Ok(m) = std::env::var("MULTIPLEX") {
            cfg.postgres.pool.multiplex = m.parse()?;
        }
        cfg.postgres.tls.mode = fwdb::SslMode::Disable;
        cfg.postgres.tls.ca_file = None;
        cfg.postgres.tls.cert_file = None;
        cfg.postgres.tls.key_file = None;
        let ctx = rt.block_on(async {
            let lock = fwdb::connect(&cfg.postgres, fwdb::ConnectTarget::Primary).await?;
            let conn = fwdb::connect(&cfg.postgres, fwdb::ConnectTarget::Primary).await?;
            let set = fwdb::MigrationSource::Embedded.load(fwdb::Store::Postgres)?;
            fwdb::Migrator::postgres(&lock, &conn, &set)?.up(&Default::default()).await?;
            drop((lock, conn));
            let cluster = PgCluster::connect(&cfg.postgres).await?;
            let mut pgc = tokio_postgres::Config::new();
            pgc.host(&info.host).port(info.primary.port).user(&info.app_user).password(&info.app_password).dbname(&db);
            pgc.ssl_mode(tokio_postgres::config::SslMode::Disable);
            let (raw, raw_conn) = pgc.connect(tokio_postgres::NoTls).await?;
            tokio::spawn(raw_conn);
            let raw_point = raw.prepare(&sql_point()).await?;
            use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
            let m = Manager::from_config(
                pgc,
                tokio_postgres::NoTls,
                ManagerConfig { recycling_method: RecyclingMethod::Fast },
            );
            let dp = Pool::builder(m)
                .max_size(4)
                .queue_mode(deadpool::managed::QueueMode::Lifo)
                .runtime(deadpool_postgres::Runtime::Tokio1)
                .build()?;
            let repo = UserRepo::new().with_consistency(Consistency::Strong);
            let mut ids = Vec::new();
            for i in 0..50 {
                ids.push(repo.create(&cluster, &NewUser::new(format!("seed{i}@x.example"), "A", "B")).await?.id);
            }
            let n: usize = std::env::var("N").ok().and_then(|s| s.parse().ok()).unwrap_or(2000);
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(Ctx { cluster, repo, dp, raw, raw_point, ids, n })
        })?;
        // warm-up
        rt.block_on(async {
            fw_point(&ctx, 100).await?;
            bare_point(&ctx, 100).await?;
            raw_point(&ctx, 100).await?;
            fw_list(&ctx, 100).await?;
            bare_list(&ctx, 100).await?;
            fw_insert(&ctx, 100).await?;
            bare_insert(&ctx, 100).await
        })?;
        let which = std::env::args().nth(1).unwrap_or_default();
        for w in which.split(',') {
            match w {
                "fw_point" => m_fw_point(&rt, &ctx)?,
                "bare_point" => m_bare_point(&rt, &ctx)?,
                "raw_point" => m_raw_point(&rt, &ctx)?,
                "fw_list" => m_fw_list(&rt, &ctx)?,
                "bare_list" => m_bare_list(&rt, &ctx)?,
                "fw_insert" => m_fw_insert(&rt, &ctx)?,
                "bare_insert" => m_bare_insert(&rt, &ctx)?,
                _ => {}
            }
        }
        Ok(())
    })();
    let _ = stack.stop();
    res
}
