//! Support for the hand-written CPU kernels (`model::kernels`, `optim::kernels`): compiling a
//! loop for the best instruction set the CPU has (AVX-512, AVX2, or the portable baseline) and
//! vectorisable f32 math (exp, erfc) where libm's scalar calls would stop the compiler from
//! vectorising a loop.
//!
//! The math uses no fused multiply-add, so every instruction-set variant rounds exactly as the
//! portable one: results do not depend on the CPU.

/// Defines `fn $name(args) -> ret` whose body is compiled three times (AVX-512, AVX2, baseline
/// x86-64 or the target's default elsewhere) and picked at run time. The body should be a loop
/// over slices calling `#[inline(always)]` helpers, so that it vectorises for each variant.
macro_rules! multiversion {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            // The copies mirror the outer signature; lints about it belong to the outer function.
            #[allow(clippy::too_many_arguments)]
            #[inline(always)]
            fn body($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[allow(clippy::too_many_arguments)]
                #[target_feature(enable = "avx512f,avx512vl,avx512dq,avx512bw,avx2,bmi2")]
                fn v4($($arg: $ty),*) $(-> $ret)? { body($($arg),*) }
                #[allow(clippy::too_many_arguments)]
                #[target_feature(enable = "avx2,bmi2")]
                fn v3($($arg: $ty),*) $(-> $ret)? { body($($arg),*) }
                match $crate::simd::level() {
                    // SAFETY: `level` reported these features on this CPU.
                    $crate::simd::Level::V4 => return unsafe { v4($($arg),*) },
                    // SAFETY: as above.
                    $crate::simd::Level::V3 => return unsafe { v3($($arg),*) },
                    $crate::simd::Level::Base => {}
                }
            }
            body($($arg),*)
        }
    };
}
pub(crate) use multiversion;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// AVX-512 (x86-64-v4).
    V4,
    /// AVX2 (x86-64-v3).
    V3,
    Base,
}

/// The best instruction set of this CPU, detected once.
#[inline]
pub fn level() -> Level {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::OnceLock;
        static LEVEL: OnceLock<Level> = OnceLock::new();
        *LEVEL.get_or_init(|| {
            if std::is_x86_feature_detected!("avx512f")
                && std::is_x86_feature_detected!("avx512vl")
                && std::is_x86_feature_detected!("avx512dq")
                && std::is_x86_feature_detected!("avx512bw")
                && std::is_x86_feature_detected!("avx2")
                && std::is_x86_feature_detected!("bmi2")
            {
                Level::V4
            } else if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("bmi2") {
                Level::V3
            } else {
                Level::Base
            }
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        Level::Base
    }
}

/// Elements per task when a kernel splits its work across threads: large enough that a task
/// costs far more than rayon's scheduling, small enough to balance two to sixteen cores. Fixed,
/// so that chunked reductions add their partial sums in the same order for any thread count.
pub const CHUNK: usize = 1 << 15;

/// `e^x` for f32, within 2 ulp of the exact value on [-87, 88]; 0 below -87.3 (where the exact
/// value is subnormal), +inf above 88.7. Cephes' `expf`: x = n ln2 + r, a degree-6 polynomial
/// for e^r, 2^n put in the exponent bits. Branch-free, so loops over it vectorise.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let xc = x.clamp(-87.0, 88.0);
    let n = (xc * LOG2E + 0.5).floor();
    let r = xc - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let y = p * (r * r) + r + 1.0;
    // 2^n from n's bits: adding 1.5 * 2^23 puts the integer n in the low mantissa bits. Not
    // `n as i32`: Rust's saturating cast compiled to 16 scalar conversions per AVX-512 vector
    // (perf annotate of `gelu_in_place::v4`).
    const MAGIC: f32 = 12_582_912.0;
    let n_bits = (n + MAGIC).to_bits().wrapping_sub(MAGIC.to_bits());
    let scale = f32::from_bits(n_bits.wrapping_add(127) << 23);
    let v = y * scale;
    // Below -87.3 the result would be subnormal: flush to 0 (as softmax over masked scores needs).
    let v = if x < -87.3 { 0.0 } else { v };
    if x > 88.7 { f32::INFINITY } else { v }
}

