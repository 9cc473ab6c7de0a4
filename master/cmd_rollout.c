/*
 * `tandem swarm rollout ...`, `swarm label`, `swarm target`, `swarm
 * converge`, and the rollout behind `swarm update`. Exit codes: 0 the
 * rollout is done and every host runs the release (or the command did what
 * it says), 1 halted, aborted, failed hosts or an error, 2 usage error,
 * 3 the rollout is not finished (paused, waiting). Stopped by SIGINT or
 * SIGTERM, the command reports and then ends by that signal (main.c).
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "cJSON.h"
#include "common/json.h"
#include "common/log.h"
#include "common/util.h"
#include "master/cmd_rollout.h"
#include "master/registry_rollout.h"
#include "master/rollout.h"
#include "master/swarm_result.h"

#define GROUP "swarm"
#define PAGE 256
#define LIST_LIMIT 50
#define EVENTS_SHOWN 20
/* Beyond this many hosts the final table lists only the hosts not updated. */
#define TABLE_ALL_MAX 1000
#define WATCH_POLL_MS 500
/* Converge leaves a host alone after it failed the same target this often. */
#define CONVERGE_PENALTY 3

/* ---- signals: the first SIGINT/SIGTERM stops dispatching, the second one kills ---- */

/*
 * The one record of a stop: the signal that asked for it (0: none). It is
 * also the stop flag the drivers poll (rollout_drive's volatile int *).
 */
static volatile sig_atomic_t cmd_stop_sig;
_Static_assert(_Generic((sig_atomic_t)0, int: 1, default: 0),
    "cmd_stop_sig is passed where a volatile int * is expected");

static void
on_stop_signal(int sig)
{
	cmd_stop_sig = sig;
	signal(sig, SIG_DFL);
}

int
cmd_rollout_stop_signal(void)
{
	return (int)cmd_stop_sig;
}

static void
catch_stop_signals(void)
{
	struct sigaction sa, old;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop_signal;
	sigemptyset(&sa.sa_mask);
	/* A SIGINT ignored on entry stays ignored: a command started in the
	 * background of a non-interactive shell is not the target of a Ctrl-C. */
	if (sigaction(SIGINT, NULL, &old) != 0 || old.sa_handler != SIG_IGN) {
		(void)sigaction(SIGINT, &sa, NULL);
	}
	(void)sigaction(SIGTERM, &sa, NULL);
}

/* ---- printing ---- */

/* What a host row says, as the word of the AGENT column and of JSON "result". */
static const char *
agent_word(const struct reg_rollout_host *h)
{
	switch (h->state) {
	case RH_PENDING:
		return "pending";
	case RH_SKIPPED:
		return "skipped";
	case RH_DISPATCHED:
		return "in-flight";
	case RH_REVERTING:
		return "reverting";
	case RH_REVERTED:
		return "reverted";
	case RH_REVERT_FAILED:
		return "revert-failed";
	case RH_REVERT_SKIPPED:
		return "revert-skipped";
	case RH_SOAK_FAILED:
		return "soak-failed";
	default:
		return h->agent_result[0] != '\0' ? h->agent_result : registry_rh_state_name(h->state);
	}
}

static void
agent_cell(const struct reg_rollout_host *h, char *buf, size_t len)
{
	const char *w = agent_word(h);

	if (h->reason[0] != '\0' && (strcmp(w, "failed") == 0 || strcmp(w, "soak-failed") == 0 ||
	    strcmp(w, "revert-failed") == 0 || strcmp(w, "revert-skipped") == 0 ||
	    strcmp(w, "skipped") == 0)) {
		snprintf(buf, len, "%s: %.200s", w, h->reason);
	} else {
		snprintf(buf, len, "%s", w);
	}
}

/* The self-update's JSON of a row (NULL when none was tried). */
static cJSON *
self_of(const struct reg_rollout_host *h)
{
	struct err pe = ERR_INIT;

	if (h->self_json[0] == '\0') {
		return NULL;
	}
	return json_parse_object(h->self_json, strlen(h->self_json), &pe);
}

static cJSON *
agent_json(const struct reg_rollout_host *h)
{
	cJSON *o = cJSON_CreateObject();

	if (o == NULL || json_add_str(o, "result", agent_word(h)) != 0 ||
	    json_add_str(o, "reason", h->reason) != 0 || json_add_str(o, "detail", h->detail) != 0 ||
	    json_add_int(o, "http_status", h->http_status) != 0 ||
	    json_add_str(o, "version", h->version) != 0 ||
	    json_add_str(o, "sha256", h->active_sha256) != 0) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

/* A host row of a rollout as JSON (status, update --json). */
static cJSON *
host_row_json(const struct reg_rollout_host *h, const struct reg_host *rh)
{
	char t1[32], t2[32];
	cJSON *o = cJSON_CreateObject(), *self = self_of(h);

	swarm_fmt_time(h->started_at, t1, sizeof(t1));
	swarm_fmt_time(h->finished_at, t2, sizeof(t2));
	if (o == NULL || json_add_str(o, "host", h->host) != 0 ||
	    json_add_str(o, "address", rh != NULL ? rh->address : NULL) != 0 ||
	    json_add_int(o, "wave", h->wave + 1) != 0 || json_add_int(o, "seq", h->seq) != 0 ||
	    json_add_str(o, "state", registry_rh_state_name(h->state)) != 0 ||
	    json_add_item(o, "agent", agent_json(h)) != 0 ||
	    json_add_item(o, "self", self != NULL ? self : cJSON_CreateNull()) != 0 ||
	    json_add_str(o, "pre_sha256", h->pre_sha256) != 0 ||
	    json_add_str(o, "request_id", h->request_id) != 0 ||
	    json_add_bool(o, "signed", h->tsig_sent) != 0 ||
	    json_add_str(o, "transfer", h->transfer[0] != '\0' ? h->transfer : NULL) != 0 ||
	    json_add_int(o, "bytes_sent", (int64_t)h->bytes_sent) != 0 ||
	    json_add_int(o, "attempts", h->attempts) != 0 ||
	    json_add_str(o, "started_at", h->started_at != 0 ? t1 : NULL) != 0 ||
	    json_add_str(o, "finished_at", h->finished_at != 0 ? t2 : NULL) != 0) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

static cJSON *
rollout_json(const struct rollout_outcome *out)
{
	const struct reg_rollout *r = &out->r;
	char t1[32], t2[32], t3[32];
	cJSON *o = cJSON_CreateObject(), *counts, *spec;
	struct err pe = ERR_INIT;

	swarm_fmt_time(r->created_at, t1, sizeof(t1));
	swarm_fmt_time(r->finished_at, t2, sizeof(t2));
	swarm_fmt_time(r->gate_until, t3, sizeof(t3));
	spec = json_parse_object(r->spec_json, strlen(r->spec_json), &pe);
	if (o == NULL || json_add_str(o, "id", r->id) != 0 || json_add_str(o, "name", r->name) != 0 ||
	    json_add_str(o, "kind", r->kind) != 0 ||
	    json_add_str(o, "state", registry_rollout_state_name(r->state)) != 0 ||
	    json_add_str(o, "reason", r->reason) != 0 ||
	    json_add_str(o, "summary", out->summary) != 0 ||
	    json_add_int(o, "exit_code", out->exit_code) != 0 ||
	    json_add_str(o, "release_sha256", r->release_sha256) != 0 ||
	    json_add_str(o, "release_label", r->release_label) != 0 ||
	    json_add_int(o, "hosts", r->n_hosts) != 0 || json_add_int(o, "waves", r->n_waves) != 0 ||
	    json_add_int(o, "current_wave", r->current_wave + 1) != 0 ||
	    json_add_str(o, "soak_until", r->gate_until != 0 ? t3 : NULL) != 0 ||
	    json_add_str(o, "request", r->request[0] != '\0' ? r->request : NULL) != 0 ||
	    json_add_str(o, "lease_owner", r->lease_owner[0] != '\0' ? r->lease_owner : NULL) != 0 ||
	    json_add_str(o, "created_at", t1) != 0 ||
	    json_add_str(o, "finished_at", r->finished_at != 0 ? t2 : NULL) != 0 ||
	    json_add_item(o, "spec", spec != NULL ? spec : cJSON_CreateNull()) != 0 ||
	    (counts = json_add_object(o, "counts")) == NULL) {
		cJSON_Delete(o);
		return NULL;
	}
	for (int s = 0; s < RH_STATE_COUNT; s++) {
		if (out->counts.n[s] > 0 &&
		    json_add_int(counts, registry_rh_state_name((enum reg_rh_state)s),
		    (long long)out->counts.n[s]) != 0) {
			cJSON_Delete(o);
			return NULL;
		}
	}
	return o;
}

/*
 * Every host row of rollout ID, page by page: FN(ARG, row, host). Memory
 * stays flat in the number of hosts.
 */
static int
each_host(struct swarm_ctx *c, const char *id, int state,
    int (*fn)(void *arg, const struct reg_rollout_host *h, const struct reg_host *rh), void *arg)
{
	struct reg_rollout_host *rows = calloc(PAGE, sizeof(*rows));
	struct reg_host *hosts = calloc(PAGE, sizeof(*hosts));
	struct err e = ERR_INIT;
	size_t n = 0;
	int after = 0, rc = -1;

	if (rows == NULL || hosts == NULL) {
		log_warnx("out of memory");
		goto out;
	}
	for (;;) {
		if (registry_rollout_hosts(c->reg, id, -1, state, after, PAGE, rows, hosts, &n, &e) !=
		    0) {
			log_warnx("%s", err_msg(&e));
			goto out;
		}
		for (size_t i = 0; i < n; i++) {
			if (fn(arg, &rows[i], &hosts[i]) != 0) {
				goto out;
			}
		}
		if (n < PAGE) {
			break;
		}
		after = rows[n - 1].seq;
	}
	rc = 0;
out:
	free(rows);
	free(hosts);
	return rc;
}

/* ---- the report of an update (and of resume) ---- */

struct report {
	struct swarm_table *t;
	int include_self;
	int only_failed;
	int first;          /* JSON: no comma before the first host */
	size_t listed, hidden;
};

static int
report_row(void *arg, const struct reg_rollout_host *h, const struct reg_host *rh)
{
	struct report *rp = arg;
	char agent[SWARM_REASON + 32], selfc[SWARM_REASON + 32];
	const char *cells[6];
	cJSON *self;

	if (rp->only_failed && (h->state == RH_UPDATED || h->state == RH_ALREADY_ACTIVE)) {
		rp->hidden++;
		return 0;
	}
	agent_cell(h, agent, sizeof(agent));
	self = self_of(h);
	if (self != NULL) {
		const char *w = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(self, "result"));
		const char *why = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(self,
		    "reason"));
		snprintf(selfc, sizeof(selfc), "%s%s%.200s", w != NULL ? w : "?",
		    w != NULL && strcmp(w, "failed") == 0 && why != NULL ? ": " : "",
		    w != NULL && strcmp(w, "failed") == 0 && why != NULL ? why : "");
	} else {
		snprintf(selfc, sizeof(selfc), "%s", rp->include_self ? "skipped" : "-");
	}
	cJSON_Delete(self);
	cells[0] = h->host;
	cells[1] = rh->address;
	cells[2] = agent;
	cells[3] = selfc;
	cells[4] = h->version;
	cells[5] = h->detail;
	rp->listed++;
	return swarm_table_add(rp->t, cells);
}

