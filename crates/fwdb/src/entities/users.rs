//! shared.users.

use crate::error::Result;
use crate::postgres::Executor;
use crate::query::check;
use crate::repo::PgRepository;
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// A user account (shared.users).
#[derive(Debug, Clone, PartialEq, serde::Serialize, crate::Entity)]
#[fwdb(schema = "shared", table = "users", soft_delete, audit)]
pub struct User {
    pub id: Uuid,
    #[fwdb(unique = "idx_users_email", email)]
    pub email: String,
    #[fwdb(not_blank, length(max = 100))]
    pub first_name: String,
    #[fwdb(not_blank, length(max = 100))]
    pub last_name: String,
    #[fwdb(not_blank, length(max = 50))]
    pub role: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
    pub created_by: Option<Uuid>,
    pub updated_by: Option<Uuid>,
}

impl NewUser {
    /// A user with the role `user`.
    pub fn new(email: impl Into<String>, first_name: impl Into<String>, last_name: impl Into<String>) -> NewUser {
        NewUser { email: email.into(), first_name: first_name.into(), last_name: last_name.into(), role: "user".into() }
    }
}

impl PgRepository<User> {
    /// The live user with this email, ignoring case (served by idx_users_email).
    pub async fn find_by_email<E: Executor>(&self, exec: &E, email: &str) -> Result<Option<User>> {
        check::no_nul("email", email)?;
        Ok(self.query().filter(User::EMAIL.eq_ignore_case(email)).limit(1).fetch(exec).await?.into_iter().next())
    }
}
