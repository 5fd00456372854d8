/* SPDX-License-Identifier: MIT */
/* db.h — the ledger's SQLite database: created and filled on first start, then one connection per
 * worker thread with its statements prepared once. */
#ifndef LEDGER_DB_H
#define LEDGER_DB_H

#include <sqlite3.h>
#include <stddef.h>

/* The statements every connection prepares; their SQL is in db.c. */
typedef enum {
    LEDGER_Q_BEGIN, /* BEGIN IMMEDIATE */
    LEDGER_Q_COMMIT,
    LEDGER_Q_ROLLBACK,
    LEDGER_Q_BALANCE, /* ?1 address → amount */
    LEDGER_Q_AMOUNTS, /* every amount */
    LEDGER_Q_SET,     /* ?1 address, ?2 amount: insert or update */
    LEDGER_Q_NFTS,    /* ?1 account → its withdrawal requests by id */
    LEDGER_Q_REBASE,  /* the last TokenRebased event */
    LEDGER_Q_COUNT
} ledger_q_t;

typedef struct ledger_db ledger_db_t;

/* One worker thread's connection. */
typedef struct ledger_conn {
    sqlite3 *db;
    sqlite3_stmt *q[LEDGER_Q_COUNT]; /* prepared once, reset after each use */
    ledger_db_t *owner;              /* the database it belongs to */
    struct ledger_conn *prev, *next; /* in owner's list of open connections */
} ledger_conn_t;

/* The SQL embedded from schema.sql and fixture.sql (generated ledger_sql.c). */
extern const unsigned char ledger_schema_sql[];
extern const unsigned char ledger_fixture_sql[];

/* The schema this code reads (PRAGMA user_version); a database with another is refused. */
#define LEDGER_SCHEMA_VERSION 1

/* Opens the database at `path` (NULL or "" = LEDGER_DEFAULT_PATH, relative to the working
 * directory at start), creating its directory and, when the file is new, the schema and fixture
 * in one transaction. With `check` (jrpcd --check) nothing on disk changes: it only says whether
 * a start would succeed (the directory can take a new file, or the file exists with the right
 * schema), and the handle it returns is never to be used for a connection. Returns the handle
 * (it lives until the module is unloaded) or NULL with a message in err. Called from
 * jrpc_module_init only. */
#define LEDGER_DEFAULT_PATH "run/ledger.db"
ledger_db_t *ledger_db_open(const char *path, int check, char *err, size_t cap);
/* The absolute path of the database file (as given, on a checking server). */
const char *ledger_db_path(const ledger_db_t *db);

/* This thread's connection to db, opened and prepared on first use; NULL with a message in err
 * when that fails (the next call tries again). Worker threads only. */
ledger_conn_t *ledger_db_conn(ledger_db_t *db, char *err, size_t cap);

/* Writers take this lock around BEGIN IMMEDIATE … COMMIT (see db.c for why). */
void ledger_db_write_lock(ledger_db_t *db);
void ledger_db_write_unlock(ledger_db_t *db);

/* Runs a statement that returns no rows (BEGIN, COMMIT, ROLLBACK, SET) and resets it: SQLITE_DONE
 * or the error. */
int ledger_exec(sqlite3_stmt *st);

#endif
