//! Room export (E9): a selection of messages, already decrypted and verified by the
//! caller, written as JSON or as a readable PDF transcript. Everything happens on the
//! client; only someone who could read the messages can export them.
//!
//! Text is sanitized on the way out: control characters (other than line breaks in a
//! message's text) and bidirectional overrides become U+FFFD, so an exported transcript
//! cannot drive a terminal or reorder what a reader sees.

use crate::error::{Error, Result};
use pdf_writer::{Content, Name, Pdf, Rect, Ref, Str, TextStr};
use serde::{Deserialize, Serialize};
use std::io::Write;

/// One message as exported. `Debug` leaves out the text and attachment names.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportMessage {
    /// The message id.
    pub id: String,
    /// The sender's name.
    pub sender: String,
    /// When it was sent, in Unix milliseconds.
    pub sent_at: i64,
    /// The text (possibly several lines).
    pub text: String,
    /// The names of its attachments.
    pub attachments: Vec<String>,
    /// Whether it was end-to-end encrypted.
    pub encrypted: bool,
}

impl std::fmt::Debug for ExportMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExportMessage")
            .field("id", &self.id)
            .field("sender", &self.sender)
            .field("sent_at", &self.sent_at)
            .field("attachments", &self.attachments.len())
            .field("encrypted", &self.encrypted)
            .finish_non_exhaustive()
    }
}

/// A JSON export: the room's name and its messages, in the order given.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transcript {
    /// The room's name.
    pub room: String,
    /// The messages.
    pub messages: Vec<ExportMessage>,
}

/// Writes `messages` of the room `room` as a JSON [`Transcript`].
pub fn export_json(messages: &[ExportMessage], room: &str, out: impl Write) -> Result<()> {
    let transcript = Transcript {
        room: clean_line(room),
        messages: messages
            .iter()
            .map(|m| ExportMessage {
                id: clean_line(&m.id),
                sender: clean_line(&m.sender),
                sent_at: m.sent_at,
                text: clean_text(&m.text),
                attachments: m.attachments.iter().map(|a| clean_line(a)).collect(),
                encrypted: m.encrypted,
            })
            .collect(),
    };
    let mut out = out;
    serde_json::to_writer_pretty(&mut out, &transcript).map_err(|e| Error::Storage {
        what: "writing the export".into(),
        source: e.into(),
    })?;
    out.write_all(b"\n")
        .map_err(Error::storage("writing the export"))?;
    out.flush().map_err(Error::storage("writing the export"))
}

/// Writes `messages` of the room `room` as a PDF transcript: the room's name, then
/// per message its sender, time (UTC), text wrapped to the page and attachment names.
/// The font is the PDF's built-in Courier; characters it lacks are shown as `?`.
pub fn export_pdf(messages: &[ExportMessage], room: &str, out: impl Write) -> Result<()> {
    let lines = layout(messages, room);
    let bytes = render(&lines, room);
    let mut out = out;
    out.write_all(&bytes)
        .map_err(Error::storage("writing the export"))?;
    out.flush().map_err(Error::storage("writing the export"))
}

/// Page geometry, in points (A4).
const PAGE_WIDTH: f32 = 595.0;
const PAGE_HEIGHT: f32 = 842.0;
const MARGIN: f32 = 56.0;
const FONT_SIZE: f32 = 10.0;
const LEADING: f32 = 13.0;
/// Courier's glyphs are all 0.6 em wide, so a line holds a fixed number of them.
const COLUMNS: usize = 80;
/// Text lines per page, the footer aside.
const ROWS: usize = 54;
/// Message text is indented under its header line.
const INDENT: &[u8] = b"  ";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Style {
    Regular,
    Bold,
}

/// One line of the transcript, already in the font's encoding.
struct Line {
    style: Style,
    text: Vec<u8>,
}

