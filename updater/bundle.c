#include "updater/bundle.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/config.h"
#include "common/fs.h"
#include "common/log.h"
#include "common/testhook.h"
#include "common/tls.h"
#include "pki/sign.h"
#include "updater/config.h"

/* Certificates and keys are a few KiB; anything near this is not one. */
#define BUNDLE_MAX_PEM (64 * 1024)
#define BUNDLE_COMMIT "COMMIT"

enum bundle_file {
	BF_CA,
	BF_AGENT_CRT,
	BF_AGENT_KEY,
	BF_UPDATER_CRT,
	BF_UPDATER_KEY,
	BF_UPDATER_CONF,
	BF_AGENT_CONF,
	BF_KEYRING, /* only in a bundle whose updater.conf names release_keyring */
	BF_COUNT
};

static const char *const bundle_names[BF_COUNT] = {
	"ca.crt", "agent.crt", "agent.key", "updater.crt", "updater.key", "updater.conf",
	"agent.conf", "keyring.json",
};

struct bundle {
	const char *src;
	char etc[PATH_MAX];
	char stage[PATH_MAX];
	uid_t uid;
	gid_t gid;
	char *in[BF_COUNT];  /* the bundle's files (keys wiped when freed) */
	size_t inlen[BF_COUNT];
	char *conf[2];       /* the edited updater.conf, agent.conf */
	size_t conflen[2];
	struct updater_config bcfg; /* the bundle's updater.conf */
	char agent_listen[300];
	char agent_master_cn[128];
	char *compatible;    /* the bundle's compatible setting, if it has one */
};

static int
bundle_is_key(enum bundle_file f)
{
	return f == BF_AGENT_KEY || f == BF_UPDATER_KEY;
}

static int
bundle_join(char *buf, size_t len, const char *dir, const char *name, struct err *e)
{
	int n = snprintf(buf, len, "%s/%s", dir, name);

	if (n < 0 || (size_t)n >= len) {
		return err_set(e, ERR_USAGE, "path too long: %s/%s", dir, name);
	}
	return 0;
}

static void
bundle_free(struct bundle *b)
{
	for (int i = 0; i < BF_COUNT; i++) {
		if (b->in[i] != NULL && bundle_is_key((enum bundle_file)i)) {
			explicit_bzero(b->in[i], b->inlen[i]);
		}
		free(b->in[i]);
		b->in[i] = NULL;
	}
	free(b->compatible);
	b->compatible = NULL;
	free(b->conf[0]);
	free(b->conf[1]);
	b->conf[0] = b->conf[1] = NULL;
	updater_config_free(&b->bcfg);
}

/* USER's uid and primary group; as non-root only oneself can own the keys. */
static int
bundle_owner(struct bundle *b, const char *user, struct err *e)
{
	struct passwd *pw;

	errno = 0;
	pw = getpwnam(user);
	if (pw == NULL) {
		return err_set(e, ERR_USAGE,
		    "user '%s' does not exist (the tandem-worker package creates 'tandem')", user);
	}
	if (geteuid() != 0 && pw->pw_uid != geteuid()) {
		return err_set(e, ERR_USAGE, "run it as root (the keys must belong to '%s')", user);
	}
	b->uid = pw->pw_uid;
	b->gid = pw->pw_gid;
	return 0;
}

/*
 * An earlier run interrupted: with its COMMIT marker, move what is still
 * staged into place (the set was complete and checked); without, drop it.
 * Returns 1 finished, -1 undone, 0 nothing found; -2 with E on failure.
 */
static int
bundle_recover(struct bundle *b, struct err *e)
{
	char p[PATH_MAX], to[PATH_MAX];
	struct stat st;
	int finish, moved = 0;

	if (lstat(b->stage, &st) != 0) {
		if (errno == ENOENT) {
			return 0;
		}
		err_sys(e, "%s", b->stage);
		return -2;
	}
	if (bundle_join(p, sizeof(p), b->stage, BUNDLE_COMMIT, e) != 0) {
		return -2;
	}
	finish = S_ISDIR(st.st_mode) && access(p, F_OK) == 0;
	for (int i = 0; finish && i < BF_COUNT; i++) {
		if (bundle_join(p, sizeof(p), b->stage, bundle_names[i], e) != 0 ||
		    bundle_join(to, sizeof(to), b->etc, bundle_names[i], e) != 0) {
			return -2;
		}
		if (rename(p, to) == 0) {
			moved++;
		} else if (errno != ENOENT) {
			err_sys(e, "finish the interrupted install: rename %s", p);
			return -2;
		}
	}
	if ((moved > 0 && fs_fsync_dir(b->etc) != 0) || fs_rmtree(b->stage) != 0 ||
	    fs_fsync_dir(b->etc) != 0) {
		err_sys(e, "%s an interrupted install in %s", finish ? "finish" : "undo", b->stage);
		return -2;
	}
	return finish ? 1 : -1;
}

