//! A PEFT LoRA `adapter_config.json` read as peft reads it when it loads an adapter: which
//! modules get a LoRA layer (`target_modules` as a list or a regex, `exclude_modules`,
//! `layers_to_transform` / `layers_pattern`) and each module's rank and scaling (`r`,
//! `lora_alpha`, `rank_pattern`, `alpha_pattern`, `use_rslora`), after peft 0.21's
//! `check_target_module_exists`, `get_pattern_key` and `LoraLayer.update_layer`. Settings that
//! change the forward in ways this port does not implement are refused, never ignored.

use regex::Regex;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;

/// `{pattern: value}` in the file's order (peft takes the first pattern that matches).
#[derive(Debug, Default)]
struct Ordered(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct OrderedVisitor;
        impl<'de> Visitor<'de> for OrderedVisitor {
            type Value = Ordered;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Ordered, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = map.next_entry::<String, Value>()? {
                    out.push(entry);
                }
                Ok(Ordered(out))
            }
            fn visit_unit<E>(self) -> std::result::Result<Ordered, E> {
                Ok(Ordered::default())
            }
        }
        deserializer.deserialize_any(OrderedVisitor)
    }
}

/// The two pattern maps, read in file order.
#[derive(Deserialize)]
struct PatternMaps {
    #[serde(default)]
    rank_pattern: Option<Ordered>,
    #[serde(default)]
    alpha_pattern: Option<Ordered>,
}

/// `target_modules` / `exclude_modules`: a regex matched against the whole module name, or names
/// matched exactly or as a dotted suffix.
#[derive(Debug)]
enum Selector {
    Regex(Regex),
    Names(Vec<String>),
}

impl Selector {
    fn matches(&self, key: &str) -> bool {
        match self {
            Selector::Regex(re) => re.is_match(key),
            Selector::Names(names) => names.iter().any(|n| key == n || key.ends_with(&format!(".{n}"))),
        }
    }
}

/// Layer selection: the indices kept and the name(s) before the index.
#[derive(Debug)]
struct Layers {
    indices: Vec<i64>,
    patterns: Vec<Regex>,
}

/// What a PEFT LoRA config says about each module.
#[derive(Debug)]
pub struct PeftLoraConfig {
    r: usize,
    alpha: f64,
    rank_pattern: Vec<(Regex, usize)>,
    alpha_pattern: Vec<(Regex, f64)>,
    use_rslora: bool,
    targets: Selector,
    exclude: Option<Selector>,
    layers: Option<Layers>,
}

fn regex(pattern: &str, what: &str) -> Result<Regex, String> {
    Regex::new(pattern).map_err(|e| format!("`{what}` {pattern:?} is not a regular expression this port can run: {e}"))
}

fn positive_int(v: &Value, what: &str) -> Result<usize, String> {
    match v.as_u64() {
        Some(n) if n > 0 => Ok(n as usize),
        _ => Err(format!("`{what}` must be a positive integer, got {v}")),
    }
}

fn number(v: &Value, what: &str) -> Result<f64, String> {
    v.as_f64().filter(|x| x.is_finite()).ok_or_else(|| format!("`{what}` must be a finite number, got {v}"))
}

fn selector(v: &Value, what: &str) -> Result<Option<Selector>, String> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(Selector::Regex(regex(&format!("^(?:{s})$"), what)?))),
        Value::Array(items) => items
            .iter()
            .map(|x| x.as_str().map(String::from).ok_or_else(|| format!("`{what}` must hold strings, got {x}")))
            .collect::<Result<Vec<_>, _>>()
            .map(|names| Some(Selector::Names(names))),
        other => Err(format!("`{what}` must be a string (a regex) or a list of names, got {other}")),
    }
}

/// Settings that change the forward and are not implemented: refused when set.
const UNSUPPORTED: [&str; 12] = [
    "use_dora",
    "lora_bias",
    "layer_replication",
    "modules_to_save",
    "target_parameters",
    "trainable_token_indices",
    "alora_invocation_tokens",
    "arrow_config",
    "use_bdlora",
    "kasa_config",
    "monteclora_config",
    "use_qalora",
];

