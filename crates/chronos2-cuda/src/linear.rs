//! Linear layers on cuBLAS: `y = x W^T (+ b)` with `W` `(out, in)` as PyTorch stores it.
//!
//! - fp32: `cublasGemmEx` with fp32 inputs and `CUBLAS_COMPUTE_32F` under
//!   `CUBLAS_DEFAULT_MATH` (no TF32), the reference's arithmetic up to summation order.
//! - bf16: the weight is converted once (round to nearest even, as `tensor.to(torch.bfloat16)`),
//!   the activations per call by a kernel; the product runs on the tensor cores with fp32
//!   accumulation and an fp32 output.
//!
//! cuBLAS is column-major: the row-major `y (M, N) = x (M, K) W^T` is the column-major
//! `y^T (N, M) = W (N, K) x^T`, i.e. `gemm(op(A) = T, op(B) = N)` on `A = W`, `B = x` with
//! leading dimensions `K`, `K`, `N`.

use std::sync::Arc;

use chronos2_core::{Error, Result};
use cudarc::cublas::sys::{cublasComputeType_t, cublasGemmAlgo_t, cublasOperation_t, cudaDataType_t};
use cudarc::driver::CudaSlice;

use crate::device::{err, Device};

/// The weight of a layer on the device.
pub enum Weight {
    F32(CudaSlice<f32>),
    /// bf16 bit patterns.
    Bf16(CudaSlice<u16>),
}

/// A linear layer on the GPU.
pub struct CudaLinear {
    pub(crate) weight: Weight,
    pub(crate) bias: Option<CudaSlice<f32>>,
    pub out_dim: usize,
    pub in_dim: usize,
}

impl std::fmt::Debug for CudaLinear {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.weight {
            Weight::F32(_) => "fp32",
            Weight::Bf16(_) => "bf16",
        };
        write!(f, "CudaLinear({kind}, {} -> {}, bias: {})", self.in_dim, self.out_dim, self.bias.is_some())
    }
}

/// `x` rounded to bf16, nearest even (NaN stays NaN).
pub fn bf16_bits(x: f32) -> u16 {
    let u = x.to_bits();
    if x.is_nan() {
        return ((u >> 16) | 0x40) as u16;
    }
    (u.wrapping_add(0x7fff + ((u >> 16) & 1)) >> 16) as u16
}

/// The f32 value of bf16 bits.
pub fn bf16_to_f32(bits: u16) -> f32 {
    f32::from_bits(u32::from(bits) << 16)
}

fn dim(v: usize, what: &str) -> Result<i32> {
    i32::try_from(v).map_err(|_| Error::Backend(format!("cuda linear: {what} {v} exceeds cuBLAS's int range")))
}

impl CudaLinear {
    /// A layer with its weight `(out_dim, in_dim)` uploaded in bf16 (`bf16`) or f32; the bias
    /// stays f32.
    pub(crate) fn new(
        dev: &Device,
        weight: &[f32],
        out_dim: usize,
        in_dim: usize,
        bias: Option<&[f32]>,
        bf16: bool,
    ) -> Result<CudaLinear> {
        Self::check(weight.len(), out_dim, in_dim, bias)?;
        let weight = if bf16 {
            let bits: Vec<u16> = weight.iter().map(|&w| bf16_bits(w)).collect();
            Weight::Bf16(dev.upload(&bits)?)
        } else {
            Weight::F32(dev.upload(weight)?)
        };
        Ok(CudaLinear { weight, bias: bias.map(|b| dev.upload(b)).transpose()?, out_dim, in_dim })
    }

    fn check(len: usize, out_dim: usize, in_dim: usize, bias: Option<&[f32]>) -> Result<()> {
        if len != out_dim * in_dim || bias.is_some_and(|b| b.len() != out_dim) {
            return Err(Error::Backend(format!(
                "cuda linear: weight of {len} values / bias of {:?} for ({out_dim}, {in_dim})",
                bias.map(<[f32]>::len)
            )));
        }
        Ok(())
    }

    /// Device bytes of the weight and bias.
    pub fn bytes(&self) -> usize {
        let w = match &self.weight {
            Weight::F32(w) => w.len() * 4,
            Weight::Bf16(w) => w.len() * 2,
        };
        w + self.bias.as_ref().map_or(0, |b| b.len() * 4)
    }