/* Every file of the bundle, or the list of the ones missing. */
static int
bundle_read(struct bundle *b, struct err *e)
{
	char p[PATH_MAX], missing[256] = "";
	size_t off = 0;

	for (int i = 0; i < BF_KEYRING; i++) {
		size_t max = i == BF_UPDATER_CONF || i == BF_AGENT_CONF ? CONFIG_MAX_FILE
									 : BUNDLE_MAX_PEM;

		if (bundle_join(p, sizeof(p), b->src, bundle_names[i], e) != 0) {
			return -1;
		}
		if (fs_read_file(p, max, &b->in[i], &b->inlen[i]) == 0) {
			continue;
		}
		if (errno != ENOENT) {
			return err_sys_kind(e, ERR_FORMAT, "%s", p);
		}
		int n = snprintf(missing + off, sizeof(missing) - off, "%s%s", off > 0 ? ", " : "",
		    bundle_names[i]);
		if (n > 0 && (size_t)n < sizeof(missing) - off) {
			off += (size_t)n;
		}
	}
	if (off > 0) {
		return err_set(e, ERR_NOT_FOUND,
		    "bundle %s is incomplete: %s missing (a bundle of `tandem swarm enroll NAME "
		    "--updater` has ca.crt, agent.crt, agent.key, updater.crt, updater.key, "
		    "agent.conf and updater.conf)", b->src, missing);
	}
	return 0;
}

/* ADDR is "HOST:PORT" with a numeric host (or none) and a port 1..65535; *PORT gets it. */
static int
bundle_addr(const char *addr, long long *port)
{
	char host[256], serv[16];
	unsigned char bin[16];

	if (split_host_port(addr, host, sizeof(host), serv, sizeof(serv)) != 0 ||
	    parse_ll(serv, 1, 65535, port) != 0) {
		return -1;
	}
	if (host[0] != '\0' && inet_pton(AF_INET, host, bin) != 1 &&
	    inet_pton(AF_INET6, host, bin) != 1) {
		return -1;
	}
	return 0;
}

/* The bundle's two configuration files: loaded, and agreeing with each other. */
static int
bundle_check_confs(struct bundle *b, struct err *e)
{
	char p[PATH_MAX];
	char *listen = NULL, *mcn = NULL;
	struct err le = ERR_INIT;
	long long agent_port, probe_port;
	int rc = -1;

	if (bundle_join(p, sizeof(p), b->src, "updater.conf", e) != 0) {
		return -1;
	}
	/* The updater's own table and rules: a bundle the updater would refuse is refused here. */
	if (updater_config_load(&b->bcfg, p, NULL, NULL, &le) != 0) {
		return err_set(e, ERR_FORMAT, "%s", err_msg(&le));
	}
	if (config_get_raw(b->in[BF_AGENT_CONF], b->inlen[BF_AGENT_CONF], "listen", &listen,
		&le) < 0 ||
	    config_get_raw(b->in[BF_AGENT_CONF], b->inlen[BF_AGENT_CONF], "master_cn", &mcn,
		&le) < 0) {
		err_set(e, ERR_FORMAT, "%s/agent.conf: %s", b->src, err_msg(&le));
		goto out;
	}
	if (listen == NULL || bundle_addr(listen, &agent_port) != 0) {
		err_set(e, ERR_FORMAT, "%s/agent.conf: listen is %s%s%s, not ADDRESS:PORT", b->src,
		    listen != NULL ? "'" : "missing", listen != NULL ? listen : "",
		    listen != NULL ? "'" : "");
		goto out;
	}
	if (bundle_addr(b->bcfg.agent_probe, &probe_port) != 0 || probe_port != agent_port) {
		err_set(e, ERR_FORMAT,
		    "the bundle disagrees with itself: agent.conf listens on %s but updater.conf "
		    "probes the agent at %s", listen, b->bcfg.agent_probe);
		goto out;
	}
	if (strcmp(mcn != NULL ? mcn : TLS_DEFAULT_MASTER_CN, b->bcfg.master_cn) != 0) {
		err_set(e, ERR_FORMAT,
		    "the bundle disagrees with itself: master_cn is '%s' in agent.conf, '%s' in "
		    "updater.conf", mcn != NULL ? mcn : TLS_DEFAULT_MASTER_CN, b->bcfg.master_cn);
		goto out;
	}
	if (strlcpy_chk(b->agent_listen, listen, sizeof(b->agent_listen)) != 0 ||
	    strlcpy_chk(b->agent_master_cn, b->bcfg.master_cn, sizeof(b->agent_master_cn)) != 0) {
		err_set(e, ERR_FORMAT, "%s/agent.conf: value too long", b->src);
		goto out;
	}
	rc = 0;
out:
	free(listen);
	free(mcn);
	return rc;
}

