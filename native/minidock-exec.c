/*
 * minidock-exec: command line, clone into namespaces, cgroup join, and the
 * parent's supervision loop (signal forwarding, pty relay, exit status).
 *
 * Usage:
 *   minidock-exec --log-fd FD [--parent-pid PID] [--mount-cwd DIR]
 *                 --overlay DATA --rootfs DIR [--hostname NAME] [--cwd PATH]
 *                 [--uid N] [--gid N] [--groups 1,2,3] [--env-fd FD] [--cgroup-procs FILE]...
 *                 [--tty] [--stdin] -- ARGV...
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "minidock-exec.h"

#define CHILD_STACK_SIZE (1024 * 1024)

sigset_t parent_saved_mask;

static unsigned long parse_uint(const char *opt, const char *s, unsigned long max)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end != '\0' || s[0] == '-' || v > max)
		die("args", "parse %s `%s`: not a number in 0..%lu", opt, s, max);
	return v;
}

static void parse_groups(struct config *cfg, const char *list)
{
	size_t n = 1;
	char *copy, *tok, *save;

	if (*list == '\0')
		return;
	for (const char *p = list; *p; p++)
		n += *p == ',';
	cfg->groups = calloc(n, sizeof(gid_t));
	copy = strdup(list);
	if (!cfg->groups || !copy)
		die("args", "parse --groups: %s", strerror(ENOMEM));
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
		cfg->groups[cfg->ngroups++] = (gid_t)parse_uint("--groups", tok, UINT_MAX - 1);
	free(copy);
}

/*
 * The container's environment comes as "K=V" entries, each ended by a NUL,
 * on an fd read to its end: on the command line any local user could read
 * it (ps, /proc/PID/cmdline), while /proc/PID/environ and fds are the
 * owner's alone.
 */
#define ENV_MAX (16 << 20)

