//! The only module with `unsafe` code: thin wrappers over libc calls that std
//! does not offer. Every block states why it is sound.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// `lseek(SEEK_DATA)`: the offset of the next data at or after `offset`, or
/// `None` if there is none (only a hole up to the end).
pub(crate) fn seek_data(file: &File, offset: u64) -> io::Result<Option<u64>> {
    let offset = i64::try_from(offset).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: lseek on a valid open descriptor; no memory is passed.
    let r = unsafe { libc::lseek(file.as_raw_fd(), offset, libc::SEEK_DATA) };
    if r < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ENXIO) => Ok(None),
            _ => Err(e),
        };
    }
    Ok(Some(r as u64))
}
