//! Simulated quantization: the model with every quantizable linear weight replaced by its
//! quantize → dequantize round trip (`chronos2_core::quant`, MLX's affine scheme), run by the
//! ordinary fp32 CPU model. Its forecasts are what the quantized kernels compute up to float
//! summation order: the tests check the library's quantized model (`Forecaster::quantize`)
//! against it.

use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use chronos2_core::quant::{dequantize, footprint_bytes, qualifies, quantize};

/// One tensor of a safetensors file (f32 only: the bundled model's dtype).
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// Reads every tensor of an f32 safetensors file, in file order.
pub fn read_safetensors(path: &Path) -> Result<Vec<Tensor>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    ensure!(bytes.len() >= 8, "{}: too short", path.display());
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    ensure!(8 + header_len <= bytes.len(), "{}: bad header length", path.display());
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&bytes[8..8 + header_len]).context("safetensors header")?;
    let data = &bytes[8 + header_len..];
    let mut out = Vec::new();
    for (name, info) in header {
        if name == "__metadata__" {
            continue;
        }
        let dtype = info["dtype"].as_str().unwrap_or("");
        ensure!(dtype == "F32", "{name}: dtype {dtype}, only F32 is supported");
        let shape: Vec<usize> = info["shape"]
            .as_array()
            .context("shape")?
            .iter()
            .map(|d| d.as_u64().map(|d| d as usize).context("shape"))
            .collect::<Result<_>>()?;
        let offsets = info["data_offsets"].as_array().context("data_offsets")?;
        let (start, end) =
            (offsets[0].as_u64().context("offset")? as usize, offsets[1].as_u64().context("offset")? as usize);
        ensure!(start <= end && end <= data.len(), "{name}: offsets out of range");
        ensure!(end - start == 4 * shape.iter().product::<usize>(), "{name}: size does not match shape");
        let values = data[start..end].chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
        out.push((start, Tensor { name, shape, data: values }));
    }
    out.sort_by_key(|(start, _)| *start);
    Ok(out.into_iter().map(|(_, t)| t).collect())
}

