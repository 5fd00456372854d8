/* SPDX-License-Identifier: MIT */
/* db.c — the ledger's SQLite file: created with the embedded schema and fixture on first start,
 * then read and written through one connection per worker thread. A connection is opened lazily by
 * the first call a worker runs, keeps its statements prepared for the life of the thread and is
 * closed when the thread exits (a pthread key destructor), so a batch of 1000 balance reads runs
 * on every worker at once with no lock and no re-preparing. */
#include "db.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* How long a connection waits for a lock another process holds before giving up with
 * SQLITE_BUSY. Writers of this process queue on write_lock instead (below), so this covers other
 * processes: a second jrpcd on the same file, the sqlite3 shell, a checkpoint. 5 s is far longer
 * than any transaction here takes (a transfer is two reads, two writes and one fsync), yet well
 * inside the default 30 s item deadline, so a stuck lock answers with a clear error rather than a
 * timeout. */
#define LEDGER_BUSY_MS 5000

struct ledger_db {
    char *path;                 /* absolute, so a later chdir cannot move it */
    pthread_key_t key;          /* this thread's ledger_conn_t */
    pthread_mutex_t write_lock; /* held around each write transaction */
    pthread_mutex_t list_lock;  /* guards conns */
    ledger_conn_t *conns;       /* every open connection, for unload */
    struct ledger_db *next;     /* in the module's list of databases */
};

/* Every database opened by this module (one per jrpc_module_init), freed at unload. */
static pthread_mutex_t dbs_lock = PTHREAD_MUTEX_INITIALIZER;
static ledger_db_t *dbs;

static const char *const ledger_sql[LEDGER_Q_COUNT] = {
    [LEDGER_Q_BEGIN] = "BEGIN IMMEDIATE",
    [LEDGER_Q_COMMIT] = "COMMIT",
    [LEDGER_Q_ROLLBACK] = "ROLLBACK",
    [LEDGER_Q_BALANCE] = "SELECT amount FROM shares WHERE address = ?1",
    [LEDGER_Q_AMOUNTS] = "SELECT amount FROM shares",
    [LEDGER_Q_SET] = "INSERT INTO shares (address, amount) VALUES (?1, ?2) "
                     "ON CONFLICT (address) DO UPDATE SET amount = excluded.amount",
    [LEDGER_Q_NFTS] = "SELECT amount_of_steth, amount_of_shares, owner, timestamp, is_finalized, "
                      "is_claimed, id FROM withdrawal_requests WHERE account = ?1 ORDER BY id",
    [LEDGER_Q_REBASE] =
        "SELECT report_timestamp, time_elapsed, pre_total_shares, pre_total_ether, "
        "post_total_shares, post_total_ether, shares_minted_as_fees, address, topic0, topic1, "
        "data, block_number, transaction_hash, transaction_index, block_hash, log_index, removed "
        "FROM token_rebased_events ORDER BY block_number DESC, log_index DESC LIMIT 1",
};

int ledger_exec(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc;
}

/* mkdir -p for the directories above the file `path`; 0 or -errno. */
static int ledger_mkdirs(const char *path)
{
    char buf[PATH_MAX];
    size_t n = strlen(path);
    if (n >= sizeof(buf))
        return -ENAMETOOLONG;
    memcpy(buf, path, n + 1);
    for (char *p = buf + 1; *p != '\0'; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST) {
            /* An existing directory is fine even where mkdir fails for another reason first
             * (a read-only mount, no write permission on its parent). */
            int e = errno;
            struct stat st;
            if (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode))
                return -e;
        }
        *p = '/';
    }
    return 0;
}

/* The absolute form of `path` (whose directory exists): malloc'd, or NULL with errno set. */
static char *ledger_abspath(const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    char dir[PATH_MAX];
    if (slash == NULL) {
        if (getcwd(dir, sizeof(dir)) == NULL)
            return NULL;
    } else {
        char parent[PATH_MAX];
        size_t n = slash == path ? 1 : (size_t)(slash - path);
        if (n >= sizeof(parent)) {
            errno = ENAMETOOLONG;
            return NULL;
        }
        memcpy(parent, path, n);
        parent[n] = '\0';
        if (realpath(parent, dir) == NULL)
            return NULL;
    }
    size_t len = strlen(dir) + 1 + strlen(base) + 1;
    char *out = malloc(len);
    if (out == NULL)
        return NULL;
    snprintf(out, len, "%s%s%s", dir, strcmp(dir, "/") == 0 ? "" : "/", base);
    return out;
}

