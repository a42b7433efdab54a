//! Principals: who may do what. Human users with a role (`admin`, or `member` with repository rules) and
//! robot accounts (`robot$NAME`, rules and an expiry), stored in `DATA_DIR/accounts.db` ([`store`]).
//!
//! Users of `users.json` and of the TOML `[users]` table are admins; they are not in the database and the
//! management API does not change them. Robots are never admins, so they cannot manage accounts.
//! Passwords and robot secrets are argon2 hashes, verified by [`crate::users::Users`] (one verifier, one
//! cache, one set of login limits for every kind of account).

pub mod rules;
pub mod store;

use chrono::{DateTime, Utc};
use regbridge::auth::Action;
use serde::{Deserialize, Serialize};

pub use rules::Rule;
pub use store::{Account, AccountError, AccountStore};

/// A configured user (`users.json` or the `[users]` table: an admin with a password hash) as listings
/// show it, beside the accounts of the store.
pub fn configured_view(name: &str) -> serde_json::Value {
    serde_json::json!({ "name": name, "kind": "user", "role": "admin", "rules": [], "configured": true })
}

/// Why a configured user cannot be created, changed or removed here (HTTP 409, exit 1).
pub fn configured_conflict(name: &str) -> AccountError {
    AccountError::Conflict(format!(
        "{name:?} is a configured user (users.json or the [users] table of the configuration); change it there"
    ))
}

/// Robot account names start with this (`robot$ci`), so they never collide with a user's.
pub const ROBOT_PREFIX: &str = "robot$";

/// A human user or a robot account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A person, with a password.
    User,
    /// An automated client, with a generated secret and an expiry.
    Robot,
}

/// What a user may do in general.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, including managing accounts.
    Admin,
    /// What the account's rules allow, on repositories only.
    Member,
}

impl Role {
    /// `admin` or `member`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }

    /// Parses `admin` or `member`.
    pub fn parse(text: &str) -> Result<Role, String> {
        match text {
            "admin" => Ok(Role::Admin),
            "member" => Ok(Role::Member),
            other => Err(format!("{other:?} is not a role; use admin or member")),
        }
    }
}

/// An authenticated caller: what authorization decides on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The user name, or `robot$NAME`.
    pub name: String,
    /// User or robot.
    pub kind: Kind,
    /// Admin or member (robots are always members).
    pub role: Role,
    /// What a member may do.
    pub rules: Vec<Rule>,
    /// When a robot stops working; `None` for users and robots that never expire.
    pub expires_at: Option<DateTime<Utc>>,
}

impl Principal {
    /// A configured (file or TOML) user: an admin.
    pub fn configured_admin(name: &str) -> Self {
        Principal { name: name.to_owned(), kind: Kind::User, role: Role::Admin, rules: Vec::new(), expires_at: None }
    }

    /// Whether this principal may do everything, account management included. Robots never may.
    pub fn is_admin(&self) -> bool {
        self.kind == Kind::User && self.role == Role::Admin
    }

    /// Whether the expiry has passed.
    pub fn is_expired(&self) -> bool {
        self.expires_at.is_some_and(|at| at <= Utc::now())
    }

    /// Whether this principal may do `action` on the repository `repo`.
    pub fn may(&self, action: Action, repo: &str) -> bool {
        if self.is_expired() {
            return false;
        }
        self.is_admin() || self.rules.iter().any(|r| r.allows(action, repo))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(kind: Kind, role: Role, rule: &str) -> Principal {
        Principal { name: "m".into(), kind, role, rules: vec![Rule::parse_flag(rule).unwrap()], expires_at: None }
    }

    #[test]
    fn members_may_what_their_rules_say() {
        let m = member(Kind::User, Role::Member, "team/*=pull");
        assert!(m.may(Action::Pull, "team/a"));
        assert!(!m.may(Action::Push, "team/a"));
        assert!(!m.may(Action::Pull, "teamx/a"));
        assert!(!m.may(Action::Pull, "other/x"));
        assert!(!m.is_admin());
    }

    #[test]
    fn robots_are_never_admins_and_stop_at_their_expiry() {
        let mut r = member(Kind::Robot, Role::Admin, "ci/*=push");
        assert!(!r.is_admin());
        assert!(r.may(Action::Push, "ci/a"));
        assert!(!r.may(Action::Push, "other/a"));
        r.expires_at = Some(Utc::now() - chrono::Duration::seconds(1));
        assert!(!r.may(Action::Push, "ci/a"));
        assert!(Principal::configured_admin("admin").may(Action::Delete, "any/thing"));
    }
}
