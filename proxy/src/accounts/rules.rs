//! Repository rules of members and robots: a glob over repository names and the actions it allows.
//!
//! Globs match whole `/`-separated segments, case-sensitively (repository names are lower case, so a
//! pattern with upper case letters is refused rather than silently matching nothing):
//!
//! - `*` matches any characters within one segment, never a `/`, and at least one character as a whole
//!   segment: `team/*` matches `team/a` but not `team`, `team/a/b` or `teamx/a`; `team-*/app` matches
//!   `team-a/app`.
//! - `**` as the last segment matches one or more segments: `team/**` matches `team/a` and `team/a/b`, not
//!   `team` itself. `**` elsewhere, or inside a segment, is refused.
//! - `.` and `..` segments never match (names with them are refused before authorization anyway).

use regbridge::auth::Action;
use regbridge_providers::local::Access;
use serde::{Deserialize, Serialize};

/// The `type` of a token entry whose `name` is a glob of these rules (server-wide helper credentials of a
/// member or robot, `POST /admin/v1/credentials/server`). The local provider's own [`Access::allows`]
/// ignores this type, so only the proxy's authorization, which knows the globs, honours it.
pub const GLOB_ACCESS: &str = "repository-glob";

/// One rule: the repositories it covers and what it allows there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// A glob over repository names, such as `team/*` or `team/**`.
    pub repositories: String,
    /// Any of `pull`, `push`, `delete`.
    pub actions: Vec<String>,
}

impl Rule {
    /// Checks the glob and the actions; the message says what to write instead.
    pub fn check(&self) -> Result<(), String> {
        check_glob(&self.repositories)?;
        if self.actions.is_empty() {
            return Err(format!("the rule for {:?} names no action; use pull, push or delete", self.repositories));
        }
        for action in &self.actions {
            if parse_action(action).is_none() {
                return Err(format!("{action:?} is not an action; use pull, push or delete"));
            }
        }
        Ok(())
    }

    /// Whether this rule allows `action` on `repo`.
    pub fn allows(&self, action: Action, repo: &str) -> bool {
        self.actions.iter().any(|a| a == action.as_str()) && glob_matches(&self.repositories, repo)
    }

    /// Parses the command line's `GLOB=ACTION,ACTION` (`team/*=pull,push`).
    pub fn parse_flag(text: &str) -> Result<Rule, String> {
        let (glob, actions) = text
            .split_once('=')
            .ok_or_else(|| format!("{text:?} is not a rule; write it as GLOB=ACTIONS, such as 'team/*=pull,push'"))?;
        let rule = Rule {
            repositories: glob.trim().to_owned(),
            actions: actions.split(',').map(|a| a.trim().to_owned()).filter(|a| !a.is_empty()).collect(),
        };
        rule.check()?;
        Ok(rule)
    }
}

/// Token entries carrying exactly `rules` (with `pull_only`, only their `pull`; rules left with no action are
/// dropped): what a member's or robot's server-wide credentials may do, never more.
pub fn token_access(rules: &[Rule], pull_only: bool) -> Vec<Access> {
    rules
        .iter()
        .filter_map(|rule| {
            let actions: Vec<String> =
                rule.actions.iter().filter(|a| !pull_only || a.as_str() == "pull").cloned().collect();
            (!actions.is_empty()).then(|| Access { kind: GLOB_ACCESS.into(), name: rule.repositories.clone(), actions })
        })
        .collect()
}

/// Whether the token entry `access` of type [`GLOB_ACCESS`] allows `action` on `repo` (other types: false).
pub fn glob_access_allows(access: &Access, action: Action, repo: &str) -> bool {
    access.kind == GLOB_ACCESS
        && access.actions.iter().any(|a| a == action.as_str())
        && check_glob(&access.name).is_ok()
        && glob_matches(&access.name, repo)
}

/// Whether the token entry `access` is still within `rules`: a [`GLOB_ACCESS`] entry needs a rule with the
/// same glob allowing each of its actions; other entries are not the rules' to judge.
pub fn still_given(access: &Access, rules: &[Rule]) -> bool {
    access.kind != GLOB_ACCESS
        || rules.iter().any(|r| r.repositories == access.name && access.actions.iter().all(|a| r.actions.contains(a)))
}

/// `pull`, `push` or `delete` as an [`Action`].
pub fn parse_action(text: &str) -> Option<Action> {
    Action::ALL.into_iter().find(|a| a.as_str() == text)
}

/// Refuses globs that could never match as written, with a message saying why.
pub fn check_glob(glob: &str) -> Result<(), String> {
    let hint = "write it as team/*, team/** or team/app";
    if glob.is_empty() {
        return Err(format!("the repository glob is empty; {hint}"));
    }
    if let Some(c) = glob.chars().find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '.' | '_' | '-' | '/' | '*')) {
        return Err(format!("{glob:?} has {c:?}: repository globs hold lower-case letters, digits, . _ - / and *"));
    }
    let segments: Vec<&str> = glob.split('/').collect();
    for (i, segment) in segments.iter().enumerate() {
        if segment.is_empty() || *segment == "." || *segment == ".." {
            return Err(format!("{glob:?} has an empty, . or .. segment; {hint}"));
        }
        if segment.contains("**") && (*segment != "**" || i + 1 != segments.len()) {
            return Err(format!("{glob:?}: ** is only allowed as the whole last segment; {hint}"));
        }
    }
    Ok(())
}

