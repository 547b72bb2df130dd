//! The precision a model is loaded in, from the names it is asked for by: `quantize` and `dtype`
//! of the CLI (`--quantize`, `--dtype`) and of the Python package (`quantize=`, `dtype=` /
//! `torch_dtype=`). The one mapping of both, and the one rule that combines them.

use chronos2_core::Precision;

use crate::data::Caller;
use crate::error::{Error, Result};

/// `quantize` values: the name, its aliases, the precision.
pub const QUANTIZE_NAMES: [(&str, &[&str], Precision); 3] =
    [("int8", &["8"], Precision::Int8), ("int4", &["4"], Precision::Int4), ("w8a8", &[], Precision::W8a8)];

/// `dtype` values: the name, its aliases (torch's and numpy's names; `torch.` is dropped before
/// matching), the precision.
pub const DTYPE_NAMES: [(&str, &[&str], Precision); 2] =
    [("fp32", &["float32", "f32"], Precision::Fp32), ("bf16", &["bfloat16"], Precision::Bf16)];

fn find(names: &[(&str, &[&str], Precision)], wanted: &str) -> Option<Precision> {
    names.iter().find(|(name, aliases, _)| *name == wanted || aliases.contains(&wanted)).map(|&(_, _, p)| p)
}

/// The precision of a `quantize` value (`int8` / `8`, `int4` / `4`, `w8a8`; any case).
pub fn parse_quantize(name: &str) -> Option<Precision> {
    find(&QUANTIZE_NAMES, &name.trim().to_ascii_lowercase())
}

/// The precision of a `dtype` value (`fp32` / `float32` / `torch.float32`, `bf16` / `bfloat16` /
/// `torch.bfloat16`; any case).
pub fn parse_dtype(name: &str) -> Option<Precision> {
    let name = name.trim().to_ascii_lowercase();
    find(&DTYPE_NAMES, name.strip_prefix("torch.").unwrap_or(&name))
}

/// The precision asked for by `quantize` and `dtype` (fp32 when neither is given). A quantized
/// mode with `dtype` bf16 is an error (both set the linear layers' precision), as is an unknown
/// name; messages name the caller's arguments.
pub fn load_precision(caller: Caller, quantize: Option<&str>, dtype: Option<&str>) -> Result<Precision> {
    let quantized = quantize
        .map(|q| {
            parse_quantize(q).ok_or_else(|| {
                Error::InvalidArgument(match caller {
                    Caller::Cli => format!("--quantize {q}: expected int8, int4 or w8a8"),
                    Caller::Python => format!("unknown quantize '{q}' (expected None, 'int8', 'int4' or 'w8a8')"),
                })
            })
        })
        .transpose()?;
    let dtype = dtype
        .map(|d| {
            parse_dtype(d).ok_or_else(|| {
                Error::InvalidArgument(match caller {
                    Caller::Cli => format!("--dtype {d}: expected fp32 or bf16"),
                    Caller::Python => format!("dtype '{d}' is not supported (supported: float32, bfloat16)"),
                })
            })
        })
        .transpose()?
        .filter(|&d| d != Precision::Fp32);
    match (quantized, dtype) {
        (Some(q), Some(d)) => Err(Error::InvalidArgument(match caller {
            Caller::Cli => {
                format!("--dtype {d} and --quantize {q} both set the precision of the linear layers: pass one of them")
            }
            Caller::Python => format!("quantize='{q}' and dtype='{d}' cannot be combined; choose one"),
        })),
        (Some(p), None) | (None, Some(p)) => Ok(p),
        (None, None) => Ok(Precision::Fp32),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_quantize_and_dtype() {
        let python = |q, d| load_precision(Caller::Python, q, d);
        assert_eq!(python(None, None).unwrap(), Precision::Fp32);
        assert_eq!(python(Some("int8"), Some("torch.float32")).unwrap(), Precision::Int8);
        assert_eq!(python(Some("4"), None).unwrap(), Precision::Int4);
        assert_eq!(python(Some("W8A8"), None).unwrap(), Precision::W8a8);
        assert_eq!(python(None, Some("torch.bfloat16")).unwrap(), Precision::Bf16);
        assert_eq!(python(None, Some("fp32")).unwrap(), Precision::Fp32);
        assert!(python(Some("int2"), None).unwrap_err().to_string().contains("unknown quantize 'int2'"));
        assert!(python(None, Some("float16")).unwrap_err().to_string().contains("dtype 'float16' is not supported"));
        assert!(python(Some("int8"), Some("bfloat16")).unwrap_err().to_string().contains("cannot be combined"));
        let cli = load_precision(Caller::Cli, Some("8"), Some("bf16")).unwrap_err().to_string();
        assert_eq!(
            cli,
            "--dtype bf16 and --quantize int8 both set the precision of the linear layers: pass one of them"
        );
    }

    #[test]
    fn every_precision_has_one_name_its_own() {
        for p in Precision::ALL {
            let names: Vec<&str> =
                QUANTIZE_NAMES.iter().chain(&DTYPE_NAMES).filter(|n| n.2 == p).map(|n| n.0).collect();
            assert_eq!(names, [p.name()], "{p}");
        }
    }
}
