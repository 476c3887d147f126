//! The BERT-family encoder: embeddings, then `num_hidden_layers` post-norm transformer layers,
//! plus BERT's pooler (a dense + tanh on the first token) when the checkpoint has one.
//!
//! Written here rather than taken from `candle-transformers`: fine-tuning needs each layer's
//! weights as trainable variables, the lower layers frozen and run once, dropout from a seeded
//! generator (candle's CPU generator cannot be seeded), and RoBERTa's position numbering; the
//! crate's `BertModel` keeps its layers private and runs inference only. The layer arithmetic is
//! the published BERT architecture; the weight names are Hugging Face's.

use std::collections::HashMap;

use candle_core::{D, DType, Device, IndexOp, Tensor, Var};
use rand_core::{RngCore, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

use crate::config::{Activation, EncoderConfig, Family, ModelDir};
use crate::{Error, ce};

/// A dense layer `x W^T + b`.
#[derive(Clone, Debug)]
pub struct Dense {
    /// `out x in`.
    pub weight: Tensor,
    /// `out`.
    pub bias: Tensor,
}

impl Dense {
    /// Applies the layer to `x` (`... x in`).
    ///
    /// # Errors
    /// On a shape mismatch.
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        // As one 2-D product: candle's batched matmul would copy the broadcast weight per item.
        let dims = x.dims().to_vec();
        let inp = dims[dims.len() - 1];
        let rows = x.elem_count() / inp.max(1);
        let y = x
            .reshape((rows, inp))?
            .matmul(&self.weight.t()?)?
            .broadcast_add(&self.bias)?;
        let mut out = dims;
        let last = out.len() - 1;
        out[last] = self.weight.dim(0)?;
        y.reshape(out)
    }
}

#[derive(Clone, Debug)]
struct Norm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl Norm {
    fn forward(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        if train {
            // Built from differentiable operations; the fused kernel has no backward pass.
            candle_nn::ops::layer_norm_slow(x, &self.weight, &self.bias, self.eps as f32)
        } else {
            candle_nn::ops::layer_norm(&x.contiguous()?, &self.weight, &self.bias, self.eps as f32)
        }
    }
}

#[derive(Clone, Debug)]
struct Layer {
    query: Dense,
    key: Dense,
    value: Dense,
    attn_out: Dense,
    attn_norm: Norm,
    intermediate: Dense,
    output: Dense,
    out_norm: Norm,
}

/// One batch of tokenised texts, padded to its longest.
#[derive(Clone, Debug)]
pub struct Batch {
    /// Token ids, `b x s`.
    pub ids: Tensor,
    /// Position ids, `b x s`.
    pub positions: Tensor,
    /// Token type ids (all 0), `b x s`.
    pub types: Tensor,
    /// 1 on tokens, 0 on padding, `b x s`, f32.
    pub mask: Tensor,
    /// 0 on tokens, a large negative number on padding, `b x 1 x 1 x s`: added to attention
    /// scores.
    pub bias: Tensor,
    /// Each text's token count.
    pub lengths: Vec<usize>,
}

impl Batch {
    /// Pads `seqs` (token ids, special tokens included) into a batch for a model of `config`.
    ///
    /// # Errors
    /// When `seqs` is empty or a sequence is empty.
    pub fn new(seqs: &[&[u32]], config: &EncoderConfig) -> Result<Self, Error> {
        let b = seqs.len();
        let s = seqs.iter().map(|q| q.len()).max().unwrap_or(0);
        if b == 0 || s == 0 || seqs.iter().any(|q| q.is_empty()) {
            return Err(Error::new("a batch needs at least one non-empty sequence"));
        }
        let pad = config.pad_token_id;
        let mut ids = vec![pad; b * s];
        let mut positions = vec![0u32; b * s];
        let mut mask = vec![0f32; b * s];
        for (r, q) in seqs.iter().enumerate() {
            for (c, &t) in q.iter().enumerate() {
                ids[r * s + c] = t;
                mask[r * s + c] = 1.0;
                positions[r * s + c] = match config.family {
                    Family::Bert => c as u32,
                    // Hugging Face numbers RoBERTa's real tokens pad+1, pad+2, ... and gives
                    // padding the padding index (right padding: tokens come first).
                    Family::Roberta => pad + 1 + c as u32,
                };
            }
            if config.family == Family::Roberta {
                for c in q.len()..s {
                    positions[r * s + c] = pad;
                }
            }
        }
        let dev = Device::Cpu;
        let bias: Vec<f32> = mask
            .iter()
            .map(|&m| if m > 0.0 { 0.0 } else { -1e9 })
            .collect();
        Ok(Batch {
            ids: Tensor::from_vec(ids, (b, s), &dev).map_err(ce)?,
            positions: Tensor::from_vec(positions, (b, s), &dev).map_err(ce)?,
            types: Tensor::zeros((b, s), DType::U32, &dev).map_err(ce)?,
            mask: Tensor::from_vec(mask, (b, s), &dev).map_err(ce)?,
            bias: Tensor::from_vec(bias, (b, 1, 1, s), &dev).map_err(ce)?,
            lengths: seqs.iter().map(|q| q.len()).collect(),
        })
    }
}

