//! The backend's CUDA kernels: C++ source (`kernels.cu`) compiled by NVRTC on first use, once
//! per process and GPU architecture, then loaded into each device context.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use cudarc::driver::{CudaContext, CudaFunction};
use cudarc::nvrtc::{compile_ptx_with_opts, CompileOptions, Ptx};

/// The kernels' source.
pub const SOURCE: &str = include_str!("kernels.cu");

/// Head sizes the attention kernel is instantiated for (`attention_f32_d{N}`): a head of size `d`
/// runs on the smallest `N >= d`.
pub const ATTENTION_HEAD_BOUNDS: [usize; 5] = [8, 16, 32, 64, 128];

/// The attention kernel bound for heads of size `d`, or `None` when `d` is larger than every
/// instantiation.
pub fn attention_bound(d: usize) -> Option<usize> {
    ATTENTION_HEAD_BOUNDS.into_iter().find(|&n| n >= d)
}

/// The loaded functions of [`SOURCE`].
pub struct Kernels {
    pub rms_norm: CudaFunction,
    pub add: CudaFunction,
    pub relu: CudaFunction,
    pub bias_add: CudaFunction,
    pub select: CudaFunction,
    pub f32_to_bf16: CudaFunction,
    pub strided_copy: CudaFunction,
    pub mean_axis: CudaFunction,
    pub take_rows: CudaFunction,
    pub rope: CudaFunction,
    /// `attention_f32_d{N}` for each of [`ATTENTION_HEAD_BOUNDS`], in that order.
    pub attention: Vec<CudaFunction>,
}

/// PTX of [`SOURCE`] per virtual architecture (`compute_90`, ...), compiled once per process.
static PTX: Mutex<Option<HashMap<String, String>>> = Mutex::new(None);

fn ptx_for(arch: &str) -> Result<String, String> {
    let mut cache = PTX.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let cache = cache.get_or_insert_with(HashMap::new);
    if let Some(ptx) = cache.get(arch) {
        return Ok(ptx.clone());
    }
    let options = CompileOptions {
        options: vec![format!("--gpu-architecture={arch}"), "--std=c++17".into()],
        name: Some("chronos2_kernels.cu".into()),
        ..Default::default()
    };
    let ptx =
        compile_ptx_with_opts(SOURCE, options).map_err(|e| format!("NVRTC compile of the kernels failed: {e}"))?;
    let text = ptx.to_src();
    cache.insert(arch.to_string(), text.clone());
    Ok(text)
}

impl Kernels {
    /// Compiles (first time in this process) and loads the kernels for compute capability
    /// `(major, minor)` into `ctx`.
    pub fn load(ctx: &Arc<CudaContext>, (major, minor): (i32, i32)) -> Result<Kernels, String> {
        let ptx = ptx_for(&format!("compute_{major}{minor}"))?;
        let module = ctx.load_module(Ptx::from_src(ptx)).map_err(|e| format!("loading the kernels: {e}"))?;
        let f = |name: &str| module.load_function(name).map_err(|e| format!("kernel `{name}`: {e}"));
        Ok(Kernels {
            rms_norm: f("rms_norm_f32")?,
            add: f("add_f32")?,
            relu: f("relu_f32")?,
            bias_add: f("bias_add_f32")?,
            select: f("select_f32")?,
            f32_to_bf16: f("f32_to_bf16")?,
            strided_copy: f("strided_copy_f32")?,
            mean_axis: f("mean_axis_f32")?,
            take_rows: f("take_rows_f32")?,
            rope: f("rope_f32")?,
            attention: ATTENTION_HEAD_BOUNDS
                .iter()
                .map(|n| f(&format!("attention_f32_d{n}")))
                .collect::<Result<_, _>>()?,
        })
    }

    /// The attention kernel for heads of size `d`.
    pub fn attention_for(&self, d: usize) -> Option<&CudaFunction> {
        let bound = attention_bound(d)?;
        let index = ATTENTION_HEAD_BOUNDS.iter().position(|&n| n == bound)?;
        self.attention.get(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kernel_name_is_defined_in_the_source() {
        let mut names = vec![
            "rms_norm_f32",
            "add_f32",
            "relu_f32",
            "bias_add_f32",
            "select_f32",
            "f32_to_bf16",
            "strided_copy_f32",
            "mean_axis_f32",
            "take_rows_f32",
            "rope_f32",
        ]
        .into_iter()
        .map(|n| format!("void {n}("))
        .collect::<Vec<_>>();
        for n in ATTENTION_HEAD_BOUNDS {
            names.push(format!("ATTENTION_KERNEL({n})"));
        }
        for name in names {
            assert!(SOURCE.contains(&name), "kernels.cu lacks `{name}`");
        }
    }

    #[test]
    fn attention_bound_is_the_smallest_instantiation_that_fits() {
        assert_eq!(attention_bound(6), Some(8));
        assert_eq!(attention_bound(8), Some(8));
        assert_eq!(attention_bound(9), Some(16));
        assert_eq!(attention_bound(64), Some(64));
        assert_eq!(attention_bound(129), None);
    }
}
