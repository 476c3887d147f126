//! Reports people read and runs that survive: the formats (golden markdown and CSV of a fixed
//! result set, pandas reading the CSV), the statistics as the CLI reports them, the plots, the
//! results file with SIGKILL and --resume, shards merged into one run, and `rerun`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{TempDir, pythons_with, results_without_times, root, run, run_binary, skip};

/// The fixed result set: a results file of the default run on the embedded data, recorded by
/// the engine (`run --results`), with its golden renderings beside it.
fn fixture(name: &str) -> PathBuf {
    root().join("tests/fixtures/reports").join(name)
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// The golden files hold what `merge` renders of the fixed result set: a change of format or of
/// a number shows here. Re-record with `ROUTEREVAL_BLESS=1` and say why in the commit.
#[test]
fn markdown_and_csv_of_a_fixed_result_set_match_the_golden_files() {
    let results = fixture("embedded-default.results.jsonl");
    for (format, golden) in [
        ("markdown", "embedded-default.md"),
        ("csv", "embedded-default.csv"),
    ] {
        let out = run(&["merge", s(&results), "--format", format]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        let path = fixture(golden);
        if std::env::var("ROUTEREVAL_BLESS").is_ok_and(|v| v == "1") {
            std::fs::write(&path, &out.stdout).expect("write golden");
        }
        let want = std::fs::read_to_string(&path).expect("golden file");
        assert!(
            out.stdout == want,
            "{format} differs from {}:\n{}",
            path.display(),
            out.stdout
        );
    }
    // The golden numbers are the engine's own: the fixture's mu are the pinned quick-config mu
    // of the same rows (computed before reports existed), and each interval holds its mu.
    let pinned: Vec<Value> = serde_json::from_str(
        &std::fs::read_to_string(root().join("tests/fixtures/pinned/quick-embedded.json")).unwrap(),
    )
    .unwrap();
    let out = run(&["merge", s(&results), "--format", "json"]);
    let rows = out.json()["results"].as_array().unwrap().clone();
    let mut matched = 0;
    for r in &rows {
        let mu = r["mu"].as_f64().unwrap();
        let (lo, hi) = (
            r["ci_low"].as_f64().unwrap(),
            r["ci_high"].as_f64().unwrap(),
        );
        assert!(lo < mu && mu < hi, "{r}");
        if let Some(p) = pinned.iter().find(|p| {
            ["router", "benchmark", "difficulty", "m", "group"]
                .iter()
                .all(|k| p[k] == r[k])
        }) {
            assert_eq!(p["mu"], r["mu"], "{r}");
            matched += 1;
        }
    }
    assert!(matched >= 30, "only {matched} rows matched the pinned ones");
}

#[test]
fn the_paired_comparison_of_a_router_with_itself_says_no_difference() {
    let out = run(&[
        "--format",
        "json",
        "--router",
        "knn",
        "--router",
        "best-on-train",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let doc = out.json();
    for r in doc["results"].as_array().unwrap() {
        if r["router"] == "best-on-train" {
            let c = &r["vs_best_on_train"];
            assert_eq!(c["against"], "best-on-train");
            assert_eq!(
                (&c["diff"], &c["ci_low"], &c["ci_high"], &c["p_value"]),
                (
                    &Value::from(0.0),
                    &Value::from(0.0),
                    &Value::from(0.0),
                    &Value::from(1.0)
                ),
                "{r}"
            );
            assert_eq!(c["test"], "mcnemar_exact");
        }
        // The best router of each pool is compared with itself the same way.
        if r["vs_best"]["against"] == r["router"] {
            assert_eq!(r["vs_best"]["p_value"], 1.0);
            assert_eq!(r["vs_best"]["diff"], 0.0);
        } else {
            let d = r["vs_best"]["diff"].as_f64().unwrap();
            assert!(d <= 0.0, "the best router has the highest mu: {r}");
        }
    }
}

#[test]
fn pandas_reads_the_csv_with_the_right_dtypes() {
    let pys = pythons_with(&["pandas"]);
    let Some((py, _)) = pys.first() else {
        return skip(
            "pandas_reads_the_csv_with_the_right_dtypes",
            "no Python with pandas",
        );
    };
    let dir = TempDir::new("csv");
    let csv = dir.path().join("r.csv");
    let out = run(&["--format", "csv", "-o", s(&csv)]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let json = run(&["--format", "json"]).json();
    let script = r#"
import json, sys, pandas
df = pandas.read_csv(sys.argv[1])
print(json.dumps({"dtypes": {c: str(t) for c, t in df.dtypes.items()},
                  "rows": len(df), "mu": df["mu"].tolist(), "ci_low": df["ci_low"].tolist()}))
"#;
    let o = std::process::Command::new(py)
        .args(["-c", script, s(&csv)])
        .output()
        .expect("python");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let got: Value = serde_json::from_slice(&o.stdout).unwrap();
    let dt = &got["dtypes"];
    for col in [
        "router",
        "kind",
        "benchmark",
        "difficulty",
        "group",
        "status",
    ] {
        // pandas 3 names its string dtype `str`; before, text was `object`.
        assert!(
            dt[col] == "object" || dt[col] == "str",
            "column {col}: {dt}"
        );
    }
    for (col, want) in [
        ("m", "int64"),
        ("self_reported", "bool"),
        ("mu", "float64"),
        ("ci_low", "float64"),
        ("ci_high", "float64"),
        ("vb", "float64"),
        ("ep", "float64"),
        ("seconds", "float64"),
        ("vs_best_on_train_p_value", "float64"),
        ("replicates", "int64"),
    ] {
        assert_eq!(dt[col], want, "column {col}: {dt}");
    }
    let rows = json["results"].as_array().unwrap();
    assert_eq!(got["rows"], rows.len());
    for (i, r) in rows.iter().enumerate() {
        // Every float goes through CSV and pandas to the same bits.
        assert_eq!(got["mu"][i], r["mu"], "row {i}");
        assert_eq!(got["ci_low"][i], r["ci_low"], "row {i}");
    }
}

#[test]
fn jsonl_rows_are_the_json_documents_rows() {
    let doc = run(&["--format", "json", "--router", "knn", "--router", "oracle"]).json();
    let out = run(&["--format", "jsonl", "--router", "knn", "--router", "oracle"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let lines: Vec<Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let strip = |mut v: Value| {
        v.as_object_mut().unwrap().remove("seconds");
        v
    };
    let a: Vec<Value> = lines.into_iter().map(strip).collect();
    assert_eq!(a, results_without_times(&doc));
}

/// Every SVG parses as XML and names every router of the run; the scaling plot draws the bounds.
#[test]
fn the_plots_of_the_default_run_parse_and_name_every_router() {
    let dir = TempDir::new("plots");
    let out = run(&["--plots", s(dir.path()), "--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let routers: Vec<String> = out.json()["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["router"].as_str().unwrap().to_string())
        .collect();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["mu_vs_m_llmrouter.svg", "vb_heatmap.svg"]);
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let doc = roxmltree::Document::parse(&text)
            .unwrap_or_else(|e| panic!("{} is not XML: {e}", f.display()));
        let texts: Vec<&str> = doc
            .descendants()
            .filter(|n| n.is_text())
            .filter_map(|n| n.text())
            .collect();
        for r in &routers {
            assert!(
                texts.iter().any(|t| t.contains(r.as_str())),
                "{} does not name {r}",
                f.display()
            );
        }
        assert!(texts.iter().any(|t| t.contains("(bound)")));
    }
}

/// The routers of the kill test: slow enough (logreg, a third of a second a pool) that a kill
/// lands mid-run.
const SLOW_RUN: [&str; 8] = [
    "--router",
    "knn",
    "--router",
    "logreg",
    "--router",
    "oracle",
    "--threads",
    "1",
];

fn records(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|t| t.matches('\n').count().saturating_sub(1))
        .unwrap_or(0)
}

/// Killing the engine with SIGKILL mid-run and resuming gives exactly the results of an
/// uninterrupted run; a torn last line is redone.
#[cfg(unix)]
#[test]
fn a_run_killed_with_sigkill_and_resumed_gives_the_uninterrupted_results() {
    let dir = TempDir::new("resume");
    let file = dir.path().join("r.jsonl");
    let mut args: Vec<&str> = SLOW_RUN.to_vec();
    args.extend(["--results", s(&file), "--format", "json"]);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_engine"))
        .args(&args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start the engine");
    let started = Instant::now();
    while records(&file) < 3 && started.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    let done = records(&file);
    let total = 3 * 7;
    assert!(
        (3..total).contains(&done),
        "the kill landed after {done} of {total} evaluations"
    );
    // A kill mid-write leaves a line without its newline: add one as a kill would.
    {
        use std::io::Write as _;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&file)
            .unwrap();
        f.write_all(br#"{"task": 3, "id": "abc", "row": {"router": "kn"#)
            .unwrap();
    }
    let mut resume = args.clone();
    resume.push("--resume");
    resume.push("--progress");
    let resumed = run(&resume);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    assert!(
        resumed
            .stderr
            .contains(&format!("{done} of {total} evaluations done"))
            && resumed.stderr.contains("torn last line"),
        "{}",
        resumed.stderr
    );
    let once = run(&SLOW_RUN
        .iter()
        .copied()
        .chain(["--format", "json"])
        .collect::<Vec<_>>());
    assert_eq!(once.code, 0, "{}", once.stderr);
    assert_eq!(
        results_without_times(&resumed.json()),
        results_without_times(&once.json())
    );
    // The file now holds every evaluation once, and reports as the run did.
    assert_eq!(records(&file), total);
    let merged = run(&["merge", s(&file), "--format", "json"]);
    assert_eq!(
        results_without_times(&merged.json()),
        results_without_times(&once.json())
    );
    // A second resume has nothing left to do.
    let again = run(&resume);
    assert!(
        again.stderr.contains(&format!("{total} of {total}")),
        "{}",
        again.stderr
    );
}

#[test]
fn resume_refuses_a_results_file_of_another_plan_and_says_what_differs() {
    let dir = TempDir::new("plan");
    let file = dir.path().join("r.jsonl");
    let out = run(&["--router", "knn", "--results", s(&file), "-q"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let other = run(&[
        "--router",
        "knn",
        "--seed",
        "7",
        "--results",
        s(&file),
        "--resume",
    ]);
    assert_eq!(other.code, 2);
    assert!(
        other.stderr.contains("different plan")
            && other
                .stderr
                .contains("seed: the file has 0, this run has 7"),
        "{}",
        other.stderr
    );
    let more = run(&[
        "--router",
        "knn",
        "--router",
        "cluster",
        "--results",
        s(&file),
        "--resume",
    ]);
    assert!(
        more.stderr.contains("contestants:") && more.stderr.contains("cluster"),
        "{}",
        more.stderr
    );
    // Without --resume an existing file is never overwritten.
    let fresh = run(&["--router", "knn", "--results", s(&file)]);
    assert!(fresh.stderr.contains("--resume"), "{}", fresh.stderr);
}

/// Edited and damaged results files are refused by `merge` and `--resume` with the file, the
/// line and what is wrong; nothing is reported from them. The same evaluation given twice with
/// the same numbers (a file passed twice) is one evaluation.
#[test]
fn edited_results_files_are_refused_with_the_line_named() {
    let dir = TempDir::new("hostile");
    let good = dir.path().join("good.jsonl");
    let args = ["--router", "knn", "--router", "best-on-train", "-q"];
    let out = run(&[&args[..], &["--results", s(&good)]].concat());
    assert_eq!(out.code, 0, "{}", out.stderr);
    let text = std::fs::read_to_string(&good).unwrap();
    let mut lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let header = lines.remove(0);
    assert_eq!(
        header["tasks"].as_array().map(Vec::len),
        Some(lines.len()),
        "the header lists every evaluation's identity"
    );
    let write = |name: &str, header: &Value, records: &[Value]| -> PathBuf {
        let path = dir.path().join(name);
        let mut body = format!("{header}\n");
        for r in records {
            body.push_str(&format!("{r}\n"));
        }
        std::fs::write(&path, body).unwrap();
        path
    };
    let mut cases: Vec<(PathBuf, &str)> = Vec::new();
    let mut r = lines.clone();
    r[0]["id"] = "0123456789abcdef".into();
    cases.push((write("id.jsonl", &header, &r), "line 2: evaluation"));
    let mut r = lines.clone();
    let (a, b) = (r[0]["task"].clone(), r[1]["task"].clone());
    r[0]["task"] = b;
    r[1]["task"] = a;
    cases.push((write("swapped.jsonl", &header, &r), "the plan's is"));
    let mut r = lines.clone();
    r[2]["task"] = 1_000_000.into();
    cases.push((write("outside.jsonl", &header, &r), "of a plan of"));
    let mut r = lines.clone();
    let mut changed = r[3].clone();
    changed["row"]["mu"] = 0.999.into();
    r.push(changed);
    cases.push((write("twice.jsonl", &header, &r), "with different results"));
    let mut h = header.clone();
    h.as_object_mut().unwrap().remove("manifest");
    cases.push((write("manifest.jsonl", &h, &lines), "has no manifest"));
    let mut h = header.clone();
    h["tasks"] = serde_json::json!(["x"]);
    cases.push((write("ids.jsonl", &h, &lines), "ids for a plan of"));
    let mut r = lines.clone();
    r[4]["query_scores"]["n"] = 3.into();
    cases.push((write("scores.jsonl", &header, &r), "line 6: `query_scores`"));
    let mut r = lines.clone();
    r[5]["row"]["m"] = (-4).into();
    cases.push((write("m.jsonl", &header, &r), "line 7: `row.m`"));
    for (path, says) in &cases {
        let merged = run(&["merge", s(path), "--format", "json"]);
        assert_eq!(merged.code, 2, "{}: {}", path.display(), merged.stderr);
        assert!(merged.stdout.is_empty(), "{}", path.display());
        let name = path.file_name().unwrap().to_str().unwrap();
        assert!(
            merged.stderr.contains(name) && merged.stderr.contains(says),
            "{name}: {}",
            merged.stderr
        );
        let resumed = run(&[&args[..], &["--results", s(path), "--resume"]].concat());
        assert_eq!(resumed.code, 2, "{name}: {}", resumed.stderr);
        assert!(resumed.stderr.contains(name), "{}", resumed.stderr);
    }
    // The good file twice is the good file once.
    let once = run(&["merge", s(&good), "--format", "json"]);
    let twice = run(&["merge", s(&good), s(&good), "--format", "json"]);
    assert_eq!(twice.code, 0, "{}", twice.stderr);
    assert_eq!(
        results_without_times(&once.json()),
        results_without_times(&twice.json())
    );
}

/// Three shards merged are one run, byte for byte apart from timings; merge refuses a missing
/// shard and shards of different plans; the balance script assigns as the engine does.
#[test]
fn three_shards_merged_equal_one_run() {
    let dir = TempDir::new("shards");
    let base = [
        "--router",
        "knn",
        "--router",
        "logreg",
        "--router",
        "best-on-train",
        "--router",
        "oracle",
    ];
    let mut files = Vec::new();
    for i in 0..3 {
        let f = dir.path().join(format!("shard{i}.jsonl"));
        let shard = format!("{i}/3");
        let mut args: Vec<&str> = base.to_vec();
        args.extend([
            "--shard",
            &shard,
            "--results",
            s(&f),
            "-q",
            "-o",
            "/dev/null",
        ]);
        let out = run(&args);
        assert_eq!(out.code, 0, "{}", out.stderr);
        files.push(f);
    }
    let counts: Vec<usize> = files.iter().map(|f| records(f)).collect();
    assert_eq!(counts.iter().sum::<usize>(), 4 * 7, "{counts:?}");
    assert!(counts.iter().all(|&c| c > 0), "{counts:?}");
    let once = run(&base
        .iter()
        .copied()
        .chain(["--format", "json"])
        .collect::<Vec<_>>());
    let mut merge_args = vec!["merge"];
    merge_args.extend(files.iter().map(|f| s(f)));
    for format in ["json", "markdown", "csv"] {
        let mut a = merge_args.clone();
        a.extend(["--format", format]);
        let merged = run(&a);
        assert_eq!(merged.code, 0, "{}", merged.stderr);
        let whole = run(&base
            .iter()
            .copied()
            .chain(["--format", format])
            .collect::<Vec<_>>());
        match format {
            "json" => {
                let (mut m, mut w) = (merged.json(), whole.json());
                for d in [&mut m, &mut w] {
                    for r in d["results"].as_array_mut().unwrap() {
                        r["seconds"] = Value::Null;
                    }
                }
                assert_eq!(m, w);
                assert_eq!(
                    results_without_times(&m),
                    results_without_times(&once.json())
                );
            }
            "csv" => {
                let drop_seconds = |t: &str| -> Vec<String> {
                    let mut rdr = csv::Reader::from_reader(t.as_bytes());
                    let i = rdr
                        .headers()
                        .unwrap()
                        .iter()
                        .position(|h| h == "seconds")
                        .unwrap();
                    rdr.records()
                        .map(|r| {
                            let r = r.unwrap();
                            r.iter()
                                .enumerate()
                                .filter(|(k, _)| *k != i)
                                .map(|(_, v)| v)
                                .collect::<Vec<_>>()
                                .join(",")
                        })
                        .collect()
                };
                assert_eq!(drop_seconds(&merged.stdout), drop_seconds(&whole.stdout));
            }
            _ => assert_eq!(merged.stdout, whole.stdout),
        }
    }
    // One shard reruns as that shard.
    let again = run(&["rerun", s(&files[1])]);
    assert_eq!(again.code, 0, "{}\n{}", again.stdout, again.stderr);
    assert!(
        again
            .stdout
            .starts_with(&format!("identical: {} evaluations", counts[1])),
        "{}",
        again.stdout
    );
    let missing = run(&["merge", s(&files[0]), s(&files[2])]);
    assert_eq!(missing.code, 2);
    assert!(
        missing.stderr.contains("in none of the files") && missing.stderr.contains("3 shards"),
        "{}",
        missing.stderr
    );
    let other = dir.path().join("other.jsonl");
    let out = run(&[
        "--router",
        "knn",
        "--seed",
        "3",
        "--results",
        s(&other),
        "-q",
        "-o",
        "/dev/null",
    ]);
    assert_eq!(out.code, 0);
    let mixed = run(&["merge", s(&files[0]), s(&other)]);
    assert!(mixed.stderr.contains("different plans"), "{}", mixed.stderr);
    // The balance script's assignment is the engine's.
    let Some((py, _)) = pythons_with(&["json"]).into_iter().next() else {
        return skip(
            "three_shards_merged_equal_one_run (balance script)",
            "no Python",
        );
    };
    let o = std::process::Command::new(py)
        .arg(root().join("scripts/shard-balance"))
        .args(files.iter().map(|f| s(f)))
        .args(["--assignment", "3"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let assignment: Vec<Vec<u64>> = serde_json::from_slice(&o.stdout).unwrap();
    for (i, f) in files.iter().enumerate() {
        let text = std::fs::read_to_string(f).unwrap();
        let mut tasks: Vec<u64> = text
            .lines()
            .skip(1)
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["task"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        tasks.sort_unstable();
        assert_eq!(tasks, assignment[i], "shard {i}");
    }
}

#[test]
fn rerun_of_the_embedded_default_run_reports_identical_numbers() {
    let dir = TempDir::new("rerun");
    let doc = dir.path().join("run.json");
    let out = run(&["--format", "json", "-o", s(&doc)]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let manifest = &serde_json::from_str::<Value>(&std::fs::read_to_string(&doc).unwrap()).unwrap()
        ["manifest"];
    for k in [
        "engine",
        "sdk_version",
        "wit",
        "datasets",
        "seed",
        "sandbox",
        "threads",
        "cpu",
        "statistics",
    ] {
        assert!(!manifest[k].is_null(), "manifest lacks {k}: {manifest}");
    }
    assert_eq!(
        manifest["datasets"][0]["sha256"].as_str().unwrap().len(),
        64
    );
    let again = run_binary(&["rerun".as_ref(), doc.as_os_str()]);
    assert_eq!(again.code, 0, "{}\n{}", again.stdout, again.stderr);
    assert!(
        again.stdout.starts_with("identical: 49 evaluations"),
        "{}",
        again.stdout
    );
    // A number that is not what the run gives is found.
    let text = std::fs::read_to_string(&doc).unwrap();
    let mut v: Value = serde_json::from_str(&text).unwrap();
    v["results"][4]["mu"] = Value::from(0.123);
    std::fs::write(&doc, serde_json::to_string(&v).unwrap()).unwrap();
    let changed = run(&["rerun", s(&doc)]);
    assert_eq!(changed.code, 1, "{}", changed.stdout);
    assert!(
        changed.stdout.contains("mu was 0.123"),
        "{}",
        changed.stdout
    );
}

#[test]
fn progress_lines_for_logs_and_quiet_for_nothing() {
    let lines = run(&["--router", "knn", "--progress", "-o", "/dev/null"]);
    assert!(
        lines.stderr.contains("[7/7] knn llmrouter"),
        "{}",
        lines.stderr
    );
    let quiet = run(&["--router", "knn", "-q"]);
    assert_eq!(quiet.stderr, "");
    assert!(quiet.stdout.contains("knn"));
}

#[test]
fn dry_run_prints_the_plan_of_a_shard_and_evaluates_nothing() {
    let whole = run(&["--router", "knn", "--router", "oracle", "--dry-run"]);
    assert_eq!(whole.code, 0, "{}", whole.stderr);
    let all: Vec<Value> = whole
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(all.len(), 14);
    let mut seen = 0;
    for i in 0..2 {
        let shard = format!("{i}/2");
        let part = run(&[
            "--router",
            "knn",
            "--router",
            "oracle",
            "--dry-run",
            "--shard",
            &shard,
        ]);
        seen += part.stdout.lines().count();
    }
    assert_eq!(seen, 14);
    assert!(all.iter().all(|r| r["estimate"].as_f64().unwrap() > 0.0));
}

/// The cluster examples' shard script, driven as Kubernetes (JOB_COMPLETION_INDEX) and Slurm
/// (the array script, SLURM_ARRAY_TASK_ID and _COUNT) would, gives shards that merge into one
/// run.
#[cfg(unix)]
#[test]
fn the_cluster_examples_shards_merge_into_one_run() {
    let dir = TempDir::new("cluster");
    let config = dir.path().join("sweep.toml");
    std::fs::write(
        &config,
        "seed = 0\n[[router]]\nname = \"knn\"\n[[router]]\nname = \"best-on-train\"\n\
         [[router]]\nname = \"oracle\"\n",
    )
    .unwrap();
    let results = dir.path().join("results");
    let examples = root().join("examples/cluster");
    let shard = |script: &str, env: &[(&str, &str)]| {
        let out = std::process::Command::new("bash")
            .arg(examples.join(script))
            .current_dir(dir.path())
            .env("ENGINE", env!("CARGO_BIN_EXE_engine"))
            .env("CONFIG", &config)
            .env("DATA", "")
            .env("RESULTS_DIR", &results)
            .env_remove("JOB_COMPLETION_INDEX")
            .env_remove("SLURM_ARRAY_TASK_ID")
            .env_remove("SLURM_ARRAY_TASK_COUNT")
            .env_remove("SHARDS")
            .envs(env.iter().copied())
            .output()
            .expect("run the shard script");
        assert!(
            out.status.success(),
            "{script} {env:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    shard(
        "shard.sh",
        &[("JOB_COMPLETION_INDEX", "0"), ("SHARDS", "3")],
    );
    shard(
        "shard.sh",
        &[("JOB_COMPLETION_INDEX", "1"), ("SHARDS", "3")],
    );
    shard(
        "slurm-array.sh",
        &[
            ("SLURM_ARRAY_TASK_ID", "2"),
            ("SLURM_ARRAY_TASK_COUNT", "3"),
        ],
    );
    let files: Vec<PathBuf> = (0..3)
        .map(|i| results.join(format!("shard-{i}.jsonl")))
        .collect();
    let mut args = vec!["merge"];
    args.extend(files.iter().map(|f| s(f)));
    args.extend(["--format", "json"]);
    let merged = run(&args);
    assert_eq!(merged.code, 0, "{}", merged.stderr);
    let once = run(&["--config", s(&config), "--format", "json"]);
    assert_eq!(
        results_without_times(&merged.json()),
        results_without_times(&once.json())
    );
    // The script refuses to guess its index.
    let out = std::process::Command::new("sh")
        .arg(examples.join("shard.sh"))
        .env_remove("JOB_COMPLETION_INDEX")
        .env_remove("SLURM_ARRAY_TASK_ID")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("JOB_COMPLETION_INDEX"));
}

/// A run with a WebAssembly plugin (given with parameters) reruns from its manifest: the plugin
/// by its recorded path and sha256, the parameters as given; and a results file resumes it.
#[test]
fn rerun_and_resume_take_plugins_as_they_were_given() {
    let dir = TempDir::new("rerun-plugin");
    let doc = dir.path().join("run.json");
    let plugin = format!("{}:k=7", crate::util::wasm("routereval_plugin_knn"));
    let out = run(&[
        "--plugin",
        &plugin,
        "--router",
        "oracle",
        "--format",
        "json",
        "-o",
        s(&doc),
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&doc).unwrap()).unwrap();
    assert_eq!(
        v["manifest"]["plugins"][0]["sha256"]
            .as_str()
            .unwrap()
            .len(),
        64
    );
    let rows = v["results"].as_array().unwrap();
    assert!(
        rows.iter()
            .any(|r| r["kind"] == "wasm" && r["fuel"].as_u64().is_some())
    );
    let again = run(&["rerun", s(&doc)]);
    assert_eq!(again.code, 0, "{}\n{}", again.stdout, again.stderr);
    assert!(
        again.stdout.starts_with("identical: 14 evaluations"),
        "{}",
        again.stdout
    );
    // The same plugin with other parameters is another plan.
    let file = dir.path().join("r.jsonl");
    assert_eq!(
        run(&["--plugin", &plugin, "--results", s(&file), "-q"]).code,
        0
    );
    let other = format!("{}:k=9", crate::util::wasm("routereval_plugin_knn"));
    let refused = run(&["--plugin", &other, "--results", s(&file), "--resume"]);
    assert_eq!(refused.code, 2);
    assert!(refused.stderr.contains("k=9"), "{}", refused.stderr);
}
