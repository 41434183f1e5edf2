//! The run folder.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::overrides::{changed_keys, to_table};
use super::{ExperimentError, FoldResult, Manifest, Summary};
use crate::config::{self, Format};
use crate::data::split::Split;

/// One run of an experiment on disk: `<runs>/<experiment>/<id>/` (see the [module
/// documentation](super) for what it holds).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunDir {
    root: PathBuf,
    experiment: String,
}

impl RunDir {
    /// Makes (or joins) the run `id` of `experiment` under `base`. Without an id, the run is
    /// named after the current UTC time (`20261204T192244Z`, with `-1`, `-2`, ... appended when
    /// that folder exists already); with one, an existing run of that name is joined, which is
    /// how separate fold jobs share a run.
    pub fn create(
        base: &Path,
        experiment: &str,
        id: Option<&str>,
    ) -> Result<Self, ExperimentError> {
        let parent = base.join(experiment);
        let root = if let Some(id) = id {
            parent.join(id)
        } else {
            let stamp = run_id_now();
            let mut candidate = parent.join(&stamp);
            let mut n = 0;
            while candidate.exists() {
                n += 1;
                candidate = parent.join(format!("{stamp}-{n}"));
            }
            candidate
        };
        std::fs::create_dir_all(&root).map_err(ExperimentError::io(&root))?;
        Ok(Self {
            root,
            experiment: experiment.to_owned(),
        })
    }

