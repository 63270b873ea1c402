#[global_allocator]
static A: std::alloc::System = std::alloc::System;

fn main() {
    goalloc_rust_bench::main("system");
}
