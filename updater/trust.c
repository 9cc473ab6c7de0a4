#include "updater/trust.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cJSON.h"
#include "common/fs.h"
#include "common/json.h"
#include "common/log.h"
#include "common/testhook.h"

#define TRUST_FLOOR_MAX 4096

struct trust {
	pthread_mutex_t mu;
	char state_dir[PATH_MAX];
	int require_signed;
	char compatible[SIGN_IDENT_MAX + 1];
	int invalid;                       /* keyring_invalid: every install refused */
	char reason[ERR_MSG_MAX];
	struct sign_keyring kr;            /* version 0: none */
	int64_t floor;
	char raised_by[RELEASE_ID_SIZE];
};

static int
trust_path(const struct trust *t, const char *name, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/%s", t->state_dir, name);

	return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* Fail closed: remember why (E) and log it. */
static void
trust_invalidate(struct trust *t, const struct err *e)
{
	t->invalid = 1;
	(void)snprintf(t->reason, sizeof(t->reason), "%s", err_msg(e));
	log_warnx("release signatures: every install is refused: %s", t->reason);
}

/* ---- state/floor.json ---- */

struct trust_floor_raw {
	int64_t floor;
	char raised_by[RELEASE_ID_SIZE];
	char raised_at[32];
};

static const struct json_field trust_floor_fields[] = {
	JSON_F_INT("floor", struct trust_floor_raw, floor, JSON_REQUIRED, 0, RELEASE_SV_MAX),
	JSON_F_STR("raised_by", struct trust_floor_raw, raised_by, JSON_REQUIRED, 0),
	JSON_F_STR("raised_at", struct trust_floor_raw, raised_at, JSON_REQUIRED, 0),
};

/* state/floor.json into T (absent: 0). */
static int
trust_floor_read(struct trust *t, struct err *e)
{
	struct trust_floor_raw raw;
	char path[PATH_MAX], *buf = NULL;
	size_t len = 0;
	cJSON *o = NULL;
	int rc = -1;

	memset(&raw, 0, sizeof(raw));
	if (trust_path(t, TRUST_FLOOR_FILE, path, sizeof(path)) != 0) {
		return err_set(e, ERR_CONFIG, "state directory path too long");
	}
	if (fs_read_file(path, TRUST_FLOOR_MAX, &buf, &len) != 0) {
		if (errno == ENOENT) {
			t->floor = 0;
			return 0;
		}
		return err_sys_kind(e, ERR_KEYRING, "read %s", path);
	}
	o = json_parse_object(buf, len, e);
	if (o == NULL ||
	    json_read_fields(o, trust_floor_fields, ARRAY_LEN(trust_floor_fields), 0, &raw, e) != 0) {
		if (e != NULL) {
			e->kind = ERR_KEYRING;
		}
		err_prefix(e, "%s", path);
		goto out;
	}
	t->floor = raw.floor;
	memcpy(t->raised_by, raw.raised_by, sizeof(t->raised_by));
	rc = 0;
out:
	cJSON_Delete(o);
	free(buf);
	return rc;
}

/* Write FLOOR (raised by release ID) to state/floor.json. */
static int
trust_floor_write(struct trust *t, int64_t floor, const char *id, struct err *e)
{
	char path[PATH_MAX], now[32];
	cJSON *o = cJSON_CreateObject();
	int rc = -1;

	iso8601_utc(time(NULL), now, sizeof(now));
	if (trust_path(t, TRUST_FLOOR_FILE, path, sizeof(path)) != 0) {
		err_set(e, ERR_INTERNAL, "state directory path too long");
		goto out;
	}
	if (o == NULL || json_add_int(o, "floor", floor) != 0 ||
	    json_add_str(o, "raised_by", id) != 0 || json_add_str(o, "raised_at", now) != 0) {
		err_set(e, ERR_NOMEM, "floor: out of memory");
		goto out;
	}
	if (json_write_atomic(path, o, 0644, e) != 0) {
		goto out;
	}
	testhook_point("trust.floor_written");
	rc = 0;
out:
	cJSON_Delete(o);
	return rc;
}

/* ---- state/keyring.json ---- */

static int
trust_keyring_write(struct trust *t, const char *buf, size_t len, struct err *e)
{
	char path[PATH_MAX];

	if (trust_path(t, TRUST_KEYRING_FILE, path, sizeof(path)) != 0) {
		return err_set(e, ERR_INTERNAL, "state directory path too long");
	}
	if (fs_write_atomic(path, buf, len, 0644) != 0) {
		return err_sys(e, "write %s", path);
	}
	testhook_point("trust.keyring_written");
	return 0;
}

/* The keyring: state/keyring.json, else a copy of the bootstrap file. */
static int
trust_keyring_load(struct trust *t, const char *bootstrap, struct err *e)
{
	struct sign_keyring boot;
	char path[PATH_MAX], *buf = NULL;
	size_t len = 0;
	int rc = -1;

	sign_keyring_init(&boot);
	if (trust_path(t, TRUST_KEYRING_FILE, path, sizeof(path)) != 0) {
		return err_set(e, ERR_CONFIG, "state directory path too long");
	}
	if (fs_read_file(path, SIGN_FILE_MAX, &buf, &len) == 0) {
		if (sign_keyring_parse(buf, len, 0, &t->kr, e) != 0) {
			e->kind = ERR_KEYRING;
			err_prefix(e, "%s", path);
			goto out;
		}
		if (bootstrap != NULL && sign_keyring_read(bootstrap, 0, &boot, NULL) == 0 &&
		    boot.version > t->kr.version) {
			log_warnx("release signatures: %s holds keyring version %lld, %s version %lld: "
			    "the state's is used (newer versions come by POST /keyring)", bootstrap,
			    (long long)boot.version, path, (long long)t->kr.version);
		}
		rc = 0;
		goto out;
	}
	if (errno != ENOENT) {
		err_sys_kind(e, ERR_KEYRING, "read %s", path);
		goto out;
	}
	if (bootstrap == NULL) {
		rc = 0; /* no keyring */
		goto out;
	}
	if (fs_read_file(bootstrap, SIGN_FILE_MAX, &buf, &len) != 0) {
		err_sys_kind(e, ERR_KEYRING, "read release_keyring %s", bootstrap);
		goto out;
	}
	if (sign_keyring_parse(buf, len, 0, &t->kr, e) != 0) {
		e->kind = ERR_KEYRING;
		err_prefix(e, "release_keyring %s", bootstrap);
		goto out;
	}
	if (trust_keyring_write(t, buf, len, e) != 0) {
		e->kind = ERR_KEYRING;
		sign_keyring_free(&t->kr);
		goto out;
	}
	log_info("release signatures: keyring version %lld from %s", (long long)t->kr.version,
	    bootstrap);
	rc = 0;
out:
	sign_keyring_free(&boot);
	free(buf);
	return rc;
}

/* ---- life cycle, status ---- */

int
trust_open(const struct trust_config *cfg, const struct release_info *active,
    struct trust **out, struct err *e)
{
	struct trust *t = calloc(1, sizeof(*t));
	struct err le = ERR_INIT;
	const char *compat = cfg->compatible != NULL ? cfg->compatible : SIGN_DEFAULT_COMPATIBLE;

	if (t == NULL) {
		return err_set(e, ERR_NOMEM, "out of memory");
	}
	if (!release_ident_valid(compat) ||
	    strlcpy_chk(t->state_dir, cfg->state_dir, sizeof(t->state_dir)) != 0) {
		free(t);
		return err_set(e, ERR_CONFIG, "compatible must be 1-%d characters of A-Z a-z 0-9 "
		    ". _ + ~ -, starting with a letter or digit", SIGN_IDENT_MAX);
	}
	memcpy(t->compatible, compat, strlen(compat) + 1);
	t->require_signed = cfg->require_signed;
	sign_keyring_init(&t->kr);
	if (pthread_mutex_init(&t->mu, NULL) != 0) {
		free(t);
		return err_set(e, ERR_INTERNAL, "mutex");
	}
	if (trust_floor_read(t, &le) != 0 || trust_keyring_load(t, cfg->bootstrap, &le) != 0) {
		trust_invalidate(t, &le);
	} else if (t->require_signed && t->kr.version == 0) {
		err_set(&le, ERR_KEYRING, "require_signed is set but there is no keyring "
		    "(release_keyring)");
		trust_invalidate(t, &le);
	}
	/* A crash after a commit and before its floor write: finish it now. */
	if (!t->invalid && active != NULL && active->min_security_version > t->floor) {
		if (trust_floor_write(t, active->min_security_version, active->id, &le) != 0) {
			trust_invalidate(t, &le);
		} else {
			log_info("release signatures: security floor %lld -> %lld (the active "
			    "release's)", (long long)t->floor, active->min_security_version);
			t->floor = active->min_security_version;
			(void)snprintf(t->raised_by, sizeof(t->raised_by), "%s", active->id);
		}
	}
	*out = t;
	return 0;
}

void
trust_free(struct trust *t)
{
	if (t == NULL) {
		return;
	}
	sign_keyring_free(&t->kr);
	pthread_mutex_destroy(&t->mu);
	free(t);
}

void
trust_status(struct trust *t, struct trust_status *st)
{
	memset(st, 0, sizeof(*st));
	pthread_mutex_lock(&t->mu);
	st->mode = t->invalid ? "keyring_invalid" : t->require_signed ? "required" : "unsigned";
	st->floor = t->floor;
	st->keyring_version = t->kr.version;
	memcpy(st->compatible, t->compatible, sizeof(st->compatible));
	memcpy(st->reason, t->reason, sizeof(st->reason));
	pthread_mutex_unlock(&t->mu);
}

/* ---- the install steps ---- */

static int
trust_refuse_invalid(const struct trust *t, struct err *e)
{
	return err_set(e, ERR_KEYRING, "this host's keyring is unusable, every install is refused "
	    "until it is repaired: %s", t->reason);
}

int
trust_check_signature(struct trust *t, const char *tsig, size_t len, const char *sha256,
    unsigned kind, struct trust_verdict *v, struct err *e)
{
	struct trust_verdict out;
	struct sign_want w;
	int rc = -1;

	memset(&out, 0, sizeof(out));
	pthread_mutex_lock(&t->mu);
	if (t->invalid) {
		trust_refuse_invalid(t, e);
		goto out;
	}
	if (tsig == NULL || t->kr.version == 0) {
		if (tsig == NULL && t->require_signed) {
			err_set(e, ERR_SIGNATURE, "unsigned release: this host requires a signature "
			    "(form part 'tsig' before 'tarball')");
			goto out;
		}
		if (t->floor > 0) {
			err_set(e, ERR_FLOOR, "an unsigned release has security version 0, below this "
			    "host's security floor %lld", (long long)t->floor);
			goto out;
		}
		if (tsig != NULL) {
			log_warnx("release signatures: a signature came, but this host has no keyring "
			    "to check it: installing as unsigned");
		}
		*v = out;
		rc = 0;
		goto out;
	}
	memset(&w, 0, sizeof(w));
	w.compatible = t->compatible;
	w.sha256 = sha256 != NULL && sha256[0] != '\0' ? sha256 : NULL;
	w.size = -1; /* checked at the end (trust_check_bytes) */
	w.kind = kind;
	w.floor = t->floor;
	if (sign_release_check(&t->kr, tsig, len, &w, &out.v, e) != 0) {
		if (e != NULL && e->kind == ERR_FLOOR && t->raised_by[0] != '\0') {
			err_prefix(e, "floor raised by release %s", t->raised_by);
		}
		goto out;
	}
	out.is_signed = 1;
	*v = out;
	rc = 0;
out:
	pthread_mutex_unlock(&t->mu);
	return rc;
}

int
trust_check_bytes(const struct trust_verdict *v, const char *digest, uint64_t size,
    struct err *e)
{
	if (!v->is_signed) {
		return 0;
	}
	if (strcasecmp(v->v.st.sha256, digest) != 0) {
		return err_set(e, ERR_STATEMENT, "the upload's sha256 %.16s... is not the signed "
		    "one %.16s...", digest, v->v.st.sha256);
	}
	if ((uint64_t)v->v.st.size != size) {
		return err_set(e, ERR_STATEMENT, "the upload has %llu bytes, the signed statement "
		    "%lld", (unsigned long long)size, (long long)v->v.st.size);
	}
	return 0;
}

int
trust_check_files(const struct trust_verdict *v, const char *files_sha256, struct err *e)
{
	if (!v->is_signed) {
		return 0;
	}
	if (v->v.st.manifest_sha256[0] == '\0') {
		return err_set(e, ERR_DELTA_MISMATCH, "the signed statement has no manifest_sha256: "
		    "this release cannot be assembled from a delta");
	}
	if (strcasecmp(v->v.st.manifest_sha256, files_sha256) != 0) {
		return err_set(e, ERR_DELTA_MISMATCH, "files.json's sha256 %.16s... is not the signed "
		    "manifest_sha256 %.16s...", files_sha256, v->v.st.manifest_sha256);
	}
	return 0;
}

int
trust_check_manifest(const struct trust_verdict *v, const char *name, const char *version,
    struct err *e)
{
	return v->is_signed ? sign_statement_match(&v->v.st, name, version, e) : 0;
}

void
trust_record(const struct trust_verdict *v, struct release_info *ri)
{
	size_t off = 0;

	ri->security_version = 0;
	ri->min_security_version = 0;
	ri->signed_by[0] = '\0';
	if (!v->is_signed) {
		return;
	}
	ri->security_version = v->v.st.security_version;
	ri->min_security_version = v->v.st.min_security_version;
	for (size_t i = 0; i < v->v.nsigned; i++) {
		int n = snprintf(ri->signed_by + off, sizeof(ri->signed_by) - off, "%s%s",
		    i > 0 ? "," : "", v->v.signed_by[i]);

		if (n < 0 || (size_t)n >= sizeof(ri->signed_by) - off) {
			break;
		}
		off += (size_t)n;
	}
}

int
trust_commit(struct trust *t, const struct release_info *ri, struct err *e)
{
	int rc = 0;

	pthread_mutex_lock(&t->mu);
	if (ri->min_security_version > t->floor) {
		rc = trust_floor_write(t, ri->min_security_version, ri->id, e);
		if (rc == 0) {
			log_info("release signatures: security floor %lld -> %lld (release %s)",
			    (long long)t->floor, ri->min_security_version, ri->id);
			t->floor = ri->min_security_version;
			(void)snprintf(t->raised_by, sizeof(t->raised_by), "%s", ri->id);
		}
	}
	pthread_mutex_unlock(&t->mu);
	return rc;
}

int
trust_check_rollback(struct trust *t, const struct release_info *target, struct err *e)
{
	int rc = 0;

	pthread_mutex_lock(&t->mu);
	if (t->invalid) {
		rc = trust_refuse_invalid(t, e);
	} else if (target->security_version < t->floor) {
		rc = err_set(e, ERR_FLOOR, "the previous release %s (%s) has security version %lld, "
		    "below this host's security floor %lld%s%s", target->id, target->version,
		    target->security_version, (long long)t->floor,
		    t->raised_by[0] != '\0' ? " raised by release " : "", t->raised_by);
	}
	pthread_mutex_unlock(&t->mu);
	return rc;
}

int
trust_keyring_update(struct trust *t, const char *buf, size_t len, int64_t *version,
    struct err *e)
{
	struct sign_keyring next;
	int rc = -1;

	sign_keyring_init(&next);
	pthread_mutex_lock(&t->mu);
	if (t->invalid) {
		trust_refuse_invalid(t, e);
		goto out;
	}
	if (sign_keyring_parse(buf, len, 0, &next, e) != 0) {
		goto out;
	}
	if (t->kr.version > 0 && sign_keyring_check_next(&t->kr, &next, e) != 0) {
		goto out;
	}
	if (trust_keyring_write(t, buf, len, e) != 0) {
		goto out;
	}
	log_info("release signatures: keyring version %lld -> %lld", (long long)t->kr.version,
	    (long long)next.version);
	sign_keyring_free(&t->kr);
	t->kr = next;
	sign_keyring_init(&next);
	if (version != NULL) {
		*version = t->kr.version;
	}
	rc = 0;
out:
	pthread_mutex_unlock(&t->mu);
	sign_keyring_free(&next);
	return rc;
}
