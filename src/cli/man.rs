//! `fsverity-fuse man [--dir DIR] [COMMAND]` (hidden): the manual pages,
//! `fsverity-fuse(8)` and one per subcommand (`fsverity-fuse-mount(8)`...),
//! generated with clap_mangen from the one clap definition ([`super::command`]),
//! plus the sections clap does not know: the mount options in their `-o`
//! spellings (the helper's own derivation, [`super::helper::mount_options`]),
//! the exit statuses, the errnos a mount returns, and where things live.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, italic, roman};

use super::helper::mount_options;

/// Write the manual pages (troff), generated from the command-line definition.
#[derive(Args, Debug)]
pub(crate) struct ManArgs {
    /// Write every page (fsverity-fuse.8, fsverity-fuse-COMMAND.8) into DIR and
    /// print their paths, instead of printing one page.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// The subcommand whose page to print (default: the main page).
    #[arg(value_name = "COMMAND", conflicts_with = "dir")]
    command: Option<String>,
}

/// The manual section: system administration commands (mount helpers and
/// daemons live there, as mount.fuse3(8) does).
pub(crate) const SECTION: &str = "8";

/// One manual page.
#[derive(Debug)]
pub(crate) struct Page {
    /// `fsverity-fuse` or `fsverity-fuse-SUBCOMMAND`.
    pub(crate) name: String,
    /// The page in troff.
    pub(crate) troff: Vec<u8>,
}

impl Page {
    /// The page's file name, `NAME.8`.
    pub(crate) fn file_name(&self) -> String {
        format!("{}.{SECTION}", self.name)
    }
}

/// Runs the subcommand.
pub(crate) fn run(args: &ManArgs) -> Result<bool> {
    let pages = pages().context("rendering the manual pages")?;
    if let Some(dir) = &args.dir {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("can't create '{}'", dir.display()))?;
        for page in &pages {
            let path = dir.join(page.file_name());
            std::fs::write(&path, &page.troff)
                .with_context(|| format!("can't write '{}'", path.display()))?;
            println!("{}", path.display());
        }
        return Ok(true);
    }
    let name = match &args.command {
        Some(sub) => format!("fsverity-fuse-{sub}"),
        None => "fsverity-fuse".to_owned(),
    };
    let page = pages.iter().find(|p| p.name == name).ok_or_else(|| {
        super::UsageError(format!(
            "no manual page for '{}' (commands: {})",
            args.command.as_deref().unwrap_or_default(),
            pages
                .iter()
                .filter_map(|p| p.name.strip_prefix("fsverity-fuse-"))
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })?;
    let mut out = std::io::stdout().lock();
    out.write_all(&page.troff)
        .and_then(|()| out.flush())
        .context("writing to standard output")?;
    Ok(true)
}

/// Every page: the main one, then one per visible subcommand.
pub(crate) fn pages() -> std::io::Result<Vec<Page>> {
    let mut root = super::command().disable_help_subcommand(true);
    root.build();
    let mut pages = vec![render(&root, &root)?];
    for sub in root.get_subcommands().filter(|s| !s.is_hide_set()) {
        pages.push(render(&root, sub)?);
    }
    Ok(pages)
}

/// One page: clap_mangen's sections, then ours.
fn render(root: &clap::Command, cmd: &clap::Command) -> std::io::Result<Page> {
    let is_root = std::ptr::eq(root, cmd);
    let name = match is_root {
        true => root.get_name().to_owned(),
        false => format!("{}-{}", root.get_name(), cmd.get_name()),
    };
    let man = Man::new(cmd.clone())
        .title(name.to_uppercase())
        .section(SECTION)
        .source(format!("fsverity-fuse {}", env!("CARGO_PKG_VERSION")))
        .manual("fsverity-fuse manual");
    let mut troff = Vec::new();
    man.render_title(&mut troff)?;
    man.render_name_section(&mut troff)?;
    man.render_synopsis_section(&mut troff)?;
    man.render_description_section(&mut troff)?;
    if is_root {
        let mut roff = Roff::new();
        description(&mut roff);
        roff.to_writer(&mut troff)?;
    }
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut troff)?;
    }
    if cmd.get_subcommands().any(|s| !s.is_hide_set()) {
        man.render_subcommands_section(&mut troff)?;
    }
    let mut roff = Roff::new();
    match cmd.get_name() {
        _ if is_root => {
            mount_helper_section(&mut roff);
            exit_status_section(&mut roff);
            errors_section(&mut roff);
            environment_and_files_sections(&mut roff);
        }
        "mount" => {
            mount_options_section(&mut roff);
            exit_status_section(&mut roff);
            errors_section(&mut roff);
        }
        _ => exit_status_section(&mut roff),
    }
    see_also_section(&mut roff, root, is_root);
    roff.control("SH", ["VERSION"]);
    roff.text([roman(super::version::SHORT)]);
    roff.to_writer(&mut troff)?;
    Ok(Page { name, troff })
}

