/* SPDX-License-Identifier: MIT */
/* redis.c — the budget store in Redis (budget.h, redis.h). Each io loop has its own async
 * hiredis connection on its own libuv loop, so a reservation takes no lock: it is one EVALSHA of
 * the script below, which reads the clock of Redis (so instances on different hosts agree),
 * refills the bucket, admits the items greedily in request order and answers which were
 * admitted. Every reservation completes within the timeout whatever Redis does: a per-loop timer
 * answers overdue ones with the `fail` answer and their late replies are dropped; a connection
 * that stops answering altogether is dropped, and while none is ready reservations fail at once
 * and the loop reconnects in the background with a bounded backoff. */
#include "redis.h"

#include "../util/list.h"
#include "../util/log.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <arpa/inet.h>
#include <netdb.h>
#include <openssl/evp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* KEYS[1]: the bucket; ARGV[1]: rate (units/s); ARGV[2]: burst (units); then pairs ARGV[i],
 * ARGV[i+1]: a run of that many consecutive items of one cost in units (-1: items to skip), so a
 * batch of 1000 calls of one method is one pair. Greedy admission within a run of equal costs
 * admits its first floor(v / cost) items and refuses the rest (a refused item leaves v as it
 * was), which is exactly the item-by-item rule. The bucket is a hash of v (micro-units held) and
 * t (the Redis time of v, µs). Answers {admitted, retry_after_ms}: admitted has one '1' or '0' per
 * item. budget.h's arithmetic, as the local store (budget.c) does it: retry_after_ms is the wait,
 * from the moment the first refused item was refused, until it would fit (an item dearer than the
 * burst: until the bucket is full; at least 1). Every value stays an integer below 2^53, so
 * doubles are exact, and each division is corrected to the exact floor or ceiling. The key
 * expires when the bucket would be full again: a full bucket and a missing one are the same. */
static const char script[] =
    "local rate = tonumber(ARGV[1])\n"
    "local cap = tonumber(ARGV[2]) * 1000000\n"
    "local now = redis.call('TIME')\n"
    "now = tonumber(now[1]) * 1000000 + tonumber(now[2])\n"
    "local s = redis.call('HMGET', KEYS[1], 'v', 't')\n"
    "local v, t = cap, now\n"
    "if s[1] then\n"
    "  v, t = tonumber(s[1]), tonumber(s[2])\n"
    "  if now > t then\n"
    "    local gain = (now - t) * rate\n"
    "    if gain >= cap - v then v = cap else v = v + gain end\n"
    "    t = now\n"
    "  end\n"
    "  if v > cap then v = cap end\n"
    "end\n"
    "local function ceildiv(a, b)\n"
    "  if a <= 0 then return 0 end\n"
    "  local q = math.floor(a / b)\n"
    "  while q * b < a do q = q + 1 end\n"
    "  while q > 0 and (q - 1) * b >= a do q = q - 1 end\n"
    "  return q\n"
    "end\n"
    "local flags, retry = {}, 0\n"
    "for i = 3, #ARGV, 2 do\n"
    "  local c, k, m = tonumber(ARGV[i]), tonumber(ARGV[i + 1]), 0\n"
    "  if c >= 0 then\n"
    "    c = c * 1000000\n"
    "    if c == 0 then m = k else\n"
    "      m = math.floor(v / c)\n"
    "      while m * c > v do m = m - 1 end\n"
    "      while (m + 1) * c <= v do m = m + 1 end\n"
    "      if m > k then m = k end\n"
    "    end\n"
    "    v = v - m * c\n"
    "    if m < k and retry == 0 then\n"
    "      if c > cap then c = cap end\n"
    "      retry = ceildiv(ceildiv(c - v, rate), 1000)\n"
    "      if retry == 0 then retry = 1 end\n"
    "    end\n"
    "  end\n"
    "  flags[#flags + 1] = string.rep('1', m) .. string.rep('0', k - m)\n"
    "end\n"
    "redis.call('HSET', KEYS[1], 'v', v, 't', t)\n"
    "redis.call('PEXPIRE', KEYS[1], ceildiv(ceildiv(cap - v, rate), 1000) + 1)\n"
    "return {table.concat(flags), retry}\n";

/* Redis key of a bucket: this prefix and the bucket's name, so one Redis can serve other things
 * beside jrpcd's budgets. */
#define KEY_PREFIX "jrpc:b:"

/* A shared-store GET (jrpc_server_kv_get): the value and its remaining time in one round trip
 * (PTTL -1, no expiry, is answered as 0). EVAL rather than EVALSHA: Redis caches the compiled
 * script by its text, and the text is a hundred bytes, so no SCRIPT LOAD is worth its setup. */
