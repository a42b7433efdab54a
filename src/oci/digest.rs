//! Content digests (`sha256:<64 hex>`, `sha512:<128 hex>`) and a streaming hasher that produces them.
//!
//! distribution-spec `spec.md` and image-spec `descriptor.md` ("Digests"): the encoded part of the registered
//! algorithms is lower-case hex of a fixed length. regbridge accepts exactly sha256 and sha512.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::Digest as _;

use crate::error::{Error, OciErrorCode};

/// A digest algorithm regbridge computes and verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// SHA-256, 64 hex characters. The default everywhere.
    Sha256,
    /// SHA-512, 128 hex characters.
    Sha512,
}

impl Algorithm {
    /// The name used in digests: `sha256` or `sha512`.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// The number of hex characters in a digest of this algorithm.
    pub fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }

    /// A hasher for this algorithm.
    pub fn hasher(self) -> Digester {
        Digester::new(self)
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A validated content digest. `Display` gives the canonical `algorithm:hex` form.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

impl Digest {
    /// Parses `algorithm:hex`, rejecting unknown algorithms, wrong lengths and anything but lower-case hex.
    pub fn parse(s: &str) -> Result<Self, Error> {
        let bad = |why: String| Error::invalid(OciErrorCode::DigestInvalid, format!("invalid digest {s:?}: {why}"));
        let (alg, hex) = s
            .split_once(':')
            .ok_or_else(|| bad("expected ALGORITHM:HEX such as sha256:<64 lower-case hex characters>".into()))?;
        let algorithm = match alg {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            other => return Err(bad(format!("unsupported algorithm {other:?}; use sha256 or sha512"))),
        };
        if hex.len() != algorithm.hex_len() {
            return Err(bad(format!(
                "{algorithm} digests have {} hex characters, this one has {}",
                algorithm.hex_len(),
                hex.len()
            )));
        }
        if let Some(c) = hex.chars().find(|c| !matches!(c, '0'..='9' | 'a'..='f')) {
            let why = if c.is_ascii_hexdigit() {
                format!("hex must be lower case (found {c:?})")
            } else {
                format!("{c:?} is not a hex character")
            };
            return Err(bad(why));
        }
        Ok(Self { algorithm, hex: hex.to_owned() })
    }

    /// The digest of `bytes` under `algorithm`.
    pub fn of(algorithm: Algorithm, bytes: &[u8]) -> Self {
        let mut d = Digester::new(algorithm);
        d.update(bytes);
        d.finish()
    }

    /// The sha256 digest of `bytes`.
    pub fn sha256(bytes: &[u8]) -> Self {
        Self::of(Algorithm::Sha256, bytes)
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The lower-case hex part.
    pub fn hex(&self) -> &str {
        &self.hex
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm, self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

impl FromStr for Digest {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::parse(s)
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Digest::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// An incremental hasher: feed it a stream, then [`Digester::finish`]. sha2 picks the CPU's SHA
/// extensions at run time where they exist.
#[derive(Clone)]
pub enum Digester {
    /// SHA-256 state.
    Sha256(sha2::Sha256),
    /// SHA-512 state.
    Sha512(sha2::Sha512),
}

impl Digester {
    /// A fresh hasher.
    pub fn new(algorithm: Algorithm) -> Self {
        match algorithm {
            Algorithm::Sha256 => Digester::Sha256(sha2::Sha256::new()),
            Algorithm::Sha512 => Digester::Sha512(sha2::Sha512::new()),
        }
    }

    /// The algorithm being computed.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            Digester::Sha256(_) => Algorithm::Sha256,
            Digester::Sha512(_) => Algorithm::Sha512,
        }
    }

    /// Feeds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Digester::Sha256(h) => h.update(bytes),
            Digester::Sha512(h) => h.update(bytes),
        }
    }

    /// The digest of everything fed so far.
    pub fn finish(self) -> Digest {
        let (algorithm, hex) = match self {
            Digester::Sha256(h) => (Algorithm::Sha256, hex::encode(h.finalize())),
            Digester::Sha512(h) => (Algorithm::Sha512, hex::encode(h.finalize())),
        };
        Digest { algorithm, hex }
    }
}

impl fmt::Debug for Digester {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digester({})", self.algorithm())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const EMPTY_SHA256: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn known_vectors() {
        assert_eq!(Digest::sha256(b"").to_string(), EMPTY_SHA256);
        assert_eq!(
            Digest::of(Algorithm::Sha512, b"abc").to_string(),
            "sha512:ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a\
             2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
        );
        // The OCI empty descriptor's digest (image-spec "Guidance for an Empty Descriptor").
        assert_eq!(
            Digest::sha256(b"{}").to_string(),
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
    }

    #[test]
    fn parse_accepts_canonical_forms() {
        let d = Digest::parse(EMPTY_SHA256).unwrap();
        assert_eq!(d.algorithm(), Algorithm::Sha256);
        assert_eq!(d.to_string(), EMPTY_SHA256);
        let long = format!("sha512:{}", "a".repeat(128));
        assert_eq!(Digest::parse(&long).unwrap().algorithm(), Algorithm::Sha512);
    }

    #[test]
    fn parse_rejects_with_a_reason() {
        let cases = [
            ("e3b0c442", "ALGORITHM:HEX"),
            ("md5:d41d8cd98f00b204e9800998ecf8427e", "unsupported algorithm \"md5\""),
            ("sha256:abc", "64 hex characters, this one has 3"),
            (&format!("sha512:{}", "a".repeat(64)), "128 hex characters"),
            (&format!("sha256:{}", "A".repeat(64)), "lower case"),
            (&format!("sha256:{}", "g".repeat(64)), "not a hex character"),
            ("", "ALGORITHM:HEX"),
            (&format!("SHA256:{}", "a".repeat(64)), "unsupported algorithm"),
        ];
        for (input, why) in cases {
            let err = Digest::parse(input).unwrap_err();
            assert_eq!(err.code(), OciErrorCode::DigestInvalid);
            assert!(err.to_string().contains(why), "{input}: {err}");
        }
    }

    #[test]
    fn streaming_equals_one_shot() {
        let mut d = Algorithm::Sha256.hasher();
        d.update(b"hello ");
        d.update(b"world");
        assert_eq!(d.finish(), Digest::sha256(b"hello world"));
    }

    proptest! {
        #[test]
        fn display_parse_round_trip(bytes in proptest::collection::vec(any::<u8>(), 0..256), sha512 in any::<bool>()) {
            let alg = if sha512 { Algorithm::Sha512 } else { Algorithm::Sha256 };
            let d = Digest::of(alg, &bytes);
            let parsed = Digest::parse(&d.to_string()).unwrap();
            prop_assert_eq!(&parsed, &d);
            let json = serde_json::to_string(&d).unwrap();
            prop_assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), d);
        }

        #[test]
        fn parse_never_panics(s in ".{0,200}") {
            let _ = Digest::parse(&s);
        }
    }
}
