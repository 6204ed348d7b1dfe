/* Reference loops for `npm run bench`: checks one path N times and prints the mean nanoseconds per check.
 *   loop seed PATH N   the seed checker's system calls: open(O_WRONLY|O_NONBLOCK) + close
 *   loop safe PATH N   what proc-alive does: stat, then (FIFO only) open + fcntl(F_GETPIPE_SZ) + close
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: loop seed|safe PATH N\n");
        return 2;
    }
    int safe = strcmp(argv[1], "safe") == 0;
    const char *path = argv[2];
    long n = atol(argv[3]);
    struct stat st;
    double start = now_ns();
    for (long i = 0; i < n; i++) {
        if (safe && (stat(path, &st) != 0 || !S_ISFIFO(st.st_mode))) continue;
        int fd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0) continue;
        if (safe) fcntl(fd, F_GETPIPE_SZ);
        close(fd);
    }
    printf("%.1f\n", (now_ns() - start) / n);
    return 0;
}