/// Writes f32 tensors as a safetensors file.
pub fn write_safetensors(path: &Path, tensors: &[Tensor]) -> Result<()> {
    let mut header = serde_json::Map::new();
    let mut offset = 0usize;
    for t in tensors {
        let size = 4 * t.data.len();
        header.insert(
            t.name.clone(),
            serde_json::json!({"dtype": "F32", "shape": t.shape, "data_offsets": [offset, offset + size]}),
        );
        offset += size;
    }
    let mut json = serde_json::to_vec(&header)?;
    while !json.len().is_multiple_of(8) {
        json.push(b' ');
    }
    let mut bytes = Vec::with_capacity(8 + json.len() + offset);
    bytes.extend_from_slice(&(json.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&json);
    for t in tensors {
        for v in &t.data {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
    }
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

/// Whether a tensor is a linear weight that the quantized modes store quantized: a 2-D
/// `*.weight` whose input dimension is a whole number of groups, except the REG/PAD token
/// embedding `shared.weight` (a lookup table, not a matmul).
pub fn is_quantized(t: &Tensor, group_size: usize) -> bool {
    t.name.ends_with(".weight") && t.name != "shared.weight" && t.shape.len() == 2 && qualifies(t.shape[1], group_size)
}

/// Bytes of the weights of a model stored with `bits`-bit quantized linear weights (codes plus
/// f32 scales and biases, `chronos2_core::quant::footprint_bytes`) and every other tensor in f32.
pub fn footprint(tensors: &[Tensor], bits: u32, group_size: usize) -> u64 {
    tensors
        .iter()
        .map(|t| {
            if is_quantized(t, group_size) {
                footprint_bytes(t.shape[0], t.shape[1], bits, group_size) as u64
            } else {
                4 * t.data.len() as u64
            }
        })
        .sum()
}

/// The quantize → dequantize round trip of every quantized tensor.
pub fn round_trip(tensors: &[Tensor], bits: u32, group_size: usize) -> Result<Vec<Tensor>> {
    tensors
        .iter()
        .map(|t| {
            if !is_quantized(t, group_size) {
                return Ok(t.clone());
            }
            let q = quantize(&t.data, t.shape[0], t.shape[1], bits, group_size)
                .with_context(|| format!("quantizing {}", t.name))?;
            Ok(Tensor { data: dequantize(&q), ..t.clone() })
        })
        .collect()
}

/// A temporary model directory holding the round-tripped weights; removed on drop.
pub struct SimulatedModel {
    pub dir: PathBuf,
    /// Weight bytes the quantized model holds ([`footprint`]).
    pub footprint: u64,
}

impl SimulatedModel {
    pub fn create(model_dir: &Path, bits: u32, group_size: usize) -> Result<Self> {
        let tensors = read_safetensors(&model_dir.join("model.safetensors"))?;
        if !tensors.iter().any(|t| is_quantized(t, group_size)) {
            bail!("no linear weight of {} has an input dimension divisible by {group_size}", model_dir.display());
        }
        let dir = std::env::temp_dir().join(format!("chronos2-accuracy-int{bits}-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let model = SimulatedModel { dir, footprint: footprint(&tensors, bits, group_size) };
        std::fs::copy(model_dir.join("config.json"), model.dir.join("config.json")).context("config.json")?;
        write_safetensors(&model.dir.join("model.safetensors"), &round_trip(&tensors, bits, group_size)?)?;
        Ok(model)
    }
}

impl Drop for SimulatedModel {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(name: &str, shape: &[usize]) -> Tensor {
        let n = shape.iter().product::<usize>();
        Tensor { name: name.into(), shape: shape.to_vec(), data: (0..n).map(|i| (i as f32 * 0.37).sin()).collect() }
    }

    #[test]
    fn safetensors_round_trip() {
        let tensors = vec![tensor("b.weight", &[2, 3]), tensor("a.bias", &[5]), tensor("c", &[1, 1, 2])];
        let path = std::env::temp_dir().join(format!("xtask-accuracy-test-{}.safetensors", std::process::id()));
        write_safetensors(&path, &tensors).unwrap();
        let back = read_safetensors(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(back, tensors);
    }

    #[test]
    fn selects_linear_weights_with_whole_groups() {
        assert!(is_quantized(&tensor("encoder.block.0.layer.1.mlp.wi.weight", &[1024, 256]), 64));
        assert!(!is_quantized(&tensor("input_patch_embedding.hidden_layer.weight", &[1024, 48]), 64));
        assert!(!is_quantized(&tensor("shared.weight", &[2, 256]), 64));
        assert!(!is_quantized(&tensor("encoder.final_layer_norm.weight", &[256]), 64));
        assert!(!is_quantized(&tensor("x.bias", &[64, 64]), 64));
    }

    #[test]
    fn footprint_and_round_trip() {
        let tensors = vec![tensor("l.weight", &[4, 128]), tensor("l.bias", &[4]), tensor("e.weight", &[4, 48])];
        // int4: 4·128/2 code bytes + 4·2 groups · 8 bytes; the rest 4 + 192 floats.
        assert_eq!(footprint(&tensors, 4, 64), (256 + 64 + 4 * (4 + 192)) as u64);
        assert_eq!(footprint(&tensors, 8, 64), (512 + 64 + 4 * (4 + 192)) as u64);
        let rt = round_trip(&tensors, 4, 64).unwrap();
        assert_eq!(rt[1], tensors[1]);
        assert_eq!(rt[2], tensors[2]);
        assert_ne!(rt[0].data, tensors[0].data);
        // int4 on values in [-1, 1]: steps of about 2 / 15. MLX snaps the scale so that 0 is exact,
        // which can clamp the far end of a group by up to a step.
        let err = rt[0].data.iter().zip(&tensors[0].data).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(err <= 2.0 / 15.0 + 1e-6, "{err}");
    }
}
