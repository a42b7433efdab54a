//! `regbridge repo create|get|delete NAME` and `regbridge repo list`.

use regbridge::Result;

use super::backend::Backend;
use super::context::ConfigArgs;
use super::output::{OutputArgs, Row, print_list};
use super::print_json;
use crate::manage::list::ListedRepository;

/// Repository commands.
#[derive(clap::Subcommand)]
pub enum RepoCommand {
    /// Create NAME (idempotent: an existing repository is returned unchanged). Prints the repository.
    Create(RepoArgs),
    /// Print the repository NAME as JSON; exit code 3 when it does not exist.
    Get(RepoArgs),
    /// Delete NAME and everything in it.
    Delete(RepoArgs),
    /// List the repositories of every route, by client-visible name (the route's prefix mapped back):
    /// route by route, longest prefix first, each in its provider's order.
    List(ListArgs),
}

/// The flags of `repo list`.
#[derive(clap::Args)]
pub struct ListArgs {
    /// Only names starting with this client-visible prefix (`team/`).
    #[arg(long)]
    prefix: Option<String>,
    /// Print at most this many repositories.
    #[arg(long)]
    limit: Option<u32>,
    #[command(flatten)]
    output: OutputArgs,
    #[command(flatten)]
    config: ConfigArgs,
}

impl Row for ListedRepository {
    fn headers() -> &'static [&'static str] {
        &["name", "uri", "created", "route"]
    }
    fn cells(&self) -> Vec<String> {
        let created = self.created_at.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)).unwrap_or_default();
        vec![self.name.clone(), self.uri.clone(), created, self.route.clone()]
    }
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
        RepoCommand::List(args) => {
            let backend = Backend::select(&args.config).await?;
            let listed = backend.list_repositories(args.prefix.as_deref(), args.limit).await?;
            print_list(&listed, args.output.output);
        }
    }
    Ok(())
}
