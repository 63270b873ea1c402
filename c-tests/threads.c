/* threads.c — N threads (argv[1], default 4) for a while (argv[2] ms, default 1000)
 * allocate objects of random sizes 8 B .. 64 KiB, stamp each with a pattern seeded by
 * (owner, index), and pass most of them through per-thread inboxes to another thread,
 * which verifies the stamp and frees them (cross-thread free). The rest are freed by the
 * allocating thread, at once or after living a while in a local window. */
#define _GNU_SOURCE
#include "check.h"

#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

enum { MAX_THREADS = 64, INBOX = 1024, WINDOW = 256 };

struct item {
    void *p;
    size_t size;
    uint32_t owner;
    uint32_t index;
};

struct inbox {
    pthread_mutex_t lock;
    size_t head, count; /* ring of INBOX items */
    struct item items[INBOX];
};

struct worker {
    pthread_t thread;
    uint32_t id;
    uint64_t allocs, sent, received, freed_own;
};

static struct inbox inboxes[MAX_THREADS];
static struct worker workers[MAX_THREADS];
static int nthreads = 4;
static atomic_int stop;
static pthread_barrier_t stopped;

static uint64_t stamp_seed(uint32_t owner, uint32_t index)
{
    return ((uint64_t)owner << 32) | index;
}

static void verify_and_free(const struct item *it)
{
    size_t bad = find_pattern_mismatch(it->p, it->size, stamp_seed(it->owner, it->index));
    CHECKF(bad == (size_t)-1,
           "object %p (%zu bytes, owner %u, index %u): stamp broken at byte %zu", it->p,
           it->size, it->owner, it->index, bad);
    free(it->p);
}

static int inbox_push(struct inbox *b, const struct item *it)
{
    int ok = 0;
    pthread_mutex_lock(&b->lock);
    if (b->count < INBOX) {
        b->items[(b->head + b->count) % INBOX] = *it;
        b->count++;
        ok = 1;
    }
    pthread_mutex_unlock(&b->lock);
    return ok;
}

static int inbox_pop(struct inbox *b, struct item *it)
{
    int ok = 0;
    pthread_mutex_lock(&b->lock);
    if (b->count > 0) {
        *it = b->items[b->head];
        b->head = (b->head + 1) % INBOX;
        b->count--;
        ok = 1;
    }
    pthread_mutex_unlock(&b->lock);
    return ok;
}

/* log-uniform in [8, 65536]: most objects small, some large */
static size_t random_size(uint64_t *rng)
{
    uint64_t r = xorshift64(rng);
    unsigned lg = 3 + (unsigned)(r % 13); /* 8 .. 32768 */
    size_t base = (size_t)1 << lg;
    return base + (size_t)((r >> 8) % (base + 1)); /* up to 2 * 32768 = 64 KiB */
}

static void drain_inbox(struct worker *w, size_t max)
{
    struct item it;
    while (max-- > 0 && inbox_pop(&inboxes[w->id], &it)) {
        verify_and_free(&it);
        w->received++;
    }
}

static void *work(void *arg)
{
    struct worker *w = arg;
    struct item window[WINDOW];
    uint64_t rng = 0x9E3779B97F4A7C15ULL * (w->id + 1);
    uint32_t index = 0;
    size_t i;
    memset(window, 0, sizeof window);

    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        struct item it;
        uint64_t r = xorshift64(&rng);
        it.size = random_size(&rng);
        it.owner = w->id;
        it.index = index++;
        it.p = (r & 15) == 0 ? calloc(1, it.size) : malloc(it.size);
        CHECKF(it.p != NULL, "malloc(%zu) in thread %u", it.size, w->id);
        CHECK(is_aligned(it.p, it.size >= 16 ? 16 : 8));
        CHECK(malloc_usable_size(it.p) >= it.size);
        if ((r & 15) == 0) {
            const unsigned char *z = it.p;
            CHECKF(z[0] == 0 && z[it.size / 2] == 0 && z[it.size - 1] == 0,
                   "calloc(%zu) not zeroed", it.size);
        }
        fill_pattern(it.p, it.size, stamp_seed(it.owner, it.index));
        w->allocs++;

        switch ((r >> 4) % 20) {
        default: { /* 60%: to a random other thread */
            uint32_t to = 0;
            if (nthreads > 1) {
                to = (uint32_t)((r >> 16) % (uint64_t)(nthreads - 1));
                if (to >= w->id)
                    to++;
            }
            if (nthreads > 1 && inbox_push(&inboxes[to], &it)) {
                w->sent++;
                break;
            }
            verify_and_free(&it); /* inbox full */
            w->freed_own++;
            break;
        }
        case 12: case 13: case 14: case 15: case 16: { /* 25%: live a while locally */
            struct item *slot = &window[(r >> 16) % WINDOW];
            if (slot->p != NULL) {
                verify_and_free(slot);
                w->freed_own++;
            }
            *slot = it;
            break;
        }
        case 17: case 18: case 19: /* 15%: freed at once */
            verify_and_free(&it);
            w->freed_own++;
            break;
        }
        drain_inbox(w, 2);
    }

    /* nobody sends after the barrier; then empty this thread's inbox and window */
    pthread_barrier_wait(&stopped);
    drain_inbox(w, (size_t)-1);
    for (i = 0; i < WINDOW; i++)
        if (window[i].p != NULL) {
            verify_and_free(&window[i]);
            w->freed_own++;
        }
    return NULL;
}

int main(int argc, char **argv)
{
    long ms = 1000;
    int i;
    uint64_t allocs = 0, sent = 0, received = 0, own = 0;
    struct timespec ts;
    goalloc_expect_active();
    if (argc > 1)
        nthreads = atoi(argv[1]);
    if (argc > 2)
        ms = atol(argv[2]);
    CHECK(nthreads >= 1 && nthreads <= MAX_THREADS);
    CHECK(pthread_barrier_init(&stopped, NULL, (unsigned)nthreads) == 0);
    for (i = 0; i < nthreads; i++) {
        CHECK(pthread_mutex_init(&inboxes[i].lock, NULL) == 0);
        workers[i].id = (uint32_t)i;
    }
    for (i = 0; i < nthreads; i++)
        CHECK(pthread_create(&workers[i].thread, NULL, work, &workers[i]) == 0);
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (ms % 1000) * 1000000L;
    nanosleep(&ts, NULL);
    atomic_store(&stop, 1);
    for (i = 0; i < nthreads; i++) {
        CHECK(pthread_join(workers[i].thread, NULL) == 0);
        allocs += workers[i].allocs;
        sent += workers[i].sent;
        received += workers[i].received;
        own += workers[i].freed_own;
    }
    for (i = 0; i < nthreads; i++)
        CHECK(inboxes[i].count == 0);
    CHECKF(sent == received, "sent %llu, received %llu", (unsigned long long)sent,
           (unsigned long long)received);
    CHECKF(allocs == sent + own, "allocated %llu, freed %llu", (unsigned long long)allocs,
           (unsigned long long)(received + own));
    printf("threads: OK (%d threads, %ld ms: %llu allocations, %llu freed by another "
           "thread, %llu by their own)\n",
           nthreads, ms, (unsigned long long)allocs, (unsigned long long)received,
           (unsigned long long)own);
    return 0;
}
