#include "updater/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/fs.h"
#include "common/json.h"
#include "common/log.h"
#include "common/testhook.h"

#define STORE_CURRENT_TARGET "releases/active"

void (*store_crash_hook)(const char *point);

static int
store_path(const struct store *s, const char *rel, char *out, size_t len)
{
	int n = snprintf(out, len, "%s/%s", s->root, rel);

	if (n < 0 || (size_t)n >= len) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

static int
slot_path(const struct store *s, const char *slot, char *out, size_t len)
{
	int n = snprintf(out, len, "%s/releases/%s", s->root, slot);

	if (n < 0 || (size_t)n >= len) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

/* 1 if SLOT is a real directory (not a symlink), 0 if absent, -1 on error. */
static int
slot_exists(const struct store *s, const char *slot)
{
	char p[PATH_MAX];
	struct stat st;

	if (slot_path(s, slot, p, sizeof(p)) != 0) {
		return -1;
	}
	if (lstat(p, &st) != 0) {
		return errno == ENOENT ? 0 : -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		errno = ENOTDIR;
		return -1;
	}
	return 1;
}

int
store_init(struct store *s, const char *root, unsigned failed_keep, struct err *e)
{
	char p[PATH_MAX];

	memset(s, 0, sizeof(*s));
	if (root == NULL || root[0] != '/') {
		return err_set(e, ERR_CONFIG, "install dir must be an absolute path");
	}
	if (strlcpy_chk(s->root, root, sizeof(s->root)) != 0) {
		return err_set(e, ERR_CONFIG, "install dir path too long");
	}
	s->failed_keep = failed_keep;
	if (fs_mkdir_p(root, 0755) != 0) {
		return err_sys(e, "create %s", root);
	}
	if (store_path(s, "releases/failed", p, sizeof(p)) != 0 || fs_mkdir_p(p, 0755) != 0) {
		return err_sys(e, "create %s/releases/failed", root);
	}
	if (store_path(s, "state", p, sizeof(p)) != 0 || fs_mkdir_p(p, 0700) != 0) {
		return err_sys(e, "create %s/state", root);
	}
	return 0;
}

int
store_release_read(const struct store *s, const char *slot, struct release_info *ri,
    struct err *e)
{
	char p[PATH_MAX];
	int ex, r;

	ex = slot_exists(s, slot);
	if (ex <= 0) {
		if (ex < 0) {
			err_sys(e, "releases/%s", slot);
		}
		return ex;
	}
	if (slot_path(s, slot, p, sizeof(p)) != 0) {
		return err_sys(e, "releases/%s", slot);
	}
	r = release_record_read(p, 0, ri, e);
	if (r == 0) {
		return err_set(e, ERR_FORMAT, "releases/%s/%s is missing", slot, RELEASE_RECORD_FILE);
	}
	return r < 0 ? -1 : 1;
}

int
store_release_write(const struct store *s, const char *slot, const struct release_info *ri,
    struct err *e)
{
	char p[PATH_MAX];

	if (slot_path(s, slot, p, sizeof(p)) != 0) {
		return err_sys(e, "releases/%s", slot);
	}
	return release_record_write(p, ri, e);
}

/* The install id in SLOT: 1 with ID set, 0 no slot, 2 slot without a valid record. */
static int
slot_id(const struct store *s, const char *slot, char id[JOURNAL_ID_LEN])
{
	struct release_info ri;
	int r = slot_exists(s, slot);

	id[0] = '\0';
	if (r <= 0) {
		return r;
	}
	if (store_release_read(s, slot, &ri, NULL) != 1) {
		return 2;
	}
	memcpy(id, ri.id, JOURNAL_ID_LEN);
	return 1;
}

static int
store_fsync_releases(const struct store *s)
{
	char p[PATH_MAX];

	if (store_path(s, "releases", p, sizeof(p)) != 0) {
		return -1;
	}
	return fs_fsync_dir(p);
}

static int
slot_rename(const struct store *s, const char *from, const char *to, struct err *e)
{
	char a[PATH_MAX], b[PATH_MAX];

	if (slot_path(s, from, a, sizeof(a)) != 0 || slot_path(s, to, b, sizeof(b)) != 0 ||
	    fs_rename_durable(a, b) != 0) {
		return err_sys(e, "rename releases/%s to releases/%s", from, to);
	}
	return 0;
}

/* Swap two slot directories atomically (RENAME_EXCHANGE), then fsync. */
static int
slot_exchange(const struct store *s, const char *x, const char *y, struct err *e)
{
	char a[PATH_MAX], b[PATH_MAX];

	if (slot_path(s, x, a, sizeof(a)) != 0 || slot_path(s, y, b, sizeof(b)) != 0 ||
	    renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE) != 0 ||
	    store_fsync_releases(s) != 0) {
		return err_sys(e, "exchange releases/%s and releases/%s", x, y);
	}
	return 0;
}

static int
slot_remove(const struct store *s, const char *slot, struct err *e)
{
	char p[PATH_MAX];

	if (slot_path(s, slot, p, sizeof(p)) != 0 || fs_rmtree(p) != 0 ||
	    store_fsync_releases(s) != 0) {
		return err_sys(e, "remove releases/%s", slot);
	}
	return 0;
}

static int
store_cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Keep the newest failed_keep quarantined releases (names sort by time). */
static void
store_trim_failed(const struct store *s)
{
	char p[PATH_MAX], q[PATH_MAX];
	char *names[256];
	size_t n = 0;
	DIR *d;
	struct dirent *de;

	if (store_path(s, "releases/failed", p, sizeof(p)) != 0 || (d = opendir(p)) == NULL) {
		return;
	}
	while ((de = readdir(d)) != NULL && n < ARRAY_LEN(names)) {
		if (de->d_name[0] == '.') {
			continue;
		}
		names[n] = strdup(de->d_name);
		if (names[n] != NULL) {
			n++;
		}
	}
	closedir(d);
	qsort(names, n, sizeof(names[0]), store_cmp_names);
	for (size_t i = 0; i < n; i++) {
		if (i + s->failed_keep < n &&
		    snprintf(q, sizeof(q), "%s/%s", p, names[i]) < (int)sizeof(q) &&
		    fs_rmtree(q) != 0) {
			log_warn("remove quarantined %s", q);
		}
		free(names[i]);
	}
}

/* Move SLOT (holding release ID) to releases/failed/ID. */
static int
slot_quarantine(const struct store *s, const char *slot, const char *id, struct err *e)
{
	char dst[64];
	char p[PATH_MAX];

	if (s->failed_keep == 0) {
		return slot_remove(s, slot, e);
	}
	snprintf(dst, sizeof(dst), "failed/%s", id[0] != '\0' ? id : "unknown");
	if (slot_path(s, dst, p, sizeof(p)) != 0 || fs_rmtree(p) != 0) {
		return err_sys(e, "remove releases/%s", dst);
	}
	if (slot_rename(s, slot, dst, e) != 0) {
		return -1;
	}
	store_trim_failed(s);
	return 0;
}

/* Make ROOT/current -> releases/active (when active exists and it differs). */
static int
store_ensure_current(const struct store *s, struct err *e)
{
	char p[PATH_MAX], target[PATH_MAX];
	ssize_t n;
	int ex = slot_exists(s, "active");

	if (ex < 0) {
		return err_sys(e, "releases/active");
	}
	if (ex == 0 || store_path(s, "current", p, sizeof(p)) != 0) {
		return 0;
	}
	n = readlink(p, target, sizeof(target) - 1);
	if (n >= 0) {
		target[n] = '\0';
		if (strcmp(target, STORE_CURRENT_TARGET) == 0) {
			return 0;
		}
	}
	if (fs_symlink_replace(STORE_CURRENT_TARGET, p) != 0) {
		return err_sys(e, "point %s at %s", p, STORE_CURRENT_TARGET);
	}
	return 0;
}

static int
store_unlink_current(const struct store *s, struct err *e)
{
	char p[PATH_MAX];

	if (store_path(s, "current", p, sizeof(p)) != 0) {
		return err_sys(e, "current");
	}
	if ((unlink(p) != 0 && errno != ENOENT) || fs_fsync_parent(p) != 0) {
		return err_sys(e, "remove %s", p);
	}
	return 0;
}

/*
 * Put the releases back as they were before OP (an update): the old active
 * wherever the switch left it goes back to active, the new release leaves
 * (quarantined when it was complete, removed when only staged), the old prev
 * comes back from prev.old.
 */
static int
store_undo_update(struct store *s, const struct journal_op *op, struct err *e)
{
	static const char *const where[] = { "active", "active.new", "prev" };
	const int first = op->old_active_id[0] == '\0';
	char id[JOURNAL_ID_LEN];
	int r;

	if (!first) {
		const char *found = NULL;

		for (size_t i = 0; i < ARRAY_LEN(where) && found == NULL; i++) {
			if (slot_id(s, where[i], id) == 1 && strcmp(id, op->old_active_id) == 0) {
				found = where[i];
			}
		}
		if (found == NULL) {
			return err_set(e, ERR_INTERNAL, "cannot undo %s: release %s not found", op->id,
			    op->old_active_id);
		}
		if (strcmp(found, "active") != 0) {
			r = slot_exists(s, "active");
			if (r < 0 ||
			    (r == 1 ? slot_exchange(s, found, "active", e)
				    : slot_rename(s, found, "active", e)) != 0) {
				return -1;
			}
			testhook_point("restore.old_active_back");
		}
	} else if (store_unlink_current(s, e) != 0) {
		return -1;
	}
	for (size_t i = 0; i < ARRAY_LEN(where); i++) {
		if (strcmp(where[i], "active") == 0 && !first) {
			continue;
		}
		r = slot_id(s, where[i], id);
		if (r < 0) {
			return err_sys(e, "releases/%s", where[i]);
		}
		if (r == 0 || (strcmp(where[i], "prev") == 0 && strcmp(id, op->new_id) != 0)) {
			continue;
		}
		if (op->phase != JOURNAL_STAGING && r == 1 && strcmp(id, op->new_id) == 0) {
			r = slot_quarantine(s, where[i], id, e);
		} else {
			r = slot_remove(s, where[i], e);
		}
		if (r != 0) {
			return -1;
		}
		testhook_point("restore.new_removed");
	}
	r = slot_exists(s, "prev.old");
	if (r < 0) {
		return err_sys(e, "releases/prev.old");
	}
	if (r == 1) {
		if (slot_exists(s, "prev") != 0) {
			return err_set(e, ERR_INTERNAL, "cannot undo %s: both prev and prev.old exist",
			    op->id);
		}
		if (slot_rename(s, "prev.old", "prev", e) != 0) {
			return -1;
		}
		testhook_point("restore.prev_back");
	}
	if (store_ensure_current(s, e) != 0) {
		return -1;
	}
	if (journal_clear(s->root, e) != 0) {
		return -1;
	}
	testhook_point("restore.done");
	return 0;
}

static int
store_undo_rollback(struct store *s, const struct journal_op *op, struct err *e)
{
	char a[JOURNAL_ID_LEN], p[JOURNAL_ID_LEN];

	if (slot_id(s, "active", a) == 1 && slot_id(s, "prev", p) == 1 &&
	    strcmp(a, op->old_prev_id) == 0 && strcmp(p, op->old_active_id) == 0) {
		if (slot_exchange(s, "prev", "active", e) != 0) {
			return -1;
		}
		testhook_point("rollback_restore.exchanged");
	}
	if (store_ensure_current(s, e) != 0) {
		return -1;
	}
	if (journal_clear(s->root, e) != 0) {
		return -1;
	}
	testhook_point("rollback_restore.done");
	return 0;
}

/*
 * A forced reinstall of the active release committed: the replaced copy
 * (now in prev) leaves through releases/prev.replaced (one rename, so a
 * crash never leaves a half-removed prev), and the old prev comes back
 * from prev.old. Each step is skipped once done: a restart repeats it.
 */
static int
store_keep_prev(struct store *s, const struct journal_op *op, struct err *e)
{
	char id[JOURNAL_ID_LEN];
	int r = slot_id(s, "prev", id);

	if (r < 0) {
		return err_sys(e, "releases/prev");
	}
	if (r == 1 && strcmp(id, op->old_active_id) == 0) {
		if (slot_rename(s, "prev", "prev.replaced", e) != 0) {
			return -1;
		}
		testhook_point("commit.replaced_moved");
	}
	r = slot_exists(s, "prev.replaced");
	if (r < 0 || (r == 1 && slot_remove(s, "prev.replaced", e) != 0)) {
		return r < 0 ? err_sys(e, "releases/prev.replaced") : -1;
	}
	if (slot_exists(s, "prev.old") == 1 && slot_exists(s, "prev") == 0) {
		if (slot_rename(s, "prev.old", "prev", e) != 0) {
			return -1;
		}
		testhook_point("commit.prev_back");
	}
	return 0;
}

static int
store_finish_commit(struct store *s, const struct journal_op *op, struct err *e)
{
	if (op->kind == JOURNAL_UPDATE && op->keep_prev && store_keep_prev(s, op, e) != 0) {
		return -1;
	}
	if (op->kind == JOURNAL_UPDATE && slot_remove(s, "prev.old", e) != 0) {
		return -1;
	}
	testhook_point("commit.prev_old_removed");
	if (store_ensure_current(s, e) != 0) {
		return -1;
	}
	if (journal_clear(s->root, e) != 0) {
		return -1;
	}
	testhook_point("commit.done");
	return 0;
}

int
store_recover(struct store *s, char *what, size_t whatlen, struct err *e)
{
	struct journal_op op;
	int r;

	what[0] = '\0';
	r = journal_read(s->root, &op, e);
	if (r < 0) {
		return -1;
	}
	if (r == 1) {
		if (op.phase == JOURNAL_COMMITTING) {
			r = store_finish_commit(s, &op, e);
			snprintf(what, whatlen, "finished %s %s (interrupted while committing)",
			    journal_kind_name(op.kind), op.id);
		} else {
			r = op.kind == JOURNAL_UPDATE ? store_undo_update(s, &op, e)
						      : store_undo_rollback(s, &op, e);
			snprintf(what, whatlen, "undid %s %s (interrupted while %s)",
			    journal_kind_name(op.kind), op.id, journal_phase_name(op.phase));
		}
		if (r != 0) {
			return -1;
		}
	}
	/* Leftovers without a journal: a crash between the last step and the clear. */
	if (slot_exists(s, "active.new") == 1 && slot_remove(s, "active.new", e) != 0) {
		return -1;
	}
	if (slot_exists(s, "prev.replaced") == 1 && slot_remove(s, "prev.replaced", e) != 0) {
		return -1;
	}
	if (slot_exists(s, "prev.old") == 1) {
		r = slot_exists(s, "prev") == 0 ? slot_rename(s, "prev.old", "prev", e)
						: slot_remove(s, "prev.old", e);
		if (r != 0) {
			return -1;
		}
	}
	return store_ensure_current(s, e);
}

int
store_update_begin(struct store *s, struct journal_op *op, const char *sha256,
    const char *caller, struct err *e)
{
	struct journal_op tmp;

	if (journal_read(s->root, &tmp, NULL) != 0) {
		return err_set(e, ERR_BUSY, "an interrupted operation needs recovery");
	}
	memset(&tmp, 0, sizeof(tmp));
	if (op->id[0] != '\0') {
		memcpy(tmp.id, op->id, sizeof(tmp.id));
		tmp.id[sizeof(tmp.id) - 1] = '\0';
	} else if (journal_new_id(tmp.id, e) != 0) {
		return -1;
	}
	memcpy(tmp.new_id, tmp.id, sizeof(tmp.new_id));
	tmp.kind = JOURNAL_UPDATE;
	tmp.phase = JOURNAL_STAGING;
	if (slot_id(s, "active", tmp.old_active_id) == 2 || slot_id(s, "prev", tmp.old_prev_id) == 2) {
		return err_set(e, ERR_INTERNAL, "a release slot has no valid release.json");
	}
	snprintf(tmp.sha256, sizeof(tmp.sha256), "%s", sha256 != NULL ? sha256 : "");
	snprintf(tmp.caller, sizeof(tmp.caller), "%s", caller != NULL ? caller : "");
	memcpy(tmp.request_id, op->request_id, sizeof(tmp.request_id));
	tmp.request_id[sizeof(tmp.request_id) - 1] = '\0';
	tmp.started = (long long)time(NULL);
	/* A stale staging dir (no journal) would make the extractor fail. */
	if (slot_exists(s, "active.new") == 1 && slot_remove(s, "active.new", e) != 0) {
		return -1;
	}
	if (journal_write(s->root, &tmp, e) != 0) {
		return -1;
	}
	testhook_point("update.journal_staging");
	*op = tmp;
	return 0;
}

int
store_update_abort(struct store *s, const struct journal_op *op, struct err *e)
{
	if (slot_remove(s, "active.new", e) != 0) {
		return -1;
	}
	testhook_point("abort.staging_removed");
	(void)op;
	if (journal_clear(s->root, e) != 0) {
		return -1;
	}
	return 0;
}

int
store_update_switch(struct store *s, struct journal_op *op, struct err *e)
{
	char p[PATH_MAX];
	int fd, r;

	/* Every staged file durable before it can become the running release. */
	if (slot_path(s, "active.new", p, sizeof(p)) != 0) {
		return err_sys(e, "staging path");
	}
	fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		return err_sys(e, "open %s", p);
	}
	r = syncfs(fd);
	close(fd);
	if (r != 0) {
		return err_sys(e, "syncfs %s", p);
	}
	op->phase = JOURNAL_SWITCHING;
	if (journal_write(s->root, op, e) != 0) {
		return -1;
	}
	testhook_point("update.journal_switching");
	if (op->old_active_id[0] == '\0') {
		if (slot_rename(s, "active.new", "active", e) != 0) {
			return -1;
		}
		testhook_point("update.first_renamed");
		if (store_ensure_current(s, e) != 0) {
			return -1;
		}
		testhook_point("update.current_created");
		return 0;
	}
	if (op->old_prev_id[0] != '\0') {
		if (slot_rename(s, "prev", "prev.old", e) != 0) {
			return -1;
		}
		testhook_point("update.prev_moved");
	}
	if (slot_exchange(s, "active.new", "active", e) != 0) {
		return -1;
	}
	testhook_point("update.exchanged");
	if (slot_rename(s, "active.new", "prev", e) != 0) {
		return -1;
	}
	testhook_point("update.old_to_prev");
	return store_ensure_current(s, e);
}

