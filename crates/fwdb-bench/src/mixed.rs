//! `fwdb-bench mixed` (or `postgres --mixed`): fast reads beside a few slow
//! ones. Many tasks read one user by id (`UserRepo`, Strong) while a few
//! others run slow reads through the same cluster: `SELECT pg_sleep(0.1)`,
//! or a list filtered with `last_name ILIKE` (a scan of the whole table).
//! Reported per configuration: the fast reads' throughput and latency
//! (p50, p99, p99.9, max, from an hdrhistogram) and the slow reads' own
//! worst case. Contenders: fwdb's default configuration, fwdb with
//! `postgres.pool.multiplex = 0`, and raw tokio-postgres with every task
//! sharing 8 clients (pipelined, as fwdb's shared connections), run in
//! turn, the order turning each repetition; the load average is noted.
//!
//! The first `--warmup` seconds of each run are not recorded: a shape's first
//! reads teach fwdb its cost, and every contender gets the same start.

use crate::raw::{raw_user, sql_point, COLS};
use crate::{plain_tcp, uptime, BoxErr, Res};
use fwdb::{Consistency, Executor, PgCluster, Repository, User, UserRepo};
use fwdb_testkit::{Stack, StackOptions};
use hdrhistogram::Histogram;
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

const USAGE: &str = "usage: fwdb-bench mixed [--fast N (62)] [--slow N (2)] [--kind sleep,scan,none (all three)]
                        [--secs S per run (5)] [--warmup S (1)] [--reps N (2)] [--users N (300000)]";

/// Clients the raw contender's tasks share: fwdb's default `postgres.pool.multiplex`.
const RAW_CLIENTS: usize = 8;
const SLEEP_SQL: &str = "SELECT pg_sleep(0.1)";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    None,
    Sleep,
    Scan,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::None => "none",
            Kind::Sleep => "`SELECT pg_sleep(0.1)`",
            Kind::Scan => "a list with `last_name ILIKE` (a scan)",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Who {
    Fwdb,
    FwdbOwn,
    RawShared,
}

impl Who {
    fn name(self) -> &'static str {
        match self {
            Who::Fwdb => "fwdb, default config",
            Who::FwdbOwn => "fwdb, multiplex 0",
            Who::RawShared => "raw tokio-postgres, 8 shared clients",
        }
    }
}

struct Args {
    fast: usize,
    slow: usize,
    kinds: Vec<Kind>,
    secs: f64,
    warmup: f64,
    reps: usize,
    users: usize,
}

fn args(argv: Vec<String>) -> Res<Args> {
    let mut a = Args {
        fast: 62,
        slow: 2,
        kinds: vec![Kind::None, Kind::Sleep, Kind::Scan],
        secs: 5.0,
        warmup: 1.0,
        reps: 2,
        users: 300_000,
    };
    let mut it = argv.into_iter();
    while let Some(x) = it.next() {
        let mut val = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value\n{USAGE}"));
        match x.as_str() {
            "--fast" => a.fast = val("--fast")?.parse()?,
            "--slow" => a.slow = val("--slow")?.parse()?,
            "--secs" => a.secs = val("--secs")?.parse()?,
            "--warmup" => a.warmup = val("--warmup")?.parse()?,
            "--reps" => a.reps = val("--reps")?.parse()?,
            "--users" => a.users = val("--users")?.parse()?,
            "--kind" => {
                a.kinds = val("--kind")?
                    .split(',')
                    .map(|k| match k.trim() {
                        "none" => Ok(Kind::None),
                        "sleep" => Ok(Kind::Sleep),
                        "scan" => Ok(Kind::Scan),
                        other => Err(format!("--kind {other}: sleep, scan or none")),
                    })
                    .collect::<Result<_, _>>()?
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}\n{USAGE}").into()),
        }
    }
    if a.fast == 0 || a.reps == 0 || a.users == 0 {
        return Err(format!("--fast, --reps and --users must be at least 1\n{USAGE}").into());
    }
    Ok(a)
}

struct Ctx {
    fwdb: PgCluster,
    own: PgCluster,
    repo: UserRepo,
    raw: Vec<(tokio_postgres::Client, tokio_postgres::Statement, tokio_postgres::Statement)>,
    ids: Vec<Uuid>,
}

/// What one run measured.
struct Run {
    fast: Histogram<u64>,
    fast_secs: f64,
    slow: Histogram<u64>,
}

pub(crate) fn main(argv: Vec<String>) -> Res<()> {
    let a = args(argv)?;
    eprintln!("load before start: {}", uptime());
    let stack = Stack::start(StackOptions { replicas: 0, mongo: false, ..Default::default() })?;
    let res = (|| -> Res<()> {
        crate::postgres::raise_max_connections(&stack, 400)?;
        let db = stack.create_database()?;
        tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(run(&stack, &db, &a))
    })();
    let _ = stack.stop();
    res
}

