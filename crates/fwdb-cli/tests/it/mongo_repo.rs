//! The generic MongoDB repositories with document types fwdb has never heard
//! of, defined here: `Note` (plain writes, soft delete) through
//! `MongoRepository`, and `Recipe` (versions and history) through
//! `VersionedRepository`. CRUD, soft delete, keyset pages, lookups by id,
//! transactions; documents written by another client; documents that do not
//! match their type.

use crate::helpers::TestApp;
use chrono::{DateTime, Utc};
use fwdb::{
    bson_fields, Column, Document, Entity, ErrorKind, Mongo, MongoExec, MongoRepository, Order, Plain, Query,
    Repository, Tracked, Uuid, Value, Versioned, VersionedRepository,
};
use mongodb::bson::{doc, Bson};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Note {
    #[serde(with = "bson_fields::uuid_text")]
    id: Uuid,
    #[serde(with = "bson_fields::uuid_text")]
    owner_id: Uuid,
    title: String,
    #[serde(default)]
    tags: Vec<String>,
    stars: i64,
    #[serde(default)]
    body: Option<String>,
    #[serde(with = "bson_fields::date")]
    created_at: DateTime<Utc>,
    #[serde(with = "bson_fields::date")]
    updated_at: DateTime<Utc>,
    #[serde(default, with = "bson_fields::opt_date")]
    deleted_at: Option<DateTime<Utc>>,
}

impl Note {
    const ID: Column<Note, Uuid> = Column::new("_id");
    const OWNER_ID: Column<Note, Uuid> = Column::new("ownerId");
    const TITLE: Column<Note, String> = Column::new("title");
}

impl Entity for Note {
    const SCHEMA: &'static str = "mongodb";
    const TABLE: &'static str = "notes";
    const FIELDS: &'static [&'static str] =
        &["_id", "ownerId", "title", "tags", "stars", "body", "createdAt", "updatedAt", "deletedAt"];
    const ID: Column<Self, Uuid> = Note::ID;
    const DELETED_AT: Option<&'static str> = Some("deletedAt");

    fn from_row(_: &tokio_postgres::Row) -> fwdb::Result<Self> {
        unreachable!("a MongoDB document")
    }

    fn id(&self) -> Uuid {
        self.id
    }

    fn field_value(&self, field: &str) -> Option<Value> {
        Some(match field {
            "_id" => Value::Uuid(self.id),
            "ownerId" => Value::Uuid(self.owner_id),
            "title" => Value::String(self.title.clone()),
            _ => return None,
        })
    }
}

#[derive(Debug, Clone)]
struct NewNote {
    owner_id: Uuid,
    title: String,
    stars: i64,
}

#[derive(Debug, Clone, Default, Serialize)]
struct NotePatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stars: Option<i64>,
}

impl Document for Note {
    const MODEL: &'static str = "note";
    const UPDATED_AT: Option<&'static str> = Some("updatedAt");
    type Mode = Plain;
    type New = NewNote;
    type Patch = NotePatch;

    fn from_new(new: &NewNote, id: Uuid, now: DateTime<Utc>) -> Note {
        Note {
            id,
            owner_id: new.owner_id,
            title: new.title.clone(),
            tags: Vec::new(),
            stars: new.stars,
            body: None,
            created_at: now,
            updated_at: now,
            deleted_at: None,
        }
    }

    fn patch_fields(patch: &NotePatch) -> fwdb::Result<mongodb::bson::Document> {
        bson_fields::to_document(patch)
    }
}

fn note(owner: Uuid, title: &str) -> NewNote {
    NewNote { owner_id: owner, title: title.into(), stars: 1 }
}

async fn mongo(app: &TestApp) -> Mongo {
    Mongo::connect(&app.config).await.expect("the MongoDB handle")
}

