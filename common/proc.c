#include "common/proc.h"

#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"

extern char **environ;

static int stat_alive(const struct proc *p);

#define PROC_DEFAULT_PATH "/usr/sbin:/usr/bin:/sbin:/bin"
/* How long the parent waits for the child to reach exec (or report failure). */
#define PROC_EXEC_TIMEOUT_MS 10000
/* Poll period of proc_wait() when the kernel has no pidfd. */
#define PROC_FALLBACK_POLL_MS 5
/* After SIGKILL, how long proc_stop() waits before giving up. */
#define PROC_KILL_WAIT_MS 5000

/* Steps of the child between fork and exec, reported on failure. */
enum child_step {
	STEP_SIGNALS = 1,
	STEP_SETSID,
	STEP_STDIO,
	STEP_KEEPFD,
	STEP_CLOSEFDS,
	STEP_CHDIR,
	STEP_SETGROUPS,
	STEP_SETGID,
	STEP_SETUID,
	STEP_VERIFY,
	STEP_EXEC,
};

struct child_report {
	int step;
	int err;
};

/* Everything the child needs, prepared before fork. */
struct spawn_plan {
	char *path;          /* absolute or cwd-relative program path */
	char **envp;         /* NULL-terminated, entries borrowed or owned (see env_owned) */
	char *env_path;      /* owned "PATH=..." when clear_env */
	int do_drop;
	uid_t uid;
	gid_t gid;
	int stdin_fd;
	int out_fd;
	int keep_fd;
	int max_fd;
};

void
proc_spec_init(struct proc_spec *s)
{
	memset(s, 0, sizeof(*s));
	s->keep_fd = -1;
}

void
proc_init(struct proc *p)
{
	struct proc init = PROC_INIT;

	*p = init;
}

static int
sys_pidfd_open(pid_t pid)
{
#ifdef SYS_pidfd_open
	return (int)syscall(SYS_pidfd_open, pid, 0);
#else
	(void)pid;
	errno = ENOSYS;
	return -1;
#endif
}

static int
sys_pidfd_send_signal(int pidfd, int sig)
{
#ifdef SYS_pidfd_send_signal
	return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
#else
	(void)pidfd;
	(void)sig;
	errno = ENOSYS;
	return -1;
#endif
}

/* Move FD to a number >= 3 (close-on-exec), closing the original. */
static int
fd_above_stdio(int fd)
{
	int nfd;

	if (fd < 0 || fd > 2) {
		return fd;
	}
	nfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	close(fd);
	return nfd;
}

static void
plan_free(struct spawn_plan *pl)
{
	free(pl->path);
	free(pl->envp);
	free(pl->env_path);
	if (pl->stdin_fd >= 0) {
		close(pl->stdin_fd);
	}
	pl->path = NULL;
	pl->envp = NULL;
	pl->env_path = NULL;
	pl->stdin_fd = -1;
}

