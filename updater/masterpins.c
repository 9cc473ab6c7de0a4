#include "updater/masterpins.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fs.h"
#include "common/json.h"
#include "common/testhook.h"

/* 64 hex digits, copied lowercase into OUT. */
static int
masterpins_fp_norm(const char *s, char out[TLS_FP_HEX_LEN + 1])
{
	size_t i;

	if (s == NULL || strlen(s) != TLS_FP_HEX_LEN) {
		return -1;
	}
	for (i = 0; i < TLS_FP_HEX_LEN; i++) {
		if (!isxdigit((unsigned char)s[i])) {
			return -1;
		}
		out[i] = (char)tolower((unsigned char)s[i]);
	}
	out[TLS_FP_HEX_LEN] = '\0';
	return 0;
}

/* Is FP among the N fingerprints at LIST (entries TLS_FP_HEX_LEN + 1 bytes apart)? */
static int
masterpins_has(const char *list, size_t n, const char *fp)
{
	for (size_t i = 0; i < n; i++) {
		if (strcmp(list + i * (TLS_FP_HEX_LEN + 1), fp) == 0) {
			return 1;
		}
	}
	return 0;
}

/* Read the JSON array ARR of fingerprints into LIST (*N entries). */
static int
masterpins_read_list(const cJSON *arr, const char *key, char (*list)[TLS_FP_HEX_LEN + 1],
    size_t *n, struct err *e)
{
	const cJSON *it;

	*n = 0;
	if (arr == NULL) {
		return 0;
	}
	cJSON_ArrayForEach(it, arr)
	{
		char fp[TLS_FP_HEX_LEN + 1];

		if (*n >= MASTERPINS_MAX) {
			return err_set(e, ERR_FORMAT, "key '%s': more than %d fingerprints", key,
			    MASTERPINS_MAX);
		}
		if (masterpins_fp_norm(cJSON_GetStringValue(it), fp) != 0) {
			return err_set(e, ERR_FORMAT, "key '%s': a fingerprint is not 64 hex digits",
			    key);
		}
		if (!masterpins_has(list[0], *n, fp)) {
			memcpy(list[(*n)++], fp, sizeof(fp));
		}
	}
	return 0;
}

int
masterpins_parse(struct masterpins *mp, const char *buf, size_t len, struct err *e)
{
	struct body {
		const cJSON *added;
		const cJSON *retired;
	} b = { NULL, NULL };
	const struct json_field fields[] = {
		JSON_F_ARRAY("added", struct body, added, 0),
		JSON_F_ARRAY("retired", struct body, retired, 0),
	};
	struct masterpins tmp = *mp;
	cJSON *root;
	int rc = -1;

	root = json_parse_object_ex(buf, len, MASTERPINS_MAX_BYTES, 4, e);
	if (root == NULL) {
		return -1;
	}
	if (json_read_fields(root, fields, ARRAY_LEN(fields), 0, &b, e) != 0 ||
	    masterpins_read_list(b.added, "added", tmp.added, &tmp.nadded, e) != 0 ||
	    masterpins_read_list(b.retired, "retired", tmp.retired, &tmp.nretired, e) != 0) {
		goto out;
	}
	*mp = tmp;
	rc = 0;
out:
	cJSON_Delete(root);
	return rc;
}

int
masterpins_load(struct masterpins *mp, char *const *cfg_pins, const char *state_dir,
    struct err *e)
{
	char *buf = NULL;
	size_t len = 0;
	int rc;

