/* Shared helpers of the allocator workloads (the C files beside this one).
 *
 * Every workload takes the same options:
 *   -t N    threads (default 2)
 *   -s X    scale factor for the amount of work (default 1.0; --quick uses ~0.1)
 * plus its own, listed in its usage line. Each program prints one deterministic result
 * line on stdout (the same under every allocator, so that the bench script can compare
 * them), informational lines on stderr, and exits 3 with a "CORRUPT" line on stderr as
 * soon as it finds an object whose contents are not what it wrote.
 */
#ifndef GOALLOC_BENCH_COMMON_H
#define GOALLOC_BENCH_COMMON_H

#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *wl_name = "workload";

__attribute__((noreturn, format(printf, 1, 2))) static void corrupt(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: CORRUPT: ", wl_name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
    _exit(3);
}

__attribute__((noreturn, format(printf, 1, 2))) static void fail(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: error: ", wl_name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(2);
}

/* malloc that treats NULL as a failure of the run (not of the allocator's contract). */
static inline void *xmalloc(size_t n)
{
    void *p = malloc(n);
    if (!p)
        fail("malloc(%zu) returned NULL", n);
    return p;
}

static inline void *xrealloc(void *q, size_t n)
{
    void *p = realloc(q, n);
    if (!p)
        fail("realloc(%zu) returned NULL", n);
    return p;
}

/* ---- options -------------------------------------------------------------------- */

struct opts {
    int threads;
    double scale;
    long n;          /* -n: workload-specific count override (0: derive from scale) */
    long size;       /* -S: workload-specific size (0: default) */
    double seconds;  /* -d: workload-specific duration (<0: default) */
    const char *out; /* -o: output file */
    int null_alloc;  /* -N: replace malloc by a fixed pool (pairs: harness cost) */
    const char *pattern; /* -P: workload-specific allocation pattern (pairs) */
};

static void usage_exit(const char *extra)
{
    fprintf(stderr, "usage: %s [-t threads] [-s scale]%s%s\n", wl_name, extra ? " " : "",
            extra ? extra : "");
    exit(2);
}

static struct opts parse_opts(int argc, char **argv, const char *name, const char *extra)
{
    struct opts o = {2, 1.0, 0, 0, -1.0, NULL, 0, NULL};
    int c;
    wl_name = name;
    while ((c = getopt(argc, argv, "t:s:n:S:d:o:P:Nh")) != -1) {
        char *end = NULL;
        switch (c) {
        case 't':
            o.threads = (int)strtol(optarg, &end, 10);
            if (*end || o.threads < 1 || o.threads > 256)
                usage_exit(extra);
            break;
        case 's':
            o.scale = strtod(optarg, &end);
            if (*end || !(o.scale > 0))
                usage_exit(extra);
            break;
        case 'n':
            o.n = strtol(optarg, &end, 10);
            if (*end || o.n < 1)
                usage_exit(extra);
            break;
        case 'S':
            o.size = strtol(optarg, &end, 10);
            if (*end || o.size < 0)
                usage_exit(extra);
            break;
        case 'd':
            o.seconds = strtod(optarg, &end);
            if (*end || o.seconds < 0)
                usage_exit(extra);
            break;
        case 'o':
            o.out = optarg;
            break;
        case 'N':
            o.null_alloc = 1;
            break;
        case 'P':
            o.pattern = optarg;
            break;
        default:
            usage_exit(extra);
        }
    }
    if (optind != argc)
        usage_exit(extra);
    return o;
}

/* Scaled count, at least `min`. */
static inline long scaled(double base, double scale, long min)
{
    long v = (long)(base * scale);
    return v < min ? min : v;
}

/* ---- random numbers (deterministic per seed) ------------------------------------ */

static inline uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

struct rng {
    uint64_t s[2];
};

static inline struct rng rng_seed(uint64_t seed)
{
    struct rng r;
    uint64_t x = seed * 0x2545f4914f6cdd1dULL + 12345;
    r.s[0] = splitmix64(&x);
    r.s[1] = splitmix64(&x) | 1;
    return r;
}

