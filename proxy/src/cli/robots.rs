//! `regbridge robots add|list|get|rotate|rm`: robot accounts managed in the data directory directly, with
//! the same store operations as `/admin/v1/robots` (see [`super::users`] for the flags, output and exit
//! codes). A new or rotated secret is printed once, in the JSON on stdout.

use std::io::Write;
use std::process::ExitCode;

use serde_json::json;

use super::users::{Failure, StoreArgs, exit, open, print, with_secret};
use crate::accounts::store::RobotInput;
use crate::accounts::{AccountStore, Kind, Rule};

/// `regbridge robots`.
#[derive(Debug, clap::Args)]
pub struct RobotsArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: RobotsCommand,
}

/// The `regbridge robots` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum RobotsCommand {
    /// Add a robot `robot$NAME`; its generated secret is printed once.
    Add {
        /// The name, with or without `robot$`.
        name: String,
        /// A rule GLOB=ACTIONS, such as 'ci/*=pull,push' (repeatable).
        #[arg(long = "allow", value_parser = Rule::parse_flag, required = true)]
        rules: Vec<Rule>,
        /// When it stops working: a duration such as 30d or 12h, an RFC 3339 time, or `never`.
        #[arg(long)]
        expires: String,
    },
    /// List the robots as JSON (never a secret or hash).
    List,
    /// Show one robot as JSON.
    Get {
        /// The name, with or without `robot$`.
        name: String,
    },
    /// Give a robot a new secret (printed once); the old one stops working at once.
    Rotate {
        /// The name, with or without `robot$`.
        name: String,
    },
    /// Remove a robot.
    Rm {
        /// The name, with or without `robot$`.
        name: String,
    },
}

/// Runs `regbridge robots ...`.
pub fn run(args: RobotsArgs) -> ExitCode {
    exit(open(args.store).and_then(|store| execute(args.command, &store, &mut std::io::stdout())))
}

fn execute(command: RobotsCommand, store: &AccountStore, stdout: &mut dyn Write) -> Result<u8, Failure> {
    match command {
        RobotsCommand::Add { name, rules, expires } => {
            let (account, secret) = store.add_robot(&RobotInput { name, rules, expires })?;
            eprintln!("added robot {:?}; its secret is in the output below, shown only this once", account.name);
            print(stdout, &with_secret(&account, "secret", Some(&secret)))
        }
        RobotsCommand::List => print(stdout, &json!(store.list(Kind::Robot)?)),
        RobotsCommand::Get { name } => print(stdout, &json!(store.get(Kind::Robot, &name)?)),
        RobotsCommand::Rotate { name } => {
            let (account, secret) = store.rotate_robot(&name)?;
            eprintln!("rotated the secret of {:?}; the new one is in the output below", account.name);
            print(stdout, &with_secret(&account, "secret", Some(&secret)))
        }
        RobotsCommand::Rm { name } => {
            store.delete(Kind::Robot, &name)?;
            eprintln!("removed robot {name:?}");
            Ok(0)
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use serde_json::Value;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        command: RobotsCommand,
    }

    fn run_cli(store: &AccountStore, args: &[&str]) -> (Result<u8, Failure>, String) {
        let cli = Cli::try_parse_from(["robots"].into_iter().chain(args.iter().copied())).unwrap();
        let mut out = Vec::new();
        let result = execute(cli.command, store, &mut out);
        (result, String::from_utf8(out).unwrap())
    }

    #[test]
    fn add_rotate_list_rm() {
        let dir = tempfile::tempdir().unwrap();
        let store = AccountStore::open(dir.path()).unwrap();
        let (r, out) = run_cli(&store, &["add", "ci", "--allow", "ci/*=pull,push", "--expires", "30d"]);
        assert_eq!(r.unwrap(), 0);
        let shown: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(shown["name"], "robot$ci");
        let first = shown["secret"].as_str().unwrap().to_owned();
        let (_, out) = run_cli(&store, &["rotate", "robot$ci"]);
        let rotated: Value = serde_json::from_str(&out).unwrap();
        assert_ne!(rotated["secret"].as_str().unwrap(), first);
        let (_, out) = run_cli(&store, &["list"]);
        assert!(out.contains("robot$ci") && !out.contains("secret\"") && !out.contains(&first), "{out}");
        assert_eq!(
            run_cli(&store, &["add", "x", "--allow", "a/*=pull", "--expires", "yesterday"]).0.unwrap_err().code,
            2
        );
        assert!(Cli::try_parse_from(["robots", "add", "x", "--allow", "a/*=pull"]).is_err(), "expiry is required");
        assert_eq!(run_cli(&store, &["rm", "ci"]).0.unwrap(), 0);
        assert_eq!(run_cli(&store, &["get", "ci"]).0.unwrap_err().code, 3);
    }
}
