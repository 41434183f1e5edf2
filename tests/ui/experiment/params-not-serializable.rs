use delira::data::{DataError, FnDataset, Record};
use delira::testing::LinearNetwork;

type Sampler = fn(usize) -> Result<Record, DataError>;

#[derive(Clone, Debug, Default)]
struct Params {
    samples: usize,
}

fn points() -> Result<FnDataset<Sampler>, DataError> {
    Ok(FnDataset::new(8, |_| Ok(Record::new())))
}

delira::experiment! {
    name: toy,
    params: Params,
    data: points()?,
    model: |c| LinearNetwork::classifier(2, 2, c.seed),
}

fn main() {}
