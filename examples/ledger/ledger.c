/* SPDX-License-Identifier: MIT */
/* ledger.c — the Lido-style methods of seed 000 as a jrpcd module over SQLite (db.c): share
 * balances as uint256 decimal strings, an atomic transfer, withdrawal NFTs and the last rebase
 * event. Every method runs on the worker pool, since SQLite blocks, and takes its params by
 * position or by name:
 *
 *   shares.balance           [address] | {"address"}               → "decimal"
 *   shares.total             [] | {} | none                        → "decimal"
 *   shares.transfer          [from, to, amount] | {"from","to","amount"}
 *                            → {"from": "balance", "to": "balance"}; refused inside batches
 *   unsteth.getNFTsByAccount [address] | {"address"}               → [{amountOfStETH, …, id}]
 *   events.stethEvents.getLastRebaseEvent  [] | {} | none          → {eventName, args, …} | null
 *
 * Addresses are "0x" + 40 hex digits in any case (stored lowercase); amounts are decimal strings
 * (or JSON integers) of 0 … 2^256-1 in canonical form. docs/ledger.md has the details. */
#include "jrpc.h"

#include "db.h"
#include "uint256.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* An address as stored: "0x", 40 lowercase hex digits, NUL. */
#define ADDRESS_LEN 42
typedef char ledger_addr_t[ADDRESS_LEN + 1];

/* ---- Params ---------------------------------------------------------------------------------- */

/* Replies -32602 with `message` (printf-style) and data {"param": …, "usage": …}. */
__attribute__((format(printf, 4, 5))) static void
ledger_invalid(jrpc_call_t *call, const char *param, const char *usage, const char *fmt, ...)
{
    char message[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);

    jrpc_buf_t data;
    jrpc_buf_init(&data);
    jrpc_buf_appendz(&data, "{");
    if (param != NULL) {
        jrpc_buf_appendz(&data, "\"param\":");
        jrpc_buf_json_string(&data, param, strlen(param));
        jrpc_buf_appendz(&data, ",");
    }
    jrpc_buf_appendz(&data, "\"usage\":");
    jrpc_buf_json_string(&data, usage, strlen(usage));
    jrpc_buf_append(&data, "}", 2); /* with the NUL jrpc_reply_error needs */
    jrpc_reply_error(call, JRPC_CODE_INVALID_PARAMS, message, data.err ? NULL : data.ptr);
    jrpc_buf_free(&data);
}

/* Finds the n params called names[] in params given as an array of exactly n values or an object
 * with exactly those members (absent params count as [] when n is 0). 0, or -1 after replying
 * -32602. */
static int ledger_params(jrpc_call_t *call, const char *usage, const char *const names[], size_t n,
                         jrpc_json_t vals[])
{
    jrpc_json_t params = jrpc_call_params(call);
    switch (jrpc_json_type(params)) {
    case JRPC_JSON_NONE:
        if (n == 0)
            return 0;
        ledger_invalid(call, NULL, usage, "missing params: expected %zu", n);
        return -1;
    case JRPC_JSON_ARRAY: {
        size_t got = jrpc_json_count(params);
        if (got != n) {
            ledger_invalid(call, NULL, usage, "expected %zu param%s, got %zu", n, n == 1 ? "" : "s",
                           got);
            return -1;
        }
        for (size_t i = 0; i < n; i++)
            jrpc_json_at(params, i, &vals[i]);
        return 0;
    }
    case JRPC_JSON_OBJECT: {
        for (size_t i = 0; i < n; i++)
            vals[i].ptr = NULL;
        jrpc_json_iter_t it;
        jrpc_json_t key, val;
        jrpc_json_iter_init(&it, params);
        while (jrpc_json_iter_next(&it, &key, &val)) {
            size_t i = 0;
            while (i < n && !jrpc_json_string_eq(key, names[i], strlen(names[i])))
                i++;
            if (i == n) {
                ledger_invalid(call, NULL, usage, "unknown param %.*s", (int)key.len, key.ptr);
                return -1;
            }
            if (vals[i].ptr != NULL) {
                ledger_invalid(call, names[i], usage, "param \"%s\" given twice", names[i]);
                return -1;
            }
            vals[i] = val;
        }
        for (size_t i = 0; i < n; i++) {
            if (vals[i].ptr == NULL) {
                ledger_invalid(call, names[i], usage, "missing param \"%s\"", names[i]);
                return -1;
            }
        }
        return 0;
    }
    default:
        ledger_invalid(call, NULL, usage, "params must be an array or an object");
        return -1;
    }
}

