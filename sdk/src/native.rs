//! The native plugin ABI: the `abi_stable` root module a router library exports, and the types
//! that cross the boundary. See [`crate::abi`] for how a crate becomes a native plugin.
//!
//! The engine loads the library with `abi_stable`, which checks, before any router code runs
//! through the module, that the library was built against a compatible SDK version
//! ([`RouterModuleRef`]'s version strings are the SDK's) and that every type below has the
//! layout the engine expects. Data goes in as borrowed [`RSlice`]s of the engine's own buffers
//! (nothing is copied on the way in) and the routing comes back as [`RVec`]s, freed by the
//! allocator of the library that made them.
//!
//! Evolution: [`RouterModule`] is a prefix type, so fields may be appended after
//! [`RouterModule::new`] in a minor SDK version (an engine reading an older library sees them
//! as absent). The router object ([`NativeRouter`]) is a `#[sabi_trait]` whose methods may be
//! appended the same way. Anything else is a breaking change and a new major (or, before 1.0,
//! minor) SDK version, which `abi_stable` refuses with a message naming both versions.

#![allow(
    non_local_definitions,
    reason = "abi_stable's #[sabi_trait] expands to impls in a const block"
)]
#![allow(
    missing_docs,
    reason = "abi_stable's derives generate undocumented public items (accessors, type aliases)"
)]

use std::panic::{AssertUnwindSafe, catch_unwind};

pub use abi_stable;
use abi_stable::library::RootModule;
use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::sabi_types::VersionStrings;
use abi_stable::std_types::{RBox, ROption, RResult, RSlice, RStr, RString, RVec};
use abi_stable::{StableAbi, declare_root_module_statics, package_version_strings, sabi_trait};

use crate::{ParamValue, Params, Queries, Router, RouterError, Routing, Split, Texts};

/// The symbol `abi_stable` looks up in a library: `export_router!` defines a static of this
/// name (checked against `abi_stable::library::ROOT_MODULE_LOADER_NAME` by a unit test).
#[doc(hidden)]
#[macro_export]
macro_rules! __native_header {
    ($module:path) => {
        #[unsafe(no_mangle)]
        #[allow(non_upper_case_globals, reason = "abi_stable's fixed symbol name")]
        pub static _1as_0lib_1header_0root_bmodule_bloader:
            $crate::native::abi_stable::library::LibHeader = {
            extern "C" fn load() -> $crate::native::abi_stable::library::RootModuleResult {
                $crate::native::abi_stable::library::__call_root_module_loader($module)
            }
            // SAFETY: `load` returns the prefix reference of a `RouterModuleRef`.
            unsafe {
                $crate::native::abi_stable::library::LibHeader::from_constructor::<
                    $crate::native::RouterModuleRef,
                >(
                    load,
                    $crate::native::abi_stable::library::CheckTypeLayout::Yes,
                )
            }
        };
    };
}

/// Queries as they cross the boundary: `n x dim` row-major embeddings and `n` prompts (or none).
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug)]
pub struct NativeQueries<'a> {
    /// Number of queries.
    pub n: u64,
    /// Embedding dimension.
    pub dim: u64,
    /// The embeddings, row-major.
    pub embeddings: RSlice<'a, f32>,
    /// The prompts; empty when the dataset has none.
    pub prompts: RSlice<'a, RStr<'a>>,
}

/// A labelled split as it crosses the boundary.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug)]
pub struct NativeSplit<'a> {
    /// The queries.
    pub queries: NativeQueries<'a>,
    /// `n x m` scores, row-major.
    pub scores: RSlice<'a, f32>,
    /// The `m` candidate names.
    pub candidates: RSlice<'a, RStr<'a>>,
}

/// A routing as it crosses back: an `n x m` belief and optional choices.
#[repr(C)]
#[derive(StableAbi, Debug)]
pub struct NativeRouting {
    /// Number of queries.
    pub n: u64,
    /// Number of candidates.
    pub m: u64,
    /// The belief, row-major.
    pub belief: RVec<f32>,
    /// The explicit choices, if any.
    pub choices: ROption<RVec<u32>>,
}

/// A router's error: its kind ([`RouterError::kind`]) and message.
#[repr(C)]
#[derive(StableAbi, Debug)]
pub struct NativeError {
    /// `invalid_params`, `invalid_input`, `fit_error`, `route_error`, `panic` or
    /// `router_error`; an unknown kind reads as `router_error`.
    pub kind: RString,
    /// The message.
    pub message: RString,
}

/// A parameter value.
#[repr(u8)]
#[derive(StableAbi, Debug)]
pub enum NativeParamValue<'a> {
    /// `true` / `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A number.
    Float(f64),
    /// Text.
    Text(RStr<'a>),
}

