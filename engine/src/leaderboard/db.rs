//! The leaderboard's SQLite database: schema, migrations, and every read and write.
//!
//! - **WAL mode** and a busy timeout, so `submit` processes, the server and readers share the
//!   file; every write that records a scoring is **one transaction** (a kill leaves either
//!   nothing or all of it).
//! - **Migrations** by `PRAGMA user_version`: [`MIGRATIONS`] in order; a database newer than the
//!   engine is refused, an older one is brought up to date when opened.
//! - Submissions keep their component (a `BLOB`), so `rescore` and the server's queue need
//!   nothing but the database and the datasets.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::Serialize;

use crate::leaderboard::config::BoardConfig;
pub use crate::leaderboard::score::{DatasetRecord, PoolRecord};
use crate::leaderboard::score::{Part, PartScore, Scoring};

/// The schema, one migration per version (`user_version` = how many have run).
pub const MIGRATIONS: [&str; 1] = [r"
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE datasets (
    id INTEGER PRIMARY KEY,
    benchmark TEXT NOT NULL UNIQUE,
    source TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    test_rows INTEGER NOT NULL,
    public_rows BLOB NOT NULL
);
CREATE TABLE pools (
    id INTEGER PRIMARY KEY,
    benchmark TEXT NOT NULL REFERENCES datasets(benchmark),
    difficulty TEXT NOT NULL,
    m INTEGER NOT NULL,
    grp TEXT NOT NULL,
    UNIQUE (benchmark, difficulty, m, grp)
);
CREATE TABLE bounds (
    pool INTEGER NOT NULL REFERENCES pools(id),
    bound TEXT NOT NULL,
    part TEXT NOT NULL CHECK (part IN ('public', 'private')),
    mu REAL NOT NULL, vr REAL, vb REAL, ep REAL NOT NULL,
    PRIMARY KEY (pool, bound, part)
);
CREATE TABLE tokens (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    hash TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    revoked INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE submissions (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    author TEXT,
    params TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    identity TEXT NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    component BLOB NOT NULL,
    via TEXT NOT NULL,
    token INTEGER REFERENCES tokens(id),
    submitted_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'scored', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    scored_at TEXT,
    router_name TEXT,
    abi TEXT,
    sdk_version TEXT,
    fuel INTEGER,
    seconds REAL,
    error_kinds TEXT,
    error TEXT,
    manifest TEXT,
    vb_public REAL,
    vb_private REAL
);
CREATE INDEX submissions_status ON submissions(status, id);
CREATE INDEX submissions_token_day ON submissions(token, submitted_at);
CREATE TABLE results (
    submission INTEGER NOT NULL REFERENCES submissions(id) ON DELETE CASCADE,
    pool INTEGER NOT NULL REFERENCES pools(id),
    fuel INTEGER,
    seconds REAL NOT NULL,
    error_kind TEXT,
    error TEXT,
    log TEXT,
    scores BLOB,
    public TEXT,
    private TEXT,
    PRIMARY KEY (submission, pool)
);
"];

/// One stored reference bound: `(pool, bound, part, vb, mu)`.
pub type BoundRecord = (i64, String, String, Option<f64>, f64);

/// A submission as it enters the database.
#[derive(Clone, Debug)]
pub struct NewSubmission {
    /// Display name.
    pub name: String,
    /// Author, if given.
    pub author: Option<String>,
    /// Parameters, canonical `key=value,...` (sorted), empty for none.
    pub params: String,
    /// sha256 of the component.
    pub sha256: String,
    /// The component.
    pub component: Vec<u8>,
    /// `cli` or `http`.
    pub via: &'static str,
    /// The token it came with (HTTP).
    pub token: Option<i64>,
}

impl NewSubmission {
    /// What makes two submissions the same: the component's bytes and the parameters.
    pub fn identity(&self) -> String {
        identity(&self.sha256, &self.params)
    }
}

/// The identity of a component with parameters.
pub fn identity(sha256: &str, params: &str) -> String {
    if params.is_empty() {
        sha256.to_string()
    } else {
        crate::util::sha256_hex(format!("{sha256}\n{params}").as_bytes())
    }
}

/// A submission as stored.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Submission {
    /// Its id (the entry number).
    pub id: i64,
    /// Display name.
    pub name: String,
    /// Author.
    pub author: Option<String>,
    /// Parameters (`key=value,...`).
    pub params: String,
    /// sha256 of the component.
    pub sha256: String,
    /// Component size, bytes.
    pub size: i64,
    /// `cli` or `http`.
    pub via: String,
    /// When it came, UTC.
    pub submitted_at: String,
    /// `queued`, `running`, `scored` or `failed`.
    pub status: String,
    /// How often scoring started.
    pub attempts: i64,
    /// When it was scored, UTC.
    pub scored_at: Option<String>,
    /// The name the component reports.
    pub router_name: Option<String>,
    /// Its WIT package and version.
    pub abi: Option<String>,
    /// Its SDK version.
    pub sdk_version: Option<String>,
    /// Total fuel.
    pub fuel: Option<i64>,
    /// Scoring time, seconds.
    pub seconds: Option<f64>,
    /// Failure kinds, comma-separated.
    pub error_kinds: Option<String>,
    /// The first failure's message.
    pub error: Option<String>,
    /// Mean public V_B.
    pub vb_public: Option<f64>,
    /// Mean private V_B.
    pub vb_private: Option<f64>,
}

/// One pool's stored result.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ResultRow {
    /// The pool.
    pub pool: i64,
    /// Fuel.
    pub fuel: Option<i64>,
    /// Seconds.
    pub seconds: f64,
    /// Failure kind.
    pub error_kind: Option<String>,
    /// Failure message.
    pub error: Option<String>,
    /// The plugin's log.
    pub log: Option<String>,
    /// Per-query scores of the chosen candidates (every test row).
    #[serde(skip)]
    pub scores: Option<Vec<f64>>,
    /// Public metrics.
    pub public: Option<PartScore>,
    /// Private metrics.
    pub private: Option<PartScore>,
}

