/* SPDX-License-Identifier: MIT */
/* subs.c — subscriptions through the gateway: a client's eth_subscribe over WebSocket becomes
 * one upstream subscription per distinct params on one WebSocket per io loop to the upstream's
 * ws_urls (wsc.c), and every upstream push fans out to each client that asked for the same thing
 * under the client's own subscription id (jrpc_sub_start). Per io loop, not per process: a
 * client's connection and its subscriptions live on one loop, so the loop's socket, its groups
 * and its clients are touched by that thread alone, with no lock and no hand-over; the cost is
 * one upstream socket (and one upstream subscription per distinct params) per io loop. On loss
 * the socket is opened again with bounded backoff and every group subscribes again; the clients
 * keep their ids. The last client of a group leaving ends the upstream subscription. */
#include "internal.h"
#include "wsc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Reconnect backoff: the first retry soon (a node restart or a proxy's idle cut is usually
 * over in well under a second), doubling up to a bound so that a node that stays down costs one
 * connect attempt every 5 s per io loop, not a busy loop; clients miss at most that long. */
#define SUBS_BACKOFF_MIN_MS 100
#define SUBS_BACKOFF_MAX_MS 5000

typedef struct sub_group sub_group_t;
typedef struct sub_loop sub_loop_t;

/* One client subscription attached to a group. */
typedef struct sub_member {
    sub_group_t *g;          /* its group; NULL once the group went (stop) */
    jrpc_sub_t *sub;         /* the client's subscription (a producer reference) */
    struct sub_member *next; /* in g->members */
    struct sub_member *prev;
} sub_member_t;

/* One upstream subscription: every client on this loop that subscribed with the same params. */
struct sub_group {
    sub_loop_t *sl;
    sub_group_t *next, *prev; /* in sl->groups */
    char *params;             /* the params as sent, whitespace around them trimmed (owned) */
    size_t len;
    char *upid; /* the upstream's subscription id (JSON text), NULL until known */
    size_t upid_len;
    uint64_t req_id;       /* id of the eth_subscribe in flight upstream; 0: none */
    jrpc_call_t **waiting; /* subscribe calls waiting for the upstream's answer */
    size_t nwaiting, capw;
    sub_member_t *members; /* clients attached */
    size_t nmembers;
    uint8_t dead; /* a resubscribe was refused: members are being ended */
};

/* The gateway's subscription side on one io loop. Only that loop's thread touches it. */
struct sub_loop {
    jrpc__subs_t *s;
    unsigned index;
    uv_loop_t *loop;
    jrpc__wsc_t ws;      /* the upstream socket */
    uv_timer_t retry;    /* the next reconnect */
    unsigned backoff_ms; /* the next reconnect's delay */
    unsigned url;        /* index into s->urls of the current or next attempt */
    uint8_t started;     /* handles are open (between loop start and stop) */
    uint8_t open;        /* ws is open */
    uint8_t busy;        /* a connect attempt or the retry timer is under way */
    uint8_t was_open;    /* ws was open once: the next open is a reconnect */
    uint8_t failing;     /* connect attempts fail: logged once until one succeeds */
    sub_group_t *groups; /* every group of this loop */
    uint64_t next_id;    /* ids of requests to the upstream */
};

struct jrpc__subs {
    jrpc_upstream_t *up;
    char **urls; /* ws:// URLs, failover order (owned) */
    size_t nurls;
    sub_loop_t *loops; /* [io loop index] */
    unsigned nloops;
    unsigned timeout_ms;         /* connect + handshake of one attempt */
    uint8_t registered;          /* eth_subscribe / eth_unsubscribe are ours */
    _Atomic uint64_t open;       /* gauge: upstream subscriptions open */
    _Atomic uint64_t clients;    /* gauge: client subscriptions attached */
    _Atomic uint64_t reconnects; /* upstream sockets opened again after a loss */
};

static void loop_connect(sub_loop_t *sl);

static int name_covered(const jrpc_upstream_config_t *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->nmethods; i++) {
        const char *m = cfg->methods[i];
        size_t n = strlen(m);
        if (n > 0 && m[n - 1] == '*' ? strncmp(m, name, n - 1) == 0 : strcmp(m, name) == 0)
            return 1;
    }
    return 0;
}

