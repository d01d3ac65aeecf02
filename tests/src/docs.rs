//! The console examples of the documentation, read so that a test can run
//! them and compare what the product prints with what the page shows.
//!
//! An example is a fenced block with the info string `console`:
//!
//! ````text
//! ```console
//! # mfa-enroll status --user alice
//! user:                alice (uid <n>)
//! ...
//! ```
//! ````
//!
//! A line starting with `# ` is a command run as root, `$ ` a command run
//! as the example user; the lines up to the next command are what it
//! prints (stdout and stderr, in order). Every other fenced block (`sh`,
//! `text`, none) is left alone: those are steps that change the host, or
//! transcripts of sessions the end-to-end tests drive themselves.
//!
//! What differs from run to run is written as a placeholder, which matches
//! anything of its shape:
//!
//! | placeholder | matches |
//! |---|---|
//! | `<secret>` | a base32 secret, grouped by spaces or not |
//! | `<code>` | a TOTP code (6 to 8 digits); at the end of a prompt line (`...: <code>`), the code the app would show for the last `<secret>`, typed in |
//! | `<recovery code>` | a recovery code (`7kq2-m9xd-4hfr`) |
//! | `<date>` | a date and time (digits, `-`, `:`, `T`, `Z`, `+`, `UTC`, spaces) |
//! | `<n>` | a number (a count, a uid, a generation) |
//! | `...` alone on a line | any number of lines, none included |
//! | `...` in a line | any text |
//!
//! Before an example the page may hold a comment that the rendered page does
//! not show, `<!-- doc-test setup` ... `-->`: a shell script the test runs
//! as root first, for a step the text describes in words (editing a file).

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

/// Who runs a command: the prompt it is written with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum As {
    /// `# `
    Root,
    /// `$ `
    User,
}

/// One command of a console block, with what it must print.
#[derive(Clone, Debug)]
pub struct Example {
    /// The page it is on.
    pub file: PathBuf,
    /// The line of the command (1-based).
    pub line: usize,
    /// Root or the example user.
    pub who: As,
    /// The command line, as a shell reads it.
    pub command: String,
    /// The expected output, each line with its line number in the page.
    pub expected: Vec<(usize, String)>,
    /// The `doc-test setup` script before the block, on its first command.
    pub setup: Option<String>,
}

impl Example {
    /// `file:line`, for messages.
    #[must_use]
    pub fn place(&self) -> String {
        format!("{}:{}", self.file.display(), self.line)
    }

    /// The prompt the command answers, when the example types a code: the
    /// text of the first expected line that ends in `: <code>`, up to and
    /// including `: `.
    #[must_use]
    pub fn code_prompt(&self) -> Option<&str> {
        self.expected.iter().find_map(|(_, l)| {
            let prompt = l.strip_suffix(CODE)?;
            (prompt.ends_with(": ") && !prompt.starts_with(' ')).then_some(prompt)
        })
    }

    /// The last secret in `output` that a `<secret>` line of this example
    /// matches, without its spaces.
    #[must_use]
    pub fn secret_in(&self, output: &str) -> Option<String> {
        let patterns: Vec<&str> = self
            .expected
            .iter()
            .map(|(_, l)| l.as_str())
            .filter(|l| l.contains(SECRET))
            .collect();
        output.lines().rev().find_map(|line| {
            patterns.iter().find_map(|p| {
                let captures = match_line(p, line)?;
                captures
                    .into_iter()
                    .find(|(name, _)| *name == SECRET)
                    .map(|(_, v)| v.replace(' ', ""))
            })
        })
    }

    /// Compares `output` (with a typed code already in it, after its
    /// prompt) with the expected lines.
    ///
    /// # Errors
    ///
    /// A [`Mismatch`] naming the page and line of the first expected line
    /// that does not match.
    pub fn compare(&self, output: &str) -> Result<(), Mismatch> {
        let actual: Vec<&str> = output.lines().collect();
        let mut furthest = 0;
        if match_lines(&self.expected, 0, &actual, 0, &mut furthest) {
            return Ok(());
        }
        let (line, expected) = self.expected.get(furthest).map_or(
            (self.line, "(the end of the output)".to_owned()),
            |(n, l)| (*n, l.clone()),
        );
        Err(Mismatch {
            place: format!("{}:{line}", self.file.display()),
            command: self.command.clone(),
            expected,
            output: output.to_owned(),
        })
    }
}

/// An example whose output differs from its page.
#[derive(Debug)]
pub struct Mismatch {
    /// `file:line` of the first expected line that no output matched.
    pub place: String,
    /// The command.
    pub command: String,
    /// That expected line.
    pub expected: String,
    /// What the command printed.
    pub output: String,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: `{}` printed something else; this line of the page does not match:\n  {}\n--- output\n{}--- end",
            self.place, self.command, self.expected, self.output
        )
    }
}

