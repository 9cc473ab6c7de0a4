#include "master/swarm_push.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cJSON.h"
#include "common/digest.h"
#include "common/fs.h"
#include "common/json.h"
#include "common/log.h"
#include "common/release_files.h"
#include "common/testhook.h"
#include "master/certs.h"
#include "master/delta_pack.h"
#include "master/keystore.h"
#include "master/release_sign.h"
#include "master/release_store.h"
#include "pki/pki.h"
#include "pki/sign.h"

/* How long --include-self waits for the restarted updater to report its version. */
#define SWARM_SELF_CONFIRM_MS 60000
#define SWARM_SELF_POLL_MS 200
/* Status probes: short, an operator is waiting. */
#define SWARM_STATUS_TIMEOUT_MS 10000
#define SWARM_REDRAW_MS 250
/* Most progress lines redrawn on a terminal. */
#define SWARM_TTY_LINES 20
/* The longest Retry-After a busy updater makes us wait before the next attempt. */
#define SWARM_RETRY_AFTER_MAX_S 30
/*
 * Learning what became of a request after its connection broke: for the
 * request timeout (at least LOOKUP_MIN_MS), polling a running operation
 * every LOOKUP_POLL_MS, an updater that does not answer with backoff up to
 * LOOKUP_RETRY_MAX_MS.
 */
#define SWARM_LOOKUP_MIN_MS 5000
#define SWARM_LOOKUP_POLL_MS 500
#define SWARM_LOOKUP_RETRY_MAX_MS 5000
/*
 * An updater that answers nothing at all for this long (down, not restarted)
 * ends the lookup early: a restarted updater answers within seconds, and an
 * operator should not wait the whole request timeout for a host that is gone.
 */
#define SWARM_LOOKUP_SILENT_MS 20000

int
swarm_ctx_open(struct swarm_ctx *c, const char *home, int timeout_s, struct err *e)
{
	char ca[PATH_MAX], crt[PATH_MAX], key[PATH_MAX], mcn[PKI_CN_MAX + 1];
	struct tls_opts to;

	memset(c, 0, sizeof(*c));
	c->home = home;
	c->timeout_ms = timeout_s * 1000;
	/* Both CAs while a CA rotation is under way. */
	if (pki_master_trust(home, ca, e) != 0) {
		return -1;
	}
	/* The renewed pair while tandem pki renew-master is under way. */
	if (pki_master_paths(home, crt, key, e) != 0) {
		return -1;
	}
	if (pki_master_cn(home, mcn, sizeof(mcn), e) != 0) {
		return -1;
	}
	tls_opts_init(&to);
	to.ca_file = ca;
	to.cert_file = crt;
	to.key_file = key;
	to.master_cn = mcn;
	if (tls_client_new(&to, &c->tls, e) != 0) {
		return -1;
	}
	if (registry_open(home, &c->reg, e) != REGISTRY_OK) {
		tls_ctx_free(c->tls);
		c->tls = NULL;
		return -1;
	}
	/* A revoked host is refused on every handshake, like at the hosts. */
	if (certs_load_revocations(c->reg, e) != 0) {
		swarm_ctx_close(c);
		return -1;
	}
	return 0;
}

void
swarm_ctx_close(struct swarm_ctx *c)
{
	registry_close(c->reg);
	tls_ctx_free(c->tls);
	c->reg = NULL;
	c->tls = NULL;
}

/* Target of host H's updater (AGENT: its agent), pinned; the strings live in B. */
int
swarm_target(const struct reg_host *h, int agent, struct httpc_target *t,
    struct swarm_target_buf *b, int timeout_ms, struct err *e)
{
	const char *fp = agent ? h->agent_fp : h->updater_fp;
	const char *next = agent ? h->agent_fp_next : h->updater_fp_next;

	httpc_target_init(t);
	if (fp[0] == '\0') {
		return err_set(e, ERR_CONFLICT, "no %s certificate fingerprint recorded for %s: "
		    "refusing to connect unpinned (enroll it with 'tandem swarm enroll --updater %s')",
		    agent ? "agent" : "updater", h->name, h->name);
	}
	snprintf(b->port, sizeof(b->port), "%d", agent ? h->agent_port : h->updater_port);
	/* During a renewal the certificate in force and the next one are both accepted. */
	snprintf(b->pins, sizeof(b->pins), "%s%s%s", fp, next[0] != '\0' ? "," : "", next);
	t->host = h->address;
	t->port = b->port;
	t->pin_fp = b->pins;
	/* The pin names the exact certificate; mbedTLS cannot match IP SANs anyway. */
	t->sni_hostname = NULL;
	t->total_timeout_ms = timeout_ms;
	/* The updater sends nothing while it installs and probes: no shorter idle limit. */
	t->io_timeout_ms = timeout_ms;
	return 0;
}

int
swarm_request(struct swarm_ctx *c, const struct reg_host *h, const char *method,
    const char *path, struct httpc_response *resp, struct err *e)
{
	struct httpc_target t;
	struct swarm_target_buf tb;

	memset(resp, 0, sizeof(*resp));
	if (swarm_target(h, 0, &t, &tb, c->timeout_ms, e) != 0) {
		return -1;
	}
	return httpc_fetch(c->tls, &t, method, path, NULL, NULL, 0, resp, e) != 0 ? -1 : 0;
}

/* ---- the pool ---- */

struct pool {
	struct swarm_ctx *c;
	struct swarm_job *jobs;      /* array mode; NULL when streaming */
	struct swarm_job **active;   /* streaming: each worker's current job, or NULL */
	size_t nslots;
	size_t n, next, done, failed;
	int exhausted;               /* streaming: the source has no more jobs */
	const struct swarm_pool_opts *o;
	pthread_mutex_t lock;
	pthread_mutex_t done_lock;   /* one o->done at a time: its sinks are not thread-safe */
	pthread_cond_t cond;
	int drawn; /* lines drawn by the last redraw (TTY) */
	/* planned pushes: the release's files.json, read once (under LOCK) */
	int fj_state;                /* 0 not read, 1 read, -1 none or unreadable */
	char *fj;
	size_t fj_len;
	char *fjz;                   /* and gzip-compressed (NULL: could not be) */
	size_t fjz_len;
	/* whether the release's signature covers its files.json (under LOCK) */
	int ts_state;                /* 0 not parsed, 1 it does (or unsigned), -1 it does not */
	/* and its deltas: the release's (a rollout's, shared by its waves) or its own */
	struct swarm_deltas *deltas;
};

/*
 * One delta of the release: its files for one set of missing digests,
 * built by the first host that needs it and sent as it is to every other
 * host whose plan names the same set (hosts on the same release lack the
 * same files): the release is decompressed once per set, not once per host.
 */
struct swarm_delta {
	char key[DIGEST_HEX_LEN + 1]; /* SHA-256 of the set (sorted, unique, one per line) */
	int state;                    /* 0 being built, 1 built, -1 could not be built */
	char path[PATH_MAX];
	struct delta_pack_result res;
	struct swarm_delta *next;
};

struct swarm_deltas {
	pthread_mutex_t lock;        /* everything below */
	pthread_cond_t built;        /* a delta was built (or failed) */
	int dd_state;                /* the directory: 0 not made, 1 made, -1 cannot be made */
	char dir[PATH_MAX - 64];
	struct swarm_delta *list;
	unsigned n;
};

struct progress_arg {
	struct pool *p;
	struct swarm_job *j;
};

static const char *
phase_word(enum swarm_phase ph)
{
	switch (ph) {
	case SWARM_PH_WAITING:
		return "waiting";
	case SWARM_PH_CONNECTING:
		return "connecting";
	case SWARM_PH_UPLOADING:
		return "uploading";
	case SWARM_PH_INSTALLING:
		return "installing/probing";
	case SWARM_PH_SELF:
		return "updating the updater";
	case SWARM_PH_CONFIRMING:
		return "confirming the updater";
	case SWARM_PH_DONE:
		break;
	}
	return "done";
}

/* One job's progress line into BUF, without its time. */
static void
job_line_text(const struct swarm_job *j, char *buf, size_t len)
{
	if (j->phase == SWARM_PH_UPLOADING && j->total > 0) {
		snprintf(buf, len, "%s: uploading %3u%%", j->host.name,
		    (unsigned)(j->sent * 100 / j->total));
	} else if (j->phase == SWARM_PH_DONE && j->kind == SWARM_JOB_KEYRING) {
		snprintf(buf, len, "%s: %s", j->host.name, j->error[0] == '\0' ? "keyring current"
		    : "keyring not updated");
	} else if (j->phase == SWARM_PH_DONE && j->kind != SWARM_JOB_UPDATE &&
	    j->kind != SWARM_JOB_ROLLBACK) {
		snprintf(buf, len, "%s: %s", j->host.name, j->have_health ? "answered"
		    : j->pin_ok == 0 ? "PIN MISMATCH" : "no answer");
	} else if (j->phase == SWARM_PH_DONE) {
		snprintf(buf, len, "%s: %s%s%s%.200s%s%s%s%.200s", j->host.name,
		    j->kind == SWARM_JOB_ROLLBACK ? "rollback " : "",
		    swarm_outcome_word(j->agent.outcome), j->agent.reason[0] != '\0' ? ": " : "",
		    j->agent.reason, j->self_tried ? "; self: " : "",
		    j->self_tried ? swarm_outcome_word(j->self.outcome) : "",
		    j->self_tried && j->self.reason[0] != '\0' ? ": " : "",
		    j->self_tried ? j->self.reason : "");
	} else {
		snprintf(buf, len, "%s: %s", j->host.name, phase_word(j->phase));
	}
}

