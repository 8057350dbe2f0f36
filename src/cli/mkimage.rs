//! `fsverity-fuse mkimage`: writes a composefs image of a directory tree and
//! fills the object store with its files' contents.

use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;

use crate::format::TreeParams;
use crate::image::scan::{self, ObjectStore, ScanStats};
use crate::merkle::{BuildOptions, NullSink, build_tree};

/// Write a composefs image of SRC to IMAGE, and the contents of its regular
/// files over 64 bytes to the object store DIR under their fs-verity digests.
#[derive(Args, Debug)]
pub(crate) struct MkimageArgs {
    /// The directory tree to describe.
    #[arg(value_name = "SRC")]
    src: PathBuf,
    /// The image file to write (replaced atomically).
    #[arg(value_name = "IMAGE")]
    image: PathBuf,
    /// The object store: files are stored as DIR/xx/<rest of the hex digest>.
    #[arg(long, value_name = "DIR")]
    objects: PathBuf,
    /// Print a JSON summary instead of the image digest line.
    #[arg(long)]
    json: bool,
}

#[derive(serde::Serialize)]
struct Summary<'a> {
    image: String,
    digest: String,
    image_size: u64,
    objects: String,
    #[serde(flatten)]
    stats: &'a ScanStats,
}

/// Runs the subcommand.
pub(crate) fn run(args: &MkimageArgs) -> Result<bool> {
    refuse_inside(&args.src, &args.objects, "--objects")?;
    refuse_inside(&args.src, &args.image, "IMAGE")?;
    let store = ObjectStore::open(&args.objects)?;
    // Many files take a while: a count on a terminal, with the current path.
    let spinner = super::progress::stderr_spinner(args.json);
    let scanned = scan::scan_with_progress(&args.src, &store, &|path| {
        spinner.inc(1);
        spinner.set_message(path.display().to_string());
    });
    spinner.finish_and_clear();
    let (tree, stats) = scanned?;
    let bytes = crate::image::write_image(&tree)
        .with_context(|| format!("can't write an image of '{}'", args.src.display()))?;
    write_atomically(&args.image, &bytes)?;
    let descriptor = build_tree(
        &bytes,
        &TreeParams::default(),
        &mut NullSink,
        BuildOptions::default(),
    )
    .context("computing the image's fs-verity digest")?;
    let digest = format!("sha256:{}", descriptor.digest().to_hex());
    let mut out = std::io::stdout().lock();
    if args.json {
        let summary = Summary {
            image: args.image.display().to_string(),
            digest,
            image_size: bytes.len() as u64,
            objects: args.objects.display().to_string(),
            stats: &stats,
        };
        serde_json::to_writer_pretty(&mut out, &summary)?;
        out.write_all(b"\n")?;
    } else {
        // As `fsverity digest IMAGE` prints it.
        out.write_all(format!("{digest} ").as_bytes())?;
        out.write_all(args.image.as_os_str().as_bytes())?;
        out.write_all(b"\n")?;
    }
    out.flush().context("writing to standard output")?;
    Ok(true)
}

/// A usage error if `path` (which may not exist yet) lies inside `src`: the
/// scan would describe the image or the objects being written.
fn refuse_inside(src: &Path, path: &Path, what: &str) -> Result<()> {
    let Ok(src) = src.canonicalize() else {
        return Ok(()); // a missing SRC is reported by the scan, naming it
    };
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    // The nearest existing ancestor, resolved, decides where `path` will be.
    let Some(resolved) = absolute.ancestors().find_map(|a| a.canonicalize().ok()) else {
        return Ok(());
    };
    if resolved.starts_with(&src) {
        return Err(super::UsageError(format!(
            "{what} '{}' is inside SRC '{}'",
            absolute.display(),
            src.display()
        ))
        .into());
    }
    Ok(())
}

/// Writes `bytes` to a temporary file beside `path`, then renames it over `path`.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path
        .file_name()
        .with_context(|| format!("'{}' names no file", path.display()))?;
    let tmp = path.with_file_name(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = fs::write(&tmp, bytes)
        .and_then(|()| fs::File::open(&tmp)?.sync_all())
        .and_then(|()| fs::rename(&tmp, path));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.with_context(|| format!("can't write the image '{}'", path.display()))
}
