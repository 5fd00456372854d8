/* SPDX-License-Identifier: MIT */
/* Unit tests of the response cache's Redis level in src/upstream/share.c, with the server's
 * shared store (jrpc_server_kv_get/set) and the client's hold and resume stood in for, so each
 * step is driven by hand: a local miss holds the call for one GET and identical calls join it
 * (a no-cache one does not); a hit answers the whole group and is kept locally no longer than
 * Redis keeps it; absent, a timeout, an error or a value that is not JSON resumes the call for
 * the upstream, counted; a store sends the rule's TTL (forever as a day), nothing over
 * redis_max_value and nothing null; a store that cannot start is counted. share.c and cache.c
 * build into libjrpc_upstream; the test includes them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four headers it needs */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "upstream/cache.c"
#include "upstream/share.c"

/* ---- Stand-ins for the engine, the server's store and the client ----------------------------- */

struct jrpc_call {
    const char *method;
    const char *params;
    int no_cache;
    unsigned replies;
    char text[256]; /* the result */
};

JRPC_EXTERN jrpc_str_t jrpc_call_method(const jrpc_call_t *call)
{
    return (jrpc_str_t){call->method, strlen(call->method)};
}

JRPC_EXTERN jrpc_json_t jrpc_call_params(const jrpc_call_t *call)
{
    return (jrpc_json_t){call->params, strlen(call->params)};
}

JRPC_EXTERN jrpc_json_t jrpc_call_id(const jrpc_call_t *call)
{
    (void)call;
    return (jrpc_json_t){"1", 1};
}

JRPC_EXTERN int jrpc_call_no_cache(const jrpc_call_t *call)
{
    return call->no_cache;
}

JRPC_EXTERN int jrpc_call_cancelled(const jrpc_call_t *call)
{
    (void)call;
    return 0;
}

uint64_t jrpc__upstream_now_ms(void)
{
    return uv_hrtime() / 1000000u;
}

static void reply(jrpc_call_t *call, const char *json, size_t len)
{
    assert_int_equal(call->replies++, 0);
    assert_true(len < sizeof call->text);
    memcpy(call->text, json, len);
    call->text[len] = '\0';
}

JRPC_EXTERN void jrpc_reply_ref(jrpc_call_t *call, const char *json, size_t len,
                                jrpc_release_cb release, void *data)
{
    reply(call, json, len);
    release(data);
}

JRPC_EXTERN void jrpc_reply_raw(jrpc_call_t *call, const char *json, size_t len)
{
    reply(call, json, len);
}

JRPC_EXTERN void jrpc_reply_error(jrpc_call_t *call, int code, const char *message,
                                  const char *data_json)
{
    (void)code, (void)message, (void)data_json;
    reply(call, "error", 5);
}

/* The store: what the last GET and SET were, and the GET's end to call by hand. */
static struct {
    int start_rc; /* what get and set answer */
    unsigned gets, sets;
    char key[JRPC__CACHE_REDIS_KEY_LEN + 1];
    jrpc_kv_cb cb;
    void *data;
    char val[256];
    size_t vlen;
    uint64_t ttl_ms;
} kv;

JRPC_EXTERN int jrpc_server_kv_shared(const jrpc_server_t *srv)
{
    (void)srv;
    return 1;
}

JRPC_EXTERN int jrpc_server_kv_get(jrpc_server_t *srv, unsigned loop, const char *key, size_t klen,
                                   jrpc_kv_cb cb, void *data)
{
    (void)srv, (void)loop;
    if (kv.start_rc != 0)
        return kv.start_rc;
    assert_int_equal(klen, JRPC__CACHE_REDIS_KEY_LEN);
    memcpy(kv.key, key, klen);
    kv.key[klen] = '\0';
    kv.cb = cb;
    kv.data = data;
    kv.gets++;
    return 0;
}

JRPC_EXTERN int jrpc_server_kv_set(jrpc_server_t *srv, unsigned loop, const char *key, size_t klen,
                                   const char *val, size_t vlen, uint64_t ttl_ms, jrpc_kv_cb cb,
                                   void *data)
{
    (void)srv, (void)loop, (void)cb, (void)data;
    if (kv.start_rc != 0)
        return kv.start_rc;
    memcpy(kv.key, key, klen);
    kv.key[klen] = '\0';
    assert_true(vlen < sizeof kv.val);
    memcpy(kv.val, val, vlen);
    kv.vlen = vlen;
    kv.ttl_ms = ttl_ms;
    kv.sets++;
    return 0;
}

/* The client: holds taken and what resume was given. */
static unsigned holds;
static jrpc_call_t *resumed[8];
static unsigned nresumed;

void jrpc__upctx_hold(jrpc__upctx_t *ctx)
{
    (void)ctx;
    holds++;
}

