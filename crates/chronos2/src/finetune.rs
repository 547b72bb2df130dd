//! Fine-tuning and adapters from the facade: `Chronos2Pipeline.fit` semantics (see
//! [`chronos2_core::train`]) on a backend of the registry (candle CPU autograd, MLX
//! `value_and_grad`), writing a full model, a PEFT (or npz) adapter or a head and returning it in memory; adapters loaded by name and switched
//! at run time on the shared base weights ([`Chronos2::load_adapter`], [`Chronos2::set_adapter`]),
//! or fused into a copy of the base ([`fuse`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chronos2_core::forecaster::WithAdapter;
use chronos2_core::pipeline::{self, SeriesInput};
use chronos2_core::train::export::{self, Adapter, NamedTensor};
use chronos2_core::train::{
    fit, AdamWConfig, FinetuneMode, FitOptions, LoraConfig, StepReport, TrainDataset, TrainSpec, QLORA_GROUP_SIZE,
};
use chronos2_core::weights::ModelSource;
use chronos2_core::Forecaster;

use crate::backend::{Backend, BackendKind};
use crate::engine::LoadOptions;
use crate::error::{Error, Result};
use crate::Chronos2;

/// Options of [`Chronos2::finetune`]; defaults follow `fit`.
#[derive(Debug, Clone)]
pub struct FinetuneOptions {
    pub prediction_length: usize,
    pub mode: FinetuneMode,
    /// Default 1000.
    pub steps: usize,
    /// Default: 1e-6 for full fine-tuning (`fit`'s default), 1e-5 otherwise (the value `fit`'s
    /// docstring recommends for LoRA).
    pub learning_rate: Option<f32>,
    /// Rows (targets + covariates) per batch; whole tasks, so a batch can overshoot. Default 256.
    pub batch_size: usize,
    /// Default: the model's context length.
    pub context_length: Option<usize>,
    /// Default: the prediction length.
    pub min_past: Option<usize>,
    pub lora: LoraConfig,
    pub seed: u64,
    /// How a LoRA adapter is written: PEFT safetensors (default) or MLX-style npz.
    pub format: AdapterFormat,
    /// The backend that trains. Default: the registry's default backend.
    pub backend: BackendKind,
    /// Write over an existing output directory (its checkpoint files are replaced, as the
    /// reference's `save_pretrained`; the Python `fit`); default false: an existing output is an
    /// error (the CLI).
    pub overwrite: bool,
}

/// The file layout of a written LoRA adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AdapterFormat {
    /// `adapter_config.json` + `adapter_model.safetensors` (peft's `save_pretrained`).
    #[default]
    Peft,
    /// `adapters.npz` (`{module}.lora_a` `(in, r)`, `{module}.lora_b` `(r, out)`, as mlx-lm) +
    /// an mlx-lm `adapter_config.json`.
    Npz,
}

impl AdapterFormat {
    /// `peft` (or `safetensors`) | `npz`.
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "peft" | "safetensors" => Ok(AdapterFormat::Peft),
            "npz" => Ok(AdapterFormat::Npz),
            other => Err(Error::InvalidArgument(format!("unknown adapter format `{other}` (peft, npz)"))),
        }
    }
}

impl FinetuneOptions {
    pub fn new(prediction_length: usize, mode: FinetuneMode) -> Self {
        FinetuneOptions {
            prediction_length,
            mode,
            steps: 1000,
            learning_rate: None,
            batch_size: 256,
            context_length: None,
            min_past: None,
            lora: LoraConfig::default(),
            seed: 0,
            format: AdapterFormat::default(),
            backend: BackendKind::DEFAULT,
            overwrite: false,
        }
    }

    pub fn resolved_learning_rate(&self) -> f32 {
        self.learning_rate.unwrap_or(if self.mode == FinetuneMode::Full { 1e-6 } else { 1e-5 })
    }
}

/// The result of a fine-tuning run, in memory.
#[derive(Debug)]
pub enum Trained {
    /// LoRA / QLoRA adapters or a trained head: ready for [`Chronos2::insert_adapter`].
    Adapter(Adapter),
    /// A fully fine-tuned model, loaded from the written directory on the backend of the base.
    Model(Box<Chronos2>),
}

/// What a fine-tuning run did.
#[derive(Debug)]
pub struct FinetuneReport {
    /// Training series dropped for being shorter than `min_past + prediction_length`.
    pub dropped: usize,
    pub trainable_params: usize,
    pub train_losses: Vec<f32>,
    pub validation_losses: Vec<(usize, f32)>,
    /// The step whose parameters were written.
    pub kept_step: usize,
    /// The output directory (full model, PEFT adapter or head).
    pub output: PathBuf,
    /// The trained adapter or model, usable at once.
    pub trained: Trained,
}

