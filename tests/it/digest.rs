//! `fsverity-fuse digest` and the format library, checked against fsverity-utils:
//! pinned known answers, a differential run against `/usr/bin/fsverity`, the
//! command line's handling of every kind of bad invocation, and descriptor
//! decoding fed with garbage.

mod cli;
mod descriptor;
mod differential;
mod known_answers;
