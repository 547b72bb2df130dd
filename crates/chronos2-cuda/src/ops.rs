//! [`Ops`] on the GPU: eager launches on one stream, arrays always contiguous.
//!
//! Reshapes and narrows of the first axis are views (same buffer, an offset); permutes,
//! broadcasts, other narrows and concatenation are strided copies ([`crate::layout`]). The time
//! and group attentions run one flash-style kernel (online softmax, additive key mask, no score
//! matrix in memory); RMS norm and RoPE are one kernel each; linears are cuBLAS GEMMs
//! ([`crate::linear`]).

use std::sync::Arc;

use chronos2_core::ops::{LayerFootprint, Ops};
use chronos2_core::quant::QuantizedWeight;
use chronos2_core::{Error, Precision, Result};
use cudarc::driver::{CudaSlice, LaunchConfig};

use crate::device::Device;
use crate::layout::{self, CopyPlan};
use crate::linear::{CudaLinear, Weight};

/// A contiguous f32 array on the GPU: a shared buffer, the offset of its first element, and its
/// shape. Cloning shares the buffer.
#[derive(Clone)]
pub struct CudaTensor {
    buf: Arc<CudaSlice<f32>>,
    offset: usize,
    shape: Vec<usize>,
}

impl std::fmt::Debug for CudaTensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CudaTensor({:?})", self.shape)
    }
}

impl CudaTensor {
    fn new(buf: Arc<CudaSlice<f32>>, shape: Vec<usize>) -> Self {
        CudaTensor { buf, offset: 0, shape }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
}

/// The Chronos-2 operations on one NVIDIA GPU (device 0).
#[derive(Clone, Debug)]
pub struct CudaOps {
    dev: Arc<Device>,
    /// Float linear layers are built in bf16 ([`CudaOps::building_bf16`]).
    bf16_linears: bool,
}

impl CudaOps {
    /// Opens device 0 (see [`Device::open`]); fails with a clear message, never panics, where
    /// there is no GPU or no CUDA library.
    pub fn new() -> Result<Self> {
        Ok(CudaOps { dev: Arc::new(Device::open()?), bf16_linears: false })
    }

    /// Ops whose float linear layers are converted to bf16 as they are read, so a model loaded
    /// with them never holds its fp32 weights on the GPU.
    pub fn building_bf16(&self) -> Self {
        CudaOps { dev: self.dev.clone(), bf16_linears: true }
    }

    pub fn device(&self) -> &Device {
        &self.dev
    }

    /// Waits for every launched operation (for timing).
    pub fn synchronize(&self) -> Result<()> {
        self.dev.stream.synchronize().map_err(|e| crate::device::err("synchronize", e))
    }

    fn ptr(&self, x: &CudaTensor) -> u64 {
        self.dev.ptr(&x.buf, x.offset)
    }

    fn alloc(&self, shape: &[usize]) -> Result<CudaTensor> {
        let n = shape.iter().product();
        Ok(CudaTensor::new(Arc::new(self.dev.alloc::<f32>(n)?), shape.to_vec()))
    }

    /// Runs one copy plan from `src` into `dst`.
    fn copy(&self, plan: &CopyPlan, src: &CudaTensor, dst: &CudaTensor) -> Result<()> {
        if plan.len == 0 {
            return Ok(());
        }
        let (s, d, n) =
            (self.ptr(src) + 4 * plan.src_offset as u64, self.ptr(dst) + 4 * plan.dst_offset as u64, plan.len as u64);
        // SAFETY: `strided_copy_f32(const float*, float*, u64 n, Dims, Dims, Dims)`; the plans of
        // `crate::layout` address only elements inside `src` and `dst` (their shapes built them).
        unsafe {
            self.dev.launch(
                &self.dev.kernels.strided_copy,
                Device::grid(plan.len)?,
                &[&s, &d, &n, &plan.dims, &plan.src_strides, &plan.dst_strides],
            )
        }
    }

    fn copied(&self, plan: &CopyPlan, src: &CudaTensor, shape: &[usize]) -> Result<CudaTensor> {
        let out = self.alloc(shape)?;
        self.copy(plan, src, &out)?;
        Ok(out)
    }

