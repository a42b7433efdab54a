//! The ECR provider against moto's server (started per test on a free 127.0.0.1 port) and, for what moto
//! lacks or cannot show (GetDownloadUrlForLayer, the AssumeRole request, failing reads), wiremock.
#![cfg(feature = "ecr")]

use std::collections::BTreeSet;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_ecr::config::{BehaviorVersion, Credentials as AwsCredentials, Region};
use base64::Engine;
use chrono::{SecondsFormat, Utc};
use regbridge::conformance::{self, Capabilities};
use regbridge::oci::{Digest, Reference};
use regbridge::{
    ArtifactRegistry, AuthMethod, ComputeServiceType, CrossAccountAccess, CrossAccountPermissions, Error, Permissions,
    Resource,
};
use regbridge_providers::ecr::{EcrRegistry, EcrRegistryBuilder};
use serde_json::{Value, json};
use wiremock::matchers::{body_partial_json, header, method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const ACCOUNT: &str = "123456789012";
const REGION: &str = "us-east-1";
const PULL_ROLE: &str = "arn:aws:iam::123456789012:role/regbridge-pull";
const PUSH_ROLE: &str = "arn:aws:iam::123456789012:role/regbridge-push";
const TARGET: &str = "AmazonEC2ContainerRegistry_V20150921";

/// moto's server on a free port, killed when dropped.
struct Moto {
    child: Child,
    url: String,
}

impl Moto {
    fn start() -> Self {
        let venv = std::env::var("REGBRIDGE_TEST_VENV").unwrap_or_else(|_| "/tmp/regbridge-test-venv".into());
        let bin = PathBuf::from(venv).join("bin/moto_server");
        assert!(bin.exists(), "{} is missing: run scripts/install-test-deps.sh (as root) first", bin.display());
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}; run scripts/install-test-deps.sh", bin.display()));
        let moto = Moto { child, url: format!("http://127.0.0.1:{port}") };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto_server did not listen on {port} within 30 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        moto
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn base(endpoint: &str) -> EcrRegistryBuilder {
    EcrRegistry::builder()
        .with_region(REGION)
        .with_credentials("testing", "testing")
        .with_endpoint(endpoint)
        .with_prefix("team")
}

fn with_roles(b: EcrRegistryBuilder) -> EcrRegistryBuilder {
    b.with_pull_role_arn(PULL_ROLE).with_push_role_arn(PUSH_ROLE)
}

/// A raw SDK client on moto, to set up and inspect state behind the provider's back.
fn sdk(endpoint: &str) -> aws_sdk_ecr::Client {
    sdk_in(endpoint, REGION)
}

/// A raw SDK client on moto for `region` (moto keeps separate state per region).
fn sdk_in(endpoint: &str, region: &str) -> aws_sdk_ecr::Client {
    let conf = aws_sdk_ecr::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .credentials_provider(AwsCredentials::new("testing", "testing", None, None, "test"))
        .endpoint_url(endpoint)
        .build();
    aws_sdk_ecr::Client::from_conf(conf)
}

fn fixture(name: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/aws").join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn pull_grant(accounts: &[&str], roles: &[&str], serverless: bool) -> CrossAccountPermissions {
    CrossAccountPermissions {
        access: CrossAccountAccess::Aws {
            account_ids: set(accounts),
            regions: if serverless { set(&["us-east-1"]) } else { BTreeSet::new() },
            allowed_service_types: if serverless { [ComputeServiceType::Serverless].into() } else { BTreeSet::new() },
            role_arns: set(roles),
        },
        permissions: Permissions::Pull,
    }
}

/// Puts an OCI image manifest with tag `tag` into `repo` through the SDK; returns its bytes. The digest is
/// given, as ECR computes it (sha256 of the bytes): moto would otherwise make one up from the layers.
async fn put_manifest(client: &aws_sdk_ecr::Client, repo: &str, tag: &str) -> String {
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 2,
                   "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},
        "layers": []
    })
    .to_string();
    client
        .put_image()
        .repository_name(repo)
        .image_manifest(&manifest)
        .image_manifest_media_type("application/vnd.oci.image.manifest.v1+json")
        .image_digest(Digest::sha256(manifest.as_bytes()).to_string())
        .image_tag(tag)
        .send()
        .await
        .expect("PutImage on moto");
    manifest
}

#[tokio::test]
async fn conformance_against_moto() {
    let moto = Moto::start();
    // STS as AWS runs it (moto does not enforce MaxSessionDuration): roles with the default 1 h limit.
    let sts = sts_stub(Sts::with_limit(3600)).await;
    // The account is discovered with STS GetCallerIdentity.
    let reg = with_roles(base(&moto.url)).with_sts_endpoint(sts.uri()).build().await.unwrap();
    assert_eq!(reg.account(), ACCOUNT);
    let repo = reg.create_repository("conf-image").await.unwrap();
    put_manifest(&sdk(&moto.url), &repo.name, "v1").await;

    let mut caps = Capabilities::new("conf-");
    // 900 s up to the role's MaxSessionDuration (1 h by default; 12 h at most when raised).
    caps.ttl_bounds = (Duration::from_secs(900), Duration::from_secs(3600));
    caps.grants = Some((
        pull_grant(&["111122223333"], &[], true),
        pull_grant(&["444455556666"], &["arn:aws:iam::777788889999:role/puller"], true),
    ));
    caps.existing_manifest = Some((repo.name.clone(), Reference::parse("v1").unwrap()));
    conformance::run_all(&reg, &caps).await.unwrap();
}

