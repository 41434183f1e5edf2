// Stand-ins for the layer types: the mistake is reported before any type is needed.

#[delira::model(backend = "torch")]
struct Net {}

fn main() {}
