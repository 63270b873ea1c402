/* api.c — the C malloc API contract: exports, malloc(0), free(NULL), errno, usable size,
 * calloc zeroing (also of reused dirty memory), realloc edge cases, sized frees, and the
 * glibc extras (mallinfo2, malloc_trim, malloc_stats, malloc_info, mallopt) being safe. */
#define _GNU_SOURCE
#include "check.h"

#include <malloc.h>
#include <stdint.h>

/* Entry points the library exports with the C ABI (DESIGN.md "Interfaces"). */
static const char *const exported[] = {
    "malloc", "free", "calloc", "realloc", "reallocarray", "posix_memalign",
    "aligned_alloc", "memalign", "valloc", "pvalloc", "malloc_usable_size",
    "free_sized", "free_aligned_sized", "malloc_trim", "mallopt", "mallinfo",
    "mallinfo2", "malloc_stats", "malloc_info",
};

static void test_exports(void)
{
    size_t i;
    Dl_info info;
    for (i = 0; i < sizeof exported / sizeof exported[0]; i++) {
        if (goalloc_expected()) {
            expect_goalloc_symbol(exported[i], NULL);
        } else {
            const char *f = provider_of(exported[i], &info);
            printf("  %-20s from %s\n", exported[i], f ? f : "(undefined)");
        }
    }
}

static int cmp_ptr(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t) * (void *const *)a, y = (uintptr_t) * (void *const *)b;
    return x < y ? -1 : x > y;
}

/* Live objects must not overlap, counting each object's whole usable size. */
static void check_disjoint(void **ptrs, size_t n)
{
    size_t i;
    void **sorted = malloc(n * sizeof *sorted);
    CHECK(sorted != NULL);
    memcpy(sorted, ptrs, n * sizeof *sorted);
    qsort(sorted, n, sizeof *sorted, cmp_ptr);
    for (i = 0; i + 1 < n; i++) {
        uintptr_t end = (uintptr_t)sorted[i] + malloc_usable_size(sorted[i]);
        CHECKF(sorted[i] != sorted[i + 1], "pointer %p returned twice while live",
               sorted[i]);
        CHECKF(end <= (uintptr_t)sorted[i + 1],
               "objects overlap: %p + usable %zu > %p", sorted[i],
               malloc_usable_size(sorted[i]), sorted[i + 1]);
    }
    free(sorted);
}

static void test_malloc_zero(void)
{
    enum { N = 1000 };
    static void *p[N];
    size_t i;
    for (i = 0; i < N; i++) {
        p[i] = malloc(opaque_size(0));
        CHECKF(p[i] != NULL, "malloc(0) #%zu returned NULL", i);
        CHECKF(is_aligned(p[i], 8), "malloc(0) = %p not 8-aligned", p[i]);
        /* whatever usable size is reported must be writable */
        memset(p[i], 0x5A, malloc_usable_size(p[i]));
    }
    check_disjoint(p, N);
    for (i = 0; i < N; i++)
        free(p[i]);

    /* realloc(NULL, 0) is malloc(0) */
    p[0] = realloc(NULL, opaque_size(0));
    CHECK(p[0] != NULL);
    free(p[0]);
    /* calloc with a zero count or size: glibc (and jemalloc) return a unique pointer */
    p[0] = calloc(0, 16);
    p[1] = calloc(16, 0);
    p[2] = calloc(0, 0);
    CHECK(p[0] != NULL && p[1] != NULL && p[2] != NULL);
    CHECK(p[0] != p[1] && p[1] != p[2] && p[0] != p[2]);
    free(p[0]);
    free(p[1]);
    free(p[2]);
}

