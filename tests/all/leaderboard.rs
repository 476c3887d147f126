//! The leaderboard, through the command line and its HTTP server: submissions of the baseline
//! routers as WebAssembly components, a Python router, hostile fixtures; refusals; the ranking,
//! its export and pages (in headless Chromium); concurrent and killed submissions; tokens,
//! quotas and size caps over HTTP; rescore and verify.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use routereval_engine::leaderboard::db::Db;
use serde_json::Value;

use crate::util::{Output, TempDir, native, root, run_binary_in, shared, skip, wasm};

/// A leaderboard configuration over the embedded data with `pools` (a `[pools]` body) and
/// small limits, so hostile routers fail fast.
fn config(pools: &str, extra: &str) -> String {
    format!(
        "title = \"Test board\"\nseed = 0\n[data]\ndatasets = []\n[pools]\n{pools}\n\
         [split]\nseed = 7\npublic_fraction = 0.5\n\
         [statistics]\nreplicates = 500\nseed = 0\nlevel = 0.95\n{extra}\n\
         [sandbox]\nfuel = 20_000_000_000\ntimeout_secs = 120\nmemory_mib = 512\n"
    )
}

fn engine(dir: &Path, args: &[&str]) -> Output {
    let args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    run_binary_in(dir, &args)
}

/// Makes `board.db` in `dir` from `toml`.
fn init(dir: &Path, toml: &str) -> PathBuf {
    std::fs::write(dir.join("lb.toml"), toml).unwrap();
    let out = engine(
        dir,
        &["leaderboard", "init", "board.db", "--config", "lb.toml"],
    );
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("made leaderboard"), "{}", out.stdout);
    dir.join("board.db")
}

fn submit(dir: &Path, name: &str, file: &str, params: &[&str]) -> Output {
    let mut args = vec!["leaderboard", "submit", "board.db", "--name", name];
    for p in params {
        args.extend(["--param", p]);
    }
    args.push(file);
    engine(dir, &args)
}

/// Rows of `show`: (name, mean V_B).
type Rows = Vec<(String, f64)>;

/// `show`'s ranked rows, in order, and the bounds' rows.
fn ranked(show: &str) -> (Rows, Rows) {
    let mut entries = Vec::new();
    let mut bounds = Vec::new();
    for line in show.lines() {
        let cols: Vec<&str> = line
            .split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect();
        if let Some(i) = cols.iter().position(|c| c.ends_with("(bound)")) {
            bounds.push((cols[i].to_string(), cols[i + 1].parse().unwrap()));
        } else if cols.len() >= 5 && cols[0].parse::<usize>().is_ok() && cols[1].starts_with('#') {
            entries.push((cols[2].to_string(), cols[4].parse().unwrap()));
        }
    }
    (entries, bounds)
}

/// Headless Chromium's rendered DOM of `url`, or `None` when Chromium is not installed (the
/// test skips; `.ci/run` installs it).
fn chromium_dom(test: &str, url: &str, screenshot: Option<&Path>) -> Option<String> {
    let bin = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        });
    let Some(bin) = bin else {
        skip(test, "Chromium is not installed (apt-get install chromium)");
        return None;
    };
    let profile = TempDir::new("chromium");
    let run = |extra: &[String]| -> String {
        let mut child = Command::new(bin)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(extra)
            .arg(url)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromium");
        let mut out = String::new();
        let mut stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stdout.read_to_string(&mut s);
            s
        });
        let start = Instant::now();
        while child.try_wait().unwrap().is_none() {
            if start.elapsed() > Duration::from_secs(90) {
                let _ = child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.wait();
        out.push_str(&reader.join().unwrap());
        out
    };
    if let Some(png) = screenshot {
        run(&[
            format!("--screenshot={}", png.display()),
            "--window-size=1280,900".into(),
        ]);
    }
    Some(run(&["--dump-dom".into()]))
}