fn assert_kind<T: std::fmt::Debug>(r: fwdb::Result<T>, kind: ErrorKind, needle: &str) -> fwdb::Error {
    let e = r.expect_err("an error");
    assert_eq!(e.kind(), kind, "{e}");
    assert!(e.to_string().contains(needle), "`{e}` should mention `{needle}`");
    e
}

#[tokio::test]
async fn mongo_repo_any_document_type_gets_crud_soft_delete_pages_and_lookups_by_id() {
    let app = TestApp::migrated().await;
    let db = mongo(&app).await;
    let repo = MongoRepository::<Note>::new();
    let raw = db.database().collection::<mongodb::bson::Document>("notes");
    let owner = Uuid::new_v4();

    let a = repo.create(&db, &note(owner, "a")).await.unwrap();
    assert_eq!(repo.find_by_id(&db, a.id).await.unwrap().as_ref(), Some(&a), "returned as stored");
    let stored = raw.find_one(doc! {}).await.unwrap().unwrap();
    assert_eq!(stored.get("_id"), Some(&Bson::String(a.id.to_string())), "{stored}");
    assert!(matches!(stored.get("createdAt"), Some(Bson::DateTime(_))), "{stored}");
    assert!(!stored.contains_key("deletedAt") && !stored.contains_key("id"), "{stored}");
    let ids = repo.create_many(&db, &[note(owner, "b"), note(owner, "c"), note(Uuid::new_v4(), "x")]).await.unwrap();
    assert_eq!(ids.len(), 3);
    // Over MongoDB's 16 MiB: rejected before anything is sent, the whole batch too.
    let huge = note(owner, &"x".repeat(17 * 1024 * 1024));
    assert_kind(repo.create(&db, &huge).await, ErrorKind::Validation, "16 MiB");
    assert_kind(repo.create_many(&db, &[note(owner, "ok"), huge]).await, ErrorKind::Validation, "note 1");
    assert_eq!(raw.count_documents(doc! {}).await.unwrap(), 4, "nothing of a rejected batch was written");

    let mine = Query::<Note>::new().filter(Note::OWNER_ID.eq(owner));
    assert_eq!(repo.count(&db, &mine).await.unwrap(), 3);
    assert!(repo.exists(&db, &mine.clone().filter(Note::TITLE.eq("c"))).await.unwrap());
    assert!(!repo.exists(&db, &mine.clone().filter(Note::TITLE.eq("zz"))).await.unwrap());
    let found = repo.find_many_by_ids(&db, &[a.id, ids[2], Uuid::new_v4()]).await.unwrap();
    assert_eq!(found.len(), 2);
    assert!(repo.find_many_by_ids(&db, &[]).await.unwrap().is_empty());

    let q = mine.clone().order_by(Note::TITLE, Order::Desc).limit(2);
    let p1 = repo.find_page(&db, &q).await.unwrap();
    assert_eq!(p1.items.iter().map(|n| n.title.as_str()).collect::<Vec<_>>(), ["c", "b"]);
    let p2 = repo.find_page(&db, &q.clone().after(p1.next.unwrap())).await.unwrap();
    assert_eq!(p2.items.iter().map(|n| n.title.as_str()).collect::<Vec<_>>(), ["a"]);
    assert!(p2.next.is_none());

    let patch = NotePatch { title: Some("a2".into()), stars: Some(5) };
    let a2 = repo.update(&db, a.id, &patch).await.unwrap();
    assert_eq!((a2.title.as_str(), a2.stars, a2.owner_id), ("a2", 5, owner));
    assert!(a2.updated_at >= a.updated_at);
    assert_eq!(repo.update(&db, a.id, &NotePatch::default()).await.unwrap(), a2, "an empty patch changes nothing");
    assert_kind(repo.update(&db, Uuid::new_v4(), &patch).await, ErrorKind::NotFound, "no live note");

    repo.delete(&db, a.id).await.unwrap();
    assert!(repo.find_by_id(&db, a.id).await.unwrap().is_none());
    assert_eq!(repo.count(&db, &mine.clone().only_deleted()).await.unwrap(), 1);
    assert_kind(repo.delete(&db, a.id).await, ErrorKind::NotFound, "no live note");
    assert_kind(repo.update(&db, a.id, &patch).await, ErrorKind::NotFound, "no live note");
    let back = repo.restore(&db, a.id).await.unwrap();
    assert_eq!((back.title.as_str(), back.deleted_at), ("a2", None));
    let stored = raw.find_one(doc! {"_id": a.id.to_string()}).await.unwrap().unwrap();
    assert!(!stored.contains_key("deletedAt"), "a restored note looks like one never deleted: {stored}");
    assert_kind(repo.restore(&db, a.id).await, ErrorKind::NotFound, "no soft-deleted note");
    repo.purge(&db, a.id).await.unwrap();
    assert!(repo.find_all(&db, &mine.with_deleted()).await.unwrap().iter().all(|n| n.id != a.id));
    assert_kind(repo.get(&db, a.id).await, ErrorKind::NotFound, &a.id.to_string());
    assert_kind(repo.purge(&db, a.id).await, ErrorKind::NotFound, "no note");
}