    /// Opens the existing run `id` of `experiment` under `base`, or its newest run when `id` is
    /// `None`: the one whose manifest was created last (folder names break ties, and order runs
    /// without a manifest, before those with one).
    pub fn open(base: &Path, experiment: &str, id: Option<&str>) -> Result<Self, ExperimentError> {
        let parent = base.join(experiment);
        let root = if let Some(id) = id {
            parent.join(id)
        } else {
            let entries = std::fs::read_dir(&parent).map_err(ExperimentError::io(&parent))?;
            let mut names: Vec<(String, String)> = entries
                .filter_map(Result::ok)
                .filter(|e| e.path().is_dir())
                .filter_map(|e| e.file_name().into_string().ok())
                .map(|name| {
                    let created = Manifest::load(&parent.join(&name).join("manifest.json"))
                        .map(|m| m.created)
                        .unwrap_or_default();
                    (created, name)
                })
                .collect();
            names.sort();
            let (_, newest) = names.pop().ok_or_else(|| ExperimentError::Io {
                path: parent.clone(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no run folder"),
            })?;
            parent.join(newest)
        };
        if !root.is_dir() {
            return Err(ExperimentError::Io {
                path: root,
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such run"),
            });
        }
        Ok(Self {
            root,
            experiment: experiment.to_owned(),
        })
    }

    /// The run's folder.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// The folder of fold `k` (the trainer's run folder); not created here.
    pub fn fold_dir(&self, fold: usize) -> PathBuf {
        self.root.join(format!("fold-{fold}"))
    }

    /// `config.toml`.
    pub fn config_path(&self) -> PathBuf {
        self.root.join("config.toml")
    }

    /// `split.json`.
    pub fn split_path(&self) -> PathBuf {
        self.root.join("split.json")
    }

    /// `manifest.json`.
    pub fn manifest_path(&self) -> PathBuf {
        self.root.join("manifest.json")
    }

    /// Writes `config.toml` the first time; later, checks that `config` equals it, so that every
    /// job of a run trains with the same settings.
    pub fn pin_config<T: Serialize>(&self, config: &T) -> Result<(), ExperimentError> {
        let path = self.config_path();
        let text = config::to_string(config, Format::Toml)?;
        if path.is_file() {
            let pinned: toml::Table = config::from_path(&path)?;
            let changed = changed_keys(&pinned, &to_table(config)?);
            if changed.is_empty() {
                return Ok(());
            }
            return Err(ExperimentError::ConfigMismatch { path, changed });
        }
        crate::io::write_atomically(&path, text.as_bytes()).map_err(ExperimentError::io(&path))
    }

    /// Reads `config.toml`.
    pub fn read_config<T: DeserializeOwned>(&self) -> Result<T, ExperimentError> {
        Ok(config::from_path(self.config_path())?)
    }

    /// The run's split: `split.json` when it exists (checked to cover `n` samples), else the one
    /// `make` returns, saved there first.
    pub fn pin_split(
        &self,
        n: usize,
        make: impl FnOnce() -> Result<Split, ExperimentError>,
    ) -> Result<Split, ExperimentError> {
        let path = self.split_path();
        if path.is_file() {
            let split = Split::load(&path)?;
            if split.n() != n {
                return Err(ExperimentError::Damaged {
                    path,
                    message: format!(
                        "it splits {} samples but the data has {n}; the data changed since the run began",
                        split.n()
                    ),
                });
            }
            return Ok(split);
        }
        let split = make()?;
        split.save(&path)?;
        Ok(split)
    }

    /// Writes `manifest.json` unless the run has one already; returns the run's manifest.
    pub fn pin_manifest(&self, manifest: Manifest) -> Result<Manifest, ExperimentError> {
        let path = self.manifest_path();
        if path.is_file() {
            return Manifest::load(&path);
        }
        manifest.save(&path)?;
        Ok(manifest)
    }

    /// Writes `fold-K/result.json`.
    pub fn write_fold_result(&self, result: &FoldResult) -> Result<(), ExperimentError> {
        let dir = self.fold_dir(result.fold);
        std::fs::create_dir_all(&dir).map_err(ExperimentError::io(&dir))?;
        let path = dir.join("result.json");
        let text = serde_json::to_string_pretty(result).map_err(|e| ExperimentError::Damaged {
            path: path.clone(),
            message: e.to_string(),
        })?;
        crate::io::write_atomically(&path, text.as_bytes()).map_err(ExperimentError::io(&path))
    }

    /// The results of every finished fold (`fold-K/result.json`), by fold number.
    pub fn read_fold_results(&self) -> Result<Vec<FoldResult>, ExperimentError> {
        let entries = std::fs::read_dir(&self.root).map_err(ExperimentError::io(&self.root))?;
        let mut results = Vec::new();
        for entry in entries {
            let entry = entry.map_err(ExperimentError::io(&self.root))?;
            let name = entry.file_name();
            let Some(fold) = name.to_str().and_then(|n| n.strip_prefix("fold-")) else {
                continue;
            };
            let path = entry.path().join("result.json");
            if fold.parse::<usize>().is_err() || !path.is_file() {
                continue;
            }
            let text = std::fs::read_to_string(&path).map_err(ExperimentError::io(&path))?;
            let result: FoldResult =
                serde_json::from_str(&text).map_err(|e| ExperimentError::Damaged {
                    path: path.clone(),
                    message: e.to_string(),
                })?;
            results.push(result);
        }
        results.sort_by_key(|r| r.fold);
        Ok(results)
    }

    /// Aggregates the finished folds: writes `results.csv`, learning-curve plots under
    /// `plots/` (one per tag, a line per fold), `report.md` and `report.html`.
    pub fn aggregate(&self) -> Result<Summary, ExperimentError> {
        let results = self.read_fold_results()?;
        if results.is_empty() {
            return Err(ExperimentError::NoResults {
                path: self.root.clone(),
            });
        }
        let summary = Summary::new(&self.experiment, results);

        let mut plots = Vec::new();
        for (tag, series) in summary.curves_by_tag() {
            let file: String = tag
                .chars()
                .map(|c| {
                    if c.is_alphanumeric() || c == '-' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            let relative = PathBuf::from("plots").join(format!("{file}.png"));
            let lines: Vec<(&str, &[(u64, f64)])> = series
                .iter()
                .map(|(name, points)| (name.as_str(), *points))
                .collect();
            crate::logging::plot::learning_curve(self.root.join(&relative), tag, &lines)?;
            plots.push(relative);
        }

        self.write("results.csv", &summary.to_csv())?;
        self.write("report.md", &summary.to_markdown(&plots))?;
        self.write("report.html", &summary.to_html(&plots))?;
        Ok(summary)
    }

    fn write(&self, name: &str, text: &str) -> Result<(), ExperimentError> {
        let path = self.root.join(name);
        crate::io::write_atomically(&path, text.as_bytes()).map_err(ExperimentError::io(&path))
    }
}

/// The current UTC time as a run id: `20261204T192244Z`.
pub fn run_id_now() -> String {
    let (date, time) = civil(unix_now());
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        date.0, date.1, date.2, time.0, time.1, time.2
    )
}

pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Seconds since 1970 as `2026-12-04T19:22:44Z`.
pub(crate) fn rfc3339(seconds: u64) -> String {
    let (date, time) = civil(seconds);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        date.0, date.1, date.2, time.0, time.1, time.2
    )
}

/// The proleptic Gregorian date and the time of day of a Unix time (days are counted in 400-year
/// eras of 146 097 days that start on 1 March, so that leap days fall at the end of a year).
fn civil(seconds: u64) -> ((i64, u32, u32), (u32, u32, u32)) {
    let days = (seconds / 86_400) as i64;
    let of_day = (seconds % 86_400) as u32;
    let shifted = days + 719_468; // days from 0000-03-01 to 1970-01-01
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (
        (year, month, day),
        (of_day / 3600, of_day / 60 % 60, of_day % 60),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_times_become_utc_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        // values from `date -u -d @SECONDS`; 2000 is a leap year (divisible by 400)
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(951_868_799), "2000-02-29T23:59:59Z");
        // 2100 is no leap year: 28 February is followed by 1 March
        assert_eq!(rfc3339(4_107_542_400), "2100-03-01T00:00:00Z");
        assert_eq!(rfc3339(1_796_412_164), "2026-12-04T19:22:44Z");
    }
}
