//! ECR repository policies: the statements regbridge writes for cross-account pull grants, merged by `Sid`
//! with statements written by anyone else, which are kept as they are.
//!
//! See <https://docs.aws.amazon.com/AmazonECR/latest/userguide/repository-policy-examples.html>.

use std::collections::BTreeSet;

use regbridge::types::ComputeServiceType;
use regbridge::{CrossAccountAccess, Error, Result};
use serde_json::{Value, json};

use super::credential::PULL_ACTIONS;
use super::partition::Partition;

/// Sid of the statement granting AWS principals (account roots and role ARNs) pull.
pub const SID_PULL: &str = "RegbridgeCrossAccountPull";
/// Sid of the statement granting the Lambda service principal pull for the granted accounts' functions.
pub const SID_LAMBDA: &str = "RegbridgeCrossAccountPullLambda";

fn is_ours(stmt: &Value) -> bool {
    matches!(stmt.get("Sid").and_then(Value::as_str), Some(SID_PULL | SID_LAMBDA))
}

fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect(),
        _ => Vec::new(),
    }
}

/// A repository policy split into regbridge's grant and every other statement.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// The policy document without its `Statement` list (`Version`, `Id`, ...), kept as read.
    pub document: serde_json::Map<String, Value>,
    /// Statements regbridge did not write, in their original order and form.
    pub foreign: Vec<Value>,
    /// What regbridge's statements grant (an empty `Aws` access when there are none).
    pub granted: CrossAccountAccess,
}

fn empty_aws() -> CrossAccountAccess {
    CrossAccountAccess::Aws {
        account_ids: BTreeSet::new(),
        regions: BTreeSet::new(),
        allowed_service_types: BTreeSet::new(),
        role_arns: BTreeSet::new(),
    }
}

