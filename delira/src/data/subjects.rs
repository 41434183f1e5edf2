//! Datasets of subjects: one folder per subject, or a CSV manifest, loaded into a
//! `#[derive(Dataset)]` struct.
//!
//! Discovery is eager and cheap: it lists the subjects, checks that every file exists and that
//! every table value parses, and reads no image. Loading is lazy: [`SubjectDataset::get`] reads
//! the files of one subject.

use std::collections::HashMap;
use std::fs;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use super::fields::{FieldError, FieldInfo, FieldKind, Role, Source};
use super::{DataError, Dataset, Sample};
use crate::augment::Augmentable;

/// The name of the subject table in the root of a folder-per-subject layout.
pub const SUBJECT_TABLE: &str = "subjects.csv";

/// The id column of a CSV manifest or subject table when no field holds the subject id.
pub const SUBJECT_COLUMN: &str = "subject";

/// A sample type declared with `#[derive(Dataset)]`: its fields and how to load it.
pub trait DeclaredSample: Sample + Augmentable + Sized {
    /// The fields, in declaration order.
    const FIELDS: &'static [FieldInfo];

    /// Loads one subject from the sources that discovery found.
    fn from_entry(entry: &SubjectEntry) -> Result<Self, DataError>;

    /// The fields with the given role, in declaration order.
    fn fields_with(role: Role) -> impl Iterator<Item = &'static FieldInfo> {
        Self::FIELDS.iter().filter(move |f| f.role == role)
    }
}

/// One subject found by discovery: its id and the source of each field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubjectEntry {
    id: String,
    sources: Vec<Source>,
}

impl SubjectEntry {
    /// The subject's id: its folder name, its id column, or its row in a manifest.
    #[must_use]
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The source of the field at `index` (in declaration order).
    #[must_use]
    pub fn source(&self, index: usize) -> Option<&Source> {
        self.sources.get(index)
    }
}

/// Why the subjects of a dataset could not be discovered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SubjectError {
    /// A folder or file could not be read.
    #[error("cannot read `{path}`")]
    Read {
        /// The folder or file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A CSV file is malformed.
    #[error("cannot parse the CSV file `{path}`")]
    Csv {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: csv::Error,
    },
    /// The root folder holds no subject folder, or the manifest no row.
    #[error("no subject in `{path}`; expected one folder per subject, or one row per subject")]
    NoSubjects {
        /// The root folder or manifest.
        path: PathBuf,
    },
    /// An image field has no file-name template, so a folder layout cannot locate it.
    #[error(
        "field `{field}` has no file-name template; add one to its attribute, such as \
         `nifti = \"{field}.nii.gz\"`"
    )]
    NoTemplate {
        /// The field.
        field: &'static str,
    },
    /// A file that a field needs does not exist.
    #[error("subject `{subject}`: file `{path}` of field `{field}` does not exist")]
    MissingFile {
        /// The subject.
        subject: String,
        /// The field.
        field: &'static str,
        /// The expected file.
        path: PathBuf,
    },
    /// The subject table of a folder layout does not exist.
    #[error(
        "field `{field}` takes a value per subject but `{path}` does not exist; add it with \
         the columns `subject` and `{column}`"
    )]
    MissingTable {
        /// The first field that needs the table.
        field: &'static str,
        /// Its column.
        column: &'static str,
        /// The expected table.
        path: PathBuf,
    },
    /// A CSV file lacks a column that a field needs.
    #[error(
        "`{path}` has no column `{column}` for field `{field}`; add the column, or name another \
         one with `column = \"...\"` in the field's attribute"
    )]
    MissingColumn {
        /// The CSV file.
        path: PathBuf,
        /// The missing column.
        column: &'static str,
        /// The field.
        field: &'static str,
    },
    /// The subject table of a folder layout has no row for a subject folder.
    #[error("subject `{subject}` has a folder but no row in `{path}`; add a row for it")]
    MissingRow {
        /// The subject.
        subject: String,
        /// The table.
        path: PathBuf,
    },
    /// A cell is empty.
    #[error("subject `{subject}`: field `{field}` is empty in `{path}`")]
    EmptyValue {
        /// The subject.
        subject: String,
        /// The field.
        field: &'static str,
        /// The CSV file.
        path: PathBuf,
    },
    /// A cell does not parse into the field's type.
    #[error("subject `{subject}`: field `{field}` has value `{value}` in `{path}`, not {expected}")]
    Unparsable {
        /// The subject.
        subject: String,
        /// The field.
        field: &'static str,
        /// The text found.
        value: String,
        /// What the field's type needs.
        expected: &'static str,
        /// The CSV file.
        path: PathBuf,
    },
    /// Two rows name the same subject.
    #[error("subject `{subject}` appears twice in `{path}`; subject ids must be unique")]
    DuplicateSubject {
        /// The subject.
        subject: String,
        /// The CSV file.
        path: PathBuf,
    },
}

