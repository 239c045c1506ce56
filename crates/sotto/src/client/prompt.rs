//! Secrets: from standard input, one per line (`--password-stdin`), or typed at a
//! prompt on the terminal without echo. Never from the command line, where other users
//! of the machine could read them.

use anyhow::Context;
use std::io::{BufRead, IsTerminal};
use zeroize::Zeroizing;

/// Where the passwords of one command come from.
pub(crate) struct Secrets<R> {
    /// Standard input, with `--password-stdin`; else the terminal is prompted.
    lines: Option<R>,
}

impl Secrets<std::io::StdinLock<'static>> {
    /// Passwords from standard input when `from_stdin`, else from prompts.
    pub(crate) fn new(from_stdin: bool) -> Self {
        Self {
            lines: from_stdin.then(|| std::io::stdin().lock()),
        }
    }
}

impl<R: BufRead> Secrets<R> {
    /// One password: the next line of input, or typed at `prompt`.
    pub(crate) fn read(&mut self, prompt: &str) -> anyhow::Result<Zeroizing<String>> {
        match &mut self.lines {
            Some(input) => next_line(input, prompt),
            None => ask(prompt),
        }
    }

    /// A new password: one line of input, or typed twice at the terminal.
    pub(crate) fn read_new(&mut self, prompt: &str) -> anyhow::Result<Zeroizing<String>> {
        let first = self.read(prompt)?;
        if self.lines.is_none() {
            let again = ask("Type it again: ")?;
            anyhow::ensure!(*first == *again, "the two passwords differ");
        }
        Ok(first)
    }
}

/// The next line without its line ending; an empty or missing line is an error naming
/// what was expected.
fn next_line(input: &mut impl BufRead, what: &str) -> anyhow::Result<Zeroizing<String>> {
    let mut line = Zeroizing::new(String::new());
    input
        .read_line(&mut line)
        .context("reading standard input")?;
    let len = line.trim_end_matches(['\n', '\r']).len();
    line.truncate(len);
    let what = what.trim_end_matches([':', ' ']);
    anyhow::ensure!(
        !line.is_empty(),
        "standard input ended before this line: {what}"
    );
    Ok(line)
}

/// A prompt on the terminal (`/dev/tty`) without echo. Only when standard input is the
/// terminal: a script that forgot `--password-stdin` fails at once instead of hanging.
fn ask(prompt: &str) -> anyhow::Result<Zeroizing<String>> {
    anyhow::ensure!(
        std::io::stdin().is_terminal(),
        "standard input is not a terminal: give passwords on it with --password-stdin"
    );
    let typed = rpassword::prompt_password(prompt)
        .map(Zeroizing::new)
        .map_err(|_| {
            anyhow::anyhow!("cannot prompt for a password on this terminal: use --password-stdin")
        })?;
    anyhow::ensure!(!typed.is_empty(), "no password given");
    Ok(typed)
}

#[cfg(test)]
mod tests {
    use super::Secrets;

    #[test]
    fn lines_are_read_in_order_without_endings() {
        let mut s = Secrets {
            lines: Some(&b"old pw\r\nnew pw\n"[..]),
        };
        assert_eq!(s.read("Current: ").unwrap().as_str(), "old pw");
        assert_eq!(s.read_new("New: ").unwrap().as_str(), "new pw");
        let e = s.read("Third: ").unwrap_err().to_string();
        assert!(e.contains("Third"), "{e}");
    }

    #[test]
    fn an_empty_line_is_no_password() {
        let mut s = Secrets {
            lines: Some(&b"\nx\n"[..]),
        };
        assert!(s.read("Password: ").is_err());
    }
}
