/* SPDX-License-Identifier: MIT */
/* options.c — jrpcd's settings: one table of [server] keys that the INI reader and the command
 * line share (a flag is its key with '-' for '_'), the parsers for counts, sizes and durations,
 * and the command line itself (getopt_long), so a key and its flag can never drift apart. */
#include "jrpcd.h"

#include <ctype.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KIB 1024ULL
#define MIB (1024ULL * KIB)
#define GIB (1024ULL * MIB)
#define TIB (1024ULL * GIB)

/* Largest size any setting takes: more than any machine jrpcd runs on holds in memory, so a
 * larger number is a typo (a missing unit, an extra digit), not a wish. */
#define SIZE_LIMIT TIB

#define DAY_MS 86400000ULL

#define CFG_FIELD(f) offsetof(jrpc_config_t, f)

static const jrpcd_setting_t settings[] = {
    {"listen", "listen", JRPCD_SET_LISTEN, 0, 0, 0, "HOST:PORT",
     "address to listen on; repeatable; port 0 picks a free one"},
    /* Off by default: a second jrpcd on a taken port must fail, not take half its connections. */
    {"reuse_port", "reuse-port", JRPCD_SET_ON_OFF, CFG_FIELD(reuse_port), 0, 1, "on|off",
     "share listen ports with other jrpcd (zero-downtime restarts)"},
    {"path", "path", JRPCD_SET_PATH, 0, 0, 0, "P", "RPC endpoint path (\"/\" always answers too)"},
    {"rest_path", "rest-path", JRPCD_SET_REST_PATH, 0, 0, 0, "P",
     "REST prefix: POST P/<method>, P/<method>/batch; \"\" turns REST off"},
    /* Browser-facing defaults (docs/security.md): DNS rebinding and other sites' pages. */
    {"hosts", "hosts", JRPCD_SET_WORDS, CFG_FIELD(hosts), 0, 0, "NAMES",
     "names a request may give in Host (port ignored), * = any; \"\" = localhost names"},
    {"cors_origins", "cors-origins", JRPCD_SET_WORDS, CFG_FIELD(cors_origins), 0, 0, "ORIGINS",
     "browser origins (scheme://host[:port]) allowed to call, * = any; \"\" = none"},
    /* More loops than cores only adds context switches; JRPC_MAX_IO_THREADS (64) is past the
     * core count of the machines jrpcd is meant for. */
    {"io_threads", "io-threads", JRPCD_SET_UINT, CFG_FIELD(io_threads), 0, JRPC_MAX_IO_THREADS, "N",
     "event loop threads; 0 = one per core"},
    /* Each worker is a thread with its own stack; handlers that need thousands of threads to
     * keep up want to be JRPC_ASYNC instead. */
    {"workers", "workers", JRPCD_SET_UINT, CFG_FIELD(workers), 1, 4096, "N",
     "threads for blocking (JRPC_WORKER) methods"},
    /* Every queued call pins its request's memory; a million is far past any useful backlog. */
    {"worker_queue", "worker-queue", JRPCD_SET_UINT, CFG_FIELD(worker_queue), 1, 1000000, "N",
     "worker calls waiting past which items get -32005"},
    /* This and the two batch caps: a million items is past any useful batch (max_body refuses
     * the text long before), and keeps the per-item slot arithmetic far from overflow. */
    {"batch_concurrency", "batch-concurrency", JRPCD_SET_UINT, CFG_FIELD(batch_concurrency), 1,
     1000000, "N", "items of one batch in flight at once"},
    {"max_batch", "max-batch", JRPCD_SET_UINT, CFG_FIELD(max_batch), 1, 1000000, "N",
     "items per HTTP batch (more: every item -32005)"},
    {"max_batch_ws", "max-batch-ws", JRPCD_SET_UINT, CFG_FIELD(max_batch_ws), 1, 1000000, "N",
     "items per WebSocket batch"},
    {"max_body", "max-body", JRPCD_SET_SIZE, CFG_FIELD(max_body), 1, SIZE_LIMIT, "SIZE",
     "request body bytes (more: 413)"},
    /* A request line and a Host header need a few hundred bytes, below 256 nothing gets in;
     * 16 MiB of headers is an attack, not a client. */
    {"max_header", "max-header", JRPCD_SET_SIZE, CFG_FIELD(max_header), 256, 16 * MIB, "SIZE",
     "request line + header bytes (more: 431)"},
    {"max_response", "max-response", JRPCD_SET_SIZE, CFG_FIELD(max_response), 1, SIZE_LIMIT, "SIZE",
     "response body bytes (items past it get -32003)"},
    /* Real JSON-RPC payloads nest a few dozen levels; recursive consumers (clients, test
     * oracles) run out of stack long before 10000. */
    {"max_depth", "max-depth", JRPCD_SET_UINT, CFG_FIELD(max_depth), 1, 10000, "N",
     "JSON nesting depth"},
    /* Past a day a deadline protects nothing: every client and proxy gave up long before.
     * (It also keeps the milliseconds well inside jrpc_config_t's unsigned.) */
    {"deadline", "deadline", JRPCD_SET_DURATION, CFG_FIELD(deadline_ms), 1, DAY_MS, "DURATION",
     "per item, from arrival (past it: -32002)"},
    {"drain", "drain", JRPCD_SET_DURATION, CFG_FIELD(drain_ms), 0, DAY_MS, "DURATION",
     "on stop, how long in-flight requests may still finish"},
    /* Past an hour no load balancer is still checking; systemd would have killed us long ago. */
    {"drain_delay", "drain-delay", JRPCD_SET_DURATION, CFG_FIELD(drain_delay_ms), 0, 3600000,
     "DURATION", "on SIGTERM, how long /ready answers 503 while all is served, before the stop"},
    /* WebSocket (docs/websocket.md). A message is one request body, so it has max_body's range. */
    {"max_ws_message", "max-ws-message", JRPCD_SET_SIZE, CFG_FIELD(max_ws_message), 1, SIZE_LIMIT,
     "SIZE", "WebSocket message bytes (more: close 1009)"},
    /* Past a million a client's calls pin more request memory than one connection should. */
    {"ws_max_inflight", "ws-max-inflight", JRPCD_SET_UINT, CFG_FIELD(ws_max_inflight), 1, 1000000,
     "N", "calls in flight per WebSocket before it stops reading"},
    {"ws_max_queue", "ws-max-queue", JRPCD_SET_SIZE, CFG_FIELD(ws_max_queue), 1, SIZE_LIMIT, "SIZE",
     "unread bytes past which a WebSocket client is disconnected"},
    /* Past a million, one connection's subscriptions pin more than a client should. */
    {"ws_max_subscriptions", "ws-max-subscriptions", JRPCD_SET_UINT,
     CFG_FIELD(ws_max_subscriptions), 1, 1000000, "N",
     "live subscriptions per WebSocket connection (more: -32005)"},
    {"ws_ping_interval", "ws-ping-interval", JRPCD_SET_DURATION, CFG_FIELD(ws_ping_ms), 0, DAY_MS,
     "DURATION", "keep-alive ping to a silent WebSocket client; 0 = off"},
    {"ws_idle_timeout", "ws-idle-timeout", JRPCD_SET_DURATION, CFG_FIELD(ws_idle_ms), 0, DAY_MS,
     "DURATION", "close a WebSocket idle this long; 0 = off"},
    /* Connection caps and timeouts (docs/security.md). A million connections is past what one
     * machine's fds allow; timeouts past a day protect nothing. */
    {"max_connections", "max-connections", JRPCD_SET_UINT, CFG_FIELD(max_connections), 0, 1000000,
     "N", "open connections, whole server (more: 503); 0 = no cap"},
    {"max_connections_per_ip", "max-connections-per-ip", JRPCD_SET_UINT,
     CFG_FIELD(max_connections_per_ip), 0, 1000000, "N",
     "open connections from one client address; 0 = no cap"},
    {"header_timeout", "header-timeout", JRPCD_SET_DURATION, CFG_FIELD(header_timeout_ms), 1,
     DAY_MS, "DURATION", "a request's head must arrive within this (408)"},
    {"body_timeout", "body-timeout", JRPCD_SET_DURATION, CFG_FIELD(body_timeout_ms), 1, DAY_MS,
     "DURATION", "longest pause in a request body (408)"},
    {"min_body_rate", "min-body-rate", JRPCD_SET_UINT, CFG_FIELD(min_body_rate), 0, 1u << 30, "N",
     "bytes/s a body must average once it took body_timeout; 0 = off"},
    {"idle_timeout", "idle-timeout", JRPCD_SET_DURATION, CFG_FIELD(idle_timeout_ms), 0, DAY_MS,
     "DURATION", "close a keep-alive connection idle this long; 0 = never"},
    {"send_timeout", "send-timeout", JRPCD_SET_DURATION, CFG_FIELD(send_timeout_ms), 1, DAY_MS,
     "DURATION", "close a client that takes no answer bytes this long"},
    /* Server-wide bounds on what clients pin (docs/security.md). */
    {"max_inflight", "max-inflight", JRPCD_SET_UINT, CFG_FIELD(max_inflight), 1, 100000000, "N",
     "calls in flight, whole server (more: -32005)"},
    {"max_memory", "max-memory", JRPCD_SET_SIZE, CFG_FIELD(max_memory), 1, SIZE_LIMIT, "SIZE",
     "bytes held by requests and answers, whole server (more: -32005)"},
    {"max_unsent", "max-unsent", JRPCD_SET_SIZE, CFG_FIELD(max_unsent), 1, SIZE_LIMIT, "SIZE",
     "unwritten answer bytes per HTTP connection before it stops reading"},
    {"http_max_inflight", "http-max-inflight", JRPCD_SET_UINT, CFG_FIELD(http_max_inflight), 1,
     1000000, "N", "calls not finished per HTTP connection before it stops reading"},
    {"log_level", "log-level", JRPCD_SET_LOG_LEVEL, 0, 0, 0, "LEVEL", "error, warn, info or debug"},
    /* Text by default: what a person reads on a terminal or in journalctl; json is for log
     * shippers. stderr by default: systemd and containers collect it. */
    {"log_format", "log-format", JRPCD_SET_LOG_FORMAT, 0, 0, 0, "text|json",
     "log lines as text or one JSON object each"},
    {"log_file", "log-file", JRPCD_SET_LOG_FILE, 0, 0, 0, "PATH",
     "append log lines to PATH (SIGUSR1 reopens it); \"\" = stderr"},
    /* Compression (docs/compression.md). gzip_min up to max_response's range; zlib's levels. */
    {"gzip", "gzip", JRPCD_SET_ON_OFF, CFG_FIELD(gzip), 0, 1, "on|off",
     "gzip answers for clients that accept it, decode gzip request bodies"},
    {"gzip_min", "gzip-min", JRPCD_SET_SIZE, CFG_FIELD(gzip_min), 0, SIZE_LIMIT, "SIZE",
     "answers smaller than this go uncompressed"},
    {"gzip_level", "gzip-level", JRPCD_SET_UINT, CFG_FIELD(gzip_level), 1, 9, "N",
     "zlib compression level, 1 (fastest) to 9 (smallest)"},
    /* Request order by default: clients that match answers by position keep working. */
    {"batch_order", "batch-order", JRPCD_SET_ORDER, CFG_FIELD(batch_order), 0, 1,
     "request|completion", "entries of a streamed HTTP batch answer: in request order or as done"},
    {"ws_deflate", "ws-deflate", JRPCD_SET_ON_OFF, CFG_FIELD(ws_deflate), 0, 1, "on|off",
     "permessage-deflate for WebSocket clients that offer it"},
    /* No proxy is trusted by default: any client could otherwise choose its logged address. */
    {"trusted_proxies", "trusted-proxies", JRPCD_SET_WORDS, CFG_FIELD(trusted_proxies), 0, 0,
     "ADDRS", "proxies (addresses or CIDRs) whose X-Forwarded-For names the client; \"\" = none"},
};

