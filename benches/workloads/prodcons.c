/* prodcons: producers allocate messages, consumers on other threads check and free them.
 *
 *   prodcons [-t threads] [-s scale]
 *
 * T/2 producer/consumer pairs (with one thread: one thread that alternates), each
 * joined by a single-producer single-consumer ring of 1024 pointers. A producer
 * allocates messages of 16 B .. 512 B (log-uniform, one in 64 of 512 B .. 8 KiB), fills
 * them (header: sequence number, size, tag; body: a byte pattern) and pushes them; the
 * consumer checks the sequence and the contents and frees them. Every free is a free of
 * an object that another thread allocated.
 */
#include "common.h"

#include <sched.h>
#include <stdatomic.h>

#define RING 1024

struct msg {
    uint64_t seq;
    uint32_t size;
    uint32_t pair;
    unsigned char body[];
};

struct ring {
    _Alignas(64) atomic_size_t head; /* written by the consumer */
    _Alignas(64) atomic_size_t tail; /* written by the producer */
    _Alignas(64) struct msg *slot[RING];
};

struct pair {
    struct ring ring;
    int id;
    long count;
    uint64_t produced_sum, consumed_sum;
};

static struct msg *make_msg(struct rng *r, uint64_t seq, uint32_t pair)
{
    size_t n = rng_below(r, 64) == 0 ? rng_logsize(r, 512, 8192) : rng_logsize(r, 16, 512);
    if (n < sizeof(struct msg) + 1)
        n = sizeof(struct msg) + 1;
    struct msg *m = xmalloc(n);
    m->seq = seq;
    m->size = (uint32_t)n;
    m->pair = pair;
    memset(m->body, (int)(seq * 131 + pair) & 0xff, n - sizeof(struct msg));
    return m;
}

static uint64_t check_msg(struct msg *m, uint64_t seq, uint32_t pair)
{
    if (m->seq != seq || m->pair != pair || m->size <= sizeof(struct msg) || m->size > 8192)
        corrupt("pair %u: message %p has seq %llu (want %llu), size %u", pair, (void *)m,
                (unsigned long long)m->seq, (unsigned long long)seq, m->size);
    size_t len = m->size - sizeof(struct msg);
    unsigned char want = (unsigned char)((seq * 131 + pair) & 0xff);
    /* first, middle and last byte of the body, and every 64th */
    for (size_t i = 0; i < len; i += 64)
        if (m->body[i] != want)
            corrupt("pair %u: message %llu byte %zu changed", pair, (unsigned long long)seq, i);
    if (m->body[len - 1] != want || m->body[len / 2] != want)
        corrupt("pair %u: message %llu body changed", pair, (unsigned long long)seq);
    return m->size;
}

static void *producer(void *vp)
{
    struct pair *p = vp;
    struct rng r = rng_seed(500 + (uint64_t)p->id);
    size_t tail = 0;
    for (long i = 0; i < p->count; i++) {
        struct msg *m = make_msg(&r, (uint64_t)i, (uint32_t)p->id);
        p->produced_sum += m->size;
        int spins = 0;
        while (tail - atomic_load_explicit(&p->ring.head, memory_order_acquire) >= RING)
            if (++spins > 100)
                sched_yield();
            else
                __builtin_ia32_pause();
        p->ring.slot[tail % RING] = m;
        atomic_store_explicit(&p->ring.tail, ++tail, memory_order_release);
    }
    return NULL;
}

static void *consumer(void *vp)
{
    struct pair *p = vp;
    size_t head = 0;
    for (long i = 0; i < p->count; i++) {
        int spins = 0;
        while (atomic_load_explicit(&p->ring.tail, memory_order_acquire) == head)
            if (++spins > 100)
                sched_yield();
            else
                __builtin_ia32_pause();
        struct msg *m = p->ring.slot[head % RING];
        atomic_store_explicit(&p->ring.head, ++head, memory_order_release);
        p->consumed_sum += check_msg(m, (uint64_t)i, (uint32_t)p->id);
        free(m);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    struct opts o = parse_opts(argc, argv, "prodcons", NULL);
    int npairs = o.threads / 2 ? o.threads / 2 : 1;
    long count = scaled(8e6 / npairs, o.scale, 1000);
    struct pair *pairs = aligned_alloc(64, sizeof(struct pair) * (size_t)npairs);
    if (!pairs)
        fail("aligned_alloc");
    memset(pairs, 0, sizeof(struct pair) * (size_t)npairs);
    for (int i = 0; i < npairs; i++) {
        pairs[i].id = i;
        pairs[i].count = count;
    }

    double t0 = now_s();
    if (o.threads == 1) {
        /* one thread: produce and consume in turns of 256 messages */
        struct rng r = rng_seed(500);
        struct msg *batch[256];
        for (long i = 0; i < count; i += 256) {
            long k = count - i < 256 ? count - i : 256;
            for (long j = 0; j < k; j++) {
                batch[j] = make_msg(&r, (uint64_t)(i + j), 0);
                pairs[0].produced_sum += batch[j]->size;
            }
            for (long j = 0; j < k; j++) {
                pairs[0].consumed_sum += check_msg(batch[j], (uint64_t)(i + j), 0);
                free(batch[j]);
            }
        }
    } else {
        pthread_t *tids = xmalloc(sizeof(pthread_t) * 2 * (size_t)npairs);
        for (int i = 0; i < npairs; i++) {
            if (pthread_create(&tids[2 * i], NULL, consumer, &pairs[i]) ||
                pthread_create(&tids[2 * i + 1], NULL, producer, &pairs[i]))
                fail("pthread_create");
        }
        for (int i = 0; i < 2 * npairs; i++)
            pthread_join(tids[i], NULL);
        free(tids);
    }
    double dt = now_s() - t0;

    uint64_t sum = 0;
    for (int i = 0; i < npairs; i++) {
        if (pairs[i].produced_sum != pairs[i].consumed_sum)
            corrupt("pair %d: produced %llu bytes, consumed %llu", i,
                    (unsigned long long)pairs[i].produced_sum,
                    (unsigned long long)pairs[i].consumed_sum);
        sum += pairs[i].consumed_sum;
    }
    fprintf(stderr, "prodcons: %.2f s, %.0f ns per message\n", dt,
            dt * 1e9 / (double)(count * npairs));
    printf("prodcons ok: %d pairs, %ld messages each, %llu bytes\n", npairs, count,
           (unsigned long long)sum);
    free(pairs);
    return 0;
}
