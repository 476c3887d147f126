//! The inference path of [`crate::Embedder`]: the same arithmetic as [`crate::Encoder::forward`]
//! with [`crate::Mode::Infer`], written for speed on the CPU.
//!
//! Why not candle here: run op by op, candle embedded the LLMRouter prompts 2.5-2.8 times slower
//! than sentence-transformers on PyTorch on this 2-core machine (a fresh zeroed buffer per
//! operation, padding to the longest text of a batch, one small matrix product per attention
//! head with little parallelism, a separate pass for every bias, residual and scale). Here the
//! texts of a group are packed without padding into one `tokens x hidden` matrix; the dense
//! layers are single matrix products over all tokens (`gemm`, the kernel candle itself uses,
//! with the bias folded into the output), split by rows across threads; attention runs per text
//! and head in parallel; softmax, GELU and layer norm (with its residual) are fused loops over
//! rows. The candle path stays the reference: a test checks that both agree.

use candle_core::Tensor;
use rayon::prelude::*;

use crate::config::{Activation, EncoderConfig, Family, Pooling};
use crate::model::Encoder;
use crate::{Error, ce};

/// `dst[i * ldd + j] (+)= sum_p a[i * a_rs + p * a_cs] * b[p * b_rs + j * b_cs]` for an
/// `m x n` result over `k`, single-threaded (callers split the work).
#[allow(clippy::too_many_arguments, reason = "the strides of three matrices")]
fn gemm_strided(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    ldd: usize,
    accumulate: bool,
    (a, a_rs, a_cs): (&[f32], usize, usize),
    (b, b_rs, b_cs): (&[f32], usize, usize),
) {
    if m == 0 || n == 0 {
        return;
    }
    let last = |rows: usize, rs: usize, cols: usize, cs: usize| (rows - 1) * rs + (cols - 1) * cs;
    assert!(
        dst.len() > last(m, ldd, n, 1),
        "gemm: destination too small"
    );
    if k == 0 {
        if !accumulate {
            for r in 0..m {
                dst[r * ldd..r * ldd + n].fill(0.0);
            }
        }
        return;
    }
    assert!(
        a.len() > last(m, a_rs, k, a_cs),
        "gemm: left operand too small"
    );
    assert!(
        b.len() > last(k, b_rs, n, b_cs),
        "gemm: right operand too small"
    );
    // SAFETY: the assertions above keep every index the product touches inside the three
    // slices; `dst` is borrowed mutably, so it aliases neither operand.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            ldd as isize,
            accumulate,
            a.as_ptr(),
            a_cs as isize,
            a_rs as isize,
            b.as_ptr(),
            b_cs as isize,
            b_rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// A dense layer with its weight as Hugging Face stores it (`out x in`, row-major).
#[derive(Clone, Debug)]
struct Lin {
    w: Vec<f32>,
    b: Vec<f32>,
    inp: usize,
    out: usize,
}

impl Lin {
    fn from(weight: &Tensor, bias: &Tensor) -> Result<Self, Error> {
        let (out, inp) = weight.dims2().map_err(ce)?;
        Ok(Lin {
            w: weight.flatten_all().and_then(|t| t.to_vec1()).map_err(ce)?,
            b: bias.to_vec1().map_err(ce)?,
            inp,
            out,
        })
    }

    fn stack(parts: &[&Lin]) -> Lin {
        Lin {
            w: parts.iter().flat_map(|l| l.w.iter().copied()).collect(),
            b: parts.iter().flat_map(|l| l.b.iter().copied()).collect(),
            inp: parts[0].inp,
            out: parts.iter().map(|l| l.out).sum(),
        }
    }

    /// `x` (`rows x inp`) times the weight's transpose plus the bias, into `y` (resized to
    /// `rows x out`; its allocation is reused across layers); rows split across threads.
    fn apply(&self, x: &[f32], y: &mut Vec<f32>) {
        let rows = x.len() / self.inp;
        y.resize(rows * self.out, 0.0);
        let block = rows.div_ceil(rayon::current_num_threads() * 2).max(16);
        y.par_chunks_mut(block * self.out)
            .zip(x.par_chunks(block * self.inp))
            .for_each(|(y, x)| {
                let r = x.len() / self.inp;
                for row in y.chunks_mut(self.out) {
                    row.copy_from_slice(&self.b);
                }
                gemm_strided(
                    r,
                    self.out,
                    self.inp,
                    y,
                    self.out,
                    true,
                    (x, self.inp, 1),
                    (&self.w, 1, self.inp),
                );
            });
    }
}

#[derive(Clone, Debug)]
struct Ln {
    w: Vec<f32>,
    b: Vec<f32>,
    eps: f32,
}

impl Ln {
    /// `x = layer_norm(x + residual)` row by row (`residual` may be empty: no residual).
    fn apply(&self, x: &mut [f32], residual: &[f32]) {
        let h = self.w.len();
        let go = |(r, row): (usize, &mut [f32])| {
            if !residual.is_empty() {
                for (v, s) in row.iter_mut().zip(&residual[r * h..(r + 1) * h]) {
                    *v += s;
                }
            }
            let mean = sum8(row) / h as f32;
            for v in row.iter_mut() {
                *v -= mean;
            }
            let mut sq = [0f32; 8];
            for c in row.chunks(8) {
                for (a, v) in sq.iter_mut().zip(c) {
                    *a += v * v;
                }
            }
            let var = sq.iter().sum::<f32>() / h as f32;
            let inv = 1.0 / (var + self.eps).sqrt();
            for ((v, w), b) in row.iter_mut().zip(&self.w).zip(&self.b) {
                *v = *v * inv * w + b;
            }
        };
        x.par_chunks_mut(h).enumerate().for_each(go);
    }
}

impl FastEncoder {
    /// The token vectors of `seqs` after the first `layers` layers, packed (the tokens of
    /// `seqs[0]`, then of `seqs[1]`, ...; `hidden` values each), with each text's first row.
    ///
    /// # Errors
    /// On a token id or position outside the model's tables.
    pub fn hidden_states(
        &self,
        seqs: &[&[u32]],
        layers: usize,
    ) -> Result<(Vec<f32>, Vec<usize>), Error> {
        self.run(seqs, layers, &mut Scratch::default())
    }

    /// One vector per text after every layer, pooled (and L2-normalised when asked).
    ///
    /// # Errors
    /// As [`FastEncoder::hidden_states`].
    pub fn pooled(
        &self,
        seqs: &[&[u32]],
        pooling: Pooling,
        normalize: bool,
    ) -> Result<Vec<f32>, Error> {
        self.embed(seqs, pooling, normalize, &mut Scratch::default())
    }
}

/// Buffers reused from layer to layer and batch to batch (fresh ones cost page faults: 7-9%
/// of the time).
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    x: Vec<f32>,
    qkv: Vec<f32>,
    ctx: Vec<f32>,
    a: Vec<f32>,
    inter: Vec<f32>,
}

