//! The results file (`--results FILE.jsonl`): what a run appends as each evaluation finishes, so
//! that a killed run loses nothing it finished, `--resume` carries on, and `merge` joins shards.
//!
//! Line 1 is the header: `{"routereval_results": 1, "plan": {...}, "plan_id": "<sha256>",
//! "tasks": ["<id>", ...], "shard": {"index", "count"} | null, "manifest": {...}}`. The plan is
//! everything that decides the numbers (datasets by sha256, contestants with their plugins'
//! sha256, seed, selection, sandbox policy, the number of evaluations); `plan_id` is the sha256
//! of its canonical JSON; `tasks` lists every evaluation's identity in plan order, so a record
//! can be checked against its place without the datasets; the manifest (which also holds the
//! statistics settings) says what produced the file. Every other line is one evaluation: `{"task", "id", "estimate",
//! "row", "query_scores"}`, where `task` indexes the plan's evaluations, `id` is the
//! evaluation's identity (a digest of its dataset, pool, contestant, seed and policy),
//! `estimate` its estimated cost (what shards are balanced by), `row` is the JSON row
//! without statistics, and `query_scores` are the per-query scores behind `mu` (hex bits when
//! they are all 0 or 1, else numbers) from which every interval and comparison is recomputed.
//!
//! Each line is written whole, flushed and fsynced before the next evaluation is recorded. A
//! last line without its newline is what a kill leaves: reading ignores it (and `--resume`
//! cuts it off and redoes that evaluation).

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use serde_json::{Value as Json, json};

use crate::data::Difficulty;
use crate::eval::metrics::Metrics;
use crate::eval::outcome::{ContestantKind, EvalResult};
use crate::failure::Failure;

/// The format's version, the header's `routereval_results`.
pub const FORMAT_VERSION: u64 = 1;

/// Which part of a plan a file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Shard {
    /// 0-based index.
    pub index: usize,
    /// How many shards.
    pub count: usize,
}

impl Shard {
    /// Parses `i/n` (0-based `i < n`).
    ///
    /// # Errors
    /// Not `i/n`, `n` = 0 or `i >= n`.
    pub fn parse(text: &str) -> Result<Shard, String> {
        let (i, n) = text
            .split_once('/')
            .ok_or_else(|| format!("--shard `{text}`: expected I/N, e.g. 0/8 (I from 0 to N-1)"))?;
        let parse = |s: &str| {
            s.trim()
                .parse::<usize>()
                .map_err(|_| format!("--shard `{text}`: `{s}` is not a whole number"))
        };
        let (index, count) = (parse(i)?, parse(n)?);
        if count == 0 || index >= count {
            return Err(format!(
                "--shard `{text}`: I must be from 0 to N-1 (shards are numbered from 0, as \
                 Kubernetes' JOB_COMPLETION_INDEX and `sbatch --array=0-{}` number them)",
                count.max(1) - 1
            ));
        }
        Ok(Shard { index, count })
    }
}

/// The header of a results file.
#[derive(Clone, Debug, PartialEq)]
pub struct Header {
    /// What decides the numbers.
    pub plan: Json,
    /// sha256 of the plan's canonical JSON.
    pub plan_id: String,
    /// Each evaluation's identity, in plan order (empty in a file written before they were
    /// recorded: its records are then checked only against each other).
    pub task_ids: Vec<String>,
    /// The part of the plan the file holds, `None` for all of it.
    pub shard: Option<Shard>,
    /// What produced the file.
    pub manifest: Json,
}

impl Header {
    /// A header for `plan` (its id computed) and its evaluations' identities, with `manifest`.
    pub fn new(plan: Json, task_ids: Vec<String>, shard: Option<Shard>, manifest: Json) -> Header {
        Header {
            plan_id: plan_id(&plan),
            plan,
            task_ids,
            shard,
            manifest,
        }
    }

    /// The number of evaluations in the plan.
    pub fn tasks(&self) -> usize {
        self.plan
            .get("evaluations")
            .and_then(Json::as_u64)
            .unwrap_or(0) as usize
    }

    /// Whether `r` belongs to this plan where it says it does.
    fn check(&self, r: &Record) -> Result<(), String> {
        let n = self.tasks();
        if r.task >= n {
            return Err(format!(
                "evaluation {} of a plan of {n} (the file was edited?)",
                r.task
            ));
        }
        match self.task_ids.get(r.task) {
            Some(id) if *id != r.id => Err(format!(
                "evaluation {} has the identity {}, the plan's is {id} (the file was edited?)",
                r.task, r.id
            )),
            _ => Ok(()),
        }
    }

    fn to_json(&self) -> Json {
        json!({
            "routereval_results": FORMAT_VERSION,
            "plan_id": self.plan_id,
            "plan": self.plan,
            "tasks": self.task_ids,
            "shard": self.shard,
            "manifest": self.manifest,
        })
    }