/* "3.2 s": how long job J has run, or ran ("" before it started). */
static void
job_elapsed(const struct swarm_job *j, char *buf, size_t len)
{
	int64_t ms = j->phase == SWARM_PH_DONE ? j->elapsed_ms
	    : j->started_ms > 0 ? mono_ms() - j->started_ms : -1;

	if (ms < 0 || j->phase == SWARM_PH_WAITING) {
		buf[0] = '\0';
		return;
	}
	swarm_fmt_secs(ms, buf, len);
}

/* One job's progress line into BUF, with its elapsed time. Caller holds the lock. */
static void
job_line(const struct swarm_job *j, char *buf, size_t len)
{
	char el[32];
	size_t used;

	job_line_text(j, buf, len);
	job_elapsed(j, el, sizeof(el));
	used = strlen(buf);
	if (el[0] != '\0' && used + strlen(el) + 3 < len) {
		snprintf(buf + used, len - used, " (%s)", el);
	}
}

/* Did job J end as anything but a success? */
static int
job_failed(const struct swarm_job *j)
{
	if (j->kind == SWARM_JOB_UPDATE || j->kind == SWARM_JOB_ROLLBACK) {
		return j->agent.outcome != SWARM_UPDATED && j->agent.outcome != SWARM_ALREADY_ACTIVE;
	}
	return 0;
}

/*
 * TTY: redraw every job's line in place; for more hosts than fit a screen
 * (and always when streaming), the finished ones fold into one counter line
 * and only running jobs show. Caller holds the lock.
 */
static void
redraw(struct pool *p)
{
	char line[512];
	size_t shown = 0, i;
	int lines = 0;

	if (p->drawn > 0) {
		fprintf(stderr, "\033[%dA", p->drawn);
	}
	if (p->jobs != NULL && p->n <= SWARM_TTY_LINES) {
		for (i = 0; i < p->n; i++) {
			job_line(&p->jobs[i], line, sizeof(line));
			fprintf(stderr, "\r\033[K%s\n", line);
		}
		lines = (int)p->n;
	} else {
		if (p->jobs != NULL || p->o->total > 0) {
			fprintf(stderr, "\r\033[K%zu of %zu hosts done, %zu not updated\n", p->done,
			    p->jobs != NULL ? p->n : p->o->total, p->failed);
		} else {
			fprintf(stderr, "\r\033[K%zu hosts done, %zu not updated\n", p->done, p->failed);
		}
		lines = 1;
		for (i = 0; i < (p->jobs != NULL ? p->n : p->nslots) && shown < SWARM_TTY_LINES - 1;
		    i++) {
			const struct swarm_job *j = p->jobs != NULL ? &p->jobs[i] : p->active[i];
			if (j != NULL && j->phase != SWARM_PH_DONE && j->phase != SWARM_PH_WAITING) {
				job_line(j, line, sizeof(line));
				fprintf(stderr, "\r\033[K%s\n", line);
				shown++;
			}
		}
		/* Clear what the previous, longer frame left below. */
		for (lines += (int)shown; lines < p->drawn; lines++) {
			fprintf(stderr, "\r\033[K\n");
		}
	}
	p->drawn = lines;
	fflush(stderr);
}

static void
set_phase(struct pool *p, struct swarm_job *j, enum swarm_phase ph)
{
	char line[512];

	pthread_mutex_lock(&p->lock);
	j->phase = ph;
	if (!p->c->quiet && !p->c->tty) {
		job_line(j, line, sizeof(line));
		fprintf(stderr, "%s\n", line);
		fflush(stderr);
	}
	pthread_mutex_unlock(&p->lock);
}

static void
on_progress(void *arg, uint64_t sent, uint64_t total)
{
	struct progress_arg *pa = arg;

	pthread_mutex_lock(&pa->p->lock);
	pa->j->sent = sent;
	pa->j->total = total;
	pthread_mutex_unlock(&pa->p->lock);
	if (sent == total) {
		set_phase(pa->p, pa->j, SWARM_PH_INSTALLING);
	}
}

/* Transport failure into R. */
static void
result_transport(struct swarm_result *r, const char *what, const struct err *e)
{
	memset(r, 0, sizeof(*r));
	r->outcome = SWARM_FAILED;
	if (e->kind == ERR_PIN_MISMATCH) {
		snprintf(r->reason, sizeof(r->reason),
		    "pin mismatch: the updater's certificate is not the one enrolled");
	} else {
		snprintf(r->reason, sizeof(r->reason), "%s", what);
	}
	snprintf(r->detail, sizeof(r->detail), "%s", err_msg(e));
}

static void
sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
	}
}

/*
 * Before attempt ATTEMPT + 1 of job J: wait RETRY_AFTER_S (busy) or the
 * backoff (unreachable), in steps that notice *STOP. Returns 0 to try
 * again, -1 when out of attempts, past the deadline or asked to stop.
 */
static int
retry_wait(struct pool *p, int attempt, long retry_after_s)
{
	const struct swarm_pool_opts *o = p->o;
	int64_t until;
	long wait_ms;

	if (attempt >= o->retries || (o->stop != NULL && *o->stop)) {
		return -1;
	}
	if (retry_after_s > 0) {
		wait_ms = (retry_after_s > SWARM_RETRY_AFTER_MAX_S ? SWARM_RETRY_AFTER_MAX_S
								 : retry_after_s) * 1000L;
	} else {
		wait_ms = 1000L << (attempt - 1 < 5 ? attempt - 1 : 5);
	}
	until = mono_ms() + wait_ms;
	if (o->deadline != 0 && until > o->deadline) {
		return -1;
	}
	while (ms_until(until) > 0) {
		if (o->stop != NULL && *o->stop) {
			return -1;
		}
		sleep_ms(ms_until(until) < 100 ? ms_until(until) : 100);
	}
	return 0;
}

/* A Retry-After header in seconds (delta form only; dates are not sent by updaters). */
static long
retry_after_s(const char *v)
{
	long long n;

	return v != NULL && parse_ll(v, 0, 86400, &n) == 0 ? (long)n : 0;
}

static void recover_lost(struct pool *p, struct swarm_job *j, int what,
    struct swarm_result *r, int *retryable);

/*
 * POST PATH multipart with the release, once; classify into R. A broken
 * connection after the upload started is resolved from the updater's
 * history when the request carried an id (recover_lost).
 */
static void
push_once(struct pool *p, struct swarm_job *j, const char *path, int self, struct swarm_result *r,
    int *retryable, long *retry_after)
{
	const struct swarm_release_file *rel = p->o->release;
	struct httpc_form_field fields[7];
	const char *upath = j->upload_path != NULL ? j->upload_path : rel->path;
	uint64_t usize = j->upload_path != NULL ? j->upload_size : rel->size;
	struct progress_arg pa = { p, j };
	struct httpc_response resp;
	struct httpc_target t;
	struct httpc_conn *conn = NULL;
	struct swarm_target_buf tb;
	struct err he = ERR_INIT;
	size_t nf = 0;
	int fd = -1, lost = 0;

	*retryable = 0;
	*retry_after = 0;
	memset(&resp, 0, sizeof(resp));
	fields[nf++] = (struct httpc_form_field){ "sha", rel->label };
	fields[nf++] = (struct httpc_form_field){ "sha256", rel->sha256 };
	/* Only updaters that list the feature take the fields (older ones refuse unknown ones). */
	if (j->request_id[0] != '\0' && j->health.has_request_id) {
		fields[nf++] = (struct httpc_form_field){ "request_id", j->request_id };
	}
	if (p->o->force && !self && j->health.has_already_active) {
		fields[nf++] = (struct httpc_form_field){ "force", "true" };
	}
	if (self) {
		fields[nf++] = (struct httpc_form_field){ "confirm_self", "true" };
	}
	/* Before the file part: the updater extracts a delta by other rules. */
	if (j->upload_delta) {
		fields[nf++] = (struct httpc_form_field){ "mode", "delta" };
	}
	/* The signature precedes the tarball: the updater checks it before extracting. */
	if (j->tsig_sent) {
		fields[nf++] = (struct httpc_form_field){ "tsig", rel->tsig };
	}
	if (swarm_target(&j->host, 0, &t, &tb, p->c->timeout_ms, &he) != 0) {
		result_transport(r, "no updater fingerprint", &he);
		return;
	}
	set_phase(p, j, self ? SWARM_PH_SELF : SWARM_PH_CONNECTING);
	j->attempts++;
	if (httpc_connect(p->c->tls, &t, &conn, &he) != 0) {
		/*
		 * TCP connected but the handshake was cut or not finished: the
		 * updater is up and busy (hostile or heavy traffic takes its
		 * handshake slots), not down. Retried like a 503.
		 */
		int busy = he.kind == ERR_HANDSHAKE_CUT;
		result_transport(r, busy ? "busy" : "unreachable", &he);
		*retryable = he.kind != ERR_PIN_MISMATCH;
		return;
	}
	fd = open(upath, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		err_sys(&he, "open %s", upath);
		result_transport(r, "cannot read the release", &he);
		goto out;
	}
	if (!self) {
		set_phase(p, j, SWARM_PH_UPLOADING);
	}
	j->bytes_sent += usize;
	if (httpc_upload_multipart(conn, path, fields, nf, "tarball", "release.tar.gz", fd,
		usize, self ? NULL : on_progress, &pa, &resp, &he) != 0) {
		result_transport(r, "upload failed", &he);
		/* A self-update's history names its request only on updaters that say so. */
		lost = j->request_id[0] != '\0' && j->health.has_request_id &&
		    (!self || j->health.has_self_request_id);
		goto out;
	}
	if (self) {
		swarm_classify_self(resp.status, resp.body, resp.body_len, resp.retry_after, r);
	} else {
		swarm_classify_update(resp.status, resp.body, resp.body_len, resp.retry_after, r);
	}
	if (resp.status == 503 && resp.retry_after[0] != '\0') {
		*retryable = 1;
		*retry_after = retry_after_s(resp.retry_after);
		if (*retry_after == 0) {
			*retry_after = 1;
		}
	}
out:
	if (fd >= 0) {
		close(fd);
	}
	httpc_response_free(&resp);
	httpc_close(conn);
	if (lost) {
		recover_lost(p, j, self ? SWARM_REQ_SELF : SWARM_REQ_UPDATE, r, retryable);
	}
}