/// Fine-tunes the model `model` (a directory or hub id; `None`: the bundled model) without
/// loading it for inference first, so that only the training copy of the weights is held (what
/// `chronos2 finetune` runs); as [`Chronos2::finetune`] otherwise. A full fine-tune's
/// [`Trained::Model`] is loaded on `backend` with `load`.
#[allow(clippy::too_many_arguments)]
pub fn finetune_model(
    model: Option<&str>,
    backend: Backend,
    load: LoadOptions,
    train: &[SeriesInput],
    validation: Option<&[SeriesInput]>,
    options: &FinetuneOptions,
    output: &Path,
    progress: &mut dyn FnMut(&StepReport),
) -> Result<FinetuneReport> {
    let model_dir = resolve_base(model)?;
    let config = chronos2_core::ModelConfig::from_file(&model_dir.join(chronos2_core::model_files::CONFIG_FILE))?;
    let source = ModelSource::Dir(model_dir);
    let base = Base { source: &source, config: &config, backend, load };
    run_finetune(&base, train, validation, options, output, progress)
}

/// The base model of a fine-tuning run.
struct Base<'a> {
    source: &'a ModelSource,
    config: &'a chronos2_core::ModelConfig,
    /// Where a fully fine-tuned model is loaded.
    backend: Backend,
    load: LoadOptions,
}

impl Chronos2 {
    /// Fine-tunes this model on `train` (and selects the best step on `validation`), writing the
    /// result to `output` (staged in a temporary directory, renamed at the end; nothing is left
    /// on error) and returning it ([`Trained`]). The model's directory is written into adapters
    /// as the base model's name.
    pub fn finetune(
        &self,
        train: &[SeriesInput],
        validation: Option<&[SeriesInput]>,
        options: &FinetuneOptions,
        output: &Path,
        progress: &mut dyn FnMut(&StepReport),
    ) -> Result<FinetuneReport> {
        let base =
            Base { source: self.source(), config: self.config(), backend: self.backend, load: self.engines.options() };
        run_finetune(&base, train, validation, options, output, progress)
    }
}

fn run_finetune(
    base: &Base,
    train: &[SeriesInput],
    validation: Option<&[SeriesInput]>,
    options: &FinetuneOptions,
    output: &Path,
    progress: &mut dyn FnMut(&StepReport),
) -> Result<FinetuneReport> {
    let lr = options.resolved_learning_rate();
    AdamWConfig::new(lr, options.steps)?;
    if options.format == AdapterFormat::Npz && !options.mode.uses_lora() {
        return Err(Error::InvalidArgument(format!(
            "the npz format is for LoRA adapters (--mode lora or qlora), not --mode {}",
            options.mode.name()
        )));
    }
    if output.exists() && !options.overwrite {
        return Err(Error::InvalidArgument(format!("output {} already exists", output.display())));
    }
    // Before the first step: an output that cannot be written fails now, not after training.
    export::check_output_dir(output)?;
    let h = options.prediction_length;
    let config = base.config;
    if let FinetuneMode::Qlora { .. } = options.mode {
        check_quantizable(config)?;
    }
    let context_length = options.context_length.unwrap_or(config.chronos_config.context_length);
    let patch = config.patch_size();
    let dataset = TrainDataset::new(
        pipeline::prepare(train, h)?,
        context_length,
        h,
        options.min_past.unwrap_or(h),
        options.batch_size,
        patch,
    )?;
    let validation = match validation {
        Some(items) => Some(
            TrainDataset::new(pipeline::prepare(items, h)?, context_length, h, 1, options.batch_size, patch)?
                .validation_batches(),
        ),
        None => None,
    };
    let spec = TrainSpec { mode: options.mode, lora: options.lora.clone(), seed: options.seed };
    let mut model = crate::registry::train_model_source(options.backend, base.source, spec)?;
    let fit_options = FitOptions { steps: options.steps, learning_rate: lr, seed: options.seed };
    let outcome = fit(model.as_mut(), &dataset, validation.as_deref(), &fit_options, progress)?;
    let tensors: Vec<NamedTensor> = model
        .parameter_names()
        .into_iter()
        .zip(model.parameter_shapes())
        .zip(model.parameter_values()?)
        .map(|((name, shape), data)| NamedTensor { name, shape, data })
        .collect();
    drop(model);
    let base_name = base.source.path().display().to_string();
    let write_checkpoint = |dir: &Path| match options.mode {
        FinetuneMode::Full => export::write_full_model(dir, base.source.path(), &tensors, context_length, h),
        FinetuneMode::Lora | FinetuneMode::Qlora { .. } => match options.format {
            AdapterFormat::Peft => export::write_peft_adapter(dir, &options.lora, &base_name, &tensors),
            AdapterFormat::Npz => export::write_npz_adapter(dir, &options.lora, &base_name, &tensors),
        },
        FinetuneMode::Head => export::write_head(dir, &base_name, &tensors),
    };
    if options.overwrite {
        export::write_staged_over(output, write_checkpoint)?;
    } else {
        export::write_staged(output, write_checkpoint)?;
    }
    let trainable_params = tensors.iter().map(|t| t.data.len()).sum();
    let trained = match options.mode {
        FinetuneMode::Full => {
            drop(tensors); // written: the model is loaded from the output
            let dir =
                output.to_str().ok_or_else(|| Error::InvalidArgument(format!("{} is not UTF-8", output.display())))?;
            Trained::Model(Box::new(Chronos2::load_with(Some(dir), base.backend, base.load)?))
        }
        FinetuneMode::Lora | FinetuneMode::Qlora { .. } => Trained::Adapter(
            Adapter::lora_from_peft_tensors(tensors, options.lora.scaling(), Some(base_name))
                .map_err(Error::InvalidArgument)?,
        ),
        FinetuneMode::Head => Trained::Adapter(Adapter::Replace { tensors, base: Some(base_name) }),
    };
    Ok(FinetuneReport {
        dropped: dataset.dropped,
        trainable_params,
        train_losses: outcome.train_losses,
        validation_losses: outcome.validation_losses,
        kept_step: outcome.kept_step,
        output: output.to_path_buf(),
        trained,
    })
}