	memset(mp, 0, sizeof(*mp));
	for (char *const *p = cfg_pins; p != NULL && *p != NULL; p++) {
		char fp[TLS_FP_HEX_LEN + 1];

		if (mp->ncfg >= MASTERPINS_MAX) {
			return err_set(e, ERR_CONFIG, "master_fingerprints: more than %d",
			    MASTERPINS_MAX);
		}
		if (masterpins_fp_norm(*p, fp) != 0) {
			return err_set(e, ERR_CONFIG, "master_fingerprints: '%s' is not 64 hex digits",
			    *p);
		}
		if (!masterpins_has(mp->cfg[0], mp->ncfg, fp)) {
			memcpy(mp->cfg[mp->ncfg++], fp, sizeof(fp));
		}
	}
	if (state_dir == NULL) {
		return 0;
	}
	if ((size_t)snprintf(mp->path, sizeof(mp->path), "%s/%s", state_dir, MASTERPINS_FILE) >=
	    sizeof(mp->path)) {
		return err_set(e, ERR_CONFIG, "state directory path too long");
	}
	if (fs_read_file(mp->path, MASTERPINS_MAX_BYTES, &buf, &len) != 0) {
		if (errno == ENOENT) {
			return 0;
		}
		err_sys(e, "%s", mp->path);
		return 1;
	}
	rc = masterpins_parse(mp, buf, len, e);
	free(buf);
	if (rc != 0) {
		err_prefix(e, "%s", mp->path);
		return 1;
	}
	return 0;
}

int
masterpins_pinned(const struct masterpins *mp)
{
	return mp->ncfg > 0;
}

int
masterpins_allowed(const struct masterpins *mp, const char *fp)
{
	char n[TLS_FP_HEX_LEN + 1];

	if (!masterpins_pinned(mp)) {
		return 1;
	}
	if (masterpins_fp_norm(fp, n) != 0) {
		return 0;
	}
	if (masterpins_has(mp->added[0], mp->nadded, n)) {
		return 1;
	}
	return masterpins_has(mp->cfg[0], mp->ncfg, n) &&
	    !masterpins_has(mp->retired[0], mp->nretired, n);
}

