/* falseshare: does the allocator put objects of different threads in one cache line?
 *
 *   falseshare [-t threads] [-s scale] [-S object size (default 8)]
 *
 * Two phases, after the cache-scratch and cache-thrash programs of the Hoard paper:
 *  passive: the main thread allocates one small object per thread, one after the other
 *           (so they likely share a cache line) and hands one to each thread. Each thread
 *           frees it, then repeatedly allocates an object of the same size, writes each
 *           of its bytes many times in a tight loop, checks it and frees it. An allocator
 *           that gives the freed object back to the thread that freed it makes the
 *           threads write into one cache line.
 *  active:  the same loop with no hand-over: threads allocate concurrently from the
 *           start; an allocator that serves them from a shared span interleaves them.
 * With no false sharing both phases run at the speed of one core's stores; with it they
 * can run many times slower.
 */
#include "common.h"

struct targ {
    int id;
    size_t size;
    long iters, writes;
    volatile unsigned char *handed;
    uintptr_t first; /* the first object this thread got in its loop */
    uint64_t sum;
};

static void *worker(void *vp)
{
    struct targ *a = vp;
    if (a->handed) {
        a->handed[0] = (unsigned char)a->id;
        free((void *)a->handed);
    }
    for (long i = 0; i < a->iters; i++) {
        volatile unsigned char *p = xmalloc(a->size);
        if (i == 0)
            a->first = (uintptr_t)p;
        for (size_t b = 0; b < a->size; b++)
            p[b] = (unsigned char)(a->id + i);
        for (long w = 0; w < a->writes; w++)
            for (size_t b = 0; b < a->size; b++)
                p[b]++;
        unsigned char want = (unsigned char)(a->id + i + a->writes);
        for (size_t b = 0; b < a->size; b++)
            if (p[b] != want)
                corrupt("thread %d: byte %zu of %p is %u, want %u", a->id, b, (void *)p, p[b],
                        want);
        a->sum += want;
        free((void *)p);
    }
    return NULL;
}

/* How many pairs of threads got their first objects in one cache line. */
static int shared_lines(const struct targ *args, int n)
{
    int shared = 0;
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            if (args[i].first / 64 == args[j].first / 64)
                shared++;
    return shared;
}

static double phase(const struct opts *o, size_t size, long iters, long writes, int handover,
                    uint64_t *sum, int *shared)
{
    struct targ *args = calloc((size_t)o->threads, sizeof(struct targ));
    if (!args)
        fail("calloc");
    for (int i = 0; i < o->threads; i++) {
        args[i].id = i;
        args[i].size = size;
        args[i].iters = iters;
        args[i].writes = writes;
        args[i].handed = handover ? xmalloc(size) : NULL;
    }
    double t0 = now_s();
    run_threads(o->threads, worker, args, sizeof(struct targ));
    double dt = now_s() - t0;
    for (int i = 0; i < o->threads; i++)
        *sum += args[i].sum;
    *shared = shared_lines(args, o->threads);
    free(args);
    return dt;
}

int main(int argc, char **argv)
{
    struct opts o = parse_opts(argc, argv, "falseshare", "[-S object size]");
    size_t size = o.size ? (size_t)o.size : 8;
    long writes = 1000;
    long iters = scaled(120000.0 * 8 / (double)size, o.scale, 10);
    uint64_t sum = 0;
    int shared_passive, shared_active;
    double passive = phase(&o, size, iters, writes, 1, &sum, &shared_passive);
    double active = phase(&o, size, iters, writes, 0, &sum, &shared_active);
    fprintf(stderr,
            "falseshare: passive %.2f s (%d thread pairs on one line), active %.2f s (%d), "
            "%.2f ns per byte write\n",
            passive, shared_passive, active, shared_active,
            (passive + active) * 1e9 / (2.0 * (double)iters * (double)writes * (double)size));
    printf("falseshare ok: %d threads, %ld objects of %zu bytes each, checksum %llu\n",
           o.threads, 2 * iters, size, (unsigned long long)sum);
    return 0;
}
