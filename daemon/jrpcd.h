/* SPDX-License-Identifier: MIT */
/* jrpcd.h — what the daemon's files share: the options gathered from the config file and the
 * command line, the value parsers both of them use, logging, and module loading. Private to
 * daemon/; the library knows none of it. */
#ifndef JRPCD_H
#define JRPCD_H

#include "jrpc.h"
#include "jrpc/upstream.h"

#include <stddef.h>
#include <stdio.h>

/* Listen address used when neither the config nor a flag names one: loopback only, so a daemon
 * started by hand is never reachable from the network by accident. */
#define JRPCD_DEFAULT_LISTEN "127.0.0.1:8000"

/* One module to load, in the order given (config sections first, then --module flags). */
typedef struct jrpcd_module {
    char *name;   /* [module NAME], or the file name for --module */
    char *path;   /* as handed to dlopen: config-relative paths already resolved */
    char *args;   /* "" when none; must outlive the server (jrpc.h), so it lives in the opts */
    char *origin; /* where it was declared, for errors: "jrpcd.ini:12" or "--module" */
    void *handle; /* dlopen handle; NULL until loaded, dlclosed after jrpc_server_free */
} jrpcd_module_t;

/* One [upstream NAME] section (daemon/upstream.c). */
typedef struct jrpcd_upstream {
    char *name;                 /* NAME */
    char *origin;               /* "jrpcd.ini:12": where it was declared */
    jrpc_upstream_config_t cfg; /* numbers; the pointers are filled when it is added */
    jrpc_upstream_url_t urls[JRPC_UPSTREAM_MAX_URLS]; /* url strings owned */
    size_t nurls;                                     /* entries in urls */
    unsigned next_priority;                           /* priority of the next `urls` entry */
    char **methods;                                   /* owned names and patterns */
    size_t nmethods;                                  /* entries in methods */
    char **headers;                                   /* owned "Name: value" lines */
    size_t nheaders;                                  /* entries in headers */
    char *ca_file;       /* owned, resolved against the config dir; NULL: system CAs */
    char **ws_urls;      /* owned ws:// URLs for subscriptions (ws_urls) */
    size_t nws_urls;     /* entries in ws_urls */
    char **dedup_deny;   /* owned patterns of dedup_deny */
    size_t ndedup_deny;  /* entries in dedup_deny */
    unsigned share_set;  /* dedup, auto_batch, batch_wait, transport,
                            batch_hold seen (a bit each) */
    char *probe;         /* owned probe method (probe), or NULL: no probes */
    unsigned health_set; /* hedge_after, probe seen (a bit each) */
    unsigned set;        /* numeric keys seen (a bit per key): each may appear once */
    jrpc_upstream_t *up; /* once added; freed after the server */
} jrpcd_upstream_t;

/* Everything the daemon was told to do. Built by jrpcd_opts_parse, freed by jrpcd_opts_free. */
typedef struct jrpcd_opts {
    jrpc_config_t cfg;           /* library settings; cfg.path points at path below when set */
    char *path;                  /* owned copy behind cfg.path, NULL: library default */
    char *rest_path;             /* owned copy behind cfg.rest_path, NULL: library default */
    char *hosts;                 /* owned copy behind cfg.hosts, NULL: library default */
    char *cors_origins;          /* owned copy behind cfg.cors_origins, NULL: none */
    char **listen;               /* owned "HOST:PORT" strings, in order */
    size_t listen_len;           /* entries in listen */
    int listen_from_flags;       /* a --listen was seen: it replaces the config's list */
    jrpcd_module_t *modules;     /* owned, in load order */
    size_t modules_len;          /* entries in modules */
    jrpcd_upstream_t *upstreams; /* owned, in file order */
    size_t upstreams_len;        /* entries in upstreams */
    /* [cache] and [cache ttl] (daemon/upstream.c): the gateway's response cache. */
    unsigned long long cache_size;           /* bytes; 0: off */
    int cache_size_set;                      /* size seen (else the library's default) */
    unsigned long long cache_tag_ttl_ms;     /* [cache] tag_ttl */
    jrpc_upstream_cache_rule_t *cache_rules; /* [cache ttl] lines, patterns owned */
    size_t cache_nrules;                     /* entries in cache_rules */
    unsigned cache_redis;                    /* [cache] redis: on (1) or off */
    unsigned long long cache_redis_max;      /* [cache] redis_max_value; 0: the default */
    char **batch_deny;                       /* owned patterns of [batch] deny and --batch-deny */
    size_t batch_deny_len;                   /* entries in batch_deny */
    char *admin_listen;                      /* owned [admin] listen / --admin-listen, NULL: off */
    int quiet;                               /* --quiet: no log callback at all */
    int log_json;                            /* log_format = json */
    char *log_file;                          /* owned log_file, NULL: stderr */
    char *trusted_proxies;                   /* owned copy behind cfg.trusted_proxies, NULL: none */
    int check;               /* --check: load everything, print the settings, exit */
    const char *config_file; /* --config argument (argv storage), or NULL */
    char *errbuf;            /* set: a config file error goes here, not to stderr (reload) */
    size_t errcap;           /* bytes of errbuf */
    char *config_dir;        /* directory of config_file (NULL: the working directory) */
    struct jrpcd_keys *keys; /* [auth], [key NAME], [cost] and the keys_file (keys.c);
                                NULL: none of them */
    char *redis_url;         /* owned [redis] url behind cfg.redis_url, NULL: off */
    char *redis_password;    /* owned [redis] password behind cfg.redis_password (secret) */
} jrpcd_opts_t;