static void read_env(struct config *cfg, int fd)
{
	size_t cap = 65536, len = 0, n = 0;
	char *buf = malloc(cap);

	if (!buf)
		die("args", "read environment: %s", strerror(ENOMEM));
	for (;;) {
		ssize_t r;

		if (len == cap) {
			if (cap >= ENV_MAX)
				die("args", "read environment: more than %d bytes", ENV_MAX);
			cap *= 2;
			buf = realloc(buf, cap);
			if (!buf)
				die("args", "read environment: %s", strerror(ENOMEM));
		}
		r = read(fd, buf + len, cap - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			die("args", "read environment from fd %d: %s", fd, strerror(errno));
		if (r == 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	if (len > 0 && buf[len - 1] != '\0')
		die("args", "read environment: the last entry is not ended by a NUL");
	for (size_t i = 0; i < len; i++)
		n += buf[i] == '\0';
	cfg->env = calloc(n + 1, sizeof(char *));
	if (!cfg->env)
		die("args", "read environment: %s", strerror(ENOMEM));
	for (size_t i = 0; i < len; i += strlen(buf + i) + 1)
		cfg->env[cfg->nenv++] = buf + i;
}

/* The log fd comes first so that every later argument error can be reported. */
static int find_log_fd(int argc, char **argv)
{
	for (int i = 1; i + 1 < argc && strcmp(argv[i], "--") != 0; i++) {
		if (strcmp(argv[i], "--log-fd") == 0) {
			char *end;
			long fd = strtol(argv[i + 1], &end, 10);

			if (*end != '\0' || end == argv[i + 1] || fd < 3 || fd > INT_MAX)
				return -1;
			return (int)fd;
		}
	}
	return -1;
}

static void parse_args(struct config *cfg, int argc, char **argv)
{
	int i;

	cfg->cgroup_procs = calloc((size_t)argc, sizeof(char *));
	if (!cfg->cgroup_procs)
		die("args", "parse arguments: %s", strerror(ENOMEM));

	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(a, "--") == 0) {
			i++;
			break;
		} else if (strcmp(a, "--tty") == 0) {
			cfg->tty = true;
			continue;
		} else if (strcmp(a, "--stdin") == 0) {
			cfg->stdin_open = true;
			continue;
		}
		if (!v)
			die("args", "parse `%s`: missing value", a);
		if (strcmp(a, "--log-fd") == 0)
			; /* handled by find_log_fd */
		else if (strcmp(a, "--parent-pid") == 0)
			cfg->parent_pid = (pid_t)parse_uint(a, v, INT_MAX);
		else if (strcmp(a, "--mount-cwd") == 0)
			cfg->mount_cwd = v;
		else if (strcmp(a, "--overlay") == 0)
			cfg->overlay = v;
		else if (strcmp(a, "--rootfs") == 0)
			cfg->rootfs = v;
		else if (strcmp(a, "--hostname") == 0)
			cfg->hostname = v;
		else if (strcmp(a, "--cwd") == 0)
			cfg->cwd = v;
		else if (strcmp(a, "--uid") == 0)
			cfg->uid = (uid_t)parse_uint(a, v, UINT_MAX - 1);
		else if (strcmp(a, "--gid") == 0)
			cfg->gid = (gid_t)parse_uint(a, v, UINT_MAX - 1);
		else if (strcmp(a, "--groups") == 0)
			parse_groups(cfg, v);
		else if (strcmp(a, "--env-fd") == 0)
			read_env(cfg, (int)parse_uint(a, v, INT_MAX));
		else if (strcmp(a, "--cgroup-procs") == 0)
			cfg->cgroup_procs[cfg->ncgroup_procs++] = argv[i + 1];
		else
			die("args", "parse `%s`: unknown option", a);
		i++;
	}
	if (i >= argc)
		die("args", "parse arguments: no command after `--`");
	if (!cfg->overlay || !cfg->rootfs)
		die("args", "parse arguments: --overlay and --rootfs are required");
	cfg->argv = argv + i;
}

struct child_args {
	const struct config *cfg;
	int sock;
	int other;
};

static int child_entry(void *arg)
{
	struct child_args *ca = arg;

	close(ca->other);
	child_main(ca->cfg, ca->sock);
}

static int wait_status(pid_t pid, int options)
{
	int status;
	pid_t r;

	do
		r = waitpid(pid, &status, options);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		die("wait", "waitpid %d: %s", (int)pid, strerror(errno));
	if (r == 0)
		return -1;
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}

static __attribute__((noreturn)) void abandon(pid_t pid, const char *step, const char *text)
{
	kill(pid, SIGKILL);
	wait_status(pid, 0);
	die(step, "%s", text);
}

static void join_cgroups(const struct config *cfg, pid_t pid)
{
	char num[32], err[PATH_MAX + 128];
	int len = snprintf(num, sizeof(num), "%d\n", (int)pid);

	for (size_t i = 0; i < cfg->ncgroup_procs; i++) {
		const char *file = cfg->cgroup_procs[i];
		int fd = open(file, O_WRONLY | O_CLOEXEC);

		if (fd < 0 || write(fd, num, (size_t)len) != len) {
			snprintf(err, sizeof(err), "join cgroup `%s`: %s", file, strerror(errno));
			abandon(pid, "cgroup", err);
		}
		if (close(fd) < 0) {
			snprintf(err, sizeof(err), "close `%s`: %s", file, strerror(errno));
			abandon(pid, "cgroup", err);
		}
		log_line("debug", "cgroup", "joined `%s`", file);
	}
}

/* Lets the child run and waits for it to exec; returns the pty master or -1. */
static int release_child(const struct config *cfg, pid_t pid, int sock)
{
	int master = -1;
	char err[128];

	if (send(sock, "g", 1, MSG_NOSIGNAL) != 1) {
		/* Already dead (killed before it ran): supervise() reaps it. */
		if (errno == EPIPE || errno == ECONNRESET)
			return -1;
		snprintf(err, sizeof(err), "release child: %s", strerror(errno));
		abandon(pid, "sync", err);
	}
	for (;;) {
		struct msg m;
		int fd;
		int r = recv_msg(sock, &m, &fd);

		if (r < 0 && errno == ECONNRESET)
			break;
		if (r < 0) {
			snprintf(err, sizeof(err), "read child status: %s", strerror(errno));
			abandon(pid, "sync", err);
		}
		/* End of file: the socket closed on a successful exec. */
		if (r == 0)
			break;
		switch (m.kind) {
		case MSG_TTY:
			if (fd < 0)
				abandon(pid, "tty", "receive pty master: no descriptor");
			master = fd;
			break;
		case MSG_SETUP_FAILED:
			wait_status(pid, 0);
			die(m.step, "%s", m.text);
		case MSG_EXEC_FAILED: {
			int code = m.err == ENOENT ? EXIT_NOT_FOUND : EXIT_CANNOT_EXEC;

			wait_status(pid, 0);
			log_exec_errno(m.err, m.text);
			exit(code);
		}
		default:
			abandon(pid, "sync", "read child status: unknown message");
		}
	}
	(void)cfg;
	return master;
}

/*
 * Forwards a signal to the container when minidock itself sent it. minidock
 * (the parent) is the one signal proxy, as Docker's CLI is: a signal that
 * reaches the whole process group (Ctrl-C at a terminal, `kill %1`) reaches
 * minidock too, which forwards it, so forwarding it from here as well would
 * deliver it twice.
 */
static void forward_from_parent(pid_t pid, const struct signalfd_siginfo *si)
{
	if (si->ssi_pid != (uint32_t)getppid()) {
		log_line("debug", "signal", "signal %u from pid %u not forwarded", si->ssi_signo, si->ssi_pid);
		return;
	}
	if (kill(pid, (int)si->ssi_signo) < 0 && errno != ESRCH)
		log_line("warn", "signal", "forward signal %u: %s", si->ssi_signo, strerror(errno));
}

/*
 * Waits for the child, forwarding signals and running the stdio relays;
 * returns its status once it has exited and its output is drained.
 */
static int supervise(struct relays *rs, pid_t pid, int sigfd, int master)
{
	int status = -1;

	for (;;) {
		struct pollfd fds[1 + MAX_RELAYS];
		struct relay *owner[1 + MAX_RELAYS];
		nfds_t nfds = 1;
		bool busy = false;

		for (size_t i = 0; i < rs->n; i++) {
			if (status >= 0)
				relay_stop_input(&rs->r[i]);
			busy |= relay_busy(&rs->r[i]);
		}
		if (status >= 0 && !busy)
			break;

		fds[0] = (struct pollfd){ .fd = sigfd, .events = POLLIN };
		for (size_t i = 0; i < rs->n; i++) {
			short events;
			int fd = relay_poll_fd(&rs->r[i], &events);

			if (fd >= 0) {
				owner[nfds] = &rs->r[i];
				fds[nfds++] = (struct pollfd){ .fd = fd, .events = events };
			}
		}
		if (poll(fds, nfds, -1) < 0) {
			if (errno == EINTR)
				continue;
			die("supervise", "poll: %s", strerror(errno));
		}

		if (fds[0].revents & POLLIN) {
			struct signalfd_siginfo si;
			ssize_t n = read(sigfd, &si, sizeof(si));

			if (n == (ssize_t)sizeof(si)) {
				if (si.ssi_signo == SIGCHLD) {
					if (status < 0)
						status = wait_status(pid, WNOHANG);
				} else if (si.ssi_signo == SIGWINCH) {
					if (master >= 0)
						tty_copy_winsize(master);
				} else if (status < 0) {
					forward_from_parent(pid, &si);
				}
			} else if (n < 0 && errno != EINTR && errno != EAGAIN) {
				die("supervise", "read signalfd: %s", strerror(errno));
			}
		}
		for (nfds_t i = 1; i < nfds; i++) {
			if (fds[i].revents)
				relay_run(owner[i]);
		}
	}
	return status;
}

/*
 * The helper dies with the process that started it, and the container with
 * the helper (child.c), so killing minidock leaves nothing running. A parent
 * that died before the prctl took effect shows as a changed parent pid.
 */
static void follow_parent(const struct config *cfg)
{
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
		die("prctl", "prctl PR_SET_PDEATHSIG: %s", strerror(errno));
	if (cfg->parent_pid > 0 && getppid() != cfg->parent_pid)
		die("prctl", "parent %d exited before the helper started", (int)cfg->parent_pid);
}

int main(int argc, char **argv)
{
	static struct config cfg;
	static struct relays relays;
	struct child_args ca;
	sigset_t set;
	int sv[2], sigfd, master, status;
	void *stack;
	pid_t pid;

	cfg.log_fd = find_log_fd(argc, argv);
	if (cfg.log_fd < 0 || fcntl(cfg.log_fd, F_SETFD, FD_CLOEXEC) < 0)
		return EXIT_SETUP;
	log_set_fd(cfg.log_fd);
	parse_args(&cfg, argc, argv);
	follow_parent(&cfg);

	/* The host side may close its end of a relay; that must not kill us. */
	if (signal(SIGPIPE, SIG_IGN) == SIG_ERR)
		die("signals", "ignore SIGPIPE: %s", strerror(errno));

	/* Signals are read from a signalfd; blocked before clone so none is missed. */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGQUIT);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGUSR2);
	sigaddset(&set, SIGWINCH);
	sigaddset(&set, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &set, &parent_saved_mask) < 0)
		die("signals", "sigprocmask: %s", strerror(errno));
	sigfd = signalfd(-1, &set, SFD_CLOEXEC);
	if (sigfd < 0)
		die("signals", "signalfd: %s", strerror(errno));

	stdio_setup(&cfg, &relays);
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		die("clone", "socketpair: %s", strerror(errno));
	stack = mmap(NULL, CHILD_STACK_SIZE, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	if (stack == MAP_FAILED)
		die("clone", "mmap child stack: %s", strerror(errno));

	ca = (struct child_args){ .cfg = &cfg, .sock = sv[1], .other = sv[0] };
	pid = clone(child_entry, (char *)stack + CHILD_STACK_SIZE,
		    CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWNET | SIGCHLD,
		    &ca);
	if (pid < 0)
		die("clone", "clone: %s", strerror(errno));
	close(sv[1]);
	stdio_close_child_ends(&cfg);

	join_cgroups(&cfg, pid);
	log_record_int("pid", pid);
	master = release_child(&cfg, pid, sv[0]);
	close(sv[0]);

	if (master >= 0) {
		/* Non-blocking: a container that reads no input must not stall its output. */
		set_nonblock(master);
		relay_add(&relays, master, STDOUT_FILENO, false, false);
		if (cfg.stdin_open) {
			relay_add(&relays, STDIN_FILENO, master, true, false);
			tty_make_host_raw();
		}
		tty_copy_winsize(master);
	}
	status = supervise(&relays, pid, sigfd, master);
	tty_restore_host();
	log_record_int("exit", status);
	return status;
}
