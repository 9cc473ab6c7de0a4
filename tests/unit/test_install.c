/*
 * updater/install: the install engine without HTTP. The REAL store, journal,
 * extractor and preflight runner work on a temp dir; the agent is a fake
 * behind struct install_agent that "runs" whatever `current` points to and
 * passes its probe unless its version is marked bad. Release tarballs are
 * built with libarchive inside the test. A full disk is simulated by
 * interposing statvfs(), fsync() and renameat2() (this file defines them;
 * the engine's static libraries call these definitions), so every ENOSPC
 * path runs the real code after the failing call.
 */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/digest.h"
#include "common/fs.h"
#include "common/json.h"
#include "common/log.h"
#include "common/release_files.h"
#include "common/testhook.h"
#include "updater/config.h"
#include "updater/handover.h"
#include "updater/install.h"
#include "tests/unit/tmpdir.h"

/* ---- a full disk, on demand ---- */

static int fail_exchange;            /* fail the next RENAME_EXCHANGE with ENOSPC */
static int fail_fsync;               /* fail the next fsync() with ENOSPC */
static int low_space;                /* statvfs() reports 1 MiB free */
static int tiny_space;               /* statvfs() reports less than INSTALL_HEADROOM free */

int
renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath,
    unsigned int flags)
{
	if (fail_exchange && (flags & RENAME_EXCHANGE) != 0) {
		fail_exchange = 0;
		errno = ENOSPC;
		return -1;
	}
	return (int)syscall(SYS_renameat2, olddirfd, oldpath, newdirfd, newpath, flags);
}

int
fsync(int fd)
{
	if (fail_fsync) {
		fail_fsync = 0;
		errno = ENOSPC;
		return -1;
	}
	return (int)syscall(SYS_fsync, fd);
}

int
statvfs(const char *restrict path, struct statvfs *restrict buf)
{
	int (*real)(const char *restrict, struct statvfs *restrict);
	int rc;

	*(void **)&real = dlsym(RTLD_NEXT, "statvfs");
	rc = real(path, buf);
	if (rc == 0 && low_space) {
		buf->f_bavail = (fsblkcnt_t)((1 << 20) / buf->f_frsize);
	}
	if (rc == 0 && tiny_space) {
		buf->f_bavail = (fsblkcnt_t)((INSTALL_HEADROOM - 4096) / buf->f_frsize);
	}
	return rc;
}

/* ---- tarballs ---- */

struct buf {
	unsigned char *p;
	size_t len, cap;
};

static la_ssize_t
buf_write(struct archive *a, void *arg, const void *d, size_t n)
{
	struct buf *b = arg;

	(void)a;
	if (b->len + n > b->cap) {
		size_t nc = (b->len + n) * 2;
		unsigned char *np = realloc(b->p, nc);

		assert_non_null(np);
		b->p = np;
		b->cap = nc;
	}
	memcpy(b->p + b->len, d, n);
	b->len += n;
	return (la_ssize_t)n;
}

struct ent {
	const char *path;
	unsigned type;
	unsigned mode;
	const char *data;
	int64_t zeros;
};

static void
make_tar(struct buf *b, const struct ent *ents, size_t n)
{
	static char zeros[65536];
	struct archive *a = archive_write_new();

	memset(b, 0, sizeof(*b));
	assert_int_equal(archive_write_set_format_pax_restricted(a), ARCHIVE_OK);
	assert_int_equal(archive_write_add_filter_gzip(a), ARCHIVE_OK);
	assert_int_equal(archive_write_open(a, b, NULL, buf_write, NULL), ARCHIVE_OK);
	for (size_t i = 0; i < n; i++) {
		struct archive_entry *e = archive_entry_new();
		int64_t size = ents[i].type != AE_IFREG ? 0 :
		    ents[i].zeros > 0 ? ents[i].zeros : (int64_t)strlen(ents[i].data);

		archive_entry_set_pathname(e, ents[i].path);
		archive_entry_set_filetype(e, ents[i].type);
		archive_entry_set_perm(e, ents[i].mode);
		archive_entry_set_size(e, size);
		assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
		for (int64_t left = ents[i].zeros; left > 0;) {
			size_t c = left > (int64_t)sizeof(zeros) ? sizeof(zeros) : (size_t)left;

			assert_true(archive_write_data(a, zeros, c) == (la_ssize_t)c);
			left -= (int64_t)c;
		}
		if (ents[i].zeros == 0 && size > 0) {
			assert_true(archive_write_data(a, ents[i].data, (size_t)size) == (la_ssize_t)size);
		}
		archive_entry_free(e);
	}
	assert_int_equal(archive_write_close(a), ARCHIVE_OK);
	archive_write_free(a);
}

/*
 * A release of VERSION whose program's --self-test exits PREFLIGHT_EXIT
 * (after printing a line); SELF makes it an updater release; ZEROS adds a
 * file of that many zero bytes.
 */
/* The manifest (512 bytes) and the script (256) of make_release's release. */
static void
release_texts(const char *version, int preflight_exit, int self, char *manifest, char *script)
{
	(void)snprintf(manifest, 512,
	    "{\"name\":\"tandem-agent\",\"version\":\"%s\",\"entrypoint\":\"bin/agent\"%s}",
	    version, self ? ",\"updater_entrypoint\":\"bin/updater\"" : "");
	(void)snprintf(script, 256,
	    "#!/bin/sh\nfor a; do if [ \"$a\" = --self-test ]; then echo self-test says %d; "
	    "exit %d; fi; done\nexit 0\n", preflight_exit, preflight_exit);
}

static void
make_release(struct buf *b, const char *version, int preflight_exit, int self, int64_t zeros)
{
	char manifest[512], script[256];
	struct ent ents[5];
	size_t n = 0;

	release_texts(version, preflight_exit, self, manifest, script);
	ents[n++] = (struct ent){ "bin/", AE_IFDIR, 0755, NULL, 0 };
	ents[n++] = (struct ent){ "bin/agent", AE_IFREG, 0755, script, 0 };
	ents[n++] = (struct ent){ "bin/updater", AE_IFREG, 0755, script, 0 };
	ents[n++] = (struct ent){ "manifest.json", AE_IFREG, 0644, manifest, 0 };
	if (zeros > 0) {
		ents[n++] = (struct ent){ "big", AE_IFREG, 0644, NULL, zeros };
	}
	make_tar(b, ents, n);
}

static void
sha256_hex(const struct buf *b, char out[65])
{
	assert_int_equal(digest_buf(b->p, b->len, out), 0);
}

/* ---- the fake agent ---- */

struct fake {
	uint64_t gen;
	int running;
	char version[128];      /* what `current` held at the last start */
	int starts, stops;
	int fail_stop;
	char bad[4][32];        /* versions whose agent fails its probe */
	char flaky[32];         /* a version whose next flaky_left probes fail */
	int flaky_left;
	char early[32];         /* a version whose agent exits before READY */
	int probes;
};

static struct fake fake;
static const char *base;
static char root[PATH_MAX], oldcwd[PATH_MAX];

static int
fake_stop(void *arg, struct err *e)
{
	(void)arg;
	if (fake.fail_stop) {
		return err_set(e, ERR_IO, "agent: pid 42 still running after SIGTERM");
	}
	fake.stops++;
	fake.running = 0;
	return 0;
}

/* The agent runs what `current` points to (its manifest's version). */
static int
fake_start(void *arg, uint64_t *gen, struct err *e)
{
	struct { char version[128]; } m;
	static const struct json_field fields[] = {
		JSON_F_STR("version", __typeof__(m), version, JSON_REQUIRED, 1),
	};
	char p[PATH_MAX], *buf = NULL;
	size_t len = 0;
	cJSON *o;

	(void)arg;
	tmpdir_fmt(p, sizeof(p), "%s/current/manifest.json", root);
	if (fs_read_file(p, 4096, &buf, &len) != 0) {
		return err_sys(e, "exec %s", p);
	}
	memset(&m, 0, sizeof(m));
	o = json_parse_object(buf, len, NULL);
	free(buf);
	assert_non_null(o);
	assert_int_equal(json_read_fields(o, fields, ARRAY_LEN(fields), 1, &m, NULL), 0);
	cJSON_Delete(o);
	memcpy(fake.version, m.version, sizeof(fake.version));
	fake.running = 1;
	fake.starts++;
	*gen = ++fake.gen;
	if (strcmp(fake.early, m.version) == 0) {
		fake.running = 0; /* spawned, gone before READY (as updater/agent reports it) */
		return err_set(e, ERR_PROBE, "exited before READY (exited with status 1)");
	}
	return 0;
}

static int
fake_probe(void *arg, uint64_t gen, const struct release_info *ri, char **body, struct err *e)
{
	char b[PATH_MAX];

	(void)arg;
	fake.probes++;
	(void)snprintf(b, sizeof(b), "{\"version\":\"%s\"}", fake.version);
	*body = strdup(b);
	if (!fake.running || gen != fake.gen) {
		return err_set(e, ERR_PROBE, "agent exited during the probe");
	}
	if (strcmp(fake.version, ri->version) != 0) {
		return err_set(e, ERR_PROBE, "version is \"%s\", expected \"%s\"", fake.version,
		    ri->version);
	}
	if (fake.flaky_left > 0 && strcmp(fake.flaky, ri->version) == 0) {
		fake.flaky_left--;
		return err_set(e, ERR_PROBE, "agent exited during the probe (flaky)");
	}
	for (size_t i = 0; i < ARRAY_LEN(fake.bad); i++) {
		if (strcmp(fake.bad[i], ri->version) == 0) {
			return err_set(e, ERR_PROBE, "GET /health answered 503");
		}
	}
	return 0;
}

