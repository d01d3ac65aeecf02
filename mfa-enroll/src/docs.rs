//! `generate-docs --out DIR`: the manual page and the shell completions,
//! generated from the clap definition so they never drift from the code.
//!
//! `mfa-enroll.1` holds the usual sections `clap_mangen` renders for the
//! top-level command, then a COMMANDS section that documents every command
//! (`key rotate`, `import oath`, ...) with its options in one page, and the
//! exit status. Completions are written for bash, zsh and fish.

use std::fmt::Write as _;
use std::fs::DirBuilder;
use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use clap::{Arg, Command, CommandFactory};
use clap_complete::Shell;
use roff::{bold, italic, roman, Roff};

use crate::cli::{Cli, EXIT_STATUS_HELP};
use crate::context::write_out;
use crate::error::CliError;

/// The files `generate-docs` writes, relative to `--out`.
pub const FILES: [&str; 4] = [
    "mfa-enroll.1",
    "mfa-enroll.bash",
    "_mfa-enroll",
    "mfa-enroll.fish",
];

/// Writes the manual page and the completions into `dir`.
pub fn generate(dir: &Path, out: &mut impl Write) -> Result<(), CliError> {
    let fail = |path: PathBuf| move |err| CliError::WriteDocs { path, err };
    if !dir.is_dir() {
        DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)
            .map_err(fail(dir.to_path_buf()))?;
    }
    let page = dir.join(FILES[0]);
    std::fs::write(&page, man_page()).map_err(fail(page.clone()))?;
    for (shell, name) in [
        (Shell::Bash, FILES[1]),
        (Shell::Zsh, FILES[2]),
        (Shell::Fish, FILES[3]),
    ] {
        let path = dir.join(name);
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "mfa-enroll", &mut buf);
        std::fs::write(&path, buf).map_err(fail(path.clone()))?;
    }
    let mut text = String::new();
    for name in FILES {
        let _ = writeln!(text, "Wrote {}", dir.join(name).display());
    }
    write_out(out, &text)
}

/// The whole `mfa-enroll(1)` page in roff.
pub fn man_page() -> Vec<u8> {
    let mut cmd = Cli::command();
    cmd.build();
    let man = clap_mangen::Man::new(cmd.clone())
        .section("1")
        .manual("pam_mfa");
    let mut buf = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = man.render_title(&mut buf);
    let _ = man.render_name_section(&mut buf);
    let _ = man.render_synopsis_section(&mut buf);
    let _ = man.render_description_section(&mut buf);
    let _ = man.render_options_section(&mut buf);

    let mut roff = Roff::default();
    roff.control("SH", ["COMMANDS"]);
    for sub in cmd.get_subcommands().filter(|s| shown(s)) {
        commands(&mut roff, "mfa-enroll", sub);
    }
    roff.control("SH", ["EXIT STATUS"]);
    for paragraph in EXIT_STATUS_HELP.split("\n\n") {
        roff.control("PP", [] as [&str; 0]);
        roff.control("nf", [] as [&str; 0]);
        roff.text([roman(paragraph)]);
        roff.control("fi", [] as [&str; 0]);
    }
    roff.control("SH", ["FILES"]);
    for (file, what) in [
        (
            "/etc/security/pam_mfa.toml",
            "the configuration, see pam_mfa.toml(5)",
        ),
        (
            "/etc/security/pam_mfa/master.key",
            "the master key (root, 0600)",
        ),
        (
            "/etc/security/pam_mfa/enroll.pub",
            "the enrollment public key (root, 0644)",
        ),
        (
            "/var/lib/pam_mfa/users/",
            "one encrypted record per uid (root, 0700)",
        ),
        (
            "/var/spool/pam_mfa/",
            "pending self-service enrollments, named by uid",
        ),
    ] {
        roff.control("TP", [] as [&str; 0]);
        roff.text([italic(file)]);
        roff.text([roman(what)]);
    }
    roff.control("SH", ["SEE ALSO"]);
    roff.text([
        bold("pam_mfa"),
        roman("(8), "),
        bold("pam_mfa.toml"),
        roman("(5), "),
        bold("oathtool"),
        roman("(1)"),
    ]);
    let _ = roff.to_writer(&mut buf);
    let _ = man.render_version_section(&mut buf);
    single_preamble(&buf)
}