    fn from_json(v: &Json, path: &Path) -> Result<Header> {
        let version = v.get("routereval_results").and_then(Json::as_u64);
        match version {
            Some(FORMAT_VERSION) => {}
            Some(other) => bail!(
                "`{}` is a results file of format {other}; this engine reads format \
                 {FORMAT_VERSION}",
                path.display()
            ),
            None => bail!(
                "`{}` is not a results file (its first line has no `routereval_results`); \
                 results files are written by `run --results FILE.jsonl`",
                path.display()
            ),
        }
        let plan = v.get("plan").cloned().unwrap_or(Json::Null);
        let plan_id = v
            .get("plan_id")
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_string();
        if plan_id != self::plan_id(&plan) {
            bail!(
                "`{}`: the header's plan_id does not match its plan (the file was edited?)",
                path.display()
            );
        }
        let shard = match v.get("shard") {
            None | Some(Json::Null) => None,
            Some(s) => Some(
                serde_json::from_value(s.clone())
                    .with_context(|| format!("`{}`: header field `shard`", path.display()))?,
            ),
        };
        let evaluations = plan.get("evaluations").and_then(Json::as_u64);
        let task_ids: Vec<String> = match v.get("tasks") {
            None => Vec::new(),
            Some(t) => serde_json::from_value(t.clone()).with_context(|| {
                format!(
                    "`{}`: header field `tasks` is not a list of ids",
                    path.display()
                )
            })?,
        };
        if !task_ids.is_empty() && Some(task_ids.len() as u64) != evaluations {
            bail!(
                "`{}`: the header lists {} evaluations' ids for a plan of {} (the file was edited?)",
                path.display(),
                task_ids.len(),
                evaluations.unwrap_or(0)
            );
        }
        let manifest = match v.get("manifest") {
            Some(m @ Json::Object(_)) => m.clone(),
            _ => bail!(
                "`{}`: the header has no manifest (the file was edited?); without it the \
                 results cannot be reported or rerun",
                path.display()
            ),
        };
        Ok(Header {
            plan,
            plan_id,
            task_ids,
            shard,
            manifest,
        })
    }
}

/// sha256 of the plan's canonical JSON (keys sorted: serde_json's maps are ordered).
pub fn plan_id(plan: &Json) -> String {
    crate::util::sha256_hex(plan.to_string().as_bytes())
}

/// What differs between two plans, one line per difference, for a refusal message.
pub fn plan_differences(file: &Json, run: &Json) -> Vec<String> {
    let (Some(a), Some(b)) = (file.as_object(), run.as_object()) else {
        return vec!["the plans are not comparable".into()];
    };
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    let show = |v: Option<&Json>| {
        let s = v.map_or_else(|| "nothing".to_string(), Json::to_string);
        crate::util::clip(&s, 200).to_string()
    };
    let mut out = Vec::new();
    for k in keys {
        let (x, y) = (a.get(k), b.get(k));
        if x == y {
            continue;
        }
        match (x.and_then(Json::as_array), y.and_then(Json::as_array)) {
            (Some(xs), Some(ys)) => {
                let only = |p: &[Json], q: &[Json]| -> Vec<String> {
                    p.iter()
                        .filter(|v| !q.contains(v))
                        .map(|v| crate::util::clip(&v.to_string(), 200).to_string())
                        .collect()
                };
                let (gone, new) = (only(xs, ys), only(ys, xs));
                let mut line = format!("{k}:");
                if !gone.is_empty() {
                    line.push_str(&format!(" the file has {}", gone.join(", ")));
                }
                if !new.is_empty() {
                    if !gone.is_empty() {
                        line.push(';');
                    }
                    line.push_str(&format!(" this run has {}", new.join(", ")));
                }
                if gone.is_empty() && new.is_empty() {
                    line.push_str(" the same entries in another order");
                }
                out.push(line);
            }
            _ => out.push(format!(
                "{k}: the file has {}, this run has {}",
                show(x),
                show(y)
            )),
        }
    }
    out
}

/// One recorded evaluation.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// Index into the plan's evaluations.
    pub task: usize,
    /// The evaluation's identity.
    pub id: String,
    /// The row.
    pub result: EvalResult,
}

fn encode_scores(q: &[f64]) -> Json {
    if q.iter().all(|&v| v == 0.0 || v == 1.0) {
        let mut bytes = vec![0u8; q.len().div_ceil(8)];
        for (i, &v) in q.iter().enumerate() {
            if v == 1.0 {
                bytes[i / 8] |= 1 << (i % 8);
            }
        }
        json!({ "n": q.len(), "bits": crate::util::hex(&bytes) })
    } else {
        json!({ "n": q.len(), "values": q })
    }
}