#define SETTINGS_LEN (sizeof(settings) / sizeof(settings[0]))

const jrpcd_setting_t *jrpcd_setting_find(const char *key)
{
    for (size_t i = 0; i < SETTINGS_LEN; i++)
        if (strcmp(settings[i].key, key) == 0)
            return &settings[i];
    return NULL;
}

/* ---- Lists ----------------------------------------------------------------------------------- */

int jrpcd_list_next(const char **p, const char **word, size_t *len)
{
    static const char sep[] = " \t,";
    *word = *p + strspn(*p, sep);
    *len = strcspn(*word, sep);
    *p = *word + *len;
    return *len != 0;
}

int jrpcd_strv_push(char ***v, size_t *n, const char *s, size_t len, char *err, size_t cap)
{
    char *c = strndup(s, len);
    char **grown = c ? realloc(*v, (*n + 1) * sizeof(*grown)) : NULL;
    if (grown == NULL) {
        free(c);
        snprintf(err, cap, "out of memory");
        return -1;
    }
    *v = grown;
    (*v)[(*n)++] = c;
    return 0;
}

void jrpcd_strv_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* ---- Value parsers --------------------------------------------------------------------------- */

/* Reads the leading decimal digits of s into *out; returns the first byte after them, or NULL
 * when there are none or they overflow. */
