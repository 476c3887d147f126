//! `--plugin 'exec:COMMAND'`: routers that are programs, such as RouterEval's own Python
//! scripts, run unmodified.
//!
//! For each evaluation the engine writes the pool as RouterEval's `test_router.py` does, an
//! uncompressed `.npz` with `train_embed`, `val_embed`, `test_embed` (the embeddings, float32 as
//! the datasets hold them), `train_score` (TruthfulQA: its binarised `train_label`, as
//! RouterEval passes it), `val_score` and `test_score` (float64), puts its path where the command
//! says `{npz}`, and runs the command through the shell (`sh -c`, as `subprocess.run(...,
//! shell=True)`), in the engine's working directory, with the run's `--timeout`.
//!
//! Two ways to report, chosen by the command:
//!
//! - **Self-reported** (RouterEval's contract): the command prints its own metrics, and the
//!   engine takes the last three numbers of its standard output as mu, V_B and Ep (RouterEval's
//!   pattern `[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?`, ASCII digits), with V_R = mu / acc_ref.
//!   The script sees the test scores and the engine cannot check what it prints: these rows are
//!   marked `self_reported` and are never a verified result.
//! - **Honest** (`{out}` in the command): the `.npz` has no `test_score`; the command writes its
//!   routing to the `.npy` file named by `{out}`, either an `N_test x m` float array (its belief
//!   over the candidates; the choice is the argmax, computed on the values as written) or
//!   `N_test` integers (its choices, with certainty). The engine validates it and computes every
//!   metric itself, as for any other router.
//!
//! `{seed}` is replaced by the run's seed. The command also finds `ROUTEREVAL_BENCHMARK`,
//! `ROUTEREVAL_M` and `ROUTEREVAL_GROUP` in its environment. A program is not sandboxed: it runs
//! with the user's rights (use WebAssembly plugins for untrusted code).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Result, bail};
use ndarray::{Array1, Array2, ArrayView2};
use ndarray_npy::{NpzWriter, ReadNpyExt};
use routereval_sdk::Routing;

use crate::data::{Matrix, Pool, RouterDataset};
use crate::eval::contestant::{Contestant, ContestantKind, Job};
use crate::eval::metrics::Metrics;
use crate::eval::outcome::{Answer, Attempt};
use crate::failure::{Failure, FailureKind};
use crate::plugin::child::{self, Keep};
use crate::plugin::policy::SandboxPolicy;

/// How an exec router reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reporting {
    /// It prints mu, V_B and Ep itself (RouterEval's contract); unverifiable.
    SelfReported,
    /// It writes its routing to `{out}`; the engine computes the metrics.
    Routing,
}

/// A router that is a command.
#[derive(Clone, Debug)]
pub struct ExecRouter {
    command: String,
    /// The row label: `NAME@exec`.
    label: String,
    reporting: Reporting,
    seed: u64,
    timeout: Duration,
    max_log: usize,
}

fn error(kind: FailureKind, message: String) -> Failure {
    Failure::new(kind, message)
}

impl ExecRouter {
    /// Parses `exec:COMMAND` or `exec[NAME]:COMMAND` (the text of `--plugin`); `NAME` labels
    /// the rows (default: the command's script, e.g. `knn.py`), followed by `@exec`.
    ///
    /// # Errors
    /// An empty command or name, or a command without `{npz}`.
    pub fn parse(spec: &str, seed: u64, policy: &SandboxPolicy) -> Result<ExecRouter> {
        let Some(rest) = spec.strip_prefix("exec") else {
            bail!("`{spec}` is not an exec: router");
        };
        let (name, command) = if let Some(rest) = rest.strip_prefix('[') {
            let Some((name, command)) = rest.split_once("]:") else {
                bail!("--plugin `{spec}`: write `exec[NAME]:COMMAND`");
            };
            (Some(name.trim().to_string()), command)
        } else if let Some(command) = rest.strip_prefix(':') {
            (None, command)
        } else {
            bail!("--plugin `{spec}`: write `exec:COMMAND` or `exec[NAME]:COMMAND`");
        };
        let command = command.trim().to_string();
        if command.is_empty() {
            bail!(
                "--plugin `{spec}`: no command; e.g. `exec:python router/PRKnn-knn/knn.py \
                 --knearest 5 --data {{npz}}`"
            );
        }
        let name = match name {
            Some(n) if n.is_empty() => bail!("--plugin `{spec}`: an empty NAME in exec[NAME]:"),
            Some(n) => n,
            None => default_name(&command),
        };
        if !command.contains("{npz}") {
            bail!(
                "--plugin `{spec}`: the command does not say where the data goes; put `{{npz}}` \
                 where it takes the .npz path (RouterEval's scripts: `--data {{npz}}`)"
            );
        }
        let reporting = if command.contains("{out}") {
            Reporting::Routing
        } else {
            Reporting::SelfReported
        };
        Ok(ExecRouter {
            command,
            label: format!("{name}@exec"),
            reporting,
            seed,
            timeout: Duration::from_secs_f64(policy.timeout_secs),
            max_log: policy.max_log_bytes(),
        })
    }

