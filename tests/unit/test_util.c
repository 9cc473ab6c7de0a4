/*
 * Unit tests for common/util: clocks, ISO-8601 round trips, strict integer
 * parsing, bounded copies, hex, wiping and host:port splitting.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/util.h"

/* The last second ISO-8601 with a four-digit year can name. */
#define LAST_4DIGIT_SECOND 253402300799LL

static void
test_mono_clock(void **state)
{
	(void)state;
	int64_t a = mono_ms();
	int64_t b = mono_ms();
	assert_true(a > 0);
	assert_true(b >= a);
	assert_int_equal(ms_until(a - 1000), 0);
	assert_int_equal(ms_until(INT64_MAX / 2), INT32_MAX);
	int left = ms_until(mono_ms() + 60000);
	assert_true(left > 50000 && left <= 60000);
}

/* An absolute time MS ahead on the clock asked for, its nanoseconds normalised. */
static void
test_timespec_after_ms(void **state)
{
	struct timespec now, ts;
	int64_t delta_ms;

	(void)state;
	for (int64_t ms = 0; ms <= 2999; ms += 333) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		timespec_after_ms(CLOCK_MONOTONIC, ms, &ts);
		assert_true(ts.tv_nsec >= 0 && ts.tv_nsec < 1000000000L);
		delta_ms = ((int64_t)ts.tv_sec - now.tv_sec) * 1000 +
		    (ts.tv_nsec - now.tv_nsec) / 1000000;
		assert_true(delta_ms >= ms && delta_ms <= ms + 1000);
	}
	clock_gettime(CLOCK_REALTIME, &now);
	timespec_after_ms(CLOCK_REALTIME, 1500, &ts);
	assert_true(ts.tv_sec >= now.tv_sec + 1 && ts.tv_sec <= now.tv_sec + 3);
	assert_true(ts.tv_nsec >= 0 && ts.tv_nsec < 1000000000L);
}

static void
test_iso8601_format(void **state)
{
	char buf[32];

	(void)state;
	iso8601_utc(0, buf, sizeof(buf));
	assert_string_equal(buf, "1970-01-01T00:00:00Z");
	iso8601_utc(1700000000, buf, sizeof(buf));
	assert_string_equal(buf, "2023-11-14T22:13:20Z");
	iso8601_utc(951782400, buf, sizeof(buf)); /* a leap day */
	assert_string_equal(buf, "2000-02-29T00:00:00Z");
	iso8601_utc((time_t)LAST_4DIGIT_SECOND, buf, sizeof(buf));
	assert_string_equal(buf, "9999-12-31T23:59:59Z");

	/* Exactly 21 bytes is enough; 20 is not and yields "". */
	char b21[21];
	iso8601_utc(1700000000, b21, sizeof(b21));
	assert_string_equal(b21, "2023-11-14T22:13:20Z");
	char b20[20];
	memset(b20, 'x', sizeof(b20));
	iso8601_utc(1700000000, b20, sizeof(b20));
	assert_string_equal(b20, "");
	/* A zero-length buffer is not written at all. */
	buf[0] = 'q';
	iso8601_utc(0, buf, 0);
	assert_int_equal(buf[0], 'q');
}

static void
test_iso8601_round_trip(void **state)
{
	static const long long fixed[] = { 0, 1, 59, 60, 86399, 86400, 951782399, 951782400,
		1709164800 /* 2024-02-29 */, 1709251199, 2147483647, 2147483648LL, 4102444800LL,
		LAST_4DIGIT_SECOND };
	char buf[32];
	time_t back;
	uint64_t x = 0x9e3779b97f4a7c15ULL;

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(fixed); i++) {
		iso8601_utc((time_t)fixed[i], buf, sizeof(buf));
		assert_int_equal(iso8601_parse(buf, &back), 0);
		assert_int_equal((long long)back, fixed[i]);
	}
	for (int i = 0; i < 20000; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		time_t t = (time_t)(x % (uint64_t)(LAST_4DIGIT_SECOND + 1));
		iso8601_utc(t, buf, sizeof(buf));
		assert_int_equal(strlen(buf), 20);
		back = 0;
		assert_int_equal(iso8601_parse(buf, &back), 0);
		assert_int_equal((long long)back, (long long)t);
	}
	/* Date only: midnight UTC. */
	assert_int_equal(iso8601_parse("2024-02-29", &back), 0);
	assert_int_equal((long long)back, 1709164800LL);
	assert_int_equal(iso8601_parse("1970-01-01", &back), 0);
	assert_int_equal((long long)back, 0);
	/* Before the epoch is representable (and -1 is not an error). */
	assert_int_equal(iso8601_parse("1969-12-31T23:59:59Z", &back), 0);
	assert_int_equal((long long)back, -1);
}

