/*
 * registry — the master's host registry: HOME/registry.db (SQLite).
 *
 * One row per enrolled host (name, address, ports, certificate fingerprints,
 * notes, enrollment and decommission times) and a per-host push log for
 * `tandem swarm history`. The database is created 0600 inside a 0700 HOME,
 * carries its schema version in a table and is migrated forward on open;
 * it runs in WAL mode (or the file system's fallback journal) with
 * synchronous=FULL, foreign keys on and a busy timeout, so concurrent
 * `tandem` processes wait for each other instead of failing.
 *
 * Every statement is prepared with bound parameters; no SQL is ever built
 * from input. A handle may be shared between threads: calls are serialised.
 *
 * Functions that can fail return REGISTRY_OK (0) or a negative enum reg_status,
 * and set E (may be NULL) with a matching kind: ERR_NOT_FOUND, ERR_CONFLICT,
 * ERR_BAD_REQUEST for REGISTRY_NOTFOUND, _EXISTS, _INVALID; for REGISTRY_ERR
 * ERR_IO (ERR_NOSPACE, ERR_BUSY, ERR_NOMEM), or ERR_FORMAT for a file that is
 * not a usable tandem registry.
 */
#ifndef TANDEM_MASTER_REGISTRY_H
#define TANDEM_MASTER_REGISTRY_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "common/err.h"
#include "common/util.h"

#define REGISTRY_FILE "registry.db"
#define REG_DEFAULT_AGENT_PORT 8765
#define REG_DEFAULT_UPDATER_PORT 8766

#define REG_NAME_MAX 63      /* host name, bytes */
#define REG_ADDRESS_MAX 255  /* address (host name or IP literal), bytes */
#define REG_NOTES_MAX 1023   /* free-form notes, bytes */
#define REG_SANS_MAX 32      /* extra SANs recorded per host */
#define REG_SAN_LEN 253      /* one SAN (DNS name or IP literal), bytes */
#define REG_FP_LEN 64        /* sha256 of a certificate's DER, lowercase hex */
#define REG_RESULT_MAX 31    /* push result word ("updated", "rolled_back", ...) */
#define REG_DETAIL_MAX 1023  /* push detail; longer text is cut at a UTF-8 boundary */
#define REG_SERIAL_MAX 40    /* certificate serial, canonical hex (pki/crl.h) */
#define REG_SUBJECT_MAX 127  /* a revoked certificate's CN */

enum reg_status {
	REGISTRY_OK = 0,
	REGISTRY_ERR = -1,      /* database or I/O failure, corrupt or foreign file */
	REGISTRY_NOTFOUND = -2, /* no host of that name */
	REGISTRY_EXISTS = -3,   /* a host of that name is already registered */
	REGISTRY_INVALID = -4,  /* an argument failed validation (E says which) */
};

struct registry; /* opaque */

struct reg_host {
	char name[REG_NAME_MAX + 1];
	char address[REG_ADDRESS_MAX + 1];
	int agent_port;
	int updater_port;
	char agent_fp[REG_FP_LEN + 1];
	char updater_fp[REG_FP_LEN + 1]; /* "" until enrolled with --updater */
	/* A renewal under way: the next certificate, accepted beside the one
	 * above until the host confirmed it ("" otherwise). */
	char agent_fp_next[REG_FP_LEN + 1];
	char updater_fp_next[REG_FP_LEN + 1];
	char notes[REG_NOTES_MAX + 1];
	time_t enrolled_at;
	time_t decommissioned_at; /* 0 while in service */
};

struct reg_push {
	char host[REG_NAME_MAX + 1];
	time_t at;
	char sha256[REG_FP_LEN + 1]; /* "" when the operation had no tarball (rollback) */
	char result[REG_RESULT_MAX + 1];
	char detail[REG_DETAIL_MAX + 1];
};

/*
 * Host names: 1..REG_NAME_MAX bytes of [A-Za-z0-9._-], starting with a letter
 * or digit (DNS-like; '@', '/', blanks and control characters are refused).
 * Names are compared case-insensitively ("Web1" and "web1" are one host).
 * Returns 1 if NAME is acceptable.
 */
int registry_name_valid(const char *name) WUR;

/*
 * Open (creating if needed) HOME/registry.db; HOME is created 0700 if
 * missing. A new database file is created 0600. Refuses, with a clear E,
 * a file that is not an SQLite database, an SQLite database that is not a
 * tandem registry, and a registry written by a newer schema. On success
 * *OUT is the handle (free with registry_close()).
 */
