#include "updater/metrics.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/tls.h"
#include "common/version.h"

/* Kinds and results in the order of their enums (install_kind starts at 1). */
#define METRICS_KINDS 4
#define METRICS_RESULTS (INSTALL_ALREADY_ACTIVE + 1)
/* The phases of struct install_timings, as label values. */
#define METRICS_PHASES 6

static const char *const metrics_states[] = { "ok", "degraded", "both_bad", "no_release" };

struct metrics {
	pthread_mutex_t mu;
	unsigned long long ops[METRICS_KINDS][METRICS_RESULTS];
	time_t last[METRICS_KINDS][METRICS_RESULTS];      /* 0: never */
	double duration_sum[METRICS_KINDS];               /* seconds */
	unsigned long long duration_count[METRICS_KINDS];
	int have_last;                                    /* an operation finished */
	int64_t phase_ms[METRICS_PHASES];                 /* of the last one; -1: did not run */
};

static const char *const metrics_phases[METRICS_PHASES] = {
	"upload", "extract", "preflight", "switch", "probe", "restore",
};

int
metrics_new(struct metrics **out, struct err *e)
{
	struct metrics *m = calloc(1, sizeof(*m));

	if (m == NULL) {
		return err_set(e, ERR_NOMEM, "out of memory");
	}
	if (pthread_mutex_init(&m->mu, NULL) != 0) {
		free(m);
		return err_set(e, ERR_INTERNAL, "metrics: mutex");
	}
	*out = m;
	return 0;
}

void
metrics_free(struct metrics *m)
{
	if (m == NULL) {
		return;
	}
	pthread_mutex_destroy(&m->mu);
	free(m);
}

static int
metrics_kind_index(enum install_kind k)
{
	int i = (int)k - 1;

	return i >= 0 && i < METRICS_KINDS ? i : -1;
}

void
metrics_record(void *arg, const struct install_outcome *oc)
{
	struct metrics *m = arg;
	const int64_t phases[METRICS_PHASES] = {
		oc->t.upload_ms, oc->t.extract_ms, oc->t.preflight_ms,
		oc->t.switch_ms, oc->t.probe_ms, oc->t.restore_ms,
	};
	int k = metrics_kind_index(oc->kind), r = (int)oc->result;

	if (m == NULL || k < 0 || r < 0 || r >= METRICS_RESULTS) {
		return;
	}
	pthread_mutex_lock(&m->mu);
	m->ops[k][r]++;
	m->last[k][r] = time(NULL);
	if (oc->t.total_ms >= 0) {
		m->duration_sum[k] += (double)oc->t.total_ms / 1000.0;
		m->duration_count[k]++;
	}
	memcpy(m->phase_ms, phases, sizeof(phases));
	m->have_last = 1;
	pthread_mutex_unlock(&m->mu);
}

/* A label value, escaped as the format wants (backslash, quote, newline). */
static void
metrics_label(FILE *f, const char *v)
{
	for (; v != NULL && *v != '\0'; v++) {
		if (*v == '\\' || *v == '"') {
			fputc('\\', f);
			fputc(*v, f);
		} else if (*v == '\n') {
			fputs("\\n", f);
		} else {
			fputc(*v, f);
		}
	}
}

