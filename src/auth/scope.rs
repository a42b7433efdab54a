//! Token scopes of the Docker token flow (`repository:team/app:pull,push`, `registry:catalog:*`), as
//! typed values: what a challenge asks for, what the token endpoint grants, what a cached credential or
//! upstream token covers. Parsed once from text and formatted once into text; nothing else builds or
//! splits scope strings (distribution's `docs/spec/auth/scope.md`).

use std::fmt;

use crate::error::Error;
use crate::oci::RepositoryName;

/// One thing a client does to a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// Read manifests, blobs, tags and referrers.
    Pull,
    /// Upload blobs and manifests (a push also reads: clients check what exists first).
    Push,
    /// Delete manifests, tags or blobs.
    Delete,
}

impl Action {
    /// Every action, in the order they are written.
    pub const ALL: [Action; 3] = [Action::Pull, Action::Push, Action::Delete];

    /// The token action name.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Pull => "pull",
            Action::Push => "push",
            Action::Delete => "delete",
        }
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// A set of [`Action`]s.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Actions(u8);

impl Actions {
    /// No action.
    pub const NONE: Actions = Actions(0);
    /// Pull, push and delete (`*`).
    pub const ALL: Actions = Actions(0b111);

    /// The set holding `actions`.
    pub fn of(actions: &[Action]) -> Self {
        Actions(actions.iter().fold(0, |bits, a| bits | a.bit()))
    }

    /// What a request for `action` needs: a push needs pull too, since every client reads before it writes.
    pub fn needed_for(action: Action) -> Self {
        match action {
            Action::Push => Actions::of(&[Action::Pull, Action::Push]),
            a => Actions::of(&[a]),
        }
    }

    /// Whether `action` is in the set.
    pub fn contains(self, action: Action) -> bool {
        self.0 & action.bit() != 0
    }

    /// Whether every action of `other` is in the set.
    pub fn covers(self, other: Actions) -> bool {
        self.0 & other.0 == other.0
    }

    /// The actions in both sets.
    pub fn intersect(self, other: Actions) -> Actions {
        Actions(self.0 & other.0)
    }

    /// The actions in either set.
    pub fn union(self, other: Actions) -> Actions {
        Actions(self.0 | other.0)
    }

    /// True for the empty set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The actions, in [`Action::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Action> {
        Action::ALL.into_iter().filter(move |a| self.contains(*a))
    }

    /// Parses `pull,push`; `*` is every action. Unknown action names are ignored, as token servers do.
    pub fn parse(text: &str) -> Self {
        text.split(',').map(str::trim).fold(Actions::NONE, |set, a| match a {
            "*" => Actions::ALL,
            "pull" => set.union(Actions::of(&[Action::Pull])),
            "push" => set.union(Actions::of(&[Action::Push])),
            "delete" => set.union(Actions::of(&[Action::Delete])),
            _ => set,
        })
    }
}

impl fmt::Display for Actions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.iter().map(Action::as_str).collect();
        f.write_str(&names.join(","))
    }
}

impl fmt::Debug for Actions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Actions({self})")
    }
}

/// One scope of a token request or challenge.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// `repository:<name>:<actions>`.
    Repository {
        /// The repository.
        name: RepositoryName,
        /// What may be done there.
        actions: Actions,
    },
    /// `registry:catalog:*`: listing every repository.
    Catalog,
}

impl Scope {
    /// `repository:<name>:<actions>`.
    pub fn repository(name: RepositoryName, actions: Actions) -> Self {
        Scope::Repository { name, actions }
    }

    /// The scope a request for `action` on `name` needs.
    pub fn for_action(name: RepositoryName, action: Action) -> Self {
        Scope::Repository { name, actions: Actions::needed_for(action) }
    }

    /// Parses one scope. A repository scope needs a valid name; `registry:catalog:*` is the only registry
    /// scope. Anything else is an error naming what was wrong.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let bad = |why: &str| Error::bad_input(format!("invalid scope {:?}: {why}", truncate(text)));
        let (kind, rest) = text.split_once(':').ok_or_else(|| bad("expected type:name:actions"))?;
        // The name may carry a port-qualified host in other registries' scopes; ours never does, so the
        // actions are what follows the last colon.
        let (name, actions) = rest.rsplit_once(':').ok_or_else(|| bad("expected type:name:actions"))?;
        match kind {
            "repository" => {
                let name = RepositoryName::parse(name).map_err(|e| bad(&e.to_string()))?;
                Ok(Scope::Repository { name, actions: Actions::parse(actions) })
            }
            "registry" if name == "catalog" => Ok(Scope::Catalog),
            _ => Err(bad("the type must be repository, or registry:catalog")),
        }
    }

    /// Parses a space-separated list (a challenge's `scope` parameter, or repeated `scope=` values),
    /// skipping the entries that are not valid scopes.
    pub fn parse_list<'a>(texts: impl IntoIterator<Item = &'a str>) -> Vec<Scope> {
        texts.into_iter().flat_map(str::split_whitespace).filter_map(|s| Scope::parse(s).ok()).collect()
    }

    /// The repository a repository scope names.
    pub fn repository_name(&self) -> Option<&RepositoryName> {
        match self {
            Scope::Repository { name, .. } => Some(name),
            Scope::Catalog => None,
        }
    }
}

fn truncate(text: &str) -> String {
    text.chars().take(300).collect()
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Repository { name, actions } => write!(f, "repository:{name}:{actions}"),
            Scope::Catalog => f.write_str("registry:catalog:*"),
        }
    }
}

/// Formats scopes as a challenge's space-separated `scope` parameter.
pub fn format_list(scopes: &[Scope]) -> String {
    scopes.iter().map(Scope::to_string).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for text in ["repository:a/b:pull", "repository:a:pull,push", "repository:x:delete", "registry:catalog:*"] {
            assert_eq!(Scope::parse(text).unwrap().to_string(), text);
        }
        assert_eq!(Scope::parse("repository:a:*").unwrap().to_string(), "repository:a:pull,push,delete");
        assert_eq!(Scope::parse("repository:a:push,pull").unwrap().to_string(), "repository:a:pull,push");
        assert_eq!(Scope::parse("repository:a:frobnicate").unwrap().to_string(), "repository:a:");
    }

    #[test]
    fn refuses() {
        for bad in ["", "repository", "repository:a", "repository:../x:pull", "registry:other:*", "user:a:pull"] {
            assert!(Scope::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Scope::parse_list(["repository:a:pull bogus", "registry:catalog:*"]).len(), 2);
    }

    #[test]
    fn sets() {
        let pull = Actions::of(&[Action::Pull]);
        let push = Actions::needed_for(Action::Push);
        assert!(push.covers(pull) && !pull.covers(push));
        assert_eq!(Actions::ALL.intersect(pull), pull);
        assert!(Actions::NONE.is_empty());
        assert_eq!(
            format_list(&[Scope::Catalog, Scope::for_action("a".parse().unwrap(), Action::Push)]),
            "registry:catalog:* repository:a:pull,push"
        );
    }
}
