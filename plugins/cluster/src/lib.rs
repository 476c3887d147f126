//! # routereval-plugin-cluster
//!
//! RouterEval's **cluster router** (`router/C-RoBERTa-cluster/cluster.py`): k-means over the
//! training queries' embeddings, and for each cluster the candidate with the best mean training
//! score.
//!
//! - **Clustering**, as scikit-learn's `KMeans(n_clusters=k, random_state=seed)` does it:
//!   greedy k-means++ seeding (the first centre a uniformly random query; each next one the best,
//!   by the resulting sum of squared distances, of `2 + floor(ln k)` queries sampled with
//!   probability proportional to their squared distance to the nearest centre), then Lloyd
//!   iterations until the centres move less than `tol x` the mean per-feature variance (sum of
//!   squared shifts) or `iters` is reached. A cluster left empty keeps its centre. Distances
//!   are Euclidean, accumulated in f64.
//! - **Choice**: the best candidate of the query's nearest cluster. A cluster that no training
//!   query fell into gets the candidate best on the whole training split (RouterEval skips such
//!   test queries when it averages, which biases its mu; it cannot happen with its data).
//! - **Belief**: the inverse-distance cluster probabilities `(1 / (d_c + 1e-10))` normalised,
//!   summed into each cluster's chosen candidate (so the choice is not always the belief's
//!   argmax: this router decides by rule, as RouterEval's does).
//!
//! The validation split is not used (as in RouterEval).
//!
//! ## Hyperparameters
//!
//! | key | default | meaning |
//! |-----|---------|---------|
//! | `k` | 3 | clusters (RouterEval's `--numcluster 3`) |
//! | `iters` | 300 | Lloyd iterations at most (scikit-learn's `max_iter`) |
//! | `tol` | 0.0001 | relative tolerance (scikit-learn's `tol`) |
//! | `seed` | the run's | the k-means++ draws |

use routereval_sdk::{Params, Queries, Rng, Router, RouterError, Routing, Split, argmax};

/// RouterEval's number of clusters.
pub const DEFAULT_K: usize = 3;

/// The cluster router. See the crate docs.
#[derive(Clone, Debug)]
pub struct Cluster {
    k: usize,
    iters: usize,
    tol: f64,
    seed: u64,
    dim: usize,
    m: usize,
    /// `k x dim` centres.
    centres: Vec<f64>,
    /// The candidate of each cluster.
    best: Vec<usize>,
}

