/*
 * Unit tests for updater/bundle (tandem-updater install-bundle): real
 * bundles made by the master's enrollment code, installed into a temporary
 * configuration directory owned by the current user. Every refused bundle
 * (missing files, key not matching, wrong role, two hosts, foreign CA, bad
 * pin, the two config files disagreeing, a keyring missing or unsigned)
 * leaves the directory byte for byte
 * as it was; an install interrupted at every test point is finished or
 * undone by the next run, ending in the same files as an uninterrupted one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <pwd.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/config.h"
#include "common/fs.h"
#include "common/log.h"
#include "common/testhook.h"
#include "master/keystore.h"
#include "master/swarm_enroll.h"
#include "pki/pki.h"
#include "pki/sign.h"
#include "updater/config.h"
#include "updater/bundle.h"
#include "tests/unit/tmpdir.h"

/* The packaged files, as an admin may have edited them (comment, extra key). */
#define PKG_UPDATER_CONF                                                                   \
	"# packaged updater.conf\n"                                                        \
	"listen = 0.0.0.0:8766\n"                                                          \
	"install_dir = /var/lib/tandem\n"                                                  \
	"ca = ca.crt\ncert = updater.crt\nkey = updater.key\n"                             \
	"master_cn = tandem-master\n"                                                      \
	"master_fingerprints =\n"                                                          \
	"agent_config = agent.conf\n"                                                      \
	"agent_probe = 127.0.0.1:8765\n"                                                   \
	"agent_pin =\n"                                                                    \
	"log_level = debug   # the admin's choice\n"
#define PKG_AGENT_CONF                                                                     \
	"# packaged agent.conf\n"                                                          \
	"listen = 0.0.0.0:8765\n"                                                          \
	"ca = ca.crt\ncert = agent.crt\nkey = agent.key\n"                                 \
	"master_cn = tandem-master\n"                                                      \
	"log_level = info"

static const char *const files[] = { "ca.crt", "agent.crt", "agent.key", "updater.crt",
	"updater.key", "agent.conf", "updater.conf" };

/* Made once: two hosts of one fleet, one host of another, one of a master with release keys. */
struct world {
	const char *dir;
	char web1[PATH_MAX], web2[PATH_MAX], other[PATH_MAX], signedb[PATH_MAX];
	char user[64];
	char *unsigned_keyring; /* a keyring document without its root signature */
	size_t unsigned_len;
};

struct fx {
	struct world *w;
	char dir[PATH_MAX];
	char bundle[PATH_MAX];
	char etc[PATH_MAX];
};

static void
enroll(const char *home, const char *name, int agent_port, const char *out)
{
	struct swarm_enroll_opts o;
	struct swarm_enroll_result r;
	struct err err = ERR_INIT;

	memset(&o, 0, sizeof(o));
	o.name = name;
	o.address = "127.0.0.1";
	o.agent_port = agent_port;
	o.updater = 1;
	o.out = out;
	if (swarm_enroll(home, &o, &r, &err) != 0) {
		fail_msg("enroll %s: %s", name, err_msg(&err));
	}
}

/* A keyring document (root key ROOT, release key REL), signed by ROOT when SIGN. */
static char *
keyring_doc(struct sign_key *root, struct sign_key *rel, int sign, size_t *len)
{
	struct sign_keyring kr;
	char *out = NULL;

	sign_keyring_init(&kr);
	kr.version = 1;
	kr.threshold = 1;
	kr.root_threshold = 1;
	snprintf(kr.created_at, sizeof(kr.created_at), "2026-01-01T00:00:00Z");
	if (sign_keyring_add_key(&kr, 1, root, NULL, NULL) != 0 ||
	    sign_keyring_add_key(&kr, 0, rel, NULL, NULL) != 0 || sign_keyring_seal(&kr, NULL) != 0 ||
	    (sign && sign_envelope_add(&kr.env, root, NULL) != 0) ||
	    sign_keyring_format(&kr, &out, len, NULL) != 0) {
		out = NULL;
	}
	sign_keyring_free(&kr);
	return out;
}

