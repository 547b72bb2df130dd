//! The DataFrame layer: long-format tables as the reference's `predict_df` / `embed_df` take and
//! give them. This module is its one public face; its parts are private:
//!
//! - `frame`: a minimal column table ([`Frame`]) read from CSV / Parquet and written as CSV,
//!   Parquet or JSON records, with timestamps and time zones as pandas reads them;
//! - `freq`: pandas frequency aliases ([`Freq`]), `pandas.infer_freq` and forecast timestamps;
//! - `dataframe`: tables -> pipeline items ([`prepare_predict`], [`prepare_embed`]) and results
//!   -> tables ([`forecast_frame`], [`embedding_entries`]);
//! - `caller`: who reads the messages ([`Caller`]: the CLI or the Python package);
//! - `options`: the options of `predict_df` / `embed_df` and the defaults and names shared by the
//!   CLI and the Python package ([`DEFAULT_QUANTILE_LEVELS`], [`pooling_name`], ...);
//! - `embeddings`: the embeddings of a table ([`EmbeddingTable`]) and their JSON / Parquet layout.
//!
//! The model call itself is [`crate::Chronos2::predict_df`] / [`crate::Chronos2::embed_df`].

mod caller;
mod dataframe;
mod embeddings;
mod frame;
mod freq;
mod options;

pub use caller::Caller;
pub use dataframe::{
    embedding_entries, forecast_frame, level_column, prepare_embed, prepare_embed_for, prepare_predict,
    prepare_predict_for, Columns, EmbeddingEntry, PreparedFrame, PREDICTIONS_COLUMN, TARGET_NAME_COLUMN,
};
pub use embeddings::EmbeddingTable;
pub use frame::{check_writable, format_timestamp, parse_timestamp, Column, ColumnData, Format, Frame, TzOffset, Zone};
pub use freq::{infer_freq, infer_freq_zoned, Freq, FreqParseError, MonthDay, OffsetKind};
pub use options::{
    parse_pooling, parse_quantile_levels, pooling_name, EmbedDfOptions, PredictDfOptions, DEFAULT_POOLING,
    DEFAULT_QUANTILE_LEVELS, POOLING_NAMES,
};
