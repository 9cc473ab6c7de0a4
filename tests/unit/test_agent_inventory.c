/* Unit tests of agent/inventory: os-release parsing and the /info facts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "agent/inventory.h"
#include "common/fs.h"
#include "common/json.h"
#include "common/log.h"
#include "tests/unit/tmpdir.h"

static const char *g_dir;

static int
setup(void **state)
{
	(void)state;
	g_dir = tmpdir_make("agent_inventory");
	assert_non_null(g_dir);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	assert_int_equal(tmpdir_remove(), 0);
	return 0;
}

static int
value(const char *text, const char *key, char *out, size_t outlen)
{
	return inventory_os_release_value(text, strlen(text), key, out, outlen);
}

static void
test_os_release_values(void **state)
{
	const char *text = "# comment\n"
			   "NAME=Debian GNU/Linux\n"
			   "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n"
			   "ID='debian'\n"
			   "VERSION_CODENAME=\"say \\\"hi\\\" \\\\ \\$x\"  \r\n"
			   "EMPTY=\n"
			   "BROKEN=\"no end\n"
			   "NAME_X=other";
	char out[PATH_MAX];

	(void)state;
	assert_int_equal(value(text, "PRETTY_NAME", out, sizeof(out)), 0);
	assert_string_equal(out, "Debian GNU/Linux 12 (bookworm)");
	assert_int_equal(value(text, "NAME", out, sizeof(out)), 0);
	assert_string_equal(out, "Debian GNU/Linux");
	assert_int_equal(value(text, "ID", out, sizeof(out)), 0);
	assert_string_equal(out, "debian");
	assert_int_equal(value(text, "VERSION_CODENAME", out, sizeof(out)), 0);
	assert_string_equal(out, "say \"hi\" \\ $x");
	assert_int_equal(value(text, "EMPTY", out, sizeof(out)), -1);
	assert_int_equal(value(text, "BROKEN", out, sizeof(out)), -1);
	assert_int_equal(value(text, "NAME_X", out, sizeof(out)), 0);
	assert_string_equal(out, "other");
	assert_int_equal(value(text, "MISSING", out, sizeof(out)), -1);
	assert_int_equal(value(text, "PRETTY", out, sizeof(out)), -1);
	/* Too small for the value. */
	assert_int_equal(value(text, "ID", out, 6), -1);
	assert_int_equal(value(text, "ID", out, 7), 0);
	/* Text without a final newline, and an empty text. */
	assert_int_equal(value("A=b", "A", out, sizeof(out)), 0);
	assert_string_equal(out, "b");
	assert_int_equal(value("", "A", out, sizeof(out)), -1);
}

static void
write_file(const char *name, const char *text, char *path, size_t len)
{
	snprintf(path, len, "%s/%s", g_dir, name);
	assert_int_equal(fs_write_atomic(path, text, strlen(text), 0644), 0);
}

static void
test_collect(void **state)
{
	struct inventory inv;
	struct inventory_paths ip;
	struct utsname u;
	char osr[PATH_MAX];
	char bid[PATH_MAX];
	char host[256];

	(void)state;
	write_file("os-release", "NAME=\"Only Name\"\n", osr, sizeof(osr));
	write_file("boot_id", "01234567-89ab-cdef-0123-456789ABCDEF\n", bid, sizeof(bid));
	ip.os_release = osr;
	ip.boot_id = bid;
	assert_int_equal(inventory_collect(&ip, &inv), 0);
	assert_string_equal(inv.os, "Only Name"); /* NAME when PRETTY_NAME is absent */
	assert_string_equal(inv.boot_id, "01234567-89ab-cdef-0123-456789ABCDEF");
	assert_int_equal(uname(&u), 0);
	assert_string_equal(inv.arch, u.machine);
	assert_string_equal(inv.kernel, u.release);
	assert_int_equal(gethostname(host, sizeof(host)), 0);
	assert_string_equal(inv.hostname, host);
	assert_int_equal(inv.cpu_cores, sysconf(_SC_NPROCESSORS_ONLN));
	assert_true(inv.memory_mb > 0);

	/* Unreadable or malformed sources leave the fact empty. */
	write_file("boot_id", "not-a-uuid\n", bid, sizeof(bid));
	snprintf(osr, sizeof(osr), "%s/missing", g_dir);
	assert_int_equal(inventory_collect(&ip, &inv), 0);
	assert_string_equal(inv.boot_id, "");
	assert_string_equal(inv.os, "");
	write_file("boot_id", "01234567-89ab-cdef-0123-456789abcdeg\n", bid, sizeof(bid));
	assert_int_equal(inventory_collect(&ip, &inv), 0);
	assert_string_equal(inv.boot_id, "");

	/* System defaults. */
	assert_int_equal(inventory_collect(NULL, &inv), 0);
	assert_int_equal(strlen(inv.boot_id), 36);
}

static void
test_json(void **state)
{
	struct inventory inv;
	char *txt;
	cJSON *o;

	(void)state;
	memset(&inv, 0, sizeof(inv));
	snprintf(inv.hostname, sizeof(inv.hostname), "h1");
	snprintf(inv.arch, sizeof(inv.arch), "x86_64");
	inv.cpu_cores = 4;
	inv.memory_mb = 2048;
	o = inventory_json(&inv, "1.0");
	assert_non_null(o);
	txt = json_print_compact(o);
	assert_non_null(txt);
	assert_string_equal(txt, "{\"hostname\":\"h1\",\"os\":null,\"arch\":\"x86_64\","
				 "\"kernel_release\":null,\"cpu_cores\":4,\"memory_mb\":2048,"
				 "\"agent_version\":\"1.0\",\"boot_id\":null}");
	free(txt);
	cJSON_Delete(o);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_os_release_values),
		cmocka_unit_test_setup_teardown(test_collect, setup, teardown),
		cmocka_unit_test(test_json),
	};

	log_init("test_agent_inventory", LOG_LVL_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