/* A master whose keyring is ROOT/REL enrolls "web3" into W->signedb. */
static int
signed_master(struct world *w)
{
	struct sign_key *root = NULL, *rel = NULL;
	struct err e = ERR_INIT;
	char home[PATH_MAX], *doc = NULL;
	size_t len = 0;
	int rc = -1;

	snprintf(home, sizeof(home), "%s/home3", w->dir);
	snprintf(w->signedb, sizeof(w->signedb), "%s/web3", w->dir);
	if (pki_init(home, NULL, &e) != 0 || sign_key_generate(&root, &e) != 0 ||
	    sign_key_generate(&rel, &e) != 0) {
		goto out;
	}
	doc = keyring_doc(root, rel, 1, &len);
	w->unsigned_keyring = keyring_doc(root, rel, 0, &w->unsigned_len);
	if (doc == NULL || w->unsigned_keyring == NULL ||
	    keystore_add(home, doc, len, NULL, &e) != 0) {
		fprintf(stderr, "keyring: %s\n", err_msg(&e));
		goto out;
	}
	enroll(home, "web3", 18765, w->signedb);
	rc = 0;
out:
	free(doc);
	sign_key_free(root);
	sign_key_free(rel);
	return rc;
}

static int
group_setup(void **state)
{
	struct world *w = calloc(1, sizeof(*w));
	char home[PATH_MAX], home2[PATH_MAX];
	struct err e = ERR_INIT;
	struct passwd *pw = getpwuid(geteuid());

	if (w == NULL || pw == NULL) {
		return -1;
	}
	snprintf(w->user, sizeof(w->user), "%s", pw->pw_name);
	w->dir = tmpdir_make("bundle");
	if (w->dir == NULL) {
		return -1;
	}
	log_init("test-bundle", LOG_LVL_WARN);
	snprintf(home, sizeof(home), "%s/home", w->dir);
	snprintf(home2, sizeof(home2), "%s/home2", w->dir);
	snprintf(w->web1, sizeof(w->web1), "%s/web1", w->dir);
	snprintf(w->web2, sizeof(w->web2), "%s/web2", w->dir);
	snprintf(w->other, sizeof(w->other), "%s/other", w->dir);
	if (pki_init(home, NULL, &e) != 0 || pki_init(home2, NULL, &e) != 0) {
		fprintf(stderr, "pki_init: %s\n", err_msg(&e));
		return -1;
	}
	enroll(home, "web1", 18765, w->web1);
	enroll(home, "web2", 18765, w->web2);
	enroll(home2, "web1", 18765, w->other);
	if (signed_master(w) != 0) {
		return -1;
	}
	*state = w;
	return 0;
}

static int
group_teardown(void **state)
{
	struct world *w = *state;
	int rc = tmpdir_remove();

	free(w->unsigned_keyring);
	free(w);
	return rc;
}

static void
copy(const char *from_dir, const char *name, const char *to_dir, const char *to_name)
{
	char a[PATH_MAX], b[PATH_MAX];
	struct stat st;

	snprintf(a, sizeof(a), "%s/%s", from_dir, name);
	snprintf(b, sizeof(b), "%s/%s", to_dir, to_name != NULL ? to_name : name);
	assert_int_equal(stat(a, &st), 0);
	assert_int_equal(fs_copy_file(a, b, st.st_mode & 07777), 0);
}

static void
write_file(const char *dir, const char *name, const char *text, mode_t mode)
{
	char p[PATH_MAX];

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	assert_int_equal(fs_write_atomic(p, text, strlen(text), mode), 0);
}

static char *
read_file(const char *dir, const char *name)
{
	char p[PATH_MAX], *buf = NULL;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	if (fs_read_file(p, 1 << 20, &buf, NULL) != 0) {
		fail_msg("read %s: %s", p, strerror(errno));
	}
	return buf;
}

static int
setup(void **state)
{
	struct world *w = *state;
	struct fx *f = calloc(1, sizeof(*f));

	if (f == NULL) {
		return -1;
	}
	f->w = w;
	/* Each test's own directory inside the group's. */
	snprintf(f->dir, sizeof(f->dir), "%s/t", w->dir);
	if (mkdir(f->dir, 0700) != 0) {
		return -1;
	}
	tmpdir_fmt(f->bundle, sizeof(f->bundle), "%s/bundle", f->dir);
	tmpdir_fmt(f->etc, sizeof(f->etc), "%s/etc", f->dir);
	if (mkdir(f->bundle, 0700) != 0 || mkdir(f->etc, 0750) != 0) {
		return -1;
	}
	for (size_t i = 0; i < ARRAY_LEN(files); i++) {
		copy(w->web1, files[i], f->bundle, NULL);
	}
	write_file(f->etc, "updater.conf", PKG_UPDATER_CONF, 0640);
	write_file(f->etc, "agent.conf", PKG_AGENT_CONF, 0604);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;
	int rc = fs_rmtree(f->dir);

	*state = f->w;
	free(f);
	return rc;
}

