//! Native plugins through the CLI: one router through all its load paths (built in, native
//! in-process, native isolated, WebAssembly) with identical results, the loader's refusals, and
//! process isolation surviving crashes, aborts, exits and hangs. The libraries are built by
//! `tests/build.rs` with each crate's `native-plugin` feature.

use std::process::Command;

use routereval_engine::Registry;
use serde_json::Value;

use crate::util::{Output, TempDir, native, run_with, shared, wasm};

/// The engine binary (the worker of isolated evaluations, and the subject of the tests that
/// must see the engine process survive).
const ENGINE: &str = env!("CARGO_BIN_EXE_engine");

fn hostile(params: &str) -> String {
    format!("{}:{params}", native("routereval_fixture_hostile"))
}

/// The built-in routers plus the example and the hostile fixture, so that every router in these
/// tests can also be run built in.
fn registry() -> Registry {
    let mut r = Registry::builtin();
    r.register::<routereval_fixture_hostile::Hostile>("hostile", "the hostile fixture", "mode")
        .expect("free name");
    r
}

/// Runs the engine binary as a subprocess.
fn engine(args: &[&str]) -> Output {
    let args: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    crate::util::run_binary(&args)
}

fn results(v: &Value) -> &Vec<Value> {
    v["results"].as_array().expect("results")
}

/// The fields of a result row that must not depend on how the router was loaded: the pool, the
/// metrics (exactly), the status and the error's kind.
fn essence(r: &Value) -> Value {
    serde_json::json!({
        "benchmark": r["benchmark"], "difficulty": r["difficulty"], "m": r["m"],
        "group": r["group"], "mu": r["mu"], "vr": r["vr"], "vb": r["vb"], "ep": r["ep"],
        "status": r["status"], "error": r["error"]["kind"],
        // A router error's message is the same on every path once the context (which names the
        // router by its label, `hostile@wasm`) is cut. (A real panic's is not: WebAssembly's
        // panic hook adds the location.)
        "message": r["error"]["message"].as_str().filter(|_| {
            ["invalid_params", "invalid_input", "fit_error", "route_error", "router_error"]
                .iter()
                .any(|k| r["error"]["kind"] == *k)
        }).map(|m| m.split_once(": ").map_or(m, |x| x.1).to_string()),
    })
}

/// Runs one case through every load path of a router and asserts the rows are identical;
/// returns the built-in rows for the case's own checks. `name` is the router's registry name,
/// `stem` its crate's library stem, `params` its `k=v` list (may be empty), `args` the rest.
pub fn assert_same_on_every_load_path(
    name: &str,
    stem: &str,
    params: &str,
    args: &[&str],
) -> Vec<Value> {
    let cache = TempDir::new("load-paths");
    let with = |spec: &str| {
        if params.is_empty() {
            spec.to_string()
        } else {
            format!("{spec}:{params}")
        }
    };
    let (builtin, lib, component) = (with(name), with(&native(stem)), with(&wasm(stem)));
    let cache_dir = cache.path().to_str().expect("utf-8").to_string();
    let paths: [(&str, Vec<&str>); 4] = [
        ("built in", vec!["--router", &builtin]),
        (
            "native, in-process",
            vec!["--plugin", &lib, "--isolate", "none"],
        ),
        (
            "native, isolated",
            vec![
                "--plugin",
                &lib,
                "--isolate",
                "process",
                "--worker-exe",
                ENGINE,
            ],
        ),
        (
            "WebAssembly",
            vec!["--plugin", &component, "--cache-dir", &cache_dir],
        ),
    ];
    let registry = registry();
    let mut reference: Option<Vec<Value>> = None;
    let mut first_rows = Vec::new();
    for (path, how) in paths {
        let mut all: Vec<&str> = vec!["--format", "json"];
        all.extend(how);
        all.extend(args);
        let out = run_with(&registry, &all);
        assert!(out.code <= 1, "{path}: exit {}: {}", out.code, out.stderr);
        let v = out.json();
        let rows = results(&v);
        assert!(!rows.is_empty(), "{path}: no results");
        let kind = match path {
            "built in" => "builtin",
            "WebAssembly" => "wasm",
            _ => "native",
        };
        assert!(rows.iter().all(|r| r["kind"] == kind), "{path}: {v}");
        let got: Vec<Value> = rows.iter().map(essence).collect();
        match &reference {
            None => {
                reference = Some(got);
                first_rows = rows.clone();
            }
            Some(want) => {
                for (w, g) in want.iter().zip(&got) {
                    assert_eq!(g, w, "{path} differs from built in");
                }
                assert_eq!(got.len(), want.len(), "{path}: row count");
            }
        }
    }
    first_rows
}

