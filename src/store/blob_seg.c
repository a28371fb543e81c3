/* Segment files for small blobs. See blob_seg.h for the contract. */
#include "store/blob_seg.h"
#include "core/str.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define SEG_PATH_MAX 4096
#define SEG_NAME_LEN 10 /* decimal, zero-padded: 0000000001 */
#define SEG_CREATE_TRIES 1000

struct blob_seg {
	int fd; /* read-write, flock'd exclusively while it is a writer's segment */
	uint32_t no;
	uint64_t end; /* bytes reserved so far (guarded by the owner's mutex) */
	atomic_uint refs;
};

struct blob_segs {
	char *data_dir;
	uint64_t seg_size;
	pthread_mutex_t mu; /* guards active and its end */
	struct blob_seg *active;
};

static int fsync_path(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC), ret;

	if (fd < 0)
		return -1;
	ret = fsync(fd);
	close(fd);
	return ret < 0 ? -1 : 1;
}

int blob_seg_path(const char *data_dir, uint32_t no, char *buf, size_t bufsz)
{
	int n = snprintf(buf, bufsz, "%s/blobs/seg/%010u", data_dir, no);

	return n < 0 || (size_t)n >= bufsz ? -1 : 1;
}

/* The segment number a directory entry names, 0 if it names none. */
static uint32_t seg_name_no(const char *name)
{
	uint64_t v = 0;
	size_t i;

	for (i = 0; name[i] >= '0' && name[i] <= '9' && i < SEG_NAME_LEN; i++)
		v = v * 10 + (uint64_t)(name[i] - '0');
	if (i != SEG_NAME_LEN || name[i] != '\0' || v == 0 || v > UINT32_MAX)
		return 0;
	return (uint32_t)v;
}

int blob_segs_open(const char *data_dir, uint64_t seg_size, struct blob_segs **segs_r,
                   char **error_r)
{
	struct blob_segs *s = calloc(1, sizeof(*s));

	*segs_r = NULL;
	if (s == NULL || (s->data_dir = str_dup(data_dir)) == NULL) {
		free(s);
		return str_error(error_r, "out of memory");
	}
	s->seg_size = seg_size != 0 ? seg_size : BLOB_SEG_SIZE_DEFAULT;
	pthread_mutex_init(&s->mu, NULL);
	*segs_r = s;
	return 1;
}

void blob_seg_release(struct blob_seg *seg)
{
	if (seg == NULL)
		return;
	if (atomic_fetch_sub(&seg->refs, 1) == 1) {
		close(seg->fd); /* drops the flock */
		free(seg);
	}
}

void blob_segs_close(struct blob_segs **segs)
{
	struct blob_segs *s = *segs;

	if (s == NULL)
		return;
	*segs = NULL;
	blob_seg_release(s->active);
	pthread_mutex_destroy(&s->mu);
	free(s->data_dir);
	free(s);
}

uint32_t blob_segs_active(struct blob_segs *segs)
{
	uint32_t no;

	pthread_mutex_lock(&segs->mu);
	no = segs->active != NULL ? segs->active->no : 0;
	pthread_mutex_unlock(&segs->mu);
	return no;
}

/* Takes fd (open read-write on segment no) as the writer's segment when the
 * exclusive lock is free and the file is still linked: 1 with *seg_r, 0 not
 * usable (fd closed), -1 error (fd closed). */
static int seg_adopt(int fd, uint32_t no, struct blob_seg **seg_r, char **error_r)
{
	struct stat sb;

	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int saved = errno;
		close(fd);
		if (saved == EWOULDBLOCK)
			return 0; /* another writer's, or claimed by a sweep */
		return str_error(error_r, "flock segment %u: %s", no, strerror(saved));
	}
	if (fstat(fd, &sb) < 0) {
		int saved = errno;
		close(fd);
		return str_error(error_r, "stat segment %u: %s", no, strerror(saved));
	}
	if (sb.st_nlink == 0 || !S_ISREG(sb.st_mode)) {
		close(fd); /* removed by a sweep between our open and our lock */
		return 0;
	}
	struct blob_seg *seg = calloc(1, sizeof(*seg));
	if (seg == NULL) {
		close(fd);
		return str_error(error_r, "out of memory");
	}
	seg->fd = fd;
	seg->no = no;
	seg->end = (uint64_t)sb.st_size;
	atomic_init(&seg->refs, 1);
	*seg_r = seg;
	return 1;
}

