//! [`MlxModel`]: Chronos-2 on MLX, optionally with the device half of the forward compiled by
//! `mlx_rs::transforms::compile`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, ThreadId};

use chronos2_core::forecaster::{Encoding, Footprint, Forecaster, ModelBatch, QuantileForecast};
use chronos2_core::model::{Chronos2Model, ForwardStructure, GraphOutputs, PreparedForward, Trace};
use chronos2_core::ops::Ops;
use chronos2_core::train::Adapter;
use chronos2_core::weights::ModelSource;
use chronos2_core::{Error, ModelConfig, Precision, Result};
use mlx_rs::error::Exception;
use mlx_rs::Array;

use crate::{MlxOps, MlxTensor};

/// Options of an MLX model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MlxOptions {
    /// Run the model forward (the device graph from the uploaded inputs to the output head /
    /// hidden states; not the host pre- and post-processing) through
    /// `mlx_rs::transforms::compile`, one compiled graph per [`ForwardStructure`] (input shapes
    /// and group-attention layout). Same outputs as uncompiled, up to float rounding of fused
    /// kernels.
    pub compile: bool,
}

/// Compiled graphs kept at most (least recently used ones are dropped first). Each holds MLX's
/// traced and simplified tape (and, with fusion, its kernels); a new input shape or group layout
/// traces a new one.
pub const COMPILE_CACHE_CAPACITY: usize = 32;

type CompiledFn = Box<dyn for<'a> FnMut(&'a [Array]) -> std::result::Result<Vec<Array>, Exception>>;

/// A compiled forward: `(inputs...) -> [hidden, head]`.
struct CompiledGraph {
    call: CompiledFn,
    last_used: u64,
}

// SAFETY: the closure returned by `mlx_rs::transforms::compile` is `!Send` only through a
// `PhantomData<Rc<()>>` marker (no `Rc` exists) and through what it owns: our traced closure
// (which holds an `Arc<Chronos2Model<MlxOps>>` and a `ForwardStructure`, both `Send + Sync`), and
// a handle on MLX's compile cache: a heap `std::weak_ptr` to the cache of the thread that created
// it, through which dropping the compiled function erases its entry (`compile_erase` locks the
// weak pointer, then the cache's own rwlock, so it may run on any thread, also after the owning
// thread exited). `CompiledGraph`s are only ever touched under the model's cache `Mutex`, one
// thread at a time, and each is only *called* on the thread that created it (the cache key holds
// the thread id), so its MLX cache entry lives in the cache its drop erases from.
unsafe impl Send for CompiledGraph {}

#[derive(Default)]
struct CompileCache {
    graphs: HashMap<(ThreadId, ForwardStructure), CompiledGraph>,
    clock: u64,
}

/// Chronos-2 running on MLX: the core model ([`Chronos2Model<MlxOps>`]), and, when compilation
/// is on, a cache of compiled forwards.
///
/// Every forward is one lazy MLX graph, evaluated once, when its output is read back: the host
/// half ([`Chronos2Model::prepare`]: patching, group plan, masks, rotary tables) runs first, its
/// arrays are uploaded, then [`Chronos2Model::graph`] builds the device graph, either directly or
/// through the compiled function cached for the forward's [`ForwardStructure`].
pub struct MlxModel {
    model: Arc<Chronos2Model<MlxOps>>,
    compile: bool,
    cache: Mutex<CompileCache>,
    /// Times MLX traced [`Chronos2Model::graph`] for a compiled function.
    traces: Arc<AtomicU64>,
}

impl MlxModel {
    pub fn new(model: Chronos2Model<MlxOps>, options: MlxOptions) -> Self {
        MlxModel { model: Arc::new(model), compile: options.compile, cache: Mutex::default(), traces: Arc::default() }
    }

    /// The core model (uncompiled forwards, layer access).
    pub fn inner(&self) -> &Chronos2Model<MlxOps> {
        &self.model
    }

    pub fn options(&self) -> MlxOptions {
        MlxOptions { compile: self.compile }
    }

    /// Turns compilation on or off; turning it off drops the compiled graphs.
    pub fn set_compile(&mut self, compile: bool) {
        self.compile = compile;
        if !compile {
            self.clear_compiled();
        }
    }

    /// Drops every compiled graph (they are traced again on their next use).
    pub fn clear_compiled(&self) {
        self.lock_cache().graphs.clear();
    }

    /// Compiled graphs currently cached (all threads).
    pub fn compiled_graphs(&self) -> usize {
        self.lock_cache().graphs.len()
    }

    /// Times MLX has traced the model graph to compile it (once per compiled graph when its
    /// cache works), including graphs dropped since.
    pub fn compile_traces(&self) -> u64 {
        self.traces.load(Ordering::Relaxed)
    }

    /// Runs the model uncompiled, keeping every intermediate state on the host.
    pub fn trace(&self, batch: &ModelBatch) -> Result<Trace> {
        self.model.trace(batch)
    }