    /// How it reports.
    pub fn reporting(&self) -> Reporting {
        self.reporting
    }

    /// The command, as given.
    pub fn command(&self) -> &str {
        &self.command
    }

    /// Runs the command on one pool.
    pub fn evaluate(&self, ds: &RouterDataset, pool: &Pool) -> Attempt {
        let dir = scratch_dir();
        let outcome = self.evaluate_in(&dir, ds, pool);
        let _ = std::fs::remove_dir_all(&dir);
        outcome
    }

    fn evaluate_in(&self, dir: &Path, ds: &RouterDataset, pool: &Pool) -> Attempt {
        let fail = |kind: FailureKind, message: String| Attempt::of(Err(error(kind, message)));
        let npz = dir.join("data.npz");
        let out = dir.join("routing.npy");
        let with_test = self.reporting == Reporting::SelfReported;
        if let Err(e) = std::fs::create_dir_all(dir)
            .map_err(anyhow::Error::from)
            .and_then(|()| write_npz(&npz, ds, pool, with_test))
        {
            return fail(
                FailureKind::ExecFailed,
                format!("cannot write the data for the command: {e:#}"),
            );
        }
        let command = self
            .command
            .replace("{npz}", &shell_quote(&npz))
            .replace("{out}", &shell_quote(&out))
            .replace("{seed}", &self.seed.to_string());
        let run = match run_command(&command, self.timeout, self.max_log, ds, pool) {
            Ok(r) => r,
            Err(e) => {
                return fail(
                    FailureKind::ExecFailed,
                    format!("cannot start `sh -c {command}`: {e}"),
                );
            }
        };
        let log = run.log();
        let result = (|| {
            if run.timed_out {
                return Err(error(
                    FailureKind::Timeout,
                    format!(
                        "the command ran past the {:.0} s deadline (--timeout) and was \
                         killed",
                        self.timeout.as_secs_f64()
                    ),
                ));
            }
            match run.status {
                Some(st) if st.success() => {}
                Some(st) => {
                    let (kind, how) = match child::signal_of(&st) {
                        Some(sig) => (FailureKind::Crash, child::signal_name(sig).to_string()),
                        None => (FailureKind::ExecFailed, format!("it exited with {st}")),
                    };
                    return Err(error(
                        kind,
                        format!(
                            "`{}` failed: {how}{}",
                            self.command,
                            last_lines(&run.stderr, 6)
                        ),
                    ));
                }
                None => {
                    return Err(error(
                        FailureKind::ExecFailed,
                        "lost track of the command's process".to_string(),
                    ));
                }
            }
            match self.reporting {
                Reporting::SelfReported => {
                    let text = String::from_utf8_lossy(&run.stdout);
                    let numbers = numbers(&text);
                    let Some(last) = numbers.len().checked_sub(3).map(|i| &numbers[i..]) else {
                        return Err(error(
                            FailureKind::InvalidOutput,
                            format!(
                                "the command printed {} number(s); RouterEval's \
                                 contract is to print mu, V_B and Ep last{}{}",
                                numbers.len(),
                                last_lines(&run.stdout, 3),
                                // A script that failed inside a shell line that still exits 0
                                // (`python x.py; rm tmp`) says why on stderr.
                                last_lines(&run.stderr, 4).replacen(
                                    "its last output",
                                    "its last errors",
                                    1
                                )
                            ),
                        ));
                    };
                    let (mu, vb, ep) = (last[0], last[1], last[2]);
                    if ![mu, vb, ep].iter().all(|v| v.is_finite()) {
                        return Err(error(
                            FailureKind::InvalidOutput,
                            "the printed metrics are not finite".to_string(),
                        ));
                    }
                    Ok(Answer::Metrics {
                        per_query: None,
                        metrics: Metrics {
                            mu,
                            vr: ds.acc_ref.map(|r| mu / r),
                            vb: Some(vb),
                            ep,
                        },
                    })
                }
                Reporting::Routing => read_routing(&out, ds.test.len(), pool.m())
                    .map(Answer::Routing)
                    .map_err(|why| error(FailureKind::InvalidOutput, why.to_string())),
            }
        })();
        Attempt {
            answer: result,
            fuel: None,
            log,
        }
    }
}