/* Full details below the table, for the hosts that did not simply update. */
static int
report_detail(void *arg, const struct reg_rollout_host *h, const struct reg_host *rh)
{
	cJSON *self = self_of(h);

	(void)arg;
	(void)rh;
	if (h->state != RH_UPDATED && h->state != RH_ALREADY_ACTIVE && h->state != RH_PENDING &&
	    h->state != RH_SKIPPED && (h->detail[0] != '\0' || h->reason[0] != '\0')) {
		printf("\n%s: %s\n  %s\n", h->host, h->reason, h->detail);
	}
	if (self != NULL) {
		const char *w = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(self, "result"));
		if (w != NULL && strcmp(w, "updated") != 0) {
			const char *why = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(self,
			    "reason"));
			const char *det = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(self,
			    "detail"));
			printf("\n%s (self): %s\n  %s\n", h->host, why != NULL ? why : "",
			    det != NULL ? det : "");
		}
	}
	cJSON_Delete(self);
	return 0;
}

static int
report_json_row(void *arg, const struct reg_rollout_host *h, const struct reg_host *rh)
{
	struct report *rp = arg;
	cJSON *o = host_row_json(h, rh);
	char *text = o != NULL ? json_print_compact(o) : NULL;

	cJSON_Delete(o);
	if (text == NULL) {
		log_warnx("out of memory");
		return -1;
	}
	printf("%s%s", rp->first ? "" : ",", text);
	rp->first = 0;
	free(text);
	return 0;
}

/*
 * The one-line tally of a drive that took MS: "updated 48, rolled back 1,
 * failed 1 in 12.4 s", with already active, skipped and reverted hosts named
 * when there are any.
 */
static void
tally_line(const struct reg_rollout_counts *n, int64_t ms, char *buf, size_t len)
{
	const struct {
		const char *word;
		size_t count;
		int always;
	} parts[] = {
		{ "updated", n->n[RH_UPDATED], 1 },
		{ "rolled back", n->n[RH_ROLLED_BACK], 1 },
		{ "failed", n->n[RH_FAILED] + n->n[RH_SOAK_FAILED] + n->n[RH_REVERT_FAILED], 1 },
		{ "already active", n->n[RH_ALREADY_ACTIVE], 0 },
		{ "skipped", n->n[RH_SKIPPED] + n->n[RH_REVERT_SKIPPED], 0 },
		{ "reverted", n->n[RH_REVERTED], 0 },
		{ "not started", n->n[RH_PENDING] + n->n[RH_DISPATCHED] + n->n[RH_REVERTING], 0 },
	};
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < ARRAY_LEN(parts) && used < len; i++) {
		if (parts[i].always || parts[i].count > 0) {
			used += (size_t)snprintf(buf + used, len - used, "%s%s %zu",
			    used > 0 ? ", " : "", parts[i].word, parts[i].count);
		}
	}
	if (used < len) {
		char secs[32];

		swarm_fmt_secs(ms, secs, sizeof(secs));
		snprintf(buf + used, len - used, " in %s", secs);
	}
}

/*
 * The report of a finished drive that took ELAPSED_MS: JSON (streamed host
 * by host), JSON lines (the closing line; the hosts went out as they
 * finished), or the table and the tally line.
 */
static int
report(struct swarm_ctx *c, const struct rollout_outcome *out, int json, int json_lines,
    int include_self, const struct swarm_release_file *rf, const char *release_arg,
    int64_t elapsed_ms)
{
	char tally[256];
	static const char *const heads[] = { "HOST", "ADDRESS", "AGENT", "SELF", "VERSION",
		"DETAIL" };
	struct report rp;
	cJSON *o;
	char *text;

	memset(&rp, 0, sizeof(rp));
	rp.include_self = include_self;
	if (json_lines) {
		o = rollout_json(out);
		if (o == NULL || json_add_str(o, "type", "rollout") != 0 ||
		    json_add_int(o, "elapsed_ms", elapsed_ms) != 0) {
			cJSON_Delete(o);
			return CLI_EXIT_FAIL;
		}
		return swarm_print_json(o) == CLI_EXIT_OK ? out->exit_code : CLI_EXIT_FAIL;
	}
	if (json) {
		/* {"rollout":{...},"release":{...},"ok":B,"hosts":[...]}, hosts streamed. */
		o = cJSON_CreateObject();
		cJSON *rel = o != NULL ? json_add_object(o, "release") : NULL;
		if (rel == NULL || json_add_item(o, "rollout", rollout_json(out)) != 0 ||
		    json_add_str(rel, "path", release_arg) != 0 ||
		    json_add_str(rel, "sha256", rf != NULL ? rf->sha256 : out->r.release_sha256) != 0 ||
		    json_add_int(rel, "size", rf != NULL ? (long long)rf->size : 0) != 0 ||
		    json_add_str(rel, "label", rf != NULL ? rf->label : out->r.release_label) != 0 ||
		    json_add_bool(rel, "signed", rf != NULL && rf->tsig != NULL) != 0 ||
		    json_add_bool(o, "ok", out->exit_code == ROLLOUT_EXIT_DONE) != 0 ||
		    json_add_int(o, "elapsed_ms", elapsed_ms) != 0) {
			cJSON_Delete(o);
			return swarm_print_json(NULL);
		}
		text = json_print_compact(o);
		cJSON_Delete(o);
		if (text == NULL) {
			return swarm_print_json(NULL);
		}
		/* Drop the closing brace, append the hosts array. */
		text[strlen(text) - 1] = '\0';
		printf("%s,\"hosts\":[", text);
		free(text);
		rp.first = 1;
		if (each_host(c, out->r.id, REG_RH_ANY, report_json_row, &rp) != 0) {
			printf("]}\n");
			return CLI_EXIT_FAIL;
		}
		printf("]}\n");
		return fflush(stdout) == 0 ? out->exit_code : CLI_EXIT_FAIL;
	}
	rp.t = swarm_table_new(ARRAY_LEN(heads), heads);
	rp.only_failed = out->counts.total > TABLE_ALL_MAX;
	if (rp.t == NULL || each_host(c, out->r.id, REG_RH_ANY, report_row, &rp) != 0) {
		swarm_table_free(rp.t);
		log_warnx("out of memory");
		return CLI_EXIT_FAIL;
	}
	swarm_table_print(rp.t, stdout);
	swarm_table_free(rp.t);
	if (rp.hidden > 0) {
		printf("(%zu updated hosts not listed: 'tandem swarm rollout status %s --json' lists "
		    "every host)\n", rp.hidden, out->r.id);
	}
	(void)each_host(c, out->r.id, REG_RH_ANY, report_detail, NULL);
	printf("\nrollout %s: %s%s%s\n", out->r.id, out->summary, out->r.reason[0] != '\0' ? ": " : "",
	    out->r.reason);
	tally_line(&out->counts, elapsed_ms, tally, sizeof(tally));
	printf("%s\n", tally);
	if (out->exit_code == ROLLOUT_EXIT_OPEN) {
		printf("resume it with 'tandem swarm rollout resume %s'\n", out->r.id);
	} else if (out->r.state == RO_HALTED && out->r.finished_at == 0) {
		printf("resume it with 'tandem swarm rollout resume %s' (its failures accepted) or "
		    "end it with 'tandem swarm rollout abort %s [--revert]'\n", out->r.id, out->r.id);
	}
	return fflush(stdout) == 0 ? out->exit_code : CLI_EXIT_FAIL;
}

