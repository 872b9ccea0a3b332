//! `fwdb-bench postgres`: the stack, the contenders' set-up, the rounds and
//! the report.

use crate::args::{Args, CONCURRENCY};
use crate::bulk::{bulk, pgbench, BulkWho, PsqlCtx, BULK_ROWS};
use crate::contenders::{measure, warm_up, Ctx, Op, RawClient, Who, POOL, SQL_BULK};
use crate::raw::{sql_insert, sql_list, sql_point};
use crate::{median, paired, paired_ratio, plain_tcp, uptime, BoxErr, Res};
use fwdb::{Consistency, PgCluster, Route, User, UserRepo};
use fwdb_testkit::{Node, Stack, StackOptions};
use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Instant;
use uuid::Uuid;

const SEED_ROWS: usize = 10_000;

/// `fwdb-bench postgres`: a private stack, the rounds, the report.
pub(crate) fn main(a: Args) -> Res<()> {
    eprintln!("load before start: {}", uptime());
    let t0 = Instant::now();
    if a.pin {
        // Children inherit the mask: every server started from here on.
        crate::pin::this_thread_to(crate::pin::SERVER_CPU)?;
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
            crate::pin::this_thread_to(crate::pin::CLIENT_CPU)?;
            rt.worker_threads(1);
        }
        let rt = rt.enable_all().build()?;
        rt.block_on(run(&stack, &db, &scratch, &a))
    })();
    let _ = stack.stop();
    res
}

/// Raises max_connections on every server (replicas first: a standby must
/// allow at least as many as its primary) and restarts them.
pub(crate) fn raise_max_connections(stack: &Stack, n: usize) -> Res<()> {
    let nodes: Vec<Node> = (0..stack.info().replicas.len()).map(Node::Replica).chain([Node::Primary]).collect();
    for node in nodes {
        stack.psql(node, "postgres", &format!("ALTER SYSTEM SET max_connections = {n}"))?;
        stack.stop_node(node)?;
        stack.start_node(node)?;
    }
    stack.wait_for_replicas()?;
    Ok(())
}

/// The schema, applied as the admin login, then the role matrix's grants
/// (as `fwdb migrate up` does): the runtime login may not create it.
pub(crate) async fn migrate(cfg: &fwdb::Config) -> Res<()> {
    let admin = cfg.postgres.as_admin();
    let lock = fwdb::connect(&admin, fwdb::ConnectTarget::Primary).await?;
    let conn = fwdb::connect(&admin, fwdb::ConnectTarget::Primary).await?;
    let set = fwdb::MigrationSource::Embedded.load(fwdb::Store::Postgres)?;
    fwdb::Migrator::postgres(&lock, &conn, &set)?.up(&Default::default()).await?;
    fwdb::apply_grants(&conn, cfg).await?;
    Ok(())
}

/// Nanoseconds per checkout (get + return), `tasks` tasks sharing `total` checkouts.
pub(crate) async fn checkout_cost(
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
pub(crate) async fn run(stack: &Stack, db: &str, scratch: &str, a: &Args) -> Res<()> {
    let info = stack.info();
    let pool = POOL.to_string();
    let overrides = [("FWDB__POSTGRES__POOL__MIN_SIZE", pool.as_str()), ("FWDB__POSTGRES__POOL__MAX_SIZE", "100")];
    let mut cfg = info.config(db, db, &overrides)?;
    plain_tcp(&mut cfg);
    migrate(&cfg).await?;

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
