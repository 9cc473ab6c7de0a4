/*
 * seal — a byte stream encrypted and authenticated under a passphrase (the
 * master's backups). AES-256-GCM in chunks, the key from PBKDF2-HMAC-SHA256.
 *
 * Format (all integers big-endian):
 *   header  "TANDEMSEAL1\n" (12) | iterations u32 | salt (16) | nonce prefix (8)
 *   chunk*  flags+length u32 (bit 31: last chunk; length <= SEAL_CHUNK)
 *           | ciphertext (length) | GCM tag (16)
 * Chunk i is encrypted with the nonce prefix || i (u32), and authenticates
 * the header and its own flags+length word as additional data, so chunks
 * cannot be reordered, dropped, moved into another archive, or cut off
 * after any chunk but the last (a stream without its last chunk is an
 * error, never a short success). A wrong passphrase fails the first tag.
 */
#ifndef TANDEM_PKI_SEAL_H
#define TANDEM_PKI_SEAL_H

#include <stddef.h>
#include <sys/types.h>

#include "common/err.h"
#include "common/util.h"

#define SEAL_MAGIC "TANDEMSEAL1\n"
#define SEAL_MAGIC_LEN 12
#define SEAL_CHUNK 65536
#define SEAL_ITERATIONS 300000
/* Reading refuses headers asking for more work than this (hostile input). */
#define SEAL_MAX_ITERATIONS 10000000
#define SEAL_MIN_ITERATIONS 10000
#define SEAL_MIN_PASSPHRASE 8

struct seal;

/* 1 when the LEN bytes at HEAD begin a sealed stream. */
int seal_is_sealed(const void *head, size_t len);

/*
 * Start sealing into FD with PASS (PASSLEN bytes, at least
 * SEAL_MIN_PASSPHRASE): writes the header. ITERATIONS 0: SEAL_ITERATIONS.
 */
int seal_write_open(int fd, const char *pass, size_t passlen, unsigned iterations,
    struct seal **out, struct err *e) WUR;
/* Encrypt LEN bytes of BUF into the stream (buffered into whole chunks). */
int seal_write(struct seal *s, const void *buf, size_t len, struct err *e) WUR;
/* Write the last chunk; the stream is complete only after this returns 0. */
int seal_write_finish(struct seal *s, struct err *e) WUR;

/*
 * Start reading the sealed stream on FD: reads and checks the header and
 * derives the key. ERR_FORMAT when FD is not a sealed stream.
 */
int seal_read_open(int fd, const char *pass, size_t passlen, struct seal **out,
    struct err *e) WUR;
/*
 * Up to LEN decrypted bytes into BUF: > 0, 0 at the authenticated end, -1
 * with E (ERR_SIGNATURE: wrong passphrase, tampered or cut-off stream).
 * Nothing unauthenticated is ever returned.
 */
ssize_t seal_read(struct seal *s, void *buf, size_t len, struct err *e);

/* Wipe the key and buffers and free. The fd is the caller's. NULL is fine. */
void seal_free(struct seal *s);

#endif
