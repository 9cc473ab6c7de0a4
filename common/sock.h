/*
 * sock — the one listening socket of tandem's servers: the HTTP server
 * (common/httpd), the launcher (which binds once and hands the socket to
 * every updater it starts) and the agent's self-test (which checks that the
 * server could bind) all go through sock_listen(), so they agree on what an
 * address means and on the socket options.
 *
 * An address is ADDR:PORT or [V6]:PORT with a numeric host (":PORT" or an
 * empty host means every address); port 0 lets the kernel pick one.
 * "[::]" serves IPv4 too, a specific IPv6 address only itself.
 */
#ifndef TANDEM_SOCK_H
#define TANDEM_SOCK_H

#include "common/err.h"
#include "common/util.h"

/* Pending connections the kernel queues before accept(). */
#define SOCK_BACKLOG 128

/*
 * Bind SPEC with SO_REUSEADDR and close-on-exec and listen on it. Returns the
 * socket, *PORT (may be NULL) gets the bound port. On failure returns -1:
 * ERR_CONFIG for an address that is not ADDR:PORT, else the system error
 * ("cannot bind SPEC: Address already in use", ERR_IO).
 */
int sock_listen(const char *spec, int *port, struct err *e) WUR;

/* The local port of the bound socket FD into *PORT. Returns 0 or -1 (E). */
int sock_port(int fd, int *port, struct err *e) WUR;

#endif
