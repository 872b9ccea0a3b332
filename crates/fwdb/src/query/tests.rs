//! The SQL compiler without a server: statement text, parameter counts,
//! values never in the text, soft-delete scopes, cursors, validation.

use super::*;
use crate::entities::{Avatar, AvatarPatch, Item, ItemPatch, NewItem, NewUser, User, UserPatch};
use crate::repo::PgRepository;
use crate::ErrorKind;
use chrono::Utc;
use rust_decimal::Decimal;
use serde_json::json;

fn sql_of<E: Entity>(q: Query<E>) -> (String, usize) {
    let st = q.to_sql().unwrap_or_else(|e| panic!("{e}"));
    let n = st.param_count();
    (st.sql, n)
}

/// The WHERE clause only (the select list is the same for every query).
fn where_of<E: Entity>(q: Query<E>) -> (String, usize) {
    let (sql, n) = sql_of(q);
    let w = sql.split(" WHERE ").nth(1).unwrap_or("").split(" ORDER BY ").next().unwrap().to_string();
    (w, n)
}

fn users() -> Query<User> {
    Query::new()
}

fn items() -> Query<Item> {
    Query::new()
}

fn validation_naming<T: std::fmt::Debug>(r: crate::Result<T>, field: &str) {
    let e = r.expect_err("a validation error");
    assert_eq!(e.kind(), ErrorKind::Validation, "{e}");
    assert!(e.to_string().contains(field), "{e} should name {field}");
}

