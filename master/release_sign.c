#include "master/release_sign.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/fs.h"
#include "common/digest.h"
#include "common/release.h"
#include "common/release_files.h"

/* A release has at most this many entries before manifest.json is given up on. */
#define RELEASE_SIGN_MAX_ENTRIES 1000000

int
release_sign_tsig_path(const char *file, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s" SIGN_SUFFIX, file);

	return n < 0 || (size_t)n >= len ? -1 : 0;
}

int
release_sign_read_tsig(const char *path, char **buf, size_t *len, struct err *e)
{
	if (fs_read_file(path, SIGN_FILE_MAX, buf, len) != 0) {
		if (errno == ENOENT) {
			return 0;
		}
		return err_sys(e, "read %s", path);
	}
	return 1;
}

/* Read the rest of the current entry of A into DATA (MAX + 1 bytes) or, when
 * DATA is NULL, into the digest D; *N counts the bytes. */
static int
release_sign_read_entry(struct archive *a, const char *file, const char *name, char *data,
    size_t max, struct digest *d, size_t *n, struct err *e)
{
	char chunk[65536] = { 0 };
	la_ssize_t got;

	for (;;) {
		char *dst = data != NULL ? data + *n : chunk;
		size_t room = data != NULL ? max + 1 - *n : sizeof(chunk);

		got = archive_read_data(a, dst, room);
		if (got <= 0) {
			break;
		}
		*n += (size_t)got;
		if (*n > max) {
			return err_set(e, ERR_FORMAT, "%s: %s is larger than %zu bytes", file, name, max);
		}
		if (d != NULL) {
			digest_update(d, dst, (size_t)got);
		}
	}
	if (got < 0) {
		return err_set(e, ERR_FORMAT, "%s: %.200s", file, archive_error_string(a));
	}
	return 0;
}

/* manifest.json of the gzip tar FILE into *BUF (malloc'd), *LEN, and the
 * SHA-256 of its files.json into FILES_SHA256 ("" when it has none): the
 * files digest a statement carries as manifest_sha256. */
static int
release_sign_manifest(const char *file, char **buf, size_t *len,
    char files_sha256[DIGEST_HEX_LEN + 1], struct err *e)
{
	struct archive *a = archive_read_new();
	struct archive_entry *ent;
	struct digest d;
	char *data = NULL;
	size_t n = 0;
	int r, rc = -1, have_files = 0;

	files_sha256[0] = '\0';
	if (a == NULL) {
		return err_set(e, ERR_NOMEM, "libarchive: out of memory");
	}
	if (archive_read_support_filter_gzip(a) != ARCHIVE_OK ||
	    archive_read_support_format_tar(a) != ARCHIVE_OK ||
	    archive_read_open_filename(a, file, 65536) != ARCHIVE_OK) {
		err_set(e, ERR_FORMAT, "%s: not a gzip tar archive: %.200s", file,
		    archive_error_string(a) != NULL ? archive_error_string(a) : "?");
		goto out;
	}
	for (size_t i = 0; i < RELEASE_SIGN_MAX_ENTRIES; i++) {
		const char *p;
		int is_files;

		r = archive_read_next_header(a, &ent);
		if (r == ARCHIVE_EOF) {
			break;
		}
		if (r < ARCHIVE_WARN) {
			err_set(e, ERR_FORMAT, "%s: %.200s", file, archive_error_string(a));
			goto out;
		}
		p = archive_entry_pathname(ent);
		if (p != NULL && strncmp(p, "./", 2) == 0) {
			p += 2;
		}
		if (p == NULL || (strcmp(p, RELEASE_MANIFEST_FILE) != 0 &&
		    strcmp(p, RELEASE_FILES_FILE) != 0)) {
			continue;
		}
		is_files = strcmp(p, RELEASE_FILES_FILE) == 0;
		if (is_files && !have_files) {
			size_t fn = 0;

			if (archive_entry_filetype(ent) != AE_IFREG) {
				err_set(e, ERR_FORMAT, "%s: files.json is not a file", file);
				goto out;
			}
			digest_init(&d);
			r = release_sign_read_entry(a, file, RELEASE_FILES_FILE, NULL,
			    RELEASE_FILES_MAX_BYTES, &d, &fn, e);
			if (r != 0) {
				digest_free(&d);
				goto out;
			}
			if (digest_final(&d, files_sha256) != 0) {
				err_set(e, ERR_INTERNAL, "%s: files.json: SHA-256 failed", file);
				goto out;
			}
			have_files = 1;
		} else if (!is_files && data == NULL) {
			if (archive_entry_filetype(ent) != AE_IFREG ||
			    archive_entry_size(ent) > RELEASE_FILE_MAX) {
				err_set(e, ERR_FORMAT, "%s: manifest.json is not a file of at most %d "
				    "bytes", file, RELEASE_FILE_MAX);
				goto out;
			}
			data = malloc(RELEASE_FILE_MAX + 1);
			if (data == NULL) {
				err_set(e, ERR_NOMEM, "out of memory");
				goto out;
			}
			if (release_sign_read_entry(a, file, RELEASE_MANIFEST_FILE, data,
			    RELEASE_FILE_MAX, NULL, &n, e) != 0) {
				goto out;
			}
		}
		if (data != NULL && have_files) {
			break;
		}
	}
	if (data == NULL) {
		err_set(e, ERR_FORMAT, "%s: no manifest.json in the release", file);
		goto out;
	}
	*buf = data;
	*len = n;
	data = NULL;
	rc = 0;
out:
	if (rc != 0) {
		files_sha256[0] = '\0';
	}
	free(data);
	archive_read_free(a);
	return rc;
}

