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

/// The router's card: its name, summary and parameters with their defaults, read by
/// `export_router!`, the engine's registry and `routereval-engine routers`.
impl routereval_sdk::Describe for Mlp {
    const ABOUT: routereval_sdk::About = routereval_sdk::About {
        name: "mlp",
        summary: "d-256-256-m ReLU network predicting each candidate's correctness, BCE + Adam, cosine lr (RouterEval's MLPR); not in the default run: minutes per pool",
        params: &[
            routereval_sdk::ParamDoc {
                key: "lr",
                default: "0.0001",
                doc: "Adam learning rate",
            },
            routereval_sdk::ParamDoc {
                key: "epochs",
                default: "100",
                doc: "passes over the training split",
            },
            routereval_sdk::ParamDoc {
                key: "batch",
                default: "1",
                doc: "queries per step",
            },
            routereval_sdk::ParamDoc {
                key: "hidden",
                default: "256",
                doc: "width of each hidden layer",
            },
            routereval_sdk::ParamDoc {
                key: "layers",
                default: "2",
                doc: "hidden layers",
            },
        ],
    };
}

routereval_sdk::export_router!(Mlp, about);

#[cfg(test)]
mod tests {
    use super::*;
    use routereval_sdk::{Rng, Texts};

    /// XOR: candidate 0 answers the queries whose two coordinates have the same sign, candidate
    /// 1 the others. No linear model separates them; the MLP must.
    fn xor(rng: &mut Rng, n: usize) -> (Vec<f32>, Vec<f32>, Vec<usize>) {
        let (mut x, mut y, mut kinds) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..n {
            let (a, b) = (rng.normal() as f32, rng.normal() as f32);
            let (a, b) = (a + a.signum() * 0.3, b + b.signum() * 0.3);
            let kind = usize::from((a > 0.0) != (b > 0.0));
            x.extend([a, b]);
            y.extend([
                f32::from(u8::from(kind == 0)),
                f32::from(u8::from(kind == 1)),
            ]);
            kinds.push(kind);
        }
        (x, y, kinds)
    }

    #[test]
    fn it_learns_a_rule_no_linear_router_can() {
        let mut rng = Rng::new(7);
        let names = vec!["same".to_string(), "differ".to_string()];
        let (x, y, _) = xor(&mut rng, 400);
        let q = Queries::new(400, 2, &x, Texts::EMPTY).unwrap();
        let train = Split::new(q, &y, &names).unwrap();
        let mut r = Mlp::new(&Params::parse("hidden=32,lr=0.01,epochs=60", 1).unwrap()).unwrap();
        r.fit(&train, &train).unwrap();
        let (tx, _, kinds) = xor(&mut rng, 200);
        let tq = Queries::new(200, 2, &tx, Texts::EMPTY).unwrap();
        let right = |r: &Mlp| {
            r.route(&tq)
                .unwrap()
                .choices()
                .unwrap()
                .iter()
                .zip(&kinds)
                .filter(|&(&c, &k)| c as usize == k)
                .count()
        };
        let got = right(&r);
        assert!(got >= 190, "{got} of 200 unseen XOR queries routed right");
        // The same network without hidden layers (LinearR's) cannot beat a coin by much.
        let mut flat = Mlp::new(&Params::parse("layers=0,lr=0.01,epochs=60", 1).unwrap())
            .expect("layers=0 is LinearR's network");
        flat.fit(&train, &train).unwrap();
        let got = right(&flat);
        assert!(
            got < 150,
            "a linear router got {got} of 200 XOR queries right"
        );
    }

    #[test]
    fn its_parameters_are_checked() {
        assert!(Mlp::new(&Params::parse("hidden=0", 1).unwrap()).is_err());
        assert!(Mlp::new(&Params::parse("rank=4", 1).unwrap()).is_err());
        assert!(
            Mlp::new(&Params::parse("epochs=1,batch=8,hidden=16,layers=1", 1).unwrap()).is_ok()
        );
    }
}
