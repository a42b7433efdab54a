//! The `regbridge` command line end to end, against a running server on the same data directory: every
//! command and output format, bad input and its exit codes, and the credential helper with real clients
//! (skopeo through `REGISTRY_AUTH_FILE`, the docker CLI's daemonless `docker manifest inspect`).

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::TestServer;
use regbridge::auth::XRegistryAuth;
use serde_json::Value;

use common::cli::{BIN, code, ok_json, on_data_dir as cli, stdout};

fn installed(tool: &str) -> bool {
    Command::new("sh").args(["-c", &format!("command -v {tool}")]).output().is_ok_and(|o| o.status.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repo_and_access_commands() {
    let server = TestServer::start().await;
    let created = ok_json(&cli(&server, &["repo", "create", "team/app"], ""));
    assert_eq!(created["name"], "team/app", "{created}");
    let again = ok_json(&cli(&server, &["repo", "create", "team/app"], ""));
    assert_eq!(again, created, "create is idempotent");
    assert_eq!(ok_json(&cli(&server, &["repo", "get", "team/app"], ""))["name"], "team/app");

    let missing = cli(&server, &["repo", "get", "team/missing"], "");
    assert_eq!(code(&missing), 3, "not found: {}", String::from_utf8_lossy(&missing.stderr));
    let bad = cli(&server, &["repo", "create", "Team/UPPER"], "");
    assert_eq!(code(&bad), 2, "bad name: {}", String::from_utf8_lossy(&bad.stderr));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("error:"));

    let granted = ok_json(&cli(&server, &["access", "add", "team/app", "--local-account", "acme,globex"], ""));
    let text = granted.to_string();
    assert!(text.contains("acme") && text.contains("globex"), "{text}");
    let removed = ok_json(&cli(&server, &["access", "remove", "team/app", "--local-account", "acme"], ""));
    assert!(!removed.to_string().contains("acme") && removed.to_string().contains("globex"), "{removed}");
    assert_eq!(ok_json(&cli(&server, &["access", "get", "team/app"], "")), removed);
    // A push grant is removed by a plain "remove" too; a named level leaves the other one alone; removing
    // what is not granted is "not found" (exit 3), not a silent success.
    ok_json(&cli(&server, &["access", "add", "team/app", "--local-account", "pusher", "--push"], ""));
    ok_json(&cli(&server, &["access", "add", "team/app", "--local-account", "both"], ""));
    ok_json(&cli(&server, &["access", "add", "team/app", "--local-account", "both", "--push"], ""));
    let only_pull = ok_json(&cli(&server, &["access", "remove", "team/app", "--local-account", "both", "--pull"], ""));
    let push_level = only_pull.as_array().unwrap().iter().find(|g| g["permissions"] == "pushPull").unwrap();
    assert!(push_level.to_string().contains("both"), "--pull left the push grant: {only_pull}");
    let gone = ok_json(&cli(&server, &["access", "remove", "team/app", "--local-account", "pusher,both"], ""));
    assert!(!gone.to_string().contains("pusher") && !gone.to_string().contains("both"), "{gone}");
    let absent = cli(&server, &["access", "remove", "team/app", "--local-account", "pusher"], "");
    assert_eq!(code(&absent), 3, "{}", String::from_utf8_lossy(&absent.stderr));
    assert!(
        String::from_utf8_lossy(&absent.stderr).contains("team/app"),
        "{}",
        String::from_utf8_lossy(&absent.stderr)
    );
    let wrong_level = cli(&server, &["access", "remove", "team/app", "--local-account", "globex", "--push"], "");
    assert_eq!(code(&wrong_level), 3, "globex holds pull only");
    let nobody = cli(&server, &["access", "add", "team/app"], "");
    assert_eq!(code(&nobody), 2);
    assert!(String::from_utf8_lossy(&nobody.stderr).contains("--aws-account"));
    let two = cli(&server, &["access", "add", "team/app", "--local-account", "a", "--aws-account", "123456789012"], "");
    assert_eq!(code(&two), 2);

    let deleted = cli(&server, &["repo", "delete", "team/app"], "");
    assert!(deleted.status.success(), "{}", String::from_utf8_lossy(&deleted.stderr));
    assert_eq!(code(&cli(&server, &["repo", "get", "team/app"], "")), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minted_credentials_in_every_format() {
    let server = TestServer::start().await;
    server.push_image("mint/app", "v1").await;
    let host = server.base.trim_start_matches("http://").to_owned();

    let json = ok_json(&cli(&server, &["creds", "mint", "mint/app", "--push", "--ttl", "10m", "--format", "json"], ""));
    let (user, password) = (json["username"].as_str().unwrap(), json["password"].as_str().unwrap());
    assert_eq!(json["authMethod"], "basic");
    let expires = chrono::DateTime::parse_from_rfc3339(json["expiresAt"].as_str().unwrap()).unwrap();
    let left = expires.signed_duration_since(chrono::Utc::now()).num_seconds();
    assert!((500..=600).contains(&left), "expires in {left} s");
    let r = server.client.get(server.url("/v2/mint/app/manifests/v1")).basic_auth(user, Some(password));
    assert_eq!(r.send().await.unwrap().status(), 200, "the minted credentials pull");
    let r = server.client.get(server.url("/v2/other/app/tags/list")).basic_auth(user, Some(password));
    assert!(r.send().await.unwrap().status().is_client_error(), "and only this repository");

    let env = stdout(&cli(&server, &["creds", "mint", "mint/app", "--format", "env"], ""));
    assert!(env.contains(&format!("REGBRIDGE_REGISTRY='{host}'")), "{env}");
    assert!(env.contains("REGBRIDGE_PASSWORD='") && env.contains("REGBRIDGE_EXPIRES_AT='"), "{env}");

    let header = stdout(&cli(&server, &["creds", "mint", "mint/app", "--format", "x-registry-auth"], ""));
    let decoded = XRegistryAuth::decode(header.trim()).unwrap();
    let (u, p) = decoded.credentials().unwrap().unwrap();
    let r = server.client.get(server.url("/v2/mint/app/manifests/v1")).basic_auth(&u, Some(p.expose()));
    assert_eq!(r.send().await.unwrap().status(), 200);

    let secret =
        stdout(&cli(&server, &["creds", "mint", "mint/app", "--format", "k8s-secret", "--namespace", "ci"], ""));
    assert!(secret.contains("kubernetes.io/dockerconfigjson") && secret.contains("namespace: ci"), "{secret}");
    assert!(secret.contains("name: regbridge-mint-app"), "{secret}");

    // docker-config is a config.json skopeo reads as it is.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.json");
    std::fs::write(&config, stdout(&cli(&server, &["creds", "mint", "mint/app", "--format", "docker-config"], "")))
        .unwrap();
    if installed("skopeo") {
        let reference = format!("docker://{host}/mint/app:v1");
        let inspect = Command::new("skopeo")
            .args(["inspect", "--raw", "--tls-verify=false", "--authfile"])
            .arg(&config)
            .arg(&reference)
            .output()
            .unwrap();
        assert!(inspect.status.success(), "skopeo: {}", String::from_utf8_lossy(&inspect.stderr));
    } else {
        eprintln!("SKIPPED skopeo check: skopeo is not installed (scripts/install-test-deps.sh)");
    }

    for (args, expected) in [
        (vec!["creds", "mint", "mint/app", "--ttl", "15parsecs"], 2),
        (vec!["creds", "mint", "mint/app", "--format", "yaml"], 2),
        (vec!["creds", "mint", "Not A Name"], 2),
        (vec!["creds", "mint", "mint/app", "--pull", "--push"], 2),
    ] {
        let out = cli(&server, &args, "");
        assert_eq!(code(&out), expected, "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

/// `regbridge creds mint ... | head -c0`: the reader is gone before anything is written. The command ends
/// quietly with exit 0 instead of panicking on the broken pipe.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_to_a_closed_pipe_ends_quietly() {
    let server = TestServer::start().await;
    assert!(cli(&server, &["repo", "create", "pipe/app"], "").status.success());
    let listen = server.base.trim_start_matches("http://");
    for format in ["json", "env", "k8s-secret"] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = Command::new(BIN)
            .args(["creds", "mint", "pipe/app", "--format", format])
            .env("REGBRIDGE_DATA_DIR", &server.data_dir)
            .env("REGBRIDGE_LISTEN", listen)
            .env_remove("REGBRIDGE_CONFIG")
            .stdin(Stdio::null())
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && stderr.is_empty(), "{format}: {:?} {stderr}", out.status);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minting_on_a_generic_route_never_hands_out_the_upstream_password() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("regbridge.toml");
    std::fs::write(
        &config,
        "[[routes]]\nprovider = \"local\"\n[[routes]]\nprefix = \"hub\"\nprovider = \"generic\"\n\
         registry = \"127.0.0.1:9\"\nusername = \"robot\"\npassword = \"static-robot-pw-41\"\n",
    )
    .unwrap();
    let config = config.to_str().unwrap();
    for format in ["json", "env", "docker-config", "x-registry-auth", "k8s-secret"] {
        let out =
            cli(&server, &["creds", "mint", "hub/app", "--ttl", "5m", "--config", config, "--format", format], "");
        assert_eq!(code(&out), 0, "{format}: {}", String::from_utf8_lossy(&out.stderr));
        let all = format!("{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr));
        assert!(!all.contains("static-robot-pw-41") && !all.contains("robot"), "{format}: {all}");
        let decoded: String = all
            .split(|c: char| !(c.is_ascii_alphanumeric() || "+/=_-".contains(c)))
            .filter_map(|w| base64::Engine::decode(&base64::engine::general_purpose::STANDARD, w).ok())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .collect();
        assert!(!decoded.contains("static-robot-pw-41"), "{format}: the password, base64-encoded");
    }
    let out = cli(&server, &["creds", "mint", "hub/app", "--ttl", "5m", "--config", config], "");
    assert!(String::from_utf8_lossy(&out.stderr).contains("credentials for the proxy"));
    let json = ok_json(&out);
    let (user, password) = (json["username"].as_str().unwrap(), json["password"].as_str().unwrap());
    let expires = chrono::DateTime::parse_from_rfc3339(json["expiresAt"].as_str().unwrap()).unwrap();
    assert!(expires.signed_duration_since(chrono::Utc::now()).num_seconds() <= 300, "the TTL asked for");
    // They are this server's credentials, for that repository only.
    let r = server.client.get(server.url("/v2/hub/app/tags/list")).basic_auth(user, Some(password));
    assert_eq!(r.send().await.unwrap().status(), 404, "allowed (and empty)");
    let r = server.client.get(server.url("/v2/hub/other/tags/list")).basic_auth(user, Some(password));
    assert_eq!(r.send().await.unwrap().status(), 403, "another repository is denied");
    let r = server.client.put(server.url("/v2/hub/app/manifests/v1")).basic_auth(user, Some(password));
    assert_eq!(r.body("{}").send().await.unwrap().status(), 403, "a pull credential cannot push");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_no_route_serves_is_not_found() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("regbridge.toml");
    std::fs::write(&config, "[[routes]]\nprefix = \"team\"\nprovider = \"local\"\n").unwrap();
    let out = cli(&server, &["creds", "mint", "other/app", "--config", config.to_str().unwrap()], "");
    assert_eq!(code(&out), 3, "{}", String::from_utf8_lossy(&out.stderr));
    let broken = dir.path().join("broken.toml");
    std::fs::write(&broken, "[[routes]]\nprovider = \"nope\"\n").unwrap();
    let out = cli(&server, &["repo", "get", "team/app", "--config", broken.to_str().unwrap()], "");
    assert_eq!(code(&out), 2, "{}", String::from_utf8_lossy(&out.stderr));
}

/// A `config.json` whose `credHelpers` sends `host` to `docker-credential-regbridge`, and a directory
/// holding that name (a link to the binary) to put first on PATH.
fn helper_setup(dir: &Path, host: &str) -> String {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(BIN, bin.join("docker-credential-regbridge")).unwrap();
    let config = serde_json::json!({"credHelpers": {host: "regbridge"}});
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_credential_helper() {
    let server = TestServer::start().await;
    server.push_image("helped/app", "v1").await;
    let host = server.base.trim_start_matches("http://").to_owned();

    let got = ok_json(&cli(&server, &["credential-helper", "get"], &format!("{host}\n")));
    assert_eq!(got["ServerURL"], host.as_str());
    let (user, secret) = (got["Username"].as_str().unwrap(), got["Secret"].as_str().unwrap());
    for path in ["/v2/helped/app/manifests/v1", "/v2/anything/else/tags/list"] {
        let r = server.client.get(server.url(path)).basic_auth(user, Some(secret)).send().await.unwrap();
        assert_ne!(r.status(), 401, "{path}: the helper's credentials work on every repository");
    }
    let unknown = cli(&server, &["credential-helper", "get"], "ghcr.io\n");
    assert_eq!(code(&unknown), 1);
    assert_eq!(stdout(&unknown).trim(), "credentials not found in native keychain");
    assert!(
        cli(&server, &["credential-helper", "store"], r#"{"ServerURL":"x","Username":"u","Secret":"s"}"#)
            .status
            .success()
    );
    assert!(cli(&server, &["credential-helper", "erase"], "x\n").status.success());
    let list = ok_json(&cli(&server, &["credential-helper", "list"], ""));
    assert!(list.as_object().unwrap().contains_key(&server.base), "{list}");

    let dir = tempfile::tempdir().unwrap();
    let path = helper_setup(dir.path(), &host);
    let listen = host.clone();
    let with_env = |command: &mut Command| {
        command
            .env("PATH", &path)
            .env("REGBRIDGE_DATA_DIR", &server.data_dir)
            .env("REGBRIDGE_LISTEN", &listen)
            .env("DOCKER_CONFIG", dir.path())
            .env("REGISTRY_AUTH_FILE", dir.path().join("config.json"))
            .env_remove("REGBRIDGE_CONFIG");
    };
    if installed("skopeo") {
        let mut skopeo = Command::new("skopeo");
        skopeo.args(["inspect", "--raw", "--tls-verify=false", &format!("docker://{host}/helped/app:v1")]);
        with_env(&mut skopeo);
        let out = skopeo.output().unwrap();
        assert!(out.status.success(), "skopeo with the helper: {}", String::from_utf8_lossy(&out.stderr));
        let mut anonymous = Command::new("skopeo");
        anonymous.args(["inspect", "--raw", "--tls-verify=false", "--no-creds"]);
        anonymous.arg(format!("docker://{host}/helped/app:v1"));
        assert!(!anonymous.output().unwrap().status.success(), "without credentials it is refused");
    } else {
        eprintln!("SKIPPED skopeo with the credential helper: skopeo is not installed");
    }
    if installed("docker") {
        let mut docker = Command::new("docker");
        docker.args(["manifest", "inspect", "--insecure", &format!("{host}/helped/app:v1")]);
        with_env(&mut docker);
        let out = docker.output().unwrap();
        assert!(out.status.success(), "docker manifest inspect: {}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).contains("schemaVersion"));
    } else {
        eprintln!("SKIPPED docker manifest inspect with the credential helper: the docker CLI is not installed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_deletes_only_unreferenced_blobs() {
    let server = TestServer::start().await;
    let image = server.push_image("gc/app", "v1").await;
    let orphan = b"an uploaded blob no manifest references".to_vec();
    let orphan_digest = server.push_blob("gc/app", &orphan).await;

    let fresh = ok_json(&cli(&server, &["gc", "--dry-run"], ""));
    assert_eq!(fresh["deleted"].as_array().unwrap().len(), 0, "a fresh blob is spared: {fresh}");
    assert!(fresh["spared"].as_u64().unwrap() >= 1);

    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let dry = ok_json(&cli(&server, &["gc", "--dry-run", "--grace", "1s"], ""));
    assert_eq!(dry["deleted"], serde_json::json!([orphan_digest]), "{dry}");
    assert_eq!(dry["dryRun"], true);
    let r = server.admin(reqwest::Method::GET, &format!("/v2/gc/app/blobs/{orphan_digest}")).send().await.unwrap();
    assert_eq!(r.status(), 200, "a dry run deletes nothing");

    let done = ok_json(&cli(&server, &["gc", "--grace", "1s"], ""));
    assert_eq!(done["deleted"], serde_json::json!([orphan_digest]), "{done}");
    assert_eq!(done["deletedBytes"], orphan.len());
    let r = server.admin(reqwest::Method::HEAD, &format!("/v2/gc/app/blobs/{orphan_digest}")).send().await.unwrap();
    assert_eq!(r.status(), 404, "the orphan is gone, link included");
    let r = server.admin(reqwest::Method::GET, "/v2/gc/app/manifests/v1").send().await.unwrap();
    assert_eq!(r.bytes().await.unwrap().to_vec(), image.bytes, "the image is intact");
    for blob in [&image.config, &image.layer] {
        let digest = common::sha256(blob);
        let r = server.admin(reqwest::Method::GET, &format!("/v2/gc/app/blobs/{digest}")).send().await.unwrap();
        assert_eq!(r.bytes().await.unwrap().to_vec(), *blob);
    }
    // No grace at all is allowed: the stored image keeps its blobs, a new orphan goes at once.
    let orphan_digest = server.push_blob("gc/app", b"another orphan").await;
    let zero = ok_json(&cli(&server, &["gc", "--grace", "0s"], ""));
    assert_eq!(zero["deleted"], serde_json::json!([orphan_digest]), "{zero}");
    let r = server.admin(reqwest::Method::GET, "/v2/gc/app/manifests/v1").send().await.unwrap();
    assert_eq!(r.bytes().await.unwrap().to_vec(), image.bytes, "the image is intact");
    // The upload expiry reads durations as every setting does.
    ok_json(&cli(&server, &["gc", "--dry-run", "--upload-expiry", "2h"], ""));
    let bad = cli(&server, &["gc", "--grace", "soon"], "");
    let err = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(code(&bad), 2);
    assert!(err.contains("grace period") && !err.contains("TTL"), "{err}");

    let none = cli(&server, &["gc", "--data-dir", "/nonexistent/regbridge"], "");
    assert_eq!(code(&none), 2);
}

/// Sets the modification time of `path` to `ago` in the past.
fn backdate(path: &Path, ago: std::time::Duration) {
    let file = std::fs::File::options().write(true).open(path).expect("open to backdate");
    file.set_modified(std::time::SystemTime::now() - ago).expect("backdate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_uploads_expire_and_gc_removes_them() {
    let server = TestServer::start().await;
    let mut uploads = Vec::new();
    for _ in 0..2 {
        let r = server.admin(reqwest::Method::POST, "/v2/gc/abandoned/blobs/uploads/").send().await.unwrap();
        let location = common::header(&r, "location").expect("Location");
        let r = server.admin(reqwest::Method::PATCH, &location).body(vec![0u8; 1000]).send().await.unwrap();
        assert_eq!(r.status(), 202);
        let id = common::header(&r, "docker-upload-uuid").expect("upload id");
        uploads.push((location, server.data_dir.join("storage/uploads").join(id).join("data")));
    }
    // Idle for two days: past the default expiry of one, so the server no longer knows it.
    backdate(&uploads[0].1, std::time::Duration::from_secs(2 * 86400));
    let r = server.admin(reqwest::Method::GET, &uploads[0].0).send().await.unwrap();
    common::assert_error(r, 404, "BLOB_UPLOAD_UNKNOWN").await;
    let r = server.admin(reqwest::Method::GET, &uploads[1].0).send().await.unwrap();
    assert_eq!(r.status(), 204, "the other upload is live");

    let done = ok_json(&cli(&server, &["gc"], ""));
    assert_eq!(done["uploadsRemoved"], 1, "{done}");
    assert_eq!(done["reclaimedBytes"], 1000, "{done}");
    assert!(!uploads[0].1.exists());
    // gc takes the same setting as serve: idle for two minutes is expired with a one-minute expiry.
    backdate(&uploads[1].1, std::time::Duration::from_secs(120));
    let done = ok_json(&cli(&server, &["gc", "--upload-expiry-secs", "60"], ""));
    assert_eq!(done["uploadsRemoved"], 1, "{done}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reports_each_route() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let config = dir.path().join("regbridge.toml");
    std::fs::write(
        &config,
        format!("[[routes]]\nprovider = \"local\"\n\n[[routes]]\nprefix = \"gone\"\nprovider = \"generic\"\nregistry = \"{closed}\"\n"),
    )
    .unwrap();
    let out = cli(&server, &["check", "--timeout", "10", "--config", config.to_str().unwrap()], "");
    let text = stdout(&out);
    assert_eq!(code(&out), 1, "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    let line = |route: &str| lines.iter().find(|l| l.contains(route)).unwrap_or_else(|| panic!("{route}: {text}"));
    assert!(line("local").contains(": ok"), "{text}");
    assert!(line("gone").contains("FAILED") && line("gone").contains("reachable"), "{text}");
    let local_only = cli(&server, &["check"], "");
    assert!(local_only.status.success(), "{}", stdout(&local_only));
}

#[test]
fn every_command_explains_itself() {
    for args in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["repo", "create", "--help"],
        vec!["access", "add", "--help"],
        vec!["creds", "mint", "--help"],
        vec!["gc", "--help"],
        vec!["migrate", "--help"],
        vec!["check", "--help"],
        vec!["credential-helper", "--help"],
        vec!["registry", "add", "--help"],
    ] {
        let out = Command::new(BIN).args(&args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("Usage:"), "{args:?}");
    }
    let out = Command::new(BIN).args(["repo", "frobnicate"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "usage errors exit 2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_connections_from_the_command_line() {
    let server = TestServer::start().await;
    let upstream = common::upstream::ReferenceRegistry::start("robot", "conn-Secret-81");
    let added = cli(
        &server,
        &["registry", "add", "--name", "hub", "--registry", &upstream.addr, "--username", "robot", "--password-stdin"],
        "conn-Secret-81\n",
    );
    let added = ok_json(&added);
    assert_eq!(added["name"], "hub");
    let duplicate = cli(
        &server,
        &["registry", "add", "--name", "hub", "--registry", "ghcr.io", "--username", "u", "--password-stdin"],
        "x\n",
    );
    assert!(!duplicate.status.success());
    assert!(String::from_utf8_lossy(&duplicate.stderr).contains("hub"), "the conflict names the existing one");
    let bad = cli(&server, &["registry", "add", "--name", "acr", "--registry", "https://myregistry.azurecr.io/"], "");
    assert_eq!(code(&bad), 2);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("myregistry.azurecr.io"));
    for args in [vec!["registry", "list"], vec!["registry", "get", "hub"]] {
        let out = cli(&server, &args, "");
        assert!(out.status.success(), "{args:?}");
        assert!(!stdout(&out).contains("conn-Secret-81"), "{args:?} shows the password");
    }
    assert!(ok_json(&cli(&server, &["registry", "validate", "hub"], ""))["ok"] == true);
    assert_eq!(code(&cli(&server, &["registry", "get", "nope"], "")), 3);
    assert!(cli(&server, &["registry", "rm", "hub"], "").status.success());
    assert_eq!(code(&cli(&server, &["registry", "get", "hub"], "")), 3);
}

/// A wildcard listen address is where the server accepts connections, not an address clients reach: it
/// never ends up in minted credentials, and the command says that --public-url is needed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wildcard_listen_address_never_reaches_credentials() {
    let server = TestServer::start().await;
    ok_json(&cli(&server, &["repo", "create", "team/wild"], ""));
    for listen in [":5999", "0.0.0.0:5999", "[::]:5999"] {
        let out = cli(&server, &["creds", "mint", "team/wild", "--format", "docker-config", "--listen", listen], "");
        let minted = ok_json(&out);
        let hosts: Vec<&String> = minted["auths"].as_object().expect("a docker config").keys().collect();
        assert!(hosts.iter().all(|h| h.contains("127.0.0.1") || h.contains("[::1]")), "{listen}: {hosts:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("--public-url"), "{listen}: no hint");
    }
    let public = ok_json(&cli(
        &server,
        &[
            "creds",
            "mint",
            "team/wild",
            "--format",
            "docker-config",
            "--listen",
            ":5999",
            "--public-url",
            "https://reg.example.com",
        ],
        "",
    ));
    assert!(public.to_string().contains("reg.example.com"), "{public}");
}

/// Only `serve` creates a data directory: a command given the wrong one says so and creates nothing. OS
/// reasons stay in messages, and under `--log-format json` an error is one JSON object.
#[test]
fn commands_never_create_a_data_directory_and_keep_os_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("not-a-data-dir");
    let run = |args: &[&str]| {
        Command::new(BIN).args(args).arg("--data-dir").arg(&missing).env_remove("REGBRIDGE_CONFIG").output().unwrap()
    };
    for args in [&["repo", "create", "team/app"][..], &["creds", "mint", "team/app"], &["access", "get", "team/app"]] {
        let out = run(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(code(&out), 2, "{args:?}: {stderr}");
        assert!(stderr.contains("not a regbridge data directory") && stderr.contains("serve"), "{args:?}: {stderr}");
        assert!(!missing.exists(), "{args:?} created {}", missing.display());
    }
    let out = run(&["--log-format", "json", "repo", "get", "team/app"]);
    let line: Value = serde_json::from_slice(&out.stderr).expect("one JSON object");
    assert_eq!((line["level"].as_str(), line["exit_code"].as_u64()), (Some("ERROR"), Some(2)), "{line}");

    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir", "/proc/regbridge-cannot-be-here"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("create data directory") && stderr.contains("os error"), "{stderr}");
    assert!(!stderr.contains("internal error"), "{stderr}");
}