/* POST PATH with the release, retrying busy and unreachable hosts as O allows. */
static void
push_one(struct pool *p, struct swarm_job *j, const char *path, int self, struct swarm_result *r)
{
	int retryable, attempt = 0;
	long after;

	for (;;) {
		push_once(p, j, path, self, r, &retryable, &after);
		attempt++;
		if (!retryable || retry_wait(p, attempt, after) != 0) {
			return;
		}
		log_debug("%s: %s, attempt %d of %d", j->host.name, r->reason, attempt + 1,
		    p->o->retries);
	}
}

/* After /update-self: poll /health until the updater reports WANT. */
static void
confirm_self(struct pool *p, struct swarm_job *j, const char *want)
{
	int64_t deadline = mono_ms() + SWARM_SELF_CONFIRM_MS;
	struct swarm_ctx c = *p->c;
	struct httpc_response resp;
	struct swarm_health h;
	char seen[SWARM_SHORT] = "";
	struct err e = ERR_INIT, perr = ERR_INIT;
	int seen_probation = 0;

	set_phase(p, j, SWARM_PH_CONFIRMING);
	c.timeout_ms = 5000;
	while (ms_until(deadline) > 0) {
		if (swarm_request(&c, &j->host, "GET", "/health", &resp, &e) == 0) {
			if (resp.status == 200 &&
			    swarm_parse_health(resp.body, resp.body_len, &h, &perr) == 0) {
				snprintf(seen, sizeof(seen), "%s", h.version);
				seen_probation = h.probation;
				if (want[0] != '\0' && strcmp(h.version, want) == 0 && !h.probation) {
					httpc_response_free(&resp);
					return;
				}
			}
			httpc_response_free(&resp);
		} else if (e.kind == ERR_PIN_MISMATCH) {
			break;
		}
		sleep_ms(SWARM_SELF_POLL_MS);
	}
	j->self.outcome = SWARM_FAILED;
	snprintf(j->self.reason, sizeof(j->self.reason),
	    "updater did not report version %s within %d s", want, SWARM_SELF_CONFIRM_MS / 1000);
	snprintf(j->self.detail, sizeof(j->self.detail), "last /health version: %s%s%s%.700s",
	    seen[0] != '\0' ? seen : "none", seen_probation ? " (on probation)" : "",
	    err_failed(&e) ? "; last error: " : "", err_msg(&e));
}

static void
log_push(struct pool *p, const struct swarm_job *j, const char *result,
    const struct swarm_result *r)
{
	struct reg_push rp;
	char text[SWARM_REASON + SWARM_DETAIL + 8];
	struct err e = ERR_INIT;

	if (p->o->no_push_log) {
		return;
	}
	memset(&rp, 0, sizeof(rp));
	snprintf(rp.host, sizeof(rp.host), "%s", j->host.name);
	snprintf(rp.sha256, sizeof(rp.sha256), "%s", p->o->release->sha256);
	snprintf(rp.result, sizeof(rp.result), "%s", result);
	snprintf(text, sizeof(text), "%s%s%s", r->reason, r->reason[0] != '\0' &&
	    r->detail[0] != '\0' ? ": " : "", r->detail);
	registry_push_set_detail(&rp, text);
	if (registry_log_push(p->c->reg, &rp, &e) != REGISTRY_OK) {
		log_warnx("%s: cannot record the push: %s", j->host.name, err_msg(&e));
	}
}

int
swarm_host_health(struct swarm_ctx *c, const struct reg_host *h, int timeout_ms,
    struct swarm_health *out, struct err *e)
{
	struct swarm_ctx cc = *c;
	struct httpc_response resp;
	int rc = -1;

	cc.timeout_ms = timeout_ms;
	if (swarm_request(&cc, h, "GET", "/health", &resp, e) != 0) {
		return -1;
	}
	rc = -2;
	if (resp.status != 200) {
		err_set(e, ERR_PROTOCOL, "GET /health: HTTP %d", resp.status);
	} else if (swarm_parse_health(resp.body, resp.body_len, out, e) != 0) {
		err_rekind(e, ERR_PROTOCOL);
	} else {
		rc = 0;
	}
	httpc_response_free(&resp);
	return rc;
}

/*
 * One GET /history?request_id=RID: 1 with the outcome of the newest entry of
 * WHAT's kind in *R, 0 when the updater has no such entry with that id, -1
 * without a usable answer (ERR). A self-update's "queued" (written before
 * its answer) and the launcher's "committed" are updated (confirm_self then
 * waits for the version off probation); "reverted" and "undone" failed.
 * 2 when the newest entry is the refusal of a delta (delta_mismatch): nothing
 * was installed under that id, and *R is that refusal as its 409 answer reads,
 * so a lost answer still leads to the full push that answer asks for.
 */
static int
history_entry(struct swarm_ctx *c, const struct reg_host *h, const char *rid, int what,
    int timeout_ms, struct swarm_result *r, struct err *e)
{
	const int rollback = what == SWARM_REQ_ROLLBACK;
	const char *kind = rollback ? "rollback" : what == SWARM_REQ_SELF ? "update-self" : "update";
	struct swarm_ctx cc = *c;
	struct httpc_response resp;
	struct err pe = ERR_INIT;
	const cJSON *arr, *it, *found = NULL;
	cJSON *tree = NULL;
	char path[96];
	int rc = -1;

	snprintf(path, sizeof(path), "/history?request_id=%s", rid);
	cc.timeout_ms = timeout_ms;
	if (swarm_request(&cc, h, "GET", path, &resp, e) != 0) {
		return -1;
	}
	if (resp.status == 200) {
		tree = json_parse_object(resp.body, resp.body_len, &pe);
	}
	arr = cJSON_GetObjectItemCaseSensitive(tree, "history");
	if (!cJSON_IsArray(arr)) {
		err_set(e, ERR_PROTOCOL, "GET %s: HTTP %d, not a usable history%s%s", path,
		    resp.status,
		    err_msg(&pe)[0] != '\0' ? ": " : "", err_msg(&pe));
		goto out;
	}
	cJSON_ArrayForEach(it, arr)
	{
		const char *v = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it,
		    "request_id"));
		const char *k = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "kind"));
		if (v != NULL && strcmp(v, rid) == 0 && (k == NULL || strcmp(k, kind) == 0)) {
			found = it; /* the newest entry last */
		}
	}
	rc = found != NULL;
	if (found != NULL) {
		const char *res = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(found,
		    "result"));
		const char *ver = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(found,
		    "version"));
		const char *sha = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(found,
		    "sha256"));
		const char *er = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(found,
		    "error"));
		const char *ek = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(found,
		    "error_kind"));

		memset(r, 0, sizeof(*r));
		res = res != NULL ? res : "";
		if (!rollback && strcmp(res, "refused") == 0 && ek != NULL &&
		    strcmp(ek, "delta_mismatch") == 0) {
			r->outcome = SWARM_FAILED;
			r->http_status = 409;
			snprintf(r->reason, sizeof(r->reason), "HTTP 409: delta_mismatch");
			snprintf(r->detail, sizeof(r->detail), "%.700s (from the updater's history)",
			    er != NULL ? er : "");
			rc = 2;
			goto out;
		}
		if (rollback) {
			r->outcome = strcmp(res, "rolled_back") == 0 ? SWARM_UPDATED : SWARM_FAILED;
		} else if (strcmp(res, "updated") == 0 || (what == SWARM_REQ_SELF &&
		    (strcmp(res, "queued") == 0 || strcmp(res, "committed") == 0))) {
			r->outcome = SWARM_UPDATED;
		} else if (strcmp(res, "already_active") == 0) {
			r->outcome = SWARM_ALREADY_ACTIVE;
		} else if (strcmp(res, "rolled_back") == 0) {
			r->outcome = SWARM_ROLLED_BACK;
			snprintf(r->reason, sizeof(r->reason), "new release failed, previous restored");
		} else {
			r->outcome = SWARM_FAILED;
		}
		if (r->outcome == SWARM_FAILED) {
			snprintf(r->reason, sizeof(r->reason), "the updater recorded %.60s", res);
		}
		snprintf(r->detail, sizeof(r->detail), "%.700s%s(from the updater's history)",
		    er != NULL ? er : "", er != NULL && *er != '\0' ? " " : "");
		if (r->outcome == SWARM_UPDATED || r->outcome == SWARM_ALREADY_ACTIVE) {
			snprintf(r->version, sizeof(r->version), "%s", ver != NULL ? ver : "");
			snprintf(r->sha256, sizeof(r->sha256), "%s", sha != NULL ? sha : "");
		}
	}
out:
	httpc_response_free(&resp);
	cJSON_Delete(tree);
	return rc;
}

static int
lookup_timeout(int64_t deadline, int most_ms)
{
	int left = ms_until(deadline);

	return left < 1000 ? 1000 : left < most_ms ? left : most_ms;
}