#[derive(Clone, Debug)]
struct FastLayer {
    qkv: Lin,
    attn_out: Lin,
    ln1: Ln,
    inter: Lin,
    out: Lin,
    ln2: Ln,
}

/// Pools each text's rows of `x` (packed token vectors) into one vector, optionally
/// L2-normalised.
fn pool_rows(
    x: &[f32],
    h: usize,
    seqs: &[&[u32]],
    offsets: &[usize],
    pooling: Pooling,
    normalize: bool,
) -> Vec<f32> {
    let mut out = vec![0f32; seqs.len() * h];
    out.par_chunks_mut(h)
        .zip(seqs.par_iter().zip(offsets.par_iter()))
        .for_each(|(v, (s, &o))| {
            let rows = &x[o * h..(o + s.len()) * h];
            match pooling {
                Pooling::Cls => v.copy_from_slice(&rows[..h]),
                Pooling::Max => {
                    v.copy_from_slice(&rows[..h]);
                    for r in rows.chunks(h).skip(1) {
                        for (a, b) in v.iter_mut().zip(r) {
                            *a = a.max(*b);
                        }
                    }
                }
                Pooling::Mean | Pooling::MeanSqrtLen => {
                    let mut acc = vec![0f64; h];
                    for r in rows.chunks(h) {
                        for (a, b) in acc.iter_mut().zip(r) {
                            *a += f64::from(*b);
                        }
                    }
                    let div = if pooling == Pooling::Mean {
                        s.len() as f64
                    } else {
                        (s.len() as f64).sqrt()
                    };
                    for (a, b) in v.iter_mut().zip(acc) {
                        *a = (b / div) as f32;
                    }
                }
            }
            if normalize {
                let n = v.iter().map(|&a| f64::from(a).powi(2)).sum::<f64>().sqrt();
                let n = n.max(1e-12);
                for a in v.iter_mut() {
                    *a = (f64::from(*a) / n) as f32;
                }
            }
        });
    out
}

/// The encoder's weights as plain arrays, for fast inference (texts packed without padding);
/// see the module's docs.
#[derive(Clone, Debug)]
pub struct FastEncoder {
    config: EncoderConfig,
    word: Vec<f32>,
    position: Vec<f32>,
    type0: Vec<f32>,
    emb_ln: Ln,
    layers: Vec<FastLayer>,
}

