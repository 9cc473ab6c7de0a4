#include "master/rollout_plan.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cJSON.h"
#include "common/json.h"
#include "common/digest.h"

#define ZONEINFO_DIR "/usr/share/zoneinfo"
#define DAY_S (24 * 3600)

void
rollout_spec_defaults(struct rollout_spec *spec)
{
	/* ROLLOUT_DEFAULT_WAVES, "10%,50%,100%" (the unit test checks they agree). */
	static const struct rollout_amount waves[] = { { 1, 10 }, { 1, 50 }, { 1, 100 } };

	memset(spec, 0, sizeof(*spec));
	spec->canary.value = 1;
	memcpy(spec->waves, waves, sizeof(waves));
	spec->n_waves = ARRAY_LEN(waves);
	spec->max_failures.value = 0;
	spec->min_sample = ROLLOUT_DEFAULT_MIN_SAMPLE;
	spec->on_halt = ROLLOUT_HALT_PAUSE;
	spec->parallel = 8;
	spec->timeout_s = 900;
	spec->retries = ROLLOUT_DEFAULT_RETRIES;
}

/* ---- amounts ---- */

int
rollout_amount_parse(const char *s, long long max, struct rollout_amount *out, struct err *e)
{
	char buf[32];
	size_t n = s != NULL ? strlen(s) : 0;
	struct rollout_amount a = { 0, 0 };

	if (n == 0 || n >= sizeof(buf)) {
		return err_set(e, ERR_USAGE, "'%.40s': expected a number of hosts or a percentage "
		    "(e.g. 5 or 10%%)", s != NULL ? s : "");
	}
	memcpy(buf, s, n + 1);
	if (buf[n - 1] == '%') {
		buf[n - 1] = '\0';
		a.percent = 1;
		max = 100;
	}
	if (!isdigit((unsigned char)buf[0]) || parse_ll(buf, 0, max, &a.value) != 0) {
		return err_set(e, ERR_USAGE, "'%s': expected %s", s,
		    a.percent ? "a percentage 0%..100%" : "a number of hosts or a percentage");
	}
	*out = a;
	return 0;
}

size_t
rollout_amount_of(const struct rollout_amount *a, size_t total)
{
	unsigned long long v;

	if (a->percent) {
		/* ceil(value% of total) without floating point. */
		v = ((unsigned long long)a->value * total + 99) / 100;
	} else {
		v = (unsigned long long)a->value;
	}
	return v > total ? total : (size_t)v;
}

void
rollout_amount_format(const struct rollout_amount *a, char *buf, size_t len)
{
	snprintf(buf, len, "%lld%s", a->value, a->percent ? "%" : "");
}

/* ---- durations ---- */