static const char *parse_digits(const char *s, unsigned long long *out)
{
    unsigned long long v = 0;
    const char *p = s;
    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (ULLONG_MAX - d) / 10)
            return NULL;
        v = v * 10 + d;
    }
    if (p == s)
        return NULL;
    *out = v;
    return p;
}

static const char *skip_space(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

/* After parse_digits failed: 1 (with err set) when s did start with digits, which means they
 * overflowed. */
static int too_many_digits(const char *s, char *err, size_t cap)
{
    const char *p = skip_space(s);
    if (*p < '0' || *p > '9')
        return 0;
    snprintf(err, cap, "\"%s\" is too large", s);
    return 1;
}

int jrpcd_parse_uint(const char *s, unsigned long long *out, char *err, size_t cap)
{
    const char *p = parse_digits(skip_space(s), out);
    if (p == NULL && too_many_digits(s, err, cap))
        return -1;
    if (p == NULL || *skip_space(p) != '\0') {
        snprintf(err, cap, "\"%s\" is not a whole number", s);
        return -1;
    }
    return 0;
}

static const struct {
    const char *name;
    unsigned long long mult;
} size_units[] = {
    {"", 1},      {"B", 1},     {"KB", 1000ULL}, {"MB", 1000000ULL}, {"GB", 1000000000ULL},
    {"KiB", KIB}, {"MiB", MIB}, {"GiB", GIB},
};

int jrpcd_parse_size(const char *s, unsigned long long *out, char *err, size_t cap)
{
    unsigned long long n;
    const char *p = parse_digits(skip_space(s), &n);
    if (p == NULL && too_many_digits(s, err, cap))
        return -1;
    if (p == NULL)
        goto bad;
    p = skip_space(p);
    const char *unit = p;
    size_t unit_len = 0;
    while (p[unit_len] != '\0' && p[unit_len] != ' ' && p[unit_len] != '\t')
        unit_len++;
    if (*skip_space(p + unit_len) != '\0')
        goto bad;
    for (size_t i = 0; i < sizeof(size_units) / sizeof(size_units[0]); i++) {
        if (strlen(size_units[i].name) != unit_len ||
            strncasecmp(size_units[i].name, unit, unit_len) != 0)
            continue;
        if (n > ULLONG_MAX / size_units[i].mult) {
            snprintf(err, cap, "\"%s\" is too large", s);
            return -1;
        }
        *out = n * size_units[i].mult;
        return 0;
    }
    static const char prefixes[] = "KMG";
    const char *prefix = unit_len == 1 ? strchr(prefixes, toupper((unsigned char)unit[0])) : NULL;
    if (prefix != NULL && *prefix != '\0') {
        int e = (int)(prefix - prefixes) + 1;
        snprintf(err, cap, "\"%s\" is ambiguous: write %cB (10^%d) or %ciB (2^%d)", s, *prefix,
                 3 * e, *prefix, 10 * e);
        return -1;
    }
bad:
    snprintf(err, cap,
             "\"%s\" is not a size: write bytes, or a whole number with KB, MB, GB (10^3, 10^6, "
             "10^9) or KiB, MiB, GiB (2^10, 2^20, 2^30)",
             s);
    return -1;
}

static const struct {
    const char *name;
    unsigned long long ms;
} duration_units[] = {
    {"", 1000}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000},
};

int jrpcd_parse_duration(const char *s, unsigned long long *out_ms, char *err, size_t cap)
{
    unsigned long long n;
    const char *p = parse_digits(skip_space(s), &n);
    if (p == NULL && too_many_digits(s, err, cap))
        return -1;
    if (p == NULL)
        goto bad;
    p = skip_space(p);
    const char *unit = p;
    size_t unit_len = 0;
    while (p[unit_len] >= 'a' && p[unit_len] <= 'z')
        unit_len++;
    if (*skip_space(p + unit_len) != '\0')
        goto bad;
    for (size_t i = 0; i < sizeof(duration_units) / sizeof(duration_units[0]); i++) {
        if (strlen(duration_units[i].name) != unit_len ||
            strncmp(duration_units[i].name, unit, unit_len) != 0)
            continue;
        if (n > ULLONG_MAX / duration_units[i].ms) {
            snprintf(err, cap, "\"%s\" is too long", s);
            return -1;
        }
        *out_ms = n * duration_units[i].ms;
        return 0;
    }
bad:
    snprintf(err, cap,
             "\"%s\" is not a duration: write a whole number with ms, s, m or h (a plain number "
             "means seconds)",
             s);
    return -1;
}

