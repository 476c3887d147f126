//! The benchmark's metrics, as pure functions of the test scores and a router's output.
//!
//! For test scores `S` (`N x m`) and a router's belief `P` (`N x m`):
//!
//! - `choice_i` = the router's explicit choice, else `argmax_j P_ij` (the first index on ties)
//! - `mu  = mean_i S[i, choice_i]`
//! - `V_R = mu / acc_ref(benchmark)`
//! - `V_B = mu / max_j mean_i S[i, j]` (the best single model of the pool, on test)
//! - `Ep  = -(1/N) sum_i sum_j P_ij log2 P_ij`, terms with `P_ij <= 1e-10` counting 0
//!
//! **Architecture invariant**: nothing here reads files, clocks, randomness or global state.

use routereval_kernels::argmax;

use crate::data::Matrix;

/// Belief values at or below this count 0 in the entropy, as in RouterEval.
pub const ENTROPY_FLOOR: f64 = 1e-10;

/// The four numbers reported per evaluation.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Metrics {
    /// Mean test score of the chosen candidates.
    pub mu: f64,
    /// `mu / acc_ref`; `None` when the benchmark has no reference accuracy.
    pub vr: Option<f64>,
    /// `mu / best single model`; `None` when every model scores 0 on test.
    pub vb: Option<f64>,
    /// Mean entropy of the belief rows, in bits.
    pub ep: f64,
}

/// The chosen candidate per query: `explicit` when given, else the argmax of each belief row.
pub fn choices(belief: &[f32], m: usize, explicit: Option<&[u32]>) -> Vec<usize> {
    match explicit {
        Some(c) => c.iter().map(|&c| c as usize).collect(),
        None => belief
            .chunks_exact(m)
            .map(|row| argmax(row).unwrap_or(0))
            .collect(),
    }
}

/// The test score of the chosen candidate for each query (`mu` is their mean).
pub fn per_query(test: &Matrix<f64>, choices: &[usize]) -> Vec<f64> {
    choices
        .iter()
        .enumerate()
        .map(|(i, &c)| test.get(i, c))
        .collect()
}

/// `mu`: the mean test score of the chosen candidates.
pub fn mu(test: &Matrix<f64>, choices: &[usize]) -> f64 {
    let n = test.rows();
    if n == 0 {
        return 0.0;
    }
    choices
        .iter()
        .enumerate()
        .map(|(i, &c)| test.get(i, c))
        .sum::<f64>()
        / n as f64
}

/// Mean test score of each candidate.
pub fn candidate_means(test: &Matrix<f64>) -> Vec<f64> {
    test.column_means()
}

/// The best single model's mean test score, `max_j mean_i S_ij`.
pub fn best_single(test: &Matrix<f64>) -> f64 {
    test.best_column().1
}

/// `V_R = mu / acc_ref`.
pub fn v_r(mu: f64, acc_ref: Option<f64>) -> Option<f64> {
    acc_ref.filter(|&a| a > 0.0).map(|a| mu / a)
}

/// `V_B = mu / best_single`; `None` when the best single model scores 0.
pub fn v_b(mu: f64, best_single: f64) -> Option<f64> {
    (best_single > 0.0).then(|| mu / best_single)
}

/// `Ep`: the mean over rows of the entropy (bits) of each `m`-long row of `belief`.
pub fn entropy<T: Copy + Into<f64>>(belief: &[T], m: usize) -> f64 {
    if m == 0 || belief.is_empty() {
        return 0.0;
    }
    let n = belief.len() / m;
    let total: f64 = belief
        .iter()
        .map(|&p| {
            let p: f64 = p.into();
            if p > ENTROPY_FLOOR {
                -p * p.log2()
            } else {
                0.0
            }
        })
        .sum();
    total / n as f64
}

/// All four metrics of one router output. `belief` must already be validated
/// (see [`crate::eval::validate`]).
pub fn evaluate(
    test: &Matrix<f64>,
    acc_ref: Option<f64>,
    belief: &[f32],
    explicit: Option<&[u32]>,
) -> Metrics {
    let m = test.cols();
    let c = choices(belief, m, explicit);
    let mu = mu(test, &c);
    Metrics {
        mu,
        vr: v_r(mu, acc_ref),
        vb: v_b(mu, best_single(test)),
        ep: entropy(belief, m),
    }
}

