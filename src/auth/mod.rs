//! Docker's credential formats: `config.json`, the `X-Registry-Auth` header, Kubernetes
//! `kubernetes.io/dockerconfigjson` Secrets, the credential-helper protocol, and registry server addresses.

pub mod credential_helper;
pub mod docker_config;
pub mod kubernetes;
pub mod scope;
pub mod server;
pub mod x_registry_auth;

pub use credential_helper::HelperCredentials;
pub use docker_config::{AuthEntry, DockerConfig, RegistryLogin};
pub use kubernetes::DockerConfigSecret;
pub use scope::{Action, Actions, Scope};
pub use server::ServerAddress;
pub use x_registry_auth::XRegistryAuth;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::error::Error;
use crate::secret::Secret;

/// `base64(user:pass)`, the `auth` field of `config.json` and of `X-Registry-Auth`, and the value of a
/// `Basic` authorization header.
pub fn encode_basic(username: &str, password: &Secret) -> String {
    STANDARD.encode(format!("{username}:{}", password.expose()))
}

/// Splits a `base64(user:pass)` value. The password may contain `:`; the user name cannot.
pub fn decode_basic(value: &str) -> Result<(String, Secret), Error> {
    let bad = |why: &str| Error::Unauthenticated { message: format!("malformed basic credentials: {why}") };
    let bytes = STANDARD
        .decode(value.trim())
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(value.trim()))
        .map_err(|_| bad("not valid base64"))?;
    let text = String::from_utf8(bytes).map_err(|_| bad("not UTF-8"))?;
    let (user, pass) = text.split_once(':').ok_or_else(|| bad("expected user:password"))?;
    Ok((user.to_owned(), Secret::new(pass)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn basic_vectors() {
        assert_eq!(encode_basic("aladdin", &Secret::new("opensesame")), "YWxhZGRpbjpvcGVuc2VzYW1l");
        let (u, p) = decode_basic("YWxhZGRpbjpvcGVuc2VzYW1l").unwrap();
        assert_eq!((u.as_str(), p.expose()), ("aladdin", "opensesame"));
        let (u, p) = decode_basic(&encode_basic("AWS", &Secret::new("a:b:c"))).unwrap();
        assert_eq!((u.as_str(), p.expose()), ("AWS", "a:b:c"));
        assert!(decode_basic("!!!").is_err());
        assert!(decode_basic(&STANDARD.encode("nocolon")).unwrap_err().to_string().contains("user:password"));
    }

    proptest! {
        #[test]
        fn basic_round_trip(user in "[^:]{0,40}", pass in "\\PC{0,80}") {
            let (u, p) = decode_basic(&encode_basic(&user, &Secret::new(pass.clone()))).unwrap();
            prop_assert_eq!(u, user);
            prop_assert_eq!(p.expose(), pass.as_str());
        }
    }
}
