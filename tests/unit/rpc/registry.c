/* SPDX-License-Identifier: MIT */
/* Unit tests of the method table (src/rpc/registry.c): exact names and how they are looked up
 * (by length, never by a NUL), prefix patterns (the longest wins, an exact name beats any), what
 * is refused (duplicates, bad names and flags), names of any bytes, growth of the hash table with
 * probe chains that wrap around its end, the batch-deny policy, the order of jrpc__registry_each,
 * and jrpc__registry_entry. Includes the .c to see the table's slots. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four headers it needs */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/registry.c"

/* Two handlers, so a lookup can be told apart by cb as well as by data. */
static void handler_a(jrpc_call_t *call, void *data)
{
    (void)call;
    (void)data;
}

static void handler_b(jrpc_call_t *call, void *data)
{
    (void)call;
    (void)data;
}

/* Tags for data: find() must hand back the entry's own pointer. */
static int tag[16];

static const jrpc__method_t *find_z(const jrpc__registry_t *r, const char *name)
{
    return jrpc__registry_find(r, name, strlen(name));
}

/* The registration name (with '*' for patterns) of what serves `name`, or "-" for nothing. */
static const char *served_by(const jrpc__registry_t *r, const char *name)
{
    const jrpc__method_t *m = find_z(r, name);
    return m ? m->name : "-";
}

static jrpc__registry_t *new_registry(void)
{
    jrpc__registry_t *r = jrpc__registry_new();
    assert_non_null(r);
    return r;
}

/* ---- Exact names ----------------------------------------------------------------------------- */

static void test_exact(void **state)
{
    (void)state;
    jrpc__registry_t *r = new_registry();
    assert_int_equal(jrpc__registry_add(r, "eth_call", handler_a, &tag[0], JRPC_INLINE), 0);
    assert_int_equal(jrpc__registry_add(r, "eth_chainId", handler_b, &tag[1], JRPC_WORKER), 0);
    assert_int_equal(jrpc__registry_add(r, "net_version", handler_a, &tag[2],
                                        JRPC_ASYNC | JRPC_NO_BATCH | JRPC_UNBOUNDED),
                     0);
    assert_int_equal(r->count, 3);

    const jrpc__method_t *m = find_z(r, "eth_call");
    assert_non_null(m);
    assert_string_equal(m->name, "eth_call");
    assert_int_equal(m->name_len, 8);
    assert_ptr_equal(m->cb, handler_a);
    assert_ptr_equal(m->data, &tag[0]);
    assert_int_equal(m->flags, JRPC_INLINE);
    m = find_z(r, "eth_chainId");
    assert_ptr_equal(m->cb, handler_b);
    assert_ptr_equal(m->data, &tag[1]);
    assert_int_equal(m->flags, JRPC_WORKER);
    m = find_z(r, "net_version");
    assert_int_equal(m->flags, JRPC_ASYNC | JRPC_NO_BATCH | JRPC_UNBOUNDED);
    assert_null(m->summary);

    /* Neither prefixes, extensions nor other cases of a name find it. */
    static const char *const misses[] = {"eth_cal", "eth_calls",   "ETH_CALL",  "eth_Call",
                                         "",        "eth_chainid", " eth_call", "net_version "};
    for (size_t i = 0; i < sizeof misses / sizeof misses[0]; i++)
        assert_null(find_z(r, misses[i]));
    jrpc__registry_free(r);
}

/* Lookups take (ptr, len) views into a request: only those bytes count, not what follows them
 * and not a NUL. */
static void test_lookup_by_length(void **state)
{
    (void)state;
    jrpc__registry_t *r = new_registry();
    assert_int_equal(jrpc__registry_add(r, "get", handler_a, &tag[0], 0), 0);
    assert_int_equal(jrpc__registry_add(r, "getx", handler_b, &tag[1], 0), 0);
    const char body[] = "{\"method\":\"getxyz\"}";
    const char *name = body + 11;
    assert_ptr_equal(jrpc__registry_find(r, name, 3)->data, &tag[0]);
    assert_ptr_equal(jrpc__registry_find(r, name, 4)->data, &tag[1]);
    assert_null(jrpc__registry_find(r, name, 5));
    assert_null(jrpc__registry_find(r, name, 2));
    assert_null(jrpc__registry_find(r, name, 0));
    /* A NUL inside the view is a byte like any other: "get\0" is not "get". */
    assert_null(jrpc__registry_find(r, "get\0", 4));
    assert_null(jrpc__registry_find(r, "get\0x", 5));
    jrpc__registry_free(r);
}