/// A test that runs one integration case through every load path of a router (as ripgrep reruns
/// its tests under a second regex engine): built in, native in-process, native isolated in a
/// child process, and WebAssembly in the sandbox; the results must be identical.
macro_rules! each_load_path {
    ($(#[$meta:meta])* fn $test:ident(
        router = $name:literal, library = $stem:literal, params = $params:literal,
        args = [$($arg:expr),* $(,)?] $(,)?
    ) $(|$rows:ident| $check:block)?) => {
        $(#[$meta])*
        #[test]
        fn $test() {
            let args: Vec<String> = vec![$($arg.to_string()),*];
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let _rows = assert_same_on_every_load_path($name, $stem, $params, &args);
            $(let $rows = _rows; $check)?
        }
    };
}

each_load_path! {
    /// The kNN router on the embedded data: every pool, the default k.
    fn knn_on_embedded_data(
        router = "knn", library = "routereval_plugin_knn", params = "", args = [],
    ) |rows| {
        assert_eq!(rows.len(), 7);
        assert!(rows.iter().all(|r| r["status"] == "ok"));
    }
}

each_load_path! {
    /// The kNN router with k = 7 on the released LLMRouter pickle from `../shared`.
    fn knn_on_the_llmrouter_pickle(
        router = "knn", library = "routereval_plugin_knn", params = "k=7",
        args = ["--dataset", shared("llmrouter/llmrouter_router_dataset.pkl").display()],
    ) |rows| {
        assert_eq!(rows.len(), 6);
        assert!(rows.iter().all(|r| r["status"] == "ok"), "{rows:?}");
    }
}

each_load_path! {
    /// The example router.
    fn best_on_train_on_embedded_data(
        router = "best-on-train", library = "routereval_plugin_best_on_train", params = "", args = [],
    )
}

/// Every `RouterError` variant, returned at every stage, through all four load paths: the one
/// mapping (`failure::Failure::from_router`) gives the kind the SDK documents
/// (`RouterError::kind`) and the same message whichever way the router is loaded. (An error from
/// `new` is the one exception by design: a built-in router is built once when the command line
/// is read, so its `new` error is a usage error, exit status 2, before anything runs; a plugin's
/// is known only in its evaluations.)
#[test]
fn each_router_error_variant_has_its_kind_on_every_load_path() {
    let variants = [
        ("invalid_params", "invalid_params", "invalid parameters"),
        ("invalid_input", "invalid_input", "invalid input"),
        ("fit", "fit_error", "fit failed"),
        ("route", "route_error", "route failed"),
        ("panic", "panic", "panicked"),
        ("other", "router_error", "router error"),
    ];
    for (variant, kind, said) in variants {
        for stage in ["fit", "route"] {
            let params = format!("mode=error,stage={stage},variant={variant}");
            let rows = assert_same_on_every_load_path(
                "hostile",
                "routereval_fixture_hostile",
                &params,
                &["--candidates", "3", "--group", "all_strong"],
            );
            assert_eq!(rows.len(), 1, "{params}");
            let e = &rows[0]["error"];
            assert_eq!(e["kind"], kind, "{params}: {e}");
            let msg = e["message"].as_str().unwrap();
            assert!(
                msg.contains(&format!("`{stage}`")) && msg.contains(said),
                "{params}: {msg}"
            );
            assert!(
                msg.contains(&format!("hostile fixture returns an error in {stage}")),
                "{params}: {msg}"
            );
        }
    }
}

each_load_path! {
    fn typed_failures_agree_panic_in_new(
        router = "hostile", library = "routereval_fixture_hostile",
        params = "mode=panic,stage=create", args = ["--candidates", "3"],
    ) |rows| {
        for r in &rows {
            assert_eq!(r["error"]["kind"], "panic", "{r}");
            let msg = r["error"]["message"].as_str().unwrap();
            assert!(msg.contains("hostile fixture panics in create on purpose"), "{msg}");
        }
    }
}

each_load_path! {
    fn typed_failures_agree_invalid_output(
        router = "hostile", library = "routereval_fixture_hostile", params = "mode=nan",
        args = ["--candidates", "5"],
    ) |rows| {
        assert!(rows.iter().all(|r| r["error"]["kind"] == "invalid_output"), "{rows:?}");
    }
}

/// The error of the one result of `router` in a JSON document.
fn error_of<'a>(v: &'a Value, router: &str) -> &'a Value {
    let r = results(v)
        .iter()
        .find(|r| r["router"] == router)
        .unwrap_or_else(|| panic!("no result for {router} in {v}"));
    &r["error"]
}