/* xorshift128+ */
static inline uint64_t rng_next(struct rng *r)
{
    uint64_t s1 = r->s[0];
    const uint64_t s0 = r->s[1];
    r->s[0] = s0;
    s1 ^= s1 << 23;
    r->s[1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
    return r->s[1] + s0;
}

/* Uniform in [0, n). */
static inline uint64_t rng_below(struct rng *r, uint64_t n)
{
    return (uint64_t)(((unsigned __int128)rng_next(r) * n) >> 64);
}

/* Log-uniform in [lo, hi]: every power-of-two octave equally likely. */
static inline size_t rng_logsize(struct rng *r, size_t lo, size_t hi)
{
    unsigned lo_bits = 63 - (unsigned)__builtin_clzll(lo);
    unsigned hi_bits = 63 - (unsigned)__builtin_clzll(hi);
    unsigned b = lo_bits + (unsigned)rng_below(r, hi_bits - lo_bits + 1);
    size_t base = (size_t)1 << b;
    size_t v = base + (size_t)rng_below(r, base);
    if (v < lo)
        v = lo;
    if (v > hi)
        v = hi;
    return v;
}

/* ---- object stamps ---------------------------------------------------------------- */
/* An object of n bytes gets the stamp word at its start, at its end (n >= 16) and at
 * every 4 KiB boundary in between that does not overlap the end word, so that the pages
 * really are touched (RSS counts) and an overlap with another object or a lost copy in
 * realloc shows. */

static inline uint64_t stamp_word(uint64_t tag, size_t off)
{
    return (tag * 0x9e3779b97f4a7c15ULL) ^ (off * 0xff51afd7ed558ccdULL) ^ 0xa5a5a5a5a5a5a5a5ULL;
}

static inline void stamp(void *p, size_t n, uint64_t tag)
{
    unsigned char *b = p;
    if (n < 8) {
        memset(b, (int)(tag & 0xff), n);
        return;
    }
    memcpy(b, &(uint64_t){stamp_word(tag, 0)}, 8);
    for (size_t off = 4096; off + 16 <= n; off += 4096) {
        uint64_t w = stamp_word(tag, off);
        memcpy(b + off, &w, 8);
    }
    if (n >= 16) {
        uint64_t w = stamp_word(tag, n - 8);
        memcpy(b + n - 8, &w, 8);
    }
}

/* Checks the stamps of the first `n` bytes; returns 0 if they are intact. */
static inline int stamp_bad(const void *p, size_t n, uint64_t tag)
{
    const unsigned char *b = p;
    if (n < 8) {
        for (size_t i = 0; i < n; i++)
            if (b[i] != (unsigned char)(tag & 0xff))
                return 1;
        return 0;
    }
    for (size_t off = 0; off == 0 || off + 16 <= n; off += 4096) {
        uint64_t w;
        memcpy(&w, b + off, 8);
        if (w != stamp_word(tag, off))
            return 1;
    }
    if (n >= 16) {
        uint64_t w;
        memcpy(&w, b + n - 8, 8);
        if (w != stamp_word(tag, n - 8))
            return 1;
    }
    return 0;
}

static inline void check_stamp(const void *p, size_t n, uint64_t tag, const char *what)
{
    if (stamp_bad(p, n, tag))
        corrupt("%s: object %p of %zu bytes (tag %llu) was overwritten", what, p, n,
                (unsigned long long)tag);
}

/* ---- time and memory ---------------------------------------------------------------- */

static inline double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Resident set size of this process in KiB (from /proc/self/statm). */
static inline long rss_kib(void)
{
    long pages_total = 0, pages_res = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return -1;
    if (fscanf(f, "%ld %ld", &pages_total, &pages_res) != 2)
        pages_res = -1;
    fclose(f);
    return pages_res < 0 ? -1 : pages_res * (sysconf(_SC_PAGESIZE) / 1024);
}

/* ---- threads ---------------------------------------------------------------------- */

static inline void run_threads(int n, void *(*fn)(void *), void *args, size_t arg_size)
{
    pthread_t *tids = xmalloc(sizeof(pthread_t) * (size_t)n);
    for (int i = 0; i < n; i++) {
        int rc = pthread_create(&tids[i], NULL, fn, (char *)args + (size_t)i * arg_size);
        if (rc)
            fail("pthread_create: %s", strerror(rc));
    }
    for (int i = 0; i < n; i++)
        pthread_join(tids[i], NULL);
    free(tids);
}

#endif
