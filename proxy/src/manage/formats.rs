//! Minted credentials in the format their consumer reads: JSON, shell variables, a docker `config.json`,
//! an `X-Registry-Auth` header, a Kubernetes Secret. `regbridge creds mint --format` and
//! `POST /admin/v1/credentials` `{"format"}` render through [`render`].

use regbridge::auth::{AuthEntry, DockerConfig, DockerConfigSecret, ServerAddress, XRegistryAuth};
use regbridge::{AuthMethod, Credentials, Error, Result};
use serde::{Deserialize, Serialize};

/// Output formats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// The `Credentials` type as JSON.
    #[default]
    Json,
    /// `REGBRIDGE_REGISTRY=... REGBRIDGE_USERNAME=...` lines for `eval` or `--env-file`.
    Env,
    /// A docker `config.json`.
    DockerConfig,
    /// The base64url value of docker's `X-Registry-Auth` header.
    XRegistryAuth,
    /// A Kubernetes `kubernetes.io/dockerconfigjson` Secret (YAML).
    K8sSecret,
}

impl Format {
    /// The media type of the rendered text.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json | Format::DockerConfig => "application/json",
            Format::K8sSecret => "application/yaml",
            Format::Env | Format::XRegistryAuth => "text/plain; charset=utf-8",
        }
    }
}

/// Where the Secret of [`Format::K8sSecret`] goes.
#[derive(Debug, Clone, Default)]
pub struct SecretTarget {
    /// The Secret's name (by default `regbridge-<repo>`).
    pub name: Option<String>,
    /// Its namespace.
    pub namespace: Option<String>,
}

/// `creds` for the registry at `endpoint` and repository `repo`, rendered as `format`, ending in a newline.
pub fn render(
    creds: &Credentials,
    endpoint: &str,
    repo: &str,
    format: Format,
    secret: &SecretTarget,
) -> Result<String> {
    let server = ServerAddress::parse(endpoint)
        .map_err(|e| Error::bad_input(format!("the route's registry endpoint {endpoint:?}: {e}")))?;
    if creds.auth_method == AuthMethod::Bearer && format != Format::Json {
        // Docker's formats carry a user name and password; a bearer token goes in as the password, which
        // registries that issue bearer credentials accept through their token endpoint.
        tracing::debug!("bearer credentials written as a user name and password");
    }
    let config = || DockerConfig::with_login(&server, AuthEntry::basic(&creds.username, &creds.password));
    Ok(match format {
        Format::Json => format!("{}\n", serde_json::to_string_pretty(creds).expect("credentials serialise")),
        Format::Env => [
            ("REGISTRY", server.host().to_owned()),
            ("USERNAME", creds.username.clone()),
            ("PASSWORD", creds.password.expose().to_owned()),
            ("EXPIRES_AT", creds.expires_at.to_rfc3339()),
        ]
        .iter()
        .map(|(k, v)| format!("REGBRIDGE_{k}={}\n", shell_quote(v)))
        .collect(),
        Format::DockerConfig => format!("{}\n", config().to_json()),
        Format::XRegistryAuth => {
            format!("{}\n", XRegistryAuth::basic(&creds.username, creds.password.clone(), server.host()).encode())
        }
        Format::K8sSecret => {
            let name = secret.name.clone().unwrap_or_else(|| secret_name_for(repo));
            DockerConfigSecret::new(&name, secret.namespace.as_deref(), &config())?.to_yaml()
        }
    })
}

/// Single-quotes `value` for a POSIX shell.
fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// `team/app` as a Kubernetes object name: `regbridge-team-app`.
fn secret_name_for(repo: &str) -> String {
    let cleaned: String =
        repo.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    let name = format!("regbridge-{}", cleaned.trim_matches('-'));
    name.chars().take(253).collect::<String>().trim_end_matches('-').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_and_names() {
        assert_eq!(shell_quote("a'b"), r"'a'\''b'");
        assert_eq!(secret_name_for("Team/App_1"), "regbridge-team-app-1");
    }
}
