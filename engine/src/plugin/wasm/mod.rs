//! WebAssembly component plugins: untrusted routers, run in a sandbox.
//!
//! A plugin is a component of the WIT package `routereval:router@1.x` (`sdk/wit/router.wit`):
//! world `plugin`, exporting `router` (matrices as `list<f32>`; a Rust router gets it from
//! `routereval_sdk::export_router!`), or, since 1.1, world `tensor-plugin`, exporting
//! `tensor-router` (matrices as host-held tensors, `tensors.rs`; the Python SDK builds these). The
//! engine compiles it once (or loads the compiled artifact from its cache), then makes a fresh
//! instance, in a fresh [`Store`], for every evaluation, with the limits of the run's
//! [`SandboxPolicy`]: fuel, an epoch deadline, a memory cap, a stack cap, NaN canonicalisation,
//! deterministic relaxed SIMD, output and log caps. WASI imports (a `wasm32-wasip2` build of
//! Rust's standard library brings some) are satisfied with everything denied or made
//! deterministic: no preopened directories, no sockets, no name lookup, no environment or
//! arguments, frozen clocks, seeded random bytes, standard streams into the capped log.
//!
//! Every way a plugin can fail becomes one [`Failure`] kind of that evaluation alone:
//! `out_of_fuel`, `timeout`, `out_of_memory`, `stack_overflow`, `trap` (with the panic message
//! when the SDK's panic hook sent one), `abi_mismatch`, `missing_export`, `invalid_output`,
//! `router_error`. A file that is not a component, or does not compile, is an error of the
//! whole run, reported before any evaluation starts.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use routereval_sdk::{ParamValue, Params, Queries, Routing, Split};
use sha2::{Digest, Sha256};
use wasmtime::StoreContextMut;
use wasmtime::component::{Component, Linker, Resource, ResourceTable};
use wasmtime::{Config, Engine, OptLevel, ResourceLimiter, Store, Trap};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::eval::contestant::ContestantKind;
use crate::eval::outcome::{Answer, Attempt};
use crate::failure::{Failure, FailureKind};
use crate::plugin::policy::SandboxPolicy;
use crate::plugin::{LoadedPlugin, PluginContestant};

pub mod cache;
mod classify;
mod kernels;
mod store;
mod tensors;

use classify::{classify, router_error_from_wit};
use kernels::link_host;
pub use kernels::{HOST_CALL_FUEL, MATMUL_MACS_PER_FUEL, host_kernel_fuel};
use store::{Refusal, State, deadline_after, freeze_timers};
use tensors::{HostTensor, hold, link_tensors};

mod bindings {
    wasmtime::component::bindgen!({
        path: "../sdk/wit",
        world: "plugin",
    });
}

/// The world of routers on host-held tensors (ABI 1.1.0), sharing the first world's types.
mod tensor_bindings {
    wasmtime::component::bindgen!({
        path: "../sdk/wit",
        world: "tensor-plugin",
        with: {
            "routereval:router/types": super::bindings::routereval::router::types,
            "routereval:router/host": super::bindings::routereval::router::host,
            "routereval:router/tensors": super::bindings::routereval::router::tensors,
        },
    });
}

use tensor_bindings::exports::routereval::router::tensor_router as twit;

use bindings::routereval::router::host::Level;
use bindings::routereval::router::types as wit;

/// The plugin ABI this engine implements.
pub const ABI: &str = routereval_sdk::abi::WIT_PACKAGE;
const ROUTER_EXPORT_PREFIX: &str = "routereval:router/router@";
const TENSOR_ROUTER_EXPORT_PREFIX: &str = "routereval:router/tensor-router@";
const PACKAGE_PREFIX: &str = "routereval:router/";

/// The version of the WIT package (`1.1.0`), from the SDK's [`ABI`].
fn abi_version() -> &'static str {
    ABI.rsplit_once('@').map_or(ABI, |(_, v)| v)
}

/// The host interface the engine defines: `routereval:router/host@<version>`.
fn host_import() -> String {
    format!("{PACKAGE_PREFIX}host@{}", abi_version())
}

/// The tensor interface the engine defines: `routereval:router/tensors@<version>`.
fn tensors_import() -> String {
    format!("{PACKAGE_PREFIX}tensors@{}", abi_version())
}

/// Whether a plugin built against WIT version `theirs` loads in this engine: the same major
/// version and a minor version no newer than the engine's (the evolution rules in
/// `routereval_sdk::abi`; patch versions never matter).
fn compatible(theirs: &str) -> bool {
    let parse = |v: &str| -> Option<(u64, u64)> {
        let mut it = v.split('.');
        let major = it.next()?.parse().ok()?;
        let minor = it.next()?.parse().ok()?;
        Some((major, minor))
    };
    match (parse(theirs), parse(abi_version())) {
        (Some((tm, tn)), Some((om, on))) => tm == om && tn <= on && tm > 0,
        _ => false,
    }
}

