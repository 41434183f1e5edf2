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
    split: holdout(0.25, validation = 0.25),
    optimizer: adamw(lr = 0.01),
    loss: mse,
    monitor: min(valid.loss),
    epochs: 7,
}

fn main() {
    let config = toy::Config::default();
    assert_eq!(config.epochs, 7);
    assert_eq!(config.optimizer.learning_rate(), 0.01);
    assert_eq!(toy::NAME, "toy");
    assert_eq!(toy::BACKEND, "native");
}
