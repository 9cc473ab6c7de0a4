/*
 * tandem-testc — a command-line client over common/httpc for the end-to-end
 * tests and the channel benchmarks. Not installed.
 *
 *   tandem-testc --ca CA [--cert CRT --key KEY] [--pin HEX64] [--sni NAME]
 *                [--timeout-ms N] [-X METHOD]
 *                [--data-file FILE | --multipart-file FILE --field NAME=VALUE ...]
 *                [--file-field NAME] [--repeat N] [--header "Name: value"]...
 *                HOST:PORT PATH
 *
 * Connects once and sends the request N times on that connection. Prints
 * "status=NNN" and the body of the last response on stdout. Exit status: 0
 * when a complete response was received (whatever its status), 1 on
 * connection, TLS, pin or timeout errors (the reason on one stderr line), 2
 * on usage errors.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/httpc.h"
#include "common/log.h"
#include "common/tls.h"
#include "common/util.h"

#define TESTC_MAX_HEADERS 32
#define TESTC_MAX_FIELDS 16

struct testc {
	struct tls_opts tls;
	const char *pin;
	const char *sni;
	int timeout_ms;
	const char *method;
	const char *data_file;
	const char *mp_file;
	const char *file_field;
	struct httpc_form_field fields[TESTC_MAX_FIELDS];
	size_t nfields;
	const char *headers[TESTC_MAX_HEADERS + 1];
	size_t nheaders;
	long long repeat;
	char host[256];
	char port[8];
	const char *path;
};

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: tandem-testc --ca CA [--cert CRT --key KEY] [--pin HEX64] [--sni NAME]\n"
	    "                    [--timeout-ms N] [-X METHOD]\n"
	    "                    [--data-file FILE | --multipart-file FILE --field NAME=VALUE ...]\n"
	    "                    [--file-field NAME] [--repeat N] [--header \"Name: value\"]...\n"
	    "                    HOST:PORT PATH\n"
	    "\n"
	    "Connects once (HOST: name, IPv4, ::1 or [::1]) and sends the request N times\n"
	    "on that keep-alive connection; prints \"status=NNN\" and the body of the last\n"
	    "response. --data-file streams a raw body, --multipart-file a multipart form\n"
	    "(file part named by --file-field, default \"tarball\"; text parts by --field).\n"
	    "Exit: 0 complete response (any status), 1 connection/TLS/pin/timeout error,\n"
	    "2 usage error.\n");
}

static void __attribute__((noreturn, format(printf, 1, 2)))
usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "tandem-testc: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	usage(stderr);
	exit(2);
}

/* "HOST:PORT", "[V6]:PORT" or a bare "::1:PORT" (the last colon ends the host). */
static int
parse_target(const char *in, struct testc *tc)
{
	const char *colon;
	size_t hl;
	long long p;

	if (in[0] == '[' || strchr(in, ':') == strrchr(in, ':')) {
		return split_host_port(in, tc->host, sizeof(tc->host), tc->port, sizeof(tc->port));
	}
	colon = strrchr(in, ':');
	hl = (size_t)(colon - in);
	if (hl == 0 || hl >= sizeof(tc->host) || parse_ll(colon + 1, 1, 65535, &p) != 0 ||
	    strspn(colon + 1, "0123456789") != strlen(colon + 1)) {
		return -1;
	}
	memcpy(tc->host, in, hl);
	tc->host[hl] = '\0';
	snprintf(tc->port, sizeof(tc->port), "%lld", p);
	return 0;
}