/// What `info` may use when a plugin is loaded (fuel, seconds): a plugin that cannot say its
/// name within it is not loaded into a run that would wait for it.
const INFO_BUDGET: (u64, f64) = (1_000_000_000, 10.0);

/// The stage name of the `info` call, in messages.
const INFO_STAGE: &str = "info";

/// How often the epoch advances; the wall-clock deadline is checked at this granularity.
const TICK: Duration = Duration::from_millis(50);

/// The compiled-artifact format of the cache; bump to invalidate every entry.
const CACHE_TAG: &str = "routereval-wasm-cache-1";

/// One wasmtime engine and linker for a run, with the sandbox policy and the epoch ticker.
pub struct WasmHost {
    engine: Engine,
    linker: Linker<State>,
    policy: SandboxPolicy,
    cache_dir: Option<PathBuf>,
    compat: String,
    _ticker: Ticker,
}

impl fmt::Debug for WasmHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WasmHost")
            .field("policy", &self.policy)
            .field("cache_dir", &self.cache_dir)
            .finish_non_exhaustive()
    }
}

/// Advances the engine's epoch every [`TICK`] until dropped.
struct Ticker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Ticker {
    fn start(engine: Engine) -> Result<Ticker> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("routereval-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::park_timeout(TICK);
                    engine.increment_epoch();
                }
            })
            .context("cannot start the sandbox's deadline thread")?;
        Ok(Ticker {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

/// A [`Hasher`] over SHA-256, so wasmtime's compatibility hash gives the same cache key in every
/// process (std's `DefaultHasher` promises no such thing).
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
    fn finish(&self) -> u64 {
        0
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Where compiled plugins are cached when the command line does not say: `$ROUTEREVAL_CACHE_DIR`,
/// else `$XDG_CACHE_HOME/routereval-engine`, else `~/.cache/routereval-engine`.
pub fn default_cache_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("ROUTEREVAL_CACHE_DIR").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(d).join("routereval-engine"));
    }
    std::env::var_os("HOME")
        .filter(|d| !d.is_empty())
        .map(|h| PathBuf::from(h).join(".cache").join("routereval-engine"))
}

impl WasmHost {
    /// An engine configured by `policy`. Compiled plugins are cached in `cache_dir` when given.
    ///
    /// # Errors
    /// An invalid policy, or wasmtime refusing the configuration.
    pub fn new(policy: SandboxPolicy, cache_dir: Option<PathBuf>) -> Result<Arc<WasmHost>> {
        policy.check().map_err(|e| anyhow!(e))?;
        let mut cfg = Config::new();
        cfg.wasm_component_model(true)
            .consume_fuel(true)
            .epoch_interruption(true)
            .max_wasm_stack(usize::try_from(policy.stack_kib * 1024)?)
            .cranelift_nan_canonicalization(policy.nan_canonicalization)
            .wasm_simd(true)
            .wasm_relaxed_simd(true)
            .relaxed_simd_deterministic(true)
            .cranelift_opt_level(OptLevel::Speed)
            .wasm_backtrace_max_frames(std::num::NonZeroUsize::new(20));
        let engine = Engine::new(&cfg).map_err(|e| anyhow!("cannot configure wasmtime: {e}"))?;
        let mut linker = Linker::<State>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .map_err(|e| anyhow!("cannot link WASI: {e}"))?;
        linker.allow_shadowing(true);
        freeze_timers(&mut linker).map_err(|e| anyhow!("cannot link WASI's timers: {e}"))?;
        linker.allow_shadowing(false);
        link_host(&mut linker).map_err(|e| anyhow!("cannot link the host interface: {e}"))?;
        link_tensors(&mut linker).map_err(|e| anyhow!("cannot link the tensor interface: {e}"))?;
        let mut h = Sha256Hasher(Sha256::new());
        CACHE_TAG.hash(&mut h);
        engine.precompile_compatibility_hash().hash(&mut h);
        let compat = hex(&h.0.finalize()[..8]);
        let ticker = Ticker::start(engine.clone())?;
        Ok(Arc::new(WasmHost {
            engine,
            linker,
            policy,
            cache_dir,
            compat,
            _ticker: ticker,
        }))
    }

    fn cache_path(&self, sha: &str) -> Option<PathBuf> {
        self.cache_dir
            .as_ref()
            .map(|d| d.join(format!("{}-{}.cwasm", &sha[..32], self.compat)))
    }

