//! Typed configurations read from TOML, YAML or JSON.
//!
//! Every configuration of delira (loader, split, and later trainer and experiment settings) is a
//! plain struct with a builder (from `typed-builder`) and serde support; its fields have
//! documented defaults, and unknown keys are rejected (`#[serde(deny_unknown_fields)]`), so a
//! misspelt key is an error that names it, not a setting silently ignored.
//!
//! [`from_path`] chooses the format by the file's extension; [`from_str`] reads text of a given
//! [`Format`]. Errors name the file (or the format, for text) and the offending key, with its full
//! path for nested settings.
//!
//! ```
//! use delira::config::{self, Format};
//! use serde::Deserialize;
//!
//! #[derive(Debug, Deserialize, PartialEq)]
//! #[serde(deny_unknown_fields)]
//! struct Settings {
//!     batch_size: usize,
//!     #[serde(default)]
//!     shuffle: bool,
//! }
//!
//! let toml: Settings = config::from_str("batch_size = 4", Format::Toml).unwrap();
//! let yaml: Settings = config::from_str("batch_size: 4", Format::Yaml).unwrap();
//! let json: Settings = config::from_str(r#"{"batch_size": 4}"#, Format::Json).unwrap();
//! assert_eq!(toml, Settings { batch_size: 4, shuffle: false });
//! assert_eq!(toml, yaml);
//! assert_eq!(toml, json);
//!
//! let err = config::from_str::<Settings>("bach_size = 4", Format::Toml).unwrap_err();
//! assert_eq!(err.key(), Some("bach_size"));
//! ```
//!
//! Building in code goes through the builders, which take each setting by name and fill the
//! rest with its default:
//!
//! ```
//! use typed_builder::TypedBuilder;
//!
//! #[derive(Debug, TypedBuilder)]
//! struct Settings {
//!     batch_size: usize,
//!     #[builder(default = 2)]
//!     workers: usize,
//! }
//!
//! let settings = Settings::builder().batch_size(8).build();
//! assert_eq!((settings.batch_size, settings.workers), (8, 2));
//! ```

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// A configuration file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// TOML (`.toml`).
    Toml,
    /// YAML (`.yaml`, `.yml`).
    Yaml,
    /// JSON (`.json`).
    Json,
}

impl Format {
    /// The format that a file's extension names, if any.
    #[must_use]
    pub fn of_path(path: &Path) -> Option<Self> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "toml" => Some(Self::Toml),
            "yaml" | "yml" => Some(Self::Yaml),
            "json" => Some(Self::Json),
            _ => None,
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Toml => "TOML",
            Self::Yaml => "YAML",
            Self::Json => "JSON",
        })
    }
}

/// Why a configuration could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read or written.
    #[error("cannot access the configuration file `{path}`")]
    File {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file's extension names no known format.
    #[error(
        "`{path}` has no known configuration format; name it `.toml`, `.yaml`, `.yml` or `.json`"
    )]
    UnknownFormat {
        /// The file.
        path: PathBuf,
    },
    /// The text is not valid in its format, or does not fit the configuration type.
    #[error("{origin}: {}{message}", key_prefix(.key.as_deref()))]
    Invalid {
        /// The file, or the format when the text came from a string.
        origin: String,
        /// The offending key, as a dotted path (`loader.batch_size`, `augment[2].angle`), when the
        /// problem lies in one key.
        key: Option<String>,
        /// What is wrong, as the format's parser says it.
        message: String,
    },
    /// A value could not be written in the format.
    #[error("cannot write the configuration as {format}: {message}")]
    Write {
        /// The format.
        format: Format,
        /// What went wrong.
        message: String,
    },
}

fn key_prefix(key: Option<&str>) -> String {
    key.map(|k| format!("key `{k}`: ")).unwrap_or_default()
}

impl ConfigError {
    /// The offending key, when the problem lies in one key. For an unknown key, the unknown key
    /// itself (with the path of the table it appeared in).
    #[must_use]
    pub fn key(&self) -> Option<&str> {
        match self {
            Self::Invalid { key, .. } => key.as_deref(),
            _ => None,
        }
    }
}

/// Reads a configuration from a file, choosing the format by its extension (`.toml`, `.yaml`,
/// `.yml`, `.json`).
pub fn from_path<T: DeserializeOwned>(path: impl AsRef<Path>) -> Result<T, ConfigError> {
    let path = path.as_ref();
    let format = Format::of_path(path).ok_or_else(|| ConfigError::UnknownFormat {
        path: path.to_owned(),
    })?;
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::File {
        path: path.to_owned(),
        source,
    })?;
    parse(&text, format, format!("`{}`", path.display()))
}

/// Reads a configuration from text in the given format.
pub fn from_str<T: DeserializeOwned>(text: &str, format: Format) -> Result<T, ConfigError> {
    parse(text, format, format!("{format} configuration"))
}

/// Writes a configuration as text in the given format.
pub fn to_string<T: Serialize>(value: &T, format: Format) -> Result<String, ConfigError> {
    let write_err = |message: String| ConfigError::Write { format, message };
    match format {
        Format::Toml => toml::to_string_pretty(value).map_err(|e| write_err(e.to_string())),
        Format::Yaml => serde_norway::to_string(value).map_err(|e| write_err(e.to_string())),
        Format::Json => serde_json::to_string_pretty(value).map_err(|e| write_err(e.to_string())),
    }
}