/// The main page's description, after clap's one-line summary.
fn description(roff: &mut Roff) {
    roff.control("PP", []);
    roff.text([roman(
        "Linux fs-verity makes a file read-only and checks every block against a Merkle tree each time the block is read; the whole file is summed up in one digest, which can be signed. fsverity-fuse brings this to filesystems and kernels that lack it (XFS, tmpfs, NFS, overlayfs, kernels without CONFIG_FS_VERITY), in the kernel's format byte for byte: a program reading a tampered block gets EIO, as it would from the kernel.",
    )]);
    roff.control("PP", []);
    roff.text([
        bold("fsverity-fuse enable"),
        roman(" makes files of a backing directory verity files (their metadata lives in an extended attribute, their trees in "),
        italic("BACKING"),
        roman("/.fsverity-fuse); "),
        bold("fsverity-fuse mount"),
        roman(" presents the directory elsewhere and verifies every read. Through the mount, the stock fsverity(1) tool enables and measures files with the kernel's ioctls."),
    ]);
}

/// A `.TP` item: a bold term and its description.
fn item(roff: &mut Roff, term: &str, text: &str) {
    roff.control("TP", []);
    roff.text([bold(term)]);
    roff.text([roman(text)]);
}

fn mount_helper_section(roff: &mut Roff) {
    roff.control("SH", ["MOUNT HELPER"]);
    roff.text([
        roman("mount(8) and /etc/fstab mount with type "),
        bold("fuse.fsverity-fuse"),
        roman(": "),
        bold("mount -t fuse.fsverity-fuse"),
        roman(" "),
        italic("BACKING MOUNTPOINT"),
        roman(" "),
        bold("-o"),
        roman(" "),
        italic("OPTIONS"),
        roman(" runs /sbin/mount.fuse.fsverity-fuse (a link to this program), which starts the daemon and returns once the mount is live; "),
        bold("umount"),
        roman(" ends it. Every option of "),
        bold("fsverity-fuse mount"),
        roman(" has an "),
        bold("-o"),
        roman(" spelling, listed in fsverity-fuse-mount(8) under MOUNT OPTIONS."),
    ]);
    roff.control("PP", []);
    roff.text([
        roman("The same form runs as "),
        bold("fsverity-fuse"),
        roman(" "),
        italic("BACKING MOUNTPOINT"),
        roman(" "),
        bold("-o"),
        roman(" "),
        italic("OPTIONS"),
        roman(" (as mount.fuse3(8) runs it). Its flags: "),
        bold("-f"),
        roman(" stays in the foreground (run as mount.fuse.fsverity-fuse, mount(8)'s "),
        bold("-f"),
        roman(": check everything, mount nothing); "),
        bold("-s"),
        roman(" ignores unknown options; "),
        bold("-v"),
        roman(" logs more; "),
        bold("-n"),
        roman(" is accepted and ignored."),
    ]);
}

