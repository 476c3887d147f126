//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use routereval_engine::Registry;
use routereval_engine::cli::{Io, run_cli};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// `../shared/data/<rel>` beside the checkout.
pub fn shared(rel: &str) -> PathBuf {
    let p = root().join("../shared/data").join(rel);
    assert!(
        p.exists(),
        "test data `{}` is missing: the tests expect the project's shared/ folder beside the checkout",
        p.display()
    );
    p
}

/// What a CLI run produced.
#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

/// Runs the CLI in-process with `registry`.
pub fn run_with(registry: &Registry, args: &[&str]) -> Output {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = {
        let mut io = Io {
            out: &mut out,
            err: &mut err,
            err_is_terminal: false,
        };
        let argv = std::iter::once("routereval-engine").chain(args.iter().copied());
        run_cli(argv, registry, &mut io)
    };
    Output {
        code,
        stdout: String::from_utf8(out).expect("utf-8 stdout"),
        stderr: String::from_utf8(err).expect("utf-8 stderr"),
    }
}

/// Whether process `pid` has ended (gone, or a zombie nobody has reaped yet), waiting up to
/// five seconds for a kill to land.
#[cfg(target_os = "linux")]
fn process_ended(pid: u32) -> bool {
    let started = std::time::Instant::now();
    loop {
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| Some(s.rsplit_once(')')?.1.split_whitespace().next()?.to_string()));
        match state.as_deref() {
            None | Some("Z" | "X") => return true,
            Some(_) if started.elapsed() > std::time::Duration::from_secs(5) => return false,
            Some(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
        }
    }
}

/// Every process whose pid a test's command wrote to one of `pid_files` has ended.
#[cfg(target_os = "linux")]
pub fn assert_processes_ended(pid_files: &[&Path]) {
    for path in pid_files {
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("{}: {e} (the process did not start)", path.display()));
        let pid: u32 = text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{}: not a pid: {text:?}", path.display()));
        assert!(process_ended(pid), "process {pid} outlived its evaluation");
    }
}

/// Runs the engine binary (the package's `engine`, the real `main`) as a subprocess.
pub fn run_binary(args: &[&std::ffi::OsStr]) -> Output {
    run_binary_in(&root(), args)
}

/// [`run_binary`] in the working directory `cwd` (the test process's own is shared by every
/// test running in parallel, so it is never changed).
pub fn run_binary_in(cwd: &Path, args: &[&std::ffi::OsStr]) -> Output {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_engine"))
        .current_dir(cwd)
        .args(args)
        .output()
        .expect("run the engine binary");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).expect("utf-8 stdout"),
        stderr: String::from_utf8(out.stderr).expect("utf-8 stderr"),
    }
}

/// A WebAssembly component built by the build script, e.g. `wasm("routereval_plugin_knn")`.
pub fn wasm(stem: &str) -> String {
    let p = PathBuf::from(env!("ROUTEREVAL_WASM_DIR")).join(format!("{stem}.wasm"));
    assert!(p.is_file(), "{} was not built", p.display());
    p.display().to_string()
}

/// A native library built by the build script, e.g. `native("routereval_plugin_knn")`.
pub fn native(stem: &str) -> String {
    let p = PathBuf::from(env!("ROUTEREVAL_NATIVE_DIR")).join(format!(
        "{}{stem}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ));
    assert!(p.is_file(), "{} was not built", p.display());
    p.display().to_string()
}

/// Runs the CLI in-process with the built-in routers.
pub fn run(args: &[&str]) -> Output {
    run_with(&Registry::builtin(), args)
}

/// The `results` array of a JSON run, with the wall times removed (they differ between runs).
pub fn results_without_times(v: &Value) -> Vec<Value> {
    v["results"]
        .as_array()
        .expect("results array")
        .iter()
        .map(|r| {
            let mut r = r.clone();
            r.as_object_mut().expect("object").remove("seconds");
            r
        })
        .collect()
}

/// The one result for (router, m, group).
pub fn find<'a>(results: &'a [Value], router: &str, m: u64, group: &str) -> &'a Value {
    results
        .iter()
        .find(|r| r["router"] == router && r["m"] == m && r["group"] == group)
        .unwrap_or_else(|| panic!("no result for {router} m={m} {group}"))
}

/// The sha256 of the file at `path`, in hex.
pub fn sha256_file(path: &str) -> String {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// First 16 hex digits of the sha256 of `bytes`.
pub fn sha16(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    d.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// A fresh temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "routereval-test-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

/// Whether a missing prerequisite (Python with numpy, scikit-learn) fails the test instead of
/// skipping it: under CI (`CI` set, as `.ci/run` runs) or `ROUTEREVAL_TESTS_STRICT=1`.
pub fn strict() -> bool {
    let set = |k: &str| std::env::var(k).is_ok_and(|v| !v.is_empty() && v != "0" && v != "false");
    set("CI") || set("ROUTEREVAL_TESTS_STRICT")
}

/// A test that cannot run here: under [`strict`] it fails with the reason; otherwise it says so
/// on the real standard error (which the test harness does not capture, so the skip is seen)
/// and records it in `target/tmp/skipped-tests.txt`, which `.ci/run` counts into its summary.
/// Returns, so the caller returns early.
pub fn skip(test: &str, reason: &str) {
    use std::io::Write as _;
    assert!(
        !strict(),
        "{test}: {reason} (a prerequisite is missing; .ci/run installs it)"
    );
    let line = format!("SKIPPED {test}: {reason}\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let _ = std::fs::create_dir_all(&dir);
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("skipped-tests.txt"))
    {
        let _ = f.write_all(line.as_bytes());
    }
}

/// The Python interpreters that have every module of `modules`, with the first module's version:
/// `ROUTEREVAL_PYTHONS` (`:`-separated; `.ci/run` sets it to one with numpy 1 and one with
/// numpy 2 and scikit-learn), else `python3`. Each one skipped is printed with the reason.
pub fn pythons_with(modules: &[&str]) -> Vec<(String, String)> {
    let list = std::env::var("ROUTEREVAL_PYTHONS").unwrap_or_else(|_| "python3".into());
    let check = format!(
        "import {}; print({}.__version__)",
        modules.join(", "),
        modules[0]
    );
    let mut found = Vec::new();
    for py in list.split(':').filter(|p| !p.is_empty()) {
        match std::process::Command::new(py).args(["-c", &check]).output() {
            Ok(o) if o.status.success() => {
                found.push((
                    py.to_string(),
                    String::from_utf8_lossy(&o.stdout).trim().to_string(),
                ));
            }
            Ok(o) => println!(
                "skipping {py}: it lacks one of {modules:?} ({})",
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            Err(e) => println!("skipping {py}: cannot run it ({e})"),
        }
    }
    found
}