/// QLoRA quantizes the linear layers whose input width is a multiple of the group size; a
/// model with none would train a plain LoRA under the qlora name: refused.
fn check_quantizable(config: &chronos2_core::ModelConfig) -> Result<()> {
    let widths = [3 * config.patch_size(), config.d_model, config.d_ff, config.num_heads * config.d_kv];
    if widths.iter().any(|&w| chronos2_core::quant::qualifies(w, QLORA_GROUP_SIZE)) {
        return Ok(());
    }
    Err(Error::InvalidArgument(format!(
        "--mode qlora quantizes linear layers whose input width is a multiple of {QLORA_GROUP_SIZE}, and this model \
         has none (input widths {widths:?}): nothing would be quantized; use --mode lora"
    )))
}

impl Chronos2 {
    /// Loads the adapter at `path` (a PEFT LoRA directory, an MLX-style `.npz` LoRA, or a trained
    /// head) under `name`, for [`Chronos2::set_adapter`]. The base weights are shared, not copied:
    /// each adapter holds only its own matrices. Fails when the adapter does not fit the model or
    /// `name` is taken.
    pub fn load_adapter(&mut self, name: &str, path: &Path) -> Result<()> {
        let adapter = Adapter::load(path)?;
        self.insert_adapter(name, adapter)
    }

    /// Adds an adapter held in memory (e.g. [`Trained::Adapter`] of [`Chronos2::finetune`]) under
    /// `name`; as [`Chronos2::load_adapter`].
    pub fn insert_adapter(&mut self, name: &str, adapter: Adapter) -> Result<()> {
        if name.is_empty() {
            return Err(Error::InvalidArgument("an adapter name cannot be empty".into()));
        }
        if self.adapters.contains_key(name) {
            return Err(Error::InvalidArgument(format!("an adapter named `{name}` is already loaded")));
        }
        // Uploaded to the model loaded now (which checks that it fits); other backends get it on
        // their first call with it.
        self.engines.primary().add_adapter(name, &adapter)?;
        self.adapters.insert(name.to_string(), Arc::new(adapter));
        Ok(())
    }

    /// Makes every following predict / embed run with the loaded adapter `name`, or with the base
    /// model (`None`). Nothing is reloaded or copied.
    pub fn set_adapter(&mut self, name: Option<&str>) -> Result<()> {
        if let Some(name) = name {
            if !self.adapters.contains_key(name) {
                return Err(Error::InvalidArgument(format!(
                    "no adapter named `{name}` is loaded (loaded: {})",
                    self.loaded_adapters_text()
                )));
            }
        }
        self.active_adapter = name.map(String::from);
        Ok(())
    }

    /// Unloads the adapter `name` from every backend that holds it, freeing its matrices (the
    /// base is untouched). The active adapter cannot be unloaded: switch away from it with
    /// [`Chronos2::set_adapter`] first.
    pub fn unload_adapter(&mut self, name: &str) -> Result<()> {
        if !self.adapters.contains_key(name) {
            return Err(Error::InvalidArgument(format!(
                "cannot unload `{name}`: no adapter of that name is loaded (loaded: {})",
                self.loaded_adapters_text()
            )));
        }
        if self.active_adapter.as_deref() == Some(name) {
            return Err(Error::InvalidArgument(format!(
                "cannot unload `{name}`: it is the active adapter; call set_adapter with another adapter or none first"
            )));
        }
        for model in self.engines.loaded_models() {
            model.forecaster().remove_adapter(name);
        }
        self.adapters.remove(name);
        Ok(())
    }

