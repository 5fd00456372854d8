/* SPDX-License-Identifier: MIT */
/* batch.h — the items of `jrpc batch` (input.c makes them, batch.c sends and answers them). */
#ifndef JRPC_CLI_BATCH_H
#define JRPC_CLI_BATCH_H

#include "cli.h"

enum { CLI_ITEM_LINE = 0, CLI_ITEM_OBJECT = 1 };
enum { CLI_QUEUED = 0, CLI_SENT, CLI_DONE };

typedef struct cli_resp cli_resp_t;

/* One call of the batch. On the wire its id is its index + 1, which is also the id it is given
 * when the input has none; an input id (own_id) is put back into the answer when printed. */
typedef struct cli_item {
    const char *src;  /* the line "METHOD [PARAMS]" or the request object, in the input */
    uint32_t srclen;  /* bytes at src */
    uint8_t kind;     /* CLI_ITEM_LINE or CLI_ITEM_OBJECT */
    uint8_t own_id;   /* an object that carries its own "id" */
    uint8_t state;    /* CLI_QUEUED, CLI_SENT, CLI_DONE */
    uint8_t tries;    /* retries spent */
    cli_resp_t *resp; /* holds the answer once CLI_DONE */
    uint32_t aoff;    /* the answer: resp bytes [aoff, aoff + alen) */
    uint32_t alen;
    double ready; /* queued for a retry: not before this time (cli_now) */
} cli_item_t;

typedef struct cli_items {
    cli_item_t *v;
    size_t n, cap;
} cli_items_t;

/* Reads a file ("-": stdin) into b; 0 or 2 (printed). */
int cli_read_all(const char *path, jrpc_buf_t *b);
/* Appends the items found in p[0..n) (which must outlive them); 0 or 2 naming the bad line. */
int cli_items_parse(const char *p, size_t n, cli_items_t *items);
/* Appends item seq's request object, with id seq + 1, to b; 0 or the buffer's error. */
int cli_item_request(const cli_item_t *it, size_t seq, jrpc_buf_t *b);

#endif
