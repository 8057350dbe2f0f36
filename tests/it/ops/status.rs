//! `fsverity-fuse status`: the counters are exact (blocks and bytes verified
//! are what was read, opens are counted by kind, failures by corrupted read),
//! and `--prometheus` is valid text exposition whose values match `--json`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::num::NonZeroU64;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::support::{FIXTURE_SIZE, fixtures, scratch};
use crate::mount::harness::require_fuse;
use crate::mount::support::errno;
use crate::util::run_bin;

/// The status of the mount at `mnt`, from `status --json`.
fn status(mnt: &Path) -> serde_json::Value {
    let out = run_bin(["status".as_ref(), mnt.as_os_str(), "--json".as_ref()]);
    out.expect_success();
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).expect("status --json parses");
    let st = doc[mnt.to_string_lossy().as_ref()].clone();
    assert!(st.is_object(), "no entry for {} in {doc}", mnt.display());
    st
}

/// The counters that reads change.
fn counts(st: &serde_json::Value) -> [u64; 5] {
    let c = |k: &str| {
        st["counters"][k]
            .as_u64()
            .unwrap_or_else(|| panic!("counter {k} in {st}"))
    };
    [
        c("blocks_verified"),
        c("bytes_verified"),
        c("files_opened_verity"),
        c("files_opened_plain"),
        c("verification_failures"),
    ]
}

#[test]
fn status_json_counts_exactly_the_blocks_and_bytes_read_opens_and_failures() {
    require_fuse!();
    let s = scratch();
    let f = fixtures(&s, &[]);
    let m = s.mount(&["--ro"]);
    let st = status(&s.mnt());
    assert_eq!(counts(&st), [0; 5], "{st}");
    assert_eq!(st["read_only"], true);
    assert_eq!(st["aborted"], false);
    assert_eq!(st["backing"], s.backing().to_string_lossy().as_ref());
    assert_eq!(st["version"], env!("CARGO_PKG_VERSION"));

    // One whole read: each of the 11 blocks verified once, every byte counted.
    assert_eq!(fs::read(m.p("good")).expect("read good"), f.good);
    let blocks = FIXTURE_SIZE.div_ceil(4096) as u64;
    assert_eq!(
        counts(&status(&s.mnt())),
        [blocks, FIXTURE_SIZE as u64, 1, 0, 0]
    );

    // One 4 KiB pread with the file's cached pages dropped and readahead off:
    // exactly one more block.
    let file = File::open(m.p("good")).expect("open good");
    let len = NonZeroU64::new(FIXTURE_SIZE as u64);
    rustix::fs::fadvise(&file, 0, len, rustix::fs::Advice::DontNeed).expect("fadvise");
    rustix::fs::fadvise(&file, 0, len, rustix::fs::Advice::Random).expect("fadvise");
    let mut page = vec![0u8; 4096];
    file.read_exact_at(&mut page, 5 * 4096).expect("pread");
    assert_eq!(page, f.good[5 * 4096..6 * 4096]);
    drop(file);
    assert_eq!(
        counts(&status(&s.mnt())),
        [blocks + 1, FIXTURE_SIZE as u64 + 4096, 2, 0, 0]
    );

    assert_eq!(fs::read(m.p("plain")).expect("read plain"), f.plain);
    let before = counts(&status(&s.mnt()));
    assert_eq!(before[2..4], [2, 1], "opens by kind");

    let e = fs::read(m.p("bad")).expect_err("corrupted read must fail");
    assert_eq!(errno(&e), libc::EIO, "{e}");
    let after = counts(&status(&s.mnt()));
    assert_eq!(after[2], 3, "the corrupted file's open is counted");
    assert!(after[4] >= 1, "no verification failure counted: {after:?}");
}

