#include "pki/seal.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/gcm.h>
#include <mbedtls/md.h>
#include <mbedtls/pkcs5.h>

#include "common/fs.h"

#define SEAL_SALT_LEN 16
#define SEAL_PREFIX_LEN 8
#define SEAL_HEADER_LEN (SEAL_MAGIC_LEN + 4 + SEAL_SALT_LEN + SEAL_PREFIX_LEN)
#define SEAL_TAG_LEN 16
#define SEAL_LAST 0x80000000u
#define SEAL_KEY_LEN 32

struct seal {
	int fd;
	int writing;
	int done;        /* reader: the last chunk was read; writer: finished */
	uint32_t index;  /* next chunk */
	mbedtls_gcm_context gcm;
	unsigned char header[SEAL_HEADER_LEN];
	unsigned char prefix[SEAL_PREFIX_LEN];
	unsigned char *buf;  /* plaintext of one chunk */
	size_t have;         /* writer: bytes buffered; reader: bytes of the chunk */
	size_t off;          /* reader: bytes of the chunk already returned */
	unsigned char *cbuf; /* ciphertext of one chunk */
};

static void
seal_put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

static uint32_t
seal_get32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int
seal_is_sealed(const void *head, size_t len)
{
	return len >= SEAL_MAGIC_LEN && memcmp(head, SEAL_MAGIC, SEAL_MAGIC_LEN) == 0;
}

static struct seal *
seal_new(int fd, int writing, struct err *e)
{
	struct seal *s = calloc(1, sizeof(*s));

	if (s == NULL) {
		err_set(e, ERR_NOMEM, "out of memory");
		return NULL;
	}
	s->fd = fd;
	s->writing = writing;
	mbedtls_gcm_init(&s->gcm);
	s->buf = malloc(SEAL_CHUNK);
	s->cbuf = malloc(SEAL_CHUNK + SEAL_TAG_LEN);
	if (s->buf == NULL || s->cbuf == NULL) {
		seal_free(s);
		err_set(e, ERR_NOMEM, "out of memory");
		return NULL;
	}
	return s;
}

void
seal_free(struct seal *s)
{
	if (s == NULL) {
		return;
	}
	mbedtls_gcm_free(&s->gcm); /* zeroizes the key schedule */
	secure_free(s->buf, SEAL_CHUNK);
	secure_free(s->cbuf, SEAL_CHUNK + SEAL_TAG_LEN);
	secure_wipe(s, sizeof(*s));
	free(s);
}

/* Key from PASS and the header's salt and iterations; set into the GCM context. */
static int
seal_derive(struct seal *s, const char *pass, size_t passlen, uint32_t iterations,
    const unsigned char *salt, struct err *e)
{
	mbedtls_md_context_t md;
	unsigned char key[SEAL_KEY_LEN];
	int ret;

	mbedtls_md_init(&md);
	ret = mbedtls_md_setup(&md, mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), 1);
	if (ret == 0) {
		ret = mbedtls_pkcs5_pbkdf2_hmac(&md, (const unsigned char *)pass, passlen, salt,
		    SEAL_SALT_LEN, iterations, SEAL_KEY_LEN, key);
	}
	mbedtls_md_free(&md);
	if (ret == 0) {
		ret = mbedtls_gcm_setkey(&s->gcm, MBEDTLS_CIPHER_ID_AES, key, SEAL_KEY_LEN * 8);
	}
	secure_wipe(key, sizeof(key));
	if (ret != 0) {
		return err_set(e, ERR_INTERNAL, "deriving the key failed (-0x%04x)", (unsigned)-ret);
	}
	return 0;
}

/* Nonce and additional data of chunk S->index with flags+length word FL. */
static void
seal_chunk_params(const struct seal *s, uint32_t fl, unsigned char nonce[12],
    unsigned char aad[SEAL_HEADER_LEN + 4])
{
	memcpy(nonce, s->prefix, SEAL_PREFIX_LEN);
	seal_put32(nonce + SEAL_PREFIX_LEN, s->index);
	memcpy(aad, s->header, SEAL_HEADER_LEN);
	seal_put32(aad + SEAL_HEADER_LEN, fl);
}

int
seal_write_open(int fd, const char *pass, size_t passlen, unsigned iterations,
    struct seal **out, struct err *e)
{
	mbedtls_entropy_context ent;
	mbedtls_ctr_drbg_context drbg;
	unsigned char rnd[SEAL_SALT_LEN + SEAL_PREFIX_LEN];
	struct seal *s = NULL;
	int ret;
	int rc = -1;