static char *
fake_output(void *arg, uint64_t gen)
{
	char b[64];

	(void)arg;
	(void)snprintf(b, sizeof(b), "output of start %llu\n", (unsigned long long)gen);
	return strdup(b);
}

/* ---- the fixture ---- */

static struct updater_config cfg;
static struct install *in;
static struct install_deps deps;
static int64_t clock_ms;
static char points[8192];

static int64_t
fake_now(void)
{
	clock_ms += 7;
	return clock_ms;
}

static void
record_point(const char *point)
{
	size_t n = strlen(points);

	(void)snprintf(points + n, sizeof(points) - n, "%s\n", point);
}

static int
has_point(const char *point)
{
	char want[128];

	(void)snprintf(want, sizeof(want), "%s\n", point);
	return strncmp(points, want, strlen(want)) == 0 ||
	    (strstr(points, want) != NULL && strstr(points, want)[-1] == '\n');
}

static void
engine_new(void)
{
	struct err e = ERR_INIT;
	char what[256];

	if (install_new(&cfg, &deps, &in, what, sizeof(what), &e) != 0) {
		fail_msg("install_new: %s", err_msg(&e));
	}
}

static int
setup(void **state)
{
	(void)state;
	base = tmpdir_make("install");
	if (base == NULL || getcwd(oldcwd, sizeof(oldcwd)) == NULL) {
		return -1;
	}
	if (snprintf(root, sizeof(root), "%s/install", base) >= (int)sizeof(root) ||
	    mkdir(root, 0755) != 0 || chdir(root) != 0) {
		return -1;
	}
	memset(&cfg, 0, sizeof(cfg));
	if (config_defaults(updater_config_table, updater_config_table_len, &cfg, NULL) != 0) {
		return -1;
	}
	cfg.install_dir = strdup(root);
	cfg.agent_config = strdup("/dev/null");
	cfg.min_free = 0;
	cfg.max_unpacked = 64 << 20;
	cfg.preflight_timeout_ms = 20000;
	cfg.restore_retry_backoff_ms = 5;
	memset(&fake, 0, sizeof(fake));
	install_deps_init(&deps);
	deps.agent.stop = fake_stop;
	deps.agent.start = fake_start;
	deps.agent.probe = fake_probe;
	deps.agent.output = fake_output;
	deps.now_ms = fake_now;
	deps.version = "0.9";
	deps.launcher_config = "/etc/tandem/updater.conf";
	fail_exchange = fail_fsync = low_space = tiny_space = 0;
	points[0] = '\0';
	testhook_set(NULL);
	engine_new();
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	testhook_set(NULL);
	install_free(in);
	in = NULL;
	updater_config_free(&cfg);
	if (chdir(oldcwd) != 0 || tmpdir_remove() != 0) {
		return -1;
	}
	return 0;
}

/* ---- driving the engine ---- */

static void
plan_for(struct install_plan *p, enum install_kind kind, const struct buf *tb,
    const char *sha256)
{
	install_plan_init(p, kind);
	(void)snprintf(p->caller, sizeof(p->caller), "%064d", 7);
	(void)snprintf(p->sha, sizeof(p->sha), "label");
	if (sha256 == NULL) {
		sha256_hex(tb, p->sha256);
	} else {
		(void)snprintf(p->sha256, sizeof(p->sha256), "%s", sha256);
	}
	p->has_sha256 = 1;
	p->confirmed = 1;
}

/* Run PLAN with the tarball TB through the streaming front (lock held here). */
static enum install_result
run_plan(struct install_plan *p, const struct buf *tb, struct install_outcome *oc)
{
	struct install_txn *t = NULL;
	struct err e = ERR_INIT;
	size_t off = 0, step = 1000;

	if (install_lock(in, p->kind, p->id, &e) != 0) {
		install_outcome_init(oc, p->kind);
		err_copy(&oc->err, &e);
		return INSTALL_REFUSED;
	}
	if (install_begin(in, p, &t, &e) != 0) {
		install_outcome_init(oc, p->kind);
		err_copy(&oc->err, &e);
		install_unlock(in);
		return INSTALL_REFUSED;
	}
	while (off < tb->len) {
		size_t n = tb->len - off < step ? tb->len - off : step;

		if (install_feed(t, tb->p + off, n, &e) != 0) {
			break;
		}
		off += n;
		step = step * 2 + 1;
	}
	install_finish(t, oc);
	install_unlock(in);
	return oc->result;
}

static enum install_result
push(const char *version, int preflight_exit, struct install_outcome *oc)
{
	struct install_plan p;
	struct buf tb;
	enum install_result r;

	make_release(&tb, version, preflight_exit, 0, 0);
	plan_for(&p, INSTALL_UPDATE, &tb, NULL);
	r = run_plan(&p, &tb, oc);
	free(tb.p);
	return r;
}

static void
push_ok(const char *version)
{
	struct install_outcome oc;

	if (push(version, 0, &oc) != INSTALL_UPDATED) {
		fail_msg("push %s: %s: %s", version, install_result_name(oc.result),
		    err_msg(&oc.err));
	}
	install_outcome_free(&oc);
}

static enum install_result
rollback(struct install_outcome *oc)
{
	struct install_plan p;
	struct err e = ERR_INIT;
	enum install_result r;

	install_plan_init(&p, INSTALL_ROLLBACK);
	assert_int_equal(install_lock(in, INSTALL_ROLLBACK, p.id, &e), 0);
	install_rollback(in, &p, oc);
	r = oc->result;
	install_unlock(in);
	return r;
}

/* The version of release SLOT, or "" when there is none. */
static const char *
slot_version(const char *slot)
{
	static char v[128];
	struct store st;
	struct release_info ri;

	memset(&st, 0, sizeof(st));
	(void)snprintf(st.root, sizeof(st.root), "%s", root);
	v[0] = '\0';
	if (store_release_read(&st, slot, &ri, NULL) == 1) {
		memcpy(v, ri.version, sizeof(v));
	}
	return v;
}

static int
exists(const char *rel)
{
	char p[PATH_MAX];
	struct stat st;

	tmpdir_fmt(p, sizeof(p), "%s/%.200s", root, rel);
	return lstat(p, &st) == 0;
}

static int
count_dir(const char *rel)
{
	char p[PATH_MAX];
	int n = 0;
	DIR *d;
	struct dirent *de;

	tmpdir_fmt(p, sizeof(p), "%s/%.200s", root, rel);
	d = opendir(p);
	if (d == NULL) {
		return 0;
	}
	while ((de = readdir(d)) != NULL) {
		n += de->d_name[0] != '.';
	}
	closedir(d);
	return n;
}

/* ---- byte-identical snapshots of releases/ ---- */

static char snap_buf[1 << 16];
static const char *snap_skip;

static int
snap_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	char line[PATH_MAX + 200], link[PATH_MAX], hex[65] = "";
	size_t n = strlen(snap_buf);
	ssize_t ln;

	(void)type;
	(void)ftw;
	if (snap_skip != NULL && strstr(path, snap_skip) != NULL) {
		return 0;
	}
	if (S_ISREG(st->st_mode)) {
		struct buf b = { NULL, 0, 0 };

		assert_int_equal(fs_read_file(path, 1 << 26, (char **)&b.p, &b.len), 0);
		sha256_hex(&b, hex);
		free(b.p);
	} else if (S_ISLNK(st->st_mode)) {
		ln = readlink(path, link, sizeof(link) - 1);
		assert_true(ln >= 0);
		link[ln] = '\0';
		(void)snprintf(hex, sizeof(hex), "-> %.60s", link);
	}
	(void)snprintf(line, sizeof(line), "%s %o %lld %s\n", path + strlen(root),
	    (unsigned)st->st_mode, (long long)st->st_size, hex);
	assert_true(n + strlen(line) < sizeof(snap_buf));
	memcpy(snap_buf + n, line, strlen(line) + 1);
	return 0;
}

/* Every file of releases/ (except paths containing SKIP) and `current`, with content digests. */
static char *
snapshot(const char *skip)
{
	char p[PATH_MAX];
	struct stat st;

	snap_buf[0] = '\0';
	snap_skip = skip;
	tmpdir_fmt(p, sizeof(p), "%s/releases", root);
	assert_int_equal(nftw(p, snap_one, 16, FTW_PHYS), 0);
	tmpdir_fmt(p, sizeof(p), "%s/current", root);
	if (lstat(p, &st) == 0) {
		assert_int_equal(snap_one(p, &st, FTW_SL, NULL), 0);
	}
	return strdup(snap_buf);
}

/* Two snapshots must be equal; both are printed when they are not. */
static void
assert_same(const char *before, const char *after)
{
	if (strcmp(before, after) != 0) {
		fprintf(stderr, "before:\n%s\nafter:\n%s\n", before, after);
		fail_msg("releases/ changed");
	}
}

static void
assert_clean(void)
{
	assert_false(exists("releases/active.new"));
	assert_false(exists("releases/prev.old"));
	assert_false(exists("state/journal.json"));
}

static cJSON *
history(void)
{
	cJSON *h = install_history_json(in, NULL);

	assert_non_null(h);
	return h;
}

/* ---- tests ---- */

