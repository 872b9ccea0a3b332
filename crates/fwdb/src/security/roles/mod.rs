//! The role and privilege matrix of architecture 9.1, `apply` (idempotent,
//! safe to run concurrently) and `check` (catalog against the matrix).
//!
//! Roles are cluster-wide; grants, ownership and default privileges are per
//! database (the configured `postgres.database`).
//!
//! Two logins of the configuration join the matrix: `postgres.user`, which
//! services run as, is a member of app_readwrite only; `postgres.admin.user`,
//! which migrations and maintenance run as, is a member of app_admin.

mod apply;
mod check;

pub use apply::{apply_grants, apply_roles, ApplyReport};
pub use check::{check_roles, RoleDifference};

use super::ident::validate_identifier;
use crate::config::{Config, Secret};
use crate::error::{Error, Result};
use crate::postgres::{connect, ConnectTarget};
use serde::Serialize;
use std::collections::BTreeSet;
use tokio_postgres::Client;

/// The schemas whose privileges the matrix governs (architecture 7.1).
pub const SECURED_SCHEMAS: [&str; 5] = ["shared", "avatar", "catalog", "design", "audit"];
/// NOLOGIN roles that others are granted.
pub const GROUP_ROLES: [&str; 3] = ["app_readonly", "app_readwrite", "app_admin"];
/// Roles services log in as, each confined to its own schema.
pub const LOGIN_ROLES: [&str; 3] = ["avatar_service", "catalog_service", "design_service"];

pub(super) const ADMIN: &str = "app_admin";
const READWRITE: &str = "app_readwrite";
const TABLE_ALL: [&str; 7] = ["SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER"];
const SEQ_ALL: [&str; 3] = ["SELECT", "UPDATE", "USAGE"];

/// What a role may do in a schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    None,
    /// USAGE on the schema; SELECT on tables and sequences.
    Read,
    /// USAGE; SELECT, INSERT, UPDATE, DELETE on tables; SELECT, USAGE on sequences. No DDL, no TRUNCATE.
    ReadWrite,
    /// Owns the schema: migrations and maintenance.
    Owner,
}

impl Access {
    pub(super) fn table_privileges(self) -> BTreeSet<&'static str> {
        match self {
            Access::None => BTreeSet::new(),
            Access::Read => ["SELECT"].into(),
            Access::ReadWrite => ["SELECT", "INSERT", "UPDATE", "DELETE"].into(),
            Access::Owner => TABLE_ALL.into(),
        }
    }
    pub(super) fn sequence_privileges(self) -> BTreeSet<&'static str> {
        match self {
            Access::None => BTreeSet::new(),
            Access::Read => ["SELECT"].into(),
            Access::ReadWrite => ["SELECT", "USAGE"].into(),
            Access::Owner => SEQ_ALL.into(),
        }
    }
}

/// A privilege on some columns of one table, for a role that has no access
/// to the rest of its schema.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ColumnGrant {
    pub schema: &'static str,
    pub table: &'static str,
    pub privilege: &'static str,
    pub columns: &'static [&'static str],
}

/// What a service needs to know of the users it refers to: that a user
/// exists and is not deleted, and where to reach them. Names, roles and the
/// audit columns stay with the User service.
pub const USER_DIRECTORY: ColumnGrant =
    ColumnGrant { schema: "shared", table: "users", privilege: "SELECT", columns: &["id", "email", "deleted_at"] };

