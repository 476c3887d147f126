//! The two numeric helpers the engine can compute for a plugin in its sandbox: [`matmul_abt`]
//! and [`top_k_dot`]. The arithmetic is `routereval-kernels`' (as are the SDK's other helpers,
//! re-exported at the crate root); inside a WebAssembly plugin these ask the engine's host
//! kernels first, which run the same kernel code natively and charge the plugin's fuel, so a
//! plugin's results equal the built-in router's.

/// `out = a · bᵀ`, where `a` is `n x k` and `b` is `p x k` (both row-major) and `out` is
/// `n x p`: every row of `a` against every row of `b`. This is the kernel of similarity search
/// and of dense layers. It runs on one thread with the `matrixmultiply` crate's blocked kernels
/// (the ones `ndarray` uses), which pick SIMD instructions at run time. In a WebAssembly plugin
/// the engine computes it natively (the `matmul-abt` host function, charged to the plugin's
/// fuel), so a plugin's results equal the built-in router's; when the sandbox policy turns
/// host kernels off, the kernels' own WebAssembly SIMD code computes it in the plugin.
///
/// # Panics
/// When a slice length does not match its shape.
pub fn matmul_abt(a: &[f32], b: &[f32], n: usize, k: usize, p: usize, out: &mut [f32]) {
    // In the engine's sandbox the host computes it natively (unless its policy says not to).
    #[cfg(target_family = "wasm")]
    if a.len() == n * k
        && b.len() == p * k
        && out.len() == n * p
        && n > 0
        && p > 0
        && k > 0
        && let Some(product) = crate::__wasm::host_matmul(a, b, n, k, p)
        && product.len() == out.len()
    {
        out.copy_from_slice(&product);
        return;
    }
    routereval_kernels::matmul_abt(a, b, n, k, p, out);
}

/// Nearest neighbours by dot product: for each of the `n` rows of `a` (`n x d`), the indices of
/// the `k` rows of `b` (`p x d`) with the largest dot products, largest first, ties to the lower
/// index (as [`top_k`](crate::top_k) on that row of `a · bᵀ`); NaN products rank after every
/// number, in index order, so every row has the same length. Returns `n` rows of `min(k, p)`
/// indices, flat. With L2-normalised rows this is cosine kNN.
///
/// It runs the product in blocks of rows, so the `n x p` similarity matrix never exists whole.
/// In a WebAssembly plugin the engine computes it natively (the `top-k-dot` host function,
/// charged to the plugin's fuel): neither the similarities nor the selection then run in the
/// sandbox, and the result equals the built-in computation
/// ([`top_k_dot_local`](crate::top_k_dot_local)).
///
/// # Panics
/// When a slice length does not match its shape.
pub fn top_k_dot(a: &[f32], b: &[f32], n: usize, d: usize, p: usize, k: usize) -> Vec<u32> {
    assert_eq!(a.len(), n * d, "top_k_dot: a is not n x d");
    assert_eq!(b.len(), p * d, "top_k_dot: b is not p x d");
    #[cfg(target_family = "wasm")]
    if let Some(found) = crate::__wasm::host_top_k_dot(a, b, n, d, p, k)
        && found.len() == n * k.min(p)
    {
        return found;
    }
    routereval_kernels::top_k_dot_local(a, b, n, d, p, k)
}
