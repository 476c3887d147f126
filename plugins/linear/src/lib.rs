//! # routereval-plugin-linear
//!
//! RouterEval's **LinearR** baseline (`router/MLPR_LinearR`, `--model linear`): one linear layer
//! maps a query's embedding to a logit per candidate, trained to predict each candidate's
//! correctness with binary cross-entropy on the logits and Adam (betas 0.9 / 0.999, eps 1e-8,
//! no weight decay), the learning rate decayed by a cosine over all iterations, shuffled
//! mini-batches. Choice: the argmax of the logits; belief: their softmax. The validation split
//! is not used (as in RouterEval). The training is [`routereval_sdk::nn`]'s.
//!
//! ## Hyperparameters
//!
//! | key | default | meaning |
//! |-----|---------|---------|
//! | `lr` | 0.01 | base learning rate (RouterEval's `--lr 0.01`) |
//! | `epochs` | 10 | passes over the training split (`--epoch 10`) |
//! | `batch` | 1 | queries per step (`--train-batch 1`) |
//! | `seed` | the run's | the initialisation and the shuffles |

use routereval_sdk::nn::{NnDefaults, NnRouter};
use routereval_sdk::{Params, Queries, Router, RouterError, Routing, Split};

/// RouterEval's settings.
pub const DEFAULTS: NnDefaults = NnDefaults {
    lr: 0.01,
    epochs: 10,
    batch: 1,
    factored: false,
    hidden: None,
};

/// LinearR. See the crate docs.
#[derive(Clone, Debug)]
pub struct Linear(NnRouter);

impl Router for Linear {
    fn new(params: &Params) -> Result<Self, RouterError> {
        NnRouter::from_params(params, DEFAULTS).map(Linear)
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
impl routereval_sdk::Describe for Linear {
    const ABOUT: routereval_sdk::About = routereval_sdk::About {
        name: "linear",
        summary: "a linear layer predicting each candidate's correctness, BCE + Adam, cosine lr (RouterEval's LinearR)",
        params: &[
            routereval_sdk::ParamDoc {
                key: "lr",
                default: "0.01",
                doc: "Adam learning rate",
            },
            routereval_sdk::ParamDoc {
                key: "epochs",
                default: "10",
                doc: "passes over the training split",
            },
            routereval_sdk::ParamDoc {
                key: "batch",
                default: "1",
                doc: "queries per step",
            },
        ],
    };
}

routereval_sdk::export_router!(Linear, about);

#[cfg(test)]
mod tests {
    use super::*;
    use routereval_sdk::{Rng, Texts};

    /// Queries of two kinds (which coordinate is large); candidate 0 answers the first kind,
    /// candidate 1 the second, candidate 2 neither.
    fn two_kinds(rng: &mut Rng, n: usize) -> (Vec<f32>, Vec<f32>) {
        let (d, m) = (4, 3);
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for i in 0..n {
            let kind = i % 2;
            for k in 0..d {
                let centre = if k == kind { 1.5 } else { 0.0 };
                x.push((centre + 0.4 * rng.normal()) as f32);
            }
            y.extend((0..m).map(|j| f32::from(u8::from(j == kind))));
        }
        (x, y)
    }

    /// Trained on one sample, it routes fresh queries of either kind to their candidate, with a
    /// belief that is a softmax (rows of positive values summing to 1, largest at the choice).
    #[test]
    fn it_routes_unseen_queries_to_the_candidate_that_suits_them() {
        let mut rng = Rng::new(11);
        let names: Vec<String> = (0..3).map(|j| format!("m{j}")).collect();
        let (x, y) = two_kinds(&mut rng, 200);
        let q = Queries::new(200, 4, &x, Texts::EMPTY).unwrap();
        let train = Split::new(q, &y, &names).unwrap();
        let mut r = Linear::new(&Params::parse("epochs=5", 1).unwrap()).unwrap();
        r.fit(&train, &train).unwrap();
        let (tx, _) = two_kinds(&mut rng, 100);
        let tq = Queries::new(100, 4, &tx, Texts::EMPTY).unwrap();
        let routing = r.route(&tq).unwrap();
        let choices = routing.choices().unwrap();
        let right = choices
            .iter()
            .enumerate()
            .filter(|&(i, &c)| c as usize == i % 2)
            .count();
        assert!(right >= 97, "{right} of 100 unseen queries routed right");
        for (i, row) in routing.belief().chunks(3).enumerate() {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
            assert!(row.iter().all(|&p| p > 0.0));
            let top = routereval_sdk::argmax(row);
            assert_eq!(top, Some(choices[i] as usize));
        }
    }

    /// The seed fixes the fit; another seed gives another (equally good) fit; unknown keys and
    /// the MLP's `hidden` are refused.
    #[test]
    fn the_seed_fixes_the_fit_and_unknown_keys_are_refused() {
        let mut rng = Rng::new(5);
        let names: Vec<String> = (0..3).map(|j| format!("m{j}")).collect();
        let (x, y) = two_kinds(&mut rng, 60);
        let q = Queries::new(60, 4, &x, Texts::EMPTY).unwrap();
        let train = Split::new(q, &y, &names).unwrap();
        let belief = |seed: u64| {
            let mut r = Linear::new(&Params::parse("epochs=2", seed).unwrap()).unwrap();
            r.fit(&train, &train).unwrap();
            r.route(&q).unwrap().belief().to_vec()
        };
        assert_eq!(belief(1), belief(1));
        assert_ne!(belief(1), belief(2));
        assert!(Linear::new(&Params::parse("hidden=8", 1).unwrap()).is_err());
        assert!(Linear::new(&Params::parse("lr=-1", 1).unwrap()).is_err());
    }
}