static void
test_iso8601_reject(void **state)
{
	static const char *const bad[] = {
		"", "2024", "2024-02-30", "2023-02-29", "1900-02-29", "2024-13-01", "2024-00-10",
		"2024-01-00", "2024-01-32", "2024-04-31", "2024-01-01T24:00:00Z",
		"2024-01-01T23:60:00Z", "2024-12-31T23:59:60Z", " 2024-01-01", "2024-1-01",
		"2024-01-1", "2024-01-01T00:00:00", "2024-01-01T00:00:00z", "2024-01-01t00:00:00Z",
		"2024-01-01T00:00:00+00:00", "2024-01-01 00:00:00Z", "2024-01-01T00:00:00Z ",
		"2024-01-01T0:00:00Z", "+024-01-01", "-024-01-01", "2024-01-01T00:00:00.5Z",
		"2024/01/01", "0000-01-01", "2024-01-01T", "2024-01-01Z", "20240101T000000Z",
		"2024-01-01T00:00:0aZ", "2024-01-01T00:00:00ZZ",
	};
	time_t t = 12345;

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		if (iso8601_parse(bad[i], &t) == 0) {
			fail_msg("accepted '%s'", bad[i]);
		}
		assert_int_equal((long long)t, 12345);
	}
	assert_int_not_equal(iso8601_parse(NULL, &t), 0);
}

