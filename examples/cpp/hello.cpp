// goalloc from C++: operator new and delete (every variant) and the standard containers
// get their memory from goalloc in a program linked with it; goalloc.h's goalloc_*
// functions are there as well.
//
// After scripts/install.sh PREFIX:
//
//   export PKG_CONFIG_PATH=PREFIX/lib/pkgconfig
//   c++ -std=c++17 -pthread hello.cpp $(pkg-config --cflags --libs goalloc) -o hello
//   LD_LIBRARY_PATH=PREFIX/lib ./hello
//
// The output is the same every run.
#include <goalloc.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace {

// Bytes in goalloc's spans in use now.
size_t heap_inuse() {
    static goalloc_mem_stats st;
    goalloc_read_mem_stats(&st);
    return st.heap_inuse;
}

const char *yes_no(bool ok) { return ok ? "yes" : "no"; }

struct alignas(256) Block {
    unsigned char bytes[256];
};

}  // namespace

int main() {
    bool ok = true;

    // operator new[] is goalloc's: a large array shows in goalloc's heap.
    size_t before = heap_inuse();
    auto big = std::make_unique<unsigned char[]>(1 << 20);
    size_t after = heap_inuse();
    bool from_goalloc = after >= before + (1 << 20);
    ok &= from_goalloc;
    std::printf("new unsigned char[1 MiB] came from goalloc: %s\n", yes_no(from_goalloc));
    big.reset();

    // Over-aligned new (operator new(size_t, align_val_t)).
    std::vector<std::unique_ptr<Block>> blocks;
    bool aligned = true;
    for (int i = 0; i < 100; i++) {
        blocks.push_back(std::make_unique<Block>());
        aligned &= reinterpret_cast<std::uintptr_t>(blocks.back().get()) % alignof(Block) == 0;
    }
    blocks.clear();
    ok &= aligned;
    std::printf("100 alignas(256) objects aligned: %s\n", yes_no(aligned));

    // Standard containers, filled by four threads and merged.
    std::vector<std::map<std::string, std::vector<int>>> parts(4);
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; t++) {
        threads.emplace_back([t, &parts] {
            auto &m = parts[t];
            for (int i = 0; i < 20000; i++) {
                m["key-" + std::to_string(i % 250)].push_back(t * 20000 + i);
            }
        });
    }
    for (auto &th : threads) {
        th.join();
    }
    std::map<std::string, std::vector<int>> merged;
    for (auto &m : parts) {
        for (auto &[k, v] : m) {
            auto &dst = merged[k];
            dst.insert(dst.end(), v.begin(), v.end());
        }
    }
    parts.clear();  // frees, on this thread, what the other threads allocated
    long long sum = 0;
    size_t values = 0;
    for (auto &[k, v] : merged) {
        values += v.size();
        for (int x : v) {
            sum += x;
        }
    }
    std::printf("%zu keys, %zu values, sum %lld\n", merged.size(), values, sum);

    // The goalloc_* functions, beside new and delete.
    char *text = static_cast<char *>(goalloc_malloc(64));
    if (text == nullptr) {
        return 1;
    }
    std::snprintf(text, 64, "hello from goalloc_malloc in C++");
    std::printf("%s\n", text);
    goalloc_free_sized(text, 64);

    std::printf("%s\n", ok ? "done" : "FAILED");
    return ok ? 0 : 1;
}
