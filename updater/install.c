#include "updater/install.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/fs.h"
#include "common/json.h"
#include "common/log.h"
#include "common/proc.h"
#include "common/release.h"
#include "common/testhook.h"
#include "common/version.h"
#include "updater/delta.h"
#include "updater/extract.h"

#define INSTALL_SEED_CHUNK (64 * 1024)
/* Room for one reason inside a message that holds two. */
#define INSTALL_REASON_CUT 300
/* History lines kept in memory while the disk refuses them. */
#define INSTALL_HISTORY_KEPT 32
/* Under state/: the host is both bad (install_both_bad_save). */
#define INSTALL_BOTH_BAD_FILE "both_bad.json"

struct install {
	const struct updater_config *cfg;
	struct install_deps deps;
	struct store store;  /* the agent's tree: INSTALL_DIR */
	struct store self;   /* the updater's tree: INSTALL_DIR/updater */
	struct trust *trust; /* keyring, security floor, signature policy */

	pthread_mutex_t mu;  /* protects what follows */
	pthread_cond_t idle; /* signalled when the operation lock is released */
	int busy;
	char op_id[JOURNAL_ID_LEN];
	char op_request_id[INSTALL_REQUEST_ID_MAX + 1];
	enum install_kind op_kind;
	const char *phase;
	int64_t op_started;
	int both_bad;
	int handing_over;

	/* both_bad retries of the active (last good) release, by retry_thread. */
	pthread_cond_t retry_cv;  /* both_bad set, or retry_quit */
	pthread_t retry_thread;
	int retry_started;
	int retry_quit;
	int retrying;             /* the operation lock is held by a retry */
	unsigned retry_attempts;  /* since both_bad was last set */
	int64_t retry_next_at;    /* install_now() of the next retry; 0: none planned */

	/* History lines a full disk refused, oldest first (the operation lock's holder only). */
	cJSON *hist_kept[INSTALL_HISTORY_KEPT];
	unsigned hist_nkept;
	unsigned hist_dropped;    /* refused lines dropped when more than the kept ones came */
};

struct install_txn {
	struct install *in;
	const struct install_plan *plan;
	struct store *st;
	const char *staging_rel;
	struct extract *x;
	struct journal_op op;
	int staging;          /* store_update_begin done; staging neither switched nor removed */
	int64_t first_byte;
	int stopped;          /* the extraction stopped early: why in ferr */
	struct err ferr;
	uint64_t bytes;       /* of the tarball, fed so far */
	struct trust_verdict verdict; /* what the signature established */
};

/* ---- names, plans, outcomes ---- */

const char *
install_kind_name(enum install_kind k)
{
	switch (k) {
	case INSTALL_UPDATE:
		return "update";
	case INSTALL_SEED:
		return "seed";
	case INSTALL_ROLLBACK:
		return "rollback";
	case INSTALL_SELF:
		return "update-self";
	}
	return "unknown";
}

const char *
install_result_name(enum install_result r)
{
	switch (r) {
	case INSTALL_REFUSED:
		return "refused";
	case INSTALL_UPDATED:
		return "updated";
	case INSTALL_ROLLED_BACK:
		return "rolled_back";
	case INSTALL_RESTORED:
		return "restored";
	case INSTALL_BOTH_BAD:
		return "both_bad";
	case INSTALL_FAILED:
		return "failed";
	case INSTALL_QUEUED:
		return "queued";
	case INSTALL_ALREADY_ACTIVE:
		return "already_active";
	}
	return "unknown";
}

void
install_plan_init(struct install_plan *p, enum install_kind kind)
{
	memset(p, 0, sizeof(*p));
	p->kind = kind;
}

_Static_assert(INSTALL_REQUEST_ID_MAX + 1 == JOURNAL_REQUEST_ID_LEN,
    "the journal keeps a whole request id");

int
install_request_id_valid(const char *rid)
{
	size_t n = strlen(rid);

	if (n == 0 || n > INSTALL_REQUEST_ID_MAX) {
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		if (!isalnum((unsigned char)rid[i]) && rid[i] != '-' && rid[i] != '_') {
			return 0;
		}
	}
	return 1;
}

void
install_outcome_init(struct install_outcome *oc, enum install_kind kind)
{
	memset(oc, 0, sizeof(*oc));
	oc->kind = kind;
	oc->result = INSTALL_REFUSED;
	err_clear(&oc->err);
}

void
install_outcome_free(struct install_outcome *oc)
{
	if (oc == NULL) {
		return;
	}
	free(oc->output);
	free(oc->probe_new);
	free(oc->probe_restored);
	oc->output = NULL;
	oc->probe_new = NULL;
	oc->probe_restored = NULL;
}

/* ---- collaborators ---- */

static int
install_run_proc(const struct install_run *r, char *out, size_t outlen, int *status,
    struct err *e)
{
	struct proc_spec spec;
	struct err pe = ERR_INIT;
	size_t n = 0;

	proc_spec_init(&spec);
	spec.argv = r->argv;
	spec.cwd = r->cwd;
	spec.user = r->user;
	spec.group = r->group;
	if (proc_run_capture(&spec, r->timeout_ms, out, outlen, &n, status, &pe) != 0) {
		/* Could not run, or timed out: either way the release's check refused it. */
		return err_set(e, ERR_PREFLIGHT, "%s", err_msg(&pe));
	}
	return 0;
}

void
install_deps_init(struct install_deps *d)
{
	memset(d, 0, sizeof(*d));
	d->run = install_run_proc;
	d->now_ms = mono_ms;
	d->version = tandem_version();
}

static int64_t
install_now(const struct install *in)
{
	return in->deps.now_ms();
}

/*
 * The store's crash points of a self-update are named "self.<point>"
 * ("self.update.exchanged"), apart from the same points of an agent update.
 */
static void
install_scope(enum install_kind kind, int enter)
{
	if (kind != INSTALL_SELF) {
		return;
	}
	if (enter) {
		testhook_scope_enter("self");
	} else {
		testhook_scope_leave();
	}
}

static void
install_phase(struct install *in, const char *phase)
{
	pthread_mutex_lock(&in->mu);
	in->phase = phase;
	pthread_mutex_unlock(&in->mu);
}

/* The wait before both_bad retry N (0-based): both_bad_retry_interval doubling, at most 1 h. */
static int64_t
install_retry_delay(const struct install *in, unsigned n)
{
	int64_t d = in->cfg->both_bad_retry_interval_ms;

	while (n-- > 0 && d < 3600000) {
		d *= 2;
	}
	return d < 3600000 ? d : 3600000;
}

int
install_both_bad_format(unsigned attempts, char *buf, size_t len)
{
	int n = snprintf(buf, len, "{\"attempts\":%u}\n", attempts < INSTALL_BOTH_BAD_MAX_ATTEMPTS ?
	    attempts : INSTALL_BOTH_BAD_MAX_ATTEMPTS);

	return n < 0 || (size_t)n >= len ? -1 : n;
}

int
install_both_bad_parse(const char *buf, size_t len, unsigned *attempts, struct err *e)
{
	struct bb { int64_t attempts; } v = { 0 };
	static const struct json_field fields[] = {
		JSON_F_INT("attempts", struct bb, attempts, JSON_REQUIRED, 0,
		    INSTALL_BOTH_BAD_MAX_ATTEMPTS),
	};
	cJSON *o = json_parse_object_ex(buf, len, INSTALL_BOTH_BAD_MAX_BYTES, 2, e);
	int rc;

	if (o == NULL) {
		return -1;
	}
	rc = json_read_fields(o, fields, ARRAY_LEN(fields), 0, &v, e);
	cJSON_Delete(o);
	if (rc != 0) {
		return -1;
	}
	*attempts = (unsigned)v.attempts;
	return 0;
}

/*
 * state/both_bad.json ({"attempts": N}) says the host is both bad and N
 * both_bad retries were made; no file: not both bad. Written (atomically,
 * fsynced) by the thread holding the operation lock, so a restarted updater
 * still reports both_bad and goes on with the retries that are left. A
 * failed write is logged: the state in memory stays right until a restart.
 */
static void
install_both_bad_save(const struct install *in, int v, unsigned attempts)
{
	char p[PATH_MAX], buf[64];
	int n = snprintf(p, sizeof(p), "%s/state/%s", in->store.root, INSTALL_BOTH_BAD_FILE);
	int len;

	if (n < 0 || (size_t)n >= sizeof(p)) {
		log_warnx("both_bad state: path too long");
		return;
	}
	if (!v) {
		if (unlink(p) != 0) {
			if (errno != ENOENT) {
				log_warnx("both_bad state: remove %s: %s", p, strerror(errno));
			}
		} else if (fs_fsync_parent(p) != 0) {
			log_warnx("both_bad state: fsync the directory of %s: %s", p, strerror(errno));
		}
		return;
	}
	len = install_both_bad_format(attempts, buf, sizeof(buf));
	if (len < 0 || fs_write_atomic(p, buf, (size_t)len, 0600) != 0) {
		log_warnx("both_bad state: write %s: %s", p, strerror(errno));
	}
}

