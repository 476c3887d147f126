//! The host interface `routereval:router/tensors` (ABI 1.1.0): matrices the engine holds for
//! one evaluation, named by handles, and kernels that take handles. A `tensor-router` receives
//! its splits this way, so a Python router never turns a training matrix into one object per
//! value, and a matrix handed from kernel to kernel never crosses into the plugin at all.
//!
//! Every tensor lives in the evaluation's [`State`] and dies with it. Held bytes count against
//! the memory cap together with linear memory; every call costs fuel (one unit per value moved
//! or made, the kernels as [`host_kernel_fuel`]); a bad handle or shape traps with a message
//! naming the function and what was wrong.

use super::kernels::{admit, blocked_matmul, blocked_top_k, dim};
use super::*;
use bindings::routereval::router::tensors::{Dtype, TensorShape};
use wasmtime::component::WasmList;

/// A matrix the host holds for a plugin.
#[derive(Debug, Clone)]
pub(super) struct HostTensor {
    pub(super) rows: usize,
    pub(super) cols: usize,
    pub(super) data: TensorData,
}

/// The values of a [`HostTensor`], row-major.
#[derive(Debug, Clone)]
pub(super) enum TensorData {
    F32(Vec<f32>),
    F64(Vec<f64>),
}

impl HostTensor {
    pub(super) fn f32(rows: usize, cols: usize, data: Vec<f32>) -> HostTensor {
        debug_assert_eq!(data.len(), rows * cols);
        HostTensor {
            rows,
            cols,
            data: TensorData::F32(data),
        }
    }

    fn f64(rows: usize, cols: usize, data: Vec<f64>) -> HostTensor {
        debug_assert_eq!(data.len(), rows * cols);
        HostTensor {
            rows,
            cols,
            data: TensorData::F64(data),
        }
    }

    pub(super) fn bytes(&self) -> u64 {
        match &self.data {
            TensorData::F32(v) => 4 * v.len() as u64,
            TensorData::F64(v) => 8 * v.len() as u64,
        }
    }

    /// The values as f32 (f64 values rounded), for the routing.
    pub(super) fn into_f32(self) -> Vec<f32> {
        match self.data {
            TensorData::F32(v) => v,
            TensorData::F64(v) => v.into_iter().map(|x| x as f32).collect(),
        }
    }

    /// Row `i` as f64 values.
    fn row_f64(&self, i: usize) -> Vec<f64> {
        let r = i * self.cols..(i + 1) * self.cols;
        match &self.data {
            TensorData::F32(v) => v[r].iter().map(|&x| f64::from(x)).collect(),
            TensorData::F64(v) => v[r].to_vec(),
        }
    }
}

/// The tensors of one evaluation: a slot per handle (handles are never reused within it).
#[derive(Debug, Default)]
pub(super) struct TensorTable {
    slots: Vec<Option<Arc<HostTensor>>>,
}

impl TensorTable {
    pub(super) fn get(&self, kernel: &str, t: u32) -> wasmtime::Result<Arc<HostTensor>> {
        self.slots
            .get(t as usize)
            .and_then(Option::clone)
            .ok_or_else(|| {
                wasmtime::format_err!(
                    "{kernel}: tensor {t} does not exist (never made, or dropped); handles are \
                     valid only in the evaluation that made them"
                )
            })
    }

    pub(super) fn take(&mut self, t: u32) -> Option<Arc<HostTensor>> {
        self.slots.get_mut(t as usize).and_then(Option::take)
    }
}

/// Holds `tensor` for the plugin, counting its bytes against the memory cap; its handle.
pub(super) fn hold(state: &mut State, what: &str, tensor: HostTensor) -> wasmtime::Result<u32> {
    let bytes = tensor.bytes();
    let limiter = &mut state.limiter;
    let total = (limiter.linear as u64)
        .saturating_add(limiter.held)
        .saturating_add(bytes);
    if total > limiter.cap as u64 {
        limiter.refused = Some(Refusal::Host {
            kernel: what.to_string(),
            host: limiter.held.saturating_add(bytes),
            linear: limiter.linear as u64,
        });
        return Err(wasmtime::format_err!(
            "{what}: {bytes} bytes of host-held tensors are over the memory cap"
        ));
    }
    limiter.held += bytes;
    let handle = u32::try_from(state.tensors.slots.len())
        .map_err(|_| wasmtime::format_err!("{what}: too many tensors"))?;
    state.tensors.slots.push(Some(Arc::new(tensor)));
    Ok(handle)
}