int registry_open(const char *home, struct registry **out, struct err *e) WUR;
/* Close the handle; NULL is fine. */
void registry_close(struct registry *reg);
/* Schema version of the open database (REG_SCHEMA_VERSION after open). */
int registry_schema_version(struct registry *reg);

/*
 * Register H. name, address and agent_fp are required; ports 0 take the
 * defaults; updater_fp may be ""; enrolled_at 0 means now;
 * decommissioned_at is ignored (a new host is in service). Fingerprints
 * are accepted in either case and stored lowercase. REGISTRY_EXISTS when the
 * name (case-insensitively) is taken, decommissioned or not.
 */
int registry_add_host(struct registry *reg, const struct reg_host *h, struct err *e) WUR;

/*
 * The extra subjectAltNames host NAME was enrolled with (--san), in order,
 * so that its renewed certificates carry them too. registry_set_sans()
 * replaces them in one transaction (at most REG_SANS_MAX of 1..REG_SAN_LEN
 * bytes; the caller checked their syntax); registry_get_sans() copies at
 * most MAX into OUT (*N of them). REGISTRY_NOTFOUND without such a host.
 */
int registry_set_sans(struct registry *reg, const char *host, const char *const *sans, size_t n,
    struct err *e) WUR;
int registry_get_sans(struct registry *reg, const char *host, char (*out)[REG_SAN_LEN + 1],
    size_t max, size_t *n, struct err *e) WUR;

/* Fill *OUT with host NAME; REGISTRY_NOTFOUND if there is none. */
int registry_get_host(struct registry *reg, const char *name, struct reg_host *out,
    struct err *e) WUR;

/*
 * All hosts ordered by name, decommissioned ones only if
 * INCLUDE_DECOMMISSIONED. *OUT is a malloc'd array of *N hosts (caller
 * frees; NULL when *N is 0).
 */
int registry_list_hosts(struct registry *reg, int include_decommissioned,
    struct reg_host **out, size_t *n, struct err *e) WUR;

/* Record (or replace) host NAME's updater certificate fingerprint FP. */
int registry_set_updater_fp(struct registry *reg, const char *name, const char *fp,
    struct err *e) WUR;

/*
 * Pin rollover during a renewal. registry_set_next_fp() records FP (NULL:
 * clears) as the next agent (AGENT != 0) or updater certificate of host
 * NAME; connections accept both until registry_promote_next_fp() makes the
 * next one, which must still be FP, the only one (REGISTRY_NOTFOUND when
 * it is not).
 */
int registry_set_next_fp(struct registry *reg, const char *name, int agent, const char *fp,
    struct err *e) WUR;
int registry_promote_next_fp(struct registry *reg, const char *name, int agent, const char *fp,
    struct err *e) WUR;

/*
 * Mark host NAME decommissioned at WHEN (0: now). The host stays in the
 * registry (and in its history) but leaves the default listing. Already
 * decommissioned: REGISTRY_OK, and the original time is kept.
 */
int registry_decommission(struct registry *reg, const char *name, time_t when,
    struct err *e) WUR;

/*
 * Append P to the push log of host P->host (P->at 0: now). sha256 must be ""
 * or 64 hex digits, result 1..REG_RESULT_MAX bytes of [a-z0-9_-]; detail as
 * set by registry_push_set_detail().
 */
int registry_log_push(struct registry *reg, const struct reg_push *p, struct err *e) WUR;

/*
 * Copy TEXT (NULL: "") into P->detail, cut to REG_DETAIL_MAX bytes at a
 * UTF-8 character boundary (worker error bodies can be long).
 */
void registry_push_set_detail(struct reg_push *p, const char *text);

/*
 * Host NAME's push log, newest first, at most LIMIT entries (0: all).
 * *OUT is a malloc'd array of *N entries (caller frees; NULL when *N is 0).
 * REGISTRY_NOTFOUND if the host does not exist.
 */
int registry_push_history(struct registry *reg, const char *name, size_t limit,
    struct reg_push **out, size_t *n, struct err *e) WUR;

/* A revoked certificate (the CRL lists every one of them). */
struct reg_revocation {
	char serial[REG_SERIAL_MAX + 1];   /* canonical hex: lowercase, no leading 00 */
	char fp[REG_FP_LEN + 1];           /* "" when the certificate was not at hand */
	char subject[REG_SUBJECT_MAX + 1]; /* its CN, "" when unknown */
	int reason;                        /* enum crl_reason */
	time_t at;                         /* 0: now */
};

