//! `chronos2._native.NativeModel`: a loaded [`Chronos2`] with predict / embed on items and
//! predict_df / embed_df on tables. The GIL is released while tables are prepared and the
//! model runs; results are handed to numpy without copies (arrays take ownership of the
//! vectors).

use std::path::PathBuf;
use std::time::Instant;

use chronos2::chronos2_core::pipeline::{Pooling, PredictOptions, SeriesInput};
use chronos2::chronos2_core::train::LoraConfig;
use chronos2::{
    data::parse_pooling, load_args, Backend, Caller, Chronos2, Columns, EmbedDfOptions, Freq, LoadOptions,
    PredictDfOptions,
};
use numpy::{PyArray1, PyArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::errors::{guarded, to_py, value_error};
use crate::fit::{fit, FitRequest};
use crate::interrupt::interruptible;
use crate::items::series_inputs;
use crate::table::{ns_from_naive, table, Table};

type RawColumns<'py> = Vec<crate::table::RawColumn<'py>>;

/// Per item: quantiles `(n_targets, H, Q)` and medians `(n_targets, H)`; the route; warnings.
type Forecasts<'py> = (Vec<Bound<'py, PyAny>>, Vec<Bound<'py, PyAny>>, String, Vec<String>);

/// A loaded model.
#[pyclass(frozen, module = "chronos2._native")]
pub struct NativeModel {
    model: Chronos2,
    backend: Backend,
}

fn check_batch_size(batch_size: usize) -> PyResult<()> {
    if batch_size == 0 {
        return Err(value_error("batch_size must be at least 1"));
    }
    Ok(())
}

/// A numpy array of `shape` owning `values` (no copy).
fn array_from<'py>(py: Python<'py>, values: Vec<f32>, shape: &[usize]) -> PyResult<Bound<'py, PyAny>> {
    Ok(PyArray1::from_vec(py, values).reshape(shape)?.into_any())
}

impl NativeModel {
    fn predict_options(
        &self,
        prediction_length: Option<usize>,
        quantile_levels: Option<Vec<f32>>,
        batch_size: usize,
        context_length: Option<usize>,
        cross_learning: bool,
    ) -> PredictOptions {
        PredictOptions {
            prediction_length,
            quantile_levels: quantile_levels.unwrap_or_else(|| self.model.config().quantiles().to_vec()),
            batch_size,
            context_length,
            cross_learning,
            ..PredictOptions::default()
        }
    }

    fn route(&self, items: &[SeriesInput], options: &PredictOptions) -> PyResult<String> {
        self.model.decide(items, options).map(|d| d.route.to_string()).map_err(to_py)
    }
}

#[pymethods]
impl NativeModel {
    /// Loads `model` (a directory or a Hugging Face id; `None` = the bundled chronos2-mini).
    #[staticmethod]
    #[pyo3(signature = (model=None, backend="auto", quantize=None, dtype=None))]
    fn load(
        py: Python<'_>,
        model: Option<String>,
        backend: &str,
        quantize: Option<String>,
        dtype: Option<String>,
    ) -> PyResult<Self> {
        let backend: Backend = backend.parse().map_err(|e| value_error(format!("{e}")))?;
        let precision =
            load_args::load_precision(Caller::Python, quantize.as_deref(), dtype.as_deref()).map_err(to_py)?;
        let options = LoadOptions { precision, compile: false };
        let model = py.allow_threads(|| guarded(|| Chronos2::load_with(model.as_deref(), backend, options)))?;
        Ok(NativeModel { model, backend })
    }

    /// The directory `model` is read from (a Hugging Face id downloaded if needed; `None`: the
    /// bundled chronos2-mini).
    #[staticmethod]
    #[pyo3(signature = (model=None))]
    fn resolve(py: Python<'_>, model: Option<String>) -> PyResult<String> {
        let dir = py.allow_threads(|| guarded(|| Chronos2::resolve_model(model.as_deref())))?;
        Ok(dir.display().to_string())
    }

    /// This model with the adapter at `path` (a PEFT LoRA directory, an MLX-style `.npz` LoRA or
    /// a trained head) fused into a copy of its weights, on the same backend and precision.
    fn with_adapter(&self, py: Python<'_>, path: PathBuf) -> PyResult<NativeModel> {
        let model = py.allow_threads(|| {
            guarded(|| {
                let adapter = chronos2::chronos2_core::train::Adapter::load(&path)?;
                self.model.with_adapter_fused(&adapter)
            })
        })?;
        Ok(NativeModel { model, backend: self.backend })
    }

