/* runstat: run a command and record its wall time, CPU time and peak RSS.
 *
 *   runstat -o FILE [-T seconds] [-e NAME=VALUE]... [-u NAME]... -- CMD [ARGS...]
 *
 * Starts CMD in its own process group with the environment changes given (-e sets,
 * -u unsets; only the child sees them, so an LD_PRELOAD given here is not loaded into
 * runstat), waits for it and writes one line to FILE:
 *
 *   wall_s user_s sys_s maxrss_kib status
 *
 * user/sys/maxrss come from wait4() and so include the children that CMD waited for
 * (maxrss is the largest of them). status is the exit code, 128+N for a signal N, or
 * "timeout" when -T ran out (the whole process group is then killed with SIGKILL).
 * SIGINT and SIGTERM sent to runstat are passed on to the process group. runstat exits
 * with CMD's exit code (128+N for a signal, 124 for a timeout).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t child_pgid;

static void forward(int sig)
{
    if (child_pgid > 0)
        kill(-child_pgid, sig);
}

static void usage(void)
{
    fprintf(stderr, "usage: runstat -o FILE [-T seconds] [-e NAME=VALUE]... [-u NAME]... -- CMD "
                    "[ARGS...]\n");
    exit(2);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    const char *out = NULL;
    double timeout = 0;
    char **sets = calloc((size_t)argc, sizeof(char *));
    char **unsets = calloc((size_t)argc, sizeof(char *));
    int nsets = 0, nunsets = 0, c;
    if (!sets || !unsets)
        return 2;
    while ((c = getopt(argc, argv, "+o:T:e:u:")) != -1) {
        switch (c) {
        case 'o':
            out = optarg;
            break;
        case 'T':
            timeout = strtod(optarg, NULL);
            break;
        case 'e':
            if (!strchr(optarg, '='))
                usage();
            sets[nsets++] = optarg;
            break;
        case 'u':
            unsets[nunsets++] = optarg;
            break;
        default:
            usage();
        }
    }
    if (!out || optind >= argc)
        usage();
    FILE *f = fopen(out, "w");
    if (!f) {
        fprintf(stderr, "runstat: cannot write %s: %s\n", out, strerror(errno));
        return 2;
    }

    sigset_t chld, old;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, &old);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = forward;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    double t0 = now();
    pid_t pid = fork();
    if (pid < 0) {
        perror("runstat: fork");
        return 2;
    }
    if (pid == 0) {
        setpgid(0, 0);
        sigprocmask(SIG_SETMASK, &old, NULL);
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        for (int i = 0; i < nunsets; i++)
            unsetenv(unsets[i]);
        for (int i = 0; i < nsets; i++) {
            char *eq = strchr(sets[i], '=');
            *eq = 0;
            setenv(sets[i], eq + 1, 1);
        }
        execvp(argv[optind], argv + optind);
        fprintf(stderr, "runstat: cannot run %s: %s\n", argv[optind], strerror(errno));
        _exit(127);
    }
    setpgid(pid, pid);
    child_pgid = pid;

    int status = 0, timed_out = 0;
    struct rusage ru;
    for (;;) {
        pid_t w = wait4(pid, &status, WNOHANG, &ru);
        if (w == pid)
            break;
        if (w < 0 && errno != EINTR) {
            perror("runstat: wait4");
            return 2;
        }
        if (timeout > 0) {
            double left = t0 + timeout - now();
            if (left <= 0) {
                kill(-pid, SIGKILL);
                timed_out = 1;
                while (wait4(pid, &status, 0, &ru) < 0 && errno == EINTR)
                    ;
                break;
            }
            struct timespec ts = {(time_t)left, (long)((left - (double)(time_t)left) * 1e9)};
            sigtimedwait(&chld, NULL, &ts);
        } else {
            int sig;
            sigwait(&chld, &sig);
        }
    }
    double wall = now() - t0;
    /* kill what the command left behind in its group (a daemon it started) */
    kill(-pid, SIGKILL);

    int code;
    char st[32];
    if (timed_out) {
        code = 124;
        snprintf(st, sizeof st, "timeout");
    } else if (WIFSIGNALED(status)) {
        code = 128 + WTERMSIG(status);
        snprintf(st, sizeof st, "%d", code);
    } else {
        code = WEXITSTATUS(status);
        snprintf(st, sizeof st, "%d", code);
    }
    fprintf(f, "%.4f %.4f %.4f %ld %s\n", wall,
            (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6,
            (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6, ru.ru_maxrss, st);
    if (fclose(f)) {
        fprintf(stderr, "runstat: writing %s: %s\n", out, strerror(errno));
        return 2;
    }
    return code;
}