/*
 * At start: a both_bad.json left by an earlier run makes the host both bad
 * again, its retries counted on from where they were (the next one after
 * the delay that follows that count). An unreadable file counts as both bad
 * with no retry made: fail towards caution, the first passing probe ends it.
 */
static void
install_both_bad_load(struct install *in)
{
	struct err e = ERR_INIT;
	char p[PATH_MAX], *buf = NULL;
	size_t len = 0;
	unsigned attempts = 0;
	int n = snprintf(p, sizeof(p), "%s/state/%s", in->store.root, INSTALL_BOTH_BAD_FILE);

	if (n < 0 || (size_t)n >= sizeof(p)) {
		return;
	}
	if (fs_read_file(p, INSTALL_BOTH_BAD_MAX_BYTES, &buf, &len) != 0) {
		if (errno != ENOENT) {
			log_warnx("both_bad state: read %s: %s; taken as both bad", p, strerror(errno));
			goto set;
		}
		return;
	}
	if (install_both_bad_parse(buf, len, &attempts, &e) != 0) {
		log_warnx("both_bad state: %s is not {\"attempts\": N} (%s); taken as both bad, no "
		    "retry made", p, err_msg(&e));
	}
set:
	in->both_bad = 1;
	in->retry_attempts = attempts;
	in->retry_next_at = attempts < (unsigned)(in->cfg->both_bad_retries > 0 ?
	    in->cfg->both_bad_retries : 0) ? install_now(in) + install_retry_delay(in, attempts) : 0;
	log_warnx("both bad since an earlier run (%u retries made, %s)", attempts,
	    in->retry_next_at != 0 ? "retrying" : "no retry left: a push or rollback is needed");
	free(buf);
}

static void
install_set_both_bad(struct install *in, int v)
{
	install_both_bad_save(in, v, 0);
	pthread_mutex_lock(&in->mu);
	in->both_bad = v;
	in->retry_attempts = 0;
	in->retry_next_at = v && in->cfg->both_bad_retries > 0 ?
	    install_now(in) + install_retry_delay(in, 0) : 0;
	pthread_cond_broadcast(&in->retry_cv);
	pthread_mutex_unlock(&in->mu);
}

/* ---- lifecycle, lock, status ---- */

/* The trust state of the agent's tree (after its recovery: the active release is final). */
static int
install_trust_open(struct install *in, struct err *e)
{
	struct trust_config tc;
	struct release_info active;
	char state[PATH_MAX];
	int n = snprintf(state, sizeof(state), "%s/state", in->store.root);

	if (n < 0 || (size_t)n >= sizeof(state)) {
		return err_set(e, ERR_CONFIG, "install_dir is too long");
	}
	memset(&tc, 0, sizeof(tc));
	tc.state_dir = state;
	tc.bootstrap = in->cfg->release_keyring;
	tc.require_signed = in->cfg->require_signed;
	tc.compatible = in->cfg->compatible;
	return trust_open(&tc, store_release_read(&in->store, "active", &active, NULL) == 1 ?
	    &active : NULL, &in->trust, e);
}

int
install_new(const struct updater_config *cfg, const struct install_deps *deps,
    struct install **out, char *recovered, size_t recoveredlen, struct err *e)
{
	struct install *in = calloc(1, sizeof(*in));
	char root[PATH_MAX], what[512];
	int n;

	if (in == NULL) {
		return err_set(e, ERR_NOMEM, "install: out of memory");
	}
	pthread_mutex_init(&in->mu, NULL);
	pthread_cond_init(&in->idle, NULL);
	pthread_cond_init(&in->retry_cv, NULL);
	in->cfg = cfg;
	in->deps = *deps;
	if (store_init(&in->store, cfg->install_dir, (unsigned)cfg->failed_keep, e) != 0 ||
	    store_recover(&in->store, what, sizeof(what), e) != 0) {
		goto fail;
	}
	if (recovered != NULL) {
		(void)snprintf(recovered, recoveredlen, "%s", what);
	}
	n = snprintf(root, sizeof(root), "%s/%s", cfg->install_dir, INSTALL_SELF_TREE);
	if (n < 0 || (size_t)n >= sizeof(root)) {
		err_set(e, ERR_CONFIG, "install_dir is too long");
		goto fail;
	}
	if (store_init(&in->self, root, (unsigned)cfg->failed_keep, e) != 0 ||
	    install_trust_open(in, e) != 0) {
		goto fail;
	}
	install_both_bad_load(in);
	*out = in;
	return 0;
fail:
	install_free(in);
	return -1;
}

void
install_free(struct install *in)
{
	if (in == NULL) {
		return;
	}
	install_retry_stop(in);
	for (unsigned i = 0; i < in->hist_nkept; i++) {
		cJSON_Delete(in->hist_kept[i]);
	}
	trust_free(in->trust);
	pthread_cond_destroy(&in->retry_cv);
	pthread_cond_destroy(&in->idle);
	pthread_mutex_destroy(&in->mu);
	free(in);
}

/* The longest one both_bad retry can hold the operation lock: stop, start, one probe. */
static int64_t
install_retry_bound(const struct install *in)
{
	const struct updater_config *c = in->cfg;

	return 2 * c->stop_grace_ms + 2 * c->probe_deadline_ms + c->probe_stable_ms + 1000;
}

int
install_lock(struct install *in, enum install_kind kind, char id[JOURNAL_ID_LEN], struct err *e)
{
	return install_lock_wait(in, kind, id, 0, e);
}

int
install_lock_wait(struct install *in, enum install_kind kind, char id[JOURNAL_ID_LEN],
    int64_t wait_ms, struct err *e)
{
	char running[JOURNAL_ID_LEN];
	struct timespec until;

	if (wait_ms > 0) {
		/* The condition variable runs on CLOCK_REALTIME (its default). */
		timespec_after_ms(CLOCK_REALTIME, wait_ms, &until);
	}
	pthread_mutex_lock(&in->mu);
	if (in->busy && in->retrying) {
		/* A both_bad retry never refuses a push: the push waits for its one probe. */
		struct timespec retry_until;

		timespec_after_ms(CLOCK_REALTIME, install_retry_bound(in), &retry_until);
		while (in->busy && in->retrying) {
			if (pthread_cond_timedwait(&in->idle, &in->mu, &retry_until) != 0) {
				break;
			}
		}
	}
	while (in->busy && wait_ms > 0) {
		if (pthread_cond_timedwait(&in->idle, &in->mu, &until) != 0) {
			break;
		}
	}
	if (in->busy) {
		memcpy(running, in->op_id, sizeof(running));
		pthread_mutex_unlock(&in->mu);
		return err_set(e, ERR_BUSY, "another operation is in progress: %s", running);
	}
	if (journal_new_id(id, e) != 0) {
		pthread_mutex_unlock(&in->mu);
		return err_prefix(e, "cannot make an operation id");
	}
	in->busy = 1;
	memcpy(in->op_id, id, JOURNAL_ID_LEN);
	in->op_kind = kind;
	in->phase = "receiving";
	in->op_started = install_now(in);
	pthread_mutex_unlock(&in->mu);
	return 0;
}

void
install_unlock(struct install *in)
{
	pthread_mutex_lock(&in->mu);
	in->busy = 0;
	in->op_id[0] = '\0';
	in->op_request_id[0] = '\0';
	in->phase = NULL;
	pthread_cond_broadcast(&in->idle);
	pthread_mutex_unlock(&in->mu);
}

void
install_set_request_id(struct install *in, const char *rid)
{
	pthread_mutex_lock(&in->mu);
	(void)snprintf(in->op_request_id, sizeof(in->op_request_id), "%s", rid);
	pthread_mutex_unlock(&in->mu);
}

void
install_status(struct install *in, struct install_status *st)
{
	memset(st, 0, sizeof(*st));
	pthread_mutex_lock(&in->mu);
	st->busy = in->busy;
	memcpy(st->id, in->op_id, sizeof(st->id));
	memcpy(st->request_id, in->op_request_id, sizeof(st->request_id));
	st->kind = in->busy ? install_kind_name(in->op_kind) : NULL;
	st->phase = in->phase;
	st->elapsed_ms = in->busy ? install_now(in) - in->op_started : 0;
	st->both_bad = in->both_bad;
	st->handing_over = in->handing_over;
	st->retry_attempts = in->retry_attempts;
	st->retry_max = (unsigned)in->cfg->both_bad_retries;
	st->retry_running = in->retrying;
	st->retry_next_in_ms = in->retry_next_at > 0 ? in->retry_next_at - install_now(in) : -1;
	if (st->retry_next_in_ms < -1) {
		st->retry_next_in_ms = 0;
	}
	pthread_mutex_unlock(&in->mu);
}