/// Charges `units` of fuel, trapping as out of fuel when there are not that many left.
fn charge(cx: &mut StoreContextMut<'_, State>, units: u64) -> wasmtime::Result<()> {
    let units = units.saturating_add(HOST_CALL_FUEL);
    let left = cx.get_fuel()?;
    if units > left {
        cx.set_fuel(0)?;
        return Err(wasmtime::Error::from(Trap::OutOfFuel));
    }
    cx.set_fuel(left - units)?;
    Ok(())
}

/// Defines `routereval:router/tensors`.
pub(super) fn link_tensors(linker: &mut Linker<State>) -> wasmtime::Result<()> {
    let mut i = linker.instance(&tensors_import())?;
    i.func_wrap("shape", |cx: StoreContextMut<'_, State>, (t,): (u32,)| {
        let t = cx.data().tensors.get("shape", t)?;
        let dtype = match t.data {
            TensorData::F32(_) => Dtype::F32,
            TensorData::F64(_) => Dtype::F64,
        };
        Ok((TensorShape {
            rows: dim("shape", t.rows)?,
            cols: dim("shape", t.cols)?,
            dtype,
        },))
    })?;
    i.func_wrap("read", read)?;
    i.func_wrap("write", write)?;
    i.func_wrap(
        "drop",
        |mut cx: StoreContextMut<'_, State>, (t,): (u32,)| {
            let state = cx.data_mut();
            if let Some(gone) = state.tensors.take(t) {
                state.limiter.held = state.limiter.held.saturating_sub(gone.bytes());
            }
            Ok(())
        },
    )?;
    i.func_wrap("l2-normalise-rows", l2_normalise_rows)?;
    i.func_wrap("matmul-abt", matmul_abt)?;
    i.func_wrap("top-k-dot", top_k_dot)?;
    i.func_wrap("gather-mean", gather_mean)?;
    i.func_wrap("column-means", column_means)?;
    i.func_wrap("softmax-rows", softmax_rows)?;
    i.func_wrap("argmax-rows", argmax_rows)?;
    i.func_wrap("one-hot", one_hot)?;
    Ok(())
}

fn read(
    mut cx: StoreContextMut<'_, State>,
    (t, start, end): (u32, u32, u32),
) -> wasmtime::Result<(Vec<u8>,)> {
    let tensor = cx.data().tensors.get("read", t)?;
    let (start, end) = (start as usize, end as usize);
    if start > end || end > tensor.rows {
        return Err(wasmtime::format_err!(
            "read: rows {start}..{end} of tensor {t}, which has {} rows",
            tensor.rows
        ));
    }
    let range = start * tensor.cols..end * tensor.cols;
    let bytes: Vec<u8> = match &tensor.data {
        TensorData::F32(v) => encode(&v[range], |x| x.to_le_bytes().to_vec()),
        TensorData::F64(v) => encode(&v[range], |x| x.to_le_bytes().to_vec()),
    };
    charge(&mut cx, ((end - start) * tensor.cols) as u64)?;
    Ok((bytes,))
}

/// The values of little-endian bytes: a copy at memory speed where the bytes are aligned (the
/// plugin's own `f32`/`f64` data always is) on a little-endian host, a decoding pass otherwise.
fn decode<T: bytemuck::Pod>(bytes: &[u8], from_le: fn(&[u8]) -> T) -> Vec<T> {
    #[cfg(target_endian = "little")]
    if let Ok(values) = bytemuck::try_cast_slice::<u8, T>(bytes) {
        return values.to_vec();
    }
    bytes.chunks_exact(size_of::<T>()).map(from_le).collect()
}

/// The little-endian bytes of `values`.
fn encode<T: bytemuck::Pod>(values: &[T], to_le: fn(&T) -> Vec<u8>) -> Vec<u8> {
    #[cfg(target_endian = "little")]
    {
        let _ = to_le;
        bytemuck::cast_slice(values).to_vec()
    }
    #[cfg(not(target_endian = "little"))]
    values.iter().flat_map(to_le).collect()
}

#[allow(clippy::type_complexity, reason = "the WIT function's parameter tuple")]
fn write(
    mut cx: StoreContextMut<'_, State>,
    (rows, cols, dtype, data): (u32, u32, Dtype, WasmList<u8>),
) -> wasmtime::Result<(u32,)> {
    let (rows, cols) = (rows as usize, cols as usize);
    let width = match dtype {
        Dtype::F32 => 4,
        Dtype::F64 => 8,
    };
    let expected = (rows as u128) * (cols as u128) * width;
    if data.len() as u128 != expected {
        return Err(wasmtime::format_err!(
            "write: {} bytes for a {rows} x {cols} tensor of {}-byte values, expected {expected}",
            data.len(),
            width
        ));
    }
    charge(&mut cx, (rows * cols) as u64)?;
    // Read in place from the plugin's memory: one copy, into the tensor.
    let bytes = data.as_le_slice(&cx);
    let tensor = match dtype {
        Dtype::F32 => HostTensor::f32(
            rows,
            cols,
            decode(bytes, |b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        ),
        Dtype::F64 => HostTensor::f64(
            rows,
            cols,
            decode(bytes, |b| {
                f64::from_le_bytes(b.try_into().expect("8 bytes"))
            }),
        ),
    };
    Ok((hold(cx.data_mut(), "write", tensor)?,))
}

/// An f32 tensor's values, or a trap naming the kernel.
fn f32_values<'t>(kernel: &str, h: u32, t: &'t HostTensor) -> wasmtime::Result<&'t [f32]> {
    match &t.data {
        TensorData::F32(v) => Ok(v),
        TensorData::F64(_) => Err(wasmtime::format_err!(
            "{kernel}: tensor {h} holds f64 values; this kernel takes f32"
        )),
    }
}