static const char kv_get_script[] = "local v = redis.call('GET', KEYS[1])\n"
                                    "if not v then return false end\n"
                                    "local t = redis.call('PTTL', KEYS[1])\n"
                                    "if t < 0 then t = 0 elseif t == 0 then t = 1 end\n"
                                    "return {v, t}\n";

enum { ST_DOWN = 0, ST_CONNECTING, ST_UP };

typedef struct rloop rloop_t;
typedef struct store store_t;

/* One reservation sent to Redis: alive until hiredis returns it to on_reply (a reply, or NULL
 * when the connection goes), also after its answer went by timeout. */
typedef struct rreq {
    jrpc__list_t node;     /* in rl->sent, in the order Redis answers */
    rloop_t *rl;           /* NULL once its loop closed */
    uint64_t sent_ms;      /* uv_now when sent */
    uint64_t deadline_ms;  /* its answer is due */
    jrpc__budget_cb done;  /* a reservation's; NULL once answered */
    jrpc_kv_cb kv;         /* a store operation's (a SET may have none); NULL once answered */
    uint8_t is_kv;         /* a store operation, not a reservation */
    void *arg;             /* done's or kv's */
    const uint32_t *costs; /* the caller's (valid until done runs) */
    uint8_t *ok;           /* the caller's (valid until done runs) */
    size_t n;              /* items */
    uint64_t rate, burst;  /* the bucket's, for a resend as EVAL */
    uint8_t retried;       /* resent as EVAL after NOSCRIPT */
    size_t key_len;
    char key[]; /* KEY_PREFIX and the bucket name */
} rreq_t;

/* What one io loop holds: its connection, its reservations in flight, its timer. Touched on the
 * loop's thread only, except the counters (stats.h's rules) and `up`. */
struct rloop {
    store_t *st;
    jrpc__loop_t *loop;
    redisAsyncContext *ac; /* NULL: none */
    int state;             /* ST_* */
    int started;           /* loop_start ran and loop_close did not */
    uv_timer_t timer;      /* deadlines, stall, connect bound, reconnect; .data = this */
    uint64_t armed_ms;     /* when the timer fires (UINT64_MAX: stopped) */
    jrpc__list_t sent;     /* rreq_t in flight, oldest first */
    size_t nsent;          /* entries in sent */
    int queue_ok;          /* CONNECTING: reservations may be queued behind the handshake (the
                              first connect only: a reconnect fails them at once) */
    uint64_t connect_by;   /* CONNECTING: dropped unless ready by then */
    uint64_t retry_at;     /* DOWN: next connect attempt */
    uint64_t backoff_ms;   /* the wait before the next attempt after this one */
    int drop;              /* the connection must be freed (outside hiredis's callbacks) */
    int was_up;            /* the connection was ready once: a loss is worth a log line */
    /* Argument scratch for one command: grown to the largest reservation seen. */
    const char **argv;
    size_t *argl;
    char *txt;
    size_t cap_items;
    jrpc__ctr_t outcomes[JRPC__REDIS_OUTCOMES];
    atomic_int up; /* ST_UP (read by the metrics) */
};

/* A rate-limited log line's state: shared by the loops. */
typedef struct logger {
    _Atomic uint64_t last_ms; /* when the last line went (0: never) */
    atomic_ulong skipped;     /* lines not written since */
} logger_t;

struct store {
    jrpc__budget_t base;
    char ip[INET6_ADDRSTRLEN]; /* resolved once, at new */
    int port;
    char *password; /* NULL: no AUTH */
    int db;
    uint64_t timeout_ms;
    uint64_t stall_ms; /* max(JRPC__REDIS_STALL_MS, 4 × timeout) */
    int fail_closed;
    char sha[41]; /* the script's SHA-1, hex */
    _Atomic(rloop_t *) loops[JRPC_MAX_IO_THREADS];
    logger_t fail_log, back_log;
};

static void tick(uv_timer_t *t);
static void arm(rloop_t *rl);

static uint64_t now_ms(rloop_t *rl)
{
    return uv_now(&rl->loop->uv);
}

/* A log line through lg, at most one per JRPC__REDIS_LOG_EVERY_MS over all loops; the ones
 * held back are counted in the next. */
__attribute__((format(printf, 4, 5))) static void
log_limited(rloop_t *rl, logger_t *lg, jrpc_log_level_t level, const char *fmt, ...)
{
    if (!jrpc__log_on(rl->loop->cfg, level))
        return;
    uint64_t now = uv_hrtime() / 1000000 + 1; /* never 0 */
    uint64_t last = atomic_load(&lg->last_ms);
    if ((last != 0 && now - last < JRPC__REDIS_LOG_EVERY_MS) ||
        !atomic_compare_exchange_strong(&lg->last_ms, &last, now)) {
        atomic_fetch_add(&lg->skipped, 1);
        return;
    }
    unsigned long skipped = atomic_exchange(&lg->skipped, 0);
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (skipped != 0)
        jrpc__log(rl->loop->cfg, level, NULL, "redis %s:%d: %s (and %lu more since the last line)",
                  rl->st->ip, rl->st->port, msg, skipped);
    else
        jrpc__log(rl->loop->cfg, level, NULL, "redis %s:%d: %s", rl->st->ip, rl->st->port, msg);
}

