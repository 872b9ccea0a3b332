//! `fwdb-bench mongo`: the design repository
//! (`DesignRepo` on the `Mongo` handle: pool-wait semaphore, validation in
//! Rust, the query AST compiled to a filter, BSON → `Design`) against the raw
//! `mongodb` driver doing the same work on the same server: the same filter,
//! sort and update documents, and the same BSON → `Design` conversion
//! (`fwdb::design_from_doc`), so the ratio measures fwdb's overhead, not
//! parsing.
//!
//! A private local stack (its MongoDB-protocol server, write concern
//! majority), the embedded migrations, 40 seeded designs of one user; then
//! rounds in which every operation runs `--ops` times through each side in
//! turn (the side going first alternates), one task. Reported: the median
//! ops/s of the rounds and the ratio repository / raw driver (1.00 = as fast).
//! Then the client-side cost alone: the same calls on an executor answering
//! from memory, in microseconds per operation.
//!
//! Usage: `cargo run --release -p fwdb-bench -- mongo [--rounds N (11)] [--ops N (200)]`.

use futures::TryStreamExt;
use fwdb::{
    design_from_doc, Design, DesignPatch, DesignRepo, DesignStatus, Layer, LayerType, Mongo, MongoExec, NewDesign,
    Repository,
};
use fwdb_testkit::{Stack, StackOptions};
use mongodb::bson::{doc, Bson, Document};
use mongodb::Collection;
use std::collections::BTreeMap;
use std::time::Instant;
use uuid::Uuid;

type BoxErr = Box<dyn std::error::Error + Send + Sync>;
type Res<T> = std::result::Result<T, BoxErr>;

const SEEDED: usize = 40;
const LIST: i64 = 20;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Side {
    Raw,
    Repo,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Op {
    FindById,
    ListByUser,
    Insert,
    /// Of the designs the insert cell of the same side made (version 1 → 2).
    Update,
}

impl Op {
    const ALL: [Op; 4] = [Op::FindById, Op::ListByUser, Op::Insert, Op::Update];

    fn name(self) -> &'static str {
        match self {
            Op::FindById => "find by id",
            Op::ListByUser => "list by user and status, newest first, 20",
            Op::Insert => "insert",
            Op::Update => "versioned update (filter on version, $inc, $push history)",
        }
    }
}

struct Args {
    rounds: usize,
    ops: usize,
}

const USAGE: &str = "usage: fwdb-bench mongo [--rounds N (11)] [--ops N per cell (200)]";

fn args(argv: &[String]) -> Res<Args> {
    let mut a = Args { rounds: 11, ops: 200 };
    let mut it = argv.iter();
    while let Some(x) = it.next() {
        match x.as_str() {
            "--rounds" => a.rounds = it.next().ok_or("--rounds N")?.parse()?,
            "--ops" => a.ops = it.next().ok_or("--ops N")?.parse()?,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}\n{USAGE}").into()),
        }
    }
    if a.rounds == 0 || a.ops == 0 {
        return Err(USAGE.into());
    }
    Ok(a)
}

/// `fwdb-bench mongo ...` (the arguments after `mongo`).
pub fn main(argv: Vec<String>) -> Res<()> {
    let a = args(&argv)?;
    eprintln!("load before start: {}", uptime());
    let t0 = Instant::now();
    let stack = Stack::start(StackOptions { replicas: 0, mongo: true, ..Default::default() })?;
    eprintln!("stack up in {:.1} s: {}", t0.elapsed().as_secs_f64(), stack.summary());
    let res = (|| -> Res<()> {
        let db = stack.create_database()?;
        let rt = tokio::runtime::Runtime::new()?;
        rt.block_on(run(&stack, &db, &a))
    })();
    let _ = stack.stop();
    res
}

struct Ctx {
    db: Mongo,
    raw: Collection<Document>,
    repo: DesignRepo,
    user: Uuid,
    seed: Uuid,
    /// Designs made by each side's insert cell, for its update cell.
    made: BTreeMap<Side, Vec<Uuid>>,
}