/* Every entry of DIR: name, mode, owner and content, as one string. */
static char *
snapshot(const char *dir)
{
	struct dirent **list = NULL;
	size_t cap = 1 << 16, len = 0;
	char *out = calloc(1, cap);
	int n = scandir(dir, &list, NULL, alphasort);

	assert_non_null(out);
	assert_true(n >= 0);
	for (int i = 0; i < n; i++) {
		char p[PATH_MAX], *content = NULL;
		struct stat st;

		snprintf(p, sizeof(p), "%s/%s", dir, list[i]->d_name);
		assert_int_equal(lstat(p, &st), 0);
		if (S_ISREG(st.st_mode)) {
			assert_int_equal(fs_read_file(p, 1 << 20, &content, NULL), 0);
		}
		int w = snprintf(out + len, cap - len, "%s %o %d:%d\n%s\n", list[i]->d_name,
		    (unsigned)st.st_mode, (int)st.st_uid, (int)st.st_gid,
		    content != NULL ? content : "");
		assert_true(w > 0 && (size_t)w < cap - len);
		len += (size_t)w;
		free(content);
		free(list[i]);
	}
	free(list);
	return out;
}

static int
install(struct fx *f, struct bundle_result *res, struct err *e)
{
	struct bundle_opts o = { f->bundle, f->etc, f->w->user };

	return bundle_install(&o, res, e);
}

static void
assert_installed(struct fx *f)
{
	char p[PATH_MAX];
	struct err e = ERR_INIT;
	struct updater_config cfg;
	struct stat st;

	for (size_t i = 0; i < ARRAY_LEN(files); i++) {
		int key = strstr(files[i], ".key") != NULL;
		char *want = read_file(f->w->web1, files[i]);
		char *got = read_file(f->etc, files[i]);

		if (strstr(files[i], ".conf") == NULL) {
			assert_string_equal(want, got);
		}
		free(want);
		free(got);
		tmpdir_fmt(p, sizeof(p), "%s/%s", f->etc, files[i]);
		assert_int_equal(stat(p, &st), 0);
		if (strstr(files[i], ".conf") == NULL) {
			assert_int_equal(st.st_mode & 07777, key ? 0600 : 0640);
			/* Keys: the service's user; certificates: root (as root). */
			assert_int_equal(st.st_uid, geteuid());
		}
	}
	/* The configuration files keep their modes (0604 is the test's own). */
	tmpdir_fmt(p, sizeof(p), "%s/agent.conf", f->etc);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0604);
	tmpdir_fmt(p, sizeof(p), "%s/%s", f->etc, BUNDLE_STAGING);
	assert_int_equal(access(p, F_OK), -1);

	/* updater.conf: the bundle's settings, the admin's others, and it loads. */
	char *u = read_file(f->etc, "updater.conf");
	char *bu = read_file(f->bundle, "updater.conf");
	assert_non_null(strstr(u, "# packaged updater.conf\nlisten = 127.0.0.1:8766\n"));
	assert_non_null(strstr(u, "install_dir = /var/lib/tandem\n"));
	assert_non_null(strstr(u, "log_level = debug   # the admin's choice\n"));
	assert_non_null(strstr(u, "agent_probe = 127.0.0.1:18765\n"));
	char *fp = strstr(bu, "master_fingerprints = ");
	assert_non_null(fp);
	assert_non_null(strstr(u, "\nmaster_fingerprints = ") != NULL ? strstr(u, fp) : NULL);
	char *pin = strstr(bu, "agent_pin = ");
	assert_non_null(pin);
	assert_non_null(strstr(u, pin));
	tmpdir_fmt(p, sizeof(p), "%s/updater.conf", f->etc);
	memset(&cfg, 0, sizeof(cfg));
	if (updater_config_load(&cfg, p, NULL, NULL, &e) != 0) {
		fail_msg("%s", err_msg(&e));
	}
	assert_int_equal(cfg.log_level, LOG_LVL_DEBUG);
	assert_non_null(strstr(cfg.key, "/etc/updater.key"));
	updater_config_free(&cfg);
	free(u);
	free(bu);

	char *a = read_file(f->etc, "agent.conf");
	assert_string_equal(a, "# packaged agent.conf\nlisten = 127.0.0.1:18765\nca = ca.crt\n"
			       "cert = agent.crt\nkey = agent.key\nmaster_cn = tandem-master\n"
			       "log_level = info\n");
	free(a);
}

