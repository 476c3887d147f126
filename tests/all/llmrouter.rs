//! The real LLMRouter data: numbers checked against brute force computed here, and against the
//! original RouterEval scripts' output.

use routereval_engine::data::embedded::LLMROUTER_PICKLE;
use routereval_engine::data::load::load_pickle_file;
use serde_json::Value;

use crate::util::{close, find, results_without_times, run, sha16, shared};

const PKL: &str = "llmrouter/llmrouter_router_dataset.pkl";

/// (m, group, mu, vb, ep) printed by RouterEval's `router/PRKnn-knn/knn.py --knearest 5` and
/// `router/R_o/r_o_router.py --p 1.0` (commit 2edf54d) on this file, driven as `test_router.py`
/// drives them (numpy 2.4, scikit-learn 1.9).
const REF_KNN: [(u64, &str, f64, f64, f64); 6] = [
    (
        3,
        "all_strong",
        0.5922442509342806,
        0.9881458129005453,
        1.5723167144799224,
    ),
    (
        3,
        "all_weak",
        0.30688119211136766,
        1.002392119809707,
        1.5647098856587853,
    ),
    (
        3,
        "strong_to_weak",
        0.5727057374394317,
        1.0498492484276543,
        1.5563427306289608,
    ),
    (
        5,
        "all_strong",
        0.6171110360142096,
        1.0296354677486363,
        2.305143708934187,
    ),
    (
        5,
        "all_weak",
        0.4983107713044405,
        0.9397083823567892,
        2.2792931281411835,
    ),
    (
        5,
        "strong_to_weak",
        0.5869156541314386,
        0.9792551725759543,
        2.2782106228931007,
    ),
];
const REF_ORACLE: [(u64, &str, f64, f64, f64); 6] = [
    (
        3,
        "all_strong",
        0.7386923229595027,
        1.2324910284949453,
        1.2168810698937993,
    ),
    (
        3,
        "all_weak",
        0.4278084363856128,
        1.397387055461603,
        1.1151624597233771,
    ),
    (
        3,
        "strong_to_weak",
        0.7027704483103019,
        1.288275948263509,
        1.0753887448743902,
    ),
    (
        5,
        "all_strong",
        0.7742797373213144,
        1.291867804948421,
        1.8064173821186542,
    ),
    (
        5,
        "all_weak",
        0.6550787341333925,
        1.2353394969918,
        1.4824110869395177,
    ),
    (
        5,
        "strong_to_weak",
        0.761782909105151,
        1.2710171365681726,
        1.6017763280781774,
    ),
];

#[test]
fn embedded_pickle_is_the_released_file() {
    let shared_bytes = std::fs::read(shared(PKL)).unwrap();
    assert_eq!(sha16(LLMROUTER_PICKLE), "b612408c460f9446");
    assert!(LLMROUTER_PICKLE == shared_bytes.as_slice());
}

fn json_run(extra: &[&str]) -> Vec<Value> {
    let path = shared(PKL);
    let mut args = vec!["--dataset", path.to_str().unwrap(), "--format", "json"];
    args.extend_from_slice(extra);
    let out = run(&args);
    assert_eq!(out.code, 0, "{}", out.stderr);
    results_without_times(&out.json())
}

#[test]
fn matches_the_original_routereval_scripts() {
    let rs = json_run(&["--router", "knn", "--router", "oracle"]);
    for (m, g, mu, vb, ep) in REF_KNN {
        let r = find(&rs, "knn", m, g);
        // Identical choices, so mu and V_B agree to the last bit.
        assert_eq!(r["mu"].as_f64().unwrap(), mu, "knn mu m={m} {g}");
        assert!(
            close(r["vb"].as_f64().unwrap(), vb, 1e-12),
            "knn vb m={m} {g}"
        );
        // Ep differs in the 5th decimal: 3 test queries have a tie at the 5th neighbour
        // (duplicate prompts in train); scikit-learn takes an arbitrary one of the tied
        // neighbours, we take the earliest. The tie changes a belief row, never the choice.
        assert!(
            close(r["ep"].as_f64().unwrap(), ep, 1e-4),
            "knn ep m={m} {g}: {}",
            r["ep"]
        );
        assert!(r["vr"].is_null());
    }
    for (m, g, mu, vb, ep) in REF_ORACLE {
        let r = find(&rs, "oracle", m, g);
        assert_eq!(r["mu"].as_f64().unwrap(), mu, "oracle mu m={m} {g}");
        assert!(
            close(r["vb"].as_f64().unwrap(), vb, 1e-12),
            "oracle vb m={m} {g}"
        );
        assert!(
            close(r["ep"].as_f64().unwrap(), ep, 1e-12),
            "oracle ep m={m} {g}"
        );
    }
}

