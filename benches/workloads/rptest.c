/* rptest: random sizes with frees on other threads, after rpmalloc's benchmark (rptest;
 * its description: threads allocate and free blocks of random sizes over a working set
 * and pass a share of their blocks to other threads to free).
 *
 *   rptest [-t threads] [-s scale]
 *
 * Each thread keeps a working set of 2048 objects of 16 B .. 16 KiB (log-uniform, so most
 * are small) and runs loops of 512 steps; a step frees the object in a random slot (after
 * checking it) and allocates one of a random size there. At the end of each loop the
 * thread takes 128 objects out of random slots, refilling them, and sends them as one
 * message to the next thread (a ring; with one thread, to itself); it then frees, after
 * checking them, the objects of the messages it has received. The message itself is a
 * malloc'd block, freed by its receiver too. After the last loop, a barrier, then every
 * thread frees its messages and its working set.
 */
#include "common.h"

#define WSET 2048
#define STEPS 512
#define SEND 128

struct obj {
    void *p;
    uint32_t size;
    uint64_t tag;
};

struct msg {
    struct msg *next;
    int n;
    struct obj objs[SEND];
};

struct mailbox {
    _Alignas(64) pthread_mutex_t mu;
    struct msg *head;
};

struct targ {
    int id, nthreads;
    long loops;
    struct mailbox *boxes;
    pthread_barrier_t *barrier;
    uint64_t allocated, freed, nalloc;
};

static void obj_new(struct targ *a, struct rng *r, struct obj *o, uint64_t *seq)
{
    size_t n = rng_logsize(r, 16, 16384);
    void *p = xmalloc(n);
    uint64_t tag = ((uint64_t)a->id << 40) | ++*seq;
    stamp(p, n, tag);
    *o = (struct obj){p, (uint32_t)n, tag};
    a->allocated += n;
    a->nalloc++;
}

static void obj_free(struct targ *a, struct obj *o)
{
    check_stamp(o->p, o->size, o->tag, "rptest");
    free(o->p);
    a->freed += o->size;
}

static void drain(struct targ *a)
{
    struct mailbox *mb = &a->boxes[a->id];
    pthread_mutex_lock(&mb->mu);
    struct msg *m = mb->head;
    mb->head = NULL;
    pthread_mutex_unlock(&mb->mu);
    while (m) {
        struct msg *next = m->next;
        for (int i = 0; i < m->n; i++)
            obj_free(a, &m->objs[i]);
        free(m);
        m = next;
    }
}

static void *worker(void *vp)
{
    struct targ *a = vp;
    struct rng r = rng_seed(9000 + (uint64_t)a->id);
    uint64_t seq = 0;
    struct obj *ws = xmalloc(sizeof(struct obj) * WSET);
    for (int i = 0; i < WSET; i++)
        obj_new(a, &r, &ws[i], &seq);
    struct mailbox *to = &a->boxes[(a->id + 1) % a->nthreads];
    for (long l = 0; l < a->loops; l++) {
        for (int s = 0; s < STEPS; s++) {
            int i = (int)rng_below(&r, WSET);
            obj_free(a, &ws[i]);
            obj_new(a, &r, &ws[i], &seq);
        }
        struct msg *m = xmalloc(sizeof(struct msg));
        m->n = SEND;
        for (int k = 0; k < SEND; k++) {
            int i = (int)rng_below(&r, WSET);
            m->objs[k] = ws[i];
            obj_new(a, &r, &ws[i], &seq);
        }
        pthread_mutex_lock(&to->mu);
        m->next = to->head;
        to->head = m;
        pthread_mutex_unlock(&to->mu);
        drain(a);
    }
    pthread_barrier_wait(a->barrier);
    drain(a);
    for (int i = 0; i < WSET; i++)
        obj_free(a, &ws[i]);
    free(ws);
    return NULL;
}

int main(int argc, char **argv)
{
    struct opts o = parse_opts(argc, argv, "rptest", NULL);
    long loops = scaled(3000.0 / o.threads, o.scale, 20);
    struct mailbox *boxes = aligned_alloc(64, sizeof(struct mailbox) * (size_t)o.threads);
    struct targ *args = calloc((size_t)o.threads, sizeof(struct targ));
    pthread_barrier_t barrier;
    if (!boxes || !args)
        fail("allocation of the thread state");
    pthread_barrier_init(&barrier, NULL, (unsigned)o.threads);
    for (int i = 0; i < o.threads; i++) {
        pthread_mutex_init(&boxes[i].mu, NULL);
        boxes[i].head = NULL;
        args[i] = (struct targ){.id = i, .nthreads = o.threads, .loops = loops,
                                .boxes = boxes, .barrier = &barrier};
    }
    double t0 = now_s();
    run_threads(o.threads, worker, args, sizeof(struct targ));
    double dt = now_s() - t0;
    uint64_t allocated = 0, freed = 0, nalloc = 0;
    for (int i = 0; i < o.threads; i++) {
        allocated += args[i].allocated;
        freed += args[i].freed;
        nalloc += args[i].nalloc;
    }
    if (allocated != freed)
        corrupt("allocated %llu bytes, freed %llu", (unsigned long long)allocated,
                (unsigned long long)freed);
    fprintf(stderr, "rptest: %.2f s, %.0f ns per object\n", dt, dt * 1e9 / (double)nalloc);
    printf("rptest ok: %d threads, %ld loops each, %llu objects, %llu bytes allocated and "
           "freed\n",
           o.threads, loops, (unsigned long long)nalloc, (unsigned long long)allocated);
    pthread_barrier_destroy(&barrier);
    free(args);
    free(boxes);
    return 0;
}
