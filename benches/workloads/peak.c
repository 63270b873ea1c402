/* peak: build a peak of memory, free most of it, then watch RSS fall (or not).
 *
 *   peak [-t threads] [-s scale] [-d seconds (default 5)] [-o samples.tsv]
 *
 * The threads together allocate 512 MiB (times the scale): 70% in small objects of
 * 16 B .. 1 KiB, 30% in objects of 64 KiB .. 1 MiB, all stamped. Each then frees all its
 * large objects and all small ones but one in 256 (a scattered 0.4% that stays live, as
 * a program's long-lived objects do), checking them. Then the main thread samples the
 * process's RSS every 100 ms for -d seconds, while every thread (main and workers) does a
 * little work each tick (1000 small objects and one of 256 KiB allocated and freed), as
 * a server would between requests, so that allocators which return memory only when
 * called get the chance.
 * Samples go to -o as "ms<TAB>rss_kib" lines after "#" comment lines that give the RSS at
 * the peak and right after the frees. Finally the survivors are checked and freed.
 */
#include "common.h"

#include <stdatomic.h>

struct targ {
    int id;
    size_t bytes;
    void **small;
    size_t *small_size;
    size_t nsmall, kept;
    uint64_t sum;
};

#define KEEP 256 /* one small object in KEEP survives */
#define CHURN 1000

static pthread_barrier_t built, freed, done;
static atomic_int ticking; /* the sampling phase: workers churn while it is 1 */

static void churn(struct rng *r, void **tmp, uint64_t *sum)
{
    for (int i = 0; i < CHURN; i++) {
        size_t n = rng_logsize(r, 16, 512);
        tmp[i] = xmalloc(n);
        stamp(tmp[i], n, (uint64_t)i);
        *sum += n;
    }
    void *big = xmalloc(256 << 10);
    stamp(big, 256 << 10, 99);
    check_stamp(big, 256 << 10, 99, "peak churn");
    free(big);
    for (int i = 0; i < CHURN; i++) {
        check_stamp(tmp[i], 8, (uint64_t)i, "peak churn");
        free(tmp[i]);
    }
}

