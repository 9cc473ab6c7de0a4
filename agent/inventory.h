/*
 * inventory — what the host is, for GET /info: host name, operating system,
 * architecture, kernel release, CPU cores, memory, boot id.
 */
#ifndef TANDEM_AGENT_INVENTORY_H
#define TANDEM_AGENT_INVENTORY_H

#include <stddef.h>

#include "cJSON.h"
#include "common/util.h"

struct inventory {
	char hostname[256];
	char os[256];         /* os-release PRETTY_NAME, else NAME, else "" */
	char arch[64];        /* uname machine */
	char kernel[256];     /* uname release */
	long cpu_cores;       /* online CPUs */
	long long memory_mb;  /* total RAM in MiB */
	char boot_id[64];     /* "" when unknown */
};

/* Where to read from; NULL members mean the system default. */
struct inventory_paths {
	const char *os_release; /* /etc/os-release, then /usr/lib/os-release */
	const char *boot_id;    /* /proc/sys/kernel/random/boot_id */
};

/*
 * Fill OUT. Facts that cannot be read are left empty (strings) or 0; only
 * uname() failing is an error. Returns 0 or -1 (errno set).
 */
int inventory_collect(const struct inventory_paths *paths, struct inventory *out) WUR;

/*
 * The value of KEY in os-release text BUF (LEN bytes): KEY=value lines,
 * values optionally in double or single quotes, backslash escapes inside
 * double quotes (os-release(5)). Returns 0 with the value in OUT, or -1 if
 * KEY is absent, its value is empty or malformed, or does not fit.
 */
int inventory_os_release_value(const char *buf, size_t len, const char *key, char *out,
    size_t outlen) WUR;

/*
 * The /info object: inventory fields plus "agent_version" VERSION; empty
 * strings become null. Returns NULL on allocation failure.
 */
cJSON *inventory_json(const struct inventory *inv, const char *version) WUR;

#endif
