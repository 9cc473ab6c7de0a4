/*
 * Unit tests of master/release_pack: trees built in a temporary directory,
 * packed, and read back with libarchive's reader.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>
#include <cmocka.h>

#include "cJSON.h"
#include "common/fs.h"
#include "common/log.h"
#include "common/digest.h"
#include "master/release_pack.h"
#include "updater/extract.h"
#include "tests/unit/tmpdir.h"

#define PEM_KEY \
	"-----BEGIN PRIVATE KEY-----\n" \
	"MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgevZzL1gdAFr88hb2\n" \
	"OF/2NxApJCzGCEDdfSp6VQO30hyhRANCAAQRWz+jn65BtOMvdyHKcvjBeBSDZH2r\n" \
	"-----END PRIVATE KEY-----\n"
#define PEM_CERT \
	"-----BEGIN CERTIFICATE-----\n" \
	"MIIBjTCCATOgAwIBAgIUb2s5b3R0aGlzaXNub3RhcmVhbGNlcnQwCgYIKoZIzj0E\n" \
	"-----END CERTIFICATE-----\n"

struct fx {
	const char *root;
	char tree[PATH_MAX];
	char out[PATH_MAX];
	struct err err;
	struct release_pack_refusals ref;
	struct release_pack_result res;
};

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->root = tmpdir_make("release_pack");
	assert_non_null(f->root);
	assert_true(snprintf(f->tree, sizeof(f->tree), "%s/tree", f->root) > 0);
	assert_true(snprintf(f->out, sizeof(f->out), "%s/out", f->root) > 0);
	assert_int_equal(mkdir(f->tree, 0755), 0);
	assert_int_equal(mkdir(f->out, 0755), 0);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	assert_int_equal(tmpdir_remove(), 0);
	release_pack_refusals_free(&f->ref);
	free(f);
	return 0;
}

/* PATH under BASE. */
static const char *
at(const char *base, const char *rel)
{
	static char buf[4][PATH_MAX];
	static int k;
	char *p = buf[k++ % 4];

	assert_true(snprintf(p, PATH_MAX, "%s/%s", base, rel) < PATH_MAX);
	return p;
}

static void
put_bytes(const char *base, const char *rel, const void *data, size_t len, mode_t mode)
{
	char dir[PATH_MAX];
	const char *path = at(base, rel);
	char *slash;
	int fd;

	assert_int_equal(strlcpy_chk(dir, path, sizeof(dir)), 0);
	slash = strrchr(dir, '/');
	*slash = '\0';
	assert_int_equal(fs_mkdir_p(dir, 0755), 0);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(fs_write_all(fd, data, len), 0);
	assert_int_equal(fchmod(fd, mode), 0);
	assert_int_equal(close(fd), 0);
}

static void
put(const char *base, const char *rel, const char *text, mode_t mode)
{
	put_bytes(base, rel, text, strlen(text), mode);
}

static void
link_at(const char *base, const char *rel, const char *target)
{
	assert_int_equal(symlink(target, at(base, rel)), 0);
}

/* A minimal valid release: an executable entrypoint. */
static void
base_tree(const char *base)
{
	put(base, "bin/tandem-agent", "#!/bin/sh\necho agent\n", 0700);
}

static int
pack(struct fx *f, const char *dir, const char *out, const char *version,
    const char *const *excludes, size_t n)
{
	struct release_pack_opts o;

	memset(&o, 0, sizeof(o));
	memset(&f->res, 0, sizeof(f->res));
	err_clear(&f->err);
	release_pack_refusals_free(&f->ref);
	o.dir = dir;
	o.output = out;
	o.version = version;
	o.excludes = excludes;
	o.n_excludes = n;
	return release_pack(&o, &f->res, &f->ref, &f->err);
}

static void
pack_ok(struct fx *f, const char *dir, const char *out, const char *version,
    const char *const *excludes, size_t n)
{
	if (pack(f, dir, out, version, excludes, n) != 0) {
		fail_msg("release_pack: %s", err_msg(&f->err));
	}
}

static char *
slurp(const char *path, size_t *len)
{
	char *buf = NULL;

	assert_int_equal(fs_read_file(path, 64 * 1024 * 1024, &buf, len), 0);
	return buf;
}

struct member {
	char path[PATH_MAX];
	int type;
	int perm;
	long long uid, gid, mtime, size;
	int has_uname, has_gname;
	char link[PATH_MAX];
	char *data;
};