#[test]
fn baselines_and_hostile_routers_are_ranked_or_failed_with_their_kinds() {
    let test = "baselines_and_hostile_routers_are_ranked_or_failed_with_their_kinds";
    let tmp = TempDir::new("lb-cli");
    let dir = tmp.path();
    let db = init(
        dir,
        &config("difficulty = \"easy\"\ncandidates = [3, 5]", ""),
    );
    let baselines = [
        ("knn", "routereval_plugin_knn"),
        ("linear", "routereval_plugin_linear"),
        ("best-on-train", "routereval_plugin_best_on_train"),
        ("cluster", "routereval_plugin_cluster"),
        ("logreg", "routereval_plugin_logreg"),
    ];
    for (name, stem) in baselines {
        let out = submit(dir, name, &wasm(stem), &[]);
        assert_eq!(out.code, 0, "{name}: {}{}", out.stdout, out.stderr);
        assert!(out.stdout.contains("scored: mean V_B"), "{}", out.stdout);
        assert!(
            out.stderr.contains("[6/6] llmrouter easy m="),
            "progress: {}",
            out.stderr
        );
    }
    // Hostile components: recorded as failed, each with its kind; a file read is denied.
    let label_file = shared("llmrouter/llmrouter_router_dataset.pkl")
        .display()
        .to_string();
    let wasi_params = format!("path={label_file}");
    let hostile: [(&str, &[&str], &str); 7] = [
        ("spins", &["mode=loop"], "out_of_fuel"),
        ("panics", &["mode=panic"], "panic"),
        ("hoards", &["mode=memory_bomb"], "out_of_memory"),
        ("exits", &["mode=exit"], "trap"),
        ("recurses", &["mode=stack_overflow"], "stack_overflow"),
        ("lies", &["mode=nan"], "invalid_output"),
        ("reads labels", &["mode=wasi", &wasi_params], "router_error"),
    ];
    let hostile_wasm = wasm("routereval_fixture_hostile");
    for (name, params, kind) in hostile {
        let out = submit(dir, name, &hostile_wasm, params);
        assert_eq!(out.code, 1, "{name}: {}{}", out.stdout, out.stderr);
        assert!(
            out.stdout.contains(&format!("failed ({kind})")),
            "{name}: {}",
            out.stdout
        );
    }
    for (name, stem, kind) in [
        ("old abi", "routereval_fixture_abi_old", "abi_mismatch"),
        (
            "no export",
            "routereval_fixture_missing_export",
            "missing_export",
        ),
    ] {
        let out = submit(dir, name, &wasm(stem), &[]);
        assert_eq!(out.code, 1, "{name}: {}{}", out.stdout, out.stderr);
        assert!(out.stdout.contains(kind), "{name}: {}", out.stdout);
    }
    // Refused outright, nothing recorded: a native library, a core module, a command, a bad
    // name, a fixed seed.
    std::fs::write(dir.join("core.wasm"), b"\0asm\x01\0\0\0").unwrap();
    let refusals = [
        (
            native("routereval_plugin_knn"),
            "x",
            vec![],
            "native library",
        ),
        (
            "core.wasm".to_string(),
            "x",
            vec![],
            "core WebAssembly module",
        ),
        ("exec:python3 r.py".to_string(), "x", vec![], "exec:"),
        (
            wasm("routereval_plugin_knn"),
            "bad\u{7}name",
            vec![],
            "control",
        ),
        (
            wasm("routereval_plugin_knn"),
            "seeded",
            vec!["seed=3"],
            "seed",
        ),
    ];
    for (file, name, params, says) in &refusals {
        let out = submit(dir, name, file, params);
        assert_eq!(out.code, 2, "{file}: {}{}", out.stdout, out.stderr);
        assert!(out.stderr.contains(says), "{file}: {}", out.stderr);
    }
    // The same component with the same parameters is not run twice.
    let again = submit(dir, "knn again", &wasm("routereval_plugin_knn"), &[]);
    assert_eq!(again.code, 0);
    assert!(
        again
            .stdout
            .contains("already on the leaderboard as entry #1"),
        "{}",
        again.stdout
    );
    let d = Db::open(&db).unwrap();
    assert_eq!(d.submissions().unwrap().len(), 5 + 7 + 2);

    // The ranking: the baselines between the random and oracle bounds, sorted; the bounds are
    // reference rows, not entries; every hostile one failed with its kind.
    let show = engine(dir, &["leaderboard", "show", "board.db"]);
    assert_eq!(show.code, 0, "{}", show.stderr);
    let (entries, bounds) = ranked(&show.stdout);
    let names: Vec<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(entries.len(), 5, "{}", show.stdout);
    for (n, _) in &baselines {
        assert!(names.contains(n), "{n} not ranked:\n{}", show.stdout);
    }
    assert!(
        entries.windows(2).all(|w| w[0].1 >= w[1].1),
        "{}",
        show.stdout
    );
    let bound = |b: &str| bounds.iter().find(|(n, _)| n.starts_with(b)).unwrap().1;
    let (oracle, random) = (bound("oracle"), bound("random"));
    assert!(bound("best-single") == 1.0);
    for (n, v) in &entries {
        assert!(
            *v > random && *v < oracle,
            "{n} {v} outside ({random}, {oracle})"
        );
    }
    // On this data the learned linear routers beat the best single model and kNN does not.
    let vb = |n: &str| entries.iter().find(|(e, _)| e == n).unwrap().1;
    assert!(vb("linear") > vb("best-on-train") && vb("logreg") > vb("best-on-train"));
    assert!(
        vb("best-on-train") == 1.0,
        "best-on-train picks the best single model here"
    );
    let failed = show
        .stdout
        .split("failed:")
        .nth(1)
        .expect("a failed section");
    for (name, _, kind) in hostile {
        assert!(
            failed.lines().any(|l| l.contains(name) && l.contains(kind)),
            "{name} ({kind}) not listed as failed:\n{failed}"
        );
    }
    assert!(failed.contains("abi_mismatch") && failed.contains("missing_export"));
    // The label file was not readable from inside.
    let reader = d
        .submissions()
        .unwrap()
        .into_iter()
        .find(|s| s.name == "reads labels")
        .unwrap();
    let why = reader.error.unwrap();
    assert!(
        why.contains("file denied") && why.contains("socket denied"),
        "{why}"
    );

    // The private part ranks the same entries by other numbers.
    let private = engine(dir, &["leaderboard", "show", "board.db", "--private"]);
    let (p_entries, _) = ranked(&private.stdout);
    assert_eq!(p_entries.len(), 5);
    assert!(private.stdout.contains("private part"));
    assert_ne!(
        p_entries.iter().map(|e| e.1).collect::<Vec<_>>(),
        entries.iter().map(|e| e.1).collect::<Vec<_>>()
    );

    // Export: JSON in the same order, and a page whose ranking Chromium renders.
    let out = engine(
        dir,
        &[
            "leaderboard",
            "export",
            "board.db",
            "--html",
            "board.html",
            "--json",
            "board.json",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("board.json")).unwrap()).unwrap();
    let json_names: Vec<&str> = doc["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["submission"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(json_names, names);
    assert_eq!(doc["failed"].as_array().unwrap().len(), 9);
    assert!(doc["entries"][0]["pools"][0]["metrics"]["mu_ci"].is_array());
    assert!(
        doc["entries"][0]["submission"]
            .get("mean_vb_private")
            .is_none(),
        "public export"
    );
    let html = std::fs::read_to_string(dir.join("board.html")).unwrap();
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no network resources"
    );
    let url = format!("file://{}", dir.join("board.html").display());
    if let Some(dom) = chromium_dom(test, &url, None) {
        assert!(
            dom.contains("data-sortable=\"ready\""),
            "the page's script ran"
        );
        let order: Vec<usize> = names
            .iter()
            .map(|n| {
                dom.find(&format!(">{n}</a>"))
                    .unwrap_or_else(|| panic!("{n} in the DOM"))
            })
            .collect();
        assert!(
            order.windows(2).all(|w| w[0] < w[1]),
            "ranking order in the DOM"
        );
        assert!(dom.contains("id=\"entry-1\""), "the detail of each entry");
    }

    // Rescore of an unchanged database: no change. Verify: the right file passes, another not.
    let out = engine(dir, &["leaderboard", "rescore", "board.db"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .contains("rescored 14 submission(s): no number changed"),
        "{}",
        out.stdout
    );
    let out = engine(
        dir,
        &[
            "leaderboard",
            "verify",
            "board.db",
            "1",
            &wasm("routereval_plugin_knn"),
        ],
    );
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("entry #1 verified"), "{}", out.stdout);
    let out = engine(
        dir,
        &[
            "leaderboard",
            "verify",
            "board.db",
            "1",
            &wasm("routereval_plugin_linear"),
        ],
    );
    assert_eq!(out.code, 1);
    assert!(
        out.stdout.contains("is not this component"),
        "{}",
        out.stdout
    );
    // Revealing the private part: show ranks by it from then on.
    let out = engine(dir, &["leaderboard", "reveal", "board.db"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let shown = engine(dir, &["leaderboard", "show", "board.db"]);
    assert_eq!(ranked(&shown.stdout).0, p_entries);
    assert_eq!(d.integrity_check().unwrap(), "ok");
}

#[test]
fn a_python_router_is_an_entry_and_cannot_read_the_labels_or_the_database() {
    let test = "a_python_router_is_an_entry_and_cannot_read_the_labels_or_the_database";
    let Some(sdk) = crate::python_sdk::sdk_command(test) else {
        return;
    };
    let tmp = TempDir::new("lb-python");
    let dir = tmp.path();
    let db = init(dir, &config("difficulty = \"easy\"\ncandidates = [3]", ""));
    let src = root().join("tests/fixtures/leaderboard/lb_py.py");
    let built = Command::new(&sdk)
        .current_dir(dir)
        .arg("build")
        .arg(&src)
        .args(["-o", "lb.wasm"])
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    for (name, file) in [
        ("knn", wasm("routereval_plugin_knn")),
        ("linear", wasm("routereval_plugin_linear")),
    ] {
        assert_eq!(submit(dir, name, &file, &[]).code, 0);
    }
    let out = submit(dir, "python random", "lb.wasm", &["mode=random"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let labels = shared("llmrouter/llmrouter_router_dataset.pkl")
        .display()
        .to_string();
    let out = submit(
        dir,
        "python peek",
        "lb.wasm",
        &[
            "mode=peek",
            &format!("path={labels}"),
            &format!("db={}", db.display()),
        ],
    );
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("failed (fit_error)"), "{}", out.stdout);
    assert!(
        out.stdout.contains(&format!("cannot read {labels}")),
        "{}",
        out.stdout
    );
    let d = Db::open(&db).unwrap();
    let peek = d
        .submissions()
        .unwrap()
        .into_iter()
        .find(|s| s.name == "python peek")
        .unwrap();
    assert_eq!(peek.status, "failed");
    assert!(
        d.results(peek.id)
            .unwrap()
            .iter()
            .all(|r| r.public.is_none() && r.scores.is_none())
    );
    // The random-like Python router ranks last, at the random bound.
    let show = engine(dir, &["leaderboard", "show", "board.db"]);
    let (entries, bounds) = ranked(&show.stdout);
    assert_eq!(
        entries.last().unwrap().0,
        "python random",
        "{}",
        show.stdout
    );
    let random = bounds.iter().find(|b| b.0.starts_with("random")).unwrap().1;
    assert!(
        (entries.last().unwrap().1 - random).abs() < 0.05,
        "{}",
        show.stdout
    );
    assert!(
        show.stdout.contains("differs"),
        "knn and linear differ from random:\n{}",
        show.stdout
    );
}

/// Waits for a line containing `needle` on `reader`, returning it (bounded).
fn wait_line(reader: &mut impl BufRead, needle: &str) -> String {
    let start = Instant::now();
    let mut line = String::new();
    while start.elapsed() < Duration::from_secs(120) {
        line.clear();
        if reader.read_line(&mut line).unwrap() == 0 {
            break;
        }
        if line.contains(needle) {
            return line;
        }
    }
    panic!("no line with `{needle}`");
}

fn spawn_engine(dir: &Path, args: &[&str], stdout: bool) -> Child {
    Command::new(env!("CARGO_BIN_EXE_engine"))
        .current_dir(dir)
        .args(args)
        .stdin(Stdio::null())
        .stdout(if stdout {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn wait_bounded(child: &mut Child, secs: u64) -> i32 {
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s.code().unwrap_or(-1);
        }
        if start.elapsed() > Duration::from_secs(secs) {
            let _ = child.kill();
            panic!("a process ran past {secs} s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn concurrent_submits_land_and_a_killed_submit_leaves_nothing_half_recorded() {
    let tmp = TempDir::new("lb-kill");
    let dir = tmp.path();
    let db = init(
        dir,
        &config("difficulty = \"easy\"\ncandidates = [3, 5]", ""),
    );
    // Two different submissions and two copies of a third, all at once.
    let (knn, linear, cluster) = (
        wasm("routereval_plugin_knn"),
        wasm("routereval_plugin_linear"),
        wasm("routereval_plugin_cluster"),
    );
    let mut children: Vec<Child> = [
        ("knn", knn.as_str()),
        ("linear", linear.as_str()),
        ("cluster", cluster.as_str()),
        ("cluster twin", cluster.as_str()),
    ]
    .iter()
    .map(|(n, f)| {
        spawn_engine(
            dir,
            &["leaderboard", "submit", "board.db", "--name", n, f],
            true,
        )
    })
    .collect();
    for c in &mut children {
        assert_eq!(wait_bounded(c, 300), 0);
    }
    let d = Db::open(&db).unwrap();
    let subs = d.submissions().unwrap();
    assert_eq!(subs.len(), 3, "{subs:?}");
    assert!(subs.iter().all(|s| s.status == "scored"));
    assert_eq!(
        subs.iter().filter(|s| s.sha256 == subs[2].sha256).count(),
        1
    );

    // SIGKILL while a submission is being scored.
    let hostile = wasm("routereval_fixture_hostile");
    let args = [
        "leaderboard",
        "submit",
        "board.db",
        "--name",
        "slow",
        "--param",
        "mode=loop",
        hostile.as_str(),
    ];
    let mut child = spawn_engine(dir, &args, false);
    let mut err = BufReader::new(child.stderr.take().unwrap());
    wait_line(&mut err, "scoring `slow`");
    std::thread::sleep(Duration::from_millis(400));
    child.kill().unwrap();
    let _ = child.wait();
    let d = Db::open(&db).unwrap();
    assert_eq!(d.integrity_check().unwrap(), "ok");
    assert_eq!(
        d.submissions().unwrap().len(),
        3,
        "nothing of the killed submission"
    );
    // And it can be submitted again, to the end.
    let out = engine(dir, &args[..]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("failed (out_of_fuel)"),
        "{}",
        out.stdout
    );
    assert_eq!(d.submissions().unwrap().len(), 4);
    assert_eq!(d.results(4).unwrap().len(), 6);
}

/// One HTTP/1.1 request on a fresh connection; `(status, body)`. `body` is sent with a
/// `Content-Length` unless `declared` overrides it.
fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-length"))
    {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    // The server may answer and close before the whole body is sent (a refusal).
    let _ = s.write_all(body);
    read_response(&mut s)
}

fn read_response(s: &mut TcpStream) -> (u16, String) {
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).to_string();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

fn query_escape(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

struct Server {
    child: Child,
    addr: String,
}

impl Server {
    fn start(dir: &Path) -> Server {
        let mut child = spawn_engine(
            dir,
            &[
                "leaderboard",
                "serve",
                "board.db",
                "--listen",
                "127.0.0.1:0",
            ],
            true,
        );
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let line = wait_line(&mut out, "listening on http://");
        let addr = line.trim().rsplit("http://").next().unwrap().to_string();
        // Keep draining the server's log so it never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sink = String::new();
            while out.read_line(&mut sink).is_ok_and(|n| n > 0) {
                sink.clear();
            }
        });
        Server { child, addr }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn status_of(addr: &str, id: i64) -> Value {
    let (code, body) = http(addr, "GET", &format!("/api/submissions/{id}"), &[], b"");
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn wait_status(addr: &str, id: i64, done: &[&str]) -> Value {
    let start = Instant::now();
    loop {
        let v = status_of(addr, id);
        if done.contains(&v["status"].as_str().unwrap()) {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(180),
            "submission {id} stuck: {v}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_server_takes_submissions_with_tokens_quotas_caps_and_survives_a_kill() {
    let test = "the_server_takes_submissions_with_tokens_quotas_caps_and_survives_a_kill";
    let tmp = TempDir::new("lb-server");
    let dir = tmp.path();
    let db = init(
        dir,
        &config(
            "difficulty = \"easy\"\ncandidates = [3, 5]",
            "[submissions]\nmax_component_mib = 1\ndaily_quota = 3\n",
        ),
    );
    let token = engine(dir, &["leaderboard", "token", "add", "board.db", "alice"]);
    assert_eq!(token.code, 0, "{}", token.stderr);
    let secret = token.stdout.trim().to_string();
    assert!(secret.starts_with("rlb_") && secret.len() > 60);
    let stored = std::fs::read(&db).unwrap();
    assert!(
        !String::from_utf8_lossy(&stored).contains(&secret),
        "only the hash is stored"
    );
    let mut server = Server::start(dir);
    let addr = server.addr.clone();
    let auth = format!("Bearer {secret}");
    let knn = std::fs::read(wasm("routereval_plugin_knn")).unwrap();

    // 401 without a token and with a wrong one; 400 for what is not a component.
    let (code, _) = http(&addr, "POST", "/api/submissions?name=x", &[], &knn);
    assert_eq!(code, 401);
    let (code, _) = http(
        &addr,
        "POST",
        "/api/submissions?name=x",
        &[("Authorization", "Bearer rlb_wrong")],
        &knn,
    );
    assert_eq!(code, 401);
    let mut broken = knn.clone();
    broken.truncate(knn.len() / 2);
    let (code, body) = http(
        &addr,
        "POST",
        "/api/submissions?name=x",
        &[("Authorization", &auth)],
        &broken,
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("malformed"), "{body}");
    let elf = std::fs::read(native("routereval_plugin_knn")).unwrap();
    let (code, body) = http(
        &addr,
        "POST",
        "/api/submissions?name=x",
        &[
            ("Authorization", &auth),
            ("Content-Length", &elf.len().to_string()),
        ],
        &elf[..elf.len().min(1 << 20)],
    );
    assert!(code == 400 || code == 413, "{code} {body}");
    // 413 from the declared length, before any body is read.
    let (code, _) = http(
        &addr,
        "POST",
        "/api/submissions?name=x",
        &[("Authorization", &auth), ("Content-Length", "50000000")],
        b"",
    );
    assert_eq!(code, 413);
    // 413 for a chunked body once it passes the cap: the server stops reading, answers early.
    {
        let mut s = TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let head = format!(
            "POST /api/submissions?name=x HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {auth}\r\n\
             Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        );
        s.write_all(head.as_bytes()).unwrap();
        let chunk = vec![0u8; 64 << 10];
        let mut sent = 0usize;
        // Up to 64 MiB: far more than the cap; the server must answer long before.
        for _ in 0..1024 {
            let frame = format!("{:x}\r\n", chunk.len());
            if s.write_all(frame.as_bytes()).is_err()
                || s.write_all(&chunk).is_err()
                || s.write_all(b"\r\n").is_err()
            {
                break;
            }
            sent += chunk.len();
        }
        let (code, _) = read_response(&mut s);
        assert_eq!(code, 413);
        assert!(sent < 60 << 20, "the server kept reading ({sent} bytes)");
    }

    // A submission named with markup: queued, scored, shown as text.
    let name = "<script>alert(1)</script>";
    let (code, body) = http(
        &addr,
        "POST",
        &format!("/api/submissions?name={}&author=eve", query_escape(name)),
        &[("Authorization", &auth)],
        &knn,
    );
    assert_eq!(code, 202, "{body}");
    let id = serde_json::from_str::<Value>(&body).unwrap()["id"]
        .as_i64()
        .unwrap();
    let v = wait_status(&addr, id, &["scored", "failed"]);
    assert_eq!(v["status"], "scored", "{v}");
    assert!(v["mean_vb_public"].as_f64().unwrap() > 0.9);
    assert!(
        v.get("mean_vb_private").is_none(),
        "private numbers stay hidden"
    );
    // The same again: 409, not queued.
    let (code, body) = http(
        &addr,
        "POST",
        "/api/submissions?name=again",
        &[("Authorization", &auth)],
        &knn,
    );
    assert_eq!(code, 409, "{body}");
    for path in ["/".to_string(), format!("/entries/{id}")] {
        let (code, page) = http(&addr, "GET", &path, &[], b"");
        assert_eq!(code, 200);
        assert!(
            page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{path}"
        );
        assert!(!page.contains(name), "{path} has the raw markup");
    }

    // A submission being scored when the server is killed is scored after the restart.
    let hostile = std::fs::read(wasm("routereval_fixture_hostile")).unwrap();
    let (code, body) = http(
        &addr,
        "POST",
        "/api/submissions?name=slow&params=mode%3Dloop",
        &[("Authorization", &auth)],
        &hostile,
    );
    assert_eq!(code, 202, "{body}");
    let slow = serde_json::from_str::<Value>(&body).unwrap()["id"]
        .as_i64()
        .unwrap();
    wait_status(&addr, slow, &["running"]);
    std::thread::sleep(Duration::from_millis(300));
    server.child.kill().unwrap();
    let _ = server.child.wait();
    {
        let d = Db::open(&db).unwrap();
        assert_eq!(d.integrity_check().unwrap(), "ok");
        let s = d.submission(slow).unwrap().unwrap();
        assert_eq!(s.status, "running");
        assert!(d.results(slow).unwrap().is_empty(), "nothing half-recorded");
    }
    let server = Server::start(dir);
    let addr = server.addr.clone();
    let v = wait_status(&addr, slow, &["scored", "failed"]);
    assert_eq!(v["status"], "failed");
    assert_eq!(v["error_kinds"][0], "out_of_fuel");
    assert_eq!(Db::open(&db).unwrap().results(slow).unwrap().len(), 6);

    // The quota: 3 a day; a fourth is refused before its body is read.
    let linear = std::fs::read(wasm("routereval_plugin_linear")).unwrap();
    let (code, body) = http(
        &addr,
        "POST",
        "/api/submissions?name=more",
        &[("Authorization", &auth)],
        &linear,
    );
    assert_eq!(code, 202, "{body}");
    let (code, body) = http(
        &addr,
        "POST",
        "/api/submissions?name=even+more",
        &[("Authorization", &auth)],
        &knn,
    );
    assert_eq!(code, 429, "{body}");

    // The served page, rendered: the ranking is in the DOM and the name is text.
    let png = std::env::var_os("ROUTEREVAL_SCREENSHOT").map(PathBuf::from);
    if let Some(dom) = chromium_dom(test, &format!("http://{addr}/"), png.as_deref()) {
        assert!(dom.contains("data-sortable=\"ready\""), "{dom}");
        assert!(dom.contains(&format!("data-entry=\"{id}\"")), "{dom}");
        assert!(dom.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    }
    // The exported page shows the name as text too.
    let out = engine(
        dir,
        &["leaderboard", "export", "board.db", "--html", "board.html"],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let page = std::fs::read_to_string(dir.join("board.html")).unwrap();
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;") && !page.contains(name));
    let url = format!("file://{}", dir.join("board.html").display());
    if let Some(dom) = chromium_dom(test, &url, None) {
        assert!(dom.contains("data-sortable=\"ready\""));
        assert!(dom.contains(&format!("id=\"entry-{id}\"")));
        assert!(dom.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    }
    let api: Value =
        serde_json::from_str(&http(&addr, "GET", "/api/leaderboard", &[], b"").1).unwrap();
    // A revoked token is refused.
    let out = engine(
        dir,
        &["leaderboard", "token", "revoke", "board.db", "alice"],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let (code, _) = http(
        &addr,
        "POST",
        "/api/submissions?name=late",
        &[("Authorization", &auth)],
        &knn,
    );
    assert_eq!(code, 401);
    let entries = api["entries"].as_array().unwrap();
    assert!(
        entries.iter().any(|e| e["submission"]["name"] == name),
        "{api}"
    );
    assert!(
        entries
            .iter()
            .all(|e| e["submission"].get("mean_vb_private").is_none())
    );
}

#[test]
fn a_board_over_two_benchmarks_has_their_columns_and_is_bound_to_their_files() {
    let tmp = TempDir::new("lb-two");
    let dir = tmp.path();
    // Copies: the test changes one of them afterwards.
    for (src, dst) in [
        (
            "llmrouter/llmrouter_router_dataset.pkl",
            "llmrouter_router_dataset.pkl",
        ),
        (
            "fixtures/synth_numpy2_protocol5.pkl",
            "synth_router_dataset.pkl",
        ),
    ] {
        std::fs::copy(shared(src), dir.join(dst)).unwrap();
    }
    let toml = config("difficulty = \"easy\"\ncandidates = [3]", "").replace(
        "datasets = []",
        "datasets = [\"llmrouter_router_dataset.pkl\", \"synth_router_dataset.pkl\"]",
    );
    let db = init(dir, &toml);
    for (name, stem) in [
        ("knn", "routereval_plugin_knn"),
        ("linear", "routereval_plugin_linear"),
    ] {
        let out = submit(dir, name, &wasm(stem), &[]);
        assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    }
    // The same router under its default parameter spelled out: another entry, the same numbers,
    // ranked after the first (same V_B and fuel: the earlier entry first), and no difference.
    let out = submit(dir, "knn k=5", &wasm("routereval_plugin_knn"), &["k=5"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let show = engine(dir, &["leaderboard", "show", "board.db"]);
    let header = show.stdout.lines().find(|l| l.starts_with("rank")).unwrap();
    assert!(
        header.contains("llmrouter") && header.contains("synth"),
        "{header}"
    );
    assert!(
        show.stdout.contains("2 benchmark(s), 6 pool(s)"),
        "{}",
        show.stdout
    );
    // The mean is over the six pools; each benchmark's column over its three.
    let out = engine(
        dir,
        &["leaderboard", "export", "board.db", "--json", "board.json"],
    );
    assert_eq!(out.code, 0);
    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("board.json")).unwrap()).unwrap();
    for e in doc["entries"].as_array().unwrap() {
        let pools: Vec<f64> = e["pools"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p["metrics"]["vb"].as_f64())
            .collect();
        assert_eq!(e["pools"].as_array().unwrap().len(), 6);
        // A pool where every model scores 0 on the public part has no V_B and is left out.
        assert!(pools.len() >= 5, "{e}");
        let mean = pools.iter().sum::<f64>() / pools.len() as f64;
        assert!((e["mean_vb"].as_f64().unwrap() - mean).abs() < 1e-12);
        let per = &e["per_benchmark"];
        let (a, b) = (
            per["llmrouter"].as_f64().unwrap(),
            per["synth"].as_f64().unwrap(),
        );
        // llmrouter's three pools all have a V_B; synth's 24 queries may leave one without.
        let k = pools.len() as f64;
        assert!(
            ((3.0 * a + (k - 3.0) * b) / k - mean).abs() < 1e-12,
            "{per} {e}"
        );
        assert!(e["p_vs_next"].is_null() || e["p_vs_next"].as_f64().unwrap() <= 1.0);
        let (lo, hi) = (
            e["mean_vb_ci"][0].as_f64().unwrap(),
            e["mean_vb_ci"][1].as_f64().unwrap(),
        );
        assert!(lo < mean && mean < hi, "{lo} {mean} {hi}");
    }
    let names: Vec<&str> = doc["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["submission"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["linear", "knn", "knn k=5"]);
    assert!(doc["entries"][0]["p_vs_next"].is_number());
    assert_eq!(
        doc["entries"][1]["p_vs_next"], 1.0,
        "identical routings do not differ"
    );
    assert_eq!(doc["entries"][1]["mean_vb"], doc["entries"][2]["mean_vb"]);
    // A changed dataset file: every later scoring refuses, naming the file.
    let f = dir.join("synth_router_dataset.pkl");
    let mut bytes = std::fs::read(&f).unwrap();
    bytes.push(b'.');
    std::fs::write(&f, bytes).unwrap();
    let out = submit(dir, "cluster", &wasm("routereval_plugin_cluster"), &[]);
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("synth_router_dataset.pkl")
            && out
                .stderr
                .contains("changed since the leaderboard was made"),
        "{}",
        out.stderr
    );
    let out = engine(dir, &["leaderboard", "rescore", "board.db"]);
    assert_eq!(out.code, 2);
    assert_eq!(Db::open(&db).unwrap().submissions().unwrap().len(), 3);
}
