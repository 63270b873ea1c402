/* pairs: malloc/free pairs at several sizes, in one of four patterns.
 *
 *   pairs [-t threads] [-s scale] [-P batch|fixed|cycle|ring] [-S size -n pairs] [-N]
 *
 * For each size S (16 B .. 256 KiB, or only -S), each thread makes its share of pairs in
 * the pattern given with -P (default batch):
 *   batch  allocates a batch of 32 objects of S bytes, stamps them, then checks and frees
 *          them (in allocation order on even batches, reverse order on odd ones), and so
 *          on; the count of pairs is rounded down to a multiple of 32
 *   fixed  malloc(S), stamp, check, free: one object live at a time
 *   cycle  as fixed, but pair k uses the size c[k % 8] of a list of 8 sizes from 16 B to
 *          S: c[j] = 16 + (j * (S - 16) / 7 rounded down to a multiple of 16) for
 *          j = 0..6, and c[7] = S. S = 128 gives 16, 32, 48, .., 128; S = 1024 gives 16,
 *          160, 304, .., 1024; S = 64 gives 16, 16, 16, 32, 32, 48, 48, 64; S = 16 gives
 *          16 eight times (the same as fixed). The list is printed on stderr.
 *   ring   a ring of 1000 live objects of S bytes, allocated before the pairs: each pair
 *          checks and frees the oldest object and allocates a new one in its slot; at the
 *          end the ring is checked and freed (1000 extra mallocs and frees, a constant
 *          that the difference of two runs cancels). At 256 KiB the ring holds 250 MiB
 *          per thread.
 * To stamp an object is to write its sequence number into its first and last words; the
 * check before the free reads both back, so an object handed out while live (batch, ring:
 * the patterns that keep several), or one whose words the allocator still uses (say, as a
 * free-list link, in any pattern), shows as CORRUPT (exit 3).
 * The result line on stdout (pattern, pairs, checksum of the checked words) depends only
 * on the options. The bench script runs it with -t 1 (the single-threaded case); more
 * threads run the same loop side by side without sharing objects.
 *
 * -S SIZE -n PAIRS runs exactly PAIRS pairs of one size: the callgrind mode runs it with
 * two counts and divides the difference in instructions by the difference in pairs.
 * -N replaces malloc/free by a pool of slots (one per object that the pattern holds live,
 * each S bytes rounded up to 64, allocated before the pairs), to measure the loop's own
 * cost: the loop is the same code as with malloc/free, less the calls, for every pattern.
 */
#include "common.h"

#define BATCH 32
#define RING 1000
#define NCYCLE 8

enum pattern { P_BATCH, P_FIXED, P_CYCLE, P_RING };
static const char *const pattern_names[] = {"batch", "fixed", "cycle", "ring"};

struct targ {
    int id;
    enum pattern pattern;
    size_t size;
    long pairs;
    int null_alloc;
    uint64_t sum;
};

/* The object sizes of -P cycle for the largest size s (see the header). */
static void cycle_sizes(size_t s, size_t c[NCYCLE])
{
    for (int j = 0; j < NCYCLE - 1; j++)
        c[j] = 16 + ((size_t)j * (s - 16) / (NCYCLE - 1)) / 16 * 16;
    c[NCYCLE - 1] = s;
}

/* One thread's allocator: malloc/free, or under -N the slots of a pool. The pool is
 * allocated before the pairs, so that with and without -N the loop runs the same code
 * (a branch on `pool`) apart from the calls. */
struct alloc {
    unsigned char *pool;
    size_t stride;
};

/* In the pool's branches, CALL_CLOBBERS tells the compiler that the registers a call
 * may change are changed, so that it saves what it keeps in them around both branches
 * alike: the difference between the two loops is then the call and the allocator. */