/* Read every member of the tarball at PATH; returns the count. */
static size_t
read_members(const char *path, struct member *m, size_t max)
{
	struct archive *a = archive_read_new();
	struct archive_entry *e;
	size_t n = 0;
	int r;

	assert_non_null(a);
	assert_int_equal(archive_read_support_filter_gzip(a), ARCHIVE_OK);
	assert_int_equal(archive_read_support_format_tar(a), ARCHIVE_OK);
	assert_int_equal(archive_read_open_filename(a, path, 10240), ARCHIVE_OK);
	while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
		assert_true(n < max);
		struct member *x = &m[n++];
		memset(x, 0, sizeof(*x));
		assert_int_equal(strlcpy_chk(x->path, archive_entry_pathname(e), sizeof(x->path)),
		    0);
		x->type = (int)archive_entry_filetype(e);
		x->perm = (int)archive_entry_perm(e);
		x->uid = archive_entry_uid(e);
		x->gid = archive_entry_gid(e);
		x->mtime = archive_entry_mtime(e);
		x->size = archive_entry_size(e);
		x->has_uname = archive_entry_uname(e) != NULL && *archive_entry_uname(e) != '\0';
		x->has_gname = archive_entry_gname(e) != NULL && *archive_entry_gname(e) != '\0';
		if (archive_entry_symlink(e) != NULL) {
			assert_int_equal(strlcpy_chk(x->link, archive_entry_symlink(e),
			    sizeof(x->link)), 0);
		}
		x->data = calloc(1, (size_t)x->size + 1);
		assert_non_null(x->data);
		if (x->size > 0) {
			assert_int_equal(archive_read_data(a, x->data, (size_t)x->size), x->size);
		}
	}
	assert_int_equal(r, ARCHIVE_EOF);
	archive_read_free(a);
	return n;
}

static void
free_members(struct member *m, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(m[i].data);
	}
}

static const struct member *
find_member(const struct member *m, size_t n, const char *path)
{
	for (size_t i = 0; i < n; i++) {
		if (strcmp(m[i].path, path) == 0 ||
		    (strncmp(m[i].path, path, strlen(path)) == 0 &&
		    strcmp(m[i].path + strlen(path), "/") == 0)) {
			return &m[i];
		}
	}
	return NULL;
}

#define LONG_DIR "a-directory-name-that-is-quite-long/and-another-one-that-makes-it-longer"
#define LONG_FILE LONG_DIR "/than-the-one-hundred-bytes-ustar-allows-in-its-name-field.txt"

static void
rich_tree(const char *base, int reverse)
{
	if (reverse) {
		put(base, LONG_FILE, "long\n", 0644);
		assert_int_equal(mkdir(at(base, "share"), 0700), 0);
		put(base, "lib/b.txt", "bee\n", 0664);
		put(base, "lib/a.txt", "aye\n", 0600);
		base_tree(base);
	} else {
		base_tree(base);
		put(base, "lib/a.txt", "aye\n", 0600);
		put(base, "lib/b.txt", "bee\n", 0664);
		assert_int_equal(mkdir(at(base, "share"), 0700), 0);
		put(base, LONG_FILE, "long\n", 0644);
	}
	link_at(base, "current", "lib/a.txt");
	link_at(base, "libdir", "lib");
	assert_int_equal(link(at(base, "lib/a.txt"), at(base, "lib/hard")), 0);
}

static void
test_deterministic(void **state)
{
	struct fx *f = *state;
	char sha1[65], sha2[65], sha3[65], hex[65];
	size_t l1, l2, l3;
	char *b1, *b2, *b3;
	struct timespec ts[2] = { { 1234567, 0 }, { 7654321, 0 } };
	char again[PATH_MAX];

	rich_tree(f->tree, 0);
	pack_ok(f, f->tree, at(f->out, "1.tar.gz"), "1.2.3", NULL, 0);
	memcpy(sha1, f->res.sha256, sizeof(sha1));
	b1 = slurp(at(f->out, "1.tar.gz"), &l1);
	assert_int_equal(f->res.size, l1);
	assert_int_equal(digest_buf(b1, l1, hex), 0);
	assert_string_equal(hex, sha1);
	assert_string_equal(f->res.path, at(f->out, "1.tar.gz"));

	/* gzip header: no FNAME flag, MTIME zero. */
	assert_true(l1 > 10);
	assert_int_equal((unsigned char)b1[0], 0x1f);
	assert_int_equal((unsigned char)b1[1], 0x8b);
	assert_int_equal((unsigned char)b1[3] & 0x08, 0);
	assert_int_equal(b1[4] | b1[5] | b1[6] | b1[7], 0);

	/* New mtimes everywhere, another non-executable mode: same bytes. */
	static const char *const touched[] = { "bin/tandem-agent", "lib/a.txt", "lib/b.txt",
		"share", "lib", LONG_FILE, "." };
	for (size_t i = 0; i < ARRAY_LEN(touched); i++) {
		assert_int_equal(utimensat(AT_FDCWD, at(f->tree, touched[i]), ts, 0), 0);
	}
	assert_int_equal(chmod(at(f->tree, "lib/b.txt"), 0640), 0);
	assert_int_equal(chmod(at(f->tree, "bin/tandem-agent"), 0750), 0);
	pack_ok(f, f->tree, at(f->out, "2.tar.gz"), "1.2.3", NULL, 0);
	memcpy(sha2, f->res.sha256, sizeof(sha2));
	b2 = slurp(at(f->out, "2.tar.gz"), &l2);
	assert_string_equal(sha1, sha2);
	assert_int_equal(l1, l2);
	assert_memory_equal(b1, b2, l1);

	/* The same tree created in another order at another place. */
	assert_int_equal(strlcpy_chk(again, at(f->root, "again"), sizeof(again)), 0);
	assert_int_equal(mkdir(again, 0700), 0);
	rich_tree(again, 1);
	pack_ok(f, again, at(f->out, "3.tar.gz"), "1.2.3", NULL, 0);
	memcpy(sha3, f->res.sha256, sizeof(sha3));
	b3 = slurp(at(f->out, "3.tar.gz"), &l3);
	assert_string_equal(sha1, sha3);
	assert_int_equal(l1, l3);
	assert_memory_equal(b1, b3, l1);

	/* A content change does change the digest. */
	put(f->tree, "lib/b.txt", "bee!\n", 0644);
	pack_ok(f, f->tree, at(f->out, "4.tar.gz"), "1.2.3", NULL, 0);
	assert_string_not_equal(f->res.sha256, sha1);
	/* So does another version. */
	pack_ok(f, again, at(f->out, "5.tar.gz"), "1.2.4", NULL, 0);
	assert_string_not_equal(f->res.sha256, sha1);
	free(b1);
	free(b2);
	free(b3);
}

