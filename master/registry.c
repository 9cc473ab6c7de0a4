#include "master/registry.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "common/fs.h"
#include "common/log.h"
#include "master/registry_db.h"
#include "master/selector.h"

/* Waiting for another tandem process holding the write lock. */
#define REG_BUSY_TIMEOUT_MS 10000

struct registry {
	sqlite3 *db;
	pthread_mutex_t lock;
	int version;
	char path[PATH_MAX];
};

/*
 * Migration N takes the schema from version N to N + 1; the list only ever
 * grows. Each runs inside the transaction that also bumps schema_version.
 */
static const char *const reg_migrations[] = {
	/* 0 -> 1 */
	"CREATE TABLE schema_version (version INTEGER NOT NULL);"
	"INSERT INTO schema_version (version) VALUES (0);"
	"CREATE TABLE hosts ("
	" id INTEGER PRIMARY KEY,"
	" name TEXT NOT NULL UNIQUE COLLATE NOCASE,"
	" address TEXT NOT NULL,"
	" agent_port INTEGER NOT NULL DEFAULT 8765 CHECK (agent_port BETWEEN 1 AND 65535),"
	" updater_port INTEGER NOT NULL DEFAULT 8766 CHECK (updater_port BETWEEN 1 AND 65535),"
	" agent_fp TEXT NOT NULL CHECK (length(agent_fp) = 64),"
	" updater_fp TEXT CHECK (updater_fp IS NULL OR length(updater_fp) = 64),"
	" notes TEXT NOT NULL DEFAULT '',"
	" enrolled_at INTEGER NOT NULL,"
	" decommissioned_at INTEGER"
	");"
	"CREATE TABLE pushes ("
	" id INTEGER PRIMARY KEY,"
	" host_id INTEGER NOT NULL REFERENCES hosts (id),"
	" at INTEGER NOT NULL,"
	" sha256 TEXT NOT NULL,"
	" result TEXT NOT NULL,"
	" detail TEXT NOT NULL DEFAULT ''"
	");"
	"CREATE INDEX pushes_host_at ON pushes (host_id, at);",
	/* 1 -> 2: certificate lifecycle (revocations, the CRL's number, next pins) */
	"CREATE TABLE revocations ("
	" id INTEGER PRIMARY KEY,"
	" serial TEXT NOT NULL UNIQUE CHECK (length(serial) BETWEEN 2 AND 40),"
	" fp TEXT NOT NULL DEFAULT '' CHECK (fp = '' OR length(fp) = 64),"
	" subject TEXT NOT NULL DEFAULT '',"
	" reason INTEGER NOT NULL,"
	" at INTEGER NOT NULL"
	");"
	"CREATE TABLE crl_state ("
	" id INTEGER PRIMARY KEY CHECK (id = 1),"
	" number INTEGER NOT NULL CHECK (number >= 1),"
	" this_update INTEGER NOT NULL,"
	" next_update INTEGER NOT NULL"
	");"
	"ALTER TABLE hosts ADD COLUMN agent_fp_next TEXT"
	" CHECK (agent_fp_next IS NULL OR length(agent_fp_next) = 64);"
	"ALTER TABLE hosts ADD COLUMN updater_fp_next TEXT"
	" CHECK (updater_fp_next IS NULL OR length(updater_fp_next) = 64);",
	/*
	 * 2 -> 3: labels, the release store's index, desired releases
	 * (targets), and rollouts with their hosts and events
	 * (master/registry_rollout.c). A host is "held" by at most one rollout
	 * that has not finished (the partial unique index).
	 */
	"CREATE TABLE host_labels ("
	" host_id INTEGER NOT NULL REFERENCES hosts (id),"
	" key TEXT NOT NULL CHECK (length(key) BETWEEN 1 AND 63),"
	" value TEXT NOT NULL CHECK (length(value) <= 63),"
	" PRIMARY KEY (host_id, key)"
	") WITHOUT ROWID;"
	"CREATE TABLE releases ("
	" sha256 TEXT PRIMARY KEY CHECK (length(sha256) = 64),"
	" label TEXT NOT NULL,"
	" size INTEGER NOT NULL CHECK (size >= 0),"
	" added_at INTEGER NOT NULL"
	");"
	"CREATE TABLE targets ("
	" host_id INTEGER PRIMARY KEY REFERENCES hosts (id),"
	" release_sha256 TEXT NOT NULL REFERENCES releases (sha256),"
	" set_at INTEGER NOT NULL"
	");"
	"CREATE TABLE rollouts ("
	" id TEXT PRIMARY KEY CHECK (length(id) = 16),"
	" name TEXT NOT NULL DEFAULT '',"
	" kind TEXT NOT NULL CHECK (kind IN ('update', 'converge')),"
	" spec_json TEXT NOT NULL,"
	" release_sha256 TEXT NOT NULL REFERENCES releases (sha256),"
	" state TEXT NOT NULL CHECK (state IN ('planned', 'running', 'waiting_window', 'paused',"
	"  'halted', 'reverting', 'done', 'aborted')),"
	" state_reason TEXT NOT NULL DEFAULT '',"
	" n_hosts INTEGER NOT NULL DEFAULT 0,"
	" n_waves INTEGER NOT NULL DEFAULT 0,"
	" current_wave INTEGER NOT NULL DEFAULT 0,"
	" gate_until INTEGER,"
	" ack_attempted INTEGER NOT NULL DEFAULT 0,"
	" ack_failed INTEGER NOT NULL DEFAULT 0,"
	" request TEXT CHECK (request IS NULL OR request IN ('pause', 'abort', 'abort_revert')),"
	" lease_owner TEXT,"
	" lease_until INTEGER,"
	" created_at INTEGER NOT NULL,"
	" updated_at INTEGER NOT NULL,"
	" finished_at INTEGER"
	");"
	"CREATE INDEX rollouts_created ON rollouts (created_at);"
	"CREATE TABLE rollout_hosts ("
	" rollout_id TEXT NOT NULL REFERENCES rollouts (id),"
	" host_id INTEGER NOT NULL REFERENCES hosts (id),"
	" order_key TEXT NOT NULL,"
	" seq INTEGER NOT NULL DEFAULT 0,"
	" wave INTEGER NOT NULL DEFAULT 0,"
	" state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'dispatched',"
	"  'updated', 'already_active', 'rolled_back', 'failed', 'soak_failed', 'skipped',"
	"  'reverting', 'reverted', 'revert_failed', 'revert_skipped')),"
	" held INTEGER NOT NULL DEFAULT 1 CHECK (held IN (0, 1)),"
	" request_id TEXT,"
	" pre_sha256 TEXT NOT NULL DEFAULT '',"
	" version TEXT NOT NULL DEFAULT '',"
	" active_sha256 TEXT NOT NULL DEFAULT '',"
	" reason TEXT NOT NULL DEFAULT '',"
	" detail TEXT NOT NULL DEFAULT '',"
	" http_status INTEGER NOT NULL DEFAULT 0,"
	" agent_result TEXT NOT NULL DEFAULT '',"
	" self_json TEXT NOT NULL DEFAULT '',"
	" attempts INTEGER NOT NULL DEFAULT 0,"
	" started_at INTEGER,"
	" finished_at INTEGER,"
	" PRIMARY KEY (rollout_id, host_id)"
	");"
	"CREATE INDEX rollout_hosts_seq ON rollout_hosts (rollout_id, seq);"
	"CREATE UNIQUE INDEX rollout_hosts_held ON rollout_hosts (host_id) WHERE held = 1;"
	"CREATE TABLE rollout_events ("
	" seq INTEGER PRIMARY KEY,"
	" rollout_id TEXT NOT NULL REFERENCES rollouts (id),"
	" host_id INTEGER REFERENCES hosts (id),"
	" at INTEGER NOT NULL,"
	" kind TEXT NOT NULL,"
	" data_json TEXT NOT NULL DEFAULT '{}'"
	");"
	"CREATE INDEX rollout_events_rollout ON rollout_events (rollout_id, seq);",
	/* 3 -> 4: whether a host's request carried the release's signature */
	"ALTER TABLE rollout_hosts ADD COLUMN tsig_sent INTEGER NOT NULL DEFAULT 0"
	" CHECK (tsig_sent IN (0, 1));",
	/* 4 -> 5: the extra subjectAltNames a host was enrolled with, for its renewals */
	"CREATE TABLE host_sans ("
	" host_id INTEGER NOT NULL REFERENCES hosts (id),"
	" pos INTEGER NOT NULL,"
	" san TEXT NOT NULL CHECK (length(san) BETWEEN 1 AND 253),"
	" PRIMARY KEY (host_id, pos)"
	");",
	/* 5 -> 6: how a host's release travelled (planned push or whole) and its request bytes */
	"ALTER TABLE rollout_hosts ADD COLUMN transfer TEXT NOT NULL DEFAULT ''"
	" CHECK (transfer IN ('', 'planned', 'full', 'fallback'));"
	"ALTER TABLE rollout_hosts ADD COLUMN bytes_sent INTEGER NOT NULL DEFAULT 0"
	" CHECK (bytes_sent >= 0);",
};