#[tokio::test]
async fn repositories_create_get_delete() {
    let moto = Moto::start();
    let reg = base(&moto.url).with_account(ACCOUNT).build().await.unwrap();
    assert_eq!(reg.to_string(), "Ecr(123456789012/us-east-1)");
    assert_eq!(reg.registry_endpoint(), "https://123456789012.dkr.ecr.us-east-1.amazonaws.com");
    assert_eq!(reg.upstream_repository_prefix(), "team");

    let first = reg.create_repository("app").await.unwrap();
    assert_eq!(first.name, "team/app");
    assert_eq!(first.uri, "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/app");
    assert!(first.created_at.is_some());
    let again = reg.create_repository("app").await.unwrap();
    assert_eq!(again.name, first.name);
    assert_eq!(again.uri, first.uri);
    assert_eq!(reg.get_repository("team/app").await.unwrap().name, "team/app");

    // Delete is forced: a repository with images goes too.
    put_manifest(&sdk(&moto.url), "team/app", "v1").await;
    reg.delete_repository("team/app").await.unwrap();
    assert!(matches!(
        reg.get_repository("team/app").await,
        Err(Error::NotFound { resource: Resource::Repository, .. })
    ));
    assert!(matches!(reg.delete_repository("team/app").await, Err(Error::NotFound { .. })));
    assert!(matches!(reg.create_repository("Bad Name").await, Err(Error::InvalidInput { .. })));

    // Creation settings reach ECR.
    let strict = base(&moto.url).with_account(ACCOUNT).with_immutable_tags(true).with_scan_on_push(true);
    strict.build().await.unwrap().create_repository("strict").await.unwrap();
    let described = sdk(&moto.url).describe_repositories().repository_names("team/strict").send().await.unwrap();
    let repo = &described.repositories()[0];
    assert_eq!(repo.image_tag_mutability(), Some(&aws_sdk_ecr::types::ImageTagMutability::Immutable));
    assert_eq!(repo.image_scanning_configuration().map(|c| c.scan_on_push()), Some(true));
}

#[tokio::test]
async fn manifests_and_blobs_read_through_the_api() {
    let moto = Moto::start();
    let reg = base(&moto.url).with_account(ACCOUNT).build().await.unwrap();
    let client = sdk(&moto.url);
    reg.create_repository("reads").await.unwrap();
    let bytes = put_manifest(&client, "team/reads", "v1").await;

    let got = reg.get_manifest("team/reads", &Reference::parse("v1").unwrap()).await.unwrap();
    assert_eq!(got.bytes, bytes.as_bytes());
    assert_eq!(got.media_type, "application/vnd.oci.image.manifest.v1+json");
    assert_eq!(got.digest, Digest::sha256(bytes.as_bytes()));
    let head = reg.head_manifest("team/reads", &Reference::parse("v1").unwrap()).await.unwrap().unwrap();
    assert_eq!((head.digest, head.size), (got.digest.clone(), bytes.len() as u64));
    assert!(matches!(
        reg.get_manifest("team/reads", &Reference::parse("nope").unwrap()).await,
        Err(Error::NotFound { .. })
    ));

    // A layer uploaded through ECR's layer API is seen by head_blob with its size.
    let layer = b"layer bytes".to_vec();
    let upload = client.initiate_layer_upload().repository_name("team/reads").send().await.unwrap();
    let id = upload.upload_id().unwrap().to_owned();
    client
        .upload_layer_part()
        .repository_name("team/reads")
        .upload_id(&id)
        .part_first_byte(0)
        .part_last_byte(layer.len() as i64 - 1)
        .layer_part_blob(aws_sdk_ecr::primitives::Blob::new(layer.clone()))
        .send()
        .await
        .unwrap();
    let digest = Digest::sha256(&layer);
    client
        .complete_layer_upload()
        .repository_name("team/reads")
        .upload_id(&id)
        .layer_digests(digest.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(reg.head_blob("team/reads", &digest).await.unwrap(), Some(layer.len() as u64));
    assert_eq!(reg.head_blob("team/reads", &Digest::sha256(b"other")).await.unwrap(), None);
}

fn statements(policy: &str) -> Vec<Value> {
    serde_json::from_str::<Value>(policy).unwrap()["Statement"].as_array().unwrap().clone()
}

#[tokio::test]
async fn policy_merge_keeps_foreign_statements() {
    let moto = Moto::start();
    let reg = base(&moto.url).with_account(ACCOUNT).build().await.unwrap();
    let client = sdk(&moto.url);
    reg.create_repository("shared").await.unwrap();
    let foreign = json!({
        "Sid": "OpsTeamPull",
        "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::999999999999:root"},
        "Action": ["ecr:BatchGetImage"]
    });
    client
        .set_repository_policy()
        .repository_name("team/shared")
        .policy_text(json!({"Version": "2012-10-17", "Statement": [foreign]}).to_string())
        .send()
        .await
        .unwrap();

    let grant = pull_grant(&["111122223333"], &[], true);
    reg.add_cross_account_access("team/shared", &grant).await.unwrap();
    let text = client.get_repository_policy().repository_name("team/shared").send().await.unwrap();
    let stmts = statements(text.policy_text().unwrap());
    assert_eq!(stmts[0], foreign, "the foreign statement is kept as it was");
    let ours = stmts.iter().find(|s| s["Sid"] == "RegbridgeCrossAccountPull").unwrap();
    assert_eq!(ours["Principal"]["AWS"], json!(["arn:aws:iam::111122223333:root"]));
    let lambda = stmts.iter().find(|s| s["Sid"] == "RegbridgeCrossAccountPullLambda").unwrap();
    assert_eq!(lambda["Principal"]["Service"], "lambda.amazonaws.com");
    assert_eq!(
        lambda["Condition"]["StringLike"]["aws:sourceArn"],
        json!(["arn:aws:lambda:us-east-1:111122223333:function:*"])
    );
    assert_eq!(reg.get_cross_account_access("team/shared").await.unwrap(), vec![grant.clone()]);

    // Removing the last grant deletes only our statements.
    reg.remove_cross_account_access("team/shared", &grant).await.unwrap();
    let text = client.get_repository_policy().repository_name("team/shared").send().await.unwrap();
    assert_eq!(statements(text.policy_text().unwrap()), vec![foreign]);
    assert!(reg.get_cross_account_access("team/shared").await.unwrap().is_empty());

    // With only our statements, removing the last grant removes the policy.
    reg.create_repository("solo").await.unwrap();
    reg.add_cross_account_access("team/solo", &grant).await.unwrap();
    reg.remove_cross_account_access("team/solo", &grant).await.unwrap();
    let gone = client.get_repository_policy().repository_name("team/solo").send().await.unwrap_err();
    assert!(gone.into_service_error().is_repository_policy_not_found_exception());

    let push = CrossAccountPermissions { permissions: Permissions::PushPull, ..grant };
    assert!(matches!(reg.add_cross_account_access("team/solo", &push).await, Err(Error::InvalidInput { .. })));
}

