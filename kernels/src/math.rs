//! Numeric helpers router authors need again and again, computed here (the SDK adds the
//! engine's host kernels in front of [`matmul_abt`] and [`top_k_dot_local`] inside a sandbox).
//!
//! All of them are deterministic: the same input gives bit-identical output on every platform
//! the SDK supports, so a router built in, native or as WebAssembly gives the same numbers.

/// ln 2 = `LN2_HI + LN2_LO`, the high part with trailing zero bits so that `n * LN2_HI` is exact
/// for the integers `n` that [`exp_det`] and [`ln_1p_det`] scale by.
const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);

/// `e^x` from additions and multiplications only, so it gives the same bits on every platform
/// (the platform's `exp` comes from its C library natively and from a Rust port in
/// WebAssembly, which may differ in the last place; a training loop that calls it millions of
/// times would then drift apart). Range reduction by `ln 2` in two parts and a degree-13 Taylor
/// polynomial on `|r| <= ln 2 / 2`: relative error below 4e-16, two units in the last place
/// (tested against `f64::exp`).
/// Overflows to infinity above 709.78, underflows to 0 below -745.1.
pub fn exp_det(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    if x > 709.78 {
        return f64::INFINITY;
    }
    if x < -745.1 {
        return 0.0;
    }
    let n = (x * std::f64::consts::LOG2_E).round();
    let r = (x - n * LN2_HI) - n * LN2_LO;
    // Horner, highest degree first: sum of r^k / k! for k = 0..=13.
    let mut p = 1.0 / 6_227_020_800.0;
    for k in (1..13).rev() {
        p = p * r + 1.0 / FACTORIALS[k];
    }
    p = p * r + 1.0;
    // Scale by 2^n in two steps, so that n near the limits stays representable.
    let n = n as i64;
    let half = n / 2;
    p * pow2(half) * pow2(n - half)
}

/// `(sigmoid(z), e^-|z|)` in f64 from [`exp_det`], in the stable two-branch form: the same bits
/// on every platform.
#[inline(always)]
pub(crate) fn sigmoid_and_exp(z: f64) -> (f64, f64) {
    let e = exp_det(-z.abs());
    let s = if z >= 0.0 {
        1.0 / (1.0 + e)
    } else {
        e / (1.0 + e)
    };
    (s, e)
}

/// For each logit `z`, `sigmoid(z)` and `e^-|z|` (which a logistic loss needs again:
/// `ln(1 + e^-|z|)`), in f64 from [`exp_det`], so the same bits on every platform. Compiled per
/// instruction set and chosen at run time: a vectorised pass, several times faster than calling
/// [`exp_det`] per element from baseline x86-64 code, where its `round` is a libm call.
///
/// # Panics
/// When the lengths differ.
pub fn sigmoid_det(z: &[f32], sigmoid: &mut [f64], exp_neg_abs: &mut [f64]) {
    assert!(
        z.len() == sigmoid.len() && z.len() == exp_neg_abs.len(),
        "sigmoid_det: slices of different lengths"
    );
    sigmoid_det_kernel(z, sigmoid, exp_neg_abs);
}

#[inline(always)]
fn sigmoid_det_generic(z: &[f32], sigmoid: &mut [f64], exp_neg_abs: &mut [f64]) {
    for ((&z, s), e) in z.iter().zip(sigmoid.iter_mut()).zip(exp_neg_abs.iter_mut()) {
        (*s, *e) = sigmoid_and_exp(f64::from(z));
    }
}

dispatch!(sigmoid_det_kernel, sigmoid_det_generic, (z: &[f32], sigmoid: &mut [f64], exp_neg_abs: &mut [f64]));

const FACTORIALS: [f64; 13] = [
    1.0,
    1.0,
    2.0,
    6.0,
    24.0,
    120.0,
    720.0,
    5040.0,
    40_320.0,
    362_880.0,
    3_628_800.0,
    39_916_800.0,
    479_001_600.0,
];

