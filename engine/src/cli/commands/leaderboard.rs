//! `routereval-engine leaderboard ...`: the command-line face of [`crate::leaderboard`].

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result, bail};

use crate::cli::args::{
    LbExportArgs, LbRescoreArgs, LbSubmitArgs, LbTokenCommand, LbVerifyArgs, LeaderboardCommand,
};
use crate::cli::{ExitStatus, Io};
use crate::leaderboard::config::BoardConfig;
use crate::leaderboard::db::Db;
use crate::leaderboard::db::PoolRecord;
use crate::leaderboard::rank::Ranking;
use crate::leaderboard::score::{Part, PoolScore, Scoring};
use crate::leaderboard::{self as lb, intake};

/// Runs one `leaderboard` subcommand.
///
/// # Errors
/// A usage, configuration, data or database error.
pub fn leaderboard(cmd: LeaderboardCommand, io: &mut Io<'_>) -> Result<ExitStatus> {
    match cmd {
        LeaderboardCommand::Init(a) => {
            let config = BoardConfig::read(&a.config)?;
            let (db, board) = lb::init(&a.db, &config)?;
            let rows: Vec<String> = db
                .datasets()?
                .iter()
                .map(|d| {
                    format!(
                        "  {} ({}): {} test queries, {} public / {} private; sha256 {}",
                        d.benchmark,
                        d.source,
                        d.test_rows,
                        d.public_rows.len(),
                        d.test_rows - d.public_rows.len(),
                        d.sha256
                    )
                })
                .collect();
            writeln!(
                io.out,
                "made leaderboard `{}` ({}): {} pool(s) over {} dataset(s)\n{}",
                a.db.display(),
                config.title,
                board.pools.len(),
                board.datasets.len(),
                rows.join("\n")
            )?;
            Ok(ExitStatus::Success)
        }
        LeaderboardCommand::Submit(a) => submit(&a, io),
        LeaderboardCommand::Show(a) => {
            let db = Db::open(&a.db)?;
            let r = Ranking::build(&db, db.shown_part(a.private)?)?;
            write!(io.out, "{}", r.to_text())?;
            Ok(ExitStatus::Success)
        }
        LeaderboardCommand::Export(a) => export(&a, io),
        LeaderboardCommand::Serve(a) => {
            let out: Box<dyn Write + Send> = Box::new(std::io::stdout());
            lb::server::serve(&a.db, &a.listen, a.threads, out)?;
            Ok(ExitStatus::Success)
        }
        LeaderboardCommand::Token(t) => token(t, io),
        LeaderboardCommand::Rescore(a) => rescore(&a, io),
        LeaderboardCommand::Verify(a) => verify(&a, io),
        LeaderboardCommand::Reveal(a) => {
            let db = Db::open(&a.db)?;
            db.reveal()?;
            writeln!(
                io.out,
                "the private part of `{}` is revealed: show, export and the server rank by it now",
                a.db.display()
            )?;
            Ok(ExitStatus::Success)
        }
    }
}

/// A progress printer for scoring: one line per finished pool on `err`, `[k/n]`.
fn progress_printer<'a, W: Write + Send + ?Sized>(
    err: &'a Mutex<&mut W>,
    n: usize,
) -> impl Fn(&PoolRecord, &PoolScore) + Sync + 'a {
    let done = AtomicUsize::new(0);
    move |rec, p| {
        let k = done.fetch_add(1, Ordering::Relaxed) + 1;
        let mut e = err.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(
            e,
            "  [{k}/{n}] {}",
            crate::util::terminal_safe(&lb::pool_line(rec, p))
        );
    }
}

fn summary(s: &Scoring) -> String {
    let kinds = s.error_kinds();
    if kinds.is_empty() {
        format!(
            "scored: mean V_B {} (public), fuel {}, {:.1} s",
            s.mean_vb(Part::Public)
                .map_or("-".into(), |v| format!("{v:.4}")),
            s.fuel().unwrap_or(0),
            s.seconds
        )
    } else {
        format!(
            "failed ({}): {}",
            kinds.join(", "),
            crate::util::terminal_safe(crate::util::clip(
                s.first_error().unwrap_or("").lines().next().unwrap_or(""),
                600
            ))
        )
    }
}

