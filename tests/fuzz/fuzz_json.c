/*
 * Fuzz the strict JSON reader as HTTP bodies, manifests and state files meet
 * it: json_parse_object() (default and small explicit limits), then
 * json_read_fields() with a fixed schema covering every field type, on the
 * top object and on a nested one. Invariants checked beyond "no crash":
 * a parse failure always explains itself, read members respect the schema's
 * bounds, a failed read leaves the struct untouched, and whatever we accept
 * prints to JSON that our own reader accepts again.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct rel {
	char slot[8];
	char sha[65];
	const char *label;
	int32_t code;
	int64_t size;
	int ok;
	const cJSON *detail;
	const cJSON *releases;
};

static const struct json_field rel_fields[] = {
	JSON_F_STR("slot", struct rel, slot, JSON_REQUIRED, 1),
	JSON_F_STR("sha", struct rel, sha, 0, 0),
	JSON_F_STRREF("label", struct rel, label, JSON_NULLABLE, 0, 40),
	JSON_F_INT("code", struct rel, code, 0, 100, 599),
	JSON_F_INT("size", struct rel, size, JSON_NULLABLE, 0, JSON_INT_MAX),
	JSON_F_BOOL("ok", struct rel, ok, 0),
	JSON_F_OBJECT("detail", struct rel, detail, 0),
	JSON_F_ARRAY("releases", struct rel, releases, 0),
};

struct detail {
	char error[32];
	const char *stderr_text;
	int rolled_back;
};

static const struct json_field detail_fields[] = {
	JSON_F_STR("error", struct detail, error, JSON_REQUIRED, 0),
	JSON_F_STRREF("stderr", struct detail, stderr_text, 0, 0, 0),
	JSON_F_BOOL("rolled_back", struct detail, rolled_back, JSON_REQUIRED),
};

static void
check_reprint(const cJSON *tree)
{
	struct err e = ERR_INIT;
	char *text = json_print_compact(tree);

	if (text == NULL) {
		return; /* out of memory */
	}
	cJSON *again = json_parse_object(text, strlen(text), &e);
	if (again == NULL) {
		__builtin_trap(); /* we printed something we refuse */
	}
	cJSON_Delete(again);
	free(text);
}

static void
read_rel(const cJSON *root, int allow_unknown)
{
	struct err e = ERR_INIT;
	struct rel r, before;
	struct detail d, dbefore;

	memset(&r, 0xa5, sizeof(r));
	r.slot[0] = '\0';
	r.sha[0] = '\0';
	r.label = NULL;
	r.detail = NULL;
	r.releases = NULL;
	memcpy(&before, &r, sizeof(r));
	if (json_read_fields(root, rel_fields, ARRAY_LEN(rel_fields), allow_unknown, &r, &e) != 0) {
		if (memcmp(&r, &before, sizeof(r)) != 0 || !err_failed(&e)) {
			__builtin_trap();
		}
		return;
	}
	if (memchr(r.slot, '\0', sizeof(r.slot)) == NULL || r.slot[0] == '\0' ||
	    memchr(r.sha, '\0', sizeof(r.sha)) == NULL) {
		__builtin_trap();
	}
	if (r.label != NULL && strlen(r.label) > 40) {
		__builtin_trap();
	}
	if (r.code != before.code && (r.code < 100 || r.code > 599)) {
		__builtin_trap();
	}
	if (r.size != before.size && (r.size < 0 || r.size > JSON_INT_MAX)) {
		__builtin_trap();
	}
	if (r.ok != before.ok && r.ok != 0 && r.ok != 1) {
		__builtin_trap();
	}
	if (r.detail != NULL) {
		memset(&d, 0x5a, sizeof(d));
		d.stderr_text = NULL;
		memcpy(&dbefore, &d, sizeof(d));
		if (json_read_fields(r.detail, detail_fields, ARRAY_LEN(detail_fields), 0, &d,
		    &e) != 0) {
			if (memcmp(&d, &dbefore, sizeof(d)) != 0) {
				__builtin_trap();
			}
		} else if (memchr(d.error, '\0', sizeof(d.error)) == NULL ||
		    (d.rolled_back != 0 && d.rolled_back != 1)) {
			__builtin_trap();
		}
	}
	for (const cJSON *el = r.releases != NULL ? r.releases->child : NULL; el != NULL;
	    el = el->next) {
		struct rel sub;
		memset(&sub, 0, sizeof(sub));
		if (json_read_fields(el, rel_fields, ARRAY_LEN(rel_fields), 1, &sub, &e) == 0 &&
		    sub.slot[0] == '\0') {
			__builtin_trap();
		}
	}
}

/* Any C string we put in a reply (a child's stderr, a path) must print as valid JSON. */
static void
check_builder(const uint8_t *data, size_t size)
{
	struct err e = ERR_INIT;
	char *s = malloc(size + 1);
	cJSON *o = cJSON_CreateObject();

	if (s == NULL || o == NULL) {
		free(s);
		cJSON_Delete(o);
		return;
	}
	memcpy(s, data, size);
	s[size] = '\0';
	cJSON *arr = json_add_array(o, "lines");
	if (json_add_str(o, "stderr", s) == 0 && arr != NULL && json_array_add_str(arr, s) == 0 &&
	    json_add_int(o, "n", (long long)size * 1000000000000LL) == 0) {
		char *text = json_print_compact(o);
		if (text != NULL) {
			cJSON *again = json_parse_object(text, strlen(text), &e);
			if (again == NULL) {
				__builtin_trap();
			}
			const char *back = cJSON_GetStringValue(
			    cJSON_GetObjectItemCaseSensitive(again, "stderr"));
			/*
			 * Each invalid byte grows to U+FFFD's three: same length
			 * means no replacement, so the text must be unchanged.
			 */
			if (back == NULL || strlen(back) < strlen(s) ||
			    (strlen(back) == strlen(s) && strcmp(back, s) != 0)) {
				__builtin_trap();
			}
			cJSON_Delete(again);
			free(text);
		}
	}
	cJSON_Delete(o);
	free(s);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct err e = ERR_INIT;
	const char *buf = (const char *)data;

	cJSON *root = json_parse_object(buf, size, &e);
	if (root == NULL) {
		if (!err_failed(&e)) {
			__builtin_trap(); /* every refusal says why */
		}
	} else {
		if (!cJSON_IsObject(root)) {
			__builtin_trap();
		}
		read_rel(root, 0);
		read_rel(root, 1);
		check_reprint(root);
		cJSON_Delete(root);
	}
	check_builder(data, size);
	/* Small explicit limits take the depth and size refusals. */
	root = json_parse_object_ex(buf, size, 256, 3, &e);
	if (root != NULL) {
		if (size > 256) {
			__builtin_trap();
		}
		read_rel(root, 0);
		cJSON_Delete(root);
	}
	return 0;
}
