//! `.npz` archives (numpy's `np.savez`, MLX's `mx.savez`): a zip of `.npy` arrays, stored
//! uncompressed. Read: float arrays (`<f4`, `<f8`, `<f2`) in C order, from a stored (not
//! deflated) archive. Written: `<f4` arrays, npy format 1.0, stored.

use std::io::{Read, Write};
use std::path::Path;

use crate::error::{Error, Result};

use super::export::NamedTensor;

const NPY_MAGIC: &[u8] = b"\x93NUMPY";

fn npz_error(path: &Path, message: impl std::fmt::Display) -> Error {
    Error::Weights { path: path.to_path_buf(), message: message.to_string() }
}

/// Every array of the archive at `path`, named by its entry without `.npy`, sorted by name.
pub fn read_npz(path: &Path) -> Result<Vec<NamedTensor>> {
    let file = std::fs::File::open(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
    let mut archive = zip::ZipArchive::new(file).map_err(|e| npz_error(path, format!("not an npz archive: {e}")))?;
    let mut out = Vec::with_capacity(archive.len());
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(|e| npz_error(path, e))?;
        let entry_name = entry.name().map_err(|e| npz_error(path, e))?.to_string();
        if entry.compression() != zip::CompressionMethod::Stored {
            return Err(npz_error(
                path,
                format!("`{entry_name}` is compressed; write the archive with np.savez / mx.savez (uncompressed)"),
            ));
        }
        let mut bytes = Vec::with_capacity(entry.size() as usize);
        entry.read_to_end(&mut bytes).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
        let name = entry_name.strip_suffix(".npy").unwrap_or(&entry_name).to_string();
        let (shape, data) = parse_npy(&bytes).map_err(|m| npz_error(path, format!("`{entry_name}`: {m}")))?;
        out.push(NamedTensor { name, shape, data });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Writes `tensors` as an uncompressed npz (`{name}.npy` entries of `<f4` arrays).
pub fn write_npz(path: &Path, tensors: &[NamedTensor]) -> Result<()> {
    let file =
        std::fs::File::create(path).map_err(|e| Error::Write { path: path.to_path_buf(), message: e.to_string() })?;
    let mut zip = zip::ZipWriter::new(file);
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for t in tensors {
        zip.start_file(format!("{}.npy", t.name), options).map_err(|e| npz_error(path, e))?;
        zip.write_all(&npy_bytes(t)).map_err(|e| Error::Write { path: path.to_path_buf(), message: e.to_string() })?;
    }
    zip.finish().map_err(|e| npz_error(path, e))?;
    Ok(())
}

/// An npy 1.0 file of `<f4` values in C order; the header is padded to a multiple of 64 bytes as
/// numpy pads it.
fn npy_bytes(t: &NamedTensor) -> Vec<u8> {
    let shape = match t.shape.as_slice() {
        [one] => format!("({one},)"),
        dims => format!("({})", dims.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")),
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
    let unpadded = NPY_MAGIC.len() + 4 + header.len() + 1;
    header.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    header.push('\n');
    let mut out = Vec::with_capacity(NPY_MAGIC.len() + 4 + header.len() + 4 * t.data.len());
    out.extend_from_slice(NPY_MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend(t.data.iter().flat_map(|v| v.to_le_bytes()));
    out
}

/// The shape and values of an npy file.
fn parse_npy(bytes: &[u8]) -> std::result::Result<(Vec<usize>, Vec<f32>), String> {
    if bytes.len() < 10 || &bytes[..6] != NPY_MAGIC {
        return Err("not an npy array (bad magic)".into());
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12),
        v => return Err(format!("unsupported npy version {v}")),
    };
    let header = bytes
        .get(start..start + header_len)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or("truncated or non-text npy header")?;
    let descr = dict_value(header, "descr")
        .and_then(|v| v.strip_prefix(['\'', '"']))
        .and_then(|v| v.split(['\'', '"']).next())
        .ok_or("npy header has no descr")?;
    if dict_value(header, "fortran_order").is_some_and(|v| v.starts_with("True")) {
        return Err("Fortran-ordered arrays are not supported (save a C-ordered array)".into());
    }
    let shape_text = dict_value(header, "shape").ok_or("npy header has no shape")?;
    let inner = shape_text.strip_prefix('(').and_then(|s| s.split(')').next()).ok_or("bad npy shape")?;
    let shape = inner
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| d.parse::<usize>().map_err(|_| format!("bad npy shape `{shape_text}`")))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let count: usize = shape.iter().product();
    let data = &bytes[start + header_len..];
    let values: Vec<f32> = match descr {
        "<f4" => data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
        "<f8" => data
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32)
            .collect(),
        "<f2" => data.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
        other => return Err(format!("dtype `{other}` is not supported (float32, float64 or float16)")),
    };
    if values.len() != count {
        return Err(format!("shape {shape:?} needs {count} values, the file holds {}", values.len()));
    }
    Ok((shape, values))
}

/// The text after `'key':` in a Python dict literal, up to the end of the header.
fn dict_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let at = header.find(&format!("'{key}'")).or_else(|| header.find(&format!("\"{key}\"")))?;
    let rest = &header[at + key.len() + 2..];
    Some(rest.trim_start().strip_prefix(':')?.trim_start())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_names_shapes_and_values() {
        let dir = std::env::temp_dir().join(format!("chronos2-npz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.npz");
        let tensors = vec![
            NamedTensor { name: "m.lora_a".into(), shape: vec![3, 2], data: vec![1.0, -2.5, 3.0, 4.0, 5.0, f32::MIN] },
            NamedTensor { name: "v".into(), shape: vec![4], data: vec![0.5, 0.25, -0.0, 1e-7] },
        ];
        write_npz(&path, &tensors).unwrap();
        let back = read_npz(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(back, tensors);
    }

    #[test]
    fn npy_header_is_aligned_and_parses() {
        let t = NamedTensor { name: "x".into(), shape: vec![2, 3], data: vec![0.0; 6] };
        let bytes = npy_bytes(&t);
        let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        assert_eq!((10 + header_len) % 64, 0);
        assert_eq!(parse_npy(&bytes).unwrap(), (vec![2, 3], vec![0.0; 6]));
    }

    #[test]
    fn bad_arrays_are_errors() {
        assert!(parse_npy(b"PK\x03\x04 not npy").unwrap_err().contains("bad magic"));
        let mut bytes = npy_bytes(&NamedTensor { name: "x".into(), shape: vec![2], data: vec![1.0, 2.0] });
        bytes.truncate(bytes.len() - 4);
        assert!(parse_npy(&bytes).unwrap_err().contains("needs 2 values"));
    }
}