/* ---- Patterns -------------------------------------------------------------------------------- */

static void test_patterns(void **state)
{
    (void)state;
    /* The same answers whatever order the entries were added in. */
    static const char *const names[] = {"eth_*", "eth_get*", "*", "eth_getBalance", "eth_"};
    static const size_t orders[][5] = {{0, 1, 2, 3, 4}, {4, 3, 2, 1, 0}, {2, 0, 4, 1, 3}};
    for (size_t o = 0; o < sizeof orders / sizeof orders[0]; o++) {
        jrpc__registry_t *r = new_registry();
        for (size_t i = 0; i < 5; i++) {
            size_t k = orders[o][i];
            assert_int_equal(jrpc__registry_add(r, names[k], handler_a, &tag[k], 0), 0);
        }
        assert_int_equal(r->count, 2);
        assert_int_equal(r->patterns.n, 3);
        /* Exact names beat every pattern, also a longer matching one. */
        assert_string_equal(served_by(r, "eth_getBalance"), "eth_getBalance");
        assert_string_equal(served_by(r, "eth_"), "eth_");
        /* Otherwise the longest matching prefix wins. */
        assert_string_equal(served_by(r, "eth_getBlockByNumber"), "eth_get*");
        assert_string_equal(served_by(r, "eth_get"), "eth_get*"); /* the prefix alone matches */
        assert_string_equal(served_by(r, "eth_getBalance2"), "eth_get*");
        assert_string_equal(served_by(r, "eth_call"), "eth_*");
        assert_string_equal(served_by(r, "eth_ge"), "eth_*");
        assert_string_equal(served_by(r, "eth"), "*");
        assert_string_equal(served_by(r, "net_version"), "*");
        assert_string_equal(served_by(r, ""), "*"); /* "*" serves even the empty name */
        assert_string_equal(served_by(r, "ETH_call"), "*");
        /* A pattern keeps its '*' in name; name_len is its prefix. */
        const jrpc__method_t *m = find_z(r, "eth_getCode");
        assert_string_equal(m->name, "eth_get*");
        assert_int_equal(m->name_len, 7);
        assert_ptr_equal(m->data, &tag[1]);
        assert_int_equal(find_z(r, "x")->name_len, 0);
        jrpc__registry_free(r);
    }
}

static void test_patterns_without_catch_all(void **state)
{
    (void)state;
    jrpc__registry_t *r = new_registry();
    assert_int_equal(jrpc__registry_add(r, "debug_*", handler_a, &tag[0], 0), 0);
    assert_int_equal(jrpc__registry_add(r, "debug_trace*", handler_b, &tag[1], 0), 0);
    assert_string_equal(served_by(r, "debug_traceCall"), "debug_trace*");
    assert_string_equal(served_by(r, "debug_getRawBlock"), "debug_*");
    assert_string_equal(served_by(r, "debug"), "-");
    assert_string_equal(served_by(r, "debu"), "-");
    assert_string_equal(served_by(r, "trace_block"), "-");
    assert_string_equal(served_by(r, ""), "-");
    /* Only the view's bytes: "debug_" followed by more text in the buffer is cut at len. */
    assert_null(jrpc__registry_find(r, "debug_x", 5));
    assert_non_null(jrpc__registry_find(r, "debug_x", 6));
    jrpc__registry_free(r);
}

/* ---- What is refused ------------------------------------------------------------------------- */