int
rollout_duration_parse(const char *s, int64_t *ms, struct err *e)
{
	static const struct {
		const char *unit;
		int64_t ms;
	} units[] = {
		/* "ms" before "m": longest match first. */
		{ "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 }, { "d", 86400000 },
	};
	const char *p = s;
	int64_t total = 0;
	int parts = 0;

	if (s == NULL || *s == '\0') {
		return err_set(e, ERR_USAGE, "empty duration: use e.g. 30s, 10m, 1h30m");
	}
	while (*p != '\0') {
		unsigned long long v = 0;
		size_t digits = 0, u;

		while (isdigit((unsigned char)*p)) {
			if (digits++ >= 12) {
				return err_set(e, ERR_USAGE, "duration '%.40s' is too long", s);
			}
			v = v * 10 + (unsigned long long)(*p++ - '0');
		}
		if (digits == 0) {
			return err_set(e, ERR_USAGE, "duration '%.40s': expected a number at '%.10s' "
			    "(use e.g. 30s, 10m, 1h30m)", s, p);
		}
		for (u = 0; u < ARRAY_LEN(units); u++) {
			size_t ul = strlen(units[u].unit);
			if (strncmp(p, units[u].unit, ul) == 0 &&
			    !(ul == 1 && units[u].unit[0] == 'm' && p[1] == 's')) {
				break;
			}
		}
		if (u == ARRAY_LEN(units)) {
			return err_set(e, ERR_USAGE, "duration '%.40s': a unit (ms, s, m, h, d) must "
			    "follow every number", s);
		}
		if (v > (unsigned long long)(ROLLOUT_MAX_DURATION_MS / units[u].ms)) {
			return err_set(e, ERR_USAGE, "duration '%.40s' is longer than 30 days", s);
		}
		total += (int64_t)v * units[u].ms;
		if (total > ROLLOUT_MAX_DURATION_MS) {
			return err_set(e, ERR_USAGE, "duration '%.40s' is longer than 30 days", s);
		}
		p += strlen(units[u].unit);
		parts++;
	}
	*ms = total;
	return 0;
}

void
rollout_duration_format(int64_t ms, char *buf, size_t len)
{
	static const struct {
		const char *unit;
		int64_t ms;
	} units[] = {
		{ "d", 86400000 }, { "h", 3600000 }, { "m", 60000 }, { "s", 1000 }, { "ms", 1 },
	};
	size_t off = 0;

	if (len == 0) {
		return;
	}
	buf[0] = '\0';
	if (ms <= 0) {
		snprintf(buf, len, "0s");
		return;
	}
	for (size_t u = 0; u < ARRAY_LEN(units) && ms > 0; u++) {
		if (ms >= units[u].ms) {
			int n = snprintf(buf + off, len - off, "%lld%s", (long long)(ms / units[u].ms),
			    units[u].unit);
			if (n < 0 || (size_t)n >= len - off) {
				return;
			}
			off += (size_t)n;
			ms %= units[u].ms;
		}
	}
}

/* ---- waves ---- */

int
rollout_waves_parse(const char *s, struct rollout_spec *spec, struct err *e)
{
	struct rollout_amount waves[ROLLOUT_MAX_WAVES];
	char item[32];
	const char *p = s, *comma;
	size_t n = 0, len;

	if (s == NULL || *s == '\0') {
		return err_set(e, ERR_USAGE, "--waves needs a list such as 10%%,50%%,100%%");
	}
	for (;;) {
		comma = strchr(p, ',');
		len = comma != NULL ? (size_t)(comma - p) : strlen(p);
		if (n == ROLLOUT_MAX_WAVES) {
			return err_set(e, ERR_USAGE, "--waves: at most %d waves", ROLLOUT_MAX_WAVES);
		}
		if (len == 0 || len >= sizeof(item)) {
			return err_set(e, ERR_USAGE, "--waves '%.60s': an empty or overlong item", s);
		}
		memcpy(item, p, len);
		item[len] = '\0';
		if (rollout_amount_parse(item, LLONG_MAX / 2, &waves[n], e) != 0) {
			return err_prefix(e, "--waves");
		}
		if (!waves[n].percent && waves[n].value == 0) {
			return err_set(e, ERR_USAGE, "--waves: a wave of 0 hosts");
		}
		n++;
		if (comma == NULL) {
			break;
		}
		p = comma + 1;
	}
	memcpy(spec->waves, waves, n * sizeof(waves[0]));
	spec->n_waves = n;
	spec->have_wave_size = 0;
	return 0;
}

size_t
rollout_plan_waves(const struct rollout_spec *spec, size_t n, size_t ends[ROLLOUT_MAX_PLAN_WAVES])
{
	size_t k = 0, prev = 0, t, step;

	if (n == 0) {
		return 0;
	}
	t = rollout_amount_of(&spec->canary, n);
	if (t > 0) {
		ends[k++] = t;
		prev = t;
	}
	if (spec->have_wave_size) {
		step = rollout_amount_of(&spec->wave_size, n);
		if (step == 0) {
			step = 1;
		}
		/* Equal steps; the last wave takes whatever is left when out of slots. */
		while (prev < n && k < ROLLOUT_MAX_PLAN_WAVES - 1) {
			prev = n - prev > step ? prev + step : n;
			ends[k++] = prev;
		}
	} else {
		for (size_t i = 0; i < spec->n_waves && prev < n; i++) {
			t = rollout_amount_of(&spec->waves[i], n);
			if (t > prev) {
				ends[k++] = t;
				prev = t;
			}
		}
	}
	if (prev < n) {
		ends[k++] = n;
	}
	return k;
}

void
rollout_order_key(const char *id, const char *host, char out[65])
{
	char buf[ROLLOUT_ID_LEN + 1 + 256];
	int n = snprintf(buf, sizeof(buf), "%s%s", id, host);

	if (n < 0 || (size_t)n >= sizeof(buf)) {
		n = (int)sizeof(buf) - 1;
	}
	if (digest_buf(buf, (size_t)n, out) != 0) {
		/* SHA-256 of a small buffer does not fail; an order by name is still stable. */
		snprintf(out, 65, "%.64s", host);
	}
}

int
rollout_threshold_exceeded(const struct rollout_spec *spec, size_t total, size_t attempted,
    size_t failed, size_t canary_failed, char *why, size_t len)
{
	size_t sample;

	if (canary_failed > 0) {
		snprintf(why, len, "the canary failed (%zu of %zu canary host%s)", canary_failed,
		    rollout_amount_of(&spec->canary, total),
		    rollout_amount_of(&spec->canary, total) == 1 ? "" : "s");
		return 1;
	}
	if (!spec->max_failures.percent) {
		if ((long long)failed > spec->max_failures.value) {
			snprintf(why, len, "%zu failure%s, more than the %lld allowed", failed,
			    failed == 1 ? "" : "s", spec->max_failures.value);
			return 1;
		}
		return 0;
	}
	sample = spec->min_sample > 0 ? (size_t)spec->min_sample : 1;
	if (sample > total) {
		sample = total;
	}
	if (attempted >= sample && attempted > 0 &&
	    (unsigned long long)failed * 100 > (unsigned long long)spec->max_failures.value * attempted) {
		snprintf(why, len, "%zu of %zu attempted hosts failed (%llu%%), more than the %lld%% "
		    "allowed", failed, attempted, (unsigned long long)failed * 100 / attempted,
		    spec->max_failures.value);
		return 1;
	}
	return 0;
}

/* ---- windows ---- */

static const char *const day_names[] = { "sun", "mon", "tue", "wed", "thu", "fri", "sat" };

static int
day_index(const char *s, size_t len)
{
	if (len != 3) {
		return -1;
	}
	for (int i = 0; i < 7; i++) {
		if (strncasecmp(s, day_names[i], 3) == 0) {
			return i;
		}
	}
	return -1;
}

/* "Mon-Fri", "Sat,Sun", "Mon,Wed-Fri" (a range may wrap: "Fri-Mon"). */
static int
days_parse(const char *s, size_t len, unsigned *out)
{
	unsigned days = 0;
	size_t i = 0;

	while (i < len) {
		size_t j = i;
		int a, b;

		while (j < len && s[j] != ',' && s[j] != '-') {
			j++;
		}
		a = day_index(s + i, j - i);
		if (a < 0) {
			return -1;
		}
		b = a;
		if (j < len && s[j] == '-') {
			size_t k = j + 1;
			while (k < len && s[k] != ',') {
				k++;
			}
			b = day_index(s + j + 1, k - j - 1);
			if (b < 0) {
				return -1;
			}
			j = k;
		}
		for (int d = a;; d = (d + 1) % 7) {
			days |= 1u << d;
			if (d == b) {
				break;
			}
		}
		if (j < len) {
			j++; /* the comma */
			if (j == len) {
				return -1;
			}
		}
		i = j;
	}
	*out = days;
	return days != 0 ? 0 : -1;
}

/* "HH:MM" exactly. */
static int
hhmm_parse(const char *s, int *min)
{
	if (!isdigit((unsigned char)s[0]) || !isdigit((unsigned char)s[1]) || s[2] != ':' ||
	    !isdigit((unsigned char)s[3]) || !isdigit((unsigned char)s[4])) {
		return -1;
	}
	int h = (s[0] - '0') * 10 + (s[1] - '0');
	int m = (s[3] - '0') * 10 + (s[4] - '0');
	if (h > 23 || m > 59) {
		return -1;
	}
	*min = h * 60 + m;
	return 0;
}

static int
zone_file_is_tzif(const char *path)
{
	char magic[4];
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	int ok;

	if (fd < 0) {
		return 0;
	}
	ok = read(fd, magic, sizeof(magic)) == (ssize_t)sizeof(magic) &&
	    memcmp(magic, "TZif", sizeof(magic)) == 0;
	close(fd);
	return ok;
}

/* "UTC", "UTC+02:00", "+02:00", "-05:30", or a zoneinfo name. */
static int
zone_parse(const char *s, struct rollout_window *w, struct err *e)
{
	const char *off = s;
	char path[sizeof(ZONEINFO_DIR) + sizeof(w->zone) + 2];
	struct stat st;
	int hm;

	if (strlen(s) >= sizeof(w->zone)) {
		return err_set(e, ERR_USAGE, "time zone '%.40s...' is too long", s);
	}
	snprintf(w->zone, sizeof(w->zone), "%s", s);
	w->named_zone = 0;
	w->offset_min = 0;
	if (strcmp(s, "UTC") == 0 || strcmp(s, "Z") == 0) {
		return 0;
	}
	if (strncmp(s, "UTC", 3) == 0) {
		off = s + 3;
	}
	if ((off[0] == '+' || off[0] == '-') && strlen(off) == 6) {
		if (hhmm_parse(off + 1, &hm) != 0 || hm > 14 * 60) {
			return err_set(e, ERR_USAGE, "time zone offset '%s': use +HH:MM (at most 14:00)",
			    s);
		}
		w->offset_min = off[0] == '-' ? -hm : hm;
		return 0;
	}
	/* A zone database name: letters, digits, '_', '+', '-', '/'; no "..". */
	for (const char *p = s; *p != '\0'; p++) {
		if (!(isalnum((unsigned char)*p) || *p == '_' || *p == '+' || *p == '-' || *p == '/')) {
			return err_set(e, ERR_USAGE, "time zone '%s': use UTC, +HH:MM or a name "
			    "such as Europe/Berlin", s);
		}
	}
	if (!isalpha((unsigned char)s[0]) || strstr(s, "//") != NULL || s[strlen(s) - 1] == '/') {
		return err_set(e, ERR_USAGE, "time zone '%s': use UTC, +HH:MM or a name such as "
		    "Europe/Berlin", s);
	}
	snprintf(path, sizeof(path), "%s/%s", ZONEINFO_DIR, s);
	if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
		return err_set(e, ERR_USAGE, "time zone '%s' is not in %s (install tzdata, or use "
		    "UTC or +HH:MM)", s, ZONEINFO_DIR);
	}
	/*
	 * The directory also holds data files without a dot (leapseconds);
	 * glibc reads such a TZ as UTC without a word, so only a compiled
	 * zone (magic "TZif") is one.
	 */
	if (!zone_file_is_tzif(path)) {
		return err_set(e, ERR_USAGE, "time zone '%s': %s/%s is not a time zone file", s,
		    ZONEINFO_DIR, s);
	}
	w->named_zone = 1;
	return 0;
}

