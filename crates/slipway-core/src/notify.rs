//! Notifications, pure: the events a target subscribes to, the kinds of target, the rules a
//! target's URL obeys (https; never an address of the machine itself or a private range unless
//! the administrator's allow list names it), a target's health and when a failing one is
//! disabled. The messages themselves are in [`message`].

mod address;
pub mod message;

use address::canonical;
pub use address::forbidden_range;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::time::Duration;

/// What happened, as a target subscribes to it (DESIGN.md §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum NotifyEvent {
    /// A validation ended (passed, failed, error), with the failing step.
    #[serde(rename = "validation.finished")]
    ValidationFinished,
    #[serde(rename = "pull_request.merged")]
    PullRequestMerged,
    /// A run waits for a person: a plan to confirm, a reply to continue.
    #[serde(rename = "run.needs_input")]
    RunNeedsInput,
    /// The fix loop stopped without a passing validation.
    #[serde(rename = "fix.gave_up")]
    FixGaveUp,
}

impl NotifyEvent {
    pub const ALL: [Self; 4] = [
        Self::ValidationFinished,
        Self::PullRequestMerged,
        Self::RunNeedsInput,
        Self::FixGaveUp,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ValidationFinished => "validation.finished",
            Self::PullRequestMerged => "pull_request.merged",
            Self::RunNeedsInput => "run.needs_input",
            Self::FixGaveUp => "fix.gave_up",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == text)
    }
}

/// Where a notification goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum TargetKind {
    /// A Slack incoming webhook: Block Kit messages.
    Slack,
    /// Any HTTPS endpoint: JSON signed per the Standard Webhooks specification.
    Webhook,
}

impl TargetKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Slack => "slack",
            Self::Webhook => "webhook",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "slack" => Some(Self::Slack),
            "webhook" => Some(Self::Webhook),
            _ => None,
        }
    }
}

/// A target failing without a single success for this long is disabled (documented in
/// docs/operations.md); each notification is tried a bounded number of times anyway.
pub const DISABLE_AFTER: Duration = Duration::from_secs(3 * 24 * 3_600);

/// How a target is doing, from what its deliveries recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum TargetHealth {
    /// Nothing was sent to it yet.
    New,
    /// Its last delivery arrived.
    Healthy,
    /// Its deliveries fail since a moment (shown with the last error); tried again.
    Failing,
    /// It failed for [`DISABLE_AFTER`] (or was switched off): nothing is sent to it.
    Disabled,
}

impl TargetHealth {
    /// The health of a target from its stored moments (Unix ms).
    pub fn of(enabled: bool, failing_since: Option<i64>, last_success: Option<i64>) -> Self {
        match (enabled, failing_since, last_success) {
            (false, _, _) => Self::Disabled,
            (true, Some(_), _) => Self::Failing,
            (true, None, Some(_)) => Self::Healthy,
            (true, None, None) => Self::New,
        }
    }
}

/// Whether a delivery failing at `now` disables a target failing since `failing_since`
/// (both Unix ms).
pub fn disable_after_failure(failing_since: i64, now: i64) -> bool {
    now.saturating_sub(failing_since) >= DISABLE_AFTER.as_millis() as i64
}

/// `SLIPWAY_NOTIFY_ALLOW_HOSTS`: hosts (by name or address) and CIDR ranges the
/// administrator allows despite the address rules; http is allowed for them too.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    hosts: Vec<String>,
    nets: Vec<IpNet>,
}

impl AllowList {
    /// Reads a comma-separated list of hosts and CIDRs (`127.0.0.1,hooks.internal,10.0.0.0/8`).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut list = Self::default();
        for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            if item.contains('/') {
                let net = item.parse::<IpNet>().map_err(|e| {
                    format!(
                        "SLIPWAY_NOTIFY_ALLOW_HOSTS: '{item}' is not a CIDR range ({e}); \
                         write it as 10.0.0.0/8 or fd00::/8"
                    )
                })?;
                list.nets.push(net.trunc());
            } else if let Ok(ip) = item.trim_matches(['[', ']']).parse::<IpAddr>() {
                list.nets.push(IpNet::from(ip));
            } else if item
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
            {
                list.hosts.push(item.to_ascii_lowercase());
            } else {
                return Err(format!(
                    "SLIPWAY_NOTIFY_ALLOW_HOSTS: '{item}' is neither a host name, an address \
                     nor a CIDR range"
                ));
            }
        }
        Ok(list)
    }

    /// Whether the URL's host is listed: by name, or an address within a listed range.
    pub fn allows_host(&self, host: &str) -> bool {
        let host = host.trim_matches(['[', ']']).to_ascii_lowercase();
        match host.parse::<IpAddr>() {
            Ok(ip) => self.allows_address(ip),
            Err(_) => self.hosts.contains(&host),
        }
    }

    /// Whether an address is within a listed range.
    pub fn allows_address(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.nets.iter().any(|net| net.contains(&ip))
    }
}