static void
test_entries(void **state)
{
	struct fx *f = *state;
	struct member m[32];
	const struct member *x;
	size_t n;

	rich_tree(f->tree, 0);
	pack_ok(f, f->tree, at(f->out, "r.tar.gz"), "1.2.3", NULL, 0);
	n = read_members(at(f->out, "r.tar.gz"), m, ARRAY_LEN(m));
	assert_int_equal(n, f->res.entries);
	assert_string_equal(f->res.version, "1.2.3");
	assert_string_equal(f->res.name, "tandem-agent");
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(m[i].uid, 0);
		assert_int_equal(m[i].gid, 0);
		assert_int_equal(m[i].mtime, 0);
		assert_false(m[i].has_uname);
		assert_false(m[i].has_gname);
		assert_true(m[i].path[0] != '/' && m[i].path[0] != '.');
		if (i > 0) {
			assert_true(strcmp(m[i - 1].path, m[i].path) < 0);
		}
	}
	x = find_member(m, n, "bin");
	assert_non_null(x);
	assert_int_equal(x->type, AE_IFDIR);
	assert_int_equal(x->perm, 0755);
	x = find_member(m, n, "share");
	assert_non_null(x);
	assert_int_equal(x->type, AE_IFDIR);
	assert_int_equal(x->perm, 0755);
	x = find_member(m, n, "bin/tandem-agent");
	assert_non_null(x);
	assert_int_equal(x->type, AE_IFREG);
	assert_int_equal(x->perm, 0755);
	x = find_member(m, n, "lib/a.txt");
	assert_non_null(x);
	assert_int_equal(x->perm, 0644);
	assert_string_equal(x->data, "aye\n");
	x = find_member(m, n, "lib/b.txt");
	assert_non_null(x);
	assert_int_equal(x->perm, 0644);
	/* A hard link is a regular file with its own copy of the content. */
	x = find_member(m, n, "lib/hard");
	assert_non_null(x);
	assert_int_equal(x->type, AE_IFREG);
	assert_string_equal(x->data, "aye\n");
	x = find_member(m, n, "current");
	assert_non_null(x);
	assert_int_equal(x->type, AE_IFLNK);
	assert_string_equal(x->link, "lib/a.txt");
	x = find_member(m, n, "libdir");
	assert_non_null(x);
	assert_int_equal(x->type, AE_IFLNK);
	assert_non_null(find_member(m, n, LONG_FILE));

	x = find_member(m, n, "manifest.json");
	assert_non_null(x);
	assert_int_equal(x->type, AE_IFREG);
	assert_int_equal(x->perm, 0644);
	cJSON *j = cJSON_Parse(x->data);
	assert_non_null(j);
	assert_string_equal(cJSON_GetObjectItemCaseSensitive(j, "name")->valuestring,
	    "tandem-agent");
	assert_string_equal(cJSON_GetObjectItemCaseSensitive(j, "version")->valuestring, "1.2.3");
	assert_string_equal(cJSON_GetObjectItemCaseSensitive(j, "entrypoint")->valuestring,
	    "bin/tandem-agent");
	cJSON *pf = cJSON_GetObjectItemCaseSensitive(j, "preflight");
	assert_int_equal(cJSON_GetArraySize(pf), 2);
	assert_string_equal(cJSON_GetArrayItem(pf, 0)->valuestring, "bin/tandem-agent");
	assert_string_equal(cJSON_GetArrayItem(pf, 1)->valuestring, "--self-test");
	assert_null(cJSON_GetObjectItemCaseSensitive(j, "updater_entrypoint"));
	cJSON_Delete(j);
	free_members(m, n);
}