#[tokio::test]
async fn mongo_repo_the_generic_repository_commits_or_rolls_back_in_a_transaction() {
    let app = TestApp::migrated().await;
    let db = mongo(&app).await;
    let repo = MongoRepository::<Note>::new();
    let owner = Uuid::new_v4();
    let kept = repo.create(&db, &note(owner, "kept")).await.unwrap();

    let id = db
        .transaction(|tx| {
            let repo = repo.clone();
            Box::pin(async move {
                let n = repo.create(tx, &note(owner, "in tx")).await?;
                repo.update(tx, n.id, &NotePatch { stars: Some(3), ..Default::default() }).await?;
                Ok(n.id)
            })
        })
        .await
        .expect("commits");
    assert_eq!(repo.get(&db, id).await.unwrap().stars, 3);

    let r: fwdb::Result<()> = db
        .transaction(|tx| {
            let repo = repo.clone();
            Box::pin(async move {
                repo.create(tx, &note(owner, "doomed")).await?;
                repo.delete(tx, kept.id).await?;
                assert!(repo.find_by_id(tx, kept.id).await?.is_none(), "the transaction sees its own delete");
                repo.update(tx, Uuid::new_v4(), &NotePatch::default()).await?;
                Ok(())
            })
        })
        .await;
    assert_kind(r, ErrorKind::NotFound, "no live note");
    assert!(repo.find_by_id(&db, kept.id).await.unwrap().is_some(), "the delete was rolled back");
    assert_eq!(db.count("notes", doc! {"title": "doomed"}).await.unwrap(), 0);
}

#[tokio::test]
async fn mongo_repo_documents_from_another_client_are_read_past_extra_fields_and_int32() {
    let app = TestApp::migrated().await;
    let db = mongo(&app).await;
    let repo = MongoRepository::<Note>::new();
    let raw = db.database().collection::<mongodb::bson::Document>("notes");
    let (id, owner) = (Uuid::new_v4(), Uuid::new_v4());
    let now = mongodb::bson::DateTime::now();
    // No tags, no body, stars as Int32 (what a JavaScript client writes), a
    // field this type does not have, and a whole double in a nested client field.
    raw.insert_one(doc! {
        "_id": id.to_string(), "ownerId": owner.to_string(), "title": "theirs", "stars": 4i32,
        "colour": "red", "extra": { "n": 1.0 }, "createdAt": now, "updatedAt": now, "deletedAt": Bson::Null,
    })
    .await
    .unwrap();
    let n = repo.get(&db, id).await.expect("read past what it does not know");
    assert_eq!((n.title.as_str(), n.stars, n.tags.len(), n.body.clone(), n.owner_id), ("theirs", 4, 0, None, owner));
    assert_eq!(n.created_at.timestamp_millis(), now.timestamp_millis());
    let listed = repo.find_all(&db, &Query::new().filter(Note::OWNER_ID.eq(owner))).await.unwrap();
    assert_eq!(listed, std::slice::from_ref(&n));
    // Updating it keeps what this type does not know.
    repo.update(&db, id, &NotePatch { stars: Some(6), ..Default::default() }).await.unwrap();
    let stored = raw.find_one(doc! {"_id": id.to_string()}).await.unwrap().unwrap();
    assert_eq!((stored.get_str("colour").unwrap(), stored.get_i64("stars").unwrap()), ("red", 6));
}

