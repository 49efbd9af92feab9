/* mllp_load: a small MLLP load generator that is not the bottleneck.
 *
 *   mllp_load --port P --conns N --templates FILE [--host 127.0.0.1] [--duration S] [--warmup S]
 *             [--rate R] [--tag T] [--acked-file PATH] [--drain S]
 *
 * N connections on one epoll loop, each with at most one message outstanding (MLLP senders wait
 * for the ACK before the next message).
 *   closed loop (--rate 0, default): each connection sends its next message as soon as the ACK
 *     of the previous one arrived. Latency = ACK read - frame written.
 *   open loop (--rate R): message i is due at start + i/R whatever the server does; a due
 *     message goes out on the first idle connection. Latency is measured from the time it was
 *     due, so a server that falls behind shows the queueing it causes (no coordinated omission).
 * Messages come from FILE: templates separated by a 0x1C byte, each holding the marker "{CID}"
 * once where MSH-10 goes; every message gets a unique control id <tag><conn>N<seq>.
 * ACKs are checked: MSA-1 must be AA or CA and MSA-2 must echo the control id.
 * Only messages due (open) or sent (closed) inside the measured window [warmup, warmup+duration]
 * count. After the window no new message is sent; outstanding ACKs are awaited up to --drain s.
 * Prints one JSON object on stdout. --acked-file writes the control id of every accepted message
 * (window or not), one per line, for tests that check delivery against what was acknowledged.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_TEMPLATES 4096
#define CID_LEN 40
#define RBUF 65536

typedef struct { const char *head; size_t head_len; const char *tail; size_t tail_len; } template_t;

typedef struct {
    int fd;
    int busy;               /* a message is outstanding */
    int connected;
    double due;             /* when the outstanding message was due (open) or written (closed) */
    int in_window;
    char cid[CID_LEN];
    size_t cid_len;
    unsigned long seq;
    char *out;              /* unsent bytes of the current frame */
    size_t out_len, out_off;
    char rbuf[RBUF];
    size_t rlen;
} conn_t;

static template_t templates[MAX_TEMPLATES];
static int template_count;
static double *latencies;
static size_t lat_len, lat_cap;
static unsigned long failed_code, failed_echo, failed_conn;
static unsigned long acked_window, sent_window, acked_total, sent_total;
static FILE *acked_file;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what) { perror(what); exit(2); }

static void load_templates(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) die("templates");
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *data = malloc(size + 1);
    if (fread(data, 1, size, f) != (size_t)size) die("read templates");
    fclose(f);
    data[size] = 0;
    char *p = data, *end = data + size;
    while (p < end && template_count < MAX_TEMPLATES) {
        char *sep = memchr(p, 0x1c, end - p);
        char *stop = sep ? sep : end;
        char *marker = memmem(p, stop - p, "{CID}", 5);
        if (stop > p && marker) {
            templates[template_count].head = p;
            templates[template_count].head_len = marker - p;
            templates[template_count].tail = marker + 5;
            templates[template_count].tail_len = stop - (marker + 5);
            template_count++;
        }
        p = sep ? sep + 1 : end;
    }
    if (!template_count) { fprintf(stderr, "no template with {CID} in %s\n", path); exit(2); }
}

static int open_conn(const char *host, int port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0) die("socket");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, host, &addr.sin_addr);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    return fd;
}

