use delira::data::{DataError, FnDataset, Record};
use delira::testing::LinearNetwork;

type Sampler = fn(usize) -> Result<Record, DataError>;

fn points() -> Result<FnDataset<Sampler>, DataError> {
    Ok(FnDataset::new(4, |_| Ok(Record::new())))
}

delira::experiment! {
    name: toy,
    data: points()?,
    model: |c| LinearNetwork::classifier(2, 2, c.seed),
    fingerprint: 42,
}

fn main() {}
