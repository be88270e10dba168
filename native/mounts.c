/*
 * The container's root filesystem, built inside its own mount namespace:
 * overlay (nodev), /proc, a fresh /dev, read-only /sys, then pivot_root so
 * that nothing of the host stays reachable, then the masked and read-only
 * parts of /proc and /sys.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "minidock-exec.h"

static void join(char *out, const char *root, const char *rel)
{
	int n = snprintf(out, PATH_MAX, "%s/%s", root, rel);

	if (n < 0 || n >= PATH_MAX)
		child_fail("mount", ENAMETOOLONG, "join `%s/%s`", root, rel);
}

/*
 * Makes sure path is a real directory, creating it when missing. A symlink
 * from the image is refused: mounting through it would land elsewhere.
 */
static void ensure_mount_point(const char *path)
{
	struct stat st;

	if (mkdir(path, 0755) == 0)
		return;
	if (errno != EEXIST)
		child_fail("mount", errno, "mkdir `%s`", path);
	if (lstat(path, &st) < 0)
		child_fail("mount", errno, "lstat `%s`", path);
	if (!S_ISDIR(st.st_mode))
		child_fail("mount", ENOTDIR, "mount point `%s`", path);
}

static void do_mount(const char *src, const char *target, const char *type, unsigned long flags,
		     const char *data)
{
	if (mount(src, target, type, flags, data) < 0)
		child_fail("mount", errno, "mount %s `%s`", type, target);
}

static void make_dev(const char *devdir, const char *name, unsigned int major, unsigned int minor)
{
	char path[PATH_MAX];

	join(path, devdir, name);
	if (mknod(path, S_IFCHR | 0666, makedev(major, minor)) < 0)
		child_fail("mount", errno, "mknod `%s`", path);
}

static void make_link(const char *devdir, const char *name, const char *target)
{
	char path[PATH_MAX];

	join(path, devdir, name);
	if (symlink(target, path) < 0)
		child_fail("mount", errno, "symlink `%s`", path);
}

static void setup_dev(const char *rootfs)
{
	char dev[PATH_MAX], pts[PATH_MAX], shm[PATH_MAX];

	join(dev, rootfs, "dev");
	ensure_mount_point(dev);
	do_mount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=755,size=65536k");

	make_dev(dev, "null", 1, 3);
	make_dev(dev, "zero", 1, 5);
	make_dev(dev, "full", 1, 7);
	make_dev(dev, "random", 1, 8);
	make_dev(dev, "urandom", 1, 9);
	make_dev(dev, "tty", 5, 0);

	join(pts, dev, "pts");
	ensure_mount_point(pts);
	do_mount("devpts", pts, "devpts", MS_NOSUID | MS_NOEXEC,
		 "newinstance,ptmxmode=0666,mode=0620");
	make_link(dev, "ptmx", "pts/ptmx");

	join(shm, dev, "shm");
	ensure_mount_point(shm);
	do_mount("shm", shm, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777,size=65536k");

	make_link(dev, "fd", "/proc/self/fd");
	make_link(dev, "stdin", "/proc/self/fd/0");
	make_link(dev, "stdout", "/proc/self/fd/1");
	make_link(dev, "stderr", "/proc/self/fd/2");
}

static void pivot(const char *rootfs)
{
	if (chdir(rootfs) < 0)
		child_fail("pivot_root", errno, "chdir `%s`", rootfs);

	/*
	 * pivot_root(".", ".") stacks the old root on top of the new one at
	 * "/"; detaching "." then removes the old root and everything of the
	 * host under it, with no put_old directory left behind.
	 */
	if (syscall(SYS_pivot_root, ".", ".") < 0)
		child_fail("pivot_root", errno, "pivot_root `%s`", rootfs);
	if (umount2(".", MNT_DETACH) < 0)
		child_fail("pivot_root", errno, "umount2 old root `%s`", rootfs);
	if (chdir("/") < 0)
		child_fail("pivot_root", errno, "chdir `/`");
}

/* Hidden as Docker hides them: host-wide kernel state, or a way to change it. */
static const char *const masked_paths[] = {
	"/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
	"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
	"/sys/firmware", "/sys/devices/virtual/powercap",
};

/* Readable but not writable, since they are not (or not all) namespaced. */
static const char *const readonly_paths[] = {
	"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
};

/* A file gets /dev/null over it; a directory an empty read-only tmpfs. */
static void mask_path(const char *path)
{
	struct stat st;

	if (stat(path, &st) < 0) {
		if (errno == ENOENT)
			return;
		child_fail("mount", errno, "stat `%s`", path);
	}
	if (S_ISDIR(st.st_mode))
		do_mount("tmpfs", path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
			 "size=0,mode=755");
	else if (mount("/dev/null", path, NULL, MS_BIND, NULL) < 0)
		child_fail("mount", errno, "mount bind `/dev/null` over `%s`", path);
}

/*
 * A bind remount replaces the mount's flags: the proc ones (nosuid, nodev,
 * noexec) are given again with MS_RDONLY so they are not lost.
 */
static void make_readonly(const char *path)
{
	if (mount(path, path, NULL, MS_BIND | MS_REC, NULL) < 0) {
		if (errno == ENOENT)
			return;
		child_fail("mount", errno, "mount bind `%s`", path);
	}
	if (mount(NULL, path, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
		  NULL) < 0)
		child_fail("mount", errno, "remount read-only `%s`", path);
}

/* After pivot_root, so the paths are the container's and /dev/null is ours. */
static void protect_kernel_paths(void)
{
	for (size_t i = 0; i < sizeof(masked_paths) / sizeof(masked_paths[0]); i++)
		mask_path(masked_paths[i]);
	for (size_t i = 0; i < sizeof(readonly_paths) / sizeof(readonly_paths[0]); i++)
		make_readonly(readonly_paths[i]);
}

void setup_rootfs(const struct config *cfg)
{
	char path[PATH_MAX];

	/* Nothing mounted from here on may propagate back to the host. */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		child_fail("mount", errno, "make rprivate `/`");

	/* DATA may hold lowerdir paths relative to mount_cwd (one-page limit). */
	if (cfg->mount_cwd && chdir(cfg->mount_cwd) < 0)
		child_fail("mount", errno, "chdir `%s`", cfg->mount_cwd);
	/* Device nodes shipped in image layers stay inert; /dev is our own tmpfs. */
	do_mount("overlay", cfg->rootfs, "overlay", MS_NODEV, cfg->overlay);

	join(path, cfg->rootfs, "proc");
	ensure_mount_point(path);
	do_mount("proc", path, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);

	setup_dev(cfg->rootfs);

	join(path, cfg->rootfs, "sys");
	ensure_mount_point(path);
	do_mount("sysfs", path, "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);

	pivot(cfg->rootfs);
	protect_kernel_paths();
}
