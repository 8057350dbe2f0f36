//! Differential test: random files and random option sets through both
//! `fsverity digest` (fsverity-utils) and `fsverity-fuse digest`; stdout, the
//! Merkle tree and the descriptor must agree byte for byte.
//!
//! The cases come from a seeded xorshift. The default seed is fixed, so a run is
//! reproducible; `FSVERITY_FUSE_DIFF_SEED=<n>` replays another run, and
//! `FSVERITY_FUSE_DIFF_SEED=random` explores a fresh one. Every failure message
//! names the seed and the case.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::util::{self, XorShift64};

const SEED_VAR: &str = "FSVERITY_FUSE_DIFF_SEED";
const DEFAULT_SEED: u64 = 0x00f5_7e51_7ff0_5e01;
/// Cases per run.
const CASES: usize = 150;
/// Largest file of a run: a few MiB, past the builder's 4 MiB parallel threshold.
const MAX_SIZE: u64 = 8 << 20;

/// One randomly drawn invocation.
#[derive(Debug)]
struct Case {
    algorithm: &'static str,
    block_size: u64,
    /// `None`: no `--salt`; `Some("")`: an explicit empty salt.
    salt: Option<String>,
    compact: bool,
    for_builtin_sig: bool,
    size: u64,
    /// Data islands `(offset, len)` of a sparse file; `None`: a fully written file.
    sparse: Option<Vec<(u64, u64)>>,
    /// `--threads` for fsverity-fuse only (fsverity has no such option).
    threads: Option<u32>,
}

impl Case {
    fn draw(rng: &mut XorShift64) -> Self {
        let algorithm = if rng.one_in(2) { "sha256" } else { "sha512" };
        let block_size = 1u64 << rng.in_range(10..=16);
        let salt = match rng.below(4) {
            0 => None,
            1 => Some(String::new()),
            2 => Some(hex::encode(util::random_bytes(32, rng.next_u64()))),
            _ => {
                let len = rng.in_range(1..=32) as usize;
                Some(hex::encode(util::random_bytes(len, rng.next_u64())))
            }
        };
        let digest_size = if algorithm == "sha256" { 32 } else { 64 };
        let size = draw_size(rng, block_size, block_size / digest_size);
        let sparse = (size > 0 && rng.one_in(5)).then(|| {
            (0..rng.below(5))
                .map(|_| {
                    let offset = rng.below(size);
                    (offset, rng.in_range(1..=(size - offset).min(100_000)))
                })
                .collect()
        });
        let threads = match rng.below(4) {
            0 => None,
            n => Some([0, 1, 3][n as usize - 1]),
        };
        Self {
            algorithm,
            block_size,
            salt,
            compact: rng.one_in(4),
            for_builtin_sig: rng.one_in(4),
            size,
            sparse,
            threads,
        }
    }

    /// Writes the input file: random bytes, or a hole with random islands.
    fn make_file(&self, path: &Path, seed: u64) {
        let file = File::create(path).expect("create the input");
        match &self.sparse {
            None => file
                .write_all_at(&util::random_bytes(self.size as usize, seed), 0)
                .expect("write the input"),
            Some(islands) => {
                file.set_len(self.size).expect("set_len");
                for (i, &(offset, len)) in islands.iter().enumerate() {
                    let bytes = util::random_bytes(len as usize, seed + i as u64);
                    file.write_all_at(&bytes, offset).expect("write an island");
                }
            }
        }
    }

    /// The options shared by both tools, each spelled `--opt=value` or
    /// `--opt value` at random, in random order, the file among them.
    fn args(&self, rng: &mut XorShift64, file: &Path, tree: &Path, desc: &Path) -> Vec<String> {
        let mut opts: Vec<Vec<String>> = Vec::new();
        let mut valued = |rng: &mut XorShift64, name: &str, value: String| {
            opts.push(if rng.one_in(2) {
                vec![format!("--{name}={value}")]
            } else {
                vec![format!("--{name}"), value]
            });
        };
        if self.algorithm != "sha256" || rng.one_in(2) {
            valued(rng, "hash-alg", self.algorithm.to_owned());
        }
        if self.block_size != 4096 || rng.one_in(2) {
            valued(rng, "block-size", self.block_size.to_string());
        }
        if let Some(salt) = &self.salt {
            // An empty salt is `--salt=` or `--salt ""`.
            valued(rng, "salt", salt.clone());
        }
        valued(rng, "out-merkle-tree", tree.display().to_string());
        valued(rng, "out-descriptor", desc.display().to_string());
        if self.compact {
            opts.push(vec!["--compact".to_owned()]);
        }
        if self.for_builtin_sig {
            opts.push(vec!["--for-builtin-sig".to_owned()]);
        }
        opts.push(vec![file.display().to_string()]);
        // Fisher-Yates.
        for i in (1..opts.len()).rev() {
            opts.swap(i, rng.below(i as u64 + 1) as usize);
        }
        let mut args = vec!["digest".to_owned()];
        args.extend(opts.into_iter().flatten());
        args
    }
}

