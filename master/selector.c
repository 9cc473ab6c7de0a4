#include "master/selector.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

int
selector_key_valid(const char *key)
{
	size_t n = strlen(key);

	if (n == 0 || n > SELECTOR_KEY_MAX || !isalnum((unsigned char)key[0])) {
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)key[i];
		if (!((c >= 'a' && c <= 'z') || isdigit(c) || c == '.' || c == '_' || c == '/' ||
		    c == '-')) {
			return 0;
		}
	}
	return 1;
}

int
selector_value_valid(const char *value)
{
	size_t n = strlen(value);

	if (n > SELECTOR_VALUE_MAX) {
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)value[i];
		if (!(isalnum(c) || c == '.' || c == '_' || c == '-')) {
			return 0;
		}
	}
	return 1;
}

/* Host names as the registry takes them: [A-Za-z0-9._-], starting alphanumeric. */
static int
name_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > SELECTOR_KEY_MAX || !isalnum((unsigned char)s[0])) {
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!(isalnum(c) || c == '.' || c == '_' || c == '-')) {
			return 0;
		}
	}
	return 1;
}

/* One label term "K=V" / "K!=V" of LEN bytes at S into T. */
static int
term_parse(const char *s, size_t len, struct selector_term *t, struct err *e)
{
	char buf[SELECTOR_KEY_MAX + SELECTOR_VALUE_MAX + 4];
	char *eq;

	if (len >= sizeof(buf)) {
		return err_set(e, ERR_USAGE, "selector term '%.*s...' is too long", 20, s);
	}
	memcpy(buf, s, len);
	buf[len] = '\0';
	eq = strchr(buf, '=');
	if (eq == NULL) {
		return err_set(e, ERR_USAGE, "selector term '%s': expected KEY=VALUE", buf);
	}
	t->negate = eq > buf && eq[-1] == '!';
	*(t->negate ? eq - 1 : eq) = '\0';
	if (!selector_key_valid(buf)) {
		return err_set(e, ERR_USAGE, "selector term '%.*s': bad label key '%s' (use "
		    "[a-z0-9._/-], starting with a letter or digit)", (int)len, s, buf);
	}
	if (!selector_value_valid(eq + 1)) {
		return err_set(e, ERR_USAGE, "selector term '%.*s': bad label value (use "
		    "[A-Za-z0-9._-], at most %d bytes)", (int)len, s, SELECTOR_VALUE_MAX);
	}
	memcpy(t->key, buf, strlen(buf) + 1);
	memcpy(t->value, eq + 1, strlen(eq + 1) + 1);
	return 0;
}

int
selector_parse(const char *text, struct selector *out, struct err *e)
{
	struct selector *s = out;
	const char *p = text, *comma;
	size_t len;
	int labels = -1;

	memset(s, 0, sizeof(*s));
	if (text == NULL || *text == '\0') {
		return err_set(e, ERR_USAGE, "empty host selector: use all, NAME[,NAME...] or "
		    "KEY=VALUE[,KEY=VALUE...]");
	}
	if (strlen(text) > SELECTOR_TEXT_MAX) {
		return err_set(e, ERR_USAGE, "host selector longer than %d bytes", SELECTOR_TEXT_MAX);
	}
	if (strcmp(text, "all") == 0) {
		s->kind = SELECTOR_ALL;
		return 0;
	}
	for (;;) {
		comma = strchr(p, ',');
		len = comma != NULL ? (size_t)(comma - p) : strlen(p);
		if (len == 0) {
			memset(s, 0, sizeof(*s));
			return err_set(e, ERR_USAGE, "host selector '%.60s': an empty item", text);
		}
		if (s->n == SELECTOR_MAX_TERMS) {
			memset(s, 0, sizeof(*s));
			return err_set(e, ERR_USAGE, "host selector: at most %d items",
			    SELECTOR_MAX_TERMS);
		}
		int is_label = memchr(p, '=', len) != NULL;
		if (labels >= 0 && labels != is_label) {
			memset(s, 0, sizeof(*s));
			return err_set(e, ERR_USAGE, "host selector '%.60s': host names and label "
			    "terms do not mix", text);
		}
		labels = is_label;
		if (is_label) {
			if (term_parse(p, len, &s->terms[s->n], e) != 0) {
				memset(s, 0, sizeof(*s));
				return -1;
			}
		} else {
			if (len > SELECTOR_KEY_MAX) {
				memset(s, 0, sizeof(*s));
				return err_set(e, ERR_USAGE, "host name '%.20s...' is too long", p);
			}
			memcpy(s->terms[s->n].key, p, len);
			s->terms[s->n].key[len] = '\0';
			if (strcmp(s->terms[s->n].key, "all") == 0 || !name_valid(s->terms[s->n].key)) {
				err_set(e, ERR_USAGE, "host selector: '%s' is not a host name (all "
				    "stands alone)", s->terms[s->n].key);
				memset(s, 0, sizeof(*s));
				return -1;
			}
			for (size_t i = 0; i < s->n; i++) {
				if (strcasecmp(s->terms[i].key, s->terms[s->n].key) == 0) {
					err_set(e, ERR_USAGE, "host selector: %s is named twice",
					    s->terms[s->n].key);
					memset(s, 0, sizeof(*s));
					return -1;
				}
			}
		}
		s->n++;
		if (comma == NULL) {
			break;
		}
		p = comma + 1;
	}
	s->kind = labels ? SELECTOR_LABELS : SELECTOR_NAMES;
	return 0;
}

int
selector_label_parse(const char *text, struct selector_label *out, int *remove, struct err *e)
{
	struct selector_term t;
	size_t n = text != NULL ? strlen(text) : 0;

	memset(out, 0, sizeof(*out));
	*remove = 0;
	if (n > 1 && text[n - 1] == '-' && strchr(text, '=') == NULL) {
		if (n - 1 > SELECTOR_KEY_MAX) {
			return err_set(e, ERR_USAGE, "label key '%.20s...' is too long", text);
		}
		memcpy(out->key, text, n - 1);
		out->key[n - 1] = '\0';
		if (!selector_key_valid(out->key)) {
			return err_set(e, ERR_USAGE, "bad label key '%s'", out->key);
		}
		*remove = 1;
		return 0;
	}
	if (n == 0 || term_parse(text, n, &t, e) != 0) {
		return err_set(e, ERR_USAGE, "label '%.80s': expected KEY=VALUE (or KEY- to remove; "
		    "keys [a-z0-9._/-], values [A-Za-z0-9._-])", text != NULL ? text : "");
	}
	if (t.negate) {
		return err_set(e, ERR_USAGE, "label '%s': '!=' selects, it does not set", text);
	}
	memcpy(out->key, t.key, sizeof(out->key));
	memcpy(out->value, t.value, sizeof(out->value));
	return 0;
}

int
selector_match(const struct selector *s, const char *name, const struct selector_label *labels,
    size_t n)
{
	switch (s->kind) {
	case SELECTOR_ALL:
		return 1;
	case SELECTOR_NAMES:
		for (size_t i = 0; i < s->n; i++) {
			if (strcasecmp(s->terms[i].key, name) == 0) {
				return 1;
			}
		}
		return 0;
	case SELECTOR_LABELS:
		for (size_t i = 0; i < s->n; i++) {
			int has = 0;
			for (size_t k = 0; k < n; k++) {
				if (strcmp(labels[k].key, s->terms[i].key) == 0 &&
				    strcmp(labels[k].value, s->terms[i].value) == 0) {
					has = 1;
					break;
				}
			}
			if (has == s->terms[i].negate) {
				return 0;
			}
		}
		return 1;
	}
	return 0;
}
