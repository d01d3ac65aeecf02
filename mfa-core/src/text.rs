//! Text that came from users, made safe for a terminal.
//!
//! Device names, user names, PAM service and host names and spool file
//! names can hold anything a user managed to put there. Written raw to an
//! administrator's terminal, an escape sequence could retitle the window,
//! clear the screen, rewrite what was shown or (on some terminals) answer
//! back with input; a bidirectional override makes a name read differently
//! from what it is. So names are checked where they enter
//! ([`crate::enrollment::check_device_name`]) and every front end shows
//! stored text through [`escape`]. The audit log has its own, stricter
//! quoting (`crate::audit`).

use std::borrow::Cow;
use std::fmt::Write as _;

/// Format characters (Unicode general category Cf): invisible, and some
/// reorder the text around them (bidirectional embeddings, overrides and
/// isolates, U+202A..U+202E and U+2066..U+2069). Unicode 15; U+2065, which
/// is unassigned but reserved as invisible, is included.
const FORMAT: [(char, char); 20] = [
    ('\u{ad}', '\u{ad}'),
    ('\u{600}', '\u{605}'),
    ('\u{61c}', '\u{61c}'),
    ('\u{6dd}', '\u{6dd}'),
    ('\u{70f}', '\u{70f}'),
    ('\u{890}', '\u{891}'),
    ('\u{8e2}', '\u{8e2}'),
    ('\u{180e}', '\u{180e}'),
    ('\u{200b}', '\u{200f}'),
    ('\u{202a}', '\u{202e}'),
    ('\u{2060}', '\u{206f}'),
    ('\u{feff}', '\u{feff}'),
    ('\u{fff9}', '\u{fffb}'),
    ('\u{110bd}', '\u{110bd}'),
    ('\u{110cd}', '\u{110cd}'),
    ('\u{13430}', '\u{1343f}'),
    ('\u{1bca0}', '\u{1bca3}'),
    ('\u{1d173}', '\u{1d17a}'),
    ('\u{e0001}', '\u{e0001}'),
    ('\u{e0020}', '\u{e007f}'),
];

/// True for a character that is shown as itself: everything except
/// control characters (C0, DEL, C1), format characters (Cf, see
/// [`FORMAT`]), the line and paragraph separators U+2028 and U+2029, and
/// noncharacters (U+FDD0..U+FDEF and the last two code points of every
/// plane).
pub fn is_printable(c: char) -> bool {
    let n = u32::from(c);
    !(c.is_control()
        || FORMAT.iter().any(|&(lo, hi)| (lo..=hi).contains(&c))
        || c == '\u{2028}'
        || c == '\u{2029}'
        || (0xfdd0..=0xfdef).contains(&n)
        || n & 0xfffe == 0xfffe)
}

/// `text` with every character that is not [`is_printable`] written as a
/// visible escape: `\x1b` for C0 controls and DEL, `\u{202e}` for the
/// others. Printable text, backslashes included, is left as it is, so what
/// an administrator copies from the screen (a name, a command to run) is
/// what was stored; the JSON output carries every value exactly.
pub fn escape(text: &str) -> Cow<'_, str> {
    if text.chars().all(is_printable) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if is_printable(c) {
            out.push(c);
        } else if u32::from(c) < 0x80 {
            let _ = write!(out, "\\x{:02x}", u32::from(c));
        } else {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_escapes_become_visible() {
        assert_eq!(escape("\x1b]0;pwned\x07"), r"\x1b]0;pwned\x07");
        assert_eq!(escape("\x1b[2J"), r"\x1b[2J");
        assert_eq!(escape("a\tb\nc\rd\0"), r"a\x09b\x0ac\x0dd\x00");
        assert_eq!(escape("del\x7f"), r"del\x7f");
        assert_eq!(escape("csi\u{9b}31m"), r"csi\u{9b}31m");
    }

    #[test]
    fn text_that_reads_differently_becomes_visible() {
        assert_eq!(escape("phone\u{202e}enohp"), r"phone\u{202e}enohp");
        assert_eq!(escape("\u{2066}x\u{2069}"), r"\u{2066}x\u{2069}");
        assert_eq!(escape("zero\u{200b}width"), r"zero\u{200b}width");
        assert_eq!(escape("bom\u{feff}"), r"bom\u{feff}");
        assert_eq!(escape("tag\u{e0041}"), r"tag\u{e0041}");
        assert_eq!(escape("line\u{2028}sep"), r"line\u{2028}sep");
        assert_eq!(escape("non\u{fffe}\u{10ffff}"), r"non\u{fffe}\u{10ffff}");
    }

    #[test]
    fn printable_text_is_left_alone() {
        for text in [
            "phone",
            "my phone",
            "Téléphone de Zoé",
            "電話",
            "📱",
            r"back\slash \x1b",
            "\u{a0}nbsp",
            "",
        ] {
            assert!(
                matches!(escape(text), Cow::Borrowed(t) if t == text),
                "{text:?}"
            );
        }
    }

    #[test]
    fn every_control_and_format_character_is_caught() {
        for n in (0..0x20).chain(0x7f..0xa0) {
            assert!(!is_printable(char::from_u32(n).unwrap()), "{n:#x}");
        }
        for c in ['\u{202a}', '\u{202b}', '\u{202c}', '\u{202d}', '\u{202e}'] {
            assert!(!is_printable(c), "{c:?}");
        }
        for c in [
            '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}', '\u{200e}', '\u{200f}',
        ] {
            assert!(!is_printable(c), "{c:?}");
        }
        for c in [' ', '~', '\u{a1}', '\u{2027}', '\u{202f}', '\u{fffd}'] {
            assert!(is_printable(c), "{c:?}");
        }
    }
}
