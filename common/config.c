#include "common/config.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/fs.h"
#include "common/log.h"

/* A parsed value waiting to be committed to the caller's struct. */
struct config_val {
	int set;
	int line;
	long long num;
	char *str;
	char **list;
};

static void
config_list_free(char **list)
{
	if (list == NULL) {
		return;
	}
	for (char **p = list; *p != NULL; p++) {
		free(*p);
	}
	free(list);
}

static void
config_val_clear(struct config_val *v)
{
	free(v->str);
	config_list_free(v->list);
	memset(v, 0, sizeof(*v));
}

static int
config_is_key_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}

static int
config_is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static int
config_valid_name(const char *s)
{
	if (s == NULL || *s == '\0') {
		return 0;
	}
	for (; *s != '\0'; s++) {
		if (!config_is_key_char(*s)) {
			return 0;
		}
	}
	return 1;
}

/* Refuse NUL, control characters but tab, and invalid UTF-8 in S[0..N). */
static int
config_check_text(const char *s, size_t n, struct err *e)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	while (i < n) {
		if (p[i] == '\0') {
			err_set(e, ERR_CONFIG, "NUL byte");
			return -1;
		}
		if (p[i] == '\r') {
			err_set(e, ERR_CONFIG, "carriage return (CRLF line endings are not accepted)");
			return -1;
		}
		if ((p[i] < 0x20 && p[i] != '\t') || p[i] == 0x7f) {
			err_set(e, ERR_CONFIG, "control character 0x%02x", p[i]);
			return -1;
		}
		size_t k = utf8_seq_len(p + i, n - i);
		if (k == 0) {
			err_set(e, ERR_CONFIG, "invalid UTF-8");
			return -1;
		}
		i += k;
	}
	return 0;
}

/* Digits (at least one, no sign) then a suffix; the number into *NUM. */
static int
config_split_number(const char *s, long long *num, const char **suffix)
{
	long long v = 0;
	const char *p = s;

	if (!(*p >= '0' && *p <= '9')) {
		return -1;
	}
	for (; *p >= '0' && *p <= '9'; p++) {
		if (__builtin_mul_overflow(v, 10LL, &v) || __builtin_add_overflow(v, *p - '0', &v)) {
			errno = ERANGE;
			return -1;
		}
	}
	*num = v;
	*suffix = p;
	return 0;
}

