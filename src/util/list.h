/* SPDX-License-Identifier: MIT */
/* list.h — intrusive circular doubly linked list (the kernel's list_head, libuv's queue.h). */
#ifndef JRPC_UTIL_LIST_H
#define JRPC_UTIL_LIST_H

#include <stddef.h>

typedef struct jrpc__list {
    struct jrpc__list *next;
    struct jrpc__list *prev;
} jrpc__list_t;

#define JRPC__CONTAINER_OF(ptr, type, field) ((type *)((char *)(ptr)-offsetof(type, field)))

static inline void jrpc__list_init(jrpc__list_t *h)
{
    h->next = h->prev = h;
}
static inline int jrpc__list_empty(const jrpc__list_t *h)
{
    return h->next == h;
}
static inline void jrpc__list_insert_tail(jrpc__list_t *h, jrpc__list_t *n)
{
    n->next = h;
    n->prev = h->prev;
    h->prev->next = n;
    h->prev = n;
}
static inline void jrpc__list_remove(jrpc__list_t *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->next = n->prev = n;
}

#endif
