/* SPDX-License-Identifier: MIT */
/* notify.c — systemd's readiness protocol (sd_notify(3)): when systemd started jrpcd with
 * Type=notify it names a datagram socket in NOTIFY_SOCKET, and jrpcd sends READY=1 once it
 * serves, RELOADING=1 and READY=1 around a reload, STOPPING=1 on SIGTERM. The protocol is one
 * datagram of "KEY=VALUE" lines, so a few lines here write it without linking libsystemd, and
 * jrpcd builds and runs the same where systemd is absent (containers, other init systems). */
#include "jrpcd.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* Set once by jrpcd_notify_init before any thread or signal handler, read-only afterwards. */
static struct sockaddr_un notify_addr;
static socklen_t notify_len; /* 0: not started by systemd (or an address we cannot use) */

void jrpcd_notify_init(void)
{
    const char *p = getenv("NOTIFY_SOCKET");
    /* A path, or '@' for a name in the abstract namespace; systemd also knows vsock addresses,
     * which a service on this host is never given. */
    if (p == NULL || (p[0] != '/' && p[0] != '@'))
        return;
    size_t n = strlen(p);
    if (n >= sizeof(notify_addr.sun_path))
        return;
    notify_addr.sun_family = AF_UNIX;
    memcpy(notify_addr.sun_path, p, n);
    if (p[0] == '@')
        notify_addr.sun_path[0] = '\0'; /* abstract: the name's length is the address's */
    else
        n++; /* a path: its NUL counts */
    notify_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
}

void jrpcd_notify(const char *msg)
{
    if (notify_len == 0)
        return;
    int saved = errno;
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd >= 0) {
        /* Nothing to do when it fails: systemd then times the start or stop out itself. */
        (void)sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (const struct sockaddr *)&notify_addr,
                     notify_len);
        close(fd);
    }
    errno = saved;
}
