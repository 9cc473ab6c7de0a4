/*
 * Unit tests for common/json: the strict parser (bytes, UTF-8, escapes,
 * numbers, duplicates, depth and size limits), the schema reader (unknown
 * keys, wrong types, required, nullable, bounds, all-or-nothing, malformed
 * tables) and the builders (duplicates, ranges, ownership, round trips).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <sys/stat.h>

#include "common/json.h"
#include "tests/unit/tmpdir.h"

/* Parse a C string literal's bytes (length given, so NULs inside count). */
static cJSON *
parse_n(const char *s, size_t n, struct err *e)
{
	return json_parse_object(s, n, e);
}

static cJSON *
parse(const char *s, struct err *e)
{
	return parse_n(s, strlen(s), e);
}

#define ASSERT_REFUSED(lit, why)                                                    \
	do {                                                                          \
		struct err e_ = ERR_INIT;                                             \
		cJSON *r_ = parse_n((lit), sizeof(lit) - 1, &e_);                     \
		if (r_ != NULL) {                                                     \
			cJSON_Delete(r_);                                             \
			fail_msg("accepted: %s", #lit);                               \
		}                                                                     \
		if (e_.kind != ERR_FORMAT || strstr(err_msg(&e_), (why)) == NULL) {   \
			fail_msg("%s: error '%s' lacks '%s'", #lit, err_msg(&e_), (why)); \
		}                                                                     \
	} while (0)

#define ASSERT_ACCEPTED(lit)                                                        \
	do {                                                                          \
		struct err e_ = ERR_INIT;                                             \
		cJSON *r_ = parse_n((lit), sizeof(lit) - 1, &e_);                     \
		if (r_ == NULL) {                                                     \
			fail_msg("refused %s: %s", #lit, err_msg(&e_));               \
		}                                                                     \
		cJSON_Delete(r_);                                                     \
	} while (0)

static int
valid_utf8(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	while (*p != '\0') {
		int n = *p < 0x80 ? 1 : (*p & 0xe0) == 0xc0 ? 2 : (*p & 0xf0) == 0xe0 ? 3 :
		    (*p & 0xf8) == 0xf0 ? 4 : 0;
		if (n == 0) {
			return 0;
		}
		for (int i = 1; i < n; i++) {
			if ((p[i] & 0xc0) != 0x80) {
				return 0;
			}
		}
		p += n;
	}
	return 1;
}

/* ---- parser ---- */

static void
test_parse_valid(void **state)
{
	struct err e = ERR_INIT;

	(void)state;
	cJSON *o = parse(" \t\r\n{\"a\": [1, -2.5e3, 0, -0, 1E+2, true, false, null, {}, []],"
	    "\"b\": {\"c\": \"\\u00e9\\ud83d\\ude00 \\\"q\\\" \\\\ \\/ \\b\\f\\n\\r\\t\"},"
	    "\"\xc3\xa9t\xc3\xa9\": \"\xe2\x82\xac \xf0\x9f\x98\x80\", \"A\": 1, \"a2\": \"\"} \n", &e);
	if (o == NULL) {
		fail_msg("%s", err_msg(&e));
	}
	const cJSON *c = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(o, "b"),
	    "c");
	assert_string_equal(cJSON_GetStringValue(c),
	    "\xc3\xa9\xf0\x9f\x98\x80 \"q\" \\ / \b\f\n\r\t");
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "\xc3\xa9t\xc3\xa9")),
	    "\xe2\x82\xac \xf0\x9f\x98\x80");
	/* Keys differing in case are different keys. */
	assert_non_null(cJSON_GetObjectItemCaseSensitive(o, "A"));
	cJSON_Delete(o);

	/* Exactly LEN bytes are parsed: no NUL needed, what follows is ignored. */
	static const char buf[] = "{\"k\":1}GARBAGE\0{";
	o = json_parse_object(buf, 7, &e);
	assert_non_null(o);
	cJSON_Delete(o);
	/* E may be NULL. */
	o = json_parse_object("{}", 2, NULL);
	assert_non_null(o);
	cJSON_Delete(o);
	assert_null(json_parse_object("[]", 2, NULL));
	assert_int_equal(errno, EINVAL);
}

