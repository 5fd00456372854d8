/* SPDX-License-Identifier: MIT */
/* Unit tests of the gateway's response cache (src/upstream/cache.c): the byte budget holds under
 * any sequence of stores (least recently used out first, a hit making an entry recent), entries
 * expire, a reply holds its entry past eviction, and the TTL rules: the operator's exact name
 * over the longest prefix over the built-in EVM rules, tags and missing blocks capped by
 * tag_ttl, "pending" never. cache.c builds into libjrpc_upstream; the test includes it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four headers it needs */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "upstream/cache.c"

/* ---- Stand-ins for the engine ---------------------------------------------------------------- */

struct jrpc_call {
    const char *got; /* the bytes jrpc_reply_ref was handed */
    size_t got_len;
    jrpc_release_cb release;
    void *release_data;
};

JRPC_EXTERN void jrpc_reply_ref(jrpc_call_t *call, const char *json, size_t len,
                                jrpc_release_cb release, void *data)
{
    call->got = json;
    call->got_len = len;
    call->release = release;
    call->release_data = data;
}

uint64_t jrpc__upstream_now_ms(void)
{
    return uv_hrtime() / 1000000u;
}

static jrpc_upstream_cache_t *cache_of(size_t size, const jrpc_upstream_cache_rule_t *rules,
                                       size_t n, uint64_t tag_ttl)
{
    jrpc_upstream_cache_config_t cfg;
    jrpc_upstream_cache_config_init(&cfg);
    cfg.size = size;
    cfg.rules = rules;
    cfg.nrules = n;
    cfg.tag_ttl_ms = tag_ttl;
    jrpc_upstream_cache_t *c;
    assert_int_equal(jrpc_upstream_cache_new(&cfg, &c), 0);
    return c;
}

static void put(jrpc_upstream_cache_t *c, unsigned k, size_t vlen, uint64_t ttl)
{
    char key[32], val[16384];
    memcpy(key, "up", 3); /* a NUL after the upstream's name, as the gateway's keys have */
    size_t klen = 3 + (size_t)snprintf(key + 3, sizeof key - 3, "k%u", k);
    memset(val, 'v', vlen);
    jrpc__cache_put(c, key, klen, k * 2654435761u, val, vlen, ttl);
}

/* 1 when key k is answered (the reply's hold released at once). */
static int hit(jrpc_upstream_cache_t *c, unsigned k)
{
    char key[32];
    memcpy(key, "up", 3);
    size_t klen = 3 + (size_t)snprintf(key + 3, sizeof key - 3, "k%u", k);
    jrpc_call_t call = {0};
    if (!jrpc__cache_reply(c, key, klen, k * 2654435761u, &call))
        return 0;
    call.release(call.release_data);
    return 1;
}

/* ---- Budget, LRU, expiry --------------------------------------------------------------------- */

static void test_budget_holds(void **state)
{
    (void)state;
    const size_t size = 64 * 1024;
    jrpc_upstream_cache_t *c = cache_of(size, NULL, 0, 0);
    jrpc_upstream_cache_stats_t st;
    for (unsigned k = 0; k < 5000; k++) {
        put(c, k, 1 + (k * 37) % 2000, JRPC_UPSTREAM_CACHE_FOREVER);
        jrpc_upstream_cache_stats(c, &st);
        assert_true(st.bytes <= size);
    }
    assert_true(st.evictions > 0);
    assert_true(st.entries > 10);
    /* The newest are there, the oldest went. */
    assert_true(hit(c, 4999));
    assert_false(hit(c, 0));
    /* An entry larger than an eighth of the budget is not kept. */
    put(c, 9000, size / 8 + 1, JRPC_UPSTREAM_CACHE_FOREVER);
    assert_false(hit(c, 9000));
    jrpc_upstream_cache_free(c);
}

