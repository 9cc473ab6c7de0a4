/*
 * Fuzz common/release's release.json parser in both modes: the strict one
 * the updater uses and the lenient one the agent uses for /health. What the
 * strict reader accepts has every key and a lowercase 64-hex digest, and
 * written back (release_record_json) it reads back the same; the lenient
 * reader never reports a key it could not read.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "common/release.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
hex64_lower(const char *s)
{
	if (strlen(s) != 64) {
		return 0;
	}
	for (; *s != '\0'; s++) {
		if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f'))) {
			return 0;
		}
	}
	return 1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct release_info ri, back;
	struct err e = ERR_INIT;
	cJSON *o;
	char *text;

	if (release_record_parse((const char *)data, size, RELEASE_REC_LENIENT, &ri, &e) == 0) {
		if ((ri.fields & ~RELEASE_R_ALL) != 0 ||
		    ((ri.fields & RELEASE_R_SHA256) != 0 && !hex64_lower(ri.sha256)) ||
		    ((ri.fields & RELEASE_R_SHA256) == 0 && ri.sha256[0] != '\0')) {
			__builtin_trap();
		}
	} else if (ri.fields != 0) {
		__builtin_trap();
	}
	if (release_record_parse((const char *)data, size, 0, &ri, &e) != 0) {
		return 0;
	}
	if (ri.fields != RELEASE_R_ALL || ri.id[0] == '\0' || !hex64_lower(ri.sha256)) {
		__builtin_trap();
	}
	o = release_record_json(&ri, NULL);
	text = o != NULL ? json_print_compact(o) : NULL;
	if (text == NULL) {
		__builtin_trap();
	}
	memset(&back, 0, sizeof(back));
	if (release_record_parse(text, strlen(text), 0, &back, &e) != 0 ||
	    memcmp(&back, &ri, sizeof(ri)) != 0) {
		__builtin_trap();
	}
	free(text);
	cJSON_Delete(o);
	return 0;
}
