#include "updater/handover.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/fs.h"
#include "common/json.h"

#define HANDOVER_MAX (4 * 1024)

static int
handover_path(char *buf, size_t len, const char *tree_root, const char *name, struct err *e)
{
	int n = snprintf(buf, len, "%s/state/%s", tree_root, name);

	if (n < 0 || (size_t)n >= len) {
		return err_set(e, ERR_INTERNAL, "%s/state/%s: path too long", tree_root, name);
	}
	return 0;
}

int
handover_write(const char *tree_root, const struct handover *h, struct err *e)
{
	char p[PATH_MAX], *txt = NULL;
	cJSON *o = cJSON_CreateObject();
	int rc = -1;

	if (handover_path(p, sizeof(p), tree_root, HANDOVER_FILE, e) != 0) {
		goto out;
	}
	if (o == NULL || json_add_str(o, "op_id", h->op_id) != 0 ||
	    json_add_str(o, "new_version", h->new_version) != 0 ||
	    json_add_str(o, "old_version", h->old_version) != 0 ||
	    json_add_str(o, "sha256", h->sha256) != 0 || json_add_int(o, "starts", h->starts) != 0 ||
	    json_add_int(o, "queued_at", h->queued_at) != 0 ||
	    (txt = json_print_compact(o)) == NULL) {
		err_set(e, ERR_NOMEM, "handover record: out of memory");
		goto out;
	}
	if (fs_write_atomic(p, txt, strlen(txt), 0600) != 0) {
		err_sys(e, "write %s", p);
		goto out;
	}
	rc = 0;
out:
	free(txt);
	cJSON_Delete(o);
	return rc;
}

int
handover_read(const char *tree_root, struct handover *h, struct err *e)
{
	static const struct json_field fields[] = {
		JSON_F_STR("op_id", struct handover, op_id, JSON_REQUIRED, 1),
		JSON_F_STR("new_version", struct handover, new_version, JSON_REQUIRED, 1),
		JSON_F_STR("old_version", struct handover, old_version, JSON_REQUIRED, 0),
		JSON_F_STR("sha256", struct handover, sha256, JSON_REQUIRED, 0),
		JSON_F_INT("starts", struct handover, starts, JSON_REQUIRED, 0, 1000000),
		JSON_F_INT("queued_at", struct handover, queued_at, JSON_REQUIRED, 0, LLONG_MAX),
	};
	struct handover tmp;
	char p[PATH_MAX];
	char *buf = NULL;
	size_t len = 0;
	cJSON *o;

	if (handover_path(p, sizeof(p), tree_root, HANDOVER_FILE, e) != 0) {
		return -1;
	}
	if (fs_read_file(p, HANDOVER_MAX, &buf, &len) != 0) {
		if (errno == ENOENT) {
			return 0;
		}
		return err_sys(e, "read %s", p);
	}
	memset(&tmp, 0, sizeof(tmp));
	o = json_parse_object(buf, len, e);
	free(buf);
	if (o == NULL || json_read_fields(o, fields, ARRAY_LEN(fields), 0, &tmp, e) != 0) {
		cJSON_Delete(o);
		return err_prefix(e, "%s", p);
	}
	cJSON_Delete(o);
	*h = tmp;
	return 1;
}

int
handover_clear(const char *tree_root, struct err *e)
{
	char p[PATH_MAX];

	if (handover_path(p, sizeof(p), tree_root, HANDOVER_FILE, e) != 0) {
		return -1;
	}
	if ((unlink(p) != 0 && errno != ENOENT) || fs_fsync_parent(p) != 0) {
		return err_sys(e, "remove %s", p);
	}
	return 0;
}

int
handover_record(const char *tree_root, const char *history_root, const char *id,
    const char *request_id, const char *result, const char *from_version,
    const char *to_version, const char *sha256, const char *reason, struct err *e)
{
	char p[PATH_MAX], stamp[32], *txt = NULL;
	cJSON *o = cJSON_CreateObject(), *h = cJSON_CreateObject();
	int rc = -1;

	iso8601_utc(time(NULL), stamp, sizeof(stamp));
	if (handover_path(p, sizeof(p), tree_root, HANDOVER_LAST_FILE, e) != 0) {
		goto out;
	}
	if (o == NULL || h == NULL || json_add_str(o, "id", id) != 0 ||
	    json_add_str(o, "result", result) != 0 ||
	    json_add_str(o, "from_version", from_version) != 0 ||
	    json_add_str(o, "to_version", to_version) != 0 ||
	    json_add_str(o, "reason", reason) != 0 || json_add_str(o, "at", stamp) != 0 ||
	    (txt = json_print_compact(o)) == NULL || json_add_str(h, "id", id) != 0 ||
	    json_add_str(h, "kind", "update-self") != 0 ||
	    (request_id[0] != '\0' && json_add_str(h, "request_id", request_id) != 0) ||
	    json_add_str(h, "finished_at", stamp) != 0 || json_add_str(h, "sha256", sha256) != 0 ||
	    json_add_str(h, "version", to_version) != 0 ||
	    json_add_str(h, "from_version", from_version) != 0 ||
	    json_add_str(h, "result", result) != 0 || json_add_str(h, "error", reason) != 0) {
		err_set(e, ERR_NOMEM, "self-update record: out of memory");
		goto out;
	}
	if (fs_write_atomic(p, txt, strlen(txt), 0600) != 0) {
		err_sys(e, "write %s", p);
		goto out;
	}
	if (journal_history_append(history_root, h, 0, e) != 0) {
		goto out;
	}
	rc = 0;
out:
	free(txt);
	cJSON_Delete(o);
	cJSON_Delete(h);
	return rc;
}

cJSON *
handover_last(const char *tree_root)
{
	char p[PATH_MAX];
	char *buf = NULL;
	size_t len = 0;
	cJSON *o;

	if (handover_path(p, sizeof(p), tree_root, HANDOVER_LAST_FILE, NULL) != 0 ||
	    fs_read_file(p, HANDOVER_MAX, &buf, &len) != 0) {
		return NULL;
	}
	o = json_parse_object(buf, len, NULL);
	free(buf);
	return o;
}
