//! The Python loading arguments (`quantize`, `dtype`) as the facade's [`LoadOptions`]: the one
//! place that knows how precision is chosen when loading.

use chronos2::{LoadOptions, Precision};

/// `quantize`: `None`, `"int8"`, `"int4"` or `"w8a8"`; `dtype`: `None`, `"float32"` or
/// `"bfloat16"` (also as `torch.float32` / `torch.bfloat16`). Both at once, or anything else, is
/// an error naming what is accepted.
pub fn load_options(quantize: Option<&str>, dtype: Option<&str>) -> Result<LoadOptions, String> {
    let dtype = match dtype.map(|d| d.trim().to_ascii_lowercase()) {
        None => None,
        Some(d) => match d.strip_prefix("torch.").unwrap_or(&d) {
            "float32" | "fp32" | "f32" => None,
            "bfloat16" | "bf16" => Some(Precision::Bf16),
            other => {
                return Err(format!("dtype '{other}' is not supported (supported: float32, bfloat16)"));
            }
        },
    };
    let quantized = match quantize.map(|q| q.trim().to_ascii_lowercase()) {
        None => None,
        Some(q) => match q.as_str() {
            "int8" | "8" => Some(Precision::Int8),
            "int4" | "4" => Some(Precision::Int4),
            "w8a8" => Some(Precision::W8a8),
            other => return Err(format!("unknown quantize '{other}' (expected None, 'int8', 'int4' or 'w8a8')")),
        },
    };
    let precision = match (quantized, dtype) {
        (Some(q), Some(d)) => {
            return Err(format!("quantize='{q}' and dtype='{d}' cannot be combined; choose one"));
        }
        (Some(p), None) | (None, Some(p)) => p,
        (None, None) => Precision::Fp32,
    };
    Ok(LoadOptions { precision, compile: false })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_quantize_and_dtype() {
        assert_eq!(load_options(None, None).unwrap().precision, Precision::Fp32);
        assert_eq!(load_options(Some("int8"), Some("torch.float32")).unwrap().precision, Precision::Int8);
        assert_eq!(load_options(Some("4"), None).unwrap().precision, Precision::Int4);
        assert_eq!(load_options(None, Some("torch.bfloat16")).unwrap().precision, Precision::Bf16);
        assert!(load_options(Some("int2"), None).unwrap_err().contains("unknown quantize 'int2'"));
        assert!(load_options(None, Some("float16")).unwrap_err().contains("dtype 'float16' is not supported"));
        assert!(load_options(Some("int8"), Some("bfloat16")).unwrap_err().contains("cannot be combined"));
    }
}
