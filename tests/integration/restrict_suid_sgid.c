/* Runs a command under a seccomp filter that refuses to create setuid/setgid bits the way
 * systemd's RestrictSUIDSGID=true does (src/shared/seccomp-util.c, seccomp_restrict_suid_sgid):
 * chmod, fchmod, fchmodat(2), mkdir(at), mknod(at), creat, and open/openat with O_CREAT or
 * O_TMPFILE fail with EPERM when the mode has S_ISUID or S_ISGID; openat2 (whose mode the filter
 * cannot read) fails with ENOSYS. Everything else is allowed.
 *
 * Usage: restrict_suid_sgid <program> [args...]   (built by tests/integration/support/seccomp.rs) */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__x86_64__)
#define NATIVE_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define NATIVE_ARCH AUDIT_ARCH_AARCH64
#else
#error "only x86_64 and aarch64"
#endif

/* The low 32 bits of argument n (both architectures are little-endian). */
#define ARG(n) (offsetof(struct seccomp_data, args) + 8 * (n))
#define LOAD(off) BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (off))
#define RET(val) BPF_STMT(BPF_RET | BPF_K, (val))
#define SET_ID (S_ISUID | S_ISGID)
#define CREATES (O_CREAT | (O_TMPFILE & ~O_DIRECTORY))

/* syscall `sys` whose argument `mode` has a set-id bit: EPERM. 5 instructions. */
#define MODE_AT(sys, mode)                                          \
    LOAD(offsetof(struct seccomp_data, nr)),                       \
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (sys), 0, 3),           \
        LOAD(ARG(mode)),                                           \
        BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, SET_ID, 0, 1),        \
        RET(SECCOMP_RET_ERRNO | EPERM)

/* syscall `sys` whose argument `flags` creates and whose `mode` has a set-id bit: EPERM. */
#define OPEN_AT(sys, flags, mode)                                   \
    LOAD(offsetof(struct seccomp_data, nr)),                       \
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (sys), 0, 5),           \
        LOAD(ARG(flags)),                                          \
        BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, CREATES, 0, 3),       \
        LOAD(ARG(mode)),                                           \
        BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, SET_ID, 0, 1),        \
        RET(SECCOMP_RET_ERRNO | EPERM)

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s <program> [args...]\n", argv[0]);
        return 2;
    }
    struct sock_filter filter[] = {
        LOAD(offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, NATIVE_ARCH, 1, 0),
        RET(SECCOMP_RET_KILL_PROCESS),
#ifdef __NR_chmod
        MODE_AT(__NR_chmod, 1),
        MODE_AT(__NR_mkdir, 1),
        MODE_AT(__NR_mknod, 1),
        MODE_AT(__NR_creat, 1),
        OPEN_AT(__NR_open, 1, 2),
#endif
        MODE_AT(__NR_fchmod, 1),
        MODE_AT(__NR_fchmodat, 2),
        MODE_AT(452 /* fchmodat2 */, 2),
        MODE_AT(__NR_mkdirat, 2),
        MODE_AT(__NR_mknodat, 2),
        OPEN_AT(__NR_openat, 2, 3),
        LOAD(offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 437 /* openat2 */, 0, 1),
        RET(SECCOMP_RET_ERRNO | ENOSYS),
        RET(SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {
        .len = sizeof(filter) / sizeof(filter[0]),
        .filter = filter,
    };
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
        perror("restrict_suid_sgid: cannot install the seccomp filter");
        return 2;
    }
    execvp(argv[1], argv + 1);
    perror("restrict_suid_sgid: cannot run the program");
    return 127;
}