static void
test_parse_ll_ok(void **state)
{
	long long v = 7;

	(void)state;
	assert_int_equal(parse_ll("0", 0, 0, &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(parse_ll("-1", -1, 1, &v), 0);
	assert_int_equal(v, -1);
	assert_int_equal(parse_ll("9223372036854775807", LLONG_MIN, LLONG_MAX, &v), 0);
	assert_true(v == LLONG_MAX);
	assert_int_equal(parse_ll("-9223372036854775808", LLONG_MIN, LLONG_MAX, &v), 0);
	assert_true(v == LLONG_MIN);
	/* Bounds are inclusive. */
	assert_int_equal(parse_ll("10", 10, 20, &v), 0);
	assert_int_equal(v, 10);
	assert_int_equal(parse_ll("20", 10, 20, &v), 0);
	assert_int_equal(v, 20);
	assert_int_equal(parse_ll("007", 0, 10, &v), 0);
	assert_int_equal(v, 7);
}

static void
test_parse_span(void **state)
{
	static const char *const bad[] = { "", "d", "30", "30x", "3 d", "-1d", "1.5h", "d30",
		"99999999999999999999d", "3651d" };
	long long v = 42;

	(void)state;
	assert_int_equal(parse_span_s("30d", 0, 3650LL * 86400, &v), 0);
	assert_int_equal(v, 30LL * 86400);
	assert_int_equal(parse_span_s("12h", 0, 3650LL * 86400, &v), 0);
	assert_int_equal(v, 12LL * 3600);
	assert_int_equal(parse_span_s("90m", 0, 3650LL * 86400, &v), 0);
	assert_int_equal(v, 5400);
	assert_int_equal(parse_span_s("0s", 0, 10, &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(parse_span_s("0s", 1, 10, &v), -1);
	assert_int_equal(parse_span_s("11s", 1, 10, &v), -1);
	v = 42;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(parse_span_s(bad[i], 0, 3650LL * 86400, &v), -1);
		assert_int_equal(v, 42);
	}
}

static void
test_parse_ll_reject(void **state)
{
	static const char *const syntax[] = { "", " 1", "1 ", "\t1", "1\n", "1x", "x1", "0x10",
		"--1", "-", "+", "1.0", "1e3", "١" };
	long long v = 42;

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(syntax); i++) {
		errno = 0;
		if (parse_ll(syntax[i], LLONG_MIN, LLONG_MAX, &v) == 0) {
			fail_msg("accepted '%s'", syntax[i]);
		}
		assert_int_equal(errno, EINVAL);
		assert_int_equal(v, 42);
	}
	errno = 0;
	assert_int_equal(parse_ll(NULL, 0, 1, &v), -1);
	assert_int_equal(errno, EINVAL);
	/* Beyond long long and beyond the bounds: ERANGE, *out unchanged. */
	errno = 0;
	assert_int_equal(parse_ll("9223372036854775808", LLONG_MIN, LLONG_MAX, &v), -1);
	assert_int_equal(errno, ERANGE);
	errno = 0;
	assert_int_equal(parse_ll("-9223372036854775809", LLONG_MIN, LLONG_MAX, &v), -1);
	assert_int_equal(errno, ERANGE);
	errno = 0;
	assert_int_equal(parse_ll("99999999999999999999999", 0, 1, &v), -1);
	assert_int_equal(errno, ERANGE);
	errno = 0;
	assert_int_equal(parse_ll("21", 10, 20, &v), -1);
	assert_int_equal(errno, ERANGE);
	errno = 0;
	assert_int_equal(parse_ll("9", 10, 20, &v), -1);
	assert_int_equal(errno, ERANGE);
	errno = 0;
	assert_int_equal(parse_ll("-1", 0, 65535, &v), -1);
	assert_int_equal(errno, ERANGE);
	assert_int_equal(v, 42);
}

static void
test_strlcpy_chk(void **state)
{
	char buf[8];

	(void)state;
	assert_int_equal(strlcpy_chk(buf, "1234567", sizeof(buf)), 0);
	assert_string_equal(buf, "1234567");
	assert_int_equal(strlcpy_chk(buf, "", sizeof(buf)), 0);
	assert_string_equal(buf, "");
	/* One byte too long: truncated, still terminated, reported. */
	assert_int_equal(strlcpy_chk(buf, "12345678", sizeof(buf)), -1);
	assert_string_equal(buf, "1234567");
	assert_int_equal(strlcpy_chk(buf, "a much longer string", sizeof(buf)), -1);
	assert_string_equal(buf, "a much ");
	assert_int_equal(strlcpy_chk(buf, "x", 1), -1);
	assert_string_equal(buf, "");
	assert_int_equal(strlcpy_chk(buf, "", 1), 0);
	/* Size 0: nothing is written. */
	memset(buf, 'z', sizeof(buf));
	assert_int_equal(strlcpy_chk(buf, "abc", 0), -1);
	assert_int_equal(buf[0], 'z');
}

static void
test_hex(void **state)
{
	unsigned char all[256];
	char out[2 * sizeof(all) + 1];

	(void)state;
	hex_encode((const unsigned char *)"", 0, out);
	assert_string_equal(out, "");
	hex_encode((const unsigned char *)"\x00\x01\xab\xff", 4, out);
	assert_string_equal(out, "0001abff");
	for (size_t i = 0; i < sizeof(all); i++) {
		all[i] = (unsigned char)i;
	}
	hex_encode(all, sizeof(all), out);
	assert_int_equal(strlen(out), 512);
	assert_memory_equal(out, "000102", 6);
	assert_memory_equal(out + 2 * 0x7f, "7f80", 4);
	assert_memory_equal(out + 508, "feff", 4);
	assert_true(is_hex_len(out, 512));

	assert_true(is_hex_len("", 0));
	assert_true(is_hex_len("0123456789abcdefABCDEF", 22));
	assert_false(is_hex_len("abc", 4));
	assert_false(is_hex_len("abcd", 3));
	assert_false(is_hex_len("abcg", 4));
	assert_false(is_hex_len("ab d", 4));
	assert_false(is_hex_len("0x12", 4));
	assert_false(is_hex_len(NULL, 0));
}

static void
test_utf8(void **state)
{
	static const struct {
		const char *s;
		size_t n;
		size_t want;
	} seq[] = {
		{ "a", 1, 1 },
		{ "\x7f", 1, 1 },
		{ "\xc2\x80", 2, 2 },          /* U+0080 */
		{ "\xdf\xbf", 2, 2 },          /* U+07FF */
		{ "\xe0\xa0\x80", 3, 3 },      /* U+0800 */
		{ "\xed\x9f\xbf", 3, 3 },      /* U+D7FF */
		{ "\xee\x80\x80", 3, 3 },      /* U+E000 */
		{ "\xef\xbf\xbd", 3, 3 },      /* U+FFFD */
		{ "\xf0\x90\x80\x80", 4, 4 },  /* U+10000 */
		{ "\xf4\x8f\xbf\xbf", 4, 4 },  /* U+10FFFF */
		{ "\x80", 1, 0 },              /* stray continuation */
		{ "\xc0\x80", 2, 0 },          /* overlong NUL */
		{ "\xc1\xbf", 2, 0 },          /* overlong */
		{ "\xe0\x9f\xbf", 3, 0 },      /* overlong */
		{ "\xed\xa0\x80", 3, 0 },      /* surrogate U+D800 */
		{ "\xed\xbf\xbf", 3, 0 },      /* surrogate U+DFFF */
		{ "\xf0\x8f\xbf\xbf", 4, 0 },  /* overlong */
		{ "\xf4\x90\x80\x80", 4, 0 },  /* beyond U+10FFFF */
		{ "\xf5\x80\x80\x80", 4, 0 },
		{ "\xff", 1, 0 },
		{ "\xc2", 1, 0 },              /* truncated */
		{ "\xe2\x82", 2, 0 },
		{ "\xf0\x9f\x98", 3, 0 },
		{ "\xc2" "a", 2, 0 },             /* not a continuation */
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(seq); i++) {
		if (utf8_seq_len(seq[i].s, seq[i].n) != seq[i].want) {
			fail_msg("sequence %zu: got %zu, want %zu", i, utf8_seq_len(seq[i].s, seq[i].n),
			    seq[i].want);
		}
	}
	assert_int_equal(utf8_valid_prefix("", 0), 0);
	assert_int_equal(utf8_valid_prefix("h\xc3\xa9" "llo", 6), 6);
	assert_int_equal(utf8_valid_prefix("ok\xc3", 3), 2);
	assert_int_equal(utf8_valid_prefix("ab\xed\xa0\x80" "cd", 7), 2);
	/* Cutting "a\xc3\xa9b" after 2 bytes would split the e-acute: back to 1. */
	assert_int_equal(utf8_cut_len("a\xc3\xa9" "b", 2), 1);
	assert_int_equal(utf8_cut_len("a\xc3\xa9" "b", 3), 3);
	assert_int_equal(utf8_cut_len("\xf0\x9f\x98\x80" "x", 3), 0);
	assert_int_equal(utf8_cut_len("abc", 0), 0);
}

static void
test_secure_wipe(void **state)
{
	unsigned char buf[64];
	static const unsigned char zero[64];

	(void)state;
	memset(buf, 0xa5, sizeof(buf));
	secure_wipe(buf, sizeof(buf));
	assert_memory_equal(buf, zero, sizeof(buf));
	secure_wipe(NULL, 10);
	secure_wipe(buf, 0);
	secure_free(NULL, 10);
	char *secret = strdup("hunter2");
	assert_non_null(secret);
	secure_free(secret, strlen(secret) + 1);
}

static void
test_split_host_port_ok(void **state)
{
	static const struct {
		const char *in, *host, *port;
	} ok[] = {
		{ "127.0.0.1:8765", "127.0.0.1", "8765" },
		{ "[::1]:443", "::1", "443" },
		{ "[fe80::1%eth0]:1", "fe80::1%eth0", "1" },
		{ ":80", "", "80" },
		{ "[::]:8766", "::", "8766" },
		{ "host.example:0", "host.example", "0" },
		{ "h:65535", "h", "65535" },
		{ "h:00080", "h", "00080" },
	};
	char host[64], port[8];

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(ok); i++) {
		if (split_host_port(ok[i].in, host, sizeof(host), port, sizeof(port)) != 0) {
			fail_msg("refused '%s'", ok[i].in);
		}
		assert_string_equal(host, ok[i].host);
		assert_string_equal(port, ok[i].port);
	}
}

static void
test_split_host_port_reject(void **state)
{
	static const char *const bad[] = { "", "host", "host:", ":", "::1:80", "::1", "[::1]80",
		"[::1]", "[::1]:", "[]:80", "[::1:80", "host:65536", "host:99999", "host:123456",
		"host:+80", "host:-0", "host: 80", "host:80 ", "host:8o", "[::1]:+1", "a:b:80" };
	char host[64], port[8];

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		if (split_host_port(bad[i], host, sizeof(host), port, sizeof(port)) == 0) {
			fail_msg("accepted '%s' as '%s' '%s'", bad[i], host, port);
		}
	}
	assert_int_equal(split_host_port(NULL, host, sizeof(host), port, sizeof(port)), -1);
	/* Buffers too small: an error, never a silently cut host or port. */
	assert_int_equal(split_host_port("abcd:80", host, 4, port, sizeof(port)), -1);
	assert_int_equal(split_host_port("abc:80", host, 4, port, sizeof(port)), 0);
	assert_string_equal(host, "abc");
	assert_int_equal(split_host_port("[::1]:80", host, 3, port, sizeof(port)), -1);
	assert_int_equal(split_host_port("h:8080", host, sizeof(host), port, 4), -1);
	assert_int_equal(split_host_port("h:808", host, sizeof(host), port, 4), 0);
	assert_string_equal(port, "808");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mono_clock),
		cmocka_unit_test(test_timespec_after_ms),
		cmocka_unit_test(test_iso8601_format),
		cmocka_unit_test(test_iso8601_round_trip),
		cmocka_unit_test(test_iso8601_reject),
		cmocka_unit_test(test_parse_ll_ok),
		cmocka_unit_test(test_parse_ll_reject),
		cmocka_unit_test(test_parse_span),
		cmocka_unit_test(test_strlcpy_chk),
		cmocka_unit_test(test_hex),
		cmocka_unit_test(test_utf8),
		cmocka_unit_test(test_secure_wipe),
		cmocka_unit_test(test_split_host_port_ok),
		cmocka_unit_test(test_split_host_port_reject),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
