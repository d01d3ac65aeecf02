//! The enrollment QR code as terminal text.
//!
//! Two styles: UTF-8 half blocks (two module rows per text line, compact
//! enough for an SSH prompt) and plain ASCII for terminals without UTF-8.
//! Both draw *light* modules as ink, like `qrencode -t UTF8`, because most
//! terminals print light text on a dark background; phone scanners read the
//! result in either case. Each style keeps the four-module quiet zone.

use std::fmt;

use qrcode::render::unicode::Dense1x2;
use qrcode::{EcLevel, QrCode};
use zeroize::Zeroizing;

use crate::config::QrStyle;

/// The text could not be encoded as a QR code (far too long).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QrError(String);

impl fmt::Display for QrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot draw the QR code ({}); type the secret into the app instead",
            self.0
        )
    }
}

impl std::error::Error for QrError {}

/// Draws `text` as a QR code in `style`, one string per terminal line.
/// [`QrStyle::None`] gives no lines.
///
/// The drawing carries the secret as surely as the URI does: the drawn text
/// is wiped once it is cut into lines, and the caller should keep the lines
/// in a `Zeroizing` too. (The QR encoder's own working buffers are freed
/// unwiped; that is outside this crate.)
///
/// # Errors
/// [`QrError`] if the text does not fit in a QR code.
pub fn render(text: &str, style: QrStyle) -> Result<Vec<String>, QrError> {
    if style == QrStyle::None {
        return Ok(Vec::new());
    }
    // Level M survives a smudged screen and keeps a typical otpauth URI
    // small enough (about 45 modules) for an 80-column terminal.
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M)
        .map_err(|e| QrError(e.to_string()))?;
    let drawn = Zeroizing::new(match style {
        QrStyle::Utf8 => code
            .render::<Dense1x2>()
            .dark_color(Dense1x2::Light)
            .light_color(Dense1x2::Dark)
            .quiet_zone(true)
            .build(),
        QrStyle::Ascii => code
            .render::<char>()
            .dark_color(' ')
            .light_color('#')
            .module_dimensions(2, 1)
            .quiet_zone(true)
            .build(),
        QrStyle::None => String::new(),
    });
    Ok(drawn.lines().map(str::to_owned).collect())
}

/// Joins `lines` into messages of at most `max_bytes` bytes each, so a QR
/// code travels through PAM conversations that limit the size of one
/// message (512 bytes in Linux-PAM). Lines are kept whole where they fit; a
/// longer line (a long `otpauth://` URI) is cut at character boundaries.
/// This is the one place messages are cut: the flow cuts every text that
/// can exceed [`crate::flow::MAX_MESSAGE`] with it, and the PAM module sends
/// each text it is given as one message (the `Prompter` contract).
///
/// The text may carry a secret (the enrollment message), so each message is
/// built in a buffer sized for `max_bytes` that never grows: no reallocation
/// leaves a copy behind. The caller should keep the result in a `Zeroizing`.
pub fn chunk_lines<S: AsRef<str>>(lines: &[S], max_bytes: usize) -> Vec<String> {
    let max_bytes = max_bytes.max(4);
    let mut pieces: Vec<&str> = Vec::new();
    for line in lines {
        let mut rest = line.as_ref();
        while rest.len() > max_bytes {
            let mut cut = max_bytes;
            while !rest.is_char_boundary(cut) {
                cut -= 1;
            }
            pieces.push(&rest[..cut]);
            rest = &rest[cut..];
        }
        pieces.push(rest);
    }
    let mut out = Vec::new();
    let mut current = String::with_capacity(max_bytes);
    for line in pieces {
        let extra = line.len() + usize::from(!current.is_empty());
        if !current.is_empty() && current.len() + extra > max_bytes {
            out.push(std::mem::replace(
                &mut current,
                String::with_capacity(max_bytes),
            ));
        }
        if !current.is_empty() {
            current.push('\n');
        }
        current.push_str(line);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const URI: &str = "otpauth://totp/host:alice?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=host&algorithm=SHA1&digits=6&period=30";

    #[test]
    fn utf8_uses_half_blocks_and_fits_a_terminal() {
        let lines = render(URI, QrStyle::Utf8).unwrap();
        assert!(lines.iter().all(|l| l.chars().all(|c| " ▀▄█".contains(c))));
        let width = lines[0].chars().count();
        assert!(width <= 80, "{width}");
        assert!(lines.iter().all(|l| l.chars().count() == width));
    }

    #[test]
    fn ascii_uses_only_hash_and_space() {
        let lines = render(URI, QrStyle::Ascii).unwrap();
        assert!(lines
            .iter()
            .all(|l| l.bytes().all(|b| b == b'#' || b == b' ')));
    }

    #[test]
    fn none_draws_nothing() {
        assert!(render(URI, QrStyle::None).unwrap().is_empty());
    }

    #[test]
    fn an_over_long_line_is_cut_at_character_boundaries() {
        let line = "あ".repeat(300);
        let chunks = chunk_lines(std::slice::from_ref(&line), 512);
        assert!(chunks.iter().all(|c| c.len() <= 512));
        assert_eq!(chunks.concat(), line);
    }

    #[test]
    fn chunks_respect_the_message_limit_without_splitting_lines() {
        let lines = render(URI, QrStyle::Utf8).unwrap();
        let chunks = chunk_lines(&lines, 512);
        assert!(chunks.len() > 1);
        assert!(chunks.iter().all(|c| c.len() <= 512));
        assert_eq!(chunks.join("\n"), lines.join("\n"));
    }
}