/// Admits an elementwise kernel over `values` values (fuel as a product with one multiply-add
/// per value, memory for a result of `out_values`); `None` when host kernels are off.
fn admit_elementwise(
    cx: &mut StoreContextMut<'_, State>,
    kernel: &str,
    (rows, cols): (usize, usize),
    out_values: u64,
) -> wasmtime::Result<Option<()>> {
    let (rows, cols) = (dim(kernel, rows)?, dim(kernel, cols)?);
    Ok(admit(cx, kernel, None, (rows, 0, cols), out_values, 0)?.map(|_| ()))
}

fn l2_normalise_rows(
    mut cx: StoreContextMut<'_, State>,
    (t,): (u32,),
) -> wasmtime::Result<(Option<u32>,)> {
    let x = cx.data().tensors.get("l2-normalise-rows", t)?;
    let (rows, cols) = (x.rows, x.cols);
    let out = (rows * cols) as u64;
    if admit_elementwise(&mut cx, "l2-normalise-rows", (rows, cols), out)?.is_none() {
        return Ok((None,));
    }
    let mut v = f32_values("l2-normalise-rows", t, &x)?.to_vec();
    routereval_kernels::l2_normalise_rows(&mut v, cols);
    let h = hold(
        cx.data_mut(),
        "l2-normalise-rows",
        HostTensor::f32(rows, cols, v),
    )?;
    Ok((Some(h),))
}

/// The two f32 operands of a product, checked to share their inner dimension.
#[allow(clippy::type_complexity, reason = "two operands and three dimensions")]
fn operands(
    state: &State,
    kernel: &str,
    a: u32,
    b: u32,
) -> wasmtime::Result<(Arc<HostTensor>, Arc<HostTensor>, usize, usize, usize)> {
    let (ta, tb) = (state.tensors.get(kernel, a)?, state.tensors.get(kernel, b)?);
    if ta.cols != tb.cols {
        return Err(wasmtime::format_err!(
            "{kernel}: tensor {a} is {} x {} and tensor {b} is {} x {}: the columns must agree",
            ta.rows,
            ta.cols,
            tb.rows,
            tb.cols
        ));
    }
    f32_values(kernel, a, &ta)?;
    f32_values(kernel, b, &tb)?;
    let (n, k, p) = (ta.rows, ta.cols, tb.rows);
    Ok((ta, tb, n, k, p))
}

fn matmul_abt(
    mut cx: StoreContextMut<'_, State>,
    (a, b): (u32, u32),
) -> wasmtime::Result<(Option<u32>,)> {
    let (ta, tb, n, k, p) = operands(cx.data(), "matmul-abt", a, b)?;
    let (va, vb) = (
        f32_values("matmul-abt", a, &ta)?,
        f32_values("matmul-abt", b, &tb)?,
    );
    let Some(out) = blocked_matmul(&mut cx, "matmul-abt", (va, vb), (n, k, p), false)? else {
        return Ok((None,));
    };
    let h = hold(cx.data_mut(), "matmul-abt", HostTensor::f32(n, p, out))?;
    Ok((Some(h),))
}

fn top_k_dot(
    mut cx: StoreContextMut<'_, State>,
    (a, b, k): (u32, u32, u32),
) -> wasmtime::Result<(Option<Vec<u32>>,)> {
    let (ta, tb, n, d, p) = operands(cx.data(), "top-k-dot", a, b)?;
    let (va, vb) = (
        f32_values("top-k-dot", a, &ta)?,
        f32_values("top-k-dot", b, &tb)?,
    );
    Ok((blocked_top_k(
        &mut cx,
        "top-k-dot",
        (va, vb),
        (n, d, p),
        k as usize,
        false,
    )?,))
}

