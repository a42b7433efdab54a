//! A Kubernetes `kubernetes.io/dockerconfigjson` Secret, the form `imagePullSecrets` reference.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use super::docker_config::DockerConfig;
use crate::error::Error;

/// The Secret type Kubernetes requires for image pull secrets.
pub const SECRET_TYPE: &str = "kubernetes.io/dockerconfigjson";

/// The data key holding the `config.json`.
pub const DATA_KEY: &str = ".dockerconfigjson";

/// A `v1/Secret` of type `kubernetes.io/dockerconfigjson`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DockerConfigSecret {
    /// Always `v1`.
    pub api_version: String,
    /// Always `Secret`.
    pub kind: String,
    /// Name and namespace.
    pub metadata: SecretMetadata,
    /// Always [`SECRET_TYPE`].
    #[serde(rename = "type")]
    pub secret_type: String,
    /// `{".dockerconfigjson": base64(config.json)}`.
    pub data: BTreeMap<String, String>,
}

/// `metadata` of a Secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretMetadata {
    /// The Secret's name (a DNS-1123 subdomain).
    pub name: String,
    /// The namespace, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

impl DockerConfigSecret {
    /// A Secret named `name` holding `config`. The name (and namespace) must be DNS-1123 subdomains.
    pub fn new(name: &str, namespace: Option<&str>, config: &DockerConfig) -> Result<Self, Error> {
        validate_dns1123(name, "Secret name")?;
        if let Some(ns) = namespace {
            validate_dns1123(ns, "namespace")?;
        }
        Ok(Self {
            api_version: "v1".into(),
            kind: "Secret".into(),
            metadata: SecretMetadata { name: name.into(), namespace: namespace.map(Into::into) },
            secret_type: SECRET_TYPE.into(),
            data: [(DATA_KEY.to_owned(), STANDARD.encode(config.to_json()))].into(),
        })
    }

    /// Parses a Secret (JSON; YAML written by [`to_yaml`](Self::to_yaml) is read back by kubectl, not here).
    pub fn parse(json: &str) -> Result<Self, Error> {
        let secret: Self =
            serde_json::from_str(json).map_err(|e| Error::bad_input(format!("malformed Secret: {e}")))?;
        if secret.secret_type != SECRET_TYPE {
            return Err(Error::bad_input(format!("Secret type is {:?}, expected {SECRET_TYPE}", secret.secret_type)));
        }
        Ok(secret)
    }

    /// The `config.json` inside.
    pub fn docker_config(&self) -> Result<DockerConfig, Error> {
        let encoded =
            self.data.get(DATA_KEY).ok_or_else(|| Error::bad_input(format!("the Secret has no {DATA_KEY} key")))?;
        let bytes =
            STANDARD.decode(encoded).map_err(|_| Error::bad_input(format!("{DATA_KEY} is not valid base64")))?;
        DockerConfig::parse(&String::from_utf8_lossy(&bytes))
    }

    /// The Secret as JSON, which `kubectl apply -f` accepts.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("strings serialise")
    }

    /// The Secret as YAML. Every value is a validated DNS name, a fixed word or base64, none of which
    /// needs quoting in YAML, so this fixed layout is exact.
    pub fn to_yaml(&self) -> String {
        let mut out = format!(
            "apiVersion: {}\nkind: {}\nmetadata:\n  name: {}\n",
            self.api_version, self.kind, self.metadata.name
        );
        if let Some(ns) = &self.metadata.namespace {
            out.push_str(&format!("  namespace: {ns}\n"));
        }
        out.push_str(&format!("type: {}\ndata:\n", self.secret_type));
        for (k, v) in &self.data {
            out.push_str(&format!("  {k}: {v}\n"));
        }
        out
    }
}

fn validate_dns1123(value: &str, what: &str) -> Result<(), Error> {
    let ok = !value.is_empty()
        && value.len() <= 253
        && value.split('.').all(|label| {
            !label.is_empty()
                && label.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if ok {
        Ok(())
    } else {
        Err(Error::bad_input(format!(
            "invalid {what} {value:?}: use lower-case letters, digits, '-' and '.', starting and ending with a letter or digit"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{AuthEntry, ServerAddress};
    use crate::secret::Secret;
    use proptest::prelude::*;

    fn config() -> DockerConfig {
        DockerConfig::with_login(&ServerAddress::parse("r.example").unwrap(), AuthEntry::basic("u", &Secret::new("p")))
    }

    #[test]
    fn secret_shape() {
        let s = DockerConfigSecret::new("pull-secret", Some("apps"), &config()).unwrap();
        let v: serde_json::Value = serde_json::from_str(&s.to_json()).unwrap();
        assert_eq!(v["type"], "kubernetes.io/dockerconfigjson");
        assert_eq!(v["kind"], "Secret");
        assert_eq!(v["metadata"]["namespace"], "apps");
        let inner = STANDARD.decode(v["data"][".dockerconfigjson"].as_str().unwrap()).unwrap();
        let inner: serde_json::Value = serde_json::from_slice(&inner).unwrap();
        assert_eq!(inner["auths"]["r.example"]["auth"], "dTpw");
        let yaml = s.to_yaml();
        assert!(yaml.contains("type: kubernetes.io/dockerconfigjson\n"), "{yaml}");
        assert!(yaml.contains("  .dockerconfigjson: "), "{yaml}");
    }

    #[test]
    fn bad_names_and_bodies() {
        assert!(DockerConfigSecret::new("Bad_Name", None, &config()).is_err());
        assert!(DockerConfigSecret::new("ok", Some("-ns"), &config()).is_err());
        assert!(
            DockerConfigSecret::parse(
                r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"a"},"type":"Opaque","data":{}}"#
            )
            .is_err()
        );
        let s = DockerConfigSecret::parse(r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"a"},"type":"kubernetes.io/dockerconfigjson","data":{}}"#).unwrap();
        assert!(s.docker_config().is_err());
    }

    proptest! {
        #[test]
        fn round_trip(user in "[a-zA-Z0-9]{1,20}", pass in "\\PC{0,40}", name in "[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?") {
            let server = ServerAddress::parse("r.example").unwrap();
            let cfg = DockerConfig::with_login(&server, AuthEntry::basic(&user, &Secret::new(pass.clone())));
            let secret = DockerConfigSecret::new(&name, None, &cfg).unwrap();
            let back = DockerConfigSecret::parse(&secret.to_json()).unwrap().docker_config().unwrap();
            let login = back.get(&server).unwrap().login().unwrap();
            prop_assert_eq!(login.username, user);
            prop_assert_eq!(login.password.expose(), pass.as_str());
        }
    }
}
