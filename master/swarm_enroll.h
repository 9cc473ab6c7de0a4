/*
 * swarm_enroll — `tandem swarm enroll`: issue a host's certificates, write
 * its bundle and record it in the registry.
 *
 * Bundle (default HOME/hosts/NAME/, directory 0700):
 *   ca.crt                     the fleet CA (0644)
 *   agent.crt, agent.key       CN=NAME (key 0600)
 *   updater.crt, updater.key   CN=updater@NAME, with --updater (key 0600)
 *   agent.conf                 tandem-agent --config (agent/options.c keys)
 *   updater.conf               tandem-updater --config (updater/config.c keys),
 *                              with --updater
 *   keyring.json               the master's current keyring (HOME/keyring/),
 *                              with --updater when the master has one; then
 *                              updater.conf also says release_keyring =
 *                              keyring.json and require_signed = true
 * Every path inside the config files is relative, and both programs resolve
 * relative paths against the config file's directory, so the bundle works
 * wherever it is unpacked. The updater's install_dir is "install" inside
 * the bundle (edit it for a system install).
 */
#ifndef TANDEM_MASTER_SWARM_ENROLL_H
#define TANDEM_MASTER_SWARM_ENROLL_H

#include <stddef.h>

#include "common/err.h"
#include "common/util.h"
#include "master/registry.h"
#include "pki/pki.h"

struct swarm_enroll_opts {
	const char *name;
	const char *address;         /* required for a new host */
	int agent_port;              /* 0: REG_DEFAULT_AGENT_PORT */
	int updater_port;            /* 0: REG_DEFAULT_UPDATER_PORT */
	const char *const *sans;     /* extra SANs */
	size_t n_sans;
	int updater;                 /* also issue the updater identity */
	const char *out;             /* bundle dir; NULL: HOME/hosts/NAME */
	const char *notes;           /* NULL: "" */
	int days;                    /* certificate validity; 0: PKI_DEFAULT_DAYS */
};

/* What enrollment did (for printing). */
struct swarm_enroll_result {
	char bundle[4096];
	struct reg_host host;
	int added_updater_only; /* 1: an enrolled host got its updater identity */
};

/*
 * Enroll O->name into the registry of HOME (CA must exist). A new host
 * needs O->address; an existing host is refused (REGISTRY_EXISTS) unless
 * O->updater is set and it has no updater fingerprint yet: then only the
 * updater identity is added (address and ports must match if given).
 * Returns REGISTRY_OK or a negative enum reg_status (REGISTRY_INVALID for refused
 * names and arguments, REGISTRY_ERR for I/O and PKI failures) with ERR:
 * ERR_USAGE for a refused name or argument, ERR_CONFLICT for a host already
 * enrolled, ERR_CONFIG without a CA or master certificate, the failing
 * call's kind otherwise (ERR_IO, ERR_NOSPACE, a registry or PKI error).
 */
int swarm_enroll(const char *home, const struct swarm_enroll_opts *o,
    struct swarm_enroll_result *res, struct err *err) WUR;

/*
 * The text of agent.conf / updater.conf for host H (pure; exposed for
 * tests). LISTEN_HOST is where the daemons listen: the address when it is
 * an IP literal, else all IPv4 addresses. MASTER_CN and MASTER_FP (may be
 * "") are the master's identity; SIGNED_ONLY adds release_keyring =
 * keyring.json and require_signed = true. Returns 0, or -1 if BUF is too
 * small.
 */
int swarm_agent_conf(const struct reg_host *h, const char *master_cn, char *buf, size_t len) WUR;
int swarm_updater_conf(const struct reg_host *h, const char *master_cn, const char *master_fp,
    int signed_only, char *buf, size_t len) WUR;

#endif
