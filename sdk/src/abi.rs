//! The plugin ABI: how a router crosses into the engine, and how that contract may evolve.
//!
//! # Exporting a router
//!
//! ```ignore
//! routereval_sdk::export_router!(MyRouter);                 // named after the crate
//! routereval_sdk::export_router!(MyRouter, name = "mine");  // or named explicitly
//! routereval_sdk::export_router!(MyRouter, about);          // or by its card (`impl Describe`)
//! ```
//!
//! Built for a `wasm32` target the macro emits the exports of the WIT world `plugin` of
//! `package routereval:router@1.1.0` (the file `wit/router.wit` of this crate, also available
//! as [`WIT`]). A router author needs no WIT tooling: the SDK carries the bindings.
//!
//! Built for the host with the router crate's `native-plugin` feature on, it emits the
//! `abi_stable` root module of [`crate::native`] instead (without the feature: nothing, so
//! that router crates link side by side as `rlib`s). The crate must declare the feature:
//!
//! ```toml
//! [lib]
//! crate-type = ["cdylib", "rlib"]
//!
//! [features]
//! native-plugin = []
//! ```
//!
//! # The native contract
//!
//! The library exports `abi_stable`'s root-module symbol for a
//! [`RouterModuleRef`](crate::native::RouterModuleRef): the router's name, the SDK version,
//! and `new(seed, params)`, which returns a router object (a `#[sabi_trait]`
//! [`NativeRouter`](crate::native::NativeRouter)) with `fit(train, val)` and `route(queries)`.
//! The engine makes one router object per evaluation. Data goes in as borrowed `RSlice`s of
//! the engine's buffers (no copy); the routing comes back as `RVec`s. Every call is wrapped in
//! `catch_unwind` inside the library: a panic never crosses the boundary (where it would
//! abort the engine), it returns an error of kind `panic` carrying the panic message.
//!
//! `abi_stable` checks, before the engine calls anything, that the library's SDK version is
//! compatible with the engine's (same major version; before 1.0 the same minor, and a library
//! may be newer in the patch) and that every type crossing the boundary has the layout the
//! engine expects. A refusal is `abi_mismatch` in the results, naming both versions. Adding a
//! field at the end of `RouterModule`, or a method at the end of `NativeRouter`, is
//! compatible (both are prefix types); anything else is a breaking SDK release.
//!
//! What native code can do, it can do: a native plugin is trusted code. The engine runs an
//! untrusted library's evaluations each in a child process (`--isolate`), so that a crash,
//! abort, `exit` or hang costs one evaluation, not the run; that contains accidents, not
//! malice. Untrusted routers belong in the WebAssembly sandbox.
//!
//! # The WebAssembly contract
//!
//! The engine makes a fresh instance for every evaluation (one benchmark, one candidate
//! pool) and calls, in order: `info`, `create(seed, params)`, `fit(train, val)`,
//! `route(queries)`. Matrices are row-major `list<f32>`; scores are never sent to `route`.
//! The only imports are `routereval:router/host`: a log line, the panic message the SDK's
//! panic hook sends before the guest traps, and two kernels computed natively by the engine
//! and charged to the plugin's fuel (one unit per 8 multiply-adds): `matmul-abt` behind
//! [`crate::matmul_abt`] and `top-k-dot` behind [`crate::top_k_dot`]. Each returns `none` when
//! the engine's policy keeps all computation in the sandbox; the SDK then computes it in the
//! plugin. A component built for `wasm32-wasip2` also imports
//! WASI interfaces from Rust's standard library; the engine provides them with everything
//! denied or made deterministic: no preopened directories, no network, no environment or
//! arguments, clocks frozen at zero, random bytes from a generator seeded by the run's seed,
//! standard output and error into the capped evaluation log.
//!
//! # Evolution rules of the WIT world
//!
//! The WIT package version is the ABI version; the engine refuses a plugin whose version it
//! does not implement, naming both versions (`abi_mismatch` in the results).
//!
//! - **Patch** (`1.0.x`): documentation and comments only. The WIT text that tools read is
//!   unchanged.
//! - **Minor** (`1.x`): additions the engine can detect and do without: a new function in
//!   `router` that the engine calls only when the plugin exports it, a new host function,
//!   a new interface. An engine implementing `1.y` loads every plugin built for `1.x` with
//!   `x <= y`. Existing records, variants, enums and function signatures never change in a
//!   minor version (the canonical ABI lays a record out by its field list, so even an added
//!   field changes every function that passes it).
//! - **Major** (`2.0.0`): anything else: a changed or removed field, case, parameter or
//!   result, a renamed function, a different call order. The engine may keep a loader for the
//!   previous major version.
//!
//! ## The versions so far
//!
//! - **1.0.0**: `types`, `host` (`log`, `panicking`, `matmul-abt`, `top-k-dot`), `router`,
//!   world `plugin`.
//! - **1.1.0** (additive): the host interface `tensors` (matrices the engine holds for the
//!   evaluation, named by `u32` handles, read and written as little-endian bytes, and kernels
//!   that take handles: `l2-normalise-rows`, `matmul-abt`, `top-k-dot`, `gather-mean`,
//!   `column-means`, `softmax-rows`, `argmax-rows`, `one-hot`), the export interface
//!   `tensor-router` (the calls of `router` with every matrix a handle) and the world
//!   `tensor-plugin`; world `plugin` also imports `tensors`. A component exports `router` or
//!   `tensor-router`; the engine finds which. Components of 1.0.0 load unchanged (wasmtime
//!   resolves `host@1.0.0` to the engine's `host@1.1.0`, as the minor rule allows) and give
//!   the same results. Handles are plain numbers rather than WIT resources: they die with the
//!   evaluation's store anyway, and every guest language reads a number without drop glue.
//!
//! For a WebAssembly plugin the SDK version ([`crate::SDK_VERSION`], reported by `info`) is
//! informative: it is shown in the results, and never used to refuse the plugin (the WIT
//! version is the contract). For a native plugin the SDK version is the contract (see above).

