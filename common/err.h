/*
 * err — the one error type of tandem: a kind, the errno saved at the failure
 * point, and a message that gains context prefixes as it travels up.
 *
 *   struct err e = ERR_INIT;
 *   if (fs_something(path, &e) != 0)
 *           return err_prefix(&e, "install %s", id);   // "install X: open ...: No space"
 *
 * The kind is decided where the failure happens (err_sys() reads errno at
 * once, before any other call can overwrite it) and never re-derived from
 * errno later. One table (err.c) maps every kind to its wire name, its HTTP
 * status and the CLI exit code: callers branch on the kind, never on the
 * message text.
 *
 * Every function accepts E == NULL (the error is then dropped) and returns
 * -1, so a failing path can `return err_set(...)`.
 */
#ifndef TANDEM_ERR_H
#define TANDEM_ERR_H

#include <stddef.h>

#define ERR_MSG_MAX 1024

/*
 * Add a kind here and a row to the table in err.c (a unit test checks that
 * every kind has a row).
 */
enum err_kind {
	ERR_OK = 0,
	ERR_INTERNAL,     /* a broken invariant or an unexpected local failure (500) */
	ERR_IO,           /* a local system call failed (500) */
	ERR_NOMEM,        /* out of memory (500) */
	ERR_NOSPACE,      /* the disk is full or below its reserve (507) */
	ERR_BAD_REQUEST,  /* a malformed request: missing or bad field (400) */
	ERR_FORBIDDEN,    /* the peer may not do this (403) */
	ERR_NOT_FOUND,    /* no such thing (404) */
	ERR_CONFLICT,     /* the state does not allow it now (409) */
	ERR_TOO_LARGE,    /* over a size limit of the request (413) */
	ERR_UNSAFE,       /* a release breaks an extraction rule (422) */
	ERR_LIMIT,        /* a release is over an unpacked size or entry limit (422) */
	ERR_FORMAT,       /* not the expected format: not gzip/tar, bad manifest (422) */
	ERR_DIGEST,       /* the bytes do not have the declared digest (422) */
	ERR_PREFLIGHT,    /* the release's own check refused it (422) */
	ERR_PROBE,        /* a started program did not pass its health probe (422) */
	ERR_BUSY,         /* another operation runs; try again later (503) */
	ERR_TIMEOUT,      /* no answer in time (504) */
	ERR_UNREACHABLE,  /* could not connect to a peer (502) */
	ERR_TLS,          /* TLS handshake or certificate refused (502) */
	ERR_PIN_MISMATCH, /* the peer's certificate is not the pinned (enrolled) one (502) */
	ERR_PROTOCOL,     /* a peer answered something we cannot use (502) */
	ERR_CONFIG,       /* a configuration file or option is invalid (exit 2) */
	ERR_USAGE,        /* a command line is invalid (exit 2) */
	ERR_CANCELED,     /* stopped on request (shutdown) (503) */
	ERR_SIGNATURE,    /* a signature does not verify (a release, a CRL) or a sealed archive does not open (422) */
	ERR_UNKNOWN_KEY,  /* no signature is by a key the host's keyring lists (422) */
	ERR_STATEMENT,    /* a valid signed statement does not describe this release or host (422) */
	ERR_EXPIRED,      /* the signed statement is past its expires_at (422) */
	ERR_FLOOR,        /* the release is below the host's security floor (409) */
	ERR_KEYRING,      /* the host's keyring is unusable: every install is refused (503) */
	ERR_UNAVAILABLE,  /* this daemon cannot do it as it was started; retrying will not help (503) */
	ERR_HANDSHAKE_CUT, /* TCP connected, then the peer closed, reset or stalled the TLS handshake:
			      up but not serving us now (an updater at its connection limit) (502) */
	ERR_DELTA_MISMATCH, /* a release assembled from a delta is not its files.json; send it whole (409) */
	ERR_KIND_COUNT
};

struct err {
	enum err_kind kind;
	int sys_errno;          /* errno at the failure point; 0 if none */
	char msg[ERR_MSG_MAX];  /* "" when kind is ERR_OK */
};

#define ERR_INIT { ERR_OK, 0, "" }

#define ERR_PRINTF(a, b) __attribute__((format(printf, a, b)))

/* Back to ERR_OK with an empty message. */
void err_clear(struct err *e);

/* 1 when E holds an error (kind != ERR_OK). */
int err_failed(const struct err *e);

/* Set KIND and the message FMT; sys_errno 0. Returns -1. */
int err_set(struct err *e, enum err_kind kind, const char *fmt, ...) ERR_PRINTF(3, 4);

/*
 * Read errno FIRST, then set the message "FMT: strerror(errno)". The kind
 * comes from errno: ENOSPC/EDQUOT -> ERR_NOSPACE, ENOMEM -> ERR_NOMEM,
 * everything else ERR_IO. Returns -1 (errno is preserved).
 */
int err_sys(struct err *e, const char *fmt, ...) ERR_PRINTF(2, 3);

/* As err_sys() with an explicit KIND, unless errno says ENOSPC/ENOMEM. */
int err_sys_kind(struct err *e, enum err_kind kind, const char *fmt, ...) ERR_PRINTF(3, 4);

/*
 * Prefix the message with "FMT: " (kind and sys_errno unchanged). On an
 * ERR_OK error it sets ERR_INTERNAL "FMT: unknown error", so a missing
 * err_set() below still yields a message. Returns -1.
 */
int err_prefix(struct err *e, const char *fmt, ...) ERR_PRINTF(2, 3);

/*
 * Give a failed E the kind KIND (message and errno unchanged): for a caller
 * that knows better what the failure means to it (a probe that could not
 * connect, whatever the reason, did not reach its agent). On an ERR_OK
 * error it sets KIND with "unknown error". Returns -1.
 */
int err_rekind(struct err *e, enum err_kind kind);

/* Copy SRC into DST (kind, errno, message). Returns -1 when SRC failed, else 0. */
int err_copy(struct err *dst, const struct err *src);

/* The message, or "" for ERR_OK. Never NULL. */
const char *err_msg(const struct err *e);

/* The wire name of KIND ("no_space", "bad_request", ...). */
const char *err_kind_name(enum err_kind kind);

/* Parse a wire name back; -1 when unknown. */
int err_kind_parse(const char *name, enum err_kind *out);

/* The HTTP status for KIND (200 for ERR_OK). */
unsigned err_http_status(enum err_kind kind);

/* The CLI exit code for KIND (0 for ERR_OK, 2 for usage/config, else 1). */
int err_exit_code(enum err_kind kind);

#endif
