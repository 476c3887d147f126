//! Small dense networks trained with binary cross-entropy and Adam: what RouterEval's LinearR
//! and MLPR are (`router/MLPR_LinearR`), written for batch-1 training at speed.
//!
//! A [`Mlp`] maps an embedding to one logit per candidate: dense layers with ReLU between them
//! (no hidden layer: a linear model). [`Mlp::train_bce`] follows PyTorch's semantics as
//! RouterEval uses them:
//!
//! - weights and biases start uniform in `±1/sqrt(fan_in)` (PyTorch's `nn.Linear` default);
//! - each epoch visits the training queries in a fresh random order, in mini-batches of `batch`
//!   (the last one smaller, as `DataLoader(shuffle=True)`);
//! - the loss is `BCEWithLogitsLoss` with mean reduction over the batch and the candidates, so
//!   a logit's gradient is `(sigmoid(z) - y) / (batch x m)`;
//! - Adam (`betas`, `eps`, no weight decay) with PyTorch's bias correction,
//!   `p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)`; one departure: every 16
//!   steps a moment below 1e-30 is set to zero rather than left to decay into subnormal numbers
//!   (slow on x86, invisible in the weights; see `Dense::flush`);
//! - the learning rate of iteration `t` (from 0) of `T` is `lr * (cos(pi t / T) + 1) / 2`, set
//!   before the step (RouterEval's `cosine_lr`).
//!
//! **Speed.** With batch 1 every parameter is updated at every query, so a training run is
//! `queries x epochs x parameters` Adam updates (MLPR on RouterEval's largest pool: about 10^11).
//! Each layer's update is one pass over its weights that also forms the gradient (an outer
//! product, never stored) and the gradient of the layer's input, from the weights before the
//! update. The kernels are plain loops over independent lanes, compiled once per instruction
//! set (AVX-512, AVX2, baseline; WebAssembly SIMD) and chosen at run time; no fused multiply-add
//! is used, so every instruction set gives the same bits, and a router gives the same numbers
//! built in, as a native plugin and as WebAssembly.

use crate::Rng;

/// Adam's hyperparameters (PyTorch's defaults).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Adam {
    /// First-moment decay.
    pub beta1: f32,
    /// Second-moment decay.
    pub beta2: f32,
    /// Added to the denominator.
    pub eps: f32,
}

impl Default for Adam {
    fn default() -> Self {
        Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }
}

/// How to train.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrainOptions {
    /// Base learning rate (the cosine schedule starts there).
    pub lr: f32,
    /// Passes over the training set.
    pub epochs: usize,
    /// Queries per step.
    pub batch: usize,
    /// The optimiser.
    pub adam: Adam,
}

/// How far (in floats) Adam's moments are placed from the start of their allocation and from
/// each other. Large arrays all start at the same offset within a 4 KiB page, and a load from
/// one at the address of a store to another, 4 KiB apart, waits for the store (4K aliasing):
/// skewing the three streams made the batch-1 step ~9% faster (`cargo bench -p
/// routereval-plugin-mlp --bench train`: 0.400 / 0.412 / 0.430 -> 0.359 / 0.371 / 0.395 ns per
/// update at m = 3 / 100 / 1000).
const MOMENT_SKEW: usize = 64;

/// One dense layer, `outputs x inputs` weights (row-major, a row per output) and biases, with
/// Adam's moments.
#[derive(Clone, Debug, PartialEq)]
pub struct Dense {
    inputs: usize,
    outputs: usize,
    w: Vec<f32>,
    b: Vec<f32>,
    /// Adam's moments of the weights, both in one allocation: `m` at [`MOMENT_SKEW`], `v` that
    /// far again after `m`'s end (see `Dense::split_moments`).
    moments: Vec<f32>,
    mb: Vec<f32>,
    vb: Vec<f32>,
    /// Per row: the row's first moments are all zero (see `kernels::update_generic`).
    quiet: Vec<bool>,
}

