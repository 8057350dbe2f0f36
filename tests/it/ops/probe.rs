//! The probe: this test binary run again inside another namespace or as
//! another user (`$PROBE --exact ops::probe::run_probe_from_env`). It performs
//! the operations listed in an environment variable and prints one answer per
//! operation (data length and SHA-256, or the errno), so the tests compare
//! errnos and digests instead of the messages of shell tools.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::util::sha256_hex;

/// The environment variable holding the operations (one per line:
/// `label<TAB>op<TAB>path`).
pub(super) const SPEC_VAR: &str = "FSVERITY_FUSE_OPS_PROBE";

/// The prefix of answer lines on standard output.
const MARK: &str = "PROBE\t";

/// An operation the probe performs.
#[derive(Clone, Debug)]
pub(super) enum Op {
    /// Read a whole file.
    Read(PathBuf),
    /// Create a file and write a byte to it.
    Write(PathBuf),
    /// The mountinfo entry of a mount point.
    MountInfo(PathBuf),
    /// getxattr of the status xattr on a mount root.
    Status(PathBuf),
    /// argv[0] of the processes whose command line mentions a path.
    Processes(PathBuf),
}

/// What an operation returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Answer {
    /// A read returned this many bytes with this SHA-256.
    Data {
        /// Length.
        len: usize,
        /// Lower-case hex SHA-256.
        sha256: String,
    },
    /// The write succeeded.
    Written,
    /// The mount: filesystem type, source, mount and superblock options.
    Mount {
        /// Type, e.g. `fuse.fsverity-fuse`.
        fstype: String,
        /// Source (the backing directory).
        source: String,
        /// Per-mount options, then superblock options.
        options: String,
    },
    /// The status JSON.
    Status(String),
    /// argv[0] of each process found.
    Processes(Vec<String>),
    /// The operation failed with this errno (for MountInfo: ENOENT = no mount).
    Errno(i32),
}

impl Answer {
    /// The answer a read of `bytes` gives.
    pub(super) fn data(bytes: &[u8]) -> Self {
        Self::Data {
            len: bytes.len(),
            sha256: sha256_hex(bytes),
        }
    }
}

/// Encodes `ops` for [`SPEC_VAR`].
pub(super) fn spec<L: AsRef<str>>(ops: &[(L, Op)]) -> String {
    ops.iter()
        .map(|(label, op)| {
            let label = label.as_ref();
            let (name, path) = match op {
                Op::Read(p) => ("read", p),
                Op::Write(p) => ("write", p),
                Op::MountInfo(p) => ("mountinfo", p),
                Op::Status(p) => ("status", p),
                Op::Processes(p) => ("processes", p),
            };
            format!("{label}\t{name}\t{}\n", path.display())
        })
        .collect()
}

/// Splits a probe run's standard output into answers (by label) and other lines.
pub(super) fn parse(stdout: &str) -> (HashMap<String, Answer>, String) {
    let mut answers = HashMap::new();
    let mut rest = String::new();
    for line in stdout.lines() {
        let Some(fields) = line.strip_prefix(MARK) else {
            rest.push_str(line);
            rest.push('\n');
            continue;
        };
        let f: Vec<&str> = fields.split('\t').collect();
        let answer = match f.get(1..).unwrap_or_default() {
            ["data", len, sha] => Answer::Data {
                len: len.parse().expect("length"),
                sha256: (*sha).to_owned(),
            },
            ["written"] => Answer::Written,
            ["mount", fstype, source, options] => Answer::Mount {
                fstype: (*fstype).to_owned(),
                source: (*source).to_owned(),
                options: (*options).to_owned(),
            },
            ["status", json] => Answer::Status((*json).to_owned()),
            ["processes", argv0 @ ..] => {
                Answer::Processes(argv0.iter().map(|a| (*a).to_owned()).collect())
            }
            ["errno", n] => Answer::Errno(n.parse().expect("errno")),
            other => panic!("unparsable probe answer {other:?}"),
        };
        answers.insert(f[0].to_owned(), answer);
    }
    (answers, rest)
}

fn errno(e: &io::Error) -> Answer {
    Answer::Errno(e.raw_os_error().unwrap_or(0))
}

fn mountinfo(mnt: &Path) -> Answer {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    // Fields: id parent major:minor root mountpoint options [tags] - type source superopts
    let entry = info.lines().rev().find_map(|line| {
        let fields: Vec<&str> = line.split(' ').collect();
        if fields.get(4).map(Path::new) != Some(mnt) {
            return None;
        }
        let sep = fields.iter().position(|f| *f == "-")?;
        Some(Answer::Mount {
            fstype: (*fields.get(sep + 1)?).to_owned(),
            source: (*fields.get(sep + 2)?).to_owned(),
            options: format!("{},{}", fields.get(5)?, fields.get(sep + 3)?),
        })
    });
    entry.unwrap_or(Answer::Errno(libc::ENOENT))
}

fn perform(op: &str, path: &Path) -> Answer {
    match op {
        "read" => fs::read(path).map_or_else(|e| errno(&e), |b| Answer::data(&b)),
        "write" => fs::write(path, b"x").map_or_else(|e| errno(&e), |()| Answer::Written),
        "mountinfo" => mountinfo(path),
        "status" => {
            let mut buf = vec![0u8; 1 << 16];
            match rustix::fs::getxattr(path, "user.fsverity-fuse.status", &mut buf[..]) {
                Ok(n) => {
                    Answer::Status(String::from_utf8_lossy(&buf[..n]).replace(['\t', '\n'], " "))
                }
                Err(e) => Answer::Errno(e.raw_os_error()),
            }
        }
        "processes" => Answer::Processes(
            super::support::processes_mentioning(path)
                .into_iter()
                .filter_map(|(_, argv)| argv.into_iter().next())
                .collect(),
        ),
        other => panic!("unknown probe operation '{other}'"),
    }
}

fn encode(answer: &Answer) -> String {
    match answer {
        Answer::Data { len, sha256 } => format!("data\t{len}\t{sha256}"),
        Answer::Written => "written".into(),
        Answer::Mount {
            fstype,
            source,
            options,
        } => format!("mount\t{fstype}\t{source}\t{options}"),
        Answer::Status(json) => format!("status\t{json}"),
        Answer::Processes(argv0) => {
            let mut s = "processes".to_owned();
            for a in argv0 {
                s.push('\t');
                s.push_str(a);
            }
            s
        }
        Answer::Errno(n) => format!("errno\t{n}"),
    }
}

/// Not a test by itself: the program the namespace tests run. Without
/// [`SPEC_VAR`] (a normal test run) it does nothing.
#[test]
fn run_probe_from_env() {
    let Ok(spec) = std::env::var(SPEC_VAR) else {
        return;
    };
    for line in spec.lines().filter(|l| !l.is_empty()) {
        let mut f = line.splitn(3, '\t');
        let (Some(label), Some(op), Some(path)) = (f.next(), f.next(), f.next()) else {
            panic!("bad probe line {line:?}");
        };
        println!("{MARK}{label}\t{}", encode(&perform(op, Path::new(path))));
    }
}
