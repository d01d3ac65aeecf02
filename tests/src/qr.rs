//! Reading a QR code off a terminal transcript, as a phone reads it off
//! the screen.
//!
//! pam_mfa draws the enrollment QR code with UTF-8 half blocks, two module
//! rows per text line (`▀` top, `▄` bottom, `█` both, space neither), and
//! draws *light* modules as ink, for light-on-dark terminals. This module
//! rebuilds the module matrix from those characters, paints it as a
//! grey-scale picture (ink white, the rest black) and lets `rqrr` find and
//! decode the code in it.

/// The characters of the UTF-8 drawing.
const BLOCKS: [char; 4] = [' ', '▀', '▄', '█'];

/// Pixels per module in the picture handed to the decoder.
const SCALE: usize = 4;

/// Whether `line` is a row of the drawing: only block characters, some ink.
fn is_qr_row(line: &str) -> bool {
    !line.is_empty() && line.chars().all(|c| BLOCKS.contains(&c)) && line.chars().any(|c| c != ' ')
}

/// The rows of the largest drawing in `text`: the longest run of
/// consecutive lines of block characters of equal width.
pub fn find_utf8_drawing(text: &str) -> Option<Vec<String>> {
    let mut best: Vec<String> = Vec::new();
    let mut run: Vec<String> = Vec::new();
    let width = |l: &String| l.chars().count();
    for line in text.lines().map(|l| l.trim_end_matches('\r')) {
        let continues = is_qr_row(line)
            && run
                .first()
                .is_none_or(|first| width(first) == line.chars().count());
        if continues {
            run.push(line.to_owned());
            continue;
        }
        if run.len() > best.len() {
            best = std::mem::take(&mut run);
        }
        run.clear();
        if is_qr_row(line) {
            run.push(line.to_owned());
        }
    }
    if run.len() > best.len() {
        best = run;
    }
    (best.len() >= 10).then_some(best)
}

/// The module matrix of a UTF-8 drawing, `true` for dark modules, with the
/// half row that pads an odd number of module rows dropped (a QR code with
/// its quiet zone is square).
pub fn utf8_modules(rows: &[String]) -> Vec<Vec<bool>> {
    let width = rows.first().map_or(0, |r| r.chars().count());
    let mut modules = Vec::with_capacity(rows.len() * 2);
    for row in rows {
        let (top, bottom): (Vec<bool>, Vec<bool>) = row
            .chars()
            .map(|c| {
                let ink_top = matches!(c, '▀' | '█');
                let ink_bottom = matches!(c, '▄' | '█');
                // Ink is light: a dark module is where there is no ink.
                (!ink_top, !ink_bottom)
            })
            .unzip();
        modules.push(top);
        modules.push(bottom);
    }
    modules.truncate(width);
    modules
}

/// Decodes a module matrix (`true` dark) as a phone camera would see it.
///
/// # Errors
/// Why no code could be read.
pub fn decode_modules(modules: &[Vec<bool>]) -> Result<String, String> {
    let height = modules.len();
    let width = modules.first().map_or(0, Vec::len);
    if height == 0 || modules.iter().any(|r| r.len() != width) {
        return Err(format!("not a rectangle of modules ({height} rows)"));
    }
    // A quiet zone of light modules around the picture, in case the drawing
    // was cut close.
    let margin = 4;
    let (w, h) = ((width + 2 * margin) * SCALE, (height + 2 * margin) * SCALE);
    let mut image = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| {
        let (mx, my) = (x / SCALE, y / SCALE);
        let dark = mx >= margin
            && my >= margin
            && modules
                .get(my - margin)
                .and_then(|r| r.get(mx - margin))
                .copied()
                .unwrap_or(false);
        if dark {
            0
        } else {
            255
        }
    });
    let grids = image.detect_grids();
    match grids.as_slice() {
        [grid] => grid
            .decode()
            .map(|(_, content)| content)
            .map_err(|e| format!("the QR code does not decode: {e}")),
        [] => Err("no QR code found in the picture".into()),
        more => Err(format!("{} QR codes found, expected one", more.len())),
    }
}

/// Finds the UTF-8 QR code in a transcript and decodes it.
///
/// # Errors
/// Why no code could be read.
pub fn decode_utf8_qr(text: &str) -> Result<String, String> {
    let rows = find_utf8_drawing(text).ok_or("no UTF-8 block drawing in the text")?;
    decode_modules(&utf8_modules(&rows))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mfa_core::config::QrStyle;

    const URI: &str = "otpauth://totp/host:alice%40host?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP\
                       &issuer=host&algorithm=SHA1&digits=6&period=30";

    #[test]
    fn what_pam_mfa_draws_decodes_to_its_uri() {
        let lines = mfa_core::qr::render(URI, QrStyle::Utf8).unwrap();
        let text = format!("Scan this:\n{}\nSecret: ...\n", lines.join("\n"));
        assert_eq!(decode_utf8_qr(&text).unwrap(), URI);
    }

    #[test]
    fn an_inverted_drawing_does_not_decode() {
        // Read with ink as dark, the code is a negative: proof that the
        // inversion above is needed and right.
        let lines = mfa_core::qr::render(URI, QrStyle::Utf8).unwrap();
        let modules: Vec<Vec<bool>> = utf8_modules(&lines)
            .into_iter()
            .map(|r| r.into_iter().map(|d| !d).collect())
            .collect();
        assert!(decode_modules(&modules).is_err());
    }

    #[test]
    fn a_damaged_drawing_is_not_found_whole() {
        let mut lines = mfa_core::qr::render(URI, QrStyle::Utf8).unwrap();
        let cut = lines.len() / 2;
        lines[cut] = "Secret: interrupts the drawing".into();
        assert!(decode_utf8_qr(&lines.join("\n")).is_err());
    }
}