impl Dense {
    /// A layer initialised as PyTorch's `nn.Linear`: weights and biases uniform in
    /// `[-1/sqrt(inputs), 1/sqrt(inputs))`.
    pub fn new(inputs: usize, outputs: usize, rng: &mut Rng) -> Dense {
        let bound = 1.0 / (inputs as f64).sqrt();
        let mut draw = || ((rng.next_f64() * 2.0 - 1.0) * bound) as f32;
        let w: Vec<f32> = (0..inputs * outputs).map(|_| draw()).collect();
        let b: Vec<f32> = (0..outputs).map(|_| draw()).collect();
        Dense {
            inputs,
            outputs,
            moments: vec![0.0; 2 * (w.len() + MOMENT_SKEW)],
            mb: vec![0.0; b.len()],
            vb: vec![0.0; b.len()],
            quiet: vec![true; outputs],
            w,
            b,
        }
    }

    /// The weights' two moments `(m, v)` within `moments`, for `len` weights.
    fn split_moments(moments: &mut [f32], len: usize) -> (&mut [f32], &mut [f32]) {
        let (m, v) = moments[MOMENT_SKEW..].split_at_mut(len + MOMENT_SKEW);
        (&mut m[..len], &mut v[..len])
    }

    /// Inputs.
    pub fn inputs(&self) -> usize {
        self.inputs
    }

    /// Outputs.
    pub fn outputs(&self) -> usize {
        self.outputs
    }

    /// The weights, `outputs x inputs`.
    pub fn weights(&self) -> &[f32] {
        &self.w
    }

    /// The biases.
    pub fn biases(&self) -> &[f32] {
        &self.b
    }

    /// `out = W x + b`.
    fn forward(&self, x: &[f32], out: &mut [f32]) {
        kernels::forward(&self.w, &self.b, x, out);
    }

    /// Sets Adam's moments below [`TINY`] to zero and marks the rows whose first moments are
    /// then all zero as quiet. Run every [`FLUSH_EVERY`] steps: a parameter whose gradient stays
    /// zero (a ReLU that is off for a while) would otherwise see its moments decay into subnormal
    /// numbers, which x86 computes with ~100x slower microcode assists (MLPR on a real pool ran
    /// ~1.5x slower for it). What it drops moves a weight by less than `lr x 1e-22`, below f32's
    /// resolution for any weight above 1e-15. (Flushing inside every step's update instead cost
    /// that loop three comparisons per parameter: the MLPR bench's step 0.374 / 0.382 / 0.438 ->
    /// 0.359 / 0.370 / 0.415 ns per update at m = 3 / 100 / 1000 when they moved here.)
    fn flush(&mut self) {
        let n = self.inputs;
        let (mw, vw) = Dense::split_moments(&mut self.moments, self.w.len());
        for ((m, v), quiet) in mw
            .chunks_exact_mut(n)
            .zip(vw.chunks_exact_mut(n))
            .zip(self.quiet.iter_mut())
        {
            kernels::flush(m, v, quiet);
        }
        kernels::flush(&mut self.mb, &mut self.vb, &mut false);
    }
}

/// The learning rate of iteration `t` (from 0) of `total`: `lr` decayed by a half cosine.
fn cosine_lr(lr: f32, t: u64, total: f64) -> f32 {
    (0.5 * f64::from(lr) * ((std::f64::consts::PI * t as f64 / total).cos() + 1.0)) as f32
}

/// Adam's moments below this are set to zero every [`FLUSH_EVERY`] steps (see `Dense::flush`).
const TINY: f32 = 1e-30;

/// How often (in steps) tiny moments are set to zero. A moment just above [`TINY`] at one flush
/// decays by at most `0.9^16 = 0.19` before the next, far from f32's subnormal range (below
/// 1.2e-38).
const FLUSH_EVERY: u64 = 16;

/// The constants of one Adam step.
#[derive(Clone, Copy, Debug)]
struct Step {
    beta1: f32,
    beta2: f32,
    one_minus_beta1: f32,
    one_minus_beta2: f32,
    /// `lr / (1 - beta1^t)`.
    step_size: f32,
    /// `1 / sqrt(1 - beta2^t)`.
    inv_sqrt_bc2: f32,
    eps: f32,
}