static void
test_install(void **state)
{
	struct fx *f = *state;
	struct bundle_result res;
	struct err e = ERR_INIT;

	if (install(f, &res, &e) != 0) {
		fail_msg("%s", err_msg(&e));
	}
	assert_string_equal(res.host, "web1");
	assert_string_equal(res.updater_listen, "127.0.0.1:8766");
	assert_string_equal(res.agent_listen, "127.0.0.1:18765");
	assert_int_equal(res.pinned_masters, 1);
	assert_int_equal(res.agent_pinned, 1);
	assert_int_equal(res.recovered, 0);
	assert_int_equal(res.keyring, 0);
	assert_installed(f);
	/* No keyring in the bundle: no signature settings written. */
	char *u = read_file(f->etc, "updater.conf");
	assert_null(strstr(u, "release_keyring"));
	assert_null(strstr(u, "require_signed"));
	free(u);

	/* Again: same result (nothing appended twice). */
	char *before = snapshot(f->etc);
	assert_int_equal(install(f, &res, &e), 0);
	char *after = snapshot(f->etc);
	assert_string_equal(before, after);
	free(before);
	free(after);
}

/* Install must fail with KIND and a message containing WHY, DIR unchanged. */
static void
assert_refused(struct fx *f, enum err_kind kind, const char *why)
{
	struct bundle_result res;
	struct err e = ERR_INIT;
	char *before = snapshot(f->etc);

	assert_int_equal(install(f, &res, &e), -1);
	if (e.kind != kind || strstr(err_msg(&e), why) == NULL) {
		fail_msg("got %s \"%s\", want %s \"%s\"", err_kind_name(e.kind), err_msg(&e),
		    err_kind_name(kind), why);
	}
	assert_int_equal(res.changed, 0);
	char *after = snapshot(f->etc);
	assert_string_equal(before, after);
	free(before);
	free(after);
}

static void
test_incomplete(void **state)
{
	struct fx *f = *state;
	char p[PATH_MAX];

	tmpdir_fmt(p, sizeof(p), "%s/agent.key", f->bundle);
	assert_int_equal(unlink(p), 0);
	tmpdir_fmt(p, sizeof(p), "%s/updater.conf", f->bundle);
	assert_int_equal(unlink(p), 0);
	assert_refused(f, ERR_NOT_FOUND, "is incomplete: agent.key, updater.conf missing");
}

static void
test_key_not_matching(void **state)
{
	struct fx *f = *state;

	copy(f->w->web1, "updater.key", f->bundle, "agent.key");
	assert_refused(f, ERR_FORMAT, "agent.key does not match the certificate");
	/* A key that is not a key at all. */
	write_file(f->bundle, "agent.key", "-----BEGIN EC PRIVATE KEY-----\nnot a key\n", 0600);
	assert_refused(f, ERR_FORMAT, "agent.key: cannot load private key");
}

static void
test_wrong_roles_and_hosts(void **state)
{
	struct fx *f = *state;

	/* The agent's certificate where the updater's belongs. */
	copy(f->w->web1, "agent.crt", f->bundle, "updater.crt");
	copy(f->w->web1, "agent.key", f->bundle, "updater.key");
	assert_refused(f, ERR_FORMAT, "updater.crt is not an updater certificate (CN 'web1'");
	copy(f->w->web1, "updater.crt", f->bundle, NULL);
	copy(f->w->web1, "updater.key", f->bundle, NULL);
	copy(f->w->web1, "updater.crt", f->bundle, "agent.crt");
	assert_refused(f, ERR_FORMAT, "agent.crt is not an agent certificate (CN 'updater@web1'");
	/* Another host's agent certificate (and key). */
	copy(f->w->web2, "agent.crt", f->bundle, NULL);
	copy(f->w->web2, "agent.key", f->bundle, NULL);
	assert_refused(f, ERR_FORMAT,
	    "the certificates are of two hosts: agent.crt is 'web2', updater.crt is 'updater@web1'");
}

