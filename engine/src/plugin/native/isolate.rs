//! Process isolation of native plugins: each evaluation (and the load-time probe) runs in a
//! child process of the engine binary (`routereval-engine __native-worker`), so a segfault, an
//! abort, an `exit` or a hang in the plugin becomes the typed failure of that evaluation
//! (`crash`, `abort`, `timeout`) and the engine carries on.
//!
//! The protocol, over pipes:
//!
//! - engine → worker (standard input): the magic `RTEVAL-NATIVE/1\n`, a little-endian `u64`
//!   length, a JSON request (plugin path, seed, parameters, shapes, the byte length of each
//!   prompt, candidate names), the prompts' UTF-8 text (train, validation, test, each split's
//!   prompts back to back), then the matrices as raw native-endian `f32`: train embeddings,
//!   train scores, validation embeddings, validation scores, test embeddings.
//! - worker → engine (the worker's original standard output, kept for the protocol; the
//!   plugin's own standard output is pointed at standard error, which the engine captures as
//!   the evaluation's log): frames of a tag byte, a little-endian `u64` length and a payload.
//!   `H` hello (first, proves the executable is a worker), `S` the stage about to start
//!   (`create`, `fit`, `route`: names the stage a crash happened in), then one of `I` (probe:
//!   name and SDK version, JSON), `E` (a typed failure, JSON) or `R` (the routing: `u64` n,
//!   `u64` m, a `u8` choices flag, `n x m` `f32`, and `n` `u32` when the flag is set).
//!
//! Why pipes and not a shared memory map: no file is left behind when either side dies, and
//! the copy costs about as much as writing a map would (the data crosses once per evaluation;
//! the overhead is measured by `cargo bench -p routereval-tests --bench native`).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;

use routereval_sdk::{ParamValue, Params, Queries, Routing, Split};
use serde::{Deserialize, Serialize};

use crate::failure::{Failure, FailureKind};
use crate::plugin::child::{self, Keep};
use crate::plugin::native::{self, LoadError};
use crate::plugin::policy::SandboxPolicy;

/// The hidden subcommand that makes the engine binary a worker.
pub const WORKER_COMMAND: &str = "__native-worker";

const MAGIC: &[u8; 16] = b"RTEVAL-NATIVE/1\n";