    /// An element-wise kernel `f(inputs..., out, n)` over arrays of `x`'s shape.
    fn elementwise(&self, f: &cudarc::driver::CudaFunction, inputs: &[&CudaTensor]) -> Result<CudaTensor> {
        let shape = inputs[0].shape.clone();
        if let Some(bad) = inputs.iter().find(|t| t.shape != shape) {
            return Err(Error::Backend(format!("cuda: element-wise shapes {:?} and {:?}", shape, bad.shape)));
        }
        let out = self.alloc(&shape)?;
        let n = out.len();
        let ptrs: Vec<u64> = inputs.iter().map(|t| self.ptr(t)).chain([self.ptr(&out)]).collect();
        let count = n as u64;
        let mut args: Vec<&dyn crate::device::KernelArg> =
            ptrs.iter().map(|p| p as &dyn crate::device::KernelArg).collect();
        args.push(&count);
        // SAFETY: every element-wise kernel takes its input pointers, the output pointer and
        // `u64 n`, in that order; all arrays hold `n` floats (same shape, checked above).
        unsafe { self.dev.launch(f, Device::grid(n)?, &args)? };
        Ok(out)
    }

    fn linear_error(&self, what: &str, x: &CudaTensor, layer: &CudaLinear) -> Error {
        Error::Backend(format!("cuda {what}: input {:?} for a layer of in_dim {}", x.shape, layer.in_dim))
    }
}

impl Ops for CudaOps {
    type Tensor = CudaTensor;
    type Linear = CudaLinear;

    fn name(&self) -> &'static str {
        "cuda"
    }

    fn tensor(&self, data: &[f32], shape: &[usize]) -> Result<CudaTensor> {
        if shape.iter().product::<usize>() != data.len() {
            return Err(Error::Backend(format!("cuda tensor: {} values for shape {shape:?}", data.len())));
        }
        Ok(CudaTensor::new(Arc::new(self.dev.upload(data)?), shape.to_vec()))
    }

    fn to_vec(&self, x: &CudaTensor) -> Result<Vec<f32>> {
        self.dev.download(&x.buf, x.offset, x.len())
    }

    fn shape(&self, x: &CudaTensor) -> Vec<usize> {
        x.shape.clone()
    }

    fn linear_from_host(
        &self,
        weight: &[f32],
        out_dim: usize,
        in_dim: usize,
        bias: Option<&[f32]>,
    ) -> Result<CudaLinear> {
        CudaLinear::new(&self.dev, weight, out_dim, in_dim, bias, self.bf16_linears)
    }

    /// Not run on the GPU: the error names what this backend runs (fp32, bf16).
    fn linear_from_quantized(&self, weight: &QuantizedWeight, _bias: Option<&[f32]>) -> Result<CudaLinear> {
        let precision = Precision::weight_only(weight.bits).unwrap_or(Precision::Int8);
        Err(self.unsupported_precision(precision))
    }

    /// fp32 (exact: no TF32) and bf16 (tensor cores, fp32 accumulation).
    fn supports_precision(&self, precision: Precision) -> bool {
        matches!(precision, Precision::Fp32 | Precision::Bf16)
    }

    fn linear_in_precision(
        &self,
        weight: &[f32],
        out_dim: usize,
        in_dim: usize,
        bias: Option<&[f32]>,
        precision: Precision,
    ) -> Result<CudaLinear> {
        match precision {
            Precision::Bf16 | Precision::Fp32 => {
                CudaLinear::new(&self.dev, weight, out_dim, in_dim, bias, precision == Precision::Bf16)
            }
            other => Err(self.unsupported_precision(other)),
        }
    }

    fn linear_float_weights(&self, layer: &CudaLinear) -> Result<Option<(Vec<f32>, Option<Vec<f32>>)>> {
        match &layer.weight {
            Weight::F32(w) => {
                let weight = self.dev.download(w, 0, w.len())?;
                let bias = layer.bias.as_ref().map(|b| self.dev.download(b, 0, b.len())).transpose()?;
                Ok(Some((weight, bias)))
            }
            Weight::Bf16(_) => Ok(None),
        }
    }

    fn linear_footprint(&self, layer: &CudaLinear) -> LayerFootprint {
        LayerFootprint {
            out_dim: layer.out_dim,
            in_dim: layer.in_dim,
            params: layer.out_dim * layer.in_dim + layer.bias.as_ref().map_or(0, |_| layer.out_dim),
            bytes: layer.bytes(),
            quantized: false,
        }
    }

    fn tensor_bytes(&self, x: &CudaTensor) -> usize {
        4 * x.len()
    }

    fn linear(&self, x: &CudaTensor, layer: &CudaLinear) -> Result<CudaTensor> {
        if x.shape.last() != Some(&layer.in_dim) {
            return Err(self.linear_error("linear", x, layer));
        }
        let rows = x.len() / layer.in_dim;
        let y = layer.forward(&self.dev, self.ptr(x), rows)?;
        let mut shape = x.shape.clone();
        *shape.last_mut().expect("non-empty shape") = layer.out_dim;
        Ok(CudaTensor::new(y, shape))
    }

