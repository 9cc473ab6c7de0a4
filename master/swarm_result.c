#include "master/swarm_result.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cJSON.h"
#include "common/json.h"
#include "common/log.h"
#include "master/cli.h"

const char *
swarm_outcome_word(enum swarm_outcome o)
{
	switch (o) {
	case SWARM_UPDATED:
		return "updated";
	case SWARM_ROLLED_BACK:
		return "rolled_back";
	case SWARM_ALREADY_ACTIVE:
		return "already_active";
	case SWARM_FAILED:
		break;
	}
	return "failed";
}

/*
 * Worker text goes to terminals: control bytes (escape sequences included)
 * become '?', line breaks and tabs a blank.
 */
static void
sanitize(char *s)
{
	for (; *s != '\0'; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '\n' || ch == '\r' || ch == '\t') {
			*s = ' ';
		} else if (ch < 0x20 || ch == 0x7f) {
			*s = '?';
		}
	}
}

/* Copy a string member KEY of OBJ into BUF; "" when absent or not a string. */
static void
get_str(const cJSON *obj, const char *key, char *buf, size_t len)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
	const char *s = cJSON_GetStringValue(it);

	buf[0] = '\0';
	if (s != NULL && len > 0) {
		/* Cut silently: these are display strings. */
		snprintf(buf, len, "%s", s);
		sanitize(buf);
	}
}

static void
read_release(const cJSON *o, struct swarm_release *r)
{
	memset(r, 0, sizeof(*r));
	if (!cJSON_IsObject(o)) {
		return;
	}
	get_str(o, "slot", r->slot, sizeof(r->slot));
	get_str(o, "sha", r->sha, sizeof(r->sha));
	get_str(o, "sha256", r->sha256, sizeof(r->sha256));
	get_str(o, "version", r->version, sizeof(r->version));
	get_str(o, "installed_at", r->installed_at, sizeof(r->installed_at));
}

static void
result_init(struct swarm_result *out, int status)
{
	memset(out, 0, sizeof(*out));
	out->outcome = SWARM_FAILED;
	out->http_status = status;
}

/*
 * The body of an error answer: {"detail":{"error","kind","stderr",
 * "rolled_back"[,"probe"]}} (tandem) or {"detail":"text"} (older peers).
 * OUT->detail gets the error, then each part under its own name: after a
 * rollback the restored release's /health answer ("probe", short), then the
 * failing release's own output ("stderr": what the new agent or the
 * preflight wrote; long, so last). Sets *ROLLED_BACK; returns the error text (borrowed from
 * TREE) or NULL.
 */
static const char *
read_detail(const cJSON *tree, struct swarm_result *out, int *rolled_back, const char **kind)
{
	const cJSON *d = cJSON_GetObjectItemCaseSensitive(tree, "detail");
	const char *error = NULL, *serr = NULL, *probe = NULL;
	size_t used;

	*rolled_back = 0;
	*kind = NULL;
	if (cJSON_IsString(d)) {
		error = d->valuestring;
	} else if (cJSON_IsObject(d)) {
		error = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(d, "error"));
		serr = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(d, "stderr"));
		probe = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(d, "probe"));
		*rolled_back = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(d, "rolled_back"));
		*kind = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(d, "kind"));
	}
	if (error == NULL) {
		return NULL;
	}
	snprintf(out->detail, sizeof(out->detail), "%s", error);
	used = strlen(out->detail);
	if (probe != NULL && *probe != '\0' && used < sizeof(out->detail)) {
		snprintf(out->detail + used, sizeof(out->detail) - used,
		    "; the restored release's /health: %s", probe);
		used = strlen(out->detail);
	}
	if (serr != NULL && *serr != '\0' && used < sizeof(out->detail)) {
		snprintf(out->detail + used, sizeof(out->detail) - used,
		    "; output of the failing release: %s", serr);
	}
	return error;
}

/* Body text for a reason: printable prefix of BODY. */
static void
body_excerpt(const char *body, size_t len, char *buf, size_t buflen)
{
	size_t i, n = 0;

	for (i = 0; i < len && n + 1 < buflen && n < 160; i++) {
		unsigned char ch = (unsigned char)body[i];
		buf[n++] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
	}
	buf[n] = '\0';
}

