//! What `fsverity-fuse --version` says, so that a bug report names exactly
//! what ran: the version and git commit (`-V`), and with `--version` also the
//! hash algorithms, the signature formats, the Cargo features and the build
//! (profile, target, compiler). The build facts come from `build.rs`.

use crate::format::HashAlgorithm;

/// `-V`: the version and the commit it was built from.
pub(crate) const SHORT: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("FSVERITY_FUSE_COMMIT"),
    ")"
);

/// `--version`: [`SHORT`] (with the commit), then one `name: value` line per fact.
pub(crate) fn long() -> String {
    let hashes: Vec<String> = HashAlgorithm::ALL
        .iter()
        .map(|a| match a.is_kernel_algorithm() {
            true => a.name().to_owned(),
            false => format!("{} (fsverity-fuse extension)", a.name()),
        })
        .collect();
    let features = match env!("FSVERITY_FUSE_FEATURES") {
        "" => "none",
        f => f,
    };
    format!(
        "{SHORT}\n\
         hash algorithms: {}\n\
         signature formats: {}\n\
         cargo features: {features}\n\
         build: {} profile, {}, {}",
        hashes.join(", "),
        crate::signature::FORMATS.join(", "),
        env!("FSVERITY_FUSE_PROFILE"),
        env!("FSVERITY_FUSE_TARGET"),
        env!("FSVERITY_FUSE_RUSTC"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_version_names_every_algorithm_and_signature_format() {
        let text = long();
        assert!(text.starts_with(env!("CARGO_PKG_VERSION")), "{text}");
        for a in HashAlgorithm::ALL {
            assert!(text.contains(a.name()), "{} missing:\n{text}", a.name());
        }
        for f in ["Ed25519", "PKCS#7"] {
            assert!(text.contains(f), "{f} missing:\n{text}");
        }
        assert!(text.contains(env!("FSVERITY_FUSE_COMMIT")), "{text}");
    }
}
