//! The held-out real series of `eval/real-series/`: `context.csv` and `truth.csv`
//! (`id,timestamp,target`, an empty target is a missing value) and `meta.csv`
//! (`id,source,freq,season,horizon,n_context,n_nan_context`).

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, ensure, Context, Result};

/// One evaluation series.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub id: String,
    pub source: String,
    /// pandas frequency alias (MS, QS, YS, W-SAT, 30min, B, 500ms).
    pub freq: String,
    /// Season length `m` of MASE and the seasonal-naive baseline.
    pub season: usize,
    /// Held-out points `H` (the forecast horizon).
    pub horizon: usize,
    /// The whole history, NaN where missing (the model sees at most its context length of it).
    pub history: Vec<f64>,
    /// The `horizon` held-out values.
    pub truth: Vec<f64>,
}

impl Series {
    pub fn missing(&self) -> usize {
        self.history.iter().filter(|v| v.is_nan()).count()
    }
}

/// Reads the three CSVs of `dir`.
pub fn load(dir: &Path) -> Result<Vec<Series>> {
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))
    };
    parse(&read("context.csv")?, &read("truth.csv")?, &read("meta.csv")?)
}

/// Builds the series, in `meta.csv` order, checking the counts `meta.csv` declares.
pub fn parse(context_csv: &str, truth_csv: &str, meta_csv: &str) -> Result<Vec<Series>> {
    let mut context = read_values(context_csv).context("context.csv")?;
    let mut truth = read_values(truth_csv).context("truth.csv")?;
    let mut reader = csv::Reader::from_reader(meta_csv.as_bytes());
    let headers = reader.headers().context("meta.csv")?.clone();
    let col =
        |name: &str| headers.iter().position(|h| h == name).with_context(|| format!("meta.csv has no column {name:?}"));
    let (c_id, c_source, c_freq, c_season, c_horizon, c_n, c_nan) = (
        col("id")?,
        col("source")?,
        col("freq")?,
        col("season")?,
        col("horizon")?,
        col("n_context")?,
        col("n_nan_context")?,
    );
    let mut out = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let record = record.with_context(|| format!("meta.csv row {}", i + 2))?;
        let field = |c: usize| record.get(c).unwrap_or("").trim();
        let number = |c: usize| -> Result<usize> {
            field(c).parse().with_context(|| format!("meta.csv row {}: bad {:?} {:?}", i + 2, &headers[c], field(c)))
        };
        let id = field(c_id).to_string();
        let history = context.remove(&id).with_context(|| format!("{id}: no rows in context.csv"))?;
        let held_out = truth.remove(&id).with_context(|| format!("{id}: no rows in truth.csv"))?;
        let series = Series {
            source: field(c_source).to_string(),
            freq: field(c_freq).to_string(),
            season: number(c_season)?,
            horizon: number(c_horizon)?,
            history,
            truth: held_out,
            id,
        };
        let (n_context, n_nan) = (number(c_n)?, number(c_nan)?);
        ensure!(series.season >= 1 && series.horizon >= 1, "{}: season and horizon must be positive", series.id);
        ensure!(
            series.history.len() == n_context,
            "{}: {} context points, meta.csv says {n_context}",
            series.id,
            series.history.len()
        );
        ensure!(
            series.missing() == n_nan,
            "{}: {} missing context points, meta.csv says {n_nan}",
            series.id,
            series.missing()
        );
        ensure!(
            series.truth.len() == series.horizon,
            "{}: {} held-out points, meta.csv says horizon {}",
            series.id,
            series.truth.len(),
            series.horizon
        );
        ensure!(series.truth.iter().all(|v| v.is_finite()), "{}: missing held-out values", series.id);
        ensure!(series.history.len() > series.season, "{}: history shorter than one season", series.id);
        out.push(series);
    }
    if let Some(extra) = context.keys().chain(truth.keys()).next() {
        bail!("series {extra:?} is in the data but not in meta.csv");
    }
    Ok(out)
}

