/*
 * metrics — the updater's state as Prometheus metrics (text exposition
 * format 0.0.4), served at GET /metrics to the master (wiki/Operations.md).
 *
 * Two sources: the /health object the api builds (one owner of what the
 * updater reports: releases, the agent's supervisor state, the security
 * floor, the certificate and CRL dates), and the counters kept here of the
 * operations the install engine finished since this updater started (fed
 * by its outcome hook). Counters start at 0 with the process, as
 * Prometheus expects of a _total; every kind/result pair is present from
 * the start, so a rate() sees the first operation.
 */
#ifndef TANDEM_UPDATER_METRICS_H
#define TANDEM_UPDATER_METRICS_H

#include <stddef.h>

#include "cJSON.h"
#include "common/err.h"
#include "common/util.h"
#include "updater/install.h"

#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

struct metrics;

/* Empty counters. 0, or -1 with E (ERR_NOMEM). */
int metrics_new(struct metrics **out, struct err *e) WUR;
void metrics_free(struct metrics *m);

/*
 * Count the finished operation OC (any thread): its kind/result counter,
 * its time, its total and per-phase durations. For struct
 * install_deps.on_outcome (ARG is the struct metrics).
 */
void metrics_record(void *arg, const struct install_outcome *oc);

/*
 * The exposition text: the counters of M, then what HEALTH (the /health
 * object) shows, then DISK_FREE bytes free under the install dir (< 0:
 * unknown, left out). Returns a heap string (*LEN bytes, NUL-terminated)
 * to free(), or NULL when out of memory.
 */
char *metrics_render(struct metrics *m, const cJSON *health, long long disk_free, size_t *len);

#endif
