//! The repositories (architecture 5.1) against the local stack: CRUD for users,
//! avatars and items; soft delete, restore and purge; conflicts; batched
//! inserts counted in statements; the hostile-string corpus.

use crate::helpers::TestApp;
use fwdb::{
    escape_like, with_actor, Actor, Avatar, AvatarPatch, AvatarRepo, Consistency, Decimal, Executor, Item, ItemPatch,
    ItemRepo, NewAvatar, NewItem, NewUser, Params, Repository, User, UserPatch, UserRepo, Uuid,
};
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio_postgres::Row;

/// An executor that counts the statements run through it.
pub struct Counting<'a, E> {
    pub inner: &'a E,
    pub reads: AtomicUsize,
    pub writes: AtomicUsize,
}

impl<'a, E: Executor> Counting<'a, E> {
    pub fn new(inner: &'a E) -> Self {
        Counting { inner, reads: AtomicUsize::new(0), writes: AtomicUsize::new(0) }
    }

    pub fn statements(&self) -> usize {
        self.reads.load(Ordering::SeqCst) + self.writes.load(Ordering::SeqCst)
    }
}

impl<E: Executor> Executor for Counting<'_, E> {
    async fn read(&self, sql: &str, params: Params<'_>, c: Consistency) -> fwdb::Result<Vec<Row>> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.read(sql, params, c).await
    }

    async fn write(&self, sql: &str, params: Params<'_>) -> fwdb::Result<Vec<Row>> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.inner.write(sql, params).await
    }

    fn actor(&self) -> Option<Actor> {
        self.inner.actor()
    }
}

pub async fn client(app: &TestApp) -> tokio_postgres::Client {
    fwdb::connect(&app.config.postgres, fwdb::ConnectTarget::Primary).await.expect("a connection to the primary")
}

fn assert_validation<T: std::fmt::Debug>(r: fwdb::Result<T>, field: &str) {
    let e = r.expect_err("a validation error");
    assert_eq!(e.kind(), fwdb::ErrorKind::Validation, "{e}");
    assert!(e.to_string().contains(field), "{e} should name {field}");
}

#[tokio::test]
async fn users_are_created_read_and_patched_with_audit_fields_from_the_actor() {
    let app = TestApp::migrated().await;
    let db = client(&app).await;
    let repo = UserRepo::new();

    let admin = repo
        .create(&db, &NewUser { role: "admin".into(), ..NewUser::new("admin@x.com", "Ada", "Admin") })
        .await
        .unwrap();
    assert_eq!((admin.created_by, admin.updated_by), (None, None));
    assert_eq!(admin.role, "admin");

    let as_admin = with_actor(&db, Actor(admin.id));
    let ann = repo.create(&as_admin, &NewUser::new("Ann@Example.com", "Ann", "Lee")).await.unwrap();
    assert_eq!((ann.created_by, ann.updated_by), (Some(admin.id), Some(admin.id)));
    assert_eq!(ann.role, "user");
    assert_eq!(repo.get(&db, ann.id).await.unwrap(), ann);
    assert_eq!(repo.find_by_id(&db, ann.id).await.unwrap(), Some(ann.clone()));
    assert_eq!(repo.find_by_email(&db, "ann@EXAMPLE.com").await.unwrap().map(|u| u.id), Some(ann.id));

    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let patched =
        repo.update(&db, ann.id, &UserPatch { last_name: Some("Smith".into()), ..Default::default() }).await.unwrap();
    assert_eq!(patched.last_name, "Smith");
    assert_eq!(
        (patched.first_name.as_str(), patched.email.as_str()),
        ("Ann", "Ann@Example.com"),
        "only the patch's fields change"
    );
    assert!(patched.updated_at > ann.updated_at, "the trigger keeps updated_at");
    assert_eq!(patched.created_by, Some(admin.id));
    assert_eq!(patched.updated_by, None, "no actor on this call");

    let by_admin =
        repo.update(&as_admin, ann.id, &UserPatch { role: Some("editor".into()), ..Default::default() }).await.unwrap();
    assert_eq!((by_admin.role.as_str(), by_admin.updated_by), ("editor", Some(admin.id)));
    assert_eq!(
        repo.update(&db, ann.id, &UserPatch::default()).await.unwrap(),
        by_admin,
        "an empty patch changes nothing"
    );

    let missing = Uuid::new_v4();
    assert_eq!(repo.find_by_id(&db, missing).await.unwrap(), None);
    assert!(repo.get(&db, missing).await.unwrap_err().is_not_found());
    assert!(repo
        .update(&db, missing, &UserPatch { role: Some("x".into()), ..Default::default() })
        .await
        .unwrap_err()
        .is_not_found());
    assert!(repo.delete(&db, missing).await.unwrap_err().is_not_found());
    assert!(repo.purge(&db, missing).await.unwrap_err().is_not_found());
    assert!(repo.restore(&db, missing).await.unwrap_err().is_not_found());

    assert_eq!(repo.count(&db, &repo.query()).await.unwrap(), 2);
    assert!(repo.exists(&db, &repo.query().filter(User::ROLE.eq("admin"))).await.unwrap());
    assert!(!repo.exists(&db, &repo.query().filter(User::ROLE.eq("nobody"))).await.unwrap());
}

