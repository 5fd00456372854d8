/* SPDX-License-Identifier: MIT */
/* spec.c — the methods used by the examples in §7 of the JSON-RPC 2.0 specification, as a jrpcd
 * module, so every example there can be replayed against jrpcd. It shows a module taking params
 * by position or by name, telling integers from other numbers (jrpc_json_int64 first, then
 * jrpc_json_double) and answering bad params with -32602 rather than guessing.
 *
 *   subtract   [42, 23] or {"minuend": 42, "subtrahend": 23} → 19
 *   sum        [1, 2, 4] → 7
 *   get_data   → ["hello", 5]
 *   update, notify_hello, notify_sum   notification targets: nothing observable (null if called)
 *
 * "foobar" is deliberately absent: the spec's example expects -32601 for it.
 */
#include "jrpc.h"

#include <math.h>
#include <stdint.h>

/* One operand: an integer when written as one and it fits int64, else a double. */
typedef struct spec_num {
    int is_int; /* 1: i holds the value, 0: d does */
    int64_t i;
    double d;
} spec_num_t;

/* 0; -1 when v is not a number; -2 when it is out of range (an integer past int64, or a
 * number past a double). */
static int spec_number(jrpc_json_t v, spec_num_t *n)
{
    if (jrpc_json_type(v) != JRPC_JSON_NUMBER)
        return -1;
    int rc = jrpc_json_int64(v, &n->i);
    if (rc == 0) {
        n->is_int = 1;
        return 0;
    }
    /* An integer too large for int64 is refused rather than rounded to a double: the caller
     * wrote an exact number and would get an inexact answer without knowing. */
    if (rc == JRPC_ERANGE)
        return -2;
    n->is_int = 0;
    return jrpc_json_double(v, &n->d) == 0 ? 0 : -2;
}

static void spec_reply_double(jrpc_call_t *call, double d)
{
    jrpc_buf_t out;
    jrpc_buf_init(&out);
    if (jrpc_buf_json_double(&out, d) != 0) {
        jrpc_buf_free(&out);
        if (isfinite(d))
            jrpc_reply_error(call, JRPC_CODE_INTERNAL_ERROR, "out of memory", NULL);
        else
            jrpc_reply_error(call, JRPC_CODE_INVALID_PARAMS, "result is not a finite number", NULL);
        return;
    }
    jrpc_reply_buf(call, &out);
}

static void spec_subtract(jrpc_call_t *call, void *data)
{
    (void)data;
    static const char expected[] =
        "expected params [minuend, subtrahend] or {\"minuend\": x, \"subtrahend\": y}";
    jrpc_json_t params = jrpc_call_params(call);
    jrpc_json_t a, b;
    int found = -1;
    switch (jrpc_json_type(params)) {
    case JRPC_JSON_ARRAY:
        if (jrpc_json_count(params) == 2 && jrpc_json_at(params, 0, &a) == 0 &&
            jrpc_json_at(params, 1, &b) == 0)
            found = 0;
        break;
    case JRPC_JSON_OBJECT:
        if (jrpc_json_get(params, "minuend", &a) == 0 &&
            jrpc_json_get(params, "subtrahend", &b) == 0)
            found = 0;
        break;
    default:
        break;
    }
    spec_num_t x, y;
    int rc = found == 0 ? spec_number(a, &x) : -1;
    if (rc == 0)
        rc = spec_number(b, &y);
    if (rc == -1) {
        jrpc_reply_error(call, JRPC_CODE_INVALID_PARAMS, expected, NULL);
        return;
    }
    if (rc == -2) {
        jrpc_reply_error(call, JRPC_CODE_INVALID_PARAMS,
                         "operand out of range (integers must fit in 64 bits)", NULL);
        return;
    }

    if (x.is_int && y.is_int) {
        int64_t r;
        if (__builtin_sub_overflow(x.i, y.i, &r)) {
            jrpc_reply_error(call, JRPC_CODE_INVALID_PARAMS,
                             "difference does not fit in a 64-bit integer", NULL);
            return;
        }
        jrpc_reply_int64(call, r);
        return;
    }
    double dx = x.is_int ? (double)x.i : x.d;
    double dy = y.is_int ? (double)y.i : y.d;
    spec_reply_double(call, dx - dy);
}

static void spec_sum(jrpc_call_t *call, void *data)
{
    (void)data;
    jrpc_json_t params = jrpc_call_params(call);
    jrpc_json_iter_t it;
    if (jrpc_json_type(params) != JRPC_JSON_ARRAY || jrpc_json_iter_init(&it, params) != 0) {
        jrpc_reply_error(call, JRPC_CODE_INVALID_PARAMS, "expected params [number, ...]", NULL);
        return;
    }

    int all_int = 1;  /* every element so far was an integer */
    int overflow = 0; /* the integer sum left int64 */
    int64_t isum = 0;
    double dsum = 0;
    jrpc_json_t v;
    while (jrpc_json_iter_next(&it, NULL, &v)) {
        spec_num_t n;
        int rc = spec_number(v, &n);
        if (rc != 0) {
            jrpc_reply_error(call, JRPC_CODE_INVALID_PARAMS,
                             rc == -1 ? "expected params [number, ...]"
                                      : "number out of range (integers must fit in 64 bits)",
                             NULL);
            return;
        }
        if (n.is_int) {
            if (__builtin_add_overflow(isum, n.i, &isum))
                overflow = 1;
            dsum += (double)n.i;
        } else {
            all_int = 0;
            dsum += n.d;
        }
    }
    if (!all_int) {
        spec_reply_double(call, dsum);
        return;
    }
    if (overflow) {
        jrpc_reply_error(call, JRPC_CODE_INVALID_PARAMS, "sum does not fit in a 64-bit integer",
                         NULL);
        return;
    }
    jrpc_reply_int64(call, isum);
}

static void spec_get_data(jrpc_call_t *call, void *data)
{
    (void)data;
    static const char result[] = "[\"hello\",5]";
    jrpc_reply_raw(call, result, sizeof(result) - 1);
}

/* update, notify_hello, notify_sum: the spec sends them as notifications. The library answers
 * nothing for a notification, but every call is still replied to exactly once. */
static void spec_nothing(jrpc_call_t *call, void *data)
{
    (void)data;
    jrpc_reply_raw(call, "null", 4);
}

JRPC_EXTERN int jrpc_module_init(jrpc_server_t *srv, const char *args);

JRPC_EXTERN int jrpc_module_init(jrpc_server_t *srv, const char *args)
{
    static const struct {
        const char *name;
        jrpc_method_cb cb;
    } methods[] = {
        {"subtract", spec_subtract},    {"sum", spec_sum},
        {"get_data", spec_get_data},    {"update", spec_nothing},
        {"notify_hello", spec_nothing}, {"notify_sum", spec_nothing},
    };
    (void)args;
    /* All inline: arithmetic on a few numbers never blocks. */
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        int rc = jrpc_method_add(srv, methods[i].name, methods[i].cb, NULL, JRPC_INLINE);
        if (rc != 0)
            return rc;
    }
    return 0;
}
