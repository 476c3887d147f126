//! Builds every router the integration tests load as a WebAssembly plugin (the kNN plugin, the
//! example, and the hostile fixtures) for `wasm32-wasip2`, with a nested `cargo build` into its
//! own target directory (`target/wasm-plugins`), and tells the tests where the components are
//! (`ROUTEREVAL_WASM_DIR`). The `.wasm` files are build outputs, never committed.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Crates built as components, by package name.
const PACKAGES: [&str; 5] = [
    "routereval-plugin-knn",
    "best-on-train",
    "routereval-fixture-hostile",
    "routereval-fixture-abi-old",
    "routereval-fixture-missing-export",
];

/// Sources whose change means the components must be rebuilt.
const WATCH: [&str; 7] = [
    "sdk",
    "plugins/knn",
    "examples/best-on-train",
    "tests/fixtures",
    "Cargo.lock",
    "Cargo.toml",
    ".cargo/config.toml",
];

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest.parent().expect("tests/ is inside the workspace");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo"));
    // OUT_DIR is <target>/<profile>/build/<pkg>-<hash>/out.
    let target_dir = out
        .ancestors()
        .nth(4)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| root.join("target"))
        .join("wasm-plugins");
    for w in WATCH {
        println!("cargo:rerun-if-changed={}", root.join(w).display());
    }
    println!("cargo:rerun-if-changed=build.rs");

    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root)
        .args(["build", "--release", "--lib", "--target", "wasm32-wasip2"])
        .arg("--target-dir")
        .arg(&target_dir);
    for p in PACKAGES {
        cmd.args(["-p", p]);
    }
    // The outer build's settings are for the host (and, under clippy, a wrapper); the plugins
    // get the workspace's wasm flags (SIMD) and no debug info.
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
    cmd.env(
        "CARGO_ENCODED_RUSTFLAGS",
        "-Ctarget-feature=+simd128,+relaxed-simd",
    )
    .env("CARGO_PROFILE_RELEASE_DEBUG", "false")
    .env("CARGO_PROFILE_RELEASE_STRIP", "debuginfo");
    let output = cmd
        .output()
        .expect("cannot run cargo to build the WebAssembly plugins");
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
        panic!("building the WebAssembly plugins for the tests failed:{hint}\n{stderr}");
    }
    let dir = target_dir.join("wasm32-wasip2").join("release");
    for p in PACKAGES {
        let file = dir.join(format!("{}.wasm", p.replace('-', "_")));
        assert!(
            file.is_file(),
            "the build did not produce {}",
            file.display()
        );
    }
    println!("cargo:rustc-env=ROUTEREVAL_WASM_DIR={}", dir.display());
}