static void
test_parse_refused_structure(void **state)
{
	struct err e = ERR_INIT;

	(void)state;
	assert_null(json_parse_object(NULL, 5, &e));
	assert_string_equal(err_msg(&e), "empty input");
	assert_null(json_parse_object("{}", 0, &e));
	ASSERT_REFUSED("[1]", "not an object");
	ASSERT_REFUSED("\"s\"", "not an object");
	ASSERT_REFUSED("1", "not an object");
	ASSERT_REFUSED("null", "not an object");
	ASSERT_REFUSED("true", "not an object");
	ASSERT_REFUSED("{}x", "trailing data at offset 2");
	ASSERT_REFUSED("{} {}", "trailing data at offset 3");
	ASSERT_REFUSED("{}\0", "unexpected byte 0x00 at offset 2");
	ASSERT_REFUSED("{\"a\":1,}", "invalid JSON");
	ASSERT_REFUSED("{a:1}", "invalid JSON");
	ASSERT_REFUSED("{'a':1}", "invalid JSON");
	ASSERT_REFUSED("{\"a\" 1}", "invalid JSON");
	ASSERT_REFUSED("{\"a\":1", "invalid JSON");
	ASSERT_REFUSED("{\"a\":tru}", "invalid JSON");
	ASSERT_REFUSED("{\"a\":[1 2]}", "invalid JSON");
	ASSERT_REFUSED("{/* c */}", "invalid JSON");
	ASSERT_REFUSED("\xef\xbb\xbf{}", "unexpected byte 0xef at offset 0");
	ASSERT_REFUSED("{\"a\":1}\x0b", "unexpected byte 0x0b");
	ASSERT_REFUSED("{\"a\":1}\x7f", "unexpected byte 0x7f");
	ASSERT_REFUSED("{\"a\"\x0c:1}", "unexpected byte 0x0c");
	ASSERT_REFUSED("{\"a\":NaN}", "invalid JSON");
	ASSERT_REFUSED("{\"a\":Infinity}", "invalid JSON");
}

static void
test_parse_refused_strings(void **state)
{
	(void)state;
	ASSERT_REFUSED("{\"a\":\"x\0y\"}", "control byte 0x00 in string at offset 7");
	ASSERT_REFUSED("{\"a\":\"\x01\"}", "control byte 0x01");
	ASSERT_REFUSED("{\"a\":\"tab\there\"}", "control byte 0x09");
	ASSERT_REFUSED("{\"a\":\"line\nbreak\"}", "control byte 0x0a");
	ASSERT_REFUSED("{\"a\x1f\":1}", "control byte 0x1f");
	ASSERT_REFUSED("{\"a\":\"\\u0000\"}", "\\u0000 in string");
	ASSERT_REFUSED("{\"\\u0000\":1}", "\\u0000 in string");
	ASSERT_REFUSED("{\"a\":\"\\x41\"}", "bad escape");
	ASSERT_REFUSED("{\"a\":\"\\'\"}", "bad escape");
	ASSERT_REFUSED("{\"a\":\"\\u12G4\"}", "bad \\u escape");
	ASSERT_REFUSED("{\"a\":\"\\u12\"}", "bad \\u escape");
	ASSERT_REFUSED("{\"a\":\"\\", "truncated escape");
	ASSERT_REFUSED("{\"a\":\"abc", "unterminated string at offset 5");
	/* Lone or reversed UTF-16 surrogates in escapes (cJSON checks these). */
	ASSERT_REFUSED("{\"a\":\"\\ud83d\"}", "invalid JSON");
	ASSERT_REFUSED("{\"a\":\"\\ude00\"}", "invalid JSON");
	ASSERT_REFUSED("{\"a\":\"\\ude00\\ud83d\"}", "invalid JSON");
	/* Invalid UTF-8: overlong, surrogates, beyond U+10FFFF, stray, truncated. */
	ASSERT_REFUSED("{\"a\":\"\xc0\x80\"}", "invalid UTF-8 at offset 6");
	ASSERT_REFUSED("{\"a\":\"\xc1\xbf\"}", "invalid UTF-8");
	ASSERT_REFUSED("{\"a\":\"\xe0\x80\xaf\"}", "invalid UTF-8");
	ASSERT_REFUSED("{\"a\":\"\xed\xa0\x80\"}", "invalid UTF-8");
	ASSERT_REFUSED("{\"a\":\"\xf0\x80\x80\xaf\"}", "invalid UTF-8");
	ASSERT_REFUSED("{\"a\":\"\xf4\x90\x80\x80\"}", "invalid UTF-8");
	ASSERT_REFUSED("{\"a\":\"\xf5\x80\x80\x80\"}", "invalid UTF-8");
	ASSERT_REFUSED("{\"a\":\"\xff\"}", "invalid UTF-8");
	ASSERT_REFUSED("{\"a\":\"\x80\"}", "invalid UTF-8");
	ASSERT_REFUSED("{\"a\":\"\xe2\x82\"}", "invalid UTF-8");
	ASSERT_REFUSED("{\"a\":\"\xe2\x82", "invalid UTF-8");
	ASSERT_REFUSED("{\"\xc3\":1}", "invalid UTF-8");
	/* The largest valid code points and edge sequences are fine. */
	ASSERT_ACCEPTED("{\"a\":\"\xf4\x8f\xbf\xbf \xed\x9f\xbf \xee\x80\x80 \xc2\x80 \xdf\xbf\"}");
	ASSERT_ACCEPTED("{\"a\":\"\\uffff \\u0001 \\ud83d\\ude00\"}");
}

