//! Where a mistake is: the file, line, column and dotted key of an error,
//! from the spans the TOML parser gives, in words for the administrator.

use std::ops::Range;

use toml::de::{DeTable, DeValue};

use super::error::ConfigError;
use super::fields::{LOWERCASED, NOT_A_SERVICE};

/// How deep the TOML parser lets tables, arrays and dotted keys nest before
/// it refuses the text (its own limit, so that a hostile file cannot
/// overflow the stack of the process that loaded the module). Valid
/// settings nest three deep.
const MAX_NESTING: usize = 80;

/// A text that is not TOML: the parser's message, where it stopped, and the
/// key written there.
pub(super) fn syntax_error(text: &str, origin: &str, err: &toml::de::Error) -> ConfigError {
    let too_deep = err.message().contains("recursion");
    let offset = err
        .span()
        .map(|span| span.start.min(text.len()))
        // The parser gives no place for a dotted key too deep: point at the
        // first line that nests that deep.
        .or_else(|| too_deep.then(|| too_deep_line(text)).flatten());
    let (line, column) = offset.map(|o| position(text, o)).unzip();
    let message = if too_deep {
        format!(
            "tables, arrays and dotted keys nested more than {MAX_NESTING} deep; valid settings nest three deep"
        )
    } else {
        clean_message(err.message())
    };
    ConfigError::Invalid {
        origin: origin.to_owned(),
        line,
        column,
        // No setting has a key this long; it would only flood the log.
        key: offset
            .and_then(|o| key_at(text, o))
            .filter(|key| key.len() <= 128),
        message: format!("TOML syntax error: {message}"),
    }
}

/// The byte offset of the first line with more than [`MAX_NESTING`] dots
/// and brackets (over-counting: a dot in a string counts too).
fn too_deep_line(text: &str) -> Option<usize> {
    let mut start = 0;
    for line in text.split_inclusive('\n') {
        if line.matches(['.', '[', '{']).count() > MAX_NESTING {
            return Some(start);
        }
        start += line.len();
    }
    None
}

/// A TOML text whose settings are wrong: an unknown key, a bad service
/// name (both pointed at where the key is written), or a bad value
/// (pointed at the value).
pub(super) fn setting_error(text: &str, origin: &str, err: &toml::de::Error) -> ConfigError {
    let span = err
        .span()
        .filter(|s| s.start <= s.end && s.end <= text.len());
    let message = err.message();
    let mut key = error_keys(err);
    let about_key = message.starts_with("unknown field `")
        || message.contains(LOWERCASED)
        || message.contains(NOT_A_SERVICE);
    if about_key {
        // The parser names the tables above the key; the key itself is
        // where the error points.
        if let Some(name) = span.clone().and_then(|s| written_key(text, s)) {
            key.push(name);
        }
    }
    let key = (!key.is_empty()).then(|| key.join("."));
    let (line, column) = span.map(|s| position(text, s.start)).unzip();
    let message = if about_key && key.as_deref().is_some_and(|k| k.ends_with("break_glass")) {
        BREAK_GLASS_PER_SERVICE.to_owned()
    } else {
        clean_message(message)
    };
    ConfigError::Invalid {
        origin: origin.to_owned(),
        line,
        column,
        key: key.filter(|key| key.len() <= 128),
        message,
    }
}

/// The keys of the tables the error is inside, outermost first. The
/// parser's error keeps them, and shows them only when it has no text to
/// quote: shown that way, they are its last line, "in `a.b`".
fn error_keys(err: &toml::de::Error) -> Vec<String> {
    let mut bare = err.clone();
    bare.set_input(None);
    let shown = bare.to_string();
    shown
        .lines()
        .last()
        .and_then(|l| l.strip_prefix("in `"))
        .and_then(|l| l.strip_suffix('`'))
        .map(|keys| keys.split('.').map(str::to_owned).collect())
        .unwrap_or_default()
}

/// The key written at `span` of `text`, unquoted.
fn written_key(text: &str, span: Range<usize>) -> Option<String> {
    dotted_key(text.get(span)?)
}