/// Inference or training: training applies dropout (from a seeded generator) and uses the
/// differentiable forms of layer norm and softmax.
#[derive(Debug)]
pub enum Mode<'a> {
    /// No dropout; fused kernels.
    Infer,
    /// Dropout with these probabilities.
    Train {
        /// The dropout masks' generator.
        rng: &'a mut Xoshiro256PlusPlus,
        /// Dropout after the embeddings, the attention output and the feed-forward output.
        hidden: f32,
        /// Dropout on the attention probabilities.
        attention: f32,
    },
}

impl Mode<'_> {
    fn train(&self) -> bool {
        matches!(self, Mode::Train { .. })
    }
}

/// Multiplies `x` by a dropout mask (zero with probability `p`, else `1 / (1 - p)`).
///
/// # Errors
/// On a tensor error.
pub fn dropout(x: &Tensor, p: f32, rng: &mut Xoshiro256PlusPlus) -> candle_core::Result<Tensor> {
    if p <= 0.0 {
        return Ok(x.clone());
    }
    let keep = 1.0 / (1.0 - p);
    let threshold = (f64::from(p) * 2f64.powi(32)) as u64;
    let n = x.elem_count();
    let mut mask = Vec::with_capacity(n);
    while mask.len() < n {
        let r = rng.next_u64();
        for half in [r >> 32, r & 0xffff_ffff] {
            if mask.len() < n {
                mask.push(if half < threshold { 0.0 } else { keep });
            }
        }
    }
    x.mul(&Tensor::from_vec(mask, x.shape(), x.device())?)
}

fn drop(
    x: Tensor,
    which: fn(&Mode<'_>) -> f32,
    mode: &mut Mode<'_>,
) -> candle_core::Result<Tensor> {
    let p = which(mode);
    match mode {
        Mode::Train { rng, .. } => dropout(&x, p, rng),
        Mode::Infer => Ok(x),
    }
}

fn hidden_p(m: &Mode<'_>) -> f32 {
    match m {
        Mode::Train { hidden, .. } => *hidden,
        Mode::Infer => 0.0,
    }
}

fn attention_p(m: &Mode<'_>) -> f32 {
    match m {
        Mode::Train { attention, .. } => *attention,
        Mode::Infer => 0.0,
    }
}

/// A layer norm's weight, bias and epsilon.
pub(crate) type NormParts<'a> = (&'a Tensor, &'a Tensor, f64);

/// The encoder's weights, borrowed (for the fast inference path).
pub(crate) struct Parts<'a> {
    pub word: &'a Tensor,
    pub position: &'a Tensor,
    pub token_type: Option<&'a Tensor>,
    pub emb_norm: NormParts<'a>,
    pub layers: Vec<LayerParts<'a>>,
}

/// One layer's weights, borrowed.
pub(crate) struct LayerParts<'a> {
    pub query: &'a Dense,
    pub key: &'a Dense,
    pub value: &'a Dense,
    pub attn_out: &'a Dense,
    pub attn_norm: NormParts<'a>,
    pub intermediate: &'a Dense,
    pub output: &'a Dense,
    pub out_norm: NormParts<'a>,
}

/// A BERT-family encoder with its weights.
#[derive(Clone, Debug)]
pub struct Encoder {
    config: EncoderConfig,
    word: Tensor,
    position: Tensor,
    token_type: Option<Tensor>,
    emb_norm: Norm,
    layers: Vec<Layer>,
    pooler: Option<Dense>,
}

struct Loader {
    tensors: HashMap<String, Tensor>,
    prefix: String,
    file: String,
}