#define REG_SCHEMA_VERSION ((int)ARRAY_LEN(reg_migrations))

/*
 * ARR (of *CAP items of ELSIZE bytes) reallocated to twice the capacity
 * (16 at first), *CAP updated; NULL with ERR set when out of memory (ARR
 * is then unchanged and still owned by the caller).
 */
static void *
reg_grow(void *arr, size_t *cap, size_t elsize, struct err *e)
{
	size_t ncap = *cap == 0 ? 16 : *cap * 2;
	void *p = reallocarray(arr, ncap, elsize);

	if (p == NULL) {
		err_set(e, ERR_NOMEM, "out of memory");
		return NULL;
	}
	*cap = ncap;
	return p;
}

static void
col_copy(sqlite3_stmt *st, int col, char *dst, size_t len)
{
	const unsigned char *s = sqlite3_column_text(st, col);
	size_t n = s == NULL ? 0 : (size_t)sqlite3_column_bytes(st, col);

	if (n >= len) {
		n = len - 1;
	}
	if (n > 0) {
		memcpy(dst, s, n);
	}
	dst[n] = '\0';
}

int
registry_name_valid(const char *name)
{
	size_t n;

	if (name == NULL || !isalnum((unsigned char)name[0])) {
		return 0;
	}
	for (n = 0; name[n] != '\0'; n++) {
		unsigned char c = (unsigned char)name[n];
		if (n >= REG_NAME_MAX || c >= 0x80 ||
		    !(isalnum(c) || c == '.' || c == '_' || c == '-')) {
			return 0;
		}
	}
	return 1;
}

/* Check and lowercase a fingerprint into OUT (REG_FP_LEN + 1 bytes). */
static int
fp_normalise(const char *fp, char *out)
{
	if (fp == NULL || strlen(fp) != REG_FP_LEN || !is_hex_len(fp, REG_FP_LEN)) {
		return -1;
	}
	for (size_t i = 0; i < REG_FP_LEN; i++) {
		out[i] = (char)tolower((unsigned char)fp[i]);
	}
	out[REG_FP_LEN] = '\0';
	return 0;
}

static int
address_valid(const char *a)
{
	size_t n = strlen(a);

	if (n == 0 || n > REG_ADDRESS_MAX) {
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)a[i];
		if (c <= 0x20 || c >= 0x7f) {
			return 0;
		}
	}
	return 1;
}

static int
exec_const(struct registry *reg, const char *sql, const char *what, struct err *e)
{
	if (sqlite3_exec(reg->db, sql, NULL, NULL, NULL) != SQLITE_OK) {
		return registry_db_err(reg, what, e);
	}
	return REGISTRY_OK;
}

/* Step a one-shot statement that returns one integer row. */
static int
query_int(struct registry *reg, const char *sql, long long *out, struct err *e)
{
	sqlite3_stmt *st = NULL;
	int rc = REGISTRY_ERR;

	if (sqlite3_prepare_v2(reg->db, sql, -1, &st, NULL) != SQLITE_OK) {
		rc = registry_db_err(reg, "reading the schema", e);
		goto out;
	}
	if (sqlite3_step(st) != SQLITE_ROW) {
		rc = registry_db_err(reg, "reading the schema", e);
		goto out;
	}
	*out = sqlite3_column_int64(st, 0);
	rc = REGISTRY_OK;
out:
	sqlite3_finalize(st);
	return rc;
}

static int
reg_migrate(struct registry *reg, struct err *e)
{
	long long has_version = 0, tables = 0, version = 0;
	sqlite3_stmt *st = NULL;
	int rc;

	/* IMMEDIATE: two processes opening a fresh registry migrate one at a time. */
	rc = exec_const(reg, "BEGIN IMMEDIATE", "locking", e);
	if (rc != REGISTRY_OK) {
		return rc;
	}
	rc = query_int(reg, "SELECT count(*) FROM sqlite_master"
	    " WHERE type = 'table' AND name = 'schema_version'", &has_version, e);
	if (rc != REGISTRY_OK) {
		goto out;
	}
	if (has_version) {
		rc = query_int(reg, "SELECT version FROM schema_version", &version, e);
		if (rc != REGISTRY_OK) {
			goto out;
		}
	} else {
		rc = query_int(reg, "SELECT count(*) FROM sqlite_master"
		    " WHERE name NOT LIKE 'sqlite_%'", &tables, e);
		if (rc != REGISTRY_OK) {
			goto out;
		}
		if (tables != 0) {
			err_set(e, ERR_FORMAT, "%s: an SQLite database, but not a tandem registry "
			    "(no schema_version table)", reg->path);
			rc = REGISTRY_ERR;
			goto out;
		}
	}
	if (version < 0 || version > REG_SCHEMA_VERSION) {
		err_set(e, ERR_FORMAT, "%s: registry schema version %lld is newer than this tandem "
		    "understands (%d): upgrade tandem", reg->path, version, REG_SCHEMA_VERSION);
		rc = REGISTRY_ERR;
		goto out;
	}
	for (long long v = version; v < REG_SCHEMA_VERSION; v++) {
		rc = exec_const(reg, reg_migrations[v], "migrating the schema", e);
		if (rc != REGISTRY_OK) {
			goto out;
		}
	}
	if (version < REG_SCHEMA_VERSION) {
		if (sqlite3_prepare_v2(reg->db, "UPDATE schema_version SET version = ?", -1, &st,
		    NULL) != SQLITE_OK || sqlite3_bind_int(st, 1, REG_SCHEMA_VERSION) != SQLITE_OK ||
		    sqlite3_step(st) != SQLITE_DONE) {
			rc = registry_db_err(reg, "recording the schema version", e);
			goto out;
		}
		sqlite3_finalize(st);
		st = NULL;
	}
	rc = exec_const(reg, "COMMIT", "committing the schema", e);
	if (rc == REGISTRY_OK) {
		reg->version = REG_SCHEMA_VERSION;
	}
out:
	sqlite3_finalize(st);
	if (rc != REGISTRY_OK) {
		(void)sqlite3_exec(reg->db, "ROLLBACK", NULL, NULL, NULL);
	}
	return rc;
}

/* Create PATH empty with mode 0600 unless it exists (SQLite would use 0644). */
static int
reg_create_file(const char *path, struct err *e)
{
	struct stat st;
	int fd;

	if (lstat(path, &st) == 0) {
		if (!S_ISREG(st.st_mode)) {
			err_set(e, ERR_IO, "%s: not a regular file", path);
			return REGISTRY_ERR;
		}
		return REGISTRY_OK;
	}
	if (errno != ENOENT) {
		err_sys(e, "%s", path);
		return REGISTRY_ERR;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		if (errno == EEXIST) {
			return REGISTRY_OK; /* another process won the race */
		}
		err_sys(e, "%s: cannot create", path);
		return REGISTRY_ERR;
	}
	if (fchmod(fd, 0600) != 0 || fsync(fd) != 0) {
		err_sys(e, "%s", path);
		(void)close(fd);
		return REGISTRY_ERR;
	}
	if (close(fd) != 0 || fs_fsync_parent(path) != 0) {
		err_sys(e, "%s", path);
		return REGISTRY_ERR;
	}
	return REGISTRY_OK;
}

