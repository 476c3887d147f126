//! # routereval-encoder
//!
//! BERT-family sentence encoders (BERT, MiniLM, RoBERTa) on the CPU, from a local model
//! directory in Hugging Face layout: sentence embeddings with the pooling and normalisation the
//! model's sentence-transformers files ask for ([`Embedder`]), and the pieces the MLC router
//! fine-tunes ([`Encoder`], [`Batch`], [`Mode`]). Nothing is downloaded: a missing directory or
//! file is an error that says where to get weights ([`WHERE_TO_GET_WEIGHTS`]).

mod config;
mod embed;
mod fast;
mod model;

pub use candle_core;
pub use candle_nn;
pub use config::{Activation, EncoderConfig, Family, ModelDir, Pooling, WHERE_TO_GET_WEIGHTS};
pub use embed::{Embedder, TextTokenizer};
pub use fast::FastEncoder;
pub use model::{Batch, Dense, Encoder, Mode, dropout, l2_normalize, pool, rng};

use std::fmt;

/// What went wrong, in words that name the file, the field and the fix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error(String);

impl Error {
    /// An error with this message.
    pub fn new(msg: impl Into<String>) -> Self {
        Error(msg.into())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

/// A candle error as ours.
pub fn ce(e: candle_core::Error) -> Error {
    Error(format!("tensor computation failed: {e}"))
}
