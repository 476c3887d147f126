//! Numeric helpers router authors need again and again.
//!
//! All of them are deterministic: the same input gives bit-identical output on every platform
//! the SDK supports, so a router built in, native or as WebAssembly gives the same numbers.

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
pub fn softmax_f64(row: &[f64], out: &mut [f32]) {
    let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let sum: f64 = row.iter().map(|v| (v - max).exp()).sum();
    for (o, v) in out.iter_mut().zip(row) {
        *o = ((v - max).exp() / sum) as f32;
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

/// Indices of the `k` largest values of `row`, largest first; on equal values the lower index
/// comes first; NaNs are never selected. Returns fewer than `k` when the row is shorter.
pub fn top_k(row: &[f32], k: usize) -> Vec<usize> {
    let mut best: Vec<(f32, usize)> = Vec::with_capacity(k + 1);
    for (i, &v) in row.iter().enumerate() {
        if k == 0 || v.is_nan() {
            continue;
        }
        if best.len() == k && v <= best[k - 1].0 {
            continue;
        }
        // Insert after every value >= v (earlier indices win ties).
        let pos = best.partition_point(|&(b, _)| b >= v);
        best.insert(pos, (v, i));
        best.truncate(k);
    }
    best.into_iter().map(|(_, i)| i).collect()
}

/// `out = a · bᵀ`, where `a` is `n x k` and `b` is `p x k` (both row-major) and `out` is
/// `n x p`: every row of `a` against every row of `b`. This is the kernel of similarity search
/// and of dense layers. It runs on one thread with the `matrixmultiply` crate's blocked kernels
/// (the ones `ndarray` uses), which pick SIMD instructions at run time.
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
    // SAFETY: the pointers come from slices whose lengths were checked against the shapes and
    // strides above, `out` does not alias `a` or `b` (it is a unique borrow), and beta = 0 means
    // `out` is only written.
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

#[cfg(test)]
mod tests {
    use super::*;

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
