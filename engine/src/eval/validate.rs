//! Checks a router's output before any metric is computed.
//!
//! **Architecture invariant**: the engine validates every router output, whatever loaded the
//! router; a router that returns garbage fails its evaluation, it never scores.

use routereval_sdk::Routing;

/// How far a belief row's sum may be from 1.
pub const ROW_SUM_TOLERANCE: f64 = 1e-4;

/// Checks that `routing` answers `n` queries over `m` candidates with finite, non-negative
/// belief rows summing to 1 (within [`ROW_SUM_TOLERANCE`]) and in-range choices.
///
/// # Errors
/// A message naming the first offending row and value.
pub fn validate(routing: &Routing, n: usize, m: usize) -> Result<(), String> {
    if routing.num_queries() != n || routing.num_candidates() != m {
        return Err(format!(
            "the belief is {} x {}, expected {n} x {m} (one row per test query, one column per \
             candidate)",
            routing.num_queries(),
            routing.num_candidates()
        ));
    }
    for (i, row) in routing.belief().chunks_exact(m.max(1)).enumerate() {
        let mut sum = 0.0f64;
        for (j, &p) in row.iter().enumerate() {
            if !p.is_finite() {
                return Err(format!("row {i}: the belief in candidate {j} is {p}"));
            }
            if p < 0.0 {
                return Err(format!(
                    "row {i}: the belief in candidate {j} is negative ({p})"
                ));
            }
            sum += f64::from(p);
        }
        if (sum - 1.0).abs() > ROW_SUM_TOLERANCE {
            return Err(format!(
                "row {i}: the belief sums to {sum}, not 1 (tolerance {ROW_SUM_TOLERANCE})"
            ));
        }
    }
    if let Some((i, c)) = routing
        .choices()
        .and_then(|cs| cs.iter().enumerate().find(|(_, c)| **c as usize >= m))
    {
        return Err(format!(
            "row {i}: the choice {c} is out of range for {m} candidates"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(n: usize, m: usize, b: Vec<f32>) -> Routing {
        Routing::from_belief(n, m, b).unwrap()
    }

    #[test]
    fn the_row_sum_tolerance_is_1e_4_on_either_side() {
        // Sums in f64 of f32 beliefs: 0.5 + 0.5 + (1e-4 - 1e-6) is inside, + (1e-4 + 1e-6) not.
        for (extra, ok) in [
            (0.99e-4f32, true),
            (-0.99e-4, true),
            (1.01e-4, false),
            (-1.01e-4, false),
        ] {
            let row = vec![0.5, 0.5 + extra];
            assert_eq!(validate(&r(1, 2, row), 1, 2).is_ok(), ok, "1 + {extra}");
        }
        assert_eq!(ROW_SUM_TOLERANCE, 1e-4);
    }

    #[test]
    fn accepts_good_and_names_first_bad_row() {
        assert!(validate(&r(2, 2, vec![0.5, 0.5, 1.0, 0.0]), 2, 2).is_ok());
        assert!(validate(&r(1, 2, vec![0.5, 0.50005]), 1, 2).is_ok());
        let e = validate(&r(2, 2, vec![0.5, 0.5, 0.7, 0.7]), 2, 2).unwrap_err();
        assert!(e.starts_with("row 1: the belief sums to 1.39"), "{e}");
        let e = validate(&r(2, 2, vec![0.5, 0.5, f32::NAN, 1.0]), 2, 2).unwrap_err();
        assert_eq!(e, "row 1: the belief in candidate 0 is NaN");
        let e = validate(&r(1, 2, vec![1.5, -0.5]), 1, 2).unwrap_err();
        assert_eq!(e, "row 0: the belief in candidate 1 is negative (-0.5)");
        let e = validate(&r(1, 2, vec![0.5, 0.5]), 2, 2).unwrap_err();
        assert!(e.starts_with("the belief is 1 x 2, expected 2 x 2"), "{e}");
        let bad = r(1, 2, vec![0.5, 0.5]).with_choices(vec![2]).unwrap();
        assert_eq!(
            validate(&bad, 1, 2).unwrap_err(),
            "row 0: the choice 2 is out of range for 2 candidates"
        );
    }
}