/// The mean of several evaluations (a table cell averages the pools' groups). `vr` / `vb` are
/// `None` when any input's is.
pub fn mean(items: &[Metrics]) -> Option<Metrics> {
    if items.is_empty() {
        return None;
    }
    let k = items.len() as f64;
    let avg = |f: &dyn Fn(&Metrics) -> Option<f64>| -> Option<f64> {
        items.iter().map(f).sum::<Option<f64>>().map(|s| s / k)
    };
    Some(Metrics {
        mu: items.iter().map(|x| x.mu).sum::<f64>() / k,
        vr: avg(&|x| x.vr),
        vb: avg(&|x| x.vb),
        ep: items.iter().map(|x| x.ep).sum::<f64>() / k,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    /// S = [[1,0,1],[0,0,1],[1,1,0],[0,0,0]]: candidate means 1/2, 1/4, 1/2; best single 1/2.
    fn scores() -> Matrix<f64> {
        Matrix::new(4, 3, vec![1., 0., 1., 0., 0., 1., 1., 1., 0., 0., 0., 0.])
    }

    #[test]
    fn mu_vb_vr_by_hand() {
        let s = scores();
        // argmax choices: row0 -> 1 (0.6), row1 -> 2, row2 -> 0, row3 -> 0 (tie, first index).
        let p = [
            0.2f32,
            0.6,
            0.2, //
            0.1,
            0.1,
            0.8, //
            0.5,
            0.25,
            0.25, //
            1.0 / 3.0,
            1.0 / 3.0,
            1.0 / 3.0,
        ];
        assert_eq!(choices(&p, 3, None), vec![1, 2, 0, 0]);
        let m = evaluate(&s, Some(0.8), &p, None);
        // S picks: 0, 1, 1, 0 -> mu = 2/4.
        assert!(close(m.mu, 0.5));
        assert!(close(m.vb.unwrap(), 1.0));
        assert!(close(m.vr.unwrap(), 0.625));
        // Explicit choices win over the argmax: 0, 2, 1, 2 -> 1 + 1 + 1 + 0 = 3/4.
        let m = evaluate(&s, None, &p, Some(&[0, 2, 1, 2]));
        assert!(close(m.mu, 0.75));
        assert_eq!(m.vr, None);
        assert!(close(m.vb.unwrap(), 1.5));
    }

    #[test]
    fn entropy_by_hand() {
        // Rows: uniform over 3 (log2 3), one-hot (0), (0.5, 0.5, 0) (1 bit), (0.5, 0.25, 0.25)
        // (1.5 bits).
        let p = [
            1.0 / 3.0,
            1.0 / 3.0,
            1.0 / 3.0,
            0.0,
            1.0,
            0.0,
            0.5,
            0.5,
            0.0,
            0.5,
            0.25,
            0.25,
        ];
        let want = (3f64.log2() + 0.0 + 1.0 + 1.5) / 4.0;
        assert!(close(entropy(&p, 3), want));
        // Values at or below 1e-10 count zero.
        assert_eq!(entropy(&[1.0f64, 1e-11], 2), 0.0);
    }

    #[test]
    fn best_single_and_degenerate_cases() {
        assert!(close(best_single(&scores()), 0.5));
        let zero = Matrix::new(2, 2, vec![0.0; 4]);
        assert_eq!(v_b(0.0, best_single(&zero)), None);
        assert_eq!(v_r(0.3, None), None);
        let a = Metrics {
            mu: 0.2,
            vr: Some(0.4),
            vb: Some(1.0),
            ep: 1.0,
        };
        let b = Metrics {
            mu: 0.4,
            vr: None,
            vb: Some(0.5),
            ep: 0.0,
        };
        let avg = mean(&[a, b]).unwrap();
        assert!(close(avg.mu, 0.3) && close(avg.ep, 0.5) && close(avg.vb.unwrap(), 0.75));
        assert_eq!(avg.vr, None);
        assert_eq!(mean(&[]), None);
    }
}
