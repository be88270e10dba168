/*
 * minidock-exec: the native step between "namespaces" and "exec".
 *
 * The TypeScript side decides everything and passes it here as plain
 * arguments. The parent half clones the container process into new
 * namespaces, joins it to its cgroups, supervises it and relays its exit
 * status; the child half builds the root filesystem, drops privileges and
 * execs the command. Neither half ever writes to stdout or stderr: those
 * belong to the container. Diagnostics are JSON lines on the log fd.
 */
#ifndef MINIDOCK_EXEC_H
#define MINIDOCK_EXEC_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Exit statuses of the helper itself, as Docker uses them. */
#define EXIT_SETUP 125
#define EXIT_CANNOT_EXEC 126
#define EXIT_NOT_FOUND 127

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

struct config {
	int log_fd;
	const char *mount_cwd;
	const char *overlay;
	const char *rootfs;
	const char *hostname;
	const char *cwd;
	pid_t parent_pid;
	uid_t uid;
	gid_t gid;
	gid_t *groups;
	size_t ngroups;
	char **env;
	size_t nenv;
	char **cgroup_procs;
	size_t ncgroup_procs;
	bool tty;
	bool stdin_open;
	/* What the child puts on fds 0, 1 and 2 (a relay pipe), or -1 to keep the caller's. */
	int stdio[3];
	char **argv;
};

/*
 * One direction of a byte relay (stdio.c): read from `from` into buf, write
 * it to `to`. An input relay carries the host's stdin to the container: it
 * stops when the container exits, and closes `to` (when it owns it) once
 * the host's stdin ends. An output relay runs until `from` ends.
 */
struct relay {
	int from;
	int to;
	bool reading;
	bool writing;
	bool input;
	bool owns_to;
	size_t off;
	size_t len;
	char buf[16384];
};

#define MAX_RELAYS 3

struct relays {
	struct relay r[MAX_RELAYS];
	size_t n;
};

/*
 * Parent-child protocol, over one SOCK_SEQPACKET socketpair whose ends are
 * both close-on-exec:
 *   parent -> child: one byte once the child is in its cgroups ("go");
 *   child -> parent: MSG_TTY carrying the pty master (SCM_RIGHTS), then
 *                    either MSG_SETUP_FAILED / MSG_EXEC_FAILED, or nothing:
 *                    end of file means the exec succeeded.
 */
enum msg_kind {
	MSG_TTY = 1,
	MSG_SETUP_FAILED = 2,
	MSG_EXEC_FAILED = 3,
};

#define MSG_STEP_MAX 32
#define MSG_TEXT_MAX 6144

struct msg {
	int kind;
	int err;
	char step[MSG_STEP_MAX];
	char text[MSG_TEXT_MAX];
};

/* log.c: JSON lines on the log fd. */
void log_set_fd(int fd);
void log_line(const char *level, const char *step, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void log_record_int(const char *key, long value);
void log_exec_errno(int err, const char *path);
__attribute__((noreturn)) void die(const char *step, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* child.c: the container side; never returns. */
__attribute__((noreturn)) void child_main(const struct config *cfg, int sock);

/*
 * Reports a failed step to the parent and exits 125. The message is
 * "<what>: <strerror(err)>".
 */
__attribute__((noreturn)) void child_fail(const char *step, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* mounts.c: root filesystem set-up inside the new mount namespace. */
void setup_rootfs(const struct config *cfg);

/* security.c: capabilities and seccomp, in the child before exec. */
/* Drops every capability outside the kept set from the bounding set; clears ambient. */
void drop_bounding_caps(void);
/* After setuid: effective and permitted become the kept set for uid 0, empty otherwise. */
void set_process_caps(uid_t uid);
void install_seccomp(void);

/* tty.c */
void child_setup_tty(const struct config *cfg, int sock);
/* Receives one message (and a passed fd, or -1); returns 1, 0 at end of file, -1 on error. */
int recv_msg(int sock, struct msg *m, int *fd);
void tty_make_host_raw(void);
void tty_restore_host(void);
void tty_copy_winsize(int master);

/* stdio.c */
void set_nonblock(int fd);
/* Parent, before clone: a relay pipe for each of fds 0-2 that must not pass straight. */
void stdio_setup(struct config *cfg, struct relays *rs);
/* Parent, after clone: closes the pipe ends that only the child uses. */
void stdio_close_child_ends(const struct config *cfg);
/* Child: puts the relay pipes on fds 0-2. */
void child_setup_stdio(const struct config *cfg);
void relay_add(struct relays *rs, int from, int to, bool input, bool owns_to);
/* The fd to poll for r and its events, or -1 when r has nothing to wait for. */
int relay_poll_fd(const struct relay *r, short *events);
/* One read or write, whichever r is waiting for. */
void relay_run(struct relay *r);
/* The container has exited: its stdin takes no more. */
void relay_stop_input(struct relay *r);
/* True while an output relay still has data to carry. */
bool relay_busy(const struct relay *r);

/* minidock-exec.c: the signal mask to restore in the child before exec. */
extern sigset_t parent_saved_mask;

#endif