fn gather_mean(
    mut cx: StoreContextMut<'_, State>,
    (t, index, k): (u32, Vec<u32>, u32),
) -> wasmtime::Result<(Option<u32>,)> {
    let x = cx.data().tensors.get("gather-mean", t)?;
    let (rows, cols) = (x.rows, x.cols);
    let k = k as usize;
    if k == 0 || !index.len().is_multiple_of(k) {
        return Err(wasmtime::format_err!(
            "gather-mean: {} indices are not runs of k = {k}",
            index.len()
        ));
    }
    if let Some(bad) = index.iter().find(|&&i| i as usize >= rows) {
        return Err(wasmtime::format_err!(
            "gather-mean: row {bad} of tensor {t}, which has {rows} rows"
        ));
    }
    let n = index.len() / k;
    // Twice the values of an f32 result: the means are f64.
    if admit_elementwise(
        &mut cx,
        "gather-mean",
        (index.len(), cols),
        2 * (n * cols) as u64,
    )?
    .is_none()
    {
        return Ok((None,));
    }
    let out = match &x.data {
        TensorData::F32(v) => routereval_kernels::mean_of_row_groups(v, cols, &index, k),
        TensorData::F64(v) => routereval_kernels::mean_of_row_groups(v, cols, &index, k),
    };
    let h = hold(cx.data_mut(), "gather-mean", HostTensor::f64(n, cols, out))?;
    Ok((Some(h),))
}

fn column_means(
    mut cx: StoreContextMut<'_, State>,
    (t,): (u32,),
) -> wasmtime::Result<(Option<u32>,)> {
    let x = cx.data().tensors.get("column-means", t)?;
    let (rows, cols) = (x.rows, x.cols);
    if admit_elementwise(&mut cx, "column-means", (rows, cols), 2 * cols as u64)?.is_none() {
        return Ok((None,));
    }
    let mut sums = vec![0.0f64; cols];
    for i in 0..rows {
        for (s, v) in sums.iter_mut().zip(x.row_f64(i)) {
            *s += v;
        }
    }
    let n = rows.max(1) as f64;
    let means = sums.iter().map(|s| s / n).collect();
    let h = hold(
        cx.data_mut(),
        "column-means",
        HostTensor::f64(1, cols, means),
    )?;
    Ok((Some(h),))
}

fn softmax_rows(
    mut cx: StoreContextMut<'_, State>,
    (t,): (u32,),
) -> wasmtime::Result<(Option<u32>,)> {
    let x = cx.data().tensors.get("softmax-rows", t)?;
    let (rows, cols) = (x.rows, x.cols);
    if admit_elementwise(&mut cx, "softmax-rows", (rows, cols), (rows * cols) as u64)?.is_none() {
        return Ok((None,));
    }
    let mut out = vec![0.0f32; rows * cols];
    for (i, o) in out.chunks_exact_mut(cols.max(1)).enumerate().take(rows) {
        routereval_kernels::softmax_f64(&x.row_f64(i), o);
    }
    let h = hold(
        cx.data_mut(),
        "softmax-rows",
        HostTensor::f32(rows, cols, out),
    )?;
    Ok((Some(h),))
}

fn argmax_rows(
    mut cx: StoreContextMut<'_, State>,
    (t,): (u32,),
) -> wasmtime::Result<(Option<Vec<u32>>,)> {
    let x = cx.data().tensors.get("argmax-rows", t)?;
    let (rows, cols) = (x.rows, x.cols);
    if admit_elementwise(&mut cx, "argmax-rows", (rows, cols), rows as u64)?.is_none() {
        return Ok((None,));
    }
    let best = (0..rows)
        .map(|i| match &x.data {
            TensorData::F32(v) => routereval_kernels::argmax(&v[i * cols..(i + 1) * cols]),
            TensorData::F64(v) => routereval_kernels::argmax(&v[i * cols..(i + 1) * cols]),
        })
        .map(|b| b.unwrap_or(0) as u32)
        .collect();
    Ok((Some(best),))
}

fn one_hot(
    mut cx: StoreContextMut<'_, State>,
    (index, cols): (Vec<u32>, u32),
) -> wasmtime::Result<(Option<u32>,)> {
    if let Some(bad) = index.iter().find(|&&i| i >= cols) {
        return Err(wasmtime::format_err!(
            "one-hot: index {bad} is out of range for {cols} columns"
        ));
    }
    let (rows, cols) = (index.len(), cols as usize);
    if admit_elementwise(&mut cx, "one-hot", (rows, cols), (rows * cols) as u64)?.is_none() {
        return Ok((None,));
    }
    let mut out = vec![0.0f32; rows * cols];
    for (i, &c) in index.iter().enumerate() {
        out[i * cols + c as usize] = 1.0;
    }
    let h = hold(cx.data_mut(), "one-hot", HostTensor::f32(rows, cols, out))?;
    Ok((Some(h),))
}
