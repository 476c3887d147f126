//! `routereval-engine cache`: what the compiled-plugin cache holds, and `--clear`.

use std::io::Write;
use std::time::SystemTime;

use anyhow::{Result, bail};

use crate::cli::ExitStatus;
use crate::cli::args::CacheArgs;
use crate::plugin::wasm::{self, cache};

fn plugins(n: usize) -> String {
    format!("{n} compiled plugin{}", if n == 1 { "" } else { "s" })
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
}

fn ago(t: SystemTime) -> String {
    let secs = SystemTime::now()
        .duration_since(t)
        .map_or(0, |d| d.as_secs());
    match secs {
        0..=119 => format!("{secs} s ago"),
        120..=7199 => format!("{} min ago", secs / 60),
        7200..=172_799 => format!("{} h ago", secs / 3600),
        _ => format!("{} days ago", secs / 86_400),
    }
}

/// Shows or clears the cache.
///
/// # Errors
/// No cache directory can be found, or it cannot be read.
pub fn cache(args: &CacheArgs, out: &mut dyn Write) -> Result<ExitStatus> {
    let Some(dir) = args.cache_dir.clone().or_else(wasm::default_cache_dir) else {
        bail!("no cache directory: set $ROUTEREVAL_CACHE_DIR or $HOME, or give --cache-dir DIR");
    };
    if args.clear {
        let (n, bytes) = cache::clear(&dir)?;
        writeln!(
            out,
            "removed {} ({}) from {}",
            plugins(n),
            mib(bytes),
            dir.display()
        )?;
        return Ok(ExitStatus::Success);
    }
    let entries = cache::entries(&dir)?;
    let total: u64 = entries.iter().map(|e| e.bytes).sum();
    writeln!(
        out,
        "{}: {}, {} of a {} cap ($ROUTEREVAL_CACHE_MAX_MIB; least recently used evicted \
         first)",
        dir.display(),
        plugins(entries.len()),
        mib(total),
        mib(cache::max_bytes())
    )?;
    for e in &entries {
        let name = e
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        writeln!(out, "  {name}  {:>10}  used {}", mib(e.bytes), ago(e.used))?;
    }
    if !entries.is_empty() {
        writeln!(out, "clear it with: routereval-engine cache --clear")?;
    }
    Ok(ExitStatus::Success)
}
