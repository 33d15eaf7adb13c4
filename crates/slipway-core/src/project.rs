//! Projects: a repository Slipway works on, and the rules for each field.

use crate::{Invalid, ProjectId};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use time::OffsetDateTime;

pub const MAX_NAME_LEN: usize = 100;
pub const MAX_DESCRIPTION_LEN: usize = 2_000;

/// A stored project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Project {
    pub id: ProjectId,
    pub name: String,
    pub description: String,
    /// `owner/name` on GitHub, or an absolute path / `file://` URL of a local git repository,
    /// as it was given.
    pub repo: String,
    /// `repo`, read once.
    #[serde(skip)]
    pub location: RepoLocation,
    pub default_branch: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// The fields of a new project, as a client sends them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ProjectDraft {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub repo: String,
    #[serde(default = "default_branch")]
    pub default_branch: String,
}

fn default_branch() -> String {
    "main".to_owned()
}

/// A partial update: absent fields keep their value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ProjectPatch {
    pub name: Option<String>,
    pub description: Option<String>,
    pub repo: Option<String>,
    pub default_branch: Option<String>,
}

impl ProjectPatch {
    /// The draft this patch makes of an existing project.
    pub fn apply(self, project: &Project) -> ProjectDraft {
        ProjectDraft {
            name: self.name.unwrap_or_else(|| project.name.clone()),
            description: self
                .description
                .unwrap_or_else(|| project.description.clone()),
            repo: self.repo.unwrap_or_else(|| project.repo.clone()),
            default_branch: self
                .default_branch
                .unwrap_or_else(|| project.default_branch.clone()),
        }
    }
}

/// Where a project's repository lives, as far as its spelling tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepoLocation {
    GitHub {
        owner: String,
        name: String,
    },
    Local {
        path: PathBuf,
    },
    /// Any other URL git can fetch: `slipway validate`'s, never accepted by the API.
    Url {
        url: String,
    },
}

impl RepoLocation {
    /// A stored project's `repo`: what [`RepoLocation::parse`] accepts, else a URL.
    pub fn from_stored(repo: &str) -> Self {
        Self::parse(repo).unwrap_or_else(|_| RepoLocation::Url {
            url: repo.to_owned(),
        })
    }

    /// Where git fetches the repository from.
    pub fn source(&self) -> String {
        match self {
            RepoLocation::GitHub { owner, name } => {
                format!("https://github.com/{owner}/{name}.git")
            }
            RepoLocation::Local { path } => path.display().to_string(),
            RepoLocation::Url { url } => url.clone(),
        }
    }

    /// `owner/name` of a GitHub repository.
    pub fn github(&self) -> Option<String> {
        match self {
            RepoLocation::GitHub { owner, name } => Some(format!("{owner}/{name}")),
            _ => None,
        }
    }

    /// The repository on disk, for the local forge.
    pub fn local_path(&self) -> Option<&std::path::Path> {
        match self {
            RepoLocation::Local { path } => Some(path),
            _ => None,
        }
    }

    /// Reads a `repo` field: `owner/name`, an absolute path, or a `file://` URL.
    pub fn parse(repo: &str) -> Result<Self, Invalid> {
        let invalid = |why: &str| {
            Invalid::new(
                "repo",
                format!(
                    "'{repo}' {why}; use 'owner/name' for a GitHub repository, \
                     or an absolute path or file:// URL of a local git repository"
                ),
            )
        };
        if let Some(path) = repo.strip_prefix("file://") {
            if !path.starts_with('/') {
                return Err(invalid("is a file:// URL without an absolute path"));
            }
            return Ok(RepoLocation::Local { path: path.into() });
        }
        if repo.starts_with('/') {
            return Ok(RepoLocation::Local { path: repo.into() });
        }
        let Some((owner, name)) = repo.split_once('/') else {
            return Err(invalid("is neither 'owner/name' nor a local path"));
        };
        let owner_ok = !owner.is_empty()
            && owner.len() <= 39
            && owner.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !owner.starts_with('-');
        let name_ok = !name.is_empty()
            && name.len() <= 100
            && name != "."
            && name != ".."
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if owner_ok && name_ok {
            Ok(RepoLocation::GitHub {
                owner: owner.to_owned(),
                name: name.to_owned(),
            })
        } else {
            Err(invalid("is not a valid GitHub 'owner/name'"))
        }
    }
}

impl ProjectDraft {
    /// Checks every field; the repository's existence on disk is the caller's to check.
    pub fn validate(&self) -> Result<RepoLocation, Invalid> {
        validate_name(&self.name)?;
        if self.description.chars().count() > MAX_DESCRIPTION_LEN {
            return Err(Invalid::new(
                "description",
                format!("is longer than {MAX_DESCRIPTION_LEN} characters; shorten it"),
            ));
        }
        validate_branch("default_branch", &self.default_branch)?;
        RepoLocation::parse(&self.repo)
    }
}

