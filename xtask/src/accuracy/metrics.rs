//! Forecast-accuracy metrics: a port of `eval/real-series/evaluate.py` (the script behind the
//! chronos2-mini model card; kept in `/work/shared/eval/real-series/`), plus the quantized modes'
//! deviation from fp32.
//!
//! Everything is `f64` like numpy; NaN handling follows the script (`np.nanmean` for the MASE
//! scale, forward- then backward-fill for the seasonal-naive history).

/// The levels the script evaluates (`QL`): 0.05, 0.1, 0.2, ..., 0.9, 0.95 — every one a level
/// of the Chronos-2 quantile head, so no interpolation is involved.
pub const LEVELS: [f64; 11] = [0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95];

/// `NormalDist().inv_cdf(q)` for each of [`LEVELS`] (Python 3.11 `statistics`), bit for bit —
/// the seasonal-naive intervals use them. (Python's values are not exactly antisymmetric.)
const NORMAL_QUANTILES: [f64; 11] = [
    -1.6448536269514726,
    -1.2815515655446008,
    -0.8416212335729142,
    -0.5244005127080407,
    -0.2533471031357998,
    0.0,
    0.2533471031357998,
    0.5244005127080407,
    0.8416212335729144,
    1.2815515655446008,
    1.6448536269514715,
];

/// Quantile forecasts of one series: `steps × levels`, row-major (the script's `qs`).
#[derive(Debug, Clone, PartialEq)]
pub struct Quantiles {
    pub levels: Vec<f64>,
    pub values: Vec<f64>,
}

impl Quantiles {
    pub fn new(levels: Vec<f64>, values: Vec<f64>) -> Self {
        assert!(!levels.is_empty() && values.len().is_multiple_of(levels.len()), "values must be steps × levels");
        Quantiles { levels, values }
    }

    pub fn steps(&self) -> usize {
        self.values.len() / self.levels.len()
    }

    /// The forecast at `level` for every step; `level` must be one of the levels.
    pub fn column(&self, level: f64) -> Vec<f64> {
        let j = self
            .levels
            .iter()
            .position(|&l| (l - level).abs() < 1e-9)
            .unwrap_or_else(|| panic!("quantile level {level} not forecast (have {:?})", self.levels));
        self.values.chunks_exact(self.levels.len()).map(|row| row[j]).collect()
    }
}

/// Per-series metrics of one forecast (the script's `metrics` row).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SeriesMetrics {
    /// Mean absolute error of the median.
    pub mae: f64,
    /// `mae` over the in-sample seasonal-naive MAE of the history ([`mase_scale`]).
    pub mase: f64,
    /// Weighted quantile loss over 0.1..0.9 ([`wql`]).
    pub wql: f64,
    /// Share of truth points inside [q0.1, q0.9].
    pub cov80: f64,
    /// Share of truth points inside [q0.05, q0.95].
    pub cov90: f64,
}

/// MASE denominator: `nanmean(|y[m:] - y[:-m]|)` over the whole history (NaN when no pair of
/// points `m` apart is finite).
pub fn mase_scale(history: &[f64], season: usize) -> f64 {
    assert!(season >= 1, "season must be at least 1");
    let diffs = history.iter().zip(history.iter().skip(season)).map(|(a, b)| (b - a).abs()).filter(|d| !d.is_nan());
    plain_mean(diffs)
}

fn plain_mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 {
        f64::NAN
    } else {
        sum / n as f64
    }
}

/// Mean of `values` (NaN for none).
pub fn mean(values: &[f64]) -> f64 {
    plain_mean(values.iter().copied())
}

/// Mean absolute error.
pub fn mae(truth: &[f64], point: &[f64]) -> f64 {
    assert_eq!(truth.len(), point.len());
    mean(&truth.iter().zip(point).map(|(f, p)| (f - p).abs()).collect::<Vec<_>>())
}