static void record_latency(double ms) {
    if (lat_len == lat_cap) {
        lat_cap = lat_cap ? lat_cap * 2 : 65536;
        latencies = realloc(latencies, lat_cap * sizeof *latencies);
    }
    latencies[lat_len++] = ms;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double percentile(double fraction) {
    if (!lat_len) return -1;
    size_t rank = (size_t)(fraction * lat_len + 0.999999999);
    if (rank < 1) rank = 1;
    return latencies[rank - 1];
}

/* Build and start writing the next frame on c; due = when it was due (open) or now (closed). */
static void send_message(conn_t *c, int index, const char *tag, double due, int in_window, unsigned long pick) {
    template_t *t = &templates[pick % template_count];
    c->seq++;
    c->cid_len = snprintf(c->cid, CID_LEN, "%s%dN%lu", tag, index, c->seq);
    size_t len = 1 + t->head_len + c->cid_len + t->tail_len + 2;
    c->out = realloc(c->out, len);
    char *o = c->out;
    *o++ = 0x0b;
    memcpy(o, t->head, t->head_len); o += t->head_len;
    memcpy(o, c->cid, c->cid_len); o += c->cid_len;
    memcpy(o, t->tail, t->tail_len); o += t->tail_len;
    *o++ = 0x1c; *o++ = 0x0d;
    c->out_len = len;
    c->out_off = 0;
    c->busy = 1;
    c->due = due;
    c->in_window = in_window;
    sent_total++;
    if (in_window) sent_window++;
    ssize_t n = write(c->fd, c->out, c->out_len);
    if (n > 0) c->out_off = n;
}

/* Check one ACK (bytes between 0x0B and 0x1C) against the outstanding control id. */
static int ack_ok(conn_t *c, const char *ack, size_t len) {
    const char *msa = memmem(ack, len, "MSA|", 4);
    if (!msa) return 0;
    const char *end = ack + len;
    const char *code = msa + 4;
    if (end - code < 3 || !((code[0] == 'A' || code[0] == 'C') && code[1] == 'A' && code[2] == '|')) {
        failed_code++;
        return -1;
    }
    const char *echo = code + 3;
    size_t echo_len = 0;
    while (echo + echo_len < end && echo[echo_len] != '|' && echo[echo_len] != '\r') echo_len++;
    if (echo_len != c->cid_len || memcmp(echo, c->cid, echo_len) != 0) {
        failed_echo++;
        return -1;
    }
    return 1;
}

typedef struct {
    unsigned long acked_window, sent_window, acked_total, sent_total, failed_code, failed_echo, failed_conn;
    unsigned long dispatched, lat_len;
    long outstanding;
    double max_backlog_seconds;
} summary_t;

static summary_t run_load(const char *host, int port, int conns, int first, const char *tag, double start,
                          double warmup, double duration, double rate, double drain) {
    int ep = epoll_create1(0);
    conn_t *cs = calloc(conns, sizeof *cs);
    for (int i = 0; i < conns; i++) {
        cs[i].fd = open_conn(host, port);
        if (cs[i].fd < 0) die("connect");
        cs[i].seq = 0;
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.u32 = i};
        epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev);
    }
    /* Wait until every connection is established (writable) before the clock starts. */
    struct epoll_event events[1024];
    int connected = 0;
    double give_up = now() + 10;
    while (connected < conns && now() < give_up) {
        int n = epoll_wait(ep, events, 1024, 100);
        for (int k = 0; k < n; k++) {
            conn_t *c = &cs[events[k].data.u32];
            if (!c->connected && (events[k].events & EPOLLOUT)) {
                int err = 0; socklen_t len = sizeof err;
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
                if (err) { errno = err; die("connect"); }
                c->connected = 1;
                connected++;
            }
        }
    }
    if (connected < conns) { fprintf(stderr, "only %d of %d connections opened\n", connected, conns); exit(2); }

    while (now() < start) usleep(1000);   /* every process starts on one clock */
    double window_start = start + warmup, window_end = window_start + duration;
    double hard_end = window_end + drain;
    unsigned long scheduled = 0;     /* open loop: messages that became due so far */
    unsigned long dispatched = 0;    /* open loop: due messages handed to a connection */
    unsigned long pick = 0;
    int *idle = malloc(conns * sizeof *idle);
    int idle_count = 0;
    for (int i = 0; i < conns; i++) idle[idle_count++] = i;
    int outstanding = 0;
    double max_backlog_seconds = 0;

    for (;;) {
        double t = now();
        if (t >= hard_end || (t >= window_end && outstanding == 0)) break;
        if (t < window_end) {
            if (rate > 0) {
                unsigned long due_now = (unsigned long)((t - start) * rate);
                if (due_now > scheduled) scheduled = due_now;
                while (dispatched < scheduled && idle_count > 0) {
                    double due = start + dispatched / rate;
                    int i = idle[--idle_count];
                    send_message(&cs[i], first + i, tag, due, due >= window_start && due < window_end, pick++);
                    dispatched++;
                    outstanding++;
                }
                if (dispatched < scheduled) {
                    double behind = t - (start + dispatched / rate);
                    if (behind > max_backlog_seconds) max_backlog_seconds = behind;
                }
            } else {
                while (idle_count > 0) {
                    int i = idle[--idle_count];
                    send_message(&cs[i], first + i, tag, t, t >= window_start, pick++);
                    outstanding++;
                }
            }
        }
        int timeout_ms = 50;
        if (rate > 0 && t < window_end) {
            double next_due = start + (scheduled + 1) / rate - now();
            timeout_ms = next_due <= 0 ? 0 : (int)(next_due * 1000);
            if (timeout_ms > 50) timeout_ms = 50;
        }
        int n = epoll_wait(ep, events, 1024, timeout_ms);
        for (int k = 0; k < n; k++) {
            int i = events[k].data.u32;
            conn_t *c = &cs[i];
            if ((events[k].events & EPOLLOUT) && c->busy && c->out_off < c->out_len) {
                ssize_t w = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
                if (w > 0) c->out_off += w;
            }
            if (!(events[k].events & (EPOLLIN | EPOLLHUP | EPOLLERR))) continue;
            for (;;) {
                ssize_t r = read(c->fd, c->rbuf + c->rlen, RBUF - c->rlen);
                if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
                    /* The server closed: count it and stop using this connection. */
                    failed_conn++;
                    if (c->busy) { c->busy = 0; outstanding--; }
                    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                    close(c->fd);
                    c->fd = -1;
                    break;
                }
                if (r < 0) break;
                c->rlen += r;
                char *endb;
                while ((endb = memmem(c->rbuf, c->rlen, "\x1c\r", 2)) != NULL) {
                    char *sb = memchr(c->rbuf, 0x0b, endb - c->rbuf);
                    const char *ack = sb ? sb + 1 : c->rbuf;
                    size_t ack_len = endb - ack;
                    double done = now();
                    if (c->busy) {
                        int ok = ack_ok(c, ack, ack_len);
                        if (ok == 0) failed_code++;
                        if (ok > 0) {
                            acked_total++;
                            if (acked_file) { fwrite(c->cid, 1, c->cid_len, acked_file); fputc('\n', acked_file); }
                            if (c->in_window) { acked_window++; record_latency((done - c->due) * 1000.0); }
                        }
                        c->busy = 0;
                        outstanding--;
                        idle[idle_count++] = i;
                    }
                    size_t used = endb + 2 - c->rbuf;
                    memmove(c->rbuf, endb + 2, c->rlen - used);
                    c->rlen -= used;
                }
                if (c->rlen == RBUF) c->rlen = 0;   /* garbage without an end block */
            }
        }
    }
    summary_t s = {acked_window, sent_window, acked_total, sent_total, failed_code, failed_echo, failed_conn,
                   rate > 0 ? dispatched : 0, lat_len, outstanding, max_backlog_seconds};
    return s;
}

