#include "updater/probe.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/httpc.h"
#include "common/json.h"
#include "common/log.h"

/* With only an alive() callback, it is consulted at least this often. */
#define PROBE_ALIVE_SLICE_MS 50
/* An attempt near the deadline still gets this long (or attempt_timeout_ms). */
#define PROBE_MIN_ATTEMPT_MS 200

enum wait_result {
	WAIT_TIMEOUT = 0,
	WAIT_DEAD = 1,
	WAIT_CANCEL = 2,
};

void
probe_opts_init(struct probe_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->path = PROBE_DEFAULT_PATH;
	o->first_interval_ms = 20;
	o->max_interval_ms = 1000;
	o->deadline_ms = 30000;
	o->stable_ms = 3000;
	o->stable_interval_ms = 500;
	o->attempt_timeout_ms = 2000;
	o->max_body = 64 * 1024;
	o->pidfd = -1;
	o->cancel_fd = -1;
}

void
probe_result_free(struct probe_result *res)
{
	if (res == NULL) {
		return;
	}
	free(res->body);
	res->body = NULL;
}

static int
nonempty(const char *s)
{
	return s != NULL && s[0] != '\0';
}

int
probe_check_body(const char *body, size_t len, const char *expect_version,
    const char *expect_sha256, struct err *e)
{
	struct err pe = ERR_INIT;
	cJSON *root;
	const cJSON *v, *rel, *sha;
	int rc = -1;

	root = json_parse_object(body, len, &pe);
	if (root == NULL) {
		err_set(e, ERR_PROBE, "body is not a JSON object: %s", err_msg(&pe));
		return -1;
	}
	if (nonempty(expect_version)) {
		v = cJSON_GetObjectItemCaseSensitive(root, "version");
		if (!cJSON_IsString(v)) {
			err_set(e, ERR_PROBE, "no \"version\" string in the body, expected \"%s\"",
			    expect_version);
			goto out;
		}
		if (strcmp(v->valuestring, expect_version) != 0) {
			err_set(e, ERR_PROBE, "version is \"%.64s\", expected \"%s\"",
			    v->valuestring, expect_version);
			goto out;
		}
	}
	if (nonempty(expect_sha256)) {
		rel = cJSON_GetObjectItemCaseSensitive(root, "release");
		sha = cJSON_IsObject(rel) ? cJSON_GetObjectItemCaseSensitive(rel, "sha256") : NULL;
		if (!cJSON_IsString(sha)) {
			err_set(e, ERR_PROBE, "no \"release\".\"sha256\" string in the body, expected %s",
			    expect_sha256);
			goto out;
		}
		if (strcasecmp(sha->valuestring, expect_sha256) != 0) {
			err_set(e, ERR_PROBE, "release.sha256 is %.64s, expected %s",
			    sha->valuestring, expect_sha256);
			goto out;
		}
	}
	rc = 0;
out:
	cJSON_Delete(root);
	return rc;
}

static int
readable(int fd)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN, .revents = 0 };

	return fd >= 0 && poll(&pfd, 1, 0) == 1;
}

static int
is_dead(const struct probe_opts *o)
{
	if (readable(o->pidfd)) {
		return 1;
	}
	return o->alive != NULL && o->alive(o->alive_arg) == 0;
}

/* Wait up to MS for nothing to happen; report death or cancellation early. */
static enum wait_result
wait_for(const struct probe_opts *o, int ms)
{
	int64_t deadline = mono_ms() + (ms < 0 ? 0 : ms);
	struct pollfd pfd[2];
	nfds_t n;
	int left, slice, i;

	for (;;) {
		if (readable(o->cancel_fd)) {
			return WAIT_CANCEL;
		}
		if (is_dead(o)) {
			return WAIT_DEAD;
		}
		left = ms_until(deadline);
		if (left == 0) {
			return WAIT_TIMEOUT;
		}
		slice = left;
		if (o->alive != NULL && slice > PROBE_ALIVE_SLICE_MS) {
			slice = PROBE_ALIVE_SLICE_MS;
		}
		n = 0;
		if (o->pidfd >= 0) {
			pfd[n].fd = o->pidfd;
			pfd[n].events = POLLIN;
			pfd[n].revents = 0;
			n++;
		}
		if (o->cancel_fd >= 0) {
			pfd[n].fd = o->cancel_fd;
			pfd[n].events = POLLIN;
			pfd[n].revents = 0;
			n++;
		}
		for (i = 0; i < (int)n; i++) {
			pfd[i].revents = 0;
		}
		if (poll(n > 0 ? pfd : NULL, n, slice) < 0 && errno != EINTR) {
			return WAIT_TIMEOUT;
		}
	}
}