async fn run(stack: &Stack, db: &str, a: &Args) -> Res<()> {
    let info = stack.info();
    let mut cfg = info.config(db, db, &[])?;
    plain_tcp(&mut cfg);
    crate::postgres::migrate(&cfg).await?;
    let conn = fwdb::connect(&cfg.postgres, fwdb::ConnectTarget::Primary).await?;
    let ids = seed(&conn, a.users).await?;
    drop(conn);

    let mut pgc = tokio_postgres::Config::new();
    pgc.host(&info.host).port(info.primary.port).user(&info.app_user).password(&info.app_password).dbname(db);
    pgc.ssl_mode(tokio_postgres::config::SslMode::Disable);
    let mut raw = Vec::new();
    for _ in 0..RAW_CLIENTS {
        let (c, connection) = pgc.connect(tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        let point = c.prepare(&sql_point()).await?;
        let scan = c.prepare(&scan_sql()).await?;
        raw.push((c, point, scan));
    }
    let fwdb = PgCluster::connect(&cfg.postgres).await?;
    let mut own_cfg = cfg.postgres.clone();
    own_cfg.pool.multiplex = 0;
    let own = PgCluster::connect(&own_cfg).await?;
    let ctx = Arc::new(Ctx { fwdb, own, repo: UserRepo::new().with_consistency(Consistency::Strong), raw, ids });

    let who = [Who::Fwdb, Who::FwdbOwn, Who::RawShared];
    let mut rows = Vec::new();
    for &kind in &a.kinds {
        for rep in 0..a.reps {
            for &w in who.iter().cycle().skip(rep % who.len()).take(who.len()) {
                let load = uptime();
                eprintln!("{} / {} / repetition {} (load {load})", kind.name(), w.name(), rep + 1);
                let r = measure(&ctx, w, kind, a).await?;
                rows.push((kind, w, rep, r, load));
            }
        }
    }
    println!("{}", report(a, &rows));
    ctx.fwdb.close();
    ctx.own.close();
    Ok(())
}

/// `n` users, inserted 10,000 at a time; their ids.
async fn seed(c: &tokio_postgres::Client, n: usize) -> Res<Vec<Uuid>> {
    let insert = c
        .prepare(
            "INSERT INTO shared.users (id, email, first_name, last_name, role) \
             SELECT unnest($1::uuid[]), unnest($2::text[]), unnest($3::text[]), unnest($4::text[]), 'user'",
        )
        .await?;
    let ids: Vec<Uuid> = (0..n).map(|_| Uuid::new_v4()).collect();
    for (k, chunk) in ids.chunks(10_000).enumerate() {
        let base = k * 10_000;
        let emails: Vec<String> = (0..chunk.len()).map(|i| format!("u{}@mixed.example", base + i)).collect();
        let first: Vec<String> = (0..chunk.len()).map(|i| format!("First{}", base + i)).collect();
        let last: Vec<String> = (0..chunk.len()).map(|i| format!("Last{}", base + i)).collect();
        c.execute(&insert, &[&chunk, &emails, &first, &last]).await?;
    }
    c.batch_execute("ANALYZE shared.users").await?;
    eprintln!("seeded {n} users");
    Ok(ids)
}

/// The raw contender's scan: the same filter as fwdb's list, matching no row.
fn scan_sql() -> String {
    format!("SELECT {COLS} FROM shared.users WHERE last_name ILIKE $1 AND deleted_at IS NULL ORDER BY id LIMIT 20")
}

/// A pattern no user's last name matches: every row is read.
const NO_MATCH: &str = "%zzz%";

/// One run: `a.fast` tasks reading by id, `a.slow` tasks running `kind`.
async fn measure(ctx: &Arc<Ctx>, who: Who, kind: Kind, a: &Args) -> Res<Run> {
    let start = Instant::now();
    let record_from = start + Duration::from_secs_f64(a.warmup);
    let deadline = record_from + Duration::from_secs_f64(a.secs);
    let slow_tasks = if kind == Kind::None { 0 } else { a.slow };
    let tasks: Vec<_> = (0..a.fast + slow_tasks)
        .map(|task| {
            let ctx = ctx.clone();
            let fast = task < a.fast;
            tokio::spawn(async move {
                let mut h = Histogram::<u64>::new_with_bounds(1, 120_000_000, 3)?;
                let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ ((task as u64 + 1) * 0x1234_5678_9ABC);
                loop {
                    let t = Instant::now();
                    if t >= deadline {
                        break;
                    }
                    if fast {
                        rng ^= rng << 13;
                        rng ^= rng >> 7;
                        rng ^= rng << 17;
                        point(&ctx, who, task, ctx.ids[(rng % ctx.ids.len() as u64) as usize]).await?;
                    } else {
                        slow(&ctx, who, kind, task).await?;
                    }
                    if t >= record_from {
                        h.record((t.elapsed().as_micros() as u64).max(1))?;
                    }
                }
                Ok::<(bool, Histogram<u64>), BoxErr>((fast, h))
            })
        })
        .collect();
    let mut fast = Histogram::<u64>::new_with_bounds(1, 120_000_000, 3)?;
    let mut slow = fast.clone();
    for t in tasks {
        let (is_fast, h) = t.await??;
        let into = if is_fast { &mut fast } else { &mut slow };
        into.add(&h)?;
    }
    Ok(Run { fast, fast_secs: a.secs, slow })
}

async fn point(ctx: &Ctx, who: Who, task: usize, id: Uuid) -> Res<()> {
    match who {
        Who::Fwdb | Who::FwdbOwn => {
            let c = if who == Who::Fwdb { &ctx.fwdb } else { &ctx.own };
            std::hint::black_box(ctx.repo.find_by_id(c, id).await?.ok_or("no row")?);
        }
        Who::RawShared => {
            let (c, st, _) = &ctx.raw[task % RAW_CLIENTS];
            let rows = c.query(st, &[&id]).await?;
            std::hint::black_box(raw_user(rows.first().ok_or("no row")?)?);
        }
    }
    Ok(())
}

async fn slow(ctx: &Ctx, who: Who, kind: Kind, task: usize) -> Res<()> {
    match (who, kind) {
        (_, Kind::None) => {}
        (Who::Fwdb | Who::FwdbOwn, _) => {
            let c = if who == Who::Fwdb { &ctx.fwdb } else { &ctx.own };
            if kind == Kind::Sleep {
                c.read(SLEEP_SQL, &[], Consistency::Strong).await?;
            } else {
                let q = ctx.repo.query().filter(User::LAST_NAME.ilike(NO_MATCH)).limit(20);
                std::hint::black_box(ctx.repo.find_all(c, &q).await?);
            }
        }
        (Who::RawShared, _) => {
            let (c, _, scan) = &ctx.raw[task % RAW_CLIENTS];
            if kind == Kind::Sleep {
                c.simple_query(SLEEP_SQL).await?;
            } else {
                std::hint::black_box(c.query(scan, &[&NO_MATCH]).await?);
            }
        }
    }
    Ok(())
}

fn ms(us: u64) -> String {
    let ms = us as f64 / 1000.0;
    if ms >= 100.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{ms:.2} ms")
    }
}

