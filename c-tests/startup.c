/* startup.c — allocation at awkward times, in plain C (no C++ runtime involved):
 * - from the executable's .preinit_array, before any shared library's constructor
 *   (so possibly before the allocator library's own initialisation has run);
 * - from startup_lib's constructor, directly and from a thread it creates; main then
 *   reads and frees the string that constructor malloc'd;
 * - from the executable's own constructor;
 * - from pthread_key destructors at thread exit: the destructor verifies and frees
 *   memory allocated in the thread, mallocs anew, and once installs a fresh value so
 *   that a second destructor round frees that too (the allocator's own per-thread
 *   teardown may already have run by then);
 * - from an atexit handler and from startup_lib's destructor during exit. */
#define _GNU_SOURCE
#include "check.h"

#include <pthread.h>
#include <stdatomic.h>

#include "startup_lib.h"

/* ---- .preinit_array ---------------------------------------------------------- */

enum { PREINIT_SIZE = 123 };
static unsigned char *preinit_obj;
static int preinit_ok = -1;

static void preinit(int argc, char **argv, char **envp)
{
    unsigned char *z;
    size_t i;
    (void)argc;
    (void)argv;
    (void)envp;
    preinit_ok = 0;
    preinit_obj = malloc(PREINIT_SIZE);
    if (preinit_obj == NULL)
        return;
    memset(preinit_obj, 0x42, PREINIT_SIZE);
    z = calloc(100, 10);
    if (z == NULL)
        return;
    for (i = 0; i < 1000; i++)
        if (z[i] != 0)
            return;
    free(z);
    preinit_ok = 1;
}

__attribute__((section(".preinit_array"), used)) static void (*preinit_entry)(
    int, char **, char **) = preinit;

/* ---- the executable's constructor -------------------------------------------- */

static char *ctor_obj;

__attribute__((constructor)) static void startup_ctor(void)
{
    ctor_obj = malloc(64);
    if (ctor_obj != NULL)
        strcpy(ctor_obj, "startup.c constructor");
}

/* ---- pthread_key destructors -------------------------------------------------- */

enum { NTHREADS = 8, TSD_BYTES = 500 };

struct tsd {
    uint64_t seed;
    int generation; /* 0: allocated by the thread; 1: installed by the destructor */
    unsigned char data[TSD_BYTES];
};

static pthread_key_t key_a, key_b;
static pthread_barrier_t key_b_created;
static atomic_int destructor_calls;
static atomic_uint seeds = 1;

static struct tsd *new_tsd(int generation)
{
    struct tsd *t = malloc(sizeof *t);
    CHECK(t != NULL);
    t->seed = atomic_fetch_add(&seeds, 1);
    t->generation = generation;
    fill_pattern(t->data, TSD_BYTES, t->seed);
    return t;
}

static void tsd_destructor_for(pthread_key_t key, void *value)
{
    struct tsd *t = value;
    void *scratch[16];
    size_t i;
    int generation = t->generation;
    CHECK_PATTERN(t->data, TSD_BYTES, t->seed);
    free(t);
    /* allocate anew inside the destructor, several sizes including a large one */
    for (i = 0; i < 16; i++) {
        size_t n = i == 15 ? 100000 : 16 + i * 100;
        scratch[i] = malloc(n);
        CHECK(scratch[i] != NULL);
        memset(scratch[i], 0x2D, n);
    }
    for (i = 0; i < 16; i++)
        free(scratch[i]);
    if (generation == 0)
        CHECK(pthread_setspecific(key, new_tsd(1)) == 0); /* freed in the next round */
    atomic_fetch_add(&destructor_calls, 1);
}

static void tsd_destructor_a(void *value)
{
    tsd_destructor_for(key_a, value);
}

static void tsd_destructor_b(void *value)
{
    tsd_destructor_for(key_b, value);
}

static void *keyed_thread(void *arg)
{
    size_t i;
    void *junk[64];
    (void)arg;
    /* warm this thread's cache so there is something to tear down at exit */
    for (i = 0; i < 64; i++) {
        junk[i] = malloc(8 + i * 24);
        CHECK(junk[i] != NULL);
    }
    for (i = 0; i < 64; i++)
        free(junk[i]);
    pthread_barrier_wait(&key_b_created);
    CHECK(pthread_setspecific(key_a, new_tsd(0)) == 0);
    CHECK(pthread_setspecific(key_b, new_tsd(0)) == 0);
    if ((uintptr_t)arg % 2)
        pthread_exit(NULL); /* the same teardown, reached through pthread_exit */
    return NULL;
}

static void test_key_destructors(void)
{
    pthread_t t[NTHREADS];
    int i;
    CHECK(pthread_barrier_init(&key_b_created, NULL, NTHREADS + 1) == 0);
    CHECK(pthread_key_create(&key_a, tsd_destructor_a) == 0);
    for (i = 0; i < NTHREADS; i++)
        CHECK(pthread_create(&t[i], NULL, keyed_thread, (void *)(uintptr_t)i) == 0);
    /* key_b is created after the threads have started allocating */
    CHECK(pthread_key_create(&key_b, tsd_destructor_b) == 0);
    pthread_barrier_wait(&key_b_created);
    for (i = 0; i < NTHREADS; i++)
        CHECK(pthread_join(t[i], NULL) == 0);
    pthread_barrier_destroy(&key_b_created);
    /* per thread and key: generation 0, then generation 1 installed by the destructor */
    CHECKF(atomic_load(&destructor_calls) == 4 * NTHREADS,
           "%d destructor calls, expected %d", atomic_load(&destructor_calls),
           4 * NTHREADS);
}

/* ---- exit ---------------------------------------------------------------------- */

static void at_exit_handler(void)
{
    size_t n;
    for (n = 1; n < 200000; n = n * 3 + 1) {
        void *p = malloc(n);
        if (p == NULL)
            abort();
        memset(p, 0x19, n);
        free(p);
    }
}

int main(void)
{
    char *msg;
    size_t i;
    goalloc_expect_active();

    CHECKF(preinit_ok == 1, "allocation in .preinit_array failed (state %d)", preinit_ok);
    for (i = 0; i < PREINIT_SIZE; i++)
        CHECK(preinit_obj[i] == 0x42);
    free(preinit_obj);

    CHECKF(startup_lib_constructor_result() == 1,
           "startup_lib constructor: result %d (-1: did not run, 0: an allocation failed)",
           startup_lib_constructor_result());
    msg = startup_lib_take_message();
    CHECK(msg != NULL);
    CHECKF(strcmp(msg, STARTUP_LIB_MESSAGE) == 0, "message from the constructor: \"%s\"",
           msg);
    free(msg);

    CHECK(ctor_obj != NULL && strcmp(ctor_obj, "startup.c constructor") == 0);
    free(ctor_obj);

    test_key_destructors();
    CHECK(atexit(at_exit_handler) == 0);
    printf("startup: OK\n");
    return 0;
}