/* The shortest exact spelling of a byte count: "5MiB", "25MB", "64KiB", "100". */
static void format_size(unsigned long long v, char *buf, size_t cap)
{
    static const struct {
        const char *name;
        unsigned long long mult;
    } units[] = {{"TiB", TIB},       {"GiB", GIB}, {"GB", 1000000000ULL}, {"MiB", MIB},
                 {"MB", 1000000ULL}, {"KiB", KIB}, {"KB", 1000ULL}};
    for (size_t i = 0; v != 0 && i < sizeof(units) / sizeof(units[0]); i++) {
        if (v % units[i].mult == 0) {
            snprintf(buf, cap, "%llu%s", v / units[i].mult, units[i].name);
            return;
        }
    }
    snprintf(buf, cap, "%llu", v);
}

/* The shortest exact spelling of a duration: "30s", "2m", "250ms". */
static void format_duration(unsigned long long ms, char *buf, size_t cap)
{
    if (ms != 0 && ms % 3600000 == 0)
        snprintf(buf, cap, "%lluh", ms / 3600000);
    else if (ms != 0 && ms % 60000 == 0)
        snprintf(buf, cap, "%llum", ms / 60000);
    else if (ms % 1000 == 0)
        snprintf(buf, cap, "%llus", ms / 1000);
    else
        snprintf(buf, cap, "%llums", ms);
}

static int parse_log_level(const char *s, jrpc_log_level_t *out)
{
    for (int l = JRPC_LOG_ERROR; l <= JRPC_LOG_DEBUG; l++) {
        if (strcmp(s, jrpcd_log_level_name((jrpc_log_level_t)l)) == 0) {
            *out = (jrpc_log_level_t)l;
            return 0;
        }
    }
    return -1;
}

/* Checks one "HOST:PORT" (IPv6 hosts in brackets). The library resolves and binds it later;
 * this only catches what is certainly wrong, early and with a clear message. */
static int check_listen(const char *a, char *err, size_t cap)
{
    const char *colon = strrchr(a, ':');
    if (colon == NULL) {
        snprintf(err, cap, "\"%s\" is not HOST:PORT (e.g. 127.0.0.1:8000)", a);
        return -1;
    }
    size_t host_len = (size_t)(colon - a);
    if (host_len == 0) {
        snprintf(err, cap, "\"%s\" has no host (0.0.0.0 listens on every IPv4 address)", a);
        return -1;
    }
    if (a[0] == '[') {
        if (host_len < 3 || a[host_len - 1] != ']') {
            snprintf(err, cap, "\"%s\": an IPv6 host is written [ADDR]:PORT", a);
            return -1;
        }
    } else if (memchr(a, ':', host_len) != NULL) {
        snprintf(err, cap, "\"%s\": an IPv6 host goes in brackets, e.g. [::1]:8000", a);
        return -1;
    }
    unsigned long long port;
    const char *end = parse_digits(colon + 1, &port);
    if (end == NULL || *end != '\0' || port > 65535) {
        snprintf(err, cap, "\"%s\" has no valid port (0-65535; 0 picks a free one)", a);
        return -1;
    }
    return 0;
}

/* Most method labels: past a hundred thousand, the series per method and code would swamp any
 * Prometheus; the registry of a real server holds a few hundred names at most. */
#define ADMIN_MAX_METHOD_LABELS 100000

int jrpcd_admin_key(jrpcd_opts_t *opts, const char *name, const char *value, char *err, size_t cap)
{
    if (strcmp(name, "listen") == 0) {
        /* Off unless named: the counters tell more than a public client should see. "" turns
         * it off again (a flag over a config). */
        if (value[0] != '\0' && check_listen(value, err, cap) != 0)
            return -1;
        char *copy = value[0] != '\0' ? strdup(value) : NULL;
        if (value[0] != '\0' && copy == NULL) {
            snprintf(err, cap, "out of memory");
            return -1;
        }
        free(opts->admin_listen);
        opts->admin_listen = copy;
        return 0;
    }
    if (strcmp(name, "max_method_labels") == 0) {
        unsigned long long v;
        if (jrpcd_parse_uint(value, &v, err, cap) != 0)
            return -1;
        if (v > ADMIN_MAX_METHOD_LABELS) {
            snprintf(err, cap, "%llu is more than %u", v, ADMIN_MAX_METHOD_LABELS);
            return -1;
        }
        opts->cfg.max_method_labels = (unsigned)v;
        return 0;
    }
    snprintf(err, cap, "unknown key \"%s\" (known: listen, max_method_labels)", name);
    return -1;
}

/* Appends every address of a list separated by spaces or commas. */
static int apply_listen(jrpcd_opts_t *opts, const char *value, char *err, size_t cap)
{
    const char *p = value, *word;
    size_t n, words = 0;
    for (; jrpcd_list_next(&p, &word, &n); words++) {
        if (jrpcd_strv_push(&opts->listen, &opts->listen_len, word, n, err, cap) != 0)
            return -1;
        if (check_listen(opts->listen[opts->listen_len - 1], err, cap) != 0) {
            free(opts->listen[--opts->listen_len]);
            return -1;
        }
    }
    if (words == 0) {
        snprintf(err, cap, "no address given (write HOST:PORT, e.g. 127.0.0.1:8000)");
        return -1;
    }
    return 0;
}

/* hosts or cors_origins: the library reads the list; it is checked here as the library will
 * (jrpc_config_check on the defaults with this one value), so a bad word stops jrpcd with the
 * file's line. "" stands for the library's default. */