#[test]
fn isolated_engine_survives_segfault_abort_exit_hang_and_bad_libraries() {
    let (segv, abort, exit, hang, panic_new) = (
        hostile("mode=segfault"),
        hostile("mode=abort,stage=route"),
        hostile("mode=exit"),
        hostile("mode=loop"),
        hostile("mode=panic,stage=create"),
    );
    let (not_router, old) = (
        native("routereval_fixture_not_a_router"),
        native("routereval_fixture_old_sdk"),
    );
    let ok = hostile("mode=chatty,lines=3");
    let out = engine(&[
        "--format",
        "json",
        "--candidates",
        "3",
        "--group",
        "all_strong",
        "--timeout",
        "3",
        "--isolate",
        "process",
        "--router",
        "knn",
        "--plugin",
        &segv,
        "--plugin",
        &abort,
        "--plugin",
        &exit,
        "--plugin",
        &hang,
        "--plugin",
        &panic_new,
        "--plugin",
        &not_router,
        "--plugin",
        &old,
        "--plugin",
        &ok,
    ]);
    // The engine ran to the end and reported every failure as a result: exit status 1.
    assert_eq!(out.code, 1, "{}", out.stderr);
    let v = out.json();
    assert_eq!(results(&v).len(), 9);
    let expect = [
        (
            "hostile@native:mode=segfault",
            "crash",
            "`fit` crashed the worker process: killed by signal 11",
        ),
        (
            "hostile@native:mode=abort,stage=route",
            "abort",
            "`route` aborted the worker process (SIGABRT)",
        ),
        (
            "hostile@native:mode=exit",
            "crash",
            "`fit` ended the worker process (exit status: 3)",
        ),
        (
            "hostile@native:mode=loop",
            "timeout",
            "`fit` did not finish within the 3 s deadline",
        ),
        (
            "hostile@native:mode=panic,stage=create",
            "panic",
            "`create` panicked: hostile fixture panics in create on purpose",
        ),
        (
            "routereval_fixture_not_a_router@native",
            "missing_export",
            "exports no routereval root module",
        ),
        (
            "routereval_fixture_old_sdk@native",
            "abi_mismatch",
            "built against routereval-sdk 0.0.9; this engine loads native plugins of routereval-sdk 0.1.0",
        ),
    ];
    for (router, kind, text) in expect {
        let e = error_of(&v, router);
        assert_eq!(e["kind"], kind, "{router}: {e}");
        let msg = e["message"].as_str().unwrap();
        assert!(msg.contains(text), "{router}: {msg}");
        assert!(
            msg.contains("llmrouter easy m=3 all_strong"),
            "names the pool: {msg}"
        );
    }
    // The control rows ran: the built-in kNN, and the chatty plugin whose standard output
    // and error became its log (its prints cannot reach the worker's protocol channel).
    let ok_row = results(&v)
        .iter()
        .find(|r| r["router"] == "hostile@native:lines=3,mode=chatty")
        .expect("chatty row");
    assert_eq!(ok_row["status"], "ok", "{ok_row}");
    let log = ok_row["log"].as_str().expect("a log");
    assert!(
        log.contains("stdout line 2") && log.contains("chatty line 2"),
        "{log}"
    );
    assert_eq!(error_of(&v, "knn"), &Value::Null);
    // The loader's verdicts are also announced before the run.
    assert!(
        out.stderr.contains("warning: every evaluation of plugin"),
        "{}",
        out.stderr
    );
    // The document says how each native plugin ran.
    let plugins = v["plugins"].as_array().expect("plugins");
    assert!(
        plugins.iter().all(|p| p["isolation"] == "process"),
        "{plugins:?}"
    );

    // In-process, the loader refuses the same libraries with the same kinds (the checks run
    // before any router code), and a panic in `new` is caught inside the plugin.
    let out = engine(&[
        "--format",
        "json",
        "--candidates",
        "3",
        "--group",
        "all_strong",
        "--isolate",
        "none",
        "--plugin",
        &panic_new,
        "--plugin",
        &not_router,
        "--plugin",
        &old,
    ]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let v = out.json();
    for (router, kind) in [
        ("hostile@native:mode=panic,stage=create", "panic"),
        ("routereval_fixture_not_a_router@native", "missing_export"),
        ("routereval_fixture_old_sdk@native", "abi_mismatch"),
    ] {
        assert_eq!(error_of(&v, router)["kind"], kind, "{router}");
    }
    let plugins = v["plugins"].as_array().expect("plugins");
    assert!(
        plugins.iter().all(|p| p["isolation"] == "in_process"),
        "{plugins:?}"
    );
}

#[test]
fn in_process_crash_ends_the_engine_which_is_why_isolation_is_the_default() {
    let segv = hostile("mode=segfault");
    let status = Command::new(ENGINE)
        .args(["--candidates", "3", "--isolate", "none", "--plugin", &segv])
        .output()
        .expect("run the engine binary")
        .status;
    // Killed by the signal: no results, no exit status of its own.
    assert_eq!(status.code(), None, "{status:?}");
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(11), "{status:?}");
    }
    // The default (auto, untrusted library) isolates it: the same run completes.
    let out = engine(&["--candidates", "3", "--format", "json", "--plugin", &segv]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        results(&out.json())
            .iter()
            .all(|r| r["error"]["kind"] == "crash")
    );
}

