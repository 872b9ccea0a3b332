//! The one integration-test binary: every test runs against the real local
//! stack (PostgreSQL primary + replicas, MongoDB-protocol server), each in
//! databases of its own. See `helpers.rs` for `TestApp::spawn`.

mod helpers;

mod backup;
mod config;
mod migrate;
mod up;
mod serve;
mod metrics;
mod statuspage;
mod stack;
mod routing;
mod failover;
mod tx;
mod pooled;
mod multiplex;
mod repo;
mod query;
mod roles;
mod design;
mod audit;
mod refs;
mod mongo_tx;
mod mongo;
mod security;
mod example;
