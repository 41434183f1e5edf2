//! `--set key=value`: dotted keys into a typed configuration, values read as TOML.

use serde::Serialize;
use serde::de::DeserializeOwned;
use toml::{Table, Value};

use super::ExperimentError;
use crate::config::{self, ConfigError, Format};

/// Splits `key=value` at the first `=`, trimming both sides.
///
/// ```
/// use delira::experiment::parse_assignment;
/// assert_eq!(parse_assignment("loader.batch_size = 8").unwrap(), ("loader.batch_size".into(), "8".into()));
/// assert!(parse_assignment("epochs").is_err());
/// ```
pub fn parse_assignment(arg: &str) -> Result<(String, String), ExperimentError> {
    match arg.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_owned(), value.trim().to_owned()))
        }
        _ => Err(ExperimentError::NotAnAssignment {
            given: arg.to_owned(),
        }),
    }
}

/// Every key of a configuration as it serialises, dotted (`loader.batch_size`), sorted; arrays
/// count as one key. Optional settings that are unset do not serialise and are not listed.
///
/// ```
/// use delira::experiment::config_keys;
/// let config = serde_json::json!({"epochs": 3, "loader": {"batch_size": 4, "workers": 2}});
/// assert_eq!(config_keys(&config).unwrap(), ["epochs", "loader.batch_size", "loader.workers"]);
/// ```
pub fn config_keys<T: Serialize>(config: &T) -> Result<Vec<String>, ExperimentError> {
    let mut keys = Vec::new();
    collect_keys(&to_table(config)?, "", &mut keys);
    keys.sort();
    Ok(keys)
}

fn collect_keys(table: &Table, prefix: &str, keys: &mut Vec<String>) {
    for (key, value) in table {
        let dotted = format!("{prefix}{key}");
        match value {
            Value::Table(inner) => collect_keys(inner, &format!("{dotted}."), keys),
            _ => keys.push(dotted),
        }
    }
}

/// `config` with every `key=value` of `assignments` applied in order.
///
/// Keys are dotted paths into the configuration's tables; an unknown key is an error that names
/// it and lists the valid keys. Values are TOML scalars or arrays (`8`, `1e-3`, `true`,
/// `"text"`, `[1, 2]`); for a key that holds text, the value is taken verbatim unless it is a
/// quoted TOML string, and an integer given for a float key becomes a float. The result goes
/// through the configuration's own deserialisation, so its checks (types, unknown fields) apply.
///
/// ```
/// use delira::experiment::apply_overrides;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, PartialEq, Serialize, Deserialize)]
/// #[serde(deny_unknown_fields)]
/// struct Loader { batch_size: usize, workers: usize }
/// #[derive(Debug, PartialEq, Serialize, Deserialize)]
/// #[serde(deny_unknown_fields)]
/// struct Config { name: String, lr: f64, loader: Loader }
///
/// let config = Config { name: "a".into(), lr: 0.1, loader: Loader { batch_size: 4, workers: 2 } };
/// let sets = ["loader.batch_size=8".to_owned(), "lr=1".to_owned(), "name=42".to_owned()];
/// let changed = apply_overrides(&config, &sets).unwrap();
/// assert_eq!(changed, Config { name: "42".into(), lr: 1.0, loader: Loader { batch_size: 8, workers: 2 } });
///
/// let err = apply_overrides(&config, &["loader.batch=8".to_owned()]).unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     "unknown configuration key `loader.batch`; valid keys: loader.batch_size, loader.workers, lr, name"
/// );
/// ```
pub fn apply_overrides<T: Serialize + DeserializeOwned>(
    config: &T,
    assignments: &[String],
) -> Result<T, ExperimentError> {
    let mut table = to_table(config)?;
    for assignment in assignments {
        let (key, raw) = parse_assignment(assignment)?;
        set(&mut table, &key, &raw, config)?;
        // Each assignment is checked on its own, so that an error names the key at fault.
        from_table::<T>(&table).map_err(|error| explain(error, &key, &raw, config))?;
    }
    from_table(&table).map_err(ExperimentError::from)
}

/// `declared` with the settings of the configuration file at `path` (TOML, YAML or JSON) in
/// place of its own; keys the file leaves out keep their declared values.
///
/// Tables merge key by key, except that a table of the file none of whose keys the declared
/// table has replaces it whole: that is another variant of an enum setting
/// (`[optimizer.sgd]` in place of the declared `[optimizer.adam]`). When the merged settings do
/// not fit the configuration, the file's own mistake is reported (with its name) if it has one.
pub fn merge_config_file<T: Serialize + DeserializeOwned>(
    declared: &T,
    path: &std::path::Path,
) -> Result<T, ExperimentError> {
    let file: Table = config::from_path(path)?;
    let mut table = to_table(declared)?;
    merge(&mut table, file);
    from_table(&table).map_err(|merged| match config::from_path::<T>(path) {
        Err(in_file) => ExperimentError::from(in_file),
        Ok(_) => ExperimentError::from(merged),
    })
}

