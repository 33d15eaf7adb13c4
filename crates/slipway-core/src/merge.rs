//! Whether a validated pull request merges, as a pure function of what was read: the pull
//! request as the forge shows it now, the validation, the policy, and who asks. The engine
//! gathers the facts, asks [`decide`], and applies the decision in one place.
//!
//! The rules, in order (the first that applies decides):
//! 1. a validation that did not pass never merges;
//! 2. without auto-merge, only a person's merge does;
//! 3. a merged one is merged already; a closed or draft one does not merge;
//! 4. a head that moved since the validation is validated again, never merged;
//! 5. a pull request that changes its own checks (`.slipway.toml`) is merged by a person;
//! 6. one the forge says will not merge cleanly does not;
//! 7. too few approvals from people who can write hold it;
//! 8. while the forge is still computing whether it can merge, it waits (and is asked again);
//! 9. one validated without its base is validated again merged onto the base;
//! 10. otherwise the exact pair (validated head, validated base) is merged.

use crate::pipeline::MergeMethod;
use crate::policy::PullRequestPolicy;

/// Whether the pull request merges cleanly, as the forge says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mergeable {
    Yes,
    No,
    /// The forge computes it lazily and has not yet (GitHub's `mergeable: null`).
    Computing,
    /// The forge does not say (the local forge): the merge itself decides.
    NotReported,
}

/// The pull request as read from the forge just now.
#[derive(Debug, Clone, Copy)]
pub struct PullFacts<'a> {
    pub open: bool,
    pub merged: bool,
    pub draft: bool,
    pub title: &'a str,
    pub head_sha: &'a str,
    pub head_ref: &'a str,
    pub base_ref: &'a str,
    /// Whether the head branch lives in the base repository (a fork's is never deleted).
    pub head_in_base: bool,
    pub mergeable: Mergeable,
    /// Approvals by people who can write; `None` where the forge has no reviews.
    pub approvals: Option<usize>,
}

/// The validation being acted on.
#[derive(Debug, Clone, Copy)]
pub struct ValidationFacts<'a> {
    pub passed: bool,
    /// The head it validated.
    pub sha: &'a str,
    /// The base commit it was merged onto; `None` when validated alone.
    pub base_sha: Option<&'a str>,
}

/// Whether the pull request changes the checks that judged it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnChecks {
    Unchanged,
    Changed,
    /// Its changed files could not be read: why.
    Unknown(String),
}

#[derive(Debug, Clone)]
pub struct Facts<'a> {
    pub pull: PullFacts<'a>,
    pub validation: ValidationFacts<'a>,
    pub policy: PullRequestPolicy,
    /// A person asked for the merge (auto-merge and the own-checks rule do not apply).
    pub by_hand: bool,
    pub own_checks: OwnChecks,
}

/// What the merge controller does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nothing to do: the report says why.
    NotMerged { why: String },
    /// The pull request shows as merged (an earlier attempt whose answer was lost, or a
    /// person): nothing to do, and nothing to undo.
    AlreadyMerged,
    /// The pull request as it is now is validated; the report says why.
    Revalidate { why: String },
    /// The forge is still computing mergeability: ask again later.
    WaitForMergeability,
    /// Merge exactly this pair.
    Merge(Merge),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merge {
    pub sha: String,
    pub base_sha: String,
    pub method: MergeMethod,
    pub title: String,
    /// Delete the head branch afterwards (it is in the base repository).
    pub delete_branch: bool,
    /// Deleting was asked for but the branch is a fork's: say it is left to its owner.
    pub fork_branch_kept: bool,
}