/// Requests above this are refused by the worker (a corrupt length, not a real dataset).
const MAX_HEADER: u64 = 1 << 32;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Mode {
    Probe,
    Evaluate,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
enum Value {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

#[derive(Debug, Serialize, Deserialize)]
struct QueriesHeader {
    n: usize,
    dim: usize,
    /// Byte length of each prompt (none when the dataset has no prompts); the text follows the
    /// header, which keeps megabytes of prompts out of JSON.
    prompt_lens: Vec<u64>,
}

/// What the engine asks of a worker.
#[derive(Debug, Serialize, Deserialize)]
struct Request {
    mode: Mode,
    plugin: PathBuf,
    /// The SHA-256 the engine loaded (and reports); the worker refuses a file that changed.
    sha256: Option<String>,
    seed: u64,
    params: Vec<(String, Value)>,
    candidates: Vec<String>,
    train: Option<QueriesHeader>,
    val: Option<QueriesHeader>,
    test: Option<QueriesHeader>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Info {
    name: Option<String>,
    sdk_version: String,
}

/// A failure as the worker sends it.
#[derive(Debug, Serialize, Deserialize)]
struct WireFailure {
    kind: FailureKind,
    message: String,
    /// The library cannot be loaded at all: an input error, not an evaluation's failure.
    fatal: bool,
}

fn f32_bytes(v: &[f32]) -> &[u8] {
    bytemuck::cast_slice(v)
}

fn queries_header(q: &Queries<'_>) -> QueriesHeader {
    QueriesHeader {
        n: q.len(),
        dim: q.dim(),
        prompt_lens: q.prompts().iter().map(|p| p.len() as u64).collect(),
    }
}

// ---------------------------------------------------------------------------------------------
// The engine's side.

/// What came back from one worker run.
struct WorkerRun {
    frames: Vec<(u8, Vec<u8>)>,
    status: Option<ExitStatus>,
    timed_out: bool,
    output_overflow: bool,
    log: String,
}

fn parse_frames(mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut frames = Vec::new();
    while bytes.len() >= 9 {
        let tag = bytes[0];
        let len = u64::from_le_bytes(bytes[1..9].try_into().expect("8 bytes")) as usize;
        let Some(payload) = bytes.get(9..9usize.saturating_add(len)) else {
            break;
        };
        frames.push((tag, payload.to_vec()));
        bytes = &bytes[9 + len..];
    }
    frames
}

/// Runs the worker on one request and collects what it said, its exit status and its log.
fn run_worker(
    worker: &Path,
    header: &[u8],
    blobs: &[&[u8]],
    policy: &SandboxPolicy,
    output_cap: usize,
) -> std::io::Result<WorkerRun> {
    let mut cmd = Command::new(worker);
    cmd.arg(WORKER_COMMAND);
    let write = |w: &mut dyn Write| -> std::io::Result<()> {
        w.write_all(MAGIC)?;
        w.write_all(&(header.len() as u64).to_le_bytes())?;
        w.write_all(header)?;
        for b in blobs {
            w.write_all(b)?;
        }
        Ok(())
    };
    let max_log = policy.max_log_bytes();
    let done = child::run(
        cmd,
        Some(&write),
        Duration::from_secs_f64(policy.timeout_secs),
        Keep::Head(output_cap),
        Keep::Head(max_log),
    )?;
    let mut log = String::from_utf8_lossy(&done.stderr).into_owned();
    if done.stderr_dropped > 0 {
        log.push_str(&format!(
            "\n[log capped at {max_log} bytes: {} bytes dropped]",
            done.stderr_dropped
        ));
    }
    Ok(WorkerRun {
        frames: parse_frames(&done.stdout),
        status: done.status,
        timed_out: done.timed_out,
        output_overflow: done.stdout_dropped > 0,
        log,
    })
}

fn failure(kind: FailureKind, message: String) -> Failure {
    Failure::new(kind, message)
}

/// The typed failure of a worker that gave no answer: why it ended, in which stage.
fn classify(run: &WorkerRun, worker: &Path, policy: &SandboxPolicy) -> Failure {
    if !run.frames.iter().any(|(t, _)| *t == b'H') && !run.timed_out {
        return failure(
            FailureKind::WorkerError,
            format!(
                "the worker process `{}` did not speak the worker protocol (exit status {}); \
                 the worker is the engine binary itself: a program that embeds the engine must \
                 run `routereval_engine::cli::main_with` so that `{WORKER_COMMAND}` works, or \
                 name the engine binary as the worker. Its output: {}",
                worker.display(),
                run.status
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "unknown".into()),
                run.log.trim()
            ),
        );
    }
    let stage = run
        .frames
        .iter()
        .rev()
        .find(|(t, _)| *t == b'S')
        .map(|(_, p)| String::from_utf8_lossy(p).into_owned())
        .unwrap_or_else(|| "loading the library".into());
    let stage = if stage == "loading the library" {
        stage
    } else {
        format!("`{stage}`")
    };
    if run.timed_out {
        return failure(
            FailureKind::Timeout,
            format!(
                "{stage} did not finish within the {} s deadline; the worker process was killed",
                policy.timeout_secs
            ),
        );
    }
    match run.status {
        Some(st) => match child::signal_of(&st) {
            Some(6) => failure(
                FailureKind::Abort,
                format!(
                    "{stage} aborted the worker process (SIGABRT); the engine carries on{}",
                    tail(&run.log)
                ),
            ),
            Some(sig) => failure(
                FailureKind::Crash,
                format!(
                    "{stage} crashed the worker process: killed by signal {sig} ({}); the \
                     engine carries on{}",
                    child::signal_name(sig),
                    tail(&run.log)
                ),
            ),
            None => failure(
                FailureKind::Crash,
                format!(
                    "{stage} ended the worker process ({st}) before it answered (a plugin \
                     must return, not exit){}",
                    tail(&run.log)
                ),
            ),
        },
        None => failure(
            FailureKind::Crash,
            format!("{stage}: the worker process was lost{}", tail(&run.log)),
        ),
    }
}

/// The last lines of a log, for a failure message.
fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.trim().lines().collect();
    if lines.is_empty() {
        return String::new();
    }
    let from = lines.len().saturating_sub(3);
    format!("; it wrote: {}", lines[from..].join(" / "))
}

fn request(mode: Mode, plugin: &Path, params: &Params) -> Request {
    Request {
        mode,
        plugin: plugin.to_path_buf(),
        sha256: None,
        seed: params.seed(),
        params: params
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    ParamValue::Bool(b) => Value::Bool(*b),
                    ParamValue::Int(i) => Value::Int(*i),
                    ParamValue::Float(x) => Value::Float(*x),
                    ParamValue::Str(s) => Value::Str(s.clone()),
                };
                (k.to_string(), v)
            })
            .collect(),
        candidates: Vec::new(),
        train: None,
        val: None,
        test: None,
    }
}