/// Why a target's URL is refused; each says what to do instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlRefused {
    /// (The text is not repeated: a URL's path may be its credential.)
    #[error("url: not an absolute URL; give the endpoint as https://host/path")]
    Malformed,
    #[error("url: {0} characters, over the {MAX_URL_CHARS} allowed; give the endpoint's URL only")]
    TooLong(usize),
    #[error("url: only https is allowed ({0} given); http is allowed only for hosts listed in SLIPWAY_NOTIFY_ALLOW_HOSTS")]
    NotHttps(String),
    #[error("url: credentials in the URL are not allowed; put a token in the path or use the webhook's signing secret")]
    Credentials,
    #[error("url: {host} resolves to {address}, a {range} address; notifications never go to the machine itself or a private network unless the administrator lists the host in SLIPWAY_NOTIFY_ALLOW_HOSTS")]
    Address {
        host: String,
        address: IpAddr,
        range: &'static str,
    },
    #[error("url: {host} does not resolve to any address ({why}); check the host name")]
    Unresolved { host: String, why: String },
}

/// The longest target URL accepted, in characters.
pub const MAX_URL_CHARS: usize = 2_048;

/// A target URL that passed the rules a URL alone can be checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetUrl {
    pub url: String,
    pub host: String,
    pub port: u16,
}

/// Checks a URL's form: absolute, https (http only for allowed hosts), no credentials; an
/// address given literally is checked against the address rules now. Names are checked when
/// they are resolved ([`check_addresses`]), at creation and again at every send.
pub fn check_url(text: &str, allow: &AllowList) -> Result<TargetUrl, UrlRefused> {
    let length = text.trim().chars().count();
    if length > MAX_URL_CHARS {
        return Err(UrlRefused::TooLong(length));
    }
    let url = url::Url::parse(text.trim()).map_err(|_| UrlRefused::Malformed)?;
    let host = match url.host() {
        Some(url::Host::Domain(name)) => name.to_ascii_lowercase(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        None => return Err(UrlRefused::Malformed),
    };
    match url.scheme() {
        "https" => {}
        "http" if allow.allows_host(&host) => {}
        other => return Err(UrlRefused::NotHttps(format!("{other}://"))),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UrlRefused::Credentials);
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        check_addresses(&host, &[ip], allow)?;
    }
    Ok(TargetUrl {
        port: url.port_or_known_default().unwrap_or(443),
        url: url.into(),
        host,
    })
}