static void test_refused(void **state)
{
    (void)state;
    jrpc__registry_t *r = new_registry();
    assert_int_equal(jrpc__registry_add(r, NULL, handler_a, NULL, 0), JRPC_EINVAL);
    assert_int_equal(jrpc__registry_add(r, "", handler_a, NULL, 0), JRPC_EINVAL);
    assert_int_equal(jrpc__registry_add(r, "m", NULL, NULL, 0), JRPC_EINVAL);
    assert_int_equal(jrpc__registry_add(r, "m", handler_a, NULL, 3), JRPC_EINVAL); /* no mode 3 */
    assert_int_equal(jrpc__registry_add(r, "m", handler_a, NULL, 0xff), JRPC_EINVAL);
    assert_int_equal(jrpc__registry_add(r, "m", handler_a, NULL, 1u << 10), JRPC_EINVAL);
    assert_int_equal(jrpc__registry_add(r, "m", handler_a, NULL, 1u << 31), JRPC_EINVAL);
    /* A pattern with another '*' before its last. */
    assert_int_equal(jrpc__registry_add(r, "**", handler_a, NULL, 0), JRPC_EINVAL);
    assert_int_equal(jrpc__registry_add(r, "a*b*", handler_a, NULL, 0), JRPC_EINVAL);
    /* Nothing of the above went in. */
    assert_int_equal(r->count, 0);
    assert_int_equal(r->patterns.n, 0);
    assert_null(find_z(r, "m"));
    assert_null(find_z(r, "a"));
    assert_null(find_z(r, "abc"));

    /* A name not ending in '*' is exact whatever it holds: its '*' matches only itself. */
    assert_int_equal(jrpc__registry_add(r, "eth*_", handler_a, &tag[0], 0), 0);
    assert_int_equal(jrpc__registry_add(r, "*eth", handler_a, &tag[1], 0), 0);
    assert_int_equal(r->count, 2);
    assert_int_equal(r->patterns.n, 0);
    assert_ptr_equal(find_z(r, "eth*_")->data, &tag[0]);
    assert_ptr_equal(find_z(r, "*eth")->data, &tag[1]);
    assert_null(find_z(r, "eth_"));
    assert_null(find_z(r, "xeth"));
    jrpc__registry_free(r);
}

static void test_duplicates(void **state)
{
    (void)state;
    jrpc__registry_t *r = new_registry();
    assert_int_equal(jrpc__registry_add(r, "eth_call", handler_a, &tag[0], 0), 0);
    assert_int_equal(jrpc__registry_add(r, "eth_call", handler_b, &tag[1], JRPC_WORKER),
                     JRPC_EEXIST);
    assert_int_equal(jrpc__registry_add(r, "eth_*", handler_a, &tag[2], 0), 0);
    assert_int_equal(jrpc__registry_add(r, "eth_*", handler_b, &tag[3], 0), JRPC_EEXIST);
    assert_int_equal(jrpc__registry_add(r, "*", handler_a, &tag[4], 0), 0);
    assert_int_equal(jrpc__registry_add(r, "*", handler_a, &tag[5], 0), JRPC_EEXIST);
    /* A pattern and the exact name of its prefix are different entries. */
    assert_int_equal(jrpc__registry_add(r, "eth_", handler_b, &tag[6], 0), 0);
    assert_int_equal(r->count, 2);
    assert_int_equal(r->patterns.n, 2);
    /* The first registration stands, untouched. */
    const jrpc__method_t *m = find_z(r, "eth_call");
    assert_ptr_equal(m->cb, handler_a);
    assert_ptr_equal(m->data, &tag[0]);
    assert_int_equal(m->flags, 0);
    assert_ptr_equal(find_z(r, "eth_x")->data, &tag[2]);
    assert_ptr_equal(find_z(r, "x")->data, &tag[4]);
    assert_ptr_equal(find_z(r, "eth_")->data, &tag[6]);
    jrpc__registry_free(r);
}

/* ---- Odd bytes ------------------------------------------------------------------------------- */