impl Contestant for ExecRouter {
    fn label(&self) -> &str {
        &self.label
    }

    fn kind(&self) -> ContestantKind {
        ContestantKind::Exec
    }

    fn self_reported(&self) -> bool {
        self.reporting == Reporting::SelfReported
    }

    fn evaluate(&self, job: &Job<'_>) -> Attempt {
        ExecRouter::evaluate(self, job.dataset, job.pool)
    }

    fn provenance(&self) -> Option<serde_json::Value> {
        Some(serde_json::json!({
            "router": self.label,
            "command": self.command,
            "self_reported": self.self_reported(),
        }))
    }
}

/// The row name when none is given: the first argument that looks like a script (`.py`, `.R`,
/// `.jl`, ... or a path), else the program.
fn default_name(command: &str) -> String {
    let words: Vec<&str> = command.split_whitespace().collect();
    let base = |w: &str| {
        Path::new(w.trim_matches(['"', '\'']))
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or(w)
            .to_string()
    };
    words
        .iter()
        .skip(1)
        .find(|w| !w.starts_with('-') && !w.contains('{') && (w.contains('.') || w.contains('/')))
        .or(words.first())
        .map(|w| base(w))
        .unwrap_or_else(|| "command".into())
}

/// A path as one shell word.
fn shell_quote(p: &Path) -> String {
    let s = p.display().to_string();
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+,:=@".contains(c))
    {
        s
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

fn scratch_dir() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    std::env::temp_dir().join(format!(
        "routereval-exec-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

fn f64_array(m: &Matrix<f32>) -> Array2<f64> {
    Array2::from_shape_fn((m.rows(), m.cols()), |(i, j)| f64::from(m.row(i)[j]))
}

fn f32_view(m: &Matrix<f32>) -> Result<ArrayView2<'_, f32>> {
    Ok(ArrayView2::from_shape((m.rows(), m.cols()), m.as_slice())?)
}

/// The `.npz` of `test_router.py`: embeddings, then scores (TruthfulQA's training labels as
/// `train_score`).
fn write_npz(path: &Path, ds: &RouterDataset, pool: &Pool, with_test: bool) -> Result<()> {
    let file = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let mut npz = NpzWriter::new(file);
    npz.add_array("train_embed", &f32_view(&ds.train.embeddings)?)?;
    npz.add_array("val_embed", &f32_view(&ds.val.embeddings)?)?;
    npz.add_array("test_embed", &f32_view(&ds.test.embeddings)?)?;
    npz.add_array("train_score", &f64_array(ds.training_scores(pool)))?;
    npz.add_array("val_score", &f64_array(&pool.val_scores))?;
    if with_test {
        let t = &pool.test_scores;
        npz.add_array(
            "test_score",
            &ArrayView2::from_shape((t.rows(), t.cols()), t.as_slice())?,
        )?;
    }
    let mut file = npz.finish()?;
    std::io::Write::flush(&mut file)?;
    Ok(())
}

/// The routing a command wrote: `n x m` floats (belief; the choice is the argmax of the values
/// as written, first on ties) or `n` integers (choices).
fn read_routing(path: &Path, n: usize, m: usize) -> std::result::Result<Routing, String> {
    if !path.exists() {
        return Err(
            "the command succeeded but wrote nothing to {out}; it must save its N_test x m \
             belief (or N_test choices) there with numpy.save"
                .into(),
        );
    }
    let open = || std::fs::File::open(path).map_err(|e| format!("cannot open {{out}}: {e}"));
    let belief: Option<Array2<f64>> = Array2::<f64>::read_npy(open()?).ok().or_else(|| {
        Array2::<f32>::read_npy(open().ok()?)
            .ok()
            .map(|a| a.mapv(f64::from))
    });
    if let Some(b) = belief {
        if b.dim() != (n, m) {
            return Err(format!(
                "{{out}} holds a {} x {} array; expected {n} x {m} (test queries x candidates)",
                b.nrows(),
                b.ncols()
            ));
        }
        let choices: Vec<u32> = b
            .rows()
            .into_iter()
            .map(|row| {
                let mut best = 0;
                for (j, &v) in row.iter().enumerate() {
                    if v > row[best] {
                        best = j;
                    }
                }
                best as u32
            })
            .collect();
        let flat: Vec<f32> = b.iter().map(|&v| v as f32).collect();
        return Routing::from_belief(n, m, flat)
            .and_then(|r| r.with_choices(choices))
            .map_err(|e| e.to_string());
    }
    let choices: Option<Vec<i64>> = Array1::<i64>::read_npy(open()?)
        .ok()
        .map(|a| a.to_vec())
        .or_else(|| {
            Array1::<i32>::read_npy(open().ok()?)
                .ok()
                .map(|a| a.iter().map(|&c| i64::from(c)).collect())
        });
    let Some(choices) = choices else {
        return Err(
            "{out} is not a float64 / float32 2-D array or an int64 / int32 1-D array in .npy \
             format (write it with numpy.save)"
                .into(),
        );
    };
    if choices.len() != n {
        return Err(format!(
            "{{out}} holds {} choices; expected one per test query ({n})",
            choices.len()
        ));
    }
    let choices: Vec<u32> = choices
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            u32::try_from(c)
                .ok()
                .filter(|&c| (c as usize) < m)
                .ok_or_else(|| format!("{{out}}: choice {c} for test query {i} is not in 0..{m}"))
        })
        .collect::<std::result::Result<_, _>>()?;
    Routing::one_hot(m, choices).map_err(|e| e.to_string())
}

/// What RouterEval's `re.findall(r'[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?', stdout)` finds,
/// as numbers. Written out rather than pulling in a regex engine for one fixed pattern.
pub fn numbers(text: &str) -> Vec<f64> {
    let b = text.as_bytes();
    let digits = |mut i: usize| {
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        i
    };
    // The end of a match of the unsigned part starting at `i`, if any.
    let unsigned = |i: usize| -> Option<usize> {
        let mut j = if i < b.len() && b[i].is_ascii_digit() {
            let mut j = digits(i);
            if j < b.len() && b[j] == b'.' {
                j = digits(j + 1);
            }
            j
        } else if i + 1 < b.len() && b[i] == b'.' && b[i + 1].is_ascii_digit() {
            digits(i + 1)
        } else {
            return None;
        };
        if j < b.len() && (b[j] == b'e' || b[j] == b'E') {
            let mut k = j + 1;
            if k < b.len() && (b[k] == b'+' || b[k] == b'-') {
                k += 1;
            }
            if k < b.len() && b[k].is_ascii_digit() {
                j = digits(k);
            }
        }
        Some(j)
    };
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let signed = (b[i] == b'+' || b[i] == b'-')
            .then(|| unsigned(i + 1))
            .flatten();
        match signed.or_else(|| unsigned(i)) {
            Some(end) => {
                // The match is ASCII, so slicing the str is safe.
                if let Ok(v) = text[i..end].parse::<f64>() {
                    out.push(v);
                }
                i = end;
            }
            None => i += 1,
        }
    }
    out
}

