//! The trainable parameters of an MLX training model: their names, shapes and current values,
//! and the arrays they stand for while `value_and_grad` traces the loss.

use crate::MlxTensor;

/// One trainable parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MlxTrainParam {
    /// Hugging Face key (base) or PEFT key (`base_model.model.{module}.lora_{A|B}.weight`).
    pub name: String,
    pub shape: Vec<usize>,
}

/// Parameters registered while the model is built (in build order), their values, and every
/// linear's name.
#[derive(Debug, Default)]
pub struct ParamStore {
    pub params: Vec<MlxTrainParam>,
    /// The current value of each parameter.
    pub values: Vec<MlxTensor>,
    /// While `value_and_grad` traces the loss: the arrays it differentiates with respect to, one
    /// per parameter, which the graph uses in place of [`ParamStore::values`].
    pub bound: Option<Vec<MlxTensor>>,
    pub linear_modules: Vec<String>,
}

impl ParamStore {
    /// Registers a parameter; returns its index.
    pub fn push(&mut self, name: &str, shape: &[usize], value: MlxTensor) -> usize {
        self.params.push(MlxTrainParam { name: name.to_string(), shape: shape.to_vec() });
        self.values.push(value);
        self.params.len() - 1
    }

    /// The array parameter `index` stands for now.
    pub fn get(&self, index: usize) -> MlxTensor {
        match &self.bound {
            Some(bound) => bound[index].clone(),
            None => self.values[index].clone(),
        }
    }
}
