use delira::data::{DataError, FnDataset, Record};
use delira::testing::LinearNetwork;

type Sampler = fn(usize) -> Result<Record, DataError>;

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Params {
    samples: usize,
    width: f64,
}

impl Default for Params {
    fn default() -> Self {
        Self { samples: 8, width: 0.5 }
    }
}

fn points(n: usize) -> Result<FnDataset<Sampler>, DataError> {
    Ok(FnDataset::new(n, |_| Ok(Record::new())))
}

delira::experiment! {
    name: toy,
    params: Params,
    data: |config| points(config.params.samples),
    model: |c| LinearNetwork::classifier(2, 2, c.seed),
    split: kfold(2),
    epochs: 3,
}

fn main() {
    let config = toy::Config::default();
    assert_eq!((config.params.samples, config.params.width, config.epochs), (8, 0.5, 3));
    let wider = toy::Config::builder()
        .params(Params { width: 2.0, ..Params::default() })
        .build();
    assert_eq!(wider.params.width, 2.0);
}