/* ---- Groups ---------------------------------------------------------------------------------- */

static void group_send_subscribe(sub_group_t *g)
{
    sub_loop_t *sl = g->sl;
    if (!sl->open || g->req_id != 0 || g->upid != NULL || g->dead)
        return;
    jrpc_buf_t b;
    jrpc_buf_init(&b);
    g->req_id = ++sl->next_id;
    jrpc_buf_appendz(&b, "{\"jsonrpc\":\"2.0\",\"id\":");
    jrpc_buf_json_uint64(&b, g->req_id);
    jrpc_buf_appendz(&b, ",\"method\":\"eth_subscribe\",\"params\":");
    jrpc_buf_append(&b, g->params, g->len);
    jrpc_buf_appendz(&b, "}");
    if (b.err != 0 || jrpc__wsc_send(&sl->ws, b.ptr, b.len) != 0)
        g->req_id = 0; /* sent again after the reconnect the failure brings */
    jrpc_buf_free(&b);
}

static void group_send_unsubscribe(sub_group_t *g)
{
    sub_loop_t *sl = g->sl;
    if (!sl->open || g->upid == NULL)
        return;
    jrpc_buf_t b;
    jrpc_buf_init(&b);
    jrpc_buf_appendz(&b, "{\"jsonrpc\":\"2.0\",\"id\":");
    jrpc_buf_json_uint64(&b, ++sl->next_id);
    jrpc_buf_appendz(&b, ",\"method\":\"eth_unsubscribe\",\"params\":[");
    jrpc_buf_append(&b, g->upid, g->upid_len);
    jrpc_buf_appendz(&b, "]}");
    if (b.err == 0)
        jrpc__wsc_send(&sl->ws, b.ptr, b.len);
    jrpc_buf_free(&b);
}

static void group_set_upid(sub_group_t *g, const char *p, size_t n)
{
    jrpc__subs_t *s = g->sl->s;
    if (g->upid == NULL && n != 0)
        atomic_fetch_add_explicit(&s->open, 1, memory_order_relaxed);
    else if (g->upid != NULL && n == 0)
        atomic_fetch_sub_explicit(&s->open, 1, memory_order_relaxed);
    free(g->upid);
    g->upid = NULL;
    g->upid_len = 0;
    if (n != 0 && (g->upid = malloc(n)) != NULL) {
        memcpy(g->upid, p, n);
        g->upid_len = n;
    } else if (n != 0) {
        atomic_fetch_sub_explicit(&s->open, 1, memory_order_relaxed);
    }
}

static void group_free(sub_group_t *g)
{
    sub_loop_t *sl = g->sl;
    if (g->prev != NULL)
        g->prev->next = g->next;
    else
        sl->groups = g->next;
    if (g->next != NULL)
        g->next->prev = g->prev;
    group_set_upid(g, NULL, 0);
    free(g->params);
    free(g->waiting);
    free(g);
}

/* A group nobody uses any more goes, its upstream subscription with it; one whose subscribe is
 * still in flight stays until the answer (so the id it brings can be unsubscribed). */
static void group_maybe_free(sub_group_t *g)
{
    if (g->nmembers != 0 || g->nwaiting != 0 || (g->req_id != 0 && g->sl->open))
        return;
    group_send_unsubscribe(g);
    group_free(g);
}

static void member_end(jrpc_sub_t *sub, void *data)
{
    sub_member_t *m = data;
    sub_group_t *g = m->g;
    if (g != NULL) {
        if (m->prev != NULL)
            m->prev->next = m->next;
        else
            g->members = m->next;
        if (m->next != NULL)
            m->next->prev = m->prev;
        g->nmembers--;
        atomic_fetch_sub_explicit(&g->sl->s->clients, 1, memory_order_relaxed);
        group_maybe_free(g);
    }
    jrpc_sub_unref(sub);
    free(m);
}

