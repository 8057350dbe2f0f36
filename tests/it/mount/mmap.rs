//! Memory-mapped reads: a corrupted page delivers SIGBUS to whoever touches it,
//! the other pages of the same mapping read correctly. Each touch runs in its own
//! Python process, so the signal kills the child and not the test.

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Output};

use super::harness::require_fuse;
use super::support::{PAGE, data, flip_byte, scratch_with_store};

/// Maps the file read-only and writes the listed pages (page numbers after the
/// path) to standard output, touching them in that order.
const TOUCH_PAGES: &str = r#"
import mmap, sys
with open(sys.argv[1], "rb") as f:
    m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
    for page in map(int, sys.argv[2:]):
        sys.stdout.buffer.write(m[page * 4096:(page + 1) * 4096])
        sys.stdout.buffer.flush()
"#;

fn touch(path: &std::path::Path, pages: &[u64]) -> Output {
    Command::new("python3")
        .arg("-c")
        .arg(TOUCH_PAGES)
        .arg(path)
        .args(pages.iter().map(u64::to_string))
        .output()
        .expect("run python3")
}

#[test]
fn touching_a_corrupted_page_is_sigbus_and_other_pages_read_correctly() {
    require_fuse!();
    let s = scratch_with_store();
    let size = 40 * PAGE as usize + 123;
    let content = data(size, 11);
    s.write("f", &content);
    s.enable(&["f"], &[]);
    flip_byte(&s.b("f"), 20 * PAGE + 7);
    let m = s.mount(&[]);
    let page = |i: u64| {
        let start = (i * PAGE) as usize;
        &content[start..(start + PAGE as usize).min(size)]
    };

    // Every good page, including those right before and after the bad one and the
    // partial last page, in one mapping.
    let good: Vec<u64> = (0..41).filter(|&p| p != 20).collect();
    let out = touch(&m.p("f"), &good);
    assert!(
        out.status.success(),
        "{:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let expected: Vec<u8> = good.iter().flat_map(|&p| page(p).iter().copied()).collect();
    assert!(
        out.stdout == expected,
        "mapped pages differ from the original"
    );

    // The bad page: SIGBUS, after the good page touched before it was delivered.
    let out = touch(&m.p("f"), &[19, 20, 21]);
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGBUS),
        "{:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout == page(19), "page 19 before the fault");

    // Failed pages are not cached: the next mapping faults again.
    let out = touch(&m.p("f"), &[20]);
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGBUS),
        "second touch: {:?}",
        out.status
    );
    assert!(out.stdout.is_empty());
}
