/*
 * common/proc: real child processes (/bin/sh scripts). Processes report
 * readiness and the pids of their own children through a pipe passed as
 * keep_fd, so nothing here sleeps: every wait is a poll with a deadline.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/fs.h"
#include "common/log.h"
#include "common/proc.h"
#include "common/util.h"
#include "tests/unit/tmpdir.h"

struct fixture {
	const char *dir;
	int rd; /* read end of the report pipe */
	int wr; /* write end, passed as keep_fd (>= 3) */
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	int p[2];

	assert_non_null(f);
	f->dir = tmpdir_make("proc");
	assert_non_null(f->dir);
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	f->rd = p[0];
	f->wr = p[1];
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	close(f->rd);
	close(f->wr);
	assert_int_equal(tmpdir_remove(), 0);
	free(f);
	return 0;
}

/* Read one line from FD within TIMEOUT_MS; returns its length or -1. */
static int
read_line(int fd, char *buf, size_t len, int timeout_ms)
{
	int64_t deadline = mono_ms() + timeout_ms;
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	size_t n = 0;
	ssize_t r;
	char c;

	while (n + 1 < len) {
		if (poll(&pfd, 1, ms_until(deadline)) <= 0) {
			return -1;
		}
		r = read(fd, &c, 1);
		if (r <= 0) {
			return -1;
		}
		if (c == '\n') {
			break;
		}
		buf[n++] = c;
	}
	buf[n] = '\0';
	return (int)n;
}

static pid_t
read_pid(int fd)
{
	char line[64];
	long long v;

	assert_true(read_line(fd, line, sizeof(line), 5000) > 0);
	assert_int_equal(parse_ll(line, 2, INT32_MAX, &v), 0);
	return (pid_t)v;
}

static void
sh_spec(struct proc_spec *s, const char *const *argv, int keep_fd)
{
	proc_spec_init(s);
	s->argv = argv;
	s->keep_fd = keep_fd;
}

