//! A minimal column table for long-format time-series files: read CSV and Parquet, parse
//! timestamps, write CSV / Parquet / JSON records.
//!
//! Column types follow what pandas would give the reference implementation:
//! CSV fields are inferred per column as pandas' `read_csv` does (all integers -> integer,
//! numbers -> float, `True`/`False` -> bool, anything else -> string; the default pandas
//! missing-value markers such as the empty field, `NA`, `NaN`, `null` are missing).

mod csv_io;
mod parquet_io;
mod timestamp;
mod zone;

use std::path::Path;

use chrono::NaiveDateTime;

use crate::error::{Error, Result};

pub(crate) use parquet_io::embeddings_to_parquet;
pub use timestamp::{format_timestamp, fraction_digits, parse_timestamp, TzOffset};
pub use zone::{offset_text, zoned_text, Zone};

/// Values of one column. Missing values are `None` (NaN for floats).
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnData {
    /// Integers without missing values (pandas `int64`).
    Int(Vec<i64>),
    /// Floats; NaN = missing (pandas `float64`).
    Float(Vec<f64>),
    /// 32-bit floats; NaN = missing (the forecast columns).
    Float32(Vec<f32>),
    Bool(Vec<Option<bool>>),
    Str(Vec<Option<String>>),
    /// Timestamps: wall-clock times when the zone is `None` (naive), else UTC instants whose
    /// offsets the [`Zone`] gives.
    Timestamp(Vec<Option<NaiveDateTime>>, Option<Zone>),
}

impl ColumnData {
    pub fn len(&self) -> usize {
        match self {
            ColumnData::Int(v) => v.len(),
            ColumnData::Float(v) => v.len(),
            ColumnData::Float32(v) => v.len(),
            ColumnData::Bool(v) => v.len(),
            ColumnData::Str(v) => v.len(),
            ColumnData::Timestamp(v, _) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Numeric in pandas' sense (`is_numeric_dtype`): integers, floats and bools without missing values.
    pub fn is_numeric(&self) -> bool {
        match self {
            ColumnData::Int(_) | ColumnData::Float(_) | ColumnData::Float32(_) => true,
            ColumnData::Bool(v) => v.iter().all(Option::is_some),
            _ => false,
        }
    }

    /// A short type name for messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            ColumnData::Int(_) => "integer",
            ColumnData::Float(_) => "float",
            ColumnData::Float32(_) => "float32",
            ColumnData::Bool(_) => "bool",
            ColumnData::Str(_) => "string",
            ColumnData::Timestamp(..) => "timestamp",
        }
    }

    /// Value `i` as f64 (NaN when missing or not numeric).
    pub fn f64_at(&self, i: usize) -> f64 {
        match self {
            ColumnData::Int(v) => v[i] as f64,
            ColumnData::Float(v) => v[i],
            ColumnData::Float32(v) => v[i] as f64,
            ColumnData::Bool(v) => v[i].map_or(f64::NAN, |b| if b { 1.0 } else { 0.0 }),
            _ => f64::NAN,
        }
    }

    /// Value `i` as a label (`None` when missing): the text pandas would show for it.
    pub fn label_at(&self, i: usize) -> Option<String> {
        match self {
            ColumnData::Int(v) => Some(v[i].to_string()),
            ColumnData::Float(v) => (!v[i].is_nan()).then(|| format_f64(v[i])),
            ColumnData::Float32(v) => (!v[i].is_nan()).then(|| format_f32(v[i])),
            ColumnData::Bool(v) => v[i].map(|b| if b { "True" } else { "False" }.to_string()),
            ColumnData::Str(v) => v[i].clone(),
            ColumnData::Timestamp(v, zone) => {
                v[i].map(|t| zoned_text(t, zone.as_ref(), i, fraction_digits(std::iter::once(t))))
            }
        }
    }

    /// Fractional-second digits that format every timestamp of the column (0 for other columns).
    pub fn timestamp_digits(&self) -> usize {
        match self {
            ColumnData::Timestamp(v, _) => fraction_digits(v.iter().flatten().copied()),
            _ => 0,
        }
    }

    /// The rows at `indices`, in that order.
    pub fn take(&self, indices: &[usize]) -> ColumnData {
        fn pick<T: Clone>(v: &[T], idx: &[usize]) -> Vec<T> {
            idx.iter().map(|&i| v[i].clone()).collect()
        }
        match self {
            ColumnData::Int(v) => ColumnData::Int(pick(v, indices)),
            ColumnData::Float(v) => ColumnData::Float(pick(v, indices)),
            ColumnData::Float32(v) => ColumnData::Float32(pick(v, indices)),
            ColumnData::Bool(v) => ColumnData::Bool(pick(v, indices)),
            ColumnData::Str(v) => ColumnData::Str(pick(v, indices)),
            ColumnData::Timestamp(v, zone) => {
                ColumnData::Timestamp(pick(v, indices), zone.as_ref().map(|z| z.take(indices)))
            }
        }
    }
}