    /// Compiles `bytes`, or loads the compiled artifact from the cache.
    fn compile(&self, path: &Path, bytes: &[u8], sha: &str) -> Result<(Component, bool)> {
        let cached = self.cache_path(sha);
        if let Some(file) = &cached
            && file.is_file()
        {
            // SAFETY: the artifact was written by this engine (same compatibility hash, in the
            // file name) into the user's cache directory; wasmtime checks its header and
            // configuration again. A cache directory others can write to is not supported.
            match unsafe { Component::deserialize_file(&self.engine, file) } {
                Ok(c) => {
                    // Used now: the least recently used entries are evicted first.
                    touch(file);
                    return Ok((c, true));
                }
                Err(_) => {
                    // Stale or damaged: compile again and overwrite it below.
                    let _ = std::fs::remove_file(file);
                }
            }
        }
        let component = Component::new(&self.engine, bytes).map_err(|e| {
            anyhow!(
                "plugin `{}` is not a valid WebAssembly component: {e:#}",
                path.display()
            )
        })?;
        if let Some(file) = &cached {
            // A cache that cannot be written costs speed, never correctness.
            if write_cache(file, &component).is_ok()
                && let Some(dir) = file.parent()
            {
                let _ = cache::evict(dir, cache::max_bytes(), Some(file));
            }
        }
        Ok((component, false))
    }
}

/// Marks a cache entry as used now (its modification time), for least-recently-used eviction.
fn touch(file: &Path) {
    if let Ok(f) = std::fs::File::options().append(true).open(file) {
        let _ = f.set_modified(std::time::SystemTime::now());
    }
}

/// Writes the compiled artifact atomically (a temporary file renamed into place, removed on
/// failure) into a cache directory only its owner may write: a compiled artifact is machine
/// code the engine will run.
fn write_cache(file: &Path, component: &Component) -> Result<()> {
    let dir = file.parent().context("cache path has no directory")?;
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)?;
    let bytes = component.serialize().map_err(|e| anyhow!("{e}"))?;
    let tmp = file.with_extension(format!("tmp{}", std::process::id()));
    let written = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, file)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    Ok(written?)
}

/// A loaded plugin: compiled, linked and ready to instantiate, or known to be unusable (with
/// the typed failure every evaluation of it reports).
pub struct WasmPlugin {
    host: Arc<WasmHost>,
    path: PathBuf,
    sha256: String,
    name: String,
    sdk_version: Option<String>,
    /// The WIT package and version the plugin was built against (`routereval:router@1.0.0`),
    /// once linked; the engine's [`ABI`] before.
    abi: String,
    from_cache: bool,
    ready: std::result::Result<Pre, Failure>,
}

impl fmt::Debug for WasmPlugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WasmPlugin")
            .field("path", &self.path)
            .field("sha256", &self.sha256)
            .field("name", &self.name)
            .field("sdk_version", &self.sdk_version)
            .field("usable", &self.ready.is_ok())
            .finish_non_exhaustive()
    }
}

/// Checks the file is a WebAssembly component before wasmtime sees it, to say what it is
/// instead (`path` names it in the message).
///
/// # Errors
/// Not WebAssembly, a core module, or an unknown version/layer, each with its remedy.
pub fn check_header(path: &Path, bytes: &[u8]) -> Result<()> {
    let p = path.display();
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        bail!(
            "plugin `{p}` is not a WebAssembly file (it does not start with `\\0asm`); give a \
             component built with `cargo build --release --target wasm32-wasip2`"
        );
    }
    match bytes[4..8] {
        [0x0d, 0x00, 0x01, 0x00] => Ok(()),
        [0x01, 0x00, 0x00, 0x00] => bail!(
            "plugin `{p}` is a core WebAssembly module, not a component: build the router crate \
             for `wasm32-wasip2` (its linker makes a component), or wrap the module with \
             `wasm-tools component new`"
        ),
        ref v => bail!(
            "plugin `{p}` has an unknown WebAssembly version/layer {v:02x?}; this engine reads \
             components (0d 00 01 00)"
        ),
    }
}

fn unusable(kind: FailureKind, message: String) -> Failure {
    Failure::new(kind, message)
}