static cJSON *
packed_manifest(const char *tarball)
{
	struct member m[16];
	size_t n = read_members(tarball, m, ARRAY_LEN(m));
	const struct member *x = find_member(m, n, "manifest.json");
	cJSON *j;

	assert_non_null(x);
	j = cJSON_Parse(x->data);
	assert_non_null(j);
	free_members(m, n);
	return j;
}

static const char *
jstr(const cJSON *j, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void
test_manifest(void **state)
{
	struct fx *f = *state;
	cJSON *j;

	/* Default version; updater entrypoint when bin/tandem-updater exists. */
	base_tree(f->tree);
	put(f->tree, "bin/tandem-updater", "#!/bin/sh\n", 0755);
	pack_ok(f, f->tree, at(f->out, "a.tar.gz"), NULL, NULL, 0);
	assert_string_equal(f->res.version, RELEASE_DEFAULT_VERSION);
	j = packed_manifest(at(f->out, "a.tar.gz"));
	assert_string_equal(jstr(j, "version"), RELEASE_DEFAULT_VERSION);
	assert_string_equal(jstr(j, "updater_entrypoint"), "bin/tandem-updater");
	cJSON_Delete(j);

	/* The updater entrypoint must be executable too. */
	assert_int_equal(chmod(at(f->tree, "bin/tandem-updater"), 0644), 0);
	assert_int_equal(pack(f, f->tree, at(f->out, "b.tar.gz"), NULL, NULL, 0), -1);
	assert_non_null(strstr(err_msg(&f->err), "bin/tandem-updater"));
	assert_non_null(strstr(err_msg(&f->err), "not an executable"));
	assert_int_equal(unlink(at(f->tree, "bin/tandem-updater")), 0);

	/* An existing manifest is kept: extra keys stay, only version changes. */
	put(f->tree, "manifest.json",
	    "{\"name\":\"edge-agent\",\"version\":\"0.9\",\"entrypoint\":\"bin/tandem-agent\","
	    "\"preflight\":[\"bin/tandem-agent\",\"--self-test\",\"--quick\"],"
	    "\"custom\":{\"x\":1}}", 0600);
	pack_ok(f, f->tree, at(f->out, "c.tar.gz"), NULL, NULL, 0);
	assert_string_equal(f->res.name, "edge-agent");
	assert_string_equal(f->res.version, "0.9");
	j = packed_manifest(at(f->out, "c.tar.gz"));
	assert_string_equal(jstr(j, "name"), "edge-agent");
	assert_string_equal(jstr(j, "version"), "0.9");
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "preflight")), 3);
	assert_non_null(cJSON_GetObjectItemCaseSensitive(j, "custom"));
	assert_null(cJSON_GetObjectItemCaseSensitive(j, "updater_entrypoint"));
	cJSON_Delete(j);
	pack_ok(f, f->tree, at(f->out, "d.tar.gz"), "2.0.0-rc1", NULL, 0);
	j = packed_manifest(at(f->out, "d.tar.gz"));
	assert_string_equal(jstr(j, "version"), "2.0.0-rc1");
	assert_string_equal(jstr(j, "name"), "edge-agent");
	cJSON_Delete(j);

	/* The default output name comes from the manifest, in the working directory. */
	char cwd[PATH_MAX];
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir(f->out), 0);
	int rc = pack(f, f->tree, NULL, "3.1", NULL, 0);
	assert_int_equal(chdir(cwd), 0);
	assert_int_equal(rc, 0);
	assert_string_equal(f->res.path, at(f->out, "edge-agent-3.1.tar.gz"));
	assert_int_equal(access(f->res.path, F_OK), 0);

	/* The preflight command must be packed executable too. */
	put(f->tree, "manifest.json", "{\"name\":\"a\",\"entrypoint\":\"bin/tandem-agent\","
	    "\"preflight\":[\"bin/check\",\"--quick\"]}", 0644);
	assert_int_equal(pack(f, f->tree, at(f->out, "h.tar.gz"), NULL, NULL, 0), -1);
	assert_non_null(strstr(err_msg(&f->err), "bin/check: preflight command is missing"));
	put(f->tree, "bin/check", "#!/bin/sh\n", 0755);
	pack_ok(f, f->tree, at(f->out, "h.tar.gz"), NULL, NULL, 0);
	assert_int_equal(unlink(at(f->tree, "bin/check")), 0);

	/* Broken manifests are refused, naming the file and the key. */
	static const char *const bad[] = {
		"not json",
		"{\"name\":\"x\"}",
		"{\"name\":\"x\",\"entrypoint\":\"../bin/tandem-agent\"}",
		"{\"name\":\"x\",\"entrypoint\":\"/bin/sh\"}",
		"{\"name\":\"x y\",\"entrypoint\":\"bin/tandem-agent\"}",
		"{\"name\":\"x\",\"entrypoint\":\"bin/tandem-agent\",\"version\":\"1/2\"}",
		"{\"name\":\"x\",\"entrypoint\":\"bin/tandem-agent\",\"preflight\":[1]}",
		"{\"name\":\"x\",\"entrypoint\":\"bin/tandem-agent\",\"preflight\":[]}",
		"{\"name\":\"x\",\"entrypoint\":\"bin/tandem-agent\",\"preflight\":[\"bin/tandem-agent\","
		"\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\",\"9\",\"10\",\"11\",\"12\",\"13\",\"14\",\"15\",\"16\"]}",
		"{\"name\":\"x\",\"name\":\"y\",\"entrypoint\":\"bin/tandem-agent\"}",
		"[\"name\"]",
	};
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		put(f->tree, "manifest.json", bad[i], 0644);
		assert_int_equal(pack(f, f->tree, at(f->out, "e.tar.gz"), NULL, NULL, 0), -1);
		if (strstr(err_msg(&f->err), "manifest.json") == NULL) {
			fail_msg("manifest %s: error '%s' does not name manifest.json", bad[i],
			    err_msg(&f->err));
		}
	}
	assert_int_equal(access(at(f->out, "e.tar.gz"), F_OK), -1);
	/* Excluding DIR's manifest.json packs the generated one. */
	static const char *const ex[] = { "manifest.json" };
	pack_ok(f, f->tree, at(f->out, "f.tar.gz"), NULL, ex, 1);
	assert_string_equal(f->res.name, RELEASE_DEFAULT_NAME);

	/* Invalid --version values. */
	assert_int_equal(unlink(at(f->tree, "manifest.json")), 0);
	static const char *const badv[] = { "", "-1", "1 2", "../x", "1/2", "v\n" };
	for (size_t i = 0; i < ARRAY_LEN(badv); i++) {
		assert_int_equal(pack(f, f->tree, at(f->out, "g.tar.gz"), badv[i], NULL, 0), -1);
		assert_non_null(strstr(err_msg(&f->err), "version"));
	}
}

