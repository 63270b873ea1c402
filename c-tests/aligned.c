/* aligned.c — posix_memalign, aligned_alloc and memalign for every power-of-two alignment
 * from 1 to 1 MiB crossed with sizes 0, 1, a-1, a, a+1, 3a, 40000, 100000; valloc and
 * pvalloc; and the EINVAL cases.
 *
 * Semantic choices, where glibc 2.36 and a careful allocator differ:
 * - aligned_alloc/memalign with an alignment that is not a power of two: glibc 2.36
 *   rounds it up to the next power of two and succeeds (aligned_alloc is memalign there;
 *   2.38 made aligned_alloc fail with EINVAL); jemalloc and goalloc return NULL with
 *   EINVAL. Only what both share is tested: either NULL with errno EINVAL, or a usable
 *   object aligned to the next power of two.
 * - aligned_alloc with a size that is not a multiple of the alignment: valid since C17
 *   (DR 460) and accepted by glibc; tested as a normal request.
 * - pvalloc(0): glibc returns a page-aligned minimum-size chunk (usable size 24), not a
 *   page; the "rounded up to a page" check is made only for sizes > 0. */
#define _GNU_SOURCE
#include "check.h"

#include <malloc.h>

enum { MAX_ALIGN_LOG2 = 20 };

typedef void (*free_aligned_sized_fn)(void *, size_t, size_t);
static free_aligned_sized_fn free_aligned_sized_p;
static size_t page;

/* Live objects per alignment, kept until the next alignment so that neighbours are
 * checked for overwrites. */
enum { MAX_LIVE = 3 * 8 };
static struct {
    void *p;
    size_t len;
    uint64_t seed;
} live[MAX_LIVE];
static size_t n_live;

static void keep(void *p, size_t align, size_t size, const char *fn)
{
    size_t us;
    CHECKF(p != NULL, "%s(align %zu, size %zu) returned NULL", fn, align, size);
    CHECKF(is_aligned(p, align), "%s(align %zu, size %zu) = %p misaligned", fn, align,
           size, p);
    us = malloc_usable_size(p);
    CHECKF(us >= size, "%s(align %zu, size %zu): usable size %zu", fn, align, size, us);
    CHECK(n_live < MAX_LIVE);
    live[n_live].p = p;
    live[n_live].len = us;
    live[n_live].seed = align * 31 + size + n_live;
    fill_pattern(p, us, live[n_live].seed);
    n_live++;
}

static void release_live(void)
{
    size_t i;
    for (i = 0; i < n_live; i++) {
        CHECK_PATTERN(live[i].p, live[i].len, live[i].seed);
        free(live[i].p);
    }
    n_live = 0;
}

static void test_power_of_two_alignments(int have_memalign)
{
    size_t lg, si;
    for (lg = 0; lg <= MAX_ALIGN_LOG2; lg++) {
        size_t a = (size_t)1 << lg;
        size_t sizes[] = {0, 1, a - 1, a, a + 1, 3 * a, 40000, 100000};
        for (si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
            size_t n = sizes[si];
            void *p = (void *)0x1;
            if (a >= sizeof(void *)) {
                int r = posix_memalign(&p, a, n);
                CHECKF(r == 0, "posix_memalign(align %zu, size %zu) returned %d", a, n, r);
                keep(p, a, n, "posix_memalign");
            }
            p = aligned_alloc(a, n);
            keep(p, a, n, "aligned_alloc");
            if (have_memalign && n == 0 && !strict_semantics()) {
                if (a == 16)
                    printf("note: memalign(a, 0) not tested (jemalloc 5.3 ignores the "
                           "alignment; allocator in use is not goalloc or glibc)\n");
            } else if (have_memalign) {
                p = memalign(a, n);
                keep(p, a, n, "memalign");
            }
        }
        release_live();
        /* the same object freed with free_aligned_sized when the allocator has it */
        if (free_aligned_sized_p != NULL)
            for (si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
                void *p = aligned_alloc(a, sizes[si]);
                CHECK(p != NULL && is_aligned(p, a));
                memset(p, 0x42, sizes[si]);
                escape(p);
                free_aligned_sized_p(p, a, sizes[si]);
            }
    }
}