fn decode<T: for<'de> Deserialize<'de>>(payload: &[u8]) -> Option<T> {
    serde_json::from_slice(payload).ok()
}

/// Loads the library in a child and returns its name and SDK version.
///
/// # Errors
/// [`LoadError::Fatal`] when the library cannot be loaded or the worker cannot run;
/// [`LoadError::Unusable`] when it is not a compatible router plugin or the probe crashed.
pub fn probe(
    worker: &Path,
    plugin: &Path,
    policy: &SandboxPolicy,
) -> Result<(Option<String>, String), LoadError> {
    let req = request(Mode::Probe, plugin, &Params::new(0));
    let header = serde_json::to_vec(&req).expect("a request serialises");
    let run = run_worker(worker, &header, &[], policy, 1 << 20).map_err(|e| {
        LoadError::Fatal(format!(
            "cannot start the worker process `{}` to load native plugin `{}` in isolation: {e}",
            worker.display(),
            plugin.display()
        ))
    })?;
    for (tag, payload) in run.frames.iter().rev() {
        match tag {
            b'I' => {
                if let Some(info) = decode::<Info>(payload) {
                    return Ok((info.name, info.sdk_version));
                }
            }
            b'E' => {
                if let Some(f) = decode::<WireFailure>(payload) {
                    return Err(if f.fatal {
                        LoadError::Fatal(f.message)
                    } else {
                        LoadError::Unusable(failure(f.kind, f.message))
                    });
                }
            }
            _ => {}
        }
    }
    let e = classify(&run, worker, policy);
    if e.kind == FailureKind::WorkerError {
        return Err(LoadError::Fatal(e.message));
    }
    Err(LoadError::Unusable(e))
}

/// The child an isolated evaluation runs in: the worker executable, the library (and the
/// SHA-256 it had when loaded), and the limits.
#[derive(Clone, Copy, Debug)]
pub struct Job<'a> {
    /// The engine binary.
    pub worker: &'a Path,
    /// The library.
    pub plugin: &'a Path,
    /// Its SHA-256 when the run started.
    pub sha256: &'a str,
    /// The deadline and the output and log caps.
    pub policy: &'a SandboxPolicy,
}

