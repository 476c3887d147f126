//! Routers written in Python with the SDK package (`sdk/python`), built into components by its
//! own command and run in the sandbox: the examples give the built-in routers' numbers, and
//! hostile routers are contained while good ones in the same run score normally.
//!
//! They need the package installed (`pip install ./sdk/python`, which brings componentize-py):
//! `$ROUTEREVAL_SDK_BIN` names its `routereval-sdk` command (`.ci/run` sets it), else
//! `routereval-sdk` on the PATH; without it the tests skip (fail under CI).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::util::{TempDir, close, root, run_binary_in, shared, skip};

/// The `routereval-sdk` command, or `None` (the test skips).
pub(crate) fn sdk_command(test: &str) -> Option<PathBuf> {
    let found = std::env::var_os("ROUTEREVAL_SDK_BIN")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|d| d.join("routereval-sdk"))
                    .find(|p| p.is_file())
            })
        });
    match found {
        Some(p) if p.is_file() => Some(p),
        _ => {
            skip(
                test,
                "the Python SDK is not installed (pip install ./sdk/python; set ROUTEREVAL_SDK_BIN)",
            );
            None
        }
    }
}

/// Runs `routereval-sdk ARGS` in `dir`; panics with its output when it fails.
fn sdk(tool: &Path, dir: &Path, args: &[&str]) -> String {
    let out = Command::new(tool)
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run routereval-sdk");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "routereval-sdk {args:?} failed:\n{text}"
    );
    text
}

fn engine_json(dir: &Path, args: &[&str]) -> Value {
    let cache = dir.join("cache");
    let mut all: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    all.extend([
        OsStr::new("--format"),
        OsStr::new("json"),
        OsStr::new("--bootstrap"),
        OsStr::new("0"),
        OsStr::new("--cache-dir"),
        cache.as_os_str(),
    ]);
    let out = run_binary_in(dir, &all);
    serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", out.stdout, out.stderr))
}

fn rows_of<'a>(doc: &'a Value, router: &str) -> Vec<&'a Value> {
    doc["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter(|r| r["router"] == router)
        .collect()
}

#[test]
fn python_examples_built_by_the_sdk_give_the_built_in_numbers() {
    let test = "python_examples_built_by_the_sdk_give_the_built_in_numbers";
    let Some(tool) = sdk_command(test) else {
        return;
    };
    let tmp = TempDir::new("python-sdk");
    let dir = tmp.path();
    let examples = root().join("sdk/python/examples");

    // The author's loop: a new router from the template, checked in CPython in seconds.
    let said = sdk(&tool, dir, &["new", "my_router"]);
    assert!(said.contains("routereval-sdk build my_router.py"), "{said}");
    let checked = sdk(&tool, dir, &["check", "my_router.py"]);
    assert!(checked.contains("output valid"), "{checked}");
    let knn_py = examples.join("knn.py").display().to_string();
    for kernels in [&[][..], &["--no-host-kernels"][..]] {
        let mut args = vec!["check", knn_py.as_str(), "--param", "k=5"];
        args.extend_from_slice(kernels);
        let checked = sdk(&tool, dir, &args);
        assert!(
            checked.contains("Knn (knn-py): mu 0.") && checked.contains("output valid"),
            "{checked}"
        );
    }

    for (file, out) in [
        ("knn.py", "knn_py.wasm"),
        ("best_on_train.py", "bot_py.wasm"),
    ] {
        let src = examples.join(file).display().to_string();
        let said = sdk(&tool, dir, &["build", &src, "-o", out]);
        assert!(said.contains(&format!("built {out}")), "{said}");
    }
    let data = shared("llmrouter/llmrouter_router_dataset.pkl")
        .display()
        .to_string();
    let doc = engine_json(
        dir,
        &[
            "run",
            "-d",
            &data,
            "-r",
            "knn",
            "-r",
            "best-on-train",
            "-p",
            "knn_py.wasm",
            "-p",
            "bot_py.wasm",
        ],
    );
    let plugins = doc["plugins"].as_array().expect("plugins");
    assert!(
        plugins.iter().all(|p| p["sdk_version"]
            .as_str()
            .is_some_and(|v| v.starts_with("routereval-sdk-python"))
            && p["abi"] == "routereval:router@1.1.0"),
        "{plugins:?}"
    );
    for (builtin, python, tol) in [
        ("knn", "knn-py@wasm", 1e-9),
        ("best-on-train", "best-on-train-py@wasm", 0.0),
    ] {
        let (a, b) = (rows_of(&doc, builtin), rows_of(&doc, python));
        assert_eq!(a.len(), 6, "{builtin}: every pool of the LLMRouter data");
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(&b) {
            assert_eq!((&x["m"], &x["group"]), (&y["m"], &y["group"]));
            assert_eq!(y["status"], "ok", "{y}");
            for metric in ["mu", "ep"] {
                let (u, v) = (x[metric].as_f64().unwrap(), y[metric].as_f64().unwrap());
                assert!(
                    close(u, v, tol),
                    "{python} {metric} on m={} {}: {v} against the built-in {u}",
                    x["m"],
                    x["group"]
                );
            }
        }
    }
}

