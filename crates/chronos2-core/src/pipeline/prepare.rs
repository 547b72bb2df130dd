//! [`SeriesInput`]s -> [`PreparedInput`]s: row layout, categorical encoding and validation, as
//! `chronos/chronos2/preprocess.py` (`from_list_of_dicts` / `from_data_frame` /
//! `_build_prepared_inputs`).

use std::collections::HashMap;

use crate::error::{Error, Result};

use super::input::{Covariate, CovariateValues, FutureValues, SeriesInput};

/// One item ready for batching (the reference's `PreparedInput`).
///
/// Rows are `[targets..., past-only covariates..., known-future covariates...]`.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedInput {
    /// `(n_rows, context_len)` row-major, NaN = missing.
    pub context: Vec<f32>,
    pub context_len: usize,
    /// `(n_rows, prediction_length)` row-major: known future values of the known-future covariate
    /// rows, NaN everywhere else (targets, past-only covariates, unknown values).
    pub future_covariates: Vec<f32>,
    pub prediction_length: usize,
    pub n_targets: usize,
    /// Past-only plus known-future covariates.
    pub n_covariates: usize,
    pub n_future_covariates: usize,
}

impl PreparedInput {
    /// `n_targets + n_covariates`.
    pub fn n_rows(&self) -> usize {
        self.n_targets + self.n_covariates
    }

    /// Row `r` of the context.
    pub fn context_row(&self, r: usize) -> &[f32] {
        &self.context[r * self.context_len..(r + 1) * self.context_len]
    }

    /// Row `r` of the future covariates.
    pub fn future_row(&self, r: usize) -> &[f32] {
        &self.future_covariates[r * self.prediction_length..(r + 1) * self.prediction_length]
    }
}

/// Sorts every item's covariates by name (byte order = Python's `sorted` on `str`): the row order
/// of the reference's list-of-dicts input. The DataFrame input keeps column order instead.
pub fn sort_covariates_by_name(items: &mut [SeriesInput]) {
    for item in items {
        item.covariates.sort_by(|a, b| a.name.cmp(&b.name));
    }
}

/// How the future of a covariate is known, ignoring the values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    PastOnly,
    /// Known-future; `true` when values are provided.
    KnownFuture(bool),
}

fn role(cov: &Covariate) -> Role {
    match &cov.future {
        FutureValues::PastOnly => Role::PastOnly,
        FutureValues::KnownUnavailable => Role::KnownFuture(false),
        // An empty value list is "unavailable", as `_is_unavailable` in the reference.
        FutureValues::Known(values) => Role::KnownFuture(!values.is_empty()),
    }
}

fn kind_name(values: &CovariateValues) -> &'static str {
    match values {
        CovariateValues::Numeric(_) => "numeric",
        CovariateValues::Categorical(_) => "categorical",
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::PastOnly => "past-only",
        Role::KnownFuture(true) => "known-future with values",
        Role::KnownFuture(false) => "known-future without values",
    }
}

