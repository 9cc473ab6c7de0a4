/*
 * agent_health — requests per second of GET PATH (default /health) over
 * keep-alive mutual TLS: THREADS client threads each open ONE connection
 * (common/httpc) and send requests on it back to back until SECONDS have
 * passed, reconnecting only if the server closes. Prints one line:
 * "requests=N errors=E connects=C seconds=S rate=R/s".
 *
 *   agent_health --ca CA --cert CRT --key KEY [--threads N] [--seconds S]
 *                [--path PATH] HOST:PORT
 */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/httpc.h"
#include "common/log.h"
#include "common/tls.h"
#include "common/util.h"

struct bench {
	struct tls_ctx *tls;
	struct httpc_target t;
	const char *path;
	int64_t deadline;
	atomic_long done;
	atomic_long errors;
	atomic_long connects;
	pthread_mutex_t mu;
	char first_err[256];
};

static void
note_error(struct bench *b, const char *err)
{
	atomic_fetch_add(&b->errors, 1);
	pthread_mutex_lock(&b->mu);
	if (b->first_err[0] == '\0') {
		snprintf(b->first_err, sizeof(b->first_err), "%s", err);
	}
	pthread_mutex_unlock(&b->mu);
}

static void *
worker(void *arg)
{
	struct bench *b = arg;
	struct httpc_conn *c = NULL;
	struct httpc_response resp;
	struct err err = ERR_INIT;

	memset(&resp, 0, sizeof(resp));
	while (ms_until(b->deadline) > 0) {
		if (c == NULL) {
			if (httpc_connect(b->tls, &b->t, &c, &err) != 0) {
				note_error(b, err_msg(&err));
				c = NULL;
				continue;
			}
			atomic_fetch_add(&b->connects, 1);
		}
		if (httpc_request(c, "GET", b->path, NULL, NULL, 0, &resp, &err) != 0) {
			note_error(b, err_msg(&err));
		} else if (resp.status != 200) {
			err_set(&err, ERR_PROTOCOL, "status %d", resp.status);
			note_error(b, err_msg(&err));
		} else {
			atomic_fetch_add(&b->done, 1);
		}
		httpc_response_free(&resp);
		if (!httpc_conn_usable(c)) {
			httpc_close(c);
			c = NULL;
		}
	}
	httpc_close(c);
	return NULL;
}

static void
usage(FILE *f)
{
	fprintf(f, "usage: agent_health --ca CA --cert CRT --key KEY [--threads N] [--seconds S]\n"
		   "                    [--path PATH] HOST:PORT\n");
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "ca", required_argument, NULL, 'a' },
		{ "cert", required_argument, NULL, 'c' },
		{ "key", required_argument, NULL, 'k' },
		{ "threads", required_argument, NULL, 'n' },
		{ "seconds", required_argument, NULL, 's' },
		{ "path", required_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct bench b;
	struct tls_opts to;
	char host[256];
	char port[16];
	struct err err = ERR_INIT;
	long long threads = 1;
	long long seconds = 5;
	pthread_t tids[256];
	int ch;
	int rc = 1;

	memset(&b, 0, sizeof(b));
	pthread_mutex_init(&b.mu, NULL);
	b.path = "/health";
	log_init("agent_health", LOG_LVL_WARN);
	tls_opts_init(&to);
	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'a':
			to.ca_file = optarg;
			break;
		case 'c':
			to.cert_file = optarg;
			break;
		case 'k':
			to.key_file = optarg;
			break;
		case 'n':
			if (parse_ll(optarg, 1, 256, &threads) != 0) {
				usage(stderr);
				return 2;
			}
			break;
		case 's':
			if (parse_ll(optarg, 1, 3600, &seconds) != 0) {
				usage(stderr);
				return 2;
			}
			break;
		case 'p':
			b.path = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind + 1 != argc || to.ca_file == NULL || to.cert_file == NULL ||
	    to.key_file == NULL ||
	    split_host_port(argv[optind], host, sizeof(host), port, sizeof(port)) != 0) {
		usage(stderr);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	if (tls_client_new(&to, &b.tls, &err) != 0) {
		fprintf(stderr, "agent_health: %s\n", err_msg(&err));
		return 1;
	}
	httpc_target_init(&b.t);
	b.t.host = host;
	b.t.port = port;
	int64_t start = mono_ms();
	b.deadline = start + seconds * 1000;
	long long started = 0;
	for (; started < threads; started++) {
		if (pthread_create(&tids[started], NULL, worker, &b) != 0) {
			fprintf(stderr, "agent_health: cannot start thread\n");
			break;
		}
	}
	for (long long i = 0; i < started; i++) {
		pthread_join(tids[i], NULL);
	}
	double secs = (double)(mono_ms() - start) / 1000.0;
	long done = atomic_load(&b.done);
	printf("requests=%ld errors=%ld connects=%ld seconds=%.2f rate=%.0f/s\n", done,
	    atomic_load(&b.errors), atomic_load(&b.connects), secs, (double)done / secs);
	if (b.first_err[0] != '\0') {
		fprintf(stderr, "agent_health: first error: %s\n", b.first_err);
	}
	rc = started == threads && done > 0 ? 0 : 1;
	tls_ctx_free(b.tls);
	pthread_mutex_destroy(&b.mu);
	return rc;
}