/// `e^x` for f32, within 2 ulp over the range softmax and GELU use, written so loops over it
/// vectorise (the C library's `expf` is a call per element, and was 15% of the time): `2^k`
/// times a degree-6 polynomial on the reduced argument, `k` rounded with the 1.5 * 2^23 trick
/// rather than `floor` (a library call without SSE4.1).
#[inline(always)]
fn exp(x: f32) -> f32 {
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let kr = x * std::f32::consts::LOG2_E + ROUND;
    let k = kr - ROUND;
    // ln 2 in two parts, so `r` keeps its low bits.
    let r = (x - k * 0.693_145_75) - k * 1.428_606_8e-6;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (0.166_666_67
                    + r * (0.041_666_66 + r * (0.008_333_452 + r * 0.001_388_89)))));
    // `kr`'s bits are those of 1.5 * 2^23 plus k: integer arithmetic gives 2^k's exponent.
    let bits = kr.to_bits().wrapping_sub(0x4B40_0000 - 127) << 23;
    p * f32::from_bits(bits)
}

/// Sum of `v` in eight lanes (a plain fold of floats does not vectorise: its order is fixed).
#[inline(always)]
fn sum8(v: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let mut chunks = v.chunks_exact(8);
    for c in &mut chunks {
        for (a, x) in acc.iter_mut().zip(c) {
            *a += x;
        }
    }
    acc.iter().sum::<f32>() + chunks.remainder().iter().sum::<f32>()
}

/// Maximum of `v` in eight lanes.
#[inline(always)]
fn max8(v: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; 8];
    let mut chunks = v.chunks_exact(8);
    for c in &mut chunks {
        for (a, x) in acc.iter_mut().zip(c) {
            *a = if *x > *a { *x } else { *a };
        }
    }
    let m = acc.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    chunks.remainder().iter().fold(m, |a, &b| a.max(b))
}

/// The error function, |error| < 1.2e-7 (the Chebyshev fit of `erfc` in Numerical Recipes),
/// enough for f32.
fn erf(x: f32) -> f32 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_2
        + t * (1.000_023_7
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_204
                                + t * (1.488_515_9 + t * (-0.822_152_2 + t * 0.170_872_77))))))));
    // erf(-x) = -erf(x); copysign keeps the loop free of branches, so it vectorises.
    (1.0 - t * exp(poly)).copysign(x)
}

fn activate(x: &mut [f32], act: Activation) {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    // One loop per activation (a match inside the loop keeps it from vectorising).
    x.par_chunks_mut(4096).for_each(|c| match act {
        Activation::GeluErf => {
            for v in c {
                *v = 0.5 * *v * (1.0 + erf(*v * std::f32::consts::FRAC_1_SQRT_2));
            }
        }
        Activation::GeluTanh => {
            for v in c {
                let x = *v;
                *v = 0.5 * x * (1.0 + (SQRT_2_OVER_PI * (x + 0.044_715 * x * x * x)).tanh());
            }
        }
        Activation::Relu => {
            for v in c {
                *v = v.max(0.0);
            }
        }
    });
}

impl FastEncoder {
    /// Copies the weights of `enc` (as they are now: after fine-tuning, the trained ones).
    ///
    /// # Errors
    /// On a tensor error.
    pub fn from(enc: &Encoder) -> Result<Self, Error> {
        let p = enc.parts();
        let lin = |d: &crate::Dense| Lin::from(&d.weight, &d.bias);
        let ln = |(w, b, eps): (&Tensor, &Tensor, f64)| -> Result<Ln, Error> {
            Ok(Ln {
                w: w.to_vec1().map_err(ce)?,
                b: b.to_vec1().map_err(ce)?,
                eps: eps as f32,
            })
        };
        let flat = |t: &Tensor| -> Result<Vec<f32>, Error> {
            t.flatten_all().and_then(|t| t.to_vec1()).map_err(ce)
        };
        let h = enc.config().hidden_size;
        let mut layers = Vec::new();
        for l in p.layers {
            let (q, k, v) = (lin(l.query)?, lin(l.key)?, lin(l.value)?);
            layers.push(FastLayer {
                qkv: Lin::stack(&[&q, &k, &v]),
                attn_out: lin(l.attn_out)?,
                ln1: ln(l.attn_norm)?,
                inter: lin(l.intermediate)?,
                out: lin(l.output)?,
                ln2: ln(l.out_norm)?,
            });
        }
        Ok(FastEncoder {
            config: enc.config().clone(),
            word: flat(p.word)?,
            position: flat(p.position)?,
            type0: match p.token_type {
                Some(t) => flat(t)?[..h].to_vec(),
                None => vec![0.0; h],
            },
            emb_ln: ln(p.emb_norm)?,
            layers,
        })
    }

