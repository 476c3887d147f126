//! The guest side of the WebAssembly plugin ABI: what `export_router!` expands to when the
//! router crate is built for a `wasm32` target. Not part of the public API (hidden from the
//! docs); the contract is the WIT world in `sdk/wit/router.wit`, described in [`crate::abi`].

use std::any::Any;
use std::cell::RefCell;
use std::sync::Once;

use crate::{ParamValue, Params, Queries as QueriesView, Router, RouterError as Error, Split};

wit_bindgen::generate!({
    path: "wit",
    world: "plugin",
    pub_export_macro: true,
    export_macro_name: "__export_plugin_world",
    default_bindings_module: "::routereval_sdk::__wasm",
});

pub use exports::routereval::router::router::{
    Guest, Param, PluginInfo, Queries, RouterError, Routing, Split as WitSplit,
};
use routereval::router::host;
use routereval::router::types::{ErrorKind, Matrix, ParamValue as WitParamValue};

thread_local! {
    // The router of this instance. The engine makes a fresh instance per evaluation and the
    // guest is single-threaded, so one slot is enough.
    static ROUTER: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
}

static HOOK: Once = Once::new();

/// A panic aborts a WebAssembly guest (the host sees a trap without a message), so the hook
/// hands the message to the host first.
fn install_panic_hook() {
    HOOK.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            host::panicking(&info.to_string());
        }));
    });
}

fn to_wit(e: Error) -> RouterError {
    let kind = match &e {
        Error::InvalidParams(_) => ErrorKind::InvalidParams,
        Error::InvalidInput(_) => ErrorKind::InvalidInput,
        Error::Fit(_) => ErrorKind::Fit,
        Error::Route(_) => ErrorKind::Route,
        Error::Panic(_) => ErrorKind::Panic,
        _ => ErrorKind::Other,
    };
    RouterError {
        kind,
        message: e.message().to_string(),
    }
}

/// `info`.
pub fn info(name: &str) -> PluginInfo {
    install_panic_hook();
    PluginInfo {
        name: name.to_string(),
        sdk_version: crate::SDK_VERSION.to_string(),
    }
}

/// `create`.
pub fn create<R: Router + 'static>(seed: u64, params: Vec<Param>) -> Result<(), RouterError> {
    install_panic_hook();
    let mut p = Params::new(seed);
    for Param { key, value } in params {
        let value = match value {
            WitParamValue::Boolean(b) => ParamValue::Bool(b),
            WitParamValue::Integer(i) => ParamValue::Int(i),
            WitParamValue::Float(x) => ParamValue::Float(x),
            WitParamValue::Text(s) => ParamValue::Str(s),
        };
        p = p.with(&key, value).map_err(to_wit)?;
    }
    let router = R::new(&p).map_err(to_wit)?;
    ROUTER.with(|slot| *slot.borrow_mut() = Some(Box::new(router)));
    Ok(())
}

fn with_router<R: Router + 'static, T>(
    f: impl FnOnce(&mut R) -> Result<T, Error>,
) -> Result<T, RouterError> {
    ROUTER.with(|slot| {
        let mut slot = slot.borrow_mut();
        let router = slot
            .as_mut()
            .and_then(|r| r.downcast_mut::<R>())
            .ok_or_else(|| to_wit(Error::Other("`create` was not called first".into())))?;
        f(router).map_err(to_wit)
    })
}

fn queries_view<'a>(m: &'a Matrix, prompts: &'a [String]) -> Result<QueriesView<'a>, Error> {
    QueriesView::new(m.rows as usize, m.cols as usize, &m.data, prompts)
}

fn split_view(s: &WitSplit) -> Result<Split<'_>, Error> {
    if s.scores.rows != s.embeddings.rows || s.scores.cols as usize != s.candidates.len() {
        return Err(Error::InvalidInput(format!(
            "score matrix is {} x {}, expected {} x {}",
            s.scores.rows,
            s.scores.cols,
            s.embeddings.rows,
            s.candidates.len()
        )));
    }
    Split::new(
        queries_view(&s.embeddings, &s.prompts)?,
        &s.scores.data,
        &s.candidates,
    )
}

/// `fit`.
pub fn fit<R: Router + 'static>(train: WitSplit, val: WitSplit) -> Result<(), RouterError> {
    with_router::<R, _>(|r| r.fit(&split_view(&train)?, &split_view(&val)?))
}

