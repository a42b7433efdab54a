//! Cross-account pull grants as members of the repository's `roles/artifactregistry.reader` binding.
//!
//! The policy is kept as the JSON it was read as: regbridge changes the members of the one *unconditional*
//! reader binding and nothing else, so other roles, conditional bindings (even of the reader role), members
//! that are not service accounts, `auditConfigs` and fields this code does not know survive the round
//! trip. See <https://cloud.google.com/iam/docs/reference/rest/v1/Policy>.

use std::collections::BTreeSet;

use regbridge::{ComputeServiceType, CrossAccountAccess, Error, Result};
use serde_json::{Map, Value, json};

/// The role a pull grant gives.
pub const READER_ROLE: &str = "roles/artifactregistry.reader";

/// The policy version regbridge reads and writes: 3 is the one that carries conditions, so conditional
/// bindings are read whole and written back as they were.
pub const POLICY_VERSION: u64 = 3;

const ROBOT_PREFIX: &str = "serviceAccount:service-";
const ROBOT_SUFFIX: &str = "@serverless-robot-prod.iam.gserviceaccount.com";

/// The serverless robot of project number `n`: the identity Cloud Run (and Cloud Functions 2nd gen) pull
/// images as.
pub fn serverless_robot(n: &str) -> String {
    format!("service-{n}{ROBOT_SUFFIX}")
}

/// An IAM policy as read, to be changed and written back with its etag.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy(Map<String, Value>);

fn is_plain_reader(binding: &Value) -> bool {
    binding.get("role").and_then(Value::as_str) == Some(READER_ROLE) && binding.get("condition").is_none()
}

impl Policy {
    /// The policy `getIamPolicy` answered (an empty object for a repository without one).
    pub fn parse(value: Value) -> Result<Self> {
        match value {
            Value::Object(map) => Ok(Self(map)),
            Value::Null => Ok(Self(Map::new())),
            _ => Err(Error::internal(
                "the IAM policy Artifact Registry returned is not a JSON object",
                "unexpected policy shape",
            )),
        }
    }

    fn bindings(&self) -> &[Value] {
        self.0.get("bindings").and_then(Value::as_array).map_or(&[], Vec::as_slice)
    }

    /// The members of the unconditional reader binding.
    fn readers(&self) -> BTreeSet<String> {
        self.bindings()
            .iter()
            .filter(|b| is_plain_reader(b))
            .flat_map(|b| b.get("members").and_then(Value::as_array).cloned().unwrap_or_default())
            .filter_map(|m| m.as_str().map(str::to_owned))
            .collect()
    }

    /// What the reader binding grants, as regbridge writes it: serverless robots as project numbers (with
    /// `Serverless`), other service accounts as e-mails. Users, groups and domains are left out.
    pub fn granted(&self) -> CrossAccountAccess {
        let (mut project_numbers, mut emails) = (BTreeSet::new(), BTreeSet::new());
        for member in self.readers() {
            if let Some(n) = member.strip_prefix(ROBOT_PREFIX).and_then(|r| r.strip_suffix(ROBOT_SUFFIX)) {
                project_numbers.insert(n.to_owned());
            } else if let Some(email) = member.strip_prefix("serviceAccount:") {
                emails.insert(email.to_owned());
            }
        }
        let allowed_service_types =
            if project_numbers.is_empty() { BTreeSet::new() } else { [ComputeServiceType::Serverless].into() };
        CrossAccountAccess::Gcp { project_numbers, allowed_service_types, service_account_emails: emails }
    }

    /// Adds (or removes) `members` to (from) the unconditional reader binding; answers whether anything
    /// changed. An emptied binding is dropped; every other binding stays as it was, in its place.
    pub fn apply(&mut self, members: &BTreeSet<String>, add: bool) -> bool {
        let before = self.readers();
        let after: BTreeSet<String> =
            if add { before.union(members).cloned().collect() } else { before.difference(members).cloned().collect() };
        if after == before {
            return false;
        }
        let bindings = self.0.entry("bindings").or_insert_with(|| Value::Array(Vec::new()));
        if !bindings.is_array() {
            *bindings = Value::Array(Vec::new());
        }
        let list = bindings.as_array_mut().expect("made an array above");
        // Several unconditional reader bindings are legal; they become one, where the first one was.
        let first = list.iter().position(is_plain_reader);
        let merged = json!({"role": READER_ROLE, "members": after});
        list.retain(|b| !is_plain_reader(b));
        if !after.is_empty() {
            list.insert(first.unwrap_or(list.len()).min(list.len()), merged);
        }
        true
    }

