//! The host interface `routereval:router/host`: `log`, `panicking`, and the kernels
//! `matmul-abt` and `top-k-dot`, which compute natively with `routereval-kernels` (the code built-in routers run), charge the plugin's
//! fuel for every dimension, count their memory against its cap and check the deadline between
//! row blocks.

use super::*;
use crate::util::clip;

/// Fuel charged by the host kernels (`matmul-abt`, `top-k-dot`): one unit per this many
/// multiply-adds of the product.
pub const MATMUL_MACS_PER_FUEL: u64 = 8;

/// Defines `routereval:router/host`. Written with `func_wrap` rather than generated: the
/// matrix kernels need the store (to charge fuel), which wasmtime's generated host traits only
/// give with its async component model.
pub(super) fn link_host(linker: &mut Linker<State>) -> wasmtime::Result<()> {
    let mut host = linker.instance(&host_import())?;
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
pub(super) const BLOCK_WORK: u64 = 1 << 33;

/// The work of scanning one candidate score for the top k, in multiply-adds of about the same
/// time (a blocked product does tens of multiply-adds per cycle).
pub(super) const SCAN_WORK: u64 = 16;

/// The most working memory one block of a host kernel allocates beyond its result (top-k keeps
/// one row of scores per query of the block); less when the plugin's memory cap leaves less.
pub(super) const BLOCK_SCRATCH: u64 = 64 << 20;

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
pub(super) fn admit(
    cx: &mut StoreContextMut<'_, State>,
    kernel: &str,
    copied: Option<(&[f32], &[f32])>,
    (n, d, p): (u32, u32, u32),
    out_values: u64,
    scratch_per_row: u64,
) -> wasmtime::Result<Option<usize>> {
    if !cx.data().host_kernels {
        return Ok(None);
    }
    let (n64, d64, p64) = (u64::from(n), u64::from(d), u64::from(p));
    let (a, b) = copied.unwrap_or((&[], &[]));
    if copied.is_some() && (a.len() as u64 != n64 * d64 || b.len() as u64 != p64 * d64) {
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
    // Host-held tensors count as memory the plugin has.
    let (cap, linear) = (
        state.limiter.cap as u64,
        (state.limiter.linear as u64).saturating_add(state.limiter.held),
    );
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
pub(super) fn in_row_blocks(
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

/// `a · bᵀ` (`a` `n x k`, `b` `p x k`) in row blocks under [`admit`]'s checks and charges:
/// `None` when host kernels are off. `copied`: the host copied `a` and `b` out of the plugin
/// (the list-based `host.matmul-abt`), so they count as its memory; otherwise the host already
/// holds them (the `tensors` interface) and only the result is new.
pub(super) fn blocked_matmul(
    cx: &mut StoreContextMut<'_, State>,
    kernel: &str,
    (a, b): (&[f32], &[f32]),
    (n, k, p): (usize, usize, usize),
    copied: bool,
) -> wasmtime::Result<Option<Vec<f32>>> {
    let dims = (dim(kernel, n)?, dim(kernel, k)?, dim(kernel, p)?);
    // The product's packing buffers (matrixmultiply's, a few MiB whatever the shapes) are not
    // counted.
    let copies = copied.then_some((a, b));
    let Some(rows) = admit(cx, kernel, copies, dims, (n * p) as u64, 0)? else {
        return Ok(None);
    };
    let mut out = vec![0.0f32; n * p];
    in_row_blocks(cx.data().deadline, n, rows, |start, end| {
        routereval_kernels::matmul_abt(
            &a[start * k..end * k],
            b,
            end - start,
            k,
            p,
            &mut out[start * p..end * p],
        );
    })?;
    Ok(Some(out))
}

/// Nearest neighbours by dot product (`a` `n x d` against `b` `p x d`) in row blocks under
/// [`admit`]'s checks and charges: `n` runs of `min(k, p)` indices, `None` when host kernels are
/// off. `copied` as for [`blocked_matmul`].
pub(super) fn blocked_top_k(
    cx: &mut StoreContextMut<'_, State>,
    kernel: &str,
    (a, b): (&[f32], &[f32]),
    (n, d, p): (usize, usize, usize),
    k: usize,
    copied: bool,
) -> wasmtime::Result<Option<Vec<u32>>> {
    let per_row = k.min(p);
    let dims = (dim(kernel, n)?, dim(kernel, d)?, dim(kernel, p)?);
    // Per query row of a block: its scores (4 bytes per candidate) and its selection (the
    // SDK's top-k keeps (score, index) pairs and returns indices).
    let scratch = 4 * p as u64 + 28 * per_row as u64 + 16;
    let copies = copied.then_some((a, b));
    let Some(rows) = admit(cx, kernel, copies, dims, (n * per_row) as u64, scratch)? else {
        return Ok(None);
    };
    let mut found = Vec::with_capacity(n * per_row);
    in_row_blocks(cx.data().deadline, n, rows, |start, end| {
        found.extend(routereval_kernels::top_k_dot_local(
            &a[start * d..end * d],
            b,
            end - start,
            d,
            p,
            per_row,
        ));
    })?;
    Ok(Some(found))
}

/// A dimension as the `u32` the fuel and memory accounting take.
pub(super) fn dim(kernel: &str, v: usize) -> wasmtime::Result<u32> {
    u32::try_from(v).map_err(|_| wasmtime::format_err!("{kernel}: {v} does not fit in 32 bits"))
}

/// `matmul-abt`: `a · bᵀ` natively, with `routereval-kernels`' kernel (the one built-in routers use).
#[allow(clippy::type_complexity, reason = "the WIT function's parameter tuple")]
pub(super) fn host_matmul(
    mut cx: StoreContextMut<'_, State>,
    (a, b, n, k, p): (Vec<f32>, Vec<f32>, u32, u32, u32),
) -> wasmtime::Result<(Option<Vec<f32>>,)> {
    let dims = (n as usize, k as usize, p as usize);
    Ok((blocked_matmul(&mut cx, "matmul-abt", (&a, &b), dims, true)?,))
}

/// `top-k-dot`: nearest neighbours by dot product natively, with `routereval-kernels`' code.
#[allow(clippy::type_complexity, reason = "the WIT function's parameter tuple")]
pub(super) fn host_top_k_dot(
    mut cx: StoreContextMut<'_, State>,
    (a, b, n, d, p, k): (Vec<f32>, Vec<f32>, u32, u32, u32, u32),
) -> wasmtime::Result<(Option<Vec<u32>>,)> {
    let dims = (n as usize, d as usize, p as usize);
    Ok((blocked_top_k(
        &mut cx,
        "top-k-dot",
        (&a, &b),
        dims,
        k as usize,
        true,
    )?,))
}