async fn policy_text(client: &aws_sdk_ecr::Client, repo: &str) -> Option<String> {
    match client.get_repository_policy().repository_name(repo).send().await {
        Ok(out) => out.policy_text().map(str::to_owned),
        Err(e) => {
            assert!(e.into_service_error().is_repository_policy_not_found_exception(), "unexpected error");
            None
        }
    }
}

fn has_our_statement(policy: Option<&str>) -> bool {
    policy.is_some_and(|p| statements(p).iter().any(|s| s["Sid"] == "RegbridgeCrossAccountPull"))
}

#[tokio::test]
async fn grants_are_applied_to_replicas_in_the_listed_regions() {
    let moto = Moto::start();
    let reg = base(&moto.url).with_account(ACCOUNT).build().await.unwrap();
    let home = sdk(&moto.url);
    let replica = sdk_in(&moto.url, "eu-west-1");
    reg.create_repository("replicated").await.unwrap();
    // The replica through the provider built for its region; moto keeps the regions apart.
    let eu = base(&moto.url).with_region("eu-west-1").with_account(ACCOUNT).build().await.unwrap();
    eu.create_repository("replicated").await.unwrap();
    assert!(sdk_in(&moto.url, "ap-south-1").describe_repositories().send().await.unwrap().repositories().is_empty());
    let foreign = json!({
        "Sid": "EuOpsPull",
        "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::999999999999:root"},
        "Action": ["ecr:BatchGetImage"]
    });
    replica
        .set_repository_policy()
        .repository_name("team/replicated")
        .policy_text(json!({"Version": "2012-10-17", "Statement": [foreign]}).to_string())
        .send()
        .await
        .unwrap();

    let grant = CrossAccountPermissions {
        access: CrossAccountAccess::Aws {
            account_ids: set(&["111122223333"]),
            regions: set(&["eu-west-1"]),
            allowed_service_types: BTreeSet::new(),
            role_arns: BTreeSet::new(),
        },
        permissions: Permissions::Pull,
    };
    reg.add_cross_account_access("team/replicated", &grant).await.unwrap();
    for (client, region) in [(&home, REGION), (&replica, "eu-west-1")] {
        let text = policy_text(client, "team/replicated").await.unwrap_or_else(|| panic!("no policy in {region}"));
        let stmts = statements(&text);
        let ours = stmts.iter().find(|s| s["Sid"] == "RegbridgeCrossAccountPull").expect(region);
        assert_eq!(ours["Principal"]["AWS"], json!(["arn:aws:iam::111122223333:root"]), "{region}");
    }
    assert_eq!(statements(&policy_text(&replica, "team/replicated").await.unwrap())[0], foreign);
    // The home region's grants are what is reported.
    let reported = reg.get_cross_account_access("team/replicated").await.unwrap();
    assert!(
        matches!(&reported[..], [CrossAccountPermissions { access: CrossAccountAccess::Aws { account_ids, .. }, .. }]
        if *account_ids == set(&["111122223333"])),
        "{reported:?}"
    );

    reg.remove_cross_account_access("team/replicated", &grant).await.unwrap();
    assert_eq!(policy_text(&home, "team/replicated").await, None, "only our statement was there: policy deleted");
    let left = policy_text(&replica, "team/replicated").await.expect("the foreign statement stays");
    assert_eq!(statements(&left), vec![foreign.clone()]);

    // A listed region without the repository: an error naming it, and nothing written anywhere.
    reg.add_cross_account_access("team/replicated", &pull_grant(&["444455556666"], &[], false)).await.unwrap();
    let home_before = policy_text(&home, "team/replicated").await;
    let replica_before = policy_text(&replica, "team/replicated").await;
    let missing = CrossAccountPermissions {
        access: CrossAccountAccess::Aws {
            account_ids: set(&["111122223333"]),
            regions: set(&["eu-west-1", "ap-south-1"]),
            allowed_service_types: BTreeSet::new(),
            role_arns: BTreeSet::new(),
        },
        permissions: Permissions::Pull,
    };
    let err = reg.add_cross_account_access("team/replicated", &missing).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { resource: Resource::Repository, .. }), "{err:?}");
    assert!(err.to_string().contains("ap-south-1"), "the region is named: {err}");
    assert_eq!(policy_text(&home, "team/replicated").await, home_before, "home policy unchanged");
    assert_eq!(policy_text(&replica, "team/replicated").await, replica_before, "replica policy unchanged");
    assert!(has_our_statement(home_before.as_deref()) && !has_our_statement(replica_before.as_deref()));
    let err = reg.remove_cross_account_access("team/replicated", &missing).await.unwrap_err();
    assert!(err.to_string().contains("ap-south-1"), "{err}");
    assert_eq!(policy_text(&home, "team/replicated").await, home_before, "home policy unchanged");

    // A malformed region is refused before any call.
    let bad = CrossAccountPermissions {
        access: CrossAccountAccess::Aws {
            account_ids: set(&["111122223333"]),
            regions: set(&["Mars"]),
            allowed_service_types: BTreeSet::new(),
            role_arns: BTreeSet::new(),
        },
        permissions: Permissions::Pull,
    };
    let err = reg.add_cross_account_access("team/replicated", &bad).await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }) && err.to_string().contains("Mars"), "{err:?}");
}

