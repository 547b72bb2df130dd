//! CSV reading (with pandas-like type inference) and writing.

use std::path::Path;

use super::{format_f64, zoned_text, ColumnData, Frame};
use crate::error::{Error, Result};

/// pandas' default missing-value markers (`read_csv(na_values=None, keep_default_na=True)`).
const NA_VALUES: &[&str] = &[
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>", "N/A", "NA",
    "NULL", "NaN", "None", "n/a", "nan", "null",
];

fn is_na(s: &str) -> bool {
    NA_VALUES.contains(&s)
}

pub(super) fn read_csv(path: &Path) -> Result<Frame> {
    let file =
        std::fs::File::open(path).map_err(|e| Error::Read { path: path.to_path_buf(), message: e.to_string() })?;
    parse_csv(std::io::BufReader::new(file), path)
}

pub(super) fn parse_csv<R: std::io::Read>(reader: R, path: &Path) -> Result<Frame> {
    let err = |message: String| Error::Read { path: path.to_path_buf(), message };
    let mut rdr = csv::ReaderBuilder::new().has_headers(true).flexible(false).from_reader(reader);
    let headers = rdr.headers().map_err(|e| err(e.to_string()))?.clone();
    if headers.is_empty() || (headers.len() == 1 && headers[0].is_empty()) {
        return Err(err("the file is empty (expected a header row naming the columns)".into()));
    }
    let names: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    for (i, name) in names.iter().enumerate() {
        if names[..i].contains(name) {
            return Err(err(format!("column '{name}' appears twice in the header")));
        }
    }
    let mut raw: Vec<Vec<String>> = vec![Vec::new(); names.len()];
    let mut record = csv::StringRecord::new();
    loop {
        match rdr.read_record(&mut record) {
            Ok(true) => {
                for (col, field) in raw.iter_mut().zip(record.iter()) {
                    col.push(field.to_string());
                }
            }
            Ok(false) => break,
            Err(e) => return Err(err(e.to_string())),
        }
    }
    let mut frame = Frame::new();
    for (name, values) in names.into_iter().zip(raw) {
        frame.push(name, infer_column(values));
    }
    Ok(frame)
}

/// Types one column of CSV fields as pandas' C parser does: integers (no missing) -> int64,
/// numbers -> float64, `True`/`False` -> bool, otherwise strings (timestamps stay strings).
pub(super) fn infer_column(values: Vec<String>) -> ColumnData {
    let present = || values.iter().filter(|v| !is_na(v));
    let any_missing = values.iter().any(|v| is_na(v));
    let all_missing = present().next().is_none();
    if all_missing {
        return ColumnData::Float(vec![f64::NAN; values.len()]);
    }
    if !any_missing && present().all(|v| v.trim().parse::<i64>().is_ok()) {
        return ColumnData::Int(values.iter().map(|v| v.trim().parse().expect("checked")).collect());
    }
    if present().all(|v| parse_float(v).is_some()) {
        return ColumnData::Float(
            values.iter().map(|v| if is_na(v) { f64::NAN } else { parse_float(v).expect("checked") }).collect(),
        );
    }
    let as_bool = |v: &str| match v {
        "True" | "TRUE" | "true" => Some(true),
        "False" | "FALSE" | "false" => Some(false),
        _ => None,
    };
    if present().all(|v| as_bool(v).is_some()) {
        return ColumnData::Bool(values.iter().map(|v| if is_na(v) { None } else { as_bool(v) }).collect());
    }
    ColumnData::Str(values.into_iter().map(|v| if is_na(&v) { None } else { Some(v) }).collect())
}

fn parse_float(v: &str) -> Option<f64> {
    let t = v.trim();
    // Rust accepts "infinity"/"nan" spellings pandas also reads; reject things like "1_000".
    if t.is_empty() || t.contains('_') {
        return None;
    }
    t.parse::<f64>().ok()
}