/// Python-like text for a float: integral values keep a `.0` (`str(1.0) == "1.0"`).
pub fn format_f64(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf".into() } else { "-inf".into() };
    }
    let s = x.to_string();
    if s.contains(['.', 'e', 'E']) {
        s
    } else {
        format!("{s}.0")
    }
}

fn format_f32(x: f32) -> String {
    if x.is_finite() {
        let s = x.to_string();
        if s.contains('.') {
            s
        } else {
            format!("{s}.0")
        }
    } else {
        format_f64(x as f64)
    }
}

/// `str(level)` for a Python float: shortest round-trip digits, exponent form below 1e-4
/// (`0.1`, `0.05`, `0.333`, `1e-05`).
pub fn python_float_str(x: f64) -> String {
    let abs = x.abs();
    if x != 0.0 && x.is_finite() && !(1e-4..1e16).contains(&abs) {
        let s = format!("{x:e}");
        let (mantissa, exp) = s.split_once('e').expect("exponent form");
        let exp: i32 = exp.parse().expect("integer exponent");
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exp.abs());
    }
    format_f64(x)
}

/// One named column.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub data: ColumnData,
}

/// A table of equally long named columns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Frame {
    pub columns: Vec<Column>,
}

/// File formats the tables are read from / written to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Parquet,
    Json,
}

impl Format {
    /// The format named by a file's extension (`.csv`, `.parquet`/`.pq`, `.json`).
    pub fn from_path(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "csv" => Some(Format::Csv),
            "parquet" | "pq" => Some(Format::Parquet),
            "json" => Some(Format::Json),
            _ => None,
        }
    }
}

impl Frame {
    pub fn new() -> Self {
        Frame::default()
    }

    /// Reads a `.csv` or `.parquet` file.
    pub fn read(path: &Path) -> Result<Frame> {
        let read_err = |message: String| Error::Read { path: path.to_path_buf(), message };
        match Format::from_path(path) {
            Some(Format::Csv) => csv_io::read_csv(path),
            Some(Format::Parquet) => parquet_io::read_parquet(path),
            _ => Err(read_err("unsupported file type (expected a .csv or .parquet file)".into())),
        }
    }

    /// Parses CSV text (`source` names it in messages).
    pub fn from_csv_str(text: &str, source: &str) -> Result<Frame> {
        csv_io::parse_csv(text.as_bytes(), Path::new(source))
    }

    pub fn push(&mut self, name: impl Into<String>, data: ColumnData) {
        self.columns.push(Column { name: name.into(), data });
    }

    pub fn num_rows(&self) -> usize {
        self.columns.first().map_or(0, |c| c.data.len())
    }

    pub fn names(&self) -> Vec<&str> {
        self.columns.iter().map(|c| c.name.as_str()).collect()
    }

    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    pub fn has_column(&self, name: &str) -> bool {
        self.column(name).is_some()
    }

    /// Writes the table as CSV (`.csv`), Parquet (`.parquet`) or JSON records (`.json`),
    /// atomically: into a temporary file next to `path`, renamed over it when complete.
    pub fn write(&self, path: &Path) -> Result<()> {
        let format = Format::from_path(path).ok_or_else(|| Error::Write {
            path: path.to_path_buf(),
            message: "unsupported output type (expected .csv, .parquet or .json)".into(),
        })?;
        let bytes = self.to_bytes(format).map_err(|message| Error::Write { path: path.to_path_buf(), message })?;
        write_atomic(path, &bytes)
    }

    /// The table encoded in `format`.
    pub fn to_bytes(&self, format: Format) -> std::result::Result<Vec<u8>, String> {
        match format {
            Format::Csv => csv_io::to_csv(self),
            Format::Parquet => parquet_io::to_parquet(self),
            Format::Json => Ok(self.to_json_records().into_bytes()),
        }
    }

    /// JSON array of records (`pandas.DataFrame.to_json(orient="records")` with ISO timestamps);
    /// missing values are `null`.
    pub fn to_json_records(&self) -> String {
        let rows = self.num_rows();
        let keys: Vec<String> = self.columns.iter().map(|c| json_string(&c.name)).collect();
        let digits: Vec<usize> = self.columns.iter().map(|c| c.data.timestamp_digits()).collect();
        let mut out = String::with_capacity(rows * 32 * self.columns.len().max(1) + 2);
        out.push('[');
        for i in 0..rows {
            if i > 0 {
                out.push(',');
            }
            out.push('{');
            for (k, col) in self.columns.iter().enumerate() {
                if k > 0 {
                    out.push(',');
                }
                out.push_str(&keys[k]);
                out.push(':');
                out.push_str(&json_value(&col.data, i, digits[k]));
            }
            out.push('}');
        }
        out.push(']');
        out
    }
}

/// A JSON string literal.
pub fn json_string(s: &str) -> String {
    serde_json::to_string(s).expect("JSON string")
}

/// A JSON number for an f32 (shortest round-trip digits), `null` for NaN/infinity.
pub fn json_f32(x: f32) -> String {
    if x.is_finite() {
        x.to_string()
    } else {
        "null".into()
    }
}