/// Checks one item on its own and against the first item's schema.
fn validate(items: &[SeriesInput], prediction_length: usize, check_future_values: bool) -> Result<()> {
    let has_covariates = items.iter().any(|i| !i.covariates.is_empty());
    let first = &items[0];
    for (idx, item) in items.iter().enumerate() {
        if item.targets.is_empty() {
            return Err(Error::InvalidInput(format!("item {idx}: no target series")));
        }
        let len = item.targets[0].len();
        if len == 0 {
            return Err(Error::InvalidInput(format!("item {idx}: target series are empty (length 0)")));
        }
        for (t, target) in item.targets.iter().enumerate() {
            if target.len() != len {
                return Err(Error::InvalidInput(format!(
                    "item {idx}: target 0 has length {len} but target {t} has length {}",
                    target.len()
                )));
            }
        }
        for (c, cov) in item.covariates.iter().enumerate() {
            if item.covariates[..c].iter().any(|o| o.name == cov.name) {
                return Err(Error::InvalidInput(format!("item {idx}: covariate '{}' is given twice", cov.name)));
            }
            if cov.past.len() != len {
                return Err(Error::InvalidInput(format!(
                    "item {idx}: target has length {len} but covariate '{}' has length {}",
                    cov.name,
                    cov.past.len()
                )));
            }
            if let FutureValues::Known(future) = &cov.future {
                if check_future_values && !future.is_empty() && future.len() != prediction_length {
                    return Err(Error::InvalidInput(format!(
                        "item {idx}: covariate '{}' has {} future values but prediction_length is {prediction_length}",
                        cov.name,
                        future.len()
                    )));
                }
                if let (CovariateValues::Numeric(_), CovariateValues::Categorical(labels)) = (&cov.past, future) {
                    numeric_future(labels, idx, &cov.name)?;
                }
            }
        }
        if !has_covariates {
            // Covariate-free items may mix univariate and multivariate targets
            // (the reference's list-of-tensors input).
            continue;
        }
        if item.targets.len() != first.targets.len() {
            return Err(Error::InvalidInput(format!(
                "item {idx}: all items with covariates must have the same number of targets; item 0 has {} but item {idx} has {}",
                first.targets.len(),
                item.targets.len()
            )));
        }
        let names: Vec<&str> = item.covariates.iter().map(|c| c.name.as_str()).collect();
        let first_names: Vec<&str> = first.covariates.iter().map(|c| c.name.as_str()).collect();
        if names != first_names {
            return Err(Error::InvalidInput(format!(
                "item {idx}: covariates {names:?} differ from item 0's {first_names:?} (all items must have the same covariates in the same order)"
            )));
        }
        for (cov, first_cov) in item.covariates.iter().zip(&first.covariates) {
            if kind_name(&cov.past) != kind_name(&first_cov.past) {
                return Err(Error::InvalidInput(format!(
                    "item {idx}: covariate '{}' is {} but {} in item 0",
                    cov.name,
                    kind_name(&cov.past),
                    kind_name(&first_cov.past)
                )));
            }
            if role(cov) != role(first_cov) {
                return Err(Error::InvalidInput(format!(
                    "item {idx}: covariate '{}' is {} but {} in item 0",
                    cov.name,
                    role_name(role(cov)),
                    role_name(role(first_cov))
                )));
            }
        }
    }
    Ok(())
}

/// Converts items to [`PreparedInput`]s exactly as the reference's `preprocess` module does
/// (with `use_target_encoding=True`).
///
/// * Row order: targets, past-only covariates, known-future covariates (each group in the order
///   of `covariates`; call [`sort_covariates_by_name`] first for the list-of-dicts order).
/// * Numeric covariates are used as they are. Categorical covariates are encoded over *all* items
///   together: with exactly one target, per-item target encoding
///   `(item_mean + sum_y[cat]) / (1 + count[cat])` (NaN targets excluded, a missing category is its
///   own category, an unseen future category gets the item mean); otherwise ordinal codes of the
///   sorted categories with the missing category coded `n_categories` and unseen future categories
///   NaN.
/// * Items with covariates must share the schema: same number of targets, same covariate names,
///   kinds and future roles. Covariate-free items may have different numbers of targets.
pub fn prepare(items: &[SeriesInput], prediction_length: usize) -> Result<Vec<PreparedInput>> {
    prepare_impl(items, prediction_length, true)
}

/// [`prepare`] for `embed`: the reference embeds with `prediction_length = 0`; here known future
/// values are not validated and ignored (known-future covariates keep their row position).
pub(crate) fn prepare_without_future(items: &[SeriesInput]) -> Result<Vec<PreparedInput>> {
    prepare_impl(items, 0, false)
}

