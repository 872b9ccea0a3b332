//! Free TCP ports on 127.0.0.1.
//!
//! A port is picked by binding port 0 and letting the kernel choose, then
//! closing. Between that and the server's own bind another program may grab
//! it; the callers detect the failed bind and pick again (see `pg.rs` and
//! `mongo.rs`), so a taken port is skipped, never fatal.

use std::collections::HashSet;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::Mutex;

use crate::error::{Result, TestkitError};

/// Ports this process already handed out: several stacks starting at once in
/// one test binary must not be given the same port twice.
static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// A port that is free right now and was not handed out before in this process.
pub fn pick_free_port() -> Result<u16> {
    for _ in 0..50 {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .map_err(|e| TestkitError::io("127.0.0.1:0 (picking a free port)", e))?;
        let port = listener.local_addr().map_err(|e| TestkitError::io("127.0.0.1:0 (picking a free port)", e))?.port();
        drop(listener);
        let mut guard = HANDED_OUT.lock().unwrap_or_else(|p| p.into_inner());
        if guard.get_or_insert_with(HashSet::new).insert(port) {
            return Ok(port);
        }
    }
    Err(TestkitError::CommandFailed {
        what: "picking a free TCP port on 127.0.0.1".into(),
        detail: "the kernel kept returning ports already in use by this process".into(),
    })
}

/// True if something accepts TCP connections on 127.0.0.1:`port`.
pub fn is_listening(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(&(Ipv4Addr::LOCALHOST, port).into(), std::time::Duration::from_millis(300))
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picked_ports_are_distinct_and_bindable() {
        let a = pick_free_port().expect("pick");
        let b = pick_free_port().expect("pick");
        assert_ne!(a, b);
        TcpListener::bind((Ipv4Addr::LOCALHOST, a)).expect("a is free");
    }
}