enum swarm_lookup
swarm_request_lookup(struct swarm_ctx *c, const struct reg_host *h, const char *request_id,
    int what, int64_t deadline, volatile int *stop, struct swarm_result *r)
{
	struct swarm_health hl;
	struct swarm_result found;
	struct err e = ERR_INIT;
	int wait_ms = SWARM_LOOKUP_POLL_MS, silent = 0;
	int64_t silent_since = -1;

	for (;;) {
		err_clear(&e);
		int rc = swarm_host_health(c, h, lookup_timeout(deadline, SWARM_STATUS_TIMEOUT_MS),
		    &hl, &e);

		if (rc == -1 && e.kind == ERR_PIN_MISMATCH) {
			break; /* not the enrolled updater: asking again does not help */
		}
		if (rc != -1) {
			silent_since = -1;
		} else if (silent_since < 0) {
			silent_since = mono_ms();
		} else if (mono_ms() - silent_since >= SWARM_LOOKUP_SILENT_MS) {
			silent = 1;
			break;
		}
		if (rc == 0 && strcmp(hl.operation_request_id, request_id) == 0) {
			/* Ours, still running: its entry is written when it ends. */
			err_set(&e, ERR_BUSY, "the operation is still running on the host");
			wait_ms = SWARM_LOOKUP_POLL_MS;
		} else if (rc != -1) {
			rc = history_entry(c, h, request_id, what,
			    lookup_timeout(deadline, 30000), &found, &e);
			if (rc == 1) {
				*r = found;
				return SWARM_LOOKUP_FOUND;
			}
			if (rc == 2) {
				*r = found; /* the refused delta: the release was not installed */
				return SWARM_LOOKUP_ABSENT;
			}
			if (rc == 0) {
				return SWARM_LOOKUP_ABSENT;
			}
		}
		if (ms_until(deadline) < wait_ms || (stop != NULL && *stop)) {
			break;
		}
		for (int64_t until = mono_ms() + wait_ms; ms_until(until) > 0;) {
			if (stop != NULL && *stop) {
				break;
			}
			sleep_ms(ms_until(until) < 100 ? ms_until(until) : 100);
		}
		if (rc == -1 || rc == -2) {
			wait_ms = wait_ms * 2 > SWARM_LOOKUP_RETRY_MAX_MS ? SWARM_LOOKUP_RETRY_MAX_MS
									  : wait_ms * 2;
		}
	}
	memset(r, 0, sizeof(*r));
	r->outcome = SWARM_FAILED;
	snprintf(r->reason, sizeof(r->reason), "outcome unknown: the updater's history of the "
	    "request could not be read");
	if (silent) {
		snprintf(r->detail, sizeof(r->detail), "request %.40s: %.880s (no answer for %d s)",
		    request_id, err_msg(&e), SWARM_LOOKUP_SILENT_MS / 1000);
	} else {
		snprintf(r->detail, sizeof(r->detail), "request %.40s: %.900s", request_id,
		    err_msg(&e));
	}
	return SWARM_LOOKUP_FAILED;
}

/*
 * The connection of a request that may have reached the updater broke (it
 * dropped or timed out after the upload started). The master chose the
 * request id and (in a rollout) recorded it before sending, so it asks the
 * updater what became of it instead of reporting a failure that may be
 * false. R holds the transport failure and gets the true outcome;
 * *RETRYABLE is set when the updater never took the request (sending it
 * again is safe).
 */
static void
recover_lost(struct pool *p, struct swarm_job *j, int what, struct swarm_result *r,
    int *retryable)
{
	const int rollback = what == SWARM_REQ_ROLLBACK;
	struct swarm_result got = { .http_status = 0 };
	char lost[SWARM_REASON + 256];
	int64_t budget = p->c->timeout_ms > SWARM_LOOKUP_MIN_MS ? p->c->timeout_ms
								 : SWARM_LOOKUP_MIN_MS;

	snprintf(lost, sizeof(lost), "%s: %.200s", r->reason, r->detail);
	set_phase(p, j, SWARM_PH_CONFIRMING);
	log_info("%s: %s; asking the updater about request %s", j->host.name, lost,
	    j->request_id);
	switch (swarm_request_lookup(p->c, &j->host, j->request_id, what, mono_ms() + budget,
	    p->o->stop, &got)) {
	case SWARM_LOOKUP_FOUND:
		*r = got;
		snprintf(r->detail, sizeof(r->detail), "%.450s; the connection broke (%.350s), "
		    "the outcome is the updater's record of request %s", got.detail, lost,
		    j->request_id);
		break;
	case SWARM_LOOKUP_ABSENT:
		if (got.http_status == 409 && j->upload_delta) {
			/* This delta was refused: the answer that got lost asks for the full push. */
			*r = got;
			snprintf(r->detail, sizeof(r->detail), "%.450s; the connection broke (%.350s), "
			    "the outcome is the updater's record of request %s", got.detail, lost,
			    j->request_id);
			break;
		}
		memset(r, 0, sizeof(*r));
		r->outcome = SWARM_FAILED;
		snprintf(r->reason, sizeof(r->reason), "%s", rollback
		    ? "not rolled back: the connection broke before the updater took the request"
		    : "not installed: the connection broke before the updater took the request");
		snprintf(r->detail, sizeof(r->detail), "the updater has no record of request %s%s "
		    "(%.400s)", j->request_id, got.http_status == 409 ? " but its refusal of the "
		    "delta sent before" : "", lost);
		*retryable = 1;
		break;
	case SWARM_LOOKUP_FAILED:
		snprintf(got.detail + strlen(got.detail), sizeof(got.detail) - strlen(got.detail),
		    "; the connection broke: %.400s", lost);
		*r = got;
		break;
	}
}

/*
 * GET /health of the updater into J->health (J->have_health). Returns 0,
 * 1 when it answered something unusable, -1 when it could not be asked;
 * E says why.
 */
static int
fetch_health(struct pool *p, struct swarm_job *j, struct err *e)
{
	int rc;

	rc = swarm_host_health(p->c, &j->host, p->c->timeout_ms < SWARM_STATUS_TIMEOUT_MS
	    ? p->c->timeout_ms : SWARM_STATUS_TIMEOUT_MS, &j->health, e);
	if (rc == 0) {
		j->have_health = 1;
		return 0;
	}
	return rc == -2 ? 1 : -1;
}

/* After a failed or rolled-back push: which release is active now (best effort). */
static void
fill_active(struct pool *p, struct swarm_job *j)
{
	struct swarm_health h;
	struct err e = ERR_INIT;

	/* Best effort: the push's own result already says what failed. */
	if (swarm_host_health(p->c, &j->host, SWARM_STATUS_TIMEOUT_MS, &h, &e) == 0 &&
	    h.have_active) {
		snprintf(j->agent.version, sizeof(j->agent.version), "%s", h.active.version);
		snprintf(j->agent.sha256, sizeof(j->agent.sha256), "%s", h.active.sha256);
	}
}

/*
 * The pre-check of an update: GET /health (retrying an unreachable host),
 * into J->health. Returns 0, or -1 with J->agent filled (failed).
 */
static int
precheck(struct pool *p, struct swarm_job *j)
{
	struct err e = ERR_INIT;
	int attempt = 0;

	j->pin_ok = -1;
	if (j->host.updater_fp[0] == '\0') {
		/* Nothing to pin the connection to: the host is not asked, nor retried. */
		err_set(&e, ERR_CONFLICT, "no updater certificate fingerprint recorded for %s: "
		    "enroll it with 'tandem swarm enroll --updater %s'", j->host.name, j->host.name);
		result_transport(&j->agent, "no updater identity", &e);
		return -1;
	}
	set_phase(p, j, SWARM_PH_CONNECTING);
	for (;;) {
		attempt++;
		err_clear(&e);
		int rc = swarm_host_health(p->c, &j->host, p->c->timeout_ms < SWARM_STATUS_TIMEOUT_MS
		    ? p->c->timeout_ms : SWARM_STATUS_TIMEOUT_MS, &j->health, &e);
		if (rc == 0) {
			j->reachable = 1;
			j->pin_ok = 1;
			j->have_health = 1;
			return 0;
		}
		if (rc == -2) {
			j->reachable = 1;
			j->pin_ok = 1;
			result_transport(&j->agent, "the updater's /health is not usable", &e);
			return -1;
		}
		if (e.kind == ERR_PIN_MISMATCH) {
			j->reachable = 1;
			j->pin_ok = 0;
			result_transport(&j->agent, "pin mismatch", &e);
			return -1;
		}
		if (retry_wait(p, attempt, 0) != 0) {
			result_transport(&j->agent, "unreachable", &e);
			return -1;
		}
	}
}

/* The release's files.json, read from the tarball once per run; NULL without one. */
static const char *
pool_files_json(struct pool *p, size_t *len)
{
	const char *fj = NULL;

	pthread_mutex_lock(&p->lock);
	if (p->fj_state == 0) {
		struct err e = ERR_INIT;
		int r = delta_pack_files_json(p->o->release->path, &p->fj, &p->fj_len, &e);

		if (r < 0) {
			log_warnx("%s: %s; pushing it whole", p->o->release->path, err_msg(&e));
		}
		p->fj_state = r == 1 ? 1 : -1;
		/* The plan's request body for updaters that take it compressed (about a third). */
		if (r == 1 && release_files_gzip(p->fj, p->fj_len, &p->fjz, &p->fjz_len, &e) != 0) {
			log_debug("%s: %s; plan requests go uncompressed", p->o->release->path,
			    err_msg(&e));
		}
	}
	if (p->fj_state == 1) {
		fj = p->fj;
		*len = p->fj_len;
	}
	pthread_mutex_unlock(&p->lock);
	return fj;
}

/*
 * Can a host that checks the release's signature check a delta of it? A
 * statement without manifest_sha256 (signed by an older tandem) vouches for
 * the tarball's bytes only: such a host refuses every delta (409), so the
 * release goes whole wherever its signature goes along. 1 when unsigned.
 */
