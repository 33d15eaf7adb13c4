//! Slipway's one report comment on a pull request, edited in place and cut within
//! GitHub's limits.

use super::{GitHub, GitHubError};
use serde_json::json;

/// GitHub's limit on a comment's body: 65,536 characters. Kept in bytes, which is never
/// more characters (nor UTF-16 units) than that, however GitHub counts.
const MAX_COMMENT: usize = 65_536;

impl GitHub {
    /// Creates or updates, in place, the one comment that carries `marker`.
    pub async fn upsert_comment(
        &self,
        repo: &str,
        number: i64,
        marker: &str,
        body: &str,
    ) -> Result<(), GitHubError> {
        self.upsert_comment_linked(repo, number, marker, body, None)
            .await
    }

    /// [`upsert_comment`](Self::upsert_comment), cut within GitHub's limit when too long,
    /// ending with a line that links `page` (the full report).
    pub async fn upsert_comment_linked(
        &self,
        repo: &str,
        number: i64,
        marker: &str,
        body: &str,
        page: Option<&str>,
    ) -> Result<(), GitHubError> {
        let text = capped(&format!("{marker}\n{body}"), MAX_COMMENT, page);
        let path = format!("/repos/{repo}/issues/{number}/comments?per_page=100");
        let own = self.own_login().await?;
        // Slipway's own comment: the marker alone could be anyone's decoy.
        let existing = self
            .list(&path)
            .await?
            .iter()
            .find(|c| {
                c["user"]["login"].as_str() == Some(own.as_str())
                    && c["body"].as_str().is_some_and(|b| b.starts_with(marker))
            })
            .and_then(|c| c["id"].as_i64());
        match existing {
            Some(id) => self
                .expect(
                    reqwest::Method::PATCH,
                    &format!("/repos/{repo}/issues/comments/{id}"),
                    Some(&json!({"body": text})),
                    &[200],
                )
                .await
                .map(|_| ()),
            None => self
                .expect(
                    reqwest::Method::POST,
                    &format!("/repos/{repo}/issues/{number}/comments"),
                    Some(&json!({"body": text})),
                    &[201],
                )
                .await
                .map(|_| ()),
        }
    }
}

/// `text`, within `max` bytes: when it is longer, cut at a UTF-8 boundary and ended with a
/// line that links the full report (`page`) or says where it is.
pub(super) fn capped(text: &str, max: usize, page: Option<&str>) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let tail = match page {
        Some(page) => format!("\n\n… cut at GitHub's size limit: [the full report]({page})\n"),
        None => "\n\n… cut at GitHub's size limit: the full report is on the validation's page in Slipway\n".to_owned(),
    };
    let mut keep = max.saturating_sub(tail.len());
    while !text.is_char_boundary(keep) {
        keep -= 1;
    }
    let mut cut = String::with_capacity(keep + tail.len());
    cut.push_str(&text[..keep]);
    cut.push_str(&tail);
    cut
}

/// The dashboard's page of a validation, from its API link (`…/api/v1/validations/N`).
pub(super) fn report_page(link: &str) -> String {
    link.replacen("/api/v1/validations/", "/validations/", 1)
}

#[cfg(test)]
mod tests {
    use super::capped;

    #[test]
    fn a_long_text_is_cut_in_bytes_at_a_char_boundary_with_a_link() {
        // Two-byte characters, then a four-byte one straddling the cut.
        let long = "é".repeat(40_000) + "😀" + &"x".repeat(10);
        let page = "https://slipway.example/validations/7";
        let cut = capped(&long, 65_535, Some(page));
        assert!(cut.len() <= 65_535, "{}", cut.len());
        assert!(cut.len() > 65_400);
        assert!(cut.ends_with(&format!("[the full report]({page})\n")));
        let cut = capped(&long, 65_536, None);
        assert!(cut.len() <= 65_536);
        assert!(cut.trim_end().ends_with("validation's page in Slipway"));
        assert_eq!(capped("short", 65_535, Some(page)), "short");
        let exact = "a".repeat(65_535);
        assert_eq!(capped(&exact, 65_535, None), exact);
    }
}
