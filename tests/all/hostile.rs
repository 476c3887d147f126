//! Hostile inputs that once crashed, hung or exhausted the engine, each now contained with a
//! typed error while the rest of the run goes on: host-kernel calls with shapes that allocate or
//! work without paying, WASI sleeps past the deadline, text that drives the terminal, and
//! dataset values no router or metric can use. (The pickle reader's own attacks and its fuzz
//! test are unit tests of `engine/src/data/pickle/`.)

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use routereval_engine::data::embedded;
use routereval_engine::data::export;
use routereval_engine::data::{Matrix, RouterDataset};
use routereval_engine::plugin::wasm::host_kernel_fuel;
use serde_json::Value;

use crate::util::{Output, TempDir, find, run, run_binary, shared, wasm};

fn hostile(params: &str) -> String {
    format!("{}:{params}", wasm("routereval_fixture_hostile"))
}

/// Runs the engine binary (so its own peak memory can be read) with a private compile cache.
fn engine(cache: &TempDir, args: &[&str]) -> Output {
    let mut all = vec![
        std::ffi::OsStr::new("--cache-dir"),
        cache.path().as_os_str(),
    ];
    all.extend(args.iter().map(std::ffi::OsStr::new));
    run_binary(&all)
}

/// The row of `label` in a JSON run.
fn row<'a>(rs: &'a [Value], label: &str) -> &'a Value {
    rs.iter()
        .find(|r| r["router"] == label)
        .unwrap_or_else(|| panic!("no row {label} in {rs:?}"))
}

fn kind_and_message(r: &Value) -> (&str, &str) {
    (
        r["error"]["kind"].as_str().unwrap_or("ok"),
        r["error"]["message"].as_str().unwrap_or(""),
    )
}

/// The peak memory the engine reports at the end of a `--progress` run, in MiB.
fn peak_mib(stderr: &str) -> u64 {
    let at = stderr
        .rfind("peak memory ")
        .unwrap_or_else(|| panic!("no peak memory in {stderr}"));
    stderr[at + "peak memory ".len()..]
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unreadable peak memory in {stderr}"))
}

/// `top-k-dot` and `matmul-abt` called with shapes that once cost nothing or allocated without
/// limit: each is refused as `out_of_memory` (what the host would allocate counts against the
/// plugin's cap) or runs and is charged fuel for every element; the engine stays within the cap
/// plus its own data, and kNN beside them gives its usual numbers.
#[test]
fn host_kernels_account_for_memory_and_fuel_whatever_the_shapes() {
    let cache = TempDir::new("hostile-kernels");
    let cases: [(&str, &str); 6] = [
        // d = 0: no product, but 2^32 - 1 candidates per query (it aborted the engine).
        ("mode=topk_raw", "out_of_memory"),
        // 2^29 candidates: 2 GB of scores for 0 fuel under a 256 MiB cap.
        ("mode=topk_raw,p=536870912", "out_of_memory"),
        // d = 1 with a 16 MiB b: one block of 512 rows asked for 8 GiB; now rows by memory.
        ("d=1,mode=topk_raw,n=64,p=4194304", "router_error"),
        // k = 0: a zero-filled result of 1 GiB.
        ("d=0,mode=matmul_raw,n=16384,p=16384", "out_of_memory"),
        // k = 0 within the cap: it runs, and pays for the 2^24 values it fills.
        ("d=0,mode=matmul_raw,n=4096,p=4096", "router_error"),
        // A huge k with one candidate: the selection is sized by p, not k.
        ("d=4,k=4294967295,mode=topk_raw,n=8,p=1", "router_error"),
    ];
    let mut args = vec![
        "--format",
        "json",
        "--progress",
        "--candidates",
        "9",
        "--memory-limit",
        "256",
        "--router",
        "knn",
    ];
    let specs: Vec<String> = cases.iter().map(|(p, _)| hostile(p)).collect();
    for s in &specs {
        args.extend(["--plugin", s]);
    }
    let out = engine(&cache, &args);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let v = out.json();
    let rs = v["results"].as_array().unwrap();
    assert_eq!(rs.len(), 1 + cases.len());
    for (params, want) in cases {
        let r = row(rs, &format!("hostile@wasm:{params}"));
        let (kind, message) = kind_and_message(r);
        assert_eq!(kind, want, "{params}: {message}");
        if want == "out_of_memory" {
            assert!(
                message.contains("asked the host's `")
                    && message.contains("on top of")
                    && message.contains("cap of 256 MiB"),
                "{message}"
            );
        }
    }
    let answered = |params: &str| {
        let r = row(rs, &format!("hostile@wasm:{params}"));
        (
            kind_and_message(r).1.to_string(),
            r["fuel"].as_u64().unwrap(),
        )
    };
    let (m, fuel) = answered("d=1,mode=topk_raw,n=64,p=4194304");
    assert!(m.contains("with Some(64) values"), "{m}");
    assert!(fuel >= host_kernel_fuel(64, 1, 4_194_304), "{fuel}");
    let (m, fuel) = answered("d=0,mode=matmul_raw,n=4096,p=4096");
    assert!(m.contains("with Some(16777216) values"), "{m}");
    // Every element of the result is paid for, though nothing was multiplied.
    assert!(fuel >= 4096 * 4096, "{fuel}");
    assert_eq!(host_kernel_fuel(4096, 0, 4096), 10_000 + 4096 * 4096);
    let (m, _) = answered("d=4,k=4294967295,mode=topk_raw,n=8,p=1");
    assert!(m.contains("with Some(8) values"), "{m}");

    // kNN is untouched: the same row as a run of its own.
    let alone = run(&["--format", "json", "--candidates", "9", "--router", "knn"]).json();
    let strip = |r: &Value| {
        let mut r = r.clone();
        r.as_object_mut().unwrap().remove("seconds");
        r
    };
    assert_eq!(
        strip(find(rs, "knn", 9, "all_models")),
        strip(find(
            alone["results"].as_array().unwrap(),
            "knn",
            9,
            "all_models"
        ))
    );
    // The engine's whole peak (its data, kNN, every sandbox) stays far below what the refused
    // calls asked for (16 GiB, 2 GiB, 1 GiB).
    let peak = peak_mib(&out.stderr);
    assert!(peak < 768, "peak memory {peak} MiB:\n{}", out.stderr);
}