/// Runs one evaluation in a child; returns the routing or the typed failure, and the log.
pub fn evaluate(
    job: Job<'_>,
    params: &Params,
    train: &Split<'_>,
    val: &Split<'_>,
    test: &Queries<'_>,
) -> (Result<Routing, Failure>, String) {
    let Job {
        worker,
        plugin,
        sha256,
        policy,
    } = job;
    let mut req = request(Mode::Evaluate, plugin, params);
    req.sha256 = Some(sha256.to_string());
    req.candidates = train.candidates().iter().map(str::to_string).collect();
    req.train = Some(queries_header(&train.queries()));
    req.val = Some(queries_header(&val.queries()));
    req.test = Some(queries_header(test));
    let header = serde_json::to_vec(&req).expect("a request serialises");
    let mut blobs: Vec<&[u8]> = Vec::new();
    for q in [train.queries(), val.queries(), *test] {
        blobs.extend(q.prompts().iter().map(str::as_bytes));
    }
    blobs.extend([
        f32_bytes(train.embeddings()),
        f32_bytes(train.scores()),
        f32_bytes(val.embeddings()),
        f32_bytes(val.scores()),
        f32_bytes(test.embeddings()),
    ]);
    let cap = policy.max_output_bytes().saturating_add(1 << 20);
    let run = match run_worker(worker, &header, &blobs, policy, cap) {
        Ok(r) => r,
        Err(e) => {
            return (
                Err(failure(
                    FailureKind::WorkerError,
                    format!(
                        "cannot start the worker process `{}`: {e}",
                        worker.display()
                    ),
                )),
                String::new(),
            );
        }
    };
    if run.output_overflow {
        let e = failure(
            FailureKind::InvalidOutput,
            format!(
                "the routing is larger than the output cap ({} MiB)",
                policy.max_output_mib
            ),
        );
        return (Err(e), run.log);
    }
    for (tag, payload) in run.frames.iter().rev() {
        match tag {
            b'R' => match decode_routing(payload) {
                Some(r) => return (r, run.log),
                None => {
                    let e = failure(
                        FailureKind::WorkerError,
                        "the worker sent a truncated routing".into(),
                    );
                    return (Err(e), run.log);
                }
            },
            b'E' => {
                if let Some(f) = decode::<WireFailure>(payload) {
                    return (Err(failure(f.kind, f.message)), run.log);
                }
            }
            _ => {}
        }
    }
    let e = classify(&run, worker, policy);
    (Err(e), run.log)
}

fn decode_routing(p: &[u8]) -> Option<Result<Routing, Failure>> {
    let n = usize::try_from(u64::from_le_bytes(p.get(0..8)?.try_into().ok()?)).ok()?;
    let m = usize::try_from(u64::from_le_bytes(p.get(8..16)?.try_into().ok()?)).ok()?;
    let has_choices = *p.get(16)? != 0;
    let nm = n.checked_mul(m)?;
    let belief_end = 17usize.checked_add(nm.checked_mul(4)?)?;
    let belief: Vec<f32> = p
        .get(17..belief_end)?
        .chunks_exact(4)
        .map(|c| f32::from_ne_bytes(c.try_into().expect("4 bytes")))
        .collect();
    let routing = Routing::from_belief(n, m, belief);
    let routing = if has_choices {
        let end = belief_end.checked_add(n.checked_mul(4)?)?;
        let choices: Vec<u32> = p
            .get(belief_end..end)?
            .chunks_exact(4)
            .map(|c| u32::from_ne_bytes(c.try_into().expect("4 bytes")))
            .collect();
        routing.and_then(|r| r.with_choices(choices))
    } else {
        routing
    };
    Some(routing.map_err(|e| failure(FailureKind::InvalidOutput, e.message().to_string())))
}

// ---------------------------------------------------------------------------------------------
// The worker's side.

/// The channel to the engine: the process's original standard output. The plugin's standard
/// output goes to standard error from here on, so nothing it prints can corrupt the protocol.
#[cfg(unix)]
fn protocol_channel() -> std::io::Result<std::fs::File> {
    use std::os::fd::AsFd;
    let out = std::io::stdout();
    let kept = rustix::io::fcntl_dupfd_cloexec(out.as_fd(), 3)?;
    rustix::stdio::dup2_stdout(std::io::stderr().as_fd())?;
    // A crashing plugin must not leave a core dump of the engine (with its data) behind; the
    // hard limit too, so that the plugin cannot raise it again.
    let _ = rustix::process::setrlimit(
        rustix::process::Resource::Core,
        rustix::process::Rlimit {
            current: Some(0),
            maximum: Some(0),
        },
    );
    Ok(std::fs::File::from(kept))
}

