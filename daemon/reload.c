/* SPDX-License-Identifier: MIT */
/* reload.c — SIGHUP: jrpcd reads its configuration again, from the same file and flags as at
 * the start, and hands the server what a running server can change (jrpc_server_reconfigure:
 * limits, timeouts, hosts, cors_origins, log_level; jrpc_batch_deny_set: [batch] deny;
 * jrpc_upstream_reconfigure: each [upstream] section's URLs, headers, timeouts and bounds)
 * without closing a connection. A configuration that does not load, or that the library
 * refuses, changes nothing. What the running process was built with (listen addresses,
 * io_threads, workers, modules, paths, which [upstream] sections exist and the methods they
 * route: the method table is fixed once the loops run) is compared with what runs and logged as
 * needing a restart. A thread of its own waits for the signal (sigwait), so the reload runs outside
 * any handler and any io loop. */
#include "jrpcd.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static struct {
    jrpc_server_t *srv;
    jrpcd_opts_t *running; /* what srv was built from; [upstream] keys as last applied */
    int argc;              /* main's, parsed again at each reload */
    char **argv;
    pthread_t thread;       /* waits for SIGHUP */
    int started;            /* thread runs */
    atomic_int quit;        /* jrpcd_reload_stop: the next SIGHUP ends the thread */
    atomic_uint loops_up;   /* loops started, for READY=1 */
    jrpc_log_level_t level; /* the daemon's log level now (the reload thread's) */
} reload;

void jrpcd_reload_block(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
}

static int path_differ(const char *a, const char *b)
{
    return (a == NULL) != (b == NULL) || (a != NULL && strcmp(a, b) != 0);
}

static int strv_differ(char *const *a, size_t na, char *const *b, size_t nb)
{
    if (na != nb)
        return 1;
    for (size_t i = 0; i < na; i++)
        if (strcmp(a[i], b[i]) != 0)
            return 1;
    return 0;
}

static int modules_differ(const jrpcd_opts_t *a, const jrpcd_opts_t *b)
{
    if (a->modules_len != b->modules_len)
        return 1;
    for (size_t i = 0; i < a->modules_len; i++)
        if (strcmp(a->modules[i].name, b->modules[i].name) != 0 ||
            strcmp(a->modules[i].path, b->modules[i].path) != 0 ||
            strcmp(a->modules[i].args, b->modules[i].args) != 0)
            return 1;
    return 0;
}

/* Logs each setting of `next` that differs from what runs and only a restart applies; returns
 * how many. */
static int restart_needed(const jrpcd_opts_t *run, const jrpcd_opts_t *next)
{
    const jrpc_config_t *a = &run->cfg, *b = &next->cfg;
    int n = 0;
#define NEEDS(cond, what)                                                                          \
    if (cond) {                                                                                    \
        jrpcd_log(JRPC_LOG_WARN, "reload: %s changed: needs a restart (kept as it was)", what);    \
        n++;                                                                                       \
    }
    NEEDS(strv_differ(run->listen, run->listen_len, next->listen, next->listen_len), "listen");
    NEEDS(a->io_threads != b->io_threads, "io_threads");
    NEEDS(a->reuse_port != b->reuse_port, "reuse_port");
    NEEDS(a->workers != b->workers, "workers");
    NEEDS(a->worker_queue != b->worker_queue, "worker_queue");
    NEEDS(a->max_header != b->max_header, "max_header");
    NEEDS(path_differ(a->path, b->path), "path");
    NEEDS(path_differ(a->rest_path, b->rest_path), "rest_path");
    NEEDS(modules_differ(run, next), "a module");
    NEEDS(jrpcd_redis_differ(run, next), "[redis]");
#undef NEEDS
    return n;
}