/// `ln(1 + x)` from additions, multiplications and divisions only, so that, like [`exp_det`],
/// it gives the same bits on every platform (a loss summed from millions of logarithms decides a
/// line search; the platform's `ln` could decide it differently natively and in WebAssembly).
/// `1 + x = 2^k f` with `f` in `[sqrt(1/2), sqrt(2))`, `ln f = 2 atanh(s)` with `s = (f - 1) /
/// (f + 1)`, `|s| <= 0.1716`, by its Taylor series to `s^21`; the rounding error of `1 + x` is
/// added back to first order, so small `x` keep their precision. Relative error below 5e-16
/// (tested against `f64::ln_1p`). `-1` gives `-inf`, below `-1` NaN, `inf` gives `inf`.
pub fn ln_1p_det(x: f64) -> f64 {
    if x.is_nan() || x < -1.0 {
        return f64::NAN;
    }
    if x == -1.0 {
        return f64::NEG_INFINITY;
    }
    if x == f64::INFINITY {
        return x;
    }
    if x.abs() < 1e-300 {
        return x; // also keeps -0.0
    }
    let u = 1.0 + x;
    // The exact rounding error of `1 + x` (Fast2Sum, the larger operand first).
    let err = if x.abs() <= 1.0 {
        x - (u - 1.0)
    } else {
        1.0 - (u - x)
    };
    // u = 2^k f: u >= 2^-53 here, always a normal number.
    let bits = u.to_bits();
    let mut k = ((bits >> 52) & 0x7ff) as i64 - 1023;
    let mut f = f64::from_bits((bits & 0x000f_ffff_ffff_ffff) | 0x3ff0_0000_0000_0000);
    if f >= std::f64::consts::SQRT_2 {
        f *= 0.5;
        k += 1;
    }
    let g = f - 1.0; // exact: f and 1 are within a factor of 2
    let s = g / (2.0 + g);
    let s2 = s * s;
    // 2 s (1 + s^2 / 3 + s^4 / 5 + ... + s^20 / 21), Horner from the top.
    let mut p = 1.0 / 21.0;
    for j in (0..10).rev() {
        p = p * s2 + 1.0 / (2 * j + 1) as f64;
    }
    let ln_f = 2.0 * s * p;
    let k = k as f64;
    k * LN2_HI + (ln_f + (k * LN2_LO + err / u))
}

/// `2^n` for `-1022 <= n <= 1023` (exactly, from the exponent bits).
fn pow2(n: i64) -> f64 {
    f64::from_bits(((n + 1023) as u64) << 52)
}

/// Replaces `row` by its softmax, computed stably (the maximum is subtracted first).
/// A row holding a NaN becomes all NaN, so that the engine's validation reports it.
pub fn softmax_in_place(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if row.iter().any(|v| v.is_nan()) {
        row.fill(f32::NAN);
        return;
    }
    let mut sum = 0.0f64;
    for v in row.iter_mut() {
        *v = (*v - max).exp();
        sum += f64::from(*v);
    }
    let inv = (1.0 / sum) as f32;
    for v in row.iter_mut() {
        *v *= inv;
    }
}

/// The softmax of `row`, computed in f64 and rounded to f32 at the end.
///
/// Each exponential is computed once, and rows that repeat values (a mean of `k` binary
/// scores takes at most `k + 1` values) reuse them from a small cache: `exp` is the costly
/// part, most of all in WebAssembly. The result is the same as computing every one.
pub fn softmax_f64(row: &[f64], out: &mut [f32]) {
    const SLOTS: usize = 16;
    let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut cache = [(0u64, 0.0f64, false); SLOTS];
    let mut exps = Vec::with_capacity(row.len());
    let mut sum = 0.0f64;
    for &v in row {
        let bits = v.to_bits();
        let slot = ((bits ^ (bits >> 29) ^ (bits >> 47)) as usize) % SLOTS;
        let e = match cache[slot] {
            (key, e, true) if key == bits => e,
            _ => {
                let e = (v - max).exp();
                cache[slot] = (bits, e, true);
                e
            }
        };
        exps.push(e);
        sum += e;
    }
    for (o, e) in out.iter_mut().zip(&exps) {
        *o = (e / sum) as f32;
    }
}

/// Scales `row` so that it sums to 1. A row whose sum is zero, negative or not finite becomes
/// uniform.
pub fn normalise_in_place(row: &mut [f32]) {
    let sum: f64 = row.iter().map(|&v| f64::from(v)).sum();
    if sum > 0.0 && sum.is_finite() {
        let inv = 1.0 / sum;
        for v in row.iter_mut() {
            *v = (f64::from(*v) * inv) as f32;
        }
    } else {
        let u = 1.0 / row.len() as f32;
        row.fill(u);
    }
}

/// Index of the largest value; the first one on ties; NaNs are skipped. `None` when the slice
/// is empty or all NaN.
pub fn argmax<T: Copy + PartialOrd>(row: &[T]) -> Option<usize> {
    let mut best: Option<(usize, T)> = None;
    for (i, &v) in row.iter().enumerate() {
        #[allow(clippy::eq_op, reason = "v != v tests for NaN generically")]
        if v != v {
            continue;
        }
        match best {
            Some((_, b)) if v <= b => {}
            _ => best = Some((i, v)),
        }
    }
    best.map(|(i, _)| i)
}