static void
test_update_and_rollback(void **state)
{
	struct install_outcome oc;
	cJSON *h, *last, *t;

	(void)state;
	assert_int_equal(push("1.0", 0, &oc), INSTALL_UPDATED);
	assert_false(err_failed(&oc.err));
	assert_true(oc.have_release);
	assert_string_equal(oc.release.version, "1.0");
	assert_string_equal(oc.release.sha, "label");
	assert_string_equal(oc.probe_new, "{\"version\":\"1.0\"}");
	assert_null(oc.output);
	/* Every phase has its time, and the total covers them all. */
	assert_true(oc.t.upload_ms > 0 && oc.t.extract_ms > 0 && oc.t.preflight_ms > 0);
	assert_true(oc.t.switch_ms > 0 && oc.t.probe_ms > 0 && oc.t.restore_ms == 0);
	assert_true(oc.t.total_ms >= oc.t.upload_ms + oc.t.extract_ms + oc.t.preflight_ms +
					 oc.t.switch_ms + oc.t.probe_ms);
	install_outcome_free(&oc);
	assert_string_equal(slot_version("active"), "1.0");
	assert_int_equal(fake.starts, 1);
	push_ok("2.0");
	assert_string_equal(slot_version("active"), "2.0");
	assert_string_equal(slot_version("prev"), "1.0");
	assert_string_equal(fake.version, "2.0");

	assert_int_equal(rollback(&oc), INSTALL_ROLLED_BACK);
	assert_int_equal(oc.kind, INSTALL_ROLLBACK);
	assert_false(err_failed(&oc.err));
	assert_string_equal(oc.release.version, "1.0");
	assert_true(oc.t.switch_ms > 0 && oc.t.probe_ms > 0 && oc.t.total_ms > 0);
	install_outcome_free(&oc);
	assert_string_equal(slot_version("active"), "1.0");
	assert_string_equal(slot_version("prev"), "2.0");
	assert_string_equal(fake.version, "1.0");
	assert_clean();

	h = history();
	assert_int_equal(cJSON_GetArraySize(h), 3);
	last = cJSON_GetArrayItem(h, 2);
	assert_string_equal(cJSON_GetObjectItem(last, "kind")->valuestring, "rollback");
	assert_string_equal(cJSON_GetObjectItem(last, "result")->valuestring, "rolled_back");
	assert_string_equal(cJSON_GetObjectItem(last, "version")->valuestring, "1.0");
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(last, "error")));
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(last, "error_kind")));
	t = cJSON_GetObjectItem(last, "timings");
	assert_true(cJSON_GetObjectItem(t, "switch_ms")->valuedouble > 0);
	assert_true(cJSON_GetObjectItem(t, "probe_ms")->valuedouble > 0);
	assert_non_null(cJSON_GetObjectItem(t, "restore_ms"));
	t = cJSON_GetObjectItem(cJSON_GetArrayItem(h, 0), "timings");
	assert_true(cJSON_GetObjectItem(t, "extract_ms")->valuedouble > 0);
	assert_true(cJSON_GetObjectItem(t, "upload_ms")->valuedouble > 0);
	cJSON_Delete(h);
}

/*
 * state/both_bad.json's one reader: exactly {"attempts": N}, N an integer
 * in 0..INSTALL_BOTH_BAD_MAX_ATTEMPTS; anything else is refused with a
 * reason and leaves the count alone. What the writer writes reads back.
 */
static void
test_both_bad_file_format(void **state)
{
	static const char *const bad[] = {
		"", " ", "{", "{\"attempts\":", "{\"attempts\":3", "{\"attempts\":3}x",
		"[3]", "3", "null", "{}", "{\"attempts\":null}", "{\"attempts\":\"3\"}",
		"{\"attempts\":true}", "{\"attempts\":[3]}", "{\"attempts\":{}}",
		"{\"attempts\":-1}", "{\"attempts\":1.5}", "{\"attempts\":1000001}",
		"{\"attempts\":4294967296}", "{\"attempts\":18446744073709551617}",
		"{\"attempts\":1e300}", "{\"attempts\":1e999}", "{\"attempts\":-0.5}",
		"{\"attempts\":01}", "{\"attempts\":3,\"attempts\":4}", "{\"attempts\":3,\"x\":1}",
		"{\"Attempts\":3}",
	};
	const unsigned good[] = { 0, 1, 5, INSTALL_BOTH_BAD_MAX_ATTEMPTS };
	struct err e = ERR_INIT;
	unsigned a;
	char buf[64], *big;
	int n;

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		a = 77;
		err_clear(&e);
		if (install_both_bad_parse(bad[i], strlen(bad[i]), &a, &e) != -1) {
			fail_msg("accepted %s", bad[i]);
		}
		assert_int_equal(a, 77);
		assert_int_equal(e.kind, ERR_FORMAT);
	}
	/* A NUL inside, and a file bigger than any we write. */
	a = 77;
	assert_int_equal(install_both_bad_parse("{\"attempts\":3}\0", 15, &a, &e), -1);
	big = malloc(INSTALL_BOTH_BAD_MAX_BYTES + 2);
	assert_non_null(big);
	memset(big, ' ', INSTALL_BOTH_BAD_MAX_BYTES + 2);
	memcpy(big, "{\"attempts\":3}", 14);
	assert_int_equal(install_both_bad_parse(big, INSTALL_BOTH_BAD_MAX_BYTES + 2, &a, &e), -1);
	assert_int_equal(a, 77);
	free(big);
	/* Whitespace is fine; the writer's output reads back; the count is capped. */
	{
		static const char spaced[] = " {\"attempts\" : 7 }\n";

		assert_int_equal(install_both_bad_parse(spaced, strlen(spaced), &a, &e), 0);
	}
	assert_int_equal(a, 7);
	for (size_t i = 0; i < ARRAY_LEN(good); i++) {
		n = install_both_bad_format(good[i], buf, sizeof(buf));
		assert_true(n > 0);
		assert_int_equal(install_both_bad_parse(buf, (size_t)n, &a, &e), 0);
		assert_int_equal(a, good[i]);
	}
	n = install_both_bad_format(UINT32_MAX, buf, sizeof(buf));
	assert_int_equal(install_both_bad_parse(buf, (size_t)n, &a, &e), 0);
	assert_int_equal(a, INSTALL_BOTH_BAD_MAX_ATTEMPTS);
	assert_int_equal(install_both_bad_format(1, buf, 4), -1); /* no room */
}

/*
 * An agent gone before READY fails its start at once: nothing is probed
 * (whatever answers on the port is not this release), its output is kept,
 * and the install rolls back as for a failed probe.
 */
static void
test_exit_before_ready_rolls_back(void **state)
{
	struct install_outcome oc;
	int probes;

	(void)state;
	push_ok("1.0");
	(void)snprintf(fake.early, sizeof(fake.early), "2.0");
	probes = fake.probes;
	assert_int_equal(push("2.0", 0, &oc), INSTALL_ROLLED_BACK);
	assert_int_equal(fake.probes - probes, 1); /* the restored 1.0 only */
	assert_int_equal(oc.err.kind, ERR_PROBE);
	assert_non_null(strstr(err_msg(&oc.err),
	    "new release did not start: agent: exited before READY (exited with status 1)"));
	assert_string_equal(oc.output, "output of start 2\n");
	assert_null(oc.probe_new);
	assert_string_equal(oc.release.version, "1.0");
	install_outcome_free(&oc);
	assert_int_equal(count_dir("releases/failed"), 1);
	fake.early[0] = '\0';
}

static void
test_probe_failure_rolls_back(void **state)
{
	struct install_outcome oc;
	char *before;
	cJSON *h, *last;

	(void)state;
	push_ok("1.0");
	push_ok("2.0");
	before = snapshot("/failed");
	(void)snprintf(fake.bad[0], sizeof(fake.bad[0]), "3.0");
	assert_int_equal(push("3.0", 0, &oc), INSTALL_ROLLED_BACK);
	assert_int_equal(oc.err.kind, ERR_PROBE);
	assert_int_equal(err_http_status(oc.err.kind), 422); /* api.c answers 409 by the result */
	assert_non_null(strstr(err_msg(&oc.err), "new release failed its probe: GET /health"));
	/* The failed agent's output and the restored agent's probe, each in its own field. */
	assert_string_equal(oc.output, "output of start 3\n");
	assert_string_equal(oc.probe_new, "{\"version\":\"3.0\"}");
	assert_string_equal(oc.probe_restored, "{\"version\":\"2.0\"}");
	assert_string_equal(oc.release.version, "2.0");
	assert_true(oc.t.probe_ms > 0 && oc.t.restore_ms > 0);
	install_outcome_free(&oc);
	{
		char *after = snapshot("/failed");

		assert_same(before, after);
		free(after);
	}
	free(before);
	assert_int_equal(count_dir("releases/failed"), 1);
	assert_string_equal(fake.version, "2.0");
	assert_clean();
	h = history();
	last = cJSON_GetArrayItem(h, cJSON_GetArraySize(h) - 1);
	assert_string_equal(cJSON_GetObjectItem(last, "result")->valuestring, "rolled_back");
	assert_string_equal(cJSON_GetObjectItem(last, "error_kind")->valuestring, "probe_failed");
	assert_string_equal(cJSON_GetObjectItem(last, "version")->valuestring, "3.0");
	assert_true(cJSON_GetObjectItem(cJSON_GetObjectItem(last, "timings"),
	    "restore_ms")->valuedouble > 0);
	cJSON_Delete(h);
}

