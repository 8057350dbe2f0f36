//! `fsverity-fuse digest`: a drop-in for `fsverity digest`.

use std::fs::File;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;

use super::args::TreeArgs;
use crate::format::{Descriptor, formatted_digest};
use crate::merkle::{BuildError, BuildOptions, NullSink, TreeSink, VecSink, build_tree};

/// Compute the fs-verity digest of files, as `fsverity digest` does.
#[derive(Args, Debug)]
pub(crate) struct DigestArgs {
    /// Files to digest.
    #[arg(required = true, value_name = "FILE")]
    pub(crate) files: Vec<PathBuf>,
    #[command(flatten)]
    pub(crate) tree: TreeArgs,
    /// Print only the hex digest, without algorithm prefix or file name.
    #[arg(long)]
    pub(crate) compact: bool,
    /// Print the formatted digest ("FSVerity" + algorithm + size + digest) that
    /// signatures sign, in hex.
    #[arg(long = "for-builtin-sig")]
    pub(crate) for_builtin_sig: bool,
    /// Write the Merkle tree, as the kernel returns it, to FILE (one input file only).
    #[arg(long = "out-merkle-tree", value_name = "FILE")]
    pub(crate) out_merkle_tree: Option<PathBuf>,
    /// Write the 256-byte fs-verity descriptor to FILE (one input file only).
    #[arg(long = "out-descriptor", value_name = "FILE")]
    pub(crate) out_descriptor: Option<PathBuf>,
    /// Hashing threads (0 = every core).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub(crate) threads: usize,
}

/// Runs the subcommand. Returns false if any file failed.
pub(crate) fn run(args: &DigestArgs) -> Result<bool> {
    if args.files.len() > 1 && (args.out_merkle_tree.is_some() || args.out_descriptor.is_some()) {
        return Err(super::UsageError(
            "--out-merkle-tree and --out-descriptor take exactly one input FILE".into(),
        )
        .into());
    }
    let mut ok = true;
    let stdout = std::io::stdout();
    for file in &args.files {
        match digest_one(args, file) {
            Ok(line) => {
                let mut out = stdout.lock();
                out.write_all(&line)
                    .and_then(|()| out.write_all(b"\n"))
                    .context("writing to standard output")?;
            }
            Err(e) => {
                super::report(&e);
                ok = false;
            }
        }
    }
    Ok(ok)
}

fn digest_one(args: &DigestArgs, path: &Path) -> Result<Vec<u8>> {
    let file =
        File::open(path).with_context(|| format!("can't open '{}' for reading", path.display()))?;
    let meta = file
        .metadata()
        .with_context(|| format!("can't stat '{}'", path.display()))?;
    if meta.is_dir() {
        bail!("can't digest '{}': Is a directory", path.display());
    }
    let params = args.tree.params();
    let options = BuildOptions {
        threads: args.threads,
    };
    let descriptor = match &args.out_merkle_tree {
        None => build(&file, &params, &mut NullSink, options, path)?,
        Some(out) => {
            let mut tree =
                File::create(out).with_context(|| format!("can't create '{}'", out.display()))?;
            if tree.metadata().map(|m| m.is_file()).unwrap_or(false) {
                build(&file, &params, &mut tree, options, path)?
            } else {
                let mut sink = VecSink::default();
                let d = build(&file, &params, &mut sink, options, path)?;
                tree.write_all(&sink.0)
                    .with_context(|| format!("writing '{}'", out.display()))?;
                d
            }
        }
    };
    if let Some(out) = &args.out_descriptor {
        std::fs::write(out, descriptor.encode())
            .with_context(|| format!("writing '{}'", out.display()))?;
    }
    let digest = descriptor.digest();
    let alg = descriptor.algorithm();
    let hex = if args.for_builtin_sig {
        hex::encode(formatted_digest(alg, &digest))
    } else {
        digest.to_hex()
    };
    // The file name is printed as the bytes it is, like fsverity does.
    let mut line = match (args.compact, args.for_builtin_sig) {
        (true, _) => return Ok(hex.into_bytes()),
        (false, true) => format!("{hex} ").into_bytes(),
        (false, false) => format!("{alg}:{hex} ").into_bytes(),
    };
    line.extend_from_slice(path.as_os_str().as_bytes());
    Ok(line)
}

fn build(
    file: &File, params: &crate::format::TreeParams, sink: &mut dyn TreeSink,
    options: BuildOptions, path: &Path,
) -> Result<Descriptor> {
    build_tree(file, params, sink, options).map_err(|e| {
        // fsverity-utils' wording for a file it cannot read; a size no tree
        // can cover is not a read error.
        let what = match e {
            BuildError::Format(_) => "can't compute the digest of",
            _ => "error reading",
        };
        anyhow::Error::new(e).context(format!("{what} '{}'", path.display()))
    })
}
