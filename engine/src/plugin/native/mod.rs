//! Native router plugins: dynamic libraries (`.so`, `.dylib`, `.dll`) that export the SDK's
//! `abi_stable` root module (see `routereval_sdk::native`), run in the engine's process or, by
//! default, each evaluation in a child process of the engine binary ([`crate::plugin::native::isolate`]).
//!
//! A native plugin runs at full native speed, and with full native power: in-process it can do
//! anything the engine can, and a crash in it (a segfault, an abort, `exit`) ends the engine.
//! Process isolation contains the crash (it becomes the typed failure of that one evaluation:
//! `crash`, `abort`, `timeout`), not a malicious plugin: a child process still has the user's
//! files and network. Untrusted code belongs in the WebAssembly sandbox.
//!
//! Load-time checks, in-process or in the probe child, all before any router code runs through
//! the module: the file is a library the platform can load (else an input error, exit 2), it
//! exports the root module (else every evaluation fails `missing_export`), and `abi_stable`
//! finds the SDK version compatible and every type's layout the expected one (else
//! `abi_mismatch`, naming both versions).

pub mod isolate;

use std::fmt;
use std::path::{Path, PathBuf};

use abi_stable::library::{LibraryError, lib_header_from_path};
use abi_stable::std_types::{RResult, RSlice};
use anyhow::{Context, Result, bail};
use routereval_sdk::native::{
    self as abi, NativeError, RouterModuleRef, params_to_native, queries_to_native, rstrs,
    split_to_native,
};
use routereval_sdk::{Params, Queries, Routing, SDK_VERSION, Split};

use crate::eval::contestant::ContestantKind;
use crate::eval::outcome::{Answer, Attempt};
use crate::failure::{Failure, FailureKind};
use crate::plugin::policy::SandboxPolicy;
use crate::plugin::{LoadedPlugin, PluginContestant};
use crate::util::clip;

/// The native ABI this engine implements, as shown in results: the SDK's version (the one
/// `abi_stable` checks a library's against) and the `abi_stable` line.
pub fn abi() -> String {
    format!("routereval-sdk {SDK_VERSION} (abi_stable 0.11)")
}

/// Where a native plugin's evaluations run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Isolation {
    /// In the engine's process: fastest; a crash ends the engine.
    InProcess,
    /// Each evaluation in a fresh child process of the engine binary.
    Process,
}

impl fmt::Display for Isolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Isolation::InProcess => "in-process",
            Isolation::Process => "process",
        })
    }
}

/// What the file at a plugin path is, by its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PluginFormat {
    /// A WebAssembly binary (`\0asm`).
    Wasm,
    /// A native library: ELF, Mach-O or PE.
    Native,
}

/// Whether `head` (a file's first bytes) is a native library's magic number: ELF, PE (`MZ`) or
/// Mach-O (either byte order, 32 or 64 bits, or universal).
pub fn is_native_library(head: &[u8]) -> bool {
    const MACHO: [[u8; 4]; 5] = [
        [0xfe, 0xed, 0xfa, 0xce],
        [0xfe, 0xed, 0xfa, 0xcf],
        [0xce, 0xfa, 0xed, 0xfe],
        [0xcf, 0xfa, 0xed, 0xfe],
        [0xca, 0xfe, 0xba, 0xbe],
    ];
    head.starts_with(b"\x7fELF")
        || head.starts_with(b"MZ")
        || MACHO.iter().any(|m| head.starts_with(m))
}