fn merge(base: &mut Table, file: Table) {
    for (key, value) in file {
        match (base.get_mut(&key), value) {
            (Some(Value::Table(inner)), Value::Table(new))
                if new.keys().any(|k| inner.contains_key(k)) =>
            {
                merge(inner, new);
            }
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

fn set<T: Serialize>(
    table: &mut Table,
    key: &str,
    raw: &str,
    config: &T,
) -> Result<(), ExperimentError> {
    let parts: Vec<&str> = key.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(unknown(key, config));
    }
    let (leaf, path) = parts.split_last().unwrap_or((&"", &[]));
    let mut current = table;
    for part in path {
        let entry = current
            .entry((*part).to_owned())
            .or_insert_with(|| Value::Table(Table::new()));
        current = match entry {
            Value::Table(inner) => inner,
            _ => return Err(unknown(key, config)),
        };
    }
    let value = match current.get(*leaf) {
        Some(Value::Table(_)) => {
            let keys = config_keys(config)?;
            let inner: Vec<String> = keys
                .into_iter()
                .filter(|k| k.starts_with(&format!("{key}.")))
                .collect();
            return Err(ExperimentError::BadValue {
                key: key.to_owned(),
                value: raw.to_owned(),
                message: format!(
                    "`{key}` is a table; set one of its keys: {}",
                    inner.join(", ")
                ),
            });
        }
        existing => read_value(raw, existing),
    };
    current.insert((*leaf).to_owned(), value);
    Ok(())
}

/// The TOML value of `raw`, shaped by the value it replaces.
fn read_value(raw: &str, existing: Option<&Value>) -> Value {
    let parsed = toml::from_str::<Table>(&format!("value = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("value"));
    match (existing, parsed) {
        (Some(Value::String(_)), Some(Value::String(text))) => Value::String(text),
        (Some(Value::String(_)), _) | (_, None) => Value::String(raw.to_owned()),
        (Some(Value::Float(_)), Some(Value::Integer(i))) => Value::Float(i as f64),
        (_, Some(value)) => value,
    }
}

fn unknown<T: Serialize>(key: &str, config: &T) -> ExperimentError {
    ExperimentError::UnknownKey {
        key: key.to_owned(),
        valid: config_keys(config).unwrap_or_default(),
    }
}

/// An unknown-field error of the configuration's deserialisation becomes [`ExperimentError::UnknownKey`];
/// anything else is a value that does not fit.
fn explain<T: Serialize>(error: ConfigError, key: &str, raw: &str, config: &T) -> ExperimentError {
    match &error {
        ConfigError::Invalid { message, .. } if message.contains("unknown field") => {
            unknown(key, config)
        }
        // The line number points into text made here, not into anything the user wrote.
        ConfigError::Invalid { message, .. } => ExperimentError::BadValue {
            key: key.to_owned(),
            value: raw.to_owned(),
            message: message
                .rsplit_once(" (line ")
                .map_or(message.as_str(), |(m, _)| m)
                .to_owned(),
        },
        _ => ExperimentError::Config(error),
    }
}

pub(crate) fn to_table<T: Serialize>(config: &T) -> Result<Table, ExperimentError> {
    let text = config::to_string(config, Format::Toml)?;
    Ok(config::from_str(&text, Format::Toml)?)
}

fn from_table<T: DeserializeOwned>(table: &Table) -> Result<T, ConfigError> {
    let text = config::to_string(table, Format::Toml)?;
    config::from_str(&text, Format::Toml)
}

/// The dotted keys whose values differ between two configurations, sorted.
pub(crate) fn changed_keys(a: &Table, b: &Table) -> Vec<String> {
    let mut changed = Vec::new();
    diff(a, b, "", &mut changed);
    changed.sort();
    changed
}

fn diff(a: &Table, b: &Table, prefix: &str, changed: &mut Vec<String>) {
    for key in a.keys().chain(b.keys().filter(|k| !a.contains_key(*k))) {
        let dotted = format!("{prefix}{key}");
        match (a.get(key), b.get(key)) {
            (Some(Value::Table(x)), Some(Value::Table(y))) => {
                diff(x, y, &format!("{dotted}."), changed);
            }
            (x, y) if x != y => changed.push(dotted),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_toml_scalars_shaped_by_the_key() {
        let text = Value::String("x".into());
        let float = Value::Float(0.5);
        let int = Value::Integer(3);
        assert_eq!(read_value("8", Some(&float)), Value::Float(8.0));
        assert_eq!(read_value("1e-3", Some(&float)), Value::Float(1e-3));
        assert_eq!(read_value("8", Some(&int)), Value::Integer(8));
        assert_eq!(read_value("8", Some(&text)), Value::String("8".into()));
        assert_eq!(
            read_value("\"a b\"", Some(&text)),
            Value::String("a b".into())
        );
        assert_eq!(read_value("max", None), Value::String("max".into()));
        assert_eq!(read_value("true", None), Value::Boolean(true));
        assert_eq!(
            read_value("[1, 2]", None),
            Value::Array(vec![Value::Integer(1), Value::Integer(2)])
        );
    }

    #[test]
    fn a_file_merges_key_by_key_and_switches_variants_whole() {
        let mut base: Table = toml::from_str(
            "epochs = 3\n[params]\nbase = 8\ndepth = 3\n[optimizer.adam]\nlr = 0.1\nbeta = 0.9",
        )
        .unwrap();
        let file: Table =
            toml::from_str("epochs = 30\n[params]\nbase = 16\n[optimizer.sgd]\nlr = 0.5").unwrap();
        merge(&mut base, file);
        let expected: Table = toml::from_str(
            "epochs = 30\n[params]\nbase = 16\ndepth = 3\n[optimizer.sgd]\nlr = 0.5",
        )
        .unwrap();
        assert_eq!(base, expected);
    }

    #[test]
    fn changed_keys_are_dotted_and_sorted() {
        let a: Table = toml::from_str("epochs = 3\n[loader]\nbatch_size = 4\nworkers = 2").unwrap();
        let b: Table =
            toml::from_str("epochs = 3\nseed = 1\n[loader]\nbatch_size = 8\nworkers = 2").unwrap();
        assert_eq!(changed_keys(&a, &b), ["loader.batch_size", "seed"]);
        assert!(changed_keys(&a, &a).is_empty());
    }
}