static void
test_secrets_refused(void **state)
{
	struct fx *f = *state;
	static const char elf_like[] = "\x7f" "ELF\0\0\0-----BEGIN EC PRIVATE KEY-----\0\0more";
	char *big;
	size_t big_len = 200000, key_at = 65536 - 12;

	base_tree(f->tree);
	put(f->tree, "conf/server.key", "not even a key\n", 0600);
	put(f->tree, "conf/SERVER.KEY", "x\n", 0600);
	put(f->tree, ".ssh/id_ed25519", "x\n", 0600);
	put(f->tree, ".ssh/id_rsa.bak", "x\n", 0600);
	put(f->tree, ".env", "TOKEN=1\n", 0600);
	put(f->tree, "conf/prod.env", "TOKEN=1\n", 0600);
	put(f->tree, "certs/bundle.pem", "this mentions a PRIVATE KEY\n", 0644);
	/* A key hidden under an innocent name. */
	put(f->tree, "docs/notes.txt", "some notes\n" PEM_KEY "more notes\n", 0644);
	/* CRLF line ends; PGP armor with a header and a blank line. */
	put(f->tree, "conf/win.txt", "-----BEGIN RSA PRIVATE KEY-----\r\n"
	    "MIIEpAIBAAKCAQEAvZzL1gdAFr88hb2OF\r\n-----END RSA PRIVATE KEY-----\r\n", 0644);
	put(f->tree, "conf/gpg.asc", "-----BEGIN PGP PRIVATE KEY BLOCK-----\n"
	    "Version: GnuPG v1.4.11 (GNU/Linux)\n\nlQOYBFx0AAABCADRpZ2h0\n", 0644);
	/* A key across the 64 KiB read boundary, in a binary file. */
	big = malloc(big_len);
	assert_non_null(big);
	memset(big, 'z', big_len);
	memcpy(big + key_at, PEM_KEY, strlen(PEM_KEY));
	put_bytes(f->tree, "data/blob.bin", big, big_len, 0644);
	free(big);
	/* Not secrets: a certificate, the bare header string compiled into a library. */
	put(f->tree, "certs/ca.pem", PEM_CERT, 0644);
	put_bytes(f->tree, "lib/libfake.so", elf_like, sizeof(elf_like), 0755);
	put(f->tree, "lib/openssh-style.txt",
	    "-----BEGIN OPENSSH PRIVATE KEY-----\n", 0644); /* header only, no body */

	assert_int_equal(pack(f, f->tree, at(f->out, "x.tar.gz"), NULL, NULL, 0), -1);
	static const char *const named[] = { "conf/server.key", "conf/SERVER.KEY",
		".ssh/id_ed25519", ".ssh/id_rsa.bak", ".env", "conf/prod.env", "certs/bundle.pem",
		"docs/notes.txt", "data/blob.bin", "conf/win.txt", "conf/gpg.asc" };
	for (size_t i = 0; i < ARRAY_LEN(named); i++) {
		if (strstr(err_msg(&f->err), named[i]) == NULL) {
			fail_msg("%s not named in: %s", named[i], err_msg(&f->err));
		}
	}
	assert_null(strstr(err_msg(&f->err), "ca.pem"));
	assert_null(strstr(err_msg(&f->err), "libfake.so"));
	assert_null(strstr(err_msg(&f->err), "openssh-style"));
	assert_non_null(strstr(err_msg(&f->err), "11 problems"));
	assert_int_equal(f->err.kind, ERR_FORMAT);
	/* The whole list comes with it, each "PATH: reason", all named in the message. */
	assert_int_equal(f->ref.n, 11);
	assert_int_equal(f->ref.named, 11);
	assert_non_null(strstr(f->ref.v[0], ": "));
	assert_int_equal(access(at(f->out, "x.tar.gz"), F_OK), -1);

	/* Excluding all but the hidden key still refuses that one. */
	static const char *const most[] = { "*.key", "*.KEY", "id_*", "*.env", "bundle.pem",
		"data", "conf/win.txt", "gpg.asc" };
	assert_int_equal(pack(f, f->tree, at(f->out, "x.tar.gz"), NULL, most, ARRAY_LEN(most)),
	    -1);
	assert_non_null(strstr(err_msg(&f->err), "docs/notes.txt"));
	if (strstr(err_msg(&f->err), "(1 problem;") == NULL) {
		fail_msg("want exactly one problem: %s", err_msg(&f->err));
	}
	assert_non_null(strstr(err_msg(&f->err), "PEM private key"));
	assert_int_equal(access(at(f->out, "x.tar.gz"), F_OK), -1);

	/* Excluding everything secret packs, and the excluded files are absent. */
	static const char *const all[] = { "*.key", "*.KEY", "id_*", "*.env", "bundle.pem",
		"data", "docs/*.txt", "conf/win.txt", "gpg.asc" };
	pack_ok(f, f->tree, at(f->out, "x.tar.gz"), NULL, all, ARRAY_LEN(all));
	struct member m[32];
	size_t n = read_members(at(f->out, "x.tar.gz"), m, ARRAY_LEN(m));
	assert_null(find_member(m, n, "conf/server.key"));
	assert_null(find_member(m, n, ".env"));
	assert_null(find_member(m, n, "docs/notes.txt"));
	assert_non_null(find_member(m, n, "docs")); /* the directory itself stays */
	assert_null(find_member(m, n, "data"));
	assert_null(find_member(m, n, "data/blob.bin"));
	assert_non_null(find_member(m, n, "certs/ca.pem"));
	assert_non_null(find_member(m, n, "lib/libfake.so"));
	free_members(m, n);
}