fn layout(messages: &[ExportMessage], room: &str) -> Vec<Line> {
    let mut lines = Vec::new();
    for piece in wrap(&win_ansi(&clean_line(room)), COLUMNS) {
        lines.push(Line {
            style: Style::Bold,
            text: piece,
        });
    }
    let count = match messages.len() {
        1 => "1 message".to_owned(),
        n => format!("{n} messages"),
    };
    lines.push(regular(count.into_bytes()));
    lines.push(regular(Vec::new()));
    for m in messages {
        let mut head = win_ansi(&clean_line(&m.sender));
        head.extend_from_slice(b"  ");
        head.extend_from_slice(utc(m.sent_at).as_bytes());
        if m.encrypted {
            head.extend_from_slice(b"  (encrypted)");
        }
        for piece in wrap(&head, COLUMNS) {
            lines.push(Line {
                style: Style::Bold,
                text: piece,
            });
        }
        for paragraph in clean_text(&m.text).split('\n') {
            for piece in wrap(&win_ansi(paragraph), COLUMNS - INDENT.len()) {
                lines.push(regular([INDENT, &piece].concat()));
            }
        }
        for name in &m.attachments {
            let mut text = b"Attachment: ".to_vec();
            text.extend_from_slice(&win_ansi(&clean_line(name)));
            for piece in wrap(&text, COLUMNS - INDENT.len()) {
                lines.push(regular([INDENT, &piece].concat()));
            }
        }
        lines.push(regular(Vec::new()));
    }
    lines
}

fn regular(text: Vec<u8>) -> Line {
    Line {
        style: Style::Regular,
        text,
    }
}

/// The PDF: a catalog, a page tree, the two built-in fonts, and one content stream
/// per page of [`ROWS`] lines with a page number at the foot.
fn render(lines: &[Line], room: &str) -> Vec<u8> {
    let catalog = Ref::new(1);
    let tree = Ref::new(2);
    let regular_font = Ref::new(3);
    let bold_font = Ref::new(4);
    let info = Ref::new(5);
    let (regular_name, bold_name) = (Name(b"F1"), Name(b"F2"));

    let pages: Vec<&[Line]> = lines.chunks(ROWS).collect();
    let page_refs: Vec<(Ref, Ref)> = (0..pages.len())
        .map(|i| {
            let base = 6 + 2 * i32::try_from(i).unwrap_or(i32::MAX / 4);
            (Ref::new(base), Ref::new(base + 1))
        })
        .collect();

    let mut pdf = Pdf::new();
    pdf.catalog(catalog).pages(tree);
    pdf.pages(tree)
        .kids(page_refs.iter().map(|(page, _)| *page))
        .count(i32::try_from(pages.len()).unwrap_or(i32::MAX));
    pdf.type1_font(regular_font)
        .base_font(Name(b"Courier"))
        .encoding_predefined(Name(b"WinAnsiEncoding"));
    pdf.type1_font(bold_font)
        .base_font(Name(b"Courier-Bold"))
        .encoding_predefined(Name(b"WinAnsiEncoding"));
    pdf.document_info(info)
        .title(TextStr(&clean_line(room)))
        .producer(TextStr("Sotto"));

    let total = pages.len();
    for (number, (rows, (page_ref, content_ref))) in pages.iter().zip(&page_refs).enumerate() {
        let mut page = pdf.page(*page_ref);
        page.media_box(Rect::new(0.0, 0.0, PAGE_WIDTH, PAGE_HEIGHT))
            .parent(tree)
            .contents(*content_ref);
        page.resources()
            .fonts()
            .pair(regular_name, regular_font)
            .pair(bold_name, bold_font);
        drop(page);

        let mut content = Content::new();
        let mut y = PAGE_HEIGHT - MARGIN;
        for line in *rows {
            if !line.text.is_empty() {
                let font = match line.style {
                    Style::Regular => regular_name,
                    Style::Bold => bold_name,
                };
                content
                    .begin_text()
                    .set_font(font, FONT_SIZE)
                    .next_line(MARGIN, y)
                    .show(Str(&line.text))
                    .end_text();
            }
            y -= LEADING;
        }
        let footer = format!("Page {} of {total}", number + 1);
        content
            .begin_text()
            .set_font(regular_name, FONT_SIZE - 2.0)
            .next_line(MARGIN, MARGIN / 2.0)
            .show(Str(footer.as_bytes()))
            .end_text();
        pdf.stream(*content_ref, &content.finish());
    }
    pdf.finish()
}

/// Cuts a line into pieces of at most `width` bytes, at spaces where it can.
fn wrap(text: &[u8], width: usize) -> Vec<Vec<u8>> {
    let width = width.max(1);
    let mut out = Vec::new();
    let mut line: Vec<u8> = Vec::new();
    for word in text.split(|&b| b == b' ') {
        if !line.is_empty() && line.len() + 1 + word.len() <= width {
            line.push(b' ');
            line.extend_from_slice(word);
            continue;
        }
        if !line.is_empty() {
            out.push(std::mem::take(&mut line));
        }
        let mut word = word;
        while word.len() > width {
            let (head, rest) = word.split_at(width);
            out.push(head.to_vec());
            word = rest;
        }
        line.extend_from_slice(word);
    }
    if !line.is_empty() || out.is_empty() {
        out.push(line);
    }
    out
}