/// Where `text` writes the dotted `key` (1-based line and column), read
/// through the parser's spans; `None` where the key keeps its default.
pub(super) fn key_position(text: &str, key: &str) -> Option<(usize, usize)> {
    let document = DeTable::parse(text).ok()?;
    let mut table = document.get_ref();
    let mut parts = key.split('.').peekable();
    while let Some(part) = parts.next() {
        let (k, v) = table.iter().find(|(k, _)| k.get_ref().as_ref() == part)?;
        if parts.peek().is_none() {
            return Some(position(text, k.span().start));
        }
        match v.get_ref() {
            DeValue::Table(t) => table = t,
            _ => return None,
        }
    }
    None
}

/// Why `break_glass` is refused anywhere but in a `[service.NAME]` table.
pub(super) const BREAK_GLASS_PER_SERVICE: &str = "break_glass can only be set in a [service.NAME] table, for one PAM service (the console login: [service.login])";

/// The 1-based line and column (in characters) of byte `offset` in `text`.
pub(super) fn position(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (
        before.matches('\n').count() + 1,
        before[line_start..].chars().count() + 1,
    )
}

/// The dotted key that byte `offset` of `text` belongs to, read from the
/// source: a table header on that line, or the key of the assignment on that
/// line (or the nearest line above inside a multi-line value) joined to the
/// nearest preceding header. A best effort for error messages only.
pub(super) fn key_at(text: &str, offset: usize) -> Option<String> {
    let lines: Vec<&str> = text.split('\n').collect();
    let index = position(text, offset).0 - 1;
    let mut i = index.min(lines.len().saturating_sub(1));
    let leaf = loop {
        let line = lines.get(i)?;
        if let Some(header) = header_name(line) {
            return (i == index).then_some(header);
        }
        if let Some(key) = assignment_key(line) {
            break key;
        }
        i = i.checked_sub(1)?;
    };
    match lines[..i].iter().rev().find_map(|l| header_name(l)) {
        Some(section) => Some(format!("{section}.{leaf}")),
        None => Some(leaf),
    }
}

/// The error message on one line, in the words of a config file.
pub(super) fn clean_message(message: &str) -> String {
    let joined = message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    let replaced = joined.replacen("unknown field", "unknown key", 1);
    if replaced.starts_with("unknown key") {
        format!("{replaced}; check the spelling against the annotated default pam_mfa.toml")
    } else {
        replaced
    }
}

/// Byte index of the first `target` in `line` outside a quoted string, or of
/// a comment start if that comes first (then `None`).
fn find_unquoted(line: &str, target: char) -> Option<usize> {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        match quote {
            // Only basic ("...") strings have backslash escapes.
            Some('"') if escaped => escaped = false,
            Some('"') if c == '\\' => escaped = true,
            Some(q) if c == q => quote = None,
            None if c == target => return Some(i),
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == '#' => return None,
            _ => {}
        }
    }
    None
}

/// The normalized name of a `[table]` or `[[array]]` header line.
fn header_name(line: &str) -> Option<String> {
    let code = match find_unquoted(line, '#') {
        Some(i) => &line[..i],
        None => line,
    }
    .trim();
    let inner = code
        .strip_prefix("[[")
        .and_then(|s| s.strip_suffix("]]"))
        .or_else(|| code.strip_prefix('[').and_then(|s| s.strip_suffix(']')))?;
    // An array element such as `[1, 2]` inside a multi-line value is no header.
    if find_unquoted(inner, ',').is_some() || find_unquoted(inner, '=').is_some() {
        return None;
    }
    dotted_key(inner)
}

/// The normalized key of a `key = value` line.
pub(super) fn assignment_key(line: &str) -> Option<String> {
    let eq = find_unquoted(line, '=')?;
    dotted_key(&line[..eq])
}

/// `a . "b.c" . 'd'` -> `a.b.c.d`; `None` if a part is empty.
fn dotted_key(raw: &str) -> Option<String> {
    let mut parts = Vec::new();
    let mut rest = raw;
    loop {
        let (part, tail) = match find_unquoted(rest, '.') {
            Some(i) => (&rest[..i], Some(&rest[i + 1..])),
            None => (rest, None),
        };
        let part = part.trim();
        let unquoted = part
            .strip_prefix('"')
            .and_then(|p| p.strip_suffix('"'))
            .or_else(|| part.strip_prefix('\'').and_then(|p| p.strip_suffix('\'')))
            .unwrap_or(part);
        if unquoted.is_empty() {
            return None;
        }
        parts.push(unquoted);
        match tail {
            Some(t) => rest = t,
            None => break,
        }
    }
    Some(parts.join("."))
}