/* A success body of /update or /rollback: STATUS word expected, release object. */
static int
read_success(const cJSON *tree, const char *want, struct swarm_result *out)
{
	const char *st = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(tree, "status"));
	const cJSON *rel = cJSON_GetObjectItemCaseSensitive(tree, "release");
	struct swarm_release r;

	if (st == NULL || strcmp(st, want) != 0 || !cJSON_IsObject(rel)) {
		return -1;
	}
	read_release(rel, &r);
	snprintf(out->version, sizeof(out->version), "%s", r.version);
	snprintf(out->sha256, sizeof(out->sha256), "%s", r.sha256);
	return 0;
}

enum classify_kind { CL_UPDATE, CL_SELF, CL_ROLLBACK };

/* A queued self-update: {"status":"self_update_queued","to_version":V,...}. */
static int
read_self_queued(const cJSON *tree, struct swarm_result *out)
{
	const char *st = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(tree, "status"));
	const char *to = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(tree, "to_version"));
	struct swarm_release r;

	if (st == NULL || strcmp(st, "self_update_queued") != 0 || to == NULL || *to == '\0') {
		return -1;
	}
	read_release(cJSON_GetObjectItemCaseSensitive(tree, "release"), &r);
	snprintf(out->version, sizeof(out->version), "%s", to);
	snprintf(out->sha256, sizeof(out->sha256), "%s", r.sha256);
	return 0;
}

static void
classify(int status, const char *body, size_t len, const char *retry_after,
    enum classify_kind kind, struct swarm_result *out)
{
	const int rollback = kind == CL_ROLLBACK;
	struct err e = ERR_INIT;
	char excerpt[200];
	const char *error = NULL, *err_kind = NULL;
	cJSON *tree = NULL;
	int rolled_back = 0;

	result_init(out, status);
	if (body == NULL) {
		body = "";
		len = 0;
	}
	tree = json_parse_object(body, len, &e);
	if (tree == NULL) {
		body_excerpt(body, len, excerpt, sizeof(excerpt));
		snprintf(out->reason, sizeof(out->reason), "HTTP %d: malformed answer (%.200s)", status,
		    err_msg(&e));
		snprintf(out->detail, sizeof(out->detail), "%s", excerpt);
		return;
	}
	if (status == 200) {
		if (!rollback && read_success(tree, "already_active", out) == 0) {
			/* The host runs this release already: nothing was installed or restarted. */
			out->outcome = SWARM_ALREADY_ACTIVE;
			goto out;
		}
		if (read_success(tree, rollback ? "rolled_back" : "updated", out) == 0 ||
		    (kind == CL_SELF && read_self_queued(tree, out) == 0)) {
			out->outcome = SWARM_UPDATED;
		} else {
			snprintf(out->reason, sizeof(out->reason),
			    "HTTP 200 but the answer is not {\"status\":\"%s\",\"release\":{...}}",
			    rollback ? "rolled_back" : "updated");
			body_excerpt(body, len, out->detail, sizeof(out->detail));
		}
		goto out;
	}
	error = read_detail(tree, out, &rolled_back, &err_kind);
	if (!rollback && status == 409 && rolled_back) {
		out->outcome = SWARM_ROLLED_BACK;
		snprintf(out->reason, sizeof(out->reason), "new release failed, previous restored");
		goto out;
	}
	if (error == NULL) {
		body_excerpt(body, len, excerpt, sizeof(excerpt));
		snprintf(out->detail, sizeof(out->detail), "%s", excerpt);
	}
	switch (status) {
	case 400:
		snprintf(out->reason, sizeof(out->reason), "HTTP 400: request refused as malformed");
		break;
	case 403:
		snprintf(out->reason, sizeof(out->reason),
		    "HTTP 403: the updater does not accept this master");
		break;
	case 404:
		snprintf(out->reason, sizeof(out->reason), rollback
		    ? "HTTP 404: no previous release to roll back to"
		    : "HTTP 404: the updater does not offer this endpoint");
		break;
	case 409:
		/* A planned push refused before anything changed: the master sends it whole. */
		if (err_kind != NULL && strcmp(err_kind, "delta_mismatch") == 0) {
			snprintf(out->reason, sizeof(out->reason), "HTTP 409: delta_mismatch");
			break;
		}
		/* Otherwise the updater's 409 says rolled_back:true; anything else is odd. */
		snprintf(out->reason, sizeof(out->reason),
		    "HTTP 409: the release failed its probe (the answer does not say it was rolled "
		    "back)");
		break;
	case 500:
		/* Among others the "both bad" answer: new and restored release failed. */
		snprintf(out->reason, sizeof(out->reason), "HTTP 500: the updater failed (see detail)");
		break;
	case 413:
		snprintf(out->reason, sizeof(out->reason), "HTTP 413: release too large for the host");
		break;
	case 422:
		snprintf(out->reason, sizeof(out->reason), "HTTP 422: release refused as unsafe or invalid");
		break;
	case 503:
		/* Retry-After marks a busy updater; without it the detail says why. */
		if (retry_after != NULL && *retry_after != '\0') {
			snprintf(out->reason, sizeof(out->reason),
			    "HTTP 503: busy with another operation (retry after %.16s s)", retry_after);
		} else {
			snprintf(out->reason, sizeof(out->reason), "HTTP 503: the updater cannot do "
								   "this now");
		}
		break;
	case 507:
		snprintf(out->reason, sizeof(out->reason), "HTTP 507: not enough disk on the host");
		break;
	default:
		snprintf(out->reason, sizeof(out->reason), "HTTP %d", status);
		break;
	}
out:
	sanitize(out->detail);
	cJSON_Delete(tree);
}