int
registry_open(const char *home, struct registry **out, struct err *e)
{
	struct registry *reg = NULL;
	sqlite3_stmt *st = NULL;
	int rc = REGISTRY_ERR, n;

	if (home == NULL || *home == '\0') {
		err_set(e, ERR_INTERNAL, "no home directory given");
		return REGISTRY_INVALID;
	}
	reg = calloc(1, sizeof(*reg));
	if (reg == NULL) {
		err_set(e, ERR_NOMEM, "out of memory");
		return REGISTRY_ERR;
	}
	if (pthread_mutex_init(&reg->lock, NULL) != 0) {
		free(reg);
		err_set(e, ERR_INTERNAL, "cannot create a mutex");
		return REGISTRY_ERR;
	}
	n = snprintf(reg->path, sizeof(reg->path), "%s/%s", home, REGISTRY_FILE);
	if (n < 0 || (size_t)n >= sizeof(reg->path)) {
		err_set(e, ERR_INTERNAL, "%s: path too long", home);
		goto out;
	}
	if (fs_mkdir_p(home, 0700) != 0) {
		err_sys(e, "%s: cannot create directory", home);
		goto out;
	}
	if (reg_create_file(reg->path, e) != REGISTRY_OK) {
		goto out;
	}
	if (sqlite3_open_v2(reg->path, &reg->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOFOLLOW,
	    NULL) != SQLITE_OK) {
		if (reg->db == NULL) {
			err_set(e, ERR_NOMEM, "%s: out of memory", reg->path);
		} else {
			(void)registry_db_err(reg, "cannot open", e);
		}
		goto out;
	}
	(void)sqlite3_extended_result_codes(reg->db, 1);
	(void)sqlite3_busy_timeout(reg->db, REG_BUSY_TIMEOUT_MS);
	/* The first statement reading the file is where a foreign file shows. */
	if (sqlite3_prepare_v2(reg->db, "PRAGMA journal_mode = WAL", -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW) {
		(void)registry_db_err(reg, "cannot open", e);
		goto out;
	}
	if (strcmp((const char *)sqlite3_column_text(st, 0), "wal") != 0) {
		log_debug("%s: WAL unavailable, journal mode %s", reg->path,
		    (const char *)sqlite3_column_text(st, 0));
	}
	sqlite3_finalize(st);
	st = NULL;
	if (exec_const(reg, "PRAGMA synchronous = FULL", "setting synchronous", e) != REGISTRY_OK ||
	    exec_const(reg, "PRAGMA foreign_keys = ON", "enabling foreign keys", e) != REGISTRY_OK) {
		goto out;
	}
	if (reg_migrate(reg, e) != REGISTRY_OK) {
		goto out;
	}
	*out = reg;
	reg = NULL;
	rc = REGISTRY_OK;
out:
	sqlite3_finalize(st);
	registry_close(reg);
	return rc;
}

void
registry_close(struct registry *reg)
{
	if (reg == NULL) {
		return;
	}
	if (reg->db != NULL && sqlite3_close(reg->db) != SQLITE_OK) {
		log_warnx("%s: close: %s", reg->path, sqlite3_errmsg(reg->db));
	}
	pthread_mutex_destroy(&reg->lock);
	free(reg);
}

int
registry_schema_version(struct registry *reg)
{
	return reg->version;
}

static void
row_to_host(sqlite3_stmt *st, struct reg_host *h)
{
	memset(h, 0, sizeof(*h));
	col_copy(st, 0, h->name, sizeof(h->name));
	col_copy(st, 1, h->address, sizeof(h->address));
	h->agent_port = sqlite3_column_int(st, 2);
	h->updater_port = sqlite3_column_int(st, 3);
	col_copy(st, 4, h->agent_fp, sizeof(h->agent_fp));
	col_copy(st, 5, h->updater_fp, sizeof(h->updater_fp));
	col_copy(st, 6, h->notes, sizeof(h->notes));
	h->enrolled_at = (time_t)sqlite3_column_int64(st, 7);
	h->decommissioned_at = (time_t)sqlite3_column_int64(st, 8);
	col_copy(st, 9, h->agent_fp_next, sizeof(h->agent_fp_next));
	col_copy(st, 10, h->updater_fp_next, sizeof(h->updater_fp_next));
}

#define HOST_COLUMNS "name, address, agent_port, updater_port, agent_fp, updater_fp, notes," \
	" enrolled_at, decommissioned_at"
/* What a SELECT reads into a reg_host (row_to_host). */
#define HOST_SELECT HOST_COLUMNS ", agent_fp_next, updater_fp_next"

int
registry_add_host(struct registry *reg, const struct reg_host *h, struct err *e)
{
	char agent_fp[REG_FP_LEN + 1], updater_fp[REG_FP_LEN + 1];
	sqlite3_stmt *st = NULL;
	int rc = REGISTRY_INVALID, agent_port, updater_port;
	time_t enrolled;

	if (!registry_name_valid(h->name)) {
		err_set(e, ERR_BAD_REQUEST, "invalid host name '%.*s': use 1-%d letters, digits, '.', '_' "
		    "or '-', starting with a letter or digit", REG_NAME_MAX, h->name, REG_NAME_MAX);
		return REGISTRY_INVALID;
	}
	if (!address_valid(h->address)) {
		err_set(e, ERR_BAD_REQUEST, "host %s: invalid address", h->name);
		return REGISTRY_INVALID;
	}
	agent_port = h->agent_port == 0 ? REG_DEFAULT_AGENT_PORT : h->agent_port;
	updater_port = h->updater_port == 0 ? REG_DEFAULT_UPDATER_PORT : h->updater_port;
	if (agent_port < 1 || agent_port > 65535 || updater_port < 1 || updater_port > 65535) {
		err_set(e, ERR_BAD_REQUEST, "host %s: port out of range 1-65535", h->name);
		return REGISTRY_INVALID;
	}
	if (fp_normalise(h->agent_fp, agent_fp) != 0) {
		err_set(e, ERR_BAD_REQUEST, "host %s: agent fingerprint must be %d hex digits", h->name,
		    REG_FP_LEN);
		return REGISTRY_INVALID;
	}
	if (h->updater_fp[0] != '\0' && fp_normalise(h->updater_fp, updater_fp) != 0) {
		err_set(e, ERR_BAD_REQUEST, "host %s: updater fingerprint must be %d hex digits", h->name,
		    REG_FP_LEN);
		return REGISTRY_INVALID;
	}
	if (strnlen(h->notes, sizeof(h->notes)) > REG_NOTES_MAX) {
		err_set(e, ERR_BAD_REQUEST, "host %s: notes longer than %d bytes", h->name, REG_NOTES_MAX);
		return REGISTRY_INVALID;
	}
	enrolled = h->enrolled_at != 0 ? h->enrolled_at : time(NULL);

	pthread_mutex_lock(&reg->lock);
	if (sqlite3_prepare_v2(reg->db, "INSERT INTO hosts (" HOST_COLUMNS ")"
	    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL)", -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_bind_text(st, 1, h->name, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_text(st, 2, h->address, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_int(st, 3, agent_port) != SQLITE_OK ||
	    sqlite3_bind_int(st, 4, updater_port) != SQLITE_OK ||
	    sqlite3_bind_text(st, 5, agent_fp, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    (h->updater_fp[0] != '\0' ?
	    sqlite3_bind_text(st, 6, updater_fp, -1, SQLITE_TRANSIENT) :
	    sqlite3_bind_null(st, 6)) != SQLITE_OK ||
	    sqlite3_bind_text(st, 7, h->notes, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 8, (sqlite3_int64)enrolled) != SQLITE_OK) {
		rc = registry_db_err(reg, "adding a host", e);
		goto out;
	}
	/* Extended result codes are on: compare the primary code. */
	switch (sqlite3_step(st) & 0xff) {
	case SQLITE_DONE:
		rc = REGISTRY_OK;
		break;
	case SQLITE_CONSTRAINT:
		if (sqlite3_extended_errcode(reg->db) == SQLITE_CONSTRAINT_UNIQUE) {
			err_set(e, ERR_CONFLICT, "host %s is already registered (names are unique, "
			    "decommissioned hosts included)", h->name);
			rc = REGISTRY_EXISTS;
			break;
		}
		rc = registry_db_err(reg, "adding a host", e);
		break;
	default:
		rc = registry_db_err(reg, "adding a host", e);
		break;
	}
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&reg->lock);
	return rc;
}

int
registry_get_host(struct registry *reg, const char *name, struct reg_host *out, struct err *e)
{
	sqlite3_stmt *st = NULL;
	int rc;

	pthread_mutex_lock(&reg->lock);
	if (sqlite3_prepare_v2(reg->db, "SELECT " HOST_SELECT " FROM hosts WHERE name = ?", -1,
	    &st, NULL) != SQLITE_OK ||
	    sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT) != SQLITE_OK) {
		rc = registry_db_err(reg, "reading a host", e);
		goto out;
	}
	switch (sqlite3_step(st)) {
	case SQLITE_ROW:
		row_to_host(st, out);
		rc = REGISTRY_OK;
		break;
	case SQLITE_DONE:
		err_set(e, ERR_NOT_FOUND, "no host named '%.*s' in the registry", REG_NAME_MAX, name);
		rc = REGISTRY_NOTFOUND;
		break;
	default:
		rc = registry_db_err(reg, "reading a host", e);
		break;
	}
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&reg->lock);
	return rc;
}

