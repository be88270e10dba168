/*
 * The container side of the clone: wait until the parent has put us in
 * our cgroups, build the root filesystem, set identity and environment,
 * and exec. Every failure goes to the parent as a message, which turns it
 * into a log line; this process itself never writes diagnostics.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "minidock-exec.h"

static int parent_sock = -1;

static void send_msg(const struct msg *m)
{
	ssize_t n;

	do
		n = send(parent_sock, m, sizeof(*m), MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	/* If the parent is gone there is nobody left to tell. */
}

void child_fail(const char *step, int err, const char *fmt, ...)
{
	struct msg m;
	char what[MSG_TEXT_MAX - 128];
	va_list ap;

	memset(&m, 0, sizeof(m));
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	m.kind = MSG_SETUP_FAILED;
	m.err = err;
	snprintf(m.step, sizeof(m.step), "%s", step);
	snprintf(m.text, sizeof(m.text), "%s: %s", what, strerror(err));
	send_msg(&m);
	_exit(EXIT_SETUP);
}

static void wait_for_parent(int sock)
{
	char go;
	ssize_t n;

	do
		n = read(sock, &go, 1);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		child_fail("sync", errno, "read sync socket");
	/* End of file: the parent died or gave up before letting us run. */
	if (n == 0)
		_exit(EXIT_SETUP);
}

/* Dies with the parent, so a killed helper never leaves a container behind. */
static void set_death_signal(void)
{
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
		child_fail("prctl", errno, "prctl PR_SET_PDEATHSIG");
}

static void loopback_up(void)
{
	struct ifreq ifr;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		child_fail("network", errno, "socket `lo`");
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
		child_fail("network", errno, "ioctl SIOCGIFFLAGS `lo`");
	ifr.ifr_flags |= IFF_UP;
	if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
		child_fail("network", errno, "ioctl SIOCSIFFLAGS `lo`");
	close(fd);
}

/* mkdir -p, each missing component 0755 (umask is 0 during set-up). */
static void make_cwd(const char *cwd)
{
	char path[PATH_MAX];
	size_t len = strlen(cwd);

	if (cwd[0] != '/')
		child_fail("cwd", EINVAL, "cwd `%s` is not absolute", cwd);
	if (len >= sizeof(path))
		child_fail("cwd", ENAMETOOLONG, "mkdir `%s`", cwd);
	memcpy(path, cwd, len + 1);
	for (char *p = path + 1;; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char saved = *p;

		*p = '\0';
		if (path[1] != '\0' && mkdir(path, 0755) < 0 && errno != EEXIST)
			child_fail("cwd", errno, "mkdir `%s`", path);
		*p = saved;
		if (saved == '\0')
			break;
	}
	if (chdir(cwd) < 0)
		child_fail("cwd", errno, "chdir `%s`", cwd);
}

/*
 * Identity and privileges, in this order: the seccomp filter while
 * CAP_SYS_ADMIN still allows it without no_new_privs, the bounding set
 * while CAP_SETPCAP is still effective, then the ids, then the process's
 * own capability sets (setuid to a non-zero uid has already emptied them).
 */
static void set_identity(const struct config *cfg)
{
	install_seccomp();
	drop_bounding_caps();
	if (setgroups(cfg->ngroups, cfg->groups) < 0)
		child_fail("user", errno, "setgroups");
	if (setgid(cfg->gid) < 0)
		child_fail("user", errno, "setgid %u", (unsigned)cfg->gid);
	if (setuid(cfg->uid) < 0)
		child_fail("user", errno, "setuid %u", (unsigned)cfg->uid);
	set_process_caps(cfg->uid);
	/* A change of credentials clears the death signal; set it again. */
	set_death_signal();
}

static void null_stdin(void)
{
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		child_fail("stdio", errno, "open `/dev/null`");
	if (dup2(fd, 0) < 0)
		child_fail("stdio", errno, "dup2 `/dev/null`");
	close(fd);
}

static void set_env(const struct config *cfg)
{
	if (clearenv() != 0)
		child_fail("env", ENOMEM, "clearenv");
	for (size_t i = 0; i < cfg->nenv; i++) {
		char *eq = strchr(cfg->env[i], '=');

		if (!eq || eq == cfg->env[i])
			child_fail("env", EINVAL, "env `%s`", cfg->env[i]);
		if (putenv(cfg->env[i]) != 0)
			child_fail("env", errno, "putenv `%s`", cfg->env[i]);
	}
	if (!getenv("PATH") && setenv("PATH", DEFAULT_PATH, 1) < 0)
		child_fail("env", errno, "setenv PATH");
}