static void test_free_null_and_errno(void)
{
    static const size_t sizes[] = {1, 16, 100, 4096, 32768, 40000, 1 << 20, 64 << 20};
    size_t i;
    errno = 12345;
    free_opaque(NULL);
    CHECKF(errno == 12345, "free(NULL) changed errno to %d", errno);
    for (i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        void *p = malloc(sizes[i]);
        CHECK(p != NULL);
        memset(p, 1, sizes[i]);
        escape(p);
        errno = 4242;
        free_opaque(p);
        CHECKF(errno == 4242, "free of a %zu-byte object changed errno to %d", sizes[i],
               errno);
    }
    /* glibc documents malloc_usable_size(NULL) == 0 */
    CHECK(malloc_usable_size(NULL) == 0);
}

static void test_alignment_and_usable(void)
{
    size_t n;
    for (n = 1; n <= 2048; n++) {
        unsigned char *p = malloc(n);
        size_t us;
        CHECKF(p != NULL, "malloc(%zu)", n);
        CHECKF(is_aligned(p, n >= 16 ? 16 : 8), "malloc(%zu) = %p misaligned", n,
               (void *)p);
        us = malloc_usable_size(p);
        CHECKF(us >= n, "malloc_usable_size(malloc(%zu)) = %zu", n, us);
        memset(p, 0xC3, us);
        escape(p);
        CHECK(p[us - 1] == 0xC3);
        free(p);
    }
}

static void test_calloc(void)
{
    static const size_t sizes[] = {1,    8,     16,    24,    48,     100,    256,
                                   1000, 4096,  8192,  10000, 32768,  32769,  65536,
                                   100000, 1 << 20, (1 << 20) + 1, 4 << 20};
    enum { ROUNDS = 100, BATCH = 64 };
    size_t s, r, i, j;
    for (s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        size_t n = sizes[s];
        /* one object: dirty it, free it, calloc the same size (probably the same slot) */
        for (r = 0; r < ROUNDS; r++) {
            unsigned char *p = malloc(n), *q;
            CHECK(p != NULL);
            memset(p, 0xAB, malloc_usable_size(p));
            escape(p);
            free(p);
            q = (r & 1) ? calloc(n, 1) : calloc(1, n);
            CHECKF(q != NULL, "calloc of %zu", n);
            escape(q);
            for (i = 0; i < n; i++)
                CHECKF(q[i] == 0, "calloc(%zu) byte %zu is 0x%02x (round %zu)", n, i,
                       q[i], r);
            free(q);
        }
        /* a batch: many dirty objects freed, then calloc'd back in whatever order */
        if (n <= 100000) {
            unsigned char *b[BATCH];
            for (j = 0; j < BATCH; j++) {
                b[j] = malloc(n);
                CHECK(b[j] != NULL);
                memset(b[j], 0xAB, malloc_usable_size(b[j]));
                escape(b[j]);
            }
            for (j = 0; j < BATCH; j++)
                free(b[(j * 7) % BATCH]);
            for (j = 0; j < BATCH; j++) {
                b[j] = calloc(n, 1);
                CHECK(b[j] != NULL);
                escape(b[j]);
                for (i = 0; i < n; i++)
                    CHECKF(b[j][i] == 0, "calloc(%zu) batch byte %zu is 0x%02x", n, i,
                           b[j][i]);
            }
            for (j = 0; j < BATCH; j++)
                free(b[j]);
        }
    }
    /* element-count x element-size form with a non-trivial product */
    {
        uint32_t *a = calloc(1000, sizeof *a);
        CHECK(a != NULL);
        escape(a);
        for (i = 0; i < 1000; i++)
            CHECK(a[i] == 0);
        free(a);
    }
}

