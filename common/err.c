#include "common/err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/util.h"

/* The one table: kind -> wire name, HTTP status, CLI exit code. */
static const struct {
	enum err_kind kind;
	const char *name;
	unsigned http;
	int exit_code;
} err_table[] = {
	{ ERR_OK, "ok", 200, 0 },
	{ ERR_INTERNAL, "internal", 500, 1 },
	{ ERR_IO, "io", 500, 1 },
	{ ERR_NOMEM, "out_of_memory", 500, 1 },
	{ ERR_NOSPACE, "no_space", 507, 1 },
	{ ERR_BAD_REQUEST, "bad_request", 400, 1 },
	{ ERR_FORBIDDEN, "forbidden", 403, 1 },
	{ ERR_NOT_FOUND, "not_found", 404, 1 },
	{ ERR_CONFLICT, "conflict", 409, 1 },
	{ ERR_TOO_LARGE, "too_large", 413, 1 },
	{ ERR_UNSAFE, "unsafe_archive", 422, 1 },
	{ ERR_LIMIT, "limit_exceeded", 422, 1 },
	{ ERR_FORMAT, "bad_format", 422, 1 },
	{ ERR_DIGEST, "digest_mismatch", 422, 1 },
	{ ERR_PREFLIGHT, "preflight_failed", 422, 1 },
	{ ERR_PROBE, "probe_failed", 422, 1 },
	{ ERR_BUSY, "busy", 503, 1 },
	{ ERR_TIMEOUT, "timeout", 504, 1 },
	{ ERR_UNREACHABLE, "unreachable", 502, 1 },
	{ ERR_TLS, "tls", 502, 1 },
	{ ERR_PIN_MISMATCH, "pin_mismatch", 502, 1 },
	{ ERR_PROTOCOL, "protocol", 502, 1 },
	{ ERR_CONFIG, "config", 500, 2 },
	{ ERR_USAGE, "usage", 400, 2 },
	{ ERR_CANCELED, "canceled", 503, 1 },
	{ ERR_SIGNATURE, "signature_invalid", 422, 1 },
	{ ERR_UNKNOWN_KEY, "unknown_key", 422, 1 },
	{ ERR_STATEMENT, "statement_mismatch", 422, 1 },
	{ ERR_EXPIRED, "expired", 422, 1 },
	{ ERR_FLOOR, "below_security_floor", 409, 1 },
	{ ERR_KEYRING, "keyring_invalid", 503, 1 },
	{ ERR_UNAVAILABLE, "unavailable", 503, 1 },
	{ ERR_HANDSHAKE_CUT, "handshake_cut", 502, 1 },
	{ ERR_DELTA_MISMATCH, "delta_mismatch", 409, 1 },
};

_Static_assert(ARRAY_LEN(err_table) == ERR_KIND_COUNT, "one err_table row per err_kind");

static int
err_row(enum err_kind kind)
{
	if ((int)kind >= 0 && (size_t)kind < ARRAY_LEN(err_table) &&
	    err_table[kind].kind == kind) {
		return (int)kind;
	}
	return ERR_INTERNAL;
}

void
err_clear(struct err *e)
{
	if (e == NULL) {
		return;
	}
	e->kind = ERR_OK;
	e->sys_errno = 0;
	e->msg[0] = '\0';
}

int
err_failed(const struct err *e)
{
	return e != NULL && e->kind != ERR_OK;
}

static void
err_vset(struct err *e, enum err_kind kind, int sys, const char *fmt, va_list ap)
{
	int n;

	e->kind = kind == ERR_OK ? ERR_INTERNAL : kind;
	e->sys_errno = sys;
	n = vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	if (n < 0) {
		e->msg[0] = '\0';
	}
	if (sys != 0) {
		size_t len = strlen(e->msg);

		(void)snprintf(e->msg + len, sizeof(e->msg) - len, "%s%s",
		    len > 0 ? ": " : "", strerror(sys));
	}
}

