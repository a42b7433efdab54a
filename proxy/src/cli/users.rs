//! `regbridge users add|list|get|update|rm`: users managed in the data directory directly (a running server
//! sees the changes on its next request). Also what `regbridge robots` shares with it: the data directory
//! flags, the exit codes and the output.
//!
//! JSON goes to stdout (a generated password appears there once), messages to stderr. Exit codes: 0
//! success, 2 usage or invalid input, 3 no such account, 1 anything else (conflicts included). Users of
//! `users.json` or the TOML `[users]` table are not managed here (edit that file).

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use regbridge::Secret;
use serde_json::{Value, json};

use crate::accounts::store::{UserInput, UserPatch};
use crate::accounts::{Account, AccountError, AccountStore, Kind, Role, Rule};

/// Where the accounts are: the data directory.
#[derive(Debug, Clone, clap::Args)]
pub struct StoreArgs {
    /// TOML configuration file: its data_dir is used.
    #[arg(long, short, env = "REGBRIDGE_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// The server's data directory [default: the configuration's, else regbridge-data].
    #[arg(long, env = "REGBRIDGE_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
}

/// `regbridge users`.
#[derive(Debug, clap::Args)]
pub struct UsersArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: UsersCommand,
}

/// The `regbridge users` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum UsersCommand {
    /// Add a user; without --password-stdin a password is generated and printed once.
    Add {
        /// The user name.
        name: String,
        /// `admin` (everything) or `member` (what --allow says).
        #[arg(long, default_value = "member", value_parser = Role::parse)]
        role: Role,
        /// A rule GLOB=ACTIONS, such as 'team/*=pull,push' (repeatable).
        #[arg(long = "allow", value_parser = Rule::parse_flag)]
        rules: Vec<Rule>,
        /// Read the password from standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List the users as JSON (never a password or hash).
    List,
    /// Show one user as JSON.
    Get {
        /// The user name.
        name: String,
    },
    /// Change a user: what is given changes, the rest stays.
    Update {
        /// The user name.
        name: String,
        /// A new role.
        #[arg(long, value_parser = Role::parse)]
        role: Option<Role>,
        /// New rules, replacing the old ones (repeatable).
        #[arg(long = "allow", value_parser = Rule::parse_flag)]
        rules: Vec<Rule>,
        /// Remove every rule.
        #[arg(long, conflicts_with = "rules")]
        no_rules: bool,
        /// Read a new password from standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Remove a user.
    Rm {
        /// The user name.
        name: String,
    },
}

/// A failed command: its message and exit code.
#[derive(Debug)]
pub(super) struct Failure {
    pub(super) code: u8,
    pub(super) message: String,
}

impl From<AccountError> for Failure {
    fn from(e: AccountError) -> Self {
        let code = match &e {
            AccountError::Invalid(_) => 2,
            AccountError::NotFound(_) => 3,
            AccountError::Conflict(_) | AccountError::Other(_) => 1,
        };
        let message = match &e {
            AccountError::Invalid(fields) => {
                fields.iter().map(|(f, m)| format!("{f}: {m}")).collect::<Vec<_>>().join("\n       ")
            }
            _ => e.to_string(),
        };
        Failure { code, message }
    }
}

impl From<regbridge::Error> for Failure {
    fn from(e: regbridge::Error) -> Self {
        AccountError::Other(e).into()
    }
}

/// Opens the accounts of the data directory `args` names (which must exist: only `serve` creates one).
pub(super) fn open(args: StoreArgs) -> Result<AccountStore, Failure> {
    let config = crate::cli::ConfigArgs::of_data_dir(args.config, args.data_dir);
    let data_dir = config.load()?.data_dir;
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
    Ok(AccountStore::open(&data_dir)?)
}

/// The exit code of a command's result, its failure reported on stderr.
pub(super) fn exit(result: Result<u8, Failure>) -> ExitCode {
    match result {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            super::report(&failure.message, failure.code);
            ExitCode::from(failure.code)
        }
    }
}

/// Writes `value` as pretty JSON and a line end; exit code 0.
pub(super) fn print(stdout: &mut dyn Write, value: &Value) -> Result<u8, Failure> {
    let text = serde_json::to_string_pretty(value).expect("JSON serialises");
    writeln!(stdout, "{text}").map_err(|e| regbridge::Error::internal("write to standard output", e))?;
    Ok(0)
}

