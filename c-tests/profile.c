/* profile.c — heap profiling (GOALLOC_PROFILE): the profile's figures, from threads,
 * across fork, on a signal, and from a program whose first call is free.
 *
 *   profile            runs each case below in a child process with GOALLOC_PROFILE set
 *                      (the variable must be there before the first malloc, so the
 *                      program re-executes itself) and checks the files they write
 *   profile pprof      the case tests/profile.rs gives to google-pprof: keep_64mib keeps
 *                      64 MiB live in 1 KiB objects, churn_1gib allocates and frees
 *                      1 GiB in 4 KiB objects; the profile is written at exit
 *   profile threads    4 threads, each keeping 16 MiB live in 512 B objects; the
 *                      profile is written by goalloc_profile_dump while they are joined
 *   profile fork       keeps 16 MiB, forks; the child keeps 32 MiB more and exits, the
 *                      parent waits and exits: two files, each with its own figures
 *   profile signal     keeps 16 MiB and raises GOALLOC_PROFILE_SIGNAL
 *   profile kinds      8 MiB each from calloc, realloc, posix_memalign (64 and 16384),
 *                      aligned_alloc and large malloc: 48 MiB in use; then frees them
 *                      with free_sized, free_aligned_sized, realloc to another size
 *                      and free: nothing in use
 *
 * The checks add up the samples as pprof does for a heap_v2 profile: each line's counts
 * scaled by 1 / (1 - exp(-avg / rate)), avg being the line's bytes per object.
 */
#define _GNU_SOURCE
#include "check.h"

#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>

#define KIB 1024L
#define MIB (1024L * 1024L)

/* exp(x) for the scale, without libm: the series converges fast for x in [-64, 0]
 * after halving x until it is small and squaring back. */
static double exp_neg(double x)
{
    int halvings = 0;
    while (x < -0.5) {
        x /= 2;
        halvings++;
    }
    double term = 1, sum = 1;
    for (int k = 1; k < 30; k++) {
        term *= x / k;
        sum += term;
    }
    while (halvings-- > 0)
        sum *= sum;
    return sum;
}

/* The scaled totals of a profile file: in-use and allocated bytes, and the stack lines. */
struct totals {
    double inuse_bytes, alloc_bytes;
    long lines, rate;
};

static int read_profile(const char *path, struct totals *t)
{
    memset(t, 0, sizeof *t);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    char line[8192];
    int mapped = 0;
    if (fgets(line, sizeof line, f) == NULL) {
        fclose(f);
        return 0;
    }
    const char *v2 = strstr(line, "@ heap_v2/");
    CHECKF(strncmp(line, "heap profile:", 13) == 0 && v2 != NULL, "header: %s", line);
    t->rate = atol(v2 + strlen("@ heap_v2/"));
    CHECKF(t->rate > 0, "%s", line);
    while (fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, "MAPPED_LIBRARIES:", 17) == 0) {
            mapped = 1;
            break;
        }
        long n1, s1, n2, s2;
        if (sscanf(line, " %ld: %ld [ %ld: %ld] @", &n1, &s1, &n2, &s2) != 4)
            continue;
        CHECKF(strstr(line, "@ 0x") != NULL, "a line without a stack: %s", line);
        t->lines++;
        if (n1 > 0)
            t->inuse_bytes += s1 / (1 - exp_neg(-((double)s1 / n1) / t->rate));
        if (n2 > 0)
            t->alloc_bytes += s2 / (1 - exp_neg(-((double)s2 / n2) / t->rate));
    }
    /* The maps follow: at least this program's own. */
    int maps = 0;
    while (mapped && fgets(line, sizeof line, f) != NULL)
        maps += strstr(line, "r-xp") != NULL;
    fclose(f);
    CHECKF(mapped && maps > 0, "%s: MAPPED_LIBRARIES with executable maps", path);
    return 1;
}

static void check_near(const char *what, double got, double want)
{
    CHECKF(got >= want * 0.7 && got <= want * 1.3, "%s: %.1f MiB, expected %.1f MiB +-30%%",
           what, got / MIB, want / MIB);
    printf("%s: %.1f MiB (expected %.1f)\n", what, got / MIB, want / MIB);
}

/* ---- the cases, run with GOALLOC_PROFILE set ------------------------------------- */