impl ResultRow {
    /// The metrics of `part`.
    pub fn part(&self, part: Part) -> Option<&PartScore> {
        match part {
            Part::Public => self.public.as_ref(),
            Part::Private => self.private.as_ref(),
        }
    }
}

/// An open leaderboard database.
#[derive(Debug)]
pub struct Db {
    conn: Connection,
    path: PathBuf,
}

const SUBMISSION_COLUMNS: &str = "id, name, author, params, sha256, size, via, submitted_at, \
     status, attempts, scored_at, router_name, abi, sdk_version, fuel, seconds, error_kinds, \
     error, vb_public, vb_private";

fn submission_of(r: &rusqlite::Row<'_>) -> rusqlite::Result<Submission> {
    Ok(Submission {
        id: r.get(0)?,
        name: r.get(1)?,
        author: r.get(2)?,
        params: r.get(3)?,
        sha256: r.get(4)?,
        size: r.get(5)?,
        via: r.get(6)?,
        submitted_at: r.get(7)?,
        status: r.get(8)?,
        attempts: r.get(9)?,
        scored_at: r.get(10)?,
        router_name: r.get(11)?,
        abi: r.get(12)?,
        sdk_version: r.get(13)?,
        fuel: r.get(14)?,
        seconds: r.get(15)?,
        error_kinds: r.get(16)?,
        error: r.get(17)?,
        vb_public: r.get(18)?,
        vb_private: r.get(19)?,
    })
}

