//! `fwdb roles apply|check`: the role and privilege matrix of architecture 9.1.

use std::process::ExitCode;

use crate::output::{print_json, print_table, EXIT_FAILED};

#[derive(Debug, clap::Subcommand)]
pub enum RolesCommand {
    /// Create or update the roles of 9.1 and their grants, ownership and default privileges (idempotent)
    Apply(RolesArgs),
    /// Compare the privileges in the catalog with the matrix; exit 1 on any difference
    Check(RolesArgs),
    /// Print the declared matrix
    Matrix,
}

#[derive(Debug, clap::Args)]
pub struct RolesArgs {
    /// Database whose grants to apply or check [default: postgres.database]
    #[arg(long, value_name = "NAME")]
    pub database: Option<String>,
}

fn with_database(config: &fwdb::Config, args: &RolesArgs) -> Result<fwdb::Config, fwdb::Error> {
    let mut config = config.clone();
    if let Some(db) = &args.database {
        config.postgres.database = fwdb::validate_identifier(db)?.to_string();
    }
    fwdb::validate_identifier(&config.postgres.database)?;
    fwdb::validate_identifier(&config.postgres.user)?;
    fwdb::validate_identifier(&config.postgres.admin.user)?;
    Ok(config)
}

pub async fn run(cmd: RolesCommand, config: &fwdb::Config, json: bool) -> Result<ExitCode, fwdb::Error> {
    match cmd {
        RolesCommand::Matrix => {
            let m = fwdb::privilege_matrix();
            if json {
                print_json(&m);
            } else {
                let mut header = vec!["role", "login"];
                header.extend(fwdb::SECURED_SCHEMAS);
                let rows: Vec<Vec<String>> = m
                    .iter()
                    .map(|r| {
                        let mut row = vec![r.name.to_string(), r.login.to_string()];
                        row.extend(r.access.iter().map(|(_, a)| format!("{a:?}").to_lowercase()));
                        row
                    })
                    .collect();
                print_table(&header, &rows);
            }
            Ok(ExitCode::SUCCESS)
        }
        RolesCommand::Apply(args) => {
            let config = with_database(config, &args)?;
            let client = fwdb::connect_admin(&config).await?;
            let report = fwdb::apply_roles(&client, &config).await?;
            if json {
                print_json(&report);
            } else {
                println!(
                    "roles applied to database {} (schemas: {}; runtime login {} is a member of app_readwrite, migrator {} of app_admin)",
                    report.database,
                    report.schemas.join(", "),
                    report.runtime,
                    report.migrator
                );
                for m in &report.memberships_revoked {
                    println!("revoked membership the matrix does not declare: {m}");
                }
                if !report.roles_created.is_empty() {
                    println!("created roles: {}", report.roles_created.join(", "));
                }
                if !report.passwords_set.is_empty() {
                    println!("passwords (SCRAM-SHA-256) for: {}", report.passwords_set.join(", "));
                }
                for r in &report.passwords_missing {
                    eprintln!(
                        "warning: no password configured for {r} (security.{r}_password or _file): it cannot log in"
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        RolesCommand::Check(args) => {
            let config = with_database(config, &args)?;
            let client = fwdb::connect_admin(&config).await?;
            let diffs = fwdb::check_roles(&client, &config).await?;
            if json {
                print_json(
                    &serde_json::json!({ "database": config.postgres.database, "ok": diffs.is_empty(), "differences": diffs }),
                );
            } else if diffs.is_empty() {
                println!("roles and privileges of database {} match the matrix", config.postgres.database);
            } else {
                println!("{} difference(s) from the matrix in database {}:", diffs.len(), config.postgres.database);
                for d in &diffs {
                    println!("  {d}");
                }
            }
            Ok(if diffs.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(EXIT_FAILED) })
        }
    }
}