int
registry_list_hosts(struct registry *reg, int include_decommissioned, struct reg_host **out,
    size_t *n, struct err *e)
{
	static const char sql_all[] =
	    "SELECT " HOST_SELECT " FROM hosts ORDER BY name";
	static const char sql_active[] =
	    "SELECT " HOST_SELECT " FROM hosts WHERE decommissioned_at IS NULL ORDER BY name";
	struct reg_host *hosts = NULL;
	size_t count = 0, cap = 0;
	sqlite3_stmt *st = NULL;
	int rc = REGISTRY_ERR, step;

	pthread_mutex_lock(&reg->lock);
	if (sqlite3_prepare_v2(reg->db, include_decommissioned ? sql_all : sql_active, -1, &st,
	    NULL) != SQLITE_OK) {
		rc = registry_db_err(reg, "listing hosts", e);
		goto out;
	}
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		if (count == cap) {
			struct reg_host *p = reg_grow(hosts, &cap, sizeof(*hosts), e);
			if (p == NULL) {
				goto out;
			}
			hosts = p;
		}
		row_to_host(st, &hosts[count++]);
	}
	if (step != SQLITE_DONE) {
		rc = registry_db_err(reg, "listing hosts", e);
		goto out;
	}
	*out = hosts;
	*n = count;
	hosts = NULL;
	rc = REGISTRY_OK;
out:
	free(hosts);
	sqlite3_finalize(st);
	pthread_mutex_unlock(&reg->lock);
	return rc;
}

/* Run an UPDATE on host NAME: REGISTRY_NOTFOUND when no row changed. */
static int
update_host(struct registry *reg, sqlite3_stmt *st, const char *name, const char *what,
    struct err *e)
{
	if (sqlite3_step(st) != SQLITE_DONE) {
		return registry_db_err(reg, what, e);
	}
	if (sqlite3_changes(reg->db) == 0) {
		err_set(e, ERR_NOT_FOUND, "no host named '%.*s' in the registry", REG_NAME_MAX, name);
		return REGISTRY_NOTFOUND;
	}
	return REGISTRY_OK;
}

int
registry_set_updater_fp(struct registry *reg, const char *name, const char *fp, struct err *e)
{
	char norm[REG_FP_LEN + 1];
	sqlite3_stmt *st = NULL;
	int rc;

	if (fp_normalise(fp, norm) != 0) {
		err_set(e, ERR_BAD_REQUEST, "updater fingerprint must be %d hex digits", REG_FP_LEN);
		return REGISTRY_INVALID;
	}
	pthread_mutex_lock(&reg->lock);
	if (sqlite3_prepare_v2(reg->db, "UPDATE hosts SET updater_fp = ? WHERE name = ?", -1, &st,
	    NULL) != SQLITE_OK ||
	    sqlite3_bind_text(st, 1, norm, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_text(st, 2, name, -1, SQLITE_TRANSIENT) != SQLITE_OK) {
		rc = registry_db_err(reg, "setting the updater fingerprint", e);
		goto out;
	}
	rc = update_host(reg, st, name, "setting the updater fingerprint", e);
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&reg->lock);
	return rc;
}

int
registry_set_next_fp(struct registry *reg, const char *name, int agent, const char *fp,
    struct err *e)
{
	static const char *const sql[2] = {
		"UPDATE hosts SET updater_fp_next = ? WHERE name = ?",
		"UPDATE hosts SET agent_fp_next = ? WHERE name = ?",
	};
	char norm[REG_FP_LEN + 1];
	sqlite3_stmt *st = NULL;
	int rc;

	if (fp != NULL && fp_normalise(fp, norm) != 0) {
		err_set(e, ERR_BAD_REQUEST, "fingerprint must be %d hex digits", REG_FP_LEN);
		return REGISTRY_INVALID;
	}
	pthread_mutex_lock(&reg->lock);
	if (sqlite3_prepare_v2(reg->db, sql[agent != 0], -1, &st, NULL) != SQLITE_OK ||
	    (fp != NULL ? sqlite3_bind_text(st, 1, norm, -1, SQLITE_TRANSIENT)
			: sqlite3_bind_null(st, 1)) != SQLITE_OK ||
	    sqlite3_bind_text(st, 2, name, -1, SQLITE_TRANSIENT) != SQLITE_OK) {
		rc = registry_db_err(reg, "setting the next fingerprint", e);
		goto out;
	}
	rc = update_host(reg, st, name, "setting the next fingerprint", e);
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&reg->lock);
	return rc;
}

int
registry_promote_next_fp(struct registry *reg, const char *name, int agent, const char *fp,
    struct err *e)
{
	/* One statement: the pin and the rollover slot change together. */
	static const char *const sql[2] = {
		"UPDATE hosts SET updater_fp = updater_fp_next, updater_fp_next = NULL"
		" WHERE name = ? AND updater_fp_next = ?",
		"UPDATE hosts SET agent_fp = agent_fp_next, agent_fp_next = NULL"
		" WHERE name = ? AND agent_fp_next = ?",
	};
	char norm[REG_FP_LEN + 1];
	sqlite3_stmt *st = NULL;
	int rc;

	if (fp_normalise(fp, norm) != 0) {
		err_set(e, ERR_BAD_REQUEST, "fingerprint must be %d hex digits", REG_FP_LEN);
		return REGISTRY_INVALID;
	}
	pthread_mutex_lock(&reg->lock);
	if (sqlite3_prepare_v2(reg->db, sql[agent != 0], -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_text(st, 2, norm, -1, SQLITE_TRANSIENT) != SQLITE_OK) {
		rc = registry_db_err(reg, "promoting the next fingerprint", e);
		goto out;
	}
	rc = update_host(reg, st, name, "promoting the next fingerprint", e);
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&reg->lock);
	return rc;
}