/* The single integer a one-row statement returns; -1 on error. */
static long long ledger_scalar(sqlite3 *h, const char *sql)
{
    sqlite3_stmt *st = NULL;
    long long v = -1;
    if (sqlite3_prepare_v2(h, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* Switches the file to WAL, where readers never block the writer nor each other: the balance
 * reads of a big batch go on while a transfer commits. The mode is stored in the file. */
static int ledger_wal(sqlite3 *h, char *err, size_t cap)
{
    sqlite3_stmt *st = NULL;
    int ok = 0;
    if (sqlite3_prepare_v2(h, "PRAGMA journal_mode = WAL", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
        const unsigned char *mode = sqlite3_column_text(st, 0);
        ok = mode != NULL && strcmp((const char *)mode, "wal") == 0;
        if (!ok)
            snprintf(err, cap, "cannot switch to WAL mode (journal_mode is %s)",
                     mode ? (const char *)mode : "?");
    } else {
        snprintf(err, cap, "PRAGMA journal_mode: %s", sqlite3_errmsg(h));
    }
    sqlite3_finalize(st);
    return ok ? 0 : -1;
}

static void ledger_conn_release(void *p);

/* Reads the file's schema version: 1 for a new file (no tables, version 0: the schema is still
 * to be made), 0 for the version this code reads, -1 with a message in err for anything else. */
static int ledger_schema_state(sqlite3 *h, char *err, size_t cap)
{
    long long version = ledger_scalar(h, "PRAGMA user_version");
    long long objects = ledger_scalar(h, "SELECT count(*) FROM sqlite_master");
    if (version < 0 || objects < 0) {
        snprintf(err, cap, "cannot read the schema: %s", sqlite3_errmsg(h));
        return -1;
    }
    if (version == 0 && objects == 0)
        return 1;
    if (version == LEDGER_SCHEMA_VERSION)
        return 0;
    if (version == 0)
        snprintf(err, cap, "the file holds another database (tables, but no ledger schema)");
    else
        snprintf(err, cap, "the file has ledger schema version %lld; this module reads %d", version,
                 LEDGER_SCHEMA_VERSION);
    return -1;
}

/* Creates the schema and fixture in a new file, or checks an existing file's schema version; one
 * IMMEDIATE transaction, so two daemons starting at once on the same file fill it once. */
static int ledger_init_schema(sqlite3 *h, char *err, size_t cap)
{
    char *msg = NULL;
    if (sqlite3_exec(h, "BEGIN IMMEDIATE", NULL, NULL, &msg) != SQLITE_OK)
        goto fail;
    int state = ledger_schema_state(h, err, cap);
    if (state < 0)
        goto fail_txn;
    if (state == 1) {
        if (sqlite3_exec(h, (const char *)ledger_schema_sql, NULL, NULL, &msg) != SQLITE_OK ||
            sqlite3_exec(h, (const char *)ledger_fixture_sql, NULL, NULL, &msg) != SQLITE_OK)
            goto fail;
        char sql[64];
        snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", LEDGER_SCHEMA_VERSION);
        if (sqlite3_exec(h, sql, NULL, NULL, &msg) != SQLITE_OK)
            goto fail;
    }
    if (sqlite3_exec(h, "COMMIT", NULL, NULL, &msg) != SQLITE_OK)
        goto fail;
    return 0;

fail:
    snprintf(err, cap, "%s", msg ? msg : sqlite3_errmsg(h));
    sqlite3_free(msg);
fail_txn:
    if (!sqlite3_get_autocommit(h))
        sqlite3_exec(h, "ROLLBACK", NULL, NULL, NULL);
    return -1;
}

/* The file name as an SQLite URI that opens it read-only with immutable=1: SQLite then takes no
 * lock and creates no -wal or -shm file beside it, so a check changes nothing on disk. It reads
 * what the last checkpoint wrote: beside a daemon that has just made the file, whose schema may
 * still be in its WAL, that is an empty file, which passes as it would at a start. malloc'd, NULL
 * when out of memory. */
static char *ledger_immutable_uri(const char *abs)
{
    static const char hex[] = "0123456789ABCDEF";
    static const char prefix[] = "file:", suffix[] = "?immutable=1";
    size_t n = strlen(abs);
    char *uri = malloc(sizeof prefix + 3 * n + sizeof suffix);
    if (uri == NULL)
        return NULL;
    char *o = uri + sizeof prefix - 1;
    memcpy(uri, prefix, sizeof prefix - 1);
    for (const unsigned char *p = (const unsigned char *)abs; *p != '\0'; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            strchr("/-._~", *p) != NULL) {
            *o++ = (char)*p;
        } else {
            *o++ = '%';
            *o++ = hex[*p >> 4];
            *o++ = hex[*p & 15];
        }
    }
    memcpy(o, suffix, sizeof suffix);
    return uri;
}

/* The nearest directory of `path` that exists: its own directory, or the first parent of it
 * that exists (a start makes the missing ones). 0 with it in dir, or -errno. */
static int ledger_existing_dir(const char *path, char *dir, size_t cap)
{
    if (strlen(path) >= cap)
        return -ENAMETOOLONG;
    strcpy(dir, path);
    for (;;) {
        char *slash = strrchr(dir, '/');
        if (slash == NULL)
            strcpy(dir, ".");
        else if (slash == dir)
            dir[1] = '\0'; /* the root */
        else
            *slash = '\0';
        struct stat st;
        if (stat(dir, &st) == 0)
            return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
        if (errno != ENOENT || slash == NULL || slash == dir)
            return -errno;
    }
}

/* jrpcd --check: what a start would refuse, found without creating or changing a file. A new
 * database needs a writable directory (the nearest one that exists: a start makes the rest); an
 * existing file must be readable and writable in a writable directory (WAL keeps two files
 * beside it) and hold the ledger schema this code reads. 0, or -1 with a message in err. */
static int ledger_db_check(const char *path, char *err, size_t cap)
{
    char dir[PATH_MAX];
    struct stat st;
    int exists = stat(path, &st) == 0;
    int rc = exists || errno == ENOENT ? ledger_existing_dir(path, dir, sizeof dir) : -errno;
    if (rc == 0 && exists && !S_ISREG(st.st_mode))
        rc = -EINVAL;
    if (rc == 0 && ((exists && access(path, R_OK | W_OK) != 0) || access(dir, W_OK | X_OK) != 0))
        rc = -errno;
    if (rc != 0) {
        snprintf(err, cap, "%s: %s%s", path, exists ? "" : "cannot be created: ",
                 rc == -EINVAL ? "not a regular file" : strerror(-rc));
        return -1;
    }
    if (!exists)
        return 0;

    char *abs = ledger_abspath(path);
    char *uri = abs != NULL ? ledger_immutable_uri(abs) : NULL;
    if (uri == NULL) {
        snprintf(err, cap, "%s: %s", path, abs != NULL ? "out of memory" : strerror(errno));
        free(abs);
        return -1;
    }
    sqlite3 *h = NULL;
    char why[512];
    rc = sqlite3_open_v2(uri, &h, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, cap, "%s: %s", abs, h ? sqlite3_errmsg(h) : sqlite3_errstr(rc));
        rc = -1;
    } else if (ledger_schema_state(h, why, sizeof why) < 0) {
        snprintf(err, cap, "%s: %s", abs, why);
        rc = -1;
    }
    sqlite3_close(h);
    free(uri);
    free(abs);
    return rc == SQLITE_OK ? 0 : -1;
}

/* Called by jrpc_module_init (so the message goes out on stderr with the module's failure). */
ledger_db_t *ledger_db_open(const char *path, int check, char *err, size_t cap)
{
    if (path == NULL || path[0] == '\0')
        path = LEDGER_DEFAULT_PATH;
    if (strcmp(path, ":memory:") == 0 || path[strlen(path) - 1] == '/') {
        snprintf(err, cap,
                 "\"%s\" is not a file path: every worker opens its own connection to "
                 "the database, so it must be a file",
                 path);
        return NULL;
    }
    if (!sqlite3_threadsafe()) {
        snprintf(err, cap, "libsqlite3 was built without thread support");
        return NULL;
    }
    ledger_db_t *db = NULL;
    sqlite3 *h = NULL;
    char *abs = NULL;
    if (check) {
        if (ledger_db_check(path, err, cap) != 0)
            return NULL;
        /* Methods are registered with a database that is never opened: a check never runs. */
        abs = strdup(path);
        if (abs == NULL) {
            snprintf(err, cap, "out of memory");
            return NULL;
        }
        goto made;
    }
    int rc = ledger_mkdirs(path);
    if (rc != 0) {
        snprintf(err, cap, "cannot create the directory of %s: %s", path, strerror(-rc));
        return NULL;
    }
    abs = ledger_abspath(path);
    if (abs == NULL) {
        snprintf(err, cap, "%s: %s", path, strerror(errno));
        return NULL;
    }
    rc = sqlite3_open_v2(abs, &h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                         NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, cap, "%s: %s", abs, h ? sqlite3_errmsg(h) : sqlite3_errstr(rc));
        goto fail;
    }
    sqlite3_busy_timeout(h, LEDGER_BUSY_MS);
    char why[512];
    if (ledger_wal(h, why, sizeof(why)) != 0 || ledger_init_schema(h, why, sizeof(why)) != 0) {
        snprintf(err, cap, "%s: %s", abs, why);
        goto fail;
    }
    sqlite3_close(h);
    h = NULL;

made:
    db = calloc(1, sizeof(*db));
    if (db == NULL || pthread_key_create(&db->key, ledger_conn_release) != 0) {
        free(db);
        db = NULL;
        snprintf(err, cap, "out of memory");
        goto fail;
    }
    db->path = abs;
    pthread_mutex_init(&db->write_lock, NULL);
    pthread_mutex_init(&db->list_lock, NULL);
    pthread_mutex_lock(&dbs_lock);
    db->next = dbs;
    dbs = db;
    pthread_mutex_unlock(&dbs_lock);
    return db;

fail:
    sqlite3_close(h);
    free(abs);
    return NULL;
}

const char *ledger_db_path(const ledger_db_t *db)
{
    return db->path;
}

static void ledger_conn_close(ledger_conn_t *c)
{
    for (int i = 0; i < LEDGER_Q_COUNT; i++)
        sqlite3_finalize(c->q[i]);
    sqlite3_close(c->db);
    free(c);
}

/* Key destructor: a worker thread is exiting (the server is being freed). */
static void ledger_conn_release(void *p)
{
    ledger_conn_t *c = p;
    ledger_db_t *db = c->owner;
    pthread_mutex_lock(&db->list_lock);
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        db->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    pthread_mutex_unlock(&db->list_lock);
    ledger_conn_close(c);
}

ledger_conn_t *ledger_db_conn(ledger_db_t *db, char *err, size_t cap)
{
    ledger_conn_t *c = pthread_getspecific(db->key);
    if (c != NULL)
        return c;
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        snprintf(err, cap, "out of memory");
        return NULL;
    }
    c->owner = db;
    /* No CREATE: the file exists since start; if it was deleted, fail rather than serve an empty
     * ledger. NOMUTEX: the connection never leaves its thread, so SQLite's own locks are waste. */
    int rc = sqlite3_open_v2(db->path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK)
        goto fail;
    sqlite3_busy_timeout(c->db, LEDGER_BUSY_MS);
    /* FULL: a transfer that was answered survives a power cut too (NORMAL, WAL's usual setting,
     * may lose the last commits then). Costs one fsync of the WAL per transfer; reads pay none. */
    rc = sqlite3_exec(c->db, "PRAGMA synchronous = FULL", NULL, NULL, NULL);
    for (int i = 0; rc == SQLITE_OK && i < LEDGER_Q_COUNT; i++)
        rc =
            sqlite3_prepare_v3(c->db, ledger_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &c->q[i], NULL);
    if (rc != SQLITE_OK)
        goto fail;
    if (pthread_setspecific(db->key, c) != 0) {
        rc = SQLITE_NOMEM;
        goto fail;
    }
    pthread_mutex_lock(&db->list_lock);
    c->next = db->conns;
    if (db->conns != NULL)
        db->conns->prev = c;
    db->conns = c;
    pthread_mutex_unlock(&db->list_lock);
    return c;

fail:
    snprintf(err, cap, "%s: %s", db->path, c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
    ledger_conn_close(c);
    return NULL;
}

/* Why writers take a mutex although SQLite locks the file itself: SQLite's busy handler polls,
 * sleeping 1, 2, 5 … up to 100 ms between tries, so eight workers contending for the write lock
 * would mostly sleep. The mutex hands the lock straight to the next writer of this process; the
 * busy timeout is left for other processes. Readers take nothing: WAL gives each a snapshot. */
void ledger_db_write_lock(ledger_db_t *db)
{
    pthread_mutex_lock(&db->write_lock);
}

void ledger_db_write_unlock(ledger_db_t *db)
{
    pthread_mutex_unlock(&db->write_lock);
}

/* jrpcd dlcloses the module after the server is freed, when every worker thread has exited and
 * so has closed its connection through the key destructor; what is left (none in jrpcd) is
 * closed here, so leak checkers see a clean exit. */
__attribute__((destructor)) static void ledger_db_unload(void)
{
    pthread_mutex_lock(&dbs_lock);
    while (dbs != NULL) {
        ledger_db_t *db = dbs;
        dbs = db->next;
        pthread_key_delete(db->key);
        while (db->conns != NULL) {
            ledger_conn_t *c = db->conns;
            db->conns = c->next;
            ledger_conn_close(c);
        }
        pthread_mutex_destroy(&db->write_lock);
        pthread_mutex_destroy(&db->list_lock);
        free(db->path);
        free(db);
    }
    pthread_mutex_unlock(&dbs_lock);
}