static void test_realloc_edges(void)
{
    unsigned char *p, *q;
    size_t i;
    /* realloc(NULL, n) is malloc(n) */
    p = realloc(NULL, 100);
    CHECK(p != NULL);
    CHECK(malloc_usable_size(p) >= 100);
    fill_pattern(p, 100, 7);
    q = realloc(p, 5000);
    CHECK(q != NULL);
    CHECK_PATTERN(q, 100, 7);
    /* realloc(p, 0) frees p and returns NULL (glibc behaviour) */
    errno = 0;
    p = realloc(q, opaque_size(0));
    CHECKF(p == NULL, "realloc(p, 0) returned %p, glibc returns NULL", (void *)p);
    /* same size, and to exactly the usable size: contents kept */
    p = malloc(200);
    CHECK(p != NULL);
    fill_pattern(p, 200, 9);
    q = realloc(p, 200);
    CHECK(q != NULL);
    CHECK_PATTERN(q, 200, 9);
    i = malloc_usable_size(q);
    p = realloc(q, i);
    CHECK(p != NULL);
    CHECK_PATTERN(p, 200, 9);
    memset(p, 0x11, malloc_usable_size(p));
    free(p);

    if (allocator_provides("reallocarray")) {
        p = reallocarray(NULL, 10, 10);
        CHECK(p != NULL);
        CHECK(malloc_usable_size(p) >= 100);
        fill_pattern(p, 100, 11);
        q = reallocarray(p, 300, 7);
        CHECK(q != NULL);
        CHECK(malloc_usable_size(q) >= 2100);
        CHECK_PATTERN(q, 100, 11);
        free(q);
    }
}

typedef void (*free_sized_fn)(void *, size_t);
typedef void (*free_aligned_sized_fn)(void *, size_t, size_t);

/* free_sized/free_aligned_sized are C23 and missing from glibc 2.36, so they are looked
 * up at run time; under goalloc they must exist. */
static void test_sized_free(void)
{
    static const size_t sizes[] = {0, 1, 8, 16, 17, 100, 1024, 4000, 32768, 32769,
                                   100000, 1 << 20};
    free_sized_fn fs = NULL;
    free_aligned_sized_fn fas = NULL;
    size_t i, a;
    if (bound_symbol("free_sized") != NULL && allocator_provides("free_sized"))
        fs = (free_sized_fn)bound_symbol("free_sized");
    else
        CHECK(!goalloc_expected());
    if (bound_symbol("free_aligned_sized") != NULL &&
        allocator_provides("free_aligned_sized"))
        fas = (free_aligned_sized_fn)bound_symbol("free_aligned_sized");
    else
        CHECK(!goalloc_expected());
    if (fs != NULL) {
        fs(NULL, 0);
        for (i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            void *p = malloc(sizes[i]);
            CHECK(p != NULL);
            memset(p, 3, sizes[i]);
            escape(p);
            fs(p, sizes[i]);
            p = calloc(1, sizes[i]);
            CHECK(p != NULL);
            fs(p, sizes[i]);
        }
    } else {
        printf("note: free_sized not available: not tested\n");
    }
    if (fas != NULL) {
        fas(NULL, 64, 0);
        for (a = 8; a <= 65536; a *= 8)
            for (i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
                void *p = aligned_alloc(a, sizes[i]);
                CHECK(p != NULL);
                CHECK(is_aligned(p, a));
                memset(p, 4, sizes[i]);
                escape(p);
                fas(p, a, sizes[i]);
            }
    } else {
        printf("note: free_aligned_sized not available: not tested\n");
    }
}

/* Random mix of live objects: contents survive other allocations, nothing overlaps. */
static void test_mixed_live(void)
{
    enum { N = 3000 };
    static void *p[N];
    static size_t sz[N];
    uint64_t rng = 0x1234567;
    size_t i;
    for (i = 0; i < N; i++) {
        uint64_t r = xorshift64(&rng);
        sz[i] = (r % 8 == 0) ? (size_t)(r >> 8) % 300000 : (size_t)(r >> 8) % 2000;
        p[i] = malloc(sz[i]);
        CHECK(p[i] != NULL);
        fill_pattern(p[i], sz[i], i);
    }
    check_disjoint(p, N);
    for (i = 0; i < N; i++) {
        size_t k = (i * 1237) % N;
        CHECK_PATTERN(p[k], sz[k], k);
        free(p[k]);
    }
}

