#include "common/json.h"
#include "common/fs.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longest piece of an outside key quoted in an error message. */
#define JSON_ERRKEY_MAX 64

/*
 * KEY made safe to log: keys can come from outside, so control bytes and
 * quotes become '?' and long keys are cut ("...").
 */
static const char *
json_safe_key(const char *key, char *buf, size_t len)
{
	size_t i = 0;

	for (; key[i] != '\0' && i + 4 < len && i < JSON_ERRKEY_MAX; i++) {
		unsigned char c = (unsigned char)key[i];
		buf[i] = (c < 0x20 || c == 0x7f || c == '\'' || c == '\\') ? '?' : (char)c;
	}
	if (key[i] != '\0') {
		/* Cut before a whole UTF-8 sequence: the message may end up in JSON. */
		i = utf8_cut_len(key, i);
		memcpy(buf + i, "...", 3);
		i += 3;
	}
	buf[i] = '\0';
	return buf;
}

static int
json_is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static int
json_is_hex(unsigned char c)
{
	return json_is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Length of the RFC 8259 number at P (N bytes left), 0 if not one. */
static size_t
json_number_len(const unsigned char *p, size_t n)
{
	size_t i = 0;

	if (i < n && p[i] == '-') {
		i++;
	}
	if (i >= n) {
		return 0;
	}
	if (p[i] == '0') {
		i++;
	} else if (p[i] >= '1' && p[i] <= '9') {
		while (i < n && json_is_digit(p[i])) {
			i++;
		}
	} else {
		return 0;
	}
	if (i < n && p[i] == '.') {
		i++;
		if (i >= n || !json_is_digit(p[i])) {
			return 0;
		}
		while (i < n && json_is_digit(p[i])) {
			i++;
		}
	}
	if (i < n && (p[i] == 'e' || p[i] == 'E')) {
		i++;
		if (i < n && (p[i] == '+' || p[i] == '-')) {
			i++;
		}
		if (i >= n || !json_is_digit(p[i])) {
			return 0;
		}
		while (i < n && json_is_digit(p[i])) {
			i++;
		}
	}
	/* cJSON would swallow these too ("01", "1.2.3", "1e5e5"): refuse. */
	if (i < n && (json_is_digit(p[i]) || p[i] == '.' || p[i] == 'e' || p[i] == 'E' ||
	    p[i] == '+' || p[i] == '-')) {
		return 0;
	}
	return i;
}

/*
 * Lexical checks cJSON does not make: bytes, UTF-8, escapes, numbers, depth.
 * Structure (commas, colons, literals) is left to cJSON.
 */
static int
json_prescan(const unsigned char *p, size_t len, int max_depth, struct err *e)
{
	size_t i = 0;
	int depth = 0;

	while (i < len) {
		unsigned char c = p[i];
		if (c == '"') {
			size_t start = i++;
			for (;;) {
				if (i >= len) {
					err_set(e, ERR_FORMAT, "unterminated string at offset %zu", start);
					return -1;
				}
				c = p[i];
				if (c == '"') {
					i++;
					break;
				}
				if (c < 0x20) {
					err_set(e, ERR_FORMAT, "control byte 0x%02x in string at offset %zu",
					    c, i);
					return -1;
				}
				if (c == '\\') {
					if (i + 1 >= len) {
						err_set(e, ERR_FORMAT, "truncated escape at offset %zu", i);
						return -1;
					}
					unsigned char esc = p[i + 1];
					if (esc == 'u') {
						if (i + 6 > len || !json_is_hex(p[i + 2]) ||
						    !json_is_hex(p[i + 3]) || !json_is_hex(p[i + 4]) ||
						    !json_is_hex(p[i + 5])) {
							err_set(e, ERR_FORMAT, "bad \\u escape at offset %zu", i);
							return -1;
						}
						if (memcmp(p + i + 2, "0000", 4) == 0) {
							err_set(e, ERR_FORMAT, "\\u0000 in string at offset %zu", i);
							return -1;
						}
						i += 6;
					} else if (strchr("\"\\/bfnrt", esc) != NULL && esc != '\0') {
						i += 2;
					} else {
						err_set(e, ERR_FORMAT, "bad escape at offset %zu", i);
						return -1;
					}
					continue;
				}
				size_t n = utf8_seq_len(p + i, len - i);
				if (n == 0) {
					err_set(e, ERR_FORMAT, "invalid UTF-8 at offset %zu", i);
					return -1;
				}
				i += n;
			}
			continue;
		}
		if (c == '-' || json_is_digit(c)) {
			size_t n = json_number_len(p + i, len - i);
			if (n == 0) {
				err_set(e, ERR_FORMAT, "malformed number at offset %zu", i);
				return -1;
			}
			i += n;
			continue;
		}
		if (c == '{' || c == '[') {
			if (++depth > max_depth) {
				err_set(e, ERR_FORMAT, "nesting deeper than %d at offset %zu", max_depth, i);
				return -1;
			}
		} else if (c == '}' || c == ']') {
			if (depth > 0) {
				depth--;
			}
		} else if (c >= 0x80 || (c < 0x20 && c != ' ' && c != '\t' && c != '\n' && c != '\r') ||
		    c == 0x7f) {
			err_set(e, ERR_FORMAT, "unexpected byte 0x%02x at offset %zu", c, i);
			return -1;
		}
		i++;
	}
	return 0;
}

static int
json_cmp_keys(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Refuse an object anywhere in the tree that holds the same key twice. */
static int
json_check_dups(const cJSON *node, struct err *e)
{
	const char **keys = NULL;
	const cJSON *c;
	size_t n = 0, i = 0;
	int rc = -1;
	char kb[JSON_ERRKEY_MAX + 4];

	for (c = node->child; c != NULL; c = c->next) {
		n++;
		if ((cJSON_IsObject(c) || cJSON_IsArray(c)) && json_check_dups(c, e) != 0) {
			goto out;
		}
	}
	if (!cJSON_IsObject(node) || n < 2) {
		rc = 0;
		goto out;
	}
	keys = malloc(n * sizeof(*keys));
	if (keys == NULL) {
		err_set(e, ERR_NOMEM, "out of memory");
		goto out;
	}
	for (c = node->child; c != NULL; c = c->next) {
		keys[i++] = c->string != NULL ? c->string : "";
	}
	qsort(keys, n, sizeof(*keys), json_cmp_keys);
	for (i = 1; i < n; i++) {
		if (strcmp(keys[i - 1], keys[i]) == 0) {
			err_set(e, ERR_FORMAT, "duplicate key '%s'", json_safe_key(keys[i], kb, sizeof(kb)));
			goto out;
		}
	}
	rc = 0;
out:
	free(keys);
	return rc;
}

cJSON *
json_parse_object_ex(const char *buf, size_t len, size_t max_len, int max_depth,
    struct err *e)
{
	cJSON *root = NULL;
	const char *end = NULL;
	size_t off;

	errno = EINVAL;
	if (buf == NULL || len == 0) {
		err_set(e, ERR_FORMAT, "empty input");
		goto fail;
	}
	if (len > max_len) {
		err_set(e, ERR_FORMAT, "input of %zu bytes exceeds the limit of %zu", len, max_len);
		goto fail;
	}
	if (max_depth < 1 || max_depth > CJSON_NESTING_LIMIT) {
		max_depth = CJSON_NESTING_LIMIT;
	}
	if (json_prescan((const unsigned char *)buf, len, max_depth, e) != 0) {
		goto fail;
	}
	/*
	 * require_null_terminated is useless with an exact length (it wants a
	 * NUL inside LEN), so check the end ourselves.
	 */
	root = cJSON_ParseWithLengthOpts(buf, len, &end, 0);
	if (root == NULL) {
		/* Structural error, or cJSON ran out of memory (it cannot say which). */
		off = end != NULL && end >= buf ? (size_t)(end - buf) : 0;
		err_set(e, ERR_FORMAT, "invalid JSON near offset %zu", off);
		goto fail;
	}
	off = (size_t)(end - buf);
	while (off < len && (buf[off] == ' ' || buf[off] == '\t' || buf[off] == '\n' ||
	    buf[off] == '\r')) {
		off++;
	}
	if (off != len) {
		err_set(e, ERR_FORMAT, "trailing data at offset %zu", off);
		goto fail;
	}
	if (!cJSON_IsObject(root)) {
		err_set(e, ERR_FORMAT, "top level is not an object");
		goto fail;
	}
	if (json_check_dups(root, e) != 0) {
		goto fail;
	}
	return root;
fail:
	cJSON_Delete(root);
	errno = EINVAL;
	return NULL;
}

cJSON *
json_parse_object(const char *buf, size_t len, struct err *e)
{
	return json_parse_object_ex(buf, len, JSON_MAX_INPUT, JSON_MAX_DEPTH, e);
}

/* An integer cJSON holds exactly, or -1. */
static int
json_exact_int(const cJSON *item, long long *out)
{
	double d;
	long long v;

	if (!cJSON_IsNumber(item)) {
		return -1;
	}
	d = item->valuedouble;
	/* Written so that NaN fails too. */
	if (!(d >= (double)JSON_INT_MIN && d <= (double)JSON_INT_MAX)) {
		return -1;
	}
	v = (long long)d;
	if ((double)v != d) {
		return -1;
	}
	*out = v;
	return 0;
}

static int
json_check_schema(const struct json_field *f, struct err *e)
{
	int ok = 0;

	if (f->key == NULL) {
		err_set(e, ERR_INTERNAL, "schema: field without a key");
		return -1;
	}
	switch (f->type) {
	case JSON_T_STR:
		ok = f->size >= 1 && f->min >= 0 && f->max >= 0;
		break;
	case JSON_T_STRREF:
		ok = f->size == sizeof(const char *) && f->min >= 0 && f->max >= 0;
		break;
	case JSON_T_INT:
		if (f->size == sizeof(int32_t)) {
			ok = f->min >= INT32_MIN && f->max <= INT32_MAX;
		} else {
			ok = f->size == sizeof(int64_t);
		}
		ok = ok && f->min <= f->max;
		break;
	case JSON_T_BOOL:
		ok = f->size == sizeof(int);
		break;
	case JSON_T_OBJECT:
	case JSON_T_ARRAY:
		ok = f->size == sizeof(const cJSON *);
		break;
	}
	if (!ok) {
		err_set(e, ERR_INTERNAL, "schema: bad size, type or bounds for key '%s'", f->key);
		return -1;
	}
	return 0;
}

/* Check ITEM against F; with DST non-NULL also store it. */
static int
json_apply(const struct json_field *f, const cJSON *item, void *dst, struct err *e)
{
	unsigned char *m = dst != NULL ? (unsigned char *)dst + f->offset : NULL;
	long long v;
	size_t sl;

	if (cJSON_IsNull(item) && (f->flags & JSON_NULLABLE)) {
		return 0;
	}
	switch (f->type) {
	case JSON_T_STR:
	case JSON_T_STRREF:
		if (!cJSON_IsString(item) || item->valuestring == NULL) {
			err_set(e, ERR_FORMAT, "key '%s': expected a string", f->key);
			return -1;
		}
		sl = strlen(item->valuestring);
		if (f->type == JSON_T_STR && sl >= f->size) {
			err_set(e, ERR_FORMAT, "key '%s': string longer than %zu bytes", f->key,
			    f->size - 1);
			return -1;
		}
		if (f->max > 0 && sl > (unsigned long long)f->max) {
			err_set(e, ERR_FORMAT, "key '%s': string longer than %lld bytes", f->key, f->max);
			return -1;
		}
		if (sl < (unsigned long long)f->min) {
			err_set(e, ERR_FORMAT, "key '%s': string shorter than %lld bytes", f->key, f->min);
			return -1;
		}
		if (m != NULL && f->type == JSON_T_STR) {
			memcpy(m, item->valuestring, sl + 1);
		} else if (m != NULL) {
			const char *s = item->valuestring;
			memcpy(m, &s, sizeof(s));
		}
		return 0;
	case JSON_T_INT:
		if (json_exact_int(item, &v) != 0) {
			err_set(e, ERR_FORMAT, "key '%s': expected an integer within +-2^53", f->key);
			return -1;
		}
		if (v < f->min || v > f->max) {
			err_set(e, ERR_FORMAT, "key '%s': %lld out of range [%lld, %lld]", f->key, v,
			    f->min, f->max);
			return -1;
		}
		if (m != NULL && f->size == sizeof(int32_t)) {
			int32_t v32 = (int32_t)v;
			memcpy(m, &v32, sizeof(v32));
		} else if (m != NULL) {
			int64_t v64 = v;
			memcpy(m, &v64, sizeof(v64));
		}
		return 0;
	case JSON_T_BOOL:
		if (!cJSON_IsBool(item)) {
			err_set(e, ERR_FORMAT, "key '%s': expected true or false", f->key);
			return -1;
		}
		if (m != NULL) {
			int b = cJSON_IsTrue(item) ? 1 : 0;
			memcpy(m, &b, sizeof(b));
		}
		return 0;
	case JSON_T_OBJECT:
	case JSON_T_ARRAY:
		if (f->type == JSON_T_OBJECT ? !cJSON_IsObject(item) : !cJSON_IsArray(item)) {
			err_set(e, ERR_FORMAT, "key '%s': expected an %s", f->key,
			    f->type == JSON_T_OBJECT ? "object" : "array");
			return -1;
		}
		if (m != NULL) {
			memcpy(m, &item, sizeof(item));
		}
		return 0;
	}
	err_set(e, ERR_INTERNAL, "schema: unknown type for key '%s'", f->key);
	return -1;
}

/* Index of KEY in FIELDS, or N. */
static size_t
json_find_field(const struct json_field *fields, size_t n, const char *key)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (strcmp(fields[i].key, key) == 0) {
			break;
		}
	}
	return i;
}

