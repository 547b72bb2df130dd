//! Quantile utilities, ported from `chronos/utils.py` (`interpolate_quantiles`, `weighted_quantile`)
//! and `Chronos2Pipeline._get_prob_mass_per_quantile_level`.
//!
//! Arithmetic follows the reference's dtypes: levels and values in f32, the cumulative sum of
//! `weighted_quantile` accumulated in f64 and stored as f32 (torch's CPU `cumsum` accumulates
//! float32 in double).

use crate::error::{Error, Result};

/// Original quantile levels: shared by all rows (1-D in the reference) or one set per row.
#[derive(Debug, Clone, Copy)]
enum Levels<'a> {
    Shared(&'a [f32]),
    PerRow(&'a [f32]),
}

fn check_unit_interval(what: &str, levels: &[f32]) -> Result<()> {
    if let Some(bad) = levels.iter().find(|l| !(0.0..=1.0).contains(*l)) {
        return Err(Error::InvalidInput(format!("{what} must be between 0 and 1, found {bad}")));
    }
    Ok(())
}

/// `torch.nan_to_num(x, nan=0.0)` on f32: NaN -> 0, +inf -> f32::MAX, -inf -> f32::MIN.
fn nan_to_num(x: f32) -> f32 {
    if x.is_nan() {
        0.0
    } else if x == f32::INFINITY {
        f32::MAX
    } else if x == f32::NEG_INFINITY {
        f32::MIN
    } else {
        x
    }
}

/// Linear interpolation of quantile values at `query` levels (`interpolate_quantiles`).
///
/// `values` is `(rows, levels.len())` row-major; `levels` may be in any order (they are sorted
/// together with the values). Queries outside the range of `levels` get the edge values (the
/// reference pads level 0 with the first value and level 1 with the last one). Returns
/// `(rows, query.len())` row-major.
pub fn interpolate_quantiles(query: &[f32], levels: &[f32], values: &[f32]) -> Result<Vec<f32>> {
    if levels.is_empty() || !values.len().is_multiple_of(levels.len()) {
        return Err(Error::InvalidInput(format!(
            "interpolate_quantiles: {} values are not a whole number of rows of {} levels",
            values.len(),
            levels.len()
        )));
    }
    interpolate(query, Levels::Shared(levels), values, levels.len())
}

fn interpolate(query: &[f32], levels: Levels<'_>, values: &[f32], n: usize) -> Result<Vec<f32>> {
    check_unit_interval("query quantile levels", query)?;
    let all_levels = match levels {
        Levels::Shared(l) | Levels::PerRow(l) => l,
    };
    check_unit_interval("original quantile levels", all_levels)?;
    let rows = values.len() / n;
    let mut out = Vec::with_capacity(rows * query.len());
    if rows == 0 {
        return Ok(out);
    }
    // Global over the (expanded) levels, as `original_quantile_levels.min() / .max()`.
    let min = all_levels.iter().copied().fold(f32::INFINITY, f32::min);
    let max = all_levels.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let pad_low = min > 0.0;
    let pad_high = max < 1.0;

    let padded_len = n + pad_low as usize + pad_high as usize;
    let mut order: Vec<usize> = (0..n).collect();
    let mut sorted_levels = Vec::with_capacity(padded_len);
    let mut sorted_values = Vec::with_capacity(padded_len);
    let mut shared_order_ready = false;
    for r in 0..rows {
        let row_levels = match levels {
            Levels::Shared(l) => l,
            Levels::PerRow(l) => &l[r * n..(r + 1) * n],
        };
        let row_values = &values[r * n..(r + 1) * n];
        if !(shared_order_ready && matches!(levels, Levels::Shared(_))) {
            order.clear();
            order.extend(0..n);
            // Stable sort by level (levels are finite: checked above).
            order.sort_by(|&a, &b| row_levels[a].partial_cmp(&row_levels[b]).unwrap());
            shared_order_ready = true;
        }
        sorted_levels.clear();
        sorted_values.clear();
        if pad_low {
            sorted_levels.push(0.0f32);
            sorted_values.push(row_values[order[0]]);
        }
        for &i in &order {
            sorted_levels.push(row_levels[i]);
            sorted_values.push(row_values[i]);
        }
        if pad_high {
            sorted_levels.push(1.0f32);
            sorted_values.push(row_values[order[n - 1]]);
        }
        let last = sorted_levels.len() - 1;
        for &q in query {
            // searchsorted(right=True): first index whose level is > q.
            let upper = sorted_levels.partition_point(|&l| l <= q).min(last);
            // The reference would fail on a query below every level (index -1); clamp instead.
            let lower = upper.saturating_sub(1);
            let (ll, ul) = (sorted_levels[lower], sorted_levels[upper]);
            let (lv, uv) = (sorted_values[lower], sorted_values[upper]);
            let weight = nan_to_num((q - ll) / (ul - ll));
            out.push(lv + weight * (uv - lv));
        }
    }
    Ok(out)
}

/// Quantiles of the weighted empirical distribution of each row of `samples` (`weighted_quantile`).
///
/// `samples` is `(rows, weights.len())` row-major; every row shares `weights` (all > 0; normalised
/// here). Returns `(rows, query.len())` row-major.
pub fn weighted_quantile(query: &[f32], weights: &[f32], samples: &[f32]) -> Result<Vec<f32>> {
    let n = weights.len();
    if n == 0 || !samples.len().is_multiple_of(n) {
        return Err(Error::InvalidInput(format!(
            "weighted_quantile: {} samples are not a whole number of rows of {n} weights",
            samples.len()
        )));
    }
    check_unit_interval("query quantile levels", query)?;
    if let Some(bad) = weights.iter().find(|w| w.is_nan() || **w <= 0.0) {
        return Err(Error::InvalidInput(format!("sample weights must be > 0, found {bad}")));
    }
    let total = weights.iter().map(|&w| w as f64).sum::<f64>() as f32;
    let weights: Vec<f32> = weights.iter().map(|&w| w / total).collect();

    let rows = samples.len() / n;
    let mut sorted_samples = Vec::with_capacity(samples.len());
    let mut cumul = Vec::with_capacity(samples.len());
    let mut order: Vec<usize> = Vec::with_capacity(n);
    for r in 0..rows {
        let row = &samples[r * n..(r + 1) * n];
        order.clear();
        order.extend(0..n);
        // torch.sort order: ascending, NaN last.
        order.sort_by(|&a, &b| match (row[a].is_nan(), row[b].is_nan()) {
            (false, false) => row[a].partial_cmp(&row[b]).unwrap(),
            (x, y) => x.cmp(&y),
        });
        let mut acc = 0f64;
        for &i in &order {
            sorted_samples.push(row[i]);
            acc += weights[i] as f64;
            cumul.push((acc as f32).clamp(0.0, 1.0));
        }
    }
    interpolate(query, Levels::PerRow(&cumul), &sorted_samples, n)
}

/// Normalised probability mass per quantile level (`_get_prob_mass_per_quantile_level`):
/// `(q_{i+1} - q_{i-1}) / 2` with `q_0 = 0`, `q_{n+1} = 1`, divided by the total. Levels must lie
/// strictly inside (0, 1).
pub fn prob_mass_per_quantile_level(levels: &[f32]) -> Result<Vec<f32>> {
    if levels.is_empty() || levels.iter().any(|l| !(*l > 0.0 && *l < 1.0)) {
        return Err(Error::InvalidInput(format!(
            "quantile levels for probability masses must be non-empty and strictly between 0 and 1, found {levels:?}"
        )));
    }
    let mut bounds = Vec::with_capacity(levels.len() + 2);
    bounds.push(0f32);
    bounds.extend_from_slice(levels);
    bounds.push(1f32);
    let mass: Vec<f32> = bounds.windows(3).map(|w| (w[2] - w[0]) / 2.0).collect();
    let total = mass.iter().map(|&m| m as f64).sum::<f64>() as f32;
    Ok(mass.into_iter().map(|m| m / total).collect())
}

#[cfg(test)]
#[allow(clippy::excessive_precision)]
mod tests {
    use super::*;

    const Q21: [f32; 21] = [
        0.01, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95,
        0.99,
    ];
    const U9: [f32; 9] = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9];

    fn assert_close(actual: &[f32], expected: &[f32], tol: f32) {
        assert_eq!(actual.len(), expected.len(), "lengths differ");
        for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
            assert!((a - e).abs() <= tol * (1.0 + e.abs()), "index {i}: got {a}, expected {e}");
        }
    }

    /// Deterministic samples computed identically in Python:
    /// `((i * 7919 + r * 104729) % 997) / 97.0 - 5.0 + r` for row r, column i (f64, then f32).
    fn samples(rows: usize, n: usize) -> Vec<f32> {
        let mut out = Vec::new();
        for r in 0..rows {
            for i in 0..n {
                out.push((((i * 7919 + r * 104729) % 997) as f64 / 97.0 - 5.0 + r as f64) as f32);
            }
        }
        out
    }

    // torch.manual_seed(0); vals = torch.sort(torch.randn(2,21)*3, dim=-1).values
    const VALS: [f32; 42] = [
        -6.345658302307129,
        -5.087793350219727,
        -4.057961463928223,
        -3.790004253387451,
        -3.457080602645874,
        -3.3775196075439453,
        -1.3016364574432373,
        -0.9480383396148682,
        -0.7517357468605042,
        -0.7418344616889954,
        0.35952451825141907,
        0.9244017601013184,
        0.9668247699737549,
        1.0499495267868042,
        1.6999518871307373,
        1.796518325805664,
        2.0760273933410645,
        2.3805251121520996,
        2.546131134033203,
        3.3503315448760986,
        3.7129735946655273,
        -4.742981910705566,
        -4.665285110473633,
        -3.6004180908203125,
        -2.036238670349121,
        -2.0192697048187256,
        -1.7564926147460938,
        -1.5542244911193848,
        -1.3386515378952026,
        -1.0240812301635742,
        -0.9201126098632812,
        -0.5218830108642578,
        -0.014357213862240314,
        0.7788822054862976,
        1.4666094779968262,
        1.6881641149520874,
        2.2320621013641357,
        2.250568389892578,
        2.6184935569763184,
        2.81478214263916,
        5.119930267333984,
        5.559018135070801,
    ];

    #[test]
    fn interpolate_matches_reference_with_edge_clamp() {
        // interpolate_quantiles([0.0,0.005,0.01,0.1,0.12,0.5,0.525,0.97,0.99,0.995,1.0], Q21, vals)
        let query = [0.0, 0.005, 0.01, 0.1, 0.12, 0.5, 0.525, 0.97, 0.99, 0.995, 1.0];
        let expected = [
            -6.345658302307129,
            -6.345658302307129,
            -6.345658302307129,
            -4.057961463928223,
            -3.9507787227630615,
            0.35952451825141907,
            0.6419628262519836,
            3.5316529273986816,
            3.7129735946655273,
            3.7129735946655273,
            3.7129735946655273,
            -4.742981910705566,
            -4.742981910705566,
            -4.742981910705566,
            -3.6004180908203125,
            -2.9747464656829834,
            -0.5218830108642578,
            -0.2681204080581665,
            5.339474678039551,
            5.559018135070801,
            5.559018135070801,
            5.559018135070801,
        ];
        let got = interpolate_quantiles(&query, &Q21, &VALS).unwrap();
        assert_close(&got, &expected, 1e-6);
    }

    #[test]
    fn interpolate_sorts_unsorted_levels() {
        // interpolate_quantiles([0.05,0.3,0.7,0.95], [0.9,0.1,0.5], torch.tensor([[3.,1.,2.]]))
        let got = interpolate_quantiles(&[0.05, 0.3, 0.7, 0.95], &[0.9, 0.1, 0.5], &[3.0, 1.0, 2.0]).unwrap();
        assert_eq!(got, vec![1.0, 1.5, 2.5, 3.0]);
    }

    #[test]
    fn interpolate_with_levels_at_zero_and_one() {
        // interpolate_quantiles([0.0,0.25,0.5,1.0], [0.0,0.5,1.0], torch.tensor([[1.,2.,4.]]))
        let got = interpolate_quantiles(&[0.0, 0.25, 0.5, 1.0], &[0.0, 0.5, 1.0], &[1.0, 2.0, 4.0]).unwrap();
        assert_eq!(got, vec![1.0, 1.5, 2.0, 4.0]);
    }

    #[test]
    fn interpolate_rejects_levels_outside_unit_interval() {
        assert!(interpolate_quantiles(&[1.5], &Q21, &VALS).is_err());
    }

    #[test]
    fn prob_mass_matches_reference() {
        // Chronos2Pipeline._get_prob_mass_per_quantile_level(torch.tensor(U9))
        let expected_u = [
            0.1111111044883728,
            0.1111111119389534,
            0.1111111044883728,
            0.11111108958721161,
            0.1111111119389534,
            0.11111108958721161,
            0.11111108958721161,
            0.11111108958721161,
            0.11111108958721161,
        ];
        // Chronos2Pipeline._get_prob_mass_per_quantile_level(torch.tensor(Q21))
        let expected_q = [
            0.02525252476334572,
            0.04545454680919647,
            0.050505053251981735,
            0.05050504952669144,
            0.05050504580140114,
            0.050505053251981735,
            0.05050504580140114,
            0.05050504580140114,
            0.05050504580140114,
            0.05050504580140114,
            0.05050506070256233,
            0.05050506070256233,
            0.050505030900239944,
            0.050505030900239944,
            0.05050506070256233,
            0.05050506070256233,
            0.05050506070256233,
            0.050505030900239944,
            0.050505030900239944,
            0.045454561710357666,
            0.025252530351281166,
        ];
        assert_close(&prob_mass_per_quantile_level(&U9).unwrap(), &expected_u, 1e-7);
        assert_close(&prob_mass_per_quantile_level(&Q21).unwrap(), &expected_q, 1e-7);
        assert!(prob_mass_per_quantile_level(&[0.0, 0.5]).is_err());
    }

    #[test]
    fn weighted_quantile_small_with_ties() {
        // weighted_quantile([0.0,0.1,0.3,0.5,0.7,0.9,1.0], [1.,2.,3.,1.,1.], torch.tensor([[1.,3.,2.,2.,5.]]))
        let got = weighted_quantile(
            &[0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0],
            &[1.0, 2.0, 3.0, 1.0, 1.0],
            &[1.0, 3.0, 2.0, 2.0, 5.0],
        )
        .unwrap();
        let expected = [1.0, 1.0, 1.4666666984558105, 2.0, 2.299999952316284, 3.3999996185302734, 5.0];
        assert_close(&got, &expected, 1e-6);
    }

    #[test]
    fn weighted_quantile_unrolled_weights_match_reference() {
        // w = torch.outer(mass(U9), mass(Q21)).flatten()
        // s = samples(3, 189) (formula above); weighted_quantile(Q21, w, s)
        let mu = prob_mass_per_quantile_level(&U9).unwrap();
        let mq = prob_mass_per_quantile_level(&Q21).unwrap();
        let w: Vec<f32> = mu.iter().flat_map(|a| mq.iter().map(move |b| a * b)).collect();
        let got = weighted_quantile(&Q21, &w, &samples(3, 189)).unwrap();
        // torch normalises the weights with a vectorised f32 sum whose rounding differs from ours by
        // an ulp (0.99999982 vs 0.99999988 here), which moves the result by up to ~3e-6.
        assert_close(&got, &WQ_EXPECTED, 5e-6);
    }

    #[test]
    fn weighted_quantile_rejects_bad_weights() {
        assert!(weighted_quantile(&[0.5], &[1.0, 0.0], &[1.0, 2.0]).is_err());
        assert!(weighted_quantile(&[0.5], &[1.0, 1.0], &[1.0, 2.0, 3.0]).is_err());
    }

    const WQ_EXPECTED: [f32; 63] = [
        -4.749670028686523,
        -4.43391752243042,
        -3.8565866947174072,
        -3.2790722846984863,
        -2.6975257396698,
        -2.2989695072174072,
        -1.7901030778884888,
        -1.2219587564468384,
        -0.645566999912262,
        -0.23752686381340027,
        0.26116836071014404,
        0.8299999833106995,
        1.2688655853271484,
        1.7456700801849365,
        2.3127834796905518,
        2.8819587230682373,
        3.3303089141845703,
        3.7924742698669434,
        4.364741802215576,
        4.836699962615967,
        5.249670028686523,
        -3.8785359859466553,
        -3.5627834796905518,
        -2.98639178276062,
        -2.4097366333007812,
        -1.831546425819397,
        -1.3092783689498901,
        -0.9107216596603394,
        -0.3428408205509186,
        0.22556698322296143,
        0.7521641254425049,
        1.1412370204925537,
        1.7083505392074585,
        2.258556365966797,
        2.6168041229248047,
        3.1905152797698975,
        3.7603092193603516,
        4.319999694824219,
        4.667422771453857,
        5.239999771118164,
        5.812027454376221,
        6.124927520751953,
        -2.9919381141662598,
        -2.6284537315368652,
        -2.1070103645324707,
        -1.5306185483932495,
        -0.9537227749824524,
        -0.37577322125434875,
        0.19628851115703583,
        0.5450515151023865,
        1.1131728887557983,
        1.681340217590332,
        2.2577319145202637,
        2.597010374069214,
        3.164123773574829,
        3.7332990169525146,
        4.082059383392334,
        4.648453712463379,
        5.216082572937012,
        5.785257816314697,
        6.143502712249756,
        6.695773124694824,
        7.039504051208496,
    ];
}
