//! The compiled-plugin cache on disk: one `.cwasm` file per plugin and engine build (a Python
//! router's is about 40 MB), capped in total size with least-recently-used eviction (a hit
//! marks its file as used now), and shown or cleared by `routereval-engine cache`.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context as _, Result};

/// The cap when `$ROUTEREVAL_CACHE_MAX_MIB` does not say: 2 GiB, about fifty Python routers.
pub const DEFAULT_MAX_MIB: u64 = 2048;

/// The cache's size cap in bytes: `$ROUTEREVAL_CACHE_MAX_MIB` MiB, else [`DEFAULT_MAX_MIB`].
pub fn max_bytes() -> u64 {
    std::env::var("ROUTEREVAL_CACHE_MAX_MIB")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(DEFAULT_MAX_MIB)
        .saturating_mul(1 << 20)
}

/// One compiled plugin in the cache.
#[derive(Debug, Clone)]
pub struct Entry {
    pub path: PathBuf,
    pub bytes: u64,
    /// When it was last compiled or loaded.
    pub used: SystemTime,
}

/// The cache's entries (`*.cwasm`), most recently used first. A missing directory is empty.
///
/// # Errors
/// The directory exists but cannot be read.
pub fn entries(dir: &Path) -> Result<Vec<Entry>> {
    let read = match std::fs::read_dir(dir) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(e).with_context(|| format!("cannot read the cache `{}`", dir.display()));
        }
    };
    let mut out: Vec<Entry> = read
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            meta.is_file().then(|| Entry {
                path: e.path(),
                bytes: meta.len(),
                used: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            })
        })
        .collect();
    out.sort_by(|a, b| b.used.cmp(&a.used).then_with(|| a.path.cmp(&b.path)));
    Ok(out)
}

/// Removes the least recently used entries until the cache holds at most `max` bytes, never
/// `keep` (the entry just written). Returns the entries removed.
///
/// # Errors
/// The directory cannot be read.
pub fn evict(dir: &Path, max: u64, keep: Option<&Path>) -> Result<Vec<Entry>> {
    let all = entries(dir)?;
    let mut total: u64 = all.iter().map(|e| e.bytes).sum();
    let mut removed = Vec::new();
    for e in all.into_iter().rev() {
        if total <= max {
            break;
        }
        if keep.is_some_and(|k| k == e.path) {
            continue;
        }
        if std::fs::remove_file(&e.path).is_ok() {
            total -= e.bytes;
            removed.push(e);
        }
    }
    Ok(removed)
}

/// Removes every entry (and leftover temporary files of interrupted writes). Returns the
/// number of files and bytes removed.
///
/// # Errors
/// The directory cannot be read.
pub fn clear(dir: &Path) -> Result<(usize, u64)> {
    let mut n = (0, 0);
    let read = match std::fs::read_dir(dir) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(n),
        Err(e) => {
            return Err(e).with_context(|| format!("cannot read the cache `{}`", dir.display()));
        }
    };
    for e in read.filter_map(|e| e.ok()) {
        let p = e.path();
        let ours = p
            .extension()
            .is_some_and(|x| x == "cwasm" || x.to_string_lossy().starts_with("tmp"));
        if ours
            && let Ok(meta) = e.metadata()
            && meta.is_file()
            && std::fs::remove_file(&p).is_ok()
        {
            n = (n.0 + 1, n.1 + meta.len());
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn eviction_removes_the_least_recently_used_until_under_the_cap() {
        let dir =
            std::env::temp_dir().join(format!("routereval-cache-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let t0 = SystemTime::now() - Duration::from_secs(1000);
        for (i, name) in ["a", "b", "c", "d"].iter().enumerate() {
            let p = dir.join(format!("{name}.cwasm"));
            std::fs::write(&p, vec![0u8; 100]).unwrap();
            let f = std::fs::File::options().append(true).open(&p).unwrap();
            f.set_modified(t0 + Duration::from_secs(10 * i as u64))
                .unwrap();
        }
        std::fs::write(dir.join("notes.txt"), b"not ours").unwrap();
        // `a` is the oldest but was just written: kept; `b` and `c` go.
        let keep = dir.join("a.cwasm");
        let gone = evict(&dir, 200, Some(&keep)).unwrap();
        let names: Vec<_> = gone
            .iter()
            .map(|e| e.path.file_name().unwrap().to_owned())
            .collect();
        assert_eq!(names, ["b.cwasm", "c.cwasm"]);
        let left: Vec<_> = entries(&dir).unwrap().into_iter().map(|e| e.path).collect();
        assert_eq!(left, [dir.join("d.cwasm"), dir.join("a.cwasm")]);
        assert_eq!(clear(&dir).unwrap(), (2, 200));
        assert!(
            dir.join("notes.txt").exists(),
            "clear leaves files that are not the cache's"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