int
json_read_fields(const cJSON *obj, const struct json_field *fields, size_t n, int allow_unknown,
    void *dst, struct err *e)
{
	const cJSON *match[JSON_MAX_FIELDS] = { NULL };
	char kb[JSON_ERRKEY_MAX + 4];
	size_t i;

	errno = EINVAL;
	if (fields == NULL || dst == NULL || n > JSON_MAX_FIELDS) {
		err_set(e, ERR_INTERNAL, "schema: bad table");
		return -1;
	}
	for (i = 0; i < n; i++) {
		if (json_check_schema(&fields[i], e) != 0) {
			return -1;
		}
		/* A key listed twice would never fill its second member. */
		if (json_find_field(fields, i, fields[i].key) != i) {
			err_set(e, ERR_INTERNAL, "schema: key '%s' listed twice", fields[i].key);
			return -1;
		}
	}
	if (!cJSON_IsObject(obj)) {
		err_set(e, ERR_FORMAT, "expected an object");
		return -1;
	}
	for (const cJSON *c = obj->child; c != NULL; c = c->next) {
		const char *key = c->string != NULL ? c->string : "";
		i = json_find_field(fields, n, key);
		if (i == n) {
			if (allow_unknown) {
				continue;
			}
			err_set(e, ERR_FORMAT, "unknown key '%s'", json_safe_key(key, kb, sizeof(kb)));
			return -1;
		}
		if (match[i] != NULL) {
			err_set(e, ERR_FORMAT, "duplicate key '%s'", fields[i].key);
			return -1;
		}
		if (json_apply(&fields[i], c, NULL, e) != 0) {
			return -1;
		}
		match[i] = c;
	}
	for (i = 0; i < n; i++) {
		if (match[i] == NULL && (fields[i].flags & JSON_REQUIRED)) {
			err_set(e, ERR_FORMAT, "missing required key '%s'", fields[i].key);
			return -1;
		}
	}
	/* Everything checked: now write (cannot fail). */
	for (i = 0; i < n; i++) {
		if (match[i] != NULL && json_apply(&fields[i], match[i], dst, e) != 0) {
			return -1;
		}
	}
	errno = 0;
	return 0;
}

