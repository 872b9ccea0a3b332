//! Just enough of the MongoDB wire protocol (OP_MSG + a BSON subset) to ask a
//! server "are you up?" (`ping`, `hello`) and to initiate a single-node
//! replica set, without pulling the async `mongodb` driver into a crate that
//! must stay runtime-free.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::time::Duration;

/// A BSON value, as far as we need to write one.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Bson {
    Int(i32),
    Str(String),
    Doc(Vec<(String, Bson)>),
    Array(Vec<Bson>),
}

/// A top-level field of a reply, as far as we need to read one.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Field {
    Double(f64),
    Int(i64),
    Bool(bool),
    Str(String),
    Other,
}

fn cstring(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(s.as_bytes());
    out.push(0);
}

fn encode_doc(fields: &[(String, Bson)]) -> Vec<u8> {
    let mut body = Vec::new();
    for (k, v) in fields {
        encode_elem(&mut body, k, v);
    }
    let mut out = Vec::with_capacity(body.len() + 5);
    out.extend_from_slice(&((body.len() + 5) as i32).to_le_bytes());
    out.extend_from_slice(&body);
    out.push(0);
    out
}

fn encode_elem(out: &mut Vec<u8>, key: &str, v: &Bson) {
    match v {
        Bson::Int(i) => {
            out.push(0x10);
            cstring(out, key);
            out.extend_from_slice(&i.to_le_bytes());
        }
        Bson::Str(s) => {
            out.push(0x02);
            cstring(out, key);
            out.extend_from_slice(&((s.len() + 1) as i32).to_le_bytes());
            cstring(out, s);
        }
        Bson::Doc(fields) => {
            out.push(0x03);
            cstring(out, key);
            out.extend_from_slice(&encode_doc(fields));
        }
        Bson::Array(items) => {
            out.push(0x04);
            cstring(out, key);
            let fields: Vec<(String, Bson)> =
                items.iter().enumerate().map(|(i, b)| (i.to_string(), b.clone())).collect();
            out.extend_from_slice(&encode_doc(&fields));
        }
    }
}

/// Reads the top-level fields of a BSON document. None if it is malformed.
pub(crate) fn decode_top(doc: &[u8]) -> Option<Vec<(String, Field)>> {
    let len = i32::from_le_bytes(doc.get(0..4)?.try_into().ok()?) as usize;
    if len < 5 {
        return None;
    }
    let doc = doc.get(..len)?;
    let mut i = 4;
    let mut out = Vec::new();
    let i32_at = |i: usize| -> Option<usize> { Some(i32::from_le_bytes(doc.get(i..i + 4)?.try_into().ok()?) as usize) };
    while i < len - 1 {
        let ty = *doc.get(i)?;
        i += 1;
        let end = i + doc.get(i..)?.iter().position(|&b| b == 0)?;
        let key = String::from_utf8_lossy(&doc[i..end]).into_owned();
        i = end + 1;
        let (field, size) = match ty {
            0x01 => (Field::Double(f64::from_le_bytes(doc.get(i..i + 8)?.try_into().ok()?)), 8),
            0x02 => {
                let n = i32_at(i)?;
                let s = String::from_utf8_lossy(doc.get(i + 4..i + 4 + n.saturating_sub(1))?).into_owned();
                (Field::Str(s), 4 + n)
            }
            0x03 | 0x04 => (Field::Other, i32_at(i)?),
            0x05 => (Field::Other, 4 + 1 + i32_at(i)?),
            0x06 | 0x0A | 0x7F | 0xFF => (Field::Other, 0),
            0x07 => (Field::Other, 12),
            0x08 => (Field::Bool(*doc.get(i)? != 0), 1),
            0x09 | 0x11 => (Field::Other, 8),
            0x0B => {
                let a = doc.get(i..)?.iter().position(|&b| b == 0)? + 1;
                let b = doc.get(i + a..)?.iter().position(|&b| b == 0)? + 1;
                (Field::Other, a + b)
            }
            0x0C => (Field::Other, 4 + i32_at(i)? + 12),
            0x0D | 0x0E => (Field::Other, 4 + i32_at(i)?),
            0x0F => (Field::Other, i32_at(i)?),
            0x10 => (Field::Int(i32::from_le_bytes(doc.get(i..i + 4)?.try_into().ok()?) as i64), 4),
            0x12 => (Field::Int(i64::from_le_bytes(doc.get(i..i + 8)?.try_into().ok()?)), 8),
            0x13 => (Field::Other, 16),
            _ => return None,
        };
        out.push((key, field));
        i += size;
    }
    Some(out)
}