void
swarm_classify_update(int status, const char *body, size_t len, const char *retry_after,
    struct swarm_result *out)
{
	classify(status, body, len, retry_after, CL_UPDATE, out);
}

void
swarm_classify_self(int status, const char *body, size_t len, const char *retry_after,
    struct swarm_result *out)
{
	classify(status, body, len, retry_after, CL_SELF, out);
}

void
swarm_classify_rollback(int status, const char *body, size_t len, const char *retry_after,
    struct swarm_result *out)
{
	classify(status, body, len, retry_after, CL_ROLLBACK, out);
}

/* A non-negative integer member KEY of OBJ, or -1 when absent or anything else. */
static long long
get_count(const cJSON *obj, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

	if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > (double)JSON_INT_MAX ||
	    v->valuedouble != (double)(long long)v->valuedouble) {
		return -1;
	}
	return (long long)v->valuedouble;
}

int
swarm_parse_health(const char *body, size_t len, struct swarm_health *out, struct err *err)
{
	const cJSON *rels, *it, *agent, *op, *upd;
	struct err e = ERR_INIT;
	char role[32], kind[48], phase[48];
	struct swarm_release r;
	cJSON *tree;

	memset(out, 0, sizeof(*out));
	tree = json_parse_object(body != NULL ? body : "", body != NULL ? len : 0, &e);
	if (tree == NULL) {
		err_set(err, ERR_PROTOCOL, "malformed /health answer: %s", err_msg(&e));
		return -1;
	}
	get_str(tree, "role", role, sizeof(role));
	rels = cJSON_GetObjectItemCaseSensitive(tree, "releases");
	if (strcmp(role, "updater") != 0 || !cJSON_IsArray(rels)) {
		err_set(err, ERR_PROTOCOL, "not an updater /health answer (role \"%s\")", role);
		cJSON_Delete(tree);
		return -1;
	}
	get_str(tree, "status", out->status, sizeof(out->status));
	get_str(tree, "version", out->version, sizeof(out->version));
	cJSON_ArrayForEach(it, rels)
	{
		if (!cJSON_IsObject(it)) {
			err_set(err, ERR_PROTOCOL, "malformed /health answer: a release is not an object");
			cJSON_Delete(tree);
			return -1;
		}
		read_release(it, &r);
		if (strcmp(r.slot, "active") == 0 && !out->have_active) {
			out->active = r;
			out->have_active = 1;
		} else if (strcmp(r.slot, "prev") == 0 && !out->have_prev) {
			out->prev = r;
			out->have_prev = 1;
		}
	}
	out->agent_crash_loop = -1;
	out->agent_restarts = -1;
	out->agent_uptime_ms = -1;
	agent = cJSON_GetObjectItemCaseSensitive(tree, "agent");
	if (cJSON_IsObject(agent)) {
		const cJSON *v;
		get_str(agent, "state", out->agent_state, sizeof(out->agent_state));
		get_str(agent, "last_exit", out->agent_last_exit, sizeof(out->agent_last_exit));
		v = cJSON_GetObjectItemCaseSensitive(agent, "crash_loop");
		if (cJSON_IsBool(v)) {
			out->agent_crash_loop = cJSON_IsTrue(v);
		}
		v = cJSON_GetObjectItemCaseSensitive(agent, "restarts");
		if (cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble < 1e15) {
			out->agent_restarts = (long long)v->valuedouble;
		}
		v = cJSON_GetObjectItemCaseSensitive(agent, "uptime_ms");
		if (cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble < 1e15) {
			out->agent_uptime_ms = (long long)v->valuedouble;
		}
	}
	{
		const cJSON *feat = cJSON_GetObjectItemCaseSensitive(tree, "features");
		const cJSON *f = cJSON_IsArray(feat) ? feat->child : NULL;
		for (; f != NULL; f = f->next) {
			if (cJSON_IsString(f) && strcmp(f->valuestring, "request_id") == 0) {
				out->has_request_id = 1;
			} else if (cJSON_IsString(f) && strcmp(f->valuestring, "already_active") == 0) {
				out->has_already_active = 1;
			} else if (cJSON_IsString(f) && strcmp(f->valuestring, "plan_gzip") == 0) {
				out->has_plan_gzip = 1;
			} else if (cJSON_IsString(f) &&
			    strcmp(f->valuestring, "self_request_id") == 0) {
				out->has_self_request_id = 1;
			} else if (cJSON_IsString(f) && strcmp(f->valuestring, "zstd_patch") == 0) {
				out->has_zstd_patch = 1;
			}
		}
	}
	upd = cJSON_GetObjectItemCaseSensitive(tree, "updater");
	if (cJSON_IsObject(upd)) {
		out->probation = cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(upd, "probation"));
	}
	get_str(tree, "signature", out->signature, sizeof(out->signature));
	get_str(tree, "compatible", out->compatible, sizeof(out->compatible));
	get_str(tree, "cert_not_after", out->cert_not_after, sizeof(out->cert_not_after));
	out->security_floor = get_count(tree, "security_floor");
	out->keyring_version = get_count(tree, "keyring_version");
	if (out->keyring_version < 0 && out->signature[0] != '\0') {
		out->keyring_version = 0; /* null: the updater has no keyring */
	}
	op = cJSON_GetObjectItemCaseSensitive(tree, "operation");
	if (cJSON_IsObject(op)) {
		get_str(op, "kind", kind, sizeof(kind));
		get_str(op, "phase", phase, sizeof(phase));
		get_str(op, "request_id", out->operation_request_id,
		    sizeof(out->operation_request_id));
		snprintf(out->operation, sizeof(out->operation), "%s/%s", kind, phase);
	}
	cJSON_Delete(tree);
	return 0;
}

