//! Sixteen threads reading random ranges of several verity files at once, through
//! shared and private descriptors, buffered and O_DIRECT, with the page cache
//! dropped now and then so reads keep reaching the daemon. One file has a bad
//! block: reads that cover it fail with EIO, every other read is exact.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::harness::require_fuse;
use super::support::{PAGE, data, errno, flip_byte, pread, scratch_with_store, slice_at};

const THREADS: u64 = 16;
const READS_PER_THREAD: u64 = 150;

/// (name, size, enable arguments)
const FILES: [(&str, usize, &[&str]); 5] = [
    ("a", 3 * (1 << 20) + 5, &[]),
    (
        "b",
        (1 << 20) + 77,
        &["--hash-alg", "sha512", "--block-size", "1024"],
    ),
    (
        "c",
        2 << 20,
        &["--hash-alg", "blake3", "--block-size", "65536"],
    ),
    ("d", 10_000, &["--salt", "00112233"]),
    ("tampered", (1 << 20) + 1, &[]),
];
/// The page of `tampered` whose (4 KiB) block is damaged.
const BAD_PAGE: u64 = 100;

fn concurrent_random_reads(mount_args: &[&str]) {
    let s = scratch_with_store();
    let contents: Vec<Vec<u8>> = FILES
        .iter()
        .enumerate()
        .map(|(i, (name, size, args))| {
            let bytes = data(*size, 500 + i as u64);
            s.write(name, &bytes);
            s.enable(&[name], args);
            bytes
        })
        .collect();
    flip_byte(&s.b("tampered"), BAD_PAGE * PAGE + 9);
    let m = s.mount(mount_args);
    let shared: Vec<File> = FILES
        .iter()
        .map(|(name, ..)| File::open(m.p(name)).expect("open shared"))
        .collect();
    let open = |path: &Path, direct: bool| {
        let flags = if direct { libc::O_DIRECT } else { 0 };
        OpenOptions::new()
            .read(true)
            .custom_flags(flags)
            .open(path)
            .expect("open private")
    };

    std::thread::scope(|scope| {
        for t in 0..THREADS {
            let (shared, contents, m, open) = (&shared, &contents, &m, &open);
            scope.spawn(move || {
                let random = data(READS_PER_THREAD as usize * 24, 7000 + t);
                for (i, r) in random.chunks_exact(24).enumerate() {
                    let word = |k: usize| {
                        u64::from_le_bytes(r[k * 8..k * 8 + 8].try_into().expect("8 bytes"))
                    };
                    let file = (word(0) % FILES.len() as u64) as usize;
                    let expected = &contents[file];
                    let offset = word(1) % (expected.len() as u64 + 10);
                    // Mostly small reads, sometimes up to 1 MiB.
                    let len =
                        1 + (word(2) % if word(2) % 8 == 0 { 1 << 20 } else { 20_000 }) as usize;
                    let how = word(0) >> 32;
                    let path = m.p(FILES[file].0);
                    let got = match how % 3 {
                        0 => pread(&shared[file], offset, len),
                        1 => pread(&open(&path, false), offset, len),
                        _ => pread(&open(&path, true), offset, len),
                    };
                    let end = (offset + len as u64).min(expected.len() as u64);
                    let covers_bad = FILES[file].0 == "tampered"
                        && offset < (BAD_PAGE + 1) * PAGE
                        && end > BAD_PAGE * PAGE;
                    match got {
                        Ok(bytes) => {
                            assert!(
                                !covers_bad,
                                "thread {t} read {i}: bad block read without error"
                            );
                            assert!(
                                bytes == slice_at(expected, offset, len),
                                "thread {t} read {i}: {}@{offset}+{len} (mode {}) wrong bytes",
                                FILES[file].0,
                                how % 3
                            );
                        }
                        Err(e) => {
                            assert!(
                                covers_bad,
                                "thread {t} read {i}: {}@{offset}+{len}: {e}",
                                FILES[file].0
                            );
                            assert_eq!(errno(&e), libc::EIO, "{e}");
                        }
                    }
                    if i % 20 == 0 {
                        // Drop the cached pages so later reads reach the daemon again.
                        rustix::fs::fadvise(&shared[file], 0, None, rustix::fs::Advice::DontNeed)
                            .expect("fadvise");
                    }
                }
            });
        }
    });
    drop(shared);
    let status = m.unmount();
    assert!(status.success(), "daemon exit: {status}");
}

#[test]
fn sixteen_readers_on_a_default_mount() {
    require_fuse!();
    concurrent_random_reads(&[]);
}

#[test]
fn sixteen_readers_on_four_daemon_threads() {
    require_fuse!();
    concurrent_random_reads(&["--threads", "4"]);
}

#[test]
fn sixteen_readers_on_one_daemon_thread_with_a_tiny_tree_cache() {
    // 128 KiB of tree cache in 16 shards: blocks are evicted all the time, so tree
    // blocks are re-read and re-verified under contention.
    require_fuse!();
    concurrent_random_reads(&["--threads", "1", "--cache-size", "128K"]);
}