#[tokio::test]
async fn credentials_without_roles_decode_the_token() {
    let moto = Moto::start();
    let reg = base(&moto.url).with_account(ACCOUNT).build().await.unwrap();
    reg.create_repository("plain").await.unwrap();
    let creds = reg.generate_credentials("team/plain", Permissions::Pull, Duration::from_secs(60)).await.unwrap();
    assert_eq!(creds.auth_method, AuthMethod::Basic);
    assert_eq!(creds.username, "AWS");
    assert_eq!(creds.password.expose(), "123456789012-auth-token");
    assert!(!format!("{creds:?}").contains("auth-token"));
    // Base credentials: the token's 12 h, whatever the TTL (moto reports a 2015 expiry, taken as unknown).
    let left = creds.remaining().as_secs();
    assert!((12 * 3600 - 60..=12 * 3600).contains(&left), "{left}");
    assert!(matches!(
        reg.generate_credentials("team/missing", Permissions::Pull, Duration::from_secs(900)).await,
        Err(Error::NotFound { .. })
    ));
}

fn form(req: &Request) -> Vec<(String, String)> {
    url::form_urlencoded::parse(&req.body).into_owned().collect()
}

fn field<'a>(form: &'a [(String, String)], key: &str) -> &'a str {
    form.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str()).unwrap_or_else(|| panic!("no {key} in {form:?}"))
}

/// A wiremock STS answering `GetCallerIdentity` and `AssumeRole` as the STS API reference documents,
/// including its refusal of a `DurationSeconds` above the role's `MaxSessionDuration` (moto accepts any).
struct Sts {
    /// The roles' `MaxSessionDuration` in seconds.
    max_session: u64,
    /// The partition of the caller's ARN.
    partition: &'static str,
    /// `AssumeRole` answers `AccessDenied` (the role's trust policy does not name the caller).
    deny: bool,
}

impl Sts {
    fn with_limit(max_session: u64) -> Self {
        Self { max_session, partition: "aws", deny: false }
    }
}

fn xml(status: u16, body: String) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_raw(body, "text/xml")
}

impl Respond for Sts {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let form = form(req);
        match field(&form, "Action") {
            "GetCallerIdentity" => xml(
                200,
                fixture("sts-get-caller-identity.xml").replace("arn:aws:", &format!("arn:{}:", self.partition)),
            ),
            "AssumeRole" if self.deny => xml(403, fixture("sts-error-access-denied.xml"))
                .insert_header("x-amzn-RequestId", "7d1e2f3a-4b5c-4d6e-8f90-a1b2c3d4e5f6"),
            "AssumeRole" => {
                let seconds: u64 = field(&form, "DurationSeconds").parse().unwrap();
                if seconds > self.max_session {
                    return xml(400, fixture("sts-error-max-session-duration.xml"))
                        .insert_header("x-amzn-RequestId", "4c5f1e2a-8d7b-4a1e-9f0c-1b2c3d4e5f60");
                }
                let expiry =
                    (Utc::now() + chrono::Duration::seconds(seconds as i64)).to_rfc3339_opts(SecondsFormat::Secs, true);
                xml(200, fixture("sts-assume-role.xml").replace("2099-01-01T00:00:00Z", &expiry))
            }
            other => panic!("the STS stub does not know {other}"),
        }
    }
}

/// moto for ECR, `sts` for STS, and a provider with both roles on them.
async fn with_sts(sts: Sts) -> (Moto, MockServer, EcrRegistry) {
    let moto = Moto::start();
    let sts = sts_stub(sts).await;
    let reg = with_roles(base(&moto.url)).with_account(ACCOUNT).with_sts_endpoint(sts.uri()).build().await.unwrap();
    (moto, sts, reg)
}

async fn sts_stub(sts: Sts) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST")).and(path("/")).respond_with(sts).mount(&server).await;
    server
}

