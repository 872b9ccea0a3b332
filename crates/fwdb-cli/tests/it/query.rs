//! The typed query builder (architecture 5.2) against the local stack: keyset
//! pagination, ltree subtrees, trigram search, JSON containment, EXPLAIN, and
//! validation before any SQL.

use crate::helpers::TestApp;
use crate::repo::{client, Counting};
use fwdb::{Decimal, Item, ItemRepo, NewItem, NewUser, Order, Query, Repository, User, UserRepo, Uuid};
use serde_json::json;
use std::collections::HashSet;

async fn walk(repo: &UserRepo, db: &tokio_postgres::Client, q: Query<User>) -> (Vec<Uuid>, usize) {
    let mut seen = Vec::new();
    let mut pages = 0;
    let mut cursor: Option<String> = None;
    loop {
        let page_q = match &cursor {
            Some(c) => q.clone().after(c.clone()),
            None => q.clone(),
        };
        let page = repo.find_page(db, &page_q).await.unwrap();
        pages += 1;
        seen.extend(page.items.iter().map(|u| u.id));
        match page.next {
            Some(c) => cursor = Some(c),
            None => break,
        }
        assert!(pages < 1000, "the walk never ends");
    }
    (seen, pages)
}

#[tokio::test]
async fn keyset_pagination_walks_every_live_row_exactly_once_in_any_ordering() {
    let app = TestApp::migrated().await;
    let db = client(&app).await;
    let repo = UserRepo::new();
    // Many ties on last_name, so the id has to break them.
    let rows: Vec<NewUser> = (0..257)
        .map(|i| NewUser::new(format!("p{i:03}@x.com"), format!("F{}", i % 7), format!("L{}", i % 5)))
        .collect();
    let ids = repo.create_many(&db, &rows).await.unwrap();
    for id in ids.iter().take(7) {
        repo.delete(&db, *id).await.unwrap();
    }
    let live: HashSet<Uuid> = ids[7..].iter().copied().collect();

    for q in [
        repo.query().order_by(User::EMAIL, Order::Asc).limit(20),
        repo.query().order_by(User::LAST_NAME, Order::Desc).limit(16),
        repo.query().order_by(User::LAST_NAME, Order::Asc).order_by(User::FIRST_NAME, Order::Desc).limit(33),
        repo.query().limit(50),
    ] {
        let (seen, pages) = walk(&repo, &db, q.clone()).await;
        assert_eq!(seen.len(), live.len(), "{q:?}: every row once");
        assert_eq!(seen.iter().copied().collect::<HashSet<_>>(), live, "{q:?}");
        let per_page = match q.to_sql().unwrap().sql.contains("LIMIT") {
            true => seen.len().div_ceil(pages),
            false => 0,
        };
        assert!(per_page > 1, "{q:?} paged ({pages} pages)");
        // The same walk in one query gives the same order.
        let all = repo.find_all(&db, &q.clone().limit(1000)).await.unwrap();
        assert_eq!(all.iter().map(|u| u.id).collect::<Vec<_>>(), seen, "{q:?}: pages follow the ordering");
    }

    let first = repo.find_page(&db, &repo.query().order_by(User::EMAIL, Order::Asc).limit(10)).await.unwrap();
    let c = first.next.unwrap();
    let counting = Counting::new(&db);
    let other = repo.query().order_by(User::EMAIL, Order::Desc).limit(10).after(c.clone());
    let e = repo.find_page(&counting, &other).await.unwrap_err();
    assert_eq!(e.kind(), fwdb::ErrorKind::Validation);
    assert!(e.to_string().contains("cursor"), "{e}");
    let e = repo
        .find_all(&counting, &repo.query().order_by(User::EMAIL, Order::Asc).after("bm90IGEgY3Vyc29y"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), fwdb::ErrorKind::Validation, "{e}");
    for bad in [-1, fwdb::MAX_LIMIT + 1] {
        let e = repo.find_all(&counting, &repo.query().limit(bad)).await.unwrap_err();
        assert!(e.to_string().contains("limit"), "{e}");
    }
    assert_eq!(counting.statements(), 0, "rejected before any SQL");
    let (seen, _) = walk(&repo, &db, repo.query().order_by(User::EMAIL, Order::Asc).limit(10).after(c)).await;
    assert_eq!(seen.len(), live.len() - 10, "a cursor continues where its page ended");
}

async fn catalog(db: &tokio_postgres::Client) -> Vec<Item> {
    let repo = ItemRepo::new();
    let mk = |sku: &str, name: &str, path: &str, attrs: serde_json::Value| NewItem {
        attributes: attrs,
        ..NewItem::new(sku, name, path, Decimal::new(4999, 2))
    };
    let news = vec![
        mk("I1", "Evening Dress", "women.dresses.evening", json!({"colour": "red", "material": "silk"})),
        mk("I2", "Summer Day Dress", "women.dresses.day", json!({"colour": "yellow"})),
        mk("I3", "Leather Boots", "women.shoes.boots", json!({"colour": "black", "material": "leather"})),
        mk("I4", "Dress Shirt", "men.shirts", json!({"colour": "white"})),
        mk("I5", "Wool Coat", "women.coats", json!({"colour": "red", "material": "wool"})),
    ];
    let ids = repo.create_many(db, &news).await.unwrap();
    repo.find_many_by_ids(db, &ids).await.unwrap()
}