int
json_add_item(cJSON *obj, const char *key, cJSON *item)
{
	if (obj == NULL || key == NULL || item == NULL || !cJSON_IsObject(obj)) {
		cJSON_Delete(item);
		errno = item == NULL ? ENOMEM : EINVAL;
		return -1;
	}
	if (cJSON_GetObjectItemCaseSensitive(obj, key) != NULL) {
		cJSON_Delete(item);
		errno = EEXIST;
		return -1;
	}
	if (!cJSON_AddItemToObject(obj, key, item)) {
		cJSON_Delete(item);
		errno = ENOMEM;
		return -1;
	}
	return 0;
}

/*
 * A JSON string of VALUE (NULL: null). Invalid UTF-8 bytes (e.g. a child's
 * stderr) become U+FFFD: cJSON would print them raw, and neither our reader
 * nor other strict parsers accept that.
 */
static cJSON *
json_create_text(const char *value)
{
	const unsigned char *p = (const unsigned char *)value;
	size_t n, i, k = 0;
	char *fixed;
	cJSON *item;

	if (value == NULL) {
		return cJSON_CreateNull();
	}
	n = strlen(value);
	if (utf8_valid_prefix(value, n) == n) {
		return cJSON_CreateString(value);
	}
	if (n > (SIZE_MAX - 1) / 3) {
		return NULL;
	}
	fixed = malloc(3 * n + 1);
	if (fixed == NULL) {
		return NULL;
	}
	for (i = 0; i < n;) {
		size_t l = utf8_seq_len(p + i, n - i);
		if (l == 0) {
			memcpy(fixed + k, "\xef\xbf\xbd", 3);
			k += 3;
			i++;
			continue;
		}
		memcpy(fixed + k, value + i, l);
		k += l;
		i += l;
	}
	fixed[k] = '\0';
	item = cJSON_CreateString(fixed);
	free(fixed);
	return item;
}

