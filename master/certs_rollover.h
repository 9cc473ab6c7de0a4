/*
 * certs_rollover — the master renews its own certificate (tandem pki
 * renew-master) with every updater's master pins rolled over online first:
 *
 *   1. the master makes a new key (HOME/master/tls/pending/, pki/hostcert)
 *      and the CA certifies it (CN and role unchanged);
 *   2. every enrolled updater is asked, over the current certificate, to
 *      accept the new one beside it (PUT /pins/master {"add": NEW});
 *   3. HOME/master/rollover records the old fingerprint, then the master
 *      switches to the new pair in one rename (HOME/master/tls/current);
 *   4. each updater is asked, over a connection presenting the new
 *      certificate (the proof that handshakes with it work), to make it its
 *      only master pin (PUT /pins/master {"confirm": NEW}); an updater that
 *      missed step 2 gets it now over the old certificate, which the master
 *      keeps until every host confirmed;
 *   5. when every host confirmed, the new pair becomes HOME/master/master.
 *      {key,crt} (key first, each file atomic), HOME/master/tls and the
 *      rollover record go.
 *
 * A host that cannot be reached is listed; running the command again
 * continues at step 4 for the hosts not confirmed yet (and finishes with 5).
 * A crash at any step leaves a pair in force that every host accepts (the
 * old one until step 3, both until step 4 for a host), and the next run
 * continues from the record. Between 3 and 5, the other commands present the
 * new certificate (pki_master_paths).
 */
#ifndef TANDEM_MASTER_CERTS_ROLLOVER_H
#define TANDEM_MASTER_CERTS_ROLLOVER_H

#include <stddef.h>

#include "common/err.h"
#include "common/tls.h"
#include "common/util.h"
#include "master/registry.h"

#define CERTS_ROLLOVER_FILE "master/rollover"

struct certs_rollover_opts {
	int days;               /* validity of the new certificate (0: PKI default) */
	long long test_valid_s; /* test builds: seconds instead */
	int timeout_s;          /* one request to a host */
};

/* What happened at one host. */
struct certs_rollover_host {
	char host[REG_NAME_MAX + 1];
	/* "confirmed" (the new pin is its only one), "unpinned" (it accepts any
	 * master certificate of the CA), "failed" (see error: the old
	 * certificate keeps working for it; run again) */
	char result[16];
	char error[512];
};

struct certs_rollover {
	char old_fp[TLS_FP_HEX_LEN + 1];
	char new_fp[TLS_FP_HEX_LEN + 1];
	char new_not_after[32];
	int resumed;  /* a rollover cut short was continued */
	int finished; /* every host confirmed: the old certificate is gone */
	struct certs_rollover_host *hosts;
	size_t n;
};

/*
 * Run (or continue) the rollover as above. 0 when it finished, -1 with E
 * otherwise; *OUT lists the hosts either way (free with
 * certs_rollover_free()).
 */
int certs_renew_master(const char *home, const struct certs_rollover_opts *o,
    struct certs_rollover *out, struct err *e) WUR;

void certs_rollover_free(struct certs_rollover *r);

#endif