static void
test_parse_refused_numbers(void **state)
{
	(void)state;
	ASSERT_REFUSED("{\"a\":01}", "malformed number at offset 5");
	ASSERT_REFUSED("{\"a\":-01}", "malformed number");
	ASSERT_REFUSED("{\"a\":+1}", "invalid JSON");
	ASSERT_REFUSED("{\"a\":1.}", "malformed number");
	ASSERT_REFUSED("{\"a\":.5}", "invalid JSON");
	ASSERT_REFUSED("{\"a\":-}", "malformed number");
	ASSERT_REFUSED("{\"a\":--1}", "malformed number");
	ASSERT_REFUSED("{\"a\":1e}", "malformed number");
	ASSERT_REFUSED("{\"a\":1e+}", "malformed number");
	ASSERT_REFUSED("{\"a\":1.2.3}", "malformed number");
	ASSERT_REFUSED("{\"a\":1e5e5}", "malformed number");
	ASSERT_REFUSED("{\"a\":0x10}", "invalid JSON");
	ASSERT_REFUSED("{\"a\":1-2}", "malformed number");
	ASSERT_REFUSED("{\"a\":-a}", "malformed number");
	ASSERT_ACCEPTED("{\"a\":-0.0e-0}");
	ASSERT_ACCEPTED("{\"a\":1e400}");
	ASSERT_ACCEPTED("{\"a\":123456789012345678901234567890}");
}

static void
test_parse_duplicates(void **state)
{
	(void)state;
	ASSERT_REFUSED("{\"a\":1,\"b\":2,\"a\":3}", "duplicate key 'a'");
	ASSERT_REFUSED("{\"x\":{\"k\":1,\"k\":1}}", "duplicate key 'k'");
	ASSERT_REFUSED("{\"x\":[{}, {\"k\":1,\"k\":2}]}", "duplicate key 'k'");
	/* Escapes are compared decoded: "\u0061" is "a". */
	ASSERT_REFUSED("{\"a\":1,\"\\u0061\":2}", "duplicate key 'a'");
	ASSERT_REFUSED("{\"\":1,\"\":2}", "duplicate key ''");
	ASSERT_ACCEPTED("{\"a\":{\"a\":{\"a\":1}},\"b\":[{\"a\":1},{\"a\":2}]}");
	/* A duplicate key with control bytes is quoted safely in the error. */
	ASSERT_REFUSED("{\"q'\\n\":1,\"q'\\n\":2}", "duplicate key 'q?" "?'");
}

static void
test_parse_limits(void **state)
{
	char buf[256];
	struct err e = ERR_INIT;
	size_t n = 0;

	(void)state;
	/* JSON_MAX_DEPTH levels are fine, one more is refused. */
	for (int d = JSON_MAX_DEPTH; d <= JSON_MAX_DEPTH + 1; d++) {
		n = 0;
		memcpy(buf, "{\"a\":", 5);
		n += 5;
		for (int i = 1; i < d; i++) {
			buf[n++] = '[';
		}
		for (int i = 1; i < d; i++) {
			buf[n++] = ']';
		}
		buf[n++] = '}';
		cJSON *o = json_parse_object(buf, n, &e);
		if (d == JSON_MAX_DEPTH) {
			assert_non_null(o);
		} else {
			assert_null(o);
			assert_non_null(strstr(err_msg(&e), "nesting deeper than 32"));
		}
		cJSON_Delete(o);
	}
	/* Brackets inside strings do not count. */
	ASSERT_ACCEPTED("{\"a\":\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[{{{{{{{{{{{{\"}");
	/* Explicit limits. */
	cJSON *o = json_parse_object_ex("{\"a\":{}}", 8, 100, 2, &e);
	assert_non_null(o);
	cJSON_Delete(o);
	assert_null(json_parse_object_ex("{\"a\":{\"b\":[]}}", 14, 100, 2, &e));
	assert_non_null(strstr(err_msg(&e), "nesting deeper than 2"));
	assert_null(json_parse_object_ex("{\"a\":1}", 7, 6, 10, &e));
	assert_string_equal(err_msg(&e), "input of 7 bytes exceeds the limit of 6");
	o = json_parse_object_ex("{\"a\":1}", 7, 7, 10, &e);
	assert_non_null(o);
	cJSON_Delete(o);
	/* The default size limit. */
	size_t big = JSON_MAX_INPUT + 1;
	char *b = malloc(big);
	assert_non_null(b);
	memset(b, ' ', big);
	b[0] = '{';
	b[big - 1] = '}';
	assert_null(json_parse_object(b, big, &e));
	assert_non_null(strstr(err_msg(&e), "exceeds the limit"));
	o = json_parse_object(b + 1, big - 1, &e);
	/* b + 1 starts with blanks and ends with '}': no object start, refused by cJSON. */
	assert_null(o);
	b[1] = '{';
	o = json_parse_object(b + 1, big - 1, &e);
	if (o == NULL) {
		fail_msg("%s", err_msg(&e));
	}
	cJSON_Delete(o);
	free(b);
	/* Refusals are ERR_FORMAT and keep errno at EINVAL for older callers. */
	errno = 0;
	assert_null(json_parse_object("[]", 2, &e));
	assert_int_equal(e.kind, ERR_FORMAT);
	assert_int_equal(errno, EINVAL);
}

