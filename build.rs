//! Build script: records what was built, for `fsverity-fuse --version`.
//!
//! - `FSVERITY_FUSE_COMMIT`: the git commit of this checkout (`git rev-parse
//!   HEAD`, only when this crate is the top of the checkout), else the commit
//!   `cargo package` recorded in `.cargo_vcs_info.json` (a crates.io build),
//!   else "unknown". Never fails the build.
//! - `FSVERITY_FUSE_TARGET`, `FSVERITY_FUSE_PROFILE`, `FSVERITY_FUSE_RUSTC`,
//!   `FSVERITY_FUSE_FEATURES`: the target triple, the Cargo profile, the
//!   compiler's version and the enabled Cargo features.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let commit = git_commit(&manifest_dir)
        .or_else(|| packaged_commit(&manifest_dir))
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=FSVERITY_FUSE_COMMIT={commit}");
    let env = |k: &str| std::env::var(k).unwrap_or_else(|_| "unknown".to_owned());
    println!("cargo:rustc-env=FSVERITY_FUSE_TARGET={}", env("TARGET"));
    println!("cargo:rustc-env=FSVERITY_FUSE_PROFILE={}", env("PROFILE"));
    let mut features: Vec<String> = std::env::vars()
        .filter_map(|(k, _)| {
            Some(
                k.strip_prefix("CARGO_FEATURE_")?
                    .to_lowercase()
                    .replace('_', "-"),
            )
        })
        .collect();
    features.sort();
    println!(
        "cargo:rustc-env=FSVERITY_FUSE_FEATURES={}",
        features.join(", ")
    );
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let version = output(Command::new(rustc).arg("--version"))
        .unwrap_or_else(|| "rustc (unknown version)".to_owned());
    println!("cargo:rustc-env=FSVERITY_FUSE_RUSTC={version}");
    // Watching a file that does not exist would rerun this script on every build.
    for file in ["build.rs", ".cargo_vcs_info.json"] {
        if manifest_dir.join(file).exists() {
            println!("cargo:rerun-if-changed={file}");
        }
    }
}

/// A command's trimmed standard output, if it ran and succeeded.
fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    (out.status.success() && !text.trim().is_empty()).then(|| text.trim().to_owned())
}

/// The commit of the git checkout whose top is `dir` (not of a checkout that
/// merely contains it, such as a repository holding a downloaded crate), and
/// the files to watch so that a new commit or checkout rebuilds.
fn git_commit(dir: &Path) -> Option<String> {
    let git = |args: &[&str]| output(Command::new("git").arg("-C").arg(dir).args(args));
    let top = PathBuf::from(git(&["rev-parse", "--show-toplevel"])?);
    if top.canonicalize().ok()? != dir.canonicalize().ok()? {
        return None;
    }
    let commit = git(&["rev-parse", "--short=12", "HEAD"])?;
    // HEAD names the branch; the branch's ref (loose or packed) names the commit.
    // logs/HEAD (the reflog) changes on every commit, checkout and reset.
    let mut watch = vec![
        "HEAD".to_owned(),
        "logs/HEAD".to_owned(),
        "packed-refs".to_owned(),
    ];
    watch.extend(git(&["symbolic-ref", "-q", "HEAD"]));
    for name in watch {
        if let Some(path) = git(&["rev-parse", "--git-path", &name]) {
            let path = dir.join(path); // relative to `dir`, or absolute
            if path.exists() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }
    Some(commit)
}

/// The commit `cargo package` recorded (`{"git": {"sha1": "..."}}`).
fn packaged_commit(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join(".cargo_vcs_info.json")).ok()?;
    let start = text.find("\"sha1\"")? + "\"sha1\"".len();
    let hex: String = text[start..]
        .trim_start_matches([' ', ':', '"', '\n', '\t'])
        .chars()
        .take_while(char::is_ascii_hexdigit)
        .collect();
    (hex.len() >= 12).then(|| hex[..12].to_owned())
}
