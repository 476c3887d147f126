//! Results pinned before the restructure (issue 18): the quick configuration on the embedded data
//! and on a small synthetic suite gives, row for row, the same mu, V_R, V_B and Ep to the last bit
//! as the build that recorded `tests/fixtures/pinned/*.json` (commit `ab382d4`). A change that is
//! not meant to change numbers must keep this test passing; one that is must re-record the files
//! and say why in its commit.

use serde_json::Value;

use crate::util::{TempDir, root, run};

/// The fields compared: a row's identity, its status and its metrics.
const KEYS: [&str; 11] = [
    "benchmark",
    "difficulty",
    "m",
    "group",
    "router",
    "kind",
    "status",
    "mu",
    "vr",
    "vb",
    "ep",
];

fn pinned(name: &str) -> Vec<Value> {
    let path = root().join("tests/fixtures/pinned").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Runs the quick configuration with `extra` arguments and compares every row with `name`.
fn assert_pinned(name: &str, extra: &[&str]) {
    let config = root().join("configs/quick.toml");
    let mut args = vec!["--config", config.to_str().unwrap(), "--format", "json"];
    args.extend_from_slice(extra);
    let out = run(&args);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let got = out.json()["results"].as_array().expect("results").clone();
    let want = pinned(name);
    assert_eq!(got.len(), want.len(), "{name}: number of rows");
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        for key in KEYS {
            // serde_json keeps every f64 exactly (shortest round-trip), so equality of the JSON
            // values is equality of the bits.
            assert_eq!(
                g[key], w[key],
                "{name}, row {i} ({} {} m={} {} {}): `{key}` differs from the pinned value",
                w["benchmark"], w["difficulty"], w["m"], w["group"], w["router"]
            );
        }
    }
}

#[test]
fn quick_config_on_the_embedded_data_is_unchanged() {
    assert_pinned("quick-embedded.json", &[]);
}

#[test]
fn quick_config_on_a_small_synthetic_suite_is_unchanged() {
    let dir = TempDir::new("pinned-synth");
    let suite = dir.path().join("suite");
    let s = suite.to_str().unwrap();
    let out = run(&[
        "synth",
        "-o",
        s,
        "--benchmarks",
        "gsm8k,mmlu",
        "--sizes",
        "3,5,10",
        "--models",
        "60",
        "--dim",
        "32",
        "--scale",
        "0.1",
        "--draws",
        "20",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_pinned("quick-synth.json", &["--dataset", s]);
}