static int apply_words(jrpcd_opts_t *opts, const jrpcd_setting_t *s, const char *value, char *err,
                       size_t cap)
{
    jrpc_config_t probe;
    jrpc_config_init(&probe);
    memcpy((char *)&probe + s->offset, &value, sizeof value);
    const char *why = jrpc_config_check(&probe);
    if (why != NULL) {
        size_t k = strlen(s->key);
        if (strncmp(why, s->key, k) == 0 && why[k] == ':')
            why += k + 2; /* the caller names the key */
        snprintf(err, cap, "\"%s\": %s", value, why);
        return -1;
    }
    char *copy = strdup(value);
    if (copy == NULL) {
        snprintf(err, cap, "out of memory");
        return -1;
    }
    char **slot = s->offset == CFG_FIELD(hosts)             ? &opts->hosts
                  : s->offset == CFG_FIELD(trusted_proxies) ? &opts->trusted_proxies
                                                            : &opts->cors_origins;
    free(*slot);
    *slot = copy;
    memcpy((char *)&opts->cfg + s->offset, &copy, sizeof copy);
    return 0;
}

static int apply_path(jrpcd_opts_t *opts, const char *value, char *err, size_t cap, int rest)
{
    if (rest && value[0] == '\0') {
        free(opts->rest_path);
        opts->rest_path = NULL;
        opts->cfg.rest_path = "";
        return 0;
    }
    if (value[0] != '/') {
        snprintf(err, cap, "\"%s\" must start with '/'", value);
        return -1;
    }
    for (const unsigned char *p = (const unsigned char *)value; *p != '\0'; p++) {
        if (*p <= ' ' || *p == 0x7f || *p == '?' || *p == '#') {
            snprintf(err, cap, "\"%s\" may not contain spaces, control characters, '?' or '#'",
                     value);
            return -1;
        }
    }
    char *copy = strdup(value);
    if (copy == NULL) {
        snprintf(err, cap, "out of memory");
        return -1;
    }
    if (rest) {
        free(opts->rest_path);
        opts->rest_path = copy;
        opts->cfg.rest_path = copy;
        return 0;
    }
    free(opts->path);
    opts->path = copy;
    opts->cfg.path = copy;
    return 0;
}

int jrpcd_setting_apply(jrpcd_opts_t *opts, const jrpcd_setting_t *s, const char *value, char *err,
                        size_t cap)
{
    unsigned long long v = 0;
    char lo[32], hi[32];
    switch (s->kind) {
    case JRPCD_SET_LISTEN:
        return apply_listen(opts, value, err, cap);
    case JRPCD_SET_WORDS:
        return apply_words(opts, s, value, err, cap);
    case JRPCD_SET_PATH:
        return apply_path(opts, value, err, cap, 0);
    case JRPCD_SET_REST_PATH:
        return apply_path(opts, value, err, cap, 1);
    case JRPCD_SET_LOG_LEVEL:
        if (parse_log_level(value, &opts->cfg.log_level) != 0) {
            snprintf(err, cap, "\"%s\" is not a log level (error, warn, info or debug)", value);
            return -1;
        }
        return 0;
    case JRPCD_SET_LOG_FORMAT:
        if (strcmp(value, "text") != 0 && strcmp(value, "json") != 0) {
            snprintf(err, cap, "\"%s\" is not a log format (text or json)", value);
            return -1;
        }
        opts->log_json = value[0] == 'j';
        return 0;
    case JRPCD_SET_LOG_FILE: {
        char *copy = value[0] != '\0' ? strdup(value) : NULL;
        if (value[0] != '\0' && copy == NULL) {
            snprintf(err, cap, "out of memory");
            return -1;
        }
        free(opts->log_file);
        opts->log_file = copy;
        return 0;
    }
    case JRPCD_SET_ORDER:
        if (strcmp(value, "request") != 0 && strcmp(value, "completion") != 0) {
            snprintf(err, cap, "\"%s\" is not a batch order (request or completion)", value);
            return -1;
        }
        v = value[0] == 'c' ? JRPC_ORDER_COMPLETION : JRPC_ORDER_REQUEST;
        snprintf(lo, sizeof(lo), "request");
        snprintf(hi, sizeof(hi), "completion");
        break;
    case JRPCD_SET_ON_OFF:
        if (strcmp(value, "on") != 0 && strcmp(value, "off") != 0) {
            snprintf(err, cap, "\"%s\" is not on or off", value);
            return -1;
        }
        v = value[1] == 'n';
        snprintf(lo, sizeof(lo), "off");
        snprintf(hi, sizeof(hi), "on");
        break;
    case JRPCD_SET_UINT:
        if (jrpcd_parse_uint(value, &v, err, cap) != 0)
            return -1;
        snprintf(lo, sizeof(lo), "%llu", s->min);
        snprintf(hi, sizeof(hi), "%llu", s->max);
        break;
    case JRPCD_SET_SIZE:
        if (jrpcd_parse_size(value, &v, err, cap) != 0)
            return -1;
        format_size(s->min, lo, sizeof(lo));
        format_size(s->max, hi, sizeof(hi));
        break;
    case JRPCD_SET_DURATION:
        if (jrpcd_parse_duration(value, &v, err, cap) != 0)
            return -1;
        format_duration(s->min, lo, sizeof(lo));
        format_duration(s->max, hi, sizeof(hi));
        break;
    }
    if (v < s->min || v > s->max) {
        snprintf(err, cap, "\"%s\" is out of range (%s to %s)", value, lo, hi);
        return -1;
    }
    char *field = (char *)&opts->cfg + s->offset;
    if (s->kind == JRPCD_SET_SIZE) {
        if (v > SIZE_MAX) {
            snprintf(err, cap, "\"%s\" does not fit in this machine's size_t", value);
            return -1;
        }
        size_t z = (size_t)v;
        memcpy(field, &z, sizeof(z));
    } else {
        unsigned u = (unsigned)v; /* max ≤ UINT_MAX for every count and duration above */
        memcpy(field, &u, sizeof(u));
    }
    return 0;
}

