/*
 * release — the one owner of a release's two files: its manifest
 * (manifest.json, written by `tandem release pack`, read by the updater from
 * an untrusted tarball) and its release record (release.json, written by the
 * updater when it installs a release, read by the updater and by the agent).
 * One parser, one writer and one set of rules for each; nobody else reads or
 * writes these files.
 *
 * manifest.json:
 *   {"name":"tandem-agent","version":"1.2.3","entrypoint":"bin/tandem-agent",
 *    "preflight":["bin/tandem-agent","--self-test"],
 *    "updater_entrypoint":"bin/tandem-updater"}
 *   - a strict JSON object (common/json) of at most RELEASE_FILE_MAX bytes and
 *     RELEASE_MANIFEST_DEPTH levels;
 *   - name, version: RELEASE_IDENT_MAX bytes at most of [A-Za-z0-9._+~-],
 *     starting with a letter or a digit (they end up in file names and
 *     version checks); name always required, version required except in a
 *     source manifest (RELEASE_MF_SOURCE: the packer fills it in);
 *   - entrypoint (the agent program) and updater_entrypoint (the updater
 *     program): release_safe_relpath() paths; at least one of them, and the
 *     one a reader asks for (RELEASE_MF_AGENT / RELEASE_MF_UPDATER);
 *   - preflight: optional, 1..RELEASE_ARGS_MAX strings of at most
 *     RELEASE_ARG_MAX bytes, the first a release_safe_relpath() program;
 *     absent means "ENTRYPOINT --self-test";
 *   - readiness: optional, 1..RELEASE_READINESS_MAX of [a-z0-9-], how the
 *     entrypoint tells that it serves: RELEASE_READINESS_FD ("ready-fd":
 *     it takes "--ready-fd N" and writes a line starting with READY to fd
 *     N once it listens). Absent, or a value this reader does not know:
 *     nothing but the HTTP probe (a newer release still installs);
 *   - other keys are ignored (newer releases may add some) and kept by the
 *     writer when it is given the source manifest.
 *
 * release.json (the updater's record of an installed release):
 *   {"id":"…","sha":"label","sha256":"64 hex","version":"…","name":"…",
 *    "installed_at":"2026-01-01T00:00:00Z","installed_by":"fingerprint"}
 *   every key required and a string (id non-empty, sha256 64 hex digits,
 *   stored lowercase); unknown keys ignored. A signed release adds
 *   "security_version" and "min_security_version" (integers, 0 <= min <=
 *   security_version <= RELEASE_SV_MAX) and "signed_by" (keyids: lowercase
 *   hex, comma-separated), optional for every reader. RELEASE_REC_LENIENT reads each
 *   key on its own (for the agent's /health): a bad or missing key is left
 *   out of `fields` without hiding the others.
 *
 * Errors are struct err: ERR_FORMAT for a file that breaks a rule (the
 * message names the file and the key), ERR_IO/ERR_NOSPACE for system calls,
 * ERR_NOMEM.
 */
#ifndef TANDEM_RELEASE_H
#define TANDEM_RELEASE_H

#include <stddef.h>

#include "cJSON.h"
#include "common/err.h"
#include "common/util.h"

#define RELEASE_MANIFEST_FILE "manifest.json"
#define RELEASE_RECORD_FILE "release.json"
#define RELEASE_FILE_MAX (64 * 1024)   /* either file */
#define RELEASE_MANIFEST_DEPTH 8
#define RELEASE_IDENT_MAX 64           /* name, version */
#define RELEASE_PATH_MAX 255           /* entrypoint, updater_entrypoint */
#define RELEASE_ARGS_MAX 16            /* preflight arguments */
#define RELEASE_ARG_MAX 255            /* bytes per preflight argument */
#define RELEASE_READINESS_MAX 32       /* bytes of "readiness" */
#define RELEASE_READINESS_FD "ready-fd"

/* What `tandem release pack` writes when the tree has no manifest.json. */
#define RELEASE_DEFAULT_NAME "tandem-agent"
#define RELEASE_DEFAULT_ENTRYPOINT "bin/tandem-agent"
#define RELEASE_DEFAULT_UPDATER_ENTRYPOINT "bin/tandem-updater"

struct release_manifest {
	char name[128];                 /* at most RELEASE_IDENT_MAX bytes used */
	char version[128];              /* "" only for a source manifest without one */
	char entrypoint[RELEASE_PATH_MAX + 1];         /* "" when absent */
	char updater_entrypoint[RELEASE_PATH_MAX + 1]; /* "" when absent */
	char preflight[RELEASE_ARGS_MAX][RELEASE_ARG_MAX + 1];
	size_t npreflight;              /* 0: none given (ENTRYPOINT --self-test) */
	char readiness[RELEASE_READINESS_MAX + 1]; /* "" when absent */
};

/* 1 if S is a valid "readiness" value (1..RELEASE_READINESS_MAX of [a-z0-9-]). */
int release_readiness_valid(const char *s);

/* release_manifest_parse() / release_manifest_read() flags */
#define RELEASE_MF_AGENT 0x1u   /* entrypoint required (checked on disk by _read) */
#define RELEASE_MF_UPDATER 0x2u /* updater_entrypoint required (checked on disk by _read) */
#define RELEASE_MF_SOURCE 0x4u  /* a packer's input: version may be absent */

/*
 * 1 if P is a path the release may name: relative, 1..RELEASE_PATH_MAX
 * bytes, no empty, "." or ".." component, no trailing '/', no control byte.
 */
int release_safe_relpath(const char *p);
/* The same rules with MAX bytes at most (files.json: a tarball's entry limit). */
int release_safe_relpath_max(const char *p, size_t max);

