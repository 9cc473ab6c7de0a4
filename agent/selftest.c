#include "agent/selftest.h"

#include <fcntl.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "common/sock.h"

int
selftest_own_identity(const struct agent_config *cfg, struct tls_identity *id, struct err *e)
{
	time_t now = time(NULL);

	if (tls_identity_from_file(cfg->cert, cfg->master_cn, id, e) != 0) {
		return -1;
	}
	if (now < id->not_before) {
		return err_set(e, ERR_CONFIG, "certificate %s (CN=%s) is not valid yet", cfg->cert,
		    id->cn);
	}
	if (now > id->not_after) {
		return err_set(e, ERR_CONFIG, "certificate %s (CN=%s) has expired", cfg->cert, id->cn);
	}
	if (id->role != TLS_ROLE_AGENT) {
		return err_set(e, ERR_CONFIG, "certificate %s (CN=%s) has the role %s, not agent",
		    cfg->cert, id->cn, tls_role_name(id->role));
	}
	return 0;
}

int
selftest_check_config(const struct agent_config *cfg, char *summary, size_t sumlen,
    struct err *e)
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
	if (tls_server_new(&to, &ctx, e) != 0) {
		return err_rekind(e, ERR_CONFIG);
	}
	tls_ctx_free(ctx);
	if (selftest_own_identity(cfg, &id, e) != 0) {
		return -1;
	}
	iso8601_utc(id.not_after, until, sizeof(until));
	snprintf(summary, sumlen, "certificate CN=%s valid until %s, key matches", id.cn, until);
	return 0;
}

int
selftest_bind(const char *listen_addr, struct err *e)
{
	int fd = sock_listen(listen_addr, NULL, e);

	if (fd < 0) {
		return -1;
	}
	close(fd);
	return 0;
}

static int
check_log_file(const char *path, struct err *e)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);

	if (fd < 0) {
		return err_sys(e, "log file %s", path);
	}
	close(fd);
	return 0;
}

int
selftest_run(const struct agent_config *cfg, char *line, size_t linelen)
{
	char summary[512];
	struct err e = ERR_INIT;

	if (selftest_check_config(cfg, summary, sizeof(summary), &e) != 0 ||
	    (cfg->log_file != NULL && check_log_file(cfg->log_file, &e) != 0) ||
	    selftest_bind(cfg->listen, &e) != 0) {
		snprintf(line, linelen, "self-test: FAILED: %s", err_msg(&e));
		return -1;
	}
	snprintf(line, linelen, "self-test: ok (%s, %s can be bound)", summary, cfg->listen);
	return 0;
}
