/* goalloc from C: the goalloc_* functions of goalloc.h, and the standard malloc family,
 * which goalloc replaces in a program linked with it (shared or static).
 *
 * After scripts/install.sh PREFIX:
 *
 *   export PKG_CONFIG_PATH=PREFIX/lib/pkgconfig
 *   cc hello.c $(pkg-config --cflags --libs goalloc) -o hello
 *   LD_LIBRARY_PATH=PREFIX/lib ./hello
 *
 * or, with the static library (no libgoalloc.so needed at run time):
 *
 *   cc hello.c $(pkg-config --cflags goalloc) \
 *      $(pkg-config --static --libs goalloc | sed 's/-lgoalloc/-l:libgoalloc.a/') -o hello
 *
 * The output is the same every run. */
#include <goalloc.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bytes in goalloc's spans in use now. */
static size_t heap_inuse(void) {
    static struct goalloc_mem_stats st;
    goalloc_read_mem_stats(&st);
    return st.heap_inuse;
}

static const char *yes_no(int ok) { return ok ? "yes" : "no"; }

int main(void) {
    int ok = 1;

    /* 1. The goalloc_* names: usable even in a program that keeps another malloc. */
    char *text = goalloc_malloc(64);
    if (text == NULL) {
        return 1;
    }
    snprintf(text, 64, "hello from goalloc_malloc");
    printf("%s\n", text);
    printf("goalloc_usable_size >= 64: %s\n", yes_no(goalloc_usable_size(text) >= 64));
    text = goalloc_realloc(text, 100000); /* small to large: the text moves along */
    printf("after goalloc_realloc to 100000 bytes: %s\n", text ? text : "(failed)");
    goalloc_free(text);

    void *page = NULL;
    int rc = goalloc_posix_memalign(&page, 4096, 100);
    printf("goalloc_posix_memalign(4096, 100) is aligned: %s\n",
           yes_no(rc == 0 && (uintptr_t)page % 4096 == 0));
    goalloc_free(page);

    /* 2. The standard names are goalloc's too: a large malloc shows in goalloc's heap. */
    size_t before = heap_inuse();
    unsigned char *big = malloc(1 << 20);
    size_t after = heap_inuse();
    int from_goalloc = big != NULL && after >= before + (1 << 20);
    ok &= from_goalloc;
    printf("malloc(1 MiB) came from goalloc: %s\n", yes_no(from_goalloc));
    if (big != NULL) {
        memset(big, 0xab, 1 << 20);
    }
    free(big);

    /* calloc gives zeros; realloc keeps the contents. */
    int *v = calloc(1000, sizeof *v);
    if (v == NULL) {
        return 1;
    }
    long zeros = 0;
    for (int i = 0; i < 1000; i++) {
        zeros += v[i] == 0;
        v[i] = i;
    }
    int *w = realloc(v, 2000 * sizeof *w);
    if (w == NULL) {
        free(v);
        return 1;
    }
    long sum = 0;
    for (int i = 1000; i < 2000; i++) {
        w[i] = i;
    }
    for (int i = 0; i < 2000; i++) {
        sum += w[i];
    }
    printf("calloc zeros: %ld, sum after realloc: %ld\n", zeros, sum);
    free(w);

    /* Many small objects, freed in another order. */
    char *objs[1000];
    for (int i = 0; i < 1000; i++) {
        objs[i] = malloc((size_t)(i % 200) + 1);
        if (objs[i] == NULL) {
            return 1;
        }
        memset(objs[i], i & 0xff, (size_t)(i % 200) + 1);
    }
    long checked = 0;
    for (int i = 999; i >= 0; i -= 2) {
        checked += objs[i][i % 200] == (char)(i & 0xff);
        free(objs[i]);
    }
    for (int i = 0; i < 1000; i += 2) {
        checked += objs[i][0] == (char)(i & 0xff);
        free(objs[i]);
    }
    printf("small objects checked: %ld\n", checked);

    printf("%s\n", ok ? "done" : "FAILED");
    return ok ? 0 : 1;
}
