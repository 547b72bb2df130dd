//! The small tensor-operations trait that every compute backend implements.
//!
//! The Chronos-2 graph ([`crate::model`]) is written once against [`Ops`]; a backend (candle CPU,
//! MLX) implements these operations on its own arrays. Arrays may be lazy (MLX): nothing here asks
//! a backend to materialise an array except [`Ops::to_vec`], which the graph calls once per
//! forward, on its output.
//!
//! Shapes are row-major. All inputs built by the core are `f32`; a backend may compute in another
//! dtype internally but returns `f32` from [`Ops::to_vec`].

use crate::error::{Error, Result};
use crate::precision::Precision;
use crate::quant::QuantizedWeight;
use crate::train::DropoutSite;

/// Size of one linear layer as held by a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerFootprint {
    pub out_dim: usize,
    pub in_dim: usize,
    /// Weight and bias parameters.
    pub params: usize,
    /// Bytes of the layer's buffers (codes, scales, biases or float weights, bias).
    pub bytes: usize,
    pub quantized: bool,
}

/// Tensor operations used by the Chronos-2 graph.
pub trait Ops: Clone + Send + Sync + 'static {
    /// A device array (owned handle; cloning is cheap).
    type Tensor: Clone + Send + Sync;
    /// A linear layer `y = x W^T (+ b)` in the backend's own weight format (float or quantized).
    type Linear: Send + Sync;

    /// Short backend name, e.g. `"cpu"` or `"mlx"`.
    fn name(&self) -> &'static str;

    /// Uploads host data of the given shape.
    fn tensor(&self, data: &[f32], shape: &[usize]) -> Result<Self::Tensor>;
    /// Downloads an array to the host (evaluating it if the backend is lazy).
    fn to_vec(&self, x: &Self::Tensor) -> Result<Vec<f32>>;
    /// The array's shape.
    fn shape(&self, x: &Self::Tensor) -> Vec<usize>;

    /// Builds a linear layer from a host weight of shape `(out_dim, in_dim)` (PyTorch layout)
    /// and an optional bias of length `out_dim`.
    fn linear_from_host(
        &self,
        weight: &[f32],
        out_dim: usize,
        in_dim: usize,
        bias: Option<&[f32]>,
    ) -> Result<Self::Linear>;
    /// The model parameter `name` (its Hugging Face key) of the given shape. The graph builds
    /// every norm weight and the [REG] embedding (the `reg_token_id` row of `shared.weight`)
    /// through it; a backend that tracks parameters by name (training) overrides it.
    fn parameter(&self, _name: &str, data: &[f32], shape: &[usize]) -> Result<Self::Tensor> {
        self.tensor(data, shape)
    }
    /// The linear layer `name` (weight `{name}.weight`, bias `{name}.bias`); the graph builds every
    /// linear through it. A backend that tracks parameters by name (training, LoRA) overrides it.
    fn linear_parameter(
        &self,
        _name: &str,
        weight: &[f32],
        out_dim: usize,
        in_dim: usize,
        bias: Option<&[f32]>,
    ) -> Result<Self::Linear> {
        self.linear_from_host(weight, out_dim, in_dim, bias)
    }
    /// Builds a linear layer from a weight quantized by [`crate::quant::quantize`] (MLX's affine
    /// scheme) and an optional float bias.
    fn linear_from_quantized(&self, weight: &QuantizedWeight, bias: Option<&[f32]>) -> Result<Self::Linear>;
    /// Whether this backend runs the linear layers in `precision`. fp32, int8 and int4 (weight-only,
    /// [`Ops::linear_from_quantized`]) run everywhere; bf16 and w8a8 only where a backend
    /// implements [`Ops::linear_in_precision`].
    fn supports_precision(&self, precision: Precision) -> bool {
        matches!(precision, Precision::Fp32 | Precision::Int8 | Precision::Int4)
    }
    /// Builds a layer in `precision` (bf16 or w8a8, where [`Ops::supports_precision`]) from a host
    /// weight `(out_dim, in_dim)` and an optional bias.
    fn linear_in_precision(
        &self,
        weight: &[f32],
        out_dim: usize,
        in_dim: usize,
        bias: Option<&[f32]>,
        precision: Precision,
    ) -> Result<Self::Linear> {
        let _ = (weight, out_dim, in_dim, bias);
        Err(self.unsupported_precision(precision))
    }
    /// The error for a `precision` this backend does not run, naming the ones it does.
    fn unsupported_precision(&self, precision: Precision) -> Error {
        let supported: Vec<&str> =
            Precision::ALL.iter().filter(|p| self.supports_precision(**p)).map(|p| p.name()).collect();
        Error::UnsupportedPrecision { backend: self.name().to_string(), precision, supported: supported.join(", ") }
    }
    /// The float `(out_dim, in_dim)` weight and bias of a layer, or `None` if it is quantized.
    #[allow(clippy::type_complexity)]
    fn linear_float_weights(&self, layer: &Self::Linear) -> Result<Option<(Vec<f32>, Option<Vec<f32>>)>>;
    /// Parameters and bytes held by a layer, measured from its buffers.
    fn linear_footprint(&self, layer: &Self::Linear) -> LayerFootprint;
    /// Bytes held by an array.
    fn tensor_bytes(&self, x: &Self::Tensor) -> usize;
    /// Applies a linear layer over the last axis.
    fn linear(&self, x: &Self::Tensor, layer: &Self::Linear) -> Result<Self::Tensor>;

    /// T5 RMS norm over the last axis: `x * rsqrt(mean(x^2) + eps) * weight`.
    fn rms_norm(&self, x: &Self::Tensor, weight: &Self::Tensor, eps: f32) -> Result<Self::Tensor>;
    /// `max(x, 0)`.
    fn relu(&self, x: &Self::Tensor) -> Result<Self::Tensor>;
    /// Element-wise sum of two arrays of the same shape.
    fn add(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor>;
    /// Mean over `axis`, keeping it with length 1.
    fn mean_keepdim(&self, x: &Self::Tensor, axis: usize) -> Result<Self::Tensor>;
    /// `keep > 0.5 ? a : b`; `keep` broadcasts against `a` and `b` (which have the same shape).
    fn select(&self, keep: &Self::Tensor, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor>;

    fn reshape(&self, x: &Self::Tensor, shape: &[usize]) -> Result<Self::Tensor>;
    fn permute(&self, x: &Self::Tensor, axes: &[usize]) -> Result<Self::Tensor>;
    fn narrow(&self, x: &Self::Tensor, axis: usize, start: usize, len: usize) -> Result<Self::Tensor>;
    fn concat(&self, xs: &[Self::Tensor], axis: usize) -> Result<Self::Tensor>;
    /// Rows `indices` of `x` along axis 0, in that order (a gather).
    fn take_rows(&self, x: &Self::Tensor, indices: &[usize]) -> Result<Self::Tensor>;
    fn broadcast_to(&self, x: &Self::Tensor, shape: &[usize]) -> Result<Self::Tensor>;

    /// Rotary embedding, rotate-half (Llama/NeoX) form, on `x` of shape `(n, heads, seq, d)`.
    /// `cos` and `sin` have shape `(seq, d / 2)`; row `p` holds `cos(p * inv_freq)`.
    fn rope(&self, x: &Self::Tensor, cos: &Self::Tensor, sin: &Self::Tensor) -> Result<Self::Tensor>;

    /// Whether this forward drops out (a training step of a training backend). The graph calls
    /// [`Ops::dropout`] and [`Ops::attention_with_dropout`] only then; inference never does.
    fn dropout_active(&self) -> bool {
        false
    }
    /// Inverted dropout of `x` at `site`: each element kept with probability `1 - rate` and scaled
    /// by `1 / (1 - rate)`, or zeroed. Only called while [`Ops::dropout_active`].
    fn dropout(&self, _x: &Self::Tensor, _rate: f32, site: DropoutSite) -> Result<Self::Tensor> {
        Err(Error::Backend(format!("backend `{}` has no training dropout (at {site:?})", self.name())))
    }
    /// [`Ops::attention`] whose softmax weights go through [`Ops::dropout`] at `site` before they
    /// multiply `v` (the reference's eager attention in training). Only called while
    /// [`Ops::dropout_active`].
    fn attention_with_dropout(
        &self,
        _q: &Self::Tensor,
        _k: &Self::Tensor,
        _v: &Self::Tensor,
        _key_mask: &Self::Tensor,
        _rate: f32,
        site: DropoutSite,
    ) -> Result<Self::Tensor> {
        Err(Error::Backend(format!("backend `{}` has no training dropout (at {site:?})", self.name())))
    }

    /// Attention without scaling (`softmax(q k^T + mask) v`, scale 1.0) on `(n, heads, len, d)`
    /// arrays, with an additive key mask of shape `(n, 1, 1, len)` holding 0 or `f32::MIN`
    /// (finite: a row whose keys are all masked gets a uniform softmax, as in the reference).
    fn attention(
        &self,
        q: &Self::Tensor,
        k: &Self::Tensor,
        v: &Self::Tensor,
        key_mask: &Self::Tensor,
    ) -> Result<Self::Tensor>;
}
