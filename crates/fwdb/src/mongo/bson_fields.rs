//! Serde helpers for the fields of a [`super::Document`], for
//! `#[serde(with = "fwdb::bson_fields::...")]`.
//!
//! A document type serves two formats with one serde definition: the stored
//! BSON, which fwdb writes and reads with bson's *non*-human-readable
//! (de)serializer (as the driver's typed `Collection<T>` does), and JSON for
//! APIs, which is human-readable. The helpers give each format its natural
//! form: ids are UUID text in both (the same ids PostgreSQL uses, so
//! references between the stores compare as strings); timestamps are BSON
//! dates when stored and RFC 3339 text in JSON; free JSON is stored as BSON
//! with numbers that fit kept as integers and read back as relaxed extended
//! JSON. Reading is lenient where no information is lost: a date also from
//! RFC 3339 text, an integer also from a whole double (what the mongo shell
//! writes).

use crate::error::{Error, ErrorKind, Result};
use chrono::{DateTime, Utc};
use mongodb::bson::Bson;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

/// A value's fields as stored (BSON's non-human-readable form, as the
/// repositories write), e.g. a patch struct whose unset fields are skipped.
pub fn to_document<S: Serialize>(value: &S) -> Result<mongodb::bson::Document> {
    let fail = |e: &dyn std::fmt::Display| Error::new(ErrorKind::Validation, format!("cannot be stored as BSON: {e}"));
    let raw = mongodb::bson::to_raw_document_buf(value).map_err(|e| fail(&e))?;
    raw.to_document().map_err(|e| fail(&e))
}

fn parse_uuid<E: serde::de::Error>(s: &str) -> Result<Uuid, E> {
    Uuid::parse_str(s).map_err(|_| E::custom(format!("malformed id `{}` (expected a UUID)", s.escape_debug())))
}

/// A UUID stored as its canonical text.
pub mod uuid_text {
    use super::*;

    pub fn serialize<S: Serializer>(u: &Uuid, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(u)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Uuid, D::Error> {
        parse_uuid(&String::deserialize(d)?)
    }
}

/// An optional UUID stored as its canonical text, or null.
pub mod opt_uuid_text {
    use super::*;

