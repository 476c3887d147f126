//! The example runs as its docs say: its own router next to the built-in ones, with the numbers
//! the router's rule gives (checked by brute force on the embedded data).

use routereval_engine::data::embedded::default_dataset;

#[test]
fn best_on_val_runs_next_to_the_builtins_with_its_rules_numbers() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_embed-engine"))
        .args([
            "--router",
            "best-on-val",
            "--router",
            "best-on-train",
            "--format",
            "json",
        ])
        .output()
        .expect("run the example");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let rows = v["results"].as_array().unwrap();
    let ds = default_dataset().unwrap();
    assert_eq!(rows.len(), 2 * ds.pools.len());
    for pool in &ds.pools {
        // The rule: the candidate with the best mean validation score (the first on ties).
        let val = &pool.val_scores;
        let means: Vec<f64> = (0..val.cols())
            .map(|j| {
                (0..val.rows())
                    .map(|i| f64::from(val.get(i, j)))
                    .sum::<f64>()
            })
            .collect();
        let best = (0..means.len()).fold(0, |b, j| if means[j] > means[b] { j } else { b });
        let test = &pool.test_scores;
        let mu = (0..test.rows()).map(|i| test.get(i, best)).sum::<f64>() / test.rows() as f64;
        let row = rows
            .iter()
            .find(|r| {
                r["router"] == "best-on-val" && r["m"] == pool.m() && r["group"] == pool.group
            })
            .unwrap_or_else(|| panic!("no best-on-val row for m={} {}", pool.m(), pool.group));
        let got = row["mu"].as_f64().unwrap();
        assert!(
            (got - mu).abs() < 1e-12,
            "m={} {}: {got} vs {mu}",
            pool.m(),
            pool.group
        );
        assert_eq!(row["kind"], "builtin");
    }
}
