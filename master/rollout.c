#include "master/rollout.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cJSON.h"
#include "common/fs.h"
#include "common/json.h"
#include "common/log.h"
#include "common/proc.h"
#include "common/testhook.h"
#include "master/release_sign.h"
#include "master/release_store.h"

#define FETCH_BATCH 64
#define TICK_MS 250
#define REQUEST_POLL_MS 1000
#define GC_QUEUE_MAX (SWARM_MAX_PARALLEL * 2 + 8)
/* How long a resumed driver waits for an operation it started before it died. */
#define GATE_OUTPUT_MAX 2048

/* ---- the release store ---- */

int
rollout_store_release(struct swarm_ctx *c, const struct swarm_release_file *rf, struct err *e)
{
	char dst[PATH_MAX], tdst[PATH_MAX + 8];
	struct stat st;

	if (release_store_path(c->home, rf->sha256, dst, sizeof(dst)) != 0) {
		return err_set(e, ERR_USAGE, "%s: home path too long", c->home);
	}
	/* cmd_swarm_prepare_release() took it into the store (master/release_store). */
	if (strcmp(rf->path, dst) != 0 || stat(dst, &st) != 0 || !S_ISREG(st.st_mode) ||
	    (uint64_t)st.st_size != rf->size) {
		return err_set(e, ERR_NOT_FOUND, "release %.12s is not in the master's store (%s)",
		    rf->sha256, dst);
	}
	/* The signature travels with the stored release (a resume sends it too). */
	if (rf->tsig != NULL) {
		snprintf(tdst, sizeof(tdst), "%s.tsig", dst);
		if (fs_write_atomic(tdst, rf->tsig, rf->tsig_len, 0600) != 0) {
			return err_sys(e, "store %s", tdst);
		}
	}
	return registry_release_add(c->reg, rf->sha256, rf->label, rf->size, e) != 0 ? -1 : 0;
}

/* ---- lease owners ---- */

void
rollout_owner_self(char *buf, size_t len)
{
	char host[64] = "localhost";
	unsigned long long start = 0;

	if (gethostname(host, sizeof(host)) != 0) {
		snprintf(host, sizeof(host), "localhost");
	}
	host[sizeof(host) - 1] = '\0';
	/* The name goes into JSON and logs: keep it to a safe alphabet. */
	for (char *p = host; *p != '\0'; p++) {
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '-' || *p == '.')) {
			*p = '_';
		}
	}
	if (proc_start_time(getpid(), &start) != 0) {
		start = 0;
	}
	snprintf(buf, len, "%s:%ld:%llu", host, (long)getpid(), start);
}

int
rollout_owner_gone(const char *owner)
{
	char self[160], host[64];
	const char *c1 = strchr(owner, ':'), *c2;
	long long pid, start;
	unsigned long long now_start;

	rollout_owner_self(self, sizeof(self));
	if (c1 == NULL || (size_t)(c1 - owner) >= sizeof(host) ||
	    strncmp(self, owner, (size_t)(c1 - owner) + 1) != 0) {
		return 0; /* another machine (or unreadable): only expiry frees it */
	}
	memcpy(host, owner, (size_t)(c1 - owner));
	host[c1 - owner] = '\0';
	c2 = strchr(c1 + 1, ':');
	if (c2 == NULL) {
		return 0;
	}
	{
		char num[32];
		size_t l = (size_t)(c2 - c1 - 1);
		if (l == 0 || l >= sizeof(num)) {
			return 0;
		}
		memcpy(num, c1 + 1, l);
		num[l] = '\0';
		if (parse_ll(num, 1, INT32_MAX, &pid) != 0 || parse_ll(c2 + 1, 0, LLONG_MAX, &start) !=
		    0) {
			return 0;
		}
	}
	if ((pid_t)pid == getpid()) {
		return 0;
	}
	/* Same pid and start time: that process still runs. */
	if (proc_start_time((pid_t)pid, &now_start) == 0 && now_start == (unsigned long long)start) {
		return 0;
	}
	return 1;
}

/* ---- the driver ---- */

enum src_mode { SRC_DISPATCH, SRC_SOAK, SRC_REVERT };

/* What travels with one job of the pool. */
struct job_data {
	struct reg_rollout_host row;
	int resolved;  /* the hook decided the outcome: no request was sent */
};

struct driver {
	struct swarm_ctx *c;
	const struct rollout_ui *ui;
	volatile int *caller_stop;
	volatile int stop_any;       /* stop dispatching: any reason below */
	volatile int stop_hard;      /* stop everything: lease or registry lost, caller's stop */
	char owner[160];
	struct reg_rollout r;
	struct rollout_spec spec;
	struct swarm_release_file rel;
	char rel_path[PATH_MAX];
	char *tsig;                  /* the stored release's signature, NULL when unsigned */

	pthread_mutex_t lock;        /* everything below, and stdout */
	size_t attempted, failed, canary_failed;
	int halted;
	char halt_why[384];
	int lost;                    /* the lease or the registry failed */
	struct err lost_err;
	char request[16];            /* an operator's request seen by the lease thread */
	int window_closed;
	int64_t window_checked;      /* mono_ms() of the last window check */

	/* the source of the pool */
	enum src_mode mode;
	int wave;
	int after_seq;
	struct reg_rollout_host batch[FETCH_BATCH];
	struct reg_host hbatch[FETCH_BATCH];
	size_t nb, ib;

	/* group commit of host rows */
	pthread_mutex_t gc_mu;
	pthread_cond_t gc_cv;
	struct reg_rollout_host *gc_q;
	size_t gc_n;
	uint64_t gc_ticket, gc_done;
	int gc_busy;

	/* the lease thread */
	pthread_t lease_tid;
	int lease_started;
	pthread_mutex_t lease_mu;
	pthread_cond_t lease_cv;
	int lease_quit;
};

