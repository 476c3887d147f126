//! WebAssembly component plugins: untrusted routers, run in a sandbox.
//!
//! A plugin is a component of the WIT world `routereval:router/plugin@1.0.0`
//! (`sdk/wit/router.wit`; a Rust router gets it from `routereval_sdk::export_router!`). The
//! engine compiles it once (or loads the compiled artifact from its cache), then makes a fresh
//! instance, in a fresh [`Store`], for every evaluation, with the limits of the run's
//! [`SandboxPolicy`]: fuel, an epoch deadline, a memory cap, a stack cap, NaN canonicalisation,
//! deterministic relaxed SIMD, output and log caps. WASI imports (a `wasm32-wasip2` build of
//! Rust's standard library brings some) are satisfied with everything denied or made
//! deterministic: no preopened directories, no sockets, no name lookup, no environment or
//! arguments, frozen clocks, seeded random bytes, standard streams into the capped log.
//!
//! Every way a plugin can fail becomes one [`EvalError`] kind of that evaluation alone:
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

use crate::run::EvalError;
use crate::sandbox::SandboxPolicy;

mod bindings {
    wasmtime::component::bindgen!({
        path: "../sdk/wit",
        world: "plugin",
    });
}

use bindings::routereval::router::host::Level;
use bindings::routereval::router::types as wit;

