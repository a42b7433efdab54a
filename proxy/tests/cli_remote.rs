//! `users`, `robots`, `registry` and the list outputs through `regbridge login`, against a running server
//! in another data directory: every subcommand goes to the server's management API and lands in the
//! server's stores; a member logged in is refused (exit 4) and changes nothing; a secret appears once, in
//! the answer that created or rotated it, and in no listing of any format; `--data-dir` still means this
//! host's data directory.

mod common;

use std::process::Output;

use common::cli::{away, code, ok, ok_json, on_data_dir, stderr, stdout};
use common::{ADMIN, PASSWORD, TestServer, unique};
use serde_json::Value;
use tempfile::TempDir;

/// Another host: its own logins file and working directory, no data directory.
struct Host {
    home: TempDir,
    cwd: TempDir,
}

impl Host {
    /// A host logged in to `server` as `user`.
    fn logged_in(server: &TestServer, user: &str, password: &str) -> Self {
        let host = Host { home: tempfile::tempdir().unwrap(), cwd: tempfile::tempdir().unwrap() };
        ok(&host.login(server, user, password));
        host
    }

    fn login(&self, server: &TestServer, user: &str, password: &str) -> Output {
        self.run(&["login", &server.base, "--username", user, "--password-stdin"], &format!("{password}\n"))
    }

    fn run(&self, args: &[&str], stdin: &str) -> Output {
        away(self.home.path(), self.cwd.path(), args, stdin)
    }
}

/// The listing in every format: JSON (parsed), table and YAML, each checked to hold no `secrets`.
fn listings(host: &Host, args: &[&str], secrets: &[&str]) -> (Value, String, String) {
    let with = |format: &str| {
        let mut all = args.to_vec();
        all.extend(["--output", format]);
        let text = ok(&host.run(&all, ""));
        for secret in secrets {
            assert!(!text.contains(secret), "{args:?} --output {format} shows a secret: {text}");
        }
        assert!(!text.contains("argon2") && !text.contains("\"password\"") && !text.contains("secret:"), "{text}");
        text
    };
    let json: Value = serde_json::from_str(&with("json")).unwrap();
    (json, with("table"), with("yaml"))
}

fn names(listed: &Value) -> Vec<&str> {
    listed.as_array().unwrap().iter().filter_map(|a| a["name"].as_str()).collect()
}

#[test]
fn users_are_managed_through_the_servers_api() {
    let server = TestServer::shared();
    let host = Host::logged_in(&server, ADMIN, PASSWORD);
    let name = unique("remote-user");

    let out = host.run(&["users", "add", &name, "--allow", "team/*=pull,push"], "");
    let added = ok_json(&out);
    let password = added["password"].as_str().expect("a generated password, shown once").to_owned();
    assert_eq!((added["name"].as_str(), added["role"].as_str()), (Some(name.as_str()), Some("member")));
    assert!(stderr(&out).contains("shown only this once"), "{}", stderr(&out));
    // It is the server's: its data directory has it.
    assert_eq!(ok_json(&on_data_dir(&server, &["users", "get", &name], ""))["name"], name.as_str());

    let (json, table, yaml) = listings(&host, &["users", "list"], &[&password]);
    assert!(names(&json).contains(&name.as_str()) && names(&json).contains(&ADMIN), "{json}");
    let header = table.lines().next().unwrap();
    assert!(header.starts_with("NAME") && header.contains("ROLE") && header.contains("RULES"), "{table}");
    let row = table.lines().find(|l| l.starts_with(&format!("{name} "))).expect("a row for the user");
    assert!(row.contains("member") && row.contains("team/*=pull,push"), "{row}");
    assert!(yaml.contains(&format!("name: {name}\n")) && yaml.starts_with("- "), "{yaml}");
    let parsed: Value = serde_norway::from_str(&yaml).unwrap();
    assert_eq!(parsed, json, "the YAML holds what the JSON does");

    let got = ok_json(&host.run(&["users", "get", &name], ""));
    assert!(got["password"].is_null(), "get shows no password: {got}");
    assert_eq!(ok_json(&on_data_dir(&server, &["users", "get", &name], "")), got, "the same output both ways");
    // The configured admin is shown, and not changed, both ways.
    let admin = ok_json(&host.run(&["users", "get", ADMIN], ""));
    assert_eq!(admin["configured"], true, "{admin}");
    assert_eq!(ok_json(&on_data_dir(&server, &["users", "get", ADMIN], "")), admin);
    for out in [host.run(&["users", "rm", ADMIN], ""), on_data_dir(&server, &["users", "rm", ADMIN], "")] {
        assert_eq!(code(&out), 1, "{}", stderr(&out));
        assert!(stderr(&out).contains("configured user"), "{}", stderr(&out));
    }
    let updated = ok_json(&host.run(&["users", "update", &name, "--role", "admin", "--no-rules"], ""));
    assert_eq!((updated["role"].as_str(), updated["rules"].as_array().map(Vec::len)), (Some("admin"), Some(0)));
    let out = host.run(&["users", "update", &name, "--password-stdin"], "New-Password-4711\n");
    assert!(!ok(&out).contains("New-Password-4711"));
    // The new password is the one that logs in now.
    let other = Host { home: tempfile::tempdir().unwrap(), cwd: tempfile::tempdir().unwrap() };
    assert_eq!(code(&other.login(&server, &name, &password)), 4, "the old password is refused");
    ok(&other.login(&server, &name, "New-Password-4711"));

    assert_eq!(code(&host.run(&["users", "add", &name], "")), 1, "the name is taken");
    let bad = host.run(&["users", "add", "Bad Name"], "");
    assert_eq!(code(&bad), 2);
    assert!(stderr(&bad).contains("not an account name"), "{}", stderr(&bad));
    assert_eq!(code(&host.run(&["users", "add", &unique("empty"), "--password-stdin"], "")), 2);
    ok(&host.run(&["users", "rm", &name], ""));
    let gone = host.run(&["users", "get", &name], "");
    assert_eq!(code(&gone), 3, "{}", stderr(&gone));
    assert_eq!(code(&host.run(&["users", "rm", &name], "")), 3);

    // --data-dir names this host's data directory, whatever the login: here there is none.
    let missing = host.cwd.path().join("no-data");
    let local = host.run(&["users", "list", "--data-dir", missing.to_str().unwrap()], "");
    assert_eq!(code(&local), 2);
    assert!(stderr(&local).contains("no-data"), "{}", stderr(&local));
}

