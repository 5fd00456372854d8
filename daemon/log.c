/* SPDX-License-Identifier: MIT */
/* log.c — the daemon's log sink: one line per entry on stderr or in log_file,
 * "2026-11-22T10:00:00.123Z info …" or, with log_format = json, {"time":…,"level":…,"msg":…},
 * written with a single write(2) from a stack buffer, so lines from concurrent io threads never
 * interleave and the same function is safe to call from a signal handler. SIGUSR1 reopens
 * log_file (after logrotate moved it). */
#include "jrpcd.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* One log line at most, newline included. PIPE_BUF (4096 on Linux) is the largest write POSIX
 * keeps atomic on a pipe, and stderr is a pipe under systemd, docker and the integration tests;
 * longer lines are cut (and end in "...") rather than split into pieces that could interleave. */
#define LOG_LINE_MAX 4096

/* log_quiet is set once before the server starts; log_level also by a reload, from its thread
 * while io threads log (relaxed: a line filtered by either level is fine). */
static _Atomic jrpc_log_level_t log_level = JRPC_LOG_INFO;
static int log_quiet;
static int log_json;               /* log_format = json */
static int log_fd = STDERR_FILENO; /* stderr, or log_file's descriptor (kept across reopens) */
static char log_path[4096];        /* log_file, "" for stderr (read by the signal handler) */

int jrpcd_log_output(const char *path, int json, char *err, size_t cap)
{
    log_json = json;
    if (path == NULL || path[0] == '\0')
        return 0;
    if (strlen(path) >= sizeof log_path) {
        snprintf(err, cap, "log_file: path too long");
        return -1;
    }
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) {
        snprintf(err, cap, "log_file: cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    snprintf(log_path, sizeof log_path, "%s", path);
    log_fd = fd;
    return 0;
}

/* SIGUSR1: the file at log_path takes the place of the one open (open and dup2 are
 * async-signal-safe, and dup2 swaps the descriptor atomically: a line being written by another
 * thread goes whole to the old file or the new one). */
static void on_reopen(int sig)
{
    (void)sig;
    int saved = errno;
    if (log_path[0] == '\0') {
        errno = saved;
        return;
    }
    int fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) {
        jrpcd_log_line(JRPC_LOG_ERROR, "SIGUSR1: cannot reopen log_file: keeping the old one",
                       NULL);
    } else {
        dup2(fd, log_fd);
        close(fd);
        jrpcd_log_line(JRPC_LOG_INFO, "SIGUSR1: log_file reopened", NULL);
    }
    errno = saved;
}

void jrpcd_log_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_reopen;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
}

void jrpcd_log_setup(jrpc_log_level_t level, int quiet)
{
    log_level = level;
    log_quiet = quiet;
}

void jrpcd_log_set_level(jrpc_log_level_t level)
{
    atomic_store_explicit(&log_level, level, memory_order_relaxed);
}

const char *jrpcd_log_level_name(jrpc_log_level_t level)
{
    switch (level) {
    case JRPC_LOG_ERROR:
        return "error";
    case JRPC_LOG_WARN:
        return "warn";
    case JRPC_LOG_INFO:
        return "info";
    case JRPC_LOG_DEBUG:
        return "debug";
    }
    return NULL;
}

/* Writes v as exactly `width` decimal digits at p; returns the end. */
static char *log_digits(char *p, int64_t v, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        p[i] = (char)('0' + v % 10);
        v /= 10;
    }
    return p + width;
}

/* "YYYY-MM-DDTHH:MM:SS.mmmZ" (24 bytes) at p, from the real-time clock. gmtime_r is not
 * async-signal-safe, so the civil date is computed here from the day count (the proleptic
 * Gregorian calendar in 400-year eras of 146097 days, counted from 0000-03-01 so the leap day
 * falls at the end of a year). */
static char *log_timestamp(char *p)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
        ts.tv_sec = ts.tv_nsec = 0;
    int64_t secs = (int64_t)ts.tv_sec;
    int64_t days = secs / 86400;
    int64_t sod = secs % 86400;
    if (sod < 0) {
        sod += 86400;
        days--;
    }
    int64_t z = days + 719468; /* days since 0000-03-01 */
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;                                      /* day of era */
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* year of era */
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);               /* day of year (Mar 1) */
    int64_t mp = (5 * doy + 2) / 153;                                    /* month from March */
    int64_t day = doy - (153 * mp + 2) / 5 + 1;
    int64_t month = mp < 10 ? mp + 3 : mp - 9;
    int64_t year = yoe + era * 400 + (month <= 2);
    if (year < 0 || year > 9999)
        year = 0;

    p = log_digits(p, year, 4);
    *p++ = '-';
    p = log_digits(p, month, 2);
    *p++ = '-';
    p = log_digits(p, day, 2);
    *p++ = 'T';
    p = log_digits(p, sod / 3600, 2);
    *p++ = ':';
    p = log_digits(p, sod / 60 % 60, 2);
    *p++ = ':';
    p = log_digits(p, sod % 60, 2);
    *p++ = '.';
    p = log_digits(p, (int64_t)ts.tv_nsec / 1000000, 3);
    *p++ = 'Z';
    return p;
}

