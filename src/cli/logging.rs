//! Log setup shared by every command: the tracing subscriber, and the bridge
//! that carries fuser's `log` records into it.
//!
//! fuser logs "Failed to send FUSE reply: No such file or directory" at ERROR
//! whenever a reply finds its request gone (the caller was interrupted or
//! killed): normal operation, so the bridge lowers exactly that record to
//! DEBUG. Every other record passes unchanged.

use tracing_log::{AsLog, LogTracer};

/// The filter for `-v` counts; `RUST_LOG` overrides.
pub(super) fn filter(verbose: u8) -> tracing_subscriber::EnvFilter {
    let default = match verbose {
        0 => "warn,fuser=error",
        1 => "info,fuser=warn",
        2 => "debug",
        _ => "trace",
    };
    tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default))
}

/// Makes `subscriber` the process's, and routes `log` records (fuser's) to it.
pub(super) fn install(subscriber: impl tracing::Subscriber + Send + Sync + 'static) {
    if tracing::subscriber::set_global_default(subscriber).is_ok()
        && log::set_boxed_logger(Box::new(FuserLog(LogTracer::new()))).is_ok()
    {
        log::set_max_level(tracing::level_filters::LevelFilter::current().as_log());
    }
}

/// The `log` to `tracing` bridge, with the one lowered record.
struct FuserLog(LogTracer);

/// The level a `log` record is reported at.
fn level_of(record: &log::Record<'_>) -> log::Level {
    let gone = record.level() == log::Level::Error && record.target().starts_with("fuser") && {
        let message = record.args().to_string();
        message.starts_with("Failed to send FUSE reply")
            && message.contains(&std::io::Error::from_raw_os_error(libc::ENOENT).to_string())
    };
    if gone {
        log::Level::Debug
    } else {
        record.level()
    }
}

impl log::Log for FuserLog {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        self.0.enabled(metadata)
    }

    fn log(&self, record: &log::Record<'_>) {
        let level = level_of(record);
        if level == record.level() {
            return self.0.log(record);
        }
        let lowered = log::Record::builder()
            .args(*record.args())
            .level(level)
            .target(record.target())
            .module_path(record.module_path())
            .file(record.file())
            .line(record.line())
            .build();
        if self.0.enabled(lowered.metadata()) {
            self.0.log(&lowered);
        }
    }

    fn flush(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn level(target: &str, level: log::Level, args: std::fmt::Arguments<'_>) -> log::Level {
        level_of(
            &log::Record::builder()
                .args(args)
                .level(level)
                .target(target)
                .build(),
        )
    }

    #[test]
    fn only_replies_to_gone_requests_are_lowered() {
        let gone = std::io::Error::from_raw_os_error(libc::ENOENT);
        let other = std::io::Error::from_raw_os_error(libc::EINVAL);
        assert_eq!(
            level(
                "fuser::reply",
                log::Level::Error,
                format_args!("Failed to send FUSE reply: {gone}")
            ),
            log::Level::Debug
        );
        assert_eq!(
            level(
                "fuser::reply",
                log::Level::Error,
                format_args!("Failed to send FUSE reply: {other}")
            ),
            log::Level::Error
        );
        assert_eq!(
            level(
                "fuser::session",
                log::Level::Error,
                format_args!("something else: {gone}")
            ),
            log::Level::Error
        );
        assert_eq!(
            level(
                "other",
                log::Level::Error,
                format_args!("Failed to send FUSE reply: {gone}")
            ),
            log::Level::Error
        );
    }
}
