//! `WWW-Authenticate` challenges (RFC 9110 section 11.6.1), as registries send them:
//! `Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull"` or
//! `Basic realm="registry"`.

use std::collections::BTreeMap;

use http::HeaderMap;
use http::header::WWW_AUTHENTICATE;

/// One authentication challenge: its scheme and its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// The scheme as sent (`Bearer`, `Basic`); compare it with [`Challenge::is`].
    pub scheme: String,
    /// The parameters, names lower-cased (they are case-insensitive), values unquoted and unescaped.
    pub params: BTreeMap<String, String>,
}

impl Challenge {
    /// True when the scheme is `scheme`, ignoring case.
    pub fn is(&self, scheme: &str) -> bool {
        self.scheme.eq_ignore_ascii_case(scheme)
    }

    /// The parameter `name` (lower case), if present.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }
}

/// Parses a `WWW-Authenticate` header value into scheme and params (quoted strings with escapes, commas
/// inside quotes).
///
/// Only the first challenge of the value is returned: a second scheme after the parameters ends it. A
/// parameter without `=` (a token68, which registries do not send) ends the parameters too, so what was
/// parsed until then is kept. `None` when the value has no scheme or a quoted string is not closed.
pub fn parse_challenge(value: &str) -> Option<Challenge> {
    let mut p = Parser { rest: value.trim_start() };
    let scheme = p.token()?;
    let mut params = BTreeMap::new();
    loop {
        p.skip(|c| c == ',' || c.is_ascii_whitespace());
        if p.rest.is_empty() {
            break;
        }
        let Some(name) = p.token() else { break };
        p.skip(|c| c == ' ' || c == '\t');
        if !p.eat('=') {
            // `name` is not a parameter: it is the next challenge's scheme, or a token68. Either way this
            // challenge ends before it.
            break;
        }
        p.skip(|c| c == ' ' || c == '\t');
        let value = if p.rest.starts_with('"') { p.quoted()? } else { p.bare() };
        params.insert(name.to_ascii_lowercase(), value);
    }
    Some(Challenge { scheme, params })
}

/// The challenge to answer among all `WWW-Authenticate` headers of a response: the first `Bearer` one,
/// else the first `Basic` one. Other schemes are ignored: the client speaks neither.
pub fn select_challenge(headers: &HeaderMap) -> Option<Challenge> {
    let all: Vec<Challenge> =
        headers.get_all(WWW_AUTHENTICATE).iter().filter_map(|v| v.to_str().ok()).filter_map(parse_challenge).collect();
    let pick = |scheme: &str| all.iter().find(|c| c.is(scheme)).cloned();
    pick("Bearer").or_else(|| pick("Basic"))
}

struct Parser<'a> {
    rest: &'a str,
}

impl Parser<'_> {
    fn skip(&mut self, pred: impl Fn(char) -> bool) {
        self.rest = self.rest.trim_start_matches(pred);
    }

    fn eat(&mut self, c: char) -> bool {
        match self.rest.strip_prefix(c) {
            Some(r) => {
                self.rest = r;
                true
            }
            None => false,
        }
    }

    /// An RFC 9110 `token`: a scheme or a parameter name.
    fn token(&mut self) -> Option<String> {
        let end = self.rest.find(|c: char| !is_tchar(c)).unwrap_or(self.rest.len());
        if end == 0 {
            return None;
        }
        let (t, r) = self.rest.split_at(end);
        self.rest = r;
        Some(t.to_owned())
    }

    /// An unquoted value. RFC 9110 allows only a token here, but some registries send bare URLs
    /// (`realm=https://host/token`), so it runs to the next comma or space.
    fn bare(&mut self) -> String {
        let end = self.rest.find(|c: char| c == ',' || c.is_ascii_whitespace()).unwrap_or(self.rest.len());
        let (v, r) = self.rest.split_at(end);
        self.rest = r;
        v.to_owned()
    }

    /// A quoted string starting at the current `"`: backslash escapes the next character.
    fn quoted(&mut self) -> Option<String> {
        let mut out = String::new();
        let mut chars = self.rest.char_indices().skip(1);
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    self.rest = &self.rest[i + 1..];
                    return Some(out);
                }
                '\\' => out.push(chars.next()?.1),
                c => out.push(c),
            }
        }
        None
    }
}

fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_scheme_ends_the_challenge() {
        let c = parse_challenge(r#"Basic realm="a", Bearer realm="b""#).unwrap();
        assert!(c.is("basic"));
        assert_eq!(c.param("realm"), Some("a"));
        assert_eq!(c.params.len(), 1);
    }

    #[test]
    fn bearer_is_preferred_across_headers() {
        let mut h = HeaderMap::new();
        h.append(WWW_AUTHENTICATE, "Basic realm=\"x\"".parse().unwrap());
        h.append(WWW_AUTHENTICATE, "Bearer realm=\"https://t/token\"".parse().unwrap());
        assert_eq!(select_challenge(&h).unwrap().param("realm"), Some("https://t/token"));
        h.clear();
        h.append(WWW_AUTHENTICATE, "Negotiate".parse().unwrap());
        assert!(select_challenge(&h).is_none());
    }
}