/* Attaches the call's client: jrpc_sub_start answers it with the client's own id. */
static void group_attach(sub_group_t *g, jrpc_call_t *call)
{
    sub_member_t *m = calloc(1, sizeof(*m));
    if (m == NULL) {
        jrpc_reply_error(call, JRPC_CODE_INTERNAL_ERROR, "out of memory", NULL);
        return;
    }
    m->g = g;
    m->sub = jrpc_sub_start(call, "eth_subscription", member_end, m);
    if (m->sub == NULL) {
        free(m);
        return;
    }
    m->next = g->members;
    if (g->members != NULL)
        g->members->prev = m;
    g->members = m;
    g->nmembers++;
    atomic_fetch_add_explicit(&g->sl->s->clients, 1, memory_order_relaxed);
}

/* Answers every waiting call with an error: a whole error object, or -32000 with cause. */
static void group_fail_waiting(sub_group_t *g, int code, const char *raw, size_t rawlen,
                               const char *cause, const char *detail)
{
    jrpc__subs_t *s = g->sl->s;
    jrpc_call_t **w = g->waiting;
    size_t n = g->nwaiting;
    g->waiting = NULL;
    g->nwaiting = g->capw = 0;
    for (size_t i = 0; i < n; i++) {
        if (raw != NULL) {
            jrpc_reply_error_raw(w[i], code, raw, rawlen);
            continue;
        }
        char msg[256], data[512];
        snprintf(msg, sizeof msg, "upstream %s: WebSocket: %s", s->up->name, detail);
        jrpc_buf_t d;
        jrpc_buf_init(&d);
        jrpc_buf_appendz(&d, "{\"upstream\":");
        jrpc_buf_json_string(&d, s->up->name, strlen(s->up->name));
        jrpc_buf_appendz(&d, ",\"cause\":");
        jrpc_buf_json_string(&d, cause, strlen(cause));
        jrpc_buf_appendz(&d, ",\"detail\":");
        jrpc_buf_json_string(&d, detail, strlen(detail));
        jrpc_buf_appendz(&d, "}");
        snprintf(data, sizeof data, "%.*s", d.err ? 0 : (int)d.len, d.ptr ? d.ptr : "");
        jrpc_buf_free(&d);
        jrpc_reply_error(w[i], JRPC_CODE_SERVER_ERROR, msg, data[0] ? data : NULL);
    }
    free(w);
}

/* ---- Upstream messages ----------------------------------------------------------------------- */

static sub_group_t *group_by_req(sub_loop_t *sl, uint64_t id)
{
    for (sub_group_t *g = sl->groups; g != NULL; g = g->next)
        if (g->req_id == id)
            return g;
    return NULL;
}

static void on_answer(sub_loop_t *sl, jrpc_json_t msg, uint64_t id)
{
    sub_group_t *g = group_by_req(sl, id);
    if (g == NULL)
        return; /* an eth_unsubscribe's answer */
    g->req_id = 0;
    jrpc_json_t res, err;
    if (jrpc_json_get(msg, "result", &res) == 0 && jrpc_json_type(res) == JRPC_JSON_STRING) {
        group_set_upid(g, res.ptr, res.len);
        sl->backoff_ms = SUBS_BACKOFF_MIN_MS; /* the upstream works: the next loss retries soon */
        jrpc_call_t **w = g->waiting;
        size_t n = g->nwaiting;
        g->waiting = NULL;
        g->nwaiting = g->capw = 0;
        for (size_t i = 0; i < n; i++)
            group_attach(g, w[i]);
        free(w);
        group_maybe_free(g);
        return;
    }
    int64_t code = JRPC_CODE_SERVER_ERROR;
    if (jrpc_json_get(msg, "error", &err) == 0 && jrpc_json_type(err) == JRPC_JSON_OBJECT) {
        jrpc_json_t c;
        if (jrpc_json_get(err, "code", &c) == 0)
            jrpc_json_int64(c, &code);
        group_fail_waiting(g, (int)code, err.ptr, err.len, NULL, NULL);
    } else {
        group_fail_waiting(g, 0, NULL, 0, "invalid", "eth_subscribe answer without an id");
    }
    /* A resubscribe the upstream refuses ends the clients' subscriptions: they would otherwise
     * wait for pushes that never come. */
    g->dead = 1;
    for (sub_member_t *m = g->members; m != NULL; m = m->next)
        jrpc_sub_end(m->sub);
    group_maybe_free(g);
}

