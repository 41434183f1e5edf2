use std::path::Path;

use delira::data::{DataError, FnDataset, Record};
use delira::experiment::{ExperimentError, Fingerprint};
use delira::testing::LinearNetwork;
use ndarray::{ArrayD, arr0};

type Sampler = fn(usize) -> Result<Record, DataError>;

fn points() -> Result<FnDataset<Sampler>, DataError> {
    Ok(FnDataset::new(8, |i| {
        Ok(Record::new()
            .with("x", ArrayD::from_elem(vec![2], i as f32))
            .with("y", arr0(i64::from(i > 3)).into_dyn()))
    }))
}

fn source_files() -> Result<Vec<std::path::PathBuf>, ExperimentError> {
    Ok(vec![std::path::PathBuf::from(file!())])
}

// A function as the hook, returning nothing.
fn note(_: &mut LinearNetwork, _: &FnDataset<Sampler>, indices: &[usize], dir: &Path) {
    let _ = std::fs::write(dir.join("note.txt"), format!("{indices:?}"));
}

// An expression as the fingerprint, with `?`.
delira::experiment! {
    name: from_files,
    data: points()?,
    model: |c| LinearNetwork::classifier(2, 2, c.seed),
    fingerprint: Fingerprint::new().files(source_files()?)?,
    predict: note,
}

// Text as the fingerprint; a closure as the hook, returning a `Result`.
delira::experiment! {
    name: from_text,
    data: points()?,
    model: |c| LinearNetwork::classifier(2, 2, c.seed),
    fingerprint: "points v1",
    predict: |_network, _data, indices, dir| {
        std::fs::write(dir.join("count.txt"), indices.len().to_string())
    },
}

fn main() {
    use delira::experiment::Experiment as _;
    let config = from_text::Config::default();
    assert_eq!(
        from_text::Experiment.data(&config).unwrap(),
        (8, "points v1".to_owned())
    );
    assert_eq!(from_files::NAME, "from_files");
}