const SECRET: &str = "<secret>";
const CODE: &str = "<code>";
const RECOVERY: &str = "<recovery code>";
const DATE: &str = "<date>";
const NUMBER: &str = "<n>";
const ANY: &str = "...";
const PLACEHOLDERS: [&str; 6] = [SECRET, CODE, RECOVERY, DATE, NUMBER, ANY];

/// Reads the console examples of the page at `path`, in page order.
///
/// # Panics
///
/// When the page cannot be read, or a console block holds output before
/// its first command or an unclosed fence: the page is wrong.
#[must_use]
pub fn examples(path: &Path) -> Vec<Example> {
    let text =
        fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    parse(path, &text)
}

/// [`examples`] of a text already read.
///
/// # Panics
///
/// As [`examples`].
#[must_use]
pub fn parse(path: &Path, text: &str) -> Vec<Example> {
    let mut examples = Vec::new();
    let mut setup: Option<String> = None;
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
    while let Some((n, line)) = lines.next() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("<!-- doc-test setup") {
            let mut script = String::new();
            for (_, l) in lines.by_ref() {
                if l.trim() == "-->" {
                    break;
                }
                script.push_str(l);
                script.push('\n');
            }
            setup = Some(script);
            continue;
        }
        let Some(info) = trimmed.strip_prefix("```") else {
            continue;
        };
        let indent = line.len() - trimmed.len();
        let console = info.trim() == "console";
        let mut closed = false;
        let mut block_setup = if console { setup.take() } else { None };
        let mut current: Option<Example> = None;
        for (m, l) in lines.by_ref() {
            if l.trim_start().starts_with("```") {
                closed = true;
                break;
            }
            if !console {
                continue;
            }
            let l = l
                .get(indent.min(l.len() - l.trim_start().len())..)
                .unwrap_or(l);
            let who = if let Some(c) = l.strip_prefix("# ") {
                Some((As::Root, c))
            } else {
                l.strip_prefix("$ ").map(|c| (As::User, c))
            };
            if let Some((who, command)) = who {
                examples.extend(current.take());
                current = Some(Example {
                    file: path.to_path_buf(),
                    line: m,
                    who,
                    command: command.to_owned(),
                    expected: Vec::new(),
                    setup: block_setup.take(),
                });
            } else {
                let example = current.as_mut().unwrap_or_else(|| {
                    panic!(
                        "{}:{m}: output before the first `# ` or `$ ` command of the block",
                        path.display()
                    )
                });
                example.expected.push((m, l.to_owned()));
            }
        }
        assert!(closed, "{}:{n}: the fence is never closed", path.display());
        examples.extend(current);
    }
    examples
}

/// Whether `expected[e..]` matches `actual[a..]`; `furthest` is the
/// furthest expected line reached, for the message.
fn match_lines(
    expected: &[(usize, String)],
    e: usize,
    actual: &[&str],
    a: usize,
    furthest: &mut usize,
) -> bool {
    *furthest = (*furthest).max(e);
    let Some((_, line)) = expected.get(e) else {
        return a == actual.len();
    };
    if line.trim() == ANY {
        return (a..=actual.len()).any(|skip| match_lines(expected, e + 1, actual, skip, furthest));
    }
    a < actual.len()
        && match_line(line, actual[a]).is_some()
        && match_lines(expected, e + 1, actual, a + 1, furthest)
}

/// Matches one line; on success, what each placeholder matched, in order.
/// Trailing spaces are not compared.
#[must_use]
pub fn match_line<'a>(pattern: &str, line: &'a str) -> Option<Vec<(&'static str, &'a str)>> {
    let pattern = pattern.trim_end();
    let line = line.trim_end();
    let mut captures = Vec::new();
    match_from(pattern, line, &mut captures).then_some(captures)
}

fn match_from<'a>(
    pattern: &str,
    line: &'a str,
    captures: &mut Vec<(&'static str, &'a str)>,
) -> bool {
    let next = PLACEHOLDERS
        .iter()
        .filter_map(|p| pattern.find(p).map(|at| (at, *p)))
        .min();
    let Some((at, placeholder)) = next else {
        return pattern == line;
    };
    let Some(rest_of_line) = line.strip_prefix(&pattern[..at]) else {
        return false;
    };
    let rest_of_pattern = &pattern[at + placeholder.len()..];
    // Every length of text the placeholder could take, longest first, so
    // that `...` at the end of a line takes the rest.
    let ends: Vec<usize> = (0..=rest_of_line.len())
        .rev()
        .filter(|&end| rest_of_line.is_char_boundary(end))
        .collect();
    for end in ends {
        let taken = &rest_of_line[..end];
        if !shape(placeholder, taken) {
            continue;
        }
        let depth = captures.len();
        captures.push((placeholder, taken));
        if match_from(rest_of_pattern, &rest_of_line[end..], captures) {
            return true;
        }
        captures.truncate(depth);
    }
    false
}