/// `text` in the built-in fonts' WinAnsi encoding; what it cannot show becomes `?`.
fn win_ansi(text: &str) -> Vec<u8> {
    text.chars().map(win_ansi_byte).collect()
}

fn win_ansi_byte(c: char) -> u8 {
    let code = u32::from(c);
    match code {
        0x20..=0x7e | 0xa0..=0xff => u8::try_from(code).unwrap_or(b'?'),
        _ => match c {
            '€' => 0x80,
            '‚' => 0x82,
            'ƒ' => 0x83,
            '„' => 0x84,
            '…' => 0x85,
            '†' => 0x86,
            '‡' => 0x87,
            'ˆ' => 0x88,
            '‰' => 0x89,
            'Š' => 0x8a,
            '‹' => 0x8b,
            'Œ' => 0x8c,
            'Ž' => 0x8e,
            '\u{2018}' => 0x91,
            '\u{2019}' => 0x92,
            '\u{201c}' => 0x93,
            '\u{201d}' => 0x94,
            '•' => 0x95,
            '–' => 0x96,
            '—' => 0x97,
            '˜' => 0x98,
            '™' => 0x99,
            'š' => 0x9a,
            '›' => 0x9b,
            'œ' => 0x9c,
            'ž' => 0x9e,
            'Ÿ' => 0x9f,
            _ => b'?',
        },
    }
}

/// Whether `c` may not appear in exported text: control characters and the
/// bidirectional embedding, override and isolate marks.
fn unsafe_char(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// A message text: line breaks kept (`\r\n` and `\r` become `\n`), tabs become
/// spaces, other unsafe characters U+FFFD.
fn clean_text(text: &str) -> String {
    text.replace("\r\n", "\n")
        .chars()
        .map(|c| match c {
            '\n' => '\n',
            '\r' => '\n',
            '\t' => ' ',
            c if unsafe_char(c) => '\u{fffd}',
            c => c,
        })
        .collect()
}

/// A one-line field (name, id): every unsafe character, line breaks included, becomes
/// U+FFFD.
fn clean_line(text: &str) -> String {
    text.chars()
        .map(|c| if unsafe_char(c) { '\u{fffd}' } else { c })
        .collect()
}

/// `YYYY-MM-DD HH:MM:SS UTC` for Unix milliseconds (clamped to years 1970–9999).
pub fn utc(ms: i64) -> String {
    const LAST: i64 = 253_402_300_799_999; // 9999-12-31 23:59:59.999
    let secs = ms.clamp(0, LAST) / 1000;
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_date(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01 (`days` ≥ 0), counting in
/// 400-year eras of 146 097 days whose years start on 1 March, so the leap day is last.
fn civil_date(days: i64) -> (i64, i64, i64) {
    let shifted = days + 719_468; // days from 0000-03-01 to 1970-01-01
    let era = shifted / 146_097;
    let day_of_era = shifted % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153; // 0 = March
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = era * 400 + year_of_era + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_795_398_172_123), "2026-11-23 01:42:52 UTC");
        assert_eq!(utc(4_107_542_399_000), "2100-02-28 23:59:59 UTC");
        assert_eq!(utc(-5), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(i64::MAX), "9999-12-31 23:59:59 UTC");
    }

    #[test]
    fn text_is_sanitized() {
        assert_eq!(
            clean_text("a\u{1b}[31mb\r\nc\td\u{202e}e\u{85}"),
            "a\u{fffd}[31mb\nc d\u{fffd}e\u{fffd}"
        );
        assert_eq!(clean_line("x\ny"), "x\u{fffd}y");
    }

    #[test]
    fn characters_outside_the_font_become_question_marks() {
        assert_eq!(win_ansi("café – 你好 😀"), b"caf\xe9 \x96 ?? ?".to_vec());
    }

    #[test]
    fn lines_wrap_at_spaces_and_split_long_words() {
        assert_eq!(
            wrap(b"aa bb cc", 5),
            vec![b"aa bb".to_vec(), b"cc".to_vec()]
        );
        assert_eq!(
            wrap(b"abcdefghij k", 4),
            vec![b"abcd".to_vec(), b"efgh".to_vec(), b"ij k".to_vec()]
        );
        assert_eq!(wrap(b"", 4), vec![Vec::<u8>::new()]);
    }
}