/*
 * The keyring a bundle from a master with release keys carries (its
 * updater.conf names it as release_keyring): present and a keyring the
 * updater will take (its own root signatures valid), and the bundle's
 * compatible setting if it has one. A bundle without is fine (no keyring).
 */
static int
bundle_check_keyring(struct bundle *b, struct err *e)
{
	struct sign_keyring kr;
	struct err le = ERR_INIT;
	int rc;

	if (config_get_raw(b->in[BF_UPDATER_CONF], b->inlen[BF_UPDATER_CONF], "compatible",
		&b->compatible, &le) < 0) {
		return err_set(e, ERR_FORMAT, "%s/updater.conf: %s", b->src, err_msg(&le));
	}
	if (b->bcfg.release_keyring == NULL) {
		return 0;
	}
	if (fs_read_file(b->bcfg.release_keyring, SIGN_FILE_MAX, &b->in[BF_KEYRING],
		&b->inlen[BF_KEYRING]) != 0) {
		return err_sys_kind(e, errno == ENOENT ? ERR_NOT_FOUND : ERR_FORMAT,
		    "bundle %s: updater.conf's release_keyring %s", b->src,
		    b->bcfg.release_keyring);
	}
	sign_keyring_init(&kr);
	rc = sign_keyring_parse(b->in[BF_KEYRING], b->inlen[BF_KEYRING], 0, &kr, &le);
	sign_keyring_free(&kr);
	if (rc != 0) {
		return err_set(e, ERR_FORMAT, "bundle %s: release_keyring %s: %s", b->src,
		    b->bcfg.release_keyring, err_msg(&le));
	}
	return 0;
}

/* Certificates: the right roles, one host, issued by the bundle's CA, the pin matches. */
static int
bundle_check_certs(struct bundle *b, struct bundle_result *res, struct err *e)
{
	struct tls_identity up, ag;
	char ca[PATH_MAX], crt[PATH_MAX];
	static const enum bundle_file certs[] = { BF_UPDATER_CRT, BF_AGENT_CRT };

	memset(&up, 0, sizeof(up));
	memset(&ag, 0, sizeof(ag));
	if (bundle_join(ca, sizeof(ca), b->src, "ca.crt", e) != 0) {
		return -1;
	}
	for (size_t i = 0; i < ARRAY_LEN(certs); i++) {
		struct tls_identity *id = certs[i] == BF_UPDATER_CRT ? &up : &ag;

		if (bundle_join(crt, sizeof(crt), b->src, bundle_names[certs[i]], e) != 0) {
			return -1;
		}
		struct err te = ERR_INIT;

		if (tls_identity_from_file(crt, b->bcfg.master_cn, id, &te) != 0) {
			return err_set(e, ERR_FORMAT, "%s", err_msg(&te));
		}
		if (tls_verify_cert_file(ca, crt, e) != 0) {
			return err_rekind(e, ERR_FORMAT);
		}
	}
	if (up.role != TLS_ROLE_UPDATER || up.host[0] == '\0') {
		return err_set(e, ERR_FORMAT,
		    "%s/updater.crt is not an updater certificate (CN '%s', role %s; expected CN "
		    "updater@HOST)", b->src, up.cn, tls_role_name(up.role));
	}
	if (ag.role != TLS_ROLE_AGENT) {
		return err_set(e, ERR_FORMAT,
		    "%s/agent.crt is not an agent certificate (CN '%s', role %s)", b->src, ag.cn,
		    tls_role_name(ag.role));
	}
	if (strcmp(ag.cn, up.host) != 0) {
		return err_set(e, ERR_FORMAT,
		    "the certificates are of two hosts: agent.crt is '%s', updater.crt is '%s'",
		    ag.cn, up.cn);
	}
	if (b->bcfg.agent_pin[0] != '\0' && strcasecmp(b->bcfg.agent_pin, ag.fingerprint) != 0) {
		return err_set(e, ERR_FORMAT,
		    "updater.conf's agent_pin %s is not the fingerprint of agent.crt (%s)",
		    b->bcfg.agent_pin, ag.fingerprint);
	}
	snprintf(res->host, sizeof(res->host), "%s", ag.cn);
	return 0;
}