impl Loader {
    fn get(&self, name: &str, shape: &[usize]) -> Result<Tensor, Error> {
        let full = format!("{}{name}", self.prefix);
        let t = self.tensors.get(&full).or_else(|| {
            // Old checkpoints call layer-norm parameters gamma and beta.
            let alt = full
                .strip_suffix("LayerNorm.weight")
                .map(|s| format!("{s}LayerNorm.gamma"))
                .or_else(|| {
                    full.strip_suffix("LayerNorm.bias")
                        .map(|s| format!("{s}LayerNorm.beta"))
                })?;
            self.tensors.get(&alt)
        });
        let t = t.ok_or_else(|| {
            Error::new(format!(
                "{}: tensor `{full}` is missing; is this a BERT or RoBERTa checkpoint matching config.json?",
                self.file
            ))
        })?;
        if t.dims() != shape {
            return Err(Error::new(format!(
                "{}: tensor `{full}` has shape {:?}, config.json implies {shape:?}",
                self.file,
                t.dims()
            )));
        }
        t.to_dtype(DType::F32).map_err(ce)
    }

    fn dense(&self, name: &str, out: usize, inp: usize) -> Result<Dense, Error> {
        Ok(Dense {
            weight: self.get(&format!("{name}.weight"), &[out, inp])?,
            bias: self.get(&format!("{name}.bias"), &[out])?,
        })
    }

    fn norm(&self, name: &str, h: usize, eps: f64) -> Result<Norm, Error> {
        Ok(Norm {
            weight: self.get(&format!("{name}.weight"), &[h])?,
            bias: self.get(&format!("{name}.bias"), &[h])?,
            eps,
        })
    }
}

impl Encoder {
    /// Loads the weights of `dir`.
    ///
    /// # Errors
    /// When `model.safetensors` cannot be read or lacks a tensor the config implies.
    pub fn load(dir: &ModelDir) -> Result<Self, Error> {
        let file = dir.weights.display().to_string();
        let tensors = candle_core::safetensors::load(&dir.weights, &Device::Cpu)
            .map_err(|e| Error::new(format!("{file}: not a readable safetensors file: {e}")))?;
        let prefix = ["", "bert.", "roberta.", "model."]
            .into_iter()
            .find(|p| tensors.contains_key(&format!("{p}embeddings.word_embeddings.weight")))
            .ok_or_else(|| {
                Error::new(format!(
                    "{file}: no `embeddings.word_embeddings.weight` (with or without a bert. / roberta. prefix); \
                     is this a BERT-family encoder?"
                ))
            })?
            .to_string();
        let l = Loader {
            tensors,
            prefix,
            file,
        };
        let c = &dir.config;
        let (h, eps) = (c.hidden_size, c.layer_norm_eps);
        let mut layers = Vec::with_capacity(c.num_layers);
        for i in 0..c.num_layers {
            let p = format!("encoder.layer.{i}");
            layers.push(Layer {
                query: l.dense(&format!("{p}.attention.self.query"), h, h)?,
                key: l.dense(&format!("{p}.attention.self.key"), h, h)?,
                value: l.dense(&format!("{p}.attention.self.value"), h, h)?,
                attn_out: l.dense(&format!("{p}.attention.output.dense"), h, h)?,
                attn_norm: l.norm(&format!("{p}.attention.output.LayerNorm"), h, eps)?,
                intermediate: l.dense(
                    &format!("{p}.intermediate.dense"),
                    c.intermediate_size,
                    h,
                )?,
                output: l.dense(&format!("{p}.output.dense"), h, c.intermediate_size)?,
                out_norm: l.norm(&format!("{p}.output.LayerNorm"), h, eps)?,
            });
        }
        let pooler = if l
            .tensors
            .contains_key(&format!("{}pooler.dense.weight", l.prefix))
        {
            Some(l.dense("pooler.dense", h, h)?)
        } else {
            None
        };
        let token_type = if c.type_vocab_size > 0 {
            Some(l.get(
                "embeddings.token_type_embeddings.weight",
                &[c.type_vocab_size, h],
            )?)
        } else {
            None
        };
        Ok(Encoder {
            config: c.clone(),
            word: l.get("embeddings.word_embeddings.weight", &[c.vocab_size, h])?,
            position: l.get(
                "embeddings.position_embeddings.weight",
                &[c.max_positions, h],
            )?,
            token_type,
            emb_norm: l.norm("embeddings.LayerNorm", h, eps)?,
            layers,
            pooler,
        })
    }