#[test]
fn trusted_libraries_run_in_process_under_auto() {
    let knn = native("routereval_plugin_knn");
    let sha = routereval_engine::plugin::native::file_sha256(std::path::Path::new(&knn)).unwrap();
    let base = [
        "--format",
        "json",
        "--candidates",
        "3",
        "--worker-exe",
        ENGINE,
    ];
    let registry = registry();
    let isolation = |extra: &[&str]| {
        let mut args = base.to_vec();
        args.extend(["--plugin", &knn]);
        args.extend(extra);
        let out = run_with(&registry, &args);
        assert_eq!(out.code, 0, "{}", out.stderr);
        let v = out.json();
        v["plugins"][0]["isolation"].as_str().unwrap().to_string()
    };
    assert_eq!(isolation(&[]), "process");
    assert_eq!(isolation(&["--trust", &sha]), "in_process");
    assert_eq!(
        isolation(&["--trust", &sha, "--isolate", "process"]),
        "process"
    );
    // The allow-list in a config file.
    let dir = TempDir::new("trust");
    let cfg = dir.path().join("run.toml");
    std::fs::write(
        &cfg,
        format!("trusted_plugins = [\"{}\"]\n", sha.to_uppercase()),
    )
    .unwrap();
    assert_eq!(
        isolation(&["--config", cfg.to_str().unwrap()]),
        "in_process"
    );
    // A malformed digest is a usage error that says what a digest looks like.
    let out = run_with(&registry, &["--plugin", &knn, "--trust", "abc"]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("not a SHA-256 (64 hex digits)"),
        "{}",
        out.stderr
    );
}