/* More refusals than one error message holds: it names the first, the list has all. */
static void
test_many_refusals(void **state)
{
	struct fx *f = *state;
	char name[64];

	base_tree(f->tree);
	for (int i = 0; i < 300; i++) {
		snprintf(name, sizeof(name), "keys/host-%03d.key", i);
		put(f->tree, name, "not really a key\n", 0600);
	}
	assert_int_equal(pack(f, f->tree, at(f->out, "x.tar.gz"), NULL, NULL, 0), -1);
	assert_int_equal(f->err.kind, ERR_FORMAT);
	assert_non_null(strstr(err_msg(&f->err), "300 problems"));
	assert_int_equal(f->ref.n, 300);
	assert_true(f->ref.named > 0 && f->ref.named < 300);
	snprintf(name, sizeof(name), "; and %zu more", 300 - f->ref.named);
	assert_non_null(strstr(err_msg(&f->err), name));
	/* Each "PATH: reason"; the last named one is whole in the message. */
	for (size_t i = 0; i < f->ref.n; i++) {
		assert_int_equal(strncmp(f->ref.v[i], "keys/host-", 10), 0);
		assert_non_null(strstr(f->ref.v[i], ".key: private key file name (*.key)"));
	}
	assert_non_null(strstr(err_msg(&f->err), f->ref.v[f->ref.named - 1]));
	assert_null(strstr(err_msg(&f->err), f->ref.v[f->ref.named]));
	assert_int_equal(access(at(f->out, "x.tar.gz"), F_OK), -1);
}

static void
test_special_files_refused(void **state)
{
	struct fx *f = *state;
	struct sockaddr_un sa;
	int s;

	base_tree(f->tree);
	assert_int_equal(fs_mkdir_p(at(f->tree, "run"), 0755), 0);
	assert_int_equal(mkfifo(at(f->tree, "run/fifo"), 0600), 0);
	s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(s >= 0);
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	tmpdir_sock_path(sa.sun_path, sizeof(sa.sun_path), at(f->tree, "run/sock"));
	assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
	put(f->tree, "bad\nname", "x", 0644);

	assert_int_equal(pack(f, f->tree, at(f->out, "x.tar.gz"), NULL, NULL, 0), -1);
	assert_non_null(strstr(err_msg(&f->err), "run/fifo: special file (FIFO)"));
	assert_non_null(strstr(err_msg(&f->err), "run/sock: special file (socket)"));
	assert_non_null(strstr(err_msg(&f->err), "bad?name: control character"));
	assert_int_equal(access(at(f->out, "x.tar.gz"), F_OK), -1);

	static const char *const ex[] = { "run", "bad*" };
	pack_ok(f, f->tree, at(f->out, "x.tar.gz"), NULL, ex, ARRAY_LEN(ex));
	assert_int_equal(close(s), 0);
}