impl WasmPlugin {
    /// Reads, checks, compiles (or loads from the cache) and links the plugin at `path`, and
    /// asks it for its name.
    ///
    /// # Errors
    /// The file cannot be read, is not a WebAssembly component, or does not compile. An ABI
    /// mismatch or a missing export is not an error here: the plugin loads as unusable and
    /// each of its evaluations reports the failure.
    pub fn load(host: &Arc<WasmHost>, path: &Path) -> Result<WasmPlugin> {
        let bytes = std::fs::read(path)
            .with_context(|| format!("cannot read plugin `{}`", path.display()))?;
        check_header(path, &bytes)?;
        let sha256 = hex(&Sha256::digest(&bytes));
        let (component, from_cache) = host.compile(path, &bytes, &sha256)?;
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "plugin".into());
        let mut plugin = WasmPlugin {
            host: host.clone(),
            path: path.to_path_buf(),
            sha256,
            name: stem,
            sdk_version: None,
            abi: ABI.to_string(),
            from_cache,
            ready: Err(unusable(FailureKind::AbiMismatch, String::new())),
        };
        plugin.ready = plugin.link(&component).map(|(pre, version)| {
            plugin.abi = format!("{}@{version}", ABI.rsplit_once('@').map_or(ABI, |(p, _)| p));
            pre
        });
        if plugin.ready.is_ok()
            && let Err(e) = plugin.ask_info()
        {
            plugin.ready = Err(e);
        }
        Ok(plugin)
    }

    /// Checks the component's exports and imports against the ABI and pre-links it as a
    /// `router` (list-based, any 1.x) or a `tensor-router` (host-held tensors, since 1.1).
    fn link(&self, component: &Component) -> std::result::Result<(Pre, String), Failure> {
        let engine = &self.host.engine;
        let p = self.path.display();
        let ty = component.component_type();
        let exports: Vec<String> = ty.exports(engine).map(|(n, _)| n.to_string()).collect();
        let package = ABI.rsplit_once('@').map_or(ABI, |(package, _)| package);
        let found = exports.iter().find_map(|n| {
            [ROUTER_EXPORT_PREFIX, TENSOR_ROUTER_EXPORT_PREFIX]
                .into_iter()
                .find_map(|prefix| Some((prefix, n.strip_prefix(prefix)?)))
        });
        let Some((prefix, theirs)) = found else {
            let list = if exports.is_empty() {
                "nothing".to_string()
            } else {
                exports.join(", ")
            };
            return Err(unusable(
                FailureKind::MissingExport,
                format!(
                    "plugin `{p}` exports neither `{ROUTER_EXPORT_PREFIX}{v}` nor \
                     `{TENSOR_ROUTER_EXPORT_PREFIX}{v}` (it exports {list}); a Rust router gets \
                     one from `routereval_sdk::export_router!(MyRouter)`, a Python router from \
                     `routereval-sdk build`",
                    v = abi_version()
                ),
            ));
        };
        let mismatch = |theirs: &str, what: &str| {
            unusable(
                FailureKind::AbiMismatch,
                format!(
                    "plugin `{p}` {what} {package}@{theirs}, this engine implements {ABI} (it \
                     loads plugins of {package}@{major}.0 to {ABI}); rebuild the plugin against \
                     routereval-sdk {} (or use an engine that implements its version)",
                    routereval_sdk::SDK_VERSION,
                    major = abi_version().split('.').next().unwrap_or("1"),
                ),
            )
        };
        if !compatible(theirs) {
            return Err(mismatch(theirs, "implements"));
        }
        for (name, _) in ty.imports(engine) {
            if let Some((_, v)) = name
                .strip_prefix(PACKAGE_PREFIX)
                .and_then(|rest| rest.split_once('@'))
                && !compatible(v)
            {
                return Err(mismatch(v, "imports"));
            }
        }
        let pre = self.host.linker.instantiate_pre(component).map_err(|e| {
            unusable(
                FailureKind::AbiMismatch,
                format!(
                    "plugin `{p}` needs an import this engine does not provide ({ABI} and WASI \
                     0.2): {e:#}"
                ),
            )
        })?;
        let export = format!("{prefix}{theirs}");
        let not_matching = |e: wasmtime::Error| {
            let text = format!("{e:#}");
            let kind = if text.contains("type mismatch") || text.contains("expected") {
                FailureKind::AbiMismatch
            } else {
                FailureKind::MissingExport
            };
            unusable(
                kind,
                format!("plugin `{p}` does not match {export}: {text}"),
            )
        };
        let pre = if prefix == ROUTER_EXPORT_PREFIX {
            bindings::PluginPre::new(pre)
                .map(Pre::Classic)
                .map_err(not_matching)
        } else {
            tensor_bindings::TensorPluginPre::new(pre)
                .map(Pre::Tensor)
                .map_err(not_matching)
        }?;
        Ok((pre, theirs.to_string()))
    }

    /// Calls `info` once, in a store with a small budget, for the plugin's name.
    fn ask_info(&mut self) -> std::result::Result<(), Failure> {
        let Ok(pre) = &self.ready else {
            return Ok(());
        };
        let mut run = Instance::start(&self.host, 0, pre, Some(INFO_BUDGET))?;
        let info = run.call(INFO_STAGE, |p, s| match p {
            Loaded::Classic(p) => p.routereval_router_router().call_info(s),
            Loaded::Tensor(p) => p.routereval_router_tensor_router().call_info(s),
        })?;
        if let Some(name) = crate::eval::contestant::reported_name(&info.name) {
            self.name = name;
        }
        self.sdk_version = Some(info.sdk_version.chars().take(64).collect());
        Ok(())
    }

    /// The router's name (from `info`, else the file's stem).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The plugin file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The SHA-256 of the plugin file, hex.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// The SDK version the plugin reports.
    pub fn sdk_version(&self) -> Option<&str> {
        self.sdk_version.as_deref()
    }

    /// Whether the compiled code came from the cache.
    pub fn from_cache(&self) -> bool {
        self.from_cache
    }

    /// Why every evaluation of this plugin fails, when it cannot be used.
    pub fn unusable(&self) -> Option<&Failure> {
        self.ready.as_ref().err()
    }

    /// Runs one evaluation in a fresh instance: `create(params)`, `fit(train, val)`,
    /// `route(test)`.
    pub fn evaluate(
        &self,
        params: &Params,
        train: &Split<'_>,
        val: &Split<'_>,
        test: &Queries<'_>,
    ) -> Attempt {
        let mut session = match self.start(params) {
            Ok(s) => s,
            Err((error, fuel, log)) => {
                return Attempt {
                    answer: Err(error),
                    fuel,
                    log,
                };
            }
        };
        let routing = session.fit(train, val).and_then(|()| session.route(test));
        Attempt {
            answer: routing.map(Answer::Routing),
            fuel: Some(session.fuel_used()),
            log: session.log(),
        }
    }

    /// Starts one evaluation step by step (what [`WasmPlugin::evaluate`] does in one call): a
    /// fresh instance in a fresh store, and `create(params)`.
    ///
    /// # Errors
    /// The evaluation's typed failure, with the fuel used and the log when the plugin ran.
    #[allow(clippy::type_complexity, reason = "a failure with its two by-products")]
    pub fn start(
        &self,
        params: &Params,
    ) -> std::result::Result<Session<'_>, (Failure, Option<u64>, String)> {
        let pre = self
            .ready
            .as_ref()
            .map_err(|e| (e.clone(), None, String::new()))?;
        let mut inst = Instance::start(&self.host, params.seed(), pre, None)
            .map_err(|e| (e, None, String::new()))?;
        let wit_params: Vec<wit::Param> = params
            .iter()
            .map(|(k, v)| wit::Param {
                key: k.to_string(),
                value: match v {
                    ParamValue::Bool(b) => wit::ParamValue::Boolean(*b),
                    ParamValue::Int(i) => wit::ParamValue::Integer(*i),
                    ParamValue::Float(x) => wit::ParamValue::Float(*x),
                    ParamValue::Str(s) => wit::ParamValue::Text(s.clone()),
                },
            })
            .collect();
        let seed = params.seed();
        match inst.call_router("create", |p, s| match p {
            Loaded::Classic(p) => p
                .routereval_router_router()
                .call_create(s, seed, &wit_params),
            Loaded::Tensor(p) => {
                p.routereval_router_tensor_router()
                    .call_create(s, seed, &wit_params)
            }
        }) {
            Ok(()) => Ok(Session { inst }),
            Err(e) => Err((e, Some(inst.fuel_used()), inst.take_log())),
        }
    }
}