/* DIR/NAME with the bundle's settings carried in (E: ERR_CONFIG on a bad file). */
static int
bundle_edit(struct bundle *b, const char *name, const char *const *keys,
    const char *const *values, size_t n, char **out, size_t *outlen, struct err *e)
{
	char p[PATH_MAX];
	char *text = NULL;
	size_t len = 0;
	int rc;

	if (bundle_join(p, sizeof(p), b->etc, name, e) != 0) {
		return -1;
	}
	if (fs_read_file(p, CONFIG_MAX_FILE, &text, &len) != 0) {
		return err_sys_kind(e, ERR_CONFIG, "%s (installed by the tandem-worker package)", p);
	}
	rc = config_edit(text, len, keys, values, n, out, outlen, e);
	free(text);
	if (rc != 0) {
		return err_prefix(e, "%s", p);
	}
	return 0;
}

static int
bundle_edit_confs(struct bundle *b, struct bundle_result *res, struct err *e)
{
	/* The signature policy comes only with a keyring: a bundle never lowers it. */
	static const char *const ukeys[] = { "listen", "master_cn", "master_fingerprints",
		"agent_probe", "agent_pin", "ca", "cert", "key", "release_keyring",
		"require_signed", "compatible" };
	static const char *const akeys[] = { "listen", "master_cn", "ca", "cert", "key" };
	char fps[CONFIG_MAX_LINE / 4] = "";
	size_t off = 0;
	int n = 0;

	for (char **fp = b->bcfg.master_fingerprints; *fp != NULL; fp++, n++) {
		int w = snprintf(fps + off, sizeof(fps) - off, "%s%s", n > 0 ? ", " : "", *fp);
		if (w < 0 || (size_t)w >= sizeof(fps) - off) {
			return err_set(e, ERR_FORMAT, "updater.conf: too many master_fingerprints");
		}
		off += (size_t)w;
	}
	const char *const uvals[] = { b->bcfg.listen, b->bcfg.master_cn, fps, b->bcfg.agent_probe,
		b->bcfg.agent_pin, "ca.crt", "updater.crt", "updater.key", "keyring.json",
		b->bcfg.require_signed ? "true" : "false", b->compatible };
	size_t nu = ARRAY_LEN(ukeys) - 3;

	if (b->in[BF_KEYRING] != NULL) {
		nu = ARRAY_LEN(ukeys) - (b->compatible == NULL ? 1 : 0);
	}
	const char *const avals[] = { b->agent_listen, b->agent_master_cn, "ca.crt", "agent.crt",
		"agent.key" };

	if (bundle_edit(b, "updater.conf", ukeys, uvals, nu, &b->conf[0],
		&b->conflen[0], e) != 0 ||
	    bundle_edit(b, "agent.conf", akeys, avals, ARRAY_LEN(akeys), &b->conf[1],
		&b->conflen[1], e) != 0) {
		return -1;
	}
	snprintf(res->updater_listen, sizeof(res->updater_listen), "%s", b->bcfg.listen);
	snprintf(res->agent_listen, sizeof(res->agent_listen), "%s", b->agent_listen);
	snprintf(res->master_cn, sizeof(res->master_cn), "%s", b->bcfg.master_cn);
	res->pinned_masters = n;
	res->agent_pinned = b->bcfg.agent_pin[0] != '\0';
	res->signed_only = b->in[BF_KEYRING] != NULL && b->bcfg.require_signed;
	res->keyring = b->in[BF_KEYRING] != NULL;
	return 0;
}