fn submit(a: &LbSubmitArgs, io: &mut Io<'_>) -> Result<ExitStatus> {
    let mut db = Db::open(&a.db)?;
    let config = db.config()?;
    if a.router.starts_with("exec:") {
        bail!(
            "`{}`: a leaderboard runs only WebAssembly components; an `exec:` command runs \
             outside any sandbox",
            a.router
        );
    }
    let path = Path::new(&a.router);
    let bytes = std::fs::read(path).with_context(|| format!("cannot read `{}`", path.display()))?;
    let new = intake::admit(
        &a.name,
        a.author.as_deref(),
        &a.params,
        config.seed,
        bytes,
        config.submissions.max_bytes(),
        "cli",
        None,
    )
    .map_err(|r| anyhow::anyhow!("`{}` is refused: {r}", path.display()))?;
    if let Some(existing) = db.find_identity(&new.identity())? {
        writeln!(
            io.out,
            "already on the leaderboard as entry #{} `{}` ({}); the same component with the \
             same parameters is not run twice",
            existing.id,
            crate::util::terminal_safe(&existing.name),
            existing.status
        )?;
        return Ok(ExitStatus::Success);
    }
    let pool = config.sandbox.worker_pool(a.threads)?;
    let (cfg, records, pool_records) = (db.config()?, db.datasets()?, db.pools()?);
    let board = pool.install(|| lb::score::Board::load(cfg, records, pool_records))?;
    let host = lb::host(&config)?;
    let _ = writeln!(
        io.err,
        "scoring `{}` on {} pool(s)...",
        crate::util::terminal_safe(&a.name),
        board.pools.len()
    );
    let scoring = {
        let err = Mutex::new(&mut *io.err);
        let progress = progress_printer(&err, board.pools.len());
        pool.install(|| lb::score_bytes(&board, &host, &new.component, &new.params, &progress))?
    };
    match db.insert_scored(&new, &scoring)? {
        Ok(id) => {
            writeln!(io.out, "entry #{id}: {}", summary(&scoring))?;
            Ok(if scoring.error_kinds().is_empty() {
                ExitStatus::Success
            } else {
                ExitStatus::SomeFailed
            })
        }
        Err(existing) => {
            writeln!(
                io.out,
                "entry #{} with this component and parameters landed while this one was \
                 scoring; nothing more recorded",
                existing.id
            )?;
            Ok(ExitStatus::Success)
        }
    }
}

fn export(a: &LbExportArgs, io: &mut Io<'_>) -> Result<ExitStatus> {
    if a.html.is_none() && a.json.is_none() {
        bail!("give --html FILE and/or --json FILE");
    }
    let db = Db::open(&a.db)?;
    let r = Ranking::build(&db, db.shown_part(a.private)?)?;
    if let Some(p) = &a.html {
        crate::util::write_atomically(p, lb::html::export_page(&r).as_bytes())?;
        writeln!(io.out, "wrote {}", p.display())?;
    }
    if let Some(p) = &a.json {
        let text = serde_json::to_string_pretty(&lb::ranking_json(&r))?;
        crate::util::write_atomically(p, text.as_bytes())?;
        writeln!(io.out, "wrote {}", p.display())?;
    }
    Ok(ExitStatus::Success)
}

fn token(t: LbTokenCommand, io: &mut Io<'_>) -> Result<ExitStatus> {
    match t {
        LbTokenCommand::Add(a) => {
            intake::check_name("token name", &a.name).map_err(|r| anyhow::anyhow!("{r}"))?;
            let db = Db::open(&a.db)?;
            let secret = lb::new_token_secret()?;
            db.add_token(&a.name, &lb::token_hash(&secret))?;
            writeln!(io.out, "{secret}")?;
            let _ = writeln!(
                io.err,
                "token `{}` made; the line above is its secret, shown this once (only its hash \
                 is stored). Send it as `Authorization: Bearer SECRET`.",
                a.name
            );
        }
        LbTokenCommand::Revoke(a) => {
            let db = Db::open(&a.db)?;
            if !db.revoke_token(&a.name)? {
                bail!("no token named `{}`", a.name);
            }
            writeln!(io.out, "token `{}` revoked", a.name)?;
        }
        LbTokenCommand::List(a) => {
            let db = Db::open(&a.db)?;
            for (name, created, revoked, today) in db.tokens()? {
                writeln!(
                    io.out,
                    "{name}  made {created}  {}  {today} submission(s) today",
                    if revoked { "revoked" } else { "live" }
                )?;
            }
        }
    }
    Ok(ExitStatus::Success)
}

