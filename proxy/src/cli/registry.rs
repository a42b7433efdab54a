//! `regbridge registry add|list|get|update|activate|deactivate|validate|rm`: registry connections in the
//! data directory directly (a running server sees the changes on its next request), or through a server's
//! management API after `regbridge login` (see [`super::connections`]).
//!
//! JSON goes to stdout (never a password or token), messages to stderr. Exit codes: 0 success, 2 usage or
//! invalid input, 3 no such connection, 4 the registry refused the credentials (`validate`) or the caller
//! is not an admin (through the API), 1 anything else (conflicts included).

use std::io::{Read, Write};
use std::process::ExitCode;

use super::accounts::StoreArgs;
use super::connections::Connections;
use super::outcome::{self, Failure, Outcome, print, print_json, read_secret};
use super::output::{OutputArgs, Row, render_list};
use crate::connections::{Connection, ConnectionInput};

/// `regbridge registry`: the registry connections of a data directory or a server.
#[derive(Debug, clap::Args)]
pub struct RegistryArgs {
    #[command(flatten)]
    pub store: StoreArgs,
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
    /// List the connections (never their passwords or tokens).
    List(OutputArgs),
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
        let flag = if self.password_stdin { "--password-stdin" } else { "--token-stdin" };
        let secret = if self.password_stdin || self.token_stdin { Some(read_secret(stdin, flag)?) } else { None };
        Ok(ConnectionInput {
            username: self.username,
            password: secret.clone().filter(|_| self.password_stdin),
            token: secret.filter(|_| self.token_stdin),
            ..input
        })
    }
}

impl Row for Connection {
    fn headers() -> &'static [&'static str] {
        &["name", "registry", "username", "secret", "active", "updated"]
    }
    fn cells(&self) -> Vec<String> {
        let yes_no = |b: bool| if b { "yes" } else { "no" }.to_owned();
        vec![
            self.name.clone(),
            self.registry.clone(),
            self.username.clone().unwrap_or_default(),
            yes_no(self.has_secret),
            yes_no(self.active),
            self.updated_at.clone(),
        ]
    }
}

/// Runs `regbridge registry ...` on the connections `--data-dir`, `--config` or a login select.
pub fn run(args: RegistryArgs) -> ExitCode {
    outcome::block_on(async {
        let connections = Connections::select(&args.store)?;
        execute(args.command, &connections, &mut std::io::stdin(), &mut std::io::stdout()).await
    })
}

async fn execute(
    command: RegistryCommand,
    connections: &Connections,
    stdin: &mut dyn Read,
    stdout: &mut dyn Write,
) -> Outcome {
    match command {
        RegistryCommand::Add(add) => {
            let input = ConnectionInput {
                name: Some(add.name),
                registry: Some(add.registry),
                active: Some(!add.inactive),
                ..ConnectionInput::default()
            };
            let input = add.login.apply(input, stdin)?;
            let created = connections.create(&input).await?;
            eprintln!("added registry connection {:?} ({})", created.name, created.registry);
            warn_plain_http(&created);
            print_json(stdout, &created)
        }
        RegistryCommand::Update(update) => {
            let input =
                ConnectionInput { name: update.rename, registry: update.registry, ..ConnectionInput::default() };
            let input = update.login.apply(input, stdin)?;
            let updated = connections.update(&update.name, &input).await?;
            eprintln!("updated registry connection {:?} ({})", updated.name, updated.registry);
            warn_plain_http(&updated);
            print_json(stdout, &updated)
        }
        RegistryCommand::Activate { name } => set_active(connections, &name, true, stdout).await,
        RegistryCommand::Deactivate { name } => set_active(connections, &name, false, stdout).await,
        RegistryCommand::List(output) => print(stdout, &render_list(&connections.list().await?, output.output)),
        RegistryCommand::Get { name } => print_json(stdout, &connections.get(&name).await?),
        RegistryCommand::Validate { name } => {
            let (connection, outcome) = connections.validate(&name).await?;
            print_json(stdout, &outcome)?;
            if outcome["ok"] == true {
                return Ok(0);
            }
            let error = outcome["error"].as_str().unwrap_or("no reason given");
            eprintln!("{} refused or failed the login: {error}", connection.registry);
            Ok(if outcome["refused"] == true { 4 } else { 1 })
        }
        RegistryCommand::Rm { name } => {
            connections.delete(&name).await?;
            eprintln!("removed registry connection {name:?}");
            Ok(0)
        }
    }
}

/// Activates or deactivates the connection `name` and prints it.
async fn set_active(connections: &Connections, name: &str, active: bool, stdout: &mut dyn Write) -> Outcome {
    let input = ConnectionInput { active: Some(active), ..ConnectionInput::default() };
    let updated = connections.update(name, &input).await?;
    eprintln!("registry connection {name:?} is {}", if active { "active" } else { "inactive" });
    print_json(stdout, &updated)
}

/// Says on stderr that a connection's traffic, its credentials included, crosses the network unencrypted.
fn warn_plain_http(connection: &Connection) {
    if crate::connections::is_plain_http(&connection.registry) {
        eprintln!(
            "warning: {} is reached over plain HTTP: its credentials and images cross the network readable; use \
             it only on a network you trust",
            connection.registry
        );
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::connections::ConnectionStore;

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
        assert_eq!(args.store.data_dir.as_deref(), Some(dir));
        let mut out = Vec::new();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let result = runtime.block_on(async {
            let connections = Connections::select(&args.store)?;
            execute(args.command, &connections, &mut stdin.as_bytes(), &mut out).await
        });
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
        let (_, table) = run_cli(dir.path(), &["list", "--output", "table"], "");
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("NAME") && lines[1].starts_with("hub ") && !table.contains(password), "{table}");

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
