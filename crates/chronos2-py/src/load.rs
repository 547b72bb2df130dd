//! The Python loading arguments (`quantize`, `dtype`) as the facade's [`LoadOptions`]: the one
//! place that knows how precision is chosen when loading.

use chronos2::LoadOptions;

/// `quantize`: `None`, `"int8"` or `"int4"`; `dtype`: `None` or `"float32"` (the weights this
/// build computes in). Anything else is an error naming what is accepted.
pub fn load_options(quantize: Option<&str>, dtype: Option<&str>) -> Result<LoadOptions, String> {
    if let Some(d) = dtype {
        let d = d.trim().to_ascii_lowercase();
        let d = d.strip_prefix("torch.").unwrap_or(&d);
        if !matches!(d, "float32" | "fp32" | "f32") {
            return Err(format!(
                "dtype '{d}' is not supported (supported: float32); for smaller weights use quantize='int8' or quantize='int4'"
            ));
        }
    }
    let quantize_bits = match quantize.map(|q| q.trim().to_ascii_lowercase()) {
        None => None,
        Some(q) => match q.as_str() {
            "int8" | "8" => Some(8),
            "int4" | "4" => Some(4),
            other => return Err(format!("unknown quantize '{other}' (expected None, 'int8' or 'int4')")),
        },
    };
    Ok(LoadOptions { quantize_bits, compile: false })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_quantize_and_dtype() {
        assert_eq!(load_options(None, None).unwrap().quantize_bits, None);
        assert_eq!(load_options(Some("int8"), Some("torch.float32")).unwrap().quantize_bits, Some(8));
        assert_eq!(load_options(Some("4"), None).unwrap().quantize_bits, Some(4));
        assert!(load_options(Some("int2"), None).unwrap_err().contains("unknown quantize 'int2'"));
        assert!(load_options(None, Some("bfloat16")).unwrap_err().contains("dtype 'bfloat16' is not supported"));
    }
}
