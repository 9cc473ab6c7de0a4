#include "updater/upload.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "common/fs.h"

int
upload_text(struct httpd_req *r, char *buf, size_t cap, size_t *len, const char *name,
    const char *data, size_t n)
{
	char msg[96];

	if (*len + n >= cap) {
		snprintf(msg, sizeof(msg), "field '%.40s' is too long", name);
		httpd_respond_error_detail(r, 400, msg, NULL, 0);
		return -1;
	}
	memcpy(buf + *len, data, n);
	*len += n;
	buf[*len] = '\0';
	return 0;
}

unsigned
upload_status_of(enum extract_status st)
{
	switch (st) {
	case EXTRACT_UNSAFE:
	case EXTRACT_LIMIT:
	case EXTRACT_FORMAT:
		return 422;
	case EXTRACT_NOSPACE:
		return 507;
	default:
		return 500;
	}
}

int
upload_disk_check(const char *root, long long min_free, char *err, size_t errlen)
{
	unsigned long long avail;

	if (fs_free_bytes(root, &avail) == 0 && min_free > 0 &&
	    avail < (unsigned long long)min_free) {
		snprintf(err, errlen, "not enough disk space: %llu bytes free, %lld required", avail,
		    min_free);
		return -1;
	}
	return 0;
}

void
upload_limits(const struct updater_config *cfg, struct extract_limits *lim)
{
	lim->max_unpacked = (uint64_t)cfg->max_unpacked;
	lim->max_entries = (uint64_t)cfg->max_entries;
	lim->min_free = (uint64_t)cfg->min_free;
}
