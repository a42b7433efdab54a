//! `regbridge gc`: mark and sweep the local storage's unreferenced blobs, expired uploads and stray staging
//! files; with `--cloud`, delete the expired credentials regbridge minted in the routes' cloud registries
//! instead (ACR tokens and scope maps, which count against the registry's SKU quota).

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use regbridge_providers::local::gc::{GcOptions, collect};

use super::context::{ConfigArgs, UploadExpiryArgs};

/// The flags of `gc`.
#[derive(clap::Args)]
pub struct GcArgs {
    /// Report what would be deleted, delete nothing.
    #[arg(long)]
    dry_run: bool,
    /// Clean the cloud registries of the configured routes instead of the local storage: delete the ACR
    /// tokens regbridge minted whose passwords have all expired, and their scope maps.
    #[arg(long, conflicts_with = "dry_run")]
    cloud: bool,
    /// Spare unreferenced blobs written or used more recently than this (pushes in progress): `30m`, `2h`.
    /// `0s` spares none; manifests already stored keep their blobs whatever the grace period.
    #[arg(long, default_value = "1h", value_parser = parse_grace)]
    grace: Duration,
    #[command(flatten)]
    upload_expiry: UploadExpiryArgs,
    #[command(flatten)]
    config: ConfigArgs,
}

/// Parses `--grace`: any duration, zero included.
fn parse_grace(text: &str) -> Result<Duration, String> {
    super::parse_duration(text, "grace period")
}

/// Runs a collection and prints its report as JSON; progress on stderr when it is a terminal.
pub fn run(args: GcArgs) -> ExitCode {
    let config = match args.config.load() {
        Ok(c) => args.upload_expiry.apply(c),
        Err(e) => return super::fail(&e),
    };
    if args.cloud {
        return super::block_on(cloud(config.routes));
    }
    let root = config.data_dir.join("storage");
    if !root.is_dir() {
        let err = regbridge::Error::bad_input(format!(
            "no local storage at {}; give the server's --data-dir or --config",
            root.display()
        ));
        return super::fail(&err);
    }
    let terminal = std::io::stderr().is_terminal();
    let options = GcOptions { grace: args.grace, upload_expiry: config.upload_expiry, dry_run: args.dry_run };
    let progress = |done: usize, total: usize| {
        if terminal && (done.is_multiple_of(256) || done == total) {
            eprint!("\rgc: examined {done}/{total} blobs");
            if done == total {
                eprintln!();
            }
        }
    };
    match collect(&root, &options, progress) {
        Ok(report) => {
            let verb = if report.dry_run { "would delete" } else { "deleted" };
            eprintln!(
                "gc: {verb} {} blobs ({} bytes), {} expired uploads and {} staging files ({} bytes in all); \
                 {} referenced, {} spared by the grace period",
                report.deleted.len(),
                report.deleted_bytes,
                report.uploads_removed,
                report.temp_files_removed,
                report.reclaimed_bytes,
                report.referenced,
                report.spared
            );
            super::print_json(&report);
            ExitCode::SUCCESS
        }
        Err(e) => super::fail(&e),
    }
}

/// `gc --cloud`: the cleanup of every route whose provider mints cloud-side credentials (ACR), printed as
/// one JSON array of `{route, provider, report}`. ECR and GAR mint nothing that stays behind.
async fn cloud(routes: Vec<crate::config_file::RouteConfig>) -> regbridge::Result<()> {
    let mut reports = Vec::new();
    for route in routes.iter().filter(|r| r.provider == "acr") {
        #[cfg(feature = "acr")]
        {
            let report = crate::cloud::acr::cleanup_expired_tokens(route).await?;
            eprintln!(
                "gc: route {:?}: deleted {} expired tokens and {} scope maps; kept {} tokens",
                route.prefix,
                report.tokens_deleted.len(),
                report.scope_maps_deleted.len(),
                report.tokens_kept
            );
            reports.push(serde_json::json!({"route": route.prefix, "provider": "acr", "report": report}));
        }
        #[cfg(not(feature = "acr"))]
        return Err(regbridge::Error::bad_input(format!(
            "route {:?} is an acr route, and this binary was built without ACR",
            route.prefix
        )));
    }
    if reports.is_empty() {
        eprintln!("gc: no route mints cloud-side credentials (acr); nothing to clean");
    }
    super::print_json(&reports);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grace_periods() {
        assert_eq!(parse_grace("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_grace("0"), Ok(Duration::ZERO));
        assert_eq!(parse_grace("30m"), Ok(Duration::from_secs(1800)));
        let err = parse_grace("soon").unwrap_err();
        assert!(err.contains("grace period") && !err.contains("TTL"), "{err}");
    }
}
