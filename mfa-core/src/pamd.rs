//! Reading a `pam.d` directory the way libpam assembles a service's stack,
//! so that `doctor` can tell which services ask for a code.
//!
//! A service file holds lines `type control module [args]`. Linux-PAM also
//! lets a file pull in another one: `@include FILE` (every type of FILE),
//! `TYPE include FILE` (one type, inlined: its `sufficient` or `done` ends
//! the whole stack) and `TYPE substack FILE` (one type, run as a nested
//! stack: its `done` and `die` end only the substack). [`PamDir::stack`]
//! follows all three and returns the modules of one type in the order
//! libpam runs them, each with the file and line it was written on and the
//! include lines that led there, so that a finding can name the exact line
//! an administrator has to change.
//!
//! Nothing here is executed or loaded: modules are recognised by their file
//! name (`pam_mfa.so`, whatever directory the line names).
#![forbid(unsafe_code)]

use std::fmt;
use std::path::{Path, PathBuf};

/// How deep includes may nest before the reader gives up: libpam itself
/// refuses substacks nested deeper than 16, and a loop of includes would
/// otherwise never end.
const MAX_DEPTH: usize = 16;

/// A file larger than this is not a PAM configuration file; it is not read.
const MAX_FILE_SIZE: u64 = 1 << 20;

/// The four management groups of PAM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `auth`: who the user is.
    Auth,
    /// `account`: whether the account may log in now.
    Account,
    /// `password`: changing the authentication token.
    Password,
    /// `session`: setting up and tearing down the session.
    Session,
}

impl Kind {
    /// The keyword as written in a service file.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Auth => "auth",
            Kind::Account => "account",
            Kind::Password => "password",
            Kind::Session => "session",
        }
    }

    /// The keyword libpam accepts (case-insensitively), without a leading `-`.
    fn parse(word: &str) -> Option<Kind> {
        match word.to_ascii_lowercase().as_str() {
            "auth" => Some(Kind::Auth),
            "account" => Some(Kind::Account),
            "password" => Some(Kind::Password),
            "session" => Some(Kind::Session),
            _ => None,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a line was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    /// The file.
    pub file: PathBuf,
    /// The line number, from 1 (the first line of a `\`-continued line).
    pub line: usize,
    /// The line as written, comments and surrounding blanks removed, and
    /// runs of blanks squeezed to one space.
    pub text: String,
}

impl fmt::Display for Site {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// How a line pulls in another file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inclusion {
    /// `@include FILE`: every type, inlined.
    AtInclude,
    /// `TYPE include FILE`: one type, inlined.
    Include,
    /// `TYPE substack FILE`: one type, as a nested stack.
    Substack,
}

/// A line that pulled in another file, on the way to an [`Entry`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Where the include line is.
    pub site: Site,
    /// What kind of include it is.
    pub how: Inclusion,
    /// The file name it names, as written (`common-auth`, `su`).
    pub target: String,
}

/// One module line of an assembled stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The type.
    pub kind: Kind,
    /// The control as written: `required`, `[success=1 default=ignore]`...
    pub control: String,
    /// The module as written: `pam_unix.so`, `/lib/security/pam_mfa.so`.
    pub module: String,
    /// The module's arguments.
    pub args: Vec<String>,
    /// Whether the type was written with a leading `-` (a missing module
    /// is skipped instead of failing the stack).
    pub optional_load: bool,
    /// Where this line is written.
    pub site: Site,
    /// The include lines that led from the service's own file to this
    /// line, outermost first; empty for a line of the service file itself.
    pub via: Vec<Step>,
}

impl Entry {
    /// The line of the service's own file this entry comes from: itself,
    /// or the include line that pulled it in.
    pub fn origin(&self) -> &Site {
        self.via.first().map_or(&self.site, |step| &step.site)
    }