/// Share of `truth` points with `lo <= y <= hi`.
pub fn coverage(truth: &[f64], lo: &[f64], hi: &[f64]) -> f64 {
    assert!(truth.len() == lo.len() && truth.len() == hi.len());
    let inside = truth.iter().zip(lo.iter().zip(hi)).filter(|(y, (l, h))| *y >= *l && *y <= *h).count();
    inside as f64 / truth.len() as f64
}

/// Weighted quantile loss: `2 · Σ_levels Σ_steps pinball / n_levels / Σ|y|` at `levels`
/// (each one of `q.levels`).
pub fn wql(q: &Quantiles, truth: &[f64], levels: &[f64]) -> f64 {
    assert_eq!(q.steps(), truth.len());
    let mut total = 0.0;
    for &level in levels {
        let col = q.column(level);
        for (y, p) in truth.iter().zip(&col) {
            let e = y - p;
            total += (level * e).max((level - 1.0) * e);
        }
    }
    let scale: f64 = truth.iter().map(|y| y.abs()).sum();
    2.0 * total / levels.len() as f64 / scale
}

/// The script's `metrics`: MAE/MASE of the 0.5 level, 80% / 90% coverage, WQL over 0.1..0.9.
/// `q` must hold 0.05, 0.1, 0.5, 0.9, 0.95 and 0.1..0.9.
pub fn series_metrics(history: &[f64], truth: &[f64], season: usize, q: &Quantiles) -> SeriesMetrics {
    let median = q.column(0.5);
    let mae = mae(truth, &median);
    SeriesMetrics {
        mae,
        mase: mae / mase_scale(history, season),
        wql: wql(q, truth, &LEVELS[1..LEVELS.len() - 1]),
        cov80: coverage(truth, &q.column(0.1), &q.column(0.9)),
        cov90: coverage(truth, &q.column(0.05), &q.column(0.95)),
    }
}

/// Seasonal-naive forecast at [`LEVELS`]: the last season repeated (history forward- then
/// backward-filled), Gaussian intervals from the sample std (ddof 1) of the seasonal
/// differences, widened by `sqrt(floor(h / m) + 1)`.
pub fn seasonal_naive(history: &[f64], season: usize, horizon: usize) -> Quantiles {
    assert!(season >= 1 && history.len() > season, "history shorter than one season");
    let mut filled = history.to_vec();
    let mut last = f64::NAN;
    for v in filled.iter_mut() {
        if v.is_nan() {
            *v = last;
        } else {
            last = *v;
        }
    }
    let first = filled.iter().copied().find(|v| !v.is_nan()).unwrap_or(f64::NAN);
    for v in filled.iter_mut().take_while(|v| v.is_nan()) {
        *v = first;
    }
    let tail = &filled[filled.len() - season..];
    let residuals: Vec<f64> =
        filled.iter().zip(filled.iter().skip(season)).map(|(a, b)| b - a).filter(|d| !d.is_nan()).collect();
    let sigma = sample_std(&residuals);
    let mut values = Vec::with_capacity(horizon * LEVELS.len());
    for h in 0..horizon {
        let point = tail[h % season];
        let sd = sigma * (((h / season) + 1) as f64).sqrt();
        values.extend(NORMAL_QUANTILES.iter().map(|z| point + sd * z));
    }
    Quantiles::new(LEVELS.to_vec(), values)
}

fn sample_std(values: &[f64]) -> f64 {
    if values.len() < 2 {
        return f64::NAN;
    }
    let m = mean(values);
    let ss: f64 = values.iter().map(|v| (v - m) * (v - m)).sum();
    (ss / (values.len() - 1) as f64).sqrt()
}

/// Deviation of a mode's median from the fp32 median at each step, as a share of the fp32
/// 10-90% spread: `|q50_mode - q50_fp32| / (q90_fp32 - q10_fp32)`. Steps whose fp32 spread is
/// not positive are skipped (none occur on the eval set).
pub fn deviation_shares(mode: &Quantiles, fp32: &Quantiles) -> Vec<f64> {
    let (m50, f50) = (mode.column(0.5), fp32.column(0.5));
    let (f10, f90) = (fp32.column(0.1), fp32.column(0.9));
    (0..m50.len())
        .filter_map(|s| {
            let spread = f90[s] - f10[s];
            (spread > 0.0).then(|| (m50[s] - f50[s]).abs() / spread)
        })
        .collect()
}

