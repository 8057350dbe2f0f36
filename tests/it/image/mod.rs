//! Composefs images: `mkimage` and our reader against the kernel's EROFS and
//! overlayfs, and the reader against independent writers.

pub(crate) mod kernel;
pub(crate) mod view;

mod independent;
pub(crate) mod mkimage;
mod mount;