static int
is_executable_file(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

/* Resolve argv[0] into an absolute path (or report why not). */
static int
resolve_program(const char *name, char **out, struct err *e)
{
	char cwd[PATH_MAX];
	char buf[PATH_MAX];
	const char *pathvar, *p, *end;
	size_t dlen;
	int n;

	if (strchr(name, '/') != NULL) {
		if (name[0] == '/') {
			*out = strdup(name);
		} else {
			if (getcwd(cwd, sizeof(cwd)) == NULL) {
				err_sys(e, "exec %s: getcwd", name);
				return -1;
			}
			n = snprintf(buf, sizeof(buf), "%s/%s", cwd, name);
			if (n < 0 || (size_t)n >= sizeof(buf)) {
				errno = ENAMETOOLONG;
				err_sys(e, "exec %s", name);
				return -1;
			}
			*out = strdup(buf);
		}
		if (*out == NULL) {
			err_sys(e, "exec %s", name);
			return -1;
		}
		return 0;
	}
	pathvar = getenv("PATH");
	if (pathvar == NULL || pathvar[0] == '\0') {
		pathvar = PROC_DEFAULT_PATH;
	}
	for (p = pathvar; *p != '\0'; p = (*end == ':') ? end + 1 : end) {
		end = strchr(p, ':');
		if (end == NULL) {
			end = p + strlen(p);
		}
		dlen = (size_t)(end - p);
		if (dlen == 0) {
			continue;
		}
		n = snprintf(buf, sizeof(buf), "%.*s/%s", (int)dlen, p, name);
		if (n < 0 || (size_t)n >= sizeof(buf)) {
			continue;
		}
		if (buf[0] == '/' && is_executable_file(buf)) {
			*out = strdup(buf);
			if (*out == NULL) {
				err_sys(e, "exec %s", name);
				return -1;
			}
			return 0;
		}
	}
	errno = ENOENT;
	err_set(e, ERR_NOT_FOUND, "exec %s: not found in PATH", name);
	return -1;
}

static size_t
env_name_len(const char *kv)
{
	const char *eq = strchr(kv, '=');

	return eq == NULL ? strlen(kv) : (size_t)(eq - kv);
}

static int
env_overridden(const char *kv, const char *const *add)
{
	size_t n = env_name_len(kv);
	size_t i;

	for (i = 0; add != NULL && add[i] != NULL; i++) {
		if (env_name_len(add[i]) == n && strncmp(kv, add[i], n) == 0) {
			return 1;
		}
	}
	return 0;
}

static int
build_env(const struct proc_spec *spec, struct spawn_plan *pl, struct err *e)
{
	size_t nbase = 0, nadd = 0, i, k = 0;
	char **env;

	for (i = 0; spec->env_add != NULL && spec->env_add[i] != NULL; i++) {
		if (strchr(spec->env_add[i], '=') == NULL || spec->env_add[i][0] == '=') {
			errno = EINVAL;
			err_set(e, ERR_INTERNAL, "environment entry '%s': not NAME=VALUE",
			    spec->env_add[i]);
			return -1;
		}
		nadd++;
	}
	if (!spec->clear_env) {
		for (i = 0; environ != NULL && environ[i] != NULL; i++) {
			nbase++;
		}
	} else {
		nbase = 1;
	}
	env = calloc(nbase + nadd + 1, sizeof(*env));
	if (env == NULL) {
		err_sys(e, "environment");
		return -1;
	}
	if (spec->clear_env) {
		pl->env_path = strdup("PATH=" PROC_DEFAULT_PATH);
		if (pl->env_path == NULL) {
			free(env);
			err_sys(e, "environment");
			return -1;
		}
		if (!env_overridden(pl->env_path, spec->env_add)) {
			env[k++] = pl->env_path;
		}
	} else {
		for (i = 0; environ != NULL && environ[i] != NULL; i++) {
			if (!env_overridden(environ[i], spec->env_add)) {
				env[k++] = environ[i];
			}
		}
	}
	for (i = 0; i < nadd; i++) {
		env[k++] = (char *)(uintptr_t)spec->env_add[i];
	}
	env[k] = NULL;
	pl->envp = env;
	return 0;
}

static int
parse_id(const char *s, unsigned long *out)
{
	long long v;

	if (parse_ll(s, 0, (long long)UINT32_MAX - 1, &v) != 0) {
		return -1;
	}
	*out = (unsigned long)v;
	return 0;
}

int
proc_resolve_ids(const char *user, const char *group, uid_t *uid, gid_t *gid, struct err *e)
{
	struct passwd pw, *pwp = NULL;
	struct group gr, *grp = NULL;
	char buf[16384];
	unsigned long id;
	int rc;

	*uid = getuid();
	*gid = getgid();
	if (user != NULL) {
		rc = getpwnam_r(user, &pw, buf, sizeof(buf), &pwp);
		if (pwp != NULL) {
			*uid = pw.pw_uid;
			*gid = pw.pw_gid;
		} else if (parse_id(user, &id) == 0) {
			*uid = (uid_t)id;
			pwp = NULL;
			if (getpwuid_r(*uid, &pw, buf, sizeof(buf), &pwp) == 0 && pwp != NULL) {
				*gid = pw.pw_gid;
			} else if (group == NULL) {
				errno = EINVAL;
				return err_set(e, ERR_CONFIG,
				    "user %s: no passwd entry, a group is required", user);
			}
		} else {
			errno = rc != 0 ? rc : ENOENT;
			return err_set(e, ERR_CONFIG, "user '%s': unknown", user);
		}
	}
	if (group != NULL) {
		rc = getgrnam_r(group, &gr, buf, sizeof(buf), &grp);
		if (grp != NULL) {
			*gid = gr.gr_gid;
		} else if (parse_id(group, &id) == 0) {
			*gid = (gid_t)id;
		} else {
			errno = rc != 0 ? rc : ENOENT;
			return err_set(e, ERR_CONFIG, "group '%s': unknown", group);
		}
	}
	return 0;
}

static int
resolve_identity(const struct proc_spec *spec, struct spawn_plan *pl, struct err *e)
{
	if (spec->user == NULL && spec->group == NULL) {
		return 0;
	}
	if (proc_resolve_ids(spec->user, spec->group, &pl->uid, &pl->gid, e) != 0) {
		return -1;
	}
	if (geteuid() != 0) {
		if (pl->uid != getuid() || pl->uid != geteuid() || pl->gid != getgid() ||
		    pl->gid != getegid()) {
			errno = EPERM;
			err_set(e, ERR_CONFIG, "run as %s: changing user requires root",
			    spec->user != NULL ? spec->user : spec->group);
			return -1;
		}
		return 0; /* already that identity: nothing to drop */
	}
	pl->do_drop = 1;
	return 0;
}

static int
max_fd_number(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    rl.rlim_cur <= (rlim_t)INT_MAX) {
		return (int)rl.rlim_cur;
	}
	return 65536;
}