/// One evaluation of a plugin in progress: an instance in its own store, already created.
pub struct Session<'p> {
    inst: Instance<'p>,
}

impl fmt::Debug for Session<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("fuel_used", &self.fuel_used())
            .finish_non_exhaustive()
    }
}

impl Session<'_> {
    /// `fit(train, val)`.
    ///
    /// # Errors
    /// The typed failure.
    pub fn fit(&mut self, train: &Split<'_>, val: &Split<'_>) -> std::result::Result<(), Failure> {
        if matches!(self.inst.plugin, Loaded::Classic(_)) {
            let (train, val) = (split_to_wit(train), split_to_wit(val));
            return self.inst.call_router("fit", |p, s| match p {
                Loaded::Classic(p) => p.routereval_router_router().call_fit(s, &train, &val),
                Loaded::Tensor(_) => unreachable!("checked above"),
            });
        }
        let held = (|| -> wasmtime::Result<_> {
            Ok((
                split_to_tensors(self.inst.store.data_mut(), train)?,
                split_to_tensors(self.inst.store.data_mut(), val)?,
            ))
        })();
        let (train, val) = held.map_err(|e| self.inst.failure("fit", &e))?;
        self.inst.call_router("fit", |p, s| match p {
            Loaded::Tensor(p) => p
                .routereval_router_tensor_router()
                .call_fit(s, &train, &val),
            Loaded::Classic(_) => unreachable!("checked above"),
        })
    }

    /// `route(test)`, with the output cap and the routing's shape checked (the engine's
    /// validation of the values comes after).
    ///
    /// # Errors
    /// The typed failure.
    pub fn route(&mut self, test: &Queries<'_>) -> std::result::Result<Routing, Failure> {
        let cap = self.inst.host.policy.max_output_bytes();
        if matches!(self.inst.plugin, Loaded::Classic(_)) {
            let queries = wit::Queries {
                embeddings: matrix_to_wit(test.len(), test.dim(), test.embeddings()),
                prompts: test.prompts().iter().map(str::to_string).collect(),
            };
            let routing = self.inst.call_router("route", |p, s| match p {
                Loaded::Classic(p) => p.routereval_router_router().call_route(s, &queries),
                Loaded::Tensor(_) => unreachable!("checked above"),
            })?;
            return routing_from_wit(routing, cap);
        }
        let embeddings = HostTensor::f32(test.len(), test.dim(), test.embeddings().to_vec());
        let queries = hold(self.inst.store.data_mut(), "route", embeddings)
            .map(|embeddings| twit::TensorQueries {
                embeddings,
                prompts: test.prompts().iter().map(str::to_string).collect(),
            })
            .map_err(|e| self.inst.failure("route", &e))?;
        let routing = self.inst.call_router("route", |p, s| match p {
            Loaded::Tensor(p) => p.routereval_router_tensor_router().call_route(s, &queries),
            Loaded::Classic(_) => unreachable!("checked above"),
        })?;
        let belief = self
            .inst
            .store
            .data_mut()
            .tensors
            .take(routing.belief)
            .ok_or_else(|| {
                unusable(
                    FailureKind::InvalidOutput,
                    format!(
                        "invalid output: the routing's belief is tensor {}, which does not exist",
                        routing.belief
                    ),
                )
            })?;
        let belief = Arc::unwrap_or_clone(belief);
        let (rows, cols) = (belief.rows, belief.cols);
        let data = belief.into_f32();
        routing_from_wit(
            wit::Routing {
                belief: wit::Matrix {
                    rows: rows as u32,
                    cols: cols as u32,
                    data,
                },
                choices: routing.choices,
            },
            cap,
        )
    }

    /// Fuel consumed so far.
    pub fn fuel_used(&self) -> u64 {
        self.inst.fuel_used()
    }

    /// What the plugin has logged so far (capped).
    pub fn log(&mut self) -> String {
        self.inst.take_log()
    }
}