int
registry_decommission(struct registry *reg, const char *name, time_t when, struct err *e)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (when == 0) {
		when = time(NULL);
	}
	pthread_mutex_lock(&reg->lock);
	/* COALESCE keeps the first decommission time on a repeat. */
	if (sqlite3_prepare_v2(reg->db, "UPDATE hosts SET decommissioned_at ="
	    " COALESCE(decommissioned_at, ?) WHERE name = ?", -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 1, (sqlite3_int64)when) != SQLITE_OK ||
	    sqlite3_bind_text(st, 2, name, -1, SQLITE_TRANSIENT) != SQLITE_OK) {
		rc = registry_db_err(reg, "decommissioning", e);
		goto out;
	}
	rc = update_host(reg, st, name, "decommissioning", e);
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&reg->lock);
	return rc;
}

void
registry_result_canonical(char *word)
{
	for (; *word != '\0'; word++) {
		if (*word == '-') {
			*word = '_';
		}
	}
}

static int
result_valid(const char *r)
{
	size_t n = strlen(r);

	if (n == 0 || n > REG_RESULT_MAX) {
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)r[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_')) {
			return 0;
		}
	}
	return 1;
}

int
registry_log_push(struct registry *reg, const struct reg_push *p, struct err *e)
{
	char sha[REG_FP_LEN + 1] = "";
	sqlite3_stmt *st = NULL;
	size_t dlen;
	time_t at;
	int rc;

	if (p->sha256[0] != '\0' && fp_normalise(p->sha256, sha) != 0) {
		err_set(e, ERR_BAD_REQUEST, "release sha256 must be %d hex digits", REG_FP_LEN);
		return REGISTRY_INVALID;
	}
	if (!result_valid(p->result)) {
		err_set(e, ERR_BAD_REQUEST, "invalid push result word");
		return REGISTRY_INVALID;
	}
	dlen = strnlen(p->detail, sizeof(p->detail));
	if (dlen > REG_DETAIL_MAX) {
		err_set(e, ERR_BAD_REQUEST, "push detail is not terminated");
		return REGISTRY_INVALID;
	}
	at = p->at != 0 ? p->at : time(NULL);

	pthread_mutex_lock(&reg->lock);
	if (sqlite3_prepare_v2(reg->db, "INSERT INTO pushes (host_id, at, sha256, result, detail)"
	    " SELECT id, ?, ?, ?, ? FROM hosts WHERE name = ?", -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 1, (sqlite3_int64)at) != SQLITE_OK ||
	    sqlite3_bind_text(st, 2, sha, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_text(st, 3, p->result, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_text(st, 4, p->detail, (int)dlen, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_text(st, 5, p->host, -1, SQLITE_TRANSIENT) != SQLITE_OK) {
		rc = registry_db_err(reg, "logging a push", e);
		goto out;
	}
	rc = update_host(reg, st, p->host, "logging a push", e);
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&reg->lock);
	return rc;
}

int
registry_push_history(struct registry *reg, const char *name, size_t limit,
    struct reg_push **out, size_t *n, struct err *e)
{
	struct reg_push *log = NULL;
	size_t count = 0, cap = 0;
	sqlite3_stmt *st = NULL;
	int rc = REGISTRY_ERR, step;

	pthread_mutex_lock(&reg->lock);
	if (sqlite3_prepare_v2(reg->db, "SELECT name FROM hosts WHERE name = ?", -1, &st,
	    NULL) != SQLITE_OK ||
	    sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT) != SQLITE_OK) {
		rc = registry_db_err(reg, "reading the push log", e);
		goto out;
	}
	step = sqlite3_step(st);
	if (step == SQLITE_DONE) {
		err_set(e, ERR_NOT_FOUND, "no host named '%.*s' in the registry", REG_NAME_MAX, name);
		rc = REGISTRY_NOTFOUND;
		goto out;
	}
	if (step != SQLITE_ROW) {
		rc = registry_db_err(reg, "reading the push log", e);
		goto out;
	}
	sqlite3_finalize(st);
	st = NULL;
	if (sqlite3_prepare_v2(reg->db, "SELECT h.name, p.at, p.sha256, p.result, p.detail"
	    " FROM pushes p JOIN hosts h ON h.id = p.host_id WHERE h.name = ?"
	    " ORDER BY p.at DESC, p.id DESC LIMIT ?", -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 2, limit == 0 || limit > (size_t)INT64_MAX ? -1 :
	    (sqlite3_int64)limit) != SQLITE_OK) {
		rc = registry_db_err(reg, "reading the push log", e);
		goto out;
	}
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		if (count == cap) {
			struct reg_push *p = reg_grow(log, &cap, sizeof(*log), e);
			if (p == NULL) {
				goto out;
			}
			log = p;
		}
		struct reg_push *ent = &log[count++];
		memset(ent, 0, sizeof(*ent));
		col_copy(st, 0, ent->host, sizeof(ent->host));
		ent->at = (time_t)sqlite3_column_int64(st, 1);
		col_copy(st, 2, ent->sha256, sizeof(ent->sha256));
		col_copy(st, 3, ent->result, sizeof(ent->result));
		registry_result_canonical(ent->result);
		col_copy(st, 4, ent->detail, sizeof(ent->detail));
	}
	if (step != SQLITE_DONE) {
		rc = registry_db_err(reg, "reading the push log", e);
		goto out;
	}
	*out = log;
	*n = count;
	log = NULL;
	rc = REGISTRY_OK;
out:
	free(log);
	sqlite3_finalize(st);
	pthread_mutex_unlock(&reg->lock);
	return rc;
}

void
registry_push_set_detail(struct reg_push *p, const char *text)
{
	size_t n = text == NULL ? 0 : strlen(text);

	if (n > REG_DETAIL_MAX) {
		n = utf8_cut_len(text, REG_DETAIL_MAX);
	}
	if (n > 0) {
		memcpy(p->detail, text, n);
	}
	p->detail[n] = '\0';
}

/* ---- certificate lifecycle: revocations and the CRL's number -------------- */

/* Canonical serial: 2..REG_SERIAL_MAX lowercase hex digits, even count. */
static int
serial_valid(const char *s)
{
	size_t n = strlen(s);

	if (n < 2 || n > REG_SERIAL_MAX || n % 2 != 0) {
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		if (!isxdigit((unsigned char)s[i]) || isupper((unsigned char)s[i])) {
			return 0;
		}
	}
	return 1;
}

int
registry_revoke(struct registry *reg, const struct reg_revocation *r, struct err *e)
{
	char fp[REG_FP_LEN + 1] = "";
	sqlite3_stmt *st = NULL;
	int rc, step;

	if (!serial_valid(r->serial)) {
		err_set(e, ERR_BAD_REQUEST, "serial '%.48s' is not canonical hex", r->serial);
		return REGISTRY_INVALID;
	}
	if (r->fp[0] != '\0' && fp_normalise(r->fp, fp) != 0) {
		err_set(e, ERR_BAD_REQUEST, "fingerprint must be %d hex digits", REG_FP_LEN);
		return REGISTRY_INVALID;
	}
	pthread_mutex_lock(&reg->lock);
	if (sqlite3_prepare_v2(reg->db, "INSERT INTO revocations (serial, fp, subject, reason, at)"
	    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (serial) DO NOTHING", -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_bind_text(st, 1, r->serial, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_text(st, 2, fp, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_text(st, 3, r->subject, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_int(st, 4, r->reason) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 5, (sqlite3_int64)(r->at != 0 ? r->at : time(NULL))) !=
	    SQLITE_OK) {
		rc = registry_db_err(reg, "recording the revocation", e);
		goto out;
	}
	step = sqlite3_step(st);
	if (step != SQLITE_DONE) {
		rc = registry_db_err(reg, "recording the revocation", e);
		goto out;
	}
	if (sqlite3_changes(reg->db) == 0) {
		err_set(e, ERR_CONFLICT, "serial %s is already revoked", r->serial);
		rc = REGISTRY_EXISTS;
		goto out;
	}
	rc = REGISTRY_OK;
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&reg->lock);
	return rc;
}

