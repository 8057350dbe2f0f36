//! The `fsverity-fuse digest` command line: every bad invocation is an error
//! with the right exit code (2 usage, 1 file), never a crash; the output forms
//! and option spellings of `fsverity digest`.
//!
//! Every command goes through [`util::run`], which also fails the test if the
//! process died from a signal or printed a panic.

use std::path::{Path, PathBuf};

use fsverity_fuse::format::{HashAlgorithm, TreeParams, formatted_digest};
use fsverity_fuse::merkle::{BuildOptions, NullSink, build_tree};

use crate::util::{self, run_bin};

/// A temporary directory holding `input` (5000 random bytes).
fn setup(name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = util::temp_dir(name);
    let input = dir.path().join("input");
    util::write(&input, &util::random_bytes(5000, 1));
    (dir, input)
}

/// The file digest of `path` according to the library, in hex.
fn library_digest(path: &Path, algorithm: HashAlgorithm) -> String {
    let file = std::fs::File::open(path).expect("open");
    let params = TreeParams::new(algorithm, 4096, &[]).expect("params");
    build_tree(&file, &params, &mut NullSink, BuildOptions::default())
        .expect("build")
        .digest()
        .to_hex()
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn invalid_parameters_are_usage_errors() {
    let (_dir, input) = setup("invalid_parameters");
    let input = s(&input);
    let salt_33 = "00".repeat(33);
    // (arguments after `digest` and before the file, what stderr must mention)
    let cases: &[(&[&str], &str)] = &[
        (&["--hash-alg=md5"], "md5"),
        (&["--hash-alg=sha1"], "sha1"),
        (&["--hash-alg="], "--hash-alg"),
        (&["--block-size=0"], "'0'"),
        (&["--block-size=1"], "'1'"),
        (&["--block-size=512"], "512"),
        (&["--block-size=4095"], "4095"),
        (&["--block-size=4097"], "4097"),
        (&["--block-size=131072"], "131072"),
        (&["--block-size=abc"], "abc"),
        (&["--block-size="], "--block-size"),
        (&["--block-size=-4096"], "-4096"),
        (&["--block-size=4k"], "4k"),
        (&["--block-size=0x1000"], "0x1000"),
        (
            &["--block-size=18446744073709551616"],
            "18446744073709551616",
        ),
        (&["--salt=zz"], "hex"),
        (&["--salt=abc"], "hex"),
        (&["--salt=0x12"], "hex"),
        (&["--salt=12 34"], "hex"),
        (&["--salt", &salt_33], "33 bytes"),
        (&["--threads=abc"], "abc"),
        (&["--threads=-1"], "-1"),
        (&["--bogus"], "--bogus"),
        (&["-x"], "-x"),
        (&["--compact=yes"], "--compact"),
    ];
    for &(args, mention) in cases {
        let mut all = vec!["digest"];
        all.extend_from_slice(args);
        all.push(&input);
        let out = run_bin(&all);
        out.expect_code(2);
        assert!(out.stdout.is_empty(), "{args:?} printed {:?}", out.stdout);
        assert!(
            out.stderr.contains(mention),
            "{args:?}: stderr should mention {mention:?}:\n{}",
            out.stderr
        );
    }
}

#[test]
fn missing_arguments_are_usage_errors() {
    let (_dir, input) = setup("missing_arguments");
    let input = s(&input);
    let cases: &[&[&str]] = &[
        &[],
        &["digest"],
        &["digest", "--compact"],
        &["digest", "--hash-alg=sha512"],
        // An option whose value is missing at the end.
        &["digest", &input, "--salt"],
        &["digest", &input, "--out-merkle-tree"],
        &["no-such-command", &input],
    ];
    for args in cases {
        let out = run_bin(*args);
        out.expect_code(2);
        assert!(!out.stderr.is_empty(), "{args:?}: no message");
    }
}

#[test]
fn nonexistent_file_is_named() {
    let dir = util::temp_dir("nonexistent_file");
    let missing = s(&dir.path().join("no such file"));
    let out = run_bin(["digest", &missing]);
    out.expect_code(1);
    assert!(out.stdout.is_empty());
    assert!(
        out.stderr.contains(&missing),
        "stderr should name {missing}: {}",
        out.stderr
    );
}

#[test]
fn a_tree_deeper_than_the_kernels_eight_levels_is_refused() {
    // 1 KiB blocks and SHA-512 hold 16 hashes per block: 8 levels cover 16^8
    // blocks (4 TiB); a sparse file one byte larger would need a ninth level,
    // which the kernel refuses (FS_VERITY_MAX_LEVELS). Refused before any read.
    let dir = util::temp_dir("too_many_levels");
    let path = dir.path().join("huge");
    let file = std::fs::File::create(&path).expect("create");
    if let Err(e) = file.set_len(16u64.pow(8) * 1024 + 1) {
        panic!("this filesystem cannot hold a 4 TiB sparse file: {e}");
    }
    let huge = s(&path);
    let out = run_bin(["digest", "--hash-alg=sha512", "--block-size=1024", &huge]);
    out.expect_code(1);
    assert!(
        out.stderr.contains(&huge) && out.stderr.contains("more than 8 Merkle tree levels"),
        "stderr should name the file and the limit: {}",
        out.stderr
    );
}

#[test]
fn directory_is_an_error() {
    let dir = util::temp_dir("directory");
    let path = s(dir.path());
    let out = run_bin(["digest", &path]);
    out.expect_code(1);
    assert!(out.stdout.is_empty());
    assert!(
        out.stderr.contains(&path),
        "stderr should name {path}: {}",
        out.stderr
    );
}

#[test]
fn one_bad_file_among_good_ones() {
    let (dir, input) = setup("one_bad_file");
    let missing = s(&dir.path().join("missing"));
    let out = run_bin(["digest", &s(&input), &missing, &s(&input)]);
    out.expect_code(1);
    // fsverity-utils stops at the first failure; the files before it are printed.
    let first = format!(
        "sha256:{} {}\n",
        library_digest(&input, HashAlgorithm::Sha256),
        input.display()
    );
    assert!(
        out.stdout.starts_with(&first),
        "stdout should start with {first:?}: {:?}",
        out.stdout
    );
    assert!(out.stderr.contains(&missing), "{}", out.stderr);
}

#[test]
fn out_files_need_exactly_one_input() {
    let (dir, input) = setup("out_files_one_input");
    let input = s(&input);
    let out_file = dir.path().join("out");
    for opt in ["--out-merkle-tree", "--out-descriptor"] {
        let out = run_bin([
            "digest",
            &format!("{opt}={}", out_file.display()),
            &input,
            &input,
        ]);
        out.expect_code(2);
        assert!(out.stderr.contains(opt), "{opt}: {}", out.stderr);
        assert!(out.stdout.is_empty(), "{opt}: {}", out.stdout);
        assert!(!out_file.exists(), "{opt}: the output was created anyway");
    }
}

#[test]
fn unwritable_output_is_a_file_error() {
    let (dir, input) = setup("unwritable_output");
    let input = s(&input);
    // Root ignores permission bits, so use paths no one can create: one under a
    // missing directory, and an existing directory.
    let unwritable = [
        s(&dir.path().join("missing-dir").join("out")),
        s(dir.path()),
    ];
    for opt in ["--out-merkle-tree", "--out-descriptor"] {
        for path in &unwritable {
            let out = run_bin(["digest", &format!("{opt}={path}"), &input]);
            out.expect_code(1);
            assert!(
                out.stderr.contains(path.as_str()),
                "{opt}={path}: stderr should name the path: {}",
                out.stderr
            );
        }
    }
}

#[test]
fn help_and_version_succeed() {
    for args in [
        &["--help"][..],
        &["-h"],
        &["help"],
        &["help", "digest"],
        &["digest", "--help"],
        &["digest", "-h"],
    ] {
        let out = run_bin(args);
        out.expect_success();
        assert!(out.stdout.contains("Usage"), "{args:?}: {}", out.stdout);
    }
    for args in [&["--version"][..], &["-V"]] {
        let out = run_bin(args);
        out.expect_success();
        assert!(
            out.stdout.contains(env!("CARGO_PKG_VERSION")),
            "{args:?}: {}",
            out.stdout
        );
    }
}

/// `fsverity digest --version` prints the version and exits 0; a drop-in should too.
#[test]
fn digest_version_succeeds() {
    let out = run_bin(["digest", "--version"]);
    out.expect_success();
    assert!(out.stdout.contains(env!("CARGO_PKG_VERSION")));
}

#[test]
fn both_option_spellings_work() {
    let (dir, input) = setup("option_spellings");
    let input = s(&input);
    let tree = s(&dir.path().join("tree"));
    let desc = s(&dir.path().join("desc"));
    let options = [
        ("--hash-alg", "sha512"),
        ("--block-size", "1024"),
        ("--salt", "0123456789abcdef"),
        ("--out-merkle-tree", &tree),
        ("--out-descriptor", &desc),
        ("--threads", "2"),
    ];
    let default = run_bin(["digest", &input]);
    default.expect_success();
    for (opt, value) in options {
        let attached = run_bin(["digest", &format!("{opt}={value}"), &input]);
        let separate = run_bin(["digest", opt, value, &input]);
        let after_file = run_bin(["digest", &input, opt, value]);
        for out in [&attached, &separate, &after_file] {
            out.expect_success();
            assert_eq!(out.stdout, attached.stdout, "{opt} {value}");
        }
        let changes_digest = matches!(opt, "--hash-alg" | "--block-size" | "--salt");
        assert_eq!(
            attached.stdout != default.stdout,
            changes_digest,
            "{opt} {value}: {} vs default {}",
            attached.stdout,
            default.stdout
        );
    }
    let tree_a = util::read(Path::new(&tree));
    let desc_a = util::read(Path::new(&desc));
    // Default parameters (the last run): two data blocks, one tree block.
    assert_eq!(tree_a.len(), 4096);
    assert_eq!(desc_a.len(), 256);
}

#[test]
fn output_line_format() {
    let dir = util::temp_dir("output_format");
    let a = dir.path().join("a");
    let b = dir.path().join("name with spaces");
    util::write(&a, &util::random_bytes(10_000, 2));
    util::write(&b, b"");
    for (alg, hex_len) in [(HashAlgorithm::Sha256, 64), (HashAlgorithm::Sha512, 128)] {
        let out = run_bin([
            "digest",
            &format!("--hash-alg={alg}"),
            &s(&a),
            &s(&b),
            &s(&a),
        ]);
        out.expect_success();
        let lines: Vec<&str> = out.stdout.lines().collect();
        let expect = [&a, &b, &a];
        assert_eq!(lines.len(), 3, "{}", out.stdout);
        for (line, file) in lines.iter().zip(expect) {
            let (digest, name) = line.split_once(' ').expect("'<alg>:<hex> <file>'");
            assert_eq!(name, s(file));
            let hex = digest
                .strip_prefix(&format!("{alg}:"))
                .unwrap_or_else(|| panic!("{line:?} lacks the {alg}: prefix"));
            assert_eq!(hex.len(), hex_len, "{line}");
            assert!(
                hex.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')),
                "{line}: not lower-case hex"
            );
            assert_eq!(hex, library_digest(file, alg));
        }
        assert!(out.stdout.ends_with('\n'));
    }
}

#[test]
fn compact_and_builtin_sig_forms() {
    let (_dir, input) = setup("compact_and_builtin_sig");
    let path = s(&input);
    for (alg, header) in [
        // "FSVerity" in hex, le16 algorithm id, le16 digest size.
        (HashAlgorithm::Sha256, "465356657269747901002000"),
        (HashAlgorithm::Sha512, "465356657269747902004000"),
    ] {
        let hex = library_digest(&input, alg);
        let formatted = format!("{header}{hex}");
        let digest =
            fsverity_fuse::format::HashValue::from_slice(&hex::decode(&hex).expect("hex digest"));
        assert_eq!(hex::encode(formatted_digest(alg, &digest)), formatted);
        let alg_opt = format!("--hash-alg={alg}");
        let cases: [(&[&str], String); 4] = [
            (&[], format!("{alg}:{hex} {path}\n")),
            (&["--compact"], format!("{hex}\n")),
            (&["--for-builtin-sig"], format!("{formatted} {path}\n")),
            (
                &["--for-builtin-sig", "--compact"],
                format!("{formatted}\n"),
            ),
        ];
        for (flags, expected) in cases {
            let mut args = vec!["digest", alg_opt.as_str()];
            args.extend_from_slice(flags);
            args.push(&path);
            let out = run_bin(&args);
            out.expect_success();
            assert_eq!(out.stdout, expected, "{args:?}");
        }
    }
}

#[test]
fn blake3_extension() {
    let (_dir, input) = setup("blake3");
    let out = run_bin(["digest", "--hash-alg=blake3", &s(&input)]);
    out.expect_success();
    assert_eq!(
        out.stdout,
        format!(
            "blake3:{} {}\n",
            library_digest(&input, HashAlgorithm::Blake3),
            input.display()
        )
    );
}

#[test]
fn merkle_tree_output_edge_cases() {
    let dir = util::temp_dir("tree_output");
    let tree = dir.path().join("tree");
    let big = dir.path().join("big");
    util::write(&big, &util::random_bytes(600_000, 3));

    // The reference tree of `big`, into a fresh file.
    let out = run_bin([
        "digest",
        &s(&big),
        &format!("--out-merkle-tree={}", s(&tree)),
    ]);
    out.expect_success();
    let reference = util::read(&tree);
    assert_eq!(
        reference.len(),
        3 * 4096,
        "600 000 bytes: 147 data blocks, 2 + 1 tree blocks"
    );

    // An existing, longer file is replaced, not overwritten in place.
    util::write(&tree, &vec![0xa5; 100_000]);
    run_bin([
        "digest",
        &s(&big),
        &format!("--out-merkle-tree={}", s(&tree)),
    ])
    .expect_success();
    assert!(
        util::read(&tree) == reference,
        "stale bytes left in the tree file"
    );

    // A file of one block has an empty tree: the output exists and is empty.
    let one_block = dir.path().join("one-block");
    util::write(&one_block, &util::random_bytes(4096, 5));
    run_bin([
        "digest",
        &s(&one_block),
        &format!("--out-merkle-tree={}", s(&tree)),
    ])
    .expect_success();
    assert_eq!(util::read(&tree).len(), 0);

    // Not a regular file.
    run_bin(["digest", &s(&big), "--out-merkle-tree=/dev/null"]).expect_success();
    run_bin(["digest", &s(&big), "--out-descriptor=/dev/null"]).expect_success();
}

#[test]
fn thread_counts_agree() {
    let dir = util::temp_dir("threads");
    let input = dir.path().join("input");
    // Past the builder's 4 MiB threshold, so several threads really hash.
    util::write(&input, &util::random_bytes(5 << 20 | 123, 4));
    let tree = dir.path().join("tree");
    let reference = run_bin(["digest", &s(&input)]);
    reference.expect_success();
    for threads in ["0", "1", "2", "3", "16"] {
        let out = run_bin([
            "digest",
            "--threads",
            threads,
            &s(&input),
            &format!("--out-merkle-tree={}", s(&tree)),
        ]);
        out.expect_success();
        assert_eq!(out.stdout, reference.stdout, "--threads {threads}");
    }
}

#[test]
fn double_dash_ends_options() {
    let dir = util::temp_dir("double_dash");
    let odd = dir.path().join("--compact");
    util::write(&odd, b"x");
    let out = std::process::Command::new(util::bin())
        .args(["digest", "--", "--compact"])
        .current_dir(dir.path())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    assert!(
        stdout.starts_with("sha256:") && stdout.ends_with(" --compact\n"),
        "{stdout}"
    );
}

/// `fsverity digest` prints file names byte for byte, whatever their encoding.
#[test]
fn non_utf8_file_names_are_printed_verbatim() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;

    let dir = util::temp_dir("non_utf8_name");
    let name = dir.path().join(OsStr::from_bytes(b"bad\xffname"));
    util::write(&name, b"hi\n");
    let out = std::process::Command::new(util::bin())
        .arg("digest")
        .arg(&name)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let mut expected =
        format!("sha256:{} ", library_digest(&name, HashAlgorithm::Sha256)).into_bytes();
    expected.extend_from_slice(name.as_os_str().as_bytes());
    expected.push(b'\n');
    assert_eq!(
        out.stdout.escape_ascii().to_string(),
        expected.escape_ascii().to_string()
    );
}