static void
test_restore_probe_retries(void **state)
{
	struct install_outcome oc;
	struct install_status st;
	int starts;

	(void)state;
	push_ok("1.0");
	/* The restored release fails twice, then passes: the third attempt of three. */
	(void)snprintf(fake.bad[0], sizeof(fake.bad[0]), "3.0");
	(void)snprintf(fake.flaky, sizeof(fake.flaky), "1.0");
	fake.flaky_left = 2;
	starts = fake.starts;
	assert_int_equal(push("3.0", 0, &oc), INSTALL_ROLLED_BACK);
	assert_non_null(strstr(err_msg(&oc.err), "(the restored release passed at attempt 3)"));
	install_outcome_free(&oc);
	assert_int_equal(fake.starts - starts, 1 + 3); /* the new release, then 1.0 three times */
	assert_int_equal(fake.flaky_left, 0);
	install_status(in, &st);
	assert_false(st.both_bad);
	assert_string_equal(slot_version("active"), "1.0");
	assert_clean();

	/* Three failures of three attempts: both bad. */
	fake.flaky_left = 3;
	assert_int_equal(push("3.0", 0, &oc), INSTALL_BOTH_BAD);
	assert_non_null(strstr(err_msg(&oc.err), "and the restored release failed too"));
	install_outcome_free(&oc);
	install_status(in, &st);
	assert_true(st.both_bad);
	assert_int_equal(st.retry_attempts, 0);

	/* No retries configured: the first failure decides, as before. */
	cfg.restore_probe_retries = 0;
	push_ok("4.0");
	fake.flaky_left = 1;
	(void)snprintf(fake.flaky, sizeof(fake.flaky), "4.0");
	assert_int_equal(push("3.0", 0, &oc), INSTALL_BOTH_BAD);
	install_outcome_free(&oc);
	assert_int_equal(fake.flaky_left, 0);
}

static void
test_both_bad_and_recovery_by_push(void **state)
{
	struct install_outcome oc;
	struct install_status st;

	(void)state;
	push_ok("1.0");
	/* The installed release breaks behind our back; a bad push finds both bad. */
	(void)snprintf(fake.bad[0], sizeof(fake.bad[0]), "1.0");
	(void)snprintf(fake.bad[1], sizeof(fake.bad[1]), "3.0");
	assert_int_equal(push("3.0", 0, &oc), INSTALL_BOTH_BAD);
	assert_int_equal(oc.err.kind, ERR_PROBE);
	assert_non_null(strstr(err_msg(&oc.err), "and the restored release failed too"));
	assert_string_equal(oc.probe_restored, "{\"version\":\"1.0\"}");
	install_outcome_free(&oc);
	install_status(in, &st);
	assert_true(st.both_bad);
	assert_string_equal(slot_version("active"), "1.0");
	assert_clean();
	/* A good push clears it. */
	push_ok("4.0");
	install_status(in, &st);
	assert_false(st.both_bad);

	/* A rollback whose target fails and whose restore fails its probe too. */
	(void)snprintf(fake.bad[0], sizeof(fake.bad[0]), "1.0");
	(void)snprintf(fake.bad[1], sizeof(fake.bad[1]), "4.0");
	assert_int_equal(rollback(&oc), INSTALL_BOTH_BAD);
	assert_non_null(strstr(err_msg(&oc.err), "previous release failed its probe ("));
	assert_non_null(strstr(err_msg(&oc.err), "the restored one failed too"));
	install_outcome_free(&oc);
	assert_string_equal(slot_version("active"), "4.0");
	/* ... and one whose restore passes: "restored". */
	fake.bad[1][0] = '\0';
	assert_int_equal(rollback(&oc), INSTALL_RESTORED);
	assert_int_equal(oc.err.kind, ERR_PROBE);
	assert_string_equal(oc.probe_restored, "{\"version\":\"4.0\"}");
	install_outcome_free(&oc);
	assert_string_equal(slot_version("active"), "4.0");
	assert_string_equal(slot_version("prev"), "1.0");
	assert_clean();
}

/* Arms the exchange failure right after the new agent started (restore comes next). */
static void
arm_at_agent_started(const char *point)
{
	if (strcmp(point, "update.agent_started") == 0) {
		fail_exchange = 1;
	}
}

static void
test_restore_fails_is_failed(void **state)
{
	struct install_outcome oc;

	(void)state;
	push_ok("1.0");
	push_ok("2.0");
	(void)snprintf(fake.bad[0], sizeof(fake.bad[0]), "3.0");
	testhook_set(arm_at_agent_started);
	assert_int_equal(push("3.0", 0, &oc), INSTALL_FAILED);
	testhook_set(NULL);
	assert_int_equal(oc.err.kind, ERR_NOSPACE);
	assert_non_null(strstr(err_msg(&oc.err), "new release failed (GET /health answered 503); "
						 "restoring failed: exchange"));
	assert_string_equal(oc.output, "output of start 3\n");
	install_outcome_free(&oc);
	/* The journal is left for recovery, which puts the old release back. */
	assert_true(exists("state/journal.json"));
	install_free(in);
	in = NULL;
	engine_new();
	assert_string_equal(slot_version("active"), "2.0");
	assert_string_equal(slot_version("prev"), "1.0");
	assert_clean();
}

static void
test_first_install_fails(void **state)
{
	struct install_outcome oc;

	(void)state;
	(void)snprintf(fake.bad[0], sizeof(fake.bad[0]), "1.0");
	assert_int_equal(push("1.0", 0, &oc), INSTALL_FAILED);
	assert_int_equal(oc.err.kind, ERR_PROBE);
	assert_int_equal(err_http_status(oc.err.kind), 422);
	assert_non_null(strstr(err_msg(&oc.err), "no previous release"));
	assert_string_equal(oc.output, "output of start 1\n");
	assert_null(oc.probe_restored);
	install_outcome_free(&oc);
	assert_false(exists("releases/active"));
	assert_false(exists("releases/prev"));
	assert_false(exists("current"));
	assert_int_equal(count_dir("releases/failed"), 1);
	assert_false(install_active(in, NULL));
	assert_clean();
	/* A good one afterwards is the first release. */
	push_ok("1.1");
	assert_string_equal(slot_version("active"), "1.1");
}

/* Every refusal: the right kind, releases/ byte-identical, no journal, a history entry. */

struct unlock_later {
	struct install *in;
};

/* Releases the operation lock from another thread: the waiting caller gets
 * the lock whichever thread runs first (without the wait it would be busy
 * whenever it runs first). */
static void *
unlock_later(void *arg)
{
	struct unlock_later *ul = arg;

	install_unlock(ul->in);
	return NULL;
}

static void
test_refusals_change_nothing(void **state)
{
	struct install_outcome oc;
	struct install_plan p, p2;
	struct install_txn *t = NULL;
	struct err e = ERR_INIT;
	struct buf tb, bad;
	char *before, *after;
	const struct ent unsafe[] = {
		{ "../evil", AE_IFREG, 0644, "x", 0 },
	};
	const struct ent no_manifest[] = {
		{ "bin/agent", AE_IFREG, 0755, "#!/bin/sh\n", 0 },
	};
	cJSON *h;
	int refused = 0;

	(void)state;
	push_ok("1.0");
	push_ok("2.0");
	before = snapshot(NULL);
	make_release(&tb, "3.0", 0, 0, 0);

	/* Digest mismatch, missing, malformed. */
	plan_for(&p, INSTALL_UPDATE, &tb, "0000000000000000000000000000000000000000000000000000000000000000");
	assert_int_equal(run_plan(&p, &tb, &oc), INSTALL_REFUSED);
	assert_int_equal(oc.err.kind, ERR_DIGEST);
	assert_int_equal(err_http_status(oc.err.kind), 422);
	install_outcome_free(&oc);
	refused++;
	plan_for(&p, INSTALL_UPDATE, &tb, NULL);
	p.has_sha256 = 0;
	p.sha256[0] = '\0';
	assert_int_equal(run_plan(&p, &tb, &oc), INSTALL_REFUSED);
	assert_int_equal(oc.err.kind, ERR_BAD_REQUEST);
	assert_string_equal(oc.field, "sha256");
	assert_string_equal(err_msg(&oc.err), "missing field 'sha256'");
	install_outcome_free(&oc);
	refused++;
	plan_for(&p, INSTALL_UPDATE, &tb, "xyz");
	assert_int_equal(run_plan(&p, &tb, &oc), INSTALL_REFUSED);
	assert_string_equal(err_msg(&oc.err), "field 'sha256' must be 64 hex digits");
	install_outcome_free(&oc);
	refused++;
	/* Not gzip, an unsafe entry, no manifest. */
	bad.p = (unsigned char *)strdup("this is not a tarball");
	bad.len = strlen((char *)bad.p);
	plan_for(&p2, INSTALL_UPDATE, &bad, NULL);
	assert_int_equal(run_plan(&p2, &bad, &oc), INSTALL_REFUSED);
	assert_int_equal(oc.err.kind, ERR_FORMAT);
	install_outcome_free(&oc);
	free(bad.p);
	refused++;
	make_tar(&bad, unsafe, ARRAY_LEN(unsafe));
	plan_for(&p2, INSTALL_UPDATE, &bad, NULL);
	assert_int_equal(run_plan(&p2, &bad, &oc), INSTALL_REFUSED);
	assert_int_equal(oc.err.kind, ERR_UNSAFE);
	assert_non_null(strstr(err_msg(&oc.err), "'..'"));
	install_outcome_free(&oc);
	free(bad.p);
	refused++;
	make_tar(&bad, no_manifest, ARRAY_LEN(no_manifest));
	plan_for(&p2, INSTALL_UPDATE, &bad, NULL);
	assert_int_equal(run_plan(&p2, &bad, &oc), INSTALL_REFUSED);
	assert_int_equal(oc.err.kind, ERR_FORMAT);
	assert_non_null(strstr(err_msg(&oc.err), "manifest.json"));
	install_outcome_free(&oc);
	free(bad.p);
	refused++;

	/* The preflight fails: its output comes back. */
	assert_int_equal(push("3.1", 7, &oc), INSTALL_REFUSED);
	assert_int_equal(oc.err.kind, ERR_PREFLIGHT);
	assert_string_equal(err_msg(&oc.err), "preflight bin/agent exited with status 7");
	assert_non_null(oc.output);
	assert_non_null(strstr(oc.output, "self-test says 7"));
	assert_true(oc.t.preflight_ms > 0);
	install_outcome_free(&oc);
	refused++;

	/* The agent will not stop: nothing switched, the staging is gone. */
	fake.fail_stop = 1;
	assert_int_equal(push("3.2", 0, &oc), INSTALL_REFUSED);
	assert_int_equal(oc.err.kind, ERR_IO);
	assert_non_null(strstr(err_msg(&oc.err), "stop the running agent: "));
	install_outcome_free(&oc);
	fake.fail_stop = 0;
	refused++;

	/* A request that ends without its body end (client gone): no history. */
	plan_for(&p, INSTALL_UPDATE, &tb, NULL);
	assert_int_equal(install_lock(in, INSTALL_UPDATE, p.id, &e), 0);
	assert_int_equal(install_begin(in, &p, &t, &e), 0);
	assert_int_equal(install_feed(t, tb.p, tb.len / 2, &e), 0);
	assert_true(exists("releases/active.new"));
	install_abort(t);
	install_unlock(in);

	/* One operation at a time. */
	assert_int_equal(install_lock(in, INSTALL_UPDATE, p.id, &e), 0);
	assert_int_equal(install_lock(in, INSTALL_ROLLBACK, p2.id, &e), -1);
	assert_int_equal(e.kind, ERR_BUSY);
	assert_non_null(strstr(err_msg(&e), p.id));
	/* A bounded wait for a lock that stays taken ends busy too. */
	e = (struct err)ERR_INIT;
	assert_int_equal(install_lock_wait(in, INSTALL_ROLLBACK, p2.id, 50, &e), -1);
	assert_int_equal(e.kind, ERR_BUSY);
	install_unlock(in);

	/* A waiter gets the lock as soon as the running operation releases it. */
	{
		struct unlock_later ul = { .in = in };
		pthread_t th;

		assert_int_equal(install_lock(in, INSTALL_UPDATE, p.id, &e), 0);
		assert_int_equal(pthread_create(&th, NULL, unlock_later, &ul), 0);
		assert_int_equal(install_lock_wait(in, INSTALL_ROLLBACK, p2.id, 60000, &e), 0);
		assert_int_equal(pthread_join(th, NULL), 0);
		install_unlock(in);
	}

	after = snapshot(NULL);
	assert_same(before, after);
	free(after);
	free(before);
	assert_clean();
	assert_int_equal(count_dir("releases/failed"), 0);
	assert_string_equal(fake.version, "2.0");
	h = history();
	assert_int_equal(cJSON_GetArraySize(h), 2 + refused);
	assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(h, 2), "result")->valuestring,
	    "refused");
	assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(h, 2), "error_kind")->valuestring,
	    "digest_mismatch");
	cJSON_Delete(h);
	/* And a good push still works after all that, its digest in upper case. */
	plan_for(&p, INSTALL_UPDATE, &tb, NULL);
	for (char *c = p.sha256; *c != '\0'; c++) {
		*c = (char)((*c >= 'a' && *c <= 'f') ? *c - 'a' + 'A' : *c);
	}
	assert_int_equal(run_plan(&p, &tb, &oc), INSTALL_UPDATED);
	install_outcome_free(&oc);
	free(tb.p);
	assert_string_equal(slot_version("active"), "3.0");
}

