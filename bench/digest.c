/*
 * digest — SHA-256 throughput of each implementation of common/digest
 * (mbedTLS's portable C, and the x86 SHA extensions when the CPU has them),
 * side by side: RUNS rounds, each hashing MB megabytes (10^6 bytes) with
 * every implementation in turn (the order alternating by round), in 64 KiB
 * digest_update() calls as digest_fd() makes them, from a 16 MiB buffer of
 * pseudo-random bytes. Every round checks that the implementations agree.
 * Prints one line per round and implementation, then the medians:
 * "median IMPL: wall W MB/s, cpu C MB/s" and the ratio.
 *
 *   digest [--mb MB] [--runs RUNS]      (bench/digest.sh)
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/digest.h"
#include "common/util.h"

#define BUF_BYTES (16u << 20)
#define PIECE (64u * 1024)
#define MAX_RUNS 99

static double
seconds(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double
median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Hash BYTES bytes of BUF (cycled) with the current implementation; HEX, and the times. */
static int
hash_run(const unsigned char *buf, uint64_t bytes, char hex[DIGEST_HEX_LEN + 1], double *wall, double *cpu)
{
	struct digest d;
	uint64_t done = 0;
	double w0 = seconds(CLOCK_MONOTONIC), c0 = seconds(CLOCK_PROCESS_CPUTIME_ID);

	digest_init(&d);
	while (done < bytes) {
		size_t off = (size_t)(done % BUF_BYTES);
		size_t k = bytes - done < PIECE ? (size_t)(bytes - done) : PIECE;

		digest_update(&d, buf + off, k);
		done += k;
	}
	if (digest_final(&d, hex) != 0) {
		return -1;
	}
	*wall = seconds(CLOCK_MONOTONIC) - w0;
	*cpu = seconds(CLOCK_PROCESS_CPUTIME_ID) - c0;
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "mb", required_argument, NULL, 'm' },
		{ "runs", required_argument, NULL, 'r' },
		{ NULL, 0, NULL, 0 },
	};
	enum digest_impl impls[2];
	double wall[2][MAX_RUNS], cpu[2][MAX_RUNS], med_wall[2], med_cpu[2];
	long long mb = 200, runs = 5;
	int nimpl = 0, c;
	unsigned char *buf;
	uint64_t x = 0x243f6a8885a308d3ULL;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'm' && parse_ll(optarg, 1, 100000, &mb) == 0) {
			continue;
		}
		if (c == 'r' && parse_ll(optarg, 1, MAX_RUNS, &runs) == 0) {
			continue;
		}
		fprintf(stderr, "usage: digest [--mb 1-100000] [--runs 1-%d]\n", MAX_RUNS);
		return 2;
	}
	impls[nimpl++] = DIGEST_IMPL_MBEDTLS;
	if (digest_impl_available(DIGEST_IMPL_SHANI)) {
		impls[nimpl++] = DIGEST_IMPL_SHANI;
	} else {
		printf("this CPU has no SHA extensions: mbedtls only\n");
	}
	buf = malloc(BUF_BYTES);
	if (buf == NULL) {
		fprintf(stderr, "digest: out of memory\n");
		return 1;
	}
	for (size_t i = 0; i < BUF_BYTES; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		buf[i] = (unsigned char)(x >> 24);
	}
	printf("SHA-256 of %lld MB in 64 KiB updates, %lld rounds; programs use: %s\n", mb, runs,
	    digest_impl_name(digest_impl_current()));
	for (int r = 0; r < runs; r++) {
		char hex[2][DIGEST_HEX_LEN + 1];

		for (int k = 0; k < nimpl; k++) {
			int i = r % 2 ? nimpl - 1 - k : k;

			if (digest_use_impl(impls[i]) != 0 ||
			    hash_run(buf, (uint64_t)mb * 1000000, hex[i], &wall[i][r], &cpu[i][r]) != 0) {
				fprintf(stderr, "digest: %s failed\n", digest_impl_name(impls[i]));
				return 1;
			}
			printf("round %d %-8s wall %8.1f MB/s  cpu %8.1f MB/s  %s\n", r + 1, digest_impl_name(impls[i]),
			    (double)mb / wall[i][r], (double)mb / cpu[i][r], hex[i]);
		}
		if (nimpl == 2 && strcmp(hex[0], hex[1]) != 0) {
			fprintf(stderr, "digest: the implementations disagree\n");
			return 1;
		}
	}
	for (int i = 0; i < nimpl; i++) {
		med_wall[i] = median(wall[i], (int)runs);
		med_cpu[i] = median(cpu[i], (int)runs);
		printf("median %-8s wall %8.1f MB/s  cpu %8.1f MB/s\n", digest_impl_name(impls[i]),
		    (double)mb / med_wall[i], (double)mb / med_cpu[i]);
	}
	if (nimpl == 2) {
		printf("sha-ni / mbedtls: %.1fx (wall), %.1fx (cpu)\n", med_wall[0] / med_wall[1], med_cpu[0] / med_cpu[1]);
	}
	free(buf);
	return 0;
}
