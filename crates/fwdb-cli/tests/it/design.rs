//! Design documents in MongoDB: the query AST compiled to a MongoDB
//! filter, the design repository through the same `Repository` trait as
//! PostgreSQL, validation in Rust and by the server's validator, versions and
//! history, transactions, layers and status transitions, the avatar check
//! across the two stores, the pool wait timeout.

use crate::helpers::TestApp;
use fwdb::{
    Design, DesignPatch, DesignRepo, DesignStatus, ErrorKind, Layer, LayerType, Mongo, MongoExec, NewAvatar, NewDesign,
    NewUser, Order, Query, Repository, Uuid,
};
use mongodb::bson::{doc, Bson};
use serde_json::json;

async fn mongo(app: &TestApp) -> Mongo {
    Mongo::connect(&app.config).await.expect("the MongoDB handle")
}

fn layer(id: &str, kind: LayerType, order: i64) -> Layer {
    Layer { id: id.into(), kind, data: json!({"color": "#aa0000"}), order }
}

fn new_design(user: Uuid, name: &str) -> NewDesign {
    let mut n = NewDesign::new(user, name);
    n.layers = vec![layer("base", LayerType::Silhouette, 0)];
    n.metadata.tags = vec!["summer".into()];
    n
}

fn assert_kind<T: std::fmt::Debug>(r: fwdb::Result<T>, kind: ErrorKind, needle: &str) -> fwdb::Error {
    let e = r.expect_err("an error");
    assert_eq!(e.kind(), kind, "{e}");
    assert!(e.to_string().contains(needle), "`{e}` should mention `{needle}`");
    e
}

#[test]
fn the_query_ast_compiles_to_a_mongodb_filter_sort_and_limit() {
    let user = Uuid::new_v4();
    let q: Query<Design> = Query::new()
        .filter(Design::USER_ID.eq(user) & (Design::STATUS.eq("draft") | Design::NAME.like("Sum%_\\%")))
        .order_by(Design::CREATED_AT, Order::Desc)
        .limit(20)
        .offset(5);
    let m = q.to_mongo().unwrap();
    let expected = doc! {
        "userId": user.to_string(),
        "$or": [ { "status": "draft" }, { "name": Bson::RegularExpression(mongodb::bson::Regex { pattern: "^Sum.*.%$".into(), options: "s".into() }) } ],
        "deletedAt": Bson::Null,
    };
    assert_eq!(m.filter, expected);
    assert_eq!(m.sort, doc! { "createdAt": -1, "_id": 1 });
    assert_eq!((m.limit, m.skip), (Some(20), Some(5)));

    // Soft-delete scope, not, in, null checks.
    let m = Query::<Design>::new()
        .filter(!Design::AVATAR_ID.is_null() & Design::ID.in_([Uuid::nil()]))
        .only_deleted()
        .to_mongo()
        .unwrap();
    assert_eq!(
        m.filter,
        doc! { "$nor": [ { "avatarId": Bson::Null } ], "_id": { "$in": [Uuid::nil().to_string()] }, "deletedAt": { "$ne": Bson::Null } }
    );
    // A field used twice keeps the $and (no silent overwrite of the first condition).
    let m = Query::<Design>::new().filter(Design::VERSION.gt(1) & Design::VERSION.lt(5)).to_mongo().unwrap();
    assert_eq!(
        m.filter,
        doc! { "$and": [ { "version": { "$gt": 1i64 } }, { "version": { "$lt": 5i64 } }, { "deletedAt": Bson::Null } ] }
    );
    // Regex metacharacters in LIKE patterns are literal.
    assert_eq!(fwdb::like_regex("a.b(c)%"), "^a\\.b\\(c\\).*$");
    // Bad input is rejected before any server is involved.
    assert_kind(Query::<Design>::new().limit(-1).to_mongo(), ErrorKind::Validation, "limit");
    assert_kind(
        Query::<Design>::new().filter(Design::NAME.similar_to("x")).to_mongo(),
        ErrorKind::Validation,
        "PostgreSQL only",
    );
    assert_kind(Query::<Design>::new().filter(Design::NAME.eq("a\0b")).to_mongo(), ErrorKind::Validation, "name");
}

