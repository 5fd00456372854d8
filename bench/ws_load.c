/* SPDX-License-Identifier: MIT */
/* ws_load.c — WebSocket load generator for bench/run.sh: CONNS connections on one thread (libuv),
 * each keeping WINDOW copies of one message in flight (a new copy goes out for every answer),
 * answers counted frame by frame for SECONDS; prints messages per second. The message is masked
 * once up front and sent from one shared buffer, so the client costs little per message and the
 * same for every server it is pointed at (a Node client would be the bottleneck long before
 * jrpcd is). The first answer must contain EXPECT exactly COUNT times: a server that answers
 * wrongly must not look fast.
 *
 *   ws_load HOST PORT PATH MESSAGE_FILE CONNS WINDOW SECONDS EXPECT COUNT */
#define _GNU_SOURCE /* memmem */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define MAX_CONNS 1024

typedef struct conn {
    uv_tcp_t tcp;
    uv_connect_t connect;
    int upgraded;    /* the 101 arrived */
    char head[1024]; /* the 101 answer so far */
    size_t head_len;
    uint8_t hdr[10];  /* the frame header being read */
    size_t hdr_len;   /* bytes of it so far */
    size_t hdr_need;  /* bytes it has (2 until the length byte is seen) */
    uint64_t payload; /* payload bytes of the current frame still to skip */
    int first;        /* this frame is the first answer: keep it for the check */
} conn_t;

static uv_loop_t *loop;
static conn_t conns[MAX_CONNS];
static int nconns, window, seconds, expect_count;
static const char *expect;
static uint8_t *frames; /* WINDOW copies of the masked message frame */
static size_t frame_len;
static uint64_t answers, answers_at_start;
static uint64_t t_start;
static int running, upgraded, failed;
static char first_answer[1 << 16];
static size_t first_len;
static int first_taken, first_done;
static uv_timer_t timer;
static char request[512];
static size_t request_len;

static void fail(const char *what)
{
    fprintf(stderr, "ws_load: %s\n", what);
    failed = 1;
    uv_stop(loop);
}

static void on_written(uv_write_t *req, int status)
{
    free(req);
    if (status < 0 && running)
        fail(uv_strerror(status));
}

