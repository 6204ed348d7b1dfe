/* For `npm run bench`: N Server-Sent Events clients of serve's /events, in one small process, so that the
 * time measured is serve's and not a client's (100 streams read by one Node process take it ~3 ms
 * between the first and the last).   sse-clients PORT N MARK1 MARK2
 * Prints "ready" once every stream has its response header. Then, for each line read on stdin ("arm"),
 * prints the CLOCK_MONOTONIC time in ns (the clock Node's process.hrtime reads) at which the last stream
 * received data holding MARK1 and MARK2 (one event) since. Ends at the end of stdin. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define KEEP 256 /* the tail of a stream's data kept, so that an event cut between two reads is seen */

struct stream {
    int fd;
    int header; /* its response header seen */
    int seen;   /* the event seen since the last "arm" */
    size_t len;
    char buf[KEEP + 65536 + 1];
};

static long long monotonic_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: sse-clients PORT N MARK1 MARK2\n");
        return 2;
    }
    int port = atoi(argv[1]), n = atoi(argv[2]);
    const char *mark1 = argv[3], *mark2 = argv[4];
    struct stream *s = calloc((size_t)n, sizeof *s);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (s == NULL || ep < 0) { perror("sse-clients"); return 1; }
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons((unsigned short)port) };
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    static const char req[] = "GET /events HTTP/1.1\r\nHost: bench\r\n\r\n";
    for (int i = 0; i < n; i++) {
        s[i].fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int one = 1;
        setsockopt(s[i].fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (s[i].fd < 0 || connect(s[i].fd, (struct sockaddr *)&addr, sizeof addr) != 0 ||
            write(s[i].fd, req, sizeof req - 1) != (ssize_t)(sizeof req - 1)) { perror("sse-clients: connect"); return 1; }
        struct epoll_event ev = { .events = EPOLLIN, .data.u32 = (unsigned)i };
        epoll_ctl(ep, EPOLL_CTL_ADD, s[i].fd, &ev);
    }
    struct epoll_event in = { .events = EPOLLIN, .data.u32 = (unsigned)n };
    epoll_ctl(ep, EPOLL_CTL_ADD, 0, &in);
    int headers = 0, armed = 0, seen = 0;
    struct epoll_event evs[64];
    for (;;) {
        int k = epoll_wait(ep, evs, 64, -1);
        if (k < 0) {
            if (errno == EINTR) continue;
            perror("sse-clients: epoll_wait");
            return 1;
        }
        long long t = monotonic_ns();
        for (int j = 0; j < k; j++) {
            unsigned i = evs[j].data.u32;
            if (i == (unsigned)n) {
                char line[64];
                ssize_t r = read(0, line, sizeof line);
                if (r <= 0) return 0;
                for (int m = 0; m < n; m++) s[m].seen = 0;
                armed = 1;
                seen = 0;
                continue;
            }
            struct stream *c = &s[i];
            ssize_t r = read(c->fd, c->buf + c->len, sizeof c->buf - 1 - c->len);
            if (r <= 0) { fprintf(stderr, "sse-clients: stream %u ended\n", i); return 1; }
            c->len += (size_t)r;
            c->buf[c->len] = '\0';
            if (!c->header && strstr(c->buf, "\r\n\r\n") != NULL) {
                c->header = 1;
                if (++headers == n) { printf("ready\n"); fflush(stdout); }
            }
            if (armed && !c->seen && strstr(c->buf, mark1) != NULL && strstr(c->buf, mark2) != NULL) {
                c->seen = 1;
                if (++seen == n) {
                    printf("%lld\n", t);
                    fflush(stdout);
                    armed = 0;
                }
            }
            if (c->len > KEEP) {
                memmove(c->buf, c->buf + c->len - KEEP, KEEP);
                c->len = KEEP;
            }
        }
    }
}