/// One role of the matrix.
#[derive(Debug, Clone, Serialize)]
pub struct RoleSpec {
    pub name: &'static str,
    pub login: bool,
    /// Access per schema of [`SECURED_SCHEMAS`], in that order.
    pub access: [(&'static str, Access); 5],
    /// Column privileges in schemas where `access` is `None`.
    pub columns: &'static [ColumnGrant],
}

impl RoleSpec {
    pub fn access_to(&self, schema: &str) -> Access {
        self.access.iter().find(|(s, _)| *s == schema).map(|(_, a)| *a).unwrap_or(Access::None)
    }

    /// USAGE on the schema: it has access to it, or to some of its columns.
    pub fn uses_schema(&self, schema: &str) -> bool {
        self.access_to(schema) != Access::None || self.columns.iter().any(|c| c.schema == schema)
    }
}

/// The declared matrix (9.1). The audit schema is written only by the
/// audit trigger (SECURITY DEFINER) and read only by app_admin: its rows
/// carry the old and new values of every change, personal data included.
pub fn privilege_matrix() -> Vec<RoleSpec> {
    use Access::*;
    let row = |sh, av, ca, de, au| [("shared", sh), ("avatar", av), ("catalog", ca), ("design", de), ("audit", au)];
    let users: &'static [ColumnGrant] = &[USER_DIRECTORY];
    vec![
        RoleSpec { name: "app_readonly", login: false, access: row(Read, Read, Read, Read, None), columns: &[] },
        RoleSpec {
            name: READWRITE,
            login: false,
            access: row(ReadWrite, ReadWrite, ReadWrite, ReadWrite, None),
            columns: &[],
        },
        RoleSpec { name: ADMIN, login: false, access: row(Owner, Owner, Owner, Owner, Owner), columns: &[] },
        RoleSpec {
            name: "avatar_service",
            login: true,
            access: row(None, ReadWrite, None, None, None),
            columns: users,
        },
        RoleSpec {
            name: "catalog_service",
            login: true,
            access: row(None, None, ReadWrite, None, None),
            columns: users,
        },
        RoleSpec {
            name: "design_service",
            login: true,
            access: row(None, None, None, ReadWrite, None),
            columns: users,
        },
    ]
}

/// A login of the configuration that the matrix makes a member of a group role.
#[derive(Debug, Clone)]
pub(super) struct ConfiguredLogin {
    /// `postgres.user` or `postgres.admin.user`, for messages.
    pub key: &'static str,
    pub name: String,
    pub group: &'static str,
    pub password: Option<Secret>,
}

/// The runtime login (app_readwrite) and the admin login (app_admin), checked
/// to be two distinct logins outside the matrix's own names.
pub(super) fn configured_logins(config: &Config) -> Result<[ConfiguredLogin; 2]> {
    let pg = &config.postgres;
    let runtime = ConfiguredLogin {
        key: "postgres.user",
        name: pg.user.clone(),
        group: READWRITE,
        password: pg.password.clone(),
    };
    let admin = ConfiguredLogin {
        key: "postgres.admin.user",
        name: pg.admin.user.clone(),
        group: ADMIN,
        password: pg.admin.password.clone(),
    };
    for l in [&runtime, &admin] {
        validate_identifier(&l.name).map_err(|e| Error::invalid_input(format!("{}: {e}", l.key)))?;
        if privilege_matrix().iter().any(|r| r.name == l.name) {
            return Err(Error::invalid_input(format!(
                "{} is `{}`, a role of the matrix itself: give it a login of its own, which the matrix makes a member of {}",
                l.key, l.name, l.group
            )));
        }
    }
    if runtime.name == admin.name {
        return Err(Error::invalid_input(format!(
            "postgres.user and postgres.admin.user are both `{}`: services must not run as the login that migrates (architecture 9.1); give each a login of its own",
            runtime.name
        )));
    }
    Ok([runtime, admin])
}

/// Memberships (group, member) with both sides among `names`.
async fn memberships_among(
    client: &Client,
    names: &[&str],
) -> std::result::Result<BTreeSet<(String, String)>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT g.rolname::text, u.rolname::text FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
             JOIN pg_roles u ON u.oid = m.member WHERE g.rolname = ANY($1) AND u.rolname = ANY($1)",
            &[&names],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// A connection for `roles apply|check`: as `security.admin_user` with
/// `security.admin_password` (a role with CREATEROLE, in practice the
/// cluster's superuser), else as the admin login of `[postgres.admin]`.
pub async fn connect_admin(config: &Config) -> Result<Client> {
    let mut pg = config.postgres.as_admin();
    if let Some(u) = &config.security.admin_user {
        pg.user = validate_identifier(u)?.to_string();
        pg.password = None;
        pg.tls.cert_file = None;
        pg.tls.key_file = None;
    }
    if let Some(pw) =
        config.security.admin_password().map_err(|e| Error::io("security.admin_password_file: cannot read it", e))?
    {
        pg.password = Some(pw);
    }
    connect(&pg, ConnectTarget::Primary).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_matrix_names_every_role_once_and_confines_services() {
        let m = privilege_matrix();
        let names: BTreeSet<_> = m.iter().map(|r| r.name).collect();
        assert_eq!(names.len(), 6);
        for r in &m {
            validate_identifier(r.name).unwrap();
            assert_eq!(r.access_to("audit") == Access::None, r.name != ADMIN);
        }
        let av = m.iter().find(|r| r.name == "avatar_service").unwrap();
        assert_eq!(av.access_to("catalog"), Access::None);
        assert_eq!(av.access_to("shared"), Access::None);
        assert!(av.uses_schema("shared") && !av.uses_schema("catalog"));
        assert!(!Access::ReadWrite.table_privileges().contains("TRUNCATE"));
    }

    #[test]
    fn the_runtime_and_admin_logins_must_be_two_logins_outside_the_matrix() {
        let mut c = Config::default();
        let [rt, ad] = configured_logins(&c).unwrap();
        assert_eq!((rt.group, ad.group), (READWRITE, ADMIN));
        c.postgres.admin.user = c.postgres.user.clone();
        assert!(configured_logins(&c).unwrap_err().to_string().contains("both `fwdb_app`"));
        c.postgres.admin.user = "app_admin".into();
        assert!(configured_logins(&c).unwrap_err().to_string().contains("postgres.admin.user is `app_admin`"));
    }
}