/// One named parameter.
#[repr(C)]
#[derive(StableAbi, Debug)]
pub struct NativeParam<'a> {
    /// The name.
    pub key: RStr<'a>,
    /// The value.
    pub value: NativeParamValue<'a>,
}

/// The router object a plugin hands out: one per evaluation.
#[sabi_trait]
pub trait NativeRouter {
    /// [`Router::fit`].
    fn fit(&mut self, train: NativeSplit<'_>, val: NativeSplit<'_>) -> RResult<(), NativeError>;

    /// [`Router::route`].
    #[sabi(last_prefix_field)]
    fn route(&self, queries: NativeQueries<'_>) -> RResult<NativeRouting, NativeError>;
}

/// An owned router object.
pub type NativeRouterBox = NativeRouter_TO<'static, RBox<()>>;

/// The constructor in the root module.
pub type NewFn = extern "C" fn(
    seed: u64,
    params: RSlice<'_, NativeParam<'_>>,
) -> RResult<NativeRouterBox, NativeError>;

/// The root module of a native router plugin.
#[repr(C)]
#[derive(StableAbi)]
#[allow(
    missing_debug_implementations,
    reason = "a table of function pointers; abi_stable's prefix type has no Debug"
)]
#[sabi(kind(Prefix(prefix_ref = RouterModuleRef)))]
pub struct RouterModule {
    /// The router's name (shown in results).
    pub name: RStr<'static>,
    /// The SDK version the library was built with.
    pub sdk_version: RStr<'static>,
    /// Builds a router from the seed and its parameters.
    // Spelled out, not `NewFn`: `StableAbi` needs the higher-ranked lifetimes written here.
    #[sabi(last_prefix_field)]
    pub new: extern "C" fn(
        seed: u64,
        params: RSlice<'_, NativeParam<'_>>,
    ) -> RResult<NativeRouterBox, NativeError>,
}

impl RootModule for RouterModuleRef {
    declare_root_module_statics! {RouterModuleRef}
    const BASE_NAME: &'static str = "routereval_router";
    const NAME: &'static str = "routereval router plugin";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}

// ------------------------------------------------------------------------------------------
// Conversions, used by both sides.

impl NativeError {
    /// From a router's error.
    pub fn from_error(e: &RouterError) -> NativeError {
        NativeError {
            kind: e.kind().into(),
            message: e.message().into(),
        }
    }

    /// Back to a router's error.
    pub fn to_error(&self) -> RouterError {
        let m = self.message.to_string();
        match self.kind.as_str() {
            "invalid_params" => RouterError::InvalidParams(m),
            "invalid_input" => RouterError::InvalidInput(m),
            "fit_error" => RouterError::Fit(m),
            "route_error" => RouterError::Route(m),
            "panic" => RouterError::Panic(m),
            _ => RouterError::Other(m),
        }
    }
}

/// The strings of a [`Texts`] as `RStr`s (pointers only; the text is not copied).
pub fn rstrs<'a>(t: Texts<'a>) -> Vec<RStr<'a>> {
    t.iter().map(RStr::from_str).collect()
}

/// The boundary form of `q`; `prompts` must come from [`rstrs`] of `q.prompts()`.
pub fn queries_to_native<'a>(q: &Queries<'a>, prompts: &'a [RStr<'a>]) -> NativeQueries<'a> {
    NativeQueries {
        n: q.len() as u64,
        dim: q.dim() as u64,
        embeddings: RSlice::from_slice(q.embeddings()),
        prompts: RSlice::from_slice(prompts),
    }
}

/// The boundary form of `s`; `prompts` and `candidates` from [`rstrs`].
pub fn split_to_native<'a>(
    s: &Split<'a>,
    prompts: &'a [RStr<'a>],
    candidates: &'a [RStr<'a>],
) -> NativeSplit<'a> {
    NativeSplit {
        queries: queries_to_native(&s.queries(), prompts),
        scores: RSlice::from_slice(s.scores()),
        candidates: RSlice::from_slice(candidates),
    }
}

/// Parameters in boundary form (borrowing `p`).
pub fn params_to_native(p: &Params) -> Vec<NativeParam<'_>> {
    p.iter()
        .map(|(k, v)| NativeParam {
            key: RStr::from_str(k),
            value: match v {
                ParamValue::Bool(b) => NativeParamValue::Bool(*b),
                ParamValue::Int(i) => NativeParamValue::Int(*i),
                ParamValue::Float(x) => NativeParamValue::Float(*x),
                ParamValue::Str(s) => NativeParamValue::Text(RStr::from_str(s)),
            },
        })
        .collect()
}

