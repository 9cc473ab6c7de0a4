/*
 * masterpins — which master certificates may operate this updater, and how
 * that set rolls over online when the master renews its own certificate
 * (tandem pki renew-master).
 *
 * The configuration's master_fingerprints is the floor: the pins installed
 * at enrollment, never rewritten (the config file may be read-only). A
 * rollover records what changed in the state directory,
 * STATE/master_pins.json (written atomically, 0644):
 *
 *   {"added":["<fp>",...],"retired":["<fp>",...]}
 *
 * The pins in force are (configured + added) - retired. "retired" only ever
 * names configured pins (an added pin that goes is simply dropped), so both
 * lists stay small. Without configured pins the updater accepts any master
 * certificate of its CA with the master CN; a rollover then has nothing to
 * record and the state file is not written. A state file that does not read
 * is logged and ignored: the configured pins (the floor) apply.
 *
 * Steps (PUT /pins/master, updater/renew):
 *   add FP       FP is accepted beside the pins in force (asked with the
 *                current master certificate);
 *   confirm FP   FP becomes the only pin (asked over a connection that
 *                presents FP: proof that the master switched to it).
 * Both are idempotent and each is one atomic write (test point
 * "pins.written" right after it): a crash leaves the set before or after.
 */
#ifndef TANDEM_UPDATER_MASTERPINS_H
#define TANDEM_UPDATER_MASTERPINS_H

#include <limits.h>
#include <stddef.h>

#include "cJSON.h"
#include "common/err.h"
#include "common/tls.h"
#include "common/util.h"

#define MASTERPINS_FILE "master_pins.json"
/* Most pins in each list (configured, added, retired). */
#define MASTERPINS_MAX 8
/* Largest state file or request body read. */
#define MASTERPINS_MAX_BYTES 4096

struct masterpins {
	char path[PATH_MAX]; /* STATE/master_pins.json ("" : never saved, tests) */
	char cfg[MASTERPINS_MAX][TLS_FP_HEX_LEN + 1];
	size_t ncfg;
	char added[MASTERPINS_MAX][TLS_FP_HEX_LEN + 1];
	size_t nadded;
	char retired[MASTERPINS_MAX][TLS_FP_HEX_LEN + 1];
	size_t nretired;
};

/*
 * Set up MP from the configured pins CFG_PINS (NULL-terminated, may be NULL)
 * and STATE_DIR/master_pins.json. A state file that cannot be read or
 * parsed leaves the floor alone and returns 1 with E saying why (the caller
 * logs it); 0 when it was read or absent; -1 with E when the configured pins
 * are unusable (more than MASTERPINS_MAX, not 64 hex digits).
 */
int masterpins_load(struct masterpins *mp, char *const *cfg_pins, const char *state_dir,
    struct err *e) WUR;

/*
 * Parse a state file's text (BUF, LEN bytes) into MP's added and retired
 * lists (the configured pins stay). ERR_FORMAT for anything but the object
 * above with lists of at most MASTERPINS_MAX 64-hex fingerprints.
 */
int masterpins_parse(struct masterpins *mp, const char *buf, size_t len, struct err *e) WUR;

/* 1 when pins are configured (the floor restricts the masters), else 0. */
int masterpins_pinned(const struct masterpins *mp);

/* 1 when a master presenting FP may operate this updater. */
int masterpins_allowed(const struct masterpins *mp, const char *fp);

/* The steps above; each saves the state (unless unpinned or nothing changes). */
int masterpins_add(struct masterpins *mp, const char *fp, struct err *e) WUR;
int masterpins_confirm(struct masterpins *mp, const char *fp, struct err *e) WUR;

/* Append the pins in force to the JSON array ARR. */
int masterpins_json(const struct masterpins *mp, cJSON *arr) WUR;

/* A PUT /pins/master body: {"add": FP} or {"confirm": FP}. */
enum masterpins_op { MASTERPINS_ADD = 0, MASTERPINS_CONFIRM = 1 };
int masterpins_request_parse(const char *buf, size_t len, enum masterpins_op *op,
    char fp[TLS_FP_HEX_LEN + 1], struct err *e) WUR;

#endif
