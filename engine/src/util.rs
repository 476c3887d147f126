//! Small helpers with no engine types, used on every layer: text made safe for a terminal or cut
//! to a length, hex digests, panic payloads. (A leaf: it imports nothing from the crate.)

use std::borrow::Cow;
use std::fmt::Write as _;
use std::path::Path;

use sha2::{Digest, Sha256};

/// Whether `c` would change how a terminal shows what follows: control characters (C0, DEL,
/// C1: escape sequences, carriage returns, newlines that forge rows) and the invisible marks
/// that reorder bidirectional text.
fn is_terminal_control(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `s` as it may be shown on a terminal: every control character (C0, DEL, C1: escape
/// sequences, carriage returns, newlines that forge rows) and every invisible mark that reorders
/// bidirectional text written as `\u{..}`, everything else unchanged. For text a plugin or a
/// file supplies (router names, error messages, log lines, model names): a router must not be
/// able to repaint the screen or forge a row of the table. JSON output keeps the exact text
/// (JSON escapes it).
pub fn terminal_safe(s: &str) -> Cow<'_, str> {
    terminal_safe_keeping(s, false)
}

/// [`terminal_safe`], keeping newlines when `newlines` (for multi-line messages).
pub fn terminal_safe_keeping(s: &str, newlines: bool) -> Cow<'_, str> {
    let escape = |c: char| is_terminal_control(c) && !(newlines && c == '\n');
    if !s.chars().any(escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if escape(c) {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Cuts `s` to at most `max` bytes at a character boundary.
pub fn clip(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// `bytes` as lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// The SHA-256 of `bytes`, lowercase hex (as `sha256sum` prints it).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// The SHA-256 of the file at `path`, lowercase hex.
///
/// # Errors
/// The file cannot be read.
pub fn file_sha256(path: &Path) -> std::io::Result<String> {
    Ok(sha256_hex(&std::fs::read(path)?))
}

/// `v` for a message: `1e300`, not three hundred digits.
pub fn short_number(v: f64) -> String {
    if v.is_finite() && v != 0.0 && !(1e-4..1e6).contains(&v.abs()) {
        format!("{v:e}")
    } else {
        v.to_string()
    }
}

/// For the unit tests: an allocator that counts each thread's live heap bytes, so a test can
/// bound the memory a decoder uses on hostile input (see `pickle`'s fuzz test).
#[cfg(test)]
pub(crate) mod test_alloc {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    struct Counting;

    thread_local! {
        static LIVE: Cell<usize> = const { Cell::new(0) };
        static PEAK: Cell<usize> = const { Cell::new(0) };
    }

    fn grew(by: usize) {
        let live = LIVE.with(|l| {
            let v = l.get().saturating_add(by);
            l.set(v);
            v
        });
        PEAK.with(|p| p.set(p.get().max(live)));
    }

    fn shrank(by: usize) {
        LIVE.with(|l| l.set(l.get().saturating_sub(by)));
    }

    // SAFETY: every call is forwarded to the system allocator unchanged; the counters are
    // const-initialised thread-locals without destructors, which never allocate.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            // SAFETY: forwarded with the caller's guarantees.
            let p = unsafe { System.alloc(layout) };
            if !p.is_null() {
                grew(layout.size());
            }
            p
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: forwarded with the caller's guarantees.
            unsafe { System.dealloc(ptr, layout) };
            shrank(layout.size());
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            // SAFETY: forwarded with the caller's guarantees.
            let p = unsafe { System.realloc(ptr, layout, new_size) };
            if !p.is_null() {
                shrank(layout.size());
                grew(new_size);
            }
            p
        }
    }

    #[global_allocator]
    static COUNTING: Counting = Counting;

    /// Runs `f` and returns its result with the most heap memory this thread held above what it
    /// held before, in bytes.
    pub fn peak_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
        let base = LIVE.with(Cell::get);
        PEAK.with(|p| p.set(base));
        let out = f();
        let peak = PEAK.with(Cell::get);
        (out, peak.saturating_sub(base))
    }
}

/// Writes `bytes` to `path` so that a failure leaves nothing half-written: into a temporary
/// file beside it, synced, then renamed over it. A path that exists and is not a regular file
/// (`/dev/null`, `/dev/stdout`, a named pipe) is written directly: renaming over a device
/// would replace it.
///
/// # Errors
/// The file cannot be written or renamed.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use anyhow::Context as _;
    use std::io::Write as _;
    if std::fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir()) {
        return std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|mut f| f.write_all(bytes))
            .with_context(|| format!("cannot write `{}`", path.display()));
    }
    let tmp = path.with_extension(format!(
        "{}.tmp",
        path.extension().and_then(|e| e.to_str()).unwrap_or("out")
    ));
    let mut f = std::fs::File::create(&tmp)
        .with_context(|| format!("cannot create `{}`", tmp.display()))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cannot write `{}`", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| {
        let _ = std::fs::remove_file(&tmp);
        format!("cannot move `{}` to `{}`", tmp.display(), path.display())
    })
}

#[cfg(all(test, unix))]
mod write_tests {
    /// `-o /dev/null` writes into the device; it never renames a file over it.
    #[test]
    fn writing_to_a_device_leaves_the_device() {
        use std::os::unix::fs::FileTypeExt as _;
        super::write_atomically(std::path::Path::new("/dev/null"), b"x").unwrap();
        let m = std::fs::metadata("/dev/null").unwrap();
        assert!(m.file_type().is_char_device());
        assert!(!std::path::Path::new("/dev/null.tmp").exists());
    }
}

/// What built this engine, for manifests: its name, version and git revision.
pub fn engine_json() -> serde_json::Value {
    serde_json::json!({
        "name": "routereval-engine",
        "version": env!("CARGO_PKG_VERSION"),
        "git_revision": option_env!("ROUTEREVAL_GIT_REVISION"),
    })
}

/// The machine the numbers were computed on, for manifests: architecture, OS and the kernels'
/// instruction set.
pub fn cpu_json() -> serde_json::Value {
    serde_json::json!({
        "arch": std::env::consts::ARCH,
        "os": std::env::consts::OS,
        "kernels": routereval_kernels::instruction_set(),
    })
}
