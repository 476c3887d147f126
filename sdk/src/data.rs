//! Borrowed views of the data a router sees.
//!
//! The views never own their data: the engine (or the plugin glue of the WASM and native load
//! paths) keeps the buffers and lends them for the duration of one call. A router that needs the
//! data after `fit` returns copies what it needs.

use crate::RouterError;

/// A read-only list of texts (prompts or candidate names), borrowed from the caller.
///
/// It accepts both `&[String]` (the engine's own storage) and `&[&str]` (what a foreign boundary
/// can hand over without copying the text).
#[derive(Clone, Copy, Debug)]
pub struct Texts<'a>(TextsRepr<'a>);

#[derive(Clone, Copy, Debug)]
enum TextsRepr<'a> {
    Owned(&'a [String]),
    Borrowed(&'a [&'a str]),
    #[cfg(not(target_family = "wasm"))]
    Abi(&'a [abi_stable::std_types::RStr<'a>]),
}

impl<'a> Texts<'a> {
    /// An empty list.
    pub const EMPTY: Texts<'static> = Texts(TextsRepr::Borrowed(&[]));

    /// Number of texts.
    pub fn len(&self) -> usize {
        match self.0 {
            TextsRepr::Owned(s) => s.len(),
            TextsRepr::Borrowed(s) => s.len(),
            #[cfg(not(target_family = "wasm"))]
            TextsRepr::Abi(s) => s.len(),
        }
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `i`-th text, or `None` past the end.
    pub fn get(&self, i: usize) -> Option<&'a str> {
        match self.0 {
            TextsRepr::Owned(s) => s.get(i).map(String::as_str),
            TextsRepr::Borrowed(s) => s.get(i).copied(),
            #[cfg(not(target_family = "wasm"))]
            TextsRepr::Abi(s) => s.get(i).map(|r| r.as_str()),
        }
    }

    /// Texts handed over by the native plugin ABI, without copying them.
    #[cfg(not(target_family = "wasm"))]
    pub(crate) fn from_rstrs(s: &'a [abi_stable::std_types::RStr<'a>]) -> Self {
        Texts(TextsRepr::Abi(s))
    }

    /// Iterates over the texts in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &'a str> + 'a {
        let this = *self;
        (0..this.len()).map(move |i| this.get(i).unwrap_or_default())
    }
}

impl<'a> From<&'a [String]> for Texts<'a> {
    fn from(s: &'a [String]) -> Self {
        Texts(TextsRepr::Owned(s))
    }
}

impl<'a> From<&'a Vec<String>> for Texts<'a> {
    fn from(s: &'a Vec<String>) -> Self {
        Texts(TextsRepr::Owned(s.as_slice()))
    }
}

impl<'a> From<&'a [&'a str]> for Texts<'a> {
    fn from(s: &'a [&'a str]) -> Self {
        Texts(TextsRepr::Borrowed(s))
    }
}

fn check_len(what: &str, got: usize, rows: usize, cols: usize) -> Result<(), RouterError> {
    match rows.checked_mul(cols) {
        Some(want) if want == got => Ok(()),
        _ => Err(RouterError::InvalidInput(format!(
            "{what} has {got} values, expected {rows} x {cols}"
        ))),
    }
}

/// Queries to route: embeddings and prompts, never scores.
#[derive(Clone, Copy, Debug)]
pub struct Queries<'a> {
    n: usize,
    dim: usize,
    embeddings: &'a [f32],
    prompts: Texts<'a>,
}

impl<'a> Queries<'a> {
    /// Builds a view of `n` queries with `dim`-dimensional embeddings, stored row-major in
    /// `embeddings` (length `n * dim`), and their prompts (length `n`, or empty when the dataset
    /// has none).
    ///
    /// # Errors
    /// [`RouterError::InvalidInput`] when the lengths do not agree.
    pub fn new(
        n: usize,
        dim: usize,
        embeddings: &'a [f32],
        prompts: impl Into<Texts<'a>>,
    ) -> Result<Self, RouterError> {
        let prompts = prompts.into();
        check_len("the embedding matrix", embeddings.len(), n, dim)?;
        if !prompts.is_empty() && prompts.len() != n {
            return Err(RouterError::InvalidInput(format!(
                "{} prompts for {n} queries",
                prompts.len()
            )));
        }
        Ok(Queries {
            n,
            dim,
            embeddings,
            prompts,
        })
    }

    /// Number of queries.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether there are no queries.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Embedding dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Checks that the queries have the training split's embedding dimension.
    ///
    /// # Errors
    /// [`RouterError::InvalidInput`] naming both dimensions.
    pub fn expect_dim(&self, trained: usize) -> Result<(), RouterError> {
        if self.dim == trained {
            Ok(())
        } else {
            Err(RouterError::InvalidInput(format!(
                "queries have {}-d embeddings, the training split had {trained}-d",
                self.dim
            )))
        }
    }