#[tokio::test]
async fn design_crud_soft_delete_restore_purge_and_lists_through_the_repository_trait() {
    let app = TestApp::migrated().await;
    let db = mongo(&app).await;
    let repo = DesignRepo::new();
    let user = Uuid::new_v4();

    let a = repo.create(&db, &new_design(user, "first")).await.unwrap();
    assert_eq!((a.version, a.status, a.history.len()), (1, DesignStatus::Draft, 1));
    assert_eq!(repo.find_by_id(&db, a.id).await.unwrap().as_ref(), Some(&a));
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let ids = repo.create_many(&db, &[new_design(user, "second"), new_design(user, "third")]).await.unwrap();
    assert_eq!(ids.len(), 2);
    let mut other = new_design(Uuid::new_v4(), "someone else's");
    other.metadata.tags = vec!["winter".into()];
    repo.create(&db, &other).await.unwrap();

    let mine = Query::new().filter(Design::USER_ID.eq(user));
    assert_eq!(repo.count(&db, &mine).await.unwrap(), 3);
    assert!(repo.exists(&db, &mine).await.unwrap());
    let found = repo.find_many_by_ids(&db, &[a.id, ids[1], Uuid::new_v4()]).await.unwrap();
    assert_eq!(found.len(), 2);

    // Newest first; the two of create_many share a timestamp, so compare the first.
    let listed = repo.list_by_user(&db, user, DesignStatus::Draft, 10).await.unwrap();
    assert_eq!(listed.len(), 3);
    assert_eq!(listed.last().unwrap().id, a.id, "the oldest comes last");
    assert!(listed.windows(2).all(|w| w[0].created_at >= w[1].created_at));
    assert_eq!(repo.list_by_tag(&db, "winter", 10).await.unwrap().len(), 1);
    assert_eq!(repo.list_by_tag(&db, "summer", 10).await.unwrap().len(), 3);

    // Keyset pages through the same trait.
    let q = mine.clone().order_by(Design::NAME, Order::Asc).limit(2);
    let p1 = repo.find_page(&db, &q).await.unwrap();
    assert_eq!(p1.items.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(), ["first", "second"]);
    let p2 = repo.find_page(&db, &q.clone().after(p1.next.unwrap())).await.unwrap();
    assert_eq!(p2.items.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(), ["third"]);
    assert!(p2.next.is_none());

    // Soft delete hides; restore brings back; purge removes for good.
    repo.delete(&db, a.id).await.unwrap();
    assert!(repo.find_by_id(&db, a.id).await.unwrap().is_none());
    assert_eq!(repo.count(&db, &mine.clone().only_deleted()).await.unwrap(), 1);
    assert_kind(repo.delete(&db, a.id).await, ErrorKind::NotFound, "no live design");
    let back = repo.restore(&db, a.id).await.unwrap();
    assert!(back.deleted_at.is_none());
    assert_kind(repo.restore(&db, a.id).await, ErrorKind::NotFound, "soft-deleted");
    repo.purge(&db, a.id).await.unwrap();
    assert!(repo.find_all(&db, &mine.with_deleted()).await.unwrap().iter().all(|d| d.id != a.id));
    assert_kind(repo.get(&db, a.id).await, ErrorKind::NotFound, &a.id.to_string());
}

