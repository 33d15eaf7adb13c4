//! What the dashboard's project cards show, for every project in three queries.

use crate::{Store, StoreError};
use slipway_core::ProjectId;
use std::collections::{HashMap, HashSet};

/// A project's latest run, latest validation and open pull request link.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProjectSummary {
    pub last_run: Option<(i64, String)>,
    pub last_validation: Option<(i64, String)>,
    /// An open pull request: the newest open one of the local forge, else the pull request
    /// of the newest run still working on it.
    pub open_pr_url: Option<String>,
    pub has_rules: bool,
}

impl Store {
    pub async fn project_summaries(
        &self,
    ) -> Result<HashMap<ProjectId, ProjectSummary>, StoreError> {
        let mut out: HashMap<ProjectId, ProjectSummary> = HashMap::new();
        let runs: Vec<(i64, i64, String, Option<String>)> = sqlx::query_as(
            "SELECT r.project_id, r.id, r.status, r.pr_url FROM agent_runs r
             JOIN (SELECT project_id, MAX(id) AS id FROM agent_runs GROUP BY project_id) m ON m.id = r.id",
        )
        .fetch_all(&self.pool)
        .await?;
        for (project, id, status, pr_url) in runs {
            let entry = out.entry(ProjectId(project)).or_default();
            let working = !matches!(status.as_str(), "failed" | "cancelled" | "succeeded");
            entry.open_pr_url = pr_url.filter(|_| working);
            entry.last_run = Some((id, status));
        }
        let open_pulls: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT project_id, MAX(number) FROM pull_requests WHERE state = 'open' GROUP BY project_id",
        )
        .fetch_all(&self.pool)
        .await?;
        for (project, number) in open_pulls {
            out.entry(ProjectId(project)).or_default().open_pr_url =
                Some(format!("/projects/{project}/pulls/{number}"));
        }
        let validations: Vec<(i64, i64, String)> = sqlx::query_as(
            "SELECT v.project_id, v.id, v.status FROM validations v
             JOIN (SELECT project_id, MAX(id) AS id FROM validations GROUP BY project_id) m ON m.id = v.id",
        )
        .fetch_all(&self.pool)
        .await?;
        for (project, id, status) in validations {
            out.entry(ProjectId(project)).or_default().last_validation = Some((id, status));
        }
        let with_rules: HashSet<i64> = sqlx::query_scalar(
            "SELECT project_id FROM project_settings
             WHERE COALESCE(json_extract(document, '$.repository_rules'), '') != ''",
        )
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