static void
test_no_space(void **state)
{
	struct install_outcome oc;
	struct install_plan p;
	struct buf tb;
	char *before, *before_nf, *after;

	(void)state;
	push_ok("1.0");
	push_ok("2.0");
	before = snapshot(NULL);
	before_nf = snapshot("/failed");

	/* 1. Below min_free when the tarball starts. */
	cfg.min_free = 16 << 20;
	low_space = 1;
	assert_int_equal(push("3.0", 0, &oc), INSTALL_REFUSED);
	assert_int_equal(oc.err.kind, ERR_NOSPACE);
	assert_non_null(strstr(err_msg(&oc.err), "not enough disk space"));
	install_outcome_free(&oc);
	low_space = 0;

	/* 2. The disk fills up while extracting (the check every 4 MiB written). */
	make_release(&tb, "3.0", 0, 0, 6 << 20);
	plan_for(&p, INSTALL_UPDATE, &tb, NULL);
	{
		struct install_txn *t = NULL;
		struct err e = ERR_INIT;

		assert_int_equal(install_lock(in, INSTALL_UPDATE, p.id, &e), 0);
		assert_int_equal(install_begin(in, &p, &t, &e), 0);
		low_space = 1;
		for (size_t off = 0; off < tb.len; off += 4096) {
			if (install_feed(t, tb.p + off, tb.len - off < 4096 ? tb.len - off : 4096,
				&e) != 0) {
				break;
			}
		}
		install_finish(t, &oc);
		install_unlock(in);
		low_space = 0;
	}
	assert_int_equal(oc.result, INSTALL_REFUSED);
	assert_int_equal(oc.err.kind, ERR_NOSPACE);
	assert_int_equal(err_http_status(oc.err.kind), 507);
	install_outcome_free(&oc);
	free(tb.p);
	cfg.min_free = 0;

	/* 3. release.json cannot be made durable. */
	make_release(&tb, "3.0", 0, 0, 0);
	plan_for(&p, INSTALL_UPDATE, &tb, NULL);
	{
		struct install_txn *t = NULL;
		struct err e = ERR_INIT;

		assert_int_equal(install_lock(in, INSTALL_UPDATE, p.id, &e), 0);
		assert_int_equal(install_begin(in, &p, &t, &e), 0);
		assert_int_equal(install_feed(t, tb.p, tb.len, &e), 0);
		fail_fsync = 1;
		install_finish(t, &oc);
		install_unlock(in);
		fail_fsync = 0;
	}
	assert_int_equal(oc.result, INSTALL_REFUSED);
	assert_int_equal(oc.err.kind, ERR_NOSPACE);
	assert_non_null(strstr(err_msg(&oc.err), "release.json"));
	install_outcome_free(&oc);
	after = snapshot(NULL);
	assert_same(before, after);
	free(after);
	assert_clean();

	/*
	 * 4. The switch's exchange fails: the store restores everything (the new
	 * release goes to failed/), the old agent runs again, and the answer is
	 * still a full disk (507), not the 500 of a restore.
	 */
	fail_exchange = 1;
	assert_int_equal(run_plan(&p, &tb, &oc), INSTALL_REFUSED);
	assert_int_equal(fail_exchange, 0);
	assert_int_equal(oc.err.kind, ERR_NOSPACE);
	assert_int_equal(err_http_status(oc.err.kind), 507);
	assert_non_null(strstr(err_msg(&oc.err), "exchange releases/active.new and releases/active"));
	install_outcome_free(&oc);
	free(tb.p);
	after = snapshot("/failed");
	assert_same(before_nf, after);
	free(after);
	assert_int_equal(count_dir("releases/failed"), 1);
	assert_string_equal(slot_version("active"), "2.0");
	assert_string_equal(slot_version("prev"), "1.0");
	assert_string_equal(fake.version, "2.0");
	assert_true(fake.running);
	assert_clean();

	/* 5. A rollback whose exchange fails: 507 too, nothing changed. */
	fail_exchange = 1;
	assert_int_equal(rollback(&oc), INSTALL_REFUSED);
	assert_int_equal(oc.err.kind, ERR_NOSPACE);
	install_outcome_free(&oc);
	assert_string_equal(slot_version("active"), "2.0");
	assert_string_equal(fake.version, "2.0");
	assert_clean();
	after = snapshot("/failed");
	assert_same(before_nf, after);
	free(after);

	/*
	 * 6. min_free 0 and less than INSTALL_HEADROOM free: the engine's own
	 * records would not fit, so an update and a rollback are refused before
	 * anything is written and the agent is not even stopped.
	 */
	{
		int stops = fake.stops, starts = fake.starts;

		tiny_space = 1;
		assert_int_equal(push("3.0", 0, &oc), INSTALL_REFUSED);
		assert_int_equal(oc.err.kind, ERR_NOSPACE);
		assert_non_null(strstr(err_msg(&oc.err), "not enough disk space"));
		install_outcome_free(&oc);
		assert_int_equal(rollback(&oc), INSTALL_REFUSED);
		assert_int_equal(oc.err.kind, ERR_NOSPACE);
		assert_int_equal(err_http_status(oc.err.kind), 507);
		install_outcome_free(&oc);
		tiny_space = 0;
		assert_int_equal(fake.stops, stops);
		assert_int_equal(fake.starts, starts);
		assert_string_equal(slot_version("active"), "2.0");
		assert_string_equal(slot_version("prev"), "1.0");
		assert_clean();
	}
	free(before);
	free(before_nf);
}

static void
test_seed(void **state)
{
	struct install_outcome oc;
	struct buf tb;
	char path[PATH_MAX];
	cJSON *h;

	(void)state;
	(void)snprintf(path, sizeof(path), "%s/seed.tar.gz", base);
	make_release(&tb, "0.5", 0, 0, 0);
	assert_int_equal(fs_write_atomic(path, tb.p, tb.len, 0644), 0);
	free(tb.p);
	(void)snprintf(fake.bad[0], sizeof(fake.bad[0]), "0.5");
	assert_int_equal(install_seed(in, path, &oc), -1);
	assert_int_equal(oc.result, INSTALL_FAILED);
	assert_non_null(strstr(err_msg(&oc.err), "probe"));
	install_outcome_free(&oc);
	assert_false(install_active(in, NULL));
	assert_false(exists("current"));
	fake.bad[0][0] = '\0';
	assert_int_equal(install_seed(in, path, &oc), 0);
	assert_int_equal(oc.result, INSTALL_UPDATED);
	assert_string_equal(oc.release.sha, "seed");
	assert_string_equal(oc.release.installed_by, "seed");
	install_outcome_free(&oc);
	assert_string_equal(slot_version("active"), "0.5");
	/* A seed leaves no history (its outcome is the daemon's start). */
	h = history();
	assert_int_equal(cJSON_GetArraySize(h), 0);
	cJSON_Delete(h);
	assert_int_equal(install_seed(in, "/nonexistent/seed.tgz", &oc), -1);
	assert_int_equal(oc.err.kind, ERR_IO);
	install_outcome_free(&oc);
	assert_clean();
}

