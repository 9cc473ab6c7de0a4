/*
 * digest — the one SHA-256 of tandem: streaming (init, update, final) and
 * one-shot over a buffer or a file descriptor, as 64 lowercase hex digits
 * (or the 32 raw bytes, for signatures).
 *
 *   struct digest d;
 *   digest_init(&d);
 *   digest_update(&d, buf, n);            // any number of times
 *   if (digest_final(&d, hex) != 0) ...   // hex: 64 digits + NUL
 *
 * The TLS library stays behind this module and common/tls (and pki/), so a
 * move to another mbedTLS major version is local: no mbedTLS type appears
 * here. The context is opaque storage sized for either implementation's
 * state (checked at compile time in digest.c), so it lives on the stack or inside
 * another struct without an allocation.
 *
 * The SHA-256 is computed with the x86 SHA extensions (SHA-NI) when CPUID
 * reports them, with mbedTLS's portable C otherwise; the digest is the same,
 * only the speed differs. Tests and benchmarks may pick one (digest_use_impl).
 *
 * update never fails visibly: a failure of the library (impossible for its
 * software implementation, possible for a hardware one) is remembered and
 * reported by final, which then writes no digest. A context may be copied
 * only before digest_init() or after final/free.
 */
#ifndef TANDEM_DIGEST_H
#define TANDEM_DIGEST_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/util.h"

#define DIGEST_LEN 32       /* raw SHA-256 bytes */
#define DIGEST_HEX_LEN 64   /* hex digits, without the NUL */
#define DIGEST_CTX_SIZE 256 /* opaque room for the library's state */

struct digest {
	union {
		unsigned char bytes[DIGEST_CTX_SIZE];
		uint64_t align_u64;
		void *align_ptr;
	} ctx;
	int state; /* private: 0 idle, 1 running, 2 failed */
};

/* Start a SHA-256. Any previous state of D is discarded (not wiped: call digest_free). */
void digest_init(struct digest *d);

/* Hash LEN more bytes of BUF. LEN 0 (BUF may then be NULL) does nothing. */
void digest_update(struct digest *d, const void *buf, size_t len);

/*
 * Finish: HEX receives 64 lowercase hex digits and a NUL. D is released
 * (wiped) in every case and must be initialised again for reuse. Returns 0,
 * or -1 (HEX "") when an earlier step failed or D was never initialised.
 */
int digest_final(struct digest *d, char hex[DIGEST_HEX_LEN + 1]) WUR;

/* As digest_final(), the 32 raw bytes into OUT (zeroed on failure). */
int digest_final_raw(struct digest *d, unsigned char out[DIGEST_LEN]) WUR;

/* Abandon D (wipe it); safe on an idle, running or finished context. */
void digest_free(struct digest *d);

/* SHA-256 of LEN bytes of BUF as hex. Returns 0 or -1 (HEX ""). */
int digest_buf(const void *buf, size_t len, char hex[DIGEST_HEX_LEN + 1]) WUR;

/*
 * SHA-256 of everything FD yields until end of file (read in 64 KiB chunks,
 * EINTR retried), as hex; *SIZE (may be NULL) receives the byte count.
 * Returns 0, or -1 with E (the read's errno saved; kind ERR_IO) and HEX "".
 */
int digest_fd(int fd, char hex[DIGEST_HEX_LEN + 1], uint64_t *size, struct err *e) WUR;

/*
 * The implementations, for tests and benchmarks (programs never choose: they
 * get DIGEST_IMPL_AUTO, the fastest this CPU has).
 */
enum digest_impl {
	DIGEST_IMPL_AUTO = 0,    /* SHA-NI when the CPU has it, else mbedTLS */
	DIGEST_IMPL_MBEDTLS = 1, /* mbedTLS's portable C */
	DIGEST_IMPL_SHANI = 2,   /* the x86 SHA extensions */
};

/* 1 when IMPL can run on this CPU (AUTO and MBEDTLS always can), else 0. */
int digest_impl_available(enum digest_impl impl);

/*
 * Make IMPL the implementation of every context initialised from now on, in
 * the whole process (running ones keep theirs); AUTO goes back to the CPU's
 * choice. Returns 0, or -1 (nothing changed) when IMPL is not available.
 */
int digest_use_impl(enum digest_impl impl) WUR;

/* The implementation digest_init() uses now (never AUTO). */
enum digest_impl digest_impl_current(void);

/* "auto", "mbedtls" or "sha-ni". */
const char *digest_impl_name(enum digest_impl impl);

#endif
