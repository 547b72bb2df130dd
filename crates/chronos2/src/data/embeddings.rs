//! Embeddings of a table ([`crate::Chronos2::embed_df`]): one entry per (item, target), written
//! as JSON or Parquet.

use std::path::Path;

use chronos2_core::pipeline::Pooling;

use super::frame::{self, ColumnData};
use super::{pooling_name, EmbeddingEntry};
use crate::error::{Error, Result};

/// The JSON layout of [`EmbeddingTable::to_json`] (serde writes f32 in shortest form, NaN as
/// `null`).
#[derive(serde::Serialize)]
struct EmbeddingsJson<'a> {
    pooling: &'static str,
    embeddings: Vec<EntryJson<'a>>,
}

#[derive(serde::Serialize)]
struct EntryJson<'a> {
    item_id: serde_json::Value,
    target_name: &'a str,
    loc: f32,
    scale: f32,
    embedding: VectorsJson<'a>,
}

#[derive(serde::Serialize)]
#[serde(untagged)]
enum VectorsJson<'a> {
    One(&'a [f32]),
    All(&'a [Vec<f32>]),
}

/// Embeddings of a table: one entry per (item, target).
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddingTable {
    pub pooling: Pooling,
    /// The item id of each entry (keeps the id column's type).
    pub item_ids: ColumnData,
    pub entries: Vec<EmbeddingEntry>,
}

impl EmbeddingTable {
    /// `{"pooling": "...", "embeddings": [{"item_id", "target_name", "loc", "scale", "embedding"}]}`;
    /// `embedding` is a vector, or a list of vectors for pooling `all`. NaN is `null`.
    pub fn to_json(&self) -> Result<String> {
        let embeddings = self
            .entries
            .iter()
            .enumerate()
            .map(|(i, e)| EntryJson {
                item_id: match &self.item_ids {
                    ColumnData::Int(v) => serde_json::Value::from(v[i]),
                    other => other.label_at(i).map_or(serde_json::Value::Null, serde_json::Value::from),
                },
                target_name: &e.target_name,
                loc: e.loc,
                scale: e.scale,
                embedding: if self.pooling == Pooling::All {
                    VectorsJson::All(&e.vectors)
                } else {
                    VectorsJson::One(e.vectors.first().map(Vec::as_slice).unwrap_or(&[]))
                },
            })
            .collect();
        let table = EmbeddingsJson { pooling: pooling_name(self.pooling), embeddings };
        serde_json::to_string(&table).map_err(|e| Error::InvalidData(format!("cannot encode embeddings as JSON: {e}")))
    }

    /// Parquet bytes: one row per entry, columns `item_id`, `target_name`, `loc`, `scale`,
    /// `embedding` (`list<float>`, or `list<list<float>>` for pooling `all`).
    pub fn to_parquet(&self) -> Result<Vec<u8>> {
        let names: Vec<String> = self.entries.iter().map(|e| e.target_name.clone()).collect();
        let loc: Vec<f32> = self.entries.iter().map(|e| e.loc).collect();
        let scale: Vec<f32> = self.entries.iter().map(|e| e.scale).collect();
        let vectors: Vec<Vec<Vec<f32>>> = self.entries.iter().map(|e| e.vectors.clone()).collect();
        frame::embeddings_to_parquet(
            "item_id",
            &self.item_ids,
            &names,
            &loc,
            &scale,
            &vectors,
            self.pooling == Pooling::All,
        )
        .map_err(|m| Error::InvalidData(format!("cannot encode embeddings as Parquet: {m}")))
    }

    /// Writes `.json` or `.parquet` atomically.
    pub fn write(&self, path: &Path) -> Result<()> {
        let bytes = match frame::Format::from_path(path) {
            Some(frame::Format::Json) => self.to_json()?.into_bytes(),
            Some(frame::Format::Parquet) => self.to_parquet()?,
            _ => {
                return Err(Error::Write {
                    path: path.to_path_buf(),
                    message: "unsupported output type for embeddings (expected .json or .parquet)".into(),
                })
            }
        };
        frame::write_atomic(path, &bytes)
    }
}
