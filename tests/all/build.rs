//! Building router datasets from populations (`build-dataset`, and `--dataset` on an importer
//! format), checked against the released LLMRouter pickle, which was built from the same train
//! rows by RouterEval's own `select_candidates`.

use serde_json::Value;

use crate::util::{TempDir, pythons_with, run, shared, skip};

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
    let released = routereval_engine::data::load::load_path(&pkl)
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

/// Writes `text` to `path`, runs `build-dataset` on it, and checks it is refused (exit 2) with a
/// message containing every one of `needles`.
fn refused(path: &std::path::Path, text: &str, needles: &[&str]) {
    std::fs::write(path, text).unwrap();
    let out = run(&["build-dataset", path.to_str().unwrap()]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    for n in needles {
        assert!(out.stderr.contains(n), "`{n}` not in {}", out.stderr);
    }
}

#[test]
fn import_errors_name_the_file_the_line_and_the_fix() {
    let dir = TempDir::new("import-errors");
    let jsonl = dir.path().join("queries.jsonl");
    refused(
        &jsonl,
        "{\"models\": [\"a\", \"b\"]}\n{\"row\": 0, \"task\": \"t\", \"prompt\": \"p\", \"scores\": [1, 0]}\n",
        &["has no embeddings", "--embeddings FILE.npy"],
    );
    refused(
        &jsonl,
        "{\"models\": [\"a\", \"b\"]}\n{\"row\": 0, \"scores\": [1, 0, 1]}\n",
        &["line 2: 3 scores for 2 models"],
    );
    refused(
        &jsonl,
        "{\"model\": [\"a\"]}\n",
        &["line 1 must be {\"models\""],
    );
}

#[test]
fn exported_pickles_load_in_python_with_numpy() {
    let dir = TempDir::new("export");
    let out_pkl = dir.path().join("llmrouter_router_dataset.pkl");
    let jsonl = shared("llmrouter/queries.jsonl");
    let out = run(&[
        "build-dataset",
        jsonl.to_str().unwrap(),
        "--rows",
        "train",
        "-o",
        out_pkl.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    // The engine reads its own export back.
    let ours = routereval_engine::data::load::load_path(&out_pkl)
        .unwrap()
        .remove(0);
    assert_eq!(ours.pools.len(), 6);
    assert_eq!(ours.split_indices.as_ref().map(|s| s[2].len()), Some(563));
    let pythons = pythons_with(&["numpy"]);
    let test = "exported_pickles_load_in_python_with_numpy";
    if pythons.is_empty() {
        skip(
            test,
            "no Python with numpy (set ROUTEREVAL_PYTHONS; .ci/run installs numpy 1 and 2)",
        );
        return;
    }
    // Both numpy lines read the export: with only one found, the other's check is a skip.
    for major in ["1", "2"] {
        if !pythons
            .iter()
            .any(|(_, v)| v.split('.').next() == Some(major))
        {
            skip(
                test,
                &format!("no Python with numpy {major}.x (set ROUTEREVAL_PYTHONS to both)"),
            );
        }
    }
    let script = r#"
import json, pickle, sys, warnings
import numpy as np
warnings.simplefilter("error")  # a deprecation on load would be a bug of the export
d = pickle.load(open(sys.argv[1], "rb"))
out = {"keys": sorted(d.keys()), "hard": len(d["hard"]), "pools": []}
for m in sorted(d["easy"]):
    for g in ("all_strong", "all_weak", "strong_to_weak"):
        p = d["easy"][m][g]
        out["pools"].append({"m": m, "group": g, "models": [str(x) for x in p["model"]],
            "dtype": str(p["data"]["train_score"].dtype),
            "train_sum": float(p["data"]["train_score"].sum()),
            "test_sum": float(p["data"]["test_score"].sum()),
            "shape": list(p["data"]["test_score"].shape)})
e = d["embedding"]["train_embed"]
out["embed"] = [str(e.dtype), list(e.shape), float(e.astype(np.float64).sum())]
out["prompt0"] = str(d["prompt"]["val_prompt"][0])
out["prompt_dtype"] = str(d["prompt"]["val_prompt"].dtype)
out["split"] = [int(len(d["split_index"][k])) for k in ("train_indices", "val_indices", "test_indices")]
out["rule"] = d["pool_selection"]
print(json.dumps(out))
"#;
    for (py, version) in pythons {
        let o = std::process::Command::new(&py)
            .args(["-c", script, out_pkl.to_str().unwrap()])
            .output()
            .expect("run python");
        assert!(
            o.status.success(),
            "{py} (numpy {version}) cannot load the export: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let v: Value = serde_json::from_slice(&o.stdout).expect("json from python");
        println!("{py}: numpy {version} loads the export");
        assert_eq!(
            v["keys"],
            serde_json::json!([
                "easy",
                "embedding",
                "hard",
                "pool_selection",
                "prompt",
                "split_index"
            ])
        );
        // Which items chose the pools: a plain str, RouterEval's rule by default.
        assert_eq!(v["rule"], "all");
        assert_eq!(v["hard"], 0);
        assert_eq!(v["split"], serde_json::json!([4484, 561, 563]));
        assert_eq!(v["embed"][0], "float32");
        assert_eq!(v["embed"][1], serde_json::json!([4484, 384]));
        let our_embed: f64 = ours
            .train
            .embeddings
            .as_slice()
            .iter()
            .map(|&x| f64::from(x))
            .sum();
        // The same float32 values summed in float64 in another order (numpy's pairwise sum):
        // equal to rounding, about 1e-16 of the sum of magnitudes per term, not 1e-3.
        let magnitude: f64 = ours
            .train
            .embeddings
            .as_slice()
            .iter()
            .map(|&x| f64::from(x).abs())
            .sum();
        let theirs = v["embed"][2].as_f64().unwrap();
        assert!(
            (theirs - our_embed).abs() < 1e-10 * magnitude,
            "numpy's sum {theirs} vs ours {our_embed}"
        );
        assert_eq!(v["prompt0"], ours.val.prompts[0].as_str());
        assert_eq!(v["prompt_dtype"], "object");
        for p in v["pools"].as_array().unwrap() {
            let q = ours
                .pools
                .iter()
                .find(|q| q.m() as u64 == p["m"] && q.group == p["group"])
                .expect("pool");
            assert_eq!(names(p), q.models);
            assert_eq!(p["dtype"], "float64");
            let train: f64 = q
                .train_scores
                .as_slice()
                .iter()
                .map(|&x| f64::from(x))
                .sum();
            let test: f64 = q.test_scores.as_slice().iter().sum();
            assert!((p["train_sum"].as_f64().unwrap() - train).abs() < 1e-6);
            assert!((p["test_sum"].as_f64().unwrap() - test).abs() < 1e-9);
            assert_eq!(p["shape"], serde_json::json!([563, q.m()]));
        }
    }
}

#[test]
fn inspect_shows_pools_accuracies_leakage_and_checksums() {
    let pkl = shared("llmrouter/llmrouter_router_dataset.pkl");
    let out = run(&["inspect", pkl.to_str().unwrap(), "--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v = out.json();
    let r = &v[0];
    assert_eq!(r["benchmark"], "llmrouter");
    assert_eq!(r["sha256"], crate::util::sha256_file(pkl.to_str().unwrap()));
    assert!(
        r["sha256"]
            .as_str()
            .unwrap()
            .starts_with("b612408c460f9446")
    );
    // Brute force from the decoded file, pool by pool: each model's test mean, the oracle.
    let ds = routereval_engine::data::load::load_path(&pkl)
        .unwrap()
        .remove(0);
    assert_eq!(r["queries"], serde_json::json!([4484, 561, 563]));
    assert_eq!(r["dim"], 384);
    assert_eq!(r["prompts"], true);
    let pools = r["pools"].as_array().unwrap();
    assert_eq!(pools.len(), 6);
    for (p, pool) in pools.iter().zip(&ds.pools) {
        assert_eq!(p["group"], pool.group.as_str());
        let t = &p["test"];
        let scores = &pool.test_scores;
        let n = scores.rows() as f64;
        let col_means: Vec<f64> = (0..scores.cols())
            .map(|j| (0..scores.rows()).map(|i| scores.get(i, j)).sum::<f64>() / n)
            .collect();
        let oracle_bf = (0..scores.rows())
            .map(|i| scores.row(i).iter().copied().fold(0.0, f64::max))
            .sum::<f64>()
            / n;
        let (oracle, best) = (
            t["oracle"].as_f64().unwrap(),
            t["best_single"].as_f64().unwrap(),
        );
        assert!(
            oracle > best,
            "oracle {oracle} <= best single {best} in {p}"
        );
        let means: Vec<f64> = t["model_means"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        assert_eq!(means.len(), p["m"].as_u64().unwrap() as usize);
        for (a, b) in means.iter().zip(&col_means) {
            assert!((a - b).abs() < 1e-12, "model mean {a} vs brute force {b}");
        }
        let best_bf = col_means.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        assert!((best - best_bf).abs() < 1e-12, "{best} vs {best_bf}");
        assert!(
            (oracle - oracle_bf).abs() < 1e-12,
            "{oracle} vs {oracle_bf}"
        );
        assert_eq!(t["n"], 563);
    }
    // LLMRouter's scores are mostly 0/1; some are fractional.
    let frac = pools[0]["train"]["fractional"].as_f64().unwrap();
    assert!(frac > 0.0 && frac < 0.1, "{frac}");
    // Duplicate prompts exist in LLMRouter's data (the README of ../shared says so).
    let shared_prompts = &r["shared_prompts"];
    let test_in_train = |ds: &routereval_engine::data::RouterDataset| {
        let train: std::collections::HashSet<&str> =
            ds.train.prompts.iter().map(String::as_str).collect();
        ds.test
            .prompts
            .iter()
            .filter(|p| !p.is_empty() && train.contains(p.as_str()))
            .count()
    };
    assert_eq!(shared_prompts["test_in_train"], test_in_train(&ds));
    // The whole population (train.json and test.json rows, 119 of whose test prompts are also
    // in train) split by RouterEval's rules: some duplicates land in both splits.
    let jsonl = shared("llmrouter/queries.jsonl");
    let all = run(&["inspect", jsonl.to_str().unwrap(), "--format", "json"]).json();
    let built = routereval_engine::data::load::load_path(&jsonl)
        .unwrap()
        .remove(0);
    let expected = test_in_train(&built);
    assert!(expected > 0, "no duplicate prompt crossed the split");
    assert_eq!(all[0]["shared_prompts"]["test_in_train"], expected);
    // The table form names every pool and the checksum.
    let text = run(&["inspect", pkl.to_str().unwrap()]);
    assert_eq!(text.code, 0);
    assert!(
        text.stdout.contains("sha256 b612408c460f9446"),
        "{}",
        text.stdout
    );
    assert_eq!(
        text.stdout.matches("strong_to_weak").count(),
        2,
        "{}",
        text.stdout
    );
}

#[test]
fn a_wide_csv_imports_builds_and_evaluates() {
    let dir = TempDir::new("csv");
    let (n, d) = (60usize, 4usize);
    let mut csv = String::from("prompt,task,model-a,model-b,model-c\n");
    let mut emb = Vec::new();
    for i in 0..n {
        let task = if i % 3 == 0 { "algebra" } else { "history" };
        // model-a is right on algebra, model-b on history, model-c on every fourth query.
        let a = u8::from(task == "algebra");
        let b = u8::from(task == "history");
        let c = u8::from(i % 4 == 0);
        csv.push_str(&format!(
            "\"question {i}, about {task}\",{task},{a},{b},{c}\n"
        ));
        // Topic directions: the first axis for algebra, the second for history, a little noise.
        let alg = f32::from(u8::from(task == "algebra"));
        emb.extend([alg, 1.0 - alg, 0.01 * (i % 7) as f32, 0.01 * (i % 3) as f32]);
    }
    let path = dir.path().join("toy.csv");
    std::fs::write(&path, csv).unwrap();
    let arr = ndarray::Array2::from_shape_vec((n, d), emb).unwrap();
    ndarray_npy::write_npy(dir.path().join("toy_embeddings.npy"), &arr).unwrap();
    let out = run(&[
        "build-dataset",
        path.to_str().unwrap(),
        "--sizes",
        "3",
        "--format",
        "json",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v = out.json();
    assert_eq!(v["benchmark"], "toy");
    assert_eq!(v["models"], 3);
    // 20 algebra queries: 16 / 2 / 2; 40 history: 32 / 4 / 4.
    assert_eq!(
        v["split"],
        serde_json::json!({"train": 48, "val": 6, "test": 6})
    );
    assert_eq!(pools(&v).len(), 3);
    // Evaluated directly: kNN learns the topic -> model mapping from the embeddings, and
    // matches the oracle.
    let out = run(&[
        "--dataset",
        path.to_str().unwrap(),
        "-r",
        "knn",
        "-r",
        "oracle",
        "--format",
        "json",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v = out.json();
    for r in v["results"].as_array().unwrap() {
        assert_eq!(r["mu"].as_f64().unwrap(), 1.0, "{r}");
    }
    // A score that is not a number is named by line and column.
    refused(
        &path,
        "prompt,model-a\nhello,yes\n",
        &["line 2, column `model-a`: `yes` is not a finite number"],
    );
    refused(
        &path,
        "question,model-a\nhello,1\n",
        &["has no `prompt` column"],
    );
}

#[test]
fn routereval_npz_evaluates_like_the_pool_it_came_from() {
    use ndarray::Array2;
    let pkl = shared("llmrouter/llmrouter_router_dataset.pkl");
    let ds = routereval_engine::data::load::load_path(&pkl)
        .unwrap()
        .remove(0);
    let pool = ds
        .pools
        .iter()
        .find(|p| p.m() == 3 && p.group == "all_strong")
        .unwrap();
    // What RouterEval's test_router.py writes for this pool with np.savez.
    let dir = TempDir::new("npz");
    let npz_path = dir.path().join("tmp_perf.npz");
    let mut npz = ndarray_npy::NpzWriter::new(std::fs::File::create(&npz_path).unwrap());
    let f32m = |m: &routereval_engine::data::Matrix<f32>| {
        Array2::from_shape_vec((m.rows(), m.cols()), m.as_slice().to_vec()).unwrap()
    };
    let f64m = |m: &routereval_engine::data::Matrix<f32>| f32m(m).mapv(f64::from);
    npz.add_array("train_embed", &f32m(&ds.train.embeddings))
        .unwrap();
    npz.add_array("val_embed", &f32m(&ds.val.embeddings))
        .unwrap();
    npz.add_array("test_embed", &f32m(&ds.test.embeddings))
        .unwrap();
    npz.add_array("train_score", &f64m(&pool.train_scores))
        .unwrap();
    npz.add_array("val_score", &f64m(&pool.val_scores)).unwrap();
    let t = &pool.test_scores;
    let test = Array2::from_shape_vec((t.rows(), t.cols()), t.as_slice().to_vec()).unwrap();
    npz.add_array("test_score", &test).unwrap();
    npz.finish().unwrap();
    let from_npz = run(&[
        "--dataset",
        npz_path.to_str().unwrap(),
        "-r",
        "knn",
        "--format",
        "json",
    ]);
    assert_eq!(from_npz.code, 0, "{}", from_npz.stderr);
    let from_pkl = run(&[
        "--dataset",
        pkl.to_str().unwrap(),
        "-r",
        "knn",
        "--candidates",
        "3",
        "--group",
        "all_strong",
        "--format",
        "json",
    ]);
    assert_eq!(from_pkl.code, 0, "{}", from_pkl.stderr);
    let (a, b) = (from_npz.json(), from_pkl.json());
    let (a, b) = (&a["results"][0], &b["results"][0]);
    assert_eq!(a["group"], "npz");
    for f in ["mu", "vb", "ep"] {
        assert_eq!(a[f], b[f], "{f}");
    }
    // A file missing an array names it and the layout.
    let bad = dir.path().join("bad.npz");
    let mut npz = ndarray_npy::NpzWriter::new(std::fs::File::create(&bad).unwrap());
    npz.add_array("train_embed", &f32m(&ds.train.embeddings))
        .unwrap();
    npz.finish().unwrap();
    let out = run(&["--dataset", bad.to_str().unwrap()]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("no 2-D float array `val_embed`"),
        "{}",
        out.stderr
    );
}

/// `--select-on train` chooses the pools on the training split alone: flipping every test
/// label of the population leaves every pool's models as they were, while RouterEval's rule
/// (`all`, the default) lets the test labels move them. `inspect` names the rule.
#[test]
fn select_on_train_keeps_test_labels_out_of_the_pools() {
    let dir = TempDir::new("select-on");
    let jsonl = shared("llmrouter/queries.jsonl");
    let text = std::fs::read_to_string(&jsonl).unwrap();
    let embeddings = shared("llmrouter/embeddings_minilm_l6.npy");
    let build = |input: &std::path::Path, rule: &str, out: &str| -> Value {
        let out = dir.path().join(out);
        let o = run(&[
            "build-dataset",
            input.to_str().unwrap(),
            "--embeddings",
            embeddings.to_str().unwrap(),
            "--rows",
            "train",
            "--select-on",
            rule,
            "-o",
            out.to_str().unwrap(),
            "--format",
            "json",
        ]);
        assert_eq!(o.code, 0, "{}", o.stderr);
        o.json()
    };
    let models = |v: &Value| -> Vec<(u64, String, Vec<String>)> {
        pools(v)
            .iter()
            .map(|p| {
                (
                    p["m"].as_u64().unwrap(),
                    p["group"].as_str().unwrap().to_string(),
                    names(p),
                )
            })
            .collect()
    };
    let train_rule = build(&jsonl, "train", "train.pkl");
    let all_rule = build(&jsonl, "all", "all.pkl");
    // The file records the rule; inspect says it.
    let ds = routereval_engine::data::load::load_path(&dir.path().join("train.pkl"))
        .unwrap()
        .remove(0);
    assert_eq!(
        ds.pool_selection,
        Some(routereval_engine::data::build::SelectOn::Train)
    );
    let shown = run(&["inspect", dir.path().join("train.pkl").to_str().unwrap()]);
    assert!(
        shown
            .stdout
            .contains("pools chosen by: accuracy on the training split only"),
        "{}",
        shown.stdout
    );
    let shown = run(&["inspect", dir.path().join("all.pkl").to_str().unwrap()]);
    assert!(
        shown.stdout.contains("RouterEval's rule"),
        "{}",
        shown.stdout
    );

    // The same population with every test label flipped (score s -> 1 - s). The imported rows
    // are the `train` rows of the file, in order; the split is by task and seed, not labels.
    let test: std::collections::HashSet<i64> = ds.split_indices.as_ref().unwrap()[2]
        .iter()
        .copied()
        .collect();
    assert_eq!(test.len(), 563);
    let mut flipped = String::new();
    let mut imported = 0i64;
    for (i, line) in text.lines().enumerate() {
        let mut v: Value = serde_json::from_str(line).unwrap();
        if i > 0 && v["split"] == "train" {
            if test.contains(&imported) {
                let s: Vec<f64> = v["scores"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| 1.0 - x.as_f64().unwrap())
                    .collect();
                v["scores"] = serde_json::json!(s);
            }
            imported += 1;
        }
        flipped.push_str(&serde_json::to_string(&v).unwrap());
        flipped.push('\n');
    }
    let flipped_path = dir.path().join("queries.jsonl");
    std::fs::write(&flipped_path, flipped).unwrap();
    let train_flipped = build(&flipped_path, "train", "train-flipped.pkl");
    let all_flipped = build(&flipped_path, "all", "all-flipped.pkl");
    assert_eq!(
        models(&train_rule),
        models(&train_flipped),
        "training-split selection must not see the test labels"
    );
    assert_ne!(
        models(&all_rule),
        models(&all_flipped),
        "RouterEval's rule selects on all items, so the test labels move its pools"
    );
    // The flipped test labels did reach the pools' test scores (the data is not ignored).
    assert_ne!(
        pools(&train_rule)[0]["test_oracle"],
        pools(&train_flipped)[0]["test_oracle"]
    );
}
