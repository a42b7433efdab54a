//! `regbridge registry add|list|get|validate|rm`: registry connections managed in the data directory
//! directly (a running server sees the changes on its next request).
//!
//! JSON goes to stdout, messages to stderr. Exit codes: 0 success, 2 usage or invalid input, 3 no such
//! connection, 4 the registry refused the credentials (`validate`), 1 anything else (conflicts included).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use regbridge::Secret;

use crate::connections::validate::validate;
use crate::connections::{ConnectionError, ConnectionInput, ConnectionStore};

/// `regbridge registry`: the registry connections of a data directory.
#[derive(Debug, clap::Args)]
pub struct RegistryArgs {
    /// TOML configuration file: its data_dir and its [connections] key are used.
    #[arg(long, short, env = "REGBRIDGE_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// The server's data directory [default: the configuration's, else regbridge-data].
    #[arg(long, env = "REGBRIDGE_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: RegistryCommand,
}

/// The `regbridge registry` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum RegistryCommand {
    /// Add a connection: a name, a registry (host[:port], such as ghcr.io), and a user name with a password
    /// or token read from standard input.
    Add(AddArgs),
    /// List the connections as JSON (never their passwords or tokens).
    List,
    /// Show one connection as JSON (never its password or token).
    Get {
        /// The connection's name.
        name: String,
    },
    /// Change a connection: fields not given keep their value; a new password or token is read from
    /// standard input.
    Update(UpdateArgs),
    /// Let routes use the connection again.
    Activate {
        /// The connection's name.
        name: String,
    },
    /// Keep the connection but let no route use it until it is activated.
    Deactivate {
        /// The connection's name.
        name: String,
    },
    /// Log in to the connection's registry with its stored credentials; exit code 4 when it refuses them.
    Validate {
        /// The connection's name.
        name: String,
    },
    /// Remove a connection.
    Rm {
        /// The connection's name.
        name: String,
    },
}

/// `regbridge registry add`.
#[derive(Debug, clap::Args)]
pub struct AddArgs {
    /// The connection's name, for routes (`connection = "NAME"`) and these commands.
    #[arg(long)]
    pub name: String,
    /// The registry as host[:port]: ghcr.io, myregistry.azurecr.io, registry-1.docker.io; http://host[:port]
    /// for one without TLS on a trusted network (the credentials then cross it readable).
    #[arg(long)]
    pub registry: String,
    /// The login (omit it for anonymous access).
    #[command(flatten)]
    pub login: LoginArgs,
    /// Store the connection inactive: routes do not use it until it is activated.
    #[arg(long)]
    pub inactive: bool,
}

/// `regbridge registry update`.
#[derive(Debug, clap::Args)]
pub struct UpdateArgs {
    /// The connection to change.
    pub name: String,
    /// A new name.
    #[arg(long)]
    pub rename: Option<String>,
    /// A new registry (host[:port], or http://host[:port]).
    #[arg(long)]
    pub registry: Option<String>,
    /// A new login (fields not given keep their value).
    #[command(flatten)]
    pub login: LoginArgs,
}

/// The login of a connection: a user name, and a password or token read from standard input.
#[derive(Debug, clap::Args)]
pub struct LoginArgs {
    /// The user name to log in with.
    #[arg(long)]
    pub username: Option<String>,
    /// Read the password from standard input.
    #[arg(long, conflicts_with = "token_stdin")]
    pub password_stdin: bool,
    /// Read an access token from standard input.
    #[arg(long)]
    pub token_stdin: bool,
}

impl LoginArgs {
    /// `input` with this login: the user name, and the secret read from `stdin` as password or token.
    fn apply(self, input: ConnectionInput, stdin: &mut dyn Read) -> Result<ConnectionInput, Failure> {
        let secret = if self.password_stdin || self.token_stdin { Some(read_secret(stdin)?) } else { None };
        Ok(ConnectionInput {
            username: self.username,
            password: secret.clone().filter(|_| self.password_stdin),
            token: secret.filter(|_| self.token_stdin),
            ..input
        })
    }
}

/// A failed command: its message and exit code.
#[derive(Debug)]
struct Failure {
    code: u8,
    message: String,
}

impl From<ConnectionError> for Failure {
    fn from(e: ConnectionError) -> Self {
        let code = match &e {
            ConnectionError::Invalid(_) => 2,
            ConnectionError::NotFound(_) => 3,
            ConnectionError::Other(inner) if inner.status() == 400 => 2,
            ConnectionError::Conflict { .. } | ConnectionError::Other(_) => 1,
        };
        let message = match &e {
            ConnectionError::Invalid(errors) => {
                errors.iter().map(|f| format!("--{}: {}", f.field, f.message)).collect::<Vec<_>>().join("\n       ")
            }
            _ => e.to_string(),
        };
        Failure { code, message }
    }
}

impl From<regbridge::Error> for Failure {
    fn from(e: regbridge::Error) -> Self {
        ConnectionError::Other(e).into()
    }
}