/// The `AssumeRole` requests the stub received, as forms.
async fn assume_role_requests(sts: &MockServer) -> Vec<Vec<(String, String)>> {
    let forms = sts.received_requests().await.unwrap().iter().map(form).collect::<Vec<_>>();
    forms.into_iter().filter(|f| field(f, "Action") == "AssumeRole").collect()
}

#[tokio::test]
async fn assume_role_sends_the_scoped_session_policy_and_clamped_duration() {
    let (_moto, sts, reg) = with_sts(Sts::with_limit(43_200)).await;
    reg.create_repository("scoped").await.unwrap();

    let pull = reg.generate_credentials("team/scoped", Permissions::Pull, Duration::from_secs(1)).await.unwrap();
    assert_eq!((pull.username.as_str(), pull.password.expose()), ("AWS", "123456789012-auth-token"));
    // A role whose MaxSessionDuration was raised to 12 h grants the longest session STS allows.
    reg.generate_credentials("team/scoped", Permissions::PushPull, Duration::from_secs(100_000)).await.unwrap();

    let sent = assume_role_requests(&sts).await;
    assert_eq!(sent.len(), 2, "{sent:?}");
    let arn = "arn:aws:ecr:us-east-1:123456789012:repository/team/scoped";
    for (req, role, seconds, can_push) in [(&sent[0], PULL_ROLE, "900", false), (&sent[1], PUSH_ROLE, "43200", true)] {
        assert_eq!(field(req, "RoleArn"), role);
        assert_eq!(field(req, "DurationSeconds"), seconds);
        assert_eq!(field(req, "RoleSessionName"), "regbridge-team-scoped");
        let policy: Value = serde_json::from_str(field(req, "Policy")).unwrap();
        let stmts = policy["Statement"].as_array().unwrap();
        let repo_stmt = stmts.iter().find(|s| s["Resource"] == arn).expect("a statement on the repository ARN");
        let actions: Vec<&str> = repo_stmt["Action"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
        assert!(actions.contains(&"ecr:BatchGetImage") && actions.contains(&"ecr:GetDownloadUrlForLayer"));
        assert_eq!(actions.contains(&"ecr:PutImage"), can_push, "{actions:?}");
        let token_stmt = stmts.iter().find(|s| s["Action"] == "ecr:GetAuthorizationToken").unwrap();
        assert_eq!(token_stmt["Resource"], "*");
        assert_eq!(stmts.len(), 2, "nothing else is allowed: {policy}");
    }
}

#[tokio::test]
async fn a_ttl_above_the_roles_limit_is_retried_at_the_limit_and_remembered() {
    // The default MaxSessionDuration: STS refuses anything above 1 h with ValidationError.
    let (_moto, sts, reg) = with_sts(Sts::with_limit(3600)).await;
    reg.create_repository("limited").await.unwrap();

    let before = Utc::now();
    let creds = reg.generate_credentials("team/limited", Permissions::Pull, Duration::from_secs(12 * 3600)).await;
    let creds = creds.expect("a refused duration is retried at the role's limit, not an error");
    // expires_at is the session's (1 h), not the token's 12 h.
    let lifetime = (creds.expires_at - before).num_seconds();
    assert!((3600 - 60..=3600 + 5).contains(&lifetime), "{lifetime}");
    let seconds = |sent: &[Vec<(String, String)>]| {
        sent.iter().map(|f| field(f, "DurationSeconds").to_owned()).collect::<Vec<_>>()
    };
    assert_eq!(seconds(&assume_role_requests(&sts).await), ["43200", "3600"]);
    assert_eq!(reg.learned_session_limit(PULL_ROLE), Some(Duration::from_secs(3600)));
    assert_eq!(reg.learned_session_limit(PUSH_ROLE), None, "limits are per role");

    // The limit is remembered: the next long mint sends it directly, and a shorter TTL is kept as asked.
    reg.generate_credentials("team/limited", Permissions::Pull, Duration::from_secs(12 * 3600)).await.unwrap();
    reg.generate_credentials("team/limited", Permissions::Pull, Duration::from_secs(1800)).await.unwrap();
    assert_eq!(seconds(&assume_role_requests(&sts).await), ["43200", "3600", "3600", "1800"]);
}

#[tokio::test]
async fn assume_role_misconfiguration_is_a_server_error_naming_the_role() {
    let (_moto, sts, reg) = with_sts(Sts { deny: true, ..Sts::with_limit(3600) }).await;
    reg.create_repository("denied").await.unwrap();
    let err = reg.generate_credentials("team/denied", Permissions::Pull, Duration::from_secs(900)).await.unwrap_err();
    assert!(matches!(err, Error::Upstream { .. }), "not the client's fault: {err:?}");
    assert!(err.status() >= 500, "{err:?}");
    let text = err.to_string();
    assert!(text.contains(PULL_ROLE) && text.contains("AccessDenied") && text.contains("trust policy"), "{text}");
    assert!(text.contains("7d1e2f3a-4b5c-4d6e-8f90-a1b2c3d4e5f6"), "the request id is kept: {text}");
    assert!(!text.contains("testing"), "no secret in {text}");
    assert_eq!(assume_role_requests(&sts).await.len(), 1, "only a refused duration is asked again");
}

/// A wiremock ECR: `POST /` with `X-Amz-Target: AmazonEC2ContainerRegistry_V20150921.{operation}`.
async fn ecr_stub(operation: &str, response: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    stub(&server, operation, response).await;
    server
}

/// The ECR operations received, less the `GetAuthorizationToken` every build sends for the registry URL.
fn targets(requests: &[Request]) -> Vec<String> {
    requests
        .iter()
        .filter_map(|r| r.headers.get("x-amz-target").and_then(|v| v.to_str().ok()).map(str::to_owned))
        .filter(|t| !t.ends_with(".GetAuthorizationToken"))
        .collect()
}

/// The JSON bodies of the `operation` requests `server` received.
async fn bodies(server: &MockServer, operation: &str) -> Vec<Value> {
    let target = format!("{TARGET}.{operation}");
    let requests = server.received_requests().await.unwrap();
    requests
        .iter()
        .filter(|r| r.headers.get("x-amz-target").is_some_and(|v| v.as_bytes() == target.as_bytes()))
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect()
}

/// Adds a stub of `operation` to a wiremock ECR.
async fn stub(server: &MockServer, operation: &str, response: ResponseTemplate) {
    Mock::given(method("POST"))
        .and(path("/"))
        .and(header("x-amz-target", format!("{TARGET}.{operation}").as_str()))
        .respond_with(response)
        .mount(server)
        .await;
}

fn ecr_json(body: impl Into<String>) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(body.into(), "application/x-amz-json-1.1")
}