/// `erfc(z)` for `z >= 0`, relative error below 1e-5 (6e-7 up to z = 2, where it matters for
/// GELU; measured 5.7e-7 and 3.0e-6 on a grid of 0.0125 up to 5) in f32: Numerical Recipes'
/// `erfcc`, a Chebyshev fit of erfc(z) / e^(-z^2) in t = 1 / (1 + z/2), whose 1.2e-7 holds in
/// exact arithmetic; f32 rounding adds a few ulp.
#[inline(always)]
pub fn erfc_nonneg(z: f32) -> f32 {
    let t = 1.0 / (1.0 + 0.5 * z);
    let mut p = 0.170_872_77_f32;
    p = p * t - 0.822_152_23;
    p = p * t + 1.488_515_9;
    p = p * t - 1.135_204;
    p = p * t + 0.278_868_07;
    p = p * t - 0.186_288_06;
    p = p * t + 0.096_784_18;
    p = p * t + 0.374_091_96;
    p = p * t + 1.000_023_7;
    p = p * t - 1.265_512_2;
    t * exp(p - z * z)
}

/// Φ(x), the standard normal CDF, `0.5 * (1 + erf(x / sqrt 2))`, accurate in relative terms on
/// both tails (it never forms 1 + erf for negative x).
#[inline(always)]
pub fn normal_cdf(x: f32) -> f32 {
    let half_erfc = 0.5 * erfc_nonneg(x.abs() * std::f32::consts::FRAC_1_SQRT_2);
    if x >= 0.0 { 1.0 - half_erfc } else { half_erfc }
}

/// Exact (erf) GELU, `x Φ(x)`.
#[inline(always)]
pub fn gelu(x: f32) -> f32 {
    x * normal_cdf(x)
}

/// d GELU / dx = Φ(x) + x φ(x).
#[inline(always)]
pub fn gelu_grad(x: f32) -> f32 {
    const INV_SQRT_2PI: f32 = 0.398_942_3;
    normal_cdf(x) + x * (INV_SQRT_2PI * exp(-0.5 * x * x))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn erfc64(x: f64) -> f64 {
        // erfc by its continued fraction / series is overkill here: 1 - erf from the Taylor
        // series is exact enough below 3, and std has no erf, so compare through libm via f64
        // integration instead: Simpson on e^(-t^2) from x to 8.
        let (a, b, n) = (x, 8.0_f64, 20_000);
        let h = (b - a) / n as f64;
        let f = |t: f64| (-t * t).exp();
        let mut s = f(a) + f(b);
        for i in 1..n {
            s += f(a + i as f64 * h) * if i % 2 == 1 { 4.0 } else { 2.0 };
        }
        s * h / 3.0 * 2.0 / std::f64::consts::PI.sqrt()
    }

    #[test]
    fn exp_is_within_two_ulp() {
        let mut x = -87.0_f32;
        while x < 88.0 {
            let (ours, exact) = (exp(x) as f64, (x as f64).exp());
            assert!(((ours - exact) / exact).abs() < 2.5e-7, "exp({x}) = {ours}, exact {exact}");
            x += 0.0137;
        }
        assert_eq!(exp(-100.0), 0.0);
        assert_eq!(exp(f32::MIN), 0.0);
        assert_eq!(exp(100.0), f32::INFINITY);
        assert_eq!(exp(0.0), 1.0);
    }

    #[test]
    fn erfc_is_relatively_accurate() {
        for i in 0..=400 {
            let z = i as f64 * 0.0125;
            let (ours, exact) = (erfc_nonneg(z as f32) as f64, erfc64(z));
            let tol = if z <= 2.0 { 6e-7 } else { 1e-5 };
            assert!(((ours - exact) / exact).abs() < tol, "erfc({z}) = {ours}, exact {exact}");
        }
    }

    #[test]
    fn gelu_and_its_gradient_match_f64() {
        for i in -2000..=2000 {
            let x = i as f64 * 0.005;
            let cdf = if x >= 0.0 { 1.0 - 0.5 * erfc64(x / 2f64.sqrt()) } else { 0.5 * erfc64(-x / 2f64.sqrt()) };
            let g = x * cdf;
            let dg = cdf + x * (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt();
            assert!((gelu(x as f32) as f64 - g).abs() < 1e-6, "gelu({x})");
            assert!((gelu_grad(x as f32) as f64 - dg).abs() < 1e-6, "gelu'({x})");
        }
    }
}
