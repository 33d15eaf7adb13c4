//! What the dashboard's lists show of runs and validations, as a CI page does: status, title,
//! branch, commit, who started it, when (exactly on hover), how long (counting while it
//! runs); and the chart of a project's last validations.

use slipway_core::validation::ValidationStatus;
use slipway_store::{RunRecord, ValidationRecord};
use time::OffsetDateTime;

/// A moment as pages show it: how long ago, and exactly (on hover). Rendered as
/// `<time datetime="{exact}" title="{title}">{ago}</time>`; the page's script keeps the
/// relative text current and shows the date in the reader's own time zone on hover.
pub(super) struct When {
    pub(super) ago: String,
    /// ISO 8601 in UTC (`2026-12-06T04:33:17Z`), a valid `datetime` attribute.
    pub(super) exact: String,
    /// The absolute date as people read it (`2026-12-06 04:33:17 UTC`).
    pub(super) title: String,
}

pub(super) fn when(at: OffsetDateTime) -> When {
    let seconds = (OffsetDateTime::now_utc() - at).whole_seconds().max(0);
    let ago = match seconds {
        0..=59 => "just now".to_owned(),
        60..=3_599 => format!("{} min ago", seconds / 60),
        3_600..=86_399 => format!("{} h ago", seconds / 3_600),
        _ => format!("{} days ago", seconds / 86_400),
    };
    let at = at.to_offset(time::UtcOffset::UTC);
    let format = |description| at.format(description).unwrap_or_default();
    When {
        ago,
        exact: format(ISO_UTC),
        title: format(READABLE_UTC),
    }
}

