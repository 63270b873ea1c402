/* oom.c — out of memory: under RLIMIT_AS every entry point fails cleanly (NULL with
 * errno = ENOMEM, or ENOMEM from posix_memalign), the old object survives a failed
 * realloc, no lock stays held (another thread can still allocate once memory is freed),
 * nothing leaks (the same amount can be allocated again), and allocation works again. */
#define _GNU_SOURCE
#include "check.h"
#include <malloc.h>
#include <pthread.h>
#include <sys/resource.h>

#define MiB (1024UL * 1024UL)
#define MAXP 100000

static void *ptrs[MAXP];

static long vm_size_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmSize:", 7))
            v = atol(line + 7);
    if (f)
        fclose(f);
    return v;
}

/* Allocates `size` until it fails; returns the count. The failure must be ENOMEM. */
static int exhaust(size_t size, int start)
{
    int n = start;
    for (; n < MAXP; n++) {
        errno = 0;
        void *p = malloc(size);
        if (!p) {
            CHECKF(errno == ENOMEM, "malloc(%zu) failed with errno %d", size, errno);
            break;
        }
        memset(p, 1, size < 4096 ? size : 4096);
        ptrs[n] = p;
    }
    CHECKF(n < MAXP, "never ran out of memory with %zu-byte objects", size);
    return n;
}

static void release(int from, int to)
{
    for (int i = from; i < to; i++) {
        free(ptrs[i]);
        ptrs[i] = NULL;
    }
}

static void every_entry_point_fails(void)
{
    void *p = (void *)1;
    errno = 0;
    CHECK(calloc(64, MiB) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(aligned_alloc(4096, 64 * MiB) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(memalign(1 << 20, 64 * MiB) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(valloc(64 * MiB) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(pvalloc(64 * MiB) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(posix_memalign_opaque(&p, 64, 64 * MiB) == ENOMEM && errno == ENOMEM);
    CHECK(p == (void *)1); /* untouched on failure */
    char *old = ptrs[0];
    memset(old, 0x3c, 64);
    errno = 0;
    CHECK(realloc(old, 64 * MiB) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(reallocarray(old, 64, MiB) == NULL && errno == ENOMEM);
    for (int i = 0; i < 64; i++)
        CHECK(old[i] == 0x3c); /* the object survives a failed realloc */
}

static void *allocate_in_thread(void *arg)
{
    (void)arg;
    void *p = malloc(100000), *q = malloc(100);
    CHECK(p && q);
    free(p);
    free(q);
    return (void *)1;
}

int main(void)
{
    goalloc_expect_active();
    alarm(60); /* a lock left held would hang: make it a failure */
    long base = vm_size_kb();
    struct rlimit rl = {(rlim_t)(base * 1024 + 384 * MiB), (rlim_t)(base * 1024 + 384 * MiB)};
    CHECK(setrlimit(RLIMIT_AS, &rl) == 0);

    for (int round = 0; round < 3; round++) {
        int large = exhaust(MiB, 0);
        int total = exhaust(700, large); /* small objects fill what is left */
        every_entry_point_fails();
        printf("round %d: %d large and %d small objects before ENOMEM\n", round, large,
               total - large);
        if (round == 0) {
            /* Another thread can allocate once some memory is free: no lock is held. */
            release(0, large / 2);
            pthread_t t;
            void *ok = NULL;
            if (pthread_create(&t, NULL, allocate_in_thread, NULL) == 0) {
                pthread_join(t, &ok);
                CHECK(ok == (void *)1);
            } else {
                /* No memory for a thread stack: allocate on this thread instead. */
                CHECK(allocate_in_thread(NULL) == (void *)1);
            }
            release(large / 2, total);
        } else {
            release(0, total);
        }
        static int first_large;
        if (round == 0)
            first_large = large;
        else
            CHECKF(large >= first_large * 9 / 10,
                   "round %d fits %d large objects, round 0 fitted %d: memory leaked", round,
                   large, first_large);
    }
    void *p = malloc(10 * MiB);
    CHECK(p != NULL);
    free(p);
    printf("oom: ok\n");
    return 0;
}