#[test]
fn files_that_are_not_plugins_are_input_errors_naming_the_file() {
    let dir = TempDir::new("not-plugins");
    let text = dir.path().join("librouter.so");
    std::fs::write(&text, "not a library").unwrap();
    let out = engine(&["--plugin", text.to_str().unwrap()]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("librouter.so")
            && out
                .stderr
                .contains("neither a WebAssembly component nor a native library"),
        "{}",
        out.stderr
    );
    // An ELF header with nothing behind it: the platform's loader refuses it, in the probe
    // child or in-process alike.
    let elf = dir.path().join("libbroken.so");
    std::fs::write(&elf, b"\x7fELF\x02\x01\x01\0garbage").unwrap();
    for isolate in ["process", "none"] {
        let out = engine(&["--isolate", isolate, "--plugin", elf.to_str().unwrap()]);
        assert_eq!(out.code, 2, "{isolate}: {}", out.stderr);
        assert!(
            out.stderr.contains("cannot load native plugin") && out.stderr.contains("libbroken.so"),
            "{isolate}: {}",
            out.stderr
        );
    }
    // A library given as a router name gets a pointer to --plugin.
    let out = engine(&["--router", "libknn.so"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("--plugin libknn.so"), "{}", out.stderr);
}

#[test]
fn a_worker_that_is_not_the_engine_is_named() {
    let knn = native("routereval_plugin_knn");
    // `true` exits at once without speaking the protocol.
    let out = run_with(
        &registry(),
        &[
            "--plugin",
            &knn,
            "--isolate",
            "process",
            "--worker-exe",
            "/bin/true",
        ],
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("/bin/true")
            && out.stderr.contains("did not speak the worker protocol"),
        "{}",
        out.stderr
    );
}

#[test]
fn an_isolated_library_that_changes_during_the_run_is_refused() {
    use routereval_engine::eval::outcome::Answer;
    use routereval_engine::plugin::native::{Isolation, NativePlugin};
    use routereval_engine::plugin::policy::SandboxPolicy;
    use routereval_sdk::{Params, Queries, Split, Texts};

    let dir = TempDir::new("changed-lib");
    let lib = dir.path().join(format!(
        "{}knn{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ));
    std::fs::copy(native("routereval_plugin_knn"), &lib).unwrap();
    let policy = SandboxPolicy::default();
    let plugin = NativePlugin::load(
        &lib,
        Isolation::Process,
        std::path::Path::new(ENGINE),
        &policy,
    )
    .unwrap();
    assert_eq!(plugin.name(), "knn");
    // Three queries, two candidates: enough for k = 1.
    let emb = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0];
    let names = vec!["a".to_string(), "b".to_string()];
    let scores = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0];
    let q = Queries::new(3, 2, &emb, Texts::EMPTY).unwrap();
    let split = Split::new(q, &scores, &names).unwrap();
    let params = Params::parse("k=1", 0).unwrap();
    let attempt = plugin.evaluate(&params, &split, &split, &q);
    match attempt.answer.expect("routes") {
        Answer::Routing(r) => assert_eq!(r.num_queries(), 3),
        other => panic!("a plugin answers with a routing, not {other:?}"),
    }
    // A rebuild lands while the run goes on: the next evaluation refuses the new file.
    std::fs::copy(native("routereval_plugin_best_on_train"), &lib).unwrap();
    let attempt = plugin.evaluate(&params, &split, &split, &q);
    let e = attempt.answer.expect_err("the file changed");
    assert_eq!(e.kind.as_str(), "load_error");
    assert!(
        e.message.contains("changed during the run"),
        "{}",
        e.message
    );
}

each_load_path! {
    /// LinearR with RouterEval's settings on the embedded data: Adam over 45,000 batch-1 steps
    /// per pool gives the same bits built in, native and as WebAssembly (no fused multiply-add,
    /// the SDK's own `exp`).
    fn linear_on_embedded_data(
        router = "linear", library = "routereval_plugin_linear", params = "", args = [],
    ) |rows| {
        assert_eq!(rows.len(), 7);
        assert!(rows.iter().all(|r| r["status"] == "ok"), "{rows:?}");
    }
}

each_load_path! {
    /// MLPR (two epochs, mini-batches of 32, to keep WebAssembly quick) on the m = 3 pools.
    fn mlp_on_embedded_data(
        router = "mlp", library = "routereval_plugin_mlp", params = "epochs=2,batch=32",
        args = ["--candidates", "3"],
    ) |rows| {
        assert_eq!(rows.len(), 3);
        assert!(rows.iter().all(|r| r["status"] == "ok"), "{rows:?}");
    }
}

each_load_path! {
    /// MLPR with RouterEval's batch of 1 (one epoch, 32 hidden units, to keep WebAssembly
    /// quick): the batch-1 kernels (rows with no gradient skipped, tiny moments flushed every 16
    /// steps, the update compiled per instruction set, SIMD128 in WebAssembly) give the same bits
    /// on every load path.
    fn mlp_batch_1_on_embedded_data(
        router = "mlp", library = "routereval_plugin_mlp", params = "epochs=1,hidden=32",
        args = ["--candidates", "3"],
    ) |rows| {
        assert_eq!(rows.len(), 3);
        assert!(rows.iter().all(|r| r["status"] == "ok"), "{rows:?}");
    }
}

each_load_path! {
    /// The cluster router (k-means++, Lloyd in f64) on the embedded data.
    fn cluster_on_embedded_data(
        router = "cluster", library = "routereval_plugin_cluster", params = "", args = [],
    ) |rows| {
        assert_eq!(rows.len(), 7);
        assert!(rows.iter().all(|r| r["status"] == "ok"), "{rows:?}");
    }
}

each_load_path! {
    /// Per-candidate logistic regression (L-BFGS over blocked matrix products) on the embedded
    /// data.
    fn logreg_on_embedded_data(
        router = "logreg", library = "routereval_plugin_logreg", params = "", args = [],
    ) |rows| {
        assert_eq!(rows.len(), 7);
        assert!(rows.iter().all(|r| r["status"] == "ok"), "{rows:?}");
    }
}

each_load_path! {
    /// Matrix factorisation (mini-batch Adam through a rank-64 bottleneck) on the embedded data.
    fn mf_on_embedded_data(
        router = "mf", library = "routereval_plugin_mf", params = "", args = [],
    ) |rows| {
        assert_eq!(rows.len(), 7);
        assert!(rows.iter().all(|r| r["status"] == "ok"), "{rows:?}");
    }
}

/// A plugin that starts a process (holding the worker's stdout and stderr): whether its
/// evaluation times out or returns, the process ends with it, and the engine does not wait for
/// it; the timed-out evaluation stops at the deadline.
#[cfg(target_os = "linux")]
#[test]
fn isolated_plugins_leave_no_process_behind() {
    use crate::util::assert_processes_ended;
    let dir = TempDir::new("native-spawn");
    let (hang_pid, done_pid) = (dir.path().join("hang.pid"), dir.path().join("done.pid"));
    let hang = hostile(&format!("mode=spawn,path={}", hang_pid.display()));
    let done = hostile(&format!("mode=spawn,secs=0,path={}", done_pid.display()));
    let started = std::time::Instant::now();
    let out = engine(&[
        "--format",
        "json",
        "--candidates",
        "3",
        "--group",
        "all_strong",
        "--timeout",
        "2",
        "--isolate",
        "process",
        "--threads",
        "2",
        "--plugin",
        &hang,
        "--plugin",
        &done,
    ]);
    let took = started.elapsed();
    assert_eq!(out.code, 1, "{}", out.stderr);
    let v = out.json();
    let rs = results(&v);
    assert_eq!(rs.len(), 2, "{rs:?}");
    let hung = rs
        .iter()
        .find(|r| r["router"].as_str().unwrap().contains("mode=spawn,path"))
        .expect("the hanging row");
    assert_eq!(hung["error"]["kind"], "timeout", "{hung}");
    let secs = hung["seconds"].as_f64().unwrap();
    assert!((2.0..8.0).contains(&secs), "stopped after {secs} s");
    let finished = rs
        .iter()
        .find(|r| r["router"].as_str().unwrap().contains("secs=0"))
        .expect("the returning row");
    assert_eq!(finished["status"], "ok", "{finished}");
    assert!(finished["seconds"].as_f64().unwrap() < 8.0, "{finished}");
    // Neither run waited for the 300 s sleeps, and both sleeps are gone.
    assert!(took < std::time::Duration::from_secs(30), "{took:?}");
    assert_processes_ended(&[&hang_pid, &done_pid]);
}

/// abi_stable's layout check: a library whose root module has this SDK's name and version but
/// another layout is refused, typed, whether it is opened in a worker or in the engine (where
/// the check runs before any of its code is called), and the run goes on.
#[test]
fn a_root_module_of_the_right_version_but_another_layout_is_refused() {
    let bad = native("routereval_fixture_bad_layout");
    for isolate in ["process", "none"] {
        let out = engine(&[
            "--format",
            "json",
            "--candidates",
            "3",
            "--group",
            "all_strong",
            "--isolate",
            isolate,
            "--router",
            "knn",
            "--plugin",
            &bad,
        ]);
        assert_eq!(out.code, 1, "{isolate}: {}", out.stderr);
        let v = out.json();
        assert_eq!(results(&v).len(), 2);
        let e = error_of(&v, "routereval_fixture_bad_layout@native");
        assert_eq!(e["kind"], "abi_mismatch", "{isolate}: {e}");
        let message = e["message"].as_str().unwrap();
        assert!(
            message.to_lowercase().contains("layout"),
            "{isolate}: {message}"
        );
        let knn = results(&v).iter().find(|r| r["router"] == "knn").unwrap();
        assert_eq!(knn["status"], "ok");
    }
}