/// A WebAssembly plugin with its parameters: one row of the results.
pub type WasmContestant = PluginContestant<WasmPlugin>;

impl LoadedPlugin for WasmPlugin {
    const KIND: ContestantKind = ContestantKind::Wasm;

    fn name(&self) -> &str {
        WasmPlugin::name(self)
    }

    fn evaluate(
        &self,
        params: &Params,
        train: &Split<'_>,
        val: &Split<'_>,
        test: &Queries<'_>,
    ) -> Attempt {
        WasmPlugin::evaluate(self, params, train, val, test)
    }

    fn provenance(&self) -> serde_json::Value {
        serde_json::json!({
            "path": self.path(),
            "sha256": self.sha256(),
            "sdk_version": self.sdk_version(),
            "abi": self.abi,
        })
    }
}

fn matrix_to_wit(rows: usize, cols: usize, data: &[f32]) -> wit::Matrix {
    wit::Matrix {
        rows: rows as u32,
        cols: cols as u32,
        data: data.to_vec(),
    }
}

fn split_to_wit(s: &Split<'_>) -> wit::Split {
    wit::Split {
        embeddings: matrix_to_wit(s.len(), s.dim(), s.embeddings()),
        scores: matrix_to_wit(s.len(), s.num_candidates(), s.scores()),
        prompts: s.prompts().iter().map(str::to_string).collect(),
        candidates: s.candidates().iter().map(str::to_string).collect(),
    }
}

/// Holds a split's matrices in the store for a `tensor-router`.
fn split_to_tensors(state: &mut State, s: &Split<'_>) -> wasmtime::Result<twit::TensorSplit> {
    let embeddings = HostTensor::f32(s.len(), s.dim(), s.embeddings().to_vec());
    let scores = HostTensor::f32(s.len(), s.num_candidates(), s.scores().to_vec());
    Ok(twit::TensorSplit {
        embeddings: hold(state, "fit", embeddings)?,
        scores: hold(state, "fit", scores)?,
        prompts: s.prompts().iter().map(str::to_string).collect(),
        candidates: s.candidates().iter().map(str::to_string).collect(),
    })
}

fn routing_from_wit(r: wit::Routing, cap: usize) -> std::result::Result<Routing, Failure> {
    let invalid =
        |why: String| unusable(FailureKind::InvalidOutput, format!("invalid output: {why}"));
    let size = (r.belief.data.len() + r.choices.as_ref().map_or(0, Vec::len)) * 4;
    if size > cap {
        return Err(invalid(format!(
            "the routing is {} MiB, over the sandbox's output cap of {} MiB",
            size >> 20,
            cap >> 20
        )));
    }
    let (rows, cols) = (r.belief.rows as usize, r.belief.cols as usize);
    let routing = Routing::from_belief(rows, cols, r.belief.data)
        .map_err(|e| invalid(format!("belief matrix: {}", e.message())))?;
    match r.choices {
        Some(c) => routing
            .with_choices(c)
            .map_err(|e| invalid(format!("choices: {}", e.message()))),
        None => Ok(routing),
    }
}

/// How many lines of the plugin's log a trap's message ends with.
const LOG_TAIL_LINES: usize = 12;