/* ---- options.c ------------------------------------------------------------------------------ */

/* Setting kinds shared by [server] keys and their flags. */
typedef enum {
    JRPCD_SET_UINT,       /* unsigned count */
    JRPCD_SET_SIZE,       /* bytes, with KB/MB/GB or KiB/MiB/GiB */
    JRPCD_SET_DURATION,   /* milliseconds, written with ms/s/m/h; a plain number is seconds */
    JRPCD_SET_PATH,       /* the RPC path */
    JRPCD_SET_REST_PATH,  /* the REST prefix, "" to turn REST off */
    JRPCD_SET_LISTEN,     /* one or more HOST:PORT */
    JRPCD_SET_WORDS,      /* a list the library reads (hosts, cors_origins), "" for its default */
    JRPCD_SET_LOG_LEVEL,  /* error|warn|info|debug */
    JRPCD_SET_LOG_FORMAT, /* text|json */
    JRPCD_SET_LOG_FILE,   /* a path, "" for stderr */
    JRPCD_SET_ON_OFF,     /* on|off into an unsigned 1|0; the flag alone means on */
    JRPCD_SET_ORDER       /* request|completion into an unsigned JRPC_ORDER_* */
} jrpcd_setting_kind_t;

/* One [server] key and the flag that mirrors it. */
typedef struct jrpcd_setting {
    const char *key;  /* INI key */
    const char *flag; /* long option: key with '-' for '_' */
    jrpcd_setting_kind_t kind;
    size_t offset;          /* field in jrpc_config_t (numbers and lists) */
    unsigned long long min; /* accepted range, in the field's unit (bytes, ms, count) */
    unsigned long long max;
    const char *metavar; /* argument name in --help */
    const char *help;    /* one line for --help */
} jrpcd_setting_t;

/* The [server] key called `key`, or NULL. */
const jrpcd_setting_t *jrpcd_setting_find(const char *key);
/* Parses `value` for setting `s` into opts. 0, or -1 with a one-line reason in err (without the
 * key or flag name: the caller knows where the value came from). */
int jrpcd_setting_apply(jrpcd_opts_t *opts, const jrpcd_setting_t *s, const char *value, char *err,
                        size_t cap);

/* Adds a module to opts. `path` is resolved against `base_dir` when relative (NULL: against the
 * working directory). 0, or -1 (out of memory) with err set. */
int jrpcd_opts_add_module(jrpcd_opts_t *opts, const char *name, const char *path, const char *args,
                          const char *base_dir, const char *origin, char *err, size_t cap);

void jrpcd_opts_init(jrpcd_opts_t *opts);
void jrpcd_opts_free(jrpcd_opts_t *opts);
/* Reads the command line and the config file it names into opts, flags overriding the file.
 * 0: go on; 1: done (--help or --version printed), exit 0; -1: error printed, exit 2. */
int jrpcd_opts_parse(jrpcd_opts_t *opts, int argc, char **argv);

/* Writes the settings in effect as an INI file jrpcd would read back (--check). */
void jrpcd_opts_print(const jrpcd_opts_t *opts, FILE *out);

/* Lists in values ("a b, c"): words separated by spaces, tabs or commas. Sets (*word, *len) to
 * the next word at *p and moves *p past it; 0 when no word is left. */
int jrpcd_list_next(const char **p, const char **word, size_t *len);
/* Appends a malloc'd copy of s[0..len) to the array *v of *n strings. 0, or -1 (out of memory)
 * with err set. */
int jrpcd_strv_push(char ***v, size_t *n, const char *s, size_t len, char *err, size_t cap);
/* Frees the n strings of v, and v. */
void jrpcd_strv_free(char **v, size_t n);