static void
test_symlinks(void **state)
{
	struct fx *f = *state;
	static const struct {
		const char *link, *target, *why;
	} bad[] = {
		{ "abs", "/etc/passwd", "absolute symlink" },
		{ "up", "../outside", "symlink leaves DIR" },
		{ "sub/up2", "../../x", "symlink leaves DIR" },
		{ "zig", "lib/../../x", "symlink leaves DIR" },
		/* Lexically inside, but deep/deeper/s is DIR itself, so s/.. is outside. */
		{ "trick", "deep/deeper/s/..", "resolves outside DIR" },
		{ "gone", "lib/nothing", "dangling" },
		{ "toex", "lib/skip.txt", "excluded" },
	};
	static const char *const ex[] = { "skip.txt" };

	base_tree(f->tree);
	put(f->tree, "lib/ok.txt", "ok\n", 0644);
	put(f->tree, "lib/skip.txt", "skip\n", 0644);
	assert_int_equal(fs_mkdir_p(at(f->tree, "sub"), 0755), 0);
	assert_int_equal(fs_mkdir_p(at(f->tree, "deep/deeper"), 0755), 0);
	link_at(f->tree, "deep/deeper/s", "../..");
	link_at(f->tree, "fine", "lib/./ok.txt");
	link_at(f->tree, "sub/fine2", "../lib/ok.txt");
	put(f->tree, "outside-not", "x", 0644);
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		link_at(f->tree, bad[i].link, bad[i].target);
	}
	assert_int_equal(pack(f, f->tree, at(f->out, "x.tar.gz"), NULL, ex, 1), -1);
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		char want[128];
		assert_true(snprintf(want, sizeof(want), "%s: ", bad[i].link) > 0);
		const char *p = strstr(err_msg(&f->err), want);
		if (p == NULL || strstr(p, bad[i].why) == NULL) {
			fail_msg("%s -> %s: want '%s' in: %s", bad[i].link, bad[i].target,
			    bad[i].why, err_msg(&f->err));
		}
	}
	assert_null(strstr(err_msg(&f->err), "fine"));
	assert_null(strstr(err_msg(&f->err), "deep/deeper/s:"));

	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		assert_int_equal(unlink(at(f->tree, bad[i].link)), 0);
	}
	pack_ok(f, f->tree, at(f->out, "x.tar.gz"), NULL, ex, 1);
	struct member m[32];
	size_t n = read_members(at(f->out, "x.tar.gz"), m, ARRAY_LEN(m));
	const struct member *x = find_member(m, n, "sub/fine2");
	assert_non_null(x);
	assert_int_equal(x->type, AE_IFLNK);
	assert_int_equal(x->perm, 0777);
	assert_string_equal(x->link, "../lib/ok.txt");
	free_members(m, n);
}