/// The last `lines` non-empty lines of `log` (at most 2 KiB of them), or `None` when it is empty.
fn log_tail(log: &str, lines: usize) -> Option<String> {
    let kept: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    if kept.is_empty() {
        return None;
    }
    let tail = kept[kept.len().saturating_sub(lines)..].join("\n");
    let start = tail.len().saturating_sub(2048);
    let start = (start..=tail.len())
        .find(|&i| tail.is_char_boundary(i))
        .unwrap_or(0);
    Some(tail[start..].to_string())
}

/// A plugin linked against one of the two router worlds.
enum Pre {
    /// `router`: matrices as `list<f32>` (1.0 and later).
    Classic(bindings::PluginPre<State>),
    /// `tensor-router`: matrices as host-held tensors (1.1 and later).
    Tensor(tensor_bindings::TensorPluginPre<State>),
}

/// An instance of a [`Pre`].
enum Loaded {
    Classic(bindings::Plugin),
    Tensor(tensor_bindings::TensorPlugin),
}

/// One instance in its own store, for one evaluation.
struct Instance<'h> {
    host: &'h WasmHost,
    store: Store<State>,
    plugin: Loaded,
    fuel: u64,
}

impl<'h> Instance<'h> {
    /// A fresh instance under the policy's limits, or under `budget` (fuel, seconds) when
    /// given.
    fn start(
        host: &'h WasmHost,
        seed: u64,
        pre: &Pre,
        budget: Option<(u64, f64)>,
    ) -> std::result::Result<Self, Failure> {
        let policy = &host.policy;
        let (fuel, secs) = budget.unwrap_or((policy.fuel, policy.timeout_secs));
        let mut state = State::new(policy, seed);
        (state.fuel_budget, state.timeout_secs) = (fuel, secs);
        state.deadline = deadline_after(secs);
        let mut store = Store::new(&host.engine, state);
        store.limiter(|s| &mut s.limiter);
        // What one call may hand the host (wasmtime's guard, 128 MiB by default) is bounded by
        // the memory the plugin may have anyway.
        store.set_hostcall_fuel(policy.memory_bytes());
        let fuel = if fuel == 0 { u64::MAX } else { fuel };
        store
            .set_fuel(fuel)
            .expect("the engine is configured to consume fuel");
        let ticks = ((secs / TICK.as_secs_f64()).ceil() as u64).saturating_add(1);
        store.set_epoch_deadline(ticks);
        store.epoch_deadline_trap();
        let plugin = match pre {
            Pre::Classic(pre) => pre.instantiate(&mut store).map(Loaded::Classic),
            Pre::Tensor(pre) => pre.instantiate(&mut store).map(Loaded::Tensor),
        };
        match plugin {
            Ok(plugin) => Ok(Instance {
                host,
                store,
                plugin,
                fuel,
            }),
            Err(e) => Err(classify(host, store.data(), "instantiate", &e)),
        }
    }

    /// Calls into the plugin; a trap, a limit or a host failure becomes a typed failure.
    fn call<T>(
        &mut self,
        stage: &str,
        f: impl FnOnce(&Loaded, &mut Store<State>) -> wasmtime::Result<T>,
    ) -> std::result::Result<T, Failure> {
        f(&self.plugin, &mut self.store).map_err(|e| self.failure(stage, &e))
    }

    /// The typed failure of an error in `stage`. A trap or panic ends with the last lines of
    /// the plugin's log, where a guest's own runtime says why (a Python traceback, say).
    fn failure(&self, stage: &str, e: &wasmtime::Error) -> Failure {
        let mut failure = classify(self.host, self.store.data(), stage, e);
        if matches!(failure.kind, FailureKind::Trap | FailureKind::Panic) {
            let log = self
                .store
                .data()
                .log
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if let Some(tail) = log_tail(&log.text, LOG_TAIL_LINES) {
                failure.message.push_str(&format!(
                    "\n--- the last lines of the plugin's log:\n{tail}"
                ));
            }
        }
        failure
    }

    /// [`Instance::call`] for the router's fallible functions: an error the router returns is a
    /// `router_error`.
    fn call_router<T>(
        &mut self,
        stage: &str,
        f: impl FnOnce(
            &Loaded,
            &mut Store<State>,
        ) -> wasmtime::Result<std::result::Result<T, wit::RouterError>>,
    ) -> std::result::Result<T, Failure> {
        self.call(stage, f)?.map_err(|e| {
            // A guest that catches its own allocation failure (CPython raises MemoryError)
            // still ran out of memory: the cap is the cause, whatever it returned.
            if self.store.data().limiter.refused.is_some() {
                let trap = wasmtime::format_err!(
                    "the router returned an error after an allocation was refused"
                );
                return self.failure(stage, &trap);
            }
            Failure::from_router(stage, &router_error_from_wit(e))
        })
    }

