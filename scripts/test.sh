#!/usr/bin/env bash
# The whole test suite: formatting and lints, the Rust and C tests in release and debug
# builds, then real programs under LD_PRELOAD compared with glibc.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --all-targets --release -- -D warnings
cargo clippy --lib --release --no-default-features -- -D warnings
echo "== cargo doc"
RUSTDOCFLAGS=-Dwarnings cargo doc --no-deps --quiet

echo "== cargo build --release (the library the C tests and smoke tests load)"
cargo build --release

echo "== cargo test --release (unit, integration, C programs preloaded and linked)"
cargo test --release

echo "== cargo test (debug build: debug assertions on)"
cargo test -p goalloc --lib --test api --test threads --test property --test global --test header --test docs --test large_cache --test lines --test central_bound --test thread_exit --test idle_lists

echo "== the Rust tests again in checked mode (GOALLOC_CHECK=1)"
GOALLOC_CHECK=1 cargo test -p goalloc --release --test api --test threads --test property --test global --test lines --test thread_exit

echo "== the benchmark suite, one short round (checks that every workload runs correctly under every allocator)"
scripts/bench.sh --quick --out target/bench-quick

echo "== real programs under LD_PRELOAD"
scripts/smoke-preload.sh
scripts/test-aarch64.sh