/* Many aligned objects of one alignment at once: distinct, aligned, not overlapping. */
static void test_many_aligned(void)
{
    enum { N = 200 };
    static const size_t aligns[] = {32, 64, 256, 4096, 65536};
    size_t ai, i;
    for (ai = 0; ai < sizeof aligns / sizeof aligns[0]; ai++) {
        void *p[N];
        size_t a = aligns[ai];
        for (i = 0; i < N; i++) {
            size_t n = (i % 3 == 0) ? a : (i % 3 == 1) ? a / 2 + 1 : 24;
            CHECK(posix_memalign(&p[i], a, n) == 0);
            CHECKF(is_aligned(p[i], a), "align %zu: %p", a, p[i]);
            fill_pattern(p[i], n, i ^ a);
        }
        for (i = 0; i < N; i++) {
            size_t n = (i % 3 == 0) ? a : (i % 3 == 1) ? a / 2 + 1 : 24;
            CHECK_PATTERN(p[i], n, i ^ a);
            free(p[i]);
        }
    }
}

static void test_valloc_pvalloc(int have_valloc, int have_pvalloc)
{
    static const size_t sizes[] = {0, 1, 100, 4095, 4096, 4097, 8191, 8192, 8193,
                                   40000, 100000, 1 << 20, (1 << 20) + 1};
    size_t i;
    for (i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        if (have_valloc) {
            void *p = valloc(n);
            keep(p, page, n, "valloc");
        }
        if (have_pvalloc) {
            void *p = pvalloc(n);
            size_t rounded = (n + page - 1) / page * page;
            keep(p, page, rounded, "pvalloc");
        }
        release_live();
    }
}

static void test_einval(int have_memalign)
{
    /* posix_memalign: not a power of two, or not a multiple of sizeof(void *) */
    static const size_t bad_pm[] = {0, 1, 2, 4, 3, 12, 24, 48, 96, 100, 4097, 3 << 12,
                                    (1 << 20) + 8, SIZE_MAX, SIZE_MAX / 2};
    /* aligned_alloc / memalign: not a power of two */
    static const size_t npot[] = {0, 3, 24, 48, 100, 4097, 3 << 12, 12345};
    size_t i;
    for (i = 0; i < sizeof bad_pm / sizeof bad_pm[0]; i++) {
        void *p = (void *)0x1;
        int r;
        if (bad_pm[i] == 4 && sizeof(void *) == 4)
            continue;
        errno = 777;
        r = posix_memalign_opaque(&p, opaque_size(bad_pm[i]), 16);
        CHECKF(r == EINVAL, "posix_memalign(align %zu) returned %d, not EINVAL", bad_pm[i],
               r);
        CHECKF(errno == 777, "posix_memalign(align %zu) set errno to %d", bad_pm[i], errno);
        CHECKF(p == (void *)0x1, "posix_memalign(align %zu) wrote *memptr on failure",
               bad_pm[i]);
    }
    for (i = 0; i < sizeof npot / sizeof npot[0]; i++) {
        size_t a = npot[i], pow2 = 1, n = 100;
        int which;
        while (pow2 < a)
            pow2 *= 2;
        for (which = 0; which < 2; which++) {
            const char *fn = which ? "memalign" : "aligned_alloc";
            void *p;
            if (which && !have_memalign)
                continue;
            errno = 0;
            p = which ? memalign(opaque_size(a), n) : aligned_alloc(opaque_size(a), n);
            if (p == NULL) {
                CHECK_ERRNO(EINVAL, fn);
            } else {
                /* glibc 2.36: rounded up to the next power of two */
                CHECKF(is_aligned(p, pow2), "%s(%zu) = %p not aligned to %zu", fn, a, p,
                       pow2);
                CHECK(malloc_usable_size(p) >= n);
                memset(p, 0x99, n);
                escape(p);
                free(p);
            }
        }
    }
}

int main(void)
{
    int have_memalign, have_valloc, have_pvalloc;
    goalloc_expect_active();
    page = (size_t)sysconf(_SC_PAGESIZE);
    have_memalign = allocator_provides("memalign");
    have_valloc = allocator_provides("valloc");
    have_pvalloc = allocator_provides("pvalloc");
    allocator_provides("posix_memalign");
    allocator_provides("aligned_alloc");
    if (bound_symbol("free_aligned_sized") != NULL &&
        allocator_provides("free_aligned_sized"))
        free_aligned_sized_p = (free_aligned_sized_fn)bound_symbol("free_aligned_sized");
    else
        CHECKF(!goalloc_expected(), "free_aligned_sized is not exported");

    test_power_of_two_alignments(have_memalign);
    test_many_aligned();
    test_valloc_pvalloc(have_valloc, have_pvalloc);
    test_einval(have_memalign);
    printf("aligned: OK\n");
    return 0;
}