int
rollout_window_parse(const char *s, struct rollout_window *w, struct err *e)
{
	struct rollout_window out;
	const char *p, *sp1, *sp2, *times, *zone;
	char tbuf[16];
	size_t len;

	memset(&out, 0, sizeof(out));
	if (s == NULL || *s == '\0' || strlen(s) > ROLLOUT_WINDOW_TEXT_MAX) {
		return err_set(e, ERR_USAGE, "--window: expected '[DAYS ]HH:MM-HH:MM ZONE', e.g. "
		    "'Mon-Fri 01:00-04:00 UTC'");
	}
	sp1 = strchr(s, ' ');
	if (sp1 == NULL) {
		return err_set(e, ERR_USAGE, "--window '%s': the time zone is missing (write it "
		    "explicitly, e.g. '01:00-04:00 UTC')", s);
	}
	sp2 = strchr(sp1 + 1, ' ');
	if (sp2 != NULL) {
		/* DAYS TIMES ZONE */
		if (days_parse(s, (size_t)(sp1 - s), &out.days) != 0) {
			return err_set(e, ERR_USAGE, "--window '%s': days must be like Mon-Fri or "
			    "Sat,Sun", s);
		}
		times = sp1 + 1;
		len = (size_t)(sp2 - times);
		zone = sp2 + 1;
	} else {
		out.days = 0x7f;
		times = s;
		len = (size_t)(sp1 - s);
		zone = sp1 + 1;
	}
	if (len != 11 || times[5] != '-') {
		return err_set(e, ERR_USAGE, "--window '%s': times must be HH:MM-HH:MM", s);
	}
	memcpy(tbuf, times, len);
	tbuf[len] = '\0';
	if (hhmm_parse(tbuf, &out.start_min) != 0 || hhmm_parse(tbuf + 6, &out.end_min) != 0) {
		return err_set(e, ERR_USAGE, "--window '%s': times must be HH:MM-HH:MM (00:00-23:59)",
		    s);
	}
	if (out.start_min == out.end_min) {
		return err_set(e, ERR_USAGE, "--window '%s': start and end are equal (an empty or "
		    "a full-day window; leave --window out for always)", s);
	}
	p = zone;
	if (*p == '\0' || strchr(p, ' ') != NULL) {
		return err_set(e, ERR_USAGE, "--window '%s': one time zone at the end", s);
	}
	if (zone_parse(p, &out, e) != 0) {
		return err_prefix(e, "--window");
	}
	*w = out;
	return 0;
}

