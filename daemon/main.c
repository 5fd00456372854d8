/* SPDX-License-Identifier: MIT */
/* main.c — jrpcd, the JSON-RPC 2.0 daemon: reads its options, creates the server, loads the
 * modules that provide the methods, listens, and runs until SIGINT or SIGTERM (SIGHUP reloads:
 * reload.c). The library does
 * the serving; this file only puts the pieces together in the right order. */
#include "jrpcd.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* The server the signal handler stops. Set before the handlers are installed, reset to the
 * default disposition before the server is freed. */
static jrpc_server_t *signal_srv;
static atomic_uint signal_count; /* SIGINT/SIGTERM seen; handlers may run on several threads */
static char signal_msg[2][200];  /* preformatted: the handler may not call snprintf */

static void on_signal(int sig)
{
    int saved = errno;
    if (atomic_fetch_add(&signal_count, 1) == 0) {
        jrpcd_notify("STOPPING=1");
        jrpcd_log_line(JRPC_LOG_INFO, signal_msg[sig == SIGINT ? 0 : 1], NULL);
    } else {
        /* The operator asked twice: handlers that have not replied (a stuck upstream, a long
         * timer) must not hold the process, so leave at once, as nginx does on a second stop. */
        jrpcd_log_line(JRPC_LOG_WARN, "signal again: exiting now, without waiting for requests",
                       NULL);
        _exit(1);
    }
    /* SIGTERM is how a service manager or an orchestrator stops us, with a load balancer in
     * front: it gets drain_delay of 503s from /ready first. SIGINT is someone at a terminal. */
    if (sig == SIGTERM)
        jrpc_server_drain(signal_srv);
    else
        jrpc_server_stop(signal_srv);
    errno = saved;
}

static void signals_install(jrpc_server_t *srv, unsigned drain_ms, unsigned delay_ms)
{
    snprintf(signal_msg[0], sizeof(signal_msg[0]),
             "SIGINT: stopping; requests in flight get up to %u ms (signal again to stop now)",
             drain_ms);
    if (delay_ms != 0)
        snprintf(signal_msg[1], sizeof(signal_msg[1]),
                 "SIGTERM: draining; /ready answers 503 and all is served for %u ms, then requests "
                 "in flight get up to %u ms (signal again to stop now)",
                 delay_ms, drain_ms);
    else
        snprintf(signal_msg[1], sizeof(signal_msg[1]),
                 "SIGTERM: stopping; requests in flight get up to %u ms (signal again to stop now)",
                 drain_ms);
    signal_srv = srv;

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGINT);
    sigaddset(&sa.sa_mask, SIGTERM);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

