/*
 * Fuzz the maintenance window (--window, rollout_window_parse) and its clock
 * (rollout_window_at). Input: 8 bytes of a time (folded into 1900..2200),
 * then the window text. Invariants: an accepted window has days, minutes in
 * range and distinct start and end; a named zone is a real zone file (TZif),
 * not any file under the zone directory; the "next change" is in the future,
 * and for a fixed-offset zone the answer holds until that moment and flips
 * at it.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "master/rollout_plan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define T_MIN (-2208988800LL) /* 1900-01-01 */
#define T_SPAN (9467107200LL) /* 300 years */

static int
is_tzif(const char *zone)
{
	char path[256], magic[4];
	int fd, ok;

	snprintf(path, sizeof(path), "/usr/share/zoneinfo/%s", zone);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		return 0;
	}
	ok = read(fd, magic, sizeof(magic)) == (ssize_t)sizeof(magic) &&
	    memcmp(magic, "TZif", 4) == 0;
	close(fd);
	return ok;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char text[ROLLOUT_WINDOW_TEXT_MAX + 2];
	struct rollout_window w;
	struct err e = ERR_INIT;
	uint64_t raw = 0;
	time_t now, next = 0, next2 = 0;
	int in;

	if (size < 8 || size - 8 >= sizeof(text)) {
		return 0;
	}
	memcpy(&raw, data, 8);
	memcpy(text, data + 8, size - 8);
	text[size - 8] = '\0';
	now = (time_t)(T_MIN + (long long)(raw % (uint64_t)T_SPAN));
	if (rollout_window_parse(text, &w, &e) != 0) {
		if (err_msg(&e)[0] == '\0') {
			__builtin_trap();
		}
		return 0;
	}
	if (w.days == 0 || w.days > 0x7f || w.start_min < 0 || w.start_min >= 1440 ||
	    w.end_min < 0 || w.end_min >= 1440 || w.start_min == w.end_min ||
	    w.offset_min < -14 * 60 || w.offset_min > 14 * 60 ||
	    memchr(w.zone, '\0', sizeof(w.zone)) == NULL || (w.named_zone && !is_tzif(w.zone))) {
		__builtin_trap();
	}
	in = rollout_window_at(&w, now, &next);
	if (next != 0 && next <= now) {
		__builtin_trap();
	}
	if (!w.named_zone) {
		/* A fixed zone has a window in every week: the answer always changes. */
		if (next == 0 || rollout_window_at(&w, next - 1, &next2) != in || next2 != next ||
		    rollout_window_at(&w, next, NULL) == in) {
			__builtin_trap();
		}
	}
	return 0;
}