/// The plugin ABI this engine implements.
pub const ABI: &str = "routereval:router@1.0.0";
const ROUTER_EXPORT: &str = "routereval:router/router@1.0.0";
const ROUTER_EXPORT_PREFIX: &str = "routereval:router/router@";

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

    /// The sandbox policy.
    pub fn policy(&self) -> &SandboxPolicy {
        &self.policy
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
                Ok(c) => return Ok((c, true)),
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
            let _ = write_cache(file, &component);
        }
        Ok((component, false))
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
    from_cache: bool,
    ready: std::result::Result<bindings::PluginPre<State>, EvalError>,
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
/// instead.
fn check_header(path: &Path, bytes: &[u8]) -> Result<()> {
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

fn unusable(kind: &str, message: String) -> EvalError {
    EvalError {
        kind: kind.into(),
        message,
    }
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
            from_cache,
            ready: Err(unusable("abi_mismatch", String::new())),
        };
        plugin.ready = plugin.link(&component);
        if plugin.ready.is_ok()
            && let Err(e) = plugin.ask_info()
        {
            plugin.ready = Err(e);
        }
        Ok(plugin)
    }

    /// Checks the component's exports and imports against the ABI and pre-links it.
    fn link(
        &self,
        component: &Component,
    ) -> std::result::Result<bindings::PluginPre<State>, EvalError> {
        let engine = &self.host.engine;
        let p = self.path.display();
        let ty = component.component_type();
        let exports: Vec<String> = ty.exports(engine).map(|(n, _)| n.to_string()).collect();
        if !exports.iter().any(|n| n == ROUTER_EXPORT) {
            if let Some(other) = exports.iter().find(|n| n.starts_with(ROUTER_EXPORT_PREFIX)) {
                let theirs = other.trim_start_matches(ROUTER_EXPORT_PREFIX);
                return Err(unusable(
                    "abi_mismatch",
                    format!(
                        "plugin `{p}` implements routereval:router@{theirs}, this engine implements \
                         {ABI}; rebuild the plugin against routereval-sdk {} (or an engine that \
                         implements its version)",
                        routereval_sdk::SDK_VERSION
                    ),
                ));
            }
            let list = if exports.is_empty() {
                "nothing".to_string()
            } else {
                exports.join(", ")
            };
            return Err(unusable(
                "missing_export",
                format!(
                    "plugin `{p}` does not export `{ROUTER_EXPORT}` (it exports {list}); a Rust \
                     router gets it from `routereval_sdk::export_router!(MyRouter)`"
                ),
            ));
        }
        for (name, _) in ty.imports(engine) {
            if let Some(v) = name.strip_prefix("routereval:router/host@")
                && v != "1.0.0"
            {
                return Err(unusable(
                    "abi_mismatch",
                    format!(
                        "plugin `{p}` imports routereval:router/host@{v}, this engine implements \
                         {ABI}"
                    ),
                ));
            }
        }
        let pre = self.host.linker.instantiate_pre(component).map_err(|e| {
            unusable(
                "abi_mismatch",
                format!(
                    "plugin `{p}` needs an import this engine does not provide ({ABI} and WASI \
                     0.2): {e:#}"
                ),
            )
        })?;
        bindings::PluginPre::new(pre).map_err(|e| {
            let text = format!("{e:#}");
            let kind = if text.contains("type mismatch") || text.contains("expected") {
                "abi_mismatch"
            } else {
                "missing_export"
            };
            unusable(
                kind,
                format!("plugin `{p}` does not match {ROUTER_EXPORT}: {text}"),
            )
        })
    }

    /// Calls `info` once, in a store with a small budget, for the plugin's name.
    fn ask_info(&mut self) -> std::result::Result<(), EvalError> {
        let Ok(pre) = &self.ready else {
            return Ok(());
        };
        let mut run = Instance::start(&self.host, 0, pre, Some(INFO_BUDGET))?;
        let info = run.call(INFO_STAGE, |p, s| p.routereval_router_router().call_info(s))?;
        if let Some(name) = crate::routers::reported_name(&info.name) {
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
    pub fn unusable(&self) -> Option<&EvalError> {
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
    ) -> Outcome {
        let mut session = match self.start(params) {
            Ok(s) => s,
            Err((error, fuel, log)) => {
                return Outcome {
                    routing: Err(error),
                    fuel,
                    log,
                };
            }
        };
        let routing = session.fit(train, val).and_then(|()| session.route(test));
        Outcome {
            routing,
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
    ) -> std::result::Result<Session<'_>, (EvalError, Option<u64>, String)> {
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
        match inst.call_router("create", |p, s| {
            p.routereval_router_router()
                .call_create(s, seed, &wit_params)
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
    pub fn fit(
        &mut self,
        train: &Split<'_>,
        val: &Split<'_>,
    ) -> std::result::Result<(), EvalError> {
        let (train, val) = (split_to_wit(train), split_to_wit(val));
        self.inst.call_router("fit", |p, s| {
            p.routereval_router_router().call_fit(s, &train, &val)
        })
    }

    /// `route(test)`, with the output cap and the routing's shape checked (the engine's
    /// validation of the values comes after).
    ///
    /// # Errors
    /// The typed failure.
    pub fn route(&mut self, test: &Queries<'_>) -> std::result::Result<Routing, EvalError> {
        let queries = wit::Queries {
            embeddings: matrix_to_wit(test.len(), test.dim(), test.embeddings()),
            prompts: test.prompts().iter().map(str::to_string).collect(),
        };
        let routing = self.inst.call_router("route", |p, s| {
            p.routereval_router_router().call_route(s, &queries)
        })?;
        routing_from_wit(routing, self.inst.host.policy.max_output_bytes())
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

/// What one evaluation of a plugin produced.
#[derive(Debug)]
pub struct Outcome {
    /// The routing, or the typed failure.
    pub routing: std::result::Result<Routing, EvalError>,
    /// Fuel consumed (`create` + `fit` + `route`), when the plugin ran.
    pub fuel: Option<u64>,
    /// What the plugin logged (capped).
    pub log: String,
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

fn routing_from_wit(r: wit::Routing, cap: usize) -> std::result::Result<Routing, EvalError> {
    let invalid = |why: String| unusable("invalid_output", format!("invalid output: {why}"));
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

/// One instance in its own store, for one evaluation.
struct Instance<'h> {
    host: &'h WasmHost,
    store: Store<State>,
    plugin: bindings::Plugin,
    fuel: u64,
}

impl<'h> Instance<'h> {
    /// A fresh instance under the policy's limits, or under `budget` (fuel, seconds) when
    /// given.
    fn start(
        host: &'h WasmHost,
        seed: u64,
        pre: &bindings::PluginPre<State>,
        budget: Option<(u64, f64)>,
    ) -> std::result::Result<Self, EvalError> {
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
        match pre.instantiate(&mut store) {
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
        f: impl FnOnce(&bindings::Plugin, &mut Store<State>) -> wasmtime::Result<T>,
    ) -> std::result::Result<T, EvalError> {
        f(&self.plugin, &mut self.store)
            .map_err(|e| classify(self.host, self.store.data(), stage, &e))
    }

    /// [`Instance::call`] for the router's fallible functions: an error the router returns is a
    /// `router_error`.
    fn call_router<T>(
        &mut self,
        stage: &str,
        f: impl FnOnce(
            &bindings::Plugin,
            &mut Store<State>,
        ) -> wasmtime::Result<std::result::Result<T, wit::RouterError>>,
    ) -> std::result::Result<T, EvalError> {
        self.call(stage, f)?.map_err(|e| {
            let kind = match e.kind {
                wit::ErrorKind::InvalidParams => "invalid parameters",
                wit::ErrorKind::InvalidInput => "invalid input",
                wit::ErrorKind::Fit => "fit failed",
                wit::ErrorKind::Route => "route failed",
                wit::ErrorKind::Panic => "router panicked",
                wit::ErrorKind::Other => "router error",
            };
            unusable(
                "router_error",
                format!(
                    "`{stage}` returned an error: {kind}: {}",
                    clip(&e.message, 4096)
                ),
            )
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

fn clip(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Rust and C guests keep a "shadow" stack in linear memory, placed first and growing down from
/// 1 MiB; overflowing it wraps the address below zero, so the access lands just under 4 GiB
/// (plus the access's offset), far above any memory a 32-bit guest can have.
const SHADOW_STACK_WRAP: u64 = 0xFFF0_0000;

/// The faulting address of an out-of-bounds access, from wasmtime's message (wasmtime does not
/// expose it as a value).
fn fault_address(text: &str) -> Option<u64> {
    const AT: &str = "memory fault at wasm address 0x";
    let rest = &text[text.find(AT)? + AT.len()..];
    let end = rest
        .find(|c: char| !c.is_ascii_hexdigit())
        .unwrap_or(rest.len());
    u64::from_str_radix(&rest[..end], 16).ok()
}

/// Collapses runs of identical backtrace frames (deep recursion) into one line and a count.
fn squeeze_backtrace(text: &str) -> String {
    let frame = |line: &str| -> Option<String> {
        let (index, rest) = line.trim_start().split_once(':')?;
        index.parse::<u32>().ok()?;
        Some(rest.trim().to_string())
    };
    let mut out = String::new();
    let mut last: Option<String> = None;
    let mut repeats = 0usize;
    for line in text.lines() {
        let f = frame(line);
        if f.is_some() && f == last {
            repeats += 1;
            continue;
        }
        if repeats > 0 {
            out.push_str(&format!("      ... the frame above {repeats} more times\n"));
            repeats = 0;
        }
        out.push_str(line);
        out.push('\n');
        last = f;
    }
    if repeats > 0 {
        out.push_str(&format!("      ... the frame above {repeats} more times\n"));
    }
    out.trim_end().to_string()
}

/// Turns a wasmtime error from `stage` into the evaluation's typed failure.
fn classify(host: &WasmHost, state: &State, stage: &str, e: &wasmtime::Error) -> EvalError {
    let policy = &host.policy;
    let (kind, message) = if let Some(refusal) = &state.limiter.refused {
        let asked = match refusal {
            Refusal::Linear(bytes) => {
                format!("asked for {} MiB of linear memory", bytes.div_ceil(1 << 20))
            }
            Refusal::Host {
                kernel,
                host,
                linear,
            } => format!(
                "asked the host's `{kernel}` for {} MiB (its copies of the inputs, the result \
                 and working memory) on top of {} MiB of linear memory",
                host.div_ceil(1 << 20),
                linear.div_ceil(1 << 20)
            ),
        };
        (
            "out_of_memory",
            format!(
                "`{stage}` {asked}, over the sandbox's cap of {} MiB (raise it with \
                 --memory-limit)",
                policy.memory_mib
            ),
        )
    } else {
        match e.downcast_ref::<Trap>() {
            Some(Trap::OutOfFuel) => (
                "out_of_fuel",
                format!(
                    "`{stage}` used up the fuel budget of {} ({})",
                    state.fuel_budget,
                    if stage == INFO_STAGE {
                        "the fixed budget a plugin has to say its name, whatever --fuel says"
                    } else {
                        "raise it with --fuel"
                    }
                ),
            ),
            Some(Trap::Interrupt) => (
                "timeout",
                format!(
                    "`{stage}` was stopped at the {} s deadline ({})",
                    state.timeout_secs,
                    if stage == INFO_STAGE {
                        "the fixed deadline a plugin has to say its name, whatever --timeout says"
                    } else {
                        "raise it with --timeout"
                    }
                ),
            ),
            Some(Trap::StackOverflow) => (
                "stack_overflow",
                format!(
                    "`{stage}` overflowed the sandbox's {} KiB stack (raise it with --stack-limit)",
                    policy.stack_kib
                ),
            ),
            _ if format!("{e:#}").contains("fuel allocated for hostcalls") => (
                "out_of_memory",
                format!(
                    "`{stage}` passed the host more data in one call than the sandbox's memory cap \
                     of {} MiB",
                    policy.memory_mib
                ),
            ),
            Some(Trap::MemoryOutOfBounds)
                if fault_address(&format!("{e:#}")).is_some_and(|a| a >= SHADOW_STACK_WRAP) =>
            {
                (
                    "stack_overflow",
                    format!(
                        "`{stage}` overflowed its shadow stack (the stack a Rust or C guest keeps \
                         in linear memory, 1 MiB by default: build with \
                         `-C link-arg=-zstack-size=<bytes>` for more)"
                    ),
                )
            }
            _ => match (&state.panic, e.downcast_ref::<wasmtime_wasi::I32Exit>()) {
                (Some(p), _) => ("panic", format!("`{stage}` panicked: {}", clip(p, 4096))),
                (None, Some(code)) => (
                    "trap",
                    format!(
                        "`{stage}` called exit({}): a router must return, not exit",
                        code.0
                    ),
                ),
                (None, None) => (
                    "trap",
                    format!(
                        "`{stage}` trapped: {}",
                        clip(&squeeze_backtrace(&format!("{e:#}")), 4096)
                    ),
                ),
            },
        }
    };
    unusable(kind, message)
}

/// The store's data: WASI state, limits, the log and the panic message.
struct State {
    host_kernels: bool,
    /// The fuel this instance was given (0: no limit), for messages.
    fuel_budget: u64,
    /// Its deadline in seconds, for messages.
    timeout_secs: f64,
    /// When its deadline passes (host code checks it; the epoch stops WebAssembly code).
    deadline: std::time::Instant,
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: Limiter,
    log: Arc<Mutex<LogBuf>>,
    panic: Option<String>,
}

impl State {
    fn new(policy: &SandboxPolicy, seed: u64) -> State {
        let log = Arc::new(Mutex::new(LogBuf {
            text: String::new(),
            cap: policy.max_log_bytes(),
            dropped: 0,
        }));
        // Random bytes, for the guest's hash-map seeds and the like: a fixed function of the
        // run's seed, so a rerun sees the same bytes.
        let mut rng = routereval_sdk::Rng::new(seed ^ 0x005e_ed0f_5a4d_b0c5);
        let bytes: Vec<u8> = (0..4096)
            .flat_map(|_| rng.next_u64().to_le_bytes())
            .collect();
        let wasi = WasiCtxBuilder::new()
            .stdout(CappedLog(log.clone()))
            .stderr(CappedLog(log.clone()))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .socket_addr_check(|_, _| Box::pin(async { false }))
            .wall_clock(FrozenClock)
            .monotonic_clock(FrozenClock)
            .secure_random(wasmtime_wasi::Deterministic::new(bytes.clone()))
            .insecure_random(wasmtime_wasi::Deterministic::new(bytes))
            .insecure_random_seed(u128::from(seed))
            .build();
        State {
            host_kernels: policy.host_kernels,
            fuel_budget: policy.fuel,
            timeout_secs: policy.timeout_secs,
            deadline: deadline_after(policy.timeout_secs),
            wasi,
            table: ResourceTable::new(),
            limiter: Limiter {
                cap: policy.memory_bytes(),
                linear: 0,
                refused: None,
            },
            log,
            panic: None,
        }
    }
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// `secs` from now; a deadline too far to represent is a century away.
fn deadline_after(secs: f64) -> std::time::Instant {
    let now = std::time::Instant::now();
    Duration::try_from_secs_f64(secs)
        .ok()
        .and_then(|d| now.checked_add(d))
        .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 86_400)))
        .unwrap_or(now)
}

/// Fuel charged by the host kernels (`matmul-abt`, `top-k-dot`): one unit per this many
/// multiply-adds of the product.
pub const MATMUL_MACS_PER_FUEL: u64 = 8;

/// Defines `routereval:router/host`. Written with `func_wrap` rather than generated: the
/// matrix kernels need the store (to charge fuel), which wasmtime's generated host traits only
/// give with its async component model.
fn link_host(linker: &mut Linker<State>) -> wasmtime::Result<()> {
    let mut host = linker.instance("routereval:router/host@1.0.0")?;
    host.func_wrap(
        "log",
        |cx: StoreContextMut<'_, State>, (level, message): (Level, String)| {
            let level = match level {
                Level::Error => "error",
                Level::Warn => "warn",
                Level::Info => "info",
                Level::Debug => "debug",
            };
            let mut buf = cx.data().log.lock().unwrap_or_else(|e| e.into_inner());
            buf.push(&format!("[{level}] {message}\n"));
            Ok(())
        },
    )?;
    host.func_wrap(
        "panicking",
        |mut cx: StoreContextMut<'_, State>, (message,): (String,)| {
            cx.data_mut().panic = Some(clip(&message, 4096).to_string());
            Ok(())
        },
    )?;
    host.func_wrap("matmul-abt", host_matmul)?;
    host.func_wrap("top-k-dot", host_top_k_dot)?;
    Ok(())
}

/// The fuel every host-kernel call costs before any work: a call that computes nothing still
/// costs its crossing, so a plugin cannot make millions of free calls.
pub const HOST_CALL_FUEL: u64 = 10_000;

/// About how much work one block of a host kernel does between deadline checks, in
/// multiply-adds (a candidate scanned for the top k counts as [`SCAN_WORK`]): a fraction of a
/// second. The epoch cannot interrupt host code, so the host checks the deadline itself.
const BLOCK_WORK: u64 = 1 << 33;

/// The work of scanning one candidate score for the top k, in multiply-adds of about the same
/// time (a blocked product does tens of multiply-adds per cycle).
const SCAN_WORK: u64 = 16;

/// The most working memory one block of a host kernel allocates beyond its result (top-k keeps
/// one row of scores per query of the block); less when the plugin's memory cap leaves less.
const BLOCK_SCRATCH: u64 = 64 << 20;

/// The fuel of a host kernel over `a` (`n x d`) and `b` (`p x d`): a floor per call, one unit
/// per element of each input and of the `n x p` scores, and one per
/// [`MATMUL_MACS_PER_FUEL`] multiply-adds. Every dimension counts, so a product with `d = 0`
/// (nothing to multiply, `n x p` still to fill or scan) is not free.
pub fn host_kernel_fuel(n: u32, d: u32, p: u32) -> u64 {
    let (n, d, p) = (u128::from(n), u128::from(d), u128::from(p));
    let cost = u128::from(HOST_CALL_FUEL)
        + n * d
        + p * d
        + n * p
        + (n * d * p).div_ceil(u128::from(MATMUL_MACS_PER_FUEL));
    u64::try_from(cost).unwrap_or(u64::MAX)
}

/// The checks every host kernel makes before computing: whether the policy lets the host
/// compute at all (`None`: the kernel answers `none`), the shapes of `a` (`n x d`) and `b`
/// (`p x d`), the deadline, the memory (the inputs the host copied, a result of `out_values`
/// 4-byte values and `scratch_per_row` bytes per row of a block, on top of the plugin's linear
/// memory, within the memory cap) and the fuel ([`host_kernel_fuel`]), which it charges.
/// Returns the rows per block.
fn admit(
    cx: &mut StoreContextMut<'_, State>,
    kernel: &str,
    (a, b): (&[f32], &[f32]),
    (n, d, p): (u32, u32, u32),
    out_values: u64,
    scratch_per_row: u64,
) -> wasmtime::Result<Option<usize>> {
    if !cx.data().host_kernels {
        return Ok(None);
    }
    let (n64, d64, p64) = (u64::from(n), u64::from(d), u64::from(p));
    if a.len() as u64 != n64 * d64 || b.len() as u64 != p64 * d64 {
        return Err(wasmtime::format_err!(
            "{kernel}: a has {} values and b {}, expected {n} x {d} and {p} x {d}",
            a.len(),
            b.len()
        ));
    }
    if std::time::Instant::now() > cx.data().deadline {
        return Err(wasmtime::Error::from(Trap::Interrupt));
    }
    // Rows per block: about BLOCK_WORK of work, at most BLOCK_SCRATCH of working memory, and at
    // least one row.
    let per_row = d64
        .saturating_mul(p64)
        .saturating_add(SCAN_WORK.saturating_mul(p64))
        .max(1);
    let mut rows = (BLOCK_WORK / per_row).clamp(1, n64.max(1));
    // The inputs the host copied and the result, then as many rows of working memory as the cap
    // leaves room for (up to BLOCK_SCRATCH), at least one.
    let fixed = (a.len() as u64 + b.len() as u64)
        .saturating_add(out_values)
        .saturating_mul(4);
    let state = cx.data_mut();
    let (cap, linear) = (state.limiter.cap as u64, state.limiter.linear as u64);
    let room = cap.saturating_sub(linear).saturating_sub(fixed);
    if let Some(fit) = room.min(BLOCK_SCRATCH).checked_div(scratch_per_row) {
        rows = rows.min(fit.max(1));
    }
    let host_bytes = fixed.saturating_add(rows.saturating_mul(scratch_per_row));
    if host_bytes.saturating_add(linear) > cap {
        state.limiter.refused = Some(Refusal::Host {
            kernel: kernel.to_string(),
            host: host_bytes,
            linear,
        });
        return Err(wasmtime::format_err!(
            "{kernel}: {host_bytes} bytes of host memory are over the memory cap"
        ));
    }
    // Paid for only when it can run: a call refused for its memory costs no fuel.
    let cost = host_kernel_fuel(n, d, p);
    let left = cx.get_fuel()?;
    if cost > left {
        cx.set_fuel(0)?;
        return Err(wasmtime::Error::from(Trap::OutOfFuel));
    }
    cx.set_fuel(left - cost)?;
    Ok(Some(usize::try_from(rows).unwrap_or(usize::MAX)))
}

/// Runs `f` over blocks of `rows` rows `start..end` of `n`, checking the deadline before each.
fn in_row_blocks(
    deadline: std::time::Instant,
    n: usize,
    rows: usize,
    mut f: impl FnMut(usize, usize),
) -> wasmtime::Result<()> {
    for start in (0..n).step_by(rows.max(1)) {
        if std::time::Instant::now() > deadline {
            return Err(wasmtime::Error::from(Trap::Interrupt));
        }
        f(start, (start + rows).min(n));
    }
    Ok(())
}

/// `matmul-abt`: `a · bᵀ` natively, with the SDK's kernel (the one built-in routers use).
#[allow(clippy::type_complexity, reason = "the WIT function's parameter tuple")]
fn host_matmul(
    mut cx: StoreContextMut<'_, State>,
    (a, b, n, k, p): (Vec<f32>, Vec<f32>, u32, u32, u32),
) -> wasmtime::Result<(Option<Vec<f32>>,)> {
    let out_values = u64::from(n) * u64::from(p);
    // The product's packing buffers (matrixmultiply's, a few MiB whatever the shapes) are not
    // counted.
    let Some(rows) = admit(&mut cx, "matmul-abt", (&a, &b), (n, k, p), out_values, 0)? else {
        return Ok((None,));
    };
    let (n, k, p) = (n as usize, k as usize, p as usize);
    let mut out = vec![0.0f32; n * p];
    in_row_blocks(cx.data().deadline, n, rows, |start, end| {
        routereval_sdk::matmul_abt(
            &a[start * k..end * k],
            &b,
            end - start,
            k,
            p,
            &mut out[start * p..end * p],
        );
    })?;
    Ok((Some(out),))
}

/// `top-k-dot`: nearest neighbours by dot product natively, with the SDK's code.
#[allow(clippy::type_complexity, reason = "the WIT function's parameter tuple")]
fn host_top_k_dot(
    mut cx: StoreContextMut<'_, State>,
    (a, b, n, d, p, k): (Vec<f32>, Vec<f32>, u32, u32, u32, u32),
) -> wasmtime::Result<(Option<Vec<u32>>,)> {
    let per_row = k.min(p);
    // Per query row of a block: its scores (4 bytes per candidate) and its selection (the
    // SDK's top-k keeps (score, index) pairs and returns indices).
    let scratch = 4 * u64::from(p) + 28 * u64::from(per_row) + 16;
    let out_values = u64::from(n) * u64::from(per_row);
    let Some(rows) = admit(
        &mut cx,
        "top-k-dot",
        (&a, &b),
        (n, d, p),
        out_values,
        scratch,
    )?
    else {
        return Ok((None,));
    };
    let (n, d, p, per_row) = (n as usize, d as usize, p as usize, per_row as usize);
    let mut found = Vec::with_capacity(n * per_row);
    in_row_blocks(cx.data().deadline, n, rows, |start, end| {
        found.extend(routereval_sdk::top_k_dot_local(
            &a[start * d..end * d],
            &b,
            end - start,
            d,
            p,
            per_row,
        ));
    })?;
    Ok((Some(found),))
}

/// What the memory cap refused, for the message.
#[derive(Debug)]
enum Refusal {
    /// Linear memory growing to this many bytes (all the plugin's memories together).
    Linear(usize),
    /// A host kernel asking for `host` bytes of host memory with `linear` bytes in use.
    Host {
        kernel: String,
        host: u64,
        linear: u64,
    },
}

/// The memory cap, for all the plugin's linear memories together and what the host allocates
/// for it (see [`admit`]). The limit is not a wasmtime `Trap`: the limiter records that it
/// refused, so the failure is reported as `out_of_memory` however the guest reacts.
struct Limiter {
    cap: usize,
    /// The bytes of linear memory the plugin has, over all its memories.
    linear: usize,
    refused: Option<Refusal>,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self.linear.saturating_sub(current).saturating_add(desired);
        if total > self.cap {
            self.refused = Some(Refusal::Linear(total));
            return Err(wasmtime::format_err!(
                "linear memory of {total} bytes is over the sandbox's cap of {} bytes",
                self.cap
            ));
        }
        self.linear = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1 << 20)
    }
}

/// The WASI interface whose timers [`freeze_timers`] replaces: the version `wasmtime-wasi`
/// defines (a guest's import of any 0.2.x version resolves to it).
const MONOTONIC_CLOCK: &str = "wasi:clocks/monotonic-clock@0.2.12";

/// Timers on the frozen clock: `subscribe-duration` and `subscribe-instant` give a pollable that
/// is ready at once, so a guest's sleep returns immediately instead of holding the worker in
/// real time (WASI's own timers sleep in host code, which neither the epoch nor the deadline can
/// interrupt). The clock does not move, so a router that waits for time to pass waits in
/// WebAssembly, where fuel and the deadline stop it.
fn freeze_timers(linker: &mut Linker<State>) -> wasmtime::Result<()> {
    fn ready(
        mut cx: StoreContextMut<'_, State>,
    ) -> wasmtime::Result<(Resource<wasmtime_wasi::p2::DynPollable>,)> {
        let table = &mut cx.data_mut().table;
        let timer = table.push(ReadyTimer)?;
        Ok((wasmtime_wasi::p2::subscribe(table, timer)?,))
    }
    let mut clock = linker.instance(MONOTONIC_CLOCK)?;
    clock.func_wrap("subscribe-duration", |cx, (_,): (u64,)| ready(cx))?;
    clock.func_wrap("subscribe-instant", |cx, (_,): (u64,)| ready(cx))?;
    Ok(())
}

/// A timer of the frozen clock: always due.
struct ReadyTimer;

#[wasmtime_wasi::async_trait]
impl Pollable for ReadyTimer {
    async fn ready(&mut self) {}
}

/// Clocks that never move: a router cannot time anything, so its results cannot depend on
/// the machine's speed.
struct FrozenClock;

impl wasmtime_wasi::HostWallClock for FrozenClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl wasmtime_wasi::HostMonotonicClock for FrozenClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}

/// The evaluation's log, capped: what does not fit is counted, not kept.
#[derive(Debug)]
struct LogBuf {
    text: String,
    cap: usize,
    dropped: usize,
}

impl LogBuf {
    fn push(&mut self, s: &str) {
        let room = self.cap.saturating_sub(self.text.len());
        let kept = clip(s, room);
        self.text.push_str(kept);
        self.dropped += s.len() - kept.len();
    }

    fn push_bytes(&mut self, b: &[u8]) {
        self.push(&String::from_utf8_lossy(b));
    }
}

/// Standard output and error of the guest: into the capped log. Writes never fail (a chatty
/// router is not a broken one); past the cap they are dropped.
#[derive(Clone)]
struct CappedLog(Arc<Mutex<LogBuf>>);

impl CappedLog {
    fn append(&self, b: &[u8]) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_bytes(b);
    }
}

impl wasmtime_wasi::cli::IsTerminal for CappedLog {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl wasmtime_wasi::cli::StdoutStream for CappedLog {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CappedLog {
    async fn ready(&mut self) {}
}

impl OutputStream for CappedLog {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        self.append(&bytes);
        Ok(())
    }
    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }
    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(1 << 16)
    }
}

impl tokio::io::AsyncWrite for CappedLog {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.append(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
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
            (Trap::OutOfFuel, "out_of_fuel", "--fuel"),
            (Trap::Interrupt, "timeout", "--timeout"),
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