static void on_push(sub_loop_t *sl, jrpc_json_t params)
{
    jrpc_json_t id, result;
    if (jrpc_json_get(params, "subscription", &id) != 0 ||
        jrpc_json_get(params, "result", &result) != 0)
        return;
    for (sub_group_t *g = sl->groups; g != NULL; g = g->next) {
        if (g->upid == NULL || g->upid_len != id.len || memcmp(g->upid, id.ptr, id.len) != 0)
            continue;
        /* A client over its ws_max_queue is disconnected by the push (it returns
         * JRPC_ECLOSED, and member_end follows from the loop): the others, and the upstream
         * socket, never wait for it. */
        for (sub_member_t *m = g->members; m != NULL; m = m->next)
            jrpc_sub_push(m->sub, result.ptr, result.len);
        return;
    }
}

static void ws_message(jrpc__wsc_t *w, const char *p, size_t n)
{
    sub_loop_t *sl = w->data;
    if (jrpc_json_validate(p, n, 0, NULL) != 0)
        return;
    jrpc_json_t msg = {p, n}, v;
    if (jrpc_json_type(msg) != JRPC_JSON_OBJECT)
        return;
    uint64_t id;
    if (jrpc_json_get(msg, "id", &v) == 0 && jrpc_json_uint64(v, &id) == 0) {
        on_answer(sl, msg, id);
        return;
    }
    if (jrpc_json_get(msg, "method", &v) == 0 &&
        jrpc_json_string_eq(v, "eth_subscription", sizeof "eth_subscription" - 1) &&
        jrpc_json_get(msg, "params", &v) == 0 && jrpc_json_type(v) == JRPC_JSON_OBJECT)
        on_push(sl, v);
}

/* ---- The upstream socket --------------------------------------------------------------------- */

static void ws_open(jrpc__wsc_t *w)
{
    sub_loop_t *sl = w->data;
    sl->open = 1;
    sl->busy = 0;
    sl->failing = 0;
    if (sl->was_open) {
        atomic_fetch_add_explicit(&sl->s->reconnects, 1, memory_order_relaxed);
        jrpc__upstream_log(sl->s->up, JRPC_LOG_INFO, "WebSocket open again (loop %u)", sl->index);
    }
    sl->was_open = 1;
    sub_group_t *next;
    for (sub_group_t *g = sl->groups; g != NULL; g = next) {
        next = g->next;
        if (g->nmembers == 0 && g->nwaiting == 0)
            group_free(g);
        else
            group_send_subscribe(g);
    }
}

static void retry_fire(uv_timer_t *t)
{
    sub_loop_t *sl = t->data;
    sl->busy = 0;
    loop_connect(sl);
}

static void ws_lost(jrpc__wsc_t *w, int was_open, const char *why)
{
    sub_loop_t *sl = w->data;
    jrpc__subs_t *s = sl->s;
    sl->open = 0;
    sl->busy = 0;
    if (!sl->started)
        return;
    /* host:port only: a hosted node's URL carries its API key in the path. */
    if (was_open)
        jrpc__upstream_log(s->up, JRPC_LOG_WARN,
                           "WebSocket to %s:%s lost (loop %u): %s; subscribing again after "
                           "reconnect",
                           w->host, w->port, sl->index, why);
    else if (!sl->failing)
        jrpc__upstream_log(s->up, JRPC_LOG_WARN,
                           "WebSocket to %s:%s (loop %u): %s; retrying with backoff up to %u ms",
                           w->host, w->port, sl->index, why, SUBS_BACKOFF_MAX_MS);
    sl->failing = !was_open;
    /* Every upstream subscription died with the socket; the groups subscribe again once it is
     * back. Calls still waiting for a first answer get an error when the socket never opened:
     * they would otherwise wait until their deadline for a node that may not be there. */
    sub_group_t *next;
    for (sub_group_t *g = sl->groups; g != NULL; g = next) {
        next = g->next;
        g->req_id = 0;
        group_set_upid(g, NULL, 0);
        if (!was_open && g->nwaiting != 0)
            group_fail_waiting(g, 0, NULL, 0, "connect", why);
        if (g->nmembers == 0 && g->nwaiting == 0)
            group_free(g);
    }
    if (s->nurls > 1)
        sl->url = (sl->url + 1) % (unsigned)s->nurls;
    if (sl->groups == NULL)
        return; /* nobody needs the socket: opened again by the next subscribe */
    sl->busy = 1;
    uv_timer_start(&sl->retry, retry_fire, sl->backoff_ms, 0);
    sl->backoff_ms =
        sl->backoff_ms * 2 > SUBS_BACKOFF_MAX_MS ? SUBS_BACKOFF_MAX_MS : sl->backoff_ms * 2;
}

