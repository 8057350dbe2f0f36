//! Faults and hostile input found by independent test suites (xfstests, POSIX
//! conformance, an adversarial session): one module per finding, each test
//! failing on the code before its fix.

mod acl;
mod enable_errors;
mod fidelity;
mod identity;
mod remount;
mod resources;
mod store;
pub(crate) mod support;
