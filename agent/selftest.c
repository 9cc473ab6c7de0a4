#include "agent/selftest.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/sock.h"

int
selftest_own_identity(const struct agent_config *cfg, struct tls_identity *id, char *err,
    size_t errlen)
{
	time_t now = time(NULL);
	struct err te = ERR_INIT;

	if (tls_identity_from_file(cfg->cert, cfg->master_cn, id, &te) != 0) {
		snprintf(err, errlen, "%s", err_msg(&te));
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
	struct err e = ERR_INIT;
	int fd = sock_listen(listen_addr, NULL, &e);

	if (fd < 0) {
		snprintf(err, errlen, "%s", err_msg(&e));
		return -1;
	}
	close(fd);
	return 0;
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