/*
 * Record R. REGISTRY_EXISTS (nothing changed) when the serial is already
 * revoked; REGISTRY_INVALID for a serial that is not canonical hex or a bad
 * fingerprint.
 */
int registry_revoke(struct registry *reg, const struct reg_revocation *r, struct err *e) WUR;

/* Every revocation, oldest first (malloc'd array, caller frees; NULL when *N is 0). */
int registry_revocations(struct registry *reg, struct reg_revocation **out, size_t *n,
    struct err *e) WUR;

/*
 * Take the next CRL number (1, 2, ...: strictly increasing, also across
 * failed attempts) and record the validity of the CRL about to be signed.
 */
int registry_crl_next(struct registry *reg, time_t this_update, time_t next_update,
    unsigned long long *number, struct err *e) WUR;

/* The last CRL's number and validity; REGISTRY_NOTFOUND before the first. */
int registry_crl_state(struct registry *reg, unsigned long long *number, time_t *this_update,
    time_t *next_update, struct err *e) WUR;

/*
 * Write a consistent snapshot of the registry (SQLite's online backup API:
 * concurrent writers wait) to the new file PATH (created 0600, must not
 * exist or be empty), in rollback-journal mode so it is one self-contained
 * file.
 */
int registry_backup_to(struct registry *reg, const char *path, struct err *e) WUR;

/* ---- labels, selection, the release store's index, targets, retention ---- */

#define REG_LABELS_MAX 32 /* labels per host */
#define REG_PUSH_KEEP 200 /* push log entries kept per host after a rollout */

struct selector;
struct selector_label;
struct err;

/* What a host should run (`swarm target set`). */
struct reg_target {
	char sha256[REG_FP_LEN + 1];
	char label[128];
	time_t set_at;
};

/*
 * Set label KEY of host HOST to VALUE, or remove it when VALUE is NULL.
 * Keys and values as master/selector.h says. ERR_NOT_FOUND without the host.
 */
int registry_label_set(struct registry *reg, const char *host, const char *key,
    const char *value, struct err *e) WUR;

/* Host HOST's labels sorted by key, at most MAX into OUT (*N of them). */
int registry_host_labels(struct registry *reg, const char *host, struct selector_label *out,
    size_t max, size_t *n, struct err *e) WUR;

/*
 * The next hosts in service matching SEL, in registry order: reads hosts
 * after *CURSOR (start with 0), fills OUT with at most LIMIT matches (*N),
 * and advances *CURSOR past what it read. *N == 0: no more. Memory stays
 * flat however many hosts the registry holds.
 */
int registry_hosts_select(struct registry *reg, const struct selector *sel, int64_t *cursor,
    size_t limit, struct reg_host *out, size_t *n, struct err *e) WUR;

/*
 * Check that SEL selects something: every named host exists and is in
 * service (ERR_NOT_FOUND / ERR_CONFLICT naming it), and a label selector or
 * "all" matches at least one host (ERR_NOT_FOUND). *MATCHED = hosts selected.
 */
int registry_selector_check(struct registry *reg, const struct selector *sel, size_t *matched,
    struct err *e) WUR;

/* Record a release kept in HOME/store (idempotent). */
int registry_release_add(struct registry *reg, const char *sha256, const char *label,
    uint64_t size, struct err *e) WUR;
/* The label of a stored release (ERR_NOT_FOUND when not stored). */
int registry_release_label(struct registry *reg, const char *sha256, char *label, size_t len,
    struct err *e) WUR;

/* Set host HOST's target release (a stored sha256), or clear it when SHA256 is NULL. */
int registry_target_set(struct registry *reg, const char *host, const char *sha256,
    struct err *e) WUR;
/* Host HOST's target: 1 with *OUT, 0 when it has none, -1 on error. */
int registry_target_of(struct registry *reg, const char *host, struct reg_target *out,
    struct err *e) WUR;

/* Keep the newest KEEP push log entries of every host; *REMOVED (may be NULL) = rows deleted. */
int registry_push_prune(struct registry *reg, size_t keep, size_t *removed, struct err *e) WUR;

/*
 * Result words are spelled with '_' (rolled_back, already_active, as the
 * updater spells them); rows written before that used '-': WORD is rewritten
 * in place to the one spelling.
 */
void registry_result_canonical(char *word);

#endif