static void
test_entrypoint_and_output(void **state)
{
	struct fx *f = *state;

	/* Missing entrypoint. */
	put(f->tree, "lib/a.txt", "a\n", 0644);
	assert_int_equal(pack(f, f->tree, at(f->out, "x.tar.gz"), NULL, NULL, 0), -1);
	assert_non_null(strstr(err_msg(&f->err), "bin/tandem-agent: entrypoint is missing"));
	/* Not executable. */
	put(f->tree, "bin/tandem-agent", "#!/bin/sh\n", 0644);
	assert_int_equal(pack(f, f->tree, at(f->out, "x.tar.gz"), NULL, NULL, 0), -1);
	assert_non_null(strstr(err_msg(&f->err), "not an executable regular file"));
	/* Excluded. */
	assert_int_equal(chmod(at(f->tree, "bin/tandem-agent"), 0755), 0);
	static const char *const ex[] = { "bin/*" };
	assert_int_equal(pack(f, f->tree, at(f->out, "x.tar.gz"), NULL, ex, 1), -1);
	assert_non_null(strstr(err_msg(&f->err), "entrypoint is missing"));
	/* A directory in its place. */
	assert_int_equal(unlink(at(f->tree, "bin/tandem-agent")), 0);
	assert_int_equal(mkdir(at(f->tree, "bin/tandem-agent"), 0755), 0);
	assert_int_equal(pack(f, f->tree, at(f->out, "x.tar.gz"), NULL, NULL, 0), -1);
	assert_non_null(strstr(err_msg(&f->err), "not an executable regular file"));
	assert_int_equal(rmdir(at(f->tree, "bin/tandem-agent")), 0);
	/* A symlink to an executable file inside is fine. */
	put(f->tree, "bin/real-agent", "#!/bin/sh\n", 0755);
	link_at(f->tree, "bin/tandem-agent", "real-agent");
	pack_ok(f, f->tree, at(f->out, "x.tar.gz"), NULL, NULL, 0);

	/* Output inside DIR, or into a missing directory, is refused. */
	assert_int_equal(pack(f, f->tree, at(f->tree, "x.tar.gz"), NULL, NULL, 0), -1);
	assert_non_null(strstr(err_msg(&f->err), "inside the release directory"));
	assert_int_equal(pack(f, f->tree, at(f->tree, "lib/x.tar.gz"), NULL, NULL, 0), -1);
	assert_int_equal(access(at(f->tree, "lib/x.tar.gz"), F_OK), -1);
	assert_int_equal(pack(f, f->tree, at(f->out, "nodir/x.tar.gz"), NULL, NULL, 0), -1);
	assert_int_equal(pack(f, at(f->root, "missing"), at(f->out, "y.tar.gz"), NULL, NULL, 0),
	    -1);
	assert_non_null(strstr(err_msg(&f->err), "missing"));

	/* Packing over an existing tarball replaces it; no temporaries are left. */
	pack_ok(f, f->tree, at(f->out, "x.tar.gz"), "2", NULL, 0);
	struct stat st;
	assert_int_equal(stat(at(f->out, "x.tar.gz"), &st), 0);
	assert_int_equal(st.st_size, (off_t)f->res.size);
	assert_int_equal(st.st_mode & 0777, 0644);
	/* A refused pack leaves an existing tarball exactly as it was. */
	char before[65], hex[65];
	size_t blen;
	char *b;
	memcpy(before, f->res.sha256, sizeof(before));
	put(f->tree, "lib/leak.txt", PEM_KEY, 0600); /* found while writing */
	assert_int_equal(pack(f, f->tree, at(f->out, "x.tar.gz"), "3", NULL, 0), -1);
	b = slurp(at(f->out, "x.tar.gz"), &blen);
	assert_int_equal(digest_buf(b, blen, hex), 0);
	assert_string_equal(hex, before);
	free(b);
	DIR *d = opendir(f->out);
	struct dirent *de;
	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		assert_true(de->d_name[0] != '.' || strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0);
	}
	closedir(d);
}

/*
 * What we pack, the updater's guarded extractor accepts whole (pax headers,
 * directory entries, relative symlinks), and both sides agree on the sha256.
 */
static void
test_updater_extracts_it(void **state)
{
	struct fx *f = *state;
	struct extract *x = NULL;
	struct err xerr = ERR_INIT;
	char cwd[PATH_MAX], sha[65], link[PATH_MAX], *buf;
	uint64_t entries = 0;
	size_t len, off;
	ssize_t ln;

	rich_tree(f->tree, 0);
	pack_ok(f, f->tree, at(f->out, "r.tar.gz"), "4.2", NULL, 0);
	buf = slurp(at(f->out, "r.tar.gz"), &len);
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir(f->root), 0);
	if (extract_begin("staging", NULL, &x, &xerr) != 0) {
		assert_int_equal(chdir(cwd), 0);
		fail_msg("extract_begin: %s", err_msg(&xerr));
	}
	/* Fed in odd-sized pieces, as an upload arrives. */
	for (off = 0; off < len; off += 7777) {
		size_t n = len - off < 7777 ? len - off : 7777;
		if (extract_feed(x, buf + off, n) != 0) {
			break;
		}
	}
	int st = extract_finish(x, sha, &entries, NULL, &xerr);
	assert_int_equal(chdir(cwd), 0);
	if (st != 0) {
		fail_msg("extract: %s: %s", err_kind_name(xerr.kind), err_msg(&xerr));
	}
	assert_string_equal(sha, f->res.sha256);
	assert_int_equal(entries, f->res.entries);
	free(buf);

	buf = slurp(at(f->root, "staging/lib/hard"), &len);
	assert_string_equal(buf, "aye\n");
	free(buf);
	buf = slurp(at(f->root, "staging/" LONG_FILE), &len);
	assert_string_equal(buf, "long\n");
	free(buf);
	ln = readlink(at(f->root, "staging/current"), link, sizeof(link) - 1);
	assert_true(ln > 0);
	link[ln] = '\0';
	assert_string_equal(link, "lib/a.txt");
	assert_int_equal(access(at(f->root, "staging/bin/tandem-agent"), X_OK), 0);
	buf = slurp(at(f->root, "staging/manifest.json"), &len);
	cJSON *j = cJSON_Parse(buf);
	assert_non_null(j);
	assert_string_equal(jstr(j, "version"), "4.2");
	cJSON_Delete(j);
	free(buf);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_deterministic, setup, teardown),
		cmocka_unit_test_setup_teardown(test_entries, setup, teardown),
		cmocka_unit_test_setup_teardown(test_manifest, setup, teardown),
		cmocka_unit_test_setup_teardown(test_secrets_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_special_files_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_symlinks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_entrypoint_and_output, setup, teardown),
		cmocka_unit_test_setup_teardown(test_updater_extracts_it, setup, teardown),
	};

	log_init("test_release_pack", LOG_LVL_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