static int
pool_tsig_covers_files(struct pool *p)
{
	const struct swarm_release_file *rel = p->o->release;
	int ok;

	pthread_mutex_lock(&p->lock);
	if (p->ts_state == 0) {
		struct sign_envelope env;
		struct sign_statement st;
		struct err e = ERR_INIT;

		p->ts_state = 1;
		memset(&env, 0, sizeof(env));
		if (rel->tsig != NULL &&
		    sign_tsig_parse(rel->tsig, rel->tsig_len, &env, &st, &e) == 0 &&
		    st.manifest_sha256[0] == '\0') {
			p->ts_state = -1;
			log_info("%s: its signature does not cover its files.json (no "
			    "manifest_sha256): sending it whole where the signature goes", rel->path);
		}
		sign_envelope_free(&env);
	}
	ok = p->ts_state == 1;
	pthread_mutex_unlock(&p->lock);
	return ok;
}

/*
 * Remove what a master killed before it could clean up left under ROOT:
 * tandem-NAME-PID-XXXXXX directories of this user whose PID no longer runs.
 * A PID taken again by another process keeps its directory until that one
 * ends too; a failure here costs disk space only, so it is logged and no more.
 */
static void
swarm_tmpdir_sweep(const char *root, const char *name)
{
	char prefix[64], path[PATH_MAX];
	size_t plen;
	struct dirent *de;
	struct stat st;
	DIR *d;
	int n = snprintf(prefix, sizeof(prefix), "tandem-%s-", name);

	if (n < 0 || (size_t)n >= sizeof(prefix) || (d = opendir(root)) == NULL)
		return;
	plen = (size_t)n;
	while ((de = readdir(d)) != NULL) {
		char *end;
		long pid;

		if (strncmp(de->d_name, prefix, plen) != 0)
			continue;
		errno = 0;
		pid = strtol(de->d_name + plen, &end, 10);
		if (errno != 0 || end == de->d_name + plen || pid <= 0 || pid > INT_MAX ||
		    *end != '-' || strlen(end + 1) != 6 || (pid_t)pid == getpid())
			continue;
		if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
		    !S_ISDIR(st.st_mode) || st.st_uid != geteuid())
			continue;
		n = snprintf(path, sizeof(path), "%s/%s", root, de->d_name);
		if (n < 0 || (size_t)n >= sizeof(path))
			continue;
		if (fs_rmtree(path) != 0)
			log_warn("remove %s (left by a master that ended early)", path);
		else
			log_info("removed %s, left by a master (pid %ld) that ended early", path, pid);
	}
	closedir(d);
}

int
swarm_tmpdir_make(const char *name, char *buf, size_t len)
{
	char prefix[128];
	int n = snprintf(prefix, sizeof(prefix), "tandem-%s-%ld-", name, (long)getpid());

	if (n < 0 || (size_t)n >= sizeof(prefix)) {
		buf[0] = '\0';
		errno = ENAMETOOLONG;
		return -1;
	}
	swarm_tmpdir_sweep(fs_tmp_root(), name);
	return fs_mkdtemp(prefix, buf, len);
}