static void
test_pin_and_ca(void **state)
{
	struct fx *f = *state;

	/* web2's updater.conf pins web2's agent certificate, not web1's. */
	copy(f->w->web2, "updater.conf", f->bundle, NULL);
	assert_refused(f, ERR_FORMAT, "agent_pin");
	copy(f->w->web1, "updater.conf", f->bundle, NULL);
	/* A CA of another fleet did not issue these. */
	copy(f->w->other, "ca.crt", f->bundle, NULL);
	assert_refused(f, ERR_FORMAT, "does not verify against");
}

static void
test_confs_disagree(void **state)
{
	struct fx *f = *state;
	char *a = read_file(f->bundle, "agent.conf");
	char *u = read_file(f->bundle, "updater.conf");
	char text[4096];

	/* The agent listens on one port, the updater probes another. */
	char *l = strstr(a, "listen = 127.0.0.1:18765");
	assert_non_null(l);
	memcpy(l, "listen = 127.0.0.1:18766", 24);
	write_file(f->bundle, "agent.conf", a, 0644);
	assert_refused(f, ERR_FORMAT, "agent.conf listens on 127.0.0.1:18766 but updater.conf "
				      "probes the agent at 127.0.0.1:18765");
	memcpy(l, "listen = 127.0.0.1:18765", 24);
	write_file(f->bundle, "agent.conf", a, 0644);
	/* Two master CNs. */
	char *m = strstr(u, "master_cn = tandem-master\n");
	assert_non_null(m);
	snprintf(text, sizeof(text), "%.*smaster_cn = other-master\n%s", (int)(m - u), u,
	    m + strlen("master_cn = tandem-master\n"));
	write_file(f->bundle, "updater.conf", text, 0644);
	assert_refused(f, ERR_FORMAT, "master_cn is 'tandem-master' in agent.conf, 'other-master'");
	/* A bundle config the updater itself refuses. */
	write_file(f->bundle, "updater.conf", "listen = nowhere\n", 0644);
	assert_refused(f, ERR_FORMAT, "updater.conf:1: listen");
	write_file(f->bundle, "updater.conf", u, 0644);
	write_file(f->bundle, "agent.conf", "ca = ca.crt\n", 0644);
	assert_refused(f, ERR_FORMAT, "agent.conf: listen is missing");
	free(a);
	free(u);
}

static void
test_bad_target(void **state)
{
	struct fx *f = *state;
	struct bundle_result res;
	struct err e = ERR_INIT;
	struct bundle_opts o = { f->bundle, f->etc, "no-such-user-here" };
	char p[PATH_MAX];

	assert_int_equal(bundle_install(&o, &res, &e), -1);
	assert_int_equal(e.kind, ERR_USAGE);
	assert_non_null(strstr(err_msg(&e), "user 'no-such-user-here' does not exist"));
	/* The packaged file is missing: not our job to invent it. */
	tmpdir_fmt(p, sizeof(p), "%s/agent.conf", f->etc);
	assert_int_equal(unlink(p), 0);
	assert_refused(f, ERR_CONFIG, "agent.conf");
	/* A packaged file that is not valid config text. */
	write_file(f->etc, "agent.conf", "listen 0.0.0.0:8765\n", 0640);
	assert_refused(f, ERR_CONFIG, "agent.conf: line 1: expected 'key = value'");
	/* No such directory. */
	tmpdir_fmt(p, sizeof(p), "%s/nowhere", f->dir);
	o.etc = p;
	o.user = f->w->user;
	err_clear(&e);
	assert_int_equal(bundle_install(&o, &res, &e), -1);
	assert_int_equal(e.kind, ERR_CONFIG);
}

/*
 * A master with release keys: its keyring is installed and updater.conf
 * requires signatures; a missing or unsigned keyring is refused; a bundle
 * without a keyring installed afterwards leaves the policy as it is.
 */