/* Option codes beyond single letters. */
enum {
	OPT_HOSTS = 256,
	OPT_JSON_LINES,
	OPT_CANARY,
	OPT_WAVES,
	OPT_WAVE_SIZE,
	OPT_SOAK,
	OPT_MAX_FAILURES,
	OPT_MIN_SAMPLE,
	OPT_ON_HALT,
	OPT_GATE_CMD,
	OPT_WINDOW,
	OPT_UNREACHABLE,
	OPT_RETRIES,
	OPT_DEADLINE,
	OPT_FORCE,
	OPT_FULL,
	OPT_NAME,
	OPT_PAUSED,
	OPT_RETRY_FAILED,
};

/* The rollout options of update and converge (rollout_opt() reads them). */
#define SWARM_ROLLOUT_OPTS \
	{ "canary", OPT_CANARY, 0, "N|P%", \
	    "hosts of the first wave (default 1); a failure there\nalways halts" }, \
	{ "waves", OPT_WAVES, 0, "LIST", \
	    "cumulative wave sizes after the canary (default\n10%,50%,100%; a size " \
	    "adding no host is dropped)" }, \
	{ "wave-size", OPT_WAVE_SIZE, 0, "N|P%", "instead of --waves: equal waves of this size" }, \
	{ "soak", OPT_SOAK, 0, "DURATION", \
	    "after each wave, wait this long and ask every updated\nhost again (healthy, " \
	    "not restarted, right release)" }, \
	{ "max-failures", OPT_MAX_FAILURES, 0, "N|P%", \
	    "failures allowed before the rollout halts (default 0:\nhalt on the first failure)" }, \
	{ "min-sample", OPT_MIN_SAMPLE, 0, "N", \
	    "hosts attempted before a percentage applies (default 5)" }, \
	{ "on-halt", OPT_ON_HALT, 0, "pause|revert", \
	    "stay halted for the operator (default), or roll back\nevery host the rollout " \
	    "updated, newest wave first" }, \
	{ "gate-cmd", OPT_GATE_CMD, 0, "CMD", \
	    "run CMD (sh -c) after each wave; exit 0 passes\n(TANDEM_ROLLOUT_ID, TANDEM_WAVE " \
	    "in its environment)" }, \
	{ "window", OPT_WINDOW, 0, "SPEC", \
	    "dispatch only inside [start, end), e.g.\n'Mon-Fri 01:00-04:00 UTC' (the zone is " \
	    "required)" }, \
	{ "unreachable", OPT_UNREACHABLE, 0, "count|skip", \
	    "an unreachable host is a failure (default) or skipped" }, \
	{ "retries", OPT_RETRIES, 0, "N", \
	    "attempts on a busy (503) or unreachable host (default 3)" }, \
	{ "deadline", OPT_DEADLINE, 0, "DURATION", "no attempt starts after this long" }, \
	{ "force", OPT_FORCE, 0, NULL, "reinstall where the release already runs (prev is kept)" }, \
	{ "full", OPT_FULL, 0, NULL, \
	    "send the whole release, never a planned (delta) push" }, \
	{ "name", OPT_NAME, 0, "TEXT", "a name for the rollout" }, \
	{ "paused", OPT_PAUSED, 0, NULL, "record the plan, start nothing ('rollout resume ID')" }, \
	{ "json-lines", OPT_JSON_LINES, 0, NULL, \
	    "one JSON object per host result and event, as they come" }