/* ---- selection ---- */

int
cmd_rollout_selector(struct swarm_ctx *c, const struct swarm_update_args *a,
    struct selector *out, struct err *e)
{
	size_t matched;

	memset(out, 0, sizeof(*out));
	if (a->selector != NULL) {
		if (selector_parse(a->selector, out, e) != 0) {
			return err_prefix(e, "--hosts");
		}
	} else if (a->n_hosts > 0) {
		if (a->n_hosts > SELECTOR_MAX_TERMS) {
			return err_set(e, ERR_USAGE, "at most %d --host options: use --hosts with "
						     "labels for more", SELECTOR_MAX_TERMS);
		}
		out->kind = SELECTOR_NAMES;
		for (size_t i = 0; i < a->n_hosts; i++) {
			if (strlen(a->hosts[i]) > SELECTOR_KEY_MAX) {
				return err_set(e, ERR_NOT_FOUND, "%.40s...: no such host in the "
								 "registry", a->hosts[i]);
			}
			for (size_t k = 0; k < i; k++) {
				if (strcasecmp(a->hosts[k], a->hosts[i]) == 0) {
					return err_set(e, ERR_USAGE, "%s is named twice",
					    a->hosts[i]);
				}
			}
			snprintf(out->terms[i].key, sizeof(out->terms[i].key), "%s", a->hosts[i]);
		}
		out->n = a->n_hosts;
	} else {
		out->kind = SELECTOR_ALL;
	}
	if (registry_selector_check(c->reg, out, &matched, e) != 0) {
		return -1;
	}
	return 0;
}

/* ---- update ---- */

/* Drive rollout ID and report it. */
static int
drive_and_report(struct swarm_ctx *c, const char *id, int json, int json_lines, int include_self,
    const struct swarm_release_file *rf, const char *release_arg)
{
	struct rollout_ui ui = { json_lines, 0 };
	struct rollout_outcome *out = calloc(1, sizeof(*out));
	struct err e = ERR_INIT;
	int64_t t0 = mono_ms();
	int rc;

	if (out == NULL) {
		log_warnx("out of memory");
		return CLI_EXIT_FAIL;
	}
	catch_stop_signals();
	if (rollout_drive(c, id, &ui, &cmd_stop_sig, out, &e) != 0) {
		log_warnx("rollout %s: %s", id, err_msg(&e));
		if (out->r.id[0] == '\0') {
			free(out);
			return CLI_EXIT_FAIL;
		}
		rc = report(c, out, json, json_lines, include_self, rf, release_arg, mono_ms() - t0);
		free(out);
		return rc == CLI_EXIT_OK ? CLI_EXIT_FAIL : rc;
	}
	rc = report(c, out, json, json_lines, include_self, rf, release_arg, mono_ms() - t0);
	free(out);
	return rc;
}

int
cmd_rollout_update(const struct cli *cli, struct swarm_ctx *c, const struct swarm_update_args *a,
    const struct swarm_release_file *rf, const char *release_arg)
{
	struct selector sel;
	struct err e = ERR_INIT;
	char id[ROLLOUT_ID_LEN + 1];
	struct reg_rollout r;

	if (cmd_rollout_selector(c, a, &sel, &e) != 0 || rollout_store_release(c, rf, &e) != 0 ||
	    rollout_create(c, &a->spec, &sel, rf->sha256, "update", a->paused, id, &e) != 0) {
		err_prefix(&e, "swarm update");
		return cli_fail(cli, &e);
	}
	if (registry_rollout_get(c->reg, id, &r, &e) == 0 && !a->json_lines) {
		fprintf(stderr, "rollout %s: %d host%s in %d wave%s (release %s, sha256 %.12s)\n", id,
		    r.n_hosts, r.n_hosts == 1 ? "" : "s", r.n_waves, r.n_waves == 1 ? "" : "s",
		    rf->label, rf->sha256);
	}
	if (a->paused) {
		struct rollout_outcome out;
		memset(&out, 0, sizeof(out));
		out.r = r;
		rollout_summarise(c, &out);
		if (a->json || a->json_lines) {
			cJSON *o = rollout_json(&out);
			if (o != NULL && a->json_lines && json_add_str(o, "type", "rollout") != 0) {
				cJSON_Delete(o);
				o = NULL;
			}
			return swarm_print_json(o) == CLI_EXIT_OK ? ROLLOUT_EXIT_OPEN : CLI_EXIT_FAIL;
		}
		printf("rollout %s recorded, paused: 'tandem swarm rollout status %s' shows the plan, "
		    "'tandem swarm rollout resume %s' starts it\n", id, id, id);
		return ROLLOUT_EXIT_OPEN;
	}
	return drive_and_report(c, id, a->json, a->json_lines, a->include_self, rf, release_arg);
}

/* ---- swarm rollout list|status|watch|pause|resume|abort|events ---- */

static int
rollout_open(const struct cli *cli, struct swarm_ctx *c)
{
	struct err se = ERR_INIT;

	if (swarm_ctx_open(c, cli->home, SWARM_DEFAULT_TIMEOUT_S, &se) != 0) {
		return cli_failf(cli, ERR_IO, "%s: %s", cli->path, err_msg(&se));
	}
	c->tty = isatty(STDERR_FILENO);
	return 0;
}

static int
rollout_list(const struct cli *cli, struct swarm_ctx *c, int json)
{
	static const char *const heads[] = { "ID", "NAME", "KIND", "STATE", "HOSTS", "WAVE",
		"RELEASE", "CREATED", "SUMMARY" };
	struct reg_rollout *rs = calloc(LIST_LIMIT, sizeof(*rs));
	struct swarm_table *t = NULL;
	struct err e = ERR_INIT;
	size_t n = 0;
	int rc = CLI_EXIT_FAIL;
	cJSON *obj = NULL, *arr;

	if (rs == NULL || registry_rollout_list(c->reg, rs, LIST_LIMIT, &n, &e) != 0) {
		if (rs == NULL) {
			err_set(&e, ERR_NOMEM, "out of memory");
		}
		err_prefix(&e, "swarm rollout list");
		rc = cli_fail(cli, &e);
		goto out;
	}
	if (json) {
		obj = cJSON_CreateObject();
		arr = obj != NULL ? json_add_array(obj, "rollouts") : NULL;
		for (size_t i = 0; arr != NULL && i < n; i++) {
			struct rollout_outcome out;
			memset(&out, 0, sizeof(out));
			out.r = rs[i];
			rollout_summarise(c, &out);
			cJSON *o = rollout_json(&out);
			if (o == NULL) {
				arr = NULL;
				break;
			}
			cJSON_AddItemToArray(arr, o);
		}
		if (arr == NULL) {
			cJSON_Delete(obj);
			obj = NULL;
		}
		rc = swarm_print_json(obj);
		goto out;
	}
	t = swarm_table_new(ARRAY_LEN(heads), heads);
	for (size_t i = 0; t != NULL && i < n; i++) {
		struct rollout_outcome out;
		char hosts[16], wave[32], created[32];
		const char *cells[ARRAY_LEN(heads)];

		memset(&out, 0, sizeof(out));
		out.r = rs[i];
		rollout_summarise(c, &out);
		snprintf(hosts, sizeof(hosts), "%d", rs[i].n_hosts);
		snprintf(wave, sizeof(wave), "%d/%d", rs[i].current_wave + 1, rs[i].n_waves);
		swarm_fmt_time(rs[i].created_at, created, sizeof(created));
		cells[0] = rs[i].id;
		cells[1] = rs[i].name;
		cells[2] = rs[i].kind;
		cells[3] = registry_rollout_state_name(rs[i].state);
		cells[4] = hosts;
		cells[5] = wave;
		cells[6] = rs[i].release_label;
		cells[7] = created;
		cells[8] = out.summary;
		if (swarm_table_add(t, cells) != 0) {
			swarm_table_free(t);
			t = NULL;
		}
	}
	if (t == NULL) {
		log_warnx("out of memory");
		goto out;
	}
	swarm_table_print(t, stdout);
	rc = fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
out:
	swarm_table_free(t);
	free(rs);
	return rc;
}

struct status_rows {
	struct swarm_table *t;
	int json;      /* rows printed one by one as elements of host_rows */
	size_t shown;
};

static int
status_row(void *arg, const struct reg_rollout_host *h, const struct reg_host *rh)
{
	struct status_rows *sr = arg;
	char wave[16], state[SWARM_REASON + 32], at[32], sent[48];
	const char *cells[7];

	if (sr->json) {
		/* One row at a time: the memory of `status --json` stays flat in the hosts. */
		cJSON *o = host_row_json(h, rh);
		char *text = o != NULL ? json_print_compact(o) : NULL;
		int rc = text != NULL && printf("%s%s", sr->shown++ > 0 ? "," : "", text) >= 0 ? 0
											       : -1;
		free(text);
		cJSON_Delete(o);
		return rc;
	}
	snprintf(wave, sizeof(wave), "%d", h->wave + 1);
	agent_cell(h, state, sizeof(state));
	if (h->self_json[0] != '\0' && h->state == RH_FAILED && h->reason[0] == '\0') {
		snprintf(state, sizeof(state), "failed: self-update failed");
	}
	swarm_fmt_time(h->finished_at, at, sizeof(at));
	/* How the release went (planned, full or fallback) and the bytes it cost. */
	sent[0] = '\0';
	if (h->transfer[0] != '\0') {
		snprintf(sent, sizeof(sent), "%s %llu", h->transfer,
		    (unsigned long long)h->bytes_sent);
	}
	cells[0] = h->host;
	cells[1] = wave;
	cells[2] = state;
	cells[3] = h->version;
	cells[4] = sent;
	cells[5] = at;
	cells[6] = h->detail;
	return swarm_table_add(sr->t, cells);
}