struct Run {
    status: Option<ExitStatus>,
    timed_out: bool,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    dropped: usize,
}

impl Run {
    fn log(&self) -> String {
        let mut log = String::new();
        if self.dropped > 0 {
            log.push_str(&format!("[{} earlier bytes dropped]\n", self.dropped));
        }
        log.push_str(&String::from_utf8_lossy(&self.stdout));
        if !self.stderr.is_empty() {
            if !log.is_empty() && !log.ends_with('\n') {
                log.push('\n');
            }
            log.push_str(&String::from_utf8_lossy(&self.stderr));
        }
        log
    }
}

/// The last `n` non-empty lines of `bytes`, as `: ...` for a message.
fn last_lines(bytes: &[u8], n: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        return String::new();
    }
    let tail = &lines[lines.len().saturating_sub(n)..];
    format!("; its last output:\n    {}", tail.join("\n    "))
}

fn run_command(
    command: &str,
    timeout: Duration,
    max_log: usize,
    ds: &RouterDataset,
    pool: &Pool,
) -> std::io::Result<Run> {
    let mut cmd = if cfg!(windows) {
        let mut c = Command::new("cmd");
        c.arg("/C").arg(command);
        c
    } else {
        let mut c = Command::new("sh");
        c.arg("-c").arg(command);
        c
    };
    cmd.env("ROUTEREVAL_BENCHMARK", &ds.benchmark)
        .env("ROUTEREVAL_M", pool.m().to_string())
        .env("ROUTEREVAL_GROUP", &pool.group);
    // The numbers are at the end of stdout: keep its tail (at least 1 MiB of it).
    let done = child::run(
        cmd,
        None,
        timeout,
        Keep::Tail(max_log.max(1 << 20)),
        Keep::Tail(max_log),
    )?;
    Ok(Run {
        status: done.status,
        timed_out: done.timed_out,
        stdout: done.stdout,
        stderr: done.stderr,
        dropped: done.stdout_dropped + done.stderr_dropped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_follow_routereval_pattern() {
        assert_eq!(numbers("0.71 0.98 1.2e-3"), vec![0.71, 0.98, 1.2e-3]);
        // Signs, a bare dot, a trailing dot, an exponent without digits (not part of the match).
        assert_eq!(
            numbers("a-1.5b+.25 7. 3e x-y 2E+2"),
            vec![-1.5, 0.25, 7.0, 3.0, 200.0]
        );
        // A numpy scalar repr and words with digits.
        assert_eq!(
            numbers("np.float64(0.5) gpt4 1,5"),
            vec![64.0, 0.5, 4.0, 1.0, 5.0]
        );
        assert!(numbers("nan inf").is_empty());
    }

    #[test]
    fn names_and_specs() {
        let p = SandboxPolicy::default();
        let r = ExecRouter::parse(
            "exec:python router/PRKnn-knn/knn.py --seed 0 --knearest 5 --data {npz}",
            0,
            &p,
        )
        .unwrap();
        assert_eq!(r.label(), "knn.py@exec");
        assert_eq!(r.reporting(), Reporting::SelfReported);
        let r = ExecRouter::parse("exec[mine]:./route --data {npz} --out {out}", 0, &p).unwrap();
        assert_eq!(r.label(), "mine@exec");
        assert_eq!(r.reporting(), Reporting::Routing);
        assert_eq!(
            ExecRouter::parse("exec:./route --data {npz}", 0, &p)
                .unwrap()
                .label(),
            "route@exec"
        );
        let e = ExecRouter::parse("exec:python knn.py", 0, &p).unwrap_err();
        assert!(e.to_string().contains("{npz}"), "{e}");
        assert!(ExecRouter::parse("exec:", 0, &p).is_err());
        assert_eq!(
            shell_quote(Path::new("/tmp/a b/it's")),
            r"'/tmp/a b/it'\''s'"
        );
    }
}
