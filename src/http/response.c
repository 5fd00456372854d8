/* SPDX-License-Identifier: MIT */
/* response.c — what the HTTP transport writes around a response body: the status line and header
 * block (built by hand into the request struct, no printf on the hot path), the JSON-RPC error
 * bodies of answers made here, and the access-log line. No Date or Server header: neither is
 * required of an origin server without a clock worth trusting (RFC 9110 §6.6.1), and formatting a
 * date per response is measurable at the request rates this path is benchmarked at. */
#include "../util/digits.h"
#include "../util/log.h"
#include "internal.h"

#include <stdio.h>
#include <string.h>

static char *put(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

#define PUT(p, lit) ((p) = put((p), (lit), sizeof(lit) - 1))

void jrpc__http_answer_error(jrpc__http_req_t *hr, unsigned status, int code, const char *msg)
{
    jrpc_buf_free(&hr->out);
    if (hr->rest) {
        /* REST answers have no envelope: {"error":{"code":…,"message":…}}. */
        jrpc_buf_append(&hr->out, "{\"error\":", 9);
        jrpc__error_body(&hr->out, code, msg, strlen(msg), NULL, 0, 0);
        jrpc_buf_append(&hr->out, "}", 1);
    } else {
        jrpc__error_object(&hr->out, code, msg);
    }
    if (hr->out.err != 0)
        jrpc_buf_free(&hr->out); /* out of memory: the status alone must do */
    hr->status = status;
    hr->state = JRPC__HR_READY;
}

static char *put_status(char *p, unsigned status)
{
    /* The engine's two answers are spelled out; the others are rarer and take their reason
     * phrase from http-parser. */
    if (status == 200)
        return PUT(p, "HTTP/1.1 200 OK\r\n");
    if (status == 204)
        return PUT(p, "HTTP/1.1 204 No Content\r\n");
    PUT(p, "HTTP/1.1 ");
    p = jrpc__put_u64(p, status);
    *p++ = ' ';
    const char *reason = http_status_str((enum http_status)status);
    p = put(p, reason, strlen(reason));
    return PUT(p, "\r\n");
}

void jrpc__http_build_head(jrpc__http_req_t *hr, int closing)
{
    char *p = put_status(hr->head, hr->status);
    /* CORS only for a page whose Origin is on cors_origins (parse.c refused the others): the
     * endpoint takes no cookies or credentials, so a page allowed to read answers learns
     * nothing a plain curl could not fetch. The answer depends on Origin, hence Vary. */
    if (hr->cors == JRPC__CORS_ANY) {
        PUT(p, "Access-Control-Allow-Origin: *\r\nVary: Origin\r\n");
    } else if (hr->cors == JRPC__CORS_ECHO) {
        PUT(p, "Access-Control-Allow-Origin: ");
        p = put(p, hr->origin, hr->origin_len); /* on the list: no CR, LF or blanks */
        PUT(p, "\r\nVary: Origin\r\n");
    }
    int get = hr->rest && !hr->rest_batch; /* single REST calls may also be GETs */
    if (hr->kind == JRPC__HR_LOCAL && hr->status == 204) {
        if (get)
            PUT(p, "Allow: GET, POST, OPTIONS\r\n");
        else
            PUT(p, "Allow: POST, OPTIONS\r\n");
        if (hr->cors != JRPC__CORS_NONE) {
            /* A browser sends an OPTIONS preflight before a cross-origin POST with a JSON
             * Content-Type; these are the headers it needs back to send the POST. */
            if (get)
                PUT(p, "Access-Control-Allow-Methods: GET, POST, OPTIONS\r\n");
            else
                PUT(p, "Access-Control-Allow-Methods: POST, OPTIONS\r\n");
            if (hr->key_state != JRPC__KEY_OFF) /* the headers a key may come in */
                PUT(p, "Access-Control-Allow-Headers: Content-Type, Authorization, X-API-Key\r\n"
                       "Access-Control-Max-Age: 86400\r\n");
            else
                PUT(p, "Access-Control-Allow-Headers: Content-Type\r\n"
                       "Access-Control-Max-Age: 86400\r\n");
        }
    } else if (hr->status == 405) {
        if (hr->health)
            PUT(p, "Allow: GET, HEAD\r\n");
        else if (get)
            PUT(p, "Allow: GET, POST, OPTIONS\r\n");
        else
            PUT(p, "Allow: POST, OPTIONS\r\n");
    } else if (hr->status == 401) {
        PUT(p, "WWW-Authenticate: Bearer realm=\"jrpc\"\r\n"); /* RFC 9110 §15.5.2 */
    } else if (hr->status == 429 && hr->retry_after != 0) {
        PUT(p, "Retry-After: ");
        p = jrpc__put_u64(p, hr->retry_after);
        PUT(p, "\r\n");
    } else if (hr->status == 426) {
        /* RFC 9110 §15.5.22 wants Upgrade; RFC 6455 §4.4 the versions we speak. */
        PUT(p, "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n");
    } else if (hr->status == 415) {
        /* RFC 9110 §15.5.16: say which content codings a request body may have. */
        if (hr->conn->loop->cfg->gzip)
            PUT(p, "Accept-Encoding: gzip\r\n");
        else
            PUT(p, "Accept-Encoding: identity\r\n");
    }
    if (hr->max_batch != 0) {
        /* A batch's answer says the cap the next batches are held to (docs/errors.md). */
        PUT(p, "Jrpc-Max-Batch: ");
        p = jrpc__put_u64(p, hr->max_batch);
        PUT(p, "\r\n");
        if (hr->cors != JRPC__CORS_NONE) /* a page may read it too */
            PUT(p, "Access-Control-Expose-Headers: Jrpc-Max-Batch\r\n");
    }
    if (hr->vary_ae)
        PUT(p, "Vary: Accept-Encoding\r\n"); /* gzip or not depends on it (gzip.c) */
    if (hr->gz_out)
        PUT(p, "Content-Encoding: gzip\r\n");
    if (hr->health)
        PUT(p, "Cache-Control: no-store\r\n"); /* a check must reach us, not a cache */
    if (hr->status != 204 && hr->text) {
        /* The Prometheus text exposition format, version 0.0.4. */
        PUT(p, "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: ");
        p = jrpc__put_u64(p, hr->out.len);
        PUT(p, "\r\n");
    } else if (hr->chunked) {
        /* A streamed batch answer (conn.c): pieces follow as items finish. */
        PUT(p, "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n");
    } else if (hr->status != 204) {
        PUT(p, "Content-Type: application/json\r\nContent-Length: ");
        p = jrpc__put_u64(p, hr->out.len);
        PUT(p, "\r\n");
    }
    if (closing)
        PUT(p, "Connection: close\r\n");
    else if (hr->http10)
        PUT(p, "Connection: keep-alive\r\n"); /* HTTP/1.0 clients assume close without it */
    PUT(p, "\r\n");
    hr->head_len = (size_t)(p - hr->head);
}

void jrpc__http_log(jrpc__http_conn_t *c, const jrpc__http_req_t *hr)
{
    if (c->peer_len == 0) /* once per connection */
        c->peer_len = jrpc__peer_name(&c->sock->tcp, c->peer, sizeof c->peer);
    unsigned long long us = (unsigned long long)((uv_hrtime() - hr->t0) / 1000);
    const char *method = hr->method >= 0 ? http_method_str((enum http_method)hr->method) : "-";
    const jrpc_config_t *cfg = c->loop->cfg;
    /* A load balancer checks every few seconds: its lines would bury the traffic's at info. */
    jrpc_log_level_t level = hr->health ? JRPC_LOG_DEBUG : JRPC_LOG_INFO;
    int url_len = hr->url_len != 0 ? (int)hr->url_len : 1;
    const char *url = hr->url_len != 0 ? hr->url : "-";
    /* Behind a trusted proxy the line names the client it forwarded for, and the proxy. */
    const char *client = hr->client_len != 0 ? hr->x->client : c->peer;
    /* The key by its name (never its secret); an unknown one by a short hash of it. */
    char key[JRPC__KEY_NAME_MAX + 16];
    key[0] = '\0';
    if (hr->key_state == JRPC__KEY_VALID)
        snprintf(key, sizeof key, cfg->log_json ? ",\"key\":\"%s\"" : " key=%s",
                 hr->auth.key->name);
    else if (hr->key_state == JRPC__KEY_NONE)
        snprintf(key, sizeof key, cfg->log_json ? ",\"key\":\"(anonymous)\"" : " key=(anonymous)");
    else if (hr->key_state == JRPC__KEY_UNKNOWN)
        snprintf(key, sizeof key, cfg->log_json ? ",\"key\":\"?%s\"" : " key=?%s", hr->key_mark);
    char sum[256];
    sum[0] = '\0';
    if (hr->has_sum)
        jrpc__answer_sum_format(&hr->x->sum, (int)cfg->log_json, sum, sizeof sum);
    if (cfg->log_json) {
        /* Every string here was made safe when kept (no quote, backslash or control byte). */
        jrpc__log(cfg, level, NULL,
                  "{\"msg\":\"access\",\"transport\":\"http\",\"client\":\"%s\"%s%s%s,"
                  "\"http_method\":\"%s\",\"path\":\"%.*s\",\"status\":%u,\"items\":%zu%s%s%s,"
                  "\"bytes\":%zu,\"duration_us\":%llu,\"user_agent\":\"%.*s\"}",
                  client, hr->client_len != 0 ? ",\"proxy\":\"" : "",
                  hr->client_len != 0 ? c->peer : "", hr->client_len != 0 ? "\"" : "", method,
                  url_len, url, hr->status, hr->items, key, sum[0] != '\0' ? "," : "", sum,
                  hr->out.len + (hr->st != NULL ? hr->st->streamed : 0), us, (int)hr->ua_len,
                  hr->x->ua);
        return;
    }
    jrpc__log(cfg, level, client,
              " \"%s %.*s\" %u items=%zu%s%s%s bytes=%zu %lluus%s%s ua=\"%.*s\"", method, url_len,
              url, hr->status, hr->items, key, sum[0] != '\0' ? " " : "", sum,
              hr->out.len + (hr->st != NULL ? hr->st->streamed : 0), us,
              hr->client_len != 0 ? " proxy=" : "", hr->client_len != 0 ? c->peer : "",
              hr->ua_len != 0 ? (int)hr->ua_len : 1, hr->ua_len != 0 ? hr->x->ua : "-");
}