/* ---- Options --------------------------------------------------------------------------------- */

void jrpcd_opts_init(jrpcd_opts_t *opts)
{
    memset(opts, 0, sizeof(*opts));
    jrpc_config_init(&opts->cfg);
    opts->cfg.log_level = JRPC_LOG_INFO;
}

void jrpcd_opts_free(jrpcd_opts_t *opts)
{
    jrpcd_strv_free(opts->listen, opts->listen_len);
    free(opts->admin_listen);
    for (size_t i = 0; i < opts->modules_len; i++) {
        jrpcd_module_t *m = &opts->modules[i];
        jrpcd_module_close(m);
        free(m->name);
        free(m->path);
        free(m->args);
        free(m->origin);
    }
    free(opts->modules);
    jrpcd_gateway_free(opts);
    jrpcd_keys_free(opts);
    free(opts->path);
    free(opts->rest_path);
    free(opts->hosts);
    free(opts->cors_origins);
    free(opts->trusted_proxies);
    free(opts->log_file);
    free(opts->config_dir);
    free(opts->redis_url);
    if (opts->redis_password != NULL) {
        memset(opts->redis_password, 0, strlen(opts->redis_password));
        free(opts->redis_password);
    }
    memset(opts, 0, sizeof(*opts));
}

int jrpcd_opts_add_module(jrpcd_opts_t *opts, const char *name, const char *path, const char *args,
                          const char *base_dir, const char *origin, char *err, size_t cap)
{
    jrpcd_module_t m = {0};
    /* A bare "tennis.so" would make dlopen search the system library path; a path the user
     * wrote means a file, so it is always made to contain a '/'. */
    const char *dir = path[0] == '/' ? NULL : base_dir ? base_dir : ".";
    size_t n = (dir ? strlen(dir) + 1 : 0) + strlen(path) + 1;

    jrpcd_module_t *grown = realloc(opts->modules, (opts->modules_len + 1) * sizeof(*grown));
    if (grown == NULL)
        goto fail;
    opts->modules = grown;
    m.name = strdup(name);
    m.args = strdup(args ? args : "");
    m.origin = strdup(origin);
    m.path = malloc(n);
    if (m.name == NULL || m.args == NULL || m.origin == NULL || m.path == NULL)
        goto fail;
    if (dir == NULL)
        snprintf(m.path, n, "%s", path);
    else if (base_dir == NULL && strchr(path, '/') != NULL)
        snprintf(m.path, n, "%s", path);
    else
        snprintf(m.path, n, "%s/%s", dir, path);
    opts->modules[opts->modules_len++] = m;
    return 0;

fail:
    free(m.name);
    free(m.args);
    free(m.origin);
    free(m.path);
    snprintf(err, cap, "out of memory");
    return -1;
}

/* ---- Command line ---------------------------------------------------------------------------- */

enum {
    OPT_CONFIG = 'c',
    OPT_LISTEN = 'l',
    OPT_MODULE = 'm',
    OPT_QUIET = 'q',
    OPT_CHECK = 't',
    OPT_HELP = 'h',
    OPT_VERSION = 'V',
    OPT_ADMIN_LISTEN = 998,
    OPT_BATCH_DENY = 999,
    OPT_BATCH_ALLOW = 997,
    OPT_SETTING = 1000 /* + index into settings[] */
};

/* The current value of setting s, spelled as the config file would. */
static void setting_format(const jrpcd_opts_t *opts, const jrpcd_setting_t *s, char *buf,
                           size_t cap)
{
    const jrpc_config_t *c = &opts->cfg;
    const void *field = (const char *)c + s->offset;
    size_t z;
    unsigned u;
    buf[0] = '\0';
    switch (s->kind) {
    case JRPCD_SET_LISTEN:
        if (opts->listen_len == 0)
            snprintf(buf, cap, "%s", JRPCD_DEFAULT_LISTEN);
        for (size_t i = 0, used = 0; i < opts->listen_len && used < cap; i++) {
            int n = snprintf(buf + used, cap - used, "%s%s", i ? ", " : "", opts->listen[i]);
            used += n > 0 ? (size_t)n : 0;
        }
        break;
    case JRPCD_SET_PATH:
        snprintf(buf, cap, "%s", c->path ? c->path : "/");
        break;
    case JRPCD_SET_REST_PATH:
        snprintf(buf, cap, "%s", c->rest_path ? c->rest_path : "");
        break;
    case JRPCD_SET_WORDS: {
        const char *w;
        memcpy(&w, field, sizeof w);
        snprintf(buf, cap, "%s", w != NULL ? w : "");
        break;
    }
    case JRPCD_SET_LOG_LEVEL:
        snprintf(buf, cap, "%s", jrpcd_log_level_name(c->log_level));
        break;
    case JRPCD_SET_LOG_FORMAT:
        snprintf(buf, cap, "%s", opts->log_json ? "json" : "text");
        break;
    case JRPCD_SET_LOG_FILE:
        snprintf(buf, cap, "%s", opts->log_file != NULL ? opts->log_file : "");
        break;
    case JRPCD_SET_ON_OFF:
        memcpy(&u, field, sizeof(u));
        snprintf(buf, cap, "%s", u ? "on" : "off");
        break;
    case JRPCD_SET_ORDER:
        memcpy(&u, field, sizeof(u));
        snprintf(buf, cap, "%s", u == JRPC_ORDER_COMPLETION ? "completion" : "request");
        break;
    case JRPCD_SET_UINT:
        memcpy(&u, field, sizeof(u));
        snprintf(buf, cap, "%u", u);
        break;
    case JRPCD_SET_SIZE:
        memcpy(&z, field, sizeof(z));
        format_size(z, buf, cap);
        break;
    case JRPCD_SET_DURATION:
        memcpy(&u, field, sizeof(u));
        format_duration(u, buf, cap);
        break;
    }
}

