/* realloc.c — grow and shrink chains across small sizes, size class edges, the 32 KiB
 * small/large boundary and large sizes up to 16 MiB. After every step the contents up to
 * min(old, new) are intact; the object is then filled to its new size with a pattern
 * that depends only on the byte position, so it can be checked again after the next
 * step. Also: several chains interleaved, random walks, realloc of aligned objects,
 * realloc(NULL, n) and realloc(p, 0). */
#define _GNU_SOURCE
#include "check.h"

#include <malloc.h>

static const size_t steps[] = {
    /* small, byte by byte around the smallest classes */
    1, 2, 3, 7, 8, 9, 15, 16, 17, 23, 24, 25, 31, 32, 33, 47, 48, 49, 63, 64, 65, 100,
    127, 128, 129, 255, 256, 257, 511, 512, 513, 1000, 1023, 1024, 1025, 2047, 2048, 2049,
    3072, 4095, 4096, 4097, 6144, 8191, 8192, 8193, 10000, 16383, 16384, 16385, 27264,
    28672,
    /* the small/large boundary */
    32767, 32768, 32769, 32776, 36864, 40000, 49152,
    /* large */
    65535, 65536, 65537, 100000, 131072, 262144, 262145, 1 << 20, (1 << 20) + 1,
    (1 << 20) + 8192, 3 << 20, 4 << 20, (4 << 20) + 1, 8 << 20, 16 << 20,
};
#define NSTEPS (sizeof steps / sizeof steps[0])

struct chain {
    unsigned char *p;
    size_t len;
    uint64_t seed;
};

static size_t n_reallocs;

/* One realloc step: contents up to min(old, new) kept, then refill to the new size. */
static void step(struct chain *c, size_t n)
{
    size_t keep = c->len < n ? c->len : n;
    unsigned char *q = realloc(c->p, n);
    CHECKF(q != NULL, "realloc(%p, %zu) from %zu bytes returned NULL", (void *)c->p, n,
           c->len);
    CHECKF(is_aligned(q, n >= 16 ? 16 : 8), "realloc to %zu returned %p", n, (void *)q);
    CHECKF(malloc_usable_size(q) >= n, "realloc to %zu: usable size %zu", n,
           malloc_usable_size(q));
    {
        size_t bad = find_pattern_mismatch(q, keep, c->seed);
        CHECKF(bad == (size_t)-1,
               "realloc %zu -> %zu (%p -> %p): byte %zu of the kept %zu changed", c->len,
               n, (void *)c->p, (void *)q, bad, keep);
    }
    c->p = q;
    c->len = n;
    fill_pattern(q, n, c->seed);
    n_reallocs++;
}

static void chain_start(struct chain *c, uint64_t seed)
{
    c->p = NULL; /* realloc(NULL, n) is malloc(n) */
    c->len = 0;
    c->seed = seed;
}

static void chain_end(struct chain *c)
{
    CHECK_PATTERN(c->p, c->len, c->seed);
    free(c->p);
    c->p = NULL;
}

static void test_grow_shrink(void)
{
    struct chain c;
    size_t i;
    chain_start(&c, 1);
    for (i = 0; i < NSTEPS; i++)
        step(&c, steps[i]);
    for (i = NSTEPS; i-- > 0;)
        step(&c, steps[i]);
    chain_end(&c);

    /* big jumps both ways: tiny <-> large */
    chain_start(&c, 2);
    for (i = 0; i < NSTEPS; i++) {
        step(&c, steps[i]);
        step(&c, steps[NSTEPS - 1 - i]);
    }
    chain_end(&c);

    /* grow by one byte at a time through the first few KiB (in-place growth inside a
     * class, then a move to the next class) */
    chain_start(&c, 3);
    for (i = 1; i <= 5000; i++)
        step(&c, i);
    for (i = 5000; i >= 3; i -= 3)
        step(&c, i);
    chain_end(&c);
}

/* Several chains advanced in turn: neighbours block in-place growth, so objects move,
 * and a move that copies too much or frees the wrong object shows up in a neighbour. */
static void test_interleaved(void)
{
    enum { K = 8 };
    struct chain c[K];
    size_t i, k;
    for (k = 0; k < K; k++)
        chain_start(&c[k], 100 + k);
    for (i = 0; i < NSTEPS; i++)
        for (k = 0; k < K; k++)
            step(&c[k], steps[(i + k) % NSTEPS] + k);
    for (k = 0; k < K; k++)
        chain_end(&c[k]);
}

static size_t random_size(uint64_t *rng)
{
    uint64_t r = xorshift64(rng);
    switch (r % 8) {
    case 0:
        return steps[(r >> 8) % NSTEPS];
    case 1:
    case 2:
        return (size_t)(r >> 8) % 300000;
    case 3:
        return (size_t)(r >> 8) % 40000;
    default:
        return (size_t)(r >> 8) % 2048;
    }
}

static void test_random_walk(void)
{
    enum { K = 16, STEPS = 4000 };
    struct chain c[K];
    uint64_t rng = 0xdecafbad;
    size_t i, k;
    for (k = 0; k < K; k++)
        chain_start(&c[k], 200 + k);
    for (i = 0; i < STEPS; i++) {
        k = xorshift64(&rng) % K;
        step(&c[k], random_size(&rng));
    }
    for (k = 0; k < K; k++)
        chain_end(&c[k]);
}

/* realloc of memory from the aligned allocators is allowed; the result only needs
 * malloc's alignment. */
static void test_realloc_aligned(void)
{
    static const size_t aligns[] = {16, 64, 4096, 65536};
    size_t a, i;
    for (a = 0; a < sizeof aligns / sizeof aligns[0]; a++) {
        struct chain c;
        void *p;
        CHECK(posix_memalign(&p, aligns[a], 100) == 0);
        c.p = p;
        c.len = 100;
        c.seed = 300 + a;
        fill_pattern(c.p, c.len, c.seed);
        for (i = 0; i < NSTEPS; i += 3)
            step(&c, steps[i]);
        chain_end(&c);
    }
}

static void test_edges(void)
{
    unsigned char *p;
    size_t i;
    /* realloc(NULL, n) behaves as malloc(n) */
    for (i = 0; i < 100; i++) {
        p = realloc(NULL, i * 1000);
        CHECK(p != NULL);
        CHECK(malloc_usable_size(p) >= i * 1000);
        memset(p, 0x3C, i * 1000);
        escape(p);
        free(p);
    }
    /* realloc(p, 0) frees p and returns NULL (glibc), for small and large objects */
    for (i = 0; i < NSTEPS; i++) {
        p = malloc(steps[i]);
        CHECK(p != NULL);
        memset(p, 1, steps[i]);
        escape(p);
        p = realloc(p, opaque_size(0));
        CHECKF(p == NULL, "realloc(%zu-byte object, 0) returned %p, not NULL", steps[i],
               (void *)p);
    }
}

int main(void)
{
    goalloc_expect_active();
    test_grow_shrink();
    test_interleaved();
    test_random_walk();
    test_realloc_aligned();
    test_edges();
    printf("realloc: OK (%zu reallocs)\n", n_reallocs);
    return 0;
}