#[tokio::test]
async fn bad_designs_are_rejected_by_rust_with_the_field_and_by_the_servers_validator() {
    let app = TestApp::migrated().await;
    let db = mongo(&app).await;
    let repo = DesignRepo::new();
    let user = Uuid::new_v4().to_string();
    let raw = db.database().collection::<mongodb::bson::Document>("designs");
    let now = Bson::DateTime(mongodb::bson::DateTime::now());
    let good = doc! { "_id": Uuid::new_v4().to_string(), "userId": &user, "name": "ok", "status": "draft", "createdAt": now.clone(), "updatedAt": now.clone() };
    raw.insert_one(good.clone()).await.expect("a good raw document is accepted");

    // (request JSON, the field the Rust error names, the equivalent raw document change)
    type Case<'a> = (serde_json::Value, &'a str, Option<(&'a str, Bson)>);
    let cases: Vec<Case<'_>> = vec![
        (json!({"userId": user, "name": ""}), "design.name", Some(("name", Bson::String(String::new())))),
        (
            json!({"userId": user, "name": "x".repeat(256)}),
            "design.name",
            Some(("name", Bson::String("x".repeat(256)))),
        ),
        (
            json!({"userId": user, "name": "n", "status": "deleted"}),
            "status",
            Some(("status", Bson::String("deleted".into()))),
        ),
        (
            json!({"userId": user, "name": "n", "layers": [{"id": "l", "type": "texture", "order": 0}]}),
            "layers[0].type",
            Some(("layers", Bson::Array(vec![Bson::Document(doc! {"id": "l", "type": "texture", "order": 0})]))),
        ),
        (
            json!({"userId": user, "name": "n", "layers": [{"type": "fabric", "order": 0}]}),
            "layers[0]",
            Some(("layers", Bson::Array(vec![Bson::Document(doc! {"type": "fabric", "order": 0})]))),
        ),
        (
            json!({"userId": user, "name": "n", "metadata": {"tags": [1]}}),
            "metadata.tags[0]",
            Some(("metadata", Bson::Document(doc! {"tags": [1]}))),
        ),
        (json!({"userId": 42, "name": "n"}), "userId", Some(("userId", Bson::Int32(42)))),
        // Rust-only rules (the server's validator allows these).
        (json!({"userId": user, "name": "n", "colour": "red"}), "unknown field `colour`", None),
        (json!({"userId": user, "name": "n", "avatarId": "not-a-uuid"}), "design.avatarId: malformed id", None),
        (json!({"userId": "123", "name": "n"}), "design.userId: malformed id", None),
        (json!({"userId": user, "name": "n", "catalogItemIds": ["x"]}), "design.catalogItemIds[0]: malformed id", None),
        (
            json!({"userId": user, "name": "n", "metadata": {"thumbnailUrl": "javascript:alert(1)"}}),
            "thumbnailUrl",
            None,
        ),
        (
            json!({"userId": user, "name": "n", "layers": [{"id": "a", "type": "fabric", "order": 0}, {"id": "a", "type": "pattern", "order": 1}]}),
            "duplicate layer id",
            None,
        ),
        (
            json!({"userId": user, "name": "n", "layers": [{"id": "a", "type": "fabric", "order": -1}]}),
            "layers[0].order",
            None,
        ),
        (
            json!({"userId": user, "name": "n", "layers": [{"id": "a", "type": "fabric", "order": 0, "data": {"$where": 1}}]}),
            "layers[0].data",
            None,
        ),
        (json!({"userId": Uuid::nil(), "name": "n"}), "design.userId", None),
    ];
    for (body, field, server) in cases {
        let e = NewDesign::from_json(body.clone()).expect_err(&format!("{body} must be rejected"));
        assert_eq!(e.kind(), ErrorKind::Validation, "{e}");
        assert!(e.to_string().contains(field), "`{e}` should name `{field}`");
        if let Some((k, v)) = server {
            let mut bad = good.clone();
            bad.insert("_id", Uuid::new_v4().to_string());
            bad.insert(k, v);
            let err = raw.insert_one(bad).await.expect_err(&format!("the server's validator must reject {k}"));
            assert!(err.to_string().contains("121") || err.to_string().to_lowercase().contains("validation"), "{err}");
        }
    }

    // Over 16 MiB: rejected before the write with the size and the limit.
    let mut huge = NewDesign::new(Uuid::new_v4(), "huge");
    huge.layers = vec![Layer {
        id: "big".into(),
        kind: LayerType::Pattern,
        data: json!({"blob": "x".repeat(17 * 1024 * 1024)}),
        order: 0,
    }];
    assert_kind(repo.create(&db, &huge).await, ErrorKind::Validation, "16 MiB");
    // Malformed ids in paths.
    assert_kind(fwdb::parse_design_id("../etc/passwd"), ErrorKind::Validation, "malformed id");
    assert_eq!(fwdb::parse_design_id(&Uuid::nil().to_string()).unwrap(), Uuid::nil());
    // A patch: unknown field, bad version, empty author.
    assert_kind(
        DesignPatch::from_json(json!({"expectedVersion": 1, "changedBy": "u", "status": "published"})),
        ErrorKind::Validation,
        "unknown field `status`",
    );
    assert_kind(
        DesignPatch::from_json(json!({"expectedVersion": 0, "changedBy": "u"})),
        ErrorKind::Validation,
        "version",
    );
    assert_kind(
        DesignPatch::from_json(json!({"expectedVersion": 1, "changedBy": " "})),
        ErrorKind::Validation,
        "changedBy",
    );
    // Nothing but the one good raw document was written.
    assert_eq!(raw.count_documents(doc! {}).await.unwrap(), 1);
}