fn prepare_impl(items: &[SeriesInput], prediction_length: usize, with_future: bool) -> Result<Vec<PreparedInput>> {
    if items.is_empty() {
        return Ok(Vec::new());
    }
    validate(items, prediction_length, with_future)?;

    // Column order: past-only first, then known-future; the schema is the first item's.
    let first = &items[0];
    let mut columns: Vec<usize> =
        (0..first.covariates.len()).filter(|&c| role(&first.covariates[c]) == Role::PastOnly).collect();
    columns.extend((0..first.covariates.len()).filter(|&c| role(&first.covariates[c]) != Role::PastOnly));
    let n_future_covariates =
        columns.len() - columns.iter().filter(|&&c| role(&first.covariates[c]) == Role::PastOnly).count();
    let target_encode = first.targets.len() == 1;

    // Encoded (past, future) values per column and item.
    let mut encoded: Vec<Vec<EncodedColumn>> = Vec::with_capacity(columns.len());
    for &c in &columns {
        let per_item = match &first.covariates[c].past {
            CovariateValues::Numeric(_) => items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    let cov = &item.covariates[c];
                    let past = match &cov.past {
                        CovariateValues::Numeric(v) => v.clone(),
                        CovariateValues::Categorical(_) => unreachable!("validated"),
                    };
                    let future = match &cov.future {
                        FutureValues::Known(CovariateValues::Numeric(v)) if with_future && !v.is_empty() => {
                            Some(v.clone())
                        }
                        FutureValues::Known(CovariateValues::Categorical(labels))
                            if with_future && !labels.is_empty() =>
                        {
                            Some(numeric_future(labels, i, &cov.name)?)
                        }
                        _ => None,
                    };
                    Ok((past, future))
                })
                .collect::<Result<Vec<_>>>()?,
            CovariateValues::Categorical(_) => encode_categorical(items, c, target_encode, with_future),
        };
        encoded.push(per_item);
    }

    let n_covariates = columns.len();
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let n_targets = item.targets.len();
        let len = item.targets[0].len();
        let n_rows = n_targets + n_covariates;
        let mut context = Vec::with_capacity(n_rows * len);
        for t in &item.targets {
            context.extend_from_slice(t);
        }
        let mut future = vec![f32::NAN; n_rows * prediction_length];
        for (j, col) in encoded.iter().enumerate() {
            let (past, fut) = &col[i];
            context.extend_from_slice(past);
            if let Some(fut) = fut {
                let row = n_targets + j;
                future[row * prediction_length..(row + 1) * prediction_length].copy_from_slice(fut);
            }
        }
        out.push(PreparedInput {
            context,
            context_len: len,
            future_covariates: future,
            prediction_length,
            n_targets,
            n_covariates,
            n_future_covariates,
        });
    }
    Ok(out)
}

/// The future values of a covariate that is numeric in the past but given as text, read as the
/// reference reads them (`Series.to_numpy(dtype=float32)`: Python's `float()`; a missing value is
/// NaN).
fn numeric_future(labels: &[Option<String>], idx: usize, name: &str) -> Result<Vec<f32>> {
    labels
        .iter()
        .map(|label| match label {
            None => Ok(f32::NAN),
            Some(text) => python_float(text).map(|v| v as f32).ok_or_else(|| {
                Error::InvalidInput(format!(
                    "item {idx}: covariate '{name}' is numeric in the past but its future value {text:?} is not a number"
                ))
            }),
        })
        .collect()
}

/// Python's `float(text)`: surrounding whitespace, `inf` / `nan` in any case, and single
/// underscores between digits are accepted.
fn python_float(text: &str) -> Option<f64> {
    let text = text.trim();
    let bytes = text.as_bytes();
    let digit = |i: usize| bytes.get(i).is_some_and(u8::is_ascii_digit);
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'_' && !(i > 0 && digit(i - 1) && digit(i + 1)) {
            return None;
        }
    }
    text.replace('_', "").parse::<f64>().ok()
}

/// One covariate of one item: encoded past values and, when known, future values.
type EncodedColumn = (Vec<f32>, Option<Vec<f32>>);

fn categorical(values: &CovariateValues) -> &[Option<String>] {
    match values {
        CovariateValues::Categorical(v) => v,
        CovariateValues::Numeric(_) => unreachable!("validated"),
    }
}

