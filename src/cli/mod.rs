//! The `fsverity-fuse` command line: one module per subcommand. Errors become
//! exit codes here and only here: 0 success, 1 operational failure, 2 usage error.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod args;
mod digest;

/// fs-verity for any filesystem: a FUSE mount that verifies every block of
/// verity files against a kernel-compatible Merkle tree.
#[derive(Parser, Debug)]
#[command(name = "fsverity-fuse", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Compute the fs-verity digest of files (like `fsverity digest`).
    Digest(digest::DigestArgs),
}

/// A mistake in how the command was invoked (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Prints an error with its full cause chain to standard error.
pub(crate) fn report(e: &anyhow::Error) {
    eprintln!("fsverity-fuse: error: {e:#}");
}

/// Parses the process arguments and runs the command.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            report(&e);
            if e.is::<UsageError>() {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

/// Runs a parsed command line; `Ok(false)` when some item failed (already reported).
pub fn run(cli: Cli) -> anyhow::Result<bool> {
    match cli.command {
        Command::Digest(args) => digest::run(&args),
    }
}