/* ---- Answers ---------------------------------------------------------------------------------
 */

/* The answer when Redis gave none: every item admitted (open) or none (closed). */
static void answer_fail(store_t *st, jrpc__budget_cb done, void *arg, uint8_t *ok, size_t n)
{
    jrpc__budget_result_t res = {JRPC__BUDGET_OPEN, 0};
    if (st->fail_closed) {
        memset(ok, 0, n);
        res.status = JRPC__BUDGET_CLOSED;
        res.retry_after_ms = 1000;
    }
    done(arg, &res);
}

/* Whether r still waits for its answer. */
static int req_open(const rreq_t *r)
{
    return r->done != NULL || r->kv != NULL;
}

/* Answers r (once) with the fail answer, counted under outcome (a reservation's). */
static void req_fail(rreq_t *r, int outcome)
{
    if (r->is_kv) {
        jrpc_kv_cb kv = r->kv;
        r->kv = NULL;
        if (kv != NULL)
            kv(r->arg, outcome == JRPC__REDIS_TIMEOUT ? JRPC_ETIMEDOUT : JRPC_EIO, NULL, 0, 0);
        return;
    }
    jrpc__budget_cb done = r->done;
    if (done == NULL)
        return;
    r->done = NULL;
    jrpc__ctr_add(&r->rl->outcomes[outcome], 1);
    answer_fail(r->rl->st, done, r->arg, r->ok, r->n);
}

static void req_unlink(rreq_t *r)
{
    if (r->rl != NULL) {
        jrpc__list_remove(&r->node);
        r->rl->nsent--;
    }
}

/* ---- Commands --------------------------------------------------------------------------------
 */

/* Room in the scratch arrays for a command of n items (at most n runs): 0 or JRPC_ENOMEM. */
static int scratch(rloop_t *rl, size_t n)
{
    if (n <= rl->cap_items)
        return 0;
    size_t cap = n < 64 ? 64 : n;
    const char **argv = malloc((2 * cap + 6) * sizeof *argv);
    size_t *argl = malloc((2 * cap + 6) * sizeof *argl);
    char *txt = malloc((2 * cap + 2) * 21);
    if (argv == NULL || argl == NULL || txt == NULL) {
        free(argv);
        free(argl);
        free(txt);
        return JRPC_ENOMEM;
    }
    free(rl->argv);
    free(rl->argl);
    free(rl->txt);
    rl->argv = argv;
    rl->argl = argl;
    rl->txt = txt;
    rl->cap_items = cap;
    return 0;
}

static void on_reply(redisAsyncContext *ac, void *reply, void *priv);

/* Writes v (or "-1" for a skipped run) at p, NUL-terminated: its length. */
static size_t put_num(char *p, uint64_t v, int skip)
{
    if (skip) {
        memcpy(p, "-1", 3);
        return 2;
    }
    return (size_t)sprintf(p, "%llu", (unsigned long long)v);
}

/* Sends r as EVALSHA (or EVAL, the script's text, after NOSCRIPT), its items as runs of equal
 * cost: 0, or -1 when hiredis took nothing (out of memory, or the connection is going). */
static int req_send(rloop_t *rl, rreq_t *r, int eval)
{
    if (scratch(rl, r->n) != 0)
        return -1;
    const char **argv = rl->argv;
    size_t *argl = rl->argl;
    char *p = rl->txt;
    size_t argc = 0;
    argv[argc] = eval ? "EVAL" : "EVALSHA";
    argl[argc] = strlen(argv[argc]);
    argc++;
    argv[argc] = eval ? script : rl->st->sha;
    argl[argc++] = eval ? sizeof script - 1 : 40;
    argv[argc] = "1";
    argl[argc++] = 1;
    argv[argc] = r->key;
    argl[argc++] = r->key_len;
    argv[argc] = p;
    argl[argc] = put_num(p, r->rate, 0);
    p += argl[argc++] + 1;
    argv[argc] = p;
    argl[argc] = put_num(p, r->burst, 0);
    p += argl[argc++] + 1;
    for (size_t i = 0; i < r->n;) {
        int skip = !r->ok[i];
        uint32_t cost = r->costs[i];
        size_t k = 1;
        while (i + k < r->n && (r->ok[i + k] == 0) == skip && (skip || r->costs[i + k] == cost))
            k++;
        argv[argc] = p;
        argl[argc] = put_num(p, cost, skip);
        p += argl[argc++] + 1;
        argv[argc] = p;
        argl[argc] = put_num(p, k, 0);
        p += argl[argc++] + 1;
        i += k;
    }
    return redisAsyncCommandArgv(rl->ac, on_reply, r, (int)argc, argv, argl) == REDIS_OK ? 0 : -1;
}

