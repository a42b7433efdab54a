//! `regbridge gc`: mark and sweep the storage's unreferenced blobs, expired uploads and stray staging
//! files (the `[storage]` the server uses: fs or object storage); with `--cloud`, delete the expired credentials regbridge minted in the routes' cloud registries
//! instead (ACR tokens and scope maps, which count against the registry's SKU quota).

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use regbridge_providers::local::gc::GcOptions;

use super::backend::Backend;
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

/// Runs a collection and prints its report as JSON; progress on stderr when it is a terminal. With a
/// server selected (`--server`, or a login), the server runs it (`POST /admin/v1/gc`).
pub fn run(args: GcArgs) -> ExitCode {
    super::block_on(collect(args))
}

async fn collect(args: GcArgs) -> regbridge::Result<()> {
    if let Some(api) = Backend::remote(&args.config)? {
        let body = serde_json::json!({
            "dryRun": args.dry_run,
            "grace": format!("{}s", args.grace.as_secs()),
            "cloud": args.cloud,
        });
        let report: serde_json::Value = api.call(reqwest::Method::POST, "/admin/v1/gc", Some(&body)).await?;
        super::print_json(&report);
        return Ok(());
    }
    let config = args.upload_expiry.apply(args.config.load()?);
    if args.cloud {
        let reports = crate::manage::gc::cloud(&config.routes).await?;
        if reports.is_empty() {
            eprintln!("gc: no route mints cloud-side credentials (acr); nothing to clean");
        }
        super::print_json(&reports);
        return Ok(());
    }
    let terminal = std::io::stderr().is_terminal();
    let options = GcOptions {
        grace: args.grace,
        upload_expiry: config.upload_expiry,
        dry_run: args.dry_run,
        ..GcOptions::default()
    };
    let progress = |done: usize, total: usize| {
        if terminal && (done.is_multiple_of(256) || done == total) {
            eprint!("\rgc: examined {done}/{total} blobs");
            if done == total {
                eprintln!();
            }
        }
    };
    let storage = crate::manage::gc::open_configured(&config.storage, &config.data_dir, &options)?;
    let report = crate::manage::gc::local(&*storage, &options, progress).await?;
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
