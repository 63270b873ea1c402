/* fork.c — worker threads allocate and free in a loop while the main thread forks
 * (argv[1] times, default 300). Each child at once allocates small, large, calloc'd and
 * realloc'd objects of every size class, checks and frees objects the parent's main
 * thread allocated before the fork, does the same from a thread it creates, sometimes
 * forks a grandchild, and _exit(0)s. A child that deadlocks on an allocator lock left
 * held across fork() is killed by its alarm(10): the parent sees the signal and fails. */
#define _GNU_SOURCE
#include "check.h"

#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>

enum { NWORKERS = 2, NPARENT = 32, CHILD_ALARM_S = 10 };

static atomic_int stop;
static atomic_ullong worker_ops;
static void *parent_obj[NPARENT];

static size_t parent_size(size_t i)
{
    return i % 4 == 0 ? 40000 + i * 1000 : 8 + i * 37;
}

static void *worker(void *arg)
{
    uint64_t rng = (uintptr_t)arg * 0x9E3779B97F4A7C15ULL + 1;
    void *slots[64] = {0};
    size_t i;
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        uint64_t r = xorshift64(&rng);
        size_t k = r % 64;
        size_t n = (r >> 8) % 8 == 0 ? 32768 + (r >> 16) % 100000 : (r >> 16) % 4096;
        free(slots[k]);
        if ((r >> 12) % 5 == 0) {
            slots[k] = calloc(1, n);
        } else if ((r >> 12) % 5 == 1) {
            slots[k] = realloc(malloc(n / 2 + 1), n + 1);
        } else {
            slots[k] = malloc(n);
        }
        CHECK(slots[k] != NULL);
        memset(slots[k], (int)r, n);
        /* short pauses leave the parent and its children some CPU on small machines */
        if (atomic_fetch_add_explicit(&worker_ops, 1, memory_order_relaxed) % 512 == 0)
            usleep(100);
    }
    for (i = 0; i < 64; i++)
        free(slots[i]);
    return NULL;
}

/* Allocation work a child does: every size from 8 B to 32 KiB in coarse steps (one lock
 * per size class in a Go-style allocator), large objects, calloc, realloc. */
static void child_allocs(uint64_t seed)
{
    enum { N = 64 };
    void *p[N];
    size_t n, i = 0;
    for (n = 8; n <= 40000; n += n / 8 + 8) {
        void *q = malloc(n);
        CHECK(q != NULL);
        memset(q, 0x5C, n);
        escape(q);
        free(q);
    }
    for (i = 0; i < N; i++) {
        size_t sz = i % 16 == 0 ? 40000 + i * 1024 : 16 + i * 61;
        p[i] = i % 3 == 0 ? calloc(1, sz) : malloc(sz);
        CHECK(p[i] != NULL);
        fill_pattern(p[i], sz, seed + i);
    }
    for (i = 0; i < N; i++) {
        size_t sz = i % 16 == 0 ? 40000 + i * 1024 : 16 + i * 61;
        void *q = realloc(p[i], sz * 2);
        CHECK(q != NULL);
        CHECK_PATTERN(q, sz, seed + i);
        free(q);
    }
}

static void *child_thread(void *arg)
{
    (void)arg;
    child_allocs(77);
    return NULL;
}

static void child_main(int round)
{
    pthread_t t;
    size_t i;
    alarm(CHILD_ALARM_S);
    child_allocs((uint64_t)round);
    /* objects the parent's main thread allocated (and nobody else touches) survive the
     * fork and can be freed in the child */
    for (i = 0; i < NPARENT; i++) {
        CHECK_PATTERN(parent_obj[i], parent_size(i), i);
        free(parent_obj[i]);
    }
    CHECK(pthread_create(&t, NULL, child_thread, NULL) == 0);
    CHECK(pthread_join(t, NULL) == 0);
    if (round % 50 == 0) {
        /* a grandchild: fork from a process that has itself been forked */
        int st;
        pid_t g = fork();
        CHECK(g >= 0);
        if (g == 0) {
            alarm(CHILD_ALARM_S);
            child_allocs(99);
            _exit(0);
        }
        CHECK(waitpid(g, &st, 0) == g);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    _exit(0);
}

int main(int argc, char **argv)
{
    int forks = 300, i;
    pthread_t w[NWORKERS];
    goalloc_expect_active();
    if (argc > 1)
        forks = atoi(argv[1]);
    for (i = 0; i < NPARENT; i++) {
        parent_obj[i] = malloc(parent_size((size_t)i));
        CHECK(parent_obj[i] != NULL);
        fill_pattern(parent_obj[i], parent_size((size_t)i), (uint64_t)i);
    }
    for (i = 0; i < NWORKERS; i++)
        CHECK(pthread_create(&w[i], NULL, worker, (void *)(uintptr_t)(i + 1)) == 0);

    for (i = 0; i < forks; i++) {
        int st;
        pid_t pid;
        /* the parent keeps allocating too, so fork can land inside its own calls */
        void *q = malloc((size_t)(i % 7) * 5000 + 1);
        CHECK(q != NULL);
        pid = fork();
        CHECKF(pid >= 0, "fork #%d failed", i);
        if (pid == 0)
            child_main(i);
        free(q);
        CHECK(waitpid(pid, &st, 0) == pid);
        if (WIFSIGNALED(st))
            CHECKF(0, "child #%d killed by signal %d (%s)%s", i, WTERMSIG(st),
                   strsignal(WTERMSIG(st)),
                   WTERMSIG(st) == SIGALRM ? ": it hung, probably deadlocked in the "
                                             "allocator after fork"
                                           : "");
        CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child #%d exited with status %d", i,
               WEXITSTATUS(st));
    }
    atomic_store(&stop, 1);
    for (i = 0; i < NWORKERS; i++)
        CHECK(pthread_join(w[i], NULL) == 0);
    for (i = 0; i < NPARENT; i++) {
        CHECK_PATTERN(parent_obj[i], parent_size((size_t)i), (uint64_t)i);
        free(parent_obj[i]);
    }
    printf("fork: OK (%d children, %llu worker operations meanwhile)\n", forks,
           (unsigned long long)atomic_load(&worker_ops));
    return 0;
}