/// `id,timestamp,target` rows grouped by id, in file order; timestamps must increase within a
/// series (they are ISO strings of one format, so string order is time order).
fn read_values(text: &str) -> Result<HashMap<String, Vec<f64>>> {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers = reader.headers()?.clone();
    let expected = ["id", "timestamp", "target"];
    ensure!(
        headers.iter().eq(expected.iter().copied()),
        "expected columns {expected:?}, found {:?}",
        headers.iter().collect::<Vec<_>>()
    );
    let mut values: HashMap<String, Vec<f64>> = HashMap::new();
    let mut last_time: HashMap<String, String> = HashMap::new();
    for (i, record) in reader.records().enumerate() {
        let line = i + 2;
        let record = record.with_context(|| format!("line {line}"))?;
        let (id, time, target) = (&record[0], &record[1], record[2].trim());
        let value = if target.is_empty() || target.eq_ignore_ascii_case("nan") {
            f64::NAN
        } else {
            target.parse::<f64>().with_context(|| format!("line {line}: bad target {target:?}"))?
        };
        if let Some(prev) = last_time.get(id) {
            ensure!(prev.as_str() < time, "line {line}: {id} timestamp {time} does not follow {prev}");
        }
        last_time.insert(id.to_string(), time.to_string());
        values.entry(id.to_string()).or_default().push(value);
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONTEXT: &str = "id,timestamp,target\n\
        a,2000-01-01 00:00:00.000,1.5\n\
        a,2000-02-01 00:00:00.000,\n\
        a,2000-03-01 00:00:00.000,-2e3\n\
        b,2001-01-01 00:00:00.000,4\n\
        b,2002-01-01 00:00:00.000,5\n";
    const TRUTH: &str = "id,timestamp,target\n\
        a,2000-04-01 00:00:00.000,3\n\
        b,2003-01-01 00:00:00.000,6\n\
        b,2004-01-01 00:00:00.000,7\n";
    const META: &str = "id,source,freq,season,horizon,n_context,n_nan_context\n\
        b,\"pkg.b (yearly, x)\",YS,1,2,2,0\n\
        a,pkg.a,MS,2,1,3,1\n";

    #[test]
    fn parses_in_meta_order_with_missing_values() {
        let s = parse(CONTEXT, TRUTH, META).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].id, "b");
        assert_eq!(s[0].source, "pkg.b (yearly, x)");
        assert_eq!((s[0].freq.as_str(), s[0].season, s[0].horizon), ("YS", 1, 2));
        assert_eq!(s[0].history, vec![4.0, 5.0]);
        assert_eq!(s[0].truth, vec![6.0, 7.0]);
        assert_eq!(s[1].id, "a");
        assert_eq!(s[1].history[0], 1.5);
        assert!(s[1].history[1].is_nan());
        assert_eq!(s[1].history[2], -2000.0);
        assert_eq!(s[1].missing(), 1);
        assert_eq!(s[1].truth, vec![3.0]);
    }

    #[test]
    fn rejects_inconsistent_data() {
        let wrong_horizon = META.replace("b,\"pkg.b (yearly, x)\",YS,1,2,2,0", "b,x,YS,1,3,2,0");
        assert!(parse(CONTEXT, TRUTH, &wrong_horizon).unwrap_err().to_string().contains("horizon"));
        let wrong_nan = META.replace("MS,2,1,3,1", "MS,2,1,3,0");
        assert!(parse(CONTEXT, TRUTH, &wrong_nan).is_err());
        let unsorted = CONTEXT.replace("2002-01-01", "2000-06-01");
        assert!(format!("{:#}", parse(&unsorted, TRUTH, META).unwrap_err()).contains("does not follow"));
        let extra = format!("{CONTEXT}c,2000-01-01 00:00:00.000,1\n");
        assert!(parse(&extra, TRUTH, META).is_err());
        assert!(parse(&CONTEXT.replace("1.5", "abc"), TRUTH, META).is_err());
    }

    #[test]
    fn bundled_eval_set_loads() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../eval/real-series");
        let s = load(&dir).unwrap();
        assert_eq!(s.len(), 23);
        let co2 = s.iter().find(|s| s.id == "co2_monthly").unwrap();
        assert_eq!((co2.season, co2.horizon, co2.history.len(), co2.missing()), (12, 24, 502, 5));
        assert_eq!(co2.truth[0], 369.02);
        let total: usize = s.iter().map(|s| s.horizon).sum();
        assert_eq!(total, 388);
    }
}
