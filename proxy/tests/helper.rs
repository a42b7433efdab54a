//! The credential helper for cloud hosts, end to end: an ECR registry host (moto's GetAuthorizationToken
//! plus a Debian docker-registry standing in for `ACCOUNT.dkr.ecr.REGION.amazonaws.com`, whose htpasswd
//! user is `AWS` with the password moto's token decodes to) configured by `regbridge configure-docker`,
//! then used by skopeo and podman, which run `docker-credential-regbridge` themselves; GAR and ACR hosts
//! whose control planes are wiremock answering recorded bodies of `fixtures/` (IAM Credentials'
//! `generateAccessToken`, ACR's `/oauth2/exchange`): minted, cached, narrowed to pulls or refused, and
//! their errors explained.
#![cfg(feature = "ecr")]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::moto::start_moto;
use common::upstream::{ReferenceRegistry, require};
use regbridge::Permissions;
use regbridge_providers::ecr::EcrRegistryBuilder;
use serde_json::{Value, json};
use wiremock::matchers::{body_string_contains, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const BIN: &str = env!("CARGO_BIN_EXE_regbridge");
const ACCOUNT: &str = "123456789012";

/// Runs `command` with the isolated environment of `dir`: the helper first on PATH, docker and podman
/// configs and the cache inside `dir`, AWS credentials for moto, and nothing of the host's.
fn isolated(command: &mut Command, dir: &Path, config: &Path) {
    let path = format!("{}:{}", dir.join("bin").display(), std::env::var("PATH").unwrap_or_default());
    command
        .env("PATH", path)
        .env("HOME", dir.join("home"))
        .env("TMPDIR", dir.join("tmp"))
        .env("DOCKER_CONFIG", dir.join("docker"))
        .env("REGISTRY_AUTH_FILE", dir.join("auth.json"))
        .env("XDG_CACHE_HOME", dir.join("cache"))
        .env("REGBRIDGE_CONFIG", config)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", dir.join("no-aws-config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", dir.join("no-aws-credentials"))
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN");
}

fn run(command: &mut Command, stdin: &str) -> Output {
    use std::io::Write;
    let mut child = command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn ok(out: &Output, what: &str) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what}: exit {:?}\n{stdout}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_and_podman_push_to_an_ecr_host_through_the_helper() {
    for tool in ["skopeo", "podman", "python3"] {
        require(tool);
    }
    let (_moto, moto) = start_moto().await;
    // The registry-wide login the helper will mint is what the stand-in registry accepts.
    let provider = EcrRegistryBuilder::new()
        .with_region("us-east-1")
        .with_account(ACCOUNT)
        .with_endpoint(&moto)
        .with_credentials("test", "test")
        .with_registry_endpoint("https://127.0.0.1:9")
        .build()
        .await
        .unwrap();
    let login =
        provider.registry_credentials(Permissions::PushPull, std::time::Duration::from_secs(900)).await.unwrap();
    assert_eq!(login.username, "AWS");
    let registry = ReferenceRegistry::start(&login.username, login.password.expose());
    let host = registry.addr.clone();

    let dir = tempfile::tempdir().unwrap();
    for sub in ["bin", "home", "tmp", "docker"] {
        std::fs::create_dir_all(dir.path().join(sub)).unwrap();
    }
    std::os::unix::fs::symlink(BIN, dir.path().join("bin/docker-credential-regbridge")).unwrap();
    let config = dir.path().join("regbridge.toml");
    std::fs::write(
        &config,
        format!(
            "[[helper.hosts]]\nhost = \"{host}\"\nprovider = \"ecr\"\nregion = \"us-east-1\"\naccount = \
             \"{ACCOUNT}\"\nendpoint = \"{moto}\"\n"
        ),
    )
    .unwrap();
    // An existing docker config with other settings: configure-docker keeps them.
    let docker_config = dir.path().join("docker/config.json");
    std::fs::write(&docker_config, r#"{"auths":{"ghcr.io":{"auth":"dTpw"}},"credsStore":"pass","x":1}"#).unwrap();
    std::fs::set_permissions(&docker_config, std::fs::Permissions::from_mode(0o640)).unwrap();
    let configure = || {
        let mut c = Command::new(BIN);
        c.args(["configure-docker", "--podman", &host]);
        isolated(&mut c, dir.path(), &config);
        ok(&run(&mut c, ""), "configure-docker")
    };
    let first = configure();
    assert!(first.contains("(added)"), "{first}");
    assert!(!first.contains("not on PATH"), "the helper is on PATH: {first}");
    let docker: serde_json::Value = serde_json::from_slice(&std::fs::read(&docker_config).unwrap()).unwrap();
    assert_eq!(docker["credHelpers"][&host], "regbridge");
    assert_eq!((docker["credsStore"].as_str(), docker["x"].as_i64()), (Some("pass"), Some(1)));
    assert_eq!(docker["auths"]["ghcr.io"]["auth"], "dTpw");
    assert_eq!(std::fs::metadata(&docker_config).unwrap().permissions().mode() & 0o777, 0o640);
    let auth_file = dir.path().join("auth.json");
    assert_eq!(std::fs::metadata(&auth_file).unwrap().permissions().mode() & 0o777, 0o600);
    let second = configure();
    assert!(second.contains("unchanged"), "idempotent: {second}");
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&std::fs::read(&docker_config).unwrap()).unwrap(), docker);

    // The helper answers for the configured host with the ECR login, and caches it privately.
    let helper = |action: &str, input: &str| {
        let mut c = Command::new(dir.path().join("bin/docker-credential-regbridge"));
        c.arg(action);
        isolated(&mut c, dir.path(), &config);
        run(&mut c, input)
    };
    let got: serde_json::Value = serde_json::from_str(&ok(&helper("get", &host), "helper get")).unwrap();
    assert_eq!((got["Username"].as_str(), got["Secret"].as_str()), (Some("AWS"), Some(login.password.expose())));
    let cache_dir = dir.path().join("cache/regbridge/helper");
    let cached: Vec<_> = std::fs::read_dir(&cache_dir).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(cached.len(), 1);
    assert_eq!(std::fs::metadata(&cached[0]).unwrap().permissions().mode() & 0o777, 0o600);
    // Served from the cache: moto no longer needed for the same host and settings.
    std::fs::write(&cached[0], b"corrupt").unwrap();
    let again: serde_json::Value =
        serde_json::from_str(&ok(&helper("get", &host), "helper get after corruption")).unwrap();
    assert_eq!(again["Secret"], got["Secret"], "a corrupt cache file is replaced by a fresh mint");
    assert!(String::from_utf8_lossy(&std::fs::read(&cached[0]).unwrap()).starts_with('{'));
    let version = ok(&helper("version", ""), "helper version");
    assert!(version.contains(env!("CARGO_PKG_VERSION")), "{version}");
    let list: serde_json::Value = serde_json::from_str(&ok(&helper("list", ""), "helper list")).unwrap();
    assert_eq!(list[&host], "AWS");
    for hostile in [
        "evil.com/.dkr.ecr.us-east-1.amazonaws.com".to_owned(),
        "x.dkr.ecr.us-east-1.amazonaws.com.evil.com".to_owned(),
        format!("{host}.evil.com"),
    ] {
        let out = helper("get", &hostile);
        assert_eq!(out.status.code(), Some(1), "{hostile}");
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "credentials not found in native keychain");
    }

    // skopeo pushes and reads back through the helper, podman pulls and pushes.
    let image = dir.path().join("image");
    let make = Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/clients/make-image.py"))
        .arg(&image)
        .output()
        .unwrap();
    assert!(make.status.success(), "{}", String::from_utf8_lossy(&make.stderr));
    let skopeo = |args: &[&str]| {
        let mut c = Command::new("skopeo");
        c.args(args);
        isolated(&mut c, dir.path(), &config);
        run(&mut c, "")
    };
    let target = format!("docker://{host}/team/app:v1");
    let pushed = skopeo(&["copy", "--dest-tls-verify=false", &format!("oci:{}:v1", image.display()), &target]);
    ok(&pushed, "skopeo copy to the ECR host");
    let manifest = ok(&skopeo(&["inspect", "--raw", "--tls-verify=false", &target]), "skopeo inspect");
    assert!(manifest.contains("schemaVersion"), "{manifest}");
    let anonymous = skopeo(&["inspect", "--raw", "--tls-verify=false", "--no-creds", &target]);
    assert!(!anonymous.status.success(), "the stand-in registry demands the ECR login");

    let runroot = tempfile::Builder::new().prefix("rbh").tempdir_in("/tmp").unwrap();
    let podman = |args: &[&str]| {
        let mut c = Command::new("podman");
        c.arg("--root").arg(dir.path().join("podman")).arg("--runroot").arg(runroot.path());
        c.args(["--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "file"]);
        c.args(args);
        isolated(&mut c, dir.path(), &config);
        run(&mut c, "")
    };
    let source = format!("{host}/team/app:v1");
    ok(&podman(&["pull", "--tls-verify=false", &source]), "podman pull through the helper");
    let copy = format!("{host}/team/podman:v1");
    ok(&podman(&["push", "--tls-verify=false", &source, &copy]), "podman push through the helper");
    ok(&skopeo(&["inspect", "--raw", "--tls-verify=false", &format!("docker://{copy}")]), "what podman pushed");

    for out in [&pushed, &helper("get", &host)] {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains(login.password.expose()), "no secret on stderr: {stderr}");
    }
    // erase drops the host's cache entry.
    ok(&helper("erase", &host), "helper erase");
    assert_eq!(std::fs::read_dir(&cache_dir).unwrap().count(), 0);
}