static int
pidfd_of(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

/* 1 if PIDFD turns readable (process exited) within TIMEOUT_MS. */
static int
pidfd_exits(int pidfd, int timeout_ms)
{
	struct pollfd pfd = { .fd = pidfd, .events = POLLIN };

	return poll(&pfd, 1, timeout_ms) == 1;
}

/* 1 once PID runs PATH (it reported its pid before its exec), within TIMEOUT_MS. */
static int
wait_exe(pid_t pid, const char *path, int timeout_ms)
{
	int64_t deadline = mono_ms() + timeout_ms;
	char link[64];
	struct stat a, b;

	snprintf(link, sizeof(link), "/proc/%ld/exe", (long)pid);
	assert_int_equal(stat(path, &b), 0);
	while (ms_until(deadline) > 0) {
		if (stat(link, &a) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino) {
			return 1;
		}
		(void)poll(NULL, 0, 2);
	}
	return 0;
}

static void
test_exit_status(void **state)
{
	static const char *const argv[] = { "/bin/sh", "-c", "exit 3", NULL };
	struct proc p = PROC_INIT;
	struct proc_spec s;
	char buf[64];
	struct err e = ERR_INIT;

	(void)state;
	sh_spec(&s, argv, -1);
	assert_int_equal(proc_spawn(&s, &p, &e), 0);
	assert_true(p.pid > 0);
	assert_true(p.pidfd >= 0);
	assert_true(p.is_child);
	assert_true(p.start_time > 0);
	assert_int_equal(proc_wait(&p, 5000), 1);
	assert_true(p.exited);
	assert_true(WIFEXITED(p.status));
	assert_int_equal(WEXITSTATUS(p.status), 3);
	assert_string_equal(proc_status_str(p.status, buf, sizeof(buf)), "exited with status 3");
	/* Reaped: no such child any more. */
	assert_int_equal(waitpid(p.pid, NULL, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);
	/* Polling and stopping an exited process is harmless. */
	assert_int_equal(proc_poll(&p), 1);
	assert_int_equal(proc_stop(&p, 100, &e), 0);
	proc_release(&p);
	assert_int_equal(p.pid, 0);
	assert_int_equal(p.pidfd, -1);
}

static void
test_reaped_elsewhere(void **state)
{
	static const char *const argv[] = { "/bin/sh", "-c", "exit 5", NULL };
	struct proc p = PROC_INIT;
	struct proc_spec s;
	struct err e = ERR_INIT;
	int status;

	(void)state;
	sh_spec(&s, argv, -1);
	assert_int_equal(proc_spawn(&s, &p, &e), 0);
	assert_int_equal(waitpid(p.pid, &status, 0), p.pid); /* behind proc's back */
	assert_int_equal(WEXITSTATUS(status), 5);
	assert_int_equal(proc_wait(&p, 5000), 1);
	assert_true(p.exited);
	assert_int_equal(p.status, -1);
	assert_int_equal(proc_stop(&p, 100, &e), 0);
	proc_release(&p);
}

static void
test_log_file_appended(void **state)
{
	struct fixture *f = *state;
	static const char *const argv[] = { "/bin/sh", "-c", "echo out; echo err >&2", NULL };
	struct proc p = PROC_INIT;
	struct proc_spec s;
	char log[PATH_MAX], *data = NULL;
	struct err e = ERR_INIT;
	struct stat st;

	snprintf(log, sizeof(log), "%s/agent.log", f->dir);
	assert_int_equal(fs_write_atomic(log, "before\n", 7, 0640), 0);
	sh_spec(&s, argv, -1);
	s.log_path = log;
	assert_int_equal(proc_spawn(&s, &p, &e), 0);
	assert_int_equal(proc_wait(&p, 5000), 1);
	assert_int_equal(fs_read_file(log, 4096, &data, NULL), 0);
	assert_string_equal(data, "before\nout\nerr\n");
	free(data);
	proc_release(&p);

	/* Created when absent, 0640. */
	snprintf(log, sizeof(log), "%s/new.log", f->dir);
	s.log_path = log;
	assert_int_equal(proc_spawn(&s, &p, &e), 0);
	assert_int_equal(proc_wait(&p, 5000), 1);
	assert_int_equal(stat(log, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	proc_release(&p);

	/* A log that cannot be opened is a spawn error, nothing is started. */
	snprintf(log, sizeof(log), "%s/missing-dir/x.log", f->dir);
	s.log_path = log;
	assert_int_equal(proc_spawn(&s, &p, &e), -1);
	assert_int_equal(errno, ENOENT);
	assert_non_null(strstr(err_msg(&e), "open log"));
	assert_int_equal(p.pid, 0);
}

static void
test_exec_failure_reported(void **state)
{
	struct fixture *f = *state;
	const char *argv[] = { NULL, NULL };
	struct proc p = PROC_INIT;
	struct proc_spec s;
	char path[PATH_MAX];
	struct err e = ERR_INIT;

	sh_spec(&s, argv, -1);
	argv[0] = "/nonexistent/tandem-agent";
	assert_int_equal(proc_spawn(&s, &p, &e), -1);
	assert_int_equal(errno, ENOENT);
	assert_string_equal(err_msg(&e), "exec /nonexistent/tandem-agent: No such file or directory");
	assert_int_equal(e.kind, ERR_IO);
	assert_int_equal(e.sys_errno, ENOENT);
	assert_int_equal(p.pid, 0);
	assert_int_equal(waitpid(-1, NULL, WNOHANG), -1); /* the failed child was reaped */
	assert_int_equal(errno, ECHILD);

	/* Not executable. */
	snprintf(path, sizeof(path), "%s/notexec", f->dir);
	assert_int_equal(fs_write_atomic(path, "#!/bin/sh\n", 10, 0644), 0);
	argv[0] = path;
	assert_int_equal(proc_spawn(&s, &p, &e), -1);
	assert_int_equal(errno, EACCES);
	assert_non_null(strstr(err_msg(&e), "Permission denied"));

	/* A bare name not in PATH. */
	argv[0] = "tandem-no-such-program";
	assert_int_equal(proc_spawn(&s, &p, &e), -1);
	assert_int_equal(errno, ENOENT);
	assert_non_null(strstr(err_msg(&e), "not found in PATH"));
	assert_int_equal(e.kind, ERR_NOT_FOUND);

	/* A missing working directory. */
	argv[0] = "/bin/true";
	s.cwd = "/nonexistent-dir";
	assert_int_equal(proc_spawn(&s, &p, &e), -1);
	assert_int_equal(errno, ENOENT);
	assert_string_equal(err_msg(&e), "chdir /nonexistent-dir: No such file or directory");

	/* Bad arguments. */
	s.cwd = NULL;
	argv[0] = NULL;
	assert_int_equal(proc_spawn(&s, &p, &e), -1);
	assert_int_equal(errno, EINVAL);
	argv[0] = "/bin/true";
	s.keep_fd = 1;
	assert_int_equal(proc_spawn(&s, &p, &e), -1);
	assert_int_equal(errno, EBADF);
}

static void
test_cwd_env_path_search(void **state)
{
	struct fixture *f = *state;
	static const char *const argv[] = { "sh", "-c",
		"echo \"$(pwd) [$TANDEM_T] [$TANDEM_KEEP] [${HOME-unset}]\"", NULL };
	static const char *const env[] = { "TANDEM_T=x y", "TANDEM_KEEP=new", NULL };
	struct proc_spec s;
	char out[512], want[PATH_MAX + 64];
	size_t n;
	int status;
	struct err e = ERR_INIT;

	assert_int_equal(setenv("TANDEM_KEEP", "old", 1), 0);
	assert_int_equal(setenv("HOME", "/root-test", 1), 0);
	sh_spec(&s, argv, -1);
	s.cwd = f->dir;
	s.env_add = env;
	assert_int_equal(proc_run_capture(&s, 5000, out, sizeof(out), &n, &status, &e), 0);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	snprintf(want, sizeof(want), "%s [x y] [new] [/root-test]\n", f->dir);
	assert_string_equal(out, want);
	assert_int_equal(n, strlen(want));

	s.clear_env = 1;
	assert_int_equal(proc_run_capture(&s, 5000, out, sizeof(out), &n, &status, &e), 0);
	snprintf(want, sizeof(want), "%s [x y] [new] [unset]\n", f->dir);
	assert_string_equal(out, want);
	unsetenv("TANDEM_KEEP");
}

static void
test_signals_and_fds_reset(void **state)
{
	struct fixture *f = *state;
	static const char *const argv[] = { "/bin/cat", "/proc/self/status", NULL };
	sigset_t block, old;
	struct sigaction ign, oldact;
	struct proc_spec s;
	char out[8192], script[256];
	struct err e = ERR_INIT;
	const char *argv2[] = { "/bin/sh", "-c", script, NULL };
	int leak, status;

	sigemptyset(&block);
	sigaddset(&block, SIGUSR2);
	assert_int_equal(sigprocmask(SIG_BLOCK, &block, &old), 0);
	memset(&ign, 0, sizeof(ign));
	ign.sa_handler = SIG_IGN;
	assert_int_equal(sigaction(SIGUSR1, &ign, &oldact), 0);
	sh_spec(&s, argv, -1);
	assert_int_equal(proc_run_capture(&s, 5000, out, sizeof(out), NULL, &status, &e), 0);
	assert_int_equal(sigprocmask(SIG_SETMASK, &old, NULL), 0);
	assert_int_equal(sigaction(SIGUSR1, &oldact, NULL), 0);
	assert_non_null(strstr(out, "SigBlk:\t0000000000000000\n"));
	/*
	 * Every signal the C library lets us touch is back to SIG_DFL. Signals
	 * 32 and 33 are glibc-internal (SIGCANCEL, SIGSETXID): sigaction()
	 * refuses them, so an ignored state inherited from the caller (GNU make
	 * leaves them ignored) stays; mask those two bits out.
	 */
	{
		const char *ig = strstr(out, "SigIgn:\t");
		unsigned long long mask;

		assert_non_null(ig);
		mask = strtoull(ig + 8, NULL, 16);
		assert_int_equal(mask & ~((1ULL << 31) | (1ULL << 32)), 0);
	}

	/* A descriptor without O_CLOEXEC does not leak; keep_fd does reach the child. */
	leak = open("/dev/null", O_RDONLY);
	assert_true(leak >= 3);
	snprintf(script, sizeof(script),
	    "for n in %d %d; do if [ -e /proc/$$/fd/$n ]; then echo open; else echo closed; fi; done",
	    leak, f->wr);
	sh_spec(&s, argv2, f->wr);
	assert_int_equal(proc_run_capture(&s, 5000, out, sizeof(out), NULL, &status, &e), 0);
	assert_string_equal(out, "closed\nopen\n");
	s.keep_fd = -1;
	assert_int_equal(proc_run_capture(&s, 5000, out, sizeof(out), NULL, &status, &e), 0);
	assert_string_equal(out, "closed\nclosed\n");
	close(leak);
	/* Still close-on-exec in the parent. */
	assert_true(fcntl(f->wr, F_GETFD) & FD_CLOEXEC);
}

static void
test_stop_sigterm(void **state)
{
	struct fixture *f = *state;
	char script[128];
	const char *argv[] = { "/bin/sh", "-c", script, NULL };
	struct proc p = PROC_INIT;
	struct proc_spec s;
	struct err e = ERR_INIT;

	snprintf(script, sizeof(script), "echo $$ >&%d; exec sleep 120", f->wr);
	sh_spec(&s, argv, f->wr);
	assert_int_equal(proc_spawn(&s, &p, &e), 0);
	assert_int_equal(read_pid(f->rd), p.pid);
	assert_int_equal(getpgid(p.pid), p.pid); /* own group */
	assert_int_equal(getsid(p.pid), p.pid);  /* own session */
	assert_int_equal(proc_wait(&p, 0), 0);
	assert_int_equal(proc_alive(&p), 1);
	assert_int_equal(proc_stop(&p, 5000, &e), 0);
	assert_int_equal(proc_alive(&p), 0);
	assert_true(WIFSIGNALED(p.status));
	assert_int_equal(WTERMSIG(p.status), SIGTERM);
	assert_int_equal(kill(p.pid, 0), -1);
	proc_release(&p);
}

static void
test_stop_ignores_sigterm_killed(void **state)
{
	struct fixture *f = *state;
	char script[128];
	const char *argv[] = { "/bin/sh", "-c", script, NULL };
	struct proc p = PROC_INIT;
	struct proc_spec s;
	struct err e = ERR_INIT;
	int64_t t0, dt;

	snprintf(script, sizeof(script), "trap '' TERM; echo $$ >&%d; exec sleep 120", f->wr);
	sh_spec(&s, argv, f->wr);
	assert_int_equal(proc_spawn(&s, &p, &e), 0);
	assert_int_equal(read_pid(f->rd), p.pid);
	t0 = mono_ms();
	assert_int_equal(proc_stop(&p, 300, &e), 1);
	dt = mono_ms() - t0;
	assert_true(dt >= 290);
	assert_true(dt < 3000);
	assert_true(WIFSIGNALED(p.status));
	assert_int_equal(WTERMSIG(p.status), SIGKILL);
	proc_release(&p);
}

static void
test_stop_kills_whole_group(void **state)
{
	struct fixture *f = *state;
	char script[256];
	const char *argv[] = { "/bin/sh", "-c", script, NULL };
	struct proc p = PROC_INIT;
	struct proc_spec s;
	char line[512], *status = NULL;
	struct err e = ERR_INIT;
	const char *sigign;
	pid_t g1, g2;
	int fd1, fd2;

	/* Two grandchildren: one dies on SIGTERM, one ignores it. */
	snprintf(script, sizeof(script),
	    "sleep 120 & echo $! >&%d; "
	    "sh -c 'trap \"\" TERM; echo $$ >&%d; exec sleep 120' & wait",
	    f->wr, f->wr);
	sh_spec(&s, argv, f->wr);
	assert_int_equal(proc_spawn(&s, &p, &e), 0);
	g1 = read_pid(f->rd);
	g2 = read_pid(f->rd);
	assert_int_equal(getpgid(g1), p.pid);
	assert_int_equal(getpgid(g2), p.pid);
	fd1 = pidfd_of(g1);
	fd2 = pidfd_of(g2);
	assert_true(fd1 >= 0 && fd2 >= 0);
	/* g2 ignores SIGTERM: only the SIGKILL of the leftovers ends it. */
	assert_true(wait_exe(g2, "/bin/sleep", 5000));
	snprintf(line, sizeof(line), "/proc/%ld/status", (long)g2);
	assert_int_equal(fs_read_file(line, 65536, &status, NULL), 0);
	sigign = strstr(status, "SigIgn:\t");
	assert_non_null(sigign);
	assert_true(strtoull(sigign + 8, NULL, 16) & (1ull << (SIGTERM - 1)));
	free(status);
	assert_int_equal(proc_stop(&p, 2000, &e), 0);
	assert_true(pidfd_exits(fd1, 3000));
	assert_true(pidfd_exits(fd2, 3000));
	close(fd1);
	close(fd2);
	proc_release(&p);
}

static void
test_leader_exit_kills_leftovers(void **state)
{
	struct fixture *f = *state;
	char script[128];
	const char *argv[] = { "/bin/sh", "-c", script, NULL };
	struct proc p = PROC_INIT;
	struct proc_spec s;
	struct err e = ERR_INIT;
	pid_t g;
	int fd;

	/* The leader "crashes" and leaves a worker holding (say) the port. */
	snprintf(script, sizeof(script), "sleep 120 & echo $! >&%d; read x; exit 7", f->wr);
	sh_spec(&s, argv, f->wr);
	/* stdin is /dev/null: "read" returns at once, so the order is: report, exit. */
	assert_int_equal(proc_spawn(&s, &p, &e), 0);
	g = read_pid(f->rd);
	fd = pidfd_of(g);
	assert_true(fd >= 0);
	assert_int_equal(proc_wait(&p, 5000), 1);
	assert_int_equal(WEXITSTATUS(p.status), 7);
	assert_true(pidfd_exits(fd, 3000));
	close(fd);
	proc_release(&p);
}

static void
test_no_pidfd_fallback(void **state)
{
	struct fixture *f = *state;
	char script[128];
	const char *argv[] = { "/bin/sh", "-c", script, NULL };
	struct proc p = PROC_INIT;
	struct proc_spec s;
	struct err e = ERR_INIT;

	snprintf(script, sizeof(script), "echo $$ >&%d; exec sleep 120", f->wr);
	sh_spec(&s, argv, f->wr);
	assert_int_equal(proc_spawn(&s, &p, &e), 0);
	close(p.pidfd);
	p.pidfd = -1; /* as on a kernel without pidfd_open */
	assert_int_equal(read_pid(f->rd), p.pid);
	assert_int_equal(proc_wait(&p, 30), 0);
	assert_int_equal(proc_stop(&p, 5000, &e), 0);
	assert_int_equal(WTERMSIG(p.status), SIGTERM);
	proc_release(&p);
}

static void
test_adopt(void **state)
{
	struct fixture *f = *state;
	char script[128];
	const char *argv[] = { "/bin/sh", "-c", script, NULL };
	struct proc p = PROC_INIT, a = PROC_INIT;
	struct proc_spec s;
	struct err e = ERR_INIT;
	unsigned long long st;
	pid_t orphan;

	/* An orphan, like an agent whose updater died: not our child. */
	snprintf(script, sizeof(script), "(exec sleep 120) & echo $! >&%d", f->wr);
	sh_spec(&s, argv, f->wr);
	assert_int_equal(proc_spawn(&s, &p, &e), 0);
	orphan = read_pid(f->rd);
	assert_true(wait_exe(orphan, "/bin/sleep", 5000));
	/* proc_poll would kill the group's leftovers: reap the shell by hand. */
	assert_int_equal(waitpid(p.pid, NULL, 0), p.pid);
	proc_release(&p);
	assert_int_equal(proc_start_time(orphan, &st), 0);

	/* Wrong start time: pid reused as far as we can tell. */
	assert_int_equal(proc_adopt(orphan, st + 1, "/bin/sleep", &a, &e), -1);
	assert_int_equal(errno, ESRCH);
	assert_non_null(strstr(err_msg(&e), "pid reused"));
	assert_int_equal(e.kind, ERR_NOT_FOUND);
	/* Wrong executable. */
	assert_int_equal(proc_adopt(orphan, st, "/bin/sh", &a, &e), -1);
	assert_int_equal(errno, PROC_ADOPT_EXE_MISMATCH);
	assert_non_null(strstr(err_msg(&e), "another executable"));
	assert_int_equal(e.kind, ERR_CONFLICT);
	/* Missing expected executable. */
	assert_int_equal(proc_adopt(orphan, st, "/nonexistent", &a, &e), -1);
	assert_int_equal(errno, ENOENT);
	/* No such process. */
	assert_int_equal(proc_adopt(INT32_MAX - 1, st, NULL, &a, &e), -1);
	assert_int_equal(errno, ESRCH);
	assert_int_equal(e.kind, ERR_NOT_FOUND);
	assert_int_equal(proc_adopt(1, st, NULL, &a, &e), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(a.pid, 0);

	/* Right: via a symlinked path (/bin -> usr/bin) as well. */
	assert_int_equal(proc_adopt(orphan, st, "/usr/bin/sleep", &a, &e), 0);
	proc_release(&a);
	assert_int_equal(proc_adopt(orphan, st, "/bin/sleep", &a, &e), 0);
	assert_int_equal(a.pid, orphan);
	assert_false(a.is_child);
	assert_false(a.group); /* its group is the dead shell's */
	assert_true(a.pidfd >= 0);
	assert_int_equal(proc_wait(&a, 20), 0);
	assert_int_equal(proc_alive(&a), 1);
	/*
	 * Without a pidfd (old kernel) the exit is seen in /proc: a dead orphan
	 * whose new parent has not reaped it yet is a zombie and counts as gone.
	 */
	close(a.pidfd);
	a.pidfd = -1;
	assert_int_equal(proc_alive(&a), 1);
	assert_int_equal(proc_stop(&a, 5000, &e), 0);
	assert_int_equal(proc_alive(&a), 0);
	assert_true(a.exited);
	assert_int_equal(a.status, -1);
	/* Gone: adopting again fails. */
	proc_release(&a);
}

static void
test_start_time_and_boot_id(void **state)
{
	unsigned long long a, b;
	char id[37];

	(void)state;
	assert_int_equal(proc_start_time(getpid(), &a), 0);
	assert_int_equal(proc_start_time(getpid(), &b), 0);
	assert_true(a == b);
	assert_int_equal(proc_start_time(INT32_MAX - 1, &a), -1);
	assert_int_equal(errno, ESRCH);
	assert_int_equal(proc_start_time(0, &a), -1);
	assert_int_equal(proc_boot_id(id, sizeof(id)), 0);
	assert_int_equal(strlen(id), 36);
	assert_int_equal(id[8], '-');
	assert_int_equal(proc_boot_id(id, 36), -1);
}

/*
 * A tag given at spawn is found in the process and in its children; only exact
 * entries match. The tag holds this test's pid: the gate runs the unit tests of
 * several builds at once, and another run's processes must not count.
 */
static void
test_find_env(void **state)
{
	static const char *const argv[] = { "/bin/sh", "-c", "sleep 30 & exec sleep 30", NULL };
	char tag[64], prefix[64], longer[80];
	const char *env[] = { tag, NULL };
	struct proc_spec s;
	struct proc p = PROC_INIT;
	struct err e = ERR_INIT;
	pid_t pids[8];
	size_t n = 0, i;
	int64_t deadline;
	int leader = 0;

	(void)state;
	snprintf(tag, sizeof(tag), "TANDEM_T_TAG=/x/%ld/y", (long)getpid());
	snprintf(prefix, sizeof(prefix), "TANDEM_T_TAG=/x/%ld", (long)getpid());
	snprintf(longer, sizeof(longer), "%s/z", tag);
	assert_int_equal(proc_find_env(tag, pids, 8, &n, &e), 0);
	assert_int_equal(n, 0);
	sh_spec(&s, argv, -1);
	s.env_add = env;
	assert_int_equal(proc_spawn(&s, &p, &e), 0);
	/* The shell forks its child, then becomes sleep: two tagged processes. */
	deadline = mono_ms() + 5000;
	do {
		assert_int_equal(proc_find_env(tag, pids, 8, &n, &e), 0);
	} while (n < 2 && mono_ms() < deadline);
	assert_int_equal(n, 2);
	for (i = 0; i < n && i < 8; i++) {
		leader |= pids[i] == p.pid;
		assert_int_equal(getsid(pids[i]), p.pid);
	}
	assert_true(leader);
	/* A prefix, a longer value or the bare name is not the entry. */
	assert_int_equal(proc_find_env(prefix, pids, 8, &n, &e), 0);
	assert_int_equal(n, 0);
	assert_int_equal(proc_find_env(longer, pids, 8, &n, &e), 0);
	assert_int_equal(n, 0);
	assert_int_equal(proc_find_env("TANDEM_T_TAG", pids, 8, &n, &e), 0);
	assert_int_equal(n, 0);
	/* More matches than room: counted, not written past MAX. */
	assert_int_equal(proc_find_env(tag, pids, 1, &n, &e), 0);
	assert_int_equal(n, 2);
	assert_int_equal(proc_stop(&p, 2000, &e) >= 0, 1);
	proc_release(&p);
	deadline = mono_ms() + 5000;
	do {
		assert_int_equal(proc_find_env(tag, pids, 8, &n, &e), 0);
	} while (n > 0 && mono_ms() < deadline);
	assert_int_equal(n, 0);
}

static void
test_run_capture(void **state)
{
	static const char *const big[] = { "/bin/sh", "-c",
		"i=0; while [ $i -lt 200 ]; do echo 0123456789012345678901234567890123456789; "
		"i=$((i+1)); done; echo done >&2; exit 4", NULL };
	static const char *const slow[] = { "/bin/sh", "-c", "exec sleep 120", NULL };
	struct proc_spec s;
	char out[100];
	struct err e = ERR_INIT;
	size_t n;
	int status = 0;
	int64_t t0;

	(void)state;
	sh_spec(&s, big, -1);
	assert_int_equal(proc_run_capture(&s, 5000, out, sizeof(out), &n, &status, &e), 0);
	assert_int_equal(n, 99);
	assert_int_equal(strlen(out), 99);
	assert_int_equal(WEXITSTATUS(status), 4);

	sh_spec(&s, slow, -1);
	t0 = mono_ms();
	assert_int_equal(proc_run_capture(&s, 150, out, sizeof(out), &n, &status, &e), -1);
	assert_int_equal(errno, ETIMEDOUT);
	assert_non_null(strstr(err_msg(&e), "timed out after 150 ms"));
	assert_int_equal(e.kind, ERR_TIMEOUT);
	assert_true(mono_ms() - t0 < 3000);
	assert_int_equal(waitpid(-1, NULL, WNOHANG), -1); /* nothing left behind */
}

static void
test_run_as_user(void **state)
{
	static const char *const argv[] = { "/bin/sh", "-c", "id -u; id -g; id -G", NULL };
	struct proc_spec s;
	char out[256];
	struct err e = ERR_INIT;
	int status;

	(void)state;
	sh_spec(&s, argv, -1);
	s.user = "tandem-no-such-user";
	assert_int_equal(proc_run_capture(&s, 5000, out, sizeof(out), NULL, &status, &e), -1);
	assert_non_null(strstr(err_msg(&e), "unknown"));
	assert_int_equal(e.kind, ERR_CONFIG);
	s.user = NULL;
	s.group = "tandem-no-such-group";
	assert_int_equal(proc_run_capture(&s, 5000, out, sizeof(out), NULL, &status, &e), -1);
	assert_non_null(strstr(err_msg(&e), "unknown"));
	if (geteuid() != 0) {
		s.group = NULL;
		s.user = "0";
		assert_int_equal(proc_run_capture(&s, 5000, out, sizeof(out), NULL, &status, &e), -1);
		assert_int_equal(errno, EPERM);
		skip();
	}
	s.user = "nobody";
	s.group = NULL;
	assert_int_equal(proc_run_capture(&s, 5000, out, sizeof(out), NULL, &status, &e), 0);
	assert_string_equal(out, "65534\n65534\n65534\n");
	s.user = "65534";
	s.group = "12345";
	assert_int_equal(proc_run_capture(&s, 5000, out, sizeof(out), NULL, &status, &e), 0);
	assert_string_equal(out, "65534\n12345\n12345\n");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exit_status),
		cmocka_unit_test(test_reaped_elsewhere),
		cmocka_unit_test_setup_teardown(test_log_file_appended, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exec_failure_reported, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cwd_env_path_search, setup, teardown),
		cmocka_unit_test_setup_teardown(test_signals_and_fds_reset, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop_sigterm, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop_ignores_sigterm_killed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop_kills_whole_group, setup, teardown),
		cmocka_unit_test_setup_teardown(test_leader_exit_kills_leftovers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_pidfd_fallback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_adopt, setup, teardown),
		cmocka_unit_test(test_start_time_and_boot_id),
		cmocka_unit_test(test_run_capture),
		cmocka_unit_test(test_find_env),
		cmocka_unit_test(test_run_as_user),
	};

	log_init("test_proc", LOG_LVL_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
