//! A GitHub project's repository webhook, set up by Slipway: created (or Slipway's existing
//! one updated) when the project is created, read for the project page, repaired on demand
//! and removed with the project. Its secret is the project secret `GITHUB_WEBHOOK_SECRET`
//! (sealed like every secret), which verifies the project's deliveries beside the global one.
//! A GitHub App needs none of this: the App's own webhook brings every delivery.

use crate::Engine;
use serde::Serialize;
use slipway_core::secret::{SecretValue, WEBHOOK_SECRET_NAME};
use slipway_core::Project;
use slipway_forge::github::{GitHub, GitHubError, Hook, WantedHook};
use std::sync::Arc;

/// Where GitHub delivers (after `SLIPWAY_PUBLIC_URL`).
pub const WEBHOOK_PATH: &str = "/webhooks/github";

/// The events Slipway acts on.
pub const HOOK_EVENTS: [&str; 5] = [
    "pull_request",
    "pull_request_review",
    "issue_comment",
    "check_run",
    "check_suite",
];

/// The state of a project's webhook, as the project page shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum HookState {
    /// A local repository: GitHub delivers nothing.
    NotGitHub,
    /// Slipway is a GitHub App: the App's webhook brings the deliveries.
    App,
    /// No `GITHUB_TOKEN` (or App) is configured.
    NoCredentials,
    /// `SLIPWAY_PUBLIC_URL` is not set: GitHub would not know where to deliver.
    NoPublicUrl,
    /// The token may not manage the repository's webhooks.
    NotPermitted { url: String, message: String },
    /// GitHub could not be asked.
    Unreachable { message: String },
    /// The repository has no webhook to Slipway's URL.
    Missing { url: String },
    Installed {
        id: i64,
        url: String,
        active: bool,
        /// Events Slipway acts on that the hook does not send.
        events_missing: Vec<String>,
        /// GitHub's `last_response` of the hook (`unused` before any delivery).
        last_status: Option<String>,
        last_code: Option<i64>,
        last_message: Option<String>,
        /// The newest delivery: when, its event and the answer's status code.
        last_delivery: Option<LastDelivery>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LastDelivery {
    pub delivered_at: String,
    pub event: String,
    pub status_code: i64,
    pub status: String,
}

impl HookState {
    /// Whether an operator's repair may help: Slipway manages the hook (it may be missing,
    /// refused, wrong, or delivering nowhere after a move of `SLIPWAY_PUBLIC_URL`).
    pub fn repairable(&self) -> bool {
        matches!(
            self,
            HookState::Missing { .. }
                | HookState::NotPermitted { .. }
                | HookState::Unreachable { .. }
                | HookState::Installed { .. }
        )
    }
}

/// Which of `hooks` is Slipway's: the one delivering to `url`.
pub fn slipways_hook<'a>(hooks: &'a [Hook], url: &str) -> Option<&'a Hook> {
    hooks
        .iter()
        .find(|h| h.config.url.as_deref().map(|u| u.trim_end_matches('/')) == Some(url))
}

/// Why Slipway manages no webhook for a project.
#[derive(Debug, Clone, Copy)]
enum NoTarget {
    NotGitHub,
    App,
    NoCredentials,
    NoPublicUrl,
}

impl From<NoTarget> for HookState {
    fn from(why: NoTarget) -> Self {
        match why {
            NoTarget::NotGitHub => HookState::NotGitHub,
            NoTarget::App => HookState::App,
            NoTarget::NoCredentials => HookState::NoCredentials,
            NoTarget::NoPublicUrl => HookState::NoPublicUrl,
        }
    }
}

struct Target {
    github: Arc<GitHub>,
    repo: String,
    url: String,
}

