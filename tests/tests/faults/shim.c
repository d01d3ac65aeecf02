/*
 * fault shim: LD_PRELOADed into pam-converse by the fault-injection tests
 * (tests/tests/module_faults.rs), so that pam_mfa.so, loaded by the real
 * libpam in that process, meets a disk that fails or a process that dies at
 * an exact step of a commit. The module itself is not changed or rebuilt.
 *
 * Settings come from the environment:
 *
 *   PAM_MFA_FAULT=CALL:N:ACTION
 *       CALL    pwrite (pwrite/pwrite64), write, fsync, fdatasync or rename
 *       N       the Nth such call in the process (from 1); write and pwrite
 *               count only regular files, so a terminal or pipe is ignored
 *       ACTION  kill-before  SIGKILL instead of making the call
 *               kill-after   make the call, then SIGKILL
 *               tear         write only the first half, then SIGKILL
 *                            (a power cut in the middle of a write)
 *               tear=BYTES   write only the first BYTES bytes, then SIGKILL
 *               ENOSPC, EIO, EROFS or EDQUOT
 *                            fail the call with that errno, not making it
 *   PAM_MFA_FAULT_MARK=PATH  created just before the fault fires, so that a
 *                            test tells "killed by the shim" from a timeout
 *   PAM_MFA_TRACE=PATH       appends "CALL PATH" for every counted call
 *   PAM_MFA_STATFS_MAGIC=HEX statfs/fstatfs (and the 64-bit forms) report
 *                            this f_type: a network or FUSE filesystem
 *   PAM_MFA_CLOCK_FAIL=1     clock_gettime(CLOCK_REALTIME) fails with EINVAL,
 *                            which the Rust standard library turns into a
 *                            panic inside the module
 *
 * Built by the tests with `cc -shared -fPIC -o shim.so shim.c -ldl`.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

enum call { C_PWRITE, C_WRITE, C_FSYNC, C_FDATASYNC, C_RENAME, C_COUNT };
static const char *const call_names[C_COUNT] = {"pwrite", "write", "fsync", "fdatasync", "rename"};
static unsigned long counters[C_COUNT];

enum action { A_NONE, A_KILL_BEFORE, A_KILL_AFTER, A_TEAR, A_ERRNO };
static int fault_call = -1;
static unsigned long fault_nth;
static enum action fault_action = A_NONE;
static int fault_errno;
static size_t tear_bytes; /* 0: half */
static int configured;

static void configure(void) {
    if (__atomic_exchange_n(&configured, 1, __ATOMIC_SEQ_CST))
        return;
    const char *spec = getenv("PAM_MFA_FAULT");
    if (!spec)
        return;
    char name[32], what[32];
    unsigned long nth;
    if (sscanf(spec, "%31[^:]:%lu:%31s", name, &nth, what) != 3)
        return;
    for (int i = 0; i < C_COUNT; i++)
        if (strcmp(name, call_names[i]) == 0)
            fault_call = i;
    fault_nth = nth;
    if (strcmp(what, "kill-before") == 0)
        fault_action = A_KILL_BEFORE;
    else if (strcmp(what, "kill-after") == 0)
        fault_action = A_KILL_AFTER;
    else if (strncmp(what, "tear", 4) == 0 && (what[4] == '\0' || what[4] == '=')) {
        fault_action = A_TEAR;
        if (what[4] == '=')
            tear_bytes = strtoul(what + 5, NULL, 10);
    }
    else {
        fault_action = A_ERRNO;
        if (strcmp(what, "ENOSPC") == 0) fault_errno = ENOSPC;
        else if (strcmp(what, "EIO") == 0) fault_errno = EIO;
        else if (strcmp(what, "EROFS") == 0) fault_errno = EROFS;
        else if (strcmp(what, "EDQUOT") == 0) fault_errno = EDQUOT;
        else fault_action = A_NONE;
    }
}

static ssize_t do_write(int fd, const void *buf, size_t count, off_t off);

static void describe_fd(int fd, char *out, size_t size) {
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, out, size - 1);
    out[n < 0 ? 0 : n] = '\0';
}

static void trace(enum call c, const char *what) {
    const char *path = getenv("PAM_MFA_TRACE");
    if (!path)
        return;
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return;
    char line[PATH_MAX + 64];
    int n = snprintf(line, sizeof line, "%s %s\n", call_names[c], what);
    if (n > 0)
        do_write(fd, line, (size_t)n, 0);
    close(fd);
}

static void mark(void) {
    const char *path = getenv("PAM_MFA_FAULT_MARK");
    if (path) {
        int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        if (fd >= 0)
            close(fd);
    }
}

static void die(void) {
    mark();
    kill(getpid(), SIGKILL);
    for (;;)
        pause();
}