    fn rms_norm(&self, x: &CudaTensor, weight: &CudaTensor, eps: f32) -> Result<CudaTensor> {
        let d = *x.shape.last().ok_or_else(|| Error::Backend("cuda rms_norm: scalar input".into()))?;
        if weight.len() != d || d == 0 {
            return Err(Error::Backend(format!("cuda rms_norm: weight {:?} for input {:?}", weight.shape, x.shape)));
        }
        let out = self.alloc(&x.shape)?;
        let rows = u32::try_from(x.len() / d).map_err(|_| Error::Backend("cuda rms_norm: too many rows".into()))?;
        let cfg = LaunchConfig { grid_dim: (rows, 1, 1), block_dim: (256, 1, 1), shared_mem_bytes: 0 };
        let (xp, wp, yp, dd) = (self.ptr(x), self.ptr(weight), self.ptr(&out), d as u32);
        // SAFETY: `rms_norm_f32(const float* x, const float* w, float* y, u32 d, float eps)`, one
        // block per row of `d` floats; x and y hold `rows * d`, w holds `d`.
        unsafe { self.dev.launch(&self.dev.kernels.rms_norm, cfg, &[&xp, &wp, &yp, &dd, &eps])? };
        Ok(out)
    }

    fn relu(&self, x: &CudaTensor) -> Result<CudaTensor> {
        self.elementwise(&self.dev.kernels.relu, &[x])
    }

    fn add(&self, a: &CudaTensor, b: &CudaTensor) -> Result<CudaTensor> {
        self.elementwise(&self.dev.kernels.add, &[a, b])
    }

    fn mean_keepdim(&self, x: &CudaTensor, axis: usize) -> Result<CudaTensor> {
        if axis >= x.shape.len() {
            return Err(Error::Backend(format!("cuda mean_keepdim: axis {axis} of shape {:?}", x.shape)));
        }
        let outer: usize = x.shape[..axis].iter().product();
        let inner: usize = x.shape[axis + 1..].iter().product();
        let len = x.shape[axis];
        let mut shape = x.shape.clone();
        shape[axis] = 1;
        let out = self.alloc(&shape)?;
        let (xp, yp, o, l, i) = (self.ptr(x), self.ptr(&out), outer as u64, len as u32, inner as u64);
        // SAFETY: `mean_axis_f32(const float* x, float* y, u64 outer, u32 len, u64 inner)`; x
        // holds `outer * len * inner` floats, y `outer * inner`.
        unsafe { self.dev.launch(&self.dev.kernels.mean_axis, Device::grid(outer * inner)?, &[&xp, &yp, &o, &l, &i])? };
        Ok(out)
    }

    fn select(&self, keep: &CudaTensor, a: &CudaTensor, b: &CudaTensor) -> Result<CudaTensor> {
        let keep = if keep.shape == a.shape { keep.clone() } else { self.broadcast_to(keep, &a.shape)? };
        self.elementwise(&self.dev.kernels.select, &[&keep, a, b])
    }

    fn reshape(&self, x: &CudaTensor, shape: &[usize]) -> Result<CudaTensor> {
        if shape.iter().product::<usize>() != x.len() {
            return Err(Error::Backend(format!("cuda reshape: {:?} to {shape:?}", x.shape)));
        }
        Ok(CudaTensor { buf: x.buf.clone(), offset: x.offset, shape: shape.to_vec() })
    }

    fn permute(&self, x: &CudaTensor, axes: &[usize]) -> Result<CudaTensor> {
        let (plan, shape) = layout::permute(&x.shape, axes)?;
        if axes.iter().enumerate().all(|(i, &a)| i == a) {
            return Ok(x.clone());
        }
        self.copied(&plan, x, &shape)
    }

    fn narrow(&self, x: &CudaTensor, axis: usize, start: usize, len: usize) -> Result<CudaTensor> {
        let (plan, shape) = layout::narrow(&x.shape, axis, start, len)?;
        if x.shape[..axis].iter().all(|&d| d == 1) {
            // A contiguous range of the buffer: a view.
            let stride: usize = x.shape[axis + 1..].iter().product();
            return Ok(CudaTensor { buf: x.buf.clone(), offset: x.offset + start * stride, shape });
        }
        self.copied(&plan, x, &shape)
    }

    fn concat(&self, xs: &[CudaTensor], axis: usize) -> Result<CudaTensor> {
        let shapes: Vec<Vec<usize>> = xs.iter().map(|t| t.shape.clone()).collect();
        let (plans, shape) = layout::concat(&shapes, axis)?;
        if xs.len() == 1 {
            return Ok(xs[0].clone());
        }
        let out = self.alloc(&shape)?;
        for (plan, x) in plans.iter().zip(xs) {
            self.copy(plan, x, &out)?;
        }
        Ok(out)
    }

