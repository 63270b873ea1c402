/* table: a server-like table whose values are replaced, most frees on another thread.
 *
 *   table [-t threads] [-s scale]
 *
 * A table of 64 Ki slots, each holding a value of 16 B .. 1 KiB (log-uniform) behind a
 * per-slot spin lock, is split into one region per thread. The run goes in phases; in
 * phase k thread i works on region (i + k) mod T: it walks the region's slots in a
 * scrambled order and replaces each (allocates and stamps a new value, swaps it in,
 * checks and frees the old one); one replacement in eight goes to a random slot of the
 * region instead. Each replacement comes with two lookups of random slots anywhere in
 * the table (checking the value under the lock). A value found in a region was mostly
 * allocated by the thread that worked there in the previous phase, so with two or more
 * threads most frees (~85%) are of another thread's objects; the share is printed on
 * stderr. The values are freed at the end, checked.
 */
#include "common.h"

#include <stdatomic.h>

#define SLOTS (1 << 16)

struct value {
    uint32_t key;
    uint32_t size;
    uint32_t owner;
    uint32_t pad;
    uint64_t tag;
};

static struct value *table[SLOTS];
static atomic_uchar locks[SLOTS];
static pthread_barrier_t barrier;
static int nthreads;
static long phases, ops_per_phase;


struct targ {
    int id;
    uint64_t replaced, looked_up, remote_frees, sum;
};

static inline void lock_slot(uint32_t s)
{
    while (atomic_exchange_explicit(&locks[s], 1, memory_order_acquire))
        while (atomic_load_explicit(&locks[s], memory_order_relaxed))
            __builtin_ia32_pause();
}

static inline void unlock_slot(uint32_t s)
{
    atomic_store_explicit(&locks[s], 0, memory_order_release);
}

static void check_value(const struct value *v, uint32_t key)
{
    if (v->key != key || v->size < sizeof(struct value) || v->size > 1024)
        corrupt("slot %u: value %p has key %u size %u", key, (void *)v, v->key, v->size);
    check_stamp((const char *)v + sizeof(struct value), v->size - sizeof(struct value),
                v->tag, "table value");
}

static struct value *new_value(struct rng *r, uint32_t key, uint32_t owner, uint64_t tag)
{
    size_t n = rng_logsize(r, 16, 1024);
    if (n < sizeof(struct value))
        n = sizeof(struct value);
    struct value *v = xmalloc(n);
    v->key = key;
    v->size = (uint32_t)n;
    v->owner = owner;
    v->pad = 0;
    v->tag = tag;
    stamp((char *)v + sizeof(struct value), n - sizeof(struct value), tag);
    return v;
}

static void *worker(void *vp)
{
    struct targ *a = vp;
    struct rng r = rng_seed(1000 + (uint64_t)a->id);
    uint32_t region = SLOTS / (uint32_t)nthreads;
    uint64_t tag = (uint64_t)a->id << 40;
    for (long ph = 0; ph < phases; ph++) {
        uint32_t base = (uint32_t)((a->id + ph) % nthreads) * region;
        /* odd stride: k * stride mod region (a power of two) visits every slot once */
        uint32_t stride = (uint32_t)(rng_next(&r) | 1);
        uint32_t start = (uint32_t)rng_next(&r);
        for (long k = 0; k < ops_per_phase; k++) {
            uint32_t s = (rng_below(&r, 8) == 0)
                             ? (uint32_t)rng_below(&r, region)
                             : (start + (uint32_t)k * stride) & (region - 1);
            s += base;
            struct value *nv = new_value(&r, s, (uint32_t)a->id, ++tag);
            a->sum += nv->size;
            lock_slot(s);
            struct value *old = table[s];
            table[s] = nv;
            unlock_slot(s);
            check_value(old, s);
            if (old->owner != (uint32_t)a->id)
                a->remote_frees++;
            free(old);
            a->replaced++;
            for (int j = 0; j < 2; j++) {
                uint32_t q = (uint32_t)rng_below(&r, SLOTS);
                lock_slot(q);
                check_value(table[q], q);
                unlock_slot(q);
                a->looked_up++;
            }
        }
        pthread_barrier_wait(&barrier);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    struct opts o = parse_opts(argc, argv, "table", NULL);
    nthreads = o.threads;
    if (nthreads & (nthreads - 1))
        fail("the thread count must be a power of two");
    phases = scaled(200, o.scale, 2);
    ops_per_phase = SLOTS / nthreads;
    if (o.scale < 0.1)
        ops_per_phase = scaled((double)ops_per_phase, o.scale * 10, 64);
    pthread_barrier_init(&barrier, NULL, (unsigned)nthreads);

    struct rng r = rng_seed(7);
    for (uint32_t s = 0; s < SLOTS; s++)
        /* the initial values belong to "thread" nthreads: nobody's */
        table[s] = new_value(&r, s, (uint32_t)nthreads, s);

    struct targ *args = calloc((size_t)nthreads, sizeof(struct targ));
    if (!args)
        fail("calloc");
    for (int i = 0; i < nthreads; i++)
        args[i].id = i;
    double t0 = now_s();
    run_threads(nthreads, worker, args, sizeof(struct targ));
    double dt = now_s() - t0;

    uint64_t replaced = 0, looked = 0, remote = 0, sum = 0;
    for (int i = 0; i < nthreads; i++) {
        replaced += args[i].replaced;
        looked += args[i].looked_up;
        remote += args[i].remote_frees;
        sum += args[i].sum;
    }
    for (uint32_t s = 0; s < SLOTS; s++) {
        check_value(table[s], s);
        free(table[s]);
    }
    free(args);
    fprintf(stderr, "table: %.2f s, %.0f ns per replacement, %.1f%% of frees remote\n", dt,
            dt * 1e9 / (double)replaced, 100.0 * (double)remote / (double)replaced);
    printf("table ok: %llu replaced, %llu looked up, checksum %llu\n",
           (unsigned long long)replaced, (unsigned long long)looked, (unsigned long long)sum);
    return 0;
}