int
release_sign_inspect(const char *file, struct release_sign_info *info, struct err *e)
{
	struct release_sign_info out;
	struct release_manifest m;
	char *mf = NULL;
	size_t mflen = 0;
	int fd, rc = -1;

	memset(&out, 0, sizeof(out));
	fd = open(file, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		return err_sys(e, "open %s", file);
	}
	rc = digest_fd(fd, out.sha256, &out.size, e);
	close(fd);
	if (rc != 0) {
		return err_prefix(e, "%s", file);
	}
	rc = -1;
	if (release_sign_manifest(file, &mf, &mflen, out.manifest_sha256, e) != 0) {
		goto out;
	}
	if (release_manifest_parse(mf, mflen, 0, &m, e) != 0) {
		err_prefix(e, "%s", file);
		goto out;
	}
	memcpy(out.name, m.name, sizeof(out.name));
	memcpy(out.version, m.version, sizeof(out.version));
	out.kinds = (m.entrypoint[0] != '\0' ? SIGN_KIND_AGENT : 0) |
	    (m.updater_entrypoint[0] != '\0' ? SIGN_KIND_UPDATER : 0);
	*info = out;
	rc = 0;
out:
	free(mf);
	return rc;
}

/* Sign a new statement for FILE. */
static int
release_sign_new(const struct release_sign_opts *o, struct sign_envelope *env,
    struct sign_statement *st, struct err *e)
{
	struct release_sign_info info;
	struct sign_statement s;

	memset(&s, 0, sizeof(s));
	if (release_sign_inspect(o->file, &info, e) != 0) {
		return -1;
	}
	memcpy(s.name, info.name, sizeof(s.name));
	memcpy(s.version, info.version, sizeof(s.version));
	memcpy(s.sha256, info.sha256, sizeof(s.sha256));
	memcpy(s.manifest_sha256, info.manifest_sha256, sizeof(s.manifest_sha256));
	s.size = (int64_t)info.size;
	s.kinds = info.kinds;
	s.security_version = o->security_version;
	s.min_security_version = o->min_security_version;
	if (strlcpy_chk(s.compatible, o->compatible != NULL ? o->compatible :
	    SIGN_DEFAULT_COMPATIBLE, sizeof(s.compatible)) != 0 ||
	    !release_ident_valid(s.compatible)) {
		return err_set(e, ERR_USAGE, "--compatible: 1-%d characters of A-Z a-z 0-9 . _ + ~ -, "
		    "starting with a letter or digit", SIGN_IDENT_MAX);
	}
	iso8601_utc(time(NULL), s.created_at, sizeof(s.created_at));
	if (o->expires_at != NULL &&
	    strlcpy_chk(s.expires_at, o->expires_at, sizeof(s.expires_at)) != 0) {
		return err_set(e, ERR_USAGE, "--expires: not a date");
	}
	if (sign_tsig_new(&s, env, e) != 0) {
		return -1;
	}
	*st = s;
	return 0;
}

/* Load the existing signature file PATH, which must describe FILE. */
static int
release_sign_existing(const char *path, const char *file, struct sign_envelope *env,
    struct sign_statement *st, struct err *e)
{
	struct release_sign_info info;
	char *buf = NULL;
	size_t len = 0;
	int rc = -1, have;

	have = release_sign_read_tsig(path, &buf, &len, e);
	if (have <= 0) {
		if (have == 0) {
			err_set(e, ERR_NOT_FOUND, "%s does not exist: nothing to cosign", path);
		}
		return -1;
	}
	if (sign_tsig_parse(buf, len, env, st, e) != 0) {
		err_prefix(e, "%s", path);
		goto out;
	}
	if (release_sign_inspect(file, &info, e) != 0) {
		goto out;
	}
	if (strcmp(info.sha256, st->sha256) != 0 || (int64_t)info.size != st->size) {
		err_set(e, ERR_STATEMENT, "%s describes other bytes than %s (sha256 %.16s..., "
		    "the file has %.16s...)", path, file, st->sha256, info.sha256);
		goto out;
	}
	rc = 0;
out:
	if (rc != 0) {
		sign_envelope_free(env);
	}
	free(buf);
	return rc;
}

