/* thread_churn.c — many short-lived threads (argv[1], default 5000) in waves (argv[2]
 * at a time, default 50). Each allocates a few hundred objects, frees most of them, and
 * leaves some in shared slots, where a thread of a later wave verifies and frees them.
 * A thread's cached memory must go back to the heap when it exits: the resident set
 * (VmRSS) after the last wave may grow at most 64 MiB over the figure measured after
 * the first wave. */
#define _GNU_SOURCE
#include "check.h"

#include <malloc.h>
#include <pthread.h>

enum {
    PER_THREAD = 300,  /* objects each thread allocates */
    LEFT_BEHIND = 8,   /* of which this many are left for other threads */
    SLOTS = 1024,      /* shared slots holding left-behind objects */
    MAX_GROWTH_MIB = 64,
};

struct slot {
    void *p;
    size_t size;
    uint64_t seed;
};

static pthread_mutex_t slots_lock = PTHREAD_MUTEX_INITIALIZER;
static struct slot slots[SLOTS];

static long vm_rss_kib(void)
{
    char line[256];
    long kib = -1;
    FILE *f = fopen("/proc/self/status", "r");
    CHECK(f != NULL);
    while (fgets(line, sizeof line, f) != NULL)
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kib = atol(line + 6);
            break;
        }
    fclose(f);
    CHECK(kib > 0);
    return kib;
}

static size_t object_size(uint64_t r)
{
    if (r % 100 == 0)
        return 40000 + (size_t)(r >> 8) % 90000; /* a few large objects */
    if (r % 4 == 0)
        return 1 + (size_t)(r >> 8) % 4096;
    return 1 + (size_t)(r >> 8) % 256;
}

static void *churn(void *arg)
{
    uint64_t id = (uintptr_t)arg;
    uint64_t rng = id * 0x9E3779B97F4A7C15ULL + 12345;
    void *p[PER_THREAD];
    size_t sz[PER_THREAD];
    size_t i;
    for (i = 0; i < PER_THREAD; i++) {
        sz[i] = object_size(xorshift64(&rng));
        p[i] = malloc(sz[i]);
        CHECKF(p[i] != NULL, "malloc(%zu) in thread %llu", sz[i], (unsigned long long)id);
        fill_pattern(p[i], sz[i], id * PER_THREAD + i);
    }
    for (i = 0; i < PER_THREAD; i++) {
        CHECK_PATTERN(p[i], sz[i], id * PER_THREAD + i);
        if (i % (PER_THREAD / LEFT_BEHIND) == 0) {
            /* leave it behind; free what a thread of an earlier wave left there */
            struct slot old, mine = {p[i], sz[i], id * PER_THREAD + i};
            size_t k = (size_t)(xorshift64(&rng) % SLOTS);
            pthread_mutex_lock(&slots_lock);
            old = slots[k];
            slots[k] = mine;
            pthread_mutex_unlock(&slots_lock);
            if (old.p != NULL) {
                CHECK_PATTERN(old.p, old.size, old.seed);
                free(old.p);
            }
        } else {
            free(p[i]);
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int total = 5000, wave = 50, started = 0, waves = 0, i;
    long baseline = 0, peak = 0, now;
    pthread_attr_t attr;
    pthread_t *t;
    goalloc_expect_active();
    if (argc > 1)
        total = atoi(argv[1]);
    if (argc > 2)
        wave = atoi(argv[2]);
    CHECK(total > 0 && wave > 0);
    t = malloc((size_t)wave * sizeof *t);
    CHECK(t != NULL);
    CHECK(pthread_attr_init(&attr) == 0);
    CHECK(pthread_attr_setstacksize(&attr, 256 * 1024) == 0);
    printf("VmRSS at start: %ld KiB\n", vm_rss_kib());

    while (started < total) {
        int n = total - started < wave ? total - started : wave;
        for (i = 0; i < n; i++)
            CHECK(pthread_create(&t[i], &attr, churn, (void *)(uintptr_t)(started + i)) ==
                  0);
        for (i = 0; i < n; i++)
            CHECK(pthread_join(t[i], NULL) == 0);
        started += n;
        waves++;
        now = vm_rss_kib();
        if (waves == 1) {
            baseline = now;
            printf("VmRSS after the first wave (baseline): %ld KiB\n", baseline);
        }
        if (now > peak)
            peak = now;
    }
    now = vm_rss_kib();
    printf("VmRSS after %d threads in %d waves: %ld KiB (peak %ld KiB, growth %ld KiB, "
           "limit %d MiB)\n",
           total, waves, now, peak, now - baseline, MAX_GROWTH_MIB);
    CHECKF(now - baseline < MAX_GROWTH_MIB * 1024L,
           "resident set grew by %ld KiB over %d threads: exited threads' memory is not "
           "being reused", now - baseline, total);

    for (i = 0; i < SLOTS; i++)
        if (slots[i].p != NULL) {
            CHECK_PATTERN(slots[i].p, slots[i].size, slots[i].seed);
            free(slots[i].p);
        }
    pthread_attr_destroy(&attr);
    free(t);
    printf("thread_churn: OK\n");
    return 0;
}