/* Write one file into the staging directory with its final owner and mode. */
static int
bundle_stage_file(struct bundle *b, const char *name, const char *data, size_t len, mode_t mode,
    uid_t uid, gid_t gid, struct err *e)
{
	char p[PATH_MAX];

	if (bundle_join(p, sizeof(p), b->stage, name, e) != 0) {
		return -1;
	}
	if (fs_write_atomic(p, data, len, mode) != 0) {
		return err_sys(e, "write %s", p);
	}
	if (chown(p, uid, gid) != 0) {
		return err_sys(e, "chown %s", p);
	}
	return 0;
}

/* Owner and mode of the configuration file being replaced (root:GROUP 0640 if none). */
static void
bundle_conf_meta(struct bundle *b, const char *name, uid_t *uid, gid_t *gid, mode_t *mode)
{
	char p[PATH_MAX];
	struct stat st;

	*uid = 0;
	*gid = b->gid;
	*mode = 0640;
	if (bundle_join(p, sizeof(p), b->etc, name, NULL) == 0 && stat(p, &st) == 0) {
		*uid = st.st_uid;
		*gid = st.st_gid;
		*mode = st.st_mode & 07777;
	}
}

static int
bundle_stage(struct bundle *b, struct err *e)
{
	uid_t cu;
	gid_t cg;
	mode_t cm;

	if (mkdir(b->stage, 0700) != 0) {
		return err_sys(e, "mkdir %s", b->stage);
	}
	for (int i = BF_CA; i <= BF_UPDATER_KEY; i++) {
		int key = bundle_is_key((enum bundle_file)i);

		/* Certificates belong to root (to oneself when not run as root). */
		if (bundle_stage_file(b, bundle_names[i], b->in[i], b->inlen[i], key ? 0600 : 0640,
			key ? b->uid : geteuid(), b->gid, e) != 0) {
			return -1;
		}
	}
	/* Public keys only: readable by the service like the certificates. */
	if (b->in[BF_KEYRING] != NULL &&
	    bundle_stage_file(b, bundle_names[BF_KEYRING], b->in[BF_KEYRING], b->inlen[BF_KEYRING],
		0640, geteuid(), b->gid, e) != 0) {
		return -1;
	}
	bundle_conf_meta(b, "updater.conf", &cu, &cg, &cm);
	if (bundle_stage_file(b, "updater.conf", b->conf[0], b->conflen[0], cm, cu, cg, e) != 0) {
		return -1;
	}
	bundle_conf_meta(b, "agent.conf", &cu, &cg, &cm);
	if (bundle_stage_file(b, "agent.conf", b->conf[1], b->conflen[1], cm, cu, cg, e) != 0) {
		return -1;
	}
	if (fs_fsync_dir(b->stage) != 0) {
		return err_sys(e, "fsync %s", b->stage);
	}
	return 0;
}

/*
 * The staged set as the programs will read it: the updater's configuration
 * loads and passes its checks, and both certificate/key pairs load as TLS
 * servers (key matches, serverAuth) and the updater's as a client too.
 */
