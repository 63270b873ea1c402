/* stats.c — the statistics move with the heap and add up: goalloc_read_mem_stats,
 * mallinfo2/mallinfo, malloc_stats (stderr), malloc_info (XML), goalloc_stats_print
 * (text and JSON, to a stream or stderr) and goalloc_version. */
#define _GNU_SOURCE
#include "check.h"
#include "goalloc.h"
#include <malloc.h>

#define MiB (1024UL * 1024UL)

static void (*read_stats)(struct goalloc_mem_stats *);
static int (*stats_print)(FILE *, const char *);
static struct goalloc_mem_stats st;

static void check_consistent(const struct goalloc_mem_stats *s)
{
    CHECK(s->heap_inuse + s->heap_idle == s->heap_sys);
    CHECK(s->heap_released <= s->heap_idle);
    CHECK(s->heap_alloc <= s->heap_inuse);
    CHECK(s->mallocs - s->frees == s->heap_objects);
    uint64_t live = 0;
    for (int c = 1; c < GOALLOC_NUM_CLASSES; c++) {
        CHECK(s->by_size[c].live == s->by_size[c].mallocs - s->by_size[c].frees);
        live += s->by_size[c].live;
    }
    CHECK(live + s->large_objects == s->heap_objects);
}

/* Output of fn() written to fd 2, captured in buf. */
static size_t capture_stderr(void (*fn)(void), char *buf, size_t cap)
{
    FILE *tmp = tmpfile();
    CHECK(tmp != NULL);
    fflush(stderr);
    int saved = dup(2);
    dup2(fileno(tmp), 2);
    fn();
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    rewind(tmp);
    size_t n = fread(buf, 1, cap - 1, tmp);
    buf[n] = 0;
    fclose(tmp);
    return n;
}

/* The value on the line "  <name>  <value> ..." of a text report, or -1. */
static long long text_figure(const char *report, const char *name)
{
    char key[64];
    snprintf(key, sizeof key, "\n  %s ", name);
    const char *at = strstr(report, key);
    return at ? strtoll(at + strlen(key), NULL, 10) : -1;
}

static void print_to_stderr(void)
{
    CHECK(stats_print(NULL, "json") == 0);
}

/* goalloc_stats_print: text and JSON to a stream, NULL for stderr, errors. */
/* The first line of buf ends with tail (a whole line, or its end) and starts with
 * "goalloc ". */
static int first_line_is(const char *buf, const char *tail)
{
    const char *nl = strchr(buf, '\n');
    size_t n = strlen(tail);
    return !strncmp(buf, "goalloc ", 8) && nl != NULL && (size_t)(nl + 1 - buf) >= n &&
           !strncmp(nl + 1 - n, tail, n);
}

static void test_stats_print(const char *title, char *buf, size_t cap)
{
    stats_print = (int (*)(FILE *, const char *))dlsym(RTLD_DEFAULT, "goalloc_stats_print");
    CHECK(stats_print != NULL);

    for (int t = 0; t < 3; t++) {
        static const char *const text_opts[] = {NULL, "", "Text"};
        FILE *f = tmpfile();
        /* Nothing allocates between here and the report's own reading of the figures
         * (its formatting allocates nothing; the stream's buffer comes after). */
        read_stats(&st);
        CHECK(stats_print(f, text_opts[t]) == 0);
        rewind(f);
        size_t n = fread(buf, 1, cap - 1, f);
        buf[n] = 0;
        fclose(f);
        CHECKF(first_line_is(buf, title), "goalloc_stats_print(f, %s) wrote: %s",
               text_opts[t] ? text_opts[t] : "NULL", buf);
        /* Every field under its name, with the value goalloc_read_mem_stats gives. */
        CHECKF(text_figure(buf, "heap_objects") == (long long)st.heap_objects, "%s", buf);
        CHECKF(text_figure(buf, "mallocs") == (long long)st.mallocs, "%s", buf);
        CHECKF(text_figure(buf, "heap_sys") == (long long)st.heap_sys, "%s", buf);
        CHECK(text_figure(buf, "scav_wakeups") >= 0 && text_figure(buf, "peak_rss") > 0);
        CHECK(strstr(buf, "\n  by_size, the classes in use: size = bytes per object"));
        CHECK(strstr(buf, "\n      4       48 "));
    }

    FILE *f = tmpfile();
    CHECK(stats_print(f, "JSON") == 0);
    rewind(f);
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = 0;
    fclose(f);
    char pid[64];
    snprintf(pid, sizeof pid, ",\"pid\":%d,", (int)getpid());
    const char *json_start = "{\"allocator\":\"goalloc\",\"version\":\"" GOALLOC_VERSION "\",";
    CHECKF(!strncmp(buf, json_start, strlen(json_start)) &&
               strstr(buf, "\"program\":\"stats\"") && strstr(buf, pid) &&
               strstr(buf, "\"when\":\"now\"") && strstr(buf, "\"by_size\":[{\"class\":"),
           "goalloc_stats_print(f, \"JSON\") wrote: %s", buf);
    CHECKF(n > 2 && !strcmp(buf + n - 2, "}\n") && strchr(buf, '\n') == buf + n - 1,
           "one JSON object on one line: %s", buf);

    /* NULL goes to stderr, in one write. */
    n = capture_stderr(print_to_stderr, buf, cap);
    CHECKF(!strncmp(buf, "{\"allocator\":\"goalloc\"", 22) && strchr(buf, '\n') == buf + n - 1,
           "goalloc_stats_print(NULL, \"json\") printed: %s", buf);

    /* Unknown options: -1 and EINVAL, nothing written. */
    f = tmpfile();
    errno = 0;
    CHECK(stats_print(f, "xml") == -1 && errno == EINVAL);
    CHECK(ftell(f) == 0);
    fclose(f);

    /* A stream that cannot be written. */
    f = fopen("/dev/null", "r");
    CHECK(f != NULL);
    CHECK(stats_print(f, "text") == -1);
    fclose(f);
}

