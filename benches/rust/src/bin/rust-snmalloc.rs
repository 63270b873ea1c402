#[global_allocator]
static A: snmalloc_rs::SnMalloc = snmalloc_rs::SnMalloc;

fn main() {
    goalloc_rust_bench::main("snmalloc");
}
