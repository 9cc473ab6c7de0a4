/*
 * channel_hs — mTLS handshake rate of the secure channel: THREADS client
 * threads each connect (TCP + full mutual-TLS handshake through
 * common/httpc), optionally send one GET, and close, until SECONDS have
 * passed. Prints one line: "handshakes=N errors=E seconds=S rate=R/s
 * client_cpu_ms_per_hs=C" (C: this process's user+system CPU per handshake,
 * less sensitive than the rate to other load on the machine).
 *
 *   channel_hs --ca CA --cert CRT --key KEY [--threads N] [--seconds S]
 *              [--get PATH] [--resume] HOST:PORT
 *
 * Without --resume every handshake is a full one (the client context keeps no
 * sessions); with --resume the context keeps the server's session ticket, as
 * the master's does for the life of a command, so every handshake after the
 * first resumes. The line then also says how many did: "resumed=N".
 */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "common/httpc.h"
#include "common/log.h"
#include "common/tls.h"
#include "common/util.h"

struct hs_shared {
	struct tls_ctx *tls;
	struct httpc_target t;
	const char *get_path;
	int64_t deadline;
	atomic_long done;
	atomic_long errors;
	char first_err[256];
	pthread_mutex_t mu;
};

static void *
hs_thread(void *arg)
{
	struct hs_shared *sh = arg;
	struct err err = ERR_INIT;

	while (ms_until(sh->deadline) > 0) {
		struct httpc_conn *c = NULL;
		int ok = httpc_connect(sh->tls, &sh->t, &c, &err) == 0;
		if (ok && sh->get_path != NULL) {
			struct httpc_response r;
			ok = httpc_request(c, "GET", sh->get_path, NULL, NULL, 0, &r, &err) == 0 &&
			    r.status == 200;
			httpc_response_free(&r);
		}
		httpc_close(c);
		if (ok) {
			atomic_fetch_add(&sh->done, 1);
		} else {
			pthread_mutex_lock(&sh->mu);
			if (atomic_fetch_add(&sh->errors, 1) == 0) {
				snprintf(sh->first_err, sizeof(sh->first_err), "%s", err_msg(&err));
			}
			pthread_mutex_unlock(&sh->mu);
		}
	}
	return NULL;
}

static int
opt_num(const char *name, const char *v, long long max)
{
	long long x;

	if (parse_ll(v, 1, max, &x) != 0) {
		fprintf(stderr, "channel_hs: %s: expected 1..%lld\n", name, max);
		exit(2);
	}
	return (int)x;
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
		{ "get", required_argument, NULL, 'g' },
		{ "resume", no_argument, NULL, 'r' },
		{ NULL, 0, NULL, 0 },
	};
	struct tls_opts o;
	struct hs_shared sh;
	pthread_t th[64];
	char host[256];
	char port[8];
	struct err err = ERR_INIT;
	int threads = 1;
	int seconds = 5;
	int64_t t0;
	int ch;

	log_init("channel_hs", LOG_LVL_WARN);
	signal(SIGPIPE, SIG_IGN);
	tls_opts_init(&o);
	o.session_tickets = 0;
	memset(&sh, 0, sizeof(sh));
	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 'a':
			o.ca_file = optarg;
			break;
		case 'c':
			o.cert_file = optarg;
			break;
		case 'k':
			o.key_file = optarg;
			break;
		case 'n':
			threads = opt_num("--threads", optarg, (long long)ARRAY_LEN(th));
			break;
		case 's':
			seconds = opt_num("--seconds", optarg, 3600);
			break;
		case 'g':
			sh.get_path = optarg;
			break;
		case 'r':
			o.session_tickets = 1;
			break;
		default:
			return 2;
		}
	}
	if (argc - optind != 1 || o.ca_file == NULL || o.cert_file == NULL || o.key_file == NULL ||
	    split_host_port(argv[optind], host, sizeof(host), port, sizeof(port)) != 0) {
		fprintf(stderr, "usage: channel_hs --ca CA --cert CRT --key KEY [--threads N] "
				"[--seconds S] [--get PATH] [--resume] HOST:PORT\n");
		return 2;
	}
	if (tls_client_new(&o, &sh.tls, &err) != 0) {
		fprintf(stderr, "channel_hs: %s\n", err_msg(&err));
		return 1;
	}
	httpc_target_init(&sh.t);
	sh.t.host = host;
	sh.t.port = port;
	atomic_init(&sh.done, 0);
	atomic_init(&sh.errors, 0);
	pthread_mutex_init(&sh.mu, NULL);
	t0 = mono_ms();
	sh.deadline = t0 + (int64_t)seconds * 1000;
	for (int i = 0; i < threads; i++) {
		if (pthread_create(&th[i], NULL, hs_thread, &sh) != 0) {
			fprintf(stderr, "channel_hs: pthread_create failed\n");
			return 1;
		}
	}
	for (int i = 0; i < threads; i++) {
		pthread_join(th[i], NULL);
	}
	double el = (double)(mono_ms() - t0) / 1000.0;
	long done = atomic_load(&sh.done);
	long errors = atomic_load(&sh.errors);
	struct rusage ru;
	double cpu_ms = 0;
	if (getrusage(RUSAGE_SELF, &ru) == 0) {
		cpu_ms = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000.0 +
		    (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000.0;
	}
	struct tls_handshake_counts hs;
	tls_handshake_counts(&hs);
	printf("handshakes=%ld errors=%ld seconds=%.2f rate=%.1f/s client_cpu_ms_per_hs=%.3f "
	       "resumed=%lu\n",
	    done, errors, el, (double)done / el, done > 0 ? cpu_ms / (double)done : 0.0,
	    hs.client_resumed);
	if (errors > 0) {
		fprintf(stderr, "channel_hs: first error: %s\n", sh.first_err);
	}
	pthread_mutex_destroy(&sh.mu);
	tls_ctx_free(sh.tls);
	return errors > 0 ? 1 : 0;
}