    /// How many substacks this entry is nested in.
    pub fn substack_depth(&self) -> usize {
        self.via
            .iter()
            .filter(|s| s.how == Inclusion::Substack)
            .count()
    }

    /// Whether the module is pam_mfa.
    pub fn is_pam_mfa(&self) -> bool {
        is_pam_mfa(&self.module)
    }
}

/// Whether a module path names pam_mfa, in any directory.
pub fn is_pam_mfa(module: &str) -> bool {
    module_name(module) == "pam_mfa.so"
}

/// The file name of a module path: `pam_unix.so` for `/lib/security/pam_unix.so`.
pub fn module_name(module: &str) -> &str {
    module.rsplit('/').next().unwrap_or(module)
}

/// Something in the files that libpam would not accept, or that this
/// reader could not follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where.
    pub site: Site,
    /// What, for an administrator.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.site, self.message)
    }
}

/// The modules of one type of one service, in the order libpam runs them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stack {
    /// The service.
    pub service: String,
    /// The type.
    pub kind: Kind,
    /// The module lines, includes followed.
    pub entries: Vec<Entry>,
    /// Lines that could not be followed (a missing include, a loop, a
    /// malformed line).
    pub problems: Vec<Problem>,
}

impl Stack {
    /// Whether the stack loads pam_mfa anywhere.
    pub fn reaches_pam_mfa(&self) -> bool {
        self.entries.iter().any(Entry::is_pam_mfa)
    }

    /// Every pam_mfa line, in order.
    pub fn pam_mfa_entries(&self) -> Vec<&Entry> {
        self.entries.iter().filter(|e| e.is_pam_mfa()).collect()
    }

    /// The lines that run after the last pam_mfa line: empty when pam_mfa
    /// is the last module of the stack, or absent.
    pub fn after_last_pam_mfa(&self) -> &[Entry] {
        match self.entries.iter().rposition(Entry::is_pam_mfa) {
            Some(pos) => &self.entries[pos + 1..],
            None => &[],
        }
    }

    /// Whether any line, directly or through includes, pulls in `file`
    /// (`common-auth`).
    pub fn includes(&self, file: &str) -> bool {
        self.entries
            .iter()
            .any(|e| e.via.iter().any(|s| s.target == file))
    }
}

/// One parsed, non-empty line of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Line {
    /// `@include FILE`.
    AtInclude { site: Site, target: String },
    /// `TYPE include|substack FILE`.
    Include {
        site: Site,
        kind: Kind,
        how: Inclusion,
        target: String,
    },
    /// A module line.
    Module(Entry),
    /// Something libpam would reject.
    Bad(Problem),
}

/// A `pam.d` directory.
#[derive(Debug, Clone)]
pub struct PamDir {
    dir: PathBuf,
}