/* ---- schema reader ---- */

struct rec {
	char name[8];
	const char *ref;
	int32_t i32;
	int64_t i64;
	int flag;
	const cJSON *obj;
	const cJSON *arr;
};

static const struct json_field rec_fields[] = {
	JSON_F_STR("name", struct rec, name, JSON_REQUIRED, 1),
	JSON_F_STRREF("ref", struct rec, ref, 0, 0, 5),
	JSON_F_INT("i32", struct rec, i32, 0, -10, 10),
	JSON_F_INT("i64", struct rec, i64, JSON_NULLABLE, JSON_INT_MIN, JSON_INT_MAX),
	JSON_F_BOOL("flag", struct rec, flag, 0),
	JSON_F_OBJECT("obj", struct rec, obj, 0),
	JSON_F_ARRAY("arr", struct rec, arr, JSON_REQUIRED | JSON_NULLABLE),
};

static int
read_rec(const char *text, struct rec *r, int allow_unknown, struct err *e)
{
	struct err pe = ERR_INIT;
	cJSON *o = json_parse_object(text, strlen(text), &pe);
	int rc;

	if (o == NULL) {
		fail_msg("test input does not parse: %s", err_msg(&pe));
	}
	rc = json_read_fields(o, rec_fields, ARRAY_LEN(rec_fields), allow_unknown, r, e);
	cJSON_Delete(o);
	return rc;
}

static void
preset(struct rec *r)
{
	memset(r, 0x5a, sizeof(*r));
	memcpy(r->name, "preset", 7);
	r->ref = NULL;
	r->obj = NULL;
	r->arr = NULL;
}

static void
test_read_fields_ok(void **state)
{
	struct err e = ERR_INIT;
	struct rec r;

	(void)state;
	preset(&r);
	static const char text[] = "{\"name\":\"1234567\",\"ref\":\"abc\",\"i32\":-10,"
				   "\"i64\":9007199254740991,\"flag\":true,\"obj\":{\"x\":1},"
				   "\"arr\":[1,2]}";
	cJSON *o = json_parse_object(text, sizeof(text) - 1, &e);
	if (o == NULL) {
		fail_msg("%s", err_msg(&e));
	}
	assert_int_equal(json_read_fields(o, rec_fields, ARRAY_LEN(rec_fields), 0, &r, &e), 0);
	assert_string_equal(r.name, "1234567");
	assert_string_equal(r.ref, "abc");
	assert_int_equal(r.i32, -10);
	assert_true(r.i64 == JSON_INT_MAX);
	assert_int_equal(r.flag, 1);
	assert_true(cJSON_IsObject(r.obj));
	assert_int_equal(cJSON_GetArraySize(r.arr), 2);
	cJSON_Delete(o);

	/* Absent optional keys keep their preset values; null on NULLABLE too. */
	preset(&r);
	int32_t i32 = r.i32;
	int64_t i64 = r.i64;
	assert_int_equal(read_rec("{\"name\":\"n\",\"arr\":null,\"i64\":null,\"flag\":false}", &r,
	    0, &e), 0);
	assert_string_equal(r.name, "n");
	assert_null(r.arr);
	assert_int_equal(r.i32, i32);
	assert_true(r.i64 == i64);
	assert_int_equal(r.flag, 0);
	/* Integers written in other exact forms. */
	assert_int_equal(read_rec("{\"name\":\"n\",\"arr\":[],\"i32\":1e1,\"i64\":-0}", &r, 0, &e), 0);
	assert_int_equal(r.i32, 10);
	assert_true(r.i64 == 0);
	assert_int_equal(read_rec("{\"name\":\"n\",\"arr\":[],\"i32\":2.0,\"i64\":-9007199254740991}",
	    &r, 0, &e), 0);
	assert_int_equal(r.i32, 2);
	assert_true(r.i64 == JSON_INT_MIN);
	/* Unknown keys pass only when allowed. */
	assert_int_equal(read_rec("{\"name\":\"n\",\"arr\":[],\"extra\":{\"deep\":[1]}}", &r, 1, &e), 0);
	assert_int_equal(errno, 0);
}

