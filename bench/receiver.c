/* A minimal HTTP/1.1 webhook receiver for the keyhook benchmark.
 *
 * One thread per connection, keep-alive, reads the request line and headers, then exactly
 * Content-Length bytes of body, and answers "200 OK" with the body "ok". Nothing is printed
 * per request, so it is never the bottleneck.
 *
 *   receiver [--port N] [--delay-ms N] [--split 1] [--log-ids FILE]
 *
 * Prints "PORT <n>" on stdout once listening (port 0 picks a free one), then serves until
 * killed. With --delay-ms each request is answered that many milliseconds after it arrived
 * (each connection has its own thread, so connections are delayed in parallel).
 * With --split 1 each answer leaves in three writes, the status line, the header fields and the
 * body, on a TCP_NODELAY socket (so three segments), as many real servers answer.
 * `GET /__count` answers the number of other requests answered so far (the benchmark reads it
 * before and after a run to count deliveries independently of keyhook's own summary).
 * `GET /__first` answers the CLOCK_MONOTONIC time (ns) at which the first other request since
 * the previous `GET /__first` had arrived in full (0 if none), and starts over: the benchmark
 * times a run's record phase as "first request arrived" minus "process started".
 * With --log-ids each answered POST appends its `X-Keyhook-Delivery` header's value and a
 * newline to FILE (one write() on an O_APPEND descriptor, so lines from parallel connections
 * never interleave): the benchmark checks from it that no delivery id arrived twice.
 * On SIGTERM/SIGINT it prints "REQUESTS <n>" (requests answered) on stderr and exits.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int delay_ms = 0;
static int split = 0;
static atomic_long served = 0;
static atomic_llong first_ns = 0;
static int ids_fd = -1;

static const char RESPONSE[] =
    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok";
/* The same answer in its three pieces, for --split. */
static const char STATUS_LINE[] = "HTTP/1.1 200 OK\r\n";
static const char HEADER_FIELDS[] = "Content-Length: 2\r\nContent-Type: text/plain\r\n\r\n";
static const char BODY[] = "ok";