static void
event_line(const struct reg_rollout_event *ev, char *buf, size_t len)
{
	char at[32];

	swarm_fmt_time(ev->at, at, sizeof(at));
	snprintf(buf, len, "%s %s%s%s %s", at, ev->host, ev->host[0] != '\0' ? " " : "", ev->kind,
	    ev->data);
}

static int
rollout_events_print(struct swarm_ctx *c, const char *id, int json, size_t tail)
{
	struct reg_rollout_event *ev = calloc(PAGE, sizeof(*ev));
	struct err e = ERR_INIT;
	int64_t after = 0;
	size_t n = 0, total = 0;
	char line[REG_ROLLOUT_EVENT_MAX + 200];
	cJSON *obj = NULL, *arr = NULL;
	int rc = CLI_EXIT_FAIL;

	if (ev == NULL) {
		log_warnx("out of memory");
		return CLI_EXIT_FAIL;
	}
	if (json) {
		obj = cJSON_CreateObject();
		arr = obj != NULL ? json_add_array(obj, "events") : NULL;
		if (arr == NULL || json_add_str(obj, "rollout", id) != 0) {
			goto out;
		}
	}
	/* TAIL > 0: only the last TAIL events (count them first). */
	if (tail > 0) {
		do {
			if (registry_rollout_events(c->reg, id, after, PAGE, ev, &n, &e) != 0) {
				log_warnx("%s", err_msg(&e));
				goto out;
			}
			total += n;
			if (n > 0) {
				after = ev[n - 1].seq;
			}
		} while (n == PAGE);
		after = 0;
	}
	size_t skip = tail > 0 && total > tail ? total - tail : 0;
	do {
		if (registry_rollout_events(c->reg, id, after, PAGE, ev, &n, &e) != 0) {
			log_warnx("%s", err_msg(&e));
			goto out;
		}
		for (size_t i = 0; i < n; i++) {
			if (skip > 0) {
				skip--;
				continue;
			}
			if (json) {
				char at[32];
				struct err pe = ERR_INIT;
				cJSON *o = cJSON_CreateObject();
				cJSON *data = json_parse_object(ev[i].data, strlen(ev[i].data), &pe);
				swarm_fmt_time(ev[i].at, at, sizeof(at));
				if (o == NULL || json_add_int(o, "seq", ev[i].seq) != 0 ||
				    json_add_str(o, "at", at) != 0 ||
				    json_add_str(o, "host", ev[i].host[0] != '\0' ? ev[i].host : NULL) != 0 ||
				    json_add_str(o, "kind", ev[i].kind) != 0 ||
				    json_add_item(o, "data", data != NULL ? data : cJSON_CreateNull()) != 0) {
					cJSON_Delete(o);
					goto out;
				}
				cJSON_AddItemToArray(arr, o);
			} else {
				event_line(&ev[i], line, sizeof(line));
				printf("  %s\n", line);
			}
		}
		if (n > 0) {
			after = ev[n - 1].seq;
		}
	} while (n == PAGE);
	if (json) {
		rc = swarm_print_json(obj);
		obj = NULL;
	} else {
		rc = fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
	}
out:
	cJSON_Delete(obj);
	free(ev);
	return rc;
}

/*
 * OBJ (the rollout and its wave plan; taken) and then every host row as the
 * last key, host_rows, streamed from the registry a page at a time.
 */
static int
status_json(struct swarm_ctx *c, const struct rollout_outcome *out, cJSON *obj)
{
	struct status_rows sr = { .json = 1 };
	char *head = NULL;
	size_t n;
	int rc = CLI_EXIT_FAIL;

	/* Printed compact, OBJ ends in "host_rows":[]}: the rows go between the brackets. */
	if (json_add_array(obj, "host_rows") == NULL || (head = json_print_compact(obj)) == NULL ||
	    (n = strlen(head)) < 3 || strcmp(head + n - 3, "[]}") != 0) {
		log_warnx("out of memory");
		goto out;
	}
	head[n - 2] = '\0';
	if (printf("%s", head) < 0 || each_host(c, out->r.id, REG_RH_ANY, status_row, &sr) != 0 ||
	    printf("]}\n") < 0 || fflush(stdout) != 0) {
		/* Half a document is on stdout: the exit status says it is not one. */
		log_warnx("swarm rollout status: the host rows could not be written whole");
		goto out;
	}
	rc = CLI_EXIT_OK;
out:
	free(head);
	cJSON_Delete(obj);
	return rc;
}

static int
rollout_status(const struct cli *cli, struct swarm_ctx *c, const char *id, int json)
{
	static const char *const heads[] = { "HOST", "WAVE", "STATE", "VERSION", "SENT",
		"FINISHED-AT", "DETAIL" };
	struct rollout_outcome out;
	struct status_rows sr;
	struct err e = ERR_INIT;
	char t[32];
	cJSON *obj = NULL, *waves;
	int rc = CLI_EXIT_FAIL;

	memset(&out, 0, sizeof(out));
	memset(&sr, 0, sizeof(sr));
	if (registry_rollout_get(c->reg, id, &out.r, &e) != 0) {
		err_prefix(&e, "swarm rollout status");
		return cli_fail(cli, &e);
	}
	rollout_summarise(c, &out);
	if (json) {
		obj = rollout_json(&out);
		waves = obj != NULL ? json_add_array(obj, "wave_plan") : NULL;
		for (int w = 0; waves != NULL && w < out.r.n_waves; w++) {
			struct reg_rollout_counts n;
			cJSON *o = cJSON_CreateObject(), *st;
			if (o == NULL || registry_rollout_counts(c->reg, out.r.id, w, 0, &n, &e) != 0) {
				cJSON_Delete(o);
				waves = NULL;
				break;
			}
			cJSON_AddItemToArray(waves, o);
			if (json_add_int(o, "wave", w + 1) != 0 ||
			    json_add_int(o, "hosts", (long long)n.total) != 0 ||
			    (st = json_add_object(o, "states")) == NULL) {
				waves = NULL;
				break;
			}
			for (int s = 0; s < RH_STATE_COUNT; s++) {
				if (n.n[s] > 0 && json_add_int(st, registry_rh_state_name((enum reg_rh_state)s),
				    (long long)n.n[s]) != 0) {
					waves = NULL;
				}
			}
		}
		return waves != NULL ? status_json(c, &out, obj) : swarm_print_json(NULL);
	}
	swarm_fmt_time(out.r.created_at, t, sizeof(t));
	printf("rollout %s%s%s%s (%s)\n", out.r.id, out.r.name[0] != '\0' ? " \"" : "", out.r.name,
	    out.r.name[0] != '\0' ? "\"" : "", out.r.kind);
	printf("release: %s (sha256 %s)\n", out.r.release_label, out.r.release_sha256);
	printf("created: %s\n", t);
	printf("state: %s%s%s\n", registry_rollout_state_name(out.r.state),
	    out.r.reason[0] != '\0' ? ": " : "", out.r.reason);
	printf("outcome: %s\n", out.summary);
	printf("wave: %d of %d\n", out.r.current_wave + 1, out.r.n_waves);
	if (out.r.lease_owner[0] != '\0') {
		swarm_fmt_time(out.r.lease_until, t, sizeof(t));
		printf("driver: %s (lease until %s)\n", out.r.lease_owner, t);
	}
	printf("options: %s\n", out.r.spec_json);
	for (int w = 0; w < out.r.n_waves; w++) {
		struct reg_rollout_counts n;
		char line[512] = "";
		if (registry_rollout_counts(c->reg, out.r.id, w, 0, &n, &e) != 0) {
			log_warnx("%s", err_msg(&e));
			return CLI_EXIT_FAIL;
		}
		for (int s = 0; s < RH_STATE_COUNT; s++) {
			if (n.n[s] > 0) {
				snprintf(line + strlen(line), sizeof(line) - strlen(line), "%s%zu %s",
				    line[0] != '\0' ? ", " : "", n.n[s],
				    registry_rh_state_name((enum reg_rh_state)s));
			}
		}
		printf("wave %d: %zu host%s: %s\n", w + 1, n.total, n.total == 1 ? "" : "s", line);
	}
	printf("\n");
	sr.t = swarm_table_new(ARRAY_LEN(heads), heads);
	if (sr.t == NULL || each_host(c, out.r.id, REG_RH_ANY, status_row, &sr) != 0) {
		swarm_table_free(sr.t);
		log_warnx("out of memory");
		return CLI_EXIT_FAIL;
	}
	swarm_table_print(sr.t, stdout);
	swarm_table_free(sr.t);
	printf("\nlast events:\n");
	rc = rollout_events_print(c, out.r.id, 0, EVENTS_SHOWN);
	return rc;
}