#[tokio::test]
async fn mongo_repo_a_document_that_does_not_match_its_type_fails_naming_the_field_and_the_id() {
    let app = TestApp::migrated().await;
    let db = mongo(&app).await;
    let repo = MongoRepository::<Note>::new();
    let raw = db.database().collection::<mongodb::bson::Document>("notes");
    let owner = Uuid::new_v4();
    let now = mongodb::bson::DateTime::now();
    let good = doc! { "ownerId": owner.to_string(), "title": "t", "stars": 1i64, "createdAt": now, "updatedAt": now };
    let cases: Vec<(&str, Bson, &str)> = vec![
        ("title", Bson::Int32(42), "title"),
        ("stars", Bson::Double(1.5), "stars"),
        ("tags", Bson::Array(vec![Bson::Int32(1)]), "tags[0]"),
        ("createdAt", Bson::String("yesterday".into()), "createdAt"),
        ("ownerId", Bson::String("not-a-uuid".into()), "ownerId"),
    ];
    for (field, value, path) in cases {
        let id = Uuid::new_v4();
        let mut bad = good.clone();
        bad.insert("_id", id.to_string());
        bad.insert(field, value);
        raw.insert_one(bad).await.unwrap();
        let e = assert_kind(repo.get(&db, id).await, ErrorKind::Mongo, &id.to_string());
        assert!(e.to_string().contains(&format!("`{path}`")), "`{e}` should name `{path}`");
        assert!(e.to_string().contains("notes document"), "{e}");
        raw.delete_one(doc! {"_id": id.to_string()}).await.unwrap();
    }
    // A malformed _id is named too, in a list.
    let mut bad = good.clone();
    bad.insert("_id", "legacy-7");
    raw.insert_one(bad).await.unwrap();
    let e = assert_kind(repo.find_all(&db, &Query::new()).await, ErrorKind::Mongo, "legacy-7");
    assert!(e.to_string().contains("`_id`"), "{e}");
}

/// A versioned type: every change checks the version and leaves history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Recipe {
    #[serde(with = "bson_fields::uuid_text")]
    id: Uuid,
    title: String,
    #[serde(with = "bson_fields::int")]
    version: i64,
    #[serde(default)]
    history: Vec<fwdb::DesignHistoryEntry>,
    #[serde(with = "bson_fields::date")]
    updated_at: DateTime<Utc>,
    #[serde(default, with = "bson_fields::opt_date")]
    deleted_at: Option<DateTime<Utc>>,
}

impl Entity for Recipe {
    const SCHEMA: &'static str = "mongodb";
    const TABLE: &'static str = "recipes";
    const FIELDS: &'static [&'static str] = &["_id", "title", "version", "history", "updatedAt", "deletedAt"];
    const ID: Column<Self, Uuid> = Column::new("_id");
    const DELETED_AT: Option<&'static str> = Some("deletedAt");

    fn from_row(_: &tokio_postgres::Row) -> fwdb::Result<Self> {
        unreachable!("a MongoDB document")
    }

    fn id(&self) -> Uuid {
        self.id
    }

    fn field_value(&self, field: &str) -> Option<Value> {
        (field == "_id").then_some(Value::Uuid(self.id))
    }
}

#[derive(Debug, Clone, Default)]
struct RecipePatch {
    expected: i64,
    by: String,
    title: Option<String>,
}

