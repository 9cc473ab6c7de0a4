/* Unit tests of agent/options: flags, the strict config file, precedence. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/options.h"
#include "common/fs.h"
#include "common/log.h"
#include "tests/unit/tmpdir.h"

static const char *g_dir;
static char g_real[PATH_MAX];

static int
setup(void **state)
{
	(void)state;
	g_dir = tmpdir_make("agent_options");
	assert_non_null(g_dir);
	assert_non_null(realpath(g_dir, g_real));
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	assert_int_equal(tmpdir_remove(), 0);
	return 0;
}

/* Parse the NULL-terminated ARGS (argv[0] included). */
static int
parse_argv(struct agent_options *o, struct err *err, const char *const *args)
{
	char *argv[32];
	int argc = 0;

	for (; args[argc] != NULL; argc++) {
		assert_true(argc < 31);
		argv[argc] = (char *)args[argc];
	}
	argv[argc] = NULL;
	err_clear(err);
	return options_parse(argc, argv, o, err);
}

#define PARSE(o, err, ...)                                                               \
	parse_argv((o), &(err),                                                          \
	    (const char *const[]){ "tandem-agent", __VA_ARGS__, NULL })
#define PARSE0(o, err) \
	parse_argv((o), &(err), (const char *const[]){ "tandem-agent", NULL })

static const char *
write_conf(const char *name, const char *text)
{
	static char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", g_dir, name);
	assert_int_equal(fs_write_atomic(path, text, strlen(text), 0600), 0);
	return path;
}

static void
test_defaults_and_flags(void **state)
{
	struct agent_options o;
	struct err err = ERR_INIT;

	(void)state;
	memset(&o, 0, sizeof(o));
	assert_int_equal(PARSE(&o, err, "--ca", "/c/ca.crt", "--cert", "/c/a.crt",
			     "--key", "/c/a.key"),
	    0);
	assert_int_equal(o.action, OPTIONS_RUN);
	assert_int_equal(o.ready_fd, -1);
	assert_string_equal(o.cfg.listen, "0.0.0.0:8765");
	assert_string_equal(o.cfg.master_cn, "tandem-master");
	assert_string_equal(o.cfg.ca, "/c/ca.crt");
	assert_int_equal(o.cfg.log_level, LOG_LVL_INFO);
	assert_null(o.cfg.log_file);
	assert_int_equal(o.cfg.max_conns, 64);
	assert_int_equal(o.cfg.shutdown_grace_ms, 10000);
	assert_string_equal(o.config_path, "");

	/* Parsing again (getopt reset) with every flag. */
	assert_int_equal(PARSE(&o, err, "--ca", "/c/ca.crt", "--cert", "/c/a.crt",
			     "--key", "/c/a.key", "--listen", "[::1]:0", "--master-cn", "boss",
			     "--log-level", "debug", "--log-file", "/var/log/a.log", "--ready-fd",
			     "5", "-o", "shutdown_grace=250ms", "-o", "max_conns_per_ip=3"),
	    0);
	assert_string_equal(o.cfg.listen, "[::1]:0");
	assert_string_equal(o.cfg.master_cn, "boss");
	assert_int_equal(o.cfg.log_level, LOG_LVL_DEBUG);
	assert_string_equal(o.cfg.log_file, "/var/log/a.log");
	assert_int_equal(o.ready_fd, 5);
	assert_int_equal(o.cfg.shutdown_grace_ms, 250);
	assert_int_equal(o.cfg.max_conns_per_ip, 3);
	options_free(&o);
}

static void
test_config_file_precedence(void **state)
{
	struct agent_options o;
	struct err err = ERR_INIT;
	char want[PATH_MAX + 32];
	const char *conf = write_conf("agent.conf", "# test\n"
						    "ca = pki/ca.crt\n"
						    "cert = \"pki/host1.crt\"\n"
						    "key = /abs/host1.key\n"
						    "listen = 127.0.0.1:9000\n"
						    "master_cn = fleet-master # comment\n"
						    "idle_timeout = 5s\n");

	(void)state;
	memset(&o, 0, sizeof(o));
	/* The --listen flag wins over the file wherever it appears; later flags
	 * win over earlier ones. */
	assert_int_equal(PARSE(&o, err, "--listen", "127.0.0.1:0", "--config", conf,
			     "-o", "master_cn=a", "--master-cn", "b"),
	    0);
	assert_string_equal(o.config_path, conf);
	assert_string_equal(o.cfg.listen, "127.0.0.1:0");
	assert_string_equal(o.cfg.master_cn, "b");
	assert_int_equal(o.cfg.idle_timeout_ms, 5000);
	/* Relative paths resolve against the file's directory, not the cwd. */
	snprintf(want, sizeof(want), "%s/pki/ca.crt", g_real);
	assert_string_equal(o.cfg.ca, want);
	snprintf(want, sizeof(want), "%s/pki/host1.crt", g_real);
	assert_string_equal(o.cfg.cert, want);
	assert_string_equal(o.cfg.key, "/abs/host1.key");

	/* The printed configuration loads back to the same values. */
	char printed[256];
	snprintf(printed, sizeof(printed), "%s/printed.conf", g_dir);
	FILE *fp = fopen(printed, "w");
	assert_non_null(fp);
	assert_int_equal(options_print(&o, fp), 0);
	assert_int_equal(fclose(fp), 0);
	struct agent_options o2;
	memset(&o2, 0, sizeof(o2));
	assert_int_equal(PARSE(&o2, err, "--config", printed), 0);
	assert_string_equal(o2.cfg.listen, o.cfg.listen);
	assert_string_equal(o2.cfg.master_cn, "b");
	assert_string_equal(o2.cfg.ca, o.cfg.ca);
	assert_int_equal(o2.cfg.idle_timeout_ms, 5000);
	options_free(&o2);
	options_free(&o);
}

