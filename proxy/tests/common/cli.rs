//! Running the `regbridge` binary in tests: with none of the caller's regbridge settings, either on a
//! test server's data directory (as on the server's host) or away from it with a logins file of its own
//! (as on another host, after `regbridge login`).

use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use super::TestServer;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_regbridge");

/// `regbridge ARGS` without the REGBRIDGE_* variables of the environment the tests run in.
pub fn command(args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command.args(args);
    for (key, _) in std::env::vars_os().filter(|(k, _)| k.to_string_lossy().starts_with("REGBRIDGE_")) {
        command.env_remove(key);
    }
    command
}

/// Runs `command` with `stdin` on its standard input; answers its exit status and output.
pub fn run(command: &mut Command, stdin: &str) -> Output {
    use std::io::Write;
    let mut child =
        command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("run regbridge");
    // A command that exits without reading its input closes the pipe: that is not the test's failure.
    let _ = child.stdin.take().expect("stdin").write_all(stdin.as_bytes());
    child.wait_with_output().expect("regbridge exits")
}

/// The CLI on `server`'s host: its data directory and listen address.
pub fn on_data_dir(server: &TestServer, args: &[&str], stdin: &str) -> Output {
    let mut command = command(args);
    command
        .env("REGBRIDGE_DATA_DIR", &server.data_dir)
        .env("REGBRIDGE_LISTEN", server.base.trim_start_matches("http://"));
    run(&mut command, stdin)
}

/// The CLI on another host: in `cwd`, its logins under `config_home` (XDG_CONFIG_HOME), no data directory.
pub fn away(config_home: &Path, cwd: &Path, args: &[&str], stdin: &str) -> Output {
    let mut command = command(args);
    command.current_dir(cwd).env("XDG_CONFIG_HOME", config_home);
    run(&mut command, stdin)
}

/// The exit code (-1 for a signal).
pub fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

/// Standard output as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Standard error as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Standard output of a success (the test fails with stderr otherwise).
pub fn ok(out: &Output) -> String {
    assert!(out.status.success(), "exit {:?}: {}", out.status.code(), stderr(out));
    stdout(out)
}

/// Standard output of a success, parsed as JSON.
pub fn ok_json(out: &Output) -> Value {
    let text = ok(out);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}