static void test_glibc_extras(void)
{
    enum { N = 2000 };
    static void *p[N];
    size_t i;
    struct mallinfo2 mi;
    FILE *devnull;

    for (i = 0; i < N; i++) {
        p[i] = malloc(i % 7 == 0 ? 100000 : 1000);
        CHECK(p[i] != NULL);
        memset(p[i], 0x77, 1000);
    }
    mi = mallinfo2();
    printf("mallinfo2: arena %zu uordblks %zu fordblks %zu hblkhd %zu\n", mi.arena,
           mi.uordblks, mi.fordblks, mi.hblkhd);
    for (i = 0; i < N; i++)
        free(p[i]);
    mi = mallinfo2();
    (void)mi;
    {
        /* mallinfo is deprecated in glibc's header; call it through its address */
        struct mallinfo (*old_mallinfo)(void) =
            (struct mallinfo(*)(void))bound_symbol("mallinfo");
        if (old_mallinfo != NULL) {
            struct mallinfo m = old_mallinfo();
            (void)m;
        }
    }
    /* malloc_trim returns 1 if memory was released, 0 if not */
    {
        int t = malloc_trim(0);
        CHECKF(t == 0 || t == 1, "malloc_trim(0) returned %d", t);
        t = malloc_trim(1 << 20);
        CHECKF(t == 0 || t == 1, "malloc_trim(1 MiB) returned %d", t);
    }
    malloc_stats(); /* writes to stderr */
    devnull = fopen("/dev/null", "w");
    CHECK(devnull != NULL);
    {
        int r = malloc_info(0, devnull);
        CHECKF(r == 0, "malloc_info(0, f) returned %d", r);
    }
    fclose(devnull);
    /* mallopt: 1 on success, 0 for an unknown or refused parameter; either way callable */
    {
        int r1 = mallopt(M_MMAP_THRESHOLD, 256 * 1024);
        int r2 = mallopt(M_TRIM_THRESHOLD, 512 * 1024);
        int r3 = mallopt(M_ARENA_MAX, 4);
        int r4 = mallopt(-12345, 1);
        CHECK((r1 == 0 || r1 == 1) && (r2 == 0 || r2 == 1) && (r3 == 0 || r3 == 1));
        CHECK(r4 == 0 || r4 == 1);
    }
    /* the heap still works after all of that */
    for (i = 0; i < N; i++) {
        p[i] = malloc(i % 5 == 0 ? 70000 : 300);
        CHECK(p[i] != NULL);
        fill_pattern(p[i], 300, i);
    }
    for (i = 0; i < N; i++) {
        CHECK_PATTERN(p[i], 300, i);
        free(p[i]);
    }
    {
        int t = malloc_trim(0);
        CHECKF(t == 0 || t == 1, "malloc_trim(0) returned %d", t);
    }
}

static void test_basic_errors(void)
{
    void *p = (void *)0x1;
    int r;
    /* bad alignment: posix_memalign returns EINVAL and leaves errno alone */
    errno = 777;
    r = posix_memalign_opaque(&p, 3, 16);
    CHECKF(r == EINVAL, "posix_memalign(align 3) returned %d", r);
    CHECKF(errno == 777, "posix_memalign changed errno to %d", errno);
    CHECK(p == (void *)0x1);
    r = posix_memalign_opaque(&p, sizeof(void *) / 2, 16);
    CHECKF(r == EINVAL, "posix_memalign(align sizeof(void*)/2) returned %d", r);
    CHECK(errno == 777);
    /* huge malloc: NULL and ENOMEM */
    errno = 0;
    p = malloc(opaque_size(SIZE_MAX));
    CHECK(p == NULL);
    CHECK_ERRNO(ENOMEM, "malloc(SIZE_MAX)");
}

int main(void)
{
    goalloc_expect_active();
    printf("exports:\n");
    test_exports();
    test_malloc_zero();
    test_free_null_and_errno();
    test_alignment_and_usable();
    test_calloc();
    test_realloc_edges();
    test_sized_free();
    test_mixed_live();
    test_basic_errors();
    test_glibc_extras();
    printf("api: OK\n");
    return 0;
}
