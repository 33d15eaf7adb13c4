//! The store on both backends.

mod common;

use common::Db;
use slipway_core::secret::SecretValue;
use slipway_core::{ProjectDraft, ProjectId, Role, Settings};
use slipway_store::{hash_token, MasterKey, SecretWrite, Store, StoreError};

on_both_backends!(
    projects_are_created_listed_updated_and_deleted,
    duplicate_names_conflict_and_change_nothing,
    settings_default_until_saved_then_round_trip,
    secrets_are_sealed_in_the_file_and_open_with_the_key,
    a_wrong_master_key_is_refused_and_the_secrets_survive,
    deleting_a_project_removes_its_secrets_and_settings,
    variables_are_stored_plainly_and_a_name_is_a_secret_or_a_variable,
    a_secret_moved_to_another_project_does_not_decrypt,
    tokens_are_found_by_hash_until_revoked,
    a_token_created_by_another_process_is_accepted_at_once,
    the_project_list_reflects_every_write_at_once,
);

fn key(byte: u8) -> MasterKey {
    use base64::Engine;
    MasterKey::from_base64(&base64::engine::general_purpose::STANDARD.encode([byte; 32])).unwrap()
}

fn draft(name: &str) -> ProjectDraft {
    ProjectDraft {
        name: name.into(),
        description: "d".into(),
        repo: "acme/app".into(),
        default_branch: "main".into(),
    }
}

fn value(text: &str) -> SecretValue {
    SecretValue::new(text.into()).unwrap()
}