/// Checks the addresses a host resolved to: none may be in a forbidden range unless the host
/// or the address is allowed.
pub fn check_addresses(
    host: &str,
    addresses: &[IpAddr],
    allow: &AllowList,
) -> Result<(), UrlRefused> {
    if addresses.is_empty() {
        return Err(UrlRefused::Unresolved {
            host: host.to_owned(),
            why: "no address".into(),
        });
    }
    if allow.allows_host(host) {
        return Ok(());
    }
    for &address in addresses {
        if let Some(range) = forbidden_range(address) {
            if !allow.allows_address(address) {
                return Err(UrlRefused::Address {
                    host: host.to_owned(),
                    address,
                    range,
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allow(text: &str) -> AllowList {
        AllowList::parse(text).unwrap()
    }

    #[test]
    fn https_to_a_public_host_is_accepted() {
        let url = check_url("https://hooks.slack.com/services/T/B/x", &allow("")).unwrap();
        assert_eq!((url.host.as_str(), url.port), ("hooks.slack.com", 443));
    }

    #[test]
    fn http_is_refused_unless_the_host_is_allowed() {
        let refused = check_url("http://example.com/hook", &allow("")).unwrap_err();
        assert!(matches!(refused, UrlRefused::NotHttps(_)), "{refused}");
        assert!(check_url("http://example.com/hook", &allow("example.com")).is_ok());
        assert!(check_url("http://127.0.0.1:9/hook", &allow("127.0.0.1")).is_ok());
        assert!(check_url("ftp://example.com/", &allow("example.com")).is_err());
    }

    #[test]
    fn literal_private_loopback_and_link_local_addresses_are_refused() {
        for (url, range) in [
            ("https://127.0.0.1/x", "loopback"),
            ("https://10.1.2.3/x", "private"),
            ("https://192.168.0.9/x", "private"),
            ("https://169.254.169.254/latest", "link-local"),
            ("https://[::1]/x", "loopback"),
            ("https://[::ffff:127.0.0.1]/x", "loopback"),
            ("https://[fd00::1]/x", "private (unique local)"),
            ("https://0.0.0.0/x", "unspecified"),
        ] {
            match check_url(url, &allow("")) {
                Err(UrlRefused::Address { range: r, .. }) => assert_eq!(r, range, "{url}"),
                other => panic!("{url}: {other:?}"),
            }
        }
    }

    #[test]
    fn allowed_ranges_and_hosts_open_the_address_rules() {
        let list = allow("10.0.0.0/8, hooks.internal");
        assert!(check_url("https://10.9.9.9/x", &list).is_ok());
        assert!(check_url("https://192.168.1.1/x", &list).is_err());
        let ten = "10.0.0.7".parse().unwrap();
        assert!(check_addresses("anything.example", &[ten], &list).is_ok());
        let local = "127.0.0.1".parse().unwrap();
        assert!(check_addresses("hooks.internal", &[local], &list).is_ok());
        assert!(check_addresses("evil.example", &[ten, local], &list).is_err());
    }

    #[test]
    fn a_name_resolving_to_any_forbidden_address_is_refused() {
        let public = "93.184.216.34".parse().unwrap();
        let private = "172.16.0.1".parse().unwrap();
        assert!(check_addresses("a.example", &[public], &allow("")).is_ok());
        let refused = check_addresses("a.example", &[public, private], &allow("")).unwrap_err();
        assert!(refused.to_string().contains("172.16.0.1"), "{refused}");
        assert!(check_addresses("a.example", &[], &allow("")).is_err());
    }

    #[test]
    fn a_url_is_at_most_the_documented_length() {
        let at_most = format!("https://example.com/{}", "a".repeat(MAX_URL_CHARS - 20));
        assert_eq!(at_most.len(), MAX_URL_CHARS);
        assert!(check_url(&at_most, &allow("")).is_ok());
        let over = format!("{at_most}b");
        let refused = check_url(&over, &allow("")).unwrap_err();
        assert_eq!(refused, UrlRefused::TooLong(MAX_URL_CHARS + 1));
        assert!(refused.to_string().contains("2048"), "{refused}");
        let huge = format!("https://example.com/{}", "x".repeat(200_000));
        assert!(!check_url(&huge, &allow(""))
            .unwrap_err()
            .to_string()
            .contains("xxxx"));
    }

    #[test]
    fn credentials_and_garbage_are_refused_with_what_to_do() {
        assert_eq!(
            check_url("https://u:p@example.com/", &allow("")),
            Err(UrlRefused::Credentials)
        );
        let refused = check_url("not a url", &allow("")).unwrap_err();
        assert!(refused.to_string().contains("https://host/path"));
    }

    #[test]
    fn a_bad_allow_list_says_which_item() {
        let error = AllowList::parse("127.0.0.1, 10.0.0.0/99").unwrap_err();
        assert!(error.contains("10.0.0.0/99"), "{error}");
        assert!(AllowList::parse("a b").is_err());
    }

    #[test]
    fn a_target_failing_for_the_documented_days_is_disabled() {
        let day = 24 * 3_600_000;
        assert!(!disable_after_failure(0, 2 * day));
        assert!(disable_after_failure(0, 3 * day));
        assert_eq!(TargetHealth::of(true, None, None), TargetHealth::New);
        assert_eq!(
            TargetHealth::of(true, Some(1), Some(0)),
            TargetHealth::Failing
        );
        assert_eq!(TargetHealth::of(true, None, Some(0)), TargetHealth::Healthy);
        assert_eq!(
            TargetHealth::of(false, None, Some(0)),
            TargetHealth::Disabled
        );
    }

    #[test]
    fn events_read_and_write_their_contract_names() {
        for event in NotifyEvent::ALL {
            assert_eq!(NotifyEvent::parse(event.as_str()), Some(event));
            let json = serde_json::to_string(&event).unwrap();
            assert_eq!(json, format!("\"{}\"", event.as_str()));
        }
        assert_eq!(NotifyEvent::parse("validation.started"), None);
    }
}

/// A target's URL as the API and the dashboard show it: its origin and the last 4 characters
/// of the rest (a Slack URL's path is its credential; so may be any webhook's).
pub fn shown_url(url: &str) -> String {
    let Ok(parsed) = url::Url::parse(url) else {
        return "(unreadable URL)".into();
    };
    let origin = parsed.origin().ascii_serialization();
    let rest = &url[url.find(&origin).map_or(0, |at| at + origin.len())..];
    let rest = rest.trim_end_matches('/');
    let chars: Vec<char> = rest.chars().collect();
    if chars.len() <= 4 {
        return format!("{origin}{rest}");
    }
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{origin}/…{tail}")
}

/// `text` (an error about sending to `url`) with `url` shown as [`shown_url`] shows it:
/// the whole URL, its path and query, and each long part of the path are replaced, so an
/// error of any library that quotes the URL keeps the credential out of what is stored.
pub fn scrub_url(text: &str, url: &str) -> String {
    let mut whole: Vec<String> = vec![url.trim().to_owned()];
    let mut parts: Vec<String> = Vec::new();
    if let Ok(parsed) = url::Url::parse(url.trim()) {
        whole.push(parsed.to_string());
        parts.push(parsed[url::Position::BeforePath..].to_owned());
        let segments = parsed.path_segments().into_iter().flatten();
        parts.extend(segments.chain(parsed.query()).map(str::to_owned));
    }
    // Longest first, so a part never breaks up a longer match; short parts are words.
    parts.retain(|s| s.chars().count() >= 8);
    for list in [&mut whole, &mut parts] {
        list.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }
    let shown = shown_url(url);
    let mut text = text.to_owned();
    for secret in whole.iter().filter(|s| !s.is_empty()) {
        text = text.replace(secret.as_str(), &shown);
    }
    for secret in &parts {
        text = text.replace(secret.as_str(), "…");
    }
    text
}

#[cfg(test)]
mod shown_tests {
    #[test]
    fn a_shown_url_hides_its_path() {
        let shown = super::shown_url("https://hooks.slack.com/services/T0/B0/abcdefWXYZ");
        assert_eq!(shown, "https://hooks.slack.com/…WXYZ");
        assert_eq!(
            super::shown_url("http://127.0.0.1:8080/"),
            "http://127.0.0.1:8080"
        );
    }

    #[test]
    fn an_error_never_repeats_a_target_url_beyond_its_shown_form() {
        let url = "https://hooks.slack.com/services/T0AAAA/B0BBBB/secretSECRET123";
        for error in [
            format!("error sending request for url ({url})"),
            "error sending request for url (https://hooks.slack.com/services/T0AAAA/B0BBBB/secretSECRET123)".to_owned(),
            "POST /services/T0AAAA/B0BBBB/secretSECRET123 refused".to_owned(),
            "token secretSECRET123 is invalid".to_owned(),
        ] {
            let scrubbed = super::scrub_url(&error, url);
            assert!(!scrubbed.contains("secretSECRET123"), "{scrubbed}");
            assert!(!scrubbed.contains("B0BBBB"), "{scrubbed}");
        }
        let scrubbed = super::scrub_url(&format!("failed for url ({url})"), url);
        assert_eq!(scrubbed, "failed for url (https://hooks.slack.com/…T123)");
        assert_eq!(
            super::scrub_url("connection refused", url),
            "connection refused"
        );
    }
}

/// The notification a run's change to `status` makes, if any: waiting for a person, or
/// (for a run with a pull request, whose fix loop it ends) failed.
pub fn run_event(status: crate::run::RunStatus, has_pull_request: bool) -> Option<NotifyEvent> {
    use crate::run::RunStatus;
    match status {
        RunStatus::AwaitingInput => Some(NotifyEvent::RunNeedsInput),
        RunStatus::Failed if has_pull_request => Some(NotifyEvent::FixGaveUp),
        _ => None,
    }
}

#[cfg(test)]
mod run_tests {
    use super::*;
    use crate::run::RunStatus;

    #[test]
    fn a_waiting_run_asks_and_a_failed_pull_request_loop_gives_up() {
        assert_eq!(
            run_event(RunStatus::AwaitingInput, false),
            Some(NotifyEvent::RunNeedsInput)
        );
        assert_eq!(
            run_event(RunStatus::Failed, true),
            Some(NotifyEvent::FixGaveUp)
        );
        assert_eq!(run_event(RunStatus::Failed, false), None);
        assert_eq!(run_event(RunStatus::Succeeded, true), None);
        assert_eq!(run_event(RunStatus::Fixing, true), None);
    }
}
