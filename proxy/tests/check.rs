//! `regbridge check` and `GET /admin/v1/routes` against the running binary: a configuration with a good
//! local route, a generic route and a route to a stored registry connection that both reach a real
//! upstream (Debian's docker-registry), a route whose password_env is unset, a route naming a connection
//! that does not exist, and an unreachable route. The check fails exactly those three, here and through the
//! management API, with the same lines and exit code; members are refused; no secret is ever printed.
//! Also the generated shell completions and manual pages.

mod common;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_regbridge");
const ADMIN_PASSWORD: &str = "check-Admin-Pw-71";
const UPSTREAM_PASSWORD: &str = "up-Secret-Pw-33";
/// What the server's environment holds for the route whose variable is unset for the local check.
const WRONG_PASSWORD: &str = "wrong-Secret-Pw-58";
const HUB_VAR: &str = "REGBRIDGE_CHECK_TEST_HUB_PASSWORD";
const UNSET_VAR: &str = "REGBRIDGE_CHECK_TEST_UNSET_PASSWORD";

/// A child process killed on drop.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the CLI in `home` (its XDG_CONFIG_HOME, HOME and working directory, so no stray configuration or
/// login is found), `stdin` on its standard input, the hub's password in its environment.
fn cli(home: &Path, args: &[&str], stdin: &str) -> Output {
    let mut command = Command::new(BIN);
    command.args(args).current_dir(home).env("HOME", home).env("XDG_CONFIG_HOME", home);
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("REGBRIDGE_")) {
        command.env_remove(key);
    }
    let mut child = command
        .env(HUB_VAR, UPSTREAM_PASSWORD)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run regbridge");
    use std::io::Write;
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn assert_no_secret(what: &str, text: &str) {
    for secret in [UPSTREAM_PASSWORD, WRONG_PASSWORD, ADMIN_PASSWORD] {
        assert!(!text.contains(secret), "{what} shows a secret: {text}");
    }
}

/// `regbridge serve` with `config` on a free port, once it listens; and its base URL.
fn serve(config: &Path, data: &Path) -> (Process, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr = format!("127.0.0.1:{port}");
    let mut command = Command::new(BIN);
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("REGBRIDGE_")) {
        command.env_remove(key);
    }
    let child = command
        .args(["serve", "--listen", &addr, "--config"])
        .arg(config)
        .arg("--data-dir")
        .arg(data)
        .env("REGBRIDGE_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env(HUB_VAR, UPSTREAM_PASSWORD)
        // The server has the variable the local check lacks, with a password the upstream refuses: the route
        // fails on both sides, for different reasons.
        .env(UNSET_VAR, WRONG_PASSWORD)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let process = Process(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(Instant::now() < deadline, "regbridge did not listen on {addr}");
        std::thread::sleep(Duration::from_millis(50));
    }
    (process, format!("http://{addr}"))
}

/// The labels of the routes that failed, and of those that passed, in a check's JSON.
fn outcomes(checked: &Value) -> (Vec<String>, Vec<String>) {
    let mut failed = Vec::new();
    let mut passed = Vec::new();
    for route in checked.as_array().unwrap_or_else(|| panic!("not a list: {checked}")) {
        let label = route["label"].as_str().unwrap().to_owned();
        match route["health"]["ok"].as_bool() {
            Some(true) => passed.push(label),
            Some(false) => failed.push(label),
            None => panic!("no health: {route}"),
        }
    }
    (failed, passed)
}

