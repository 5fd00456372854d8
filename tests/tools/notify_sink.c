/* SPDX-License-Identifier: MIT */
/* notify_sink.c — stands in for systemd in the integration tests: binds a unix datagram socket
 * at the path given (what NOTIFY_SOCKET names), prints "bound", then prints each datagram it
 * receives on a line of its own, its newlines shown as spaces ("RELOADING=1 MONOTONIC_USEC=…").
 * Node has no unix datagram sockets, hence this small program. Runs until killed. */
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (argc != 2 || strlen(argv[1]) >= sizeof(sa.sun_path)) {
        fprintf(stderr, "usage: notify_sink PATH\n");
        return 2;
    }
    strcpy(sa.sun_path, argv[1]);
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        perror("notify_sink");
        return 1;
    }
    printf("bound\n");
    fflush(stdout);
    char buf[4096];
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
        if (n < 0)
            return 1;
        for (ssize_t i = 0; i < n; i++)
            if (buf[i] == '\n')
                buf[i] = ' ';
        buf[n] = '\0';
        printf("%s\n", buf);
        fflush(stdout);
    }
}