/// A kernel with nothing to multiply but 2^44 candidates to scan, without a fuel limit, stops at
/// the deadline; a WASI sleep of 10^9 seconds returns at once (the frozen clock's timers are due
/// immediately), so neither holds a worker past the deadline.
#[test]
fn host_calls_return_by_the_deadline() {
    let cache = TempDir::new("hostile-deadline");
    let scan = hostile("mode=topk_raw,n=16777216,p=1048576");
    let sleep = hostile("mode=sleep,secs=1000000000");
    let sleep_route = hostile("mode=sleep,secs=20,stage=route");
    let started = Instant::now();
    let out = engine(
        &cache,
        &[
            "--format",
            "json",
            "--candidates",
            "9",
            "--fuel",
            "0",
            "--timeout",
            "2",
            "--plugin",
            &scan,
            "--plugin",
            &sleep,
            "--plugin",
            &sleep_route,
        ],
    );
    let took = started.elapsed();
    assert_eq!(out.code, 1, "{}", out.stderr);
    let v = out.json();
    let rs = v["results"].as_array().unwrap();
    assert_eq!(rs.len(), 3);
    let r = row(rs, "hostile@wasm:mode=topk_raw,n=16777216,p=1048576");
    let (kind, message) = kind_and_message(r);
    assert_eq!(kind, "timeout", "{message}");
    assert!(message.contains("2 s deadline"), "{message}");
    for label in [
        "hostile@wasm:mode=sleep,secs=1000000000",
        "hostile@wasm:mode=sleep,secs=20,stage=route",
    ] {
        assert_eq!(row(rs, label)["status"], "ok", "{}", row(rs, label));
    }
    // Three evaluations, one stopped at 2 s, on at least one worker: well under the 20 s one
    // sleep asked for.
    assert!(took < Duration::from_secs(15), "{took:?}");
}

/// A plugin's error message and log with escape sequences (clear the screen, home the cursor)
/// and a forged table row: the table and the progress lines show them escaped, the JSON keeps
/// the exact text.
#[test]
fn plugin_text_cannot_drive_the_terminal() {
    let cache = TempDir::new("hostile-ansi");
    let spec = hostile("mode=ansi");
    let table = engine(
        &cache,
        &["--candidates", "9", "--progress", "--plugin", &spec],
    );
    assert_eq!(table.code, 1, "{}", table.stderr);
    for (what, text) in [("stdout", &table.stdout), ("stderr", &table.stderr)] {
        assert!(
            !text.contains('\u{1b}') && !text.contains('\r'),
            "{what} carries control characters: {text:?}"
        );
    }
    assert!(
        table.stdout.contains(r"fine\u{1b}[2J\u{1b}[Hknn"),
        "{}",
        table.stdout
    );
    // The forged row stays inside the failure's message, indented.
    assert!(
        !table.stdout.lines().any(|l| l.starts_with("knn")),
        "{}",
        table.stdout
    );
    let json = engine(
        &cache,
        &["--candidates", "9", "--format", "json", "--plugin", &spec],
    );
    let v = json.json();
    let r = &v["results"][0];
    assert_eq!(r["error"]["kind"], "router_error");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("fine\u{1b}[2J\u{1b}[Hknn")
    );
    assert!(r["log"].as_str().unwrap().contains("\u{1b}[2J"));
}

/// The embedded dataset with one value changed, written in RouterEval's pickle layout.
fn altered(dir: &Path, name: &str, change: impl FnOnce(&mut RouterDataset)) -> PathBuf {
    let mut ds = embedded::default_dataset().unwrap();
    change(&mut ds);
    let path = dir.join(format!("{name}_router_dataset.pkl"));
    export::write_routereval_pickle(&ds, &path).unwrap();
    path
}

