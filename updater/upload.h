/*
 * upload — the parts of receiving a release that POST /update and
 * POST /update-self share: text fields of the multipart form, the free-space
 * check before staging, the extraction limits from the configuration, and
 * the HTTP status an extraction failure maps to.
 */
#ifndef TANDEM_UPDATER_UPLOAD_H
#define TANDEM_UPDATER_UPLOAD_H

#include <stddef.h>

#include "common/httpd.h"
#include "common/util.h"
#include "updater/api.h"
#include "updater/extract.h"

/*
 * Append N bytes of the text field NAME to BUF (capacity CAP, *LEN used,
 * kept NUL-terminated). A field that would not fit is answered with 400
 * "field 'NAME' is too long" and -1 is returned.
 */
int upload_text(struct httpd_req *r, char *buf, size_t cap, size_t *len, const char *name,
    const char *data, size_t n) WUR;

/* 422 for unsafe/oversized/malformed archives, 507 for a full disk, else 500. */
unsigned upload_status_of(enum extract_status st);

/*
 * 0 when the file system holding ROOT has at least MIN_FREE bytes free (or
 * its free space cannot be read); -1 with ERR "not enough disk space: ..."
 * otherwise (answer 507).
 */
int upload_disk_check(const char *root, long long min_free, char *err, size_t errlen) WUR;

/* The extraction limits of CFG (max_unpacked, max_entries, min_free). */
void upload_limits(const struct updater_config *cfg, struct extract_limits *lim);

#endif