/* ---- watch ---- */

static int
rollout_watch(const struct cli *cli, struct swarm_ctx *c, const char *id, int json_lines)
{
	struct reg_rollout_event *ev = calloc(PAGE, sizeof(*ev));
	struct rollout_outcome out;
	struct err e = ERR_INIT;
	int64_t after = 0;
	size_t n;
	int tty = isatty(STDOUT_FILENO) && !json_lines, drawn = 0, rc = CLI_EXIT_FAIL;
	char line[REG_ROLLOUT_EVENT_MAX + 200];

	if (ev == NULL) {
		log_warnx("out of memory");
		return CLI_EXIT_FAIL;
	}
	catch_stop_signals();
	memset(&out, 0, sizeof(out));
	for (;;) {
		if (registry_rollout_get(c->reg, id, &out.r, &e) != 0) {
			err_prefix(&e, "swarm rollout watch");
			rc = cli_fail(cli, &e);
			goto out;
		}
		rollout_summarise(c, &out);
		if (registry_rollout_events(c->reg, out.r.id, after, PAGE, ev, &n, &e) != 0) {
			err_prefix(&e, "swarm rollout watch");
			rc = cli_fail(cli, &e);
			goto out;
		}
		if (tty) {
			/* Redraw: the header, each wave's counts, the newest events. */
			if (drawn > 0) {
				printf("\033[%dA", drawn);
			}
			drawn = 0;
			printf("\r\033[Krollout %s: %s, wave %d of %d%s%s\n", out.r.id, out.summary,
			    out.r.current_wave + 1, out.r.n_waves, out.r.reason[0] != '\0' ? ": " : "",
			    out.r.reason);
			drawn++;
			for (int w = 0; w < out.r.n_waves && w < 30; w++) {
				struct reg_rollout_counts wc;
				char cl[400] = "";
				if (registry_rollout_counts(c->reg, out.r.id, w, 0, &wc, &e) != 0) {
					goto out;
				}
				for (int s = 0; s < RH_STATE_COUNT; s++) {
					if (wc.n[s] > 0) {
						snprintf(cl + strlen(cl), sizeof(cl) - strlen(cl), "%s%zu %s",
						    cl[0] != '\0' ? ", " : "", wc.n[s],
						    registry_rh_state_name((enum reg_rh_state)s));
					}
				}
				printf("\r\033[K  wave %d%s: %s\n", w + 1,
				    w == out.r.current_wave && out.r.finished_at == 0 ? " *" : "", cl);
				drawn++;
			}
			for (size_t i = n > 8 ? n - 8 : 0; i < n; i++) {
				event_line(&ev[i], line, sizeof(line));
				printf("\r\033[K  %.150s\n", line);
				drawn++;
			}
		} else {
			for (size_t i = 0; i < n; i++) {
				if (json_lines) {
					char at[32];
					struct err pe = ERR_INIT;
					cJSON *o = cJSON_CreateObject();
					cJSON *data = json_parse_object(ev[i].data, strlen(ev[i].data), &pe);
					swarm_fmt_time(ev[i].at, at, sizeof(at));
					if (o == NULL || json_add_str(o, "type", "event") != 0 ||
					    json_add_str(o, "rollout", out.r.id) != 0 ||
					    json_add_int(o, "seq", ev[i].seq) != 0 ||
					    json_add_str(o, "at", at) != 0 ||
					    json_add_str(o, "host", ev[i].host[0] != '\0' ? ev[i].host
											  : NULL) != 0 ||
					    json_add_str(o, "kind", ev[i].kind) != 0 ||
					    json_add_item(o, "data", data != NULL ? data
										: cJSON_CreateNull()) != 0) {
						cJSON_Delete(o);
						goto out;
					}
					(void)swarm_print_json(o);
				} else {
					event_line(&ev[i], line, sizeof(line));
					printf("%s\n", line);
				}
			}
		}
		fflush(stdout);
		if (n > 0) {
			after = ev[n - 1].seq;
		}
		if (n == PAGE) {
			continue; /* more events queued: no sleep */
		}
		/* The end: finished, or stopped with nobody driving it. */
		if (out.r.finished_at != 0 ||
		    ((out.r.state == RO_PAUSED || out.r.state == RO_HALTED) &&
		    out.r.lease_owner[0] == '\0')) {
			break;
		}
		if (cmd_stop_sig != 0) {
			rc = ROLLOUT_EXIT_OPEN;
			goto out;
		}
		struct timespec ts = { 0, WATCH_POLL_MS * 1000000L };
		nanosleep(&ts, NULL);
	}
	if (json_lines) {
		cJSON *o = rollout_json(&out);
		if (o != NULL && json_add_str(o, "type", "rollout") != 0) {
			cJSON_Delete(o);
			o = NULL;
		}
		(void)swarm_print_json(o);
	} else if (!tty) {
		printf("rollout %s: %s\n", out.r.id, out.summary);
	}
	rc = out.exit_code;
out:
	free(ev);
	return rc;
}

/* pause / abort: a request for a live driver, or carried out here. */
static int
rollout_act(const struct cli *cli, struct swarm_ctx *c, const char *id, const char *request,
    int json)
{
	struct err e = ERR_INIT;
	struct rollout_ui ui = { 0, json };
	struct rollout_outcome out;
	int queued;

	if (rollout_request(c, id, request, &queued, &e) != 0) {
		err_prefix(&e, "%s", cli->path);
		return cli_fail(cli, &e);
	}
	if (queued) {
		printf("rollout %s: %s requested; its driver acts on it after the hosts in flight\n",
		    id, request);
		return fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
	}
	catch_stop_signals();
	if (rollout_drive(c, id, &ui, &cmd_stop_sig, &out, &e) != 0) {
		err_prefix(&e, "%s", cli->path);
		return cli_fail(cli, &e);
	}
	if (json) {
		return swarm_print_json(rollout_json(&out));
	}
	printf("rollout %s: %s%s%s\n", out.r.id, out.summary, out.r.reason[0] != '\0' ? ": " : "",
	    out.r.reason);
	return fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}

/* Keys of the rollout commands' options. */
enum {
	RO_OPT_JSON_LINES = 0x100,
	RO_OPT_REVERT,
	RO_OPT_HOSTS,
	RO_OPT_RELEASE,
};

static const struct cli_opt rollout_json_lines_opts[] = {
	{ "json-lines", RO_OPT_JSON_LINES, 0, NULL, "one JSON object per event and host result, "
						     "as they come" },
	{ NULL, 0, 0, NULL, NULL },
};

static const struct cli_opt rollout_abort_opts[] = {
	{ "revert", RO_OPT_REVERT, 0, NULL,
	    "roll back every host it updated, newest wave first" },
	{ NULL, 0, 0, NULL, NULL },
};

/*
 * The options and the rollout ID of a rollout command (none for list).
 * Returns -1 to go on, else the exit code.
 */
static int
rollout_args(struct cli *cli, int argc, char **argv, const char **id, int *revert,
    int *json_lines)
{
	struct cli_getopt g;
	int ch, optind_;

	*id = NULL;
	*revert = 0;
	*json_lines = 0;
	cli_getopt_init(&g, cli, argc, argv);
	while ((ch = cli_getopt(&g, cli)) != -1) {
		switch (ch) {
		case RO_OPT_JSON_LINES:
			*json_lines = 1;
			break;
		case RO_OPT_REVERT:
			*revert = 1;
			break;
		default:
			return CLI_EXIT_USAGE;
		}
	}
	if (*json_lines && cli->json) {
		return cli_usage(cli, "--json and --json-lines exclude each other");
	}
	optind_ = cli_getopt_index(&g);
	if (cli->cmd->operand == NULL) {
		return -1;
	}
	*id = argv[optind_];
	if (strlen(*id) < 4 || strlen(*id) > ROLLOUT_ID_LEN || !is_hex_len(*id, strlen(*id))) {
		return cli_usage(cli, "'%.40s' is not a rollout id (%d hex digits, or a unique prefix "
				      "of at least 4)", *id, ROLLOUT_ID_LEN);
	}
	return -1;
}

/* Run rollout command VERB ("list", "status", ...) of ARGV. */
static int
rollout_run(struct cli *cli, int argc, char **argv, const char *verb)
{
	struct swarm_ctx c;
	struct reg_rollout r;
	struct err e = ERR_INIT;
	const char *id;
	int revert, json_lines, rc;

	rc = rollout_args(cli, argc, argv, &id, &revert, &json_lines);
	if (rc >= 0) {
		return rc;
	}
	if (rollout_open(cli, &c) != 0) {
		return CLI_EXIT_FAIL;
	}
	if (strcmp(verb, "list") == 0) {
		rc = rollout_list(cli, &c, cli->json);
	} else if (strcmp(verb, "status") == 0) {
		rc = rollout_status(cli, &c, id, cli->json);
	} else if (strcmp(verb, "watch") == 0) {
		rc = rollout_watch(cli, &c, id, json_lines);
	} else if (strcmp(verb, "pause") == 0) {
		rc = rollout_act(cli, &c, id, "pause", cli->json);
	} else if (strcmp(verb, "abort") == 0) {
		rc = rollout_act(cli, &c, id, revert ? "abort_revert" : "abort", cli->json);
	} else if (registry_rollout_get(c.reg, id, &r, &e) != 0) {
		err_prefix(&e, "%s", cli->path);
		rc = cli_fail(cli, &e);
	} else if (strcmp(verb, "events") == 0) {
		rc = rollout_events_print(&c, r.id, cli->json, 0);
	} else {
		rc = drive_and_report(&c, r.id, cli->json, json_lines, 0, NULL, NULL);
	}
	swarm_ctx_close(&c);
	return rc;
}