static void
test_read_fields_refused(void **state)
{
	static const struct {
		const char *json, *why;
	} bad[] = {
		{ "{\"arr\":[]}", "missing required key 'name'" },
		{ "{\"name\":\"n\"}", "missing required key 'arr'" },
		{ "{\"name\":\"n\",\"arr\":[],\"extra\":1}", "unknown key 'extra'" },
		{ "{\"name\":\"n\",\"arr\":[],\"Name\":\"x\"}", "unknown key 'Name'" },
		{ "{\"name\":1,\"arr\":[]}", "key 'name': expected a string" },
		{ "{\"name\":null,\"arr\":[]}", "key 'name': expected a string" },
		{ "{\"name\":\"\",\"arr\":[]}", "key 'name': string shorter than 1 bytes" },
		{ "{\"name\":\"12345678\",\"arr\":[]}", "key 'name': string longer than 7 bytes" },
		{ "{\"name\":\"n\",\"arr\":[],\"ref\":\"123456\"}", "key 'ref': string longer than 5" },
		{ "{\"name\":\"n\",\"arr\":[],\"ref\":[]}", "key 'ref': expected a string" },
		{ "{\"name\":\"n\",\"arr\":[],\"i32\":\"1\"}", "key 'i32': expected an integer" },
		{ "{\"name\":\"n\",\"arr\":[],\"i32\":1.5}", "key 'i32': expected an integer" },
		{ "{\"name\":\"n\",\"arr\":[],\"i32\":11}", "key 'i32': 11 out of range [-10, 10]" },
		{ "{\"name\":\"n\",\"arr\":[],\"i32\":-11}", "out of range" },
		{ "{\"name\":\"n\",\"arr\":[],\"i32\":true}", "expected an integer" },
		{ "{\"name\":\"n\",\"arr\":[],\"i32\":null}", "expected an integer" },
		{ "{\"name\":\"n\",\"arr\":[],\"i64\":9007199254740992}", "expected an integer" },
		{ "{\"name\":\"n\",\"arr\":[],\"i64\":-9007199254740992}", "expected an integer" },
		{ "{\"name\":\"n\",\"arr\":[],\"i64\":1e400}", "expected an integer" },
		{ "{\"name\":\"n\",\"arr\":[],\"flag\":1}", "key 'flag': expected true or false" },
		{ "{\"name\":\"n\",\"arr\":[],\"flag\":\"true\"}", "expected true or false" },
		{ "{\"name\":\"n\",\"arr\":[],\"obj\":[]}", "key 'obj': expected an object" },
		{ "{\"name\":\"n\",\"arr\":{}}", "key 'arr': expected an array" },
		{ "{\"name\":\"n\",\"arr\":\"[]\"}", "key 'arr': expected an array" },
	};
	struct err e = ERR_INIT;
	struct rec r, before;

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		preset(&r);
		memcpy(&before, &r, sizeof(r));
		err_clear(&e);
		errno = 0;
		if (read_rec(bad[i].json, &r, 0, &e) != -1) {
			fail_msg("accepted %s", bad[i].json);
		}
		assert_int_equal(errno, EINVAL);
		if (strstr(err_msg(&e), bad[i].why) == NULL) {
			fail_msg("%s: error '%s' lacks '%s'", bad[i].json, err_msg(&e), bad[i].why);
		}
		/* All-or-nothing: even members before the bad key are untouched. */
		assert_memory_equal(&r, &before, sizeof(r));
	}
	/* Not an object. */
	cJSON *a = cJSON_CreateArray();
	assert_non_null(a);
	assert_int_equal(json_read_fields(a, rec_fields, ARRAY_LEN(rec_fields), 0, &r, &e), -1);
	assert_string_equal(err_msg(&e), "expected an object");
	cJSON_Delete(a);
	assert_int_equal(json_read_fields(NULL, rec_fields, ARRAY_LEN(rec_fields), 0, &r, &e), -1);
}

static void
test_read_fields_tree_duplicates(void **state)
{
	struct err e = ERR_INIT;
	struct rec r;

	(void)state;
	/* A tree built in code can hold a key twice; the reader still refuses it. */
	cJSON *o = cJSON_CreateObject();
	assert_non_null(o);
	assert_true(cJSON_AddStringToObject(o, "name", "a") != NULL);
	assert_true(cJSON_AddArrayToObject(o, "arr") != NULL);
	assert_true(cJSON_AddStringToObject(o, "name", "b") != NULL);
	preset(&r);
	assert_int_equal(json_read_fields(o, rec_fields, ARRAY_LEN(rec_fields), 0, &r, &e), -1);
	assert_string_equal(err_msg(&e), "duplicate key 'name'");
	assert_string_equal(r.name, "preset");
	cJSON_Delete(o);
}

