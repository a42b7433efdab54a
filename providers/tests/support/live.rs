//! What the live suites share: reading their `REGBRIDGE_LIVE_*` settings, and saying out loud when a suite
//! is skipped because they are not set (a silent pass would look like a verified cloud).
#![allow(dead_code)] // each live_*.rs test file uses its own part

/// The value of `var` split at `/` into exactly `parts` non-empty fields, or `None` after printing why the
/// test `test` is skipped. A set but malformed variable panics: the caller meant to run the suite.
pub fn settings(test: &str, var: &str, parts: &[&str]) -> Option<Vec<String>> {
    let Ok(value) = std::env::var(var) else {
        // Written to stderr directly, not with eprintln!, which the test harness captures and hides for a
        // passing test: a skipped live test must say so in every run.
        let line = format!("live: {test} skipped: {var} is not set (format: {})\n", parts.join("/"));
        let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
        return None;
    };
    let fields: Vec<String> = value.split('/').map(str::to_owned).collect();
    assert!(
        fields.len() == parts.len() && fields.iter().all(|f| !f.is_empty()),
        "{var}={value:?} is not {}",
        parts.join("/")
    );
    Some(fields)
}

/// An optional extra setting (a role ARN, a service account): `None` when unset or empty.
pub fn optional(var: &str) -> Option<String> {
    std::env::var(var).ok().filter(|v| !v.is_empty())
}

/// A name prefix unique to this run, so runs on a shared account do not collide and leftovers are
/// recognisable (`regbridge-live-<unix seconds>-<random>`).
pub fn run_prefix() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    format!("regbridge-live-{secs}-{:04x}", rand::random::<u16>())
}