#[test]
fn each_operator_compiles_to_its_sql_with_one_bound_parameter() {
    let id = uuid::Uuid::new_v4();
    let cases: Vec<(Query<Item>, &str)> = vec![
        (items().filter(Item::SKU.eq("A")), r#""sku" = $1"#),
        (items().filter(Item::SKU.ne("A")), r#""sku" <> $1"#),
        (items().filter(Item::PRICE.lt(Decimal::ONE)), r#""price" < $1"#),
        (items().filter(Item::PRICE.le(Decimal::ONE)), r#""price" <= $1"#),
        (items().filter(Item::PRICE.gt(Decimal::ONE)), r#""price" > $1"#),
        (items().filter(Item::PRICE.ge(Decimal::ONE)), r#""price" >= $1"#),
        (items().filter(Item::ID.in_([id, id, id])), r#""id" = ANY($1)"#),
        (items().filter(Item::NAME.like("Dr%")), r#""name" LIKE $1"#),
        (items().filter(Item::NAME.ilike("dr%")), r#""name" ILIKE $1"#),
        (items().filter(Item::NAME.eq_ignore_case("X")), r#"LOWER("name") = LOWER($1)"#),
        (items().filter(Item::ATTRIBUTES.contains(json!({"colour": "red"}))), r#""attributes" @> $1"#),
        (items().filter(Item::NAME.similar_to("dres")), r#""name" % $1"#),
        (items().filter(Item::CATEGORY_PATH.descendant_of("women.dresses")), r#""category_path" <@ $1"#),
    ];
    for (q, expected) in cases {
        let (w, n) = where_of(q);
        let bare = expected;
        assert!(
            w == format!(r#"{bare} AND "deleted_at" IS NULL"#) || w == format!(r#"({bare}) AND "deleted_at" IS NULL"#),
            "{w} is not {expected}"
        );
        assert_eq!(n, 1, "{w}");
    }
    let (w, n) = where_of(items().filter(Item::DESCRIPTION.is_null()));
    assert_eq!((w.as_str(), n), (r#""description" IS NULL AND "deleted_at" IS NULL"#, 0));
    let (w, n) = where_of(items().filter(Item::DESCRIPTION.is_not_null()));
    assert_eq!((w.as_str(), n), (r#""description" IS NOT NULL AND "deleted_at" IS NULL"#, 0));
}

#[test]
fn in_binds_one_array_whatever_the_length_of_the_list() {
    let ids: Vec<uuid::Uuid> = (0..5000).map(|_| uuid::Uuid::new_v4()).collect();
    let (_, n) = sql_of(users().filter(User::ID.in_(ids)));
    assert_eq!(n, 1);
}

#[test]
fn and_or_not_nest_with_parentheses() {
    let f = (User::ROLE.eq("admin") & User::FIRST_NAME.like("A%")) | !User::LAST_NAME.eq("Smith");
    let (w, n) = where_of(users().filter(f));
    assert_eq!(w, r#"(("role" = $1 AND "first_name" LIKE $2) OR (NOT "last_name" = $3)) AND "deleted_at" IS NULL"#);
    assert_eq!(n, 3);
    let (w, _) = where_of(users().filter(User::ROLE.eq("a")).filter(User::ROLE.ne("b")));
    assert_eq!(w, r#""role" = $1 AND "role" <> $2 AND "deleted_at" IS NULL"#);
}

#[test]
fn soft_deleted_rows_are_excluded_unless_the_query_asks_for_them() {
    assert_eq!(where_of(users()).0, r#""deleted_at" IS NULL"#);
    assert_eq!(where_of(users().only_deleted()).0, r#""deleted_at" IS NOT NULL"#);
    let (sql, _) = sql_of(users().with_deleted());
    assert!(!sql.contains("deleted_at\" IS"), "{sql}");
}

const HOSTILE: &[&str] = &[
    "o'brien",
    "'; DROP TABLE shared.users; --",
    "\" OR 1=1 --",
    "back\\slash\\'",
    "$1 $$ $2",
    "?",
    "%_%",
    "日本語 🎉 ﷽",
    "\u{202e}reversed",
];

#[test]
fn hostile_values_never_appear_in_the_statement_text() {
    for h in HOSTILE {
        let qs = [
            users().filter(User::EMAIL.eq(*h)),
            users().filter(User::FIRST_NAME.like(*h)),
            users().filter(User::LAST_NAME.ilike(*h)),
            users().filter(User::EMAIL.eq_ignore_case(*h)),
            users().filter(User::ROLE.in_([*h, "x"])),
        ];
        for q in qs {
            let (sql, n) = sql_of(q);
            assert!(!sql.contains(h), "{h:?} leaked into {sql}");
            assert!(!sql.contains("DROP") && !sql.contains('\''), "{sql}");
            assert_eq!(n, 1);
        }
        let (sql, _) = sql_of(items().filter(Item::NAME.similar_to(*h)));
        assert!(!sql.contains(h));
        let (sql, _) = sql_of(items().filter(Item::ATTRIBUTES.contains(json!({ *h: *h }))));
        assert!(!sql.contains(h));
    }
    let long = "x".repeat(100_000);
    let (sql, _) = sql_of(users().filter(User::FIRST_NAME.eq(long.as_str())));
    assert!(sql.len() < 1000);
}

#[test]
fn nul_bytes_and_malformed_label_paths_in_filters_are_validation_errors_before_any_sql() {
    validation_naming(users().filter(User::EMAIL.eq("a\0b")).to_sql(), "email");
    validation_naming(users().filter(User::ROLE.in_(["ok", "n\0l"])).to_sql(), "role");
    validation_naming(items().filter(Item::ATTRIBUTES.contains(json!({"k": "\u{0}"}))).to_sql(), "attributes");
    validation_naming(
        items().filter(Item::CATEGORY_PATH.descendant_of("women'; DROP TABLE x; --")).to_sql(),
        "category_path",
    );
    validation_naming(items().filter(Item::CATEGORY_PATH.descendant_of("")).to_sql(), "category_path");
    validation_naming(items().filter(Item::ATTRIBUTES.contains(json!("scalar"))).to_sql(), "attributes");
}

#[test]
fn limits_must_be_between_zero_and_the_maximum_and_offsets_not_negative() {
    validation_naming(users().limit(-1).to_sql(), "limit");
    validation_naming(users().limit(MAX_LIMIT + 1).to_sql(), "limit");
    validation_naming(users().limit(i64::MAX).to_sql(), "limit");
    validation_naming(users().offset(-5).to_sql(), "offset");
    // The limit is a checked number in the text (PostgreSQL then caches a
    // generic plan); the offset stays a parameter.
    let (sql, n) = sql_of(users().limit(10).offset(20));
    assert!(sql.ends_with("LIMIT 10 OFFSET $1"), "{sql}");
    assert_eq!(n, 1);
}

#[test]
fn every_ordering_ends_with_the_id_so_pages_are_total() {
    let (sql, _) = sql_of(users().order_by(User::LAST_NAME, Order::Asc).order_by(User::CREATED_AT, Order::Desc));
    assert!(sql.ends_with(r#"ORDER BY "last_name" ASC, "created_at" DESC, "id" ASC"#), "{sql}");
    let (sql, _) = sql_of(users().order_by(User::ID, Order::Desc));
    assert!(sql.ends_with(r#"ORDER BY "id" DESC"#), "{sql}");
}

fn user(email: &str) -> User {
    let now = Utc::now();
    User {
        id: uuid::Uuid::new_v4(),
        email: email.into(),
        first_name: "A".into(),
        last_name: "B".into(),
        role: "user".into(),
        created_at: now,
        updated_at: now,
        deleted_at: None,
        created_by: None,
        updated_by: None,
    }
}

#[test]
fn a_cursor_continues_with_a_row_comparison_when_all_keys_go_the_same_way() {
    let q = users().order_by(User::EMAIL, Order::Asc).limit(10);
    let c = q.cursor_for(&user("o'brien@x.com")).unwrap();
    assert!(!c.contains("brien"), "cursors are opaque: {c}");
    let (w, n) = where_of(q.after(c));
    assert_eq!(w, r#""deleted_at" IS NULL AND ("email", "id") > ($1, $2)"#);
    assert_eq!(n, 2, "the two keys (the limit is in the text)");
}

#[test]
fn a_cursor_over_mixed_directions_expands_to_or_of_ands() {
    let q = users().order_by(User::LAST_NAME, Order::Desc).limit(10);
    let c = q.cursor_for(&user("a@b.co")).unwrap();
    let (w, _) = where_of(q.after(c));
    assert_eq!(w, r#""deleted_at" IS NULL AND ("last_name" < $1 OR ("last_name" = $2 AND "id" > $3))"#);
}

#[test]
fn a_cursor_for_another_ordering_or_a_forged_one_is_rejected_before_any_sql() {
    let by_email = users().order_by(User::EMAIL, Order::Asc);
    let c = by_email.cursor_for(&user("a@b.co")).unwrap();
    validation_naming(users().order_by(User::EMAIL, Order::Desc).after(c.clone()).to_sql(), "cursor");
    validation_naming(users().order_by(User::LAST_NAME, Order::Asc).after(c.clone()).to_sql(), "cursor");
    validation_naming(Query::<Avatar>::new().after(c.clone()).to_sql(), "cursor");
    validation_naming(by_email.clone().after("'; DROP TABLE shared.users; --").to_sql(), "cursor");
    validation_naming(by_email.clone().after("").to_sql(), "cursor");
    validation_naming(by_email.clone().after(c).offset(3).to_sql(), "offset");
}

#[test]
fn a_null_order_value_cannot_key_a_cursor() {
    let q = users().order_by(User::DELETED_AT, Order::Asc);
    validation_naming(q.cursor_for(&user("a@b.co")), "deleted_at");
}

#[test]
fn create_many_is_one_statement_with_one_array_per_column_whatever_the_row_count() {
    type Users = PgRepository<User>;
    for n in [1, 10, 10_000] {
        let rows: Vec<NewUser> = (0..n).map(|i| NewUser::new(format!("u{i}@x.com"), "A", "B")).collect();
        let (st, ids) = Users::create_many_statement(&rows, None).unwrap();
        assert_eq!(st.param_count(), 1 + 4 + 2, "id, four fields, created_by, updated_by");
        assert_eq!(ids.len(), n);
        assert!(st.sql.contains("SELECT unnest($1::uuid[]), unnest($2::text[])"), "{}", st.sql);
        assert!(!st.sql.contains("u0@x.com"));
    }
    let bad = vec![NewUser::new("ok@x.com", "A", "B"), NewUser::new("not-an-email", "A", "B")];
    validation_naming(Users::create_many_statement(&bad, None), "row 1");
    let items = vec![NewItem::new("S1", "Dress", "women.dresses", Decimal::new(1999, 2))];
    let (st, _) = PgRepository::<Item>::create_many_statement(&items, None).unwrap();
    assert!(
        st.sql.contains("unnest($5::ltree[]), unnest($6::numeric[])") && st.sql.contains("unnest($8::jsonb[])"),
        "{}",
        st.sql
    );
}

#[test]
fn an_update_sets_only_the_fields_of_the_patch_and_the_updater() {
    let id = uuid::Uuid::new_v4();
    let actor = Some(uuid::Uuid::new_v4());
    let patch = UserPatch { last_name: Some("X".into()), ..Default::default() };
    let st = PgRepository::<User>::update_statement(&id, &patch, &actor).unwrap().unwrap();
    assert!(st.sql.starts_with(r#"UPDATE "shared"."users" SET "last_name" = $1, "updated_by" = $2 WHERE "id" = $3 AND "deleted_at" IS NULL"#), "{}", st.sql);
    assert_eq!(st.param_count(), 3);
    assert!(PgRepository::<User>::update_statement(&id, &UserPatch::default(), &None).unwrap().is_none());
    let clear = AvatarPatch { model_ref: Some(None), ..Default::default() };
    let st = PgRepository::<Avatar>::update_statement(&id, &clear, &None).unwrap().unwrap();
    assert!(st.sql.contains(r#"SET "model_ref" = $1, "updated_by" = $2"#), "{}", st.sql);
    assert_eq!(st.param_count(), 3, "model_ref (NULL), updated_by, id");
    let bad_email = UserPatch { email: Some("nope".into()), ..Default::default() };
    validation_naming(PgRepository::<User>::update_statement(&id, &bad_email, &None), "email");
    let bad_price = ItemPatch { price: Some(Decimal::new(-1, 0)), ..Default::default() };
    validation_naming(PgRepository::<Item>::update_statement(&id, &bad_price, &None), "price");
}

#[test]
fn new_rows_break_no_rule_of_the_schema() {
    type Items = PgRepository<Item>;
    let ok = NewItem::new("SKU-1", "Dress", "women.dresses", Decimal::new(1999, 2));
    Items::create_statement(&ok, &None).unwrap();
    let cases: Vec<(NewItem, &str)> = vec![
        (NewItem { price: Decimal::new(-1, 2), ..ok.clone() }, "price"),
        (NewItem { price: Decimal::new(1, 3), ..ok.clone() }, "price"),
        (NewItem { price: Decimal::new(10_000_000_000, 0), ..ok.clone() }, "price"),
        (NewItem { currency: "eur".into(), ..ok.clone() }, "currency"),
        (NewItem { sku: "".into(), ..ok.clone() }, "sku"),
        (NewItem { sku: "x".repeat(65), ..ok.clone() }, "sku"),
        (NewItem { name: " ".into(), ..ok.clone() }, "name"),
        (NewItem { name: "x".repeat(256), ..ok.clone() }, "name"),
        (NewItem { category_path: "women..dresses".into(), ..ok.clone() }, "category_path"),
        (NewItem { attributes: json!([1]), ..ok.clone() }, "attributes"),
        (NewItem { description: Some("a\0b".into()), ..ok.clone() }, "description"),
    ];
    for (new, field) in cases {
        validation_naming(Items::create_statement(&new, &None), field);
    }
    validation_naming(PgRepository::<User>::create_statement(&NewUser::new("a@b.co", "", "B"), &None), "first_name");
    validation_naming(
        PgRepository::<User>::create_statement(&NewUser::new("a@b.co", "A", "B".repeat(101)), &None),
        "last_name",
    );
}

#[test]
fn trigram_search_orders_by_similarity_and_checks_its_input() {
    let st = PgRepository::<Item>::search_statement("evnig dres", 10).unwrap();
    assert!(
        st.sql.contains(r#"WHERE "name" % $1 AND "deleted_at" IS NULL ORDER BY similarity(name, $2) DESC"#),
        "{}",
        st.sql
    );
    validation_naming(PgRepository::<Item>::search_statement("a\0", 10), "name");
    validation_naming(PgRepository::<Item>::search_statement("dress", 0), "limit");
}

#[test]
fn an_empty_all_matches_every_row_and_an_empty_any_matches_none() {
    let (w, _) = where_of(users().filter(Filter::all([])));
    assert!(w == r#""deleted_at" IS NULL"# || w.starts_with("TRUE AND"), "{w}");
    let (w, _) = where_of(users().filter(Filter::any([])));
    assert!(w.contains("FALSE"), "{w}");
    let (w, n) = where_of(users().filter(User::ROLE.in_(Vec::<String>::new())));
    assert_eq!((w.as_str(), n), (r#"("role" = ANY($1)) AND "deleted_at" IS NULL"#, 1));
}

/// Every shape's values walk in sea-query's order, so every shape is cached
/// (a query of a known shape is not built again) and binds what a fresh build binds.
#[test]
fn each_query_shape_is_built_once_and_binds_the_values_a_fresh_build_binds() {
    let c = users().order_by(User::EMAIL, Order::Asc).cursor_for(&user("c@x.co")).unwrap();
    let mixed = users().order_by(User::LAST_NAME, Order::Desc).order_by(User::EMAIL, Order::Asc);
    let m = mixed.cursor_for(&user("m@x.co")).unwrap();
    let f = (User::ROLE.eq("admin") & User::FIRST_NAME.like("A%")) | !User::LAST_NAME.eq("Smith");
    let queries = vec![
        users(),
        users().filter(User::ROLE.eq("user")).limit(20),
        users().filter(f).order_by(User::CREATED_AT, Order::Desc).limit(5).offset(10).with_deleted(),
        users().filter(User::ID.in_([uuid::Uuid::new_v4()])).filter(User::CREATED_BY.is_null()).only_deleted(),
        users().order_by(User::EMAIL, Order::Asc).limit(3).after(c),
        mixed.limit(7).after(m),
        users().filter(Filter::any([])).filter(User::EMAIL.eq_ignore_case("A@B.C")),
    ];
    for q in queries {
        for shape in [Shape::Rows { extra: 0 }, Shape::Rows { extra: 1 }, Shape::Count, Shape::Exists] {
            let fresh = q.build(shape).unwrap();
            let (sql, values) = q.prepared(shape).unwrap();
            assert_eq!((&*sql, &values), (fresh.sql.as_str(), &fresh.params), "{q:?}");
            let (again, values) = q.prepared(shape).unwrap();
            assert!(Arc::ptr_eq(&sql, &again), "the second call takes the cached text: {q:?}");
            assert_eq!(values, fresh.params);
        }
    }
    // Same shape, other values: same text, the new values.
    let (a, va) = users().filter(User::ROLE.eq("a")).limit(1).offset(1).prepared(Shape::Rows { extra: 0 }).unwrap();
    let (b, vb) = users().filter(User::ROLE.eq("b")).limit(1).offset(2).prepared(Shape::Rows { extra: 0 }).unwrap();
    assert!(Arc::ptr_eq(&a, &b));
    assert_ne!(va, vb);
    // Another limit is another text.
    let (c, _) = users().filter(User::ROLE.eq("b")).limit(2).offset(2).prepared(Shape::Rows { extra: 0 }).unwrap();
    assert!(!Arc::ptr_eq(&a, &c) && c.contains("LIMIT 2 OFFSET $2"), "{c}");
    // IS NULL binds nothing: another shape than = $1.
    let (n, vn) = users().filter(User::CREATED_BY.is_null()).prepared(Shape::Count).unwrap();
    let (v, vv) = users().filter(User::CREATED_BY.eq(uuid::Uuid::nil())).prepared(Shape::Count).unwrap();
    assert_ne!(n, v);
    assert_eq!((vn.len(), vv.len()), (0, 1));
}
