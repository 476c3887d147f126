//! Embeddings computed from prompts, with a local BERT-family sentence encoder
//! ([`routereval_encoder`]): for populations that come without a `.npy`, and for datasets whose
//! embeddings are to be replaced (RouterEval's "replacing the embedding model").

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Result, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use routereval_encoder::Embedder;

use crate::data::{Matrix, RouterDataset};

/// Which model, and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmbedOptions {
    /// The model directory (Hugging Face layout).
    pub model: PathBuf,
    /// Texts per forward pass.
    pub batch: usize,
    /// Tokens per text at most [default: the model's `max_seq_length`].
    pub max_length: Option<usize>,
    /// Draw a progress bar on standard error (when it is a terminal).
    pub progress: bool,
}

impl EmbedOptions {
    /// The model in `dir`, 64 texts per pass, its own length limit, a progress bar.
    pub fn new(dir: &Path) -> Self {
        EmbedOptions {
            model: dir.to_path_buf(),
            batch: 64,
            max_length: None,
            progress: true,
        }
    }
}

/// What [`embed_texts`] did.
#[derive(Clone, Debug, PartialEq)]
pub struct EmbedSummary {
    /// Texts embedded.
    pub texts: usize,
    /// The vectors' width.
    pub dim: usize,
    /// Seconds spent (loading the model included).
    pub seconds: f64,
    /// The pooling used (sentence-transformers' name).
    pub pooling: &'static str,
    /// Whether the vectors were L2-normalised.
    pub normalized: bool,
    /// Tokens per text at most.
    pub max_length: usize,
}

/// Loads the model of `opts`.
///
/// # Errors
/// When the model directory is missing or incomplete (the message says where to get weights)
/// or its files are not a supported encoder.
pub fn load_model(opts: &EmbedOptions) -> Result<Embedder> {
    Embedder::load(&opts.model, opts.max_length).map_err(|e| anyhow::anyhow!("{e}"))
}

/// The embeddings of `texts`, one row each, with the model of `opts`.
///
/// # Errors
/// As [`load_model`], or when the encoder fails on a text.
pub fn embed_texts(texts: &[String], opts: &EmbedOptions) -> Result<(Matrix<f32>, EmbedSummary)> {
    let start = Instant::now();
    let model = load_model(opts)?;
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let bar = (opts.progress && !texts.is_empty()).then(|| {
        let bar =
            ProgressBar::with_draw_target(Some(texts.len() as u64), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{bar:30} {pos}/{len} prompts embedded, {per_sec}, ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    });
    let result = model.embed(&refs, opts.batch, &mut |done| {
        if let Some(b) = &bar {
            b.set_position(done as u64);
        }
    });
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let data = result.map_err(|e| anyhow::anyhow!("{e}"))?;
    let dim = model.dim();
    let summary = EmbedSummary {
        texts: texts.len(),
        dim,
        seconds: start.elapsed().as_secs_f64(),
        pooling: model.model().pooling.name(),
        normalized: model.model().normalize,
        max_length: model.tokenizer().max_length(),
    };
    Ok((Matrix::new(texts.len(), dim, data), summary))
}

/// Replaces the embeddings of every split of `ds` with ones computed from its prompts.
///
/// # Errors
/// When the dataset has no prompts (a split's prompts are all empty), or as [`embed_texts`].
pub fn embed_dataset(ds: &mut RouterDataset, opts: &EmbedOptions) -> Result<EmbedSummary> {
    for (name, split) in [("train", &ds.train), ("val", &ds.val), ("test", &ds.test)] {
        if !split.prompts.is_empty() && split.prompts.iter().all(|p| p.is_empty()) {
            bail!(
                "`{}` has no prompts in its {name} split, so its embeddings cannot be computed; \
                 use a dataset with prompts (RouterEval's files have them in `prompt`)",
                ds.source
            );
        }
        if split.prompts.len() != split.len() {
            bail!(
                "`{}`: the {name} split has {} prompts for {} queries",
                ds.source,
                split.prompts.len(),
                split.len()
            );
        }
    }
    let all: Vec<String> = [&ds.train, &ds.val, &ds.test]
        .iter()
        .flat_map(|s| s.prompts.iter().cloned())
        .collect();
    let (m, summary) = embed_texts(&all, opts)?;
    let d = m.cols();
    let mut at = 0;
    for split in [&mut ds.train, &mut ds.val, &mut ds.test] {
        let n = split.prompts.len();
        split.embeddings = Matrix::new(n, d, m.as_slice()[at * d..(at + n) * d].to_vec());
        at += n;
    }
    Ok(summary)
}
