//! The `X-Registry-Auth` header of the Docker Engine API: base64url of a JSON `AuthConfig`.
//!
//! Docker encodes with URL-safe base64 *with* padding; other clients omit it, and some send standard
//! base64. Decoding accepts all of them and reports malformed input as an error.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::secret::Secret;

/// The JSON `AuthConfig`, with Docker's field names and order. Empty fields are omitted, as Go's
/// `omitempty` does, so encoding matches what the docker CLI sends.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct XRegistryAuth {
    /// User name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub username: String,
    /// Password.
    #[serde(default, skip_serializing_if = "Secret::is_empty")]
    pub password: Secret,
    /// `base64(user:pass)`, an alternative to the two fields above.
    #[serde(default, skip_serializing_if = "Secret::is_empty")]
    pub auth: Secret,
    /// Deprecated e-mail field, still sent by old clients.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub email: String,
    /// The registry these credentials are for.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub serveraddress: String,
    /// An identity (refresh) token, exchanged for a registry token.
    #[serde(default, skip_serializing_if = "Secret::is_empty")]
    pub identitytoken: Secret,
    /// A bearer token sent to the registry as is.
    #[serde(default, skip_serializing_if = "Secret::is_empty")]
    pub registrytoken: Secret,
}

impl XRegistryAuth {
    /// User name and password for `serveraddress`.
    pub fn basic(username: &str, password: Secret, serveraddress: &str) -> Self {
        Self { username: username.into(), password, serveraddress: serveraddress.into(), ..Self::default() }
    }

    /// The header value: URL-safe base64, padded, of the JSON.
    pub fn encode(&self) -> String {
        URL_SAFE.encode(serde_json::to_vec(self).expect("strings serialise"))
    }

    /// Decodes a header value, padded or not, URL-safe or standard alphabet.
    pub fn decode(value: &str) -> Result<Self, Error> {
        let value = value.trim();
        let bytes = [URL_SAFE, URL_SAFE_NO_PAD, STANDARD, STANDARD_NO_PAD]
            .iter()
            .find_map(|engine| engine.decode(value).ok())
            .ok_or_else(|| Error::bad_input("malformed X-Registry-Auth header: not base64"))?;
        let invalid = |e: String| Error::bad_input(format!("malformed X-Registry-Auth header: {e}"));
        // serde would also read a JSON array positionally into the struct; only an object is an AuthConfig.
        match serde_json::from_slice::<serde_json::Value>(&bytes) {
            Ok(value @ serde_json::Value::Object(_)) => {
                serde_json::from_value(value).map_err(|e| invalid(format!("the JSON is invalid ({e})")))
            }
            Ok(_) => Err(invalid("the JSON is not an object".into())),
            Err(e) => Err(invalid(format!("the JSON is invalid ({e})"))),
        }
    }

    /// The user name and password, taken from `username`/`password` or decoded from `auth`.
    pub fn credentials(&self) -> Result<Option<(String, Secret)>, Error> {
        if !self.username.is_empty() || !self.password.is_empty() {
            return Ok(Some((self.username.clone(), self.password.clone())));
        }
        if !self.auth.is_empty() {
            return super::decode_basic(self.auth.expose()).map(Some);
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What `docker` sends for `{"username":"u","password":"p","serveraddress":"r.example"}`.
    const DOCKER_VECTOR: &str = "eyJ1c2VybmFtZSI6InUiLCJwYXNzd29yZCI6InAiLCJzZXJ2ZXJhZGRyZXNzIjoici5leGFtcGxlIn0=";

    #[test]
    fn docker_vector() {
        let decoded = XRegistryAuth::decode(DOCKER_VECTOR).unwrap();
        assert_eq!(decoded.username, "u");
        assert_eq!(decoded.password.expose(), "p");
        assert_eq!(decoded.serveraddress, "r.example");
        assert_eq!(XRegistryAuth::basic("u", Secret::new("p"), "r.example").encode(), DOCKER_VECTOR);
        // Unpadded and standard-alphabet forms decode to the same.
        assert_eq!(XRegistryAuth::decode(DOCKER_VECTOR.trim_end_matches('=')).unwrap(), decoded);
    }

    #[test]
    fn url_safe_alphabet_matters() {
        // A password whose JSON encodes to '-' and '_' in URL-safe base64.
        let a = XRegistryAuth::basic("u", Secret::new("??>>??"), "");
        let encoded = a.encode();
        assert!(encoded.contains('_') || encoded.contains('-'), "{encoded}");
        assert_eq!(XRegistryAuth::decode(&encoded).unwrap(), a);
    }

    #[test]
    fn auth_field_and_tokens() {
        let v = XRegistryAuth { auth: Secret::new("dTpw"), identitytoken: Secret::new("it"), ..Default::default() };
        let back = XRegistryAuth::decode(&v.encode()).unwrap();
        assert_eq!(back.credentials().unwrap().unwrap().0, "u");
        assert_eq!(back.identitytoken.expose(), "it");
        assert_eq!(XRegistryAuth::default().credentials().unwrap(), None);
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        for bad in ["", "!!!", "e30", "bm90IGpzb24", "WyJhcnJheSJd"] {
            let r = XRegistryAuth::decode(bad);
            // `e30` is `{}`: valid and empty.
            if bad == "e30" {
                assert_eq!(r.unwrap(), XRegistryAuth::default());
            } else {
                assert!(r.is_err(), "{bad}");
            }
        }
    }

    proptest! {
        #[test]
        fn round_trip(user in "\\PC{0,30}", pass in "\\PC{0,60}", server in "[a-z0-9.:]{0,30}", email in "\\PC{0,10}",
                      token in "\\PC{0,40}") {
            let v = XRegistryAuth {
                username: user, password: Secret::new(pass), email, serveraddress: server,
                registrytoken: Secret::new(token), ..Default::default()
            };
            let encoded = v.encode();
            prop_assert_eq!(&XRegistryAuth::decode(&encoded).unwrap(), &v);
            prop_assert_eq!(&XRegistryAuth::decode(encoded.trim_end_matches('=')).unwrap(), &v);
        }

        #[test]
        fn decode_never_panics(s in "\\PC{0,200}") {
            let _ = XRegistryAuth::decode(&s);
        }
    }
}
