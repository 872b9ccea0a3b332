//! Tables a service declares with `#[derive(fwdb::Entity)]`, against the real
//! server: every supported field type round-trips, rules are checked before
//! any SQL, and a row that no longer matches its struct fails with an error
//! naming the table, the column and both types.

use chrono::{DateTime, NaiveDate, Utc};
use fwdb::model::Json;
use fwdb::{Decimal, LabelPath, Order, PgCluster, PgRepository, Repository, Uuid};
use fwdb_testkit::{scratch_tables, TestApp};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dims {
    pub w: u32,
    pub h: u32,
}

fn no_spaces(s: &str) -> Result<(), &'static str> {
    if s.contains(' ') {
        Err("no spaces allowed")
    } else {
        Ok(())
    }
}

/// One field of every type a service will reasonably use.
#[derive(Debug, Clone, PartialEq, fwdb::Entity)]
#[fwdb(schema = "public", table = "kinds")]
pub struct Kinds {
    #[fwdb(generated)]
    pub id: Uuid,
    #[fwdb(unique = "kinds_code_key", not_blank, length(max = 8), check = "no_spaces")]
    pub code: String,
    pub active: bool,
    #[fwdb(range(min = 0, max = 100))]
    pub small: i16,
    pub medium: i32,
    pub big: i64,
    pub ratio: f32,
    #[fwdb(range(min = -1.5, max = 1.5))]
    pub precise: f64,
    #[fwdb(range(min = 0))]
    pub price: Decimal,
    pub owner: Uuid,
    pub seen_at: DateTime<Utc>,
    pub born_on: NaiveDate,
    pub extra: serde_json::Value,
    pub dims: Json<Dims>,
    pub path: LabelPath,
    #[fwdb(length(max = 3))]
    pub tags: Vec<String>,
    pub scores: Vec<i32>,
    #[fwdb(email)]
    pub contact: Option<String>,
    pub maybe_count: Option<i32>,
    pub maybe_day: Option<NaiveDate>,
    #[fwdb(column = "created")]
    #[fwdb(generated)]
    pub created_at: DateTime<Utc>,
}

const KINDS: &str = "CREATE EXTENSION IF NOT EXISTS ltree;
CREATE TABLE kinds (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(), code text NOT NULL CONSTRAINT kinds_code_key UNIQUE,
  active boolean NOT NULL, small int2 NOT NULL, medium int4 NOT NULL, big int8 NOT NULL,
  ratio float4 NOT NULL, precise float8 NOT NULL, price numeric(12,2) NOT NULL, owner uuid NOT NULL,
  seen_at timestamptz NOT NULL, born_on date NOT NULL, extra jsonb NOT NULL, dims jsonb NOT NULL,
  path ltree NOT NULL, tags text[] NOT NULL, scores int4[] NOT NULL, contact text, maybe_count int4,
  maybe_day date, created timestamptz NOT NULL DEFAULT now())";

fn a_kind(code: &str) -> NewKinds {
    NewKinds {
        code: code.into(),
        active: true,
        small: 7,
        medium: 70_000,
        big: 7_000_000_000,
        ratio: 0.5,
        precise: 1.25,
        price: Decimal::new(1999, 2),
        owner: Uuid::new_v4(),
        seen_at: DateTime::from_timestamp(1_700_000_000, 123_000).unwrap(),
        born_on: NaiveDate::from_ymd_opt(1990, 2, 28).unwrap(),
        extra: serde_json::json!({"k": [1, "two"]}),
        dims: Json(Dims { w: 3, h: 4 }),
        path: "women.dresses".into(),
        tags: vec!["a".into(), "b".into()],
        scores: vec![1, -2, 3],
        contact: Some("me@example.com".into()),
        maybe_count: None,
        maybe_day: Some(NaiveDate::from_ymd_opt(2024, 1, 1).unwrap()),
    }
}

async fn kinds_app() -> (TestApp, PgCluster) {
    let app = TestApp::spawn().await;
    scratch_tables(&app.config.postgres, KINDS).await;
    let pg = PgCluster::connect(&app.config.postgres).await.expect("the cluster connects");
    (app, pg)
}

