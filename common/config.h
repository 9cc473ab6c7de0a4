/*
 * config — strict configuration files by a declarative option table: unknown
 * keys are errors, the effective configuration can be printed and re-read.
 * Errors are struct err: ERR_CONFIG for what the file or option says,
 * ERR_INTERNAL for a bad table, ERR_NOMEM.
 *
 * File format (UTF-8 text, at most CONFIG_MAX_FILE bytes):
 *   - one "key = value" per line, lines end with LF (a CR is an error), at
 *     most CONFIG_MAX_LINE bytes each, the last newline optional;
 *   - blank lines and lines whose first non-blank character is '#' are
 *     comments;
 *   - keys are [a-z0-9_]+; blanks (space, tab) around '=' are ignored;
 *   - a value is either double-quoted, where \" and \\ are the only escapes
 *     (any other backslash is an error) and '#' and blanks are kept, or
 *     unquoted: it runs to the end of the line, minus trailing blanks, and a
 *     '#' at its start or after a blank begins a comment ("port = 8443 # x"
 *     is 8443, "tag = a#b" is "a#b"); an unquoted value may not contain '"';
 *   - after a closing quote only blanks or a "# comment" may follow;
 *   - control characters (other than tab), NUL bytes and invalid UTF-8 are
 *     errors anywhere;
 *   - every key at most once per file; unknown keys are errors.
 *
 * Value syntax by type, and the C member at OFFSET each one fills:
 *   CONFIG_STR          char * (malloc'd); any text; if MAX > 0 the length
 *                       must be within [MIN, MAX] bytes.
 *   CONFIG_PATH         char *; non-empty; a relative path is made absolute
 *                       against the directory of the config file (realpath)
 *                       or, for defaults and overrides, the working
 *                       directory. Not otherwise normalised or checked.
 *   CONFIG_INT          long long, decimal, within [MIN, MAX].
 *   CONFIG_BOOL         int 0/1: true/false, yes/no, on/off, 1/0.
 *   CONFIG_DURATION_MS  long long milliseconds: digits with a unit ms, s, m
 *                       or h ("250ms", "10s", "5m", "1h"); a bare number is
 *                       SECONDS. Within [MIN, MAX] milliseconds.
 *   CONFIG_SIZE         long long bytes: digits with an optional binary
 *                       multiple K, M, G or T (either case): "512", "64K",
 *                       "200M", "2G". Within [MIN, MAX] bytes.
 *   CONFIG_ADDR         char *; "HOST:PORT", "[V6]:PORT" or ":PORT" (any
 *                       address); host names are not resolved here. Port 0
 *                       to 65535; if MAX > 0 the port must be in [MIN, MAX].
 *   CONFIG_STRLIST      char ** NULL-terminated, each string and the array
 *                       malloc'd; comma-separated, blanks around elements
 *                       trimmed, empty elements refused, empty value = empty
 *                       list. Never NULL after config_defaults().
 *   CONFIG_LOGLEVEL     int (enum log_level): error, warn, info, debug.
 *   CONFIG_LOGFORMAT    int (enum log_format): text, json.
 *   CONFIG_LOGTARGET    int (enum log_target): stderr, journal, auto.
 * Overflow is always refused. Bounds of INT, DURATION_MS and SIZE always
 * apply, so give real ones.
 *
 * Typical use: config_defaults(), config_load_file(), config_set_kv() for
 * each "-o key=value", optionally config_print() ("-n" checks and exits),
 * config_free() at exit.
 */
#ifndef TANDEM_CONFIG_H
#define TANDEM_CONFIG_H

#include <stddef.h>
#include <stdio.h>

#include "common/err.h"
#include "common/util.h"

#define CONFIG_MAX_LINE 4096
#define CONFIG_MAX_FILE (1024 * 1024)

enum config_type {
	CONFIG_STR,
	CONFIG_PATH,
	CONFIG_INT,
	CONFIG_BOOL,
	CONFIG_DURATION_MS,
	CONFIG_SIZE,
	CONFIG_ADDR,
	CONFIG_STRLIST,
	CONFIG_LOGLEVEL,
	CONFIG_LOGFORMAT,
	CONFIG_LOGTARGET,
};

