/* SPDX-License-Identifier: MIT */
/* metrics.c — the admin listener's /metrics: sums every loop's counters (src/io/stats.h) with the
 * server-wide totals and the process's own figures into the Prometheus text format (0.0.4), then
 * lets extensions (the gateway) add theirs. Runs on the loop that serves the scrape; the other
 * loops are read with relaxed loads, never stopped or woken. */
#include "io/redis.h"
#include "server.h"

#include <dirent.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

struct jrpc_metrics {
    jrpc_buf_t *out;
};

static const char *const transport_names[JRPC__TR_COUNT] = {"http", "ws", "rest"};
static const char *const limit_names[JRPC__LIMIT_COUNT] = {
#define XX(name, label) label,
    JRPC__LIMIT_MAP(XX)
#undef XX
};

JRPC_EXTERN void jrpc_metrics_printf(jrpc_metrics_t *m, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof small) {
        jrpc_buf_append(m->out, small, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (big == NULL) {
        m->out->err = JRPC_ENOMEM;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    jrpc_buf_append(m->out, big, (size_t)n);
    free(big);
}

JRPC_EXTERN void jrpc_metrics_label(jrpc_metrics_t *m, const char *s)
{
    for (const char *p = s; *p != '\0'; p++) {
        if (*p == '\\')
            jrpc_buf_append(m->out, "\\\\", 2);
        else if (*p == '"')
            jrpc_buf_append(m->out, "\\\"", 2);
        else if (*p == '\n')
            jrpc_buf_append(m->out, "\\n", 2);
        else
            jrpc_buf_append(m->out, p, 1);
    }
}

static void head(jrpc_metrics_t *m, const char *name, const char *type, const char *help)
{
    jrpc_metrics_printf(m, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Sums the jrpc__ctr_t at byte offset `off` of jrpc__stats_t over the loops. */
static uint64_t sum_at(const jrpc__loop_t *loops, unsigned n, size_t off)
{
    uint64_t s = 0;
    for (unsigned i = 0; i < n; i++)
        s += jrpc__ctr_get((const jrpc__ctr_t *)((const char *)&loops[i].stats + off));
    return s;
}
#define SUM(loops, n, f) sum_at((loops), (n), offsetof(jrpc__stats_t, f))

/* One histogram summed over the loops: h(loop) gives each loop's; NULL ones are skipped. */
typedef const jrpc__hist_t *(*hist_of_cb)(const jrpc__loop_t *loop, unsigned arg);

static void hist_sum(const jrpc__loop_t *loops, unsigned n, hist_of_cb of, unsigned arg,
                     uint64_t *b, uint64_t *sum, uint64_t *count)
{
    memset(b, 0, JRPC__HIST_MAX * sizeof(*b));
    *sum = *count = 0;
    for (unsigned i = 0; i < n; i++) {
        const jrpc__hist_t *h = of(&loops[i], arg);
        if (h == NULL)
            continue;
        for (unsigned k = 0; k < JRPC__HIST_MAX; k++)
            b[k] += jrpc__ctr_get(&h->b[k]);
        *sum += jrpc__ctr_get(&h->sum);
        *count += jrpc__ctr_get(&h->count);
    }
}

/* Writes a histogram's samples; `labels` ("method=\"x\"," or "") go before le. Durations are
 * kept in µs and written in seconds (scale 1e6); batch sizes as they are (scale 1). */
static void hist_write(jrpc_metrics_t *m, const char *name, const char *labels,
                       const uint64_t *bounds, unsigned nb, const uint64_t *b, uint64_t sum,
                       uint64_t count, double scale)
{
    uint64_t cum = 0;
    for (unsigned k = 0; k < nb; k++) {
        cum += b[k];
        jrpc_metrics_printf(m, "%s_bucket{%sle=\"%g\"} %llu\n", name, labels,
                            (double)bounds[k] / scale, (unsigned long long)cum);
    }
    const char *bare = labels[0] != '\0' ? labels : NULL;
    size_t bl = bare != NULL ? strlen(bare) - 1 : 0; /* without the trailing comma */
    jrpc_metrics_printf(m, "%s_bucket{%sle=\"+Inf\"} %llu\n", name, labels,
                        (unsigned long long)count);
    if (bare != NULL) {
        jrpc_metrics_printf(m, "%s_sum{%.*s} %.6f\n", name, (int)bl, bare, (double)sum / scale);
        jrpc_metrics_printf(m, "%s_count{%.*s} %llu\n", name, (int)bl, bare,
                            (unsigned long long)count);
    } else {
        jrpc_metrics_printf(m, "%s_sum %.6f\n", name, (double)sum / scale);
        jrpc_metrics_printf(m, "%s_count %llu\n", name, (unsigned long long)count);
    }
}

static const jrpc__hist_t *batch_of(const jrpc__loop_t *loop, unsigned arg)
{
    (void)arg;
    return &loop->stats.batch;
}
static const jrpc__hist_t *req_dur_of(const jrpc__loop_t *loop, unsigned tr)
{
    return &loop->stats.req_dur[tr];
}
static const jrpc__hist_t *call_dur_of(const jrpc__loop_t *loop, unsigned label)
{
    const jrpc__stats_t *st = &loop->stats;
    return st->call_dur != NULL && label < st->nlabels ? &st->call_dur[label] : NULL;
}

/* jrpc_calls_total: every loop's cells, merged by key (sorted, equal keys summed). */
typedef struct {
    uint64_t key, n;
} cell_t;

static int by_key(const void *a, const void *b)
{
    uint64_t x = ((const cell_t *)a)->key, y = ((const cell_t *)b)->key;
    return x < y ? -1 : x > y;
}

static void calls_write(jrpc_metrics_t *m, const jrpc_server_t *srv, const jrpc__loop_t *loops,
                        unsigned n)
{
    head(m, "jrpc_calls_total", "counter",
         "Calls (batch items) finished, by transport, method label and code (ok or the JSON-RPC "
         "error code).");
    cell_t *v = malloc((size_t)n * JRPC__CALL_CELLS * sizeof(*v));
    if (v == NULL) {
        m->out->err = JRPC_ENOMEM;
        return;
    }
    size_t k = 0;
    for (unsigned i = 0; i < n; i++) {
        const jrpc__call_cell_t *cells = loops[i].stats.calls;
        if (cells == NULL)
            continue;
        for (unsigned j = 0; j < JRPC__CALL_CELLS; j++) {
            uint64_t key = atomic_load_explicit(&cells[j].key, memory_order_acquire);
            if (key != 0)
                v[k++] = (cell_t){key, jrpc__ctr_get(&cells[j].n)};
        }
    }
    qsort(v, k, sizeof(*v), by_key);
    for (size_t i = 0; i < k;) {
        uint64_t key = v[i].key, sum = 0;
        for (; i < k && v[i].key == key; i++)
            sum += v[i].n;
        unsigned kind = (unsigned)(key >> 62);
        unsigned tr = (unsigned)(key >> 60) & 3u;
        unsigned label = (unsigned)(key >> 32) & 0x0fffffffu;
        const char *method = label < srv->nlabels ? srv->labels[label] : "(other)";
        jrpc_metrics_printf(m, "jrpc_calls_total{transport=\"%s\",method=\"",
                            tr < JRPC__TR_COUNT ? transport_names[tr] : "?");
        jrpc_metrics_label(m, method);
        if (kind == JRPC__CALL_CODE_OK)
            jrpc_metrics_printf(m, "\",code=\"ok\"} %llu\n", (unsigned long long)sum);
        else if (kind == JRPC__CALL_CODE_OTHER)
            jrpc_metrics_printf(m, "\",code=\"(other)\"} %llu\n", (unsigned long long)sum);
        else
            jrpc_metrics_printf(m, "\",code=\"%d\"} %llu\n", (int)(uint32_t)key,
                                (unsigned long long)sum);
    }
    free(v);
}

/* Compression and streamed batch answers (docs/compression.md): HTTP gzip and WebSocket
 * permessage-deflate by transport and direction, the zlib state they hold, and how HTTP batch
 * answers went out. */
static void compression_write(jrpc_metrics_t *m, const jrpc__loop_t *loops, unsigned n)
{
    static const char *const dirs[2] = {"in", "out"};
    static const struct {
        const char *name, *help;
        size_t off; /* of the [2][2] array in jrpc__stats_t */
    } z[] = {
        {"jrpc_compression_messages_total",
         "HTTP bodies and WebSocket messages compressed (out) or decompressed (in).",
         offsetof(jrpc__stats_t, z_msgs)},
        {"jrpc_compression_plain_bytes_total", "Their bytes uncompressed.",
         offsetof(jrpc__stats_t, z_plain)},
        {"jrpc_compression_compressed_bytes_total", "Their bytes compressed.",
         offsetof(jrpc__stats_t, z_wire)},
    };
    for (size_t i = 0; i < sizeof z / sizeof z[0]; i++) {
        head(m, z[i].name, "counter", z[i].help);
        for (unsigned t = 0; t < 2; t++)
            for (unsigned d = 0; d < 2; d++)
                jrpc_metrics_printf(m, "%s{transport=\"%s\",direction=\"%s\"} %llu\n", z[i].name,
                                    transport_names[t], dirs[d],
                                    (unsigned long long)sum_at(
                                        loops, n, z[i].off + (t * 2 + d) * sizeof(jrpc__ctr_t)));
    }
    head(m, "jrpc_compression_state_bytes", "gauge",
         "Bytes of zlib state held by compression streams (part of jrpc_held_bytes).");
    for (unsigned t = 0; t < 2; t++)
        jrpc_metrics_printf(m, "jrpc_compression_state_bytes{transport=\"%s\"} %lld\n",
                            transport_names[t], (long long)SUM(loops, n, z_state[t]));
    head(m, "jrpc_ws_deflate_connections", "gauge",
         "Open WebSocket connections that negotiated permessage-deflate.");
    jrpc_metrics_printf(
        m, "jrpc_ws_deflate_connections %llu\n",
        (unsigned long long)(SUM(loops, n, ws_deflate[0]) - SUM(loops, n, ws_deflate[1])));
    head(m, "jrpc_ws_deflate_connections_total", "counter",
         "WebSocket connections that negotiated permessage-deflate.");
    jrpc_metrics_printf(m, "jrpc_ws_deflate_connections_total %llu\n",
                        (unsigned long long)SUM(loops, n, ws_deflate[0]));
    head(m, "jrpc_http_batch_answers_total", "counter",
         "HTTP batch answers, streamed (chunked) or buffered, by the order asked for.");
    static const char *const modes[2] = {"buffered", "streamed"};
    static const char *const orders[2] = {"request", "completion"};
    for (unsigned s = 0; s < 2; s++)
        for (unsigned o = 0; o < 2; o++)
            jrpc_metrics_printf(m, "jrpc_http_batch_answers_total{mode=\"%s\",order=\"%s\"} %llu\n",
                                modes[s], orders[o],
                                (unsigned long long)SUM(loops, n, batch_answers[s][o]));
}

/* When the process started (seconds since the epoch): the boot time (/proc/stat btime) plus its
 * start in clock ticks after boot (/proc/self/stat field 22); 0 when unknown. */
static double start_time(void)
{
    char buf[1024];
    unsigned long long btime = 0, ticks = 0;
    FILE *f = fopen("/proc/stat", "r");
    if (f == NULL)
        return 0;
    while (fgets(buf, sizeof buf, f) != NULL)
        if (sscanf(buf, "btime %llu", &btime) == 1)
            break;
    fclose(f);
    f = fopen("/proc/self/stat", "r");
    if (f == NULL)
        return 0;
    size_t len = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[len] = '\0';
    const char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    if (p == NULL)
        return 0;
    /* After ") " come fields 3 (state) … 22 (starttime). */
    for (int field = 2; field < 22 && p != NULL; field++)
        p = strchr(p + 1, ' ');
    if (p == NULL || sscanf(p + 1, "%llu", &ticks) != 1)
        return 0;
    long hz = sysconf(_SC_CLK_TCK);
    return btime != 0 && hz > 0 ? (double)btime + (double)ticks / (double)hz : 0;
}

/* The process_* series of the Prometheus client libraries, from /proc and getrusage. */
static void process_write(jrpc_metrics_t *m)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0) {
        head(m, "process_cpu_seconds_total", "counter", "User and system CPU time spent.");
        jrpc_metrics_printf(m, "process_cpu_seconds_total %.6f\n",
                            (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
                                (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6);
    }
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long long vsz = 0, rss = 0;
    if (f != NULL) {
        if (fscanf(f, "%llu %llu", &vsz, &rss) == 2) {
            long page = sysconf(_SC_PAGESIZE);
            head(m, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
            jrpc_metrics_printf(m, "process_resident_memory_bytes %llu\n",
                                rss * (unsigned long long)page);
            head(m, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.");
            jrpc_metrics_printf(m, "process_virtual_memory_bytes %llu\n",
                                vsz * (unsigned long long)page);
        }
        fclose(f);
    }
    DIR *d = opendir("/proc/self/fd");
    if (d != NULL) {
        unsigned long n = 0;
        for (struct dirent *e; (e = readdir(d)) != NULL;)
            n += e->d_name[0] != '.';
        closedir(d);
        head(m, "process_open_fds", "gauge", "Open file descriptors.");
        jrpc_metrics_printf(m, "process_open_fds %lu\n", n > 0 ? n - 1 : 0); /* opendir's own */
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
        head(m, "process_max_fds", "gauge", "Maximum number of open file descriptors.");
        jrpc_metrics_printf(m, "process_max_fds %llu\n", (unsigned long long)rl.rlim_cur);
    }
    double start = start_time();
    if (start > 0) {
        head(m, "process_start_time_seconds", "gauge",
             "Start time of the process since the Unix epoch in seconds.");
        jrpc_metrics_printf(m, "process_start_time_seconds %.2f\n", start);
    }
}

/* One key's (or the anonymous clients') counters (jrpc__keys_stats_each). */
static void key_sample(jrpc_metrics_t *m, const char *series, const char *name, const char *reason,
                       unsigned long v)
{
    jrpc_metrics_printf(m, "%s{key=\"", series);
    jrpc_metrics_label(m, name);
    if (reason != NULL)
        jrpc_metrics_printf(m, "\",reason=\"%s", reason);
    jrpc_metrics_printf(m, "\"} %lu\n", v);
}

static void key_calls(const jrpc__key_stats_t *s, void *m)
{
    key_sample(m, "jrpc_key_calls_total", s->name, NULL, atomic_load(&s->calls));
}

static void key_units(const jrpc__key_stats_t *s, void *m)
{
    key_sample(m, "jrpc_key_units_total", s->name, NULL, atomic_load(&s->units));
}

static void key_rejections(const jrpc__key_stats_t *s, void *m)
{
    key_sample(m, "jrpc_key_rejections_total", s->name, "budget", atomic_load(&s->rej_budget));
    key_sample(m, "jrpc_key_rejections_total", s->name, "method", atomic_load(&s->rej_method));
}

/* API keys (docs/keys.md): 401s, and per key (by name, never the secret) calls, units and
 * refusals; the key series appear once the server has had keys. */
static void keys_write(jrpc_metrics_t *m, jrpc__engine_t *e)
{
    head(m, "jrpc_auth_rejections_total", "counter",
         "Requests answered 401: no API key where one is required, or an unknown one.");
    jrpc_metrics_printf(m, "jrpc_auth_rejections_total{reason=\"missing\"} %lu\n",
                        atomic_load(&e->auth_refused[0]));
    jrpc_metrics_printf(m, "jrpc_auth_rejections_total{reason=\"unknown\"} %lu\n",
                        atomic_load(&e->auth_refused[1]));
    if (atomic_load(&e->kstats) == NULL)
        return;
    head(m, "jrpc_key_calls_total", "counter", "Calls admitted, by API key.");
    jrpc__keys_stats_each(e, key_calls, m);
    head(m, "jrpc_key_units_total", "counter", "Units spent by admitted calls, by API key.");
    jrpc__keys_stats_each(e, key_units, m);
    head(m, "jrpc_key_rejections_total", "counter", "Calls refused, by API key and reason.");
    jrpc__keys_stats_each(e, key_rejections, m);
}

void jrpc__metrics_render(jrpc__loop_t *loop, jrpc_buf_t *out)
{
    jrpc_server_t *srv = loop->io->srv;
    jrpc__io_t *io = &srv->io;
    const jrpc__loop_t *loops = io->loops;
    unsigned n = loops != NULL ? srv->cfg.io_threads : 0;
    if (loops == NULL) { /* a loop driven by hand (tests) */
        loops = loop;
        n = 1;
    }
    jrpc_metrics_t mm = {out}, *m = &mm;
    jrpc_buf_reserve(out, 16384);

    head(m, "jrpc_http_requests_total", "counter", "HTTP requests answered, by status.");
    for (unsigned s = 100; s < 600; s++) {
        uint64_t v = SUM(loops, n, http_status[s]);
        if (v != 0 || s == 200)
            jrpc_metrics_printf(m, "jrpc_http_requests_total{status=\"%u\"} %llu\n", s,
                                (unsigned long long)v);
    }
    head(m, "jrpc_ws_messages_total", "counter", "WebSocket data messages, by direction.");
    jrpc_metrics_printf(m, "jrpc_ws_messages_total{direction=\"in\"} %llu\n",
                        (unsigned long long)SUM(loops, n, ws_in));
    jrpc_metrics_printf(m, "jrpc_ws_messages_total{direction=\"out\"} %llu\n",
                        (unsigned long long)SUM(loops, n, ws_out));
    head(m, "jrpc_connections", "gauge", "Open client connections, by transport.");
    for (unsigned t = 0; t < JRPC__TR_REST; t++)
        jrpc_metrics_printf(
            m, "jrpc_connections{transport=\"%s\"} %llu\n", transport_names[t],
            (unsigned long long)(SUM(loops, n, conns[t]) - SUM(loops, n, closed[t])));
    head(m, "jrpc_connections_total", "counter",
         "Client connections accepted (http) or upgraded (ws).");
    for (unsigned t = 0; t < JRPC__TR_REST; t++)
        jrpc_metrics_printf(m, "jrpc_connections_total{transport=\"%s\"} %llu\n",
                            transport_names[t], (unsigned long long)SUM(loops, n, conns[t]));

    calls_write(m, srv, loops, n);

    uint64_t b[JRPC__HIST_MAX], sum, count;
    head(m, "jrpc_batch_size", "histogram", "Items per batch request.");
    hist_sum(loops, n, batch_of, 0, b, &sum, &count);
    hist_write(m, "jrpc_batch_size", "", jrpc__hist_batch_bounds, JRPC__HIST_BATCH_N, b, sum, count,
               1.0);
    head(m, "jrpc_call_duration_seconds", "histogram",
         "Time from a call's start to its handler's reply, by method label.");
    for (unsigned l = 0; l < srv->nlabels; l++) {
        hist_sum(loops, n, call_dur_of, l, b, &sum, &count);
        if (count == 0)
            continue;
        jrpc_buf_t lb;
        jrpc_buf_init(&lb);
        jrpc_metrics_t lm = {&lb};
        jrpc_buf_append(&lb, "method=\"", 8);
        jrpc_metrics_label(&lm, srv->labels[l]);
        jrpc_buf_append(&lb, "\",", 3); /* with the NUL */
        if (lb.err == 0)
            hist_write(m, "jrpc_call_duration_seconds", lb.ptr, jrpc__hist_dur_bounds,
                       JRPC__HIST_DUR_N, b, sum, count, 1e6);
        jrpc_buf_free(&lb);
    }
    head(m, "jrpc_request_duration_seconds", "histogram",
         "Time from an HTTP request's first byte, or a WebSocket message's arrival, to its "
         "answer, by transport.");
    for (unsigned t = 0; t < JRPC__TR_COUNT; t++) {
        char labels[32];
        snprintf(labels, sizeof labels, "transport=\"%s\",", transport_names[t]);
        hist_sum(loops, n, req_dur_of, t, b, &sum, &count);
        hist_write(m, "jrpc_request_duration_seconds", labels, jrpc__hist_dur_bounds,
                   JRPC__HIST_DUR_N, b, sum, count, 1e6);
    }

    head(m, "jrpc_limit_rejections_total", "counter",
         "Requests, calls, messages or connections refused or cut at a limit, by limit.");
    for (unsigned l = 0; l < JRPC__LIMIT_COUNT; l++) {
        uint64_t v = SUM(loops, n, limits[l]) +
                     atomic_load_explicit(&io->limits_shared[l], memory_order_relaxed);
        jrpc_metrics_printf(m, "jrpc_limit_rejections_total{limit=\"%s\"} %llu\n", limit_names[l],
                            (unsigned long long)v);
    }
    const struct {
        const char *name;
        atomic_ulong *v;
    } io_limits[] = {{"max_inflight", &io->refused_calls},
                     {"max_memory", &io->refused_memory},
                     {"max_connections", &io->refused_total},
                     {"max_connections_per_ip", &io->refused_per_ip}};
    for (size_t i = 0; i < sizeof io_limits / sizeof io_limits[0]; i++)
        jrpc_metrics_printf(m, "jrpc_limit_rejections_total{limit=\"%s\"} %lu\n", io_limits[i].name,
                            atomic_load_explicit(io_limits[i].v, memory_order_relaxed));

    keys_write(m, &srv->engine);

    compression_write(m, loops, n);

    head(m, "jrpc_calls_in_flight", "gauge", "Calls admitted and not finished.");
    jrpc_metrics_printf(m, "jrpc_calls_in_flight %llu\n",
                        (unsigned long long)SUM(loops, n, calls_used));
    head(m, "jrpc_held_bytes", "gauge",
         "Bytes held by requests in the engine and answers not yet written.");
    jrpc_metrics_printf(m, "jrpc_held_bytes %llu\n", (unsigned long long)SUM(loops, n, mem_used));
    head(m, "jrpc_worker_queue_depth", "gauge", "Worker calls queued and not taken by a thread.");
    jrpc_metrics_printf(m, "jrpc_worker_queue_depth %u\n",
                        io->pool != NULL ? jrpc__pool_depth(io->pool) : 0);

    if (srv->redis_url != NULL && srv->engine.budget != NULL) {
        jrpc__redis_stats_t rs;
        jrpc__budget_redis_stats(srv->engine.budget, &rs);
        head(m, "jrpc_redis_requests_total", "counter",
             "Budget reservations sent to Redis or failed before, by outcome.");
        for (unsigned k = 0; k < JRPC__REDIS_OUTCOMES; k++)
            jrpc_metrics_printf(m, "jrpc_redis_requests_total{outcome=\"%s\"} %llu\n",
                                jrpc__redis_outcome_name(k), (unsigned long long)rs.outcomes[k]);
        head(m, "jrpc_redis_up", "gauge",
             "1 when every io loop has its Redis connection ready, else 0.");
        jrpc_metrics_printf(m, "jrpc_redis_up %d\n", rs.loops > 0 && rs.loops_up == rs.loops);
    }

    process_write(m);
    for (const jrpc__metrics_ext_t *e = srv->metrics_exts; e != NULL; e = e->next)
        e->cb(m, e->data);
}

JRPC_EXTERN int jrpc_server_metrics_hook(jrpc_server_t *srv, jrpc_metrics_cb cb, void *data)
{
    if (atomic_load(&srv->io.running))
        return JRPC_EBUSY;
    jrpc__metrics_ext_t *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return JRPC_ENOMEM;
    e->cb = cb;
    e->data = data;
    jrpc__metrics_ext_t **tail = &srv->metrics_exts;
    while (*tail != NULL)
        tail = &(*tail)->next;
    *tail = e;
    return 0;
}

JRPC_EXTERN int jrpc_server_admin_listen(jrpc_server_t *srv, const char *host_port)
{
    if (atomic_load(&srv->io.running))
        return JRPC_EBUSY;
    if (host_port == NULL)
        return JRPC_EINVAL;
    int rc = jrpc__io_listen(&srv->io, host_port);
    if (rc == 0) {
        srv->io.admin[srv->io.naddrs - 1] = 1;
        srv->io.timed = 1;
    }
    return rc;
}

int jrpc__metrics_prepare(jrpc_server_t *srv)
{
    free(srv->labels);
    srv->labels = NULL;
    srv->nlabels = jrpc__registry_label(srv->engine.registry, srv->cfg.max_method_labels,
                                        (const char ***)&srv->labels);
    srv->io.nlabels = srv->nlabels;
    return srv->nlabels == 0 ? JRPC_ENOMEM : 0;
}

void jrpc__metrics_free(jrpc_server_t *srv)
{
    while (srv->metrics_exts != NULL) {
        jrpc__metrics_ext_t *e = srv->metrics_exts;
        srv->metrics_exts = e->next;
        free(e);
    }
    free(srv->labels);
    srv->labels = NULL;
}