/// Writes a configuration to a file, in the format its extension names.
pub fn to_path<T: Serialize>(value: &T, path: impl AsRef<Path>) -> Result<(), ConfigError> {
    let path = path.as_ref();
    let format = Format::of_path(path).ok_or_else(|| ConfigError::UnknownFormat {
        path: path.to_owned(),
    })?;
    let text = to_string(value, format)?;
    std::fs::write(path, text).map_err(|source| ConfigError::File {
        path: path.to_owned(),
        source,
    })
}

fn parse<T: DeserializeOwned>(
    text: &str,
    format: Format,
    origin: String,
) -> Result<T, ConfigError> {
    let result = match format {
        Format::Toml => match toml::de::Deserializer::parse(text) {
            Ok(de) => serde_path_to_error::deserialize(de).map_err(|e| split(e, toml_message)),
            Err(e) => Err((None, toml_message(&e, text))),
        },
        Format::Yaml => {
            let de = serde_norway::Deserializer::from_str(text);
            serde_path_to_error::deserialize(de).map_err(|e| {
                let (key, message) = split(e, |e, _| e.to_string());
                let message = strip_yaml_path(key.as_deref(), message);
                (key, message)
            })
        }
        Format::Json => {
            let mut de = serde_json::Deserializer::from_str(text);
            serde_path_to_error::deserialize(&mut de)
                .map_err(|e| split(e, |e, _| e.to_string()))
                .and_then(|value| de.end().map(|()| value).map_err(|e| (None, e.to_string())))
        }
    };
    result.map_err(|(key, message)| ConfigError::Invalid {
        origin,
        key,
        message,
    })
}

/// The key path and the message of a deserialisation error.
fn split<E>(
    error: serde_path_to_error::Error<E>,
    message: impl Fn(&E, &str) -> String,
) -> (Option<String>, String) {
    let path = error.path().to_string();
    let key = (path != ".").then_some(path);
    let inner = error.into_inner();
    (key, message(&inner, ""))
}

/// `serde_norway` starts its messages with the path of the enclosing map (`inner: unknown
/// field ...`); the key is reported separately, so the message drops it.
fn strip_yaml_path(key: Option<&str>, message: String) -> String {
    let mut ancestor = key.unwrap_or_default();
    while !ancestor.is_empty() {
        if let Some(rest) = message.strip_prefix(&format!("{ancestor}: ")) {
            return rest.to_owned();
        }
        ancestor = ancestor.rfind(['.', '[']).map_or("", |i| &ancestor[..i]);
    }
    message
}

/// The TOML error's message without its multi-line source excerpt, with the line number.
fn toml_message(error: &toml::de::Error, text: &str) -> String {
    let message = error.message().trim_end().to_owned();
    match error.span() {
        Some(span) if !text.is_empty() => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!("{message} (line {line})")
        }
        _ => message,
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use super::*;

    #[derive(Debug, PartialEq, Deserialize, Serialize)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        rate: f64,
    }

    #[derive(Debug, PartialEq, Deserialize, Serialize)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        name: String,
        inner: Inner,
    }

    #[test]
    fn same_value_from_every_format() {
        let expected = Outer {
            name: "a".into(),
            inner: Inner { rate: 0.5 },
        };
        let toml: Outer = from_str("name = \"a\"\n[inner]\nrate = 0.5\n", Format::Toml).unwrap();
        let yaml: Outer = from_str("name: a\ninner:\n  rate: 0.5\n", Format::Yaml).unwrap();
        let json: Outer =
            from_str(r#"{"name": "a", "inner": {"rate": 0.5}}"#, Format::Json).unwrap();
        assert_eq!(toml, expected);
        assert_eq!(yaml, expected);
        assert_eq!(json, expected);
        for format in [Format::Toml, Format::Yaml, Format::Json] {
            let text = to_string(&expected, format).unwrap();
            assert_eq!(
                from_str::<Outer>(&text, format).unwrap(),
                expected,
                "{format}"
            );
        }
    }

    #[test]
    fn unknown_nested_key_is_named_in_every_format() {
        let texts = [
            ("name = \"a\"\n[inner]\nrate = 0.5\nrat = 1\n", Format::Toml),
            ("name: a\ninner:\n  rate: 0.5\n  rat: 1\n", Format::Yaml),
            (
                r#"{"name": "a", "inner": {"rate": 0.5, "rat": 1}}"#,
                Format::Json,
            ),
        ];
        for (text, format) in texts {
            let err = from_str::<Outer>(text, format).unwrap_err();
            assert_eq!(err.key(), Some("inner.rat"), "{format}: {err}");
            let message = err.to_string();
            assert!(
                message.starts_with(&format!(
                    "{format} configuration: key `inner.rat`: unknown field `rat`"
                )),
                "{format}: {message}"
            );
        }
    }

    #[test]
    fn wrong_type_is_named_in_every_format() {
        let texts = [
            ("name = \"a\"\n[inner]\nrate = \"fast\"\n", Format::Toml),
            ("name: a\ninner:\n  rate: fast\n", Format::Yaml),
            (r#"{"name": "a", "inner": {"rate": "fast"}}"#, Format::Json),
        ];
        for (text, format) in texts {
            let err = from_str::<Outer>(text, format).unwrap_err();
            assert_eq!(err.key(), Some("inner.rate"), "{format}: {err}");
            assert!(
                err.to_string().contains("invalid type: string \"fast\""),
                "{format}: {err}"
            );
        }
    }

    #[test]
    fn syntax_error_has_no_key() {
        let err = from_str::<Outer>("name = ", Format::Toml).unwrap_err();
        assert_eq!(err.key(), None);
        assert!(err.to_string().starts_with("TOML configuration: "), "{err}");
    }
}
