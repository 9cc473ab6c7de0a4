/*
 * util — small helpers every module needs: clocks, strict number parsing,
 * bounded string copies, hex, UTF-8 validation, secure wiping.
 */
#ifndef TANDEM_UTIL_H
#define TANDEM_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define WUR __attribute__((warn_unused_result))
#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Milliseconds on CLOCK_MONOTONIC (for deadlines; never wall time). */
int64_t mono_ms(void);
/* Milliseconds left until DEADLINE (a mono_ms() value), clamped to [0, INT32_MAX]. */
int ms_until(int64_t deadline);
/*
 * *TS = now on CLOCK plus MS (>= 0) milliseconds, normalised: the absolute
 * time pthread_cond_timedwait wants (CLOCK is the condition variable's clock).
 */
void timespec_after_ms(clockid_t clock, int64_t ms, struct timespec *ts);

/* Format T as "YYYY-MM-DDTHH:MM:SSZ" into BUF (at least 21 bytes). */
void iso8601_utc(time_t t, char *buf, size_t len);
/*
 * Parse exactly "YYYY-MM-DDTHH:MM:SSZ" or "YYYY-MM-DD" (UTC midnight), every
 * field with its full number of digits and a real calendar date (no Feb 30,
 * no second 60); 0 on success, -1 with *OUT unchanged.
 */
int iso8601_parse(const char *s, time_t *out) WUR;

/*
 * Strict integer parsing: the whole string must be a base-10 number within
 * [min, max]. Returns 0, or -1 (errno EINVAL or ERANGE) and *out unchanged.
 */
int parse_ll(const char *s, long long min, long long max, long long *out) WUR;

/*
 * A span of time on the command line: "Nd", "Nh", "Nm" or "Ns" (N a whole
 * number) into seconds within [MIN_S, MAX_S]. 0, or -1 (errno EINVAL or
 * ERANGE) and *OUT unchanged.
 */
int parse_span_s(const char *s, long long min_s, long long max_s, long long *out) WUR;

/* Copy SRC into DST of size LEN, always NUL-terminated; -1 if truncated. */
int strlcpy_chk(char *dst, const char *src, size_t len) WUR;

/* Lower-case hex of LEN bytes into OUT (2*LEN+1 bytes). */
void hex_encode(const unsigned char *in, size_t len, char *out);
/* 1 if S is exactly N lowercase-or-uppercase hex digits. */
int is_hex_len(const char *s, size_t n);

/*
 * Length (1 to 4) of the valid UTF-8 sequence at P, N >= 1 bytes being
 * readable there; 0 when it is not one: a stray continuation byte, a
 * truncated sequence, an overlong form, a UTF-16 surrogate, or a code point
 * beyond U+10FFFF. The one UTF-8 rule of every text we accept from outside.
 */
size_t utf8_seq_len(const void *p, size_t n);
/* Bytes of S[0..N) that form valid UTF-8 from the start (N when all of it does). */
size_t utf8_valid_prefix(const void *s, size_t n);
/*
 * Where to cut S (a string longer than N bytes) at most N bytes in without
 * splitting a UTF-8 sequence: N moved back over continuation bytes.
 */
size_t utf8_cut_len(const char *s, size_t n);

/* Zero LEN bytes at P in a way the compiler cannot elide. */
void secure_wipe(void *p, size_t len);
/* Wipe and free a NUL-terminated or LEN-sized secret; NULL is fine. */
void secure_free(void *p, size_t len);

/*
 * Split "ADDR:PORT", "[V6]:PORT" or ":PORT" into HOST (may be "", never for
 * "[]") and PORT (1 to 5 decimal digits, at most 65535). A bare IPv6 address
 * without brackets is refused. Returns 0, or -1 when IN is malformed or a
 * part does not fit its buffer.
 */
int split_host_port(const char *in, char *host, size_t hostlen, char *port, size_t portlen) WUR;

#endif