int
json_add_str(cJSON *obj, const char *key, const char *value)
{
	return json_add_item(obj, key, json_create_text(value));
}

/*
 * A number item for V. cJSON 1.7.15 prints numbers that are not C ints with
 * "%1.15g" and keeps that when it reads back within a relative DBL_EPSILON,
 * so 16-digit integers (9007199254740991 -> 9.00719925474099e+15) change.
 * Those are stored as raw number text, which cJSON prints verbatim.
 */
static cJSON *
json_create_int(long long v)
{
	char num[24];

	if (v > -1000000000000000LL && v < 1000000000000000LL) {
		return cJSON_CreateNumber((double)v);
	}
	if (snprintf(num, sizeof(num), "%lld", v) < 0) {
		return NULL;
	}
	return cJSON_CreateRaw(num);
}

int
json_add_int(cJSON *obj, const char *key, long long v)
{
	if (v < JSON_INT_MIN || v > JSON_INT_MAX) {
		errno = ERANGE;
		return -1;
	}
	return json_add_item(obj, key, json_create_int(v));
}

int
json_add_bool(cJSON *obj, const char *key, int v)
{
	return json_add_item(obj, key, cJSON_CreateBool(v != 0));
}

static cJSON *
json_add_container(cJSON *obj, const char *key, cJSON *item)
{
	if (json_add_item(obj, key, item) != 0) {
		return NULL;
	}
	return item;
}

