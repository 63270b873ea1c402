/* fork_stdio.c — fork beside stdio: one thread forks in a loop (the child _exit(0)s at
 * once), one calls fflush(NULL) in a loop, and one holds a FILE's lock (flockfile, as
 * stdio itself does inside getline, fprintf or fseek) while it mallocs and frees sizes up
 * to 60 KiB. fflush(NULL) holds glibc's list of streams while it waits for each stream's
 * lock, and glibc's fork() takes that list lock after the pthread_atfork prepare handlers
 * have run: an allocator whose prepare handler holds its locks from there on waits for
 * the list, the flusher waits for the stream, and the stream's holder waits in malloc
 * for the allocator. Runs for argv[1] milliseconds (default 3000); a hang is caught by
 * the watchdog, which reports how far each thread got and aborts. */
#define _GNU_SOURCE
#include "check.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <time.h>

static atomic_int stop;
static atomic_ullong forks, flushes, locked_allocs;
static FILE *stream;

static void *forker(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop)) {
        int st;
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0)
            _exit(0);
        CHECK(waitpid(pid, &st, 0) == pid);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        atomic_fetch_add(&forks, 1);
    }
    return NULL;
}

static void *flusher(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop)) {
        fflush(NULL);
        atomic_fetch_add(&flushes, 1);
    }
    return NULL;
}

static void *stream_user(void *arg)
{
    uint64_t rng = 0x2545F4914F6CDD1DULL;
    void *slots[16] = {0};
    (void)arg;
    while (!atomic_load(&stop)) {
        int i;
        flockfile(stream);
        for (i = 0; i < 16; i++) {
            size_t n = xorshift64(&rng) % (60 * 1024) + 1;
            free(slots[i]);
            slots[i] = malloc(n);
            CHECK(slots[i] != NULL);
            memset(slots[i], i, n < 64 ? n : 64);
        }
        funlockfile(stream);
        atomic_fetch_add(&locked_allocs, 16);
    }
    for (int i = 0; i < 16; i++)
        free(slots[i]);
    return NULL;
}

static void on_watchdog(int sig)
{
    char msg[256];
    int n = snprintf(msg, sizeof msg,
                     "FAIL fork_stdio: hung (signal %d): %llu forks, %llu flushes, %llu "
                     "allocations under the FILE lock\n",
                     sig, (unsigned long long)atomic_load(&forks),
                     (unsigned long long)atomic_load(&flushes),
                     (unsigned long long)atomic_load(&locked_allocs));
    if (n > 0)
        (void)!write(2, msg, (size_t)n);
    _exit(3);
}

int main(int argc, char **argv)
{
    long ms = argc > 1 ? atol(argv[1]) : 3000;
    pthread_t t[3];
    struct timespec pause = {ms / 1000, (ms % 1000) * 1000000L};
    goalloc_expect_active();
    signal(SIGALRM, on_watchdog);
    alarm((unsigned)(ms / 1000) + 20);
    stream = fopen("/dev/null", "w");
    CHECK(stream != NULL);
    CHECK(pthread_create(&t[0], NULL, forker, NULL) == 0);
    CHECK(pthread_create(&t[1], NULL, flusher, NULL) == 0);
    CHECK(pthread_create(&t[2], NULL, stream_user, NULL) == 0);
    nanosleep(&pause, NULL);
    atomic_store(&stop, 1);
    for (int i = 0; i < 3; i++)
        CHECK(pthread_join(t[i], NULL) == 0);
    alarm(0);
    CHECK(atomic_load(&forks) > 0 && atomic_load(&flushes) > 0 &&
          atomic_load(&locked_allocs) > 0);
    fclose(stream);
    printf("fork_stdio: OK (%llu forks, %llu flushes, %llu allocations under the FILE lock "
           "in %ld ms)\n",
           (unsigned long long)atomic_load(&forks), (unsigned long long)atomic_load(&flushes),
           (unsigned long long)atomic_load(&locked_allocs), ms);
    return 0;
}