static void test_odd_bytes(void **state)
{
    (void)state;
    static const char *const names[] = {
        "\x01",
        "\x7f\x1f",
        "a b",
        "\"quoted\"",
        "back\\slash",
        "\xc3\xa9t\xc3\xa9",
        "\xff\xfe\xfd",
        "\xe2\x80\xa8",
        "{\"json\":1}",
        "\t\r\n",
        "rpc.discover",
        "a.b/c?d=e#f",
        ":",
        "%00",
        "\xf0\x9f\x98\x80",
    };
    enum { N = sizeof names / sizeof names[0] };
    jrpc__registry_t *r = new_registry();
    for (size_t i = 0; i < N; i++)
        assert_int_equal(jrpc__registry_add(r, names[i], handler_a, (void *)names[i], 0), 0);
    /* A long name, and one that differs from it in its last byte only. */
    static char long1[10001], long2[10001];
    memset(long1, 'x', 10000);
    memcpy(long2, long1, 10000);
    long2[9999] = 'y';
    assert_int_equal(jrpc__registry_add(r, long1, handler_a, long1, 0), 0);
    assert_int_equal(jrpc__registry_add(r, long2, handler_b, long2, 0), 0);
    for (size_t i = 0; i < N; i++) {
        const jrpc__method_t *m = find_z(r, names[i]);
        assert_non_null(m);
        assert_ptr_equal(m->data, names[i]);
        assert_string_equal(m->name, names[i]);
        assert_ptr_not_equal(m->name, names[i]); /* copied */
    }
    assert_ptr_equal(find_z(r, long1)->data, long1);
    assert_ptr_equal(find_z(r, long2)->data, long2);
    assert_null(jrpc__registry_find(r, long1, 9999));
    /* Patterns of odd bytes: the prefix is compared bytewise, a UTF-8 sequence cut or not. */
    assert_int_equal(jrpc__registry_add(r, "\xc3*", handler_b, &tag[0], 0), 0);
    assert_int_equal(jrpc__registry_add(r, "\xff\xfe*", handler_b, &tag[1], 0), 0);
    assert_ptr_equal(find_z(r, "\xc3\xa0")->data, &tag[0]);
    assert_ptr_equal(find_z(r, "\xff\xfe")->data, &tag[1]);
    assert_ptr_equal(find_z(r, "\xff\xfe\xfd")->data, names[6]); /* exact still wins */
    assert_null(find_z(r, "\xff"));
    jrpc__registry_free(r);
}

/* ---- Growth ---------------------------------------------------------------------------------- */

/* Every slot of the table is either empty or holds an entry that its probe reaches. */
static void check_table(const jrpc__registry_t *r)
{
    size_t used = 0;
    assert_int_equal(r->cap & (r->cap - 1), 0); /* a power of two */
    assert_true(r->count * 2 <= r->cap);        /* at most half full */
    for (size_t i = 0; i < r->cap; i++) {
        const jrpc__method_t *m = &r->slots[i];
        if (m->name == NULL)
            continue;
        used++;
        assert_ptr_equal(jrpc__registry_find(r, m->name, m->name_len), m);
    }
    assert_int_equal(used, r->count);
}

static void test_many(void **state)
{
    (void)state;
    enum { N = 5000 };
    jrpc__registry_t *r = new_registry();
    assert_int_equal(r->cap, REGISTRY_FIRST_CAP);
    static int data[N];
    char name[32];
    size_t caps_seen = 1, last_cap = r->cap;
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "method_%d", i);
        assert_int_equal(jrpc__registry_add(r, name, handler_a, &data[i], 0), 0);
        if (r->cap != last_cap) {
            assert_int_equal(r->cap, last_cap * 2);
            last_cap = r->cap;
            caps_seen++;
            check_table(r); /* right after a rehash */
        }
    }
    /* 64 → 16384: the table doubled 8 times and stayed under half full. */
    assert_int_equal(r->cap, 16384);
    assert_int_equal(caps_seen, 9);
    assert_int_equal(r->count, N);
    check_table(r);
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "method_%d", i);
        const jrpc__method_t *m = find_z(r, name);
        assert_non_null(m);
        assert_ptr_equal(m->data, &data[i]);
        assert_int_equal(jrpc__registry_add(r, name, handler_a, NULL, 0), JRPC_EEXIST);
    }
    snprintf(name, sizeof name, "method_%d", N);
    assert_null(find_z(r, name));
    assert_null(find_z(r, "method_"));
    jrpc__registry_free(r);
}