/// Runs `regbridge registry ...`: the data directory and key from `--data-dir` and the `--config` file.
pub fn run(args: RegistryArgs) -> ExitCode {
    let config = crate::cli::ConfigArgs::of_data_dir(args.config, args.data_dir);
    match config.load() {
        Ok(config) => run_in(args.command, &config.data_dir, config.connections_key.as_ref()),
        Err(e) => exit(Err(e.into())),
    }
}

/// Runs `command` on the connections of `data_dir` (secrets under `key`, else `DATA_DIR/connections.key`)
/// with the process's standard streams; for callers that load the configuration themselves.
pub fn run_in(command: RegistryCommand, data_dir: &Path, key: Option<&Secret>) -> ExitCode {
    exit(execute(command, data_dir, key, &mut std::io::stdin(), &mut std::io::stdout()))
}

fn exit(result: Result<u8, Failure>) -> ExitCode {
    match result {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            super::report(&failure.message, failure.code);
            ExitCode::from(failure.code)
        }
    }
}

fn execute(
    command: RegistryCommand,
    data_dir: &Path,
    key: Option<&Secret>,
    stdin: &mut dyn Read,
    stdout: &mut dyn Write,
) -> Result<u8, Failure> {
    // Only `serve` creates a data directory: connections added to a mistyped one would serve nothing.
    if !data_dir.is_dir() {
        return Err(Failure {
            code: 2,
            message: format!(
                "there is no data directory {}: give the server's with --data-dir (only `regbridge serve` creates \
                 one)",
                data_dir.display()
            ),
        });
    }
    let store = ConnectionStore::open(data_dir, key)?;
    match command {
        RegistryCommand::Add(add) => {
            let input = ConnectionInput {
                name: Some(add.name),
                registry: Some(add.registry),
                active: Some(!add.inactive),
                ..ConnectionInput::default()
            };
            let input = add.login.apply(input, stdin)?;
            let created = store.create(&input)?;
            eprintln!("added registry connection {:?} ({})", created.name, created.registry);
            warn_plain_http(&created);
            print(stdout, &created)
        }
        RegistryCommand::Update(update) => {
            let existing = store.get_by_name(&update.name)?;
            let input =
                ConnectionInput { name: update.rename, registry: update.registry, ..ConnectionInput::default() };
            let input = update.login.apply(input, stdin)?;
            let updated = store.update(&existing.id, &input)?;
            eprintln!("updated registry connection {:?} ({})", updated.name, updated.registry);
            warn_plain_http(&updated);
            print(stdout, &updated)
        }
        RegistryCommand::Activate { name } => set_active(&store, &name, true, stdout),
        RegistryCommand::Deactivate { name } => set_active(&store, &name, false, stdout),
        RegistryCommand::List => print(stdout, &store.list()?),
        RegistryCommand::Get { name } => print(stdout, &store.get_by_name(&name)?),
        RegistryCommand::Validate { name } => {
            let connection = store.get_by_name(&name)?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| Failure { code: 1, message: format!("tokio runtime: {e}") })?;
            let outcome = runtime.block_on(validate(&store, &connection.id))?;
            print(stdout, &outcome.to_json())?;
            Ok(match &outcome.error {
                None => 0,
                Some(e) => {
                    eprintln!("{} refused or failed the login: {e}", connection.registry);
                    if outcome.is_auth_failure() { 4 } else { 1 }
                }
            })
        }
        RegistryCommand::Rm { name } => {
            let connection = store.get_by_name(&name)?;
            store.delete(&connection.id)?;
            eprintln!("removed registry connection {name:?}");
            Ok(0)
        }
    }
}

/// Activates or deactivates the connection `name` and prints it.
fn set_active(store: &ConnectionStore, name: &str, active: bool, stdout: &mut dyn Write) -> Result<u8, Failure> {
    let existing = store.get_by_name(name)?;
    let updated =
        store.update(&existing.id, &ConnectionInput { active: Some(active), ..ConnectionInput::default() })?;
    eprintln!("registry connection {name:?} is {}", if active { "active" } else { "inactive" });
    print(stdout, &updated)
}

/// Says on stderr that a connection's traffic, its credentials included, crosses the network unencrypted.
fn warn_plain_http(connection: &crate::connections::Connection) {
    if crate::connections::is_plain_http(&connection.registry) {
        eprintln!(
            "warning: {} is reached over plain HTTP: its credentials and images cross the network readable; use \
             it only on a network you trust",
            connection.registry
        );
    }
}

/// The secret on standard input, without the line end `echo` or a terminal adds.
fn read_secret(stdin: &mut dyn Read) -> Result<Secret, Failure> {
    let mut text = String::new();
    stdin
        .read_to_string(&mut text)
        .map_err(|e| Failure { code: 2, message: format!("cannot read the secret from standard input: {e}") })?;
    let secret = Secret::new(text.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(&text));
    text.clear();
    Ok(secret)
}

