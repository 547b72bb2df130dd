//! Float32 sums in the order of PyTorch's CPU reduction (`torch.nansum` on a contiguous row:
//! ATen's `cascade_sum` in `SumKernel.cpp` with `Vectorized<float>` of 8 lanes, AVX2, torch's
//! x86 default without AVX-512).
//!
//! The reference's instance norm takes `nanmean` in float32, and for a constant row whose value
//! is not exact in a float32 sum (a single-level categorical covariate is target-encoded to the
//! item mean, e.g. 10.431406 on 80 steps) the rounded mean differs from the value by an ulp: the
//! row is then normalised to ±1 (`(x - loc) / |x - loc|`), not to 0 as an exact mean gives. The
//! forecasts move by ~0.1. Summing in the reference's order gives its loc bit for bit; on other
//! rows it only removes float noise. (An AVX-512 or NEON build of torch sums with 16 or 4 lanes
//! and may round such a row differently: the reference is then not the same on every machine.)

/// `Vectorized<float>::size()` under AVX2.
const LANES: usize = 8;
/// `row_sum`'s `ilp_factor`: independent accumulators over consecutive vectors.
const ILP: usize = 4;
/// `multi_row_sum`'s `num_levels` of the cascade.
const NUM_LEVELS: usize = 4;

/// `c10::utils::CeilLog2` (1 for x <= 2).
fn ceil_log2(x: usize) -> usize {
    if x <= 2 {
        1
    } else {
        (usize::BITS - (x - 1).leading_zeros()) as usize
    }
}

fn add<const W: usize>(acc: &mut [f32; W], v: &[f32; W]) {
    for (a, b) in acc.iter_mut().zip(v) {
        *a += b;
    }
}

/// `multi_row_sum`: `size` rows of `ILP` columns (element `(i, k)` = `load(i * ILP + k)`), summed
/// per column through a cascade of `NUM_LEVELS` accumulators, each level taking the one below it
/// every `2^level_power` rows.
fn multi_row_sum<const W: usize>(load: &impl Fn(usize) -> [f32; W], size: usize) -> [[f32; W]; ILP] {
    let level_power = 4.max(ceil_log2(size) / NUM_LEVELS);
    let level_step = 1usize << level_power;
    let level_mask = level_step - 1;
    let mut acc = [[[0f32; W]; ILP]; NUM_LEVELS];
    let mut i = 0;
    while i + level_step <= size {
        for _ in 0..level_step {
            for (k, a) in acc[0].iter_mut().enumerate() {
                add(a, &load(i * ILP + k));
            }
            i += 1;
        }
        for j in 1..NUM_LEVELS {
            let (below, above) = acc.split_at_mut(j);
            for (up, low) in above[0].iter_mut().zip(&mut below[j - 1]) {
                add(up, low);
                *low = [0.0; W];
            }
            if i & (level_mask << (j * level_power)) != 0 {
                break;
            }
        }
    }
    while i < size {
        for (k, a) in acc[0].iter_mut().enumerate() {
            add(a, &load(i * ILP + k));
        }
        i += 1;
    }
    let [mut first, rest @ ..] = acc;
    for level in &rest {
        for (a, b) in first.iter_mut().zip(level) {
            add(a, b);
        }
    }
    first
}

/// `row_sum`: `size` values `load(0..size)` through `multi_row_sum`, the remainder into the
/// first accumulator, then the accumulators in order.
fn row_sum<const W: usize>(load: &impl Fn(usize) -> [f32; W], size: usize) -> [f32; W] {
    let size_ilp = size / ILP;
    let mut partial = multi_row_sum(load, size_ilp);
    for i in size_ilp * ILP..size {
        add(&mut partial[0], &load(i));
    }
    let [mut first, rest @ ..] = partial;
    for p in &rest {
        add(&mut first, p);
    }
    first
}

/// `torch.nansum` of the values `value(0..n)` (NaN counts as 0), in float32 and in torch's
/// order: whole vectors of `LANES` through [`row_sum`], then the scalar tail, then the lanes.
pub(crate) fn nansum(n: usize, value: impl Fn(usize) -> f32) -> f32 {
    let load = |i: usize| {
        let v = value(i);
        if v.is_nan() {
            0.0
        } else {
            v
        }
    };
    if n < LANES {
        return row_sum(&|i| [load(i)], n)[0];
    }
    let vectors = n / LANES;
    let lanes = row_sum(&|j| std::array::from_fn::<f32, LANES, _>(|l| load(j * LANES + l)), vectors);
    let mut total = 0f32;
    for i in vectors * LANES..n {
        total += load(i);
    }
    for lane in lanes {
        total += lane;
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(row: &[f32]) -> f32 {
        nansum(row.len(), |i| row[i])
    }

    /// Expected values printed by torch 2.15.0 (AVX2) from the reference env:
    /// `torch.nansum(torch.full((1, n + pad), v).index_fill_(1, torch.arange(pad), nan), -1)`.
    #[test]
    fn matches_torch_on_constant_rows() {
        let row = |v: f32, n: usize, pad: usize| {
            let mut r = vec![v; n + pad];
            r[..pad].fill(f32::NAN);
            r
        };
        // 80 x 10.431406: torch 834.5126 where the exact product rounds to 834.51245
        assert_eq!(sum(&row(10.431406, 80, 0)), 834.5126);
        assert_eq!(sum(&row(10.431406, 80, 40)), 834.5126);
        assert_eq!(sum(&row(0.1, 1000, 3)), 100.00001);
        assert_eq!(sum(&row(7.3, 5, 0)), 36.5);
        assert_eq!(sum(&row(1.0 / 3.0, 8193, 0)), 2731.0);
    }

    #[test]
    fn small_and_empty_rows() {
        assert_eq!(sum(&[]), 0.0);
        assert_eq!(sum(&[f32::NAN]), 0.0);
        assert_eq!(sum(&[1.5, f32::NAN, 2.0]), 3.5);
    }
}