/// Tells a WebAssembly component from a native library by the file's magic number.
///
/// # Errors
/// The file cannot be read, or is neither.
pub fn sniff(path: &Path) -> Result<PluginFormat> {
    use std::io::Read;
    let mut head = [0u8; 4];
    let mut f = std::fs::File::open(path)
        .with_context(|| format!("cannot read plugin `{}`", path.display()))?;
    let n = f
        .read(&mut head)
        .with_context(|| format!("cannot read plugin `{}`", path.display()))?;
    let head = &head[..n];
    // A `.wasm` file that is not one goes to the WebAssembly loader, which says what is wrong.
    if head == b"\0asm" || path.extension().is_some_and(|e| e == "wasm") {
        Ok(PluginFormat::Wasm)
    } else if is_native_library(head) {
        Ok(PluginFormat::Native)
    } else {
        bail!(
            "plugin `{}` is neither a WebAssembly component nor a native library (ELF, Mach-O or \
             PE): give a `.wasm` built for wasm32-wasip2, or the `{}` a router crate builds with \
             `--features native-plugin`",
            path.display(),
            library_file_name("my_router")
        )
    }
}

/// The platform's file name for a library called `stem`: `libstem.so`, `libstem.dylib` or
/// `stem.dll`.
pub fn library_file_name(stem: &str) -> String {
    format!(
        "{}{stem}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    )
}

fn unusable(kind: FailureKind, message: String) -> Failure {
    Failure::new(kind, message)
}

/// Why a library could not be used.
#[derive(Debug)]
pub enum LoadError {
    /// Not loadable at all (missing, not a library for this platform, unresolved symbols): an
    /// input error.
    Fatal(String),
    /// Loadable, but not a compatible router plugin: every evaluation fails with this.
    Unusable(Failure),
}

/// Loads the library into this process and checks its root module. Runs the library's
/// initialisers: call it in the process that will run the router.
///
/// # Errors
/// See [`LoadError`].
pub fn open(path: &Path) -> std::result::Result<RouterModuleRef, LoadError> {
    let p = path.display();
    let header = lib_header_from_path(path).map_err(|e| match e {
        LibraryError::GetSymbolError { .. } => LoadError::Unusable(unusable(
            FailureKind::MissingExport,
            format!(
                "plugin `{p}` is a library but exports no routereval root module; a Rust router \
                 gets it from `routereval_sdk::export_router!(MyRouter)` in a crate built as a \
                 cdylib with its `native-plugin` feature on (`cargo build --release --features \
                 native-plugin`)"
            ),
        )),
        other => LoadError::Fatal(format!(
            "cannot load native plugin `{p}`: {}",
            clip(&other.to_string(), 2000)
        )),
    })?;
    header
        .init_root_module::<RouterModuleRef>()
        .map_err(|e| LoadError::Unusable(describe(path, e)))
}

fn describe(path: &Path, e: LibraryError) -> Failure {
    let p = path.display();
    match e {
        LibraryError::IncompatibleVersionNumber {
            expected_version,
            actual_version,
            ..
        } => unusable(
            FailureKind::AbiMismatch,
            format!(
                "plugin `{p}` was built against routereval-sdk {actual_version}; this engine \
                 loads native plugins of routereval-sdk {expected_version} (the same major \
                 version, and before 1.0 the same minor): rebuild the plugin against \
                 routereval-sdk {SDK_VERSION}"
            ),
        ),
        LibraryError::AbiInstability(err) => unusable(
            FailureKind::AbiMismatch,
            format!(
                "plugin `{p}` claims a compatible routereval-sdk version but its types have \
                 another layout than this engine's (routereval-sdk {SDK_VERSION}); rebuild it \
                 against this SDK. abi_stable says: {}",
                clip(&err.to_string(), 2000)
            ),
        ),
        LibraryError::RootModule { err, .. } => unusable(
            FailureKind::RouterError,
            format!(
                "plugin `{p}`: building its root module failed: {}",
                clip(&err.to_string(), 2000)
            ),
        ),
        other => unusable(
            FailureKind::AbiMismatch,
            format!(
                "plugin `{p}` is not a compatible routereval native plugin: {}",
                clip(&other.to_string(), 2000)
            ),
        ),
    }
}

/// The name and SDK version a root module reports (the name sanitised as for WASM plugins).
pub fn module_info(module: RouterModuleRef) -> (Option<String>, String) {
    let name = crate::eval::contestant::reported_name(module.name().as_str());
    let sdk: String = module.sdk_version().as_str().chars().take(64).collect();
    (name, sdk)
}

/// A router error that crossed the native boundary, mapped as on every load path.
fn router_failure(stage: &str, e: &NativeError) -> Failure {
    Failure::from_router(stage, &e.to_error())
}

/// Runs one evaluation through a root module in this process: `new`, `fit`, `route`.
/// `stage` is told each step before it starts (the isolated worker reports it to the engine).
///
/// # Errors
/// The typed failure: `router_error`, `panic` (caught inside the plugin by the SDK), or
/// `invalid_output` for a routing whose lengths contradict its shape.
pub fn evaluate_module(
    module: RouterModuleRef,
    params: &Params,
    train: &Split<'_>,
    val: &Split<'_>,
    test: &Queries<'_>,
    stage: &mut dyn FnMut(&str),
) -> std::result::Result<Routing, Failure> {
    let new = module.new();
    let native_params = params_to_native(params);
    stage("create");
    let mut router = match new(params.seed(), RSlice::from_slice(&native_params)) {
        RResult::ROk(r) => r,
        RResult::RErr(e) => return Err(router_failure("create", &e)),
    };
    let (train_prompts, val_prompts, test_prompts) = (
        rstrs(train.prompts()),
        rstrs(val.prompts()),
        rstrs(test.prompts()),
    );
    let (train_names, val_names) = (rstrs(train.candidates()), rstrs(val.candidates()));
    stage("fit");
    if let RResult::RErr(e) = router.fit(
        split_to_native(train, &train_prompts, &train_names),
        split_to_native(val, &val_prompts, &val_names),
    ) {
        return Err(router_failure("fit", &e));
    }
    stage("route");
    let routing = match router.route(queries_to_native(test, &test_prompts)) {
        RResult::ROk(r) => r,
        RResult::RErr(e) => return Err(router_failure("route", &e)),
    };
    abi::routing_from_native(routing).map_err(|e| {
        unusable(
            FailureKind::InvalidOutput,
            format!(
                "the routing's lengths contradict its shape: {}",
                e.message()
            ),
        )
    })
}

/// A native plugin, loaded (in-process) or probed (in a child), ready to evaluate, or known to
/// be unusable.
pub struct NativePlugin {
    path: PathBuf,
    sha256: String,
    name: String,
    sdk_version: Option<String>,
    isolation: Isolation,
    worker: PathBuf,
    policy: SandboxPolicy,
    ready: std::result::Result<Option<RouterModuleRef>, Failure>,
}

impl fmt::Debug for NativePlugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NativePlugin")
            .field("path", &self.path)
            .field("sha256", &self.sha256)
            .field("name", &self.name)
            .field("sdk_version", &self.sdk_version)
            .field("isolation", &self.isolation)
            .field("usable", &self.ready.is_ok())
            .finish_non_exhaustive()
    }
}