fn set(m: &Matrix<f64>, row: usize, col: usize, v: f64) -> Matrix<f64> {
    let mut data = m.as_slice().to_vec();
    data[row * m.cols() + col] = v;
    Matrix::new(m.rows(), m.cols(), data)
}

fn set32(m: &Matrix<f32>, row: usize, col: usize, v: f32) -> Matrix<f32> {
    let mut data = m.as_slice().to_vec();
    data[row * m.cols() + col] = v;
    Matrix::new(m.rows(), m.cols(), data)
}

fn refused(path: &Path, needles: &[&str]) {
    let out = run(&["--dataset", path.to_str().unwrap(), "--router", "knn"]);
    assert_eq!(out.code, 2, "{}", out.stdout);
    for n in needles {
        assert!(out.stderr.contains(n), "{n:?} not in {}", out.stderr);
    }
}

/// Scores outside [0, 1] (huge, negative, above one, in any split or the labels) and embeddings
/// of no dimension or beyond float32 are refused at load, naming the field, row and column;
/// fractional scores in [0, 1] stay valid.
#[test]
fn dataset_values_no_router_can_use_are_refused_by_field_row_and_column() {
    let dir = TempDir::new("hostile-values");
    let p = altered(dir.path(), "huge", |ds| {
        let pool = &mut ds.pools[0];
        pool.test_scores = set(&pool.test_scores, 4, 2, 1e300);
    });
    refused(
        &p,
        &[
            "['easy'][3]['all_strong']['data']['test_score'] row 4, column 2",
            "1e300 is outside [0, 1]",
        ],
    );
    let p = altered(dir.path(), "negative", |ds| {
        let pool = &mut ds.pools[1];
        pool.val_scores = set32(&pool.val_scores, 0, 1, -5.0);
    });
    refused(
        &p,
        &["['val_score'] row 0, column 1", "-5 is outside [0, 1]"],
    );
    let p = altered(dir.path(), "two", |ds| {
        let pool = &mut ds.pools[2];
        pool.train_scores = set32(&pool.train_scores, 10, 0, 2.0);
    });
    refused(&p, &["['train_score'] row 10, column 0", "2 is outside"]);
    let p = altered(dir.path(), "flat", |ds| {
        for s in [&mut ds.train, &mut ds.val, &mut ds.test] {
            s.embeddings = Matrix::new(s.embeddings.rows(), 0, Vec::new());
        }
    });
    refused(&p, &["['embedding']['train_embed']", "0 values"]);
    // Fractional scores in [0, 1] (TruthfulQA's kind) load and run.
    let p = altered(dir.path(), "fractional", |ds| {
        let pool = &mut ds.pools[0];
        pool.test_scores = set(&pool.test_scores, 4, 2, 0.25);
    });
    let out = run(&["--dataset", p.to_str().unwrap(), "--router", "knn"]);
    assert_eq!(out.code, 0, "{}", out.stderr);

    // The same rules for RouterEval's .npz (embeddings read as float64, narrowed to float32).
    let npz = dir.path().join("pool.npz");
    {
        use ndarray::Array2;
        use ndarray_npy::NpzWriter;
        let mut w = NpzWriter::new(std::fs::File::create(&npz).unwrap());
        let mut e = Array2::<f64>::from_elem((4, 3), 0.5);
        e[[2, 1]] = 1e300;
        for name in ["train_embed", "val_embed", "test_embed"] {
            w.add_array(name, &e).unwrap();
        }
        let s = Array2::<f64>::from_elem((4, 2), 1.0);
        for name in ["train_score", "val_score", "test_score"] {
            w.add_array(name, &s).unwrap();
        }
        w.finish().unwrap();
    }
    refused(
        &npz,
        &[
            "['embedding']['train_embed'] row 2, column 1",
            "not a finite float32",
        ],
    );

    // And for populations, by line and model.
    let jsonl = dir.path().join("queries.jsonl");
    let text = std::fs::read_to_string(shared("llmrouter/queries.jsonl")).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut q: Value = serde_json::from_str(&lines[3]).unwrap();
    q["scores"][4] = Value::from(1.5);
    lines[3] = q.to_string();
    std::fs::write(&jsonl, lines.join("\n")).unwrap();
    std::fs::copy(
        shared("llmrouter/embeddings_minilm_l6.npy"),
        dir.path().join("embeddings_minilm_l6.npy"),
    )
    .unwrap();
    let out = run(&["build-dataset", jsonl.to_str().unwrap()]);
    assert_eq!(out.code, 2, "{}", out.stdout);
    assert!(
        out.stderr
            .contains("line 4: the score of model `llama-3.3-nemotron-super-49b-v1` is 1.5"),
        "{}",
        out.stderr
    );
}
