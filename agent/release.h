/*
 * release — which release is this process running?
 *
 * The updater installs each release as a self-contained directory
 * (RELEASE_DIR/bin/tandem-agent, RELEASE_DIR/manifest.json) and writes the
 * release record RELEASE_DIR/release.json. The agent finds RELEASE_DIR from
 * its own executable (/proc/self/exe -> dirname -> dirname) and reports the
 * record's "sha" (free-text label) and "sha256" (tarball digest) in /health,
 * so the updater can tell a freshly started release from a stale process.
 */
#ifndef TANDEM_AGENT_RELEASE_H
#define TANDEM_AGENT_RELEASE_H

#include <stddef.h>

#include "common/util.h"

#define RELEASE_RECORD_NAME "release.json"
#define RELEASE_RECORD_MAX (64 * 1024)
#define RELEASE_SHA_MAX 256

struct release_info {
	int has_sha;
	int has_sha256;
	char sha[RELEASE_SHA_MAX];  /* valid when has_sha */
	char sha256[65];            /* 64 lowercase hex, valid when has_sha256 */
};

/*
 * RELEASE_DIR of the executable EXE_PATH (an absolute path): its directory's
 * parent ("/r/bin/tandem-agent" -> "/r"). Returns 0, or -1 if EXE_PATH has
 * fewer than two directory levels or OUT is too small.
 */
int release_dir_of(const char *exe_path, char *out, size_t outlen) WUR;

/* release_dir_of() of /proc/self/exe. Returns 0, or -1 with errno set. */
int release_self_dir(char *out, size_t outlen) WUR;

/*
 * Read DIR/release.json into OUT. A missing, unreadable or invalid file
 * (not a strict JSON object) gives both fields absent. Fields are read
 * independently: one that is absent, not a string, too long, or (for
 * "sha256") not 64 hex digits is absent without hiding the other. Unknown
 * keys are ignored (the updater records more). sha256 is stored lowercase.
 * Returns 0 when the record was read, 1 when it does not exist, -1 when it
 * exists but is unusable (WHY says why).
 */
int release_read(const char *dir, struct release_info *out, char *why, size_t whylen) WUR;

#endif
