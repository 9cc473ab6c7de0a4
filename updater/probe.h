/*
 * probe — decide whether a freshly started program (the agent; for the
 * launcher, a new updater) is healthy.
 *
 * GET /health over mTLS with the updater's own certificate (common/httpc),
 * on a fresh connection per attempt. Phase 1: attempts every
 * first_interval_ms, the interval doubling up to max_interval_ms, until one
 * PASSES or deadline_ms ran out. Phase 2 (stability window): the process
 * must stay alive for stable_ms and every /health answer during that window
 * must still pass.
 *
 * Each attempt is classified. Evidence: an answer that is wrong (status or
 * body), or the process exiting (at once, from the pidfd or alive()).
 * Inconclusive: no answer — refused, connect / handshake / answer timed out
 * after attempt_timeout_ms — which on a loaded host says nothing about the
 * release. Phase 1 retries everything until deadline_ms (a starting agent
 * may answer 503, an old one still on the port answers the old version).
 * Phase 2 fails at once on evidence; inconclusive attempts are retried, the
 * window extended until it ends on a passing attempt, and only deadline_ms
 * without any answer in a row fails it. So the probe fails on silence only
 * after a whole deadline_ms of it with the process alive (a release that
 * cannot answer once in that time is not usable), never after one slow
 * attempt. Worst case length: deadline_ms + stable_ms + deadline_ms.
 *
 * An attempt passes only if the status is 200 AND the body is a JSON object
 * whose "version" equals expect_version (when given) and whose
 * "release"."sha256" equals expect_sha256 (when given): a stale old process
 * still holding the port can never pass. Between attempts the probe waits
 * in poll() on the pidfd (readable: the process died) and the cancel fd, so
 * a dead agent fails at once instead of at the deadline; with only an alive()
 * callback it is consulted at least every 50 ms.
 */
#ifndef TANDEM_UPDATER_PROBE_H
#define TANDEM_UPDATER_PROBE_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/tls.h"
#include "common/util.h"

#define PROBE_DEFAULT_PATH "/health"

struct probe_opts {
	struct tls_ctx *tls;          /* client context with the updater's cert (borrowed) */
	const char *host;             /* agent probe address, e.g. "127.0.0.1" */
	const char *port;
	const char *pin_fp;           /* agent leaf pin (64 hex); NULL/"": CA only */
	const char *sni_hostname;     /* NULL when connecting by IP */
	const char *path;             /* NULL: PROBE_DEFAULT_PATH */
	const char *expect_version;   /* NULL/"": not checked */
	const char *expect_sha256;    /* NULL/"": not checked (at least one of the two required) */
	int first_interval_ms;        /* first wait between attempts (default 20) */
	int max_interval_ms;          /* interval cap (default 1000) */
	int deadline_ms;              /* phase 1 budget, from the call (default 30000); an
					 attempt started just before it still gets up to 200 ms */
	int stable_ms;                /* phase 2 length (default 3000; 0: none) */
	int stable_interval_ms;       /* attempts during phase 2 (default 500) */
	int attempt_timeout_ms;       /* connect + exchange of one attempt (default 2000) */
	size_t max_body;              /* /health body limit (default 64 KiB) */
	int pidfd;                    /* >= 0: readable means the process is gone; -1: none */
	int (*alive)(void *arg);      /* optional: 0 means the process is gone */
	void *alive_arg;
	int cancel_fd;                /* >= 0: readable aborts the probe (shutdown); -1: none */
};

/* Defaults as documented above; pidfd and cancel_fd -1, no expectations. */
void probe_opts_init(struct probe_opts *o);

struct probe_result {
	int passed;          /* 1 if the probe passed */
	int status;          /* HTTP status of the last response; 0 if none came */
	char *body;          /* last /health body (heap, NUL-terminated), NULL if none;
				on success: the passing body, for the /update response */
	unsigned attempts;   /* requests sent */
	unsigned answered_bad; /* attempts answered, but wrong (status or body): evidence */
	unsigned inconclusive; /* attempts without an answer (refused, timed out, TLS) */
	int64_t elapsed_ms;  /* whole probe */
	int64_t first_pass_ms; /* time to the first passing attempt; -1 if none */
	/*
	 * On failure, why: ERR_TIMEOUT "no healthy answer within 30000 ms:
	 * connect to 127.0.0.1:8765: Connection refused" (or "... (last
	 * answer: version is ...)"), ERR_PROBE "agent exited during the
	 * probe ...", ERR_PROTOCOL "stability window: version is \"1.0\",
	 * expected \"1.1\"", ERR_CANCELED "probe cancelled", ERR_INTERNAL
	 * for bad options. ERR_OK when it passed.
	 */
	struct err err;
};

/*
 * Run the probe. RES is initialised here (free it with probe_result_free()
 * in every case). Returns 0 if it passed, -1 if it failed (RES->err says
 * why).
 */
int probe_run(const struct probe_opts *o, struct probe_result *res) WUR;

void probe_result_free(struct probe_result *res);

/*
 * One attempt, no waiting and no stability window: the launcher's watchdog
 * check of its running updater. Needs tls, host, port and
 * attempt_timeout_ms (connect + exchange); the expectations are checked
 * when given (none is required: a 200 with a JSON object passes).
 * deadline, intervals, pidfd and cancel_fd are not used. RES as for
 * probe_run(); on failure RES->err is ERR_UNREACHABLE (no answer: refused,
 * timed out, TLS) or ERR_PROBE (a wrong answer). Returns 0 or -1.
 */
int probe_once(const struct probe_opts *o, struct probe_result *res) WUR;

/*
 * The body check of one attempt, exposed for tests: 0 if BODY (LEN bytes)
 * is a JSON object whose "version" / "release"."sha256" match the
 * expectations that are not NULL/""; -1 with E (ERR_PROBE) otherwise.
 */
int probe_check_body(const char *body, size_t len, const char *expect_version,
    const char *expect_sha256, struct err *e) WUR;

#endif