static long long monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int write_all(int fd, const char *data, size_t len) {
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Appends the X-Keyhook-Delivery value of a header block and a newline to ids_fd. */
static void log_id(const char *headers, size_t len) {
    static const char NAME[] = "x-keyhook-delivery:";
    const char *p = headers, *end = headers + len;
    while (p < end) {
        const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
        if (!eol) eol = end;
        size_t line = (size_t)(eol - p);
        if (line > sizeof NAME - 1 && strncasecmp(p, NAME, sizeof NAME - 1) == 0) {
            const char *value = p + sizeof NAME - 1;
            while (value < eol && *value == ' ') value++;
            char out[256];
            size_t n = (size_t)(eol - value);
            if (n > sizeof out - 1) n = sizeof out - 1;
            memcpy(out, value, n);
            out[n] = '\n';
            (void)!write(ids_fd, out, n + 1);
            return;
        }
        p = eol + 2;
    }
    (void)!write(ids_fd, "-\n", 2); /* a POST without the header */
}

/* Content-Length of a header block (0 when absent); -2 for chunked (unsupported). */
static long content_length(const char *headers, size_t len) {
    const char *p = headers, *end = headers + len;
    while (p < end) {
        const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
        if (!eol) eol = end;
        size_t line = (size_t)(eol - p);
        if (line > 15 && strncasecmp(p, "content-length:", 15) == 0) {
            return strtol(p + 15, NULL, 10);
        }
        if (line > 18 && strncasecmp(p, "transfer-encoding:", 18) == 0) return -2;
        p = eol + 2;
    }
    return 0;
}

static void *serve(void *arg) {
    int fd = (int)(long)arg;
    size_t cap = 1 << 16, have = 0;
    char *buf = malloc(cap);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    for (;;) {
        /* Find the end of the headers, reading as needed. */
        char *hend;
        while (!(hend = have >= 4 ? memmem(buf, have, "\r\n\r\n", 4) : NULL)) {
            if (have == cap) {
                cap *= 2;
                buf = realloc(buf, cap);
            }
            ssize_t n = read(fd, buf + have, cap - have);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) goto done;
            have += (size_t)n;
        }
        size_t head = (size_t)(hend - buf) + 4;
        long body = content_length(buf, head);
        if (body < 0) goto done;
        size_t total = head + (size_t)body;
        while (have < total) {
            if (total > cap) {
                while (cap < total) cap *= 2;
                buf = realloc(buf, cap);
            }
            ssize_t n = read(fd, buf + have, cap - have);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) goto done;
            have += (size_t)n;
        }
        int count = have >= 12 && memcmp(buf, "GET /__count", 12) == 0;
        int first = have >= 12 && memcmp(buf, "GET /__first", 12) == 0;
        if (count || first) {
            char answer[128], number[32];
            int digits = count ? snprintf(number, sizeof number, "%ld", (long)atomic_load(&served))
                               : snprintf(number, sizeof number, "%lld",
                                          (long long)atomic_exchange(&first_ns, 0));
            int n = snprintf(answer, sizeof answer,
                             "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", digits, number);
            if (write_all(fd, answer, (size_t)n) != 0) goto done;
            memmove(buf, buf + total, have - total);
            have -= total;
            continue;
        }
        if (atomic_load_explicit(&first_ns, memory_order_relaxed) == 0) {
            long long expected = 0;
            atomic_compare_exchange_strong(&first_ns, &expected, monotonic_ns());
        }
        if (delay_ms > 0) {
            struct timespec ts = {delay_ms / 1000, (long)(delay_ms % 1000) * 1000000L};
            while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
            }
        }
        if (split) {
            if (write_all(fd, STATUS_LINE, sizeof STATUS_LINE - 1) != 0 ||
                write_all(fd, HEADER_FIELDS, sizeof HEADER_FIELDS - 1) != 0 ||
                write_all(fd, BODY, sizeof BODY - 1) != 0)
                goto done;
        } else if (write_all(fd, RESPONSE, sizeof RESPONSE - 1) != 0) {
            goto done;
        }
        if (ids_fd >= 0) log_id(buf, head);
        atomic_fetch_add(&served, 1);
        memmove(buf, buf + total, have - total);
        have -= total;
    }
done:
    close(fd);
    free(buf);
    return NULL;
}

static void on_stop(int sig) {
    char line[64];
    int n = snprintf(line, sizeof line, "REQUESTS %ld\n", (long)atomic_load(&served));
    if (n > 0) (void)!write(2, line, (size_t)n);
    (void)sig;
    _exit(0);
}

int main(int argc, char **argv) {
    int port = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
            port = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--delay-ms") == 0 && i + 1 < argc) {
            delay_ms = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--split") == 0 && i + 1 < argc) {
            split = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--log-ids") == 0 && i + 1 < argc) {
            ids_fd = open(argv[++i], O_WRONLY | O_CREAT | O_APPEND | O_TRUNC, 0644);
            if (ids_fd < 0) {
                perror("--log-ids");
                return 2;
            }
        } else {
            fprintf(stderr, "usage: %s [--port N] [--delay-ms N] [--split 1] [--log-ids FILE]\n", argv[0]);
            return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_stop);
    signal(SIGINT, on_stop);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons((unsigned short)port);
    if (bind(s, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(s, 512) != 0) {
        perror("bind/listen");
        return 1;
    }
    socklen_t len = sizeof addr;
    getsockname(s, (struct sockaddr *)&addr, &len);
    printf("PORT %d\n", ntohs(addr.sin_port));
    fflush(stdout);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    for (;;) {
        int fd = accept(s, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR) continue;
            perror("accept");
            continue;
        }
        pthread_t thread;
        if (pthread_create(&thread, &attr, serve, (void *)(long)fd) != 0) close(fd);
    }
}
