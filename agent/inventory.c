#include "agent/inventory.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysinfo.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "common/fs.h"
#include "common/json.h"

#define OS_RELEASE_MAX (64 * 1024)

/* Unquote VAL (LEN bytes, one line) into OUT; -1 if malformed or too long. */
static int
os_release_unquote(const char *val, size_t len, char *out, size_t outlen)
{
	size_t o = 0;
	char q = 0;
	size_t i = 0;

	if (len > 0 && (val[0] == '"' || val[0] == '\'')) {
		q = val[0];
		i = 1;
		if (len < 2 || val[len - 1] != q) {
			return -1;
		}
		len--;
	}
	for (; i < len; i++) {
		char c = val[i];
		if (q == '"' && c == '\\' && i + 1 < len) {
			c = val[++i];
		}
		if (o + 1 >= outlen) {
			return -1;
		}
		out[o++] = c;
	}
	if (outlen == 0 || o == 0) {
		return -1; /* an empty value counts as absent */
	}
	out[o] = '\0';
	return 0;
}

int
inventory_os_release_value(const char *buf, size_t len, const char *key, char *out,
    size_t outlen)
{
	size_t klen = strlen(key);
	size_t pos = 0;

	while (pos < len) {
		const char *line = buf + pos;
		const char *nl = memchr(line, '\n', len - pos);
		size_t llen = nl != NULL ? (size_t)(nl - line) : len - pos;
		pos += llen + 1;
		while (llen > 0 && (line[llen - 1] == ' ' || line[llen - 1] == '\t' ||
				       line[llen - 1] == '\r')) {
			llen--;
		}
		if (llen > klen && memcmp(line, key, klen) == 0 && line[klen] == '=') {
			return os_release_unquote(line + klen + 1, llen - klen - 1, out, outlen);
		}
	}
	return -1;
}

static void
read_os(const char *path, char *out, size_t outlen)
{
	static const char *const defaults[] = { "/etc/os-release", "/usr/lib/os-release" };
	char *buf = NULL;
	size_t len = 0;

	out[0] = '\0';
	for (size_t i = 0; i < ARRAY_LEN(defaults) && buf == NULL; i++) {
		const char *p = path != NULL ? path : defaults[i];
		if (fs_read_file(p, OS_RELEASE_MAX, &buf, &len) != 0) {
			buf = NULL;
		}
		if (path != NULL) {
			break;
		}
	}
	if (buf == NULL) {
		return;
	}
	if (inventory_os_release_value(buf, len, "PRETTY_NAME", out, outlen) != 0 &&
	    inventory_os_release_value(buf, len, "NAME", out, outlen) != 0) {
		out[0] = '\0';
	}
	free(buf);
}

static void
read_boot_id(const char *path, char *out, size_t outlen)
{
	char *buf = NULL;
	size_t len = 0;

	out[0] = '\0';
	if (fs_read_file(path != NULL ? path : "/proc/sys/kernel/random/boot_id", 4096, &buf,
		&len) != 0) {
		return;
	}
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == ' ')) {
		buf[--len] = '\0';
	}
	/* A boot id is a UUID: 36 characters of hex digits and dashes. */
	int ok = len == 36 && strlen(buf) == len;
	for (size_t i = 0; ok && i < len; i++) {
		char c = buf[i];
		ok = c == '-' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
		     (c >= 'A' && c <= 'F');
	}
	if (ok && strlcpy_chk(out, buf, outlen) != 0) {
		out[0] = '\0';
	}
	free(buf);
}

int
inventory_collect(const struct inventory_paths *paths, struct inventory *out)
{
	struct utsname u;
	struct sysinfo si;
	long cores;

	memset(out, 0, sizeof(*out));
	if (uname(&u) != 0) {
		return -1;
	}
	if (gethostname(out->hostname, sizeof(out->hostname) - 1) != 0) {
		out->hostname[0] = '\0';
	}
	out->hostname[sizeof(out->hostname) - 1] = '\0';
	if (strlcpy_chk(out->arch, u.machine, sizeof(out->arch)) != 0 ||
	    strlcpy_chk(out->kernel, u.release, sizeof(out->kernel)) != 0) {
		errno = ENAMETOOLONG;
		return -1;
	}
	read_os(paths != NULL ? paths->os_release : NULL, out->os, sizeof(out->os));
	read_boot_id(paths != NULL ? paths->boot_id : NULL, out->boot_id, sizeof(out->boot_id));
	cores = sysconf(_SC_NPROCESSORS_ONLN);
	out->cpu_cores = cores > 0 ? cores : 0;
	if (sysinfo(&si) == 0) {
		unsigned long long bytes = (unsigned long long)si.totalram * si.mem_unit;
		out->memory_mb = (long long)(bytes / (1024ULL * 1024ULL));
	}
	return 0;
}

static int
add_opt_str(cJSON *o, const char *key, const char *v)
{
	return json_add_str(o, key, v[0] != '\0' ? v : NULL);
}

cJSON *
inventory_json(const struct inventory *inv, const char *version)
{
	cJSON *o = cJSON_CreateObject();

	if (o == NULL) {
		return NULL;
	}
	if (add_opt_str(o, "hostname", inv->hostname) != 0 ||
	    add_opt_str(o, "os", inv->os) != 0 || add_opt_str(o, "arch", inv->arch) != 0 ||
	    add_opt_str(o, "kernel_release", inv->kernel) != 0 ||
	    json_add_int(o, "cpu_cores", inv->cpu_cores) != 0 ||
	    json_add_int(o, "memory_mb", inv->memory_mb) != 0 ||
	    json_add_str(o, "agent_version", version) != 0 ||
	    add_opt_str(o, "boot_id", inv->boot_id) != 0) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}