static int
bundle_check_staged(struct bundle *b, struct err *e)
{
	struct updater_config cfg;
	struct tls_opts to;
	struct tls_ctx *ctx = NULL;
	struct err le = ERR_INIT;
	char p[PATH_MAX], ca[PATH_MAX], crt[PATH_MAX], key[PATH_MAX];
	int rc = -1;

	memset(&cfg, 0, sizeof(cfg));
	if (bundle_join(ca, sizeof(ca), b->stage, "ca.crt", e) != 0 ||
	    bundle_join(crt, sizeof(crt), b->stage, "agent.crt", e) != 0 ||
	    bundle_join(key, sizeof(key), b->stage, "agent.key", e) != 0 ||
	    bundle_join(p, sizeof(p), b->stage, "updater.conf", e) != 0) {
		return -1;
	}
	tls_opts_init(&to);
	to.ca_file = ca;
	to.cert_file = crt;
	to.key_file = key;
	to.master_cn = b->bcfg.master_cn;
	if (tls_server_new(&to, &ctx, e) != 0) {
		err_rekind(e, ERR_FORMAT);
		err_prefix(e, "agent certificate");
		goto out;
	}
	tls_ctx_free(ctx);
	ctx = NULL;
	if (updater_config_load(&cfg, p, NULL, NULL, &le) != 0) {
		err_set(e, ERR_CONFIG, "the resulting updater.conf would not load: %s", err_msg(&le));
		goto out;
	}
	to.ca_file = cfg.ca;
	to.cert_file = cfg.cert;
	to.key_file = cfg.key;
	to.master_cn = cfg.master_cn;
	if (tls_server_new(&to, &ctx, e) != 0) {
		err_rekind(e, ERR_FORMAT);
		err_prefix(e, "updater certificate");
		goto out;
	}
	tls_ctx_free(ctx);
	ctx = NULL;
	if (tls_client_new(&to, &ctx, e) != 0) {
		err_rekind(e, ERR_FORMAT);
		err_prefix(e, "updater certificate");
		goto out;
	}
	rc = 0;
out:
	tls_ctx_free(ctx);
	updater_config_free(&cfg);
	return rc;
}

/* The marker makes the staged set final; then every file moves into place. */
static int
bundle_commit(struct bundle *b, struct err *e)
{
	char p[PATH_MAX], to[PATH_MAX];
	char point[64];

	if (bundle_join(p, sizeof(p), b->stage, BUNDLE_COMMIT, e) != 0) {
		return -1;
	}
	if (fs_write_atomic(p, "", 0, 0600) != 0) {
		return err_sys(e, "write %s", p);
	}
	testhook_point("bundle.committed");
	for (int i = 0; i < BF_COUNT; i++) {
		if (b->in[i] == NULL) {
			continue; /* no keyring in this bundle */
		}
		if (bundle_join(p, sizeof(p), b->stage, bundle_names[i], e) != 0 ||
		    bundle_join(to, sizeof(to), b->etc, bundle_names[i], e) != 0) {
			return -1;
		}
		if (rename(p, to) != 0) {
			return err_sys(e, "rename %s (run the command again to finish)", p);
		}
		snprintf(point, sizeof(point), "bundle.moved.%s", bundle_names[i]);
		testhook_point(point);
	}
	if (fs_fsync_dir(b->etc) != 0 || fs_rmtree(b->stage) != 0 || fs_fsync_dir(b->etc) != 0) {
		return err_sys(e, "finish %s (run the command again to finish)", b->stage);
	}
	return 0;
}

int
bundle_install(const struct bundle_opts *o, struct bundle_result *res, struct err *e)
{
	struct bundle b;
	struct stat st;
	int rc = -1, r, staged = 0;

	memset(&b, 0, sizeof(b));
	memset(res, 0, sizeof(*res));
	b.src = o->src;
	if (o->src == NULL || o->src[0] == '\0') {
		return err_set(e, ERR_USAGE, "no bundle directory given");
	}
	if (realpath(o->etc != NULL ? o->etc : BUNDLE_DEFAULT_ETC, b.etc) == NULL ||
	    stat(b.etc, &st) != 0 || !S_ISDIR(st.st_mode)) {
		return err_sys_kind(e, ERR_CONFIG, "%s (install the tandem-worker package first)",
		    o->etc != NULL ? o->etc : BUNDLE_DEFAULT_ETC);
	}
	if (bundle_join(b.stage, sizeof(b.stage), b.etc, BUNDLE_STAGING, e) != 0 ||
	    bundle_owner(&b, o->user != NULL ? o->user : BUNDLE_DEFAULT_USER, e) != 0) {
		goto out;
	}
	r = bundle_recover(&b, e);
	if (r == -2) {
		goto out;
	}
	res->recovered = r;
	if (bundle_read(&b, e) != 0 || bundle_check_confs(&b, e) != 0 ||
	    bundle_check_keyring(&b, e) != 0 || bundle_check_certs(&b, res, e) != 0 ||
	    bundle_edit_confs(&b, res, e) != 0) {
		goto out;
	}
	staged = 1;
	if (bundle_stage(&b, e) != 0 || bundle_check_staged(&b, e) != 0) {
		goto out;
	}
	testhook_point("bundle.staged");
	staged = 0; /* from here on the next run finishes the install, never undoes it */
	res->changed = 1;
	if (bundle_commit(&b, e) != 0) {
		goto out;
	}
	rc = 0;
out:
	if (rc != 0 && staged && fs_rmtree(b.stage) != 0) {
		log_warn("remove %s", b.stage);
	}
	bundle_free(&b);
	return rc;
}

