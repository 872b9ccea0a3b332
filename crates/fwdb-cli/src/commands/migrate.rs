//! `fwdb migrate new|plan|up|down|status|verify|repair|baseline`: a thin
//! layer over `fwdb::Migrator`, once per selected database.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use fwdb::{
    DownOptions, MigrationEvent, MigrationPlan, MigrationReport, MigrationSet, MigrationSource, MigrationState,
    Migrator, Store, StoreStatus, UpOptions,
};

use super::fail;
use crate::output::{print_json, print_table, EXIT_FAILED};

#[derive(Debug, clap::Subcommand)]
pub enum MigrateCommand {
    /// Create an up and a down file named <UTC yyyymmddHHMMSS>_<name>
    New(NewArgs),
    /// Show what `up` would run and what the lint flags, without running anything
    Plan(UpArgs),
    /// Apply pending migrations (any number of runners may start at once)
    Up(UpArgs),
    /// Revert the newest applied migrations
    Down(DownArgs),
    /// Per database: applied, pending, failed and changed migrations
    Status(CommonArgs),
    /// Fail (exit 1) when an applied migration's file changed or a migration failed
    Verify(CommonArgs),
    /// Accept a changed file's new checksum, or a failed migration finished by hand
    Repair(RepairArgs),
    /// Record migrations up to VERSION as applied without running them (databases older than fwdb)
    Baseline(BaselineArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DbChoice {
    All,
    Postgres,
    Mongodb,
}

#[derive(Debug, clap::Args)]
pub struct CommonArgs {
    /// Migrations folder holding postgres/ and mongodb/ [default: the migrations built into fwdb]
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Which database
    #[arg(long, value_enum, default_value_t = DbChoice::All)]
    pub db: DbChoice,
    /// MongoDB lock lease: how long a dead runner's lock blocks others (e.g. 30s, 500ms)
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub lock_lease: Duration,
}

#[derive(Debug, clap::Args)]
pub struct NewArgs {
    /// What the migration does, e.g. "add items colour"
    pub name: String,
    /// Migrations folder
    #[arg(long, value_name = "DIR", default_value = "migrations")]
    pub dir: PathBuf,
    /// Which database the migration is for
    #[arg(long, value_enum, default_value_t = DbChoice::Postgres)]
    pub db: DbChoice,
}

#[derive(Debug, clap::Args)]
pub struct UpArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Stop after this version (yyyymmddHHMMSS)
    #[arg(long, value_name = "VERSION")]
    pub to: Option<String>,
    /// Run migrations the lint flags (needed under the production profile)
    #[arg(long)]
    pub allow_destructive: bool,
    /// Run a failed migration again (after cleaning up what it left behind)
    #[arg(long)]
    pub retry_failed: bool,
}

#[derive(Debug, clap::Args)]
pub struct DownArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// How many migrations to revert, newest first
    #[arg(long, default_value_t = 1)]
    pub steps: usize,
    /// Needed under the production profile
    #[arg(long)]
    pub allow_destructive: bool,
}

#[derive(Debug, clap::Args)]
pub struct RepairArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// The version to repair
    #[arg(long, value_name = "VERSION")]
    pub accept: String,
    /// Why the change is accepted (kept in the history)
    #[arg(long)]
    pub reason: String,
}

#[derive(Debug, clap::Args)]
pub struct BaselineArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// The newest version already present in the database
    #[arg(value_name = "VERSION", id = "baseline_version")]
    pub version: String,
    /// Kept in the history
    #[arg(long)]
    pub reason: Option<String>,
}

pub async fn run(cmd: MigrateCommand, config: &fwdb::Config, json: bool) -> Result<ExitCode, fwdb::Error> {
    let production = config.profile == fwdb::Profile::Production;
    match cmd {
        MigrateCommand::New(args) => new(args, json),
        MigrateCommand::Status(args) => status(&args, config, json).await,
        MigrateCommand::Verify(args) => verify(&args, config, json).await,
        MigrateCommand::Plan(args) => plan(&args, config, json, production).await,
        MigrateCommand::Up(args) => up(&args, config, json, production).await,
        MigrateCommand::Down(args) => down(&args, config, json, production).await,
        MigrateCommand::Repair(args) => repair(&args, config, json).await,
        MigrateCommand::Baseline(args) => baseline(&args, config, json).await,
    }
}

