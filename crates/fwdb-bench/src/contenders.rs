//! The contenders of `fwdb-bench postgres` (and `--paired`): who runs an
//! operation (fwdb's repository, raw tokio-postgres, pools, sqlx, SeaORM),
//! what operation, and one timed cell of it.

use crate::raw::{raw_user, sql_insert, sql_list, sql_point};
use crate::{BoxErr, Res, RAW_SHARED};
use fwdb::{NewUser, PgCluster, Repository, User, UserRepo};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Tasks of the warm-up and the clients of the raw and pooled contenders.
pub(crate) const POOL: usize = 64;

pub(crate) mod users {
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
pub(crate) struct SqlxUser {
    pub(crate) id: Uuid,
    pub(crate) email: String,
    pub(crate) first_name: String,
    pub(crate) last_name: String,
    pub(crate) role: String,
    pub(crate) created_at: chrono::DateTime<chrono::Utc>,
    pub(crate) updated_at: chrono::DateTime<chrono::Utc>,
    pub(crate) deleted_at: Option<chrono::DateTime<chrono::Utc>>,
    pub(crate) created_by: Option<Uuid>,
    pub(crate) updated_by: Option<Uuid>,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub(crate) enum Who {
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
    pub(crate) fn name(self) -> &'static str {
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
pub(crate) enum Op {
    Point,
    List,
    Insert,
}

impl Op {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Op::Point => "point read by id",
            Op::List => "filtered list of 20",
            Op::Insert => "single insert",
        }
    }
}

pub(crate) struct RawClient {
    pub(crate) c: tokio_postgres::Client,
    pub(crate) point: tokio_postgres::Statement,
    pub(crate) list: tokio_postgres::Statement,
    pub(crate) insert: tokio_postgres::Statement,
    pub(crate) bulk: tokio_postgres::Statement,
}

pub(crate) struct Ctx {
    pub(crate) cluster: PgCluster,
    /// The same servers with `postgres.pool.multiplex = 0`.
    pub(crate) own: PgCluster,
    pub(crate) strong: UserRepo,
    pub(crate) eventual: UserRepo,
    pub(crate) raw: Vec<RawClient>,
    pub(crate) sqlx: sqlx::PgPool,
    pub(crate) dp_fifo: deadpool_postgres::Pool,
    pub(crate) dp_lifo: deadpool_postgres::Pool,
    pub(crate) orm: sea_orm::DatabaseConnection,
    pub(crate) ids: Vec<Uuid>,
    pub(crate) seq: AtomicU64,
    pub(crate) run: String,
}

impl Ctx {
    pub(crate) fn email(&self) -> String {
        format!("b{}-{}@bench.example", self.run, self.seq.fetch_add(1, Ordering::Relaxed))
    }
}

pub(crate) const SQL_BULK: &str = "INSERT INTO shared.users (id, email, first_name, last_name, role, created_by, updated_by) \
    SELECT unnest($1::uuid[]), unnest($2::text[]), unnest($3::text[]), unnest($4::text[]), unnest($5::text[]), $6::uuid, $7::uuid";

/// One call of `op` by `who`, task `task`; `rng` picks the id.
pub(crate) async fn once(
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
pub(crate) async fn warm_up(ctx: &Arc<Ctx>, who: &[Who]) -> Res<()> {
    eprintln!("warm-up ...");
    for op in [Op::Point, Op::List, Op::Insert] {
        for &w in who {
            measure(ctx, w, op, POOL, 0.3).await?;
        }
    }
    Ok(())
}

/// Operations per second of `conc` tasks calling `op` through `who` for `secs`.
pub(crate) async fn measure(ctx: &Arc<Ctx>, who: Who, op: Op, conc: usize, secs: f64) -> Res<f64> {
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