static int
rollout_cmd_list(struct cli *cli, int argc, char **argv)
{
	return rollout_run(cli, argc, argv, "list");
}

static int
rollout_cmd_status(struct cli *cli, int argc, char **argv)
{
	return rollout_run(cli, argc, argv, "status");
}

static int
rollout_cmd_watch(struct cli *cli, int argc, char **argv)
{
	return rollout_run(cli, argc, argv, "watch");
}

static int
rollout_cmd_pause(struct cli *cli, int argc, char **argv)
{
	return rollout_run(cli, argc, argv, "pause");
}

static int
rollout_cmd_resume(struct cli *cli, int argc, char **argv)
{
	return rollout_run(cli, argc, argv, "resume");
}

static int
rollout_cmd_abort(struct cli *cli, int argc, char **argv)
{
	return rollout_run(cli, argc, argv, "abort");
}

static int
rollout_cmd_events(struct cli *cli, int argc, char **argv)
{
	return rollout_run(cli, argc, argv, "events");
}

#define ROLLOUT_ID_TEXT \
	"ID is a rollout id or a unique prefix of at least 4 hex digits. States:\n" \
	"planned, running, waiting_window, paused, halted, reverting, done, aborted."

static const char rollout_exit[] =
    "  0  done (resume, watch) or the request carried out\n"
    "  1  halted, aborted, failed hosts, or an error (the message says which)\n"
    "  2  usage error: the command line is wrong, nothing was done\n"
    "  3  not finished (paused, waiting for its window or for another\n"
    "     driver): 'tandem swarm rollout resume ID'\n"
    "  Ctrl-C or SIGTERM: hosts in flight finish, the report is printed, then\n"
    "  the command ends by that signal (a shell sees 130 or 143)\n";

const struct cli_cmd cmd_rollout_subs[CMD_ROLLOUT_N_SUBS] = {
	{
	    .name = "list",
	    .summary = "the newest 50 rollouts",
	    .synopsis = "",
	    .description = "Lists the newest 50 rollouts: id, name, kind, state, hosts, wave,\n"
			   "release, creation time and a summary.",
	    .example = "tandem swarm rollout list --json",
	    .run = rollout_cmd_list,
	},
	{
	    .name = "status",
	    .summary = "a rollout's plan, waves, every host's state, last events",
	    .synopsis = "ID",
	    .operand = "ID",
	    .description = "Prints the rollout's plan and options, each wave's counts, every\n"
			   "host's state, version and detail, and its last events.\n" ROLLOUT_ID_TEXT,
	    .exit_status = rollout_exit,
	    .example = "tandem swarm rollout status 3f9c",
	    .run = rollout_cmd_status,
	},
	{
	    .name = "watch",
	    .summary = "follow a rollout until it ends or stops",
	    .synopsis = "ID [--json-lines]",
	    .operand = "ID",
	    .description = "Follows the rollout until it ends or stops: redrawn on a terminal, one\n"
			   "line per event otherwise.\n" ROLLOUT_ID_TEXT,
	    .opts = rollout_json_lines_opts,
	    .exit_status = rollout_exit,
	    .example = "tandem swarm rollout watch 3f9c",
	    .run = rollout_cmd_watch,
	},
	{
	    .name = "pause",
	    .summary = "stop dispatching; hosts in flight finish",
	    .synopsis = "ID",
	    .operand = "ID",
	    .description = "Stops dispatching: a live driver acts on it after the hosts in flight;\n"
			   "without one it is carried out here.\n" ROLLOUT_ID_TEXT,
	    .exit_status = rollout_exit,
	    .example = "tandem swarm rollout pause 3f9c",
	    .run = rollout_cmd_pause,
	},
	{
	    .name = "resume",
	    .summary = "drive a paused, halted or interrupted rollout on",
	    .synopsis = "ID [--json-lines]",
	    .operand = "ID",
	    .description =
		"Drives the rollout on: after a pause, a halt (its failures accepted), an\n"
		"interruption, or a master that died (taken over at once on this machine,\n"
		"else when its lease expires).\n" ROLLOUT_ID_TEXT,
	    .opts = rollout_json_lines_opts,
	    .exit_status = rollout_exit,
	    .example = "tandem swarm rollout resume 3f9c",
	    .run = rollout_cmd_resume,
	},
	{
	    .name = "abort",
	    .summary = "end a rollout (--revert: roll back what it updated)",
	    .synopsis = "ID [--revert]",
	    .operand = "ID",
	    .description = "Ends the rollout; with --revert every host it updated is rolled back,\n"
			   "newest wave first.\n" ROLLOUT_ID_TEXT,
	    .opts = rollout_abort_opts,
	    .exit_status = rollout_exit,
	    .example = "tandem swarm rollout abort 3f9c --revert",
	    .run = rollout_cmd_abort,
	},
	{
	    .name = "events",
	    .summary = "every event a rollout recorded",
	    .synopsis = "ID",
	    .operand = "ID",
	    .description = "Prints every event the rollout recorded, oldest first.\n" ROLLOUT_ID_TEXT,
	    .example = "tandem swarm rollout events 3f9c",
	    .run = rollout_cmd_events,
	},
};
_Static_assert(ARRAY_LEN(cmd_rollout_subs) == CMD_ROLLOUT_N_SUBS, "one entry per command");

/* ---- labels ---- */

int
swarm_cmd_label(struct cli *cli, int argc, char **argv)
{
	struct err pe = ERR_INIT;
	struct selector_label ls[REG_LABELS_MAX], set;
	struct registry *reg = NULL;
	struct err e = ERR_INIT;
	struct cli_getopt g;
	size_t n = 0;
	int json = cli->json, rc = CLI_EXIT_FAIL, remove, first;
	const char *name;

	cli_getopt_init(&g, cli, argc, argv);
	if (cli_getopt(&g, cli) != -1) {
		return CLI_EXIT_USAGE; /* it has no options of its own */
	}
	first = cli_getopt_index(&g);
	if (first < argc && strcmp(argv[first], "--") == 0) {
		first++;
	}
	name = argv[first];
	for (int i = first + 1; i < argc; i++) {
		if (selector_label_parse(argv[i], &set, &remove, &e) != 0) {
			return cli_usage(cli, "%s", err_msg(&e));
		}
	}
	if (registry_open(cli->home, &reg, &pe) != REGISTRY_OK) {
		err_prefix(&pe, "swarm label");
		return cli_fail(cli, &pe);
	}
	for (int i = first + 1; i < argc; i++) {
		if (selector_label_parse(argv[i], &set, &remove, &e) != 0 ||
		    registry_label_set(reg, name, set.key, remove ? NULL : set.value, &e) != 0) {
			err_prefix(&e, "swarm label");
			rc = cli_fail(cli, &e);
			goto out;
		}
	}
	if (registry_host_labels(reg, name, ls, ARRAY_LEN(ls), &n, &e) != 0) {
		err_prefix(&e, "swarm label");
		rc = cli_fail(cli, &e);
		goto out;
	}
	if (json) {
		cJSON *o = cJSON_CreateObject(), *lo = o != NULL ? json_add_object(o, "labels") : NULL;
		if (lo == NULL || json_add_str(o, "host", name) != 0) {
			cJSON_Delete(o);
			o = NULL;
		}
		for (size_t i = 0; o != NULL && i < n; i++) {
			if (json_add_str(lo, ls[i].key, ls[i].value) != 0) {
				cJSON_Delete(o);
				o = NULL;
			}
		}
		rc = swarm_print_json(o);
		goto out;
	}
	printf("%s:", name);
	for (size_t i = 0; i < n; i++) {
		printf(" %s=%s", ls[i].key, ls[i].value);
	}
	printf("%s\n", n == 0 ? " (no labels)" : "");
	rc = fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
out:
	registry_close(reg);
	return rc;
}

/* ---- targets ---- */

const struct cli_opt cmd_target_set_opts[] = {
	{ "hosts", RO_OPT_HOSTS, 0, "SEL",
	    "the hosts: all, NAME,NAME... or labels KEY=VALUE,...\n(required)" },
	{ "release", RO_OPT_RELEASE, 0, "FILE|DIR", "the release tarball or tree (required)" },
	{ NULL, 0, 0, NULL, NULL },
};

const struct cli_opt cmd_target_list_opts[] = {
	{ "hosts", RO_OPT_HOSTS, 0, "SEL", "only these hosts (default: all)" },
	{ NULL, 0, 0, NULL, NULL },
};

const struct cli_opt cmd_target_clear_opts[] = {
	{ "hosts", RO_OPT_HOSTS, 0, "SEL", "the hosts whose target goes (required)" },
	{ NULL, 0, 0, NULL, NULL },
};

