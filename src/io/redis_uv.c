/* SPDX-License-Identifier: MIT */
/* redis_uv.c — runs a hiredis async context on a libuv loop: one uv_poll on its socket, started
 * and stopped as hiredis asks for reads and writes. */
#include "redis.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <stdlib.h>
#include <uv.h>

/* hiredis's own libuv adapter (hiredis/adapters/libuv.h, 0.14) drops a poll callback that has an
 * error status, and libuv reports a socket error (a refused connect, a reset) that way and stops
 * the poll: hiredis then never hears of it, and a refused connect looked like a stalled one until
 * the stall bound. This one hands an error to hiredis as readiness, so hiredis reads the socket's
 * error at once and fails the connection. */

typedef struct uvev {
    uv_poll_t poll;        /* .data = this */
    redisAsyncContext *ac; /* NULL once hiredis let go */
    int events;            /* UV_READABLE | UV_WRITABLE wanted */
} uvev_t;

static void uvev_cb(uv_poll_t *h, int status, int events)
{
    uvev_t *e = h->data;
    if (status < 0)
        events = e->events != 0 ? e->events : UV_READABLE; /* let hiredis meet the error */
    if (e->ac != NULL && (events & UV_READABLE))
        redisAsyncHandleRead(e->ac);
    if (e->ac != NULL && (events & UV_WRITABLE))
        redisAsyncHandleWrite(e->ac);
}

static void uvev_set(uvev_t *e, int events)
{
    e->events = events;
    if (events != 0)
        uv_poll_start(&e->poll, events, uvev_cb);
    else
        uv_poll_stop(&e->poll);
}
static void uvev_add_read(void *p)
{
    uvev_t *e = p;
    uvev_set(e, e->events | UV_READABLE);
}
static void uvev_del_read(void *p)
{
    uvev_t *e = p;
    uvev_set(e, e->events & ~UV_READABLE);
}
static void uvev_add_write(void *p)
{
    uvev_t *e = p;
    uvev_set(e, e->events | UV_WRITABLE);
}
static void uvev_del_write(void *p)
{
    uvev_t *e = p;
    uvev_set(e, e->events & ~UV_WRITABLE);
}
static void uvev_closed(uv_handle_t *h)
{
    free(h->data);
}
static void uvev_cleanup(void *p)
{
    uvev_t *e = p;
    e->ac = NULL;
    uv_close((uv_handle_t *)&e->poll, uvev_closed);
}

int jrpc__redis_uv_attach(redisAsyncContext *ac, uv_loop_t *loop)
{
    uvev_t *e = calloc(1, sizeof *e);
    if (e == NULL)
        return -1;
    if (uv_poll_init(loop, &e->poll, ac->c.fd) != 0) {
        free(e);
        return -1;
    }
    e->poll.data = e;
    e->ac = ac;
    ac->ev.data = e;
    ac->ev.addRead = uvev_add_read;
    ac->ev.delRead = uvev_del_read;
    ac->ev.addWrite = uvev_add_write;
    ac->ev.delWrite = uvev_del_write;
    ac->ev.cleanup = uvev_cleanup;
    return 0;
}
