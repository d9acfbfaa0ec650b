//! The difficulty means what it says: D hashes on average.

use pow::{Argon2Params, Difficulty, Solver, Step};

#[test]
fn mean_attempts_at_d16_is_within_15_percent() {
    const SOLVES: u64 = 2000;
    let params = Argon2Params::new(1, 8, 1, 32).unwrap();
    let d = Difficulty::new(16).unwrap();
    let mut total = 0u64;
    for i in 0..SOLVES {
        // Distinct, reproducible salts: the run is deterministic, and with
        // 2000 solves the standard error of the mean is about 0.35, so the
        // ±2.4 band is about 7 standard errors wide.
        let mut salt = [0u8; 16];
        salt[..8].copy_from_slice(&i.to_le_bytes());
        salt[8..].copy_from_slice(b"statsalt");
        let mut s = Solver::new(params, salt, d, 0, 1).unwrap();
        loop {
            match s.step(64).unwrap() {
                Step::Found { hashes, .. } => {
                    total += hashes;
                    break;
                }
                Step::Progress { .. } => {}
                Step::Exhausted { .. } => panic!("exhausted"),
            }
        }
    }
    #[allow(clippy::cast_precision_loss)]
    let mean = total as f64 / SOLVES as f64;
    assert!((13.6..=18.4).contains(&mean), "mean attempts {mean}");
}
