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

routereval_sdk::export_router!(Linear, name = "linear");