fn json_value(data: &ColumnData, i: usize, digits: usize) -> String {
    match data {
        ColumnData::Int(v) => v[i].to_string(),
        ColumnData::Float(v) => serde_json::Number::from_f64(v[i]).map_or("null".into(), |n| n.to_string()),
        ColumnData::Float32(v) => json_f32(v[i]),
        ColumnData::Bool(v) => v[i].map_or("null".into(), |b| b.to_string()),
        ColumnData::Timestamp(v, zone) => {
            v[i].map_or("null".into(), |t| json_string(&zoned_text(t, zone.as_ref(), i, digits)))
        }
        ColumnData::Str(_) => data.label_at(i).map_or("null".into(), |s| json_string(&s)),
    }
}

/// The file that writing `path` replaces: `path` itself, or the final target of a symbolic link
/// (the link is kept and its target gets the new content). Refuses a directory, anything else that
/// is not a regular file (a device or FIFO would be replaced, not written to), a dangling link and
/// a file with several hard links (replacing it would detach it from its other names).
pub fn output_target(path: &Path) -> Result<std::path::PathBuf> {
    let err = |message: String| Error::Write { path: path.to_path_buf(), message };
    let Ok(link_meta) = std::fs::symlink_metadata(path) else {
        return Ok(path.to_path_buf());
    };
    let target = if link_meta.file_type().is_symlink() {
        std::fs::canonicalize(path).map_err(|e| {
            err(format!("it is a symbolic link whose target cannot be resolved ({e}); remove it or fix the link"))
        })?
    } else {
        path.to_path_buf()
    };
    let meta = std::fs::metadata(&target).map_err(|e| err(e.to_string()))?;
    if meta.is_dir() {
        return Err(err("it is a directory".into()));
    }
    if !meta.is_file() {
        // A device, FIFO or socket would be replaced by a regular file, not written to.
        return Err(err(format!("{} is not a regular file; choose a regular file", target.display())));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if meta.nlink() > 1 {
            return Err(err(format!(
                "it has {} hard links; the output is written to a new file and renamed, which would detach it \
                 from its other names (remove it first, or choose another name)",
                meta.nlink()
            )));
        }
    }
    Ok(target)
}

/// Checks, before any work, that `path` can be written: `output_target` accepts it and its
/// directory exists and lets us create files (a probe file is created and removed).
pub fn check_writable(path: &Path) -> Result<()> {
    let target = output_target(path)?;
    let dir = parent_dir(&target);
    let err = |message: String| Error::Write { path: path.to_path_buf(), message };
    if !dir.is_dir() {
        return Err(err(format!("directory {} does not exist", dir.display())));
    }
    let (probe, file) = create_temp(&dir, &target)
        .map_err(|e| err(format!("cannot create files in directory {} ({e})", dir.display())))?;
    drop(file);
    let _ = std::fs::remove_file(probe);
    Ok(())
}

fn parent_dir(path: &Path) -> std::path::PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    }
}

/// A new, uniquely named hidden file next to `target`.
fn create_temp(dir: &Path, target: &Path) -> std::io::Result<(std::path::PathBuf, std::fs::File)> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let name = target.file_name().and_then(|n| n.to_str()).unwrap_or("output");
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".{name}.{}.{n}.tmp", std::process::id()));
        match std::fs::OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(file) => return Ok((tmp, file)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename, so that
/// `path` is either untouched or complete. An existing file keeps its permissions; a symbolic link
/// is written through (its target is replaced); see [`output_target`] for what is refused.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let err = |message: String| Error::Write { path: path.to_path_buf(), message };
    let target = output_target(path)?;
    let dir = parent_dir(&target);
    if !dir.is_dir() {
        return Err(err(format!("directory {} does not exist", dir.display())));
    }
    let existing = std::fs::metadata(&target).ok();
    let (tmp, mut file) = create_temp(&dir, &target).map_err(|e| err(e.to_string()))?;
    let _pending = chronos2_core::cleanup::Pending::new(&tmp);
    let result = (|| -> std::io::Result<()> {
        // The mode is set before any byte is written, so private data never sits in a readable file.
        if let Some(meta) = &existing {
            file.set_permissions(meta.permissions())?;
        }
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, &target)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(err(e.to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_float_repr() {
        for (x, s) in [
            (0.1, "0.1"),
            (0.05, "0.05"),
            (0.333, "0.333"),
            (0.5, "0.5"),
            (0.99, "0.99"),
            (1e-05, "1e-05"),
            (0.0001, "0.0001"),
            (1.0, "1.0"),
            (0.0, "0.0"),
        ] {
            assert_eq!(python_float_str(x), s);
        }
    }

    #[test]
    fn json_records() {
        let mut f = Frame::new();
        f.push("id", ColumnData::Int(vec![1, 2]));
        f.push("x", ColumnData::Float32(vec![0.1, f32::NAN]));
        f.push("s", ColumnData::Str(vec![Some("a".into()), None]));
        assert_eq!(f.to_json_records(), r#"[{"id":1,"x":0.1,"s":"a"},{"id":2,"x":null,"s":null}]"#);
    }
}
