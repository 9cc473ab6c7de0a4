/*
 * bundle — put a host's enrollment bundle in place, the one supported way:
 *
 *   tandem-updater install-bundle [--etc DIR] [--user NAME] BUNDLE
 *
 * run as root on the host. BUNDLE is what `tandem swarm enroll NAME
 * --updater` wrote (ca.crt, agent.crt, agent.key, updater.crt, updater.key,
 * agent.conf, updater.conf). Into DIR (/etc/tandem) it installs the five
 * certificate and key files (certificates 0640 root:GROUP, keys 0600
 * USER:GROUP, GROUP being USER's primary group) and carries the bundle's
 * settings into the configuration files already there (the packaged ones,
 * comments and other settings kept): in updater.conf listen, master_cn,
 * master_fingerprints, agent_probe and agent_pin, in agent.conf listen and
 * master_cn, and in both ca/cert/key naming the installed files. A bundle
 * from a master with release keys also carries the keyring its updater.conf
 * names as release_keyring: it is installed as DIR/keyring.json (0640
 * root:GROUP, public keys only) and updater.conf gets release_keyring =
 * keyring.json and the bundle's require_signed (and compatible, if set). A
 * bundle without a keyring leaves those three settings as they are, so
 * installing a bundle never lowers a host's signature policy.
 *
 * Refused, with DIR unchanged: a bundle with a file missing or unreadable, a
 * key that does not match its certificate, a certificate not issued by the
 * bundle's CA or outside its validity, certificates of the wrong role or of
 * two different hosts, an agent_pin that is not the agent certificate's
 * fingerprint, agent.conf and updater.conf disagreeing (master_cn, the agent's
 * port), a release_keyring missing or not validly signed by its own root
 * keys, a result the updater would not load.
 *
 * Atomic as a whole: every file is written and checked in DIR/.install-bundle
 * first; a COMMIT marker then makes the set final and each file is renamed
 * into place. An interrupted run is finished (marker present) or undone (no
 * marker) by the next run, before it does anything else.
 */
#ifndef TANDEM_UPDATER_BUNDLE_H
#define TANDEM_UPDATER_BUNDLE_H

#include "common/err.h"
#include "common/util.h"

#define BUNDLE_DEFAULT_ETC "/etc/tandem"
#define BUNDLE_DEFAULT_USER "tandem"
/* The staging directory inside DIR (its COMMIT file marks a finished set). */
#define BUNDLE_STAGING ".install-bundle"

struct bundle_opts {
	const char *src;  /* the bundle directory */
	const char *etc;  /* NULL: BUNDLE_DEFAULT_ETC */
	const char *user; /* NULL: BUNDLE_DEFAULT_USER */
};

/* What was installed, for the summary the command prints. */
struct bundle_result {
	char host[128];
	char updater_listen[300];
	char agent_listen[300];
	char master_cn[128];
	int pinned_masters;      /* how many master_fingerprints */
	int agent_pinned;        /* agent_pin set */
	int keyring;             /* the bundle's keyring installed */
	int signed_only;         /* ... and require_signed = true */
	/* An earlier interrupted run found first: 1 finished, -1 undone, 0 none. */
	int recovered;
	/* The new set was committed (a failure after that is finished by the next run). */
	int changed;
};

/*
 * Install the bundle O->src into O->etc (see above). Returns 0, or -1 with E:
 * ERR_NOT_FOUND (a file missing), ERR_FORMAT (inconsistent bundle),
 * ERR_CONFIG (the configuration files in DIR cannot be edited or would not
 * load), ERR_USAGE (unknown user), ERR_IO/ERR_NOSPACE (writing).
 */
int bundle_install(const struct bundle_opts *o, struct bundle_result *res, struct err *e) WUR;

/*
 * The `install-bundle` subcommand: ARGV[0] is "install-bundle". Prints a
 * summary on stdout or "tandem-updater: install-bundle: reason" on stderr;
 * returns the exit status (err_exit_code of the failure).
 */
int bundle_main(int argc, char **argv);

#endif