/* Close every fd in [lo, hi] (async-signal-safe). */
static int
close_fds(unsigned lo, unsigned hi, int max_fd)
{
	unsigned fd;

	if (lo > hi) {
		return 0;
	}
#ifdef SYS_close_range
	if (syscall(SYS_close_range, lo, hi, 0) == 0) {
		return 0;
	}
	if (errno != ENOSYS) {
		return -1;
	}
#endif
	for (fd = lo; fd <= hi && fd < (unsigned)max_fd; fd++) {
		close((int)fd);
	}
	return 0;
}

static void __attribute__((noreturn))
child_fail(int repfd, int step, int err)
{
	struct child_report rep = { step, err };
	ssize_t w;

	do {
		w = write(repfd, &rep, sizeof(rep));
	} while (w < 0 && errno == EINTR);
	_exit(127);
}

/* In the child, after fork: async-signal-safe calls only. */
static void __attribute__((noreturn))
child_exec(const struct spawn_plan *pl, const struct proc_spec *spec, int repfd)
{
	struct sigaction sa;
	sigset_t empty;
	uid_t ru, eu, su;
	gid_t rg, eg, sg;
	unsigned keep[2], lo;
	int sig, i;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	sigemptyset(&sa.sa_mask);
	for (sig = 1; sig < NSIG; sig++) {
		if (sig != SIGKILL && sig != SIGSTOP) {
			sigaction(sig, &sa, NULL); /* reserved (glibc-internal) numbers fail: fine */
		}
	}
	if (setsid() < 0) {
		child_fail(repfd, STEP_SETSID, errno);
	}
	if (dup2(pl->stdin_fd, 0) < 0 || dup2(pl->out_fd, 1) < 0 || dup2(pl->out_fd, 2) < 0) {
		child_fail(repfd, STEP_STDIO, errno);
	}
	if (pl->keep_fd >= 0 && fcntl(pl->keep_fd, F_SETFD, 0) < 0) {
		child_fail(repfd, STEP_KEEPFD, errno);
	}
	/* Close all but stdio, the report pipe and the kept fd. */
	keep[0] = (unsigned)repfd;
	keep[1] = pl->keep_fd >= 0 ? (unsigned)pl->keep_fd : (unsigned)repfd;
	if (keep[1] < keep[0]) {
		lo = keep[0];
		keep[0] = keep[1];
		keep[1] = lo;
	}
	lo = 3;
	for (i = 0; i < 2; i++) {
		if (keep[i] > lo && close_fds(lo, keep[i] - 1, pl->max_fd) < 0) {
			child_fail(repfd, STEP_CLOSEFDS, errno);
		}
		if (keep[i] + 1 > lo) {
			lo = keep[i] + 1;
		}
	}
	if (close_fds(lo, ~0u, pl->max_fd) < 0) {
		child_fail(repfd, STEP_CLOSEFDS, errno);
	}
	if (spec->cwd != NULL && chdir(spec->cwd) < 0) {
		child_fail(repfd, STEP_CHDIR, errno);
	}
	if (pl->do_drop) {
		if (setgroups(1, &pl->gid) < 0) {
			child_fail(repfd, STEP_SETGROUPS, errno);
		}
		if (setresgid(pl->gid, pl->gid, pl->gid) < 0) {
			child_fail(repfd, STEP_SETGID, errno);
		}
		if (setresuid(pl->uid, pl->uid, pl->uid) < 0) {
			child_fail(repfd, STEP_SETUID, errno);
		}
		if (getresuid(&ru, &eu, &su) < 0 || getresgid(&rg, &eg, &sg) < 0 ||
		    ru != pl->uid || eu != pl->uid || su != pl->uid || rg != pl->gid ||
		    eg != pl->gid || sg != pl->gid) {
			child_fail(repfd, STEP_VERIFY, EPERM);
		}
		if (pl->uid != 0 && (setuid(0) == 0 || seteuid(0) == 0)) {
			child_fail(repfd, STEP_VERIFY, EPERM);
		}
		if (pl->uid != 0 && pl->gid != 0 && (setgid(0) == 0 || setegid(0) == 0)) {
			child_fail(repfd, STEP_VERIFY, EPERM);
		}
	}
	sigemptyset(&empty);
	if (sigprocmask(SIG_SETMASK, &empty, NULL) < 0) {
		child_fail(repfd, STEP_SIGNALS, errno);
	}
	execve(pl->path, (char *const *)(uintptr_t)spec->argv, pl->envp);
	child_fail(repfd, STEP_EXEC, errno);
}