/* Reads the script's answer into r's items: 0, or -1 when it is not one for n items. */
static int read_answer(const redisReply *rep, rreq_t *r, jrpc__budget_result_t *res)
{
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2)
        return -1;
    const redisReply *flags = rep->element[0], *retry = rep->element[1];
    if (flags->type != REDIS_REPLY_STRING || (size_t)flags->len != r->n ||
        retry->type != REDIS_REPLY_INTEGER || retry->integer < 0)
        return -1;
    for (size_t i = 0; i < r->n; i++)
        r->ok[i] = flags->str[i] == '1';
    res->status = JRPC__BUDGET_OK;
    res->retry_after_ms = (uint64_t)retry->integer;
    return 0;
}

/* A store operation's answer (rep NULL: the connection went): told to its callback, if it still
 * waits; r is freed. */
static void kv_reply(rreq_t *r, const redisReply *rep)
{
    req_unlink(r);
    jrpc_kv_cb kv = r->kv;
    r->kv = NULL;
    if (kv != NULL && r->rl != NULL) {
        if (rep == NULL) {
            kv(r->arg, JRPC_EIO, NULL, 0, 0);
        } else if (rep->type == REDIS_REPLY_NIL) {
            kv(r->arg, JRPC_ENOENT, NULL, 0, 0);
        } else if (rep->type == REDIS_REPLY_STATUS) { /* SET's OK */
            kv(r->arg, 0, NULL, 0, 0);
        } else if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
                   rep->element[0]->type == REDIS_REPLY_STRING &&
                   rep->element[1]->type == REDIS_REPLY_INTEGER && rep->element[1]->integer >= 0) {
            kv(r->arg, 0, rep->element[0]->str, rep->element[0]->len,
               (uint64_t)rep->element[1]->integer);
        } else {
            if (rep->type == REDIS_REPLY_ERROR)
                log_limited(r->rl, &r->rl->st->fail_log, JRPC_LOG_WARN, "store failed: %.*s",
                            (int)rep->len, rep->str);
            kv(r->arg, JRPC_EIO, NULL, 0, 0);
        }
    }
    free(r);
}

static void on_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    rreq_t *r = priv;
    rloop_t *rl = r->rl;
    const redisReply *rep = reply;
    if (r->is_kv) {
        kv_reply(r, rep);
        return;
    }
    if (rl != NULL && r->done != NULL && rep != NULL && rep->type == REDIS_REPLY_ERROR &&
        strncmp(rep->str, "NOSCRIPT", 8) == 0 && !r->retried && rl->ac != NULL) {
        /* The script went (SCRIPT FLUSH, a failover): send this one with its text; the next
         * connection loads it again. Still in flight, so it keeps its place in the list (and its
         * deadline: the list stays in deadline order). */
        r->retried = 1;
        if (req_send(rl, r, 1) == 0)
            return;
    }
    req_unlink(r);
    if (rl != NULL && r->done != NULL) {
        jrpc__budget_result_t res;
        if (rep == NULL) {
            req_fail(r, JRPC__REDIS_ERROR);
        } else if (read_answer(rep, r, &res) != 0) {
            if (rep->type == REDIS_REPLY_ERROR)
                log_limited(rl, &rl->st->fail_log, JRPC_LOG_WARN, "reservation failed: %.*s",
                            (int)rep->len, rep->str);
            else
                log_limited(rl, &rl->st->fail_log, JRPC_LOG_WARN, "unexpected answer (type %d)",
                            rep->type);
            req_fail(r, JRPC__REDIS_ERROR);
        } else {
            jrpc__budget_cb done = r->done;
            r->done = NULL;
            jrpc__ctr_add(&rl->outcomes[JRPC__REDIS_OK], 1);
            done(r->arg, &res);
        }
    }
    free(r);
}

/* ---- The connection --------------------------------------------------------------------------
 */

static void set_state(rloop_t *rl, int state)
{
    rl->state = state;
    atomic_store(&rl->up, state == ST_UP);
}

/* The connection is gone (hiredis frees it, or we do): reconnect after the backoff. */
static void went_down(rloop_t *rl)
{
    rl->ac = NULL;
    rl->drop = 0;
    set_state(rl, ST_DOWN);
    rl->retry_at = now_ms(rl) + rl->backoff_ms;
    rl->backoff_ms *= 2;
    if (rl->backoff_ms > JRPC__REDIS_BACKOFF_MAX_MS)
        rl->backoff_ms = JRPC__REDIS_BACKOFF_MAX_MS;
}

