/* Unit tests of how the gateway's client (src/upstream/client.c) takes in an upstream's answer:
 * curl's write callback collects it piece by piece up to max_answer (the server's max_response),
 * and a transfer cut at that size fails every call of the chunk with the too_large fault, without
 * a retry and without marking the URL down. An answer split at every byte, each piece right
 * before a PROT_NONE page, maps to the same replies as the whole.
 *
 * client.c and answer.c are included; the engine's calls, the failover bookkeeping of
 * upstream.c and the loop are stand-ins below (no request reaches the network). */
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
#include "upstream/client.c"

/* ---- Stand-ins ------------------------------------------------------------------------------- */

struct jrpc_call {
    unsigned replies;
    int is_error;
    int code;
    char *text; /* the result, or the error's message */
    char *data; /* the error's data_json */
};

static unsigned marked_down, marked_up;

JRPC_EXTERN jrpc_str_t jrpc_call_method(const jrpc_call_t *call)
{
    (void)call;
    return (jrpc_str_t){"eth_chainId", 11};
}

JRPC_EXTERN jrpc_json_t jrpc_call_params(const jrpc_call_t *call)
{
    (void)call;
    return (jrpc_json_t){NULL, 0};
}

JRPC_EXTERN int jrpc_call_in_batch(const jrpc_call_t *call)
{
    (void)call;
    return 1;
}

JRPC_EXTERN void *jrpc_call_loop(const jrpc_call_t *call)
{
    (void)call;
    fail_msg("the test sends nothing");
    return NULL;
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
    fail_msg("the test sends nothing");
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

JRPC_EXTERN void jrpc_reply_error(jrpc_call_t *call, int code, const char *message,
                                  const char *data_json)
{
    assert_int_equal(call->replies++, 0);
    call->is_error = 1;
    call->code = code;
    call->text = copy_of(message, strlen(message));
    call->data = data_json ? copy_of(data_json, strlen(data_json)) : NULL;
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
    fail_msg("no attempt may start: a too_large answer is not retried");
    return 0;
}

void jrpc__upstream_mark_down(jrpc_upstream_t *u, unsigned ep, int fault, const char *detail)
{
    (void)u;
    (void)ep;
    (void)fault;
    (void)detail;
    marked_down++;
}

void jrpc__upstream_mark_up(jrpc_upstream_t *u, unsigned ep)
{
    (void)u;
    (void)ep;
    marked_up++;
}

/* ---- A chunk --------------------------------------------------------------------------------- */

#define NCALLS 3

static jrpc_upstream_t up;
static jrpc__upctx_t ctx;
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
    memset(&up, 0, sizeof up);
    memset(&ctx, 0, sizeof ctx);
    up.name = "node";
    up.neps = 1;
    up.retries = 5; /* a retry, if one were tried, would reach jrpc__upstream_pick */
    ctx.up = &up;
    ctx.next_id = 1;
    marked_down = marked_up = 0;
    calls_reset();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    calls_reset();
    return 0;
}

static jrpc__chunk_t *chunk(size_t max_answer)
{
    up.max_answer = max_answer;
    ctx.next_id = 1;
    jrpc_call_t *ptrs[NCALLS] = {&calls[0], &calls[1], &calls[2]};
    jrpc__chunk_t *ch = jrpc__chunk_new(&ctx, ptrs, NCALLS, 1);
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
        assert_true(ch->answer.len <= up.max_answer);
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
    chunk_done(ch, easy, CURLE_WRITE_ERROR); /* frees ch */
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
    assert_int_equal(atomic_load(&up.eps[0].faults), 0);
    assert_int_equal(marked_down, 0);
    assert_int_equal(marked_up, 0);

    /* A write error that was no overflow (out of memory) is reported as such. */
    calls_reset();
    ch = chunk(100);
    chunk_done(ch, easy, CURLE_WRITE_ERROR);
    for (size_t i = 0; i < NCALLS; i++) {
        assert_int_equal(calls[i].replies, 1);
        assert_non_null(strstr(calls[i].data, "\"detail\":\"out of memory\""));
    }
    assert_int_equal(marked_down, 0);
    curl_easy_cleanup(easy);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_split_everywhere, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_too_large_fault, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
