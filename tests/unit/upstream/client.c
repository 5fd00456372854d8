/* SPDX-License-Identifier: MIT */
/* Unit tests of how the gateway's client (src/upstream/client.c) takes in an upstream's answer:
 * curl's write callback collects it piece by piece up to max_answer (the server's max_response),
 * and a transfer cut at that size fails every call of the chunk with the too_large fault, without
 * a retry and without marking the URL down. An answer split at every byte, each piece right
 * before a PROT_NONE page, maps to the same replies as the whole. Also: the max_queue bound,
 * calls nobody waits for not retried, and the loop's stop answering every call the client holds
 * (pending, waiting, in flight to a server on this loop that never answers) and closing every
 * handle.
 *
 * client.c and answer.c are included; the engine's calls and the failover bookkeeping of
 * upstream.c are stand-ins below. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four headers it needs */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "upstream/answer.c"
#include "upstream/cache.c"
#include "upstream/client.c"
#include "upstream/curl.c"
#include "upstream/h1.c"
#include "upstream/h1answer.c"
#include "upstream/hedge.c"
#include "upstream/share.c"

/* ---- Stand-ins ------------------------------------------------------------------------------- */

struct jrpc_call {
    int cancelled; /* what jrpc_call_cancelled answers */
    unsigned replies;
    int is_error;
    int code;
    char *text;         /* the result, or the error's message */
    char *data;         /* the error's data_json */
    const char *method; /* NULL: eth_chainId */
    int alone;          /* sent alone by its client (not in a batch) */
};

static unsigned marked_down, marked_up;

JRPC_EXTERN jrpc_str_t jrpc_call_method(const jrpc_call_t *call)
{
    const char *m = call->method ? call->method : "eth_chainId";
    return (jrpc_str_t){m, strlen(m)};
}

/* Calls here have ids; the stand-in configs turn dedup and the cache off (share.c). */
JRPC_EXTERN jrpc_json_t jrpc_call_id(const jrpc_call_t *call)
{
    (void)call;
    return (jrpc_json_t){"1", 1};
}

JRPC_EXTERN int jrpc_call_no_cache(const jrpc_call_t *call)
{
    (void)call;
    return 0;
}

#include "kv_stub.h"

uint64_t jrpc__upstream_now_ms(void)
{
    return uv_hrtime() / 1000000u;
}

JRPC_EXTERN int jrpc_call_cancelled(const jrpc_call_t *call)
{
    return call->cancelled;
}

JRPC_EXTERN jrpc_json_t jrpc_call_params(const jrpc_call_t *call)
{
    (void)call;
    return (jrpc_json_t){NULL, 0};
}

JRPC_EXTERN int jrpc_call_in_batch(const jrpc_call_t *call)
{
    return !call->alone;
}

JRPC_EXTERN uint64_t jrpc_call_request(const jrpc_call_t *call)
{
    (void)call;
    return 1;
}

/* No request objects: chunks carry the gateway's ids (answer.c's pass-through is tested there). */
JRPC_EXTERN jrpc_json_t jrpc_call_raw(const jrpc_call_t *call)
{
    (void)call;
    return (jrpc_json_t){NULL, 0};
}

JRPC_EXTERN int jrpc_call_limit_refused(jrpc_call_t *call, const char *limit)
{
    (void)call;
    assert_string_equal(limit, "upstream_queue");
    return 0;
}

static uv_loop_t *test_loop; /* the loop calls belong to, in the test that sends */
static int may_pick;         /* an attempt may start */

JRPC_EXTERN void *jrpc_call_loop(const jrpc_call_t *call)
{
    (void)call;
    if (test_loop == NULL)
        fail_msg("the test sends nothing");
    return test_loop;
}

JRPC_EXTERN void jrpc_reply_ref(jrpc_call_t *call, const char *json, size_t len,
                                jrpc_release_cb release, void *data)
{
    jrpc_reply_raw(call, json, len); /* copied: the text can go at once */
    release(data);
}

JRPC_EXTERN unsigned jrpc_call_loop_index(const jrpc_call_t *call)
{
    (void)call;
    return 0;
}

