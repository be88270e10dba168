/*
 * The container's stdio, and the relays that carry it.
 *
 * A pipe or a socket of the caller's is handed to the container as it is:
 * reopening it through /proc/self/fd/N gives only the same pipe, and a
 * socket cannot be reopened at all. Anything else (a regular file, a
 * terminal without --tty, a device other than /dev/null, a directory) could
 * be reopened by the container with whatever access it asks for, so the
 * helper puts a pipe in between and copies the bytes itself, as Docker's
 * CLI does: the container can then only read its stdin and only append to
 * its stdout and stderr. A pty master is relayed by the same loop.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "minidock-exec.h"

/* True when fd may be given to the container as it is (see above). */
static bool passes_straight(int fd, struct stat *st)
{
	if (fstat(fd, st) < 0)
		return true; /* closed: the container gets nothing either way */
	if (S_ISFIFO(st->st_mode) || S_ISSOCK(st->st_mode))
		return true;
	return S_ISCHR(st->st_mode) && st->st_rdev == makedev(1, 3);
}

void set_nonblock(int fd)
{
	int flags = fcntl(fd, F_GETFL);

	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
		die("stdio", "fcntl O_NONBLOCK: %s", strerror(errno));
}

void relay_add(struct relays *rs, int from, int to, bool input, bool owns_to)
{
	struct relay *r = &rs->r[rs->n++];

	*r = (struct relay){ .from = from, .to = to, .reading = true, .writing = true,
			     .input = input, .owns_to = owns_to };
}

void stdio_setup(struct config *cfg, struct relays *rs)
{
	struct stat st[3];

	for (int fd = 0; fd <= 2; fd++)
		cfg->stdio[fd] = -1;
	if (cfg->tty)
		return;
	for (int fd = 0; fd <= 2; fd++) {
		int p[2];

		if (passes_straight(fd, &st[fd]) || (fd == 0 && !cfg->stdin_open))
			continue;
		/* One pipe for stdout and stderr on the same file keeps their order. */
		if (fd == 2 && cfg->stdio[1] >= 0 && st[1].st_dev == st[2].st_dev &&
		    st[1].st_ino == st[2].st_ino) {
			cfg->stdio[2] = cfg->stdio[1];
			continue;
		}
		if (pipe2(p, O_CLOEXEC) < 0)
			die("stdio", "pipe for fd %d: %s", fd, strerror(errno));
		if (fd == 0) {
			/* Non-blocking: a container that reads no input must not stall its output. */
			set_nonblock(p[1]);
			cfg->stdio[0] = p[0];
			relay_add(rs, STDIN_FILENO, p[1], true, true);
		} else {
			cfg->stdio[fd] = p[1];
			relay_add(rs, p[0], fd, false, false);
		}
	}
}

void stdio_close_child_ends(const struct config *cfg)
{
	for (int fd = 0; fd <= 2; fd++) {
		if (cfg->stdio[fd] >= 0 && (fd != 2 || cfg->stdio[2] != cfg->stdio[1]))
			close(cfg->stdio[fd]);
	}
}

void child_setup_stdio(const struct config *cfg)
{
	for (int fd = 0; fd <= 2; fd++) {
		if (cfg->stdio[fd] >= 0 && dup2(cfg->stdio[fd], fd) < 0)
			child_fail("stdio", errno, "dup2 fd %d", fd);
	}
}

int relay_poll_fd(const struct relay *r, short *events)
{
	if (r->len > 0 && r->writing) {
		*events = POLLOUT;
		return r->to;
	}
	if (r->len == 0 && r->reading) {
		*events = POLLIN;
		return r->from;
	}
	return -1;
}

/* Input with nowhere to go, or nothing more to carry, closes the container's end. */
static void settle(struct relay *r)
{
	if (!r->writing)
		r->len = 0;
	if (r->input && !r->writing)
		r->reading = false;
	if (r->owns_to && r->to >= 0 && !r->reading && r->len == 0) {
		close(r->to);
		r->to = -1;
		r->writing = false;
	}
}

void relay_run(struct relay *r)
{
	if (r->len == 0 && r->reading) {
		ssize_t n;

		do
			n = read(r->from, r->buf, sizeof(r->buf));
		while (n < 0 && errno == EINTR);
		if (n < 0 && errno == EAGAIN)
			return;
		/* End of file; any error (EIO from a pty without slaves, EISDIR) ends it too. */
		if (n <= 0)
			r->reading = false;
		else {
			r->off = 0;
			r->len = (size_t)n;
		}
	}
	if (r->len > 0 && r->writing) {
		ssize_t n;

		do
			n = write(r->to, r->buf + r->off, r->len - r->off);
		while (n < 0 && errno == EINTR);
		if (n > 0) {
			r->off += (size_t)n;
			if (r->off == r->len)
				r->off = r->len = 0;
		} else if (!(n < 0 && errno == EAGAIN)) {
			/*
			 * A reader that went away: input stops (the container closed its
			 * stdin); output is still read and dropped, so the container
			 * never stalls on it.
			 */
			r->writing = false;
		}
	}
	settle(r);
}

void relay_stop_input(struct relay *r)
{
	if (!r->input)
		return;
	r->reading = false;
	r->len = 0;
	settle(r);
}

bool relay_busy(const struct relay *r)
{
	return !r->input && (r->reading || (r->len > 0 && r->writing));
}
