//! `fwdb check queries` (architecture 12, pre-deployment): EXPLAIN every
//! query shape the repositories issue against the live schema, and read the
//! catalog, to flag
//! - sequential scans on tables with more than `server.seq_scan_min_rows` rows,
//! - foreign keys whose referencing columns no index starts with,
//! - duplicate indexes (same table, columns, expressions and predicate),
//! - unused indexes (never scanned, not unique, on a table above the same size).
//!
//! Exit 0 with no finding, 1 with findings (CI gates on it), 2 on errors.
//! The shapes are listed in [`shapes`]: the reads of `PgRepository`
//! (find by id, by ids, pages newest first, count, exists) for each entity,
//! plus the entity-specific ones (users by email, avatars of a user, items
//! by SKU and category). Writes are by primary key and need no plan check.

use crate::output::{print_json, print_table, EXIT_FAILED};
use fwdb::{Avatar, Item, Order, Query, User, Uuid};
use serde::Serialize;
use std::process::ExitCode;

#[derive(Debug, Clone, clap::Args)]
pub struct QueriesArgs {
    /// Flag sequential scans on tables with more rows than this [default: server.seq_scan_min_rows]
    #[arg(long, value_name = "ROWS")]
    pub seq_scan_min_rows: Option<i64>,
}

/// One problem found.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// seq_scan, fk_without_index, duplicate_index, unused_index
    pub kind: &'static str,
    /// `schema.table`
    pub table: String,
    /// The query shape, constraint or index concerned.
    pub subject: String,
    pub detail: String,
}

#[derive(Debug, Serialize)]
struct Report {
    shapes_explained: usize,
    findings: Vec<Finding>,
}

/// One query shape: its name, its table and its plan.
struct Shape {
    name: &'static str,
    schema: &'static str,
    table: &'static str,
    plan: fwdb::Result<String>,
}

async fn shapes(conn: &tokio_postgres::Client) -> Vec<Shape> {
    let id = Uuid::nil();
    let strong = fwdb::Consistency::Strong;
    macro_rules! shape {
        ($name:expr, $t:ty, $q:expr) => {
            Shape {
                name: $name,
                schema: <$t as fwdb::Entity>::SCHEMA,
                table: <$t as fwdb::Entity>::TABLE,
                plan: $q.consistency(strong).explain(conn, false).await,
            }
        };
    }
    vec![
        shape!("users.find_by_id", User, Query::<User>::new().filter(User::ID.eq(id)).limit(1)),
        shape!(
            "users.find_by_email",
            User,
            Query::<User>::new().filter(User::EMAIL.eq_ignore_case("a@example.com")).limit(1)
        ),
        shape!("users.find_many_by_ids", User, Query::<User>::new().filter(User::ID.in_(vec![id, id]))),
        shape!("users.page_newest", User, Query::<User>::new().order_by(User::CREATED_AT, Order::Desc).limit(50)),
        shape!("avatars.find_by_id", Avatar, Query::<Avatar>::new().filter(Avatar::ID.eq(id)).limit(1)),
        shape!(
            "avatars.of_user",
            Avatar,
            Query::<Avatar>::new().filter(Avatar::USER_ID.eq(id)).order_by(Avatar::CREATED_AT, Order::Desc).limit(50)
        ),
        shape!(
            "avatars.page_newest",
            Avatar,
            Query::<Avatar>::new().order_by(Avatar::CREATED_AT, Order::Desc).limit(50)
        ),
        shape!("items.find_by_id", Item, Query::<Item>::new().filter(Item::ID.eq(id)).limit(1)),
        shape!("items.find_by_sku", Item, Query::<Item>::new().filter(Item::SKU.eq("SKU-1")).limit(1)),
        shape!(
            "items.in_category",
            Item,
            Query::<Item>::new().filter(Item::CATEGORY_PATH.descendant_of("women.shoes")).limit(50)
        ),
        shape!("items.page_newest", Item, Query::<Item>::new().order_by(Item::CREATED_AT, Order::Desc).limit(50)),
    ]
}

