/* fork_signal.c — fork from a signal handler. A single-threaded program forks and
 * mallocs in its main loop while a 200 µs ITIMER_PROF timer's SIGPROF handler forks too
 * (each child _exit(0)s at once). When the signal lands while the main loop's fork is
 * between its pthread_atfork prepare and parent handlers, the handler's fork runs the
 * prepare handlers again on the same thread: an allocator that takes its locks there, or
 * that does not expect to be re-entered, waits for ever on a lock its own thread holds.
 * glibc takes no malloc locks in a single-threaded process. Runs for argv[1] milliseconds
 * (default 3000); a hang is caught by a watchdog (a wall-clock timer, which the handler
 * does not block) that reports and exits. (With a second thread glibc's fork itself can
 * wait for ever on its own lock of the atfork list when the signal lands inside it, under
 * any malloc: the multithreaded nesting is checked by the unit tests of src/fork.rs.) */
#define _GNU_SOURCE
#include "check.h"

#include <signal.h>
#include <stdatomic.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>

static volatile sig_atomic_t handler_forks, handler_fails;
static unsigned long long main_forks;

static void on_prof(int sig)
{
    int saved = errno, st;
    pid_t pid;
    (void)sig;
    pid = fork();
    if (pid == 0)
        _exit(0);
    if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        handler_fails++;
    else
        handler_forks++;
    errno = saved;
}

static void on_watchdog(int sig)
{
    char msg[160];
    int n = snprintf(msg, sizeof msg,
                     "FAIL fork_signal: hung (signal %d) after %llu forks in the main loop "
                     "and %d in the handler\n",
                     sig, main_forks, (int)handler_forks);
    if (n > 0)
        (void)!write(2, msg, (size_t)n);
    _exit(3);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    long ms = argc > 1 ? atol(argv[1]) : 3000;
    struct sigaction sa;
    struct itimerval prof = {{0, 200}, {0, 200}}, off = {{0, 0}, {0, 0}};
    double end;
    uint64_t rng = 88172645463325252ULL;
    void *slots[32] = {0};
    int i;
    goalloc_expect_active();

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_prof;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    CHECK(sigaction(SIGPROF, &sa, NULL) == 0);
    signal(SIGALRM, on_watchdog);
    alarm((unsigned)(ms / 1000) + 10);
    CHECK(setitimer(ITIMER_PROF, &prof, NULL) == 0);

    end = now() + ms / 1000.0;
    while (now() < end) {
        int st;
        pid_t pid;
        for (i = 0; i < 32; i++) {
            size_t n = xorshift64(&rng) % 5000 + 1;
            free(slots[i]);
            slots[i] = malloc(n);
            CHECK(slots[i] != NULL);
            memset(slots[i], i, n);
        }
        pid = fork();
        CHECK(pid >= 0);
        if (pid == 0)
            _exit(0);
        while (waitpid(pid, &st, 0) != pid)
            CHECK(errno == EINTR);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        main_forks++;
    }
    CHECK(setitimer(ITIMER_PROF, &off, NULL) == 0);
    alarm(0);
    for (i = 0; i < 32; i++)
        free(slots[i]);
    {
        /* the allocator started no thread of its own (a scavenger), which would make
         * glibc's fork take its locks and the test about something else */
        char line[256];
        int threads = -1;
        FILE *f = fopen("/proc/self/status", "r");
        CHECK(f != NULL);
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "Threads: %d", &threads) == 1)
                break;
        fclose(f);
        CHECKF(threads == 1, "%d threads", threads);
    }
    CHECKF(handler_fails == 0, "%d forks in the handler failed", (int)handler_fails);
    CHECKF(main_forks > 0 && handler_forks > 0, "%llu forks in the main loop, %d in the handler",
           main_forks, (int)handler_forks);
    printf("fork_signal: OK (%llu forks in the main loop, %d in the SIGPROF handler, %ld ms)\n",
           main_forks, (int)handler_forks, ms);
    return 0;
}