/// Cosine kNN by brute force in f64: full stable sort of every training query.
fn brute_knn(
    train: &[f32],
    test: &[f32],
    d: usize,
    scores: &[f32],
    m: usize,
    k: usize,
) -> Vec<Vec<f64>> {
    let norm = |v: &[f32]| {
        v.iter()
            .map(|&x| f64::from(x) * f64::from(x))
            .sum::<f64>()
            .sqrt()
    };
    let nt = train.len() / d;
    test.chunks(d)
        .map(|q| {
            let nq = norm(q);
            let sims: Vec<f64> = train
                .chunks(d)
                .map(|t| {
                    let dot: f64 = q
                        .iter()
                        .zip(t)
                        .map(|(&a, &b)| f64::from(a) * f64::from(b))
                        .sum();
                    dot / (nq * norm(t))
                })
                .collect();
            let mut idx: Vec<usize> = (0..nt).collect();
            idx.sort_by(|&a, &b| sims[b].total_cmp(&sims[a]));
            let mut mean = vec![0.0; m];
            for &t in &idx[..k] {
                for j in 0..m {
                    mean[j] += f64::from(scores[t * m + j]) / k as f64;
                }
            }
            mean
        })
        .collect()
}

#[test]
fn matches_brute_force() {
    let ds = load_pickle_file(&shared(PKL)).unwrap();
    let rs = json_run(&[
        "--router",
        "knn",
        "--router",
        "oracle",
        "--router",
        "random",
        "--router",
        "r_o:p=0.25",
        "--router",
        "best-on-train",
    ]);
    let d = ds.train.embeddings.cols();
    for pool in &ds.pools {
        let (m, g) = (pool.m(), pool.group.as_str());
        let s = &pool.test_scores;
        let n = s.rows();
        // Oracle: best score per query; random: mean score.
        let oracle: f64 = (0..n)
            .map(|i| s.row(i).iter().cloned().fold(f64::MIN, f64::max))
            .sum::<f64>()
            / n as f64;
        let random: f64 = s.as_slice().iter().sum::<f64>() / (n * m) as f64;
        let best: f64 = (0..m)
            .map(|j| (0..n).map(|i| s.get(i, j)).sum::<f64>() / n as f64)
            .fold(0.0, f64::max);
        let get = |r: &str, f: &str| find(&rs, r, m as u64, g)[f].as_f64().unwrap();
        assert!(close(get("oracle", "mu"), oracle, 1e-12));
        assert!(close(get("random", "mu"), random, 1e-12));
        assert!(close(get("random", "ep"), (m as f64).log2(), 1e-12));
        assert!(close(
            get("r_o:p=0.25", "mu"),
            0.25 * oracle + 0.75 * random,
            1e-12
        ));
        assert!(close(get("oracle", "vb"), oracle / best, 1e-12));
        // best-on-train: the candidate with the best training mean (the first on ties), every
        // query, all belief on it.
        let t = &pool.train_scores;
        let train_mean = |j: usize| (0..t.rows()).map(|i| f64::from(t.get(i, j))).sum::<f64>();
        let on_train = (0..m).fold(0, |b, j| if train_mean(j) > train_mean(b) { j } else { b });
        let its_mu = (0..n).map(|i| s.get(i, on_train)).sum::<f64>() / n as f64;
        assert!(
            close(get("best-on-train", "mu"), its_mu, 1e-12),
            "m={m} {g}"
        );
        assert_eq!(get("best-on-train", "ep"), 0.0);
        // kNN: choose the argmax of the neighbours' mean score; belief = softmax of it.
        let means = brute_knn(
            ds.train.embeddings.as_slice(),
            ds.test.embeddings.as_slice(),
            d,
            pool.train_scores.as_slice(),
            m,
            5,
        );
        let (mut mu, mut ep) = (0.0, 0.0);
        for (i, mean) in means.iter().enumerate() {
            let c = (0..m).fold(0, |b, j| if mean[j] > mean[b] { j } else { b });
            mu += s.get(i, c);
            let mx = mean.iter().cloned().fold(f64::MIN, f64::max);
            let z: f64 = mean.iter().map(|v| (v - mx).exp()).sum();
            ep -= mean
                .iter()
                .map(|v| {
                    let p = (v - mx).exp() / z;
                    p * p.log2()
                })
                .sum::<f64>();
        }
        let (mu, ep) = (mu / n as f64, ep / n as f64);
        assert!(
            close(get("knn", "mu"), mu, 1e-12),
            "knn mu m={m} {g}: {} vs {mu}",
            get("knn", "mu")
        );
        // f32 beliefs against f64 here: agreement to about 1e-6.
        assert!(
            close(get("knn", "ep"), ep, 1e-5),
            "knn ep m={m} {g}: {} vs {ep}",
            get("knn", "ep")
        );
    }
}

