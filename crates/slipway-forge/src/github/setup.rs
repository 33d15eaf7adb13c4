//! Setting a repository up for Slipway: the repositories the credentials reach (for picking
//! a project's), and the repository's webhook (`/repos/{owner}/{repo}/hooks`).

use super::{GitHub, GitHubError, MAX_PAGES};
use serde::Deserialize;
use serde_json::{json, Value};

/// A repository webhook as GitHub describes it (`hook`), with what Slipway reads of it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Hook {
    pub id: i64,
    pub active: bool,
    #[serde(default)]
    pub events: Vec<String>,
    #[serde(default)]
    pub config: HookConfig,
    #[serde(default)]
    pub last_response: HookResponse,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct HookConfig {
    #[serde(default)]
    pub url: Option<String>,
}

/// The answer to the hook's last delivery (`hook-response`): `status` is `unused` before any.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct HookResponse {
    #[serde(default)]
    pub code: Option<i64>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
}

/// One delivery of a hook (`hook-delivery-item`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct HookDelivery {
    pub guid: String,
    pub delivered_at: String,
    pub status: String,
    pub status_code: i64,
    pub event: String,
    #[serde(default)]
    pub action: Option<String>,
}

/// What a hook of Slipway's is made to be.
#[derive(Debug, Clone, Copy)]
pub struct WantedHook<'a> {
    pub url: &'a str,
    pub secret: &'a str,
    pub events: &'a [&'a str],
}

impl WantedHook<'_> {
    fn body(&self) -> Value {
        json!({
            "name": "web",
            "active": true,
            "events": self.events,
            "config": {"url": self.url, "content_type": "json", "secret": self.secret,
                       "insecure_ssl": "0"},
        })
    }
}

fn unreadable(what: String, error: serde_json::Error) -> GitHubError {
    GitHubError::Status {
        status: 200,
        what,
        message: format!("an answer Slipway cannot read: {error}"),
    }
}

impl GitHub {
    /// `owner/name` of every repository the credentials reach, sorted: a token's own and
    /// its organizations' (`/user/repos`), or every installation's of an App, page by page.
    pub async fn repositories(&self) -> Result<Vec<String>, GitHubError> {
        let mut names = match &self.credentials {
            super::Credentials::Token(_) => self
                .list("/user/repos?per_page=100&sort=full_name")
                .await?
                .iter()
                .filter_map(|repo| repo["full_name"].as_str().map(str::to_owned))
                .collect(),
            super::Credentials::App(app) => self.installations_repositories(app).await?,
        };
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// Every repository of every installation of the App (each listed with a token of its
    /// installation, following `Link: rel="next"`).
    async fn installations_repositories(
        &self,
        app: &super::App,
    ) -> Result<Vec<String>, GitHubError> {
        let jwt = Self::app_jwt(app)?;
        let installations = self
            .raw(
                reqwest::Method::GET,
                "/app/installations?per_page=100",
                &jwt,
                200,
            )
            .await?;
        let mut names = Vec::new();
        for installation in installations.as_array().into_iter().flatten() {
            let Some(id) = installation["id"].as_i64() else {
                continue;
            };
            let granted = self
                .raw(
                    reqwest::Method::POST,
                    &format!("/app/installations/{id}/access_tokens"),
                    &jwt,
                    201,
                )
                .await?;
            let token = granted["token"].as_str().unwrap_or_default().to_owned();
            let mut url = format!("{}/installation/repositories?per_page=100", self.api);
            for _ in 0..MAX_PAGES {
                let reply = self.send(reqwest::Method::GET, &url, &token, None).await?;
                if reply.status != 200 {
                    return Err(GitHubError::Status {
                        status: reply.status,
                        what: format!("GET {url}"),
                        message: reply.value["message"].as_str().unwrap_or("").to_owned(),
                    });
                }
                names.extend(
                    reply.value["repositories"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|r| r["full_name"].as_str().map(str::to_owned)),
                );
                match reply.next {
                    Some(next) if next.starts_with(&format!("{}/", self.api)) => url = next,
                    _ => break,
                }
            }
        }
        Ok(names)
    }

    /// The repository's webhooks (404 or 403 when the token may not manage them).
    pub async fn hooks(&self, repo: &str) -> Result<Vec<Hook>, GitHubError> {
        let what = format!("GET /repos/{repo}/hooks");
        self.list(&format!("/repos/{repo}/hooks?per_page=100"))
            .await?
            .into_iter()
            .map(|hook| serde_json::from_value(hook).map_err(|e| unreadable(what.clone(), e)))
            .collect()
    }

    pub async fn hook(&self, repo: &str, id: i64) -> Result<Hook, GitHubError> {
        let path = format!("/repos/{repo}/hooks/{id}");
        let value = self
            .expect(reqwest::Method::GET, &path, None, &[200])
            .await?;
        serde_json::from_value(value).map_err(|e| unreadable(format!("GET {path}"), e))
    }

    pub async fn create_hook(&self, repo: &str, hook: WantedHook<'_>) -> Result<Hook, GitHubError> {
        let path = format!("/repos/{repo}/hooks");
        let value = self
            .expect(reqwest::Method::POST, &path, Some(&hook.body()), &[201])
            .await?;
        serde_json::from_value(value).map_err(|e| unreadable(format!("POST {path}"), e))
    }

    /// Makes hook `id` what `hook` says (URL, secret, events, active).
    pub async fn update_hook(
        &self,
        repo: &str,
        id: i64,
        hook: WantedHook<'_>,
    ) -> Result<Hook, GitHubError> {
        let path = format!("/repos/{repo}/hooks/{id}");
        let mut body = hook.body();
        body.as_object_mut().expect("an object").remove("name");
        let value = self
            .expect(reqwest::Method::PATCH, &path, Some(&body), &[200])
            .await?;
        serde_json::from_value(value).map_err(|e| unreadable(format!("PATCH {path}"), e))
    }

    /// Deletes hook `id`; one already gone is fine.
    pub async fn delete_hook(&self, repo: &str, id: i64) -> Result<(), GitHubError> {
        self.expect(
            reqwest::Method::DELETE,
            &format!("/repos/{repo}/hooks/{id}"),
            None,
            &[204, 404],
        )
        .await
        .map(drop)
    }

    /// The hook's newest delivery, if it made any.
    pub async fn last_hook_delivery(
        &self,
        repo: &str,
        id: i64,
    ) -> Result<Option<HookDelivery>, GitHubError> {
        let path = format!("/repos/{repo}/hooks/{id}/deliveries?per_page=1");
        let value = self
            .expect(reqwest::Method::GET, &path, None, &[200])
            .await?;
        let deliveries: Vec<HookDelivery> =
            serde_json::from_value(value).map_err(|e| unreadable(format!("GET {path}"), e))?;
        Ok(deliveries.into_iter().next())
    }
}