fn aws_error(status: u16, code: &str) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .insert_header("x-amzn-RequestId", "req-0123")
        .set_body_raw(json!({"__type": code, "message": "stubbed"}).to_string(), "application/x-amz-json-1.1")
}

#[tokio::test]
async fn blob_download_url_comes_from_get_download_url_for_layer() {
    let body = fixture("ecr-get-download-url-for-layer.json");
    let server = ecr_stub(
        "GetDownloadUrlForLayer",
        ResponseTemplate::new(200).set_body_raw(body.clone(), "application/x-amz-json-1.1"),
    )
    .await;
    let reg = base(&server.uri()).with_account(ACCOUNT).build().await.unwrap();
    let digest = Digest::parse("sha256:4a5ae3bb7b49e4b5aa4b5fcd4f3d2b7fb4e1da5bfbc0ad3f4c0b4e7e6b8a8f01").unwrap();
    let url = reg.generate_blob_download_url("team/app", &digest, Duration::from_secs(600)).await.unwrap().unwrap();
    let expected: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(url.as_str(), expected["downloadUrl"].as_str().unwrap());
    let sent = bodies(&server, "GetDownloadUrlForLayer").await;
    let sent = &sent[0];
    assert_eq!(sent["repositoryName"], "team/app");
    assert_eq!(sent["layerDigest"], digest.to_string());
    assert_eq!(sent["registryId"], ACCOUNT);
}

#[tokio::test]
async fn a_failed_policy_read_writes_nothing() {
    let server = ecr_stub("GetRepositoryPolicy", aws_error(400, "AccessDeniedException")).await;
    let reg = base(&server.uri()).with_account(ACCOUNT).build().await.unwrap();
    let err = reg.add_cross_account_access("team/app", &pull_grant(&["111122223333"], &[], false)).await.unwrap_err();
    assert!(matches!(err, Error::Denied { .. }), "{err:?}");
    assert!(err.to_string().contains("req-0123"), "the AWS request id is kept: {err}");
    let sent = targets(&server.received_requests().await.unwrap());
    assert_eq!(sent, vec![format!("{TARGET}.GetRepositoryPolicy")], "nothing but the read was sent");
}

#[tokio::test]
async fn ecr_errors_map_to_regbridge_errors() {
    for (code, check) in [
        ("RepositoryNotFoundException", (|e: &Error| matches!(e, Error::NotFound { .. })) as fn(&Error) -> bool),
        ("KmsException", |e: &Error| matches!(e, Error::Upstream { .. }) && e.to_string().contains("req-0123")),
        ("UnrecognizedClientException", |e: &Error| matches!(e, Error::Unauthenticated { .. })),
    ] {
        let server = ecr_stub("DescribeRepositories", aws_error(400, code)).await;
        let reg = base(&server.uri()).with_account(ACCOUNT).build().await.unwrap();
        let err = reg.get_repository("team/app").await.unwrap_err();
        assert!(check(&err), "{code} gave {err:?}");
        assert!(!err.to_string().contains("testing"), "no secret in {err}");
    }
    // Invalid names are refused before any call.
    let server = MockServer::start().await;
    let reg = base(&server.uri()).with_account(ACCOUNT).build().await.unwrap();
    assert!(matches!(reg.create_repository("../x").await, Err(Error::InvalidInput { .. })));
    assert!(matches!(reg.get_repository("UPPER").await, Err(Error::InvalidInput { .. })));
    assert!(targets(&server.received_requests().await.unwrap()).is_empty());
}