/// Runs the checks; the caller prints and picks the exit code.
pub async fn check(config: &fwdb::Config, seq_scan_min_rows: i64) -> fwdb::Result<(usize, Vec<Finding>)> {
    let conn = fwdb::connect(&config.postgres, fwdb::ConnectTarget::Primary).await?;
    let mut findings = Vec::new();
    let shapes = shapes(&conn).await;
    let rows = conn
        .query(
            "select n.nspname::text, c.relname::text, greatest(c.reltuples, coalesce(s.n_live_tup, 0))::int8
               from pg_class c join pg_namespace n on n.oid = c.relnamespace
               left join pg_stat_user_tables s on s.relid = c.oid
              where c.relkind in ('r', 'p') and n.nspname not in ('pg_catalog', 'information_schema')",
            &[],
        )
        .await?;
    let size = |schema: &str, table: &str| {
        rows.iter()
            .find(|r| r.get::<_, String>(0) == schema && r.get::<_, String>(1) == table)
            .map(|r| r.get::<_, i64>(2))
            .unwrap_or(0)
    };
    let mut explained = 0;
    for s in shapes {
        match s.plan {
            Ok(plan) => {
                explained += 1;
                let n = size(s.schema, s.table);
                if plan.contains(&format!("Seq Scan on {}", s.table)) && n > seq_scan_min_rows {
                    findings.push(Finding {
                        kind: "seq_scan",
                        table: format!("{}.{}", s.schema, s.table),
                        subject: s.name.into(),
                        detail: format!("sequential scan of {n} rows: {}", plan.lines().next().unwrap_or("").trim()),
                    });
                }
            }
            Err(e) => {
                eprintln!("error: EXPLAIN of {} failed", s.name);
                return Err(e);
            }
        }
    }
    // Foreign keys whose columns are not the leading columns of some index.
    for r in conn
        .query(
            "select n.nspname::text, t.relname::text, c.conname::text,
                    (select string_agg(a.attname, ', ' order by k.ord) from unnest(c.conkey) with ordinality k(attnum, ord)
                       join pg_attribute a on a.attrelid = c.conrelid and a.attnum = k.attnum)
               from pg_constraint c join pg_class t on t.oid = c.conrelid join pg_namespace n on n.oid = t.relnamespace
              where c.contype = 'f' and n.nspname not in ('pg_catalog', 'information_schema')
                and not exists (select 1 from pg_index i where i.indrelid = c.conrelid
                                  and (i.indkey::int2[])[0:cardinality(c.conkey) - 1] @> c.conkey
                                  and (i.indkey::int2[])[0:cardinality(c.conkey) - 1] <@ c.conkey)
              order by 1, 2, 3",
            &[],
        )
        .await?
    {
        findings.push(Finding {
            kind: "fk_without_index",
            table: format!("{}.{}", r.get::<_, String>(0), r.get::<_, String>(1)),
            subject: r.get(2),
            detail: format!("no index starts with ({}): deletes and updates of the referenced rows scan this table", r.get::<_, Option<String>>(3).unwrap_or_default()),
        });
    }
    // Duplicate indexes: same table, key columns, expressions and predicate.
    for r in conn
        .query(
            "select n.nspname::text, t.relname::text, string_agg(ic.relname::text, ', ' order by ic.relname)
               from pg_index i join pg_class ic on ic.oid = i.indexrelid join pg_class t on t.oid = i.indrelid
               join pg_namespace n on n.oid = t.relnamespace
              where n.nspname not in ('pg_catalog', 'information_schema', 'pg_toast')
              group by n.nspname, t.relname, i.indrelid, i.indkey::text, i.indclass::text, coalesce(pg_get_expr(i.indexprs, i.indrelid), ''), coalesce(pg_get_expr(i.indpred, i.indrelid), '')
             having count(*) > 1",
            &[],
        )
        .await?
    {
        findings.push(Finding {
            kind: "duplicate_index",
            table: format!("{}.{}", r.get::<_, String>(0), r.get::<_, String>(1)),
            subject: r.get(2),
            detail: "same columns, operator classes, expressions and predicate: keep one".into(),
        });
    }
    // Unused indexes on tables big enough to matter.
    for r in conn
        .query(
            "select s.schemaname::text, s.relname::text, s.indexrelname::text, pg_relation_size(s.indexrelid)::int8
               from pg_stat_user_indexes s join pg_index i on i.indexrelid = s.indexrelid
               join pg_class t on t.oid = s.relid
              where s.idx_scan = 0 and not i.indisunique and not i.indisprimary and t.reltuples > $1::int8",
            &[&seq_scan_min_rows],
        )
        .await?
    {
        findings.push(Finding {
            kind: "unused_index",
            table: format!("{}.{}", r.get::<_, String>(0), r.get::<_, String>(1)),
            subject: r.get(2),
            detail: format!("never scanned since statistics were reset ({} bytes)", r.get::<_, i64>(3)),
        });
    }
    Ok((explained, findings))
}

pub async fn run(args: QueriesArgs, config: &fwdb::Config, json: bool) -> fwdb::Result<ExitCode> {
    let min = args.seq_scan_min_rows.unwrap_or(config.server.seq_scan_min_rows);
    let (shapes_explained, findings) = check(config, min).await?;
    let ok = findings.is_empty();
    if json {
        print_json(&Report { shapes_explained, findings });
    } else {
        println!("{shapes_explained} query shapes explained");
        if ok {
            println!("no findings");
        } else {
            let rows: Vec<Vec<String>> = findings
                .iter()
                .map(|f| vec![f.kind.to_string(), f.table.clone(), f.subject.clone(), f.detail.clone()])
                .collect();
            print_table(&["FINDING", "TABLE", "SUBJECT", "DETAIL"], &rows);
        }
    }
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(EXIT_FAILED) })
}
