/* For `npm run bench`: holds PREFIX0 .. PREFIX<N-1> (FIFOs, made if missing) open for reading, prints the
 * CLOCK_MONOTONIC time in ns right after the last open (the clock Node's process.hrtime reads), then
 * waits to be killed.   hold-many PREFIX N */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: hold-many PREFIX N\n");
        return 2;
    }
    long n = atol(argv[2]);
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    char path[4096];
    for (long i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s%ld", argv[1], i);
        if (mkfifo(path, 0600) != 0 && errno != EEXIST) { perror(path); return 1; }
        if (open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC) < 0) { perror(path); return 1; }
    }
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    printf("%lld\n", (long long)t.tv_sec * 1000000000LL + t.tv_nsec);
    fflush(stdout);
    for (;;) pause();
}