fn skus(items: &[Item]) -> Vec<&str> {
    let mut v: Vec<&str> = items.iter().map(|i| i.sku.as_str()).collect();
    v.sort();
    v
}

#[tokio::test]
async fn a_category_subtree_is_every_item_at_or_below_the_path() {
    let app = TestApp::migrated().await;
    let db = client(&app).await;
    let repo = ItemRepo::new();
    catalog(&db).await;
    let under = |p: &str| repo.query().filter(Item::CATEGORY_PATH.descendant_of(p));
    assert_eq!(skus(&repo.find_all(&db, &under("women.dresses")).await.unwrap()), ["I1", "I2"]);
    assert_eq!(skus(&repo.find_all(&db, &under("women")).await.unwrap()), ["I1", "I2", "I3", "I5"]);
    assert_eq!(skus(&repo.find_all(&db, &under("women.dresses.evening")).await.unwrap()), ["I1"]);
    assert!(repo.find_all(&db, &under("kids")).await.unwrap().is_empty());
    assert!(repo.find_all(&db, &under("wom")).await.unwrap().is_empty(), "labels match whole, not as prefixes");
    let e = repo.find_all(&db, &under("women.*")).await.unwrap_err();
    assert_eq!(e.kind(), fwdb::ErrorKind::Validation, "{e}");
}

#[tokio::test]
async fn trigram_search_finds_a_misspelled_name_most_similar_first() {
    let app = TestApp::migrated().await;
    let db = client(&app).await;
    let repo = ItemRepo::new();
    catalog(&db).await;
    let found = repo.search_by_name(&db, "evenig dres", 10).await.unwrap();
    assert_eq!(found.first().map(|i| i.sku.as_str()), Some("I1"), "{:?}", skus(&found));
    let found = repo.search_by_name(&db, "lether boot", 10).await.unwrap();
    assert_eq!(found.first().map(|i| i.sku.as_str()), Some("I3"));
    assert!(repo.search_by_name(&db, "zzzzqqq", 10).await.unwrap().is_empty());
    let q = repo.query().filter(Item::NAME.similar_to("Wool Cot"));
    assert_eq!(skus(&repo.find_all(&db, &q).await.unwrap()), ["I5"]);
}

#[tokio::test]
async fn json_containment_and_combined_filters_select_the_right_items() {
    let app = TestApp::migrated().await;
    let db = client(&app).await;
    let repo = ItemRepo::new();
    catalog(&db).await;
    let red = repo.query().filter(Item::ATTRIBUTES.contains(json!({"colour": "red"})));
    assert_eq!(skus(&repo.find_all(&db, &red).await.unwrap()), ["I1", "I5"]);
    let red_women_not_coats = red
        .clone()
        .filter(Item::CATEGORY_PATH.descendant_of("women") & !Item::CATEGORY_PATH.descendant_of("women.coats"));
    assert_eq!(skus(&repo.find_all(&db, &red_women_not_coats).await.unwrap()), ["I1"]);
    let either = repo.query().filter(Item::SKU.in_(["I2", "I4", "nope"]) | Item::NAME.ilike("%BOOTS"));
    assert_eq!(skus(&repo.find_all(&db, &either).await.unwrap()), ["I2", "I3", "I4"]);
    assert_eq!(repo.count(&db, &repo.query().filter(Item::DESCRIPTION.is_null())).await.unwrap(), 5);
    let page = repo.find_all(&db, &repo.query().order_by(Item::SKU, Order::Desc).limit(2).offset(1)).await.unwrap();
    assert_eq!(page.iter().map(|i| i.sku.as_str()).collect::<Vec<_>>(), ["I4", "I3"]);
}

#[tokio::test]
async fn explain_returns_the_plan_and_an_indexed_lookup_uses_its_index() {
    let app = TestApp::migrated().await;
    let db = client(&app).await;
    let users = UserRepo::new();
    let rows: Vec<NewUser> = (0..5000).map(|i| NewUser::new(format!("e{i}@x.com"), "E", "X")).collect();
    users.create_many(&db, &rows).await.unwrap();
    let items = ItemRepo::new();
    let news: Vec<NewItem> = (0..5000)
        .map(|i| NewItem::new(format!("S{i}"), format!("Item {i}"), format!("c{}.d{}", i % 10, i % 7), Decimal::ONE))
        .collect();
    items.create_many(&db, &news).await.unwrap();
    db.batch_execute("ANALYZE shared.users; ANALYZE catalog.items").await.unwrap();

    let plan = users.query().filter(User::EMAIL.eq_ignore_case("E42@x.com")).explain(&db, false).await.unwrap();
    assert!(plan.contains("idx_users_email"), "{plan}");
    let plan = items.query().filter(Item::SKU.eq("S42")).explain(&db, false).await.unwrap();
    assert!(plan.contains("idx_items_sku"), "{plan}");
    let plan = items.query().filter(Item::CATEGORY_PATH.descendant_of("c3.d2")).explain(&db, true).await.unwrap();
    assert!(plan.contains("actual time") && plan.contains("Execution Time"), "ANALYZE runs it: {plan}");
    let counting = Counting::new(&db);
    let e = users.query().limit(-1).explain(&counting, false).await.unwrap_err();
    assert_eq!((e.kind(), counting.statements()), (fwdb::ErrorKind::Validation, 0));
}
