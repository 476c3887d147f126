//! The pickle fixtures of `../shared/data/fixtures`: three encodings of one synthetic dataset
//! (numpy 1 / protocol 2, numpy 1 / protocol 4, numpy 2 / protocol 5), a file of another layout,
//! a truncated file and a malicious one.

use routereval_engine::data::Difficulty;
use routereval_engine::data::load::{from_pickle_bytes, load_pickle_file};
use routereval_engine::data::pickle::{self, ArrayData, PickleErrorKind, Value};

use crate::util::{TempDir, sha16, shared};

const SYNTH: [&str; 3] = [
    "fixtures/synth_numpy1_protocol2.pkl",
    "fixtures/synth_numpy1_protocol4.pkl",
    "fixtures/synth_numpy2_protocol5.pkl",
];

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn f64_bytes(v: &[f64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[test]
fn synthetic_fixtures_decode_to_identical_values() {
    let sets: Vec<_> = SYNTH
        .iter()
        .map(|f| load_pickle_file(&shared(f)).unwrap_or_else(|e| panic!("{f}: {e:#}")))
        .collect();
    // All three encodings decode to the same dataset (source names aside).
    for ds in &sets[1..] {
        let mut a = sets[0].clone();
        a.source = ds.source.clone();
        a.benchmark = ds.benchmark.clone();
        assert_eq!(&a, ds, "{} differs from {}", ds.source, sets[0].source);
    }
    let ds = &sets[0];
    assert_eq!(ds.benchmark, "synth_numpy1_protocol2");
    assert_eq!(ds.acc_ref, None);
    assert_eq!((ds.train.len(), ds.val.len(), ds.test.len()), (192, 24, 24));
    assert_eq!(ds.train.embeddings.cols(), 768);
    let shape: Vec<(Difficulty, usize, &str)> = ds
        .pools
        .iter()
        .map(|p| (p.difficulty, p.m(), p.group.as_str()))
        .collect();
    let mut want = Vec::new();
    for (d, ms) in [
        (Difficulty::Easy, &[3usize, 5][..]),
        (Difficulty::Hard, &[10, 100, 1000][..]),
    ] {
        for &m in ms {
            for g in ["all_strong", "all_weak", "strong_to_weak"] {
                want.push((d, m, g));
            }
        }
    }
    assert_eq!(shape, want);
    // Checksums computed independently with Python and numpy from the same files.
    assert_eq!(
        sha16(&f32_bytes(ds.train.embeddings.as_slice())),
        "51e639e6d36e479b"
    );
    assert_eq!(
        sha16(&f32_bytes(ds.val.embeddings.as_slice())),
        "2caca656e93bb0a5"
    );
    assert_eq!(
        sha16(&f32_bytes(ds.test.embeddings.as_slice())),
        "6cf6186e1161839a"
    );
    let pool = |m: usize, g: &str| {
        ds.pools
            .iter()
            .find(|p| p.m() == m && p.group == g)
            .unwrap()
    };
    assert_eq!(
        sha16(&f64_bytes(
            pool(1000, "strong_to_weak").test_scores.as_slice()
        )),
        "1ef0bbe6d5328821"
    );
    // Train scores are handed to routers as f32; 0/1 scores survive exactly.
    let train: Vec<f64> = pool(1000, "all_weak")
        .train_scores
        .as_slice()
        .iter()
        .map(|&x| f64::from(x))
        .collect();
    assert_eq!(sha16(&f64_bytes(&train)), "2e0191e91c6edd0a");
    let total: f64 = ds
        .pools
        .iter()
        .map(|p| {
            p.train_scores
                .as_slice()
                .iter()
                .map(|&x| f64::from(x))
                .sum::<f64>()
                + p.val_scores
                    .as_slice()
                    .iter()
                    .map(|&x| f64::from(x))
                    .sum::<f64>()
                + p.test_scores.as_slice().iter().sum::<f64>()
        })
        .sum();
    assert_eq!(total, 416866.0);
    assert_eq!(
        pool(3, "all_strong").models,
        ["org/model-0964", "org/model-0332", "org/model-1015"]
    );
    // '<U44' train prompts and object-array val / test prompts.
    assert_eq!(ds.train.prompts[0], "question 226 about topic 2: xxxxx");
    assert_eq!(ds.val.prompts[0], "question 109 about topic 1: xxxxxxx");
    assert_eq!(ds.test.prompts[23], "question 2 about topic 4: xx");
}

#[test]
fn raw_reader_sees_numpy_dtypes() {
    for f in SYNTH {
        let v = pickle::read(&std::fs::read(shared(f)).unwrap()).unwrap();
        let idx = v
            .get("split_index")
            .and_then(|s| s.get("test_indices"))
            .unwrap();
        let Value::Array(a) = idx else {
            panic!("{f}: test_indices is not an array")
        };
        assert_eq!(a.shape, [24]);
        let ArrayData::I64(x) = &a.data else {
            panic!("{f}: test_indices are not integers")
        };
        assert_eq!(&x[..5], &[79, 233, 47, 54, 33], "{f}");
        let Some(Value::Array(p)) = v.get("prompt").and_then(|p| p.get("train_prompt")) else {
            panic!("{f}: no train_prompt array")
        };
        assert!(matches!(p.data, ArrayData::Str(_)), "{f}");
        let Some(Value::Array(e)) = v.get("embedding").and_then(|p| p.get("train_embed")) else {
            panic!("{f}: no train_embed array")
        };
        assert!(
            matches!(e.data, ArrayData::F32(_)) && e.shape == [192, 768],
            "{f}"
        );
    }
}

#[test]
fn external_layout_is_explained() {
    let err = load_pickle_file(&shared("fixtures/external_toy_router_dataset.pkl")).unwrap_err();
    let msg = format!("{err:#}");
    for needle in [
        "external_toy_router_dataset.pkl",
        "not a RouterEval router dataset",
        "found top-level keys 'data', 'model', 'prompt'",
        "missing 'easy'/'hard'",
        "'embedding'",
        "single pool of 2 models (mistralai/Mixtral-8x7B-Instruct-v0.1, gpt-4-1106-preview)",
        "'train_tokens'",
        "Routers need an embedding per query",
    ] {
        assert!(msg.contains(needle), "`{needle}` not in: {msg}");
    }
}

#[test]
fn truncated_file_is_reported_as_truncated() {
    let bytes = std::fs::read(shared("fixtures/truncated_router_dataset.pkl")).unwrap();
    let e = pickle::read(&bytes).unwrap_err();
    assert_eq!(e.kind, PickleErrorKind::Truncated, "{e}");
    assert!(e.message.contains("truncated"), "{e}");
    let err = from_pickle_bytes(&bytes, "t", "truncated_router_dataset.pkl").unwrap_err();
    assert!(
        format!("{err:#}").contains("truncated_router_dataset.pkl"),
        "{err:#}"
    );
}

#[test]
fn malicious_file_is_refused_and_runs_nothing() {
    let dir = TempDir::new("malicious");
    let path = shared("fixtures/malicious_router_dataset.pkl");
    let bytes = std::fs::read(&path).unwrap();
    let e = pickle::read(&bytes).unwrap_err();
    assert_eq!(e.kind, PickleErrorKind::RefusedGlobal);
    assert!(e.message.contains("`posix.system`"), "{e}");
    // Through the engine binary, working in a scratch directory: the pickle's command would
    // `touch` a file in the working directory if anything ran it.
    let out = crate::util::run_binary_in(
        dir.path(),
        &[std::ffi::OsStr::new("--dataset"), path.as_os_str()],
    );
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains("refused global `posix.system`"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("malicious_router_dataset.pkl"),
        "{}",
        out.stderr
    );
    assert!(!dir.path().join("routereval-pickle-executed").exists());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