static void
test_self_update(void **state)
{
	struct install_outcome oc;
	struct install_status st;
	struct install_plan p;
	struct handover h;
	struct buf tb;
	struct store tree;
	char p2[PATH_MAX], link[64];
	cJSON *last;
	ssize_t n;
	int stops, starts;

	(void)state;
	push_ok("1.0");
	stops = fake.stops;
	starts = fake.starts;
	make_release(&tb, "2.0", 0, 1, 0);
	plan_for(&p, INSTALL_SELF, &tb, NULL);
	assert_int_equal(run_plan(&p, &tb, &oc), INSTALL_QUEUED);
	assert_string_equal(oc.release.version, "2.0");
	assert_string_equal(oc.from_version, "0.9");
	assert_true(oc.t.preflight_ms > 0 && oc.t.switch_ms > 0);
	install_outcome_free(&oc);
	free(tb.p);
	install_status(in, &st);
	assert_true(st.handing_over);
	/* The agent was never touched; the updater's tree switched; the record is there. */
	assert_int_equal(fake.stops, stops);
	assert_int_equal(fake.starts, starts);
	assert_int_equal(handover_read(install_self_root(in), &h, NULL), 1);
	assert_string_equal(h.new_version, "2.0");
	assert_string_equal(h.old_version, "0.9");
	assert_int_equal(h.starts, 0);
	tmpdir_fmt(p2, sizeof(p2), "%s/updater/current", root);
	n = readlink(p2, link, sizeof(link) - 1);
	assert_true(n > 0);
	link[n] = '\0';
	assert_string_equal(link, "releases/active");
	assert_string_equal(slot_version("active"), "1.0");

	/* The launcher's half: it is pending, then committed. */
	memset(&tree, 0, sizeof(tree));
	assert_int_equal(store_init(&tree, install_self_root(in), 3, NULL), 0);
	memset(&h, 0, sizeof(h));
	assert_int_equal(install_self_pending(&tree, root, &h), 1);
	assert_string_equal(h.new_version, "2.0");
	install_self_commit(&tree, root, &h);
	assert_int_equal(handover_read(install_self_root(in), &h, NULL), 0);
	tmpdir_fmt(p2, sizeof(p2), "%s/updater/state/journal.json", root);
	assert_int_equal(access(p2, F_OK), -1);
	last = handover_last(install_self_root(in));
	assert_string_equal(cJSON_GetObjectItem(last, "result")->valuestring, "committed");
	cJSON_Delete(last);

	/* A second one, reverted: the tree goes back to 2.0, the new one to failed/. */
	make_release(&tb, "3.0", 0, 1, 0);
	plan_for(&p, INSTALL_SELF, &tb, NULL);
	assert_int_equal(run_plan(&p, &tb, &oc), INSTALL_QUEUED);
	install_outcome_free(&oc);
	/* While it is on probation another self-update is refused. */
	plan_for(&p, INSTALL_SELF, &tb, NULL);
	assert_int_equal(run_plan(&p, &tb, &oc), INSTALL_REFUSED);
	assert_int_equal(oc.err.kind, ERR_BUSY);
	assert_non_null(strstr(err_msg(&oc.err), "still on probation"));
	install_outcome_free(&oc);
	free(tb.p);
	assert_int_equal(install_self_pending(&tree, root, &h), 1);
	install_self_revert(&tree, root, &h, "updater exited with status 3 before serving");
	last = handover_last(install_self_root(in));
	assert_string_equal(cJSON_GetObjectItem(last, "result")->valuestring, "reverted");
	cJSON_Delete(last);
	{
		struct release_info ri;

		assert_int_equal(store_release_read(&tree, "active", &ri, NULL), 1);
		assert_string_equal(ri.version, "2.0");
	}
	tmpdir_fmt(p2, sizeof(p2), "%s/updater/releases/failed", root);
	assert_int_equal(count_dir("updater/releases/failed"), 1);
	assert_int_equal(install_self_pending(&tree, root, &h), 0);
}

/* A self-update's request id: on its queued and launcher lines; the same id never runs twice. */
static void
test_self_update_request_id(void **state)
{
	struct install_outcome oc;
	struct install_plan p;
	struct handover h;
	struct buf tb;
	struct store tree;
	cJSON *hist;
	const char *res[] = { "queued", "committed" };

	(void)state;
	push_ok("1.0");
	make_release(&tb, "2.0", 0, 1, 0);
	plan_for(&p, INSTALL_SELF, &tb, NULL);
	(void)snprintf(p.request_id, sizeof(p.request_id), "self-1");
	assert_int_equal(run_plan(&p, &tb, &oc), INSTALL_QUEUED);
	install_outcome_free(&oc);
	/* Written before the answer: a client that lost it finds the self-update queued. */
	hist = install_history_json(in, "self-1");
	assert_int_equal(cJSON_GetArraySize(hist), 1);
	cJSON_Delete(hist);
	memset(&tree, 0, sizeof(tree));
	assert_int_equal(store_init(&tree, install_self_root(in), 3, NULL), 0);
	memset(&h, 0, sizeof(h));
	assert_int_equal(install_self_pending(&tree, root, &h), 1);
	install_self_commit(&tree, root, &h);
	hist = install_history_json(in, "self-1");
	assert_int_equal(cJSON_GetArraySize(hist), 2);
	for (int i = 0; i < 2; i++) {
		cJSON *e = cJSON_GetArrayItem(hist, i);

		assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(e, "kind")),
		    "update-self");
		assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(e, "result")), res[i]);
		assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(e, "version")), "2.0");
	}
	cJSON_Delete(hist);

	/* Sent again with that id: refused, no handover, no line that would hide the record. */
	plan_for(&p, INSTALL_SELF, &tb, NULL);
	(void)snprintf(p.request_id, sizeof(p.request_id), "self-1");
	assert_int_equal(run_plan(&p, &tb, &oc), INSTALL_REFUSED);
	assert_int_equal(oc.err.kind, ERR_CONFLICT);
	assert_non_null(strstr(err_msg(&oc.err), "already ran (committed)"));
	install_outcome_free(&oc);
	assert_int_equal(handover_read(install_self_root(in), &h, NULL), 0);
	hist = install_history_json(in, "self-1");
	assert_int_equal(cJSON_GetArraySize(hist), 2);
	cJSON_Delete(hist);
	/* Another id (or the agent's push under this one) runs. */
	plan_for(&p, INSTALL_SELF, &tb, NULL);
	(void)snprintf(p.request_id, sizeof(p.request_id), "self-2");
	assert_int_equal(run_plan(&p, &tb, &oc), INSTALL_QUEUED);
	install_outcome_free(&oc);
	assert_int_equal(install_self_pending(&tree, root, &h), 1);
	install_self_revert(&tree, root, &h, "not healthy in time");
	/* Reverted is an outcome too: the request ran, it is not run again. */
	plan_for(&p, INSTALL_SELF, &tb, NULL);
	(void)snprintf(p.request_id, sizeof(p.request_id), "self-2");
	assert_int_equal(run_plan(&p, &tb, &oc), INSTALL_REFUSED);
	assert_int_equal(oc.err.kind, ERR_CONFLICT);
	assert_non_null(strstr(err_msg(&oc.err), "already ran (reverted)"));
	install_outcome_free(&oc);
	free(tb.p);
	assert_int_equal(handover_read(install_self_root(in), &h, NULL), 0);
}

/*
 * The delta of make_release(VERSION, 0, 1, 0) into *D: files.json, plus
 * manifest.json when WITH_MANIFEST (bin/ comes from the updater's own
 * releases); *SHA256 the full release's digest.
 */
static void
make_self_delta(struct buf *d, const char *version, int with_manifest, char sha256[65])
{
	struct release_files f = RELEASE_FILES_INIT;
	struct err e = ERR_INIT;
	char manifest[512], script[256], ds[65], dm[65];
	struct ent ents[2];
	struct buf full;
	char *fj = NULL, *raw = NULL;
	size_t fjlen = 0, n = 0;

	release_texts(version, 0, 1, manifest, script);
	make_release(&full, version, 0, 1, 0);
	sha256_hex(&full, sha256);
	free(full.p);
	assert_int_equal(digest_buf(script, strlen(script), ds), 0);
	assert_int_equal(digest_buf(manifest, strlen(manifest), dm), 0);
	assert_int_equal(release_files_add(&f, "bin", RELEASE_FILES_DIR, 0755, 0, NULL, NULL, &e), 0);
	assert_int_equal(release_files_add(&f, "bin/agent", RELEASE_FILES_REG, 0755, strlen(script),
	    ds, NULL, &e), 0);
	assert_int_equal(release_files_add(&f, "bin/updater", RELEASE_FILES_REG, 0755,
	    strlen(script), ds, NULL, &e), 0);
	assert_int_equal(release_files_add(&f, "manifest.json", RELEASE_FILES_REG, 0644,
	    strlen(manifest), dm, NULL, &e), 0);
	assert_int_equal(release_files_format(&f, &raw, &fjlen, &e), 0);
	release_files_free(&f);
	/* make_tar takes text: the canonical bytes carry no NUL of their own. */
	fj = calloc(1, fjlen + 1);
	assert_non_null(fj);
	memcpy(fj, raw, fjlen);
	free(raw);
	ents[n++] = (struct ent){ "files.json", AE_IFREG, 0644, fj, 0 };
	if (with_manifest) {
		ents[n++] = (struct ent){ "manifest.json", AE_IFREG, 0644, manifest, 0 };
	}
	make_tar(d, ents, n);
	free(fj);
}