fn report(a: &Args, rows: &[(Kind, Who, usize, Run, String)]) -> String {
    let mut out = format!(
        "\nfwdb-bench mixed: {} fast tasks (point reads by id, UserRepo Strong), {} slow tasks, {} users, \
         {:.0} s recorded per run after {:.0} s of warm-up, {} repetitions, contenders in turn\n\n\
         | slow reads beside the fast ones | contender | rep | fast reads/s | p50 | p99 | p99.9 | max | \
         fast reads over 50 ms | p99.9 / multiplex 0's | slow reads | slow reads' max | load (1/5/15 min) |\n\
         | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n",
        a.fast, a.slow, a.users, a.secs, a.warmup, a.reps
    );
    for (kind, who, rep, r, load) in rows {
        let base = rows
            .iter()
            .find(|(k, w, p, _, _)| k == kind && *w == Who::FwdbOwn && p == rep)
            .map(|(_, _, _, b, _)| b.fast.value_at_quantile(0.999) as f64);
        let f = &r.fast;
        let over = f.count_between(50_001, f.max().max(50_001)) as f64 / f.len().max(1) as f64 * 100.0;
        out.push_str(&format!(
            "| {} | {} | {} | {:.0} | {} | {} | {} | {} | {over:.3} % | {} | {} | {} | {load} |\n",
            kind.name(),
            who.name(),
            rep + 1,
            f.len() as f64 / r.fast_secs,
            ms(f.value_at_quantile(0.5)),
            ms(f.value_at_quantile(0.99)),
            ms(f.value_at_quantile(0.999)),
            ms(f.max()),
            base.map(|b| format!("{:.2}", f.value_at_quantile(0.999) as f64 / b)).unwrap_or_default(),
            r.slow.len(),
            if r.slow.is_empty() { "-".into() } else { ms(r.slow.max()) },
        ));
    }
    out
}
