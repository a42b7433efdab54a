//! ACR's per-SKU limits on tokens and scope maps, and the error a write over them becomes.
//!
//! A registry holds at most 100 tokens and 100 scope maps on Basic, 500 on Standard and 50,000 on Premium
//! (<https://learn.microsoft.com/azure/container-registry/container-registry-skus>). ARM refuses the
//! `PUT` of one more with code `QuotaExceeded` and a message naming the resource type and the SKU
//! ("Quota exceeded for resource type tokens for the registry SKU Basic. ..."), either at once or as the
//! error of the long-running operation. regbridge keeps one scope map and one token per repository and
//! permission level, so a registry reaches the limit at about half as many repositories.

use regbridge::Error;

use super::arm::PROVIDER;
use crate::http::RestError;

/// The error code ARM answers when a registry's SKU allows no more of a resource.
pub(crate) const QUOTA_EXCEEDED: &str = "QuotaExceeded";

/// The token and scope-map limit of each SKU, as documented.
pub const SKU_LIMITS: [(&str, u32); 3] = [("Basic", 100), ("Standard", 500), ("Premium", 50_000)];

/// The word after `marker` in `message` (`tokens` after "resource type ", `Basic` after "SKU "), without
/// trailing punctuation.
fn word_after<'a>(message: &'a str, marker: &str) -> Option<&'a str> {
    let start = message.find(marker)? + marker.len();
    let word = message[start..].split_whitespace().next()?;
    Some(word.trim_end_matches(['.', ',', ';'])).filter(|w| !w.is_empty())
}

/// The error for ARM's `QuotaExceeded` while doing `what`: which quota, the SKU's limit, and the fix. It is
/// an upstream (server-side) error with ARM's `status`: the client asked nothing wrong, the registry is
/// full.
pub(crate) fn exceeded(what: &str, status: Option<u16>, arm_message: &str) -> Error {
    let resource = word_after(arm_message, "resource type ").unwrap_or("tokens and scope maps");
    let sku = word_after(arm_message, "SKU ");
    let limit = match sku.and_then(|s| SKU_LIMITS.iter().find(|(name, _)| name.eq_ignore_ascii_case(s))) {
        Some((name, limit)) => format!("the {name} SKU allows {limit} {resource} per registry"),
        None => {
            let all: Vec<String> = SKU_LIMITS.iter().map(|(name, limit)| format!("{name} {limit}")).collect();
            format!("ACR allows {} {resource} per registry", all.join(", "))
        }
    };
    Error::Upstream {
        provider: PROVIDER.into(),
        status,
        message: format!(
            "{what}: the registry's quota of {resource} is used up ({limit}; ARM: {arm_message}); regbridge keeps \
             one scope map and one token per repository and permission level. Delete unused ones \
             (AcrRegistry::cleanup_expired_tokens, `regbridge gc --cloud`, or cleanup_credentials for \
             repositories no longer served) or move the registry to a higher SKU"
        ),
        source: None,
    }
}

/// [`exceeded`] for a synchronous refusal: the shared client wrote "{provider} rejected {what}: {ARM's
/// message}" (400) or "{what} failed: {ARM's message}" (409 and others); the two parts are taken apart
/// again so that the quota error reads plainly.
pub(crate) fn from_rest(e: &RestError) -> Error {
    let text = match &e.error {
        Error::InvalidInput { message, .. } | Error::Upstream { message, .. } => message.clone(),
        other => other.to_string(),
    };
    let status = e.status.map(|s| s.as_u16());
    let Some((what, arm_message)) = text.split_once(": ") else { return exceeded("an ARM write", status, &text) };
    let what = what.trim_start_matches(&format!("{PROVIDER} rejected ")).trim_end_matches(" failed");
    exceeded(what, status, arm_message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_quota_the_limit_and_the_fix() {
        let message = "Quota exceeded for resource type tokens for the registry SKU Basic. Learn more at https://aka.ms/acr/tiers.";
        let text = exceeded("create token regbridge-pull-x", Some(409), message).to_string();
        assert!(text.contains("quota of tokens") && text.contains("Basic SKU allows 100 tokens"), "{text}");
        assert!(text.contains("cleanup_expired_tokens") && text.contains("higher SKU"), "{text}");
        let vague = exceeded("create scope map x", None, "Quota exceeded.").to_string();
        assert!(vague.contains("Basic 100, Standard 500, Premium 50000"), "{vague}");
        assert!(matches!(exceeded("x", Some(409), message), Error::Upstream { status: Some(409), .. }));
    }
}
