/*
 * manifest — a release's manifest.json, which comes from the pushed tarball
 * (untrusted input):
 *
 *   {"name":"tandem-agent","version":"1.2.3","entrypoint":"bin/tandem-agent",
 *    "preflight":["bin/tandem-agent","--self-test"]}
 *
 * name, version and entrypoint are required, preflight optional; other keys
 * are ignored (newer releases may add some). The entrypoint and preflight[0]
 * must be relative paths without "." tricks ("..", empty components, a
 * leading '/'), and on disk resolve to executable regular files inside the
 * release directory.
 */
#ifndef TANDEM_UPDATER_MANIFEST_H
#define TANDEM_UPDATER_MANIFEST_H

#include <stddef.h>

#include "common/util.h"

#define MANIFEST_FILE "manifest.json"
#define MANIFEST_MAX_BYTES (64 * 1024)
#define MANIFEST_MAX_ARGS 16
#define MANIFEST_MAX_ARG 256

struct manifest {
	char name[128];
	char version[128];
	char entrypoint[256];
	/* preflight command; npreflight 0: none given (default: ENTRYPOINT --self-test) */
	char preflight[MANIFEST_MAX_ARGS][MANIFEST_MAX_ARG];
	size_t npreflight;
};

/* 1 if P is a non-empty relative path with no "..", empty or absolute component. */
int manifest_safe_relpath(const char *p);

/*
 * Parse LEN bytes of BUF strictly (common/json) into *M. Returns 0, or -1
 * with ERR naming the problem. *M is written only on success.
 */
int manifest_parse(const char *buf, size_t len, struct manifest *m, char *err, size_t errlen)
    WUR;

/*
 * DIR/REL resolves (symlinks followed) to an executable regular file inside
 * DIR. Returns 0, or -1 with ERR.
 */
int manifest_check_exec(const char *dir, const char *rel, char *err, size_t errlen) WUR;

/*
 * Read DIR/manifest.json, parse it, and check the entrypoint and the
 * preflight program on disk (manifest_check_exec). 0 or -1 with ERR.
 */
int manifest_read(const char *dir, struct manifest *m, char *err, size_t errlen) WUR;

#endif