    /// All embeddings, `len() x dim()`, row-major.
    pub fn embeddings(&self) -> &'a [f32] {
        self.embeddings
    }

    /// The embedding of query `i`.
    ///
    /// # Panics
    /// When `i >= len()`.
    pub fn embedding(&self, i: usize) -> &'a [f32] {
        &self.embeddings[i * self.dim..(i + 1) * self.dim]
    }

    /// The prompts; empty when the dataset carries none.
    pub fn prompts(&self) -> Texts<'a> {
        self.prompts
    }
}

/// A labelled split (train or validation): queries plus each candidate's score on each query.
#[derive(Clone, Copy, Debug)]
pub struct Split<'a> {
    queries: Queries<'a>,
    m: usize,
    scores: &'a [f32],
    candidates: Texts<'a>,
}

impl<'a> Split<'a> {
    /// Builds a split view. `scores` is `queries.len() x candidates.len()`, row-major: the score
    /// of candidate `j` on query `i` is `scores[i * m + j]`, usually 0 or 1 (correctness), in
    /// some benchmarks a fraction.
    ///
    /// # Errors
    /// [`RouterError::InvalidInput`] when the lengths do not agree.
    pub fn new(
        queries: Queries<'a>,
        scores: &'a [f32],
        candidates: impl Into<Texts<'a>>,
    ) -> Result<Self, RouterError> {
        let candidates = candidates.into();
        let m = candidates.len();
        check_len("the score matrix", scores.len(), queries.len(), m)?;
        Ok(Split {
            queries,
            m,
            scores,
            candidates,
        })
    }

    /// The queries of this split (embeddings and prompts).
    pub fn queries(&self) -> Queries<'a> {
        self.queries
    }

    /// Number of queries.
    pub fn len(&self) -> usize {
        self.queries.len()
    }

    /// Whether the split has no queries.
    pub fn is_empty(&self) -> bool {
        self.queries.is_empty()
    }

    /// Embedding dimension.
    pub fn dim(&self) -> usize {
        self.queries.dim()
    }

    /// All embeddings, `len() x dim()`, row-major.
    pub fn embeddings(&self) -> &'a [f32] {
        self.queries.embeddings()
    }

    /// The embedding of query `i`.
    ///
    /// # Panics
    /// When `i >= len()`.
    pub fn embedding(&self, i: usize) -> &'a [f32] {
        self.queries.embedding(i)
    }

    /// The prompts; empty when the dataset carries none.
    pub fn prompts(&self) -> Texts<'a> {
        self.queries.prompts()
    }

    /// Number of candidate LLMs, `m`.
    pub fn num_candidates(&self) -> usize {
        self.m
    }

    /// Candidate model names, in column order.
    pub fn candidates(&self) -> Texts<'a> {
        self.candidates
    }

    /// All scores, `len() x num_candidates()`, row-major.
    pub fn scores(&self) -> &'a [f32] {
        self.scores
    }

    /// The scores of every candidate on query `i`.
    ///
    /// # Panics
    /// When `i >= len()`.
    pub fn score_row(&self, i: usize) -> &'a [f32] {
        &self.scores[i * self.m..(i + 1) * self.m]
    }

    /// Mean score of each candidate over the split (its accuracy when scores are 0/1).
    pub fn candidate_means(&self) -> Vec<f64> {
        let mut sums = vec![0.0f64; self.m];
        for i in 0..self.len() {
            for (s, &v) in sums.iter_mut().zip(self.score_row(i)) {
                *s += f64::from(v);
            }
        }
        let n = self.len().max(1) as f64;
        sums.iter().map(|s| s / n).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_checks_shapes() {
        let emb = [0.0f32; 6];
        let q = Queries::new(3, 2, &emb, Texts::EMPTY).unwrap();
        let names = vec!["a".to_string(), "b".to_string()];
        let scores = [1.0f32, 0.0, 0.0, 1.0, 1.0, 1.0];
        let s = Split::new(q, &scores, &names).unwrap();
        assert_eq!(s.num_candidates(), 2);
        assert_eq!(s.score_row(1), &[0.0, 1.0]);
        assert_eq!(s.candidate_means(), vec![2.0 / 3.0, 2.0 / 3.0]);
        assert!(Split::new(q, &scores[..5], &names).is_err());
        assert!(Queries::new(2, 2, &emb, Texts::EMPTY).is_err());
        let prompts = ["x", "y"];
        assert!(Queries::new(3, 2, &emb, &prompts[..]).is_err());
    }

    #[test]
    fn texts_from_both_kinds() {
        let owned = vec!["p".to_string(), "q".to_string()];
        let borrowed = ["p", "q"];
        let a: Texts = (&owned).into();
        let b: Texts = (&borrowed[..]).into();
        assert_eq!(a.iter().collect::<Vec<_>>(), b.iter().collect::<Vec<_>>());
        assert_eq!(a.get(2), None);
    }
}