/* One GET. 0 if it passed; -1 with WHY. RES gets the status and body. */
static int
attempt(const struct probe_opts *o, int timeout_ms, struct probe_result *res, struct err *why)
{
	struct httpc_target t;
	struct httpc_response resp;
	int rc;

	if (timeout_ms < 1) {
		timeout_ms = 1;
	}
	httpc_target_init(&t);
	t.host = o->host;
	t.port = o->port;
	t.pin_fp = o->pin_fp;
	t.sni_hostname = o->sni_hostname;
	t.connect_timeout_ms = timeout_ms;
	t.io_timeout_ms = timeout_ms;
	t.total_timeout_ms = timeout_ms;
	t.max_body = o->max_body;
	res->attempts++;
	memset(&resp, 0, sizeof(resp));
	if (httpc_fetch(o->tls, &t, "GET", nonempty(o->path) ? o->path : PROBE_DEFAULT_PATH, NULL,
	    NULL, 0, &resp, why) != 0) {
		/* Whatever failed (refused, timed out, TLS), the agent did not answer. */
		err_rekind(why, ERR_UNREACHABLE);
		httpc_response_free(&resp);
		return -1;
	}
	res->status = resp.status;
	free(res->body);
	res->body = resp.body;
	resp.body = NULL;
	httpc_response_free(&resp);
	if (res->status != 200) {
		err_set(why, ERR_PROBE, "GET %s answered %d", nonempty(o->path) ? o->path :
		    PROBE_DEFAULT_PATH, res->status);
		return -1;
	}
	rc = probe_check_body(res->body, strlen(res->body), o->expect_version, o->expect_sha256,
	    why);
	return rc;
}

/* The probe failed: KIND and why (the result's err), the time spent; yields -1. */
#define probe_fail(res, t0, kind, ...) \
	(err_set(&(res)->err, (kind), __VA_ARGS__), (res)->passed = 0, \
	    (res)->elapsed_ms = mono_ms() - (t0), -1)