/*
 * Local broken-down time of T in W's zone, and back. A named zone goes
 * through TZ: the master sets nothing else that reads it, and the lock keeps
 * two callers from interleaving their TZ switches.
 */
static pthread_mutex_t tz_lock = PTHREAD_MUTEX_INITIALIZER;

static int
zone_localtime(const struct rollout_window *w, time_t t, struct tm *tm)
{
	int rc = 0;

	if (!w->named_zone) {
		t += (time_t)w->offset_min * 60;
		return gmtime_r(&t, tm) != NULL ? 0 : -1;
	}
	pthread_mutex_lock(&tz_lock);
	{
		char *old = getenv("TZ") != NULL ? strdup(getenv("TZ")) : NULL;
		if (setenv("TZ", w->zone, 1) != 0) {
			rc = -1;
		} else {
			tzset();
			rc = localtime_r(&t, tm) != NULL ? 0 : -1;
		}
		if (old != NULL) {
			(void)setenv("TZ", old, 1);
		} else {
			(void)unsetenv("TZ");
		}
		tzset();
		free(old);
	}
	pthread_mutex_unlock(&tz_lock);
	return rc;
}

static time_t
zone_mktime(const struct rollout_window *w, struct tm *tm)
{
	time_t t;

	if (!w->named_zone) {
		t = timegm(tm);
		return t == (time_t)-1 ? t : t - (time_t)w->offset_min * 60;
	}
	pthread_mutex_lock(&tz_lock);
	{
		char *old = getenv("TZ") != NULL ? strdup(getenv("TZ")) : NULL;
		if (setenv("TZ", w->zone, 1) != 0) {
			t = (time_t)-1;
		} else {
			tzset();
			tm->tm_isdst = -1;
			t = mktime(tm);
		}
		if (old != NULL) {
			(void)setenv("TZ", old, 1);
		} else {
			(void)unsetenv("TZ");
		}
		tzset();
		free(old);
	}
	pthread_mutex_unlock(&tz_lock);
	return t;
}

