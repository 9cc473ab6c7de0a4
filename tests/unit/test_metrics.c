/*
 * Unit tests of updater/metrics: the exposition text from a /health object
 * and the operation counters (the e2e test runs promtool on the real
 * updater's answer).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/version.h"
#include "updater/metrics.h"

#define SHA_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define SHA_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

static const char HEALTH[] =
	"{\"status\":\"degraded\",\"role\":\"updater\",\"version\":\"9.9\","
	"\"releases\":[{\"slot\":\"active\",\"version\":\"1.0.1\",\"sha256\":\"" SHA_A "\"},"
	"{\"slot\":\"prev\",\"version\":\"1.0\\\"x\\\\y\\nz\",\"sha256\":\"" SHA_B "\"}],"
	"\"agent\":{\"state\":\"running\",\"pid\":42,\"crash_loop\":false,\"restarts\":3,"
	"\"uptime_ms\":1500},"
	"\"security_floor\":2,\"cert_not_after\":\"2027-01-02T03:04:05Z\","
	"\"crl_next_update\":null,\"operation\":null}";

static char *
render(struct metrics *m, const char *health_json, long long disk_free)
{
	cJSON *h = cJSON_Parse(health_json);
	size_t len = 0;
	char *out;

	assert_non_null(h);
	out = metrics_render(m, h, disk_free, &len);
	cJSON_Delete(h);
	assert_non_null(out);
	assert_int_equal(strlen(out), len);
	return out;
}

/* LINE is one whole line of TEXT. */
static int
has_line(const char *text, const char *line)
{
	size_t n = strlen(line);

	for (const char *p = text; (p = strstr(p, line)) != NULL; p++) {
		if ((p == text || p[-1] == '\n') && p[n] == '\n') {
			return 1;
		}
	}
	return 0;
}

#define assert_line(text, line) \
	do { \
		if (!has_line((text), (line))) { \
			fail_msg("no line \"%s\" in:\n%s", (line), (text)); \
		} \
	} while (0)

static void
test_health_metrics(void **state)
{
	struct metrics *m = NULL;
	struct err e = ERR_INIT;
	char build[256];
	char *t;

	(void)state;
	assert_int_equal(metrics_new(&m, &e), 0);
	t = render(m, HEALTH, 123456789);
	snprintf(build, sizeof(build),
	    "tandem_build_info{program=\"tandem-updater\",version=\"%s\"} 1", tandem_version());
	assert_line(t, build);
	assert_line(t, "tandem_release_info{slot=\"active\",version=\"1.0.1\",sha256=\"" SHA_A
	    "\"} 1");
	/* Label values are escaped: quote, backslash, newline. */
	assert_line(t, "tandem_release_info{slot=\"prev\",version=\"1.0\\\"x\\\\y\\nz\",sha256=\""
	    SHA_B "\"} 1");
	assert_line(t, "tandem_updater_state{state=\"degraded\"} 1");
	assert_line(t, "tandem_updater_state{state=\"ok\"} 0");
	assert_line(t, "tandem_updater_state{state=\"both_bad\"} 0");
	assert_line(t, "tandem_updater_state{state=\"no_release\"} 0");
	assert_line(t, "tandem_agent_up 1");
	assert_line(t, "tandem_agent_crash_loop 0");
	assert_line(t, "tandem_agent_restarts_total 3");
	assert_line(t, "tandem_agent_uptime_seconds 1.500");
	assert_line(t, "tandem_security_floor 2");
	assert_line(t, "tandem_cert_not_after_timestamp_seconds{cert=\"updater\"} 1798859045");
	assert_line(t, "tandem_operation_in_progress 0");
	assert_line(t, "tandem_disk_free_bytes 123456789");
	assert_line(t, "# TYPE tandem_operations_total counter");
	assert_line(t, "# TYPE tandem_operation_duration_seconds summary");
	/* No CRL date, no operation yet: those series are absent, the counters at 0. */
	assert_null(strstr(t, "tandem_crl_next_update_timestamp_seconds"));
	assert_null(strstr(t, "tandem_operation_phase_duration_seconds"));
	assert_null(strstr(t, "tandem_last_operation_timestamp_seconds{"));
	assert_line(t, "tandem_operations_total{kind=\"update\",result=\"updated\"} 0");
	assert_line(t, "tandem_operations_total{kind=\"rollback\",result=\"rolled_back\"} 0");
	assert_line(t, "tandem_operation_duration_seconds_count{kind=\"update\"} 0");
	/* Every line is a comment or a sample ending in a newline. */
	assert_int_equal(t[strlen(t) - 1], '\n');
	free(t);

	/* A bare object: nothing crashes, the agent is down, the state none of four. */
	t = render(m, "{\"agent\":{\"state\":\"backoff\",\"crash_loop\":true},"
	    "\"operation\":{\"id\":\"x\"},\"releases\":\"not a list\"}", -1);
	assert_line(t, "tandem_agent_up 0");
	assert_line(t, "tandem_agent_crash_loop 1");
	assert_line(t, "tandem_operation_in_progress 1");
	assert_line(t, "tandem_updater_state{state=\"ok\"} 0");
	assert_null(strstr(t, "tandem_release_info{"));
	assert_null(strstr(t, "tandem_disk_free_bytes"));
	assert_null(strstr(t, "tandem_agent_restarts_total"));
	assert_null(strstr(t, "tandem_cert_not_after"));
	free(t);
	metrics_free(m);
}

