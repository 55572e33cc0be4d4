//! S3 benchmark (being written).
fn main() {}