#if defined(__x86_64__)
#define CALL_CLOBBERS() \
    __asm__ __volatile__("" : : : "rax", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11", "memory")
#else
#define CALL_CLOBBERS() __asm__ __volatile__("" : : : "memory")
#endif

static inline void *get(const struct alloc *al, size_t n, size_t slot)
{
    void *p;
    if (al->pool) {
        CALL_CLOBBERS();
        p = al->pool + slot * al->stride;
    } else {
        p = malloc(n);
    }
    if (!p)
        fail("malloc(%zu) returned NULL", n);
    return p;
}

static inline void put(const struct alloc *al, void *p)
{
    if (al->pool)
        CALL_CLOBBERS();
    else
        free(p);
}

/* first and last word only: the cost of touching the object, not of writing it all */
static inline void stamp_words(void *p, size_t n, uint64_t w)
{
    memcpy(p, &w, 8);
    memcpy((char *)p + n - 8, &w, 8);
}

static inline uint64_t check_words(const struct targ *a, void *p, size_t n, uint64_t w)
{
    uint64_t w1, w2;
    memcpy(&w1, p, 8);
    memcpy(&w2, (char *)p + n - 8, 8);
    if (w1 != w || w2 != w)
        corrupt("%s, size %zu: object %p holds %llx/%llx, wrote %llx",
                pattern_names[a->pattern], n, p, (unsigned long long)w1,
                (unsigned long long)w2, (unsigned long long)w);
    return w1;
}

/* Where nothing runs between the stamp and the check (fixed, cycle), the compiler would
 * forward the stored words to the loads; this makes it read them back from memory. */
#define READ_BACK(p) __asm__ __volatile__("" : : "r"(p) : "memory")

static uint64_t run_batch(const struct targ *a, const struct alloc *al)
{
    void *objs[BATCH];
    size_t n = a->size;
    long batches = a->pairs / BATCH;
    uint64_t sum = 0;
    for (long b = 0; b < batches; b++) {
        uint64_t tag0 = (uint64_t)b * BATCH;
        for (int i = 0; i < BATCH; i++) {
            void *p = get(al, n, (size_t)i);
            stamp_words(p, n, tag0 + (uint64_t)i);
            objs[i] = p;
        }
        for (int k = 0; k < BATCH; k++) {
            int i = (b & 1) ? BATCH - 1 - k : k;
            void *p = objs[i];
            sum += check_words(a, p, n, tag0 + (uint64_t)i);
            put(al, p);
        }
    }
    return sum;
}

static uint64_t run_fixed(const struct targ *a, const struct alloc *al)
{
    size_t n = a->size;
    uint64_t sum = 0;
    for (long k = 0; k < a->pairs; k++) {
        void *p = get(al, n, 0);
        stamp_words(p, n, (uint64_t)k);
        READ_BACK(p);
        sum += check_words(a, p, n, (uint64_t)k);
        put(al, p);
    }
    return sum;
}

static uint64_t run_cycle(const struct targ *a, const struct alloc *al)
{
    size_t c[NCYCLE];
    cycle_sizes(a->size, c);
    uint64_t sum = 0;
    for (long k = 0; k < a->pairs; k++) {
        size_t n = c[k % NCYCLE];
        void *p = get(al, n, 0);
        stamp_words(p, n, (uint64_t)k);
        READ_BACK(p);
        sum += check_words(a, p, n, (uint64_t)k);
        put(al, p);
    }
    return sum;
}

static uint64_t run_ring(const struct targ *a, const struct alloc *al)
{
    void *ring[RING];
    size_t n = a->size;
    uint64_t sum = 0;
    /* object m (m = 0, 1, ..) is stamped m; slot j holds objects j, j + RING, .. */
    for (size_t j = 0; j < RING; j++) {
        ring[j] = get(al, n, j);
        stamp_words(ring[j], n, j);
    }
    size_t j = 0;
    for (long k = 0; k < a->pairs; k++) {
        void *p = ring[j];
        sum += check_words(a, p, n, (uint64_t)k);
        put(al, p);
        p = get(al, n, j);
        stamp_words(p, n, (uint64_t)k + RING);
        ring[j] = p;
        if (++j == RING)
            j = 0;
    }
    /* the oldest is in slot j, stamped pairs; the newest stamped pairs + RING - 1 */
    for (size_t m = 0; m < RING; m++) {
        void *p = ring[j];
        check_words(a, p, n, (uint64_t)a->pairs + m);
        put(al, p);
        if (++j == RING)
            j = 0;
    }
    return sum;
}

static void *pair_thread(void *vp)
{
    struct targ *a = vp;
    struct alloc al = {NULL, 0};
    if (a->null_alloc) {
        size_t slots = a->pattern == P_BATCH ? BATCH : a->pattern == P_RING ? RING : 1;
        al.stride = (a->size + 63) / 64 * 64;
        if (al.stride > ((size_t)1 << 30) / slots)
            fail("-N: a pool of %zu slots of %zu bytes is too large", slots, a->size);
        al.pool = aligned_alloc(64, slots * al.stride);
        if (!al.pool)
            fail("-N: cannot allocate the pool");
    }
    switch (a->pattern) {
    case P_BATCH: a->sum = run_batch(a, &al); break;
    case P_FIXED: a->sum = run_fixed(a, &al); break;
    case P_CYCLE: a->sum = run_cycle(a, &al); break;
    case P_RING: a->sum = run_ring(a, &al); break;
    }
    free(al.pool);
    return NULL;
}

int main(int argc, char **argv)
{
    struct opts o = parse_opts(argc, argv, "pairs",
                               "[-P batch|fixed|cycle|ring] [-S size -n pairs] [-N]");
    static const size_t sizes[] = {16, 32, 64, 128, 256, 512, 1024, 4096, 16384, 32768, 65536, 262144};
    /* pairs per size at scale 1: small sizes are cheap, large ones cost page-heap work */
    static const double base[] = {12e6, 12e6, 12e6, 12e6, 12e6, 12e6, 12e6, 4e6, 5e5, 5e5, 2e5, 2e5};
    size_t nsizes = sizeof(sizes) / sizeof(sizes[0]);
    uint64_t total_pairs = 0, total_sum = 0;
    enum pattern pattern = P_BATCH;

    if (o.pattern) {
        int found = 0;
        for (int i = 0; i < 4; i++)
            if (strcmp(o.pattern, pattern_names[i]) == 0) {
                pattern = (enum pattern)i;
                found = 1;
            }
        if (!found)
            fail("-P: unknown pattern %s (batch, fixed, cycle or ring)", o.pattern);
    }
    for (size_t si = 0; si < nsizes; si++) {
        size_t size = o.size ? (size_t)o.size : sizes[si];
        if (size < 16)
            fail("size must be at least 16");
        long pairs = o.n ? o.n : scaled(base[si], o.scale, BATCH);
        if (pattern == P_BATCH)
            pairs -= pairs % BATCH;
        if (pattern == P_CYCLE) {
            size_t c[NCYCLE];
            cycle_sizes(size, c);
            fprintf(stderr, "pairs: cycle up to %zu:", size);
            for (int j = 0; j < NCYCLE; j++)
                fprintf(stderr, " %zu", c[j]);
            fputc('\n', stderr);
        }
        struct targ *args = xmalloc(sizeof(struct targ) * (size_t)o.threads);
        for (int t = 0; t < o.threads; t++)
            args[t] = (struct targ){t, pattern, size, pairs, o.null_alloc, 0};
        double t0 = now_s();
        run_threads(o.threads, pair_thread, args, sizeof(struct targ));
        double dt = now_s() - t0;
        for (int t = 0; t < o.threads; t++) {
            total_sum += args[t].sum;
            total_pairs += (uint64_t)pairs;
        }
        fprintf(stderr, "pairs: %s, size %7zu: %.1f ns per malloc+free%s\n",
                pattern_names[pattern], size, pairs ? dt * 1e9 / (double)pairs : 0.0,
                o.null_alloc ? " (-N: no allocator)" : "");
        free(args);
        if (o.size)
            break;
    }
    printf("pairs ok: %s, %llu pairs, checksum %llu\n", pattern_names[pattern],
           (unsigned long long)total_pairs, (unsigned long long)total_sum);
    return 0;
}
