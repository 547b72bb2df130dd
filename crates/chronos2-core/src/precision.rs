//! The numeric mode of a loaded model's linear layers: what a route runs and what a profile
//! records per measurement.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How the linear layers of a model compute. Norms, softmax, the residual stream and instance
/// normalisation are fp32 in every mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// fp32 weights and activations (the reference's numbers).
    #[default]
    Fp32,
    /// bf16 weights, fp32 accumulation.
    Bf16,
    /// Weight-only int8, MLX affine group-64 scheme; fp32 activations.
    Int8,
    /// Weight-only int4, MLX affine group-64 scheme; fp32 activations.
    Int4,
    /// int8 weights (MLX group-64 format) and int8 activations quantized per token and group of 64.
    W8a8,
}

impl Precision {
    pub const ALL: [Precision; 5] =
        [Precision::Fp32, Precision::Bf16, Precision::Int8, Precision::Int4, Precision::W8a8];

    /// The name used on the command line and in profiles.
    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
            Precision::Int8 => "int8",
            Precision::Int4 => "int4",
            Precision::W8a8 => "w8a8",
        }
    }

    /// Bits of the quantized weights, for the quantized modes.
    pub fn weight_bits(self) -> Option<u32> {
        match self {
            Precision::Int8 | Precision::W8a8 => Some(8),
            Precision::Int4 => Some(4),
            Precision::Fp32 | Precision::Bf16 => None,
        }
    }
}

impl Precision {
    /// The weight-only quantized mode of `bits` (8: [`Precision::Int8`], 4: [`Precision::Int4`]).
    pub fn weight_only(bits: u32) -> Option<Precision> {
        match bits {
            8 => Some(Precision::Int8),
            4 => Some(Precision::Int4),
            _ => None,
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Precision {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let wanted = s.trim().to_ascii_lowercase();
        Precision::ALL
            .into_iter()
            .find(|p| p.name() == wanted)
            .ok_or_else(|| format!("unknown precision '{s}' (expected one of: fp32, bf16, int8, int4, w8a8)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_parse_and_serde() {
        for p in Precision::ALL {
            assert_eq!(p.name().parse::<Precision>().unwrap(), p);
            assert_eq!(serde_json::to_string(&p).unwrap(), format!("\"{}\"", p.name()));
        }
        assert!("fp16".parse::<Precision>().unwrap_err().contains("unknown precision 'fp16'"));
    }
}