static void test_lru_order(void **state)
{
    (void)state;
    /* Room for sixteen 1000-byte entries (one may take an eighth of the budget at most). */
    jrpc_upstream_cache_t *c = cache_of(16 * (1000 + sizeof(entry_t) + 16) + 10, NULL, 0, 0);
    for (unsigned k = 1; k <= 16; k++)
        put(c, k, 1000, JRPC_UPSTREAM_CACHE_FOREVER);
    assert_true(hit(c, 1)); /* 1 is now the most recent: 2 goes next */
    put(c, 17, 1000, JRPC_UPSTREAM_CACHE_FOREVER);
    assert_true(hit(c, 1));
    assert_false(hit(c, 2));
    assert_true(hit(c, 3));
    assert_true(hit(c, 17));
    jrpc_upstream_cache_free(c);
}

static void test_expiry_and_held_reply(void **state)
{
    (void)state;
    jrpc_upstream_cache_t *c = cache_of(1 << 20, NULL, 0, 0);
    put(c, 1, 10, 1); /* 1 ms */
    uint64_t until = jrpc__upstream_now_ms() + 1000;
    while (hit(c, 1) && jrpc__upstream_now_ms() < until)
        ;
    assert_false(hit(c, 1));
    jrpc_upstream_cache_stats_t st;
    jrpc_upstream_cache_stats(c, &st);
    assert_int_equal(st.expired, 1);
    assert_int_equal(st.entries, 0);

    /* A reply keeps its bytes after the entry is dropped (reconfigure clears everything). */
    put(c, 2, 100, JRPC_UPSTREAM_CACHE_FOREVER);
    char key[8] = "up\0k2";
    jrpc_call_t call = {0};
    assert_true(jrpc__cache_reply(c, key, 5, 2 * 2654435761u, &call));
    jrpc_upstream_cache_config_t cfg;
    jrpc_upstream_cache_config_init(&cfg);
    assert_int_equal(jrpc_upstream_cache_reconfigure(c, &cfg), 0);
    assert_false(hit(c, 2));
    assert_int_equal(call.got_len, 100);
    assert_int_equal(call.got[99], 'v'); /* still readable (ASan would see otherwise) */
    call.release(call.release_data);
    jrpc_upstream_cache_free(c);
}

/* ---- Rules ----------------------------------------------------------------------------------- */

static uint64_t ttl(jrpc_upstream_cache_t *c, const char *method, const char *params)
{
    jrpc_str_t m = {method, strlen(method)};
    jrpc_json_t p = {params, params ? strlen(params) : 0};
    return jrpc__cache_ttl(c, m, p);
}

static void test_rules(void **state)
{
    (void)state;
    static const jrpc_upstream_cache_rule_t rules[] = {
        {"eth_*", 1000}, {"eth_get*", 2000}, {"eth_getBalance", 3000}, {"net_version", 0}};
    jrpc_upstream_cache_t *c = cache_of(1 << 20, rules, 4, 500);
    assert_int_equal(ttl(c, "eth_getBalance", "[\"0x1\",\"0x10\"]"), 3000); /* exact */
    assert_int_equal(ttl(c, "eth_getCode", "[\"0x1\",\"0x10\"]"), 2000);    /* longest */
    assert_int_equal(ttl(c, "eth_gasPrice", "[]"), 1000);
    assert_int_equal(ttl(c, "net_version", "[]"), 0); /* the operator's 0 over forever */
    assert_int_equal(ttl(c, "web3_clientVersion", "[]"), 0);
    /* Tags and a missing block: at most tag_ttl; pending never. */
    assert_int_equal(ttl(c, "eth_getBalance", "[\"0x1\",\"latest\"]"), 500);
    assert_int_equal(ttl(c, "eth_getBalance", "[\"0x1\"]"), 500);
    assert_int_equal(ttl(c, "eth_getBalance", "[\"0x1\",\"pending\"]"), 0);
    assert_int_equal(ttl(c, "eth_getLogs", "[{\"fromBlock\":\"0x1\",\"toBlock\":\"latest\"}]"),
                     500);
    jrpc_upstream_cache_free(c);

    /* The built-in rules, and size 0 turning everything off. */
    c = cache_of(1 << 20, NULL, 0, 0);
    assert_int_equal(ttl(c, "eth_chainId", "[]"), JRPC_UPSTREAM_CACHE_FOREVER);
    assert_int_equal(ttl(c, "eth_getBlockByHash", "[\"0xab\",false]"), JRPC_UPSTREAM_CACHE_FOREVER);
    assert_int_equal(ttl(c, "eth_getTransactionReceipt", "[\"0xab\"]"), 600000);
    assert_int_equal(ttl(c, "eth_blockNumber", "[]"), 0);
    assert_int_equal(ttl(c, "eth_getBlockByNumber", "[\"latest\",false]"), 0);
    jrpc_upstream_cache_free(c);
    c = cache_of(0, NULL, 0, 0);
    assert_int_equal(ttl(c, "eth_chainId", "[]"), 0);
    jrpc_upstream_cache_free(c);

    static const jrpc_upstream_cache_rule_t bad[] = {{"eth_*x", 1}};
    jrpc_upstream_cache_config_t cfg;
    jrpc_upstream_cache_config_init(&cfg);
    cfg.rules = bad;
    cfg.nrules = 1;
    assert_int_equal(jrpc_upstream_cache_new(&cfg, &c), JRPC_EINVAL);
}

