/*
 * json — strict reading of JSON objects that come from outside (HTTP bodies,
 * manifests, state files) and small builders for the objects we send, over
 * cJSON.
 *
 * Reading is two steps: json_parse_object() checks the raw bytes strictly and
 * builds a cJSON tree; json_read_fields() copies the known keys of one object
 * into a C struct by a declarative table, rejecting anything unexpected.
 *
 * Builders return 0, or -1 (errno ENOMEM, EEXIST for a key already present,
 * ERANGE, EINVAL for NULL arguments); they never add a duplicate key, so what
 * we print our own reader accepts. Nothing here aborts on allocation failure.
 */
#ifndef TANDEM_JSON_H
#define TANDEM_JSON_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "cJSON.h"
#include "common/err.h"
#include "common/util.h"

/* Default limits of json_parse_object(). */
#define JSON_MAX_INPUT (1024 * 1024)
#define JSON_MAX_DEPTH 32
/* Largest table json_read_fields() accepts. */
#define JSON_MAX_FIELDS 64
/* Integers beyond +-(2^53 - 1) are not exact in cJSON's doubles: refused. */
#define JSON_INT_MAX 9007199254740991LL
#define JSON_INT_MIN (-JSON_INT_MAX)

/*
 * Parse exactly LEN bytes of BUF (no NUL terminator needed) as one JSON
 * object, with the default limits (JSON_MAX_INPUT bytes, JSON_MAX_DEPTH
 * levels of nesting). Beyond what cJSON checks, refused are: anything but an
 * object at the top, trailing bytes other than JSON whitespace, any NUL or
 * raw control byte, invalid UTF-8, "\u0000" escapes (C strings would be cut
 * short), numbers outside the JSON grammar (leading zeros, "+1", "1."), and
 * duplicate keys in any object of the tree.
 *
 * Returns the tree (free with cJSON_Delete()), or NULL with E: ERR_FORMAT and
 * a one-line reason (offsets are 0-based bytes into BUF), or ERR_NOMEM.
 */
cJSON *json_parse_object(const char *buf, size_t len, struct err *e) WUR;
/* The same with explicit limits: MAX_LEN bytes, MAX_DEPTH (1..1000) levels. */
cJSON *json_parse_object_ex(const char *buf, size_t len, size_t max_len, int max_depth,
    struct err *e) WUR;

/* Field types of json_read_fields() and the C member each one fills. */
enum json_ftype {
	JSON_T_STR,    /* char[SIZE]: copied; too long for SIZE is an error */
	JSON_T_STRREF, /* const char *: borrowed from the tree */
	JSON_T_INT,    /* int32_t or int64_t (SIZE 4 or 8), within [MIN, MAX] */
	JSON_T_BOOL,   /* int: 0 or 1 */
	JSON_T_OBJECT, /* const cJSON *: borrowed, read it with json_read_fields() */
	JSON_T_ARRAY,  /* const cJSON *: borrowed */
};

/* json_field.flags */
#define JSON_REQUIRED 0x1u /* absent is an error */
#define JSON_NULLABLE 0x2u /* null is accepted, counts as present, leaves the member as is */

/*
 * One expected key. For strings MIN and MAX bound the length in bytes (MAX 0:
 * only the buffer size limits a JSON_T_STR; no limit for JSON_T_STRREF); for
 * integers they bound the value and must fit the member; otherwise ignored.
 * Use the JSON_F_* macros, which fill OFFSET and SIZE from the struct.
 */
struct json_field {
	const char *key;
	enum json_ftype type;
	unsigned flags;
	size_t offset;
	size_t size;
	long long min, max;
};

#define JSON_MEMBER_SIZE(st, m) sizeof(((st *)0)->m)
#define JSON_F_STR(key, st, m, flags, minlen) \
	{ (key), JSON_T_STR, (flags), offsetof(st, m), JSON_MEMBER_SIZE(st, m), (minlen), 0 }
#define JSON_F_STRREF(key, st, m, flags, minlen, maxlen) \
	{ (key), JSON_T_STRREF, (flags), offsetof(st, m), JSON_MEMBER_SIZE(st, m), (minlen), (maxlen) }