/// `route`.
pub fn route<R: Router + 'static>(queries: Queries) -> Result<Routing, RouterError> {
    with_router::<R, _>(|r| {
        let routing = r.route(&queries_view(&queries.embeddings, &queries.prompts)?)?;
        let (n, m, belief, choices) = routing.into_parts();
        Ok(Routing {
            belief: Matrix {
                rows: n as u32,
                cols: m as u32,
                data: belief,
            },
            choices,
        })
    })
}

/// `a · bᵀ` by the engine, natively; `None` when the sandbox policy turns host kernels off.
pub fn host_matmul(a: &[f32], b: &[f32], n: usize, k: usize, p: usize) -> Option<Vec<f32>> {
    let (n, k, p) = (
        u32::try_from(n).ok()?,
        u32::try_from(k).ok()?,
        u32::try_from(p).ok()?,
    );
    host::matmul_abt(a, b, n, k, p)
}

/// Nearest neighbours by dot product, by the engine; `None` when host kernels are off.
pub fn host_top_k_dot(
    a: &[f32],
    b: &[f32],
    n: usize,
    d: usize,
    p: usize,
    k: usize,
) -> Option<Vec<u32>> {
    let (n, d, p, k) = (
        u32::try_from(n).ok()?,
        u32::try_from(d).ok()?,
        u32::try_from(p).ok()?,
        u32::try_from(k).ok()?,
    );
    host::top_k_dot(a, b, n, d, p, k)
}

/// Writes a line to the evaluation's log.
pub fn log(level: crate::Level, message: &str) {
    let level = match level {
        crate::Level::Error => host::Level::Error,
        crate::Level::Warn => host::Level::Warn,
        crate::Level::Info => host::Level::Info,
        crate::Level::Debug => host::Level::Debug,
    };
    host::log(level, message);
}

/// The engine's `tensors` interface (ABI 1.1), for [`crate::HeldMatrix`].
pub mod tensors {
    use super::routereval::router::tensors as t;
    use crate::RouterError;

    /// The bytes of `values`: WebAssembly is little-endian, the tensors' byte order.
    fn as_bytes(values: &[f32]) -> &[u8] {
        // SAFETY: f32 has no padding and every byte pattern is a valid u8; the slice covers
        // exactly the values' memory, which outlives the borrow.
        unsafe { std::slice::from_raw_parts(values.as_ptr().cast::<u8>(), size_of_val(values)) }
    }

    /// Hands `values` (`rows x cols`) to the engine; its handle.
    pub fn write_f32(values: &[f32], rows: usize, cols: usize) -> Result<u32, RouterError> {
        let (Ok(r), Ok(c)) = (u32::try_from(rows), u32::try_from(cols)) else {
            return Err(RouterError::InvalidInput(format!(
                "a {rows} x {cols} matrix is too large for the engine's tensors"
            )));
        };
        Ok(t::write(r, c, t::Dtype::F32, as_bytes(values)))
    }

    /// All rows of an f32 tensor of `rows` rows.
    pub fn read_f32(h: u32, rows: usize) -> Vec<f32> {
        t::read(h, 0, rows as u32)
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    }

    /// All rows of an f64 tensor of `rows` rows.
    pub fn read_f64(h: u32, rows: usize) -> Vec<f64> {
        t::read(h, 0, rows as u32)
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")))
            .collect()
    }

    /// `tensors.top-k-dot`.
    pub fn top_k_dot(a: u32, b: u32, k: usize) -> Option<Vec<u32>> {
        t::top_k_dot(a, b, u32::try_from(k).ok()?)
    }

    /// `tensors.gather-mean`.
    pub fn gather_mean(h: u32, index: &[u32], k: usize) -> Option<u32> {
        t::gather_mean(h, index, u32::try_from(k).ok()?)
    }

    /// `tensors.argmax-rows`.
    pub fn argmax_rows(h: u32) -> Option<Vec<u32>> {
        t::argmax_rows(h)
    }

    /// `tensors.softmax-rows`.
    pub fn softmax_rows(h: u32) -> Option<u32> {
        t::softmax_rows(h)
    }

    /// `tensors.drop`.
    pub fn drop(h: u32) {
        t::drop(h);
    }
}
