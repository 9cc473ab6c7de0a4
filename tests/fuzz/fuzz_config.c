/*
 * Fuzz the configuration parser: config_load_buffer() with an option table
 * covering every value type, and config_set_kv() with the first line as a
 * command-line override. Invariants beyond "no crash": a refusal says why
 * and changes nothing; loaded values respect their bounds; and what
 * config_print() writes loads back to the same values (the "-n" promise).
 * The table-free editor too: config_edit() on the input either refuses it
 * (and then config_get_raw() refuses it as well) or writes text in which
 * config_get_raw() reads every edited key back as the value given, and
 * which a second edit leaves byte for byte the same.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "common/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct cfg {
	char *name;
	char *any;
	char *dir;
	long long workers;
	int debug;
	long long timeout;
	long long maxsize;
	char *listen;
	char *peer;
	char **hosts;
	int level;
};

#define O(n, t, m, d, lo, hi) { (n), (t), offsetof(struct cfg, m), (d), (lo), (hi), NULL }
static const struct config_option tbl[] = {
	O("name", CONFIG_STR, name, "tandem", 1, 64),
	O("any", CONFIG_STR, any, NULL, 0, 0),
	O("dir", CONFIG_PATH, dir, "state", 0, 0),
	O("workers", CONFIG_INT, workers, "4", -1000, 1000000),
	O("debug", CONFIG_BOOL, debug, "no", 0, 0),
	O("timeout", CONFIG_DURATION_MS, timeout, "10s", 0, 86400000),
	O("max_size", CONFIG_SIZE, maxsize, "1G", 0, 1LL << 50),
	O("listen", CONFIG_ADDR, listen, "[::]:8766", 1, 65535),
	O("peer", CONFIG_ADDR, peer, NULL, 0, 0),
	O("hosts", CONFIG_STRLIST, hosts, "", 0, 0),
	O("log_level", CONFIG_LOGLEVEL, level, "info", 0, 0),
};
#define N ARRAY_LEN(tbl)

static int
str_eq(const char *a, const char *b)
{
	return (a == NULL || b == NULL) ? a == b : strcmp(a, b) == 0;
}

static int
same(const struct cfg *a, const struct cfg *b)
{
	size_t i;

	if (!str_eq(a->name, b->name) || !str_eq(a->any, b->any) || !str_eq(a->dir, b->dir) ||
	    a->workers != b->workers || a->debug != b->debug || a->timeout != b->timeout ||
	    a->maxsize != b->maxsize || !str_eq(a->listen, b->listen) ||
	    !str_eq(a->peer, b->peer) || a->level != b->level) {
		return 0;
	}
	for (i = 0; a->hosts[i] != NULL && b->hosts[i] != NULL; i++) {
		if (strcmp(a->hosts[i], b->hosts[i]) != 0) {
			return 0;
		}
	}
	return a->hosts[i] == NULL && b->hosts[i] == NULL;
}

static void
check_bounds(const struct cfg *c)
{
	if (c->name == NULL || strlen(c->name) < 1 || strlen(c->name) > 64 || c->dir == NULL ||
	    c->dir[0] != '/' || c->workers < -1000 || c->workers > 1000000 ||
	    (c->debug != 0 && c->debug != 1) || c->timeout < 0 || c->timeout > 86400000 ||
	    c->maxsize < 0 || c->maxsize > (1LL << 50) || c->listen == NULL || c->hosts == NULL ||
	    c->level < LOG_LVL_ERROR || c->level > LOG_LVL_DEBUG) {
		__builtin_trap();
	}
	for (char **h = c->hosts; *h != NULL; h++) {
		size_t l = strlen(*h);
		if (l == 0 || strchr(*h, ',') != NULL || (*h)[0] == ' ' || (*h)[l - 1] == ' ') {
			__builtin_trap();
		}
	}
}

/* Print C and load the text into a fresh struct: same values, or a line too long. */
static void
check_round_trip(const struct cfg *c)
{
	struct cfg back;
	struct err e = ERR_INIT;
	char *text = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&text, &len);

	if (fp == NULL) {
		return;
	}
	if (config_print(tbl, N, c, fp) != 0) {
		__builtin_trap();
	}
	fclose(fp);
	memset(&back, 0, sizeof(back));
	if (config_defaults(tbl, N, &back, &e) != 0) {
		__builtin_trap();
	}
	if (config_load_buffer(tbl, N, &back, text, len, "/elsewhere", "printed", &e) != 0) {
		/* Only a value near the line limit may fail to come back. */
		int longline = 0;
		for (const char *p = text, *nl; (nl = memchr(p, '\n', len - (size_t)(p - text))) != NULL;
		    p = nl + 1) {
			longline |= nl - p > CONFIG_MAX_LINE;
		}
		if (!longline) {
			__builtin_trap();
		}
	} else if (!same(c, &back)) {
		__builtin_trap();
	}
	config_free(tbl, N, &back);
	free(text);
}

