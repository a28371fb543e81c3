/* Content-addressed blob files. See blob.h for the contract.
 *
 * Durability order (DESIGN.md principle 1): write the temp file, fsync it, rename it
 * into place, fsync the directory holding it (and the parents of any directory we
 * just created). Only then may metadata referencing the blob be committed. */
#include "store/blob.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#define BLOB_PATH_MAX 4096

/* Directory fsyncs a blob write owes before it is durable (bit flags). */
#define BLOB_SYNC_BLOBS 0x1 /* data_dir/blobs: a new "ab" entry */
#define BLOB_SYNC_AB 0x2    /* data_dir/blobs/ab: a new "cd" entry */
#define BLOB_SYNC_ABCD 0x4  /* data_dir/blobs/ab/cd: the blob's own entry */

static void set_error(char **error_r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void set_error(char **error_r, const char *fmt, ...)
{
	va_list ap;
	char *s;

	if (error_r == NULL)
		return;
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	*error_r = s;
}

static int path_join(char *buf, size_t bufsz, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int path_join(char *buf, size_t bufsz, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, bufsz, fmt, ap);
	va_end(ap);
	return n < 0 || (size_t)n >= bufsz ? -1 : 1;
}

static int fsync_dir(const char *path)
{
	int fd, ret;

	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ret = fsync(fd);
	close(fd);
	return ret < 0 ? -1 : 1;
}

/* mkdir that reports whether it created the directory: 1 created, 0 existed, -1 error. */
static int mkdir_new(const char *path)
{
	if (mkdir(path, 0750) == 0)
		return 1;
	if (errno == EEXIST)
		return 0;
	return -1;
}

int blob_dirs_init(const char *data_dir, char **error_r)
{
	char path[BLOB_PATH_MAX];
	static const char *const subdirs[] = {"blobs", "tmp"};

	if (mkdir_new(data_dir) < 0) {
		set_error(error_r, "mkdir %s: %s", data_dir, strerror(errno));
		return -1;
	}
	for (size_t i = 0; i < sizeof(subdirs) / sizeof(subdirs[0]); i++) {
		if (path_join(path, sizeof(path), "%s/%s", data_dir, subdirs[i]) < 0) {
			set_error(error_r, "data_dir path too long");
			return -1;
		}
		if (mkdir_new(path) < 0) {
			set_error(error_r, "mkdir %s: %s", path, strerror(errno));
			return -1;
		}
	}
	return 1;
}

int blob_hash(const void *data, size_t len, char id_r[BLOB_ID_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen * 2 != BLOB_ID_LEN)
		return -1;
	for (unsigned int i = 0; i < mdlen; i++) {
		id_r[i * 2] = hex[md[i] >> 4];
		id_r[i * 2 + 1] = hex[md[i] & 0xf];
	}
	id_r[BLOB_ID_LEN] = '\0';
	return 1;
}

int blob_id_valid(const char *id)
{
	size_t i;

	for (i = 0; i < BLOB_ID_LEN; i++) {
		char c = id[i];
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return 0;
	}
	return id[i] == '\0';
}

int blob_path(const char *data_dir, const char *id, char *buf, size_t bufsz)
{
	if (!blob_id_valid(id))
		return -1;
	return path_join(buf, bufsz, "%s/blobs/%.2s/%.2s/%s", data_dir, id, id + 2, id);
}

/* Creates blobs/ab and blobs/ab/cd as needed. A newly created directory's entry
 * becomes durable only when its parent is fsync'd: those parents are added to
 * *dir_sync. */
static int blob_mkdirs(const char *data_dir, const char *id, unsigned *dir_sync, char **error_r)
{
	char d1[BLOB_PATH_MAX], d2[BLOB_PATH_MAX], d0[BLOB_PATH_MAX];
	int r;

	if (path_join(d0, sizeof(d0), "%s/blobs", data_dir) < 0 ||
	    path_join(d1, sizeof(d1), "%s/%.2s", d0, id) < 0 ||
	    path_join(d2, sizeof(d2), "%s/%.2s", d1, id + 2) < 0) {
		set_error(error_r, "blob path too long");
		return -1;
	}
	r = mkdir_new(d1);
	if (r < 0 && errno == ENOENT) {
		/* blobs/ itself vanished or was never created */
		if (mkdir_new(d0) < 0) {
			set_error(error_r, "mkdir %s: %s", d0, strerror(errno));
			return -1;
		}
		r = mkdir_new(d1);
	}
	if (r < 0) {
		set_error(error_r, "mkdir %s: %s", d1, strerror(errno));
		return -1;
	}
	if (r == 1)
		*dir_sync |= BLOB_SYNC_BLOBS;
	r = mkdir_new(d2);
	if (r < 0) {
		set_error(error_r, "mkdir %s: %s", d2, strerror(errno));
		return -1;
	}
	if (r == 1)
		*dir_sync |= BLOB_SYNC_AB;
	return 1;
}

static int blob_sync_dirs(const char *data_dir, const char *id, unsigned dir_sync, char **error_r)
{
	char path[BLOB_PATH_MAX];
	/* deepest first: the blob's entry, then the entries of new directories */
	static const struct {
		unsigned flag;
		int depth;
	} order[] = {{BLOB_SYNC_ABCD, 2}, {BLOB_SYNC_AB, 1}, {BLOB_SYNC_BLOBS, 0}};

	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		int r;

		if ((dir_sync & order[i].flag) == 0)
			continue;
		if (order[i].depth == 2)
			r = path_join(path, sizeof(path), "%s/blobs/%.2s/%.2s", data_dir, id,
			              id + 2);
		else if (order[i].depth == 1)
			r = path_join(path, sizeof(path), "%s/blobs/%.2s", data_dir, id);
		else
			r = path_join(path, sizeof(path), "%s/blobs", data_dir);
		if (r < 0) {
			set_error(error_r, "blob path too long");
			return -1;
		}
		if (fsync_dir(path) < 0) {
			set_error(error_r, "fsync %s: %s", path, strerror(errno));
			return -1;
		}
	}
	return 1;
}

