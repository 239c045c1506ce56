//! `sotto chat ROOM`: the interactive terminal interface. Recent history and live
//! messages above, a status line (room, encryption, OTR state), a composer below; the
//! same slash commands as the line protocol. The terminal is restored on every exit:
//! normally, on an error (below) and on a panic (the hook `ratatui::try_init` installs).

use super::room::ChatMessage;
use super::session::{Output, Session};
use crate::client::output::sanitize;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};
use ratatui::{DefaultTerminal, Frame};
use std::collections::HashSet;
use tokio::sync::mpsc;

/// How many earlier messages are shown on start.
const HISTORY: u32 = 50;
/// Lines kept on screen (older ones scroll away for good).
const KEPT: usize = 2000;

/// Runs the interface until `/quit`, Esc, Ctrl-C or a final error.
pub(crate) async fn run(mut session: Session) -> anyhow::Result<()> {
    let history = session.history(HISTORY).await?;
    let mut terminal = match ratatui::try_init() {
        Ok(t) => t,
        Err(e) => {
            // Raw mode may be on already.
            let _ = ratatui::try_restore();
            return Err(e.into());
        }
    };
    let result = run_in(&mut terminal, &mut session, history).await;
    session.close().await;
    // Restored before the error (if any) is printed.
    ratatui::try_restore()?;
    result
}

/// What is on screen.
struct View {
    lines: Vec<Line<'static>>,
    seen: HashSet<String>,
    composer: String,
    connected: bool,
}

impl View {
    fn push(&mut self, session: &Session, output: &Output) {
        let line = match output {
            Output::Ready | Output::Connection { state: "connected" } => {
                self.connected = true;
                return;
            }
            Output::Connection { .. } => {
                self.connected = false;
                return;
            }
            Output::Message(m) => {
                if !self.seen.insert(m.id.clone()) {
                    return;
                }
                message_line(session, m)
            }
            other => Line::from(super::plain::to_text(session, other)).dim(),
        };
        self.lines.push(line);
        if self.lines.len() > KEPT {
            self.lines.drain(..self.lines.len() - KEPT);
        }
    }

    fn draw(&self, frame: &mut Frame<'_>, session: &Session) {
        let [messages, status, composer] = Layout::vertical([
            Constraint::Min(1),
            Constraint::Length(1),
            Constraint::Length(3),
        ])
        .areas(frame.area());
        let height = usize::from(messages.height);
        let start = self.lines.len().saturating_sub(height);
        frame.render_widget(Paragraph::new(self.lines[start..].to_vec()), messages);

        let room = session.room();
        let name = room.name.as_deref().map_or_else(
            || format!("direct message {}", room.id),
            |n| format!("#{n}"),
        );
        let status_line = Line::from(vec![
            Span::raw(sanitize(&name)).bold(),
            Span::raw(if room.encrypted {
                "  🔒 encrypted"
            } else {
                "  not encrypted"
            }),
            Span::raw(format!("  OTR: {}", session.otr_state())),
            Span::raw(if self.connected {
                ""
            } else {
                "  (connecting…)"
            }),
        ])
        .reversed();
        frame.render_widget(Paragraph::new(status_line), status);

        let input = Paragraph::new(self.composer.as_str()).block(
            Block::default()
                .borders(Borders::ALL)
                .title(" message, /otr start|accept|decline|refresh|end, /quit "),
        );
        frame.render_widget(input, composer);
        let width = u16::try_from(self.composer.chars().count()).unwrap_or(u16::MAX);
        frame.set_cursor_position((
            composer.x.saturating_add(1).saturating_add(width),
            composer.y.saturating_add(1),
        ));
    }
}

/// What a key press asks for.
enum Key {
    Nothing,
    Submit(String),
    Quit,
}

impl View {
    fn key(&mut self, event: &Event) -> Key {
        let Event::Key(key) = event else {
            return Key::Nothing;
        };
        if key.kind != KeyEventKind::Press {
            return Key::Nothing;
        }
        match key.code {
            KeyCode::Char('c' | 'd') if key.modifiers.contains(KeyModifiers::CONTROL) => Key::Quit,
            KeyCode::Esc => Key::Quit,
            KeyCode::Enter => Key::Submit(std::mem::take(&mut self.composer)),
            KeyCode::Backspace => {
                self.composer.pop();
                Key::Nothing
            }
            KeyCode::Char(c) => {
                self.composer.push(c);
                Key::Nothing
            }
            _ => Key::Nothing,
        }
    }
}

async fn run_in(
    terminal: &mut DefaultTerminal,
    session: &mut Session,
    history: Vec<ChatMessage>,
) -> anyhow::Result<()> {
    let mut view = View {
        lines: Vec::new(),
        seen: HashSet::new(),
        composer: String::new(),
        connected: false,
    };
    for m in history {
        view.push(session, &Output::Message(m));
    }
    let mut keys = terminal_events();
    loop {
        terminal.draw(|f| view.draw(f, session))?;
        tokio::select! {
            event = keys.recv() => {
                let Some(event) = event else { return Ok(()) };
                match view.key(&event?) {
                    Key::Nothing => {}
                    Key::Quit => return Ok(()),
                    Key::Submit(line) => {
                        let handled = session.input(&line).await;
                        for o in &handled.outputs {
                            view.push(session, o);
                        }
                        if handled.quit {
                            return Ok(());
                        }
                    }
                }
            }
            update = session.recv() => {
                for o in &session.apply(update?).await {
                    view.push(session, o);
                }
            }
        }
    }
}

/// The terminal's events, read on a thread of their own (reading blocks).
fn terminal_events() -> mpsc::Receiver<std::io::Result<Event>> {
    let (tx, rx) = mpsc::channel(64);
    std::thread::spawn(move || {
        loop {
            let event = event::read();
            let failed = event.is_err();
            if tx.blocking_send(event).is_err() || failed {
                break;
            }
        }
    });
    rx
}

/// A message line: a bold key for off-the-record messages, a lock beside the sender of
/// end-to-end encrypted ones, a check mark when the sender's key is verified.
fn message_line(session: &Session, m: &ChatMessage) -> Line<'static> {
    let mut spans = Vec::new();
    if m.otr {
        spans.push(Span::styled(
            "🔑 OTR ",
            Style::default().add_modifier(Modifier::BOLD),
        ));
    }
    spans.push(Span::raw(sanitize(session.name_of(&m.sender_id))).bold());
    if m.encrypted && !m.otr {
        spans.push(Span::raw(" 🔒"));
    }
    if m.verified {
        spans.push(Span::raw(" ✓"));
    }
    spans.push(Span::raw(": "));
    match &m.problem {
        Some(p) => spans.push(Span::raw(format!("[{}]", sanitize(p))).italic()),
        None => spans.push(Span::raw(sanitize(&m.text))),
    }
    Line::from(spans)
}