pub fn decide(facts: &Facts) -> Decision {
    let (pull, validation, policy) = (&facts.pull, &facts.validation, &facts.policy);
    let not = |why: &str| Decision::NotMerged {
        why: why.to_owned(),
    };
    if !validation.passed {
        return not("the validation did not pass");
    }
    if !policy.auto_merge && !facts.by_hand {
        return not("auto-merge is off for this project, so a person merges it");
    }
    if pull.merged {
        return Decision::AlreadyMerged;
    }
    if !pull.open {
        return not("the pull request is not open");
    }
    if pull.draft {
        return not("the pull request is a draft");
    }
    if pull.head_sha != validation.sha {
        return Decision::Revalidate {
            why: format!(
                "the head moved to {}; that commit is validated next",
                short(pull.head_sha)
            ),
        };
    }
    if !facts.by_hand {
        match &facts.own_checks {
            OwnChecks::Unchanged => {}
            OwnChecks::Changed => {
                return not("it changes its own checks (.slipway.toml), so a person reads that change and merges it")
            }
            OwnChecks::Unknown(error) => {
                return not(&format!(
                    "its changed files could not be read ({error}), so whether it changes its own checks is unknown"
                ))
            }
        }
    }
    if pull.mergeable == Mergeable::No {
        return not(&format!(
            "not mergeable ({} into {})",
            pull.head_ref, pull.base_ref
        ));
    }
    if let Some(approvals) = pull.approvals {
        if approvals < policy.required_approvals as usize {
            return not(&format!(
                "{approvals} of the {} required approvals (from people who can write to the repository)",
                policy.required_approvals
            ));
        }
    }
    if pull.mergeable == Mergeable::Computing {
        return Decision::WaitForMergeability;
    }
    let Some(base_sha) = validation.base_sha else {
        return Decision::Revalidate {
            why: "it was validated without its base; validating it merged onto the base".into(),
        };
    };
    let delete = policy.delete_branch_after_merge;
    Decision::Merge(Merge {
        sha: validation.sha.to_owned(),
        base_sha: base_sha.to_owned(),
        method: policy.merge_method,
        title: pull.title.to_owned(),
        delete_branch: delete && pull.head_in_base,
        fork_branch_kept: delete && !pull.head_in_base,
    })
}

/// The report's sentence for a decision that merged nothing.
pub fn not_merged(why: &str) -> String {
    format!("Not merged: {why}.")
}

/// The report's sentence for a pull request found merged.
pub const ALREADY_MERGED: &str =
    "The pull request is merged already (an earlier attempt whose answer was lost, or a person).";

/// The report's sentence for a merge of exactly the validated pair.
pub fn merged(merge_sha: &str, merge: &Merge, base_ref: &str) -> String {
    let mut said = format!(
        "Merged as {} (exactly the validated head {} onto {base_ref} at {}).",
        short(merge_sha),
        short(&merge.sha),
        short(&merge.base_sha)
    );
    if merge.fork_branch_kept {
        said.push_str(" The branch is in a fork: it is left to its owner.");
    }
    said
}

/// The report's sentence when the base moved between the validation and the merge.
pub fn base_moved(base_ref: &str, to: &str, validated_on: &str) -> String {
    format!(
        "Not merged: {base_ref} moved to {} since the validation (on {}); validating the pull \
         request merged onto it.",
        short(to),
        short(validated_on)
    )
}

/// What the merge step shows while a merge or report waits for its next attempt.
pub fn retrying(why: &str) -> String {
    format!("retrying: {why}")
}

