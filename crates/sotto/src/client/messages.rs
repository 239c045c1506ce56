//! `sotto send`, `read`, `download` and `export`: messages and files, opened and
//! checked by the library (decrypted, signatures and room keys verified) before they are
//! shown. Also how a message is printed, shared with `sotto chat`.

use super::output::{json_line, sanitize, utc_minute};
use super::rooms::room_id;
use crate::cli::{DownloadArgs, ExportArgs, ExportFormat, ReadRoomArgs, SendArgs};
use sotto_client::export::{ExportMessage, export_json, export_pdf};
use sotto_client::files::file_message;
use sotto_client::sotto_crypto::RoomId;
use sotto_client::{Client, Draft, MessageView};
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

/// The largest page of history the server gives.
const PAGE: u32 = 200;

/// A file attached to a message, as `--json` output shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct FileSummary {
    pub(crate) name: String,
    pub(crate) media_type: String,
    pub(crate) size: u64,
}

/// The attachments of `m`, as output shows them.
pub(crate) fn file_summaries(m: &MessageView) -> Vec<FileSummary> {
    m.attachments
        .iter()
        .map(|a| FileSummary {
            name: a.name.clone(),
            media_type: a.media_type.clone(),
            size: a.size,
        })
        .collect()
}

/// A message as one JSON object, with exactly the fields of a `message` of
/// `sotto chat --json` (`otr` is false: off-the-record messages are never in history).
pub(crate) fn message_json(m: &MessageView) -> serde_json::Value {
    serde_json::json!({
        "type": "message",
        "id": m.id,
        "sender": m.sender_name.as_deref().unwrap_or(&m.sender_id),
        "sender_id": m.sender_id,
        "text": m.text,
        "encrypted": m.encrypted,
        "otr": false,
        "verified": m.verified,
        "time": m.created_at,
        "problem": m.problem.as_ref().map(ToString::to_string),
        "attachments": file_summaries(m),
    })
}

/// A message as one line for people: time, sender (with a key symbol when it was
/// encrypted, and a tick when the sender's key is verified), text. Everything from
/// others is sanitized; a message that could not be opened says why, never shows text.
pub(crate) fn message_line(m: &MessageView) -> String {
    let sender = sanitize(m.sender_name.as_deref().unwrap_or(&m.sender_id));
    let mark = match (m.encrypted, m.verified) {
        (true, true) => " 🔑✓",
        (true, false) => " 🔑",
        (false, _) => "",
    };
    let body = if let Some(problem) = &m.problem {
        format!("[could not be opened: {problem}]")
    } else if m.deleted {
        "[deleted]".to_owned()
    } else {
        let mut parts: Vec<String> = m.text.lines().map(sanitize).collect();
        for a in &m.attachments {
            parts.push(format!("📎 {} ({} bytes)", sanitize(&a.name), a.size));
        }
        if m.edited_at.is_some() {
            parts.push("(edited)".to_owned());
        }
        parts.join(" ⏎ ")
    };
    format!("{} {sender}{mark}: {body}", utc_minute(m.created_at))
}

pub(crate) async fn send(client: Client, args: &SendArgs) -> anyhow::Result<()> {
    let room = room_id(&client, &args.room).await?;
    let sent = if let Some(path) = &args.file {
        send_file(&client, &room, path).await?
    } else {
        let text = match &args.text {
            Some(text) => text.clone(),
            None => {
                let mut text = String::new();
                std::io::stdin().read_to_string(&mut text)?;
                text.trim_end_matches('\n').to_owned()
            }
        };
        if text.is_empty() {
            anyhow::bail!("nothing to send: the message is empty");
        }
        client.send_text(&room, &text).await?
    };
    if args.read.json {
        json_line(&message_json(&sent))
    } else {
        println!("{}", sent.id);
        Ok(())
    }
}

/// Uploads `path` (encrypted on this machine in an encrypted room) and announces it.
async fn send_file(client: &Client, room: &RoomId, path: &Path) -> anyhow::Result<MessageView> {
    let encrypted = client.room(room).await?.encrypted;
    let mut bar = Progress::new("uploading");
    if encrypted {
        let attachment = client
            .upload_encrypted(room.as_str(), path, |done, total| bar.show(done, total))
            .await?;
        bar.done();
        let draft = Draft {
            attachments: vec![attachment],
            ..Draft::default()
        };
        Ok(client.send_message(room, draft).await?)
    } else {
        let info = client
            .upload_plain(room.as_str(), path, |done, total| bar.show(done, total))
            .await?;
        bar.done();
        Ok(client.send_text(room, &file_message(&info)).await?)
    }
}

pub(crate) async fn read(client: Client, args: &ReadRoomArgs) -> anyhow::Result<()> {
    let room = room_id(&client, &args.room).await?;
    let page = client.history(&room, None, Some(args.limit)).await?;
    for m in &page {
        if args.read.json {
            json_line(&message_json(m))?;
        } else {
            println!("{}", message_line(m));
        }
    }
    // What was shown has been read.
    if let Some(last) = page.last() {
        client.mark_read(&room, last.seq).await?;
    }
    Ok(())
}