fn mount_options_section(roff: &mut Roff) {
    roff.control("SH", ["MOUNT OPTIONS"]);
    roff.text([
        roman("In the mount(8) form ("),
        bold("mount -t fuse.fsverity-fuse"),
        roman(", /etc/fstab, systemd mount units) every option above is given with "),
        bold("-o"),
        roman(", its dashes written as underscores; "),
        bold("trusted_key"),
        roman(" and "),
        bold("objects"),
        roman(" may be repeated. Options only mount(8) or systemd use ("),
        bold("nofail"),
        roman(", "),
        bold("noauto"),
        roman(", "),
        bold("_netdev"),
        roman(", "),
        bold("x-systemd.*"),
        roman(", ...) are accepted and ignored."),
    ]);
    for o in mount_options() {
        item(roff, &o.spelling, &o.help);
    }
}

fn exit_status_section(roff: &mut Roff) {
    roff.control("SH", ["EXIT STATUS"]);
    for (code, text) in [
        ("0", "Success."),
        (
            "1",
            "Failure: a file, key, signature or mount could not be processed (for commands over several files, the others are still processed). The message names what failed, with its cause.",
        ),
        (
            "2",
            "Usage error: an unknown option or subcommand, a missing or invalid argument, or options that do not go together.",
        ),
    ] {
        item(roff, code, text);
    }
}

/// What a mount returns, and the enable ioctl's refusals (docs/SEMANTICS.md).
pub(crate) const ERRNOS: &[(&str, &str)] = &[
    (
        "EIO",
        "A data or tree block of a verity file does not match its Merkle tree, or its metadata is damaged: the whole read fails (mmap of the page raises SIGBUS), as with the kernel's fs-verity. With --on-corruption=abort, every access after the first failure.",
    ),
    (
        "EPERM",
        "Opening a verity file for writing, truncating or fallocating it: verity files are immutable. Also: changing the reserved metadata, an append-only file, and enabling verity without a signature under --require-signatures.",
    ),
    (
        "EACCES",
        "Refused by policy: a plain file under --require-verity, or under --require-signatures a verity file whose signature is missing or does not verify under a trusted key. Enabling verity without write permission on the file.",
    ),
    (
        "EROFS",
        "A modification (or an enable) on a read-only mount (--ro, -o ro).",
    ),
    ("ENODATA", "FS_IOC_MEASURE_VERITY on a file without verity."),
    (
        "EINVAL",
        "FS_IOC_ENABLE_VERITY: version not 1, reserved fields set, unsupported hash algorithm or block size (1024 to 65536), or not a regular file.",
    ),
    (
        "EMSGSIZE",
        "FS_IOC_ENABLE_VERITY: salt over 32 bytes or signature over 16128 bytes.",
    ),
    (
        "EBADF",
        "FS_IOC_ENABLE_VERITY on a descriptor not open for reading.",
    ),
    ("EISDIR", "FS_IOC_ENABLE_VERITY on a directory."),
    (
        "ETXTBSY",
        "FS_IOC_ENABLE_VERITY on a file open for writing; opening a file for writing while its enable runs.",
    ),
    ("EEXIST", "FS_IOC_ENABLE_VERITY on a verity file."),
    (
        "EBUSY",
        "FS_IOC_ENABLE_VERITY while another enable of the file runs, or the file changed while it was hashed.",
    ),
    (
        "EFBIG",
        "FS_IOC_ENABLE_VERITY: the tree would need more than 8 levels.",
    ),
    (
        "EINTR",
        "FS_IOC_ENABLE_VERITY: the caller is being killed; the file stays plain.",
    ),
    (
        "EBADMSG",
        "FS_IOC_ENABLE_VERITY: a malformed signature (Ed25519 or PKCS#7).",
    ),
    (
        "ENOKEY",
        "FS_IOC_ENABLE_VERITY: the signer is not trusted (--trusted-key).",
    ),
    (
        "EKEYREJECTED",
        "FS_IOC_ENABLE_VERITY: the signature is not valid for the file's digest.",
    ),
    (
        "EOPNOTSUPP",
        "FS_IOC_ENABLE_VERITY: the backing filesystem has no user extended attributes.",
    ),
    (
        "ENOTTY",
        "FS_IOC_READ_VERITY_METADATA, which cannot travel through FUSE: use fsverity-fuse dump-metadata.",
    ),
];

