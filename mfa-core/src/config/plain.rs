//! The fast reader, for a configuration file written the plain way.
//!
//! Nearly every configuration is the annotated default with values changed:
//! comments, `[section]` and `[service.NAME]` headers, and `key = value`
//! lines whose values are whole numbers, strings without escapes, booleans,
//! or arrays of such strings. This reader takes exactly that, in one pass over the
//! bytes and without building a document, and gives up at anything else,
//! mistakes included. The full TOML reader then reads the file, and explains
//! whatever is wrong. So this reader decides nothing of its own: what it
//! accepts, the full reader reads to the same configuration (in debug builds
//! `Config::parse_with_overrides` checks that on every file).
//!
//! It exists because the full reader costs tens of microseconds and faults
//! in a parser's worth of code on every login, for files that are nearly
//! all comments.

use super::{section_with, Config, ServiceOverride, SettingValue, OVERLAY_KEYS};

/// The configuration `text` says, or `None` if the text is not written the
/// plain way, or says anything wrong.
pub(super) fn read(text: &str) -> Option<Config> {
    let mut config = Config::default();
    let mut r = Reader {
        b: text.as_bytes(),
        i: 0,
    };
    // The table the lines belong to, the tables seen, and the keys set in
    // the current table: TOML allows each only once.
    let mut table: Option<Table> = None;
    let mut tables: Vec<Table> = Vec::new();
    let mut keys: Vec<&str> = Vec::new();
    loop {
        r.blanks();
        match r.peek() {
            None => return Some(config),
            Some(b'[') => {
                let header = r.header()?;
                if tables.contains(&header) {
                    return None;
                }
                if let Table::Service(name) = header {
                    config
                        .service
                        .insert(name.to_owned(), ServiceOverride::default());
                }
                tables.push(header);
                table = Some(header);
                keys.clear();
            }
            Some(b'#' | b'\r' | b'\n') => {}
            Some(_) => {
                let key = r.bare_key()?;
                r.blanks();
                r.eat(b'=')?;
                r.blanks();
                let value = r.value()?;
                if keys.contains(&key) {
                    return None;
                }
                keys.push(key);
                set(&mut config, table?, key, value)?;
            }
        }
        r.blanks();
        r.end_of_line()?;
    }
}