static void
test_keyring(void **state)
{
	struct fx *f = *state;
	struct bundle_result res;
	struct err e = ERR_INIT;
	struct updater_config cfg;
	char p[PATH_MAX];
	struct stat st;

	for (size_t i = 0; i < ARRAY_LEN(files); i++) {
		copy(f->w->signedb, files[i], f->bundle, NULL);
	}
	assert_refused(f, ERR_NOT_FOUND, "release_keyring");
	write_file(f->bundle, "keyring.json", "{\"v\":1}", 0644);
	assert_refused(f, ERR_FORMAT, "release_keyring");
	tmpdir_fmt(p, sizeof(p), "%s/keyring.json", f->bundle);
	assert_int_equal(fs_write_atomic(p, f->w->unsigned_keyring, f->w->unsigned_len, 0644), 0);
	assert_refused(f, ERR_FORMAT, "release_keyring");

	copy(f->w->signedb, "keyring.json", f->bundle, NULL);
	if (install(f, &res, &e) != 0) {
		fail_msg("%s", err_msg(&e));
	}
	assert_string_equal(res.host, "web3");
	assert_int_equal(res.keyring, 1);
	assert_int_equal(res.signed_only, 1);
	char *want = read_file(f->w->signedb, "keyring.json");
	char *got = read_file(f->etc, "keyring.json");
	assert_string_equal(want, got);
	free(want);
	free(got);
	tmpdir_fmt(p, sizeof(p), "%s/keyring.json", f->etc);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	char *u = read_file(f->etc, "updater.conf");
	assert_non_null(strstr(u, "\nrelease_keyring = keyring.json\n"));
	assert_non_null(strstr(u, "\nrequire_signed = true\n"));
	assert_non_null(strstr(u, "log_level = debug   # the admin's choice\n"));
	free(u);
	tmpdir_fmt(p, sizeof(p), "%s/updater.conf", f->etc);
	memset(&cfg, 0, sizeof(cfg));
	if (updater_config_load(&cfg, p, NULL, NULL, &e) != 0) {
		fail_msg("%s", err_msg(&e));
	}
	assert_true(cfg.require_signed);
	assert_non_null(strstr(cfg.release_keyring, "/etc/keyring.json"));
	updater_config_free(&cfg);

	/* A bundle without a keyring never lowers the policy. */
	for (size_t i = 0; i < ARRAY_LEN(files); i++) {
		copy(f->w->web1, files[i], f->bundle, NULL);
	}
	tmpdir_fmt(p, sizeof(p), "%s/keyring.json", f->bundle);
	assert_int_equal(unlink(p), 0);
	assert_int_equal(install(f, &res, &e), 0);
	assert_string_equal(res.host, "web1");
	assert_int_equal(res.keyring, 0);
	u = read_file(f->etc, "updater.conf");
	assert_non_null(strstr(u, "\nrelease_keyring = keyring.json\n"));
	assert_non_null(strstr(u, "\nrequire_signed = true\n"));
	free(u);
}

static const char *crash_at;

static void
crash_hook(const char *point)
{
	if (strcmp(point, crash_at) == 0) {
		_exit(TESTHOOK_CRASH_STATUS);
	}
}

/* Interrupted at POINT (in a child), then run again: the end state of a clean run. */
static void
crash_and_rerun(struct fx *f, const char *point, int want_recovered)
{
	struct bundle_result res;
	struct err e = ERR_INIT;
	int status;
	char p[PATH_MAX];
	pid_t pid;

	write_file(f->etc, "updater.conf", PKG_UPDATER_CONF, 0640);
	write_file(f->etc, "agent.conf", PKG_AGENT_CONF, 0604);
	for (size_t i = 0; i < 5; i++) {
		tmpdir_fmt(p, sizeof(p), "%s/%s", f->etc, files[i]);
		unlink(p);
	}
	crash_at = point;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		testhook_set(crash_hook);
		(void)install(f, &res, &e);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != TESTHOOK_CRASH_STATUS) {
		fail_msg("no crash at %s (status %d)", point, status);
	}
	tmpdir_fmt(p, sizeof(p), "%s/%s", f->etc, BUNDLE_STAGING);
	assert_int_equal(access(p, F_OK), 0);
	if (install(f, &res, &e) != 0) {
		fail_msg("rerun after %s: %s", point, err_msg(&e));
	}
	assert_int_equal(res.recovered, want_recovered);
	assert_installed(f);
}

static void
test_crash_points(void **state)
{
	struct fx *f = *state;
	char point[64];

	if (!testhook_enabled()) {
		skip();
	}
	crash_and_rerun(f, "bundle.staged", -1);
	crash_and_rerun(f, "bundle.committed", 1);
	for (size_t i = 0; i < ARRAY_LEN(files); i++) {
		snprintf(point, sizeof(point), "bundle.moved.%s", files[i]);
		crash_and_rerun(f, point, 1);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_install, setup, teardown),
		cmocka_unit_test_setup_teardown(test_incomplete, setup, teardown),
		cmocka_unit_test_setup_teardown(test_key_not_matching, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wrong_roles_and_hosts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pin_and_ca, setup, teardown),
		cmocka_unit_test_setup_teardown(test_confs_disagree, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_target, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keyring, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_points, setup, teardown),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
