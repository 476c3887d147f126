//! A child process under a deadline, for the two load paths that run code in other processes:
//! isolated native plugins (the engine's own worker) and `exec:` programs.
//!
//! The child runs in its own process group; when it ends, or when the deadline passes, the whole
//! group is killed, so nothing it started outlives the evaluation or keeps its pipes open. Its
//! input is written from a thread (a child that dies early only closes the pipe); its stdout and
//! stderr are read to their ends with a cap each, keeping the head or the tail.

use std::io::{Read, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Which part of a stream to keep when it is longer than its cap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keep {
    /// The first `cap` bytes (a protocol's answer: more is an overflow).
    Head(usize),
    /// The last `cap` bytes (a log, or numbers printed last).
    Tail(usize),
}

/// How a child ended and what it said.
#[derive(Debug, Default)]
pub struct Finished {
    /// Its exit status; `None` when it could not be waited for.
    pub status: Option<ExitStatus>,
    /// Whether the deadline killed it.
    pub timed_out: bool,
    /// What it wrote to stdout (capped as asked).
    pub stdout: Vec<u8>,
    /// Bytes of stdout beyond the cap.
    pub stdout_dropped: usize,
    /// What it wrote to stderr (capped as asked).
    pub stderr: Vec<u8>,
    /// Bytes of stderr beyond the cap.
    pub stderr_dropped: usize,
}

/// Writes a child's standard input (from a thread of its own).
pub type Input<'a> = &'a (dyn Fn(&mut dyn Write) -> std::io::Result<()> + Sync);

/// Runs `cmd` in its own process group with piped stdio: `input` (when given) writes its stdin
/// from a thread, stdout and stderr are kept as `stdout` and `stderr` say, and the group is
/// killed at `timeout` or once the child has ended.
///
/// # Errors
/// The child cannot be started.
pub fn run(
    mut cmd: Command,
    input: Option<Input<'_>>,
    timeout: Duration,
    stdout: Keep,
    stderr: Keep,
) -> std::io::Result<Finished> {
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
    }
    let mut child = cmd.spawn()?;
    let deadline = Instant::now() + timeout;
    let stdin = child.stdin.take();
    let (out_pipe, err_pipe) = (
        child.stdout.take().expect("piped"),
        child.stderr.take().expect("piped"),
    );
    std::thread::scope(|s| {
        if let (Some(mut stdin), Some(input)) = (stdin, input) {
            grow_pipe(&stdin);
            s.spawn(move || {
                // A child that dies early closes the pipe; its failure is read from its status.
                let mut w = std::io::BufWriter::with_capacity(1 << 20, &mut stdin);
                let _ = input(&mut w).and_then(|()| w.flush());
            });
        }
        let err = s.spawn(move || read_keeping(err_pipe, stderr));
        let (tx, rx) = mpsc::channel();
        s.spawn(move || {
            let _ = tx.send(read_keeping(out_pipe, stdout));
        });
        let mut timed_out = false;
        let mut out = None;
        let status = loop {
            // The answer is complete when the child closes its stdout, or whatever it started
            // and left holding it is killed below.
            if out.is_none() {
                let wait = deadline
                    .saturating_duration_since(Instant::now())
                    .min(Duration::from_millis(2));
                out = rx.recv_timeout(wait).ok();
            } else {
                std::thread::sleep(Duration::from_micros(200));
            }
            match child.try_wait() {
                Ok(Some(st)) => break Some(st),
                Ok(None) if Instant::now() < deadline => {}
                Ok(None) => {
                    timed_out = true;
                    kill_group(&mut child);
                    break child.wait().ok();
                }
                Err(_) => break None,
            }
        };
        // The child is gone; anything it started goes with it (and closes the pipes).
        kill_group(&mut child);
        let (stdout, stdout_dropped) = out.or_else(|| rx.recv().ok()).unwrap_or_default();
        let (stderr, stderr_dropped) = err.join().unwrap_or_default();
        Ok(Finished {
            status,
            timed_out,
            stdout,
            stdout_dropped,
            stderr,
            stderr_dropped,
        })
    })
}

fn read_keeping(r: impl Read, keep: Keep) -> (Vec<u8>, usize) {
    match keep {
        Keep::Head(cap) => read_head(r, cap),
        Keep::Tail(cap) => read_tail(r, cap),
    }
}