impl Step {
    fn new(adam: &Adam, lr: f32, t: u64) -> Step {
        let t = t as i32;
        let bc1 = 1.0 - f64::from(adam.beta1).powi(t);
        let bc2 = 1.0 - f64::from(adam.beta2).powi(t);
        Step {
            beta1: adam.beta1,
            beta2: adam.beta2,
            one_minus_beta1: 1.0 - adam.beta1,
            one_minus_beta2: 1.0 - adam.beta2,
            step_size: (f64::from(lr) / bc1) as f32,
            inv_sqrt_bc2: (1.0 / bc2.sqrt()) as f32,
            eps: adam.eps,
        }
    }

    /// One parameter's step.
    #[inline(always)]
    fn apply(&self, p: &mut f32, m: &mut f32, v: &mut f32, g: f32) {
        let mm = self.beta1 * *m + self.one_minus_beta1 * g;
        let vv = self.beta2 * *v + self.one_minus_beta2 * (g * g);
        *m = mm;
        *v = vv;
        *p -= self.step_size * mm / (vv.sqrt() * self.inv_sqrt_bc2 + self.eps);
    }

    /// The second moment after a zero gradient: what [`Step::apply`] makes of it.
    #[inline(always)]
    fn decay_v(&self, v: f32) -> f32 {
        self.beta2 * v + self.one_minus_beta2 * (0.0f32 * 0.0f32)
    }
}

/// A multi-layer perceptron: dense layers with ReLU between them (or, built with
/// [`Mlp::new_factored`], nothing between them: a linear map of limited rank).
#[derive(Clone, Debug, PartialEq)]
pub struct Mlp {
    layers: Vec<Dense>,
    relu: bool,
}

impl Mlp {
    /// A network of the given layer widths, input first: `[768, 256, 256, m]` is MLPR,
    /// `[768, m]` LinearR. Layers are initialised in order from `rng`.
    ///
    /// # Panics
    /// With fewer than two widths or a zero width.
    pub fn new(widths: &[usize], rng: &mut Rng) -> Mlp {
        assert!(
            widths.len() >= 2 && widths.iter().all(|&w| w > 0),
            "an Mlp needs an input and an output width, none zero"
        );
        Mlp {
            layers: widths
                .windows(2)
                .map(|w| Dense::new(w[0], w[1], rng))
                .collect(),
            relu: true,
        }
    }

    /// Dense layers with no activation between them: `[d, r, m]` is a matrix factorisation,
    /// the query projected to `r` dimensions (with a bias) times one `r`-vector per candidate
    /// (plus the candidate's bias), RouteLLM's MF router generalised to `m` candidates.
    ///
    /// # Panics
    /// As [`Mlp::new`].
    pub fn new_factored(widths: &[usize], rng: &mut Rng) -> Mlp {
        Mlp {
            relu: false,
            ..Mlp::new(widths, rng)
        }
    }

    /// The layers, input side first.
    pub fn layers(&self) -> &[Dense] {
        &self.layers
    }

    /// Input width.
    pub fn inputs(&self) -> usize {
        self.layers[0].inputs
    }

    /// Output width.
    pub fn outputs(&self) -> usize {
        self.layers[self.layers.len() - 1].outputs
    }

    /// Number of trainable parameters.
    pub fn parameters(&self) -> usize {
        self.layers.iter().map(|l| l.w.len() + l.b.len()).sum()
    }

    /// The activations of every layer for one input (`acts[0]` is the first layer's output after
    /// ReLU, ..., the last is the logits).
    fn forward_all(&self, x: &[f32], acts: &mut [Vec<f32>]) {
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate() {
            let (before, rest) = acts.split_at_mut(i);
            let input = if i == 0 { x } else { &before[i - 1][..] };
            let out = &mut rest[0];
            layer.forward(input, out);
            if i < last && self.relu {
                for v in out.iter_mut() {
                    if *v < 0.0 {
                        *v = 0.0;
                    }
                }
            }
        }
    }