/* An address param into its stored form; 0, or -1 after replying -32602. */
static int ledger_address(jrpc_call_t *call, const char *usage, const char *name, jrpc_json_t v,
                          ledger_addr_t out)
{
    size_t len = 0;
    if (jrpc_json_type(v) != JRPC_JSON_STRING) {
        ledger_invalid(call, name, usage, "%s must be a string", name);
        return -1;
    }
    int ok = jrpc_json_string(v, out, ADDRESS_LEN + 1, &len) == 0 && len == ADDRESS_LEN &&
             out[0] == '0' && out[1] == 'x';
    for (size_t i = 2; ok && i < ADDRESS_LEN; i++) {
        char c = out[i];
        if (c >= 'A' && c <= 'F')
            out[i] = (char)(c - 'A' + 'a');
        else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            ok = 0;
    }
    if (!ok) {
        ledger_invalid(call, name, usage, "%s must be \"0x\" followed by 40 hex digits", name);
        return -1;
    }
    return 0;
}

/* An amount param: a decimal string or a JSON integer, 0 … 2^256-1. 0, or -1 after replying. */
static int ledger_amount(jrpc_call_t *call, const char *usage, const char *name, jrpc_json_t v,
                         u256_t *out)
{
    /* The longest canonical amount is 78 digits; a few more let the parser say what is wrong
     * (a leading zero, too large) rather than only "too long". */
    char buf[U256_DIGITS_MAX + 8];
    const char *digits = buf;
    size_t len = 0;
    switch (jrpc_json_type(v)) {
    case JRPC_JSON_STRING:
        if (jrpc_json_string(v, buf, sizeof(buf), &len) != 0) {
            ledger_invalid(call, name, usage, "%s is longer than %d digits", name, U256_DIGITS_MAX);
            return -1;
        }
        break;
    case JRPC_JSON_NUMBER:
        /* The number's own text: JSON has already ruled out leading zeros and a '+'. */
        if (memchr(v.ptr, '.', v.len) || memchr(v.ptr, 'e', v.len) || memchr(v.ptr, 'E', v.len)) {
            ledger_invalid(call, name, usage, "%s must be an integer", name);
            return -1;
        }
        digits = v.ptr;
        len = v.len;
        break;
    default:
        ledger_invalid(call, name, usage, "%s must be a decimal string or an integer", name);
        return -1;
    }
    if (len > 0 && digits[0] == '-') {
        ledger_invalid(call, name, usage, "%s must not be negative", name);
        return -1;
    }
    int rc = u256_parse(out, digits, len);
    if (rc != 0) {
        ledger_invalid(call, name, usage, "%s %s", name, u256_strerror(rc));
        return -1;
    }
    return 0;
}

/* ---- Replies --------------------------------------------------------------------------------- */

/* -32603 for a database failure; the SQLite message goes in data. */
static void ledger_db_error(jrpc_call_t *call, const char *what)
{
    jrpc_buf_t data;
    jrpc_buf_init(&data);
    jrpc_buf_appendz(&data, "{\"database\":");
    jrpc_buf_json_string(&data, what, strlen(what));
    jrpc_buf_append(&data, "}", 2);
    jrpc_reply_error(call, JRPC_CODE_INTERNAL_ERROR, "database error", data.err ? NULL : data.ptr);
    jrpc_buf_free(&data);
}

static void ledger_reply_buf(jrpc_call_t *call, jrpc_buf_t *out)
{
    if (out->err != 0) {
        jrpc_buf_free(out);
        jrpc_reply_error(call, JRPC_CODE_INTERNAL_ERROR, "out of memory", NULL);
        return;
    }
    jrpc_reply_buf(call, out);
}

/* This thread's connection, or NULL after replying -32603. */
static ledger_conn_t *ledger_conn(jrpc_call_t *call, ledger_db_t *db)
{
    char err[512];
    ledger_conn_t *c = ledger_db_conn(db, err, sizeof(err));
    if (c == NULL)
        ledger_db_error(call, err);
    return c;
}

