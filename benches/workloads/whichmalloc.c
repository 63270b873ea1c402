/* whichmalloc: the shared object that each function of the malloc family resolves to.
 *
 *   LD_PRELOAD=lib.so whichmalloc
 *
 * Prints "FUNCTION PATH" a line; scripts/bench.sh checks that, under each allocator's
 * LD_PRELOAD, every line names the preloaded library (a library that leaves one of them
 * to glibc would mix two heaps, or measure glibc's).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
int main(void)
{
    static const char *const names[] = {"malloc",        "free",          "calloc",
                                         "realloc",       "posix_memalign", "aligned_alloc",
                                         "memalign",      "malloc_usable_size"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        Dl_info di;
        void *a = dlsym(RTLD_DEFAULT, names[i]);
        if (!a || !dladdr(a, &di) || !di.dli_fname)
            di.dli_fname = "?";
        printf("%s %s\n", names[i], di.dli_fname);
    }
    return 0;
}