/// A table a header opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Table<'a> {
    /// `[policy]`, `[totp]`... by name.
    Section(&'static str),
    /// `[service.NAME]`.
    Service(&'a str),
}

/// Sets `key` of `table` to `value`, with the deserializer the file's key
/// has; `None` if it has none or refuses the value.
fn set(config: &mut Config, table: Table<'_>, key: &str, value: SettingValue<'_>) -> Option<()> {
    match table {
        Table::Section(section) => {
            let setting = OVERLAY_KEYS
                .iter()
                .find(|s| s.section == section && s.leaf == key)?;
            setting.set(config, value).ok()
        }
        Table::Service(name) => {
            let service = config.service.get_mut(name)?;
            let read = section_with(service, key, value).ok()?;
            match key {
                "not_configured" => service.not_configured = read.not_configured,
                "remember_seconds" => service.remember_seconds = read.remember_seconds,
                "break_glass" => service.break_glass = read.break_glass,
                _ => return None,
            }
            Some(())
        }
    }
}

/// The sections a `[name]` header may open.
const SECTIONS: &[&str] = &[
    "policy",
    "totp",
    "recovery",
    "throttle",
    "enrollment",
    "groups",
    "paths",
];

struct Reader<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Reader<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek() == Some(c)).then(|| self.i += 1)
    }

    /// Spaces and tabs.
    fn blanks(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }

    /// An optional comment, then a newline or the end of the text.
    fn end_of_line(&mut self) -> Option<()> {
        if self.peek() == Some(b'#') {
            // To the first control character: the newline, or one that TOML
            // does not allow in a comment (all but tab) and that is refused below.
            self.i += up_to_control(&self.b[self.i..]);
        }
        match self.peek() {
            None => Some(()),
            Some(b'\n') => {
                self.i += 1;
                Some(())
            }
            Some(b'\r') => {
                self.i += 1;
                self.eat(b'\n')
            }
            Some(_) => None,
        }
    }

    /// Blanks, comments and newlines, as between the items of an array.
    fn blank_lines(&mut self) -> Option<()> {
        loop {
            self.blanks();
            match self.peek() {
                Some(b'#' | b'\r' | b'\n') => self.end_of_line()?,
                _ => return Some(()),
            }
        }
    }

    /// A bare key: ASCII letters, digits, `_` and `-`.
    fn bare_key(&mut self) -> Option<&'a str> {
        let start = self.i;
        while matches!(
            self.peek(),
            Some(b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-')
        ) {
            self.i += 1;
        }
        if self.i == start {
            return None;
        }
        std::str::from_utf8(&self.b[start..self.i]).ok()
    }

    /// `[section]` or `[service.NAME]`, names bare.
    fn header(&mut self) -> Option<Table<'a>> {
        self.eat(b'[')?;
        self.blanks();
        let first = self.bare_key()?;
        self.blanks();
        let table = if self.eat(b'.').is_some() {
            self.blanks();
            let name = self.bare_key()?;
            self.blanks();
            (first == "service").then_some(Table::Service(name))?
        } else {
            Table::Section(SECTIONS.iter().copied().find(|s| *s == first)?)
        };
        self.eat(b']')?;
        Some(table)
    }

    /// A whole number, a string, a boolean, or an array of strings.
    fn value(&mut self) -> Option<SettingValue<'a>> {
        match self.peek()? {
            b'"' | b'\'' => self.string().map(SettingValue::Text),
            // Anything run on after the word (`truex`) fails the caller's
            // end-of-line check.
            b't' => self.word(b"true").map(|()| SettingValue::Bool(true)),
            b'f' => self.word(b"false").map(|()| SettingValue::Bool(false)),
            b'[' => {
                self.i += 1;
                let mut items = Vec::new();
                loop {
                    self.blank_lines()?;
                    if self.eat(b']').is_some() {
                        return Some(SettingValue::List(items));
                    }
                    items.push(self.string()?);
                    self.blank_lines()?;
                    if self.eat(b',').is_none() {
                        self.blank_lines()?;
                        self.eat(b']')?;
                        return Some(SettingValue::List(items));
                    }
                }
            }
            _ => self.integer().map(SettingValue::Integer),
        }
    }

    /// Exactly `word`.
    fn word(&mut self, word: &[u8]) -> Option<()> {
        self.b[self.i..]
            .starts_with(word)
            .then(|| self.i += word.len())
    }

    /// A one-line string, basic (`"..."`) without escapes or literal (`'...'`).
    fn string(&mut self) -> Option<&'a str> {
        let quote = self.peek()?;
        if !matches!(quote, b'"' | b'\'') || self.b[self.i..].starts_with(&[quote; 3]) {
            return None;
        }
        self.i += 1;
        let start = self.i;
        loop {
            match self.peek()? {
                c if c == quote => break,
                // Escapes are left to the full reader.
                b'\\' if quote == b'"' => return None,
                c if (c < 0x20 && c != b'\t') || c == 0x7f => return None,
                _ => self.i += 1,
            }
        }
        let s = std::str::from_utf8(&self.b[start..self.i]).ok()?;
        self.i += 1;
        Some(s)
    }

    /// A decimal integer as TOML writes it: an optional sign, no leading
    /// zero, `_` only between digits. Anything after it that could make it
    /// another kind of value (`.`, `e`, `:`, `x`...) is left to the full
    /// reader by the caller's end-of-line check.
    fn integer(&mut self) -> Option<i64> {
        let negative = self.peek()? == b'-';
        if matches!(self.peek()?, b'-' | b'+') {
            self.i += 1;
        }
        let start = self.i;
        let mut value: i128 = 0;
        let mut digits = 0;
        loop {
            match self.peek() {
                Some(c @ b'0'..=b'9') => {
                    value = value * 10 + i128::from(c - b'0');
                    digits += 1;
                    // Far beyond i64; the full reader says so.
                    if digits > 20 {
                        return None;
                    }
                }
                Some(b'_') if self.i > start && self.b[self.i - 1].is_ascii_digit() => {
                    if !self.b.get(self.i + 1)?.is_ascii_digit() {
                        return None;
                    }
                }
                _ => break,
            }
            self.i += 1;
        }
        // A leading zero is allowed only in 0 itself.
        if digits == 0 || (self.b[start] == b'0' && self.i - start > 1) {
            return None;
        }
        i64::try_from(if negative { -value } else { value }).ok()
    }
}

