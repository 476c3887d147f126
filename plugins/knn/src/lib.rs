//! # routereval-plugin-knn
//!
//! The k-nearest-neighbour router of RouterEval (its `PRKnn-knn` baseline), written against
//! `routereval-sdk` only, so that the same code is built into the engine, loaded as a native
//! library or run as a WebAssembly component.
//!
//! For each test query it finds the `k` training queries whose embeddings have the highest
//! cosine similarity, and predicts each candidate's correctness as the mean of that candidate's
//! training scores over those neighbours.
//!
//! - **Choice**: the candidate with the highest predicted correctness (the first on ties),
//!   computed in f64 as RouterEval does.
//! - **Belief**: the softmax of the predicted correctness over the `m` candidates, as RouterEval
//!   reports for its Ep.
//!
//! ## Hyperparameters
//!
//! | key | default | meaning |
//! |-----|---------|---------|
//! | `k` | 5       | neighbours per query (RouterEval's `--knearest 5`); at least 1, at most the number of training queries |
//!
//! Neighbours with equal similarity are taken in training-set order. The router uses no
//! randomness, so the seed has no effect.
//!
//! ## Speed
//!
//! The training matrices are kept as [`HeldMatrix`]es, the neighbours come from their
//! `top_k_dot` on L2-normalised embeddings (the similarities computed block by block, 512 test
//! queries at a time, as one matrix product, then a single pass per row keeps the `k` best) and
//! the predictions from `row_means`. On RouterEval's largest shape the cost is that of the
//! matrix product; see `benches/route.rs`. As a WebAssembly plugin the engine holds those
//! matrices and runs the search, the means and the softmax natively (ABI 1.1's `tensors`), so
//! the plugin gives the built-in router's results at close to its speed.

use routereval_sdk::{
    HeldMatrix, Params, Queries, Router, RouterError, Routing, Split, l2_normalise_rows,
};

/// Default number of neighbours, RouterEval's setting.
pub const DEFAULT_K: usize = 5;

/// The kNN router. See the crate docs.
#[derive(Debug)]
pub struct Knn {
    k: usize,
    dim: usize,
    m: usize,
    n_train: usize,
    /// L2-normalised training embeddings, `n_train x dim`.
    train_embeddings: Option<HeldMatrix>,
    /// Training scores, `n_train x m`.
    train_scores: Option<HeldMatrix>,
}

impl Knn {
    /// The number of neighbours in use.
    pub fn k(&self) -> usize {
        self.k
    }
}

impl Router for Knn {
    fn new(params: &Params) -> Result<Self, RouterError> {
        params.expect_only(&["k"])?;
        let k = params.usize_or("k", DEFAULT_K)?;
        if k == 0 {
            return Err(RouterError::InvalidParams(
                "`k` must be at least 1".to_string(),
            ));
        }
        Ok(Knn {
            k,
            dim: 0,
            m: 0,
            n_train: 0,
            train_embeddings: None,
            train_scores: None,
        })
    }

    fn fit(&mut self, train: &Split<'_>, _val: &Split<'_>) -> Result<(), RouterError> {
        if train.is_empty() {
            return Err(RouterError::InvalidInput(
                "the training split is empty".to_string(),
            ));
        }
        if self.k > train.len() {
            return Err(RouterError::InvalidParams(format!(
                "`k` = {} exceeds the {} training queries",
                self.k,
                train.len()
            )));
        }
        self.dim = train.dim();
        self.m = train.num_candidates();
        self.n_train = train.len();
        let mut embeddings = train.embeddings().to_vec();
        l2_normalise_rows(&mut embeddings, self.dim);
        self.train_embeddings = Some(HeldMatrix::new(embeddings, self.n_train, self.dim)?);
        self.train_scores = Some(HeldMatrix::from_slice(
            train.scores(),
            self.n_train,
            self.m,
        )?);
        Ok(())
    }

    fn route(&self, queries: &Queries<'_>) -> Result<Routing, RouterError> {
        let (Some(embeddings), Some(scores)) = (&self.train_embeddings, &self.train_scores) else {
            return Err(RouterError::Route("route called before fit".to_string()));
        };
        if queries.dim() != self.dim {
            return Err(RouterError::InvalidInput(format!(
                "queries have {}-d embeddings, the training split had {}-d",
                queries.dim(),
                self.dim
            )));
        }
        let (n, dim) = (queries.len(), self.dim);
        let mut q = queries.embeddings().to_vec();
        l2_normalise_rows(&mut q, dim);

        // Cosine similarity of unit vectors is their dot product.
        let neighbours = embeddings.top_k_dot(&q, n, self.k);
        // Each candidate's mean score over the neighbours, in f64; the choice is its argmax
        // (first on ties), the belief its softmax.
        let means = scores.row_means(&neighbours, self.k.min(self.n_train))?;
        Routing::from_belief(n, self.m, means.softmax_rows())?.with_choices(means.argmax_rows())
    }
}