const struct cli_opt swarm_update_opts[] = {
	{ "host", 'H', 1, "NAME", "a host (repeatable)" },
	{ "all", 'a', 1, NULL, "every host in service (not decommissioned)" },
	{ "hosts", OPT_HOSTS, 0, "SEL", "all, NAME,NAME... or labels KEY=VALUE,KEY!=VALUE..." },
	{ "release", 'r', 1, "FILE|DIR",
	    "the release tarball or tree (required unless --dry-run;\nchecked here as the "
	    "updater checks it before anything\nis sent)" },
	{ "include-self", 'S', 0, NULL,
	    "after the agent update, also replace the updater\n(POST /update-self) and confirm "
	    "its new version" },
	{ "dry-run", 'n', 0, NULL,
	    "change nothing: per host reachable?, pin ok?, current\nrelease, already running "
	    "this sha256?, would it accept\nthe signature (checked with the master's keyring)?, "
	    "what\nit would be sent (a planned delta's bytes, asked with\nPOST /update/plan, or "
	    "the whole release) and the waves" },
	{ "parallel", 'p', 1, "N", "hosts at once (default 8, at most 256)" },
	{ "timeout", 't', 1, "S", "per request: upload + install + probe (default 900)" },
	SWARM_ROLLOUT_OPTS,
	{ NULL, 0, 0, NULL, NULL },
};

const struct cli_opt swarm_converge_opts[] = {
	{ "hosts", OPT_HOSTS, 0, "SEL", "the hosts to look at (default: all in service)" },
	{ "host", 'H', 1, "NAME", "a host (repeatable)" },
	{ "all", 'a', 1, NULL, "every host in service (the default)" },
	{ "retry-failed", OPT_RETRY_FAILED, 0, NULL,
	    "include hosts that failed their target 3 times" },
	{ "dry-run", 'n', 0, NULL, "say which hosts differ, change nothing" },
	{ "include-self", 'S', 0, NULL, "also replace the updaters (POST /update-self)" },
	{ "parallel", 'p', 1, "N", "hosts at once (default 8, at most 256)" },
	{ "timeout", 't', 1, "S", "per request: upload + install + probe (default 900)" },
	SWARM_ROLLOUT_OPTS,
	{ NULL, 0, 0, NULL, NULL },
};