/* jrpc__is_write agrees with the public write patterns (matched by jrpc__pattern_match) on every
 * pattern's own name, its neighbours one byte shorter and longer, and reads; and it adds
 * dedup_deny. */
static void test_is_write(void **state)
{
    (void)state;
    jrpc__upconf_t none;
    memset(&none, 0, sizeof none);
    const char *const *pats = jrpc_upstream_write_patterns();
    size_t n = 0;
    for (; pats[n] != NULL; n++) {
        char name[64];
        size_t len = strlen(pats[n]);
        int prefix = pats[n][len - 1] == '*';
        memcpy(name, pats[n], len - (size_t)prefix);
        len -= (size_t)prefix;
        const char *tails[] = {"", "X", "Abc"};
        for (size_t t = 0; t < 3; t++) {
            size_t tl = strlen(tails[t]);
            memcpy(name + len, tails[t], tl);
            jrpc_str_t m = {name, len + tl};
            assert_int_equal(jrpc__is_write(&none, m), jrpc__pattern_match(pats, SIZE_MAX, m));
            assert_int_equal(jrpc__is_write(&none, m), t == 0 || prefix);
        }
        jrpc_str_t shorter = {name, len - 1};
        assert_int_equal(jrpc__is_write(&none, shorter),
                         jrpc__pattern_match(pats, SIZE_MAX, shorter));
    }
    assert_int_equal(n, sizeof write_rules / sizeof write_rules[0]);
    const char *reads[] = {"eth_getBalance", "eth_blockNumber", "eth_call", "net_version", "e", ""};
    for (size_t i = 0; i < sizeof reads / sizeof reads[0]; i++) {
        jrpc_str_t m = {reads[i], strlen(reads[i])};
        assert_false(jrpc__is_write(&none, m));
    }
    char d0[] = "eth_call", d1[] = "trace_*";
    char *deny[] = {d0, d1};
    jrpc__upconf_t conf = none;
    conf.deny = deny;
    conf.ndeny = 2;
    assert_true(jrpc__is_write(&conf, (jrpc_str_t){"eth_call", 8}));
    assert_true(jrpc__is_write(&conf, (jrpc_str_t){"trace_block", 11}));
    assert_false(jrpc__is_write(&conf, (jrpc_str_t){"eth_getBalance", 14}));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_is_write),  cmocka_unit_test(test_budget_holds),
        cmocka_unit_test(test_lru_order), cmocka_unit_test(test_expiry_and_held_reply),
        cmocka_unit_test(test_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