/// Writes `value` as pretty JSON and a line end; exit code 0.
fn print(stdout: &mut dyn Write, value: &impl serde::Serialize) -> Result<u8, Failure> {
    let json = serde_json::to_string_pretty(value).expect("connections serialise");
    writeln!(stdout, "{json}").map_err(|e| Failure { code: 1, message: format!("cannot write to stdout: {e}") })?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        command: Top,
    }

    #[derive(clap::Subcommand)]
    enum Top {
        Registry(RegistryArgs),
    }

    fn run_cli(dir: &std::path::Path, args: &[&str], stdin: &str) -> (Result<u8, Failure>, String) {
        let data_dir = dir.to_str().unwrap();
        let argv = ["regbridge", "registry", "--data-dir", data_dir].into_iter().chain(args.iter().copied());
        let Top::Registry(args) = Cli::try_parse_from(argv).unwrap().command;
        assert_eq!(args.data_dir.as_deref(), Some(dir));
        let mut out = Vec::new();
        let result = execute(args.command, dir, None, &mut stdin.as_bytes(), &mut out);
        (result, String::from_utf8(out).unwrap())
    }

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        let both =
            ["regbridge", "registry", "add", "--name", "a", "--registry", "b", "--password-stdin", "--token-stdin"];
        assert!(Cli::try_parse_from(both).is_err(), "password and token exclude each other");
    }

    #[test]
    fn add_list_get_rm() {
        let dir = tempfile::tempdir().unwrap();
        let password = "cli-Secret-Password";
        let add = ["add", "--name", "hub", "--registry", "docker.io", "--username", "robot", "--password-stdin"];
        let (result, out) = run_cli(dir.path(), &add, &format!("{password}\n"));
        assert_eq!(result.unwrap(), 0);
        assert!(out.contains("\"hasSecret\": true") && !out.contains(password), "{out}");
        let store = ConnectionStore::open(dir.path(), None).unwrap();
        let id = store.get_by_name("hub").unwrap().id;
        assert_eq!(store.credentials(&id).unwrap().unwrap().1.expose(), password, "line end stripped");

        let (result, _) = run_cli(dir.path(), &add, password);
        assert_eq!(result.unwrap_err().code, 1, "conflict");
        let bad = ["add", "--name", "x", "--registry", "https://ghcr.io/", "--username", "u", "--token-stdin"];
        let err = run_cli(dir.path(), &bad, "t").0.unwrap_err();
        assert_eq!(err.code, 2);
        assert!(err.message.contains("--registry: write the registry as ghcr.io"), "{}", err.message);

        let (result, out) = run_cli(dir.path(), &["list"], "");
        assert_eq!(result.unwrap(), 0);
        assert!(out.contains("\"name\": \"hub\"") && !out.contains(password), "{out}");

        // update changes only what it is given; a new secret comes from stdin; activate/deactivate toggle.
        let update = ["update", "hub", "--rename", "dockerhub", "--username", "robot2", "--token-stdin"];
        let (result, out) = run_cli(dir.path(), &update, "new-Token-value\n");
        assert_eq!(result.unwrap(), 0, "{out}");
        assert!(out.contains("\"name\": \"dockerhub\"") && out.contains("docker.io") && !out.contains("new-Token"));
        assert_eq!(store.credentials(&id).unwrap().unwrap().1.expose(), "new-Token-value");
        let (_, out) = run_cli(dir.path(), &["deactivate", "dockerhub"], "");
        assert!(out.contains("\"active\": false"), "{out}");
        let (_, out) = run_cli(dir.path(), &["activate", "dockerhub"], "");
        assert!(out.contains("\"active\": true"), "{out}");
        assert_eq!(run_cli(dir.path(), &["update", "nope", "--username", "x"], "").0.unwrap_err().code, 3);
        let plain = ["update", "dockerhub", "--registry", "http://registry.lan:5000"];
        let (result, out) = run_cli(dir.path(), &plain, "");
        assert_eq!(result.unwrap(), 0);
        assert!(out.contains("\"registry\": \"http://registry.lan:5000\""), "{out}");
        assert_eq!(run_cli(dir.path(), &["rm", "dockerhub"], "").0.unwrap(), 0);
        let (result, _) = run_cli(dir.path(), &add, &format!("{password}\n"));
        assert_eq!(result.unwrap(), 0);
        assert_eq!(run_cli(dir.path(), &["get", "nope"], "").0.unwrap_err().code, 3);
        assert_eq!(run_cli(dir.path(), &["rm", "hub"], "").0.unwrap(), 0);
        assert_eq!(run_cli(dir.path(), &["rm", "hub"], "").0.unwrap_err().code, 3);
        let missing = dir.path().join("missing");
        assert_eq!(run_cli(&missing, &["list"], "").0.unwrap_err().code, 2);
    }
}