/* Milliseconds since the operation lock was taken. */
static int64_t
install_elapsed(struct install *in)
{
	int64_t started;

	pthread_mutex_lock(&in->mu);
	started = in->op_started;
	pthread_mutex_unlock(&in->mu);
	return install_now(in) - started;
}

int
install_active(struct install *in, struct release_info *ri)
{
	struct release_info tmp;

	return store_release_read(&in->store, "active", ri != NULL ? ri : &tmp, NULL) == 1;
}

cJSON *
install_releases_json(struct install *in)
{
	static const char *const slots[] = { "active", "prev" };
	cJSON *arr = cJSON_CreateArray();
	struct release_info ri;

	if (arr == NULL) {
		return NULL;
	}
	for (size_t i = 0; i < ARRAY_LEN(slots); i++) {
		cJSON *o;

		if (store_release_read(&in->store, slots[i], &ri, NULL) != 1) {
			continue;
		}
		o = release_record_json(&ri, slots[i]);
		if (o == NULL) {
			cJSON_Delete(arr);
			return NULL;
		}
		cJSON_AddItemToArray(arr, o);
	}
	return arr;
}

cJSON *
install_history_json(struct install *in, const char *request_id)
{
	cJSON *all = journal_history_read(in->store.root), *it, *next;

	if (all == NULL || request_id == NULL) {
		return all;
	}
	for (it = all->child; it != NULL; it = next) {
		const char *rid = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it,
		    "request_id"));

		next = it->next;
		if (rid == NULL || strcmp(rid, request_id) != 0) {
			cJSON_Delete(cJSON_DetachItemViaPointer(all, it));
		}
	}
	return all;
}

cJSON *
install_self_release_json(struct install *in)
{
	struct release_info ri;

	if (store_release_read(&in->self, "active", &ri, NULL) == 1) {
		return release_record_json(&ri, "active");
	}
	return cJSON_CreateNull();
}

struct trust *
install_trust(struct install *in)
{
	return in->trust;
}

const char *
install_root(const struct install *in)
{
	return in->store.root;
}

const char *
install_self_root(const struct install *in)
{
	return in->self.root;
}

/* ---- history ---- */

/*
 * A refused history line (a full disk: the 507 that says so is the very
 * operation whose line cannot be written) is kept in memory, at most
 * INSTALL_HISTORY_KEPT of them, and written before the next line once the
 * disk takes it, so the history tells about refusals in their order. Lost
 * if the updater stops first (the log has them). Under the operation lock.
 */
static void
install_history_keep(struct install *in, cJSON *h)
{
	if (in->hist_nkept == INSTALL_HISTORY_KEPT) {
		cJSON_Delete(in->hist_kept[0]);
		memmove(in->hist_kept, in->hist_kept + 1, (INSTALL_HISTORY_KEPT - 1) * sizeof(cJSON *));
		in->hist_nkept--;
		in->hist_dropped++;
	}
	in->hist_kept[in->hist_nkept++] = h;
}

/* Write the kept lines, oldest first; 0 when none is left, else -1 with E. */
static int
install_history_flush(struct install *in, struct err *e)
{
	while (in->hist_nkept > 0) {
		if (in->hist_dropped > 0 &&
		    json_add_int(in->hist_kept[0], "refused_lines_dropped_before", in->hist_dropped) != 0) {
			return err_set(e, ERR_NOMEM, "history: out of memory");
		}
		if (journal_history_append(in->store.root, in->hist_kept[0], 0, e) != 0) {
			cJSON_DeleteItemFromObjectCaseSensitive(in->hist_kept[0],
			    "refused_lines_dropped_before");
			return -1;
		}
		in->hist_dropped = 0;
		cJSON_Delete(in->hist_kept[0]);
		memmove(in->hist_kept, in->hist_kept + 1, (in->hist_nkept - 1) * sizeof(cJSON *));
		in->hist_nkept--;
		log_info("history: wrote a line kept from a full disk (%u left)", in->hist_nkept);
	}
	return 0;
}

/*
 * One line of state/history.jsonl for OC: what was installed (SHA256, SHA,
 * VERSION), by whom, the result, the error and every phase's time. A seed
 * leaves none (it runs before the daemon serves; its outcome is the exit).
 */
static void
install_history(struct install *in, const struct install_outcome *oc, const char *caller,
    const char *sha256, const char *sha, const char *version, const char *request_id)
{
	const int failed = err_failed(&oc->err);
	struct err e = ERR_INIT;
	cJSON *h = cJSON_CreateObject(), *t;
	char stamp[32];

	if (in->deps.on_outcome != NULL) {
		in->deps.on_outcome(in->deps.outcome_arg, oc);
	}
	if (oc->kind == INSTALL_SEED) {
		cJSON_Delete(h);
		return;
	}
	iso8601_utc(time(NULL), stamp, sizeof(stamp));
	if (h == NULL || json_add_str(h, "id", oc->id) != 0 ||
	    json_add_str(h, "kind", install_kind_name(oc->kind)) != 0 ||
	    json_add_str(h, "finished_at", stamp) != 0 || json_add_str(h, "caller", caller) != 0 ||
	    (request_id[0] != '\0' && json_add_str(h, "request_id", request_id) != 0) ||
	    json_add_str(h, "sha256", sha256) != 0 || json_add_str(h, "sha", sha) != 0 ||
	    json_add_str(h, "version", version) != 0 ||
	    json_add_str(h, "result", install_result_name(oc->result)) != 0 ||
	    json_add_str(h, "error", failed ? err_msg(&oc->err) : NULL) != 0 ||
	    json_add_str(h, "error_kind", failed ? err_kind_name(oc->err.kind) : NULL) != 0 ||
	    (t = json_add_object(h, "timings")) == NULL ||
	    json_add_int(t, "upload_ms", oc->t.upload_ms) != 0 ||
	    json_add_int(t, "extract_ms", oc->t.extract_ms) != 0 ||
	    json_add_int(t, "preflight_ms", oc->t.preflight_ms) != 0 ||
	    json_add_int(t, "switch_ms", oc->t.switch_ms) != 0 ||
	    json_add_int(t, "probe_ms", oc->t.probe_ms) != 0 ||
	    json_add_int(t, "restore_ms", oc->t.restore_ms) != 0 ||
	    json_add_int(t, "total_ms", oc->t.total_ms) != 0) {
		log_warnx("history: out of memory");
	} else if (install_history_flush(in, &e) != 0 ||
	    journal_history_append(in->store.root, h, 0, &e) != 0) {
		log_warnx("history: %s; %s %s's line is kept in memory and written with the next one",
		    err_msg(&e), install_kind_name(oc->kind), oc->id);
		install_history_keep(in, h);
		h = NULL;
	}
	cJSON_Delete(h);
}

/* ---- manifests ---- */

/* The agent release's manifest in SLOT of the agent's tree (programs checked on disk). */
static int
install_manifest(const struct store *st, const char *slot, struct release_manifest *m,
    struct err *e)
{
	char dir[PATH_MAX];
	int n = snprintf(dir, sizeof(dir), "%s/releases/%s", st->root, slot);

	if (n < 0 || (size_t)n >= sizeof(dir)) {
		return err_set(e, ERR_INTERNAL, "releases/%s: path too long", slot);
	}
	return release_manifest_read(dir, RELEASE_MF_AGENT, m, e);
}

int
install_self_entrypoint(const char *dir, char *entry, size_t entrylen, char *version,
    size_t versionlen, struct err *e)
{
	struct release_manifest m;

	if (release_manifest_read(dir, RELEASE_MF_UPDATER, &m, e) != 0) {
		return -1;
	}
	if (strlcpy_chk(entry, m.updater_entrypoint, entrylen) != 0 ||
	    strlcpy_chk(version, m.version, versionlen) != 0) {
		return err_set(e, ERR_INTERNAL, "updater_entrypoint: buffer too small");
	}
	return 0;
}

/* ---- preflight ---- */

/*
 * Run ARGV (a preflight) from CWD with the configured limits. On failure E
 * is ERR_PREFLIGHT and OC->output holds what the command printed.
 */
