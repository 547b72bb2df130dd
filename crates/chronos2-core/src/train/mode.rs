//! Fine-tuning modes and the LoRA configuration (peft's `LoraConfig` as `fit` uses it).

use crate::error::{Error, Result};

use super::rng::Rng;

/// The bits of a QLoRA base named `int8` / `8` or `int4` / `4` (the CLI's `--quantize`, the
/// Python `fit`'s `quantize`); `None` for any other name.
pub fn qlora_bits(name: &str) -> Option<u32> {
    match name {
        "int8" | "8" => Some(8),
        "int4" | "4" => Some(4),
        _ => None,
    }
}

/// What is trained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinetuneMode {
    /// Every parameter.
    Full,
    /// LoRA adapters only, on a float base.
    Lora,
    /// LoRA adapters only (fp32), on a base quantized to `bits` (8 or 4) in groups of 64.
    Qlora { bits: u32 },
    /// Only `output_patch_embedding`.
    Head,
}

impl FinetuneMode {
    /// Parses `full|lora|qlora|head`; `qlora` takes `quantize_bits` (default 8).
    pub fn parse(mode: &str, quantize_bits: Option<u32>) -> Result<Self> {
        let mode = match mode {
            "full" => FinetuneMode::Full,
            "lora" => FinetuneMode::Lora,
            "qlora" => FinetuneMode::Qlora { bits: quantize_bits.unwrap_or(8) },
            "head" => FinetuneMode::Head,
            other => {
                return Err(Error::InvalidInput(format!(
                    "unknown fine-tuning mode `{other}` (full, lora, qlora, head)"
                )))
            }
        };
        if quantize_bits.is_some() && !matches!(mode, FinetuneMode::Qlora { .. }) {
            return Err(Error::InvalidInput("--quantize applies to --mode qlora only".into()));
        }
        if let FinetuneMode::Qlora { bits } = mode {
            if bits != 8 && bits != 4 {
                return Err(Error::InvalidInput(format!("qlora quantizes to 8 or 4 bits, got {bits}")));
            }
        }
        Ok(mode)
    }

    pub fn uses_lora(self) -> bool {
        matches!(self, FinetuneMode::Lora | FinetuneMode::Qlora { .. })
    }

    /// Whether the base parameter `name` (a Hugging Face key) is trained.
    pub fn trains_base(self, name: &str) -> bool {
        match self {
            FinetuneMode::Full => true,
            FinetuneMode::Head => name.starts_with("output_patch_embedding."),
            FinetuneMode::Lora | FinetuneMode::Qlora { .. } => false,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            FinetuneMode::Full => "full",
            FinetuneMode::Lora => "lora",
            FinetuneMode::Qlora { .. } => "qlora",
            FinetuneMode::Head => "head",
        }
    }
}

/// Quantization group size of QLoRA bases (int8 / int4, MLX's affine scheme).
pub const QLORA_GROUP_SIZE: usize = 64;

/// What a training model trains: the mode, the LoRA configuration, and the seed of the LoRA `A`
/// initialisation. Every backend's training model takes it.
#[derive(Debug, Clone)]
pub struct TrainSpec {
    pub mode: FinetuneMode,
    pub lora: LoraConfig,
    pub seed: u64,
}

/// The PEFT key of a LoRA matrix: `base_model.model.{module}.lora_{A|B}.weight`.
pub fn lora_key(module: &str, which: &str) -> String {
    format!("base_model.model.{module}.lora_{which}.weight")
}

/// The default LoRA targets of `fit`: q, k, v, o of the time and group attention of every block,
/// and the output layer of the output head.
pub const DEFAULT_LORA_TARGETS: [&str; 5] = [
    "self_attention.q",
    "self_attention.v",
    "self_attention.k",
    "self_attention.o",
    "output_patch_embedding.output_layer",
];

/// peft `LoraConfig(r, lora_alpha, target_modules)` with dropout 0 and `bias="none"`.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraConfig {
    pub rank: usize,
    pub alpha: f32,
    pub targets: Vec<String>,
}