/* The updater names the renewed identity and the CRL in the environment; config and flags win. */
static void
test_env_tls_dir_and_crl(void **state)
{
	struct agent_options o;
	struct err err = ERR_INIT;
	char conf[PATH_MAX];
	const char *conf2;

	snprintf(conf, sizeof(conf), "%s", write_conf("env.conf", "ca = /pki/ca.crt\n"
								   "cert = /pki/host1.crt\n"
								   "key = /pki/host1.key\n"));
	conf2 = write_conf("env2.conf", "ca = /pki/ca.crt\n"
						   "cert = /pki/host1.crt\n"
						   "key = /pki/host1.key\n"
						   "tls_dir = /etc/own\n");

	(void)state;
	assert_int_equal(setenv(OPTIONS_ENV_TLS_DIR, "/state/tls/agent", 1), 0);
	assert_int_equal(setenv(OPTIONS_ENV_CRL, "/state/crl.der", 1), 0);
	memset(&o, 0, sizeof(o));
	assert_int_equal(PARSE(&o, err, "--config", conf), 0);
	assert_string_equal(o.cfg.tls_dir, "/state/tls/agent");
	assert_string_equal(o.cfg.crl, "/state/crl.der");
	options_free(&o);
	memset(&o, 0, sizeof(o));
	assert_int_equal(PARSE(&o, err, "--config", conf2, "-o", "crl=/flag.crl"), 0);
	assert_string_equal(o.cfg.tls_dir, "/etc/own");
	assert_string_equal(o.cfg.crl, "/flag.crl");
	options_free(&o);
	/* Empty means unset. */
	assert_int_equal(setenv(OPTIONS_ENV_TLS_DIR, "", 1), 0);
	assert_int_equal(unsetenv(OPTIONS_ENV_CRL), 0);
	memset(&o, 0, sizeof(o));
	assert_int_equal(PARSE(&o, err, "--config", conf), 0);
	assert_null(o.cfg.tls_dir);
	assert_null(o.cfg.crl);
	options_free(&o);
	assert_int_equal(unsetenv(OPTIONS_ENV_TLS_DIR), 0);
}

static void
test_config_errors(void **state)
{
	struct agent_options o;
	struct err err = ERR_INIT;
	const char *conf;

	(void)state;
	memset(&o, 0, sizeof(o));
	conf = write_conf("unknown.conf", "ca = /a\ncolor = blue\n");
	assert_int_equal(PARSE(&o, err, "--config", conf), -1);
	assert_non_null(strstr(err_msg(&err), "unknown.conf:2"));
	assert_non_null(strstr(err_msg(&err), "color"));
	assert_int_equal(err.kind, ERR_CONFIG);

	conf = write_conf("dup.conf", "ca = /a\nca = /b\n");
	assert_int_equal(PARSE(&o, err, "--config", conf), -1);
	assert_non_null(strstr(err_msg(&err), "duplicate"));

	conf = write_conf("range.conf", "ca = /a\ncert = /b\nkey = /c\nmax_conns = 0\n");
	assert_int_equal(PARSE(&o, err, "--config", conf), -1);
	assert_non_null(strstr(err_msg(&err), "max_conns"));

	conf = write_conf("listen.conf", "ca = /a\ncert = /b\nkey = /c\nlisten = nowhere\n");
	assert_int_equal(PARSE(&o, err, "--config", conf), -1);

	assert_int_equal(PARSE(&o, err, "--config", "/nonexistent.conf"), -1);
	assert_non_null(strstr(err_msg(&err), "/nonexistent.conf"));

	/* A flag's bad value is refused too. */
	assert_int_equal(PARSE(&o, err, "--ca", "/a", "--cert", "/b", "--key", "/c",
			     "--log-level", "loud"),
	    -1);
	assert_non_null(strstr(err_msg(&err), "log_level"));
	assert_int_equal(PARSE(&o, err, "--ca", "/a", "--cert", "/b", "--key", "/c",
			     "-o", "nokey"),
	    -1);
	assert_int_equal(PARSE(&o, err, "--ca", "/a", "--cert", "/b", "--key", "/c",
			     "-o", "bogus=1"),
	    -1);
	options_free(&o);
}