    /// The logits of `n` inputs (`n x inputs`, row-major): `n x outputs`.
    ///
    /// # Panics
    /// When `x.len() != n * inputs`.
    pub fn logits(&self, x: &[f32], n: usize) -> Vec<f32> {
        let d = self.inputs();
        assert_eq!(x.len(), n * d, "logits: {} values for {n} x {d}", x.len());
        let mut acts = self.buffers();
        let mut out = Vec::with_capacity(n * self.outputs());
        for i in 0..n {
            self.forward_all(&x[i * d..(i + 1) * d], &mut acts);
            out.extend_from_slice(acts.last().expect("layers"));
        }
        out
    }

    fn buffers(&self) -> Vec<Vec<f32>> {
        self.layers.iter().map(|l| vec![0.0; l.outputs]).collect()
    }

    /// Trains on `n` inputs `x` (`n x inputs`) with targets `y` (`n x outputs`, in [0, 1]) by
    /// binary cross-entropy on the logits; see the module docs for the exact procedure. The
    /// shuffles come from `rng`.
    ///
    /// # Panics
    /// When the shapes disagree or `batch` is zero.
    pub fn train_bce(
        &mut self,
        x: &[f32],
        y: &[f32],
        n: usize,
        opts: &TrainOptions,
        rng: &mut Rng,
    ) {
        let (d, m) = (self.inputs(), self.outputs());
        assert_eq!(x.len(), n * d, "train_bce: inputs are not {n} x {d}");
        assert_eq!(y.len(), n * m, "train_bce: targets are not {n} x {m}");
        assert!(opts.batch > 0, "train_bce: a batch of zero");
        if n == 0 || opts.epochs == 0 {
            return;
        }
        let per_epoch = n.div_ceil(opts.batch);
        let total = (per_epoch * opts.epochs) as f64;
        let mut order: Vec<usize> = (0..n).collect();
        let mut acts = self.buffers();
        let mut deltas = self.buffers();
        let mut grads: Vec<(Vec<f32>, Vec<f32>)> = if opts.batch > 1 {
            self.layers
                .iter()
                .map(|l| (vec![0.0; l.w.len()], vec![0.0; l.b.len()]))
                .collect()
        } else {
            Vec::new()
        };
        let mut t: u64 = 0;
        for _ in 0..opts.epochs {
            rng.shuffle(&mut order);
            for chunk in order.chunks(opts.batch) {
                let lr = cosine_lr(opts.lr, t, total);
                t += 1;
                let step = Step::new(&opts.adam, lr, t);
                let scale = 1.0 / (chunk.len() * m) as f32;
                if chunk.len() == 1 {
                    let i = chunk[0];
                    self.step_one(
                        &x[i * d..(i + 1) * d],
                        &y[i * m..(i + 1) * m],
                        scale,
                        &step,
                        &mut acts,
                        &mut deltas,
                    );
                } else {
                    for (gw, gb) in grads.iter_mut() {
                        gw.iter_mut().for_each(|g| *g = 0.0);
                        gb.iter_mut().for_each(|g| *g = 0.0);
                    }
                    for &i in chunk {
                        self.accumulate(
                            &x[i * d..(i + 1) * d],
                            &y[i * m..(i + 1) * m],
                            scale,
                            &mut acts,
                            &mut deltas,
                            &mut grads,
                        );
                    }
                    for (layer, (gw, gb)) in self.layers.iter_mut().zip(&grads) {
                        layer.quiet.fill(false);
                        let (mw, vw) = Dense::split_moments(&mut layer.moments, layer.w.len());
                        kernels::adam(&mut layer.w, mw, vw, gw, &step);
                        kernels::adam(&mut layer.b, &mut layer.mb, &mut layer.vb, gb, &step);
                    }
                }
                if t.is_multiple_of(FLUSH_EVERY) {
                    self.layers.iter_mut().for_each(Dense::flush);
                }
            }
        }
    }

