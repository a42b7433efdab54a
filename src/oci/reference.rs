//! Manifest references: the `<reference>` of `/v2/<name>/manifests/<reference>`, a tag or a digest.
//!
//! Full image references (`registry/name:tag@digest`) are parsed by `oci-spec`'s
//! [`ImageReference`](crate::oci::ImageReference), which follows the same grammar docker uses.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::digest::Digest;
use super::name::Tag;
use crate::error::Error;

/// A tag or a digest naming a manifest within a repository.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum Reference {
    /// A mutable tag.
    Tag(Tag),
    /// An immutable digest.
    Digest(Digest),
}

impl Reference {
    /// Parses a reference: anything with a `:` is a digest (tags cannot contain one), the rest a tag.
    pub fn parse(s: &str) -> Result<Self, Error> {
        if s.contains(':') { Digest::parse(s).map(Reference::Digest) } else { Tag::parse(s).map(Reference::Tag) }
    }

    /// The digest, when the reference is one.
    pub fn digest(&self) -> Option<&Digest> {
        match self {
            Reference::Digest(d) => Some(d),
            Reference::Tag(_) => None,
        }
    }

    /// The tag, when the reference is one.
    pub fn tag(&self) -> Option<&Tag> {
        match self {
            Reference::Tag(t) => Some(t),
            Reference::Digest(_) => None,
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Tag(t) => t.fmt(f),
            Reference::Digest(d) => d.fmt(f),
        }
    }
}

impl FromStr for Reference {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::parse(s)
    }
}

impl From<Digest> for Reference {
    fn from(d: Digest) -> Self {
        Reference::Digest(d)
    }
}

impl From<Tag> for Reference {
    fn from(t: Tag) -> Self {
        Reference::Tag(t)
    }
}

impl Serialize for Reference {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Reference {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::OciErrorCode;
    use crate::oci::ImageReference;

    #[test]
    fn tag_or_digest() {
        assert!(matches!(Reference::parse("v1").unwrap(), Reference::Tag(_)));
        let d = format!("sha256:{}", "0".repeat(64));
        assert_eq!(Reference::parse(&d).unwrap().digest().unwrap().to_string(), d);
        assert_eq!(Reference::parse("sha256:abc").unwrap_err().code(), OciErrorCode::DigestInvalid);
        assert_eq!(Reference::parse("-x").unwrap_err().code(), OciErrorCode::TagInvalid);
    }

    #[test]
    fn full_image_references_use_oci_spec() {
        let r: ImageReference = "127.0.0.1:5000/team/app:v1".parse().unwrap();
        assert_eq!(r.registry(), "127.0.0.1:5000");
        assert_eq!(r.repository(), "team/app");
        assert_eq!(r.tag(), Some("v1"));
        let hub: ImageReference = "alpine".parse().unwrap();
        assert_eq!(hub.repository(), "library/alpine");
    }
}