    fn take_rows(&self, x: &CudaTensor, indices: &[usize]) -> Result<CudaTensor> {
        let rows = x.shape.first().copied().unwrap_or(0);
        if let Some(&bad) = indices.iter().find(|&&i| i >= rows) {
            return Err(Error::Backend(format!("cuda take_rows: index {bad} out of range for {rows} rows")));
        }
        let idx: Vec<u32> = indices.iter().map(|&i| i as u32).collect();
        let idx = self.dev.upload(&idx)?;
        let mut shape = x.shape.clone();
        shape[0] = indices.len();
        let out = self.alloc(&shape)?;
        let row_len = x.shape[1..].iter().product::<usize>() as u64;
        let n = out.len();
        let (xp, ip, yp, count) = (self.ptr(x), self.dev.ptr(&idx, 0), self.ptr(&out), n as u64);
        // SAFETY: `take_rows_f32(const float* x, const u32* idx, float* y, u64 row_len, u64 n)`;
        // every index is below x's row count (checked), y holds `n = indices * row_len` floats.
        unsafe { self.dev.launch(&self.dev.kernels.take_rows, Device::grid(n)?, &[&xp, &ip, &yp, &row_len, &count])? };
        Ok(out)
    }

    fn broadcast_to(&self, x: &CudaTensor, shape: &[usize]) -> Result<CudaTensor> {
        let plan = layout::broadcast(&x.shape, shape)?;
        if x.shape == shape {
            return Ok(x.clone());
        }
        self.copied(&plan, x, shape)
    }

    fn rope(&self, x: &CudaTensor, cos: &CudaTensor, sin: &CudaTensor) -> Result<CudaTensor> {
        let s = &x.shape;
        let ok = s.len() == 4 && s[3].is_multiple_of(2) && cos.shape == [s[2], s[3] / 2] && sin.shape == cos.shape;
        if !ok {
            return Err(Error::Backend(format!(
                "cuda rope: x {:?} with cos {:?} / sin {:?} (want (seq, d/2))",
                s, cos.shape, sin.shape
            )));
        }
        let out = self.alloc(s)?;
        let n = out.len();
        let (xp, cp, sp, yp) = (self.ptr(x), self.ptr(cos), self.ptr(sin), self.ptr(&out));
        let (seq, d, count) = (s[2] as u32, s[3] as u32, n as u64);
        // SAFETY: `rope_f32(const float* x, const float* cos, const float* sin, float* y,
        // u32 seq, u32 d, u64 n)`; x and y hold n floats of (.., seq, d), the tables seq * d/2.
        unsafe { self.dev.launch(&self.dev.kernels.rope, Device::grid(n)?, &[&xp, &cp, &sp, &yp, &seq, &d, &count])? };
        Ok(out)
    }

    fn attention(&self, q: &CudaTensor, k: &CudaTensor, v: &CudaTensor, key_mask: &CudaTensor) -> Result<CudaTensor> {
        let s = &q.shape;
        let ok = s.len() == 4 && k.shape == *s && v.shape == *s && key_mask.shape == [s[0], 1, 1, s[2]];
        if !ok {
            return Err(Error::Backend(format!(
                "cuda attention: q {:?}, k {:?}, v {:?}, mask {:?} (want equal (n, heads, len, d) and (n, 1, 1, len))",
                s, k.shape, v.shape, key_mask.shape
            )));
        }
        let (n, heads, len, d) = (s[0], s[1], s[2], s[3]);
        let f =
            self.dev.kernels.attention_for(d).ok_or_else(|| {
                Error::Backend(format!("cuda attention: head size {d} above the largest kernel's (128)"))
            })?;
        let out = self.alloc(s)?;
        if out.is_empty() {
            return Ok(out);
        }
        let threads: u32 = if len > 32 { 64 } else { 32 };
        let blocks = u32::try_from(n * heads).map_err(|_| Error::Backend("cuda attention: batch too large".into()))?;
        let cfg = LaunchConfig {
            grid_dim: (blocks, (len as u32).div_ceil(threads), 1),
            block_dim: (threads, 1, 1),
            shared_mem_bytes: 0,
        };
        let (qp, kp, vp, mp, op) = (self.ptr(q), self.ptr(k), self.ptr(v), self.ptr(key_mask), self.ptr(&out));
        let (h, l, dd) = (heads as u32, len as u32, d as u32);
        // SAFETY: `attention_f32_dN(const float* q, k, v, mask, float* out, u32 heads, u32 len,
        // u32 d)` with N >= d; q, k, v, out hold n * heads * len * d floats, mask n * len; the
        // grid covers (n * heads, ceil(len / threads)).
        unsafe { self.dev.launch(f, cfg, &[&qp, &kp, &vp, &mp, &op, &h, &l, &dd])? };
        Ok(out)
    }
}
