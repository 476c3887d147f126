//! Small dense networks trained with binary cross-entropy and Adam (LinearR, MLPR, MF): the
//! networks and their training are `routereval-kernels`' (re-exported here, see [`Mlp`]); this
//! module adds [`NnRouter`], a router made of one.

pub use routereval_kernels::nn::*;

use crate::Rng;

/// A router that is an [`Mlp`] predicting each candidate's correctness (RouterEval's LinearR
/// and MLPR): trained by [`Mlp::train_bce`] on the training split's scores (TruthfulQA: the
/// labels the engine passes), the validation split unused as in RouterEval; the choice is the
/// argmax of the logits (the first on ties), the belief their softmax.
#[derive(Clone, Debug)]
pub struct NnRouter {
    hidden: Vec<usize>,
    factored: bool,
    opts: TrainOptions,
    seed: u64,
    net: Option<Mlp>,
}

/// The defaults of an [`NnRouter`], and whether its hidden layers can be set.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NnDefaults {
    /// Learning rate.
    pub lr: f64,
    /// Epochs.
    pub epochs: usize,
    /// Batch size.
    pub batch: usize,
    /// Hidden layers (`None`: a linear model, no `hidden` / `layers` parameters).
    pub hidden: Option<(usize, usize)>,
    /// No ReLU between the layers ([`Mlp::new_factored`]): with one hidden layer of width `r`,
    /// a matrix factorisation of rank `r`.
    pub factored: bool,
}

impl NnRouter {
    /// From the router's parameters: `lr`, `epochs`, `batch`, and with hidden layers `hidden`
    /// (width) and `layers` (how many), or for a factored model `rank`; `seed` seeds the
    /// initialisation and the shuffles.
    ///
    /// # Errors
    /// An unknown key or a value out of range.
    pub fn from_params(
        params: &crate::Params,
        defaults: NnDefaults,
    ) -> Result<NnRouter, crate::RouterError> {
        use crate::RouterError::InvalidParams;
        let keys: &[&str] = match (defaults.hidden.is_some(), defaults.factored) {
            (true, true) => &["lr", "epochs", "batch", "rank"],
            (true, false) => &["lr", "epochs", "batch", "hidden", "layers"],
            (false, _) => &["lr", "epochs", "batch"],
        };
        params.expect_only(keys)?;
        let lr = params.f64_or("lr", defaults.lr)?;
        if !(lr > 0.0 && lr.is_finite()) {
            return Err(InvalidParams(format!("`lr` must be positive, got {lr}")));
        }
        let epochs = params.usize_or("epochs", defaults.epochs)?;
        let batch = params.usize_or("batch", defaults.batch)?;
        if batch == 0 {
            return Err(InvalidParams("`batch` must be at least 1".into()));
        }
        let hidden = match defaults.hidden {
            None => Vec::new(),
            Some((width, layers)) => {
                let key = if defaults.factored { "rank" } else { "hidden" };
                let width = params.usize_or(key, width)?;
                let layers = if defaults.factored {
                    layers
                } else {
                    params.usize_or("layers", layers)?
                };
                if width == 0 {
                    return Err(InvalidParams(format!("`{key}` must be at least 1")));
                }
                vec![width; layers]
            }
        };
        Ok(NnRouter {
            hidden,
            factored: defaults.factored,
            opts: TrainOptions {
                lr: lr as f32,
                epochs,
                batch,
                adam: Adam::default(),
            },
            seed: params.seed(),
            net: None,
        })
    }

    /// The trained network, after `fit`.
    pub fn network(&self) -> Option<&Mlp> {
        self.net.as_ref()
    }

    /// Trains on the training split.
    ///
    /// # Errors
    /// An empty training split.
    pub fn fit(&mut self, train: &crate::Split<'_>) -> Result<(), crate::RouterError> {
        if train.is_empty() || train.num_candidates() == 0 {
            return Err(crate::RouterError::InvalidInput(
                "the training split is empty".into(),
            ));
        }
        let mut widths = vec![train.dim()];
        widths.extend(&self.hidden);
        widths.push(train.num_candidates());
        let mut rng = Rng::new(self.seed);
        let mut net = if self.factored {
            Mlp::new_factored(&widths, &mut rng)
        } else {
            Mlp::new(&widths, &mut rng)
        };
        net.train_bce(
            train.embeddings(),
            train.scores(),
            train.len(),
            &self.opts,
            &mut rng,
        );
        self.net = Some(net);
        Ok(())
    }

    /// Routes: argmax and softmax of the logits.
    ///
    /// # Errors
    /// Before `fit`, or queries of another dimension.
    pub fn route(
        &self,
        queries: &crate::Queries<'_>,
    ) -> Result<crate::Routing, crate::RouterError> {
        let net = self
            .net
            .as_ref()
            .ok_or_else(|| crate::RouterError::Route("route called before fit".into()))?;
        queries.expect_dim(net.inputs())?;
        let n = queries.len();
        crate::Routing::from_logits(n, net.outputs(), net.logits(queries.embeddings(), n))
    }
}