const ISO_UTC: &[time::format_description::FormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
const READABLE_UTC: &[time::format_description::FormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");

use crate::routes::rfc3339;

/// How long something took, or (with `since`) has taken so far: the page's clock counts on.
pub(super) struct Took {
    pub(super) text: String,
    pub(super) since: Option<String>,
}

pub(super) fn took(start: Option<OffsetDateTime>, end: Option<OffsetDateTime>) -> Took {
    match (start, end) {
        (Some(start), Some(end)) => Took {
            text: duration((end - start).whole_milliseconds() as i64),
            since: None,
        },
        (Some(start), None) => Took {
            text: duration((OffsetDateTime::now_utc() - start).whole_milliseconds() as i64),
            since: Some(rfc3339(start)),
        },
        _ => Took {
            text: String::new(),
            since: None,
        },
    }
}

/// "850 ms", "4.2 s", "3 min 05 s", "1 h 02 min".
pub(super) fn duration(ms: i64) -> String {
    let ms = ms.max(0);
    match ms {
        0..=999 => format!("{ms} ms"),
        1_000..=59_999 => format!("{:.1} s", ms as f64 / 1000.0),
        60_000..=3_599_999 => format!("{} min {:02} s", ms / 60_000, ms / 1000 % 60),
        _ => format!("{} h {:02} min", ms / 3_600_000, ms / 60_000 % 60),
    }
}

/// A state as people read it: "awaiting input", not `awaiting_input`.
pub(super) fn label(state: &str) -> String {
    state.replace('_', " ")
}

pub(super) struct ValidationRow {
    pub(super) id: i64,
    pub(super) status: ValidationStatus,
    pub(super) label: String,
    /// The head commit's title, once checkout read it.
    pub(super) title: String,
    pub(super) started_by: String,
    pub(super) branch: String,
    pub(super) pr: Option<i64>,
    /// A setup trial ("Save and run setup"): not counted in the pass rate.
    pub(super) trial: bool,
    pub(super) short_sha: String,
    pub(super) when: When,
    pub(super) took: Took,
}

pub(super) fn validation_row(v: &ValidationRecord) -> ValidationRow {
    let started_by = match (&v.started_by, v.pr) {
        (Some(by), _) => by.clone(),
        (None, Some(pr)) => format!("pull request #{pr}"),
        (None, None) => "a person".into(),
    };
    let title = v
        .commit_title
        .clone()
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| format!("Validation #{}", v.id));
    let started_by = match v.commit_author.as_deref().filter(|a| !a.is_empty()) {
        Some(author) => format!("{author} · started by {started_by}"),
        None => format!("started by {started_by}"),
    };
    ValidationRow {
        id: v.id.0,
        status: v.status,
        label: label(v.status.as_str()),
        title,
        started_by,
        branch: v.branch.clone().unwrap_or_default(),
        pr: v.pr,
        trial: v.setup_trial,
        short_sha: v.sha.chars().take(7).collect(),
        when: when(v.created_at),
        took: took(v.started_at, v.finished_at),
    }
}

pub(super) struct RunRow {
    pub(super) id: i64,
    pub(super) status: String,
    pub(super) label: String,
    pub(super) goal_line: String,
    pub(super) agent: String,
    pub(super) started_by: String,
    pub(super) branch: String,
    pub(super) pr: Option<i64>,
    /// The pull request on GitHub, beside its page here.
    pub(super) github_url: Option<String>,
    pub(super) when: When,
    pub(super) took: Took,
}

pub(super) fn run_row(r: &RunRecord) -> RunRow {
    let finished = r.status.is_final().then_some(r.updated_at);
    RunRow {
        id: r.id,
        status: r.status.as_str().to_owned(),
        label: label(r.status.as_str()),
        goal_line: r
            .goal
            .lines()
            .next()
            .unwrap_or("")
            .chars()
            .take(100)
            .collect(),
        agent: r.agent.to_string(),
        started_by: r.started_by.clone().unwrap_or_else(|| "a person".into()),
        branch: r.branch.clone().unwrap_or_default(),
        pr: r.pr_number,
        github_url: r.pr_url.clone().filter(|u| u.starts_with("https://")),
        when: when(r.created_at),
        took: took(Some(r.created_at), finished),
    }
}

pub(super) struct Bar {
    pub(super) id: i64,
    pub(super) x: u32,
    pub(super) y: f64,
    pub(super) height: f64,
    pub(super) status: String,
    pub(super) duration: String,
}

/// The last validations' durations (setup trials left out) as bars coloured by outcome (oldest left, in fixed slots
/// so that a few validations are not stretched into hairlines), and the pass rate.
pub(super) struct Chart {
    pub(super) finished: usize,
    pub(super) pass_rate: u32,
    pub(super) bars: Vec<Bar>,
}

pub(super) const CHART_SLOTS: u32 = 30;

/// `recent`: (id, status, duration in ms), newest first.
pub(super) fn chart<'a>(recent: impl Iterator<Item = (i64, &'a str, Option<i64>)>) -> Chart {
    let finished: Vec<(i64, &str, i64)> = recent
        .filter(|(_, status, _)| matches!(*status, "passed" | "failed" | "error"))
        .filter_map(|(id, status, ms)| Some((id, status, ms?)))
        .take(CHART_SLOTS as usize)
        .collect();
    let longest = finished.iter().map(|v| v.2).max().unwrap_or(1).max(1) as f64;
    let passed = finished.iter().filter(|v| v.1 == "passed").count();
    let bars = finished
        .iter()
        .rev()
        .enumerate()
        .map(|(slot, &(id, status, ms))| {
            // A square-root scale with a floor: one long validation does not flatten the
            // others into hairlines.
            let height = 14.0 + 78.0 * (ms as f64 / longest).sqrt();
            Bar {
                id,
                x: slot as u32 * 10,
                y: 100.0 - height,
                height,
                status: status.to_owned(),
                duration: duration(ms),
            }
        })
        .collect();
    Chart {
        finished: finished.len(),
        pass_rate: (passed * 100).checked_div(finished.len()).unwrap_or(0) as u32,
        bars,
    }
}

#[cfg(test)]
mod tests {
    use super::{chart, duration, label, when};
    use time::macros::datetime;

    #[test]
    fn moments_carry_an_iso_8601_attribute_and_a_readable_title() {
        let at = when(datetime!(2026-03-04 05:06:07.891 +02:00));
        assert_eq!(at.exact, "2026-03-04T03:06:07Z");
        assert_eq!(at.title, "2026-03-04 03:06:07 UTC");
        assert!(at.ago.ends_with("ago"), "{}", at.ago);
    }

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(duration(850), "850 ms");
        assert_eq!(duration(4_240), "4.2 s");
        assert_eq!(duration(185_000), "3 min 05 s");
        assert_eq!(duration(3_720_000), "1 h 02 min");
        assert_eq!(label("awaiting_input"), "awaiting input");
    }

    #[test]
    fn the_chart_keeps_finished_validations_in_fixed_slots_oldest_left() {
        let recent = [
            (4, "running", None),
            (3, "failed", Some(2_000)),
            (2, "passed", Some(1_000)),
            (1, "cancelled", Some(10)),
        ];
        let chart = chart(recent.into_iter());
        assert_eq!(chart.finished, 2);
        assert_eq!(chart.pass_rate, 50);
        let slots: Vec<(i64, u32)> = chart.bars.iter().map(|b| (b.id, b.x)).collect();
        assert_eq!(slots, [(2, 0), (3, 10)]);
        assert!(chart.bars[1].height > chart.bars[0].height);
    }
}
