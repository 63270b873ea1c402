/* scavenge.c — the scavenger returns idle memory to the OS, and only when it should.
 *
 * With no argument, runs each case below in a fresh process (re-executing itself with
 * the case's name and environment) and fails if any case fails:
 *   release   1 GiB of small and large objects freed, then no allocator call at all:
 *             VmRSS must fall below 64 MiB within 5 s, and a goalloc-scav thread exists.
 *   disabled  the same under GOALLOC_SCAVENGE=0: after 3 s VmRSS is still above 512 MiB
 *             and there is no scavenger thread; then malloc_trim(0) returns 1 and VmRSS
 *             is below 64 MiB at once.
 *   idle      after the release, 10 s of an idle process cost under 1% of a core
 *             (100 ms of CPU) and the scavenger wakes fewer than 30 times.
 *   small     a small program (a few MiB freed) never gets a scavenger thread.
 *   fork      a child forked after the parent's scavenger started frees 512 MiB and its
 *             VmRSS falls below 64 MiB within 5 s too.
 * While sampling, a case makes no allocator call: it reads /proc with open/read and
 * prints through a stack buffer.
 */
#define _GNU_SOURCE
#include "check.h"
#include "goalloc.h"
#include <dirent.h>
#include <fcntl.h>
#include <malloc.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>

#define MiB (1024L * 1024L)

static void say(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n > 0)
        (void)!write(1, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

/* A field of a /proc status file, in its unit (kB for VmRSS), without allocating. */
static long status_field(const char *path, const char *field)
{
    char buf[8192];
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = 0;
    char *p = strstr(buf, field);
    return p ? atol(p + strlen(field)) : -1;
}

static long rss_mib(void) { return status_field("/proc/self/status", "VmRSS:") / 1024; }

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The tid of the goalloc-scav thread, or 0. Allocates (opendir): call after sampling. */
static long scavenger_tid(void)
{
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    long tid = 0;
    while (d && (e = readdir(d))) {
        char path[300], comm[64] = {0};
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        int fd = open(path, O_RDONLY);
        if (fd < 0)
            continue;
        (void)!read(fd, comm, sizeof comm - 1);
        close(fd);
        if (!strncmp(comm, "goalloc-scav", 12))
            tid = atol(e->d_name);
    }
    if (d)
        closedir(d);
    return tid;
}

enum { NSMALL = 300000, NLARGE = 176 };
static void *small_objs[NSMALL], *large_objs[NLARGE];

/* About 1 GiB: 300k small objects of 16..2 KiB (~300 MiB) and 176 of 4 MiB, all
 * written, then all freed. */
static void build_and_free(long large_count)
{
    uint64_t seed = 42;
    for (long i = 0; i < NSMALL; i++) {
        size_t n = 16 + xorshift64(&seed) % 2048;
        small_objs[i] = malloc(n);
        CHECK(small_objs[i] != NULL);
        memset(small_objs[i], 0x5a, n);
    }
    for (long i = 0; i < large_count; i++) {
        large_objs[i] = malloc(4 * MiB);
        CHECK(large_objs[i] != NULL);
        memset(large_objs[i], 0xa5, 4 * MiB);
    }
    say("peak: %ld MiB resident\n", rss_mib());
    for (long i = 0; i < NSMALL; i += 2)
        free(small_objs[i]);
    for (long i = 1; i < NSMALL; i += 2)
        free(small_objs[i]);
    for (long i = 0; i < large_count; i++)
        free(large_objs[i]);
}

/* Samples VmRSS every 100 ms for up to `limit` seconds; returns the seconds it took to
 * fall below `below` MiB, or -1. Prints the figures at 1, 2 and 5 s. */
static double wait_for_rss_below(long below, double limit)
{
    double t0 = now_s(), hit = -1;
    long at[3] = {-1, -1, -1};
    for (;;) {
        double t = now_s() - t0;
        long r = rss_mib();
        if (hit < 0 && r < below)
            hit = t;
        if (t >= 1 && at[0] < 0)
            at[0] = r;
        if (t >= 2 && at[1] < 0)
            at[1] = r;
        if (t >= limit) {
            at[2] = r;
            break;
        }
        if (hit >= 0 && t >= 2)
            break;
        usleep(100000);
    }
    say("resident after free: 1 s %ld MiB, 2 s %ld MiB, end (%.1f s) %ld MiB; below %ld MiB after %.2f s\n",
        at[0], at[1], now_s() - t0, at[2] >= 0 ? at[2] : rss_mib(), below, hit);
    return hit;
}

static int case_release(void)
{
    build_and_free(NLARGE);
    double t = wait_for_rss_below(64, 5.0);
    CHECKF(t >= 0, "VmRSS %ld MiB: not below 64 MiB within 5 s", rss_mib());
    CHECKF(scavenger_tid() != 0, "no goalloc-scav thread");
    return 0;
}

static int case_disabled(void)
{
    build_and_free(NLARGE);
    usleep(3000000);
    long r = rss_mib();
    say("GOALLOC_SCAVENGE=0: resident 3 s after free: %ld MiB\n", r);
    CHECKF(r > 512, "VmRSS fell to %ld MiB without a scavenger", r);
    CHECKF(scavenger_tid() == 0, "a scavenger thread runs although GOALLOC_SCAVENGE=0");
    double t0 = now_s();
    int released = malloc_trim(0);
    long after = rss_mib();
    say("malloc_trim(0) = %d in %.3f s: resident %ld MiB\n", released, now_s() - t0, after);
    CHECK(released == 1);
    CHECKF(after < 64, "VmRSS %ld MiB after malloc_trim(0)", after);
    CHECK(malloc_trim(0) == 0); /* nothing left to release */
    return 0;
}


static int case_idle(void)
{
    build_and_free(NLARGE);
    CHECK(wait_for_rss_below(64, 5.0) >= 0);
    usleep(500000); /* let the last chunk finish */
    /* Found at run time: a preloaded program does not link against goalloc. */
    void (*read_stats)(struct goalloc_mem_stats *) =
        (void (*)(struct goalloc_mem_stats *))dlsym(RTLD_DEFAULT, "goalloc_read_mem_stats");
    CHECK(read_stats != NULL);
    static struct goalloc_mem_stats st;
    read_stats(&st);
    say("scavenger so far: %llu MiB released with %.1f ms of CPU, %llu wake-ups\n",
        (unsigned long long)(st.scav_released / MiB), st.scav_cpu_ns / 1e6,
        (unsigned long long)st.scav_wakeups);
    struct rusage r0, r1;
    getrusage(RUSAGE_SELF, &r0);
    uint64_t wake0 = st.scav_wakeups;
    usleep(10000000);
    getrusage(RUSAGE_SELF, &r1);
    read_stats(&st);
    double cpu = (r1.ru_utime.tv_sec - r0.ru_utime.tv_sec) + (r1.ru_stime.tv_sec - r0.ru_stime.tv_sec) +
                 ((r1.ru_utime.tv_usec - r0.ru_utime.tv_usec) + (r1.ru_stime.tv_usec - r0.ru_stime.tv_usec)) / 1e6;
    uint64_t wakes = st.scav_wakeups - wake0;
    say("10 s idle: process CPU %.2f ms (%.3f%% of a core), scavenger wake-ups %llu\n", cpu * 1e3,
        cpu * 10, (unsigned long long)wakes);
    CHECKF(cpu < 0.1, "idle process used %.3f s of CPU in 10 s", cpu);
    CHECKF(wakes < 30, "scavenger woke %llu times in 10 s of idleness", (unsigned long long)wakes);
    return 0;
}

static int case_small(void)
{
    void *p[512];
    for (int i = 0; i < 512; i++)
        p[i] = malloc(4096 + i);
    for (int i = 0; i < 512; i++)
        free(p[i]);
    void *big = malloc(2 * MiB);
    memset(big, 1, 2 * MiB);
    free(big);
    usleep(200000);
    CHECKF(scavenger_tid() == 0, "a small program got a scavenger thread");
    say("small program: no scavenger thread\n");
    return 0;
}

static int case_fork(void)
{
    build_and_free(64); /* starts the parent's scavenger */
    CHECK(wait_for_rss_below(64, 5.0) >= 0);
    CHECK(scavenger_tid() != 0);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        alarm(30);
        build_and_free(128);
        double t = wait_for_rss_below(64, 5.0);
        if (t < 0) {
            say("child: VmRSS %ld MiB, not below 64 MiB within 5 s\n", rss_mib());
            _exit(1);
        }
        if (scavenger_tid() == 0) {
            say("child: no goalloc-scav thread of its own\n");
            _exit(1);
        }
        _exit(0);
    }
    int status;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0, "forked child failed (status %d)", status);
    say("forked child released its memory\n");
    return 0;
}

