/*
 * What container root may still do: the capability sets and a seccomp
 * filter. Both are set up in the child just before exec; see child.c for
 * the order.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "minidock-exec.h"

/* Docker's default set without CAP_MKNOD (no device nodes in containers). */
static const int kept_caps[] = {
	CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_FSETID, CAP_FOWNER, CAP_NET_RAW, CAP_SETGID, CAP_SETUID,
	CAP_SETFCAP, CAP_SETPCAP, CAP_NET_BIND_SERVICE, CAP_SYS_CHROOT, CAP_KILL, CAP_AUDIT_WRITE,
};

static uint64_t kept_mask(void)
{
	uint64_t mask = 0;

	for (size_t i = 0; i < sizeof(kept_caps) / sizeof(kept_caps[0]); i++)
		mask |= UINT64_C(1) << kept_caps[i];
	return mask;
}

/* The highest capability this kernel knows, or -1 when it cannot be read. */
static int read_cap_last_cap(void)
{
	char buf[32];
	ssize_t n;
	int fd = open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	do
		n = read(fd, buf, sizeof(buf) - 1);
	while (n < 0 && errno == EINTR);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	return atoi(buf);
}

void drop_bounding_caps(void)
{
	uint64_t keep = kept_mask();
	int last = read_cap_last_cap();

	/*
	 * Without cap_last_cap, walk up until the kernel says EINVAL: that is
	 * the first number it does not know. 63 bounds the walk either way.
	 */
	for (int cap = 0; cap <= 63 && (last < 0 || cap <= last); cap++) {
		if (keep & (UINT64_C(1) << cap))
			continue;
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) {
			if (errno == EINVAL && (last < 0 || cap > last))
				break;
			child_fail("capabilities", errno, "prctl PR_CAPBSET_DROP %d", cap);
		}
	}
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0)
		child_fail("capabilities", errno, "prctl PR_CAP_AMBIENT_CLEAR_ALL");
}

/*
 * After setuid: root keeps exactly the kept set (exec gives it the
 * bounding set again, which is the same); any other user has none.
 * Inheritable is always empty, so no file capability can add to it.
 */
void set_process_caps(uid_t uid)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
	struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
	uint64_t mask = uid == 0 ? kept_mask() : 0;

	memset(data, 0, sizeof(data));
	data[0].effective = data[0].permitted = (uint32_t)mask;
	data[1].effective = data[1].permitted = (uint32_t)(mask >> 32);
	if (syscall(SYS_capset, &hdr, data) < 0)
		child_fail("capabilities", errno, "capset");
}

/*
 * The seccomp filter: refuse a few syscalls that reach host-wide kernel
 * state (keyrings, module and kexec loading, bpf, perf, userfaultfd,
 * file handles) and new user namespaces; allow everything else. Only the
 * helper's own architecture is known; syscalls made through another ABI
 * (i386 or x32 on x86_64, arm32 on aarch64) are refused as a whole, since
 * their numbers differ and a check on native numbers would not hold.
 */
#if defined(__x86_64__)
#define SECCOMP_NATIVE_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define SECCOMP_NATIVE_ARCH AUDIT_ARCH_AARCH64
#endif

#ifdef SECCOMP_NATIVE_ARCH

#define X32_SYSCALL_BIT 0x40000000U

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define ARG0_LOW offsetof(struct seccomp_data, args[0])
#else
#define ARG0_LOW (offsetof(struct seccomp_data, args[0]) + 4)
#endif

#define LOAD(field) BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (field))
#define RET(action) BPF_STMT(BPF_RET | BPF_K, (action))
#define REFUSE(nr, err) \
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 1), RET(SECCOMP_RET_ERRNO | (err))
/* A syscall whose first argument holds clone flags: refuse CLONE_NEWUSER. */
#define REFUSE_NEWUSER(nr) \
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 4), LOAD(ARG0_LOW), \
	BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, CLONE_NEWUSER, 0, 1), \
	RET(SECCOMP_RET_ERRNO | EPERM), RET(SECCOMP_RET_ALLOW)

static struct sock_filter filter[] = {
	LOAD(offsetof(struct seccomp_data, arch)),
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SECCOMP_NATIVE_ARCH, 1, 0),
	RET(SECCOMP_RET_ERRNO | ENOSYS),
	LOAD(offsetof(struct seccomp_data, nr)),
#if defined(__x86_64__)
	BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, X32_SYSCALL_BIT, 0, 1),
	RET(SECCOMP_RET_ERRNO | ENOSYS),
#endif
	REFUSE(__NR_keyctl, EPERM),
	REFUSE(__NR_add_key, EPERM),
	REFUSE(__NR_request_key, EPERM),
	REFUSE(__NR_kexec_load, EPERM),
	REFUSE(__NR_kexec_file_load, EPERM),
	REFUSE(__NR_open_by_handle_at, EPERM),
	REFUSE(__NR_init_module, EPERM),
	REFUSE(__NR_finit_module, EPERM),
	REFUSE(__NR_delete_module, EPERM),
	REFUSE(__NR_bpf, EPERM),
	REFUSE(__NR_perf_event_open, EPERM),
	REFUSE(__NR_userfaultfd, EPERM),
	/* Its flags sit in a struct the filter cannot read; libc falls back to clone. */
	REFUSE(__NR_clone3, ENOSYS),
	REFUSE_NEWUSER(__NR_unshare),
	REFUSE_NEWUSER(__NR_clone),
	RET(SECCOMP_RET_ALLOW),
};

void install_seccomp(void)
{
	struct sock_fprog prog = {
		.len = (unsigned short)(sizeof(filter) / sizeof(filter[0])),
		.filter = filter,
	};

	/*
	 * Installed while the process still has CAP_SYS_ADMIN, so no_new_privs
	 * is not needed (and not set: as with Docker, setuid programs in the
	 * image keep working).
	 */
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0)
		child_fail("seccomp", errno, "seccomp SECCOMP_SET_MODE_FILTER");
}

#else

void install_seccomp(void)
{
	/* No syscall table for this architecture: run without a filter. */
}

#endif