/* goalloc_version() is the header's GOALLOC_VERSION_* (both from Cargo.toml). */
static void test_version(void)
{
    const char *(*version)(void) = (const char *(*)(void))dlsym(RTLD_DEFAULT, "goalloc_version");
    CHECK(version != NULL);
    char want[64];
    snprintf(want, sizeof want, "%d.%d.%d", GOALLOC_VERSION_MAJOR, GOALLOC_VERSION_MINOR,
             GOALLOC_VERSION_PATCH);
    CHECKF(!strcmp(version(), want) && !strcmp(GOALLOC_VERSION, want), "goalloc_version() %s, header %s",
           version(), want);
}

int main(void)
{
    goalloc_expect_active();
    read_stats = (void (*)(struct goalloc_mem_stats *))dlsym(RTLD_DEFAULT, "goalloc_read_mem_stats");
    CHECK(read_stats != NULL);

    read_stats(&st);
    check_consistent(&st);
    struct mallinfo2 m0 = mallinfo2();
    uint64_t large0 = st.large_objects, class4_mallocs = st.by_size[4].mallocs;
    uint64_t class4_frees = st.by_size[4].frees;

    /* Large objects are counted exactly. */
    void *big[10];
    for (int i = 0; i < 10; i++) {
        big[i] = malloc(MiB);
        memset(big[i], 1, MiB);
    }
    read_stats(&st);
    check_consistent(&st);
    CHECK(st.large_objects == large0 + 10);
    struct mallinfo2 m1 = mallinfo2();
    CHECKF(m1.uordblks >= m0.uordblks + 10 * MiB, "uordblks %zu -> %zu", m0.uordblks, m1.uordblks);
    CHECK(m1.hblks >= m0.hblks + 10 && m1.hblkhd >= m0.hblkhd + 10 * MiB);
    CHECK(m1.arena >= m1.uordblks);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    struct mallinfo mi = mallinfo(); /* deprecated in glibc, still exported and used */
#pragma GCC diagnostic pop
    CHECK((size_t)mi.uordblks == (m1.uordblks > INT32_MAX ? (size_t)INT32_MAX : m1.uordblks));

    /* Small objects: counted as they reach the thread cache (so >= what we took). */
    enum { N = 20000 };
    static void *small[N];
    for (int i = 0; i < N; i++)
        small[i] = malloc(48); /* class 4 */
    read_stats(&st);
    check_consistent(&st);
    CHECK(st.by_size[4].size == 48);
    CHECK(st.by_size[4].mallocs >= class4_mallocs + N);
    CHECK(st.by_size[4].spans >= N / 170);
    struct mallinfo2 m2 = mallinfo2();
    CHECK(m2.uordblks >= m1.uordblks + N * 48);

    for (int i = 0; i < N; i++)
        free(small[i]);
    for (int i = 0; i < 10; i++)
        free(big[i]);
    read_stats(&st);
    check_consistent(&st);
    CHECK(st.large_objects == large0);
    /* Frees are counted when they leave the thread cache, which holds at most 8 MiB. */
    CHECKF(st.by_size[4].frees + (8 * MiB) / 48 >= class4_frees + N, "frees %llu",
           (unsigned long long)st.by_size[4].frees);
    struct mallinfo2 m3 = mallinfo2();
    CHECKF(m3.uordblks + 10 * MiB <= m2.uordblks, "uordblks %zu -> %zu after free", m2.uordblks,
           m3.uordblks);
    CHECK(m3.keepcost > 0); /* free pages malloc_trim could release */

    static char buf[65536];
    char title[128];
    snprintf(title, sizeof title, "goalloc %s statistics of stats (pid %d) now\n", GOALLOC_VERSION,
             (int)getpid());
    capture_stderr(malloc_stats, buf, sizeof buf);
    CHECKF(first_line_is(buf, title) && strstr(buf, "\n  heap_alloc ") &&
               strstr(buf, "\n  class     size"),
           "malloc_stats printed: %s", buf);

    test_stats_print(title, buf, sizeof buf);
    test_version();

    FILE *xml = tmpfile();
    CHECK(malloc_info(0, xml) == 0);
    CHECK(malloc_info(1, xml) == -1 && errno == EINVAL);
    rewind(xml);
    size_t n = fread(buf, 1, sizeof buf - 1, xml);
    buf[n] = 0;
    fclose(xml);
    CHECKF(!strncmp(buf, "<malloc version=\"1\">", 20) && strstr(buf, "</malloc>\n") &&
               strstr(buf, "<size from=") && strstr(buf, "<system type=\"current\""),
           "malloc_info wrote: %s", buf);
    printf("stats: ok\n");
    return 0;
}
