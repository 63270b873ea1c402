/* oom.c — out of memory: under RLIMIT_AS every entry point fails cleanly (NULL with
 * errno = ENOMEM, or ENOMEM from posix_memalign), the old object survives a failed
 * realloc, no lock stays held (another thread can still allocate once memory is freed),
 * nothing leaks (the same amount can be allocated again), and allocation works again.
 * The heap fills the address space up to the limit, and once everything is freed the
 * address space serves any size again, without malloc_trim (as glibc's and mimalloc's
 * do). */
#define _GNU_SOURCE
#include "check.h"
#include "goalloc.h"
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

/* Fills the heap with small objects and 4 MiB blocks until malloc fails, frees them all,
 * then asks for a third of the limit and for 60% of the headroom: both must be served,
 * whole and writable, and small objects too. */
static void full_free_serves_any_size(size_t limit, size_t headroom)
{
    int n = 0, blocks = 0;
    for (;;) {
        int failed = 0;
        for (int k = 0; k < 64 && n < MAXP; k++) {
            size_t size = 16 + (size_t)(n * 37) % 2000;
            errno = 0;
            void *p = malloc(size);
            if (!p) {
                CHECKF(errno == ENOMEM, "malloc(%zu) failed with errno %d", size, errno);
                failed = 1;
                break;
            }
            memset(p, 1, size);
            ptrs[n++] = p;
        }
        if (failed || n == MAXP)
            break;
        errno = 0;
        void *p = malloc(4 * MiB);
        if (!p) {
            CHECKF(errno == ENOMEM, "malloc(4 MiB) failed with errno %d", errno);
            break;
        }
        memset(p, 2, 4096);
        ptrs[n++] = p;
        blocks++;
    }
    CHECKF(n < MAXP, "never ran out of memory");
    long filled_kb = vm_size_kb();
    printf("mixed fill: %d small objects and %d blocks of 4 MiB, VmSize %ld MiB of %zu\n",
           n - blocks, blocks, filled_kb / 1024, limit / MiB);
    /* The heap can use the address space up to the limit (64 MiB of it stayed unused when
     * goalloc could reserve whole 64 MiB arenas only). */
    CHECKF((size_t)filled_kb * 1024 + 16 * MiB >= limit,
           "the heap ran out at VmSize %ld MiB under a limit of %zu MiB", filled_kb / 1024,
           limit / MiB);
    release(0, n);

    size_t sizes[] = {limit / 3, headroom / 5 * 3};
    for (int i = 0; i < 2; i++) {
        errno = 0;
        char *p = malloc(sizes[i]);
        CHECKF(p != NULL,
               "malloc(%zu MiB) after everything was freed failed (errno %d): VmSize %ld MiB, "
               "limit %zu MiB",
               sizes[i] / MiB, errno, vm_size_kb() / 1024, limit / MiB);
        for (size_t off = 0; off < sizes[i]; off += 4096)
            p[off] = (char)off;
        p[sizes[i] - 1] = 1;
        printf("after a full free: malloc(%zu MiB) ok, VmSize %ld MiB\n", sizes[i] / MiB,
               vm_size_kb() / 1024);
        free(p);
    }
    /* Small objects are still served, and the heap's figures still add up. */
    n = 0;
    for (int i = 0; i < 20000; i++) {
        ptrs[n] = malloc(16 + (size_t)i % 3000);
        CHECK(ptrs[n] != NULL);
        memset(ptrs[n], 3, 16);
        n++;
    }
    release(0, n);
    void (*read_stats)(struct goalloc_mem_stats *) =
        (void (*)(struct goalloc_mem_stats *))dlsym(RTLD_DEFAULT, "goalloc_read_mem_stats");
    if (read_stats) {
        struct goalloc_mem_stats st;
        read_stats(&st);
        CHECK(st.heap_inuse + st.heap_idle == st.heap_sys);
        CHECK(st.heap_released <= st.heap_idle);
        CHECKF(st.heap_sys < limit, "HeapSys %llu MiB under a limit of %zu MiB",
               (unsigned long long)st.heap_sys / MiB, limit / MiB);
    }
}

int main(void)
{
    goalloc_expect_active();
    alarm(60); /* a lock left held would hang: make it a failure */
    long base = vm_size_kb();
    size_t headroom = 384 * MiB, limit = (size_t)base * 1024 + headroom;
    struct rlimit rl = {(rlim_t)limit, (rlim_t)limit};
    CHECK(setrlimit(RLIMIT_AS, &rl) == 0);
    full_free_serves_any_size(limit, headroom);

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
