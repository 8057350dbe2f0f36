//! `fsverity-fuse completions SHELL`: the shell completion script, generated
//! with clap_complete from the one clap definition ([`super::command`]).
//! Packages install them where each shell looks (Debian:
//! /usr/share/bash-completion/completions/fsverity-fuse,
//! /usr/share/zsh/vendor-completions/_fsverity-fuse,
//! /usr/share/fish/vendor_completions.d/fsverity-fuse.fish).

use std::io::Write;

use anyhow::{Context, Result};
use clap::Args;
use clap_complete::Shell;

/// Print a shell completion script.
#[derive(Args, Debug)]
pub(crate) struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell.
    #[arg(value_name = "SHELL")]
    shell: Shell,
}

/// Runs the subcommand.
pub(crate) fn run(args: &CompletionsArgs) -> Result<bool> {
    let mut script = Vec::new();
    generate(args.shell, &mut script);
    let mut out = std::io::stdout().lock();
    out.write_all(&script)
        .and_then(|()| out.flush())
        .context("writing to standard output")?;
    Ok(true)
}

/// Writes the completion script for `shell` into `out`.
pub(crate) fn generate(shell: Shell, out: &mut Vec<u8>) {
    let mut cmd = super::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "fsverity-fuse", &mut script);
    if shell == Shell::Bash {
        script = fix_bash_state_names(&script);
    }
    out.extend_from_slice(&script);
}

/// clap_complete (4.6.12) spells the bash script's state for a subcommand of
/// a hyphenated program two ways: the loop that reads the words sets
/// `fsverity__fuse__subcmd__mount`, the `case` arms test
/// `fsverity__subcmd__fuse__subcmd__mount`, so no subcommand's options ever
/// complete (clap-rs/clap#6421, open). Spell the arms as the loop does; once
/// clap_complete is fixed this replaces nothing.
fn fix_bash_state_names(script: &[u8]) -> Vec<u8> {
    String::from_utf8_lossy(script)
        .replace("fsverity__subcmd__fuse", "fsverity__fuse")
        .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shell_gets_a_script_naming_the_subcommands() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let mut script = Vec::new();
            generate(shell, &mut script);
            let text = String::from_utf8(script).expect("UTF-8");
            for word in ["fsverity-fuse", "enable-rpm", "mkimage", "trusted-key"] {
                assert!(text.contains(word), "{shell}: {word} missing");
            }
        }
    }

    #[test]
    fn bash_case_arms_use_the_state_names_the_loop_sets() {
        let mut script = Vec::new();
        generate(Shell::Bash, &mut script);
        let text = String::from_utf8(script).expect("UTF-8");
        assert!(
            text.contains("cmd=\"fsverity__fuse__subcmd__mount\""),
            "loop changed"
        );
        assert!(
            text.contains("fsverity__fuse__subcmd__mount)"),
            "no case arm for mount"
        );
        assert!(
            !text.contains("__subcmd__fuse"),
            "mismatched state names remain"
        );
    }
}
