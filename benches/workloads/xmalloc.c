/* xmalloc: one thread allocates, the others free, after Lever and Boreham's xmalloc-test
 * ("malloc() performance in a multithreaded Linux environment", USENIX 2000).
 *
 *   xmalloc [-t threads] [-s scale]
 *
 * One producer and T-1 consumers (with one thread: the thread alternates between the two
 * roles a batch at a time). The producer allocates objects of 8 .. 256 bytes
 * (log-uniform, one in 32 of 256 B .. 4 KiB), stamps them and collects them in batches of
 * 128; a full batch goes into a shared queue (a mutex and two condition variables,
 * at most 4 batches per consumer in flight). A consumer takes a batch, checks every
 * object and frees it. All the frees are of objects the producer allocated: the
 * producer's allocator has to keep getting memory back from the consumers.
 */
#include "common.h"

#define BATCH 128

struct item {
    void *p;
    uint32_t size;
    uint64_t tag;
};

struct batch {
    int n;
    struct item items[BATCH];
};

static struct {
    pthread_mutex_t mu;
    pthread_cond_t not_empty, not_full;
    struct batch **q; /* ring of full batches */
    struct batch **pool; /* stack of empty batches */
    int cap, head, len, npool;
    int closed;
} Q = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER,
       NULL, NULL, 0, 0, 0, 0, 0};

struct consumer {
    uint64_t freed, objects;
};

static size_t pick_size(struct rng *r)
{
    return rng_below(r, 32) == 0 ? rng_logsize(r, 256, 4096) : rng_logsize(r, 8, 256);
}

static void consume(struct batch *b, struct consumer *c)
{
    for (int i = 0; i < b->n; i++) {
        struct item *it = &b->items[i];
        check_stamp(it->p, it->size, it->tag, "xmalloc");
        free(it->p);
        c->freed += it->size;
        c->objects++;
    }
    b->n = 0;
}

static void *consumer_main(void *vp)
{
    struct consumer *c = vp;
    for (;;) {
        pthread_mutex_lock(&Q.mu);
        while (Q.len == 0 && !Q.closed)
            pthread_cond_wait(&Q.not_empty, &Q.mu);
        if (Q.len == 0) {
            pthread_mutex_unlock(&Q.mu);
            return NULL;
        }
        struct batch *b = Q.q[Q.head];
        Q.head = (Q.head + 1) % Q.cap;
        Q.len--;
        pthread_mutex_unlock(&Q.mu);
        consume(b, c);
        pthread_mutex_lock(&Q.mu);
        Q.pool[Q.npool++] = b;
        pthread_cond_signal(&Q.not_full);
        pthread_mutex_unlock(&Q.mu);
    }
}

int main(int argc, char **argv)
{
    struct opts o = parse_opts(argc, argv, "xmalloc", NULL);
    int nconsumers = o.threads > 1 ? o.threads - 1 : 1;
    long nbatches = scaled(4e6 / BATCH, o.scale, 10);
    Q.cap = 4 * nconsumers;
    Q.q = xmalloc(sizeof(struct batch *) * (size_t)Q.cap);
    Q.pool = xmalloc(sizeof(struct batch *) * (size_t)Q.cap);
    for (int i = 0; i < Q.cap; i++) {
        Q.pool[Q.npool++] = xmalloc(sizeof(struct batch));
        Q.pool[i]->n = 0;
    }
    struct consumer *cons = calloc((size_t)nconsumers, sizeof(struct consumer));
    if (!cons)
        fail("calloc");

    struct rng r = rng_seed(777);
    uint64_t produced = 0, tag = 0;
    double t0 = now_s();
    pthread_t *tids = NULL;
    if (o.threads > 1) {
        tids = xmalloc(sizeof(pthread_t) * (size_t)nconsumers);
        for (int i = 0; i < nconsumers; i++)
            if (pthread_create(&tids[i], NULL, consumer_main, &cons[i]))
                fail("pthread_create");
    }
    for (long k = 0; k < nbatches; k++) {
        pthread_mutex_lock(&Q.mu);
        while (Q.npool == 0)
            pthread_cond_wait(&Q.not_full, &Q.mu);
        struct batch *b = Q.pool[--Q.npool];
        pthread_mutex_unlock(&Q.mu);
        for (int i = 0; i < BATCH; i++) {
            size_t n = pick_size(&r);
            void *p = xmalloc(n);
            stamp(p, n, ++tag);
            b->items[i] = (struct item){p, (uint32_t)n, tag};
            produced += n;
        }
        b->n = BATCH;
        if (o.threads == 1) {
            consume(b, &cons[0]);
            Q.pool[Q.npool++] = b;
            continue;
        }
        pthread_mutex_lock(&Q.mu);
        Q.q[(Q.head + Q.len) % Q.cap] = b;
        Q.len++;
        pthread_cond_signal(&Q.not_empty);
        pthread_mutex_unlock(&Q.mu);
    }
    if (o.threads > 1) {
        pthread_mutex_lock(&Q.mu);
        Q.closed = 1;
        pthread_cond_broadcast(&Q.not_empty);
        pthread_mutex_unlock(&Q.mu);
        for (int i = 0; i < nconsumers; i++)
            pthread_join(tids[i], NULL);
        free(tids);
    }
    double dt = now_s() - t0;

    uint64_t freed = 0, objects = 0;
    for (int i = 0; i < nconsumers; i++) {
        freed += cons[i].freed;
        objects += cons[i].objects;
    }
    if (freed != produced || objects != (uint64_t)nbatches * BATCH)
        corrupt("produced %llu bytes in %ld objects, freed %llu bytes in %llu",
                (unsigned long long)produced, nbatches * BATCH, (unsigned long long)freed,
                (unsigned long long)objects);
    fprintf(stderr, "xmalloc: %.2f s, %.0f ns per object, %d consumers\n", dt,
            dt * 1e9 / (double)(nbatches * BATCH), nconsumers);
    printf("xmalloc ok: %ld objects, %llu bytes allocated by one thread and freed\n",
           nbatches * BATCH, (unsigned long long)freed);
    for (int i = 0; i < Q.npool; i++)
        free(Q.pool[i]);
    free(Q.q);
    free(Q.pool);
    free(cons);
    return 0;
}
