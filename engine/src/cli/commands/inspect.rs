//! `routereval-engine inspect`: what dataset files hold.

use std::io::Write;

use anyhow::{Context, Result};

use crate::cli::args::{Format, InspectArgs};

pub fn inspect(args: &InspectArgs, out: &mut dyn Write) -> Result<()> {
    let mut reports = Vec::new();
    for path in &args.datasets {
        let sha = if path.is_file() {
            Some(
                crate::util::file_sha256(path)
                    .with_context(|| format!("cannot read `{}`", path.display()))?,
            )
        } else {
            None
        };
        for ds in crate::data::load::load_path(path)? {
            reports.push(crate::data::inspect::inspect(&ds, sha.clone()));
        }
    }
    match args.format.unwrap_or(Format::Table) {
        Format::Json => writeln!(out, "{}", serde_json::to_string_pretty(&reports)?)?,
        Format::Table => {
            for r in &reports {
                write!(out, "{}", crate::data::inspect::to_text(r))?;
            }
        }
    }
    Ok(())
}
