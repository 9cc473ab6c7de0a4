/*
 * Fuzz the release signature parsers as an updater meets them in the tsig
 * part of a push: sign_tsig_parse(), sign_statement_parse() on the raw
 * bytes, and the whole acceptance rule sign_release_check() against a fixed
 * keyring whose release key is the one the seed corpus is signed with.
 * Invariants beyond "no crash": every refusal says why with a signature
 * kind; an accepted envelope prints to bytes that parse to the same
 * statement and signatures; an accepted release was signed by a key of the
 * keyring and its statement parses alone.
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

/* The release key of tests/fuzz/corpus/tsig/ (public half). */
static const char fuzz_pub[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEu7hvfXwwhbbkb+/lI076TECqPaW+\n"
    "/ouiDbXXy9REuclLLomFLLnxFmVHsh/0gRc8PUFgIoBACjUxpLJPQFMhWg==\n"
    "-----END PUBLIC KEY-----\n";

static struct sign_keyring kr;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char path[PATH_MAX];
	struct sign_key *k = NULL;
	int fd = -1;

	(void)argc;
	(void)argv;
	if (snprintf(path, sizeof(path), "%s/fuzz-tsig-XXXXXX", fs_tmp_root()) < (int)sizeof(path)) {
		fd = mkstemp(path);
	}
	if (fd < 0 || fs_write_all(fd, fuzz_pub, strlen(fuzz_pub)) != 0 ||
	    sign_key_load_public(path, &k, NULL) != 0) {
		abort();
	}
	close(fd);
	unlink(path);
	sign_keyring_init(&kr);
	kr.version = 1;
	kr.threshold = 1;
	kr.root_threshold = 1;
	if (sign_keyring_add_key(&kr, 1, k, NULL, NULL) != 0 ||
	    sign_keyring_add_key(&kr, 0, k, NULL, NULL) != 0) {
		abort();
	}
	sign_key_free(k);
	return 0;
}

static int
is_sig_kind(enum err_kind k)
{
	return k == ERR_SIGNATURE || k == ERR_UNKNOWN_KEY || k == ERR_STATEMENT ||
	    k == ERR_EXPIRED || k == ERR_FLOOR || k == ERR_NOMEM;
}

static void
round_trip(const struct sign_envelope *env, const struct sign_statement *st)
{
	struct sign_envelope env2;
	struct sign_statement st2;
	char *text = NULL;
	size_t len = 0;

	memset(&env2, 0, sizeof(env2));
	if (sign_tsig_format(env, &text, &len, NULL) != 0) {
		return; /* out of memory */
	}
	if (sign_tsig_parse(text, len, &env2, &st2, NULL) != 0 ||
	    memcmp(st, &st2, sizeof(st2)) != 0 || env2.nsigs != env->nsigs ||
	    env2.payload_len != env->payload_len ||
	    memcmp(env2.payload, env->payload, env->payload_len) != 0) {
		__builtin_trap();
	}
	for (size_t i = 0; i < env->nsigs; i++) {
		if (env2.sigs[i].len != env->sigs[i].len ||
		    memcmp(env2.sigs[i].sig, env->sigs[i].sig, env->sigs[i].len) != 0 ||
		    strcmp(env2.sigs[i].keyid, env->sigs[i].keyid) != 0) {
			__builtin_trap();
		}
	}
	sign_envelope_free(&env2);
	free(text);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sign_envelope env;
	struct sign_statement st, st2;
	struct sign_verdict v;
	struct sign_want w;
	struct err e = ERR_INIT;
	char *text = NULL;
	size_t len = 0;
	int parsed;

	memset(&env, 0, sizeof(env));
	parsed = sign_tsig_parse(data, size, &env, &st, &e) == 0;
	if (!parsed) {
		if (e.kind != ERR_SIGNATURE && e.kind != ERR_NOMEM) {
			__builtin_trap();
		}
		if (err_msg(&e)[0] == '\0' || env.payload != NULL) {
			__builtin_trap();
		}
	} else {
		round_trip(&env, &st);
		sign_envelope_free(&env);
	}

	/* The statement alone; what we accept we print and accept again. */
	err_clear(&e);
	if (sign_statement_parse(data, size, &st, &e) == 0) {
		if (sign_statement_format(&st, &text, &len, NULL) == 0) {
			if (sign_statement_parse(text, len, &st2, NULL) != 0 ||
			    memcmp(&st, &st2, sizeof(st)) != 0) {
				__builtin_trap();
			}
			free(text);
		}
	} else if (e.kind != ERR_SIGNATURE && e.kind != ERR_NOMEM) {
		__builtin_trap();
	}

	/* The whole rule, as a host with floor 1 and compatible "tandem" applies it. */
	memset(&w, 0, sizeof(w));
	w.compatible = "tandem";
	w.size = -1;
	w.floor = 1;
	w.now = 1767225600;
	err_clear(&e);
	if (sign_release_check(&kr, data, size, &w, &v, &e) == 0) {
		if (!parsed || v.nsigned < 1 || strcmp(v.signed_by[0], kr.rel[0].keyid) != 0 ||
		    v.st.security_version < 1 || strcmp(v.st.compatible, "tandem") != 0) {
			__builtin_trap();
		}
	} else if (!is_sig_kind(e.kind) || err_msg(&e)[0] == '\0') {
		__builtin_trap();
	}
	return 0;
}