/* 1 if S is a valid name or version (see above). */
int release_ident_valid(const char *s);

/*
 * Order of two release versions as Debian orders package versions (without
 * an epoch or revision): digit runs compare as numbers, the rest
 * character by character with letters before other characters and "~"
 * before everything, even the end ("1.0~rc1" < "1.0" < "1.0.1" < "1.0a").
 * <0, 0 or >0. The launcher uses it for "the newer updater wins" between the
 * package's and a self-update's (wiki/Upgrades.md).
 */
int release_version_cmp(const char *a, const char *b);

/*
 * Parse LEN bytes of BUF (no NUL needed) by the rules above into *M; FLAGS
 * RELEASE_MF_*. *M is written only on success. Returns 0 or -1 with E.
 */
int release_manifest_parse(const char *buf, size_t len, unsigned flags,
    struct release_manifest *m, struct err *e) WUR;

/*
 * The bytes of manifest.json for M (which must satisfy the rules, version
 * included): the known keys in a fixed order (name, version, entrypoint,
 * preflight, updater_entrypoint, readiness; empty ones left out), then the unknown keys
 * of SRC (LEN bytes of a source manifest that release_manifest_parse()
 * accepted; NULL: none) in their order, indented, with a final newline. The
 * same input always gives the same bytes. *OUT is malloc'd (caller frees),
 * *OUTLEN its length. Returns 0 or -1 with E.
 */
int release_manifest_format(const struct release_manifest *m, const char *src, size_t srclen,
    char **out, size_t *outlen, struct err *e) WUR;

/*
 * DIR/REL resolves (symlinks followed) to an executable regular file inside
 * DIR, and REL passes release_safe_relpath(). Returns 0 or -1 with E
 * (ERR_FORMAT: "'REL' is missing from the release", "... resolves outside the
 * release", "... is not an executable file").
 */
int release_check_exec(const char *dir, const char *rel, struct err *e) WUR;

/*
 * Read DIR/manifest.json, parse it with FLAGS, and check on disk
 * (release_check_exec) the programs FLAGS asks for: RELEASE_MF_AGENT the
 * entrypoint and the preflight program, RELEASE_MF_UPDATER the
 * updater_entrypoint. Returns 0 or -1 with E.
 */
int release_manifest_read(const char *dir, unsigned flags, struct release_manifest *m,
    struct err *e) WUR;

/* ---- release.json ---- */

#define RELEASE_ID_SIZE 40 /* bytes of the id buffer (the updater's operation ids) */
#define RELEASE_SIGNED_BY_MAX (16 * 65) /* keyids of a signed release, comma-separated */
#define RELEASE_SV_MAX 2147483647LL     /* largest security version */

struct release_info {
	char id[RELEASE_ID_SIZE];   /* install id */
	char sha[256];              /* free-text label from the push */
	char sha256[65];            /* digest of the tarball, lowercase hex */
	char version[128];          /* from the manifest */
	char name[128];             /* from the manifest */
	char installed_at[32];      /* ISO-8601 UTC */
	char installed_by[65];      /* installer's certificate fingerprint */
	unsigned fields;            /* RELEASE_R_* of the keys read (all after a strict read) */
	/*
	 * A signed release (pki/sign.h): its statement's security versions and
	 * the keyids whose signatures held, comma-separated. Optional keys of
	 * release.json, left out when all three are 0, 0, "" (an unsigned release).
	 */
	long long security_version;
	long long min_security_version;
	char signed_by[RELEASE_SIGNED_BY_MAX];
};

#define RELEASE_R_ID 0x01u
#define RELEASE_R_SHA 0x02u
#define RELEASE_R_SHA256 0x04u
#define RELEASE_R_VERSION 0x08u
#define RELEASE_R_NAME 0x10u
#define RELEASE_R_INSTALLED_AT 0x20u
#define RELEASE_R_INSTALLED_BY 0x40u
#define RELEASE_R_ALL 0x7fu

/* release_record_parse() / release_record_read() flags */
#define RELEASE_REC_LENIENT 0x1u

/*
 * Parse LEN bytes of BUF into *RI (cleared first in lenient mode; written
 * only on success otherwise). The JSON itself must be a strict object in
 * both modes. Returns 0 or -1 with E.
 */
int release_record_parse(const char *buf, size_t len, unsigned flags, struct release_info *ri,
    struct err *e) WUR;

/*
 * Read DIR/release.json. Returns 1 when read (into *RI), 0 when DIR or the
 * file does not exist (*RI cleared), -1 with E otherwise (lenient mode: *RI
 * cleared).
 */
int release_record_read(const char *dir, unsigned flags, struct release_info *ri,
    struct err *e) WUR;

/*
 * RI as a JSON object: the record's keys in a fixed order, preceded by
 * "slot": SLOT unless SLOT is NULL (the wire API's Release object). NULL
 * when out of memory.
 */
cJSON *release_record_json(const struct release_info *ri, const char *slot) WUR;

/* Write RI as DIR/release.json atomically and durably (fs_write_atomic), mode 0644. */
int release_record_write(const char *dir, const struct release_info *ri, struct err *e) WUR;

/* ---- where a running program's release is ---- */

/*
 * RELEASE_DIR of the executable EXE_PATH (an absolute path): its directory's
 * parent ("/r/bin/tandem-agent" -> "/r"), the layout every release has.
 * Returns 0, or -1 if EXE_PATH has fewer than two directory levels or OUT is
 * too small.
 */
int release_dir_of(const char *exe_path, char *out, size_t outlen) WUR;

/* release_dir_of() of /proc/self/exe. Returns 0, or -1 with errno set. */
int release_self_dir(char *out, size_t outlen) WUR;

#endif
