//! The options of `predict_df` / `embed_df` and the names and defaults they share with the CLI
//! and the Python package (quantile levels, pooling names).

use chronos2_core::pipeline::{Pooling, PredictOptions};

use super::{Columns, Freq};
use crate::error::{Error, Result};

/// The reference's default quantile levels of `predict_df`.
pub const DEFAULT_QUANTILE_LEVELS: [f64; 9] = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9];

/// Options of [`crate::Chronos2::predict_df`] (defaults as the reference's `predict_df`).
#[derive(Debug, Clone, PartialEq)]
pub struct PredictDfOptions {
    pub columns: Columns,
    pub prediction_length: usize,
    /// Output quantile levels; column headers are `str(level)` as Python prints the float.
    pub quantile_levels: Vec<f64>,
    pub batch_size: usize,
    pub context_length: Option<usize>,
    pub cross_learning: bool,
    /// Frequency of the forecast timestamps; `None` = inferred (`pandas.infer_freq`).
    pub freq: Option<Freq>,
}

impl PredictDfOptions {
    pub fn new(prediction_length: usize) -> Self {
        PredictDfOptions {
            columns: Columns::default(),
            prediction_length,
            quantile_levels: DEFAULT_QUANTILE_LEVELS.to_vec(),
            batch_size: 256,
            context_length: None,
            cross_learning: false,
            freq: None,
        }
    }
}

impl PredictDfOptions {
    /// The pipeline options these stand for.
    pub fn predict_options(&self) -> PredictOptions {
        PredictOptions {
            prediction_length: Some(self.prediction_length),
            quantile_levels: self.quantile_levels.iter().map(|&q| q as f32).collect(),
            batch_size: self.batch_size,
            context_length: self.context_length,
            cross_learning: self.cross_learning,
            ..PredictOptions::default()
        }
    }
}

/// Options of [`crate::Chronos2::embed_df`].
#[derive(Debug, Clone, PartialEq)]
pub struct EmbedDfOptions {
    pub columns: Columns,
    pub pooling: Pooling,
    pub batch_size: usize,
    pub context_length: Option<usize>,
}

impl Default for EmbedDfOptions {
    fn default() -> Self {
        EmbedDfOptions { columns: Columns::default(), pooling: DEFAULT_POOLING, batch_size: 256, context_length: None }
    }
}

/// The pooling of embeddings unless asked otherwise (the reference's `embed`: the `[REG]` token).
pub const DEFAULT_POOLING: Pooling = Pooling::RegToken;

/// The name of a pooling mode (the CLI's `--pooling`, Python's `pooling=`).
pub const fn pooling_name(p: Pooling) -> &'static str {
    match p {
        Pooling::RegToken => "reg_token",
        Pooling::MeanContext => "mean_context",
        Pooling::LastContextPatch => "last_context_patch",
        Pooling::All => "all",
    }
}

/// The pooling modes of embeddings: the name, its aliases, the mode.
pub const POOLING_NAMES: [(&str, &[&str], Pooling); 4] = [
    (pooling_name(Pooling::RegToken), &["reg"], Pooling::RegToken),
    (pooling_name(Pooling::MeanContext), &["mean"], Pooling::MeanContext),
    (pooling_name(Pooling::LastContextPatch), &["last"], Pooling::LastContextPatch),
    (pooling_name(Pooling::All), &["none"], Pooling::All),
];

/// The pooling mode of a name or alias (any case, `-` for `_`).
pub fn parse_pooling(name: &str) -> Result<Pooling> {
    let wanted = name.trim().to_ascii_lowercase().replace('-', "_");
    let found = POOLING_NAMES.iter().find(|(n, aliases, _)| *n == wanted || aliases.contains(&wanted.as_str()));
    found.map(|n| n.2).ok_or_else(|| {
        let names: Vec<&str> = POOLING_NAMES.iter().map(|n| n.0).collect();
        let (last, first) = names.split_last().expect("pooling modes");
        Error::InvalidArgument(format!("unknown pooling '{name}' (expected {} or {last})", first.join(", ")))
    })
}

/// Parses `0.1,0.5,0.9` (or `all` = the model's levels, given as `model_levels`).
pub fn parse_quantile_levels(s: &str, model_levels: &[f64]) -> Result<Vec<f64>> {
    if s.trim().eq_ignore_ascii_case("all") {
        return Ok(model_levels.to_vec());
    }
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let q: f64 =
            part.parse().map_err(|_| Error::InvalidArgument(format!("quantile level '{part}' is not a number")))?;
        if !(0.0..=1.0).contains(&q) || q.is_nan() {
            return Err(Error::InvalidArgument(format!("quantile level {part} must be between 0 and 1")));
        }
        out.push(q);
    }
    if out.is_empty() {
        return Err(Error::InvalidArgument("no quantile levels given".into()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooling_names_and_aliases_parse() {
        for (name, aliases, p) in POOLING_NAMES {
            assert_eq!(parse_pooling(name).unwrap(), p);
            assert_eq!(parse_pooling(&name.to_ascii_uppercase().replace('_', "-")).unwrap(), p);
            for alias in aliases {
                assert_eq!(parse_pooling(alias).unwrap(), p);
            }
        }
        let err = parse_pooling("max").unwrap_err().to_string();
        assert_eq!(err, "unknown pooling 'max' (expected reg_token, mean_context, last_context_patch or all)");
    }
}
