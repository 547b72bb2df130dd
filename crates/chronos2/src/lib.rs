//! Chronos-2 time-series forecasting: a facade over the pipeline and the backends, with
//! DataFrame-style `predict_df` / `embed_df` on long-format tables (CSV / Parquet), as
//! `Chronos2Pipeline.predict_df` of the reference `chronos-forecasting` package.
//!
//! ```no_run
//! use chronos2::{Backend, Chronos2, PredictDfOptions, data::Frame};
//!
//! let model = Chronos2::load(None, Backend::Auto)?; // the bundled chronos2-mini
//! let df = Frame::read("examples/airpassengers.csv".as_ref())?;
//! let forecast = model.predict_df(&df, None, &PredictDfOptions::new(12), &mut |_, _| {})?;
//! forecast.write("forecast.csv".as_ref())?;
//! # Ok::<(), chronos2::Error>(())
//! ```

pub mod backend;
pub mod bundled;
pub mod calibrate;
pub mod data;
pub mod engine;
pub mod error;
pub mod finetune;
pub mod hub;
pub mod kind;
pub mod load_args;
pub mod machine;
pub mod models;
pub mod profile;
pub mod registry;

use chronos2_core::dispatch::CallShape;
use chronos2_core::forecaster::Footprint;
use chronos2_core::train::Adapter;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chronos2_core::pipeline::{self, ItemEmbedding, ItemForecast, Pooling, PredictOptions, SeriesInput};
use chronos2_core::weights::ModelSource;
use chronos2_core::ModelConfig;

pub use backend::{Backend, BackendKind, Route};
pub use chronos2_core;
pub use chronos2_core::Precision;
pub use data::{
    parse_quantile_levels, pooling_name, Caller, Columns, EmbedDfOptions, EmbeddingEntry, EmbeddingTable, Freq,
    PredictDfOptions, PreparedFrame, DEFAULT_QUANTILE_LEVELS,
};
use engine::Engines;
pub use engine::{Decision, LoadOptions};
pub use error::{Error, Result};

use data::Frame;

/// A loaded Chronos-2 model: one backend when forced, or a per-call choice among the backends
/// of this build ([`Backend::Auto`], see [`engine`]).
pub struct Chronos2 {
    engines: Engines,
    backend: Backend,
    config: ModelConfig,
    /// The model's directory, or the model in memory (a base with an adapter fused in).
    source: ModelSource,
    /// Adapters loaded by name ([`Chronos2::load_adapter`]), applied at run time.
    adapters: BTreeMap<String, Arc<Adapter>>,
    /// The adapter every call runs with ([`Chronos2::set_adapter`]); `None`: the base model.
    active_adapter: Option<String>,
}

impl std::fmt::Debug for Chronos2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chronos2")
            .field("model_dir", &self.model_dir())
            .field("in_memory", &matches!(self.source, ModelSource::Memory(_)))
            .field("options", &self.engines.options())
            .field("adapters", &self.adapters.keys().collect::<Vec<_>>())
            .field("active_adapter", &self.active_adapter)
            .finish()
    }
}

impl Chronos2 {
    /// Loads a model: `model` is a directory (holding `config.json` and `model.safetensors`) or a
    /// Hugging Face hub id (`amazon/chronos-2`, from the local cache or downloaded);
    /// `None` = the bundled chronos2-mini.
    pub fn load(model: Option<&str>, backend: Backend) -> Result<Self> {
        Self::load_with(model, backend, LoadOptions::default())
    }

    /// Like [`Chronos2::load`], in another precision and/or compiling the forward.
    pub fn load_with(model: Option<&str>, backend: Backend, options: LoadOptions) -> Result<Self> {
        Self::load_source(ModelSource::Dir(Self::resolve_model(model)?), backend, options)
    }

    /// Loads the model `source`: a directory or a model in memory (see [`Chronos2::with_adapter_fused`]).
    pub fn load_source(source: ModelSource, backend: Backend, options: LoadOptions) -> Result<Self> {
        let engines = Engines::new(source.clone(), backend, options)?;
        let config = engines.primary().config().clone();
        Ok(Chronos2 { engines, backend, config, source, adapters: BTreeMap::new(), active_adapter: None })
    }

    /// Measures this machine for [`Backend::Auto`] with `model` (default: the bundled model) and
    /// writes the profile `auto` then reads (see [`calibrate`]); `progress` gets a line per cell.
    pub fn calibrate(
        model: Option<&str>,
        options: &calibrate::CalibrateOptions,
        progress: &mut dyn FnMut(&str),
    ) -> Result<calibrate::Calibration> {
        calibrate::calibrate(&Self::resolve_model(model)?, options, progress)
    }

