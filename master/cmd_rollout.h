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
int cmd_rollout_update(const struct cli *cli, struct swarm_ctx *c, const struct swarm_update_args *a,
    const struct swarm_release_file *rf, const char *release_arg);

/*
 * The selector of A's --host names, --all or --hosts SEL into *OUT (and
 * checked against the registry). Returns 0, or -1 with E.
 */
/*
 * The SIGINT or SIGTERM that stopped a rollout command, 0 if none came. main()
 * ends the process by that signal once the report is out and the registry
 * closed, so a calling shell script sees the interrupt and stops too (a shell
 * ignores a Ctrl-C that its child caught and survived).
 */
int cmd_rollout_stop_signal(void);

int cmd_rollout_selector(struct swarm_ctx *c, const struct swarm_update_args *a,
    struct selector *out, struct err *e) WUR;

/* A release to push, as the operator named it (master/cmd_swarm.c). */
struct cmd_release {
	struct swarm_release_file rf;  /* RF.path points at PATH */
	char path[PATH_MAX];           /* the stored release (the operator's file in a dry run) */
	char tmpdir[PATH_MAX - 32];    /* "" unless a directory was packed */
	char *tsig;                    /* FILE.tsig, NULL when the release is unsigned */
	struct sign_keyring keyring;   /* the master's, empty when it has none */
	struct delta_pack_prefetch *prefetch; /* RF.prefetch, owned (master/release_store) */
};

/*
 * In master/cmd_swarm.c, shared with target set: the release ARG as a
 * tarball (with FILE.tsig when there is one), or a directory packed into a
 * temporary directory, and the master's keyring of HOME, checked as an updater
 * will check it when installed as KINDS (SIGN_KIND_AGENT, | SIGN_KIND_UPDATER
 * for --include-self) before anything is sent, and taken into HOME's store
 * on the way (master/release_store; not with CMD_RELEASE_DRY_RUN in HOW).
 * With CMD_RELEASE_PLANNED (planned pushes follow) the check of a release
 * new to the store keeps what their deltas need (P->prefetch). Free with
 * cmd_swarm_release_cleanup(). Returns 0, or -1 with E.
 */
#define CMD_RELEASE_DRY_RUN 0x1u
#define CMD_RELEASE_PLANNED 0x2u
int cmd_swarm_prepare_release(const char *home, const char *arg, unsigned kinds, unsigned how,
    struct cmd_release *p, struct err *e) WUR;
void cmd_swarm_release_cleanup(struct cmd_release *p);

/* The commands (master/cmd_swarm.c lists them in its table). */
int swarm_cmd_label(struct cli *cli, int argc, char **argv);
int swarm_cmd_converge(struct cli *cli, int argc, char **argv);
/* swarm rollout list|status|watch|pause|resume|abort|events */
#define CMD_ROLLOUT_N_SUBS 7
extern const struct cli_cmd cmd_rollout_subs[CMD_ROLLOUT_N_SUBS];
/* swarm target set|list|clear */
#define CMD_TARGET_N_SUBS 3
extern const struct cli_cmd cmd_target_subs[CMD_TARGET_N_SUBS];

#endif
