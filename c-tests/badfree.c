/* badfree.c — bad pointers end in one `goalloc:` line naming the call and the pointer,
 * then abort(); GOALLOC_INVALID_FREE=warn|ignore change that; GOALLOC_CHECK=1 catches
 * what the default paths cannot (any double free, writes after free, corrupted lists).
 *
 * With no argument, runs every case in a process of its own (re-executing itself) and
 * checks how it ended and what it printed on stderr. Never a segfault.
 */
#define _GNU_SOURCE
#include "check.h"
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>

static int global_object;

static void *wild(void) { return (void *)(uintptr_t)0x12345678; }

/* Opaque to the compiler, so that it does not reason about the bad calls. */
static void *(*volatile realloc_p)(void *, size_t) = realloc;
static size_t (*volatile usable_p)(void *) = malloc_usable_size;

static void touch(void *p, size_t n) { memset(p, 0x11, n); }

static void case_free_wild(void) { free_opaque(wild()); }
static void case_free_stack(void) { int x; free_opaque(&x); }
static void case_free_global(void) { free_opaque(&global_object); }
static void case_free_interior_small(void) { char *p = malloc(100); touch(p, 100); free_opaque(p + 16); }
static void case_free_interior_large(void) { char *p = malloc(100000); touch(p, 100000); free_opaque(p + 16); }
static void case_free_interior_large_page(void) { char *p = malloc(100000); free_opaque(p + 3 * 8192); }
static void case_double_small(void) { void *p = malloc(48); touch(p, 48); free_opaque(p); free_opaque(p); }
static void case_double_large(void) { void *p = malloc(200000); free_opaque(p); free_opaque(p); }
/* 40000 bytes: a span of 5 pages, kept by the thread after its free */
static void case_double_kept(void) { void *p = malloc(40000); free_opaque(p); free_opaque(p); }
/* A double free whose two frees both reach the span (malloc_trim sends the thread's cache
 * back between them; `keep` keeps the span from going back to the heap): the span's bitmap
 * already has the object. */
static void case_double_trimmed(void)
{
    void *keep = malloc(64), *p = malloc(64);
    touch(keep, 64);
    touch(p, 64);
    free_opaque(p);
    malloc_trim(0);
    free_opaque(p);
    malloc_trim(0);
}
/* As double_trimmed, but the second free goes onto the thread's list without a check
 * (the list has room), and the span finds it in a later call (malloc_trim), which must
 * not be named as the culprit. */
static void case_double_found_later(void)
{
    void *keep = malloc(64), *p = malloc(64), *r = malloc(64);
    escape(keep); /* keeps the span from going back to the heap */
    free_opaque(p);
    malloc_trim(0);
    free_opaque(r); /* the list's first free after the trim: it gets room for one */
    free_opaque(p);
    malloc_trim(0);
}
static void case_realloc_wild(void) { realloc_p(wild(), 10); }
static void case_realloc_interior(void) { char *p = malloc(64); realloc_p(p + 8, 100); }
static void case_realloc_freed_large(void) { void *p = malloc(300000); free_opaque(p); realloc_p(p, 10); }
static void case_usable_wild(void) { usable_p(wild()); }
static void case_usable_interior(void) { char *p = malloc(5000); usable_p(p + 100); }

/* free_sized with a size of another class: reported when the object goes back to its
 * span (here: with a cache flush forced by many more frees of the wrong class). */
static void case_free_sized_wrong(void)
{
    /* C23; glibc 2.36 neither declares nor defines it: take goalloc's. */
    void (*free_sized)(void *, size_t) = (void (*)(void *, size_t))dlsym(RTLD_DEFAULT, "free_sized");
    CHECK(free_sized != NULL);
    void *p[600];
    for (int i = 0; i < 600; i++)
        p[i] = malloc(1000); /* class of 1024 */
    for (int i = 0; i < 600; i++)
        free_sized(p[i], 100); /* class of 112 */
}

/* The C++ operators and the C23 frees, found by name so that this C program can call
 * them (glibc 2.36 neither declares nor defines free_sized or free_aligned_sized). */
