/* align.c — every size 0..70000 (step 1 to 4096, then a dense odd step plus every size
 * class and page boundary +-1) and large sizes up to 64 MiB: malloc's alignment
 * (16 for every size, alignof(max_align_t), as glibc's on x86-64), usable size >= request,
 * the whole usable size writable and kept intact while other objects are live. Then the
 * other entry points at small sizes, with many objects live: 16-byte aligned too. */
#define _GNU_SOURCE
#include "check.h"

#include <malloc.h>
#include <stdalign.h>
#include <stddef.h>

/* Go's size classes (runtime/sizeclasses.go); goalloc starts from them, so their edges
 * are where off-by-one errors would be. Other allocators simply get extra sizes. */
static const size_t go_classes[] = {
    8,     16,    24,    32,    48,    64,    80,    96,    112,   128,   144,   160,
    176,   192,   208,   224,   240,   256,   288,   320,   352,   384,   416,   448,
    480,   512,   576,   640,   704,   768,   896,   1024,  1152,  1280,  1408,  1536,
    1792,  2048,  2304,  2688,  3072,  3200,  3456,  4096,  4864,  5376,  6144,  6528,
    6784,  6912,  8192,  9472,  9728,  10240, 10880, 12288, 13568, 14336, 16384, 18432,
    19072, 20480, 21760, 24576, 27264, 28672, 32768,
};

/* Objects stay live in a ring of this many, so a write past one object's usable size
 * into its neighbour is caught when the neighbour is checked. */
enum { LIVE = 64 };

struct live {
    void *p;
    size_t len; /* bytes filled: the whole usable size */
    uint64_t seed;
};

static struct live ring[LIVE];
static size_t ring_pos;
static size_t n_allocs;

static void retire(struct live *l)
{
    if (l->p == NULL)
        return;
    CHECK_PATTERN(l->p, l->len, l->seed);
    free(l->p);
    l->p = NULL;
}

static void one(size_t n)
{
    struct live *l = &ring[ring_pos++ % LIVE];
    void *p;
    size_t us;
    retire(l);
    p = malloc(n);
    CHECKF(p != NULL, "malloc(%zu) returned NULL", n);
    CHECKF(is_aligned(p, 16), "malloc(%zu) = %p is not 16-aligned", n, p);
    us = malloc_usable_size(p);
    CHECKF(us >= n, "malloc_usable_size(malloc(%zu)) = %zu", n, us);
    l->p = p;
    l->len = us;
    l->seed = n * 0x10001 + ring_pos;
    fill_pattern(p, us, l->seed);
    n_allocs++;
}

static void drain(void)
{
    size_t i;
    for (i = 0; i < LIVE; i++)
        retire(&ring[i]);
}

/* Opaque to the compiler, so that it does not assume what it knows of the builtins. */
static void *(*volatile calloc_p)(size_t, size_t) = calloc;
static void *(*volatile realloc_p)(void *, size_t) = realloc;
static void *(*volatile aligned_alloc_p)(size_t, size_t) = aligned_alloc;
static void *(*volatile memalign_p)(size_t, size_t) = memalign;

enum { SMALL_LIVE = 256 };

/* Every entry point that returns memory, at sizes 0..47, with SMALL_LIVE objects live
 * (one object freed at once could get the same aligned address back every time). */
static void small_entry_points(int have_reallocarray, int have_memalign)
{
    static void *live[SMALL_LIVE];
    static size_t len[SMALL_LIVE];
    static const char *const names[] = {"malloc", "calloc", "realloc(NULL)", "realloc",
                                        "reallocarray", "aligned_alloc(8)", "aligned_alloc(1)",
                                        "memalign(8)", "posix_memalign(8)"};
    enum { NFORMS = sizeof names / sizeof names[0] };
    CHECK(alignof(max_align_t) == 16);
    for (int form = 0; form < NFORMS; form++) {
        if ((form == 4 && !have_reallocarray) || (form == 7 && !have_memalign))
            continue;
        for (int i = 0; i < SMALL_LIVE; i++) {
            size_t n = (size_t)i % 48;
            void *p = NULL;
            switch (form) {
            case 0: p = malloc(opaque_size(n)); break;
            case 1: p = calloc_p(1, n); break;
            case 2: p = realloc_p(NULL, n); break;
            case 3: p = realloc_p(malloc(opaque_size(n + 20)), n ? n : 1); break;
            case 4: p = reallocarray(NULL, opaque_size(1), n); break;
            case 5: p = aligned_alloc_p(8, n); break;
            case 6: p = aligned_alloc_p(1, n); break;
            case 7: p = memalign_p(8, n); break;
            default: CHECK(posix_memalign_opaque(&p, 8, n) == 0); break;
            }
            CHECKF(p != NULL, "%s(%zu) returned NULL", names[form], n);
            CHECKF(is_aligned(p, 16), "%s(%zu) = %p is not 16-aligned", names[form], n, p);
            live[i] = p;
            len[i] = n;
            fill_pattern(p, n, (uint64_t)i * 31 + form);
        }
        for (int i = 0; i < SMALL_LIVE; i++) {
            CHECK_PATTERN(live[i], len[i], (uint64_t)i * 31 + form);
            free(live[i]);
        }
    }
    printf("small sizes: every entry point 16-aligned with %d objects live\n", SMALL_LIVE);
}

int main(void)
{
    size_t n, i;
    goalloc_expect_active();
    small_entry_points(allocator_provides("reallocarray"), allocator_provides("memalign"));

    for (n = 0; n <= 4096; n++)
        one(n);
    /* step 5 is odd, so every residue mod 16 still shows up */
    for (n = 4097; n <= 70000; n += 5)
        one(n);
    for (i = 0; i < sizeof go_classes / sizeof go_classes[0]; i++) {
        one(go_classes[i] - 1);
        one(go_classes[i]);
        one(go_classes[i] + 1);
    }
    for (n = 8192; n <= 72 * 1024; n += 8192) {
        one(n - 1);
        one(n);
        one(n + 1);
    }
    drain();
    printf("small and medium sizes: %zu allocations checked\n", n_allocs);

    /* large: powers of two up to 64 MiB, and around them */
    for (n = 64 * 1024; n <= (64u << 20); n *= 2) {
        static const long deltas[] = {-8193, -4097, -1, 0, 1, 4095, 8191};
        for (i = 0; i < sizeof deltas / sizeof deltas[0]; i++) {
            size_t m = (size_t)((long)n + deltas[i]);
            if (m > (64u << 20))
                continue;
            one(m);
            /* keep memory use modest: at most one multi-MiB object live at a time */
            if (m >= (4u << 20))
                drain();
        }
    }
    drain();
    /* odd large sizes */
    for (n = 100000; n < (16u << 20); n = n * 3 + 12345)
        one(n);
    drain();
    printf("align: OK (%zu allocations)\n", n_allocs);
    return 0;
}
