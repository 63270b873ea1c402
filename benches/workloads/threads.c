/* threads: many short-lived threads.
 *
 *   threads [-t threads] [-s scale]
 *
 * Waves of T threads are started and joined, 20000 threads in all (times the scale).
 * Each allocates 400 objects of 16 B .. 2 KiB (log-uniform) and stamps them, frees
 * three in four of them itself (checked), and hands the rest back to the main thread,
 * which checks and frees them after the join (a free of a dead thread's object). A
 * thread's cache is set up and torn down every time, so this measures what thread start
 * and exit cost the allocator, and whether a dead thread's memory is reused (peak RSS).
 */
#include "common.h"

#define OBJS 400

struct targ {
    int id;
    uint64_t seq;
    void *handed[OBJS];
    size_t handed_size[OBJS];
    uint64_t handed_tag[OBJS];
    int nhanded;
    uint64_t sum;
};

static void *worker(void *vp)
{
    struct targ *a = vp;
    struct rng r = rng_seed(a->seq);
    void *obj[OBJS];
    size_t size[OBJS];
    for (int i = 0; i < OBJS; i++) {
        size[i] = rng_logsize(&r, 16, 2048);
        obj[i] = xmalloc(size[i]);
        stamp(obj[i], size[i], a->seq * OBJS + (uint64_t)i);
        a->sum += size[i];
    }
    a->nhanded = 0;
    for (int i = 0; i < OBJS; i++) {
        uint64_t tag = a->seq * OBJS + (uint64_t)i;
        check_stamp(obj[i], size[i], tag, "threads");
        if (i % 4 == 3) {
            a->handed[a->nhanded] = obj[i];
            a->handed_size[a->nhanded] = size[i];
            a->handed_tag[a->nhanded++] = tag;
        } else {
            free(obj[i]);
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    struct opts o = parse_opts(argc, argv, "threads", NULL);
    long total = scaled(20000, o.scale, (long)o.threads);
    long waves = (total + o.threads - 1) / o.threads;
    struct targ *args = calloc((size_t)o.threads, sizeof(struct targ));
    pthread_t *tids = xmalloc(sizeof(pthread_t) * (size_t)o.threads);
    if (!args)
        fail("calloc");
    uint64_t seq = 0, sum = 0, handed = 0;
    double t0 = now_s();
    for (long w = 0; w < waves; w++) {
        for (int i = 0; i < o.threads; i++) {
            args[i].id = i;
            args[i].seq = ++seq;
            args[i].sum = 0;
            int rc = pthread_create(&tids[i], NULL, worker, &args[i]);
            if (rc)
                fail("pthread_create: %s", strerror(rc));
        }
        for (int i = 0; i < o.threads; i++) {
            pthread_join(tids[i], NULL);
            for (int k = 0; k < args[i].nhanded; k++) {
                check_stamp(args[i].handed[k], args[i].handed_size[k], args[i].handed_tag[k],
                            "threads (handed to main)");
                free(args[i].handed[k]);
            }
            handed += (uint64_t)args[i].nhanded;
            sum += args[i].sum;
        }
    }
    double dt = now_s() - t0;
    fprintf(stderr, "threads: %.2f s, %.1f us per thread\n", dt, dt * 1e6 / (double)seq);
    printf("threads ok: %llu threads, %llu objects handed back, %llu bytes\n",
           (unsigned long long)seq, (unsigned long long)handed, (unsigned long long)sum);
    free(args);
    free(tids);
    return 0;
}
