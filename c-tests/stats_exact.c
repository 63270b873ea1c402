/* stats_exact.c — the statistics are exact at a quiescent point: every malloc and free
 * of every thread is counted (exited threads and objects freed by another thread
 * included), objects in thread caches count as free, and after a free-everything
 * heap_alloc, heap_objects, the per-class live counts and mallinfo2().uordblks are back
 * at their baseline. Exact counts are checked on size classes nothing else here uses
 * (3072 B and 13568 B objects) and on the totals, which the C library's own allocations
 * (thread start-up) may move: those are checked as "back to baseline". */
#define _GNU_SOURCE
#include "check.h"
#include "goalloc.h"
#include <malloc.h>
#include <pthread.h>

static void (*read_stats)(struct goalloc_mem_stats *);

/* size classes of the sizes used for exact counts */
static int class_of(const struct goalloc_mem_stats *s, size_t size)
{
    for (int c = 1; c < GOALLOC_NUM_CLASSES; c++)
        if (s->by_size[c].size >= size)
            return c;
    return 0;
}

static struct goalloc_mem_stats *snap(void)
{
    /* static: the snapshot is big and must not come from the allocator under test */
    static struct goalloc_mem_stats buf[8];
    static int next;
    struct goalloc_mem_stats *s = &buf[next++ % 8];
    read_stats(s);
    return s;
}

static void check_back_to(const struct goalloc_mem_stats *base, const struct goalloc_mem_stats *now,
                          const char *when)
{
    CHECKF(now->heap_objects == base->heap_objects, "%s: heap_objects %llu, baseline %llu", when,
           (unsigned long long)now->heap_objects, (unsigned long long)base->heap_objects);
    CHECKF(now->heap_alloc == base->heap_alloc, "%s: heap_alloc %llu, baseline %llu", when,
           (unsigned long long)now->heap_alloc, (unsigned long long)base->heap_alloc);
    CHECKF(now->mallocs - now->frees == base->mallocs - base->frees,
           "%s: mallocs - frees %lld, baseline %lld", when,
           (long long)(now->mallocs - now->frees), (long long)(base->mallocs - base->frees));
    for (int c = 1; c < GOALLOC_NUM_CLASSES; c++)
        CHECKF(now->by_size[c].live == base->by_size[c].live,
               "%s: class %d (%llu B) live %llu, baseline %llu", when, c,
               (unsigned long long)now->by_size[c].size,
               (unsigned long long)now->by_size[c].live,
               (unsigned long long)base->by_size[c].live);
    CHECKF(now->large_objects == base->large_objects, "%s: large_objects %llu, baseline %llu",
           when, (unsigned long long)now->large_objects,
           (unsigned long long)base->large_objects);
}

static void check_class_delta(const struct goalloc_mem_stats *base,
                              const struct goalloc_mem_stats *now, size_t size, uint64_t mallocs,
                              uint64_t frees, const char *when)
{
    int c = class_of(now, size);
    uint64_t dm = now->by_size[c].mallocs - base->by_size[c].mallocs;
    uint64_t df = now->by_size[c].frees - base->by_size[c].frees;
    CHECKF(dm == mallocs && df == frees,
           "%s: class %d (%zu B): %llu mallocs and %llu frees counted, %llu and %llu made",
           when, c, size, (unsigned long long)dm, (unsigned long long)df,
           (unsigned long long)mallocs, (unsigned long long)frees);
}

enum { PAIRS = 1000000, OBJECTS = 100000, SMALL = 3000, OTHER = 13000, LARGE = 100000 };
static void *objs[OBJECTS];

/* The workload: 1,000,000 malloc(64)/free pairs, then 100,000 objects allocated
 * and freed. */
static void one_thread(void)
{
    struct goalloc_mem_stats *base = snap();
    uint64_t mallocs0 = base->mallocs, frees0 = base->frees;
    for (int i = 0; i < PAIRS; i++) {
        void *p = malloc(64);
        escape(p);
        free(p);
    }
    for (int i = 0; i < OBJECTS; i++) {
        objs[i] = malloc(i % 2 ? SMALL : 64);
        CHECK(objs[i] != NULL);
    }
    struct goalloc_mem_stats *mid = snap();
    CHECKF(mid->mallocs - mallocs0 == PAIRS + OBJECTS, "%llu mallocs counted, %d made",
           (unsigned long long)(mid->mallocs - mallocs0), PAIRS + OBJECTS);
    CHECKF(mid->frees - frees0 == PAIRS, "%llu frees counted, %d made",
           (unsigned long long)(mid->frees - frees0), PAIRS);
    CHECKF(mid->heap_objects - base->heap_objects == OBJECTS, "%llu objects live, %d made",
           (unsigned long long)(mid->heap_objects - base->heap_objects), OBJECTS);
    CHECK(mid->heap_alloc - base->heap_alloc ==
          (uint64_t)(OBJECTS / 2) * (mid->by_size[class_of(mid, 64)].size +
                                     mid->by_size[class_of(mid, SMALL)].size));
    check_class_delta(base, mid, SMALL, OBJECTS / 2, 0, "one thread, live");
    for (int i = 0; i < OBJECTS; i++)
        free(objs[i]);
    struct goalloc_mem_stats *end = snap();
    CHECKF(end->mallocs - mallocs0 == PAIRS + OBJECTS && end->frees - frees0 == PAIRS + OBJECTS,
           "%llu mallocs and %llu frees counted, %d of each made (scavenger %llu -> %llu)",
           (unsigned long long)(end->mallocs - mallocs0),
           (unsigned long long)(end->frees - frees0), PAIRS + OBJECTS,
           (unsigned long long)mid->scav_running, (unsigned long long)end->scav_running);
    CHECK(end->total_alloc - base->total_alloc ==
          (uint64_t)(PAIRS + OBJECTS / 2) * end->by_size[class_of(end, 64)].size +
              (uint64_t)(OBJECTS / 2) * end->by_size[class_of(end, SMALL)].size);
    check_class_delta(base, end, SMALL, OBJECTS / 2, OBJECTS / 2, "one thread, freed");
    check_back_to(base, end, "one thread");
}

