//! The frozen base of a QLoRA linear, held quantized (MLX's affine int8 / int4 codes, group 64)
//! while training: each forward and each backward dequantizes the weight into a temporary
//! buffer, multiplies, and drops it. The gradient with respect to the input flows
//! (`dL/dx = dL/dy W`, with `W` dequantized again); the weight itself gets none.

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp1, Device, Layout, Shape, Tensor};
use chronos2_core::quant::{dequantize, QuantizedWeight};

/// `x W^T` for `x (rows, in)` with `W (out, in)` dequantized per call.
pub struct QuantizedMatmul {
    pub weight: Arc<QuantizedWeight>,
}

impl QuantizedMatmul {
    fn dense(&self, device: &Device) -> candle_core::Result<Tensor> {
        let w = &self.weight;
        Tensor::from_vec(dequantize(w), (w.out_dim, w.in_dim), device)
    }
}

impl CustomOp1 for QuantizedMatmul {
    fn name(&self) -> &'static str {
        "qlora-quantized-matmul"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(values) = storage else {
            candle_core::bail!("{}: the input must be f32", self.name());
        };
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("{}: the input must be contiguous", self.name());
        };
        let (rows, in_dim) = layout.shape().dims2()?;
        if in_dim != self.weight.in_dim {
            candle_core::bail!("{}: input width {in_dim}, the weight takes {}", self.name(), self.weight.in_dim);
        }
        let x = Tensor::from_slice(&values[start..end], (rows, in_dim), &Device::Cpu)?;
        let y = x.matmul(&self.dense(&Device::Cpu)?.t()?)?;
        Ok((CpuStorage::F32(y.flatten_all()?.to_vec1()?), Shape::from((rows, self.weight.out_dim))))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(grad_res.matmul(&self.dense(grad_res.device())?)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Var;
    use chronos2_core::quant::quantize;

    /// Forward and input gradient equal those of a plain matmul on the dequantized weight.
    #[test]
    fn matches_the_dequantized_matmul_and_its_input_gradient() {
        let (rows, in_dim, out_dim) = (3, 128, 5);
        let w: Vec<f32> = (0..out_dim * in_dim).map(|i| ((i * 37 % 101) as f32 - 50.0) / 40.0).collect();
        let q = Arc::new(quantize(&w, out_dim, in_dim, 4, 64).unwrap());
        let dense = Tensor::from_vec(dequantize(&q), (out_dim, in_dim), &Device::Cpu).unwrap();
        let x0: Vec<f32> = (0..rows * in_dim).map(|i| ((i * 13 % 29) as f32 - 14.0) / 7.0).collect();
        let x = Var::from_tensor(&Tensor::from_vec(x0, (rows, in_dim), &Device::Cpu).unwrap()).unwrap();
        let weights =
            Tensor::arange(0f32, (rows * out_dim) as f32, &Device::Cpu).unwrap().reshape((rows, out_dim)).unwrap();

        let y = x.as_tensor().apply_op1(QuantizedMatmul { weight: q }).unwrap();
        let y_ref = x.as_tensor().matmul(&dense.t().unwrap()).unwrap();
        let diff = (&y - &y_ref).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(diff < 1e-4, "forward differs by {diff}");

        let grad = |y: &Tensor| {
            let loss = (y * &weights).unwrap().sum_all().unwrap();
            loss.backward().unwrap().get(x.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap()
        };
        let (g, g_ref) = (grad(&y), grad(&y_ref));
        let diff = g.iter().zip(&g_ref).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(diff < 1e-3 && g_ref.iter().any(|v| v.abs() > 1.0), "input gradient differs by {diff}");
    }
}