#[tokio::test]
async fn soft_deleted_rows_are_invisible_until_restored_and_purge_removes_them_for_good() {
    let app = TestApp::migrated().await;
    let db = client(&app).await;
    let repo = UserRepo::new();
    let ann = repo.create(&db, &NewUser::new("ann@x.com", "Ann", "Lee")).await.unwrap();
    let bob = repo.create(&db, &NewUser::new("bob@x.com", "Bob", "Ray")).await.unwrap();

    repo.delete(&db, ann.id).await.unwrap();
    assert_eq!(repo.find_by_id(&db, ann.id).await.unwrap(), None);
    assert!(repo.get(&db, ann.id).await.unwrap_err().is_not_found());
    assert_eq!(repo.find_by_email(&db, "ann@x.com").await.unwrap(), None);
    assert_eq!(repo.count(&db, &repo.query()).await.unwrap(), 1);
    assert_eq!(repo.find_many_by_ids(&db, &[ann.id, bob.id]).await.unwrap().len(), 1);
    let all = repo.find_all(&db, &repo.query().with_deleted()).await.unwrap();
    assert_eq!(all.len(), 2);
    let gone = repo.find_all(&db, &repo.query().only_deleted()).await.unwrap();
    assert_eq!(gone.iter().map(|u| u.id).collect::<Vec<_>>(), vec![ann.id]);
    assert!(gone[0].deleted_at.is_some());

    assert!(repo.delete(&db, ann.id).await.unwrap_err().is_not_found(), "deleting twice");
    let patch = UserPatch { first_name: Some("X".into()), ..Default::default() };
    assert!(repo.update(&db, ann.id, &patch).await.unwrap_err().is_not_found(), "a deleted row cannot be patched");
    assert!(repo.restore(&db, bob.id).await.unwrap_err().is_not_found(), "restoring a live row");

    let back = repo.restore(&db, ann.id).await.unwrap();
    assert_eq!((back.id, back.deleted_at), (ann.id, None));
    assert_eq!(repo.get(&db, ann.id).await.unwrap().email, "ann@x.com");

    repo.delete(&db, ann.id).await.unwrap();
    repo.purge(&db, ann.id).await.unwrap();
    assert!(repo.find_all(&db, &repo.query().with_deleted()).await.unwrap().iter().all(|u| u.id != ann.id));
    assert!(repo.restore(&db, ann.id).await.unwrap_err().is_not_found());
    repo.purge(&db, bob.id).await.unwrap();
    assert_eq!(repo.count(&db, &repo.query().with_deleted()).await.unwrap(), 0);
}

#[tokio::test]
async fn a_live_email_is_unique_ignoring_case_and_the_conflict_names_the_constraint_and_the_field() {
    let app = TestApp::migrated().await;
    let db = client(&app).await;
    let repo = UserRepo::new();
    let ann = repo.create(&db, &NewUser::new("ann@x.com", "Ann", "Lee")).await.unwrap();

    let e = repo.create(&db, &NewUser::new("ANN@x.com", "Other", "Ann")).await.unwrap_err();
    assert!(e.is_conflict(), "{e}");
    assert_eq!(e.kind(), fwdb::ErrorKind::Conflict);
    let text = e.to_string();
    assert!(text.contains("idx_users_email") && text.contains("field email"), "{text}");
    assert_eq!(e.code().map(|c| c.code()), Some("23505"), "the SQLSTATE is kept");

    let bob = repo.create(&db, &NewUser::new("bob@x.com", "Bob", "Ray")).await.unwrap();
    let e = repo
        .update(&db, bob.id, &UserPatch { email: Some("Ann@X.com".into()), ..Default::default() })
        .await
        .unwrap_err();
    assert!(e.is_conflict() && e.to_string().contains("field email"), "{e}");

    // A soft-deleted account frees its address; restoring it then conflicts.
    repo.delete(&db, ann.id).await.unwrap();
    repo.create(&db, &NewUser::new("ann@x.com", "New", "Ann")).await.unwrap();
    let e = repo.restore(&db, ann.id).await.unwrap_err();
    assert!(e.is_conflict() && e.to_string().contains("idx_users_email"), "{e}");
}