/// Whether `text` has the shape `placeholder` stands for.
fn shape(placeholder: &str, text: &str) -> bool {
    match placeholder {
        SECRET => {
            let letters = text.chars().filter(|c| *c != ' ').count();
            letters >= 16
                && !text.starts_with(' ')
                && !text.ends_with(' ')
                && !text.contains("  ")
                && text
                    .chars()
                    .all(|c| c == ' ' || c.is_ascii_uppercase() || ('2'..='7').contains(&c))
        }
        CODE => (6..=8).contains(&text.len()) && text.chars().all(|c| c.is_ascii_digit()),
        RECOVERY => {
            let groups: Vec<&str> = text.split('-').collect();
            groups.len() == 3
                && groups.iter().all(|g| {
                    g.len() == 4
                        && g.chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
                })
        }
        DATE => {
            text.chars().next().is_some_and(|c| c.is_ascii_digit())
                && text
                    .replace("UTC", "")
                    .chars()
                    .all(|c| c.is_ascii_digit() || "-:TZ+ ".contains(c))
        }
        NUMBER => !text.is_empty() && text.chars().all(|c| c.is_ascii_digit()),
        _ => true, // `...` in a line: anything
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = "intro\n\
        ```sh\n\
        # not run\n\
        ```\n\
        <!-- doc-test setup\n\
        touch /x\n\
        -->\n\
        ```console\n\
        # mfa-enroll status --user alice\n\
        user: alice (uid <n>)\n\
        ...\n\
        last success: <date>\n\
        $ true\n\
        ```\n\
        \n   ```console\n   # echo hi\n   hi\n   ```\n";

    #[test]
    fn console_blocks_become_commands_with_their_lines_and_setup() {
        let examples = parse(Path::new("page.md"), PAGE);
        assert_eq!(examples.len(), 3);
        let first = &examples[0];
        assert_eq!((first.line, first.who), (9, As::Root));
        assert_eq!(first.command, "mfa-enroll status --user alice");
        assert_eq!(first.setup.as_deref(), Some("touch /x\n"));
        assert_eq!(
            first.expected.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
            [10, 11, 12]
        );
        assert_eq!(
            (examples[1].who, examples[1].setup.clone()),
            (As::User, None)
        );
        assert_eq!(examples[2].command, "echo hi");
        assert_eq!(examples[2].expected, [(18, "hi".to_owned())]);
    }

    #[test]
    fn placeholders_match_their_shape_only() {
        let example = &parse(Path::new("page.md"), PAGE)[0];
        example
            .compare("user: alice (uid 1000)\nmore\nlines\nlast success: 2026-11-26 12:31:04 UTC\n")
            .unwrap();
        example
            .compare("user: alice (uid 1000)\nlast success: 2026-11-26 12:31:04 UTC\n")
            .unwrap();
        let wrong = example
            .compare("user: alice (uid 1000)\nlast success: never\n")
            .unwrap_err();
        assert_eq!(wrong.place, "page.md:12", "{wrong}");
        let wrong = example.compare("user: alice (uid x)\n").unwrap_err();
        assert_eq!(wrong.place, "page.md:10", "{wrong}");
        assert!(match_line("    <recovery code>", "    7kq2-m9xd-4hfr").is_some());
        assert!(match_line("    <recovery code>", "    7kq2-m9xd").is_none());
        assert!(match_line("code: <code>", "code: 12345").is_none());
        assert!(match_line("uri: otpauth://totp/...", "uri: otpauth://totp/h:a?s=X").is_some());
    }

    #[test]
    fn the_secret_and_the_code_prompt_are_found() {
        let text = "```console\n# mfa-enroll enroll --user alice\nSecret:\n\n    <secret>\n\nVerification code from the app: <code>\n```\n";
        let example = &parse(Path::new("p.md"), text)[0];
        assert_eq!(
            example.code_prompt(),
            Some("Verification code from the app: ")
        );
        let out = "Secret:\n\n    GTCT UH6O FLJL RM2K ZGOY VW53 QXMD AQUH\n\nVerification code from the app: ";
        assert_eq!(
            example.secret_in(out).as_deref(),
            Some("GTCTUH6OFLJLRM2KZGOYVW53QXMDAQUH")
        );
    }
}
