//! Walk-forward splits in time: train on a stretch of the past, validate on what follows, leave
//! a purge gap, test on what follows that; then roll everything forward by one test length. The
//! purge gap keeps a test sample's inputs (which reach `window + lookback` steps back) and labels
//! (one step ahead) from overlapping anything trained or validated on.

use std::ops::Range;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct SplitConfig {
    /// Samples per part.
    pub train: usize,
    pub validation: usize,
    pub test: usize,
    /// Samples left out between train and validation, and between validation and test: at least
    /// the label horizon plus the inputs' reach.
    pub purge: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Fold {
    pub train: Range<usize>,
    pub validation: Range<usize>,
    pub test: Range<usize>,
}

/// The folds over `n` time-ordered samples; as many as fit.
pub fn walk_forward(n: usize, c: &SplitConfig) -> Vec<Fold> {
    let mut folds = Vec::new();
    if c.train == 0 || c.validation == 0 || c.test == 0 {
        return folds;
    }
    let mut start = 0;
    loop {
        let train = start..start + c.train;
        let validation = train.end + c.purge..train.end + c.purge + c.validation;
        let test = validation.end + c.purge..validation.end + c.purge + c.test;
        if test.end > n {
            return folds;
        }
        folds.push(Fold { train, validation, test });
        start += c.test;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// Whatever the sizes and the gaps in the sample times, no test time precedes or meets a
        /// training or validation time, and the purge gaps hold in time too.
        #[test]
        fn test_never_precedes_training(
            gaps in proptest::collection::vec(1i64..5, 50..400),
            train in 1usize..80, validation in 1usize..40, test in 1usize..40, purge in 0usize..20,
        ) {
            let mut times = vec![0i64];
            for g in gaps {
                times.push(times.last().unwrap() + g);
            }
            let c = SplitConfig { train, validation, test, purge };
            for f in walk_forward(times.len(), &c) {
                let (tr, va, te) = (&times[f.train.clone()], &times[f.validation.clone()], &times[f.test.clone()]);
                let (last_train, first_val) = (*tr.last().unwrap(), va[0]);
                let (last_val, first_test) = (*va.last().unwrap(), te[0]);
                proptest::prop_assert!(last_train < first_val && last_val < first_test);
                proptest::prop_assert!(te.iter().all(|t| *t > last_train && *t > last_val));
                proptest::prop_assert!(first_val - last_train > purge as i64, "purge in time");
                proptest::prop_assert!(first_test - last_val > purge as i64, "purge in time");
                proptest::prop_assert_eq!(f.test.len(), test);
            }
        }
    }

    #[test]
    fn folds_roll_forward_by_one_test_length() {
        let c = SplitConfig { train: 10, validation: 5, test: 5, purge: 2 };
        let folds = walk_forward(40, &c);
        assert_eq!(folds.len(), 4);
        assert_eq!(folds[0], Fold { train: 0..10, validation: 12..17, test: 19..24 });
        assert_eq!(folds[1].train, 5..15);
        assert_eq!(folds.last().unwrap().test.end, 39);
    }
}