#[test]
fn robots_are_managed_through_the_servers_api_and_their_secrets_shown_once() {
    let server = TestServer::shared();
    let host = Host::logged_in(&server, ADMIN, PASSWORD);
    let name = unique("ci");
    let robot = format!("robot${name}");

    let added = ok_json(&host.run(&["robots", "add", &name, "--allow", "ci/*=pull,push", "--expires", "30d"], ""));
    assert_eq!(added["name"], robot.as_str());
    let first = added["secret"].as_str().unwrap().to_owned();
    assert!(added["expiresAt"].is_string(), "{added}");
    let rotated = ok_json(&host.run(&["robots", "rotate", &robot], ""));
    let second = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(first, second);

    // The rotated secret is the one that works: the old one is refused.
    let as_robot = Host { home: tempfile::tempdir().unwrap(), cwd: tempfile::tempdir().unwrap() };
    assert_eq!(code(&as_robot.login(&server, &robot, &first)), 4);
    ok(&as_robot.login(&server, &robot, &second));

    let (json, table, yaml) = listings(&host, &["robots", "list"], &[&first, &second]);
    assert!(names(&json).contains(&robot.as_str()), "{json}");
    let row = table.lines().find(|l| l.starts_with(&format!("{robot} "))).expect("a row for the robot");
    assert!(row.contains("ci/*=pull,push") && row.contains("20"), "the expiry is shown: {row}");
    assert!(yaml.contains(&format!("name: {robot}\n")), "{yaml}");
    let got = ok_json(&host.run(&["robots", "get", &name], ""));
    assert!(got["secret"].is_null() && got["name"] == robot.as_str(), "{got}");
    assert_eq!(ok_json(&on_data_dir(&server, &["robots", "get", &name], "")), got, "the same output both ways");

    let bad = host.run(&["robots", "add", &unique("x"), "--allow", "a/*=pull", "--expires", "yesterday"], "");
    assert_eq!(code(&bad), 2, "{}", stderr(&bad));
    ok(&host.run(&["robots", "rm", &name], ""));
    assert_eq!(code(&host.run(&["robots", "get", &name], "")), 3);
    assert_eq!(code(&host.run(&["robots", "rotate", &name], "")), 3);
}