static int
str_ptr_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Bases (the plan's "bases") by their missing digest. */
static int
plan_base_cmp(const void *a, const void *b)
{
	return strcmp(((const struct delta_pack_base *)a)->target,
	    ((const struct delta_pack_base *)b)->target);
}

/*
 * The key of a set of missing digests and their bases: sorted, unique,
 * whatever order the plan gave (MISSING and BASES are reordered here).
 */
static int
delta_set_key(const char **missing, size_t n, struct delta_pack_base *bases, size_t nb,
    char key[DIGEST_HEX_LEN + 1])
{
	struct digest d;
	int rc;

	qsort(missing, n, sizeof(*missing), str_ptr_cmp);
	if (nb > 0) {
		qsort(bases, nb, sizeof(*bases), plan_base_cmp);
	}
	digest_init(&d);
	for (size_t i = 0; i < n; i++) {
		if (i > 0 && strcmp(missing[i - 1], missing[i]) == 0) {
			continue;
		}
		digest_update(&d, missing[i], strlen(missing[i]));
		digest_update(&d, "\n", 1);
	}
	for (size_t i = 0; i < nb; i++) {
		digest_update(&d, "b ", 2);
		digest_update(&d, bases[i].target, strlen(bases[i].target));
		digest_update(&d, " ", 1);
		digest_update(&d, bases[i].base, strlen(bases[i].base));
		digest_update(&d, "\n", 1);
	}
	rc = digest_final(&d, key);
	digest_free(&d);
	return rc;
}

struct swarm_deltas *
swarm_deltas_new(void)
{
	struct swarm_deltas *ds = calloc(1, sizeof(*ds));

	if (ds == NULL) {
		return NULL;
	}
	if (pthread_mutex_init(&ds->lock, NULL) != 0) {
		free(ds);
		return NULL;
	}
	if (pthread_cond_init(&ds->built, NULL) != 0) {
		pthread_mutex_destroy(&ds->lock);
		free(ds);
		return NULL;
	}
	return ds;
}

void
swarm_deltas_free(struct swarm_deltas *ds)
{
	if (ds == NULL) {
		return;
	}
	while (ds->list != NULL) {
		struct swarm_delta *d = ds->list;

		ds->list = d->next;
		free(d);
	}
	if (ds->dd_state == 1 && fs_rmtree(ds->dir) != 0) {
		log_warnx("%s: %s", ds->dir, strerror(errno));
	}
	pthread_cond_destroy(&ds->built);
	pthread_mutex_destroy(&ds->lock);
	free(ds);
}

/*
 * The delta of the release for the N digests MISSING (reordered here), built
 * once per set into the deltas' directory (made at the first need): the
 * first host to need a set builds it, a host needing the same set meanwhile
 * waits for it. Returns the entry (built, state 1), or NULL when it cannot be
 * built (logged; the release then goes whole). Entries live as long as DS.
 */
static const struct swarm_delta *
deltas_get(struct swarm_deltas *ds, const struct swarm_job *j, const char *tgz, const char *fj,
    size_t fj_len, const char **missing, size_t n, struct delta_pack_base *bases, size_t nb,
    const struct delta_pack_patches *pp, const struct delta_pack_prefetch *pf)
{
	struct swarm_delta *d;
	struct err e = ERR_INIT;
	char key[DIGEST_HEX_LEN + 1];
	int state, from_pf = 0;

	if (delta_set_key(missing, n, bases, nb, key) != 0) {
		return NULL;
	}
	pthread_mutex_lock(&ds->lock);
	for (d = ds->list; d != NULL && strcmp(d->key, key) != 0; d = d->next) {
	}
	if (d != NULL) {
		while (d->state == 0) {
			pthread_cond_wait(&ds->built, &ds->lock);
		}
		state = d->state;
		pthread_mutex_unlock(&ds->lock);
		if (state == 1) {
			log_info("%s: the delta of an earlier host with the same plan (%llu bytes)",
			    j->host.name, d->res.size);
		}
		return state == 1 ? d : NULL;
	}
	if (ds->dd_state == 0) {
		ds->dd_state = swarm_tmpdir_make("delta", ds->dir, sizeof(ds->dir)) == 0 ? 1 : -1;
		if (ds->dd_state < 0) {
			log_warnx("a directory for deltas: %s; pushing releases whole", strerror(errno));
		}
	}
	d = ds->dd_state == 1 ? calloc(1, sizeof(*d)) : NULL;
	if (d == NULL || snprintf(d->path, sizeof(d->path), "%s/delta-%u.tar.gz", ds->dir,
	    ds->n) >= (int)sizeof(d->path)) {
		pthread_mutex_unlock(&ds->lock);
		free(d);
		return NULL;
	}
	memcpy(d->key, key, sizeof(d->key));
	d->next = ds->list;
	ds->list = d;
	ds->n++;
	pthread_mutex_unlock(&ds->lock);

	/* Built outside the lock: other hosts go on (and wait above only for this set). */
	/* From what the release's check kept when it has every file: no pass over the release. */
	state = delta_pack_write_pf(tgz, fj, fj_len, missing, n, pp, pf, d->path, &d->res, &from_pf,
	    &e) == 0 ? 1 : -1;
	if (state < 0) {
		log_warnx("%s: cannot build the delta (%s); sending the full release", j->host.name,
		    err_msg(&e));
	} else {
		log_info("%s: built a delta of %zu files, %llu bytes (%zu of them as patches, %llu "
		    "bytes)%s", j->host.name, d->res.files, d->res.size, d->res.patched,
		    d->res.patch_bytes, from_pf ? " from the files the check kept" : "");
	}
	pthread_mutex_lock(&ds->lock);
	d->state = state;
	pthread_cond_broadcast(&ds->built);
	pthread_mutex_unlock(&ds->lock);
	return state == 1 ? d : NULL;
}

/* What the command's check of the release kept for its deltas, or NULL. */
static const struct delta_pack_prefetch *
pool_prefetch(const struct pool *p)
{
	const struct swarm_release_file *rel = p->o->release, *chk = p->c->checked;

	if (rel->prefetch != NULL) {
		return rel->prefetch;
	}
	return chk != NULL && chk->prefetch != NULL && strcmp(chk->sha256, rel->sha256) == 0
	    ? chk->prefetch : NULL;
}

/*
 * Ask the host's plan for FJ at PLAN (the agent's releases' route, or the
 * updater's own for a self-update) and get the delta of what it lacks
 * (deltas_get: built once per set of missing files per command).
 * Returns 1 with the delta (*OUT its path, *SIZE bytes), 0 when the full
 * release is to be sent (no plan route, a plan error, a delta not clearly
 * smaller), logged at debug level when it is unexpected.
 */
static int
plan_delta(struct pool *p, struct swarm_job *j, const char *plan, const char *fj, size_t fj_len,
    const char **out, uint64_t *size)
{
	static const char *const hdrs[] = { "Content-Type: application/json", NULL };
	static const char *const hdrs_gz[] = { "Content-Type: application/json",
		"Content-Encoding: gzip", NULL };
	const struct swarm_release_file *rel = p->o->release;
	/* An updater that lists plan_gzip takes files.json compressed; the others as it is. */
	const int gz = p->fjz != NULL && j->have_health && j->health.has_plan_gzip;
	const char *body = gz ? p->fjz : fj;
	const size_t body_len = gz ? p->fjz_len : fj_len;
	struct httpc_response resp;
	struct httpc_target t;
	struct swarm_target_buf tb;
	/* An updater that lists zstd_patch names the bases patches may be made against. */
	const int zp = j->have_health && j->health.has_zstd_patch;
	const struct swarm_release *slots[2] = { &j->health.active, &j->health.prev };
	const int have_slot[2] = { j->have_health && j->health.have_active,
		j->have_health && j->health.have_prev };
	const struct swarm_delta *d;
	struct err e = ERR_INIT;
	const char **missing = NULL;
	struct delta_pack_base *bases = NULL;
	struct delta_pack_patches pp;
	char url[64], src[2][PATH_MAX];
	const char *srcs[2];
	cJSON *doc = NULL, *arr, *it, *mb, *rb, *bo;
	size_t n = 0, nb = 0;
	int rc = 0;

	memset(&resp, 0, sizeof(resp));
	memset(&pp, 0, sizeof(pp));
	if (swarm_target(&j->host, 0, &t, &tb, p->c->timeout_ms, &e) != 0) {
		return 0;
	}
	if (snprintf(url, sizeof(url), "%s%s", plan, zp ? "?bases=1" : "") >= (int)sizeof(url)) {
		return 0;
	}
	set_phase(p, j, SWARM_PH_CONNECTING);
	j->bytes_sent += body_len;
	if (httpc_fetch(p->c->tls, &t, "POST", url, gz ? hdrs_gz : hdrs, body, body_len, &resp,
	    &e) != 0) {
		log_debug("%s: no plan (%s); sending the full release", j->host.name, err_msg(&e));
		goto out;
	}
	if (resp.status != 200) {
		/* 404: an updater from before planned pushes (or planned self-updates). */
		if (resp.status != 404) {
			log_debug("%s: plan refused (HTTP %d); sending the full release",
			    j->host.name, resp.status);
		}
		goto out;
	}
	doc = json_parse_object(resp.body, resp.body_len, &e);
	arr = doc != NULL ? cJSON_GetObjectItemCaseSensitive(doc, "missing") : NULL;
	if (!cJSON_IsArray(arr)) {
		log_debug("%s: a plan without \"missing\"; sending the full release", j->host.name);
		goto out;
	}
	/*
	 * The host lacks 90 % of the release's file bytes or more: its delta
	 * would be about as large as the release, and building it would cost a
	 * pass over the whole release for nothing. Even with bases to patch
	 * against: patching nearly every file costs both sides more time than
	 * the whole release's transfer saves (every file is read, compressed,
	 * decompressed and hashed once more), so the release goes whole.
	 */
	mb = cJSON_GetObjectItemCaseSensitive(doc, "missing_bytes");
	rb = cJSON_GetObjectItemCaseSensitive(doc, "reuse_bytes");
	if (cJSON_IsNumber(mb) && cJSON_IsNumber(rb) && mb->valuedouble > 0 &&
	    rb->valuedouble >= 0 && mb->valuedouble * 10 >= (mb->valuedouble + rb->valuedouble) * 9) {
		log_debug("%s: the host lacks %.0f of the release's %.0f bytes of files; sending "
		    "the full release", j->host.name, mb->valuedouble, mb->valuedouble +
		    rb->valuedouble);
		goto out;
	}
	missing = calloc((size_t)cJSON_GetArraySize(arr) + 1, sizeof(*missing));
	if (missing == NULL) {
		goto out;
	}
	cJSON_ArrayForEach(it, arr) {
		if (cJSON_IsString(it)) {
			missing[n++] = it->valuestring;
		}
	}
	/*
	 * Bases: patches only against a release the master holds itself, in its
	 * store: the host's active and previous releases (by their digests).
	 */
	bo = zp ? cJSON_GetObjectItemCaseSensitive(doc, "bases") : NULL;
	if (cJSON_IsObject(bo) && cJSON_GetArraySize(bo) > 0) {
		bases = calloc((size_t)cJSON_GetArraySize(bo), sizeof(*bases));
		if (bases == NULL) {
			goto out;
		}
		cJSON_ArrayForEach(it, bo) {
			if (cJSON_IsString(it) && it->string != NULL &&
			    strlen(it->string) == DIGEST_HEX_LEN &&
			    strlen(it->valuestring) == DIGEST_HEX_LEN) {
				bases[nb].target = it->string;
				bases[nb++].base = it->valuestring;
			}
		}
		for (size_t s = 0; s < 2; s++) {
			if (have_slot[s] && strlen(slots[s]->sha256) == DIGEST_HEX_LEN &&
			    strcmp(slots[s]->sha256, rel->sha256) != 0 &&
			    (pp.n_sources == 0 || strcmp(slots[s]->sha256, slots[0]->sha256) != 0) &&
			    release_store_path(p->c->home, slots[s]->sha256, src[pp.n_sources],
			    sizeof(src[0])) == 0 && access(src[pp.n_sources], R_OK) == 0) {
				srcs[pp.n_sources] = src[pp.n_sources];
				pp.n_sources++;
			}
		}
	}
	pp.v = bases;
	pp.n = nb;
	pp.sources = srcs;
	d = deltas_get(p->deltas, j, rel->path, fj, fj_len, missing, n, bases, nb, &pp,
	    pool_prefetch(p));
	if (d == NULL) {
		goto out;
	}
	/* Not clearly smaller: the full release costs the host no copying. */
	if (d->res.size > rel->size / 10 * 9) {
		log_debug("%s: the delta is %llu of %llu bytes; sending the full release",
		    j->host.name, d->res.size, (unsigned long long)rel->size);
		goto out;
	}
	*out = d->path;
	*size = d->res.size;
	rc = 1;
out:
	free(bases);
	free(missing);
	cJSON_Delete(doc);
	httpc_response_free(&resp);
	return rc;
}

/*
 * Whether the release's signature goes with J's push; the push and the dry
 * run both ask here. An updater from before signatures refuses the unknown
 * tsig field, so it goes only where /health says signatures are known. When
 * the updater cannot be asked (no /health yet, none now), it goes: the push
 * says why it failed. 0 for an unsigned release.
 */
static int
tsig_goes(struct pool *p, struct swarm_job *j)
{
	struct err e = ERR_INIT;

	if (p->o->release->tsig == NULL) {
		return 0;
	}
	if (!j->have_health) {
		set_phase(p, j, SWARM_PH_CONNECTING);
		/* Why it could not be asked does not matter here. */
		if (fetch_health(p, j, &e) != 0) {
			return 1;
		}
	}
	return j->health.signature[0] != '\0';
}

/*
 * The files.json to plan a push with (its length in *LEN), or NULL when the
 * release goes whole: --full, no files.json, or its signature goes along
 * (TSIG, from tsig_goes) and does not cover its files.
 */
static const char *
plan_files(struct pool *p, int tsig, size_t *len)
{
	if (p->o->full || (tsig && !pool_tsig_covers_files(p))) {
		return NULL;
	}
	return pool_files_json(p, len);
}

/*
 * The release to J's host, the agent's (/update) or with SELF the updater's
 * own (/update-self, planned against the updater's releases): planned when
 * it can be, else (or after a refusal) full.
 */
static void
push_update(struct pool *p, struct swarm_job *j, int self)
{
	const char *path = self ? "/update-self" : "/update";
	struct swarm_result *r = self ? &j->self : &j->agent;
	const char **transfer = self ? &j->self_transfer : &j->transfer;
	const char *dpath = NULL;
	const char *fj;
	size_t fj_len = 0;
	uint64_t size = 0;

	fj = plan_files(p, j->tsig_sent, &fj_len);
	if (fj != NULL && plan_delta(p, j, self ? "/update-self/plan" : "/update/plan", fj, fj_len,
	    &dpath, &size) == 1) {
		j->upload_path = dpath;
		j->upload_size = size;
		j->upload_delta = 1;
		*transfer = "planned";
		push_one(p, j, path, self, r);
		j->upload_path = NULL;
		j->upload_delta = 0;
		if (r->outcome == SWARM_FAILED && r->http_status == 409 &&
		    (strstr(r->reason, "delta_mismatch") != NULL ||
		    strstr(r->detail, "delta_mismatch") != NULL)) {
			log_warnx("%s: planned %s refused (%s%s%s); sending the full release",
			    j->host.name, self ? "self-update" : "push", r->reason,
			    r->detail[0] != '\0' ? ": " : "", r->detail);
			*transfer = "fallback";
			push_one(p, j, path, self, r);
		}
	} else {
		*transfer = "full";
		push_one(p, j, path, self, r);
	}
	/* BYTES_SENT counts the job's requests so far: with SELF, the agent's push's too. */
	log_info("%s: %s %s, %llu bytes sent (the release is %llu)", j->host.name, *transfer,
	    self ? "self-update" : "push", (unsigned long long)j->bytes_sent,
	    (unsigned long long)p->o->release->size);
}

/*
 * Dry run: how the release would go to J's answering host. Unless --full,
 * ask the plan (it changes nothing on the host) and build the delta in a
 * temporary directory only to count it, so the bytes are those a push would
 * send now; the whole release otherwise. A host running the release already
 * would get nothing (no transfer).
 */
static void
job_dry_plan(struct pool *p, struct swarm_job *j)
{
	const char *dpath = NULL;
	const char *fj = NULL;
	size_t fj_len = 0;
	uint64_t size = 0, sent = j->bytes_sent;

	if (p->o->release == NULL || !j->have_health || j->same_sha) {
		return;
	}
	fj = plan_files(p, tsig_goes(p, j), &fj_len);
	if (fj != NULL && plan_delta(p, j, "/update/plan", fj, fj_len, &dpath, &size) == 1) {
		j->dry_transfer = "planned";
	} else {
		j->dry_transfer = "full";
		size = p->o->release->size;
	}
	/* The plan's request, if one was made, counts as a push would count it. */
	j->dry_bytes = j->bytes_sent - sent + size;
}

/*
 * The self-update after the agent's push (--include-self). For a push the
 * hook settled from an earlier dispatch (J->resumed: the master died after
 * it), the updater's history under the same request id says whether the
 * self-update was sent: recorded, it is that record (never sent twice); not
 * recorded (or only a refused delta), it is sent now. An updater whose
 * history does not name self-updates cannot tell: never sent again.
 */
static void
job_self(struct pool *p, struct swarm_job *j)
{
	j->self_tried = 1;
	if (!j->resumed) {
		push_update(p, j, 1);
	} else if (j->request_id[0] == '\0' || !j->health.has_request_id ||
	    !j->health.has_self_request_id) {
		memset(&j->self, 0, sizeof(j->self));
		j->self.outcome = SWARM_FAILED;
		snprintf(j->self.reason, sizeof(j->self.reason), "outcome unknown: the master "
		    "stopped after the agent's push, and this updater's history does not name "
		    "self-updates");
	} else {
		int64_t budget = p->c->timeout_ms > SWARM_LOOKUP_MIN_MS ? p->c->timeout_ms
									: SWARM_LOOKUP_MIN_MS;

		set_phase(p, j, SWARM_PH_CONFIRMING);
		switch (swarm_request_lookup(p->c, &j->host, j->request_id, SWARM_REQ_SELF,
		    mono_ms() + budget, p->o->stop, &j->self)) {
		case SWARM_LOOKUP_FOUND:
		case SWARM_LOOKUP_FAILED:
			break;
		case SWARM_LOOKUP_ABSENT:
			log_info("%s: the updater has no self-update under request %s; sending it",
			    j->host.name, j->request_id);
			push_update(p, j, 1);
			break;
		}
	}
	if (j->self.outcome == SWARM_UPDATED) {
		/* The new updater must report the version it was queued with, off probation. */
		confirm_self(p, j, j->self.version);
	}
	log_push(p, j, j->self.outcome == SWARM_UPDATED ? "self_updated" : "self_failed", &j->self);
}

static void
job_update(struct pool *p, struct swarm_job *j)
{
	if (p->o->precheck && precheck(p, j) != 0) {
		return;
	}
	/* The hook first: it records the dispatch, or learns how an earlier one ended. */
	if (p->o->before_push != NULL && p->o->before_push(p->o->arg, j) != 0) {
		if (j->resumed && p->o->include_self && j->agent.outcome == SWARM_UPDATED) {
			j->tsig_sent = tsig_goes(p, j);
			job_self(p, j);
		}
		return;
	}
	j->tsig_sent = tsig_goes(p, j);
	if (p->o->precheck) {
		if (j->health.have_active &&
		    strcmp(j->health.active.sha256, p->o->release->sha256) == 0 && !p->o->force) {
			/* Nothing to install: the rollback point (prev) stays as it is. */
			memset(&j->agent, 0, sizeof(j->agent));
			j->agent.outcome = SWARM_ALREADY_ACTIVE;
			j->agent.http_status = 0;
			snprintf(j->agent.reason, sizeof(j->agent.reason), "already runs this release");
			snprintf(j->agent.version, sizeof(j->agent.version), "%s",
			    j->health.active.version);
			snprintf(j->agent.sha256, sizeof(j->agent.sha256), "%s",
			    j->health.active.sha256);
			return;
		}
	}
	push_update(p, j, 0);
	log_push(p, j, swarm_outcome_word(j->agent.outcome), &j->agent);
	if (j->agent.outcome == SWARM_ROLLED_BACK ||
	    (j->agent.outcome == SWARM_FAILED && j->agent.http_status != 0)) {
		fill_active(p, j);
	}
	if (!p->o->include_self || j->agent.outcome != SWARM_UPDATED) {
		return;
	}
	testhook_point("rollout.agent_answered");
	job_self(p, j);
}

/* POST /rollback (a rollout's revert), retrying a busy or unreachable host. */
static void
job_rollback(struct pool *p, struct swarm_job *j)
{
	struct swarm_ctx c = *p->c;
	struct httpc_response resp;
	char path[80];
	int attempt = 0;
	long after;

	if (p->o->precheck && precheck(p, j) != 0) {
		return;
	}
	if (p->o->before_push != NULL && p->o->before_push(p->o->arg, j) != 0) {
		return;
	}
	snprintf(path, sizeof(path), "/rollback%s%s",
	    j->request_id[0] != '\0' && j->health.has_request_id ? "?request_id=" : "",
	    j->request_id[0] != '\0' && j->health.has_request_id ? j->request_id : "");
	set_phase(p, j, SWARM_PH_INSTALLING);
	for (;;) {
		struct httpc_target t;
		struct swarm_target_buf tb;
		struct httpc_conn *conn = NULL;
		struct err he = ERR_INIT;
		int rc, retry = 0;

		attempt++;
		j->attempts++;
		if (swarm_target(&j->host, 0, &t, &tb, c.timeout_ms, &he) != 0) {
			result_transport(&j->agent, "no updater fingerprint", &he);
			return;
		}
		if (httpc_connect(c.tls, &t, &conn, &he) != 0) {
			result_transport(&j->agent, "unreachable", &he);
			if (he.kind == ERR_PIN_MISMATCH || retry_wait(p, attempt, 0) != 0) {
				return;
			}
			continue;
		}
		rc = httpc_request(conn, "POST", path, NULL, NULL, 0, &resp, &he);
		httpc_close(conn);
		if (rc != 0) {
			/* Sent, but no answer: the updater may have rolled back. */
			result_transport(&j->agent, "no answer", &he);
			if (j->request_id[0] != '\0' && j->health.has_request_id) {
				recover_lost(p, j, SWARM_REQ_ROLLBACK, &j->agent, &retry);
			}
			if (!retry || retry_wait(p, attempt, 0) != 0) {
				return;
			}
			continue;
		}
		swarm_classify_rollback(resp.status, resp.body, resp.body_len, resp.retry_after,
		    &j->agent);
		after = resp.status == 503 ? retry_after_s(resp.retry_after) : 0;
		httpc_response_free(&resp);
		if (after == 0 || retry_wait(p, attempt, after) != 0) {
			return;
		}
	}
}

/* Dry run: would the host accept the release's signature (or its absence)? */
static void
verdict(struct pool *p, struct swarm_job *j)
{
	const struct swarm_release_file *rel = p->o->release;
	struct release_sign_host h = {
		.mode = j->health.signature,
		.floor = j->health.security_floor,
		.keyring_version = j->health.keyring_version,
		.compatible = j->health.compatible,
	};

	j->signature_ok = release_sign_verdict(rel->keyring, rel->tsig, rel->tsig_len,
	    rel->sha256, rel->size, SIGN_KIND_AGENT | (p->o->include_self ? SIGN_KIND_UPDATER : 0),
	    &h, j->signature, sizeof(j->signature));
}

/* GET /health of the updater into J (dry run and status). */
static void
job_health(struct pool *p, struct swarm_job *j)
{
	struct err e = ERR_INIT;
	int rc;

	j->pin_ok = -1;
	set_phase(p, j, SWARM_PH_CONNECTING);
	rc = swarm_host_health(p->c, &j->host, p->c->timeout_ms < SWARM_STATUS_TIMEOUT_MS
	    ? p->c->timeout_ms : SWARM_STATUS_TIMEOUT_MS, &j->health, &e);
	if (rc != 0) {
		if (e.kind == ERR_PIN_MISMATCH) {
			j->reachable = 1;
			j->pin_ok = 0;
			snprintf(j->error, sizeof(j->error), "pin mismatch: %s", err_msg(&e));
		} else {
			/* -2: it answered, but not with a usable /health. */
			j->reachable = rc == -2;
			j->pin_ok = rc == -2 ? 1 : -1;
			snprintf(j->error, sizeof(j->error), "%s", err_msg(&e));
		}
		return;
	}
	j->reachable = 1;
	j->pin_ok = 1;
	j->have_health = 1;
	if (p->o->release != NULL && j->health.have_active &&
	    strcmp(j->health.active.sha256, p->o->release->sha256) == 0) {
		j->same_sha = 1;
	}
	if (p->o->release != NULL) {
		verdict(p, j);
	}
}

/* Status: the agent's own /health, pinned to its enrolled certificate. */
static void
job_agent(struct pool *p, struct swarm_job *j)
{
	struct httpc_response resp;
	struct httpc_target t;
	struct err e = ERR_INIT;
	struct swarm_target_buf tb;
	cJSON *tree;

	memset(&resp, 0, sizeof(resp));
	if (swarm_target(&j->host, 1, &t, &tb, SWARM_STATUS_TIMEOUT_MS, &e) != 0) {
		snprintf(j->agent_reach, sizeof(j->agent_reach), "no agent fingerprint");
		return;
	}
	t.connect_timeout_ms = 5000;
	if (httpc_fetch(p->c->tls, &t, "GET", "/health", NULL, NULL, 0, &resp, &e) != 0) {
		snprintf(j->agent_reach, sizeof(j->agent_reach), "%.250s", err_msg(&e));
		return;
	}
	tree = json_parse_object(resp.body, resp.body_len, &e);
	if (resp.status != 200 || tree == NULL) {
		snprintf(j->agent_reach, sizeof(j->agent_reach), "agent /health: HTTP %d%s%.200s",
		    resp.status, tree == NULL ? ", " : "", tree == NULL ? err_msg(&e) : "");
	} else {
		const char *v = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(tree,
		    "version"));
		snprintf(j->agent_version, sizeof(j->agent_version), "%s", v != NULL ? v : "");
		v = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(tree, "cert_not_after"));
		snprintf(j->agent_cert_not_after, sizeof(j->agent_cert_not_after), "%s",
		    v != NULL ? v : "");
	}
	cJSON_Delete(tree);
	httpc_response_free(&resp);
}