int
probe_run(const struct probe_opts *o, struct probe_result *res)
{
	struct err why = ERR_INIT, answer_why = ERR_INIT;
	int status_before;
	int64_t t0 = mono_ms(), deadline, stable_end, now, silent_since;
	int interval, left;
	enum wait_result w;

	memset(res, 0, sizeof(*res));
	err_clear(&res->err);
	res->first_pass_ms = -1;
	err_set(&why, ERR_PROBE, "no attempt made");
	if (o->tls == NULL || !nonempty(o->host) || !nonempty(o->port)) {
		return probe_fail(res, t0, ERR_INTERNAL, "probe: no TLS context or address");
	}
	if (!nonempty(o->expect_version) && !nonempty(o->expect_sha256)) {
		return probe_fail(res, t0, ERR_INTERNAL,
		    "probe: neither a version nor a sha256 to expect");
	}
	if (o->deadline_ms <= 0 || o->first_interval_ms <= 0 || o->stable_ms < 0 ||
	    o->max_interval_ms < o->first_interval_ms || o->attempt_timeout_ms <= 0 ||
	    (o->stable_ms > 0 && o->stable_interval_ms <= 0)) {
		return probe_fail(res, t0, ERR_INTERNAL, "probe: invalid timings");
	}
	deadline = t0 + o->deadline_ms;
	interval = o->first_interval_ms;

	/* Phase 1: until the first passing answer. */
	for (;;) {
		if (readable(o->cancel_fd)) {
			return probe_fail(res, t0, ERR_CANCELED, "probe cancelled");
		}
		if (is_dead(o)) {
			return probe_fail(res, t0, ERR_PROBE,
			    "agent exited during the probe (%u attempts; last: %.500s)", res->attempts,
			    err_msg(&why));
		}
		left = ms_until(deadline);
		if (left < PROBE_MIN_ATTEMPT_MS) {
			left = PROBE_MIN_ATTEMPT_MS;
		}
		status_before = res->status;
		res->status = 0;
		if (attempt(o, left < o->attempt_timeout_ms ? left : o->attempt_timeout_ms, res,
			&why) == 0) {
			break;
		}
		if (res->status == 200) {
			/* A 200 with the wrong version, sha256 or body is evidence
			 * that this release is not the one asked for: waiting longer
			 * cannot change it, so it fails at once (a non-200, say a 503
			 * while the release starts, is retried). */
			res->answered_bad++;
			return probe_fail(res, t0, ERR_PROTOCOL, "wrong answer after %u attempts: %s",
			    res->attempts, err_msg(&why));
		}
		if (res->status != 0) {
			res->answered_bad++;
			err_copy(&answer_why, &why);
		} else {
			res->inconclusive++;
			res->status = status_before; /* keep the last status that came */
		}
		log_debug("probe %s:%s: %s", o->host, o->port, err_msg(&why));
		left = ms_until(deadline);
		if (left == 0) {
			if (err_failed(&answer_why) &&
			    strcmp(err_msg(&answer_why), err_msg(&why)) != 0) {
				return probe_fail(res, t0, ERR_TIMEOUT,
				    "no healthy answer within %d ms: %.400s (last answer: %.400s)",
				    o->deadline_ms, err_msg(&why), err_msg(&answer_why));
			}
			if (!err_failed(&answer_why)) {
				/* Only inconclusive attempts, for the whole deadline: a
				 * release that cannot answer once in deadline_ms while
				 * alive is not usable, whatever the reason. */
				return probe_fail(res, t0, ERR_TIMEOUT,
				    "no healthy answer within %d ms: no attempt got an answer while "
				    "the agent stayed alive (%u attempts): %s", o->deadline_ms,
				    res->attempts, err_msg(&why));
			}
			return probe_fail(res, t0, ERR_TIMEOUT, "no healthy answer within %d ms: %s",
			    o->deadline_ms, err_msg(&why));
		}
		w = wait_for(o, interval < left ? interval : left);
		if (w == WAIT_CANCEL) {
			return probe_fail(res, t0, ERR_CANCELED, "probe cancelled");
		}
		if (w == WAIT_DEAD) {
			return probe_fail(res, t0, ERR_PROBE,
			    "agent exited during the probe (%u attempts; last: %.500s)", res->attempts,
			    err_msg(&why));
		}
		interval = interval > o->max_interval_ms / 2 ? o->max_interval_ms : interval * 2;
	}
	now = mono_ms();
	res->first_pass_ms = now - t0;
	if (o->stable_ms > 0) {
		log_info("probe %s:%s: first pass after %lld ms (%u attempts); stability window %d ms",
		    o->host, o->port, (long long)res->first_pass_ms, res->attempts, o->stable_ms);
	}

	/*
	 * Phase 2: stay alive and keep passing for stable_ms. A wrong answer
	 * is evidence and fails at once. No answer (refused, timed out, a slow
	 * handshake on a loaded host) is inconclusive: the window goes on, past
	 * its end if need be, because it always ends on a passing attempt; only
	 * deadline_ms without any answer in a row (the same silence phase 1
	 * tolerates) fails it.
	 */
	stable_end = now + o->stable_ms;
	silent_since = -1;
	while (o->stable_ms > 0) {
		left = ms_until(stable_end);
		w = wait_for(o, left < o->stable_interval_ms ? left : o->stable_interval_ms);
		if (w == WAIT_CANCEL) {
			return probe_fail(res, t0, ERR_CANCELED, "probe cancelled");
		}
		if (w == WAIT_DEAD) {
			return probe_fail(res, t0, ERR_PROBE,
			    "agent exited during the %d ms stability window (%lld ms after it passed)",
			    o->stable_ms, (long long)(mono_ms() - t0 - res->first_pass_ms));
		}
		now = mono_ms();
		if (silent_since < 0) {
			silent_since = now;
		}
		/* This attempt may use what is left of the silence budget, never less than the minimum. */
		left = (int)(silent_since + o->deadline_ms - now);
		if (left < PROBE_MIN_ATTEMPT_MS) {
			left = PROBE_MIN_ATTEMPT_MS;
		}
		status_before = res->status;
		res->status = 0;
		if (attempt(o, left < o->attempt_timeout_ms ? left : o->attempt_timeout_ms, res,
			&why) != 0) {
			if (res->status != 0) {
				res->answered_bad++;
				return probe_fail(res, t0, ERR_PROTOCOL, "stability window: %s",
				    err_msg(&why));
			}
			res->status = status_before;
			res->inconclusive++;
			log_debug("probe %s:%s: stability window, no answer (inconclusive): %s",
			    o->host, o->port, err_msg(&why));
			if (mono_ms() - silent_since >= o->deadline_ms) {
				if (is_dead(o)) {
					return probe_fail(res, t0, ERR_PROBE,
					    "agent exited during the %d ms stability window", o->stable_ms);
				}
				return probe_fail(res, t0, ERR_TIMEOUT,
				    "stability window: no answer for %d ms while the agent stayed "
				    "alive (%u attempts without an answer): %s", o->deadline_ms,
				    res->inconclusive, err_msg(&why));
			}
			continue; /* try again, also past the end of the window */
		}
		silent_since = -1;
		if (ms_until(stable_end) == 0) {
			break;
		}
	}
	if (is_dead(o)) {
		return probe_fail(res, t0, ERR_PROBE, "agent exited at the end of the stability window");
	}
	res->passed = 1;
	err_clear(&res->err);
	res->elapsed_ms = mono_ms() - t0;
	return 0;
}

int
probe_once(const struct probe_opts *o, struct probe_result *res)
{
	struct err why = ERR_INIT;
	int64_t t0 = mono_ms();

	memset(res, 0, sizeof(*res));
	err_clear(&res->err);
	res->first_pass_ms = -1;
	if (o->tls == NULL || !nonempty(o->host) || !nonempty(o->port) ||
	    o->attempt_timeout_ms <= 0) {
		return probe_fail(res, t0, ERR_INTERNAL, "probe: no TLS context, address or timeout");
	}
	if (attempt(o, o->attempt_timeout_ms, res, &why) != 0) {
		err_copy(&res->err, &why);
		res->elapsed_ms = mono_ms() - t0;
		return -1;
	}
	res->passed = 1;
	res->elapsed_ms = mono_ms() - t0;
	res->first_pass_ms = res->elapsed_ms;
	return 0;
}
