/* startup_lib.c — a shared library whose constructor allocates before main runs (and
 * possibly before the allocator has been called by anything else), including from a
 * thread it creates; it keeps a malloc'd string that the program reads and frees later,
 * and its destructor allocates during exit. Linked into startup.c by the harness. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "startup_lib.h"

static char *message;
static int constructor_result = -1;

static int churn(void)
{
    size_t n;
    for (n = 1; n <= 70000; n = n * 2 + 1) {
        unsigned char *p = malloc(n);
        unsigned char *q;
        if (p == NULL)
            return 0;
        memset(p, 0x6B, n);
        q = realloc(p, n + 100);
        if (q == NULL || q[n - 1] != 0x6B)
            return 0;
        free(q);
        q = calloc(n, 1);
        if (q == NULL || q[n - 1] != 0)
            return 0;
        free(q);
    }
    {
        void *a = NULL;
        if (posix_memalign(&a, 4096, 100) != 0 || ((size_t)a & 4095) != 0)
            return 0;
        free(a);
    }
    return 1;
}

static void *constructor_thread(void *arg)
{
    (void)arg;
    return churn() ? (void *)1 : NULL;
}

__attribute__((constructor)) static void startup_lib_init(void)
{
    pthread_t t;
    void *thread_ok = NULL;
    int ok = churn();
    if (ok && pthread_create(&t, NULL, constructor_thread, NULL) == 0)
        ok = pthread_join(t, &thread_ok) == 0 && thread_ok != NULL;
    else
        ok = 0;
    message = malloc(sizeof STARTUP_LIB_MESSAGE);
    if (message != NULL)
        memcpy(message, STARTUP_LIB_MESSAGE, sizeof STARTUP_LIB_MESSAGE);
    constructor_result = ok;
}

int startup_lib_constructor_result(void)
{
    return constructor_result;
}

char *startup_lib_take_message(void)
{
    char *m = message;
    message = NULL;
    return m;
}

__attribute__((destructor)) static void startup_lib_fini(void)
{
    /* runs during exit(): the allocator must still work */
    free(message);
    message = NULL;
    if (!churn())
        abort();
}
