//! ECR routes.

use regbridge::{Error, Result};

use crate::config_file::RouteConfig;

/// An ECR provider from a route's settings; unset ones come from the standard AWS configuration.
pub(crate) async fn provider(r: &RouteConfig) -> Result<regbridge_providers::ecr::EcrRegistry> {
    let mut b = regbridge_providers::ecr::EcrRegistryBuilder::from_env().with_prefix(&r.upstream_prefix);
    if let Some(v) = &r.region {
        b = b.with_region(v);
    }
    if let Some(v) = &r.account {
        b = b.with_account(v);
    }
    if let Some(v) = &r.pull_role_arn {
        b = b.with_pull_role_arn(v);
    }
    if let Some(v) = &r.push_role_arn {
        b = b.with_push_role_arn(v);
    }
    if let Some(v) = &r.endpoint {
        b = b.with_endpoint(v);
    }
    if let Some(v) = &r.registry {
        b = b.with_registry_endpoint(v);
    }
    match (&r.username, r.upstream_password()?) {
        (Some(key_id), Some(secret)) => b = b.with_credentials(key_id, secret.expose()),
        (None, None) => {}
        _ => return Err(Error::bad_input("give both username (access key id) and password (secret key), or neither")),
    }
    b.build().await
}