    /// `y (rows, out) = x (rows, in) W^T (+ b)`; `x` at device address `x_ptr`.
    pub(crate) fn forward(&self, dev: &Device, x_ptr: u64, rows: usize) -> Result<Arc<CudaSlice<f32>>> {
        let y = dev.alloc::<f32>(rows * self.out_dim)?;
        let (m, n, k) = (dim(self.out_dim, "out_dim")?, dim(rows, "rows")?, dim(self.in_dim, "in_dim")?);
        // Keeps the bf16 copy of x alive until the GEMM is enqueued (freed stream-ordered).
        let mut x_bf16 = None;
        let (a_ptr, b_ptr, in_type) = match &self.weight {
            Weight::F32(w) => (dev.ptr(w, 0), x_ptr, cudaDataType_t::CUDA_R_32F),
            Weight::Bf16(w) => {
                let xb = dev.alloc::<u16>(rows * self.in_dim)?;
                let count = (rows * self.in_dim) as u64;
                let out = dev.ptr(&xb, 0);
                // SAFETY: `f32_to_bf16(const float*, unsigned short*, u64 n)`; x holds `rows * in`
                // floats (checked by the caller), `xb` as many u16.
                unsafe {
                    dev.launch(&dev.kernels.f32_to_bf16, Device::grid(rows * self.in_dim)?, &[&x_ptr, &out, &count])?
                };
                let ptr = dev.ptr(&xb, 0);
                x_bf16 = Some(xb);
                (dev.ptr(w, 0), ptr, cudaDataType_t::CUDA_R_16BF)
            }
        };
        let (alpha, beta) = (1.0f32, 0.0f32);
        let blas = dev.blas();
        dev.ctx.bind_to_thread().map_err(|e| err("binding the context", e))?;
        // SAFETY: A is the (out, in) weight (column-major in x out, ld = in), B the (rows, in)
        // input (column-major in x rows, ld = in), C the (rows, out) output (column-major
        // out x rows, ld = out), all live device buffers of this context of those sizes; alpha /
        // beta are host scalars of the compute type (fp32); the handle runs on the device's
        // stream.
        unsafe {
            cudarc::cublas::result::gemm_ex(
                *blas.handle(),
                cublasOperation_t::CUBLAS_OP_T,
                cublasOperation_t::CUBLAS_OP_N,
                m,
                n,
                k,
                (&alpha as *const f32).cast(),
                a_ptr as *const std::ffi::c_void,
                in_type,
                k,
                b_ptr as *const std::ffi::c_void,
                in_type,
                k,
                (&beta as *const f32).cast(),
                dev.ptr(&y, 0) as *mut std::ffi::c_void,
                cudaDataType_t::CUDA_R_32F,
                m,
                cublasComputeType_t::CUBLAS_COMPUTE_32F,
                cublasGemmAlgo_t::CUBLAS_GEMM_DFALT,
            )
        }
        .map_err(|e| err("cublasGemmEx", e))?;
        drop(blas);
        drop(x_bf16);
        if let Some(b) = &self.bias {
            let (yp, bp, n, total) = (dev.ptr(&y, 0), dev.ptr(b, 0), self.out_dim as u32, (rows * self.out_dim) as u64);
            // SAFETY: `bias_add_f32(float* y, const float* b, u32 n, u64 total)`; y holds `total`
            // floats, b `n`.
            unsafe { dev.launch(&dev.kernels.bias_add, Device::grid(rows * self.out_dim)?, &[&yp, &bp, &n, &total])? };
        }
        Ok(Arc::new(y))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_rounding_is_nearest_even() {
        assert_eq!(bf16_bits(1.0), 0x3f80);
        // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to even (1.0).
        assert_eq!(bf16_bits(1.0 + 1.0 / 256.0), 0x3f80);
        // 1 + 3 * 2^-8 is halfway between 1 + 2^-7 and 1 + 2^-6: ties to even (1 + 2^-6).
        assert_eq!(bf16_bits(1.0 + 3.0 / 256.0), 0x3f82);
        assert_eq!(bf16_to_f32(bf16_bits(-2.5)), -2.5);
        assert!(bf16_to_f32(bf16_bits(f32::NAN)).is_nan());
        assert_eq!(bf16_to_f32(bf16_bits(f32::INFINITY)), f32::INFINITY);
    }
}
