//! Commit statuses and check runs, with their annotations.

use super::comments::{capped, report_page};
use super::{GitHub, GitHubError};
use serde_json::{json, Value};

/// A commit status state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusState {
    Pending,
    Success,
    Failure,
    Error,
}

impl StatusState {
    fn as_str(self) -> &'static str {
        match self {
            StatusState::Pending => "pending",
            StatusState::Success => "success",
            StatusState::Failure => "failure",
            StatusState::Error => "error",
        }
    }
}

/// GitHub's limit on a check run's `output.summary` (and `text`), in bytes ("exceeds a
/// maximum bytesize of 65535").
const MAX_CHECK_SUMMARY: usize = 65_535;

/// Annotations GitHub takes in one request.
const MAX_ANNOTATIONS: usize = 50;

impl GitHub {
    pub async fn set_status(
        &self,
        repo: &str,
        sha: &str,
        state: StatusState,
        description: &str,
        target_url: Option<&str>,
    ) -> Result<(), GitHubError> {
        let mut body = json!({
            "state": state.as_str(),
            "context": "slipway/validation",
            "description": description.chars().take(140).collect::<String>(),
        });
        if let Some(url) = target_url {
            body["target_url"] = json!(url);
        }
        self.expect(
            reqwest::Method::POST,
            &format!("/repos/{repo}/statuses/{sha}"),
            Some(&body),
            &[201],
        )
        .await
        .map(|_| ())
    }

    /// A completed check run with the step summary and `annotations` (GitHub Apps only):
    /// the first 50 with it, the rest added 50 a request, as GitHub allows.
    #[allow(clippy::too_many_arguments)]
    pub async fn complete_check_run(
        &self,
        repo: &str,
        sha: &str,
        conclusion: &str,
        title: &str,
        summary: &str,
        details_url: Option<&str>,
        annotations: &[crate::Annotation],
    ) -> Result<(), GitHubError> {
        let page = details_url.map(report_page);
        let summary = capped(summary, MAX_CHECK_SUMMARY, page.as_deref());
        let mut batches = annotations.chunks(MAX_ANNOTATIONS).map(|batch| {
            batch
                .iter()
                .map(|a| {
                    json!({"path": a.path, "start_line": a.line, "end_line": a.line,
                           "annotation_level": a.level, "title": a.title, "message": a.message})
                })
                .collect::<Vec<Value>>()
        });
        let mut body = json!({
            "name": "slipway/validation",
            "head_sha": sha,
            "status": "completed",
            "conclusion": conclusion,
            "output": {"title": title, "summary": summary},
        });
        if let Some(first) = batches.next() {
            body["output"]["annotations"] = json!(first);
        }
        if let Some(url) = details_url {
            body["details_url"] = json!(url);
        }
        let created = self
            .expect(
                reqwest::Method::POST,
                &format!("/repos/{repo}/check-runs"),
                Some(&body),
                &[201],
            )
            .await?;
        let id = created["id"].as_u64().unwrap_or_default();
        for batch in batches {
            let more =
                json!({"output": {"title": title, "summary": summary, "annotations": batch}});
            self.expect(
                reqwest::Method::PATCH,
                &format!("/repos/{repo}/check-runs/{id}"),
                Some(&more),
                &[200],
            )
            .await?;
        }
        Ok(())
    }
}