/* The opening of a method without params: this thread's connection, or NULL after replying. */
static ledger_conn_t *ledger_begin(jrpc_call_t *call, ledger_db_t *db, const char *usage)
{
    if (ledger_params(call, usage, NULL, 0, NULL) != 0)
        return NULL;
    return ledger_conn(call, db);
}

/* The opening of a method whose one param is "address": the address into addr and this thread's
 * connection, or NULL after replying. */
static ledger_conn_t *ledger_begin_address(jrpc_call_t *call, ledger_db_t *db, const char *usage,
                                           ledger_addr_t addr)
{
    static const char *const names[] = {"address"};
    jrpc_json_t arg;
    if (ledger_params(call, usage, names, 1, &arg) != 0 ||
        ledger_address(call, usage, "address", arg, addr) != 0)
        return NULL;
    return ledger_conn(call, db);
}

/* Ends a query whose rows were written into out: rc is the last sqlite3_step's. Replies out when
 * the rows ran to SQLITE_DONE, else -32603 with SQLite's message (read before the reset, which
 * would replace it); st is reset either way. */
static void ledger_reply_rows(jrpc_call_t *call, ledger_conn_t *c, sqlite3_stmt *st, int rc,
                              jrpc_buf_t *out)
{
    if (rc != SQLITE_DONE) {
        jrpc_buf_free(out);
        ledger_db_error(call, sqlite3_errmsg(c->db));
        sqlite3_reset(st);
        return;
    }
    sqlite3_reset(st);
    ledger_reply_buf(call, out);
}

/* Text column i as a JSON string (NULL becomes ""). */
static void ledger_col_string(jrpc_buf_t *b, sqlite3_stmt *st, int i)
{
    const unsigned char *s = sqlite3_column_text(st, i);
    jrpc_buf_json_string(b, s ? (const char *)s : "", (size_t)sqlite3_column_bytes(st, i));
}

/* Integer column i as a JSON string of its decimal digits ("777"). */
static void ledger_col_int_string(jrpc_buf_t *b, sqlite3_stmt *st, int i)
{
    jrpc_buf_append(b, "\"", 1);
    jrpc_buf_json_int64(b, sqlite3_column_int64(st, i));
    jrpc_buf_append(b, "\"", 1);
}

/* ---- Shares ---------------------------------------------------------------------------------- */

/* The shares of `addr` into *out (0 when the account is unknown). SQLITE_OK, or an error code,
 * SQLITE_CORRUPT when the stored amount is not a uint256. */
static int ledger_read_balance(ledger_conn_t *c, const char *addr, u256_t *out)
{
    sqlite3_stmt *st = c->q[LEDGER_Q_BALANCE];
    sqlite3_bind_text(st, 1, addr, ADDRESS_LEN, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const char *s = (const char *)sqlite3_column_text(st, 0);
        rc = s && u256_parse(out, s, (size_t)sqlite3_column_bytes(st, 0)) == 0 ? SQLITE_OK
                                                                               : SQLITE_CORRUPT;
    } else if (rc == SQLITE_DONE) {
        *out = (u256_t){{0, 0, 0, 0}};
        rc = SQLITE_OK;
    }
    sqlite3_reset(st);
    return rc;
}

static void ledger_reply_u256(jrpc_call_t *call, const u256_t *v)
{
    char digits[U256_BUF];
    size_t n = u256_format(v, digits);
    jrpc_reply_string(call, digits, n);
}

static void shares_balance(jrpc_call_t *call, void *data)
{
    static const char usage[] = "shares.balance [address] or {\"address\": \"0x…\"}";
    ledger_addr_t addr;
    ledger_conn_t *c = ledger_begin_address(call, data, usage, addr);
    if (c == NULL)
        return;
    u256_t v;
    int rc = ledger_read_balance(c, addr, &v);
    if (rc != SQLITE_OK) {
        ledger_db_error(call, rc == SQLITE_CORRUPT ? "stored amount is not a uint256"
                                                   : sqlite3_errmsg(c->db));
        return;
    }
    ledger_reply_u256(call, &v);
}