static void loop_connect(sub_loop_t *sl)
{
    if (sl->open || sl->busy || !sl->started)
        return;
    sl->busy = 1;
    int rc = jrpc__wsc_connect(&sl->ws, sl->s->urls[sl->url]);
    if (rc != 0) {
        sl->busy = 0;
        ws_lost(&sl->ws, 0, "could not start connecting");
    }
}

/* ---- Methods --------------------------------------------------------------------------------- */

static void subscribe_call(jrpc_call_t *call, void *data)
{
    jrpc__subs_t *s = data;
    if (jrpc_call_conn(call) == NULL) {
        jrpc_reply_error(call, JRPC_CODE_METHOD_NOT_FOUND, "notifications not supported", NULL);
        return;
    }
    sub_loop_t *sl = &s->loops[jrpc_call_loop_index(call)];
    if (!sl->started) {
        jrpc_reply_error(call, JRPC_CODE_SERVER_ERROR, "server shutting down", NULL);
        return;
    }
    jrpc_json_t params = jrpc_call_params(call);
    if (params.ptr == NULL || jrpc_json_type(params) != JRPC_JSON_ARRAY ||
        jrpc_json_count(params) == 0) {
        jrpc_reply_error(call, JRPC_CODE_INVALID_PARAMS,
                         "eth_subscribe wants params [kind, ...options]", NULL);
        return;
    }
    /* The key is the params byte for byte, trimmed: clients that ask alike share. */
    const char *p = params.ptr;
    size_t n = params.len;
    while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t' || p[n - 1] == '\n' || p[n - 1] == '\r'))
        n--;
    sub_group_t *g;
    for (g = sl->groups; g != NULL; g = g->next)
        if (!g->dead && g->len == n && memcmp(g->params, p, n) == 0)
            break;
    if (g != NULL && g->upid != NULL) {
        group_attach(g, call);
        return;
    }
    if (g == NULL) {
        g = calloc(1, sizeof(*g));
        if (g == NULL || (g->params = malloc(n)) == NULL) {
            free(g);
            jrpc_reply_error(call, JRPC_CODE_INTERNAL_ERROR, "out of memory", NULL);
            return;
        }
        memcpy(g->params, p, n);
        g->len = n;
        g->sl = sl;
        g->next = sl->groups;
        if (sl->groups != NULL)
            sl->groups->prev = g;
        sl->groups = g;
    }
    if (g->nwaiting == g->capw) {
        size_t cap = g->capw ? g->capw * 2 : 4;
        jrpc_call_t **grown = realloc(g->waiting, cap * sizeof(*grown));
        if (grown == NULL) {
            jrpc_reply_error(call, JRPC_CODE_INTERNAL_ERROR, "out of memory", NULL);
            group_maybe_free(g);
            return;
        }
        g->waiting = grown;
        g->capw = cap;
    }
    g->waiting[g->nwaiting++] = call;
    if (sl->open)
        group_send_subscribe(g);
    else
        loop_connect(sl);
}

/* Without ws_urls: the node's own answer over HTTP ("notifications not supported") would not
 * say what is missing. */
