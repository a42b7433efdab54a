//! The `regbridge` command line.

fn main() {}