void jrpcd_opts_print(const jrpcd_opts_t *opts, FILE *out)
{
    char value[1024];
    fprintf(out, "[server]\n");
    for (size_t i = 0; i < SETTINGS_LEN; i++) {
        setting_format(opts, &settings[i], value, sizeof(value));
        fprintf(out, "%s = %s\n", settings[i].key, value);
    }
    for (size_t i = 0; i < opts->modules_len; i++) {
        const jrpcd_module_t *m = &opts->modules[i];
        fprintf(out, "\n[module %s]\npath = %s\nargs =%s%s\n", m->name, m->path,
                m->args[0] ? " " : "", m->args);
    }
    fprintf(out, "\n[admin]\nlisten =%s%s\nmax_method_labels = %u\n",
            opts->admin_listen != NULL ? " " : "",
            opts->admin_listen != NULL ? opts->admin_listen : "", opts->cfg.max_method_labels);
    jrpcd_redis_print(opts, out);
    jrpcd_gateway_print(opts, out);
    jrpcd_keys_print(opts, out);
}

static void print_help(const jrpcd_opts_t *opts)
{
    printf("Usage: jrpcd [OPTION]...\n"
           "Serve JSON-RPC 2.0 over HTTP; methods come from modules (shared objects).\n"
           "Flags override the config file; every [server] key has the flag of the same name\n"
           "(underscores become dashes). Defaults in brackets.\n\n");
    printf("  -c, --config FILE          read an INI config file (docs/config.md)\n");
    printf("  -m, --module PATH[:ARGS]   load a module after those of the config; repeatable.\n"
           "                             PATH ends at the first \".so:\"; relative to the working\n"
           "                             directory\n");
    for (size_t i = 0; i < SETTINGS_LEN; i++) {
        const jrpcd_setting_t *s = &settings[i];
        char def[1024];
        setting_format(opts, s, def, sizeof(def));
        char left[64];
        if (s->kind == JRPCD_SET_ON_OFF) /* the value is optional: the flag alone means on */
            snprintf(left, sizeof(left), "    --%s[=%s]", s->flag, s->metavar);
        else
            snprintf(left, sizeof(left), "%s--%s %s", s->kind == JRPCD_SET_LISTEN ? "-l, " : "    ",
                     s->flag, s->metavar);
        printf("  %-26s %s [%s]\n", left, s->help, def);
    }
    printf("  --admin-listen HOST:PORT   admin listener serving GET /metrics (Prometheus), as\n"
           "                             [admin] listen; \"\" = off [%s]\n",
           opts->admin_listen != NULL ? opts->admin_listen : "off");
    printf("  --batch-deny PATTERN       refuse a method or pattern (debug_*) inside batches with\n"
           "                             -32004, as [batch] deny; repeatable\n");
    printf("  --batch-allow NAME[:KIND]  let denied calls through in batches (eth_subscribe:logs:\n"
           "                             first param \"logs\"), as [batch] allow; repeatable\n");
    printf(
        "  -q, --quiet                no log lines at all (errors that stop jrpcd still print)\n"
        "  -t, --check                load config and modules, print the settings in effect\n"
        "                             as a config file, and exit\n"
        "  -h, --help                 this text\n"
        "  -V, --version              print the version\n\n"
        "SIZE: bytes, or a whole number with KB, MB, GB (10^3, 10^6, 10^9) or KiB, MiB, GiB\n"
        "      (2^10, 2^20, 2^30): 5MiB, 25MB.\n"
        "DURATION: a whole number with ms, s, m or h; a plain number means seconds, as in\n"
        "      nginx: 30s, 500ms, 30.\n\n"
        "jrpcd prints \"jrpcd listening on HOST:PORT\" on stdout for each bound address; logs go\n"
        "to stderr. SIGINT or SIGTERM stops it gracefully (a second one at once); exit status\n"
        "0 after a stop, 1 when it cannot start, 2 for a bad flag or config.\n");
}

/* One --module argument: PATH[:ARGS]. PATH ends at the first ".so:" so that ARGS may hold
 * colons (a URL, HOST:PORT); without ".so:" the first ':' splits. */
static int add_module_flag(jrpcd_opts_t *opts, const char *arg, char *err, size_t cap)
{
    const char *so = strstr(arg, ".so:");
    const char *colon = so ? so + 3 : strchr(arg, ':');
    size_t path_len = colon ? (size_t)(colon - arg) : strlen(arg);
    if (path_len == 0) {
        snprintf(err, cap, "\"%s\" has no module path", arg);
        return -1;
    }
    char *path = strndup(arg, path_len);
    if (path == NULL) {
        snprintf(err, cap, "out of memory");
        return -1;
    }
    /* Named after its file, without directory and ".so", for messages. */
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t name_len = strlen(base);
    if (name_len > 3 && strcmp(base + name_len - 3, ".so") == 0)
        name_len -= 3;
    char name[256];
    snprintf(name, sizeof(name), "%.*s", (int)name_len, base);
    int rc =
        jrpcd_opts_add_module(opts, name, path, colon ? colon + 1 : "", NULL, "--module", err, cap);
    free(path);
    return rc;
}