#[tokio::test]
async fn every_supported_field_type_round_trips_through_create_read_and_update() {
    let (_app, pg) = kinds_app().await;
    let repo = PgRepository::<Kinds>::new().with_consistency(fwdb::Consistency::Strong);
    let new = a_kind("k1");
    let made = repo.create(&pg, &new).await.expect("create");
    let read = repo.get(&pg, made.id).await.expect("read back");
    assert_eq!(made, read);
    let NewKinds { code, small, medium, big, price, born_on, dims, path, tags, scores, contact, .. } = new;
    assert_eq!((read.code, read.small, read.medium, read.big), (code, small, medium, big));
    assert_eq!((read.price, read.born_on, read.dims, read.path), (price, born_on, dims, path));
    assert_eq!((read.tags, read.scores, read.contact, read.maybe_count), (tags, scores, contact, None));

    let patch = KindsPatch { medium: Some(-5), maybe_count: Some(Some(9)), contact: Some(None), ..Default::default() };
    let changed = repo.update(&pg, made.id, &patch).await.expect("update");
    assert_eq!((changed.medium, changed.maybe_count, changed.contact), (-5, Some(9), None));
    assert_eq!(changed.big, made.big, "fields not in the patch are left alone");
    let e = repo.create_many(&pg, &[a_kind("k2")]).await.expect_err("unnest cannot carry array columns");
    assert!(e.to_string().contains("array column tags"), "{e}");
}

#[tokio::test]
async fn narrower_integer_and_float_and_date_columns_filter_order_and_page() {
    let (_app, pg) = kinds_app().await;
    let repo = PgRepository::<Kinds>::new().with_consistency(fwdb::Consistency::Strong);
    for (i, code) in ["a", "b", "c", "d"].into_iter().enumerate() {
        let mut k = a_kind(code);
        k.medium = i as i32;
        k.born_on = NaiveDate::from_ymd_opt(2000 + i as i32, 1, 1).unwrap();
        repo.create(&pg, &k).await.expect("create");
    }
    let q = repo.query().filter(Kinds::MEDIUM.ge(2)).filter(Kinds::SMALL.eq(7i16));
    assert_eq!(repo.count(&pg, &q).await.expect("count on int4 and int2"), 2);
    let by_day = repo.query().order_by(Kinds::BORN_ON, Order::Desc).limit(3);
    let page = repo.find_page(&pg, &by_day).await.expect("first page, ordered by a date");
    let days: Vec<i32> = page.items.iter().map(|k| k.medium).collect();
    assert_eq!(days, [3, 2, 1]);
    let rest = repo.find_page(&pg, &by_day.clone().after(page.next.expect("a cursor"))).await.expect("second page");
    assert_eq!(rest.items.iter().map(|k| k.medium).collect::<Vec<_>>(), [0]);
    let q = repo.query().filter(Kinds::PRECISE.lt(2.0)).order_by(Kinds::RATIO, Order::Asc);
    assert_eq!(repo.find_all(&pg, &q).await.expect("float filter").len(), 4);
}

#[tokio::test]
async fn rules_are_checked_before_any_sql_and_name_the_field() {
    let new = a_kind("ok");
    let cases: Vec<(NewKinds, &str)> = vec![
        (NewKinds { code: " ".into(), ..new.clone() }, "code"),
        (NewKinds { code: "toolongcode".into(), ..new.clone() }, "code"),
        (NewKinds { code: "a b".into(), ..new.clone() }, "code"),
        (NewKinds { code: "a\0".into(), ..new.clone() }, "code"),
        (NewKinds { small: 101, ..new.clone() }, "small"),
        (NewKinds { precise: -2.0, ..new.clone() }, "precise"),
        (NewKinds { price: Decimal::new(-1, 2), ..new.clone() }, "price"),
        (NewKinds { contact: Some("not-mail".into()), ..new.clone() }, "contact"),
        (NewKinds { tags: vec!["a".into(); 4], ..new.clone() }, "tags"),
        (NewKinds { path: "a..b".into(), ..new.clone() }, "path"),
    ];
    for (bad, field) in cases {
        let e = PgRepository::<Kinds>::create_statement(&bad, &None).expect_err(field);
        assert_eq!(e.kind(), fwdb::ErrorKind::Validation, "{field}: {e}");
        assert!(e.to_string().contains(field), "{field}: {e}");
    }
    let patch = KindsPatch { small: Some(-1), ..Default::default() };
    let e = PgRepository::<Kinds>::update_statement(&Uuid::nil(), &patch, &None).expect_err("a bad patch");
    assert!(e.to_string().contains("small"), "{e}");
    PgRepository::<Kinds>::create_statement(&NewKinds { contact: None, ..new }, &None).expect("NULL passes every rule");
}