    pub(crate) fn parts(&self) -> Parts<'_> {
        fn n(n: &Norm) -> NormParts<'_> {
            (&n.weight, &n.bias, n.eps)
        }
        Parts {
            word: &self.word,
            position: &self.position,
            token_type: self.token_type.as_ref(),
            emb_norm: n(&self.emb_norm),
            layers: self
                .layers
                .iter()
                .map(|l| LayerParts {
                    query: &l.query,
                    key: &l.key,
                    value: &l.value,
                    attn_out: &l.attn_out,
                    attn_norm: n(&l.attn_norm),
                    intermediate: &l.intermediate,
                    output: &l.output,
                    out_norm: n(&l.out_norm),
                })
                .collect(),
        }
    }

    /// The architecture.
    pub fn config(&self) -> &EncoderConfig {
        &self.config
    }

    /// Number of transformer layers.
    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// BERT's pretrained pooler (dense + tanh on the first token), when the checkpoint has one.
    pub fn pooler(&self) -> Option<&Dense> {
        self.pooler.as_ref()
    }

    /// The embedding layer's output, `b x s x h`.
    ///
    /// # Errors
    /// On a tensor error (a token id past the vocabulary, for one).
    pub fn embed(&self, batch: &Batch, mode: &mut Mode<'_>) -> candle_core::Result<Tensor> {
        let (b, s) = batch.ids.dims2()?;
        let h = self.config.hidden_size;
        let flat = |t: &Tensor, table: &Tensor| -> candle_core::Result<Tensor> {
            table.index_select(&t.flatten_all()?, 0)?.reshape((b, s, h))
        };
        let mut x = flat(&batch.ids, &self.word)?.add(&flat(&batch.positions, &self.position)?)?;
        if let Some(tt) = &self.token_type {
            x = x.add(&flat(&batch.types, tt)?)?;
        }
        let x = self.emb_norm.forward(&x, mode.train())?;
        drop(x, hidden_p, mode)
    }

    /// Runs layers `from..to` on `x` (`b x s x h`).
    ///
    /// # Errors
    /// On a tensor error.
    pub fn layers(
        &self,
        from: usize,
        to: usize,
        mut x: Tensor,
        batch: &Batch,
        mode: &mut Mode<'_>,
    ) -> candle_core::Result<Tensor> {
        for layer in &self.layers[from..to] {
            x = self.layer(layer, &x, batch, mode)?;
        }
        Ok(x)
    }

    /// The last layer's output for `batch`, `b x s x h`.
    ///
    /// # Errors
    /// On a tensor error.
    pub fn forward(&self, batch: &Batch, mode: &mut Mode<'_>) -> candle_core::Result<Tensor> {
        let x = self.embed(batch, mode)?;
        self.layers(0, self.layers.len(), x, batch, mode)
    }

    fn layer(
        &self,
        l: &Layer,
        x: &Tensor,
        batch: &Batch,
        mode: &mut Mode<'_>,
    ) -> candle_core::Result<Tensor> {
        let (b, s, h) = x.dims3()?;
        let heads = self.config.num_heads;
        let dh = h / heads;
        let split = |t: Tensor| -> candle_core::Result<Tensor> {
            t.reshape((b, s, heads, dh))?.transpose(1, 2)?.contiguous()
        };
        let q = split(l.query.forward(x)?)?;
        let k = split(l.key.forward(x)?)?;
        let v = split(l.value.forward(x)?)?;
        let scores = (q.matmul(&k.t()?)? / (dh as f64).sqrt())?.broadcast_add(&batch.bias)?;
        let probs = if mode.train() {
            candle_nn::ops::softmax(&scores, D::Minus1)?
        } else {
            candle_nn::ops::softmax_last_dim(&scores)?
        };
        let probs = drop(probs, attention_p, mode)?;
        let ctx = probs
            .matmul(&v)?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((b, s, h))?;
        let a = drop(l.attn_out.forward(&ctx)?, hidden_p, mode)?;
        let a = l.attn_norm.forward(&a.add(x)?, mode.train())?;
        let i = l.intermediate.forward(&a)?;
        let i = match self.config.activation {
            Activation::GeluErf => i.gelu_erf()?,
            Activation::GeluTanh => i.gelu()?,
            Activation::Relu => i.relu()?,
        };
        let o = drop(l.output.forward(&i)?, hidden_p, mode)?;
        l.out_norm.forward(&o.add(&a)?, mode.train())
    }

    /// Makes the weights of layers `from..` (and the pooler) trainable, and the embeddings too
    /// when `from` is 0; returns the variables with their Hugging Face names. The encoder's
    /// tensors share storage with the variables, so an optimiser's updates are seen by the
    /// next forward pass.
    ///
    /// # Errors
    /// On a tensor error.
    pub fn make_trainable(&mut self, from: usize) -> candle_core::Result<Vec<(String, Var)>> {
        let mut vars = Vec::new();
        let mut wrap = |name: String, t: &mut Tensor| -> candle_core::Result<()> {
            let v = Var::from_tensor(t)?;
            *t = v.as_tensor().clone();
            vars.push((name, v));
            Ok(())
        };
        fn dense(
            name: &str,
            d: &mut Dense,
            wrap: &mut dyn FnMut(String, &mut Tensor) -> candle_core::Result<()>,
        ) -> candle_core::Result<()> {
            wrap(format!("{name}.weight"), &mut d.weight)?;
            wrap(format!("{name}.bias"), &mut d.bias)
        }
        fn norm(
            name: &str,
            n: &mut Norm,
            wrap: &mut dyn FnMut(String, &mut Tensor) -> candle_core::Result<()>,
        ) -> candle_core::Result<()> {
            wrap(format!("{name}.weight"), &mut n.weight)?;
            wrap(format!("{name}.bias"), &mut n.bias)
        }
        if from == 0 {
            wrap("embeddings.word_embeddings.weight".into(), &mut self.word)?;
            wrap(
                "embeddings.position_embeddings.weight".into(),
                &mut self.position,
            )?;
            if let Some(tt) = &mut self.token_type {
                wrap("embeddings.token_type_embeddings.weight".into(), tt)?;
            }
            norm("embeddings.LayerNorm", &mut self.emb_norm, &mut wrap)?;
        }
        for (i, l) in self.layers.iter_mut().enumerate().skip(from) {
            let p = format!("encoder.layer.{i}");
            dense(
                &format!("{p}.attention.self.query"),
                &mut l.query,
                &mut wrap,
            )?;
            dense(&format!("{p}.attention.self.key"), &mut l.key, &mut wrap)?;
            dense(
                &format!("{p}.attention.self.value"),
                &mut l.value,
                &mut wrap,
            )?;
            dense(
                &format!("{p}.attention.output.dense"),
                &mut l.attn_out,
                &mut wrap,
            )?;
            norm(
                &format!("{p}.attention.output.LayerNorm"),
                &mut l.attn_norm,
                &mut wrap,
            )?;
            dense(
                &format!("{p}.intermediate.dense"),
                &mut l.intermediate,
                &mut wrap,
            )?;
            dense(&format!("{p}.output.dense"), &mut l.output, &mut wrap)?;
            norm(&format!("{p}.output.LayerNorm"), &mut l.out_norm, &mut wrap)?;
        }
        if let Some(p) = &mut self.pooler {
            dense("pooler.dense", p, &mut wrap)?;
        }
        Ok(vars)
    }
}

