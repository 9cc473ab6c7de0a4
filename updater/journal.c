#include "updater/journal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/fs.h"
#include "common/json.h"
#include "common/log.h"

#define JOURNAL_MAX_FILE (64 * 1024)

static const char *const journal_kinds[] = { "", "update", "rollback" };
static const char *const journal_phases[] = { "", "staging", "switching", "committing",
	"restoring" };

const char *
journal_kind_name(enum journal_kind k)
{
	return (unsigned)k < ARRAY_LEN(journal_kinds) && k != 0 ? journal_kinds[k] : "unknown";
}

const char *
journal_phase_name(enum journal_phase p)
{
	return (unsigned)p < ARRAY_LEN(journal_phases) && p != 0 ? journal_phases[p] : "unknown";
}

static int
journal_lookup(const char *const *names, size_t n, const char *s)
{
	for (size_t i = 1; i < n; i++) {
		if (strcmp(names[i], s) == 0) {
			return (int)i;
		}
	}
	return -1;
}

int
journal_new_id(char out[JOURNAL_ID_LEN], struct err *e)
{
	unsigned char rnd[4];
	char hex[9], stamp[20];
	struct tm tm;
	time_t now = time(NULL);

	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
		return err_sys(e, "operation id: getrandom");
	}
	if (gmtime_r(&now, &tm) == NULL ||
	    strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm) == 0) {
		return err_set(e, ERR_INTERNAL, "operation id: cannot format the time");
	}
	hex_encode(rnd, sizeof(rnd), hex);
	snprintf(out, JOURNAL_ID_LEN, "%s-%s", stamp, hex);
	return 0;
}

