/*
 * cmd_rollout — the rollout commands of `tandem swarm` (master/cmd_swarm.c
 * lists them in its table): running an update as a rollout, `rollout
 * list|status|watch|pause|resume|abort|events`, `label`, `target`,
 * `converge`.
 */
#ifndef TANDEM_MASTER_CMD_ROLLOUT_H
#define TANDEM_MASTER_CMD_ROLLOUT_H

#include <limits.h>

#include "master/cli.h"
#include "master/selector.h"
#include "master/swarm_push.h"
#include "master/swarm_result.h"

/*
 * `swarm update` without --dry-run: record the rollout of the prepared
 * release RF to the hosts A selects, drive it, report it. RELEASE_ARG is
 * what the operator named (for the JSON report). Returns the exit code.
 */
int cmd_rollout_update(struct swarm_ctx *c, const struct swarm_update_args *a,
    const struct swarm_release_file *rf, const char *release_arg);

/*
 * The selector of A's --host names, --all or --hosts SEL into *OUT (and
 * checked against the registry). Returns 0, or -1 after printing why.
 */
int cmd_rollout_selector(struct swarm_ctx *c, const struct swarm_update_args *a,
    struct selector *out);

/* A release to push, as the operator named it (master/cmd_swarm.c). */
struct cmd_release {
	struct swarm_release_file rf;  /* RF.path points at PATH */
	char path[PATH_MAX];
	char tmpdir[PATH_MAX - 32];    /* "" unless a directory was packed */
	char *tsig;                    /* FILE.tsig, NULL when the release is unsigned */
	struct sign_keyring keyring;   /* the master's, empty when it has none */
};

/*
 * In master/cmd_swarm.c, shared with target set: the release ARG as a
 * tarball (with FILE.tsig when there is one), or a directory packed into a
 * temporary directory, and the master's keyring of HOME. Free with
 * cmd_swarm_release_cleanup(). Returns 0, or -1 after logging why.
 */
int cmd_swarm_prepare_release(const char *home, const char *arg, struct cmd_release *p) WUR;
void cmd_swarm_release_cleanup(struct cmd_release *p);

/* The commands. */
int swarm_cmd_rollout(const struct cli *cli, const struct cli_legacy_cmd *self, int argc, char **argv);
int swarm_cmd_label(const struct cli *cli, const struct cli_legacy_cmd *self, int argc, char **argv);
int swarm_cmd_target(const struct cli *cli, const struct cli_legacy_cmd *self, int argc, char **argv);
int swarm_cmd_converge(const struct cli *cli, const struct cli_legacy_cmd *self, int argc, char **argv);

/* Their --help texts (the table in cmd_swarm.c prints them). */
extern const char cmd_rollout_usage[];
extern const char cmd_label_usage[];
extern const char cmd_target_usage[];
extern const char cmd_converge_usage[];
/* The rollout options, shared by the --help of update and converge. */
#define CMD_ROLLOUT_OPTIONS \
	"Rollout options (every update of hosts is a rollout; defaults are the safe ones):\n" \
	"  --canary N|P%       hosts of the first wave (default 1); a failure there\n" \
	"                      always halts\n" \
	"  --waves LIST        cumulative wave sizes after the canary (default\n" \
	"                      10%,50%,100%; a size adding no host is dropped)\n" \
	"  --wave-size N|P%    instead of --waves: equal waves of this size\n" \
	"  --soak DURATION     after each wave, wait this long and ask every updated\n" \
	"                      host again (healthy, not restarted, right release)\n" \
	"  --max-failures N|P% failures allowed before the rollout halts (default 0:\n" \
	"                      halt on the first failure)\n" \
	"  --min-sample N      hosts attempted before a percentage applies (default 5)\n" \
	"  --on-halt pause|revert  stay halted for the operator (default), or roll\n" \
	"                      back every host the rollout updated, newest wave first\n" \
	"  --gate-cmd CMD      run CMD (sh -c) after each wave; exit 0 passes\n" \
	"                      (TANDEM_ROLLOUT_ID, TANDEM_WAVE in its environment)\n" \
	"  --window SPEC       dispatch only inside [start, end), e.g.\n" \
	"                      'Mon-Fri 01:00-04:00 UTC' (the zone is required)\n" \
	"  --unreachable count|skip  an unreachable host is a failure (default) or skipped\n" \
	"  --retries N         attempts on a busy (503) or unreachable host (default 3)\n" \
	"  --deadline DURATION no attempt starts after this long\n" \
	"  --force             reinstall where the release already runs (prev is kept)\n" \
	"  --name TEXT         a name for the rollout\n" \
	"  --paused            record the plan, start nothing ('rollout resume ID')\n" \
	"  --json-lines        one JSON object per host result and event, as they come\n"

#endif