static void **keep(long total, long size)
{
    long n = total / size;
    void **v = malloc(n * sizeof *v);
    CHECK(v != NULL);
    for (long i = 0; i < n; i++) {
        v[i] = malloc(size);
        CHECK(v[i] != NULL);
        memset(v[i], (int)i, size);
    }
    return v;
}

__attribute__((noinline)) void **keep_64mib(void)
{
    return keep(64 * MIB, KIB);
}

__attribute__((noinline)) void churn_1gib(void)
{
    for (long i = 0; i < 1024 * MIB / (4 * KIB); i++) {
        char *p = malloc(4 * KIB);
        CHECK(p != NULL);
        p[i % (4 * KIB)] = (char)i;
        escape(p);
        free(p);
    }
}

static void case_pprof(void)
{
    void **kept = keep_64mib();
    churn_1gib();
    escape(kept);
}

static void *thread_keep(void *arg)
{
    (void)arg;
    return keep(16 * MIB, 512);
}

typedef int (*dump_fn)(const char *);

static void case_threads(void)
{
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        CHECK(pthread_create(&t[i], NULL, thread_keep, NULL) == 0);
    for (int i = 0; i < 4; i++) {
        void *kept;
        CHECK(pthread_join(t[i], &kept) == 0);
        escape(kept);
    }
    dump_fn dump = (dump_fn)dlsym(RTLD_DEFAULT, "goalloc_profile_dump");
    CHECK(dump != NULL);
    CHECK(dump("threads.heap") == 0);
    struct totals tt;
    CHECK(read_profile("threads.heap", &tt));
    check_near("threads: in use", tt.inuse_bytes, 64 * MIB);
}

static void case_fork(void)
{
    escape(keep(16 * MIB, KIB));
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        escape(keep(32 * MIB, KIB));
        exit(0);
    }
    int status;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
    char path[64];
    snprintf(path, sizeof path, "fork.%d.heap", (int)pid);
    struct totals tt;
    CHECKF(read_profile(path, &tt), "the child wrote %s", path);
    check_near("fork: the child's in use", tt.inuse_bytes, 48 * MIB);
    printf("%d\n", (int)getpid()); /* the parent's file is checked by the caller */
}

static void case_signal(void)
{
    escape(keep(16 * MIB, KIB));
    CHECK(raise(SIGUSR2) == 0);
    struct totals tt;
    CHECK(read_profile("signal.heap", &tt));
    check_near("signal: in use", tt.inuse_bytes, 16 * MIB);
    /* The exit dump replaces it; the caller looks for that one. */
}

typedef void (*free_sized_fn)(void *, size_t);
typedef void (*free_aligned_sized_fn)(void *, size_t, size_t);

#define KINDS 6
#define KIND_BYTES (8 * MIB)

static void case_kinds(void)
{
    static const long size[KINDS] = {1000, 1024, 1024, 16384, 4096, 96 * KIB};
    void **v[KINDS];
    for (int k = 0; k < KINDS; k++) {
        long n = KIND_BYTES / size[k];
        v[k] = malloc(n * sizeof(void *));
        CHECK(v[k] != NULL);
        for (long i = 0; i < n; i++) {
            void *p = NULL;
            switch (k) {
            case 0:
                p = calloc(1, size[k]);
                break;
            case 1:
                p = realloc(malloc(16), size[k]); /* the 16 B object is freed */
                break;
            case 2:
                CHECK(posix_memalign(&p, 64, size[k]) == 0);
                break;
            case 3:
                CHECK(posix_memalign(&p, 16384, size[k]) == 0);
                break;
            case 4:
                p = aligned_alloc(256, size[k]);
                break;
            case 5:
                p = malloc(size[k]);
                break;
            }
            CHECK(p != NULL);
            memset(p, 1, size[k]);
            v[k][i] = p;
        }
    }
    dump_fn dump = (dump_fn)dlsym(RTLD_DEFAULT, "goalloc_profile_dump");
    CHECK(dump != NULL);
    struct totals t;
    CHECK(dump("kinds-1.heap") == 0);
    CHECK(read_profile("kinds-1.heap", &t));
    check_near("kinds: in use", t.inuse_bytes, KINDS * KIND_BYTES);

    free_sized_fn fs = (free_sized_fn)dlsym(RTLD_DEFAULT, "free_sized");
    free_aligned_sized_fn fas = (free_aligned_sized_fn)dlsym(RTLD_DEFAULT, "free_aligned_sized");
    CHECK(fs != NULL && fas != NULL);
    for (int k = 0; k < KINDS; k++) {
        for (long i = 0; i < KIND_BYTES / size[k]; i++) {
            void *p = v[k][i];
            switch (k) {
            case 0:
            case 1:
            case 5:
                fs(p, size[k]);
                break;
            case 2:
                fas(p, 64, size[k]);
                break;
            case 3:
                free(realloc(p, 2 * size[k]));
                break;
            case 4:
                fas(p, 256, size[k]);
                break;
            }
        }
        free(v[k]);
    }
    CHECK(dump("kinds-2.heap") == 0);
    CHECK(read_profile("kinds-2.heap", &t));
    CHECKF(t.inuse_bytes < 1 * MIB, "kinds: %.1f MiB still in use", t.inuse_bytes / MIB);
    printf("kinds: %.1f MiB in use after the frees\n", t.inuse_bytes / MIB);
}