fn rescore(a: &LbRescoreArgs, io: &mut Io<'_>) -> Result<ExitStatus> {
    let mut db = Db::open(&a.db)?;
    let config = db.config()?;
    let pool = config.sandbox.worker_pool(a.threads)?;
    let (cfg, records, pool_records) = (db.config()?, db.datasets()?, db.pools()?);
    let board = pool.install(|| lb::score::Board::load(cfg, records, pool_records))?;
    let host = lb::host(&config)?;
    let pools = db.pools()?;
    let mut changed = 0usize;
    let mut checked = 0usize;
    for s in db.submissions()? {
        if !matches!(s.status.as_str(), "scored" | "failed") {
            continue;
        }
        let _ = writeln!(
            io.err,
            "rescoring #{} {}",
            s.id,
            crate::util::terminal_safe(&s.name)
        );
        let (component, params) = db.component(s.id)?;
        let scoring = {
            let err = Mutex::new(&mut *io.err);
            let progress = progress_printer(&err, board.pools.len());
            pool.install(|| lb::score_bytes(&board, &host, &component, &params, &progress))?
        };
        let changes = lb::compare(&pools, &s, &db.results(s.id)?, &scoring);
        checked += 1;
        if !changes.is_empty() {
            changed += 1;
            writeln!(
                io.out,
                "#{} {}: {} number(s) changed",
                s.id,
                crate::util::terminal_safe(&s.name),
                changes.len()
            )?;
            for c in &changes {
                writeln!(io.out, "  {}: {} -> {}", c.what, c.before, c.after)?;
            }
            if a.write {
                db.record(s.id, &scoring)?;
            }
        }
    }
    if changed == 0 {
        writeln!(
            io.out,
            "rescored {checked} submission(s): no number changed"
        )?;
        Ok(ExitStatus::Success)
    } else {
        writeln!(
            io.out,
            "rescored {checked} submission(s): {changed} changed{}",
            if a.write {
                "; the new numbers are stored"
            } else {
                " (not stored; --write stores them)"
            }
        )?;
        Ok(ExitStatus::SomeFailed)
    }
}

fn verify(a: &LbVerifyArgs, io: &mut Io<'_>) -> Result<ExitStatus> {
    let db = Db::open(&a.db)?;
    let id: i64 = a
        .entry
        .trim_start_matches('#')
        .parse()
        .with_context(|| format!("`{}` is not an entry number (such as 3)", a.entry))?;
    let s = db
        .submission(id)?
        .with_context(|| format!("no entry #{id} in `{}`", a.db.display()))?;
    let bytes = std::fs::read(&a.router)
        .with_context(|| format!("cannot read `{}`", a.router.display()))?;
    let sha = crate::util::sha256_hex(&bytes);
    if sha != s.sha256 {
        writeln!(
            io.out,
            "entry #{id} is not this component: the entry's sha256 is {}, `{}` has {sha}",
            s.sha256,
            a.router.display()
        )?;
        return Ok(ExitStatus::SomeFailed);
    }
    if !matches!(s.status.as_str(), "scored" | "failed") {
        bail!("entry #{id} is {} (not scored yet)", s.status);
    }
    let config = db.config()?;
    let pool = config.sandbox.worker_pool(a.threads)?;
    let (cfg, records, pool_records) = (db.config()?, db.datasets()?, db.pools()?);
    let board = pool.install(|| lb::score::Board::load(cfg, records, pool_records))?;
    let host = lb::host(&config)?;
    let scoring = {
        let err = Mutex::new(&mut *io.err);
        let progress = progress_printer(&err, board.pools.len());
        pool.install(|| lb::score_bytes(&board, &host, &bytes, &s.params, &progress))?
    };
    let changes = lb::compare(&db.pools()?, &s, &db.results(id)?, &scoring);
    if changes.is_empty() {
        writeln!(
            io.out,
            "entry #{id} verified: sha256 {sha} matches, and run again on the data every \
             number ({} pool(s), public and private) is the one recorded",
            board.pools.len()
        )?;
        Ok(ExitStatus::Success)
    } else {
        writeln!(io.out, "entry #{id}: {} number(s) differ", changes.len())?;
        for c in &changes {
            writeln!(
                io.out,
                "  {}: recorded {} -> now {}",
                c.what, c.before, c.after
            )?;
        }
        Ok(ExitStatus::SomeFailed)
    }
}
