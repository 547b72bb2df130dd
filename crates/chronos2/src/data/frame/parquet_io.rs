//! Parquet reading (flat tables as pandas/pyarrow write them) and writing.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, NaiveDateTime};
use parquet::basic::{Compression, ConvertedType, LogicalType, Repetition, TimeUnit, Type as PhysicalType};
use parquet::column::reader::{ColumnReader, ColumnReaderImpl};
use parquet::data_type::{ByteArray, ByteArrayType, DataType, DoubleType, FloatType, Int64Type};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::{ColumnDescriptor, Type};

use super::{ColumnData, Frame, Zone};
use crate::error::{Error, Result};

pub(super) fn read_parquet(path: &Path) -> Result<Frame> {
    let err = |message: String| Error::Read { path: path.to_path_buf(), message };
    let file = std::fs::File::open(path).map_err(|e| err(e.to_string()))?;
    let reader = SerializedFileReader::new(file).map_err(|e| err(format!("not a readable Parquet file: {e}")))?;
    let descr = reader.metadata().file_metadata().schema_descr_ptr();
    let columns = descr.columns();
    for col in columns {
        if col.max_rep_level() > 0 || col.path().parts().len() != 1 {
            return Err(err(format!(
                "column '{}' is nested (list/struct); only flat tables of numbers, strings, bools and timestamps are supported",
                col.path().string()
            )));
        }
    }
    let mut builders: Vec<Builder> =
        columns.iter().map(|c| Builder::new(c)).collect::<std::result::Result<_, _>>().map_err(err)?;
    let zones = pandas_time_zones(reader.metadata().file_metadata().key_value_metadata());
    for rg in 0..reader.num_row_groups() {
        let row_group = reader.get_row_group(rg).map_err(|e| err(e.to_string()))?;
        for (i, builder) in builders.iter_mut().enumerate() {
            let column_reader = row_group.get_column_reader(i).map_err(|e| err(e.to_string()))?;
            builder.read(column_reader).map_err(|e| err(format!("column '{}': {e}", builder.name)))?;
        }
    }
    let mut frame = Frame::new();
    for b in builders {
        // pandas keeps a non-default index as `__index_level_N__` and restores it as the index.
        if b.name.starts_with("__index_level_") && b.name.ends_with("__") {
            continue;
        }
        let zone = match zones.get(&b.name) {
            Some(name) => Some(Zone::from_name(name).ok_or_else(|| {
                err(format!("column '{}' has the time zone '{name}', which is not a known zone", b.name))
            })?),
            None => None,
        };
        let (name, data) = b.finish(zone);
        frame.push(name, data);
    }
    Ok(frame)
}

/// How a leaf column's values become a [`ColumnData`].
#[derive(Debug, Clone, Copy)]
enum Kind {
    Bool,
    Int32,
    Int64,
    /// Decimal stored in an integer: value / 10^scale.
    Decimal32(i32),
    Decimal64(i32),
    /// Decimal stored as big-endian two's-complement bytes (fixed or variable length).
    DecimalBytes(i32),
    /// IEEE half precision in 2 fixed-length bytes (little-endian).
    Float16,
    Float,
    Double,
    Str,
    Date32,
    /// Int64 timestamp: units per second, UTC-adjusted.
    Timestamp(i64, bool),
    Int96,
}

enum Values {
    Int(Vec<Option<i64>>),
    Float(Vec<f64>),
    Bool(Vec<Option<bool>>),
    Str(Vec<Option<String>>),
    Timestamp(Vec<Option<NaiveDateTime>>, bool),
}

struct Builder {
    name: String,
    kind: Kind,
    max_def: i16,
    values: Values,
}