#[test]
fn configure_docker_refuses_a_file_that_is_not_an_object() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.json");
    std::fs::write(&file, "[\"not\", \"an object\"]").unwrap();
    let out = Command::new(BIN)
        .args(["configure-docker", "--config-file"])
        .arg(&file)
        .arg("123456789012.dkr.ecr.us-east-1.amazonaws.com")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a JSON object"));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "[\"not\", \"an object\"]", "nothing changed");
}

/// A helper run in an isolated `dir` with `config` and `env`: `(exit code, stdout, stderr)`.
fn helper_in(dir: &Path, config: &Path, env: &[(&str, String)], action: &str, input: &str) -> (i32, String, String) {
    let mut c = Command::new(BIN);
    c.args(["credential-helper", action]);
    isolated(&mut c, dir, config);
    for (name, value) in env {
        c.env(name, value);
    }
    let out = run(&mut c, input);
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

/// A recorded body of `fixtures/`.
fn fixture(name: &str) -> Value {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures").join(name);
    serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap()
}

/// The one cache entry of `dir` minted with `secret`.
fn cached_with(dir: &Path, secret: &str) -> Value {
    let cache = dir.join("cache/regbridge/helper");
    let entries: Vec<Value> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| serde_json::from_slice(&std::fs::read(e.unwrap().path()).unwrap()).unwrap())
        .filter(|v: &Value| v["secret"] == secret)
        .collect();
    assert_eq!(entries.len(), 1, "one cache entry holds {secret}");
    entries[0].clone()
}

