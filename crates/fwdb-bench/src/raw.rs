//! The bare contender's side of the PostgreSQL benchmarks: its statements and
//! its row mapping, written by hand on purpose (it must not use fwdb's code).
//! Shared by `fwdb-bench postgres` (main.rs) and `examples/icount.rs`, which
//! includes this file with `#[path]` so both measure the same code.

use fwdb::User;

type Res<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

pub const COLS: &str =
    "id, email, first_name, last_name, role, created_at, updated_at, deleted_at, created_by, updated_by";

pub fn sql_point() -> String {
    format!("SELECT {COLS} FROM shared.users WHERE id = $1 AND deleted_at IS NULL")
}
pub fn sql_list() -> String {
    format!("SELECT {COLS} FROM shared.users WHERE role = $1 AND deleted_at IS NULL ORDER BY id LIMIT 20")
}
pub fn sql_insert() -> String {
    format!(
        "INSERT INTO shared.users (email, first_name, last_name, role, created_by, updated_by) VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLS}"
    )
}

pub fn raw_user(r: &tokio_postgres::Row) -> Res<User> {
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
