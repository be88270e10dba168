/**
 * The system calls minidock needs beyond Node's fs, bound from libc with
 * koffi (loaded on first use). See libc.ts for the contract of each call.
 */
export {
  SyscallError,
  S_IFBLK,
  S_IFCHR,
  S_IFIFO,
  lgetxattr,
  llistxattr,
  lsetxattr,
  makedev,
  mknod,
  splitDev,
  tryFlock,
  direntType,
  DT_UNKNOWN,
} from './libc.js';
