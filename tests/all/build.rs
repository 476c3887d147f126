//! Building router datasets from populations (`build-dataset`, and `--dataset` on an importer
//! format), checked against the released LLMRouter pickle, which was built from the same train
//! rows by RouterEval's own `select_candidates`.

use serde_json::Value;

use crate::util::{TempDir, run, shared};

fn pools(v: &Value) -> &Vec<Value> {
    v["pools"].as_array().expect("pools")
}

fn names(p: &Value) -> Vec<String> {
    p["models"]
        .as_array()
        .expect("models")
        .iter()
        .map(|m| m.as_str().expect("name").to_string())
        .collect()
}

#[test]
fn llmrouter_train_rows_reproduce_the_released_pools() {
    let jsonl = shared("llmrouter/queries.jsonl");
    let out = run(&[
        "build-dataset",
        jsonl.to_str().unwrap(),
        "--rows",
        "train",
        "--format",
        "json",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let built = out.json();
    assert_eq!(built["benchmark"], "llmrouter");
    assert_eq!(built["queries"], 5608);
    assert_eq!(built["dim"], 384);
    // RouterEval's proportions per task give the released file's split sizes.
    assert_eq!(
        built["split"],
        serde_json::json!({"train": 4484, "val": 561, "test": 563})
    );
    // The released pickle, read by the engine's own reader.
    let pkl = shared("llmrouter/llmrouter_router_dataset.pkl");
    let released = routereval_engine::dataset::load_path(&pkl)
        .unwrap()
        .remove(0);
    assert_eq!(pools(&built).len(), 6, "m = 3 and 5, three groups each");
    for p in pools(&built) {
        let (m, group) = (
            p["m"].as_u64().unwrap() as usize,
            p["group"].as_str().unwrap(),
        );
        let theirs = released
            .pools
            .iter()
            .find(|q| q.m() == m && q.group == group)
            .unwrap_or_else(|| panic!("no released pool m={m} {group}"));
        if group != "strong_to_weak" {
            // The windows use no randomness: the same models, in the same order.
            assert_eq!(names(p), theirs.models, "m={m} {group}");
        }
    }
    // strong_to_weak: one model from each of m equal bands of the eligible models, sorted by
    // mean score over all train rows (recomputed here from the jsonl).
    let text = std::fs::read_to_string(&jsonl).unwrap();
    let mut lines = text.lines();
    let header: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    let models: Vec<String> = header["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap().to_string())
        .collect();
    let (mut sums, mut n) = (vec![0.0f64; models.len()], 0usize);
    for l in lines {
        let r: Value = serde_json::from_str(l).unwrap();
        if r["split"] != "train" {
            continue;
        }
        n += 1;
        for (s, v) in sums.iter_mut().zip(r["scores"].as_array().unwrap()) {
            *s += v.as_f64().unwrap();
        }
    }
    let means: Vec<f64> = sums.iter().map(|s| s / n as f64).collect();
    let mut order: Vec<usize> = (0..models.len()).collect();
    order.sort_by(|&a, &b| means[a].total_cmp(&means[b]));
    let eligible: Vec<&String> = order
        .iter()
        .filter(|&&j| means[j] > 0.1 && means[j] <= 0.9)
        .map(|&j| &models[j])
        .collect();
    for p in pools(&built)
        .iter()
        .filter(|p| p["group"] == "strong_to_weak")
    {
        let m = p["m"].as_u64().unwrap() as usize;
        let (size, extra) = (eligible.len() / m, eligible.len() % m);
        let mut at = 0;
        for (b, name) in names(p).iter().enumerate() {
            let end = at + size + usize::from(b < extra);
            assert!(
                eligible[at..end].contains(&name),
                "m={m}: {name} is not in band {b} ({:?})",
                &eligible[at..end]
            );
            at = end;
        }
    }
    // Nine models cannot fill the hard pools: each is reported, not invented.
    assert_eq!(built["skipped"].as_array().unwrap().len(), 9);
}

#[test]
fn a_population_evaluates_directly_with_dataset() {
    let jsonl = shared("llmrouter/queries.jsonl");
    let out = run(&[
        "--dataset",
        jsonl.to_str().unwrap(),
        "--router",
        "knn",
        "--router",
        "oracle",
        "--format",
        "json",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v = out.json();
    let rows = v["results"].as_array().unwrap();
    assert_eq!(rows.len(), 12, "6 pools x 2");
    for r in rows {
        assert_eq!(r["benchmark"], "llmrouter");
        let mu = r["mu"].as_f64().unwrap();
        assert!((0.2..=1.0).contains(&mu), "{r}");
    }
}

#[test]
fn import_errors_name_the_file_the_line_and_the_fix() {
    let dir = TempDir::new("import-errors");
    let jsonl = dir.path().join("queries.jsonl");
    std::fs::write(
        &jsonl,
        "{\"models\": [\"a\", \"b\"]}\n{\"row\": 0, \"task\": \"t\", \"prompt\": \"p\", \"scores\": [1, 0]}\n",
    )
    .unwrap();
    let out = run(&["build-dataset", jsonl.to_str().unwrap()]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("has no embeddings") && out.stderr.contains("--embeddings FILE.npy"),
        "{}",
        out.stderr
    );
    std::fs::write(
        &jsonl,
        "{\"models\": [\"a\", \"b\"]}\n{\"row\": 0, \"scores\": [1, 0, 1]}\n",
    )
    .unwrap();
    let out = run(&["build-dataset", jsonl.to_str().unwrap()]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("line 2: 3 scores for 2 models"),
        "{}",
        out.stderr
    );
    std::fs::write(&jsonl, "{\"model\": [\"a\"]}\n").unwrap();
    let out = run(&["build-dataset", jsonl.to_str().unwrap()]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("line 1 must be {\"models\""),
        "{}",
        out.stderr
    );
}