static int
journal_path(const char *root, const char *name, char *out, size_t len)
{
	int n = snprintf(out, len, "%s/state/%s", root, name);

	if (n < 0 || (size_t)n >= len) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

int
journal_write(const char *root, const struct journal_op *op, struct err *e)
{
	char path[PATH_MAX];
	cJSON *o = NULL;
	int rc = -1;

	if (journal_path(root, "journal.json", path, sizeof(path)) != 0) {
		return err_sys(e, "write journal");
	}
	o = cJSON_CreateObject();
	if (o == NULL || json_add_str(o, "id", op->id) != 0 ||
	    json_add_str(o, "kind", journal_kind_name(op->kind)) != 0 ||
	    json_add_str(o, "phase", journal_phase_name(op->phase)) != 0 ||
	    json_add_str(o, "new_id", op->new_id) != 0 ||
	    json_add_str(o, "old_active_id", op->old_active_id) != 0 ||
	    json_add_str(o, "old_prev_id", op->old_prev_id) != 0 ||
	    json_add_str(o, "sha256", op->sha256) != 0 ||
	    json_add_str(o, "caller", op->caller) != 0 ||
	    json_add_int(o, "started", op->started) != 0 ||
	    json_add_str(o, "request_id", op->request_id) != 0 ||
	    json_add_bool(o, "keep_prev", op->keep_prev) != 0) {
		err_set(e, ERR_NOMEM, "write journal: out of memory");
		goto out;
	}
	if (json_write_atomic(path, o, 0600, e) != 0) {
		goto out;
	}
	rc = 0;
out:
	cJSON_Delete(o);
	return rc;
}

struct journal_raw {
	char id[JOURNAL_ID_LEN];
	char kind[16];
	char phase[16];
	char new_id[JOURNAL_ID_LEN];
	char old_active_id[JOURNAL_ID_LEN];
	char old_prev_id[JOURNAL_ID_LEN];
	char sha256[65];
	char caller[65];
	int64_t started;
	char request_id[JOURNAL_REQUEST_ID_LEN];
	int keep_prev;
};

int
journal_read(const char *root, struct journal_op *op, struct err *e)
{
	static const struct json_field fields[] = {
		JSON_F_STR("id", struct journal_raw, id, JSON_REQUIRED, 1),
		JSON_F_STR("kind", struct journal_raw, kind, JSON_REQUIRED, 1),
		JSON_F_STR("phase", struct journal_raw, phase, JSON_REQUIRED, 1),
		JSON_F_STR("new_id", struct journal_raw, new_id, JSON_REQUIRED, 0),
		JSON_F_STR("old_active_id", struct journal_raw, old_active_id, JSON_REQUIRED, 0),
		JSON_F_STR("old_prev_id", struct journal_raw, old_prev_id, JSON_REQUIRED, 0),
		JSON_F_STR("sha256", struct journal_raw, sha256, JSON_REQUIRED, 0),
		JSON_F_STR("caller", struct journal_raw, caller, JSON_REQUIRED, 0),
		JSON_F_INT("started", struct journal_raw, started, JSON_REQUIRED, 0, JSON_INT_MAX),
		/* Absent from journals of older updaters. */
		JSON_F_STR("request_id", struct journal_raw, request_id, 0, 0),
		JSON_F_BOOL("keep_prev", struct journal_raw, keep_prev, 0),
	};
	char path[PATH_MAX];
	char *buf = NULL;
	size_t len = 0;
	cJSON *o = NULL;
	struct journal_raw raw;
	int kind, phase, rc = -1;

	if (journal_path(root, "journal.json", path, sizeof(path)) != 0) {
		return err_sys(e, "read journal");
	}
	if (fs_read_file(path, JOURNAL_MAX_FILE, &buf, &len) != 0) {
		if (errno == ENOENT) {
			return 0;
		}
		return err_sys(e, "read %s", path);
	}
	memset(&raw, 0, sizeof(raw));
	o = json_parse_object(buf, len, e);
	if (o == NULL || json_read_fields(o, fields, ARRAY_LEN(fields), 0, &raw, e) != 0) {
		err_prefix(e, "%s", path);
		goto out;
	}
	kind = journal_lookup(journal_kinds, ARRAY_LEN(journal_kinds), raw.kind);
	phase = journal_lookup(journal_phases, ARRAY_LEN(journal_phases), raw.phase);
	if (kind < 0 || phase < 0) {
		err_set(e, ERR_FORMAT, "%s: unknown kind or phase", path);
		goto out;
	}
	memset(op, 0, sizeof(*op));
	memcpy(op->id, raw.id, sizeof(op->id));
	memcpy(op->new_id, raw.new_id, sizeof(op->new_id));
	memcpy(op->old_active_id, raw.old_active_id, sizeof(op->old_active_id));
	memcpy(op->old_prev_id, raw.old_prev_id, sizeof(op->old_prev_id));
	memcpy(op->sha256, raw.sha256, sizeof(op->sha256));
	memcpy(op->caller, raw.caller, sizeof(op->caller));
	op->kind = (enum journal_kind)kind;
	op->phase = (enum journal_phase)phase;
	op->started = raw.started;
	memcpy(op->request_id, raw.request_id, sizeof(op->request_id));
	op->keep_prev = raw.keep_prev;
	rc = 1;
out:
	cJSON_Delete(o);
	free(buf);
	return rc;
}

int
journal_clear(const char *root, struct err *e)
{
	char path[PATH_MAX];

	if (journal_path(root, "journal.json", path, sizeof(path)) != 0 ||
	    (unlink(path) != 0 && errno != ENOENT) || fs_fsync_parent(path) != 0) {
		return err_sys(e, "clear journal");
	}
	return 0;
}

/* Keep the newest lines of PATH that fit in KEEP bytes (atomic rewrite). */
static int
journal_history_trim(const char *path, size_t keep)
{
	char *buf = NULL;
	size_t len = 0, start;
	int rc;

	if (fs_read_file(path, (size_t)16 * 1024 * 1024, &buf, &len) != 0) {
		return -1;
	}
	start = len > keep ? len - keep : 0;
	/* Start at a line boundary. */
	while (start > 0 && start < len && buf[start - 1] != '\n') {
		start++;
	}
	rc = fs_write_atomic(path, buf + start, len - start, 0600);
	free(buf);
	return rc;
}

int
journal_history_append(const char *root, const cJSON *entry, size_t max_bytes, struct err *e)
{
	char path[PATH_MAX];
	char *line = NULL;
	size_t len;
	struct stat st;
	int fd = -1, rc = -1;

	if (max_bytes == 0) {
		max_bytes = JOURNAL_HISTORY_MAX_BYTES;
	}
	if (journal_path(root, "history.jsonl", path, sizeof(path)) != 0) {
		return err_sys(e, "history");
	}
	line = json_print_compact(entry);
	if (line == NULL) {
		return err_set(e, ERR_NOMEM, "history: out of memory");
	}
	len = strlen(line);
	line[len] = '\n'; /* replaces the NUL; write exactly len + 1 bytes */
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		goto out;
	}
	if (fstat(fd, &st) != 0) {
		goto out;
	}
	if (fs_write_all(fd, line, len + 1) != 0 || fsync(fd) != 0) {
		/* A torn line (ENOSPC midway) would swallow the next one: cut it off. */
		int saved = errno;

		if (ftruncate(fd, st.st_size) == 0) {
			(void)fsync(fd);
		}
		errno = saved;
		goto out;
	}
	if (fstat(fd, &st) != 0) {
		goto out;
	}
	if (close(fd) != 0) {
		fd = -1;
		goto out;
	}
	fd = -1;
	if (fs_fsync_parent(path) != 0) {
		goto out;
	}
	if ((size_t)st.st_size > max_bytes && journal_history_trim(path, max_bytes / 2) != 0) {
		goto out;
	}
	rc = 0;
out:
	if (rc != 0) {
		err_sys(e, "append to %s", path);
	}
	if (fd >= 0) {
		close(fd);
	}
	free(line);
	return rc;
}

cJSON *
journal_history_read(const char *root)
{
	char path[PATH_MAX];
	char *buf = NULL;
	size_t len = 0, i = 0;
	cJSON *arr = NULL;

	if (journal_path(root, "history.jsonl", path, sizeof(path)) != 0) {
		return NULL;
	}
	arr = cJSON_CreateArray();
	if (arr == NULL) {
		return NULL;
	}
	if (fs_read_file(path, (size_t)16 * 1024 * 1024, &buf, &len) != 0) {
		if (errno == ENOENT) {
			return arr;
		}
		cJSON_Delete(arr);
		return NULL;
	}
	while (i < len) {
		char *nl = memchr(buf + i, '\n', len - i);
		size_t end = nl != NULL ? (size_t)(nl - buf) : len;
		cJSON *o = json_parse_object(buf + i, end - i, NULL);

		if (o != NULL) {
			cJSON_AddItemToArray(arr, o);
		}
		i = end + 1;
	}
	free(buf);
	return arr;
}
