//! `fwdb check refs`: references between the two stores (polyglot persistence,
//! architecture 2.2) that point at nothing. Designs (MongoDB) whose avatarId
//! is not a live avatar of the same user in PostgreSQL; avatars whose
//! model_ref is not a live design. Exit 0 when none, 1 when some.

use std::collections::{HashMap, HashSet};
use std::process::ExitCode;

use fwdb::{Avatar, AvatarRepo, Design, DesignRepo, Mongo, Query, Repository, Uuid};
use serde::Serialize;

use crate::output::{print_json, print_table, EXIT_FAILED};

#[derive(Debug, clap::Subcommand)]
pub enum CheckCommand {
    /// Dangling references between MongoDB designs and PostgreSQL avatars, both ways
    Refs(RefsArgs),
    /// EXPLAIN every repository query shape; flag seq scans on big tables, FKs without an index, unused or duplicate indexes
    Queries(super::check_queries::QueriesArgs),
}

#[derive(Debug, clap::Args)]
pub struct RefsArgs {
    /// Rows read per query
    #[arg(long, default_value_t = 500)]
    pub batch: i64,
}

/// One reference that points at nothing.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Dangling {
    /// `design.avatarId` or `avatar.model_ref`
    pub reference: &'static str,
    /// The id of the document or row holding the reference.
    pub from: String,
    /// What it points at.
    pub to: String,
    pub problem: String,
}

#[derive(Debug, Serialize)]
struct Report {
    designs_checked: usize,
    avatars_checked: usize,
    dangling: Vec<Dangling>,
}

pub async fn run(cmd: CheckCommand, config: &fwdb::Config, json: bool) -> fwdb::Result<ExitCode> {
    match cmd {
        CheckCommand::Refs(args) => refs(args, config, json).await,
        CheckCommand::Queries(args) => super::check_queries::run(args, config, json).await,
    }
}

async fn refs(args: RefsArgs, config: &fwdb::Config, json: bool) -> fwdb::Result<ExitCode> {
    let batch = args.batch.clamp(1, fwdb::MAX_LIMIT);
    let mongo = Mongo::connect(config).await?;
    let pg = fwdb::connect(&config.postgres, fwdb::ConnectTarget::Primary).await?;
    let designs = DesignRepo::new();
    let avatars = AvatarRepo::new();
    let mut dangling = Vec::new();

    // Designs → avatars.
    let q = designs.query().filter(Design::AVATAR_ID.is_not_null()).order_by(Design::ID, fwdb::Order::Asc).limit(batch);
    let mut after: Option<String> = None;
    let mut designs_checked = 0;
    loop {
        let page_q = match &after {
            Some(c) => q.clone().after(c.clone()),
            None => q.clone(),
        };
        let page = designs.find_page(&mongo, &page_q).await?;
        designs_checked += page.items.len();
        let ids: Vec<Uuid> =
            page.items.iter().filter_map(|d| d.avatar_id).collect::<HashSet<_>>().into_iter().collect();
        let found: HashMap<Uuid, Avatar> =
            avatars.find_many_by_ids(&pg, &ids).await?.into_iter().map(|a| (a.id, a)).collect();
        for d in &page.items {
            let Some(a) = d.avatar_id else { continue };
            let problem = match found.get(&a) {
                None => "no live avatar with this id".to_string(),
                Some(av) if av.user_id != d.user_id => {
                    format!("avatar belongs to user {}, design to {}", av.user_id, d.user_id)
                }
                Some(_) => continue,
            };
            dangling.push(Dangling {
                reference: "design.avatarId",
                from: d.id.to_string(),
                to: a.to_string(),
                problem,
            });
        }
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }

    // Avatars → designs.
    let q: Query<Avatar> =
        avatars.query().filter(Avatar::MODEL_REF.is_not_null()).order_by(Avatar::ID, fwdb::Order::Asc).limit(batch);
    let mut after: Option<String> = None;
    let mut avatars_checked = 0;
    loop {
        let page_q = match &after {
            Some(c) => q.clone().after(c.clone()),
            None => q.clone(),
        };
        let page = avatars.find_page(&pg, &page_q).await?;
        avatars_checked += page.items.len();
        let ids: Vec<Uuid> =
            page.items.iter().filter_map(|a| a.model_ref.as_deref().and_then(|r| Uuid::parse_str(r).ok())).collect();
        let found: HashSet<Uuid> = designs.find_many_by_ids(&mongo, &ids).await?.into_iter().map(|d| d.id).collect();
        for a in &page.items {
            let Some(r) = a.model_ref.as_deref() else { continue };
            let problem = match Uuid::parse_str(r) {
                Err(_) => "not a design id (malformed)".to_string(),
                Ok(id) if !found.contains(&id) => "no live design with this id".to_string(),
                Ok(_) => continue,
            };
            dangling.push(Dangling {
                reference: "avatar.model_ref",
                from: a.id.to_string(),
                to: r.to_string(),
                problem,
            });
        }
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }

    let report = Report { designs_checked, avatars_checked, dangling };
    if json {
        print_json(&report);
    } else {
        println!(
            "checked {} design(s) with an avatar and {} avatar(s) with a model_ref: {} dangling reference(s)",
            report.designs_checked,
            report.avatars_checked,
            report.dangling.len()
        );
        if !report.dangling.is_empty() {
            let rows: Vec<Vec<String>> = report
                .dangling
                .iter()
                .map(|d| vec![d.reference.to_string(), d.from.clone(), d.to.clone(), d.problem.clone()])
                .collect();
            print_table(&["REFERENCE", "FROM", "TO", "PROBLEM"], &rows);
        }
    }
    Ok(if report.dangling.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(EXIT_FAILED) })
}