int
rollout_window_at(const struct rollout_window *w, time_t now, time_t *next)
{
	struct tm base, tm;
	time_t best_next = 0;
	int inside = 0;

	if (zone_localtime(w, now, &base) != 0) {
		if (next != NULL) {
			*next = 0;
		}
		return 0;
	}
	/* Windows starting yesterday (crossing midnight) up to a week ahead. */
	for (int d = -1; d <= 8; d++) {
		time_t start, end;

		tm = base;
		tm.tm_mday += d;
		tm.tm_hour = 0;
		tm.tm_min = 0;
		tm.tm_sec = 0;
		/* Normalise the date to learn its weekday. */
		if (zone_mktime(w, &tm) == (time_t)-1 || !(w->days & (1u << tm.tm_wday))) {
			continue;
		}
		tm.tm_hour = w->start_min / 60;
		tm.tm_min = w->start_min % 60;
		start = zone_mktime(w, &tm);
		tm = base;
		tm.tm_mday += d + (w->end_min <= w->start_min ? 1 : 0);
		tm.tm_hour = w->end_min / 60;
		tm.tm_min = w->end_min % 60;
		tm.tm_sec = 0;
		end = zone_mktime(w, &tm);
		if (start == (time_t)-1 || end == (time_t)-1 || end <= start) {
			continue;
		}
		if (start <= now && now < end) {
			inside = 1;
			if (best_next == 0 || end < best_next) {
				best_next = end;
			}
		} else if (start > now && !inside && (best_next == 0 || start < best_next)) {
			best_next = start;
		}
	}
	if (next != NULL) {
		*next = best_next;
	}
	return inside;
}

/* ---- the spec as JSON ---- */

static int
add_amount(cJSON *o, const char *key, const struct rollout_amount *a)
{
	char buf[32];

	rollout_amount_format(a, buf, sizeof(buf));
	return json_add_str(o, key, buf);
}

