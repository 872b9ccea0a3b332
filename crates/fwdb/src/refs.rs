//! References between the stores (polyglot persistence, architecture 2.2):
//! a design (MongoDB) names an avatar (PostgreSQL) that must exist and be the
//! same user's. Here, not in either store's module, so neither depends on
//! the other's entities.

use crate::entities::{Avatar, AvatarRepo};
use crate::error::{Error, ErrorKind, Result};
use crate::mongo::{Design, DesignPatch, DesignRepo, MongoExec, NewDesign};
use crate::postgres::{Consistency, Executor};
use crate::repo::Repository;
use uuid::Uuid;

fn invalid_avatar(why: String) -> Error {
    Error::new(ErrorKind::Validation, format!("design.avatarId: {why}"))
}

/// The avatar exists (live) in PostgreSQL and belongs to `user` (read on the primary).
pub async fn check_avatar<E: Executor>(pg: &E, user: Uuid, avatar: Uuid) -> Result<()> {
    let repo = AvatarRepo::new().with_consistency(Consistency::Strong);
    match Repository::<Avatar, E>::find_by_id(&repo, pg, avatar).await? {
        None => Err(invalid_avatar(format!("avatar {avatar} does not exist (or is deleted)"))),
        Some(a) if a.user_id != user => Err(invalid_avatar(format!("avatar {avatar} belongs to another user"))),
        Some(_) => Ok(()),
    }
}

impl DesignRepo {
    /// Creates a design after checking, in PostgreSQL, that its avatar exists and is the same user's.
    pub async fn create_checked<M: MongoExec, E: Executor>(&self, exec: &M, pg: &E, new: &NewDesign) -> Result<Design> {
        new.validate()?;
        if let Some(a) = new.avatar_id {
            check_avatar(pg, new.user_id, a).await?;
        }
        self.create(exec, new).await
    }

    /// Points a design at another avatar (or none), checking the avatar in PostgreSQL first.
    pub async fn move_to_avatar<M: MongoExec, E: Executor>(
        &self,
        exec: &M,
        pg: &E,
        id: Uuid,
        expected: i64,
        by: &str,
        avatar: Option<Uuid>,
    ) -> Result<Design> {
        let current = Repository::<Design, M>::get(self, exec, id).await?;
        if let Some(a) = avatar {
            check_avatar(pg, current.user_id, a).await?;
        }
        let mut p = DesignPatch::new(expected, by);
        p.avatar_id = Some(avatar);
        Repository::<Design, M>::update(self, exec, id, &p).await
    }
}