/* Counts the call; returns the action to take for it. */
static enum action step(enum call c, const char *what) {
    configure();
    unsigned long n = __atomic_add_fetch(&counters[c], 1, __ATOMIC_SEQ_CST);
    trace(c, what);
    if ((int)c != fault_call || n != fault_nth)
        return A_NONE;
    if (fault_action == A_ERRNO)
        mark();
    return fault_action;
}

static int regular(int fd) {
    struct stat st;
    return fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
}

#define REAL(name) \
    static __typeof__(&name) real_##name; \
    if (!real_##name) real_##name = (__typeof__(&name))dlsym(RTLD_NEXT, #name)

static ssize_t faulty_write(enum call c, int fd, const void *buf, size_t count,
                            ssize_t (*make)(int, const void *, size_t, off_t), off_t off) {
    char what[PATH_MAX];
    describe_fd(fd, what, sizeof what);
    switch (step(c, what)) {
    case A_KILL_BEFORE:
        die();
        break;
    case A_TEAR:
        make(fd, buf, tear_bytes && tear_bytes < count ? tear_bytes : count / 2, off);
        die();
        break;
    case A_ERRNO:
        errno = fault_errno;
        return -1;
    case A_KILL_AFTER: {
        ssize_t r = make(fd, buf, count, off);
        (void)r;
        die();
        break;
    }
    case A_NONE:
        break;
    }
    return make(fd, buf, count, off);
}

static ssize_t do_pwrite64(int fd, const void *buf, size_t count, off_t off) {
    REAL(pwrite64);
    return real_pwrite64(fd, buf, count, off);
}

static ssize_t do_write(int fd, const void *buf, size_t count, off_t off) {
    (void)off;
    REAL(write);
    return real_write(fd, buf, count);
}

ssize_t pwrite64(int fd, const void *buf, size_t count, off_t off) {
    if (!regular(fd))
        return do_pwrite64(fd, buf, count, off);
    return faulty_write(C_PWRITE, fd, buf, count, do_pwrite64, off);
}

ssize_t pwrite(int fd, const void *buf, size_t count, off_t off) {
    return pwrite64(fd, buf, count, off);
}

ssize_t write(int fd, const void *buf, size_t count) {
    if (!regular(fd))
        return do_write(fd, buf, count, 0);
    return faulty_write(C_WRITE, fd, buf, count, do_write, 0);
}

static int faulty_sync(enum call c, int fd, int (*make)(int)) {
    char what[PATH_MAX];
    describe_fd(fd, what, sizeof what);
    switch (step(c, what)) {
    case A_KILL_BEFORE:
    case A_TEAR:
        die();
        break;
    case A_ERRNO:
        errno = fault_errno;
        return -1;
    case A_KILL_AFTER:
        make(fd);
        die();
        break;
    case A_NONE:
        break;
    }
    return make(fd);
}

int fsync(int fd) {
    REAL(fsync);
    return faulty_sync(C_FSYNC, fd, real_fsync);
}

int fdatasync(int fd) {
    REAL(fdatasync);
    return faulty_sync(C_FDATASYNC, fd, real_fdatasync);
}

int rename(const char *from, const char *to) {
    REAL(rename);
    switch (step(C_RENAME, to)) {
    case A_KILL_BEFORE:
    case A_TEAR:
        die();
        break;
    case A_ERRNO:
        errno = fault_errno;
        return -1;
    case A_KILL_AFTER:
        real_rename(from, to);
        die();
        break;
    case A_NONE:
        break;
    }
    return real_rename(from, to);
}

/* A filesystem type of the test's choosing, for every statfs. */
static void fake_type(long *f_type) {
    const char *magic = getenv("PAM_MFA_STATFS_MAGIC");
    if (magic)
        *f_type = strtol(magic, NULL, 16);
}

int statfs(const char *path, struct statfs *buf) {
    REAL(statfs);
    int r = real_statfs(path, buf);
    if (r == 0)
        fake_type((long *)&buf->f_type);
    return r;
}

int fstatfs(int fd, struct statfs *buf) {
    REAL(fstatfs);
    int r = real_fstatfs(fd, buf);
    if (r == 0)
        fake_type((long *)&buf->f_type);
    return r;
}

int statfs64(const char *path, struct statfs64 *buf) {
    REAL(statfs64);
    int r = real_statfs64(path, buf);
    if (r == 0)
        fake_type((long *)&buf->f_type);
    return r;
}

int fstatfs64(int fd, struct statfs64 *buf) {
    REAL(fstatfs64);
    int r = real_fstatfs64(fd, buf);
    if (r == 0)
        fake_type((long *)&buf->f_type);
    return r;
}

/* A wall clock that cannot be read: the module panics reading it. */
int clock_gettime(clockid_t clock, struct timespec *tp) {
    REAL(clock_gettime);
    if (clock == CLOCK_REALTIME && getenv("PAM_MFA_CLOCK_FAIL")) {
        errno = EINVAL;
        return -1;
    }
    return real_clock_gettime(clock, tp);
}