/// LinearR's mu per pool printed by RouterEval's `MLPR_LinearR/train.py --model linear --lr 0.01
/// --epoch 10 --train-batch 1` (commit 2edf54d, torch 2 on the CPU, `.cuda()` removed) on this
/// file, in the order of [`REF_KNN`]; mean 0.5491.
const REF_LINEAR_MU: [f64; 6] = [0.6112, 0.3201, 0.5759, 0.6271, 0.5319, 0.6287];

/// The same script with `--model mlp` at RouterEval's settings but 5 epochs (100 take about 2.5
/// hours per pool here): the mean mu over the six pools.
const REF_MLP_5_EPOCHS_MEAN_MU: f64 = 0.5548;

fn mu_of(rs: &[Value], router: &str) -> Vec<f64> {
    REF_KNN
        .iter()
        .map(|&(m, g, ..)| find(rs, router, m, g)["mu"].as_f64().unwrap())
        .collect()
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// LinearR and MLPR against the original scripts' numbers. They cannot agree to the bit: the
/// original draws its initial weights and shuffles from torch's generator, ours from the SDK's,
/// so each pool is one draw of the same training procedure. The tolerances are what that allows
/// and what would catch a broken router:
/// - LinearR per pool within 0.01 (measured at most 0.0071), mean within 0.002 (measured 0.0004);
/// - MLPR (5 epochs) mean within 0.008: the original's 0.5548 against ours 0.5588 at seed 0
///   (0.5604 and 0.5570 at seeds 1 and 2, so 0.0056 is seed noise).
///
/// Both, and MF and logreg, must also beat `best-on-train` (mean 0.5300 here, the bar any
/// learned router must clear) by more than 0.01 and `random` in every pool: a router that
/// collapsed to one model, or to noise, fails.
#[test]
fn learned_routers_match_the_original_scripts_and_clear_the_bar() {
    let rs = json_run(&[
        "--router",
        "linear",
        "--router",
        "mlp:epochs=5",
        "--router",
        "best-on-train",
        "--router",
        "random",
        "--router",
        "mf",
        "--router",
        "logreg",
    ]);
    let linear = mu_of(&rs, "linear");
    for (i, (ours, theirs)) in linear.iter().zip(REF_LINEAR_MU).enumerate() {
        assert!(
            (ours - theirs).abs() <= 0.01,
            "LinearR pool {i}: {ours} vs the original's {theirs}"
        );
    }
    let (ours, theirs) = (mean(&linear), mean(&REF_LINEAR_MU));
    assert!(
        (ours - theirs).abs() <= 0.002,
        "LinearR mean {ours} vs {theirs}"
    );
    let mlp = mu_of(&rs, "mlp:epochs=5");
    assert!(
        (mean(&mlp) - REF_MLP_5_EPOCHS_MEAN_MU).abs() <= 0.008,
        "MLPR mean {} vs the original's {REF_MLP_5_EPOCHS_MEAN_MU}",
        mean(&mlp)
    );
    let (bar, random) = (mu_of(&rs, "best-on-train"), mu_of(&rs, "random"));
    // MF and logreg have no original script; they must clear the same bar (measured means
    // 0.5566 and 0.5519).
    let (mf, logreg) = (mu_of(&rs, "mf"), mu_of(&rs, "logreg"));
    for (name, mus) in [
        ("linear", &linear),
        ("mlp", &mlp),
        ("mf", &mf),
        ("logreg", &logreg),
    ] {
        assert!(
            mean(mus) > mean(&bar) + 0.01,
            "{name}: mean {} does not clear best-on-train's {}",
            mean(mus),
            mean(&bar)
        );
        for (i, (a, r)) in mus.iter().zip(&random).enumerate() {
            assert!(a > r, "{name} pool {i}: {a} is no better than random's {r}");
        }
    }
}
