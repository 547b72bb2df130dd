//! `config.json` of a Chronos-2 checkpoint (Hugging Face layout, `chronos_config` included).

use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, Result};

/// The forecasting part of the config (`chronos_config` in `config.json`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ChronosConfig {
    pub context_length: usize,
    pub input_patch_size: usize,
    pub input_patch_stride: usize,
    pub output_patch_size: usize,
    pub quantiles: Vec<f32>,
    #[serde(default)]
    pub use_reg_token: bool,
    #[serde(default)]
    pub use_arcsinh: bool,
    #[serde(default = "default_max_output_patches")]
    pub max_output_patches: usize,
    /// Defaults to `context_length`, as in the reference.
    #[serde(default)]
    pub time_encoding_scale: Option<f32>,
}

fn default_max_output_patches() -> usize {
    1
}

/// The whole `config.json`: encoder sizes plus [`ChronosConfig`].
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ModelConfig {
    pub d_model: usize,
    pub d_kv: usize,
    pub d_ff: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_epsilon: f64,
    #[serde(default = "default_rope_theta")]
    pub rope_theta: f64,
    #[serde(default = "default_act")]
    pub dense_act_fn: String,
    #[serde(default)]
    pub is_gated_act: bool,
    /// Dropout of training (`fit` trains in `model.train()` mode); inference never drops.
    #[serde(default)]
    pub dropout_rate: f64,
    pub chronos_config: ChronosConfig,
}

fn default_eps() -> f64 {
    1e-6
}

fn default_rope_theta() -> f64 {
    10000.0
}

fn default_act() -> String {
    "relu".to_string()
}

impl ModelConfig {
    /// Reads and validates `config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
        Self::from_json(&text).map_err(|message| Error::Config { path: path.to_path_buf(), message })
    }

    /// Parses and validates the text of a `config.json`.
    pub fn from_json(text: &str) -> std::result::Result<Self, String> {
        let config: ModelConfig = serde_json::from_str(text).map_err(|e| e.to_string())?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> std::result::Result<(), String> {
        let c = &self.chronos_config;
        let positive = [
            ("d_model", self.d_model),
            ("d_kv", self.d_kv),
            ("d_ff", self.d_ff),
            ("num_layers", self.num_layers),
            ("num_heads", self.num_heads),
            ("chronos_config.context_length", c.context_length),
            ("chronos_config.input_patch_size", c.input_patch_size),
            ("chronos_config.input_patch_stride", c.input_patch_stride),
            ("chronos_config.output_patch_size", c.output_patch_size),
            ("chronos_config.max_output_patches", c.max_output_patches),
        ];
        if let Some((field, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("{field} is 0; it must be at least 1"));
        }
        if !(self.layer_norm_epsilon.is_finite() && self.layer_norm_epsilon > 0.0) {
            return Err(format!("layer_norm_epsilon is {}; it must be a positive number", self.layer_norm_epsilon));
        }
        if !(0.0..=1.0).contains(&self.dropout_rate) {
            return Err(format!("dropout_rate is {}; it must be between 0 and 1", self.dropout_rate));
        }
        if !(self.rope_theta.is_finite() && self.rope_theta > 0.0) {
            return Err(format!("rope_theta is {}; it must be a positive number", self.rope_theta));
        }
        if let Some(scale) = c.time_encoding_scale.filter(|s| !(s.is_finite() && *s > 0.0)) {
            return Err(format!("chronos_config.time_encoding_scale is {scale}; it must be a positive number"));
        }
        if let Some(q) = c.quantiles.iter().find(|q| !(**q > 0.0 && **q < 1.0)) {
            return Err(format!("chronos_config.quantiles holds {q}; every level must be strictly between 0 and 1"));
        }
        if !c.quantiles.contains(&0.5) {
            return Err(format!(
                "chronos_config.quantiles {:?} has no 0.5 level; the median forecast needs it",
                c.quantiles
            ));
        }
        if c.input_patch_size != c.output_patch_size {
            return Err(format!(
                "input_patch_size ({}) must equal output_patch_size ({})",
                c.input_patch_size, c.output_patch_size
            ));
        }
        if c.input_patch_size != c.input_patch_stride {
            return Err(format!(
                "input_patch_stride ({}) must equal input_patch_size ({}): overlapping patches are not supported",
                c.input_patch_stride, c.input_patch_size
            ));
        }
        if self.dense_act_fn != "relu" || self.is_gated_act {
            return Err(format!(
                "only the non-gated relu feed-forward is supported, found dense_act_fn={:?} is_gated_act={}",
                self.dense_act_fn, self.is_gated_act
            ));
        }
        if c.quantiles.is_empty() || c.quantiles.windows(2).any(|w| w[0] >= w[1]) {
            return Err("chronos_config.quantiles must be a non-empty increasing list".to_string());
        }
        if !self.d_kv.is_multiple_of(2) {
            return Err(format!("d_kv ({}) must be even for rotary embeddings", self.d_kv));
        }
        Ok(())
    }

    /// Patch length (input and output patches are equal).
    pub fn patch_size(&self) -> usize {
        self.chronos_config.input_patch_size
    }

    /// The model's quantile levels.
    pub fn quantiles(&self) -> &[f32] {
        &self.chronos_config.quantiles
    }

    /// Divisor of the time encoding (`time_encoding_scale`, else `context_length`).
    pub fn time_encoding_scale(&self) -> f32 {
        self.chronos_config.time_encoding_scale.unwrap_or(self.chronos_config.context_length as f32)
    }

    /// `num_heads * d_kv`: the attention's inner width (may differ from `d_model`).
    pub fn inner_dim(&self) -> usize {
        self.num_heads * self.d_kv
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINI: &str = include_str!("../../../models/chronos2-mini/config.json");

    #[test]
    fn parses_bundled_mini_config() {
        let config = ModelConfig::from_json(MINI).unwrap();
        assert_eq!(config.d_model, 256);
        assert_eq!(config.chronos_config.quantiles.len(), 21);
        assert_eq!(config.time_encoding_scale(), 8192.0);
        assert_eq!(config.chronos_config.max_output_patches, 64);
    }

    #[test]
    fn rejects_bad_fields_by_name() {
        for (from, to, field) in [
            ("\"context_length\": 2048", "\"context_length\": 0", "chronos_config.context_length"),
            ("\"max_output_patches\": 64", "\"max_output_patches\": 0", "chronos_config.max_output_patches"),
            ("      0.5,\n", "", "no 0.5 level"),
            ("\"d_ff\": 1024", "\"d_ff\": 0", "d_ff"),
            ("\"dropout_rate\": 0.0", "\"dropout_rate\": 1.5", "dropout_rate"),
            ("\"dropout_rate\": 0.0", "\"dropout_rate\": -0.1", "dropout_rate"),
        ] {
            assert!(MINI.contains(from), "{from}");
            let err = ModelConfig::from_json(&MINI.replace(from, to)).unwrap_err();
            assert!(err.contains(field), "{field}: {err}");
        }
    }

    #[test]
    fn rejects_mismatched_patch_sizes() {
        let text = MINI.replace("\"output_patch_size\": 16", "\"output_patch_size\": 8");
        let err = ModelConfig::from_json(&text).unwrap_err();
        assert!(err.contains("output_patch_size"), "{err}");
    }
}