static void
parse_args(int argc, char **argv, struct testc *tc)
{
	static const struct option longopts[] = {
		{ "ca", required_argument, NULL, 'a' },
		{ "cert", required_argument, NULL, 'c' },
		{ "key", required_argument, NULL, 'k' },
		{ "pin", required_argument, NULL, 'p' },
		{ "sni", required_argument, NULL, 's' },
		{ "timeout-ms", required_argument, NULL, 't' },
		{ "data-file", required_argument, NULL, 'd' },
		{ "multipart-file", required_argument, NULL, 'm' },
		{ "field", required_argument, NULL, 'f' },
		{ "file-field", required_argument, NULL, 'F' },
		{ "repeat", required_argument, NULL, 'r' },
		{ "header", required_argument, NULL, 'H' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	long long v;
	int ch;

	while ((ch = getopt_long(argc, argv, "X:H:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'a':
			tc->tls.ca_file = optarg;
			break;
		case 'c':
			tc->tls.cert_file = optarg;
			break;
		case 'k':
			tc->tls.key_file = optarg;
			break;
		case 'p':
			if (!is_hex_len(optarg, TLS_FP_HEX_LEN)) {
				usage_error("--pin: expected 64 hex digits, got \"%s\"", optarg);
			}
			tc->pin = optarg;
			break;
		case 's':
			tc->sni = optarg;
			break;
		case 't':
			if (parse_ll(optarg, 1, 3600000, &v) != 0) {
				usage_error("--timeout-ms: expected 1..3600000, got \"%s\"", optarg);
			}
			tc->timeout_ms = (int)v;
			break;
		case 'X':
			tc->method = optarg;
			break;
		case 'd':
			tc->data_file = optarg;
			break;
		case 'm':
			tc->mp_file = optarg;
			break;
		case 'f': {
			char *eq = strchr(optarg, '=');
			if (eq == NULL || eq == optarg) {
				usage_error("--field: expected NAME=VALUE, got \"%s\"", optarg);
			}
			if (tc->nfields >= TESTC_MAX_FIELDS) {
				usage_error("--field: at most %d fields", TESTC_MAX_FIELDS);
			}
			*eq = '\0';
			tc->fields[tc->nfields].name = optarg;
			tc->fields[tc->nfields].value = eq + 1;
			tc->nfields++;
			break;
		}
		case 'F':
			tc->file_field = optarg;
			break;
		case 'r':
			if (parse_ll(optarg, 1, 1000000, &tc->repeat) != 0) {
				usage_error("--repeat: expected 1..1000000, got \"%s\"", optarg);
			}
			break;
		case 'H':
			if (strpbrk(optarg, "\r\n") != NULL || strchr(optarg, ':') == NULL) {
				usage_error("--header: expected one \"Name: value\" line");
			}
			if (tc->nheaders >= TESTC_MAX_HEADERS) {
				usage_error("--header: at most %d headers", TESTC_MAX_HEADERS);
			}
			tc->headers[tc->nheaders++] = optarg;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			exit(2);
		}
	}
	if (argc - optind != 2) {
		usage_error("expected HOST:PORT and PATH");
	}
	if (tc->tls.ca_file == NULL) {
		usage_error("--ca is required");
	}
	if ((tc->tls.cert_file == NULL) != (tc->tls.key_file == NULL)) {
		usage_error("--cert and --key go together");
	}
	if (tc->data_file != NULL && tc->mp_file != NULL) {
		usage_error("--data-file and --multipart-file exclude each other");
	}
	if (tc->mp_file == NULL && (tc->nfields > 0 || tc->file_field != NULL)) {
		usage_error("--field and --file-field need --multipart-file");
	}
	if (tc->mp_file != NULL && tc->method != NULL && strcmp(tc->method, "POST") != 0) {
		usage_error("a multipart form is always sent with POST");
	}
	if (parse_target(argv[optind], tc) != 0) {
		usage_error("bad HOST:PORT \"%s\"", argv[optind]);
	}
	tc->path = argv[optind + 1];
	if (tc->method == NULL) {
		tc->method = tc->data_file != NULL || tc->mp_file != NULL ? "POST" : "GET";
	}
	if (tc->file_field == NULL) {
		tc->file_field = "tarball";
	}
}

/* Open FILE for a request body; its size into *SIZE. Usage error when unusable. */
static int
open_body(const char *file, uint64_t *size)
{
	struct stat st;
	int fd = open(file, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		usage_error("%s: %s", file, strerror(errno));
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		usage_error("%s: not a regular file", file);
	}
	*size = (uint64_t)st.st_size;
	return fd;
}

static int
has_header(const struct testc *tc, const char *name)
{
	size_t n = strlen(name);

	for (size_t i = 0; i < tc->nheaders; i++) {
		if (strncasecmp(tc->headers[i], name, n) == 0 && tc->headers[i][n] == ':') {
			return 1;
		}
	}
	return 0;
}

int
main(int argc, char **argv)
{
	struct testc tc;
	struct httpc_target t;
	struct tls_ctx *tls = NULL;
	struct httpc_conn *conn = NULL;
	struct httpc_response resp;
	struct err e = ERR_INIT;
	const char *base;
	uint64_t size = 0;
	int fd = -1;
	int rc = 1;

	memset(&tc, 0, sizeof(tc));
	memset(&resp, 0, sizeof(resp));
	tls_opts_init(&tc.tls);
	tc.repeat = 1;
	log_init("tandem-testc", LOG_LVL_WARN);
	signal(SIGPIPE, SIG_IGN);
	parse_args(argc, argv, &tc);
	if (tc.data_file != NULL) {
		fd = open_body(tc.data_file, &size);
	} else if (tc.mp_file != NULL) {
		fd = open_body(tc.mp_file, &size);
	}

	if (tls_client_new(&tc.tls, &tls, &e) != 0) {
		fprintf(stderr, "tandem-testc: %s\n", err_msg(&e));
		goto out;
	}
	httpc_target_init(&t);
	t.host = tc.host;
	t.port = tc.port;
	t.pin_fp = tc.pin;
	t.sni_hostname = tc.sni;
	t.connect_timeout_ms = tc.timeout_ms;
	t.io_timeout_ms = tc.timeout_ms;
	if (httpc_connect(tls, &t, &conn, &e) != 0) {
		fprintf(stderr, "tandem-testc: %s\n", err_msg(&e));
		goto out;
	}
	base = tc.mp_file != NULL ? strrchr(tc.mp_file, '/') : NULL;
	base = base != NULL ? base + 1 : tc.mp_file;
	for (long long i = 1; i <= tc.repeat; i++) {
		int r;
		httpc_response_free(&resp);
		if (fd >= 0 && lseek(fd, 0, SEEK_SET) != 0) {
			fprintf(stderr, "tandem-testc: rewind body file: %s\n", strerror(errno));
			goto out;
		}
		if (tc.mp_file != NULL) {
			r = httpc_upload_multipart(conn, tc.path, tc.fields, tc.nfields, tc.file_field,
			    base, fd, size, NULL, NULL, &resp, &e);
		} else if (tc.data_file != NULL) {
			r = httpc_request_fd(conn, tc.method, tc.path, tc.headers,
			    has_header(&tc, "content-type") ? NULL : "application/octet-stream", fd, size,
			    NULL, NULL, &resp, &e);
		} else {
			r = httpc_request(conn, tc.method, tc.path, tc.headers, NULL, 0, &resp, &e);
		}
		if (r != 0) {
			if (tc.repeat > 1) {
				fprintf(stderr, "tandem-testc: request %lld of %lld: %s\n", i, tc.repeat,
				    err_msg(&e));
			} else {
				fprintf(stderr, "tandem-testc: %s\n", err_msg(&e));
			}
			goto out;
		}
		if (i < tc.repeat && !httpc_conn_usable(conn)) {
			fprintf(stderr,
			    "tandem-testc: connection not reusable after request %lld of %lld "
			    "(status %d)\n",
			    i, tc.repeat, resp.status);
			goto out;
		}
	}
	printf("status=%d\n", resp.status);
	if (resp.body_len > 0 && fwrite(resp.body, 1, resp.body_len, stdout) != resp.body_len) {
		fprintf(stderr, "tandem-testc: write output: %s\n", strerror(errno));
		goto out;
	}
	if (fflush(stdout) != 0) {
		fprintf(stderr, "tandem-testc: write output: %s\n", strerror(errno));
		goto out;
	}
	rc = 0;
out:
	httpc_response_free(&resp);
	httpc_close(conn);
	tls_ctx_free(tls);
	if (fd >= 0) {
		close(fd);
	}
	return rc;
}