#[tokio::test]
async fn throttling_is_too_many_requests() {
    let server = ecr_stub("DescribeRepositories", aws_error(400, "ThrottlingException")).await;
    let reg = base(&server.uri()).with_account(ACCOUNT).build().await.unwrap();
    let started = Instant::now();
    let err = reg.get_repository("team/app").await.unwrap_err();
    assert!(matches!(err, Error::TooManyRequests { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(60));
}

#[tokio::test]
async fn china_regions_use_the_aws_cn_partition_and_its_registry_host() {
    let ecr = MockServer::start().await;
    stub(&ecr, "GetAuthorizationToken", ecr_json(fixture("ecr-get-authorization-token-cn.json"))).await;
    stub(&ecr, "CreateRepository", ecr_json(fixture("ecr-create-repository-cn.json"))).await;
    let described = json!({"repositories": [serde_json::from_str::<Value>(&fixture("ecr-create-repository-cn.json"))
        .unwrap()["repository"]]});
    stub(&ecr, "DescribeRepositories", ecr_json(described.to_string())).await;
    stub(&ecr, "GetRepositoryPolicy", aws_error(400, "RepositoryPolicyNotFoundException")).await;
    stub(&ecr, "SetRepositoryPolicy", ecr_json("{}")).await;
    let sts = sts_stub(Sts { partition: "aws-cn", ..Sts::with_limit(3600) }).await;
    // The account (and with it the partition) is discovered from the caller identity.
    let reg = with_roles(base(&ecr.uri()))
        .with_region("cn-north-1")
        .with_pull_role_arn("arn:aws-cn:iam::123456789012:role/regbridge-pull")
        .with_sts_endpoint(sts.uri())
        .build()
        .await
        .unwrap();
    assert_eq!(reg.partition().name(), "aws-cn");
    assert_eq!(reg.registry_endpoint(), "https://123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn", "proxyEndpoint");
    let repo = reg.create_repository("app").await.unwrap();
    assert_eq!(repo.uri, "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/team/app");
    assert_eq!(reg.repository_arn("team/app"), "arn:aws-cn:ecr:cn-north-1:123456789012:repository/team/app");

    // The session policy names the repository in the aws-cn partition.
    let creds = reg.generate_credentials("team/app", Permissions::Pull, Duration::from_secs(900)).await.unwrap();
    assert_eq!(creds.password.expose(), "cn-token-password");
    let sent = assume_role_requests(&sts).await;
    let policy: Value = serde_json::from_str(field(&sent[0], "Policy")).unwrap();
    assert_eq!(policy["Statement"][1]["Resource"], "arn:aws-cn:ecr:cn-north-1:123456789012:repository/team/app");

    // So does the repository policy: account principals and Lambda source ARNs.
    let grant = CrossAccountPermissions {
        access: CrossAccountAccess::Aws {
            account_ids: set(&["111122223333"]),
            regions: BTreeSet::new(),
            allowed_service_types: [ComputeServiceType::Serverless].into(),
            role_arns: BTreeSet::new(),
        },
        permissions: Permissions::Pull,
    };
    reg.add_cross_account_access("team/app", &grant).await.unwrap();
    let written = bodies(&ecr, "SetRepositoryPolicy").await;
    let stmts = statements(written[0]["policyText"].as_str().unwrap());
    assert_eq!(stmts[0]["Principal"]["AWS"], json!(["arn:aws-cn:iam::111122223333:root"]));
    assert_eq!(
        stmts[1]["Condition"]["StringLike"]["aws:sourceArn"],
        json!(["arn:aws-cn:lambda:*:111122223333:function:*"])
    );
}

#[tokio::test]
async fn govcloud_without_a_proxy_endpoint_computes_the_host_in_its_partition() {
    // GetAuthorizationToken refused (base credentials without it): the host is computed.
    let ecr = ecr_stub("GetAuthorizationToken", aws_error(400, "AccessDeniedException")).await;
    let reg = base(&ecr.uri()).with_region("us-gov-west-1").with_account(ACCOUNT).build().await.unwrap();
    assert_eq!(reg.registry_endpoint(), "https://123456789012.dkr.ecr.us-gov-west-1.amazonaws.com");
    assert_eq!(reg.repository_arn("team/a"), "arn:aws-us-gov:ecr:us-gov-west-1:123456789012:repository/team/a");
}

#[tokio::test]
async fn batch_get_image_failures_map_by_code_with_the_reason() {
    let template = fixture("ecr-batch-get-image-failure.json");
    // Every code is mapped in the unit tests of ecr/images.rs; here a few travel the wire.
    for (code, status) in [("UpstreamTooManyRequests", 429), ("UpstreamUnavailable", 503), ("KmsError", 403)] {
        let reason = format!("stubbed {code} reason");
        let body =
            template.replace("\"ImageNotFound\"", &format!("\"{code}\"")).replace("Requested image not found", &reason);
        let server = ecr_stub("BatchGetImage", ecr_json(body)).await;
        let reg = base(&server.uri()).with_account(ACCOUNT).build().await.unwrap();
        let err = reg.get_manifest("team/app", &Reference::parse("v1").unwrap()).await.unwrap_err();
        assert_eq!(err.status(), status, "{code}: {err:?}");
        assert!(format!("{err} {err:?}").contains(&reason), "{code}: the reason is kept: {err:?}");
        // Only the media types the API reference documents (and regbridge serves) are asked for.
        let sent = bodies(&server, "BatchGetImage").await;
        assert_eq!(
            sent[0]["acceptedMediaTypes"],
            json!([
                "application/vnd.docker.distribution.manifest.v2+json",
                "application/vnd.oci.image.manifest.v1+json"
            ])
        );
        assert_eq!(sent[0]["imageIds"], json!([{"imageTag": "v1"}]));
    }
}

#[tokio::test]
async fn an_index_batch_get_image_converted_is_read_through_the_registry_api() {
    let server = MockServer::start().await;
    let index = fixture("oci-index.json");
    let index_digest = Digest::sha256(index.as_bytes());
    // BatchGetImage answers with one platform's manifest in place of the stored index (whose digest the
    // image id still names).
    let platform = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 2,
                   "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},
        "layers": []})
    .to_string();
    let converted = json!({"images": [{
        "registryId": ACCOUNT, "repositoryName": "team/app",
        "imageId": {"imageDigest": index_digest.to_string(), "imageTag": "v1"},
        "imageManifest": platform, "imageManifestMediaType": "application/vnd.oci.image.manifest.v1+json"}],
        "failures": []});
    stub(&server, "BatchGetImage", ecr_json(converted.to_string())).await;
    let token = json!({"authorizationData": [{
        "authorizationToken": base64::engine::general_purpose::STANDARD.encode("AWS:registry-password"),
        "expiresAt": 4_070_908_800.0_f64, "proxyEndpoint": server.uri()}]});
    stub(&server, "GetAuthorizationToken", ecr_json(token.to_string())).await;
    // The registry API: Basic credentials from the token, as ECR's registry answers.
    let login = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("AWS:registry-password"));
    Mock::given(method("GET"))
        .and(path("/v2/team/app/manifests/v1"))
        .and(header("authorization", login.as_str()))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("docker-content-digest", index_digest.to_string().as_str())
                .set_body_raw(index.clone(), "application/vnd.oci.image.index.v1+json"),
        )
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(401).insert_header(
            "www-authenticate",
            format!("Basic realm=\"{}/\",service=\"ecr.amazonaws.com\"", server.uri()).as_str(),
        ))
        .with_priority(5)
        .mount(&server)
        .await;
    let reg = base(&server.uri()).with_account(ACCOUNT).build().await.unwrap();
    assert_eq!(reg.registry_endpoint(), server.uri(), "the registry URL is GetAuthorizationToken's proxyEndpoint");
    let got = reg.get_manifest("team/app", &Reference::parse("v1").unwrap()).await.unwrap();
    assert_eq!(got.bytes, index.as_bytes());
    assert_eq!(got.media_type, "application/vnd.oci.image.index.v1+json");
    assert_eq!(got.digest, index_digest);
    let accepts: Vec<String> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.method == wiremock::http::Method::GET)
        .filter_map(|r| r.headers.get("accept").and_then(|v| v.to_str().ok()).map(str::to_owned))
        .collect();
    assert!(accepts.iter().all(|a| a.contains("application/vnd.oci.image.index.v1+json")), "{accepts:?}");
}

