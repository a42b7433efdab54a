//! `regbridge inspect NAME[:TAG|@DIGEST]`: the descriptor of a manifest on any route and, for an index,
//! its platforms (what Docker's `DistributionInspect` holds).

use regbridge::Result;

use super::backend::Backend;
use super::context::ConfigArgs;
use super::output::{OutputArgs, Row, render_one};
use crate::manage::inspect::Inspection;

/// The arguments of `inspect`.
#[derive(clap::Args)]
pub struct InspectArgs {
    /// NAME[:TAG|@DIGEST]: the client-visible repository name (`team/app`, no registry host) and a tag
    /// (`latest` when neither is given) or a digest.
    reference: String,
    #[command(flatten)]
    output: OutputArgs,
    #[command(flatten)]
    config: ConfigArgs,
}

impl Row for Inspection {
    fn headers() -> &'static [&'static str] {
        &["name", "reference", "media type", "digest", "size", "platforms"]
    }
    fn cells(&self) -> Vec<String> {
        let platforms: Vec<String> = self.platforms.iter().map(ToString::to_string).collect();
        vec![
            self.name.clone(),
            self.reference.clone(),
            self.descriptor.media_type.clone(),
            self.descriptor.digest.clone(),
            self.descriptor.size.to_string(),
            platforms.join(","),
        ]
    }
}

/// Runs `inspect`: JSON (the default), a one-row table or YAML.
pub async fn run(args: InspectArgs) -> Result<()> {
    let inspection = Backend::select(&args.config).await?.inspect(&args.reference).await?;
    outln!("{}", render_one(&inspection, args.output.output).trim_end());
    Ok(())
}