#[test]
fn registry_connections_are_managed_through_the_servers_api() {
    let server = TestServer::shared();
    let host = Host::logged_in(&server, ADMIN, PASSWORD);
    let name = unique("self");
    // The server itself is the registry the connection logs in to (plain HTTP, the default on loopback).
    let registry = server.base.trim_start_matches("http://").to_owned();
    let out = host.run(
        &["registry", "add", "--name", &name, "--registry", &registry, "--username", ADMIN, "--password-stdin"],
        &format!("{PASSWORD}\n"),
    );
    let added = ok_json(&out);
    assert_eq!((added["hasSecret"].as_bool(), added["active"].as_bool()), (Some(true), Some(true)), "{added}");
    assert!(!stdout(&out).contains(PASSWORD));
    // The server's store has it.
    assert_eq!(ok_json(&on_data_dir(&server, &["registry", "get", &name], ""))["registry"], registry.as_str());

    let got = ok_json(&host.run(&["registry", "get", &name], ""));
    assert_eq!(ok_json(&on_data_dir(&server, &["registry", "get", &name], "")), got, "the same output both ways");
    let (json, table, yaml) = listings(&host, &["registry", "list"], &[PASSWORD]);
    assert!(names(&json).contains(&name.as_str()), "{json}");
    let row = table.lines().find(|l| l.starts_with(&format!("{name} "))).expect("a row for the connection");
    assert!(row.contains(&registry) && row.contains("yes"), "{row}");
    assert!(yaml.contains(&format!("name: {name}\n")) && yaml.contains("hasSecret: true"), "{yaml}");

    let validated = host.run(&["registry", "validate", &name], "");
    assert_eq!(ok_json(&validated)["ok"], true, "{}", stderr(&validated));
    let out = host.run(&["registry", "update", &name, "--password-stdin"], "not-the-password\n");
    assert!(!ok(&out).contains("not-the-password"));
    let refused = host.run(&["registry", "validate", &name], "");
    assert_eq!(code(&refused), 4, "a refused login exits 4: {}", stderr(&refused));
    assert_eq!(serde_json::from_slice::<Value>(&refused.stdout).unwrap()["refused"], true);

    let renamed = unique("renamed");
    let updated = ok_json(&host.run(&["registry", "update", &name, "--rename", &renamed, "--username", "robot"], ""));
    assert_eq!((updated["name"].as_str(), updated["username"].as_str()), (Some(renamed.as_str()), Some("robot")));
    assert_eq!(updated["registry"], registry.as_str(), "what is not given stays");
    assert_eq!(ok_json(&host.run(&["registry", "deactivate", &renamed], ""))["active"], false);
    assert_eq!(ok_json(&host.run(&["registry", "activate", &renamed], ""))["active"], true);
    assert_eq!(code(&host.run(&["registry", "get", &name], "")), 3, "the old name is gone");

    let duplicate = host.run(&["registry", "add", "--name", &renamed, "--registry", "ghcr.io"], "");
    assert_eq!(code(&duplicate), 1);
    assert!(stderr(&duplicate).contains(&renamed), "the conflict names the connection: {}", stderr(&duplicate));
    let bad = host.run(&["registry", "add", "--name", &unique("bad"), "--registry", "https://ghcr.io/"], "");
    assert_eq!(code(&bad), 2, "{}", stderr(&bad));
    assert_eq!(code(&host.run(&["registry", "update", &unique("nope"), "--username", "x"], "")), 3);
    ok(&host.run(&["registry", "rm", &renamed], ""));
    assert_eq!(code(&host.run(&["registry", "get", &renamed], "")), 3);
    assert_eq!(code(&host.run(&["registry", "rm", &renamed], "")), 3);
}

#[test]
fn a_member_logged_in_manages_no_accounts_and_no_connections() {
    let server = TestServer::shared();
    let admin = Host::logged_in(&server, ADMIN, PASSWORD);
    let member = unique("mia");
    ok(&admin.run(&["users", "add", &member, "--allow", "team/*=pull", "--password-stdin"], "Mia-Password-1\n"));
    let host = Host::logged_in(&server, &member, "Mia-Password-1");

    let victim = unique("victim");
    for args in [
        vec!["users", "list"],
        vec!["users", "get", ADMIN],
        vec!["users", "add", &victim, "--role", "admin"],
        vec!["users", "update", &member, "--role", "admin"],
        vec!["users", "rm", ADMIN],
        vec!["robots", "list"],
        vec!["robots", "add", &victim, "--allow", "**=pull,push,delete", "--expires", "never"],
        vec!["registry", "list"],
        vec!["registry", "add", "--name", &victim, "--registry", "ghcr.io"],
    ] {
        let out = host.run(&args, "");
        assert_eq!(code(&out), 4, "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("not an admin"), "{args:?}: {}", stderr(&out));
        assert!(stdout(&out).is_empty(), "{args:?}");
    }
    // Nothing changed: no new account, the member is still a member.
    assert_eq!(code(&admin.run(&["users", "get", &victim], "")), 3);
    assert_eq!(code(&admin.run(&["robots", "get", &victim], "")), 3);
    assert_eq!(ok_json(&admin.run(&["users", "get", &member], ""))["role"], "member");
    ok(&admin.run(&["users", "rm", &member], ""));
}

#[test]
fn access_get_prints_json_table_or_yaml_through_the_api() {
    let server = TestServer::shared();
    let host = Host::logged_in(&server, ADMIN, PASSWORD);
    let repo = format!("{}/app", unique("grants"));
    ok(&host.run(&["repo", "create", &repo], ""));
    ok(&host.run(&["access", "add", &repo, "--local-account", "acme,globex", "--push"], ""));
    let json = ok_json(&host.run(&["access", "get", &repo], ""));
    assert_eq!(json[0]["access"]["platform"], "local", "{json}");
    let table = ok(&host.run(&["access", "get", &repo, "--output", "table"], ""));
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("PLATFORM") && lines[0].contains("PERMISSIONS"), "{table}");
    assert!(lines[1].starts_with("local") && lines[1].contains("acme,globex") && lines[1].contains("pull,push"));
    let yaml = ok(&host.run(&["access", "get", &repo, "-o", "yaml"], ""));
    assert!(yaml.contains("platform: local") && yaml.contains("- acme"), "{yaml}");
    let repos = ok(&host.run(&["repo", "list", "--prefix", &repo, "--output", "yaml"], ""));
    assert!(repos.contains(&format!("name: {repo}")), "{repos}");
    ok(&host.run(&["repo", "delete", &repo], ""));
}
