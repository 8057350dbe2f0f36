//! Progress bars for long work (`verify`, `enable`, `enable-rpm`, `mkimage`),
//! drawn on standard error only when a person is watching: standard error is
//! a terminal and the output is not meant for a program (`--json`). Piped or
//! redirected, the commands write no bar and no control characters.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

/// What a bar counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unit {
    /// Bytes hashed or checked.
    Bytes,
    /// Files processed.
    Files,
}

/// Whether to draw a bar: only for a terminal, and never with `--json`.
pub(crate) fn wanted(stderr_is_terminal: bool, json: bool) -> bool {
    stderr_is_terminal && !json
}

/// The bar's look for `unit`.
fn style(unit: Unit) -> Result<ProgressStyle, indicatif::style::TemplateError> {
    ProgressStyle::with_template(match unit {
        Unit::Bytes => "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} {wide_msg}",
        Unit::Files => "{bar:40} {pos}/{len} files {elapsed} {wide_msg}",
    })
}

/// A bar over `total` units, drawn only if `show`.
pub(crate) fn bar(total: u64, unit: Unit, show: bool) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    ProgressBar::new(total).with_style(style(unit).unwrap_or_else(|_| ProgressStyle::default_bar()))
}

/// A counter of files on standard error, for work whose total is not known
/// in advance, drawn if [`wanted`].
pub(crate) fn stderr_spinner(json: bool) -> ProgressBar {
    if !wanted(std::io::stderr().is_terminal(), json) {
        return ProgressBar::hidden();
    }
    let spinner = ProgressBar::new_spinner()
        .with_style(spinner_style().unwrap_or_else(|_| ProgressStyle::default_spinner()));
    // Keeps turning while one large file is hashed.
    spinner.enable_steady_tick(std::time::Duration::from_millis(200));
    spinner
}

fn spinner_style() -> Result<ProgressStyle, indicatif::style::TemplateError> {
    ProgressStyle::with_template("{spinner} {human_pos} files {elapsed} {wide_msg}")
}

/// A bar on standard error over `total` units, drawn if [`wanted`].
pub(crate) fn stderr_bar(total: u64, unit: Unit, json: bool) -> ProgressBar {
    bar(total, unit, wanted(std::io::stderr().is_terminal(), json))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drawn_only_on_a_terminal_without_json() {
        assert!(wanted(true, false));
        assert!(!wanted(false, false), "piped: no bar");
        assert!(!wanted(true, true), "--json: no bar");
        assert!(!wanted(false, true));
    }

    #[test]
    fn a_bar_not_wanted_is_hidden_and_the_templates_parse() {
        assert!(bar(10, Unit::Bytes, false).is_hidden());
        spinner_style().expect("spinner template");
        for unit in [Unit::Bytes, Unit::Files] {
            style(unit).unwrap_or_else(|e| panic!("{unit:?}: {e}"));
            let shown = bar(10, unit, true);
            assert_eq!(shown.length(), Some(10));
        }
    }
}
