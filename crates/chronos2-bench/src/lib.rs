//! Synthetic Chronos-2 models and inputs for benchmarks and size tests.
//!
//! Speed does not depend on the weights' values, so benchmarks use a randomly initialised model
//! of the real size (d_model 768, 12 layers, 12 heads, d_ff 3072), generated from a fixed seed
//! into a temporary directory — never committed.

pub mod columns;
pub mod matrix;

use std::path::Path;

use chronos2_core::ModelConfig;

/// `config.json` of a model with the real Chronos-2 sizes and forecasting settings.
pub fn full_size_config_json() -> String {
    config_json(768, 64, 3072, 12, 12, 8192)
}

/// A `config.json` in the Hugging Face layout with the real `chronos_config`.
pub fn config_json(
    d_model: usize,
    d_kv: usize,
    d_ff: usize,
    num_layers: usize,
    num_heads: usize,
    context_length: usize,
) -> String {
    let quantiles = [
        0.01, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95,
        0.99,
    ];
    serde_json::json!({
        "architectures": ["Chronos2Model"],
        "model_type": "t5",
        "d_model": d_model, "d_kv": d_kv, "d_ff": d_ff, "num_layers": num_layers, "num_heads": num_heads,
        "dense_act_fn": "relu", "feed_forward_proj": "relu", "is_gated_act": false,
        "layer_norm_epsilon": 1e-6, "rope_theta": 10000.0, "vocab_size": 2, "reg_token_id": 1, "pad_token_id": 0,
        "chronos_config": {
            "context_length": context_length, "input_patch_size": 16, "input_patch_stride": 16,
            "output_patch_size": 16, "max_output_patches": 64, "quantiles": quantiles,
            "time_encoding_scale": 8192, "use_arcsinh": true, "use_reg_token": true
        }
    })
    .to_string()
}

/// Deterministic pseudo-random numbers (SplitMix64 + Box-Muller): no dependency, same on
/// every platform.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1).
    pub fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    pub fn normal(&mut self) -> f32 {
        let (u, v) = (self.uniform(), self.uniform());
        ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
    }
}

/// Every parameter of a Chronos-2 checkpoint: `(HF key, shape, init std)`.
pub fn parameter_shapes(config: &ModelConfig) -> Vec<(String, Vec<usize>, f32)> {
    let (d, ff, inner) = (config.d_model, config.d_ff, config.inner_dim());
    let patch = config.patch_size();
    let out = config.quantiles().len() * patch;
    let std = |fan_in: usize| (fan_in as f32).powf(-0.5);
    let mut params = vec![("shared.weight".to_string(), vec![2, d], 1.0)];
    for (prefix, i, h, o) in [("input_patch_embedding", 3 * patch, ff, d), ("output_patch_embedding", d, ff, out)] {
        for (name, rows, cols) in [("hidden_layer", h, i), ("output_layer", o, h), ("residual_layer", o, i)] {
            params.push((format!("{prefix}.{name}.weight"), vec![rows, cols], std(cols)));
            params.push((format!("{prefix}.{name}.bias"), vec![rows], 0.0));
        }
    }
    for b in 0..config.num_layers {
        for layer in 0..2 {
            let prefix = format!("encoder.block.{b}.layer.{layer}");
            params.push((format!("{prefix}.layer_norm.weight"), vec![d], -1.0));
            for proj in ["q", "k", "v"] {
                params.push((format!("{prefix}.self_attention.{proj}.weight"), vec![inner, d], std(d)));
            }
            params.push((format!("{prefix}.self_attention.o.weight"), vec![d, inner], std(inner)));
        }
        let prefix = format!("encoder.block.{b}.layer.2");
        params.push((format!("{prefix}.layer_norm.weight"), vec![d], -1.0));
        params.push((format!("{prefix}.mlp.wi.weight"), vec![ff, d], std(d)));
        params.push((format!("{prefix}.mlp.wo.weight"), vec![d, ff], std(ff)));
    }
    params.push(("encoder.final_layer_norm.weight".to_string(), vec![d], -1.0));
    params
}

/// Writes `config.json` and a random `model.safetensors` for `config_json` into `dir`.
/// Norm weights (std -1 in [`parameter_shapes`]) are 1; biases 0; the rest normal(0, std).
pub fn write_random_model(dir: &Path, config_json: &str, seed: u64) -> std::io::Result<()> {
    let config = ModelConfig::from_json(config_json).map_err(std::io::Error::other)?;
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("config.json"), config_json)?;
    let mut rng = Rng::new(seed);
    let params: Vec<(String, Vec<usize>, Vec<u8>)> = parameter_shapes(&config)
        .into_iter()
        .map(|(name, shape, std)| {
            let n: usize = shape.iter().product();
            let bytes = (0..n)
                .flat_map(|_| {
                    let v = if std < 0.0 { 1.0 } else { rng.normal() * std };
                    v.to_le_bytes()
                })
                .collect();
            (name, shape, bytes)
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = params
        .iter()
        .map(|(name, shape, bytes)| {
            let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes)
                .expect("consistent view");
            (name.clone(), view)
        })
        .collect();
    safetensors::serialize_to_file(views, &None, &dir.join("model.safetensors")).map_err(std::io::Error::other)
}

/// `rows` random-walk series of `len` steps, row-major.
pub fn random_context(rows: usize, len: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(rows * len);
    for _ in 0..rows {
        let mut level = 100.0f32;
        for _ in 0..len {
            level += rng.normal();
            out.push(level);
        }
    }
    out
}