int
store_update_commit(struct store *s, struct journal_op *op, struct err *e)
{
	op->phase = JOURNAL_COMMITTING;
	if (journal_write(s->root, op, e) != 0) {
		return -1;
	}
	testhook_point("update.journal_committing");
	return store_finish_commit(s, op, e);
}

int
store_update_restore(struct store *s, struct journal_op *op, struct err *e)
{
	op->phase = JOURNAL_RESTORING;
	if (journal_write(s->root, op, e) != 0) {
		return -1;
	}
	testhook_point("update.journal_restoring");
	return store_undo_update(s, op, e);
}

int
store_rollback_begin(struct store *s, struct journal_op *op, const char *caller, struct err *e)
{
	struct journal_op tmp;

	if (journal_read(s->root, &tmp, NULL) != 0) {
		return err_set(e, ERR_BUSY, "an interrupted operation needs recovery");
	}
	memset(&tmp, 0, sizeof(tmp));
	memcpy(tmp.id, op->id, sizeof(tmp.id));
	tmp.id[sizeof(tmp.id) - 1] = '\0';
	memcpy(tmp.request_id, op->request_id, sizeof(tmp.request_id));
	tmp.request_id[sizeof(tmp.request_id) - 1] = '\0';
	if (slot_id(s, "prev", tmp.old_prev_id) != 1) {
		return err_set(e, ERR_NOT_FOUND, "no previous release to roll back to");
	}
	if (slot_id(s, "active", tmp.old_active_id) != 1) {
		return err_set(e, ERR_NOT_FOUND, "no active release");
	}
	if (tmp.id[0] == '\0' && journal_new_id(tmp.id, e) != 0) {
		return -1;
	}
	tmp.kind = JOURNAL_ROLLBACK;
	tmp.phase = JOURNAL_SWITCHING;
	snprintf(tmp.caller, sizeof(tmp.caller), "%s", caller != NULL ? caller : "");
	tmp.started = (long long)time(NULL);
	if (journal_write(s->root, &tmp, e) != 0) {
		return -1;
	}
	*op = tmp;
	testhook_point("rollback.journal_switching");
	if (slot_exchange(s, "prev", "active", e) != 0) {
		return -1;
	}
	testhook_point("rollback.exchanged");
	return 0;
}

int
store_rollback_commit(struct store *s, struct journal_op *op, struct err *e)
{
	op->phase = JOURNAL_COMMITTING;
	if (journal_write(s->root, op, e) != 0) {
		return -1;
	}
	testhook_point("rollback.journal_committing");
	return store_finish_commit(s, op, e);
}

int
store_rollback_restore(struct store *s, struct journal_op *op, struct err *e)
{
	op->phase = JOURNAL_RESTORING;
	if (journal_write(s->root, op, e) != 0) {
		return -1;
	}
	testhook_point("rollback.journal_restoring");
	return store_undo_rollback(s, op, e);
}
