//! Sentence embeddings: tokenise, sort by length (so a batch pads little), run the encoder,
//! pool, normalise, put back in input order.

use std::path::Path;

use candle_core::Tensor;
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use crate::config::ModelDir;
use crate::fast::{FastEncoder, Scratch};
use crate::model::{Batch, Encoder, Mode, l2_normalize, pool};
use crate::{Error, ce};

/// The model directory's tokenizer, truncating to a fixed number of tokens (special tokens
/// included) and never padding (batches pad themselves).
#[derive(Clone, Debug)]
pub struct TextTokenizer {
    tok: Tokenizer,
    max_length: usize,
}

impl TextTokenizer {
    /// Loads `tokenizer.json` and truncates at `max_length` tokens.
    ///
    /// # Errors
    /// When the file is not a tokenizer the library can read.
    pub fn load(path: &Path, max_length: usize) -> Result<Self, Error> {
        let mut tok = Tokenizer::from_file(path).map_err(|e| {
            Error::new(format!(
                "{}: not a tokenizer.json the tokenizers library reads: {e}",
                path.display()
            ))
        })?;
        tok.with_padding(None);
        tok.with_truncation(Some(TruncationParams {
            max_length: max_length.max(2),
            strategy: TruncationStrategy::LongestFirst,
            stride: 0,
            direction: TruncationDirection::Right,
        }))
        .map_err(|e| Error::new(format!("{}: {e}", path.display())))?;
        Ok(TextTokenizer { tok, max_length })
    }

    /// Tokens per text at most.
    pub fn max_length(&self) -> usize {
        self.max_length
    }

    /// The token ids of each text, special tokens added.
    ///
    /// # Errors
    /// When the tokenizer fails on a text.
    pub fn ids(&self, texts: &[&str]) -> Result<Vec<Vec<u32>>, Error> {
        let enc = self
            .tok
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| Error::new(format!("tokenising failed: {e}")))?;
        Ok(enc.into_iter().map(|e| e.get_ids().to_vec()).collect())
    }
}

/// An encoder with its tokenizer, pooling and normalisation: texts in, sentence vectors out.
#[derive(Clone, Debug)]
pub struct Embedder {
    dir: ModelDir,
    tokenizer: TextTokenizer,
    encoder: Encoder,
    fast: FastEncoder,
}

impl Embedder {
    /// Loads the model in `dir`. `max_length` overrides the directory's token limit (it cannot
    /// go past the position table).
    ///
    /// # Errors
    /// As [`ModelDir::open`], [`TextTokenizer::load`] and [`Encoder::load`].
    pub fn load(dir: &Path, max_length: Option<usize>) -> Result<Self, Error> {
        let mut dir = ModelDir::open(dir)?;
        if let Some(m) = max_length {
            let limit = dir.config.usable_positions();
            if m < 2 || m > limit {
                return Err(Error::new(format!(
                    "max length {m} is out of range: between 2 and {limit} (the model's position table)"
                )));
            }
            dir.max_length = m;
        }
        let tokenizer = TextTokenizer::load(&dir.tokenizer, dir.max_length)?;
        let encoder = Encoder::load(&dir)?;
        let fast = FastEncoder::from(&encoder)?;
        Ok(Embedder {
            dir,
            tokenizer,
            encoder,
            fast,
        })
    }

    /// The model directory as read.
    pub fn model(&self) -> &ModelDir {
        &self.dir
    }

    /// The embedding width.
    pub fn dim(&self) -> usize {
        self.dir.config.hidden_size
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }

    /// The encoder.
    pub fn encoder(&self) -> &Encoder {
        &self.encoder
    }

    /// The sentence vectors of `texts` (`texts.len() x dim`, row-major), `batch` texts per
    /// forward pass. `progress` is told how many texts are done after each batch.
    ///
    /// # Errors
    /// As the tokenizer's and the encoder's.
    pub fn embed(
        &self,
        texts: &[&str],
        batch: usize,
        progress: &mut dyn FnMut(usize),
    ) -> Result<Vec<f32>, Error> {
        let ids = self.tokenizer.ids(texts)?;
        self.embed_ids(&ids, batch, progress)
    }

    /// As [`Embedder::embed`], from token ids.
    ///
    /// # Errors
    /// As the encoder's.
    pub fn embed_ids(
        &self,
        ids: &[Vec<u32>],
        batch: usize,
        progress: &mut dyn FnMut(usize),
    ) -> Result<Vec<f32>, Error> {
        let d = self.dim();
        let mut out = vec![0f32; ids.len() * d];
        // Longest first: the batches pad little, and the slowest batch shows in the progress
        // bar's estimate from the start.
        let mut order: Vec<usize> = (0..ids.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(ids[i].len()));
        let mut done = 0;
        let mut scratch = Scratch::default();
        for chunk in order.chunks(batch.max(1)) {
            let seqs: Vec<&[u32]> = chunk.iter().map(|&i| ids[i].as_slice()).collect();
            let vecs =
                self.fast
                    .embed(&seqs, self.dir.pooling, self.dir.normalize, &mut scratch)?;
            for (r, &i) in chunk.iter().enumerate() {
                out[i * d..(i + 1) * d].copy_from_slice(&vecs[r * d..(r + 1) * d]);
            }
            done += chunk.len();
            progress(done);
        }
        Ok(out)
    }

    /// The sentence vectors of one batch through candle's op-by-op path ([`Encoder::forward`]),
    /// the reference the fast path is checked against.
    ///
    /// # Errors
    /// As the encoder's.
    pub fn embed_batch_reference(&self, seqs: &[&[u32]]) -> Result<Vec<f32>, Error> {
        let batch = Batch::new(seqs, &self.dir.config)?;
        let run = || -> candle_core::Result<Tensor> {
            let x = self.encoder.forward(&batch, &mut Mode::Infer)?;
            let v = pool(&x, &batch, self.dir.pooling)?;
            if self.dir.normalize {
                l2_normalize(&v)
            } else {
                Ok(v)
            }
        };
        run()
            .and_then(|t| t.flatten_all()?.to_vec1::<f32>())
            .map_err(ce)
    }
}
