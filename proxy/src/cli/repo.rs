//! `regbridge repo create|get|delete NAME`.

use regbridge::Result;

use super::context::{ConfigArgs, open};
use super::print_json;

/// Repository commands.
#[derive(clap::Subcommand)]
pub enum RepoCommand {
    /// Create NAME (idempotent: an existing repository is returned unchanged). Prints the repository.
    Create(RepoArgs),
    /// Print the repository NAME as JSON; exit code 3 when it does not exist.
    Get(RepoArgs),
    /// Delete NAME and everything in it.
    Delete(RepoArgs),
}

/// A repository and the configuration that routes it.
#[derive(clap::Args)]
pub struct RepoArgs {
    /// The client-visible repository name (`team/app`); the route serving it decides the provider.
    name: String,
    #[command(flatten)]
    config: ConfigArgs,
}

/// Runs a repository command.
pub async fn run(command: RepoCommand) -> Result<()> {
    match command {
        RepoCommand::Create(args) => {
            let opened = open(&args.config.load()?, &args.name).await?;
            print_json(&opened.registry.create_repository(&opened.id).await?);
        }
        RepoCommand::Get(args) => {
            let opened = open(&args.config.load()?, &args.name).await?;
            print_json(&opened.registry.get_repository(&opened.id).await?);
        }
        RepoCommand::Delete(args) => {
            let opened = open(&args.config.load()?, &args.name).await?;
            opened.registry.delete_repository(&opened.id).await?;
            eprintln!("deleted {} ({})", args.name, opened.route);
        }
    }
    Ok(())
}
