/* SPDX-License-Identifier: MIT */
/* error.c — jrpc_strerror and jrpc_err_name from the one JRPC_ERRNO_MAP (libuv's UV_ERRNO_MAP).
 * System codes keep the system's text, so a JRPC_EINVAL reads the same as the -EINVAL a socket
 * call returned; only the project's own codes carry messages of their own. */
#include "jrpc.h"

#include <string.h>

/* Where the project's own codes begin (jrpc.h): values above it are -errno. */
#define OWN_CODES_START (-4000)

JRPC_EXTERN const char *jrpc_version_string(void)
{
    return JRPC_VERSION_STRING;
}

JRPC_EXTERN const char *jrpc_strerror(int err)
{
    const char *msg = NULL;
    switch (err) {
#define XX(name, val, text)                                                                        \
    case JRPC_##name:                                                                              \
        msg = text;                                                                                \
        break;
        JRPC_ERRNO_MAP(XX)
#undef XX
    default:
        break;
    }
    if (msg != NULL)
        return msg;
    if (err < 0 && err > OWN_CODES_START)
        return strerror(-err);
    return "unknown error";
}

JRPC_EXTERN const char *jrpc_err_name(int err)
{
    switch (err) {
#define XX(name, val, msg)                                                                         \
    case JRPC_##name:                                                                              \
        return #name;
        JRPC_ERRNO_MAP(XX)
#undef XX
    default:
        return "UNKNOWN";
    }
}
