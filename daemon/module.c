/* SPDX-License-Identifier: MIT */
/* module.c — loads jrpcd modules: shared objects that export jrpc_module_init and register their
 * methods through the public API (DESIGN.md §5). Handles stay open until the server is freed,
 * because the registry holds function pointers into them. */
#include "jrpcd.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

int jrpcd_module_load(jrpcd_module_t *m, jrpc_server_t *srv, char *err, size_t cap)
{
    /* RTLD_NOW: a missing symbol fails here, at start, not on the first request that needs it.
     * RTLD_LOCAL: two modules may use the same static names without clashing. */
    m->handle = dlopen(m->path, RTLD_NOW | RTLD_LOCAL);
    if (m->handle == NULL) {
        const char *why = dlerror();
        snprintf(err, cap, "module %s (%s): cannot load: %s", m->name, m->origin,
                 why ? why : "unknown dlopen error");
        return -1;
    }

    dlerror(); /* clear, so a NULL below is told apart from a symbol whose value is NULL */
    void *sym = dlsym(m->handle, JRPC_MODULE_INIT_SYMBOL);
    const char *why = dlerror();
    if (sym == NULL || why != NULL) {
        snprintf(err, cap, "module %s (%s): %s does not export %s(): %s", m->name, m->origin,
                 m->path, JRPC_MODULE_INIT_SYMBOL, why ? why : "symbol is NULL");
        return -1;
    }

    /* dlsym returns an object pointer; POSIX guarantees the round trip to a function pointer,
     * ISO C does not, hence the copy instead of a cast. */
    jrpc_module_init_fn init;
    memcpy(&init, &sym, sizeof(init));
    int rc = init(srv, m->args);
    if (rc != 0) {
        const char *name = jrpc_err_name(rc);
        /* jrpc_method_add's EEXIST is a name taken, which the system's "File exists" hides. */
        const char *what =
            rc == JRPC_EEXIST
                ? "one of its method names is taken, by an earlier module or the server"
                : jrpc_strerror(rc);
        snprintf(err, cap, "module %s (%s): %s(\"%s\") failed: %s (%s %d)", m->name, m->origin,
                 JRPC_MODULE_INIT_SYMBOL, m->args, what,
                 strcmp(name, "UNKNOWN") != 0 ? name : "error", rc);
        return -1;
    }
    return 0;
}

void jrpcd_module_close(jrpcd_module_t *m)
{
    if (m->handle != NULL) {
        dlclose(m->handle);
        m->handle = NULL;
    }
}