async fn run(stack: &Stack, db: &str, a: &Args) -> Res<()> {
    let cfg = stack.info().config(db, db, &[("FWDB__MONGO__POOL__MIN_SIZE", "1")])?;
    let mongo = Mongo::connect(&cfg).await?;
    let set = fwdb::MigrationSource::Embedded.load(fwdb::Store::Mongo)?;
    fwdb::Migrator::mongo(mongo.database(), &set)?.up(&fwdb::UpOptions::default()).await?;
    // The raw side: its own client with the very same options (pool, write concern, read preference).
    let raw_client = mongodb::Client::with_options(fwdb::mongo_client_options(&cfg.mongo).await?)?;
    let mut ctx = Ctx {
        raw: raw_client.database(&cfg.mongo.database).collection("designs"),
        db: mongo,
        repo: DesignRepo::new(),
        user: Uuid::new_v4(),
        seed: Uuid::nil(),
        made: BTreeMap::new(),
    };
    for i in 0..SEEDED {
        let d = ctx.repo.create(&ctx.db, &new_design(ctx.user, &format!("seed {i}"))).await?;
        ctx.seed = d.id;
    }

    eprintln!("warm-up ...");
    for side in [Side::Raw, Side::Repo] {
        for op in Op::ALL {
            cell(&mut ctx, side, op, 10).await?;
        }
    }
    let mut results: BTreeMap<(Op, Side), Vec<f64>> = BTreeMap::new();
    let mut loads = Vec::new();
    for round in 0..a.rounds {
        loads.push(uptime());
        eprintln!("round {} of {} (load {})", round + 1, a.rounds, uptime());
        let order = if round % 2 == 0 { [Side::Raw, Side::Repo] } else { [Side::Repo, Side::Raw] };
        for op in Op::ALL {
            for side in order {
                let ops_per_s = cell(&mut ctx, side, op, a.ops).await?;
                results.entry((op, side)).or_default().push(ops_per_s);
            }
        }
    }
    loads.push(uptime());
    let overhead = client_side_cost().await?;
    println!("{}", report(a, stack, &results, &loads, &overhead));
    Ok(())
}

fn layer(id: &str, kind: LayerType, order: i64) -> Layer {
    Layer { id: id.into(), kind, data: serde_json::json!({"color": "#aa0000"}), order }
}

fn new_design(user: Uuid, name: &str) -> NewDesign {
    let mut n = NewDesign::new(user, name);
    n.layers = vec![layer("base", LayerType::Silhouette, 0)];
    n.metadata.tags = vec!["summer".into()];
    n
}