#[test]
fn hostile_python_routers_are_contained_with_the_right_kinds() {
    let test = "hostile_python_routers_are_contained_with_the_right_kinds";
    let Some(tool) = sdk_command(test) else {
        return;
    };
    let tmp = TempDir::new("python-hostile");
    let dir = tmp.path();
    let src = root()
        .join("tests/fixtures/python-sdk/hostile_py.py")
        .display()
        .to_string();
    sdk(&tool, dir, &["build", &src, "-o", "hostile.wasm"]);
    // A listener on loopback that the socket mode would reach if it could.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("addr").port();
    let modes = [
        "none",
        "file",
        "env",
        "socket",
        "clock",
        "entropy",
        "subprocess",
        "memory",
        "loop",
        "recursion",
        "raise",
        "exit",
        "bad_shape",
        "nan",
        "bad_choice",
        "bad_handle",
        "kernels",
    ];
    let specs: Vec<String> = modes
        .iter()
        .map(|m| format!("hostile.wasm:mode={m},port={port}"))
        .collect();
    let data = shared("llmrouter/llmrouter_router_dataset.pkl")
        .display()
        .to_string();
    let mut args = vec![
        "run",
        "-d",
        &data,
        "--candidates",
        "3",
        "--group",
        "all_weak",
        "-r",
        "best-on-train",
        "--fuel",
        "10000000000",
        "--memory-limit",
        "512",
    ];
    for s in &specs {
        args.extend(["-p", s.as_str()]);
    }
    let doc = engine_json(dir, &args);
    let good = rows_of(&doc, "best-on-train")[0]["mu"].as_f64().unwrap();
    let row = |mode: &str| -> Value {
        let name = format!("hostile-py@wasm:mode={mode},port={port}");
        let rows = rows_of(&doc, &name);
        assert_eq!(rows.len(), 1, "{name}");
        rows[0].clone()
    };
    let failed = |mode: &str, kinds: &[&str], says: &str| {
        let r = row(mode);
        assert_eq!(r["status"], "failed", "{mode}: {r}");
        let kind = r["error"]["kind"].as_str().unwrap();
        let message = r["error"]["message"].as_str().unwrap();
        assert!(kinds.contains(&kind), "{mode}: kind {kind}: {message}");
        assert!(message.contains(says), "{mode}: {message}");
    };
    let ok_logging = |mode: &str, says: &str| -> String {
        let r = row(mode);
        assert_eq!(r["status"], "ok", "{mode}: {r}");
        assert_eq!(
            r["mu"].as_f64().unwrap(),
            good,
            "{mode} routes as best-on-train"
        );
        let log = r["log"].as_str().unwrap_or("").to_string();
        assert!(log.contains(says), "{mode}: log {log:?}");
        log
    };
    ok_logging("none", "");
    // Every host kernel agrees with the SDK's pure-Python fallback, inside the sandbox.
    ok_logging(
        "kernels",
        "kernels agree: ['argmax', 'cols', 'means', 'mm', 'norm', 'onehot', 'soft', 'topk']",
    );
    // What the sandbox hands every plugin: nothing, or fixed values.
    ok_logging("env", "env: []");
    ok_logging("clock", "clock: 0.0 0.0");
    let entropy = ok_logging("entropy", "entropy: ");
    assert_eq!(
        entropy.trim().len(),
        "[info] entropy: ".len() + 16,
        "{entropy}"
    );
    // Reaching out fails inside the router, which reports a panic with the Python traceback.
    failed("file", &["panic"], "FileNotFoundError");
    failed("socket", &["panic"], "socket");
    failed("subprocess", &["panic"], "subprocess");
    failed("raise", &["panic"], "KeyError: 'missing'");
    assert!(
        listener.accept().is_err(),
        "nothing may connect to the loopback listener"
    );
    // Limits.
    failed("memory", &["out_of_memory"], "cap of 512 MiB");
    failed("loop", &["out_of_fuel"], "fuel budget of 10000000000");
    // CPython keeps its frames on the heap: deep recursion ends at the fuel, the stack or the
    // memory cap, whichever comes first.
    failed(
        "recursion",
        &["out_of_fuel", "stack_overflow", "out_of_memory", "panic"],
        "",
    );
    failed("exit", &["trap"], "must return, not exit");
    // Bad outputs and bad handles.
    failed(
        "bad_shape",
        &["invalid_output"],
        "564 x 3, expected 563 x 3",
    );
    failed("nan", &["invalid_output"], "NaN");
    failed("bad_choice", &["invalid_output"], "out of range");
    failed("bad_handle", &["trap"], "tensor 987654 does not exist");
}