    /// One batch-1 step: forward, then per layer from the top, one fused pass that forms the
    /// gradient, the input's delta (from the weights before the update) and applies Adam.
    fn step_one(
        &mut self,
        x: &[f32],
        y: &[f32],
        scale: f32,
        step: &Step,
        acts: &mut [Vec<f32>],
        deltas: &mut [Vec<f32>],
    ) {
        self.forward_all(x, acts);
        let last = self.layers.len() - 1;
        kernels::output_delta(&acts[last], y, scale, &mut deltas[last]);
        for i in (0..=last).rev() {
            let input = if i == 0 { x } else { &acts[i - 1][..] };
            let (below, rest) = deltas.split_at_mut(i);
            let delta = &rest[0];
            let layer = &mut self.layers[i];
            let dx = if i > 0 {
                Some(&mut below[i - 1][..])
            } else {
                None
            };
            kernels::update_fused(layer, input, delta, dx, step);
            if i > 0 && self.relu {
                // Through the ReLU: no gradient where the unit was off.
                for (g, &a) in below[i - 1].iter_mut().zip(&acts[i - 1]) {
                    if a <= 0.0 {
                        *g = 0.0;
                    }
                }
            }
        }
    }

    /// Adds one query's gradients to `grads` (mini-batches).
    fn accumulate(
        &self,
        x: &[f32],
        y: &[f32],
        scale: f32,
        acts: &mut [Vec<f32>],
        deltas: &mut [Vec<f32>],
        grads: &mut [(Vec<f32>, Vec<f32>)],
    ) {
        self.forward_all(x, acts);
        let last = self.layers.len() - 1;
        kernels::output_delta(&acts[last], y, scale, &mut deltas[last]);
        for i in (0..=last).rev() {
            let input = if i == 0 { x } else { &acts[i - 1][..] };
            let layer = &self.layers[i];
            let (below, rest) = deltas.split_at_mut(i);
            let delta = &rest[0];
            let (gw, gb) = &mut grads[i];
            for (j, &dj) in delta.iter().enumerate() {
                gb[j] += dj;
                let row = &mut gw[j * layer.inputs..(j + 1) * layer.inputs];
                for (g, &a) in row.iter_mut().zip(input) {
                    *g += dj * a;
                }
            }
            if i > 0 {
                let dx = &mut below[i - 1];
                dx.iter_mut().for_each(|v| *v = 0.0);
                for (j, &dj) in delta.iter().enumerate() {
                    let row = &layer.w[j * layer.inputs..(j + 1) * layer.inputs];
                    for (g, &w) in dx.iter_mut().zip(row) {
                        *g += dj * w;
                    }
                }
                if self.relu {
                    for (g, &a) in dx.iter_mut().zip(&acts[i - 1]) {
                        if a <= 0.0 {
                            *g = 0.0;
                        }
                    }
                }
            }
        }
    }
}

/// The hot loops, compiled per instruction set (`crate::dispatch`). Each is a plain loop over
/// independent lanes (no reassociation, no fused multiply-add), so every version gives the same
/// bits.
mod kernels {
    use super::{Dense, Step};

    #[inline(always)]
    fn forward_generic(w: &[f32], b: &[f32], x: &[f32], out: &mut [f32]) {
        let n = x.len();
        for (j, o) in out.iter_mut().enumerate() {
            *o = crate::math::dot(&w[j * n..(j + 1) * n], x) + b[j];
        }
    }

    #[inline(always)]
    fn update_generic(
        layer: &mut Dense,
        x: &[f32],
        delta: &[f32],
        mut dx: Option<&mut [f32]>,
        step: &Step,
    ) {
        let n = layer.inputs;
        if let Some(dx) = dx.as_deref_mut() {
            dx.iter_mut().for_each(|v| *v = 0.0);
        }
        let (mw, vw) = Dense::split_moments(&mut layer.moments, layer.w.len());
        for (j, &dj) in delta.iter().enumerate() {
            let range = j * n..(j + 1) * n;
            let (w, m, v) = (
                &mut layer.w[range.clone()],
                &mut mw[range.clone()],
                &mut vw[range],
            );
            if dj == 0.0 && layer.quiet[j] {
                // No gradient and a first moment of zeros: Adam's step is exactly zero, so the
                // weights and m keep their bits and only v decays (a ReLU that has been off for
                // a while: its row's m was flushed to zero, see `Dense::flush`). Its share of
                // `dx`, `0 x w`, is a zero, and adding a zero leaves `dx` as it is (`dx` starts at
                // +0 and sums never give -0 under round-to-nearest), so it is not added.
                for v in v.iter_mut() {
                    *v = step.decay_v(*v);
                }
            } else {
                match dx.as_deref_mut() {
                    Some(dx) => {
                        for ((((w, m), v), &a), g) in
                            w.iter_mut().zip(m).zip(v).zip(x).zip(dx.iter_mut())
                        {
                            *g += dj * *w;
                            step.apply(w, m, v, dj * a);
                        }
                    }
                    None => {
                        for (((w, m), v), &a) in w.iter_mut().zip(m).zip(v).zip(x) {
                            step.apply(w, m, v, dj * a);
                        }
                    }
                }
                // Quiet again only once a flush finds its first moments all zero.
                layer.quiet[j] = false;
            }
        }
        // The biases' gradient is `delta` itself: one vectorised pass after the rows, with the
        // same bits as a scalar step per row inside the loop, and 3% faster at m = 1000
        // (synthetic mmlu, 5 epochs: 11.30 -> 10.97 s).
        adam_generic(&mut layer.b, &mut layer.mb, &mut layer.vb, delta, step);
    }

