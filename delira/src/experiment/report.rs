//! Results of folds and their aggregation: a CSV table, a Markdown and an HTML report.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// What one fold produced: its final metrics (on its test part) and its learning curves.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FoldResult {
    /// The fold's number.
    pub fold: usize,
    /// Final metrics by name (`dice_mean`, `accuracy`, ...).
    pub metrics: BTreeMap<String, f64>,
    /// Learning curves by tag (`train/loss`, `valid/dice_mean`): `(epoch, value)` points.
    #[serde(default)]
    pub history: BTreeMap<String, Vec<(u64, f64)>>,
    /// Epochs trained.
    #[serde(default)]
    pub epochs: u64,
    /// Why training stopped early, if it did.
    #[serde(default)]
    pub stopped: Option<String>,
}

impl FoldResult {
    /// A result with metrics only.
    pub fn new(fold: usize, metrics: BTreeMap<String, f64>) -> Self {
        Self {
            fold,
            metrics,
            ..Self::default()
        }
    }
}

/// Mean and spread of one metric across folds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MetricStats {
    /// Folds that report the metric with a finite value.
    pub n: usize,
    /// Their mean.
    pub mean: f64,
    /// The *sample* standard deviation (divisor `n - 1`); `None` for a single fold.
    pub sd: Option<f64>,
    /// The smallest value.
    pub min: f64,
    /// The largest value.
    pub max: f64,
}

impl MetricStats {
    /// The statistics of `values`, ignoring values that are not finite; `None` when none is.
    ///
    /// ```
    /// use delira::experiment::MetricStats;
    /// let s = MetricStats::of(&[1.0, 2.0, 4.0, f64::NAN]).unwrap();
    /// assert_eq!((s.n, s.min, s.max), (3, 1.0, 4.0));
    /// assert!((s.mean - 7.0 / 3.0).abs() < 1e-15);
    /// assert!((s.sd.unwrap() - (7.0_f64 / 3.0).sqrt()).abs() < 1e-15); // Σ(x - m)² = 14/3, / (n - 1)
    /// assert_eq!(MetricStats::of(&[0.5]).unwrap().sd, None);
    /// ```
    pub fn of(values: &[f64]) -> Option<Self> {
        let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        if finite.is_empty() {
            return None;
        }
        let n = finite.len();
        let mean = finite.iter().sum::<f64>() / n as f64;
        let sd = (n > 1).then(|| {
            let squares: f64 = finite.iter().map(|v| (v - mean).powi(2)).sum();
            (squares / (n - 1) as f64).sqrt()
        });
        let min = finite.iter().copied().fold(f64::INFINITY, f64::min);
        let max = finite.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        Some(Self {
            n,
            mean,
            sd,
            min,
            max,
        })
    }

    /// `mean ± sd` with four decimals (`mean` alone for one fold).
    pub fn display(&self) -> String {
        match self.sd {
            Some(sd) => format!("{:.4} ± {sd:.4}", self.mean),
            None => format!("{:.4}", self.mean),
        }
    }
}

/// The results of a run's folds, with per-metric statistics.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    experiment: String,
    folds: Vec<FoldResult>,
    stats: BTreeMap<String, MetricStats>,
}

impl Summary {
    /// Aggregates fold results (sorted by fold number).
    pub fn new(experiment: &str, mut folds: Vec<FoldResult>) -> Self {
        folds.sort_by_key(|f| f.fold);
        let names: std::collections::BTreeSet<&String> =
            folds.iter().flat_map(|f| f.metrics.keys()).collect();
        let stats = names
            .into_iter()
            .filter_map(|name| {
                let values: Vec<f64> = folds
                    .iter()
                    .filter_map(|f| f.metrics.get(name))
                    .copied()
                    .collect();
                MetricStats::of(&values).map(|s| (name.clone(), s))
            })
            .collect();
        Self {
            experiment: experiment.to_owned(),
            folds,
            stats,
        }
    }

    /// The folds, in order.
    pub fn folds(&self) -> &[FoldResult] {
        &self.folds
    }

    /// The statistics of a metric.
    pub fn stats(&self, metric: &str) -> Option<&MetricStats> {
        self.stats.get(metric)
    }