#[tokio::test]
async fn create_many_inserts_ten_thousand_users_in_one_statement_and_find_many_by_ids_reads_them_in_one() {
    let app = TestApp::migrated().await;
    let db = client(&app).await;
    let su = app.pg().await;
    su.batch_execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements").await.unwrap();
    let repo = UserRepo::new();
    let admin = repo.create(&db, &NewUser::new("admin@x.com", "Ada", "Admin")).await.unwrap();

    let rows: Vec<NewUser> =
        (0..10_000).map(|i| NewUser::new(format!("user{i}@x.com"), format!("F{i}"), "Bulk")).collect();
    let counting = Counting::new(&db);
    let as_admin = with_actor(&counting, Actor(admin.id));
    let ids = repo.create_many(&as_admin, &rows).await.unwrap();
    assert_eq!(ids.len(), 10_000);
    assert_eq!(counting.statements(), 1, "one statement for 10,000 rows");

    let stats = su
        .query(
            "SELECT calls, rows FROM pg_stat_statements
              WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
                AND query LIKE 'INSERT INTO \"shared\".\"users\"%unnest%'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(stats.len(), 1, "one normalised INSERT statement");
    let (calls, inserted): (i64, i64) = (stats[0].get(0), stats[0].get(1));
    assert_eq!((calls, inserted), (1, 10_000), "the server saw one call inserting 10,000 rows");

    assert_eq!(repo.count(&db, &fwdb::Query::new().filter(User::LAST_NAME.eq("Bulk"))).await.unwrap(), 10_000);
    let u = repo.get(&db, ids[4242]).await.unwrap();
    assert_eq!(
        (u.email.as_str(), u.first_name.as_str(), u.created_by),
        ("user4242@x.com", "F4242", Some(admin.id)),
        "ids come back in input order"
    );

    let wanted: Vec<Uuid> = ids.iter().step_by(20).copied().collect();
    repo.delete(&db, wanted[0]).await.unwrap();
    let counting = Counting::new(&db);
    let found = repo.find_many_by_ids(&counting, &wanted).await.unwrap();
    assert_eq!(counting.statements(), 1, "one query for {} ids", wanted.len());
    assert_eq!(found.len(), wanted.len() - 1, "the soft-deleted one is not found");
    assert!(found.iter().all(|u| wanted.contains(&u.id)));
    assert!(repo.find_many_by_ids(&db, &[]).await.unwrap().is_empty());
}

#[tokio::test]
async fn create_many_is_all_or_nothing_and_validates_every_row_before_any_sql() {
    let app = TestApp::migrated().await;
    let db = client(&app).await;
    let repo = UserRepo::new();
    repo.create(&db, &NewUser::new("taken@x.com", "T", "T")).await.unwrap();

    let mut rows: Vec<NewUser> = (0..100).map(|i| NewUser::new(format!("b{i}@x.com"), "B", "B")).collect();
    rows.push(NewUser::new("TAKEN@x.com", "B", "B"));
    let e = repo.create_many(&db, &rows).await.unwrap_err();
    assert!(e.is_conflict() && e.to_string().contains("field email"), "{e}");
    assert_eq!(repo.count(&db, &repo.query()).await.unwrap(), 1, "no row of the failed batch remains");

    rows.pop();
    rows.push(NewUser::new("no-at-sign", "B", "B"));
    let counting = Counting::new(&db);
    assert_validation(repo.create_many(&counting, &rows).await, "row 100");
    assert_eq!(counting.statements(), 0);
}

#[tokio::test]
async fn avatars_keep_measurements_as_jsonb_and_are_found_by_containment() {
    let app = TestApp::migrated().await;
    let db = client(&app).await;
    let user = UserRepo::new().create(&db, &NewUser::new("a@x.com", "A", "B")).await.unwrap();
    let repo = AvatarRepo::new();

    let m =
        json!({"height_cm": 172, "chest_cm": 96.5, "fit": {"shoulders": "broad"}, "note": "o'brien \"quoted\" \\ 🎉"});
    let tall =
        repo.create(&db, &NewAvatar { measurements: m.clone(), ..NewAvatar::new(user.id, "Tall") }).await.unwrap();
    assert_eq!((tall.measurements.clone(), tall.status.as_str(), tall.model_ref.clone()), (m, "pending", None));
    let small = repo
        .create(&db, &NewAvatar { measurements: json!({"height_cm": 150}), ..NewAvatar::new(user.id, "Small") })
        .await
        .unwrap();
    let bare = repo.create(&db, &NewAvatar::new(user.id, "Bare")).await.unwrap();
    assert_eq!(bare.measurements, json!({}));

    let q = repo.query().filter(Avatar::MEASUREMENTS.contains(json!({"fit": {"shoulders": "broad"}})));
    assert_eq!(repo.find_all(&db, &q).await.unwrap().iter().map(|a| a.id).collect::<Vec<_>>(), vec![tall.id]);
    let q = repo.query().filter(Avatar::MEASUREMENTS.contains(json!({"height_cm": 150})));
    assert_eq!(repo.find_all(&db, &q).await.unwrap().iter().map(|a| a.id).collect::<Vec<_>>(), vec![small.id]);
    assert_eq!(repo.count(&db, &repo.query().filter(Avatar::USER_ID.eq(user.id))).await.unwrap(), 3);

    let p =
        AvatarPatch { model_ref: Some(Some("665f1c0ffee".into())), status: Some("ready".into()), ..Default::default() };
    let ready = repo.update(&db, small.id, &p).await.unwrap();
    assert_eq!(
        (ready.model_ref.as_deref(), ready.status.as_str(), ready.name.as_str()),
        (Some("665f1c0ffee"), "ready", "Small")
    );
    assert_eq!(repo.count(&db, &repo.query().filter(Avatar::MODEL_REF.is_not_null())).await.unwrap(), 1);
    let cleared =
        repo.update(&db, small.id, &AvatarPatch { model_ref: Some(None), ..Default::default() }).await.unwrap();
    assert_eq!(cleared.model_ref, None);

    assert_validation(
        repo.create(&db, &NewAvatar { measurements: json!([1, 2]), ..NewAvatar::new(user.id, "X") }).await,
        "measurements",
    );
    assert_validation(repo.create(&db, &NewAvatar::new(user.id, "")).await, "name");
    let e = repo.create(&db, &NewAvatar::new(Uuid::new_v4(), "Orphan")).await.unwrap_err();
    assert_eq!(e.code().map(|c| c.code()), Some("23503"), "no such user: {e}");
    assert!(e.to_string().contains("avatars_user_id_fkey") && e.to_string().contains("field user_id"), "{e}");

    repo.delete(&db, tall.id).await.unwrap();
    assert_eq!(repo.count(&db, &repo.query()).await.unwrap(), 2);
    repo.restore(&db, tall.id).await.unwrap();
    repo.purge(&db, tall.id).await.unwrap();
    assert_eq!(repo.count(&db, &repo.query().with_deleted()).await.unwrap(), 2);

    let batch: Vec<NewAvatar> = (0..3)
        .map(|i| NewAvatar {
            measurements: json!({"waist_cm": 70 + i}),
            model_ref: (i == 1).then(|| "m1".to_string()),
            ..NewAvatar::new(user.id, format!("Batch {i}"))
        })
        .collect();
    let ids = repo.create_many(&db, &batch).await.unwrap();
    let stored = repo.get(&db, ids[1]).await.unwrap();
    assert_eq!(
        (stored.name.as_str(), stored.measurements.clone(), stored.model_ref.as_deref()),
        ("Batch 1", json!({"waist_cm": 71}), Some("m1"))
    );
    assert_eq!(repo.get(&db, ids[2]).await.unwrap().model_ref, None);
    let q = repo.query().filter(Avatar::MEASUREMENTS.contains(json!({"waist_cm": 72})));
    assert_eq!(repo.find_all(&db, &q).await.unwrap().iter().map(|a| a.id).collect::<Vec<_>>(), vec![ids[2]]);
}

#[tokio::test]
async fn items_keep_exact_prices_and_paths_and_a_live_sku_is_unique() {
    let app = TestApp::migrated().await;
    let db = client(&app).await;
    let repo = ItemRepo::new();
    let new = NewItem {
        description: Some("Silk, floor length".into()),
        attributes: json!({"colour": "red", "sizes": ["S", "M"]}),
        ..NewItem::new("DR-001", "Evening Dress", "women.dresses.evening", Decimal::new(129_990, 2))
    };
    let dress = repo.create(&db, &new).await.unwrap();
    assert_eq!(dress.price, Decimal::new(129_990, 2));
    assert_eq!(dress.price.to_string(), "1299.90");
    assert_eq!(dress.category_path.as_str(), "women.dresses.evening");
    assert_eq!((dress.currency.as_str(), dress.attributes.clone()), ("EUR", new.attributes.clone()));

    let e = repo.create(&db, &NewItem::new("DR-001", "Other", "women", Decimal::ONE)).await.unwrap_err();
    assert!(e.is_conflict(), "{e}");
    assert!(e.to_string().contains("idx_items_sku") && e.to_string().contains("field sku"), "{e}");

    let p = ItemPatch {
        price: Some(Decimal::new(99_900, 2)),
        category_path: Some("women.dresses.sale".into()),
        description: Some(None),
        ..Default::default()
    };
    let sale = repo.update(&db, dress.id, &p).await.unwrap();
    assert_eq!(
        (sale.price, sale.category_path.as_str(), sale.description.clone()),
        (Decimal::new(99_900, 2), "women.dresses.sale", None)
    );
    assert_eq!(sale.name, "Evening Dress");

    let q =
        repo.query().filter(Item::PRICE.lt(Decimal::new(1000, 0)) & Item::ATTRIBUTES.contains(json!({"sizes": ["M"]})));
    assert_eq!(repo.find_all(&db, &q).await.unwrap().len(), 1);

    repo.delete(&db, dress.id).await.unwrap();
    let again = repo.create(&db, &NewItem::new("DR-001", "Reissue", "women", Decimal::ONE)).await.unwrap();
    assert_ne!(again.id, dress.id, "a deleted item frees its sku");
    assert!(repo.restore(&db, dress.id).await.unwrap_err().is_conflict());
    assert_validation(
        repo.create(&db, &NewItem::new("X", "Bad path", "women..dresses", Decimal::ONE)).await,
        "category_path",
    );
    assert_validation(repo.create(&db, &NewItem::new("X", "Negative", "women", Decimal::new(-1, 0))).await, "price");
}

/// Strings that must be stored and found back verbatim, never executed.
const HOSTILE: &[&str] = &[
    "o'brien",
    "'; DROP TABLE shared.users; --",
    "Robert'); DROP TABLE catalog.items;--",
    "\" OR \"1\"=\"1",
    "' OR '1'='1",
    "back\\slash \\' \\\\",
    "$1 $$ $2 ?",
    "100% _under_ score",
    "日本語 🎉 ﷽ e\u{301}",
    "\u{202e}reversed\u{200b}zero-width",
    "tab\tnew\nline\rreturn",
    "/* comment */ -- dash",
];

#[tokio::test]
async fn hostile_strings_are_stored_and_found_back_verbatim_through_every_api_that_takes_a_string() {
    let app = TestApp::migrated().await;
    let db = client(&app).await;
    let users = UserRepo::new();
    let items = ItemRepo::new();
    let avatars = AvatarRepo::new();
    let owner = users.create(&db, &NewUser::new("owner@x.com", "O", "W")).await.unwrap();

    for (i, h) in HOSTILE.iter().enumerate() {
        let h = h.to_string();
        // users: create, read, every text filter, update
        let u = users
            .create(
                &db,
                &NewUser { role: h.clone(), ..NewUser::new(format!("h{i}.o'brien@x.com"), h.clone(), h.clone()) },
            )
            .await
            .unwrap();
        assert_eq!(
            (u.first_name.as_str(), u.last_name.as_str(), u.role.as_str()),
            (h.as_str(), h.as_str(), h.as_str())
        );
        assert_eq!(users.get(&db, u.id).await.unwrap(), u);
        let by = |f: fwdb::Filter<User>| users.query().filter(f);
        for q in [
            by(User::FIRST_NAME.eq(h.clone())),
            by(User::LAST_NAME.eq_ignore_case(h.clone())),
            by(User::ROLE.in_([h.clone()])),
            by(User::FIRST_NAME.like(escape_like(&h))),
            by(User::LAST_NAME.ilike(format!("{}%", escape_like(&h)))),
        ] {
            let found = users.find_all(&db, &q).await.unwrap_or_else(|e| panic!("{h:?}: {e}"));
            assert_eq!(found.iter().map(|u| u.id).collect::<Vec<_>>(), vec![u.id], "{h:?} via {q:?}");
        }
        assert_eq!(users.find_by_email(&db, &format!("H{i}.O'BRIEN@x.com")).await.unwrap().map(|x| x.id), Some(u.id));
        let patched = users
            .update(&db, u.id, &UserPatch { last_name: Some(format!("{h}{h}")), ..Default::default() })
            .await
            .unwrap();
        assert_eq!(patched.last_name, format!("{h}{h}"));

        // items: text, optional text, JSON keys and values, similarity; ltree rejects them clearly
        let new = NewItem {
            description: Some(h.repeat(1000)),
            attributes: json!({ h.clone(): h.clone() }),
            ..NewItem::new(format!("SKU-{i}"), h.clone(), "hostile.corpus", Decimal::ONE)
        };
        let it = items.create(&db, &new).await.unwrap();
        assert_eq!(
            (it.name.as_str(), it.description.clone(), it.attributes.clone()),
            (h.as_str(), new.description.clone(), new.attributes.clone())
        );
        let found = items
            .find_all(&db, &items.query().filter(Item::ATTRIBUTES.contains(json!({ h.clone(): h.clone() }))))
            .await
            .unwrap();
        assert_eq!(found.iter().map(|x| x.id).collect::<Vec<_>>(), vec![it.id], "{h:?}");
        items.find_all(&db, &items.query().filter(Item::NAME.similar_to(h.clone()))).await.unwrap();
        items.search_by_name(&db, &h, 5).await.unwrap();
        let p = ItemPatch {
            name: Some(format!("{h}!")),
            description: Some(Some(h.clone())),
            attributes: Some(json!({"k": [h.clone()]})),
            ..Default::default()
        };
        let it2 = items.update(&db, it.id, &p).await.unwrap();
        assert_eq!(
            (it2.name, it2.description, it2.attributes),
            (format!("{h}!"), Some(h.clone()), json!({"k": [h.clone()]}))
        );
        assert_validation(
            items.find_all(&db, &items.query().filter(Item::CATEGORY_PATH.descendant_of(h.clone()))).await,
            "category_path",
        );
        assert_validation(
            items.create(&db, &NewItem::new(format!("P-{i}"), "x", h.clone(), Decimal::ONE)).await,
            "category_path",
        );

        // avatars: name, status, model_ref, measurements
        let a = avatars
            .create(
                &db,
                &NewAvatar {
                    status: h.clone(),
                    model_ref: Some(h.clone()),
                    measurements: json!({"note": h.clone()}),
                    ..NewAvatar::new(owner.id, h.clone())
                },
            )
            .await
            .unwrap();
        assert_eq!(
            (a.name.as_str(), a.status.as_str(), a.model_ref.as_deref()),
            (h.as_str(), h.as_str(), Some(h.as_str()))
        );
        assert_eq!(avatars.get(&db, a.id).await.unwrap().measurements, json!({"note": h.clone()}));
        let p = AvatarPatch {
            name: Some(format!("{h}{h}")),
            measurements: Some(json!({ h.clone(): 1 })),
            ..Default::default()
        };
        let a2 = avatars.update(&db, a.id, &p).await.unwrap();
        assert_eq!((a2.name, a2.measurements), (format!("{h}{h}"), json!({ h.clone(): 1 })));
    }

    // NUL bytes: rejected clearly, naming the field, everywhere, before any SQL.
    let nul = "a\0b".to_string();
    let counting = Counting::new(&db);
    assert_validation(users.create(&counting, &NewUser::new("n@x.com", nul.clone(), "B")).await, "first_name");
    assert_validation(users.create(&counting, &NewUser::new("n\0@x.com", "A", "B")).await, "email");
    assert_validation(
        users.update(&counting, owner.id, &UserPatch { role: Some(nul.clone()), ..Default::default() }).await,
        "role",
    );
    assert_validation(
        users.find_all(&counting, &users.query().filter(User::FIRST_NAME.like(nul.clone()))).await,
        "first_name",
    );
    assert_validation(
        users.find_all(&counting, &users.query().filter(User::LAST_NAME.ilike(nul.clone()))).await,
        "last_name",
    );
    assert_validation(users.find_by_email(&counting, &nul).await, "email");
    assert_validation(items.search_by_name(&counting, &nul, 5).await, "name");
    assert_validation(
        items
            .create(
                &counting,
                &NewItem { attributes: json!({"k": nul.clone()}), ..NewItem::new("N", "N", "a", Decimal::ONE) },
            )
            .await,
        "attributes",
    );
    assert_validation(
        avatars.create(&counting, &NewAvatar { model_ref: Some(nul.clone()), ..NewAvatar::new(owner.id, "A") }).await,
        "model_ref",
    );
    assert_eq!(counting.statements(), 0, "nothing reached the server");

    // Very long strings: over a varchar limit is a validation error, text columns keep them whole.
    assert_validation(users.create(&db, &NewUser::new("long@x.com", "x".repeat(101), "B")).await, "first_name");
    assert_validation(users.create(&db, &NewUser::new(format!("{}@x.com", "x".repeat(300)), "A", "B")).await, "email");
    let long = "é'\\".repeat(200_000);
    let it = items
        .create(&db, &NewItem { description: Some(long.clone()), ..NewItem::new("LONG", "Long", "a", Decimal::ONE) })
        .await
        .unwrap();
    assert_eq!(items.get(&db, it.id).await.unwrap().description.as_deref(), Some(long.as_str()));

    // Nothing was executed: every table is still there with every row.
    assert_eq!(users.count(&db, &users.query()).await.unwrap(), 1 + HOSTILE.len() as u64);
    assert_eq!(items.count(&db, &items.query()).await.unwrap(), 1 + HOSTILE.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repositories_run_on_the_routed_cluster_and_inside_a_transaction_that_commits_or_rolls_back_together() {
    use fwdb::{PgCluster, TxOptions};
    let app = TestApp::migrated().await;
    let cluster = PgCluster::connect(&app.config.postgres).await.expect("the cluster connects");
    let users = UserRepo::new();
    let strong = UserRepo::new().with_consistency(Consistency::Strong);

    let admin = users.create(&cluster, &NewUser::new("admin@x.com", "Ada", "Admin")).await.unwrap();
    let ryw = UserRepo::new().with_consistency(Consistency::ReadOwnWrites);
    assert_eq!(ryw.get(&cluster, admin.id).await.unwrap(), admin, "read-your-writes sees the new row");

    // Commit: both rows, with the transaction's actor.
    let opts = TxOptions::default().actor(Actor(admin.id));
    let (user, avatar) = cluster
        .transaction(opts.clone(), |tx| async move {
            let u = UserRepo::new().create(&tx, &NewUser::new("tx@x.com", "In", "Tx")).await?;
            let a = AvatarRepo::new().create(&tx, &NewAvatar::new(u.id, "Mine")).await?;
            Ok((u, a))
        })
        .await
        .unwrap();
    assert_eq!((user.created_by, avatar.created_by), (Some(admin.id), Some(admin.id)));
    assert_eq!(strong.get(&cluster, user.id).await.unwrap().email, "tx@x.com");
    assert!(AvatarRepo::new().with_consistency(Consistency::Strong).get(&cluster, avatar.id).await.is_ok());

    // Roll back: the first insert goes with the failed second.
    let err = cluster
        .transaction(opts.max_attempts(1), |tx| async move {
            UserRepo::new().create(&tx, &NewUser::new("gone@x.com", "Rolled", "Back")).await?;
            UserRepo::new().create(&tx, &NewUser::new("TX@x.com", "Dup", "Licate")).await?;
            Ok(())
        })
        .await
        .unwrap_err();
    assert!(err.is_conflict(), "{err}");
    assert_eq!(strong.find_by_email(&cluster, "gone@x.com").await.unwrap(), None, "rolled back");
    assert_eq!(strong.count(&cluster, &strong.query()).await.unwrap(), 2);
}
