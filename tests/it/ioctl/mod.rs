//! The kernel's fs-verity ioctls through a live mount: FS_IOC_ENABLE_VERITY,
//! FS_IOC_MEASURE_VERITY, FS_IOC_GETFLAGS and FS_IOC_READ_VERITY_METADATA, as
//! the stock `fsverity` tool and raw calls make them, checked against
//! fsverity-utils' userspace digests and the kernel's documented errors.

mod enable;
mod errors;
mod metadata;
mod races;
pub(crate) mod raw;
pub(crate) mod tools;