cJSON *
json_add_object(cJSON *obj, const char *key)
{
	return json_add_container(obj, key, cJSON_CreateObject());
}

cJSON *
json_add_array(cJSON *obj, const char *key)
{
	return json_add_container(obj, key, cJSON_CreateArray());
}

static int
json_array_append(cJSON *arr, cJSON *item)
{
	if (item == NULL) {
		errno = ENOMEM;
		return -1;
	}
	if (arr == NULL || !cJSON_IsArray(arr)) {
		cJSON_Delete(item);
		errno = EINVAL;
		return -1;
	}
	if (!cJSON_AddItemToArray(arr, item)) {
		cJSON_Delete(item);
		errno = ENOMEM;
		return -1;
	}
	return 0;
}

int
json_array_add_str(cJSON *arr, const char *value)
{
	return json_array_append(arr, json_create_text(value));
}

int
json_array_add_int(cJSON *arr, long long v)
{
	if (v < JSON_INT_MIN || v > JSON_INT_MAX) {
		errno = ERANGE;
		return -1;
	}
	return json_array_append(arr, json_create_int(v));
}

char *
json_print_compact(const cJSON *item)
{
	char *s;

	if (item == NULL) {
		errno = EINVAL;
		return NULL;
	}
	s = cJSON_PrintUnformatted(item);
	if (s == NULL) {
		errno = ENOMEM;
	}
	return s;
}

char *
json_print_pretty(const cJSON *item)
{
	char *s, *t;
	size_t n;

	if (item == NULL) {
		errno = EINVAL;
		return NULL;
	}
	s = cJSON_Print(item);
	if (s == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	n = strlen(s);
	t = realloc(s, n + 2);
	if (t == NULL) {
		free(s);
		errno = ENOMEM;
		return NULL;
	}
	t[n] = '\n';
	t[n + 1] = '\0';
	return t;
}

int
json_write_atomic(const char *path, const cJSON *item, mode_t mode, struct err *e)
{
	char *text = json_print_pretty(item);
	int rc = 0;

	if (text == NULL) {
		return err_set(e, ERR_NOMEM, "write %s: out of memory", path);
	}
	if (fs_write_atomic(path, text, strlen(text), mode) != 0) {
		rc = err_sys(e, "write %s", path);
	}
	free(text);
	return rc;
}