int
registry_revocations(struct registry *reg, struct reg_revocation **out, size_t *n, struct err *e)
{
	struct reg_revocation *list = NULL;
	size_t count = 0, cap = 0;
	sqlite3_stmt *st = NULL;
	int rc = REGISTRY_ERR, step;

	pthread_mutex_lock(&reg->lock);
	if (sqlite3_prepare_v2(reg->db, "SELECT serial, fp, subject, reason, at FROM revocations"
	    " ORDER BY at, id", -1, &st, NULL) != SQLITE_OK) {
		rc = registry_db_err(reg, "reading the revocations", e);
		goto out;
	}
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		if (count == cap) {
			struct reg_revocation *p = reg_grow(list, &cap, sizeof(*list), e);
			if (p == NULL) {
				goto out;
			}
			list = p;
		}
		struct reg_revocation *ent = &list[count++];
		memset(ent, 0, sizeof(*ent));
		col_copy(st, 0, ent->serial, sizeof(ent->serial));
		col_copy(st, 1, ent->fp, sizeof(ent->fp));
		col_copy(st, 2, ent->subject, sizeof(ent->subject));
		ent->reason = sqlite3_column_int(st, 3);
		ent->at = (time_t)sqlite3_column_int64(st, 4);
	}
	if (step != SQLITE_DONE) {
		rc = registry_db_err(reg, "reading the revocations", e);
		goto out;
	}
	*out = list;
	*n = count;
	list = NULL;
	rc = REGISTRY_OK;
out:
	free(list);
	sqlite3_finalize(st);
	pthread_mutex_unlock(&reg->lock);
	return rc;
}

int
registry_crl_next(struct registry *reg, time_t this_update, time_t next_update,
    unsigned long long *number, struct err *e)
{
	sqlite3_stmt *st = NULL;
	long long n = 0;
	int rc;

	pthread_mutex_lock(&reg->lock);
	rc = exec_const(reg, "BEGIN IMMEDIATE", "numbering the CRL", e);
	if (rc != REGISTRY_OK) {
		goto unlock;
	}
	rc = query_int(reg, "SELECT COALESCE(MAX(number), 0) + 1 FROM crl_state", &n, e);
	if (rc != REGISTRY_OK) {
		goto out;
	}
	if (sqlite3_prepare_v2(reg->db, "INSERT INTO crl_state (id, number, this_update,"
	    " next_update) VALUES (1, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET"
	    " number = excluded.number, this_update = excluded.this_update,"
	    " next_update = excluded.next_update", -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 1, n) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 2, (sqlite3_int64)this_update) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 3, (sqlite3_int64)next_update) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_DONE) {
		rc = registry_db_err(reg, "numbering the CRL", e);
		goto out;
	}
	rc = exec_const(reg, "COMMIT", "numbering the CRL", e);
out:
	sqlite3_finalize(st);
	if (rc != REGISTRY_OK) {
		(void)sqlite3_exec(reg->db, "ROLLBACK", NULL, NULL, NULL);
	} else {
		*number = (unsigned long long)n;
	}
unlock:
	pthread_mutex_unlock(&reg->lock);
	return rc;
}

int
registry_crl_state(struct registry *reg, unsigned long long *number, time_t *this_update,
    time_t *next_update, struct err *e)
{
	sqlite3_stmt *st = NULL;
	int rc, step;

	pthread_mutex_lock(&reg->lock);
	if (sqlite3_prepare_v2(reg->db, "SELECT number, this_update, next_update FROM crl_state"
	    " WHERE id = 1", -1, &st, NULL) != SQLITE_OK) {
		rc = registry_db_err(reg, "reading the CRL state", e);
		goto out;
	}
	step = sqlite3_step(st);
	if (step == SQLITE_DONE) {
		err_set(e, ERR_NOT_FOUND, "no CRL has been issued yet");
		rc = REGISTRY_NOTFOUND;
		goto out;
	}
	if (step != SQLITE_ROW) {
		rc = registry_db_err(reg, "reading the CRL state", e);
		goto out;
	}
	*number = (unsigned long long)sqlite3_column_int64(st, 0);
	*this_update = (time_t)sqlite3_column_int64(st, 1);
	*next_update = (time_t)sqlite3_column_int64(st, 2);
	rc = REGISTRY_OK;
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&reg->lock);
	return rc;
}

