#include "common/digest.h"

#include <errno.h>
#include <stdalign.h>
#include <string.h>
#include <unistd.h>

#include <mbedtls/platform_util.h>
#include <mbedtls/sha256.h>

#define DIGEST_CHUNK (64 * 1024)

enum { DIGEST_IDLE = 0, DIGEST_RUNNING = 1, DIGEST_FAILED = 2 };

_Static_assert(sizeof(mbedtls_sha256_context) <= DIGEST_CTX_SIZE,
    "struct digest has room for the SHA-256 state");
_Static_assert(alignof(mbedtls_sha256_context) <= alignof(struct digest),
    "struct digest is aligned for the SHA-256 state");

static mbedtls_sha256_context *
digest_ctx(struct digest *d)
{
	return (void *)&d->ctx;
}

void
digest_init(struct digest *d)
{
	mbedtls_sha256_context *c = digest_ctx(d);

	mbedtls_sha256_init(c);
	/* is224 = 0: SHA-256. */
	d->state = mbedtls_sha256_starts_ret(c, 0) == 0 ? DIGEST_RUNNING : DIGEST_FAILED;
}

void
digest_update(struct digest *d, const void *buf, size_t len)
{
	if (d->state != DIGEST_RUNNING || len == 0) {
		return;
	}
	if (mbedtls_sha256_update_ret(digest_ctx(d), buf, len) != 0) {
		d->state = DIGEST_FAILED;
	}
}

void
digest_free(struct digest *d)
{
	if (d->state != DIGEST_IDLE) {
		mbedtls_sha256_free(digest_ctx(d));
	}
	mbedtls_platform_zeroize(&d->ctx, sizeof(d->ctx));
	d->state = DIGEST_IDLE;
}

int
digest_final_raw(struct digest *d, unsigned char out[DIGEST_LEN])
{
	int rc = -1;

	if (d->state == DIGEST_RUNNING && mbedtls_sha256_finish_ret(digest_ctx(d), out) == 0) {
		rc = 0;
	} else {
		memset(out, 0, DIGEST_LEN);
	}
	digest_free(d);
	return rc;
}

int
digest_final(struct digest *d, char hex[DIGEST_HEX_LEN + 1])
{
	unsigned char raw[DIGEST_LEN];

	if (digest_final_raw(d, raw) != 0) {
		hex[0] = '\0';
		return -1;
	}
	hex_encode(raw, sizeof(raw), hex);
	return 0;
}

int
digest_buf(const void *buf, size_t len, char hex[DIGEST_HEX_LEN + 1])
{
	struct digest d;

	digest_init(&d);
	digest_update(&d, buf, len);
	return digest_final(&d, hex);
}

int
digest_fd(int fd, char hex[DIGEST_HEX_LEN + 1], uint64_t *size, struct err *e)
{
	unsigned char buf[DIGEST_CHUNK];
	struct digest d;
	uint64_t total = 0;
	int rc = -1;

	hex[0] = '\0';
	digest_init(&d);
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n < 0) {
			err_sys(e, "read");
			goto out;
		}
		if (n == 0) {
			break;
		}
		digest_update(&d, buf, (size_t)n);
		total += (uint64_t)n;
	}
	if (digest_final(&d, hex) != 0) {
		err_set(e, ERR_INTERNAL, "sha256 failed");
		goto out;
	}
	if (size != NULL) {
		*size = total;
	}
	rc = 0;
out:
	digest_free(&d);
	return rc;
}