int
err_set(struct err *e, enum err_kind kind, const char *fmt, ...)
{
	va_list ap;
	int saved = errno;

	if (e != NULL) {
		va_start(ap, fmt);
		err_vset(e, kind, 0, fmt, ap);
		va_end(ap);
	}
	errno = saved;
	return -1;
}

static enum err_kind
err_kind_of_errno(int sys, enum err_kind fallback)
{
	switch (sys) {
	case ENOSPC:
	case EDQUOT:
		return ERR_NOSPACE;
	case ENOMEM:
		return ERR_NOMEM;
	default:
		return fallback;
	}
}

int
err_sys(struct err *e, const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	if (e != NULL) {
		va_start(ap, fmt);
		err_vset(e, err_kind_of_errno(saved, ERR_IO), saved, fmt, ap);
		va_end(ap);
	}
	errno = saved;
	return -1;
}

int
err_sys_kind(struct err *e, enum err_kind kind, const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	if (e != NULL) {
		va_start(ap, fmt);
		err_vset(e, err_kind_of_errno(saved, kind), saved, fmt, ap);
		va_end(ap);
	}
	errno = saved;
	return -1;
}

int
err_prefix(struct err *e, const char *fmt, ...)
{
	char prefix[ERR_MSG_MAX], old[ERR_MSG_MAX];
	int saved = errno;
	va_list ap;

	if (e == NULL) {
		return -1;
	}
	va_start(ap, fmt);
	if (vsnprintf(prefix, sizeof(prefix), fmt, ap) < 0) {
		prefix[0] = '\0';
	}
	va_end(ap);
	if (e->kind == ERR_OK) {
		e->kind = ERR_INTERNAL;
		e->sys_errno = 0;
		/* A long prefix cuts the message: that is fine, it is still one. */
		if (snprintf(e->msg, sizeof(e->msg), "%s: unknown error", prefix) < 0) {
			e->msg[0] = '\0';
		}
	} else {
		/* "PREFIX: OLD", cut at the end like every message. */
		size_t plen = strnlen(prefix, sizeof(e->msg) - 1);
		size_t olen = strlen(e->msg);

		memcpy(old, e->msg, olen + 1);
		memcpy(e->msg, prefix, plen);
		if (plen + 2 < sizeof(e->msg)) {
			size_t room = sizeof(e->msg) - plen - 3;

			e->msg[plen] = ':';
			e->msg[plen + 1] = ' ';
			if (olen > room) {
				olen = room;
			}
			memcpy(e->msg + plen + 2, old, olen);
			e->msg[plen + 2 + olen] = '\0';
		} else {
			e->msg[plen] = '\0';
		}
	}
	errno = saved;
	return -1;
}

int
err_rekind(struct err *e, enum err_kind kind)
{
	if (e == NULL) {
		return -1;
	}
	if (e->kind == ERR_OK) {
		return err_set(e, kind, "unknown error");
	}
	e->kind = kind;
	return -1;
}

int
err_copy(struct err *dst, const struct err *src)
{
	if (src == NULL || src->kind == ERR_OK) {
		err_clear(dst);
		return 0;
	}
	if (dst != NULL && dst != src) {
		*dst = *src;
	}
	return -1;
}

const char *
err_msg(const struct err *e)
{
	if (e == NULL || e->kind == ERR_OK) {
		return "";
	}
	return e->msg;
}

const char *
err_kind_name(enum err_kind kind)
{
	return err_table[err_row(kind)].name;
}

int
err_kind_parse(const char *name, enum err_kind *out)
{
	for (size_t i = 0; i < ARRAY_LEN(err_table); i++) {
		if (strcmp(err_table[i].name, name) == 0) {
			*out = err_table[i].kind;
			return 0;
		}
	}
	return -1;
}

unsigned
err_http_status(enum err_kind kind)
{
	return err_table[err_row(kind)].http;
}

int
err_exit_code(enum err_kind kind)
{
	return err_table[err_row(kind)].exit_code;
}
