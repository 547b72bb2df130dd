//! The files of a model directory (as Hugging Face writes them).

/// The model's configuration.
pub const CONFIG_FILE: &str = "config.json";
/// The model's weights.
pub const WEIGHTS_FILE: &str = "model.safetensors";
