//! How setting values are written, read the same way from command-line flags, `REGBRIDGE_*` variables and
//! the TOML file: durations (`30` seconds, `30s`, `15m`, `1h30m`, `0s`) and listen addresses
//! (`127.0.0.1:5000`, `[::1]:5000`, `:5000` for every address, `localhost:5000`).

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// Parses a duration: a bare number is seconds (`900`), else humantime units (`900s`, `15m`, `1h30m`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let parsed = if !text.is_empty() && text.chars().all(|c| c.is_ascii_digit()) {
        text.parse().map(Duration::from_secs).map_err(|e| e.to_string())
    } else {
        humantime::parse_duration(text).map_err(|e| e.to_string())
    };
    parsed.map_err(|e| format!("{text:?} is not a duration ({e}); write it as 900, 900s, 15m or 1h"))
}

/// Parses a listen address: `IP:PORT`, `:PORT` (every IPv4 address, as Go servers read it), or
/// `HOST:PORT` with a name resolved now (`localhost:5000`; the first address the resolver answers).
pub fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    let text = text.trim();
    let hint = "write it as 127.0.0.1:5000, [::1]:5000, :5000 or localhost:5000";
    if let Some(port) = text.strip_prefix(':') {
        return port
            .parse::<u16>()
            .map(|p| SocketAddr::from(([0, 0, 0, 0], p)))
            .map_err(|_| format!("{text:?}: the port must be a number of 0..65535; {hint}"));
    }
    if let Ok(addr) = text.parse() {
        return Ok(addr);
    }
    if text.rsplit_once(':').is_none_or(|(host, port)| host.is_empty() || port.parse::<u16>().is_err()) {
        return Err(format!("{text:?} is not a listen address; {hint}"));
    }
    let mut addrs: Vec<SocketAddr> =
        text.to_socket_addrs().map_err(|e| format!("{text:?}: cannot resolve the host ({e}); {hint}"))?.collect();
    // `localhost` resolves to ::1 and 127.0.0.1 in either order; IPv4 is what clients try first.
    addrs.sort_by_key(|a| !a.is_ipv4());
    addrs.into_iter().next().ok_or_else(|| format!("{text:?}: the host resolves to no address; {hint}"))
}

/// A timeout setting; zero would close everything at once, so the least is one second.
pub fn at_least_a_second(timeout: Duration) -> Duration {
    timeout.max(Duration::from_secs(1))
}

/// The wire forms of a duration in the TOML file: an integer number of seconds, or a string as
/// [`parse_duration`] reads it.
#[derive(Deserialize)]
#[serde(untagged)]
enum DurationValue {
    Seconds(u64),
    Text(String),
}

/// Deserializes an optional duration (`idle_timeout = 120` or `idle_timeout = "2m"`).
pub fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    match Option::<DurationValue>::deserialize(d)? {
        None => Ok(None),
        Some(DurationValue::Seconds(s)) => Ok(Some(Duration::from_secs(s))),
        Some(DurationValue::Text(t)) => parse_duration(&t).map(Some).map_err(serde::de::Error::custom),
    }
}

/// Deserializes an optional listen address as [`parse_listen`] reads it.
pub fn listen<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
    Option::<String>::deserialize(d)?.map(|t| parse_listen(&t)).transpose().map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_every_form() {
        for (text, secs) in
            [("30", 30), ("30s", 30), ("15m", 900), ("1h", 3600), ("1h30m", 5400), ("0s", 0), (" 0 ", 0)]
        {
            assert_eq!(parse_duration(text), Ok(Duration::from_secs(secs)), "{text}");
        }
        for bad in ["", "-1", "1 fortnight", "15 minutes ago", "1e3"] {
            let err = parse_duration(bad).unwrap_err();
            assert!(err.contains("15m"), "{bad}: {err}");
        }
    }

    #[test]
    fn listen_addresses_in_every_form() {
        assert_eq!(parse_listen(":5000"), Ok("0.0.0.0:5000".parse().unwrap()));
        assert_eq!(parse_listen("127.0.0.1:5000"), Ok("127.0.0.1:5000".parse().unwrap()));
        assert_eq!(parse_listen("[::1]:5000"), Ok("[::1]:5000".parse().unwrap()));
        assert!(parse_listen("localhost:5000").unwrap().ip().is_loopback());
        for bad in ["5000", ":", ":99999", "localhost", "localhost:http", "host:5000:1", ""] {
            assert!(parse_listen(bad).unwrap_err().contains("5000"), "{bad}");
        }
    }

    #[test]
    fn toml_durations_are_numbers_or_text() {
        #[derive(Deserialize)]
        struct T {
            #[serde(default, deserialize_with = "duration")]
            d: Option<Duration>,
        }
        assert_eq!(toml::from_str::<T>("d = 90").unwrap().d, Some(Duration::from_secs(90)));
        assert_eq!(toml::from_str::<T>("d = \"2m\"").unwrap().d, Some(Duration::from_secs(120)));
        assert_eq!(toml::from_str::<T>("").unwrap().d, None);
        assert!(toml::from_str::<T>("d = \"soon\"").is_err());
        assert!(toml::from_str::<T>("d = -3").is_err());
    }
}
