//! Matrices a router keeps for the rest of an evaluation and hands to kernels: [`HeldMatrix`]
//! and the row means it gives, [`RowMeans`].
//!
//! In a WebAssembly plugin the engine holds them (the `tensors` interface of ABI 1.1): the
//! data crosses into the engine once, when the matrix is made, and the kernels (nearest
//! neighbours, row means, softmax, argmax) run natively on it by handle, so a training matrix
//! does not cross again at every `route` and the arithmetic that follows runs at native speed.
//! Built in or as a native library, they are ordinary matrices in memory and the same
//! functions (`routereval-kernels`') compute: a router gives the same results either way.
//! When the sandbox policy turns host kernels off, the plugin reads the data back and computes
//! in WebAssembly.

#[cfg(target_family = "wasm")]
use crate::__wasm::tensors as host;
use crate::RouterError;

/// A row-major `f32` matrix a router keeps for the rest of an evaluation and hands to kernels.
///
/// In a WebAssembly plugin the engine holds it (ABI 1.1's `tensors`): the data crosses once,
/// when it is made, and [`top_k_dot`](HeldMatrix::top_k_dot), [`row_means`](HeldMatrix::row_means)
/// and the [`RowMeans`] methods run natively on it by handle. Built in or as a native library it
/// is an ordinary matrix in memory, and the same `routereval-kernels` functions compute: the
/// results are the same either way.
#[derive(Debug)]
pub struct HeldMatrix {
    rows: usize,
    cols: usize,
    data: Data<f32>,
}

/// `n x m` means of groups of rows of a [`HeldMatrix`], in `f64`; see [`HeldMatrix::row_means`].
#[derive(Debug)]
pub struct RowMeans {
    rows: usize,
    cols: usize,
    data: Data<f64>,
}

#[derive(Debug)]
enum Data<T> {
    Local(Vec<T>),
    /// A tensor the engine holds for this evaluation.
    #[cfg(target_family = "wasm")]
    Held(u32),
}

impl HeldMatrix {
    /// Keeps `data` (`rows x cols`, row-major): in a WebAssembly plugin, the engine takes it
    /// (and the plugin's copy is freed).
    ///
    /// # Errors
    /// [`RouterError::InvalidInput`] when `data` is not `rows x cols`.
    pub fn new(data: Vec<f32>, rows: usize, cols: usize) -> Result<HeldMatrix, RouterError> {
        if Some(data.len()) != rows.checked_mul(cols) {
            return Err(RouterError::InvalidInput(format!(
                "{} values for a {rows} x {cols} matrix",
                data.len()
            )));
        }
        #[cfg(target_family = "wasm")]
        let data = Data::Held(host::write_f32(&data, rows, cols)?);
        #[cfg(not(target_family = "wasm"))]
        let data = Data::Local(data);
        Ok(HeldMatrix { rows, cols, data })
    }

    /// Keeps a copy of `data` (`rows x cols`, row-major): in a WebAssembly plugin the engine
    /// copies it straight from the plugin's memory, with no copy in the plugin.
    ///
    /// # Errors
    /// [`RouterError::InvalidInput`] when `data` is not `rows x cols`.
    pub fn from_slice(data: &[f32], rows: usize, cols: usize) -> Result<HeldMatrix, RouterError> {
        #[cfg(target_family = "wasm")]
        {
            if Some(data.len()) != rows.checked_mul(cols) {
                return Err(RouterError::InvalidInput(format!(
                    "{} values for a {rows} x {cols} matrix",
                    data.len()
                )));
            }
            Ok(HeldMatrix {
                rows,
                cols,
                data: Data::Held(host::write_f32(data, rows, cols)?),
            })
        }
        #[cfg(not(target_family = "wasm"))]
        HeldMatrix::new(data.to_vec(), rows, cols)
    }