static int
install_run_preflight(struct install *in, const char *const *argv, const char *cwd,
    const char *shown, int drop, struct install_outcome *oc, struct err *e)
{
	struct install_run r;
	struct err re = ERR_INIT;
	char desc[96];
	char *out = calloc(1, INSTALL_OUTPUT_MAX);
	int status = 0, rc = -1;

	if (out == NULL) {
		return err_set(e, ERR_NOMEM, "preflight: out of memory");
	}
	memset(&r, 0, sizeof(r));
	r.argv = argv;
	r.cwd = cwd;
	r.timeout_ms = (int)in->cfg->preflight_timeout_ms;
	if (drop && in->cfg->run_as_user[0] != '\0') {
		r.user = in->cfg->run_as_user;
		r.group = in->cfg->run_as_group[0] != '\0' ? in->cfg->run_as_group : NULL;
	}
	if (in->deps.run(&r, out, INSTALL_OUTPUT_MAX, &status, &re) != 0) {
		err_set(e, ERR_PREFLIGHT, "preflight: %s", err_msg(&re));
	} else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		err_set(e, ERR_PREFLIGHT, "preflight %s %s", shown,
		    proc_status_str(status, desc, sizeof(desc)));
	} else {
		rc = 0;
	}
	if (rc != 0) {
		oc->output = out;
		out = NULL;
	}
	free(out);
	return rc;
}

/*
 * The staged agent release's preflight: the manifest's "preflight" (default
 * ENTRYPOINT --self-test) with --config AGENT_CONFIG --listen 127.0.0.1:0
 * appended, so the check does not need the running agent's port.
 */
static int
install_preflight(struct install *in, const struct release_manifest *m, struct install_outcome *oc,
    struct err *e)
{
	const char *argv[RELEASE_ARGS_MAX + 6];
	const char *first = m->npreflight > 0 ? m->preflight[0] : m->entrypoint;
	char dir[PATH_MAX], prog[PATH_MAX];
	struct err ce = ERR_INIT;
	size_t n = 0;

	if (snprintf(dir, sizeof(dir), "%s/%s", in->store.root, STORE_STAGING_REL) >=
		(int)sizeof(dir) ||
	    snprintf(prog, sizeof(prog), "%s/%s", dir, first) >= (int)sizeof(prog)) {
		return err_set(e, ERR_PREFLIGHT, "preflight: path too long");
	}
	if (release_check_exec(dir, first, &ce) != 0) {
		return err_set(e, ERR_PREFLIGHT, "preflight: %s", err_msg(&ce));
	}
	argv[n++] = prog;
	if (m->npreflight > 0) {
		for (size_t i = 1; i < m->npreflight; i++) {
			argv[n++] = m->preflight[i];
		}
	} else {
		argv[n++] = "--self-test";
	}
	argv[n++] = "--config";
	argv[n++] = in->cfg->agent_config;
	argv[n++] = "--listen";
	argv[n++] = "127.0.0.1:0";
	argv[n] = NULL;
	return install_run_preflight(in, argv, dir, first, 1, oc, e);
}

/* The staged updater's --self-test with the running configuration. */
static int
install_self_preflight(struct install *in, const char *dir, const struct release_manifest *m, struct install_outcome *oc, struct err *e)
{
	char prog[PATH_MAX], shown[300];
	const char *argv[7];

	if (in->deps.launcher_config == NULL) {
		return err_set(e, ERR_UNAVAILABLE, "self-update needs tandem-launcher");
	}
	if (snprintf(prog, sizeof(prog), "%s/%s", dir, m->updater_entrypoint) >=
	    (int)sizeof(prog)) {
		return err_set(e, ERR_PREFLIGHT, "preflight: path too long");
	}
	(void)snprintf(shown, sizeof(shown), "%s --self-test", m->updater_entrypoint);
	argv[0] = prog;
	argv[1] = "--self-test";
	argv[2] = "--config";
	argv[3] = in->deps.launcher_config;
	argv[4] = "--install-dir";
	argv[5] = in->cfg->install_dir;
	argv[6] = NULL;
	return install_run_preflight(in, argv, dir, shown, 0, oc, e);
}

/* ---- the transaction ---- */

/* How one kind of plan moves the releases (update or rollback). */
struct install_switch {
	/* Drop what OP staged before anything switched (NULL: nothing staged). */
	int (*abort)(struct store *s, const struct journal_op *op, struct err *e);
	int (*begin)(struct store *s, struct journal_op *op, const char *caller, struct err *e);
	int (*commit)(struct store *s, struct journal_op *op, struct err *e);
	int (*restore)(struct store *s, struct journal_op *op, struct err *e);
	const char *point_started;  /* crash point once the agent started */
	const char *point_passed;   /* ... and once it passed its probe */
	const char *what;           /* "new release" */
	const char *restored;       /* "the restored release" */
};

static int
install_update_switch(struct store *s, struct journal_op *op, const char *caller, struct err *e)
{
	(void)caller; /* journaled by store_update_begin() */
	return store_update_switch(s, op, e);
}

static int
install_rollback_switch(struct store *s, struct journal_op *op, const char *caller,
    struct err *e)
{
	return store_rollback_begin(s, op, caller, e);
}

static const struct install_switch install_sw_update = {
	.abort = store_update_abort,
	.begin = install_update_switch,
	.commit = store_update_commit,
	.restore = store_update_restore,
	.point_started = "update.agent_started",
	.point_passed = "update.probe_passed",
	.what = "new release",
	.restored = "the restored release",
};

static const struct install_switch install_sw_rollback = {
	.begin = install_rollback_switch,
	.commit = store_rollback_commit,
	.restore = store_rollback_restore,
	.point_started = "rollback.agent_started",
	.point_passed = "rollback.probe_passed",
	.what = "previous release",
	.restored = "the restored one",
};

/*
 * Put the releases back as they were before OP (nothing switched yet, or a
 * switch that failed half way): the journal knows where everything is. An
 * operation that journaled nothing (phase 0) has nothing to undo.
 */
static void
install_undo(const struct install_switch *sw, struct store *st, struct journal_op *op)
{
	struct err e = ERR_INIT;

	if (op->phase != 0 && sw->restore(st, op, &e) != 0) {
		log_warnx("%s: undo: %s", op->id, err_msg(&e));
	}
}

/* How install_start_probe() failed, for messages. */
#define INSTALL_START_FAILED (-2)

static const char *
install_failed_how(int rc)
{
	return rc == INSTALL_START_FAILED ? "did not start" : "failed its probe";
}

/*
 * Start the agent and probe it for RI. 0 passed; -1 with E when the probe
 * failed (ERR_PROBE...); INSTALL_START_FAILED with E when the start did (no
 * probe ran: the spawn failed, or the agent exited before READY). *GEN names
 * the start whenever a process was spawned (its output), else 0.
 */
static int
install_start_probe(struct install *in, const struct release_info *ri, const char *point,
    uint64_t *gen, char **body, struct err *e)
{
	const struct install_agent *ag = &in->deps.agent;

	*gen = 0;
	*body = NULL;
	if (ag->start(ag->arg, gen, e) != 0) {
		err_prefix(e, "agent");
		return INSTALL_START_FAILED;
	}
	if (point != NULL) {
		testhook_point(point);
	}
	return ag->probe(ag->arg, *gen, ri, body, e);
}

/*
 * Start and probe the restored (known-good) release OLD. One failure of it
 * is not evidence that it is bad (a crash on a loaded host, a port not yet
 * free): it is stopped and started again up to restore_probe_retries times,
 * after restore_retry_backoff doubling each time. Returns the attempt that
 * passed (1 = the first) or 0 when none did (E: the last failure).
 */
static int
install_restore_probe(struct install *in, const struct release_info *old, uint64_t *gen,
    char **body, struct err *e)
{
	const struct install_agent *ag = &in->deps.agent;
	struct err e2 = ERR_INIT;
	long long backoff = in->cfg->restore_retry_backoff_ms;
	int try, rc;

	for (try = 0;; try++) {
		if ((rc = install_start_probe(in, old, NULL, gen, body, e)) == 0) {
			return try + 1;
		}
		if (try >= in->cfg->restore_probe_retries) {
			return 0;
		}
		log_warnx("restored release %s %s (attempt %d of %lld): %s; again in %lld ms",
		    old->id, install_failed_how(rc), try + 1, in->cfg->restore_probe_retries + 1,
		    err_msg(e), backoff);
		free(*body);
		*body = NULL;
		if (ag->stop(ag->arg, &e2) != 0) {
			log_warnx("stop the restored agent: %s", err_msg(&e2));
		}
		if (backoff > 0) {
			(void)poll(NULL, 0, backoff > INT_MAX ? INT_MAX : (int)backoff);
		}
		backoff = backoff > LLONG_MAX / 2 ? backoff : backoff * 2;
	}
}

/*
 * The one transaction: stop the agent, switch to TARGET (SW), start it,
 * probe it, commit. When it fails: capture its output, restore OLD (NULL:
 * there is none), start and probe that (with retries); both_bad when that
 * fails every time. OP
 * is the journaled operation (update: begun, staged; rollback: only the
 * id). 0 when TARGET runs and passed.
 */
