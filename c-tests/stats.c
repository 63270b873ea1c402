/* stats.c — the statistics move with the heap and add up: goalloc_read_mem_stats,
 * mallinfo2/mallinfo, malloc_stats (stderr) and malloc_info (XML). */
#define _GNU_SOURCE
#include "check.h"
#include "goalloc.h"
#include <malloc.h>

#define MiB (1024UL * 1024UL)

static void (*read_stats)(struct goalloc_mem_stats *);
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

    char buf[65536];
    capture_stderr(malloc_stats, buf, sizeof buf);
    CHECKF(strstr(buf, "goalloc statistics (now)") && strstr(buf, "heap:") &&
               strstr(buf, "class     size"),
           "malloc_stats printed: %s", buf);

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
