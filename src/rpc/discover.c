/* SPDX-License-Identifier: MIT */
/* discover.c — rpc.discover: an OpenRPC 1.2 document listing every registered method (and prefix
 * pattern) with the docs modules gave through jrpc_method_doc. The registry is final once the
 * server runs, so the document is built once at start and every call answers the same bytes. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

static void discover_call(jrpc_call_t *call, void *data)
{
    const jrpc__engine_t *e = data;
    jrpc_reply_raw(call, e->discover, e->discover_len);
}

int jrpc__discover_register(jrpc__engine_t *e)
{
    int rc = jrpc__registry_add(e->registry, "rpc.discover", discover_call, e, JRPC_INLINE);
    if (rc != 0)
        return rc;
    return jrpc__discover_doc(e, "rpc.discover", "Returns this OpenRPC document", "[]",
                              "{\"name\":\"OpenRPC document\",\"schema\":{\"type\":\"object\"}}");
}

static int doc_copy(const char *src, char **dst)
{
    *dst = NULL;
    if (src == NULL)
        return 0;
    *dst = strdup(src);
    return *dst ? 0 : JRPC_ENOMEM;
}

/* 1 when json is NULL (no doc given) or one valid JSON text of the given type. */
static int doc_valid(const char *json, jrpc_json_type_t type)
{
    if (json == NULL)
        return 1;
    jrpc_json_t v = {json, strlen(json)};
    return jrpc_json_validate(v.ptr, v.len, 0, NULL) == 0 && jrpc_json_type(v) == type;
}

int jrpc__discover_doc(jrpc__engine_t *e, const char *name, const char *summary,
                       const char *params_json, const char *result_json)
{
    if (name == NULL)
        return JRPC_EINVAL;
    jrpc__method_t *m = jrpc__registry_entry(e->registry, name);
    if (m == NULL)
        return JRPC_ENOENT;
    if (!doc_valid(params_json, JRPC_JSON_ARRAY) || !doc_valid(result_json, JRPC_JSON_OBJECT))
        return JRPC_EINVAL;
    char *s = NULL, *p = NULL, *r = NULL;
    if (doc_copy(summary, &s) != 0 || doc_copy(params_json, &p) != 0 ||
        doc_copy(result_json, &r) != 0) {
        free(s);
        free(p);
        free(r);
        return JRPC_ENOMEM;
    }
    free(m->summary);
    free(m->params_json);
    free(m->result_json);
    m->summary = s;
    m->params_json = p;
    m->result_json = r;
    return 0;
}

static void method_append(const jrpc__method_t *m, void *arg)
{
    jrpc_buf_t *b = arg;
    if (strcmp(m->name, "rpc.discover") == 0)
        return; /* OpenRPC reserves it: the document describes the service's own methods */
    if (b->len > 0 && b->ptr[b->len - 1] == '}')
        jrpc_buf_append(b, ",", 1);
    jrpc_buf_appendz(b, "{\"name\":");
    jrpc_buf_json_string(b, m->name, strlen(m->name));
    if (m->summary != NULL) {
        jrpc_buf_appendz(b, ",\"summary\":");
        jrpc_buf_json_string(b, m->summary, strlen(m->summary));
    } else if (m->name[strlen(m->name) - 1] == '*') {
        jrpc_buf_appendz(b, ",\"summary\":\"Every method whose name starts with ");
        jrpc_buf_append(b, m->name, m->name_len);
        jrpc_buf_appendz(b, "\"");
    }
    jrpc_buf_appendz(b, ",\"params\":");
    jrpc_buf_appendz(b, m->params_json ? m->params_json : "[]");
    jrpc_buf_appendz(b, ",\"result\":");
    jrpc_buf_appendz(b, m->result_json ? m->result_json : "{\"name\":\"result\",\"schema\":{}}");
    if (m->flags & JRPC_NO_BATCH)
        jrpc_buf_appendz(b, ",\"x-jrpc-no-batch\":true");
    jrpc_buf_appendz(b, "}");
}

int jrpc__discover_build(jrpc__engine_t *e)
{
    jrpc_buf_t b;
    jrpc_buf_init(&b);
    jrpc_buf_appendz(&b, "{\"openrpc\":\"1.2.6\",\"info\":{\"title\":\"jrpcd\",\"version\":\"");
    jrpc_buf_appendz(&b, JRPC_VERSION_STRING);
    /* method_append puts a ',' after any previous entry's '}'; the list starts after '['. */
    jrpc_buf_appendz(&b, "\"},\"methods\":[");
    jrpc__registry_each(e->registry, method_append, &b);
    jrpc_buf_appendz(&b, "]}");
    if (b.err) {
        jrpc_buf_free(&b);
        return JRPC_ENOMEM;
    }
    free(e->discover);
    e->discover = b.ptr;
    e->discover_len = b.len;
    return 0;
}