/* Everything above stderr closes at exec; the parent socket must live until then. */
static void cloexec_fds(void)
{
	struct rlimit rl;

	if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) == 0)
		return;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		child_fail("stdio", errno, "getrlimit RLIMIT_NOFILE");
	for (rlim_t fd = 3; fd < rl.rlim_cur && fd < 1048576; fd++) {
		int flags = fcntl((int)fd, F_GETFD);

		if (flags >= 0 && fcntl((int)fd, F_SETFD, flags | FD_CLOEXEC) < 0)
			child_fail("stdio", errno, "fcntl fd %d", (int)fd);
	}
}

static void reset_signals(const sigset_t *mask)
{
	for (int sig = 1; sig < NSIG; sig++) {
		if (sig == SIGKILL || sig == SIGSTOP)
			continue;
		/* glibc reserves a few real-time signals; those refuse with EINVAL. */
		if (signal(sig, SIG_DFL) == SIG_ERR && errno != EINVAL)
			child_fail("signals", errno, "reset signal %d", sig);
	}
	if (sigprocmask(SIG_SETMASK, mask, NULL) < 0)
		child_fail("signals", errno, "sigprocmask");
}

/*
 * execvp(3) without its fallback of running a file with an unknown format
 * through /bin/sh: like Docker, such a file fails with ENOEXEC. The search
 * uses the container's PATH, set by set_env. Returns the errno to report.
 */
static int exec_command(char **argv)
{
	const char *file = argv[0];
	const char *path = getenv("PATH");
	char full[PATH_MAX];
	bool denied = false;

	if (strchr(file, '/')) {
		execv(file, argv);
		return errno;
	}
	if (*file == '\0')
		return ENOENT;
	for (const char *p = path;; ) {
		const char *end = strchrnul(p, ':');
		int len = (int)(end - p);
		int n = len == 0 ? snprintf(full, sizeof(full), "%s", file)
				 : snprintf(full, sizeof(full), "%.*s/%s", len, p, file);

		if (n > 0 && n < (int)sizeof(full)) {
			execv(full, argv);
			switch (errno) {
			case EACCES:
				denied = true;
				break;
			case ENOENT:
			case ENOTDIR:
			case ESTALE:
			case ENODEV:
			case ETIMEDOUT:
				break;
			default:
				return errno;
			}
		}
		if (*end == '\0')
			break;
		p = end + 1;
	}
	return denied ? EACCES : ENOENT;
}

void child_main(const struct config *cfg, int sock)
{
	struct msg m;
	int err;

	parent_sock = sock;
	set_death_signal();
	wait_for_parent(sock);
	/* Now in its cgroups: make them the root of what the container sees. */
	if (unshare(CLONE_NEWCGROUP) < 0)
		child_fail("cgroup", errno, "unshare CLONE_NEWCGROUP");
	umask(0);

	setup_rootfs(cfg);

	if (cfg->hostname && sethostname(cfg->hostname, strlen(cfg->hostname)) < 0)
		child_fail("hostname", errno, "sethostname `%s`", cfg->hostname);
	loopback_up();

	if (cfg->tty) {
		child_setup_tty(cfg, sock);
	} else {
		/*
		 * A session of its own, with no controlling terminal: otherwise
		 * the container could open /dev/tty, the user's terminal, and
		 * read keystrokes or push input into it (TIOCSTI).
		 */
		if (setsid() < 0)
			child_fail("session", errno, "setsid");
		child_setup_stdio(cfg);
		if (!cfg->stdin_open)
			null_stdin();
	}

	make_cwd(cfg->cwd ? cfg->cwd : "/");
	set_identity(cfg);
	set_env(cfg);
	umask(022);
	cloexec_fds();
	reset_signals(&parent_saved_mask);

	err = exec_command(cfg->argv);

	memset(&m, 0, sizeof(m));
	m.kind = MSG_EXEC_FAILED;
	m.err = err;
	snprintf(m.step, sizeof(m.step), "exec");
	snprintf(m.text, sizeof(m.text), "%s", cfg->argv[0]);
	send_msg(&m);
	_exit(err == ENOENT ? EXIT_NOT_FOUND : EXIT_CANNOT_EXEC);
}
