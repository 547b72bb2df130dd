//! Who reads the table layer's messages, and the one rule that differs between them: the CLI
//! names its flags and files and counts data rows from 1; the Python package names its
//! arguments (`df`, `future_df`, `id_column=`, `freq=`) and counts rows from 0, as pandas does.
//! The CLI also refuses an item whose target is all missing (its forecast would be the model's
//! guess for no history), where the Python package forecasts it, as the reference's `predict_df`.

/// The caller of [`crate::data`]'s table preparation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Caller {
    /// The `chronos2` command line (the default).
    #[default]
    Cli,
    /// The Python package (`Chronos2Pipeline.predict_df` / `embed_df`).
    Python,
}

impl Caller {
    /// The input table: `input` (CLI) or `df` (Python).
    pub fn input(self) -> &'static str {
        match self {
            Caller::Cli => "input",
            Caller::Python => "df",
        }
    }

    /// The input table within a sentence: `the input` or `df`.
    pub fn the_input(self) -> &'static str {
        match self {
            Caller::Cli => "the input",
            Caller::Python => "df",
        }
    }

    /// The table of future covariates within a sentence: `the future file` or `future_df`.
    pub fn the_future(self) -> &'static str {
        match self {
            Caller::Cli => "the future file",
            Caller::Python => "future_df",
        }
    }

    /// The table of future covariates: `future file` or `future_df`.
    pub fn future(self) -> &'static str {
        match self {
            Caller::Cli => "future file",
            Caller::Python => "future_df",
        }
    }

    /// The number a message gives row `index` (0-based) of a table.
    pub fn row(self, index: usize) -> usize {
        match self {
            Caller::Cli => index + 1,
            Caller::Python => index,
        }
    }

    /// How to choose other id / timestamp / target columns.
    pub fn columns_hint(self) -> &'static str {
        match self {
            Caller::Cli => "choose others with --id-column, --timestamp-column, --target",
            Caller::Python => "choose others with id_column=, timestamp_column=, target=",
        }
    }

    /// How to give a frequency, with `example` (e.g. `D`).
    pub fn freq_hint(self, example: &str) -> String {
        match self {
            Caller::Cli if example.is_empty() => "--freq".to_string(),
            Caller::Cli => format!("--freq (e.g. --freq {example})"),
            Caller::Python if example.is_empty() => "freq=".to_string(),
            Caller::Python => format!("freq= (e.g. freq='{example}')"),
        }
    }

    /// Whether an item whose target values are all missing is refused (CLI) or forecast (Python).
    pub fn refuses_unobserved_items(self) -> bool {
        self == Caller::Cli
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_rows_and_hints() {
        assert_eq!((Caller::Cli.input(), Caller::Python.input()), ("input", "df"));
        assert_eq!((Caller::Cli.future(), Caller::Python.future()), ("future file", "future_df"));
        assert_eq!((Caller::Cli.row(0), Caller::Python.row(0)), (1, 0));
        assert_eq!(Caller::Python.freq_hint("D"), "freq= (e.g. freq='D')");
        assert_eq!(Caller::Cli.freq_hint(""), "--freq");
        assert!(Caller::Cli.refuses_unobserved_items() && !Caller::Python.refuses_unobserved_items());
    }
}
