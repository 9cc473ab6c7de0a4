/*
 * Fuzz the keyring parser as an updater meets it in POST /keyring and in
 * state/keyring.json: sign_keyring_parse() with and without its own
 * signatures required, the rotation rule against a fixed current keyring
 * (version 1, the key of the seed corpus), and the writer. Invariants
 * beyond "no crash": refusals say why with a documented kind and leave the
 * keyring empty; an accepted document prints to bytes that parse to the
 * same keys and thresholds; an accepted rotation is exactly version 2.
 */
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/fs.h"
#include "pki/sign.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The root (and release) key of tests/fuzz/corpus/keyring/ (public half). */
static const char fuzz_pub[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEu7hvfXwwhbbkb+/lI076TECqPaW+\n"
    "/ouiDbXXy9REuclLLomFLLnxFmVHsh/0gRc8PUFgIoBACjUxpLJPQFMhWg==\n"
    "-----END PUBLIC KEY-----\n";

static struct sign_keyring cur;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char path[PATH_MAX];
	struct sign_key *k = NULL;
	int fd = -1;

	(void)argc;
	(void)argv;
	if (snprintf(path, sizeof(path), "%s/fuzz-keyring-XXXXXX", fs_tmp_root()) < (int)sizeof(path)) {
		fd = mkstemp(path);
	}
	if (fd < 0 || fs_write_all(fd, fuzz_pub, strlen(fuzz_pub)) != 0 ||
	    sign_key_load_public(path, &k, NULL) != 0) {
		abort();
	}
	close(fd);
	unlink(path);
	sign_keyring_init(&cur);
	cur.version = 1;
	cur.threshold = 1;
	cur.root_threshold = 1;
	if (sign_keyring_add_key(&cur, 1, k, NULL, NULL) != 0 ||
	    sign_keyring_add_key(&cur, 0, k, NULL, NULL) != 0) {
		abort();
	}
	sign_key_free(k);
	return 0;
}

static int
is_keyring_kind(enum err_kind k)
{
	return k == ERR_SIGNATURE || k == ERR_UNKNOWN_KEY || k == ERR_FORMAT || k == ERR_NOMEM;
}

static void
same_keys(const struct sign_keyring *a, const struct sign_keyring *b)
{
	if (a->version != b->version || a->threshold != b->threshold ||
	    a->root_threshold != b->root_threshold || a->nroot != b->nroot ||
	    a->nrel != b->nrel || strcmp(a->created_at, b->created_at) != 0) {
		__builtin_trap();
	}
	for (size_t i = 0; i < a->nroot; i++) {
		if (strcmp(a->root[i].keyid, b->root[i].keyid) != 0) {
			__builtin_trap();
		}
	}
	for (size_t i = 0; i < a->nrel; i++) {
		if (strcmp(a->rel[i].keyid, b->rel[i].keyid) != 0 ||
		    strcmp(a->rel[i].not_after, b->rel[i].not_after) != 0) {
			__builtin_trap();
		}
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sign_keyring kr, again;
	struct err e = ERR_INIT;
	char *text = NULL;
	size_t len = 0;

	sign_keyring_init(&kr);
	sign_keyring_init(&again);
	if (sign_keyring_parse(data, size, 1, &kr, &e) != 0) {
		if (!is_keyring_kind(e.kind) || err_msg(&e)[0] == '\0' || kr.version != 0 ||
		    kr.nroot != 0 || kr.env.payload != NULL) {
			__builtin_trap();
		}
		/* Signatures required: never accepted when the shape is refused. */
		if (sign_keyring_parse(data, size, 0, &kr, NULL) == 0) {
			__builtin_trap();
		}
		return 0;
	}
	/* The writer: the envelope as it came, and a fresh body of the same keys. */
	if (sign_keyring_format(&kr, &text, &len, NULL) == 0) {
		if (sign_keyring_parse(text, len, 1, &again, NULL) != 0) {
			__builtin_trap();
		}
		same_keys(&kr, &again);
		sign_keyring_free(&again);
		free(text);
		text = NULL;
	}
	if (sign_keyring_seal(&kr, NULL) == 0 && sign_keyring_format(&kr, &text, &len, NULL) == 0) {
		if (sign_keyring_parse(text, len, 1, &again, NULL) != 0) {
			__builtin_trap();
		}
		same_keys(&kr, &again);
		sign_keyring_free(&again);
		free(text);
	}
	sign_keyring_free(&kr);

	/* Signed, then as the successor of version 1. */
	err_clear(&e);
	if (sign_keyring_parse(data, size, 0, &kr, &e) == 0) {
		if (sign_keyring_root_sigs(&kr, &kr.env) < (size_t)kr.root_threshold) {
			__builtin_trap();
		}
		err_clear(&e);
		if (sign_keyring_check_next(&cur, &kr, &e) == 0) {
			if (kr.version != 2 ||
			    sign_keyring_root_sigs(&cur, &kr.env) < (size_t)cur.root_threshold) {
				__builtin_trap();
			}
		} else if (e.kind != ERR_CONFLICT && !is_keyring_kind(e.kind)) {
			__builtin_trap();
		}
		sign_keyring_free(&kr);
	} else if (!is_keyring_kind(e.kind)) {
		__builtin_trap();
	}
	return 0;
}