/* Names that hash to the last slot: their probe chain wraps to slot 0, and a miss that hashes
 * there walks the chain to the empty slot after it. */
static void test_probe_wraps(void **state)
{
    (void)state;
    jrpc__registry_t *r = new_registry();
    const size_t cap = r->cap;
    static char names[4][16];
    size_t found = 0;
    char miss[16] = "";
    for (unsigned i = 0; found < 4 || miss[0] == '\0'; i++) {
        char s[16];
        snprintf(s, sizeof s, "w%u", i);
        if ((jrpc__hash_str(s, strlen(s)) & (cap - 1)) == cap - 1) {
            if (found < 4)
                memcpy(names[found++], s, sizeof s);
            else
                memcpy(miss, s, sizeof s);
        }
    }
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(jrpc__registry_add(r, names[i], handler_a, names[i], 0), 0);
    /* In order: the last slot, then 0, 1, 2. */
    assert_string_equal(r->slots[cap - 1].name, names[0]);
    for (size_t i = 1; i < 4; i++)
        assert_string_equal(r->slots[i - 1].name, names[i]);
    for (size_t i = 0; i < 4; i++)
        assert_ptr_equal(find_z(r, names[i])->data, names[i]);
    assert_null(find_z(r, miss));
    assert_int_equal(jrpc__registry_add(r, names[3], handler_a, NULL, 0), JRPC_EEXIST);
    check_table(r);
    jrpc__registry_free(r);
}

/* ---- Batch deny ------------------------------------------------------------------------------ */

static int denied(const jrpc__registry_t *r, const char *name)
{
    return jrpc__registry_batch_denied(r, name, strlen(name), (jrpc_json_t){NULL, 0});
}

/* With params given as JSON text. */
static int denied_p(const jrpc__registry_t *r, const char *name, const char *params)
{
    jrpc_json_t p = {params, params ? strlen(params) : 0};
    return jrpc__registry_batch_denied(r, name, strlen(name), p);
}

/* Exceptions: seed 002's rule, subscriptions refused in batches except chosen kinds. */
static void test_deny_exceptions(void **state)
{
    (void)state;
    jrpc__registry_t *r = new_registry();
    assert_int_equal(jrpc__registry_deny_batch(r, "!"), JRPC_EINVAL);
    assert_int_equal(jrpc__registry_deny_batch(r, "!eth_subscribe:"), JRPC_EINVAL);
    assert_int_equal(jrpc__registry_deny_batch(r, "!a*b:x"), JRPC_EINVAL);
    assert_int_equal(jrpc__registry_deny_batch(r, "!:x"), JRPC_EINVAL);
    assert_int_equal(jrpc__registry_deny_batch(r, "eth_subscribe"), 0);
    assert_int_equal(jrpc__registry_deny_batch(r, "!eth_subscribe:newHeads"), 0);
    assert_int_equal(jrpc__registry_deny_batch(r, "!eth_subscribe:logs"), 0);
    assert_int_equal(denied_p(r, "eth_subscribe", "[\"newHeads\"]"), 0);
    assert_int_equal(denied_p(r, "eth_subscribe", "[ \"logs\" , {\"address\":\"0x1\"}]"), 0);
    assert_int_equal(denied_p(r, "eth_subscribe", "[\"new\\u0048eads\"]"), 0); /* unescaped */
    assert_int_equal(denied_p(r, "eth_subscribe", "[\"syncing\"]"), 1);
    assert_int_equal(denied_p(r, "eth_subscribe", "[\"newHeadsX\"]"), 1);
    assert_int_equal(denied_p(r, "eth_subscribe", "[]"), 1);
    assert_int_equal(denied_p(r, "eth_subscribe", "{\"0\":\"newHeads\"}"), 1);
    assert_int_equal(denied_p(r, "eth_subscribe", "[1]"), 1);
    assert_int_equal(denied_p(r, "eth_subscribe", NULL), 1);
    /* An exception alone denies nothing; one without a kind lets every call of the name in. */
    assert_int_equal(denied_p(r, "eth_unsubscribe", "[\"0x1\"]"), 0);
    assert_int_equal(jrpc__registry_deny_batch(r, "debug_*"), 0);
    assert_int_equal(jrpc__registry_deny_batch(r, "!debug_getRaw*"), 0);
    assert_int_equal(denied(r, "debug_traceCall"), 1);
    assert_int_equal(denied(r, "debug_getRawBlock"), 0);
    jrpc__registry_free(r);
}

