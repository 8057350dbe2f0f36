//! The `fsverity-fuse` command line: one module per subcommand. Errors become
//! exit codes here and only here: 0 success, 1 operational failure, 2 usage error.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod args;
mod digest;
mod dump;
mod enable;
mod keys;
mod locate;
mod measure;
mod mount;
mod status;
mod verify;

/// fs-verity for any filesystem: a FUSE mount that verifies every block of
/// verity files against a kernel-compatible Merkle tree.
#[derive(Parser, Debug)]
#[command(name = "fsverity-fuse", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// More log output (-v info, -vv debug, -vvv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Compute the fs-verity digest of files (like `fsverity digest`).
    Digest(digest::DigestArgs),
    /// Enable fs-verity on files of a backing directory.
    Enable(enable::EnableArgs),
    /// Present BACKING at MOUNTPOINT, verifying every read of verity files.
    Mount(mount::MountArgs),
    /// Print the fs-verity digest of verity files (like `fsverity measure`).
    Measure(measure::MeasureArgs),
    /// Generate an Ed25519 key pair (PKCS#8 / SubjectPublicKeyInfo PEM).
    Keygen(keys::KeygenArgs),
    /// Sign a file's fs-verity digest (like `fsverity sign`).
    Sign(keys::SignArgs),
    /// Show a live mount's status and counters (human, --json, --prometheus).
    Status(status::StatusArgs),
    /// Check verity files offline: data, tree, and signatures.
    Verify(verify::VerifyArgs),
    /// Dump a verity file's Merkle tree, descriptor or signature (like `fsverity dump_metadata`).
    DumpMetadata(dump::DumpArgs),
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
    init_logging(cli.verbose);
    match cli.command {
        Command::Digest(args) => digest::run(&args),
        Command::Enable(args) => enable::run(&args),
        Command::Mount(args) => mount::run(&args),
        Command::Measure(args) => measure::run(&args),
        Command::Keygen(args) => keys::keygen(&args),
        Command::Sign(args) => keys::sign(&args),
        Command::Verify(args) => verify::run(&args),
        Command::Status(args) => status::run(&args),
        Command::DumpMetadata(args) => dump::run(&args),
    }
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn,fuser=error",
        1 => "info,fuser=warn",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