static int
install_transact(struct install *in, const struct install_switch *sw, struct store *st,
    struct journal_op *op, const char *caller, const struct release_info *target,
    const struct release_info *old, struct install_outcome *oc)
{
	const struct install_agent *ag = &in->deps.agent;
	struct err e = ERR_INIT, e2 = ERR_INIT, why = ERR_INIT;
	char *body = NULL;
	uint64_t gen = 0;
	int64_t t;
	int tries, rc;
	const char *how;

	install_phase(in, "switching");
	t = install_now(in);
	if (ag->stop(ag->arg, &e) != 0) {
		if (sw->abort != NULL && sw->abort(st, op, &e2) != 0) {
			log_warnx("%s: cleanup: %s", op->id, err_msg(&e2));
		}
		err_copy(&oc->err, &e);
		err_prefix(&oc->err, "stop the running agent");
		return -1;
	}
	if (sw->begin(st, op, caller, &e) != 0) {
		install_undo(sw, st, op);
		if (old != NULL && ag->start(ag->arg, &gen, &e2) != 0) {
			log_warnx("restart the agent: %s", err_msg(&e2));
		}
		err_copy(&oc->err, &e); /* the switch's kind: a full disk stays a full disk */
		oc->t.switch_ms = install_now(in) - t;
		return -1;
	}
	oc->t.switch_ms = install_now(in) - t;

	install_phase(in, "probing");
	t = install_now(in);
	rc = install_start_probe(in, target, sw->point_started, &gen, &body, &why);
	if (rc == 0) {
		oc->t.probe_ms = install_now(in) - t;
		testhook_point(sw->point_passed);
		if (sw->commit(st, op, &e) != 0) {
			/* It runs and passed; recovery finishes the commit at the next start. */
			log_warnx("%s %s: commit: %s", install_kind_name(oc->kind), op->id,
			    err_msg(&e));
		}
		/* Committed: only now may the floor rise (a failed probe could still go back). */
		if (trust_commit(in->trust, target, &e) != 0) {
			/* The next start raises it from the active release's record. */
			log_warnx("%s %s: security floor: %s", install_kind_name(oc->kind), op->id,
			    err_msg(&e));
		}
		install_set_both_bad(in, 0);
		oc->result = oc->kind == INSTALL_ROLLBACK ? INSTALL_ROLLED_BACK : INSTALL_UPDATED;
		oc->probe_new = body;
		oc->have_release = store_release_read(st, "active", &oc->release, NULL) == 1;
		return 0;
	}
	oc->t.probe_ms = install_now(in) - t;
	oc->probe_new = body;
	body = NULL;
	oc->output = ag->output(ag->arg, gen);
	how = install_failed_how(rc);
	log_warnx("%s %s: %s %s: %s", install_kind_name(oc->kind), op->id, sw->what, how,
	    err_msg(&why));

	install_phase(in, "restoring");
	t = install_now(in);
	if (ag->stop(ag->arg, &e) != 0) {
		log_warnx("stop the failed agent: %s", err_msg(&e));
	}
	if (sw->restore(st, op, &e) != 0) {
		oc->result = INSTALL_FAILED;
		err_set(&oc->err, e.kind, "%s failed (%s); restoring failed: %s", sw->what,
		    err_msg(&why), err_msg(&e));
		oc->t.restore_ms = install_now(in) - t;
		return -1;
	}
	if (old == NULL) {
		oc->result = INSTALL_FAILED;
		err_set(&oc->err, ERR_PROBE,
		    "release %s and there is no previous release: %s", how, err_msg(&why));
		oc->t.restore_ms = install_now(in) - t;
		return -1;
	}
	tries = install_restore_probe(in, old, &gen, &body, &e);
	if (tries > 0) {
		oc->result = oc->kind == INSTALL_ROLLBACK ? INSTALL_RESTORED : INSTALL_ROLLED_BACK;
		if (tries == 1) {
			err_set(&oc->err, ERR_PROBE, "%s %s: %s", sw->what, how, err_msg(&why));
		} else {
			err_set(&oc->err, ERR_PROBE, "%s %s: %s (%s passed at attempt %d)",
			    sw->what, how, err_msg(&why), sw->restored, tries);
		}
	} else {
		install_set_both_bad(in, 1);
		oc->result = INSTALL_BOTH_BAD;
		err_set(&oc->err, ERR_PROBE, "%s %s (%.*s) and %s failed too (%.*s)",
		    sw->what, how, INSTALL_REASON_CUT, err_msg(&why), sw->restored,
		    INSTALL_REASON_CUT, err_msg(&e));
		log_warnx("%s %s: both releases bad: %s", install_kind_name(oc->kind), op->id,
		    err_msg(&oc->err));
	}
	oc->probe_restored = body;
	oc->have_release = store_release_read(st, "active", &oc->release, NULL) == 1;
	oc->t.restore_ms = install_now(in) - t;
	return -1;
}

/* ---- both_bad retries ---- */

/*
 * One retry of a host in both_bad: under the operation lock (a push or
 * rollback that holds it wins: the retry is put off), stop the agent, start
 * the active release's agent and probe it. A pass ends both_bad; a failure
 * plans the next retry, or none after both_bad_retries.
 */
static void
install_retry_once(struct install *in)
{
	const struct install_agent *ag = &in->deps.agent;
	struct err e = ERR_INIT;
	struct release_info active;
	char id[JOURNAL_ID_LEN];
	char *body = NULL;
	uint64_t gen = 0;
	unsigned n;
	int rc = -1;

	if (install_lock(in, INSTALL_ROLLBACK, id, &e) != 0) {
		pthread_mutex_lock(&in->mu);
		in->retry_next_at = install_now(in) + 1000; /* an operation runs: ask again later */
		pthread_mutex_unlock(&in->mu);
		return;
	}
	pthread_mutex_lock(&in->mu);
	in->retrying = 1;
	in->phase = "both_bad_retry";
	n = ++in->retry_attempts;
	in->retry_next_at = 0;
	pthread_mutex_unlock(&in->mu);
	if (store_release_read(&in->store, "active", &active, &e) != 1) {
		log_warnx("both bad, retry %u: no active release to retry (%s)", n, err_msg(&e));
	} else {
		log_info("both bad, retry %u of %lld: restarting %s (%s)", n,
		    in->cfg->both_bad_retries, active.id, active.version);
		if (ag->stop(ag->arg, &e) != 0) {
			log_warnx("both bad, retry %u: stop the agent: %s", n, err_msg(&e));
		}
		rc = install_start_probe(in, &active, NULL, &gen, &body, &e);
		free(body);
	}
	install_both_bad_save(in, rc != 0, n);
	pthread_mutex_lock(&in->mu);
	if (rc == 0) {
		in->both_bad = 0;
		log_info("both bad, retry %u: %s passed its probe; the host is healthy again", n,
		    active.id);
	} else if (n < (unsigned)in->cfg->both_bad_retries) {
		in->retry_next_at = install_now(in) + install_retry_delay(in, n);
		log_warnx("both bad, retry %u failed: %s; next in %lld ms", n, err_msg(&e),
		    (long long)(in->retry_next_at - install_now(in)));
	} else {
		log_warnx("both bad, retry %u failed: %s; no more retries (a push or rollback is "
		    "needed)", n, err_msg(&e));
	}
	in->retrying = 0;
	pthread_mutex_unlock(&in->mu);
	install_unlock(in);
}

static void *
install_retry_main(void *arg)
{
	struct install *in = arg;
	struct timespec ts;
	int64_t left;

	pthread_mutex_lock(&in->mu);
	while (!in->retry_quit) {
		if (!in->both_bad || in->retry_next_at == 0) {
			pthread_cond_wait(&in->retry_cv, &in->mu);
			continue;
		}
		left = in->retry_next_at - install_now(in);
		if (left > 0) {
			timespec_after_ms(CLOCK_REALTIME, left, &ts);
			(void)pthread_cond_timedwait(&in->retry_cv, &in->mu, &ts);
			continue;
		}
		pthread_mutex_unlock(&in->mu);
		install_retry_once(in);
		pthread_mutex_lock(&in->mu);
	}
	pthread_mutex_unlock(&in->mu);
	return NULL;
}

int
install_retry_start(struct install *in, struct err *e)
{
	int rc;

	if (in->retry_started || in->cfg->both_bad_retries <= 0) {
		return 0;
	}
	rc = pthread_create(&in->retry_thread, NULL, install_retry_main, in);
	if (rc != 0) {
		errno = rc;
		return err_sys_kind(e, ERR_INTERNAL, "both_bad retry thread");
	}
	in->retry_started = 1;
	return 0;
}

void
install_retry_stop(struct install *in)
{
	if (in == NULL || !in->retry_started) {
		return;
	}
	pthread_mutex_lock(&in->mu);
	in->retry_quit = 1;
	pthread_cond_broadcast(&in->retry_cv);
	pthread_mutex_unlock(&in->mu);
	(void)pthread_join(in->retry_thread, NULL);
	in->retry_started = 0;
}