/// `n` operations of one kind through one side, in ops/s.
async fn cell(ctx: &mut Ctx, side: Side, op: Op, n: usize) -> Res<f64> {
    let start = Instant::now();
    for i in 0..n {
        match (op, side) {
            (Op::FindById, Side::Raw) => {
                let d = ctx
                    .raw
                    .find_one(doc! {"_id": ctx.seed.to_string(), "deletedAt": Bson::Null})
                    .await?
                    .ok_or("no design")?;
                std::hint::black_box(design_from_doc(&d)?);
            }
            (Op::FindById, Side::Repo) => {
                std::hint::black_box(ctx.repo.find_by_id(&ctx.db, ctx.seed).await?.ok_or("no design")?);
            }
            (Op::ListByUser, Side::Raw) => {
                let docs: Vec<Document> = ctx
                    .raw
                    .find(doc! {"userId": ctx.user.to_string(), "status": "draft", "deletedAt": Bson::Null})
                    .sort(doc! {"createdAt": -1, "_id": 1})
                    .limit(LIST)
                    .await?
                    .try_collect()
                    .await?;
                let v = docs.iter().map(design_from_doc).collect::<fwdb::Result<Vec<Design>>>()?;
                check_len(v.len())?;
            }
            (Op::ListByUser, Side::Repo) => {
                let v = ctx.repo.list_by_user(&ctx.db, ctx.user, DesignStatus::Draft, LIST).await?;
                check_len(v.len())?;
            }
            (Op::Insert, _) => {
                let id = insert(ctx, side, &new_design(Uuid::new_v4(), &format!("bench {i}"))).await?;
                ctx.made.entry(side).or_default().push(id);
            }
            (Op::Update, _) => {
                let id = ctx
                    .made
                    .get_mut(&side)
                    .and_then(Vec::pop)
                    .ok_or("no design left to update: run the insert cell first")?;
                std::hint::black_box(update(ctx, side, id).await?);
            }
        }
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

fn check_len(n: usize) -> Res<()> {
    if n as i64 != LIST {
        return Err(format!("the list returned {n} designs, expected {LIST}").into());
    }
    Ok(())
}

async fn insert(ctx: &Ctx, side: Side, n: &NewDesign) -> Res<Uuid> {
    if side == Side::Repo {
        return Ok(ctx.repo.create(&ctx.db, n).await?.id);
    }
    let id = Uuid::new_v4();
    ctx.raw.insert_one(raw_doc(n, id)).await?;
    Ok(id)
}

/// The document `DesignRepo::create` writes, built by hand.
fn raw_doc(n: &NewDesign, id: Uuid) -> Document {
    let now = Bson::DateTime(mongodb::bson::DateTime::now());
    let layers: Vec<Bson> = n
        .layers
        .iter()
        .map(|l| {
            Bson::Document(
                doc! {"id": &l.id, "type": l.kind.as_str(), "data": fwdb::json_bson(&l.data), "order": l.order},
            )
        })
        .collect();
    let content = doc! {
        "name": &n.name, "status": "draft", "layers": layers,
        "metadata": {"tags": n.metadata.tags.clone(), "description": Bson::Null, "thumbnailUrl": Bson::Null},
        "catalogItemIds": [], "avatarId": Bson::Null,
    };
    let mut d = doc! { "_id": id.to_string(), "userId": n.user_id.to_string() };
    d.extend(content.clone());
    d.insert("version", 1i64);
    d.insert(
        "history",
        vec![doc! {"version": 1i64, "changedAt": now.clone(), "changedBy": n.user_id.to_string(), "changes": content}],
    );
    d.insert("createdAt", now.clone());
    d.insert("updatedAt", now);
    d
}

async fn update(ctx: &Ctx, side: Side, id: Uuid) -> Res<Design> {
    if side == Side::Repo {
        let mut p = DesignPatch::new(1, "bench");
        p.name = Some("renamed".into());
        return Ok(ctx.repo.update(&ctx.db, id, &p).await?);
    }
    let now = Bson::DateTime(mongodb::bson::DateTime::now());
    let d = ctx
        .raw
        .find_one_and_update(
            doc! {"_id": id.to_string(), "deletedAt": Bson::Null, "version": 1i64},
            doc! {"$set": {"name": "renamed", "updatedAt": now.clone()}, "$inc": {"version": 1i64},
                  "$push": {"history": {"version": 2i64, "changedAt": now, "changedBy": "bench", "changes": {"name": "renamed"}}}},
        )
        .return_document(mongodb::options::ReturnDocument::After)
        .await?
        .ok_or("no design to update")?;
    Ok(design_from_doc(&d)?)
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

fn uptime() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn report(
    a: &Args,
    stack: &Stack,
    results: &BTreeMap<(Op, Side), Vec<f64>>,
    loads: &[String],
    overhead: &[(Op, f64, f64)],
) -> String {
    let kind = stack.mongo_kind().map(|k| k.describe()).unwrap_or("?");
    let mut out = format!(
        "\nfwdb-bench mongo: {} rounds x {} operations per cell, interleaved (the side going first alternates), 1 task; \
         {kind}, write concern majority; load averages (1/5/15 min) at each round: {}\n\n",
        a.rounds,
        a.ops,
        loads.join(" | ")
    );
    out.push_str(
        "| operation | raw driver ops/s (median) | repository ops/s (median) | ratio repo/raw | ratio per round |\n",
    );
    out.push_str("| --- | ---: | ---: | ---: | --- |\n");
    for op in Op::ALL {
        let raw = results.get(&(op, Side::Raw)).cloned().unwrap_or_default();
        let repo = results.get(&(op, Side::Repo)).cloned().unwrap_or_default();
        let per_round: Vec<f64> = raw.iter().zip(&repo).map(|(r, p)| p / r).collect();
        let each: Vec<String> = per_round.iter().map(|x| format!("{x:.2}")).collect();
        out.push_str(&format!(
            "| {} | {:.0} | {:.0} | {:.2} | {} |\n",
            op.name(),
            median(&raw),
            median(&repo),
            median(&per_round),
            each.join(" ")
        ));
    }
    out.push_str(
        "\nClient-side cost alone (an executor answering from memory; µs per operation, median of 9 x 2,000):\n\n",
    );
    out.push_str(
        "| operation | raw side (conversion only) | repository | fwdb's own cost |\n| --- | ---: | ---: | ---: |\n",
    );
    for (op, raw, repo) in overhead {
        out.push_str(&format!("| {} | {raw:.1} | {repo:.1} | {:.1} |\n", op.name(), repo - raw));
    }
    out
}

/// The client-side work of each operation with the server taken out: the
/// repository on [`MemExec`] against the raw side's own work (building the
/// documents and converting the answers), in µs per operation.
async fn client_side_cost() -> Res<Vec<(Op, f64, f64)>> {
    let user = Uuid::new_v4();
    let repo = DesignRepo::new();
    let one = raw_doc(&new_design(user, "mem"), Uuid::new_v4());
    let id = Uuid::parse_str(one.get_str("_id")?)?;
    let mem = MemExec::new(one.clone())?;
    let mut out = Vec::new();
    for op in Op::ALL {
        let mut raw_t = Vec::new();
        let mut repo_t = Vec::new();
        for _ in 0..9 {
            raw_t.push(time_us(2000, || async { raw_side_work(op, &one, user) }).await?);
            repo_t.push(time_us(2000, || async { repo_side_work(op, &repo, &mem, id, user).await }).await?);
        }
        out.push((op, median(&raw_t), median(&repo_t)));
    }
    Ok(out)
}

async fn time_us<F, Fut>(n: usize, f: F) -> Res<f64>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Res<()>>,
{
    let start = Instant::now();
    for _ in 0..n {
        f().await?;
    }
    Ok(start.elapsed().as_secs_f64() * 1e6 / n as f64)
}

/// The raw side's client work, with the same document copies [`MemExec`]
/// hands the repository (the driver yields owned documents too).
fn raw_side_work(op: Op, stored: &Document, user: Uuid) -> Res<()> {
    match op {
        Op::FindById => {
            std::hint::black_box(design_from_doc(&stored.clone())?);
        }
        Op::ListByUser => {
            let docs = vec![stored.clone(); LIST as usize];
            std::hint::black_box(docs.iter().map(design_from_doc).collect::<fwdb::Result<Vec<Design>>>()?);
        }
        Op::Insert => {
            std::hint::black_box(raw_doc(&new_design(user, "mem"), Uuid::new_v4()));
        }
        Op::Update => {
            let now = Bson::DateTime(mongodb::bson::DateTime::now());
            std::hint::black_box(
                doc! {"$set": {"name": "renamed", "updatedAt": now.clone()}, "$inc": {"version": 1i64},
                "$push": {"history": {"version": 2i64, "changedAt": now, "changedBy": "bench", "changes": {"name": "renamed"}}}},
            );
            std::hint::black_box(design_from_doc(&stored.clone())?);
        }
    }
    Ok(())
}

async fn repo_side_work(op: Op, repo: &DesignRepo, mem: &MemExec, id: Uuid, user: Uuid) -> Res<()> {
    match op {
        Op::FindById => {
            std::hint::black_box(repo.find_by_id(mem, id).await?);
        }
        Op::ListByUser => {
            std::hint::black_box(repo.list_by_user(mem, user, DesignStatus::Draft, LIST).await?);
        }
        Op::Insert => {
            std::hint::black_box(repo.create(mem, &new_design(user, "mem")).await?);
        }
        Op::Update => {
            let mut p = DesignPatch::new(1, "bench");
            p.name = Some("renamed".into());
            std::hint::black_box(repo.update(mem, id, &p).await?);
        }
    }
    Ok(())
}

/// An executor with no server: every read answers the one stored design
/// (a list, `LIST` copies of it), every write succeeds. For measuring the
/// repository's own cost only.
struct MemExec {
    doc: Document,
    db: mongodb::Database,
}

impl MemExec {
    fn new(doc: Document) -> Res<MemExec> {
        // The trait wants a database handle; this one is never used, so no connection is made.
        let db = mongodb::Client::with_options(mongodb::options::ClientOptions::default())?.database("mem");
        Ok(MemExec { doc, db })
    }
}

impl MongoExec for MemExec {
    fn database(&self) -> &mongodb::Database {
        &self.db
    }

    async fn find_one(&self, _: &str, _: Document) -> fwdb::Result<Option<Document>> {
        Ok(Some(self.doc.clone()))
    }

    async fn find(&self, _: &str, _: Document, _: fwdb::FindSpec) -> fwdb::Result<Vec<Document>> {
        Ok(vec![self.doc.clone(); LIST as usize])
    }

    async fn count(&self, _: &str, _: Document) -> fwdb::Result<u64> {
        Ok(1)
    }

    async fn insert_one(&self, _: &str, _: Document) -> fwdb::Result<()> {
        Ok(())
    }

    async fn insert_many(&self, _: &str, _: Vec<Document>) -> fwdb::Result<()> {
        Ok(())
    }

    async fn find_one_and_update(&self, _: &str, _: Document, _: Document) -> fwdb::Result<Option<Document>> {
        Ok(Some(self.doc.clone()))
    }

    async fn update_one(&self, _: &str, _: Document, _: Document, _: bool) -> fwdb::Result<u64> {
        Ok(1)
    }

    async fn delete_one(&self, _: &str, _: Document) -> fwdb::Result<u64> {
        Ok(1)
    }

    async fn delete_many(&self, _: &str, _: Document) -> fwdb::Result<u64> {
        Ok(1)
    }
}
