//! Checks of numeric settings, with errors that name the key and say what is accepted. Each
//! config section validates its own keys with these.

use anyhow::{Result, bail};

/// A finite number above 0 (learning rates, epsilons).
pub fn positive(key: &str, v: f64) -> Result<()> {
    if !(v > 0.0 && v.is_finite()) {
        bail!("{key} must be a positive number, got {v}");
    }
    Ok(())
}

/// A finite number, 0 or more (weight decays, weights, clipping, tolerances).
pub fn non_negative(key: &str, v: f64) -> Result<()> {
    if !(v >= 0.0 && v.is_finite()) {
        bail!("{key} must be a number of at least 0, got {v}");
    }
    Ok(())
}

/// A number in [0, 1) (probabilities, ratios, Adam's betas).
pub fn fraction(key: &str, v: f64) -> Result<()> {
    if !(0.0..1.0).contains(&v) {
        bail!("{key} must be in [0, 1), got {v}");
    }
    Ok(())
}

/// A count of at least 1 (sizes, cadences).
pub fn at_least_one(key: &str, v: usize) -> Result<()> {
    if v == 0 {
        bail!("{key} must be at least 1");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_what_it_should_and_names_the_key() {
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(positive("k.lr", bad).unwrap_err().to_string().contains("k.lr"));
        }
        for bad in [-1e-9, f64::NAN, f64::INFINITY] {
            assert!(non_negative("k", bad).is_err());
        }
        for bad in [1.0, -0.1, f64::NAN] {
            assert!(fraction("k", bad).is_err());
        }
        assert!(positive("k", 1e-30).is_ok() && non_negative("k", 0.0).is_ok() && fraction("k", 0.0).is_ok());
        assert!(at_least_one("k", 0).is_err() && at_least_one("k", 1).is_ok());
    }
}