impl Builder {
    fn new(col: &ColumnDescriptor) -> std::result::Result<Builder, String> {
        let name = col.name().to_string();
        let logical = col.logical_type_ref();
        let converted = col.converted_type();
        let kind = match col.physical_type() {
            PhysicalType::BOOLEAN => Kind::Bool,
            PhysicalType::INT32 => match (logical, converted) {
                (Some(LogicalType::Date), _) | (_, ConvertedType::DATE) => Kind::Date32,
                (Some(LogicalType::Decimal(d)), _) => Kind::Decimal32(d.scale),
                (_, ConvertedType::DECIMAL) => Kind::Decimal32(col.type_scale()),
                _ => Kind::Int32,
            },
            PhysicalType::INT64 => match (logical, converted) {
                (Some(LogicalType::Timestamp(t)), _) => {
                    let per_second = match t.unit {
                        TimeUnit::MILLIS => 1_000,
                        TimeUnit::MICROS => 1_000_000,
                        TimeUnit::NANOS => 1_000_000_000,
                    };
                    Kind::Timestamp(per_second, t.is_adjusted_to_u_t_c)
                }
                (_, ConvertedType::TIMESTAMP_MILLIS) => Kind::Timestamp(1_000, true),
                (_, ConvertedType::TIMESTAMP_MICROS) => Kind::Timestamp(1_000_000, true),
                (Some(LogicalType::Decimal(d)), _) => Kind::Decimal64(d.scale),
                (_, ConvertedType::DECIMAL) => Kind::Decimal64(col.type_scale()),
                _ => Kind::Int64,
            },
            PhysicalType::INT96 => Kind::Int96,
            PhysicalType::FLOAT => Kind::Float,
            PhysicalType::DOUBLE => Kind::Double,
            PhysicalType::BYTE_ARRAY => match (logical, converted) {
                (Some(LogicalType::Decimal(d)), _) => Kind::DecimalBytes(d.scale),
                (_, ConvertedType::DECIMAL) => Kind::DecimalBytes(col.type_scale()),
                _ => Kind::Str,
            },
            PhysicalType::FIXED_LEN_BYTE_ARRAY => match (logical, converted) {
                (Some(LogicalType::Decimal(d)), _) => Kind::DecimalBytes(d.scale),
                (_, ConvertedType::DECIMAL) => Kind::DecimalBytes(col.type_scale()),
                (Some(LogicalType::Float16), _) if col.type_length() == 2 => Kind::Float16,
                _ => {
                    let what = match logical {
                        Some(l) => format!("logical type {l:?}"),
                        None => "no logical type".to_string(),
                    };
                    return Err(format!(
                        "column '{name}' has a fixed-length binary type of {} bytes ({what}), which is not supported \
                         (numbers, decimals, float16, strings, bools, dates and timestamps are)",
                        col.type_length()
                    ));
                }
            },
        };
        let values = match kind {
            Kind::Bool => Values::Bool(Vec::new()),
            Kind::Int32 | Kind::Int64 => Values::Int(Vec::new()),
            Kind::Decimal32(_)
            | Kind::Decimal64(_)
            | Kind::DecimalBytes(_)
            | Kind::Float16
            | Kind::Float
            | Kind::Double => Values::Float(Vec::new()),
            Kind::Str => Values::Str(Vec::new()),
            Kind::Date32 => Values::Timestamp(Vec::new(), false),
            Kind::Timestamp(_, utc) => Values::Timestamp(Vec::new(), utc),
            Kind::Int96 => Values::Timestamp(Vec::new(), false),
        };
        Ok(Builder { name, kind, max_def: col.max_def_level(), values })
    }