    /// The policy to write: as read, at version 3, etag included.
    pub fn to_write(&self) -> Value {
        let mut map = self.0.clone();
        map.insert("version".into(), json!(POLICY_VERSION));
        Value::Object(map)
    }
}

/// The IAM members a GCP grant names: `serviceAccount:{email}`, and for `Serverless` the serverless robot
/// of each project number. Malformed principals are `InvalidInput`.
pub fn members(access: &CrossAccountAccess) -> Result<BTreeSet<String>> {
    let CrossAccountAccess::Gcp { project_numbers, allowed_service_types, service_account_emails } = access else {
        return Err(Error::bad_input(format!(
            "Artifact Registry accepts gcp cross-account access, not {}",
            access.platform()
        )));
    };
    let mut out = BTreeSet::new();
    for email in service_account_emails {
        if !valid_email(email) {
            return Err(Error::bad_input(format!(
                "{email:?} is not a service account e-mail like name@project.iam.gserviceaccount.com"
            )));
        }
        out.insert(format!("serviceAccount:{email}"));
    }
    if !project_numbers.is_empty() && !allowed_service_types.iter().any(|t| t.is_serverless()) {
        // A project number is granted through its serverless robot only; VMs and GKE nodes pull as service
        // accounts of their own, which the grant must name.
        return Err(Error::bad_input(
            "GCP project numbers are granted through their Cloud Run serverless robot: add the serverless \
             service type, or list the service accounts that pull (e.g. N-compute@developer.gserviceaccount.com \
             for Compute Engine and GKE nodes) in serviceAccountEmails",
        ));
    }
    for n in project_numbers {
        if n.is_empty() || n.len() > 20 || !n.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::bad_input(format!("{n:?} is not a GCP project number (digits, e.g. 123456789012)")));
        }
        out.insert(format!("serviceAccount:{}", serverless_robot(n)));
    }
    Ok(out)
}

fn valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else { return false };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && email.bytes().all(|b| b.is_ascii_alphanumeric() || b"@.-_+".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn gcp(numbers: &[&str], emails: &[&str]) -> CrossAccountAccess {
        CrossAccountAccess::Gcp {
            project_numbers: set(numbers),
            allowed_service_types: if numbers.is_empty() {
                BTreeSet::new()
            } else {
                [ComputeServiceType::Serverless].into()
            },
            service_account_emails: set(emails),
        }
    }

    #[test]
    fn merge_keeps_everything_else() {
        let conditional = json!({"role": READER_ROLE, "members": ["user:a@example.com"],
            "condition": {"title": "expires", "expression": "request.time < timestamp(\"2030-01-01T00:00:00Z\")"}});
        let writer = json!({"role": "roles/artifactregistry.writer", "members": ["group:ops@example.com"]});
        let mut p = Policy::parse(json!({"version": 1, "etag": "BwX1", "bindings": [writer, conditional],
            "auditConfigs": [{"service": "allServices"}]}))
        .unwrap();
        let add = members(&gcp(&["123"], &["pull@other.iam.gserviceaccount.com"])).unwrap();
        assert!(p.apply(&add, true));
        assert!(!p.apply(&add, true), "adding again changes nothing");
        assert_eq!(p.granted(), gcp(&["123"], &["pull@other.iam.gserviceaccount.com"]));
        let out = p.to_write();
        assert_eq!(out["etag"], "BwX1");
        assert_eq!(out["version"], 3);
        assert_eq!(out["bindings"][0], writer);
        assert_eq!(out["bindings"][1], conditional);
        assert_eq!(out["auditConfigs"][0]["service"], "allServices");
        assert!(p.apply(&add, false));
        assert_eq!(p.to_write()["bindings"].as_array().unwrap().len(), 2, "the emptied binding is dropped");
    }

    #[test]
    fn grants_are_validated() {
        assert!(members(&gcp(&[], &["not-an-email"])).is_err());
        assert!(members(&gcp(&["12a"], &[])).is_err());
        let no_type = CrossAccountAccess::Gcp {
            project_numbers: set(&["123"]),
            allowed_service_types: BTreeSet::new(),
            service_account_emails: BTreeSet::new(),
        };
        assert!(members(&no_type).unwrap_err().to_string().contains("serverless"));
        assert!(members(&CrossAccountAccess::Local { account_ids: set(&["a"]) }).is_err());
        assert_eq!(
            members(&gcp(&["42"], &[])).unwrap(),
            set(&["serviceAccount:service-42@serverless-robot-prod.iam.gserviceaccount.com"])
        );
    }
}
