/* libc_names.c — glibc's __libc_malloc, __libc_calloc, __libc_realloc, __libc_free,
 * __libc_memalign, __libc_valloc and __libc_pvalloc, which some programs and runtimes
 * call directly, are the allocator's own: their objects go to free, realloc and
 * malloc_usable_size and back, with many live at once, and their failures set errno as
 * malloc's do. Under glibc (no GOALLOC_EXPECT) the program checks glibc's, which is how
 * the test itself is checked. */
#define _GNU_SOURCE
#include "check.h"

#include <malloc.h>
#include <stdint.h>

/* glibc exports these (GLIBC_2.2.5) without declaring them. */
extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t size);
extern void __libc_free(void *p);
extern void *__libc_memalign(size_t align, size_t size);
extern void *__libc_valloc(size_t size);
extern void *__libc_pvalloc(size_t size);

static void check_providers(void)
{
    if (!goalloc_expected())
        return;
    expect_goalloc_symbol("__libc_malloc", (const void *)&__libc_malloc);
    expect_goalloc_symbol("__libc_calloc", (const void *)&__libc_calloc);
    expect_goalloc_symbol("__libc_realloc", (const void *)&__libc_realloc);
    expect_goalloc_symbol("__libc_free", (const void *)&__libc_free);
    expect_goalloc_symbol("__libc_memalign", (const void *)&__libc_memalign);
    expect_goalloc_symbol("__libc_valloc", (const void *)&__libc_valloc);
    expect_goalloc_symbol("__libc_pvalloc", (const void *)&__libc_pvalloc);
}

/* Objects from one family freed by the other, with LIVE objects live at a time. */
enum { LIVE = 500, ROUNDS = 20000 };

static void mixed(void)
{
    static void *live[LIVE];
    static size_t len[LIVE];
    uint64_t rng = 12345;
    for (int i = 0; i < ROUNDS; i++) {
        int k = (int)(xorshift64(&rng) % LIVE);
        if (live[k] != NULL) {
            CHECK_PATTERN(live[k], len[k], (uint64_t)k + len[k]);
            CHECK(malloc_usable_size(live[k]) >= len[k]);
            switch (xorshift64(&rng) % 3) {
            case 0: free(live[k]); break;
            case 1: __libc_free(live[k]); break;
            default: {
                /* realloc of the other family, then free */
                size_t n = (size_t)(xorshift64(&rng) % 3000);
                void *q = (i & 1) ? __libc_realloc(live[k], n) : realloc(live[k], n);
                CHECK(n == 0 || q != NULL);
                size_t keep = n < len[k] ? n : len[k];
                if (q != NULL) {
                    CHECK_PATTERN(q, keep, (uint64_t)k + len[k]);
                    (i & 2) ? __libc_free(q) : free(q);
                }
            }
            }
            live[k] = NULL;
        }
        len[k] = (size_t)(xorshift64(&rng) % 2000);
        switch (xorshift64(&rng) % 6) {
        case 0: live[k] = __libc_malloc(len[k]); break;
        case 1: live[k] = __libc_calloc(1, len[k]); break;
        case 2: live[k] = __libc_memalign(64, len[k]); break;
        case 3: live[k] = malloc(len[k]); break;
        case 4: live[k] = __libc_realloc(NULL, len[k]); break;
        default: live[k] = __libc_valloc(len[k]); break;
        }
        CHECKF(live[k] != NULL, "allocation of %zu bytes", len[k]);
        fill_pattern(live[k], len[k], (uint64_t)k + len[k]);
    }
    for (int k = 0; k < LIVE; k++)
        __libc_free(live[k]);
}

static void each(void)
{
    /* the case a runtime hits: its own __libc_malloc, the program's free */
    char *p = __libc_malloc(100);
    CHECK(p != NULL);
    memset(p, 1, 100);
    free(p);

    p = malloc(100);
    memset(p, 2, 100);
    __libc_free(p);
    __libc_free(NULL);

    unsigned char *z = __libc_calloc(1000, 10);
    CHECK(z != NULL);
    for (size_t i = 0; i < 10000; i++)
        CHECK(z[i] == 0);
    z = realloc(z, 20000);
    CHECK(z != NULL && z[9999] == 0);
    __libc_free(z);

    p = __libc_realloc(malloc(10), 50000);
    CHECK(p != NULL);
    memset(p, 3, 50000);
    p = __libc_realloc(p, 10);
    CHECK(p != NULL && p[9] == 3);
    CHECK(__libc_realloc(p, 0) == NULL); /* frees p, as glibc's realloc(p, 0) */

    for (size_t a = 16; a <= ((size_t)1 << 20); a <<= 1) {
        void *q = __libc_memalign(a, 100);
        CHECKF(q != NULL && is_aligned(q, a), "__libc_memalign(%zu, 100) = %p", a, q);
        CHECK(malloc_usable_size(q) >= 100);
        free(q);
    }
    void *v = __libc_valloc(100);
    CHECK(v != NULL && is_aligned(v, 4096));
    free(v);
    v = __libc_pvalloc(100);
    CHECK(v != NULL && is_aligned(v, 4096) && malloc_usable_size(v) >= 4096);
    memset(v, 4, 4096);
    __libc_free(v);

    errno = 0;
    CHECK(__libc_malloc(opaque_size(SIZE_MAX)) == NULL);
    CHECK_ERRNO(ENOMEM, "__libc_malloc(SIZE_MAX)");
    errno = 0;
    CHECK(__libc_calloc(opaque_size(SIZE_MAX / 2), 4) == NULL);
    CHECK_ERRNO(ENOMEM, "__libc_calloc overflowing");
    errno = 0;
    CHECK(__libc_memalign(64, opaque_size(SIZE_MAX - 100)) == NULL);
    CHECK_ERRNO(ENOMEM, "__libc_memalign(64, huge)");
}

int main(void)
{
    goalloc_expect_active();
    check_providers();
    each();
    mixed();
    printf("libc_names: OK\n");
    return 0;
}