/*
 * One option. DEFVAL is parsed like a value from the file (NULL: NULL
 * pointer, empty list, or 0). HELP (may be NULL) is printed as a comment by
 * config_print().
 */
struct config_option {
	const char *name;
	enum config_type type;
	size_t offset;
	const char *defval;
	long long min, max;
	const char *help;
};

/*
 * Set every option of the struct at OBJ to its default, freeing what was
 * there: OBJ must be zero-initialised or hold values from this module. Also
 * checks the table (names [a-z0-9_]+, no duplicates, defaults valid): a
 * failure is a bug, ERR_INTERNAL in E. All-or-nothing. Returns 0 or -1.
 */
int config_defaults(const struct config_option *tbl, size_t n, void *obj, struct err *e) WUR;

/*
 * Parse LEN bytes of BUF (no NUL terminator needed) in the format above and
 * apply every key found to OBJ; keys absent keep their values. Relative
 * CONFIG_PATH values resolve against BASEDIR (NULL: the working directory).
 * NAME prefixes error messages ("NAME:LINE: reason"). All-or-nothing: on
 * error OBJ is untouched. Returns 0, or -1 with E (ERR_CONFIG, or ERR_NOMEM).
 */
int config_load_buffer(const struct config_option *tbl, size_t n, void *obj, const char *buf,
    size_t len, const char *basedir, const char *name, struct err *e) WUR;

/*
 * config_load_buffer() on the file PATH (a regular file of at most
 * CONFIG_MAX_FILE bytes), with BASEDIR the real path of PATH's directory
 * and PATH as the name in messages.
 */
int config_load_file(const struct config_option *tbl, size_t n, void *obj, const char *path,
    struct err *e) WUR;

/*
 * Set option NAME to VALUE (the text after '=' as it would be in a file, but
 * unquoted: taken literally, surrounding blanks included) — for
 * command-line overrides. Relative paths resolve against BASEDIR (NULL: the
 * working directory). May override a key set by a file. Errors:
 * "option 'NAME': reason". OBJ is untouched on error.
 */
int config_set(const struct config_option *tbl, size_t n, void *obj, const char *name,
    const char *value, const char *basedir, struct err *e) WUR;
/* config_set() from "NAME=VALUE" (split at the first '='), cwd as base. */
int config_set_kv(const struct config_option *tbl, size_t n, void *obj, const char *kv,
    struct err *e) WUR;

/*
 * Write the effective configuration to FP in the file format, one option
 * per line in table order (help as comments; an unset string as a comment),
 * such that loading the output gives the same values. Returns 0, or -1 if
 * writing failed.
 */
int config_print(const struct config_option *tbl, size_t n, const void *obj, FILE *fp) WUR;

/*
 * Edit config text without a table (an installer putting settings into a
 * file an admin may have changed): BUF/LEN, which must be valid in the
 * format above, with each KEYS[i] set to VALUES[i] (taken literally, quoted
 * in the output when needed; no control characters). The first line that
 * sets a key is replaced in place, later ones are dropped, a key set nowhere
 * is appended at the end; every other line (comments, blank lines, other
 * keys) is kept byte for byte. Returns 0 with a malloc'd NUL-terminated *OUT
 * of *OUTLEN bytes, or -1 with E ("line N: reason").
 */
int config_edit(const char *buf, size_t len, const char *const *keys, const char *const *values,
    size_t n, char **out, size_t *outlen, struct err *e) WUR;

/*
 * The value of KEY in config text BUF/LEN as the loader reads it (unquoted),
 * without a table: 1 and a malloc'd *OUT when the key is set, 0 when it is
 * not (*OUT NULL), -1 with E when BUF is not valid or sets KEY twice.
 */
int config_get_raw(const char *buf, size_t len, const char *key, char **out,
    struct err *e) WUR;

/* Free every string and list of OBJ and set them to NULL. */
void config_free(const struct config_option *tbl, size_t n, void *obj);

#endif
