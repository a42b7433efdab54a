//! `regbridge repo create|get|delete NAME`.

use regbridge::Result;

use super::backend::Backend;
use super::context::ConfigArgs;
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
            print_json(&Backend::select(&args.config).await?.create_repository(&args.name).await?);
        }
        RepoCommand::Get(args) => {
            print_json(&Backend::select(&args.config).await?.get_repository(&args.name).await?);
        }
        RepoCommand::Delete(args) => {
            let at = Backend::select(&args.config).await?.delete_repository(&args.name).await?;
            eprintln!("deleted {} ({at})", args.name);
        }
    }
    Ok(())
}