/// A size near something that matters for `block_size` blocks holding
/// `hashes_per_block` digests: empty, one block, level boundaries, the builder's
/// 1 MiB chunks and 4 MiB parallel threshold, or anything small, or anything up
/// to [`MAX_SIZE`].
fn draw_size(rng: &mut XorShift64, block_size: u64, hashes_per_block: u64) -> u64 {
    let level1 = hashes_per_block * block_size;
    let level2 = level1 * hashes_per_block;
    // A boundary `n`, then one of n - 1, n, n + 1.
    let boundary = match rng.below(10) {
        0 => return rng.below(3),
        1 => block_size,
        2 => block_size * rng.in_range(2..=5),
        3 => level1,
        4 if level2 <= MAX_SIZE => level2,
        4 => level1 * rng.in_range(2..=5),
        5 => (1 << 20) * rng.in_range(1..=4),
        6 => return rng.below(block_size),
        7 => return rng.below(level1 + block_size),
        8 => return rng.below(1 << 18),
        _ => return rng.below(MAX_SIZE + 1),
    };
    let size = (boundary + rng.below(3)).saturating_sub(1);
    size.min(MAX_SIZE)
}

fn seed() -> u64 {
    match std::env::var(SEED_VAR) {
        Err(_) => DEFAULT_SEED,
        Ok(v) if v == "random" => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_nanos() as u64,
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{SEED_VAR}={v}: expected a number or 'random'")),
    }
}

/// Offset of the first differing byte, or the shorter length.
fn first_difference(a: &[u8], b: &[u8]) -> usize {
    a.iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()))
}

#[test]
fn matches_fsverity_utils() {
    let Some(fsverity) = util::fsverity_oracle() else {
        return;
    };
    let seed = seed();
    let replay = format!("seed {seed} (replay with {SEED_VAR}={seed})");
    eprintln!("differential test: {replay}");
    let dir = util::temp_dir("differential");
    let file = dir.path().join("input file");
    let path = |name: &str| -> PathBuf { dir.path().join(name) };
    let (tree_c, desc_c, tree_r, desc_r) = (
        path("tree.c"),
        path("desc.c"),
        path("tree.rs"),
        path("desc.rs"),
    );
    let mut rng = XorShift64::new(seed);
    let (mut sparse, mut parallel, mut sha512, mut bytes) = (0, 0, 0, 0);
    for index in 0..CASES {
        let case = Case::draw(&mut rng);
        sparse += usize::from(case.sparse.is_some());
        parallel += usize::from(case.size >= 4 << 20);
        sha512 += usize::from(case.algorithm == "sha512");
        bytes += case.size;
        let what = format!("case {index} of {replay}: {case:?}");
        case.make_file(&file, rng.next_u64());

        let theirs = util::run(&fsverity, case.args(&mut rng, &file, &tree_c, &desc_c));
        let mut args = case.args(&mut rng, &file, &tree_r, &desc_r);
        if let Some(n) = case.threads {
            args.extend(["--threads".to_owned(), n.to_string()]);
        }
        let ours = util::run_bin(&args);

        theirs.expect_success();
        ours.expect_success();
        assert_eq!(ours.stdout, theirs.stdout, "stdout differs, {what}");
        for (name, c, rs) in [("tree", &tree_c, &tree_r), ("descriptor", &desc_c, &desc_r)] {
            let (c, rs) = (util::read(c), util::read(rs));
            assert!(
                c == rs,
                "{name} differs at byte {} (fsverity {} bytes, fsverity-fuse {} bytes), {what}",
                first_difference(&c, &rs),
                c.len(),
                rs.len()
            );
        }
    }
    eprintln!(
        "{CASES} cases, {} MiB: {sparse} sparse, {parallel} of 4 MiB or more, {sha512} SHA-512",
        bytes >> 20
    );
}
