//! `fwdb check refs`: planted dangling references between the stores are
//! found both ways; consistent ones are not reported.

use crate::helpers::{run, TestApp};
use fwdb::{AvatarPatch, AvatarRepo, DesignRepo, Mongo, NewAvatar, NewDesign, NewUser, Repository, UserRepo, Uuid};

#[tokio::test]
async fn check_refs_finds_planted_dangling_references_both_ways() {
    let app = TestApp::migrated().await;
    let mongo = Mongo::connect(&app.config).await.unwrap();
    let pg = crate::repo::client(&app).await;
    let (users, avatars, designs) = (UserRepo::new(), AvatarRepo::new(), DesignRepo::new());
    let alice =
        users.create(&pg, &NewUser::new(format!("a{}@x.com", Uuid::new_v4().simple()), "A", "A")).await.unwrap();
    let bob = users.create(&pg, &NewUser::new(format!("b{}@x.com", Uuid::new_v4().simple()), "B", "B")).await.unwrap();

    // Clean first: a consistent pair is not reported, exit 0.
    let good_avatar = avatars.create(&pg, &NewAvatar::new(alice.id, "good")).await.unwrap();
    let mut n = NewDesign::new(alice.id, "good");
    n.avatar_id = Some(good_avatar.id);
    let good_design = designs.create_checked(&mongo, &pg, &n).await.unwrap();
    avatars
        .update(
            &pg,
            good_avatar.id,
            &AvatarPatch { model_ref: Some(Some(good_design.id.to_string())), ..Default::default() },
        )
        .await
        .unwrap();
    let (code, out, err) = run(app.fwdb().args(["check", "refs"]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("0 dangling"), "{out}");

    // Plant: a design whose avatar is purged; a design pointing at another user's avatar
    // (written without the check, as an old service might have); an avatar whose
    // model_ref points at a purged design; one whose model_ref is not an id at all.
    let doomed = avatars.create(&pg, &NewAvatar::new(alice.id, "doomed")).await.unwrap();
    let mut n = NewDesign::new(alice.id, "orphan");
    n.avatar_id = Some(doomed.id);
    let orphan = designs.create(&mongo, &n).await.unwrap();
    avatars.purge(&pg, doomed.id).await.unwrap();
    let bobs = avatars.create(&pg, &NewAvatar::new(bob.id, "bob's")).await.unwrap();
    let mut n = NewDesign::new(alice.id, "wrong owner");
    n.avatar_id = Some(bobs.id);
    let wrong = designs.create(&mongo, &n).await.unwrap();
    let gone = designs.create(&mongo, &NewDesign::new(bob.id, "gone")).await.unwrap();
    let mut a = NewAvatar::new(bob.id, "points at a purged design");
    a.model_ref = Some(gone.id.to_string());
    let stale = avatars.create(&pg, &a).await.unwrap();
    designs.purge(&mongo, gone.id).await.unwrap();
    let mut a = NewAvatar::new(bob.id, "garbage ref");
    a.model_ref = Some("models/legacy.glb".into());
    let garbage = avatars.create(&pg, &a).await.unwrap();

    let (code, out, err) = run(app.fwdb().args(["check", "refs", "--format", "json"]));
    assert_eq!(code, 1, "dangling references exit 1: {out}{err}");
    let report: serde_json::Value = serde_json::from_str(&out).expect(&out);
    let found: Vec<(String, String, String)> = report["dangling"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["reference"].as_str().unwrap().into(),
                d["from"].as_str().unwrap().into(),
                d["to"].as_str().unwrap().into(),
            )
        })
        .collect();
    let mut expected = vec![
        ("design.avatarId".to_string(), orphan.id.to_string(), doomed.id.to_string()),
        ("design.avatarId".to_string(), wrong.id.to_string(), bobs.id.to_string()),
        ("avatar.model_ref".to_string(), stale.id.to_string(), gone.id.to_string()),
        ("avatar.model_ref".to_string(), garbage.id.to_string(), "models/legacy.glb".to_string()),
    ];
    let mut found_sorted = found.clone();
    found_sorted.sort();
    expected.sort();
    assert_eq!(found_sorted, expected, "{out}");
    assert_eq!(report["designs_checked"], 3);
    assert_eq!(report["avatars_checked"], 3);
    let text = serde_json::to_string(&report).unwrap();
    assert!(text.contains("belongs to user"), "{text}");

    // The text form names the problems too.
    let (code, out, _) = run(app.fwdb().args(["check", "refs", "--batch", "1"]));
    assert_eq!(code, 1);
    assert!(out.contains("4 dangling") && out.contains("no live avatar") && out.contains("malformed"), "{out}");
}