static void
report_error(const struct child_report *rep, const struct spawn_plan *pl,
    const struct proc_spec *spec, struct err *e)
{
	const char *who = spec->user != NULL ? spec->user : spec->group;

	errno = rep->err; /* the child's errno: err_sys() reads it */
	switch (rep->step) {
	case STEP_EXEC:
		err_sys(e, "exec %s", pl->path);
		break;
	case STEP_CHDIR:
		err_sys(e, "chdir %s", spec->cwd);
		break;
	case STEP_SETGROUPS:
		err_sys(e, "run as %s: setgroups", who);
		break;
	case STEP_SETGID:
		err_sys(e, "run as %s: setresgid", who);
		break;
	case STEP_SETUID:
		err_sys(e, "run as %s: setresuid", who);
		break;
	case STEP_VERIFY:
		err_set(e, ERR_INTERNAL, "run as %s: privileges still held after the drop", who);
		break;
	case STEP_SETSID:
		err_sys(e, "spawn: setsid");
		break;
	case STEP_STDIO:
		err_sys(e, "spawn: redirect stdio");
		break;
	case STEP_KEEPFD:
		err_sys(e, "spawn: keep fd %d", pl->keep_fd);
		break;
	case STEP_CLOSEFDS:
		err_sys(e, "spawn: close descriptors");
		break;
	default:
		err_sys(e, "spawn: signal setup");
		break;
	}
}

static int
reap_blocking(pid_t pid, int *status)
{
	pid_t r;

	do {
		r = waitpid(pid, status, 0);
	} while (r < 0 && errno == EINTR);
	return r == pid ? 0 : -1;
}

/*
 * Fork and exec with OUT_FD as stdout/stderr (borrowed). Fills P on success.
 */
static int
spawn_with_fd(const struct proc_spec *spec, int out_fd, struct proc *p, struct err *e)
{
	struct spawn_plan pl;
	struct child_report rep;
	struct pollfd pfd;
	sigset_t all, old;
	int rep_pipe[2] = { -1, -1 };
	int rc = -1, saved, status, prc;
	ssize_t n;
	size_t got = 0;
	int64_t deadline;
	pid_t pid;

	memset(&pl, 0, sizeof(pl));
	pl.stdin_fd = -1;
	pl.out_fd = out_fd;
	pl.keep_fd = spec->keep_fd;
	if (spec->argv == NULL || spec->argv[0] == NULL || spec->argv[0][0] == '\0') {
		errno = EINVAL;
		err_set(e, ERR_INTERNAL, "spawn: empty argv");
		return -1;
	}
	if (spec->keep_fd >= 0 && (spec->keep_fd < 3 || fcntl(spec->keep_fd, F_GETFD) < 0)) {
		errno = EBADF;
		err_set(e, ERR_INTERNAL, "spawn: keep fd %d: not an open descriptor above 2",
		    spec->keep_fd);
		return -1;
	}
	if (resolve_program(spec->argv[0], &pl.path, e) != 0 ||
	    build_env(spec, &pl, e) != 0 || resolve_identity(spec, &pl, e) != 0) {
		goto out;
	}
	pl.max_fd = max_fd_number();
	pl.stdin_fd = fd_above_stdio(open("/dev/null", O_RDONLY | O_CLOEXEC));
	if (pl.stdin_fd < 0) {
		err_sys(e, "spawn: open /dev/null");
		goto out;
	}
	if (pipe2(rep_pipe, O_CLOEXEC) < 0) {
		err_sys(e, "spawn: pipe");
		goto out;
	}
	rep_pipe[0] = fd_above_stdio(rep_pipe[0]);
	rep_pipe[1] = fd_above_stdio(rep_pipe[1]);
	if (rep_pipe[0] < 0 || rep_pipe[1] < 0) {
		err_sys(e, "spawn: pipe");
		goto out;
	}
	/* No handler of ours may run in the child before dispositions are reset. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pid = fork();
	if (pid == 0) {
		child_exec(&pl, spec, rep_pipe[1]);
	}
	saved = errno;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (pid < 0) {
		errno = saved;
		err_sys(e, "spawn: fork");
		goto out;
	}
	close(rep_pipe[1]);
	rep_pipe[1] = -1;

	/* EOF: exec happened. A report: it failed before or at exec. */
	deadline = mono_ms() + PROC_EXEC_TIMEOUT_MS;
	while (got < sizeof(rep)) {
		pfd.fd = rep_pipe[0];
		pfd.events = POLLIN;
		pfd.revents = 0;
		prc = poll(&pfd, 1, ms_until(deadline));
		if (prc < 0 && errno == EINTR) {
			continue;
		}
		if (prc <= 0) {
			saved = prc == 0 ? ETIMEDOUT : errno;
			kill(pid, SIGKILL);
			(void)reap_blocking(pid, &status);
			errno = saved;
			err_sys(e, "spawn %s: child did not reach exec", pl.path);
			goto out;
		}
		n = read(rep_pipe[0], (char *)&rep + got, sizeof(rep) - got);
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n <= 0) {
			break;
		}
		got += (size_t)n;
	}
	if (got > 0) {
		(void)reap_blocking(pid, &status);
		if (got < sizeof(rep)) {
			rep.step = STEP_EXEC;
			rep.err = EIO;
		}
		report_error(&rep, &pl, spec, e);
		errno = rep.err;
		goto out;
	}
	proc_init(p);
	p->pid = pid;
	p->is_child = 1;
	p->group = 1;
	p->pidfd = sys_pidfd_open(pid);
	if (p->pidfd < 0 && errno != ENOSYS) {
		log_warn("pidfd_open %ld, watching by polling instead", (long)pid);
	}
	if (proc_start_time(pid, &p->start_time) != 0) {
		log_warn("start time of %ld", (long)pid);
	}
	rc = 0;