static void signals_reset(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* What jrpc_server_listen's error means for an operator, after the system's text. */
static const char *listen_hint(int rc)
{
    /* The form was checked already; EINVAL here means the host did not resolve or the library's
     * limit on addresses was reached. */
    if (rc == JRPC_EINVAL)
        return " (unknown host, or too many listen addresses)";
    if (rc == JRPC_EADDRINUSE)
        return " (another socket listens on this port, or the address is listed twice; "
               "reuse_port = on shares a port on purpose)";
    if (rc == JRPC_EADDRNOTAVAIL)
        return " (not an address of this host)";
    return "";
}

int main(int argc, char **argv)
{
    jrpcd_opts_t opts;
    jrpc_server_t *srv = NULL;
    int status = 1; /* cannot start; 2 is for bad options, 0 for a clean stop */
    char err[1024];

    jrpcd_reload_block();
    jrpcd_notify_init();
    jrpcd_opts_init(&opts);
    int rc = jrpcd_opts_parse(&opts, argc, argv);
    if (rc != 0) {
        status = rc > 0 ? 0 : 2;
        goto done;
    }

    jrpcd_log_setup(opts.cfg.log_level, opts.quiet);
    opts.cfg.log_json = (unsigned)opts.log_json;
    if (!opts.check) {
        if (jrpcd_log_output(opts.log_file, opts.log_json, err, sizeof err) != 0) {
            fprintf(stderr, "jrpcd: %s\n", err);
            goto done;
        }
        jrpcd_log_signals(); /* from here a logrotate's SIGUSR1 never ends jrpcd */
    }
    /* --quiet hands the library no callback, so it does not even format its lines. */
    opts.cfg.log_cb = opts.quiet ? NULL : jrpcd_log_line;
    opts.cfg.log_data = NULL;

    /* A client that hangs up mid-response must cost one connection, not the process. */
    struct sigaction ign;
    memset(&ign, 0, sizeof(ign));
    ign.sa_handler = SIG_IGN;
    sigemptyset(&ign.sa_mask);
    sigaction(SIGPIPE, &ign, NULL);

    /* Each connection is a descriptor: let max_connections, not the usual soft limit of 1024,
     * decide how many a client population may hold (nginx's worker_rlimit_nofile). */
    struct rlimit nofile;
    if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
        nofile.rlim_cur = nofile.rlim_max;
        setrlimit(RLIMIT_NOFILE, &nofile);
    }

    rc = jrpc_server_create(&opts.cfg, &srv);
    if (rc != 0) {
        /* The options were range-checked already: a refusal means the libjrpc this jrpcd runs
         * with checks differently, so name its version. */
        const char *field = rc == JRPC_EINVAL ? jrpc_config_check(&opts.cfg) : NULL;
        if (field != NULL)
            fprintf(stderr, "jrpcd: configuration refused by libjrpc %s: %s\n",
                    jrpc_version_string(), field);
        else
            fprintf(stderr, "jrpcd: cannot create the server: %s\n", jrpc_strerror(rc));
        goto done;
    }
    /* Before the modules: they ask jrpc_server_checking so that a check changes nothing. */
    if (opts.check && (rc = jrpc_server_set_checking(srv)) != 0) {
        fprintf(stderr, "jrpcd: cannot check: %s\n", jrpc_strerror(rc));
        goto done;
    }

    for (size_t i = 0; i < opts.modules_len; i++) {
        jrpcd_module_t *m = &opts.modules[i];
        if (jrpcd_module_load(m, srv, err, sizeof(err)) != 0) {
            fprintf(stderr, "jrpcd: %s\n", err);
            goto done;
        }
        jrpcd_log(JRPC_LOG_INFO, "loaded module %s from %s%s%s", m->name, m->path,
                  m->args[0] ? " with args " : "", m->args);
    }

    /* After the modules: their exact names win over upstream patterns, and a name both claim is
     * reported against the upstream. */
    if (jrpcd_gateway_setup(&opts, srv, err, sizeof(err)) != 0) {
        fprintf(stderr, "jrpcd: %s\n", err);
        goto done;
    }
    if (jrpcd_keys_setup(&opts, srv, err, sizeof(err)) != 0) {
        fprintf(stderr, "jrpcd: %s\n", err);
        goto done;
    }
    if (opts.admin_listen != NULL && (rc = jrpcd_gateway_metrics(&opts, srv)) != 0) {
        fprintf(stderr, "jrpcd: upstream metrics: %s\n", jrpc_strerror(rc));
        goto done;
    }

    /* A checking server validates each address as a start would bind it, without binding. */
    static const char *const default_listen[] = {JRPCD_DEFAULT_LISTEN};
    const char *const *addrs = opts.listen_len ? (const char *const *)opts.listen : default_listen;
    size_t naddrs = opts.listen_len ? opts.listen_len : 1;
    for (size_t i = 0; i < naddrs; i++) {
        rc = jrpc_server_listen(srv, addrs[i]);
        if (rc != 0) {
            fprintf(stderr, "jrpcd: cannot listen on %s: %s%s\n", addrs[i], jrpc_strerror(rc),
                    listen_hint(rc));
            goto done;
        }
    }
    size_t npublic = jrpc_server_listen_count(srv);
    if (opts.admin_listen != NULL && (rc = jrpc_server_admin_listen(srv, opts.admin_listen)) != 0) {
        fprintf(stderr, "jrpcd: cannot listen on %s ([admin] listen): %s%s\n", opts.admin_listen,
                jrpc_strerror(rc), listen_hint(rc));
        goto done;
    }
    if (opts.check) {
        /* Like nginx -t: everything a start does up to serving has been tried. */
        jrpcd_opts_print(&opts, stdout);
        status = 0;
        goto done;
    }
    /* Before the lines below: a script that signals as soon as it reads them must find the
     * handlers in place (a stop or drain before run is honoured when run starts). */
    signals_install(srv, jrpc_server_config(srv)->drain_ms,
                    jrpc_server_config(srv)->drain_delay_ms);
    /* Exactly one stdout line per bound address, with the real port when 0 was asked for:
     * tests and scripts read these lines to find the server. */
    for (size_t i = 0; i < jrpc_server_listen_count(srv); i++) {
        char addr[128];
        if (jrpc_server_address(srv, i, addr, sizeof(addr)) == 0)
            printf("jrpcd %slistening on %s\n", i < npublic ? "" : "admin ", addr);
    }
    fflush(stdout);

    const jrpc_config_t *cfg = jrpc_server_config(srv);
    jrpcd_log(JRPC_LOG_INFO,
              "jrpcd %s serving %s: io_threads %u%s, workers %u, max_batch %u, deadline %u ms",
              jrpc_version_string(), cfg->path ? cfg->path : "/", cfg->io_threads,
              opts.cfg.io_threads == 0 ? " (one per core)" : "", cfg->workers, cfg->max_batch,
              cfg->deadline_ms);

    if (jrpcd_reload_start(srv, &opts, argc, argv) != 0)
        goto done;
    rc = jrpc_server_run(srv);
    signals_reset();
    jrpcd_reload_stop();
    if (rc != 0) {
        fprintf(stderr, "jrpcd: the server failed: %s\n", jrpc_strerror(rc));
        goto done;
    }
    jrpcd_gateway_report(&opts);
    if (jrpc_server_unreplied(srv) != 0) {
        /* Their handlers may still run module code: leave the modules loaded (the process ends
         * right after this). */
        for (size_t i = 0; i < opts.modules_len; i++)
            opts.modules[i].handle = NULL;
    }
    jrpcd_log(JRPC_LOG_INFO, "stopped");
    status = 0;

done:
    /* Server first: its method table points into the modules, which opts_free dlcloses, and at
     * the upstreams, which opts_free frees. */
    if (srv != NULL)
        jrpc_server_free(srv);
    jrpcd_opts_free(&opts);
    return status;
}