fn is_set(v: &Value) -> bool {
    match v {
        Value::Null | Value::Bool(false) => false,
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        _ => true,
    }
}

impl PeftLoraConfig {
    /// Reads `config` (the parsed `adapter_config.json`, whose text is `text`).
    pub fn parse(config: &Value, text: &str) -> Result<Self, String> {
        if config.get("peft_type").and_then(Value::as_str) != Some("LORA") {
            return Err(format!(
                "`peft_type` must be \"LORA\", got {}",
                config.get("peft_type").unwrap_or(&Value::Null)
            ));
        }
        for key in UNSUPPORTED {
            if config.get(key).is_some_and(is_set) {
                return Err(format!("`{key}` is set ({}); this port does not implement it", config[key]));
            }
        }
        if let Some(bias) = config.get("bias").filter(|b| !b.is_null() && b.as_str() != Some("none")) {
            return Err(format!("`bias` is {bias}; only \"none\" is implemented"));
        }
        let r = positive_int(config.get("r").unwrap_or(&Value::Null), "r")?;
        let alpha = number(config.get("lora_alpha").unwrap_or(&Value::Null), "lora_alpha")?;
        let use_rslora = match config.get("use_rslora") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => return Err(format!("`use_rslora` must be true or false, got {other}")),
        };
        let maps: PatternMaps = serde_json::from_str(text).map_err(|e| format!("rank_pattern / alpha_pattern: {e}"))?;
        // get_pattern_key: re.match(rf"(.*\.)?({key})$", module)
        let pattern = |key: &str, what: &str| regex(&format!("^(?:.*\\.)?(?:{key})$"), what);
        let rank_pattern = maps
            .rank_pattern
            .unwrap_or_default()
            .0
            .iter()
            .map(|(k, v)| Ok((pattern(k, "rank_pattern")?, positive_int(v, &format!("rank_pattern[{k:?}]"))?)))
            .collect::<Result<Vec<_>, String>>()?;
        let alpha_pattern = maps
            .alpha_pattern
            .unwrap_or_default()
            .0
            .iter()
            .map(|(k, v)| Ok((pattern(k, "alpha_pattern")?, number(v, &format!("alpha_pattern[{k:?}]"))?)))
            .collect::<Result<Vec<_>, String>>()?;
        let targets = match config.get("target_modules").unwrap_or(&Value::Null) {
            Value::Null => return Err("`target_modules` is missing: peft needs it to know the adapted modules".into()),
            Value::String(s) if s == "all-linear" => {
                return Err("`target_modules` \"all-linear\" is not implemented: list the modules".into())
            }
            other => selector(other, "target_modules")?.expect("not null"),
        };
        let exclude = selector(config.get("exclude_modules").unwrap_or(&Value::Null), "exclude_modules")?;
        let layers = match config.get("layers_to_transform").unwrap_or(&Value::Null) {
            Value::Null => None,
            Value::Array(a) if a.is_empty() => None,
            v => {
                let indices = match v {
                    Value::Array(a) => a.iter().map(Value::as_i64).collect::<Option<Vec<_>>>(),
                    other => other.as_i64().map(|i| vec![i]),
                }
                .ok_or_else(|| format!("`layers_to_transform` must be an integer or a list of integers, got {v}"))?;
                let names: Vec<String> = match config.get("layers_pattern").unwrap_or(&Value::Null) {
                    Value::Null => vec![],
                    Value::String(s) => vec![s.clone()],
                    Value::Array(a) => a
                        .iter()
                        .map(|x| x.as_str().map(String::from))
                        .collect::<Option<Vec<_>>>()
                        .ok_or_else(|| "`layers_pattern` must be a string or a list of strings".to_string())?,
                    other => {
                        return Err(format!("`layers_pattern` must be a string or a list of strings, got {other}"))
                    }
                };
                let patterns = if names.iter().all(String::is_empty) {
                    // the first numbered segment: re.match(r".*?\.[^.]*\.(?P<idx>\d+)\.", key)
                    vec![regex(r"^.*?\.[^.]*\.(?P<idx>\d+)\.", "layers_pattern")?]
                } else {
                    names
                        .iter()
                        .map(|p| regex(&format!(r"^(?:^|.*?\.){p}\.(?P<idx>\d+)\."), "layers_pattern"))
                        .collect::<Result<Vec<_>, _>>()?
                };
                Some(Layers { indices, patterns })
            }
        };
        Ok(PeftLoraConfig { r, alpha, rank_pattern, alpha_pattern, use_rslora, targets, exclude, layers })
    }

    /// Whether peft gives `module` a LoRA layer (`check_target_module_exists`).
    pub fn targets(&self, module: &str) -> bool {
        if self.exclude.as_ref().is_some_and(|e| e.matches(module)) {
            return false;
        }
        let targets = &self.targets;
        match targets {
            Selector::Regex(re) => re.is_match(module),
            Selector::Names(names) if names.iter().any(|n| n == module) => true,
            Selector::Names(_) => {
                if !targets.matches(module) {
                    return false;
                }
                let Some(layers) = &self.layers else { return true };
                let index = layers
                    .patterns
                    .iter()
                    .find_map(|p| p.captures(module))
                    .and_then(|c| c.name("idx").and_then(|m| m.as_str().parse::<i64>().ok()));
                index.is_some_and(|i| layers.indices.contains(&i))
            }
        }
    }

    /// The module's rank: the first matching `rank_pattern`, else `r`.
    pub fn rank(&self, module: &str) -> usize {
        self.rank_pattern.iter().find(|(re, _)| re.is_match(module)).map_or(self.r, |(_, r)| *r)
    }

    /// The module's scaling: `alpha / r` (`alpha / sqrt(r)` with rsLoRA), each from its pattern.
    pub fn scaling(&self, module: &str) -> f32 {
        let alpha = self.alpha_pattern.iter().find(|(re, _)| re.is_match(module)).map_or(self.alpha, |(_, a)| *a);
        let r = self.rank(module) as f64;
        (if self.use_rslora { alpha / r.sqrt() } else { alpha / r }) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<PeftLoraConfig, String> {
        PeftLoraConfig::parse(&serde_json::from_str(text).unwrap(), text)
    }

    #[test]
    fn bad_values_say_which_key_and_what() {
        let e = parse(r#"{"peft_type": "LORA", "r": 8, "lora_alpha": "16", "target_modules": ["q"]}"#).unwrap_err();
        assert_eq!(e, r#"`lora_alpha` must be a finite number, got "16""#);
        let e = parse(r#"{"peft_type": "LORA", "r": 0, "lora_alpha": 16, "target_modules": ["q"]}"#).unwrap_err();
        assert_eq!(e, "`r` must be a positive integer, got 0");
        let e = parse(r#"{"peft_type": "LORA", "r": 8, "lora_alpha": 16, "target_modules": ["q"], "use_dora": true}"#)
            .unwrap_err();
        assert!(e.starts_with("`use_dora` is set (true)"), "{e}");
        let e = parse(r#"{"peft_type": "LORA", "r": 8, "lora_alpha": 16, "target_modules": "(?=q)"}"#).unwrap_err();
        assert!(e.starts_with("`target_modules` \"^(?:(?=q))$\" is not a regular expression"), "{e}");
    }

    #[test]
    fn patterns_apply_in_file_order() {
        let c = parse(
            r#"{"peft_type": "LORA", "r": 8, "lora_alpha": 16, "target_modules": ["q"],
                "rank_pattern": {"z.q": 2, "q": 4}, "alpha_pattern": {"q": 1}}"#,
        )
        .unwrap();
        assert_eq!((c.rank("a.z.q"), c.rank("a.b.q"), c.rank("a.qq")), (2, 4, 8));
        assert_eq!(c.scaling("a.z.q"), 0.5);
        assert_eq!(c.scaling("a.qq"), 2.0);
    }
}