/// The first 12 characters of a commit id.
pub fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "1111111111111111111111111111111111111111";
    const BASE: &str = "2222222222222222222222222222222222222222";
    const OTHER: &str = "3333333333333333333333333333333333333333";

    fn policy() -> PullRequestPolicy {
        PullRequestPolicy {
            auto_merge: true,
            merge_method: MergeMethod::Squash,
            max_fix_attempts: 3,
            required_approvals: 1,
            delete_branch_after_merge: true,
        }
    }

    /// A pull request that merges: every rule holds.
    fn ready() -> Facts<'static> {
        Facts {
            pull: PullFacts {
                open: true,
                merged: false,
                draft: false,
                title: "Add b (#7)",
                head_sha: HEAD,
                head_ref: "feature",
                base_ref: "main",
                head_in_base: true,
                mergeable: Mergeable::Yes,
                approvals: Some(1),
            },
            validation: ValidationFacts {
                passed: true,
                sha: HEAD,
                base_sha: Some(BASE),
            },
            policy: policy(),
            by_hand: false,
            own_checks: OwnChecks::Unchanged,
        }
    }

    fn merge() -> Merge {
        Merge {
            sha: HEAD.into(),
            base_sha: BASE.into(),
            method: MergeMethod::Squash,
            title: "Add b (#7)".into(),
            delete_branch: true,
            fork_branch_kept: false,
        }
    }

    fn not(why: &str) -> Decision {
        Decision::NotMerged { why: why.into() }
    }

    #[test]
    fn every_rule_decides_its_case() {
        type Change = fn(&mut Facts<'static>);
        let cases: Vec<(&str, Change, Decision)> = vec![
            ("all hold", |_| {}, Decision::Merge(merge())),
            (
                "1: not passed",
                |f| f.validation.passed = false,
                not("the validation did not pass"),
            ),
            (
                "2: auto-merge off",
                |f| f.policy.auto_merge = false,
                not("auto-merge is off for this project, so a person merges it"),
            ),
            (
                "2: auto-merge off, by hand",
                |f| {
                    f.policy.auto_merge = false;
                    f.by_hand = true;
                },
                Decision::Merge(merge()),
            ),
            (
                "3: merged already",
                |f| {
                    f.pull.merged = true;
                    f.pull.open = false;
                },
                Decision::AlreadyMerged,
            ),
            (
                "3: closed",
                |f| f.pull.open = false,
                not("the pull request is not open"),
            ),
            (
                "3: draft",
                |f| f.pull.draft = true,
                not("the pull request is a draft"),
            ),
            (
                "4: head moved",
                |f| f.pull.head_sha = OTHER,
                Decision::Revalidate {
                    why: "the head moved to 333333333333; that commit is validated next".into(),
                },
            ),
            (
                "5: changes its own checks",
                |f| f.own_checks = OwnChecks::Changed,
                not("it changes its own checks (.slipway.toml), so a person reads that change and merges it"),
            ),
            (
                "5: own checks unknown",
                |f| f.own_checks = OwnChecks::Unknown("GitHub answered 500".into()),
                not("its changed files could not be read (GitHub answered 500), so whether it changes its own checks is unknown"),
            ),
            (
                "5: a person may merge a change of the checks",
                |f| {
                    f.own_checks = OwnChecks::Changed;
                    f.by_hand = true;
                },
                Decision::Merge(merge()),
            ),
            (
                "6: not mergeable",
                |f| f.pull.mergeable = Mergeable::No,
                not("not mergeable (feature into main)"),
            ),
            (
                "7: too few approvals",
                |f| f.pull.approvals = Some(0),
                not("0 of the 1 required approvals (from people who can write to the repository)"),
            ),
            (
                "7: a forge without reviews",
                |f| f.pull.approvals = None,
                Decision::Merge(merge()),
            ),
            (
                "7: approvals count even by hand",
                |f| {
                    f.pull.approvals = Some(0);
                    f.by_hand = true;
                },
                not("0 of the 1 required approvals (from people who can write to the repository)"),
            ),
            (
                "8: mergeability still computed",
                |f| f.pull.mergeable = Mergeable::Computing,
                Decision::WaitForMergeability,
            ),
            (
                "8: too few approvals are said before waiting",
                |f| {
                    f.pull.mergeable = Mergeable::Computing;
                    f.pull.approvals = Some(0);
                },
                not("0 of the 1 required approvals (from people who can write to the repository)"),
            ),
            (
                "8: a forge that does not say merges",
                |f| f.pull.mergeable = Mergeable::NotReported,
                Decision::Merge(merge()),
            ),
            (
                "9: validated without its base",
                |f| f.validation.base_sha = None,
                Decision::Revalidate {
                    why: "it was validated without its base; validating it merged onto the base"
                        .into(),
                },
            ),
            (
                "10: a fork's branch is kept",
                |f| f.pull.head_in_base = false,
                Decision::Merge(Merge {
                    delete_branch: false,
                    fork_branch_kept: true,
                    ..merge()
                }),
            ),
            (
                "10: no deletion asked",
                |f| {
                    f.policy.delete_branch_after_merge = false;
                    f.pull.head_in_base = false;
                },
                Decision::Merge(Merge {
                    delete_branch: false,
                    ..merge()
                }),
            ),
        ];
        for (name, change, expected) in cases {
            let mut facts = ready();
            change(&mut facts);
            assert_eq!(decide(&facts), expected, "{name}");
        }
    }

    #[test]
    fn an_earlier_rule_wins_over_a_later_one() {
        let mut facts = ready();
        facts.validation.passed = false;
        facts.pull.head_sha = OTHER;
        facts.pull.mergeable = Mergeable::No;
        assert_eq!(decide(&facts), not("the validation did not pass"));
        let mut facts = ready();
        facts.pull.draft = true;
        facts.pull.head_sha = OTHER;
        assert_eq!(decide(&facts), not("the pull request is a draft"));
    }

    #[test]
    fn the_merge_is_always_the_validated_pair() {
        let Decision::Merge(merge) = decide(&ready()) else {
            panic!("ready merges");
        };
        assert_eq!((merge.sha.as_str(), merge.base_sha.as_str()), (HEAD, BASE));
    }

    #[test]
    fn the_sentences_name_short_commits() {
        assert_eq!(
            merged(OTHER, &merge(), "main"),
            "Merged as 333333333333 (exactly the validated head 111111111111 onto main at 222222222222)."
        );
        let kept = Merge {
            fork_branch_kept: true,
            ..merge()
        };
        assert!(merged(OTHER, &kept, "main").ends_with("it is left to its owner."));
        assert_eq!(not_merged("it is a draft"), "Not merged: it is a draft.");
        assert!(
            base_moved("main", OTHER, BASE).starts_with("Not merged: main moved to 333333333333")
        );
        assert_eq!(
            retrying("GitHub answered 502"),
            "retrying: GitHub answered 502"
        );
    }
}