    fn lock_cache(&self) -> MutexGuard<'_, CompileCache> {
        // A panic while tracing leaves no half-inserted entry (insertion comes after the call).
        self.cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// This model with compilation on or off for the calls made through the returned view: a
    /// per-call choice on the same weights and the same cache of compiled graphs.
    pub fn with_compile(&self, compile: bool) -> WithCompile<'_> {
        WithCompile { model: self, compile }
    }

    fn forecast_with(&self, batch: &ModelBatch, compile: bool) -> Result<QuantileForecast> {
        let prepared = self.model.prepare(batch)?;
        let out = self.run_graph(&prepared, compile)?;
        let head = self.model.ops().to_vec(&out.head)?;
        self.model.forecast_from_head(&prepared, &head)
    }

    fn encode_with(&self, batch: &ModelBatch, compile: bool) -> Result<Encoding> {
        let prepared = self.model.prepare(batch)?;
        let out = self.run_graph(&prepared, compile)?;
        let hidden = self.model.ops().to_vec(&out.hidden)?;
        self.model.encoding_from_hidden(prepared, hidden)
    }

    /// With a run-time adapter active the forward runs uncompiled (compiled graphs capture the
    /// base model only); without one, as [`Forecaster::forecast`].
    fn forecast_adapted_with(
        &self,
        batch: &ModelBatch,
        adapter: Option<&str>,
        compile: bool,
    ) -> Result<QuantileForecast> {
        match adapter {
            None => self.forecast_with(batch, compile),
            Some(_) => self.model.forecast_adapted(batch, adapter),
        }
    }

    fn encode_adapted_with(&self, batch: &ModelBatch, adapter: Option<&str>, compile: bool) -> Result<Encoding> {
        match adapter {
            None => self.encode_with(batch, compile),
            Some(_) => self.model.encode_adapted(batch, adapter),
        }
    }

    /// The device graph of `prepared`, compiled or not: lazy `hidden` and `head`.
    fn run_graph(&self, prepared: &PreparedForward, compile: bool) -> Result<GraphOutputs<MlxTensor>> {
        let inputs = self.model.upload(prepared)?;
        if !compile {
            return self.model.graph(&prepared.structure, &inputs, &mut |_| Ok(()));
        }
        let arrays: Vec<Array> = inputs.into_iter().map(MlxTensor::into_array).collect();
        let key = (thread::current().id(), prepared.structure.clone());
        let mut cache = self.lock_cache();
        cache.clock += 1;
        let now = cache.clock;
        if !cache.graphs.contains_key(&key) {
            if cache.graphs.len() >= COMPILE_CACHE_CAPACITY {
                let oldest = cache.graphs.iter().min_by_key(|(_, g)| g.last_used).map(|(k, _)| k.clone());
                if let Some(oldest) = oldest {
                    cache.graphs.remove(&oldest);
                }
            }
            let call = compile_graph(Arc::clone(&self.model), prepared.structure.clone(), Arc::clone(&self.traces));
            cache.graphs.insert(key.clone(), CompiledGraph { call, last_used: now });
        }
        let graph = cache.graphs.get_mut(&key).expect("just inserted");
        graph.last_used = now;
        // Builds the lazy outputs (tracing the model on a graph's first call); evaluates nothing.
        let result = (graph.call)(&arrays);
        if result.is_err() {
            // A failed trace is not cached by MLX in a usable state; trace again next time.
            cache.graphs.remove(&key);
        }
        drop(cache);
        let mut outputs = result.map_err(|e| Error::Backend(format!("compiled forward: {e}")))?;
        if outputs.len() != 2 {
            return Err(Error::Backend(format!("compiled forward returned {} arrays, expected 2", outputs.len())));
        }
        let head = MlxTensor::from(outputs.pop().expect("two outputs"));
        let hidden = MlxTensor::from(outputs.pop().expect("two outputs"));
        Ok(GraphOutputs { hidden, head })
    }
}

/// `mlx_rs::transforms::compile` of [`Chronos2Model::graph`] for one structure. The weights are
/// captured (MLX treats arrays reached from the traced outputs that are not inputs as constants
/// of the compiled tape); only the per-forward arrays of [`PreparedForward::inputs`] are inputs.
fn compile_graph(model: Arc<Chronos2Model<MlxOps>>, structure: ForwardStructure, traces: Arc<AtomicU64>) -> CompiledFn {
    let forward = move |inputs: &[Array]| -> std::result::Result<Vec<Array>, Exception> {
        traces.fetch_add(1, Ordering::Relaxed);
        let inputs: Vec<MlxTensor> = inputs.iter().cloned().map(MlxTensor::from).collect();
        let out = model.graph(&structure, &inputs, &mut |_| Ok(())).map_err(|e| Exception::custom(e.to_string()))?;
        Ok(vec![out.hidden.into_array(), out.head.into_array()])
    };
    Box::new(mlx_rs::transforms::compile::compile(forward, false))
}