static void shares_total(jrpc_call_t *call, void *data)
{
    static const char usage[] = "shares.total [] or {} or no params";
    ledger_conn_t *c = ledger_begin(call, data, usage);
    if (c == NULL)
        return;
    /* One statement, so one read transaction: the sum is of a single snapshot, never half a
     * transfer. SUM() in SQL would be a double past 2^63. */
    sqlite3_stmt *st = c->q[LEDGER_Q_AMOUNTS];
    u256_t total = {{0, 0, 0, 0}}, v;
    const char *fault = NULL;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *s = (const char *)sqlite3_column_text(st, 0);
        if (s == NULL || u256_parse(&v, s, (size_t)sqlite3_column_bytes(st, 0)) != 0)
            fault = "stored amount is not a uint256";
        else if (u256_add(&total, &total, &v) != 0)
            fault = "total shares exceed 2^256-1";
        if (fault != NULL)
            break;
    }
    if (fault == NULL && rc != SQLITE_DONE)
        fault = sqlite3_errmsg(c->db);
    if (fault != NULL) {
        ledger_db_error(call, fault);
        sqlite3_reset(st);
        return;
    }
    sqlite3_reset(st);
    ledger_reply_u256(call, &total);
}

/* Writes the balance of addr; SQLite's result code. */
static int ledger_write_balance(ledger_conn_t *c, const char *addr, const u256_t *v)
{
    char digits[U256_BUF];
    size_t n = u256_format(v, digits);
    sqlite3_stmt *st = c->q[LEDGER_Q_SET];
    sqlite3_bind_text(st, 1, addr, ADDRESS_LEN, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, digits, (int)n, SQLITE_STATIC);
    int rc = ledger_exec(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Why a transfer did not happen. */
typedef enum { XFER_OK, XFER_DB, XFER_CORRUPT, XFER_INSUFFICIENT, XFER_OVERFLOW } xfer_result_t;

/* The transfer itself, inside BEGIN IMMEDIATE … COMMIT under the write lock: the balances read
 * are the ones the writes replace, in this process and against any other. On XFER_DB, `why` gets
 * SQLite's message (taken before the ROLLBACK, which would replace it). */
static xfer_result_t ledger_transfer(ledger_conn_t *c, const char *from, const char *to,
                                     const u256_t *amount, u256_t *from_bal, u256_t *to_bal,
                                     char *why, size_t cap)
{
    xfer_result_t res = XFER_DB;
    ledger_db_write_lock(c->owner);
    if (ledger_exec(c->q[LEDGER_Q_BEGIN]) != SQLITE_DONE)
        goto rollback;
    int rc = ledger_read_balance(c, from, from_bal);
    if (rc == SQLITE_OK)
        rc = ledger_read_balance(c, to, to_bal);
    if (rc != SQLITE_OK) {
        res = rc == SQLITE_CORRUPT ? XFER_CORRUPT : XFER_DB;
        goto rollback;
    }
    if (u256_cmp(from_bal, amount) < 0) {
        res = XFER_INSUFFICIENT;
        goto rollback;
    }
    if (strcmp(from, to) != 0 && !u256_is_zero(amount)) {
        u256_t new_to;
        /* Cannot happen while the total stays below 2^256, but a hand-edited file could. */
        if (u256_add(&new_to, to_bal, amount) != 0) {
            res = XFER_OVERFLOW;
            goto rollback;
        }
        u256_sub(from_bal, from_bal, amount);
        *to_bal = new_to;
        if (ledger_write_balance(c, from, from_bal) != SQLITE_OK ||
            ledger_write_balance(c, to, to_bal) != SQLITE_OK)
            goto rollback;
    }
    if (ledger_exec(c->q[LEDGER_Q_COMMIT]) != SQLITE_DONE)
        goto rollback;
    ledger_db_write_unlock(c->owner);
    return XFER_OK;

rollback:
    if (res == XFER_DB)
        snprintf(why, cap, "%s", sqlite3_errmsg(c->db));
    if (!sqlite3_get_autocommit(c->db))
        ledger_exec(c->q[LEDGER_Q_ROLLBACK]);
    ledger_db_write_unlock(c->owner);
    return res;
}

static void shares_transfer(jrpc_call_t *call, void *data)
{
    static const char usage[] = "shares.transfer [from, to, amount] or "
                                "{\"from\": \"0x…\", \"to\": \"0x…\", \"amount\": \"decimal\"}";
    static const char *const names[] = {"from", "to", "amount"};
    jrpc_json_t args[3];
    ledger_addr_t from, to;
    u256_t amount;
    if (ledger_params(call, usage, names, 3, args) != 0 ||
        ledger_address(call, usage, "from", args[0], from) != 0 ||
        ledger_address(call, usage, "to", args[1], to) != 0 ||
        ledger_amount(call, usage, "amount", args[2], &amount) != 0)
        return;
    ledger_conn_t *c = ledger_conn(call, data);
    if (c == NULL)
        return;

    u256_t from_bal, to_bal;
    char a[U256_BUF], b[U256_BUF], why[256];
    jrpc_buf_t out;
    jrpc_buf_init(&out);
    switch (ledger_transfer(c, from, to, &amount, &from_bal, &to_bal, why, sizeof(why))) {
    case XFER_OK:
        jrpc_buf_appendz(&out, "{\"from\":\"");
        jrpc_buf_append(&out, a, u256_format(&from_bal, a));
        jrpc_buf_appendz(&out, "\",\"to\":\"");
        jrpc_buf_append(&out, b, u256_format(&to_bal, b));
        jrpc_buf_appendz(&out, "\"}");
        ledger_reply_buf(call, &out);
        return;
    case XFER_INSUFFICIENT:
        /* Digits and hex only: nothing to escape. */
        jrpc_buf_appendz(&out, "{\"from\":\"");
        jrpc_buf_appendz(&out, from);
        jrpc_buf_appendz(&out, "\",\"balance\":\"");
        jrpc_buf_append(&out, a, u256_format(&from_bal, a));
        jrpc_buf_appendz(&out, "\",\"amount\":\"");
        jrpc_buf_append(&out, b, u256_format(&amount, b));
        jrpc_buf_append(&out, "\"}", 3);
        jrpc_reply_error(call, JRPC_CODE_SERVER_ERROR, "insufficient balance",
                         out.err ? NULL : out.ptr);
        break;
    case XFER_OVERFLOW:
        jrpc_reply_error(call, JRPC_CODE_SERVER_ERROR, "balance of \"to\" would exceed 2^256-1",
                         NULL);
        break;
    case XFER_CORRUPT:
        ledger_db_error(call, "stored amount is not a uint256");
        break;
    case XFER_DB:
        ledger_db_error(call, why);
        break;
    }
    jrpc_buf_free(&out);
}

/* ---- Withdrawal NFTs and rebase events ------------------------------------------------------- */

static void unsteth_nfts(jrpc_call_t *call, void *data)
{
    static const char usage[] = "unsteth.getNFTsByAccount [address] or {\"address\": \"0x…\"}";
    ledger_addr_t addr;
    ledger_conn_t *c = ledger_begin_address(call, data, usage, addr);
    if (c == NULL)
        return;
    sqlite3_stmt *st = c->q[LEDGER_Q_NFTS];
    sqlite3_bind_text(st, 1, addr, ADDRESS_LEN, SQLITE_STATIC);
    jrpc_buf_t out;
    jrpc_buf_init(&out);
    jrpc_buf_appendz(&out, "[");
    int rc, first = 1;
    /* Field order and types as seed 000 shows them: numbers as decimal strings, flags as
     * booleans, the id as a string. */
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        jrpc_buf_appendz(&out, first ? "{\"amountOfStETH\":" : ",{\"amountOfStETH\":");
        first = 0;
        ledger_col_string(&out, st, 0);
        jrpc_buf_appendz(&out, ",\"amountOfShares\":");
        ledger_col_string(&out, st, 1);
        jrpc_buf_appendz(&out, ",\"owner\":");
        ledger_col_string(&out, st, 2);
        jrpc_buf_appendz(&out, ",\"timestamp\":");
        ledger_col_string(&out, st, 3);
        jrpc_buf_appendz(&out, sqlite3_column_int(st, 4) ? ",\"isFinalized\":true"
                                                         : ",\"isFinalized\":false");
        jrpc_buf_appendz(&out, sqlite3_column_int(st, 5) ? ",\"isClaimed\":true"
                                                         : ",\"isClaimed\":false");
        jrpc_buf_appendz(&out, ",\"id\":");
        ledger_col_int_string(&out, st, 6);
        jrpc_buf_appendz(&out, "}");
    }
    jrpc_buf_appendz(&out, "]");
    ledger_reply_rows(call, c, st, rc, &out);
}

static void rebase_last(jrpc_call_t *call, void *data)
{
    static const char usage[] = "events.stethEvents.getLastRebaseEvent [] or {} or no params";
    ledger_conn_t *c = ledger_begin(call, data, usage);
    if (c == NULL)
        return;
    /* The args of TokenRebased in the event's order; columns 0-6 of LEDGER_Q_REBASE. */
    static const char *const arg_names[] = {
        "reportTimestamp", "timeElapsed",    "preTotalShares",    "preTotalEther",
        "postTotalShares", "postTotalEther", "sharesMintedAsFees"};
    sqlite3_stmt *st = c->q[LEDGER_Q_REBASE];
    jrpc_buf_t out;
    jrpc_buf_init(&out);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        jrpc_buf_appendz(&out, "{\"eventName\":\"TokenRebased\",\"args\":{");
        for (int i = 0; i < 7; i++) {
            jrpc_buf_appendz(&out, i ? ",\"" : "\"");
            jrpc_buf_appendz(&out, arg_names[i]);
            jrpc_buf_appendz(&out, "\":");
            ledger_col_string(&out, st, i);
        }
        jrpc_buf_appendz(&out, "},\"address\":");
        ledger_col_string(&out, st, 7);
        jrpc_buf_appendz(&out, ",\"topics\":[");
        ledger_col_string(&out, st, 8);
        jrpc_buf_appendz(&out, ",");
        ledger_col_string(&out, st, 9);
        jrpc_buf_appendz(&out, "],\"data\":");
        ledger_col_string(&out, st, 10);
        /* As the seed has them: blockNumber a string, the two indexes numbers. */
        jrpc_buf_appendz(&out, ",\"blockNumber\":");
        ledger_col_int_string(&out, st, 11);
        jrpc_buf_appendz(&out, ",\"transactionHash\":");
        ledger_col_string(&out, st, 12);
        jrpc_buf_appendz(&out, ",\"transactionIndex\":");
        jrpc_buf_json_int64(&out, sqlite3_column_int64(st, 13));
        jrpc_buf_appendz(&out, ",\"blockHash\":");
        ledger_col_string(&out, st, 14);
        jrpc_buf_appendz(&out, ",\"logIndex\":");
        jrpc_buf_json_int64(&out, sqlite3_column_int64(st, 15));
        jrpc_buf_appendz(&out,
                         sqlite3_column_int(st, 16) ? ",\"removed\":true}" : ",\"removed\":false}");
        rc = SQLITE_DONE;
    } else if (rc == SQLITE_DONE) {
        jrpc_buf_appendz(&out, "null"); /* no rebase yet */
    }
    ledger_reply_rows(call, c, st, rc, &out);
}