/* One rollout option's value into A->spec; -1 with ERR. */
static int
rollout_opt(int c, const char *v, struct swarm_update_args *a, struct err *err)
{
	struct rollout_spec *s = &a->spec;
	struct err e = ERR_INIT;
	long long n;
	int64_t ms;

	switch (c) {
	case OPT_CANARY:
		if (rollout_amount_parse(v, 1000000, &s->canary, &e) != 0) {
			err_set(err, ERR_USAGE, "--canary %s", err_msg(&e));
			return -1;
		}
		return 0;
	case OPT_WAVES:
		if (rollout_waves_parse(v, s, &e) != 0) {
			err_set(err, ERR_USAGE, "%s", err_msg(&e));
			return -1;
		}
		return 0;
	case OPT_WAVE_SIZE:
		if (rollout_amount_parse(v, 1000000, &s->wave_size, &e) != 0 ||
		    (!s->wave_size.percent && s->wave_size.value == 0) ||
		    (s->wave_size.percent && s->wave_size.value == 0)) {
			err_set(err, ERR_USAGE, "--wave-size '%s': a number of hosts or a percentage "
			    "above 0", v);
			return -1;
		}
		s->have_wave_size = 1;
		return 0;
	case OPT_SOAK:
		if (rollout_duration_parse(v, &s->soak_ms, &e) != 0) {
			err_set(err, ERR_USAGE, "--soak %s", err_msg(&e));
			return -1;
		}
		return 0;
	case OPT_MAX_FAILURES:
		if (rollout_amount_parse(v, 1000000, &s->max_failures, &e) != 0) {
			err_set(err, ERR_USAGE, "--max-failures %s", err_msg(&e));
			return -1;
		}
		return 0;
	case OPT_MIN_SAMPLE:
		if (parse_ll(v, 1, 1000000, &n) != 0) {
			err_set(err, ERR_USAGE, "--min-sample '%s': expected a number of hosts >= 1", v);
			return -1;
		}
		s->min_sample = (int)n;
		return 0;
	case OPT_ON_HALT:
		if (strcmp(v, "pause") == 0) {
			s->on_halt = ROLLOUT_HALT_PAUSE;
		} else if (strcmp(v, "revert") == 0) {
			s->on_halt = ROLLOUT_HALT_REVERT;
		} else {
			err_set(err, ERR_USAGE, "--on-halt '%s': expected pause or revert", v);
			return -1;
		}
		return 0;
	case OPT_GATE_CMD:
		if (*v == '\0' || strlen(v) > ROLLOUT_GATE_CMD_MAX) {
			err_set(err, ERR_USAGE, "--gate-cmd: 1..%d bytes of shell command",
			    ROLLOUT_GATE_CMD_MAX);
			return -1;
		}
		snprintf(s->gate_cmd, sizeof(s->gate_cmd), "%s", v);
		return 0;
	case OPT_WINDOW:
		if (rollout_window_parse(v, &s->window, &e) != 0) {
			err_set(err, ERR_USAGE, "%s", err_msg(&e));
			return -1;
		}
		s->have_window = 1;
		snprintf(s->window_text, sizeof(s->window_text), "%s", v);
		return 0;
	case OPT_UNREACHABLE:
		if (strcmp(v, "count") == 0 || strcmp(v, "skip") == 0) {
			s->unreachable_skip = v[0] == 's';
			return 0;
		}
		err_set(err, ERR_USAGE, "--unreachable '%s': expected count or skip", v);
		return -1;
	case OPT_RETRIES:
		if (parse_ll(v, 1, 100, &n) != 0) {
			err_set(err, ERR_USAGE, "--retries '%s': expected attempts in 1..100", v);
			return -1;
		}
		s->retries = (int)n;
		return 0;
	case OPT_DEADLINE:
		if (rollout_duration_parse(v, &ms, &e) != 0 || ms < 1000) {
			err_set(err, ERR_USAGE, "--deadline '%s': a duration of at least 1s (e.g. 2h)", v);
			return -1;
		}
		s->deadline_at = (int64_t)time(NULL) + ms / 1000;
		return 0;
	case OPT_NAME:
		if (strlen(v) > ROLLOUT_NAME_MAX) {
			err_set(err, ERR_USAGE, "--name: at most %d bytes", ROLLOUT_NAME_MAX);
			return -1;
		}
		for (const char *p = v; *p != '\0'; p++) {
			if ((unsigned char)*p < 0x20 || *p == 0x7f) {
				err_set(err, ERR_USAGE, "--name: no control characters");
				return -1;
			}
		}
		snprintf(s->name, sizeof(s->name), "%s", v);
		return 0;
	}
	err_set(err, ERR_USAGE, "unknown option");
	return -1;
}