    /// Every metric that some fold reports, sorted.
    pub fn metric_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .folds
            .iter()
            .flat_map(|f| f.metrics.keys().map(String::as_str))
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// The table as CSV: a header `fold,<metrics...>`, one row per fold, then rows `mean` and
    /// `sd` (sample standard deviation; empty for one fold). Values are written in full
    /// precision; a metric a fold lacks is an empty cell.
    ///
    /// ```
    /// use delira::experiment::{FoldResult, Summary};
    /// use std::collections::BTreeMap;
    ///
    /// let folds = vec![
    ///     FoldResult::new(1, BTreeMap::from([("dice".into(), 0.5), ("loss".into(), 2.0)])),
    ///     FoldResult::new(0, BTreeMap::from([("dice".into(), 0.25)])),
    /// ];
    /// let csv = Summary::new("demo", folds).to_csv();
    /// // sd as Python's `statistics.stdev([0.25, 0.5])`
    /// assert_eq!(csv, "fold,dice,loss\n0,0.25,\n1,0.5,2\nmean,0.375,2\nsd,0.1767766952966369,\n");
    /// ```
    pub fn to_csv(&self) -> String {
        let names = self.metric_names();
        let mut out = format!("fold,{}\n", names.join(","));
        for fold in &self.folds {
            let cells: Vec<String> = names
                .iter()
                .map(|n| {
                    fold.metrics
                        .get(*n)
                        .map(|v| format!("{v}"))
                        .unwrap_or_default()
                })
                .collect();
            let _ = writeln!(out, "{},{}", fold.fold, cells.join(","));
        }
        let row = |value: &dyn Fn(&MetricStats) -> Option<f64>| -> String {
            names
                .iter()
                .map(|n| {
                    self.stats(n)
                        .and_then(value)
                        .map(|v| format!("{v}"))
                        .unwrap_or_default()
                })
                .collect::<Vec<_>>()
                .join(",")
        };
        let _ = writeln!(out, "mean,{}", row(&|s| Some(s.mean)));
        let _ = writeln!(out, "sd,{}", row(&|s| s.sd));
        out
    }

    /// A Markdown report: the per-fold table, `mean ± sd` (sample standard deviation) and the
    /// learning-curve plots given as paths relative to the report.
    pub fn to_markdown(&self, plots: &[PathBuf]) -> String {
        let names = self.metric_names();
        let mut out = format!("# {}\n\n{} folds.\n\n", self.experiment, self.folds.len());
        let _ = writeln!(out, "| fold | {} |", names.join(" | "));
        let _ = writeln!(out, "|---:|{}", "---:|".repeat(names.len()));
        for fold in &self.folds {
            let cells: Vec<String> = names.iter().map(|n| cell(fold, n)).collect();
            let _ = writeln!(out, "| {} | {} |", fold.fold, cells.join(" | "));
        }
        let summary: Vec<String> = names
            .iter()
            .map(|n| {
                self.stats(n)
                    .map_or_else(|| "–".to_owned(), MetricStats::display)
            })
            .collect();
        let _ = writeln!(out, "| mean ± sd | {} |", summary.join(" | "));
        out.push_str("\nsd is the sample standard deviation (divisor n − 1).\n");
        if !plots.is_empty() {
            out.push_str("\n## Learning curves\n\n");
            for plot in plots {
                let name = plot
                    .file_stem()
                    .map(|s| s.to_string_lossy())
                    .unwrap_or_default();
                let _ = writeln!(out, "![{name}]({})\n", plot.display());
            }
        }
        out
    }

    /// The same report as a self-contained HTML page (plots linked by relative path).
    pub fn to_html(&self, plots: &[PathBuf]) -> String {
        let names = self.metric_names();
        let title = escape(&self.experiment);
        let mut out = format!(
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title>\n\
             <style>body{{font-family:sans-serif}}td,th{{padding:2px 10px;text-align:right}}\
             table{{border-collapse:collapse}}tr:last-child{{border-top:1px solid}}</style>\n\
             </head><body>\n<h1>{title}</h1>\n<table>\n<tr><th>fold</th>"
        );
        for name in &names {
            let _ = write!(out, "<th>{}</th>", escape(name));
        }
        out.push_str("</tr>\n");
        for fold in &self.folds {
            let _ = write!(out, "<tr><td>{}</td>", fold.fold);
            for name in &names {
                let _ = write!(out, "<td>{}</td>", cell(fold, name));
            }
            out.push_str("</tr>\n");
        }
        out.push_str("<tr><td>mean ± sd</td>");
        for name in &names {
            let cell = self
                .stats(name)
                .map_or_else(|| "–".to_owned(), MetricStats::display);
            let _ = write!(out, "<td>{cell}</td>");
        }
        out.push_str(
            "</tr>\n</table>\n<p>sd is the sample standard deviation (divisor n − 1).</p>\n",
        );
        for plot in plots {
            let _ = writeln!(
                out,
                "<p><img src=\"{}\"></p>",
                escape(&plot.display().to_string())
            );
        }
        out.push_str("</body></html>\n");
        out
    }

    /// The learning curves of all folds, merged per tag with one line per fold: keys are
    /// `"<tag>/fold K"` grouped by tag, ready for [`crate::logging::plot::learning_curve`].
    pub(crate) fn curves_by_tag(&self) -> BTreeMap<&str, Lines<'_>> {
        let mut by_tag: BTreeMap<&str, Lines<'_>> = BTreeMap::new();
        for fold in &self.folds {
            for (tag, points) in &fold.history {
                by_tag
                    .entry(tag.as_str())
                    .or_default()
                    .push((format!("fold {}", fold.fold), points.as_slice()));
            }
        }
        by_tag
    }
}

/// One fold's value of a metric for the reports, four decimals.
fn cell(fold: &FoldResult, name: &str) -> String {
    fold.metrics
        .get(name)
        .map_or_else(|| "–".to_owned(), |v| format!("{v:.4}"))
}

/// Named lines of one learning-curve plot.
pub(crate) type Lines<'a> = Vec<(String, &'a [(u64, f64)])>;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