int
registry_backup_to(struct registry *reg, const char *path, struct err *e)
{
	sqlite3 *dst = NULL;
	sqlite3_backup *b = NULL;
	int rc = REGISTRY_ERR;
	int step;

	if (reg_create_file(path, e) != REGISTRY_OK) {
		return REGISTRY_ERR;
	}
	if (sqlite3_open_v2(path, &dst, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
		err_set(e, ERR_IO, "%s: %s", path, dst != NULL ? sqlite3_errmsg(dst) : "cannot open");
		goto out;
	}
	pthread_mutex_lock(&reg->lock);
	b = sqlite3_backup_init(dst, "main", reg->db, "main");
	if (b == NULL) {
		pthread_mutex_unlock(&reg->lock);
		err_set(e, ERR_IO, "%s: backup: %s", path, sqlite3_errmsg(dst));
		goto out;
	}
	/* One step copies every page under one read transaction: a consistent snapshot. */
	step = sqlite3_backup_step(b, -1);
	(void)sqlite3_backup_finish(b);
	pthread_mutex_unlock(&reg->lock);
	if (step != SQLITE_DONE) {
		err_set(e, ERR_IO, "%s: backup: %s", path, sqlite3_errstr(step));
		goto out;
	}
	/* A self-contained file: no WAL beside it. */
	if (sqlite3_exec(dst, "PRAGMA journal_mode = DELETE", NULL, NULL, NULL) != SQLITE_OK) {
		err_set(e, ERR_IO, "%s: %s", path, sqlite3_errmsg(dst));
		goto out;
	}
	rc = REGISTRY_OK;
out:
	if (dst != NULL && sqlite3_close(dst) != SQLITE_OK && rc == REGISTRY_OK) {
		err_set(e, ERR_IO, "%s: close failed", path);
		rc = REGISTRY_ERR;
	}
	return rc;
}

/* ---- the handle for the registry's own modules (master/registry_db.h) ---- */

sqlite3 *
registry_db_lock(struct registry *reg)
{
	pthread_mutex_lock(&reg->lock);
	return reg->db;
}

void
registry_db_unlock(struct registry *reg)
{
	pthread_mutex_unlock(&reg->lock);
}

int
registry_db_err(struct registry *reg, const char *what, struct err *e)
{
	int rc = sqlite3_extended_errcode(reg->db);

	if ((rc & 0xff) == SQLITE_NOTADB || (rc & 0xff) == SQLITE_CORRUPT) {
		return err_set(e, ERR_FORMAT, "%s: %s: not a usable tandem registry (%s)", reg->path,
		    what, sqlite3_errmsg(reg->db));
	}
	if ((rc & 0xff) == SQLITE_FULL) {
		return err_set(e, ERR_NOSPACE, "%s: %s: %s", reg->path, what,
		    sqlite3_errmsg(reg->db));
	}
	if ((rc & 0xff) == SQLITE_BUSY) {
		return err_set(e, ERR_BUSY, "%s: %s: %s", reg->path, what, sqlite3_errmsg(reg->db));
	}
	return err_set(e, ERR_IO, "%s: %s: %s", reg->path, what, sqlite3_errmsg(reg->db));
}

void
registry_db_col(sqlite3_stmt *st, int col, char *dst, size_t len)
{
	col_copy(st, col, dst, len);
}

int
registry_db_begin(struct registry *reg, struct err *e)
{
	if (sqlite3_exec(reg->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
		return registry_db_err(reg, "locking", e);
	}
	return 0;
}

int
registry_db_end(struct registry *reg, int ok, struct err *e)
{
	if (ok && sqlite3_exec(reg->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK) {
		return 0;
	}
	if (ok) {
		(void)registry_db_err(reg, "committing", e);
	}
	(void)sqlite3_exec(reg->db, "ROLLBACK", NULL, NULL, NULL);
	return -1;
}

/* ---- labels ---- */

/* The id of host NAME, or -1 (E: ERR_NOT_FOUND or the database error). Lock held. */
static sqlite3_int64
host_id_of(struct registry *reg, const char *name, struct err *e)
{
	sqlite3_stmt *st = NULL;
	sqlite3_int64 id = -1;

	if (sqlite3_prepare_v2(reg->db, "SELECT id FROM hosts WHERE name = ?", -1, &st,
	    NULL) != SQLITE_OK ||
	    sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT) != SQLITE_OK) {
		(void)registry_db_err(reg, "reading a host", e);
		goto out;
	}
	switch (sqlite3_step(st)) {
	case SQLITE_ROW:
		id = sqlite3_column_int64(st, 0);
		break;
	case SQLITE_DONE:
		err_set(e, ERR_NOT_FOUND, "no host named '%.*s' in the registry", REG_NAME_MAX, name);
		break;
	default:
		(void)registry_db_err(reg, "reading a host", e);
		break;
	}
out:
	sqlite3_finalize(st);
	return id;
}

int
registry_label_set(struct registry *reg, const char *host, const char *key, const char *value,
    struct err *e)
{
	sqlite3_stmt *st = NULL;
	sqlite3_int64 id;
	int rc = -1;

	if (!selector_key_valid(key) || (value != NULL && !selector_value_valid(value))) {
		return err_set(e, ERR_USAGE, "bad label %s%s%s", key, value != NULL ? "=" : "",
		    value != NULL ? value : "");
	}
	pthread_mutex_lock(&reg->lock);
	id = host_id_of(reg, host, e);
	if (id < 0) {
		goto out;
	}
	if (sqlite3_prepare_v2(reg->db, value != NULL
	    ? "INSERT INTO host_labels (host_id, key, value) VALUES (?, ?, ?)"
	      " ON CONFLICT (host_id, key) DO UPDATE SET value = excluded.value"
	    : "DELETE FROM host_labels WHERE host_id = ? AND key = ?", -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 1, id) != SQLITE_OK ||
	    sqlite3_bind_text(st, 2, key, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    (value != NULL && sqlite3_bind_text(st, 3, value, -1, SQLITE_TRANSIENT) != SQLITE_OK) ||
	    sqlite3_step(st) != SQLITE_DONE) {
		(void)registry_db_err(reg, "setting a label", e);
		goto out;
	}
	rc = 0;
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&reg->lock);
	return rc;
}

int
registry_set_sans(struct registry *reg, const char *host, const char *const *sans, size_t n,
    struct err *e)
{
	sqlite3_stmt *st = NULL;
	sqlite3_int64 id;
	int rc;

	if (n > REG_SANS_MAX) {
		err_set(e, ERR_BAD_REQUEST, "host %s: more than %d SANs", host, REG_SANS_MAX);
		return REGISTRY_INVALID;
	}
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(sans[i]);
		if (len == 0 || len > REG_SAN_LEN) {
			err_set(e, ERR_BAD_REQUEST, "host %s: a SAN of %zu bytes", host, len);
			return REGISTRY_INVALID;
		}
	}
	pthread_mutex_lock(&reg->lock);
	rc = exec_const(reg, "BEGIN IMMEDIATE", "recording SANs", e);
	if (rc != REGISTRY_OK) {
		goto unlock;
	}
	id = host_id_of(reg, host, e);
	if (id < 0) {
		rc = REGISTRY_NOTFOUND;
		goto out;
	}
	if (sqlite3_prepare_v2(reg->db, "DELETE FROM host_sans WHERE host_id = ?", -1, &st,
	    NULL) != SQLITE_OK || sqlite3_bind_int64(st, 1, id) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_DONE) {
		rc = registry_db_err(reg, "recording SANs", e);
		goto out;
	}
	sqlite3_finalize(st);
	st = NULL;
	if (sqlite3_prepare_v2(reg->db, "INSERT INTO host_sans (host_id, pos, san) VALUES (?, ?, ?)",
	    -1, &st, NULL) != SQLITE_OK) {
		rc = registry_db_err(reg, "recording SANs", e);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		if (sqlite3_reset(st) != SQLITE_OK || sqlite3_bind_int64(st, 1, id) != SQLITE_OK ||
		    sqlite3_bind_int64(st, 2, (sqlite3_int64)i) != SQLITE_OK ||
		    sqlite3_bind_text(st, 3, sans[i], -1, SQLITE_TRANSIENT) != SQLITE_OK ||
		    sqlite3_step(st) != SQLITE_DONE) {
			rc = registry_db_err(reg, "recording SANs", e);
			goto out;
		}
	}
	rc = exec_const(reg, "COMMIT", "recording SANs", e);
out:
	sqlite3_finalize(st);
	if (rc != REGISTRY_OK) {
		(void)sqlite3_exec(reg->db, "ROLLBACK", NULL, NULL, NULL);
	}
unlock:
	pthread_mutex_unlock(&reg->lock);
	return rc;
}

int
registry_get_sans(struct registry *reg, const char *host, char (*out)[REG_SAN_LEN + 1],
    size_t max, size_t *n, struct err *e)
{
	sqlite3_stmt *st = NULL;
	sqlite3_int64 id;
	size_t count = 0;
	int step, rc = REGISTRY_ERR;

	*n = 0;
	pthread_mutex_lock(&reg->lock);
	id = host_id_of(reg, host, e);
	if (id < 0) {
		rc = REGISTRY_NOTFOUND;
		goto out;
	}
	if (sqlite3_prepare_v2(reg->db, "SELECT san FROM host_sans WHERE host_id = ? ORDER BY pos",
	    -1, &st, NULL) != SQLITE_OK || sqlite3_bind_int64(st, 1, id) != SQLITE_OK) {
		rc = registry_db_err(reg, "reading SANs", e);
		goto out;
	}
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		if (count < max) {
			col_copy(st, 0, out[count], REG_SAN_LEN + 1);
			count++;
		}
	}
	if (step != SQLITE_DONE) {
		rc = registry_db_err(reg, "reading SANs", e);
		goto out;
	}
	*n = count;
	rc = REGISTRY_OK;
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&reg->lock);
	return rc;
}

/* Labels of host ID into OUT (at most MAX, sorted by key). Lock held. */
static int
labels_of_id(struct registry *reg, sqlite3_int64 id, struct selector_label *out, size_t max,
    size_t *n, struct err *e)
{
	sqlite3_stmt *st = NULL;
	size_t count = 0;
	int step, rc = -1;

	if (sqlite3_prepare_v2(reg->db, "SELECT key, value FROM host_labels WHERE host_id = ?"
	    " ORDER BY key", -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 1, id) != SQLITE_OK) {
		(void)registry_db_err(reg, "reading labels", e);
		goto out;
	}
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		if (count < max) {
			col_copy(st, 0, out[count].key, sizeof(out[count].key));
			col_copy(st, 1, out[count].value, sizeof(out[count].value));
			count++;
		}
	}
	if (step != SQLITE_DONE) {
		(void)registry_db_err(reg, "reading labels", e);
		goto out;
	}
	*n = count;
	rc = 0;
out:
	sqlite3_finalize(st);
	return rc;
}

int
registry_host_labels(struct registry *reg, const char *host, struct selector_label *out,
    size_t max, size_t *n, struct err *e)
{
	sqlite3_int64 id;
	int rc = -1;

	pthread_mutex_lock(&reg->lock);
	id = host_id_of(reg, host, e);
	if (id >= 0) {
		rc = labels_of_id(reg, id, out, max, n, e);
	}
	pthread_mutex_unlock(&reg->lock);
	return rc;
}

