//! `regbridge configure-docker [HOST...]`: points docker's (and with `--podman`, podman's and skopeo's)
//! `credHelpers` at `docker-credential-regbridge` for each host.
//!
//! The file is merged, never replaced: every other key (`auths`, `credsStore`, `proxies`, keys this code
//! does not know) and every other `credHelpers` entry stays. A file that is not a JSON object is refused
//! before anything is written, and the new file replaces the old by rename, so a crash leaves either.

use std::collections::BTreeSet;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use regbridge::auth::ServerAddress;
use regbridge::{Error, Result};
use serde_json::{Map, Value};

use super::context::{ConfigArgs, server_url};

/// The name `credHelpers` entries give: docker runs `docker-credential-` + it.
pub const HELPER_NAME: &str = "regbridge";

/// The arguments of `configure-docker`.
#[derive(clap::Args)]
pub struct ConfigureDockerArgs {
    /// Registry hosts to send to the helper [default: this server's address].
    hosts: Vec<String>,
    /// Also configure podman/skopeo: $REGISTRY_AUTH_FILE, else $XDG_RUNTIME_DIR/containers/auth.json,
    /// else ~/.config/containers/auth.json.
    #[arg(long)]
    podman: bool,
    /// Configure this file only (instead of $DOCKER_CONFIG/config.json or ~/.docker/config.json).
    #[arg(long, value_name = "PATH")]
    config_file: Option<PathBuf>,
    #[command(flatten)]
    config: ConfigArgs,
}

/// Runs `configure-docker`.
pub fn run(args: ConfigureDockerArgs) -> ExitCode {
    match configure(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => super::fail(&err),
    }
}

fn configure(args: &ConfigureDockerArgs) -> Result<()> {
    let hosts = if args.hosts.is_empty() {
        vec![ServerAddress::parse(&server_url(&args.config.load()?))?.host().to_owned()]
    } else {
        args.hosts.iter().map(|h| ServerAddress::parse(h).map(|a| a.host().to_owned())).collect::<Result<_>>()?
    };
    let files = target_files(args)?;
    // Every file is read and checked before any is written: a refusal changes nothing.
    let mut planned = Vec::new();
    for path in &files {
        let before = read_object(path)?;
        let (after, changes) = merge(before.clone(), &hosts)?;
        planned.push((path, before, after, changes));
    }
    for (path, before, after, changes) in planned {
        if changes.is_empty() {
            outln!("{}: unchanged (credHelpers already send {} to {HELPER_NAME})", path.display(), hosts.join(", "));
            continue;
        }
        write_atomically(path, &after, before.is_some())?;
        for change in changes {
            outln!("{}: {change}", path.display());
        }
    }
    if let Some(advice) = helper_on_path_advice() {
        outln!("{advice}");
    }
    Ok(())
}

/// The files to change.
fn target_files(args: &ConfigureDockerArgs) -> Result<Vec<PathBuf>> {
    if let Some(path) = &args.config_file {
        return Ok(vec![path.clone()]);
    }
    let env = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    let home = || env("HOME").ok_or_else(|| Error::bad_input("HOME is not set: give --config-file PATH"));
    let docker = match env("DOCKER_CONFIG") {
        Some(dir) => dir.join("config.json"),
        None => home()?.join(".docker").join("config.json"),
    };
    let mut files = vec![docker];
    if args.podman {
        let podman = match (env("REGISTRY_AUTH_FILE"), env("XDG_RUNTIME_DIR")) {
            (Some(file), _) => file,
            (None, Some(run)) => run.join("containers").join("auth.json"),
            (None, None) => home()?.join(".config").join("containers").join("auth.json"),
        };
        if !files.contains(&podman) {
            files.push(podman);
        }
    }
    Ok(files)
}

/// The file's JSON object, `None` when it does not exist (or is empty); an error when it is not an object.
pub fn read_object(path: &Path) -> Result<Option<Map<String, Value>>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::bad_input(format!("cannot read {}: {e}", path.display()))),
    };
    if text.trim().is_empty() {
        return Ok(None);
    }
    match serde_json::from_str(&text) {
        Ok(Value::Object(map)) => Ok(Some(map)),
        Ok(_) => Err(Error::bad_input(format!(
            "{} is not a JSON object: fix or move it, then run configure-docker again (nothing was changed)",
            path.display()
        ))),
        Err(e) => Err(Error::bad_input(format!(
            "{} is not valid JSON ({e}): fix or move it, then run configure-docker again (nothing was changed)",
            path.display()
        ))),
    }
}