/* The directory of the segments, created (and made durable) when missing. */
static int seg_dir_ensure(const char *data_dir, char *dir, size_t dirsz, char **error_r)
{
	char blobs[SEG_PATH_MAX];
	int n = snprintf(blobs, sizeof(blobs), "%s/blobs", data_dir);

	if (n < 0 || (size_t)n >= sizeof(blobs) ||
	    snprintf(dir, dirsz, "%s/seg", blobs) >= (int)dirsz)
		return str_error(error_r, "data_dir path too long");
	if (mkdir(dir, 0750) == 0) {
		if (fsync_path(blobs) < 0)
			return str_error(error_r, "fsync %s: %s", blobs, strerror(errno));
	} else if (errno != EEXIST) {
		return str_error(error_r, "mkdir %s: %s", dir, strerror(errno));
	}
	return 1;
}

/* A new active segment (segs->mu held): the highest existing one when it has room
 * and nobody writes to it, else a new file numbered past every existing one. */
static int seg_start(struct blob_segs *s, char **error_r)
{
	char dir[SEG_PATH_MAX], path[SEG_PATH_MAX];
	uint32_t max = 0;
	int r;

	if (seg_dir_ensure(s->data_dir, dir, sizeof(dir), error_r) < 0)
		return -1;
	DIR *d = opendir(dir);
	if (d == NULL)
		return str_error(error_r, "opendir %s: %s", dir, strerror(errno));
	for (struct dirent *e; (e = readdir(d)) != NULL;) {
		uint32_t no = seg_name_no(e->d_name);
		if (no > max)
			max = no;
	}
	closedir(d);

	if (max > 0 && blob_seg_path(s->data_dir, max, path, sizeof(path)) > 0) {
		int fd = open(path, O_RDWR | O_CLOEXEC);
		struct blob_seg *seg = NULL;
		if (fd >= 0 && (r = seg_adopt(fd, max, &seg, error_r)) != 0) {
			if (r < 0)
				return -1;
			if (seg->end < s->seg_size) {
				s->active = seg;
				return 1;
			}
			blob_seg_release(seg);
		}
	}
	for (unsigned i = 0; i < SEG_CREATE_TRIES; i++) {
		uint32_t no = max + 1 + i;
		if (no == 0 || blob_seg_path(s->data_dir, no, path, sizeof(path)) < 0)
			break;
		int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
		if (fd < 0) {
			if (errno == EEXIST)
				continue; /* another process's new segment */
			return str_error(error_r, "create %s: %s", path, strerror(errno));
		}
		struct blob_seg *seg = NULL;
		r = seg_adopt(fd, no, &seg, error_r);
		if (r < 0)
			return -1;
		if (r == 0)
			continue;
		/* The new name must survive a crash before any blob in it is committed. */
		if (fsync_path(dir) < 0) {
			int saved = errno;
			blob_seg_release(seg);
			return str_error(error_r, "fsync %s: %s", dir, strerror(saved));
		}
		s->active = seg;
		return 1;
	}
	return str_error(error_r, "no segment file could be created in %s", dir);
}

static int pwrite_all(int fd, const char *p, size_t len, uint64_t off)
{
	while (len > 0) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 1;
}

int blob_segs_append(struct blob_segs *s, const struct blob_src *src, struct blob_seg **seg_r,
                     uint32_t *no_r, uint64_t *off_r, char **error_r)
{
	struct blob_seg *seg;
	uint64_t off;

	*seg_r = NULL;
	pthread_mutex_lock(&s->mu);
	if (s->active != NULL && s->active->end > 0 && s->active->end + src->size > s->seg_size) {
		blob_seg_release(s->active); /* full: pending writers keep it open */
		s->active = NULL;
	}
	if (s->active == NULL && seg_start(s, error_r) < 0) {
		pthread_mutex_unlock(&s->mu);
		return -1;
	}
	seg = s->active;
	off = seg->end;
	seg->end += src->size; /* reserved: the bytes are written outside the lock */
	atomic_fetch_add(&seg->refs, 1);
	pthread_mutex_unlock(&s->mu);

	char chunk[65536];
	for (uint64_t done = 0; done < src->size;) {
		size_t n =
		    src->size - done < sizeof(chunk) ? (size_t)(src->size - done) : sizeof(chunk);
		if (blob_src_read(src, chunk, n, done) < 0) {
			blob_seg_release(seg);
			return str_error(error_r, "reading the message failed");
		}
		if (pwrite_all(seg->fd, chunk, n, off + done) < 0) {
			int saved = errno;
			blob_seg_release(seg); /* the reserved range stays dead space */
			return str_error(error_r, "write segment %u: %s", seg->no, strerror(saved));
		}
		done += n;
	}
	*seg_r = seg;
	*no_r = seg->no;
	*off_r = off;
	return 1;
}

