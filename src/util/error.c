/* error.c — jrpc_strerror and jrpc_err_name from the one JRPC_ERRNO_MAP (libuv's UV_ERRNO_MAP). */
#include "jrpc.h"

#include <string.h>

JRPC_EXTERN const char *jrpc_version_string(void)
{
    return JRPC_VERSION_STRING;
}

JRPC_EXTERN const char *jrpc_strerror(int err)
{
    switch (err) {
#define XX(name, val, msg)                                                                         \
    case JRPC_##name:                                                                              \
        return msg;
        JRPC_ERRNO_MAP(XX)
#undef XX
    default:
        break;
    }
    if (err < 0 && err > -4000)
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