static void
bundle_usage(FILE *fp)
{
	fprintf(fp,
	    "usage: tandem-updater install-bundle [--etc DIR] [--user NAME] BUNDLE\n"
	    "\n"
	    "Installs a host's enrollment bundle (tandem swarm enroll NAME --updater) as\n"
	    "root: ca.crt and the agent and updater certificates (0640 root:GROUP) and\n"
	    "keys (0600 NAME:GROUP) into DIR, and the bundle's listen addresses, master\n"
	    "CN and pins (master_fingerprints, agent_pin) into DIR/updater.conf and\n"
	    "DIR/agent.conf, keeping their other settings. A bundle from a master with\n"
	    "release keys also has keyring.json: it goes to DIR/keyring.json (0640\n"
	    "root:GROUP) with the bundle's release_keyring, require_signed and\n"
	    "compatible; a bundle without leaves those settings as they are.\n"
	    "Everything is checked first (files present, keys match certificates, the\n"
	    "bundle's CA issued them, one host, pins agree, the keyring's signatures);\n"
	    "a refused bundle leaves DIR unchanged. Then restart the service:\n"
	    "systemctl restart tandem-updater.\n"
	    "\n"
	    "  --etc DIR    configuration directory (%s)\n"
	    "  --user NAME  the service's user, owner of the keys (%s)\n",
	    BUNDLE_DEFAULT_ETC, BUNDLE_DEFAULT_USER);
}

int
bundle_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "etc", required_argument, NULL, 'e' },
		{ "user", required_argument, NULL, 'u' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct bundle_opts o = { NULL, NULL, NULL };
	struct bundle_result res;
	struct err e = ERR_INIT;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'e':
			o.etc = optarg;
			break;
		case 'u':
			o.user = optarg;
			break;
		case 'h':
			bundle_usage(stdout);
			return 0;
		default:
			bundle_usage(stderr);
			return 2;
		}
	}
	if (argc - optind != 1) {
		bundle_usage(stderr);
		return 2;
	}
	o.src = argv[optind];
	if (bundle_install(&o, &res, &e) != 0) {
		fprintf(stderr, "tandem-updater: install-bundle: %s%s%s%s\n", err_msg(&e),
		    res.changed || res.recovered != 0 ? "" : " (",
		    res.changed || res.recovered != 0 ? "" : o.etc != NULL ? o.etc : BUNDLE_DEFAULT_ETC,
		    res.changed || res.recovered != 0 ? "" : " unchanged)");
		return err_exit_code(e.kind);
	}
	if (res.recovered != 0) {
		printf("an interrupted install-bundle was %s first\n",
		    res.recovered > 0 ? "finished" : "undone");
	}
	printf("installed the bundle of host %s into %s\n"
	       "  updater: listen = %s, master_cn = %s, %d pinned master certificate%s\n"
	       "  agent:   listen = %s, %s\n"
	       "  releases: %s\n"
	       "next: systemctl restart tandem-updater\n",
	    res.host, o.etc != NULL ? o.etc : BUNDLE_DEFAULT_ETC, res.updater_listen, res.master_cn,
	    res.pinned_masters, res.pinned_masters == 1 ? "" : "s", res.agent_listen,
	    res.agent_pinned ? "pinned by the updater (agent_pin)" : "not pinned (CA only)",
	    res.signed_only ? "signed ones only (release_keyring = keyring.json)"
	    : res.keyring   ? "keyring.json installed, unsigned ones accepted (require_signed = false)"
			    : "signature settings unchanged (the bundle has no keyring)");
	return 0;
}