/// The subjects of a declared sample type `S`: a lazy dataset that loads one subject per
/// [`get`](Dataset::get).
///
/// Built by the `load_dir` and `load_csv` functions that `#[derive(Dataset)]` generates, or by
/// [`from_dir`](Self::from_dir) and [`from_csv`](Self::from_csv).
pub struct SubjectDataset<S> {
    entries: Vec<SubjectEntry>,
    origin: PathBuf,
    sample: PhantomData<fn() -> S>,
}

impl<S> Clone for SubjectDataset<S> {
    fn clone(&self) -> Self {
        Self {
            entries: self.entries.clone(),
            origin: self.origin.clone(),
            sample: PhantomData,
        }
    }
}

impl<S> std::fmt::Debug for SubjectDataset<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubjectDataset")
            .field("origin", &self.origin)
            .field("subjects", &self.entries.len())
            .finish_non_exhaustive()
    }
}

impl<S: DeclaredSample> SubjectDataset<S> {
    /// Discovers a folder-per-subject layout: every non-hidden folder in `root` is a subject
    /// (sorted by name); image fields are found by their `nifti` template inside it, and values
    /// of other fields come from the table `root/subjects.csv` (a `subject` column with the
    /// folder names, and a column per field).
    pub fn from_dir(root: impl AsRef<Path>) -> Result<Self, SubjectError> {
        let root = root.as_ref();
        let fields = S::FIELDS;
        if let Some(field) = fields
            .iter()
            .find(|f| f.kind.is_file() && f.nifti.is_none())
        {
            return Err(SubjectError::NoTemplate { field: field.name });
        }
        let ids = subject_folders(root)?;
        let table = if let Some(field) = fields.iter().find(|f| f.is_tabular()) {
            let path = root.join(SUBJECT_TABLE);
            if !path.is_file() {
                return Err(SubjectError::MissingTable {
                    field: field.name,
                    column: field.column,
                    path,
                });
            }
            Some(Table::read(&path, Some(SUBJECT_COLUMN), fields)?)
        } else {
            None
        };

        let mut entries = Vec::with_capacity(ids.len());
        for id in ids {
            let lookup = match &table {
                Some(table) => {
                    let row = table.row_of(&id).ok_or_else(|| SubjectError::MissingRow {
                        subject: id.clone(),
                        path: table.path.clone(),
                    })?;
                    Some((table, row))
                }
                None => None,
            };
            let mut sources = Vec::with_capacity(fields.len());
            for field in fields {
                let source = if field.subject_id {
                    Source::Text(id.clone())
                } else if field.kind.is_file() {
                    // Checked above: every file field has a template.
                    let template = field.nifti.unwrap_or_default();
                    let path = root.join(&id).join(template.replace("{subject}", &id));
                    check_file(&id, field, path)?
                } else if let Some((table, row)) = lookup {
                    table.value(row, &id, field)?
                } else {
                    // The table was read because a field is tabular, so this is not reached.
                    return Err(SubjectError::MissingTable {
                        field: field.name,
                        column: field.column,
                        path: root.join(SUBJECT_TABLE),
                    });
                };
                sources.push(source);
            }
            entries.push(SubjectEntry { id, sources });
        }
        tracing::debug!(root = %root.display(), subjects = entries.len(), "discovered subjects");
        Ok(Self {
            entries,
            origin: root.to_owned(),
            sample: PhantomData,
        })
    }

