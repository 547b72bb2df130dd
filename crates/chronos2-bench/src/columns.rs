//! The Rust columns of the benchmark matrix, derived from the backend registry: every backend
//! (compiled into this build or not) × every precision it runs × compiled or not where it
//! compiles its forward. `bench-matrix-cells` times them and `cargo xtask bench-matrix` lays them
//! out; neither names a backend.

use chronos2::chronos2_core::dispatch::RouteKey;
use chronos2::{BackendKind, Route};

/// A column: a route of the registry.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub route: Route,
}

impl Column {
    /// Key in the cells JSON: `<route key>_<precision>` (`<backend>_fp32`, `<backend>+compile_int8`).
    pub fn key(&self) -> String {
        format!("{}_{}", self.route.key(), self.route.precision)
    }

    /// Table header: the backend's label, the precision, `+compile` when compiled.
    pub fn header(&self) -> String {
        let compile = if self.route.compile { "+compile" } else { "" };
        format!("{} {}{compile}", self.route.backend.provider().label(), self.route.precision)
    }

    /// The dispatcher's route key of this column (precision apart).
    pub fn route_key(&self) -> RouteKey {
        self.route.key()
    }
}

/// Every column, backend by backend in registry order: uncompiled precisions, then compiled.
pub fn columns() -> Vec<Column> {
    let mut out = Vec::new();
    for kind in BackendKind::ALL {
        for compile in [false, true].into_iter().filter(|&c| !c || kind.compiles_forward()) {
            for &precision in kind.precisions() {
                out.push(Column { route: Route::new(kind, compile, precision) });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_cover_every_backend_precision_and_compile_switch_once() {
        let cols = columns();
        let mut keys: Vec<String> = cols.iter().map(Column::key).collect();
        let n = keys.len();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), n, "duplicate keys");
        for kind in BackendKind::ALL {
            let runs = kind.precisions().len() * if kind.compiles_forward() { 2 } else { 1 };
            assert_eq!(cols.iter().filter(|c| c.route.backend == kind).count(), runs, "{kind}");
        }
        assert_eq!(cols[0].key(), format!("{}_fp32", BackendKind::DEFAULT));
    }
}