/* POST one keyring version (the master's file) to the host. 0 when accepted. */
static int
post_keyring(struct pool *p, struct swarm_job *j, int64_t version)
{
	static const char *const headers[] = { "Content-Type: application/json", NULL };
	struct httpc_response resp;
	struct httpc_target t;
	struct err e = ERR_INIT;
	struct swarm_target_buf tb;
	char *doc = NULL;
	size_t len = 0;
	int rc = -1;

	memset(&resp, 0, sizeof(resp));
	if (keystore_read(p->c->home, version, &doc, &len, &e) != 0) {
		snprintf(j->error, sizeof(j->error), "%s", err_msg(&e));
		return -1;
	}
	if (swarm_target(&j->host, 0, &t, &tb, p->c->timeout_ms, &e) != 0 ||
	    httpc_fetch(p->c->tls, &t, "POST", "/keyring", headers, doc, len, &resp, &e) != 0) {
		snprintf(j->error, sizeof(j->error), "POST /keyring (version %lld): %s",
		    (long long)version, err_msg(&e));
		goto out;
	}
	if (resp.status != 200) {
		struct swarm_result r;

		swarm_classify_rollback(resp.status, resp.body, resp.body_len, NULL, &r);
		snprintf(j->error, sizeof(j->error), "POST /keyring (version %lld): %.200s%s%.700s",
		    (long long)version, r.reason, r.detail[0] != '\0' ? ": " : "", r.detail);
		goto out;
	}
	rc = 0;
out:
	free(doc);
	httpc_response_free(&resp);
	return rc;
}

