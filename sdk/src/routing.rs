//! What a router returns: its belief over the candidates, and optionally its decisions.

use crate::RouterError;

/// A router's answer for `n` queries and `m` candidates.
///
/// - `belief` is an `n x m` row-major matrix; row `i` is a probability distribution over the
///   candidates for query `i` (finite, non-negative, summing to 1). The engine measures its
///   entropy (the paper's Ep).
/// - `choices`, when present, is the candidate picked for each query. When absent the engine picks
///   the argmax of each belief row (the first index on ties). Give explicit choices when the
///   decision rule is not the argmax of the belief you report, or when float rounding could make
///   the two disagree.
///
/// The engine validates all of it; the constructors here only check lengths.
#[derive(Clone, Debug, PartialEq)]
pub struct Routing {
    n: usize,
    m: usize,
    belief: Vec<f32>,
    choices: Option<Vec<u32>>,
}

impl Routing {
    /// A routing from an `n x m` belief matrix.
    ///
    /// # Errors
    /// [`RouterError::Route`] when `belief.len() != n * m`.
    pub fn from_belief(n: usize, m: usize, belief: Vec<f32>) -> Result<Self, RouterError> {
        if n.checked_mul(m) != Some(belief.len()) {
            return Err(RouterError::Route(format!(
                "belief has {} values, expected {n} x {m}",
                belief.len()
            )));
        }
        Ok(Routing {
            n,
            m,
            belief,
            choices: None,
        })
    }

    /// A routing from `n x m` logits (scores, any scale): the choice is each row's argmax (the
    /// first on ties), the belief its softmax, computed in f64 with [`crate::exp_det`] so that
    /// every platform gives the same bits.
    ///
    /// # Errors
    /// [`RouterError::Route`] when `logits.len() != n * m`.
    pub fn from_logits(n: usize, m: usize, mut logits: Vec<f32>) -> Result<Self, RouterError> {
        if n.checked_mul(m) != Some(logits.len()) {
            return Err(RouterError::Route(format!(
                "logits have {} values, expected {n} x {m}",
                logits.len()
            )));
        }
        let mut choices = Vec::with_capacity(n);
        let mut e = vec![0.0f64; m];
        for row in logits.chunks_mut(m.max(1)).take(n) {
            choices.push(crate::argmax(row).unwrap_or(0) as u32);
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            for (e, &z) in e.iter_mut().zip(row.iter()) {
                *e = crate::exp_det(f64::from(z) - f64::from(max));
            }
            let sum: f64 = e.iter().sum();
            for (b, e) in row.iter_mut().zip(&e) {
                *b = (e / sum) as f32;
            }
        }
        Routing::from_belief(n, m, logits)?.with_choices(choices)
    }

    /// A routing that names one candidate per query with certainty (one-hot belief).
    ///
    /// # Errors
    /// [`RouterError::Route`] when a choice is `>= m`.
    pub fn one_hot(m: usize, choices: Vec<u32>) -> Result<Self, RouterError> {
        let n = choices.len();
        let mut belief = vec![0.0f32; n * m];
        for (i, &c) in choices.iter().enumerate() {
            let c = c as usize;
            if c >= m {
                return Err(RouterError::Route(format!(
                    "choice {c} for query {i} is out of range for {m} candidates"
                )));
            }
            belief[i * m + c] = 1.0;
        }
        Routing::from_belief(n, m, belief)?.with_choices(choices)
    }

    /// Attaches explicit choices, one per query.
    ///
    /// # Errors
    /// [`RouterError::Route`] when there is not exactly one choice per query.
    pub fn with_choices(mut self, choices: Vec<u32>) -> Result<Self, RouterError> {
        if choices.len() != self.n {
            return Err(RouterError::Route(format!(
                "{} choices for {} queries",
                choices.len(),
                self.n
            )));
        }
        self.choices = Some(choices);
        Ok(self)
    }

    /// Number of queries.
    pub fn num_queries(&self) -> usize {
        self.n
    }

    /// Number of candidates.
    pub fn num_candidates(&self) -> usize {
        self.m
    }

    /// The belief matrix, row-major.
    pub fn belief(&self) -> &[f32] {
        &self.belief
    }

    /// The explicit choices, if any.
    pub fn choices(&self) -> Option<&[u32]> {
        self.choices.as_deref()
    }

    /// Splits the routing into `(n, m, belief, choices)`.
    pub fn into_parts(self) -> (usize, usize, Vec<f32>, Option<Vec<u32>>) {
        (self.n, self.m, self.belief, self.choices)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constructors_check_lengths() {
        assert!(Routing::from_belief(2, 3, vec![0.0; 5]).is_err());
        let r = Routing::from_belief(1, 2, vec![0.5, 0.5]).unwrap();
        assert!(r.clone().with_choices(vec![0, 1]).is_err());
        assert_eq!(
            r.with_choices(vec![1]).unwrap().choices(),
            Some(&[1u32][..])
        );
        let h = Routing::one_hot(3, vec![2, 0]).unwrap();
        assert_eq!(h.belief(), &[0.0, 0.0, 1.0, 1.0, 0.0, 0.0]);
        assert!(Routing::one_hot(3, vec![3]).is_err());
    }
}
