/* larson: a server simulation after Larson and Krishnan's benchmark ("Memory allocation
 * for long-running server applications", ISMM 1998).
 *
 *   larson [-t threads] [-s scale] [-P malloc|new|sized]
 *
 * T slots, each an array of 1000 objects of 8 .. 1000 bytes (uniform). The main thread
 * allocates all of them first (so the first frees are of objects another thread
 * allocated). Each slot is then worked by a chain of threads, as connections of a server
 * are: a thread does R rounds of "pick a random object of the array, check and free it,
 * allocate one of a random size in its place", then starts the next thread of the chain,
 * hands it the array, and exits; the successor frees what its predecessor allocated.
 * Each slot has G generations; T chains run at once. At the end the main thread frees
 * what is left.
 *
 * -P: malloc/free (default), new: C++ operator new and plain delete, sized: operator new
 * and sized delete (operator delete(void *, size_t), what C++14 compilers call for an
 * object whose size they know). The C++ operators are called by their mangled names from
 * C and come from libstdc++ (linked with -lstdc++) or from the preloaded allocator, which
 * defines them if it has its own; bench.sh runs the default as larson and -P sized as
 * larsonsized.
 */
#include "common.h"

/* operator new(size_t), operator delete(void *), operator delete(void *, size_t) */
extern void *_Znwm(size_t n);
extern void _ZdlPv(void *p);
extern void _ZdlPvm(void *p, size_t n);

#define CHUNKS 1000
#define MIN_SIZE 8
#define MAX_SIZE 1000

enum mode { MODE_MALLOC, MODE_NEW, MODE_SIZED };
static enum mode mode = MODE_MALLOC;

struct obj {
    void *p;
    uint32_t size;
    uint64_t tag;
};

struct slot {
    int id;
    int gen;
    struct rng rng;
    struct obj objs[CHUNKS];
    uint64_t next_tag;
    uint64_t allocated, freed; /* bytes */
};

static long rounds_per_gen;
static int generations;
static pthread_mutex_t done_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t done_cv = PTHREAD_COND_INITIALIZER;
static int slots_done;

static void *obj_alloc(size_t n)
{
    void *p = mode == MODE_MALLOC ? malloc(n) : _Znwm(n);
    if (!p)
        fail("allocation of %zu bytes returned NULL", n);
    return p;
}

static void obj_free(void *p, size_t n)
{
    if (mode == MODE_MALLOC)
        free(p);
    else if (mode == MODE_NEW)
        _ZdlPv(p);
    else
        _ZdlPvm(p, n);
}

static void fill(struct slot *s, int i)
{
    size_t n = MIN_SIZE + (size_t)rng_below(&s->rng, MAX_SIZE - MIN_SIZE + 1);
    uint64_t tag = ((uint64_t)s->id << 40) | s->next_tag++;
    void *p = obj_alloc(n);
    stamp(p, n, tag);
    s->objs[i] = (struct obj){p, (uint32_t)n, tag};
    s->allocated += n;
}

static void drop(struct slot *s, int i)
{
    struct obj *o = &s->objs[i];
    check_stamp(o->p, o->size, o->tag, "larson");
    obj_free(o->p, o->size);
    s->freed += o->size;
    o->p = NULL;
}

static void *worker(void *vp)
{
    struct slot *s = vp;
    for (long r = 0; r < rounds_per_gen; r++) {
        int i = (int)rng_below(&s->rng, CHUNKS);
        drop(s, i);
        fill(s, i);
    }
    if (++s->gen < generations) {
        /* the next thread of the chain takes the array over; this one ends */
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        int rc = pthread_create(&t, &attr, worker, s);
        if (rc)
            fail("pthread_create: %s", strerror(rc));
        pthread_attr_destroy(&attr);
    } else {
        pthread_mutex_lock(&done_mu);
        slots_done++;
        pthread_cond_signal(&done_cv);
        pthread_mutex_unlock(&done_mu);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    struct opts o = parse_opts(argc, argv, "larson", "[-P malloc|new|sized]");
    if (!o.pattern || strcmp(o.pattern, "malloc") == 0)
        mode = MODE_MALLOC;
    else if (strcmp(o.pattern, "new") == 0)
        mode = MODE_NEW;
    else if (strcmp(o.pattern, "sized") == 0)
        mode = MODE_SIZED;
    else
        usage_exit("[-P malloc|new|sized]");
    generations = 20;
    rounds_per_gen = scaled(4e6 / 20 / o.threads, o.scale, 1000);

    struct slot *slots = calloc((size_t)o.threads, sizeof(struct slot));
    if (!slots)
        fail("calloc");
    for (int t = 0; t < o.threads; t++) {
        slots[t].id = t;
        slots[t].rng = rng_seed(4141 + (uint64_t)t);
        for (int i = 0; i < CHUNKS; i++)
            fill(&slots[t], i);
    }

    double t0 = now_s();
    for (int t = 0; t < o.threads; t++) {
        pthread_t tid;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        int rc = pthread_create(&tid, &attr, worker, &slots[t]);
        if (rc)
            fail("pthread_create: %s", strerror(rc));
        pthread_attr_destroy(&attr);
    }
    pthread_mutex_lock(&done_mu);
    while (slots_done < o.threads)
        pthread_cond_wait(&done_cv, &done_mu);
    pthread_mutex_unlock(&done_mu);
    double dt = now_s() - t0;

    uint64_t allocated = 0, freed = 0;
    for (int t = 0; t < o.threads; t++) {
        for (int i = 0; i < CHUNKS; i++)
            drop(&slots[t], i);
        if (slots[t].allocated != slots[t].freed)
            corrupt("slot %d: allocated %llu bytes, freed %llu", t,
                    (unsigned long long)slots[t].allocated, (unsigned long long)slots[t].freed);
        allocated += slots[t].allocated;
        freed += slots[t].freed;
    }
    long ops = (long)o.threads * generations * rounds_per_gen;
    fprintf(stderr, "larson: %.2f s, %.0f ns per free+malloc, %.2f M per second\n", dt,
            dt * 1e9 / (double)ops, (double)ops / dt / 1e6);
    printf("larson ok: %s, %d slots, %d generations of %ld rounds, %llu bytes allocated and "
           "freed\n",
           mode == MODE_MALLOC ? "malloc/free" : mode == MODE_NEW ? "new/delete" : "new/sized delete",
           o.threads, generations, rounds_per_gen, (unsigned long long)freed);
    free(slots);
    return 0;
}