static void test_deny_batch(void **state)
{
    (void)state;
    jrpc__registry_t *r = new_registry();
    assert_int_equal(denied(r, "anything"), 0);
    assert_int_equal(jrpc__registry_deny_batch(r, NULL), JRPC_EINVAL);
    assert_int_equal(jrpc__registry_deny_batch(r, ""), JRPC_EINVAL);
    assert_int_equal(jrpc__registry_deny_batch(r, "a*b"), JRPC_EINVAL);
    assert_int_equal(jrpc__registry_deny_batch(r, "**"), JRPC_EINVAL);
    assert_int_equal(jrpc__registry_deny_batch(r, "*x"), JRPC_EINVAL);
    assert_int_equal(atomic_load(&r->deny)->n, 0);

    /* Patterns and exact names, for methods registered or not. */
    assert_int_equal(jrpc__registry_add(r, "debug_traceCall", handler_a, NULL, 0), 0);
    assert_int_equal(jrpc__registry_deny_batch(r, "debug_*"), 0);
    assert_int_equal(jrpc__registry_deny_batch(r, "admin_reset"), 0);
    assert_int_equal(denied(r, "debug_traceCall"), 1);
    assert_int_equal(denied(r, "debug_unregistered"), 1);
    assert_int_equal(denied(r, "debug_"), 1);
    assert_int_equal(denied(r, "debug"), 0);
    assert_int_equal(denied(r, "Debug_x"), 0);
    assert_int_equal(denied(r, "xdebug_x"), 0);
    assert_int_equal(denied(r, "admin_reset"), 1);
    assert_int_equal(denied(r, "admin_rese"), 0);
    assert_int_equal(denied(r, "admin_reset2"), 0);
    assert_int_equal(denied(r, ""), 0);
    /* Views: only the first len bytes count. */
    jrpc_json_t none = {NULL, 0};
    assert_int_equal(jrpc__registry_batch_denied(r, "admin_reset2", 11, none), 1);
    assert_int_equal(jrpc__registry_batch_denied(r, "admin_reset", 10, none), 0);
    assert_int_equal(jrpc__registry_batch_denied(r, "debug_", 5, none), 0);
    /* The pattern was copied. */
    char buf[] = "net_*";
    assert_int_equal(jrpc__registry_deny_batch(r, buf), 0);
    buf[0] = 'x';
    assert_int_equal(denied(r, "net_version"), 1);
    assert_int_equal(denied(r, "xet_version"), 0);
    /* Denying is no registration, and registering is no denying. */
    assert_null(find_z(r, "admin_reset"));
    assert_int_equal(denied(r, "eth_call"), 0);
    /* "*" denies everything, the empty name too. */
    assert_int_equal(jrpc__registry_deny_batch(r, "*"), 0);
    assert_int_equal(denied(r, "eth_call"), 1);
    assert_int_equal(denied(r, ""), 1);
    assert_int_equal(atomic_load(&r->deny)->n, 4);

    /* Replaced whole (a reload): a bad pattern changes nothing; the new list alone counts. */
    const char *bad[] = {"ok_*", "a*b"};
    assert_int_equal(jrpc__registry_deny_replace(r, bad, 2), JRPC_EINVAL);
    assert_int_equal(denied(r, "eth_call"), 1);
    const char *next[] = {"ok_*"};
    assert_int_equal(jrpc__registry_deny_replace(r, next, 1), 0);
    assert_int_equal(denied(r, "eth_call"), 0);
    assert_int_equal(denied(r, "admin_reset"), 0);
    assert_int_equal(denied(r, "ok_go"), 1);
    assert_int_equal(jrpc__registry_deny_replace(r, NULL, 0), 0);
    assert_int_equal(denied(r, "ok_go"), 0);
    jrpc__registry_free(r);
}