    fn read(&mut self, reader: ColumnReader) -> std::result::Result<(), String> {
        let max_def = self.max_def;
        match (reader, self.kind, &mut self.values) {
            (ColumnReader::BoolColumnReader(r), _, Values::Bool(out)) => read_all(r, max_def, |v| out.push(v)),
            (ColumnReader::Int32ColumnReader(r), Kind::Int32, Values::Int(out)) => {
                read_all(r, max_def, |v| out.push(v.map(i64::from)))
            }
            (ColumnReader::Int32ColumnReader(r), Kind::Decimal32(scale), Values::Float(out)) => {
                read_all(r, max_def, |v| out.push(v.map_or(f64::NAN, |x| x as f64 / 10f64.powi(scale))))
            }
            (ColumnReader::Int32ColumnReader(r), Kind::Date32, Values::Timestamp(out, _)) => {
                read_all(r, max_def, |v| {
                    out.push(v.and_then(|days| {
                        NaiveDate::from_ymd_opt(1970, 1, 1)
                            .and_then(|epoch| epoch.checked_add_signed(chrono::Duration::days(days as i64)))
                            .map(|d| d.and_time(chrono::NaiveTime::MIN))
                    }))
                })
            }
            (ColumnReader::Int64ColumnReader(r), Kind::Int64, Values::Int(out)) => {
                read_all(r, max_def, |v| out.push(v))
            }
            (ColumnReader::Int64ColumnReader(r), Kind::Decimal64(scale), Values::Float(out)) => {
                read_all(r, max_def, |v| out.push(v.map_or(f64::NAN, |x| x as f64 / 10f64.powi(scale))))
            }
            (ColumnReader::Int64ColumnReader(r), Kind::Timestamp(per_second, _), Values::Timestamp(out, _)) => {
                read_all(r, max_def, |v| out.push(v.and_then(|x| from_epoch(x, per_second))))
            }
            (ColumnReader::Int96ColumnReader(r), _, Values::Timestamp(out, _)) => {
                read_all(r, max_def, |v| out.push(v.and_then(|x| from_epoch(x.to_nanos(), 1_000_000_000))))
            }
            (ColumnReader::FloatColumnReader(r), _, Values::Float(out)) => {
                read_all(r, max_def, |v| out.push(v.map_or(f64::NAN, f64::from)))
            }
            (ColumnReader::DoubleColumnReader(r), _, Values::Float(out)) => {
                read_all(r, max_def, |v| out.push(v.unwrap_or(f64::NAN)))
            }
            (ColumnReader::ByteArrayColumnReader(r), Kind::DecimalBytes(scale), Values::Float(out)) => {
                read_all(r, max_def, |v| out.push(v.map_or(f64::NAN, |b| decimal_from_be_bytes(b.data(), scale))))
            }
            (ColumnReader::FixedLenByteArrayColumnReader(r), Kind::DecimalBytes(scale), Values::Float(out)) => {
                read_all(r, max_def, |v| out.push(v.map_or(f64::NAN, |b| decimal_from_be_bytes(b.data(), scale))))
            }
            (ColumnReader::FixedLenByteArrayColumnReader(r), Kind::Float16, Values::Float(out)) => {
                read_all(r, max_def, |v| {
                    out.push(v.map_or(f64::NAN, |b| half::f16::from_le_bytes([b.data()[0], b.data()[1]]).to_f64()))
                })
            }
            (ColumnReader::ByteArrayColumnReader(r), _, Values::Str(out)) => {
                read_all(r, max_def, |v| out.push(v.map(|b| String::from_utf8_lossy(b.data()).into_owned())))
            }
            _ => Err("unexpected column reader type".to_string()),
        }
    }

    /// The column; `zone` is the time zone pandas recorded for it (UTC-adjusted timestamps
    /// without one are UTC).
    fn finish(self, zone: Option<Zone>) -> (String, ColumnData) {
        let data = match self.values {
            Values::Int(v) => {
                if v.iter().all(Option::is_some) {
                    ColumnData::Int(v.into_iter().map(|x| x.expect("checked")).collect())
                } else {
                    ColumnData::Float(v.into_iter().map(|x| x.map_or(f64::NAN, |x| x as f64)).collect())
                }
            }
            Values::Float(v) => ColumnData::Float(v),
            Values::Bool(v) => ColumnData::Bool(v),
            Values::Str(v) => ColumnData::Str(v),
            Values::Timestamp(v, utc) => ColumnData::Timestamp(v, utc.then(|| zone.unwrap_or(Zone::Fixed(0)))),
        };
        (self.name, data)
    }
}