static int
config_parse_scaled(const struct config_option *o, const char *val, long long *out, struct err *e)
{
	long long v, mult = -1;
	const char *suf;
	const char *what = o->type == CONFIG_SIZE ? "size" : "duration";

	errno = 0;
	if (config_split_number(val, &v, &suf) != 0) {
		if (errno == ERANGE) {
			err_set(e, ERR_CONFIG, "%s too large", what);
		} else {
			err_set(e, ERR_CONFIG, "bad %s '%.64s'", what, val);
		}
		return -1;
	}
	if (o->type == CONFIG_DURATION_MS) {
		static const struct {
			const char *unit;
			long long ms;
		} units[] = { { "", 1000 }, { "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 } };
		for (size_t i = 0; i < ARRAY_LEN(units); i++) {
			if (strcmp(suf, units[i].unit) == 0) {
				mult = units[i].ms;
			}
		}
		if (mult < 0) {
			err_set(e, ERR_CONFIG, "bad duration '%.64s' (units: ms, s, m, h; bare = s)",
			    val);
			return -1;
		}
	} else {
		static const char units[] = "KMGT";
		if (*suf == '\0') {
			mult = 1;
		} else if (suf[1] == '\0') {
			const char *u = strchr(units, *suf >= 'a' ? *suf - ('a' - 'A') : *suf);
			if (u != NULL && *u != '\0') {
				mult = 1LL << (10 * (u - units + 1));
			}
		}
		if (mult < 0) {
			err_set(e, ERR_CONFIG, "bad size '%.64s' (suffixes: K, M, G, T)", val);
			return -1;
		}
	}
	if (__builtin_mul_overflow(v, mult, &v)) {
		err_set(e, ERR_CONFIG, "%s too large", what);
		return -1;
	}
	if (v < o->min || v > o->max) {
		err_set(e, ERR_CONFIG, "%s %lld%s out of range [%lld, %lld]", what, v,
		    o->type == CONFIG_SIZE ? " bytes" : "ms", o->min, o->max);
		return -1;
	}
	*out = v;
	return 0;
}

static int
config_parse_bool(const char *val, long long *out)
{
	static const char *const yes[] = { "true", "yes", "on", "1" };
	static const char *const no[] = { "false", "no", "off", "0" };

	for (size_t i = 0; i < ARRAY_LEN(yes); i++) {
		if (strcmp(val, yes[i]) == 0) {
			*out = 1;
			return 0;
		}
		if (strcmp(val, no[i]) == 0) {
			*out = 0;
			return 0;
		}
	}
	return -1;
}

static int
config_check_addr(const struct config_option *o, const char *val, struct err *e)
{
	char host[256], port[8];
	long long p = 0;

	if (split_host_port(val, host, sizeof(host), port, sizeof(port)) != 0 ||
	    parse_ll(port, 0, 65535, &p) != 0) {
		err_set(e, ERR_CONFIG, "bad address '%.64s' (expected HOST:PORT or [V6]:PORT)", val);
		return -1;
	}
	for (const char *h = host; *h != '\0'; h++) {
		if (!((*h >= 'a' && *h <= 'z') || (*h >= 'A' && *h <= 'Z') ||
		    (*h >= '0' && *h <= '9') || strchr(".-_:%", *h) != NULL)) {
			err_set(e, ERR_CONFIG, "bad host in address '%.64s'", val);
			return -1;
		}
	}
	if (val[0] != '[' && strchr(host, ':') != NULL) {
		err_set(e, ERR_CONFIG, "IPv6 address needs brackets: '%.64s'", val);
		return -1;
	}
	if (o->max > 0 && (p < o->min || p > o->max)) {
		err_set(e, ERR_CONFIG, "port %lld out of range [%lld, %lld]", p, o->min, o->max);
		return -1;
	}
	return 0;
}

static int
config_parse_list(const char *val, char ***out, struct err *e)
{
	char **list = NULL;
	size_t cnt = 1, k = 0;
	const char *p = val;
	int rc = -1;

	while (config_is_blank(*p)) {
		p++;
	}
	if (*p != '\0') {
		for (const char *q = p; *q != '\0'; q++) {
			cnt += *q == ',';
		}
		cnt++;
	}
	list = calloc(cnt, sizeof(*list));
	if (list == NULL) {
		err_set(e, ERR_NOMEM, "out of memory");
		goto out;
	}
	while (*p != '\0') {
		const char *end = strchr(p, ',');
		const char *next = end != NULL ? end + 1 : p + strlen(p);
		if (end == NULL) {
			end = next;
		}
		while (p < end && config_is_blank(*p)) {
			p++;
		}
		while (end > p && config_is_blank(end[-1])) {
			end--;
		}
		if (end == p) {
			err_set(e, ERR_CONFIG, "empty element in list");
			goto out;
		}
		list[k] = strndup(p, (size_t)(end - p));
		if (list[k] == NULL) {
			err_set(e, ERR_NOMEM, "out of memory");
			goto out;
		}
		k++;
		if (*next == '\0' && next > val && next[-1] == ',') {
			err_set(e, ERR_CONFIG, "empty element in list");
			goto out;
		}
		p = next;
	}
	*out = list;
	list = NULL;
	rc = 0;
out:
	config_list_free(list);
	return rc;
}

static char *
config_make_path(const char *val, const char *basedir, struct err *e)
{
	char cwd[PATH_MAX];
	char *res = NULL;
	size_t bl, vl;

	if (*val == '\0') {
		err_set(e, ERR_CONFIG, "empty path");
		return NULL;
	}
	if (val[0] == '/') {
		basedir = NULL;
	} else if (basedir != NULL && basedir[0] != '/') {
		err_set(e, ERR_CONFIG, "base directory '%.64s' is not absolute", basedir);
		return NULL;
	} else if (basedir == NULL) {
		if (getcwd(cwd, sizeof(cwd)) == NULL) {
			err_sys_kind(e, ERR_CONFIG, "cannot get the working directory");
			return NULL;
		}
		basedir = cwd;
	}
	bl = basedir != NULL ? strlen(basedir) : 0;
	vl = strlen(val);
	if (bl + 1 + vl >= PATH_MAX) {
		err_set(e, ERR_CONFIG, "path too long");
		return NULL;
	}
	res = malloc(bl + 1 + vl + 1);
	if (res == NULL) {
		err_set(e, ERR_NOMEM, "out of memory");
		return NULL;
	}
	if (basedir != NULL) {
		memcpy(res, basedir, bl);
		if (bl == 0 || basedir[bl - 1] != '/') {
			res[bl++] = '/';
		}
	}
	memcpy(res + bl, val, vl + 1);
	return res;
}

static int
config_dup(const char *val, char **out, struct err *e)
{
	*out = strdup(val);
	if (*out == NULL) {
		err_set(e, ERR_NOMEM, "out of memory");
		return -1;
	}
	return 0;
}

/*
 * Parse VAL (already unquoted, checked text) for option O into OUT. E gets
 * the reason on failure (without a prefix).
 */
static int
config_parse_value(const struct config_option *o, const char *val, const char *basedir,
    struct config_val *out, struct err *e)
{
	long long v = 0;
	int lvl;
	size_t len;

	switch (o->type) {
	case CONFIG_STR:
		len = strlen(val);
		if (o->max > 0 && ((long long)len < o->min || (long long)len > o->max)) {
			err_set(e, ERR_CONFIG, "length %zu out of range [%lld, %lld]", len, o->min,
			    o->max);
			return -1;
		}
		if (config_dup(val, &out->str, e) != 0) {
			return -1;
		}
		break;
	case CONFIG_ADDR:
		if (config_check_addr(o, val, e) != 0 ||
		    config_dup(val, &out->str, e) != 0) {
			return -1;
		}
		break;
	case CONFIG_PATH:
		out->str = config_make_path(val, basedir, e);
		if (out->str == NULL) {
			return -1;
		}
		break;
	case CONFIG_INT:
		if (parse_ll(val, o->min, o->max, &v) != 0) {
			if (errno == ERANGE) {
				err_set(e, ERR_CONFIG, "'%.64s' out of range [%lld, %lld]", val, o->min,
				    o->max);
			} else {
				err_set(e, ERR_CONFIG, "not an integer: '%.64s'", val);
			}
			return -1;
		}
		out->num = v;
		break;
	case CONFIG_BOOL:
		if (config_parse_bool(val, &v) != 0) {
			err_set(e, ERR_CONFIG, "bad boolean '%.64s' (true/false, yes/no, on/off, 1/0)",
			    val);
			return -1;
		}
		out->num = v;
		break;
	case CONFIG_DURATION_MS:
	case CONFIG_SIZE:
		if (config_parse_scaled(o, val, &v, e) != 0) {
			return -1;
		}
		out->num = v;
		break;
	case CONFIG_STRLIST:
		if (config_parse_list(val, &out->list, e) != 0) {
			return -1;
		}
		break;
	case CONFIG_LOGLEVEL:
		lvl = log_level_parse(val);
		if (lvl < 0) {
			err_set(e, ERR_CONFIG, "bad log level '%.64s' (error, warn, info, debug)", val);
			return -1;
		}
		out->num = lvl;
		break;
	case CONFIG_LOGFORMAT:
		lvl = log_format_parse(val);
		if (lvl < 0) {
			err_set(e, ERR_CONFIG, "bad log format '%.64s' (text, json)", val);
			return -1;
		}
		out->num = lvl;
		break;
	case CONFIG_LOGTARGET:
		lvl = log_target_parse(val);
		if (lvl < 0) {
			err_set(e, ERR_CONFIG, "bad log target '%.64s' (stderr, journal, auto)", val);
			return -1;
		}
		out->num = lvl;
		break;
	default:
		err_set(e, ERR_INTERNAL, "option table: unknown type");
		return -1;
	}
	out->set = 1;
	return 0;
}

/* The value of a NULL default. */
static int
config_parse_null_default(const struct config_option *o, struct config_val *out, struct err *e)
{
	if (o->type == CONFIG_STRLIST) {
		out->list = calloc(1, sizeof(*out->list));
		if (out->list == NULL) {
			err_set(e, ERR_NOMEM, "out of memory");
			return -1;
		}
	}
	out->set = 1;
	return 0;
}

/* Move V into the member of O in OBJ, freeing the old value. */
static void
config_commit(const struct config_option *o, void *obj, struct config_val *v)
{
	unsigned char *m = (unsigned char *)obj + o->offset;
	char *oldstr;
	char **oldlist;
	int i;

	switch (o->type) {
	case CONFIG_STR:
	case CONFIG_PATH:
	case CONFIG_ADDR:
		memcpy(&oldstr, m, sizeof(oldstr));
		free(oldstr);
		memcpy(m, &v->str, sizeof(v->str));
		v->str = NULL;
		break;
	case CONFIG_STRLIST:
		memcpy(&oldlist, m, sizeof(oldlist));
		config_list_free(oldlist);
		memcpy(m, &v->list, sizeof(v->list));
		v->list = NULL;
		break;
	case CONFIG_INT:
	case CONFIG_DURATION_MS:
	case CONFIG_SIZE:
		memcpy(m, &v->num, sizeof(v->num));
		break;
	case CONFIG_BOOL:
	case CONFIG_LOGLEVEL:
	case CONFIG_LOGFORMAT:
	case CONFIG_LOGTARGET:
		i = (int)v->num;
		memcpy(m, &i, sizeof(i));
		break;
	}
	v->set = 0;
}

static void
config_commit_all(const struct config_option *tbl, size_t n, void *obj, struct config_val *vals)
{
	for (size_t i = 0; i < n; i++) {
		if (vals[i].set) {
			config_commit(&tbl[i], obj, &vals[i]);
		}
	}
}

static void
config_vals_free(struct config_val *vals, size_t n)
{
	if (vals == NULL) {
		return;
	}
	for (size_t i = 0; i < n; i++) {
		config_val_clear(&vals[i]);
	}
	free(vals);
}

static size_t
config_find(const struct config_option *tbl, size_t n, const char *name, size_t namelen)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (strlen(tbl[i].name) == namelen && memcmp(tbl[i].name, name, namelen) == 0) {
			break;
		}
	}
	return i;
}