    /// Rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The values, where a fallback must compute in the plugin.
    fn values(&self) -> std::borrow::Cow<'_, [f32]> {
        match &self.data {
            Data::Local(v) => std::borrow::Cow::Borrowed(v),
            #[cfg(target_family = "wasm")]
            Data::Held(h) => std::borrow::Cow::Owned(host::read_f32(*h, self.rows)),
        }
    }

    /// Nearest neighbours by dot product (as [`top_k_dot`](crate::top_k_dot) with this matrix
    /// as `b`): for each of the `n` rows of `queries` (`n x cols`), the indices of the `k` rows
    /// of this matrix with the largest dot products, largest first, ties to the lower index.
    ///
    /// # Panics
    /// When `queries` is not `n x cols`.
    pub fn top_k_dot(&self, queries: &[f32], n: usize, k: usize) -> Vec<u32> {
        assert_eq!(
            queries.len(),
            n * self.cols,
            "top_k_dot: queries are not n x cols"
        );
        #[cfg(target_family = "wasm")]
        if let Data::Held(h) = self.data
            && let Ok(q) = host::write_f32(queries, n, self.cols)
        {
            let found = host::top_k_dot(q, h, k);
            host::drop(q);
            if let Some(found) = found {
                return found;
            }
        }
        routereval_kernels::top_k_dot_local(queries, &self.values(), n, self.cols, self.rows, k)
    }

    /// The mean of each run of `k` rows named by `index` (`n` runs), summed in `f64` in index
    /// order and scaled by `1 / k`: `n x cols` means (kNN's predicted scores).
    ///
    /// # Errors
    /// [`RouterError::InvalidInput`] when `k` is 0, `index` is not runs of `k`, or an index is
    /// out of range.
    pub fn row_means(&self, index: &[u32], k: usize) -> Result<RowMeans, RouterError> {
        if k == 0 || !index.len().is_multiple_of(k) {
            return Err(RouterError::InvalidInput(format!(
                "row_means: {} indices are not runs of k = {k}",
                index.len()
            )));
        }
        if let Some(bad) = index.iter().find(|&&i| i as usize >= self.rows) {
            return Err(RouterError::InvalidInput(format!(
                "row_means: row {bad} of a matrix of {} rows",
                self.rows
            )));
        }
        let n = index.len() / k;
        #[cfg(target_family = "wasm")]
        if let Data::Held(h) = self.data
            && let Some(means) = host::gather_mean(h, index, k)
        {
            return Ok(RowMeans {
                rows: n,
                cols: self.cols,
                data: Data::Held(means),
            });
        }
        let out = routereval_kernels::mean_of_row_groups(&self.values(), self.cols, index, k);
        Ok(RowMeans {
            rows: n,
            cols: self.cols,
            data: Data::Local(out),
        })
    }
}

impl RowMeans {
    /// Rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    fn values(&self) -> std::borrow::Cow<'_, [f64]> {
        match &self.data {
            Data::Local(v) => std::borrow::Cow::Borrowed(v),
            #[cfg(target_family = "wasm")]
            Data::Held(h) => std::borrow::Cow::Owned(host::read_f64(*h, self.rows)),
        }
    }

    /// Each row's argmax, the first on ties, NaN never the largest (a row of NaN gives 0), as
    /// [`argmax`](crate::argmax).
    pub fn argmax_rows(&self) -> Vec<u32> {
        #[cfg(target_family = "wasm")]
        if let Data::Held(h) = self.data
            && let Some(found) = host::argmax_rows(h)
        {
            return found;
        }
        let values = self.values();
        values
            .chunks_exact(self.cols.max(1))
            .take(self.rows)
            .map(|row| routereval_kernels::argmax(row).unwrap_or(0) as u32)
            .collect()
    }

    /// The softmax of each row in `f64` ([`softmax_f64`](crate::softmax_f64)): `n x cols`
    /// `f32` values, each row a probability distribution (a belief).
    pub fn softmax_rows(&self) -> Vec<f32> {
        #[cfg(target_family = "wasm")]
        if let Data::Held(h) = self.data
            && let Some(soft) = host::softmax_rows(h)
        {
            let out = host::read_f32(soft, self.rows);
            host::drop(soft);
            return out;
        }
        let values = self.values();
        let mut out = vec![0.0f32; self.rows * self.cols];
        for (row, o) in values
            .chunks_exact(self.cols.max(1))
            .zip(out.chunks_exact_mut(self.cols.max(1)))
        {
            routereval_kernels::softmax_f64(row, o);
        }
        out
    }
}

#[cfg(target_family = "wasm")]
impl Drop for HeldMatrix {
    fn drop(&mut self) {
        if let Data::Held(h) = self.data {
            host::drop(h);
        }
    }
}

#[cfg(target_family = "wasm")]
impl Drop for RowMeans {
    fn drop(&mut self) {
        if let Data::Held(h) = self.data {
            host::drop(h);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_means_softmax_and_argmax_match_the_kernels() {
        let m = HeldMatrix::new(vec![1.0, 0.0, 0.0, 1.0, 1.0, 1.0], 3, 2).unwrap();
        let means = m.row_means(&[0, 2, 1, 1], 2).unwrap();
        assert_eq!((means.rows(), means.cols()), (2, 2));
        assert_eq!(means.argmax_rows(), vec![0, 1]);
        let soft = means.softmax_rows();
        let mut expected = [0.0f32; 2];
        routereval_kernels::softmax_f64(&[1.0, 0.5], &mut expected);
        assert_eq!(&soft[..2], &expected);
        assert_eq!(m.top_k_dot(&[1.0, 0.0], 1, 2), vec![0, 2]);
        assert!(m.row_means(&[0, 5], 2).is_err());
        assert!(m.row_means(&[0, 1, 2], 2).is_err());
        assert!(HeldMatrix::new(vec![0.0; 5], 2, 3).is_err());
    }
}