static void
test_read_fields_unsafe_keys(void **state)
{
	char key[200], text[400];
	struct err e = ERR_INIT;
	struct rec r;

	(void)state;
	/* Quotes, backslashes and control bytes of outside keys are masked. */
	preset(&r);
	assert_int_equal(read_rec("{\"a'b\\\\c\\u0007d\":1}", &r, 0, &e), -1);
	assert_string_equal(err_msg(&e), "unknown key 'a?b?c?d'");
	/* A long key is cut on a UTF-8 boundary (the message stays valid UTF-8). */
	size_t n = 0;
	key[n++] = 'x';
	for (int i = 0; i < 60; i++) {
		memcpy(key + n, "\xe2\x82\xac", 3);
		n += 3;
	}
	key[n] = '\0';
	snprintf(text, sizeof(text), "{\"%s\":1}", key);
	assert_int_equal(read_rec(text, &r, 0, &e), -1);
	assert_non_null(strstr(err_msg(&e), "...'"));
	assert_true(strlen(err_msg(&e)) < 100);
	assert_true(valid_utf8(err_msg(&e)));
}

struct small {
	int32_t a;
	int64_t b;
	char s[4];
	int flag;
	const char *ref;
	const cJSON *obj;
	short tiny;
};

static void
test_read_fields_bad_schema(void **state)
{
	struct err e = ERR_INIT;
	struct small s;
	cJSON *o = cJSON_CreateObject();

	(void)state;
	assert_non_null(o);
	memset(&s, 0, sizeof(s));
	const struct json_field bad[][1] = {
		/* int32 member with bounds beyond int32 */
		{ JSON_F_INT("a", struct small, a, 0, 0, 1LL << 40) },
		{ JSON_F_INT("a", struct small, a, 0, -(1LL << 40), 0) },
		/* min > max */
		{ JSON_F_INT("b", struct small, b, 0, 5, 4) },
		/* sizes not matching the type */
		{ JSON_F_INT("tiny", struct small, tiny, 0, 0, 1) },
		{ JSON_F_BOOL("b", struct small, b, 0) },
		{ JSON_F_STRREF("s", struct small, s, 0, 0, 0) },
		{ JSON_F_OBJECT("a", struct small, a, 0) },
		{ JSON_F_ARRAY("flag", struct small, flag, 0) },
		/* negative string bounds */
		{ JSON_F_STR("s", struct small, s, 0, -1) },
		{ { NULL, JSON_T_BOOL, 0, offsetof(struct small, flag), sizeof(int), 0, 0 } },
		{ { "x", (enum json_ftype)99, 0, 0, sizeof(int), 0, 0 } },
	};
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		err_clear(&e);
		if (json_read_fields(o, bad[i], 1, 0, &s, &e) != -1) {
			fail_msg("bad schema %zu accepted", i);
		}
		assert_non_null(strstr(err_msg(&e), "schema:"));
	}
	const struct json_field twice[] = {
		JSON_F_INT("a", struct small, a, 0, 0, 1),
		JSON_F_INT("a", struct small, b, JSON_REQUIRED, 0, 1),
	};
	assert_int_equal(json_read_fields(o, twice, 2, 0, &s, &e), -1);
	assert_string_equal(err_msg(&e), "schema: key 'a' listed twice");
	assert_int_equal(json_read_fields(o, NULL, 0, 0, &s, &e), -1);
	assert_int_equal(json_read_fields(o, twice, 1, 0, NULL, &e), -1);
	assert_int_equal(json_read_fields(o, twice, JSON_MAX_FIELDS + 1, 0, &s, &e),
	    -1);
	assert_string_equal(err_msg(&e), "schema: bad table");
	/* A well-formed table on an empty object, and an empty table. */
	assert_int_equal(json_read_fields(o, twice, 1, 0, &s, &e), 0);
	assert_int_equal(json_read_fields(o, twice, 0, 0, &s, &e), 0);
	cJSON_Delete(o);
}

/* ---- builders ---- */