pub(crate) async fn download(client: Client, args: &DownloadArgs) -> anyhow::Result<()> {
    let room = room_id(&client, &args.room).await?;
    let message = find_message(&client, &room, &args.message_id).await?;
    if let Some(problem) = &message.problem {
        anyhow::bail!("the message could not be opened: {problem}");
    }
    let mut bar = Progress::new("downloading");
    let out = if let Some(attachment) = message.attachments.first() {
        let out = output_path(args.output.as_deref(), &attachment.name)?;
        client
            .download_encrypted(&attachment.attachment, &out, |d, t| bar.show(d, t))
            .await?;
        out
    } else {
        let file_id = sotto_client::files::file_reference(&message.text)
            .ok_or_else(|| anyhow::anyhow!("message {} has no file", args.message_id))?;
        let info = client.file_info(file_id).await?;
        let out = output_path(
            args.output.as_deref(),
            info.name.as_deref().unwrap_or("file"),
        )?;
        client
            .download_plain(file_id, &out, |d, t| bar.show(d, t))
            .await?;
        out
    };
    bar.done();
    println!("{}", out.display());
    Ok(())
}

pub(crate) async fn export(client: Client, args: &ExportArgs) -> anyhow::Result<()> {
    let room = room_id(&client, &args.room).await?;
    let view = client.room(&room).await?;
    if view.encrypted {
        // Only someone who can open the messages exports them (E9).
        client.keys()?;
    }
    let mut chosen: Vec<ExportMessage> = Vec::new();
    for m in all_messages(&client, &room).await? {
        if m.deleted || !(args.messages.is_empty() || args.messages.contains(&m.id)) {
            continue;
        }
        let text = match &m.problem {
            Some(problem) => format!("[could not be opened: {problem}]"),
            None => m.text.clone(),
        };
        chosen.push(ExportMessage {
            id: m.id.clone(),
            sender: m.sender_name.clone().unwrap_or_else(|| m.sender_id.clone()),
            sent_at: m.created_at,
            text,
            attachments: m.attachments.iter().map(|a| a.name.clone()).collect(),
            encrypted: m.encrypted,
        });
    }
    if let Some(missing) = args
        .messages
        .iter()
        .find(|id| !chosen.iter().any(|m| &m.id == *id))
    {
        anyhow::bail!("no message {} in this room", sanitize(missing));
    }
    let name = view
        .room
        .name
        .clone()
        .unwrap_or_else(|| "direct message".into());
    let mut file = std::io::BufWriter::new(std::fs::File::create(&args.output)?);
    match args.format {
        ExportFormat::Json => export_json(&chosen, &name, &mut file)?,
        ExportFormat::Pdf => export_pdf(&chosen, &name, &mut file)?,
    }
    file.flush()?;
    eprintln!(
        "{} messages written to {}",
        chosen.len(),
        args.output.display()
    );
    Ok(())
}

/// The whole history of `room`, oldest first.
async fn all_messages(client: &Client, room: &RoomId) -> anyhow::Result<Vec<MessageView>> {
    let mut all = Vec::new();
    let mut before = None;
    loop {
        let page = client.history(room, before, Some(PAGE)).await?;
        let Some(first) = page.first() else { break };
        before = Some(first.seq);
        let full = page.len() == PAGE as usize;
        all.splice(0..0, page);
        if !full {
            break;
        }
    }
    Ok(all)
}

async fn find_message(client: &Client, room: &RoomId, id: &str) -> anyhow::Result<MessageView> {
    let mut before = None;
    loop {
        let page = client.history(room, before, Some(PAGE)).await?;
        if let Some(m) = page.iter().find(|m| m.id == id) {
            return Ok(m.clone());
        }
        match page.first() {
            Some(first) if page.len() == PAGE as usize => before = Some(first.seq),
            _ => anyhow::bail!("no message {} in this room", sanitize(id)),
        }
    }
}

/// Where a download goes: `--output`, else the file's own name (its last component
/// only, so a name like `../x` cannot write elsewhere) in the current directory, never
/// over an existing file.
fn output_path(chosen: Option<&Path>, name: &str) -> anyhow::Result<PathBuf> {
    if let Some(path) = chosen {
        return Ok(path.to_owned());
    }
    let base = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let base = sanitize(base).replace('\u{FFFD}', "_");
    if base.is_empty() || base == "." || base == ".." {
        anyhow::bail!("the file has no usable name: choose one with --output");
    }
    let path = PathBuf::from(&base);
    if path.exists() {
        anyhow::bail!("{base} exists already: choose another name with --output");
    }
    Ok(path)
}

/// A progress line on standard error, only when it is a terminal.
struct Progress {
    what: &'static str,
    tty: bool,
    shown: u64,
}

impl Progress {
    fn new(what: &'static str) -> Self {
        Self {
            what,
            tty: std::io::stderr().is_terminal(),
            shown: u64::MAX,
        }
    }

    fn show(&mut self, done: u64, total: u64) {
        const MIB: f64 = 1024.0 * 1024.0;
        let percent = done.saturating_mul(100).checked_div(total).unwrap_or(0);
        if !self.tty || percent == self.shown {
            return;
        }
        self.shown = percent;
        #[allow(clippy::cast_precision_loss)]
        let (d, t) = (done as f64 / MIB, total as f64 / MIB);
        eprint!("\r{} {d:.1} / {t:.1} MiB ({percent}%)", self.what);
    }

    fn done(&self) {
        if self.tty && self.shown != u64::MAX {
            eprintln!();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::output_path;
    use std::path::Path;

    #[test]
    fn download_names_stay_in_the_current_directory() {
        assert_eq!(
            output_path(None, "../../.bashrc").unwrap(),
            Path::new(".bashrc")
        );
        assert_eq!(output_path(None, "a\\b/c.txt").unwrap(), Path::new("c.txt"));
        assert!(output_path(None, "..").is_err());
        assert!(output_path(None, "dir/").is_err());
        assert_eq!(
            output_path(None, "x\u{202E}txt.exe").unwrap(),
            Path::new("x_txt.exe")
        );
        assert_eq!(
            output_path(Some(Path::new("/tmp/out")), "ignored").unwrap(),
            Path::new("/tmp/out")
        );
    }
}