    /// Sentence vectors of `seqs` (token ids), pooled and optionally normalised, row-major.
    pub(crate) fn embed(
        &self,
        seqs: &[&[u32]],
        pooling: Pooling,
        normalize: bool,
        scratch: &mut Scratch,
    ) -> Result<Vec<f32>, Error> {
        let h = self.config.hidden_size;
        let (x, offsets) = self.run(seqs, self.layers.len(), scratch)?;
        let out = pool_rows(&x, h, seqs, &offsets, pooling, normalize);
        scratch.x = x;
        Ok(out)
    }

    /// The token vectors after the first `layers` layers (0: the embedding layer's output),
    /// packed: the tokens of `seqs[0]`, then those of `seqs[1]`, ..., `hidden` values each.
    pub(crate) fn run(
        &self,
        seqs: &[&[u32]],
        layers: usize,
        scratch: &mut Scratch,
    ) -> Result<(Vec<f32>, Vec<usize>), Error> {
        let c = &self.config;
        let h = c.hidden_size;
        let total: usize = seqs.iter().map(|s| s.len()).sum();
        let mut x = std::mem::take(&mut scratch.x);
        x.resize(total * h, 0.0);
        let mut offsets = Vec::with_capacity(seqs.len());
        let mut row = 0;
        for s in seqs {
            offsets.push(row);
            for (pos, &id) in s.iter().enumerate() {
                let id = id as usize;
                let pos = match c.family {
                    Family::Bert => pos,
                    Family::Roberta => c.pad_token_id as usize + 1 + pos,
                };
                if id >= c.vocab_size || pos >= c.max_positions {
                    return Err(Error::new(format!(
                        "token id {id} or position {pos} is outside the model's tables ({} ids, {} positions)",
                        c.vocab_size, c.max_positions
                    )));
                }
                let dst = &mut x[row * h..(row + 1) * h];
                for (j, d) in dst.iter_mut().enumerate() {
                    *d = self.word[id * h + j] + self.position[pos * h + j] + self.type0[j];
                }
                row += 1;
            }
        }
        self.emb_ln.apply(&mut x, &[]);
        for layer in &self.layers[..layers.min(self.layers.len())] {
            self.layer(layer, &mut x, seqs, &offsets, scratch);
        }
        Ok((x, offsets))
    }

    fn layer(
        &self,
        l: &FastLayer,
        x: &mut Vec<f32>,
        seqs: &[&[u32]],
        offsets: &[usize],
        sc: &mut Scratch,
    ) {
        let h = self.config.hidden_size;
        let heads = self.config.num_heads;
        let dh = h / heads;
        let scale = 1.0 / (dh as f32).sqrt();
        l.qkv.apply(x, &mut sc.qkv);
        let qkv = &sc.qkv;
        sc.ctx.resize(x.len(), 0.0);
        // Each text's rows of the context, so texts run in parallel on disjoint slices.
        let mut parts: Vec<(&mut [f32], usize, usize)> = Vec::with_capacity(seqs.len());
        let mut rest: &mut [f32] = &mut sc.ctx;
        for (s, &o) in seqs.iter().zip(offsets) {
            let (mine, tail) = rest.split_at_mut(s.len() * h);
            parts.push((mine, o, s.len()));
            rest = tail;
        }
        parts.into_par_iter().for_each(|(out, o, len)| {
            let mut scores = vec![0f32; len * len];
            let rows = &qkv[o * 3 * h..(o + len) * 3 * h];
            for head in 0..heads {
                let q = &rows[head * dh..];
                let k = &rows[h + head * dh..];
                let v = &rows[2 * h + head * dh..];
                gemm_strided(
                    len,
                    len,
                    dh,
                    &mut scores,
                    len,
                    false,
                    (q, 3 * h, 1),
                    (k, 1, 3 * h),
                );
                for r in scores.chunks_mut(len) {
                    let max = max8(r);
                    for s in r.iter_mut() {
                        *s = exp((*s - max) * scale);
                    }
                    let inv = 1.0 / sum8(r);
                    for s in r.iter_mut() {
                        *s *= inv;
                    }
                }
                gemm_strided(
                    len,
                    dh,
                    len,
                    &mut out[head * dh..],
                    h,
                    false,
                    (&scores, len, 1),
                    (v, 3 * h, 1),
                );
            }
        });
        l.attn_out.apply(&sc.ctx, &mut sc.a);
        l.ln1.apply(&mut sc.a, x);
        l.inter.apply(&sc.a, &mut sc.inter);
        activate(&mut sc.inter, self.config.activation);
        l.out.apply(&sc.inter, x);
        l.ln2.apply(x, &sc.a);
    }
}