fn new(args: NewArgs, json: bool) -> Result<ExitCode, fwdb::Error> {
    let store = match args.db {
        DbChoice::Mongodb => Store::Mongo,
        DbChoice::Postgres | DbChoice::All => Store::Postgres,
    };
    let (up, down) = fwdb::new_migration(&args.dir, store, &args.name, chrono_now())?;
    if json {
        print_json(&serde_json::json!({ "up": up, "down": down }));
    } else {
        println!("created {}\ncreated {}", up.display(), down.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn chrono_now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}

/// The migrations and open connections of one database.
struct Target {
    set: MigrationSet,
    conn: Conn,
}

enum Conn {
    Postgres { lock: Box<tokio_postgres::Client>, run: Box<tokio_postgres::Client> },
    Mongo(mongodb::Database),
}

impl Target {
    fn migrator(&self, args: &CommonArgs, json: bool) -> Result<Migrator<'_>, fwdb::Error> {
        let m = match &self.conn {
            Conn::Postgres { lock, run } => Migrator::postgres(lock, run, &self.set)?,
            Conn::Mongo(db) => Migrator::mongo(db, &self.set)?.with_lock_lease(args.lock_lease),
        };
        Ok(m.on_event(move |e| print_event(e, json)))
    }
}

/// Loads the selected stores' migrations and connects to their databases.
async fn targets(args: &CommonArgs, config: &fwdb::Config) -> Result<Vec<Target>, fwdb::Error> {
    let source = args.dir.clone().map_or(MigrationSource::Embedded, MigrationSource::Dir);
    let mut out = Vec::new();
    if args.db != DbChoice::Mongodb {
        let set = source.load(Store::Postgres)?;
        // As the admin login: the runtime login cannot change the schema.
        // The lock's connection stays idle outside any transaction; see fwdb's migrate::pg.
        let admin = config.postgres.as_admin();
        let lock = fwdb::connect(&admin, fwdb::ConnectTarget::Primary).await?;
        let run = fwdb::connect(&admin, fwdb::ConnectTarget::Primary).await?;
        out.push(Target { set, conn: Conn::Postgres { lock: Box::new(lock), run: Box::new(run) } });
    }
    if args.db != DbChoice::Postgres {
        let set = source.load(Store::Mongo)?;
        let db = fwdb::mongo_database(&config.mongo).await?;
        out.push(Target { set, conn: Conn::Mongo(db) });
    }
    Ok(out)
}

/// Progress goes to stderr, so stdout stays the result (and valid JSON).
fn print_event(e: &MigrationEvent, json: bool) {
    if json {
        if let Ok(line) = serde_json::to_string(e) {
            eprintln!("{line}");
        }
        return;
    }
    match e {
        MigrationEvent::WaitingForLock { store, holder } => {
            eprintln!("{store}: waiting for the migration lock, held by {holder}")
        }
        MigrationEvent::Started { store, version, name, direction, index, total } => {
            eprintln!("{store}: [{}/{total}] {direction:?} {version}_{name} ...", index + 1)
        }
        MigrationEvent::Finished { store, version, name, duration_ms, .. } => {
            eprintln!("{store}: done {version}_{name} in {duration_ms} ms")
        }
        _ => {}
    }
}

async fn status(args: &CommonArgs, config: &fwdb::Config, json: bool) -> Result<ExitCode, fwdb::Error> {
    let mut all = Vec::new();
    for t in targets(args, config).await? {
        all.push(t.migrator(args, json)?.status().await?);
    }
    if json {
        print_json(&all);
    } else {
        all.iter().for_each(print_status);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_status(s: &StoreStatus) {
    let count = |st| s.count(st);
    println!(
        "{}: {} applied, {} pending, {} failed, {} changed{}",
        s.store,
        count(MigrationState::Applied),
        count(MigrationState::Pending),
        count(MigrationState::Failed),
        count(MigrationState::Changed),
        match count(MigrationState::Unknown) {
            0 => String::new(),
            n => format!(", {n} applied by a newer release"),
        }
    );
    let rows: Vec<Vec<String>> = s
        .migrations
        .iter()
        .map(|m| {
            vec![
                m.version.to_string(),
                m.name.clone(),
                format!("{:?}", m.state).to_lowercase(),
                m.outcome.map(|o| o.as_str().to_owned()).unwrap_or_default(),
                m.applied_at.map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string()).unwrap_or_default(),
                m.duration_ms.map(|d| format!("{d} ms")).unwrap_or_default(),
                m.reason.clone().or_else(|| m.error.clone()).unwrap_or_default(),
            ]
        })
        .collect();
    print_table(&["VERSION", "NAME", "STATE", "OUTCOME", "AT (UTC)", "TOOK", "NOTE"], &rows);
    println!();
}

async fn verify(args: &CommonArgs, config: &fwdb::Config, json: bool) -> Result<ExitCode, fwdb::Error> {
    let mut ok = true;
    let mut results = Vec::new();
    for t in targets(args, config).await? {
        let store = t.set.store();
        match t.migrator(args, json)?.verify().await {
            Ok(s) => {
                if !json {
                    println!(
                        "{store}: ok ({} applied, {} pending)",
                        s.count(MigrationState::Applied),
                        s.count(MigrationState::Pending)
                    );
                }
                results.push(serde_json::json!({ "store": store, "ok": true }));
            }
            Err(e) if e.kind() == fwdb::ErrorKind::Migration => {
                ok = false;
                if !json {
                    println!("{store}: FAILED\n{e}");
                }
                results.push(serde_json::json!({ "store": store, "ok": false, "error": e.to_string() }));
            }
            Err(e) => return Err(e),
        }
    }
    if json {
        print_json(&results);
    }
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(EXIT_FAILED) })
}

