#include "common/digest.h"

#include <errno.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include <mbedtls/platform_util.h>
#include <mbedtls/sha256.h>

/*
 * Two implementations of one SHA-256 (FIPS 180-4) behind one API:
 *
 * - DIGEST_IMPL_SHANI: the x86 SHA extensions (SHA256RNDS2, SHA256MSG1,
 *   SHA256MSG2), for the CPUs whose CPUID reports them. The compression
 *   function uses them; the buffering and the padding are ours, below.
 * - DIGEST_IMPL_MBEDTLS: mbedTLS's portable C, everywhere else. mbedTLS 2.28
 *   has no x86 SHA-NI code of its own (and TLS keeps using it internally).
 *
 * The choice is made once per process (CPUID is a trap to the hypervisor in
 * a VM: too slow to ask per digest) and kept in each context by
 * digest_init(), so digest_use_impl() (tests, benchmarks) never changes a
 * running digest.
 */
#if defined(__x86_64__) || defined(__i386__)
#define DIGEST_HAVE_SHANI 1
#include <cpuid.h>
#include <immintrin.h>
#else
#define DIGEST_HAVE_SHANI 0
#endif

#define DIGEST_CHUNK (64 * 1024)
#define SHA256_BLOCK 64

enum { DIGEST_IDLE = 0, DIGEST_RUNNING = 1, DIGEST_FAILED = 2 };

/* Our own streaming state (buffering and padding), around the SHA-NI blocks. */
struct sha256_own {
	uint32_t h[8];                     /* H0..H7 of FIPS 180-4 */
	uint64_t bytes;                    /* message length so far */
	unsigned char block[SHA256_BLOCK]; /* a partial block */
	size_t used;                       /* bytes in BLOCK, < 64 */
};

struct digest_ctx {
	enum digest_impl impl; /* never DIGEST_IMPL_AUTO once initialised */
	union {
		mbedtls_sha256_context mbed;
		struct sha256_own own;
	} u;
};

_Static_assert(sizeof(struct digest_ctx) <= DIGEST_CTX_SIZE,
    "struct digest has room for the SHA-256 state");
_Static_assert(alignof(struct digest_ctx) <= alignof(struct digest),
    "struct digest is aligned for the SHA-256 state");

static struct digest_ctx *
digest_ctx(struct digest *d)
{
	return (void *)&d->ctx;
}

/* FIPS 180-4 4.2.2: the first 32 bits of the fractional parts of the cube
 * roots of the first 64 primes. */
