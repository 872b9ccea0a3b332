//! Does a server answer? A process that exists may still be frozen
//! (SIGSTOPped, hung): the kernel accepts connections on its behalf, but
//! nothing ever replies. `fwdb dev status` tells the two apart with these
//! probes, each bounded by a short timeout.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use crate::info::StackInfo;
use crate::wire;

/// How long a server gets to answer a probe: a healthy local server answers
/// in milliseconds, even on a loaded machine well under this.
pub(crate) const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Like `pg_isready`: a startup message over the unix socket, and any reply
/// (an authentication request, or an error such as "the database system is
/// starting up") counts as answering.
pub(crate) fn postgres_answers(info: &StackInfo, port: u16, timeout: Duration) -> bool {
    let socket = info.socket_dir.join(format!(".s.PGSQL.{port}"));
    let Ok(mut s) = UnixStream::connect(&socket) else { return false };
    if s.set_read_timeout(Some(timeout)).is_err() || s.set_write_timeout(Some(timeout)).is_err() {
        return false;
    }
    if s.write_all(&startup_message(&info.superuser, "postgres")).is_err() {
        return false;
    }
    let mut first = [0u8; 1];
    // Closing now is what pg_isready does; the server logs nothing for it.
    matches!(s.read_exact(&mut first), Ok(()) if first[0] == b'R' || first[0] == b'E')
}

/// A `ping` on MongoDB that gives up after `timeout`.
pub(crate) fn mongo_answers(port: u16, timeout: Duration) -> bool {
    wire::ping_within(port, timeout).is_ok()
}

/// The protocol 3.0 StartupMessage: length, version, then `name\0value\0` pairs and a final `\0`.
fn startup_message(user: &str, database: &str) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&196_608i32.to_be_bytes()); // 3 << 16: protocol 3.0
    for (k, v) in [("user", user), ("database", database), ("application_name", "fwdb-probe")] {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut msg = ((body.len() + 4) as i32).to_be_bytes().to_vec();
    msg.extend_from_slice(&body);
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_startup_message_carries_its_length_the_protocol_and_the_user() {
        let m = startup_message("postgres", "postgres");
        assert_eq!(i32::from_be_bytes([m[0], m[1], m[2], m[3]]) as usize, m.len());
        assert_eq!(&m[4..8], &[0, 3, 0, 0]);
        assert!(m.windows(14).any(|w| w == b"user\0postgres\0"));
        assert_eq!(m.last(), Some(&0));
    }
}