static void reload_once(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    char msg[96];
    snprintf(msg, sizeof msg, "RELOADING=1\nMONOTONIC_USEC=%llu",
             (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000);
    jrpcd_notify(msg);

    const char *file = reload.running->config_file;
    jrpcd_log(JRPC_LOG_INFO, "SIGHUP: reading the configuration again (%s)",
              file != NULL ? file : "flags only");
    jrpcd_opts_t next;
    char why[768] = "";
    jrpcd_opts_init(&next);
    next.errbuf = why;
    next.errcap = sizeof why;
    if (jrpcd_opts_parse(&next, reload.argc, reload.argv) != 0) {
        jrpcd_log(JRPC_LOG_ERROR,
                  "reload refused: %s; still serving with the configuration "
                  "loaded before",
                  why[0] != '\0' ? why : "the options no longer parse");
        goto done;
    }
    const char *field = jrpc_config_check(&next.cfg);
    if (field != NULL) {
        jrpcd_log(JRPC_LOG_ERROR,
                  "reload refused: %s; still serving with the configuration "
                  "loaded before",
                  field);
        goto done;
    }
    /* Checked before anything is applied, so a section the library refuses refuses it all. */
    int up_kept = jrpcd_gateway_reload_check(reload.running, &next, why, sizeof why);
    if (up_kept < 0) {
        jrpcd_log(JRPC_LOG_ERROR,
                  "reload refused: %s; still serving with the configuration "
                  "loaded before",
                  why);
        goto done;
    }
    int kept = restart_needed(reload.running, &next) + up_kept;
    int rc = jrpc_server_reconfigure(reload.srv, &next.cfg);
    if (rc != 0) {
        jrpcd_log(JRPC_LOG_ERROR,
                  "reload refused: %s; still serving with the configuration "
                  "loaded before",
                  jrpc_strerror(rc));
        goto done;
    }
    /* The patterns passed the parser's check: only memory can fail here, and then the old
     * policy stays while the limits changed, which is said. */
    rc = jrpc_batch_deny_set(reload.srv, (const char *const *)next.batch_deny, next.batch_deny_len);
    if (rc != 0)
        jrpcd_log(JRPC_LOG_ERROR, "reload: [batch] deny kept as it was: %s", jrpc_strerror(rc));
    int up_applied = jrpcd_gateway_reload_apply(reload.running, &next);
    /* Keys (with the keys_file read again) apply to requests from now on. */
    if (jrpcd_keys_setup(&next, reload.srv, why, sizeof why) != 0)
        jrpcd_log(JRPC_LOG_ERROR, "reload: API keys kept as they were: %s", why);
    /* The line below shows at the old level or the new one, whichever says more. */
    const jrpc_config_t *cfg = jrpc_server_config(reload.srv);
    if (cfg->log_level > reload.level)
        jrpcd_log_set_level(cfg->log_level);
    jrpcd_log(JRPC_LOG_INFO,
              "reloaded: max_batch %u, max_batch_ws %u, deadline %u ms, %zu [batch] deny "
              "patterns, %d [upstream] section%s changed, %zu API keys, log_level %s%s",
              cfg->max_batch, cfg->max_batch_ws, cfg->deadline_ms, next.batch_deny_len, up_applied,
              up_applied == 1 ? "" : "s", jrpcd_keys_count(&next),
              jrpcd_log_level_name(cfg->log_level),
              kept ? " (some settings need a restart, see above)" : "");
done:
    jrpcd_opts_free(&next);
    jrpcd_notify("READY=1");
}

static void *reload_main(void *arg)
{
    (void)arg;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    for (;;) {
        int sig = 0;
        if (sigwait(&set, &sig) != 0)
            continue;
        if (atomic_load(&reload.quit))
            return NULL;
        reload_once();
    }
}

/* Each loop's start hook: the last one to start tells systemd that jrpcd serves. */
static void loop_started(void *loop, unsigned index, void *data)
{
    (void)loop;
    (void)index;
    (void)data;
    if (atomic_fetch_add(&reload.loops_up, 1) + 1 == jrpc_server_config(reload.srv)->io_threads)
        jrpcd_notify("READY=1");
}

int jrpcd_reload_start(jrpc_server_t *srv, jrpcd_opts_t *running, int argc, char **argv)
{
    reload.srv = srv;
    reload.running = running;
    reload.argc = argc;
    reload.argv = argv;
    reload.level = running->cfg.log_level;
    int rc = jrpc_server_loop_hook(srv, loop_started, NULL, NULL);
    if (rc != 0) {
        jrpcd_log(JRPC_LOG_ERROR, "cannot watch the loops start: %s", jrpc_strerror(rc));
        return -1;
    }
    if ((rc = pthread_create(&reload.thread, NULL, reload_main, NULL)) != 0) {
        jrpcd_log(JRPC_LOG_ERROR, "cannot start the reload thread: %s", strerror(rc));
        return -1;
    }
    reload.started = 1;
    return 0;
}

void jrpcd_reload_stop(void)
{
    if (!reload.started)
        return;
    atomic_store(&reload.quit, 1);
    pthread_kill(reload.thread, SIGHUP);
    pthread_join(reload.thread, NULL);
    reload.started = 0;
}
