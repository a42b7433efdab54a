//! `regbridge robots add|list|get|rotate|rm`: robot accounts in the data directory directly, with the same
//! store operations as `/admin/v1/robots`, or through that API after `regbridge login` (see
//! [`super::users`] for the flags, output and exit codes). A new or rotated secret is printed once, in the
//! JSON on stdout; never in a listing.

use std::io::Write;
use std::process::ExitCode;

use super::accounts::{Accounts, StoreArgs};
use super::outcome::{self, Outcome, print_json};
use super::output::OutputArgs;
use super::users::print_accounts;
use crate::accounts::store::RobotInput;
use crate::accounts::{Kind, Rule};

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
    /// List the robots (never a secret or hash).
    List(OutputArgs),
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
    outcome::block_on(async {
        let accounts = Accounts::select(&args.store)?;
        execute(args.command, &accounts, &mut std::io::stdout()).await
    })
}

async fn execute(command: RobotsCommand, accounts: &Accounts, stdout: &mut dyn Write) -> Outcome {
    match command {
        RobotsCommand::Add { name, rules, expires } => {
            let account = accounts.add_robot(RobotInput { name, rules, expires }).await?;
            eprintln!("added robot {}; its secret is in the output below, shown only this once", account["name"]);
            print_json(stdout, &account)
        }
        RobotsCommand::List(output) => print_accounts(stdout, accounts.list(Kind::Robot).await?, output),
        RobotsCommand::Get { name } => print_json(stdout, &accounts.get(Kind::Robot, &name).await?),
        RobotsCommand::Rotate { name } => {
            let account = accounts.rotate_robot(&name).await?;
            eprintln!("rotated the secret of {}; the new one is in the output below", account["name"]);
            print_json(stdout, &account)
        }
        RobotsCommand::Rm { name } => {
            accounts.delete(Kind::Robot, &name).await?;
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
    use crate::accounts::AccountStore;
    use crate::cli::outcome::Failure;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        command: RobotsCommand,
    }

    fn run_cli(store: &Accounts, args: &[&str]) -> (Result<u8, Failure>, String) {
        let cli = Cli::try_parse_from(["robots"].into_iter().chain(args.iter().copied())).unwrap();
        let mut out = Vec::new();
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let result = runtime.block_on(execute(cli.command, store, &mut out));
        (result, String::from_utf8(out).unwrap())
    }

    #[test]
    fn add_rotate_list_rm() {
        let dir = tempfile::tempdir().unwrap();
        let store = Accounts::Local { store: AccountStore::open(dir.path()).unwrap(), configured: vec!["root".into()] };
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
        let (_, yaml) = run_cli(&store, &["list", "-o", "yaml"]);
        assert!(yaml.starts_with("- ") && yaml.contains("  name: robot$ci\n") && !yaml.contains("secret:"), "{yaml}");
        assert_eq!(
            run_cli(&store, &["add", "x", "--allow", "a/*=pull", "--expires", "yesterday"]).0.unwrap_err().code,
            2
        );
        assert!(Cli::try_parse_from(["robots", "add", "x", "--allow", "a/*=pull"]).is_err(), "expiry is required");
        assert_eq!(run_cli(&store, &["rm", "ci"]).0.unwrap(), 0);
        assert_eq!(run_cli(&store, &["get", "ci"]).0.unwrap_err().code, 3);
    }
}
