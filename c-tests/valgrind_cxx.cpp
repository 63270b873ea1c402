// valgrind_cxx.cpp — a correct C++ program, linked with -lgoalloc and run under
// valgrind's memcheck (tests/c_tests.rs: valgrind_cxx_linked), which must report
// "ERROR SUMMARY: 0 errors". Memcheck replaces the allocation functions of every library
// by name, goalloc's included, and tells them apart by address: two entry points at one
// address (operator delete and operator delete[], say) made it report every delete of
// one as a mismatched free of the other. So the program uses every pairing a C++
// program does: new/delete, new[]/delete[], the sized and aligned forms, std::map,
// std::string, std::vector, and malloc/free beside them.
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "check.h"

#include <map>
#include <memory>
#include <new>
#include <string>
#include <vector>

struct Node {
    std::uint64_t v[3];
};

struct alignas(64) Wide {
    unsigned char b[100];
};

int main()
{
    goalloc_expect_active();

    // new/delete and new[]/delete[], objects and arrays (sized delete where C++14 uses it)
    for (int i = 0; i < 200; i++) {
        Node *one = new Node{};
        Node *many = new Node[std::size_t(i % 7) + 1];
        int *ints = new int[std::size_t(i) + 1];
        ints[i] = i;
        escape(one);
        escape(many);
        delete one;
        delete[] many;
        delete[] ints;
        Wide *w = new Wide;
        Wide *ws = new Wide[3];
        CHECK(is_aligned(w, 64) && is_aligned(ws, 64));
        delete w;
        delete[] ws;
        void *raw = ::operator new(std::size_t(i) + 1);
        ::operator delete(raw, std::size_t(i) + 1);
        char *nt = new (std::nothrow) char[std::size_t(i) + 1];
        delete[] nt;
    }

    // std::map of std::string, std::vector, std::unique_ptr
    std::map<int, std::string> m;
    for (int i = 0; i < 5000; i++)
        m[i] = std::string(std::size_t(i % 60) + 1, char('a' + i % 26)) + std::to_string(i);
    for (int i = 0; i < 5000; i += 2)
        m.erase(i);
    CHECK(m.size() == 2500);
    std::vector<std::string> v;
    for (const auto &kv : m)
        v.push_back(kv.second);
    CHECK(v.size() == 2500);
    auto arr = std::make_unique<int[]>(1000);
    arr[999] = 1;
    auto obj = std::make_unique<std::string>(100, 'z');
    CHECK((*obj)[99] == 'z');

    // the C functions beside them
    char *p = static_cast<char *>(malloc(100));
    CHECK(p != nullptr);
    p = static_cast<char *>(realloc(p, 1000));
    free(p);
    void *z = calloc(10, 10);
    free(z);

    printf("valgrind_cxx: OK\n");
    return 0;
}