#[test]
fn ecr_pull_only_without_a_role_is_refused_not_answered_with_a_push_login() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("regbridge.toml");
    std::fs::write(&config, "").unwrap();
    let host = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
    let (code, stdout, stderr) =
        helper_in(dir.path(), &config, &[("REGBRIDGE_HELPER_PULL_ONLY", "1".into())], "get", host);
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(stderr.contains("pull-only ECR login needs a role") && stderr.contains("role_arn"), "{stderr}");
    assert!(stderr.contains(host), "names the host: {stderr}");
    assert!(!dir.path().join("cache/regbridge/helper").exists(), "nothing cached");
}

#[cfg(feature = "gar")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gar_logins_are_minted_cached_narrowed_and_explained() {
    const CALLER_TOKEN: &str = "caller-adc-token";
    const PUSH_SA: &str = "pusher@test-project.iam.gserviceaccount.com";
    const PULL_SA: &str = "puller@test-project.iam.gserviceaccount.com";
    const DENIED_SA: &str = "nobody@test-project.iam.gserviceaccount.com";
    let google = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"access_token": CALLER_TOKEN, "expires_in": 3600, "token_type": "Bearer"})),
        )
        .mount(&google)
        .await;
    // The recorded answer, with an expiry in the future the cache must keep.
    let expires = (chrono::Utc::now() + chrono::Duration::minutes(50)).format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let mut push_token = fixture("gar/generate-access-token.json");
    push_token["expireTime"] = json!(expires);
    let mut pull_token = push_token.clone();
    pull_token["accessToken"] = json!("ya29.pull-only-token");
    let generate = |sa: &str| {
        Mock::given(method("POST"))
            .and(path(format!("/v1/projects/-/serviceAccounts/{sa}:generateAccessToken")))
            .and(header("authorization", format!("Bearer {CALLER_TOKEN}").as_str()))
    };
    generate(PUSH_SA)
        .respond_with(ResponseTemplate::new(200).set_body_json(&push_token))
        .expect(1)
        .mount(&google)
        .await;
    generate(PULL_SA)
        .respond_with(ResponseTemplate::new(200).set_body_json(&pull_token))
        .expect(1)
        .mount(&google)
        .await;
    let denied = ResponseTemplate::new(403).set_body_json(fixture("gar/error-permission-denied.json"));
    generate(DENIED_SA).respond_with(denied).mount(&google).await;

    let dir = tempfile::tempdir().unwrap();
    let adc = dir.path().join("adc.json");
    let adc_body = json!({"type": "authorized_user", "client_id": "c", "client_secret": "s",
        "refresh_token": "r", "token_uri": format!("{}/token", google.uri())});
    std::fs::write(&adc, adc_body.to_string()).unwrap();
    let env = [("GOOGLE_APPLICATION_CREDENTIALS", adc.display().to_string())];
    let config = dir.path().join("regbridge.toml");
    let endpoint = google.uri();
    std::fs::write(
        &config,
        format!(
            "[[helper.hosts]]\nhost = \"europe-west1-docker.pkg.dev\"\nprovider = \"gar\"\nendpoint = \"{endpoint}\"\n\
             service_account = \"{PUSH_SA}\"\npull_service_account = \"{PULL_SA}\"\n\n\
             [[helper.hosts]]\nhost = \"us-docker.pkg.dev\"\nprovider = \"gar\"\nendpoint = \"{endpoint}\"\n\n\
             [[helper.hosts]]\nhost = \"asia-docker.pkg.dev\"\nprovider = \"gar\"\nendpoint = \"{endpoint}\"\n\
             service_account = \"{DENIED_SA}\"\n\n\
             [[helper.hosts]]\nhost = \"eu.gcr.io\"\nprovider = \"gar\"\nregion = \"us-east-1\"\n"
        ),
    )
    .unwrap();
    let get = |host: &str, pull_only: bool| {
        let mut env = env.to_vec();
        env.push(("REGBRIDGE_HELPER_PULL_ONLY", pull_only.to_string()));
        helper_in(dir.path(), &config, &env, "get", host)
    };

    // The push service account's token, with the token's own expiry; the second get is the cache's.
    for round in ["mint", "cache"] {
        let (code, stdout, stderr) = get("https://europe-west1-docker.pkg.dev", false);
        assert_eq!(code, 0, "{round}: {stdout}{stderr}");
        let got: Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(got["Username"], "oauth2accesstoken");
        assert_eq!(got["Secret"], push_token["accessToken"], "{round}");
        assert!(!stderr.contains("ya29"), "no token on stderr: {stderr}");
    }
    let entry = cached_with(dir.path(), push_token["accessToken"].as_str().unwrap());
    let cached: chrono::DateTime<chrono::Utc> = entry["expires_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(cached, expires.parse::<chrono::DateTime<chrono::Utc>>().unwrap(), "the token's expiry");

    // Pull-only: the pull service account's token, cached apart from the push login.
    for _ in 0..2 {
        let (code, stdout, stderr) = get("europe-west1-docker.pkg.dev", true);
        assert_eq!(code, 0, "{stdout}{stderr}");
        assert_eq!(serde_json::from_str::<Value>(&stdout).unwrap()["Secret"], "ya29.pull-only-token");
    }
    let (_, stdout, _) = get("europe-west1-docker.pkg.dev", false);
    assert_eq!(serde_json::from_str::<Value>(&stdout).unwrap()["Secret"], push_token["accessToken"]);
    // No service account: the caller's own token for push, and pull-only refused (it could push).
    let (code, stdout, stderr) = get("us-docker.pkg.dev", false);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(serde_json::from_str::<Value>(&stdout).unwrap()["Secret"], CALLER_TOKEN);
    let (code, stdout, stderr) = get("us-docker.pkg.dev", true);
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(stderr.contains("pull service account") && stderr.contains("pull_service_account"), "{stderr}");
    assert!(stderr.contains("us-docker.pkg.dev"), "{stderr}");
    assert!(!stdout.contains(CALLER_TOKEN) && !stderr.contains(CALLER_TOKEN));

    // IAM refuses: what to grant, on which account, for which host; nothing cached.
    let (code, stdout, stderr) = get("asia-docker.pkg.dev", false);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stderr.contains("GAR login for asia-docker.pkg.dev"), "{stderr}");
    assert!(stderr.contains("roles/iam.serviceAccountTokenCreator") && stderr.contains(DENIED_SA), "{stderr}");
    assert!(stderr.contains("HTTP 403"), "{stderr}");
    // Another cloud's setting is refused, not ignored.
    let (code, _, stderr) = get("eu.gcr.io", false);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("`region` is a ecr setting"), "{stderr}");
    // Exactly one mint per service account: the rest came from the cache (the mocks' expect(1)).
    google.verify().await;
}

