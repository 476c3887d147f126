//! Router output validation and failure isolation: routers written against the SDK that
//! misbehave each fail their own evaluations with a typed error, and the run goes on.

use routereval_engine::Registry;
use routereval_sdk::{Params, Queries, Router, RouterError, Routing, Split};

use crate::util::{find, results_without_times, run_with};

/// A router whose output (or failure) is chosen by its `mode` parameter.
struct Misbehaving {
    mode: String,
    m: usize,
}

impl Router for Misbehaving {
    fn new(params: &Params) -> Result<Self, RouterError> {
        params.expect_only(&["mode"])?;
        Ok(Misbehaving {
            mode: params.str_or("mode", "ok"),
            m: 0,
        })
    }

    fn fit(&mut self, train: &Split<'_>, _val: &Split<'_>) -> Result<(), RouterError> {
        self.m = train.num_candidates();
        if self.mode == "fit-error" {
            return Err(RouterError::Fit("the training data made me sad".into()));
        }
        Ok(())
    }

    fn route(&self, q: &Queries<'_>) -> Result<Routing, RouterError> {
        let (n, m) = (q.len(), self.m);
        let uniform = vec![1.0 / m as f32; n * m];
        match self.mode.as_str() {
            "ok" => Routing::from_belief(n, m, uniform),
            "nan" => {
                let mut b = uniform;
                b[7 * m + 1] = f32::NAN;
                Routing::from_belief(n, m, b)
            }
            "negative" => {
                let mut b = uniform;
                b[2 * m] = -0.5;
                b[2 * m + 1] += 0.5;
                Routing::from_belief(n, m, b)
            }
            "unnormalised" => Routing::from_belief(n, m, vec![1.0; n * m]),
            "shape" => Routing::from_belief(n - 1, m, vec![1.0 / m as f32; (n - 1) * m]),
            "choice" => Routing::from_belief(n, m, uniform)?.with_choices(vec![m as u32; n]),
            "panic" => panic!("index out of bounds in my router"),
            other => Err(RouterError::Route(format!("unknown mode {other}"))),
        }
    }
}

fn registry() -> Registry {
    let mut r = Registry::builtin();
    r.register::<Misbehaving>("bad", "misbehaves on purpose", "mode")
        .unwrap();
    r
}

#[test]
fn each_bad_output_fails_alone_with_its_kind() {
    let modes = [
        (
            "nan",
            "invalid_output",
            "invalid output: row 7: the belief in candidate 1 is NaN",
        ),
        (
            "negative",
            "invalid_output",
            "invalid output: row 2: the belief in candidate 0 is negative (-0.5)",
        ),
        (
            "unnormalised",
            "invalid_output",
            "invalid output: row 0: the belief sums to 3, not 1",
        ),
        (
            "shape",
            "invalid_output",
            "invalid output: the belief is 562 x 3, expected 563 x 3",
        ),
        (
            "choice",
            "invalid_output",
            "invalid output: row 0: the choice 3 is out of range for 3 candidates",
        ),
        (
            "fit-error",
            "fit_error",
            "`fit` returned an error: fit failed: the training data made me sad",
        ),
        (
            "panic",
            "panic",
            "panicked: index out of bounds in my router",
        ),
    ];
    let mut args = vec![
        "--format",
        "json",
        "--candidates",
        "3",
        "--router",
        "knn",
        "--router",
        "bad:mode=ok",
    ];
    let specs: Vec<String> = modes
        .iter()
        .map(|(m, _, _)| format!("bad:mode={m}"))
        .collect();
    for s in &specs {
        args.extend(["--router", s.as_str()]);
    }
    let out = run_with(&registry(), &args);
    assert_eq!(out.code, 1, "some evaluations failed: {}", out.stderr);
    let rs = results_without_times(&out.json());
    assert_eq!(rs.len(), 3 * (2 + modes.len()));
    for g in ["all_strong", "all_weak", "strong_to_weak"] {
        assert_eq!(find(&rs, "knn", 3, g)["status"], "ok");
        let ok = find(&rs, "bad:mode=ok", 3, g);
        assert_eq!(ok["status"], "ok");
        assert!((ok["ep"].as_f64().unwrap() - 3f64.log2()).abs() < 1e-6);
        for (mode, kind, msg) in modes {
            let r = find(&rs, &format!("bad:mode={mode}"), 3, g);
            assert_eq!(r["status"], "failed", "{r}");
            assert!(r["mu"].is_null());
            assert_eq!(r["error"]["kind"], kind, "{r}");
            let m = r["error"]["message"].as_str().unwrap();
            let where_ = format!("router `bad:mode={mode}` on llmrouter easy m=3 {g}: ");
            assert!(m.starts_with(&where_), "{m}");
            assert!(m.contains(msg), "`{msg}` not in `{m}`");
        }
    }
}

#[test]
fn table_marks_failed_cells_and_lists_failures() {
    let out = run_with(
        &registry(),
        &[
            "--candidates",
            "3",
            "--router",
            "knn",
            "--router",
            "bad:mode=nan",
        ],
    );
    assert_eq!(out.code, 1);
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with("bad:mode=nan"))
        .unwrap();
    assert!(line.contains("failed"), "{line}");
    assert!(out.stdout.contains("failed evaluations:\n  [invalid_output] router `bad:mode=nan` on llmrouter easy m=3 all_strong"), "{}", out.stdout);
}

#[test]
fn the_example_router_runs_through_the_engine() {
    let mut reg = Registry::builtin();
    let out = run_with(&reg, &["--format", "json", "--router", "best-on-train"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let rs = results_without_times(&out.json());
    for r in &rs {
        // A one-hot belief has no entropy, and here the best model on train is also the best on
        // test in every pool.
        assert_eq!(r["ep"].as_f64().unwrap(), 0.0);
        assert_eq!(r["vb"].as_f64().unwrap(), 1.0, "{r}");
    }
    assert!(
        reg.register::<routereval_plugin_best_on_train::BestOnTrain>("oracle", "x", "")
            .is_err()
    );
}