/// A decimal's unscaled value (big-endian two's complement, any length) divided by 10^scale.
fn decimal_from_be_bytes(bytes: &[u8], scale: i32) -> f64 {
    let unscaled = if bytes.len() <= 16 {
        let fill = if bytes.first().is_some_and(|b| b & 0x80 != 0) { 0xff } else { 0 };
        let mut buf = [fill; 16];
        buf[16 - bytes.len()..].copy_from_slice(bytes);
        i128::from_be_bytes(buf) as f64
    } else {
        let negative = bytes[0] & 0x80 != 0;
        let magnitude = bytes.iter().fold(0.0f64, |acc, &b| acc * 256.0 + f64::from(if negative { !b } else { b }));
        if negative {
            -(magnitude + 1.0)
        } else {
            magnitude
        }
    };
    unscaled / 10f64.powi(scale)
}

/// Column name -> time zone name of the tz-aware columns, from the `pandas` metadata that pandas
/// (through pyarrow) writes: `{"columns": [{"field_name": ..., "metadata": {"timezone": ...}}]}`.
fn pandas_time_zones(metadata: Option<&Vec<KeyValue>>) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let Some(text) = metadata.into_iter().flatten().find(|kv| kv.key == "pandas").and_then(|kv| kv.value.as_deref())
    else {
        return out;
    };
    let Ok(json) = serde_json::from_str::<serde_json::Value>(text) else { return out };
    for col in json["columns"].as_array().into_iter().flatten() {
        let name = col["field_name"].as_str().or_else(|| col["name"].as_str());
        if let (Some(name), Some(tz)) = (name, col["metadata"]["timezone"].as_str()) {
            out.insert(name.to_string(), tz.to_string());
        }
    }
    out
}

/// The `pandas` metadata of a written frame, so that pandas reads timestamp columns back in
/// their time zone (and every other column with its dtype).
fn pandas_metadata(frame: &Frame) -> String {
    let columns: Vec<serde_json::Value> = frame
        .columns
        .iter()
        .map(|c| {
            let (pandas_type, numpy_type, metadata) = match &c.data {
                ColumnData::Int(_) => ("int64", "int64", serde_json::Value::Null),
                ColumnData::Float(_) => ("float64", "float64", serde_json::Value::Null),
                ColumnData::Float32(_) => ("float32", "float32", serde_json::Value::Null),
                ColumnData::Bool(_) => ("bool", "bool", serde_json::Value::Null),
                ColumnData::Str(_) => ("unicode", "object", serde_json::Value::Null),
                ColumnData::Timestamp(_, None) => ("datetime", "datetime64[us]", serde_json::Value::Null),
                ColumnData::Timestamp(_, Some(zone)) => (
                    "datetimetz",
                    "datetime64[us]",
                    serde_json::json!({ "timezone": zone.name().unwrap_or_else(|| "UTC".into()) }),
                ),
            };
            serde_json::json!({
                "name": c.name, "field_name": c.name, "pandas_type": pandas_type,
                "numpy_type": numpy_type, "metadata": metadata,
            })
        })
        .collect();
    serde_json::json!({
        "index_columns": [], "column_indexes": [], "columns": columns,
        "creator": { "library": "chronos2", "version": env!("CARGO_PKG_VERSION") },
    })
    .to_string()
}

fn from_epoch(value: i64, per_second: i64) -> Option<NaiveDateTime> {
    let secs = value.div_euclid(per_second);
    let frac = value.rem_euclid(per_second);
    let nanos = (frac as i128 * 1_000_000_000 / per_second as i128) as u32;
    DateTime::from_timestamp(secs, nanos).map(|t| t.naive_utc())
}

