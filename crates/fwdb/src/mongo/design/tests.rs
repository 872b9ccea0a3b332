//! The stored form of designs is fixed (data written before must read the
//! same, and the migrations' validators check it): the documents written
//! here are compared, field order included, with the ones built by hand.

use super::*;
use crate::mongo::document::{decode, encode};
use crate::query::bson::json_bson;
use chrono::{DateTime, Utc};
use mongodb::bson::{doc, Bson, Document as BsonDocument};
use serde_json::json;
use uuid::Uuid;

fn date(t: DateTime<Utc>) -> Bson {
    Bson::DateTime(mongodb::bson::DateTime::from_millis(t.timestamp_millis()))
}

fn rich() -> NewDesign {
    let mut n = NewDesign::new(Uuid::new_v4(), "Summer dress");
    n.layers = vec![
        Layer { id: "base".into(), kind: LayerType::Silhouette, data: json!({"w": 1, "h": 2.5, "c": ["a"]}), order: 0 },
        Layer { id: "f".into(), kind: LayerType::Fabric, data: serde_json::Value::Null, order: 1 },
    ];
    n.metadata = Metadata { tags: vec!["summer".into()], description: Some("light".into()), thumbnail_url: None };
    n.avatar_id = Some(Uuid::new_v4());
    n.catalog_item_ids = vec![Uuid::new_v4(), Uuid::new_v4()];
    n
}

/// The content fields as designs have always stored them.
fn content_by_hand(n: &NewDesign) -> BsonDocument {
    let layers: Vec<Bson> = n
        .layers
        .iter()
        .map(|l| {
            Bson::Document(doc! { "id": &l.id, "type": l.kind.as_str(), "data": json_bson(&l.data), "order": l.order })
        })
        .collect();
    let mut metadata = doc! { "tags": n.metadata.tags.clone() };
    metadata.insert("description", n.metadata.description.clone().map_or(Bson::Null, Bson::String));
    metadata.insert("thumbnailUrl", n.metadata.thumbnail_url.clone().map_or(Bson::Null, Bson::String));
    let ids: Vec<Bson> = n.catalog_item_ids.iter().map(|u| Bson::String(u.to_string())).collect();
    let mut d = doc! { "name": &n.name, "status": n.status.as_str(), "layers": layers, "metadata": metadata, "catalogItemIds": ids };
    d.insert("avatarId", n.avatar_id.map_or(Bson::Null, |u| Bson::String(u.to_string())));
    d
}

fn first_version_by_hand(n: &NewDesign, id: Uuid, now: DateTime<Utc>) -> BsonDocument {
    let content = content_by_hand(n);
    let mut d = doc! { "_id": id.to_string(), "userId": n.user_id.to_string() };
    d.extend(content.clone());
    d.insert("version", 1i64);
    let entry =
        doc! { "version": 1i64, "changedAt": date(now), "changedBy": n.user_id.to_string(), "changes": content };
    d.insert("history", vec![Bson::Document(entry)]);
    d.insert("createdAt", date(now));
    d.insert("updatedAt", date(now));
    d
}

#[test]
fn a_new_design_is_stored_exactly_as_before() {
    let (n, id, now) = (rich(), Uuid::new_v4(), Utc::now());
    let stored = DesignRepo::first_version(&n, id, now).unwrap();
    assert_eq!(stored, first_version_by_hand(&n, id, now));
    assert_eq!(stored.keys().collect::<Vec<_>>(), first_version_by_hand(&n, id, now).keys().collect::<Vec<_>>());
    let mut plain = NewDesign::new(Uuid::new_v4(), "plain");
    plain.status = DesignStatus::Published;
    assert_eq!(DesignRepo::first_version(&plain, id, now).unwrap(), first_version_by_hand(&plain, id, now));
}

#[test]
fn a_patch_sets_the_fields_as_before() {
    let n = rich();
    let mut p = DesignPatch::new(3, "u");
    p.name = Some(n.name.clone());
    p.layers = Some(n.layers.clone());
    p.metadata = Some(n.metadata.clone());
    p.avatar_id = Some(None);
    p.catalog_item_ids = Some(n.catalog_item_ids.clone());
    let by_hand = content_by_hand(&n);
    let mut expected = BsonDocument::new();
    for k in ["name", "layers", "metadata", "avatarId", "catalogItemIds"] {
        expected.insert(k, if k == "avatarId" { Bson::Null } else { by_hand.get(k).cloned().unwrap() });
    }
    assert_eq!(p.changes().unwrap(), expected);
    let keys: Vec<_> = p.changes().unwrap().keys().cloned().collect();
    assert_eq!(keys, ["name", "layers", "metadata", "avatarId", "catalogItemIds"]);
    assert_eq!(DesignPatch::new(1, "u").changes().unwrap(), BsonDocument::new());
}

#[test]
fn a_stored_design_reads_back_and_keeps_its_json_form() {
    let (n, id, now) = (rich(), Uuid::new_v4(), Utc::now());
    let d: Design = decode(first_version_by_hand(&n, id, now)).unwrap();
    assert_eq!((d.id, d.user_id, d.version, d.avatar_id), (id, n.user_id, 1, n.avatar_id));
    assert_eq!(
        (d.layers.clone(), d.metadata.clone(), d.catalog_item_ids.clone()),
        (n.layers.clone(), n.metadata.clone(), n.catalog_item_ids.clone())
    );
    assert_eq!(d.created_at.timestamp_millis(), now.timestamp_millis());
    assert_eq!(d.history[0].changes["name"], "Summer dress");
    // Encoding what was read gives the stored document again (a null deletedAt is not stored).
    assert_eq!(encode(&d).unwrap(), first_version_by_hand(&n, id, now));
    // The JSON form (APIs): `id`, text ids, RFC 3339 dates, deletedAt null.
    let j = serde_json::to_value(&d).unwrap();
    assert_eq!(j["id"], id.to_string());
    assert_eq!(j["createdAt"], serde_json::to_value(d.created_at).unwrap());
    assert!(j["createdAt"].is_string() && j["history"][0]["changedAt"].is_string());
    assert!(j["deletedAt"].is_null() && j.get("_id").is_none());
}

#[test]
fn a_mismatching_design_names_the_field_and_the_id() {
    let (n, id, now) = (rich(), Uuid::new_v4(), Utc::now());
    let mut d = first_version_by_hand(&n, id, now);
    d.insert("status", "deleted");
    let e = decode::<Design>(d).unwrap_err().to_string();
    assert!(e.contains(&id.to_string()) && e.contains("`status`"), "{e}");
    let mut d = first_version_by_hand(&n, id, now);
    d.get_array_mut("layers").unwrap()[1].as_document_mut().unwrap().insert("order", 1.5);
    let e = decode::<Design>(d).unwrap_err().to_string();
    assert!(e.contains("`layers[1].order`"), "{e}");
    // Int32 and whole doubles where integers are stored read as before.
    let mut d = first_version_by_hand(&n, id, now);
    d.insert("version", 1i32);
    d.get_array_mut("layers").unwrap()[1].as_document_mut().unwrap().insert("order", 1.0);
    let ok: Design = decode(d).unwrap();
    assert_eq!((ok.version, ok.layers[1].order), (1, 1));
}