/// pandas `Series.median()`: the middle value, or the mean of the two middle ones (NaNs dropped).
pub fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The script's `gmean_*_rel_naive`: geometric mean of `model / naive`, ratios that are
/// infinite, zero or NaN dropped (`.replace([np.inf, 0], np.nan).dropna()`).
pub fn gmean_ratio(model: &[f64], naive: &[f64]) -> f64 {
    assert_eq!(model.len(), naive.len());
    let logs: Vec<f64> =
        model.iter().zip(naive).map(|(m, n)| m / n).filter(|r| r.is_finite() && *r != 0.0).map(f64::ln).collect();
    mean(&logs).exp()
}

/// Series where the model's MASE is strictly below the naive one (the script's `wins_vs_naive`).
pub fn wins(model: &[f64], naive: &[f64]) -> usize {
    model.iter().zip(naive).filter(|(m, n)| m < n).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * b.abs().max(1.0)
    }

    fn assert_close(a: f64, b: f64) {
        assert!(close(a, b), "{a} != {b}");
    }

    const Y: [f64; 7] = [1.0, 3.0, 2.0, f64::NAN, 5.0, 4.0, 6.0];

    #[test]
    fn mase_scale_skips_nan_pairs() {
        // evaluate.mase_scale(np.array([1, 3, 2, nan, 5, 4, 6.]), 2) -> 1.6666666666666667
        assert_close(mase_scale(&Y, 2), 1.6666666666666667);
        // evaluate.mase_scale(same, 1) -> 1.5
        assert_close(mase_scale(&Y, 1), 1.5);
        assert!(mase_scale(&[f64::NAN, 1.0, f64::NAN], 1).is_nan());
    }

    #[test]
    fn wql_matches_python() {
        // evaluate.wql(np.array([[8, 10.5, 13], [9, 11, 12.5], [7, 9.5, 11.]]),
        //              np.array([10, 12, 9.]), [0.1, 0.5, 0.9]) -> 0.04838709677419355
        let q = Quantiles::new(vec![0.1, 0.5, 0.9], vec![8.0, 10.5, 13.0, 9.0, 11.0, 12.5, 7.0, 9.5, 11.0]);
        assert_close(wql(&q, &[10.0, 12.0, 9.0], &[0.1, 0.5, 0.9]), 0.04838709677419355);
    }

    const Y2: [f64; 10] = [f64::NAN, 2.0, 4.0, 3.0, f64::NAN, 5.0, 4.5, 6.0, 5.5, 7.0];

    #[test]
    fn seasonal_naive_matches_python() {
        // evaluate.seasonal_naive(np.array([nan, 2, 4, 3, nan, 5, 4.5, 6, 5.5, 7]), 3, 5)
        let expected: [[f64; 11]; 5] = [
            [
                4.498460941207485,
                4.830108831575269,
                5.231708442494651,
                5.521290016704219,
                5.7687267945565575,
                6.0,
                6.2312732054434425,
                6.478709983295781,
                6.768291557505349,
                7.169891168424731,
                7.501539058792514,
            ],
            [
                3.998460941207485,
                4.330108831575269,
                4.731708442494651,
                5.021290016704219,
                5.2687267945565575,
                5.5,
                5.7312732054434425,
                5.978709983295781,
                6.268291557505349,
                6.669891168424731,
                7.001539058792514,
            ],
            [
                5.498460941207485,
                5.830108831575269,
                6.231708442494651,
                6.521290016704219,
                6.7687267945565575,
                7.0,
                7.2312732054434425,
                7.478709983295781,
                7.768291557505349,
                8.16989116842473,
                8.501539058792513,
            ],
            [
                3.8765030986226927,
                4.345524043113239,
                4.913471659519187,
                5.323001849179709,
                5.672930296248385,
                6.0,
                6.327069703751615,
                6.676998150820291,
                7.086528340480814,
                7.654475956886761,
                8.123496901377306,
            ],
            [
                3.3765030986226927,
                3.8455240431132394,
                4.413471659519187,
                4.823001849179709,
                5.172930296248385,
                5.5,
                5.827069703751615,
                6.176998150820291,
                6.586528340480814,
                7.154475956886761,
                7.623496901377306,
            ],
        ];
        let q = seasonal_naive(&Y2, 3, 5);
        assert_eq!(q.steps(), 5);
        for (s, row) in expected.iter().enumerate() {
            for (j, &e) in row.iter().enumerate() {
                assert_close(q.values[s * 11 + j], e);
            }
        }
    }

    #[test]
    fn series_metrics_match_python() {
        // evaluate.metrics("sn", "s", 3, y2, np.array([6.5, 7, 8.5, 6, 9.]), evaluate.seasonal_naive(y2, 3, 5))
        // -> MAE 1.4, MASE 1.018181818181818, cov80 0.4, cov90 0.8, WQL 0.16009581636736875
        let q = seasonal_naive(&Y2, 3, 5);
        let m = series_metrics(&Y2, &[6.5, 7.0, 8.5, 6.0, 9.0], 3, &q);
        assert_close(m.mae, 1.4);
        assert_close(m.mase, 1.018181818181818);
        assert_close(m.cov80, 0.4);
        assert_close(m.cov90, 0.8);
        assert_close(m.wql, 0.16009581636736875);
    }

    #[test]
    fn coverage_is_inclusive() {
        assert_close(coverage(&[1.0, 2.0, 3.0, 4.0], &[1.0, 2.5, 0.0, 5.0], &[2.0, 3.0, 3.0, 6.0]), 0.5);
    }

    #[test]
    fn aggregates_follow_pandas() {
        // pd.Series([3, 1, 4, 1.5]).median() -> 2.25; pd.Series([3, 1, 4.]).median() -> 3.0
        assert_close(median(&[3.0, 1.0, 4.0, 1.5]), 2.25);
        assert_close(median(&[3.0, 1.0, 4.0]), 3.0);
        // g = [1, 4, 3, 0, 2, 5], n = [2, 2, 0, 1, nan, 2.5]:
        // np.exp(np.log((g / n).replace([np.inf, 0], np.nan).dropna()).mean()) -> 1.2599210498948732
        // int((g < n).sum()) -> 2
        let g = [1.0, 4.0, 3.0, 0.0, 2.0, 5.0];
        let n = [2.0, 2.0, 0.0, 1.0, f64::NAN, 2.5];
        assert_close(gmean_ratio(&g, &n), 1.2599210498948732);
        assert_eq!(wins(&g, &n), 2);
    }

    #[test]
    fn deviation_is_share_of_fp32_spread() {
        let levels = vec![0.1, 0.5, 0.9];
        let fp32 = Quantiles::new(levels.clone(), vec![0.0, 1.0, 2.0, 10.0, 20.0, 30.0, 5.0, 5.0, 5.0]);
        let mode = Quantiles::new(levels, vec![0.0, 1.5, 2.0, 10.0, 18.0, 30.0, 0.0, 9.0, 9.0]);
        // |1.5 - 1| / 2 = 0.25, |18 - 20| / 20 = 0.1; the zero-spread step is skipped.
        let d = deviation_shares(&mode, &fp32);
        assert_eq!(d.len(), 2);
        assert_close(d[0], 0.25);
        assert_close(d[1], 0.1);
        assert!(deviation_shares(&fp32, &fp32).iter().all(|&x| x == 0.0));
    }

    #[test]
    fn column_picks_levels() {
        let q = Quantiles::new(vec![0.1, 0.5], vec![1.0, 2.0, 3.0, 4.0]);
        assert_eq!(q.column(0.5), vec![2.0, 4.0]);
        assert_eq!(q.column(0.1), vec![1.0, 3.0]);
    }
}