char *
rollout_spec_to_json(const struct rollout_spec *spec)
{
	cJSON *o = cJSON_CreateObject(), *waves = NULL;
	char buf[32], *text = NULL;
	int bad = 0;

	if (o == NULL) {
		return NULL;
	}
	bad |= json_add_str(o, "name", spec->name);
	bad |= add_amount(o, "canary", &spec->canary);
	if (spec->have_wave_size) {
		bad |= add_amount(o, "wave_size", &spec->wave_size);
	} else {
		waves = json_add_array(o, "waves");
		bad |= waves == NULL;
		for (size_t i = 0; waves != NULL && i < spec->n_waves; i++) {
			rollout_amount_format(&spec->waves[i], buf, sizeof(buf));
			bad |= json_array_add_str(waves, buf);
		}
	}
	rollout_duration_format(spec->soak_ms, buf, sizeof(buf));
	bad |= json_add_str(o, "soak", buf);
	bad |= add_amount(o, "max_failures", &spec->max_failures);
	bad |= json_add_int(o, "min_sample", spec->min_sample);
	bad |= json_add_str(o, "on_halt", spec->on_halt == ROLLOUT_HALT_REVERT ? "revert" : "pause");
	bad |= json_add_str(o, "gate_cmd", spec->gate_cmd);
	bad |= json_add_str(o, "window", spec->have_window ? spec->window_text : NULL);
	bad |= json_add_int(o, "parallel", spec->parallel);
	bad |= json_add_int(o, "timeout_s", spec->timeout_s);
	bad |= json_add_bool(o, "include_self", spec->include_self);
	bad |= json_add_bool(o, "force", spec->force);
	bad |= json_add_bool(o, "full", spec->full);
	bad |= json_add_str(o, "unreachable", spec->unreachable_skip ? "skip" : "count");
	bad |= json_add_int(o, "retries", spec->retries);
	bad |= json_add_int(o, "deadline_at", spec->deadline_at);
	if (!bad) {
		text = json_print_compact(o);
	}
	cJSON_Delete(o);
	return text;
}

struct spec_raw {
	char name[ROLLOUT_NAME_MAX + 1];
	char canary[32];
	const cJSON *waves;
	char wave_size[32];
	char soak[32];
	char max_failures[32];
	int32_t min_sample;
	char on_halt[16];
	char gate_cmd[ROLLOUT_GATE_CMD_MAX + 1];
	char window[ROLLOUT_WINDOW_TEXT_MAX + 1];
	int32_t parallel;
	int32_t timeout_s;
	int include_self;
	int force;
	int full;
	char unreachable[16];
	int32_t retries;
	int64_t deadline_at;
};