/// An account with a secret shown once under `field`.
pub(super) fn with_secret(account: &Account, field: &str, secret: Option<&Secret>) -> Value {
    let mut value = json!(account);
    if let (Some(secret), Some(map)) = (secret, value.as_object_mut()) {
        map.insert(field.to_owned(), Value::String(secret.expose().to_owned()));
    }
    value
}

fn read_password(stdin: &mut dyn Read) -> Result<Secret, Failure> {
    let mut text = String::new();
    stdin.read_to_string(&mut text).map_err(|e| regbridge::Error::internal("read standard input", e))?;
    let password = text.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        return Err(Failure {
            code: 2,
            message: "--password-stdin: standard input is empty; pipe the password".into(),
        });
    }
    Ok(Secret::new(password))
}

/// Runs `regbridge users ...`.
pub fn run(args: UsersArgs) -> ExitCode {
    exit(
        open(args.store).and_then(|store| execute(args.command, &store, &mut std::io::stdin(), &mut std::io::stdout())),
    )
}

fn execute(
    command: UsersCommand,
    store: &AccountStore,
    stdin: &mut dyn Read,
    stdout: &mut dyn Write,
) -> Result<u8, Failure> {
    match command {
        UsersCommand::Add { name, role, rules, password_stdin } => {
            let password = password_stdin.then(|| read_password(stdin)).transpose()?;
            let (account, generated) = store.create_user(&UserInput { name, role: Some(role), rules, password })?;
            eprintln!("added user {:?} ({})", account.name, account.role.as_str());
            if generated.is_some() {
                eprintln!("its generated password is in the output below, shown only this once");
            }
            print(stdout, &with_secret(&account, "password", generated.as_ref()))
        }
        UsersCommand::List => print(stdout, &json!(store.list(Kind::User)?)),
        UsersCommand::Get { name } => print(stdout, &json!(store.get(Kind::User, &name)?)),
        UsersCommand::Update { name, role, rules, no_rules, password_stdin } => {
            let rules = match (rules.is_empty(), no_rules) {
                (_, true) => Some(Vec::new()),
                (true, false) => None,
                (false, false) => Some(rules),
            };
            let password = password_stdin.then(|| read_password(stdin)).transpose()?;
            let account = store.update_user(&name, &UserPatch { role, rules, password })?;
            eprintln!("updated user {:?}", account.name);
            print(stdout, &json!(account))
        }
        UsersCommand::Rm { name } => {
            store.delete(Kind::User, &name)?;
            eprintln!("removed user {name:?}");
            Ok(0)
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        command: UsersCommand,
    }

    fn run_cli(store: &AccountStore, args: &[&str], stdin: &str) -> (Result<u8, Failure>, String) {
        let cli = Cli::try_parse_from(["users"].into_iter().chain(args.iter().copied())).unwrap();
        let mut out = Vec::new();
        let result = execute(cli.command, store, &mut stdin.as_bytes(), &mut out);
        (result, String::from_utf8(out).unwrap())
    }

    #[test]
    fn add_list_update_rm() {
        let dir = tempfile::tempdir().unwrap();
        let store = AccountStore::open(dir.path()).unwrap();
        let (r, out) = run_cli(&store, &["add", "alice", "--allow", "team/*=pull,push"], "");
        assert_eq!(r.unwrap(), 0);
        let shown: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(shown["role"], "member");
        assert_eq!(shown["password"].as_str().unwrap().len(), 24);
        let (r, out) = run_cli(&store, &["add", "bob", "--role", "admin", "--password-stdin"], "bob-password-1\n");
        assert_eq!(r.unwrap(), 0);
        assert!(!out.contains("password\""), "{out}");
        let (_, out) = run_cli(&store, &["list"], "");
        assert!(out.contains("alice") && out.contains("bob") && !out.contains("argon2"), "{out}");
        let (r, out) = run_cli(&store, &["update", "alice", "--no-rules", "--role", "admin"], "");
        assert_eq!(r.unwrap(), 0);
        assert!(out.contains("\"admin\""), "{out}");
        assert_eq!(run_cli(&store, &["add", "alice"], "").0.unwrap_err().code, 1);
        assert_eq!(run_cli(&store, &["add", "Bad Name"], "").0.unwrap_err().code, 2);
        assert_eq!(run_cli(&store, &["rm", "alice"], "").0.unwrap(), 0);
        assert_eq!(run_cli(&store, &["get", "alice"], "").0.unwrap_err().code, 3);
        assert!(Cli::try_parse_from(["users", "add", "x", "--allow", "team/*=fly"]).is_err());
        assert!(Cli::try_parse_from(["users", "add", "x", "--role", "root"]).is_err());
    }
}