out:
	saved = errno;
	if (rep_pipe[0] >= 0) {
		close(rep_pipe[0]);
	}
	if (rep_pipe[1] >= 0) {
		close(rep_pipe[1]);
	}
	plan_free(&pl);
	errno = saved;
	return rc;
}

int
proc_spawn(const struct proc_spec *spec, struct proc *out, struct err *e)
{
	struct proc p = PROC_INIT;
	int fd, rc, saved;

	if (spec->log_path != NULL) {
		fd = open(spec->log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
		if (fd < 0) {
			err_sys(e, "open log %s", spec->log_path);
			return -1;
		}
	} else {
		fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
		if (fd < 0) {
			err_sys(e, "open /dev/null");
			return -1;
		}
	}
	fd = fd_above_stdio(fd);
	if (fd < 0) {
		err_sys(e, "spawn: dup");
		return -1;
	}
	rc = spawn_with_fd(spec, fd, &p, e);
	saved = errno;
	close(fd);
	if (rc == 0) {
		*out = p;
	}
	errno = saved;
	return rc;
}

/* Kill what is left of the group, then reap the (zombie) leader. */
static int
finish_exit(struct proc *p)
{
	int status = -1;

	if (p->group && kill(-p->pid, SIGKILL) < 0 && errno != ESRCH && errno != EPERM) {
		log_warn("kill group %ld", (long)p->pid);
	}
	if (p->is_child && reap_blocking(p->pid, &status) != 0) {
		if (errno != ECHILD) {
			return -1;
		}
		status = -1; /* reaped behind our back (waitpid(-1) elsewhere) */
	}
	p->status = p->is_child ? status : -1;
	p->exited = 1;
	return 1;
}

/*
 * Our child was reaped by someone else: it is gone, its status is lost, and
 * its pid may already be reused, so the group is not signalled.
 */
static int
lost_child(struct proc *p)
{
	log_warnx("pid %ld was reaped by someone else (waitpid(-1)?): exit status lost",
	    (long)p->pid);
	p->status = -1;
	p->exited = 1;
	return 1;
}

int
proc_poll(struct proc *p)
{
	siginfo_t info;
	struct pollfd pfd;
	int r;

	if (p->exited) {
		return 1;
	}
	if (p->pid <= 0) {
		errno = EINVAL;
		return -1;
	}
	if (p->is_child) {
		memset(&info, 0, sizeof(info));
		do {
			r = waitid(P_PID, (id_t)p->pid, &info, WEXITED | WNOHANG | WNOWAIT);
		} while (r < 0 && errno == EINTR);
		if (r < 0) {
			return errno == ECHILD ? lost_child(p) : -1;
		}
		if (info.si_pid == 0) {
			return 0;
		}
		return finish_exit(p);
	}
	if (p->pidfd >= 0) {
		pfd.fd = p->pidfd;
		pfd.events = POLLIN;
		pfd.revents = 0;
		do {
			r = poll(&pfd, 1, 0);
		} while (r < 0 && errno == EINTR);
		if (r < 0) {
			return -1;
		}
		return r == 0 ? 0 : finish_exit(p);
	}
	return stat_alive(p) ? 0 : finish_exit(p);
}

int
proc_wait(struct proc *p, int timeout_ms)
{
	struct pollfd pfd;
	int64_t deadline = timeout_ms < 0 ? INT64_MAX : mono_ms() + timeout_ms;
	int r, left;

	for (;;) {
		r = proc_poll(p);
		if (r != 0) {
			return r;
		}
		left = timeout_ms < 0 ? -1 : ms_until(deadline);
		if (left == 0) {
			return 0;
		}
		if (p->pidfd >= 0) {
			pfd.fd = p->pidfd;
			pfd.events = POLLIN;
			pfd.revents = 0;
			r = poll(&pfd, 1, left);
		} else {
			r = poll(NULL, 0,
			    left < 0 || left > PROC_FALLBACK_POLL_MS ? PROC_FALLBACK_POLL_MS : left);
		}
		if (r < 0 && errno != EINTR) {
			return -1;
		}
	}
}

int
proc_signal(struct proc *p, int sig)
{
	int r;

	if (p->exited) {
		return 0;
	}
	if (p->pid <= 0) {
		errno = EINVAL;
		return -1;
	}
	if (p->group) {
		r = kill(-p->pid, sig);
	} else if (p->pidfd >= 0) {
		r = sys_pidfd_send_signal(p->pidfd, sig);
		if (r < 0 && errno == ENOSYS) {
			r = kill(p->pid, sig);
		}
	} else {
		r = kill(p->pid, sig);
	}
	if (r < 0 && errno == ESRCH) {
		return 0;
	}
	return r;
}

int
proc_stop(struct proc *p, int grace_ms, struct err *e)
{
	int r;

	r = proc_poll(p);
	if (r == 1) {
		return 0;
	}
	if (r < 0) {
		err_sys(e, "stop %ld: wait", (long)p->pid);
		return -1;
	}
	if (proc_signal(p, SIGTERM) < 0) {
		err_sys(e, "stop %ld: SIGTERM", (long)p->pid);
		return -1;
	}
	/* A stopped (SIGSTOP) process would never act on SIGTERM. */
	if (proc_signal(p, SIGCONT) < 0) {
		log_warn("stop %ld: SIGCONT", (long)p->pid);
	}
	r = proc_wait(p, grace_ms < 0 ? 0 : grace_ms);
	if (r == 1) {
		return 0;
	}
	if (r < 0) {
		err_sys(e, "stop %ld: wait", (long)p->pid);
		return -1;
	}
	log_info("pid %ld still running %d ms after SIGTERM: SIGKILL", (long)p->pid, grace_ms);
	if (proc_signal(p, SIGKILL) < 0) {
		err_sys(e, "stop %ld: SIGKILL", (long)p->pid);
		return -1;
	}
	r = proc_wait(p, PROC_KILL_WAIT_MS);
	if (r == 1) {
		return 1;
	}
	if (r == 0) {
		errno = ETIMEDOUT;
	}
	err_sys(e, "stop %ld: still running %d ms after SIGKILL", (long)p->pid,
	    PROC_KILL_WAIT_MS);
	return -1;
}

/* State letter (field 3) and start time (field 22) of PID from /proc/PID/stat. */
static int
read_stat(pid_t pid, char *state, unsigned long long *out)
{
	char path[64], buf[1024];
	const char *s;
	char *end;
	unsigned long long v;
	ssize_t n;
	int fd, field, saved;

	if (pid <= 0) {
		errno = EINVAL;
		return -1;
	}
	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT) {
			errno = ESRCH;
		}
		return -1;
	}
	do {
		n = read(fd, buf, sizeof(buf) - 1);
	} while (n < 0 && errno == EINTR);
	saved = errno;
	close(fd);
	if (n < 0) {
		errno = saved == ESRCH ? ESRCH : saved;
		return -1;
	}
	buf[n] = '\0';
	s = strrchr(buf, ')');
	if (s == NULL) {
		errno = EINVAL;
		return -1;
	}
	s++;
	while (*s == ' ') {
		s++;
	}
	if (*s == '\0') {
		errno = EINVAL;
		return -1;
	}
	*state = *s;
	/* After "(comm)" come fields 3 (state) .. 22 (starttime). */
	for (field = 3; field < 22; field++) {
		while (*s == ' ') {
			s++;
		}
		while (*s != ' ' && *s != '\0') {
			s++;
		}
		if (*s == '\0') {
			errno = EINVAL;
			return -1;
		}
	}
	while (*s == ' ') {
		s++;
	}
	if (*s < '0' || *s > '9') {
		errno = EINVAL;
		return -1;
	}
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || (*end != ' ' && *end != '\0' && *end != '\n')) {
		errno = EINVAL;
		return -1;
	}
	*out = v;
	return 0;
}

