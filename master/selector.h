/*
 * selector — which hosts a command means: `--hosts SEL`.
 *
 *   all                   every host in service
 *   web1,web2             these hosts (each must exist and be in service)
 *   env=prod,role!=db     every host in service whose labels match all terms
 *
 * Names and label terms do not mix in one selector. Labels are KEY=VALUE
 * pairs on a host (`swarm enroll --label`, `swarm label`): keys 1..63 bytes
 * of [a-z0-9._/-] starting with a letter or digit, values 0..63 bytes of
 * [A-Za-z0-9._-]. "KEY=VALUE" matches a host with that label; "KEY!=VALUE"
 * one without it (a host lacking KEY matches).
 *
 * Pure: parsing and matching only (tests/unit/test_selector.c, fuzzed by
 * tests/fuzz/fuzz_selector.c).
 */
#ifndef TANDEM_MASTER_SELECTOR_H
#define TANDEM_MASTER_SELECTOR_H

#include <stddef.h>

#include "common/err.h"
#include "common/util.h"

#define SELECTOR_KEY_MAX 63
#define SELECTOR_VALUE_MAX 63
#define SELECTOR_MAX_TERMS 64
#define SELECTOR_TEXT_MAX 4095

enum selector_kind {
	SELECTOR_ALL = 0,
	SELECTOR_NAMES = 1,
	SELECTOR_LABELS = 2,
};

struct selector_term {
	char key[SELECTOR_KEY_MAX + 1];   /* a host name for SELECTOR_NAMES */
	char value[SELECTOR_VALUE_MAX + 1];
	int negate;                       /* "!=" */
};

struct selector {
	enum selector_kind kind;
	size_t n;
	struct selector_term terms[SELECTOR_MAX_TERMS];
};

/* A host's label. */
struct selector_label {
	char key[SELECTOR_KEY_MAX + 1];
	char value[SELECTOR_VALUE_MAX + 1];
};

/* Parse TEXT into *OUT. ERR_USAGE with the reason on a malformed selector. */
int selector_parse(const char *text, struct selector *out, struct err *e) WUR;

/* 1 if KEY / VALUE are acceptable label parts. */
int selector_key_valid(const char *key);
int selector_value_valid(const char *value);

/*
 * Parse one label assignment "KEY=VALUE" (into OUT) or removal "KEY-"
 * (*REMOVE set, OUT->value ""), as `swarm label` and `enroll --label` take them.
 */
int selector_label_parse(const char *text, struct selector_label *out, int *remove,
    struct err *e) WUR;

/*
 * Does the host NAME with LABELS[0..N) match S? Names compare
 * case-insensitively (as the registry does).
 */
int selector_match(const struct selector *s, const char *name,
    const struct selector_label *labels, size_t n);

#endif