/// Sends one command (`{<name>: ..., $db: <db>}`) over OP_MSG and returns the
/// reply's top-level fields.
pub(crate) fn command(
    port: u16,
    db: &str,
    mut cmd: Vec<(String, Bson)>,
    timeout: Duration,
) -> std::io::Result<Vec<(String, Field)>> {
    cmd.push(("$db".into(), Bson::Str(db.into())));
    let doc = encode_doc(&cmd);
    let mut msg = Vec::with_capacity(doc.len() + 21);
    let total = (16 + 4 + 1 + doc.len()) as i32;
    msg.extend_from_slice(&total.to_le_bytes());
    msg.extend_from_slice(&1i32.to_le_bytes()); // requestID
    msg.extend_from_slice(&0i32.to_le_bytes()); // responseTo
    msg.extend_from_slice(&2013i32.to_le_bytes()); // OP_MSG
    msg.extend_from_slice(&0u32.to_le_bytes()); // flagBits
    msg.push(0); // section kind 0: body
    msg.extend_from_slice(&doc);

    let mut s = TcpStream::connect_timeout(&(Ipv4Addr::LOCALHOST, port).into(), timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    s.write_all(&msg)?;
    let mut header = [0u8; 16];
    s.read_exact(&mut header)?;
    let len = i32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    if !(21..=48_000_000).contains(&len) {
        return Err(std::io::Error::other(format!("bad reply length {len}")));
    }
    let mut rest = vec![0u8; len as usize - 16];
    s.read_exact(&mut rest)?;
    let opcode = i32::from_le_bytes([header[12], header[13], header[14], header[15]]);
    if opcode != 2013 || rest.get(4) != Some(&0) {
        return Err(std::io::Error::other(format!("unexpected reply (opcode {opcode})")));
    }
    decode_top(&rest[5..]).ok_or_else(|| std::io::Error::other("malformed BSON in reply"))
}

pub(crate) fn get<'a>(fields: &'a [(String, Field)], key: &str) -> Option<&'a Field> {
    fields.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// `ok: 1` in whatever numeric type the server chose.
pub(crate) fn is_ok(fields: &[(String, Field)]) -> bool {
    match get(fields, "ok") {
        Some(Field::Double(d)) => *d == 1.0,
        Some(Field::Int(i)) => *i == 1,
        Some(Field::Bool(b)) => *b,
        _ => false,
    }
}

/// `{ping: 1}` against admin: Ok when the server answers ok.
pub fn ping(port: u16) -> std::io::Result<()> {
    ping_within(port, Duration::from_secs(2))
}

/// [`ping`], giving up when the server has not answered within `timeout`.
pub(crate) fn ping_within(port: u16, timeout: Duration) -> std::io::Result<()> {
    let reply = command(port, "admin", vec![("ping".into(), Bson::Int(1))], timeout)?;
    if is_ok(&reply) {
        Ok(())
    } else {
        let msg = match get(&reply, "errmsg") {
            Some(Field::Str(s)) => s.clone(),
            _ => "ping did not return ok".into(),
        };
        Err(std::io::Error::other(msg))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_and_reads_back_top_level_fields() {
        let doc = encode_doc(&[
            ("ping".into(), Bson::Int(1)),
            ("$db".into(), Bson::Str("admin".into())),
            ("nested".into(), Bson::Doc(vec![("a".into(), Bson::Array(vec![Bson::Int(1), Bson::Str("x".into())]))])),
        ]);
        let fields = decode_top(&doc).expect("decodes");
        assert_eq!(get(&fields, "ping"), Some(&Field::Int(1)));
        assert_eq!(get(&fields, "$db"), Some(&Field::Str("admin".into())));
        assert_eq!(get(&fields, "nested"), Some(&Field::Other));
    }

    #[test]
    fn ok_may_be_a_double_or_an_int() {
        assert!(is_ok(&[("ok".into(), Field::Double(1.0))]));
        assert!(is_ok(&[("ok".into(), Field::Int(1))]));
        assert!(!is_ok(&[("ok".into(), Field::Double(0.0))]));
    }
}
