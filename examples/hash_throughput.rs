//! Prints how fast regbridge's digester hashes, for the benchmark: `cargo run --release --example
//! hash_throughput [MIB]`. sha2 picks the CPU's SHA extensions at run time; without them SHA-256 runs at
//! roughly a third of the speed.

use std::time::Instant;

use regbridge::oci::Algorithm;

fn main() {
    let mib: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1024);
    let chunk = vec![0x5au8; 1 << 20];
    for algorithm in [Algorithm::Sha256, Algorithm::Sha512] {
        let mut best = f64::MAX;
        for _ in 0..3 {
            let start = Instant::now();
            let mut hasher = algorithm.hasher();
            for _ in 0..mib {
                hasher.update(&chunk);
            }
            std::hint::black_box(hasher.finish());
            best = best.min(start.elapsed().as_secs_f64());
        }
        println!("{algorithm} {mib} MiB: {:.2} s, {:.0} MiB/s", best, mib as f64 / best);
    }
}