/* ---- each and entry -------------------------------------------------------------------------- */

typedef struct {
    const char *names[16];
    size_t n;
} seen_t;

static void collect(const jrpc__method_t *m, void *arg)
{
    seen_t *s = arg;
    assert_true(s->n < 16);
    s->names[s->n++] = m->name;
}

static void test_each_order(void **state)
{
    (void)state;
    jrpc__registry_t *r = new_registry();
    seen_t s = {{NULL}, 0};
    jrpc__registry_each(r, collect, &s);
    assert_int_equal(s.n, 0);

    /* Exact names sorted bytewise (upper case and '_' before lower case, UTF-8 last), then the
     * patterns in the order they were added. */
    static const char *const added[] = {"zeta", "eth_*", "alpha", "\xc3\xa9", "Beta",
                                        "*",    "mid",   "a*",    "alph",     "_x"};
    static const char *const expect[] = {"Beta", "_x",       "alph",  "alpha", "mid",
                                         "zeta", "\xc3\xa9", "eth_*", "*",     "a*"};
    for (size_t i = 0; i < 10; i++)
        assert_int_equal(jrpc__registry_add(r, added[i], handler_a, NULL, 0), 0);
    jrpc__registry_each(r, collect, &s);
    assert_int_equal(s.n, 10);
    for (size_t i = 0; i < 10; i++)
        assert_string_equal(s.names[i], expect[i]);
    jrpc__registry_free(r);
}

static void test_entry(void **state)
{
    (void)state;
    jrpc__registry_t *r = new_registry();
    assert_int_equal(jrpc__registry_add(r, "eth_call", handler_a, &tag[0], 0), 0);
    assert_int_equal(jrpc__registry_add(r, "eth_*", handler_b, &tag[1], 0), 0);
    assert_int_equal(jrpc__registry_add(r, "eth_get*", handler_b, &tag[2], 0), 0);

    jrpc__method_t *e = jrpc__registry_entry(r, "eth_call");
    assert_non_null(e);
    assert_ptr_equal(e->data, &tag[0]);
    e = jrpc__registry_entry(r, "eth_*");
    assert_non_null(e);
    assert_ptr_equal(e->data, &tag[1]);
    assert_ptr_equal(jrpc__registry_entry(r, "eth_get*")->data, &tag[2]);
    /* An entry is what was registered under exactly that name: no pattern matching. */
    assert_null(jrpc__registry_entry(r, "eth_chainId"));
    assert_null(jrpc__registry_entry(r, "eth_"));
    assert_null(jrpc__registry_entry(r, "eth*"));
    assert_null(jrpc__registry_entry(r, "*"));

    /* Edits (rpc.discover's docs) are seen by lookups and freed with the registry. */
    e = jrpc__registry_entry(r, "eth_*");
    e->summary = strdup("Forwarded to the node");
    e->params_json = strdup("[]");
    e->result_json = strdup("{\"name\":\"r\",\"schema\":{}}");
    assert_string_equal(find_z(r, "eth_blockNumber")->summary, "Forwarded to the node");
    e = jrpc__registry_entry(r, "eth_call");
    e->summary = strdup("Executes a call");
    assert_string_equal(find_z(r, "eth_call")->summary, "Executes a call");
    assert_null(find_z(r, "eth_getCode")->summary);
    jrpc__registry_free(r);
    jrpc__registry_free(NULL); /* a no-op */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact),           cmocka_unit_test(test_lookup_by_length),
        cmocka_unit_test(test_patterns),        cmocka_unit_test(test_patterns_without_catch_all),
        cmocka_unit_test(test_refused),         cmocka_unit_test(test_duplicates),
        cmocka_unit_test(test_odd_bytes),       cmocka_unit_test(test_many),
        cmocka_unit_test(test_probe_wraps),     cmocka_unit_test(test_deny_batch),
        cmocka_unit_test(test_deny_exceptions), cmocka_unit_test(test_each_order),
        cmocka_unit_test(test_entry),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