#[tokio::test]
async fn versions_conflict_history_overflows_and_past_versions_are_rebuilt() {
    let app = TestApp::migrated().await;
    let db = mongo(&app).await;
    let repo = DesignRepo::new().with_history_limit(3);
    let d = repo.create(&db, &new_design(Uuid::new_v4(), "v1")).await.unwrap();

    // Two concurrent updates from the same version: one wins, one conflicts.
    let mut p1 = DesignPatch::new(1, "alice");
    p1.name = Some("alice's".into());
    let mut p2 = DesignPatch::new(1, "bob");
    p2.name = Some("bob's".into());
    let (r1, r2) = tokio::join!(repo.update(&db, d.id, &p1), repo.update(&db, d.id, &p2));
    let (won, lost) = match (r1, r2) {
        (Ok(w), Err(l)) | (Err(l), Ok(w)) => (w, l),
        (a, b) => panic!("expected one success and one conflict, got {a:?} and {b:?}"),
    };
    assert_eq!(won.version, 2);
    assert_eq!(lost.kind(), ErrorKind::Conflict, "{lost}");
    assert!(lost.to_string().contains("stale version 1"), "{lost}");
    assert!(lost.is_conflict());
    let current = repo.get(&db, d.id).await.unwrap();
    assert_eq!(current.name, won.name, "the loser did not overwrite");

    // Versions 3..=8: the document keeps 3 entries, the rest move to design_history.
    let mut v = 2;
    for i in 3..=8 {
        let mut p = DesignPatch::new(v, format!("editor{i}"));
        p.name = Some(format!("name {i}"));
        if i == 5 {
            p.metadata = Some(fwdb::DesignMetadata { tags: vec!["five".into()], ..Default::default() });
        }
        let after = repo.update(&db, d.id, &p).await.unwrap();
        assert_eq!(after.version, i);
        assert!(after.history.len() <= 3, "{}", after.history.len());
        v = i;
    }
    let stored = repo.get(&db, d.id).await.unwrap();
    assert_eq!(stored.history.iter().map(|e| e.version).collect::<Vec<_>>(), [6, 7, 8]);
    let moved = db.count("design_history", doc! {}).await.unwrap();
    assert_eq!(moved, 5, "versions 1..=5 moved out");

    // history() pages through both places, oldest first.
    let mut all = Vec::new();
    let mut after = 0;
    loop {
        let page = repo.history(&db, d.id, after, 3).await.unwrap();
        all.extend(page.entries.iter().map(|e| (e.version, e.changed_by.clone())));
        match page.next {
            Some(n) => after = n,
            None => break,
        }
    }
    assert_eq!(all.iter().map(|(v, _)| *v).collect::<Vec<_>>(), (1..=8).collect::<Vec<_>>());
    assert_eq!(all[4].1, "editor5");
    assert_eq!(all[0].1, d.user_id.to_string(), "version 1 is the creator's");

    // at_version agrees with what was written.
    let v1 = repo.at_version(&db, d.id, 1).await.unwrap();
    assert_eq!((v1.name.as_str(), v1.version), ("v1", 1));
    assert_eq!(v1.layers, d.layers);
    assert_eq!(v1.metadata.tags, ["summer"]);
    let v5 = repo.at_version(&db, d.id, 5).await.unwrap();
    assert_eq!((v5.name.as_str(), v5.metadata.tags.clone()), ("name 5", vec!["five".to_string()]));
    let v4 = repo.at_version(&db, d.id, 4).await.unwrap();
    assert_eq!((v4.name.as_str(), v4.metadata.tags.clone()), ("name 4", vec!["summer".to_string()]));
    let v8 = repo.at_version(&db, d.id, 8).await.unwrap();
    assert_eq!(
        (v8.name, v8.metadata, v8.layers),
        (stored.name.clone(), stored.metadata.clone(), stored.layers.clone())
    );
    assert_kind(repo.at_version(&db, d.id, 9).await, ErrorKind::NotFound, "no version 9");

    // A stale version on a later change still conflicts; a soft-deleted design
    // is not found (the delete itself is version 9).
    assert_kind(repo.update(&db, d.id, &DesignPatch::new(7, "late")).await, ErrorKind::Conflict, "stale version 7");
    repo.delete(&db, d.id).await.unwrap();
    assert_kind(repo.update(&db, d.id, &DesignPatch::new(8, "x")).await, ErrorKind::Conflict, "stale version 8");
    assert_kind(repo.update(&db, d.id, &DesignPatch::new(9, "x")).await, ErrorKind::NotFound, "is soft-deleted");
    repo.purge(&db, d.id).await.unwrap();
    assert_eq!(db.count("design_history", doc! {}).await.unwrap(), 0, "purge takes the moved history too");
}

