//! Room export: JSON that reads back as written, and a PDF whose text a PDF reader finds.

use sotto_client::{ExportMessage, Transcript, export_json, export_pdf};

fn messages() -> Vec<ExportMessage> {
    vec![
        ExportMessage {
            id: "m1".into(),
            sender: "alice".into(),
            sent_at: 1_795_398_172_000,
            text: "The quarterly numbers are in.".into(),
            attachments: vec!["report.pdf".into(), "chart.png".into()],
            encrypted: true,
        },
        ExportMessage {
            id: "m2".into(),
            sender: "bob".into(),
            sent_at: 1_795_398_232_000,
            text: "Thanks, reading them now.\nSecond line here.".into(),
            attachments: vec![],
            encrypted: false,
        },
    ]
}

#[test]
fn json_round_trips() {
    let mut out = Vec::new();
    export_json(&messages(), "Finance", &mut out).unwrap();
    let back: Transcript = serde_json::from_slice(&out).unwrap();
    assert_eq!(back.room, "Finance");
    assert_eq!(back.messages, messages());
}

#[test]
fn json_is_sanitized() {
    let mut hostile = messages();
    hostile[0].text = "red \u{1b}[31malert\u{202e}".into();
    hostile[0].sender = "eve\nmallory".into();
    let mut out = Vec::new();
    export_json(&hostile, "R\u{7}oom", &mut out).unwrap();
    let back: Transcript = serde_json::from_slice(&out).unwrap();
    assert_eq!(back.room, "R\u{fffd}oom");
    assert_eq!(back.messages[0].text, "red \u{fffd}[31malert\u{fffd}");
    assert_eq!(back.messages[0].sender, "eve\u{fffd}mallory");
}

/// All text on all pages, as a PDF reader extracts it.
fn pdf_text(pdf: &[u8]) -> String {
    let doc = lopdf::Document::load_mem(pdf).unwrap();
    let pages: Vec<u32> = doc.get_pages().keys().copied().collect();
    doc.extract_text(&pages).unwrap()
}

#[test]
fn pdf_has_the_room_senders_times_texts_and_attachments() {
    let mut out = Vec::new();
    export_pdf(&messages(), "Finance", &mut out).unwrap();
    assert!(out.starts_with(b"%PDF-"));
    let text = pdf_text(&out);
    for needle in [
        "Finance",
        "alice",
        "bob",
        "2026-11-23 01:42:52 UTC",
        "The quarterly numbers are in.",
        "Thanks, reading them now.",
        "Second line here.",
        "Attachment: report.pdf",
        "Attachment: chart.png",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from {text:?}");
    }
}

#[test]
fn pdf_wraps_long_text_over_pages_and_survives_any_characters() {
    let long = "word ".repeat(3000);
    let mut many: Vec<ExportMessage> = (0..120)
        .map(|i| ExportMessage {
            id: format!("m{i}"),
            sender: format!("user{i}"),
            sent_at: i64::from(i) * 60_000,
            text: format!("message number {i}"),
            attachments: vec![],
            encrypted: false,
        })
        .collect();
    many[3].text = long;
    many[4].text = "emoji 😀, CJK 你好, RTL \u{202e}olleh, café, ESC \u{1b}, NUL \0 end".into();
    many[5].sender = "x".repeat(500);
    many[6].sent_at = i64::MIN;
    many[7].sent_at = i64::MAX;
    let mut out = Vec::new();
    export_pdf(&many, "Busy room", &mut out).unwrap();
    let doc = lopdf::Document::load_mem(&out).unwrap();
    assert!(doc.get_pages().len() > 5, "{} pages", doc.get_pages().len());
    let text = pdf_text(&out);
    assert!(text.contains("user119"));
    assert!(text.contains("message number 119"));
    assert!(text.contains("emoji ?, CJK ??, RTL ?olleh, caf"), "{text}");
    assert!(!text.contains('\u{1b}'));
}

#[test]
fn an_empty_export_is_a_valid_pdf() {
    let mut out = Vec::new();
    export_pdf(&[], "Quiet", &mut out).unwrap();
    let text = pdf_text(&out);
    assert!(text.contains("Quiet"));
    assert!(text.contains("0 messages"));
}