fn f64s_to_blob(v: &[f64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn blob_to_f64s(b: &[u8]) -> Vec<f64> {
    b.chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect()
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(Duration::from_secs(60))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

fn migrate(conn: &mut Connection, path: &Path) -> Result<()> {
    let version: usize = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version > MIGRATIONS.len() {
        bail!(
            "leaderboard `{}` has schema version {version}, this engine knows up to {}; use a \
             newer engine",
            path.display(),
            MIGRATIONS.len()
        );
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)
            .with_context(|| format!("migrating `{}` to schema {}", path.display(), i + 1))?;
        tx.pragma_update(None, "user_version", i + 1)?;
        tx.commit()?;
    }
    Ok(())
}

impl Db {
    /// Creates the leaderboard at `path` (which must not exist) with its schema, configuration,
    /// data, pools and bounds, in one transaction.
    ///
    /// # Errors
    /// The file exists or cannot be written.
    pub fn create(
        path: &Path,
        config: &BoardConfig,
        datasets: &[DatasetRecord],
        pools: &[PoolRecord],
        bounds: &[(i64, &'static str, Part, crate::eval::metrics::Metrics)],
    ) -> Result<Db> {
        if path.exists() {
            bail!(
                "`{}` already exists; a leaderboard is made once (remove the file to start over)",
                path.display()
            );
        }
        let mut conn = Connection::open(path)
            .with_context(|| format!("cannot create leaderboard `{}`", path.display()))?;
        configure(&conn)?;
        // The schema, the configuration, the data's records and the bounds in one transaction:
        // an interrupted `init` leaves a file that is not a leaderboard, never half of one.
        let tx = conn.transaction()?;
        for sql in MIGRATIONS {
            tx.execute_batch(sql)?;
        }
        tx.pragma_update(None, "user_version", MIGRATIONS.len())?;
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('config', ?1), ('engine_version', ?2), \
             ('created_at', strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))",
            params![serde_json::to_string(config)?, env!("CARGO_PKG_VERSION")],
        )?;
        for d in datasets {
            let rows: Vec<u8> = d.public_rows.iter().flat_map(|r| r.to_le_bytes()).collect();
            tx.execute(
                "INSERT INTO datasets (benchmark, source, sha256, test_rows, public_rows) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![d.benchmark, d.source, d.sha256, d.test_rows as i64, rows],
            )?;
        }
        for p in pools {
            tx.execute(
                "INSERT INTO pools (id, benchmark, difficulty, m, grp) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![p.id, p.benchmark, p.difficulty, p.m as i64, p.group],
            )?;
        }
        for (pool, name, part, m) in bounds {
            tx.execute(
                "INSERT INTO bounds (pool, bound, part, mu, vr, vb, ep) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![pool, name, part.as_str(), m.mu, m.vr, m.vb, m.ep],
            )?;
        }
        tx.commit()?;
        Ok(Db {
            conn,
            path: path.to_path_buf(),
        })
    }

    /// Opens an existing leaderboard, migrating it to this engine's schema.
    ///
    /// # Errors
    /// The file does not exist, is not a leaderboard, or is newer than this engine.
    pub fn open(path: &Path) -> Result<Db> {
        if !path.is_file() {
            bail!(
                "no leaderboard at `{}`; make one with `routereval-engine leaderboard init {} \
                 --config configs/leaderboard.toml`",
                path.display(),
                path.display()
            );
        }
        let mut conn = Connection::open(path)
            .with_context(|| format!("cannot open leaderboard `{}`", path.display()))?;
        conn.busy_timeout(Duration::from_secs(60))?;
        // Schema 0 is a database this engine did not make: never write into someone else's
        // (not even its journal mode).
        let version: usize = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .with_context(|| format!("`{}` is not a SQLite database", path.display()))?;
        if version == 0 {
            bail!(
                "`{}` is a SQLite database but not a leaderboard (make one with `leaderboard \
                 init`)",
                path.display()
            );
        }
        configure(&conn)
            .with_context(|| format!("`{}` is not a SQLite database", path.display()))?;
        migrate(&mut conn, path)?;
        let has_config: bool = conn
            .query_row("SELECT 1 FROM meta WHERE key = 'config'", [], |_| Ok(true))
            .optional()
            .with_context(|| format!("`{}` is not a leaderboard", path.display()))?
            .unwrap_or(false);
        if !has_config {
            bail!(
                "`{}` is not a leaderboard (no configuration)",
                path.display()
            );
        }
        Ok(Db {
            conn,
            path: path.to_path_buf(),
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The bounds.
    ///
    /// # Errors
    /// A database error.
    pub fn bounds(&self) -> Result<Vec<BoundRecord>> {
        let mut st = self
            .conn
            .prepare("SELECT pool, bound, part, vb, mu FROM bounds ORDER BY bound, pool, part")?;
        let rows = st.query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// A `meta` value.
    ///
    /// # Errors
    /// A database error.
    pub fn meta(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()?)
    }

    /// The configuration stored at `init`.
    ///
    /// # Errors
    /// A database error, or a configuration this engine cannot read.
    pub fn config(&self) -> Result<BoardConfig> {
        let text = self
            .meta("config")?
            .context("the leaderboard has no configuration")?;
        serde_json::from_str(&text).context("the leaderboard's stored configuration")
    }

    /// Whether the private part is revealed (`leaderboard reveal`).
    ///
    /// # Errors
    /// A database error.
    pub fn revealed(&self) -> Result<bool> {
        Ok(self.meta("revealed_at")?.is_some())
    }

    /// The part to rank by: the private one when asked for (`--private`) or revealed, else the
    /// public one.
    ///
    /// # Errors
    /// A database error.
    pub fn shown_part(&self, private: bool) -> Result<Part> {
        Ok(if private || self.revealed()? {
            Part::Private
        } else {
            Part::Public
        })
    }

    /// Marks the private part revealed (the pages and the API show it from now on).
    ///
    /// # Errors
    /// A database error.
    pub fn reveal(&self) -> Result<()> {
        self.conn.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('revealed_at', \
             strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))",
            [],
        )?;
        Ok(())
    }

    /// The datasets.
    ///
    /// # Errors
    /// A database error.
    pub fn datasets(&self) -> Result<Vec<DatasetRecord>> {
        let mut st = self.conn.prepare(
            "SELECT benchmark, source, sha256, test_rows, public_rows FROM datasets ORDER BY id",
        )?;
        let rows = st.query_map([], |r| {
            let blob: Vec<u8> = r.get(4)?;
            Ok(DatasetRecord {
                benchmark: r.get(0)?,
                source: r.get(1)?,
                sha256: r.get(2)?,
                test_rows: r.get::<_, i64>(3)? as usize,
                public_rows: blob
                    .chunks_exact(4)
                    .map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes")))
                    .collect(),
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The pools, in order.
    ///
    /// # Errors
    /// A database error.
    pub fn pools(&self) -> Result<Vec<PoolRecord>> {
        let mut st = self
            .conn
            .prepare("SELECT id, benchmark, difficulty, m, grp FROM pools ORDER BY id")?;
        let rows = st.query_map([], |r| {
            Ok(PoolRecord {
                id: r.get(0)?,
                benchmark: r.get(1)?,
                difficulty: r.get(2)?,
                m: r.get::<_, i64>(3)? as usize,
                group: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The submission of this identity, if any.
    ///
    /// # Errors
    /// A database error.
    pub fn find_identity(&self, identity: &str) -> Result<Option<Submission>> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {SUBMISSION_COLUMNS} FROM submissions WHERE identity = ?1"),
                [identity],
                submission_of,
            )
            .optional()?)
    }

    /// One submission.
    ///
    /// # Errors
    /// A database error.
    pub fn submission(&self, id: i64) -> Result<Option<Submission>> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {SUBMISSION_COLUMNS} FROM submissions WHERE id = ?1"),
                [id],
                submission_of,
            )
            .optional()?)
    }

    /// Every submission, by id.
    ///
    /// # Errors
    /// A database error.
    pub fn submissions(&self) -> Result<Vec<Submission>> {
        let mut st = self.conn.prepare(&format!(
            "SELECT {SUBMISSION_COLUMNS} FROM submissions ORDER BY id"
        ))?;
        let rows = st.query_map([], submission_of)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// A submission's component and parameters.
    ///
    /// # Errors
    /// A database error, or no such submission.
    pub fn component(&self, id: i64) -> Result<(Vec<u8>, String)> {
        self.conn
            .query_row(
                "SELECT component, params FROM submissions WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?
            .with_context(|| format!("no submission {id}"))
    }

    /// A submission's per-pool results, in pool order.
    ///
    /// # Errors
    /// A database error.
    pub fn results(&self, id: i64) -> Result<Vec<ResultRow>> {
        let mut st = self.conn.prepare(
            "SELECT pool, fuel, seconds, error_kind, error, log, scores, public, private \
             FROM results WHERE submission = ?1 ORDER BY pool",
        )?;
        let rows = st.query_map([id], |r| {
            let scores: Option<Vec<u8>> = r.get(6)?;
            let public: Option<String> = r.get(7)?;
            let private: Option<String> = r.get(8)?;
            Ok(ResultRow {
                pool: r.get(0)?,
                fuel: r.get(1)?,
                seconds: r.get(2)?,
                error_kind: r.get(3)?,
                error: r.get(4)?,
                log: r.get(5)?,
                scores: scores.map(|b| blob_to_f64s(&b)),
                public: public.and_then(|s| serde_json::from_str(&s).ok()),
                private: private.and_then(|s| serde_json::from_str(&s).ok()),
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn insert_new(tx: &Transaction<'_>, new: &NewSubmission, status: &str) -> Result<i64> {
        tx.execute(
            "INSERT INTO submissions (name, author, params, sha256, identity, size, component, \
             via, token, status) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                new.name,
                new.author,
                new.params,
                new.sha256,
                new.identity(),
                new.component.len() as i64,
                new.component,
                new.via,
                new.token,
                status
            ],
        )?;
        Ok(tx.last_insert_rowid())
    }

    fn write_scoring(tx: &Transaction<'_>, id: i64, s: &Scoring) -> Result<()> {
        tx.execute("DELETE FROM results WHERE submission = ?1", [id])?;
        for p in &s.pools {
            let (kind, error, scores, public, private) = match &p.outcome {
                Ok((public, private, scores)) => (
                    None,
                    None,
                    Some(f64s_to_blob(scores)),
                    Some(serde_json::to_string(public)?),
                    Some(serde_json::to_string(private)?),
                ),
                Err(f) => (
                    Some(f.kind.as_str()),
                    Some(f.message.clone()),
                    None,
                    None,
                    None,
                ),
            };
            tx.execute(
                "INSERT INTO results (submission, pool, fuel, seconds, error_kind, error, log, \
                 scores, public, private) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    id,
                    p.pool,
                    p.fuel.map(|f| f as i64),
                    p.seconds,
                    kind,
                    error,
                    Some(p.log.as_str()).filter(|l| !l.is_empty()),
                    scores,
                    public,
                    private
                ],
            )?;
        }
        let kinds = s.error_kinds();
        let status = if kinds.is_empty() { "scored" } else { "failed" };
        tx.execute(
            "UPDATE submissions SET status = ?2, scored_at = strftime('%Y-%m-%dT%H:%M:%SZ', \
             'now'), router_name = ?3, abi = ?4, sdk_version = ?5, fuel = ?6, seconds = ?7, \
             error_kinds = ?8, error = ?9, manifest = ?10, vb_public = ?11, vb_private = ?12 \
             WHERE id = ?1",
            params![
                id,
                status,
                Some(s.router_name.as_str()).filter(|n| !n.is_empty()),
                Some(s.abi.as_str()).filter(|n| !n.is_empty()),
                s.sdk_version,
                s.fuel().map(|f| f as i64),
                s.seconds,
                Some(kinds.join(",")).filter(|k| !k.is_empty()),
                s.first_error(),
                serde_json::to_string(&s.manifest)?,
                s.mean_vb(Part::Public),
                s.mean_vb(Part::Private),
            ],
        )?;
        Ok(())
    }

    /// Inserts `new` with `status` unless its identity is known (`Ok(Err(existing))`), with the
    /// scoring when given: the check and the writes in one transaction.
    fn insert_unless_known(
        &mut self,
        new: &NewSubmission,
        status: &str,
        scoring: Option<&Scoring>,
    ) -> Result<std::result::Result<i64, Submission>> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        if let Some(existing) = tx
            .query_row(
                &format!("SELECT {SUBMISSION_COLUMNS} FROM submissions WHERE identity = ?1"),
                [new.identity()],
                submission_of,
            )
            .optional()?
        {
            return Ok(Err(existing));
        }
        let id = Self::insert_new(&tx, new, status)?;
        if let Some(s) = scoring {
            Self::write_scoring(&tx, id, s)?;
        }
        tx.commit()?;
        Ok(Ok(id))
    }

    /// Records a submission and its scoring in one transaction (the command line's `submit`).
    /// `Ok(Err(existing))` when a submission of the same identity landed meanwhile.
    ///
    /// # Errors
    /// A database error.
    pub fn insert_scored(
        &mut self,
        new: &NewSubmission,
        s: &Scoring,
    ) -> Result<std::result::Result<i64, Submission>> {
        self.insert_unless_known(new, "running", Some(s))
    }

    /// Queues a submission (the server's); `Ok(Err(existing))` for a known identity.
    ///
    /// # Errors
    /// A database error.
    pub fn enqueue(&mut self, new: &NewSubmission) -> Result<std::result::Result<i64, Submission>> {
        self.insert_unless_known(new, "queued", None)
    }

    /// Puts back in the queue what was being scored when the server stopped.
    ///
    /// # Errors
    /// A database error.
    pub fn requeue_running(&self) -> Result<usize> {
        Ok(self.conn.execute(
            "UPDATE submissions SET status = 'queued' WHERE status = 'running'",
            [],
        )?)
    }

    /// Takes the oldest queued submission and marks it running.
    ///
    /// # Errors
    /// A database error.
    pub fn claim_next(&mut self) -> Result<Option<i64>> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let id: Option<i64> = tx
            .query_row(
                "SELECT id FROM submissions WHERE status = 'queued' ORDER BY id LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(id) = id {
            tx.execute(
                "UPDATE submissions SET status = 'running', attempts = attempts + 1 WHERE id = ?1",
                [id],
            )?;
        }
        tx.commit()?;
        Ok(id)
    }

    /// Records the scoring of submission `id` (queued, running, or scored before: `rescore
    /// --write`), results and status in one transaction.
    ///
    /// # Errors
    /// A database error.
    pub fn record(&mut self, id: i64, s: &Scoring) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        Self::write_scoring(&tx, id, s)?;
        tx.commit()?;
        Ok(())
    }

    /// Adds a token named `name` with the hash of its secret.
    ///
    /// # Errors
    /// The name is taken, or a database error.
    pub fn add_token(&self, name: &str, hash: &str) -> Result<i64> {
        self.conn
            .execute(
                "INSERT INTO tokens (name, hash) VALUES (?1, ?2)",
                params![name, hash],
            )
            .map_err(|e| match e {
                rusqlite::Error::SqliteFailure(f, _)
                    if f.code == rusqlite::ErrorCode::ConstraintViolation =>
                {
                    anyhow::anyhow!("a token named `{name}` exists already; pick another name")
                }
                e => e.into(),
            })?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Revokes the token named `name`; whether there was one.
    ///
    /// # Errors
    /// A database error.
    pub fn revoke_token(&self, name: &str) -> Result<bool> {
        Ok(self
            .conn
            .execute("UPDATE tokens SET revoked = 1 WHERE name = ?1", [name])?
            > 0)
    }

    /// The tokens: `(name, created_at, revoked, submissions today)`.
    ///
    /// # Errors
    /// A database error.
    pub fn tokens(&self) -> Result<Vec<(String, String, bool, i64)>> {
        let mut st = self.conn.prepare(
            "SELECT t.name, t.created_at, t.revoked, (SELECT count(*) FROM submissions s \
             WHERE s.token = t.id AND substr(s.submitted_at, 1, 10) = date('now')) \
             FROM tokens t ORDER BY t.id",
        )?;
        let rows = st.query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? != 0, r.get(3)?))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The live token of this secret's hash: `(id, name)`.
    ///
    /// # Errors
    /// A database error.
    pub fn token_by_hash(&self, hash: &str) -> Result<Option<(i64, String)>> {
        Ok(self
            .conn
            .query_row(
                "SELECT id, name FROM tokens WHERE hash = ?1 AND revoked = 0",
                [hash],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
    }

    /// Submissions made with token `id` today (UTC).
    ///
    /// # Errors
    /// A database error.
    pub fn submissions_today(&self, token: i64) -> Result<i64> {
        Ok(self.conn.query_row(
            "SELECT count(*) FROM submissions WHERE token = ?1 AND substr(submitted_at, 1, 10) \
             = date('now')",
            [token],
            |r| r.get(0),
        )?)
    }

    /// A key that changes whenever what a ranking shows changes (a submission added, claimed,
    /// scored or rescored; the private part revealed): what the server caches its ranking by.
    ///
    /// # Errors
    /// A database error.
    pub fn change_key(&self) -> Result<String> {
        Ok(self.conn.query_row(
            "SELECT count(*) || '/' || coalesce(max(id), 0) || '/' || \
             coalesce(sum(attempts), 0) || '/' || coalesce(sum(status = 'running'), 0) || '/' || \
             coalesce(sum(status = 'scored'), 0) || '/' || coalesce(max(scored_at), '') || '/' || \
             coalesce((SELECT value FROM meta WHERE key = 'revealed_at'), '') FROM submissions",
            [],
            |r| r.get(0),
        )?)
    }

    /// `PRAGMA integrity_check`'s answer (`ok` when sound).
    ///
    /// # Errors
    /// A database error.
    pub fn integrity_check(&self) -> Result<String> {
        Ok(self
            .conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))?)
    }
}