#[tokio::test]
async fn soft_delete_and_restore_are_versioned_changes_with_history() {
    let app = TestApp::migrated().await;
    let db = mongo(&app).await;
    let repo = DesignRepo::new().with_history_limit(2);
    let d = repo.create(&db, &new_design(Uuid::new_v4(), "deletable")).await.unwrap();
    let raw = db.database().collection::<mongodb::bson::Document>("designs");

    let deleted = repo.soft_delete(&db, d.id, 1, "alice").await.unwrap();
    assert_eq!(deleted.version, 2);
    let at = deleted.deleted_at.expect("deletedAt is set");
    let last = deleted.history.last().unwrap();
    assert_eq!((last.version, last.changed_by.as_str()), (2, "alice"));
    assert!(last.changes.get("deletedAt").is_some_and(|v| !v.is_null()), "{}", last.changes);
    assert!(repo.find_by_id(&db, d.id).await.unwrap().is_none());

    // The stale-version rule holds for both, and each applies only in its state.
    assert_kind(repo.soft_delete(&db, d.id, 1, "bob").await, ErrorKind::Conflict, "stale version 1");
    assert_kind(repo.soft_delete(&db, d.id, 2, "bob").await, ErrorKind::NotFound, "is soft-deleted");
    assert_kind(repo.restore_deleted(&db, d.id, 1, "bob").await, ErrorKind::Conflict, "stale version 1");
    let restored = repo.restore_deleted(&db, d.id, 2, "bob").await.unwrap();
    assert_eq!((restored.version, restored.deleted_at), (3, None));
    assert_eq!(restored.history.last().unwrap().changes, json!({"deletedAt": null}));
    let stored = raw.find_one(doc! {"_id": d.id.to_string()}).await.unwrap().unwrap();
    assert!(!stored.contains_key("deletedAt"), "a restored design looks like one never deleted: {stored}");
    assert_kind(repo.restore_deleted(&db, d.id, 3, "bob").await, ErrorKind::NotFound, "is not soft-deleted");

    // Two concurrent deletes from the same version: one wins, one conflicts.
    let (r1, r2) = tokio::join!(repo.soft_delete(&db, d.id, 3, "carol"), repo.soft_delete(&db, d.id, 3, "dave"));
    let lost = match (r1, r2) {
        (Ok(w), Err(l)) | (Err(l), Ok(w)) => {
            assert_eq!(w.version, 4);
            l
        }
        (a, b) => panic!("expected one success and one conflict, got {a:?} and {b:?}"),
    };
    assert_eq!(lost.kind(), ErrorKind::Conflict, "{lost}");

    // The trait's delete and restore (no version, no actor) are versioned changes too.
    repo.restore(&db, d.id).await.unwrap();
    repo.delete(&db, d.id).await.unwrap();
    let back = repo.restore(&db, d.id).await.unwrap();
    assert_eq!(back.version, 7);
    assert_eq!(back.history.last().unwrap().changed_by, fwdb::DesignRepo::UNATTRIBUTED);

    // The history (moved entries included) and past versions agree with what was written.
    let page = repo.history(&db, d.id, 0, 100).await.unwrap();
    let who: Vec<(i64, &str)> = page.entries.iter().map(|e| (e.version, e.changed_by.as_str())).collect();
    assert_eq!(&who[..3], [(1, d.user_id.to_string().as_str()), (2, "alice"), (3, "bob")]);
    assert_eq!(who.iter().map(|w| w.0).collect::<Vec<_>>(), (1..=7).collect::<Vec<_>>());
    assert!(db.count("design_history", doc! {"designId": d.id.to_string()}).await.unwrap() >= 5);
    let v2 = repo.at_version(&db, d.id, 2).await.unwrap();
    assert_eq!(v2.deleted_at, Some(at));
    assert_eq!(v2.name, "deletable");
    assert_eq!(repo.at_version(&db, d.id, 3).await.unwrap().deleted_at, None);
    assert!(repo.at_version(&db, d.id, 4).await.unwrap().deleted_at.is_some());
}