/* ---- the streaming front ---- */

static void
install_txn_drop(struct install_txn *t)
{
	struct err e = ERR_INIT;

	if (t->x != NULL) {
		extract_abort(t->x);
		t->x = NULL;
	}
	if (t->staging) {
		if (store_update_abort(t->st, &t->op, &e) != 0) {
			log_warnx("%s %s: cleanup: %s", install_kind_name(t->plan->kind), t->plan->id,
			    err_msg(&e));
		}
		t->staging = 0;
	}
}

/*
 * The free space an operation needs before it starts and keeps while it
 * stages: min_free, but never less than INSTALL_HEADROOM, the room the
 * engine's own records take after the release is staged (journal phases,
 * release.json, the history line and its trim, state/agent.json). Checked
 * before the first write, so a full disk is a 507 with nothing changed and
 * the running agent untouched, not a half-written bookkeeping.
 */
static unsigned long long
install_reserve(const struct install *in)
{
	unsigned long long min_free = in->cfg->min_free > 0 ? (unsigned long long)in->cfg->min_free : 0;

	return min_free > INSTALL_HEADROOM ? min_free : INSTALL_HEADROOM;
}

/* ERR_NOSPACE when ROOT's file system has less than install_reserve() free. */
static int
install_check_space(const struct install *in, const char *root, struct err *e)
{
	unsigned long long avail, need = install_reserve(in);

	if (fs_free_bytes(root, &avail) != 0) {
		return 0; /* unknown: the writes themselves report a full disk */
	}
	if (avail < need) {
		return err_set(e, ERR_NOSPACE, "not enough disk space: %llu bytes free, %llu required",
		    avail, need);
	}
	return 0;
}

/*
 * 1 when the history holds a self-update queued (or committed) under the
 * request id RID: sending it again must not self-update a second time.
 * RESULT gets the newest outcome under that id (queued, committed, reverted).
 */
static int
install_self_ran(struct install *in, const char *rid, char *result, size_t len)
{
	cJSON *hist = install_history_json(in, rid), *it;
	int ran = 0;

	cJSON_ArrayForEach(it, hist)
	{
		const char *k = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "kind"));
		const char *r = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "result"));

		if (k == NULL || r == NULL || strcmp(k, install_kind_name(INSTALL_SELF)) != 0 ||
		    strcmp(r, "refused") == 0) {
			continue;
		}
		(void)snprintf(result, len, "%s", r);
		ran |= strcmp(r, "queued") == 0 || strcmp(r, "committed") == 0;
	}
	cJSON_Delete(hist);
	return ran;
}

/* A refusal of PLAN: logged and, once a tarball arrived, in the history. */
static void
install_refused(struct install *in, const struct install_plan *plan, struct install_outcome *oc,
    const char *version)
{
	oc->result = INSTALL_REFUSED;
	oc->t.total_ms = install_elapsed(in);
	install_history(in, oc, plan->caller, plan->sha256, plan->sha, version, plan->request_id);
	log_warnx("%s %s refused (%s): %s", install_kind_name(plan->kind), plan->id,
	    err_kind_name(oc->err.kind), err_msg(&oc->err));
}

int
install_begin(struct install *in, const struct install_plan *plan, struct install_txn **out,
    struct err *e)
{
	struct install_txn *t = calloc(1, sizeof(*t));
	struct install_outcome oc;
	struct extract_limits lim;
	struct handover h;
	char ran[16];
	int rc;

	install_outcome_init(&oc, plan->kind);
	memcpy(oc.id, plan->id, sizeof(oc.id));
	if (t == NULL) {
		err_set(&oc.err, ERR_NOMEM, "out of memory");
		goto fail;
	}
	t->in = in;
	t->plan = plan;
	t->st = plan->kind == INSTALL_SELF ? &in->self : &in->store;
	t->staging_rel = plan->kind == INSTALL_SELF ? INSTALL_SELF_STAGING_REL : STORE_STAGING_REL;
	t->first_byte = install_now(in);
	if (plan->kind == INSTALL_SELF && handover_read(in->self.root, &h, NULL) != 0) {
		err_set(&oc.err, ERR_BUSY, "a self-update is still on probation");
		goto fail;
	}
	/*
	 * The same request again (a client that did not hear the answer):
	 * refused without a history line, so the request's record stays the
	 * self-update that ran.
	 */
	if (plan->kind == INSTALL_SELF && plan->request_id[0] != '\0' &&
	    install_self_ran(in, plan->request_id, ran, sizeof(ran))) {
		err_set(e, ERR_CONFLICT, "self-update request %s already ran (%s): not run again",
		    plan->request_id, ran);
		log_warnx("update-self %s refused: %s", plan->id, err_msg(e));
		install_txn_drop(t);
		free(t);
		return -1;
	}
	/* Before anything is staged or extracted: is this release acceptable here? */
	if (plan->kind != INSTALL_SEED &&
	    trust_check_signature(in->trust, plan->tsig, plan->tsig_len,
	    plan->has_sha256 ? plan->sha256 : NULL,
	    plan->kind == INSTALL_SELF ? SIGN_KIND_UPDATER : SIGN_KIND_AGENT, &t->verdict,
	    &oc.err) != 0) {
		goto fail;
	}
	if (install_check_space(in, t->st->root, &oc.err) != 0) {
		goto fail;
	}
	memcpy(t->op.id, plan->id, sizeof(t->op.id));
	memcpy(t->op.request_id, plan->request_id, sizeof(t->op.request_id));
	install_set_request_id(in, plan->request_id);
	install_scope(plan->kind, 1);
	rc = store_update_begin(t->st, &t->op, plan->sha256, plan->caller, &oc.err);
	install_scope(plan->kind, 0);
	if (rc != 0) {
		goto fail;
	}
	t->staging = 1;
	install_phase(in, "receiving");
	lim.max_unpacked = (uint64_t)in->cfg->max_unpacked;
	lim.max_entries = (uint64_t)in->cfg->max_entries;
	lim.min_free = install_reserve(in);
	if (extract_begin(t->staging_rel, &lim, &t->x, &oc.err) != 0) {
		goto fail;
	}
	*out = t;
	return 0;
fail:
	if (t != NULL) {
		install_txn_drop(t);
		free(t);
	}
	install_refused(in, plan, &oc, "");
	return err_copy(e, &oc.err);
}

int
install_feed(struct install_txn *t, const void *data, size_t len, struct err *e)
{
	char digest[65];

	if (t->stopped) {
		return err_copy(e, &t->ferr);
	}
	t->bytes += len;
	if (extract_feed(t->x, data, len) == 0) {
		return 0;
	}
	/* The extractor stopped: its reason comes with the end of the extraction. */
	if (extract_finish(t->x, digest, NULL, NULL, &t->ferr) == 0) {
		err_set(&t->ferr, ERR_INTERNAL, "extraction stopped without a reason");
	}
	t->x = NULL;
	t->stopped = 1;
	return err_copy(e, &t->ferr);
}

void
install_abort(struct install_txn *t)
{
	if (t == NULL) {
		return;
	}
	install_txn_drop(t);
	free(t);
}

/*
 * The release's identity, the form's sha256 (64 hex, any case), into WANT
 * in lowercase; 400 naming the field when it is missing or malformed.
 */
static int
install_plan_sha256(const struct install_plan *plan, char want[65], struct install_outcome *oc)
{
	if (!plan->has_sha256 || !is_hex_len(plan->sha256, 64)) {
		(void)snprintf(oc->field, sizeof(oc->field), "sha256");
		return err_set(&oc->err, ERR_BAD_REQUEST, "%s",
		    plan->has_sha256 ? "field 'sha256' must be 64 hex digits" :
				       "missing field 'sha256'");
	}
	for (size_t i = 0; i < 64; i++) {
		want[i] = (char)tolower((unsigned char)plan->sha256[i]);
	}
	want[64] = '\0';
	return 0;
}

/* The digest the plan expects against what arrived. */
static int
install_check_digest(const struct install_plan *plan, const char *digest,
    struct install_outcome *oc)
{
	char want[65];

	if (install_plan_sha256(plan, want, oc) != 0) {
		return -1;
	}
	if (strcmp(want, digest) != 0) {
		return err_set(&oc->err, ERR_DIGEST, "sha256 mismatch: the upload has %s", digest);
	}
	return 0;
}

/*
 * A delta's staging holds files.json and the files the host lacked: its
 * digest against the signed statement, then the tree assembled and
 * verified (updater/delta). 0 or -1 with OC->err.
 */