fn refused(url: &str, repo: &str, error: &GitHubError) -> HookState {
    match error {
        GitHubError::Status {
            status: 403 | 404, ..
        } => HookState::NotPermitted {
            url: url.to_owned(),
            message: format!(
                "GitHub refused to manage {repo}'s webhooks ({error}). Give the token the \
                 admin:repo_hook scope (a classic token) or \"Webhooks: read and write\" (a \
                 fine-grained one), then repair; or add the webhook by hand: payload URL {url}, \
                 content type application/json, the project secret {WEBHOOK_SECRET_NAME} as its \
                 secret, events {}.",
                HOOK_EVENTS.join(", ")
            ),
        },
        other => HookState::Unreachable {
            message: other.to_string(),
        },
    }
}

/// 32 random bytes as hex.
fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes).expect("the OS random source is available");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Engine {
    /// Where the project's webhook goes, or why Slipway has none to manage.
    fn hook_target(&self, project: &Project) -> Result<Target, NoTarget> {
        let Some(repo) = project.location.github() else {
            return Err(NoTarget::NotGitHub);
        };
        let Some(github) = self.inner.config.github.clone() else {
            return Err(NoTarget::NoCredentials);
        };
        if github.is_app() {
            return Err(NoTarget::App);
        }
        let Some(public) = self.public_url() else {
            return Err(NoTarget::NoPublicUrl);
        };
        Ok(Target {
            github,
            repo,
            url: format!("{}{WEBHOOK_PATH}", public.trim_end_matches('/')),
        })
    }

    /// The webhook's secret: the project's, else another project's on the same repository
    /// (they share the repository's hook), else a new one; stored sealed in the project.
    async fn hook_secret(&self, project: &Project, repo: &str) -> anyhow::Result<String> {
        let store = &self.inner.store;
        let own = |secrets: Vec<(String, SecretValue)>| {
            secrets
                .into_iter()
                .find(|(name, _)| name == WEBHOOK_SECRET_NAME)
                .map(|(_, value)| value.expose().to_owned())
        };
        if let Some(secret) = own(store.secret_values(project.id).await?) {
            return Ok(secret);
        }
        let mut secret = None;
        for other in store.projects_on_github_repo(repo).await? {
            if other.id != project.id {
                secret = secret.or(own(store.secret_values(other.id).await?));
            }
        }
        let secret = secret.unwrap_or_else(new_secret);
        let value = SecretValue::new(secret.clone())?;
        store
            .put_secret(project.id, WEBHOOK_SECRET_NAME, &value)
            .await?;
        Ok(secret)
    }

    /// Creates the project's webhook, or makes Slipway's existing one (same URL) right:
    /// active, the events Slipway acts on, the project's secret. Returns its state.
    pub async fn set_up_webhook(&self, project: &Project) -> HookState {
        let target = match self.hook_target(project) {
            Ok(target) => target,
            Err(why) => return why.into(),
        };
        let Target { github, repo, url } = &target;
        let secret = match self.hook_secret(project, repo).await {
            Ok(secret) => secret,
            Err(error) => {
                tracing::error!(project = %project.id, error = format!("{error:#}"), "the webhook secret could not be stored");
                return HookState::Unreachable {
                    message: "the webhook's secret could not be stored; see the log".into(),
                };
            }
        };
        let wanted = WantedHook {
            url,
            secret: &secret,
            events: &HOOK_EVENTS,
        };
        let hooks = match github.hooks(repo).await {
            Ok(hooks) => hooks,
            Err(error) => return refused(url, repo, &error),
        };
        let done = match slipways_hook(&hooks, url) {
            Some(hook) => github.update_hook(repo, hook.id, wanted).await,
            None => github.create_hook(repo, wanted).await,
        };
        match done {
            Ok(hook) => {
                tracing::info!(project = %project.id, repo, hook = hook.id, "webhook set up");
                self.installed(&target, hook).await
            }
            Err(error) => {
                tracing::warn!(project = %project.id, repo, %error, "webhook not set up");
                refused(url, repo, &error)
            }
        }
    }

    /// The project's webhook as GitHub has it now.
    pub async fn webhook_state(&self, project: &Project) -> HookState {
        let target = match self.hook_target(project) {
            Ok(target) => target,
            Err(why) => return why.into(),
        };
        match target.github.hooks(&target.repo).await {
            Ok(hooks) => match slipways_hook(&hooks, &target.url) {
                Some(hook) => self.installed(&target, hook.clone()).await,
                None => HookState::Missing {
                    url: target.url.clone(),
                },
            },
            Err(error) => refused(&target.url, &target.repo, &error),
        }
    }

    async fn installed(&self, target: &Target, hook: Hook) -> HookState {
        let last_delivery = match target
            .github
            .last_hook_delivery(&target.repo, hook.id)
            .await
        {
            Ok(delivery) => delivery.map(|d| LastDelivery {
                delivered_at: d.delivered_at,
                event: d.event,
                status_code: d.status_code,
                status: d.status,
            }),
            Err(error) => {
                tracing::debug!(%error, "the hook's deliveries could not be read");
                None
            }
        };
        HookState::Installed {
            id: hook.id,
            url: target.url.clone(),
            active: hook.active,
            events_missing: HOOK_EVENTS
                .iter()
                .filter(|e| !hook.events.iter().any(|h| h == *e || h == "*"))
                .map(|e| (*e).to_owned())
                .collect(),
            last_status: hook.last_response.status,
            last_code: hook.last_response.code,
            last_message: hook.last_response.message,
            last_delivery,
        }
    }

    /// Removes Slipway's webhook from the project's repository, unless another project
    /// still uses that repository. Failures are logged: the project goes either way.
    pub async fn remove_webhook(&self, project: &Project) {
        let Ok(Target { github, repo, url }) = self.hook_target(project) else {
            return;
        };
        match self.inner.store.projects_on_github_repo(&repo).await {
            Ok(projects) if projects.iter().any(|p| p.id != project.id) => return,
            Ok(_) => {}
            Err(error) => {
                return tracing::warn!(%error, "the webhook was kept: projects not readable")
            }
        }
        let removed = async {
            let hooks = github.hooks(&repo).await?;
            if let Some(hook) = slipways_hook(&hooks, &url) {
                github.delete_hook(&repo, hook.id).await?;
            }
            Ok::<_, GitHubError>(())
        };
        if let Err(error) = removed.await {
            tracing::warn!(project = %project.id, repo, %error, "the webhook could not be removed; delete it on GitHub");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(id: i64, url: &str) -> Hook {
        serde_json::from_value(serde_json::json!({
            "id": id, "active": true, "events": ["push"], "config": {"url": url},
            "last_response": {"code": null, "status": "unused", "message": null}
        }))
        .unwrap()
    }

    #[test]
    fn slipways_hook_is_the_one_delivering_to_its_url() {
        let url = "https://slipway.example/webhooks/github";
        let hooks = [
            hook(1, "https://ci.example/hook"),
            hook(2, "https://slipway.example/webhooks/github/"),
        ];
        assert_eq!(slipways_hook(&hooks, url).map(|h| h.id), Some(2));
        assert_eq!(slipways_hook(&hooks[..1], url), None);
    }

    #[test]
    fn a_refusal_says_which_scope_to_give_and_an_outage_does_not() {
        let url = "https://s.example/webhooks/github";
        let denied = GitHubError::Status {
            status: 404,
            what: "GET /repos/a/b/hooks".into(),
            message: "Not Found".into(),
        };
        let HookState::NotPermitted { message, .. } = refused(url, "a/b", &denied) else {
            panic!("a 404 is a missing permission");
        };
        assert!(message.contains("admin:repo_hook"), "{message}");
        let outage = GitHubError::Status {
            status: 502,
            what: "GET /repos/a/b/hooks".into(),
            message: "Bad Gateway".into(),
        };
        assert!(matches!(
            refused(url, "a/b", &outage),
            HookState::Unreachable { .. }
        ));
    }

    #[test]
    fn new_secrets_are_long_and_differ() {
        let (a, b) = (new_secret(), new_secret());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
    }
}