#[tokio::test]
async fn the_design_history_collection_validates_entries_and_pages_on_its_index() {
    let app = TestApp::migrated().await;
    let db = mongo(&app).await;
    let hist = db.database().collection::<mongodb::bson::Document>("design_history");
    let id = Uuid::new_v4().to_string();
    let now = Bson::DateTime(mongodb::bson::DateTime::now());
    let good = doc! { "_id": format!("{id}:0000000001"), "designId": &id, "version": 1i64, "changedAt": now.clone(), "changedBy": "u", "changes": {"name": "n"} };
    hist.insert_one(good.clone()).await.expect("a well-formed entry is accepted");
    let entry = |k: &str, v: Bson| {
        let mut d = good.clone();
        d.insert("_id", format!("{id}:0000000002"));
        d.insert("version", 2i64);
        d.insert(k, v);
        d
    };
    let mut no_design = entry("x", Bson::Null);
    no_design.remove("designId");
    let cases = [
        ("designId required", no_design),
        ("version from 1", entry("version", Bson::Int64(0))),
        ("changedAt a date", entry("changedAt", Bson::String("yesterday".into()))),
        ("changedBy not empty", entry("changedBy", Bson::String(String::new()))),
        ("changes a document", entry("changes", Bson::String("name".into()))),
        ("_id is <designId>:<10 digits>", entry("_id", Bson::String(format!("{id}:2")))),
    ];
    for (rule, bad) in cases {
        let e = hist.insert_one(bad).await.expect_err(rule);
        assert!(e.to_string().contains("121") || e.to_string().to_lowercase().contains("validation"), "{rule}: {e}");
    }
    // One entry per (designId, version), whatever its _id.
    let mut twin = good.clone();
    twin.insert("_id", format!("{id}:0000000009"));
    let e = hist.insert_one(twin).await.expect_err("a second entry for version 1");
    assert!(e.to_string().contains("11000") || e.to_string().contains("duplicate"), "{e}");

    // The query `history` pages with is answered from the designId_1_version_1 index.
    let find = doc! { "find": "design_history", "filter": { "designId": &id, "version": { "$gt": 0i64 } }, "sort": { "version": 1 }, "limit": 21i64 };
    let plan = db.database().run_command(doc! { "explain": find, "verbosity": "queryPlanner" }).await.expect("explain");
    let winning = plan
        .get_document("queryPlanner")
        .and_then(|q| q.get_document("winningPlan"))
        .expect("a winning plan")
        .to_string();
    assert!(winning.contains("IXSCAN") && winning.contains("designId_1_version_1"), "{winning}");
}

#[tokio::test]
async fn layers_change_and_status_transitions_are_enforced() {
    let app = TestApp::migrated().await;
    let db = mongo(&app).await;
    let repo = DesignRepo::new();
    let d = repo.create(&db, &new_design(Uuid::new_v4(), "layers")).await.unwrap();

    let d = repo.add_layer(&db, d.id, 1, "u", layer("fab", LayerType::Fabric, 1)).await.unwrap();
    let d = repo.add_layer(&db, d.id, 2, "u", layer("pat", LayerType::Pattern, 2)).await.unwrap();
    assert_eq!(d.layers.iter().map(|l| l.id.as_str()).collect::<Vec<_>>(), ["base", "fab", "pat"]);
    assert_kind(
        repo.add_layer(&db, d.id, 3, "u", layer("fab", LayerType::Fabric, 9)).await,
        ErrorKind::Validation,
        "duplicate layer id",
    );
    let d = repo.reorder_layers(&db, d.id, 3, "u", &["pat", "base", "fab"]).await.unwrap();
    assert_eq!(
        d.layers.iter().map(|l| (l.id.as_str(), l.order)).collect::<Vec<_>>(),
        [("pat", 0), ("base", 1), ("fab", 2)]
    );
    assert_kind(
        repo.reorder_layers(&db, d.id, 4, "u", &["pat", "base"]).await,
        ErrorKind::Validation,
        "every layer id",
    );
    let mut changed = layer("fab", LayerType::Fabric, 2);
    changed.data = json!({"weave": "twill"});
    let d = repo.update_layer(&db, d.id, 4, "u", changed).await.unwrap();
    assert_eq!(d.layers[2].data, json!({"weave": "twill"}));
    let d = repo.remove_layer(&db, d.id, 5, "u", "base").await.unwrap();
    assert_eq!(d.layers.len(), 2);
    assert_kind(repo.remove_layer(&db, d.id, 6, "u", "nope").await, ErrorKind::NotFound, "no layer");
    assert_kind(
        repo.add_layer(&db, d.id, 2, "u", layer("z", LayerType::Fabric, 7)).await,
        ErrorKind::Conflict,
        "stale version 2",
    );

    let d = repo.publish(&db, d.id, 6, "u").await.unwrap();
    assert_eq!((d.status, d.version), (DesignStatus::Published, 7));
    assert_kind(
        repo.publish(&db, d.id, 7, "u").await,
        ErrorKind::Conflict,
        "only a design that is draft can become published",
    );
    let d = repo.archive(&db, d.id, 7, "u").await.unwrap();
    assert_eq!(d.status, DesignStatus::Archived);
    assert_kind(repo.archive(&db, d.id, 8, "u").await, ErrorKind::Conflict, "can become archived");
    assert_eq!(repo.list_by_user(&db, d.user_id, DesignStatus::Archived, 10).await.unwrap().len(), 1);
    assert_eq!(repo.at_version(&db, d.id, 6).await.unwrap().status, DesignStatus::Draft);
}