fn errors_section(roff: &mut Roff) {
    roff.control("SH", ["ERRORS"]);
    roff.text([roman(
        "What system calls on a mount return, besides the backing filesystem's own errors (passed through unchanged); a refused enable leaves the file as it was. SEMANTICS.md (in /usr/share/doc/fsverity-fuse/docs/ or the source's docs/) says when each applies.",
    )]);
    for (errno, text) in ERRNOS {
        item(roff, errno, text);
    }
}

fn environment_and_files_sections(roff: &mut Roff) {
    roff.control("SH", ["ENVIRONMENT"]);
    item(
        roff,
        "RUST_LOG",
        "Log filter (e.g. debug, or fsverity_fuse=trace), overriding -v.",
    );
    roff.control("SH", ["FILES"]);
    for (path, text) in [
        (
            "BACKING/.fsverity-fuse",
            "The tree store: Merkle trees of the verity files below BACKING (or --tree-dir). Hidden from the mount.",
        ),
        (
            "user.fsverity-fuse",
            "The extended attribute of each verity file holding its descriptor and signature.",
        ),
        (
            "/sbin/mount.fuse.fsverity-fuse",
            "The mount(8) helper: a link to fsverity-fuse.",
        ),
        (
            "/usr/lib/systemd/system/",
            "Example systemd units, installed by the Debian package but not enabled: srv-verified.mount and fsverity-fuse-verified.service (a verified directory), srv-app.mount (a verified composefs image).",
        ),
    ] {
        item(roff, path, text);
    }
}

fn see_also_section(roff: &mut Roff, root: &clap::Command, is_root: bool) {
    let mut refs: Vec<String> = Vec::new();
    if is_root {
        refs.extend(
            root.get_subcommands()
                .filter(|s| !s.is_hide_set())
                .map(|s| format!("fsverity-fuse-{}({SECTION})", s.get_name())),
        );
    } else {
        refs.push(format!("fsverity-fuse({SECTION})"));
    }
    refs.extend(
        [
            "fsverity(1)",
            "mount(8)",
            "fstab(5)",
            "mount.fuse3(8)",
            "systemd.mount(5)",
        ]
        .map(str::to_owned),
    );
    roff.control("SH", ["SEE ALSO"]);
    roff.text([roman(refs.join(", "))]);
    roff.control("PP", []);
    roff.text([roman(
        "The kernel's fs-verity documentation: https://docs.kernel.org/filesystems/fsverity.html",
    )]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(name: &str) -> String {
        let pages = pages().expect("render");
        let page = pages
            .iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("no page {name}"));
        String::from_utf8(page.troff.clone()).expect("UTF-8")
    }

    #[test]
    fn one_page_per_visible_subcommand() {
        let names: Vec<String> = pages()
            .expect("render")
            .into_iter()
            .map(|p| p.name)
            .collect();
        for expected in [
            "fsverity-fuse",
            "fsverity-fuse-mount",
            "fsverity-fuse-enable-rpm",
        ] {
            assert!(names.iter().any(|n| n == expected), "{expected}: {names:?}");
        }
        assert!(
            !names
                .iter()
                .any(|n| n == "fsverity-fuse-man" || n == "fsverity-fuse-help"),
            "{names:?}"
        );
    }

    #[test]
    fn the_mount_page_lists_every_o_spelling_and_the_errnos() {
        let text = page("fsverity-fuse-mount");
        assert!(text.contains(".TH FSVERITY-FUSE-MOUNT 8"), "{text}");
        for o in mount_options() {
            // roff escapes '-' as '\-'.
            let spelling = o.spelling.replace('-', "\\-");
            assert!(text.contains(&spelling), "{} missing", o.spelling);
        }
        for section in ["MOUNT OPTIONS", "EXIT STATUS", "ERRORS"] {
            assert!(
                text.contains(&format!(".SH \"{section}\""))
                    || text.contains(&format!(".SH {section}")),
                "{section} missing"
            );
        }
        for (errno, _) in ERRNOS {
            assert!(text.contains(errno), "{errno} missing");
        }
    }

    #[test]
    fn every_page_has_an_exit_status_section() {
        for p in pages().expect("render") {
            let text = String::from_utf8(p.troff).expect("UTF-8");
            assert!(text.contains("EXIT STATUS"), "{}", p.name);
        }
    }
}