impl Forecaster for MlxModel {
    fn config(&self) -> &ModelConfig {
        self.model.config()
    }

    fn backend_name(&self) -> &str {
        self.model.backend_name()
    }

    fn forecast(&self, batch: &ModelBatch) -> Result<QuantileForecast> {
        self.forecast_with(batch, self.compile)
    }

    fn encode(&self, batch: &ModelBatch) -> Result<Encoding> {
        self.encode_with(batch, self.compile)
    }

    /// Sets the precision of the linear layers; drops the compiled graphs (they captured the
    /// float weights).
    fn set_precision(&mut self, precision: Precision) -> Result<()> {
        self.lock_cache().graphs.clear();
        let model = Arc::get_mut(&mut self.model).ok_or_else(|| {
            Error::Backend("set_precision: the model is shared by a compiled graph still in use".into())
        })?;
        model.set_precision(precision)
    }

    fn footprint(&self) -> Footprint {
        self.model.footprint()
    }

    fn add_adapter(&self, name: &str, adapter: &Adapter) -> Result<()> {
        self.model.add_adapter(name, adapter)
    }

    fn remove_adapter(&self, name: &str) -> bool {
        self.model.remove_adapter(name)
    }

    fn has_adapter(&self, name: &str) -> bool {
        self.model.has_adapter(name)
    }

    fn forecast_adapted(&self, batch: &ModelBatch, adapter: Option<&str>) -> Result<QuantileForecast> {
        self.forecast_adapted_with(batch, adapter, self.compile)
    }

    fn encode_adapted(&self, batch: &ModelBatch, adapter: Option<&str>) -> Result<Encoding> {
        self.encode_adapted_with(batch, adapter, self.compile)
    }
}

/// An [`MlxModel`] with compilation chosen for the calls made through it
/// ([`MlxModel::with_compile`]).
pub struct WithCompile<'a> {
    model: &'a MlxModel,
    compile: bool,
}

impl Forecaster for WithCompile<'_> {
    fn config(&self) -> &ModelConfig {
        self.model.config()
    }

    fn backend_name(&self) -> &str {
        self.model.backend_name()
    }

    fn forecast(&self, batch: &ModelBatch) -> Result<QuantileForecast> {
        self.model.forecast_with(batch, self.compile)
    }

    fn encode(&self, batch: &ModelBatch) -> Result<Encoding> {
        self.model.encode_with(batch, self.compile)
    }

    fn add_adapter(&self, name: &str, adapter: &Adapter) -> Result<()> {
        self.model.add_adapter(name, adapter)
    }

    fn remove_adapter(&self, name: &str) -> bool {
        self.model.remove_adapter(name)
    }

    fn has_adapter(&self, name: &str) -> bool {
        self.model.has_adapter(name)
    }

    fn forecast_adapted(&self, batch: &ModelBatch, adapter: Option<&str>) -> Result<QuantileForecast> {
        self.model.forecast_adapted_with(batch, adapter, self.compile)
    }

    fn encode_adapted(&self, batch: &ModelBatch, adapter: Option<&str>) -> Result<Encoding> {
        self.model.encode_adapted_with(batch, adapter, self.compile)
    }

    /// A view borrows the model: its precision is set on the [`MlxModel`] itself.
    fn set_precision(&mut self, _precision: Precision) -> Result<()> {
        Err(Error::Backend("the precision is set on the MlxModel, not on a per-call compile view".into()))
    }

    fn footprint(&self) -> Footprint {
        self.model.footprint()
    }
}

/// Loads the model in `model_dir` (holding `config.json` and `model.safetensors`) on MLX.
pub fn load(model_dir: &Path) -> Result<Box<dyn Forecaster>> {
    load_with(model_dir, MlxOptions::default())
}

/// [`load`] with options (e.g. compiled forwards).
pub fn load_with(model_dir: &Path, options: MlxOptions) -> Result<Box<dyn Forecaster>> {
    Ok(Box::new(load_model_with(model_dir, options)?))
}

/// Like [`load`], keeping the concrete type.
pub fn load_model(model_dir: &Path) -> Result<MlxModel> {
    load_model_with(model_dir, MlxOptions::default())
}

/// Like [`load_with`], keeping the concrete type.
pub fn load_model_with(model_dir: &Path, options: MlxOptions) -> Result<MlxModel> {
    load_source_with(&ModelSource::Dir(model_dir.to_path_buf()), options)
}

/// [`load_model_with`] from a model directory or a model in memory.
pub fn load_source_with(source: &ModelSource, options: MlxOptions) -> Result<MlxModel> {
    Ok(MlxModel::new(Chronos2Model::load_source(MlxOps::new(), source)?, options))
}
