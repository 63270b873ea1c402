/* pairs: malloc/free pairs at several sizes.
 *
 *   pairs [-t threads] [-s scale] [-S size -n pairs] [-N]
 *
 * For each size (16 B .. 256 KiB, or only -S), each thread allocates a batch of 32
 * objects, stamps their first and last words, then checks and frees them (in allocation
 * order on even batches, reverse order on odd ones), until it has made its share of
 * pairs. The bench script runs it with -t 1 (the single-threaded case); more threads run
 * the same loop side by side without sharing objects.
 *
 * -S SIZE -n PAIRS runs exactly PAIRS pairs of one size: the callgrind mode runs it with
 * two counts and divides the difference in instructions by the difference in pairs.
 * -N replaces malloc/free by a pool of static slots, to measure the loop's own cost.
 */
#include "common.h"

#define BATCH 32

struct targ {
    int id;
    size_t size;
    long pairs;
    int null_alloc;
    uint64_t sum;
};

static _Alignas(64) unsigned char null_pool[256][BATCH][64];

static void *pair_thread(void *vp)
{
    struct targ *a = vp;
    void *objs[BATCH];
    size_t n = a->size;
    long batches = a->pairs / BATCH;
    uint64_t sum = 0;
    for (long b = 0; b < batches; b++) {
        uint64_t tag0 = (uint64_t)b * BATCH;
        for (int i = 0; i < BATCH; i++) {
            void *p = a->null_alloc ? (void *)null_pool[a->id & 255][i] : malloc(n);
            if (!p)
                fail("malloc(%zu) returned NULL", n);
            /* first and last word only: the cost of touching the object, not of
             * writing it all */
            uint64_t w = tag0 + (uint64_t)i;
            memcpy(p, &w, 8);
            memcpy((char *)p + (a->null_alloc ? 56 : n - 8), &w, 8);
            objs[i] = p;
        }
        for (int k = 0; k < BATCH; k++) {
            int i = (b & 1) ? BATCH - 1 - k : k;
            void *p = objs[i];
            uint64_t w1, w2;
            memcpy(&w1, p, 8);
            memcpy(&w2, (char *)p + (a->null_alloc ? 56 : n - 8), 8);
            if (w1 != tag0 + (uint64_t)i || w2 != w1)
                corrupt("size %zu: object %p holds %llx/%llx, wrote %llx", n, p,
                        (unsigned long long)w1, (unsigned long long)w2,
                        (unsigned long long)(tag0 + (uint64_t)i));
            sum += w1;
            if (!a->null_alloc)
                free(p);
        }
    }
    a->sum = sum;
    return NULL;
}

int main(int argc, char **argv)
{
    struct opts o = parse_opts(argc, argv, "pairs", "[-S size -n pairs] [-N]");
    static const size_t sizes[] = {16, 32, 64, 128, 256, 512, 1024, 4096, 16384, 32768, 65536, 262144};
    /* pairs per size at scale 1: small sizes are cheap, large ones cost page-heap work */
    static const double base[] = {12e6, 12e6, 12e6, 12e6, 12e6, 12e6, 12e6, 4e6, 5e5, 5e5, 2e5, 2e5};
    size_t nsizes = sizeof(sizes) / sizeof(sizes[0]);
    uint64_t total_pairs = 0, total_sum = 0;

    if (o.null_alloc && o.size > 64)
        fail("-N works for sizes up to 64");
    for (size_t si = 0; si < nsizes; si++) {
        size_t size = o.size ? (size_t)o.size : sizes[si];
        if (size < 16)
            fail("size must be at least 16");
        long pairs = o.n ? o.n : scaled(base[si], o.scale, BATCH);
        pairs -= pairs % BATCH;
        struct targ *args = xmalloc(sizeof(struct targ) * (size_t)o.threads);
        for (int t = 0; t < o.threads; t++)
            args[t] = (struct targ){t, size, pairs, o.null_alloc, 0};
        double t0 = now_s();
        run_threads(o.threads, pair_thread, args, sizeof(struct targ));
        double dt = now_s() - t0;
        for (int t = 0; t < o.threads; t++) {
            total_sum += args[t].sum;
            total_pairs += (uint64_t)pairs;
        }
        fprintf(stderr, "pairs: size %7zu: %.1f ns per malloc+free\n", size,
                dt * 1e9 / (double)pairs);
        free(args);
        if (o.size)
            break;
    }
    printf("pairs ok: %llu pairs, checksum %llu\n", (unsigned long long)total_pairs,
           (unsigned long long)total_sum);
    return 0;
}