fn labelled<'a>(lines: &'a [&'a str], prefix: &str) -> &'a str {
    let wanted = format!("(generic \"{prefix}\")");
    lines.iter().find(|l| l.contains(&wanted)).unwrap_or_else(|| panic!("{prefix}: {lines:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_fails_exactly_the_broken_routes_here_and_through_the_api() {
    let upstream = common::upstream::ReferenceRegistry::start("robot", UPSTREAM_PASSWORD);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join("data");
    let config = home.path().join("routes.toml");
    let addr = &upstream.addr;
    std::fs::write(
        &config,
        format!(
            "[[routes]]\nprovider = \"local\"\n\n\
             [[routes]]\nprefix = \"hub\"\nprovider = \"generic\"\nregistry = \"{addr}\"\nusername = \"robot\"\npassword_env = \"{HUB_VAR}\"\n\n\
             [[routes]]\nprefix = \"viaconn\"\nprovider = \"generic\"\nconnection = \"hubconn\"\n\n\
             [[routes]]\nprefix = \"nopass\"\nprovider = \"generic\"\nregistry = \"{addr}\"\nusername = \"robot\"\npassword_env = \"{UNSET_VAR}\"\n\n\
             [[routes]]\nprefix = \"conn\"\nprovider = \"generic\"\nconnection = \"missing-conn\"\n\n\
             [[routes]]\nprefix = \"gone\"\nprovider = \"generic\"\nregistry = \"{closed}\"\n"
        ),
    )
    .unwrap();
    let data_arg = data.to_str().unwrap();
    // The connection is added once the server runs (only `serve` creates a data directory); its routes
    // look connections up per request.
    let (_server, base) = serve(&config, &data);
    let added = cli(
        home.path(),
        &[
            "registry",
            "add",
            "--data-dir",
            data_arg,
            "--name",
            "hubconn",
            "--registry",
            addr,
            "--username",
            "robot",
            "--password-stdin",
        ],
        &format!("{UPSTREAM_PASSWORD}\n"),
    );
    assert!(added.status.success(), "{}", text(&added));
    let config_arg = config.to_str().unwrap();
    let local_args = ["check", "--timeout", "10", "--config", config_arg, "--data-dir", data_arg];

    // Here: one line per route, exactly the three broken ones failed, each with its cause.
    let home_path = home.path().to_owned();
    let run = move |args: Vec<String>| {
        let home = home_path.clone();
        tokio::task::spawn_blocking(move || cli(&home, &args.iter().map(String::as_str).collect::<Vec<_>>(), ""))
    };
    let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let here = run(args(&local_args)).await.unwrap();
    assert_eq!(here.status.code(), Some(1), "{}", text(&here));
    assert_no_secret("check", &text(&here));
    let here_text = stdout(&here);
    let lines: Vec<&str> = here_text.lines().collect();
    assert_eq!(lines.len(), 6, "{here_text}");
    assert!(lines.iter().any(|l| l.contains("(local") && l.contains(": ok")), "{here_text}");
    assert!(labelled(&lines, "hub").contains(": ok"), "{here_text}");
    assert!(labelled(&lines, "viaconn").contains(": ok"), "the stored connection reached the upstream: {here_text}");
    let nopass = labelled(&lines, "nopass");
    assert!(nopass.contains("FAILED") && nopass.contains(UNSET_VAR), "{here_text}");
    let conn = labelled(&lines, "conn");
    assert!(conn.contains("FAILED") && conn.contains("missing-conn"), "{here_text}");
    let gone = labelled(&lines, "gone");
    assert!(gone.contains("FAILED") && gone.contains(&closed.to_string()) && gone.contains("reachable"), "{here_text}");
    assert!(String::from_utf8_lossy(&here.stderr).contains("3 of 6 routes failed"), "{}", text(&here));

    let here_json: Value = {
        let out = run(args(&[&local_args[..], &["--output", "json"]].concat())).await.unwrap();
        assert_eq!(out.status.code(), Some(1));
        assert_no_secret("check --output json", &text(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let (failed, passed) = outcomes(&here_json);
    assert_eq!(failed.len(), 3, "{here_json}");
    assert_eq!(passed.len(), 3, "{here_json}");
    let hub = here_json.as_array().unwrap().iter().find(|r| r["prefix"] == "hub").unwrap();
    assert_eq!(hub["registry"], addr.as_str(), "the registry host is named: {hub}");
    let table = run(args(&[&local_args[..], &["--output", "table"]].concat())).await.unwrap();
    assert_eq!(table.status.code(), Some(1));
    let table = stdout(&table);
    assert_eq!(table.lines().count(), 7, "a header and one row per route: {table}");
    assert!(table.starts_with("ROUTE"), "{table}");

    // The API: the routes without and with health, admins only, no secret.
    let client = common::client();
    let listed = client.get(format!("{base}/admin/v1/routes")).basic_auth("admin", Some(ADMIN_PASSWORD));
    let listed = listed.send().await.unwrap();
    assert_eq!(listed.status(), 200);
    let listed_text = listed.text().await.unwrap();
    assert_no_secret("GET /admin/v1/routes", &listed_text);
    let listed: Value = serde_json::from_str(&listed_text).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 6, "{listed}");
    assert!(listed.as_array().unwrap().iter().all(|r| r.get("health").is_none()), "no probe unless asked: {listed}");
    let via = listed.as_array().unwrap().iter().find(|r| r["prefix"] == "viaconn").unwrap();
    assert_eq!(via["registry"], addr.as_str(), "{via}");
    assert_eq!(via["connection"], "hubconn", "{via}");
    for path in ["/admin/v1/routes?health=true&timeout=10s", "/admin/v1/routes/health?timeout=10s"] {
        let r = client.get(format!("{base}{path}")).basic_auth("admin", Some(ADMIN_PASSWORD)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let body = r.text().await.unwrap();
        assert_no_secret(path, &body);
        let (api_failed, api_passed) = outcomes(&serde_json::from_str(&body).unwrap());
        assert_eq!((&api_failed, &api_passed), (&failed, &passed), "{path}: {body}");
    }
    let bad = client.get(format!("{base}/admin/v1/routes?health=true&timeout=1h"));
    assert_eq!(bad.basic_auth("admin", Some(ADMIN_PASSWORD)).send().await.unwrap().status(), 400);
    assert_eq!(client.get(format!("{base}/admin/v1/routes")).send().await.unwrap().status(), 401);
    let member = json!({ "name": "member1", "role": "member", "password": "member-Pw-2931", "rules": [{ "repositories": "hub/*", "actions": ["pull", "push"] }] });
    let created = client.post(format!("{base}/admin/v1/users")).basic_auth("admin", Some(ADMIN_PASSWORD)).json(&member);
    let created = created.send().await.unwrap();
    assert_eq!(created.status(), 201, "{}", created.text().await.unwrap());
    for path in ["/admin/v1/routes", "/admin/v1/routes?health=true", "/admin/v1/routes/health"] {
        let r = client.get(format!("{base}{path}")).basic_auth("member1", Some("member-Pw-2931")).send().await.unwrap();
        common::assert_error(r, 403, "DENIED").await;
    }

    // Through the API after `login`, and with --server: the same lines and exit code.
    let login = {
        let home = home.path().to_owned();
        let base = base.clone();
        tokio::task::spawn_blocking(move || {
            cli(&home, &["login", &base, "--password-stdin"], &format!("{ADMIN_PASSWORD}\n"))
        })
        .await
        .unwrap()
    };
    assert!(login.status.success(), "{}", text(&login));
    for remote_args in [vec!["check", "--timeout", "10"], vec!["check", "--timeout", "10", "--server", &base]] {
        let remote = run(args(&remote_args)).await.unwrap();
        assert_eq!(remote.status.code(), Some(1), "{remote_args:?}: {}", text(&remote));
        assert_no_secret("check through the API", &text(&remote));
        let remote_text = stdout(&remote);
        let remote_lines: Vec<&str> = remote_text.lines().collect();
        assert_eq!(remote_lines.len(), 6, "{remote_text}");
        // Every line but the password_env route's (the server has the variable, and its value is refused)
        // is the local check's.
        for line in &lines {
            if !line.contains("\"nopass\"") {
                assert!(remote_lines.contains(line), "{line:?} missing through the API: {remote_text}");
            }
        }
        let nopass = labelled(&remote_lines, "nopass");
        assert!(nopass.contains("FAILED") && !nopass.contains(WRONG_PASSWORD), "{remote_text}");
        assert!(String::from_utf8_lossy(&remote.stderr).contains("3 of 6 routes failed"), "{}", text(&remote));
    }
    let remote_json = run(args(&["check", "--timeout", "10", "--output", "json"])).await.unwrap();
    assert_eq!(remote_json.status.code(), Some(1));
    let (api_failed, api_passed) = outcomes(&serde_json::from_slice(&remote_json.stdout).unwrap());
    assert_eq!((api_failed, api_passed), (failed, passed));
}

/// Cloud routes name the registry (or control-plane) host and the likely cause: an ECR route with an access
/// key whose registry cannot be reached, and one without an account whose credentials cannot be loaded
/// (STS at a closed port). The secret access key is never printed.
#[test]
fn cloud_routes_name_the_host_and_the_likely_cause() {
    let home = tempfile::tempdir().unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let config = home.path().join("ecr.toml");
    std::fs::write(
        &config,
        format!(
            "[[routes]]\nprefix = \"aws\"\nprovider = \"ecr\"\naccount = \"123456789012\"\nregion = \"us-east-1\"\n\
             endpoint = \"http://{closed}\"\nregistry = \"http://{closed}\"\nusername = \"AKIAIOSFODNN7EXAMPLE\"\npassword_env = \"{HUB_VAR}\"\n\n\
             [[routes]]\nprefix = \"sts\"\nprovider = \"ecr\"\nregion = \"us-east-1\"\nendpoint = \"http://{closed}\"\n"
        ),
    )
    .unwrap();
    let data = home.path().join("data");
    let out = cli(
        home.path(),
        &["check", "--timeout", "10", "--config", config.to_str().unwrap(), "--data-dir", data.to_str().unwrap()],
        "",
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_no_secret("check", &text(&out));
    let lines = stdout(&out);
    let lines: Vec<&str> = lines.lines().collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    let aws = lines.iter().find(|l| l.contains("\"aws\"")).unwrap();
    assert!(aws.contains("FAILED") && aws.contains(&closed.to_string()) && aws.contains("reachable"), "{aws}");
    let sts = lines.iter().find(|l| l.contains("\"sts\"")).unwrap();
    assert!(sts.contains("FAILED") && sts.contains(&closed.to_string()) && sts.contains("AWS credentials"), "{sts}");
    assert!(!data.exists(), "a check creates no data directory");
}

/// The names of the subcommands `regbridge --help` lists.
fn subcommands() -> Vec<String> {
    let help = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    let commands = help.split("Commands:").nth(1).expect("a Commands section");
    let commands = commands.split("\n\n").next().unwrap();
    let names: Vec<String> = commands
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| *n != "help")
        .map(str::to_owned)
        .collect();
    for expected in ["serve", "check", "registry", "completions", "man"] {
        assert!(names.iter().any(|n| n == expected), "{expected} in {names:?}");
    }
    names
}

#[test]
fn completions_and_manual_pages_name_every_subcommand() {
    let names = subcommands();
    for shell in ["bash", "zsh", "fish"] {
        let out = Command::new(BIN).args(["completions", shell]).output().unwrap();
        assert!(out.status.success(), "{shell}: {}", String::from_utf8_lossy(&out.stderr));
        let script = String::from_utf8(out.stdout).unwrap();
        assert!(script.len() > 1000, "{shell}: {script}");
        for name in &names {
            assert!(script.contains(name.as_str()), "{shell} completions lack {name}");
        }
    }
    let bad = Command::new(BIN).args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(2), "an unknown shell is a usage error");

    let out = Command::new(BIN).arg("man").output().unwrap();
    assert!(out.status.success());
    let page = String::from_utf8(out.stdout).unwrap();
    assert!(page.starts_with(".ie") || page.contains(".TH regbridge"), "roff: {}", &page[..page.len().min(300)]);
    for name in &names {
        assert!(page.contains(&format!("regbridge\\-{}", name.replace('-', "\\-"))), "the page names {name}");
    }

    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("man1");
    let out = Command::new(BIN).args(["man", "--out"]).arg(&out_dir).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for name in &names {
        assert!(out_dir.join(format!("regbridge-{name}.1")).is_file(), "a page for {name}");
    }
    assert!(out_dir.join("regbridge-repo-create.1").is_file(), "pages for nested subcommands too");
    let installed = Command::new("sh").args(["-c", "command -v man"]).output().is_ok_and(|o| o.status.success());
    if installed {
        let rendered = Command::new("man")
            .arg("-l")
            .arg(out_dir.join("regbridge.1"))
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "100")
            .output()
            .unwrap();
        assert!(rendered.status.success(), "man -l: {}", String::from_utf8_lossy(&rendered.stderr));
        let rendered = String::from_utf8_lossy(&rendered.stdout);
        for name in &names {
            assert!(rendered.contains(&format!("regbridge-{name}")), "man renders {name}: {rendered}");
        }
    } else {
        eprintln!("man is not installed: the roff text was checked, not its rendering");
    }
}
