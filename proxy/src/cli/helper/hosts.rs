//! Which cloud a registry host belongs to: recognised by the clouds' host patterns, or named in the
//! configuration's `[[helper.hosts]]` (which wins, so a test or a private endpoint can override a pattern).
//!
//! Hosts are compared after [`ServerAddress`] normalisation (scheme and path dropped, lower case), so
//! `evil.com/.dkr.ecr.us-east-1.amazonaws.com` is `evil.com`. A pattern must match the whole host:
//! `x.dkr.ecr.us-east-1.amazonaws.com.evil.com` is nobody's. A port other than 443 is never a cloud's.

use regbridge::auth::ServerAddress;

use crate::config_file::HelperHost;

/// The settings the helper mints with for `server_url`, or `None` when no cloud owns it.
pub fn settings_for(server_url: &str, configured: &[HelperHost]) -> Option<HelperHost> {
    let address = ServerAddress::parse(server_url).ok()?;
    let host = address.host();
    if let Some(entry) = configured.iter().find(|h| ServerAddress::parse(&h.host).is_ok_and(|a| a.host() == host)) {
        return Some(HelperHost { host: host.to_owned(), ..entry.clone() });
    }
    recognise(host)
}

/// The cloud a bare `host[:port]` (already lower case) belongs to by pattern.
pub fn recognise(host: &str) -> Option<HelperHost> {
    let name = match host.rsplit_once(':') {
        Some((name, "443")) => name,
        Some(_) => return None,
        None => host,
    };
    let entry =
        |provider: &str| HelperHost { host: host.to_owned(), provider: provider.into(), ..HelperHost::default() };
    if let Some((account, region)) = ecr_host(name) {
        return Some(HelperHost { account: Some(account.into()), region: Some(region.into()), ..entry("ecr") });
    }
    if gar_host(name) {
        return Some(entry("gar"));
    }
    if let Some(registry) = name.strip_suffix(".azurecr.io")
        && !registry.is_empty()
        && registry.len() <= 50
        && registry.chars().all(|c| c.is_ascii_alphanumeric())
    {
        return Some(entry("acr"));
    }
    None
}

/// `ACCOUNT.dkr.ecr.REGION.amazonaws.com` (or `.com.cn`): the account and region.
fn ecr_host(name: &str) -> Option<(&str, &str)> {
    let rest = name.strip_suffix(".amazonaws.com").or_else(|| name.strip_suffix(".amazonaws.com.cn"))?;
    let (account, rest) = rest.split_once(".dkr.ecr.")?;
    let region_ok = !rest.is_empty()
        && rest.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && rest.starts_with(|c: char| c.is_ascii_lowercase());
    let account_ok = account.len() == 12 && account.chars().all(|c| c.is_ascii_digit());
    (region_ok && account_ok).then_some((account, rest))
}

/// `LOCATION-docker.pkg.dev`, `gcr.io` and `REGION.gcr.io`.
fn gar_host(name: &str) -> bool {
    let label = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if let Some(location) = name.strip_suffix("-docker.pkg.dev") {
        return label(location);
    }
    name == "gcr.io" || name.strip_suffix(".gcr.io").is_some_and(label)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(url: &str) -> Option<String> {
        settings_for(url, &[]).map(|h| h.provider)
    }

    #[test]
    fn clouds_are_recognised_by_their_host_patterns() {
        let ecr = settings_for("https://123456789012.dkr.ecr.us-east-1.amazonaws.com/", &[]).unwrap();
        assert_eq!((ecr.provider.as_str(), ecr.account.as_deref()), ("ecr", Some("123456789012")));
        assert_eq!(ecr.region.as_deref(), Some("us-east-1"));
        assert_eq!(provider("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn").as_deref(), Some("ecr"));
        assert_eq!(provider("123456789012.DKR.ECR.US-EAST-1.AMAZONAWS.COM").as_deref(), Some("ecr"));
        assert_eq!(provider("123456789012.dkr.ecr.us-east-1.amazonaws.com:443").as_deref(), Some("ecr"));
        assert_eq!(provider("europe-west1-docker.pkg.dev").as_deref(), Some("gar"));
        assert_eq!(provider("gcr.io").as_deref(), Some("gar"));
        assert_eq!(provider("eu.gcr.io").as_deref(), Some("gar"));
        assert_eq!(provider("myregistry.azurecr.io").as_deref(), Some("acr"));
    }

    #[test]
    fn hostile_hosts_are_nobodys() {
        for host in [
            "evil.com/.dkr.ecr.us-east-1.amazonaws.com",
            "x.dkr.ecr.us-east-1.amazonaws.com.evil.com",
            "123456789012.dkr.ecr.us-east-1.amazonaws.com.evil.com",
            "123456789012.dkr.ecr.us-east-1.amazonaws.com:5000",
            "evil.com:123456789012.dkr.ecr.us-east-1.amazonaws.com",
            "12345.dkr.ecr.us-east-1.amazonaws.com",
            "123456789012.dkr.ecr..amazonaws.com",
            "user@123456789012.dkr.ecr.us-east-1.amazonaws.com",
            "a.b-docker.pkg.dev",
            "-docker.pkg.dev",
            "evilgcr.io",
            "x.evil.com.gcr.io.evil.com",
            ".azurecr.io",
            "a.b.azurecr.io",
            "myregistry.azurecr.io.evil.com",
            "ghcr.io",
        ] {
            assert_eq!(provider(host), None, "{host}");
        }
    }

    #[test]
    fn configured_hosts_win_and_add() {
        let configured = vec![HelperHost {
            host: "http://127.0.0.1:5001".into(),
            provider: "ecr".into(),
            region: Some("us-east-1".into()),
            account: Some("123456789012".into()),
            ..HelperHost::default()
        }];
        let got = settings_for("127.0.0.1:5001", &configured).unwrap();
        assert_eq!((got.host.as_str(), got.provider.as_str()), ("127.0.0.1:5001", "ecr"));
        assert_eq!(settings_for("127.0.0.1:5002", &configured), None);
    }
}
