/* header_api.c — the prefixed API declared in include/goalloc.h, for programs that link
 * goalloc beside another malloc: allocate, write, usable size, free, sized frees,
 * calloc, realloc, reallocarray, the aligned allocators, errno cases,
 * goalloc_release_all, goalloc_version and goalloc_stats_print. Built only in "linked"
 * mode (-lgoalloc -I include). */
#define _GNU_SOURCE
#include "check.h"

#include <stddef.h>

#include "goalloc.h"

static size_t page;

static void test_basic(void)
{
    static const size_t sizes[] = {0,     1,     8,      15,     16,      17,
                                   100,   1024,  4097,   32768,  32769,   100000,
                                   1 << 20, (8 << 20) + 5};
    size_t i;
    for (i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i], us;
        void *p = goalloc_malloc(n), *q;
        CHECKF(p != NULL, "goalloc_malloc(%zu)", n);
        CHECK(is_aligned(p, n >= 16 ? 16 : 8));
        us = goalloc_usable_size(p);
        CHECKF(us >= n, "goalloc_usable_size(goalloc_malloc(%zu)) = %zu", n, us);
        fill_pattern(p, us, n);
        CHECK_PATTERN(p, us, n);
        goalloc_free(p);

        p = goalloc_malloc(n);
        CHECK(p != NULL);
        fill_pattern(p, n, n + 1);
        q = goalloc_realloc(p, n * 2 + 10);
        CHECK(q != NULL);
        CHECK_PATTERN(q, n, n + 1);
        goalloc_free_sized(q, n * 2 + 10);

        q = goalloc_calloc(n, 1);
        CHECK(q != NULL);
        escape(q);
        {
            const unsigned char *z = q;
            size_t k;
            for (k = 0; k < n; k++)
                CHECK(z[k] == 0);
        }
        goalloc_free(q);
    }
    goalloc_free(NULL);
    goalloc_free_sized(NULL, 0);
    /* malloc(0) is unique */
    {
        void *a = goalloc_malloc(0), *b = goalloc_malloc(0);
        CHECK(a != NULL && b != NULL && a != b);
        goalloc_free(a);
        goalloc_free(b);
    }
    /* realloc(NULL, n) allocates; realloc(p, 0) frees and returns NULL */
    {
        void *p = goalloc_realloc(NULL, 300);
        CHECK(p != NULL);
        memset(p, 1, 300);
        CHECK(goalloc_realloc(p, 0) == NULL);
    }
    /* reallocarray */
    {
        void *p = goalloc_reallocarray(NULL, 10, 10), *q;
        CHECK(p != NULL);
        fill_pattern(p, 100, 5);
        q = goalloc_reallocarray(p, 100, 100);
        CHECK(q != NULL);
        CHECK_PATTERN(q, 100, 5);
        errno = 0;
        CHECK(goalloc_reallocarray(q, opaque_size(SIZE_MAX / 2), 4) == NULL);
        CHECK(errno == ENOMEM);
        CHECK_PATTERN(q, 100, 5);
        goalloc_free(q);
    }
}

static void test_aligned(void)
{
    size_t lg;
    for (lg = 0; lg <= 20; lg++) {
        size_t a = (size_t)1 << lg;
        size_t sizes[] = {0, 1, a - 1, a, a + 1, 3 * a, 40000};
        size_t i;
        for (i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            size_t n = sizes[i];
            void *p = NULL;
            if (a >= sizeof(void *)) {
                CHECK(goalloc_posix_memalign(&p, a, n) == 0);
                CHECKF(p != NULL && is_aligned(p, a), "posix_memalign(%zu, %zu) = %p", a,
                       n, p);
                CHECK(goalloc_usable_size(p) >= n);
                memset(p, 0x21, n);
                goalloc_free(p);
            }
            p = goalloc_aligned_alloc(a, n);
            CHECKF(p != NULL && is_aligned(p, a), "aligned_alloc(%zu, %zu) = %p", a, n, p);
            memset(p, 0x22, n);
            goalloc_free_aligned_sized(p, a, n);
            p = goalloc_memalign(a, n);
            CHECKF(p != NULL && is_aligned(p, a), "memalign(%zu, %zu) = %p", a, n, p);
            memset(p, 0x23, n);
            goalloc_free(p);
        }
    }
    {
        void *p = goalloc_valloc(100);
        CHECK(p != NULL && is_aligned(p, page));
        CHECK(goalloc_usable_size(p) >= 100);
        goalloc_free(p);
        p = goalloc_pvalloc(page + 1);
        CHECK(p != NULL && is_aligned(p, page));
        CHECK(goalloc_usable_size(p) >= 2 * page);
        memset(p, 0x24, 2 * page);
        goalloc_free(p);
    }
    /* bad alignments */
    {
        void *p = (void *)0x1;
        errno = 777;
        CHECK(goalloc_posix_memalign(&p, 24, 16) == EINVAL);
        CHECK(goalloc_posix_memalign(&p, 4, 16) == EINVAL);
        CHECK(goalloc_posix_memalign(&p, 0, 16) == EINVAL);
        CHECK(errno == 777 && p == (void *)0x1);
        errno = 0;
        p = goalloc_aligned_alloc(opaque_size(24), 100);
        CHECKF(p == NULL && errno == EINVAL, "goalloc_aligned_alloc(24, 100) = %p", p);
    }
    /* overflow */
    errno = 0;
    CHECK(goalloc_malloc(opaque_size(SIZE_MAX)) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(goalloc_calloc(opaque_size(SIZE_MAX / 2), 4) == NULL && errno == ENOMEM);
}

static void test_release_all(void)
{
    enum { N = 500 };
    void *p[N];
    size_t i, released;
    for (i = 0; i < N; i++) {
        p[i] = goalloc_malloc(i % 10 == 0 ? 200000 : 3000);
        CHECK(p[i] != NULL);
        memset(p[i], 0x31, 3000);
    }
    for (i = 0; i < N; i++)
        goalloc_free(p[i]);
    released = goalloc_release_all();
    printf("goalloc_release_all released %zu bytes\n", released);
    /* the heap still works afterwards, and released memory comes back zeroed or not,
     * but usable */
    for (i = 0; i < N; i++) {
        p[i] = goalloc_malloc(i % 10 == 0 ? 200000 : 3000);
        CHECK(p[i] != NULL);
        fill_pattern(p[i], 3000, i);
    }
    for (i = 0; i < N; i++) {
        CHECK_PATTERN(p[i], 3000, i);
        goalloc_free(p[i]);
    }
    (void)goalloc_release_all();
}

/* goalloc_version and goalloc_stats_print as the header declares them. */
static void test_version_and_print(void)
{
    CHECKF(!strcmp(goalloc_version(), GOALLOC_VERSION), "goalloc_version() %s, header %s",
           goalloc_version(), GOALLOC_VERSION);
    FILE *f = tmpfile();
    CHECK(f != NULL);
    CHECK(goalloc_stats_print(f, "json") == 0);
    CHECK(ftell(f) > 100);
    fclose(f);
}

int main(void)
{
    goalloc_expect_active();
    page = (size_t)sysconf(_SC_PAGESIZE);
    test_basic();
    test_aligned();
    test_release_all();
    test_version_and_print();
    printf("header_api: OK\n");
    return 0;
}
