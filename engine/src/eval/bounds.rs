//! Reference bounds, computed by the engine from the test scores (routers never see those).
//!
//! - **oracle**: picks a best model for every query; its belief is `S_i / sum_j S_ij` (uniform
//!   where the row is all zero).
//! - **random**: picks uniformly; `mu` is the mean of `S`, the belief uniform, `Ep = log2 m`.
//! - **r_o(p)**: the oracle with probability `p`, else random. RouterEval estimates its `mu` with
//!   1000 Monte-Carlo draws; here it is the exact expectation
//!   `p * oracle_mu + (1 - p) * random_mu`, and `Ep` is that of the mixture belief
//!   `p * oracle + (1 - p) * uniform`.
//!
//! All are pure functions.

use std::fmt;

use crate::data::Matrix;
use crate::eval::metrics::{Metrics, best_single, entropy, v_b, v_r};

/// The names the reference bounds are known by (no router may take them).
pub const BOUND_NAMES: [&str; 3] = ["oracle", "random", "r_o"];

/// A reference bound.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Bound {
    /// The best model per query.
    Oracle,
    /// A uniformly random model per query.
    Random,
    /// The oracle with probability `p`, else random.
    OracleMix(f64),
}

impl Bound {
    /// The bound's label: `oracle`, `random` or `r_o:p=<p>`.
    pub fn label(&self) -> String {
        match self {
            Bound::Oracle => "oracle".into(),
            Bound::Random => "random".into(),
            Bound::OracleMix(p) => format!("r_o:p={p}"),
        }
    }

    /// The oracle weight: 1 for the oracle, 0 for random, `p` for the mixture.
    pub fn oracle_weight(&self) -> f64 {
        match self {
            Bound::Oracle => 1.0,
            Bound::Random => 0.0,
            Bound::OracleMix(p) => *p,
        }
    }

    /// The bound `name` with `params` (`oracle`, `random`, `r_o` with `p`), or `None` when
    /// `name` is not a bound's.
    ///
    /// # Errors
    /// Parameters a bound does not take, or `p` outside [0, 1].
    pub fn parse(name: &str, params: &routereval_sdk::Params) -> Result<Option<Bound>, String> {
        match name {
            "oracle" | "random" => {
                params.expect_only(&[]).map_err(|e| e.to_string())?;
                Ok(Some(if name == "oracle" {
                    Bound::Oracle
                } else {
                    Bound::Random
                }))
            }
            "r_o" => {
                params.expect_only(&["p"]).map_err(|e| e.to_string())?;
                let p = params.f64_or("p", 0.5).map_err(|e| e.to_string())?;
                if !(0.0..=1.0).contains(&p) {
                    return Err(format!("`p` must be in [0, 1], got {p}"));
                }
                Ok(Some(Bound::OracleMix(p)))
            }
            _ => Ok(None),
        }
    }

    /// The bound's metrics on `test`.
    pub fn evaluate(&self, test: &Matrix<f64>, acc_ref: Option<f64>) -> Metrics {
        mixture(test, acc_ref, self.oracle_weight())
    }

    /// The bound's expected score on each test query (its `mu` is their mean up to rounding):
    /// the row's best score for the oracle, its mean for random, `p * best + (1 - p) * mean`
    /// for the mixture.
    pub fn per_query(&self, test: &Matrix<f64>) -> Vec<f64> {
        let p = self.oracle_weight();
        (0..test.rows())
            .map(|i| {
                let row = test.row(i);
                let best = row.iter().copied().fold(0.0, f64::max);
                let mean = row.iter().sum::<f64>() / row.len().max(1) as f64;
                if p == 1.0 {
                    best
                } else if p == 0.0 {
                    mean
                } else {
                    p * best + (1.0 - p) * mean
                }
            })
            .collect()
    }
}

impl fmt::Display for Bound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label())
    }
}

/// `mu` of the oracle: `mean_i max_j S_ij`.
pub fn oracle_mu(test: &Matrix<f64>) -> f64 {
    test.mean_row_max()
}

/// `mu` of random routing: the mean of all scores.
pub fn random_mu(test: &Matrix<f64>) -> f64 {
    test.mean()
}

/// The mixture belief `p * oracle + (1 - p) * uniform`, `N x m`, in f64.
pub fn mixture_belief(test: &Matrix<f64>, p: f64) -> Vec<f64> {
    let m = test.cols();
    let u = 1.0 / m as f64;
    let mut out = Vec::with_capacity(test.rows() * m);
    for i in 0..test.rows() {
        let row = test.row(i);
        let sum: f64 = row.iter().sum();
        for &s in row {
            let oracle = if sum > 0.0 { s / sum } else { u };
            out.push(p * oracle + (1.0 - p) * u);
        }
    }
    out
}

/// Metrics of the oracle / random mixture with oracle weight `p` (1 = oracle, 0 = random).
pub fn mixture(test: &Matrix<f64>, acc_ref: Option<f64>, p: f64) -> Metrics {
    let mu = if p == 1.0 {
        oracle_mu(test)
    } else if p == 0.0 {
        random_mu(test)
    } else {
        p * oracle_mu(test) + (1.0 - p) * random_mu(test)
    };
    let ep = if p == 0.0 {
        (test.cols() as f64).log2()
    } else {
        entropy(&mixture_belief(test, p), test.cols())
    };
    Metrics {
        mu,
        vr: v_r(mu, acc_ref),
        vb: v_b(mu, best_single(test)),
        ep,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn bounds_by_hand() {
        // S = [[1,0],[1,1],[0,0]]: oracle picks 1,1,0 -> 2/3; random = 3/6; best single 2/3.
        let s = Matrix::new(3, 2, vec![1., 0., 1., 1., 0., 0.]);
        let o = Bound::Oracle.evaluate(&s, Some(0.5));
        assert!(close(o.mu, 2.0 / 3.0) && close(o.vr.unwrap(), 4.0 / 3.0));
        assert!(close(o.vb.unwrap(), 1.0));
        // Oracle beliefs: (1,0) -> 0 bits, (.5,.5) -> 1 bit, all-zero row -> uniform, 1 bit.
        assert!(close(o.ep, 2.0 / 3.0));
        let r = Bound::Random.evaluate(&s, None);
        assert!(close(r.mu, 0.5) && close(r.ep, 1.0));
        let h = Bound::OracleMix(0.5).evaluate(&s, None);
        assert!(close(h.mu, 0.5 * (2.0 / 3.0) + 0.25));
        // Row 0's mixture is (0.75, 0.25); rows 1 and 2 stay uniform.
        let row0 = -(0.75f64 * 0.75f64.log2() + 0.25 * 0.25f64.log2());
        assert!(close(h.ep, (row0 + 2.0) / 3.0));
        assert_eq!(Bound::OracleMix(0.5).label(), "r_o:p=0.5");
    }
}