int
registry_hosts_select(struct registry *reg, const struct selector *sel, int64_t *cursor,
    size_t limit, struct reg_host *out, size_t *n, struct err *e)
{
	struct selector_label labels[REG_LABELS_MAX];
	sqlite3_stmt *st = NULL;
	size_t count = 0, nl;
	int step = SQLITE_DONE, rc = -1;

	*n = 0;
	pthread_mutex_lock(&reg->lock);
	/* In id order, so the caller pages with CURSOR; names and labels are matched here. */
	if (sqlite3_prepare_v2(reg->db, "SELECT " HOST_SELECT ", id FROM hosts"
	    " WHERE decommissioned_at IS NULL AND id > ? ORDER BY id", -1, &st,
	    NULL) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 1, (sqlite3_int64)*cursor) != SQLITE_OK) {
		(void)registry_db_err(reg, "selecting hosts", e);
		goto out;
	}
	while (count < limit && (step = sqlite3_step(st)) == SQLITE_ROW) {
		sqlite3_int64 id = sqlite3_column_int64(st, 11);

		row_to_host(st, &out[count]);
		*cursor = (int64_t)id;
		nl = 0;
		if (sel->kind == SELECTOR_LABELS &&
		    labels_of_id(reg, id, labels, ARRAY_LEN(labels), &nl, e) != 0) {
			goto out;
		}
		if (selector_match(sel, out[count].name, labels, nl)) {
			count++;
		}
	}
	if (count < limit && step != SQLITE_DONE) {
		(void)registry_db_err(reg, "selecting hosts", e);
		goto out;
	}
	*n = count;
	rc = 0;
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&reg->lock);
	return rc;
}

int
registry_selector_check(struct registry *reg, const struct selector *sel, size_t *matched,
    struct err *e)
{
	struct reg_host h;
	int64_t cursor = 0;
	size_t n = 0, total = 0;

	if (sel->kind == SELECTOR_NAMES) {
		for (size_t i = 0; i < sel->n; i++) {
			struct err ge = ERR_INIT;

			int r = registry_get_host(reg, sel->terms[i].key, &h, &ge);
			if (r == REGISTRY_NOTFOUND) {
				return err_set(e, ERR_NOT_FOUND, "%s: no such host in the registry",
				    sel->terms[i].key);
			}
			if (r != REGISTRY_OK) {
				return err_copy(e, &ge);
			}
			if (h.decommissioned_at != 0) {
				return err_set(e, ERR_CONFLICT, "%s is decommissioned", h.name);
			}
		}
		*matched = sel->n;
		return 0;
	}
	do {
		if (registry_hosts_select(reg, sel, &cursor, 1, &h, &n, e) != 0) {
			return -1;
		}
		total += n;
	} while (n > 0);
	if (total == 0) {
		return err_set(e, ERR_NOT_FOUND, sel->kind == SELECTOR_ALL
		    ? "no host in service is enrolled" : "no host in service matches the selector");
	}
	*matched = total;
	return 0;
}

/* ---- the release store's index and targets ---- */

int
registry_release_add(struct registry *reg, const char *sha256, const char *label, uint64_t size,
    struct err *e)
{
	char sha[REG_FP_LEN + 1];
	sqlite3_stmt *st = NULL;
	int rc = -1;

	if (fp_normalise(sha256, sha) != 0) {
		return err_set(e, ERR_INTERNAL, "release sha256 must be %d hex digits", REG_FP_LEN);
	}
	pthread_mutex_lock(&reg->lock);
	if (sqlite3_prepare_v2(reg->db, "INSERT INTO releases (sha256, label, size, added_at)"
	    " VALUES (?, ?, ?, ?) ON CONFLICT (sha256) DO NOTHING", -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_bind_text(st, 1, sha, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_text(st, 2, label, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 3, (sqlite3_int64)size) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 4, (sqlite3_int64)time(NULL)) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_DONE) {
		(void)registry_db_err(reg, "recording a release", e);
		goto out;
	}
	rc = 0;
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&reg->lock);
	return rc;
}

int
registry_release_label(struct registry *reg, const char *sha256, char *label, size_t len,
    struct err *e)
{
	sqlite3_stmt *st = NULL;
	int rc = -1;

	pthread_mutex_lock(&reg->lock);
	if (sqlite3_prepare_v2(reg->db, "SELECT label FROM releases WHERE sha256 = ?", -1, &st,
	    NULL) != SQLITE_OK ||
	    sqlite3_bind_text(st, 1, sha256, -1, SQLITE_TRANSIENT) != SQLITE_OK) {
		(void)registry_db_err(reg, "reading a release", e);
		goto out;
	}
	switch (sqlite3_step(st)) {
	case SQLITE_ROW:
		col_copy(st, 0, label, len);
		rc = 0;
		break;
	case SQLITE_DONE:
		err_set(e, ERR_NOT_FOUND, "release %.12s is not in the master's store", sha256);
		break;
	default:
		(void)registry_db_err(reg, "reading a release", e);
		break;
	}
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&reg->lock);
	return rc;
}

int
registry_target_set(struct registry *reg, const char *host, const char *sha256, struct err *e)
{
	sqlite3_stmt *st = NULL;
	sqlite3_int64 id;
	int rc = -1;

	pthread_mutex_lock(&reg->lock);
	id = host_id_of(reg, host, e);
	if (id < 0) {
		goto out;
	}
	if (sqlite3_prepare_v2(reg->db, sha256 != NULL
	    ? "INSERT INTO targets (host_id, release_sha256, set_at) VALUES (?, ?, ?)"
	      " ON CONFLICT (host_id) DO UPDATE SET release_sha256 = excluded.release_sha256,"
	      " set_at = excluded.set_at"
	    : "DELETE FROM targets WHERE host_id = ?", -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 1, id) != SQLITE_OK ||
	    (sha256 != NULL && (sqlite3_bind_text(st, 2, sha256, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 3, (sqlite3_int64)time(NULL)) != SQLITE_OK)) ||
	    sqlite3_step(st) != SQLITE_DONE) {
		(void)registry_db_err(reg, "setting a target", e);
		goto out;
	}
	rc = 0;
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&reg->lock);
	return rc;
}

int
registry_target_of(struct registry *reg, const char *host, struct reg_target *out, struct err *e)
{
	sqlite3_stmt *st = NULL;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&reg->lock);
	if (sqlite3_prepare_v2(reg->db, "SELECT t.release_sha256, r.label, t.set_at FROM targets t"
	    " JOIN hosts h ON h.id = t.host_id JOIN releases r ON r.sha256 = t.release_sha256"
	    " WHERE h.name = ?", -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_bind_text(st, 1, host, -1, SQLITE_TRANSIENT) != SQLITE_OK) {
		(void)registry_db_err(reg, "reading a target", e);
		goto out;
	}
	switch (sqlite3_step(st)) {
	case SQLITE_ROW:
		col_copy(st, 0, out->sha256, sizeof(out->sha256));
		col_copy(st, 1, out->label, sizeof(out->label));
		out->set_at = (time_t)sqlite3_column_int64(st, 2);
		rc = 1;
		break;
	case SQLITE_DONE:
		rc = 0;
		break;
	default:
		(void)registry_db_err(reg, "reading a target", e);
		break;
	}
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&reg->lock);
	return rc;
}

/* ---- push log retention ---- */

int
registry_push_prune(struct registry *reg, size_t keep, size_t *removed, struct err *e)
{
	sqlite3_stmt *st = NULL;
	int rc = -1;

	pthread_mutex_lock(&reg->lock);
	if (sqlite3_prepare_v2(reg->db, "DELETE FROM pushes WHERE id IN (SELECT id FROM"
	    " (SELECT id, row_number() OVER (PARTITION BY host_id ORDER BY at DESC, id DESC) AS n"
	    " FROM pushes) WHERE n > ?)", -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 1, (sqlite3_int64)keep) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_DONE) {
		(void)registry_db_err(reg, "pruning the push log", e);
		goto out;
	}
	if (removed != NULL) {
		*removed = (size_t)sqlite3_changes(reg->db);
	}
	rc = 0;
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&reg->lock);
	return rc;
}
