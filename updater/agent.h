/*
 * agent — the agent process as the updater runs it: what to start (the
 * active release's entrypoint through `current`, with --config), the
 * supervisor that keeps it up (updater/supervise), its health probe
 * (updater/probe), its output (the agent log), and adoption across updater
 * restarts (INSTALL_DIR/state/agent.json: pid, start time, boot id).
 *
 * The install engine (updater/install) drives it through the small
 * struct install_agent interface that agent_install_ops() fills; the daemon
 * (updater/api) asks it for /health's "agent" object. Thread-safe: the
 * install runs on an HTTP thread while /health is answered on others.
 */
#ifndef TANDEM_UPDATER_AGENT_H
#define TANDEM_UPDATER_AGENT_H

#include <stddef.h>
#include <stdint.h>

#include "cJSON.h"
#include "common/err.h"
#include "common/tls.h"
#include "common/util.h"
#include "updater/config.h"
#include "updater/store.h"

/* Bytes of an agent's output kept for an error answer (the tail). */
#define AGENT_OUTPUT_MAX (8 * 1024)

struct agent;
struct install_agent;

/*
 * Set up the agent of the tree at ROOT (the updater's install dir) from CFG
 * (borrowed for the agent's lifetime): the supervisor (nothing runs yet),
 * the probe's address and client context CLI_TLS (borrowed). 0 or -1 with E.
 */
int agent_new(const struct updater_config *cfg, const char *root, struct tls_ctx *cli_tls,
    struct agent **out, struct err *e) WUR;

/*
 * End supervision and free AG (NULL is fine). With STOP the agent is stopped
 * first; otherwise it is left running for the next updater to adopt.
 */
void agent_free(struct agent *ag, int stop);

/*
 * At startup, when a release is active: adopt the agent an earlier updater
 * left running (state/agent.json: pid, start time, boot id, and its
 * executable is the active entrypoint), else stop that process and start
 * the agent from `current`. Without an active release (HAVE_ACTIVE 0) a
 * process left behind can only be a stray: it is stopped. Failures are
 * logged, not fatal (the supervisor keeps retrying; /health shows them).
 */
void agent_resume(struct agent *ag, int have_active);

/* The engine's view of the agent (stop, start, probe, output). */
void agent_install_ops(struct agent *ag, struct install_agent *ops);

/*
 * Certificate renewal (updater/renew): the client context the probe uses
 * from now on (a reference is taken), the probe's pins (tls_pin_match()
 * syntax: during a rollover the old and the new certificate), and the
 * agent's renewed identity directory and CRL, passed to every start as
 * TANDEM_AGENT_TLS_DIR / TANDEM_AGENT_CRL.
 */
void agent_set_tls(struct agent *ag, struct tls_ctx *cli_tls);
void agent_set_pin(struct agent *ag, const char *pins);
void agent_set_tls_env(struct agent *ag, const char *tls_dir, const char *crl);
/* SIGHUP to the running agent (it reloads identity and CRL): 1 sent, 0 none runs, -1. */
int agent_reload(struct agent *ag);

/* 1 while the agent is crash-looping (/health "degraded"). */
int agent_crash_looping(struct agent *ag);

/*
 * Add /health's "agent" object to OBJ: the supervisor's status and
 * "last_probe" (time and result of the last probe, or null). 0 or -1.
 */
int agent_health_json(struct agent *ag, cJSON *obj) WUR;

#endif
