//! MongoDB: one client per process, built from the configuration.

mod client;

pub use client::{client, client_options, mongo_database};