#[tokio::test]
async fn a_duplicate_names_the_unique_constraint_and_its_field() {
    let (_app, pg) = kinds_app().await;
    let repo = PgRepository::<Kinds>::new();
    repo.create(&pg, &a_kind("same")).await.expect("first");
    let e = repo.create(&pg, &a_kind("same")).await.expect_err("a duplicate code");
    assert!(e.is_conflict(), "{e}");
    assert!(e.to_string().contains("kinds_code_key") && e.to_string().contains("field code"), "{e}");
}

/// The same table read through a struct that expects text where the table has int4.
#[derive(Debug, Clone, PartialEq, fwdb::Entity)]
#[fwdb(table = "kinds")]
pub struct Drifted {
    pub id: Uuid,
    pub medium: String,
}

/// A struct with a non-optional field over a nullable column.
#[derive(Debug, Clone, PartialEq, fwdb::Entity)]
#[fwdb(table = "kinds")]
pub struct Strict {
    pub id: Uuid,
    pub maybe_count: i32,
}

#[tokio::test]
async fn a_row_that_no_longer_matches_its_struct_fails_naming_table_column_and_types() {
    let (_app, pg) = kinds_app().await;
    let made = PgRepository::<Kinds>::new().create(&pg, &a_kind("drift")).await.expect("create");
    let strong = fwdb::Consistency::Strong;
    let e =
        PgRepository::<Drifted>::new().with_consistency(strong).get(&pg, made.id).await.expect_err("int4 into String");
    let msg = e.to_string();
    assert!(msg.contains("public.kinds.medium") && msg.contains("int4") && msg.contains("String"), "{msg}");
    let e = PgRepository::<Strict>::new().with_consistency(strong).get(&pg, made.id).await.expect_err("NULL into i32");
    let msg = e.to_string();
    assert!(msg.contains("public.kinds.maybe_count") && msg.contains("NULL") && msg.contains("i32"), "{msg}");
}

/// No `soft_delete`, no `audit`: delete removes the row, nothing writes created_by.
#[derive(Debug, Clone, PartialEq, fwdb::Entity)]
#[fwdb(table = "notes", new = "NoteDraft", patch = "NoteEdit")]
pub struct Note {
    #[fwdb(id)]
    pub note_id: Uuid,
    #[fwdb(not_blank)]
    pub body: String,
}

#[tokio::test]
async fn an_entity_without_soft_delete_or_audit_is_deleted_for_good() {
    let app = TestApp::spawn().await;
    scratch_tables(
        &app.config.postgres,
        "CREATE TABLE notes (note_id uuid PRIMARY KEY DEFAULT gen_random_uuid(), body text NOT NULL)",
    )
    .await;
    let pg = PgCluster::connect(&app.config.postgres).await.expect("the cluster connects");
    let repo = PgRepository::<Note>::new().with_consistency(fwdb::Consistency::Strong);
    let ids = repo
        .create_many(&pg, &[NoteDraft { body: "a".into() }, NoteDraft { body: "b".into() }])
        .await
        .expect("create_many");
    let edited = repo.update(&pg, ids[0], &NoteEdit { body: Some("A".into()) }).await.expect("update");
    assert_eq!(edited.body, "A");
    repo.delete(&pg, ids[0]).await.expect("delete");
    assert!(repo.find_by_id(&pg, ids[0]).await.expect("read").is_none());
    assert_eq!(repo.count(&pg, &repo.query().with_deleted()).await.expect("count"), 1, "the row is gone, not hidden");
}
