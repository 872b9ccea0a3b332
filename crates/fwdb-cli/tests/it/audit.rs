//! The audit trail (architecture 2.2): triggers on the shared, avatar and
//! catalog tables, `fwdb audit tail`, the query API, and audit rows that no
//! application role can change or remove.

use crate::helpers::{run, KillOnDrop, TestApp};
use crate::roles::{apply, role_password};
use fwdb::{with_actor, Actor, AuditQuery, NewUser, Repository, UserPatch, UserRepo};
use std::io::Read;

/// The runtime login: it writes the audited tables and cannot read the audit log.
async fn client(app: &TestApp) -> tokio_postgres::Client {
    app.runtime().await
}

#[tokio::test]
async fn audit_rows_record_who_changed_what_and_when() {
    let app = TestApp::migrated().await;
    let db = client(&app).await;
    let repo = UserRepo::new();
    let admin = repo.create(&db, &NewUser::new("root@example.com", "Root", "Admin")).await.unwrap();
    let as_admin = with_actor(&db, Actor(admin.id));
    let ann = repo.create(&as_admin, &NewUser::new("ann@example.com", "Ann", "Lee")).await.unwrap();
    repo.update(&as_admin, ann.id, &UserPatch { last_name: Some("Smith".into()), ..Default::default() }).await.unwrap();

    // A transaction that sets fwdb.actor: both its rows share one txid.
    let actor = fwdb::Uuid::new_v4();
    db.batch_execute(&format!(
        "BEGIN; SET LOCAL fwdb.actor = '{actor}';
         UPDATE shared.users SET first_name = 'Anna' WHERE id = '{id}';
         DELETE FROM shared.users WHERE id = '{id}';
         COMMIT;",
        id = ann.id
    ))
    .await
    .unwrap();

    // Only app_admin reads the audit log: the admin login does.
    let db = app.admin().await;
    let rows =
        fwdb::query_audit(&db, &AuditQuery { row_id: Some(ann.id.to_string()), ..Default::default() }).await.unwrap();
    let ops: Vec<&str> = rows.iter().rev().map(|r| r.op.as_str()).collect();
    assert_eq!(ops, ["INSERT", "UPDATE", "UPDATE", "DELETE"], "{rows:#?}");
    let (ins, upd, upd2, del) = (&rows[3], &rows[2], &rows[1], &rows[0]);
    assert_eq!((ins.schema.as_str(), ins.table.as_str()), ("shared", "users"));
    assert_eq!(ins.actor, admin.id.to_string(), "the repository's actor");
    assert_eq!(ins.new.as_ref().unwrap()["email"], "ann@example.com");
    assert!(ins.old.is_none());
    assert_eq!(upd.actor, admin.id.to_string());
    assert_eq!(upd.old.as_ref().unwrap()["last_name"], "Lee");
    assert_eq!(upd.new.as_ref().unwrap()["last_name"], "Smith");
    assert!(upd.new.as_ref().unwrap().get("email").is_none(), "only changed columns: {:?}", upd.new);
    assert_eq!(upd2.actor, actor.to_string(), "fwdb.actor wins");
    assert_eq!(del.actor, actor.to_string());
    assert_eq!(upd2.txid, del.txid, "one transaction, one txid");
    assert_ne!(upd.txid, del.txid);
    assert_eq!(del.old.as_ref().unwrap()["first_name"], "Anna");
    assert!(del.new.is_none());
    assert!(ins.at <= upd.at && upd.at <= upd2.at && upd2.at <= del.at);
    assert_eq!(ins.db_user.as_deref(), Some(app.stack.info().app_user.as_str()));

    // Filters of the query API.
    let only_actor =
        fwdb::query_audit(&db, &AuditQuery { actor: Some(actor.to_string()), ..Default::default() }).await.unwrap();
    assert_eq!(only_actor.len(), 2);
    let users = fwdb::query_audit(&db, &AuditQuery::default().table("shared.users")).await.unwrap();
    assert_eq!(users.len(), 5, "two inserts, two updates, one delete");
    let none = fwdb::query_audit(&db, &AuditQuery::default().table("catalog.items")).await.unwrap();
    assert!(none.is_empty());
    let after =
        fwdb::query_audit(&db, &AuditQuery { after_id: Some(ins.id), limit: 2, ..Default::default() }).await.unwrap();
    assert_eq!(after.iter().map(|r| r.id).collect::<Vec<_>>(), vec![ins.id + 1, ins.id + 2]);
}

#[tokio::test]
async fn changes_to_avatars_and_items_are_audited_too() {
    let app = TestApp::migrated().await;
    let db = client(&app).await;
    db.batch_execute(
        "INSERT INTO shared.users (id, email, first_name, last_name) VALUES ('00000000-0000-0000-0000-000000000001', 'a@example.com', 'A', 'B');
         INSERT INTO avatar.avatars (user_id, name) VALUES ('00000000-0000-0000-0000-000000000001', 'me');
         INSERT INTO catalog.items (sku, name, category_path, price) VALUES ('SKU-1', 'Dress', 'women.dresses', 10);
         UPDATE catalog.items SET price = 12;",
    )
    .await
    .unwrap();
    let db = app.admin().await;
    let tables: Vec<(String, String)> = fwdb::query_audit(&db, &AuditQuery::default())
        .await
        .unwrap()
        .into_iter()
        .map(|r| (format!("{}.{}", r.schema, r.table), r.op))
        .collect();
    assert!(tables.contains(&("avatar.avatars".into(), "INSERT".into())), "{tables:?}");
    assert!(tables.contains(&("catalog.items".into(), "UPDATE".into())), "{tables:?}");
}

