// header_api.cpp — include/goalloc.h used from C++: the declarations must link from C++
// (extern "C"), and the prefixed API must serve as the backing store of a standard
// allocator. Built only in "linked" mode (-lgoalloc -I include).
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "check.h"

#include <cstddef>
#include <map>
#include <new>
#include <string>
#include <vector>

#include "goalloc.h"

// A std allocator over goalloc_* (sized and aligned frees included).
template <typename T> struct GoallocAllocator {
    using value_type = T;
    GoallocAllocator() = default;
    template <typename U> GoallocAllocator(const GoallocAllocator<U> &) {}
    T *allocate(std::size_t n)
    {
        void *p = alignof(T) > 16 ? goalloc_aligned_alloc(alignof(T), n * sizeof(T))
                                  : goalloc_malloc(n * sizeof(T));
        if (p == nullptr)
            throw std::bad_alloc();
        return static_cast<T *>(p);
    }
    void deallocate(T *p, std::size_t n)
    {
        if (alignof(T) > 16)
            goalloc_free_aligned_sized(p, alignof(T), n * sizeof(T));
        else
            goalloc_free_sized(p, n * sizeof(T));
    }
    template <typename U> bool operator==(const GoallocAllocator<U> &) const { return true; }
    template <typename U> bool operator!=(const GoallocAllocator<U> &) const { return false; }
};

struct alignas(128) Wide {
    unsigned char b[40];
};

using GString = std::basic_string<char, std::char_traits<char>, GoallocAllocator<char>>;

int main()
{
    goalloc_expect_active();

    // direct calls, with the casts C++ needs
    char *s = static_cast<char *>(goalloc_malloc(100));
    CHECK(s != nullptr);
    CHECK(goalloc_usable_size(s) >= 100);
    s = static_cast<char *>(goalloc_realloc(s, 10000));
    CHECK(s != nullptr && goalloc_usable_size(s) >= 10000);
    goalloc_free(s);
    void *a = nullptr;
    CHECK(goalloc_posix_memalign(&a, 4096, 5000) == 0 && is_aligned(a, 4096));
    goalloc_free(a);
    int *z = static_cast<int *>(goalloc_calloc(1000, sizeof(int)));
    CHECK(z != nullptr);
    escape(z);
    for (int i = 0; i < 1000; i++)
        CHECK(z[i] == 0);
    goalloc_free(z);

    // containers backed by goalloc_*
    std::vector<int, GoallocAllocator<int>> v;
    for (int i = 0; i < 100000; i++)
        v.push_back(i);
    for (int i = 0; i < 100000; i++)
        CHECK(v[std::size_t(i)] == i);

    std::vector<Wide, GoallocAllocator<Wide>> w(100);
    CHECK(is_aligned(w.data(), 128));
    w.resize(1000);
    CHECK(is_aligned(w.data(), 128));

    std::map<int, GString, std::less<int>, GoallocAllocator<std::pair<const int, GString>>>
        m;
    for (int i = 0; i < 5000; i++)
        m[i] = GString(std::size_t(i % 100), 'g');
    for (int i = 0; i < 5000; i += 2)
        m.erase(i);
    CHECK(m.size() == 2500);
    for (const auto &kv : m)
        CHECK(kv.second.size() == std::size_t(kv.first % 100));
    m.clear();
    v.clear();
    v.shrink_to_fit();

    std::size_t released = goalloc_release_all();
    printf("goalloc_release_all released %zu bytes\n", released);
    printf("header_api_cpp: OK\n");
    return 0;
}