/* Value parsers; 0, or -1 with a one-line reason in err. */
int jrpcd_parse_uint(const char *s, unsigned long long *out, char *err, size_t cap);
int jrpcd_parse_size(const char *s, unsigned long long *out, char *err, size_t cap);
int jrpcd_parse_duration(const char *s, unsigned long long *out_ms, char *err, size_t cap);

/* ---- config.c ------------------------------------------------------------------------------- */

/* Reads the INI file opts->config_file into opts. 0, or -1 with "FILE:LINE: reason" in err. */
int jrpcd_config_load(jrpcd_opts_t *opts, char *err, size_t cap);

/* ---- upstream.c ----------------------------------------------------------------------------- */

/* One key of [upstream NAME] (the section is created on its first key). `origin` is "FILE:LINE".
 * 0, or -1 with a one-line reason in err. */
int jrpcd_upstream_key(jrpcd_opts_t *opts, const char *name, const char *key, const char *value,
                       const char *origin, char *err, size_t cap);
/* After the file: every upstream has URLs and methods. 0, or -1 with "FILE:LINE: …" in err. */
int jrpcd_upstreams_check(const jrpcd_opts_t *opts, char *err, size_t cap);
/* One key of [cache] (ttl NULL) or of [cache ttl] (PATTERN = DURATION | forever | 0). 0, or -1
 * with a one-line reason in err. */
int jrpcd_cache_key(jrpcd_opts_t *opts, const char *sub, const char *key, const char *value,
                    char *err, size_t cap);
/* [batch] deny = PATTERN… (also --batch-deny): appends the patterns. 0, or -1 with err set. */
/* One [admin] key (listen, max_method_labels), or --admin-listen. 0, or -1 with err filled. */
int jrpcd_admin_key(jrpcd_opts_t *opts, const char *name, const char *value, char *err, size_t cap);
/* ---- redis.c: the [redis] section ------------------------------------------------------------ */
/* One [redis] key: 0, or -1 with the reason in err. */
int jrpcd_redis_key(jrpcd_opts_t *opts, const char *name, const char *value, char *err, size_t cap);
/* The section as --check prints it (the password, also one in the URL, hidden). */
void jrpcd_redis_print(const jrpcd_opts_t *opts, FILE *out);
/* Whether the two [redis] sections differ (a reload: only a restart applies it). */
int jrpcd_redis_differ(const jrpcd_opts_t *a, const jrpcd_opts_t *b);
int jrpcd_batch_deny_add(jrpcd_opts_t *opts, const char *value, char *err, size_t cap);
/* `[batch] allow = NAME[:KIND] …`: exceptions to deny, kept in the same list as "!NAME[:KIND]"
 * (jrpc_batch_deny's form), so a reload replaces both at once. */
int jrpcd_batch_allow_add(jrpcd_opts_t *opts, const char *value, char *err, size_t cap);
/* Registers the batch policy and the upstreams on srv, after the modules. 0, or -1, err set. */
int jrpcd_gateway_setup(jrpcd_opts_t *opts, jrpc_server_t *srv, char *err, size_t cap);
/* Reload, before anything is applied: logs (warn) each [upstream] change only a restart applies
 * (a section added or removed, its methods changed) and checks, with the library, the sections
 * whose other keys changed. The number of restart-only changes, or -1 with err set: a changed
 * section the library refuses (the reload is refused). */
int jrpcd_gateway_reload_check(const jrpcd_opts_t *run, const jrpcd_opts_t *next, char *err,
                               size_t cap);
/* Reload, once the server took the new settings: applies each changed section to its running
 * upstream (jrpc_upstream_reconfigure) and moves its keys into run (next gets the old ones, to
 * free), so the next reload compares with what runs. Returns how many were applied. */
int jrpcd_gateway_reload_apply(jrpcd_opts_t *run, jrpcd_opts_t *next);
/* Logs each upstream's counters (when the daemon stops). */
/* Adds the upstreams' series to the server's scrapes (jrpc_server_metrics_hook). 0 or
 * JRPC_E*. */
int jrpcd_gateway_metrics(jrpcd_opts_t *opts, jrpc_server_t *srv);
void jrpcd_gateway_report(const jrpcd_opts_t *opts);
/* Writes the [upstream …] and [batch] sections for --check. */
void jrpcd_gateway_print(const jrpcd_opts_t *opts, FILE *out);
/* Frees the upstreams (after jrpc_server_free) and the batch policy. */
void jrpcd_gateway_free(jrpcd_opts_t *opts);

/* ---- keys.c -------------------------------------------------------------------------------- */

