/*
 * selftest — the checks behind `-n` and `--self-test`. The updater runs
 * `bin/tandem-agent --self-test` on a staged release before switching to it.
 */
#ifndef TANDEM_AGENT_SELFTEST_H
#define TANDEM_AGENT_SELFTEST_H

#include <stddef.h>

#include "agent/options.h"
#include "common/err.h"
#include "common/tls.h"
#include "common/util.h"

/*
 * The agent's own certificate: its identity, and the host it serves (the
 * CN, or for an agent certificate its host part). Checks the certificate is
 * within its validity window now and has the agent role. Returns 0, or -1
 * with E: ERR_CONFIG for a certificate that is not usable, ERR_IO/ERR_FORMAT
 * for a file that cannot be read.
 */
int selftest_own_identity(const struct agent_config *cfg, struct tls_identity *id,
    struct err *e) WUR;

/*
 * -n: the CA, certificate and key load and match (tls_server_new) and the
 * certificate is usable (selftest_own_identity). On success SUMMARY gets a
 * short description. Returns 0, or -1 with E.
 */
int selftest_check_config(const struct agent_config *cfg, char *summary, size_t sumlen,
    struct err *e) WUR;

/*
 * Whether LISTEN ("ADDR:PORT", "[V6]:PORT") can be bound now: the server's
 * own sock_listen() binds it and the socket is closed again, so a port held
 * by another listener fails. Returns 0, or -1 with E (see sock_listen()).
 */
int selftest_bind(const char *listen, struct err *e) WUR;

/*
 * --self-test: selftest_check_config(), the log file (when configured) can
 * be opened for appending, and selftest_bind(). LINE receives the single
 * output line without newline: "self-test: ok (...)" or
 * "self-test: FAILED: reason". Returns 0 or -1.
 */
int selftest_run(const struct agent_config *cfg, char *line, size_t linelen) WUR;

#endif
