/* SPDX-License-Identifier: MIT */
/* input.c — turns what `jrpc batch` reads into items: lines "METHOD [PARAMS]", JSONL request
 * objects (detected per line) or one JSON array of request objects. Each item keeps a view into
 * the input text, which outlives the batch, so a retry rebuilds its request from the same bytes.
 * Everything is checked before the first byte is sent, so a bad line 4711 costs no calls. */
#include "batch.h"

#include <stdlib.h>
#include <string.h>

/* Most bytes read from a batch file or stdin. A million calls of a few dozen bytes each is
 * ~50 MB; the cap keeps a wrong file (a disk image, /dev/zero) from eating the machine. */
#define MAX_INPUT_BYTES (1024ull << 20)

int cli_read_all(const char *path, jrpc_buf_t *b)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (f == NULL)
        return cli_fail("cannot open %s", path);
    size_t n;
    int rc = 0;
    for (;;) {
        if (jrpc_buf_reserve(b, 1 << 20) != 0) {
            rc = cli_fail("%s", "out of memory");
            break;
        }
        n = fread(b->ptr + b->len, 1, b->cap - b->len, f);
        if (n == 0)
            break;
        b->len += n;
        if (b->len > MAX_INPUT_BYTES) {
            rc = cli_fail("%s is larger than 1 GiB; split it", path);
            break;
        }
    }
    if (rc == 0 && ferror(f))
        rc = cli_fail("cannot read %s", path);
    if (f != stdin)
        fclose(f);
    return rc;
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Checks one request object; 0, or 2 with `where` and the reason printed. */
static int check_object(jrpc_json_t v, const char *where, size_t no)
{
    jrpc_json_t m, p, j;
    if (jrpc_json_type(v) != JRPC_JSON_OBJECT)
        return cli_fail("%s %zu: a request must be a JSON object", where, no);
    if (jrpc_json_get(v, "method", &m) != 0 || jrpc_json_type(m) != JRPC_JSON_STRING)
        return cli_fail("%s %zu: no \"method\" string", where, no);
    if (jrpc_json_get(v, "params", &p) == 0 && jrpc_json_type(p) != JRPC_JSON_ARRAY &&
        jrpc_json_type(p) != JRPC_JSON_OBJECT)
        return cli_fail("%s %zu: \"params\" must be an array or an object", where, no);
    if (jrpc_json_get(v, "jsonrpc", &j) == 0 && !jrpc_json_string_eq(j, "2.0", 3))
        return cli_fail("%s %zu: \"jsonrpc\" must be \"2.0\"", where, no);
    return 0;
}

static int add_item(cli_items_t *items, const char *p, size_t n, unsigned kind)
{
    if (items->n == items->cap) {
        size_t cap = items->cap ? items->cap * 2 : 1024;
        cli_item_t *v = realloc(items->v, cap * sizeof(*v));
        if (v == NULL)
            return cli_fail("%s", "out of memory");
        items->v = v;
        items->cap = cap;
    }
    if (n > UINT32_MAX)
        return cli_fail("%s", "a request larger than 4 GiB");
    cli_item_t *it = &items->v[items->n++];
    memset(it, 0, sizeof(*it));
    it->src = p;
    it->srclen = (uint32_t)n;
    it->kind = (uint8_t)kind;
    if (kind == CLI_ITEM_OBJECT) {
        jrpc_json_t id;
        it->own_id = jrpc_json_get((jrpc_json_t){p, n}, "id", &id) == 0;
    }
    return 0;
}

/* One JSON array of request objects. */
static int parse_array(const char *p, size_t n, cli_items_t *items)
{
    size_t off = 0;
    if (jrpc_json_validate(p, n, 0, &off) != 0)
        return cli_fail("input is not valid JSON (at byte %zu)", off);
    jrpc_json_iter_t it;
    jrpc_json_t v;
    jrpc_json_iter_init(&it, (jrpc_json_t){p, n});
    size_t no = 0;
    while (jrpc_json_iter_next(&it, NULL, &v)) {
        if (check_object(v, "element", ++no) != 0 || add_item(items, v.ptr, v.len, 1) != 0)
            return 2;
    }
    return 0;
}

/* Lines: "METHOD [PARAMS]" or a request object; blank lines and '#' comments skipped. */
static int parse_lines(const char *p, size_t n, cli_items_t *items)
{
    const char *end = p + n;
    size_t line = 0;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p)), *le = eol ? eol : end;
        line++;
        while (p < le && is_space(*p))
            p++;
        while (le > p && is_space(le[-1]))
            le--;
        size_t len = (size_t)(le - p);
        if (len == 0 || *p == '#') {
            /* skipped */
        } else if (*p == '{') {
            size_t off = 0;
            if (jrpc_json_validate(p, len, 0, &off) != 0)
                return cli_fail("line %zu: not valid JSON (at byte %zu)", line, off);
            if (check_object((jrpc_json_t){p, len}, "line", line) != 0 ||
                add_item(items, p, len, CLI_ITEM_OBJECT) != 0)
                return 2;
        } else {
            const char *m = p;
            while (m < le && !is_space(*m))
                m++;
            const char *params = m;
            while (params < le && is_space(*params))
                params++;
            size_t plen = (size_t)(le - params), off = 0;
            if (plen != 0) {
                if (jrpc_json_validate(params, plen, 0, &off) != 0)
                    return cli_fail("line %zu: params are not valid JSON (at byte %zu of them)",
                                    line, off);
                jrpc_json_type_t t = jrpc_json_type((jrpc_json_t){params, plen});
                if (t != JRPC_JSON_ARRAY && t != JRPC_JSON_OBJECT)
                    return cli_fail("line %zu: params must be one JSON array or object", line);
            }
            if (add_item(items, p, len, CLI_ITEM_LINE) != 0)
                return 2;
        }
        p = eol ? eol + 1 : end;
    }
    return 0;
}

int cli_items_parse(const char *p, size_t n, cli_items_t *items)
{
    size_t i = 0;
    while (i < n && is_space(p[i]))
        i++;
    if (i < n && p[i] == '[')
        return parse_array(p, n, items);
    return parse_lines(p, n, items);
}

int cli_item_request(const cli_item_t *it, size_t seq, jrpc_buf_t *b)
{
    const char *m, *params = NULL;
    size_t mlen, plen = 0;
    jrpc_buf_appendz(b, "{\"jsonrpc\":\"2.0\",\"method\":");
    if (it->kind == CLI_ITEM_LINE) {
        const char *p = it->src, *le = it->src + it->srclen;
        m = p;
        while (p < le && !is_space(*p))
            p++;
        mlen = (size_t)(p - m);
        while (p < le && is_space(*p))
            p++;
        params = p;
        plen = (size_t)(le - p);
        jrpc_buf_json_string(b, m, mlen);
    } else {
        jrpc_json_t obj = {it->src, it->srclen}, vm, vp;
        jrpc_json_get(obj, "method", &vm);
        jrpc_buf_append(b, vm.ptr, vm.len); /* already a valid JSON string */
        if (jrpc_json_get(obj, "params", &vp) == 0) {
            params = vp.ptr;
            plen = vp.len;
        }
    }
    if (plen != 0) {
        jrpc_buf_appendz(b, ",\"params\":");
        jrpc_buf_append(b, params, plen);
    }
    jrpc_buf_appendz(b, ",\"id\":");
    jrpc_buf_json_uint64(b, (uint64_t)seq + 1);
    return jrpc_buf_appendz(b, "}");
}
