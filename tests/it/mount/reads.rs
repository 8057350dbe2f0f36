//! Verified reads return exactly the original bytes: every hash algorithm, block
//! size and salt, sizes at block and tree-level boundaries, reads at odd offsets
//! and lengths, and sparse files.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};

use super::harness::require_fuse;
use super::support::{self, data, pread, scratch_with_store, slice_at};

/// (algorithm, digest size) of every algorithm `enable --hash-alg` takes.
const ALGORITHMS: [(&str, u64); 3] = [("sha256", 32), ("sha512", 64), ("blake3", 32)];
const BLOCK_SIZES: [u64; 3] = [1024, 4096, 65536];
/// Files above this size are left out of the matrix (to keep the suite fast).
const MAX_SIZE: u64 = 6 << 20;

/// The sizes worth testing for one tree shape: empty, one byte, around the page
/// and the block, around the first two tree-level boundaries, and a few MiB.
fn sizes(block: u64, digest: u64) -> Vec<u64> {
    let fanout = block / digest;
    let mut sizes = vec![0, 1, 4095, 4096, 4097, block - 1, block, block + 1];
    for level_end in [fanout * block, fanout * fanout * block] {
        sizes.extend([level_end, level_end + 1]);
    }
    sizes.push(3 * (1 << 20) + 17);
    sizes.retain(|&s| s <= MAX_SIZE);
    sizes.sort_unstable();
    sizes.dedup();
    sizes
}

/// Reads at awkward places: unaligned, straddling pages and blocks, at and past
/// the end, plus pseudo-random ones.
fn odd_reads(size: u64, block: u64, seed: u64) -> Vec<(u64, usize)> {
    let mut reads = vec![
        (0, 1),
        (1, 4095),
        (4095, 2),
        (block.saturating_sub(1), 2),
        (block + 3, 5000),
        (size.saturating_sub(1), 10),
        (size.saturating_sub(4097), 8192),
        (size, 7),
        (size + 12345, 100),
    ];
    let r = data(64, seed);
    for chunk in r.chunks_exact(8) {
        let v = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        let offset = v % (size + 1);
        let len = (v >> 32) % 200_000 + 1;
        reads.push((offset, len as usize));
    }
    reads
}

#[test]
fn every_algorithm_block_size_and_salt_reads_back_exactly() {
    require_fuse!();
    let s = scratch_with_store();
    let mut files = Vec::new();
    let mut seed = 1;
    for (alg, digest) in ALGORITHMS {
        for block in BLOCK_SIZES {
            for salt in [None, Some("5eed0f")] {
                let dir = format!("{alg}-{block}-{}", salt.unwrap_or("nosalt"));
                let mut names = Vec::new();
                for size in sizes(block, digest) {
                    let name = format!("{dir}/{size}");
                    s.write(&name, &data(size as usize, seed));
                    files.push((name.clone(), size, seed, block));
                    names.push(name);
                    seed += 1;
                }
                let block_arg = block.to_string();
                let mut args = vec!["--hash-alg", alg, "--block-size", &block_arg];
                if let Some(salt) = salt {
                    args.extend(["--salt", salt]);
                }
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                s.enable(&names, &args);
            }
        }
    }
    let m = s.mount(&[]);
    for (name, size, seed, block) in &files {
        let expected = data(*size as usize, *seed);
        let path = m.p(name);
        // Really a verity file: the mount refuses to open it for writing.
        let err = OpenOptions::new()
            .write(true)
            .open(&path)
            .expect_err("verity files cannot be opened for writing");
        assert_eq!(support::errno(&err), libc::EPERM, "{name}: {err}");
        assert_eq!(fs::metadata(&path).expect("stat").len(), *size, "{name}");
        let whole = fs::read(&path).unwrap_or_else(|e| panic!("read {name}: {e}"));
        assert!(whole == expected, "{name}: whole-file read differs");
        let f = File::open(&path).expect("open");
        for (offset, len) in odd_reads(*size, *block, *seed) {
            let got = pread(&f, offset, len).unwrap_or_else(|e| panic!("{name} @{offset}: {e}"));
            assert!(
                got == slice_at(&expected, offset, len),
                "{name}: pread({offset}, {len}) returned {} wrong bytes",
                got.len()
            );
        }
    }
    assert!(!m.log().contains("CORRUPTED"), "log: {}", m.log());
}