static void
test_counters(void **state)
{
	struct metrics *m = NULL;
	struct err e = ERR_INIT;
	struct install_outcome oc;
	char *t;

	(void)state;
	assert_int_equal(metrics_new(&m, &e), 0);
	install_outcome_init(&oc, INSTALL_UPDATE);
	oc.result = INSTALL_UPDATED;
	oc.t.upload_ms = 250;
	oc.t.extract_ms = 1000;
	oc.t.probe_ms = 2;
	oc.t.total_ms = 1500;
	metrics_record(m, &oc);
	metrics_record(m, &oc);
	install_outcome_free(&oc);
	install_outcome_init(&oc, INSTALL_ROLLBACK);
	oc.result = INSTALL_ROLLED_BACK;
	/* Phases that did not run are -1 (as the engine fills them). */
	oc.t.upload_ms = oc.t.extract_ms = oc.t.preflight_ms = oc.t.probe_ms = -1;
	oc.t.restore_ms = -1;
	oc.t.switch_ms = 40;
	oc.t.total_ms = 500;
	metrics_record(m, &oc);
	install_outcome_free(&oc);
	/* Out of range: ignored, never a crash. */
	install_outcome_init(&oc, (enum install_kind)99);
	metrics_record(m, &oc);
	metrics_record(NULL, &oc);
	install_outcome_free(&oc);

	t = render(m, HEALTH, -1);
	assert_line(t, "tandem_operations_total{kind=\"update\",result=\"updated\"} 2");
	assert_line(t, "tandem_operations_total{kind=\"rollback\",result=\"rolled_back\"} 1");
	assert_line(t, "tandem_operations_total{kind=\"update\",result=\"refused\"} 0");
	assert_line(t, "tandem_operation_duration_seconds_sum{kind=\"update\"} 3.000");
	assert_line(t, "tandem_operation_duration_seconds_count{kind=\"update\"} 2");
	assert_line(t, "tandem_operation_duration_seconds_count{kind=\"rollback\"} 1");
	assert_non_null(strstr(t, "tandem_last_operation_timestamp_seconds{kind=\"update\","
	    "result=\"updated\"} "));
	assert_non_null(strstr(t, "tandem_last_operation_timestamp_seconds{kind=\"rollback\","
	    "result=\"rolled_back\"} "));
	/* The phases of the last operation only (the rollback's switch). */
	assert_line(t, "tandem_operation_phase_duration_seconds{phase=\"switch\"} 0.040");
	assert_null(strstr(t, "phase=\"upload\""));
	free(t);
	metrics_free(m);
	metrics_free(NULL);
}

static void *
recorder(void *arg)
{
	struct install_outcome oc;

	install_outcome_init(&oc, INSTALL_UPDATE);
	oc.result = INSTALL_REFUSED;
	oc.t.total_ms = 1;
	for (int i = 0; i < 1000; i++) {
		metrics_record(arg, &oc);
	}
	install_outcome_free(&oc);
	return NULL;
}

/* Operations finish on connection threads while another renders. */
static void
test_threads(void **state)
{
	struct metrics *m = NULL;
	struct err e = ERR_INIT;
	pthread_t th[2];
	char *t;

	(void)state;
	assert_int_equal(metrics_new(&m, &e), 0);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(pthread_create(&th[i], NULL, recorder, m), 0);
	}
	for (int i = 0; i < 20; i++) {
		free(render(m, HEALTH, 1));
	}
	for (int i = 0; i < 2; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
	}
	t = render(m, HEALTH, 1);
	assert_line(t, "tandem_operations_total{kind=\"update\",result=\"refused\"} 2000");
	free(t);
	metrics_free(m);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_health_metrics),
		cmocka_unit_test(test_counters),
		cmocka_unit_test(test_threads),
	};

	log_init("test_metrics", LOG_LVL_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
