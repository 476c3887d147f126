//! `leaderboard serve`: the ranking and entry pages, and a submission API, on `axum`.
//!
//! - `GET /`: the ranking (the private part once revealed); `GET /entries/ID`: one entry.
//! - `GET /api/leaderboard`: the ranking as JSON; `GET /api/submissions/ID`: one submission's
//!   status and numbers.
//! - `POST /api/submissions?name=NAME[&author=A][&params=k=v,k=v]`, the component as the body,
//!   `Authorization: Bearer TOKEN`: 401 without a live token, 429 over the token's daily quota,
//!   413 over the size cap (refused from `Content-Length`, or as soon as the body passes the cap
//!   while it is read), 400 for anything [`crate::leaderboard::intake`] refuses, 409 for a
//!   component and parameters already submitted, 202 with the id when queued.
//!
//! The queue is the database: a submission is stored `queued`, one worker thread scores one at
//! a time (`running`), and records the results and the status in one transaction. A server
//! killed while scoring leaves the submission `running` with no results; the next start puts it
//! back in the queue.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::json;

use crate::leaderboard::db::Db;
use crate::leaderboard::intake;
use crate::leaderboard::rank::Ranking;
use crate::leaderboard::score::Board;
use crate::plugin::wasm::WasmHost;

struct Shared {
    db: Mutex<Db>,
    /// The database file: pages open their own connection, so a slow ranking never holds up
    /// a submission.
    path: PathBuf,
    /// The last ranking built and the database's change key then: pages are served from it
    /// until something changes (the neighbour tests cost seconds on a large board).
    cache: Mutex<Option<(String, Arc<Ranking>)>>,
    max_bytes: usize,
    quota: u32,
    seed: u64,
    wake: Arc<(Mutex<bool>, Condvar)>,
}

type AppState = Arc<Shared>;

fn json_error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "error": message }))).into_response()
}

fn internal(e: &anyhow::Error) -> Response {
    json_error(StatusCode::INTERNAL_SERVER_ERROR, &format!("{e:#}"))
}

fn ranking(state: &Shared) -> Result<Arc<Ranking>> {
    let db = Db::open(&state.path)?;
    let key = db.change_key()?;
    if let Some((k, r)) = &*state.cache.lock().unwrap_or_else(|e| e.into_inner())
        && *k == key
    {
        return Ok(r.clone());
    }
    let r = Arc::new(Ranking::build(&db, db.shown_part(false)?)?);
    *state.cache.lock().unwrap_or_else(|e| e.into_inner()) = Some((key, r.clone()));
    Ok(r)
}

async fn index(State(state): State<AppState>) -> Response {
    match tokio::task::spawn_blocking(move || ranking(&state)).await {
        Ok(Ok(r)) => Html(crate::leaderboard::html::ranking_page(&r)).into_response(),
        Ok(Err(e)) => internal(&e),
        Err(e) => internal(&anyhow::anyhow!("{e}")),
    }
}

async fn entry(State(state): State<AppState>, UrlPath(id): UrlPath<String>) -> Response {
    let Ok(id) = id.parse::<i64>() else {
        return (StatusCode::NOT_FOUND, "no such entry").into_response();
    };
    match tokio::task::spawn_blocking(move || ranking(&state)).await {
        Ok(Ok(r)) => match crate::leaderboard::html::entry_page(&r, id) {
            Some(page) => Html(page).into_response(),
            None => (StatusCode::NOT_FOUND, "no such entry (or not scored yet)").into_response(),
        },
        Ok(Err(e)) => internal(&e),
        Err(e) => internal(&anyhow::anyhow!("{e}")),
    }
}

async fn api_leaderboard(State(state): State<AppState>) -> Response {
    match tokio::task::spawn_blocking(move || ranking(&state)).await {
        Ok(Ok(r)) => axum::Json(crate::leaderboard::ranking_json(&r)).into_response(),
        Ok(Err(e)) => internal(&e),
        Err(e) => internal(&anyhow::anyhow!("{e}")),
    }
}

async fn api_submission(State(state): State<AppState>, UrlPath(id): UrlPath<String>) -> Response {
    let Ok(id) = id.parse::<i64>() else {
        return json_error(StatusCode::NOT_FOUND, "no such submission");
    };
    let db = state.db.lock().unwrap_or_else(|e| e.into_inner());
    let revealed = match db.revealed() {
        Ok(r) => r,
        Err(e) => return internal(&e),
    };
    match db.submission(id) {
        Ok(Some(s)) => {
            axum::Json(crate::leaderboard::submission_json(&s, revealed)).into_response()
        }
        Ok(None) => json_error(StatusCode::NOT_FOUND, "no such submission"),
        Err(e) => internal(&e),
    }
}