static int
install_delta_assemble(struct install_txn *t, struct install_outcome *oc)
{
	struct install *in = t->in;
	struct release_files files = RELEASE_FILES_INIT;
	struct delta_limits lim;
	char dir[PATH_MAX], fsha[DIGEST_HEX_LEN + 1];
	uint64_t copied = 0;
	int r, rc = -1;

	/* Either tree's staging: the agent's or the updater's own (a self-update). */
	if (snprintf(dir, sizeof(dir), "%s/%s", t->st->root, STORE_STAGING_REL) >=
	    (int)sizeof(dir)) {
		return err_set(&oc->err, ERR_INTERNAL, "staging path too long");
	}
	r = release_files_read(dir, &files, fsha, &oc->err);
	if (r != 1) {
		if (r == 0) {
			err_set(&oc->err, ERR_DELTA_MISMATCH, "the delta has no %s", RELEASE_FILES_FILE);
		} else {
			err_rekind(&oc->err, ERR_DELTA_MISMATCH);
		}
		goto out;
	}
	if (trust_check_files(&t->verdict, fsha, &oc->err) != 0) {
		goto out;
	}
	install_phase(in, "assembling");
	lim.max_unpacked = (uint64_t)in->cfg->max_unpacked;
	lim.max_entries = (uint64_t)in->cfg->max_entries;
	lim.min_free = install_reserve(in);
	/* A self-update's crash point is "self.delta.assembled", apart from an agent update's. */
	install_scope(t->plan->kind, 1);
	r = delta_assemble(t->st->root, dir, &files, &lim, &copied, &oc->err);
	install_scope(t->plan->kind, 0);
	if (r != 0) {
		goto out;
	}
	log_info("update %s: assembled from a delta of %llu bytes and %llu bytes of local copies",
	    t->plan->id, (unsigned long long)t->bytes, (unsigned long long)copied);
	rc = 0;
out:
	release_files_free(&files);
	return rc;
}

/* release.json of the staged release. */
static void
install_record(const struct install_plan *plan, const char *digest, const char *version,
    const char *name, struct release_info *ri)
{
	const int seed = plan->kind == INSTALL_SEED;

	memset(ri, 0, sizeof(*ri));
	memcpy(ri->id, plan->id, sizeof(ri->id));
	(void)snprintf(ri->sha, sizeof(ri->sha), "%s", seed ? "seed" : plan->sha);
	memcpy(ri->sha256, digest, sizeof(ri->sha256));
	(void)snprintf(ri->version, sizeof(ri->version), "%s", version);
	(void)snprintf(ri->name, sizeof(ri->name), "%s", name);
	iso8601_utc(time(NULL), ri->installed_at, sizeof(ri->installed_at));
	(void)snprintf(ri->installed_by, sizeof(ri->installed_by), "%s",
	    seed ? "seed" : plan->caller);
}

/*
 * A self-update after its preflight: switch the updater's tree, write the
 * handover record for the launcher, and end queued (this updater exits and
 * the launcher starts the new one on probation).
 */
static int
install_self_queue(struct install_txn *t, const struct release_info *ri,
    struct install_outcome *oc)
{
	struct install *in = t->in;
	struct handover h;
	struct err e = ERR_INIT;
	int64_t t0;
	int rc;

	install_phase(in, "switching");
	t0 = install_now(in);
	install_scope(INSTALL_SELF, 1);
	rc = store_update_switch(&in->self, &t->op, &oc->err);
	install_scope(INSTALL_SELF, 0);
	if (rc != 0) {
		if (store_update_restore(&in->self, &t->op, &e) != 0) {
			log_warnx("update-self %s: restore after a failed switch: %s", t->op.id,
			    err_msg(&e));
		}
		t->staging = 0;
		return -1;
	}
	t->staging = 0;
	testhook_point("self.switched");
	memset(&h, 0, sizeof(h));
	memcpy(h.op_id, t->op.id, sizeof(h.op_id));
	(void)snprintf(h.new_version, sizeof(h.new_version), "%s", ri->version);
	(void)snprintf(h.old_version, sizeof(h.old_version), "%s", in->deps.version);
	memcpy(h.sha256, ri->sha256, sizeof(h.sha256));
	h.queued_at = (long long)time(NULL);
	if (handover_write(in->self.root, &h, &oc->err) != 0) {
		if (store_update_restore(&in->self, &t->op, &e) != 0) {
			log_warnx("update-self %s: restore: %s", t->op.id, err_msg(&e));
		}
		return -1;
	}
	testhook_point("self.handover_written");
	pthread_mutex_lock(&in->mu);
	in->handing_over = 1;
	in->phase = "handing_over";
	pthread_mutex_unlock(&in->mu);
	oc->t.switch_ms = install_now(in) - t0;
	oc->result = INSTALL_QUEUED;
	oc->release = *ri;
	oc->have_release = 1;
	log_info("update-self %s: %s -> %s queued, handing over", t->op.id, in->deps.version,
	    ri->version);
	return 0;
}

int
install_finish(struct install_txn *t, struct install_outcome *oc)
{
	struct install *in = t->in;
	const struct install_plan *plan = t->plan;
	const int self = plan->kind == INSTALL_SELF;
	struct release_manifest sm;
	struct release_info ri, old;
	struct release_manifest m;
	char digest[65], dir[PATH_MAX];
	const char *version = "";
	int64_t t0 = install_now(in);
	int have_old, rc;

	install_outcome_init(oc, plan->kind);
	memcpy(oc->id, plan->id, sizeof(oc->id));
	(void)snprintf(oc->from_version, sizeof(oc->from_version), "%s", in->deps.version);
	oc->t.upload_ms = t0 - t->first_byte;
	if (t->stopped) {
		err_copy(&oc->err, &t->ferr);
		goto refuse;
	}
	rc = extract_finish(t->x, digest, NULL, NULL, &oc->err);
	t->x = NULL;
	if (rc != 0) {
		goto refuse;
	}
	if (self && !plan->confirmed) {
		(void)snprintf(oc->field, sizeof(oc->field), "confirm_self");
		err_set(&oc->err, ERR_BAD_REQUEST,
		    "field 'confirm_self' must be 'true' to replace the updater");
		goto refuse;
	}
	if (plan->delta) {
		/* The bytes that arrived are the delta's: the form's sha256 names the release. */
		if (install_plan_sha256(plan, digest, oc) != 0) {
			goto refuse;
		}
	} else if (plan->kind != INSTALL_SEED && (install_check_digest(plan, digest, oc) != 0 ||
	    trust_check_bytes(&t->verdict, digest, t->bytes, &oc->err) != 0)) {
		goto refuse;
	}
	memcpy(t->op.sha256, digest, sizeof(t->op.sha256));
	if (plan->kind == INSTALL_UPDATE && store_release_read(t->st, "active", &old, NULL) == 1 &&
	    strcmp(old.sha256, digest) == 0) {
		if (!plan->force) {
			/* Nothing to do: no reinstall, no agent restart, prev as it is. */
			install_txn_drop(t);
			free(t);
			oc->result = INSTALL_ALREADY_ACTIVE;
			oc->release = old;
			oc->have_release = 1;
			oc->t.total_ms = install_elapsed(in);
			log_info("update %s: %s (%s) is already active", plan->id, old.version,
			    old.sha256);
			install_history(in, oc, plan->caller, digest, plan->sha, old.version,
			    plan->request_id);
			return 0;
		}
		/* A forced reinstall replaces the active copy; the rollback point stays. */
		t->op.keep_prev = 1;
	}
	if (plan->delta && install_delta_assemble(t, oc) != 0) {
		goto refuse;
	}
	if (self) {
		testhook_point("self.staged");
	}
	install_phase(in, "preflight");
	if (self) {
		if (snprintf(dir, sizeof(dir), "%s/releases/active.new", in->self.root) >=
			(int)sizeof(dir)) {
			err_set(&oc->err, ERR_INTERNAL, "staging path too long");
			goto refuse;
		}
		if (release_manifest_read(dir, RELEASE_MF_UPDATER, &sm, &oc->err) != 0 ||
		    trust_check_manifest(&t->verdict, sm.name, sm.version, &oc->err) != 0) {
			goto refuse;
		}
		install_record(plan, digest, sm.version, sm.name, &ri);
	} else {
		if (install_manifest(t->st, "active.new", &m, &oc->err) != 0 ||
		    trust_check_manifest(&t->verdict, m.name, m.version, &oc->err) != 0) {
			goto refuse;
		}
		install_record(plan, digest, m.version, m.name, &ri);
	}
	trust_record(&t->verdict, &ri);
	version = ri.version;
	if (store_release_write(t->st, "active.new", &ri, &oc->err) != 0) {
		goto refuse;
	}
	oc->t.extract_ms = install_now(in) - t0;
	t0 = install_now(in);
	rc = self ? install_self_preflight(in, dir, &sm, oc, &oc->err) :
		    install_preflight(in, &m, oc, &oc->err);
	oc->t.preflight_ms = install_now(in) - t0;
	if (rc != 0) {
		goto refuse;
	}
	/* The staged tree and the preflight took their share: the records still need theirs. */
	if (install_check_space(in, t->st->root, &oc->err) != 0) {
		goto refuse;
	}
	if (self) {
		testhook_point("self.preflight_passed");
		if (install_self_queue(t, &ri, oc) != 0) {
			goto refuse;
		}
		oc->t.total_ms = install_elapsed(in);
		/*
		 * Before the answer: a master whose answer is lost finds the
		 * queued self-update under its request id (the launcher's line
		 * with the same id says how the probation ended).
		 */
		install_history(in, oc, plan->caller, digest, plan->sha, ri.version,
		    plan->request_id);
		free(t);
		return 0;
	}
	have_old = store_release_read(t->st, "active", &old, NULL) == 1;
	/* From here on the transaction owns the staging (switched, or restored on failure). */
	t->staging = 0;
	rc = install_transact(in, &install_sw_update, t->st, &t->op, plan->caller, &ri,
	    have_old ? &old : NULL, oc);
	oc->t.total_ms = install_elapsed(in);
	if (oc->result == INSTALL_REFUSED) {
		log_warnx("%s %s refused (%s): %s", install_kind_name(plan->kind), plan->id,
		    err_kind_name(oc->err.kind), err_msg(&oc->err));
	} else if (rc == 0) {
		log_info("%s %s: %s (%s) is active", install_kind_name(plan->kind), plan->id,
		    ri.version, ri.sha256);
	}
	install_history(in, oc, plan->caller, digest, plan->kind == INSTALL_SEED ? "seed" : plan->sha,
	    ri.version, plan->request_id);
	free(t);
	return rc;
refuse:
	install_txn_drop(t);
	free(t);
	install_refused(in, plan, oc, version);
	return -1;
}

