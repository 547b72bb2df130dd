//! Pipeline inputs: one [`SeriesInput`] per item, as the reference's list-of-dicts / DataFrame forms.

/// Values of one covariate over a span of time.
#[derive(Debug, Clone, PartialEq)]
pub enum CovariateValues {
    /// Real values; NaN marks a missing value.
    Numeric(Vec<f32>),
    /// Category labels; `None` marks a missing value (its own category, as in pandas).
    Categorical(Vec<Option<String>>),
}

impl CovariateValues {
    pub fn len(&self) -> usize {
        match self {
            CovariateValues::Numeric(v) => v.len(),
            CovariateValues::Categorical(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What is known about a covariate over the forecast horizon.
#[derive(Debug, Clone, PartialEq)]
pub enum FutureValues {
    /// Past-only covariate: nothing is known about its future.
    PastOnly,
    /// Known-future covariate whose future values are not available (the reference's `{name: None}`).
    KnownUnavailable,
    /// Known-future covariate with `prediction_length` future values.
    Known(CovariateValues),
}

/// One covariate of an item.
#[derive(Debug, Clone, PartialEq)]
pub struct Covariate {
    pub name: String,
    /// Values over the item's context (same length as the targets).
    pub past: CovariateValues,
    pub future: FutureValues,
}

/// One item (a series, or several target series sharing covariates) to forecast.
///
/// Rows given to the model are `[targets..., past-only covariates..., known-future covariates...]`,
/// each covariate group in the order of `covariates` (the DataFrame path keeps column order; the
/// list-of-dicts path sorts names first, as the reference does).
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesInput {
    /// `n_targets` series of equal length `T`; NaN marks a missing value.
    pub targets: Vec<Vec<f32>>,
    pub covariates: Vec<Covariate>,
}

impl SeriesInput {
    /// A single univariate target without covariates.
    pub fn univariate(values: Vec<f32>) -> Self {
        SeriesInput { targets: vec![values], covariates: Vec::new() }
    }
}