#[tokio::test]
async fn a_transaction_commits_or_leaves_nothing_behind() {
    let app = TestApp::migrated().await;
    let db = mongo(&app).await;
    let repo = DesignRepo::new();
    let user = Uuid::new_v4();

    // Committed: both writes are there.
    let (a, b) = db
        .transaction(|tx| {
            let repo = repo.clone();
            Box::pin(async move {
                let a = repo.create(tx, &new_design(user, "tx a")).await?;
                let mut p = DesignPatch::new(1, "tx");
                p.name = Some("tx a, renamed".into());
                repo.update(tx, a.id, &p).await?;
                let b = repo.create(tx, &new_design(user, "tx b")).await?;
                Ok((a.id, b.id))
            })
        })
        .await
        .expect("the transaction commits");
    assert_eq!(repo.get(&db, a).await.unwrap().name, "tx a, renamed");
    assert!(repo.find_by_id(&db, b).await.unwrap().is_some());

    // Aborted by an error in the closure: nothing of it remains.
    let before = repo.count(&db, &Query::new().with_deleted()).await.unwrap();
    let r: fwdb::Result<()> = db
        .transaction(|tx| {
            let repo = repo.clone();
            Box::pin(async move {
                repo.create(tx, &new_design(user, "doomed")).await?;
                let mut p = DesignPatch::new(2, "tx");
                p.name = Some("changed then rolled back".into());
                repo.update(tx, a, &p).await?;
                repo.delete(tx, b).await?;
                // A stale version: the closure fails, the transaction aborts.
                repo.update(tx, a, &DesignPatch::new(1, "tx")).await?;
                Ok(())
            })
        })
        .await;
    assert_kind(r, ErrorKind::Conflict, "stale version 1");
    assert_eq!(repo.count(&db, &Query::new().with_deleted()).await.unwrap(), before);
    let a_now = repo.get(&db, a).await.unwrap();
    assert_eq!((a_now.name.as_str(), a_now.version), ("tx a, renamed", 2));
    assert!(repo.find_by_id(&db, b).await.unwrap().is_some(), "the delete was rolled back");
    assert_eq!(repo.query().filter(Design::NAME.eq("doomed")).to_mongo().map(|_| ()).ok(), Some(()));
    assert_eq!(db.count("designs", doc! {"name": "doomed"}).await.unwrap(), 0);
}

#[tokio::test]
async fn the_pool_wait_timeout_is_enforced_on_our_side() {
    let app = TestApp::migrated().await;
    let mut cfg = app.config.mongo.clone();
    cfg.pool.max_size = 1;
    cfg.pool.wait_timeout = std::time::Duration::from_millis(200);
    let db = Mongo::from_config(&cfg, fwdb::Profile::Development).await.unwrap();
    let repo = DesignRepo::new();
    assert_eq!(db.permits(), (1, 1));
    let held = db.acquire().await.unwrap();
    let t = std::time::Instant::now();
    let e = assert_kind(repo.find_by_id(&db, Uuid::new_v4()).await, ErrorKind::Timeout, "pool.max_size 1");
    assert!(e.is_timeout());
    assert!(t.elapsed() >= std::time::Duration::from_millis(190) && t.elapsed() < std::time::Duration::from_secs(5));
    drop(held);
    assert!(repo.find_by_id(&db, Uuid::new_v4()).await.unwrap().is_none());
}

