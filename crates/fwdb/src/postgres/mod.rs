//! PostgreSQL: connections (TLS per libpq's sslmode), and later pools and routing.

mod connect;
mod tls;

pub use connect::{connect, ConnectTarget};