/// Each `render_*` call of `clap_mangen` starts with the same two-line roff
/// preamble; the page needs it once.
fn single_preamble(page: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(page);
    let mut seen = Vec::new();
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        if line.starts_with(".ie \\n(.g .ds Aq") || line.starts_with(".el .ds Aq") {
            if seen.contains(&line) {
                continue;
            }
            seen.push(line);
        }
        out.push_str(line);
        out.push('\n');
    }
    out.into_bytes()
}

/// Documents `cmd` (reached as `prefix cmd`) and, for a group like `key`,
/// each of its commands instead.
fn commands(roff: &mut Roff, prefix: &str, cmd: &Command) {
    let path = format!("{prefix} {}", cmd.get_name());
    let subs: Vec<&Command> = cmd.get_subcommands().filter(|s| shown(s)).collect();
    if !subs.is_empty() {
        for sub in subs {
            commands(roff, &path, sub);
        }
        return;
    }
    roff.control("TP", [] as [&str; 0]);
    let mut usage = vec![bold(path)];
    for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
        if is_builtin(arg) {
            continue;
        }
        usage.push(roman(" "));
        if arg.is_required_set() {
            usage.extend(synopsis(arg));
        } else {
            usage.push(roman("["));
            usage.extend(synopsis(arg));
            usage.push(roman("]"));
        }
    }
    roff.text(usage);
    let about = cmd
        .get_long_about()
        .or_else(|| cmd.get_about())
        .map(ToString::to_string)
        .unwrap_or_default();
    for (i, paragraph) in about.split("\n\n").enumerate() {
        if i > 0 {
            roff.control("IP", [] as [&str; 0]);
        }
        roff.text([roman(paragraph.replace('\n', " "))]);
    }
    // Notes before a command's own exit-status table (the scratch-code
    // decision of `import google-authenticator`).
    let after = cmd
        .get_after_long_help()
        .map(ToString::to_string)
        .unwrap_or_default();
    let notes = after
        .split("Exit status:")
        .next()
        .unwrap_or_default()
        .trim();
    if !notes.is_empty() {
        for paragraph in notes.split("\n\n") {
            roff.control("IP", [] as [&str; 0]);
            roff.text([roman(paragraph.replace('\n', " "))]);
        }
    }
    for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
        if is_builtin(arg) {
            continue;
        }
        roff.control("RS", [] as [&str; 0]);
        roff.control("TP", [] as [&str; 0]);
        roff.text(synopsis(arg));
        let help = arg
            .get_long_help()
            .or_else(|| arg.get_help())
            .map(ToString::to_string)
            .unwrap_or_default();
        roff.text([roman(help.replace('\n', " "))]);
        roff.control("RE", [] as [&str; 0]);
    }
}

/// Hidden commands and clap's own `help` are left out.
fn shown(cmd: &Command) -> bool {
    !cmd.is_hide_set() && cmd.get_name() != "help"
}

fn is_builtin(arg: &Arg) -> bool {
    matches!(arg.get_id().as_str(), "help" | "version" | "config")
}

/// `--user NAME`, `GEN`, `--json`.
fn synopsis(arg: &Arg) -> Vec<roff::Inline> {
    let value = arg
        .get_value_names()
        .and_then(|v| v.first())
        .map_or_else(|| arg.get_id().as_str().to_uppercase(), ToString::to_string);
    match arg.get_long() {
        Some(long) if arg.get_action().takes_values() => {
            vec![bold(format!("--{long}")), roman(" "), italic(value)]
        }
        Some(long) => vec![bold(format!("--{long}"))],
        None => vec![italic(value)],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every command path a user can type, `key rotate` and all.
    fn paths(prefix: &str, cmd: &Command, out: &mut Vec<String>) {
        for sub in cmd.get_subcommands().filter(|s| shown(s)) {
            let path = format!("{prefix} {}", sub.get_name());
            out.push(path.clone());
            paths(&path, sub, out);
        }
    }

    #[test]
    fn the_man_page_mentions_every_subcommand() {
        let page = String::from_utf8(man_page()).unwrap();
        let mut all = Vec::new();
        paths("mfa-enroll", &Cli::command(), &mut all);
        assert!(all.len() >= 15, "{all:?}");
        for path in all {
            let roff = path.replace('-', "\\-");
            assert!(page.contains(&roff), "the man page lacks `{path}`");
        }
    }
}