/* Large objects, reused from a thread's kept spans: every call counts, and kept spans
 * count as free. */
static void large(void)
{
    struct goalloc_mem_stats *base = snap();
    for (int i = 0; i < 1000; i++) {
        void *p = malloc(LARGE + (size_t)(i % 3) * 8192);
        CHECK(p != NULL);
        escape(p);
        free(p);
    }
    struct goalloc_mem_stats *end = snap();
    CHECKF(end->mallocs - base->mallocs == 1000 && end->frees - base->frees == 1000,
           "large: %llu mallocs and %llu frees counted, 1000 of each made",
           (unsigned long long)(end->mallocs - base->mallocs),
           (unsigned long long)(end->frees - base->frees));
    CHECK(end->large_bytes == base->large_bytes);
    check_back_to(base, end, "large");
}

/* Threads: a producer allocates, a consumer frees what it is handed; a thread that
 * allocates and exits leaves its objects to the main thread, which frees them; the
 * exited threads' counts stay in the totals. */
enum { HANDED = 20000 };
static void *handed[HANDED];
static pthread_barrier_t start;

static void *producer(void *arg)
{
    (void)arg;
    pthread_barrier_wait(&start);
    for (int i = 0; i < HANDED; i++) {
        handed[i] = malloc(SMALL);
        CHECK(handed[i] != NULL);
    }
    return NULL;
}

static void *consumer(void *arg)
{
    (void)arg;
    for (int i = 0; i < HANDED; i++)
        free(handed[i]);
    return NULL;
}

static void *leaver(void *arg)
{
    void **out = arg;
    pthread_barrier_wait(&start);
    for (int i = 0; i < 1000; i++) {
        out[i] = malloc(OTHER);
        CHECK(out[i] != NULL);
        void *q = malloc(OTHER);
        escape(q); /* or the compiler drops the pair */
        free(q);
    }
    return NULL;
}

static void threads(void)
{
    static void *left[1000];
    pthread_t p, l, c;
    CHECK(pthread_barrier_init(&start, NULL, 3) == 0);
    CHECK(pthread_create(&p, NULL, producer, NULL) == 0);
    CHECK(pthread_create(&l, NULL, leaver, left) == 0);
    /* the threads exist (their start-up allocations are made) before the baseline */
    struct goalloc_mem_stats *base = snap();
    pthread_barrier_wait(&start);
    CHECK(pthread_join(p, NULL) == 0);
    CHECK(pthread_join(l, NULL) == 0);
    struct goalloc_mem_stats *mid = snap();
    check_class_delta(base, mid, SMALL, HANDED, 0, "threads, produced");
    check_class_delta(base, mid, OTHER, 2000, 1000, "threads, left by an exited thread");
    CHECK(pthread_create(&c, NULL, consumer, NULL) == 0);
    CHECK(pthread_join(c, NULL) == 0);
    for (int i = 0; i < 1000; i++)
        free(left[i]);
    struct goalloc_mem_stats *end = snap();
    check_class_delta(base, end, SMALL, HANDED, HANDED, "threads, consumed");
    check_class_delta(base, end, OTHER, 2000, 2000, "threads, freed by main");
    for (int cl = 1; cl < GOALLOC_NUM_CLASSES; cl++)
        if (end->by_size[cl].size == mid->by_size[class_of(mid, SMALL)].size ||
            end->by_size[cl].size == mid->by_size[class_of(mid, OTHER)].size)
            CHECK(end->by_size[cl].live == base->by_size[cl].live);
    CHECK(end->mallocs - end->frees <= base->mallocs - base->frees + 16);
    pthread_barrier_destroy(&start);
}

int main(void)
{
    goalloc_expect_active();
    read_stats =
        (void (*)(struct goalloc_mem_stats *))dlsym(RTLD_DEFAULT, "goalloc_read_mem_stats");
    CHECK(read_stats != NULL);

    /* The scavenger's thread starts once freed memory passes a few MiB, and glibc's
     * pthread_create makes one allocation for it, a real one that the totals count: start
     * it before the baselines (16 MiB freed). */
    {
        static void *warm[16];
        for (int i = 0; i < 16; i++)
            CHECK((warm[i] = malloc(1 << 20)) != NULL);
        for (int i = 0; i < 16; i++)
            free(warm[i]);
        free(malloc(1 << 20));
    }
    CHECKF(snap()->scav_running == 1, "the scavenger did not start");

    struct mallinfo2 m0 = mallinfo2();
    one_thread();
    large();
    struct mallinfo2 m1 = mallinfo2();
    CHECKF(m1.uordblks <= m0.uordblks + 8192 && m0.uordblks <= m1.uordblks + 8192,
           "mallinfo2().uordblks %zu after freeing everything, %zu before", m1.uordblks,
           m0.uordblks);
    threads();
    printf("stats_exact: OK\n");
    return 0;
}