/// Reads every value of a column chunk, calling `push` with `None` for nulls.
fn read_all<T: DataType>(
    mut reader: ColumnReaderImpl<T>,
    max_def: i16,
    mut push: impl FnMut(Option<T::T>),
) -> std::result::Result<(), String>
where
    T::T: Clone,
{
    let mut defs: Vec<i16> = Vec::new();
    let mut values: Vec<T::T> = Vec::new();
    loop {
        defs.clear();
        values.clear();
        let (records, _, levels) =
            reader.read_records(8192, Some(&mut defs), None, &mut values).map_err(|e| e.to_string())?;
        if records == 0 {
            break;
        }
        if max_def == 0 {
            values.drain(..).for_each(|v| push(Some(v)));
        } else {
            let mut it = values.drain(..);
            for &d in &defs[..levels] {
                if d == max_def {
                    push(Some(it.next().ok_or("fewer values than definition levels")?));
                } else {
                    push(None);
                }
            }
        }
    }
    Ok(())
}

/// Parquet bytes of a flat frame (snappy, one row group): strings as UTF-8, floats as DOUBLE/FLOAT,
/// timestamps as `TIMESTAMP(MICROS)` (UTC-adjusted when the column has an offset).
pub(super) fn to_parquet(frame: &Frame) -> std::result::Result<Vec<u8>, String> {
    let mut fields = Vec::with_capacity(frame.columns.len());
    for col in &frame.columns {
        let (physical, logical) = match &col.data {
            ColumnData::Int(_) => (PhysicalType::INT64, None),
            ColumnData::Float(_) => (PhysicalType::DOUBLE, None),
            ColumnData::Float32(_) => (PhysicalType::FLOAT, None),
            ColumnData::Bool(_) => (PhysicalType::BOOLEAN, None),
            ColumnData::Str(_) => (PhysicalType::BYTE_ARRAY, Some(LogicalType::String)),
            ColumnData::Timestamp(_, tz) => {
                (PhysicalType::INT64, Some(LogicalType::timestamp(tz.is_some(), TimeUnit::MICROS)))
            }
        };
        let field = Type::primitive_type_builder(&col.name, physical)
            .with_repetition(Repetition::OPTIONAL)
            .with_logical_type(logical)
            .build()
            .map_err(|e| e.to_string())?;
        fields.push(Arc::new(field));
    }
    let schema = Type::group_type_builder("schema").with_fields(fields).build().map_err(|e| e.to_string())?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_key_value_metadata(Some(vec![KeyValue::new("pandas".to_string(), pandas_metadata(frame))]))
        .build();
    let mut writer =
        SerializedFileWriter::new(Vec::new(), Arc::new(schema), Arc::new(props)).map_err(|e| e.to_string())?;
    let mut rg = writer.next_row_group().map_err(|e| e.to_string())?;
    for col in &frame.columns {
        let mut cw = rg.next_column().map_err(|e| e.to_string())?.ok_or("missing column writer")?;
        let result = match &col.data {
            ColumnData::Int(v) => write_opt::<Int64Type>(&mut cw, v.iter().map(|x| Some(*x))),
            ColumnData::Float(v) => write_opt::<DoubleType>(&mut cw, v.iter().map(|x| (!x.is_nan()).then_some(*x))),
            ColumnData::Float32(v) => write_opt::<FloatType>(&mut cw, v.iter().map(|x| (!x.is_nan()).then_some(*x))),
            ColumnData::Bool(v) => write_opt::<parquet::data_type::BoolType>(&mut cw, v.iter().copied()),
            ColumnData::Str(v) => {
                write_opt::<ByteArrayType>(&mut cw, v.iter().map(|s| s.as_deref().map(ByteArray::from)))
            }
            ColumnData::Timestamp(v, _) => {
                write_opt::<Int64Type>(&mut cw, v.iter().map(|t| t.map(|t| t.and_utc().timestamp_micros())))
            }
        };
        result?;
        cw.close().map_err(|e| e.to_string())?;
    }
    rg.close().map_err(|e| e.to_string())?;
    writer.into_inner().map_err(|e| e.to_string())
}