void jrpc__upstream_resume(jrpc__upctx_t *ctx, jrpc_call_t *call)
{
    (void)ctx;
    assert_true(holds > 0);
    holds--;
    if (call != NULL)
        resumed[nresumed++] = call;
}

/* ---- A client on a loop, with its cache ------------------------------------------------------ */

static jrpc_upstream_t up;
static jrpc__upconf_t conf;
static jrpc__upctx_t ctx;

static int setup(void **state)
{
    (void)state;
    static const jrpc_upstream_cache_rule_t rules[] = {{"kept", 3600000},
                                                       {"ever", JRPC_UPSTREAM_CACHE_FOREVER}};
    jrpc_upstream_cache_config_t cc;
    jrpc_upstream_cache_config_init(&cc);
    cc.rules = rules;
    cc.nrules = 2;
    cc.redis = 1;
    cc.redis_max_value = 32;
    memset(&conf, 0, sizeof conf);
    assert_int_equal(jrpc_upstream_cache_new(&cc, &conf.cache), 0);
    conf.dedup = 1;
    memset(&up, 0, sizeof up);
    up.name = "gw";
    memset(&ctx, 0, sizeof ctx);
    ctx.up = &up;
    ctx.conf = &conf;
    memset(&kv, 0, sizeof kv);
    holds = nresumed = 0;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    jrpc__share_free(&ctx);
    jrpc_upstream_cache_free(conf.cache);
    return 0;
}

static jrpc_upstream_cache_stats_t stats(void)
{
    jrpc_upstream_cache_stats_t s;
    jrpc_upstream_cache_stats(conf.cache, &s);
    return s;
}

/* Ends the pending GET. */
static void get_ends(int status, const char *val, uint64_t ttl_ms)
{
    jrpc_kv_cb cb = kv.cb;
    kv.cb = NULL;
    assert_non_null(cb);
    cb(kv.data, status, val, val ? strlen(val) : 0, ttl_ms);
}

/* ---- Tests ----------------------------------------------------------------------------------- */

/* A miss holds the call for one GET; identical calls join it, a no-cache one does not; the hit
 * answers the group and is then a local hit, kept no longer than Redis keeps it. */
static void test_hit_answers_the_group(void **state)
{
    (void)state;
    jrpc_call_t a = {"kept", "[1]", 0, 0, ""}, b = a, fresh = a, later = a;
    fresh.no_cache = 1;
    assert_int_equal(jrpc__share_begin(&ctx, &a), 1);
    assert_int_equal(kv.gets, 1);
    assert_int_equal(holds, 1);
    assert_memory_equal(kv.key, JRPC_UPSTREAM_CACHE_REDIS_PREFIX,
                        sizeof JRPC_UPSTREAM_CACHE_REDIS_PREFIX - 1);
    assert_int_equal(jrpc__share_begin(&ctx, &b), 1);     /* joined */
    assert_int_equal(jrpc__share_begin(&ctx, &fresh), 0); /* its own way upstream */
    assert_int_equal(kv.gets, 1);
    get_ends(0, "{\"x\":1}", 50);
    assert_int_equal(holds, 0);
    assert_int_equal(nresumed, 0);
    assert_string_equal(a.text, "{\"x\":1}");
    assert_string_equal(b.text, "{\"x\":1}");
    assert_int_equal(fresh.replies, 0);
    assert_int_equal(stats().redis_hits, 1);
    /* A local hit now, without a GET ... */
    assert_int_equal(jrpc__share_begin(&ctx, &later), 1);
    assert_string_equal(later.text, "{\"x\":1}");
    assert_int_equal(kv.gets, 1);
    /* ... for the 50 ms Redis had left, not the rule's hour (the no-cache call is answered by
     * then: nothing to join). */
    jrpc__group_free(jrpc__share_take(&ctx, &fresh));
    uint64_t until = jrpc__upstream_now_ms() + 5000;
    for (;;) {
        jrpc_call_t again = {"kept", "[1]", 0, 0, ""};
        if (jrpc__share_begin(&ctx, &again) == 1 && kv.gets == 2)
            break; /* expired locally: asked Redis again */
        assert_true(jrpc__upstream_now_ms() < until);
        if (again.replies == 0)
            fail_msg("neither answered nor held");
    }
    get_ends(JRPC_ENOENT, NULL, 0);
}

