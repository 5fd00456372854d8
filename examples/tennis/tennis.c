/* SPDX-License-Identifier: MIT */
/* tennis.c — the methods of the Sajya batch example (seed 001), written as a jrpcd module: the
 * smallest useful one. It shows what a module of your own needs: export jrpc_module_init with
 * JRPC_EXTERN, register methods with jrpc_method_add, read params through the jrpc_json_*
 * views (valid only until the reply, so copy what you keep), reply exactly once, and guard
 * shared state yourself, since inline handlers run on several io threads at once.
 *
 *   tennis@ping      → "pong"
 *   message@create   ["text"] or {"text": "…"} → {"id": N, "text": "…"}
 */
#include "jrpc.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Messages kept: the most recent 10000. A demo store must not grow without bound under a load
 * test or a hostile client; 10000 messages of at most MESSAGE_TEXT_MAX bytes cap it at ~40 MB. */
#define MESSAGE_KEEP 10000
/* Longest text accepted, in bytes after unescaping: a chat message, not a file upload, and the
 * bound that makes the cap above hold. */
#define MESSAGE_TEXT_MAX 4096
#define STRINGIFY(x) #x
#define XSTRINGIFY(x) STRINGIFY(x)

typedef struct message {
    uint64_t id; /* server-assigned, increasing from 1; 0: slot empty */
    char *text;  /* malloc'd copy, may contain NUL bytes */
    size_t len;  /* bytes in text */
} message_t;

/* The store: a ring of the last MESSAGE_KEEP messages. The lock is held only to take an id and
 * swap one slot, which is why message@create may run inline on the io loop. */
static struct {
    pthread_mutex_t lock;
    uint64_t next_id;             /* id of the next message */
    message_t ring[MESSAGE_KEEP]; /* slot = (id - 1) % MESSAGE_KEEP */
} store = {.lock = PTHREAD_MUTEX_INITIALIZER, .next_id = 1};

static void tennis_ping(jrpc_call_t *call, void *data)
{
    (void)data;
    static const char pong[] = "\"pong\"";
    jrpc_reply_raw(call, pong, sizeof(pong) - 1);
}

/* Finds the text in ["text"] or {"text": "…"}; 0 or -1. */
static int message_params_text(jrpc_json_t params, jrpc_json_t *text)
{
    int rc = -1;
    switch (jrpc_json_type(params)) {
    case JRPC_JSON_ARRAY:
        if (jrpc_json_count(params) == 1)
            rc = jrpc_json_at(params, 0, text);
        break;
    case JRPC_JSON_OBJECT:
        if (jrpc_json_count(params) == 1)
            rc = jrpc_json_get(params, "text", text);
        break;
    default:
        break;
    }
    return rc == 0 && jrpc_json_type(*text) == JRPC_JSON_STRING ? 0 : -1;
}

static void message_create(jrpc_call_t *call, void *data)
{
    (void)data;
    jrpc_json_t text_json;
    if (message_params_text(jrpc_call_params(call), &text_json) != 0) {
        jrpc_reply_error(call, JRPC_CODE_INVALID_PARAMS,
                         "expected params [\"text\"] or {\"text\": \"...\"}", NULL);
        return;
    }

    /* The params live in the request buffer, gone after the reply: the store gets a copy.
     * Unescaping never lengthens a string and the quotes are gone, so the raw length is room
     * enough for the text and its NUL. */
    size_t len = 0;
    char *text = malloc(text_json.len);
    if (text == NULL || jrpc_json_string(text_json, text, text_json.len, &len) != 0) {
        free(text);
        jrpc_reply_error(call, JRPC_CODE_INTERNAL_ERROR, "out of memory", NULL);
        return;
    }
    if (len > MESSAGE_TEXT_MAX) {
        free(text);
        jrpc_reply_error(call, JRPC_CODE_INVALID_PARAMS,
                         "text is longer than " XSTRINGIFY(MESSAGE_TEXT_MAX) " bytes", NULL);
        return;
    }

    pthread_mutex_lock(&store.lock);
    uint64_t id = store.next_id++;
    message_t *slot = &store.ring[(id - 1) % MESSAGE_KEEP];
    char *evicted = slot->text;
    *slot = (message_t){.id = id, .text = text, .len = len};
    /* Build the reply under the lock: once it is released a later call may evict this slot. */
    jrpc_buf_t out;
    jrpc_buf_init(&out);
    jrpc_buf_appendz(&out, "{\"id\":");
    jrpc_buf_json_uint64(&out, id);
    jrpc_buf_appendz(&out, ",\"text\":");
    jrpc_buf_json_string(&out, text, len);
    jrpc_buf_appendz(&out, "}");
    pthread_mutex_unlock(&store.lock);
    free(evicted);

    if (out.err != 0) {
        jrpc_buf_free(&out);
        jrpc_reply_error(call, JRPC_CODE_INTERNAL_ERROR, "out of memory", NULL);
        return;
    }
    jrpc_reply_buf(call, &out);
}

/* Frees the store when jrpcd dlcloses the module, so leak checkers see a clean exit. */
__attribute__((destructor)) static void tennis_unload(void)
{
    for (size_t i = 0; i < MESSAGE_KEEP; i++) {
        free(store.ring[i].text);
        store.ring[i].text = NULL;
    }
}

JRPC_EXTERN int jrpc_module_init(jrpc_server_t *srv, const char *args);

JRPC_EXTERN int jrpc_module_init(jrpc_server_t *srv, const char *args)
{
    (void)args;
    int rc = jrpc_method_add(srv, "tennis@ping", tennis_ping, NULL, JRPC_INLINE);
    if (rc == 0)
        rc = jrpc_method_add(srv, "message@create", message_create, NULL, JRPC_INLINE);
    return rc;
}