/// The router's card: its name, summary and parameters with their defaults, read by
/// `export_router!`, the engine's registry and `routereval-engine routers`.
impl routereval_sdk::Describe for Knn {
    const ABOUT: routereval_sdk::About = routereval_sdk::About {
        name: "knn",
        summary: "k nearest training queries by cosine similarity; mean of their scores per candidate (RouterEval's PRKnn)",
        params: &[routereval_sdk::ParamDoc {
            key: "k",
            default: "5",
            doc: "neighbours averaged",
        }],
    };
}

routereval_sdk::export_router!(Knn, about);

#[cfg(test)]
mod tests {
    use super::*;
    use routereval_sdk::{Rng, Texts, argmax, cosine_similarity, softmax_f64};

    /// Brute force: full sort of cosine similarities (stable, so ties keep training order).
    fn brute(
        train_e: &[f32],
        train_s: &[f32],
        test_e: &[f32],
        d: usize,
        m: usize,
        k: usize,
    ) -> Vec<(u32, Vec<f64>)> {
        let nt = train_e.len() / d;
        test_e
            .chunks(d)
            .map(|q| {
                let mut idx: Vec<usize> = (0..nt).collect();
                let sims: Vec<f32> = (0..nt)
                    .map(|t| cosine_similarity(q, &train_e[t * d..(t + 1) * d]))
                    .collect();
                idx.sort_by(|&a, &b| sims[b].partial_cmp(&sims[a]).unwrap());
                let mut mean = vec![0.0f64; m];
                for &t in &idx[..k] {
                    for j in 0..m {
                        mean[j] += f64::from(train_s[t * m + j]) / k as f64;
                    }
                }
                (argmax(&mean).unwrap() as u32, mean)
            })
            .collect()
    }

    #[test]
    fn matches_brute_force_on_random_data() {
        let (nt, n, d, m, k) = (300, 150, 24, 4, 5);
        let mut rng = Rng::new(7);
        let train_e: Vec<f32> = (0..nt * d).map(|_| rng.normal() as f32).collect();
        let test_e: Vec<f32> = (0..n * d).map(|_| rng.normal() as f32).collect();
        let train_s: Vec<f32> = (0..nt * m).map(|_| (rng.below(2)) as f32).collect();
        let names: Vec<String> = (0..m).map(|j| format!("m{j}")).collect();
        let tq = Queries::new(nt, d, &train_e, Texts::EMPTY).unwrap();
        let train = Split::new(tq, &train_s, &names).unwrap();
        let mut knn = Knn::new(&Params::parse("k=5", 0).unwrap()).unwrap();
        knn.fit(&train, &train).unwrap();
        let routing = knn
            .route(&Queries::new(n, d, &test_e, Texts::EMPTY).unwrap())
            .unwrap();
        let want = brute(&train_e, &train_s, &test_e, d, m, k);
        for (i, (c, mean)) in want.iter().enumerate() {
            assert_eq!(routing.choices().unwrap()[i], *c, "query {i}");
            let mut sm = vec![0.0f32; m];
            softmax_f64(mean, &mut sm);
            assert_eq!(&routing.belief()[i * m..(i + 1) * m], &sm[..], "query {i}");
        }
    }

    #[test]
    fn rejects_bad_params_and_shapes() {
        assert!(Knn::new(&Params::parse("k=0", 0).unwrap()).is_err());
        assert!(Knn::new(&Params::parse("neighbours=3", 0).unwrap()).is_err());
        let names = vec!["a".to_string()];
        let e = [1.0f32, 0.0];
        let s = [1.0f32];
        let tq = Queries::new(1, 2, &e, Texts::EMPTY).unwrap();
        let train = Split::new(tq, &s, &names).unwrap();
        let mut knn = Knn::new(&Params::new(0)).unwrap();
        let err = knn.fit(&train, &train).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid parameters: `k` = 5 exceeds the 1 training queries"
        );
        let mut knn = Knn::new(&Params::parse("k=1", 0).unwrap()).unwrap();
        knn.fit(&train, &train).unwrap();
        let q3 = [1.0f32, 0.0, 0.0];
        assert!(
            knn.route(&Queries::new(1, 3, &q3, Texts::EMPTY).unwrap())
                .is_err()
        );
    }
}
