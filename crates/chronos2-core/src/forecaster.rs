//! The object-safe model interface held by the pipeline and the dispatcher.

use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::precision::Precision;
use crate::train::Adapter;

/// One model call: a batch of rows as in `Chronos2Model.forward(context, group_ids,
/// future_covariates, num_output_patches)` of the reference.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelBatch {
    /// `(rows, context_len)` row-major; NaN marks a missing value.
    pub context: Vec<f32>,
    pub rows: usize,
    pub context_len: usize,
    /// One group id per row: rows with equal ids attend to each other.
    pub group_ids: Vec<i64>,
    /// `(rows, future_len)` row-major known future values (NaN = unknown), or `None`.
    pub future_covariates: Option<Vec<f32>>,
    pub future_len: usize,
    /// Number of output patches to predict (`ceil(horizon / patch_size)`).
    pub num_output_patches: usize,
}

impl ModelBatch {
    /// A batch without future covariates in which every row is its own group.
    pub fn independent(context: Vec<f32>, rows: usize, context_len: usize, num_output_patches: usize) -> Self {
        ModelBatch {
            context,
            rows,
            context_len,
            group_ids: (0..rows as i64).collect(),
            future_covariates: None,
            future_len: 0,
            num_output_patches,
        }
    }
}

/// Quantile predictions for a [`ModelBatch`], de-normalised in f32.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantileForecast {
    /// `(rows, num_quantiles, horizon)` row-major, `horizon = num_output_patches * patch_size`.
    pub values: Vec<f32>,
    pub rows: usize,
    pub num_quantiles: usize,
    pub horizon: usize,
}

/// Encoder hidden states for a [`ModelBatch`].
#[derive(Debug, Clone, PartialEq)]
pub struct Encoding {
    /// `(rows, seq_len, d_model)` row-major; `seq_len = num_context_patches + [REG] + num_output_patches`.
    pub hidden: Vec<f32>,
    pub rows: usize,
    pub seq_len: usize,
    pub d_model: usize,
    pub num_context_patches: usize,
    /// Instance-norm location and scale per row.
    pub loc: Vec<f32>,
    pub scale: Vec<f32>,
}

/// Memory held by a loaded model, measured from the backend's buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Footprint {
    pub total_params: usize,
    /// Parameters of the quantized linear layers.
    pub quantized_params: usize,
    /// Bytes of every buffer of the model.
    pub bytes: usize,
    /// Bytes of the quantized layers as held now (codes, scales, biases, float bias).
    pub quantized_layer_bytes: usize,
    /// Parameters of the adapters loaded for use at run time (not in `total_params`).
    pub adapter_params: usize,
    /// Bytes of those adapters (not in `bytes`).
    pub adapter_bytes: usize,
}

impl Footprint {
    /// Bytes the quantized layers would take in fp32.
    pub fn quantized_layer_fp32_bytes(&self) -> usize {
        4 * self.quantized_params
    }
}

/// A loaded Chronos-2 model on some backend.
pub trait Forecaster: Send + Sync {
    fn config(&self) -> &ModelConfig;
    /// The backend's short name (`"cpu"`, `"mlx"`).
    fn backend_name(&self) -> &str;
    /// Runs the model and returns de-normalised quantile predictions.
    fn forecast(&self, batch: &ModelBatch) -> Result<QuantileForecast>;
    /// Runs the encoder and returns its final hidden states (after the final layer norm).
    fn encode(&self, batch: &ModelBatch) -> Result<Encoding>;
    /// Puts the model's linear layers in `precision`. [`Precision::Int8`] and [`Precision::Int4`]
    /// quantize, weight-only, every float linear layer whose input width is a multiple of
    /// [`crate::quant::DEFAULT_GROUP_SIZE`] (MLX's affine scheme, [`crate::quant`]); others stay
    /// float. [`Precision::Fp32`] keeps a float model as it is. A precision the backend cannot run
    /// is [`crate::Error::UnsupportedPrecision`], never a silent fallback to another one.
    fn set_precision(&mut self, precision: Precision) -> Result<()>;
    /// Parameters and bytes held now.
    fn footprint(&self) -> Footprint;

    /// Uploads `adapter` under `name` for [`Forecaster::forecast_adapted`] (replacing one of
    /// that name), sharing the base weights. Fails when it does not fit the model, or when the
    /// backend cannot apply adapters at run time.
    fn add_adapter(&self, name: &str, adapter: &Adapter) -> Result<()> {
        let _ = (name, adapter);
        Err(Error::InvalidInput(format!("backend '{}' cannot apply adapters at run time", self.backend_name())))
    }
    /// Drops the adapter `name`; whether it was loaded.
    fn remove_adapter(&self, name: &str) -> bool {
        let _ = name;
        false
    }
    /// Whether an adapter `name` is loaded.
    fn has_adapter(&self, name: &str) -> bool {
        let _ = name;
        false
    }
    /// [`Forecaster::forecast`] with the loaded adapter `adapter` (`None`: the base model).
    fn forecast_adapted(&self, batch: &ModelBatch, adapter: Option<&str>) -> Result<QuantileForecast> {
        match adapter {
            None => self.forecast(batch),
            Some(name) => Err(Error::InvalidInput(format!("no adapter named `{name}` is loaded"))),
        }
    }
    /// [`Forecaster::encode`] with the loaded adapter `adapter` (`None`: the base model).
    fn encode_adapted(&self, batch: &ModelBatch, adapter: Option<&str>) -> Result<Encoding> {
        match adapter {
            None => self.encode(batch),
            Some(name) => Err(Error::InvalidInput(format!("no adapter named `{name}` is loaded"))),
        }
    }
}

/// A model run with one of its loaded adapters (or none) on every call: what the pipeline's
/// predict / embed see when an adapter is active.
pub struct WithAdapter<'a> {
    pub model: &'a dyn Forecaster,
    pub adapter: Option<&'a str>,
}

impl Forecaster for WithAdapter<'_> {
    fn config(&self) -> &ModelConfig {
        self.model.config()
    }

    fn backend_name(&self) -> &str {
        self.model.backend_name()
    }

    fn forecast(&self, batch: &ModelBatch) -> Result<QuantileForecast> {
        self.model.forecast_adapted(batch, self.adapter)
    }

    fn encode(&self, batch: &ModelBatch) -> Result<Encoding> {
        self.model.encode_adapted(batch, self.adapter)
    }

    fn set_precision(&mut self, precision: Precision) -> Result<()> {
        Err(Error::PrecisionAlreadySet { requested: precision })
    }

    fn footprint(&self) -> Footprint {
        self.model.footprint()
    }
}
