//! The server process's CPU time, memory and storage writes, read from `/proc/<pid>`.

use anyhow::Context;
use std::time::Duration;

/// One reading of the server process.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct ProcSample {
    /// User plus system CPU time of all its threads so far.
    pub(crate) cpu: Duration,
    /// Resident memory now, bytes.
    pub(crate) rss: u64,
    /// Highest resident memory since the process started, bytes.
    pub(crate) peak_rss: u64,
}

impl ProcSample {
    pub(crate) fn read(pid: u32) -> anyhow::Result<Self> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .with_context(|| format!("reading /proc/{pid}/stat (is the server running?)"))?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .with_context(|| format!("reading /proc/{pid}/status"))?;
        let ticks = cpu_ticks(&stat).context("parsing /proc/<pid>/stat")?;
        Ok(Self {
            cpu: Duration::from_secs_f64(ticks as f64 / clock_ticks_per_second() as f64),
            rss: status_kib(&status, "VmRSS").context("no VmRSS")? * 1024,
            peak_rss: status_kib(&status, "VmHWM").context("no VmHWM")? * 1024,
        })
    }
}

/// The storage counters of `/proc/<pid>/io`, bytes since the process started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct IoSample {
    /// Bytes the process caused to be sent to storage (its writes that reach the disk,
    /// counted when it dirties the page cache).
    pub(crate) write_bytes: u64,
    /// Bytes passed to `write`-like system calls, whatever they write to; not storage.
    pub(crate) wchar: u64,
    /// Dirtied bytes that were truncated away before reaching storage.
    pub(crate) cancelled_write_bytes: u64,
}

impl IoSample {
    pub(crate) fn read(pid: u32) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/io")).with_context(|| {
            format!("reading /proc/{pid}/io (the bench must run as the server's user)")
        })?;
        parse_io(&text).context("parsing /proc/<pid>/io")
    }

    /// What happened between `before` and this sample.
    pub(crate) fn since(&self, before: &Self) -> Self {
        Self {
            write_bytes: self.write_bytes.saturating_sub(before.write_bytes),
            wchar: self.wchar.saturating_sub(before.wchar),
            cancelled_write_bytes: self
                .cancelled_write_bytes
                .saturating_sub(before.cancelled_write_bytes),
        }
    }
}

/// The `name: value` lines of `/proc/<pid>/io`; every counter must be there.
pub(crate) fn parse_io(text: &str) -> Option<IoSample> {
    let field = |name: &str| {
        text.lines().find_map(|line| {
            let value = line.strip_prefix(name)?.strip_prefix(':')?;
            value.trim().parse().ok()
        })
    };
    Some(IoSample {
        write_bytes: field("write_bytes")?,
        wchar: field("wchar")?,
        cancelled_write_bytes: field("cancelled_write_bytes")?,
    })
}

/// `utime + stime` in clock ticks. The command name (field 2) may contain spaces and
/// parentheses, so fields are counted from the last `)`.
pub(crate) fn cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// A `Name:   123 kB` line of `/proc/<pid>/status`, in KiB.
pub(crate) fn status_kib(status: &str, name: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let value = line.strip_prefix(name)?.strip_prefix(':')?;
        value.trim().strip_suffix("kB")?.trim().parse().ok()
    })
}

/// `getconf CLK_TCK`, which is 100 on every Linux this runs on; asked once.
fn clock_ticks_per_second() -> u64 {
    static TCK: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TCK.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .filter(|&t| t > 0)
            .unwrap_or(100)
    })
}

/// The soft limit on open files of this process, from `/proc/self/limits`.
fn open_file_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Fails unless this process may open `need` files (a server the bench starts inherits
/// the limit).
pub(crate) fn require_open_files(need: u64) -> anyhow::Result<()> {
    match open_file_limit() {
        Some(limit) if limit >= need => {}
        Some(limit) => anyhow::bail!(
            "the open-file limit is {limit}, below the {need} this run needs: raise it first \
             (ulimit -n {need}); a server the bench starts inherits it"
        ),
        None => eprintln!("note: could not read the open-file limit"),
    }
    Ok(())
}

/// Bytes as MiB with one decimal.
pub(crate) fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_count_from_the_last_parenthesis() {
        let stat = "4242 (sotto (x) y) S 1 4242 4242 0 -1 4194560 9000 0 0 0 \
                    1234 567 0 0 20 0 9 0 100 2000000 3000 18446744073709551615";
        assert_eq!(cpu_ticks(stat), Some(1234 + 567));
        assert_eq!(cpu_ticks("12 (short) S 1 2"), None);
        assert_eq!(cpu_ticks("no parenthesis"), None);
    }

    #[test]
    fn status_lines_in_kib() {
        let status = "Name:\tsotto\nVmHWM:\t  204800 kB\nVmRSS:\t   102400 kB\nThreads:\t9\n";
        assert_eq!(status_kib(status, "VmRSS"), Some(102_400));
        assert_eq!(status_kib(status, "VmHWM"), Some(204_800));
        assert_eq!(status_kib(status, "Threads"), None);
        assert_eq!(status_kib(status, "VmSwap"), None);
    }

    #[test]
    fn io_counters_by_name() {
        let io = "rchar: 6976\nwchar: 1048576\nsyscr: 10\nsyscw: 3\nread_bytes: 4096\n\
                  write_bytes: 8192\ncancelled_write_bytes: 4096\n";
        let got = parse_io(io).unwrap();
        assert_eq!(
            got,
            IoSample {
                write_bytes: 8192,
                wchar: 1_048_576,
                cancelled_write_bytes: 4096
            }
        );
        let later = IoSample {
            write_bytes: 8192,
            wchar: 2_000_000,
            cancelled_write_bytes: 4096,
        };
        assert_eq!(later.since(&got).write_bytes, 0);
        assert_eq!(later.since(&got).wchar, 2_000_000 - 1_048_576);
        // `read_bytes` is not `write_bytes`, and a missing counter is an error.
        assert_eq!(
            parse_io("read_bytes: 5\nwchar: 1\ncancelled_write_bytes: 0\n"),
            None
        );
        assert_eq!(parse_io(""), None);
    }

    #[test]
    fn this_process_can_be_read() {
        IoSample::read(std::process::id()).unwrap();
        let me = ProcSample::read(std::process::id()).unwrap();
        assert!(me.rss > 0 && me.peak_rss >= me.rss, "{me:?}");
        assert!(open_file_limit().unwrap() > 0);
        assert_eq!(mib(3 * 1024 * 1024 / 2), "1.5 MiB");
    }
}