/// A routing from its boundary form (copies the belief out of the library's allocation).
///
/// # Errors
/// [`RouterError::Route`] when the lengths do not match the shape.
pub fn routing_from_native(r: NativeRouting) -> Result<Routing, RouterError> {
    let (n, m) = (
        usize::try_from(r.n).unwrap_or(usize::MAX),
        usize::try_from(r.m).unwrap_or(usize::MAX),
    );
    let routing = Routing::from_belief(n, m, r.belief.into_vec())?;
    match r.choices {
        ROption::RSome(c) => routing.with_choices(c.into_vec()),
        ROption::RNone => Ok(routing),
    }
}

// ------------------------------------------------------------------------------------------
// The library side: what `export_router!` instantiates.

/// Runs `f`, turning a panic into [`RouterError::Panic`]: panics never cross the boundary.
fn guarded<T>(f: impl FnOnce() -> Result<T, RouterError>) -> RResult<T, NativeError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => RResult::ROk(v),
        Ok(Err(e)) => RResult::RErr(NativeError::from_error(&e)),
        Err(payload) => RResult::RErr(NativeError::from_error(&RouterError::from_panic(&*payload))),
    }
}

fn texts<'a>(s: RSlice<'a, RStr<'a>>) -> Texts<'a> {
    Texts::from_rstrs(s.as_slice())
}

fn queries_view(q: NativeQueries<'_>) -> Result<Queries<'_>, RouterError> {
    let n =
        usize::try_from(q.n).map_err(|_| RouterError::InvalidInput("too many queries".into()))?;
    let d = usize::try_from(q.dim)
        .map_err(|_| RouterError::InvalidInput("dimension too large".into()))?;
    Queries::new(n, d, q.embeddings.as_slice(), texts(q.prompts))
}

fn split_view(s: NativeSplit<'_>) -> Result<Split<'_>, RouterError> {
    Split::new(
        queries_view(s.queries)?,
        s.scores.as_slice(),
        texts(s.candidates),
    )
}

/// A router behind the boundary.
#[doc(hidden)]
#[derive(Debug)]
pub struct Adapter<R>(R);

impl<R: Router> NativeRouter for Adapter<R> {
    fn fit(&mut self, train: NativeSplit<'_>, val: NativeSplit<'_>) -> RResult<(), NativeError> {
        guarded(|| self.0.fit(&split_view(train)?, &split_view(val)?))
    }

    fn route(&self, queries: NativeQueries<'_>) -> RResult<NativeRouting, NativeError> {
        guarded(|| {
            let (n, m, belief, choices) = self.0.route(&queries_view(queries)?)?.into_parts();
            Ok(NativeRouting {
                n: n as u64,
                m: m as u64,
                belief: belief.into(),
                choices: choices.map(RVec::from).into(),
            })
        })
    }
}

/// `new` of the root module for router `R`.
#[doc(hidden)]
pub fn new<R: Router + 'static>(
    seed: u64,
    params: RSlice<'_, NativeParam<'_>>,
) -> RResult<NativeRouterBox, NativeError> {
    guarded(|| {
        let mut p = Params::new(seed);
        for NativeParam { key, value } in params.iter() {
            let v = match value {
                NativeParamValue::Bool(b) => ParamValue::Bool(*b),
                NativeParamValue::Int(i) => ParamValue::Int(*i),
                NativeParamValue::Float(x) => ParamValue::Float(*x),
                NativeParamValue::Text(s) => ParamValue::Str(s.to_string()),
            };
            p = p.with(key.as_str(), v)?;
        }
        let router = R::new(&p)?;
        Ok(NativeRouter_TO::from_value(Adapter(router), TD_Opaque))
    })
}

/// The root module for a router named `name` whose constructor is `new`.
#[doc(hidden)]
pub fn module(name: &'static str, new: NewFn) -> RouterModuleRef {
    use abi_stable::prefix_type::PrefixTypeTrait;
    RouterModule {
        name: RStr::from_str(name),
        sdk_version: RStr::from_str(crate::SDK_VERSION),
        new,
    }
    .leak_into_prefix()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exported_symbol_is_the_one_abi_stable_looks_up() {
        // The static `__native_header!` defines must carry abi_stable's loader name.
        assert_eq!(
            abi_stable::library::ROOT_MODULE_LOADER_NAME,
            "_1as_0lib_1header_0root_bmodule_bloader"
        );
    }

    #[test]
    fn errors_round_trip() {
        for e in [
            RouterError::InvalidParams("a".into()),
            RouterError::InvalidInput("b".into()),
            RouterError::Fit("c".into()),
            RouterError::Route("d".into()),
            RouterError::Panic("e".into()),
            RouterError::Other("f".into()),
        ] {
            assert_eq!(NativeError::from_error(&e).to_error(), e);
        }
    }
}