int
proc_start_time(pid_t pid, unsigned long long *out)
{
	char state;

	return read_stat(pid, &state, out);
}

/* Same process (start time) and not yet exited (zombies count as gone)? */
static int
stat_alive(const struct proc *p)
{
	unsigned long long st;
	char state;

	return read_stat(p->pid, &state, &st) == 0 && st == p->start_time && state != 'Z' &&
	    state != 'X';
}

int
proc_alive(const struct proc *p)
{
	struct pollfd pfd;
	siginfo_t info;

	if (p->pid <= 0 || p->exited) {
		return 0;
	}
	if (p->pidfd >= 0) {
		pfd.fd = p->pidfd;
		pfd.events = POLLIN;
		pfd.revents = 0;
		return poll(&pfd, 1, 0) == 0;
	}
	if (p->is_child) {
		memset(&info, 0, sizeof(info));
		if (waitid(P_PID, (id_t)p->pid, &info, WEXITED | WNOHANG | WNOWAIT) < 0) {
			return 0;
		}
		return info.si_pid == 0;
	}
	return stat_alive(p);
}

int
proc_boot_id(char *out, size_t outlen)
{
	char buf[64];
	ssize_t n;
	int fd, saved;

	if (outlen < 37) {
		errno = ERANGE;
		return -1;
	}
	fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		return -1;
	}
	do {
		n = read(fd, buf, sizeof(buf) - 1);
	} while (n < 0 && errno == EINTR);
	saved = errno;
	close(fd);
	if (n < 0) {
		errno = saved;
		return -1;
	}
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' ')) {
		n--;
	}
	if (n != 36) {
		errno = EINVAL;
		return -1;
	}
	memcpy(out, buf, 36);
	out[36] = '\0';
	return 0;
}

