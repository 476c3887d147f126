//! # routereval-plugin-mf
//!
//! A router beyond RouterEval's baselines: **matrix factorisation**, RouteLLM's MF router
//! generalised from two models to `m` candidates. A query's embedding is projected to `rank`
//! dimensions (`h = P x + c`), each candidate has a learned `rank`-vector `u_j` and a bias `b_j`,
//! and the logit that candidate `j` answers correctly is `u_j . h + b_j`: a linear map of
//! limited rank, shared structure across candidates (RouteLLM's `w2 . (v_j * (W1 x))` is the
//! same model with `u_j = w2 * v_j`). Trained with binary cross-entropy on the logits and Adam
//! (the SDK's [`routereval_sdk::nn`], no activation between the two layers), cosine learning
//! rate, shuffled mini-batches. Choice: the argmax of the logits; belief: their softmax. The
//! validation split is not used.
//!
//! Cheaper than MLPR (`rank x (d + m)` parameters), and with a small rank it cannot memorise
//! per-candidate noise on small pools.
//!
//! ## Hyperparameters
//!
//! | key | default | meaning |
//! |-----|---------|---------|
//! | `rank` | 64 | dimension of the query projection and the candidate embeddings |
//! | `lr` | 0.001 | base learning rate |
//! | `epochs` | 20 | passes over the training split |
//! | `batch` | 32 | queries per step |
//! | `seed` | the run's | the initialisation and the shuffles |

use routereval_sdk::nn::{NnDefaults, NnRouter};
use routereval_sdk::{Params, Queries, Router, RouterError, Routing, Split};

/// The defaults.
pub const DEFAULTS: NnDefaults = NnDefaults {
    lr: 1e-3,
    epochs: 20,
    batch: 32,
    factored: true,
    hidden: Some((64, 1)),
};

/// The MF router. See the crate docs.
#[derive(Clone, Debug)]
pub struct Mf(NnRouter);

impl Router for Mf {
    fn new(params: &Params) -> Result<Self, RouterError> {
        NnRouter::from_params(params, DEFAULTS).map(Mf)
    }

    fn fit(&mut self, train: &Split<'_>, _val: &Split<'_>) -> Result<(), RouterError> {
        self.0.fit(train)
    }

    fn route(&self, queries: &Queries<'_>) -> Result<Routing, RouterError> {
        self.0.route(queries)
    }
}

/// The router's card: its name, summary and parameters with their defaults, read by
/// `export_router!`, the engine's registry and `routereval-engine routers`.
impl routereval_sdk::Describe for Mf {
    const ABOUT: routereval_sdk::About = routereval_sdk::About {
        name: "mf",
        summary: "matrix factorisation: projected query times a learned embedding per candidate, BCE + Adam (RouteLLM's MF, m candidates); not in the default run",
        params: &[
            routereval_sdk::ParamDoc {
                key: "rank",
                default: "64",
                doc: "embedding rank",
            },
            routereval_sdk::ParamDoc {
                key: "lr",
                default: "0.001",
                doc: "Adam learning rate",
            },
            routereval_sdk::ParamDoc {
                key: "epochs",
                default: "20",
                doc: "passes over the training split",
            },
            routereval_sdk::ParamDoc {
                key: "batch",
                default: "32",
                doc: "queries per step",
            },
        ],
    };
}

routereval_sdk::export_router!(Mf, about);

#[cfg(test)]
mod tests {
    use super::*;
    use routereval_sdk::{Rng, Texts};

    /// Two kinds of query; candidate 0 is right on the first kind, candidate 1 on the second,
    /// candidate 2 never: the factorised model routes every query to its right candidate, and
    /// `rank` is a parameter (`hidden` is not).
    #[test]
    fn it_learns_which_candidate_suits_which_query() {
        let mut rng = Rng::new(3);
        let (n, d, m) = (300, 6, 3);
        let mut x = Vec::new();
        let mut y = Vec::new();
        for i in 0..n {
            let kind = i % 2;
            for k in 0..d {
                let centre = if k == kind { 2.0 } else { 0.0 };
                x.push((centre + 0.3 * rng.normal()) as f32);
            }
            y.extend((0..m).map(|j| f32::from(u8::from(j == kind))));
        }
        let names: Vec<String> = (0..m).map(|j| format!("m{j}")).collect();
        let q = Queries::new(n, d, &x, Texts::EMPTY).unwrap();
        let train = Split::new(q, &y, &names).unwrap();
        let mut r = Mf::new(&Params::parse("rank=4,lr=0.01", 1).unwrap()).unwrap();
        r.fit(&train, &train).unwrap();
        let routing = r.route(&q).unwrap();
        let choices = routing.choices().unwrap();
        for (i, &c) in choices.iter().enumerate() {
            assert_eq!(c as usize, i % 2, "query {i}");
        }
        assert!(Mf::new(&Params::parse("hidden=4", 1).unwrap()).is_err());
        assert!(Mf::new(&Params::parse("rank=0", 1).unwrap()).is_err());
    }
}