int jrpcd_opts_parse(jrpcd_opts_t *opts, int argc, char **argv)
{
    struct option longopts[SETTINGS_LEN + 10];
    size_t n = 0;
    for (size_t i = 0; i < SETTINGS_LEN; i++)
        longopts[n++] = (struct option){settings[i].flag,
                                        settings[i].kind == JRPCD_SET_ON_OFF ? optional_argument
                                                                             : required_argument,
                                        NULL, OPT_SETTING + (int)i};
    longopts[n++] = (struct option){"config", required_argument, NULL, OPT_CONFIG};
    longopts[n++] = (struct option){"module", required_argument, NULL, OPT_MODULE};
    longopts[n++] = (struct option){"batch-deny", required_argument, NULL, OPT_BATCH_DENY};
    longopts[n++] = (struct option){"batch-allow", required_argument, NULL, OPT_BATCH_ALLOW};
    longopts[n++] = (struct option){"admin-listen", required_argument, NULL, OPT_ADMIN_LISTEN};
    longopts[n++] = (struct option){"quiet", no_argument, NULL, OPT_QUIET};
    longopts[n++] = (struct option){"check", no_argument, NULL, OPT_CHECK};
    longopts[n++] = (struct option){"help", no_argument, NULL, OPT_HELP};
    longopts[n++] = (struct option){"version", no_argument, NULL, OPT_VERSION};
    longopts[n] = (struct option){NULL, 0, NULL, 0};

    /* Flags are collected first and applied after the config file, so they override it
     * whatever their position relative to --config. */
    struct pending {
        int opt;
        const char *arg;
    } *pending = calloc((size_t)argc + 1, sizeof(*pending));
    size_t npending = 0;
    if (pending == NULL) {
        fprintf(stderr, "jrpcd: out of memory\n");
        return -1;
    }

    const int listen_opt = OPT_SETTING + (int)(jrpcd_setting_find("listen") - settings);
    int rc = -1;
    char err[512];
    opterr = 0; /* our own messages, one line each */
    optind = 0; /* glibc: start over, also when a reload parses the same argv again */
    int c;
    while ((c = getopt_long(argc, argv, ":c:l:m:qthV", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_HELP:
            print_help(opts);
            rc = 1;
            goto done;
        case OPT_VERSION:
            printf("jrpcd %s\n", jrpc_version_string());
            rc = 1;
            goto done;
        case OPT_CONFIG:
            opts->config_file = optarg;
            break;
        case OPT_QUIET:
            opts->quiet = 1;
            break;
        case OPT_CHECK:
            opts->check = 1;
            break;
        case OPT_LISTEN:
            pending[npending++] = (struct pending){listen_opt, optarg};
            break;
        case ':':
            fprintf(stderr, "jrpcd: option %s needs a value (see jrpcd --help)\n",
                    argv[optind - 1]);
            goto done;
        case '?':
            if (optopt != 0)
                fprintf(stderr, "jrpcd: unknown option -%c (see jrpcd --help)\n", optopt);
            else
                fprintf(stderr, "jrpcd: unknown option %s (see jrpcd --help)\n", argv[optind - 1]);
            goto done;
        default:
            pending[npending++] = (struct pending){c, optarg};
            break;
        }
    }
    for (size_t i = 0; i < npending; i++)
        if (pending[i].opt == listen_opt)
            opts->listen_from_flags = 1;
    if (optind < argc) {
        fprintf(stderr,
                "jrpcd: unexpected argument \"%s\" (jrpcd takes only options; see "
                "jrpcd --help)\n",
                argv[optind]);
        goto done;
    }

    if (opts->config_file != NULL) {
        /* Module paths in the file are relative to it; a file in the working directory needs
         * no prefix (config_dir stays NULL). */
        const char *slash = strrchr(opts->config_file, '/');
        if (slash != NULL) {
            size_t len = slash == opts->config_file ? 1 : (size_t)(slash - opts->config_file);
            opts->config_dir = strndup(opts->config_file, len);
            if (opts->config_dir == NULL) {
                fprintf(stderr, "jrpcd: out of memory\n");
                goto done;
            }
        }
        if (jrpcd_config_load(opts, err, sizeof(err)) != 0) {
            if (opts->errbuf != NULL)
                snprintf(opts->errbuf, opts->errcap, "%s", err);
            else
                fprintf(stderr, "jrpcd: %s\n", err);
            goto done;
        }
    }

    if (opts->listen_from_flags) {
        for (size_t i = 0; i < opts->listen_len; i++)
            free(opts->listen[i]);
        opts->listen_len = 0;
    }
    for (size_t i = 0; i < npending; i++) {
        const struct pending *p = &pending[i];
        if (p->opt == OPT_MODULE) {
            if (add_module_flag(opts, p->arg, err, sizeof(err)) != 0) {
                fprintf(stderr, "jrpcd: --module: %s\n", err);
                goto done;
            }
            continue;
        }
        if (p->opt == OPT_ADMIN_LISTEN) {
            if (jrpcd_admin_key(opts, "listen", p->arg, err, sizeof(err)) != 0) {
                fprintf(stderr, "jrpcd: --admin-listen: %s\n", err);
                goto done;
            }
            continue;
        }
        if (p->opt == OPT_BATCH_DENY) {
            if (jrpcd_batch_deny_add(opts, p->arg, err, sizeof(err)) != 0) {
                fprintf(stderr, "jrpcd: --batch-deny: %s\n", err);
                goto done;
            }
            continue;
        }
        if (p->opt == OPT_BATCH_ALLOW) {
            if (jrpcd_batch_allow_add(opts, p->arg, err, sizeof(err)) != 0) {
                fprintf(stderr, "jrpcd: --batch-allow: %s\n", err);
                goto done;
            }
            continue;
        }
        const jrpcd_setting_t *s = &settings[p->opt - OPT_SETTING];
        /* An on|off flag given alone (--reuse-port) turns its setting on. */
        const char *arg = p->arg == NULL && s->kind == JRPCD_SET_ON_OFF ? "on" : p->arg;
        if (jrpcd_setting_apply(opts, s, arg, err, sizeof(err)) != 0) {
            fprintf(stderr, "jrpcd: --%s: %s\n", s->flag, err);
            goto done;
        }
    }
    /* After the flags: a key's batch caps are checked against the server's final ones. */
    if (jrpcd_keys_check(opts, err, sizeof(err)) != 0) {
        if (opts->errbuf != NULL)
            snprintf(opts->errbuf, opts->errcap, "%s", err);
        else
            fprintf(stderr, "jrpcd: %s\n", err);
        goto done;
    }
    rc = 0;

done:
    free(pending);
    return rc;
}