/* Same file (device and inode) as what /proc/PID/exe points to? */
static int
same_exe(pid_t pid, const char *exe_path, struct err *e)
{
	char link[64];
	struct stat a, b;

	snprintf(link, sizeof(link), "/proc/%ld/exe", (long)pid);
	if (stat(link, &a) < 0) {
		if (errno == ENOENT) {
			errno = ESRCH;
		}
		err_sys_kind(e, errno == ESRCH ? ERR_NOT_FOUND : ERR_IO, "adopt %ld: executable",
		    (long)pid);
		return -1;
	}
	if (stat(exe_path, &b) < 0) {
		err_sys(e, "adopt %ld: stat %s", (long)pid, exe_path);
		return -1;
	}
	if (a.st_dev != b.st_dev || a.st_ino != b.st_ino) {
		errno = PROC_ADOPT_EXE_MISMATCH;
		err_set(e, ERR_CONFLICT, "adopt %ld: runs another executable than %s", (long)pid,
		    exe_path);
		return -1;
	}
	return 0;
}

/* An environment block bigger than this (far above ARG_MAX) is not read. */
#define PROC_ENV_MAX (4u * 1024 * 1024)

/* 1 when /proc/PID/environ holds the entry KV (KVLEN bytes, no NUL). */
static int
env_has(pid_t pid, const char *kv, size_t kvlen)
{
	char path[64], *buf = NULL, *tmp;
	size_t cap = 0, len = 0, off;
	ssize_t r;
	int fd, found = 0;

	(void)snprintf(path, sizeof(path), "/proc/%ld/environ", (long)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		return 0;
	}
	for (;;) {
		if (len == cap) {
			if (cap >= PROC_ENV_MAX) {
				break;
			}
			cap = cap == 0 ? 16384 : cap * 2;
			tmp = realloc(buf, cap + 1);
			if (tmp == NULL) {
				break;
			}
			buf = tmp;
		}
		r = read(fd, buf + len, cap - len);
		if (r < 0 && errno == EINTR) {
			continue;
		}
		if (r <= 0) {
			break;
		}
		len += (size_t)r;
	}
	(void)close(fd);
	for (off = 0; buf != NULL && off < len && !found; off += strnlen(buf + off, len - off) + 1) {
		found = len - off > kvlen && memcmp(buf + off, kv, kvlen) == 0 &&
		    buf[off + kvlen] == '\0';
	}
	free(buf);
	return found;
}

int
proc_find_env(const char *kv, pid_t *pids, size_t max, size_t *n, struct err *e)
{
	DIR *d;
	struct dirent *de;
	size_t kvlen = strlen(kv), found = 0;
	pid_t self = getpid();
	long long v;
	char *end;

	*n = 0;
	d = opendir("/proc");
	if (d == NULL) {
		return err_sys(e, "list /proc");
	}
	while ((de = readdir(d)) != NULL) {
		if (!isdigit((unsigned char)de->d_name[0])) {
			continue;
		}
		errno = 0;
		v = strtoll(de->d_name, &end, 10);
		if (errno != 0 || *end != '\0' || v <= 1 || v > INT32_MAX || (pid_t)v == self) {
			continue;
		}
		if (env_has((pid_t)v, kv, kvlen)) {
			if (found < max) {
				pids[found] = (pid_t)v;
			}
			found++;
		}
	}
	(void)closedir(d);
	*n = found;
	return 0;
}

int
proc_adopt(pid_t pid, unsigned long long start_time, const char *exe_path, struct proc *out,
    struct err *e)
{
	struct proc p = PROC_INIT;
	unsigned long long st;