/* One key of [auth] (keys_file is resolved against base_dir), of [key NAME] (`origin`:
 * "FILE:LINE"), or of [cost]. 0, or -1 with a one-line reason in err. */
int jrpcd_auth_key(jrpcd_opts_t *opts, const char *name, const char *value, const char *base_dir,
                   char *err, size_t cap);
int jrpcd_key_key(jrpcd_opts_t *opts, const char *key, const char *name, const char *value,
                  const char *origin, char *err, size_t cap);
int jrpcd_cost_key(jrpcd_opts_t *opts, const char *pattern, const char *value, char *err,
                   size_t cap);
/* After the file and the flags: reads the keys_file and checks every key. 0, or -1, err set. */
int jrpcd_keys_check(jrpcd_opts_t *opts, char *err, size_t cap);
/* Gives the keys to srv (none: no keys), at the start and at each reload. 0, or -1, err set. */
int jrpcd_keys_setup(const jrpcd_opts_t *opts, jrpc_server_t *srv, char *err, size_t cap);
/* Keys configured (for the reload's line). */
size_t jrpcd_keys_count(const jrpcd_opts_t *opts);
/* The [auth], [key …] and [cost] sections for --check, every secret hidden. */
void jrpcd_keys_print(const jrpcd_opts_t *opts, FILE *out);
void jrpcd_keys_free(jrpcd_opts_t *opts);

/* ---- log.c ---------------------------------------------------------------------------------- */

/* Sets the level and whether to log at all; call before the server starts. */
void jrpcd_log_setup(jrpc_log_level_t level, int quiet);
/* Where and how lines go: `path` (NULL or "": stderr) opened for appending, `json` for one JSON
 * object per line. 0, or -1 with err set. Before the server starts. */
int jrpcd_log_output(const char *path, int json, char *err, size_t cap);
/* SIGUSR1 reopens the log file at its path (logrotate's postrotate sends it). */
void jrpcd_log_signals(void);
/* The library's log callback: writes "TIMESTAMP LEVEL LINE\n" to stderr with one write(2).
 * Thread-safe and async-signal-safe (no locks, no stdio, no malloc), so the signal handler
 * uses it too. */
void jrpcd_log_line(jrpc_log_level_t level, const char *line, void *data);
/* printf-style front end for the daemon's own messages; not async-signal-safe. */
void jrpcd_log(jrpc_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "error", "warn", "info", "debug"; NULL for anything else. */
const char *jrpcd_log_level_name(jrpc_log_level_t level);

/* Changes the level after the start (a reload); any thread. */
void jrpcd_log_set_level(jrpc_log_level_t level);

/* ---- notify.c ------------------------------------------------------------------------------- */

/* Reads NOTIFY_SOCKET (systemd's Type=notify); call once, before threads and signal handlers. */
void jrpcd_notify_init(void);
/* Sends msg ("READY=1", lines separated by '\n') to it; nothing when jrpcd was not started that
 * way. Async-signal-safe (the SIGTERM handler sends STOPPING=1). */
void jrpcd_notify(const char *msg);

/* ---- reload.c ------------------------------------------------------------------------------- */

/* Blocks SIGHUP in the calling thread, and so in every thread it starts later: only the reload
 * thread takes it (sigwait), and a SIGHUP while jrpcd starts waits for it instead of ending the
 * process. Call first in main. */
void jrpcd_reload_block(void);
/* Starts the thread that reloads on SIGHUP: it reads the configuration again from argv (the same
 * file and flags) and applies it to srv (daemon/reload.c says what changes live). `running` is
 * what srv was built from: what needs a restart is compared with it; the [upstream] keys a
 * reload applies are moved into it (the reload thread writes them; the names and upstream
 * objects a scrape reads do not change). Also registers the loop
 * hook that sends READY=1 once every loop serves. Before jrpc_server_run. 0, or -1 (logged). */
int jrpcd_reload_start(jrpc_server_t *srv, jrpcd_opts_t *running, int argc, char **argv);
/* Ends that thread (after jrpc_server_run returned). */
void jrpcd_reload_stop(void);

/* ---- module.c ------------------------------------------------------------------------------- */

/* dlopens m->path and calls its jrpc_module_init(srv, m->args). 0, or -1 with a reason that names
 * the module in err. m->handle is set once the object is open, also on failure after that, so
 * jrpcd_module_close releases it. */
int jrpcd_module_load(jrpcd_module_t *m, jrpc_server_t *srv, char *err, size_t cap);
/* dlcloses m if open. Only after jrpc_server_free: the server holds pointers into the module. */
void jrpcd_module_close(jrpcd_module_t *m);

#endif