/* Frees the connection (not from inside hiredis's callbacks): what is in flight is answered as
 * failed through on_reply. */
static void drop_now(rloop_t *rl)
{
    redisAsyncContext *ac = rl->ac;
    went_down(rl);
    if (ac != NULL)
        redisAsyncFree(ac);
}

/* Frees the connection once hiredis's callback stack is left: from the timer, at once. */
static void drop_later(rloop_t *rl)
{
    rl->drop = 1;
    arm(rl);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    rloop_t *rl = ac->data;
    if (status == REDIS_OK || rl == NULL || rl->ac != ac)
        return;
    /* hiredis frees ac when this returns, answering what was queued on it. */
    log_limited(rl, &rl->st->fail_log, JRPC_LOG_WARN, "cannot connect: %s", ac->errstr);
    went_down(rl);
    arm(rl);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    (void)status;
    rloop_t *rl = ac->data;
    if (rl == NULL || rl->ac != ac)
        return; /* we dropped it */
    log_limited(rl, &rl->st->fail_log, JRPC_LOG_WARN, "connection lost: %s",
                ac->err ? ac->errstr : "closed by the server");
    went_down(rl);
    arm(rl);
}

/* AUTH's and SELECT's replies: an error drops the connection (a wrong password stays wrong, but
 * retrying with the backoff picks up a fixed server). */
static void on_setup(redisAsyncContext *ac, void *reply, void *priv)
{
    rloop_t *rl = priv;
    const redisReply *rep = reply;
    if (rep == NULL || rl->ac != ac || rep->type != REDIS_REPLY_ERROR)
        return;
    log_limited(rl, &rl->st->fail_log, JRPC_LOG_ERROR, "setup refused: %.*s", (int)rep->len,
                rep->str);
    drop_later(rl);
}

/* SCRIPT LOAD's reply, the last of the setup: the connection is ready. */
static void on_loaded(redisAsyncContext *ac, void *reply, void *priv)
{
    rloop_t *rl = priv;
    const redisReply *rep = reply;
    if (rep == NULL || rl->ac != ac || rl->drop)
        return;
    if (rep->type != REDIS_REPLY_STRING || rep->len != 40 || memcmp(rep->str, rl->st->sha, 40)) {
        log_limited(rl, &rl->st->fail_log, JRPC_LOG_ERROR, "SCRIPT LOAD failed: %.*s",
                    rep->type == REDIS_REPLY_ERROR ? (int)rep->len : 0,
                    rep->type == REDIS_REPLY_ERROR ? rep->str : "");
        drop_later(rl);
        return;
    }
    if (rl->was_up)
        log_limited(rl, &rl->st->back_log, JRPC_LOG_WARN, "connected again");
    rl->was_up = 1;
    rl->backoff_ms = JRPC__REDIS_BACKOFF_MIN_MS;
    set_state(rl, ST_UP);
    arm(rl);
}