/*
 * A self-update sent as a delta: assembled in the updater's own staging
 * from its own releases, then queued like a full one; a delta that lacks
 * content is refused and leaves the updater's tree as it was.
 */
static void
test_self_update_delta(void **state)
{
	struct install_outcome oc;
	struct install_plan p;
	struct handover h;
	struct buf tb;
	struct store tree;
	char sha[65], p2[PATH_MAX];
	char *buf = NULL;
	size_t len = 0;

	(void)state;
	push_ok("1.0");
	make_release(&tb, "2.0", 0, 1, 0);
	plan_for(&p, INSTALL_SELF, &tb, NULL);
	assert_int_equal(run_plan(&p, &tb, &oc), INSTALL_QUEUED);
	install_outcome_free(&oc);
	free(tb.p);
	memset(&tree, 0, sizeof(tree));
	assert_int_equal(store_init(&tree, install_self_root(in), 3, NULL), 0);
	assert_int_equal(install_self_pending(&tree, root, &h), 1);
	install_self_commit(&tree, root, &h);

	/* No copy of manifest.json 2.1 anywhere: refused, nothing changed. */
	make_self_delta(&tb, "2.1", 0, sha);
	plan_for(&p, INSTALL_SELF, &tb, sha);
	p.delta = 1;
	assert_int_equal(run_plan(&p, &tb, &oc), INSTALL_REFUSED);
	assert_int_equal(oc.err.kind, ERR_DELTA_MISMATCH);
	assert_non_null(strstr(err_msg(&oc.err), "manifest.json"));
	install_outcome_free(&oc);
	free(tb.p);
	assert_false(exists("updater/releases/active.new"));
	assert_false(exists("updater/releases/prev"));
	assert_false(exists("updater/state/journal.json"));
	assert_int_equal(handover_read(install_self_root(in), &h, NULL), 0);

	/* With it: bin/ is copied from the updater's active 2.0, and the release is 2.1. */
	make_self_delta(&tb, "2.1", 1, sha);
	plan_for(&p, INSTALL_SELF, &tb, sha);
	p.delta = 1;
	assert_int_equal(run_plan(&p, &tb, &oc), INSTALL_QUEUED);
	assert_string_equal(oc.release.version, "2.1");
	assert_string_equal(oc.release.sha256, sha);
	install_outcome_free(&oc);
	free(tb.p);
	assert_int_equal(handover_read(install_self_root(in), &h, NULL), 1);
	assert_string_equal(h.new_version, "2.1");
	tmpdir_fmt(p2, sizeof(p2), "%s/updater/releases/active/bin/updater", root);
	assert_int_equal(fs_read_file(p2, 4096, &buf, &len), 0);
	assert_non_null(memmem(buf, len, "self-test says 0", 16));
	free(buf);
	assert_true(exists("updater/releases/active/files.json"));
	/* The agent's tree was not a source and is untouched. */
	assert_string_equal(slot_version("active"), "1.0");
	assert_int_equal(install_self_pending(&tree, root, &h), 1);
	install_self_commit(&tree, root, &h);
}

static void
test_self_update_refusals(void **state)
{
	struct install_outcome oc;
	struct install_plan p;
	struct buf tb;
	cJSON *h, *e;

	(void)state;
	/* Not confirmed. */
	make_release(&tb, "2.0", 0, 1, 0);
	plan_for(&p, INSTALL_SELF, &tb, NULL);
	p.confirmed = 0;
	assert_int_equal(run_plan(&p, &tb, &oc), INSTALL_REFUSED);
	assert_int_equal(oc.err.kind, ERR_BAD_REQUEST);
	assert_string_equal(oc.field, "confirm_self");
	install_outcome_free(&oc);
	free(tb.p);
	/* Not an updater release. */
	make_release(&tb, "2.0", 0, 0, 0);
	plan_for(&p, INSTALL_SELF, &tb, NULL);
	assert_int_equal(run_plan(&p, &tb, &oc), INSTALL_REFUSED);
	assert_int_equal(oc.err.kind, ERR_FORMAT);
	assert_non_null(strstr(err_msg(&oc.err), "updater_entrypoint"));
	install_outcome_free(&oc);
	free(tb.p);
	/* Its --self-test fails. */
	make_release(&tb, "2.0", 5, 1, 0);
	plan_for(&p, INSTALL_SELF, &tb, NULL);
	assert_int_equal(run_plan(&p, &tb, &oc), INSTALL_REFUSED);
	assert_int_equal(oc.err.kind, ERR_PREFLIGHT);
	assert_string_equal(err_msg(&oc.err), "preflight bin/updater --self-test exited with status 5");
	assert_non_null(strstr(oc.output, "self-test says 5"));
	install_outcome_free(&oc);
	free(tb.p);
	/* No launcher: nobody would start the new updater. */
	deps.launcher_config = NULL;
	install_free(in);
	engine_new();
	make_release(&tb, "2.0", 0, 1, 0);
	plan_for(&p, INSTALL_SELF, &tb, NULL);
	assert_int_equal(run_plan(&p, &tb, &oc), INSTALL_REFUSED);
	assert_int_equal(oc.err.kind, ERR_UNAVAILABLE);
	install_outcome_free(&oc);
	free(tb.p);
	assert_false(exists("updater/releases/active"));
	assert_false(exists("updater/releases/active.new"));
	assert_false(exists("updater/state/journal.json"));
	h = history();
	assert_int_equal(cJSON_GetArraySize(h), 4);
	e = cJSON_GetArrayItem(h, 0);
	assert_string_equal(cJSON_GetObjectItem(e, "kind")->valuestring, "update-self");
	assert_string_equal(cJSON_GetObjectItem(e, "result")->valuestring, "refused");
	cJSON_Delete(h);
}

/* The slot's install id (the release's identity), or "" when there is none. */
static const char *
slot_id(const char *slot)
{
	static char id[JOURNAL_ID_LEN];
	struct store st;
	struct release_info ri;

	memset(&st, 0, sizeof(st));
	(void)snprintf(st.root, sizeof(st.root), "%s", root);
	id[0] = '\0';
	if (store_release_read(&st, slot, &ri, NULL) == 1) {
		memcpy(id, ri.id, sizeof(id));
	}
	return id;
}

/* Push the tarball TB as an update with request id RID ("" for none) and FORCE. */
static enum install_result
push_buf(const struct buf *tb, const char *rid, int force, struct install_outcome *oc)
{
	struct install_plan p;

	plan_for(&p, INSTALL_UPDATE, tb, NULL);
	(void)snprintf(p.request_id, sizeof(p.request_id), "%s", rid);
	p.force = force;
	return run_plan(&p, tb, oc);
}

/*
 * The release already active is not installed again: no agent stop or
 * start, prev kept, "already_active" in the outcome and the history. Forced,
 * it is reinstalled and prev is still the rollback point.
 */
static void
test_already_active_and_force(void **state)
{
	struct install_outcome oc;
	struct buf tb;
	char prev_id[JOURNAL_ID_LEN], active_id[JOURNAL_ID_LEN];
	int stops, starts;
	cJSON *h, *e;

	(void)state;
	push_ok("1.0");
	make_release(&tb, "2.0", 0, 0, 0);
	assert_int_equal(push_buf(&tb, "first", 0, &oc), INSTALL_UPDATED);
	install_outcome_free(&oc);
	snprintf(prev_id, sizeof(prev_id), "%s", slot_id("prev"));
	snprintf(active_id, sizeof(active_id), "%s", slot_id("active"));
	stops = fake.stops;
	starts = fake.starts;

	assert_int_equal(push_buf(&tb, "again-1", 0, &oc), INSTALL_ALREADY_ACTIVE);
	assert_false(err_failed(&oc.err));
	assert_true(oc.have_release);
	assert_string_equal(oc.release.version, "2.0");
	install_outcome_free(&oc);
	assert_int_equal(fake.stops, stops);
	assert_int_equal(fake.starts, starts);
	assert_string_equal(slot_id("active"), active_id);
	assert_string_equal(slot_id("prev"), prev_id);
	assert_string_equal(slot_version("prev"), "1.0");
	assert_false(exists("releases/active.new"));
	assert_false(exists("state/journal.json"));
	/* The history answers for that request id alone. */
	h = install_history_json(in, "again-1");
	assert_non_null(h);
	assert_int_equal(cJSON_GetArraySize(h), 1);
	e = cJSON_GetArrayItem(h, 0);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(e, "result")),
	    "already_active");
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(e, "request_id")), "again-1");
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(e, "version")), "2.0");
	cJSON_Delete(h);
	h = install_history_json(in, "never-sent");
	assert_non_null(h);
	assert_int_equal(cJSON_GetArraySize(h), 0);
	cJSON_Delete(h);

	/* Forced: installed and restarted, and prev is still 1.0 (not a second 2.0). */
	assert_int_equal(push_buf(&tb, "forced", 1, &oc), INSTALL_UPDATED);
	install_outcome_free(&oc);
	assert_int_equal(fake.starts, starts + 1);
	assert_string_not_equal(slot_id("active"), active_id);
	assert_string_equal(slot_version("active"), "2.0");
	assert_string_equal(slot_id("prev"), prev_id);
	assert_false(exists("releases/prev.old"));
	assert_false(exists("releases/prev.replaced"));
	h = install_history_json(in, "forced");
	assert_int_equal(cJSON_GetArraySize(h), 1);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(h, 0),
	    "result")), "updated");
	cJSON_Delete(h);
	free(tb.p);

	/* The rollback point works: back to 1.0. */
	assert_int_equal(rollback(&oc), INSTALL_ROLLED_BACK);
	install_outcome_free(&oc);
	assert_string_equal(slot_version("active"), "1.0");
}