/* ---- the driver ------------------------------------------------------------------ */

/* Runs this program with `mode`, GOALLOC_PROFILE=profile, GOALLOC_PROFILE_RATE=rate
 * (unless NULL) and `extra` (NAME=VALUE, unless NULL); returns its pid after it exited
 * with status 0. */
static pid_t run(char **argv, const char *mode, const char *profile, const char *rate,
                 const char *extra)
{
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        setenv("GOALLOC_PROFILE", profile, 1);
        if (rate != NULL)
            setenv("GOALLOC_PROFILE_RATE", rate, 1);
        if (extra != NULL)
            putenv((char *)extra);
        execl("/proc/self/exe", argv[0], mode, (char *)NULL);
        _exit(127);
    }
    int status;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s: status %d", mode, status);
    return pid;
}

int main(int argc, char **argv)
{
    goalloc_expect_active();
    if (argc > 1) {
        CHECKF(getenv("GOALLOC_PROFILE") != NULL, "mode %s without GOALLOC_PROFILE", argv[1]);
        if (strcmp(argv[1], "pprof") == 0)
            case_pprof();
        else if (strcmp(argv[1], "threads") == 0)
            case_threads();
        else if (strcmp(argv[1], "fork") == 0)
            case_fork();
        else if (strcmp(argv[1], "signal") == 0)
            case_signal();
        else if (strcmp(argv[1], "kinds") == 0)
            case_kinds();
        else if (strcmp(argv[1], "free-first") == 0)
            ; /* see free_first below */
        else
            CHECKF(0, "unknown mode %s", argv[1]);
        return 0;
    }

    struct totals t;
    char path[64];

    /* The default rate: 128 samples in use (a standard deviation of 9%). */
    pid_t pid = run(argv, "pprof", "pprof.%p.heap", NULL, NULL);
    snprintf(path, sizeof path, "pprof.%d.heap", (int)pid);
    CHECKF(read_profile(path, &t), "the exit dump %s", path);
    check_near("pprof: in use", t.inuse_bytes, 64 * MIB);
    check_near("pprof: allocated", t.alloc_bytes, 1088 * MIB);

    /* The smaller cases sample every 64 KiB: 256 samples in 16 MiB (6%). */
    run(argv, "threads", "threads-exit.heap", "65536", NULL);

    pid = run(argv, "fork", "fork.%p.heap", "65536", NULL);
    snprintf(path, sizeof path, "fork.%d.heap", (int)pid);
    CHECKF(read_profile(path, &t), "the parent wrote %s", path);
    check_near("fork: the parent's in use", t.inuse_bytes, 16 * MIB);

    run(argv, "signal", "signal.heap", "65536", "GOALLOC_PROFILE_SIGNAL=12");
    CHECK(read_profile("signal.heap", &t));

    run(argv, "kinds", "kinds.heap", "65536", NULL);

    run(argv, "free-first", "free-first.heap", NULL, NULL);
    CHECK(read_profile("free-first.heap", &t));
    printf("profile: ok\n");
    return 0;
}

/* A program whose first call into the allocator is free: from .preinit_array, before
 * any library's constructor (so before goalloc's, which loads the unwinder). */
static void free_first(int argc, char **argv, char **envp)
{
    (void)argc;
    (void)argv;
    (void)envp;
    free(NULL);
    void *p = malloc(100);
    free(p);
}
__attribute__((section(".preinit_array"), used)) static void (*free_first_entry)(
    int, char **, char **) = free_first;