/// Parses Prometheus text exposition (format 0.0.4) for one mount point:
/// every sample `name{mountpoint="MNT"} value` preceded by exactly one
/// `# TYPE name counter|gauge`, counters named `_total`, each metric's lines in
/// one group. Returns value by metric name.
fn parse_exposition(text: &str, mnt: &Path) -> BTreeMap<String, u64> {
    let label = format!("mountpoint=\"{}\"", mnt.display());
    let (mut types, mut samples) = (BTreeMap::new(), BTreeMap::new());
    let (mut current, mut finished) = (String::new(), BTreeSet::new());
    for line in text.lines() {
        let name = if let Some(decl) = line.strip_prefix("# TYPE ") {
            let (name, kind) = decl
                .split_once(' ')
                .unwrap_or_else(|| panic!("bad TYPE line {line:?}"));
            assert!(["counter", "gauge"].contains(&kind), "{line:?}");
            assert!(
                types.insert(name.to_owned(), kind.to_owned()).is_none(),
                "second TYPE for {name}"
            );
            name.to_owned()
        } else {
            assert!(
                !line.starts_with('#') || line.starts_with("# HELP "),
                "unexpected comment {line:?}"
            );
            let Some((name, rest)) = line.split_once('{') else {
                panic!("bad sample line {line:?}")
            };
            let (labels, value) = rest
                .split_once("} ")
                .unwrap_or_else(|| panic!("bad sample {line:?}"));
            assert_eq!(labels, label, "{line:?}");
            let kind = types
                .get(name)
                .unwrap_or_else(|| panic!("{name}: sample before its TYPE line"));
            assert_eq!(
                kind == "counter",
                name.ends_with("_total"),
                "{name}: counters and only counters end in _total"
            );
            let value: u64 = value.parse().unwrap_or_else(|_| panic!("{line:?}: value"));
            assert!(
                samples.insert(name.to_owned(), value).is_none(),
                "{name}: second sample"
            );
            name.to_owned()
        };
        if name != current {
            assert!(!finished.contains(&name), "{name}: lines not in one group");
            finished.insert(std::mem::replace(&mut current, name));
        }
    }
    assert_eq!(
        types.keys().collect::<Vec<_>>(),
        samples.keys().collect::<Vec<_>>(),
        "TYPE lines without samples"
    );
    samples
}

#[test]
fn status_prometheus_is_text_exposition_matching_the_json_counters() {
    require_fuse!();
    let s = scratch();
    fixtures(&s, &[]);
    let m = s.mount(&["--ro"]);
    fs::read(m.p("good")).expect("read good");
    let _ = fs::read(m.p("bad"));
    let json = status(&s.mnt());
    let out = run_bin([
        "status".as_ref(),
        s.mnt().as_os_str(),
        "--prometheus".as_ref(),
    ]);
    out.expect_success();
    let samples = parse_exposition(&out.stdout, &s.mnt());
    let counters = json["counters"].as_object().expect("counters object");
    assert!(counters.len() >= 9, "{json}");
    for (name, value) in counters {
        // Values that go down (bytes held, reads in flight) or are maxima.
        let gauges = [
            "tree_cache_bytes",
            "read_ahead_bytes",
            "reads_in_flight",
            "read_request_max",
            "reads_in_flight_max",
        ];
        let metric = if gauges.contains(&name.as_str()) {
            format!("fsverity_fuse_{name}")
        } else {
            format!("fsverity_fuse_{name}_total")
        };
        assert_eq!(
            samples.get(&metric),
            value.as_u64().as_ref(),
            "{metric} vs --json {name}"
        );
    }
    for gauge in ["inodes", "open_handles", "uptime_seconds", "aborted"] {
        assert!(
            samples.contains_key(&format!("fsverity_fuse_{gauge}")),
            "{gauge} missing"
        );
    }
    assert_eq!(samples["fsverity_fuse_aborted"], 0);
}

#[test]
fn a_large_listing_reports_every_entry_once_and_keeps_no_reference_it_did_not_give() {
    // readdirplus looks entries up in parallel batches; those of a batch that do
    // not fit the reply must be forgotten again, or the daemon would keep inodes
    // the kernel never heard of (the `inodes` gauge counts them).
    require_fuse!();
    let s = scratch();
    let n = 700;
    let mut expected = BTreeMap::new();
    for i in 0..n {
        let name = format!("entry-with-a-longish-name-{i:04}");
        let content = vec![b'x'; i % 97];
        s.write(&format!("d/{name}"), &content);
        expected.insert(name, content.len() as u64);
    }
    s.enable(&["d/entry-with-a-longish-name-0005"], &[]);
    let m = s.mount(&["--ro"]);
    let mut seen = BTreeMap::new();
    for e in fs::read_dir(m.p("d")).expect("list through the mount") {
        let e = e.expect("entry");
        let size = e.metadata().expect("stat entry").len();
        let name = e.file_name().to_string_lossy().into_owned();
        assert!(seen.insert(name, size).is_none(), "an entry listed twice");
    }
    assert!(
        seen == expected,
        "listing or sizes differ from the backing directory"
    );
    let inodes = || status(&s.mnt())["inodes"].as_u64().expect("inodes gauge");
    // The root, the directory and each of its entries: nothing more.
    assert_eq!(inodes(), 2 + n as u64);
    // Once the kernel drops its dentries it forgets every reference it was given.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        fs::write("/proc/sys/vm/drop_caches", "2").expect("drop dentries and inodes");
        if inodes() <= 2 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "references kept after the kernel forgot: {} inodes",
            inodes()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    drop(m);
}