/* The parser shared by update (CONVERGE 0) and converge (CONVERGE 1). */
static int
update_args_parse(int argc, char **argv, struct swarm_update_args *a, int converge, struct err *err)
{
	struct option longopts[CLI_MAX_OPTS + 1];
	char shortopts[2 * CLI_MAX_OPTS + 2];
	long long v;
	int c, waves_given = 0;

	memset(a, 0, sizeof(*a));
	rollout_spec_defaults(&a->spec);
	a->parallel = SWARM_DEFAULT_PARALLEL;
	a->timeout_s = SWARM_DEFAULT_TIMEOUT_S;
	/* argc bounds the number of --host options. */
	a->hosts = calloc((size_t)(argc > 0 ? argc : 1), sizeof(*a->hosts));
	if (a->hosts == NULL) {
		err_set(err, ERR_NOMEM, "out of memory");
		return -1;
	}
	cli_getopt_tables(converge ? swarm_converge_opts : swarm_update_opts, longopts, shortopts);
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
		switch (c) {
		case 'H':
			if (*optarg == '\0') {
				err_set(err, ERR_USAGE, "--host needs a name");
				return -1;
			}
			a->hosts[a->n_hosts++] = optarg;
			break;
		case 'a':
			a->all = 1;
			break;
		case OPT_HOSTS:
			if (*optarg == '\0') {
				err_set(err, ERR_USAGE, "--hosts needs a selector (all, NAME,... or "
				    "KEY=VALUE,...)");
				return -1;
			}
			a->selector = optarg;
			break;
		case 'r':
			if (converge) {
				err_set(err, ERR_USAGE, "converge takes each host's target release "
				    "('swarm target set'), not --release");
				return -1;
			}
			if (*optarg == '\0') {
				err_set(err, ERR_USAGE, "--release needs a file or directory");
				return -1;
			}
			a->release = optarg;
			break;
		case 'S':
			a->include_self = 1;
			break;
		case 'n':
			a->dry_run = 1;
			break;
		case 'p':
			if (parse_ll(optarg, 1, SWARM_MAX_PARALLEL, &v) != 0) {
				err_set(err, ERR_USAGE, "--parallel '%s': expected a number in 1..%d", optarg,
				    SWARM_MAX_PARALLEL);
				return -1;
			}
			a->parallel = (int)v;
			break;
		case 't':
			if (parse_ll(optarg, 1, SWARM_MAX_TIMEOUT_S, &v) != 0) {
				err_set(err, ERR_USAGE, "--timeout '%s': expected seconds in 1..%d", optarg,
				    SWARM_MAX_TIMEOUT_S);
				return -1;
			}
			a->timeout_s = (int)v;
			break;
		case OPT_JSON_LINES:
			a->json_lines = 1;
			break;
		case OPT_FULL:
			a->spec.full = 1;
			break;
		case OPT_FORCE:
			a->spec.force = 1;
			break;
		case OPT_PAUSED:
			a->paused = 1;
			break;
		case OPT_RETRY_FAILED:
			if (!converge) {
				err_set(err, ERR_USAGE, "--retry-failed is an option of converge");
				return -1;
			}
			a->retry_failed = 1;
			break;
		case OPT_WAVES:
		case OPT_WAVE_SIZE:
			if (waves_given++) {
				err_set(err, ERR_USAGE, "give --waves or --wave-size, once");
				return -1;
			}
			if (rollout_opt(c, optarg, a, err) != 0) {
				return -1;
			}
			break;
		case OPT_CANARY:
		case OPT_SOAK:
		case OPT_MAX_FAILURES:
		case OPT_MIN_SAMPLE:
		case OPT_ON_HALT:
		case OPT_GATE_CMD:
		case OPT_WINDOW:
		case OPT_UNREACHABLE:
		case OPT_RETRIES:
		case OPT_DEADLINE:
		case OPT_NAME:
			if (rollout_opt(c, optarg, a, err) != 0) {
				return -1;
			}
			break;
		case ':':
			err_set(err, ERR_USAGE, "option '%s' needs a value", argv[optind - 1]);
			return -1;
		default:
			err_set(err, ERR_USAGE, "unknown option '%s'", argv[optind - 1]);
			return -1;
		}
	}
	if (optind != argc) {
		err_set(err, ERR_USAGE, "unexpected argument '%s'", argv[optind]);
		return -1;
	}
	if ((a->all != 0) + (a->n_hosts > 0) + (a->selector != NULL) > 1) {
		err_set(err, ERR_USAGE, "--all, --host and --hosts exclude each other");
		return -1;
	}
	if (!converge && !a->all && a->n_hosts == 0 && a->selector == NULL) {
		err_set(err, ERR_USAGE, "name the hosts with --host NAME (repeatable), --hosts SEL or "
		    "use --all");
		return -1;
	}
	if (!converge && a->release == NULL && !a->dry_run) {
		err_set(err, ERR_USAGE, "--release FILE|DIR is required");
		return -1;
	}
	if (a->json && a->json_lines) {
		err_set(err, ERR_USAGE, "--json and --json-lines exclude each other");
		return -1;
	}
	a->spec.parallel = a->parallel;
	a->spec.timeout_s = a->timeout_s;
	a->spec.include_self = a->include_self;
	return 0;
}

int
swarm_update_args_parse(int argc, char **argv, struct swarm_update_args *a, struct err *err)
{
	return update_args_parse(argc, argv, a, 0, err);
}

int
swarm_converge_args_parse(int argc, char **argv, struct swarm_update_args *a, struct err *err)
{
	return update_args_parse(argc, argv, a, 1, err);
}

/* ---- tables ---- */