static void
test_required_and_actions(void **state)
{
	struct agent_options o;
	struct err err = ERR_INIT;

	(void)state;
	memset(&o, 0, sizeof(o));
	assert_int_equal(PARSE0(&o, err), -1);
	assert_non_null(strstr(err_msg(&err), "ca is not set"));
	assert_int_equal(err.kind, ERR_CONFIG);
	assert_int_equal(PARSE(&o, err, "--ca", "/a", "-n"), -1);
	assert_non_null(strstr(err_msg(&err), "cert is not set"));
	assert_int_equal(PARSE(&o, err, "--ca", "/a", "--cert", "/b", "--self-test"),
	    -1);
	assert_non_null(strstr(err_msg(&err), "key is not set"));

	/* --version, --help and --print-config need no certificates. */
	assert_int_equal(PARSE(&o, err, "--version"), 0);
	assert_int_equal(o.action, OPTIONS_VERSION);
	assert_int_equal(PARSE(&o, err, "-h"), 0);
	assert_int_equal(o.action, OPTIONS_HELP);
	assert_int_equal(PARSE(&o, err, "--print-config"), 0);
	assert_int_equal(o.action, OPTIONS_PRINT_CONFIG);
	assert_int_equal(PARSE(&o, err, "--ca", "/a", "--cert", "/b", "--key", "/c",
			     "-n"),
	    0);
	assert_int_equal(o.action, OPTIONS_CHECK);
	assert_int_equal(PARSE(&o, err, "--ca", "/a", "--cert", "/b", "--key", "/c",
			     "--self-test", "--self-test"),
	    0);
	assert_int_equal(o.action, OPTIONS_SELF_TEST);

	/* Conflicting actions, unknown flags, stray arguments. */
	assert_int_equal(PARSE(&o, err, "-n", "--self-test"), -1);
	assert_non_null(strstr(err_msg(&err), "exclude"));
	assert_int_equal(err.kind, ERR_USAGE);
	assert_int_equal(PARSE(&o, err, "--version", "--help"), -1);
	assert_int_equal(PARSE(&o, err, "--frobnicate"), -1);
	assert_non_null(strstr(err_msg(&err), "--frobnicate"));
	assert_int_equal(err.kind, ERR_USAGE);
	assert_int_equal(PARSE(&o, err, "-x"), -1);
	assert_non_null(strstr(err_msg(&err), "-x"));
	assert_int_equal(PARSE(&o, err, "--listen"), -1);
	assert_int_equal(PARSE(&o, err, "--version", "extra"), -1);
	assert_non_null(strstr(err_msg(&err), "extra"));
	assert_int_equal(err.kind, ERR_USAGE);
	assert_int_equal(err_exit_code(err.kind), 2);
	options_free(&o);
}

static void
test_ready_fd(void **state)
{
	static const char *const bad[] = { "0", "2", "-1", "x", "3x", "", "65536" };
	struct agent_options o;
	struct err err = ERR_INIT;

	(void)state;
	memset(&o, 0, sizeof(o));
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		assert_int_equal(PARSE(&o, err, "--ca", "/a", "--cert", "/b", "--key",
				     "/c", "--ready-fd", bad[i]),
		    -1);
		assert_non_null(strstr(err_msg(&err), "--ready-fd"));
	}
	assert_int_equal(PARSE(&o, err, "--ca", "/a", "--cert", "/b", "--key", "/c",
			     "--ready-fd", "1"),
	    0);
	assert_int_equal(o.ready_fd, 1);
	assert_int_equal(PARSE(&o, err, "--ca", "/a", "--cert", "/b", "--key", "/c",
			     "--ready-fd=65535"),
	    0);
	assert_int_equal(o.ready_fd, 65535);
	options_free(&o);
}

static void
test_usage(void **state)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&buf, &len);

	(void)state;
	assert_non_null(fp);
	options_usage(fp);
	assert_int_equal(fclose(fp), 0);
	/* Every flag the parser knows is documented. */
	static const char *const flags[] = { "--config", "--listen", "--ca", "--cert", "--key",
		"--master-cn", "--log-level", "--log-file", "-o KEY=VALUE", "--ready-fd", "-n",
		"--self-test", "--print-config", "--version", "--help" };
	for (size_t i = 0; i < ARRAY_LEN(flags); i++) {
		assert_non_null(strstr(buf, flags[i]));
	}
	free(buf);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults_and_flags),
		cmocka_unit_test_setup_teardown(test_config_file_precedence, setup, teardown),
		cmocka_unit_test_setup_teardown(test_config_errors, setup, teardown),
		cmocka_unit_test(test_required_and_actions),
		cmocka_unit_test(test_ready_fd),
		cmocka_unit_test(test_usage),
		cmocka_unit_test_setup_teardown(test_env_tls_dir_and_crl, setup, teardown),
	};

	log_init("test_agent_options", LOG_LVL_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
