//! The URL clients reach this server at, for token realms and upload locations: the configured public URL,
//! or the scheme and the request's `Host` — but only a `Host` that is a plain `host[:port]`, since it is
//! written into headers other clients parse (`Host: evil",service="x` would add a challenge parameter).

use axum::http::{HeaderMap, header};
use regbridge::{Error, Result};

use crate::config::ServeConfig;

/// The base URL (no trailing slash) for a request with `headers`. Without `--public-url`, a `Host` that is
/// not a valid `host[:port]` is an error (400); a request without one gets the listen address.
pub fn base_url(config: &ServeConfig, headers: &HeaderMap) -> Result<String> {
    if let Some(url) = &config.public_url {
        return Ok(url.trim_end_matches('/').to_owned());
    }
    let scheme = if config.tls.is_some() { "https" } else { "http" };
    let host = match headers.get(header::HOST) {
        // HTTP/1.0 without Host: only a concrete listen address names this server; 0.0.0.0 would send the
        // client's next request (an upload location, a token realm) nowhere.
        None if config.listen.ip().is_unspecified() => {
            return Err(Error::bad_input(
                "send a Host header: this server listens on every address and has no public URL configured",
            ));
        }
        None => config.listen.to_string(),
        Some(value) => {
            let text = value.to_str().ok().filter(|h| valid_host(h)).ok_or_else(|| {
                Error::bad_input("the Host header must be host[:port] (letters, digits, '-', '.', or [IPv6])")
            })?;
            text.to_owned()
        }
    };
    Ok(format!("{scheme}://{host}"))
}

/// Whether `text` is `host[:port]`: a DNS name or IPv4 address, or a bracketed IPv6 address, and a port of
/// at most five digits.
pub fn valid_host(text: &str) -> bool {
    let (host, port) = match text.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((v6, after)) if v6.parse::<std::net::Ipv6Addr>().is_ok() => match after {
                "" => (v6, None),
                p => match p.strip_prefix(':') {
                    Some(port) => (v6, Some(port)),
                    None => return false,
                },
            },
            _ => return false,
        },
        None => match text.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (text, None),
        },
    };
    let name_ok = text.starts_with('[')
        || (!host.is_empty()
            && host.len() <= 253
            && host.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            }));
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    name_ok && port_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        for good in ["127.0.0.1:5000", "localhost", "registry.example.com:443", "[::1]:5000", "[::1]", "a_b.local"] {
            assert!(valid_host(good), "{good}");
        }
        for bad in [
            "evil.example\",service=\"x",
            "a b",
            "user@host",
            "host:",
            "host:port",
            "host:123456",
            "[::1",
            "[zz]:1",
            "",
            "a..b",
            "host/path",
            "h\\x",
        ] {
            assert!(!valid_host(bad), "{bad}");
        }
    }

    #[test]
    fn without_host_only_a_concrete_listen_address_names_the_server() {
        let mut config = ServeConfig::new();
        config.listen = "127.0.0.1:5000".parse().unwrap();
        assert_eq!(base_url(&config, &HeaderMap::new()).unwrap(), "http://127.0.0.1:5000");
        config.listen = "0.0.0.0:5000".parse().unwrap();
        assert!(base_url(&config, &HeaderMap::new()).unwrap_err().to_string().contains("Host"));
        config.public_url = Some("https://reg.example.com/".into());
        assert_eq!(base_url(&config, &HeaderMap::new()).unwrap(), "https://reg.example.com");
    }
}
