/* The floor: the fastest a sequential webhook sender can go against a receiver.
 *
 *   floor --port N [--requests N] [--body-bytes N] [--split 1] [--connections N]
 *
 * POSTs a fixed body (default 900 bytes) N times over ONE keep-alive connection to
 * 127.0.0.1:port, one request at a time (each answer is read before the next request is
 * written), and nothing else: no query, no JSON, no signing, no log. Prints
 * "REQUESTS <n> SECONDS <s> RPS <r>". With `--split 1` each request is written in two calls,
 * headers then body (as some HTTP clients do), to show what the second write costs.
 * With `--connections N` (default 1) N threads share the requests, each over a keep-alive
 * connection of its own, one request at a time on each: the floor for `--concurrency N`, the
 * most N connections get out of this machine's CPUs when a sender does nothing else.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* What every connection sends, set once by main. */
static int port, split;
static const char *req;
static size_t req_len;
static int head_len;
static pthread_barrier_t ready;

struct conn {
    pthread_t thread;
    long requests;
    int failed;
};

/* One connection: its share of the requests, one at a time. */
static void *one_connection(void *arg) {
    struct conn *c = arg;
    int s = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons((unsigned short)port);
    if (connect(s, (struct sockaddr *)&addr, sizeof addr) != 0) {
        perror("connect");
        c->failed = 1;
        pthread_barrier_wait(&ready);
        return NULL;
    }
    char buf[4096];
    pthread_barrier_wait(&ready);
    for (long i = 0; i < c->requests; i++) {
        size_t off = 0;
        while (off < req_len) {
            /* With --split, the first write stops at the end of the headers. */
            size_t end = (split && off < (size_t)head_len) ? (size_t)head_len : req_len;
            ssize_t n = write(s, req + off, end - off);
            if (n < 0) {
                if (errno == EINTR) continue;
                perror("write");
                c->failed = 1;
                return NULL;
            }
            off += (size_t)n;
        }
        /* Read one response: headers, then Content-Length bytes. */
        size_t have = 0;
        char *hend = NULL;
        while (!hend) {
            ssize_t n = read(s, buf + have, sizeof buf - 1 - have);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) {
                fprintf(stderr, "floor: connection closed after %ld requests\n", i);
                c->failed = 1;
                return NULL;
            }
            have += (size_t)n;
            buf[have] = 0;
            hend = strstr(buf, "\r\n\r\n");
        }
        if (strncmp(buf, "HTTP/1.1 2", 10) != 0) {
            fprintf(stderr, "floor: unexpected answer: %.40s\n", buf);
            c->failed = 1;
            return NULL;
        }
        long clen = 0;
        char *cl = strcasestr(buf, "\r\ncontent-length:");
        if (cl) clen = strtol(cl + 17, NULL, 10);
        size_t total = (size_t)(hend - buf) + 4 + (size_t)clen;
        while (have < total) {
            ssize_t n = read(s, buf + have, sizeof buf - 1 - have);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) {
                c->failed = 1;
                return NULL;
            }
            have += (size_t)n;
        }
    }
    close(s);
    return NULL;
}

int main(int argc, char **argv) {
    long requests = 10000, body_bytes = 900, connections = 1;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--port") == 0) port = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--requests") == 0) requests = atol(argv[i + 1]);
        else if (strcmp(argv[i], "--body-bytes") == 0) body_bytes = atol(argv[i + 1]);
        else if (strcmp(argv[i], "--split") == 0) split = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--connections") == 0) connections = atol(argv[i + 1]);
        else {
            fprintf(stderr,
                    "usage: %s --port N [--requests N] [--body-bytes N] [--split 1]"
                    " [--connections N]\n",
                    argv[0]);
            return 2;
        }
    }
    if (port <= 0) {
        fprintf(stderr, "floor: --port is required\n");
        return 2;
    }
    if (connections < 1 || connections > 1024) {
        fprintf(stderr, "floor: --connections must be 1 to 1024\n");
        return 2;
    }
    char *body = malloc((size_t)body_bytes + 1);
    memset(body, 'x', (size_t)body_bytes);
    if (body_bytes >= 2) {
        body[0] = '{';
        body[body_bytes - 1] = '}';
    }
    /* Headers like keyhook's: signature and delivery id of the real lengths. */
    char head[1024];
    head_len = snprintf(head, sizeof head,
                        "POST /hook HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                        "Content-Type: application/json\r\nUser-Agent: floor/1\r\n"
                        "X-QLM-Signature: %064d\r\nX-Keyhook-Delivery: msg_%032d\r\n"
                        "Content-Length: %ld\r\n\r\n",
                        port, 0, 0, body_bytes);
    req_len = (size_t)head_len + (size_t)body_bytes;
    char *request = malloc(req_len);
    memcpy(request, head, (size_t)head_len);
    memcpy(request + head_len, body, (size_t)body_bytes);
    req = request;

    struct conn *conns = calloc((size_t)connections, sizeof *conns);
    pthread_barrier_init(&ready, NULL, (unsigned)connections + 1);
    for (long i = 0; i < connections; i++) {
        conns[i].requests = requests / connections + (i < requests % connections ? 1 : 0);
        int error = pthread_create(&conns[i].thread, NULL, one_connection, &conns[i]);
        if (error != 0) {
            /* The barrier counts every connection: without this one it would wait forever. */
            fprintf(stderr, "floor: thread %ld of %ld: %s\n", i + 1, connections, strerror(error));
            return 1;
        }
    }
    /* The clock starts once every connection is open. */
    pthread_barrier_wait(&ready);
    double start = now();
    int failed = 0;
    for (long i = 0; i < connections; i++) {
        pthread_join(conns[i].thread, NULL);
        failed |= conns[i].failed;
    }
    if (failed) return 1;
    double seconds = now() - start;
    printf("REQUESTS %ld SECONDS %.6f RPS %.1f\n", requests, seconds, (double)requests / seconds);
    return 0;
}