/*
 * Keyring: bring the host to the master's current version, one version at
 * a time (a host takes only the next one); a host without a keyring gets
 * the current one.
 */
static void
job_keyring(struct pool *p, struct swarm_job *j)
{
	int64_t latest = p->o->keyring_version, v;
	struct err e = ERR_INIT;

	set_phase(p, j, SWARM_PH_CONNECTING);
	j->keyring_from = j->keyring_to = -1;
	if (fetch_health(p, j, &e) != 0) {
		snprintf(j->error, sizeof(j->error), "%s", err_msg(&e));
		return;
	}
	j->reachable = 1;
	if (j->health.signature[0] == '\0' || j->health.keyring_version < 0) {
		snprintf(j->error, sizeof(j->error), "the updater (version %s) does not know "
		    "keyrings: update it first", j->health.version);
		return;
	}
	j->keyring_from = j->keyring_to = j->health.keyring_version;
	if (j->keyring_from > latest) {
		snprintf(j->error, sizeof(j->error), "the host has keyring version %lld, newer than "
		    "the master's %lld", j->keyring_from, (long long)latest);
		return;
	}
	set_phase(p, j, SWARM_PH_INSTALLING);
	for (v = j->keyring_from == 0 ? latest : j->keyring_from + 1; v <= latest; v++) {
		if (post_keyring(p, j, v) != 0) {
			return;
		}
		j->keyring_to = v;
	}
}

/* The next job for worker SLOT: from the array, or from the source into OWN. */
static struct swarm_job *
take_job(struct pool *p, size_t slot, struct swarm_job *own)
{
	struct swarm_job *j = NULL;

	pthread_mutex_lock(&p->lock);
	if (p->jobs != NULL) {
		if (p->next < p->n) {
			j = &p->jobs[p->next++];
		}
	} else if (!p->exhausted) {
		/* The source is asked under the lock: it need not be thread-safe. */
		memset(own, 0, sizeof(*own));
		if (p->o->next(p->o->arg, own) == 1) {
			j = own;
			p->active[slot] = own;
			p->n++;
		} else {
			p->exhausted = 1;
		}
	}
	pthread_mutex_unlock(&p->lock);
	return j;
}

struct worker_arg {
	struct pool *p;
	size_t slot;
};

static void *
worker(void *arg)
{
	struct worker_arg *wa = arg;
	struct pool *p = wa->p;
	struct swarm_job *own = NULL, *j;

	if (p->jobs == NULL) {
		own = malloc(sizeof(*own));
		if (own == NULL) {
			log_warnx("out of memory");
			return NULL;
		}
	}
	while ((j = take_job(p, wa->slot, own)) != NULL) {
		pthread_mutex_lock(&p->lock);
		j->started_ms = mono_ms();
		pthread_mutex_unlock(&p->lock);
		switch (j->kind) {
		case SWARM_JOB_UPDATE:
			job_update(p, j);
			break;
		case SWARM_JOB_DRY_RUN:
			job_health(p, j);
			job_dry_plan(p, j);
			break;
		case SWARM_JOB_STATUS:
			job_health(p, j);
			job_agent(p, j);
			break;
		case SWARM_JOB_KEYRING:
			job_keyring(p, j);
			break;
		case SWARM_JOB_ROLLBACK:
			job_rollback(p, j);
			break;
		case SWARM_JOB_CALL:
			if (p->o->call != NULL) {
				p->o->call(p->o->arg, j);
			}
			break;
		}
		pthread_mutex_lock(&p->lock);
		j->elapsed_ms = mono_ms() - j->started_ms;
		pthread_mutex_unlock(&p->lock);
		set_phase(p, j, SWARM_PH_DONE);
		if (p->o->done != NULL) {
			pthread_mutex_lock(&p->done_lock);
			p->o->done(p->o->arg, j);
			pthread_mutex_unlock(&p->done_lock);
		}
		pthread_mutex_lock(&p->lock);
		p->done++;
		p->failed += (size_t)job_failed(j);
		if (p->jobs == NULL) {
			p->active[wa->slot] = NULL;
		}
		pthread_cond_signal(&p->cond);
		pthread_mutex_unlock(&p->lock);
	}
	free(own);
	return NULL;
}

int
swarm_run(struct swarm_ctx *c, struct swarm_job *jobs, size_t n, const struct swarm_pool_opts *o)
{
	struct pool p;
	pthread_t tids[SWARM_MAX_PARALLEL];
	struct worker_arg wargs[SWARM_MAX_PARALLEL];
	struct swarm_job *actives[SWARM_MAX_PARALLEL];
	struct swarm_deltas *own_deltas;
	size_t nthreads = 0, want, i;
	struct timespec ts;
	int rc = 0;

	memset(&p, 0, sizeof(p));
	memset(actives, 0, sizeof(actives));
	p.c = c;
	p.jobs = o->next != NULL ? NULL : jobs;
	p.n = o->next != NULL ? 0 : n;
	p.active = actives;
	p.o = o;
	if (pthread_mutex_init(&p.lock, NULL) != 0) {
		return -1;
	}
	if (pthread_cond_init(&p.cond, NULL) != 0) {
		pthread_mutex_destroy(&p.lock);
		return -1;
	}
	if (pthread_mutex_init(&p.done_lock, NULL) != 0) {
		pthread_cond_destroy(&p.cond);
		pthread_mutex_destroy(&p.lock);
		return -1;
	}
	p.deltas = o->release != NULL && o->release->deltas != NULL ? o->release->deltas : NULL;
	own_deltas = o->release != NULL && p.deltas == NULL ? swarm_deltas_new() : NULL;
	if (o->release != NULL && p.deltas == NULL && own_deltas == NULL) {
		pthread_mutex_destroy(&p.done_lock);
		pthread_cond_destroy(&p.cond);
		pthread_mutex_destroy(&p.lock);
		return -1;
	}
	if (own_deltas != NULL) {
		p.deltas = own_deltas;
	}
	want = o->parallel < 1 ? 1 : (size_t)o->parallel;
	if (o->next == NULL && want > n) {
		want = n;
	}
	if (want > ARRAY_LEN(tids)) {
		want = ARRAY_LEN(tids);
	}
	p.nslots = want;
	for (i = 0; i < want; i++) {
		wargs[i].p = &p;
		wargs[i].slot = i;
		if (pthread_create(&tids[i], NULL, worker, &wargs[i]) != 0) {
			break;
		}
		nthreads++;
	}
	if (nthreads == 0 && want > 0) {
		/* No thread at all: do the work here rather than fail. */
		wargs[0].p = &p;
		wargs[0].slot = 0;
		(void)worker(&wargs[0]);
	}
	pthread_mutex_lock(&p.lock);
	/* Array: until every job is done. Streaming: until the source is empty and all finished. */
	while (p.jobs != NULL ? p.done < p.n : !(p.exhausted && p.done == p.n) && nthreads > 0) {
		if (c->tty && !c->quiet) {
			redraw(&p);
		}
		timespec_after_ms(CLOCK_REALTIME, SWARM_REDRAW_MS, &ts);
		pthread_cond_timedwait(&p.cond, &p.lock, &ts);
	}
	if (c->tty && !c->quiet) {
		redraw(&p);
	}
	pthread_mutex_unlock(&p.lock);
	for (i = 0; i < nthreads; i++) {
		if (pthread_join(tids[i], NULL) != 0) {
			rc = -1;
		}
	}
	pthread_cond_destroy(&p.cond);
	pthread_mutex_destroy(&p.done_lock);
	pthread_mutex_destroy(&p.lock);
	free(p.fj);
	free(p.fjz);
	/* The pool's own deltas go with their directory; the release's stay for its next pool. */
	swarm_deltas_free(own_deltas);
	return rc;
}