    /// Reads a CSV manifest: one row per subject, a column per field (named after the field,
    /// or as its `column` option says). Image fields hold a path, relative to the manifest's
    /// folder; other fields hold a value. The subject id is the column of the field marked
    /// `#[meta(subject)]`, else a column `subject`, else the row number (`row 1` for the first
    /// row after the header).
    pub fn from_csv(path: impl AsRef<Path>) -> Result<Self, SubjectError> {
        let path = path.as_ref();
        let fields = S::FIELDS;
        let id_column = fields
            .iter()
            .find(|f| f.subject_id)
            .map_or(SUBJECT_COLUMN, |f| f.column);
        let table = Table::read(path, None, fields)?;
        let base = path.parent().unwrap_or(Path::new("."));
        let id_index = table.columns.get(id_column).copied();

        let mut entries = Vec::with_capacity(table.rows.len());
        let mut seen = HashMap::new();
        for (r, cells) in table.rows.iter().enumerate() {
            let id = match id_index {
                Some(c) => cells[c].trim().to_owned(),
                None => format!("row {}", r + 1),
            };
            if seen.insert(id.clone(), r).is_some() {
                return Err(SubjectError::DuplicateSubject {
                    subject: id,
                    path: path.to_owned(),
                });
            }
            let mut sources = Vec::with_capacity(fields.len());
            for field in fields {
                let source = table.value(r, &id, field)?;
                let source = match source {
                    Source::Text(file) if field.kind.is_file() => {
                        check_file(&id, field, base.join(file))?
                    }
                    other => other,
                };
                sources.push(source);
            }
            entries.push(SubjectEntry { id, sources });
        }
        if entries.is_empty() {
            return Err(SubjectError::NoSubjects {
                path: path.to_owned(),
            });
        }
        tracing::debug!(manifest = %path.display(), subjects = entries.len(), "read manifest");
        Ok(Self {
            entries,
            origin: path.to_owned(),
            sample: PhantomData,
        })
    }
}

impl<S> SubjectDataset<S> {
    /// The root folder or manifest the subjects were discovered in.
    #[must_use]
    pub fn origin(&self) -> &Path {
        &self.origin
    }

    /// The subjects, in dataset order.
    #[must_use]
    pub fn entries(&self) -> &[SubjectEntry] {
        &self.entries
    }

    /// The subject ids, in dataset order.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| e.id.as_str())
    }
}

impl<S: DeclaredSample> SubjectDataset<S> {
    fn text_of_role(&self, pick: impl Fn(&FieldInfo) -> bool) -> Option<Vec<&str>> {
        let index = S::FIELDS.iter().position(pick)?;
        Some(
            self.entries
                .iter()
                .map(|e| match &e.sources[index] {
                    Source::Text(t) => t.trim(),
                    Source::File(_) => "",
                })
                .collect(),
        )
    }

    /// The group id of every subject (the `#[group]` field), without loading any image; `None`
    /// when the sample type has no group field.
    #[must_use]
    pub fn groups(&self) -> Option<Vec<String>> {
        self.text_of_role(|f| f.role == Role::Group)
            .map(|g| g.into_iter().map(str::to_owned).collect())
    }

    /// The class label of every subject (the `#[class]` or `#[target(class)]` field), without
    /// loading any image; `None` when the sample type has no class field.
    #[must_use]
    pub fn classes(&self) -> Option<Vec<i64>> {
        let texts = self.text_of_role(|f| f.class)?;
        // Discovery parsed every value, so this parse succeeds.
        Some(
            texts
                .into_iter()
                .map(|t| parse_class(t).unwrap_or_default())
                .collect(),
        )
    }
}

fn parse_class(text: &str) -> Option<i64> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "yes" => Some(1),
        "false" | "no" => Some(0),
        t => t.parse().ok(),
    }
}

impl<S: DeclaredSample> Dataset for SubjectDataset<S> {
    type Item = S;

    fn len(&self) -> usize {
        self.entries.len()
    }

    fn get(&self, index: usize) -> Result<S, DataError> {
        let entry = self.entries.get(index).ok_or(DataError::OutOfRange {
            index,
            len: self.entries.len(),
        })?;
        tracing::trace!(subject = entry.id, "loading subject");
        S::from_entry(entry)
    }
}

/// Loads field `index` of a subject; the error names the subject and the field.
#[doc(hidden)]
pub fn load_field<T>(
    entry: &SubjectEntry,
    index: usize,
    fields: &[FieldInfo],
    load: fn(&Source, &FieldInfo) -> Result<T, FieldError>,
) -> Result<T, DataError> {
    let (Some(info), Some(source)) = (fields.get(index), entry.sources.get(index)) else {
        return Err(DataError::msg(format!(
            "subject `{}` has no source for field {index}; build it with the generated \
             `load_dir` or `load_csv`",
            entry.id
        )));
    };
    load(source, info).map_err(|e| DataError::Source {
        context: format!(
            "cannot load field `{}` of subject `{}`",
            info.name, entry.id
        ),
        source: Box::new(e),
    })
}