static void *sym(const char *name)
{
    void *f = dlsym(RTLD_DEFAULT, name);
    CHECKF(f != NULL, "%s not found", name);
    return f;
}
#define SIZED(name) ((void (*)(void *, size_t))sym(name))
#define PLAIN(name) ((void (*)(void *))sym(name))

/* Every report names the entry point the program called. */
static void sized_wrong(const char *name, int n)
{
    void (*del)(void *, size_t) = SIZED(name);
    void *p[600];
    for (int i = 0; i < n; i++)
        p[i] = malloc(1000); /* class of 1024 */
    for (int i = 0; i < n; i++)
        del(p[i], 100); /* class of 112 */
}
static void case_sized_delete_wrong(void) { sized_wrong("_ZdlPvm", 600); }
static void case_sized_delete_wrong_checked(void) { sized_wrong("_ZdlPvm", 1); }
static void case_sized_delete_array_wrong_checked(void) { sized_wrong("_ZdaPvm", 1); }
static void case_free_aligned_sized_wrong_checked(void)
{
    void (*f)(void *, size_t, size_t) =
        (void (*)(void *, size_t, size_t))sym("free_aligned_sized");
    f(aligned_alloc(64, 1000), 64, 100);
}
static void case_delete_double(void)
{
    void (*del)(void *) = PLAIN("_ZdlPv");
    void *p = malloc(48);
    del(p);
    del(p);
}
static void case_delete_double_checked(void)
{
    void (*del)(void *) = PLAIN("_ZdaPv");
    void *a = malloc(32), *b = malloc(32);
    del(a);
    del(b);
    del(a);
}
static void case_delete_wild(void) { PLAIN("_ZdlPv")(wild()); }
static void case_free_sized_large_wild(void) { SIZED("free_sized")(wild(), 100000); }
static void case_realloc_zero_after_free(void)
{
    void *p = malloc(48);
    free_opaque(p);
    realloc_p(p, 0);
}
static void case_reallocarray_wild(void)
{
    void *(*volatile f)(void *, size_t, size_t) = reallocarray;
    f(wild(), 1, 10);
}

/* GOALLOC_INVALID_FREE=warn / ignore: the bad calls do nothing and the program goes on. */
static void case_tolerated(void)
{
    free_opaque(wild());
    char *p = malloc(100);
    free_opaque(p + 16);
    CHECK(realloc_p(wild(), 10) == NULL);
    CHECK(usable_p(p + 16) == 0);
    free_opaque(p);
    void *q = malloc(100);
    CHECK(q != NULL);
    free_opaque(q);
    printf("tolerated: still running\n");
    exit(0);
}

/* The program's first call into the allocator is a bad one (these cases run before
 * main does anything else): GOALLOC_INVALID_FREE and GOALLOC_VERBOSE apply to it too. */
static void case_first_free(void)
{
    free_opaque(wild());
    exit(0);
}
static void case_first_realloc(void)
{
    CHECK(realloc_p(wild(), 10) == NULL);
    exit(0);
}
static void case_first_usable(void)
{
    CHECK(usable_p(wild()) == 0);
    exit(0);
}

/* Checked mode: a double free with other frees in between. */
static void case_checked_double(void)
{
    void *a = malloc(32), *b = malloc(32), *c = malloc(32);
    free_opaque(a);
    free_opaque(b);
    free_opaque(c);
    free_opaque(a);
}

/* Checked mode: a write into freed memory is found when the object is handed out again. */
static void case_checked_write_after_free(void)
{
    char *p = malloc(64);
    free_opaque(p);
    p[20] = 1; /* the bug under test */
    for (int i = 0; i < 1000; i++)
        escape(malloc(64));
}

/* Checked mode: an overwritten free-list link is reported, not followed. */
/* A write to the first word of a freed object, where a free list would keep its link, is
 * found like any other write after free. */
static void case_checked_write_first_word(void)
{
    void **p = malloc(64), **q = malloc(64);
    free_opaque(p);
    free_opaque(q);
    q[0] = (void *)(uintptr_t)0x4141414141414141ull;
    for (int i = 0; i < 4; i++)
        escape(malloc(64));
}