/* A rollback to a copy of the active release (same sha256) changes nothing: refused. */
static void
test_rollback_to_identical_refused(void **state)
{
	struct install_outcome oc;
	struct release_info act, prev;
	struct store st;
	struct err e = ERR_INIT;
	int starts;

	(void)state;
	push_ok("1.0");
	push_ok("2.0");
	/* As an older updater left it after a second push of one release. */
	memset(&st, 0, sizeof(st));
	(void)snprintf(st.root, sizeof(st.root), "%s", root);
	assert_int_equal(store_release_read(&st, "active", &act, &e), 1);
	assert_int_equal(store_release_read(&st, "prev", &prev, &e), 1);
	memcpy(prev.sha256, act.sha256, sizeof(prev.sha256));
	assert_int_equal(store_release_write(&st, "prev", &prev, &e), 0);
	starts = fake.starts;
	assert_int_equal(rollback(&oc), INSTALL_REFUSED);
	assert_int_equal(oc.err.kind, ERR_CONFLICT);
	assert_non_null(strstr(err_msg(&oc.err), "nothing to roll back to"));
	install_outcome_free(&oc);
	assert_int_equal(fake.starts, starts);
	assert_string_equal(slot_version("active"), "2.0");
	assert_string_equal(slot_version("prev"), "1.0");
}

/* Every named step of every kind of plan reaches the crash hook. */
static void
test_crash_points_fire(void **state)
{
	static const char *const want[] = {
		"update.journal_staging", "update.journal_switching", "update.first_renamed",
		"update.current_created", "update.prev_moved", "update.exchanged",
		"update.old_to_prev", "update.agent_started", "update.probe_passed",
		"update.journal_committing", "commit.prev_old_removed", "commit.done",
		"update.journal_restoring", "restore.old_active_back", "restore.new_removed",
		"restore.prev_back", "restore.done", "abort.staging_removed",
		"rollback.journal_switching", "rollback.exchanged", "rollback.agent_started",
		"rollback.probe_passed", "rollback.journal_committing", "rollback.journal_restoring",
		"rollback_restore.exchanged", "rollback_restore.done",
		"self.update.journal_staging", "self.staged", "self.preflight_passed",
		"self.update.journal_switching", "self.update.first_renamed",
		"self.update.current_created", "self.switched", "self.handover_written",
		"self.responded",
	};
	struct install_outcome oc;
	struct install_plan p;
	struct buf tb;

	(void)state;
	testhook_set(record_point);
	push_ok("1.0");
	push_ok("2.0");
	push_ok("2.1");
	(void)snprintf(fake.bad[0], sizeof(fake.bad[0]), "3.0");
	assert_int_equal(push("3.0", 0, &oc), INSTALL_ROLLED_BACK);
	install_outcome_free(&oc);
	assert_int_equal(push("3.1", 9, &oc), INSTALL_REFUSED);
	install_outcome_free(&oc);
	assert_int_equal(rollback(&oc), INSTALL_ROLLED_BACK);
	install_outcome_free(&oc);
	(void)snprintf(fake.bad[1], sizeof(fake.bad[1]), "2.1");
	assert_int_equal(rollback(&oc), INSTALL_RESTORED);
	install_outcome_free(&oc);
	make_release(&tb, "5.0", 0, 1, 0);
	plan_for(&p, INSTALL_SELF, &tb, NULL);
	assert_int_equal(run_plan(&p, &tb, &oc), INSTALL_QUEUED);
	install_outcome_free(&oc);
	free(tb.p);
	install_self_answered(in);
	testhook_set(NULL);
	for (size_t i = 0; i < ARRAY_LEN(want); i++) {
		if (!has_point(want[i])) {
			fail_msg("crash point %s never fired; fired:\n%s", want[i], points);
		}
	}
}

static void
test_self_entrypoint(void **state)
{
	char entry[256], version[128], dir[PATH_MAX], p[PATH_MAX];
	struct err e = ERR_INIT;
	const char *files[][2] = {
		{ "{\"name\":\"t\",\"version\":\"2.0\",\"entrypoint\":\"bin/a\","
		  "\"updater_entrypoint\":\"bin/tandem-updater\"}", NULL },
		{ "{\"name\":\"t\",\"version\":\"2.0\",\"entrypoint\":\"bin/a\"}", "updater_entrypoint" },
		{ "{\"name\":\"t\",\"version\":\"2\",\"updater_entrypoint\":\"bin/data\"}",
		  "not an executable" },
		{ "{\"name\":\"t\",\"version\":\"2\",\"updater_entrypoint\":\"../bin/tandem-updater\"}",
		  "relative path" },
		{ "{\"name\":\"t\",\"version\":\"2\",\"updater_entrypoint\":\"bin/../bin/tandem-updater\"}",
		  "relative path" },
		{ "{\"name\":\"t\",\"version\":\"2\",\"updater_entrypoint\":\"/bin/sh\"}",
		  "relative path" },
		{ "{\"name\":\"t\",\"version\":\"2\",\"updater_entrypoint\":\"bin/nope\"}", "missing" },
		{ "{\"name\":\"t\",\"version\":\"2\",\"updater_entrypoint\":\"bin/out\"}", "outside" },
		{ "{\"name\":\"t\"", "manifest.json" },
	};

	(void)state;
	(void)snprintf(dir, sizeof(dir), "%s/rel", base);
	tmpdir_fmt(p, sizeof(p), "%s/bin", dir);
	assert_int_equal(fs_mkdir_p(p, 0755), 0);
	tmpdir_fmt(p, sizeof(p), "%s/bin/tandem-updater", dir);
	assert_int_equal(fs_write_atomic(p, "#!/bin/sh\n", 10, 0755), 0);
	tmpdir_fmt(p, sizeof(p), "%s/bin/data", dir);
	assert_int_equal(fs_write_atomic(p, "x", 1, 0644), 0);
	tmpdir_fmt(p, sizeof(p), "%s/bin/out", dir);
	assert_int_equal(symlink("/bin/sh", p), 0);
	assert_int_equal(install_self_entrypoint(dir, entry, sizeof(entry), version,
			     sizeof(version), &e), -1); /* no manifest */
	assert_int_equal(e.kind, ERR_FORMAT);
	tmpdir_fmt(p, sizeof(p), "%s/manifest.json", dir);
	for (size_t i = 0; i < ARRAY_LEN(files); i++) {
		assert_int_equal(fs_write_atomic(p, files[i][0], strlen(files[i][0]), 0644), 0);
		if (files[i][1] == NULL) {
			assert_int_equal(install_self_entrypoint(dir, entry, sizeof(entry), version,
					     sizeof(version), &e), 0);
			assert_string_equal(entry, "bin/tandem-updater");
			assert_string_equal(version, "2.0");
			continue;
		}
		assert_int_equal(install_self_entrypoint(dir, entry, sizeof(entry), version,
				     sizeof(version), &e), -1);
		assert_int_equal(e.kind, ERR_FORMAT);
		if (strstr(err_msg(&e), files[i][1]) == NULL) {
			fail_msg("%s: %s", files[i][0], err_msg(&e));
		}
	}
}

static void
test_lock_and_status(void **state)
{
	struct install_status st;
	char id[JOURNAL_ID_LEN], id2[JOURNAL_ID_LEN];
	struct err e = ERR_INIT;

	(void)state;
	install_status(in, &st);
	assert_false(st.busy);
	assert_null(st.kind);
	assert_int_equal(install_lock(in, INSTALL_SELF, id, &e), 0);
	install_status(in, &st);
	assert_true(st.busy);
	assert_string_equal(st.id, id);
	assert_string_equal(st.kind, "update-self");
	assert_string_equal(st.phase, "receiving");
	assert_true(st.elapsed_ms > 0);
	assert_int_equal(install_lock(in, INSTALL_UPDATE, id2, &e), -1);
	assert_int_equal(err_http_status(e.kind), 503);
	install_unlock(in);
	assert_int_equal(install_lock(in, INSTALL_UPDATE, id2, &e), 0);
	assert_string_not_equal(id, id2);
	install_unlock(in);
	assert_string_equal(install_kind_name(INSTALL_ROLLBACK), "rollback");
	assert_string_equal(install_result_name(INSTALL_BOTH_BAD), "both_bad");
	assert_string_equal(install_result_name(INSTALL_ROLLED_BACK), "rolled_back");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_update_and_rollback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_probe_failure_rolls_back, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exit_before_ready_rolls_back, setup, teardown),
		cmocka_unit_test(test_both_bad_file_format),
		cmocka_unit_test_setup_teardown(test_both_bad_and_recovery_by_push, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restore_probe_retries, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restore_fails_is_failed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_first_install_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refusals_change_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_space, setup, teardown),
		cmocka_unit_test_setup_teardown(test_seed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_self_update, setup, teardown),
		cmocka_unit_test_setup_teardown(test_self_update_request_id, setup, teardown),
		cmocka_unit_test_setup_teardown(test_self_update_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_self_update_delta, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_points_fire, setup, teardown),
		cmocka_unit_test_setup_teardown(test_already_active_and_force, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rollback_to_identical_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_self_entrypoint, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lock_and_status, setup, teardown),
	};

	log_init("test_install", LOG_LVL_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