/// `config` with `credHelpers[host] = "regbridge"` for each host, and what changed (empty: nothing).
pub fn merge(config: Option<Map<String, Value>>, hosts: &[String]) -> Result<(Map<String, Value>, Vec<String>)> {
    let mut config = config.unwrap_or_default();
    let helpers = config.entry("credHelpers").or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(helpers) = helpers else {
        return Err(Error::bad_input(
            "the config's credHelpers is not a JSON object: fix it, then run configure-docker again (nothing was \
             changed)",
        ));
    };
    let mut changes = Vec::new();
    for host in hosts.iter().collect::<BTreeSet<_>>() {
        let was = helpers.insert(host.clone(), Value::String(HELPER_NAME.into()));
        match was {
            Some(Value::String(old)) if old == HELPER_NAME => {}
            Some(old) => changes.push(format!("credHelpers[{host}] = {HELPER_NAME} (was {old})")),
            None => changes.push(format!("credHelpers[{host}] = {HELPER_NAME} (added)")),
        }
    }
    Ok((config, changes))
}

/// Writes `config` to `path` through a temporary file in the same directory and a rename, keeping the
/// old file's mode (0600 for a new file: it may hold `auths`).
fn write_atomically(path: &Path, config: &Map<String, Value>, existed: bool) -> Result<()> {
    let mode =
        if existed { std::fs::metadata(path).map(|m| m.permissions().mode() & 0o7777).unwrap_or(0o600) } else { 0o600 };
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Error::bad_input(format!("cannot create {}: {e}", dir.display())))?;
    let mut body = serde_json::to_string_pretty(config).map_err(|e| Error::internal("encode config", e))?;
    body.push('\n');
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("config.json");
    let tmp = dir.join(format!(".{name}.regbridge-{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
        file.write_all(body.as_bytes())?;
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::bad_input(format!("cannot write {}: {e}", path.display()))
    })
}

/// How to install the helper, when `docker-credential-regbridge` is not on PATH.
fn helper_on_path_advice() -> Option<String> {
    let name = format!("docker-credential-{HELPER_NAME}");
    let path = std::env::var_os("PATH").unwrap_or_default();
    if std::env::split_paths(&path).any(|dir| dir.join(&name).is_file()) {
        return None;
    }
    let exe = std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_else(|_| "regbridge".into());
    Some(format!(
        "warning: {name} is not on PATH, so docker cannot run the helper: install it with\n  ln -s {exe} \
         /usr/local/bin/{name}\n(or any directory on PATH)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_keeps_everything_else_and_is_idempotent() {
        let before = serde_json::json!({
            "auths": {"ghcr.io": {"auth": "dTpw"}},
            "credsStore": "desktop",
            "credHelpers": {"gcr.io": "gcloud"},
            "proxies": {"default": {"httpProxy": "http://127.0.0.1:3128"}},
            "somethingNew": [1, 2]
        });
        let Value::Object(before) = before else { unreachable!() };
        let hosts = vec!["123456789012.dkr.ecr.us-east-1.amazonaws.com".to_owned(), "gcr.io".to_owned()];
        let (after, changes) = merge(Some(before.clone()), &hosts).unwrap();
        assert_eq!(changes.len(), 2, "{changes:?}");
        assert!(changes.iter().any(|c| c.contains("was \"gcloud\"")), "{changes:?}");
        for key in ["auths", "credsStore", "proxies", "somethingNew"] {
            assert_eq!(after[key], before[key], "{key}");
        }
        assert_eq!(after["credHelpers"]["gcr.io"], "regbridge");
        let (again, changes) = merge(Some(after.clone()), &hosts).unwrap();
        assert!(changes.is_empty());
        assert_eq!(again, after);
    }

    #[test]
    fn a_non_object_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        for body in ["[1]", "\"x\"", "{oops"] {
            let path = dir.path().join("config.json");
            std::fs::write(&path, body).unwrap();
            let err = read_object(&path).unwrap_err().to_string();
            assert!(err.contains("nothing was changed"), "{err}");
        }
        let bad = serde_json::json!({"credHelpers": ["x"]});
        let Value::Object(bad) = bad else { unreachable!() };
        assert!(merge(Some(bad), &["h".into()]).is_err());
        assert_eq!(read_object(&dir.path().join("missing.json")).unwrap(), None);
    }
}