impl Document for Recipe {
    const MODEL: &'static str = "recipe";
    const UPDATED_AT: Option<&'static str> = Some("updatedAt");
    type Mode = Tracked;
    type New = String;
    type Patch = RecipePatch;

    fn from_new(title: &String, id: Uuid, now: DateTime<Utc>) -> Recipe {
        Recipe { id, title: title.clone(), version: 1, history: Vec::new(), updated_at: now, deleted_at: None }
    }

    fn patch_fields(p: &RecipePatch) -> fwdb::Result<mongodb::bson::Document> {
        Ok(p.title.as_ref().map(|t| doc! {"title": t}).unwrap_or_default())
    }
}

impl Versioned for Recipe {
    const HISTORY_COLLECTION: &'static str = "recipe_history";
    const HISTORY_OWNER: &'static str = "recipeId";
    const TRACKED: &'static [&'static str] = &["title"];

    fn created_by(_: &String) -> String {
        "chef".into()
    }

    fn patch_version(p: &RecipePatch) -> (i64, &str) {
        (p.expected, &p.by)
    }
}

fn retitle(expected: i64, title: &str) -> RecipePatch {
    RecipePatch { expected, by: format!("cook{expected}"), title: Some(title.into()) }
}

#[tokio::test]
async fn mongo_repo_any_versioned_type_gets_conflicts_history_and_past_versions() {
    let app = TestApp::migrated().await;
    let db = mongo(&app).await;
    let repo = VersionedRepository::<Recipe>::new().with_history_limit(2);
    let r = repo.create(&db, &"soup".to_string()).await.unwrap();
    assert_eq!((r.version, r.history.len(), r.history[0].changed_by.as_str()), (1, 1, "chef"));

    let (px, py) = (retitle(1, "x"), retitle(1, "y"));
    let (x, y) = tokio::join!(repo.update(&db, r.id, &px), repo.update(&db, r.id, &py));
    let lost = match (x, y) {
        (Ok(w), Err(l)) | (Err(l), Ok(w)) => {
            assert_eq!(w.version, 2);
            l
        }
        (a, b) => panic!("expected one success and one conflict, got {a:?} and {b:?}"),
    };
    assert_eq!(lost.kind(), ErrorKind::Conflict, "{lost}");
    assert!(lost.to_string().contains("recipe") && lost.to_string().contains("stale version 1"), "{lost}");
    for v in 2..=4 {
        repo.update(&db, r.id, &retitle(v, &format!("soup {}", v + 1))).await.unwrap();
    }
    let now = repo.get(&db, r.id).await.unwrap();
    assert_eq!(now.history.iter().map(|e| e.version).collect::<Vec<_>>(), [4, 5]);
    assert_eq!(db.count("recipe_history", doc! {"recipeId": r.id.to_string()}).await.unwrap(), 3);
    let page = repo.history(&db, r.id, 0, 10).await.unwrap();
    assert_eq!(page.entries.iter().map(|e| e.version).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
    assert_eq!(repo.at_version(&db, r.id, 1).await.unwrap().title, "soup");
    assert_eq!(repo.at_version(&db, r.id, 4).await.unwrap().title, "soup 4");

    // Delete through the trait is a versioned change too: it bumps the version and leaves history.
    repo.delete(&db, r.id).await.unwrap();
    assert_kind(repo.update(&db, r.id, &retitle(5, "late")).await, ErrorKind::Conflict, "stale version 5");
    let back = repo.restore(&db, r.id).await.unwrap();
    assert_eq!(back.version, 7);
    assert_eq!(back.history.last().unwrap().changed_by, VersionedRepository::<Recipe>::UNATTRIBUTED);
    repo.purge(&db, r.id).await.unwrap();
    assert_eq!(db.count("recipe_history", doc! {}).await.unwrap(), 0, "purge takes the moved history too");
}