#[derive(Debug, Deserialize)]
struct SubmitQuery {
    name: Option<String>,
    author: Option<String>,
    params: Option<String>,
}

/// The token's id, or the response that refuses the request.
fn authorise(state: &Shared, headers: &HeaderMap) -> std::result::Result<i64, Response> {
    let unauthorised = |why: &str| {
        let mut r = json_error(StatusCode::UNAUTHORIZED, why);
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
        r
    };
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(unauthorised(
            "no token: send `Authorization: Bearer TOKEN` (the maintainer makes tokens with \
             `leaderboard token add`)",
        ));
    };
    let Some(secret) = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
    else {
        return Err(unauthorised(
            "the Authorization header must be `Bearer TOKEN`",
        ));
    };
    let db = state.db.lock().unwrap_or_else(|e| e.into_inner());
    match db.token_by_hash(&crate::leaderboard::token_hash(secret)) {
        Ok(Some((id, _))) => Ok(id),
        Ok(None) => Err(unauthorised("unknown or revoked token")),
        Err(e) => Err(internal(&e)),
    }
}

fn over_quota(state: &Shared, db: &Db, token: i64) -> std::result::Result<(), Response> {
    match db.submissions_today(token) {
        Ok(n) if n >= i64::from(state.quota) => Err(json_error(
            StatusCode::TOO_MANY_REQUESTS,
            &format!(
                "this token has made its {} submission(s) for today (UTC); try again tomorrow",
                state.quota
            ),
        )),
        Ok(_) => Ok(()),
        Err(e) => Err(internal(&e)),
    }
}

async fn submit(
    State(state): State<AppState>,
    Query(q): Query<SubmitQuery>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let token = match authorise(&state, &headers) {
        Ok(t) => t,
        Err(r) => return r,
    };
    {
        let db = state.db.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(r) = over_quota(&state, &db, token) {
            return r;
        }
    }
    let too_large = || {
        json_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!(
                "the component is over this leaderboard's cap of {} bytes",
                state.max_bytes
            ),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > state.max_bytes as u64) {
        return too_large();
    }
    // Reads at most the cap (+1 to tell "exactly the cap" from "over"), then stops.
    let bytes = match axum::body::to_bytes(body, state.max_bytes).await {
        Ok(b) => b,
        Err(e) => {
            let over = std::error::Error::source(&e)
                .is_some_and(|s| s.to_string().contains("length limit"))
                || e.to_string().contains("length limit");
            return if over {
                too_large()
            } else {
                json_error(
                    StatusCode::BAD_REQUEST,
                    &format!("cannot read the body: {e}"),
                )
            };
        }
    };
    let Some(name) = q.name else {
        return json_error(
            StatusCode::BAD_REQUEST,
            "give the entry's name: POST /api/submissions?name=NAME",
        );
    };
    let params: Vec<String> = q
        .params
        .as_deref()
        .map(|p| p.split(',').map(str::to_string).collect())
        .unwrap_or_default();
    let state2 = state.clone();
    let admitted = tokio::task::spawn_blocking(move || {
        intake::admit(
            &name,
            q.author.as_deref(),
            &params,
            state2.seed,
            bytes.to_vec(),
            state2.max_bytes,
            "http",
            Some(token),
        )
    })
    .await;
    let new = match admitted {
        Ok(Ok(n)) => n,
        Ok(Err(refusal)) => return json_error(StatusCode::BAD_REQUEST, &refusal.0),
        Err(e) => return internal(&anyhow::anyhow!("{e}")),
    };
    let queued = {
        let mut db = state.db.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(r) = over_quota(&state, &db, token) {
            return r;
        }
        db.enqueue(&new)
    };
    match queued {
        Ok(Ok(id)) => {
            let (lock, cv) = &*state.wake;
            *lock.lock().unwrap_or_else(|e| e.into_inner()) = true;
            cv.notify_all();
            (
                StatusCode::ACCEPTED,
                axum::Json(json!({
                    "id": id,
                    "status": "queued",
                    "sha256": new.sha256,
                    "url": format!("/api/submissions/{id}"),
                })),
            )
                .into_response()
        }
        Ok(Err(existing)) => (
            StatusCode::CONFLICT,
            axum::Json(json!({
                "error": format!(
                    "this component with these parameters is already entry {} ({}); the same \
                     submission is not run twice",
                    existing.id, existing.status
                ),
                "id": existing.id,
                "status": existing.status,
            })),
        )
            .into_response(),
        Err(e) => internal(&e),
    }
}