	if (pid <= 1) {
		errno = EINVAL;
		err_set(e, ERR_INTERNAL, "adopt %ld: invalid pid", (long)pid);
		return -1;
	}
	if (proc_start_time(pid, &st) != 0) {
		err_sys_kind(e, errno == ESRCH ? ERR_NOT_FOUND : ERR_IO, "adopt %ld", (long)pid);
		return -1;
	}
	if (st != start_time) {
		errno = ESRCH;
		err_set(e, ERR_NOT_FOUND, "adopt %ld: start time %llu, expected %llu (pid reused)",
		    (long)pid, st, start_time);
		return -1;
	}
	if (exe_path != NULL && same_exe(pid, exe_path, e) != 0) {
		return -1;
	}
	p.pid = pid;
	p.start_time = start_time;
	p.pidfd = sys_pidfd_open(pid);
	if (p.pidfd < 0 && errno != ENOSYS) {
		err_sys_kind(e, errno == ESRCH ? ERR_NOT_FOUND : ERR_IO, "adopt %ld: pidfd_open",
		    (long)pid);
		return -1;
	}
	/* The pid could have been recycled between the checks and pidfd_open. */
	if (proc_start_time(pid, &st) != 0 || st != start_time) {
		proc_release(&p);
		errno = ESRCH;
		err_set(e, ERR_NOT_FOUND, "adopt %ld: exited while being adopted", (long)pid);
		return -1;
	}
	p.group = getpgid(pid) == pid;
	*out = p;
	return 0;
}

void
proc_release(struct proc *p)
{
	if (p == NULL) {
		return;
	}
	if (p->pidfd >= 0) {
		close(p->pidfd);
	}
	proc_init(p);
}

int
proc_run_capture(const struct proc_spec *spec, int timeout_ms, char *out, size_t max_out,
    size_t *out_len, int *status, struct err *e)
{
	struct proc p = PROC_INIT;
	struct pollfd pfd;
	char sink[4096];
	int pipefd[2] = { -1, -1 };
	int64_t deadline = mono_ms() + (timeout_ms < 0 ? 0 : timeout_ms);
	size_t kept = 0;
	ssize_t n;
	int rc = -1, r, saved, eof = 0;

	if (out != NULL && max_out > 0) {
		out[0] = '\0';
	}
	if (out_len != NULL) {
		*out_len = 0;
	}
	if (pipe2(pipefd, O_CLOEXEC) < 0) {
		err_sys(e, "spawn: pipe");
		return -1;
	}
	pipefd[0] = fd_above_stdio(pipefd[0]);
	pipefd[1] = fd_above_stdio(pipefd[1]);
	if (pipefd[0] < 0 || pipefd[1] < 0) {
		err_sys(e, "spawn: pipe");
		goto out;
	}
	if (spawn_with_fd(spec, pipefd[1], &p, e) != 0) {
		goto out;
	}
	close(pipefd[1]);
	pipefd[1] = -1;
	while (!eof) {
		pfd.fd = pipefd[0];
		pfd.events = POLLIN;
		pfd.revents = 0;
		r = poll(&pfd, 1, ms_until(deadline));
		if (r < 0 && errno == EINTR) {
			continue;
		}
		if (r < 0) {
			err_sys(e, "read output");
			goto kill;
		}
		if (r == 0) {
			errno = ETIMEDOUT;
			err_set(e, ERR_TIMEOUT, "%s: timed out after %d ms", spec->argv[0],
			    timeout_ms);
			goto kill;
		}
		n = read(pipefd[0], sink, sizeof(sink));
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n < 0) {
			err_sys(e, "read output");
			goto kill;
		}
		if (n == 0) {
			eof = 1;
			break;
		}
		if (out != NULL && kept + 1 < max_out) {
			size_t take = (size_t)n;

			if (take > max_out - 1 - kept) {
				take = max_out - 1 - kept;
			}
			memcpy(out + kept, sink, take);
			kept += take;
			out[kept] = '\0';
		}
	}
	r = proc_wait(&p, ms_until(deadline));
	if (r < 0) {
		err_sys(e, "wait %s", spec->argv[0]);
		goto kill;
	}
	if (r == 0) {
		errno = ETIMEDOUT;
		err_set(e, ERR_TIMEOUT, "%s: timed out after %d ms", spec->argv[0], timeout_ms);
		goto kill;
	}
	if (status != NULL) {
		*status = p.status;
	}
	rc = 0;
	goto out;
kill:
	saved = errno;
	{
		struct err se = ERR_INIT;

		if (proc_stop(&p, 1000, &se) < 0) {
			log_warnx("%s", err_msg(&se));
		}
	}
	errno = saved;
out:
	saved = errno;
	if (out_len != NULL) {
		*out_len = kept;
	}
	proc_release(&p);
	if (pipefd[0] >= 0) {
		close(pipefd[0]);
	}
	if (pipefd[1] >= 0) {
		close(pipefd[1]);
	}
	errno = saved;
	return rc;
}

const char *
proc_status_str(int status, char *buf, size_t len)
{
	if (status == -1) {
		snprintf(buf, len, "exited (status unknown)");
	} else if (WIFEXITED(status)) {
		snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
	} else if (WIFSIGNALED(status)) {
		snprintf(buf, len, "killed by signal %d (%s)%s", WTERMSIG(status),
		    strsignal(WTERMSIG(status)), WCOREDUMP(status) ? ", core dumped" : "");
	} else {
		snprintf(buf, len, "wait status 0x%x", (unsigned)status);
	}
	return buf;
}