#[tokio::test]
async fn listing_repositories_follows_next_token() {
    let server = MockServer::start().await;
    // The second page is asked with the first page's nextToken (mounted first: wiremock tries mocks in order
    // of priority, then of mounting).
    Mock::given(method("POST"))
        .and(header("x-amz-target", format!("{TARGET}.DescribeRepositories").as_str()))
        .and(body_partial_json(json!({"nextToken": "eyJwYWdlIjogMn0="})))
        .respond_with(ecr_json(fixture("ecr-describe-repositories-page2.json")))
        .with_priority(1)
        .mount(&server)
        .await;
    stub(&server, "DescribeRepositories", ecr_json(fixture("ecr-describe-repositories-page1.json"))).await;
    let reg = base(&server.uri()).with_account(ACCOUNT).build().await.unwrap();
    assert_eq!(reg.repositories_with_prefix("team/").await.unwrap(), ["team/a", "team/b"]);
    let sent = bodies(&server, "DescribeRepositories").await;
    assert_eq!(sent.len(), 2, "two pages: {sent:?}");
    assert_eq!(sent[0]["registryId"], ACCOUNT);
    assert!(sent[0].get("nextToken").is_none());
}

#[tokio::test]
async fn list_repositories_pages_under_the_prefix_against_moto() {
    let moto = Moto::start();
    let reg = base(&moto.url).with_account(ACCOUNT).build().await.unwrap();
    for name in ["a", "b", "c"] {
        reg.create_repository(name).await.unwrap();
    }
    // Outside the registry's prefix `team`: never listed, whatever prefix the caller asks for.
    sdk(&moto.url).create_repository().repository_name("other/x").send().await.unwrap();

    let mut names = Vec::new();
    let mut page = regbridge::Page::first(Some(2));
    let mut pages = 0;
    loop {
        let found = reg.list_repositories(None, page.clone()).await.unwrap();
        pages += 1;
        assert!(found.repositories.len() <= 2, "{found:?}");
        assert!(found.repositories.iter().all(|r| r.uri.starts_with("123456789012.dkr.ecr.us-east-1.amazonaws.com/")));
        names.extend(found.repositories.into_iter().map(|r| r.name));
        match found.next {
            Some(next) => page.after = Some(next),
            None => break,
        }
        assert!(pages < 10, "pagination does not end");
    }
    names.sort();
    assert_eq!(names, ["team/a", "team/b", "team/c"]);
    assert!(pages >= 2, "two pages of two: {pages}");

    let only_b = reg.list_repositories(Some("team/b"), regbridge::Page::default()).await.unwrap();
    assert_eq!(only_b.repositories.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["team/b"]);
    let hostile = reg.list_repositories(Some("other/"), regbridge::Page::default()).await.unwrap();
    assert!(hostile.repositories.is_empty(), "{hostile:?}");
}

#[tokio::test]
async fn list_repositories_rejects_a_forged_token() {
    let moto = Moto::start();
    let reg = base(&moto.url).with_account(ACCOUNT).build().await.unwrap();
    let page = regbridge::Page { limit: None, after: Some("not-a-token".into()) };
    assert!(matches!(reg.list_repositories(None, page).await, Err(Error::InvalidInput { .. })));
}