/// The WIT world of router plugins (`wit/router.wit`).
pub const WIT: &str = include_str!("../wit/router.wit");

/// The WIT package and version the SDK builds plugins against.
pub const WIT_PACKAGE: &str = "routereval:router@1.1.0";

/// Makes a router a plugin. See [`abi`](crate::abi).
///
/// On a `wasm32` target it exports the router as a WebAssembly component of the
/// `routereval:router@1.1.0` world; on the host, with the crate's `native-plugin` feature, as
/// a native library's `abi_stable` root module. Give `name = "..."` to name the router in
/// results, or `about` to take the name from its [`Describe`](crate::Describe) card; the
/// default is the crate's package name.
#[macro_export]
macro_rules! export_router {
    ($router:ty) => {
        $crate::export_router!($router, name = env!("CARGO_PKG_NAME"));
    };
    // The name from the router's card (`impl Describe`).
    ($router:ty, about) => {
        $crate::export_router!($router, name = <$router as $crate::Describe>::ABOUT.name);
    };
    ($router:ty, name = $name:expr) => {
        #[cfg(target_family = "wasm")]
        const _: () = {
            struct RouterEvalExport;
            impl $crate::__wasm::Guest for RouterEvalExport {
                fn info() -> $crate::__wasm::PluginInfo {
                    $crate::__wasm::info($name)
                }
                fn create(
                    seed: u64,
                    params: ::std::vec::Vec<$crate::__wasm::Param>,
                ) -> ::std::result::Result<(), $crate::__wasm::RouterError> {
                    $crate::__wasm::create::<$router>(seed, params)
                }
                fn fit(
                    train: $crate::__wasm::WitSplit,
                    val: $crate::__wasm::WitSplit,
                ) -> ::std::result::Result<(), $crate::__wasm::RouterError> {
                    $crate::__wasm::fit::<$router>(train, val)
                }
                fn route(
                    queries: $crate::__wasm::Queries,
                ) -> ::std::result::Result<$crate::__wasm::Routing, $crate::__wasm::RouterError>
                {
                    $crate::__wasm::route::<$router>(queries)
                }
            }
    $crate::__wasm::__export_plugin_world!(RouterEvalExport with_types_in $crate::__wasm);
        };

        // The native root module, only when the router crate's `native-plugin` feature is on:
        // abi_stable looks the module up under one fixed symbol, so two router crates that both
        // defined it could not be linked into one program (the engine links every built-in).
        #[cfg(all(feature = "native-plugin", not(target_family = "wasm")))]
        const _: () = {
            extern "C" fn new(
                seed: u64,
                params: $crate::native::abi_stable::std_types::RSlice<
                    '_,
                    $crate::native::NativeParam<'_>,
                >,
            ) -> $crate::native::abi_stable::std_types::RResult<
                $crate::native::NativeRouterBox,
                $crate::native::NativeError,
            > {
                $crate::native::new::<$router>(seed, params)
            }
            fn module() -> $crate::native::RouterModuleRef {
                $crate::native::module($name, new)
            }
            $crate::__native_header!(module);
        };
    };
}
