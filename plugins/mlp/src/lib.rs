//! # routereval-plugin-mlp
//!
//! RouterEval's **MLPR** baseline (`router/MLPR_LinearR`, `--model FNN`): an MLP
//! `d -> 256 -> ReLU -> 256 -> ReLU -> m` maps a query's embedding to a logit per candidate,
//! trained to predict each candidate's correctness with binary cross-entropy on the logits and
//! Adam (betas 0.9 / 0.999, eps 1e-8, no weight decay), the learning rate decayed by a cosine
//! over all iterations, shuffled mini-batches. Choice: the argmax of the logits; belief: their
//! softmax. The validation split is not used (as in RouterEval). The training is
//! [`routereval_sdk::nn`]'s.
//!
//! ## Hyperparameters
//!
//! | key | default | meaning |
//! |-----|---------|---------|
//! | `lr` | 0.0001 | base learning rate (RouterEval's `--lr 0.0001`) |
//! | `epochs` | 100 | passes over the training split (`--epoch 100`) |
//! | `batch` | 1 | queries per step (`--train-batch 1`) |
//! | `hidden` | 256 | width of each hidden layer (`--hidden_size 256`) |
//! | `layers` | 2 | hidden layers |
//! | `seed` | the run's | the initialisation and the shuffles |
//!
//! With RouterEval's settings a fit is `100 x queries x parameters` Adam updates (about 263,000
//! parameters plus 257 per candidate): minutes on the largest benchmarks.

use routereval_sdk::nn::{NnDefaults, NnRouter};
use routereval_sdk::{Params, Queries, Router, RouterError, Routing, Split};

/// RouterEval's settings.
pub const DEFAULTS: NnDefaults = NnDefaults {
    lr: 1e-4,
    epochs: 100,
    batch: 1,
    factored: false,
    hidden: Some((256, 2)),
};

/// MLPR. See the crate docs.
#[derive(Clone, Debug)]
pub struct Mlp(NnRouter);

impl Router for Mlp {
    fn new(params: &Params) -> Result<Self, RouterError> {
        NnRouter::from_params(params, DEFAULTS).map(Mlp)
    }

    fn fit(&mut self, train: &Split<'_>, _val: &Split<'_>) -> Result<(), RouterError> {
        self.0.fit(train)
    }

    fn route(&self, queries: &Queries<'_>) -> Result<Routing, RouterError> {
        self.0.route(queries)
    }
}

routereval_sdk::export_router!(Mlp, name = "mlp");
