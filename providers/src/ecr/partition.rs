//! AWS partitions: the `arn:{partition}:` of every ARN regbridge writes and the DNS suffix of the registry
//! host. Regions of the China partition live under `amazonaws.com.cn`, GovCloud regions are `aws-us-gov`
//! (same suffix as the commercial partition), and a session or repository policy naming `arn:aws:` in
//! another partition matches nothing, so every request would be denied.
//!
//! See <https://docs.aws.amazon.com/IAM/latest/UserGuide/reference-arns.html> and
//! <https://docs.aws.amazon.com/general/latest/gr/ecr.html>.

/// A partition: its ARN name and the DNS suffix of its service endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    name: String,
    dns_suffix: &'static str,
}

/// Region prefixes of the partitions other than `aws`, most specific first, with their DNS suffixes.
const PARTITIONS: [(&str, &str, &str); 6] = [
    ("cn-", "aws-cn", "amazonaws.com.cn"),
    ("us-gov-", "aws-us-gov", "amazonaws.com"),
    ("us-isob-", "aws-iso-b", "sc2s.sgov.gov"),
    ("us-isof-", "aws-iso-f", "csp.hci.ic.gov"),
    ("eu-isoe-", "aws-iso-e", "cloud.adc-e.uk"),
    ("us-iso-", "aws-iso", "c2s.ic.gov"),
];

impl Partition {
    /// The partition a region belongs to (`aws` for every region no other partition claims).
    pub fn for_region(region: &str) -> Self {
        PARTITIONS.iter().find(|(prefix, ..)| region.starts_with(prefix)).map_or(
            Self { name: "aws".into(), dns_suffix: "amazonaws.com" },
            |(_, name, suffix)| Self { name: (*name).into(), dns_suffix: suffix },
        )
    }

    /// The partition named by `arn` (`arn:aws-cn:iam::...` → `aws-cn`), with the DNS suffix of `region`'s
    /// partition when the name is one this module does not know. `None` when `arn` is not an ARN.
    pub fn from_arn(arn: &str, region: &str) -> Option<Self> {
        let mut parts = arn.split(':');
        let name = (parts.next() == Some("arn")).then(|| parts.next()).flatten().filter(|p| p.starts_with("aws"))?;
        let known = std::iter::once(("", "aws", "amazonaws.com")).chain(PARTITIONS).find(|(_, n, _)| *n == name);
        let dns_suffix = known.map_or(Self::for_region(region).dns_suffix, |(_, _, suffix)| suffix);
        Some(Self { name: name.to_owned(), dns_suffix })
    }

    /// The partition's ARN name: `aws`, `aws-cn`, `aws-us-gov`, ...
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `arn:{partition}:iam::{account}:root`, the principal for a whole account.
    pub fn account_root(&self, account: &str) -> String {
        format!("arn:{}:iam::{account}:root", self.name)
    }

    /// The account of an account-root principal of this partition, `None` for any other principal.
    pub fn root_account<'a>(&self, principal: &'a str) -> Option<&'a str> {
        principal.strip_prefix("arn:")?.strip_prefix(self.name.as_str())?.strip_prefix(":iam::")?.strip_suffix(":root")
    }

    /// `arn:{partition}:{service}:{region}:{account}:{resource}`.
    pub fn arn(&self, service: &str, region: &str, account: &str, resource: &str) -> String {
        format!("arn:{}:{service}:{region}:{account}:{resource}", self.name)
    }

    /// The registry host computed for `account` in `region`: `{account}.dkr.ecr.{region}.{suffix}`.
    pub fn registry_host(&self, account: &str, region: &str) -> String {
        format!("{account}.dkr.ecr.{region}.{}", self.dns_suffix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_map_to_their_partition() {
        for (region, name, host) in [
            ("us-east-1", "aws", "1.dkr.ecr.us-east-1.amazonaws.com"),
            ("eu-central-2", "aws", "1.dkr.ecr.eu-central-2.amazonaws.com"),
            ("cn-north-1", "aws-cn", "1.dkr.ecr.cn-north-1.amazonaws.com.cn"),
            ("cn-northwest-1", "aws-cn", "1.dkr.ecr.cn-northwest-1.amazonaws.com.cn"),
            ("us-gov-west-1", "aws-us-gov", "1.dkr.ecr.us-gov-west-1.amazonaws.com"),
            ("us-iso-east-1", "aws-iso", "1.dkr.ecr.us-iso-east-1.c2s.ic.gov"),
            ("us-isob-east-1", "aws-iso-b", "1.dkr.ecr.us-isob-east-1.sc2s.sgov.gov"),
        ] {
            let p = Partition::for_region(region);
            assert_eq!((p.name(), p.registry_host("1", region).as_str()), (name, host), "{region}");
        }
    }

    #[test]
    fn the_caller_arn_names_the_partition() {
        let p = Partition::from_arn("arn:aws-us-gov:iam::123456789012:user/ci", "us-gov-east-1").unwrap();
        assert_eq!(p, Partition::for_region("us-gov-east-1"));
        let cn = Partition::from_arn("arn:aws-cn:sts::123456789012:assumed-role/r/s", "us-east-1").unwrap();
        assert_eq!(cn.registry_host("1", "cn-north-1"), "1.dkr.ecr.cn-north-1.amazonaws.com.cn");
        assert_eq!(Partition::from_arn("arn:aws-future:iam::1:root", "us-east-1").unwrap().name(), "aws-future");
        assert_eq!(Partition::from_arn("not an arn", "us-east-1"), None);
        assert_eq!(Partition::from_arn("arn:gcp:iam::1:root", "us-east-1"), None);
    }

    #[test]
    fn arns_carry_the_partition() {
        let p = Partition::for_region("cn-north-1");
        assert_eq!(p.arn("ecr", "cn-north-1", "1", "repository/a"), "arn:aws-cn:ecr:cn-north-1:1:repository/a");
        assert_eq!(p.account_root("111122223333"), "arn:aws-cn:iam::111122223333:root");
        assert_eq!(p.root_account("arn:aws-cn:iam::111122223333:root"), Some("111122223333"));
        assert_eq!(p.root_account("arn:aws:iam::111122223333:root"), None);
        assert_eq!(p.root_account("arn:aws-cn:iam::111122223333:role/x"), None);
    }
}
