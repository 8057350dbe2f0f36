//! The `fsverity-fuse` binary: everything lives in the library.

fn main() -> std::process::ExitCode {
    fsverity_fuse::cli::main()
}
