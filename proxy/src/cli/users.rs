//! `regbridge users add|list|get|update|rm`: users in the data directory directly (a running server sees
//! the changes on its next request), or through a server's management API after `regbridge login` (see
//! [`super::accounts`]).
//!
//! JSON goes to stdout (a generated password appears there once, never in a listing), messages to stderr.
//! Exit codes: 0 success, 2 usage or invalid input, 3 no such account, 4 not allowed (a member through
//! the API), 1 anything else (conflicts included). Users of `users.json` or the TOML `[users]` table are
//! listed (`"configured": true`) but not changed here, both ways (exit 1: edit that file).

use std::io::{Read, Write};
use std::process::ExitCode;

use serde::Serialize;
use serde_json::Value;

use super::accounts::{Accounts, StoreArgs};
use super::outcome::{self, Outcome, print, print_json, read_secret};
use super::output::{OutputArgs, Row, render_list};
use crate::accounts::store::{UserInput, UserPatch};
use crate::accounts::{Kind, Role, Rule};

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
    /// List the users (never a password or hash).
    List(OutputArgs),
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

/// An account as a listing shows it (the API's JSON object), one table row.
#[derive(Serialize)]
#[serde(transparent)]
pub(super) struct Listed(pub(super) Value);

impl Row for Listed {
    fn headers() -> &'static [&'static str] {
        &["name", "role", "rules", "expires", "updated"]
    }
    fn cells(&self) -> Vec<String> {
        let text = |field: &str| self.0[field].as_str().unwrap_or_default().to_owned();
        let rules = self.0["rules"].as_array().map(|rules| {
            let each = rules.iter().map(|r| {
                let actions: Vec<&str> =
                    r["actions"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
                format!("{}={}", r["repositories"].as_str().unwrap_or_default(), actions.join(","))
            });
            each.collect::<Vec<_>>().join(" ")
        });
        let updated = if self.0["configured"] == true { "(configured)".to_owned() } else { text("updatedAt") };
        vec![text("name"), text("role"), rules.unwrap_or_default(), text("expiresAt"), updated]
    }
}

/// Prints `accounts` in the format asked for.
pub(super) fn print_accounts(stdout: &mut dyn Write, accounts: Vec<Value>, output: OutputArgs) -> Outcome {
    let listed: Vec<Listed> = accounts.into_iter().map(Listed).collect();
    print(stdout, &render_list(&listed, output.output))
}

/// Runs `regbridge users ...`.
pub fn run(args: UsersArgs) -> ExitCode {
    outcome::block_on(async {
        let accounts = Accounts::select(&args.store)?;
        execute(args.command, &accounts, &mut std::io::stdin(), &mut std::io::stdout()).await
    })
}

async fn execute(command: UsersCommand, accounts: &Accounts, stdin: &mut dyn Read, stdout: &mut dyn Write) -> Outcome {
    match command {
        UsersCommand::Add { name, role, rules, password_stdin } => {
            let password = password_stdin.then(|| read_secret(stdin, "--password-stdin")).transpose()?;
            let account = accounts.create_user(UserInput { name, role: Some(role), rules, password }).await?;
            eprintln!("added user {} ({})", account["name"], account["role"].as_str().unwrap_or_default());
            if account["password"].is_string() {
                eprintln!("its generated password is in the output below, shown only this once");
            }
            print_json(stdout, &account)
        }
        UsersCommand::List(output) => print_accounts(stdout, accounts.list(Kind::User).await?, output),
        UsersCommand::Get { name } => print_json(stdout, &accounts.get(Kind::User, &name).await?),
        UsersCommand::Update { name, role, rules, no_rules, password_stdin } => {
            let rules = match (rules.is_empty(), no_rules) {
                (_, true) => Some(Vec::new()),
                (true, false) => None,
                (false, false) => Some(rules),
            };
            let password = password_stdin.then(|| read_secret(stdin, "--password-stdin")).transpose()?;
            let account = accounts.update_user(&name, UserPatch { role, rules, password }).await?;
            eprintln!("updated user {}", account["name"]);
            print_json(stdout, &account)
        }
        UsersCommand::Rm { name } => {
            accounts.delete(Kind::User, &name).await?;
            eprintln!("removed user {name:?}");
            Ok(0)
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::accounts::AccountStore;
    use crate::cli::outcome::Failure;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        command: UsersCommand,
    }

    fn run_cli(store: &Accounts, args: &[&str], stdin: &str) -> (Result<u8, Failure>, String) {
        let cli = Cli::try_parse_from(["users"].into_iter().chain(args.iter().copied())).unwrap();
        let mut out = Vec::new();
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let result = runtime.block_on(execute(cli.command, store, &mut stdin.as_bytes(), &mut out));
        (result, String::from_utf8(out).unwrap())
    }

    #[test]
    fn add_list_update_rm() {
        let dir = tempfile::tempdir().unwrap();
        let store = Accounts::Local { store: AccountStore::open(dir.path()).unwrap(), configured: vec!["root".into()] };
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
        assert!(out.contains("\"configured\": true"), "the configured user is listed: {out}");
        assert!(run_cli(&store, &["get", "root"], "").1.contains("\"configured\": true"));
        assert_eq!(
            run_cli(&store, &["rm", "root"], "").0.unwrap_err().code,
            1,
            "a configured user is not removed here"
        );
        assert_eq!(run_cli(&store, &["add", "root"], "").0.unwrap_err().code, 1);
        let (_, table) = run_cli(&store, &["list", "--output", "table"], "");
        assert!(table.starts_with("NAME") && table.contains("team/*=pull,push"), "{table}");
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
