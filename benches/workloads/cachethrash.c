/* cachethrash: false sharing caused by the allocator, after Hoard's cache-thrash and
 * cache-scratch programs (Berger et al., ASPLOS 2000).
 *
 *   cachethrash [-t threads] [-s scale] [-P thrash|scratch] [-S object size (default 1)]
 *
 * thrash (active false sharing): each thread, many times over, allocates one small
 *         object, writes each of its bytes and reads it back through a volatile access
 *         a great many times, checks it and frees it. An allocator that hands objects of
 *         different threads out of one cache line makes the threads' stores fight over
 *         it. With one thread it measures the write loop on wherever the allocator put
 *         the object.
 * scratch (passive false sharing): the main thread first allocates one object per thread
 *         back to back (so that they likely share a line) and hands one to each thread,
 *         which frees it before its loop; an allocator that gives a freed object back to
 *         the thread that freed it puts the threads' objects in one line again.
 * As in the originals, there are few allocations (hundreds per thread) and many writes:
 * the time is the writes', and what the allocator decides is where the objects are.
 */
#include "common.h"

struct targ {
    int id;
    size_t size;
    long iters, reps;
    char *handed;
    uintptr_t first; /* the first object this thread got in its loop */
    uint64_t sum;
};

static void *worker(void *vp)
{
    struct targ *a = vp;
    if (a->handed) {
        a->handed[0] = (char)a->id;
        free(a->handed);
    }
    for (long i = 0; i < a->iters; i++) {
        volatile char *obj = xmalloc(a->size);
        if (i == 0)
            a->first = (uintptr_t)obj;
        for (long j = 0; j < a->reps; j++)
            for (size_t k = 0; k < a->size; k++) {
                obj[k] = (char)(k + (size_t)i);
                volatile char ch = obj[k];
                ch++;
            }
        for (size_t k = 0; k < a->size; k++)
            if (obj[k] != (char)(k + (size_t)i))
                corrupt("thread %d: byte %zu of %p is %d, want %d", a->id, k, (void *)obj,
                        obj[k], (char)(k + (size_t)i));
        a->sum += (uint64_t)(unsigned char)obj[a->size - 1];
        free((void *)obj);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    struct opts o =
        parse_opts(argc, argv, "cachethrash", "[-P thrash|scratch] [-S object size]");
    int scratch = 0;
    if (o.pattern && strcmp(o.pattern, "scratch") == 0)
        scratch = 1;
    else if (o.pattern && strcmp(o.pattern, "thrash") != 0)
        usage_exit("[-P thrash|scratch] [-S object size]");
    size_t size = o.size ? (size_t)o.size : 1;
    /* the originals' runs use 1000 iterations of 2,000,000 repetitions on 1-byte
     * objects; here fewer iterations (at scale 1, 1.25e8 byte writes per thread) */
    long reps = 500000;
    long iters = scaled(250.0 / (double)size, o.scale, 4);
    struct targ *args = calloc((size_t)o.threads, sizeof(struct targ));
    if (!args)
        fail("calloc");
    for (int i = 0; i < o.threads; i++) {
        args[i].id = i;
        args[i].size = size;
        args[i].iters = iters;
        args[i].reps = reps;
        args[i].handed = scratch ? xmalloc(size) : NULL;
    }
    double t0 = now_s();
    run_threads(o.threads, worker, args, sizeof(struct targ));
    double dt = now_s() - t0;
    uint64_t sum = 0;
    int shared = 0;
    for (int i = 0; i < o.threads; i++) {
        sum += args[i].sum;
        for (int j = i + 1; j < o.threads; j++)
            if (args[i].first / 64 == args[j].first / 64)
                shared++;
    }
    fprintf(stderr, "cachethrash: %s, %.2f s, %d thread pairs' first objects on one line\n",
            scratch ? "scratch" : "thrash", dt, shared);
    printf("cachethrash ok: %s, %d threads, %ld objects of %zu bytes each, %ld repetitions, "
           "checksum %llu\n",
           scratch ? "scratch" : "thrash", o.threads, iters, size, reps,
           (unsigned long long)sum);
    free(args);
    return 0;
}
