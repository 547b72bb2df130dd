//! Registry entry: Apple MLX (crate `chronos2-mlx`; Metal on Apple silicon, its CPU backend on
//! Linux), behind the cargo feature `mlx`.

use chronos2_core::train::{TrainModel, TrainSpec};
use chronos2_core::weights::ModelSource;
use chronos2_core::Precision;

use super::{BackendModel, Provider};
use crate::error::Result;

pub struct Mlx;

impl Provider for Mlx {
    fn name(&self) -> &'static str {
        "mlx"
    }

    fn label(&self) -> &'static str {
        "MLX"
    }

    fn compiled(&self) -> bool {
        cfg!(feature = "mlx")
    }

    fn probe(&self) -> std::result::Result<String, String> {
        #[cfg(feature = "mlx")]
        return chronos2_mlx::check_available();
        #[cfg(not(feature = "mlx"))]
        Err("not compiled in".into())
    }

    fn compiles_forward(&self) -> bool {
        true
    }

    fn precisions(&self) -> &'static [Precision] {
        &[Precision::Fp32, Precision::Bf16, Precision::Int8, Precision::Int4]
    }

    fn load(&self, source: &ModelSource, precision: Precision) -> Result<Box<dyn BackendModel>> {
        let _ = precision; // MLX loads fp32 and converts in set_precision (done by the registry)
        #[cfg(feature = "mlx")]
        return Ok(Box::new(chronos2_mlx::load_source_with(source, chronos2_mlx::MlxOptions::default())?));
        #[cfg(not(feature = "mlx"))]
        {
            let _ = source;
            Err(super::not_compiled(self))
        }
    }

    fn train_model(&self, source: &ModelSource, spec: TrainSpec) -> Result<Box<dyn TrainModel>> {
        #[cfg(feature = "mlx")]
        return Ok(Box::new(chronos2_mlx::train::MlxTrainModel::load_source(source, spec)?));
        #[cfg(not(feature = "mlx"))]
        {
            let _ = (source, spec);
            Err(super::not_compiled(self))
        }
    }
}

#[cfg(feature = "mlx")]
impl BackendModel for chronos2_mlx::MlxModel {
    fn forecaster(&self) -> &dyn chronos2_core::Forecaster {
        self
    }

    fn forecaster_mut(&mut self) -> &mut dyn chronos2_core::Forecaster {
        self
    }

    fn compiled(&self) -> Option<Box<dyn chronos2_core::Forecaster + '_>> {
        Some(Box::new(self.with_compile(true)))
    }
}