    /// The directory [`Chronos2::load`] reads `model` from (a hub id is downloaded if needed;
    /// `None`: the bundled model, extracted if needed).
    pub fn resolve_model(model: Option<&str>) -> Result<PathBuf> {
        match model {
            Some(spec) => Ok(crate::hub::resolve_model_dir(spec)?),
            None => bundled::bundled_model_dir(),
        }
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The model directory; for a model with an adapter fused in memory, its base's directory.
    pub fn model_dir(&self) -> &Path {
        self.source.path()
    }

    /// Where the model was loaded from: its directory, or the model in memory.
    pub fn source(&self) -> &ModelSource {
        &self.source
    }

    /// Memory held by the model (of the first backend loaded), measured from its buffers; the
    /// adapters loaded for run time are counted apart (`adapter_bytes`).
    pub fn footprint(&self) -> Footprint {
        self.engines.primary().footprint()
    }

    /// Which route a [`Chronos2::predict`] call with these items and options runs on, and why.
    pub fn decide(&self, items: &[SeriesInput], options: &PredictOptions) -> Result<Decision> {
        self.engines.decide(&self.call_shape(
            items,
            options.batch_size,
            options.context_length,
            options.resolved_prediction_length(&self.config),
        ))
    }

    fn call_shape(
        &self,
        items: &[SeriesInput],
        batch_size: usize,
        context_length: Option<usize>,
        prediction_length: usize,
    ) -> CallShape {
        let rows: usize = items.iter().map(|i| i.targets.len() + i.covariates.len()).sum();
        let longest = items.iter().flat_map(|i| i.targets.first()).map(Vec::len).max().unwrap_or(0);
        let max_context = context_length
            .unwrap_or(self.config.chronos_config.context_length)
            .min(self.config.chronos_config.context_length);
        CallShape {
            rows: rows.min(batch_size.max(1)).max(1),
            context: longest.min(max_context).max(1),
            prediction_length: prediction_length.max(1),
        }
    }

    /// The model's quantile levels as the decimals they were written as (`0.01`, `0.05`, ...).
    pub fn model_quantile_levels(&self) -> Vec<f64> {
        self.config().quantiles().iter().map(|q| q.to_string().parse::<f64>().unwrap_or(*q as f64)).collect()
    }

    /// Forecasts items ([`chronos2_core::pipeline::predict`]), with the active adapter if any.
    pub fn predict(
        &self,
        items: &[SeriesInput],
        options: &PredictOptions,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Vec<ItemForecast>> {
        let shape = self.call_shape(
            items,
            options.batch_size,
            options.context_length,
            options.resolved_prediction_length(&self.config),
        );
        self.engines.run(&shape, |model| Ok(pipeline::predict(&self.adapted(model)?, items, options, progress)?))
    }

    /// Embeds items ([`chronos2_core::pipeline::embed`]), with the active adapter if any.
    pub fn embed(
        &self,
        items: &[SeriesInput],
        batch_size: usize,
        context_length: Option<usize>,
        pooling: Pooling,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Vec<ItemEmbedding>> {
        let shape = self.call_shape(items, batch_size, context_length, self.config.patch_size());
        self.engines.run(&shape, |model| {
            Ok(pipeline::embed(&self.adapted(model)?, items, batch_size, context_length, pooling, progress)?)
        })
    }

    /// `predict_df` of the reference: forecasts every item of a long-format table (`future` holds
    /// known future covariate values) and returns the forecast table
    /// `<id>, <timestamp>, target_name, predictions, <level>...`.
    pub fn predict_df(
        &self,
        df: &Frame,
        future: Option<&Frame>,
        options: &PredictDfOptions,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Frame> {
        let prepared = data::prepare_predict(df, future, &options.columns, options.prediction_length, options.freq)?;
        let forecasts = self.predict_prepared(&prepared, options, progress)?;
        data::forecast_frame(&prepared, &forecasts, &options.quantile_levels)
    }

    /// Runs the model on items prepared by [`data::prepare_predict`].
    pub fn predict_prepared(
        &self,
        prepared: &PreparedFrame,
        options: &PredictDfOptions,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Vec<ItemForecast>> {
        if options.batch_size == 0 {
            return Err(Error::InvalidArgument("batch size must be at least 1".into()));
        }
        self.predict(&prepared.inputs, &options.predict_options(), progress)
    }

    /// The warnings the reference would print for these options (horizon longer than the
    /// model's, context length reset, quantile levels outside the model's range).
    pub fn warnings(&self, options: &PredictDfOptions) -> Vec<String> {
        options.predict_options().warnings(self.config())
    }

    /// Embeds every (item, target) of a long-format table; other columns are past covariates.
    pub fn embed_df(
        &self,
        df: &Frame,
        options: &EmbedDfOptions,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<EmbeddingTable> {
        if options.batch_size == 0 {
            return Err(Error::InvalidArgument("batch size must be at least 1".into()));
        }
        let prepared = data::prepare_embed(df, &options.columns)?;
        self.embed_prepared(&prepared, options, progress)
    }

    /// Embeds items prepared by [`data::prepare_embed`].
    pub fn embed_prepared(
        &self,
        prepared: &PreparedFrame,
        options: &EmbedDfOptions,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<EmbeddingTable> {
        if options.batch_size == 0 {
            return Err(Error::InvalidArgument("batch size must be at least 1".into()));
        }
        let embeddings =
            self.embed(&prepared.inputs, options.batch_size, options.context_length, options.pooling, progress)?;
        let entries = data::embedding_entries(prepared, &embeddings)?;
        let rows: Vec<usize> = entries.iter().map(|e| e.item).collect();
        Ok(EmbeddingTable { pooling: options.pooling, item_ids: prepared.item_ids.take(&rows), entries })
    }
}
