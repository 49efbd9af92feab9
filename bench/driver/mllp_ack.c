/* mllp_ack: the compiled bare frame+ACK server (the machine's ceiling for MLLP over loopback).
 *
 *   mllp_ack [--port 0]
 *
 * Prints "PORT <n>" once listening on 127.0.0.1, serves until SIGTERM. One epoll loop: find
 * 0x0B ... 0x1C 0x0D, answer a fixed AA whose MSA-2 echoes MSH-10. No parsing, no storage.
 * The benchmark drives it to show that the load driver is not the bottleneck.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF 65536
#define OUT 262144

typedef struct { int fd; size_t len; char buf[BUF]; } client_t;

static volatile sig_atomic_t stopping;
static void on_term(int sig) { (void)sig; stopping = 1; }

static const char ACK_HEAD[] = "\x0bMSH|^~\\&|BARE|BENCH|BENCH|BENCH|20261126000000||ACK|ACK1|P|2.5.1\rMSA|AA|";

int main(int argc, char **argv) {
    int port = 0;
    for (int i = 1; i + 1 < argc; i += 2)
        if (!strcmp(argv[i], "--port")) port = atoi(argv[i + 1]);
    signal(SIGTERM, on_term);
    signal(SIGINT, on_term);
    signal(SIGPIPE, SIG_IGN);
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) || listen(lfd, 1024)) { perror("listen"); return 2; }
    socklen_t alen = sizeof addr;
    getsockname(lfd, (struct sockaddr *)&addr, &alen);
    printf("PORT %d\n", ntohs(addr.sin_port));
    fflush(stdout);
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    struct epoll_event events[512];
    static char out[OUT];
    while (!stopping) {
        int n = epoll_wait(ep, events, 512, 200);
        for (int k = 0; k < n; k++) {
            client_t *c = events[k].data.ptr;
            if (!c) {
                int fd;
                while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    client_t *nc = calloc(1, sizeof *nc);
                    nc->fd = fd;
                    struct epoll_event cev = {.events = EPOLLIN, .data.ptr = nc};
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev);
                }
                continue;
            }
            ssize_t r = read(c->fd, c->buf + c->len, BUF - c->len);
            if (r <= 0) {
                if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
                close(c->fd);
                free(c);
                continue;
            }
            c->len += r;
            size_t olen = 0, pos = 0;
            char *end;
            while ((end = memmem(c->buf + pos, c->len - pos, "\x1c\r", 2)) != NULL) {
                char *start = memchr(c->buf + pos, 0x0b, end - (c->buf + pos));
                char *msg = start ? start + 1 : c->buf + pos;
                /* MSH-10: after the 9th '|' of the first segment */
                char *seg_end = memchr(msg, '\r', end - msg);
                if (!seg_end) seg_end = end;
                char *field = msg;
                int bars = 0;
                while (field < seg_end && bars < 9) if (*field++ == '|') bars++;
                char *fend = field;
                while (fend < seg_end && *fend != '|') fend++;
                size_t need = sizeof ACK_HEAD - 1 + (fend - field) + 3;
                if (olen + need <= OUT) {
                    memcpy(out + olen, ACK_HEAD, sizeof ACK_HEAD - 1); olen += sizeof ACK_HEAD - 1;
                    memcpy(out + olen, field, fend - field); olen += fend - field;
                    memcpy(out + olen, "\r\x1c\r", 3); olen += 3;
                }
                pos = end + 2 - c->buf;
            }
            memmove(c->buf, c->buf + pos, c->len - pos);
            c->len -= pos;
            if (c->len == BUF) c->len = 0;
            if (olen && write(c->fd, out, olen) < 0) { /* peer gone; the read side notices */ }
        }
    }
    return 0;
}