static void *checked_worker(void *arg)
{
    uint64_t seed = (uintptr_t)arg;
    void *live[256] = {0};
    size_t len[256] = {0};
    for (int i = 0; i < 40000; i++) {
        int k = xorshift64(&seed) % 256;
        if (live[k]) {
            CHECK_PATTERN(live[k], len[k], (uint64_t)k * 7 + len[k]);
            free(live[k]);
        }
        len[k] = xorshift64(&seed) % 3000;
        live[k] = (i % 3) ? malloc(len[k]) : calloc(1, len[k]);
        CHECK(live[k] != NULL);
        fill_pattern(live[k], len[k], (uint64_t)k * 7 + len[k]);
        if (i % 7 == 0) {
            size_t n = xorshift64(&seed) % 70000;
            void *r = realloc(live[k], n);
            CHECK(r != NULL);
            size_t keep = n < len[k] ? n : len[k];
            CHECK_PATTERN(r, keep, (uint64_t)k * 7 + len[k]);
            live[k] = r;
            len[k] = n;
            fill_pattern(r, n, (uint64_t)k * 7 + n);
        }
    }
    for (int k = 0; k < 256; k++)
        free(live[k]);
    return NULL;
}

/* Checked mode: a correct multithreaded program runs correctly. */
static void case_checked_workload(void)
{
    pthread_t t[3];
    for (int i = 0; i < 3; i++)
        CHECK(pthread_create(&t[i], NULL, checked_worker, (void *)(uintptr_t)(i + 1)) == 0);
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    printf("checked workload: ok\n");
    exit(0);
}

