/* A disk that fills up or turns read-only, for one process: an LD_PRELOAD library that the
 * store-fault end-to-end tests (store_faults.rs) build and start the host with. Tests cannot
 * mount a small or read-only file system without root, and a real full disk would take the
 * whole machine with it.
 *
 * While the file named by $STORE_FAULT_SWITCH exists, every write of the process to a file
 * under the directory $STORE_FAULT_DIR fails: with EROFS when the switch file says "EROFS" (a
 * file system remounted read-only after errors), else with ENOSPC (the disk is full). Spared
 * are SQLite's "-shm" files (the WAL index: shared memory that SQLite maps and a full disk
 * does not stop) and every file elsewhere (the logs, sockets, pipes).
 *
 * Interposed are the libc calls that write a file's bytes or grow it: `write` (SQLite's unix
 * layer, built without USE_PREAD as libsqlite3-sys builds it, seeks and writes), the
 * positioned and vectored writes, `ftruncate` and the `fallocate`s. Growing a file on a full
 * disk fails; shrinking it does not. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

/* The errno that writes to `fd` fail with now, or 0 when they pass. */
static int refusal(int fd) {
    const char *dir = getenv("STORE_FAULT_DIR");
    const char *flag = getenv("STORE_FAULT_SWITCH");
    if (dir == NULL || flag == NULL) {
        return 0;
    }
    char link[64];
    char path[PATH_MAX];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t length = readlink(link, path, sizeof path - 1);
    if (length <= 0) {
        return 0;
    }
    path[length] = '\0';
    size_t prefix = strlen(dir);
    if (strncmp(path, dir, prefix) != 0 || path[prefix] != '/') {
        return 0;
    }
    if (length >= 4 && strcmp(path + length - 4, "-shm") == 0) {
        return 0;
    }
    int switch_fd = open(flag, O_RDONLY | O_CLOEXEC);
    if (switch_fd < 0) {
        return 0;
    }
    char mode[16] = {0};
    ssize_t got = read(switch_fd, mode, sizeof mode - 1);
    close(switch_fd);
    return got >= 5 && strncmp(mode, "EROFS", 5) == 0 ? EROFS : ENOSPC;
}

/* The refusal of making `fd`'s file `length` bytes long: a full disk still lets it shrink. */
static int refusal_to_size(int fd, off_t length) {
    int refused = refusal(fd);
    struct stat now;
    if (refused == ENOSPC && fstat(fd, &now) == 0 && length <= now.st_size) {
        return 0;
    }
    return refused;
}

/* The next definition of `name` (libc's), looked up once. */
#define REAL(name)                                                                           \
    static __typeof__(name) *real;                                                           \
    if (real == NULL) {                                                                      \
        real = (__typeof__(name) *)dlsym(RTLD_NEXT, #name);                                  \
    }

/* Fails the call with `refused` as errno, if it is not 0. */
#define REFUSE_WITH(refused)                                                                 \
    do {                                                                                     \
        int errno_ = (refused);                                                              \
        if (errno_ != 0) {                                                                   \
            errno = errno_;                                                                  \
            return -1;                                                                       \
        }                                                                                    \
    } while (0)

ssize_t write(int fd, const void *buf, size_t count) {
    REAL(write);
    REFUSE_WITH(refusal(fd));
    return real(fd, buf, count);
}

ssize_t pwrite(int fd, const void *buf, size_t count, off_t offset) {
    REAL(pwrite);
    REFUSE_WITH(refusal(fd));
    return real(fd, buf, count, offset);
}

ssize_t pwrite64(int fd, const void *buf, size_t count, off64_t offset) {
    REAL(pwrite64);
    REFUSE_WITH(refusal(fd));
    return real(fd, buf, count, offset);
}

ssize_t writev(int fd, const struct iovec *iov, int count) {
    REAL(writev);
    REFUSE_WITH(refusal(fd));
    return real(fd, iov, count);
}

ssize_t pwritev(int fd, const struct iovec *iov, int count, off_t offset) {
    REAL(pwritev);
    REFUSE_WITH(refusal(fd));
    return real(fd, iov, count, offset);
}

int ftruncate(int fd, off_t length) {
    REAL(ftruncate);
    REFUSE_WITH(refusal_to_size(fd, length));
    return real(fd, length);
}

int ftruncate64(int fd, off64_t length) {
    REAL(ftruncate64);
    REFUSE_WITH(refusal_to_size(fd, length));
    return real(fd, length);
}

int fallocate(int fd, int mode, off_t offset, off_t length) {
    REAL(fallocate);
    REFUSE_WITH(refusal(fd));
    return real(fd, mode, offset, length);
}

/* Answers the error number itself, as POSIX has it, rather than setting errno. */
int posix_fallocate(int fd, off_t offset, off_t length) {
    REAL(posix_fallocate);
    int refused = refusal(fd);
    return refused != 0 ? refused : real(fd, offset, length);
}
