/*
 * hostcert — a host's renewed TLS identity on disk, the state machine of an
 * online renewal (transport-free: updater/renew translates HTTP into it).
 *
 * One directory per identity, DIR = STATE/tls/agent or STATE/tls/updater,
 * where the hardened unit may write (config in /etc stays read-only), and
 * HOME/master/tls for the master's own pair (tandem pki renew-master):
 *
 *   DIR/pending/key.pem    the next private key (0600), made by prepare,
 *                          reused by every retry until installed
 *   DIR/gen-N/cert.pem     an installed generation: certificate (0644)
 *   DIR/gen-N/key.pem      and its key (0600)
 *   DIR/current -> gen-N   the pair in use (pki/trust: it overrides the
 *                          configured bootstrap pair when present)
 *   DIR/previous -> gen-M  the pair before, kept until confirm (or absent:
 *                          the bootstrap pair was in use)
 *
 * States and steps (each ends with a durable write and a test point):
 *   prepare  -> pending/key.pem exists                 "cert.pending_key"
 *   install  -> gen-N/ complete (written as gen-N.tmp,
 *               renamed)                                "cert.gen_written"
 *            -> previous -> old current                 "cert.previous_set"
 *            -> current -> gen-N (one rename: cert and
 *               key switch together)                    "cert.flipped"
 *            -> pending/ removed                        "cert.pending_removed"
 *   confirm  -> previous and older generations removed "cert.confirmed"
 * A crash anywhere leaves either the old pair or the new one in force,
 * never a mix; hostcert_recover() at start finishes or undoes the rest.
 */
#ifndef TANDEM_PKI_HOSTCERT_H
#define TANDEM_PKI_HOSTCERT_H

#include <stddef.h>
#include <time.h>

#include "common/err.h"
#include "common/tls.h"
#include "common/util.h"

struct hostcert_installed {
	int gen;
	char fingerprint[TLS_FP_HEX_LEN + 1];
	char serial[TLS_SERIAL_HEX_MAX + 1];
	time_t not_after;
};

/*
 * Make (or reuse) the pending key and return a CSR for it (CN = CN) as a
 * malloc'd PEM in *CSR. DIR is created 0700 when missing.
 */
int hostcert_prepare(const char *dir, const char *cn, char **csr, struct err *e) WUR;

/*
 * Install the certificate CERT (PEM, LEN bytes) for the pending key: it
 * must chain to a CA in CA_FILE, match the pending key, name the same
 * identity as EXPECT (its CN; the role follows from it with MASTER_CN), be
 * valid now and carry both serverAuth and clientAuth. Then switch current to
 * the new generation as described above. ERR_CONFLICT without a pending
 * key; ERR_BAD_REQUEST / ERR_FORBIDDEN for a certificate that does not fit.
 */
int hostcert_install(const char *dir, const unsigned char *cert, size_t len, const char *ca_file,
    const char *expect_cn, const char *master_cn, struct hostcert_installed *out,
    struct err *e) WUR;

/*
 * What DIR holds in force: CUR (current) and PREV (previous), zeroed when
 * absent. Returns HOSTCERT_HAVE_* bits, or -1 with E (a link whose
 * certificate does not read).
 */
#define HOSTCERT_HAVE_CURRENT 1
#define HOSTCERT_HAVE_PREVIOUS 2
int hostcert_in_force(const char *dir, const char *master_cn, struct hostcert_installed *cur,
    struct hostcert_installed *prev, struct err *e) WUR;

/* Drop the previous pair and older generations: the new one has been used. */
int hostcert_confirm(const char *dir, struct err *e) WUR;

/*
 * At start: remove half-written generations, make sure current (if any)
 * is a matching pair chaining to CA_FILE — else fall back to previous, or to
 * the bootstrap pair (current removed) — and drop a pending key that
 * current already uses. *NOTE (may be NULL) gets a one-line summary of what
 * was repaired ("" when nothing was).
 */
int hostcert_recover(const char *dir, const char *ca_file, char *note, size_t notelen,
    struct err *e) WUR;

#endif