/// Reads `r` to its end, keeping at most its first `cap` bytes (the rest is drained and
/// counted).
fn read_head(mut r: impl Read, cap: usize) -> (Vec<u8>, usize) {
    let mut kept = Vec::new();
    let mut dropped = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let room = cap.saturating_sub(kept.len()).min(n);
                kept.extend_from_slice(&buf[..room]);
                dropped += n - room;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    (kept, dropped)
}

/// Reads `r` to its end, keeping its last `cap` bytes; returns them and how many were dropped.
fn read_tail(mut r: impl Read, cap: usize) -> (Vec<u8>, usize) {
    let mut kept: Vec<u8> = Vec::new();
    let mut dropped = 0;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                kept.extend_from_slice(&buf[..n]);
                if kept.len() > 2 * cap.max(1) {
                    let cut = kept.len() - cap;
                    dropped += cut;
                    kept.drain(..cut);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    if kept.len() > cap {
        let cut = kept.len() - cap;
        dropped += cut;
        kept.drain(..cut);
    }
    (kept, dropped)
}

/// Linux pipes hold 64 KiB; a 1 MiB buffer halves the cost of moving the matrices (fewer
/// wake-ups of the two processes). Best effort: the pipe works at any size.
#[cfg(target_os = "linux")]
fn grow_pipe(stdin: &ChildStdin) {
    let _ = rustix::pipe::fcntl_setpipe_size(stdin, 1 << 20);
}

#[cfg(not(target_os = "linux"))]
fn grow_pipe(_: &ChildStdin) {}

/// The signal that ended a process, when one did.
#[cfg(unix)]
pub fn signal_of(status: &ExitStatus) -> Option<i32> {
    use std::os::unix::process::ExitStatusExt;
    status.signal()
}

/// The signal that ended a process, when one did (never, off Unix).
#[cfg(not(unix))]
pub fn signal_of(_: &ExitStatus) -> Option<i32> {
    None
}

/// Kills `child` and its process group (everything it started, when it was spawned with
/// `process_group(0)`): nothing a plugin leaves running outlives its evaluation or holds its
/// pipes open.
pub fn kill_group(child: &mut Child) {
    #[cfg(unix)]
    {
        if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
    }
    let _ = child.kill();
}

/// What a signal number means, for a message.
pub fn signal_name(sig: i32) -> &'static str {
    match sig {
        4 => "SIGILL, an illegal instruction",
        6 => "SIGABRT, an abort",
        7 => "SIGBUS, a bus error",
        8 => "SIGFPE, an arithmetic fault",
        9 => "SIGKILL; the system may have run out of memory",
        11 => "SIGSEGV, a segmentation fault",
        15 => "SIGTERM",
        _ => "a signal",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_and_tails_keep_their_caps_and_count_the_rest() {
        let data: Vec<u8> = (0..=255u8).cycle().take(300_000).collect();
        let (head, dropped) = read_head(&data[..], 1000);
        assert_eq!((head.as_slice(), dropped), (&data[..1000], 299_000));
        let (tail, dropped) = read_tail(&data[..], 1000);
        assert_eq!((tail.as_slice(), dropped), (&data[299_000..], 299_000));
    }

    #[cfg(unix)]
    #[test]
    fn the_deadline_kills_the_group_and_the_streams_are_read() {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg("echo out; echo err >&2; sleep 30 & sleep 30");
        let started = Instant::now();
        let f = run(
            cmd,
            None,
            Duration::from_millis(300),
            Keep::Tail(100),
            Keep::Tail(100),
        )
        .unwrap();
        assert!(f.timed_out);
        assert!(started.elapsed() < Duration::from_secs(10));
        assert_eq!(f.stdout, b"out\n");
        assert_eq!(f.stderr, b"err\n");
    }

    #[test]
    fn input_reaches_the_child() {
        let mut cmd = Command::new("cat");
        cmd.arg("-");
        let f = run(
            cmd,
            Some(&|w: &mut dyn Write| w.write_all(b"hello")),
            Duration::from_secs(20),
            Keep::Head(3),
            Keep::Tail(10),
        )
        .unwrap();
        assert!(!f.timed_out);
        assert_eq!((f.stdout.as_slice(), f.stdout_dropped), (&b"hel"[..], 2));
    }
}