#[tokio::test]
async fn application_roles_cannot_update_or_delete_audit_rows() {
    let app = TestApp::migrated().await;
    apply(&app).await;
    let owner = app.admin().await;
    owner
        .batch_execute("INSERT INTO shared.users (email, first_name, last_name) VALUES ('x@example.com', 'X', 'Y')")
        .await
        .unwrap();
    let before = audit_count(&owner).await;
    assert!(before >= 1);

    // The runtime login cannot even read it.
    let runtime = client(&app).await;
    for sql in [
        "SELECT count(*) FROM audit.log",
        "DELETE FROM audit.log",
        "UPDATE audit.log SET actor = 'nobody'",
        "TRUNCATE audit.log",
        "DROP TABLE audit.log",
    ] {
        let err = runtime.batch_execute(sql).await.expect_err(&format!("the runtime login: `{sql}` must fail"));
        assert_eq!(
            err.code(),
            Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE),
            "runtime {sql}: {err:?}"
        );
    }
    // Every login role of the matrix, over TLS + SCRAM.
    for role in fwdb::LOGIN_ROLES {
        let mut cfg = app.config.postgres.clone();
        cfg.user = role.to_string();
        cfg.password = Some(fwdb::Secret::new(role_password(&app, role)));
        let c = fwdb::connect(&cfg, fwdb::ConnectTarget::Primary).await.unwrap_or_else(|e| panic!("{role}: {e}"));
        for sql in [
            "DELETE FROM audit.log",
            "UPDATE audit.log SET actor = 'nobody'",
            "TRUNCATE audit.log",
            "DROP TABLE audit.log",
        ] {
            let err = c.batch_execute(sql).await.expect_err(&format!("{role}: `{sql}` must fail"));
            assert_eq!(
                err.code(),
                Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE),
                "{role} {sql}: {err:?}"
            );
        }
    }
    // Even the admin login that ran the migrations (a member of app_admin, which owns audit.log).
    for sql in ["DELETE FROM audit.log", "UPDATE audit.log SET actor = 'nobody'", "TRUNCATE audit.log"] {
        let err = owner.batch_execute(sql).await.expect_err(sql);
        let msg = err.as_db_error().map(|d| d.message().to_string()).unwrap_or_default();
        assert!(msg.contains("append-only"), "{sql}: {msg}");
    }
    assert_eq!(audit_count(&owner).await, before, "nothing removed");

    // A service's own change is audited with its database role.
    let mut cfg = app.config.postgres.clone();
    cfg.user = "catalog_service".into();
    cfg.password = Some(fwdb::Secret::new(role_password(&app, "catalog_service")));
    let c = fwdb::connect(&cfg, fwdb::ConnectTarget::Primary).await.unwrap();
    c.batch_execute("INSERT INTO catalog.items (sku, name, category_path, price) VALUES ('S1', 'Hat', 'hats', 5)")
        .await
        .unwrap();
    let last = fwdb::query_audit(&owner, &AuditQuery { limit: 1, ..Default::default() }).await.unwrap();
    assert_eq!(last[0].table, "items");
    assert_eq!(last[0].actor, "catalog_service");
    assert_eq!(last[0].db_user.as_deref(), Some("catalog_service"));
}

#[tokio::test]
async fn audit_tail_prints_the_newest_rows_and_follows() {
    let app = TestApp::migrated().await;
    let db = client(&app).await;
    for i in 0..3 {
        db.batch_execute(&format!(
            "INSERT INTO shared.users (email, first_name, last_name) VALUES ('u{i}@example.com', 'U{i}', 'L')"
        ))
        .await
        .unwrap();
    }
    let (code, out, err) = run(app.fwdb().args(["audit", "tail", "--limit", "2", "--table", "shared.users"]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.lines().next().unwrap_or_default().starts_with("id"), "{out}");
    assert_eq!(out.lines().count(), 3, "header + 2 rows: {out}");
    assert!(out.contains("shared.users") && out.contains("INSERT"), "{out}");

    let (code, out, err) = run(app.fwdb().args(["--format", "json", "audit", "tail", "--limit", "5"]));
    assert_eq!(code, 0, "{err}");
    let rows: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).expect("JSON line")).collect();
    assert_eq!(rows.len(), 3);
    assert!(rows[0]["id"].as_i64() < rows[2]["id"].as_i64(), "oldest first");
    assert_eq!(rows[2]["new"]["email"], "u2@example.com");

    // --follow prints rows written after it started.
    let child = app
        .fwdb()
        .args(["--format", "json", "audit", "tail", "--limit", "1", "--follow", "--interval-ms", "100"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let mut child = KillOnDrop(child);
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    db.batch_execute("INSERT INTO shared.users (email, first_name, last_name) VALUES ('late@example.com', 'L', 'L')")
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let _ = child.0.kill();
    let _ = child.0.wait();
    let mut out = String::new();
    child.0.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    assert!(out.contains("u2@example.com"), "the last row first: {out}");
    assert!(out.contains("late@example.com"), "then the new one: {out}");
}

#[tokio::test]
async fn audit_tail_treats_a_hostile_table_name_as_data() {
    let app = TestApp::migrated().await;
    for t in ["shared.users'; DROP TABLE audit.log; --", "x\" OR 1=1 --", "audit.log; DELETE FROM audit.log"] {
        let (code, out, err) = run(app.fwdb().args(["audit", "tail", "--table", t]));
        assert_eq!(code, 0, "{t}: {out}{err}");
        assert_eq!(out.lines().count(), 1, "only the header: {out}");
    }
    let n: i64 = app
        .pg()
        .await
        .query_one("SELECT count(*) FROM pg_tables WHERE schemaname = 'audit'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
}

async fn audit_count(c: &tokio_postgres::Client) -> i64 {
    c.query_one("SELECT count(*) FROM audit.log", &[]).await.unwrap().get(0)
}