/* Starts a connection and its setup; on failure the loop is down with the next attempt due. */
static void connect_start(rloop_t *rl, int queue_ok)
{
    store_t *st = rl->st;
    redisAsyncContext *ac = redisAsyncConnect(st->ip, st->port);
    if (ac == NULL || ac->err) {
        log_limited(rl, &st->fail_log, JRPC_LOG_WARN, "cannot connect: %s",
                    ac != NULL ? ac->errstr : "out of memory");
        if (ac != NULL)
            redisAsyncFree(ac);
        went_down(rl);
        return;
    }
    ac->data = rl;
    if (jrpc__redis_uv_attach(ac, &rl->loop->uv) != 0) {
        redisAsyncFree(ac);
        went_down(rl);
        return;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    rl->ac = ac;
    rl->drop = 0;
    set_state(rl, ST_CONNECTING);
    rl->queue_ok = queue_ok;
    rl->connect_by = now_ms(rl) + st->stall_ms;
    int rc = REDIS_OK;
    if (st->password != NULL)
        rc |= redisAsyncCommand(ac, on_setup, rl, "AUTH %s", st->password);
    if (st->db != 0)
        rc |= redisAsyncCommand(ac, on_setup, rl, "SELECT %d", st->db);
    rc |= redisAsyncCommand(ac, on_loaded, rl, "SCRIPT LOAD %b", script, sizeof script - 1);
    if (rc != REDIS_OK)
        drop_later(rl);
}

/* ---- The timer -------------------------------------------------------------------------------
 */

/* Sets the timer for the next thing due: a deadline, the oldest command's stall bound, the
 * connect bound, the next attempt, or a drop (now). */
static void arm(rloop_t *rl)
{
    if (!rl->started)
        return;
    uint64_t next = UINT64_MAX;
    if (rl->drop) {
        next = 0;
    } else {
        jrpc__list_t *h = &rl->sent;
        for (jrpc__list_t *n = h->next; n != h; n = n->next) {
            rreq_t *r = JRPC__CONTAINER_OF(n, rreq_t, node);
            if (n == h->next && r->sent_ms + rl->st->stall_ms < next)
                next = r->sent_ms + rl->st->stall_ms;
            if (req_open(r)) { /* the first unanswered: deadlines only grow after it */
                if (r->deadline_ms < next)
                    next = r->deadline_ms;
                break;
            }
        }
        if (rl->state == ST_CONNECTING && rl->connect_by < next)
            next = rl->connect_by;
        if (rl->state == ST_DOWN && rl->retry_at < next)
            next = rl->retry_at;
    }
    if (next == rl->armed_ms)
        return;
    rl->armed_ms = next;
    if (next == UINT64_MAX) {
        uv_timer_stop(&rl->timer);
        return;
    }
    uint64_t now = now_ms(rl);
    uv_timer_start(&rl->timer, tick, next > now ? next - now : 0, 0);
}

static void tick(uv_timer_t *t)
{
    rloop_t *rl = t->data;
    rl->armed_ms = UINT64_MAX;
    uint64_t now = now_ms(rl);
    if (rl->drop)
        drop_now(rl);
    /* Overdue answers: the fail answer now; their replies, if any come, are dropped. */
    for (;;) {
        rreq_t *due = NULL;
        jrpc__list_t *h = &rl->sent;
        for (jrpc__list_t *n = h->next; n != h; n = n->next) {
            rreq_t *r = JRPC__CONTAINER_OF(n, rreq_t, node);
            if (req_open(r)) {
                due = r->deadline_ms <= now ? r : NULL;
                break;
            }
        }
        if (due == NULL)
            break;
        log_limited(rl, &rl->st->fail_log, JRPC_LOG_WARN, "no answer within %llu ms",
                    (unsigned long long)rl->st->timeout_ms);
        req_fail(due, JRPC__REDIS_TIMEOUT); /* may reserve again: walk from the start */
    }
    if (rl->ac != NULL && !jrpc__list_empty(&rl->sent)) {
        rreq_t *oldest = JRPC__CONTAINER_OF(rl->sent.next, rreq_t, node);
        if (oldest->sent_ms + rl->st->stall_ms <= now) {
            log_limited(rl, &rl->st->fail_log, JRPC_LOG_WARN,
                        "no answer for %llu ms: dropping the connection",
                        (unsigned long long)(now - oldest->sent_ms));
            drop_now(rl);
        }
    }
    if (rl->ac != NULL && rl->state == ST_CONNECTING && rl->connect_by <= now) {
        log_limited(rl, &rl->st->fail_log, JRPC_LOG_WARN, "not ready within %llu ms",
                    (unsigned long long)rl->st->stall_ms);
        drop_now(rl);
    }
    if (rl->ac == NULL && rl->state == ST_DOWN && rl->retry_at <= now && rl->started)
        connect_start(rl, 0);
    arm(rl);
}

/* ---- The store's operations ------------------------------------------------------------------
 */

/* Whether rl can send now: its connection is ready (or, on the first connect, being set up). */
static int can_send(const rloop_t *rl)
{
    return rl != NULL && rl->started && rl->ac != NULL && !rl->drop &&
           (rl->state != ST_CONNECTING || rl->queue_ok);
}

static void redis_reserve(jrpc__budget_t *b, jrpc__loop_t *loop, const jrpc__bucket_t *bucket,
                          const uint32_t *costs, uint8_t *ok, size_t n, jrpc__budget_cb done,
                          void *arg)
{
    store_t *st = (store_t *)b;
    rloop_t *rl = atomic_load_explicit(&st->loops[loop->index], memory_order_relaxed);
    size_t tried = 0;
    for (size_t i = 0; i < n; i++)
        tried += ok[i] != 0;
    if (tried == 0) { /* nothing to spend: no round trip */
        jrpc__budget_result_t res = {JRPC__BUDGET_OK, 0};
        done(arg, &res);
        return;
    }
    int outcome = -1;
    if (!can_send(rl))
        outcome = JRPC__REDIS_DOWN;
    else if (rl->nsent >= JRPC__REDIS_MAX_PENDING)
        outcome = JRPC__REDIS_FULL;
    rreq_t *r = NULL;
    if (outcome < 0) {
        size_t klen = sizeof KEY_PREFIX - 1 + bucket->name_len;
        r = malloc(sizeof *r + klen + 1);
        if (r == NULL) {
            outcome = JRPC__REDIS_ERROR;
        } else {
            memcpy(r->key, KEY_PREFIX, sizeof KEY_PREFIX - 1);
            memcpy(r->key + sizeof KEY_PREFIX - 1, bucket->name, bucket->name_len);
            r->key[klen] = 0;
            r->key_len = klen;
            r->rl = rl;
            r->kv = NULL;
            r->is_kv = 0;
            r->sent_ms = now_ms(rl);
            r->deadline_ms = r->sent_ms + st->timeout_ms;
            r->done = done;
            r->arg = arg;
            r->costs = costs;
            r->ok = ok;
            r->n = n;
            r->rate = bucket->rate;
            r->burst = bucket->burst;
            r->retried = 0;
            if (req_send(rl, r, 0) != 0) {
                free(r);
                outcome = JRPC__REDIS_ERROR;
            }
        }
    }
    if (outcome >= 0) {
        if (rl != NULL)
            jrpc__ctr_add(&rl->outcomes[outcome], 1);
        answer_fail(st, done, arg, ok, n);
        return;
    }
    jrpc__list_insert_tail(&rl->sent, &r->node);
    rl->nsent++;
    if (rl->armed_ms > r->deadline_ms)
        arm(rl);
}

static const jrpc__budget_ops_t redis_ops;

int jrpc__redis_kv(jrpc__budget_t *b, unsigned index, const char *key, size_t klen, const char *val,
                   size_t vlen, uint64_t ttl_ms, jrpc_kv_cb cb, void *data)
{
    if (b == NULL || b->ops != &redis_ops || index >= JRPC_MAX_IO_THREADS || klen == 0)
        return JRPC_EINVAL;
    store_t *st = (store_t *)b;
    rloop_t *rl = atomic_load_explicit(&st->loops[index], memory_order_relaxed);
    if (!can_send(rl))
        return JRPC_ECLOSED;
    if (rl->nsent >= JRPC__REDIS_MAX_PENDING)
        return JRPC_EBUSY;
    rreq_t *r = calloc(1, sizeof *r + klen + 1);
    if (r == NULL)
        return JRPC_ENOMEM;
    memcpy(r->key, key, klen);
    r->key_len = klen;
    r->rl = rl;
    r->is_kv = 1;
    r->kv = cb;
    r->arg = data;
    r->sent_ms = now_ms(rl);
    r->deadline_ms = r->sent_ms + st->timeout_ms;
    int rc;
    if (val == NULL) {
        const char *argv[] = {"EVAL", kv_get_script, "1", r->key};
        size_t argl[] = {4, sizeof kv_get_script - 1, 1, klen};
        rc = redisAsyncCommandArgv(rl->ac, on_reply, r, 4, argv, argl);
    } else {
        char ttl[24];
        const char *argv[] = {"SET", r->key, val, "PX", ttl};
        size_t argl[] = {3, klen, vlen, 2,
                         (size_t)snprintf(ttl, sizeof ttl, "%llu", (unsigned long long)ttl_ms)};
        rc = redisAsyncCommandArgv(rl->ac, on_reply, r, ttl_ms ? 5 : 3, argv, argl);
    }
    if (rc != REDIS_OK) {
        free(r);
        return JRPC_ENOMEM;
    }
    jrpc__list_insert_tail(&rl->sent, &r->node);
    rl->nsent++;
    if (rl->armed_ms > r->deadline_ms)
        arm(rl);
    return 0;
}

static int redis_loop_start(jrpc__budget_t *b, jrpc__loop_t *loop)
{
    store_t *st = (store_t *)b;
    rloop_t *rl = atomic_load(&st->loops[loop->index]);
    if (rl == NULL) {
        rl = calloc(1, sizeof *rl);
        if (rl == NULL)
            return JRPC_ENOMEM;
        rl->st = st;
        atomic_store(&st->loops[loop->index], rl);
    }
    rl->loop = loop;
    jrpc__list_init(&rl->sent);
    rl->nsent = 0;
    rl->armed_ms = UINT64_MAX;
    rl->backoff_ms = JRPC__REDIS_BACKOFF_MIN_MS;
    rl->was_up = 0;
    int rc = uv_timer_init(&loop->uv, &rl->timer);
    if (rc != 0)
        return rc;
    rl->timer.data = rl;
    rl->started = 1;
    connect_start(rl, 1);
    arm(rl);
    return 0;
}

static void redis_loop_close(jrpc__budget_t *b, jrpc__loop_t *loop)
{
    store_t *st = (store_t *)b;
    rloop_t *rl = atomic_load(&st->loops[loop->index]);
    if (rl == NULL || !rl->started)
        return;
    rl->started = 0; /* nothing more is sent or armed */
    redisAsyncContext *ac = rl->ac;
    rl->ac = NULL;
    set_state(rl, ST_DOWN);
    if (ac != NULL)
        redisAsyncFree(ac); /* answers what is in flight, as failed */
    /* Whatever hiredis did not hold (there is none once it freed its context) is answered too. */
    while (!jrpc__list_empty(&rl->sent)) {
        rreq_t *r = JRPC__CONTAINER_OF(rl->sent.next, rreq_t, node);
        req_unlink(r);
        req_fail(r, JRPC__REDIS_ERROR);
        free(r);
    }
    uv_close((uv_handle_t *)&rl->timer, NULL);
}

static void redis_free(jrpc__budget_t *b)
{
    store_t *st = (store_t *)b;
    for (unsigned i = 0; i < JRPC_MAX_IO_THREADS; i++) {
        rloop_t *rl = atomic_load(&st->loops[i]);
        if (rl == NULL)
            continue;
        free(rl->argv);
        free(rl->argl);
        free(rl->txt);
        free(rl);
    }
    if (st->password != NULL) {
        memset(st->password, 0, strlen(st->password));
        free(st->password);
    }
    free(st);
}

static const jrpc__budget_ops_t redis_ops = {
    .reserve = redis_reserve,
    .loop_start = redis_loop_start,
    .loop_close = redis_loop_close,
    .free = redis_free,
};

/* ---- Making one ------------------------------------------------------------------------------
 */

int jrpc__budget_redis_new(const jrpc__redis_opts_t *o, jrpc__budget_t **out, char *err,
                           size_t errlen)
{
    *out = NULL;
    char host[256], pw[256];
    unsigned port;
    int db;
    const char *why;
    if (jrpc__redis_url_parse(o->url, host, sizeof host, &port, pw, sizeof pw, &db, &why) != 0) {
        snprintf(err, errlen, "%s", why);
        return JRPC_EINVAL;
    }
    if (o->timeout_ms == 0 || o->timeout_ms > JRPC__REDIS_MAX_TIMEOUT_MS) {
        snprintf(err, errlen, "redis timeout must be 1 to %u ms", JRPC__REDIS_MAX_TIMEOUT_MS);
        return JRPC_EINVAL;
    }
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(host, NULL, &hints, &ai);
    if (rc != 0 || ai == NULL) {
        snprintf(err, errlen, "redis_url: host %s does not resolve (%s)", host,
                 rc != 0 ? gai_strerror(rc) : "no address");
        return JRPC_EINVAL;
    }
    store_t *st = calloc(1, sizeof *st);
    if (st == NULL) {
        freeaddrinfo(ai);
        return JRPC_ENOMEM;
    }
    const void *a = ai->ai_family == AF_INET6
                        ? (const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr
                        : (const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr;
    inet_ntop(ai->ai_family, a, st->ip, sizeof st->ip);
    freeaddrinfo(ai);
    st->base.ops = &redis_ops;
    st->port = (int)port;
    const char *password = o->password != NULL && o->password[0] ? o->password : pw;
    if (password[0] && (st->password = strdup(password)) == NULL) {
        free(st);
        return JRPC_ENOMEM;
    }
    memset(pw, 0, sizeof pw);
    st->db = o->db >= 0 ? o->db : db >= 0 ? db : 0;
    st->timeout_ms = o->timeout_ms;
    st->stall_ms =
        o->timeout_ms * 4 > JRPC__REDIS_STALL_MS ? o->timeout_ms * 4 : JRPC__REDIS_STALL_MS;
    st->fail_closed = o->fail_closed;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    if (EVP_Digest(script, sizeof script - 1, md, &mdlen, EVP_sha1(), NULL) != 1 || mdlen != 20) {
        redis_free(&st->base);
        return JRPC_ENOMEM;
    }
    for (unsigned i = 0; i < 20; i++)
        sprintf(st->sha + 2 * i, "%02x", md[i]);
    *out = &st->base;
    return 0;
}

void jrpc__budget_redis_stats(jrpc__budget_t *b, jrpc__redis_stats_t *out)
{
    memset(out, 0, sizeof *out);
    if (b == NULL || b->ops != &redis_ops)
        return;
    store_t *st = (store_t *)b;
    for (unsigned i = 0; i < JRPC_MAX_IO_THREADS; i++) {
        rloop_t *rl = atomic_load(&st->loops[i]);
        if (rl == NULL)
            continue;
        out->loops++;
        out->loops_up += atomic_load(&rl->up) != 0;
        for (unsigned k = 0; k < JRPC__REDIS_OUTCOMES; k++)
            out->outcomes[k] += jrpc__ctr_get(&rl->outcomes[k]);
    }
}

const char *jrpc__redis_outcome_name(unsigned i)
{
    static const char *const names[] = {
#define XX(name, label) label,
        JRPC__REDIS_OUTCOME_MAP(XX)
#undef XX
    };
    return i < JRPC__REDIS_OUTCOMES ? names[i] : "";
}