	mbedtls_entropy_init(&ent);
	mbedtls_ctr_drbg_init(&drbg);
	if (pass == NULL || passlen < SEAL_MIN_PASSPHRASE) {
		err_set(e, ERR_USAGE, "the passphrase needs at least %d characters",
		    SEAL_MIN_PASSPHRASE);
		goto out;
	}
	if (iterations == 0) {
		iterations = SEAL_ITERATIONS;
	}
	if (iterations < SEAL_MIN_ITERATIONS || iterations > SEAL_MAX_ITERATIONS) {
		err_set(e, ERR_USAGE, "%u PBKDF2 iterations: use %d..%d", iterations,
		    SEAL_MIN_ITERATIONS, SEAL_MAX_ITERATIONS);
		goto out;
	}
	ret = mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &ent,
	    (const unsigned char *)"tandem-seal", 11);
	if (ret == 0) {
		ret = mbedtls_ctr_drbg_random(&drbg, rnd, sizeof(rnd));
	}
	if (ret != 0) {
		err_set(e, ERR_INTERNAL, "random generator failed (-0x%04x)", (unsigned)-ret);
		goto out;
	}
	s = seal_new(fd, 1, e);
	if (s == NULL) {
		goto out;
	}
	memcpy(s->header, SEAL_MAGIC, SEAL_MAGIC_LEN);
	seal_put32(s->header + SEAL_MAGIC_LEN, iterations);
	memcpy(s->header + SEAL_MAGIC_LEN + 4, rnd, sizeof(rnd));
	memcpy(s->prefix, rnd + SEAL_SALT_LEN, SEAL_PREFIX_LEN);
	if (seal_derive(s, pass, passlen, iterations, rnd, e) != 0) {
		goto out;
	}
	if (fs_write_all(fd, s->header, SEAL_HEADER_LEN) != 0) {
		err_sys(e, "writing the archive");
		goto out;
	}
	*out = s;
	s = NULL;
	rc = 0;
out:
	seal_free(s);
	mbedtls_ctr_drbg_free(&drbg);
	mbedtls_entropy_free(&ent);
	return rc;
}

/* Encrypt and write the buffered plaintext as one chunk. */
static int
seal_flush(struct seal *s, int last, struct err *e)
{
	unsigned char nonce[12], aad[SEAL_HEADER_LEN + 4], word[4];
	uint32_t fl = (uint32_t)s->have | (last ? SEAL_LAST : 0);
	int ret;

	if (s->index == UINT32_MAX) {
		return err_set(e, ERR_LIMIT, "archive too large (2^32 chunks)");
	}
	seal_chunk_params(s, fl, nonce, aad);
	ret = mbedtls_gcm_crypt_and_tag(&s->gcm, MBEDTLS_GCM_ENCRYPT, s->have, nonce,
	    sizeof(nonce), aad, sizeof(aad), s->buf, s->cbuf, SEAL_TAG_LEN, s->cbuf + s->have);
	if (ret != 0) {
		return err_set(e, ERR_INTERNAL, "encryption failed (-0x%04x)", (unsigned)-ret);
	}
	seal_put32(word, fl);
	if (fs_write_all(s->fd, word, sizeof(word)) != 0 ||
	    fs_write_all(s->fd, s->cbuf, s->have + SEAL_TAG_LEN) != 0) {
		return err_sys(e, "writing the archive");
	}
	s->index++;
	s->have = 0;
	return 0;
}

int
seal_write(struct seal *s, const void *buf, size_t len, struct err *e)
{
	const unsigned char *p = buf;

	if (!s->writing || s->done) {
		return err_set(e, ERR_INTERNAL, "seal_write on a finished or reading stream");
	}
	while (len > 0) {
		size_t n = SEAL_CHUNK - s->have;
		if (n > len) {
			n = len;
		}
		memcpy(s->buf + s->have, p, n);
		s->have += n;
		p += n;
		len -= n;
		/* A full chunk is written only once more data follows: the last one is flagged. */
		if (s->have == SEAL_CHUNK && len > 0 && seal_flush(s, 0, e) != 0) {
			return -1;
		}
	}
	return 0;
}

int
seal_write_finish(struct seal *s, struct err *e)
{
	if (!s->writing || s->done) {
		return err_set(e, ERR_INTERNAL, "seal_write_finish twice");
	}
	if (seal_flush(s, 1, e) != 0) {
		return -1;
	}
	s->done = 1;
	return 0;
}