/// CSV text of a frame: floats in shortest round-trip form, missing values as empty fields,
/// timestamps in ISO-8601 (`2024-01-03T12:00:00`).
pub(super) fn to_csv(frame: &Frame) -> std::result::Result<Vec<u8>, String> {
    let mut wtr = csv::WriterBuilder::new().terminator(csv::Terminator::Any(b'\n')).from_writer(Vec::new());
    wtr.write_record(frame.columns.iter().map(|c| c.name.as_str())).map_err(|e| e.to_string())?;
    let mut fields: Vec<String> = Vec::with_capacity(frame.columns.len());
    let digits: Vec<usize> = frame.columns.iter().map(|c| c.data.timestamp_digits()).collect();
    for i in 0..frame.num_rows() {
        fields.clear();
        for (col, &digits) in frame.columns.iter().zip(&digits) {
            fields.push(match &col.data {
                ColumnData::Int(v) => v[i].to_string(),
                ColumnData::Float(v) => {
                    if v[i].is_nan() {
                        String::new()
                    } else {
                        format_f64(v[i])
                    }
                }
                ColumnData::Float32(v) => {
                    if v[i].is_nan() {
                        String::new()
                    } else if v[i].is_infinite() {
                        format_f64(v[i] as f64)
                    } else {
                        v[i].to_string()
                    }
                }
                ColumnData::Bool(v) => v[i].map_or(String::new(), |b| if b { "True".into() } else { "False".into() }),
                ColumnData::Str(v) => v[i].clone().unwrap_or_default(),
                ColumnData::Timestamp(v, zone) => {
                    v[i].map_or(String::new(), |t| zoned_text(t, zone.as_ref(), i, digits))
                }
            });
        }
        wtr.write_record(&fields).map_err(|e| e.to_string())?;
    }
    wtr.into_inner().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Frame {
        parse_csv(text.as_bytes(), Path::new("test.csv")).unwrap()
    }

    // pandas: pd.read_csv(io.StringIO(text)).dtypes -> int64, float64, bool, object, float64 (all NaN)
    #[test]
    fn infers_types_like_pandas() {
        let f = parse("a,b,c,d,e\n1,1.5,True,x,\n2,NA,False,,\n");
        assert_eq!(f.column("a").unwrap().data, ColumnData::Int(vec![1, 2]));
        match &f.column("b").unwrap().data {
            ColumnData::Float(v) => assert!(v[0] == 1.5 && v[1].is_nan()),
            other => panic!("{other:?}"),
        }
        assert_eq!(f.column("c").unwrap().data, ColumnData::Bool(vec![Some(true), Some(false)]));
        assert_eq!(f.column("d").unwrap().data, ColumnData::Str(vec![Some("x".into()), None]));
        assert!(matches!(f.column("e").unwrap().data, ColumnData::Float(_)));
    }

    #[test]
    fn ints_with_missing_become_floats() {
        let f = parse("a\n1\n\n3\n");
        // A blank line is skipped by pandas (skip_blank_lines) and by the csv crate alike.
        assert_eq!(f.num_rows(), 2);
        let f = parse("a,b\n1,x\n,y\n3,z\n");
        assert!(matches!(f.column("a").unwrap().data, ColumnData::Float(_)));
    }

    #[test]
    fn errors_name_the_problem() {
        let e = parse_csv("a,a\n1,2\n".as_bytes(), Path::new("x.csv")).unwrap_err().to_string();
        assert!(e.contains("'a' appears twice"), "{e}");
        let e = parse_csv("a,b\n1,2\n3\n".as_bytes(), Path::new("x.csv")).unwrap_err().to_string();
        assert!(e.contains("x.csv"), "{e}");
        let e = parse_csv("".as_bytes(), Path::new("x.csv")).unwrap_err().to_string();
        assert!(e.contains("empty"), "{e}");
    }

    #[test]
    fn writes_csv() {
        let mut f = Frame::new();
        f.push("id", ColumnData::Str(vec![Some("a,b".into())]));
        f.push("v", ColumnData::Float32(vec![0.1]));
        f.push("w", ColumnData::Float32(vec![f32::NAN]));
        assert_eq!(String::from_utf8(to_csv(&f).unwrap()).unwrap(), "id,v,w\n\"a,b\",0.1,\n");
    }
}
