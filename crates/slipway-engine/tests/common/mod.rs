//! The engine over a real store and a fixture repository, shared by the test files.
#![allow(dead_code)]

use slipway_core::validation::StepName;
use slipway_core::{Project, ProjectDraft, ValidationId};
use slipway_engine::{Engine, EngineConfig, Target};
use slipway_store::{MasterKey, Store, ValidationRecord};
use slipway_testkit::fixture_repo;
use std::time::Duration;
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;

/// Polls `done` until it holds; panics with `what` if it never does (a guard, not a measure).
pub async fn until<F, Fut>(what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..2_400 {
        if done().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never happened: {what}");
}

pub struct Harness {
    pub _dir: TempDir,
    pub store: Store,
    pub engine: Engine,
    pub repo: std::path::PathBuf,
    pub project: Project,
}

pub async fn harness(files: &[(&str, &str)]) -> Harness {
    harness_with(files, |_| {}).await
}

pub async fn harness_with(
    files: &[(&str, &str)],
    tweak: impl FnOnce(&mut EngineConfig),
) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let key = MasterKey::load_or_create(&data.join("master.key")).unwrap();
    let store = Store::open(
        &format!("sqlite://{}", data.join("slipway.db").display()),
        &key,
    )
    .await
    .unwrap();
    let repo = dir.path().join("repo");
    fixture_repo(&repo, files);
    let project = store
        .create_project(&ProjectDraft {
            name: "app".into(),
            description: String::new(),
            repo: repo.display().to_string(),
            default_branch: "main".into(),
        })
        .await
        .unwrap();
    let mut config = EngineConfig::new(data);
    tweak(&mut config);
    let engine = Engine::new(store.clone(), config);
    engine.reconcile().await.unwrap();
    Harness {
        _dir: dir,
        store,
        engine,
        repo,
        project,
    }
}

impl Harness {
    pub fn store_dir(&self) -> std::path::PathBuf {
        self._dir.path().join("data")
    }

    pub async fn validate_main(&self) -> ValidationRecord {
        self.validate_branch("main").await
    }

    pub async fn validate_branch(&self, branch: &str) -> ValidationRecord {
        let queued = self
            .engine
            .submit(&self.project, Target::Branch(branch.into()))
            .await
            .unwrap();
        self.run_until_final(&[queued.id]).await;
        self.store.validation(queued.id).await.unwrap()
    }

    /// Runs the real workers until every one of `ids` is final, then stops them (and waits
    /// for them to end, with whatever else they ran).
    pub async fn run_until_final(&self, ids: &[ValidationId]) {
        let shutdown = CancellationToken::new();
        let workers = self.engine.spawn_workers(shutdown.clone());
        until("the validations are final", || async {
            for id in ids {
                if !self.store.validation(*id).await.unwrap().status.is_final() {
                    return false;
                }
            }
            true
        })
        .await;
        shutdown.cancel();
        workers.await.unwrap();
    }

    pub async fn log(&self, id: ValidationId) -> String {
        self.store
            .logs(id, None, 0, 100_000)
            .await
            .unwrap()
            .into_iter()
            .map(|l| format!("[{}] {}\n", l.step, l.line))
            .collect()
    }
}

pub fn step(record: &ValidationRecord, name: StepName) -> &slipway_store::StepRecord {
    record.steps.iter().find(|s| s.name == name).unwrap()
}
