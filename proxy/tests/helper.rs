//! The credential helper for cloud hosts, end to end: an ECR registry host (moto's GetAuthorizationToken
//! plus a Debian docker-registry standing in for `ACCOUNT.dkr.ecr.REGION.amazonaws.com`, whose htpasswd
//! user is `AWS` with the password moto's token decodes to) configured by `regbridge configure-docker`,
//! then used by skopeo and podman, which run `docker-credential-regbridge` themselves.
#![cfg(feature = "ecr")]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::moto::start_moto;
use common::upstream::{ReferenceRegistry, require};
use regbridge_providers::ecr::EcrRegistryBuilder;

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
    let login = provider.registry_credentials(std::time::Duration::from_secs(900)).await.unwrap();
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