/* ---- Registration ---------------------------------------------------------------------------- */

/* Docs for rpc.discover: OpenRPC ContentDescriptors, written out as JSON text. */
#define UINT256_SCHEMA "{\"type\":\"string\",\"pattern\":\"^(0|[1-9][0-9]{0,77})$\"}"
#define ADDRESS_PARAM(name, what)                                                                  \
    "{\"name\":\"" name "\",\"required\":true,\"description\":\"" what "\",\"schema\":"            \
    "{\"type\":\"string\",\"pattern\":\"^0x[0-9a-fA-F]{40}$\"}}"
#define AMOUNT_PARAM                                                                               \
    "{\"name\":\"amount\",\"required\":true,\"description\":\"Shares to move, 0 to 2^256-1\","     \
    "\"schema\":{\"oneOf\":[" UINT256_SCHEMA ",{\"type\":\"integer\",\"minimum\":0}]}}"
#define FROM_PARAM ADDRESS_PARAM("from", "Account the shares leave")
#define TO_PARAM ADDRESS_PARAM("to", "Account the shares go to")
#define TRANSFER_PARAMS "[" FROM_PARAM "," TO_PARAM "," AMOUNT_PARAM "]"
#define BALANCES_RESULT                                                                            \
    "{\"name\":\"balances\",\"description\":\"Both balances after the transfer\",\"schema\":"      \
    "{\"type\":\"object\",\"properties\":{\"from\":" UINT256_SCHEMA ",\"to\":" UINT256_SCHEMA      \
    "},\"required\":[\"from\",\"to\"]}}"
