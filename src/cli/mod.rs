//! The `fsverity-fuse` command line: one module per subcommand. Errors become
//! exit codes here and only here: 0 success, 1 operational failure, 2 usage error.

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

mod args;
mod completions;
mod digest;
mod dump;
mod enable;
mod helper;
mod keys;
mod locate;
mod logging;
mod man;
mod measure;
mod mkimage;
mod mount;
mod progress;
mod rpm;
mod status;
mod verify;
mod version;

/// fs-verity for any filesystem: a FUSE mount that verifies every block of
/// verity files against a kernel-compatible Merkle tree.
#[derive(Parser, Debug)]
#[command(name = "fsverity-fuse", version = version::SHORT, about, long_about = None, propagate_version = true)]
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
    /// Enable fs-verity on an RPM package's installed files with its verity
    /// signatures (rpmsign --signverity).
    EnableRpm(rpm::EnableRpmArgs),
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
    /// Write a composefs image of a directory and fill its object store.
    Mkimage(mkimage::MkimageArgs),
    /// Print a shell completion script (bash, zsh, fish, ...).
    Completions(completions::CompletionsArgs),
    /// Write the manual pages (troff).
    #[command(hide = true)]
    Man(man::ManArgs),
}

/// The whole command-line definition: the one source of parsing, `--help`,
/// `--version`, the manual pages and the shell completions.
pub fn command() -> clap::Command {
    Cli::command().long_version(version::long())
}

/// Parses the process's arguments with [`command`]; exits like clap (status 2
/// on a usage error, 0 after `--help` or `--version`).
fn parse() -> Cli {
    let matches = command().get_matches();
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
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
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let subcommands: Vec<String> = Cli::command()
        .get_subcommands()
        .map(|c| c.get_name().to_owned())
        .chain(["help".to_owned()])
        .collect();
    let result = match helper::detect(&argv, &subcommands) {
        Some((args, style)) => run_helper(&args, style),
        None => run(parse()),
    };
    match result {
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

/// The mount(8) helper form.
fn run_helper(args: &[std::ffi::OsString], style: helper::Style) -> anyhow::Result<bool> {
    let h = helper::parse(args, style)?;
    if let Some(changes) = h.remount {
        init_logging(h.verbose);
        if h.fake {
            return Ok(true);
        }
        return mount::remount(&h.mount.mountpoint, changes);
    }
    if h.fake {
        // `mount -f`: everything is checked, nothing is mounted.
        init_logging(h.verbose);
        return mount::check(&h.mount);
    }
    if h.foreground {
        init_logging(h.verbose);
        mount::run(&h.mount)
    } else {
        // Logging starts in the daemon, after the fork.
        mount::run_daemon(&h.mount, h.verbose)
    }
}

/// Runs a parsed command line; `Ok(false)` when some item failed (already reported).
pub fn run(cli: Cli) -> anyhow::Result<bool> {
    init_logging(cli.verbose);
    if !matches!(cli.command, Command::Mount(_)) {
        // `fsverity-fuse status | head`: a closed pipe ends the command
        // quietly, as it does other tools, instead of a panic in println!.
        // (The daemon keeps ignoring SIGPIPE: a closed log pipe must not kill it.)
        crate::sys::default_sigpipe();
    }
    match cli.command {
        Command::Digest(args) => digest::run(&args),
        Command::Enable(args) => enable::run(&args),
        Command::EnableRpm(args) => rpm::run(&args),
        Command::Mount(args) => mount::run(&args),
        Command::Measure(args) => measure::run(&args),
        Command::Keygen(args) => keys::keygen(&args),
        Command::Sign(args) => keys::sign(&args),
        Command::Verify(args) => verify::run(&args),
        Command::Status(args) => status::run(&args),
        Command::DumpMetadata(args) => dump::run(&args),
        Command::Mkimage(args) => mkimage::run(&args),
        Command::Completions(args) => completions::run(&args),
        Command::Man(args) => man::run(&args),
    }
}

/// Logging of a daemonized mount: to the journal when there is one (structured
/// fields such as PATH, OFFSET, LEVEL, EXPECTED, ACTUAL), else to standard error
/// until it is detached.
pub(crate) fn init_daemon_logging(verbose: u8) {
    use tracing_subscriber::prelude::*;
    if std::path::Path::new("/run/systemd/journal/socket").exists()
        && let Ok(journald) = tracing_journald::layer()
    {
        logging::install(
            tracing_subscriber::registry()
                .with(logging::filter(verbose))
                .with(journald.with_syslog_identifier("fsverity-fuse".into())),
        );
        return;
    }
    init_logging(verbose);
}

fn init_logging(verbose: u8) {
    logging::install(
        tracing_subscriber::fmt()
            .with_env_filter(logging::filter(verbose))
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .finish(),
    );
}