impl PamDir {
    /// The directory at `dir` (`/etc/pam.d` on a host).
    pub fn new(dir: impl Into<PathBuf>) -> PamDir {
        PamDir { dir: dir.into() }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The path of a service's file.
    pub fn file_of(&self, service: &str) -> PathBuf {
        self.dir.join(service)
    }

    /// Whether the service has a file of its own (without one, libpam
    /// uses `other`).
    pub fn has_service(&self, service: &str) -> bool {
        self.file_of(service).is_file()
    }

    /// The services of the directory, sorted: every regular file except
    /// editor and package-manager leftovers (hidden files, `NAME~`, and
    /// `NAME.SUFFIX` copies of a service `NAME` that is also there, such as
    /// `sudo.dpkg-old` or `sshd.pre-mfa`), which libpam never opens as a
    /// service. The shared `common-*` files are listed too; callers that
    /// want only services that applications start skip them.
    ///
    /// # Errors
    /// The directory cannot be listed.
    pub fn services(&self) -> std::io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            if !entry.file_type()?.is_file() && !entry.path().is_file() {
                continue;
            }
            if let Some(name) = entry.file_name().to_str() {
                names.push(name.to_owned());
            }
        }
        names.sort();
        let all = names.clone();
        names.retain(|name| {
            !name.starts_with('.')
                && !name.ends_with('~')
                && !name
                    .split_once('.')
                    .is_some_and(|(base, _)| all.iter().any(|n| n == base))
        });
        Ok(names)
    }

    /// The `kind` stack of `service`, includes followed, as libpam
    /// assembles it. A service without a file of its own gets `other`'s
    /// stack, as in libpam; so does a type its file leaves out.
    pub fn stack(&self, service: &str, kind: Kind) -> Stack {
        let mut stack = Stack {
            service: service.to_owned(),
            kind,
            entries: Vec::new(),
            problems: Vec::new(),
        };
        let own = if self.has_service(service) {
            service
        } else {
            "other"
        };
        self.collect(own, kind, &mut Vec::new(), &mut stack);
        if stack.entries.is_empty() && stack.problems.is_empty() && own != "other" {
            // libpam falls back to `other` per type, not only per file.
            self.collect("other", kind, &mut Vec::new(), &mut stack);
        }
        stack
    }

    /// Appends the `kind` lines of `file` (reached through `via`) to `stack`.
    fn collect(&self, file: &str, kind: Kind, via: &mut Vec<Step>, stack: &mut Stack) {
        let path = if Path::new(file).is_absolute() {
            PathBuf::from(file)
        } else {
            self.dir.join(file)
        };
        let lines = match read_lines(&path) {
            Ok(lines) => lines,
            Err(message) => {
                let site = via.last().map_or_else(
                    || Site {
                        file: path.clone(),
                        line: 0,
                        text: String::new(),
                    },
                    |s| s.site.clone(),
                );
                stack.problems.push(Problem { site, message });
                return;
            }
        };
        for line in lines {
            let (site, how, target) = match line {
                Line::Module(mut entry) => {
                    if entry.kind == kind {
                        entry.via.clone_from(via);
                        stack.entries.push(entry);
                    }
                    continue;
                }
                Line::Bad(problem) => {
                    stack.problems.push(problem);
                    continue;
                }
                Line::AtInclude { site, target } => (site, Inclusion::AtInclude, target),
                Line::Include {
                    site,
                    kind: k,
                    how,
                    target,
                } => {
                    if k != kind {
                        continue;
                    }
                    (site, how, target)
                }
            };
            if via.len() >= MAX_DEPTH || via.iter().any(|s| s.target == target) {
                stack.problems.push(Problem {
                    site,
                    message: format!(
                        "includes `{target}` again (a loop, or nested more than {MAX_DEPTH} deep): libpam refuses this service"
                    ),
                });
                continue;
            }
            via.push(Step {
                site,
                how,
                target: target.clone(),
            });
            self.collect(&target, kind, via, stack);
            via.pop();
        }
    }
}

/// Reads and parses a file: comments removed, `\` continuations joined.
fn read_lines(path: &Path) -> Result<Vec<Line>, String> {
    let meta =
        std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!("{} is not a regular file", path.display()));
    }
    if meta.len() > MAX_FILE_SIZE {
        return Err(format!(
            "{} is larger than {MAX_FILE_SIZE} bytes",
            path.display()
        ));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut out = Vec::new();
    let mut pending = String::new();
    let mut start = 0;
    for (index, raw) in text.lines().enumerate() {
        if pending.is_empty() {
            start = index + 1;
        }
        // libpam drops everything from `#` to the end of the line.
        let uncommented = raw.split('#').next().unwrap_or("");
        if let Some(joined) = uncommented.strip_suffix('\\') {
            pending.push_str(joined);
            pending.push(' ');
            continue;
        }
        pending.push_str(uncommented);
        let words: Vec<&str> = pending.split_whitespace().collect();
        if !words.is_empty() {
            let site = Site {
                file: path.to_path_buf(),
                line: start,
                text: words.join(" "),
            };
            out.push(parse_line(site, &words));
        }
        pending.clear();
    }
    Ok(out)
}