static void subscribe_refused(jrpc_call_t *call, void *data)
{
    jrpc_upstream_t *up = data;
    char msg[256], d[320];
    snprintf(msg, sizeof msg,
             "upstream %s: eth_subscribe needs a WebSocket upstream (ws_urls is not set)",
             up->name);
    jrpc_buf_t b;
    jrpc_buf_init(&b);
    jrpc_buf_appendz(&b, "{\"upstream\":");
    jrpc_buf_json_string(&b, up->name, strlen(up->name));
    jrpc_buf_appendz(&b, ",\"cause\":\"no_ws_urls\"}");
    snprintf(d, sizeof d, "%.*s", b.err ? 0 : (int)b.len, b.ptr ? b.ptr : "");
    jrpc_buf_free(&b);
    if (jrpc_call_conn(call) == NULL)
        jrpc_reply_error(call, JRPC_CODE_METHOD_NOT_FOUND, "notifications not supported", NULL);
    else
        jrpc_reply_error(call, JRPC_CODE_SERVER_ERROR, msg, d[0] ? d : NULL);
}

/* ---- Loop hooks ------------------------------------------------------------------------------ */

static void subs_loop_start(void *loop, unsigned index, void *data)
{
    jrpc__subs_t *s = data;
    sub_loop_t *sl = &s->loops[index];
    sl->s = s;
    sl->index = index;
    sl->loop = loop;
    sl->open = sl->busy = sl->was_open = sl->failing = 0;
    sl->backoff_ms = SUBS_BACKOFF_MIN_MS;
    jrpc__wsc_free(&sl->ws);
    if (jrpc__wsc_init(&sl->ws, loop) != 0)
        return;
    sl->ws.data = sl;
    sl->ws.max_message = jrpc_server_config(s->up->srv)->max_ws_message;
    sl->ws.timeout_ms = s->timeout_ms;
    sl->ws.on_open = ws_open;
    sl->ws.on_msg = ws_message;
    sl->ws.on_lost = ws_lost;
    if (uv_timer_init(loop, &sl->retry) != 0) {
        jrpc__wsc_shutdown(&sl->ws);
        return;
    }
    sl->retry.data = sl;
    sl->started = 1;
}

/* The loop has drained: calls still waiting are answered, the socket and timer close. The
 * clients' subscriptions end as their connections close; member_end then frees them. */
static void subs_loop_stop(void *loop, unsigned index, void *data)
{
    (void)loop;
    jrpc__subs_t *s = data;
    sub_loop_t *sl = &s->loops[index];
    if (!sl->started)
        return;
    sl->started = 0;
    sl->open = 0;
    for (sub_group_t *g = sl->groups; g != NULL; g = g->next) {
        jrpc_call_t **w = g->waiting;
        size_t n = g->nwaiting;
        g->waiting = NULL;
        g->nwaiting = g->capw = 0;
        for (size_t i = 0; i < n; i++)
            jrpc_reply_error(w[i], JRPC_CODE_SERVER_ERROR, "server shutting down", NULL);
        free(w);
    }
    /* Groups with members stay until their clients' subscriptions end (member_end). */
    sub_group_t *next;
    for (sub_group_t *g = sl->groups; g != NULL; g = next) {
        next = g->next;
        g->req_id = 0;
        group_set_upid(g, NULL, 0);
        if (g->nmembers == 0)
            group_free(g);
    }
    jrpc__wsc_shutdown(&sl->ws);
    uv_close((uv_handle_t *)&sl->retry, NULL);
}

/* ---- Set-up ---------------------------------------------------------------------------------- */

int jrpc__subs_check(const jrpc_upstream_config_t *cfg)
{
    if (cfg->nws_urls > JRPC_UPSTREAM_MAX_URLS || (cfg->nws_urls != 0 && cfg->ws_urls == NULL))
        return JRPC_EINVAL;
    for (size_t i = 0; i < cfg->nws_urls; i++)
        if (cfg->ws_urls[i] == NULL || jrpc__wsc_url_check(cfg->ws_urls[i]) != 0)
            return JRPC_EINVAL;
    return 0;
}