/* ---- seed and rollback ---- */

int
install_seed(struct install *in, const char *path, struct install_outcome *oc)
{
	struct install_plan plan;
	struct install_txn *t = NULL;
	struct err e = ERR_INIT;
	char *buf = NULL;
	ssize_t n;
	int fd = -1, rc = -1;

	install_plan_init(&plan, INSTALL_SEED);
	install_outcome_init(oc, INSTALL_SEED);
	(void)snprintf(plan.caller, sizeof(plan.caller), "seed");
	(void)snprintf(plan.sha, sizeof(plan.sha), "seed");
	if (install_lock(in, INSTALL_SEED, plan.id, &oc->err) != 0) {
		return -1;
	}
	memcpy(oc->id, plan.id, sizeof(oc->id));
	buf = malloc(INSTALL_SEED_CHUNK);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (buf == NULL || fd < 0) {
		err_sys(&oc->err, "open %s", path);
		goto out;
	}
	if (install_begin(in, &plan, &t, &oc->err) != 0) {
		goto out;
	}
	while ((n = read(fd, buf, INSTALL_SEED_CHUNK)) > 0) {
		if (install_feed(t, buf, (size_t)n, &e) != 0) {
			break;
		}
	}
	if (n < 0) {
		err_sys(&oc->err, "read %s", path);
		install_abort(t);
		goto out;
	}
	rc = install_finish(t, oc);
out:
	if (fd >= 0) {
		close(fd);
	}
	free(buf);
	install_unlock(in);
	return rc;
}

int
install_rollback(struct install *in, const struct install_plan *plan,
    struct install_outcome *oc)
{
	struct release_info act, prev;
	struct journal_op op;
	int rc;

	install_outcome_init(oc, INSTALL_ROLLBACK);
	memcpy(oc->id, plan->id, sizeof(oc->id));
	install_set_request_id(in, plan->request_id);
	if (store_release_read(&in->store, "prev", &prev, NULL) != 1 ||
	    store_release_read(&in->store, "active", &act, NULL) != 1) {
		oc->t.total_ms = install_elapsed(in);
		return err_set(&oc->err, ERR_NOT_FOUND, "no previous release to roll back to");
	}
	if (trust_check_rollback(in->trust, &prev, &oc->err) != 0) {
		oc->t.total_ms = install_elapsed(in);
		err_prefix(&oc->err, "rollback refused");
		install_history(in, oc, plan->caller, prev.sha256, prev.sha, prev.version,
		    plan->request_id);
		return -1;
	}
	if (strcmp(prev.sha256, act.sha256) == 0) {
		/* Exchanging two copies of one release would report a rollback that changed nothing. */
		err_set(&oc->err, ERR_CONFLICT,
		    "the previous release is the active release (%s, sha256 %.12s): nothing to roll"
		    " back to", act.version, act.sha256);
		install_refused(in, plan, oc, act.version);
		return -1;
	}
	/* Before the agent stops: a rollback on a full disk changes nothing. */
	if (install_check_space(in, in->store.root, &oc->err) != 0) {
		install_refused(in, plan, oc, prev.version);
		return -1;
	}
	memset(&op, 0, sizeof(op));
	memcpy(op.id, plan->id, sizeof(op.id));
	memcpy(op.request_id, plan->request_id, sizeof(op.request_id));
	rc = install_transact(in, &install_sw_rollback, &in->store, &op, plan->caller, &prev, &act,
	    oc);
	oc->t.total_ms = install_elapsed(in);
	if (rc == 0) {
		log_info("rollback %s: %s (%s) is active", plan->id, prev.version, prev.sha256);
	}
	install_history(in, oc, plan->caller, prev.sha256, prev.sha, prev.version,
	    plan->request_id);
	return rc;
}

void
install_self_answered(struct install *in)
{
	(void)in;
	testhook_point("self.responded");
}

/* ---- the launcher's half of a self-update ---- */

int
install_self_pending(struct store *tree, const char *history_root, struct handover *h)
{
	struct journal_op op;
	struct err e = ERR_INIT;
	char what[512];
	int jr, hr;

	jr = journal_read(tree->root, &op, &e);
	if (jr < 0) {
		log_warnx("updater tree journal: %s", err_msg(&e));
	}
	hr = handover_read(tree->root, h, &e);
	if (hr < 0) {
		log_warnx("handover record: %s", err_msg(&e));
	}
	if (jr == 1 && hr == 1 && op.kind == JOURNAL_UPDATE && op.phase == JOURNAL_SWITCHING &&
	    strcmp(op.id, h->op_id) == 0) {
		return 1;
	}
	if (jr == 0 && hr == 0) {
		return 0;
	}
	if (store_recover(tree, what, sizeof(what), &e) != 0) {
		log_warnx("updater tree recovery: %s", err_msg(&e));
		return 0;
	}
	if (handover_clear(tree->root, &e) != 0) {
		log_warnx("%s", err_msg(&e));
	}
	if (jr == 1) {
		/* Interrupted while committing: recovery finished it; else it was undone. */
		const char *result = op.phase == JOURNAL_COMMITTING ? "committed" : "undone";

		log_warnx("interrupted self-update: %s", what);
		if (handover_record(tree->root, history_root, op.id, op.request_id, result,
			hr == 1 ? h->old_version : "", hr == 1 ? h->new_version : "", op.sha256, what,
			&e) != 0) {
			log_warnx("record the self-update's outcome: %s", err_msg(&e));
		}
	}
	return 0;
}

/*
 * The launcher decided the probation of H: COMMIT the switch of TREE, or
 * restore it (REASON says why); either way clear the handover record and
 * record the outcome.
 */
static void
install_self_decide(struct store *tree, const char *history_root, const struct handover *h,
    int commit, const char *reason)
{
	const char *result = commit ? "committed" : "reverted";
	struct journal_op op;
	struct err e = ERR_INIT;

	memset(&op, 0, sizeof(op));
	if (journal_read(tree->root, &op, &e) != 1 ||
	    (commit ? store_update_commit(tree, &op, &e) : store_update_restore(tree, &op, &e)) !=
		0) {
		log_warnx("%s self-update %s: %s", commit ? "commit" : "revert", h->op_id,
		    err_msg(&e));
	}
	if (handover_clear(tree->root, &e) != 0) {
		log_warnx("%s", err_msg(&e));
	}
	/* The journal's request id: the master that sent it finds the outcome under it. */
	if (handover_record(tree->root, history_root, h->op_id, op.request_id, result,
		h->old_version, h->new_version, h->sha256, reason, &e) != 0) {
		log_warnx("record the self-update's outcome: %s", err_msg(&e));
	}
	if (commit) {
		log_info("self-update %s committed: updater %s", h->op_id, h->new_version);
	} else {
		log_warnx("self-update %s reverted: %s", h->op_id, reason);
	}
}

void
install_self_commit(struct store *tree, const char *history_root, const struct handover *h)
{
	install_self_decide(tree, history_root, h, 1, "");
}

void
install_self_revert(struct store *tree, const char *history_root, const struct handover *h,
    const char *reason)
{
	install_self_decide(tree, history_root, h, 0, reason);
}
