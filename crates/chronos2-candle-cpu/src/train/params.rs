//! The trainable parameters of a training model, by name.

use candle_core::Var;

/// What a trainable parameter is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamRole {
    /// A parameter of the base model (Hugging Face key; `shared.weight` is its [REG] row).
    Base,
    /// LoRA `A` `(r, in)` of the linear `module`.
    LoraA(String),
    /// LoRA `B` `(out, r)` of the linear `module`.
    LoraB(String),
}

/// One trainable parameter.
#[derive(Debug, Clone)]
pub struct TrainParam {
    /// Hugging Face key (base) or PEFT key (`base_model.model.{module}.lora_{A|B}.weight`).
    pub name: String,
    pub var: Var,
    pub role: ParamRole,
}

/// Parameters registered while the model is built, in build order, and every linear's name.
#[derive(Debug, Default)]
pub struct ParamStore {
    pub params: Vec<TrainParam>,
    pub linear_modules: Vec<String>,
}

impl ParamStore {
    pub fn push(&mut self, name: &str, var: Var, role: ParamRole) {
        self.params.push(TrainParam { name: name.to_string(), var, role });
    }
}