#[tokio::test]
async fn a_designs_avatar_must_exist_in_postgresql_and_be_the_same_users() {
    let app = TestApp::migrated().await;
    let db = mongo(&app).await;
    let pg = crate::repo::client(&app).await;
    let users = fwdb::UserRepo::new();
    let avatars = fwdb::AvatarRepo::new();
    let alice =
        users.create(&pg, &NewUser::new(format!("alice{}@x.com", Uuid::new_v4().simple()), "A", "L")).await.unwrap();
    let bob =
        users.create(&pg, &NewUser::new(format!("bob{}@x.com", Uuid::new_v4().simple()), "B", "M")).await.unwrap();
    let alices = avatars.create(&pg, &NewAvatar::new(alice.id, "alice's")).await.unwrap();
    let bobs = avatars.create(&pg, &NewAvatar::new(bob.id, "bob's")).await.unwrap();
    let repo = DesignRepo::new();

    let mut n = new_design(alice.id, "with avatar");
    n.avatar_id = Some(alices.id);
    let d = repo.create_checked(&db, &pg, &n).await.unwrap();
    assert_eq!(d.avatar_id, Some(alices.id));

    n.avatar_id = Some(bobs.id);
    assert_kind(repo.create_checked(&db, &pg, &n).await, ErrorKind::Validation, "belongs to another user");
    n.avatar_id = Some(Uuid::new_v4());
    assert_kind(repo.create_checked(&db, &pg, &n).await, ErrorKind::Validation, "does not exist");
    assert_kind(
        repo.move_to_avatar(&db, &pg, d.id, 1, "alice", Some(bobs.id)).await,
        ErrorKind::Validation,
        "another user",
    );
    avatars.delete(&pg, alices.id).await.unwrap();
    let again = avatars.create(&pg, &NewAvatar::new(alice.id, "alice's second")).await.unwrap();
    let moved = repo.move_to_avatar(&db, &pg, d.id, 1, "alice", Some(again.id)).await.unwrap();
    assert_eq!((moved.avatar_id, moved.version), (Some(again.id), 2));
    let cleared = repo.move_to_avatar(&db, &pg, d.id, 2, "alice", None).await.unwrap();
    assert_eq!(cleared.avatar_id, None);
}

#[tokio::test]
async fn the_handle_takes_read_preference_and_forces_majority_writes_outside_development() {
    use mongodb::options::{Acknowledgment, ReadPreference as Rp, SelectionCriteria};
    let app = TestApp::spawn().await;
    let mut cfg = app.config.mongo.clone();
    cfg.write_concern = "1".into();
    cfg.read_preference = fwdb::ReadPreference::SecondaryPreferred;
    let dev = Mongo::from_config(&cfg, fwdb::Profile::Development).await.unwrap();
    assert_eq!(dev.database().write_concern().and_then(|w| w.w.clone()), Some(Acknowledgment::Nodes(1)));
    assert!(matches!(
        dev.database().selection_criteria(),
        Some(SelectionCriteria::ReadPreference(Rp::SecondaryPreferred { .. }))
    ));
    let prod = Mongo::from_config(&cfg, fwdb::Profile::Production).await.unwrap();
    assert_eq!(prod.database().write_concern().and_then(|w| w.w.clone()), Some(Acknowledgment::Majority));
    let default = Mongo::from_config(&app.config.mongo, fwdb::Profile::Staging).await.unwrap();
    assert!(matches!(default.database().selection_criteria(), Some(SelectionCriteria::ReadPreference(Rp::Primary))));
    let opts = fwdb::mongo_client_options(&app.config.mongo).await.unwrap();
    assert_eq!(opts.retry_writes, Some(true));
    // Reads on the handle work with secondaryPreferred (a single-node replica set: the primary serves them).
    assert!(DesignRepo::new().find_by_id(&dev, Uuid::new_v4()).await.unwrap().is_none());
}