#[test]
fn unaligned_direct_io_reads_are_verified_and_exact() {
    // O_DIRECT bypasses the page cache: the daemon gets the caller's own offsets
    // and lengths, none of them block- or page-aligned.
    require_fuse!();
    let s = scratch_with_store();
    let size = 700_001;
    let expected = data(size, 99);
    s.write("f", &expected);
    s.enable(&["f"], &["--block-size", "1024"]);
    let m = s.mount(&[]);
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(m.p("f"))
        .expect("open O_DIRECT");
    for (offset, len) in odd_reads(size as u64, 1024, 5) {
        let got = pread(&f, offset, len).unwrap_or_else(|e| panic!("@{offset}+{len}: {e}"));
        assert!(got == slice_at(&expected, offset, len), "@{offset}+{len}");
    }
}

#[test]
fn sparse_verity_files_read_back_with_their_holes() {
    require_fuse!();
    let s = scratch_with_store();
    // Data islands separated by holes, one of them unaligned, and a hole at the end.
    let size: u64 = 9 * (1 << 20) + 333;
    let islands: [(u64, usize); 4] = [
        (0, 5000),
        (1 << 20, 4096),
        (5 * (1 << 20) + 77, 70_000),
        (8 << 20, 1),
    ];
    let mut expected = vec![0u8; size as usize];
    {
        let f = File::create(s.b("sparse")).expect("create");
        f.set_len(size).expect("set_len");
        for (i, (offset, len)) in islands.iter().enumerate() {
            let bytes = data(*len, 1000 + i as u64);
            f.write_all_at(&bytes, *offset).expect("write island");
            expected[*offset as usize..*offset as usize + len].copy_from_slice(&bytes);
        }
    }
    // The backing file really has holes.
    let allocated = fs::metadata(s.b("sparse")).expect("stat").blocks() * 512;
    assert!(
        allocated < size / 4,
        "backing file is not sparse: {allocated} bytes allocated"
    );
    s.enable(&["sparse"], &[]);
    let m = s.mount(&[]);
    assert_eq!(fs::metadata(m.p("sparse")).expect("stat").len(), size);
    assert!(
        fs::read(m.p("sparse")).expect("read") == expected,
        "whole read differs"
    );
    let f = File::open(m.p("sparse")).expect("open");
    for (offset, len) in odd_reads(size, 4096, 77) {
        let got = pread(&f, offset, len).expect("pread");
        assert!(got == slice_at(&expected, offset, len), "@{offset}+{len}");
    }
    // Holes are reported as in the backing file, within the verified size.
    let backing = File::open(s.b("sparse")).expect("open backing");
    for start in [0, 8192, (1 << 20) + 100, 6 << 20] {
        for whence in [
            rustix::fs::SeekFrom::Data(start),
            rustix::fs::SeekFrom::Hole(start),
        ] {
            let through_mount = rustix::fs::seek(&f, whence);
            let direct = rustix::fs::seek(&backing, whence);
            assert_eq!(through_mount, direct, "lseek {whence:?}");
        }
    }
}

#[test]
fn a_two_level_tree_of_64k_blocks_reads_back_at_its_boundaries() {
    // With 64 KiB blocks and SHA-512, one tree block holds 1024 hashes: the second
    // level starts above 64 MiB. A sparse file keeps this cheap to write.
    require_fuse!();
    let s = scratch_with_store();
    let block: u64 = 65536;
    let level_end = 1024 * block;
    let size = level_end + 1;
    let islands: [(u64, usize); 4] = [
        (0, 70_000),
        (level_end / 2 - 3, 10),
        (level_end - 5000, 5000),
        (level_end, 1),
    ];
    let mut expected = vec![0u8; size as usize];
    {
        let f = File::create(s.b("big")).expect("create");
        f.set_len(size).expect("set_len");
        for (i, (offset, len)) in islands.iter().enumerate() {
            let bytes = data(*len, 40 + i as u64);
            f.write_all_at(&bytes, *offset).expect("write");
            expected[*offset as usize..*offset as usize + len].copy_from_slice(&bytes);
        }
    }
    s.enable(&["big"], &["--hash-alg", "sha512", "--block-size", "65536"]);
    let g = support::Geometry::new(size, block, 64);
    assert_eq!(g.levels, [2, 1]);
    support::only_tree_file(&s, g.tree_size());
    let m = s.mount(&[]);
    assert_eq!(fs::metadata(m.p("big")).expect("stat").len(), size);
    let f = File::open(m.p("big")).expect("open");
    let mut reads: Vec<(u64, usize)> = islands.iter().map(|&(o, l)| (o, l)).collect();
    reads.extend([
        (level_end - 1, 2),
        (level_end - block, 2 * block as usize),
        (size, 10),
    ]);
    reads.extend(
        odd_reads(size, block, 4)
            .into_iter()
            .map(|(o, l)| (o, l.min(70_000))),
    );
    for (offset, len) in reads {
        let got = pread(&f, offset, len).unwrap_or_else(|e| panic!("@{offset}+{len}: {e}"));
        assert!(got == slice_at(&expected, offset, len), "@{offset}+{len}");
    }
}