struct swarm_table {
	size_t ncols;
	size_t nrows, cap;
	char **cells; /* (nrows + 1) * ncols, row 0 the headers */
};

/* A display copy of S: control bytes '?', cut to SWARM_TABLE_MAX_CELL characters. */
static char *
cell_dup(const char *s)
{
	size_t i, n = 0, chars = 0, len;
	char *out;

	if (s == NULL || *s == '\0') {
		s = "-";
	}
	len = strlen(s);
	out = malloc(len + 4);
	if (out == NULL) {
		return NULL;
	}
	for (i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];
		if ((ch & 0xc0) != 0x80) {
			if (chars == SWARM_TABLE_MAX_CELL) {
				/* Replace the last 3 characters by "...": back up to a boundary. */
				size_t back = 0;
				while (n > 0 && back < 3) {
					n--;
					if (((unsigned char)out[n] & 0xc0) != 0x80) {
						back++;
					}
				}
				memcpy(out + n, "...", 3);
				n += 3;
				break;
			}
			chars++;
		}
		out[n++] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
	}
	out[n] = '\0';
	return out;
}

static size_t
utf8_width(const char *s)
{
	size_t n = 0;

	for (; *s != '\0'; s++) {
		if (((unsigned char)*s & 0xc0) != 0x80) {
			n++;
		}
	}
	return n;
}

static int
table_row(struct swarm_table *t, const char *const *cells)
{
	size_t i, base;

	if (t->nrows == t->cap) {
		size_t ncap = t->cap == 0 ? 8 : t->cap * 2;
		char **n = realloc(t->cells, ncap * t->ncols * sizeof(*n));
		if (n == NULL) {
			return -1;
		}
		t->cells = n;
		t->cap = ncap;
	}
	base = t->nrows * t->ncols;
	for (i = 0; i < t->ncols; i++) {
		t->cells[base + i] = cell_dup(cells[i]);
		if (t->cells[base + i] == NULL) {
			while (i-- > 0) {
				free(t->cells[base + i]);
			}
			return -1;
		}
	}
	t->nrows++;
	return 0;
}

struct swarm_table *
swarm_table_new(size_t ncols, const char *const *headers)
{
	struct swarm_table *t;

	if (ncols == 0) {
		return NULL;
	}
	t = calloc(1, sizeof(*t));
	if (t == NULL) {
		return NULL;
	}
	t->ncols = ncols;
	if (table_row(t, headers) != 0) {
		free(t);
		return NULL;
	}
	return t;
}

int
swarm_table_add(struct swarm_table *t, const char *const *cells)
{
	return table_row(t, cells);
}

void
swarm_table_print(const struct swarm_table *t, FILE *fp)
{
	size_t widths[32] = { 0 };
	size_t r, c, ncols = t->ncols < ARRAY_LEN(widths) ? t->ncols : ARRAY_LEN(widths);

	for (r = 0; r < t->nrows; r++) {
		for (c = 0; c < ncols; c++) {
			size_t w = utf8_width(t->cells[r * t->ncols + c]);
			if (w > widths[c]) {
				widths[c] = w;
			}
		}
	}
	for (r = 0; r < t->nrows; r++) {
		for (c = 0; c < ncols; c++) {
			const char *s = t->cells[r * t->ncols + c];
			if (c + 1 == ncols) {
				fprintf(fp, "%s\n", s);
			} else {
				fprintf(fp, "%s%*s  ", s, (int)(widths[c] - utf8_width(s)), "");
			}
		}
	}
}

void
swarm_table_free(struct swarm_table *t)
{
	if (t == NULL) {
		return;
	}
	for (size_t i = 0; i < t->nrows * t->ncols; i++) {
		free(t->cells[i]);
	}
	free(t->cells);
	free(t);
}

int
swarm_print_json(cJSON *obj)
{
	char *text = obj != NULL ? json_print_compact(obj) : NULL;
	int rc = CLI_EXIT_FAIL;

	if (text == NULL) {
		log_warnx("out of memory");
	} else if (printf("%s\n", text) >= 0 && fflush(stdout) == 0) {
		rc = CLI_EXIT_OK;
	}
	free(text);
	cJSON_Delete(obj);
	return rc;
}

void
swarm_fmt_secs(int64_t ms, char *buf, size_t len)
{
	snprintf(buf, len, "%lld.%lld s", (long long)(ms / 1000), (long long)(ms % 1000 / 100));
}

void
swarm_fmt_time(time_t t, char *buf, size_t len)
{
	if (t == 0) {
		snprintf(buf, len, "-");
	} else {
		iso8601_utc(t, buf, len);
	}
}