int
rollout_spec_from_json(const char *text, size_t len, struct rollout_spec *spec, struct err *e)
{
	static const struct json_field fields[] = {
		JSON_F_STR("name", struct spec_raw, name, JSON_REQUIRED, 0),
		JSON_F_STR("canary", struct spec_raw, canary, JSON_REQUIRED, 1),
		JSON_F_ARRAY("waves", struct spec_raw, waves, 0),
		JSON_F_STR("wave_size", struct spec_raw, wave_size, 0, 1),
		JSON_F_STR("soak", struct spec_raw, soak, JSON_REQUIRED, 1),
		JSON_F_STR("max_failures", struct spec_raw, max_failures, JSON_REQUIRED, 1),
		JSON_F_INT("min_sample", struct spec_raw, min_sample, JSON_REQUIRED, 1, 1000000),
		JSON_F_STR("on_halt", struct spec_raw, on_halt, JSON_REQUIRED, 1),
		JSON_F_STR("gate_cmd", struct spec_raw, gate_cmd, JSON_REQUIRED, 0),
		JSON_F_STR("window", struct spec_raw, window, JSON_NULLABLE | JSON_REQUIRED, 1),
		JSON_F_INT("parallel", struct spec_raw, parallel, JSON_REQUIRED, 1, 256),
		JSON_F_INT("timeout_s", struct spec_raw, timeout_s, JSON_REQUIRED, 1, 86400),
		JSON_F_BOOL("include_self", struct spec_raw, include_self, JSON_REQUIRED),
		JSON_F_BOOL("force", struct spec_raw, force, JSON_REQUIRED),
		/* Absent in the specs of rollouts from before planned pushes. */
		JSON_F_BOOL("full", struct spec_raw, full, 0),
		JSON_F_STR("unreachable", struct spec_raw, unreachable, JSON_REQUIRED, 1),
		JSON_F_INT("retries", struct spec_raw, retries, JSON_REQUIRED, 1, 100),
		JSON_F_INT("deadline_at", struct spec_raw, deadline_at, JSON_REQUIRED, 0, JSON_INT_MAX),
	};
	struct rollout_spec s;
	struct spec_raw raw;
	const cJSON *it;
	cJSON *tree;
	int rc = -1;

	memset(&raw, 0, sizeof(raw));
	memset(&s, 0, sizeof(s));
	tree = json_parse_object(text, len, e);
	if (tree == NULL) {
		return err_prefix(e, "rollout spec");
	}
	if (json_read_fields(tree, fields, ARRAY_LEN(fields), 0, &raw, e) != 0) {
		err_prefix(e, "rollout spec");
		goto out;
	}
	snprintf(s.name, sizeof(s.name), "%s", raw.name);
	if (rollout_amount_parse(raw.canary, LLONG_MAX / 2, &s.canary, e) != 0 ||
	    rollout_duration_parse(raw.soak, &s.soak_ms, e) != 0 ||
	    rollout_amount_parse(raw.max_failures, LLONG_MAX / 2, &s.max_failures, e) != 0) {
		err_prefix(e, "rollout spec");
		goto out;
	}
	if ((raw.waves != NULL) == (raw.wave_size[0] != '\0')) {
		err_set(e, ERR_FORMAT, "rollout spec: exactly one of waves and wave_size");
		goto out;
	}
	if (raw.waves != NULL) {
		cJSON_ArrayForEach(it, raw.waves)
		{
			if (!cJSON_IsString(it) || s.n_waves == ROLLOUT_MAX_WAVES ||
			    rollout_amount_parse(it->valuestring, LLONG_MAX / 2, &s.waves[s.n_waves],
				e) != 0) {
				err_set(e, ERR_FORMAT, "rollout spec: bad waves");
				goto out;
			}
			s.n_waves++;
		}
	} else {
		if (rollout_amount_parse(raw.wave_size, LLONG_MAX / 2, &s.wave_size, e) != 0) {
			err_prefix(e, "rollout spec");
			goto out;
		}
		s.have_wave_size = 1;
	}
	s.min_sample = raw.min_sample;
	if (strcmp(raw.on_halt, "pause") == 0) {
		s.on_halt = ROLLOUT_HALT_PAUSE;
	} else if (strcmp(raw.on_halt, "revert") == 0) {
		s.on_halt = ROLLOUT_HALT_REVERT;
	} else {
		err_set(e, ERR_FORMAT, "rollout spec: on_halt '%s'", raw.on_halt);
		goto out;
	}
	snprintf(s.gate_cmd, sizeof(s.gate_cmd), "%s", raw.gate_cmd);
	if (raw.window[0] != '\0') {
		if (rollout_window_parse(raw.window, &s.window, e) != 0) {
			err_prefix(e, "rollout spec");
			goto out;
		}
		s.have_window = 1;
		snprintf(s.window_text, sizeof(s.window_text), "%s", raw.window);
	}
	s.parallel = raw.parallel;
	s.timeout_s = raw.timeout_s;
	s.include_self = raw.include_self;
	s.force = raw.force;
	s.full = raw.full;
	if (strcmp(raw.unreachable, "skip") == 0) {
		s.unreachable_skip = 1;
	} else if (strcmp(raw.unreachable, "count") != 0) {
		err_set(e, ERR_FORMAT, "rollout spec: unreachable '%s'", raw.unreachable);
		goto out;
	}
	s.retries = raw.retries;
	s.deadline_at = raw.deadline_at;
	*spec = s;
	rc = 0;
out:
	cJSON_Delete(tree);
	return rc;
}

int
rollout_random_id(char *out, size_t hex_len, struct err *e)
{
	unsigned char raw[32];
	size_t n = (hex_len + 1) / 2;
	char hex[sizeof(raw) * 2 + 1];

	if (n > sizeof(raw) || hex_len == 0) {
		return err_set(e, ERR_INTERNAL, "random id of %zu digits", hex_len);
	}
	if (getrandom(raw, n, 0) != (ssize_t)n) {
		return err_sys(e, "getrandom");
	}
	hex_encode(raw, n, hex);
	memcpy(out, hex, hex_len);
	out[hex_len] = '\0';
	return 0;
}