/* Read exactly LEN bytes; 1 on a clean EOF before the first byte. */
static int
seal_read_full(int fd, unsigned char *buf, size_t len, struct err *e)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = read(fd, buf + got, len - got);
		if (n < 0) {
			if (errno == EINTR) {
				continue;
			}
			return err_sys(e, "reading the archive");
		}
		if (n == 0) {
			if (got == 0) {
				return 1;
			}
			return err_set(e, ERR_SIGNATURE, "the archive is cut off");
		}
		got += (size_t)n;
	}
	return 0;
}

int
seal_read_open(int fd, const char *pass, size_t passlen, struct seal **out, struct err *e)
{
	struct seal *s = seal_new(fd, 0, e);
	uint32_t iterations;
	int r;

	if (s == NULL) {
		return -1;
	}
	r = seal_read_full(fd, s->header, SEAL_HEADER_LEN, e);
	if (r < 0 && e != NULL && e->kind != ERR_SIGNATURE) {
		seal_free(s);
		return -1; /* an I/O error */
	}
	if (r != 0 || !seal_is_sealed(s->header, SEAL_HEADER_LEN)) {
		err_clear(e);
		seal_free(s);
		return err_set(e, ERR_FORMAT, "not an encrypted tandem archive");
	}
	iterations = seal_get32(s->header + SEAL_MAGIC_LEN);
	if (iterations < SEAL_MIN_ITERATIONS || iterations > SEAL_MAX_ITERATIONS) {
		seal_free(s);
		return err_set(e, ERR_FORMAT, "archive header asks for %u PBKDF2 iterations",
		    iterations);
	}
	if (pass == NULL || passlen == 0) {
		seal_free(s);
		return err_set(e, ERR_USAGE, "the archive is encrypted: a passphrase is needed");
	}
	memcpy(s->prefix, s->header + SEAL_MAGIC_LEN + 4 + SEAL_SALT_LEN, SEAL_PREFIX_LEN);
	if (seal_derive(s, pass, passlen, iterations, s->header + SEAL_MAGIC_LEN + 4, e) != 0) {
		seal_free(s);
		return -1;
	}
	*out = s;
	return 0;
}

/* Read, authenticate and decrypt the next chunk into S->buf. */
static int
seal_next_chunk(struct seal *s, struct err *e)
{
	unsigned char word[4], nonce[12], aad[SEAL_HEADER_LEN + 4];
	uint32_t fl;
	size_t len;
	int r;

	r = seal_read_full(s->fd, word, sizeof(word), e);
	if (r != 0) {
		if (r > 0) {
			err_set(e, ERR_SIGNATURE, "the archive ends before its last chunk (cut off)");
		}
		return -1;
	}
	fl = seal_get32(word);
	len = fl & ~SEAL_LAST;
	if (len > SEAL_CHUNK) {
		return err_set(e, ERR_SIGNATURE, "chunk %u is %zu bytes: damaged archive", s->index,
		    len);
	}
	if (seal_read_full(s->fd, s->cbuf, len + SEAL_TAG_LEN, e) != 0) {
		if (!err_failed(e)) {
			err_set(e, ERR_SIGNATURE, "the archive is cut off");
		}
		return -1;
	}
	seal_chunk_params(s, fl, nonce, aad);
	if (mbedtls_gcm_auth_decrypt(&s->gcm, len, nonce, sizeof(nonce), aad, sizeof(aad),
		s->cbuf + len, SEAL_TAG_LEN, s->cbuf, s->buf) != 0) {
		return err_set(e, ERR_SIGNATURE,
		    s->index == 0 ? "wrong passphrase, or the archive is damaged"
				  : "the archive is damaged or was altered");
	}
	s->index++;
	s->have = len;
	s->off = 0;
	if (fl & SEAL_LAST) {
		unsigned char extra;
		s->done = 1;
		/* Nothing may follow the last chunk. */
		r = seal_read_full(s->fd, &extra, 1, e);
		if (r == 0) {
			return err_set(e, ERR_SIGNATURE, "data after the last chunk");
		}
		if (r < 0) {
			return -1;
		}
	}
	return 0;
}

ssize_t
seal_read(struct seal *s, void *buf, size_t len, struct err *e)
{
	size_t n;

	while (s->off == s->have) {
		if (s->done) {
			return 0;
		}
		if (seal_next_chunk(s, e) != 0) {
			return -1;
		}
	}
	n = s->have - s->off;
	if (n > len) {
		n = len;
	}
	memcpy(buf, s->buf + s->off, n);
	s->off += n;
	return (ssize_t)n;
}
