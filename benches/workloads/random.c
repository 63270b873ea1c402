/* random: random sizes from 8 B to 64 KiB over a working set.
 *
 *   random [-t threads] [-s scale]
 *
 * Each thread keeps a working set of 4096 slots (about 30 MiB: the sizes are
 * log-uniform, so every octave from 8 B to 64 KiB is as likely). Each step picks a random
 * slot, checks and frees its object, and allocates a new one of a random size, stamping
 * its first and last words and one word in every 4 KiB (so its pages are touched). Sizes
 * cross the small/large boundary (32 KiB for goalloc) all the time.
 */
#include "common.h"

#define WSET 4096

struct targ {
    int id;
    long steps;
    uint64_t sum;
};

static void *worker(void *vp)
{
    struct targ *a = vp;
    struct rng r = rng_seed(2000 + (uint64_t)a->id);
    void **obj = xmalloc(sizeof(void *) * WSET);
    size_t *size = xmalloc(sizeof(size_t) * WSET);
    uint64_t *tag = xmalloc(sizeof(uint64_t) * WSET);
    uint64_t next = (uint64_t)a->id << 48;
    for (int i = 0; i < WSET; i++) {
        size[i] = rng_logsize(&r, 8, 65536);
        tag[i] = ++next;
        obj[i] = xmalloc(size[i]);
        stamp(obj[i], size[i], tag[i]);
    }
    for (long k = 0; k < a->steps; k++) {
        size_t i = (size_t)rng_below(&r, WSET);
        check_stamp(obj[i], size[i], tag[i], "random");
        free(obj[i]);
        size[i] = rng_logsize(&r, 8, 65536);
        tag[i] = ++next;
        obj[i] = xmalloc(size[i]);
        stamp(obj[i], size[i], tag[i]);
        a->sum += size[i];
    }
    for (int i = 0; i < WSET; i++) {
        check_stamp(obj[i], size[i], tag[i], "random");
        free(obj[i]);
    }
    free(obj);
    free(size);
    free(tag);
    return NULL;
}

int main(int argc, char **argv)
{
    struct opts o = parse_opts(argc, argv, "random", NULL);
    long steps = scaled(6e6, o.scale, 1000);
    struct targ *args = calloc((size_t)o.threads, sizeof(struct targ));
    if (!args)
        fail("calloc");
    for (int i = 0; i < o.threads; i++) {
        args[i].id = i;
        args[i].steps = steps;
    }
    double t0 = now_s();
    run_threads(o.threads, worker, args, sizeof(struct targ));
    double dt = now_s() - t0;
    uint64_t sum = 0;
    for (int i = 0; i < o.threads; i++)
        sum += args[i].sum;
    free(args);
    fprintf(stderr, "random: %.2f s, %.0f ns per step and thread\n", dt,
            dt * 1e9 / (double)steps);
    printf("random ok: %d threads, %ld steps each, %llu bytes\n", o.threads, steps,
           (unsigned long long)sum);
    return 0;
}
