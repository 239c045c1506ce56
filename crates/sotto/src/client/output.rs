//! What reaches the terminal: other people's text made harmless, JSON for machines, and
//! the key-change warnings every server command repeats until they are dealt with.
//!
//! Machine output (`--json`) is one JSON value on standard output: an object for a
//! single thing, and for lists one object per line (JSON Lines), so a script can read
//! results as they come. Human output goes to standard output too; warnings and errors
//! go to standard error.

use serde::Serialize;
use sotto_client::Client;
use std::io::Write;

/// `text` made safe to print: control characters (C0 including newline and tab, DEL,
/// C1 such as the 8-bit CSI) and the invisible bidirectional controls that can reorder
/// what a line appears to say become U+FFFD, so text from other people cannot move the
/// cursor, recolour or clear the screen, or disguise itself. Multi-line text is split
/// into lines first and each line sanitized.
pub(crate) fn sanitize(text: &str) -> String {
    text.chars()
        .map(|c| if is_unsafe(c) { '\u{FFFD}' } else { c })
        .collect()
}

fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c,
            // Marks and embeddings, overrides, isolates (Unicode bidi controls).
            '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
            // Line and paragraph separators break lines in some terminals.
            | '\u{2028}' | '\u{2029}')
}

/// Prints one value as JSON on its own line.
pub(crate) fn json_line(value: &impl Serialize) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

/// Warns on standard error about every contact whose identity key changed and waits to
/// be accepted. Called after each command that talked to the server.
pub(crate) fn warn_key_changes(client: &Client) {
    let names = crate::client::names::Names::load(client.profile());
    for user in client.pending_key_changes() {
        let who = sanitize(names.name_of(user.as_str()).unwrap_or(user.as_str()));
        eprintln!(
            "WARNING: the identity key of {who} CHANGED. Someone may be impersonating them, \
             or they reset their keys. Check the safety number with them: `sotto verify {who}`; \
             then accept it: `sotto verify {who} --accept-change`."
        );
    }
}

/// `YYYY-MM-DD HH:MM` (UTC) of a Unix-milliseconds time.
pub(crate) fn utc_minute(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (the proleptic Gregorian calendar).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}",
        rest / 3600,
        rest % 3600 / 60
    )
}

#[cfg(test)]
mod tests {
    use super::{sanitize, utc_minute};

    #[test]
    fn terminal_controls_are_neutralised() {
        assert_eq!(sanitize("plain text, ünïcödé ✓"), "plain text, ünïcödé ✓");
        // ESC sequences: clear screen, set title (OSC … BEL).
        assert_eq!(sanitize("a\u{1b}[2Jb"), "a\u{FFFD}[2Jb");
        assert_eq!(sanitize("\u{1b}]0;x\u{07}"), "\u{FFFD}]0;x\u{FFFD}");
        // C1 CSI, DEL, newline, carriage return, tab, NUL.
        assert_eq!(
            sanitize("\u{9b}31m\u{7f}\n\r\t\0"),
            "\u{FFFD}31m\u{FFFD}\u{FFFD}\u{FFFD}\u{FFFD}\u{FFFD}"
        );
        // Bidi override and isolates, which can make "exe.txt" read as "txt.exe".
        assert_eq!(
            sanitize("a\u{202E}b\u{2066}c\u{2069}d\u{200F}"),
            "a\u{FFFD}b\u{FFFD}c\u{FFFD}d\u{FFFD}"
        );
        assert_eq!(sanitize("x\u{2028}y"), "x\u{FFFD}y");
    }

    #[test]
    fn times_are_shown_in_utc() {
        assert_eq!(utc_minute(0), "1970-01-01 00:00");
        assert_eq!(utc_minute(951_782_400_000), "2000-02-29 00:00");
        assert_eq!(utc_minute(1_795_000_000_000), "2026-11-18 11:06");
        assert_eq!(utc_minute(-60_000), "1969-12-31 23:59");
    }
}