#[cfg(not(unix))]
fn protocol_channel() -> std::io::Result<std::fs::File> {
    Err(std::io::Error::other(
        "process isolation of native plugins needs a Unix platform; use --isolate none",
    ))
}

fn frame(out: &mut impl Write, tag: u8, payload: &[u8]) -> std::io::Result<()> {
    out.write_all(&[tag])?;
    out.write_all(&(payload.len() as u64).to_le_bytes())?;
    out.write_all(payload)?;
    out.flush()
}

fn read_f32s(input: &mut impl Read, rows: usize, cols: usize) -> std::io::Result<Vec<f32>> {
    let len = rows
        .checked_mul(cols)
        .ok_or_else(|| std::io::Error::other("matrix too large"))?;
    let mut v = vec![0f32; len];
    input.read_exact(bytemuck::cast_slice_mut(&mut v))?;
    Ok(v)
}

/// Reads the text of prompts of these byte lengths.
fn read_text(input: &mut impl Read, lens: &[u64]) -> std::io::Result<String> {
    let total = lens
        .iter()
        .try_fold(0u64, |a, &l| a.checked_add(l))
        .and_then(|t| usize::try_from(t).ok())
        .ok_or_else(|| std::io::Error::other("prompts too large"))?;
    let mut bytes = vec![0u8; total];
    input.read_exact(&mut bytes)?;
    String::from_utf8(bytes).map_err(std::io::Error::other)
}

/// Cuts `text` into prompts of byte lengths `lens` (which [`read_text`] summed: in range, and at
/// character boundaries since each prompt was a string).
fn split_text<'a>(text: &'a str, lens: &[u64]) -> Vec<&'a str> {
    let mut at = 0usize;
    lens.iter()
        .map(|&l| {
            let start = at;
            at += l as usize;
            text.get(start..at).unwrap_or_default()
        })
        .collect()
}

/// The worker's `main`: serves one request on standard input and returns the exit status.
pub fn worker_main() -> i32 {
    let mut out = match protocol_channel() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("routereval worker: {e}");
            return 2;
        }
    };
    if frame(&mut out, b'H', b"1").is_err() {
        return 2;
    }
    match serve(&mut std::io::stdin().lock(), &mut out) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("routereval worker: {e}");
            3
        }
    }
}

fn send_failure(
    out: &mut impl Write,
    kind: FailureKind,
    message: String,
    fatal: bool,
) -> std::io::Result<()> {
    let f = WireFailure {
        kind,
        message,
        fatal,
    };
    frame(
        out,
        b'E',
        &serde_json::to_vec(&f).map_err(std::io::Error::other)?,
    )
}