/* config_edit and config_get_raw on DATA (see the top of the file). */
static void
check_edit(const char *data, size_t size)
{
	static const char *const keys[] = { "listen", "name", "master_fingerprints" };
	static const char *const vals[] = { "127.0.0.1:8766", "a \"q\" # not a comment",
		"" };
	struct err e = ERR_INIT;
	char *out = NULL, *again = NULL, *v = NULL;
	size_t outlen = 0, againlen = 0;

	if (config_edit(data, size, keys, vals, ARRAY_LEN(keys), &out, &outlen, &e) != 0) {
		if (out != NULL || err_msg(&e)[0] == '\0' ||
		    config_get_raw(data, size, "listen", &v, &e) != -1 || v != NULL) {
			__builtin_trap();
		}
		return;
	}
	if (strlen(out) != outlen) {
		__builtin_trap();
	}
	for (size_t i = 0; i < ARRAY_LEN(keys); i++) {
		if (config_get_raw(out, outlen, keys[i], &v, &e) != 1 || strcmp(v, vals[i]) != 0) {
			__builtin_trap();
		}
		free(v);
		v = NULL;
	}
	if (config_edit(out, outlen, keys, vals, ARRAY_LEN(keys), &again, &againlen, &e) != 0 ||
	    againlen != outlen || memcmp(again, out, outlen) != 0) {
		__builtin_trap();
	}
	free(again);
	free(out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cfg c, snap;
	struct err e = ERR_INIT;

	memset(&c, 0, sizeof(c));
	if (config_defaults(tbl, N, &c, &e) != 0) {
		__builtin_trap();
	}
	memcpy(&snap, &c, sizeof(c));
	err_clear(&e);
	if (config_load_buffer(tbl, N, &c, (const char *)data, size, "/etc/tandem", "fuzz.conf",
	    &e) != 0) {
		int kind_ok = e.kind == ERR_CONFIG || e.kind == ERR_NOMEM;
		if (!kind_ok || err_msg(&e)[0] == '\0' || memcmp(&c, &snap, sizeof(c)) != 0) {
			__builtin_trap();
		}
	}
	check_bounds(&c);
	check_round_trip(&c);
	check_edit((const char *)data, size);

	/* The first line as a "-o NAME=VALUE" override. */
	const uint8_t *nl = memchr(data, '\n', size);
	size_t l = nl != NULL ? (size_t)(nl - data) : size;
	char *kv = malloc(l + 1);
	if (kv != NULL) {
		memcpy(kv, data, l);
		kv[l] = '\0';
		memcpy(&snap, &c, sizeof(c));
		if (config_set_kv(tbl, N, &c, kv, &e) != 0) {
			if (memcmp(&c, &snap, sizeof(c)) != 0) {
				__builtin_trap();
			}
		}
		check_bounds(&c);
		free(kv);
	}
	config_free(tbl, N, &c);
	return 0;
}