fn validate_name(name: &str) -> Result<(), Invalid> {
    let len = name.chars().count();
    if name.trim().is_empty() {
        return Err(Invalid::new("name", "is empty; give the project a name"));
    }
    if len > MAX_NAME_LEN {
        return Err(Invalid::new(
            "name",
            format!("is {len} characters long; at most {MAX_NAME_LEN} are accepted"),
        ));
    }
    if name.trim() != name || name.chars().any(char::is_control) {
        return Err(Invalid::new(
            "name",
            "has leading or trailing spaces or control characters; remove them",
        ));
    }
    Ok(())
}

/// Checks a branch name against git's rules for ref names (`git check-ref-format`).
pub fn validate_branch(field: &str, branch: &str) -> Result<(), Invalid> {
    let bad = branch.is_empty()
        || branch.len() > 255
        || branch.starts_with(['/', '-', '.'])
        || branch.ends_with(['/', '.'])
        || branch.ends_with(".lock")
        || branch.contains("..")
        || branch.contains("//")
        || branch.contains("@{")
        || branch == "@"
        || branch.contains("/.")
        || branch
            .chars()
            .any(|c| c.is_ascii_control() || " ~^:?*[\\".contains(c));
    if bad {
        Err(Invalid::new(
            field,
            format!("'{branch}' is not a valid git branch name (see git check-ref-format)"),
        ))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(repo: &str) -> ProjectDraft {
        ProjectDraft {
            name: "demo".into(),
            description: String::new(),
            repo: repo.into(),
            default_branch: "main".into(),
        }
    }

    #[test]
    fn github_repos_are_owner_slash_name() {
        assert_eq!(
            RepoLocation::parse("rust-lang/bors"),
            Ok(RepoLocation::GitHub {
                owner: "rust-lang".into(),
                name: "bors".into()
            })
        );
        assert!(RepoLocation::parse("a/b.c_d-e").is_ok());
    }

    #[test]
    fn local_repos_are_absolute_paths_or_file_urls() {
        assert_eq!(
            RepoLocation::parse("/srv/git/app"),
            Ok(RepoLocation::Local {
                path: "/srv/git/app".into()
            })
        );
        assert_eq!(
            RepoLocation::parse("file:///srv/git/app"),
            Ok(RepoLocation::Local {
                path: "/srv/git/app".into()
            })
        );
    }

    #[test]
    fn malformed_repos_are_refused_with_the_accepted_forms() {
        for bad in [
            "",
            "noslash",
            "a/b/c",
            "-x/y",
            "x/..",
            "own er/name",
            "file://relative",
        ] {
            let err = RepoLocation::parse(bad).unwrap_err();
            assert_eq!(err.field, "repo");
            assert!(err.message.contains("owner/name"), "{bad}: {err}");
        }
    }

    #[test]
    fn names_must_be_present_short_and_clean() {
        let mut d = draft("a/b");
        assert!(d.validate().is_ok());
        for bad in ["", "   ", " padded", "tab\tname"] {
            d.name = bad.into();
            assert_eq!(d.validate().unwrap_err().field, "name", "{bad:?}");
        }
        d.name = "x".repeat(MAX_NAME_LEN + 1);
        assert!(d.validate().unwrap_err().message.contains("at most 100"));
    }

    #[test]
    fn branch_names_follow_git_rules() {
        for good in ["main", "release/1.2", "feature_x", "a-b"] {
            assert!(validate_branch("b", good).is_ok(), "{good}");
        }
        for bad in [
            "", "a b", "a..b", "-x", "x.lock", "x/", "a:b", "a~1", "@", "x//y", "a/.b",
        ] {
            assert!(validate_branch("b", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn long_descriptions_are_refused() {
        let mut d = draft("a/b");
        d.description = "x".repeat(MAX_DESCRIPTION_LEN + 1);
        assert_eq!(d.validate().unwrap_err().field, "description");
    }

    #[test]
    fn a_patch_keeps_what_it_does_not_name() {
        let now = OffsetDateTime::UNIX_EPOCH;
        let project = Project {
            id: ProjectId(1),
            name: "old".into(),
            description: "d".into(),
            repo: "a/b".into(),
            location: RepoLocation::from_stored("a/b"),
            default_branch: "main".into(),
            created_at: now,
            updated_at: now,
        };
        let patched = ProjectPatch {
            name: Some("new".into()),
            ..Default::default()
        }
        .apply(&project);
        assert_eq!(patched.name, "new");
        assert_eq!(patched.repo, "a/b");
        assert_eq!(patched.description, "d");
    }

    #[test]
    fn drafts_refuse_unknown_fields() {
        let err = serde_json::from_str::<ProjectDraft>(r#"{"name":"a","repo":"a/b","colour":1}"#)
            .unwrap_err();
        assert!(err.to_string().contains("unknown field `colour`"));
    }
}