fn decode_scores(v: &Json) -> Result<Option<Arc<[f64]>>, String> {
    if v.is_null() {
        return Ok(None);
    }
    let n = v
        .get("n")
        .and_then(Json::as_u64)
        .ok_or("`query_scores` has no `n`")? as usize;
    if let Some(bits) = v.get("bits").and_then(Json::as_str) {
        if bits.len() != 2 * n.div_ceil(8) {
            return Err(format!(
                "`query_scores.bits` has {} hex digits for n = {n}",
                bits.len()
            ));
        }
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let byte = u8::from_str_radix(&bits[2 * (i / 8)..2 * (i / 8) + 2], 16)
                .map_err(|_| "`query_scores.bits` is not hex".to_string())?;
            out.push(f64::from((byte >> (i % 8)) & 1));
        }
        return Ok(Some(out.into()));
    }
    let values: Vec<f64> =
        serde_json::from_value(v.get("values").cloned().unwrap_or(Json::Null))
            .map_err(|_| "`query_scores` has neither `bits` nor numeric `values`".to_string())?;
    if values.len() != n {
        return Err(format!(
            "`query_scores` has {} values for n = {n}",
            values.len()
        ));
    }
    Ok(Some(values.into()))
}

/// The line of one evaluation (without the newline); `estimate` is the plan's cost estimate of
/// it (what shards are balanced by; `scripts/shard-balance` weighs it against `seconds`).
pub fn record_line(task: usize, id: &str, estimate: f64, r: &EvalResult) -> String {
    json!({
        "task": task,
        "id": id,
        "estimate": estimate,
        "row": crate::report::base_row_json(r),
        "query_scores": r.query_scores.as_deref().map_or(Json::Null, encode_scores),
    })
    .to_string()
}

fn parse_record(v: &Json) -> Result<Record, String> {
    let task = v.get("task").and_then(Json::as_u64).ok_or("no `task`")? as usize;
    let id = v
        .get("id")
        .and_then(Json::as_str)
        .ok_or("no `id`")?
        .to_string();
    let row = v.get("row").ok_or("no `row`")?;
    let field = |k: &str| row.get(k).cloned().unwrap_or(Json::Null);
    let text = |k: &str| -> Result<String, String> {
        field(k)
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("`row.{k}` is not text"))
    };
    let num = |k: &str| field(k).as_f64();
    let kind: ContestantKind =
        serde_json::from_value(field("kind")).map_err(|e| format!("`row.kind`: {e}"))?;
    let difficulty: Difficulty = serde_json::from_value(field("difficulty"))
        .map_err(|e| format!("`row.difficulty`: {e}"))?;
    let outcome = match field("error") {
        Json::Null => Ok(Metrics {
            mu: num("mu").ok_or("`row.mu` is missing on an ok row")?,
            vr: num("vr"),
            vb: num("vb"),
            ep: num("ep").ok_or("`row.ep` is missing on an ok row")?,
        }),
        e => Err(serde_json::from_value::<Failure>(e).map_err(|e| format!("`row.error`: {e}"))?),
    };
    Ok(Record {
        task,
        id,
        result: EvalResult {
            router: text("router")?,
            kind,
            self_reported: field("self_reported").as_bool().unwrap_or(false),
            benchmark: text("benchmark")?,
            difficulty,
            m: field("m").as_u64().ok_or("`row.m` is not a count")? as usize,
            group: text("group")?,
            outcome,
            query_scores: decode_scores(&v["query_scores"])?,
            seconds: num("seconds").unwrap_or(0.0),
            fuel: field("fuel").as_u64(),
            log: field("log").as_str().map(str::to_string),
        },
    })
}

/// Whether two records of one evaluation agree in everything but their timing.
pub fn same_numbers(a: &Record, b: &Record) -> bool {
    let untimed = |r: &EvalResult| EvalResult {
        seconds: 0.0,
        ..r.clone()
    };
    a.id == b.id && untimed(&a.result) == untimed(&b.result)
}

/// A results file as read: its header, its records, and where its complete lines end.
#[derive(Debug)]
pub struct Contents {
    /// The header.
    pub header: Header,
    /// The evaluations, in file order.
    pub records: Vec<Record>,
    /// Bytes up to the end of the last complete line.
    pub complete_len: u64,
    /// Whether a torn last line (a kill mid-write) was ignored.
    pub torn: bool,
}

