/* check.h — the tiny test API shared by the C and C++ test programs.
 *
 * Every program calls goalloc_expect_active() first. With GOALLOC_EXPECT=1 in the
 * environment it proves that the malloc family in use comes from libgoalloc (and, when
 * GOALLOC_LIB names a file, from exactly that file); without it the programs run against
 * whatever allocator is loaded (glibc, or another one through LD_PRELOAD), which is how
 * the tests themselves are validated.
 *
 * The includer defines _GNU_SOURCE before any system header (dladdr, RTLD_DEFAULT).
 */
#ifndef GOALLOC_CHECK_H
#define GOALLOC_CHECK_H

#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond))                                                                 \
            check_fail(__FILE__, __LINE__, #cond, NULL);                             \
    } while (0)

/* CHECK with a printf-style explanation of the values involved. */
#define CHECKF(cond, ...)                                                            \
    do {                                                                             \
        if (!(cond))                                                                 \
            check_fail(__FILE__, __LINE__, #cond, __VA_ARGS__);                      \
    } while (0)

/* errno must equal e when the allocator in use is one whose errno behaviour is the
 * contract (goalloc, or glibc); see strict_semantics(). */
#define CHECK_ERRNO(e, what)                                                         \
    do {                                                                             \
        int check_errno_saved_ = errno;                                              \
        if (check_errno_saved_ != (e)) {                                             \
            if (strict_semantics())                                                      \
                check_fail(__FILE__, __LINE__, "errno == " #e, "%s: errno %d (%s)",  \
                           (what), check_errno_saved_, strerror(check_errno_saved_)); \
            else                                                                     \
                check_note_errno(__FILE__, __LINE__, #e, (what), check_errno_saved_); \
        }                                                                            \
    } while (0)

static inline void check_fail(const char *file, int line, const char *expr,
                              const char *fmt, ...)
    __attribute__((noreturn, format(printf, 4, 5)));

static inline void check_fail(const char *file, int line, const char *expr,
                              const char *fmt, ...)
{
    int saved = errno;
    fprintf(stderr, "FAIL %s:%d: CHECK(%s)", file, line, expr);
    if (fmt != NULL) {
        va_list ap;
        va_start(ap, fmt);
        fputs(": ", stderr);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
    }
    fprintf(stderr, " [errno %d]\n", saved);
    fflush(stderr);
    fflush(stdout);
    abort();
}

/* Keeps the compiler from eliding allocations or assuming contents: the pointer (and
 * all memory) escapes to an opaque asm. */
static inline void escape(const void *p)
{
    __asm__ volatile("" : : "r"(p) : "memory");
}

/* GCC treats free() and posix_memalign() as builtins that leave errno alone, and folds
 * away a later "errno unchanged" check: the very thing such a check tests. Calls through
 * a volatile function pointer are opaque, so errno really is read back. */
static inline void free_opaque(void *p)
{
    void (*volatile fn)(void *) = free;
    fn(p);
}

static inline int posix_memalign_opaque(void **memptr, size_t align, size_t size)
{
    int (*volatile fn)(void **, size_t, size_t) = posix_memalign;
    return fn(memptr, align, size);
}

/* A size the compiler cannot see (avoids -Walloc-size-larger-than on purpose-made
 * huge requests, and constant folding of the overflow checks). */
static inline size_t opaque_size(size_t n)
{
    __asm__ volatile("" : "+r"(n));
    return n;
}

/* xorshift64*: deterministic per seed, cheap, good enough to pick sizes. */
static inline uint64_t xorshift64(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* Fill / verify len bytes with a pattern that depends on position and seed only, so a
 * prefix filled before a realloc can be verified after it. Word-at-a-time for speed. */
static inline uint64_t pattern_word(uint64_t seed, size_t word_index)
{
    uint64_t x = seed ^ ((uint64_t)word_index * 0x9E3779B97F4A7C15ULL);
    x ^= x >> 29;
    return x * 0xBF58476D1CE4E5B9ULL;
}

static inline void fill_pattern(void *p, size_t len, uint64_t seed)
{
    unsigned char *b = (unsigned char *)p;
    size_t words = len / 8, i;
    for (i = 0; i < words; i++) {
        uint64_t w = pattern_word(seed, i);
        memcpy(b + i * 8, &w, 8);
    }
    if (len % 8) {
        uint64_t w = pattern_word(seed, words);
        memcpy(b + words * 8, &w, len % 8);
    }
}

/* Returns the offset of the first mismatching byte, or (size_t)-1 if all match. */
static inline size_t find_pattern_mismatch(const void *p, size_t len, uint64_t seed)
{
    const unsigned char *b = (const unsigned char *)p;
    size_t words = len / 8, i, j;
    for (i = 0; i < words; i++) {
        uint64_t w = pattern_word(seed, i), got;
        memcpy(&got, b + i * 8, 8);
        if (got != w) {
            for (j = 0; j < 8; j++)
                if (((const unsigned char *)&w)[j] != b[i * 8 + j])
                    return i * 8 + j;
        }
    }
    if (len % 8) {
        uint64_t w = pattern_word(seed, words);
        for (j = 0; j < len % 8; j++)
            if (((const unsigned char *)&w)[j] != b[words * 8 + j])
                return words * 8 + j;
    }
    return (size_t)-1;
}

#define CHECK_PATTERN(p, len, seed)                                                  \
    do {                                                                             \
        size_t check_bad_ = find_pattern_mismatch((p), (len), (seed));               \
        CHECKF(check_bad_ == (size_t)-1,                                             \
               "pattern broken at byte %zu of %zu (object %p)", check_bad_,          \
               (size_t)(len), (const void *)(p));                                    \
    } while (0)

static inline int is_aligned(const void *p, size_t align)
{
    return ((uintptr_t)p & (align - 1)) == 0;
}

/* ---- which library provides a symbol ------------------------------------------- */

static inline int goalloc_expected(void)
{
    const char *e = getenv("GOALLOC_EXPECT");
    return e != NULL && strcmp(e, "1") == 0;
}

/* The object (shared library or executable) containing addr; 0 if none. */
static inline int object_of(const void *addr, Dl_info *info)
{
    memset(info, 0, sizeof *info);
    return addr != NULL && dladdr(addr, info) != 0 && info->dli_fname != NULL;
}

static inline void check_marker_in_executable(void) {}

/* The address the program's global lookup scope binds name to (what the program's own
 * calls reach), or NULL. */
static inline void *bound_symbol(const char *name)
{
    return dlsym(RTLD_DEFAULT, name);
}

/* The object providing name, or NULL if no loaded object defines it. */
static inline const char *provider_of(const char *name, Dl_info *info)
{
    if (!object_of(bound_symbol(name), info))
        return NULL;
    return info->dli_fname;
}

static inline int is_goalloc_object(const Dl_info *info)
{
    const char *base, *want;
    struct stat a, b;
    if (info->dli_fname == NULL)
        return 0;
    base = strrchr(info->dli_fname, '/');
    base = base ? base + 1 : info->dli_fname;
    if (strstr(base, "libgoalloc") == NULL)
        return 0;
    /* When the harness names the library file, it must be that very file (and not,
     * say, a stale copy found through LD_LIBRARY_PATH). */
    want = getenv("GOALLOC_LIB");
    if (want != NULL && want[0] != '\0') {
        if (stat(want, &a) != 0 || stat(info->dli_fname, &b) != 0)
            return 0;
        if (a.st_dev != b.st_dev || a.st_ino != b.st_ino)
            return 0;
    }
    return 1;
}

/* 1 if the allocator in use is held to the whole contract: goalloc (GOALLOC_EXPECT=1)
 * or glibc. Other allocators serve only to validate these tests through LD_PRELOAD, and
 * have known deviations that are reported as notes instead of failures: jemalloc 5.3
 * leaves errno alone when memalign, valloc or realloc fail, and its memalign(a, 0)
 * ignores the alignment (fixed upstream by jemalloc PR #2606). */
static inline int strict_semantics(void)
{
    static int cached = -1;
    if (cached < 0) {
        Dl_info info;
        const char *f = provider_of("malloc", &info);
        const char *base = f ? strrchr(f, '/') : NULL;
        base = base ? base + 1 : f;
        cached = goalloc_expected() || (base != NULL && strncmp(base, "libc.so", 7) == 0);
    }
    return cached;
}

static inline void check_note_errno(const char *file, int line, const char *want,
                                    const char *what, int got)
{
    static int notes = 0;
    if (notes++ < 20)
        printf("note %s:%d: %s: errno %d, not %s (tolerated: allocator in use is not "
               "goalloc or glibc)\n", file, line, what, got, want);
}

/* Whether the program can meaningfully test name: it must come from the same object as
 * malloc (an allocator that does not provide, say, pvalloc leaves glibc's in place,
 * whose memory cannot be passed to the other allocator's free). Under GOALLOC_EXPECT=1
 * a missing or foreign symbol is a failure. */
static inline int allocator_provides(const char *name)
{
    Dl_info sym, mal;
    const char *s = provider_of(name, &sym);
    const char *m = provider_of("malloc", &mal);
    if (goalloc_expected()) {
        CHECKF(s != NULL && is_goalloc_object(&sym), "%s must come from libgoalloc, "
               "but comes from %s", name, s ? s : "(nowhere: undefined)");
        return 1;
    }
    if (s != NULL && m != NULL && sym.dli_fbase == mal.dli_fbase)
        return 1;
    printf("note: %s comes from %s, malloc from %s: %s not tested\n", name,
           s ? s : "(nowhere)", m ? m : "(nowhere)", name);
    return 0;
}

/* Check one function: the address the program itself takes (&fn), and what the lookup
 * scope binds the name to, must both be libgoalloc. In a non-PIE executable &fn is a
 * canonical PLT slot inside the executable; that form is accepted as long as the name
 * binds to libgoalloc. */
static inline void expect_goalloc_symbol(const char *name, const void *taken)
{
    Dl_info t, b, exe;
    const char *bound = provider_of(name, &b);
    object_of((const void *)&check_marker_in_executable, &exe);
    CHECKF(bound != NULL && is_goalloc_object(&b),
           "GOALLOC_EXPECT=1 but %s is bound to %s, not libgoalloc%s%s", name,
           bound ? bound : "(nothing)", getenv("GOALLOC_LIB") ? " at " : "",
           getenv("GOALLOC_LIB") ? getenv("GOALLOC_LIB") : "");
    if (taken != NULL) {
        CHECKF(object_of(taken, &t), "dladdr(&%s) failed", name);
        CHECKF(is_goalloc_object(&t) || t.dli_fbase == exe.dli_fbase,
               "GOALLOC_EXPECT=1 but &%s is in %s, not libgoalloc", name, t.dli_fname);
    }
}

/* Call first in every program. */
static inline void goalloc_expect_active(void)
{
    Dl_info info;
    /* volatile: make the compiler materialise the addresses the program really uses */
    void *volatile taken_malloc = (void *)&malloc;
    void *volatile taken_free = (void *)&free;
    void *volatile taken_calloc = (void *)&calloc;
    void *volatile taken_realloc = (void *)&realloc;
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (!goalloc_expected()) {
        const char *m = provider_of("malloc", &info);
        printf("allocator: malloc from %s (GOALLOC_EXPECT not set: not checked)\n",
               m ? m : "(unknown)");
        return;
    }
    expect_goalloc_symbol("malloc", taken_malloc);
    expect_goalloc_symbol("free", taken_free);
    expect_goalloc_symbol("calloc", taken_calloc);
    expect_goalloc_symbol("realloc", taken_realloc);
    expect_goalloc_symbol("malloc_usable_size", NULL);
    provider_of("malloc", &info);
    printf("allocator: goalloc active (malloc from %s)\n", info.dli_fname);
}

#endif /* GOALLOC_CHECK_H */
