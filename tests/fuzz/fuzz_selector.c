/*
 * Fuzz the host selector (selector_parse), the label assignment
 * (selector_label_parse) and matching (selector_match). Input: the first
 * line is the selector; every further line is a label "KEY=VALUE" of a host
 * named by the last line. Invariants: a refusal says why and leaves an empty
 * selector; what is accepted holds only valid names or label terms, never
 * mixes them, and written back as text parses to the same selector; "all"
 * matches every host; a names selector matches exactly the hosts it names.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "master/selector.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_LABELS 16

static int
render(const struct selector *s, char *buf, size_t len)
{
	size_t off = 0;

	if (s->kind == SELECTOR_ALL) {
		return snprintf(buf, len, "all") < (int)len ? 0 : -1;
	}
	buf[0] = '\0';
	for (size_t i = 0; i < s->n; i++) {
		int n;
		if (s->kind == SELECTOR_NAMES) {
			n = snprintf(buf + off, len - off, "%s%s", i > 0 ? "," : "", s->terms[i].key);
		} else {
			n = snprintf(buf + off, len - off, "%s%s%s=%s", i > 0 ? "," : "",
			    s->terms[i].key, s->terms[i].negate ? "!" : "", s->terms[i].value);
		}
		if (n < 0 || (size_t)n >= len - off) {
			return -1;
		}
		off += (size_t)n;
	}
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct selector s, back, empty;
	static char text[SELECTOR_TEXT_MAX + 2], again[2 * SELECTOR_TEXT_MAX];
	static char lines[8192];
	struct selector_label labels[MAX_LABELS];
	struct err e = ERR_INIT;
	const char *name = "";
	char *line, *nl;
	size_t nlab = 0;
	int rm, m;

	if (size >= sizeof(lines)) {
		return 0;
	}
	memcpy(lines, data, size);
	lines[size] = '\0';
	if (strlen(lines) != size) {
		return 0; /* command-line text has no NUL */
	}
	nl = strchr(lines, '\n');
	if (nl != NULL) {
		*nl = '\0';
	}
	if (strlen(lines) >= sizeof(text)) {
		return 0;
	}
	memcpy(text, lines, strlen(lines) + 1);
	for (line = nl != NULL ? nl + 1 : NULL; line != NULL; line = nl != NULL ? nl + 1 : NULL) {
		nl = strchr(line, '\n');
		if (nl != NULL) {
			*nl = '\0';
		}
		name = line;
		if (nlab < MAX_LABELS) {
			struct selector_label l;
			if (selector_label_parse(line, &l, &rm, &e) == 0) {
				if (!selector_key_valid(l.key) || (rm && l.value[0] != '\0') ||
				    (!rm && !selector_value_valid(l.value))) {
					__builtin_trap();
				}
				if (!rm) {
					labels[nlab++] = l;
				}
			} else if (err_msg(&e)[0] == '\0') {
				__builtin_trap();
			}
		}
	}

	if (selector_parse(text, &s, &e) != 0) {
		if (err_msg(&e)[0] == '\0' || memcmp(&s, &empty, sizeof(s)) != 0) {
			__builtin_trap();
		}
		return 0;
	}
	if (s.n > SELECTOR_MAX_TERMS || (s.kind == SELECTOR_ALL) != (s.n == 0)) {
		__builtin_trap();
	}
	for (size_t i = 0; i < s.n; i++) {
		if (!selector_key_valid(s.terms[i].key) && s.kind == SELECTOR_LABELS) {
			__builtin_trap();
		}
		if (s.kind == SELECTOR_NAMES &&
		    (s.terms[i].negate || s.terms[i].value[0] != '\0' ||
		    strchr(s.terms[i].key, '=') != NULL || strchr(s.terms[i].key, ',') != NULL ||
		    strcmp(s.terms[i].key, "all") == 0)) {
			__builtin_trap();
		}
		if (s.kind == SELECTOR_LABELS && !selector_value_valid(s.terms[i].value)) {
			__builtin_trap();
		}
	}
	if (render(&s, again, sizeof(again)) != 0 || selector_parse(again, &back, &e) != 0 ||
	    memcmp(&s, &back, sizeof(s)) != 0) {
		__builtin_trap();
	}
	m = selector_match(&s, name, labels, nlab);
	if (s.kind == SELECTOR_ALL && m != 1) {
		__builtin_trap();
	}
	if (s.kind == SELECTOR_NAMES) {
		int named = 0;
		for (size_t i = 0; i < s.n; i++) {
			named |= strcasecmp(s.terms[i].key, name) == 0;
		}
		if (m != named) {
			__builtin_trap();
		}
	}
	if (s.kind == SELECTOR_LABELS && s.n > 0 && nlab == 0 && m != 0) {
		/* With no labels, only a selector of negations matches. */
		for (size_t i = 0; i < s.n; i++) {
			if (!s.terms[i].negate) {
				__builtin_trap();
			}
		}
	}
	return 0;
}