/// Reads a results file. A last line without its newline is ignored (a kill mid-write); any
/// other unreadable line is an error that names it.
///
/// # Errors
/// The file cannot be read, has no header, or has a bad line.
pub fn read(path: &Path) -> Result<Contents> {
    let file = File::open(path)
        .with_context(|| format!("cannot open results file `{}`", path.display()))?;
    let mut reader = BufReader::new(file);
    let mut line = Vec::new();
    let mut offset = 0u64;
    let mut header = None;
    let mut records = Vec::new();
    let mut torn = false;
    let mut number = 0usize;
    let mut seen: std::collections::HashMap<usize, (usize, usize)> = Default::default();
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .with_context(|| format!("cannot read `{}`", path.display()))?;
        if n == 0 {
            break;
        }
        number += 1;
        if line.last() != Some(&b'\n') {
            torn = true;
            break;
        }
        let v: Json = serde_json::from_slice(&line)
            .map_err(|e| anyhow::anyhow!("`{}` line {number} is not JSON: {e}", path.display()))?;
        match &header {
            None => header = Some(Header::from_json(&v, path)?),
            Some(h) => {
                let r = parse_record(&v)
                    .and_then(|r| h.check(&r).map(|()| r))
                    .map_err(|e| anyhow::anyhow!("`{}` line {number}: {e}", path.display()))?;
                match seen.get(&r.task) {
                    // Recorded twice alike (a resumed run's redone line): one evaluation.
                    Some(&(_, k)) if same_numbers(&records[k], &r) => {}
                    Some(&(line, _)) => bail!(
                        "`{}` line {number} records evaluation {} ({} on {} m={} {}) again, \
                         with different results than line {line}; keep one of them",
                        path.display(),
                        r.task,
                        r.result.router,
                        r.result.benchmark,
                        r.result.m,
                        r.result.group
                    ),
                    None => {
                        seen.insert(r.task, (number, records.len()));
                        records.push(r);
                    }
                }
            }
        }
        offset += n as u64;
    }
    let Some(header) = header else {
        bail!(
            "`{}` is empty or has no complete header line; remove it to start over",
            path.display()
        );
    };
    Ok(Contents {
        header,
        records,
        complete_len: offset,
        torn,
    })
}

/// An open results file that evaluations are appended to.
#[derive(Debug)]
pub struct Writer {
    file: File,
    path: PathBuf,
}

impl Writer {
    /// Creates `path` with `header` (refusing to overwrite an existing file).
    ///
    /// # Errors
    /// The file exists or cannot be written.
    pub fn create(path: &Path, header: &Header) -> Result<Writer> {
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    anyhow::anyhow!(
                        "results file `{}` exists: add --resume to carry on with it, or remove \
                         it to start over",
                        path.display()
                    )
                } else {
                    anyhow::anyhow!("cannot create results file `{}`: {e}", path.display())
                }
            })?;
        let mut w = Writer {
            file,
            path: path.to_path_buf(),
        };
        w.append_line(&header.to_json().to_string())?;
        Ok(w)
    }

    /// Opens `path` to append after its first `complete_len` bytes (a torn last line cut off).
    ///
    /// # Errors
    /// The file cannot be opened or cut.
    pub fn reopen(path: &Path, complete_len: u64) -> Result<Writer> {
        let mut file = OpenOptions::new()
            .write(true)
            .open(path)
            .with_context(|| format!("cannot open results file `{}`", path.display()))?;
        file.set_len(complete_len)
            .with_context(|| format!("cannot cut the torn last line of `{}`", path.display()))?;
        file.seek(SeekFrom::End(0))?;
        Ok(Writer {
            file,
            path: path.to_path_buf(),
        })
    }

    /// Appends one evaluation, flushed and fsynced.
    ///
    /// # Errors
    /// The write or the sync failed.
    pub fn append(&mut self, task: usize, id: &str, estimate: f64, r: &EvalResult) -> Result<()> {
        self.append_line(&record_line(task, id, estimate, r))
    }

    fn append_line(&mut self, line: &str) -> Result<()> {
        let mut bytes = Vec::with_capacity(line.len() + 1);
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        self.file
            .write_all(&bytes)
            .and_then(|()| self.file.sync_data())
            .with_context(|| format!("cannot append to results file `{}`", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_round_trip_as_bits_and_as_values() {
        for q in [
            vec![1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0],
            vec![],
            vec![0.5, 1.0, 0.0, 1.0 / 3.0],
        ] {
            let back = decode_scores(&encode_scores(&q)).unwrap().unwrap();
            assert_eq!(&*back, q.as_slice());
        }
        assert!(decode_scores(&json!({"n": 9, "bits": "ff"})).is_err());
    }

    #[test]
    fn shards_parse_from_zero() {
        assert_eq!(Shard::parse("0/8"), Ok(Shard { index: 0, count: 8 }));
        assert!(Shard::parse("8/8").unwrap_err().contains("0 to N-1"));
        assert!(Shard::parse("1/0").is_err());
        assert!(Shard::parse("3").is_err());
    }
}
