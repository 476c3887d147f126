//! The command line, run in-process: defaults, options, output formats, errors.

use serde_json::Value;

use crate::util::{TempDir, close, find, results_without_times, run, shared};

#[test]
fn default_run_prints_the_table_on_embedded_data() {
    let out = run(&[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let t = &out.stdout;
    assert!(
        t.starts_with("llmrouter (no reference accuracy: V_R not defined)\n"),
        "{t}"
    );
    for needle in [
        "easy m=3",
        "easy m=5",
        "easy m=9",
        "knn",
        "oracle (bound)",
        "random (bound)",
        "r_o:p=0.5 (bound)",
    ] {
        assert!(t.contains(needle), "`{needle}` missing:\n{t}");
    }
    // Cells are the mean of the three groups (m = 3, 5) or the single all_models pool (m = 9);
    // the knn m=3 cell is the mean of RouterEval's own three numbers (see llmrouter.rs).
    let knn = t.lines().find(|l| l.starts_with("knn ")).unwrap();
    let mu3 = (0.5922442509342806 + 0.30688119211136766 + 0.5727057374394317) / 3.0;
    assert!(knn.contains(&format!("{mu3:.4}")), "{knn}");
    let oracle = t.lines().find(|l| l.starts_with("oracle")).unwrap();
    let o3 = (0.7386923229595027 + 0.4278084363856128 + 0.7027704483103019) / 3.0;
    assert!(oracle.contains(&format!("{o3:.4}")), "{oracle}");
    // The 9-model pool is listed in the footnote with its single group.
    assert!(t.contains("easy m=9: all_models"), "{t}");
}

#[test]
fn run_is_the_default_subcommand() {
    let args = [
        "--router",
        "knn:k=3",
        "--format",
        "json",
        "--candidates",
        "3",
    ];
    let a = run(&args);
    let b = run(&[&["run"][..], &args[..]].concat());
    assert_eq!(a.code, 0, "{}", a.stderr);
    assert_eq!(
        results_without_times(&a.json()),
        results_without_times(&b.json())
    );
    assert_eq!(a.json()["results"][0]["router"], "knn:k=3");
}

#[test]
fn json_has_every_field_and_the_embedded_pools() {
    let out = run(&["--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v = out.json();
    assert_eq!(v["seed"], 0);
    let rs = v["results"].as_array().unwrap();
    // 7 pools (3 + 3 + all_models) x (knn, best-on-train, cluster, linear + 3 bounds; mlp only when asked
    // for).
    assert_eq!(rs.len(), 49);
    assert!(rs.iter().all(|r| r["router"] != "mlp"));
    for r in rs {
        for f in [
            "router",
            "kind",
            "benchmark",
            "difficulty",
            "m",
            "group",
            "mu",
            "vr",
            "vb",
            "ep",
            "status",
            "error",
            "seconds",
            "fuel",
            "log",
        ] {
            assert!(r.get(f).is_some(), "field {f} missing in {r}");
        }
        assert_eq!(r["status"], "ok");
        assert!(r["error"].is_null() && r["vr"].is_null());
        assert_eq!(r["benchmark"], "llmrouter");
        assert_eq!(r["difficulty"], "easy");
    }
    let all = find(rs, "oracle", 9, "all_models");
    // On these 563 test queries the oracle over all 9 models beats every smaller pool.
    for r in rs.iter().filter(|r| r["router"] == "oracle") {
        assert!(r["mu"].as_f64() <= all["mu"].as_f64());
    }
    assert_eq!(find(rs, "knn", 3, "all_weak")["kind"], "builtin");
    assert!(find(rs, "knn", 3, "all_weak")["fuel"].is_null());
    assert_eq!(find(rs, "random", 3, "all_weak")["kind"], "bound");
}

#[test]
fn output_is_identical_whatever_the_thread_count() {
    let a = run(&["--format", "json", "--threads", "1"]);
    let b = run(&["--format", "json", "--threads", "2"]);
    let c = run(&["--format", "json", "--threads", "2"]);
    assert_eq!(
        results_without_times(&a.json()),
        results_without_times(&b.json())
    );
    assert_eq!(
        results_without_times(&b.json()),
        results_without_times(&c.json())
    );
    let t1 = run(&["--threads", "1"]);
    let t2 = run(&["--threads", "2"]);
    assert_eq!(t1.stdout, t2.stdout);
}

/// A directory of RouterEval files: each `<name>_router_dataset.pkl` is one benchmark, and a
/// RouterEval name gets its reference accuracy.
#[test]
fn dataset_directory_and_known_benchmarks() {
    let dir = TempDir::new("dir");
    for name in ["gsm8k", "arc"] {
        std::fs::copy(
            shared("fixtures/synth_numpy2_protocol5.pkl"),
            dir.path().join(format!("{name}_router_dataset.pkl")),
        )
        .unwrap();
    }
    std::fs::write(dir.path().join("notes.txt"), "not a dataset").unwrap();
    let out = run(&[
        "--dataset",
        dir.path().to_str().unwrap(),
        "--format",
        "json",
        "--router",
        "oracle",
        "--difficulty",
        "hard",
        "--group",
        "all_weak,strong_to_weak",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let rs = results_without_times(&out.json());
    // Sorted by file name: arc first; 3 hard sizes x 2 groups each.
    assert_eq!(rs.len(), 12);
    assert_eq!(rs[0]["benchmark"], "arc");
    assert_eq!(rs[6]["benchmark"], "gsm8k");
    let ms: Vec<u64> = rs[..6].iter().map(|r| r["m"].as_u64().unwrap()).collect();
    assert_eq!(ms, [10, 10, 100, 100, 1000, 1000]);
    for r in &rs {
        let acc = if r["benchmark"] == "gsm8k" {
            0.92
        } else {
            0.852
        };
        let (mu, vr) = (r["mu"].as_f64().unwrap(), r["vr"].as_f64().unwrap());
        assert!(close(vr, mu / acc, 1e-12), "{r}");
        assert_eq!(r["difficulty"], "hard");
    }
    // The same data under both names gives the same mu.
    assert_eq!(rs[0]["mu"], rs[6]["mu"]);
}

#[test]
fn table_on_a_known_benchmark_shows_v_r() {
    let dir = TempDir::new("vr");
    let f = dir.path().join("gsm8k_router_dataset.pkl");
    std::fs::copy(shared("fixtures/synth_numpy1_protocol4.pkl"), &f).unwrap();
    let out = run(&[
        "-d",
        f.to_str().unwrap(),
        "--candidates",
        "3,5",
        "-r",
        "oracle",
        "-r",
        "knn",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.starts_with("gsm8k\n"), "{}", out.stdout);
    let knn = out.stdout.lines().find(|l| l.starts_with("knn")).unwrap();
    assert!(!knn.contains(" - "), "V_R should be shown: {knn}");
}

#[test]
fn output_file_is_written() {
    let dir = TempDir::new("out");
    let f = dir.path().join("results.json");
    let out = run(&[
        "--format",
        "json",
        "--router",
        "oracle",
        "-o",
        f.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.is_empty());
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
    assert_eq!(v["results"].as_array().unwrap().len(), 7);
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no temporary file left"
    );
}

#[test]
fn progress_goes_to_stderr() {
    let out = run(&["--router", "oracle", "--candidates", "3", "--progress"]);
    assert_eq!(out.code, 0);
    assert!(
        out.stderr.contains("[3/3] oracle llmrouter easy m=3"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("3 evaluations (3 ok, 0 failed)"),
        "{}",
        out.stderr
    );
}

#[test]
fn the_largest_training_sets_run_first() {
    // One worker: the progress lines come in the order evaluations run. The embedded pools train
    // on the same queries, so the ones with more candidates go first (m = 9, 5, 5, 5, 3, 3, 3);
    // the bound, which trains nothing, after every router evaluation.
    let out = run(&[
        "--router",
        "knn",
        "--router",
        "oracle",
        "--threads",
        "1",
        "--progress",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let lines: Vec<&str> = out.stderr.lines().filter(|l| l.starts_with('[')).collect();
    let m_of = |l: &str| -> usize {
        let at = l.find(" m=").expect("m=") + 3;
        l[at..].split(' ').next().unwrap().parse().unwrap()
    };
    let knn: Vec<usize> = lines
        .iter()
        .filter(|l| l.contains("] knn "))
        .map(|l| m_of(l))
        .collect();
    assert_eq!(knn, [9, 5, 5, 5, 3, 3, 3], "{}", out.stderr);
    let last_knn = lines.iter().rposition(|l| l.contains("] knn ")).unwrap();
    let first_oracle = lines.iter().position(|l| l.contains("] oracle ")).unwrap();
    assert!(first_oracle > last_knn, "{}", out.stderr);
}

#[test]
fn usage_errors_say_what_to_do() {
    // (arguments, what standard error must say); each exits with status 2.
    let cases: [(&[&str], &[&str]); 7] = [
        (
            &["--router", "knnn"],
            &[
                "unknown router `knnn`; known: knn, best-on-train, cluster, linear, logreg, mf, mlp, mlc, oracle, random, r_o:p=<p>",
            ],
        ),
        (
            &["--router", "knn:kk=3"],
            &["unknown parameter `kk`; accepted: k"],
        ),
        (&["--router", "r_o:p=2"], &["`p` must be in [0, 1]"]),
        (&["--router", "knn", "--router", "knn"], &["given twice"]),
        (
            &["--difficulty", "hard"],
            &["no pool matches the selection", "easy m=9 all_models"],
        ),
        (
            &["--dataset", "/nonexistent/x_router_dataset.pkl"],
            &["cannot open dataset `/nonexistent/x_router_dataset.pkl`"],
        ),
        (
            &["--difficulty", "medium"],
            &["possible values: easy, hard, all"],
        ),
    ];
    for (args, needles) in cases {
        let out = run(args);
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        for n in needles {
            assert!(
                out.stderr.contains(n),
                "{args:?}: `{n}` not in {}",
                out.stderr
            );
        }
    }
}

#[test]
fn help_and_router_list() {
    let out = run(&["--help"]);
    assert_eq!(out.code, 0);
    assert!(
        out.stdout.contains("--dataset <PATH>") && out.stdout.contains("Examples:"),
        "{}",
        out.stdout
    );
    let out = run(&["routers"]);
    assert_eq!(out.code, 0);
    assert!(
        out.stdout.contains("knn") && out.stdout.contains("parameters: k=5"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("r_o:p=<p>"));
    assert!(
        out.stdout.contains("--plugin FILE.wasm") && out.stdout.contains("routereval:router@1.1.0")
    );
    assert!(
        out.stdout.contains("native plugins") && out.stdout.contains("routereval-sdk 0.1.0"),
        "{}",
        out.stdout
    );
    let help = run(&["--help"]).stdout;
    for flag in [
        "--plugin",
        "--fuel",
        "--timeout",
        "--memory-limit",
        "--cache-dir",
        "Plugin limits",
        "--isolate",
        "--trust",
        "Native plugins",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help");
    }
    let wrong = run(&["--router", "knn.wasm"]);
    assert_eq!(wrong.code, 2);
    assert!(
        wrong.stderr.contains("--plugin knn.wasm"),
        "{}",
        wrong.stderr
    );
}

/// A router's own seed, when it differs from the run's, is part of its label: two seeds of one
/// router are two rows; the run's own seed spelled out is the same row twice.
#[test]
fn a_routers_own_seed_labels_its_row() {
    let out = run(&[
        "--router",
        "linear:epochs=1,seed=1",
        "--router",
        "linear:epochs=1,seed=2",
        "--candidates",
        "3",
        "--format",
        "json",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v = out.json();
    let rs = v["results"].as_array().unwrap();
    let labels: std::collections::BTreeSet<&str> =
        rs.iter().map(|r| r["router"].as_str().unwrap()).collect();
    assert_eq!(
        labels.into_iter().collect::<Vec<_>>(),
        ["linear:epochs=1,seed=1", "linear:epochs=1,seed=2"]
    );
    let out = run(&["--router", "knn", "--router", "knn:seed=0"]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("`knn` is given twice"),
        "{}",
        out.stderr
    );
}

/// Each built-in router's card (its crate's `impl Describe`) tells the truth: building it with
/// the card's defaults written out gives the same numbers as building it with no parameters, and
/// `routers` shows every parameter. (MLPR is checked for its keys only: its defaults take minutes
/// per pool.)
#[test]
fn each_router_card_states_the_defaults_its_router_uses() {
    let registry = routereval_engine::Registry::builtin();
    let listing = run(&["routers"]).stdout;
    for info in registry.iter() {
        let about = info.about.expect("built-in routers carry a card");
        assert_eq!(about.name, info.name);
        for p in about.params {
            assert!(
                listing.contains(&format!("{}={}: {}", p.key, p.default, p.doc)),
                "`routers` does not show {}'s `{}`:\n{listing}",
                info.name,
                p.key
            );
        }
        let explicit = if about.params.is_empty() {
            info.name.clone()
        } else {
            format!("{}:{}", info.name, about.defaults_spec())
        };
        if about.params.is_empty() {
            // Nothing to write out; a parameter it does not have is refused.
            let out = run(&["--router", &format!("{}:k=1", info.name)]);
            assert_eq!(out.code, 2, "{}", out.stdout);
            continue;
        }
        if info.name == "mlp" || info.name == "mlc" {
            // Minutes per pool (mlc also needs a model directory, tested in embed.rs): every
            // key on the card is one the router accepts.
            let out = run(&["--router", &explicit, "--candidates", "0"]);
            assert!(!out.stderr.contains("unknown parameter"), "{}", out.stderr);
            continue;
        }
        let both = run(&[
            "--format",
            "json",
            "--candidates",
            "3",
            "--router",
            &info.name,
            "--router",
            &explicit,
        ]);
        assert_eq!(both.code, 0, "{}", both.stderr);
        let rows = both.json()["results"].as_array().unwrap().clone();
        let (implicit, written): (Vec<_>, Vec<_>) =
            rows.iter().partition(|r| r["router"] == info.name.as_str());
        assert_eq!(implicit.len(), written.len(), "{}", info.name);
        for (a, b) in implicit.iter().zip(&written) {
            for key in ["mu", "vb", "ep"] {
                assert_eq!(
                    a[key], b[key],
                    "{}: `{key}` with the card's defaults {explicit}",
                    info.name
                );
            }
        }
    }
}