/* Write NEXT's lists to the state file, then make them MP's. */
static int
masterpins_save(struct masterpins *mp, const struct masterpins *next, struct err *e)
{
	cJSON *root = cJSON_CreateObject();
	cJSON *a = root != NULL ? json_add_array(root, "added") : NULL;
	cJSON *r = root != NULL ? json_add_array(root, "retired") : NULL;
	char *text = NULL;
	int rc = -1;

	if (a == NULL || r == NULL) {
		err_set(e, ERR_NOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < next->nadded; i++) {
		if (json_array_add_str(a, next->added[i]) != 0) {
			err_set(e, ERR_NOMEM, "out of memory");
			goto out;
		}
	}
	for (size_t i = 0; i < next->nretired; i++) {
		if (json_array_add_str(r, next->retired[i]) != 0) {
			err_set(e, ERR_NOMEM, "out of memory");
			goto out;
		}
	}
	text = cJSON_PrintUnformatted(root);
	if (text == NULL) {
		err_set(e, ERR_NOMEM, "out of memory");
		goto out;
	}
	if (next->path[0] != '\0' && fs_write_atomic(next->path, text, strlen(text), 0644) != 0) {
		err_sys(e, "%s", next->path);
		goto out;
	}
	testhook_point("pins.written");
	*mp = *next;
	rc = 0;
out:
	free(text);
	cJSON_Delete(root);
	return rc;
}

int
masterpins_add(struct masterpins *mp, const char *fp, struct err *e)
{
	struct masterpins next = *mp;
	char n[TLS_FP_HEX_LEN + 1];
	size_t j = 0;

	if (masterpins_fp_norm(fp, n) != 0) {
		return err_set(e, ERR_BAD_REQUEST, "a fingerprint is 64 hex digits");
	}
	if (!masterpins_pinned(mp) || masterpins_allowed(mp, n)) {
		return 0;
	}
	if (masterpins_has(mp->cfg[0], mp->ncfg, n)) {
		/* A configured pin retired earlier comes back. */
		for (size_t i = 0; i < mp->nretired; i++) {
			if (strcmp(mp->retired[i], n) != 0) {
				memcpy(next.retired[j++], mp->retired[i], sizeof(n));
			}
		}
		next.nretired = j;
		return masterpins_save(mp, &next, e);
	}
	if (next.nadded >= MASTERPINS_MAX) {
		return err_set(e, ERR_CONFLICT,
		    "%d master pins added and none confirmed: finish the rollover first",
		    MASTERPINS_MAX);
	}
	memcpy(next.added[next.nadded++], n, sizeof(n));
	return masterpins_save(mp, &next, e);
}

int
masterpins_confirm(struct masterpins *mp, const char *fp, struct err *e)
{
	struct masterpins next = *mp;
	char n[TLS_FP_HEX_LEN + 1];

	if (masterpins_fp_norm(fp, n) != 0) {
		return err_set(e, ERR_BAD_REQUEST, "a fingerprint is 64 hex digits");
	}
	if (!masterpins_pinned(mp)) {
		return 0;
	}
	if (!masterpins_allowed(mp, n)) {
		return err_set(e, ERR_CONFLICT, "%s is not pinned: add it first", n);
	}
	next.nadded = 0;
	next.nretired = 0;
	if (!masterpins_has(mp->cfg[0], mp->ncfg, n)) {
		memcpy(next.added[next.nadded++], n, sizeof(n));
	}
	for (size_t i = 0; i < mp->ncfg; i++) {
		if (strcmp(mp->cfg[i], n) != 0) {
			memcpy(next.retired[next.nretired++], mp->cfg[i], sizeof(n));
		}
	}
	if (next.nadded == mp->nadded && next.nretired == mp->nretired &&
	    memcmp(next.added, mp->added, sizeof(next.added)) == 0 &&
	    memcmp(next.retired, mp->retired, sizeof(next.retired)) == 0) {
		return 0; /* confirmed before */
	}
	return masterpins_save(mp, &next, e);
}

int
masterpins_json(const struct masterpins *mp, cJSON *arr)
{
	for (size_t i = 0; i < mp->ncfg; i++) {
		if (masterpins_allowed(mp, mp->cfg[i]) && json_array_add_str(arr, mp->cfg[i]) != 0) {
			return -1;
		}
	}
	for (size_t i = 0; i < mp->nadded; i++) {
		if (!masterpins_has(mp->cfg[0], mp->ncfg,
			mp->added[i]) &&
		    json_array_add_str(arr, mp->added[i]) != 0) {
			return -1;
		}
	}
	return 0;
}

int
masterpins_request_parse(const char *buf, size_t len, enum masterpins_op *op,
    char fp[TLS_FP_HEX_LEN + 1], struct err *e)
{
	struct body {
		char add[TLS_FP_HEX_LEN + 1];
		char confirm[TLS_FP_HEX_LEN + 1];
	} b;
	const struct json_field fields[] = {
		JSON_F_STR("add", struct body, add, 0, 1),
		JSON_F_STR("confirm", struct body, confirm, 0, 1),
	};
	cJSON *root;
	int rc = -1;

	memset(&b, 0, sizeof(b));
	root = json_parse_object_ex(buf, len, MASTERPINS_MAX_BYTES, 4, e);
	if (root == NULL) {
		err_prefix(e, "body");
		e->kind = ERR_BAD_REQUEST;
		return -1;
	}
	if (json_read_fields(root, fields, ARRAY_LEN(fields), 0, &b, e) != 0) {
		e->kind = ERR_BAD_REQUEST;
		goto out;
	}
	if ((b.add[0] != '\0') == (b.confirm[0] != '\0')) {
		err_set(e, ERR_BAD_REQUEST, "the body holds one of 'add' and 'confirm'");
		goto out;
	}
	*op = b.add[0] != '\0' ? MASTERPINS_ADD : MASTERPINS_CONFIRM;
	if (masterpins_fp_norm(b.add[0] != '\0' ? b.add : b.confirm, fp) != 0) {
		err_set(e, ERR_BAD_REQUEST, "key '%s': 64 hex digits",
		    *op == MASTERPINS_ADD ? "add" : "confirm");
		goto out;
	}
	rc = 0;
out:
	cJSON_Delete(root);
	return rc;
}
