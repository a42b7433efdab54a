//! Upload locations handed to clients for upstream routes.
//!
//! An upstream's upload URL (`/v2/<upstream name>/blobs/uploads/<uuid>?_state=...`, or absolute on its
//! host) becomes `<public url>/v2/<client name>/blobs/uploads/<id>?rbexp=<expiry>&rbsig=<hmac>`, where `id`
//! is the upstream path and query in URL-safe base64. The signature binds id, client repository and
//! expiry, so a client that drops `Authorization` on PATCH/PUT (some do) is still let through, and nobody
//! can point an upload at another repository or another host.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use regbridge::{Error, Resource, Result};
use sha2::Sha256;

/// How long a signed location stays valid. Every PATCH answers with a fresh one.
pub const LOCATION_TTL_SECS: i64 = 3600;

const EXP: &str = "rbexp";
const SIG: &str = "rbsig";

/// Signs and checks upload locations with a key of their own.
#[derive(Clone)]
pub struct LocationSigner {
    key: [u8; 32],
}

impl std::fmt::Debug for LocationSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LocationSigner(<redacted>)")
    }
}

impl LocationSigner {
    /// A signer with `key`.
    pub fn new(key: [u8; 32]) -> Self {
        Self { key }
    }

    fn mac(&self, repo: &str, id: &str, exp: i64) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length");
        mac.update(format!("{repo}\n{id}\n{exp}").as_bytes());
        mac
    }

    /// The client-facing location for the upstream upload URL `upstream` (its path and query) of `repo`.
    pub fn sign(&self, base_url: &str, repo: &str, upstream: &str) -> String {
        let id = URL_SAFE_NO_PAD.encode(upstream.as_bytes());
        let exp = chrono::Utc::now().timestamp() + LOCATION_TTL_SECS;
        let sig = URL_SAFE_NO_PAD.encode(self.mac(repo, &id, exp).finalize().into_bytes());
        format!("{base_url}/v2/{repo}/blobs/uploads/{id}?{EXP}={exp}&{SIG}={sig}")
    }

    /// Whether `query` carries a valid, unexpired signature for upload `id` of `repo`.
    pub fn verify(&self, repo: &str, id: &str, query: &str) -> bool {
        let get = |k: &str| url::form_urlencoded::parse(query.as_bytes()).find(|(key, _)| key == k).map(|(_, v)| v);
        let (Some(exp), Some(sig)) = (get(EXP), get(SIG)) else { return false };
        let Ok(exp) = exp.parse::<i64>() else { return false };
        if exp < chrono::Utc::now().timestamp() {
            return false;
        }
        URL_SAFE_NO_PAD.decode(sig.as_bytes()).is_ok_and(|s| self.mac(repo, id, exp).verify_slice(&s).is_ok())
    }
}

/// The upstream path and query an upload id stands for. Only ids whose signature verified reach here (the
/// pipeline refuses the others): they were made by this proxy from the upstream's own `Location`, which may
/// be any absolute path on the upstream's host (GAR hands out `/artifacts-uploads/...`).
pub fn decode_upload_id(id: &str) -> Result<String> {
    let unknown = || Error::not_found(Resource::Upload, id.chars().take(40).collect::<String>());
    let bytes = URL_SAFE_NO_PAD.decode(id.as_bytes()).map_err(|_| unknown())?;
    let target = String::from_utf8(bytes).map_err(|_| unknown())?;
    if !target.starts_with('/') || target.starts_with("//") {
        return Err(unknown());
    }
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_and_tamper() {
        let s = LocationSigner::new([1; 32]);
        let loc = s.sign("http://proxy", "hub/app", "/v2/library/app/blobs/uploads/u1?_state=abc");
        let (path, query) = loc.split_once('?').unwrap();
        let id = path.rsplit('/').next().unwrap();
        assert!(s.verify("hub/app", id, query));
        assert!(!s.verify("hub/other", id, query), "bound to the repository");
        assert!(!LocationSigner::new([2; 32]).verify("hub/app", id, query), "bound to the key");
        assert!(!s.verify("hub/app", id, &query.replace("rbexp=", "rbexp=1")), "bound to the expiry");
        assert!(!s.verify("hub/app", id, ""), "needs a signature");
        assert_eq!(decode_upload_id(id).unwrap(), "/v2/library/app/blobs/uploads/u1?_state=abc");
        let gar = URL_SAFE_NO_PAD.encode("/artifacts-uploads/namespaces/p/repositories/r/uploads/u?x=1");
        assert!(decode_upload_id(&gar).is_ok(), "a signed session path may be anywhere upstream");
        assert!(decode_upload_id(&URL_SAFE_NO_PAD.encode("//evil.example/x")).is_err());
    }
}