int
config_defaults(const struct config_option *tbl, size_t n, void *obj, struct err *e)
{
	struct config_val *vals = NULL;
	struct err why = ERR_INIT;
	int rc = -1;

	vals = calloc(n + 1, sizeof(*vals));
	if (vals == NULL) {
		err_set(e, ERR_NOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		const struct config_option *o = &tbl[i];
		if (!config_valid_name(o->name)) {
			err_set(e, ERR_INTERNAL, "option table: bad name '%s'",
			    o->name != NULL ? o->name : "(null)");
			goto out;
		}
		if (config_find(tbl, i, o->name, strlen(o->name)) != i) {
			err_set(e, ERR_INTERNAL, "option table: '%s' listed twice", o->name);
			goto out;
		}
		if (o->defval == NULL) {
			if (config_parse_null_default(o, &vals[i], e) != 0) {
				err_prefix(e, "option '%s'", o->name);
				goto out;
			}
			continue;
		}
		/* A default the table's own rules refuse is a bug in the table. */
		if (config_check_text(o->defval, strlen(o->defval), &why) != 0 ||
		    config_parse_value(o, o->defval, NULL, &vals[i], &why) != 0) {
			err_set(e, why.kind == ERR_NOMEM ? ERR_NOMEM : ERR_INTERNAL,
			    "option table: default of '%s': %s", o->name, err_msg(&why));
			goto out;
		}
	}
	config_commit_all(tbl, n, obj, vals);
	rc = 0;
out:
	config_vals_free(vals, n + 1);
	return rc;
}

/*
 * Split one LINE (NUL-terminated, text already checked) into key and value.
 * Returns 1 for a key/value pair (KEY/KEYLEN into LINE, value unquoted into
 * VAL of CONFIG_MAX_LINE + 1 bytes), 0 for a blank or comment line, -1 on a
 * syntax error (ERR_CONFIG in E).
 */
static int
config_split_line(const char *line, const char **key, size_t *keylen, char *val, struct err *e)
{
	const char *p = line;
	size_t k = 0;

	while (config_is_blank(*p)) {
		p++;
	}
	if (*p == '\0' || *p == '#') {
		return 0;
	}
	*key = p;
	while (*p != '\0' && !config_is_blank(*p) && *p != '=') {
		if (!config_is_key_char(*p)) {
			size_t kl = strcspn(*key, " \t=");
			err_set(e, ERR_CONFIG, "bad key '%.*s' (keys are [a-z0-9_]+)",
			    kl > 64 ? 64 : (int)kl, *key);
			return -1;
		}
		p++;
	}
	*keylen = (size_t)(p - *key);
	if (*keylen == 0) {
		err_set(e, ERR_CONFIG, "missing key before '='");
		return -1;
	}
	while (config_is_blank(*p)) {
		p++;
	}
	if (*p != '=') {
		err_set(e, ERR_CONFIG, "expected 'key = value'");
		return -1;
	}
	p++;
	while (config_is_blank(*p)) {
		p++;
	}
	if (*p == '"') {
		for (p++; *p != '"'; p++) {
			if (*p == '\0') {
				err_set(e, ERR_CONFIG, "unterminated quoted value");
				return -1;
			}
			if (*p == '\\') {
				p++;
				if (*p != '"' && *p != '\\') {
					err_set(e, ERR_CONFIG, "bad escape in quoted value (only \\\" and \\\\)");
					return -1;
				}
			}
			val[k++] = *p;
		}
		val[k] = '\0';
		p++;
		while (config_is_blank(*p)) {
			p++;
		}
		if (*p != '\0' && *p != '#') {
			err_set(e, ERR_CONFIG, "unexpected text after quoted value");
			return -1;
		}
		return 1;
	}
	/* Unquoted: up to a '#' that starts the value or follows a blank. */
	const char *start = p;
	for (; *p != '\0'; p++) {
		if (*p == '#' && (p == start || config_is_blank(p[-1]))) {
			break;
		}
		if (*p == '"') {
			err_set(e, ERR_CONFIG, "'\"' inside an unquoted value (quote the whole value)");
			return -1;
		}
	}
	while (p > start && config_is_blank(p[-1])) {
		p--;
	}
	memcpy(val, start, (size_t)(p - start));
	val[p - start] = '\0';
	return 1;
}

/*
 * The line of BUF (LEN bytes) at *OFF, checked (length, text) and copied
 * NUL-terminated into LINE (CONFIG_MAX_LINE + 1 bytes); *OFF moves past it
 * and its newline. Returns 0, or -1 with the reason in E.
 */
static int
config_take_line(const char *buf, size_t len, size_t *off, char *line, struct err *e)
{
	const char *nl = memchr(buf + *off, '\n', len - *off);
	size_t ll = nl != NULL ? (size_t)(nl - (buf + *off)) : len - *off;

	if (ll > CONFIG_MAX_LINE) {
		err_set(e, ERR_CONFIG, "line longer than %d bytes", CONFIG_MAX_LINE);
		return -1;
	}
	if (config_check_text(buf + *off, ll, e) != 0) {
		return -1;
	}
	memcpy(line, buf + *off, ll);
	line[ll] = '\0';
	*off += ll + (nl != NULL ? 1 : 0);
	return 0;
}

int
config_load_buffer(const struct config_option *tbl, size_t n, void *obj, const char *buf,
    size_t len, const char *basedir, const char *name, struct err *e)
{
	struct config_val *vals = NULL;
	char *line = NULL, *val = NULL;
	size_t off = 0;
	int lineno = 0, rc = -1;

	if (name == NULL) {
		name = "config";
	}
	if (buf == NULL && len > 0) {
		err_set(e, ERR_CONFIG, "%s: no buffer", name);
		goto out;
	}
	if (len > CONFIG_MAX_FILE) {
		err_set(e, ERR_CONFIG, "%s: larger than %d bytes", name, CONFIG_MAX_FILE);
		goto out;
	}
	vals = calloc(n + 1, sizeof(*vals));
	line = malloc(CONFIG_MAX_LINE + 1);
	val = malloc(CONFIG_MAX_LINE + 1);
	if (vals == NULL || line == NULL || val == NULL) {
		err_set(e, ERR_NOMEM, "%s: out of memory", name);
		goto out;
	}
	while (off < len) {
		const char *key = NULL;
		size_t keylen = 0;

		lineno++;
		if (config_take_line(buf, len, &off, line, e) != 0) {
			err_prefix(e, "%s:%d", name, lineno);
			goto out;
		}
		int r = config_split_line(line, &key, &keylen, val, e);
		if (r < 0) {
			err_prefix(e, "%s:%d", name, lineno);
			goto out;
		}
		if (r == 0) {
			continue;
		}
		size_t i = config_find(tbl, n, key, keylen);
		if (i == n) {
			err_set(e, ERR_CONFIG, "%s:%d: unknown key '%.*s'", name, lineno,
			    keylen > 64 ? 64 : (int)keylen, key);
			goto out;
		}
		if (vals[i].set) {
			err_set(e, ERR_CONFIG, "%s:%d: duplicate key '%s' (first set on line %d)", name,
			    lineno, tbl[i].name, vals[i].line);
			goto out;
		}
		if (config_parse_value(&tbl[i], val, basedir, &vals[i], e) != 0) {
			err_prefix(e, "%s:%d: %s", name, lineno, tbl[i].name);
			goto out;
		}
		vals[i].line = lineno;
	}
	config_commit_all(tbl, n, obj, vals);
	rc = 0;
out:
	config_vals_free(vals, n + 1);
	free(line);
	free(val);
	return rc;
}

int
config_load_file(const struct config_option *tbl, size_t n, void *obj, const char *path,
    struct err *e)
{
	char *buf = NULL, *dir = NULL, *base = NULL;
	size_t len = 0;
	int rc = -1;

	if (fs_read_file(path, CONFIG_MAX_FILE, &buf, &len) != 0) {
		if (errno == EFBIG) {
			err_set(e, ERR_CONFIG, "%s: larger than %d bytes", path, CONFIG_MAX_FILE);
		} else {
			err_sys_kind(e, ERR_CONFIG, "%s", path);
		}
		goto out;
	}
	const char *slash = strrchr(path, '/');
	if (slash == NULL) {
		dir = strdup(".");
	} else {
		dir = strndup(path, slash == path ? 1 : (size_t)(slash - path));
	}
	if (dir == NULL) {
		err_set(e, ERR_NOMEM, "%s: out of memory", path);
		goto out;
	}
	base = realpath(dir, NULL);
	if (base == NULL) {
		err_sys_kind(e, ERR_CONFIG, "%s: cannot resolve directory", path);
		goto out;
	}
	rc = config_load_buffer(tbl, n, obj, buf, len, base, path, e);
out:
	free(buf);
	free(dir);
	free(base);
	return rc;
}

int
config_set(const struct config_option *tbl, size_t n, void *obj, const char *name,
    const char *value, const char *basedir, struct err *e)
{
	struct config_val v = { 0 };
	size_t i;

	if (name == NULL || value == NULL) {
		err_set(e, ERR_CONFIG, "option: missing name or value");
		return -1;
	}
	i = config_find(tbl, n, name, strlen(name));
	if (i == n) {
		err_set(e, ERR_CONFIG, "unknown option '%.64s'", name);
		return -1;
	}
	if (strlen(value) > CONFIG_MAX_LINE) {
		err_set(e, ERR_CONFIG, "option '%s': value longer than %d bytes", tbl[i].name,
		    CONFIG_MAX_LINE);
		return -1;
	}
	if (config_check_text(value, strlen(value), e) != 0 ||
	    config_parse_value(&tbl[i], value, basedir, &v, e) != 0) {
		err_prefix(e, "option '%s'", tbl[i].name);
		config_val_clear(&v);
		return -1;
	}
	config_commit(&tbl[i], obj, &v);
	config_val_clear(&v);
	return 0;
}

int
config_set_kv(const struct config_option *tbl, size_t n, void *obj, const char *kv,
    struct err *e)
{
	char name[128];
	const char *eq;

	eq = kv != NULL ? strchr(kv, '=') : NULL;
	if (eq == NULL || eq == kv || (size_t)(eq - kv) >= sizeof(name)) {
		err_set(e, ERR_CONFIG, "expected NAME=VALUE, got '%.64s'", kv != NULL ? kv : "");
		return -1;
	}
	memcpy(name, kv, (size_t)(eq - kv));
	name[eq - kv] = '\0';
	return config_set(tbl, n, obj, name, eq + 1, NULL, e);
}

/* Append LEN bytes of P to the growing buffer *B (*BLEN used, *BCAP allocated). */
static int
config_buf_add(char **b, size_t *blen, size_t *bcap, const char *p, size_t len)
{
	if (*blen + len + 1 > *bcap) {
		size_t cap = *bcap != 0 ? *bcap : 256;
		char *nb;

		while (*blen + len + 1 > cap) {
			cap *= 2;
		}
		nb = realloc(*b, cap);
		if (nb == NULL) {
			return -1;
		}
		*b = nb;
		*bcap = cap;
	}
	memcpy(*b + *blen, p, len);
	*blen += len;
	(*b)[*blen] = '\0';
	return 0;
}

/* A value an unquoted reading gives back unchanged (no quote needed). */
static int
config_plain_value(const char *v)
{
	if (*v == '\0' || config_is_blank(*v) || config_is_blank(v[strlen(v) - 1])) {
		return 0;
	}
	for (const char *p = v; *p != '\0'; p++) {
		if (*p == '"' || *p == '\\' || (*p == '#' && (p == v || config_is_blank(p[-1])))) {
			return 0;
		}
	}
	return 1;
}

/* "KEY = VALUE\n" (VALUE quoted when needed) appended to the buffer. */
static int
config_buf_add_kv(char **b, size_t *blen, size_t *bcap, const char *key, const char *value)
{
	int plain = config_plain_value(value);

	if (config_buf_add(b, blen, bcap, key, strlen(key)) != 0 ||
	    config_buf_add(b, blen, bcap, plain ? " = " : " = \"", plain ? 3 : 4) != 0) {
		return -1;
	}
	for (const char *p = value; *p != '\0'; p++) {
		if (!plain && (*p == '"' || *p == '\\') && config_buf_add(b, blen, bcap, "\\", 1) != 0) {
			return -1;
		}
		if (config_buf_add(b, blen, bcap, p, 1) != 0) {
			return -1;
		}
	}
	return config_buf_add(b, blen, bcap, plain ? "\n" : "\"\n", plain ? 1 : 2);
}

int
config_edit(const char *buf, size_t len, const char *const *keys, const char *const *values,
    size_t n, char **out, size_t *outlen, struct err *e)
{
	char *line = NULL, *val = NULL, *res = NULL;
	unsigned char *done = NULL;
	struct err why = ERR_INIT;
	size_t off = 0, rlen = 0, rcap = 0, i;
	int lineno = 0, rc = -1;

	if (len > CONFIG_MAX_FILE || (buf == NULL && len > 0)) {
		err_set(e, ERR_CONFIG, "larger than %d bytes", CONFIG_MAX_FILE);
		return -1;
	}
	for (i = 0; i < n; i++) {
		/* Quoting at most doubles the value: the line must still fit. */
		if (!config_valid_name(keys[i]) || values[i] == NULL ||
		    strlen(keys[i]) + 2 * strlen(values[i]) + 6 > CONFIG_MAX_LINE ||
		    config_check_text(values[i], strlen(values[i]), &why) != 0) {
			err_set(e, ERR_CONFIG, "cannot write key '%.64s' with that value", keys[i]);
			return -1;
		}
	}
	line = malloc(CONFIG_MAX_LINE + 1);
	val = malloc(CONFIG_MAX_LINE + 1);
	done = calloc(n + 1, 1);
	if (line == NULL || val == NULL || done == NULL ||
	    config_buf_add(&res, &rlen, &rcap, "", 0) != 0) {
		err_set(e, ERR_NOMEM, "out of memory");
		goto out;
	}
	while (off < len) {
		size_t start = off, keylen = 0;
		const char *key = NULL;

		lineno++;
		if (config_take_line(buf, len, &off, line, e) != 0 ||
		    config_split_line(line, &key, &keylen, val, e) < 0) {
			err_prefix(e, "line %d", lineno);
			goto out;
		}
		for (i = 0; key != NULL && i < n; i++) {
			if (strlen(keys[i]) == keylen && memcmp(keys[i], key, keylen) == 0) {
				break;
			}
		}
		if (key == NULL || i == n) {
			/* Kept byte for byte, with a newline added to an unterminated last line. */
			if (config_buf_add(&res, &rlen, &rcap, buf + start, off - start) != 0 ||
			    (buf[off - 1] != '\n' && config_buf_add(&res, &rlen, &rcap, "\n", 1) != 0)) {
				err_set(e, ERR_NOMEM, "out of memory");
				goto out;
			}
			continue;
		}
		if (!done[i] && config_buf_add_kv(&res, &rlen, &rcap, keys[i], values[i]) != 0) {
			err_set(e, ERR_NOMEM, "out of memory");
			goto out;
		}
		done[i] = 1;
	}
	for (i = 0; i < n; i++) {
		if (!done[i] && config_buf_add_kv(&res, &rlen, &rcap, keys[i], values[i]) != 0) {
			err_set(e, ERR_NOMEM, "out of memory");
			goto out;
		}
		done[i] = 1;
	}
	*out = res;
	*outlen = rlen;
	res = NULL;
	rc = 0;
out:
	free(res);
	free(line);
	free(val);
	free(done);
	return rc;
}

int
config_get_raw(const char *buf, size_t len, const char *key, char **out, struct err *e)
{
	char *line = NULL, *val = NULL;
	size_t off = 0;
	int lineno = 0, rc = -1, found = 0;

	*out = NULL;
	if (len > CONFIG_MAX_FILE || (buf == NULL && len > 0)) {
		err_set(e, ERR_CONFIG, "larger than %d bytes", CONFIG_MAX_FILE);
		return -1;
	}
	line = malloc(CONFIG_MAX_LINE + 1);
	val = malloc(CONFIG_MAX_LINE + 1);
	if (line == NULL || val == NULL) {
		err_set(e, ERR_NOMEM, "out of memory");
		goto out;
	}
	while (off < len) {
		const char *k = NULL;
		size_t kl = 0;

		lineno++;
		if (config_take_line(buf, len, &off, line, e) != 0 ||
		    config_split_line(line, &k, &kl, val, e) < 0) {
			err_prefix(e, "line %d", lineno);
			goto out;
		}
		if (k == NULL || kl != strlen(key) || memcmp(k, key, kl) != 0) {
			continue;
		}
		if (found) {
			err_set(e, ERR_CONFIG, "line %d: duplicate key '%s'", lineno, key);
			goto out;
		}
		found = 1;
		free(*out);
		*out = strdup(val);
		if (*out == NULL) {
			err_set(e, ERR_NOMEM, "out of memory");
			goto out;
		}
	}
	rc = found;
out:
	if (rc < 0) {
		free(*out);
		*out = NULL;
	}
	free(line);
	free(val);
	return rc;
}

static int
config_print_quoted(FILE *fp, const char *s)
{
	if (fputc('"', fp) == EOF) {
		return -1;
	}
	for (; *s != '\0'; s++) {
		if ((*s == '"' || *s == '\\') && fputc('\\', fp) == EOF) {
			return -1;
		}
		if (fputc(*s, fp) == EOF) {
			return -1;
		}
	}
	return fputc('"', fp) == EOF ? -1 : 0;
}

static int
config_print_help(FILE *fp, const char *help)
{
	while (help != NULL && *help != '\0') {
		size_t l = strcspn(help, "\n");
		if (fprintf(fp, "# %.*s\n", (int)l, help) < 0) {
			return -1;
		}
		help += l + (help[l] == '\n' ? 1 : 0);
	}
	return 0;
}

int
config_print(const struct config_option *tbl, size_t n, const void *obj, FILE *fp)
{
	for (size_t i = 0; i < n; i++) {
		const struct config_option *o = &tbl[i];
		const unsigned char *m = (const unsigned char *)obj + o->offset;
		const char *s;
		char **list;
		long long v;
		int iv, r = 0;

		if (config_print_help(fp, o->help) != 0) {
			return -1;
		}
		switch (o->type) {
		case CONFIG_STR:
		case CONFIG_PATH:
		case CONFIG_ADDR:
			memcpy(&s, m, sizeof(s));
			if (s == NULL) {
				r = fprintf(fp, "# %s is not set\n", o->name) < 0 ? -1 : 0;
				break;
			}
			r = fprintf(fp, "%s = ", o->name) < 0 ? -1 : config_print_quoted(fp, s);
			r = r != 0 || fputc('\n', fp) == EOF ? -1 : 0;
			break;
		case CONFIG_STRLIST:
			memcpy(&list, m, sizeof(list));
			r = fprintf(fp, "%s = \"", o->name) < 0 ? -1 : 0;
			for (size_t k = 0; r == 0 && list != NULL && list[k] != NULL; k++) {
				if (k > 0 && fputc(',', fp) == EOF) {
					r = -1;
					break;
				}
				for (s = list[k]; *s != '\0' && r == 0; s++) {
					if ((*s == '"' || *s == '\\') && fputc('\\', fp) == EOF) {
						r = -1;
					}
					if (fputc(*s, fp) == EOF) {
						r = -1;
					}
				}
			}
			r = r != 0 || fputs("\"\n", fp) == EOF ? -1 : 0;
			break;
		case CONFIG_INT:
		case CONFIG_SIZE:
			memcpy(&v, m, sizeof(v));
			r = fprintf(fp, "%s = %lld\n", o->name, v) < 0 ? -1 : 0;
			break;
		case CONFIG_DURATION_MS:
			memcpy(&v, m, sizeof(v));
			r = fprintf(fp, "%s = %lldms\n", o->name, v) < 0 ? -1 : 0;
			break;
		case CONFIG_BOOL:
			memcpy(&iv, m, sizeof(iv));
			r = fprintf(fp, "%s = %s\n", o->name, iv ? "true" : "false") < 0 ? -1 : 0;
			break;
		case CONFIG_LOGLEVEL:
			memcpy(&iv, m, sizeof(iv));
			r = fprintf(fp, "%s = %s\n", o->name, log_level_name((enum log_level)iv)) < 0 ?
			    -1 : 0;
			break;
		case CONFIG_LOGFORMAT:
			memcpy(&iv, m, sizeof(iv));
			r = fprintf(fp, "%s = %s\n", o->name, log_format_name((enum log_format)iv)) < 0 ?
			    -1 : 0;
			break;
		case CONFIG_LOGTARGET:
			memcpy(&iv, m, sizeof(iv));
			r = fprintf(fp, "%s = %s\n", o->name, log_target_name((enum log_target)iv)) < 0 ?
			    -1 : 0;
			break;
		}
		if (r != 0) {
			return -1;
		}
	}
	return fflush(fp) == EOF || ferror(fp) ? -1 : 0;
}

void
config_free(const struct config_option *tbl, size_t n, void *obj)
{
	static char *const nullstr = NULL;
	static char **const nulllist = NULL;

	for (size_t i = 0; i < n; i++) {
		unsigned char *m = (unsigned char *)obj + tbl[i].offset;
		char *s;
		char **list;

		switch (tbl[i].type) {
		case CONFIG_STR:
		case CONFIG_PATH:
		case CONFIG_ADDR:
			memcpy(&s, m, sizeof(s));
			free(s);
			memcpy(m, &nullstr, sizeof(nullstr));
			break;
		case CONFIG_STRLIST:
			memcpy(&list, m, sizeof(list));
			config_list_free(list);
			memcpy(m, &nulllist, sizeof(nulllist));
			break;
		default:
			break;
		}
	}
}