    /// Fine-tunes a copy of this model as `Chronos2Pipeline.fit` (`chronos2/pipeline.py` maps the
    /// reference's arguments), writing the result to `output`; returns the fine-tuned model (on
    /// this model's backend and precision) and a report dict. Trains on the forced backend, on
    /// the CPU under `auto`. `lora` is `(rank, alpha, targets)`.
    #[pyo3(signature = (items, validation_items, prediction_length, mode, quantize, output, steps, learning_rate,
                        batch_size, context_length, min_past, lora, seed, log_every))]
    #[allow(clippy::too_many_arguments)]
    fn fit<'py>(
        &self,
        py: Python<'py>,
        items: &Bound<'py, PyList>,
        validation_items: Option<Bound<'py, PyList>>,
        prediction_length: usize,
        mode: String,
        quantize: Option<String>,
        output: PathBuf,
        steps: usize,
        learning_rate: f32,
        batch_size: usize,
        context_length: Option<usize>,
        min_past: Option<usize>,
        lora: Option<(usize, f32, Vec<String>)>,
        seed: u64,
        log_every: usize,
    ) -> PyResult<(NativeModel, Bound<'py, PyDict>)> {
        check_batch_size(batch_size)?;
        if prediction_length == 0 {
            return Err(value_error("prediction_length must be at least 1"));
        }
        let request = FitRequest {
            items,
            validation_items: validation_items.as_ref(),
            prediction_length,
            mode,
            quantize,
            output,
            steps,
            learning_rate,
            batch_size,
            context_length,
            min_past,
            lora: lora.map(|(rank, alpha, targets)| LoraConfig { rank, alpha, targets }),
            seed,
            log_every,
        };
        let (model, report) = fit(py, &self.model, self.backend, request)?;
        Ok((NativeModel { model, backend: self.backend }, report))
    }

    /// The model's quantile levels as written in its config (0.01, 0.05, ...).
    #[getter]
    fn quantiles(&self) -> Vec<f64> {
        self.model.model_quantile_levels()
    }

    #[getter]
    fn model_context_length(&self) -> usize {
        self.model.config().chronos_config.context_length
    }

    #[getter]
    fn model_output_patch_size(&self) -> usize {
        self.model.config().chronos_config.output_patch_size
    }

    #[getter]
    fn max_output_patches(&self) -> usize {
        self.model.config().chronos_config.max_output_patches
    }

    #[getter]
    fn d_model(&self) -> usize {
        self.model.config().d_model
    }

    /// `auto`, `cpu` or `mlx`: the backend asked for.
    #[getter]
    fn requested_backend(&self) -> String {
        self.backend.to_string()
    }

    #[getter]
    fn model_dir(&self) -> String {
        self.model.model_dir().display().to_string()
    }

    /// Forecasts items: per item, quantiles `(n_targets, H, Q)` and median `(n_targets, H)`
    /// (the model's levels when `quantile_levels` is `None`), the route that ran, and warnings.
    #[pyo3(signature = (items, prediction_length=None, quantile_levels=None, batch_size=256, context_length=None,
                        cross_learning=false, max_output_patches=None, unrolled_quantiles=None))]
    #[allow(clippy::too_many_arguments)]
    fn predict<'py>(
        &self,
        py: Python<'py>,
        items: &Bound<'py, PyList>,
        prediction_length: Option<usize>,
        quantile_levels: Option<Vec<f32>>,
        batch_size: usize,
        context_length: Option<usize>,
        cross_learning: bool,
        max_output_patches: Option<usize>,
        unrolled_quantiles: Option<Vec<f32>>,
    ) -> PyResult<Forecasts<'py>> {
        check_batch_size(batch_size)?;
        if prediction_length == Some(0) {
            return Err(value_error("prediction_length must be at least 1"));
        }
        let items = series_inputs(items)?;
        let mut options =
            self.predict_options(prediction_length, quantile_levels, batch_size, context_length, cross_learning);
        options.max_output_patches = max_output_patches;
        if let Some(u) = unrolled_quantiles {
            options.unrolled_quantiles = u;
        }
        let warnings = options.warnings(self.model.config());
        let route = self.route(&items, &options)?;
        let forecasts = interruptible(py, || self.model.predict(&items, &options, &mut |_, _| {}))?;
        let (mut quantiles, mut medians) = (Vec::new(), Vec::new());
        for f in forecasts {
            let (nt, h, nq) = (f.n_targets, f.prediction_length, f.quantile_levels.len());
            quantiles.push(array_from(py, f.quantiles, &[nt, h, nq])?);
            medians.push(array_from(py, f.median, &[nt, h])?);
        }
        Ok((quantiles, medians, route, warnings))
    }

    /// Encoder embeddings: per item `(n_variates, N + 2, d_model)`, loc and scale
    /// `(n_variates, 1)`, and the route that ran.
    #[pyo3(signature = (items, batch_size=256, context_length=None))]
    #[allow(clippy::type_complexity)]
    fn embed<'py>(
        &self,
        py: Python<'py>,
        items: &Bound<'py, PyList>,
        batch_size: usize,
        context_length: Option<usize>,
    ) -> PyResult<(Vec<Bound<'py, PyAny>>, Vec<(Bound<'py, PyAny>, Bound<'py, PyAny>)>, String)> {
        check_batch_size(batch_size)?;
        let items = series_inputs(items)?;
        let route = self.route(&items, &self.predict_options(None, None, batch_size, context_length, false))?;
        let pooling = Pooling::All;
        let out = interruptible(py, || self.model.embed(&items, batch_size, context_length, pooling, &mut |_, _| {}))?;
        let (mut embeddings, mut loc_scale) = (Vec::new(), Vec::new());
        for e in out {
            let nv = e.n_variates;
            embeddings.push(array_from(py, e.values, &[nv, e.tokens, e.d_model])?);
            loc_scale.push((array_from(py, e.loc, &[nv, 1])?, array_from(py, e.scale, &[nv, 1])?));
        }
        Ok((embeddings, loc_scale, route))
    }

    /// `predict_df` on column buffers. Returns a dict: `first_rows` (row of each item's first
    /// appearance), `timestamps` (int64 ns, item-major), `median` `(rows,)` and `quantiles`
    /// `(rows, Q)` in (item, target, step) order, `level_columns` (the quantiles' column names), `n_targets`, `freq`, `route`, `warnings`, and
    /// the seconds spent preparing the items (`prepare_s`) and running the model (`model_s`).
    #[pyo3(signature = (columns, future_columns, id_column, timestamp_column, targets, prediction_length,
                        quantile_levels, batch_size, context_length, cross_learning, freq))]
    #[allow(clippy::too_many_arguments)]
    fn predict_df<'py>(
        &self,
        py: Python<'py>,
        columns: RawColumns<'py>,
        future_columns: Option<RawColumns<'py>>,
        id_column: String,
        timestamp_column: String,
        targets: Vec<String>,
        prediction_length: Option<usize>,
        quantile_levels: Vec<f64>,
        batch_size: usize,
        context_length: Option<usize>,
        cross_learning: bool,
        freq: Option<String>,
    ) -> PyResult<Bound<'py, PyDict>> {
        check_batch_size(batch_size)?;
        let freq: Option<Freq> = freq.map(|f| f.parse::<Freq>().map_err(|e| value_error(e.to_string()))).transpose()?;
        let Table { frame, id_first_rows } = table(columns, &timestamp_column, Some(&id_column))?;
        let future = future_columns.map(|c| table(c, &timestamp_column, None)).transpose()?.map(|t| t.frame);
        let prediction_length = prediction_length
            .unwrap_or_else(|| chronos2::chronos2_core::pipeline::model_prediction_length(self.model.config()));
        let n_levels = quantile_levels.len();
        let options = PredictDfOptions {
            columns: Columns { id: id_column, timestamp: timestamp_column, targets },
            prediction_length,
            quantile_levels,
            batch_size,
            context_length,
            cross_learning,
            freq,
        };
        let warnings = self.model.warnings(&options);
        let (prepared, forecasts, route, prepare_s, model_s) = interruptible(py, || {
            let start = Instant::now();
            let prepared = chronos2::data::prepare_predict_for(
                Caller::Python,
                &frame,
                future.as_ref(),
                &options.columns,
                options.prediction_length,
                options.freq,
            )?;
            let prepare_s = start.elapsed().as_secs_f64();
            let route = self.model.decide(&prepared.inputs, &options.predict_options())?.route.to_string();
            let start = Instant::now();
            let forecasts = self.model.predict_prepared(&prepared, &options, &mut |_, _| {})?;
            Ok((prepared, forecasts, route, prepare_s, start.elapsed().as_secs_f64()))
        })?;
        if id_first_rows.len() != prepared.inputs.len() {
            return Err(value_error(format!(
                "internal error: {} ids found but {} items prepared",
                id_first_rows.len(),
                prepared.inputs.len()
            )));
        }
        let timestamps = prepared
            .future_timestamps
            .iter()
            .flatten()
            .map(|&t| ns_from_naive(t).ok_or_else(|| value_error(format!("forecast timestamp {t} is out of range"))))
            .collect::<PyResult<Vec<i64>>>()?;
        let rows: usize = forecasts.iter().map(|f| f.n_targets * f.prediction_length).sum();
        let mut median = Vec::with_capacity(rows);
        let mut quantiles = Vec::with_capacity(rows * n_levels);
        for f in forecasts {
            median.extend_from_slice(&f.median);
            quantiles.extend_from_slice(&f.quantiles);
        }
        let out = PyDict::new(py);
        out.set_item("first_rows", PyArray1::from_vec(py, id_first_rows.iter().map(|&r| r as i64).collect()))?;
        out.set_item("timestamps", PyArray1::from_vec(py, timestamps))?;
        out.set_item("median", PyArray1::from_vec(py, median))?;
        out.set_item("quantiles", array_from(py, quantiles, &[rows, n_levels])?)?;
        let level_columns: Vec<String> =
            options.quantile_levels.iter().map(|&q| chronos2::data::level_column(q)).collect();
        out.set_item("level_columns", level_columns)?;
        out.set_item("n_targets", options.columns.targets.len())?;
        out.set_item("freq", prepared.freq.map(|f| f.to_string()))?;
        out.set_item("route", route)?;
        out.set_item("warnings", warnings)?;
        out.set_item("prepare_s", prepare_s)?;
        out.set_item("model_s", model_s)?;
        Ok(out)
    }

    /// `embed_df` on column buffers. Returns a dict: `first_rows` (per entry, the row where its
    /// item first appears), `target_name`, `loc`, `scale`, `embeddings` (`(entries, d)` when
    /// pooled, else a list of `(N + 2, d)` arrays), `route`.
    #[pyo3(signature = (columns, id_column, timestamp_column, targets, batch_size, context_length, pooling))]
    #[allow(clippy::too_many_arguments)]
    fn embed_df<'py>(
        &self,
        py: Python<'py>,
        columns: RawColumns<'py>,
        id_column: String,
        timestamp_column: String,
        targets: Vec<String>,
        batch_size: usize,
        context_length: Option<usize>,
        pooling: &str,
    ) -> PyResult<Bound<'py, PyDict>> {
        check_batch_size(batch_size)?;
        let pooling = parse_pooling(pooling).map_err(to_py)?;
        let Table { frame, id_first_rows } = table(columns, &timestamp_column, Some(&id_column))?;
        let options = EmbedDfOptions {
            columns: Columns { id: id_column, timestamp: timestamp_column, targets },
            pooling,
            batch_size,
            context_length,
        };
        let route = self.route(&[], &self.predict_options(None, None, batch_size, context_length, false))?;
        let embedded = interruptible(py, || {
            let prepared = chronos2::data::prepare_embed_for(Caller::Python, &frame, &options.columns)?;
            self.model.embed_prepared(&prepared, &options, &mut |_, _| {})
        })?;
        let first_rows = embedded
            .entries
            .iter()
            .map(|e| id_first_rows.get(e.item).map(|&r| r as i64))
            .collect::<Option<Vec<i64>>>()
            .ok_or_else(|| value_error("internal error: embedding of an unknown item"))?;
        let out = PyDict::new(py);
        out.set_item("first_rows", PyArray1::from_vec(py, first_rows))?;
        let names: Vec<&str> = embedded.entries.iter().map(|e| e.target_name.as_str()).collect();
        out.set_item("target_name", names)?;
        out.set_item("loc", PyArray1::from_vec(py, embedded.entries.iter().map(|e| e.loc).collect()))?;
        out.set_item("scale", PyArray1::from_vec(py, embedded.entries.iter().map(|e| e.scale).collect()))?;
        let d = self.model.config().d_model;
        if pooling == Pooling::All {
            let mut arrays = Vec::with_capacity(embedded.entries.len());
            for e in embedded.entries {
                let tokens = e.vectors.len();
                arrays.push(array_from(py, e.vectors.concat(), &[tokens, d])?);
            }
            out.set_item("embeddings", arrays)?;
        } else {
            let n = embedded.entries.len();
            let flat: Vec<f32> = embedded.entries.into_iter().flat_map(|e| e.vectors.concat()).collect();
            out.set_item("embeddings", array_from(py, flat, &[n, d])?)?;
        }
        out.set_item("route", route)?;
        Ok(out)
    }
}