    /// The loaded adapters' names for an error message ("none" when there are none).
    fn loaded_adapters_text(&self) -> String {
        let loaded = self.adapter_names();
        if loaded.is_empty() {
            "none".to_string()
        } else {
            loaded.join(", ")
        }
    }

    /// The adapter calls run with now.
    pub fn active_adapter(&self) -> Option<&str> {
        self.active_adapter.as_deref()
    }

    /// The names of the loaded adapters.
    pub fn adapter_names(&self) -> Vec<&str> {
        self.adapters.keys().map(String::as_str).collect()
    }

    /// `model` run with the active adapter, uploaded to it first if this backend has not got it yet.
    pub(crate) fn adapted<'a>(&'a self, model: &'a dyn Forecaster) -> Result<WithAdapter<'a>> {
        if let Some(name) = self.active_adapter.as_deref() {
            if !model.has_adapter(name) {
                let adapter = self
                    .adapters
                    .get(name)
                    .ok_or_else(|| Error::InvalidArgument(format!("no adapter named `{name}` is loaded")))?;
                model.add_adapter(name, adapter)?;
            }
        }
        Ok(WithAdapter { model, adapter: self.active_adapter.as_deref() })
    }
}

/// Writes `base` (a model directory or hub id; `None`: the bundled model) with the adapter at
/// `adapter` (PEFT LoRA or head) merged in to `output`, loadable by us and by the reference.
pub fn fuse(base: Option<&str>, adapter: &Path, output: &Path) -> Result<()> {
    if output.exists() {
        return Err(Error::InvalidArgument(format!(
            "output {} already exists; choose a new directory",
            output.display()
        )));
    }
    export::check_output_dir(output)?;
    let base_dir = resolve_base(base)?;
    let adapter = Adapter::load(adapter)?;
    // Merged in memory first: the output's staging directory exists only while it is written.
    let (config, tensors) = export::fused_model(&base_dir, &adapter)?;
    Ok(export::write_staged(output, |dir| export::write_model(dir, &config, &tensors))?)
}

fn resolve_base(base: Option<&str>) -> Result<PathBuf> {
    Ok(match base {
        Some(spec) => crate::hub::resolve_model_dir(spec)?,
        None => crate::bundled::bundled_model_dir()?,
    })
}

impl Chronos2 {
    /// Fuses the active adapter into the model: every following call runs the base with the
    /// adapter merged into its weights (`W + (alpha / r) B A` for LoRA, the trained head for a
    /// head) as a plain model, at the base model's speed (on MLX compiled graphs are used again),
    /// on the same backends and precision. The loaded adapters are dropped: they were trained for
    /// the unfused base. The fused weights are held in memory, nothing is written ([`fuse`] writes
    /// a fused model to keep). On an error the model is unchanged.
    pub fn fuse(&mut self) -> Result<()> {
        let Some(name) = self.active_adapter.clone() else {
            return Err(Error::InvalidArgument(format!(
                "fuse needs an active adapter: call set_adapter(Some(name)) first (loaded: {})",
                self.loaded_adapters_text()
            )));
        };
        let adapter = self
            .adapters
            .get(&name)
            .ok_or_else(|| Error::InvalidArgument(format!("no adapter named `{name}` is loaded")))?;
        *self = self.with_adapter_fused(adapter)?;
        Ok(())
    }

    /// A new model: this one's base with `adapter` merged into its weights, on the same backends
    /// and precision, without adapters. The fused weights are held in memory (the tensors that
    /// [`fuse`] writes); nothing is written to disk. This model is unchanged.
    pub fn with_adapter_fused(&self, adapter: &Adapter) -> Result<Chronos2> {
        let fused = export::fused_source(self.source(), adapter)?;
        Chronos2::load_source(fused, self.backend, self.engines.options())
    }
}

/// Loads `base`, with the adapter at `adapter` (PEFT LoRA or head) fused in memory when given:
/// the model `chronos2 fuse` writes, without writing it.
pub fn load_with_adapter(
    base: Option<&str>,
    adapter: Option<&Path>,
    backend: Backend,
    options: LoadOptions,
) -> Result<Chronos2> {
    let Some(adapter) = adapter else {
        return Chronos2::load_with(base, backend, options);
    };
    let base = ModelSource::Dir(resolve_base(base)?);
    let adapter = Adapter::load(adapter)?;
    Chronos2::load_source(export::fused_source(&base, &adapter)?, backend, options)
}
