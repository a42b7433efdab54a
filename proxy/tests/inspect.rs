//! `regbridge inspect NAME[:TAG|@DIGEST]` and `GET /admin/v1/inspect` against a running server: images
//! and indexes pushed over HTTP to the local route, by tag and by digest, on the server's data directory
//! and after `regbridge login`, as JSON and as a table; an upstream route (Debian's docker-registry); and
//! the hostile cases: bad references, missing tags, a member asking for what it may not pull, an upstream
//! serving other bytes than it names or a manifest too large.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::upstream::ReferenceRegistry;
use common::{PASSWORD, TestServer, descriptor, oci_index, sha256, unique, with_platform};
use regbridge::oci::media_types::{OCI_INDEX, OCI_MANIFEST};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_regbridge");

/// Runs the CLI in `cwd` with `config_home` as XDG_CONFIG_HOME, nothing from the environment, `env` set.
fn cli(config_home: &Path, cwd: &Path, args: &[&str], env: &[(&str, &str)], stdin: &str) -> Output {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .current_dir(cwd)
        .env("XDG_CONFIG_HOME", config_home)
        .env_remove("REGBRIDGE_DATA_DIR")
        .env_remove("REGBRIDGE_CONFIG")
        .env_remove("REGBRIDGE_SERVER")
        .env_remove("REGBRIDGE_PASSWORD")
        .env_remove("REGBRIDGE_LISTEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().expect("run regbridge");
    use std::io::Write;
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

/// A CLI in its own empty directories (no logins, no configuration), run off the runtime's threads.
struct Shell {
    home: tempfile::TempDir,
    cwd: tempfile::TempDir,
}

impl Shell {
    fn new() -> Self {
        Self { home: tempfile::tempdir().unwrap(), cwd: tempfile::tempdir().unwrap() }
    }

    /// The CLI with `args`, `env` and `stdin`; everything is copied first, so the future borrows nothing.
    fn run(&self, args: &[&str], env: &[(&str, &str)], stdin: &str) -> impl Future<Output = Output> + use<> {
        let (home, cwd) = (self.home.path().to_owned(), self.cwd.path().to_owned());
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let stdin = stdin.to_owned();
        async move {
            tokio::task::spawn_blocking(move || {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                cli(&home, &cwd, &args, &env, &stdin)
            })
            .await
            .unwrap()
        }
    }
}

fn json_out(out: &Output) -> Value {
    assert!(out.status.success(), "exit {:?}: {}", out.status.code(), String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// Asserts a failure with exit `code` whose message contains `says`.
fn failed(out: &Output, code: i32, says: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{stderr}");
    assert!(stderr.contains(says), "the error says {says:?}: {stderr}");
    assert!(out.stdout.is_empty(), "nothing on stdout: {}", String::from_utf8_lossy(&out.stdout));
}

fn platforms(inspection: &Value) -> Vec<String> {
    let list = inspection["platforms"].as_array().unwrap();
    list.iter()
        .map(|p| {
            let base = format!("{}/{}", p["os"].as_str().unwrap(), p["architecture"].as_str().unwrap());
            p["variant"].as_str().map_or(base.clone(), |v| format!("{base}/{v}"))
        })
        .collect()
}

/// An image and an index of it and another image (linux/amd64 and linux/arm64/v8) pushed to `repo`
/// (tags `v1` and `multi`): answers (image digest, image size, index digest, index size).
async fn push_image_and_index(server: &TestServer, repo: &str) -> (String, usize, String, usize) {
    let image = server.push_image(repo, "v1").await;
    let arm = server.push_image(repo, "arm").await;
    let mut arm_entry = with_platform(arm.descriptor(), "arm64");
    arm_entry["platform"]["variant"] = json!("v8");
    let index = oci_index(&[with_platform(image.descriptor(), "amd64"), arm_entry]);
    let bytes = serde_json::to_vec(&index).unwrap();
    let digest = server.push_manifest(repo, "multi", OCI_INDEX, &bytes).await;
    (image.digest, image.bytes.len(), digest, bytes.len())
}

fn assert_image(inspection: &Value, name: &str, digest: &str, size: usize) {
    assert_eq!(inspection["name"], name, "{inspection}");
    assert_eq!(inspection["descriptor"], json!({"mediaType": OCI_MANIFEST, "digest": digest, "size": size}));
    assert_eq!(inspection["platforms"], json!([]), "{inspection}");
}

fn assert_index(inspection: &Value, digest: &str, size: usize) {
    assert_eq!(inspection["descriptor"], json!({"mediaType": OCI_INDEX, "digest": digest, "size": size}));
    assert_eq!(platforms(inspection), ["linux/amd64", "linux/arm64/v8"], "{inspection}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_and_indexes_are_inspected_by_tag_and_digest_locally_and_after_login() {
    let server = TestServer::start().await;
    let repo = format!("{}/app", unique("insp"));
    let (image, image_size, index, index_size) = push_image_and_index(&server, &repo).await;
    let shell = Shell::new();
    let data_dir = server.data_dir.to_str().unwrap().to_owned();
    let listen = server.base.trim_start_matches("http://").to_owned();
    let on_host = [("REGBRIDGE_DATA_DIR", data_dir.as_str()), ("REGBRIDGE_LISTEN", listen.as_str())];
    let (by_tag, by_digest) = (format!("{repo}:v1"), format!("{repo}@{image}"));
    let (index_by_tag, index_by_digest) = (format!("{repo}:multi"), format!("{repo}@{index}"));

    // On the server's host, over its data directory.
    let local = |r: String| shell.run(&["inspect", &r], &on_host, "");
    let got = json_out(&local(by_tag.clone()).await);
    assert_image(&got, &repo, &image, image_size);
    assert_eq!(got["reference"], "v1");
    assert!(got["route"].as_str().unwrap().contains("local"), "{got}");
    assert_image(&json_out(&local(by_digest.clone()).await), &repo, &image, image_size);
    assert_index(&json_out(&local(index_by_tag.clone()).await), &index, index_size);
    assert_index(&json_out(&local(index_by_digest.clone()).await), &index, index_size);
    let latest = local(repo.clone()).await;
    failed(&latest, 3, "latest");
    failed(&local(format!("{repo}:v2")).await, 3, "v2");
    failed(&local(format!("{repo}@{}", sha256(b"nothing"))).await, 3, "not found");
    failed(&local(format!("{}/none:v1", unique("insp"))).await, 3, "not found");
    for (bad, says) in [
        ("Team/App:v1", "the name"),
        ("team/app:-v1", "the tag"),
        ("team/app@sha256:abc", "the digest"),
        ("127.0.0.1:5000/team/app:v1", "registry host"),
        ("", "empty"),
    ] {
        failed(&local(bad.to_owned()).await, 2, says);
    }
    let table = shell.run(&["inspect", &index_by_tag, "--output", "table"], &on_host, "").await;
    assert!(table.status.success(), "{}", String::from_utf8_lossy(&table.stderr));
    let text = String::from_utf8_lossy(&table.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].starts_with("NAME") && lines[0].contains("MEDIA TYPE") && lines[0].contains("PLATFORMS"));
    for cell in
        [repo.as_str(), "multi", OCI_INDEX, index.as_str(), &index_size.to_string(), "linux/amd64,linux/arm64/v8"]
    {
        assert!(lines[1].contains(cell), "{cell} in {text}");
    }

    // From another host, through the management API.
    let login = shell.run(&["login", &server.base, "--password-stdin"], &[], &format!("{PASSWORD}\n")).await;
    assert!(login.status.success(), "{}", String::from_utf8_lossy(&login.stderr));
    let remote = |r: String| shell.run(&["inspect", &r], &[], "");
    let got = json_out(&remote(by_tag).await);
    assert_image(&got, &repo, &image, image_size);
    assert_image(&json_out(&remote(by_digest).await), &repo, &image, image_size);
    assert_index(&json_out(&remote(index_by_tag.clone()).await), &index, index_size);
    assert_index(&json_out(&remote(index_by_digest).await), &index, index_size);
    failed(&remote(format!("{repo}:v2")).await, 3, "v2");
    failed(&remote("Team/App:v1".into()).await, 2, "the name");
    let table = shell.run(&["inspect", &index_by_tag, "-o", "table"], &[], "").await;
    assert!(String::from_utf8_lossy(&table.stdout).contains("linux/amd64,linux/arm64/v8"));

    // The endpoint itself: the same answer, the one error shape.
    let r = server.admin(Method::GET, "/admin/v1/inspect").query(&[("reference", &index_by_tag)]).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_index(&r.json::<Value>().await.unwrap(), &index, index_size);
    for (query, status) in [(vec![("reference", "a/b:-x")], 400), (vec![], 400), (vec![("ref", "a/b")], 400)] {
        let r = server.admin(Method::GET, "/admin/v1/inspect").query(&query).send().await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{query:?}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["errors"][0]["code"], "INVALID", "{body}");
    }
    let r = server.admin(Method::GET, "/admin/v1/inspect").query(&[("reference", &format!("{repo}:v9"))]);
    assert_eq!(r.send().await.unwrap().status(), StatusCode::NOT_FOUND);
    let r = server.anon(Method::GET, "/admin/v1/inspect").query(&[("reference", &index_by_tag)]).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_inspects_only_what_it_may_pull() {
    let server = TestServer::start().await;
    let (mine, theirs) = ("team/app", "other/app");
    let (image, image_size, _, _) = push_image_and_index(&server, mine).await;
    server.push_image(theirs, "v1").await;
    let rules = json!([{"repositories": "team/*", "actions": ["pull"]}]);
    let r = server.admin(Method::POST, "/admin/v1/users").json(&json!({"name": "mia", "rules": rules}));
    let r = r.send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let password = r.json::<Value>().await.unwrap()["password"].as_str().unwrap().to_owned();
    let member = |reference: &str| {
        server
            .anon(Method::GET, "/admin/v1/inspect")
            .basic_auth("mia", Some(&password))
            .query(&[("reference", reference)])
    };
    assert_eq!(member(&format!("{mine}:v1")).send().await.unwrap().status(), StatusCode::OK);
    for refused in
        [format!("{theirs}:v1"), format!("{theirs}:missing"), "teamx/app:v1".to_owned(), format!("{theirs}@{image}")]
    {
        let r = member(&refused).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{refused}: nothing is told of what it may not pull");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["errors"][0]["code"], "DENIED");
    }

    let shell = Shell::new();
    let login = shell.run(&["login", &server.base, "-u", "mia", "--password-stdin"], &[], &format!("{password}\n"));
    let login = login.await;
    assert!(login.status.success(), "{}", String::from_utf8_lossy(&login.stderr));
    assert_image(&json_out(&shell.run(&["inspect", &format!("{mine}:v1")], &[], "").await), mine, &image, image_size);
    failed(&shell.run(&["inspect", &format!("{theirs}:v1")], &[], "").await, 4, "mia may not pull other/app");
}

const UPSTREAM_USER: &str = "robot";
const UPSTREAM_PASSWORD: &str = "upstream-Secret-9c1e";

/// Pushes a blob through the proxy at `base` with POST then PUT (docker-registry 2.8 answers a monolithic
/// `POST ?digest=` with a session).
async fn push_blob_upstream(base: &str, repo: &str, media_type: &str, bytes: &[u8]) -> Value {
    let client = common::client();
    let r = client.post(format!("{base}/v2/{repo}/blobs/uploads/")).basic_auth("admin", Some(PASSWORD));
    let r = r.send().await.unwrap();
    assert_eq!(r.status(), 202);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let url = if location.starts_with("http") { location } else { format!("{base}{location}") };
    let url = common::with_digest(&url, &sha256(bytes));
    let r = client.put(url).basic_auth("admin", Some(PASSWORD)).body(bytes.to_vec()).send().await.unwrap();
    assert_eq!(r.status(), 201);
    descriptor(media_type, bytes)
}

async fn push_manifest_upstream(
    base: &str,
    repo: &str,
    tag: &str,
    media_type: &str,
    manifest: &Value,
) -> (String, usize) {
    let bytes = serde_json::to_vec(manifest).unwrap();
    let r = common::client()
        .put(format!("{base}/v2/{repo}/manifests/{tag}"))
        .basic_auth("admin", Some(PASSWORD))
        .header("Content-Type", media_type)
        .body(bytes.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    (sha256(&bytes), bytes.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_route_is_inspected_through_its_own_client() {
    let upstream = ReferenceRegistry::start(UPSTREAM_USER, UPSTREAM_PASSWORD);
    let (base, _, dir) = common::upstream::start_hub_proxy(&upstream, UPSTREAM_USER, UPSTREAM_PASSWORD, PASSWORD);
    let repo = "hub/app";
    let mut entries = Vec::new();
    let mut image = (String::new(), 0);
    for arch in ["amd64", "arm64"] {
        let config = format!(r#"{{"architecture":"{arch}","os":"linux"}}"#);
        let config = push_blob_upstream(&base, repo, common::OCI_CONFIG, config.as_bytes()).await;
        let layer = push_blob_upstream(&base, repo, common::OCI_LAYER, format!("layer of {arch}").as_bytes()).await;
        let manifest = common::image_manifest(&config, &[layer]);
        image = push_manifest_upstream(&base, repo, arch, OCI_MANIFEST, &manifest).await;
        let entry = json!({"mediaType": OCI_MANIFEST, "digest": image.0, "size": image.1});
        entries.push(with_platform(entry, arch));
    }
    let (index, index_size) = push_manifest_upstream(&base, repo, "multi", OCI_INDEX, &oci_index(&entries)).await;

    // The CLI on the host, with the configuration of the route: the route's own client, no server.
    let shell = Shell::new();
    let config = shell.cwd.path().join("regbridge.toml");
    std::fs::write(
        &config,
        format!(
            "[[routes]]\nprovider = \"local\"\n[[routes]]\nprefix = \"hub\"\nprovider = \"generic\"\nregistry = \
             \"{}\"\nusername = \"{UPSTREAM_USER}\"\npassword_env = \"HUB_PASSWORD\"\nupstream_prefix = \"mirror\"\n",
            upstream.addr
        ),
    )
    .unwrap();
    let data_dir = dir.path().join("data");
    let env = [("HUB_PASSWORD", UPSTREAM_PASSWORD), ("REGBRIDGE_DATA_DIR", data_dir.to_str().unwrap())];
    let config = config.to_str().unwrap();
    let run = |r: String| shell.run(&["inspect", &r, "--config", config], &env, "");
    let got = json_out(&run(format!("{repo}:arm64")).await);
    assert_image(&got, repo, &image.0, image.1);
    assert!(got["route"].as_str().unwrap().contains("generic"), "{got}");
    let by_digest = json_out(&run(format!("{repo}@{index}")).await);
    assert_eq!(by_digest["descriptor"], json!({"mediaType": OCI_INDEX, "digest": index, "size": index_size}));
    assert_eq!(platforms(&by_digest), ["linux/amd64", "linux/arm64"]);
    assert_eq!(platforms(&json_out(&run(format!("{repo}:multi")).await)), ["linux/amd64", "linux/arm64"]);
    failed(&run(format!("{repo}:missing")).await, 3, "missing");
    let text = String::from_utf8_lossy(&run(format!("{repo}:multi")).await.stdout).into_owned();
    assert!(!text.contains(&upstream.addr) && !text.contains(UPSTREAM_PASSWORD), "{text}");

    // The server's endpoint, through the same route.
    let r = common::client()
        .get(format!("{base}/admin/v1/inspect"))
        .basic_auth("admin", Some(PASSWORD))
        .query(&[("reference", format!("{repo}:multi"))])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body = r.text().await.unwrap();
    assert!(!body.contains(&upstream.addr) && !body.contains(UPSTREAM_PASSWORD), "{body}");
    assert_eq!(platforms(&serde_json::from_str(&body).unwrap()), ["linux/amd64", "linux/arm64"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_lies_about_a_manifest_or_sends_too_much_is_refused() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let hostile = MockServer::start().await;
    let served = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#.to_vec();
    let claimed = sha256(b"something else");
    Mock::given(method("GET"))
        .and(path("/v2/app/manifests/lying"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("Content-Type", OCI_MANIFEST)
                .insert_header("Docker-Content-Digest", claimed.as_str())
                .set_body_bytes(served.clone()),
        )
        .mount(&hostile)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/v2/app/manifests/{claimed}")))
        .respond_with(ResponseTemplate::new(200).insert_header("Content-Type", OCI_MANIFEST).set_body_bytes(served))
        .mount(&hostile)
        .await;
    let huge = vec![b' '; regbridge::oci::MAX_MANIFEST_BYTES as usize + 1];
    Mock::given(method("GET"))
        .and(path("/v2/app/manifests/huge"))
        .respond_with(ResponseTemplate::new(200).insert_header("Content-Type", OCI_MANIFEST).set_body_bytes(huge))
        .mount(&hostile)
        .await;
    Mock::given(method("GET")).and(path("/v2/")).respond_with(ResponseTemplate::new(200)).mount(&hostile).await;

    let shell = Shell::new();
    let config = shell.cwd.path().join("regbridge.toml");
    let registry = hostile.address().to_string();
    std::fs::write(
        &config,
        format!("[[routes]]\nprefix = \"bad\"\nprovider = \"generic\"\nregistry = \"{registry}\"\n"),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let run = |r: &str| shell.run(&["inspect", r, "--config", config], &[], "");
    failed(&run("bad/app:lying").await, 1, "not trusted");
    failed(&run(&format!("bad/app@{claimed}")).await, 1, "not trusted");
    failed(&run("bad/app:huge").await, 2, "manifest");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_to_a_registry_connection_is_inspected_through_the_connection() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let upstream = MockServer::start().await;
    let manifest = serde_json::to_vec(&common::image_manifest(&common::empty_config(), &[])).unwrap();
    Mock::given(method("GET"))
        .and(path("/v2/app/manifests/v1"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("Content-Type", OCI_MANIFEST)
                .insert_header("Docker-Content-Digest", sha256(&manifest).as_str())
                .set_body_bytes(manifest.clone()),
        )
        .mount(&upstream)
        .await;
    Mock::given(method("GET")).and(path("/v2/")).respond_with(ResponseTemplate::new(200)).mount(&upstream).await;
    let server = TestServer::start().await;
    let shell = Shell::new();
    let data_dir = server.data_dir.to_str().unwrap().to_owned();
    let env = [("REGBRIDGE_DATA_DIR", data_dir.as_str())];
    let config = shell.cwd.path().join("regbridge.toml");
    std::fs::write(&config, "[[routes]]\nprefix = \"conn\"\nprovider = \"generic\"\nconnection = \"mock\"\n").unwrap();
    let config = config.to_str().unwrap();
    let inspect = || shell.run(&["inspect", "conn/app:v1", "--config", config], &env, "");

    // Before the connection exists, the error says which one to create.
    failed(&inspect().await, 3, "regbridge registry add");
    let registry = format!("http://{}", upstream.address());
    let added = shell.run(&["registry", "add", "--name", "mock", "--registry", &registry], &env, "").await;
    assert!(added.status.success(), "{}", String::from_utf8_lossy(&added.stderr));
    let got = json_out(&inspect().await);
    assert_image(&got, "conn/app", &sha256(&manifest), manifest.len());
}