static void
say(struct driver *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A progress line on stderr (not with --json-lines quiet runs). */
static void
say(struct driver *d, const char *fmt, ...)
{
	va_list ap;

	if (d->ui->quiet) {
		return;
	}
	va_start(ap, fmt);
	fprintf(stderr, "rollout %s: ", d->r.id);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	fflush(stderr);
}

/* One JSON line on stdout (--json-lines); takes ownership of O. Caller holds d->lock. */
static void
emit_locked(cJSON *o)
{
	char *text = o != NULL ? json_print_compact(o) : NULL;

	if (text != NULL) {
		printf("%s\n", text);
		fflush(stdout);
	}
	free(text);
	cJSON_Delete(o);
}

static void
emit_event(struct driver *d, const char *kind, const char *text)
{
	cJSON *o;

	if (!d->ui->json_lines) {
		return;
	}
	o = cJSON_CreateObject();
	if (o == NULL || json_add_str(o, "type", "event") != 0 ||
	    json_add_str(o, "rollout", d->r.id) != 0 || json_add_str(o, "kind", kind) != 0 ||
	    json_add_str(o, "text", text) != 0) {
		cJSON_Delete(o);
		return;
	}
	pthread_mutex_lock(&d->lock);
	emit_locked(o);
	pthread_mutex_unlock(&d->lock);
}

static void
emit_host(struct driver *d, const struct reg_rollout_host *h, const struct swarm_job *j)
{
	cJSON *o;

	if (!d->ui->json_lines) {
		return;
	}
	o = cJSON_CreateObject();
	if (o == NULL || json_add_str(o, "type", "host") != 0 ||
	    json_add_str(o, "rollout", d->r.id) != 0 || json_add_str(o, "host", h->host) != 0 ||
	    json_add_int(o, "wave", h->wave + 1) != 0 ||
	    json_add_str(o, "state", registry_rh_state_name(h->state)) != 0 ||
	    json_add_str(o, "reason", h->reason) != 0 || json_add_str(o, "detail", h->detail) != 0 ||
	    json_add_str(o, "version", h->version) != 0 ||
	    json_add_str(o, "sha256", h->active_sha256) != 0 ||
	    json_add_int(o, "http_status", j != NULL ? j->agent.http_status : 0) != 0 ||
	    json_add_str(o, "transfer", h->transfer[0] != '\0' ? h->transfer : NULL) != 0 ||
	    json_add_int(o, "bytes_sent", (int64_t)h->bytes_sent) != 0 ||
	    json_add_int(o, "attempts", h->attempts) != 0) {
		cJSON_Delete(o);
		return;
	}
	emit_locked(o);
}

/* The rollout's own state change, recorded (with the lease) and announced. */
static int
set_state(struct driver *d, enum reg_rollout_state st, const char *reason, int wave,
    time_t gate_until, int finish, const char *kind, struct err *e)
{
	char data[640];
	cJSON *o = cJSON_CreateObject();
	char *text = NULL;

	if (o != NULL && json_add_str(o, "state", registry_rollout_state_name(st)) == 0 &&
	    json_add_str(o, "reason", reason != NULL ? reason : "") == 0 &&
	    json_add_int(o, "wave", (wave >= 0 ? wave : d->r.current_wave) + 1) == 0) {
		text = json_print_compact(o);
	}
	cJSON_Delete(o);
	snprintf(data, sizeof(data), "%s", text != NULL ? text : "{}");
	free(text);
	if (registry_rollout_set(d->c->reg, d->r.id, d->owner, st, reason, wave, gate_until, finish,
	    kind, data, e) != 0) {
		return -1;
	}
	d->r.state = st;
	snprintf(d->r.reason, sizeof(d->r.reason), "%s", reason != NULL ? reason : "");
	if (wave >= 0) {
		d->r.current_wave = wave;
	}
	if (gate_until >= 0) {
		d->r.gate_until = gate_until;
	}
	if (finish || st == RO_DONE || st == RO_ABORTED) {
		d->r.finished_at = time(NULL);
	}
	emit_event(d, kind != NULL ? kind : "state", reason != NULL ? reason : "");
	return 0;
}

/* ---- group commit: rows written together, each writer waits for its own ---- */

static int
gc_write(struct driver *d, const struct reg_rollout_host *row)
{
	struct reg_rollout_host *batch = NULL;
	struct err e = ERR_INIT;
	uint64_t mine, last;
	size_t n;
	int rc = 0;

	pthread_mutex_lock(&d->gc_mu);
	while (d->gc_n == GC_QUEUE_MAX) {
		pthread_cond_wait(&d->gc_cv, &d->gc_mu);
	}
	d->gc_q[d->gc_n++] = *row;
	mine = ++d->gc_ticket;
	while (d->gc_done < mine) {
		if (d->gc_busy) {
			pthread_cond_wait(&d->gc_cv, &d->gc_mu);
			continue;
		}
		/* Lead: write everything queued so far in one transaction. */
		d->gc_busy = 1;
		n = d->gc_n;
		last = d->gc_ticket;
		batch = malloc(n * sizeof(*batch));
		if (batch != NULL) {
			memcpy(batch, d->gc_q, n * sizeof(*batch));
		}
		d->gc_n = 0;
		pthread_cond_broadcast(&d->gc_cv);
		pthread_mutex_unlock(&d->gc_mu);
		if (batch == NULL) {
			err_set(&e, ERR_NOMEM, "out of memory");
			rc = -1;
		} else {
			rc = registry_rollout_hosts_write(d->c->reg, d->r.id, d->owner, batch, n, &e);
		}
		free(batch);
		batch = NULL;
		if (rc != 0) {
			pthread_mutex_lock(&d->lock);
			if (!d->lost) {
				d->lost = 1;
				err_copy(&d->lost_err, &e);
			}
			d->stop_any = 1;
			d->stop_hard = 1;
			pthread_mutex_unlock(&d->lock);
		}
		pthread_mutex_lock(&d->gc_mu);
		d->gc_done = last;
		d->gc_busy = 0;
		pthread_cond_broadcast(&d->gc_cv);
	}
	pthread_mutex_unlock(&d->gc_mu);
	pthread_mutex_lock(&d->lock);
	rc = d->lost ? -1 : 0;
	pthread_mutex_unlock(&d->lock);
	return rc;
}

/* ---- counting and the threshold ---- */

static int
counts_attempted(enum reg_rh_state s)
{
	switch (s) {
	case RH_UPDATED:
	case RH_ALREADY_ACTIVE:
	case RH_ROLLED_BACK:
	case RH_FAILED:
	case RH_SOAK_FAILED:
	case RH_REVERTING:
	case RH_REVERTED:
	case RH_REVERT_FAILED:
	case RH_REVERT_SKIPPED:
		return 1;
	default:
		return 0;
	}
}

/* Recount from the registry (at the start of a drive). */
static int
recount(struct driver *d, struct err *e)
{
	struct reg_rollout_counts all, canary;

	if (registry_rollout_counts(d->c->reg, d->r.id, -1, 0, &all, e) != 0 ||
	    registry_rollout_counts(d->c->reg, d->r.id, 0, 0, &canary, e) != 0) {
		return -1;
	}
	d->attempted = 0;
	d->failed = 0;
	for (int s = 0; s < RH_STATE_COUNT; s++) {
		d->attempted += counts_attempted((enum reg_rh_state)s) ? all.n[s] : 0;
		d->failed += registry_rh_is_failure((enum reg_rh_state)s) ? all.n[s] : 0;
	}
	d->canary_failed = 0;
	if (rollout_amount_of(&d->spec.canary, (size_t)d->r.n_hosts) > 0) {
		d->canary_failed = canary.n[RH_ROLLED_BACK] + canary.n[RH_FAILED] +
		    canary.n[RH_SOAK_FAILED];
	}
	return 0;
}

/* Has the rollout failed too much? Caller holds d->lock. */
static void
check_threshold_locked(struct driver *d)
{
	size_t att = d->attempted > (size_t)d->r.ack_attempted ? d->attempted -
	    (size_t)d->r.ack_attempted : 0;
	size_t fl = d->failed > (size_t)d->r.ack_failed ? d->failed - (size_t)d->r.ack_failed : 0;
	size_t cf = d->canary_failed > (size_t)d->r.ack_failed ? d->canary_failed -
	    (size_t)d->r.ack_failed : 0;
	char why[sizeof(d->halt_why)];

	if (!d->halted && rollout_threshold_exceeded(&d->spec, (size_t)d->r.n_hosts, att, fl, cf, why,
	    sizeof(why))) {
		d->halted = 1;
		snprintf(d->halt_why, sizeof(d->halt_why), "%s", why);
		d->stop_any = 1;
	}
}

/* Count one finished host (its final state). */
static void
count_host(struct driver *d, const struct reg_rollout_host *row)
{
	pthread_mutex_lock(&d->lock);
	if (counts_attempted(row->state)) {
		d->attempted++;
	}
	if (registry_rh_is_failure(row->state)) {
		d->failed++;
		if (row->wave == 0 && rollout_amount_of(&d->spec.canary, (size_t)d->r.n_hosts) > 0) {
			d->canary_failed++;
		}
	}
	check_threshold_locked(d);
	pthread_mutex_unlock(&d->lock);
}

/* ---- stopping ---- */

/* Should the pool stop taking hosts? Also notices a closed window. */
static int
should_stop(struct driver *d)
{
	int stop;

	pthread_mutex_lock(&d->lock);
	if (*d->caller_stop) {
		d->stop_any = 1;
		d->stop_hard = 1;
	}
	if (d->mode != SRC_DISPATCH) {
		/* A revert or a soak's second look goes on whatever halts dispatching. */
		stop = d->stop_hard;
		pthread_mutex_unlock(&d->lock);
		return stop;
	}
	if (d->mode == SRC_DISPATCH && d->spec.have_window && !d->window_closed &&
	    mono_ms() - d->window_checked >= 1000) {
		d->window_checked = mono_ms();
		if (!rollout_window_at(&d->spec.window, testhook_now(), NULL)) {
			d->window_closed = 1;
			d->stop_any = 1;
		}
	}
	stop = d->stop_any;
	pthread_mutex_unlock(&d->lock);
	return stop;
}

/* ---- the source ---- */

static int
src_next(void *arg, struct swarm_job *j)
{
	struct driver *d = arg;
	struct job_data *jd;
	struct err e = ERR_INIT;
	int state;

	if (should_stop(d)) {
		return 0;
	}
	if (d->ib == d->nb) {
		state = d->mode == SRC_DISPATCH ? REG_RH_UNFINISHED
		    : d->mode == SRC_REVERT ? REG_RH_REVERTIBLE : RH_UPDATED;
		if (registry_rollout_hosts(d->c->reg, d->r.id, d->mode == SRC_SOAK ? -1 : d->wave,
		    state, d->after_seq, FETCH_BATCH, d->batch, d->hbatch, &d->nb, &e) != 0) {
			pthread_mutex_lock(&d->lock);
			d->lost = 1;
			err_copy(&d->lost_err, &e);
			d->stop_any = 1;
			d->stop_hard = 1;
			pthread_mutex_unlock(&d->lock);
			d->nb = 0;
		}
		d->ib = 0;
		if (d->nb == 0) {
			return 0;
		}
		d->after_seq = d->batch[d->nb - 1].seq;
	}
	jd = calloc(1, sizeof(*jd));
	if (jd == NULL) {
		return 0;
	}
	jd->row = d->batch[d->ib];
	j->host = d->hbatch[d->ib];
	d->ib++;
	j->user = jd;
	switch (d->mode) {
	case SRC_DISPATCH:
		j->kind = SWARM_JOB_UPDATE;
		break;
	case SRC_REVERT:
		j->kind = SWARM_JOB_ROLLBACK;
		break;
	case SRC_SOAK:
		j->kind = SWARM_JOB_DRY_RUN;
		break;
	}
	/* A request already recorded (the driver died after dispatching it) is reused. */
	if (jd->row.request_id[0] == '\0' || (d->mode == SRC_REVERT && jd->row.state != RH_REVERTING)) {
		if (rollout_random_id(jd->row.request_id, ROLLOUT_REQUEST_ID_LEN, &e) != 0) {
			jd->row.request_id[0] = '\0';
		}
	}
	snprintf(j->request_id, sizeof(j->request_id), "%s", jd->row.request_id);
	return 1;
}

/* ---- asking an updater what became of a request ---- */

static void
result_from_text(struct swarm_result *r, const char *reason, const char *detail)
{
	memset(r, 0, sizeof(*r));
	r->outcome = SWARM_FAILED;
	snprintf(r->reason, sizeof(r->reason), "%s", reason);
	snprintf(r->detail, sizeof(r->detail), "%s", detail);
}


/*
 * What became of J's request (ROLLBACK: a rollback) that a driver which
 * died had dispatched: the updater's history, bounded by the request timeout.
 */
static enum swarm_lookup
history_lookup(struct driver *d, struct swarm_job *j, int rollback, struct swarm_result *r)
{
	return swarm_request_lookup(d->c, &j->host, j->request_id, rollback,
	    mono_ms() + (int64_t)d->spec.timeout_s * 1000, d->caller_stop, r);
}

/* ---- dispatch: hooks of the pool ---- */

static int
dispatch_before(void *arg, struct swarm_job *j)
{
	struct driver *d = arg;
	struct job_data *jd = j->user;
	struct reg_rollout_host *row = &jd->row;

	if (row->state == RH_DISPATCHED) {
		/*
		 * Dispatched by a driver that died: learn what became of that
		 * request (and then of the self-update after it, same id).
		 */
		j->resumed = 1;
		if (j->health.has_request_id) {
			switch (history_lookup(d, j, 0, &j->agent)) {
			case SWARM_LOOKUP_FOUND:
				jd->resolved = 1;
				return 1;
			case SWARM_LOOKUP_FAILED:
				jd->resolved = 1;
				return 1;
			case SWARM_LOOKUP_ABSENT:
				break; /* never ran: send it again, same id */
			}
		} else if (j->health.have_active &&
		    strcmp(j->health.active.sha256, d->rel.sha256) == 0) {
			/* No request ids on this updater: the active release tells. */
			memset(&j->agent, 0, sizeof(j->agent));
			j->agent.outcome = strcmp(row->pre_sha256, d->rel.sha256) == 0
			    ? SWARM_ALREADY_ACTIVE : SWARM_UPDATED;
			snprintf(j->agent.version, sizeof(j->agent.version), "%s",
			    j->health.active.version);
			snprintf(j->agent.sha256, sizeof(j->agent.sha256), "%s",
			    j->health.active.sha256);
			jd->resolved = 1;
			return 1;
		}
		j->resumed = 0; /* sent again below: its self-update follows as usual */
		row->attempts++;
		return 0;
	}
	if (!d->spec.force && j->health.have_active &&
	    strcmp(j->health.active.sha256, d->rel.sha256) == 0) {
		/* Nothing to send: no dispatch to record either. */
		memset(&j->agent, 0, sizeof(j->agent));
		j->agent.outcome = SWARM_ALREADY_ACTIVE;
		snprintf(j->agent.reason, sizeof(j->agent.reason), "already runs this release");
		snprintf(j->agent.version, sizeof(j->agent.version), "%s", j->health.active.version);
		snprintf(j->agent.sha256, sizeof(j->agent.sha256), "%s", j->health.active.sha256);
		snprintf(row->pre_sha256, sizeof(row->pre_sha256), "%s", d->rel.sha256);
		jd->resolved = 1;
		return 1;
	}
	row->state = RH_DISPATCHED;
	snprintf(row->pre_sha256, sizeof(row->pre_sha256), "%s",
	    j->health.have_active ? j->health.active.sha256 : "");
	row->started_at = time(NULL);
	row->attempts++;
	row->log_push = 0;
	if (gc_write(d, row) != 0) {
		result_from_text(&j->agent, "cannot record the dispatch in the registry",
		    err_msg(&d->lost_err));
		jd->resolved = 1;
		return 1;
	}
	testhook_point("rollout.dispatched");
	return 0;
}

/* R (sent as TRANSFER, NULL if never uploaded) as the self-update's JSON of a host row. */
static void
self_json(const struct swarm_result *r, const char *transfer, char *buf, size_t len)
{
	cJSON *o = cJSON_CreateObject();
	char *text = NULL;

	if (o != NULL && json_add_str(o, "result", swarm_outcome_word(r->outcome)) == 0 &&
	    json_add_str(o, "reason", r->reason) == 0 && json_add_str(o, "detail", r->detail) == 0 &&
	    json_add_int(o, "http_status", r->http_status) == 0 &&
	    json_add_str(o, "version", r->version) == 0 && json_add_str(o, "sha256", r->sha256) == 0 &&
	    json_add_str(o, "transfer", transfer) == 0) {
		text = json_print_compact(o);
	}
	cJSON_Delete(o);
	/* Cut detail first if it does not fit: the JSON must stay whole. */
	if (text != NULL && strlen(text) >= len) {
		free(text);
		text = NULL;
		o = cJSON_CreateObject();
		if (o != NULL && json_add_str(o, "result", swarm_outcome_word(r->outcome)) == 0 &&
		    json_add_str(o, "reason", r->reason) == 0 && json_add_str(o, "detail", "") == 0 &&
		    json_add_int(o, "http_status", r->http_status) == 0 &&
		    json_add_str(o, "version", r->version) == 0 &&
		    json_add_str(o, "sha256", r->sha256) == 0 &&
		    json_add_str(o, "transfer", transfer) == 0) {
			text = json_print_compact(o);
		}
		cJSON_Delete(o);
	}
	snprintf(buf, len, "%s", text != NULL && strlen(text) < len ? text : "");
	free(text);
}

/* The row's final state from the pool's outcome of an update. */
static void
dispatch_outcome(struct driver *d, const struct swarm_job *j, struct reg_rollout_host *row)
{
	const struct swarm_result *r = &j->agent;

	switch (r->outcome) {
	case SWARM_UPDATED:
		row->state = RH_UPDATED;
		break;
	case SWARM_ALREADY_ACTIVE:
		row->state = RH_ALREADY_ACTIVE;
		break;
	case SWARM_ROLLED_BACK:
		row->state = RH_ROLLED_BACK;
		break;
	case SWARM_FAILED:
		row->state = RH_FAILED;
		/* Never reached (no answer at all): skipped when the operator said so. */
		if (d->spec.unreachable_skip && r->http_status == 0 &&
		    strcmp(r->reason, "unreachable") == 0) {
			row->state = RH_SKIPPED;
		}
		break;
	}
	snprintf(row->reason, sizeof(row->reason), "%s", r->reason);
	snprintf(row->detail, sizeof(row->detail), "%s", r->detail);
	snprintf(row->version, sizeof(row->version), "%s", r->version);
	snprintf(row->active_sha256, sizeof(row->active_sha256), "%s", r->sha256);
	if (row->state == RH_ALREADY_ACTIVE && row->pre_sha256[0] == '\0') {
		snprintf(row->pre_sha256, sizeof(row->pre_sha256), "%s", d->rel.sha256);
	}
	row->http_status = r->http_status;
	row->tsig_sent = j->tsig_sent;
	snprintf(row->transfer, sizeof(row->transfer), "%s", j->transfer != NULL ? j->transfer : "");
	row->bytes_sent = j->bytes_sent;
	snprintf(row->agent_result, sizeof(row->agent_result), "%s",
	    swarm_outcome_word(r->outcome));
	row->self_json[0] = '\0';
	if (j->self_tried) {
		self_json(&j->self, j->self_transfer, row->self_json, sizeof(row->self_json));
		if (row->state == RH_UPDATED && j->self.outcome != SWARM_UPDATED) {
			/* The agent runs the release, but its updater did not take it. */
			row->state = RH_FAILED;
		}
	}
	row->log_push = 1;
}

static void
dispatch_done(void *arg, struct swarm_job *j)
{
	struct driver *d = arg;
	struct job_data *jd = j->user;
	struct reg_rollout_host *row = &jd->row;

	dispatch_outcome(d, j, row);
	row->finished_at = time(NULL);
	if (row->started_at == 0) {
		row->started_at = row->finished_at;
	}
	if (!jd->resolved) {
		testhook_point("rollout.answered");
	}
	if (gc_write(d, row) == 0) {
		testhook_point("rollout.committed");
		count_host(d, row);
	}
	pthread_mutex_lock(&d->lock);
	emit_host(d, row, j);
	pthread_mutex_unlock(&d->lock);
	free(jd);
	j->user = NULL;
}

/* ---- revert ---- */

static int
revert_before(void *arg, struct swarm_job *j)
{
	struct driver *d = arg;
	struct job_data *jd = j->user;
	struct reg_rollout_host *row = &jd->row;
	const struct swarm_health *h = &j->health;

	if (row->state == RH_REVERTING) {
		if (h->has_request_id) {
			switch (history_lookup(d, j, 1, &j->agent)) {
			case SWARM_LOOKUP_FOUND:
			case SWARM_LOOKUP_FAILED:
				jd->resolved = 1;
				return 1;
			case SWARM_LOOKUP_ABSENT:
				break;
			}
		} else if (h->have_active && strcmp(h->active.sha256, row->pre_sha256) == 0) {
			memset(&j->agent, 0, sizeof(j->agent));
			j->agent.outcome = SWARM_UPDATED;
			snprintf(j->agent.version, sizeof(j->agent.version), "%s", h->active.version);
			snprintf(j->agent.sha256, sizeof(j->agent.sha256), "%s", h->active.sha256);
			jd->resolved = 1;
			return 1;
		}
		row->attempts++;
		return 0;
	}
	/* Only where the host still runs our release and its prev is what it ran before. */
	if (!h->have_active || strcmp(h->active.sha256, d->rel.sha256) != 0) {
		result_from_text(&j->agent, "revert skipped: the host no longer runs the rollout's "
		    "release", h->have_active ? h->active.version : "no active release");
		row->state = RH_REVERT_SKIPPED;
		jd->resolved = 1;
		return 1;
	}
	if (row->pre_sha256[0] == '\0' || !h->have_prev ||
	    strcmp(h->prev.sha256, row->pre_sha256) != 0) {
		char detail[256];
		snprintf(detail, sizeof(detail), "prev is %.64s, the release before the rollout was "
		    "%.64s", h->have_prev ? h->prev.sha256 : "none",
		    row->pre_sha256[0] != '\0' ? row->pre_sha256 : "none");
		result_from_text(&j->agent, "revert skipped: prev changed", detail);
		row->state = RH_REVERT_SKIPPED;
		jd->resolved = 1;
		return 1;
	}
	row->state = RH_REVERTING;
	row->attempts++;
	row->log_push = 0;
	if (gc_write(d, row) != 0) {
		result_from_text(&j->agent, "cannot record the revert in the registry",
		    err_msg(&d->lost_err));
		row->state = RH_REVERT_FAILED;
		jd->resolved = 1;
		return 1;
	}
	testhook_point("rollout.revert_dispatched");
	return 0;
}

static void
revert_done(void *arg, struct swarm_job *j)
{
	struct driver *d = arg;
	struct job_data *jd = j->user;
	struct reg_rollout_host *row = &jd->row;

	if (row->state != RH_REVERT_SKIPPED) {
		row->state = j->agent.outcome == SWARM_UPDATED ? RH_REVERTED : RH_REVERT_FAILED;
	}
	snprintf(row->reason, sizeof(row->reason), "%s", row->state == RH_REVERTED
	    ? "reverted to the release before the rollout" : j->agent.reason);
	snprintf(row->detail, sizeof(row->detail), "%s", j->agent.detail);
	if (j->agent.version[0] != '\0') {
		snprintf(row->version, sizeof(row->version), "%s", j->agent.version);
		snprintf(row->active_sha256, sizeof(row->active_sha256), "%s", j->agent.sha256);
	}
	row->http_status = j->agent.http_status;
	snprintf(row->agent_result, sizeof(row->agent_result), "%s",
	    row->state == RH_REVERTED ? "rolled_back" : row->state == RH_REVERT_FAILED
	    ? "rollback_failed" : "");
	row->log_push = row->state != RH_REVERT_SKIPPED;
	row->finished_at = time(NULL);
	if (gc_write(d, row) == 0) {
		testhook_point("rollout.reverted");
	}
	pthread_mutex_lock(&d->lock);
	emit_host(d, row, j);
	pthread_mutex_unlock(&d->lock);
	free(jd);
	j->user = NULL;
}

/* ---- soak: the gate's second look at every host the rollout updated ---- */

static void
soak_done(void *arg, struct swarm_job *j)
{
	struct driver *d = arg;
	struct job_data *jd = j->user;
	struct reg_rollout_host *row = &jd->row;
	const struct swarm_health *h = &j->health;
	char why[256] = "";
	long long since_ms = ((long long)time(NULL) - (long long)row->finished_at) * 1000;

	if (!j->have_health) {
		if (!d->spec.unreachable_skip) {
			snprintf(why, sizeof(why), "no answer after the soak: %.200s", j->error);
		}
	} else if (strcmp(h->status, "ok") != 0) {
		snprintf(why, sizeof(why), "updater status is %s after the soak", h->status);
	} else if (h->agent_crash_loop == 1) {
		snprintf(why, sizeof(why), "the agent is crash-looping (last exit: %s)",
		    h->agent_last_exit[0] != '\0' ? h->agent_last_exit : "?");
	} else if (!h->have_active || strcmp(h->active.sha256, d->rel.sha256) != 0) {
		snprintf(why, sizeof(why), "the active release is %.64s, not the rollout's",
		    h->have_active ? h->active.version : "none");
	} else if (strcmp(h->agent_state, "running") != 0 && h->agent_state[0] != '\0' &&
	    !(strcmp(h->agent_state, "starting") == 0 && h->agent_restarts == 0)) {
		/* "starting" with no restart is the release's first start still inside the
		 * supervisor's running_after delay (late on a loaded host): not a crash. A crash
		 * shows as backoff, crash_loop, restarts > 0 or the uptime check below. */
		snprintf(why, sizeof(why), "the agent is %s (last exit: %s)", h->agent_state,
		    h->agent_last_exit[0] != '\0' ? h->agent_last_exit : "?");
	} else if (h->agent_uptime_ms >= 0 && since_ms > 2000 &&
	    h->agent_uptime_ms + 2000 < since_ms) {
		/* It runs, but it was restarted since the update: it crashed. */
		snprintf(why, sizeof(why), "the agent restarted since the update (up %lld ms; last "
		    "exit: %s)", h->agent_uptime_ms,
		    h->agent_last_exit[0] != '\0' ? h->agent_last_exit : "?");
	}
	if (why[0] != '\0') {
		row->state = RH_SOAK_FAILED;
		snprintf(row->reason, sizeof(row->reason), "soak: %.248s", why);
		row->detail[0] = '\0';
		row->log_push = 0;
		if (gc_write(d, row) == 0) {
			count_host(d, row);
		}
		pthread_mutex_lock(&d->lock);
		emit_host(d, row, j);
		pthread_mutex_unlock(&d->lock);
	}
	free(jd);
	j->user = NULL;
}

/* ---- running the pool over a source ---- */

static int
run_pool(struct driver *d, enum src_mode mode, int wave, size_t total)
{
	struct swarm_pool_opts po;

	pthread_mutex_lock(&d->lock);
	d->mode = mode;
	/*
	 * A halt or an operator's request stops dispatching, never a revert or
	 * a soak's second look; a lost lease and the caller's stop stop all.
	 */
	d->stop_hard = d->lost || *d->caller_stop;
	d->stop_any = d->stop_hard || (mode == SRC_DISPATCH && (d->halted || d->request[0] != '\0'));
	pthread_mutex_unlock(&d->lock);
	d->wave = wave;
	d->after_seq = 0;
	d->nb = 0;
	d->ib = 0;
	memset(&po, 0, sizeof(po));
	po.release = &d->rel;
	po.include_self = d->spec.include_self;
	po.parallel = d->spec.parallel;
	po.precheck = 1;
	po.force = d->spec.force;
	po.full = d->spec.full;
	po.retries = d->spec.retries;
	if (d->spec.deadline_at > 0) {
		po.deadline = mono_ms() + ((int64_t)d->spec.deadline_at - (int64_t)time(NULL)) * 1000;
	}
	po.stop = mode == SRC_DISPATCH ? &d->stop_any : &d->stop_hard;
	po.no_push_log = 1;
	po.next = src_next;
	po.arg = d;
	po.total = total;
	switch (mode) {
	case SRC_DISPATCH:
		po.before_push = dispatch_before;
		po.done = dispatch_done;
		break;
	case SRC_REVERT:
		po.before_push = revert_before;
		po.done = revert_done;
		po.include_self = 0;
		break;
	case SRC_SOAK:
		po.precheck = 0;
		po.done = soak_done;
		break;
	}
	return swarm_run(d->c, NULL, 0, &po);
}

/* ---- the lease thread: renewals, the operator's requests, the caller's stop ---- */

static void *
lease_thread(void *arg)
{
	struct driver *d = arg;
	int64_t next_renew = mono_ms() + ROLLOUT_LEASE_RENEW_MS, next_poll = mono_ms();
	struct reg_rollout r;
	struct timespec ts;

	pthread_mutex_lock(&d->lease_mu);
	while (!d->lease_quit) {
		pthread_mutex_unlock(&d->lease_mu);
		if (*d->caller_stop) {
			d->stop_any = 1;
			d->stop_hard = 1;
		}
		if (mono_ms() >= next_renew) {
			struct err e = ERR_INIT;
			if (registry_rollout_lease(d->c->reg, d->r.id, d->owner, time(NULL),
			    ROLLOUT_LEASE_S, NULL, NULL, &e) != 0) {
				pthread_mutex_lock(&d->lock);
				if (!d->lost) {
					d->lost = 1;
					err_copy(&d->lost_err, &e);
				}
				d->stop_any = 1;
				d->stop_hard = 1;
				pthread_mutex_unlock(&d->lock);
			}
			next_renew = mono_ms() + ROLLOUT_LEASE_RENEW_MS;
		}
		if (mono_ms() >= next_poll) {
			struct err e = ERR_INIT;
			if (registry_rollout_get(d->c->reg, d->r.id, &r, &e) == 0 && r.request[0] != '\0') {
				pthread_mutex_lock(&d->lock);
				snprintf(d->request, sizeof(d->request), "%s", r.request);
				d->stop_any = 1;
				pthread_mutex_unlock(&d->lock);
			}
			next_poll = mono_ms() + REQUEST_POLL_MS;
		}
		pthread_mutex_lock(&d->lease_mu);
		timespec_after_ms(CLOCK_REALTIME, TICK_MS, &ts);
		if (!d->lease_quit) {
			pthread_cond_timedwait(&d->lease_cv, &d->lease_mu, &ts);
		}
	}
	pthread_mutex_unlock(&d->lease_mu);
	return NULL;
}

/* ---- waiting (soak, window) with the lease held ---- */

/* Sleep until the wall clock reaches UNTIL (testhook_now() for windows). 1 when cut short. */
static int
wait_until(struct driver *d, time_t until, int test_clock)
{
	time_t now = test_clock ? testhook_now() : time(NULL);
	int64_t deadline = mono_ms() + (until > now ? (int64_t)(until - now) * 1000 : 0);

	while (ms_until(deadline) > 0) {
		pthread_mutex_lock(&d->lock);
		int stop = d->stop_any && (d->lost || d->request[0] != '\0' || *d->caller_stop);
		pthread_mutex_unlock(&d->lock);
		if (stop || *d->caller_stop) {
			return 1;
		}
		struct timespec ts = { 0, (ms_until(deadline) < TICK_MS ? ms_until(deadline) : TICK_MS) *
			1000000L };
		nanosleep(&ts, NULL);
	}
	return 0;
}

/* ---- the gate command ---- */

static int
run_gate_cmd(struct driver *d, int wave, char *why, size_t len)
{
	struct proc_spec ps;
	char env_id[64], env_wave[32], env_sha[96], env_home[PATH_MAX + 16], out[GATE_OUTPUT_MAX];
	char st[128];
	struct err perr = ERR_INIT;
	const char *argv[] = { "/bin/sh", "-c", d->spec.gate_cmd, NULL };
	const char *env[5];
	size_t outlen = 0;
	int status = 0;

	snprintf(env_id, sizeof(env_id), "TANDEM_ROLLOUT_ID=%s", d->r.id);
	snprintf(env_wave, sizeof(env_wave), "TANDEM_WAVE=%d", wave + 1);
	snprintf(env_sha, sizeof(env_sha), "TANDEM_RELEASE_SHA256=%s", d->rel.sha256);
	snprintf(env_home, sizeof(env_home), "TANDEM_HOME=%s", d->c->home);
	env[0] = env_id;
	env[1] = env_wave;
	env[2] = env_sha;
	env[3] = env_home;
	env[4] = NULL;
	proc_spec_init(&ps);
	ps.argv = argv;
	ps.env_add = env;
	if (proc_run_capture(&ps, ROLLOUT_GATE_TIMEOUT_MS, out, sizeof(out), &outlen, &status,
	    &perr) != 0) {
		snprintf(why, len, "gate command failed to run: %s", err_msg(&perr));
		return -1;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		/* Its last line says why, usually. */
		while (outlen > 0 && (out[outlen - 1] == '\n' || out[outlen - 1] == '\r')) {
			out[--outlen] = '\0';
		}
		const char *last = strrchr(out, '\n');
		snprintf(why, len, "gate command %s%s%.200s", proc_status_str(status, st, sizeof(st)),
		    outlen > 0 ? ": " : "", last != NULL ? last + 1 : out);
		return -1;
	}
	return 0;
}

/* ---- the steps ---- */

/* Halt: record it, revert if asked, and finish (revert) or stay halted (pause). */
static int
do_revert_and_finish(struct driver *d, enum reg_rollout_state final, const char *why,
    struct err *e);

static int
halt(struct driver *d, const char *why, struct err *e)
{
	say(d, "halted: %s", why);
	if (d->spec.on_halt == ROLLOUT_HALT_REVERT) {
		if (set_state(d, RO_REVERTING, why, -1, -1, 0, "halted", e) != 0) {
			return -1;
		}
		testhook_point("rollout.halted");
		return do_revert_and_finish(d, RO_HALTED, why, e);
	}
	if (set_state(d, RO_HALTED, why, -1, -1, 0, "halted", e) != 0) {
		return -1;
	}
	testhook_point("rollout.halted");
	return 0;
}

static int
do_revert_and_finish(struct driver *d, enum reg_rollout_state final, const char *why,
    struct err *e)
{
	struct reg_rollout_counts n;
	char reason[sizeof(d->r.reason)];

	/* Newest wave first: the hosts that got the release last are restored first. */
	for (int w = d->r.current_wave; w >= 0; w--) {
		if (registry_rollout_counts(d->c->reg, d->r.id, w, 0, &n, e) != 0) {
			return -1;
		}
		if (n.n[RH_UPDATED] + n.n[RH_SOAK_FAILED] + n.n[RH_REVERTING] == 0) {
			continue;
		}
		say(d, "reverting wave %d (%zu hosts)", w + 1,
		    n.n[RH_UPDATED] + n.n[RH_SOAK_FAILED] + n.n[RH_REVERTING]);
		if (run_pool(d, SRC_REVERT, w, n.n[RH_UPDATED] + n.n[RH_SOAK_FAILED] +
		    n.n[RH_REVERTING]) != 0) {
			return err_set(e, ERR_INTERNAL, "cannot run the workers");
		}
		if (d->lost) {
			return err_copy(e, &d->lost_err);
		}
		if (*d->caller_stop) {
			return 1; /* interrupted: the revert goes on at the next resume */
		}
	}
	if (registry_rollout_counts(d->c->reg, d->r.id, -1, 0, &n, e) != 0) {
		return -1;
	}
	snprintf(reason, sizeof(reason), "%s; %zu reverted%s", why, n.n[RH_REVERTED],
	    n.n[RH_REVERT_FAILED] + n.n[RH_REVERT_SKIPPED] > 0 ? ", some not (see the hosts)" : "");
	return set_state(d, final, reason, -1, 0, 1, final == RO_ABORTED ? "aborted" : "halted", e);
}

/* An operator's request seen at a step boundary. 1: the drive stops here. */
static int
handle_request(struct driver *d, struct err *e)
{
	char req[16];

	pthread_mutex_lock(&d->lock);
	snprintf(req, sizeof(req), "%s", d->request[0] != '\0' ? d->request : d->r.request);
	d->request[0] = '\0';
	d->r.request[0] = '\0';
	pthread_mutex_unlock(&d->lock);
	if (req[0] == '\0') {
		return 0;
	}
	if (strcmp(req, "pause") == 0) {
		say(d, "paused by the operator");
		if (set_state(d, RO_PAUSED, "paused by the operator", -1, -1, 0, "paused", e) != 0) {
			return -1;
		}
		return 1;
	}
	if (strcmp(req, "abort_revert") == 0) {
		say(d, "aborted by the operator: reverting");
		if (d->r.state != RO_REVERTING &&
		    set_state(d, RO_REVERTING, "aborted by the operator", -1, -1, 0, "aborting", e) !=
		    0) {
			return -1;
		}
		if (registry_rollout_request(d->c->reg, d->r.id, "abort_revert", e) != 0) {
			return -1;
		}
		return do_revert_and_finish(d, RO_ABORTED, "aborted by the operator", e) < 0 ? -1 : 1;
	}
	say(d, "aborted by the operator");
	if (set_state(d, RO_ABORTED, "aborted by the operator", -1, 0, 1, "aborted", e) != 0) {
		return -1;
	}
	return 1;
}

/* The window: wait for it (waiting_window) when outside. 1 when the drive must stop. */
static int
wait_for_window(struct driver *d, struct err *e)
{
	time_t next = 0;
	char at[32], why[256];

	if (!d->spec.have_window || rollout_window_at(&d->spec.window, testhook_now(), &next)) {
		d->window_closed = 0;
		return 0;
	}
	iso8601_utc(next, at, sizeof(at));
	snprintf(why, sizeof(why), "outside the window %.60s; next opens %s", d->spec.window_text,
	    next != 0 ? at : "never");
	say(d, "waiting: %s", why);
	if (set_state(d, RO_WAITING_WINDOW, why, -1, -1, 0, "waiting_window", e) != 0) {
		return -1;
	}
	while (!rollout_window_at(&d->spec.window, testhook_now(), &next)) {
		if (next == 0) {
			return err_set(e, ERR_CONFIG, "the window %s never opens", d->spec.window_text);
		}
		if (wait_until(d, next, 1) != 0) {
			return 1;
		}
	}
	d->window_closed = 0;
	d->stop_any = 0;
	return set_state(d, RO_RUNNING, "inside the window", -1, -1, 0, "window_open", e) != 0 ? -1
											: 0;
}

/* The gate after wave W: soak and second look, then the gate command. 1: halted. */
static int
gate(struct driver *d, int w, struct err *e)
{
	struct reg_rollout_counts n;
	char why[GATE_OUTPUT_MAX];

	if (d->spec.soak_ms > 0) {
		if (d->r.gate_until == 0) {
			time_t until = time(NULL) + (time_t)((d->spec.soak_ms + 999) / 1000);
			if (set_state(d, RO_RUNNING, "soaking", -1, until, 0, "soak", e) != 0) {
				return -1;
			}
			testhook_point("rollout.soak_started");
		}
		say(d, "wave %d: soaking until %lds from now", w + 1,
		    (long)(d->r.gate_until - time(NULL) > 0 ? d->r.gate_until - time(NULL) : 0));
		if (wait_until(d, d->r.gate_until, 0) != 0) {
			return 2;
		}
		if (registry_rollout_counts(d->c->reg, d->r.id, w, 1, &n, e) != 0) {
			return -1;
		}
		say(d, "wave %d: checking the %zu updated hosts again", w + 1, n.n[RH_UPDATED]);
		if (n.n[RH_UPDATED] > 0 && run_pool(d, SRC_SOAK, -1, n.n[RH_UPDATED]) != 0) {
			return err_set(e, ERR_INTERNAL, "cannot run the workers");
		}
		if (d->lost) {
			return err_copy(e, &d->lost_err);
		}
		if (d->halted) {
			return halt(d, d->halt_why, e) != 0 ? -1 : 1;
		}
		if (*d->caller_stop) {
			return 2;
		}
	}
	if (d->spec.gate_cmd[0] != '\0') {
		say(d, "wave %d: running the gate command", w + 1);
		if (run_gate_cmd(d, w, why, sizeof(why)) != 0) {
			return halt(d, why, e) != 0 ? -1 : 1;
		}
	}
	testhook_point("rollout.gate_passed");
	return 0;
}

/* Start, resume, or continue after a request: bring the row to running. */
static int
start_running(struct driver *d, struct err *e)
{
	switch (d->r.state) {
	case RO_PLANNED:
		return set_state(d, RO_RUNNING, "started", -1, -1, 0, "started", e);
	case RO_PAUSED:
	case RO_WAITING_WINDOW:
		return set_state(d, RO_RUNNING, "resumed", -1, -1, 0, "resumed", e);
	case RO_HALTED:
		/* The operator accepts the failures so far: the threshold counts from here. */
		if (registry_rollout_ack(d->c->reg, d->r.id, d->owner, (int)d->attempted,
		    (int)d->failed, e) != 0) {
			return -1;
		}
		d->r.ack_attempted = (int)d->attempted;
		d->r.ack_failed = (int)d->failed;
		return set_state(d, RO_RUNNING, "resumed after a halt (its failures accepted)", -1, -1,
		    0, "resumed", e);
	case RO_RUNNING:
		return registry_rollout_event(d->c->reg, d->r.id, NULL, "resumed",
		    "{\"reason\":\"taken over by a new driver\"}", e);
	default:
		return 0;
	}
}

/* The main loop over the waves. Returns 0 (ended or stopped as recorded), -1 with E. */
static int
drive_waves(struct driver *d, struct err *e)
{
	struct reg_rollout_counts n;
	int rc;

	for (int w = d->r.current_wave; w < d->r.n_waves; w++) {
		if (handle_request(d, e) != 0) {
			return err_failed(e) ? -1 : 0;
		}
		if (d->r.gate_until == 0) {
			/* Dispatch the wave (again, after a window closed or a resume). */
			for (;;) {
				rc = wait_for_window(d, e);
				if (rc != 0) {
					return rc < 0 ? -1 : handle_request(d, e) < 0 ? -1 : 0;
				}
				if (registry_rollout_counts(d->c->reg, d->r.id, w, 0, &n, e) != 0) {
					return -1;
				}
				if (n.n[RH_PENDING] + n.n[RH_DISPATCHED] == 0) {
					break;
				}
				say(d, "wave %d of %d: %zu host%s", w + 1, d->r.n_waves,
				    n.n[RH_PENDING] + n.n[RH_DISPATCHED],
				    n.n[RH_PENDING] + n.n[RH_DISPATCHED] == 1 ? "" : "s");
				{
					char text[64];
					snprintf(text, sizeof(text), "wave %d: %zu hosts", w + 1,
					    n.n[RH_PENDING] + n.n[RH_DISPATCHED]);
					emit_event(d, "wave", text);
				}
				if (run_pool(d, SRC_DISPATCH, w, n.n[RH_PENDING] + n.n[RH_DISPATCHED]) != 0) {
					return err_set(e, ERR_INTERNAL, "cannot run the workers");
				}
				if (d->lost) {
					return err_copy(e, &d->lost_err);
				}
				if (d->halted) {
					return halt(d, d->halt_why, e);
				}
				if (d->request[0] != '\0') {
					if (handle_request(d, e) != 0) {
						return err_failed(e) ? -1 : 0;
					}
					continue;
				}
				if (*d->caller_stop) {
					return 0;
				}
				if (!d->window_closed) {
					break;
				}
			}
		}
		rc = gate(d, w, e);
		if (rc == 2) {
			/* The soak was cut short: an operator's request, or the caller's stop. */
			return handle_request(d, e) < 0 ? -1 : 0;
		}
		if (rc != 0) {
			return rc < 0 ? -1 : 0;
		}
		if (w + 1 == d->r.n_waves) {
			break;
		}
		if (set_state(d, RO_RUNNING, "wave passed", w + 1, 0, 0, "wave_passed", e) != 0) {
			return -1;
		}
		testhook_point("rollout.wave_passed");
	}
	if (registry_rollout_counts(d->c->reg, d->r.id, -1, 0, &n, e) != 0) {
		return -1;
	}
	return set_state(d, RO_DONE, n.n[RH_FAILED] + n.n[RH_ROLLED_BACK] + n.n[RH_SOAK_FAILED] > 0
	    ? "done, with failed hosts within the allowed failures" : "every host runs the release",
	    -1, 0, 1, "done", e);
}

void
rollout_summarise(struct swarm_ctx *c, struct rollout_outcome *out)
{
	struct reg_rollout_counts *n = &out->counts;
	struct err e = ERR_INIT;
	size_t moved, ok;
	char extra[96] = "";

	if (registry_rollout_counts(c->reg, out->r.id, -1, 0, n, &e) != 0) {
		memset(n, 0, sizeof(*n));
	}
	moved = n->n[RH_UPDATED] + n->n[RH_SOAK_FAILED] + n->n[RH_REVERTING] + n->n[RH_REVERTED] +
	    n->n[RH_REVERT_FAILED] + n->n[RH_REVERT_SKIPPED];
	ok = n->n[RH_UPDATED] + n->n[RH_ALREADY_ACTIVE];
	if (n->n[RH_ALREADY_ACTIVE] > 0) {
		snprintf(extra + strlen(extra), sizeof(extra) - strlen(extra), ", %zu already active",
		    n->n[RH_ALREADY_ACTIVE]);
	}
	if (n->n[RH_REVERTED] > 0) {
		snprintf(extra + strlen(extra), sizeof(extra) - strlen(extra), ", %zu reverted",
		    n->n[RH_REVERTED]);
	}
	snprintf(out->summary, sizeof(out->summary), "%s (%zu of %zu updated%s)",
	    registry_rollout_state_name(out->r.state), moved, n->total, extra);
	switch (out->r.state) {
	case RO_DONE:
		out->exit_code = ok == n->total ? ROLLOUT_EXIT_DONE : ROLLOUT_EXIT_FAILED;
		break;
	case RO_HALTED:
	case RO_ABORTED:
		out->exit_code = ROLLOUT_EXIT_FAILED;
		break;
	default:
		out->exit_code = ROLLOUT_EXIT_OPEN;
		break;
	}
}

int
rollout_drive(struct swarm_ctx *c, const char *id, const struct rollout_ui *ui,
    volatile int *stop, struct rollout_outcome *out, struct err *e)
{
	struct driver *d;
	struct stat st;
	struct err le = ERR_INIT;
	int rc = -1, mutexes = 0;

	memset(out, 0, sizeof(*out));
	d = calloc(1, sizeof(*d));
	if (d == NULL) {
		return err_set(e, ERR_NOMEM, "out of memory");
	}
	d->c = c;
	d->ui = ui;
	d->caller_stop = stop;
	d->gc_q = calloc(GC_QUEUE_MAX, sizeof(*d->gc_q));
	if (d->gc_q == NULL) {
		free(d);
		return err_set(e, ERR_NOMEM, "out of memory");
	}
	pthread_mutex_init(&d->lock, NULL);
	pthread_mutex_init(&d->gc_mu, NULL);
	pthread_cond_init(&d->gc_cv, NULL);
	pthread_mutex_init(&d->lease_mu, NULL);
	pthread_cond_init(&d->lease_cv, NULL);
	mutexes = 1;
	rollout_owner_self(d->owner, sizeof(d->owner));
	if (registry_rollout_lease(c->reg, id, d->owner, time(NULL), ROLLOUT_LEASE_S,
	    rollout_owner_gone, &d->r, e) != 0) {
		goto out;
	}
	out->r = d->r;
	if (pthread_create(&d->lease_tid, NULL, lease_thread, d) != 0) {
		err_set(e, ERR_INTERNAL, "cannot start the lease thread");
		goto release;
	}
	d->lease_started = 1;
	if (d->r.finished_at != 0) {
		rc = 0; /* nothing left to do */
		goto release;
	}
	if (rollout_spec_from_json(d->r.spec_json, strlen(d->r.spec_json), &d->spec, e) != 0) {
		err_prefix(e, "rollout %s", d->r.id);
		goto release;
	}
	if (release_store_path(c->home, d->r.release_sha256, d->rel_path, sizeof(d->rel_path)) != 0 ||
	    stat(d->rel_path, &st) != 0) {
		err_set(e, ERR_NOT_FOUND, "rollout %s: its release %.12s is missing from the master's "
		    "store (%s)", d->r.id, d->r.release_sha256, d->rel_path);
		goto release;
	}
	d->rel.path = d->rel_path;
	{
		char tpath[PATH_MAX + 8];
		size_t tlen = 0;
		snprintf(tpath, sizeof(tpath), "%s.tsig", d->rel_path);
		if (release_sign_read_tsig(tpath, &d->tsig, &tlen, e) < 0) {
			goto release;
		}
		d->rel.tsig = d->tsig;
		d->rel.tsig_len = tlen;
	}
	snprintf(d->rel.sha256, sizeof(d->rel.sha256), "%s", d->r.release_sha256);
	d->rel.size = (uint64_t)st.st_size;
	snprintf(d->rel.label, sizeof(d->rel.label), "%s", d->r.release_label);
	/* One set of deltas for every wave (NULL: each wave builds its own). */
	d->rel.deltas = swarm_deltas_new();
	if (recount(d, e) != 0) {
		goto release;
	}
	/* An operator's request first; then the state decides where to go on. */
	rc = handle_request(d, e);
	if (rc != 0) {
		rc = rc < 0 ? -1 : 0;
		goto release;
	}
	if (d->r.state == RO_REVERTING) {
		rc = do_revert_and_finish(d, RO_HALTED, d->r.reason, e) < 0 ? -1 : 0;
		goto release;
	}
	if (start_running(d, e) != 0) {
		goto release;
	}
	rc = drive_waves(d, e);
	if (rc == 0 && *stop && d->r.finished_at == 0 && d->r.state != RO_HALTED &&
	    d->r.state != RO_PAUSED) {
		say(d, "interrupted: hosts in flight finished; 'tandem swarm rollout resume %s' goes on",
		    d->r.id);
	}
release:
	if (d->lease_started) {
		pthread_mutex_lock(&d->lease_mu);
		d->lease_quit = 1;
		pthread_cond_signal(&d->lease_cv);
		pthread_mutex_unlock(&d->lease_mu);
		(void)pthread_join(d->lease_tid, NULL);
	}
	if (registry_rollout_release(c->reg, d->r.id, d->owner, &le) != 0) {
		log_warnx("rollout %s: %s", d->r.id, err_msg(&le));
	}
	if (registry_rollout_get(c->reg, d->r.id, &out->r, &le) != 0) {
		out->r = d->r;
	}
	rollout_summarise(c, out);
out:
	if (mutexes) {
		pthread_mutex_destroy(&d->lock);
		pthread_mutex_destroy(&d->gc_mu);
		pthread_cond_destroy(&d->gc_cv);
		pthread_mutex_destroy(&d->lease_mu);
		pthread_cond_destroy(&d->lease_cv);
	}
	swarm_deltas_free(d->rel.deltas);
	free(d->tsig);
	free(d->gc_q);
	free(d);
	return rc;
}

int
rollout_create(struct swarm_ctx *c, const struct rollout_spec *spec, const struct selector *sel,
    const char *sha256, const char *kind, int paused, char id[ROLLOUT_ID_LEN + 1], struct err *e)
{
	/* An operator's update takes hosts over from rollouts stopped for the operator. */
	return rollout_create_filtered(c, spec, sel, NULL, NULL, 1, sha256, kind, paused, id, e);
}

int
rollout_create_filtered(struct swarm_ctx *c, const struct rollout_spec *spec,
    const struct selector *sel, int (*want)(void *arg, const char *host), void *want_arg,
    int take_over, const char *sha256, const char *kind, int paused,
    char id[ROLLOUT_ID_LEN + 1], struct err *e)
{
	struct reg_rollout r;
	char *json = NULL;
	int nh = 0, nw = 0, rc = -1;

	memset(&r, 0, sizeof(r));
	if (rollout_random_id(r.id, ROLLOUT_ID_LEN, e) != 0) {
		return -1;
	}
	json = rollout_spec_to_json(spec);
	if (json == NULL) {
		return err_set(e, ERR_NOMEM, "out of memory");
	}
	if (strlen(json) > REG_ROLLOUT_SPEC_MAX) {
		err_set(e, ERR_USAGE, "the rollout's options are too long (%zu bytes)", strlen(json));
		goto out;
	}
	snprintf(r.spec_json, sizeof(r.spec_json), "%s", json);
	snprintf(r.name, sizeof(r.name), "%s", spec->name);
	snprintf(r.kind, sizeof(r.kind), "%s", kind);
	snprintf(r.release_sha256, sizeof(r.release_sha256), "%s", sha256);
	r.state = paused ? RO_PAUSED : RO_PLANNED;
	snprintf(r.reason, sizeof(r.reason), "%s", paused ? "created paused (--paused)" : "planned");
	if (registry_rollout_create(c->reg, &r, spec, sel, want, want_arg, take_over, &nh, &nw, e) !=
	    0) {
		goto out;
	}
	memcpy(id, r.id, sizeof(r.id));
	testhook_point("rollout.created");
	rc = 0;
out:
	free(json);
	return rc;
}

int
rollout_request(struct swarm_ctx *c, const char *id, const char *request, int *queued,
    struct err *e)
{
	struct reg_rollout r;
	char self[160];

	*queued = 0;
	if (registry_rollout_get(c->reg, id, &r, e) != 0) {
		return -1;
	}
	if (r.finished_at != 0) {
		return err_set(e, ERR_CONFLICT, "rollout %s has already ended (%s)", r.id,
		    registry_rollout_state_name(r.state));
	}
	if (registry_rollout_request(c->reg, r.id, request, e) != 0) {
		return -1;
	}
	rollout_owner_self(self, sizeof(self));
	/* A live driver elsewhere acts on it; otherwise the caller drives. */
	if (r.lease_owner[0] != '\0' && r.lease_until > time(NULL) &&
	    !rollout_owner_gone(r.lease_owner) && strcmp(r.lease_owner, self) != 0) {
		*queued = 1;
	}
	return 0;
}