static const struct {
    const char *name;
    int (*run)(void);
    const char *env; /* NAME=value set for the case, or NULL */
} cases[] = {
    {"release", case_release, NULL},
    {"disabled", case_disabled, "GOALLOC_SCAVENGE=0"},
    {"idle", case_idle, NULL},
    {"small", case_small, NULL},
    {"fork", case_fork, NULL},
};
#define NCASES (sizeof cases / sizeof cases[0])

int main(int argc, char **argv)
{
    goalloc_expect_active();
    if (!goalloc_expected()) {
        printf("scavenge: goalloc-specific, skipped without GOALLOC_EXPECT=1\n");
        return 0;
    }
    for (size_t i = 0; argc > 1 && i < NCASES; i++)
        if (!strcmp(argv[1], cases[i].name))
            return cases[i].run();
    if (argc > 1) {
        fprintf(stderr, "unknown case %s\n", argv[1]);
        return 2;
    }
    int failed = 0;
    for (size_t i = 0; i < NCASES; i++) {
        printf("== %s\n", cases[i].name);
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
            unsetenv("GOALLOC_SCAVENGE");
            if (cases[i].env)
                putenv((char *)cases[i].env);
            execl("/proc/self/exe", argv[0], cases[i].name, (char *)NULL);
            _exit(127);
        }
        int status;
        CHECK(waitpid(pid, &status, 0) == pid);
        if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
            printf("FAILED: %s (status %d)\n", cases[i].name, status);
            failed++;
        }
    }
    printf("scavenge: %zu cases, %d failed\n", NCASES, failed);
    return failed != 0;
}