/* swarm target set|list|clear: the one command behind the three. */
static int
target_run(struct cli *cli, int argc, char **argv, const char *verb)
{
	static const char *const heads[] = { "HOST", "TARGET", "SHA256", "SET-AT" };
	struct swarm_update_args a;
	struct swarm_ctx c;
	struct selector sel;
	struct cmd_release *rel = NULL;
	struct reg_host *page = NULL;
	struct swarm_table *t = NULL;
	struct cli_getopt g;
	struct err e = ERR_INIT;
	struct err se = ERR_INIT;
	int64_t cursor = 0;
	size_t n, count = 0;
	int rc = CLI_EXIT_FAIL, ctx = 0, ch, set, clear;
	cJSON *obj = NULL, *arr = NULL;

	set = strcmp(verb, "set") == 0;
	clear = strcmp(verb, "clear") == 0;
	memset(&a, 0, sizeof(a));
	a.json = cli->json;
	cli_getopt_init(&g, cli, argc, argv);
	while ((ch = cli_getopt(&g, cli)) != -1) {
		switch (ch) {
		case RO_OPT_HOSTS:
			a.selector = g.arg;
			break;
		case RO_OPT_RELEASE:
			a.release = g.arg;
			break;
		default:
			return CLI_EXIT_USAGE;
		}
	}
	if (set && (a.selector == NULL || a.release == NULL || *a.release == '\0')) {
		return cli_usage(cli, "--hosts SEL and --release FILE|DIR are required");
	}
	if (clear && a.selector == NULL) {
		return cli_usage(cli, "--hosts SEL is required");
	}
	if (swarm_ctx_open(&c, cli->home, SWARM_DEFAULT_TIMEOUT_S, &se) != 0) {
		rc = cli_failf(cli, ERR_IO, "%s: %s", cli->path, err_msg(&se));
		goto out;
	}
	ctx = 1;
	rel = calloc(1, sizeof(*rel));
	page = calloc(PAGE, sizeof(*page));
	if (rel == NULL || page == NULL) {
		rc = cli_failf(cli, ERR_NOMEM, "out of memory");
		goto out;
	}
	sign_keyring_init(&rel->keyring);
	if (cmd_rollout_selector(&c, &a, &sel, &e) != 0 ||
	    (set && (cmd_swarm_prepare_release(cli->home, a.release, SIGN_KIND_AGENT, 0, rel, &e) != 0 ||
			rollout_store_release(&c, &rel->rf, &e) != 0))) {
		err_prefix(&e, "%s", cli->path);
		rc = cli_fail(cli, &e);
		goto out;
	}
	if (a.json) {
		obj = cJSON_CreateObject();
		arr = obj != NULL ? json_add_array(obj, "targets") : NULL;
		if (arr == NULL) {
			goto out;
		}
	} else if (!set && !clear) {
		t = swarm_table_new(ARRAY_LEN(heads), heads);
		if (t == NULL) {
			goto out;
		}
	}
	do {
		if (registry_hosts_select(c.reg, &sel, &cursor, PAGE, page, &n, &e) != 0) {
			err_prefix(&e, "%s", cli->path);
			rc = cli_fail(cli, &e);
			goto out;
		}
		for (size_t i = 0; i < n; i++) {
			struct reg_target tg;
			char at[32], sha[16];
			int have;

			if ((set || clear) && registry_target_set(c.reg, page[i].name,
			    set ? rel->rf.sha256 : NULL, &e) != 0) {
				err_prefix(&e, "%s", cli->path);
				rc = cli_fail(cli, &e);
				goto out;
			}
			have = registry_target_of(c.reg, page[i].name, &tg, &e);
			if (have < 0) {
				err_prefix(&e, "%s", cli->path);
				rc = cli_fail(cli, &e);
				goto out;
			}
			count++;
			swarm_fmt_time(tg.set_at, at, sizeof(at));
			if (arr != NULL) {
				cJSON *o = cJSON_CreateObject();
				if (o == NULL || json_add_str(o, "host", page[i].name) != 0 ||
				    json_add_str(o, "label", have ? tg.label : NULL) != 0 ||
				    json_add_str(o, "sha256", have ? tg.sha256 : NULL) != 0 ||
				    json_add_str(o, "set_at", have ? at : NULL) != 0) {
					cJSON_Delete(o);
					goto out;
				}
				cJSON_AddItemToArray(arr, o);
			} else if (t != NULL) {
				const char *cells[ARRAY_LEN(heads)];
				snprintf(sha, sizeof(sha), "%.12s", tg.sha256);
				cells[0] = page[i].name;
				cells[1] = have ? tg.label : "-";
				cells[2] = have ? sha : "-";
				cells[3] = have ? at : "-";
				if (swarm_table_add(t, cells) != 0) {
					goto out;
				}
			}
		}
	} while (n > 0);
	if (arr != NULL) {
		rc = swarm_print_json(obj);
		obj = NULL;
	} else if (t != NULL) {
		swarm_table_print(t, stdout);
		rc = fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
	} else {
		printf("%s: %zu host%s%s%s\n", set ? "target set" : "target cleared", count,
		    count == 1 ? "" : "s", set ? " -> " : "", set ? rel->rf.label : "");
		rc = fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
	}
out:
	if (rel != NULL) {
		cmd_swarm_release_cleanup(rel);
		free(rel);
	}
	cJSON_Delete(obj);
	swarm_table_free(t);
	free(page);
	if (ctx) {
		swarm_ctx_close(&c);
	}
	return rc;
}

/* ---- converge ---- */

/* One host that differs from its target. */
struct diff {
	char host[REG_NAME_MAX + 1];
	char sha256[REG_FP_LEN + 1];
};

struct converge {
	struct swarm_ctx *c;
	struct selector sel;
	int64_t cursor;
	struct reg_host page[PAGE];
	size_t npage, ipage;
	int retry_failed;
	int json;
	/* results */
	struct diff *diffs;
	size_t ndiff, cap;
	size_t asked, matching, unanswered, held, boxed, untargeted;
	int failed;
	pthread_mutex_t lock;
};

static int
converge_next(void *arg, struct swarm_job *j)
{
	struct converge *cv = arg;
	struct err e = ERR_INIT;
	struct reg_target *tg;

	for (;;) {
		if (cv->ipage == cv->npage) {
			if (registry_hosts_select(cv->c->reg, &cv->sel, &cv->cursor, PAGE, cv->page,
			    &cv->npage, &e) != 0) {
				log_warnx("swarm converge: %s", err_msg(&e));
				cv->failed = 1;
				return 0;
			}
			cv->ipage = 0;
			if (cv->npage == 0) {
				return 0;
			}
		}
		struct reg_host *h = &cv->page[cv->ipage++];
		tg = calloc(1, sizeof(*tg));
		if (tg == NULL) {
			cv->failed = 1;
			return 0;
		}
		int have = registry_target_of(cv->c->reg, h->name, tg, &e);
		if (have <= 0) {
			if (have < 0) {
				log_warnx("swarm converge: %s", err_msg(&e));
				cv->failed = 1;
			}
			free(tg);
			cv->untargeted++;
			continue;
		}
		j->host = *h;
		j->kind = SWARM_JOB_DRY_RUN;
		j->user = tg;
		return 1;
	}
}

static void
converge_done(void *arg, struct swarm_job *j)
{
	struct converge *cv = arg;
	struct reg_target *tg = j->user;
	struct err e = ERR_INIT;
	char holder[ROLLOUT_ID_LEN + 1];
	enum reg_rollout_state hst;
	int fails = 0, held;

	pthread_mutex_lock(&cv->lock);
	cv->asked++;
	if (!j->have_health) {
		cv->unanswered++;
		if (!cv->json) {
			fprintf(stderr, "converge: %s did not answer: %s\n", j->host.name, j->error);
		}
		goto out;
	}
	if (j->health.have_active && strcmp(j->health.active.sha256, tg->sha256) == 0) {
		cv->matching++;
		goto out;
	}
	held = registry_rollout_holding(cv->c->reg, j->host.name, holder, &hst, &e);
	if (held != 0) {
		cv->held++;
		if (!cv->json) {
			fprintf(stderr, "converge: %s is held by rollout %s (%s): left alone\n",
			    j->host.name, held > 0 ? holder : "?", held > 0 ?
			    registry_rollout_state_name(hst) : err_msg(&e));
		}
		goto out;
	}
	if (!cv->retry_failed &&
	    (registry_rollout_failures_of(cv->c->reg, j->host.name, tg->sha256, &fails, &e) != 0 ||
	    fails >= CONVERGE_PENALTY)) {
		cv->boxed++;
		if (!cv->json) {
			fprintf(stderr, "converge: %s failed target %s %d times: left alone until "
			    "--retry-failed\n", j->host.name, tg->label, fails);
		}
		goto out;
	}
	if (cv->ndiff == cv->cap) {
		size_t ncap = cv->cap == 0 ? 64 : cv->cap * 2;
		struct diff *p = realloc(cv->diffs, ncap * sizeof(*p));
		if (p == NULL) {
			cv->failed = 1;
			goto out;
		}
		cv->diffs = p;
		cv->cap = ncap;
	}
	snprintf(cv->diffs[cv->ndiff].host, sizeof(cv->diffs[cv->ndiff].host), "%s", j->host.name);
	snprintf(cv->diffs[cv->ndiff].sha256, sizeof(cv->diffs[cv->ndiff].sha256), "%s", tg->sha256);
	cv->ndiff++;
out:
	pthread_mutex_unlock(&cv->lock);
	free(tg);
	j->user = NULL;
}