static int write_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 1;
}

/* Writes the blob file; the directory fsyncs it owes go to *dir_sync. */
static int blob_write_file(const char *data_dir, const void *data, size_t len, bool do_fsync,
                           char id_r[BLOB_ID_LEN + 1], unsigned *dir_sync, char **error_r)
{
	char path[BLOB_PATH_MAX], tmp[BLOB_PATH_MAX];
	struct stat stbuf;
	int fd, saved;

	*dir_sync = 0;
	if (blob_hash(data, len, id_r) < 0) {
		set_error(error_r, "SHA-256 failed");
		return -1;
	}
	if (blob_path(data_dir, id_r, path, sizeof(path)) < 0 ||
	    path_join(tmp, sizeof(tmp), "%s/tmp/blob.XXXXXX", data_dir) < 0) {
		set_error(error_r, "blob path too long");
		return -1;
	}

	if (stat(path, &stbuf) == 0 && S_ISREG(stbuf.st_mode) && (uint64_t)stbuf.st_size == len) {
		/* Same content already stored. Another writer may have renamed it in
		 * place but not yet fsync'd the directory, so sync the entry ourselves
		 * before anyone commits metadata pointing at it. */
		*dir_sync = BLOB_SYNC_ABCD;
		return 1;
	}

	if (blob_mkdirs(data_dir, id_r, dir_sync, error_r) < 0)
		return -1;

	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		set_error(error_r, "create %s: %s", tmp, strerror(errno));
		return -1;
	}
	if (write_all(fd, data, len) < 0 || (do_fsync && fsync(fd) < 0)) {
		saved = errno;
		close(fd);
		unlink(tmp);
		set_error(error_r, "write %s: %s", tmp, strerror(saved));
		return -1;
	}
	if (close(fd) < 0) {
		saved = errno;
		unlink(tmp);
		set_error(error_r, "close %s: %s", tmp, strerror(saved));
		return -1;
	}
	/* The content is immutable, so if a concurrent writer already renamed the same
	 * blob into place, replacing it with identical bytes is harmless. */
	if (rename(tmp, path) < 0) {
		saved = errno;
		unlink(tmp);
		set_error(error_r, "rename %s: %s", path, strerror(saved));
		return -1;
	}
	*dir_sync |= BLOB_SYNC_ABCD;
	return 1;
}

int blob_write(const char *data_dir, const void *data, size_t len, bool do_fsync,
               char id_r[BLOB_ID_LEN + 1], char **error_r)
{
	unsigned dir_sync;

	if (blob_write_file(data_dir, data, len, do_fsync, id_r, &dir_sync, error_r) < 0)
		return -1;
	if (do_fsync && blob_sync_dirs(data_dir, id_r, dir_sync, error_r) < 0)
		return -1;
	return 1;
}

int blob_exists(const char *data_dir, const char *id, char **error_r)
{
	char path[BLOB_PATH_MAX];
	struct stat stbuf;

	if (blob_path(data_dir, id, path, sizeof(path)) < 0) {
		set_error(error_r, "invalid blob id");
		return -1;
	}
	if (stat(path, &stbuf) == 0)
		return 1;
	if (errno == ENOENT)
		return 0;
	set_error(error_r, "stat %s: %s", path, strerror(errno));
	return -1;
}

int blob_read(const char *data_dir, const char *id, char **data_r, size_t *len_r, char **error_r)
{
	char path[BLOB_PATH_MAX];
	struct stat stbuf;
	char *data;
	size_t off = 0, size;
	int fd, saved;

	if (blob_path(data_dir, id, path, sizeof(path)) < 0) {
		set_error(error_r, "invalid blob id");
		return -1;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		set_error(error_r, "open %s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &stbuf) < 0 || stbuf.st_size < 0 || (uint64_t)stbuf.st_size >= SIZE_MAX) {
		saved = errno;
		close(fd);
		set_error(error_r, "stat %s: %s", path, strerror(saved));
		return -1;
	}
	size = (size_t)stbuf.st_size;
	data = malloc(size + 1);
	if (data == NULL) {
		close(fd);
		set_error(error_r, "out of memory reading %s", path);
		return -1;
	}
	while (off < size) {
		ssize_t n = read(fd, data + off, size - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			saved = n < 0 ? errno : EIO;
			free(data);
			close(fd);
			set_error(error_r, "read %s: %s", path, strerror(saved));
			return -1;
		}
		off += (size_t)n;
	}
	close(fd);
	data[size] = '\0';
	*data_r = data;
	*len_r = size;
	return 1;
}

int blob_unlink(const char *data_dir, const char *id, char **error_r)
{
	char path[BLOB_PATH_MAX];

	if (blob_path(data_dir, id, path, sizeof(path)) < 0) {
		set_error(error_r, "invalid blob id");
		return -1;
	}
	if (unlink(path) == 0)
		return 1;
	if (errno == ENOENT)
		return 0;
	set_error(error_r, "unlink %s: %s", path, strerror(errno));
	return -1;
}
