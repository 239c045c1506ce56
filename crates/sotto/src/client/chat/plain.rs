//! `sotto chat ROOM --plain [--json]`: the session as a line protocol. Each input line is
//! a message or a slash command and end of input quits; each output line is one event,
//! readable or (with `--json`) one JSON object.

use super::room::ChatMessage;
use super::session::{Output, Session};
use crate::client::output::{json_line, sanitize};
use serde_json::json;
use std::io::Write;
use tokio::sync::mpsc;

/// Runs the line protocol until `/quit`, end of input or a final error. Input is read
/// once the socket is connected, so a script's lines (OTR commands especially) find a
/// live session and a piped script is connected before its end of input quits.
pub(crate) async fn run(mut session: Session, json: bool) -> anyhow::Result<()> {
    let result = run_in(&mut session, json).await;
    session.close().await;
    result
}

async fn run_in(session: &mut Session, json: bool) -> anyhow::Result<()> {
    let mut lines = stdin_lines();
    loop {
        let ready = session.is_ready();
        let outputs = tokio::select! {
            line = lines.recv(), if ready => {
                let Some(line) = line else { return Ok(()) };
                let handled = session.input(&line).await;
                print(session, &handled.outputs, json)?;
                if handled.quit {
                    return Ok(());
                }
                continue;
            }
            update = session.recv() => session.apply(update?).await,
        };
        print(session, &outputs, json)?;
    }
}

/// Standard input's lines, read on a thread of their own (reading blocks).
fn stdin_lines() -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel(16);
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { break };
            if tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn print(session: &Session, outputs: &[Output], json: bool) -> anyhow::Result<()> {
    for output in outputs {
        if json {
            json_line(&to_json(session, output))?;
        } else {
            let mut out = std::io::stdout().lock();
            writeln!(out, "{}", to_text(session, output))?;
        }
    }
    std::io::stdout().flush()?;
    Ok(())
}

/// The JSON object of one event.
pub(crate) fn to_json(session: &Session, output: &Output) -> serde_json::Value {
    match output {
        Output::Ready => json!({"type": "ready", "room_id": session.room().id}),
        Output::Connection { state } => json!({"type": "connection", "state": state}),
        Output::Message(m) => json!({
            "type": "message",
            "id": m.id,
            "sender": session.name_of(&m.sender_id),
            "sender_id": m.sender_id,
            "text": m.text,
            "encrypted": m.encrypted,
            "otr": m.otr,
            "verified": m.verified,
            "time": m.time,
            "problem": m.problem,
            "attachments": m.attachments,
        }),
        Output::Otr {
            state,
            by_peer,
            reason,
        } => json!({"type": "otr", "state": state, "by_peer": by_peer, "reason": reason}),
        Output::Error { code, message } => {
            json!({"type": "error", "code": code, "message": message})
        }
    }
}

/// One readable line; everything from other people or the server is sanitized.
pub(crate) fn to_text(session: &Session, output: &Output) -> String {
    match output {
        Output::Ready => "* connected".to_owned(),
        Output::Connection { state } => format!("* {state}"),
        Output::Message(m) => message_line(session, m),
        Output::Otr {
            state,
            by_peer,
            reason,
        } => {
            let who = if *by_peer {
                " (by the other person)"
            } else {
                ""
            };
            let why = reason
                .as_deref()
                .map(|r| format!(": {}", sanitize(r)))
                .unwrap_or_default();
            format!("* [OTR] {state}{who}{why}")
        }
        Output::Error { code, message } => {
            format!("! {}: {}", sanitize(code), sanitize(message))
        }
    }
}

/// `[OTR] name: text` for off-the-record messages, `name 🔒: text` for end-to-end
/// encrypted ones (✓ when the sender's key is verified), `name: text` otherwise.
fn message_line(session: &Session, m: &ChatMessage) -> String {
    let name = sanitize(session.name_of(&m.sender_id));
    let text = match &m.problem {
        Some(p) => format!("[{}]", sanitize(p)),
        None => sanitize(&m.text),
    };
    let check = if m.verified { " ✓" } else { "" };
    if m.otr {
        format!("[OTR] {name}{check}: {text}")
    } else if m.encrypted {
        format!("{name} 🔒{check}: {text}")
    } else {
        format!("{name}: {text}")
    }
}
