/* large: large objects of 64 KiB .. 32 MiB, grown with realloc.
 *
 *   large [-t threads] [-s scale]
 *
 * Each thread keeps 8 slots. A step picks a slot: an empty one gets a new object of
 * 64 KiB .. 1 MiB (log-uniform); a full one is, two times in three, grown with realloc
 * to 1.25 .. 2 times its size (at most 32 MiB; at the cap it is freed instead), and
 * otherwise freed. Every object is stamped in every 4 KiB page (so all its pages are
 * touched); after realloc the old stamps must still be there, then the new pages are
 * stamped. At most 8 x 32 MiB are live per thread.
 */
#include "common.h"

#define SLOTS 8
#define MAX_SIZE ((size_t)32 << 20)

struct targ {
    int id;
    long steps;
    uint64_t sum, reallocs;
};

static void *worker(void *vp)
{
    struct targ *a = vp;
    struct rng r = rng_seed(3000 + (uint64_t)a->id);
    void *obj[SLOTS] = {0};
    size_t size[SLOTS] = {0};
    uint64_t tag[SLOTS] = {0};
    uint64_t next = (uint64_t)a->id << 48;
    for (long k = 0; k < a->steps; k++) {
        int i = (int)rng_below(&r, SLOTS);
        if (!obj[i]) {
            size[i] = rng_logsize(&r, 65536, 1 << 20);
            tag[i] = ++next;
            obj[i] = xmalloc(size[i]);
            stamp(obj[i], size[i], tag[i]);
            a->sum += size[i];
        } else if (rng_below(&r, 3) != 0 && size[i] < MAX_SIZE) {
            size_t n = size[i] + size[i] / 4 + (size_t)rng_below(&r, size[i] * 3 / 4 + 1);
            if (n > MAX_SIZE)
                n = MAX_SIZE;
            obj[i] = xrealloc(obj[i], n);
            /* The old stamps sit at 4 KiB steps and at the old end. */
            check_stamp(obj[i], size[i], tag[i], "large after realloc");
            /* Stamp it all again with the same tag: new pages and the new end. */
            stamp(obj[i], n, tag[i]);
            size[i] = n;
            a->sum += n;
            a->reallocs++;
        } else {
            check_stamp(obj[i], size[i], tag[i], "large");
            free(obj[i]);
            obj[i] = NULL;
        }
    }
    for (int i = 0; i < SLOTS; i++)
        if (obj[i]) {
            check_stamp(obj[i], size[i], tag[i], "large");
            free(obj[i]);
        }
    return NULL;
}

int main(int argc, char **argv)
{
    struct opts o = parse_opts(argc, argv, "large", NULL);
    long steps = scaled(6000, o.scale, 50);
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
    uint64_t sum = 0, reallocs = 0;
    for (int i = 0; i < o.threads; i++) {
        sum += args[i].sum;
        reallocs += args[i].reallocs;
    }
    free(args);
    fprintf(stderr, "large: %.2f s, %.1f us per step and thread\n", dt,
            dt * 1e6 / (double)steps);
    printf("large ok: %d threads, %ld steps each, %llu reallocs, %llu bytes\n", o.threads,
           steps, (unsigned long long)reallocs, (unsigned long long)sum);
    return 0;
}