/// Dot product of two equal-length vectors.
///
/// Sixteen independent accumulators let the compiler vectorise the loop (natively and with
/// WebAssembly SIMD); the summation order is fixed, so the result is reproducible.
///
/// # Panics
/// When the lengths differ.
// Always inlined: called from a kernel compiled for AVX-512 or AVX2, an out-of-line copy is
// the baseline (SSE2) one; inlining made MLPR's training step ~18% faster.
#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(
        a.len(),
        b.len(),
        "dot product of vectors of different lengths"
    );
    const L: usize = 16;
    let mut acc = [0.0f32; L];
    let chunks = a.len() / L;
    for c in 0..chunks {
        let (x, y) = (&a[c * L..c * L + L], &b[c * L..c * L + L]);
        for l in 0..L {
            acc[l] += x[l] * y[l];
        }
    }
    let mut tail = 0.0f32;
    for i in chunks * L..a.len() {
        tail += a[i] * b[i];
    }
    // Pairwise reduction of the accumulators.
    let mut width = L;
    while width > 1 {
        width /= 2;
        for l in 0..width {
            acc[l] += acc[l + width];
        }
    }
    acc[0] + tail
}

/// Euclidean norm.
pub fn l2_norm(a: &[f32]) -> f32 {
    dot(a, a).sqrt()
}

/// Cosine similarity of two vectors; 0 when either has zero norm.
pub fn cosine_similarity(a: &[f32], b: &[f32]) -> f32 {
    let (na, nb) = (l2_norm(a), l2_norm(b));
    if na == 0.0 || nb == 0.0 {
        return 0.0;
    }
    dot(a, b) / (na * nb)
}

/// Scales each `dim`-long row of `data` to unit Euclidean norm; zero rows stay zero.
pub fn l2_normalise_rows(data: &mut [f32], dim: usize) {
    if dim == 0 {
        return;
    }
    for row in data.chunks_exact_mut(dim) {
        let n = l2_norm(row);
        if n > 0.0 {
            let inv = 1.0 / n;
            row.iter_mut().for_each(|v| *v *= inv);
        }
    }
}

/// The mean of each run of `k` rows of `values` (`cols` wide, row-major) named by `index`:
/// `index.len() / k` rows of `cols` means, each summed in `f64` in index order and scaled by
/// `1 / k` (kNN's predicted scores). The SDK's `HeldMatrix::row_means` and the engine's
/// `gather-mean` host kernel both compute with this, so their results agree to the bit.
///
/// # Panics
/// When `k` is 0, `index` is not runs of `k`, or an index is out of range.
pub fn mean_of_row_groups<T: Copy + Into<f64>>(
    values: &[T],
    cols: usize,
    index: &[u32],
    k: usize,
) -> Vec<f64> {
    assert!(
        k > 0 && index.len().is_multiple_of(k),
        "index is not runs of k"
    );
    let mut out = vec![0.0f64; index.len() / k * cols];
    let inv_k = 1.0 / k as f64;
    for (run, acc) in index.chunks_exact(k).zip(out.chunks_exact_mut(cols.max(1))) {
        for &r in run {
            let row = &values[r as usize * cols..(r as usize + 1) * cols];
            for (a, &s) in acc.iter_mut().zip(row) {
                *a += s.into();
            }
        }
        acc.iter_mut().for_each(|v| *v *= inv_k);
    }
    out
}