/// Scores queued submissions one at a time until `stop`.
fn worker(
    db_path: PathBuf,
    board: Arc<Board>,
    host: Arc<WasmHost>,
    wake: Arc<(Mutex<bool>, Condvar)>,
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Box<dyn Write + Send>>>,
) {
    let say = |line: String| {
        let mut l = log.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(l, "{line}");
        let _ = l.flush();
    };
    let mut db = match Db::open(&db_path) {
        Ok(d) => d,
        Err(e) => {
            say(format!("worker: cannot open the database: {e:#}"));
            return;
        }
    };
    while !stop.load(Ordering::Relaxed) {
        match db.claim_next() {
            Ok(Some(id)) => {
                say(format!("scoring submission {id}"));
                match db.component(id).and_then(|(c, p)| {
                    crate::leaderboard::score_bytes(&board, &host, &c, &p, &|rec, p| {
                        say(format!(
                            "  submission {id}: {}",
                            crate::leaderboard::pool_line(rec, p)
                        ));
                    })
                }) {
                    Ok(s) => match db.record(id, &s) {
                        Ok(()) => say(format!(
                            "submission {id}: {}",
                            if s.error_kinds().is_empty() {
                                "scored".to_string()
                            } else {
                                format!("failed ({})", s.error_kinds().join(", "))
                            }
                        )),
                        Err(e) => say(format!("submission {id}: cannot record: {e:#}")),
                    },
                    Err(e) => say(format!("submission {id}: cannot score: {e:#}")),
                }
            }
            Ok(None) => {
                let (lock, cv) = &*wake;
                let mut woken = lock.lock().unwrap_or_else(|e| e.into_inner());
                if !*woken {
                    woken = cv
                        .wait_timeout(woken, Duration::from_millis(500))
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
                *woken = false;
            }
            Err(e) => {
                say(format!("worker: {e:#}"));
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
}

/// Serves the leaderboard at `db_path` on `listen` until interrupted (Ctrl-C, SIGTERM). Writes
/// `listening on http://ADDR` to `out` once bound (port 0 picks a free port).
///
/// # Errors
/// The database cannot be opened, the data is missing or changed, or the address is taken.
pub fn serve(
    db_path: &Path,
    listen: &str,
    threads: Option<usize>,
    out: Box<dyn Write + Send>,
) -> Result<()> {
    let db = Db::open(db_path)?;
    let config = db.config()?;
    let requeued = db.requeue_running()?;
    let pool = Arc::new(config.sandbox.worker_pool(threads)?);
    let board = Arc::new(Board::load(config.clone(), db.datasets()?, db.pools()?)?);
    let host = WasmHost::new(
        config.sandbox.clone(),
        crate::plugin::wasm::default_cache_dir(),
    )?;
    let addr: SocketAddr = listen
        .parse()
        .with_context(|| format!("`{listen}` is not an address such as 127.0.0.1:8080"))?;
    let wake = Arc::new((Mutex::new(requeued > 0), Condvar::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let log = Arc::new(Mutex::new(out));
    let state = Arc::new(Shared {
        db: Mutex::new(db),
        path: db_path.to_path_buf(),
        cache: Mutex::new(None),
        max_bytes: config.submissions.max_bytes(),
        quota: config.submissions.daily_quota,
        seed: config.seed,
        wake: wake.clone(),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the server's runtime")?;
    let worker_thread = {
        let (db_path, board, host, wake, stop, log, pool) = (
            db_path.to_path_buf(),
            board.clone(),
            host.clone(),
            wake.clone(),
            stop.clone(),
            log.clone(),
            pool.clone(),
        );
        std::thread::Builder::new()
            .name("leaderboard-worker".into())
            .spawn(move || pool.install(|| worker(db_path, board, host, wake, stop, log)))
            .context("cannot start the scoring worker")?
    };
    let app = Router::new()
        .route("/", get(index))
        .route("/entries/{id}", get(entry))
        .route("/api/leaderboard", get(api_leaderboard))
        .route("/api/submissions", axum::routing::post(submit))
        .route("/api/submissions/{id}", get(api_submission))
        .layer(DefaultBodyLimit::disable())
        .with_state(state);
    let result = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        let bound = listener.local_addr()?;
        {
            let mut l = log.lock().unwrap_or_else(|e| e.into_inner());
            writeln!(l, "listening on http://{bound}")?;
            if requeued > 0 {
                writeln!(l, "{requeued} submission(s) interrupted by a stop are queued again")?;
            }
            l.flush()?;
        }
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                #[cfg(unix)]
                {
                    let mut term =
                        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                            .ok();
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => {},
                        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {},
                    }
                }
                #[cfg(not(unix))]
                {
                    let _ = tokio::signal::ctrl_c().await;
                }
            })
            .await
            .context("the server stopped")
    });
    stop.store(true, Ordering::Relaxed);
    let (lock, cv) = &*wake;
    *lock.lock().unwrap_or_else(|e| e.into_inner()) = true;
    cv.notify_all();
    // A scoring in progress is not waited for: the next start queues it again.
    drop(worker_thread);
    result
}