/// Pools token vectors `x` (`b x s x h`) into sentence vectors (`b x h`).
///
/// # Errors
/// On a tensor error.
pub fn pool(
    x: &Tensor,
    batch: &Batch,
    pooling: crate::config::Pooling,
) -> candle_core::Result<Tensor> {
    use crate::config::Pooling;
    let mask = batch.mask.unsqueeze(2)?; // b x s x 1
    let counts = batch.mask.sum_keepdim(1)?; // b x 1
    match pooling {
        Pooling::Cls => x.i((.., 0, ..)),
        Pooling::Mean => x.broadcast_mul(&mask)?.sum(1)?.broadcast_div(&counts),
        Pooling::MeanSqrtLen => x
            .broadcast_mul(&mask)?
            .sum(1)?
            .broadcast_div(&counts.sqrt()?),
        Pooling::Max => {
            let neg = ((mask.ones_like()? - &mask)? * -1e9)?;
            x.broadcast_add(&neg)?.max(1)
        }
    }
}

/// Divides each row of `x` (`b x h`) by its L2 norm (rows of zeros stay zero).
///
/// # Errors
/// On a tensor error.
pub fn l2_normalize(x: &Tensor) -> candle_core::Result<Tensor> {
    let norm = x.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
    x.broadcast_div(&norm)
}

/// A seeded generator for dropout masks and initialisation.
pub fn rng(seed: u64) -> Xoshiro256PlusPlus {
    Xoshiro256PlusPlus::seed_from_u64(seed)
}