static void log_write(const char *buf, size_t len);

static char *log_put(char *p, const char *s)
{
    while (s != NULL && *s != '\0')
        *p++ = *s++;
    return p;
}

/* s as the inside of a JSON string, up to end (cut with "..." when it does not fit). Bytes past
 * ASCII pass as they are: what the library logs is ASCII, and a module's text is its own. */
static char *log_json_str(char *p, char *end, const char *line)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)line;
    end -= 3; /* room for "..." */
    for (; *s != '\0'; s++) {
        int esc = *s < 0x20 || *s == '"' || *s == '\\';
        if (p + (esc ? 6 : 1) > end)
            break;
        if (*s == '"' || *s == '\\') {
            *p++ = '\\';
            *p++ = (char)*s;
        } else if (esc) {
            p = log_put(p, "\\u00");
            *p++ = hex[*s >> 4];
            *p++ = hex[*s & 15];
        } else {
            *p++ = (char)*s;
        }
    }
    if (*s != '\0')
        p = log_put(p, "...");
    return p;
}

/* The members of a JSON object the library wrote (after its "{"), up to end. A line that does
 * not fit is not cut inside a value: its members are replaced by a note, so every line stays
 * valid JSON. */
static char *log_json_tail(char *p, char *end, const char *members)
{
    size_t n = strlen(members);
    if ((size_t)(end - p) < n)
        return log_put(p, "\"msg\":\"(line too long)\"}");
    memcpy(p, members, n);
    return p + n;
}

void jrpcd_log_line(jrpc_log_level_t level, const char *line, void *data)
{
    static const char hex[] = "0123456789abcdef";
    (void)data;
    if (log_quiet || level > atomic_load_explicit(&log_level, memory_order_relaxed))
        return;

    char buf[LOG_LINE_MAX];
    char *p = buf;
    const unsigned char *s = (const unsigned char *)line;
    if (log_json) {
        p = log_put(p, "{\"time\":\"");
        p = log_timestamp(p);
        p = log_put(p, "\",\"level\":\"");
        p = log_put(p, jrpcd_log_level_name(level));
        if (strncmp(line, "{\"msg\":\"access\"", 15) == 0) {
            /* An access line the library wrote as a JSON object: it gets time and level. */
            p = log_put(p, "\",");
            p = log_json_tail(p, buf + sizeof(buf) - 2, line + 1);
        } else {
            p = log_put(p, "\",\"msg\":\"");
            p = log_json_str(p, buf + sizeof(buf) - 4, line);
            p = log_put(p, "\"}");
        }
        *p++ = '\n';
        log_write(buf, (size_t)(p - buf));
        return;
    }
    p = log_timestamp(buf);
    *p++ = ' ';
    for (const char *n = jrpcd_log_level_name(level); n != NULL && *n != '\0'; n++)
        *p++ = *n;
    *p++ = ' ';

    /* Room for the text, keeping 4 bytes for "..." and 1 for the newline. */
    char *end = buf + sizeof(buf) - 5;
    for (; *s != '\0'; s++) {
        /* Control bytes could come from a client (a method name, a path): escaped, one entry
         * can never pose as two lines or move the terminal's cursor. */
        int escape = *s < 0x20 || *s == 0x7f;
        if (p + (escape ? 4 : 1) > end)
            break;
        if (escape) {
            *p++ = '\\';
            *p++ = 'x';
            *p++ = hex[*s >> 4];
            *p++ = hex[*s & 15];
        } else {
            *p++ = (char)*s;
        }
    }
    if (*s != '\0') {
        *p++ = '.';
        *p++ = '.';
        *p++ = '.';
    }
    *p++ = '\n';
    log_write(buf, (size_t)(p - buf));
}

static void log_write(const char *buf, size_t len)
{
    int saved = errno;
    const char *w = buf;
    size_t left = len;
    while (left > 0) {
        ssize_t n = write(log_fd, w, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break; /* stderr is gone: nothing better to do with the line */
        w += n;
        left -= (size_t)n;
    }
    errno = saved;
}

void jrpcd_log(jrpc_log_level_t level, const char *fmt, ...)
{
    if (log_quiet || level > atomic_load_explicit(&log_level, memory_order_relaxed))
        return;
    char line[LOG_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    jrpcd_log_line(level, line, NULL);
}