int
release_sign(const struct release_sign_opts *o, struct release_sign_result *res, struct err *e)
{
	struct sign_envelope env;
	struct release_sign_result r;
	char *text = NULL;
	size_t len = 0;
	int rc = -1;

	memset(&env, 0, sizeof(env));
	memset(&r, 0, sizeof(r));
	if (o->out != NULL) {
		if (strlcpy_chk(r.path, o->out, sizeof(r.path)) != 0) {
			return err_set(e, ERR_USAGE, "output path too long");
		}
	} else if (release_sign_tsig_path(o->file, r.path, sizeof(r.path)) != 0) {
		return err_set(e, ERR_USAGE, "path too long: %s", o->file);
	}
	if (o->nkeys == 0) {
		return err_set(e, ERR_USAGE, "no key to sign with");
	}
	if (o->cosign) {
		if (release_sign_existing(r.path, o->file, &env, &r.st, e) != 0) {
			goto out;
		}
	} else {
		if (!o->force && access(r.path, F_OK) == 0) {
			err_set(e, ERR_CONFLICT, "%s exists already: --cosign adds signatures to it, "
			    "--force replaces it", r.path);
			goto out;
		}
		if (release_sign_new(o, &env, &r.st, e) != 0) {
			goto out;
		}
	}
	for (size_t i = 0; i < o->nkeys; i++) {
		if (sign_envelope_add(&env, o->keys[i], e) != 0) {
			goto out;
		}
	}
	if (sign_tsig_format(&env, &text, &len, e) != 0) {
		goto out;
	}
	if (fs_write_atomic(r.path, text, len, 0644) != 0) {
		err_sys(e, "write %s", r.path);
		goto out;
	}
	for (size_t i = 0; i < env.nsigs; i++) {
		memcpy(r.keyids[i], env.sigs[i].keyid, sizeof(r.keyids[i]));
	}
	r.nsigs = env.nsigs;
	*res = r;
	rc = 0;
out:
	free(text);
	sign_envelope_free(&env);
	return rc;
}

int
release_sign_verdict(const struct sign_keyring *kr, const char *tsig, size_t len,
    const char *sha256, uint64_t size, unsigned kind, const struct release_sign_host *h,
    char *text, size_t textlen)
{
	struct sign_verdict v;
	struct sign_want w;
	struct err e = ERR_INIT;
	const char *mode = h->mode != NULL ? h->mode : "";
	char note[160];

	if (mode[0] == '\0') {
		snprintf(text, textlen, "unsigned: the updater does not check signatures");
		return 1;
	}
	if (strcmp(mode, "keyring_invalid") == 0) {
		snprintf(text, textlen, "refused: keyring_invalid: the host's keyring is unusable");
		return 0;
	}
	if (tsig == NULL) {
		if (strcmp(mode, "required") == 0) {
			snprintf(text, textlen, "refused: signature_invalid: unsigned, and the host "
			    "requires signatures");
			return 0;
		}
		if (h->floor > 0) {
			snprintf(text, textlen, "refused: below_security_floor: unsigned (security "
			    "version 0), the host's floor is %lld", (long long)h->floor);
			return 0;
		}
		snprintf(text, textlen, "unsigned: accepted (the host does not require signatures)");
		return 1;
	}
	if (strcmp(mode, "required") != 0 && h->keyring_version == 0) {
		snprintf(text, textlen, "unsigned: the host has no keyring, the signature is not "
		    "checked");
		return h->floor <= 0;
	}
	if (kr == NULL || kr->nrel == 0) {
		snprintf(text, textlen, "signed: not checked here (the master has no keyring)");
		return 1;
	}
	memset(&w, 0, sizeof(w));
	w.compatible = h->compatible != NULL && h->compatible[0] != '\0' ? h->compatible : NULL;
	w.sha256 = sha256;
	w.size = (int64_t)size;
	w.kind = kind;
	w.floor = h->floor > 0 ? h->floor : 0;
	if (sign_release_check(kr, tsig, len, &w, &v, &e) != 0) {
		snprintf(text, textlen, "refused: %s: %s", err_kind_name(e.kind), err_msg(&e));
		return 0;
	}
	note[0] = '\0';
	if (h->keyring_version > 0 && h->keyring_version != kr->version) {
		snprintf(note, sizeof(note), " (checked with keyring version %lld; the host has "
		    "version %lld%s)", (long long)kr->version, (long long)h->keyring_version,
		    h->keyring_version < kr->version ? ": tandem swarm keyring push" : "");
	}
	snprintf(text, textlen, "signature ok: security version %lld, %zu of %d key%s%s",
	    (long long)v.st.security_version, v.nsigned, kr->threshold,
	    kr->threshold == 1 ? "" : "s", note);
	return 1;
}