static void
test_builders(void **state)
{
	(void)state;
	cJSON *o = cJSON_CreateObject();
	assert_non_null(o);
	assert_int_equal(json_add_str(o, "s", "v"), 0);
	assert_int_equal(json_add_str(o, "nul", NULL), 0);
	assert_int_equal(json_add_int(o, "max", JSON_INT_MAX), 0);
	assert_int_equal(json_add_int(o, "min", JSON_INT_MIN), 0);
	assert_int_equal(json_add_bool(o, "t", 7), 0);
	assert_int_equal(json_add_bool(o, "f", 0), 0);
	cJSON *sub = json_add_object(o, "sub");
	assert_non_null(sub);
	assert_int_equal(json_add_str(sub, "k", "v"), 0);
	cJSON *arr = json_add_array(o, "arr");
	assert_non_null(arr);
	assert_int_equal(json_array_add_str(arr, "x"), 0);
	assert_int_equal(json_array_add_str(arr, NULL), 0);
	assert_int_equal(json_array_add_int(arr, -5), 0);

	/* Duplicates: EEXIST, nothing added (and the rejected item freed: ASan). */
	errno = 0;
	assert_int_equal(json_add_str(o, "s", "again"), -1);
	assert_int_equal(errno, EEXIST);
	assert_int_equal(json_add_int(o, "max", 1), -1);
	assert_int_equal(json_add_bool(o, "t", 1), -1);
	assert_null(json_add_object(o, "sub"));
	assert_null(json_add_array(o, "arr"));
	assert_int_equal(json_add_item(o, "s", cJSON_CreateString("owned")), -1);
	assert_int_equal(errno, EEXIST);
	/* Ranges. */
	errno = 0;
	assert_int_equal(json_add_int(o, "big", JSON_INT_MAX + 1), -1);
	assert_int_equal(errno, ERANGE);
	errno = 0;
	assert_int_equal(json_add_int(o, "small", JSON_INT_MIN - 1), -1);
	assert_int_equal(errno, ERANGE);
	errno = 0;
	assert_int_equal(json_array_add_int(arr, JSON_INT_MAX + 1), -1);
	assert_int_equal(errno, ERANGE);
	/* Bad arguments: EINVAL, items still freed. */
	errno = 0;
	assert_int_equal(json_add_str(NULL, "k", "v"), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(json_add_str(o, NULL, "v"), -1);
	assert_int_equal(json_add_item(arr, "k", cJSON_CreateNull()), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(json_array_add_str(o, "not an array"), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(json_array_add_str(NULL, "x"), -1);
	errno = 0;
	assert_int_equal(json_add_item(o, "k", NULL), -1);
	assert_int_equal(errno, ENOMEM);

	/* What we print, our own strict reader accepts, with the same values. */
	char *text = json_print_compact(o);
	assert_non_null(text);
	assert_string_equal(text, "{\"s\":\"v\",\"nul\":null,\"max\":9007199254740991,"
	    "\"min\":-9007199254740991,\"t\":true,\"f\":false,\"sub\":{\"k\":\"v\"},"
	    "\"arr\":[\"x\",null,-5]}");
	struct err e = ERR_INIT;
	cJSON *back = json_parse_object(text, strlen(text), &e);
	if (back == NULL) {
		fail_msg("%s", err_msg(&e));
	}
	struct {
		int64_t max, min;
		int t;
		const char *s;
	} v = { 0, 0, 0, NULL };
	const struct json_field f[] = {
		{ "max", JSON_T_INT, 0, offsetof(__typeof__(v), max), 8, JSON_INT_MIN, JSON_INT_MAX },
		{ "min", JSON_T_INT, 0, offsetof(__typeof__(v), min), 8, JSON_INT_MIN, JSON_INT_MAX },
		{ "t", JSON_T_BOOL, 0, offsetof(__typeof__(v), t), sizeof(int), 0, 0 },
		{ "s", JSON_T_STRREF, 0, offsetof(__typeof__(v), s), sizeof(char *), 0, 0 },
	};
	assert_int_equal(json_read_fields(back, f, ARRAY_LEN(f), 1, &v, &e), 0);
	assert_true(v.max == JSON_INT_MAX);
	assert_true(v.min == JSON_INT_MIN);
	assert_int_equal(v.t, 1);
	assert_string_equal(v.s, "v");
	cJSON_Delete(back);
	free(text);

	text = json_print_pretty(o);
	assert_non_null(text);
	size_t n = strlen(text);
	assert_true(n > 2 && text[n - 1] == '\n' && text[n - 2] == '}');
	back = json_parse_object(text, n, &e);
	assert_non_null(back);
	cJSON_Delete(back);
	free(text);
	errno = 0;
	assert_null(json_print_compact(NULL));
	assert_int_equal(errno, EINVAL);
	assert_null(json_print_pretty(NULL));
	cJSON_Delete(o);
}

/* json_write_atomic: the printed object at PATH with MODE; a failed write is an error with the path. */
static void
test_write_atomic(void **state)
{
	char path[PATH_MAX], *text;
	struct err e = ERR_INIT;
	struct stat st;
	cJSON *o = cJSON_CreateObject(), *back;

	(void)state;
	assert_non_null(tmpdir_make("json"));
	assert_non_null(o);
	assert_int_equal(json_add_str(o, "k", "v"), 0);
	tmpdir_join(path, sizeof(path), "state.json");
	assert_int_equal(json_write_atomic(path, o, 0600, &e), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	text = json_print_pretty(o);
	assert_non_null(text);
	assert_int_equal((size_t)st.st_size, strlen(text));
	back = json_parse_object(text, strlen(text), &e);
	assert_non_null(back);
	cJSON_Delete(back);
	free(text);
	/* Rewritten in place with another mode: the new file, whole. */
	assert_int_equal(json_add_int(o, "n", 7), 0);
	assert_int_equal(json_write_atomic(path, o, 0644, &e), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0644);
	/* A directory that does not exist: the system error, naming the path. */
	tmpdir_join(path, sizeof(path), "missing/state.json");
	assert_int_equal(json_write_atomic(path, o, 0600, &e), -1);
	assert_int_equal(e.sys_errno, ENOENT);
	assert_non_null(strstr(err_msg(&e), "missing/state.json"));
	/* Nothing to print. */
	err_clear(&e);
	assert_int_equal(json_write_atomic(path, NULL, 0600, &e), -1);
	assert_int_equal(e.kind, ERR_NOMEM);
	cJSON_Delete(o);
	assert_int_equal(tmpdir_remove(), 0);
}

static void
test_builders_exact_integers(void **state)
{
	static const long long vals[] = { 0, 1, -1, 2147483647, 2147483648LL, -2147483649LL,
		999999999999999LL, 1000000000000000LL, -1000000000000000LL, 1234567890123456LL,
		4503599627370497LL, JSON_INT_MAX - 1, JSON_INT_MAX, JSON_INT_MIN };
	struct err e = ERR_INIT;

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(vals); i++) {
		cJSON *o = cJSON_CreateObject();
		assert_non_null(o);
		assert_int_equal(json_add_int(o, "v", vals[i]), 0);
		/* Below 10^15 a real number item, as cJSON readers of our trees expect. */
		if (vals[i] > -1000000000000000LL && vals[i] < 1000000000000000LL) {
			assert_true(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(o, "v")));
		}
		cJSON *arr = json_add_array(o, "a");
		assert_non_null(arr);
		assert_int_equal(json_array_add_int(arr, vals[i]), 0);
		char *text = json_print_compact(o);
		assert_non_null(text);
		char want[64];
		snprintf(want, sizeof(want), "{\"v\":%lld,\"a\":[%lld]}", vals[i], vals[i]);
		assert_string_equal(text, want);
		cJSON *back = json_parse_object(text, strlen(text), &e);
		assert_non_null(back);
		struct {
			int64_t v;
		} r = { 12 };
		const struct json_field f[] = {
			{ "v", JSON_T_INT, JSON_REQUIRED, 0, 8, JSON_INT_MIN, JSON_INT_MAX },
		};
		assert_int_equal(json_read_fields(back, f, 1, 1, &r, &e), 0);
		assert_true(r.v == vals[i]);
		cJSON_Delete(back);
		free(text);
		cJSON_Delete(o);
	}
}

static void
test_builders_any_text(void **state)
{
	(void)state;
	/* Control bytes are escaped, invalid UTF-8 replaced: output always parses. */
	static const char nasty[] = "ctl\x01\x1f\n\t\"\\ bad\xff\xc3 ok\xc3\xa9 over\xc0\x80 "
				    "sur\xed\xa0\x80 end\xe2\x82";
	cJSON *o = cJSON_CreateObject();
	assert_non_null(o);
	assert_int_equal(json_add_str(o, "stderr", nasty), 0);
	cJSON *arr = json_add_array(o, "lines");
	assert_non_null(arr);
	assert_int_equal(json_array_add_str(arr, "\xfe\xfe"), 0);
	char *text = json_print_compact(o);
	assert_non_null(text);
	struct err e = ERR_INIT;
	cJSON *back = json_parse_object(text, strlen(text), &e);
	if (back == NULL) {
		fail_msg("%s in %s", err_msg(&e), text);
	}
	const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(back, "stderr"));
	assert_string_equal(s, "ctl\x01\x1f\n\t\"\\ bad\xef\xbf\xbd\xef\xbf\xbd ok\xc3\xa9 over"
	    "\xef\xbf\xbd\xef\xbf\xbd sur\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd end\xef\xbf\xbd"
	    "\xef\xbf\xbd");
	assert_string_equal(cJSON_GetStringValue(cJSON_GetArrayItem(
	    cJSON_GetObjectItemCaseSensitive(back, "lines"), 0)), "\xef\xbf\xbd\xef\xbf\xbd");
	cJSON_Delete(back);
	free(text);
	cJSON_Delete(o);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_valid),
		cmocka_unit_test(test_parse_refused_structure),
		cmocka_unit_test(test_parse_refused_strings),
		cmocka_unit_test(test_parse_refused_numbers),
		cmocka_unit_test(test_parse_duplicates),
		cmocka_unit_test(test_parse_limits),
		cmocka_unit_test(test_read_fields_ok),
		cmocka_unit_test(test_read_fields_refused),
		cmocka_unit_test(test_read_fields_tree_duplicates),
		cmocka_unit_test(test_read_fields_unsafe_keys),
		cmocka_unit_test(test_read_fields_bad_schema),
		cmocka_unit_test(test_builders),
		cmocka_unit_test(test_write_atomic),
		cmocka_unit_test(test_builders_exact_integers),
		cmocka_unit_test(test_builders_any_text),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