static void *worker(void *vp)
{
    struct targ *a = vp;
    struct rng r = rng_seed(4000 + (uint64_t)a->id);
    size_t small_bytes = a->bytes / 10 * 7;
    size_t large_bytes = a->bytes - small_bytes;
    /* average small size is ~ 270 B; reserve generously */
    size_t cap = small_bytes / 128 + 1024;
    a->small = xmalloc(cap * sizeof(void *));
    a->small_size = xmalloc(cap * sizeof(size_t));
    size_t large_cap = large_bytes / 65536 + 16;
    void **large = xmalloc(large_cap * sizeof(void *));
    size_t *large_size = xmalloc(large_cap * sizeof(size_t));
    size_t nlarge = 0;
    uint64_t base = (uint64_t)a->id << 40;

    /* build: interleave small and large so that they share the heap's growth */
    size_t got_small = 0, got_large = 0;
    while (got_small < small_bytes || got_large < large_bytes) {
        if (got_small < small_bytes && a->nsmall < cap) {
            for (int k = 0; k < 64 && a->nsmall < cap; k++) {
                size_t n = rng_logsize(&r, 16, 1024);
                void *p = xmalloc(n);
                stamp(p, n, base + a->nsmall);
                a->small[a->nsmall] = p;
                a->small_size[a->nsmall++] = n;
                got_small += n;
                a->sum += n;
            }
        } else {
            got_small = small_bytes;
        }
        if (got_large < large_bytes && nlarge < large_cap) {
            size_t n = rng_logsize(&r, 65536, 1 << 20);
            void *p = xmalloc(n);
            stamp(p, n, ~base - nlarge);
            large[nlarge] = p;
            large_size[nlarge++] = n;
            got_large += n;
            a->sum += n;
        } else {
            got_large = large_bytes;
        }
    }
    pthread_barrier_wait(&built);

    for (size_t i = 0; i < nlarge; i++) {
        check_stamp(large[i], large_size[i], ~base - i, "peak large");
        free(large[i]);
    }
    free(large);
    free(large_size);
    size_t kept = 0;
    for (size_t i = 0; i < a->nsmall; i++) {
        check_stamp(a->small[i], a->small_size[i], base + i, "peak small");
        if (i % KEEP == 0) {
            a->small[kept] = a->small[i];
            a->small_size[kept++] = a->small_size[i];
            continue;
        }
        free(a->small[i]);
    }
    a->kept = kept;
    pthread_barrier_wait(&freed);
    /* between requests: a little work every 100 ms until the sampling ends */
    void **tmp = xmalloc(CHURN * sizeof(void *));
    uint64_t churned = 0;
    while (atomic_load(&ticking)) {
        churn(&r, tmp, &churned);
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    free(tmp);
    pthread_barrier_wait(&done);
    for (size_t k = 0; k < a->kept; k++) {
        check_stamp(a->small[k], a->small_size[k], base + k * KEEP, "peak survivor");
        free(a->small[k]);
    }
    free(a->small);
    free(a->small_size);
    return NULL;
}

int main(int argc, char **argv)
{
    struct opts o = parse_opts(argc, argv, "peak", "[-d seconds] [-o samples.tsv]");
    double seconds = o.seconds >= 0 ? o.seconds : 5.0;
    size_t total = (size_t)scaled(512.0 * 1024 * 1024, o.scale, 8 << 20);
    FILE *out = NULL;
    if (o.out && !(out = fopen(o.out, "w")))
        fail("cannot write %s: %s", o.out, strerror(errno));

    pthread_barrier_init(&built, NULL, (unsigned)o.threads + 1);
    pthread_barrier_init(&freed, NULL, (unsigned)o.threads + 1);
    pthread_barrier_init(&done, NULL, (unsigned)o.threads + 1);
    struct targ *args = calloc((size_t)o.threads, sizeof(struct targ));
    pthread_t *tids = xmalloc(sizeof(pthread_t) * (size_t)o.threads);
    if (!args)
        fail("calloc");
    double t0 = now_s();
    for (int i = 0; i < o.threads; i++) {
        args[i].id = i;
        args[i].bytes = total / (size_t)o.threads;
        if (pthread_create(&tids[i], NULL, worker, &args[i]))
            fail("pthread_create");
    }
    atomic_store(&ticking, 1);
    pthread_barrier_wait(&built);
    long rss_peak = rss_kib();
    double t_built = now_s();
    pthread_barrier_wait(&freed);
    long rss_freed = rss_kib();
    double t_freed = now_s();

    if (out)
        fprintf(out,
                "# peak: %zu MiB allocated by %d threads, 1 in %d small objects kept\n"
                "# rss_peak_kib\t%ld\n# rss_after_free_kib\t%ld\n# ms\trss_kib\n",
                total >> 20, o.threads, KEEP, rss_peak, rss_freed);
    struct rng r = rng_seed(77);
    void **tmp = xmalloc(CHURN * sizeof(void *));
    uint64_t churn_sum = 0;
    long ticks = (long)(seconds * 10 + 0.5);
    long rss_end = rss_freed;
    for (long k = 0; k <= ticks; k++) {
        double due = t_freed + (double)k * 0.1;
        double wait = due - now_s();
        if (wait > 0) {
            struct timespec ts = {(time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9)};
            nanosleep(&ts, NULL);
        }
        rss_end = rss_kib();
        if (out)
            fprintf(out, "%ld\t%ld\n", k * 100, rss_end);
        if (k < ticks)
            churn(&r, tmp, &churn_sum);
    }
    free(tmp);
    atomic_store(&ticking, 0);
    pthread_barrier_wait(&done);
    uint64_t sum = 0;
    size_t kept = 0;
    for (int i = 0; i < o.threads; i++) {
        pthread_join(tids[i], NULL);
        sum += args[i].sum;
        kept += args[i].kept;
    }
    if (out && fclose(out))
        fail("writing %s: %s", o.out, strerror(errno));
    fprintf(stderr,
            "peak: built in %.2f s, freed in %.2f s; RSS peak %ld MiB, after free %ld MiB, "
            "after %.1f s %ld MiB\n",
            t_built - t0, t_freed - t_built, rss_peak >> 10, rss_freed >> 10, seconds,
            rss_end >> 10);
    printf("peak ok: %d threads, %zu MiB, %zu kept, checksum %llu, churn %llu\n", o.threads,
           total >> 20, kept, (unsigned long long)sum, (unsigned long long)churn_sum);
    free(args);
    free(tids);
    return 0;
}
