//! `--plugin 'exec:COMMAND'`: routers that are programs. RouterEval-style Python scripts against
//! the built-in kNN on real data (when Python with numpy / scikit-learn is there; skipped with a
//! printed reason otherwise), and every failure kind with plain shell commands.

use serde_json::Value;

use crate::util::{TempDir, find, pythons_with, root, run, shared, skip};

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn results(out: &crate::util::Output) -> Vec<Value> {
    out.json()["results"].as_array().expect("results").clone()
}

/// A small synthetic suite with a reference accuracy (gsm8k) and fractional scores with training
/// labels (TruthfulQA), so V_R and the labels are exercised too.
fn small_suite(dir: &TempDir) -> std::path::PathBuf {
    synth_suite(dir, "gsm8k,truthfulqa")
}

/// A small synthetic suite of `benchmarks` (pools of 3 and 5), in `dir`.
fn synth_suite(dir: &TempDir, benchmarks: &str) -> std::path::PathBuf {
    let out_dir = dir.path().join("suite");
    let out = run(&[
        "synth",
        "-o",
        out_dir.to_str().unwrap(),
        "--benchmarks",
        benchmarks,
        "--scale",
        "0.4",
        "--models",
        "200",
        "--sizes",
        "3,5",
        "--draws",
        "100",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    out_dir
}

/// The built-in `router`, `best-on-train` and the `exec:` oracle `spec` on the released LLMRouter
/// pickle: the rows, after checking that every evaluation succeeded.
fn against_on_llmrouter(router: &str, spec: &str) -> Vec<Value> {
    let pkl = shared("llmrouter/llmrouter_router_dataset.pkl");
    let out = run(&[
        "--dataset",
        pkl.to_str().unwrap(),
        "--router",
        router,
        "--router",
        "best-on-train",
        "--plugin",
        spec,
        "--format",
        "json",
    ]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    results(&out)
}

/// The interpreter to run `test`'s scripts with; `None` after [`skip`] says why not.
fn python(test: &str, modules: &[&str]) -> Option<String> {
    let found = pythons_with(modules);
    match found.last() {
        Some((py, version)) => {
            println!("using {py} ({} {version})", modules[0]);
            Some(py.clone())
        }
        None => {
            skip(
                test,
                &format!(
                    "no Python with {modules:?} (set ROUTEREVAL_PYTHONS; .ci/run installs them)"
                ),
            );
            None
        }
    }
}

/// RouterEval's contract, unmodified: the script prints `mu vb ep` and the engine reads the last
/// three numbers. Its mu is the built-in kNN's, pool by pool, on the released LLMRouter pickle
/// and on synthetic gsm8k and TruthfulQA.
#[test]
fn a_routereval_style_knn_script_reports_the_builtin_knns_mu() {
    let Some(py) = python(
        "a_routereval_style_knn_script_reports_the_builtin_knns_mu",
        &["numpy", "sklearn"],
    ) else {
        return;
    };
    let script = root().join("tests/fixtures/python/routereval_knn.py");
    let dir = TempDir::new("exec-sklearn");
    let suite = small_suite(&dir);
    let pkl = shared("llmrouter/llmrouter_router_dataset.pkl");
    let self_reported = format!(
        "exec:{py} {} --seed 0 --knearest 5 --data {{npz}}",
        script.display()
    );
    let honest = format!(
        "exec[knn-honest]:{py} {} --knearest 5 --data {{npz}} --out {{out}}",
        script.display()
    );
    let out = run(&[
        "--dataset",
        pkl.to_str().unwrap(),
        "--dataset",
        suite.to_str().unwrap(),
        "--router",
        "knn",
        "--plugin",
        &self_reported,
        "--plugin",
        &honest,
        "--format",
        "json",
    ]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("self-reported"), "{}", out.stderr);
    let rs = results(&out);
    let doc = out.json();
    let plugins = doc["plugins"].as_array().unwrap();
    assert_eq!(plugins.len(), 2);
    assert_eq!(plugins[0]["self_reported"], true);
    let mut pools = 0;
    for knn in rs.iter().filter(|r| r["router"] == "knn") {
        let (m, group, bench) = (
            knn["m"].as_u64().unwrap(),
            knn["group"].as_str().unwrap(),
            knn["benchmark"].as_str().unwrap(),
        );
        let theirs = rs
            .iter()
            .find(|r| {
                r["router"] == "routereval_knn.py@exec"
                    && r["benchmark"] == bench
                    && r["m"] == m
                    && r["group"] == group
            })
            .unwrap();
        assert_eq!(theirs["kind"], "exec");
        assert_eq!(theirs["self_reported"], true);
        assert_eq!(knn["self_reported"], false);
        // Printed by Python at full precision; numpy's mean and the engine's may sum in another
        // order.
        let (a, b) = (f(&knn["mu"]), f(&theirs["mu"]));
        assert!(
            (a - b).abs() < 1e-12,
            "{bench} m={m} {group}: built-in kNN mu {a}, script {b}"
        );
        assert!((f(&knn["vb"]) - f(&theirs["vb"])).abs() < 1e-9);
        assert!((f(&knn["ep"]) - f(&theirs["ep"])).abs() < 1e-4);
        // V_R is mu / acc_ref, as test_router.py computes it, with the paper's reference
        // accuracies (GPT-4's: gsm8k 0.92, TruthfulQA 0.669); the LLMRouter data has none.
        let acc_ref = match bench {
            "gsm8k" => Some(0.92),
            "harness_truthfulqa_mc_0" => Some(0.669),
            _ => None,
        };
        match acc_ref {
            Some(r) => {
                assert!((f(&theirs["vr"]) - b / r).abs() < 1e-9, "{theirs}");
                assert!((f(&knn["vr"]) - a / r).abs() < 1e-12, "{knn}");
            }
            None => assert!(theirs["vr"].is_null() && knn["vr"].is_null()),
        }
        pools += 1;
    }
    // The honest variant: the engine scores what the script saved, and gets the built-in's
    // numbers exactly.
    let honest_rows: Vec<&Value> = rs
        .iter()
        .filter(|r| r["router"] == "knn-honest@exec")
        .collect();
    assert_eq!(
        honest_rows.len(),
        18,
        "m = 3 and 5, three groups, three benchmarks"
    );
    for honest in honest_rows {
        let knn = rs
            .iter()
            .find(|r| {
                r["router"] == "knn"
                    && r["benchmark"] == honest["benchmark"]
                    && r["m"] == honest["m"]
                    && r["group"] == honest["group"]
            })
            .unwrap();
        assert_eq!(honest["self_reported"], false);
        assert_eq!(honest["mu"], knn["mu"], "{honest}");
        assert_eq!(honest["vb"], knn["vb"]);
        // scikit-learn ranks float32 embeddings by float32 cosine distances, the built-in by
        // float32 dot products of normalised rows: where a 5th and 6th neighbour nearly tie they
        // may keep a different one, which moves a prediction (and Ep by ~4e-5 on LLMRouter m=3
        // all_weak) but here never the choice.
        let (e1, e2) = (f(&honest["ep"]), f(&knn["ep"]));
        assert!(
            (e1 - e2).abs() < 1e-4,
            "{} {} m={} {}: ep {e1} vs {e2}",
            honest["benchmark"],
            honest["router"],
            honest["m"],
            honest["group"]
        );
    }
    // m = 3 and 5, three groups, on each of the three benchmarks.
    assert_eq!(pools, 18);
}

/// The example of `examples/python-router` (numpy only, ten lines) through the engine gives the
/// built-in kNN's numbers on the embedded data.
#[test]
fn the_ten_line_python_example_matches_the_builtin_knn() {
    let Some(py) = python(
        "the_ten_line_python_example_matches_the_builtin_knn",
        &["numpy"],
    ) else {
        return;
    };
    let script = root().join("examples/python-router/knn_router.py");
    let spec = format!("exec:{py} {} {{npz}} {{out}}", script.display());
    let out = run(&["--router", "knn", "--plugin", &spec, "--format", "json"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let rs = results(&out);
    let ours: Vec<&Value> = rs.iter().filter(|r| r["router"] == "knn").collect();
    assert_eq!(ours.len(), 7);
    for knn in ours {
        let (m, group) = (knn["m"].as_u64().unwrap(), knn["group"].as_str().unwrap());
        let ex = find(&rs, "knn_router.py@exec", m, group);
        assert_eq!(ex["status"], "ok", "{ex}");
        assert_eq!(ex["mu"], knn["mu"], "m={m} {group}");
        assert!((f(&ex["ep"]) - f(&knn["ep"])).abs() < 1e-6);
    }
}

/// The shapes a routing file may take, and the wrong ones.
#[test]
fn routing_files_choices_and_wrong_shapes() {
    let Some(py) = python("routing_files_choices_and_wrong_shapes", &["numpy"]) else {
        return;
    };
    let choices = format!(
        "exec[first]:{py} -c \"import numpy as np, sys; d = np.load(sys.argv[1]); \
         np.save(sys.argv[2], np.zeros(len(d['test_embed']), dtype=np.int64))\" {{npz}} {{out}}"
    );
    let wrong = format!(
        "exec[wrong]:{py} -c \"import numpy as np, sys; np.save(sys.argv[1], np.ones((2, 2)))\" \
         {{out}} # {{npz}}"
    );
    let out = run(&[
        "--router",
        "oracle",
        "--plugin",
        &choices,
        "--plugin",
        &wrong,
        "--candidates",
        "3",
        "--format",
        "json",
    ]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let rs = results(&out);
    let ds = routereval_engine::data::embedded::default_dataset().unwrap();
    for pool in ds.pools.iter().filter(|p| p.m() == 3) {
        let r = find(&rs, "first@exec", 3, &pool.group);
        // Always the first candidate: its mean test score, and certainty.
        let col = pool.test_scores.column(0);
        let mean = col.iter().sum::<f64>() / col.len() as f64;
        assert!((f(&r["mu"]) - mean).abs() < 1e-12, "{r}");
        assert_eq!(f(&r["ep"]), 0.0);
        let w = find(&rs, "wrong@exec", 3, &pool.group);
        assert_eq!(w["error"]["kind"], "invalid_output");
        let msg = w["error"]["message"].as_str().unwrap();
        assert!(msg.contains("2 x 2") && msg.contains("x 3"), "{msg}");
    }
}

/// Every failure is reported as its own kind, names the pool, and does not stop the run; a
/// self-reported row says so in the table. Needs only `sh`.
#[cfg(unix)]
#[test]
fn exec_failures_have_kinds_and_self_reports_are_marked() {
    let out = run(&[
        "--router",
        "knn",
        "--plugin",
        "exec[fails]:echo 'Traceback: no module named sklearn' >&2; exit 3 # {npz}",
        "--plugin",
        "exec[few]:echo mu 0.5 vb 0.7 # {npz}",
        "--plugin",
        "exec[liar]:echo 'done: 0.99 1.5 0.0' # {npz}",
        "--plugin",
        "exec[slow]:sleep 30 # {npz}",
        "--plugin",
        "exec[silent]:true {npz} {out}",
        "--plugin",
        "exec[crash]:kill -SEGV $$ # {npz}",
        "--candidates",
        "3",
        "--group",
        "all_strong",
        "--timeout",
        "1",
    ]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let table = &out.stdout;
    let line = |name: &str| {
        table
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no row {name}:\n{table}"))
            .to_string()
    };
    // The liar's numbers are shown as it printed them, marked, with the footnote.
    assert!(line("liar@exec *").contains("0.9900"), "{table}");
    assert!(table.contains("* self-reported"), "{table}");
    assert!(line("knn ").contains("0."), "{table}");
    for (name, kind, says) in [
        ("fails@exec", "exec_failed", "exit status: 3"),
        ("fails@exec", "exec_failed", "no module named sklearn"),
        ("few@exec", "invalid_output", "printed 2 number(s)"),
        ("slow@exec", "timeout", "1 s deadline"),
        ("silent@exec", "invalid_output", "wrote nothing to {out}"),
        ("crash@exec", "crash", "SIGSEGV"),
    ] {
        assert!(line(name).contains("failed"), "{table}");
        let listed = table
            .lines()
            .any(|l| l.contains(&format!("[{kind}] router `{name}`")) && l.contains("m=3"));
        assert!(listed, "{name}: no [{kind}] line\n{table}");
        assert!(table.contains(says), "{name}: `{says}` missing\n{table}");
    }
}

#[test]
fn exec_specs_are_checked_before_the_run() {
    let out = run(&["--plugin", "exec:python3 knn.py --knearest 5"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("{npz}"), "{}", out.stderr);
    let out = run(&["--plugin", "exec[]:x {npz}"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("empty NAME"), "{}", out.stderr);
    let out = run(&[
        "--plugin",
        "exec:./a.py {npz}",
        "--plugin",
        "exec:./b/a.py --k 2 {npz}",
    ]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("a.py@exec"), "{}", out.stderr);
}

/// `[[router]] exec = "..."` in a config file, named by `name`.
#[cfg(unix)]
#[test]
fn exec_routers_from_a_config() {
    let dir = TempDir::new("exec-config");
    let cfg = dir.path().join("run.toml");
    std::fs::write(
        &cfg,
        "candidates = [3]\nformat = \"json\"\n\n[[router]]\nname = \"knn\"\n\n[[router]]\n\
         name = \"says\"\nexec = \"echo 0.5 1.0 0.25 # {npz}\"\n",
    )
    .unwrap();
    let out = run(&["--config", cfg.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let rs = results(&out);
    let r = find(&rs, "says@exec", 3, "all_weak");
    assert_eq!((f(&r["mu"]), f(&r["vb"]), f(&r["ep"])), (0.5, 1.0, 0.25));
    assert_eq!(r["self_reported"], true);
    std::fs::write(
        &cfg,
        "[[router]]\nexec = \"echo {npz}\"\nparams = { k = 1 }\n",
    )
    .unwrap();
    let out = run(&["--config", cfg.to_str().unwrap()]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("neither `plugin` nor `params`"),
        "{}",
        out.stderr
    );
}

/// The cluster router against scikit-learn's KMeans (a script written for the test, in the style
/// of RouterEval's cluster.py) on the released LLMRouter pickle. The k-means++ draws come from
/// different generators, so the clusters may differ a little: mu within 0.005 (measured at most
/// 0.0035; RouterEval's own cluster.py was within 0.0036). mu alone cannot tell a working router
/// from a collapsed one (best-on-train is within 0.016 of it everywhere), so the geometry is
/// checked too: Ep, the entropy of the inverse-distance cluster probabilities summed per chosen
/// candidate, within 0.005 (measured 0.0004; 0 where the clusters all pick one candidate, about
/// 0.93 where they do not), and the routing differs from best-on-train's where scikit-learn's does.
#[test]
fn the_cluster_router_clusters_as_scikit_learn_kmeans_does() {
    let Some(py) = python(
        "the_cluster_router_clusters_as_scikit_learn_kmeans_does",
        &["numpy", "sklearn"],
    ) else {
        return;
    };
    let script = root().join("tests/fixtures/python/routereval_cluster.py");
    let spec = format!("exec[sk]:{py} {} --k 3 --data {{npz}}", script.display());
    let rs = against_on_llmrouter("cluster", &spec);
    let ours: Vec<&Value> = rs.iter().filter(|r| r["router"] == "cluster").collect();
    assert_eq!(ours.len(), 6);
    let mut spread = 0;
    for r in ours {
        let (m, group) = (r["m"].as_u64().unwrap(), r["group"].as_str().unwrap());
        let sk = find(&rs, "sk@exec", m, group);
        let (a, b) = (f(&r["mu"]), f(&sk["mu"]));
        assert!(
            (a - b).abs() <= 0.005,
            "m={m} {group}: cluster {a}, scikit-learn {b}"
        );
        let (a, b) = (f(&r["ep"]), f(&sk["ep"]));
        assert!(
            (a - b).abs() <= 0.005,
            "m={m} {group}: cluster Ep {a}, scikit-learn {b}"
        );
        if b > 0.5 {
            spread += 1;
            let bar = find(&rs, "best-on-train", m, group);
            assert_ne!(r["mu"], bar["mu"], "m={m} {group}: routes as best-on-train");
        }
    }
    assert_eq!(
        spread, 4,
        "pools whose clusters pick more than one candidate"
    );
}

/// A command that leaves a process in the background: at the deadline the whole process group
/// is killed (not only the shell), the evaluation stops at the deadline, and a command that
/// finished does not leave its background process running or make the engine wait for it.
#[cfg(target_os = "linux")]
#[test]
fn exec_timeouts_end_the_whole_process_group_at_the_deadline() {
    use crate::util::assert_processes_ended;
    let dir = TempDir::new("exec-group");
    let (hang_pid, done_pid) = (dir.path().join("hang.pid"), dir.path().join("done.pid"));
    let hang = format!(
        "exec[hang]:sleep 300 & echo $! > {}; sleep 300 # {{npz}}",
        hang_pid.display()
    );
    let done = format!(
        "exec[done]:sleep 300 & echo $! > {}; echo 0.5 0.9 1.0 # {{npz}}",
        done_pid.display()
    );
    let started = std::time::Instant::now();
    let out = run(&[
        "--format",
        "json",
        "--candidates",
        "3",
        "--group",
        "all_strong",
        "--timeout",
        "2",
        "--plugin",
        &hang,
        "--plugin",
        &done,
    ]);
    let took = started.elapsed();
    assert_eq!(out.code, 1, "{}", out.stderr);
    let rs = results(&out);
    assert_eq!(rs.len(), 2, "{rs:?}");
    let hung = find(&rs, "hang@exec", 3, "all_strong");
    assert_eq!(hung["error"]["kind"], "timeout", "{hung}");
    let secs = f(&hung["seconds"]);
    assert!((2.0..8.0).contains(&secs), "stopped after {secs} s");
    let finished = find(&rs, "done@exec", 3, "all_strong");
    assert_eq!(finished["status"], "ok", "{finished}");
    assert!(f(&finished["seconds"]) < 8.0, "{finished}");
    assert!(took < std::time::Duration::from_secs(30), "{took:?}");
    assert_processes_ended(&[&hang_pid, &done_pid]);
}

/// The logreg router against an independent oracle: scikit-learn's LogisticRegression (lbfgs,
/// the same C, run to convergence) per candidate, in a script written for the test that saves
/// its belief for the engine to score. The objective is strictly convex, so both must reach the
/// same optimum: the same choices (the same mu) in every pool, and beliefs whose entropy agrees
/// to 1e-4 bits (measured: at most 2e-5; float32 against float64 arithmetic). The check has
/// teeth: a tenth of the regularisation (C = 0.1) moves Ep by more than 1e-3 in every pool.
#[test]
fn logreg_reaches_scikit_learns_optimum() {
    let test = "logreg_reaches_scikit_learns_optimum";
    let Some(py) = python(test, &["numpy", "sklearn"]) else {
        return;
    };
    let dir = TempDir::new("exec-logreg");
    // 0/1 scores: scikit-learn's classifier takes labels, not TruthfulQA's fractions.
    let suite = synth_suite(&dir, "gsm8k");
    let script = root().join("tests/fixtures/python/sklearn_logreg.py");
    let sk = format!(
        "exec[sk]:{py} {} --data {{npz}} --out {{out}}",
        script.display()
    );
    let out = run(&[
        "--dataset",
        suite.to_str().unwrap(),
        "--router",
        "logreg:iters=300,tol=0.000001",
        "--router",
        "logreg:c=0.1,iters=300,tol=0.000001",
        "--plugin",
        &sk,
        "--candidates",
        "3",
        "--format",
        "json",
    ]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let rs = results(&out);
    let ours: Vec<&Value> = rs
        .iter()
        .filter(|r| r["router"] == "logreg:iters=300,tol=0.000001")
        .collect();
    assert_eq!(ours.len(), 3, "{rs:?}");
    for r in ours {
        let (m, group) = (r["m"].as_u64().unwrap(), r["group"].as_str().unwrap());
        let theirs = find(&rs, "sk@exec", m, group);
        assert_eq!(theirs["self_reported"], false);
        assert_eq!(r["mu"], theirs["mu"], "m={m} {group}: {r} vs {theirs}");
        let (a, b) = (f(&r["ep"]), f(&theirs["ep"]));
        assert!(
            (a - b).abs() <= 1e-4,
            "m={m} {group}: Ep {a} vs scikit-learn's {b}"
        );
        let weaker = find(&rs, "logreg:c=0.1,iters=300,tol=0.000001", m, group);
        assert!(
            (f(&weaker["ep"]) - b).abs() > 1e-3,
            "m={m} {group}: C = 0.1 is indistinguishable from C = 1 ({} vs {b})",
            weaker["ep"]
        );
    }
}

/// The MF router against an independent implementation: a numpy script written for the test
/// from MF's documented specification (RouteLLM's factorisation for m candidates, PyTorch's
/// initialisation, BCE, Adam, cosine learning rate, batches of 32), whose random numbers are
/// numpy's, so each pool is another draw of the same training. On the released LLMRouter pickle
/// (measured, seeds 0-2 of each): the means agree within 0.0003 at seed 0 and both spread by
/// 0.003 over seeds; per pool by at most 0.0077; Ep by at most 0.01. Bounds: mean mu within
/// 0.005, each pool within 0.015, each Ep within 0.02; and both clear best-on-train by 0.02.
#[test]
fn mf_matches_an_independent_numpy_implementation() {
    let test = "mf_matches_an_independent_numpy_implementation";
    let Some(py) = python(test, &["numpy"]) else {
        return;
    };
    let script = root().join("tests/fixtures/python/numpy_mf.py");
    let spec = format!(
        "exec[np-mf]:{py} {} --seed 0 --data {{npz}} --out {{out}}",
        script.display()
    );
    let rs = against_on_llmrouter("mf", &spec);
    let ours: Vec<&Value> = rs.iter().filter(|r| r["router"] == "mf").collect();
    assert_eq!(ours.len(), 6);
    let (mut sum_ours, mut sum_theirs, mut sum_bar) = (0.0, 0.0, 0.0);
    for r in ours {
        let (m, group) = (r["m"].as_u64().unwrap(), r["group"].as_str().unwrap());
        let theirs = find(&rs, "np-mf@exec", m, group);
        assert_eq!(theirs["self_reported"], false);
        let (a, b) = (f(&r["mu"]), f(&theirs["mu"]));
        assert!(
            (a - b).abs() <= 0.015,
            "m={m} {group}: mu {a} vs numpy's {b}"
        );
        let (ea, eb) = (f(&r["ep"]), f(&theirs["ep"]));
        assert!(
            (ea - eb).abs() <= 0.02,
            "m={m} {group}: Ep {ea} vs numpy's {eb}"
        );
        sum_ours += a;
        sum_theirs += b;
        sum_bar += f(&find(&rs, "best-on-train", m, group)["mu"]);
    }
    let (ours, theirs, bar) = (sum_ours / 6.0, sum_theirs / 6.0, sum_bar / 6.0);
    assert!(
        (ours - theirs).abs() <= 0.005,
        "mean mu {ours} vs numpy's {theirs}"
    );
    assert!(
        ours > bar + 0.02 && theirs > bar + 0.02,
        "{ours}, {theirs} vs best-on-train {bar}"
    );
}
