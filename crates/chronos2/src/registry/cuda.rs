//! Registry entry: NVIDIA GPUs through CUDA (crate `chronos2-cuda`; cudarc with run-time loading
//! of libcuda, NVRTC and cuBLAS, so it builds anywhere and reports "not usable" without a GPU),
//! behind the cargo feature `cuda`. Inference only (fp32, bf16); fine-tuning stays on the CPU.

use chronos2_core::train::{TrainModel, TrainSpec};
use chronos2_core::weights::ModelSource;
use chronos2_core::Precision;

use super::{BackendModel, Provider};
use crate::error::{Error, Result};

pub struct Cuda;

impl Provider for Cuda {
    fn name(&self) -> &'static str {
        "cuda"
    }

    fn label(&self) -> &'static str {
        "CUDA"
    }

    fn compiled(&self) -> bool {
        cfg!(feature = "cuda")
    }

    /// The GPU's name, memory, compute capability and driver, or "not usable: ...".
    fn probe(&self) -> std::result::Result<String, String> {
        #[cfg(feature = "cuda")]
        return chronos2_cuda::check_available();
        #[cfg(not(feature = "cuda"))]
        Err("not compiled in".into())
    }

    fn compiles_forward(&self) -> bool {
        false
    }

    fn precisions(&self) -> &'static [Precision] {
        &[Precision::Fp32, Precision::Bf16]
    }

    fn load(&self, source: &ModelSource, precision: Precision) -> Result<Box<dyn BackendModel>> {
        #[cfg(feature = "cuda")]
        return Ok(Box::new(chronos2_cuda::load_source_for(source, precision)?));
        #[cfg(not(feature = "cuda"))]
        {
            let _ = (source, precision);
            Err(super::not_compiled(self))
        }
    }

    fn train_model(&self, source: &ModelSource, spec: TrainSpec) -> Result<Box<dyn TrainModel>> {
        let _ = (source, spec);
        Err(Error::InvalidArgument(
            "the cuda backend runs inference only (fp32, bf16); fine-tune on the cpu backend".into(),
        ))
    }
}

#[cfg(feature = "cuda")]
impl BackendModel for chronos2_cuda::CudaModel {
    fn forecaster(&self) -> &dyn chronos2_core::Forecaster {
        self
    }

    fn forecaster_mut(&mut self) -> &mut dyn chronos2_core::Forecaster {
        self
    }

    fn compiled(&self) -> Option<Box<dyn chronos2_core::Forecaster + '_>> {
        None
    }
}