/// `fwdb up`'s migration step: every pending migration of both databases,
/// built in, under the profile's rules (production refuses flagged ones).
pub async fn up_all(config: &fwdb::Config, json: bool) -> Result<ExitCode, fwdb::Error> {
    let common = CommonArgs { dir: None, db: DbChoice::All, lock_lease: Duration::from_secs(30) };
    let args = UpArgs { common, to: None, allow_destructive: false, retry_failed: false };
    up(&args, config, json, config.profile == fwdb::Profile::Production).await
}

fn up_options(args: &UpArgs, production: bool) -> Result<UpOptions, fwdb::Error> {
    let to = args.to.as_deref().map(fwdb::parse_migration_version).transpose()?;
    // Outside production the lint informs (plan shows it) but does not block.
    Ok(UpOptions { to, allow_destructive: args.allow_destructive || !production, retry_failed: args.retry_failed })
}

async fn plan(args: &UpArgs, config: &fwdb::Config, json: bool, production: bool) -> Result<ExitCode, fwdb::Error> {
    let opts = up_options(args, production)?;
    let mut plans = Vec::new();
    for t in targets(&args.common, config).await? {
        plans.push(t.migrator(&args.common, json)?.plan(&opts).await?);
    }
    if json {
        print_json(&plans);
    } else {
        plans.iter().for_each(print_plan);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_plan(p: &MigrationPlan) {
    if p.steps.is_empty() {
        println!("{}: nothing to apply", p.store);
    } else {
        println!("{}: would apply {} migration{}:", p.store, p.steps.len(), if p.steps.len() == 1 { "" } else { "s" });
    }
    for s in &p.steps {
        let mut tags = Vec::new();
        if s.no_transaction {
            tags.push("no transaction");
        }
        if s.out_of_order {
            tags.push("out of order");
        }
        let tags = if tags.is_empty() { String::new() } else { format!(" ({})", tags.join(", ")) };
        println!("  {}_{}{tags}\n    {}", s.version, s.name, s.file);
        for f in &s.findings {
            println!("    lint: line {}: [{}] {}", f.line, f.rule, f.message);
        }
    }
    if let Some(b) = &p.blocked {
        println!("  up would refuse: {b}");
    }
}

async fn up(args: &UpArgs, config: &fwdb::Config, json: bool, production: bool) -> Result<ExitCode, fwdb::Error> {
    let opts = up_options(args, production)?;
    let mut reports = Vec::new();
    for t in targets(&args.common, config).await? {
        reports.push(t.migrator(&args.common, json)?.up(&opts).await?);
    }
    if args.common.db != DbChoice::Mongodb {
        grants_follow(config).await?;
    }
    print_reports(&reports, json, "applied");
    Ok(ExitCode::SUCCESS)
}

/// Migrations create schemas and tables: the role matrix's grants follow
/// them, so the runtime login can use what was just created. Where the
/// roles were never provisioned (or one login does both jobs, in
/// development) that is a warning: `roles check` tells the rest.
async fn grants_follow(config: &fwdb::Config) -> Result<(), fwdb::Error> {
    let client = fwdb::connect(&config.postgres.as_admin(), fwdb::ConnectTarget::Primary).await?;
    match fwdb::apply_grants(&client, config).await {
        Ok(r) => {
            eprintln!(
                "grants of the role matrix applied ({} in app_readwrite, {} in app_admin)",
                r.runtime, r.migrator
            );
            Ok(())
        }
        Err(e) if e.is_not_found() || e.kind() == fwdb::ErrorKind::Validation => {
            eprintln!("warning: grants of the role matrix not applied: {e}");
            Ok(())
        }
        Err(e) => Err(e),
    }
}

async fn down(args: &DownArgs, config: &fwdb::Config, json: bool, production: bool) -> Result<ExitCode, fwdb::Error> {
    if production && !args.allow_destructive {
        return Ok(fail(
            &"the production profile needs --allow-destructive to run down (it reverts schema, and may drop data)",
        ));
    }
    let opts = DownOptions { steps: args.steps, allow_destructive: args.allow_destructive || !production };
    let mut reports = Vec::new();
    for t in targets(&args.common, config).await? {
        reports.push(t.migrator(&args.common, json)?.down(&opts).await?);
    }
    print_reports(&reports, json, "reverted");
    Ok(ExitCode::SUCCESS)
}

fn print_reports(reports: &[MigrationReport], json: bool, verb: &str) {
    if json {
        print_json(&reports);
        return;
    }
    for r in reports {
        match r.ran.len() {
            0 => println!("{}: up to date, nothing {verb}", r.store),
            n => println!("{}: {verb} {n} migration{}", r.store, if n == 1 { "" } else { "s" }),
        }
        for m in &r.ran {
            println!("  {}_{} ({} ms)", m.version, m.name, m.duration_ms);
        }
    }
}

async fn repair(args: &RepairArgs, config: &fwdb::Config, json: bool) -> Result<ExitCode, fwdb::Error> {
    let version = fwdb::parse_migration_version(&args.accept)?;
    let mut repaired = Vec::new();
    for t in targets(&args.common, config).await? {
        let m = t.migrator(&args.common, json)?;
        let st = m.status().await?;
        let repairable = st
            .migrations
            .iter()
            .any(|s| s.version == version && matches!(s.state, MigrationState::Changed | MigrationState::Failed));
        if repairable {
            repaired.push((t.set.store(), m.repair(version, &args.reason).await?));
        }
    }
    if repaired.is_empty() {
        return Ok(fail(&format!(
            "no changed or failed migration with version {version}: nothing to repair (see `fwdb migrate status`)"
        )));
    }
    if json {
        print_json(&repaired.iter().map(|(_, s)| s).collect::<Vec<_>>());
    } else {
        for (store, s) in &repaired {
            println!("{store}: {}_{} repaired: {}", s.version, s.name, args.reason);
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn baseline(args: &BaselineArgs, config: &fwdb::Config, json: bool) -> Result<ExitCode, fwdb::Error> {
    let version = fwdb::parse_migration_version(&args.version)?;
    let mut done = Vec::new();
    for t in targets(&args.common, config).await? {
        if t.set.get(version).is_none() {
            continue;
        }
        let n = t.migrator(&args.common, json)?.baseline(version, args.reason.as_deref()).await?;
        done.push(serde_json::json!({ "store": t.set.store(), "recorded": n }));
        if !json {
            println!("{}: recorded {n} migration{} as baseline", t.set.store(), if n == 1 { "" } else { "s" });
        }
    }
    if done.is_empty() {
        return Ok(fail(&format!("no migration has version {version} in the selected databases")));
    }
    if json {
        print_json(&done);
    }
    Ok(ExitCode::SUCCESS)
}

/// "30s", "500ms", "2m", or plain seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("{s:?} is not a duration like 30s or 500ms"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "" | "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        _ => Err(format!("{s:?}: unknown unit {unit:?} (use ms, s or m)")),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("soon").is_err());
    }
}