    fn fuel_used(&self) -> u64 {
        self.fuel - self.store.get_fuel().unwrap_or(0)
    }

    fn take_log(&mut self) -> String {
        let buf = self
            .store
            .data()
            .log
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let mut text = buf.text.clone();
        if buf.dropped > 0 {
            text.push_str(&format!(
                "... {} more bytes dropped (sandbox log cap {} KiB)\n",
                buf.dropped,
                buf.cap >> 10
            ));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::classify::{SHADOW_STACK_WRAP, fault_address, squeeze_backtrace};
    use super::store::LogBuf;
    use super::*;

    #[test]
    fn the_log_keeps_its_cap_on_character_boundaries_and_counts_the_rest() {
        let mut log = LogBuf {
            text: String::new(),
            cap: 10,
            dropped: 0,
        };
        log.push("12345678");
        log.push("éé"); // 4 bytes: only the first fits
        assert_eq!(log.text, "12345678é");
        assert_eq!(log.dropped, 2);
        log.push("more");
        assert_eq!((log.text.len(), log.dropped), (10, 6));
    }

    #[test]
    fn fault_addresses_are_read_from_wasmtime_messages() {
        let text = "memory fault at wasm address 0x100000050 in linear memory of size 0xa40000";
        assert_eq!(fault_address(text), Some(0x1_0000_0050));
        assert!(fault_address(text).unwrap() >= SHADOW_STACK_WRAP);
        assert_eq!(fault_address("out of bounds memory access"), None);
    }

    #[test]
    fn repeated_backtrace_frames_are_squeezed() {
        let text = "error while executing at wasm backtrace:\n    0: 0x1 - f\n    1: 0x2 - g\n    2: 0x2 - g\n    3: 0x2 - g\n    4: 0x3 - h";
        assert_eq!(
            squeeze_backtrace(text),
            "error while executing at wasm backtrace:\n    0: 0x1 - f\n    1: 0x2 - g\n      ... the frame above 2 more times\n    4: 0x3 - h"
        );
    }

    #[test]
    fn headers_say_what_a_file_is() {
        let p = Path::new("x.wasm");
        assert!(check_header(p, b"\0asm\x0d\0\x01\0").is_ok());
        let core = check_header(p, b"\0asm\x01\0\0\0").unwrap_err().to_string();
        assert!(core.contains("core WebAssembly module"), "{core}");
        let text = check_header(p, b"hello world").unwrap_err().to_string();
        assert!(text.contains("not a WebAssembly file"), "{text}");
    }

    #[test]
    fn the_fixed_budgets_of_info_are_not_blamed_on_the_flags() {
        let host = WasmHost::new(SandboxPolicy::default(), None).unwrap();
        let state = State::new(&host.policy, 0);
        for (trap, kind, flag) in [
            (Trap::OutOfFuel, FailureKind::OutOfFuel, "--fuel"),
            (Trap::Interrupt, FailureKind::Timeout, "--timeout"),
        ] {
            let e = classify(&host, &state, INFO_STAGE, &wasmtime::Error::from(trap));
            assert_eq!(e.kind, kind);
            assert!(!e.message.contains("raise it with"), "{}", e.message);
            assert!(
                e.message.contains(&format!("whatever {flag} says")),
                "{}",
                e.message
            );
            let e = classify(&host, &state, "fit", &wasmtime::Error::from(trap));
            assert!(
                e.message.contains(&format!("raise it with {flag}")),
                "{}",
                e.message
            );
        }
    }

    #[test]
    fn host_kernel_fuel_counts_every_dimension() {
        assert_eq!(host_kernel_fuel(0, 0, 0), HOST_CALL_FUEL);
        assert_eq!(host_kernel_fuel(512, 0, 1000), HOST_CALL_FUEL + 512_000);
        assert_eq!(host_kernel_fuel(2, 3, 0), HOST_CALL_FUEL + 6);
        // 2 x 4 by 5 x 4: inputs 8 + 20, scores 10, 40 multiply-adds at 8 per unit.
        assert_eq!(host_kernel_fuel(2, 4, 5), HOST_CALL_FUEL + 8 + 20 + 10 + 5);
        assert_eq!(
            host_kernel_fuel(u32::MAX, u32::MAX, u32::MAX),
            u64::MAX,
            "saturates, never wraps"
        );
    }

    #[test]
    fn invalid_policies_are_refused() {
        let bad = SandboxPolicy {
            memory_mib: 0,
            ..SandboxPolicy::default()
        };
        assert!(
            WasmHost::new(bad, None)
                .unwrap_err()
                .to_string()
                .contains("1 to 4096")
        );
        let bad = SandboxPolicy {
            timeout_secs: f64::NAN,
            ..SandboxPolicy::default()
        };
        assert!(bad.check().is_err());
        assert!(SandboxPolicy::default().check().is_ok());
    }
}