    #[inline(always)]
    fn adam_generic(p: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32], step: &Step) {
        for (((p, m), v), &g) in p.iter_mut().zip(m.iter_mut()).zip(v.iter_mut()).zip(g) {
            step.apply(p, m, v, g);
        }
    }

    /// The output layer's delta: `(sigmoid(z) - y) * scale`. Compiled per instruction set like
    /// the rest: with SSE4.1 and up, `exp_det`'s `round` is an instruction sequence rather than a
    /// libm call, the same bits either way (synthetic mmlu m = 1000, 5 epochs: 10.97 -> 10.45 s).
    #[inline(always)]
    fn output_delta_generic(z: &[f32], y: &[f32], scale: f32, delta: &mut [f32]) {
        for ((d, &z), &y) in delta.iter_mut().zip(z).zip(y) {
            // In f64 with the SDK's exp, so that every platform gives the same bits.
            let (s, _) = crate::math::sigmoid_and_exp(f64::from(z));
            *d = (s as f32 - y) * scale;
        }
    }

    /// Sets the moments below [`TINY`](super::TINY) to zero; `zero`: whether the first moments
    /// are then all zero.
    #[inline(always)]
    fn flush_generic(m: &mut [f32], v: &mut [f32], zero: &mut bool) {
        let mut all = true;
        for (m, v) in m.iter_mut().zip(v.iter_mut()) {
            if m.abs() < super::TINY {
                *m = 0.0;
            }
            if *v < super::TINY {
                *v = 0.0;
            }
            all &= *m == 0.0;
        }
        *zero = all;
    }

    dispatch!(pub(super) forward, forward_generic, (w: &[f32], b: &[f32], x: &[f32], out: &mut [f32]));
    dispatch!(pub(super) update_fused, update_generic, (layer: &mut Dense, x: &[f32], delta: &[f32], dx: Option<&mut [f32]>, step: &Step));
    dispatch!(pub(super) adam, adam_generic, (p: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32], step: &Step));
    dispatch!(pub(super) output_delta, output_delta_generic, (z: &[f32], y: &[f32], scale: f32, delta: &mut [f32]));
    dispatch!(pub(super) flush, flush_generic, (m: &mut [f32], v: &mut [f32], zero: &mut bool));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The loss `mean BCE(sigmoid(logits), y)` in f64, for finite differences.
    fn loss(net: &Mlp, x: &[f32], y: &[f32]) -> f64 {
        let z = net.logits(x, 1);
        z.iter()
            .zip(y)
            .map(|(&z, &y)| {
                let (z, y) = (f64::from(z), f64::from(y));
                z.max(0.0) - z * y + (1.0 + (-z.abs()).exp()).ln()
            })
            .sum::<f64>()
            / y.len() as f64
    }

    #[test]
    fn one_step_is_adam_on_the_true_gradient() {
        // Adam's first step moves every parameter by lr * sign(g) (m / sqrt(v) = g / |g| after
        // bias correction, up to eps): check the sign and size against finite differences of the
        // loss, computed independently in f64.
        let mut rng = Rng::new(3);
        let net = Mlp::new(&[5, 4, 3], &mut rng);
        let x = [0.3f32, -1.2, 0.8, 0.05, 2.0];
        let y = [1.0f32, 0.0, 0.5];
        let mut trained = net.clone();
        let lr = 1e-3;
        let opts = TrainOptions {
            lr,
            epochs: 1,
            batch: 1,
            adam: Adam::default(),
        };
        trained.train_bce(&x, &y, 1, &opts, &mut Rng::new(0));
        let h = 1e-3f32;
        let mut checked = 0;
        for li in 0..net.layers.len() {
            for k in 0..net.layers[li].w.len() {
                let mut plus = net.clone();
                plus.layers[li].w[k] += h;
                let mut minus = net.clone();
                minus.layers[li].w[k] -= h;
                let g = (loss(&plus, &x, &y) - loss(&minus, &x, &y)) / (2.0 * f64::from(h));
                let moved = f64::from(trained.layers[li].w[k] - net.layers[li].w[k]);
                if g.abs() < 1e-6 {
                    // A ReLU that is off: no gradient, no move (up to eps).
                    assert!(
                        moved.abs() < 1e-6,
                        "layer {li} w{k}: moved {moved} with g {g}"
                    );
                    continue;
                }
                // The first step's lr is lr (cosine at t = 0).
                assert!(
                    (moved + f64::from(lr) * g.signum()).abs() < 1e-6,
                    "layer {li} w{k}: moved {moved}, gradient {g}"
                );
                checked += 1;
            }
        }
        assert!(checked > 10, "{checked}");
    }

    #[test]
    fn batches_average_the_gradients() {
        // A batch of two identical queries gives the gradient of one: the same first step.
        let mut rng = Rng::new(5);
        let net = Mlp::new(&[3, 2], &mut rng);
        let x = [0.5f32, -0.5, 1.0];
        let y = [1.0f32, 0.0];
        let opts = |batch| TrainOptions {
            lr: 0.01,
            epochs: 1,
            batch,
            adam: Adam::default(),
        };
        let mut one = net.clone();
        one.train_bce(&x, &y, 1, &opts(1), &mut Rng::new(0));
        let mut two = net.clone();
        let xx: Vec<f32> = x.iter().chain(&x).copied().collect();
        let yy: Vec<f32> = y.iter().chain(&y).copied().collect();
        two.train_bce(&xx, &yy, 2, &opts(2), &mut Rng::new(0));
        for (a, b) in one.layers[0].w.iter().zip(&two.layers[0].w) {
            assert!((a - b).abs() < 1e-7, "{a} {b}");
        }
    }

    #[test]
    fn a_linear_model_learns_which_candidate_is_right() {
        // Candidate 0 is right when x0 > 0, candidate 1 otherwise.
        let mut rng = Rng::new(11);
        let n = 200;
        let mut x = Vec::new();
        let mut y = Vec::new();
        for _ in 0..n {
            let a = rng.normal() as f32;
            let b = rng.normal() as f32;
            x.extend([a, b]);
            y.extend(if a > 0.0 { [1.0, 0.0] } else { [0.0, 1.0] });
        }
        let mut net = Mlp::new(&[2, 2], &mut Rng::new(1));
        let opts = TrainOptions {
            lr: 0.05,
            epochs: 20,
            batch: 1,
            adam: Adam::default(),
        };
        net.train_bce(&x, &y, n, &opts, &mut Rng::new(2));
        let z = net.logits(&x, n);
        let right = (0..n)
            .filter(|&i| (z[2 * i] > z[2 * i + 1]) == (x[2 * i] > 0.0))
            .count();
        assert!(right >= 195, "{right} of {n}");
    }

    #[test]
    fn every_instruction_set_gives_the_same_bits() {
        let mut rng = Rng::new(9);
        let net = Mlp::new(&[40, 33, 17, 7], &mut rng);
        let x: Vec<f32> = (0..40 * 30).map(|_| rng.normal() as f32).collect();
        let y: Vec<f32> = (0..7 * 30).map(|i| (i % 3 == 0) as u8 as f32).collect();
        let opts = TrainOptions {
            lr: 0.01,
            epochs: 3,
            batch: 1,
            adam: Adam::default(),
        };
        let mut dispatched = net.clone();
        dispatched.train_bce(&x, &y, 30, &opts, &mut Rng::new(4));
        // The same training with the baseline kernels only.
        let mut plain = net.clone();
        kernels_baseline::train(&mut plain, &x, &y, 30, &opts, &mut Rng::new(4));
        assert_eq!(dispatched, plain);
    }

    #[test]
    fn skipping_quiet_rows_and_flushing_moments_keeps_plain_adams_bits() {
        // A ReLU net where many hidden units are off for long stretches (negative biases), trained
        // long enough for their first moments to reach the flush threshold, so the fused step
        // skips their rows. Reference: the same schedule, every parameter stepped by the plain
        // per-query gradient (`accumulate`) and the whole-layer Adam kernel, which never skips.
        let mut rng = Rng::new(21);
        let mut net = Mlp::new(&[6, 10, 8, 3], &mut rng);
        for (j, b) in net.layers[0].b.iter_mut().enumerate() {
            if j % 2 == 0 {
                *b -= 1.5;
            }
        }
        let n = 64;
        let x: Vec<f32> = (0..6 * n).map(|_| rng.normal() as f32 * 0.5).collect();
        let y: Vec<f32> = (0..3 * n)
            .map(|i| f32::from(u8::from(i % 4 == 1)))
            .collect();
        let opts = TrainOptions {
            lr: 1e-3,
            epochs: 40,
            batch: 1,
            adam: Adam::default(),
        };
        let mut fused = net.clone();
        fused.train_bce(&x, &y, n, &opts, &mut Rng::new(8));

        let mut plain = net.clone();
        let mut shuffles = Rng::new(8);
        let mut order: Vec<usize> = (0..n).collect();
        let (mut acts, mut deltas) = (plain.buffers(), plain.buffers());
        let mut grads: Vec<(Vec<f32>, Vec<f32>)> = plain
            .layers
            .iter()
            .map(|l| (vec![0.0; l.w.len()], vec![0.0; l.b.len()]))
            .collect();
        let total = (n * opts.epochs) as f64;
        let mut t = 0u64;
        for _ in 0..opts.epochs {
            shuffles.shuffle(&mut order);
            for &i in &order {
                let lr = cosine_lr(opts.lr, t, total);
                t += 1;
                let step = Step::new(&opts.adam, lr, t);
                for (gw, gb) in grads.iter_mut() {
                    gw.fill(0.0);
                    gb.fill(0.0);
                }
                plain.accumulate(
                    &x[i * 6..(i + 1) * 6],
                    &y[i * 3..(i + 1) * 3],
                    1.0 / 3.0,
                    &mut acts,
                    &mut deltas,
                    &mut grads,
                );
                for (layer, (gw, gb)) in plain.layers.iter_mut().zip(&grads) {
                    let (mw, vw) = Dense::split_moments(&mut layer.moments, layer.w.len());
                    kernels::adam(&mut layer.w, mw, vw, gw, &step);
                    kernels::adam(&mut layer.b, &mut layer.mb, &mut layer.vb, gb, &step);
                    if t.is_multiple_of(FLUSH_EVERY) {
                        layer.flush();
                    }
                }
            }
        }
        // The fused path did skip rows and flush moments (else this test proves nothing).
        let quiet = fused.layers[0].quiet.iter().filter(|&&q| q).count();
        assert!(quiet > 0, "no row of the first layer went quiet");
        for (a, b) in fused.layers.iter().zip(&plain.layers) {
            assert_eq!(a.w, b.w);
            assert_eq!(a.b, b.b);
            assert_eq!(a.moments, b.moments);
        }
    }

    /// The training loop again, calling the generic kernels directly.
    mod kernels_baseline {
        use super::super::*;

        pub fn train(
            net: &mut Mlp,
            x: &[f32],
            y: &[f32],
            n: usize,
            opts: &TrainOptions,
            rng: &mut Rng,
        ) {
            crate::dispatch::FORCE_GENERIC.with(|f| f.set(true));
            net.train_bce(x, y, n, opts, rng);
            crate::dispatch::FORCE_GENERIC.with(|f| f.set(false));
        }
    }
}