static char *copy_of(const char *p, size_t n)
{
    char *s = malloc(n + 1);
    assert_non_null(s);
    memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

JRPC_EXTERN void jrpc_reply_raw(jrpc_call_t *call, const char *json, size_t len)
{
    assert_int_equal(call->replies++, 0);
    call->text = copy_of(json, len);
}

JRPC_EXTERN void jrpc_reply_error_raw(jrpc_call_t *call, int code, const char *error_json,
                                      size_t len)
{
    assert_int_equal(call->replies++, 0);
    call->is_error = 1;
    call->code = code;
    call->text = copy_of(error_json, len);
}

static jrpc_call_t *stop_on_reply; /* its reply finishes the loop's last request: the loop stops */
static void stop_loop(void);

JRPC_EXTERN void jrpc_reply_error(jrpc_call_t *call, int code, const char *message,
                                  const char *data_json)
{
    assert_int_equal(call->replies++, 0);
    call->is_error = 1;
    call->code = code;
    call->text = copy_of(message, strlen(message));
    call->data = data_json ? copy_of(data_json, strlen(data_json)) : NULL;
    if (call == stop_on_reply)
        stop_loop();
}

JRPC_EXTERN const char *jrpc_upstream_fault_name(int fault)
{
    static const char *const names[] = {
#define FAULT_KEY(name, key, msg) key,
        JRPC_UPSTREAM_FAULT_MAP(FAULT_KEY)
#undef FAULT_KEY
    };
    return fault >= 0 && fault < JRPC_UPSTREAM_FAULT_COUNT ? names[fault] : "unknown";
}

unsigned jrpc__upstream_pick(jrpc__upctx_t *c, uint32_t tried)
{
    (void)c;
    (void)tried;
    if (!may_pick)
        fail_msg("no attempt may start here (too_large, or nobody waits for the calls)");
    return 0;
}

void jrpc__upstream_mark_down(jrpc__upctx_t *c, unsigned ep, int fault, const char *detail)
{
    (void)c;
    (void)ep;
    (void)fault;
    (void)detail;
    marked_down++;
}

void jrpc__upstream_mark_up(jrpc__upctx_t *c, unsigned ep)
{
    (void)c;
    (void)ep;
    marked_up++;
}

/* Health probes (probe.c) are not part of these tests: no URL is ever probed down. */
int jrpc__probe_down(const jrpc__endpoint_t *e)
{
    (void)e;
    return 0;
}

void jrpc__probe_loop_start(jrpc_upstream_t *u, uv_loop_t *l)
{
    (void)u;
    (void)l;
}

void jrpc__probe_loop_stop(jrpc_upstream_t *u)
{
    (void)u;
}

void jrpc__probe_done(jrpc__chunk_t *ch, int ok, long status)
{
    (void)ch;
    (void)ok;
    (void)status;
    fail_msg("no probe is sent here");
}

/* ---- A chunk --------------------------------------------------------------------------------- */

#define NCALLS 3

static jrpc_upstream_t up;
static jrpc__upconf_t conf;  /* the one version of the settings */
static jrpc__endpoint_t ep0; /* its one URL */
static jrpc__upctx_t ctx;

const jrpc__upconf_t *jrpc__upstream_conf_get(jrpc_upstream_t *u)
{
    (void)u;
    return &conf;
}

void jrpc__upconf_unref(const jrpc__upconf_t *c)
{
    assert_ptr_equal(c, &conf);
}
static jrpc_call_t calls[NCALLS];

static void calls_reset(void)
{
    for (size_t i = 0; i < NCALLS; i++) {
        free(calls[i].text);
        free(calls[i].data);
    }
    memset(calls, 0, sizeof calls);
}

static int setup(void **state)
{
    (void)state;
    test_loop = NULL;
    may_pick = 0;
    stop_on_reply = NULL;
    memset(&up, 0, sizeof up);
    memset(&conf, 0, sizeof conf);
    memset(&ep0, 0, sizeof ep0);
    memset(&ctx, 0, sizeof ctx);
    up.name = "node";
    assert_int_equal(uv_mutex_init(&up.lock), 0);
    conf.urls[0].ep = &ep0;
    conf.neps = 1;
    conf.retries = 5; /* a retry, if one were tried, would reach jrpc__upstream_pick */
    ctx.up = &up;
    ctx.conf = &conf;
    ctx.next_id = 1;
    marked_down = marked_up = 0;
    calls_reset();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    uv_mutex_destroy(&up.lock);
    calls_reset();
    return 0;
}

static jrpc__chunk_t *chunk(size_t max_answer)
{
    conf.max_answer = max_answer;
    ctx.next_id = 1;
    jrpc_call_t *ptrs[NCALLS] = {&calls[0], &calls[1], &calls[2]};
    jrpc__chunk_t *ch = jrpc__chunk_new(&ctx, ptrs, NCALLS, 1, 0);
    assert_non_null(ch);
    ch->attempts = 1;
    return ch;
}

/* n bytes of p copied to the very end of a readable mapping followed by a PROT_NONE page. */
typedef struct {
    char *map;
    size_t map_len;
    char *p;
} guard_t;

static guard_t guard(const char *p, size_t n)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t pages = (n + page - 1) / page + 1;
    guard_t g;
    g.map_len = (pages + 1) * page;
    g.map = mmap(NULL, g.map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(g.map != MAP_FAILED);
    assert_int_equal(mprotect(g.map + pages * page, page, PROT_NONE), 0);
    g.p = g.map + pages * page - n;
    if (n != 0)
        memcpy(g.p, p, n);
    return g;
}

/* Hands p[0..n) to the write callback as curl would (size 1, nmemb n), from guarded memory. */
static size_t feed(jrpc__chunk_t *ch, const char *p, size_t n)
{
    guard_t g = guard(p, n);
    size_t got = on_body(g.p, 1, n, ch);
    munmap(g.map, g.map_len);
    return got;
}

static const char answer_text[] = "[{\"jsonrpc\":\"2.0\",\"id\":3,\"result\":\"0x3\"},"
                                  "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":[1,{\"a\":\"\\\"\"}]},"
                                  "{\"jsonrpc\":\"2.0\",\"id\":2,\"error\":{\"code\":-32000,"
                                  "\"message\":\"header not found\"}}]";

static void expect_answered(void)
{
    for (size_t i = 0; i < NCALLS; i++)
        assert_int_equal(calls[i].replies, 1);
    assert_string_equal(calls[0].text, "[1,{\"a\":\"\\\"\"}]");
    assert_int_equal(calls[1].is_error, 1);
    assert_int_equal(calls[1].code, -32000);
    assert_string_equal(calls[1].text, "{\"code\":-32000,\"message\":\"header not found\"}");
    assert_string_equal(calls[2].text, "\"0x3\"");
}

/* ---- Tests ----------------------------------------------------------------------------------- */

/* The answer split in two at every byte gives the same replies as in one piece. */
static void test_split_everywhere(void **state)
{
    (void)state;
    size_t len = sizeof answer_text - 1;
    for (size_t cut = 0; cut <= len; cut++) {
        calls_reset();
        jrpc__chunk_t *ch = chunk(len); /* exactly the cap: still taken */
        assert_int_equal(feed(ch, answer_text, cut), cut);
        assert_int_equal(feed(ch, answer_text + cut, len - cut), len - cut);
        assert_int_equal(ch->too_large, 0);
        assert_int_equal(ch->answer.len, len);
        assert_memory_equal(ch->answer.ptr, answer_text, len);
        assert_int_equal(jrpc__chunk_answer(ch, 200), -1);
        expect_answered();
        jrpc__chunk_free(ch);
    }
    /* And in pieces of every size from 1 byte, with size and nmemb swapped. */
    for (size_t step = 1; step <= 16; step++) {
        calls_reset();
        jrpc__chunk_t *ch = chunk(1u << 20);
        for (size_t off = 0; off < len; off += step) {
            size_t n = len - off < step ? len - off : step;
            guard_t g = guard(answer_text + off, n);
            assert_int_equal(on_body(g.p, n, 1, ch), n);
            munmap(g.map, g.map_len);
        }
        assert_int_equal(jrpc__chunk_answer(ch, 200), -1);
        expect_answered();
        jrpc__chunk_free(ch);
    }
}

/* One byte past max_answer, wherever the pieces end, stops the transfer and keeps no more. */
static void test_cap(void **state)
{
    (void)state;
    size_t len = sizeof answer_text - 1;
    for (size_t cut = 0; cut <= len; cut++) {
        jrpc__chunk_t *ch = chunk(len - 1);
        size_t first = feed(ch, answer_text, cut);
        size_t second = feed(ch, answer_text + cut, len - cut);
        /* Whichever piece crosses the cap is refused whole (curl then fails the transfer). */
        if (cut == len) {
            assert_int_equal(first, 0);
            assert_int_equal(ch->answer.len, 0);
        } else {
            assert_int_equal(first, cut);
            assert_int_equal(second, 0);
            assert_int_equal(ch->answer.len, cut);
        }
        assert_int_equal(ch->too_large, 1);
        assert_true(ch->answer.len <= conf.max_answer);
        jrpc__chunk_free(ch);
    }
    /* A cap of 0 takes nothing, but an empty piece is no overflow. */
    jrpc__chunk_t *ch = chunk(0);
    assert_int_equal(feed(ch, "", 0), 0);
    assert_int_equal(ch->too_large, 0);
    assert_int_equal(feed(ch, "[", 1), 0);
    assert_int_equal(ch->too_large, 1);
    jrpc__chunk_free(ch);
}

/* A curl transfer of ch (in flight) ended with rc: what ctx_drain does with it. */
static void curl_done(jrpc__chunk_t *ch, CURL *easy, CURLcode rc)
{
    char detail[160];
    int fault = classify(ch, easy, rc, detail, sizeof detail);
    flying_add(ch);
    attempt_done(ch, 0, fault, detail);
}

/* The cut transfer's curl error becomes too_large for every call: not retried (the next URL
 * would send the same answer), not held against the URL. */
static void test_too_large_fault(void **state)
{
    (void)state;
    CURL *easy = curl_easy_init();
    assert_non_null(easy);
    jrpc__chunk_t *ch = chunk(100);
    assert_int_equal(feed(ch, answer_text, 60), 60);
    assert_int_equal(feed(ch, answer_text + 60, 60), 0);
    curl_done(ch, easy, CURLE_WRITE_ERROR); /* frees ch */
    for (size_t i = 0; i < NCALLS; i++) {
        assert_int_equal(calls[i].replies, 1);
        assert_int_equal(calls[i].code, JRPC_CODE_SERVER_ERROR);
        assert_string_equal(calls[i].text,
                            "upstream node: answer larger than the server's max_response");
        assert_string_equal(calls[i].data, "{\"upstream\":\"node\",\"cause\":\"too_large\","
                                           "\"detail\":\"answer larger than 100 bytes\"}");
    }
    assert_int_equal(atomic_load(&up.stats.faults[JRPC_UPSTREAM_FAULT_TOO_LARGE]), 1);
    assert_int_equal(atomic_load(&up.stats.items_failed), NCALLS);
    assert_int_equal(atomic_load(&ep0.faults), 0);
    assert_int_equal(marked_down, 0);
    assert_int_equal(marked_up, 0);

    /* A write error that was no overflow (out of memory) is reported as such. */
    calls_reset();
    ch = chunk(100);
    curl_done(ch, easy, CURLE_WRITE_ERROR);
    for (size_t i = 0; i < NCALLS; i++) {
        assert_int_equal(calls[i].replies, 1);
        assert_non_null(strstr(calls[i].data, "\"detail\":\"out of memory\""));
    }
    assert_int_equal(marked_down, 0);
    curl_easy_cleanup(easy);
}

/* A transport fault would be retried, but nobody waits for the calls any more: they are answered
 * -32002 and dropped, and no attempt starts (jrpc__upstream_pick fails the test). */
static void test_cancelled_not_retried(void **state)
{
    (void)state;
    CURL *easy = curl_easy_init();
    assert_non_null(easy);
    jrpc__chunk_t *ch = chunk(100);
    for (size_t i = 0; i < NCALLS; i++)
        calls[i].cancelled = 1;
    curl_done(ch, easy, CURLE_COULDNT_CONNECT); /* frees ch */
    for (size_t i = 0; i < NCALLS; i++) {
        assert_int_equal(calls[i].replies, 1);
        assert_int_equal(calls[i].code, JRPC_CODE_TIMEOUT);
    }
    assert_int_equal(atomic_load(&up.stats.items_dropped), NCALLS);
    assert_int_equal(atomic_load(&up.stats.retries), 0);
    assert_int_equal(marked_down, 1); /* the URL's fault still counts */
    curl_easy_cleanup(easy);
}

/* max_queue counts calls not yet sent, across loops; a call that goes into a free in-flight
 * place at the coming flush does not wait and is taken over the bound. */
static void test_queue_bound(void **state)
{
    (void)state;
    conf.max_queue = 3;
    conf.loop_in_flight = 1;
    conf.max_batch = 2;
    ctx.in_flight = 1; /* every place taken */
    for (int i = 0; i < 3; i++)
        assert_int_equal(queue_admit(&ctx, 0), 1);
    assert_int_equal(queue_admit(&ctx, 0), 0);
    assert_int_equal(queue_admit(&ctx, 1), 0);
    assert_int_equal(atomic_load(&up.stats.items_queued), 3);
    ctx.in_flight = 0; /* a place is free: one request's worth goes at once */
    assert_int_equal(queue_admit(&ctx, 0), 1);
    ctx.nbatched = 2; /* a third batched call would need a second request */
    assert_int_equal(queue_admit(&ctx, 0), 0);
    ctx.nbatched = 0;
    ctx.nsingles = 1; /* a call sent alone needs a place of its own */
    assert_int_equal(queue_admit(&ctx, 1), 0);
    assert_int_equal(atomic_load(&up.stats.items_queued), 4);
    assert_int_equal(atomic_load(&up.stats.items_queued_peak), 4);
    queue_leave(&up, 4);
    assert_int_equal(atomic_load(&up.stats.items_queued), 0);
    assert_int_equal(atomic_load(&up.stats.items_queued_peak), 4);
}

/* An upstream on this loop that takes requests and never answers. */
static uv_tcp_t listener, accepted;
static int connections;

static void never_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
    (void)h;
    static char sink[4096];
    (void)size;
    *buf = uv_buf_init(sink, sizeof sink);
}

static void never_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    (void)buf;
    if (n < 0)
        uv_read_stop(s);
}

static void never_accept(uv_stream_t *server, int status)
{
    assert_int_equal(status, 0);
    assert_int_equal(connections, 0);
    uv_tcp_init(server->loop, &accepted);
    assert_int_equal(uv_accept(server, (uv_stream_t *)&accepted), 0);
    uv_read_start((uv_stream_t *)&accepted, never_alloc, never_read);
    connections++;
}

#define HELD 8

static uv_loop_t loop;
static jrpc__upctx_t *slots[1];
static uint8_t stopped[1];
static char url[64];
static jrpc_call_t held[HELD + 1];

static void stop_loop(void)
{
    jrpc__upstream_loop_stop(&loop, 0, &up);
}

/* A loop with the never-answering upstream on it, and an upstream client whose calls are held[]:
 * HELD - 1 calls of one client batch, cut into chunks of 2 with 1 in flight, and the request in
 * flight on the wire. */
static jrpc__upctx_t *client_with_calls(void)
{
    assert_int_equal(uv_loop_init(&loop), 0);
    test_loop = &loop;
    may_pick = 1;
    uv_tcp_init(&loop, &listener);
    struct sockaddr_in sa;
    uv_ip4_addr("127.0.0.1", 0, &sa);
    assert_int_equal(uv_tcp_bind(&listener, (const struct sockaddr *)&sa, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&listener, 8, never_accept), 0);
    int len = sizeof sa;
    uv_tcp_getsockname(&listener, (struct sockaddr *)&sa, &len);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", ntohs(sa.sin_port));
    slots[0] = NULL;
    stopped[0] = 0;
    ep0.url = url;
    conf.urls[0].weight = 1;
    up.ctx = slots;
    up.stopped = stopped;
    up.nctx = 1;
    conf.max_batch = 2;
    conf.loop_in_flight = 1;
    conf.max_queue = 100;
    conf.timeout_ms = 60000;
    conf.max_answer = 1 << 20;
    connections = 0;
    memset(held, 0, sizeof held);
    for (size_t i = 0; i < HELD - 1; i++)
        jrpc__upstream_call(&held[i], &up);
    uint64_t t0 = uv_hrtime();
    while ((connections == 0 || slots[0]->in_flight == 0) && uv_hrtime() - t0 < 5000000000ull)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(connections, 1);
    assert_non_null(slots[0]->flying);
    assert_non_null(slots[0]->wait_head);
    return slots[0];
}

/* The client frees itself once its handles closed; then only the test's own are left, and the
 * loop closes (no handle of the client's outlives it). */
static void client_gone(void)
{
    uint64_t t0 = uv_hrtime();
    while (slots[0] != NULL && uv_hrtime() - t0 < 5000000000ull)
        uv_run(&loop, UV_RUN_NOWAIT);
    assert_null(slots[0]);
    assert_int_equal(atomic_load(&up.stats.items_queued), 0);
    assert_int_equal(atomic_load(&up.stats.in_flight), 0);
    assert_int_equal(atomic_load(&up.stats.queued), 0);
    uv_close((uv_handle_t *)&listener, NULL);
    uv_close((uv_handle_t *)&accepted, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    for (size_t i = 0; i <= HELD; i++) {
        free(held[i].text);
        free(held[i].data);
    }
    ep0.url = NULL;
}

static void expect_shutdown(const jrpc_call_t *c)
{
    assert_int_equal(c->replies, 1);
    assert_int_equal(c->code, JRPC_CODE_SERVER_ERROR);
    assert_string_equal(c->text, "server shutting down");
    assert_string_equal(c->data, "{\"upstream\":\"node\"}");
}

/* The loop stops while the client holds calls pending, waiting and in flight: each is answered
 * -32000 "server shutting down" exactly once, the transfer is cut, the counters go back to zero,
 * a call after the stop is answered at once, and every handle closes. */
static void test_stop_with_calls(void **state)
{
    (void)state;
    jrpc__upctx_t *c = client_with_calls();
    jrpc__upstream_call(&held[HELD - 1], &up); /* pending: the stop comes before the flush */
    assert_int_equal(c->nbatched, 1);
    assert_int_equal(atomic_load(&up.stats.items_queued), HELD - 2);
    jrpc__upstream_loop_stop(&loop, 0, &up);
    for (size_t i = 0; i < HELD; i++)
        expect_shutdown(&held[i]);
    jrpc__upstream_call(&held[HELD], &up);
    expect_shutdown(&held[HELD]);
    client_gone();
}

/* The sweep drops the waiting calls nobody waits for; the last of them finishes the loop's last
 * request, so the stop hook comes from inside the sweep. It waits for the sweep to end: every
 * call is answered once (the stand-in replies fail the test on a second reply), nothing freed is
 * touched (ASan), and the client closes as before. */
static void test_stop_inside_a_sweep(void **state)
{
    (void)state;
    jrpc__upctx_t *c = client_with_calls();
    for (size_t i = 2; i < HELD - 1; i++)
        held[i].cancelled = 1; /* every waiting call */
    stop_on_reply = &held[2];
    c->swept_ms = 0;
    on_check(&c->check);
    assert_int_equal(c->closing, 1);
    for (size_t i = 2; i < HELD - 1; i++) {
        assert_int_equal(held[i].replies, 1);
        assert_int_equal(held[i].code, JRPC_CODE_TIMEOUT);
    }
    expect_shutdown(&held[0]); /* in flight */
    expect_shutdown(&held[1]);
    assert_int_equal(atomic_load(&up.stats.items_dropped), HELD - 3);
    client_gone();
}

/* hedge_after = pNN: the quantile of the latency histogram, interpolated inside its bucket; no
 * delay (no hedge) under JRPC_UPSTREAM_HEDGE_MIN_SAMPLES answers or past the last bound. */
static void test_hedge_quantile(void **state)
{
    (void)state;
    atomic_store(&up.stats.latency[6], 100);            /* 10–25 ms */
    assert_int_equal(latency_quantile_ms(&up, 50), 18); /* 10 + 15 * 0.5, rounded up */
    atomic_store(&up.stats.latency[6], 99);
    assert_int_equal(latency_quantile_ms(&up, 50), 0); /* fewer than 100 answers */
    atomic_store(&up.stats.latency[6], 100);
    atomic_store(&up.stats.latency[8], 100); /* 50–100 ms */
    assert_int_equal(latency_quantile_ms(&up, 50), 25);
    assert_int_equal(latency_quantile_ms(&up, 75), 75);
    assert_int_equal(latency_quantile_ms(&up, 99), 99);
    atomic_store(&up.stats.latency[JRPC_UPSTREAM_LATENCY_BUCKETS - 1], 1000); /* over 1 s */
    assert_int_equal(latency_quantile_ms(&up, 90), 0);
    conf.hedge_quantile = 75;
    atomic_store(&up.stats.latency[JRPC_UPSTREAM_LATENCY_BUCKETS - 1], 0);
    assert_int_equal(hedge_delay_ms(&ctx), 75);
    conf.hedge_after_ms = 40; /* a fixed delay is used as it is */
    assert_int_equal(hedge_delay_ms(&ctx), 40);
}

/* auto_batch's hold: pending calls wait behind the batch out only while every one of them was
 * sent alone and is a read (a write, or a call of a client's batch, sends them all), a batch's
 * worth is not there yet, auto_batch is on, and the batch out is younger than the bound:
 * batch_hold, or twice the median of the last JRPC__HOLD_SAMPLES answer times once there are as
 * many, which one slow answer does not move. */
static void test_hold_rule(void **state)
{
    (void)state;
    uv_loop_t l;
    assert_int_equal(uv_loop_init(&l), 0);
    uv_idle_init(&l, &ctx.idle);
    uv_timer_init(&l, &ctx.hold_timer);
    conf.auto_batch = 1;
    conf.max_batch = 4;
    conf.max_queue = 100;
    conf.batch_hold_ns = 1000000000u; /* 1 s */
    jrpc__chunk_t out = {0};
    ctx.hold_ch = &out;
    ctx.hold_ns = uv_hrtime();
    calls[0].alone = calls[1].alone = 1;
    queue_call(&ctx, &calls[0]);
    queue_call(&ctx, &calls[1]);
    assert_int_equal(ctx.nholdable, 2);
    assert_int_equal(hold_on(&ctx), 1);
    assert_true(uv_is_active((uv_handle_t *)&ctx.hold_timer)); /* the bound's wake-up */
    conf.auto_batch = 0;
    assert_int_equal(hold_on(&ctx), 0);
    conf.auto_batch = 1;
    ctx.hold_ns = uv_hrtime() - 1000000001u; /* out longer than batch_hold */
    assert_int_equal(hold_on(&ctx), 0);
    ctx.hold_ns = uv_hrtime();
    ctx.hold_ch = NULL; /* answered */
    assert_int_equal(hold_on(&ctx), 0);
    ctx.hold_ch = &out;

    /* Twice the median of recent answers bounds it below batch_hold, once there are enough. */
    for (unsigned i = 0; i < JRPC__HOLD_SAMPLES - 1; i++)
        hold_sample(&ctx, 1000); /* 1 ms */
    assert_int_equal(hold_limit_ns(&ctx), 1000000000u);
    hold_sample(&ctx, 5000000); /* one slow batch (5 s) among them */
    assert_int_equal(hold_limit_ns(&ctx), 2000000u);
    ctx.hold_ns = uv_hrtime() - 3000000u; /* out 3 ms */
    assert_int_equal(hold_on(&ctx), 0);
    ctx.hold_ns = uv_hrtime();
    assert_int_equal(hold_on(&ctx), 1);

    /* A write pending, or a call of a client's batch: nothing waits. */
    calls[2].alone = 1;
    calls[2].method = "eth_sendRawTransaction";
    queue_call(&ctx, &calls[2]);
    assert_int_equal(ctx.nholdable, 2);
    assert_int_equal(hold_on(&ctx), 0);
    ctx.nbatched = ctx.nholdable = 2;
    assert_int_equal(hold_on(&ctx), 1);
    calls[2].alone = 0;
    calls[2].method = NULL;
    ctx.nbatched = 2;
    queue_call(&ctx, &calls[2]);
    assert_int_equal(ctx.nholdable, 2);
    assert_int_equal(hold_on(&ctx), 0);
    /* A batch's worth goes at once. */
    ctx.nbatched = ctx.nholdable = 4;
    assert_int_equal(hold_on(&ctx), 0);

    queue_leave(&up, 3);
    ctx.nbatched = ctx.nholdable = 0;
    ctx.hold_ch = NULL;
    free(ctx.batched);
    uv_close((uv_handle_t *)&ctx.idle, NULL);
    uv_close((uv_handle_t *)&ctx.hold_timer, NULL);
    uv_run(&l, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&l), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_hold_rule, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hedge_quantile, setup, teardown),
        cmocka_unit_test_setup_teardown(test_split_everywhere, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_too_large_fault, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancelled_not_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_bound, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_with_calls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_inside_a_sweep, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