int blob_seg_sync(struct blob_seg *seg, char **error_r)
{
	if (fdatasync(seg->fd) < 0)
		return str_error(error_r, "fsync segment %u: %s", seg->no, strerror(errno));
	return 1;
}

int blob_seg_open(const char *data_dir, uint32_t no, int *fd_r, char **error_r)
{
	char path[SEG_PATH_MAX];

	*fd_r = -1;
	if (blob_seg_path(data_dir, no, path, sizeof(path)) < 0)
		return str_error(error_r, "data_dir path too long");
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		return str_error(error_r, "open %s: %s", path, strerror(errno));
	}
	*fd_r = fd;
	return 1;
}

int blob_seg_read(const char *data_dir, uint32_t no, uint64_t off, size_t len, char **data_r,
                  char **error_r)
{
	int fd, r = blob_seg_open(data_dir, no, &fd, error_r);
	char *data;
	size_t got = 0;

	*data_r = NULL;
	if (r <= 0)
		return r;
	if (len == SIZE_MAX || (data = malloc(len + 1)) == NULL) {
		close(fd);
		return str_error(error_r, "out of memory reading segment %u", no);
	}
	while (got < len) {
		ssize_t n = pread(fd, data + got, len - got, (off_t)(off + got));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int saved = n < 0 ? errno : EIO;
			free(data);
			close(fd);
			return str_error(error_r, "read segment %u: %s", no,
			                 n < 0 ? strerror(saved) : "short segment");
		}
		got += (size_t)n;
	}
	close(fd);
	data[len] = '\0';
	*data_r = data;
	return 1;
}

int blob_seg_each(const char *data_dir, int (*fn)(void *ctx, const struct blob_seg_info *info),
                  void *ctx, char **error_r)
{
	char dir[SEG_PATH_MAX];
	int n = snprintf(dir, sizeof(dir), "%s/blobs/seg", data_dir), ret = 1;

	if (n < 0 || (size_t)n >= sizeof(dir))
		return str_error(error_r, "data_dir path too long");
	DIR *d = opendir(dir);
	if (d == NULL) {
		if (errno == ENOENT)
			return 1;
		return str_error(error_r, "opendir %s: %s", dir, strerror(errno));
	}
	for (struct dirent *e; ret > 0 && (e = readdir(d)) != NULL;) {
		struct stat sb;
		uint32_t no = seg_name_no(e->d_name);
		if (no == 0 || fstatat(dirfd(d), e->d_name, &sb, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISREG(sb.st_mode))
			continue;
		struct blob_seg_info info = {
		    .no = no, .size = (uint64_t)sb.st_size, .mtime = sb.st_mtime};
		ret = fn(ctx, &info);
	}
	closedir(d);
	return ret;
}

int blob_seg_claim(const char *data_dir, uint32_t no, int *fd_r, char **error_r)
{
	struct stat sb;
	int fd, r = blob_seg_open(data_dir, no, &fd, error_r);

	*fd_r = -1;
	if (r <= 0)
		return r;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int saved = errno;
		close(fd);
		if (saved == EWOULDBLOCK)
			return 0;
		return str_error(error_r, "flock segment %u: %s", no, strerror(saved));
	}
	if (fstat(fd, &sb) < 0 || sb.st_nlink == 0) {
		close(fd);
		return 0;
	}
	*fd_r = fd;
	return 1;
}

int blob_seg_unlink(const char *data_dir, uint32_t no, char **error_r)
{
	char path[SEG_PATH_MAX];

	if (blob_seg_path(data_dir, no, path, sizeof(path)) < 0)
		return str_error(error_r, "data_dir path too long");
	if (unlink(path) == 0)
		return 1;
	if (errno == ENOENT)
		return 0;
	return str_error(error_r, "unlink %s: %s", path, strerror(errno));
}