#[cfg(feature = "acr")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acr_logins_are_exchanged_cached_and_pull_only_is_refused() {
    const AAD_TOKEN: &str = "entra-id-access-token";
    let acr = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth2/exchange"))
        .and(body_string_contains("grant_type=access_token"))
        .and(body_string_contains(format!("access_token={AAD_TOKEN}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("acr/exchange.json")))
        .expect(1)
        .mount(&acr)
        .await;
    let refused = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth2/exchange"))
        .respond_with(ResponseTemplate::new(401).set_body_json(fixture("acr/error-unauthorized.json")))
        .mount(&refused)
        .await;
    let refresh = fixture("acr/exchange.json")["refresh_token"].as_str().unwrap().to_owned();

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("regbridge.toml");
    std::fs::write(
        &config,
        format!(
            "[[helper.hosts]]\nhost = \"regbridgetest.azurecr.io\"\nprovider = \"acr\"\nendpoint = \"{}\"\n\
             identity = \"access_token\"\naccess_token_env = \"TEST_AAD_TOKEN\"\n\n\
             [[helper.hosts]]\nhost = \"refused.azurecr.io\"\nprovider = \"acr\"\nendpoint = \"{}\"\n\
             identity = \"access_token\"\naccess_token_env = \"TEST_AAD_TOKEN\"\n\n\
             [[helper.hosts]]\nhost = \"typo.azurecr.io\"\nprovider = \"acr\"\nidentity = \"password\"\n",
            acr.uri(),
            refused.uri()
        ),
    )
    .unwrap();
    let get = |host: &str, pull_only: bool| {
        let env = [("TEST_AAD_TOKEN", AAD_TOKEN.to_owned()), ("REGBRIDGE_HELPER_PULL_ONLY", pull_only.to_string())];
        helper_in(dir.path(), &config, &env, "get", host)
    };
    for round in ["exchange", "cache"] {
        let (code, stdout, stderr) = get("regbridgetest.azurecr.io", false);
        assert_eq!(code, 0, "{round}: {stdout}{stderr}");
        let got: Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(got["Username"], "00000000-0000-0000-0000-000000000000");
        assert_eq!(got["Secret"], refresh.as_str(), "{round}");
        assert!(!stderr.contains(&refresh) && !stderr.contains(AAD_TOKEN), "no secret on stderr: {stderr}");
    }
    let entry = cached_with(dir.path(), &refresh);
    let expires: chrono::DateTime<chrono::Utc> = entry["expires_at"].as_str().unwrap().parse().unwrap();
    let left = expires - chrono::Utc::now();
    assert!(left <= chrono::Duration::hours(1) && left > chrono::Duration::minutes(50), "{left}");

    // Pull-only: refused with what to do instead, even though a push login is cached.
    let (code, stdout, stderr) = get("regbridgetest.azurecr.io", true);
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(!stdout.contains(&refresh), "never the push login");
    assert!(stderr.contains("pull-only") && stderr.contains("_repositories_pull"), "{stderr}");
    // The registry refuses the Entra ID token: which host, and which role the identity needs.
    let (code, stdout, stderr) = get("refused.azurecr.io", false);
    assert_eq!(code, 4, "{stdout}{stderr}");
    assert!(stderr.contains("ACR login for refused.azurecr.io") && stderr.contains("AcrPull"), "{stderr}");
    let (code, _, stderr) = get("typo.azurecr.io", false);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("\"password\" is not one of"), "{stderr}");
    acr.verify().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ecr_pull_only_assumes_the_role_with_a_pull_policy_and_is_cached_apart() {
    require("python3");
    let (_moto, moto) = start_moto().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("regbridge.toml");
    let host = format!("{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com");
    std::fs::write(
        &config,
        format!(
            "[[helper.hosts]]\nhost = \"{host}\"\nprovider = \"ecr\"\nendpoint = \"{moto}\"\nrole_arn = \
             \"arn:aws:iam::{ACCOUNT}:role/helper\"\n"
        ),
    )
    .unwrap();
    let get = |pull_only: bool| {
        let env = [("REGBRIDGE_HELPER_PULL_ONLY", pull_only.to_string())];
        let (code, stdout, stderr) = helper_in(dir.path(), &config, &env, "get", &host);
        assert_eq!(code, 0, "{stdout}{stderr}");
        serde_json::from_str::<Value>(&stdout).unwrap()["Secret"].as_str().unwrap().to_owned()
    };
    let pull = get(true);
    let push = get(false);
    assert_eq!(get(true), pull, "the pull-only login is cached");
    assert_eq!(get(false), push, "and the push login, apart from it");
    assert_eq!(std::fs::read_dir(dir.path().join("cache/regbridge/helper")).unwrap().count(), 2);
    let (code, _, _) = helper_in(dir.path(), &config, &[], "erase", &host);
    assert_eq!(code, 0);
    assert_eq!(std::fs::read_dir(dir.path().join("cache/regbridge/helper")).unwrap().count(), 0, "erase drops both");
}
