//! `regbridge completions SHELL` and `regbridge man`: shell completions and manual pages generated from
//! the command line's clap definition, so they always match the commands this binary has.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::CommandFactory;
use regbridge::Error;

/// The flags of `completions`.
#[derive(clap::Args)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell. For example
    /// `regbridge completions bash > /etc/bash_completion.d/regbridge`, or
    /// `regbridge completions fish > ~/.config/fish/completions/regbridge.fish`.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

/// The flags of `man`.
#[derive(clap::Args)]
pub struct ManArgs {
    /// Write one page per command and subcommand into this directory (`regbridge.1`,
    /// `regbridge-repo-create.1`, ...) instead of the main page on stdout.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Prints the completion script for the shell.
pub fn completions(args: CompletionsArgs) -> ExitCode {
    let mut command = super::Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "regbridge", &mut script);
    outln!("{}", String::from_utf8_lossy(&script).trim_end());
    ExitCode::SUCCESS
}

/// Prints the main manual page, or writes every page into `--out`.
pub fn man(args: ManArgs) -> ExitCode {
    let command = super::Cli::command();
    match args.out {
        Some(dir) => match write_pages(command, &dir) {
            Ok(count) => {
                eprintln!("regbridge: wrote {count} manual pages in {}", dir.display());
                ExitCode::SUCCESS
            }
            Err(err) => super::fail(&err),
        },
        None => {
            let mut page = Vec::new();
            if let Err(e) = clap_mangen::Man::new(command).render(&mut page) {
                return super::fail(&Error::internal("render the manual page", e));
            }
            outln!("{}", String::from_utf8_lossy(&page).trim_end());
            ExitCode::SUCCESS
        }
    }
}

/// Writes the pages of `command` and its subcommands into `dir` (created when missing); answers how many.
fn write_pages(command: clap::Command, dir: &std::path::Path) -> Result<usize, Error> {
    std::fs::create_dir_all(dir).map_err(|e| Error::internal(format!("create {}", dir.display()), e))?;
    clap_mangen::generate_to(command, dir)
        .map_err(|e| Error::internal(format!("write the manual pages in {}", dir.display()), e))?;
    let pages = std::fs::read_dir(dir)
        .map_err(|e| Error::internal(format!("list {}", dir.display()), e))?
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.file_name().to_string_lossy().ends_with(".1"))
        .count();
    Ok(pages)
}
