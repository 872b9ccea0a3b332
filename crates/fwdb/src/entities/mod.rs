//! The Fashion Wallet's PostgreSQL tables (architecture 4.1 `entities/`),
//! declared as any service declares its own: `#[derive(fwdb::Entity)]` on a
//! struct (see [`crate::model`]). fwdb's machinery knows nothing of them.

mod avatars;
mod items;
mod users;

pub use avatars::{Avatar, AvatarPatch, NewAvatar};
pub use items::{Item, ItemPatch, NewItem};
pub use users::{NewUser, User, UserPatch};

use crate::repo::PgRepository;

pub type UserRepo = PgRepository<User>;
pub type AvatarRepo = PgRepository<Avatar>;
pub type ItemRepo = PgRepository<Item>;

/// A JSON object (not an array, a number, ...).
fn object(v: &serde_json::Value) -> Result<(), &'static str> {
    if v.is_object() {
        Ok(())
    } else {
        Err("must be a JSON object")
    }
}