impl Default for LoraConfig {
    fn default() -> Self {
        LoraConfig { rank: 8, alpha: 16.0, targets: DEFAULT_LORA_TARGETS.iter().map(|t| t.to_string()).collect() }
    }
}

impl LoraConfig {
    /// `alpha / rank`, peft's scaling.
    pub fn scaling(&self) -> f32 {
        self.alpha / self.rank as f32
    }

    /// peft's initial `A` `(rank, in_dim)`, row-major: Kaiming-uniform (a = sqrt(5)), i.e.
    /// `U(-1/sqrt(in), 1/sqrt(in))`, drawn from `rng`. (`B` starts at zero.)
    pub fn initial_a(&self, in_dim: usize, rng: &mut Rng) -> Vec<f32> {
        let bound = 1.0 / (in_dim as f32).sqrt();
        (0..self.rank * in_dim).map(|_| rng.uniform(bound)).collect()
    }

    /// Whether the linear layer `module` (e.g. `encoder.block.0.layer.1.self_attention.q`) gets an
    /// adapter: peft's suffix match (`module == target` or `module` ends with `.target`).
    pub fn targets_module(&self, module: &str) -> bool {
        self.targets.iter().any(|t| module == t || module.ends_with(&format!(".{t}")))
    }

    /// Fails unless the rank is positive and every target matches one of `modules`.
    pub fn validate(&self, modules: &[String]) -> Result<()> {
        if self.rank == 0 {
            return Err(Error::InvalidInput("LoRA rank must be at least 1".into()));
        }
        if !(self.alpha.is_finite() && self.alpha > 0.0) {
            return Err(Error::InvalidInput(format!("LoRA alpha must be positive, got {}", self.alpha)));
        }
        for target in &self.targets {
            let one = LoraConfig { targets: vec![target.clone()], ..self.clone() };
            if !modules.iter().any(|m| one.targets_module(m)) {
                return Err(Error::InvalidInput(format!(
                    "unknown LoRA target `{target}`: it matches no linear layer of the model \
                     (e.g. self_attention.q, self_attention.k, self_attention.v, self_attention.o, mlp.wi, mlp.wo, \
                     output_patch_embedding.output_layer, input_patch_embedding.hidden_layer)"
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_targets_match_time_and_group_attention_and_head() {
        let c = LoraConfig::default();
        assert!(c.targets_module("encoder.block.3.layer.0.self_attention.q"));
        assert!(c.targets_module("encoder.block.3.layer.1.self_attention.o"));
        assert!(c.targets_module("output_patch_embedding.output_layer"));
        assert!(!c.targets_module("encoder.block.3.layer.2.mlp.wi"));
        assert!(!c.targets_module("output_patch_embedding.residual_layer"));
        assert!(!c.targets_module("encoder.block.3.layer.0.self_attention.qq"));
    }

    #[test]
    fn unknown_target_is_an_error() {
        let modules = vec!["encoder.block.0.layer.0.self_attention.q".to_string()];
        let c = LoraConfig { targets: vec!["self_attention.z".into()], ..Default::default() };
        let err = c.validate(&modules).unwrap_err().to_string();
        assert!(err.contains("unknown LoRA target `self_attention.z`"), "{err}");
    }

    #[test]
    fn modes_parse() {
        assert_eq!(FinetuneMode::parse("qlora", Some(4)).unwrap(), FinetuneMode::Qlora { bits: 4 });
        assert!(FinetuneMode::parse("lora", Some(4)).is_err());
        assert!(FinetuneMode::parse("qlora", Some(3)).is_err());
        assert!(FinetuneMode::parse("partial", None).is_err());
        assert!(FinetuneMode::Head.trains_base("output_patch_embedding.hidden_layer.weight"));
        assert!(!FinetuneMode::Head.trains_base("encoder.final_layer_norm.weight"));
    }
}
