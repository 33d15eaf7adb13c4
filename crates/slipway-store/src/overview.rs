//! What the dashboard's project cards show, for every project in four queries.

use crate::{from_millis, Backend, Store, StoreError};
use slipway_core::run::RunStatus;
use slipway_core::ProjectId;
use std::collections::{HashMap, HashSet};
use time::OffsetDateTime;

/// A project's latest run, latest validation and open pull request link.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProjectSummary {
    pub last_run: Option<Latest>,
    pub last_validation: Option<Latest>,
    /// The last 30 validations, newest first.
    pub recent: Vec<Recent>,
    /// An open pull request: the newest open one of the local forge, else the pull request
    /// of the newest run still working on it; with its address on GitHub, if it is there.
    pub open_pr: Option<(i64, Option<String>)>,
    pub has_rules: bool,
}

/// The newest run or validation of a project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Latest {
    pub id: i64,
    pub status: String,
    pub created_at: OffsetDateTime,
}

/// One of a project's recent validations, for its chart.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Recent {
    pub id: i64,
    pub status: String,
    pub duration_ms: Option<i64>,
}

/// A project's newest run.
#[derive(sqlx::FromRow)]
struct NewestRun {
    project_id: i64,
    id: i64,
    status: String,
    pr_number: Option<i64>,
    pr_url: Option<String>,
    created_at: i64,
}

/// One of a project's newest validations.
#[derive(sqlx::FromRow)]
struct NewestValidation {
    project_id: i64,
    id: i64,
    status: String,
    created_at: i64,
    duration_ms: Option<i64>,
    setup_trial: i64,
}

/// How many validations a card's chart shows.
pub const RECENT: i64 = 30;

impl Store {
    pub async fn project_summaries(
        &self,
    ) -> Result<HashMap<ProjectId, ProjectSummary>, StoreError> {
        let mut out: HashMap<ProjectId, ProjectSummary> = HashMap::new();
        let runs: Vec<NewestRun> = sqlx::query_as(
            "SELECT r.project_id, r.id, r.status, r.pr_number, r.pr_url, r.created_at FROM agent_runs r
             JOIN (SELECT project_id, MAX(id) AS id FROM agent_runs GROUP BY project_id) m ON m.id = r.id",
        )
        .fetch_all(&self.pool)
        .await?;
        for run in runs {
            let entry = out.entry(ProjectId(run.project_id)).or_default();
            let status: RunStatus = run
                .status
                .parse()
                .map_err(|e| StoreError::Corrupt(format!("run {}: {e}", run.id)))?;
            let working = !status.is_final();
            let on_github = run.pr_url.filter(|u| u.starts_with("https://"));
            entry.open_pr = run.pr_number.filter(|_| working).map(|n| (n, on_github));
            entry.last_run = Some(Latest {
                id: run.id,
                status: run.status,
                created_at: from_millis(run.created_at),
            });
        }
        let open_pulls: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT project_id, MAX(number) FROM pull_requests WHERE state = 'open' GROUP BY project_id",
        )
        .fetch_all(&self.pool)
        .await?;
        for (project, number) in open_pulls {
            out.entry(ProjectId(project)).or_default().open_pr = Some((number, None));
        }
        let validations: Vec<NewestValidation> = sqlx::query_as(
            // Each project's newest, by its index: no scan of every validation.
            "SELECT v.project_id, v.id, v.status, v.created_at,
                    v.finished_at - v.started_at AS duration_ms, v.setup_trial
             FROM projects p JOIN validations v ON v.id IN (
               SELECT id FROM validations WHERE project_id = p.id ORDER BY id DESC LIMIT $1)
             ORDER BY v.project_id, v.id DESC",
        )
        .bind(RECENT)
        .fetch_all(&self.pool)
        .await?;
        for v in validations {
            let entry = out.entry(ProjectId(v.project_id)).or_default();
            if entry.last_validation.is_none() {
                entry.last_validation = Some(Latest {
                    id: v.id,
                    status: v.status.clone(),
                    created_at: from_millis(v.created_at),
                });
            }
            // Setup trials are not the code's pass rate.
            if v.setup_trial == 0 {
                entry.recent.push(Recent {
                    id: v.id,
                    status: v.status,
                    duration_ms: v.duration_ms,
                });
            }
        }
        let with_rules: HashSet<i64> = sqlx::query_scalar(match self.backend {
            Backend::Sqlite => {
                "SELECT project_id FROM project_settings
                 WHERE COALESCE(json_extract(document, '$.repository_rules'), '') != ''"
            }
            Backend::Postgres => {
                "SELECT project_id FROM project_settings
                 WHERE COALESCE(document::jsonb ->> 'repository_rules', '') != ''"
            }
        })
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .collect();
        for project in with_rules {
            out.entry(ProjectId(project)).or_default().has_rules = true;
        }
        Ok(out)
    }
}

impl Store {
    /// A project's last [`RECENT`] validations, newest first, for its chart: no steps.
    pub async fn recent_validations(&self, project: ProjectId) -> Result<Vec<Recent>, StoreError> {
        let rows: Vec<Recent> = sqlx::query_as(
            // Setup trials try the settings' commands: not the code's pass rate.
            "SELECT id, status, finished_at - started_at AS duration_ms FROM validations
             WHERE project_id = $1 AND setup_trial = 0 ORDER BY id DESC LIMIT $2",
        )
        .bind(project.0)
        .bind(RECENT)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }
}