#define JSON_F_INT(key, st, m, flags, lo, hi) \
	{ (key), JSON_T_INT, (flags), offsetof(st, m), JSON_MEMBER_SIZE(st, m), (lo), (hi) }
#define JSON_F_BOOL(key, st, m, flags) \
	{ (key), JSON_T_BOOL, (flags), offsetof(st, m), JSON_MEMBER_SIZE(st, m), 0, 0 }
#define JSON_F_OBJECT(key, st, m, flags) \
	{ (key), JSON_T_OBJECT, (flags), offsetof(st, m), JSON_MEMBER_SIZE(st, m), 0, 0 }
#define JSON_F_ARRAY(key, st, m, flags) \
	{ (key), JSON_T_ARRAY, (flags), offsetof(st, m), JSON_MEMBER_SIZE(st, m), 0, 0 }

/*
 * Read the members of object OBJ described by FIELDS[0..N) into the struct at
 * DST. Keys are matched case-sensitively. Errors (ERR_FORMAT): OBJ not an
 * object, a key not in FIELDS (unless ALLOW_UNKNOWN), a key present twice, a
 * value of the wrong type, a string too short/long, an integer not exact or
 * out of bounds, a JSON_REQUIRED key absent; the message names the key
 * ("key 'x': ..."). A malformed table (size not matching the type, bounds
 * not fitting, a key listed twice) is ERR_INTERNAL ("schema: ...").
 *
 * All-or-nothing: on error DST is untouched; on success only members whose
 * key was present (and not null) are written, so preset defaults first.
 * Borrowed pointers (STRREF, OBJECT, ARRAY) live as long as OBJ's tree.
 * Returns 0, or -1 with errno EINVAL.
 */
int json_read_fields(const cJSON *obj, const struct json_field *fields, size_t n,
    int allow_unknown, void *dst, struct err *e) WUR;

/*
 * Add KEY: VALUE to OBJ (copied); VALUE NULL adds null. Bytes of VALUE that
 * are not valid UTF-8 are replaced by U+FFFD, so any C string (a child's
 * stderr, a file name) yields JSON that strict readers, ours included, accept.
 */
int json_add_str(cJSON *obj, const char *key, const char *value) WUR;
/*
 * Add KEY: V; |V| beyond JSON_INT_MAX fails with ERANGE. Printed exactly:
 * integers of 16 digits are held as raw number text (cJSON_IsRaw, not
 * cJSON_IsNumber) because cJSON would print them rounded.
 */
int json_add_int(cJSON *obj, const char *key, long long v) WUR;
/* Add KEY: true/false (V non-zero is true). */
int json_add_bool(cJSON *obj, const char *key, int v) WUR;
/* Add KEY: ITEM, taking ownership of ITEM in every case (freed on failure). */
int json_add_item(cJSON *obj, const char *key, cJSON *item) WUR;
/* Add an empty object / array under KEY; returns it (owned by OBJ) or NULL. */
cJSON *json_add_object(cJSON *obj, const char *key) WUR;
cJSON *json_add_array(cJSON *obj, const char *key) WUR;
/*
 * Append a string (NULL: null; invalid UTF-8 replaced as in json_add_str) /
 * an integer (bounded as json_add_int) to ARR.
 */
int json_array_add_str(cJSON *arr, const char *value) WUR;
int json_array_add_int(cJSON *arr, long long v) WUR;

/* ITEM as compact JSON text, malloc'd (free with free()), or NULL (ENOMEM). */
char *json_print_compact(const cJSON *item) WUR;
/* ITEM as indented JSON text with a final newline (state files), or NULL. */
char *json_print_pretty(const cJSON *item) WUR;

/*
 * ITEM, printed as json_print_pretty() does, into PATH with fs_write_atomic()
 * (a temporary beside it, fsynced, renamed; the directory fsynced) and MODE:
 * the one way a state file or record is written. Returns 0, or -1 with E
 * (ERR_NOMEM "write PATH: out of memory", or the system error of the write).
 */
int json_write_atomic(const char *path, const cJSON *item, mode_t mode, struct err *e) WUR;

#endif
