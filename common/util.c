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

	gmtime_r(&t, &tm);
	if (strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0 && len > 0) {
		buf[0] = '\0';
	}
}

int
iso8601_parse(const char *s, time_t *out)
{
	struct tm tm;
	const char *end;

	memset(&tm, 0, sizeof(tm));
	end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (end == NULL) {
		memset(&tm, 0, sizeof(tm));
		end = strptime(s, "%Y-%m-%d", &tm);
	}
	if (end == NULL || *end != '\0') {
		return -1;
	}
	time_t t = timegm(&tm);
	if (t == (time_t)-1) {
		return -1;
	}
	*out = t;
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
	long long p;
	if (parse_ll(colon + 1, 0, 65535, &p) != 0) {
		return -1;
	}
	if (strlcpy_chk(port, colon + 1, portlen) != 0) {
		return -1;
	}
	return 0;
}