#define NFTS_RESULT                                                                                \
    "{\"name\":\"nfts\",\"schema\":{\"type\":\"array\",\"items\":{\"type\":\"object\","            \
    "\"properties\":{\"amountOfStETH\":" UINT256_SCHEMA ",\"amountOfShares\":" UINT256_SCHEMA      \
    ",\"owner\":{\"type\":\"string\"},\"timestamp\":" UINT256_SCHEMA                               \
    ",\"isFinalized\":{\"type\":\"boolean\"},\"isClaimed\":{\"type\":\"boolean\"},"                \
    "\"id\":" UINT256_SCHEMA "}}}}"
#define EVENT_RESULT                                                                               \
    "{\"name\":\"event\",\"schema\":{\"oneOf\":[{\"type\":\"null\"},{\"type\":\"object\","         \
    "\"properties\":{\"eventName\":{\"const\":\"TokenRebased\"},\"args\":{\"type\":\"object\"},"   \
    "\"address\":{\"type\":\"string\"},\"topics\":{\"type\":\"array\",\"items\":"                  \
    "{\"type\":\"string\"}},\"data\":{\"type\":\"string\"},\"blockNumber\":" UINT256_SCHEMA        \
    ",\"transactionHash\":{\"type\":\"string\"},\"transactionIndex\":{\"type\":\"integer\"},"      \
    "\"blockHash\":{\"type\":\"string\"},\"logIndex\":{\"type\":\"integer\"},"                     \
    "\"removed\":{\"type\":\"boolean\"}}}]}}"