/// `_encode_categorical` + `_target_encode` for covariate `c` over all items.
fn encode_categorical(items: &[SeriesInput], c: usize, target_encode: bool, with_future: bool) -> Vec<EncodedColumn> {
    // pandas categories: the sorted distinct non-missing labels of the stacked past values.
    let mut labels: Vec<&str> = items
        .iter()
        .flat_map(|item| categorical(&item.covariates[c].past).iter().flatten().map(String::as_str))
        .collect();
    labels.sort_unstable();
    labels.dedup();
    let codes: HashMap<&str, usize> = labels.iter().enumerate().map(|(i, l)| (*l, i)).collect();
    let n_real = labels.len();
    let nan_slot = n_real;
    let n_categories = n_real + 1; // also the "unseen in the past" sentinel slot
    let n_slots = n_categories + 1;

    let past_code = |v: &Option<String>| v.as_deref().map_or(nan_slot, |s| codes[s]);
    let future_code = |v: &Option<String>| match v.as_deref() {
        None => nan_slot,
        Some(s) => codes.get(s).copied().unwrap_or(n_categories),
    };

    items
        .iter()
        .map(|item| {
            let cov = &item.covariates[c];
            let past_codes: Vec<usize> = categorical(&cov.past).iter().map(past_code).collect();
            let future_codes: Option<Vec<usize>> = match &cov.future {
                FutureValues::Known(CovariateValues::Categorical(labels)) if with_future && !labels.is_empty() => {
                    Some(labels.iter().map(future_code).collect())
                }
                // Numbers never equal a past label (pandas' `get_indexer` on string categories):
                // NaN is the missing category, any other number is unseen.
                FutureValues::Known(CovariateValues::Numeric(values)) if with_future && !values.is_empty() => {
                    Some(values.iter().map(|v| if v.is_nan() { nan_slot } else { n_categories }).collect())
                }
                _ => None,
            };
            if target_encode {
                // Per-item smoothed target mean per category, in f64 as numpy's bincount.
                let target = &item.targets[0];
                let (mut item_sum, mut item_count) = (0f64, 0f64);
                let mut sums = vec![0f64; n_slots];
                let mut counts = vec![0f64; n_slots];
                for (&y, &code) in target.iter().zip(&past_codes) {
                    if y.is_finite() {
                        item_sum += y as f64;
                        item_count += 1.0;
                        sums[code] += y as f64;
                        counts[code] += 1.0;
                    }
                }
                let item_mean = if item_count > 0.0 { item_sum / item_count } else { 0.0 };
                let lookup: Vec<f32> =
                    (0..n_slots).map(|s| ((item_mean + sums[s]) / (1.0 + counts[s])) as f32).collect();
                (
                    past_codes.iter().map(|&k| lookup[k]).collect(),
                    future_codes.map(|f| f.iter().map(|&k| lookup[k]).collect()),
                )
            } else {
                (
                    past_codes.iter().map(|&k| k as f32).collect(),
                    future_codes
                        .map(|f| f.iter().map(|&k| if k == n_categories { f32::NAN } else { k as f32 }).collect()),
                )
            }
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::excessive_precision)]
mod tests {
    use super::*;

    fn cat(values: &[Option<&str>]) -> CovariateValues {
        CovariateValues::Categorical(values.iter().map(|v| v.map(str::to_string)).collect())
    }

    fn num(values: &[f32]) -> CovariateValues {
        CovariateValues::Numeric(values.to_vec())
    }

    fn cov(name: &str, past: CovariateValues, future: FutureValues) -> Covariate {
        Covariate { name: name.to_string(), past, future }
    }

    fn close(a: &[f32], e: &[f32]) {
        assert_eq!(a.len(), e.len());
        for (i, (x, y)) in a.iter().zip(e).enumerate() {
            assert!(
                (x.is_nan() && y.is_nan()) || (x - y).abs() <= 1e-6 * (1.0 + y.abs()),
                "index {i}: got {x}, expected {y} (all: {a:?})"
            );
        }
    }

    /// Two items with one target, a past-only numeric covariate `b`, a known-future categorical `a`
    /// and a known-future-without-values numeric `c` (list-of-dicts order after sorting).
    fn mixed_items() -> Vec<SeriesInput> {
        vec![
            SeriesInput {
                targets: vec![vec![1.0, 2.0, f32::NAN, 4.0, 5.0]],
                covariates: vec![
                    cov("b", num(&[0.5, 0.6, 0.7, 0.8, 0.9]), FutureValues::PastOnly),
                    cov(
                        "a",
                        cat(&[Some("x"), Some("y"), Some("x"), None, Some("y")]),
                        FutureValues::Known(cat(&[Some("y"), Some("z"), None])),
                    ),
                    cov("c", num(&[1.0, 1.0, 1.0, 1.0, 1.0]), FutureValues::KnownUnavailable),
                ],
            },
            SeriesInput {
                targets: vec![vec![10.0, 20.0, 30.0]],
                covariates: vec![
                    cov("b", num(&[1.5, 1.6, 1.7]), FutureValues::PastOnly),
                    cov(
                        "a",
                        cat(&[Some("w"), Some("x"), Some("w")]),
                        FutureValues::Known(cat(&[Some("x"), Some("w"), Some("y")])),
                    ),
                    cov("c", num(&[2.0, 2.0, 2.0]), FutureValues::KnownUnavailable),
                ],
            },
        ]
    }

    #[test]
    fn target_encoding_matches_reference() {
        // Reference (python, chronos-forecasting 2.3.2):
        //   from chronos.chronos2.preprocess import from_list_of_dicts
        //   from_list_of_dicts([
        //     {"target": np.array([1,2,np.nan,4,5], dtype=np.float32),
        //      "past_covariates": {"b": np.array([.5,.6,.7,.8,.9], dtype=np.float32),
        //                          "a": np.array(["x","y","x",None,"y"], dtype=object),
        //                          "c": np.ones(5, dtype=np.float32)},
        //      "future_covariates": {"a": np.array(["y","z",None], dtype=object), "c": None}},
        //     {"target": np.array([10,20,30], dtype=np.float32),
        //      "past_covariates": {"b": np.array([1.5,1.6,1.7], dtype=np.float32),
        //                          "a": np.array(["w","x","w"], dtype=object),
        //                          "c": np.full(3, 2, dtype=np.float32)},
        //      "future_covariates": {"a": np.array(["x","w","y"], dtype=object), "c": None}}], 3)
        let mut items = mixed_items();
        sort_covariates_by_name(&mut items);
        let prepared = prepare(&items, 3).unwrap();
        assert_eq!(prepared.len(), 2);
        let p0 = &prepared[0];
        assert_eq!((p0.n_targets, p0.n_covariates, p0.n_future_covariates), (1, 3, 2));
        // rows: target, b (past-only), a, c (known-future, sorted)
        close(&p0.context, &REF_CTX0);
        close(&p0.future_covariates, &REF_FUT0);
        close(&prepared[1].context, &REF_CTX1);
        close(&prepared[1].future_covariates, &REF_FUT1);
    }

    #[test]
    fn ordinal_encoding_matches_reference() {
        // Same as above with two targets (the second = 2 * the first), which selects ordinal codes.
        let mut items = mixed_items();
        for item in &mut items {
            let second: Vec<f32> = item.targets[0].iter().map(|v| v * 2.0).collect();
            item.targets.push(second);
        }
        sort_covariates_by_name(&mut items);
        let prepared = prepare(&items, 3).unwrap();
        let p0 = &prepared[0];
        assert_eq!((p0.n_targets, p0.n_covariates, p0.n_future_covariates), (2, 3, 2));
        close(&p0.context, &REF_ORD_CTX0);
        close(&p0.future_covariates, &REF_ORD_FUT0);
        close(&prepared[1].context, &REF_ORD_CTX1);
        close(&prepared[1].future_covariates, &REF_ORD_FUT1);
    }

    #[test]
    fn covariate_free_items_may_mix_target_counts() {
        let items = vec![
            SeriesInput::univariate(vec![1.0, 2.0, 3.0]),
            SeriesInput { targets: vec![vec![1.0, 2.0], vec![3.0, 4.0]], covariates: vec![] },
        ];
        let prepared = prepare(&items, 4).unwrap();
        assert_eq!(prepared[0].n_rows(), 1);
        assert_eq!(prepared[1].n_rows(), 2);
        assert_eq!(prepared[1].context, vec![1.0, 2.0, 3.0, 4.0]);
        assert!(prepared[1].future_covariates.iter().all(|v| v.is_nan()));
        assert_eq!(prepared[1].future_covariates.len(), 8);
    }

    #[test]
    fn row_order_keeps_given_order_within_groups() {
        let items = vec![SeriesInput {
            targets: vec![vec![1.0, 2.0]],
            covariates: vec![
                cov("z_known", num(&[7.0, 8.0]), FutureValues::Known(num(&[9.0]))),
                cov("y_past", num(&[3.0, 4.0]), FutureValues::PastOnly),
                cov("a_past", num(&[5.0, 6.0]), FutureValues::PastOnly),
            ],
        }];
        let p = &prepare(&items, 1).unwrap()[0];
        assert_eq!(p.context, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]);
        close(&p.future_covariates, &[f32::NAN, f32::NAN, f32::NAN, 9.0]);
        assert_eq!(p.n_future_covariates, 1);
    }

    fn err(items: &[SeriesInput], h: usize) -> String {
        match prepare(items, h) {
            Err(Error::InvalidInput(m)) => m,
            other => panic!("expected InvalidInput, got {other:?}"),
        }
    }

    #[test]
    fn validation_errors_say_what_and_where() {
        let mut items = mixed_items();
        items[1].covariates[0].past = num(&[1.0, 2.0]);
        assert_eq!(err(&items, 3), "item 1: target has length 3 but covariate 'b' has length 2");

        let items = mixed_items();
        assert_eq!(err(&items, 4), "item 0: covariate 'a' has 3 future values but prediction_length is 4");

        let mut items = mixed_items();
        items[1].covariates.swap(0, 1);
        assert!(err(&items, 3).starts_with("item 1: covariates [\"a\", \"b\", \"c\"] differ"));

        let mut items = mixed_items();
        items[1].covariates[2].future = FutureValues::PastOnly;
        assert_eq!(err(&items, 3), "item 1: covariate 'c' is past-only but known-future without values in item 0");

        let mut items = mixed_items();
        items[1].targets.push(vec![0.0; 3]);
        assert!(err(&items, 3).starts_with("item 1: all items with covariates must have the same number of targets"));

        let items = vec![SeriesInput { targets: vec![], covariates: vec![] }];
        assert_eq!(err(&items, 3), "item 0: no target series");

        let items = vec![SeriesInput::univariate(vec![])];
        assert_eq!(err(&items, 3), "item 0: target series are empty (length 0)");

        let items = vec![SeriesInput { targets: vec![vec![1.0; 3], vec![1.0; 2]], covariates: vec![] }];
        assert_eq!(err(&items, 3), "item 0: target 0 has length 3 but target 1 has length 2");

        let mut items = mixed_items();
        items[0].covariates[0].future = FutureValues::Known(cat(&[Some("1"), Some("x"), None]));
        assert_eq!(
            err(&items, 3),
            "item 0: covariate 'b' is numeric in the past but its future value \"x\" is not a number"
        );

        let mut items = mixed_items();
        items[0].covariates[2].name = "b".into();
        assert_eq!(err(&items, 3), "item 0: covariate 'b' is given twice");
    }

    /// What the reference's `from_list_of_dicts` made of these future strings of a numeric
    /// covariate (chronos-forecasting 2.3.2, numpy 2.4): a value, or "could not convert".
    #[test]
    fn text_future_of_a_numeric_covariate_reads_as_python_float() {
        for (text, value) in [
            (" 1.5 ", 1.5),
            ("1_0", 10.0),
            ("INF", f64::INFINITY),
            ("-Infinity", f64::NEG_INFINITY),
            ("1e3", 1000.0),
            ("+2", 2.0),
            (".5", 0.5),
            ("5.", 5.0),
        ] {
            assert_eq!(python_float(text), Some(value), "{text:?}");
        }
        assert!(python_float("nan").unwrap().is_nan() && python_float("NaN").unwrap().is_nan());
        for text in ["0x10", "", "1,5", "none", "_1", "1__0", "1_"] {
            assert_eq!(python_float(text), None, "{text:?}");
        }
        let mut items = mixed_items();
        for item in &mut items {
            item.covariates[2].future = FutureValues::Known(cat(&[Some("1.5"), None, Some(" 2 ")]));
        }
        let prepared = prepare(&items, 3).unwrap();
        close(prepared[0].future_row(3), &[1.5, f32::NAN, 2.0]);
    }

    /// A number never matches a past category (pandas' `get_indexer` of floats on string
    /// categories): it is encoded as an unseen category, NaN as the missing one.
    #[test]
    fn numeric_future_of_a_categorical_covariate_is_unseen() {
        let with_future = |future: CovariateValues| {
            let mut items = mixed_items();
            items[0].covariates[1].future = FutureValues::Known(future);
            items[1].covariates[1].future = FutureValues::Known(cat(&[Some("x"), Some("x"), Some("x")]));
            prepare(&items, 3).unwrap()[0].future_row(2).to_vec()
        };
        let numbers = with_future(num(&[1.0, f32::NAN, 7.0]));
        let labels = with_future(cat(&[Some("never seen"), None, Some("neither")]));
        assert_eq!(
            numbers.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            labels.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
    }

    #[test]
    fn empty_known_future_values_mean_unavailable() {
        let mut items = mixed_items();
        for item in &mut items {
            item.covariates[2].future = FutureValues::Known(CovariateValues::Numeric(vec![]));
        }
        let with_empty = prepare(&items, 3).unwrap();
        let reference = prepare(&mixed_items(), 3).unwrap();
        assert_eq!(format!("{with_empty:?}"), format!("{reference:?}"));
    }

    const N: f32 = f32::NAN;
    // Printed by the reference calls quoted in the tests above (N = NaN).
    const REF_CTX0: [f32; 20] = [
        1.0,
        2.0,
        N,
        4.0,
        5.0,
        0.5,
        0.6000000238418579,
        0.699999988079071,
        0.800000011920929,
        0.8999999761581421,
        2.0,
        3.3333332538604736,
        2.0,
        3.5,
        3.3333332538604736,
        1.0,
        1.0,
        1.0,
        1.0,
        1.0,
    ];
    const REF_FUT0: [f32; 12] = [N, N, N, N, N, N, 3.3333332538604736, 3.0, 3.5, N, N, N];
    const REF_CTX1: [f32; 12] =
        [10.0, 20.0, 30.0, 1.5, 1.600000023841858, 1.7000000476837158, 20.0, 20.0, 20.0, 2.0, 2.0, 2.0];
    const REF_FUT1: [f32; 12] = [N, N, N, N, N, N, 20.0, 20.0, 20.0, N, N, N];
    const REF_ORD_CTX0: [f32; 25] = [
        1.0,
        2.0,
        N,
        4.0,
        5.0,
        2.0,
        4.0,
        N,
        8.0,
        10.0,
        0.5,
        0.6000000238418579,
        0.699999988079071,
        0.800000011920929,
        0.8999999761581421,
        1.0,
        2.0,
        1.0,
        3.0,
        2.0,
        1.0,
        1.0,
        1.0,
        1.0,
        1.0,
    ];
    const REF_ORD_FUT0: [f32; 15] = [N, N, N, N, N, N, N, N, N, 2.0, N, 3.0, N, N, N];
    const REF_ORD_CTX1: [f32; 15] =
        [10.0, 20.0, 30.0, 20.0, 40.0, 60.0, 1.5, 1.600000023841858, 1.7000000476837158, 0.0, 1.0, 0.0, 2.0, 2.0, 2.0];
    const REF_ORD_FUT1: [f32; 15] = [N, N, N, N, N, N, N, N, N, 1.0, 0.0, 2.0, N, N, N];
}