fn check_file(subject: &str, field: &FieldInfo, path: PathBuf) -> Result<Source, SubjectError> {
    if path.is_file() {
        Ok(Source::File(path))
    } else {
        Err(SubjectError::MissingFile {
            subject: subject.to_owned(),
            field: field.name,
            path,
        })
    }
}

/// The sorted names of the non-hidden folders in `root`.
fn subject_folders(root: &Path) -> Result<Vec<String>, SubjectError> {
    let read_err = |source| SubjectError::Read {
        path: root.to_owned(),
        source,
    };
    let mut ids = Vec::new();
    for entry in fs::read_dir(root).map_err(read_err)? {
        let entry = entry.map_err(read_err)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with('.') && entry.path().is_dir() {
            ids.push(name);
        }
    }
    if ids.is_empty() {
        return Err(SubjectError::NoSubjects {
            path: root.to_owned(),
        });
    }
    ids.sort();
    Ok(ids)
}

/// A CSV file read whole: header, rows, and the columns that the fields need.
struct Table {
    path: PathBuf,
    columns: HashMap<String, usize>,
    rows: Vec<Vec<String>>,
    /// With a key column: the row of each subject id.
    keys: Option<HashMap<String, usize>>,
}

impl Table {
    /// Reads `path`; checks that every column the fields need exists (for a subject table, only
    /// the tabular fields, plus the `key` column).
    fn read(
        path: &Path,
        key: Option<&'static str>,
        fields: &[FieldInfo],
    ) -> Result<Self, SubjectError> {
        let csv_err = |source| SubjectError::Csv {
            path: path.to_owned(),
            source,
        };
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::Headers)
            .from_path(path)
            .map_err(csv_err)?;
        let columns: HashMap<String, usize> = reader
            .headers()
            .map_err(csv_err)?
            .iter()
            .enumerate()
            .map(|(i, h)| (h.to_owned(), i))
            .collect();
        let rows = reader
            .records()
            .map(|r| r.map(|r| r.iter().map(str::to_owned).collect()))
            .collect::<Result<Vec<Vec<String>>, _>>()
            .map_err(csv_err)?;

        let needed = fields
            .iter()
            .filter(|f| if key.is_some() { f.is_tabular() } else { true });
        for field in needed {
            let optional_id = key.is_none() && field.subject_id && field.column == SUBJECT_COLUMN;
            if !columns.contains_key(field.column) && !optional_id {
                return Err(SubjectError::MissingColumn {
                    path: path.to_owned(),
                    column: field.column,
                    field: field.name,
                });
            }
        }
        let keys = match key {
            Some(key) => {
                let c = *columns.get(key).ok_or(SubjectError::MissingColumn {
                    path: path.to_owned(),
                    column: key,
                    field: key,
                })?;
                let mut keys = HashMap::new();
                for (r, row) in rows.iter().enumerate() {
                    let id = row[c].trim().to_owned();
                    if keys.insert(id.clone(), r).is_some() {
                        return Err(SubjectError::DuplicateSubject {
                            subject: id,
                            path: path.to_owned(),
                        });
                    }
                }
                Some(keys)
            }
            None => None,
        };
        Ok(Self {
            path: path.to_owned(),
            columns,
            rows,
            keys,
        })
    }

    fn row_of(&self, id: &str) -> Option<usize> {
        self.keys.as_ref()?.get(id).copied()
    }

    /// The value of `field` in row `row`, checked to parse as the field's kind.
    fn value(&self, row: usize, subject: &str, field: &FieldInfo) -> Result<Source, SubjectError> {
        let Some(&c) = self.columns.get(field.column) else {
            // Only a subject-id field may lack its column: the id is then the row number.
            return Ok(Source::Text(subject.to_owned()));
        };
        let text = self.rows[row][c].trim();
        if text.is_empty() {
            return Err(SubjectError::EmptyValue {
                subject: subject.to_owned(),
                field: field.name,
                path: self.path.clone(),
            });
        }
        let expected = match field.kind {
            FieldKind::Float if text.parse::<f64>().is_err() => Some("a number"),
            FieldKind::Int if parse_class(text).is_none() => Some("an integer"),
            _ => None,
        };
        if let Some(expected) = expected {
            return Err(SubjectError::Unparsable {
                subject: subject.to_owned(),
                field: field.name,
                value: text.to_owned(),
                expected,
                path: self.path.clone(),
            });
        }
        Ok(Source::Text(text.to_owned()))
    }
}
