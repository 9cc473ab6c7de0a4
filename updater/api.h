/*
 * api — the updater's HTTP face: the routes of common/httpd and the
 * translation between HTTP and the install engine (updater/install).
 *
 *   GET  /health        any CA-signed certificate
 *   GET  /releases      master
 *   GET  /history       master
 *   POST /update        master: a release tarball (multipart: sha, sha256, tarball)
 *   POST /update-self   master: a new updater (... and confirm_self=true)
 *   POST /rollback      master
 *
 * Nothing here installs anything: a handler checks the request (role,
 * master pin, form fields), hands a plan to the engine and maps the
 * engine's outcome to a status and a JSON body in one function
 * (api_answer). wiki/API.md is the reference of every route and answer.
 */
#ifndef TANDEM_UPDATER_API_H
#define TANDEM_UPDATER_API_H

#include <stddef.h>

#include "common/err.h"
#include "common/util.h"
#include "updater/config.h"

struct api;

/*
 * Set up the daemon from CFG (borrowed for the lifetime of the api): TLS
 * contexts, the agent's supervision and the install engine (which recovers
 * an interrupted operation first). The process's working directory must be
 * CFG->install_dir (extraction is relative to it). Nothing listens and no
 * agent runs yet. 0 or -1 with E.
 */
int api_new(const struct updater_config *cfg, struct api **out, struct err *e) WUR;

/*
 * When SEED (a release tarball path, may be NULL) is given and no release is
 * installed, install it first (a failure is fatal: nothing is left
 * installed). Otherwise adopt the agent an earlier updater left running, or
 * start it from `current`. Then serve. 0 or -1 with E (an agent that will
 * not start is not fatal: /health reports it and the supervisor retries).
 */
int api_start(struct api *a, const char *seed, struct err *e) WUR;

/* The port the server listens on (after api_start). */
int api_port(const struct api *a);

/*
 * Stop serving (in-flight requests get GRACE_MS), stop the agent when
 * configured (stop_agent_on_exit, and not while handing over to a new
 * updater) or leave it running for the next updater to adopt, free A.
 * NULL is fine.
 */
void api_free(struct api *a, int grace_ms);

#endif