static void read_all(int fd, void *data, size_t len) {
    char *p = data;
    while (len > 0) {
        ssize_t r = read(fd, p, len);
        if (r <= 0) { if (r < 0 && errno == EINTR) continue; fprintf(stderr, "a driver process died\n"); exit(2); }
        p += r; len -= r;
    }
}

static void write_all(int fd, const void *data, size_t len) {
    const char *p = data;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w <= 0) { if (w < 0 && errno == EINTR) continue; _exit(3); }
        p += w; len -= w;
    }
}

int main(int argc, char **argv) {
    const char *host = "127.0.0.1", *templates_path = NULL, *tag = "L", *acked_path = NULL;
    int port = 0, conns = 1, procs = 1;
    double duration = 5, warmup = 1, rate = 0, drain = 10;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--host")) host = v;
        else if (!strcmp(k, "--port")) port = atoi(v);
        else if (!strcmp(k, "--conns")) conns = atoi(v);
        else if (!strcmp(k, "--procs")) procs = atoi(v);
        else if (!strcmp(k, "--duration")) duration = atof(v);
        else if (!strcmp(k, "--warmup")) warmup = atof(v);
        else if (!strcmp(k, "--rate")) rate = atof(v);
        else if (!strcmp(k, "--drain")) drain = atof(v);
        else if (!strcmp(k, "--tag")) tag = v;
        else if (!strcmp(k, "--templates")) templates_path = v;
        else if (!strcmp(k, "--acked-file")) acked_path = v;
        else { fprintf(stderr, "unknown option %s\n", k); return 2; }
    }
    if (!port || !templates_path || conns < 1 || conns > 10000 || procs < 1 || procs > conns) {
        fprintf(stderr, "usage: mllp_load --port P --conns N --templates FILE [--rate R] [--procs K] ...\n");
        return 2;
    }
    load_templates(templates_path);
    /* Several processes (--procs): each takes a share of the connections and of the rate, and
     * sends its counters and raw latencies back over a pipe; one process is one core at most. */
    double start = now() + 0.3 + 0.002 * conns;
    summary_t total = {0};
    int fds[64];
    if (procs > 64) procs = 64;
    for (int p = 0; p < procs; p++) {
        int share = conns / procs + (p < conns % procs), first = p * (conns / procs) + (p < conns % procs ? p : conns % procs);
        if (procs == 1) {
            if (acked_path && !(acked_file = fopen(acked_path, "w"))) die("acked-file");
            total = run_load(host, port, share, first, tag, start, warmup, duration, rate, drain);
            if (acked_file) fclose(acked_file);
            break;
        }
        int pipefd[2];
        if (pipe(pipefd)) die("pipe");
        pid_t pid = fork();
        if (pid < 0) die("fork");
        if (pid == 0) {
            close(pipefd[0]);
            if (acked_path) {
                char path[4096];
                snprintf(path, sizeof path, "%s.%d", acked_path, p);
                if (!(acked_file = fopen(path, "w"))) die("acked-file");
            }
            summary_t s = run_load(host, port, share, first, tag, start, warmup, duration, rate / procs, drain);
            if (acked_file) fclose(acked_file);
            write_all(pipefd[1], &s, sizeof s);
            write_all(pipefd[1], latencies, s.lat_len * sizeof *latencies);
            _exit(0);
        }
        close(pipefd[1]);
        fds[p] = pipefd[0];
    }
    if (procs > 1) {
        for (int p = 0; p < procs; p++) {
            summary_t s;
            read_all(fds[p], &s, sizeof s);
            size_t offset = lat_len;
            lat_len += s.lat_len;
            if (lat_len > lat_cap) { lat_cap = lat_len; latencies = realloc(latencies, lat_cap * sizeof *latencies); }
            read_all(fds[p], latencies + offset, s.lat_len * sizeof *latencies);
            close(fds[p]);
            total.acked_window += s.acked_window; total.sent_window += s.sent_window;
            total.acked_total += s.acked_total; total.sent_total += s.sent_total;
            total.failed_code += s.failed_code; total.failed_echo += s.failed_echo; total.failed_conn += s.failed_conn;
            total.dispatched += s.dispatched; total.outstanding += s.outstanding;
            if (s.max_backlog_seconds > total.max_backlog_seconds) total.max_backlog_seconds = s.max_backlog_seconds;
        }
        while (wait(NULL) > 0) {}
    }
    qsort(latencies, lat_len, sizeof *latencies, cmp_double);
    long expected = rate > 0 ? (long)((duration + warmup) * rate) : 0;
    long unsent = expected > (long)total.dispatched ? expected - (long)total.dispatched : 0;
    printf("{\"mode\": \"%s\", \"connections\": %d, \"rate\": %.1f, \"duration\": %.3f, "
           "\"sent\": %lu, \"acked\": %lu, \"sent_total\": %lu, \"acked_total\": %lu, "
           "\"msg_per_s\": %.1f, \"p50_ms\": %.3f, \"p95_ms\": %.3f, \"p99_ms\": %.3f, \"max_ms\": %.3f, "
           "\"failed_code\": %lu, \"failed_echo\": %lu, \"failed_connection\": %lu, \"unanswered\": %d, "
           "\"unsent\": %ld, \"max_driver_backlog_s\": %.3f}\n",
           rate > 0 ? "open" : "closed", conns, rate, duration, total.sent_window, total.acked_window,
           total.sent_total, total.acked_total, total.acked_window / duration, percentile(0.50),
           percentile(0.95), percentile(0.99), lat_len ? latencies[lat_len - 1] : -1.0, total.failed_code,
           total.failed_echo, total.failed_conn, (int)total.outstanding, unsent, total.max_backlog_seconds);
    return 0;
}
