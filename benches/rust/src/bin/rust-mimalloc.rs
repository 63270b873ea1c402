#[global_allocator]
static A: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    goalloc_rust_bench::main("mimalloc");
}