fn write_opt<T: DataType>(
    cw: &mut parquet::file::writer::SerializedColumnWriter<'_>,
    values: impl Iterator<Item = Option<T::T>>,
) -> std::result::Result<(), String> {
    let mut defs = Vec::new();
    let mut present = Vec::new();
    for v in values {
        match v {
            Some(x) => {
                defs.push(1);
                present.push(x);
            }
            None => defs.push(0),
        }
    }
    cw.typed::<T>().write_batch(&present, Some(&defs), None).map_err(|e| e.to_string())?;
    Ok(())
}

/// Writes list columns (one row per entry) for embeddings: `item_id`, `target_name`, `loc`,
/// `scale` and `embedding` as `list<float>` or `list<list<float>>`.
pub(crate) fn embeddings_to_parquet(
    id_column: &str,
    ids: &ColumnData,
    target_names: &[String],
    loc: &[f32],
    scale: &[f32],
    embeddings: &[Vec<Vec<f32>>],
    nested: bool,
) -> std::result::Result<Vec<u8>, String> {
    let e = |e: parquet::errors::ParquetError| e.to_string();
    let prim = |name: &str, physical: PhysicalType, repetition: Repetition, logical: Option<LogicalType>| {
        Type::primitive_type_builder(name, physical)
            .with_repetition(repetition)
            .with_logical_type(logical)
            .build()
            .map(Arc::new)
    };
    let list = |name: &str, element: Arc<Type>| -> parquet::errors::Result<Arc<Type>> {
        let repeated = Type::group_type_builder("list")
            .with_repetition(Repetition::REPEATED)
            .with_fields(vec![element])
            .build()?;
        Type::group_type_builder(name)
            .with_repetition(Repetition::REQUIRED)
            .with_logical_type(Some(LogicalType::List))
            .with_fields(vec![Arc::new(repeated)])
            .build()
            .map(Arc::new)
    };
    let id_field = match ids {
        ColumnData::Int(_) => prim(id_column, PhysicalType::INT64, Repetition::REQUIRED, None),
        _ => prim(id_column, PhysicalType::BYTE_ARRAY, Repetition::OPTIONAL, Some(LogicalType::String)),
    }
    .map_err(e)?;
    let float = prim("element", PhysicalType::FLOAT, Repetition::REQUIRED, None).map_err(e)?;
    let embedding =
        if nested { list("embedding", list("element", float).map_err(e)?) } else { list("embedding", float) }
            .map_err(e)?;
    let fields = vec![
        id_field,
        prim("target_name", PhysicalType::BYTE_ARRAY, Repetition::REQUIRED, Some(LogicalType::String)).map_err(e)?,
        prim("loc", PhysicalType::FLOAT, Repetition::REQUIRED, None).map_err(e)?,
        prim("scale", PhysicalType::FLOAT, Repetition::REQUIRED, None).map_err(e)?,
        embedding,
    ];
    let schema = Type::group_type_builder("schema").with_fields(fields).build().map_err(e)?;
    let props = WriterProperties::builder().set_compression(Compression::SNAPPY).build();
    let mut writer =
        SerializedFileWriter::new(Vec::new(), Arc::new(schema), Arc::new(props)).map_err(|e| e.to_string())?;
    let mut rg = writer.next_row_group().map_err(|e| e.to_string())?;
    let n = target_names.len();
    // id
    {
        let mut cw = rg.next_column().map_err(|e| e.to_string())?.ok_or("missing column")?;
        match ids {
            ColumnData::Int(v) => {
                cw.typed::<Int64Type>().write_batch(v, None, None).map_err(|e| e.to_string())?;
            }
            other => {
                let labels = (0..n).map(|i| other.label_at(i).map(|s| ByteArray::from(s.as_str())));
                write_opt::<ByteArrayType>(&mut cw, labels)?;
            }
        }
        cw.close().map_err(|e| e.to_string())?;
    }
    {
        let mut cw = rg.next_column().map_err(|e| e.to_string())?.ok_or("missing column")?;
        let names: Vec<ByteArray> = target_names.iter().map(|s| ByteArray::from(s.as_str())).collect();
        cw.typed::<ByteArrayType>().write_batch(&names, None, None).map_err(|e| e.to_string())?;
        cw.close().map_err(|e| e.to_string())?;
    }
    for values in [loc, scale] {
        let mut cw = rg.next_column().map_err(|e| e.to_string())?.ok_or("missing column")?;
        cw.typed::<FloatType>().write_batch(values, None, None).map_err(|e| e.to_string())?;
        cw.close().map_err(|e| e.to_string())?;
    }
    {
        let mut cw = rg.next_column().map_err(|e| e.to_string())?.ok_or("missing column")?;
        let (mut vals, mut defs, mut reps) = (Vec::new(), Vec::new(), Vec::new());
        for vectors in embeddings {
            if nested {
                // def: 0 = empty outer list, 1 = empty inner list, 2 = value; rep: 0 new row, 1 new inner list, 2 same inner list.
                if vectors.is_empty() {
                    defs.push(0);
                    reps.push(0);
                }
                for (j, vector) in vectors.iter().enumerate() {
                    if vector.is_empty() {
                        defs.push(1);
                        reps.push(if j == 0 { 0 } else { 1 });
                    }
                    for (k, &x) in vector.iter().enumerate() {
                        vals.push(x);
                        defs.push(2);
                        reps.push(if k > 0 {
                            2
                        } else if j > 0 {
                            1
                        } else {
                            0
                        });
                    }
                }
            } else {
                let vector = vectors.first().map(Vec::as_slice).unwrap_or(&[]);
                if vector.is_empty() {
                    defs.push(0);
                    reps.push(0);
                }
                for (k, &x) in vector.iter().enumerate() {
                    vals.push(x);
                    defs.push(1);
                    reps.push(if k > 0 { 1 } else { 0 });
                }
            }
        }
        cw.typed::<FloatType>().write_batch(&vals, Some(&defs), Some(&reps)).map_err(|e| e.to_string())?;
        cw.close().map_err(|e| e.to_string())?;
    }
    rg.close().map_err(|e| e.to_string())?;
    writer.into_inner().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_flat_frame() {
        let mut f = Frame::new();
        f.push("id", ColumnData::Int(vec![1, 2, 3]));
        f.push("x", ColumnData::Float(vec![1.5, f64::NAN, -2.0]));
        f.push("y", ColumnData::Float32(vec![0.25, 1.0, f32::NAN]));
        f.push("s", ColumnData::Str(vec![Some("a".into()), None, Some("c".into())]));
        f.push("b", ColumnData::Bool(vec![Some(true), None, Some(false)]));
        let t = NaiveDate::from_ymd_opt(2024, 1, 3).unwrap().and_hms_milli_opt(12, 0, 0, 250).unwrap();
        f.push("t", ColumnData::Timestamp(vec![Some(t), None, Some(t)], None));
        let bytes = to_parquet(&f).unwrap();
        let dir = std::env::temp_dir().join(format!("chronos2-pq-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f.parquet");
        std::fs::write(&path, bytes).unwrap();
        let back = read_parquet(&path).unwrap();
        assert_eq!(back.names(), f.names());
        assert_eq!(back.column("id").unwrap().data, f.column("id").unwrap().data);
        assert_eq!(back.column("s").unwrap().data, f.column("s").unwrap().data);
        assert_eq!(back.column("b").unwrap().data, f.column("b").unwrap().data);
        assert_eq!(back.column("t").unwrap().data, f.column("t").unwrap().data);
        assert_eq!(back.column("x").unwrap().data.label_at(0).unwrap(), "1.5");
        assert!(back.column("x").unwrap().data.f64_at(1).is_nan());
        assert_eq!(back.column("y").unwrap().data.f64_at(0), 0.25);
    }
}