fn serve(input: &mut impl Read, out: &mut impl Write) -> std::io::Result<()> {
    let mut magic = [0u8; 16];
    input.read_exact(&mut magic)?;
    if &magic != MAGIC {
        return Err(std::io::Error::other(
            "not a worker request (this subcommand is for the engine's own use)",
        ));
    }
    let mut len = [0u8; 8];
    input.read_exact(&mut len)?;
    let len = u64::from_le_bytes(len);
    if len > MAX_HEADER {
        return Err(std::io::Error::other("request header too large"));
    }
    let mut header = vec![0u8; len as usize];
    input.read_exact(&mut header)?;
    let req: Request = serde_json::from_slice(&header).map_err(std::io::Error::other)?;
    if let Some(want) = &req.sha256 {
        let now = native::file_sha256(&req.plugin).map_err(std::io::Error::other)?;
        if &now != want {
            return send_failure(
                out,
                FailureKind::LoadError,
                format!(
                    "plugin `{}` changed during the run (its SHA-256 was {want} when the run \
                     started, it is {now} now); results must come from one build: rerun",
                    req.plugin.display()
                ),
                false,
            );
        }
    }
    let module = match native::open(&req.plugin) {
        Ok(m) => m,
        Err(LoadError::Fatal(msg)) => return send_failure(out, FailureKind::LoadError, msg, true),
        Err(LoadError::Unusable(e)) => return send_failure(out, e.kind, e.message, false),
    };
    if req.mode == Mode::Probe {
        let (name, sdk_version) = native::module_info(module);
        let info = Info { name, sdk_version };
        return frame(
            out,
            b'I',
            &serde_json::to_vec(&info).map_err(std::io::Error::other)?,
        );
    }
    let missing = || std::io::Error::other("an evaluation request without its splits");
    let (train_h, val_h, test_h) = (
        req.train.as_ref().ok_or_else(missing)?,
        req.val.as_ref().ok_or_else(missing)?,
        req.test.as_ref().ok_or_else(missing)?,
    );
    let m = req.candidates.len();
    let (train_text, val_text, test_text) = (
        read_text(input, &train_h.prompt_lens)?,
        read_text(input, &val_h.prompt_lens)?,
        read_text(input, &test_h.prompt_lens)?,
    );
    let (train_prompts, val_prompts, test_prompts) = (
        split_text(&train_text, &train_h.prompt_lens),
        split_text(&val_text, &val_h.prompt_lens),
        split_text(&test_text, &test_h.prompt_lens),
    );
    let train_emb = read_f32s(input, train_h.n, train_h.dim)?;
    let train_scores = read_f32s(input, train_h.n, m)?;
    let val_emb = read_f32s(input, val_h.n, val_h.dim)?;
    let val_scores = read_f32s(input, val_h.n, m)?;
    let test_emb = read_f32s(input, test_h.n, test_h.dim)?;
    let bad = |e: routereval_sdk::RouterError| std::io::Error::other(e.to_string());
    let train = Split::new(
        Queries::new(train_h.n, train_h.dim, &train_emb, &train_prompts[..]).map_err(bad)?,
        &train_scores,
        &req.candidates,
    )
    .map_err(bad)?;
    let val = Split::new(
        Queries::new(val_h.n, val_h.dim, &val_emb, &val_prompts[..]).map_err(bad)?,
        &val_scores,
        &req.candidates,
    )
    .map_err(bad)?;
    let test = Queries::new(test_h.n, test_h.dim, &test_emb, &test_prompts[..]).map_err(bad)?;
    let mut params = Params::new(req.seed);
    for (k, v) in req.params {
        let v = match v {
            Value::Bool(b) => ParamValue::Bool(b),
            Value::Int(i) => ParamValue::Int(i),
            Value::Float(x) => ParamValue::Float(x),
            Value::Str(s) => ParamValue::Str(s),
        };
        params = params.with(&k, v).map_err(bad)?;
    }
    let mut stage_err = None;
    let routed = native::evaluate_module(module, &params, &train, &val, &test, &mut |stage| {
        if let Err(e) = frame(out, b'S', stage.as_bytes()) {
            stage_err.get_or_insert(e);
        }
    });
    if let Some(e) = stage_err {
        return Err(e);
    }
    match routed {
        Err(e) => send_failure(out, e.kind, e.message, false),
        Ok(routing) => {
            let (n, m) = (routing.num_queries(), routing.num_candidates());
            let mut payload = Vec::with_capacity(17 + 4 * (n * m + n));
            payload.extend_from_slice(&(n as u64).to_le_bytes());
            payload.extend_from_slice(&(m as u64).to_le_bytes());
            payload.push(u8::from(routing.choices().is_some()));
            payload.extend_from_slice(f32_bytes(routing.belief()));
            if let Some(c) = routing.choices() {
                payload.extend_from_slice(bytemuck::cast_slice(c));
            }
            frame(out, b'R', &payload)
        }
    }
}
