//! shared.users.

use super::{PgRepository, Record, SqlType};
use crate::error::Result;
use crate::postgres::Executor;
use crate::query::{check, Column, Entity, Value};
use chrono::{DateTime, Utc};
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;
use uuid::Uuid;

/// A user account (shared.users).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub role: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
    pub created_by: Option<Uuid>,
    pub updated_by: Option<Uuid>,
}

impl User {
    pub const ID: Column<User, Uuid> = Column::new("id");
    pub const EMAIL: Column<User, String> = Column::new("email");
    pub const FIRST_NAME: Column<User, String> = Column::new("first_name");
    pub const LAST_NAME: Column<User, String> = Column::new("last_name");
    pub const ROLE: Column<User, String> = Column::new("role");
    pub const CREATED_AT: Column<User, DateTime<Utc>> = Column::new("created_at");
    pub const UPDATED_AT: Column<User, DateTime<Utc>> = Column::new("updated_at");
    pub const DELETED_AT: Column<User, Option<DateTime<Utc>>> = Column::new("deleted_at");
    pub const CREATED_BY: Column<User, Option<Uuid>> = Column::new("created_by");
    pub const UPDATED_BY: Column<User, Option<Uuid>> = Column::new("updated_by");
}

/// A user to create. `NewUser::new` gives the role `user`.
#[derive(Debug, Clone, PartialEq)]
pub struct NewUser {
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub role: String,
}

impl NewUser {
    pub fn new(email: impl Into<String>, first_name: impl Into<String>, last_name: impl Into<String>) -> NewUser {
        NewUser { email: email.into(), first_name: first_name.into(), last_name: last_name.into(), role: "user".into() }
    }
}

/// The fields to change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserPatch {
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub role: Option<String>,
}

const FIELDS: &[&str] = &[
    "id",
    "email",
    "first_name",
    "last_name",
    "role",
    "created_at",
    "updated_at",
    "deleted_at",
    "created_by",
    "updated_by",
];

impl Entity for User {
    const SCHEMA: &'static str = "shared";
    const TABLE: &'static str = "users";
    const FIELDS: &'static [&'static str] = FIELDS;
    const ID: Column<Self, Uuid> = User::ID;

    fn from_row(r: &Row) -> Result<Self> {
        Ok(User {
            id: r.try_get(0)?,
            email: r.try_get(1)?,
            first_name: r.try_get(2)?,
            last_name: r.try_get(3)?,
            role: r.try_get(4)?,
            created_at: r.try_get(5)?,
            updated_at: r.try_get(6)?,
            deleted_at: r.try_get(7)?,
            created_by: r.try_get(8)?,
            updated_by: r.try_get(9)?,
        })
    }

    fn id(&self) -> Uuid {
        self.id
    }

    fn field_value(&self, field: &str) -> Option<Value> {
        Some(match field {
            "id" => self.id.into(),
            "email" => self.email.clone().into(),
            "first_name" => self.first_name.clone().into(),
            "last_name" => self.last_name.clone().into(),
            "role" => self.role.clone().into(),
            "created_at" => self.created_at.into(),
            "updated_at" => self.updated_at.into(),
            "deleted_at" => self.deleted_at.into(),
            "created_by" => self.created_by.into(),
            "updated_by" => self.updated_by.into(),
            _ => return None,
        })
    }
}

fn check_role(role: &str) -> Result<()> {
    check::text("role", role, 50)
}

impl Record for User {
    type New = NewUser;
    type Patch = UserPatch;
    const INSERT: &'static [(&'static str, SqlType)] = &[
        ("email", SqlType::Text),
        ("first_name", SqlType::Text),
        ("last_name", SqlType::Text),
        ("role", SqlType::Text),
    ];
    const UNIQUE: &'static [(&'static str, &'static str)] = &[("idx_users_email", "email"), ("users_pkey", "id")];

    fn check_new(n: &NewUser) -> Result<()> {
        check::email("email", &n.email)?;
        check::text("first_name", &n.first_name, 100)?;
        check::text("last_name", &n.last_name, 100)?;
        check_role(&n.role)
    }

    fn new_values(n: &NewUser) -> Vec<Value> {
        vec![n.email.clone().into(), n.first_name.clone().into(), n.last_name.clone().into(), n.role.clone().into()]
    }

    type NewParams<'a> = [&'a (dyn ToSql + Sync); 6];
    fn new_params<'a>(n: &'a NewUser, actor: &'a Option<Uuid>) -> Self::NewParams<'a> {
        [&n.email, &n.first_name, &n.last_name, &n.role, actor, actor]
    }

    fn check_patch(p: &UserPatch) -> Result<()> {
        if let Some(e) = &p.email {
            check::email("email", e)?;
        }
        if let Some(s) = &p.first_name {
            check::text("first_name", s, 100)?;
        }
        if let Some(s) = &p.last_name {
            check::text("last_name", s, 100)?;
        }
        if let Some(s) = &p.role {
            check_role(s)?;
        }
        Ok(())
    }

    fn patch_values(p: &UserPatch) -> Vec<(&'static str, Value)> {
        let mut v = Vec::new();
        if let Some(x) = &p.email {
            v.push(("email", x.clone().into()));
        }
        if let Some(x) = &p.first_name {
            v.push(("first_name", x.clone().into()));
        }
        if let Some(x) = &p.last_name {
            v.push(("last_name", x.clone().into()));
        }
        if let Some(x) = &p.role {
            v.push(("role", x.clone().into()));
        }
        v
    }
}

impl PgRepository<User> {
    /// The live user with this email, ignoring case (served by idx_users_email).
    pub async fn find_by_email<E: Executor>(&self, exec: &E, email: &str) -> Result<Option<User>> {
        check::no_nul("email", email)?;
        Ok(self.query().filter(User::EMAIL.eq_ignore_case(email)).limit(1).fetch(exec).await?.into_iter().next())
    }
}
