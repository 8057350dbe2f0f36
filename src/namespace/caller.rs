//! What a calling process is, from /proc: its supplementary groups (for
//! permission checks the kernel leaves to the daemon) and whether a fatal
//! signal is ending it (an enable must then stop, as the kernel's does).

use super::Caller;

fn proc_status(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/status")).ok()
}

/// Supplementary groups of a process (from /proc).
pub(crate) fn groups_of(pid: u32) -> Vec<u32> {
    proc_status(pid)
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Groups:"))
        .map(|g| {
            g.split_whitespace()
                .filter_map(|n| n.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Whether the thread `tid` is being killed: SIGKILL pending (the kernel
/// queues it on every thread of a process a fatal signal ends), or gone. The
/// kernel's enable stops on `fatal_signal_pending`; a FUSE caller killed in
/// the ioctl waits, unkillable, for the daemon's answer, so the daemon must
/// notice by itself.
pub(crate) fn being_killed(tid: u32) -> bool {
    const SIGKILL_BIT: u64 = 1 << (libc::SIGKILL - 1);
    let Some(status) = proc_status(tid) else {
        return true;
    };
    status.lines().any(|l| {
        let pending = l
            .strip_prefix("SigPnd:")
            .or_else(|| l.strip_prefix("ShdPnd:"));
        pending
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            .is_some_and(|bits| bits & SIGKILL_BIT != 0)
    }) || status
        .lines()
        .find_map(|l| l.strip_prefix("State:"))
        .is_some_and(|s| s.trim_start().starts_with(['Z', 'X']))
}

impl Caller {
    /// The caller's supplementary groups.
    pub(crate) fn groups(&self) -> Vec<u32> {
        groups_of(self.pid)
    }

    /// Whether the calling process is being killed (or gone).
    pub(crate) fn being_killed(&self) -> bool {
        being_killed(self.pid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_thread_is_not_being_killed() {
        assert!(!being_killed(std::process::id()));
        assert!(being_killed(u32::MAX - 7), "no such process");
    }

    #[test]
    fn groups_come_from_proc() {
        let mine = groups_of(std::process::id());
        let expected: Vec<u32> = rustix::process::getgroups()
            .expect("getgroups")
            .into_iter()
            .map(|g| g.as_raw())
            .collect();
        assert_eq!(mine, expected);
    }
}