enum expect { ABORT, EXIT0 };
static const struct {
    const char *name;
    void (*run)(void);
    const char *env;
    enum expect expect;
    const char *stderr_has; /* NULL: stderr must be empty */
    int first;              /* runs before main calls anything that allocates */
} cases[] = {
    {"free_wild", case_free_wild, NULL, ABORT, "goalloc: free(): invalid pointer (not allocated by goalloc) 0x12345678"},
    {"free_stack", case_free_stack, NULL, ABORT, "goalloc: free(): invalid pointer (not allocated by goalloc) 0x"},
    {"free_global", case_free_global, NULL, ABORT, "goalloc: free(): invalid pointer (not allocated by goalloc) 0x"},
    {"free_interior_small", case_free_interior_small, NULL, ABORT, "goalloc: free(): invalid pointer (not the start of an object) 0x"},
    {"free_interior_large", case_free_interior_large, NULL, ABORT, "goalloc: free(): invalid pointer (not the start of an object) 0x"},
    {"free_interior_large_page", case_free_interior_large_page, NULL, ABORT, "goalloc: free(): invalid pointer (not the start of an object) 0x"},
    {"double_small", case_double_small, NULL, ABORT, "goalloc: free(): double free 0x"},
    {"double_large", case_double_large, NULL, ABORT, "goalloc: free(): double free or invalid pointer 0x"},
    {"double_kept", case_double_kept, NULL, ABORT, "goalloc: free(): double free or invalid pointer 0x"},
    {"double_trimmed", case_double_trimmed, NULL, ABORT, "goalloc: free(): double free 0x"},
    {"double_found_later", case_double_found_later, NULL, ABORT, "goalloc: double free: in an earlier call, seen when freed objects returned to their span 0x"},
    {"realloc_wild", case_realloc_wild, NULL, ABORT, "goalloc: realloc(): invalid pointer (not allocated by goalloc) 0x12345678"},
    {"realloc_interior", case_realloc_interior, NULL, ABORT, "goalloc: realloc(): invalid pointer (not the start of an object) 0x"},
    {"realloc_freed_large", case_realloc_freed_large, NULL, ABORT, "goalloc: realloc(): double free or invalid pointer 0x"},
    {"usable_wild", case_usable_wild, NULL, ABORT, "goalloc: malloc_usable_size(): invalid pointer (not allocated by goalloc) 0x12345678"},
    {"usable_interior", case_usable_interior, NULL, ABORT, "goalloc: malloc_usable_size(): invalid pointer (not the start of an object) 0x"},
    {"free_sized_wrong", case_free_sized_wrong, NULL, ABORT, "goalloc: free_sized(): the size does not match the object 0x"},
    {"warn", case_tolerated, "GOALLOC_INVALID_FREE=warn", EXIT0, "goalloc: free(): invalid pointer (not allocated by goalloc) 0x12345678 (ignored)"},
    {"ignore", case_tolerated, "GOALLOC_INVALID_FREE=ignore", EXIT0, NULL},
    {"checked_double", case_checked_double, "GOALLOC_CHECK=1", ABORT, "goalloc: free(): double free 0x"},
    {"checked_write_after_free", case_checked_write_after_free, "GOALLOC_CHECK=1", ABORT, "goalloc: write after free detected in the object at 0x"},
    {"checked_write_first_word", case_checked_write_first_word, "GOALLOC_CHECK=1", ABORT, "goalloc: write after free"},
    {"checked_workload", case_checked_workload, "GOALLOC_CHECK=1", EXIT0, NULL},
    {"default_double_not_adjacent", case_checked_double, NULL, EXIT0, NULL},
    {"sized_delete_wrong", case_sized_delete_wrong, NULL, ABORT, "goalloc: operator delete: the size does not match the object 0x"},
    {"sized_delete_wrong_checked", case_sized_delete_wrong_checked, "GOALLOC_CHECK=1", ABORT, "goalloc: operator delete: the size does not match the object 0x"},
    {"sized_delete_array_wrong_checked", case_sized_delete_array_wrong_checked, "GOALLOC_CHECK=1", ABORT, "goalloc: operator delete[]: the size does not match the object 0x"},
    {"free_aligned_sized_wrong_checked", case_free_aligned_sized_wrong_checked, "GOALLOC_CHECK=1", ABORT, "goalloc: free_aligned_sized(): the size does not match the object 0x"},
    {"delete_double", case_delete_double, NULL, ABORT, "goalloc: operator delete: double free 0x"},
    {"delete_double_checked", case_delete_double_checked, "GOALLOC_CHECK=1", ABORT, "goalloc: operator delete[]: double free 0x"},
    {"delete_wild", case_delete_wild, NULL, ABORT, "goalloc: operator delete: invalid pointer (not allocated by goalloc) 0x12345678"},
    {"free_sized_large_wild", case_free_sized_large_wild, NULL, ABORT, "goalloc: free_sized(): invalid pointer (not allocated by goalloc) 0x12345678"},
    {"realloc_zero_after_free", case_realloc_zero_after_free, NULL, ABORT, "goalloc: realloc(): double free 0x"},
    {"reallocarray_wild", case_reallocarray_wild, NULL, ABORT, "goalloc: reallocarray(): invalid pointer (not allocated by goalloc) 0x12345678"},
    {"first_free_warn", case_first_free, "GOALLOC_INVALID_FREE=warn", EXIT0, "goalloc: free(): invalid pointer (not allocated by goalloc) 0x12345678 (ignored)", 1},
    {"first_realloc_warn", case_first_realloc, "GOALLOC_INVALID_FREE=warn", EXIT0, "goalloc: realloc(): invalid pointer (not allocated by goalloc) 0x12345678 (ignored)", 1},
    {"first_usable_warn", case_first_usable, "GOALLOC_INVALID_FREE=warn", EXIT0, "goalloc: malloc_usable_size(): invalid pointer (not allocated by goalloc) 0x12345678 (ignored)", 1},
    {"first_free_ignore", case_first_free, "GOALLOC_INVALID_FREE=ignore", EXIT0, NULL, 1},
    {"first_free_verbose", case_first_free, "GOALLOC_VERBOSE=1 GOALLOC_INVALID_FREE=warn", EXIT0, "goalloc: option GOALLOC_INVALID_FREE=warn (environment)", 1},
};
#define NCASES (sizeof cases / sizeof cases[0])

/* Re-executes this program with the case's name. Under a qemu-user runner
 * (GOALLOC_TEST_RUNNER, set by the test harness for cross-built programs), through it:
 * the kernel cannot run the binary itself, and LD_PRELOAD must reach only the program. */