static const uint32_t sha256_k[64] __attribute__((aligned(16))) = {
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
	0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
	0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
	0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
	0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
	0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
	0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
	0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

/* FIPS 180-4 5.3.3: the first 32 bits of the fractional parts of the square
 * roots of the first 8 primes. */
static const uint32_t sha256_h0[8] = {
	0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
};

#if DIGEST_HAVE_SHANI
/*
 * FIPS 180-4 6.2.2 over NBLOCKS 64-byte blocks of DATA, with the SHA
 * extensions. Register layout (Intel SDM, SHA256RNDS2): one register holds
 * the working variables A, B, E, F (A in the top 32-bit lane, F in the
 * bottom one), another C, D, G, H; the message schedule is four registers of
 * four words each, W[t] in lane t mod 4.
 *
 * _mm_sha256rnds2_epu32(cdgh, abef, wk) runs two rounds with W[t]+K[t] and
 * W[t+1]+K[t+1] from the two low lanes of wk and returns the new A, B, E, F;
 * the new C, D, G, H are the old A, B, E, F, so two registers alternating
 * roles carry the state. _mm_sha256msg1_epu32(W[t-16..t-13], W[t-12..t-9])
 * gives W[t-16] + sigma0(W[t-15]) for four t; adding W[t-7..t-4] and then
 * _mm_sha256msg2_epu32(that, W[t-4..t-1]) adds sigma1(W[t-2]): the next
 * four schedule words.
 */
__attribute__((target("sha,sse4.1"))) static void
sha256_blocks_shani(uint32_t h[8], const unsigned char *data, size_t nblocks)
{
	/* _mm_shuffle_epi8 mask: each 32-bit lane byte-swapped (the words are big-endian). */
	const __m128i bswap = _mm_setr_epi8(3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13, 12);
	/* _mm_set_epi32 names the lanes from the top one down. */
	__m128i abef = _mm_set_epi32((int)h[0], (int)h[1], (int)h[4], (int)h[5]);
	__m128i cdgh = _mm_set_epi32((int)h[2], (int)h[3], (int)h[6], (int)h[7]);
	uint32_t out[4];

	for (; nblocks > 0; nblocks--, data += SHA256_BLOCK) {
		const __m128i abef0 = abef, cdgh0 = cdgh;
		__m128i w[4];

#pragma GCC unroll 4
		for (int i = 0; i < 4; i++) {
			w[i] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(const void *)(data + 16 * i)), bswap);
		}
		/* Sixteen times four rounds; w[i % 4] holds W[4i..4i+3]. Unrolled, w stays in registers. */
#pragma GCC unroll 16
		for (int i = 0; i < 16; i++) {
			__m128i wk;

			if (i >= 4) {
				__m128i x = _mm_sha256msg1_epu32(w[(i - 4) & 3], w[(i - 3) & 3]);

				/* W[4i-7..4i-4]: the top three lanes of W[4i-8..] and the bottom one of W[4i-4..]. */
				x = _mm_add_epi32(x, _mm_alignr_epi8(w[(i - 1) & 3], w[(i - 2) & 3], 4));
				w[i & 3] = _mm_sha256msg2_epu32(x, w[(i - 1) & 3]);
			}
			wk = _mm_add_epi32(w[i & 3], _mm_load_si128((const __m128i *)(const void *)&sha256_k[4 * i]));
			/* Rounds 4i, 4i+1: the new A, B, E, F land in cdgh, whose old role abef takes. */
			cdgh = _mm_sha256rnds2_epu32(cdgh, abef, wk);
			wk = _mm_shuffle_epi32(wk, 0x0e); /* lanes 2, 3 down to 0, 1 */
			/* Rounds 4i+2, 4i+3: and back, abef = A, B, E, F and cdgh = C, D, G, H again. */
			abef = _mm_sha256rnds2_epu32(abef, cdgh, wk);
		}
		abef = _mm_add_epi32(abef, abef0);
		cdgh = _mm_add_epi32(cdgh, cdgh0);
	}
	/* Lanes bottom up: F, E, B, A and H, G, D, C. */
	_mm_storeu_si128((__m128i *)(void *)out, abef);
	h[0] = out[3];
	h[1] = out[2];
	h[4] = out[1];
	h[5] = out[0];
	_mm_storeu_si128((__m128i *)(void *)out, cdgh);
	h[2] = out[3];
	h[3] = out[2];
	h[6] = out[1];
	h[7] = out[0];
}

/* CPUID: leaf 7 EBX bit 29 (SHA), leaf 1 ECX bits 9 (SSSE3) and 19 (SSE4.1). */
static int
cpu_has_shani(void)
{
	unsigned int a, b, c, d;

	if (__get_cpuid(1, &a, &b, &c, &d) == 0 || (c & bit_SSSE3) == 0 || (c & bit_SSE4_1) == 0) {
		return 0;
	}
	/* __get_cpuid_count returns 0 when leaf 7 is beyond the CPU's highest leaf. */
	if (__get_cpuid_count(7, 0, &a, &b, &c, &d) == 0) {
		return 0;
	}
	return (b & bit_SHA) != 0;
}
#else
static void
sha256_blocks_shani(uint32_t h[8], const unsigned char *data, size_t nblocks)
{
	(void)h;
	(void)data;
	(void)nblocks;
}

static int
cpu_has_shani(void)
{
	return 0;
}
#endif

static void
own_init(struct sha256_own *s)
{
	memcpy(s->h, sha256_h0, sizeof(s->h));
	s->bytes = 0;
	s->used = 0;
}

static void
own_update(struct sha256_own *s, const unsigned char *p, size_t len)
{
	s->bytes += len;
	if (s->used > 0) {
		size_t k = SHA256_BLOCK - s->used < len ? SHA256_BLOCK - s->used : len;

		memcpy(s->block + s->used, p, k);
		s->used += k;
		p += k;
		len -= k;
		if (s->used < SHA256_BLOCK) {
			return;
		}
		sha256_blocks_shani(s->h, s->block, 1);
		s->used = 0;
	}
	if (len >= SHA256_BLOCK) {
		sha256_blocks_shani(s->h, p, len / SHA256_BLOCK);
		p += len - len % SHA256_BLOCK;
		len %= SHA256_BLOCK;
	}
	if (len > 0) {
		memcpy(s->block, p, len);
		s->used = len;
	}
}

