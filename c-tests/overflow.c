/* overflow.c — sizes that overflow or cannot exist, for every entry point: the call
 * returns NULL with errno ENOMEM (posix_memalign: ENOMEM as its result and in errno, as
 * glibc, tcmalloc, jemalloc and mimalloc do), and nothing else
 * changes: an object passed to a failing realloc or
 * reallocarray is still valid with its contents, live objects are intact, and the heap
 * keeps working. */
#define _GNU_SOURCE
#include "check.h"

#include <malloc.h>
#include <stdint.h>

#define PDMAX ((size_t)PTRDIFF_MAX)

/* Each cannot be allocated on a 64-bit machine: beyond PTRDIFF_MAX, or larger than any
 * user address space (2^47 and above). Several sit just below SIZE_MAX, where adding a
 * header, rounding up to a class or page, or adding an alignment wraps around. */
static const size_t huge[] = {
    SIZE_MAX,          SIZE_MAX - 1,      SIZE_MAX - 7,       SIZE_MAX - 15,
    SIZE_MAX - 16,     SIZE_MAX - 4095,   SIZE_MAX - 8191,    SIZE_MAX - 8192,
    SIZE_MAX - 65535,  SIZE_MAX - (1u << 20) + 1, SIZE_MAX / 2 + 1, SIZE_MAX / 2,
    PDMAX + 1,         PDMAX,             PDMAX - 4095,       (size_t)1 << 62,
    (size_t)1 << 56,   (size_t)1 << 50,   (size_t)1 << 48,
};
#define NHUGE (sizeof huge / sizeof huge[0])

/* (count, size) pairs whose product overflows size_t, or exceeds PTRDIFF_MAX. */
static const size_t pairs[][2] = {
    {SIZE_MAX / 2, 4},
    {4, SIZE_MAX / 2},
    {SIZE_MAX, SIZE_MAX},
    {SIZE_MAX, 2},
    {2, SIZE_MAX / 2 + 1},
    {(size_t)1 << 32, (size_t)1 << 32},
    {((size_t)1 << 32) + 1, ((size_t)1 << 32) - 1},
    {SIZE_MAX / 16 + 1, 16},
    {SIZE_MAX / 3 + 1, 3},
    {PDMAX / 2 + 1, 2},         /* product PTRDIFF_MAX + 1: no wrap, still too big */
    {1, SIZE_MAX},
    {SIZE_MAX, 1},
    {(size_t)1 << 24, (size_t)1 << 30},
};
#define NPAIRS (sizeof pairs / sizeof pairs[0])

static const size_t aligns[] = {8, 16, 32, 64, 4096, 8192, 65536, 1 << 20};
#define NALIGNS (sizeof aligns / sizeof aligns[0])

static void test_malloc(void)
{
    size_t i;
    for (i = 0; i < NHUGE; i++) {
        void *p;
        errno = 0;
        p = malloc(opaque_size(huge[i]));
        CHECKF(p == NULL, "malloc(%zu) = %p", huge[i], p);
        CHECK_ERRNO(ENOMEM, "malloc");
    }
}

static void test_calloc(void)
{
    size_t i;
    for (i = 0; i < NPAIRS; i++) {
        void *p;
        errno = 0;
        p = calloc(opaque_size(pairs[i][0]), opaque_size(pairs[i][1]));
        CHECKF(p == NULL, "calloc(%zu, %zu) = %p", pairs[i][0], pairs[i][1], p);
        CHECK_ERRNO(ENOMEM, "calloc");
    }
}

/* A failed realloc must leave the object as it was. Objects of several sizes, since the
 * small, large and in-place paths differ. */
static void test_realloc(int have_reallocarray)
{
    static const size_t olds[] = {0, 1, 16, 100, 4096, 32768, 40000, 1 << 20};
    size_t o, i;
    for (o = 0; o < sizeof olds / sizeof olds[0]; o++) {
        size_t n = olds[o];
        void *p = malloc(n), *q;
        CHECK(p != NULL);
        fill_pattern(p, n, n + 1);
        for (i = 0; i < NHUGE; i++) {
            errno = 0;
            q = realloc(p, opaque_size(huge[i]));
            CHECKF(q == NULL, "realloc(%zu-byte object, %zu) = %p", n, huge[i], q);
            CHECK_ERRNO(ENOMEM, "realloc");
            CHECK_PATTERN(p, n, n + 1);
        }
        if (have_reallocarray)
            for (i = 0; i < NPAIRS; i++) {
                errno = 0;
                q = reallocarray(p, opaque_size(pairs[i][0]), opaque_size(pairs[i][1]));
                CHECKF(q == NULL, "reallocarray(%zu-byte object, %zu, %zu) = %p", n,
                       pairs[i][0], pairs[i][1], q);
                CHECK_ERRNO(ENOMEM, "reallocarray");
                CHECK_PATTERN(p, n, n + 1);
            }
        /* still a live, growable object */
        q = realloc(p, n + 1000);
        CHECK(q != NULL);
        CHECK_PATTERN(q, n, n + 1);
        free(q);
    }
    for (i = 0; i < NHUGE; i++) {
        void *q;
        errno = 0;
        q = realloc(NULL, opaque_size(huge[i]));
        CHECKF(q == NULL, "realloc(NULL, %zu) = %p", huge[i], q);
        CHECK_ERRNO(ENOMEM, "realloc(NULL, huge)");
    }
    if (have_reallocarray)
        for (i = 0; i < NPAIRS; i++) {
            void *q;
            errno = 0;
            q = reallocarray(NULL, opaque_size(pairs[i][0]), opaque_size(pairs[i][1]));
            CHECKF(q == NULL, "reallocarray(NULL, %zu, %zu) = %p", pairs[i][0],
                   pairs[i][1], q);
            CHECK_ERRNO(ENOMEM, "reallocarray(NULL, ...)");
        }
}

