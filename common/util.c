#include "common/util.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
timespec_after_ms(clockid_t clock, int64_t ms, struct timespec *ts)
{
	clock_gettime(clock, ts);
	ts->tv_sec += (time_t)(ms / 1000);
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

int
ms_until(int64_t deadline)
{
	int64_t left = deadline - mono_ms();

	if (left < 0) {
		return 0;
	}
	if (left > INT32_MAX) {
		return INT32_MAX;
	}
	return (int)left;
}

void
iso8601_utc(time_t t, char *buf, size_t len)
{
	struct tm tm;

	if (len == 0) {
		return;
	}
	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
		buf[0] = '\0';
	}
}

/* N decimal digits at S into *OUT; -1 unless all N are digits. */
static int
parse_fixed_digits(const char *s, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9') {
			return -1;
		}
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return 0;
}

static int
days_in_month(int year, int month)
{
	static const int days[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;

	return month == 2 && leap ? 29 : days[month - 1];
}

/*
 * Exactly the two shapes we print, fields in range (no Feb 30, no leap
 * second): strptime would skip blanks, take one-digit fields and let
 * timegm() normalise impossible dates, which breaks round trips.
 */
int
iso8601_parse(const char *s, time_t *out)
{
	struct tm tm;
	int y, mo, d, h = 0, mi = 0, sec = 0;
	size_t n;

	if (s == NULL) {
		return -1;
	}
	n = strlen(s);
	if (n != 10 && n != 20) {
		return -1;
	}
	if (parse_fixed_digits(s, 4, &y) != 0 || s[4] != '-' ||
	    parse_fixed_digits(s + 5, 2, &mo) != 0 || s[7] != '-' ||
	    parse_fixed_digits(s + 8, 2, &d) != 0) {
		return -1;
	}
	if (n == 20 && (s[10] != 'T' || parse_fixed_digits(s + 11, 2, &h) != 0 || s[13] != ':' ||
	    parse_fixed_digits(s + 14, 2, &mi) != 0 || s[16] != ':' ||
	    parse_fixed_digits(s + 17, 2, &sec) != 0 || s[19] != 'Z')) {
		return -1;
	}
	if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 ||
	    mi > 59 || sec > 59) {
		return -1;
	}
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	errno = 0;
	time_t t = timegm(&tm);
	if (t == (time_t)-1 && errno != 0) {
		return -1;
	}
	*out = t;
	return 0;
}

int
parse_span_s(const char *s, long long min_s, long long max_s, long long *out)
{
	size_t len = s != NULL ? strlen(s) : 0;
	long long n, unit;
	char num[24];

	if (len < 2 || len >= sizeof(num) || strchr("dhms", s[len - 1]) == NULL) {
		errno = EINVAL;
		return -1;
	}
	memcpy(num, s, len - 1);
	num[len - 1] = '\0';
	unit = s[len - 1] == 'd' ? 86400 : s[len - 1] == 'h' ? 3600 : s[len - 1] == 'm' ? 60 : 1;
	if (parse_ll(num, 0, max_s / unit, &n) != 0) {
		return -1;
	}
	if (n * unit < min_s) {
		errno = ERANGE;
		return -1;
	}
	*out = n * unit;
	return 0;
}

int
parse_ll(const char *s, long long min, long long max, long long *out)
{
	char *end = NULL;
	long long v;

	if (s == NULL || *s == '\0' || isspace((unsigned char)*s)) {
		errno = EINVAL;
		return -1;
	}
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0') {
		if (errno == 0) {
			errno = EINVAL;
		}
		return -1;
	}
	if (v < min || v > max) {
		errno = ERANGE;
		return -1;
	}
	*out = v;
	return 0;
}

int
strlcpy_chk(char *dst, const char *src, size_t len)
{
	size_t n = strlen(src);

	if (len == 0) {
		return -1;
	}
	if (n >= len) {
		memcpy(dst, src, len - 1);
		dst[len - 1] = '\0';
		return -1;
	}
	memcpy(dst, src, n + 1);
	return 0;
}

void
hex_encode(const unsigned char *in, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 0x0f];
	}
	out[2 * len] = '\0';
}

int
is_hex_len(const char *s, size_t n)
{
	if (s == NULL || strlen(s) != n) {
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		if (!isxdigit((unsigned char)s[i])) {
			return 0;
		}
	}
	return 1;
}

size_t
utf8_seq_len(const void *buf, size_t n)
{
	const unsigned char *p = buf;
	unsigned char c = p[0];

	if (c < 0x80) {
		return 1;
	}
	if (c >= 0xc2 && c <= 0xdf) {
		return n >= 2 && (p[1] & 0xc0) == 0x80 ? 2 : 0;
	}
	if (c >= 0xe0 && c <= 0xef) {
		if (n < 3 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80) {
			return 0;
		}
		if ((c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] > 0x9f)) {
			return 0; /* overlong, or a UTF-16 surrogate */
		}
		return 3;
	}
	if (c >= 0xf0 && c <= 0xf4) {
		if (n < 4 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80 ||
		    (p[3] & 0xc0) != 0x80) {
			return 0;
		}
		if ((c == 0xf0 && p[1] < 0x90) || (c == 0xf4 && p[1] > 0x8f)) {
			return 0; /* overlong, or beyond U+10FFFF */
		}
		return 4;
	}
	return 0; /* continuation byte, 0xc0/0xc1, 0xf5.. */
}

size_t
utf8_valid_prefix(const void *buf, size_t n)
{
	const unsigned char *p = buf;
	size_t i = 0;

	while (i < n) {
		size_t k = utf8_seq_len(p + i, n - i);

		if (k == 0) {
			break;
		}
		i += k;
	}
	return i;
}

size_t
utf8_cut_len(const char *s, size_t n)
{
	while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80) {
		n--;
	}
	return n;
}

void
secure_wipe(void *p, size_t len)
{
	if (p != NULL && len > 0) {
		explicit_bzero(p, len);
	}
}

void
secure_free(void *p, size_t len)
{
	if (p == NULL) {
		return;
	}
	secure_wipe(p, len);
	free(p);
}

int
split_host_port(const char *in, char *host, size_t hostlen, char *port, size_t portlen)
{
	const char *colon;
	size_t hl;

	if (in == NULL || *in == '\0') {
		return -1;
	}
	if (in[0] == '[') {
		const char *rb = strchr(in, ']');
		if (rb == NULL || rb[1] != ':') {
			return -1;
		}
		hl = (size_t)(rb - in - 1);
		if (hl == 0) {
			return -1; /* "[]" names no address */
		}
		colon = rb + 1;
		in++;
	} else {
		colon = strrchr(in, ':');
		if (colon == NULL) {
			return -1;
		}
		if (memchr(in, ':', (size_t)(colon - in)) != NULL) {
			return -1; /* bare IPv6 without brackets is ambiguous */
		}
		hl = (size_t)(colon - in);
	}
	if (hl >= hostlen) {
		return -1;
	}
	memcpy(host, in, hl);
	host[hl] = '\0';
	/* Digits only: parse_ll() would also take "+80" or "-0". */
	const char *pp = colon + 1;
	size_t pl = strlen(pp);
	long long p;
	if (pl == 0 || pl > 5 || strspn(pp, "0123456789") != pl ||
	    parse_ll(pp, 0, 65535, &p) != 0) {
		return -1;
	}
	if (strlcpy_chk(port, colon + 1, portlen) != 0) {
		return -1;
	}
	return 0;
}
