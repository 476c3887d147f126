//! `synth`: the synthetic 12-benchmark suite, written by the CLI and read back by `inspect` and
//! `--dataset`.

use std::collections::{BTreeMap, BTreeSet};

use routereval_engine::data::synth::SUITE;
use serde_json::Value;

use crate::util::{TempDir, run};

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// The whole default suite (12 benchmarks, RouterEval's item counts, 2,000 LLMs, pools of
/// 3 .. 1000 in three groups): every pool built, and in every pool and split the oracle beats
/// the best single model (the bar: routing has something to gain everywhere).
#[test]
fn the_default_suite_has_every_pool_and_room_to_route() {
    let dir = TempDir::new("synth-full");
    let out_dir = dir.path().join("suite");
    let out = run(&["synth", "-o", out_dir.to_str().unwrap(), "--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    // Progress: one line per file, on stderr.
    assert_eq!(
        out.stderr.matches("synth: wrote").count(),
        12,
        "{}",
        out.stderr
    );
    let summary = out.json();
    assert_eq!(summary["models"], 2000);
    let written = summary["benchmarks"].as_array().unwrap();
    assert_eq!(written.len(), 12);
    for w in written {
        assert_eq!(w["pools"], 15, "{w}");
        assert_eq!(w["skipped"], serde_json::json!([]), "{w}");
    }

    let out = run(&["inspect", out_dir.to_str().unwrap(), "--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let reports = out.json();
    let reports = reports.as_array().expect("one report per file");
    assert_eq!(reports.len(), 12);
    let by_name: BTreeMap<&str, &Value> = reports
        .iter()
        .map(|r| (r["benchmark"].as_str().unwrap(), r))
        .collect();
    let mut all_models = BTreeSet::new();
    for spec in &SUITE {
        let r = by_name[spec.name];
        let q: Vec<u64> = r["queries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        assert_eq!(q.iter().sum::<u64>(), spec.items as u64, "{}", spec.name);
        // 80/10/10 per sub-benchmark: train is 80% give or take one item per sub-benchmark.
        assert!(
            (q[0] as f64 / spec.items as f64 - 0.8).abs() < 0.02,
            "{}: {q:?}",
            spec.name
        );
        assert_eq!(r["dim"], 768);
        assert_eq!(r["shared_prompts"]["test_in_train"], 0);
        let pools = r["pools"].as_array().unwrap();
        let mut shapes = BTreeSet::new();
        for p in pools {
            let (m, group) = (p["m"].as_u64().unwrap(), p["group"].as_str().unwrap());
            shapes.insert((m, group.to_string()));
            let models = p["models"].as_array().unwrap();
            assert_eq!(models.len() as u64, m);
            let distinct: BTreeSet<&str> = models.iter().map(|v| v.as_str().unwrap()).collect();
            assert_eq!(distinct.len() as u64, m, "{} m={m} {group}", spec.name);
            all_models.extend(distinct.iter().map(|s| s.to_string()));
            for split in ["train", "val", "test"] {
                let s = &p[split];
                assert!(
                    f(&s["oracle"]) > f(&s["best_single"]),
                    "{} m={m} {group} {split}: oracle {} <= best single {}",
                    spec.name,
                    s["oracle"],
                    s["best_single"]
                );
            }
            // TruthfulQA's scores are fractional and its pools carry training labels; the
            // others are 0/1.
            let truthful = spec.name == routereval_engine::data::TRUTHFULQA;
            assert_eq!(p["train_labels"], truthful, "{} m={m} {group}", spec.name);
            assert_eq!(f(&p["test"]["fractional"]) > 0.5, truthful, "{}", spec.name);
        }
        let expected: BTreeSet<(u64, String)> = [3, 5, 10, 100, 1000]
            .into_iter()
            .flat_map(|m| ["all_strong", "all_weak", "strong_to_weak"].map(|g| (m, g.to_string())))
            .collect();
        assert_eq!(shapes, expected, "{}", spec.name);
    }
    // The pools of m = 1000 draw on a population of more than a thousand models.
    assert!(
        all_models.len() > 1500,
        "{} distinct models",
        all_models.len()
    );
}

/// Same seed, same bytes, whatever subset is asked for; another seed, other data. The kNN
/// router finds the topic structure in the embeddings: it beats random routing.
#[test]
fn synth_is_deterministic_and_its_embeddings_carry_the_topics() {
    let dir = TempDir::new("synth-small");
    let small = [
        "--scale", "0.25", "--models", "300", "--sizes", "3,5,10", "--draws", "200",
    ];
    let synth = |sub: &str, extra: &[&str]| {
        let out_dir = dir.path().join(sub);
        let mut args = vec!["synth", "-o", out_dir.to_str().unwrap()];
        args.extend_from_slice(&small);
        args.extend_from_slice(extra);
        let out = run(&args);
        assert_eq!(out.code, 0, "{}", out.stderr);
        out_dir
    };
    let a = synth("a", &["--benchmarks", "mmlu,gsm8k,truthfulqa"]);
    let b = synth("b", &["--benchmarks", "gsm8k"]);
    let c = synth("c", &["--benchmarks", "gsm8k", "--seed", "7"]);
    let read = |d: &std::path::Path| std::fs::read(d.join("gsm8k_router_dataset.pkl")).unwrap();
    assert!(read(&a) == read(&b), "gsm8k differs when built with others");
    assert!(read(&a) != read(&c), "another seed gave the same gsm8k");
    assert!(
        a.join("harness_truthfulqa_mc_0_router_dataset.pkl")
            .exists()
    );

    let out = run(&[
        "--dataset",
        a.join("mmlu_router_dataset.pkl").to_str().unwrap(),
        "--router",
        "knn",
        "--router",
        "random",
        "--format",
        "json",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v = out.json();
    let results = v["results"].as_array().unwrap();
    let mean_mu = |router: &str| {
        let mus: Vec<f64> = results
            .iter()
            .filter(|r| r["router"] == router)
            .map(|r| f(&r["mu"]))
            .collect();
        assert_eq!(mus.len(), 9, "{router}");
        mus.iter().sum::<f64>() / mus.len() as f64
    };
    let (knn, random) = (mean_mu("knn"), mean_mu("random"));
    assert!(knn > random + 0.05, "knn {knn} should beat random {random}");
}

#[test]
fn synth_names_what_is_wrong() {
    let dir = TempDir::new("synth-bad");
    let o = dir.path().join("x");
    let out = run(&[
        "synth",
        "-o",
        o.to_str().unwrap(),
        "--benchmarks",
        "mmlu,nope",
    ]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("unknown benchmark `nope`") && out.stderr.contains("mmlu_pro"),
        "{}",
        out.stderr
    );
    assert!(!o.exists(), "nothing is written when the options are wrong");
    let out = run(&["synth", "-o", o.to_str().unwrap(), "--models", "0"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("at least one model"), "{}", out.stderr);
}