/// The SHA-256 of a plugin file, hex.
///
/// # Errors
/// The file cannot be read.
pub fn file_sha256(path: &Path) -> Result<String> {
    crate::util::file_sha256(path)
        .with_context(|| format!("cannot read plugin `{}`", path.display()))
}

impl NativePlugin {
    /// Loads the library at `path`: in this process for [`Isolation::InProcess`], else in a
    /// probe child of `worker` (the engine binary), which checks it the same way and reports
    /// its name, so the library's code never runs in the engine.
    ///
    /// # Errors
    /// The file cannot be read or is not a loadable library. A library that is not a compatible
    /// router plugin loads as unusable: each of its evaluations reports why.
    pub fn load(
        path: &Path,
        isolation: Isolation,
        worker: &Path,
        policy: &SandboxPolicy,
    ) -> Result<NativePlugin> {
        let sha256 = file_sha256(path)?;
        Self::load_hashed(path, sha256, isolation, worker, policy)
    }

    /// [`NativePlugin::load`] for a caller that already hashed the file (to decide its
    /// isolation by the allow-list).
    ///
    /// # Errors
    /// As [`NativePlugin::load`].
    pub fn load_hashed(
        path: &Path,
        sha256: String,
        isolation: Isolation,
        worker: &Path,
        policy: &SandboxPolicy,
    ) -> Result<NativePlugin> {
        // Loaded by absolute path: a bare file name would make the platform search its
        // library path instead.
        let abs = std::path::absolute(path)
            .with_context(|| format!("cannot resolve `{}`", path.display()))?;
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "plugin".into());
        let stem = stem
            .strip_prefix(std::env::consts::DLL_PREFIX)
            .unwrap_or(&stem)
            .to_string();
        let mut plugin = NativePlugin {
            path: path.to_path_buf(),
            sha256,
            name: stem,
            sdk_version: None,
            isolation,
            worker: worker.to_path_buf(),
            policy: policy.clone(),
            ready: Ok(None),
        };
        let probed = match isolation {
            Isolation::InProcess => match open(&abs) {
                Ok(module) => {
                    plugin.ready = Ok(Some(module));
                    Ok(module_info(module))
                }
                Err(e) => Err(e),
            },
            Isolation::Process => isolate::probe(worker, &abs, policy),
        };
        match probed {
            Ok((name, sdk)) => {
                if let Some(n) = name {
                    plugin.name = n;
                }
                plugin.sdk_version = Some(sdk);
            }
            Err(LoadError::Fatal(msg)) => bail!(msg),
            Err(LoadError::Unusable(e)) => plugin.ready = Err(e),
        }
        plugin.path = abs;
        Ok(plugin)
    }

    /// The router's name (from the root module, else the file's stem).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The library file (absolute).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The SHA-256 of the library file, hex.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// The SDK version the plugin reports.
    pub fn sdk_version(&self) -> Option<&str> {
        self.sdk_version.as_deref()
    }

    /// Where its evaluations run.
    pub fn isolation(&self) -> Isolation {
        self.isolation
    }

    /// Why every evaluation of this plugin fails, when it cannot be used.
    pub fn unusable(&self) -> Option<&Failure> {
        self.ready.as_ref().err()
    }

    /// Runs one evaluation: `new(params)`, `fit(train, val)`, `route(test)`, in this process or
    /// in a child. Returns the routing (or the typed failure) and, for an isolated run, what the
    /// plugin wrote to its standard output and error (capped by the policy's log cap). An
    /// isolated evaluation is bound by the policy's `timeout_secs`, `max_output_mib` and
    /// `max_log_kib`; an in-process one by nothing.
    pub fn evaluate(
        &self,
        params: &Params,
        train: &Split<'_>,
        val: &Split<'_>,
        test: &Queries<'_>,
    ) -> Attempt {
        let routing = match &self.ready {
            Err(e) => Err(e.clone()),
            Ok(Some(module)) => evaluate_module(*module, params, train, val, test, &mut |_| {}),
            Ok(None) => {
                let job = isolate::Job {
                    worker: &self.worker,
                    plugin: &self.path,
                    sha256: &self.sha256,
                    policy: &self.policy,
                };
                let (routing, log) = isolate::evaluate(job, params, train, val, test);
                return Attempt {
                    answer: routing.map(Answer::Routing),
                    fuel: None,
                    log,
                };
            }
        };
        Attempt::of(routing.map(Answer::Routing))
    }
}

/// A native plugin with its parameters: one row of the results.
pub type NativeContestant = PluginContestant<NativePlugin>;

impl LoadedPlugin for NativePlugin {
    const KIND: ContestantKind = ContestantKind::Native;

    fn name(&self) -> &str {
        NativePlugin::name(self)
    }

    fn evaluate(
        &self,
        params: &Params,
        train: &Split<'_>,
        val: &Split<'_>,
        test: &Queries<'_>,
    ) -> Attempt {
        NativePlugin::evaluate(self, params, train, val, test)
    }

    fn provenance(&self) -> serde_json::Value {
        serde_json::json!({
            "path": self.path(),
            "sha256": self.sha256(),
            "sdk_version": self.sdk_version(),
            "abi": abi(),
            "isolation": self.isolation(),
        })
    }
}