async fn projects_are_created_listed_updated_and_deleted(db: Db) {
    let store = Store::open(&db.url, &key(1)).await.unwrap();
    let a = store.create_project(&draft("a")).await.unwrap();
    let b = store.create_project(&draft("b")).await.unwrap();
    assert_eq!(
        *store.list_projects().await.unwrap(),
        [a.clone(), b.clone()]
    );

    let mut changed = draft("a2");
    changed.default_branch = "develop".into();
    let updated = store.update_project(a.id, &changed).await.unwrap();
    assert_eq!(updated.name, "a2");
    assert_eq!(updated.default_branch, "develop");
    assert_eq!(updated.created_at, a.created_at);

    store.delete_project(b.id).await.unwrap();
    assert!(matches!(
        store.project(b.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.delete_project(b.id).await,
        Err(StoreError::NotFound)
    ));
}

async fn duplicate_names_conflict_and_change_nothing(db: Db) {
    let store = Store::open(&db.url, &key(1)).await.unwrap();
    store.create_project(&draft("a")).await.unwrap();
    let b = store.create_project(&draft("b")).await.unwrap();
    assert!(matches!(
        store.create_project(&draft("a")).await,
        Err(StoreError::Conflict(m)) if m.contains("already exists")
    ));
    assert!(matches!(
        store.update_project(b.id, &draft("a")).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.project(b.id).await.unwrap().name, "b");
    assert_eq!(store.list_projects().await.unwrap().len(), 2);
}

async fn settings_default_until_saved_then_round_trip(db: Db) {
    let store = Store::open(&db.url, &key(1)).await.unwrap();
    let p = store.create_project(&draft("a")).await.unwrap();
    assert_eq!(store.settings(p.id).await.unwrap(), Settings::default());
    let settings = Settings {
        auto_merge: true,
        planning_statement: "plan first".into(),
        ..Settings::default()
    };
    store.put_settings(p.id, &settings).await.unwrap();
    assert_eq!(store.settings(p.id).await.unwrap(), settings);
    assert!(matches!(
        store.put_settings(ProjectId(999), &settings).await,
        Err(StoreError::NotFound)
    ));
}

async fn secrets_are_sealed_in_the_file_and_open_with_the_key(db: Db) {
    let store = Store::open(&db.url, &key(1)).await.unwrap();
    let p = store.create_project(&draft("a")).await.unwrap();
    let secret = "sk-live-4f9d8e7c6b5a-UNIQUE-PLAINTEXT";
    assert_eq!(
        store
            .put_secret(p.id, "API_KEY", &value(secret))
            .await
            .unwrap(),
        SecretWrite::Created
    );
    assert_eq!(
        store
            .put_secret(p.id, "API_KEY", &value(secret))
            .await
            .unwrap(),
        SecretWrite::Updated
    );
    let values = store.secret_values(p.id).await.unwrap();
    assert_eq!(values.len(), 1);
    assert_eq!(values[0].1.expose(), secret);
    assert_eq!(store.list_secrets(p.id).await.unwrap()[0].name, "API_KEY");
    store.close().await;

    let files = db.files().await;
    assert!(!files.is_empty());
    for file in files {
        // SQLite removes its -wal and -shm files while closing; a vanished file was
        // checkpointed into the database file, which is read here too.
        let Ok(bytes) = std::fs::read(file) else {
            continue;
        };
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "plaintext found on disk"
        );
    }
}

async fn a_wrong_master_key_is_refused_and_the_secrets_survive(db: Db) {
    let store = Store::open(&db.url, &key(1)).await.unwrap();
    let p = store.create_project(&draft("a")).await.unwrap();
    store
        .put_secret(p.id, "TOKEN", &value("keep-me"))
        .await
        .unwrap();
    store.close().await;

    assert!(matches!(
        Store::open(&db.url, &key(2)).await,
        Err(StoreError::WrongMasterKey)
    ));

    let store = Store::open(&db.url, &key(1)).await.unwrap();
    assert_eq!(
        store.secret_values(p.id).await.unwrap()[0].1.expose(),
        "keep-me"
    );
}

async fn deleting_a_project_removes_its_secrets_and_settings(db: Db) {
    let store = Store::open(&db.url, &key(1)).await.unwrap();
    let p = store.create_project(&draft("a")).await.unwrap();
    let other = store.create_project(&draft("b")).await.unwrap();
    store.put_secret(p.id, "A", &value("1")).await.unwrap();
    store.put_secret(other.id, "A", &value("2")).await.unwrap();
    store
        .put_settings(p.id, &Settings::default())
        .await
        .unwrap();
    store.delete_project(p.id).await.unwrap();

    assert!(store.secret_values(p.id).await.unwrap().is_empty());
    assert!(matches!(
        store.settings(p.id).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(
        store.secret_values(other.id).await.unwrap()[0].1.expose(),
        "2"
    );
}

async fn variables_are_stored_plainly_and_a_name_is_a_secret_or_a_variable(db: Db) {
    let store = Store::open(&db.url, &key(1)).await.unwrap();
    let p = store.create_project(&draft("a")).await.unwrap();
    let writes = store
        .put_variables(p.id, &[("FEATURE", "on"), ("MODE", "fast")])
        .await
        .unwrap();
    assert_eq!(writes, [SecretWrite::Created, SecretWrite::Created]);
    let writes = store
        .put_variables(p.id, &[("MODE", "slow")])
        .await
        .unwrap();
    assert_eq!(writes, [SecretWrite::Updated]);
    let listed = store.list_variables(p.id).await.unwrap();
    let pairs: Vec<(&str, &str)> = listed
        .iter()
        .map(|v| (v.name.as_str(), v.value.as_str()))
        .collect();
    assert_eq!(pairs, [("FEATURE", "on"), ("MODE", "slow")]);
    assert_eq!(
        store.variable_env(p.id).await.unwrap(),
        [
            ("FEATURE".to_owned(), "on".to_owned()),
            ("MODE".to_owned(), "slow".to_owned())
        ]
    );
    // A secret's name cannot become a variable, nor the reverse; nothing is written.
    store
        .put_secret(p.id, "API_KEY", &value("sk-0123456789"))
        .await
        .unwrap();
    let refused = store
        .put_variables(p.id, &[("OTHER", "x"), ("API_KEY", "plain")])
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, StoreError::Conflict(m) if m.contains("already a secret")),
        "{refused:?}"
    );
    assert_eq!(store.list_variables(p.id).await.unwrap().len(), 2);
    assert!(matches!(
        store
            .put_secret(p.id, "FEATURE", &value("secret-now"))
            .await,
        Err(StoreError::Conflict(_))
    ));
    store.delete_variable(p.id, "FEATURE").await.unwrap();
    assert!(matches!(
        store.delete_variable(p.id, "FEATURE").await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.put_variables(ProjectId(999), &[("A", "b")]).await,
        Err(StoreError::NotFound)
    ));
    // Deleting the project takes its variables.
    store.delete_project(p.id).await.unwrap();
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM variables")
        .fetch_one(&db.raw().await)
        .await
        .unwrap();
    assert_eq!(left, 0);
}

async fn a_secret_moved_to_another_project_does_not_decrypt(db: Db) {
    let store = Store::open(&db.url, &key(1)).await.unwrap();
    let a = store.create_project(&draft("a")).await.unwrap();
    let b = store.create_project(&draft("b")).await.unwrap();
    store.put_secret(a.id, "K", &value("v")).await.unwrap();
    store.close().await;

    // Tamper: re-home the ciphertext under project b with raw SQL.
    let pool = db.raw().await;
    sqlx::query("UPDATE secrets SET project_id = $1")
        .bind(b.id.0)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;

    let store = Store::open(&db.url, &key(1)).await.unwrap();
    assert!(matches!(
        store.secret_values(b.id).await,
        Err(StoreError::Undecryptable(_))
    ));
}

async fn tokens_are_found_by_hash_until_revoked(db: Db) {
    let store = Store::open(&db.url, &key(1)).await.unwrap();
    assert_eq!(store.count_admin_tokens().await.unwrap(), 0);
    let new = store.create_token("ci", Role::Operator).await.unwrap();
    assert!(new.token.starts_with("slw_"));
    let found = store.token_by_hash(&hash_token(&new.token)).await.unwrap();
    assert_eq!(found, Some(new.record.clone()));
    assert_eq!(
        store.token_by_hash(&hash_token("slw_other")).await.unwrap(),
        None
    );
    store.revoke_token(new.record.id).await.unwrap();
    assert_eq!(
        store.token_by_hash(&hash_token(&new.token)).await.unwrap(),
        None
    );
    assert_eq!(store.list_tokens().await.unwrap(), []);
}

#[tokio::test]
async fn urls_other_than_sqlite_and_postgres_are_refused() {
    assert!(matches!(
        Store::open("mysql://x", &key(1)).await,
        Err(StoreError::UnsupportedUrl(_))
    ));
}

async fn a_token_created_by_another_process_is_accepted_at_once(db: Db) {
    let server = Store::open(&db.url, &key(1)).await.unwrap();
    let first = server.create_token("a", Role::Admin).await.unwrap();
    assert!(server
        .token_by_hash(&hash_token(&first.token))
        .await
        .unwrap()
        .is_some());

    // `slipway token create` opens its own store on the same file.
    let cli = Store::open(&db.url, &key(1)).await.unwrap();
    let second = cli.create_token("b", Role::Viewer).await.unwrap();
    let found = server
        .token_by_hash(&hash_token(&second.token))
        .await
        .unwrap();
    assert_eq!(found.map(|r| r.role), Some(Role::Viewer));
}

async fn the_project_list_reflects_every_write_at_once(db: Db) {
    let store = Store::open(&db.url, &key(1)).await.unwrap();
    assert!(store.list_projects().await.unwrap().is_empty());
    let a = store.create_project(&draft("a")).await.unwrap();
    assert_eq!(store.list_projects().await.unwrap().len(), 1);
    store.update_project(a.id, &draft("renamed")).await.unwrap();
    assert_eq!(store.list_projects().await.unwrap()[0].name, "renamed");
    assert_eq!(store.project(a.id).await.unwrap().name, "renamed");
    store.delete_project(a.id).await.unwrap();
    assert!(store.list_projects().await.unwrap().is_empty());
    assert!(matches!(
        store.project(a.id).await,
        Err(StoreError::NotFound)
    ));
}