/* Sends k copies of the message (k <= window) from the shared buffer. */
static void send_copies(conn_t *c, size_t k)
{
    uv_buf_t b = uv_buf_init((char *)frames, (unsigned)(k * frame_len));
    int w = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (w == (int)b.len)
        return;
    if (w < 0 && w != UV_EAGAIN) {
        fail(uv_strerror(w));
        return;
    }
    if (w > 0) {
        b.base += w;
        b.len -= (size_t)w;
    }
    uv_write_t *req = malloc(sizeof(*req));
    if (req == NULL || uv_write(req, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0)
        fail("write");
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    static char rbuf[256 * 1024];
    (void)h;
    (void)hint;
    buf->base = rbuf;
    buf->len = sizeof rbuf;
}

static void check_first(void)
{
    first_done = 1;
    size_t n = 0, el = strlen(expect);
    for (size_t i = 0; i + el <= first_len; i++)
        if (memcmp(first_answer + i, expect, el) == 0)
            n++;
    if ((int)n != expect_count) {
        fprintf(stderr, "ws_load: first answer has \"%s\" %zu times, not %d: %.*s\n", expect, n,
                expect_count, (int)(first_len < 300 ? first_len : 300), first_answer);
        fail("wrong answer");
    }
}

/* Frames in p[0..n): counts complete ones and returns how many. */
static size_t read_frames(conn_t *c, const uint8_t *p, size_t n)
{
    size_t done = 0;
    while (n > 0) {
        if (c->payload == 0 && c->hdr_need == 0)
            c->hdr_need = 2;
        if (c->hdr_need > 0) {
            while (n > 0 && c->hdr_len < c->hdr_need) {
                c->hdr[c->hdr_len++] = *p++;
                n--;
                if (c->hdr_len == 2) {
                    uint8_t l = c->hdr[1] & 0x7f;
                    c->hdr_need = l == 126 ? 4 : l == 127 ? 10 : 2;
                }
            }
            if (c->hdr_len < c->hdr_need)
                break;
            uint64_t len = c->hdr[1] & 0x7f;
            if (len == 126)
                len = (uint64_t)c->hdr[2] << 8 | c->hdr[3];
            else if (len == 127)
                for (int i = 0; i < 8; i++)
                    len = (i ? len << 8 : 0) | c->hdr[2 + i];
            uint8_t op = c->hdr[0] & 0x0f;
            if (op != 1 && op != 2) {
                fail("a frame other than an answer");
                return done;
            }
            c->hdr_len = c->hdr_need = 0;
            c->payload = len;
            c->first = !first_taken;
            first_taken = 1;
            if (len == 0) {
                done++;
                continue;
            }
        }
        size_t take = c->payload < n ? (size_t)c->payload : n;
        if (c->first && first_len + take <= sizeof first_answer) {
            memcpy(first_answer + first_len, p, take);
            first_len += take;
        }
        p += take;
        n -= take;
        c->payload -= take;
        if (c->payload == 0) {
            done++;
            if (c->first) {
                c->first = 0;
                check_first();
            }
        }
    }
    return done;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    conn_t *c = s->data;
    if (nread < 0) {
        if (running)
            fail("the server closed a connection");
        return;
    }
    const uint8_t *p = (const uint8_t *)buf->base;
    size_t n = (size_t)nread;
    if (!c->upgraded) {
        size_t take = n < sizeof c->head - c->head_len ? n : sizeof c->head - c->head_len;
        memcpy(c->head + c->head_len, p, take);
        c->head_len += take;
        char *end = memmem(c->head, c->head_len, "\r\n\r\n", 4);
        if (end == NULL)
            return;
        if (memcmp(c->head, "HTTP/1.1 101", 12) != 0) {
            fail("no 101");
            return;
        }
        size_t used = (size_t)(end + 4 - c->head) - (c->head_len - take);
        p += used;
        n -= used;
        c->upgraded = 1;
        send_copies(c, (size_t)window);
        if (++upgraded == nconns) {
            t_start = uv_hrtime();
            answers_at_start = answers;
            running = 1;
        }
    }
    size_t k = read_frames(c, p, n);
    answers += k;
    if (k > 0 && !failed)
        send_copies(c, k);
}

static void on_connect(uv_connect_t *req, int status)
{
    conn_t *c = req->data;
    if (status < 0) {
        fail(uv_strerror(status));
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    uv_buf_t b = uv_buf_init(request, (unsigned)request_len);
    uv_write_t *w = malloc(sizeof(*w));
    if (w == NULL || uv_write(w, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0 ||
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0)
        fail("start");
}

static void on_tick(uv_timer_t *t)
{
    (void)t;
    if (!running)
        return; /* connections still upgrading */
    if ((uv_hrtime() - t_start) / 1000000 >= (uint64_t)seconds * 1000) {
        running = 0;
        uv_stop(loop);
    }
}

int main(int argc, char **argv)
{
    if (argc != 10) {
        fprintf(stderr, "usage: ws_load HOST PORT PATH MESSAGE_FILE CONNS WINDOW SECONDS EXPECT "
                        "COUNT\n");
        return 2;
    }
    const char *host = argv[1], *path = argv[3];
    int port = atoi(argv[2]);
    nconns = atoi(argv[5]);
    window = atoi(argv[6]);
    seconds = atoi(argv[7]);
    expect = argv[8];
    expect_count = atoi(argv[9]);
    if (nconns < 1 || nconns > MAX_CONNS || window < 1 || seconds < 1)
        return 2;

    FILE *f = fopen(argv[4], "rb");
    if (f == NULL) {
        perror(argv[4]);
        return 2;
    }
    static uint8_t msg[1 << 20];
    size_t len = fread(msg, 1, sizeof msg, f);
    fclose(f);

    /* One masked text frame, then WINDOW copies of it back to back. */
    uint8_t one[16 + sizeof msg];
    size_t h = 0;
    one[h++] = 0x81; /* text: what JSON-RPC clients send */
    if (len < 126) {
        one[h++] = (uint8_t)(0x80 | len);
    } else {
        one[h++] = 0x80 | 126;
        one[h++] = (uint8_t)(len >> 8);
        one[h++] = (uint8_t)len;
    }
    static const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
    memcpy(one + h, key, 4);
    h += 4;
    for (size_t i = 0; i < len; i++)
        one[h + i] = msg[i] ^ key[i & 3];
    frame_len = h + len;
    frames = malloc(frame_len * (size_t)window);
    for (int i = 0; i < window; i++)
        memcpy(frames + (size_t)i * frame_len, one, frame_len);

    request_len = (size_t)snprintf(request, sizeof request,
                                   "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                                   "Connection: Upgrade\r\nSec-WebSocket-Key: "
                                   "dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                                   path, host, port);
    loop = uv_default_loop();
    struct sockaddr_in addr;
    uv_ip4_addr(host, port, &addr);
    for (int i = 0; i < nconns; i++) {
        conn_t *c = &conns[i];
        uv_tcp_init(loop, &c->tcp);
        c->tcp.data = c;
        c->connect.data = c;
        uv_tcp_connect(&c->connect, &c->tcp, (const struct sockaddr *)&addr, on_connect);
    }
    uv_timer_init(loop, &timer);
    uv_timer_start(&timer, on_tick, 50, 50);
    uv_run(loop, UV_RUN_DEFAULT);
    if (failed || !first_done) {
        if (!failed)
            fprintf(stderr, "ws_load: no answer at all\n");
        return 1;
    }
    double secs = (double)(uv_hrtime() - t_start) / 1e9;
    printf("%.0f\n", (double)(answers - answers_at_start) / secs);
    return 0;
}
