#include "master/swarm_enroll.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fs.h"
#include "common/log.h"
#include "common/tls.h"
#include "master/keystore.h"

/* 4 for IPv4 literal, 6 for IPv6 literal, 0 for a name. */
static int
ip_family(const char *addr)
{
	unsigned char buf[16];

	if (inet_pton(AF_INET, addr, buf) == 1) {
		return 4;
	}
	if (inet_pton(AF_INET6, addr, buf) == 1) {
		return 6;
	}
	return 0;
}

/* "HOST:PORT" for a config ADDR value; NAME hosts listen on all IPv4 addresses. */
static int
listen_addr(const char *address, int port, const char *fallback, char *buf, size_t len)
{
	int fam = ip_family(address);
	int n;

	if (fam == 6) {
		n = snprintf(buf, len, "[%s]:%d", address, port);
	} else if (fam == 4) {
		n = snprintf(buf, len, "%s:%d", address, port);
	} else {
		n = snprintf(buf, len, "%s:%d", fallback, port);
	}
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

int
swarm_agent_conf(const struct reg_host *h, const char *master_cn, char *buf, size_t len)
{
	char listen[REG_ADDRESS_MAX + 16];
	int n;

	if (listen_addr(h->address, h->agent_port, "0.0.0.0", listen, sizeof(listen)) != 0) {
		return -1;
	}
	n = snprintf(buf, len,
	    "# tandem-agent configuration for host %s, written by `tandem swarm enroll`.\n"
	    "# Relative paths resolve against this file's directory.\n"
	    "listen = %s\n"
	    "ca = ca.crt\n"
	    "cert = agent.crt\n"
	    "key = agent.key\n"
	    "master_cn = %s\n",
	    h->name, listen, master_cn);
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

int
swarm_updater_conf(const struct reg_host *h, const char *master_cn, const char *master_fp,
    int signed_only, char *buf, size_t len)
{
	char listen[REG_ADDRESS_MAX + 16], probe[REG_ADDRESS_MAX + 16];
	int n;

	if (listen_addr(h->address, h->updater_port, "0.0.0.0", listen, sizeof(listen)) != 0 ||
	    listen_addr(h->address, h->agent_port, "127.0.0.1", probe, sizeof(probe)) != 0) {
		return -1;
	}
	n = snprintf(buf, len,
	    "# tandem-updater configuration for host %s, written by `tandem swarm enroll`.\n"
	    "# Relative paths resolve against this file's directory; install_dir holds\n"
	    "# current, releases/ and state/ (point it at e.g. /var/lib/tandem instead).\n"
	    "listen = %s\n"
	    "install_dir = install\n"
	    "ca = ca.crt\n"
	    "cert = updater.crt\n"
	    "key = updater.key\n"
	    "master_cn = %s\n"
	    "%s%s%s"
	    "agent_config = agent.conf\n"
	    "agent_probe = %s\n"
	    "agent_pin = %s\n"
	    "%s",
	    h->name, listen, master_cn,
	    master_fp[0] != '\0' ? "master_fingerprints = " : "", master_fp,
	    master_fp[0] != '\0' ? "\n" : "", probe, h->agent_fp,
	    signed_only ? "# Only releases signed by the keyring's release keys (the master's\n"
			  "# keyring when this bundle was written; newer versions come by\n"
			  "# `tandem swarm keyring push`).\n"
			  "release_keyring = keyring.json\n"
			  "require_signed = true\n" : "");
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

static int
join(char *buf, size_t len, const char *dir, const char *file)
{
	int n = snprintf(buf, len, "%s/%s", dir, file);
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* Issue the ROLE certificate of host O->name into BUNDLE/BASE.{crt,key}; FP its fingerprint. */
static int
issue(const char *home, const struct swarm_enroll_opts *o, const char *address,
    enum tls_role role, const char *bundle, const char *base, char *fp, struct err *err)
{
	const char *sans[PKI_MAX_SANS + 1];
	char crt[PATH_MAX], key[PATH_MAX], file[64];
	struct pki_issue_opts io;
	struct err pe = ERR_INIT;
	size_t n = 0, i;

	pki_issue_opts_init(&io);
	if (address != NULL && address[0] != '\0') {
		sans[n++] = address;
	}
	for (i = 0; i < o->n_sans && n < PKI_MAX_SANS; i++) {
		if (address == NULL || strcasecmp(o->sans[i], address) != 0) {
			sans[n++] = o->sans[i];
		}
	}
	snprintf(file, sizeof(file), "%s.crt", base);
	if (join(crt, sizeof(crt), bundle, file) != 0) {
		err_set(err, ERR_USAGE, "bundle path too long");
		return -1;
	}
	snprintf(file, sizeof(file), "%s.key", base);
	if (join(key, sizeof(key), bundle, file) != 0) {
		err_set(err, ERR_USAGE, "bundle path too long");
		return -1;
	}
	io.name = o->name;
	io.role = role;
	io.days = o->days;
	io.sans = sans;
	io.n_sans = n;
	io.key_out = key;
	io.cert_out = crt;
	if (pki_issue(home, &io, &pe) != 0 || pki_fingerprint_file(crt, fp, &pe) != 0) {
		err_copy(err, &pe);
		return -1;
	}
	return 0;
}

/*
 * Refuse a bundle directory that already holds one of FILES (NULL-ended):
 * enrollment never overwrites keys or certificates, and has no --force.
 */
/* What a bundle holds of each identity. */
static const char *const agent_files[] = { "agent.key", "agent.crt", "agent.conf", NULL };
static const char *const updater_files[] = { "updater.key", "updater.crt", "updater.conf",
	NULL };

static int
bundle_unused(const char *bundle, const char *const *files, struct err *err)
{
	char p[PATH_MAX];

	for (; *files != NULL; files++) {
		if (join(p, sizeof(p), bundle, *files) != 0) {
			return err_set(err, ERR_USAGE, "bundle path too long");
		}
		if (access(p, F_OK) == 0) {
			return err_set(err, ERR_CONFLICT, "the bundle directory %s already holds %s "
							  "(another host's bundle?): nothing was changed; give "
							  "--out a new or empty directory", bundle, *files);
		}
	}
	return 0;
}

static int
write_text(const char *bundle, const char *file, const char *text, mode_t mode, struct err *err)
{
	char p[PATH_MAX];

	if (join(p, sizeof(p), bundle, file) != 0) {
		err_set(err, ERR_USAGE, "bundle path too long");
		return -1;
	}
	if (fs_write_atomic(p, text, strlen(text), mode) != 0) {
		err_sys(err, "write %s", p);
		return -1;
	}
	return 0;
}

/*
 * The master's current keyring into BUNDLE/keyring.json. Returns 1 when
 * written, 0 when the master has none, -1 with ERR.
 */
static int
write_keyring(const char *home, const char *bundle, struct err *err)
{
	struct sign_keyring kr;
	struct err e = ERR_INIT;
	char p[PATH_MAX], *doc = NULL;
	size_t len = 0;
	int have, rc = -1;

	sign_keyring_init(&kr);
	have = keystore_current(home, &kr, &e);
	if (have <= 0) {
		rc = have;
		goto out;
	}
	if (keystore_read(home, kr.version, &doc, &len, &e) != 0) {
		goto out;
	}
	if (join(p, sizeof(p), bundle, "keyring.json") != 0 ||
	    fs_write_atomic(p, doc, len, 0644) != 0) {
		err_sys(&e, "write %s/keyring.json", bundle);
		goto out;
	}
	rc = 1;
out:
	if (rc < 0) {
		err_copy(err, &e);
	}
	free(doc);
	sign_keyring_free(&kr);
	return rc;
}

/*
 * ca.crt, updater.conf (needs the master's identity) and, when the master
 * has a keyring, keyring.json into BUNDLE.
 */
static int
write_updater_conf(const char *home, const struct reg_host *h, const char *master_cn,
    const char *bundle, struct err *err)
{
	char mcrt[PATH_MAX], mkey[PATH_MAX], mfp[TLS_FP_HEX_LEN + 1] = "";
	char text[4096];
	int signed_only;

	/* The certificate in force: a new host pins the master that talks to it. */
	if (pki_master_paths(home, mcrt, mkey, NULL) != 0 ||
	    pki_fingerprint_file(mcrt, mfp, NULL) != 0) {
		err_set(err, ERR_CONFIG, "cannot read the master certificate %s/%s", home,
		    PKI_MASTER_CRT);
		return -1;
	}
	signed_only = write_keyring(home, bundle, err);
	if (signed_only < 0) {
		return -1;
	}
	if (swarm_updater_conf(h, master_cn, mfp, signed_only, text, sizeof(text)) != 0) {
		err_set(err, ERR_USAGE, "updater.conf: address too long");
		return -1;
	}
	return write_text(bundle, "updater.conf", text, 0644, err);
}

static int
check_port(int *port, int def, const char *what, struct err *err)
{
	if (*port == 0) {
		*port = def;
	}
	if (*port < 1 || *port > 65535) {
		err_set(err, ERR_USAGE, "%s %d: expected 1..65535", what, *port);
		return -1;
	}
	return 0;
}

int
swarm_enroll(const char *home, const struct swarm_enroll_opts *o,
    struct swarm_enroll_result *res, struct err *err)
{
	char master_cn[PKI_CN_MAX + 1], ca_crt[PATH_MAX], ca_copy[PATH_MAX];
	char fp[TLS_FP_HEX_LEN + 1], text[4096], abs_bundle[PATH_MAX];
	struct registry *reg = NULL;
	struct reg_host *h = &res->host;
	struct err pe = ERR_INIT;
	int rc = REGISTRY_ERR, r, agent_port = o->agent_port, updater_port = o->updater_port;
	size_t i;

	memset(res, 0, sizeof(*res));
	if (pki_master_cn(home, master_cn, sizeof(master_cn), &pe) != 0) {
		err_copy(err, &pe);
		return REGISTRY_ERR;
	}
	if (pki_check_host_name(o->name, master_cn, &pe) != 0) {
		err_copy(err, &pe);
		return REGISTRY_INVALID;
	}
	if (!registry_name_valid(o->name)) {
		err_set(err, ERR_USAGE, "host name '%s' is not valid in the registry", o->name);
		return REGISTRY_INVALID;
	}
	if (check_port(&agent_port, REG_DEFAULT_AGENT_PORT, "--agent-port", err) != 0 ||
	    check_port(&updater_port, REG_DEFAULT_UPDATER_PORT, "--updater-port", err) != 0) {
		return REGISTRY_INVALID;
	}
	if (agent_port == updater_port) {
		err_set(err, ERR_USAGE, "the agent and updater ports must differ (both %d)", agent_port);
		return REGISTRY_INVALID;
	}
	for (i = 0; i < o->n_sans; i++) {
		if (strchr(o->sans[i], '@') != NULL || o->sans[i][0] == '\0') {
			err_set(err, ERR_USAGE, "--san '%s' is not a DNS name or IP address", o->sans[i]);
			return REGISTRY_INVALID;
		}
	}
	if (o->address != NULL &&
	    (o->address[0] == '\0' || strlen(o->address) > REG_ADDRESS_MAX ||
		strpbrk(o->address, "@/ []") != NULL)) {
		err_set(err, ERR_USAGE, "--address '%s' is not a host name or IP address", o->address);
		return REGISTRY_INVALID;
	}
	if (o->out != NULL) {
		if (snprintf(res->bundle, sizeof(res->bundle), "%s", o->out) >=
		    (int)sizeof(res->bundle)) {
			err_set(err, ERR_USAGE, "--out path too long");
			return REGISTRY_INVALID;
		}
	} else if (snprintf(res->bundle, sizeof(res->bundle), "%s/hosts/%s", home, o->name) >=
	    (int)sizeof(res->bundle)) {
		err_set(err, ERR_USAGE, "home path too long");
		return REGISTRY_INVALID;
	}
	if (pki_path(home, PKI_CA_CRT, ca_crt, sizeof(ca_crt)) != 0 ||
	    join(ca_copy, sizeof(ca_copy), res->bundle, "ca.crt") != 0) {
		err_set(err, ERR_USAGE, "path too long");
		return REGISTRY_INVALID;
	}
	if (access(ca_crt, R_OK) != 0) {
		err_set(err, ERR_CONFIG, "no CA in %s: run 'tandem pki init' first", home);
		return REGISTRY_ERR;
	}
	r = registry_open(home, &reg, &pe);
	if (r != REGISTRY_OK) {
		err_copy(err, &pe);
		return r;
	}
	r = registry_get_host(reg, o->name, h, &pe);
	if (r == REGISTRY_OK) {
		/* Only `enroll --updater NAME` on a host without an updater identity. */
		if (!o->updater || h->updater_fp[0] != '\0') {
			err_set(err, ERR_CONFLICT, "host '%s' is already enrolled%s", h->name,
			    h->updater_fp[0] != '\0' ? " (with an updater identity)" : "");
			rc = REGISTRY_EXISTS;
			goto out;
		}
		if ((o->address != NULL && strcasecmp(o->address, h->address) != 0) ||
		    (o->agent_port != 0 && o->agent_port != h->agent_port) ||
		    (o->updater_port != 0 && o->updater_port != h->updater_port)) {
			err_set(err, ERR_USAGE, "host '%s' is enrolled with address %s, ports %d/%d: "
					      "adding the updater identity cannot change them",
			    h->name, h->address, h->agent_port, h->updater_port);
			rc = REGISTRY_INVALID;
			goto out;
		}
		if (h->decommissioned_at != 0) {
			err_set(err, ERR_USAGE, "host '%s' is decommissioned", h->name);
			rc = REGISTRY_INVALID;
			goto out;
		}
		if (bundle_unused(res->bundle, updater_files, err) != 0) {
			rc = REGISTRY_INVALID;
			goto out;
		}
		if (fs_mkdir_p(res->bundle, 0700) != 0) {
			err_sys(err, "create %s", res->bundle);
			goto out;
		}
		if (issue(home, o, h->address, TLS_ROLE_UPDATER, res->bundle, "updater", fp, err) != 0 ||
		    fs_copy_file(ca_crt, ca_copy, 0644) != 0 ||
		    write_updater_conf(home, h, master_cn, res->bundle, err) != 0) {
			goto out;
		}
		rc = registry_set_updater_fp(reg, h->name, fp, &pe);
		if (rc == REGISTRY_OK) {
			snprintf(h->updater_fp, sizeof(h->updater_fp), "%s", fp);
			res->added_updater_only = 1;
		}
		goto out;
	}
	if (r != REGISTRY_NOTFOUND) {
		rc = r;
		goto out;
	}
	err_clear(&pe); /* not enrolled yet: the usual case */
	if (o->address == NULL) {
		err_set(err, ERR_USAGE, "--address is required to enroll a new host");
		rc = REGISTRY_INVALID;
		goto out;
	}
	memset(h, 0, sizeof(*h));
	snprintf(h->name, sizeof(h->name), "%s", o->name);
	snprintf(h->address, sizeof(h->address), "%s", o->address);
	snprintf(h->notes, sizeof(h->notes), "%s", o->notes != NULL ? o->notes : "");
	h->agent_port = agent_port;
	h->updater_port = updater_port;
	if (bundle_unused(res->bundle, agent_files, err) != 0 ||
	    (o->updater && bundle_unused(res->bundle, updater_files, err) != 0)) {
		rc = REGISTRY_INVALID;
		goto out;
	}
	if (fs_mkdir_p(res->bundle, 0700) != 0) {
		err_sys(err, "create %s", res->bundle);
		goto out;
	}
	if (issue(home, o, o->address, TLS_ROLE_AGENT, res->bundle, "agent", h->agent_fp, err) != 0) {
		goto out;
	}
	if (o->updater && issue(home, o, o->address, TLS_ROLE_UPDATER, res->bundle, "updater",
			      h->updater_fp, err) != 0) {
		goto out;
	}
	if (fs_copy_file(ca_crt, ca_copy, 0644) != 0) {
		err_sys(err, "copy the CA certificate to %s", ca_copy);
		goto out;
	}
	if (swarm_agent_conf(h, master_cn, text, sizeof(text)) != 0) {
		err_set(err, ERR_USAGE, "agent.conf: address too long");
		goto out;
	}
	if (write_text(res->bundle, "agent.conf", text, 0644, err) != 0 ||
	    (o->updater && write_updater_conf(home, h, master_cn, res->bundle, err) != 0)) {
		goto out;
	}
	rc = registry_add_host(reg, h, &pe);
	if (rc == REGISTRY_OK && o->n_sans > 0) {
		/* Renewals certify the same extra names. */
		struct err se = ERR_INIT;
		if (registry_set_sans(reg, o->name, o->sans, o->n_sans, &se) != REGISTRY_OK) {
			log_warnx("%s: recording the SANs: %s (renewals take them from the bundle's "
				  "certificate)", o->name, err_msg(&se));
		}
	}
	if (rc == REGISTRY_OK) {
		/* What the registry holds (enrollment time, normalised fingerprints). */
		rc = registry_get_host(reg, o->name, h, &pe);
	}
out:
	if (rc != REGISTRY_OK && err_failed(&pe)) {
		err_copy(err, &pe); /* a registry call failed */
	}
	if (rc == REGISTRY_OK && realpath(res->bundle, abs_bundle) != NULL) {
		snprintf(res->bundle, sizeof(res->bundle), "%s", abs_bundle);
	}
	registry_close(reg);
	return rc;
}