    pub fn serialize<S: Serializer>(u: &Option<Uuid>, s: S) -> Result<S::Ok, S::Error> {
        match u {
            Some(u) => s.collect_str(u),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Uuid>, D::Error> {
        Option::<String>::deserialize(d)?.map(|s| parse_uuid(&s)).transpose()
    }
}

/// A list of UUIDs stored as their canonical text.
pub mod uuid_list_text {
    use super::*;

    pub fn serialize<S: Serializer>(ids: &[Uuid], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(ids.iter().map(|u| u.to_string()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Uuid>, D::Error> {
        Option::<Vec<String>>::deserialize(d)?.unwrap_or_default().iter().map(|s| parse_uuid(s)).collect()
    }
}

fn date_out<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    if s.is_human_readable() {
        t.serialize(s)
    } else {
        mongodb::bson::DateTime::from_millis(t.timestamp_millis()).serialize(s)
    }
}

fn date_in<E: serde::de::Error>(b: Bson) -> Result<DateTime<Utc>, E> {
    match b {
        Bson::DateTime(t) => {
            DateTime::from_timestamp_millis(t.timestamp_millis()).ok_or_else(|| E::custom("date out of range"))
        }
        Bson::String(s) => DateTime::parse_from_rfc3339(&s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| E::custom(format!("`{}` is not a date", s.escape_debug()))),
        other => Err(E::custom(format!("expected a date, found {:?}", other.element_type()))),
    }
}

/// A timestamp: a BSON date when stored (millisecond precision), RFC 3339 in JSON.
pub mod date {
    use super::*;

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        date_out(t, s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        date_in(Bson::deserialize(d)?)
    }
}

/// An optional timestamp (see [`date`]); null or missing is None.
pub mod opt_date {
    use super::*;

    pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => date_out(t, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        match Bson::deserialize(d)? {
            Bson::Null | Bson::Undefined => Ok(None),
            b => date_in(b).map(Some),
        }
    }
}

/// Free JSON: stored as BSON (numbers that fit stay integers), read back as
/// relaxed extended JSON (so a date another client stored reads as `{"$date": "..."}`).
pub mod json {
    use super::*;

    pub fn serialize<S: Serializer>(j: &serde_json::Value, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            j.serialize(s)
        } else {
            crate::query::bson::json_bson(j).serialize(s)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<serde_json::Value, D::Error> {
        if d.is_human_readable() {
            return serde_json::Value::deserialize(d);
        }
        Ok(Bson::deserialize(d)?.into_relaxed_extjson())
    }
}

/// An integer that also reads from Int32 and from a whole double.
pub mod int {
    use super::*;

    pub fn serialize<S: Serializer>(i: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(*i)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        d.deserialize_any(IntVisitor)
    }

    struct IntVisitor;

    impl serde::de::Visitor<'_> for IntVisitor {
        type Value = i64;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an integer")
        }

        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<i64, E> {
            Ok(v)
        }

        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<i64, E> {
            i64::try_from(v).map_err(|_| E::custom(format!("{v} is out of range for an integer")))
        }

        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<i64, E> {
            // Whole doubles up to 2^53 are exact.
            if v.fract() == 0.0 && v.abs() <= 9_007_199_254_740_992.0 {
                Ok(v as i64)
            } else {
                Err(E::custom(format!("{v} is not an integer")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mongodb::bson::doc;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Sample {
        #[serde(with = "uuid_text")]
        id: Uuid,
        #[serde(with = "opt_uuid_text", default)]
        other: Option<Uuid>,
        #[serde(with = "uuid_list_text", default)]
        list: Vec<Uuid>,
        #[serde(with = "date")]
        at: DateTime<Utc>,
        #[serde(with = "opt_date", default)]
        gone: Option<DateTime<Utc>>,
        #[serde(with = "json", default)]
        data: serde_json::Value,
        #[serde(with = "int")]
        n: i64,
    }

    fn sample() -> Sample {
        Sample {
            id: Uuid::new_v4(),
            other: None,
            list: vec![Uuid::new_v4()],
            at: DateTime::from_timestamp_millis(1_700_000_000_123).unwrap(),
            gone: None,
            data: serde_json::json!({"a": 1, "b": [1.5, "x"]}),
            n: 7,
        }
    }

    #[test]
    fn stored_form_has_text_ids_bson_dates_and_integer_numbers() {
        let s = sample();
        let raw = mongodb::bson::to_raw_document_buf(&s).unwrap();
        let d = raw.to_document().unwrap();
        assert_eq!(d.get("id"), Some(&Bson::String(s.id.to_string())));
        assert_eq!(d.get("other"), Some(&Bson::Null));
        assert!(matches!(d.get("at"), Some(Bson::DateTime(_))), "{d}");
        assert_eq!(d.get_document("data").unwrap().get("a"), Some(&Bson::Int64(1)));
        let back: Sample = mongodb::bson::from_slice(raw.as_bytes()).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn json_form_has_rfc3339_dates() {
        let j = serde_json::to_value(sample()).unwrap();
        assert_eq!(j["at"], "2023-11-14T22:13:20.123Z");
        assert!(j["id"].is_string());
    }

    #[test]
    fn reading_accepts_int32_and_whole_doubles_and_rejects_fractions() {
        let s = sample();
        let base = doc! { "id": s.id.to_string(), "at": mongodb::bson::DateTime::now(), "n": 3i32 };
        let bytes = mongodb::bson::to_vec(&base).unwrap();
        let x: Sample = mongodb::bson::from_slice(&bytes).unwrap();
        assert_eq!((x.n, x.other, x.list.len()), (3, None, 0));
        let mut d = base.clone();
        d.insert("n", 4.0f64);
        let x: Sample = mongodb::bson::from_slice(&mongodb::bson::to_vec(&d).unwrap()).unwrap();
        assert_eq!(x.n, 4);
        d.insert("n", 4.5f64);
        assert!(mongodb::bson::from_slice::<Sample>(&mongodb::bson::to_vec(&d).unwrap()).is_err());
        d.insert("n", 4i64);
        d.insert("id", "nope");
        let e = mongodb::bson::from_slice::<Sample>(&mongodb::bson::to_vec(&d).unwrap()).unwrap_err();
        assert!(e.to_string().contains("malformed id"), "{e}");
    }
}