static void test_aligned(int have_memalign, int have_valloc, int have_pvalloc)
{
    size_t a, i;
    for (a = 0; a < NALIGNS; a++)
        for (i = 0; i < NHUGE; i++) {
            size_t al = aligns[a], n = huge[i];
            void *p = (void *)0x1;
            int r;
            /* glibc sets errno to ENOMEM as well as returning it (only its EINVAL
             * leaves errno alone), and programs read errno after a failure. */
            errno = 0;
            r = posix_memalign_opaque(&p, opaque_size(al), opaque_size(n));
            CHECKF(r == ENOMEM, "posix_memalign(align %zu, %zu) returned %d", al, n, r);
            CHECK_ERRNO(ENOMEM, "posix_memalign");
            CHECKF(p == (void *)0x1, "posix_memalign wrote *memptr on failure");

            errno = 0;
            p = aligned_alloc(opaque_size(al), opaque_size(n));
            CHECKF(p == NULL, "aligned_alloc(%zu, %zu) = %p", al, n, p);
            CHECK_ERRNO(ENOMEM, "aligned_alloc");

            if (have_memalign) {
                errno = 0;
                p = memalign(opaque_size(al), opaque_size(n));
                CHECKF(p == NULL, "memalign(%zu, %zu) = %p", al, n, p);
                CHECK_ERRNO(ENOMEM, "memalign");
            }
        }
    /* a power-of-two alignment too large to satisfy: NULL and ENOMEM or EINVAL */
    for (i = 48; i < 64; i++) {
        size_t al = (size_t)1 << i;
        void *p = (void *)0x1;
        errno = 0;
        int r = posix_memalign_opaque(&p, opaque_size(al), 1);
        CHECKF(r == ENOMEM || r == EINVAL, "posix_memalign(align 2^%zu, 1) returned %d", i,
               r);
        if (r == ENOMEM)
            CHECK_ERRNO(ENOMEM, "posix_memalign(huge alignment)");
        CHECK(p == (void *)0x1);
        errno = 0;
        p = aligned_alloc(opaque_size(al), 1);
        CHECKF(p == NULL, "aligned_alloc(2^%zu, 1) = %p", i, p);
        if (errno != EINVAL)
            CHECK_ERRNO(ENOMEM, "aligned_alloc(huge alignment)");
    }
    for (i = 0; i < NHUGE; i++) {
        void *p;
        if (have_valloc) {
            errno = 0;
            p = valloc(opaque_size(huge[i]));
            CHECKF(p == NULL, "valloc(%zu) = %p", huge[i], p);
            CHECK_ERRNO(ENOMEM, "valloc");
        }
        if (have_pvalloc) {
            /* rounding SIZE_MAX - 4095 .. SIZE_MAX up to a page wraps to 0 */
            errno = 0;
            p = pvalloc(opaque_size(huge[i]));
            CHECKF(p == NULL, "pvalloc(%zu) = %p", huge[i], p);
            CHECK_ERRNO(ENOMEM, "pvalloc");
        }
    }
}

int main(void)
{
    enum { NCANARY = 64 };
    void *canary[NCANARY];
    size_t i, round;
    int have_reallocarray, have_memalign, have_valloc, have_pvalloc;

    goalloc_expect_active();
    have_reallocarray = allocator_provides("reallocarray");
    have_memalign = allocator_provides("memalign");
    have_valloc = allocator_provides("valloc");
    have_pvalloc = allocator_provides("pvalloc");
    allocator_provides("posix_memalign");
    allocator_provides("aligned_alloc");

    for (i = 0; i < NCANARY; i++) {
        size_t n = (i % 4 == 0) ? 50000 + i : 16 * i + 1;
        canary[i] = malloc(n);
        CHECK(canary[i] != NULL);
        fill_pattern(canary[i], n, i);
    }
    /* repeated, so that a failure path leaking memory or a lock shows up */
    for (round = 0; round < 20; round++) {
        test_malloc();
        test_calloc();
        test_realloc(have_reallocarray);
        test_aligned(have_memalign, have_valloc, have_pvalloc);
    }
    for (i = 0; i < NCANARY; i++) {
        size_t n = (i % 4 == 0) ? 50000 + i : 16 * i + 1;
        CHECK_PATTERN(canary[i], n, i);
        free(canary[i]);
    }
    /* the heap still works, including from a size just under a failed one */
    for (i = 0; i < 1000; i++) {
        void *p = malloc(i * 97);
        CHECK(p != NULL);
        fill_pattern(p, i * 97, i);
        CHECK_PATTERN(p, i * 97, i);
        free(p);
    }
    printf("overflow: OK\n");
    return 0;
}