/// Indices of the `k` largest values of `row`, largest first; on equal values the lower index
/// comes first; NaNs are never selected. Returns fewer than `k` when the row is shorter.
pub fn top_k(row: &[f32], k: usize) -> Vec<usize> {
    // Once `best` is full, most values lose to its last one: a chunk none of whose values beats
    // it is skipped with a few vector instructions (eight lane-wise comparisons, which the
    // compiler vectorises natively and for WebAssembly SIMD) instead of a branch per value.
    // Comparisons, not maxima: a NaN compares false and so is ignored, whatever the platform's
    // max instruction does with NaNs.
    const CHUNK: usize = 64;
    const LANES: usize = 8;
    // No more than the row holds: `k` may come from an untrusted caller.
    let k = k.min(row.len());
    let mut best: Vec<(f32, usize)> = Vec::with_capacity(k + 1);
    if k == 0 {
        return Vec::new();
    }
    for (c, chunk) in row.chunks(CHUNK).enumerate() {
        if best.len() == k && chunk.len() == CHUNK {
            let threshold = best[k - 1].0;
            let mut beats = [false; LANES];
            for group in chunk.chunks_exact(LANES) {
                for l in 0..LANES {
                    beats[l] |= group[l] > threshold;
                }
            }
            if !beats.iter().any(|&b| b) {
                continue;
            }
        }
        for (j, &v) in chunk.iter().enumerate() {
            if v.is_nan() || (best.len() == k && v <= best[k - 1].0) {
                continue;
            }
            // Insert after every value >= v (earlier indices win ties).
            let pos = best.partition_point(|&(b, _)| b >= v);
            best.insert(pos, (v, c * CHUNK + j));
            best.truncate(k);
        }
    }
    best.into_iter().map(|(_, i)| i).collect()
}

/// For each of the `n` rows of `a` (`n x d`), the `k` rows of `b` (`p x d`) with the largest dot
/// products, largest first, ties to the lower index (as [`top_k`] on that row of `a · bᵀ`); NaN
/// products rank after every number, in index order, so every row has the same length. Returns
/// `n` rows of `min(k, p)` indices, flat. With L2-normalised rows this is cosine kNN.
///
/// It runs the product in blocks of 512 rows of `a`, so the `n x p` similarity matrix never
/// exists whole (the product kernel repacks `b` for every block, so blocks must be large; 512
/// costs 1.08x one whole product). The SDK's `top_k_dot` is this, or in a WebAssembly plugin the
/// engine's host kernel, which runs this same function natively.
///
/// # Panics
/// When a slice length does not match its shape.
pub fn top_k_dot_local(a: &[f32], b: &[f32], n: usize, d: usize, p: usize, k: usize) -> Vec<u32> {
    assert_eq!(a.len(), n * d, "top_k_dot: a is not n x d");
    assert_eq!(b.len(), p * d, "top_k_dot: b is not p x d");
    const BLOCK: usize = 512;
    let mut found = Vec::with_capacity(n * k.min(p));
    let mut sims = vec![0.0f32; BLOCK.min(n) * p];
    for start in (0..n).step_by(BLOCK) {
        let rows = BLOCK.min(n - start);
        let block = &mut sims[..rows * p];
        matmul_abt(&a[start * d..(start + rows) * d], b, rows, d, p, block);
        for r in 0..rows {
            let row = &block[r * p..(r + 1) * p];
            let best = top_k(row, k);
            let short = k.min(p) - best.len();
            found.extend(best.into_iter().map(|i| i as u32));
            // Only NaNs were left out: they fill the row, lowest index first.
            found.extend(
                (0..p)
                    .filter(|&j| row[j].is_nan())
                    .take(short)
                    .map(|j| j as u32),
            );
        }
    }
    found
}

/// `out = a · bᵀ`, where `a` is `n x k` and `b` is `p x k` (both row-major) and `out` is
/// `n x p`: every row of `a` against every row of `b`. This is the kernel of similarity search
/// and of dense layers. It runs on one thread with the `matrixmultiply` crate's blocked kernels
/// (the ones `ndarray` uses), which pick SIMD instructions at run time; built for WebAssembly
/// SIMD, with its own kernel (below). The SDK's `matmul_abt` is this, or in a WebAssembly plugin
/// the engine's host kernel (`matmul-abt`), which runs this same function natively.
///
/// # Panics
/// When a slice length does not match its shape.
pub fn matmul_abt(a: &[f32], b: &[f32], n: usize, k: usize, p: usize, out: &mut [f32]) {
    assert_eq!(a.len(), n * k, "matmul_abt: a is not n x k");
    assert_eq!(b.len(), p * k, "matmul_abt: b is not p x k");
    assert_eq!(out.len(), n * p, "matmul_abt: out is not n x p");
    if n == 0 || p == 0 {
        return;
    }
    if k == 0 {
        out.fill(0.0);
        return;
    }
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    wasm_simd::matmul_abt(a, b, n, k, p, out);
    // SAFETY: the pointers come from slices whose lengths were checked against the shapes and
    // strides above, `out` does not alias `a` or `b` (it is a unique borrow), and beta = 0 means
    // `out` is only written.
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    unsafe {
        matrixmultiply::sgemm(
            n,
            k,
            p,
            1.0,
            a.as_ptr(),
            k as isize,
            1,
            b.as_ptr(),
            1,
            k as isize,
            0.0,
            out.as_mut_ptr(),
            p as isize,
            1,
        );
    }
}

