#include "agent/selftest.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int
selftest_own_identity(const struct agent_config *cfg, struct tls_identity *id, char *err,
    size_t errlen)
{
	time_t now = time(NULL);

	if (tls_identity_from_file(cfg->cert, cfg->master_cn, id, err, errlen) != 0) {
		return -1;
	}
	if (now < id->not_before) {
		snprintf(err, errlen, "certificate %s (CN=%s) is not valid yet", cfg->cert, id->cn);
		return -1;
	}
	if (now > id->not_after) {
		snprintf(err, errlen, "certificate %s (CN=%s) has expired", cfg->cert, id->cn);
		return -1;
	}
	if (id->role != TLS_ROLE_AGENT) {
		snprintf(err, errlen, "certificate %s (CN=%s) has the role %s, not agent", cfg->cert,
		    id->cn, tls_role_name(id->role));
		return -1;
	}
	return 0;
}

int
selftest_check_config(const struct agent_config *cfg, char *summary, size_t sumlen, char *err,
    size_t errlen)
{
	struct tls_opts to;
	struct tls_ctx *ctx = NULL;
	struct tls_identity id;
	char until[32];

	tls_opts_init(&to);
	to.ca_file = cfg->ca;
	to.cert_file = cfg->cert;
	to.key_file = cfg->key;
	to.master_cn = cfg->master_cn;
	if (tls_server_new(&to, &ctx, err, errlen) != 0) {
		return -1;
	}
	tls_ctx_free(ctx);
	if (selftest_own_identity(cfg, &id, err, errlen) != 0) {
		return -1;
	}
	iso8601_utc(id.not_after, until, sizeof(until));
	snprintf(summary, sumlen, "certificate CN=%s valid until %s, key matches", id.cn, until);
	return 0;
}

int
selftest_bind(const char *listen_addr, char *err, size_t errlen)
{
	char host[256];
	char port[16];
	struct addrinfo hints;
	struct addrinfo *res = NULL;
	int fd = -1;
	int one = 1;
	int rc = -1;
	int gai;

	if (split_host_port(listen_addr, host, sizeof(host), port, sizeof(port)) != 0) {
		snprintf(err, errlen, "listen address \"%s\" is not ADDR:PORT or [V6]:PORT",
		    listen_addr);
		return -1;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
	gai = getaddrinfo(host[0] != '\0' ? host : NULL, port, &hints, &res);
	if (gai != 0) {
		snprintf(err, errlen, "listen address \"%s\": %s", listen_addr, gai_strerror(gai));
		return -1;
	}
	fd = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		goto out;
	}
	/* The same options as the server, so the answer is the server's. */
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0) {
		snprintf(err, errlen, "setsockopt: %s", strerror(errno));
		goto out;
	}
	if (res->ai_family == AF_INET6) {
		int v6only = IN6_IS_ADDR_UNSPECIFIED(
				 &((struct sockaddr_in6 *)(void *)res->ai_addr)->sin6_addr)
				 ? 0
				 : 1;
		if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only)) != 0) {
			snprintf(err, errlen, "setsockopt: %s", strerror(errno));
			goto out;
		}
	}
	if (bind(fd, res->ai_addr, res->ai_addrlen) != 0) {
		snprintf(err, errlen, "cannot bind %s: %s", listen_addr, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	if (fd >= 0) {
		close(fd);
	}
	freeaddrinfo(res);
	return rc;
}

static int
check_log_file(const char *path, char *err, size_t errlen)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);

	if (fd < 0) {
		snprintf(err, errlen, "log file %s: %s", path, strerror(errno));
		return -1;
	}
	close(fd);
	return 0;
}

int
selftest_run(const struct agent_config *cfg, char *line, size_t linelen)
{
	char summary[512];
	char err[512];

	if (selftest_check_config(cfg, summary, sizeof(summary), err, sizeof(err)) != 0 ||
	    (cfg->log_file != NULL && check_log_file(cfg->log_file, err, sizeof(err)) != 0) ||
	    selftest_bind(cfg->listen, err, sizeof(err)) != 0) {
		snprintf(line, linelen, "self-test: FAILED: %s", err);
		return -1;
	}
	snprintf(line, linelen, "self-test: ok (%s, %s can be bound)", summary, cfg->listen);
	return 0;
}
