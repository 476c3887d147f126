//! Every file in `configs/` parses and runs; a config means the same as its command line.

use routereval_engine::Registry;
use routereval_engine::cli::config::RunConfig;
use routereval_engine::eval::contestant;
use routereval_engine::leaderboard::config::BoardConfig;

use crate::util::{TempDir, results_without_times, root, run};

#[test]
fn every_config_parses_and_its_routers_exist() {
    let reg = Registry::builtin();
    let mut n = 0;
    for e in std::fs::read_dir(root().join("configs")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().and_then(|x| x.to_str()) != Some("toml") {
            continue;
        }
        if p.file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("leaderboard")
        {
            // A leaderboard's configuration: it reads, and a leaderboard is made from it.
            BoardConfig::read(&p).unwrap_or_else(|e| panic!("{}: {e:#}", p.display()));
            let dir = TempDir::new("config-leaderboard");
            let db = dir.path().join("board.db");
            let out = run(&[
                "leaderboard",
                "init",
                db.to_str().unwrap(),
                "--config",
                p.to_str().unwrap(),
            ]);
            assert_eq!(out.code, 0, "{}: {}", p.display(), out.stderr);
            n += 1;
            continue;
        }
        let cfg = RunConfig::load(&p).unwrap_or_else(|e| panic!("{}: {e:#}", p.display()));
        for r in &cfg.routers {
            match (&r.name, &r.plugin) {
                (Some(name), _) => {
                    contestant::build(name, r.params(0).unwrap(), &reg)
                        .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                }
                (None, plugin) => panic!(
                    "{}: shipped configs name no plugin file ({plugin:?})",
                    p.display()
                ),
            }
        }
        n += 1;
    }
    assert!(n >= 1, "no config found");
}

#[test]
fn default_config_equals_the_default_run() {
    let cfg = root().join("configs/default.toml");
    let a = run(&["--config", cfg.to_str().unwrap(), "--format", "json"]);
    let b = run(&["--format", "json"]);
    assert_eq!(a.code, 0, "{}", a.stderr);
    assert_eq!(
        results_without_times(&a.json()),
        results_without_times(&b.json())
    );
}

#[test]
fn config_errors_name_the_file_and_field() {
    let dir = TempDir::new("cfg");
    let f = dir.path().join("bad.toml");
    std::fs::write(&f, "seed = 1\nroutres = []\n").unwrap();
    let out = run(&["--config", f.to_str().unwrap()]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("invalid config") && out.stderr.contains("bad.toml"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("unknown field `routres`"),
        "{}",
        out.stderr
    );
    std::fs::write(&f, "[[router]]\nname = \"knn\"\nparams = { k = [1] }\n").unwrap();
    let out = run(&["--config", f.to_str().unwrap()]);
    assert!(
        out.stderr.contains("parameter `k` is a array"),
        "{}",
        out.stderr
    );
    std::fs::write(
        &f,
        "format = \"json\"\ncandidates = [3]\n[[router]]\nname = \"knn\"\nparams = { k = 3 }\n",
    )
    .unwrap();
    let out = run(&["--config", f.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let rs = results_without_times(&out.json());
    assert_eq!(rs.len(), 3);
    assert_eq!(rs[0]["router"], "knn:k=3");
}
