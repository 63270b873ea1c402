#[global_allocator]
static A: goalloc::GoAlloc = goalloc::GoAlloc;

fn main() {
    goalloc_rust_bench::main("goalloc");
}
