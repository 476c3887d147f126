//! Builds every router the integration tests load as a plugin, with nested `cargo build`s into
//! their own target directories, and tells the tests where the results are:
//!
//! - WebAssembly components (`wasm32-wasip2`, SIMD) into `target/wasm-plugins`:
//!   `ROUTEREVAL_WASM_DIR`;
//! - native libraries (the host, each router crate's `native-plugin` feature on) into
//!   `target/native-plugins`: `ROUTEREVAL_NATIVE_DIR`.
//!
//! The routers are every crate in `plugins/` (found by reading the directory, so a new router
//! is built all three ways without touching this file), the example, and the fixtures. The
//! built files are build outputs, never committed.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Fixtures and examples built as components, besides the crates in `plugins/`.
const WASM_EXTRA: [&str; 4] = [
    "routereval-fixture-hostile",
    "routereval-fixture-abi-old",
    "routereval-fixture-abi-1-0",
    "routereval-fixture-missing-export",
];

/// Fixtures and examples built as native libraries, besides the crates in `plugins/`.
/// (`not-a-router` has no `native-plugin` feature: it is a library without a root module.)
const NATIVE_EXTRA: [&str; 4] = [
    "routereval-fixture-hostile",
    "routereval-fixture-old-sdk",
    "routereval-fixture-bad-layout",
    "routereval-fixture-not-a-router",
];

/// Sources whose change means the plugins must be rebuilt.
const WATCH: [&str; 6] = [
    "sdk",
    "plugins",
    "tests/fixtures",
    "Cargo.lock",
    "Cargo.toml",
    ".cargo/config.toml",
];

/// The package names of the router crates in `plugins/`.
fn plugin_crates(root: &Path) -> Vec<String> {
    let mut names = Vec::new();
    let dir = root.join("plugins");
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path().join("Cargo.toml")))
        .filter(|p| p.is_file())
        .collect();
    entries.sort();
    for manifest in entries {
        let text = std::fs::read_to_string(&manifest).expect("readable manifest");
        // Routers that are built in only (no `cdylib`: `mlc`, which reads model files from disk
        // and links the tokenizer's C regex library) are not plugins.
        if !text.contains("\"cdylib\"") {
            continue;
        }
        let name = text
            .lines()
            .skip_while(|l| l.trim() != "[package]")
            .find_map(|l| {
                let (k, v) = l.split_once('=')?;
                (k.trim() == "name").then(|| v.trim().trim_matches('"').to_string())
            })
            .unwrap_or_else(|| panic!("{} has no package name", manifest.display()));
        names.push(name);
    }
    names
}

/// `cargo build --release --lib` of `packages` in the workspace at `root`, isolated from the
/// outer build's settings (those are for the host, and under clippy, a wrapper).
fn nested_build(root: &Path, target_dir: &Path, extra: &[String], rustflags: &str, what: &str) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root)
        .args(["build", "--release", "--lib"])
        .arg("--target-dir")
        .arg(target_dir)
        .args(extra);
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("CARGO_ENCODED_RUSTFLAGS", rustflags)
        .env("CARGO_PROFILE_RELEASE_DEBUG", "false")
        .env("CARGO_PROFILE_RELEASE_STRIP", "debuginfo");
    let output = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run cargo to build the {what}: {e}"));
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let hint = if stderr.contains("wasm32-wasip2")
            && (stderr.contains("target may not be installed")
                || stderr.contains("can't find crate for `core`")
                || stderr.contains("can't find crate for `std`"))
        {
            "\nThe wasm32-wasip2 target is not installed: run `rustup target add wasm32-wasip2`.\n"
        } else {
            ""
        };
        panic!("building the {what} for the tests failed:{hint}\n{stderr}");
    }
}

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest.parent().expect("tests/ is inside the workspace");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo"));
    // OUT_DIR is <target>/<profile>/build/<pkg>-<hash>/out.
    let target = out
        .ancestors()
        .nth(4)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| root.join("target"));
    for w in WATCH {
        println!("cargo:rerun-if-changed={}", root.join(w).display());
    }
    println!("cargo:rerun-if-changed=build.rs");
    let routers = plugin_crates(root);

    // WebAssembly components.
    let wasm_packages: Vec<String> = routers
        .iter()
        .cloned()
        .chain(WASM_EXTRA.iter().map(|s| s.to_string()))
        .collect();
    let wasm_target = target.join("wasm-plugins");
    let mut args = vec!["--target".to_string(), "wasm32-wasip2".to_string()];
    for p in &wasm_packages {
        args.extend(["-p".to_string(), p.clone()]);
    }
    nested_build(
        root,
        &wasm_target,
        &args,
        "-Ctarget-feature=+simd128,+relaxed-simd",
        "WebAssembly plugins",
    );
    let wasm_dir = wasm_target.join("wasm32-wasip2").join("release");
    for p in &wasm_packages {
        let file = wasm_dir.join(format!("{}.wasm", p.replace('-', "_")));
        assert!(
            file.is_file(),
            "the build did not produce {}",
            file.display()
        );
    }
    println!("cargo:rustc-env=ROUTEREVAL_WASM_DIR={}", wasm_dir.display());

    // Native libraries, with each router crate's `native-plugin` feature.
    let native_packages: Vec<String> = routers
        .iter()
        .cloned()
        .chain(NATIVE_EXTRA.iter().map(|s| s.to_string()))
        .collect();
    let native_target = target.join("native-plugins");
    let mut args = Vec::new();
    let mut features = Vec::new();
    for p in &native_packages {
        args.extend(["-p".to_string(), p.clone()]);
        if p != "routereval-fixture-not-a-router" {
            features.push(format!("{p}/native-plugin"));
        }
    }
    args.extend(["--features".to_string(), features.join(",")]);
    nested_build(root, &native_target, &args, "", "native plugins");
    let native_dir = native_target.join("release");
    for p in &native_packages {
        let file = native_dir.join(format!(
            "{}{}{}",
            std::env::consts::DLL_PREFIX,
            p.replace('-', "_"),
            std::env::consts::DLL_SUFFIX
        ));
        assert!(
            file.is_file(),
            "the build did not produce {}",
            file.display()
        );
    }
    println!(
        "cargo:rustc-env=ROUTEREVAL_NATIVE_DIR={}",
        native_dir.display()
    );
}