/* The hosts of one target release among the differing ones (sorted by name). */
struct converge_pick {
	const struct diff *d;
	size_t n;
};

static int
diff_name_cmp(const void *key, const void *elem)
{
	return strcasecmp(key, ((const struct diff *)elem)->host);
}

static int
converge_wants(void *arg, const char *host)
{
	const struct converge_pick *p = arg;

	return bsearch(host, p->d, p->n, sizeof(*p->d), diff_name_cmp) != NULL;
}

static int
diff_cmp(const void *a, const void *b)
{
	const struct diff *x = a, *y = b;
	int c = strcmp(x->sha256, y->sha256);

	return c != 0 ? c : strcasecmp(x->host, y->host);
}

int
swarm_cmd_converge(struct cli *cli, int argc, char **argv)
{
	struct swarm_update_args a;
	struct swarm_ctx c;
	struct swarm_pool_opts po;
	struct converge *cv = NULL;
	struct err e = ERR_INIT;
	struct err se = ERR_INIT;
	int rc = CLI_EXIT_FAIL, ctx = 0, worst = CLI_EXIT_OK;

	if (swarm_converge_args_parse(argc, argv, &a, &e) != 0) {
		free(a.hosts);
		return cli_usage(cli, "%s", err_msg(&e));
	}
	a.json = cli->json;
	if (a.json && a.json_lines) {
		free(a.hosts);
		return cli_usage(cli, "--json and --json-lines exclude each other");
	}
	cv = calloc(1, sizeof(*cv));
	if (cv == NULL) {
		rc = cli_failf(cli, ERR_NOMEM, "out of memory");
		goto out;
	}
	pthread_mutex_init(&cv->lock, NULL);
	if (swarm_ctx_open(&c, cli->home, a.timeout_s, &se) != 0) {
		rc = cli_failf(cli, ERR_IO, "swarm converge: %s", err_msg(&se));
		goto out;
	}
	ctx = 1;
	c.quiet = 1;
	if (cmd_rollout_selector(&c, &a, &cv->sel, &e) != 0) {
		err_prefix(&e, "swarm converge");
		rc = cli_fail(cli, &e);
		goto out;
	}
	cv->c = &c;
	cv->retry_failed = a.retry_failed;
	cv->json = a.json || a.json_lines;
	memset(&po, 0, sizeof(po));
	po.parallel = a.parallel;
	po.next = converge_next;
	po.done = converge_done;
	po.arg = cv;
	if (swarm_run(&c, NULL, 0, &po) != 0 || cv->failed) {
		rc = cli_failf(cli, ERR_UNREACHABLE, "swarm converge: cannot ask the hosts");
		goto out;
	}
	if (cv->unanswered > 0) {
		worst = CLI_EXIT_FAIL;
	}
	if (cv->ndiff == 0) {
		if (a.json || a.json_lines) {
			cJSON *o = cJSON_CreateObject();
			if (o == NULL || json_add_str(o, "type", "converge") != 0 ||
			    json_add_int(o, "asked", (long long)cv->asked) != 0 ||
			    json_add_int(o, "matching", (long long)cv->matching) != 0 ||
			    json_add_int(o, "unanswered", (long long)cv->unanswered) != 0 ||
			    json_add_int(o, "held", (long long)cv->held) != 0 ||
			    json_add_int(o, "penalty_box", (long long)cv->boxed) != 0 ||
			    json_add_int(o, "without_target", (long long)cv->untargeted) != 0 ||
			    json_add_item(o, "rollouts", cJSON_CreateArray()) != 0) {
				cJSON_Delete(o);
				o = NULL;
			}
			rc = swarm_print_json(o) == CLI_EXIT_OK ? worst : CLI_EXIT_FAIL;
		} else {
			printf("converge: nothing to do: %zu host%s run%s its target", cv->matching,
			    cv->matching == 1 ? "" : "s", cv->matching == 1 ? "s" : "");
			printf("%s", cv->held + cv->boxed + cv->unanswered + cv->untargeted > 0 ? " (" : "");
			if (cv->held + cv->boxed + cv->unanswered + cv->untargeted > 0) {
				printf("%zu held, %zu in the penalty box, %zu unanswered, %zu without "
				    "a target)", cv->held, cv->boxed, cv->unanswered, cv->untargeted);
			}
			printf("\n");
			rc = fflush(stdout) == 0 ? worst : CLI_EXIT_FAIL;
		}
		goto out;
	}
	qsort(cv->diffs, cv->ndiff, sizeof(*cv->diffs), diff_cmp);
	if (a.dry_run) {
		for (size_t i = 0; i < cv->ndiff; i++) {
			char label[128] = "?";
			if (registry_release_label(c.reg, cv->diffs[i].sha256, label, sizeof(label),
			    &e) != 0) {
				snprintf(label, sizeof(label), "?");
			}
			printf("%s would be updated to %s (sha256 %.12s)\n", cv->diffs[i].host, label,
			    cv->diffs[i].sha256);
		}
		rc = fflush(stdout) == 0 ? worst : CLI_EXIT_FAIL;
		goto out;
	}
	/* One rollout per target release, of exactly the hosts that differ. */
	for (size_t i = 0; i < cv->ndiff;) {
		struct converge_pick pick;
		struct reg_rollout r;
		char id[ROLLOUT_ID_LEN + 1], label[128] = "";
		int one;
		size_t k = i;

		while (k < cv->ndiff && strcmp(cv->diffs[k].sha256, cv->diffs[i].sha256) == 0) {
			k++;
		}
		pick.d = &cv->diffs[i];
		pick.n = k - i;
		if (registry_release_label(c.reg, cv->diffs[i].sha256, label, sizeof(label), &e) != 0) {
			snprintf(label, sizeof(label), "?");
		}
		if (a.spec.name[0] == '\0' || strncmp(a.spec.name, "converge to ", 12) == 0) {
			snprintf(a.spec.name, sizeof(a.spec.name), "converge to %.100s", label);
		}
		if (rollout_create_filtered(&c, &a.spec, &cv->sel, converge_wants, &pick, 0,
		    cv->diffs[i].sha256, "converge", a.paused, id, &e) != 0) {
			log_warnx("swarm converge: %s", err_msg(&e));
			worst = CLI_EXIT_FAIL;
			i = k;
			continue;
		}
		if (registry_rollout_get(c.reg, id, &r, &e) == 0 && !a.json_lines) {
			fprintf(stderr, "rollout %s: converge %d host%s to %s\n", id, r.n_hosts,
			    r.n_hosts == 1 ? "" : "s", label);
		}
		c.quiet = 0;
		c.tty = isatty(STDERR_FILENO);
		one = a.paused ? ROLLOUT_EXIT_OPEN
			       : drive_and_report(&c, id, a.json, a.json_lines, a.include_self, NULL,
				   NULL);
		c.quiet = 1;
		if (one == CLI_EXIT_FAIL || (one == ROLLOUT_EXIT_OPEN && worst == CLI_EXIT_OK)) {
			worst = one;
		}
		if (cmd_stop_sig != 0) {
			break;
		}
		i = k;
	}
	rc = worst;
out:
	if (ctx) {
		swarm_ctx_close(&c);
	}
	if (cv != NULL) {
		pthread_mutex_destroy(&cv->lock);
		free(cv->diffs);
		free(cv);
	}
	free(a.hosts);
	return rc;
}

static int
target_cmd_set(struct cli *cli, int argc, char **argv)
{
	return target_run(cli, argc, argv, "set");
}

static int
target_cmd_list(struct cli *cli, int argc, char **argv)
{
	return target_run(cli, argc, argv, "list");
}

static int
target_cmd_clear(struct cli *cli, int argc, char **argv)
{
	return target_run(cli, argc, argv, "clear");
}

const struct cli_cmd cmd_target_subs[CMD_TARGET_N_SUBS] = {
	{
	    .name = "set",
	    .summary = "record the release the selected hosts should run",
	    .synopsis = "--hosts SEL --release FILE|DIR",
	    .description =
		"Copies the release into the master's store (HOME/store/SHA256.tar.gz, so\n"
		"nothing depends on the file later; checked as the updater checks it, once\n"
		"per stored copy)\n"
		"and records it as the target of every host SEL selects; 'swarm converge'\n"
		"then updates the hosts that differ.",
	    .opts = cmd_target_set_opts,
	    .example = "tandem swarm target set --hosts env=prod --release agent-1.2.0.tar.gz",
	    .run = target_cmd_set,
	},
	{
	    .name = "list",
	    .summary = "the hosts' targets",
	    .synopsis = "[--hosts SEL]",
	    .description = "Lists each selected host's target release, its sha256 and when it was set.",
	    .opts = cmd_target_list_opts,
	    .example = "tandem swarm target list --hosts env=prod",
	    .run = target_cmd_list,
	},
	{
	    .name = "clear",
	    .summary = "remove the selected hosts' targets",
	    .synopsis = "--hosts SEL",
	    .description = "Removes the target of every host SEL selects: converge leaves them alone.",
	    .opts = cmd_target_clear_opts,
	    .example = "tandem swarm target clear --hosts web1",
	    .run = target_cmd_clear,
	},
};