/// The length of `rest` before its first control character other than tab.
fn up_to_control(rest: &[u8]) -> usize {
    let is_control = |c: u8| (c < 0x20 && c != b'\t') || c == 0x7f;
    // Comments are most of a file. Whole blocks first, in a loop without an
    // early exit that the compiler turns into vector instructions.
    let mut start = 0;
    for block in rest.chunks_exact(32) {
        if block.iter().fold(false, |found, &c| found | is_control(c)) {
            break;
        }
        start += block.len();
    }
    rest[start..]
        .iter()
        .position(|&c| is_control(c))
        .map_or(rest.len(), |n| start + n)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHIPPED: &str = include_str!("../../../config/pam_mfa.toml");

    fn full(text: &str) -> Option<Config> {
        Config::read_toml(text, "test.toml").ok()
    }

    #[test]
    fn the_shipped_file_is_read_by_the_plain_reader() {
        assert_eq!(read(SHIPPED), Some(Config::default()));
    }

    #[test]
    fn plain_files_read_as_the_full_reader_reads_them() {
        for text in [
            "",
            "# a comment and no newline",
            "[policy]\nnot_configured = \"deny\"\nremember_seconds = 300\n",
            "  [ totp ]  # indented\n\twindow=2\r\nissuer = 'Example Corp'\r\n",
            "[totp]\nissuer = \"\"\ndigits = +8\n[throttle]\nbackoff_after = -0\nbackoff_seconds = 1_0\n",
            "[groups]\nrequire = [ \"wheel\" , 'adm' , ]\nexempt = [\n  # services\n  \"backup\", # nightly\n  \"cron\"\n]\n",
            "[groups]\nrequire = []\nexempt = [\n]\n",
            "[service.sshd]\nnot_configured = \"deny\"\n[service.sudo-i]\nremember_seconds = 300\n[service.su]\n",
            "[service.login]\nbreak_glass = true\n[service.sshd]\nbreak_glass = false # remote\n",
            "[paths]\nstate_dir = \"/srv/mfa/\u{fc}sers\"\nkey_file = '/srv/mfa/master\\key'\n",
        ] {
            let plain = read(text);
            assert!(plain.is_some(), "{text:?} should be read by the plain reader");
            assert_eq!(plain, full(text), "{text:?}");
        }
    }

    #[test]
    fn anything_else_is_left_to_the_full_reader() {
        for text in [
            // Valid TOML the plain reader does not take.
            "\u{feff}[policy]\n",
            "[totp]\nissuer = \"Corp\\u00e9\"\n",
            "[totp]\nissuer = \"\"\"Corp\"\"\"\n",
            "[totp]\nissuer = '''Corp'''\n",
            "[totp]\nwindow = 0x2\n",
            "totp.window = 2\n",
            "[totp]\n\"window\" = 2\n",
            "[service.\"sshd\"]\n",
            "policy = { not_configured = \"deny\" }\n",
            "[service]\nsshd = { not_configured = \"deny\" }\n",
            // Mistakes, for the full reader to explain.
            "[totp]\nwindow = 2.0\n",
            "[totp]\nwindow = 1979-05-27\n",
            "[totp]\nwindow = true\n",
            "[service.login]\nbreak_glass = truex\n",
            "[service.login]\nbreak_glass = True\n",
            "[service.login]\nbreak_glass = 1\n",
            "[service.login]\nbreak_glass = \"true\"\n",
            "[policy]\nbreak_glass = true\n",
            "[totp]\nwindow = 01\n",
            "[totp]\nwindow = 1__0\n",
            "[totp]\nwindow = 1_\n",
            "[totp]\nwindow = 99999999999999999999999\n",
            "[totp]\nwindow = 2\nwindow = 3\n",
            "[totp]\n[totp]\n",
            "[service.sshd]\n[service.sshd]\n",
            "[totp]\nwindow = 11\n",
            "[totp]\nwindo = 1\n",
            "[totp]\nwindow = \"2\"\n",
            "[groups]\nrequire = [\"a\", 1]\n",
            "[groups]\nrequire = [[\"a\"]]\n",
            "[groups]\nrequire = [\"a\" \"b\"]\n",
            "[groups]\nrequire = [\"a\"\n",
            "[totp]\nissuer = \"a\u{7f}\"\n",
            "# \u{7f}\n",
            "# \u{1}\n",
            "[totp]\rwindow = 2\n",
            "[totp] window = 2\n",
            "[totp]\nwindow = 2 issuer = \"x\"\n",
            "window = 2\n",
            "[polcy]\n",
            "[service]\n",
            "[service.sshd]\nwindow = 2\n",
            "[[service.sshd]]\n",
            "[totp]\nissuer = \"open\n",
        ] {
            assert_eq!(read(text), None, "{text:?}");
        }
    }

    #[test]
    fn whatever_the_plain_reader_accepts_the_full_reader_reads_the_same() {
        // Deterministic mutations of plain files: deleted, inserted and
        // replaced bytes from TOML's own alphabet.
        const PIECES: &[&str] = &[
            "[",
            "]",
            "\"",
            "'",
            "=",
            ".",
            ",",
            "#",
            "\n",
            "\r",
            " ",
            "\t",
            "_",
            "-",
            "+",
            "0",
            "7",
            "x",
            "\\",
            "\u{7f}",
            "\u{e9}",
            "[service.sshd]\n",
            "window = 2\n",
        ];
        let seeds = [
            SHIPPED,
            "[groups]\nrequire = [\"wheel\", 'adm',]\n[service.sshd]\nremember_seconds = 60\n",
            "[totp]\nwindow = 2\nissuer = \"Corp\"\n[throttle]\nbackoff_seconds = 1_000\n",
        ];
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            usize::try_from(state % n as u64).unwrap()
        };
        let mut accepted = 0;
        for round in 0..3000 {
            let mut text = seeds[round % seeds.len()].as_bytes().to_vec();
            for _ in 0..=next(3) {
                let at = next(text.len() + 1);
                match next(3) {
                    0 if at < text.len() => {
                        text.remove(at);
                    }
                    1 if at < text.len() => text[at] = PIECES[next(PIECES.len())].as_bytes()[0],
                    _ => {
                        let piece = PIECES[next(PIECES.len())].as_bytes();
                        text.splice(at..at, piece.iter().copied());
                    }
                }
            }
            let Ok(text) = String::from_utf8(text) else {
                continue;
            };
            if let Some(plain) = read(&text) {
                accepted += 1;
                assert_eq!(Some(plain), full(&text), "{text:?}");
            }
        }
        assert!(accepted > 100, "only {accepted} mutated files were plain");
    }
}