/* FIPS 180-4 5.1.1: a 1 bit, zeros, the length in bits as 64 bits big-endian. */
static void
own_final(struct sha256_own *s, unsigned char out[DIGEST_LEN])
{
	uint64_t bits = s->bytes << 3;

	s->block[s->used++] = 0x80;
	if (s->used > SHA256_BLOCK - 8) {
		memset(s->block + s->used, 0, SHA256_BLOCK - s->used);
		sha256_blocks_shani(s->h, s->block, 1);
		s->used = 0;
	}
	memset(s->block + s->used, 0, SHA256_BLOCK - 8 - s->used);
	for (int i = 0; i < 8; i++) {
		s->block[SHA256_BLOCK - 1 - i] = (unsigned char)(bits >> (8 * i));
	}
	sha256_blocks_shani(s->h, s->block, 1);
	for (int i = 0; i < 8; i++) {
		out[4 * i] = (unsigned char)(s->h[i] >> 24);
		out[4 * i + 1] = (unsigned char)(s->h[i] >> 16);
		out[4 * i + 2] = (unsigned char)(s->h[i] >> 8);
		out[4 * i + 3] = (unsigned char)s->h[i];
	}
}

/*
 * The process's choice: DIGEST_IMPL_AUTO until the first digest_init() (or
 * digest_use_impl()) settles it. Threads may race to settle it; they all
 * store the same value, and the atomic keeps that defined.
 */
static _Atomic int digest_chosen = DIGEST_IMPL_AUTO;

static enum digest_impl
digest_detect(void)
{
	return cpu_has_shani() ? DIGEST_IMPL_SHANI : DIGEST_IMPL_MBEDTLS;
}

static enum digest_impl
digest_choice(void)
{
	int impl = atomic_load_explicit(&digest_chosen, memory_order_relaxed);

	if (impl == DIGEST_IMPL_AUTO) {
		impl = (int)digest_detect();
		atomic_store_explicit(&digest_chosen, impl, memory_order_relaxed);
	}
	return (enum digest_impl)impl;
}

int
digest_impl_available(enum digest_impl impl)
{
	switch (impl) {
	case DIGEST_IMPL_AUTO:
	case DIGEST_IMPL_MBEDTLS:
		return 1;
	case DIGEST_IMPL_SHANI:
		return cpu_has_shani();
	}
	return 0;
}

int
digest_use_impl(enum digest_impl impl)
{
	if (!digest_impl_available(impl)) {
		return -1;
	}
	if (impl == DIGEST_IMPL_AUTO) {
		impl = digest_detect();
	}
	atomic_store_explicit(&digest_chosen, (int)impl, memory_order_relaxed);
	return 0;
}

enum digest_impl
digest_impl_current(void)
{
	return digest_choice();
}

const char *
digest_impl_name(enum digest_impl impl)
{
	switch (impl) {
	case DIGEST_IMPL_AUTO:
		return "auto";
	case DIGEST_IMPL_MBEDTLS:
		return "mbedtls";
	case DIGEST_IMPL_SHANI:
		return "sha-ni";
	}
	return "?";
}

void
digest_init(struct digest *d)
{
	struct digest_ctx *c = digest_ctx(d);

	c->impl = digest_choice();
	if (c->impl == DIGEST_IMPL_MBEDTLS) {
		mbedtls_sha256_init(&c->u.mbed);
		/* is224 = 0: SHA-256. */
		d->state = mbedtls_sha256_starts_ret(&c->u.mbed, 0) == 0 ? DIGEST_RUNNING : DIGEST_FAILED;
		return;
	}
	own_init(&c->u.own);
	d->state = DIGEST_RUNNING;
}

void
digest_update(struct digest *d, const void *buf, size_t len)
{
	struct digest_ctx *c = digest_ctx(d);

	if (d->state != DIGEST_RUNNING || len == 0) {
		return;
	}
	if (c->impl == DIGEST_IMPL_SHANI) {
		own_update(&c->u.own, buf, len);
	} else if (mbedtls_sha256_update_ret(&c->u.mbed, buf, len) != 0) {
		d->state = DIGEST_FAILED;
	}
}

void
digest_free(struct digest *d)
{
	struct digest_ctx *c = digest_ctx(d);

	if (d->state != DIGEST_IDLE && c->impl == DIGEST_IMPL_MBEDTLS) {
		mbedtls_sha256_free(&c->u.mbed);
	}
	mbedtls_platform_zeroize(&d->ctx, sizeof(d->ctx));
	d->state = DIGEST_IDLE;
}

int
digest_final_raw(struct digest *d, unsigned char out[DIGEST_LEN])
{
	struct digest_ctx *c = digest_ctx(d);
	int rc = -1;

	if (d->state == DIGEST_RUNNING && c->impl == DIGEST_IMPL_SHANI) {
		own_final(&c->u.own, out);
		rc = 0;
	} else if (d->state == DIGEST_RUNNING && mbedtls_sha256_finish_ret(&c->u.mbed, out) == 0) {
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