/// Parses the words of one line.
fn parse_line(site: Site, words: &[&str]) -> Line {
    let bad = |site: Site, message: &str| {
        Line::Bad(Problem {
            site,
            message: message.to_owned(),
        })
    };
    if words[0] == "@include" {
        return match words.get(1) {
            Some(target) => Line::AtInclude {
                site,
                target: (*target).to_owned(),
            },
            None => bad(site, "`@include` without a file name"),
        };
    }
    let (optional_load, word) = match words[0].strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, words[0]),
    };
    let Some(kind) = Kind::parse(word) else {
        return bad(site, "unknown type: libpam ignores this line");
    };
    // A bracketed control may hold blanks: `[success=1 default=ignore]`.
    let (control, rest) = if words.get(1).is_some_and(|w| w.starts_with('[')) {
        match words[1..].iter().position(|w| w.ends_with(']')) {
            Some(end) => (words[1..=end + 1].join(" "), &words[end + 2..]),
            None => return bad(site, "a `[` control without its `]`"),
        }
    } else {
        match words.get(1) {
            Some(control) => ((*control).to_owned(), &words[2..]),
            None => return bad(site, "no control and no module"),
        }
    };
    let Some(module) = rest.first() else {
        return bad(site, "no module");
    };
    let how = match control.to_ascii_lowercase().as_str() {
        "include" => Some(Inclusion::Include),
        "substack" => Some(Inclusion::Substack),
        _ => None,
    };
    if let Some(how) = how {
        return Line::Include {
            site,
            kind,
            how,
            target: (*module).to_owned(),
        };
    }
    Line::Module(Entry {
        kind,
        control,
        module: (*module).to_owned(),
        args: rest[1..].iter().map(|&a| a.to_owned()).collect(),
        optional_load,
        site,
        via: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(files: &[(&str, &str)]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(d.path().join(name), text).unwrap();
        }
        d
    }

    #[test]
    fn a_bracketed_control_with_blanks_is_one_control() {
        let d = dir(&[("s", "auth [success=1 default=ignore] pam_unix.so nullok\n")]);
        let stack = PamDir::new(d.path()).stack("s", Kind::Auth);
        assert_eq!(stack.entries[0].control, "[success=1 default=ignore]");
        assert_eq!(stack.entries[0].module, "pam_unix.so");
        assert_eq!(stack.entries[0].args, ["nullok"]);
    }

    #[test]
    fn continued_lines_and_comments_are_read_as_libpam_does() {
        let d = dir(&[(
            "s",
            "# a comment\nauth required \\\n  pam_mfa.so debug # trailing\n\n-auth optional pam_gnome_keyring.so\n",
        )]);
        let stack = PamDir::new(d.path()).stack("s", Kind::Auth);
        assert_eq!(stack.entries.len(), 2);
        assert_eq!(stack.entries[0].site.line, 2);
        assert_eq!(stack.entries[0].site.text, "auth required pam_mfa.so debug");
        assert!(stack.entries[1].optional_load);
        assert_eq!(stack.entries[1].site.line, 5);
    }

    #[test]
    fn an_include_loop_is_a_problem_not_a_hang() {
        let d = dir(&[("a", "@include b\n"), ("b", "auth include a\n")]);
        let stack = PamDir::new(d.path()).stack("a", Kind::Auth);
        assert!(stack.entries.is_empty());
        assert_eq!(stack.problems.len(), 1, "{stack:#?}");
    }

    #[test]
    fn module_names_ignore_the_directory() {
        assert!(is_pam_mfa("/usr/lib/x86_64-linux-gnu/security/pam_mfa.so"));
        assert!(is_pam_mfa("pam_mfa.so"));
        assert!(!is_pam_mfa("pam_mfa.so.bak"));
        assert!(!is_pam_mfa("not_pam_mfa.so"));
    }
}