/// Whether `glob` (see the module documentation) matches the repository name `repo`.
pub fn glob_matches(glob: &str, repo: &str) -> bool {
    let names: Vec<&str> = repo.split('/').collect();
    if names.iter().any(|n| n.is_empty() || *n == "." || *n == "..") {
        return false;
    }
    let globs: Vec<&str> = glob.split('/').collect();
    if globs.last() == Some(&"**") {
        let fixed = &globs[..globs.len() - 1];
        return names.len() > fixed.len() && fixed.iter().zip(&names).all(|(g, n)| segment_matches(g, n));
    }
    globs.len() == names.len() && globs.iter().zip(&names).all(|(g, n)| segment_matches(g, n))
}

/// One segment against a pattern where `*` stands for any run of characters (a whole-segment `*` needs at
/// least one, which every segment has).
fn segment_matches(pattern: &str, name: &str) -> bool {
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    let (mut pi, mut ni) = (0, 0);
    // Where the last `*` was and how much of the name it has taken: on a mismatch it takes one more.
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ni));
            pi += 1;
        } else if pi < p.len() && p[pi] == n[ni] {
            pi += 1;
            ni += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_access_carries_the_rules_and_no_more() {
        let rules = vec![Rule::parse_flag("team/*=pull,push").unwrap(), Rule::parse_flag("ci/**=push").unwrap()];
        let all = token_access(&rules, false);
        let allows = |access: &[Access], action, repo| access.iter().any(|a| glob_access_allows(a, action, repo));
        assert!(allows(&all, Action::Push, "team/a") && allows(&all, Action::Push, "ci/x/y"));
        assert!(!allows(&all, Action::Delete, "team/a"), "no action the rules do not give");
        assert!(!allows(&all, Action::Pull, "ci/x"), "push only there");
        assert!(!allows(&all, Action::Pull, "teamx/a") && !allows(&all, Action::Pull, "team/a/b"));
        let pull = token_access(&rules, true);
        assert_eq!(pull.len(), 1, "a rule without pull is dropped");
        assert!(allows(&pull, Action::Pull, "team/a") && !allows(&pull, Action::Push, "team/a"));
        // The local provider's own check never honours a glob entry, and a glob entry is not `*`.
        assert!(!all[0].allows("team/a", "pull"));
        let every = Access { kind: GLOB_ACCESS.into(), name: "*".into(), actions: vec!["pull".into()] };
        assert!(!glob_access_allows(&every, Action::Pull, "a/b"));
        // Narrowed rules narrow the entries issued before.
        let narrowed = vec![Rule::parse_flag("team/*=pull").unwrap()];
        assert!(!still_given(&all[0], &narrowed) && still_given(&pull[0], &narrowed));
        assert!(!still_given(&all[1], &narrowed), "a removed rule");
    }

    #[test]
    fn one_star_stays_within_a_segment() {
        assert!(glob_matches("team/*", "team/a"));
        assert!(glob_matches("team/*", "team/app-1"));
        assert!(!glob_matches("team/*", "team/a/b"));
        assert!(!glob_matches("team/*", "team"));
        assert!(!glob_matches("team/*", "teamx/a"));
        assert!(!glob_matches("team/*", "xteam/a"));
        assert!(!glob_matches("team/*", "Team/a"));
        assert!(!glob_matches("team/*", "team/../other"));
        assert!(!glob_matches("team/*", "team/.."));
        assert!(!glob_matches("team/*", "team//a"));
        assert!(!glob_matches("*", "a/b"));
        assert!(glob_matches("*", "a"));
    }

    #[test]
    fn two_stars_reach_every_level_below() {
        assert!(glob_matches("team/**", "team/a"));
        assert!(glob_matches("team/**", "team/a/b/c"));
        assert!(!glob_matches("team/**", "team"));
        assert!(!glob_matches("team/**", "teamx/a"));
        assert!(!glob_matches("team/**", "team/../x"));
        assert!(glob_matches("**", "anything/at/all"));
    }

    #[test]
    fn stars_inside_a_segment() {
        assert!(glob_matches("team-*/app", "team-a/app"));
        assert!(!glob_matches("team-*/app", "team/app"));
        assert!(glob_matches("a*b*c", "axxbyyc"));
        assert!(!glob_matches("a*b*c", "axxbyy"));
        assert!(glob_matches("team/app", "team/app"));
        assert!(!glob_matches("team/app", "team/apps"));
    }

    #[test]
    fn bad_globs_are_refused_with_a_reason() {
        for bad in ["", "Team/*", "team/**/x", "team/a**", "team//a", "../x", "team/./a", "team/ a", "team/?"] {
            assert!(check_glob(bad).is_err(), "{bad:?}");
        }
        for good in ["team/*", "team/**", "**", "*", "a-*/b_c.d"] {
            check_glob(good).unwrap();
        }
    }

    #[test]
    fn rules_allow_only_their_actions() {
        let rule = Rule::parse_flag("team/*=pull, push").unwrap();
        assert!(rule.allows(Action::Pull, "team/a"));
        assert!(rule.allows(Action::Push, "team/a"));
        assert!(!rule.allows(Action::Delete, "team/a"));
        assert!(!rule.allows(Action::Pull, "other/a"));
        assert!(Rule::parse_flag("team/*").is_err());
        assert!(Rule::parse_flag("team/*=pull,admin").is_err());
        assert!(Rule::parse_flag("team/*=").is_err());
    }
}
