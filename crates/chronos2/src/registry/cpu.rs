//! Registry entry: candle on the CPU (crate `chronos2-candle-cpu`), always compiled in.

use chronos2_candle_cpu::train::CpuTrainModel;
use chronos2_candle_cpu::CpuModel;
use chronos2_core::train::{TrainModel, TrainSpec};
use chronos2_core::weights::ModelSource;
use chronos2_core::{Forecaster, Precision};

use super::{BackendModel, Provider};
use crate::error::Result;

pub struct Cpu;

impl Provider for Cpu {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn label(&self) -> &'static str {
        "candle CPU"
    }

    fn compiled(&self) -> bool {
        true
    }

    fn probe(&self) -> std::result::Result<String, String> {
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        Ok(format!("{threads} threads, {}", chronos2_candle_cpu::kernel_description()))
    }

    fn compiles_forward(&self) -> bool {
        false
    }

    fn precisions(&self) -> &'static [Precision] {
        &Precision::ALL
    }

    fn load(&self, source: &ModelSource, precision: Precision) -> Result<Box<dyn BackendModel>> {
        Ok(Box::new(chronos2_candle_cpu::load_source_for(source, precision)?))
    }

    fn train_model(&self, source: &ModelSource, spec: TrainSpec) -> Result<Box<dyn TrainModel>> {
        Ok(Box::new(CpuTrainModel::load_source(source, spec)?))
    }
}

impl BackendModel for CpuModel {
    fn forecaster(&self) -> &dyn Forecaster {
        self
    }

    fn forecaster_mut(&mut self) -> &mut dyn Forecaster {
        self
    }

    fn compiled(&self) -> Option<Box<dyn Forecaster + '_>> {
        None
    }
}