int jrpc__subs_add(jrpc_upstream_t *up, const jrpc_upstream_config_t *cfg)
{
    jrpc_server_t *srv = up->srv;
    int covered = name_covered(cfg, "eth_subscribe");
    if (cfg->nws_urls == 0) {
        /* Forwarded over HTTP the node would refuse it without saying why; a module that
         * serves it keeps it. */
        if (!covered || jrpc_method_registered(srv, "eth_subscribe"))
            return 0;
        jrpc__subs_t *s = calloc(1, sizeof(*s)); /* no URL, no loop: it only refuses */
        if (s == NULL)
            return JRPC_ENOMEM;
        s->up = up;
        up->subs = s;
        int rc = jrpc_method_add(srv, "eth_subscribe", subscribe_refused, up, JRPC_INLINE);
        if (rc == 0)
            s->registered = 1;
        return rc;
    }
    jrpc__subs_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return JRPC_ENOMEM;
    s->up = up;
    s->nloops = up->nctx;
    s->timeout_ms = cfg->connect_timeout_ms ? cfg->connect_timeout_ms : cfg->timeout_ms;
    s->loops = calloc(s->nloops, sizeof(*s->loops));
    s->urls = calloc(cfg->nws_urls, sizeof(*s->urls));
    int rc = JRPC_ENOMEM;
    if (s->loops == NULL || s->urls == NULL)
        goto fail;
    for (size_t i = 0; i < cfg->nws_urls; i++, s->nurls++)
        if ((s->urls[i] = strdup(cfg->ws_urls[i])) == NULL)
            goto fail;
    if (jrpc_method_registered(srv, "eth_subscribe") ||
        jrpc_method_registered(srv, "eth_unsubscribe")) {
        rc = JRPC_EEXIST;
        goto fail;
    }
    if ((rc = jrpc_server_loop_hook(srv, subs_loop_start, subs_loop_stop, s)) != 0)
        goto fail;
    up->subs = s; /* the hook points at s from here on */
    if ((rc = jrpc_method_add(srv, "eth_subscribe", subscribe_call, s,
                              JRPC_ASYNC | JRPC_UNBOUNDED)) != 0 ||
        (rc = jrpc_method_add(srv, "eth_unsubscribe", jrpc_sub_unsubscribe, NULL, JRPC_INLINE)) !=
            0)
        return rc;
    char summary[160];
    snprintf(summary, sizeof summary, "subscriptions through upstream %s (WebSocket)", up->name);
    jrpc_method_doc(srv, "eth_subscribe", summary, NULL, NULL);
    jrpc_method_doc(srv, "eth_unsubscribe", summary, NULL, NULL);
    s->registered = 1;
    return 0;
fail:
    for (size_t i = 0; s->urls != NULL && i < s->nurls; i++)
        free(s->urls[i]);
    free(s->urls);
    free(s->loops);
    free(s);
    return rc;
}

int jrpc__subs_owns(const jrpc_upstream_t *up, const char *name)
{
    const jrpc__subs_t *s = up->subs;
    return s != NULL && s->registered &&
           (strcmp(name, "eth_subscribe") == 0 ||
            (s->nurls != 0 && strcmp(name, "eth_unsubscribe") == 0));
}

void jrpc__subs_free(jrpc_upstream_t *up)
{
    jrpc__subs_t *s = up->subs;
    if (s == NULL)
        return;
    for (unsigned i = 0; i < s->nloops; i++) {
        sub_loop_t *sl = &s->loops[i];
        while (sl->groups != NULL) {
            sub_group_t *g = sl->groups;
            for (sub_member_t *m = g->members; m != NULL; m = m->next)
                m->g = NULL;
            group_free(g);
        }
        jrpc__wsc_free(&sl->ws);
    }
    for (size_t i = 0; i < s->nurls; i++)
        free(s->urls[i]);
    free(s->urls);
    free(s->loops);
    free(s);
    up->subs = NULL;
}

JRPC_EXTERN void jrpc_upstream_sub_stats(const jrpc_upstream_t *up, jrpc_upstream_sub_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    jrpc__subs_t *s = up->subs;
    if (s == NULL)
        return;
    out->subscriptions = atomic_load_explicit(&s->open, memory_order_relaxed);
    out->clients = atomic_load_explicit(&s->clients, memory_order_relaxed);
    out->reconnects = atomic_load_explicit(&s->reconnects, memory_order_relaxed);
}