static void exec_case(const char *self, const char *name)
{
    static char runner[1024], preload[4096], exe[4096];
    const char *r = getenv("GOALLOC_TEST_RUNNER");
    if (!r || !*r) {
        execl(self, self, name, (char *)NULL);
        return;
    }
    char *argv[64];
    int n = 0;
    snprintf(runner, sizeof runner, "%s", r);
    for (char *w = strtok(runner, " "); w && n < 56; w = strtok(NULL, " "))
        argv[n++] = w;
    const char *lp = getenv("LD_PRELOAD");
    if (lp) {
        snprintf(preload, sizeof preload, "LD_PRELOAD=%s", lp);
        argv[n++] = "-E";
        argv[n++] = preload;
        unsetenv("LD_PRELOAD");
    }
    if (!realpath(self, exe))
        return;
    argv[n++] = exe;
    argv[n++] = (char *)name;
    argv[n] = NULL;
    execvp(argv[0], argv);
}

/* Drops the line a qemu-user runner adds when the program dies of a signal. */
static void drop_runner_line(char *err)
{
    char *q = strstr(err, "qemu: uncaught target signal");
    if (q && getenv("GOALLOC_TEST_RUNNER")) {
        char *end = strchr(q, '\n');
        if (end)
            memmove(q, end + 1, strlen(end + 1) + 1);
        else
            *q = 0;
    }
}

/* Runs one case in a child process; returns 0 when it ended as expected. */
static int run_case(const char *self, size_t i)
{
    int pipefd[2];
    CHECK(pipe(pipefd) == 0);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        dup2(pipefd[1], 2);
        close(pipefd[0]);
        unsetenv("GOALLOC_INVALID_FREE");
        unsetenv("GOALLOC_CHECK");
        unsetenv("GOALLOC_VERBOSE");
        if (cases[i].env) {
            /* NAME=value pairs separated by spaces */
            char *env = strdup(cases[i].env), *save = NULL;
            for (char *kv = strtok_r(env, " ", &save); kv; kv = strtok_r(NULL, " ", &save))
                putenv(kv);
        }
        exec_case(self, cases[i].name);
        _exit(127);
    }
    close(pipefd[1]);
    char err[4096] = {0};
    size_t got = 0;
    ssize_t n;
    while (got < sizeof err - 1 && (n = read(pipefd[0], err + got, sizeof err - 1 - got)) > 0)
        got += (size_t)n;
    close(pipefd[0]);
    drop_runner_line(err);
    got = strlen(err);
    int status;
    CHECK(waitpid(pid, &status, 0) == pid);
    int ok = cases[i].expect == ABORT ? (WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT)
                                      : (WIFEXITED(status) && WEXITSTATUS(status) == 0);
    if (cases[i].stderr_has)
        ok = ok && strstr(err, cases[i].stderr_has) != NULL;
    else
        ok = ok && got == 0;
    /* One line, not a flood. */
    if (cases[i].expect == ABORT)
        ok = ok && strchr(err, '\n') == err + strlen(err) - 1;
    printf("%s %s: %s", ok ? "ok  " : "FAIL", cases[i].name,
           WIFSIGNALED(status) ? strsignal(WTERMSIG(status)) : "exited");
    if (WIFEXITED(status))
        printf(" %d", WEXITSTATUS(status));
    printf(" | stderr: %s%s", got ? err : "(empty)\n", got && err[got - 1] != '\n' ? "\n" : "");
    return !ok;
}

int main(int argc, char **argv)
{
    if (argc > 1)
        for (size_t i = 0; i < NCASES; i++)
            if (cases[i].first && !strcmp(argv[1], cases[i].name)) {
                cases[i].run();
                return 0;
            }
    goalloc_expect_active();
    if (!goalloc_expected()) {
        printf("badfree: goalloc-specific, skipped without GOALLOC_EXPECT=1\n");
        return 0;
    }
    if (argc > 1) {
        for (size_t i = 0; i < NCASES; i++)
            if (!strcmp(argv[1], cases[i].name)) {
                cases[i].run();
                return 0;
            }
        return 2;
    }
    int failed = 0;
    for (size_t i = 0; i < NCASES; i++)
        failed += run_case("/proc/self/exe", i);
    printf("badfree: %zu cases, %d failed\n", NCASES, failed);
    return failed != 0;
}