/* Absent, a timeout, an error and a value that is not JSON: the call goes upstream, counted. */
static void test_misses_resume(void **state)
{
    (void)state;
    static const struct {
        int status;
        const char *val;
    } ends[] = {{JRPC_ENOENT, NULL}, {JRPC_ETIMEDOUT, NULL}, {JRPC_EIO, NULL}, {0, "{not json"}};
    jrpc_call_t calls[4];
    char params[4][8];
    for (unsigned i = 0; i < 4; i++) {
        snprintf(params[i], sizeof params[i], "[%u]", i);
        calls[i] = (jrpc_call_t){"kept", params[i], 0, 0, ""};
        assert_int_equal(jrpc__share_begin(&ctx, &calls[i]), 1);
        get_ends(ends[i].status, ends[i].val, 0);
        assert_int_equal(nresumed, i + 1);
        assert_ptr_equal(resumed[i], &calls[i]);
        assert_int_equal(calls[i].replies, 0);
        /* Still first of its group: an identical call joins it on its way upstream. */
        jrpc_call_t twin = calls[i];
        assert_int_equal(jrpc__share_begin(&ctx, &twin), 1);
    }
    jrpc_upstream_cache_stats_t s = stats();
    assert_int_equal(s.redis_misses, 1);
    assert_int_equal(s.redis_timeouts, 1);
    assert_int_equal(s.redis_errors, 1);
    assert_int_equal(s.redis_invalid, 1);
    assert_int_equal(s.redis_hits, 0);
    assert_int_equal(holds, 0);
    /* A GET that cannot start: forwarded at once, counted under its cause. */
    kv.start_rc = JRPC_ECLOSED;
    jrpc_call_t down = {"kept", "[9]", 0, 0, ""};
    assert_int_equal(jrpc__share_begin(&ctx, &down), 0);
    kv.start_rc = JRPC_EBUSY;
    jrpc_call_t full = {"kept", "[10]", 0, 0, ""};
    assert_int_equal(jrpc__share_begin(&ctx, &full), 0);
    s = stats();
    assert_int_equal(s.redis_down, 1);
    assert_int_equal(s.redis_full, 1);
    assert_int_equal(s.redis_errors, 1);
    assert_int_equal(holds, 0);
}

/* Stores: the rule's TTL, forever as a day, nothing over redis_max_value nor null. */
static void test_store(void **state)
{
    (void)state;
    kv.start_rc = JRPC_ECLOSED; /* no GETs: the calls go straight to their chunk */
    jrpc_call_t k = {"kept", "[1]", 0, 0, ""}, e = {"ever", "[]", 0, 0, ""};
    jrpc_call_t big = {"kept", "[2]", 0, 0, ""}, nul = {"kept", "[3]", 0, 0, ""};
    jrpc_call_t *calls[] = {&k, &e, &big, &nul};
    for (unsigned i = 0; i < 4; i++)
        assert_int_equal(jrpc__share_begin(&ctx, calls[i]), 0);
    jrpc__chunk_t *ch = calloc(1, sizeof(*ch) + 4 * sizeof(jrpc_call_t *));
    assert_non_null(ch);
    ch->ctx = &ctx;
    ch->n = 4;
    memcpy(ch->calls, calls, sizeof calls);
    assert_int_equal(jrpc__share_attach(ch), 0);
    kv.start_rc = 0;
    jrpc__share_store(ch, 0, "\"r\"", 3);
    assert_int_equal(kv.sets, 1);
    assert_int_equal(kv.ttl_ms, 3600000);
    assert_memory_equal(kv.val, "\"r\"", 3);
    char want[JRPC__CACHE_REDIS_KEY_LEN + 1];
    jrpc__cache_redis_key("gw\0kept\0[1]", 11, want);
    assert_string_equal(kv.key, want);
    jrpc__share_store(ch, 1, "\"0x1\"", 5);
    assert_int_equal(kv.sets, 2);
    assert_int_equal(kv.ttl_ms, JRPC_UPSTREAM_CACHE_REDIS_FOREVER_MS);
    jrpc__share_store(ch, 2, "\"0123456789012345678901234567890123\"", 36); /* > 32 */
    jrpc__share_store(ch, 3, "null", 4);
    assert_int_equal(kv.sets, 2);
    jrpc_upstream_cache_stats_t s = stats();
    assert_int_equal(s.redis_down, 4); /* the GETs that could not start: no connection */
    assert_int_equal(s.redis_errors, 0);
    assert_int_equal(s.redis_stores, 2);
    assert_int_equal(s.redis_too_large, 1);
    assert_int_equal(s.stores, 3); /* kept locally: all but null */
    /* A SET that cannot start is counted under its cause. */
    kv.start_rc = JRPC_EBUSY;
    jrpc__share_store(ch, 0, "\"r\"", 3);
    assert_int_equal(stats().redis_full, 1);
    assert_int_equal(stats().redis_errors, 0);
    for (size_t i = 0; i < 4; i++)
        jrpc__group_free(jrpc__share_done(ch, i));
    free(ch->groups);
    free(ch);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_hit_answers_the_group, setup, teardown),
        cmocka_unit_test_setup_teardown(test_misses_resume, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