/// Squared Euclidean distance of an f32 point to an f64 centre.
fn dist2(x: &[f32], c: &[f64]) -> f64 {
    let mut acc = [0.0f64; 4];
    let chunks = x.len() / 4;
    for i in 0..chunks {
        for l in 0..4 {
            let d = f64::from(x[4 * i + l]) - c[4 * i + l];
            acc[l] += d * d;
        }
    }
    let mut tail = 0.0;
    for i in chunks * 4..x.len() {
        let d = f64::from(x[i]) - c[i];
        tail += d * d;
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

/// The nearest centre and its squared distance (the first on ties).
fn nearest(x: &[f32], centres: &[f64], dim: usize) -> (usize, f64) {
    let mut best = (0, f64::INFINITY);
    for (c, centre) in centres.chunks_exact(dim).enumerate() {
        let d = dist2(x, centre);
        if d < best.1 {
            best = (c, d);
        }
    }
    best
}

/// k-means on `n x dim` points: returns the `k x dim` centres.
pub fn kmeans(
    x: &[f32],
    n: usize,
    dim: usize,
    k: usize,
    iters: usize,
    tol: f64,
    rng: &mut Rng,
) -> Vec<f64> {
    let point = |i: usize| &x[i * dim..(i + 1) * dim];
    let to_f64 = |i: usize| point(i).iter().map(|&v| f64::from(v)).collect::<Vec<f64>>();
    // k-means++ (greedy, scikit-learn's number of local trials).
    let trials = 2 + (k as f64).ln().floor() as usize;
    let mut centres = to_f64(rng.below(n as u64) as usize);
    let mut closest: Vec<f64> = (0..n).map(|i| dist2(point(i), &centres)).collect();
    for _ in 1..k {
        let total: f64 = closest.iter().sum();
        let mut best: Option<(f64, usize, Vec<f64>)> = None;
        for _ in 0..trials {
            // Sample a query with probability proportional to its squared distance.
            let target = rng.next_f64() * total;
            let mut acc = 0.0;
            let mut pick = n - 1;
            for (i, &d) in closest.iter().enumerate() {
                acc += d;
                if acc > target {
                    pick = i;
                    break;
                }
            }
            let cand = to_f64(pick);
            let updated: Vec<f64> = (0..n)
                .map(|i| closest[i].min(dist2(point(i), &cand)))
                .collect();
            let potential: f64 = updated.iter().sum();
            if best.as_ref().is_none_or(|(p, _, _)| potential < *p) {
                best = Some((potential, pick, updated));
            }
        }
        let (_, pick, updated) = best.expect("at least one trial");
        centres.extend(to_f64(pick));
        closest = updated;
    }
    // scikit-learn's tolerance: tol times the mean of the per-feature variances.
    let mut mean = vec![0.0f64; dim];
    for i in 0..n {
        for (m, &v) in mean.iter_mut().zip(point(i)) {
            *m += f64::from(v);
        }
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    let mut var = 0.0;
    for i in 0..n {
        for (m, &v) in mean.iter().zip(point(i)) {
            let d = f64::from(v) - m;
            var += d * d;
        }
    }
    let threshold = tol * var / (n as f64 * dim as f64);
    let mut labels = vec![usize::MAX; n];
    for _ in 0..iters {
        let mut changed = false;
        for (i, label) in labels.iter_mut().enumerate() {
            let (c, _) = nearest(point(i), &centres, dim);
            changed |= *label != c;
            *label = c;
        }
        let mut sums = vec![0.0f64; k * dim];
        let mut counts = vec![0usize; k];
        for (i, &c) in labels.iter().enumerate() {
            counts[c] += 1;
            for (s, &v) in sums[c * dim..(c + 1) * dim].iter_mut().zip(point(i)) {
                *s += f64::from(v);
            }
        }
        let mut shift = 0.0;
        for c in 0..k {
            if counts[c] == 0 {
                continue; // an empty cluster keeps its centre
            }
            for d in 0..dim {
                let new = sums[c * dim + d] / counts[c] as f64;
                let delta = new - centres[c * dim + d];
                shift += delta * delta;
                centres[c * dim + d] = new;
            }
        }
        if !changed || shift <= threshold {
            break;
        }
    }
    centres
}

impl Router for Cluster {
    fn new(params: &Params) -> Result<Self, RouterError> {
        params.expect_only(&["k", "iters", "tol"])?;
        let k = params.usize_or("k", DEFAULT_K)?;
        let iters = params.usize_or("iters", 300)?;
        let tol = params.f64_or("tol", 1e-4)?;
        if k == 0 {
            return Err(RouterError::InvalidParams("`k` must be at least 1".into()));
        }
        if !(tol >= 0.0 && tol.is_finite()) {
            return Err(RouterError::InvalidParams(format!(
                "`tol` must be a non-negative number, got {tol}"
            )));
        }
        Ok(Cluster {
            k,
            iters,
            tol,
            seed: params.seed(),
            dim: 0,
            m: 0,
            centres: Vec::new(),
            best: Vec::new(),
        })
    }

    fn fit(&mut self, train: &Split<'_>, _val: &Split<'_>) -> Result<(), RouterError> {
        let (n, dim, m) = (train.len(), train.dim(), train.num_candidates());
        if n == 0 || m == 0 {
            return Err(RouterError::InvalidInput(
                "the training split is empty".into(),
            ));
        }
        if self.k > n {
            return Err(RouterError::InvalidParams(format!(
                "`k` = {} exceeds the {n} training queries",
                self.k
            )));
        }
        let mut rng = Rng::new(self.seed);
        let x = train.embeddings();
        self.centres = kmeans(x, n, dim, self.k, self.iters, self.tol, &mut rng);
        // The best candidate per cluster by mean training score; the overall best for a cluster
        // no training query fell into.
        let overall = argmax(&train.candidate_means()).unwrap_or(0);
        let mut sums = vec![0.0f64; self.k * m];
        let mut counts = vec![0usize; self.k];
        for i in 0..n {
            let (c, _) = nearest(&x[i * dim..(i + 1) * dim], &self.centres, dim);
            counts[c] += 1;
            for (s, &v) in sums[c * m..(c + 1) * m].iter_mut().zip(train.score_row(i)) {
                *s += f64::from(v);
            }
        }
        self.best = (0..self.k)
            .map(|c| {
                if counts[c] == 0 {
                    overall
                } else {
                    argmax(&sums[c * m..(c + 1) * m]).unwrap_or(overall)
                }
            })
            .collect();
        (self.dim, self.m) = (dim, m);
        Ok(())
    }

    fn route(&self, queries: &Queries<'_>) -> Result<Routing, RouterError> {
        if self.best.is_empty() {
            return Err(RouterError::Route("route called before fit".into()));
        }
        queries.expect_dim(self.dim)?;
        let (n, m, dim) = (queries.len(), self.m, self.dim);
        let mut belief = vec![0.0f32; n * m];
        let mut choices = Vec::with_capacity(n);
        let mut inv = vec![0.0f64; self.k];
        let mut row = vec![0.0f64; m];
        for i in 0..n {
            let q = queries.embedding(i);
            let mut near = (0, f64::INFINITY);
            for (c, centre) in self.centres.chunks_exact(dim).enumerate() {
                let d = dist2(q, centre);
                if d < near.1 {
                    near = (c, d);
                }
                inv[c] = 1.0 / (d.sqrt() + 1e-10);
            }
            choices.push(self.best[near.0] as u32);
            let total: f64 = inv.iter().sum();
            row.fill(0.0);
            for (c, &w) in inv.iter().enumerate() {
                row[self.best[c]] += w / total;
            }
            for (b, &p) in belief[i * m..(i + 1) * m].iter_mut().zip(&row) {
                *b = p as f32;
            }
        }
        Routing::from_belief(n, m, belief)?.with_choices(choices)
    }
}

/// The router's card: its name, summary and parameters with their defaults, read by
/// `export_router!`, the engine's registry and `routereval-engine routers`.
impl routereval_sdk::Describe for Cluster {
    const ABOUT: routereval_sdk::About = routereval_sdk::About {
        name: "cluster",
        summary: "k-means (k-means++) over the training embeddings; the best candidate of the nearest cluster (RouterEval's C-RoBERTa cluster router)",
        params: &[
            routereval_sdk::ParamDoc {
                key: "k",
                default: "3",
                doc: "clusters",
            },
            routereval_sdk::ParamDoc {
                key: "iters",
                default: "300",
                doc: "most Lloyd iterations",
            },
            routereval_sdk::ParamDoc {
                key: "tol",
                default: "0.0001",
                doc: "relative shift of the centres that stops them",
            },
        ],
    };
}

routereval_sdk::export_router!(Cluster, about);

#[cfg(test)]
mod tests {
    use super::*;

    /// Three blobs far apart in 8 dimensions; candidate c is right exactly on blob c (and
    /// candidate 3 never).
    fn blobs(n_per: usize, seed: u64) -> (Vec<f32>, Vec<f32>, Vec<usize>) {
        let mut rng = Rng::new(seed);
        let (dim, m) = (8, 4);
        let (mut x, mut y, mut blob) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..3 * n_per {
            let b = i % 3;
            for d in 0..dim {
                let centre = if d == b { 10.0 } else { 0.0 };
                x.push((centre + rng.normal()) as f32);
            }
            for c in 0..m {
                y.push(f32::from(u8::from(c == b)));
            }
            blob.push(b);
        }
        (x, y, blob)
    }

    #[test]
    fn blobs_are_found_and_each_gets_its_candidate() {
        let (x, y, blob) = blobs(40, 1);
        let n = blob.len();
        let names: Vec<String> = (0..4).map(|c| format!("m{c}")).collect();
        let queries = Queries::new(n, 8, &x, routereval_sdk::Texts::EMPTY).unwrap();
        let train = Split::new(queries, &y, &names).unwrap();
        let mut r = Cluster::new(&Params::new(7)).unwrap();
        r.fit(&train, &train).unwrap();
        let routing = r.route(&queries).unwrap();
        // Independent oracle: the right candidate of each query is its blob's.
        let choices = routing.choices().unwrap();
        for (i, &b) in blob.iter().enumerate() {
            assert_eq!(choices[i] as usize, b, "query {i}");
        }
        for row in routing.belief().chunks(4) {
            let sum: f32 = row.iter().sum();
            assert!((sum - 1.0).abs() < 1e-5);
            assert_eq!(row[3], 0.0, "no cluster chose candidate 3");
        }
    }

    #[test]
    fn kmeans_converges_to_the_blob_means() {
        let (x, _, blob) = blobs(50, 2);
        let n = blob.len();
        let centres = kmeans(&x, n, 8, 3, 300, 1e-4, &mut Rng::new(3));
        for b in 0..3 {
            // The mean of blob b, computed directly.
            let members: Vec<usize> = (0..n).filter(|&i| blob[i] == b).collect();
            let mean: Vec<f64> = (0..8)
                .map(|d| {
                    members
                        .iter()
                        .map(|&i| f64::from(x[i * 8 + d]))
                        .sum::<f64>()
                        / members.len() as f64
                })
                .collect();
            let found = centres
                .chunks(8)
                .any(|c| c.iter().zip(&mean).all(|(a, b)| (a - b).abs() < 1e-9));
            assert!(found, "blob {b}'s mean is not a centre");
        }
    }

    #[test]
    fn bad_parameters_are_refused() {
        assert!(Cluster::new(&Params::parse("k=0", 0).unwrap()).is_err());
        assert!(Cluster::new(&Params::parse("clusters=3", 0).unwrap()).is_err());
    }
}
