//! `fsverity-fuse measure FILE...`: the fs-verity digest of verity files, like
//! `fsverity measure` (FS_IOC_MEASURE_VERITY; a backing file outside any mount is
//! measured from its metadata).

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::format::HashAlgorithm;
use crate::store::read_metadata;

/// Print the fs-verity digest of verity files.
#[derive(Args, Debug)]
pub(crate) struct MeasureArgs {
    /// Files to measure.
    #[arg(required = true, value_name = "FILE")]
    pub(crate) files: Vec<PathBuf>,
}

fn alg_name(id: u16) -> String {
    HashAlgorithm::from_id(id.into())
        .map(|a| a.name().to_owned())
        .unwrap_or_else(|_| format!("alg{id}"))
}

fn measure_one(path: &Path) -> Result<String> {
    let file = File::open(path).with_context(|| format!("can't open '{}'", path.display()))?;
    match crate::sys::measure_verity(&file) {
        Ok((alg, digest)) => {
            return Ok(format!(
                "{}:{} {}",
                alg_name(alg),
                hex::encode(digest),
                path.display()
            ));
        }
        Err(e) if e.raw_os_error() == Some(libc::ENODATA) => {
            bail!("'{}' is not a verity file", path.display())
        }
        Err(e)
            if !matches!(
                e.raw_os_error(),
                Some(libc::ENOTTY) | Some(libc::EOPNOTSUPP)
            ) =>
        {
            return Err(e)
                .with_context(|| format!("FS_IOC_MEASURE_VERITY failed on '{}'", path.display()));
        }
        Err(_) => {}
    }
    // Not on a verity-capable filesystem: a backing file carries its metadata.
    match read_metadata(&file)
        .with_context(|| format!("reading metadata of '{}'", path.display()))?
    {
        Some(Ok(m)) => Ok(format!(
            "{}:{} {}",
            m.descriptor.algorithm(),
            m.descriptor.digest(),
            path.display()
        )),
        Some(Err(e)) => bail!("'{}' has damaged verity metadata: {e}", path.display()),
        None => bail!("'{}' is not a verity file", path.display()),
    }
}

pub(crate) fn run(args: &MeasureArgs) -> Result<bool> {
    let mut ok = true;
    for path in &args.files {
        match measure_one(path) {
            Ok(line) => println!("{line}"),
            Err(e) => {
                super::report(&e);
                ok = false;
            }
        }
    }
    Ok(ok)
}
