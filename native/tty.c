/*
 * Pseudo-terminal support. The child allocates the pty from the
 * container's own devpts instance and hands the master to the parent over
 * the socketpair; the parent relays bytes between it and the host's stdio
 * (stdio.c).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

#include "minidock-exec.h"

static void send_fd(int sock, int fd)
{
	struct msg m;
	struct iovec iov = { .iov_base = &m, .iov_len = sizeof(m) };
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr mh = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = u.buf,
		.msg_controllen = sizeof(u.buf),
	};
	struct cmsghdr *c;
	ssize_t n;

	memset(&m, 0, sizeof(m));
	memset(&u, 0, sizeof(u));
	m.kind = MSG_TTY;
	c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	do
		n = sendmsg(sock, &mh, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		child_fail("tty", errno, "sendmsg pty master");
}

int recv_msg(int sock, struct msg *m, int *fd)
{
	struct iovec iov = { .iov_base = m, .iov_len = sizeof(*m) };
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr mh = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = u.buf,
		.msg_controllen = sizeof(u.buf),
	};
	ssize_t n;

	*fd = -1;
	memset(m, 0, sizeof(*m));
	do
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n <= 0)
		return (int)n;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
			memcpy(fd, CMSG_DATA(c), sizeof(int));
	}
	m->step[sizeof(m->step) - 1] = '\0';
	m->text[sizeof(m->text) - 1] = '\0';
	return 1;
}

void child_setup_tty(const struct config *cfg, int sock)
{
	char name[64];
	int master, slave;

	master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (master < 0)
		child_fail("tty", errno, "open `/dev/ptmx`");
	if (unlockpt(master) < 0)
		child_fail("tty", errno, "unlockpt `/dev/ptmx`");
	if (ptsname_r(master, name, sizeof(name)) != 0)
		child_fail("tty", errno, "ptsname `/dev/ptmx`");
	slave = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (slave < 0)
		child_fail("tty", errno, "open `%s`", name);
	if (fchown(slave, cfg->uid, cfg->gid) < 0)
		child_fail("tty", errno, "fchown `%s`", name);

	if (setsid() < 0)
		child_fail("tty", errno, "setsid");
	if (ioctl(slave, TIOCSCTTY, 0) < 0)
		child_fail("tty", errno, "ioctl TIOCSCTTY `%s`", name);
	for (int fd = 0; fd <= 2; fd++) {
		if (dup2(slave, fd) < 0)
			child_fail("tty", errno, "dup2 `%s`", name);
	}
	if (slave > 2)
		close(slave);

	send_fd(sock, master);
	close(master);
}

static struct termios saved_termios;
static bool termios_saved;

void tty_restore_host(void)
{
	if (termios_saved) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_termios);
		termios_saved = false;
	}
}

void tty_make_host_raw(void)
{
	struct termios raw;

	if (!isatty(STDIN_FILENO))
		return;
	if (tcgetattr(STDIN_FILENO, &saved_termios) < 0)
		die("tty", "tcgetattr `stdin`: %s", strerror(errno));
	raw = saved_termios;
	cfmakeraw(&raw);
	termios_saved = true;
	atexit(tty_restore_host);
	if (tcsetattr(STDIN_FILENO, TCSANOW, &raw) < 0)
		die("tty", "tcsetattr `stdin`: %s", strerror(errno));
}

void tty_copy_winsize(int master)
{
	struct winsize ws;

	/* No terminal on the host side: keep the kernel's default size. */
	if (ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) < 0 && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) < 0)
		return;
	if (ioctl(master, TIOCSWINSZ, &ws) < 0)
		log_line("warn", "tty", "ioctl TIOCSWINSZ: %s", strerror(errno));
}
