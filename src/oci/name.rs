//! Repository names and tags, validated by the distribution spec's grammar (`spec.md`, "Pulling manifests"):
//!
//! ```text
//! name      = component ("/" component)*          at most 255 characters
//! component = [a-z0-9]+ ((\.|_|__|-+) [a-z0-9]+)*
//! tag       = [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}
//! ```

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, OciErrorCode};

/// The longest repository name accepted. Many clients limit host plus name to 255 characters, so a name
/// longer than this could never be pulled.
pub const MAX_NAME_LEN: usize = 255;

/// The longest tag the spec allows.
pub const MAX_TAG_LEN: usize = 128;

/// A validated repository name such as `team/app` or `library/alpine`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepositoryName(String);

impl RepositoryName {
    /// Validates `s` against the spec's grammar, saying what is wrong and how to fix it.
    pub fn parse(s: &str) -> Result<Self, Error> {
        validate_name(s).map_err(|why| {
            Error::invalid(OciErrorCode::NameInvalid, format!("invalid repository name {:?}: {why}", truncate(s)))
        })?;
        Ok(Self(s.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name's `/`-separated components.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    /// `self` joined under `prefix` (`prefix/self`); an empty prefix gives `self`.
    pub fn with_prefix(&self, prefix: &str) -> Result<Self, Error> {
        let prefix = prefix.trim_matches('/');
        if prefix.is_empty() { Ok(self.clone()) } else { Self::parse(&format!("{prefix}/{}", self.0)) }
    }
}

fn truncate(s: &str) -> String {
    if s.chars().count() > 80 { format!("{}...", s.chars().take(80).collect::<String>()) } else { s.to_owned() }
}

fn validate_name(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("the name is empty".into());
    }
    if s.len() > MAX_NAME_LEN {
        return Err(format!("it is {} characters long; the limit is {MAX_NAME_LEN}", s.len()));
    }
    if s.split('/').any(|c| c == "..") || s.contains("..") {
        return Err("\"..\" is not allowed in a repository name".into());
    }
    for (i, component) in s.split('/').enumerate() {
        validate_component(component).map_err(|why| format!("path component {} ({component:?}) {why}", i + 1))?;
    }
    Ok(())
}

fn validate_component(c: &str) -> Result<(), String> {
    if c.is_empty() {
        return Err("is empty: names must not start or end with '/' or contain '//'".into());
    }
    let mut separator = String::new();
    for (i, ch) in c.chars().enumerate() {
        match ch {
            'a'..='z' | '0'..='9' => {
                if !separator.is_empty() {
                    let ok = separator == "."
                        || separator == "_"
                        || separator == "__"
                        || separator.chars().all(|c| c == '-');
                    if !ok {
                        return Err(format!("has the separator {separator:?}; use '.', '_', '__' or dashes"));
                    }
                    separator.clear();
                }
            }
            '.' | '_' | '-' => {
                if i == 0 {
                    return Err(format!("starts with {ch:?}; components start with a-z or 0-9"));
                }
                separator.push(ch);
            }
            'A'..='Z' => return Err(format!("has the upper-case letter {ch:?}; names are lower case")),
            other => return Err(format!("has {other:?}; only a-z, 0-9, '.', '_', '-' and '/' are allowed")),
        }
    }
    if !separator.is_empty() {
        return Err(format!("ends with {separator:?}; components end with a-z or 0-9"));
    }
    Ok(())
}

impl fmt::Display for RepositoryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RepositoryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RepositoryName({})", self.0)
    }
}

impl FromStr for RepositoryName {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::parse(s)
    }
}

impl AsRef<str> for RepositoryName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Serialize for RepositoryName {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for RepositoryName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A validated tag such as `v1.2.3` or `latest`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Tag(String);

impl Tag {
    /// Validates a tag: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
    pub fn parse(s: &str) -> Result<Self, Error> {
        let bad =
            |why: String| Error::invalid(OciErrorCode::TagInvalid, format!("invalid tag {:?}: {why}", truncate(s)));
        let first = s.chars().next().ok_or_else(|| bad("the tag is empty".into()))?;
        if s.len() > MAX_TAG_LEN {
            return Err(bad(format!("it is {} characters long; the limit is {MAX_TAG_LEN}", s.len())));
        }
        if !(first.is_ascii_alphanumeric() || first == '_') {
            return Err(bad(format!("it starts with {first:?}; tags start with a letter, digit or '_'")));
        }
        if let Some(c) = s.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))) {
            return Err(bad(format!("{c:?} is not allowed; use letters, digits, '.', '_' and '-'")));
        }
        Ok(Self(s.to_owned()))
    }

    /// The tag.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn good_names() {
        for n in ["a", "library/alpine", "a.b/c_d/e__f/g---h", "0/1/2", "team/app-1.2", &"a".repeat(255)] {
            assert_eq!(RepositoryName::parse(n).unwrap().as_str(), n);
        }
    }

    #[test]
    fn bad_names_say_why() {
        let long = "a".repeat(300);
        let cases = [
            ("", "empty"),
            ("../x", "\"..\""),
            ("a/../b", "\"..\""),
            ("Upper", "upper-case"),
            (long.as_str(), "300 characters long; the limit is 255"),
            ("/a", "path component 1"),
            ("a/", "path component 2"),
            ("a//b", "is empty"),
            ("a___b", "separator \"___\""),
            ("a.-b", "separator \".-\""),
            ("-a", "starts with '-'"),
            ("a-", "ends with \"-\""),
            ("a b", "has ' '"),
            ("a:b", "has ':'"),
        ];
        for (input, why) in cases {
            let err = RepositoryName::parse(input).unwrap_err();
            assert_eq!(err.code(), OciErrorCode::NameInvalid);
            assert!(err.to_string().contains(why), "{input:?}: {err}");
        }
    }

    #[test]
    fn prefixing() {
        let n = RepositoryName::parse("app").unwrap();
        assert_eq!(n.with_prefix("team/").unwrap().as_str(), "team/app");
        assert_eq!(n.with_prefix("").unwrap().as_str(), "app");
    }

    #[test]
    fn tags() {
        for t in ["latest", "v1.2.3", "_x", "A-b_c.d", &"t".repeat(128)] {
            Tag::parse(t).unwrap();
        }
        for (t, why) in [("", "empty"), (".x", "starts with '.'"), ("a:b", "':'"), (&"t".repeat(129), "limit is 128")] {
            let err = Tag::parse(t).unwrap_err();
            assert_eq!(err.code(), OciErrorCode::TagInvalid);
            assert!(err.to_string().contains(why), "{t}: {err}");
        }
    }

    proptest! {
        #[test]
        fn grammar_names_are_accepted(n in "[a-z0-9]{1,8}((\\.|_|__|-{1,3})[a-z0-9]{1,8}){0,3}(/[a-z0-9]{1,8}((\\.|_|__|-{1,3})[a-z0-9]{1,8}){0,3}){0,4}") {
            prop_assert!(RepositoryName::parse(&n).is_ok());
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,300}") {
            let _ = RepositoryName::parse(&s);
            let _ = Tag::parse(&s);
        }
    }
}