static void
metrics_head(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static const char *
metrics_str(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int
metrics_num(const cJSON *o, const char *key, double *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	if (!cJSON_IsNumber(v)) {
		return -1;
	}
	*out = v->valuedouble;
	return 0;
}

/* A gauge from an ISO 8601 time of HEALTH's KEY; nothing when it has none. */
static void
metrics_time(FILE *f, const cJSON *health, const char *key, const char *name,
    const char *labels, const char *help)
{
	const char *s = metrics_str(health, key);
	time_t t;

	if (s == NULL || iso8601_parse(s, &t) != 0) {
		return;
	}
	metrics_head(f, name, "gauge", help);
	fprintf(f, "%s%s %lld\n", name, labels, (long long)t);
}

/* The counters of M. */
static void
metrics_ops(FILE *f, struct metrics *m)
{
	struct metrics c;
	int k, r;

	pthread_mutex_lock(&m->mu);
	memcpy(c.ops, m->ops, sizeof(c.ops));
	memcpy(c.last, m->last, sizeof(c.last));
	memcpy(c.duration_sum, m->duration_sum, sizeof(c.duration_sum));
	memcpy(c.duration_count, m->duration_count, sizeof(c.duration_count));
	memcpy(c.phase_ms, m->phase_ms, sizeof(c.phase_ms));
	c.have_last = m->have_last;
	pthread_mutex_unlock(&m->mu);

	metrics_head(f, "tandem_operations_total", "counter",
	    "Operations finished by this updater since it started, by kind and result.");
	for (k = 0; k < METRICS_KINDS; k++) {
		for (r = 0; r < METRICS_RESULTS; r++) {
			fprintf(f, "tandem_operations_total{kind=\"%s\",result=\"%s\"} %llu\n",
			    install_kind_name((enum install_kind)(k + 1)),
			    install_result_name((enum install_result)r), c.ops[k][r]);
		}
	}
	metrics_head(f, "tandem_last_operation_timestamp_seconds", "gauge",
	    "When the last operation of this kind and result finished (Unix time).");
	for (k = 0; k < METRICS_KINDS; k++) {
		for (r = 0; r < METRICS_RESULTS; r++) {
			if (c.last[k][r] != 0) {
				fprintf(f, "tandem_last_operation_timestamp_seconds{kind=\"%s\","
				    "result=\"%s\"} %lld\n", install_kind_name((enum install_kind)(k + 1)),
				    install_result_name((enum install_result)r), (long long)c.last[k][r]);
			}
		}
	}
	metrics_head(f, "tandem_operation_duration_seconds", "summary",
	    "Time from the operation lock to the outcome, by kind.");
	for (k = 0; k < METRICS_KINDS; k++) {
		const char *kn = install_kind_name((enum install_kind)(k + 1));

		fprintf(f, "tandem_operation_duration_seconds_sum{kind=\"%s\"} %.3f\n", kn,
		    c.duration_sum[k]);
		fprintf(f, "tandem_operation_duration_seconds_count{kind=\"%s\"} %llu\n", kn,
		    c.duration_count[k]);
	}
	if (c.have_last) {
		metrics_head(f, "tandem_operation_phase_duration_seconds", "gauge",
		    "Time each phase of the last operation took (phases that ran).");
		for (k = 0; k < METRICS_PHASES; k++) {
			if (c.phase_ms[k] >= 0) {
				fprintf(f, "tandem_operation_phase_duration_seconds{phase=\"%s\"} %.3f\n",
				    metrics_phases[k], (double)c.phase_ms[k] / 1000.0);
			}
		}
	}
}

/* What /health says about the releases and the updater. */
static void
metrics_releases(FILE *f, const cJSON *health)
{
	const cJSON *rels = cJSON_GetObjectItemCaseSensitive(health, "releases"), *rel;
	const char *status = metrics_str(health, "status");
	double d;

	metrics_head(f, "tandem_build_info", "gauge", "The running updater's version.");
	fputs("tandem_build_info{program=\"tandem-updater\",version=\"", f);
	metrics_label(f, tandem_version());
	fputs("\"} 1\n", f);
	metrics_head(f, "tandem_release_info", "gauge",
	    "The agent's releases on this host, by slot (active, prev).");
	cJSON_ArrayForEach(rel, rels) {
		fputs("tandem_release_info{slot=\"", f);
		metrics_label(f, metrics_str(rel, "slot"));
		fputs("\",version=\"", f);
		metrics_label(f, metrics_str(rel, "version"));
		fputs("\",sha256=\"", f);
		metrics_label(f, metrics_str(rel, "sha256"));
		fputs("\"} 1\n", f);
	}
	metrics_head(f, "tandem_updater_state", "gauge",
	    "The updater's status as /health reports it (1 for the current one).");
	for (size_t i = 0; i < ARRAY_LEN(metrics_states); i++) {
		fprintf(f, "tandem_updater_state{state=\"%s\"} %d\n", metrics_states[i],
		    status != NULL && strcmp(status, metrics_states[i]) == 0);
	}
	{
		struct tls_handshake_counts hs;
		tls_handshake_counts(&hs);
		metrics_head(f, "tandem_tls_handshakes_total", "counter",
		    "TLS handshakes completed by this updater: as a server (the master, peers) "
		    "and as a client (its agent), full or resumed from a session ticket.");
		fprintf(f,
		    "tandem_tls_handshakes_total{side=\"server\",resumed=\"false\"} %lu\n"
		    "tandem_tls_handshakes_total{side=\"server\",resumed=\"true\"} %lu\n"
		    "tandem_tls_handshakes_total{side=\"client\",resumed=\"false\"} %lu\n"
		    "tandem_tls_handshakes_total{side=\"client\",resumed=\"true\"} %lu\n",
		    hs.server_full, hs.server_resumed, hs.client_full, hs.client_resumed);
	}
	metrics_head(f, "tandem_operation_in_progress", "gauge",
	    "1 while an update, rollback or self-update runs.");
	fprintf(f, "tandem_operation_in_progress %d\n",
	    cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(health, "operation")));
	if (metrics_num(health, "security_floor", &d) == 0) {
		metrics_head(f, "tandem_security_floor", "gauge",
		    "The lowest security_version this host installs.");
		fprintf(f, "tandem_security_floor %.0f\n", d);
	}
	metrics_time(f, health, "cert_not_after", "tandem_cert_not_after_timestamp_seconds",
	    "{cert=\"updater\"}", "When the certificate expires (Unix time).");
	metrics_time(f, health, "crl_next_update", "tandem_crl_next_update_timestamp_seconds", "",
	    "When the CRL this host enforces should be replaced (Unix time).");
}

/* What /health says about the agent (its supervisor). */
static void
metrics_agent(FILE *f, const cJSON *health)
{
	const cJSON *ag = cJSON_GetObjectItemCaseSensitive(health, "agent");
	const char *state = metrics_str(ag, "state");
	double d;

	/* "starting" is an agent process that is alive but younger than running_after. */
	metrics_head(f, "tandem_agent_up", "gauge",
	    "1 while the agent process is alive (starting or running, not stopping).");
	fprintf(f, "tandem_agent_up %d\n", state != NULL && (strcmp(state, "running") == 0 ||
	    strcmp(state, "starting") == 0));
	metrics_head(f, "tandem_agent_crash_loop", "gauge",
	    "1 while the agent crashes too often to be restarted at once.");
	fprintf(f, "tandem_agent_crash_loop %d\n",
	    cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(ag, "crash_loop")));
	if (metrics_num(ag, "restarts", &d) == 0) {
		metrics_head(f, "tandem_agent_restarts_total", "counter",
		    "Restarts of the agent after it exited, since this updater started.");
		fprintf(f, "tandem_agent_restarts_total %.0f\n", d);
	}
	if (metrics_num(ag, "uptime_ms", &d) == 0) {
		metrics_head(f, "tandem_agent_uptime_seconds", "gauge",
		    "How long the running agent has been up.");
		fprintf(f, "tandem_agent_uptime_seconds %.3f\n", d / 1000.0);
	}
}

char *
metrics_render(struct metrics *m, const cJSON *health, long long disk_free, size_t *len)
{
	char *buf = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&buf, &n);
	int bad;

	if (f == NULL) {
		return NULL;
	}
	metrics_ops(f, m);
	metrics_releases(f, health);
	metrics_agent(f, health);
	if (disk_free >= 0) {
		metrics_head(f, "tandem_disk_free_bytes", "gauge",
		    "Bytes free for the updater under its install dir.");
		fprintf(f, "tandem_disk_free_bytes %lld\n", disk_free);
	}
	bad = ferror(f);
	if (fclose(f) != 0 || bad) {
		free(buf);
		return NULL;
	}
	*len = n;
	return buf;
}