impl Policy {
    /// Parses a policy text (`None`: the repository has no policy); account roots are recognised in
    /// `partition`'s ARN form.
    pub fn parse(text: Option<&str>, partition: &Partition) -> Result<Self> {
        let Some(text) = text else {
            return Ok(Self { document: serde_json::Map::new(), foreign: Vec::new(), granted: empty_aws() });
        };
        let mut document: serde_json::Map<String, Value> = serde_json::from_str(text)
            .map_err(|e| Error::internal("the repository policy ECR returned is not a JSON object", e))?;
        let statements = match document.remove("Statement") {
            Some(Value::Array(a)) => a,
            Some(v @ Value::Object(_)) => vec![v],
            _ => Vec::new(),
        };
        let (ours, foreign): (Vec<Value>, Vec<Value>) = statements.into_iter().partition(is_ours);
        let (mut account_ids, mut regions, mut types, mut role_arns) =
            (BTreeSet::new(), BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
        for stmt in &ours {
            if stmt["Sid"] == SID_PULL {
                for p in strings(stmt.get("Principal").and_then(|p| p.get("AWS"))) {
                    match partition.root_account(&p) {
                        Some(account) => account_ids.insert(account.to_owned()),
                        None => role_arns.insert(p),
                    };
                }
            } else {
                types.insert(ComputeServiceType::Serverless);
                let arns = strings(stmt.pointer("/Condition/StringLike/aws:sourceArn"));
                for arn in arns {
                    // arn:{partition}:lambda:{region}:{account}:function:*
                    if let Some(region) = arn.split(':').nth(3).filter(|r| *r != "*" && !r.is_empty()) {
                        regions.insert(region.to_owned());
                    }
                }
            }
        }
        let granted = CrossAccountAccess::Aws { account_ids, regions, allowed_service_types: types, role_arns };
        Ok(Self { document, foreign, granted })
    }

    /// The policy text with `self.granted` written as regbridge's statements after the foreign ones, or
    /// `None` when no statement at all is left (the policy is then deleted). ARNs are written in
    /// `partition`'s form.
    pub fn render(&self, partition: &Partition) -> Option<String> {
        let mut statements = self.foreign.clone();
        statements.extend(statements_for(&self.granted, partition));
        if statements.is_empty() {
            return None;
        }
        let mut document = self.document.clone();
        document.entry("Version").or_insert_with(|| json!("2012-10-17"));
        document.insert("Statement".into(), Value::Array(statements));
        Some(Value::Object(document).to_string())
    }
}

/// regbridge's statements for `access` (an `Aws` access): account roots and roles get the pull actions;
/// with `Serverless`, the Lambda service principal gets them for functions of the granted accounts (in the
/// granted regions, or any region when none is listed). ARNs are those of `partition`.
pub fn statements_for(access: &CrossAccountAccess, partition: &Partition) -> Vec<Value> {
    let CrossAccountAccess::Aws { account_ids, regions, allowed_service_types, role_arns } = access else {
        return Vec::new();
    };
    if account_ids.is_empty() && role_arns.is_empty() {
        return Vec::new();
    }
    let principals: Vec<String> =
        account_ids.iter().map(|a| partition.account_root(a)).chain(role_arns.iter().cloned()).collect();
    let mut out = vec![json!({
        "Sid": SID_PULL,
        "Effect": "Allow",
        "Principal": {"AWS": principals},
        "Action": PULL_ACTIONS,
    })];
    if allowed_service_types.iter().any(|t| t.is_serverless()) {
        let mut accounts: BTreeSet<String> = account_ids.clone();
        accounts.extend(role_arns.iter().filter_map(|r| r.split(':').nth(4).map(str::to_owned)));
        let region_list: Vec<&str> =
            if regions.is_empty() { vec!["*"] } else { regions.iter().map(String::as_str).collect() };
        let arns: Vec<String> = accounts
            .iter()
            .flat_map(|a| region_list.iter().map(move |r| partition.arn("lambda", r, a, "function:*")))
            .collect();
        out.push(json!({
            "Sid": SID_LAMBDA,
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": PULL_ACTIONS,
            "Condition": {"StringLike": {"aws:sourceArn": arns}},
        }));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn round_trips_and_keeps_foreign_statements() {
        let foreign = json!({"Sid": "Theirs", "Effect": "Deny", "Principal": "*", "Action": "ecr:PutImage"});
        let text = json!({"Version": "2012-10-17", "Statement": [foreign]}).to_string();
        let aws = Partition::for_region("us-east-1");
        let mut policy = Policy::parse(Some(&text), &aws).unwrap();
        let grant = CrossAccountAccess::Aws {
            account_ids: set(&["111122223333"]),
            regions: set(&["eu-west-1"]),
            allowed_service_types: [ComputeServiceType::Serverless].into(),
            role_arns: set(&["arn:aws:iam::444455556666:role/puller"]),
        };
        policy.granted = policy.granted.union(&grant).unwrap();
        let rendered = policy.render(&aws).unwrap();
        let back = Policy::parse(Some(&rendered), &aws).unwrap();
        assert_eq!(back.granted, grant);
        assert_eq!(back.foreign, vec![foreign]);
        assert!(rendered.contains("arn:aws:lambda:eu-west-1:444455556666:function:*"), "{rendered}");
        let none = Policy { granted: empty_aws(), foreign: vec![], document: back.document };
        assert_eq!(none.render(&aws), None);
    }

    #[test]
    fn statements_use_the_partition_of_the_registry() {
        let cn = Partition::for_region("cn-north-1");
        let grant = CrossAccountAccess::Aws {
            account_ids: set(&["111122223333"]),
            regions: set(&["cn-north-1"]),
            allowed_service_types: [ComputeServiceType::Serverless].into(),
            role_arns: BTreeSet::new(),
        };
        let policy = Policy { granted: grant.clone(), ..Policy::parse(None, &cn).unwrap() };
        let rendered = policy.render(&cn).unwrap();
        assert!(rendered.contains("\"arn:aws-cn:iam::111122223333:root\""), "{rendered}");
        assert!(rendered.contains("arn:aws-cn:lambda:cn-north-1:111122223333:function:*"), "{rendered}");
        assert!(!rendered.contains("arn:aws:"), "{rendered}");
        assert_eq!(Policy::parse(Some(&rendered), &cn).unwrap().granted, grant);
    }
}
