//! `fsverity-fuse digest` against fsverity-utils.