/// `matmul_abt` for WebAssembly SIMD. `matrixmultiply` has no WebAssembly kernel (its portable
/// one runs 1.7x slower than this under wasmtime's default sandbox policy), so the SDK carries
/// its own: both operands packed so that a 4 x 4 tile of dot products reads one pointer each,
/// sixteen 4-lane accumulators, over blocks of `b` that stay in the L2 cache while all of `a`
/// streams past. With the `relaxed-simd` target feature the multiply-adds are fused (the
/// engine runs relaxed SIMD deterministically). Measured on RouterEval's largest kNN shape
/// (`cargo bench -p routereval-tests --bench wasm`): 4 x 4 tiles beat 4 x 2 (1.5x) and 4 x 3
/// (1.15x); 8 x 4 and 4 x 8 are no faster. Wasmtime's fuel and deadline checks at each loop
/// head make its register allocator save the accumulators around them, which is why wider
/// tiles, not fewer registers, pay.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod wasm_simd {
    use core::arch::wasm32::*;

    /// Rows of `b` per cache block (66 x 768 floats, about 200 KiB; a multiple of 3).
    const BLOCK_B: usize = 64;

    /// Rows of `a` per tile.
    const ROWS: usize = 4;

    /// Rows of `b` per tile.
    const COLS: usize = 4;

    #[inline(always)]
    fn madd(a: v128, b: v128, c: v128) -> v128 {
        #[cfg(target_feature = "relaxed-simd")]
        {
            f32x4_relaxed_madd(a, b, c)
        }
        #[cfg(not(target_feature = "relaxed-simd"))]
        {
            f32x4_add(f32x4_mul(a, b), c)
        }
    }

    #[inline(always)]
    fn hsum(v: v128) -> f32 {
        (f32x4_extract_lane::<0>(v) + f32x4_extract_lane::<1>(v))
            + (f32x4_extract_lane::<2>(v) + f32x4_extract_lane::<3>(v))
    }

    /// One dot product with the same lane-wise order as the tiles.
    fn dot1(x: &[f32], y: &[f32]) -> f32 {
        let k4 = x.len() / 4 * 4;
        let mut acc = f32x4_splat(0.0);
        let mut t = 0;
        while t < k4 {
            // SAFETY: t + 4 <= k4 <= len of both slices; v128_load allows unaligned addresses.
            let (vx, vy) = unsafe {
                (
                    v128_load(x.as_ptr().add(t).cast()),
                    v128_load(y.as_ptr().add(t).cast()),
                )
            };
            acc = madd(vx, vy, acc);
            t += 4;
        }
        let mut s = hsum(acc);
        for t in k4..x.len() {
            s += x[t] * y[t];
        }
        s
    }

    /// Interleaves `R` rows of length `k` (from `src`, starting at row `row`) in groups of four
    /// floats: `[r0[0..4], r1[0..4], .., r0[4..8], ..]`, so the kernel reads them through one
    /// pointer with constant offsets. `k4` is `k` rounded down to a multiple of 4.
    fn pack<const R: usize>(src: &[f32], k: usize, row: usize, k4: usize, dst: &mut Vec<f32>) {
        for t in (0..k4).step_by(4) {
            for r in 0..R {
                let at = (row + r) * k + t;
                dst.extend_from_slice(&src[at..at + 4]);
            }
        }
    }

    /// `ROWS` packed rows of `a` against `COLS` packed rows of `b`: one 4-lane accumulator per
    /// pair, `COLS` vectors of `b` and one of `a` live at a time.
    ///
    /// # Safety
    /// `pa` holds `ROWS * k4` floats and `pb` `COLS * k4`, packed by [`pack`].
    #[inline(always)]
    unsafe fn tile(pa: *const f32, pb: *const f32, k4: usize) -> [[v128; COLS]; ROWS] {
        let z = f32x4_splat(0.0);
        let (mut c0_0, mut c0_1, mut c0_2, mut c0_3) = (z, z, z, z);
        let (mut c1_0, mut c1_1, mut c1_2, mut c1_3) = (z, z, z, z);
        let (mut c2_0, mut c2_1, mut c2_2, mut c2_3) = (z, z, z, z);
        let (mut c3_0, mut c3_1, mut c3_2, mut c3_3) = (z, z, z, z);
        let steps = k4 / 4;
        // SAFETY: step s reads floats 4*ROWS*s..4*ROWS*(s+1) of `pa` and 4*COLS*s..4*COLS*(s+1)
        // of `pb`, in bounds by the contract; v128_load allows unaligned addresses.
        unsafe {
            let (mut pa, mut pb) = (pa, pb);
            for _ in 0..steps {
                let b0 = v128_load(pb.add(0).cast());
                let b1 = v128_load(pb.add(4).cast());
                let b2 = v128_load(pb.add(8).cast());
                let b3 = v128_load(pb.add(12).cast());
                let a = v128_load(pa.add(0).cast());
                c0_0 = madd(a, b0, c0_0);
                c0_1 = madd(a, b1, c0_1);
                c0_2 = madd(a, b2, c0_2);
                c0_3 = madd(a, b3, c0_3);
                let a = v128_load(pa.add(4).cast());
                c1_0 = madd(a, b0, c1_0);
                c1_1 = madd(a, b1, c1_1);
                c1_2 = madd(a, b2, c1_2);
                c1_3 = madd(a, b3, c1_3);
                let a = v128_load(pa.add(8).cast());
                c2_0 = madd(a, b0, c2_0);
                c2_1 = madd(a, b1, c2_1);
                c2_2 = madd(a, b2, c2_2);
                c2_3 = madd(a, b3, c2_3);
                let a = v128_load(pa.add(12).cast());
                c3_0 = madd(a, b0, c3_0);
                c3_1 = madd(a, b1, c3_1);
                c3_2 = madd(a, b2, c3_2);
                c3_3 = madd(a, b3, c3_3);
                pa = pa.add(4 * ROWS);
                pb = pb.add(4 * COLS);
            }
        }
        [
            [c0_0, c0_1, c0_2, c0_3],
            [c1_0, c1_1, c1_2, c1_3],
            [c2_0, c2_1, c2_2, c2_3],
            [c3_0, c3_1, c3_2, c3_3],
        ]
    }

    /// The dot product of row `r` of `a` and row `j` of `b` from a 4-lane partial sum over the
    /// first `k4` elements, plus the scalar tail.
    fn finish(acc: v128, a: &[f32], b: &[f32], k: usize, k4: usize, r: usize, j: usize) -> f32 {
        let mut s = hsum(acc);
        for t in k4..k {
            s += a[r * k + t] * b[j * k + t];
        }
        s
    }

    pub(super) fn matmul_abt(a: &[f32], b: &[f32], n: usize, k: usize, p: usize, out: &mut [f32]) {
        let k4 = k / 4 * 4;
        let groups_a = n / ROWS;
        // All of `a` in groups of `ROWS` rows, packed once; each block of `b` in groups of `COLS`
        // rows, packed per block.
        let mut pa = Vec::with_capacity(groups_a * ROWS * k4);
        for q in 0..groups_a {
            pack::<ROWS>(a, k, ROWS * q, k4, &mut pa);
        }
        let mut pb = Vec::with_capacity(BLOCK_B * k4);
        for j0 in (0..p).step_by(BLOCK_B) {
            let j1 = (j0 + BLOCK_B).min(p);
            let groups_b = (j1 - j0) / COLS;
            pb.clear();
            for t in 0..groups_b {
                pack::<COLS>(b, k, j0 + COLS * t, k4, &mut pb);
            }
            for q in 0..groups_a {
                for t in 0..groups_b {
                    // SAFETY: group q of `a` and group t of `b` were packed above (ROWS * k4 and
                    // COLS * k4 floats).
                    let c = unsafe {
                        tile(
                            pa.as_ptr().add(q * ROWS * k4),
                            pb.as_ptr().add(t * COLS * k4),
                            k4,
                        )
                    };
                    for (r, row) in c.iter().enumerate() {
                        for (x, acc) in row.iter().enumerate() {
                            let (i, j) = (ROWS * q + r, j0 + COLS * t + x);
                            out[i * p + j] = finish(*acc, a, b, k, k4, i, j);
                        }
                    }
                }
                for j in j0 + COLS * groups_b..j1 {
                    for i in ROWS * q..ROWS * q + ROWS {
                        out[i * p + j] = dot1(&a[i * k..(i + 1) * k], &b[j * k..(j + 1) * k]);
                    }
                }
            }
            for i in ROWS * groups_a..n {
                for j in j0..j1 {
                    out[i * p + j] = dot1(&a[i * k..(i + 1) * k], &b[j * k..(j + 1) * k]);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_det_is_exp() {
        let mut worst = 0.0f64;
        let mut x = -745.0;
        while x < 709.0 {
            let (a, b) = (exp_det(x), x.exp());
            if b > 1e-300 {
                worst = worst.max(((a - b) / b).abs());
            }
            x += 0.0137;
        }
        assert!(worst < 4e-16, "worst relative error {worst}");
        assert_eq!(exp_det(0.0), 1.0);
        assert_eq!(exp_det(800.0), f64::INFINITY);
        assert_eq!(exp_det(-800.0), 0.0);
        assert!(exp_det(f64::NAN).is_nan());
    }

    #[test]
    fn sigmoid_det_is_the_sigmoid_with_exp_dets_bits() {
        // Every kind of f32: the range of exp_det's cases (both branches, past the underflow
        // at -745, signed zeros, the extremes, NaN), in lengths that leave vector tails.
        let mut z: Vec<f32> = (-4000..4000).map(|i| i as f32 * 0.2137).collect();
        z.extend([
            0.0,
            -0.0,
            f32::MIN_POSITIVE,
            -1e-40,
            744.9,
            745.2,
            -746.0,
            f32::MAX,
            f32::MIN,
            f32::INFINITY,
            f32::NEG_INFINITY,
        ]);
        for len in [z.len(), z.len() - 1, 7, 1, 0] {
            let z = &z[..len];
            let (mut s, mut e) = (vec![0.0; len], vec![0.0; len]);
            sigmoid_det(z, &mut s, &mut e);
            for ((&z, &s), &e) in z.iter().zip(&s).zip(&e) {
                let z = f64::from(z);
                let want_e = exp_det(-z.abs());
                let want_s = if z >= 0.0 {
                    1.0 / (1.0 + want_e)
                } else {
                    want_e / (1.0 + want_e)
                };
                assert_eq!(e.to_bits(), want_e.to_bits(), "e^-|z| at z = {z}");
                assert_eq!(s.to_bits(), want_s.to_bits(), "sigmoid at z = {z}");
                if z.is_finite() {
                    let exact = if z >= 0.0 {
                        1.0 / (1.0 + (-z).exp())
                    } else {
                        z.exp() / (1.0 + z.exp())
                    };
                    assert!(
                        (s - exact).abs() <= 1e-15 * exact.max(1e-300),
                        "{z}: {s} vs {exact}"
                    );
                }
            }
        }
        let (mut s, mut e) = ([0.0], [0.0]);
        sigmoid_det(&[f32::NAN], &mut s, &mut e);
        assert!(s[0].is_nan() && e[0].is_nan());
    }

    #[test]
    fn ln_1p_det_is_ln_1p() {
        let mut worst = 0.0f64;
        let mut check = |x: f64| {
            let (a, b) = (ln_1p_det(x), x.ln_1p());
            worst = worst.max(((a - b) / b).abs());
        };
        let mut x = -0.999_999;
        while x < 3.0 {
            check(x);
            x += 0.000_731;
        }
        let mut x = 1e-300;
        while x < 1e300 {
            check(x);
            check(-x.min(0.999_999_9));
            x *= 1.37;
        }
        assert!(worst < 5e-16, "worst relative error {worst}");
        assert_eq!(ln_1p_det(0.0), 0.0);
        assert_eq!(ln_1p_det(-1.0), f64::NEG_INFINITY);
        assert_eq!(ln_1p_det(f64::INFINITY), f64::INFINITY);
        assert!(ln_1p_det(-1.5).is_nan() && ln_1p_det(f64::NAN).is_nan());
        assert_eq!(ln_1p_det(1.0), std::f64::consts::LN_2);
    }

    #[test]
    fn softmax_matches_hand_computation() {
        let mut r = [0.0f32, (2.0f32).ln()];
        softmax_in_place(&mut r);
        assert!((r[0] - 1.0 / 3.0).abs() < 1e-7 && (r[1] - 2.0 / 3.0).abs() < 1e-7);
        let mut big = [1000.0f32, 1000.0];
        softmax_in_place(&mut big);
        assert_eq!(big, [0.5, 0.5]);
        let mut out = [0.0f32; 3];
        softmax_f64(&[1.0, 1.0, 1.0], &mut out);
        assert_eq!(out, [1.0 / 3.0; 3]);
    }

    #[test]
    fn argmax_takes_first_on_ties_and_skips_nan() {
        assert_eq!(argmax(&[1.0f32, 3.0, 3.0]), Some(1));
        assert_eq!(argmax(&[f32::NAN, 0.5, 0.2]), Some(1));
        assert_eq!(argmax::<f32>(&[]), None);
        assert_eq!(argmax(&[2i32, 7, 7]), Some(1));
    }

    #[test]
    fn normalise_and_norms() {
        let mut r = [1.0f32, 3.0];
        normalise_in_place(&mut r);
        assert_eq!(r, [0.25, 0.75]);
        let mut z = [0.0f32; 4];
        normalise_in_place(&mut z);
        assert_eq!(z, [0.25; 4]);
        let a: Vec<f32> = (0..37).map(|i| i as f32 * 0.5).collect();
        let naive: f32 = a.iter().map(|x| x * x).sum();
        assert!((dot(&a, &a) - naive).abs() < 1e-3);
        assert!((cosine_similarity(&[1.0, 0.0], &[1.0, 1.0]) - 0.5f32.sqrt()).abs() < 1e-6);
        assert_eq!(cosine_similarity(&[0.0, 0.0], &[1.0, 1.0]), 0.0);
        let mut rows = [3.0f32, 4.0, 0.0, 0.0];
        l2_normalise_rows(&mut rows, 2);
        assert_eq!(rows, [0.6, 0.8, 0.0, 0.0]);
    }

    #[test]
    fn top_k_orders_and_breaks_ties_by_index() {
        let row = [0.1f32, 0.9, 0.5, 0.9, f32::NAN, 0.7];
        assert_eq!(top_k(&row, 3), vec![1, 3, 5]);
        assert_eq!(top_k(&row, 10), vec![1, 3, 5, 2, 0]);
        assert!(top_k(&row, 0).is_empty());
    }

    #[test]
    fn top_k_equals_a_full_sort_across_chunks() {
        let mut rng = crate::Rng::new(3);
        for len in [0, 1, 63, 64, 65, 200, 1000, 4099] {
            for k in [1, 5, 70] {
                // Few distinct values (many ties), some NaNs and infinities.
                let row: Vec<f32> = (0..len)
                    .map(|_| match rng.below(50) {
                        0 => f32::NAN,
                        1 => f32::NEG_INFINITY,
                        2 => f32::INFINITY,
                        x => (x % 9) as f32 * 0.25 - 1.0,
                    })
                    .collect();
                let mut idx: Vec<usize> = (0..len).filter(|&i| !row[i].is_nan()).collect();
                idx.sort_by(|&a, &b| row[b].partial_cmp(&row[a]).unwrap().then(a.cmp(&b)));
                idx.truncate(k);
                assert_eq!(top_k(&row, k), idx, "len {len}, k {k}");
            }
        }
    }

    #[test]
    fn top_k_dot_equals_top_k_of_the_product_and_pads_nans_last() {
        let mut rng = crate::Rng::new(11);
        let (n, d, p) = (600, 5, 70); // two blocks of rows
        let a: Vec<f32> = (0..n * d).map(|_| rng.below(3) as f32 - 1.0).collect();
        let mut b: Vec<f32> = (0..p * d).map(|_| rng.below(3) as f32 - 1.0).collect();
        b[3 * d] = f32::NAN; // row 3 of b gives NaN products
        let mut prod = vec![0.0f32; n * p];
        matmul_abt(&a, &b, n, d, p, &mut prod);
        for k in [1, 4, 70, 100] {
            let found = top_k_dot_local(&a, &b, n, d, p, k);
            let per_row = k.min(p);
            assert_eq!(found.len(), n * per_row);
            for i in 0..n {
                let row = &prod[i * p..(i + 1) * p];
                let mut want: Vec<u32> = top_k(row, k).into_iter().map(|j| j as u32).collect();
                if want.len() < per_row {
                    want.push(3);
                }
                assert_eq!(
                    &found[i * per_row..(i + 1) * per_row],
                    &want[..],
                    "row {i}, k {k}"
                );
            }
        }
    }

    #[test]
    fn matmul_matches_naive() {
        let (n, k, p) = (5, 7, 3);
        let a: Vec<f32> = (0..n * k).map(|i| (i % 11) as f32 - 5.0).collect();
        let b: Vec<f32> = (0..p * k).map(|i| (i % 7) as f32 * 0.5).collect();
        let mut out = vec![0.0; n * p];
        matmul_abt(&a, &b, n, k, p, &mut out);
        for i in 0..n {
            for j in 0..p {
                let want: f32 = (0..k).map(|t| a[i * k + t] * b[j * k + t]).sum();
                assert!((out[i * p + j] - want).abs() < 1e-4);
            }
        }
    }
}