static const struct ledger_method {
    const char *name;
    jrpc_method_cb cb;
    unsigned flags;
    const char *summary;
    const char *params; /* JSON array of ContentDescriptors */
    const char *result; /* one ContentDescriptor */
} ledger_methods[] = {
    {"shares.balance", shares_balance, JRPC_WORKER,
     "Shares held by an account, as a uint256 decimal string (\"0\" if unknown)",
     "[" ADDRESS_PARAM("address", "Account, any letter case") "]",
     "{\"name\":\"balance\",\"schema\":" UINT256_SCHEMA "}"},
    {"shares.total", shares_total, JRPC_WORKER, "Sum of all shares, as a uint256 decimal string",
     "[]", "{\"name\":\"total\",\"schema\":" UINT256_SCHEMA "}"},
    /* Alone only: a transfer's result is worth checking before the next call is sent, and
     * seed 002's "methods refused inside batches" gets a real example. */
    {"shares.transfer", shares_transfer, JRPC_WORKER | JRPC_NO_BATCH,
     "Moves shares between two accounts atomically; not available in batch requests",
     TRANSFER_PARAMS, BALANCES_RESULT},
    {"unsteth.getNFTsByAccount", unsteth_nfts, JRPC_WORKER,
     "Withdrawal request NFTs (unstETH) listed under an account, by id",
     "[" ADDRESS_PARAM("address", "Account, any letter case") "]", NFTS_RESULT},
    {"events.stethEvents.getLastRebaseEvent", rebase_last, JRPC_WORKER,
     "The last TokenRebased event of stETH (null if none)", "[]", EVENT_RESULT},
};

JRPC_EXTERN int jrpc_module_init(jrpc_server_t *srv, const char *args);

/* args: the database path (default LEDGER_DEFAULT_PATH, relative to the working directory).
 * jrpcd --check makes a checking server: then the database is only checked, never created. */
JRPC_EXTERN int jrpc_module_init(jrpc_server_t *srv, const char *args)
{
    char err[1024];
#ifdef JRPC_HAVE_SERVER_CHECKING
    int check = jrpc_server_checking(srv);
#else
    int check = 0;
#endif
    ledger_db_t *db = ledger_db_open(args, check, err, sizeof(err));
    if (db == NULL) {
        /* jrpcd names the module and the failing code; this line says why. */
        fprintf(stderr, "ledger: %s\n", err);
        return JRPC_EINVAL;
    }
    for (size_t i = 0; i < sizeof(ledger_methods) / sizeof(ledger_methods[0]); i++) {
        const struct ledger_method *m = &ledger_methods[i];
        int rc = jrpc_method_add(srv, m->name, m->cb, db, m->flags);
#ifdef JRPC_HAVE_METHOD_DOC
        if (rc == 0)
            rc = jrpc_method_doc(srv, m->name, m->summary, m->params, m->result);
#endif
        if (rc != 0)
            return rc;
    }
    return 0;
}
