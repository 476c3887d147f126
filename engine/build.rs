//! Records the git revision the engine is built from (for the reproducibility manifest), when it
//! is built from a checkout with git available; nothing otherwise.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let Some(git_dir) = git(&["rev-parse", "--absolute-git-dir"]) else {
        return;
    };
    // A new commit or checkout moves HEAD or a ref: build again to record it.
    for p in ["HEAD", "refs", "packed-refs"] {
        let path = std::path::Path::new(&git_dir).join(p);
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    if let Some(rev) = git(&["rev-parse", "HEAD"]) {
        println!("cargo:rustc-env=ROUTEREVAL_GIT_REVISION={rev}");
    }
}
