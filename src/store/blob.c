/* Content-addressed blob files. See blob.h for the contract.
 *
 * Durability order (DESIGN.md principle 1): write the file and link it into place,
 * fsync it, fsync the directory holding it (and the parents of any directory we
 * just created). Only then may metadata referencing the blob be committed. The two
 * halves are separate calls so the group-commit leader can sync a whole batch in a
 * row: the first sync commits the file system journal for all of them, and the
 * rest find little left to do. */
#include "store/blob.h"
#include "core/str.h"
#include "store/blob_seg.h"

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
#define BLOB_SYNC_AB 0x2    /* data_dir/blobs/ab: the blob's own entry */

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
	static const char hex[] = "0123456789abcdef";
	char path[BLOB_PATH_MAX];
	int created = 0, r;

	if (mkdir_new(data_dir) < 0) {
		str_error(error_r, "mkdir %s: %s", data_dir, strerror(errno));
		return -1;
	}
	if (path_join(path, sizeof(path), "%s/blobs", data_dir) < 0) {
		str_error(error_r, "data_dir path too long");
		return -1;
	}
	if ((r = mkdir_new(path)) < 0) {
		str_error(error_r, "mkdir %s: %s", path, strerror(errno));
		return -1;
	}
	/* All 256 fan-out directories exist from the start, so a delivery never
	 * creates a directory (on a young store that was most of the cost). */
	for (int i = 0; i < 256; i++) {
		if (path_join(path, sizeof(path), "%s/blobs/%c%c", data_dir, hex[i >> 4],
		              hex[i & 15]) < 0) {
			str_error(error_r, "data_dir path too long");
			return -1;
		}
		if ((r = mkdir_new(path)) < 0) {
			str_error(error_r, "mkdir %s: %s", path, strerror(errno));
			return -1;
		}
		created |= r;
	}
	if (created && path_join(path, sizeof(path), "%s/blobs", data_dir) > 0 &&
	    (fsync_dir(path) < 0 || fsync_dir(data_dir) < 0)) {
		str_error(error_r, "fsync %s: %s", path, strerror(errno));
		return -1;
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
	return path_join(buf, bufsz, "%s/blobs/%.2s/%s", data_dir, id, id);
}

/* Creates blobs/ab if it is missing (blob_dirs_init makes all 256; this covers a
 * data_dir whose directories were removed). A newly created directory's entry
 * becomes durable only when its parent is fsync'd: that is added to *dir_sync. */
static int blob_mkdirs(const char *data_dir, const char *id, unsigned *dir_sync, char **error_r)
{
	char d0[BLOB_PATH_MAX], d1[BLOB_PATH_MAX];
	struct stat stbuf;
	int r;

	if (path_join(d0, sizeof(d0), "%s/blobs", data_dir) < 0 ||
	    path_join(d1, sizeof(d1), "%s/%.2s", d0, id) < 0) {
		str_error(error_r, "blob path too long");
		return -1;
	}
	if (stat(d1, &stbuf) == 0 && S_ISDIR(stbuf.st_mode))
		return 1;
	r = mkdir_new(d1);
	if (r < 0 && errno == ENOENT) {
		/* blobs/ itself vanished */
		if (mkdir_new(d0) < 0) {
			str_error(error_r, "mkdir %s: %s", d0, strerror(errno));
			return -1;
		}
		r = mkdir_new(d1);
	}
	if (r < 0) {
		str_error(error_r, "mkdir %s: %s", d1, strerror(errno));
		return -1;
	}
	if (r == 1)
		*dir_sync |= BLOB_SYNC_BLOBS;
	return 1;
}

static int blob_sync_dirs(const char *data_dir, const char *id, unsigned dir_sync, char **error_r)
{
	char path[BLOB_PATH_MAX];
	/* deepest first: the blob's entry, then the entries of new directories */
	static const struct {
		unsigned flag;
		int depth;
	} order[] = {{BLOB_SYNC_AB, 1}, {BLOB_SYNC_BLOBS, 0}};

	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		int r;

		if ((dir_sync & order[i].flag) == 0)
			continue;
		if (order[i].depth == 1)
			r = path_join(path, sizeof(path), "%s/blobs/%.2s", data_dir, id);
		else
			r = path_join(path, sizeof(path), "%s/blobs", data_dir);
		if (r < 0) {
			str_error(error_r, "blob path too long");
			return -1;
		}
		if (fsync_dir(path) < 0) {
			str_error(error_r, "fsync %s: %s", path, strerror(errno));
			return -1;
		}
	}
	return 1;
}

/* Memory as a blob source. */
struct blob_mem {
	const char *data;
};

static long blob_mem_read(void *ctx, void *buf, size_t len, uint64_t off)
{
	struct blob_mem *mem = ctx;

	memcpy(buf, mem->data + off, len);
	return (long)len;
}

int blob_src_read(const struct blob_src *src, void *buf, size_t len, uint64_t off)
{
	char *p = buf;

	while (len > 0) {
		long n = src->read(src->ctx, p, len, off);
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
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

/* Copies the whole of src to fd (at its current offset). 1 ok, -1 error (errno). */
static int blob_src_copy(const struct blob_src *src, int fd)
{
	char chunk[65536];

	for (uint64_t off = 0; off < src->size;) {
		size_t n = src->size - off < sizeof(chunk) ? (size_t)(src->size - off) : sizeof(chunk);
		if (blob_src_read(src, chunk, n, off) < 0) {
			errno = EIO;
			return -1;
		}
		if (write_all(fd, chunk, n) < 0)
			return -1;
		off += n;
	}
	return 1;
}

int blob_src_hash(const struct blob_src *src, char id_r[BLOB_ID_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE], chunk[65536];
	unsigned int mdlen = 0;
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	int ok = c != NULL && EVP_DigestInit_ex(c, EVP_sha256(), NULL) == 1;

	for (uint64_t off = 0; ok && off < src->size;) {
		size_t n = src->size - off < sizeof(chunk) ? (size_t)(src->size - off) : sizeof(chunk);
		ok = blob_src_read(src, chunk, n, off) > 0 && EVP_DigestUpdate(c, chunk, n) == 1;
		off += n;
	}
	ok = ok && EVP_DigestFinal_ex(c, md, &mdlen) == 1 && mdlen * 2 == BLOB_ID_LEN;
	EVP_MD_CTX_free(c);
	if (!ok)
		return -1;
	for (unsigned int i = 0; i < mdlen; i++) {
		id_r[i * 2] = hex[md[i] >> 4];
		id_r[i * 2 + 1] = hex[md[i] & 0xf];
	}
	id_r[BLOB_ID_LEN] = '\0';
	return 1;
}

/* Creates the file in its final directory: src->link_fd linked into place when the
 * source is an unnamed file already (no copy), else an unnamed O_TMPFILE inode
 * filled and linked into place once complete (a crash before the link leaves
 * nothing behind), or where the file system lacks O_TMPFILE a temporary name in
 * the same directory renamed into place. Same-directory operations keep concurrent
 * writers off the file system's cross-directory rename lock. Returns the open fd
 * (>= 0) or -1. */
static int blob_create_file(const char *path, const struct blob_src *src, bool replace,
                            char **error_r)
{
	char dir[BLOB_PATH_MAX], tmp[BLOB_PATH_MAX], proc[64];
	const char *slash = strrchr(path, '/');
	int fd, saved;

	if (slash == NULL || (size_t)(slash - path) >= sizeof(dir)) {
		str_error(error_r, "blob path too long");
		return -1;
	}
	memcpy(dir, path, (size_t)(slash - path));
	dir[slash - path] = '\0';

	if (!replace && src->link_fd >= 0) {
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", src->link_fd);
		if (linkat(AT_FDCWD, proc, AT_FDCWD, path, AT_SYMLINK_FOLLOW) == 0 ||
		    errno == EEXIST) { /* same content linked by a concurrent writer */
			fd = dup(src->link_fd);
			if (fd >= 0)
				return fd;
			str_error(error_r, "dup: %s", strerror(errno));
			return -1;
		}
		/* Not linkable (linked once already, no /proc, another file system):
		 * copy it below. */
	}
	fd = replace ? -1 : open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0640);
	if (replace) {
		/* linkat cannot replace: go the rename way */
	} else if (fd >= 0) {
		if (blob_src_copy(src, fd) < 0) {
			saved = errno;
			close(fd);
			str_error(error_r, "write blob in %s: %s", dir, strerror(saved));
			return -1;
		}
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
		if (linkat(AT_FDCWD, proc, AT_FDCWD, path, AT_SYMLINK_FOLLOW) == 0 ||
		    errno == EEXIST) /* same content linked by a concurrent writer */
			return fd;
		saved = errno;
		close(fd);
		if (saved != ENOENT) { /* ENOENT: no /proc; fall back below */
			str_error(error_r, "link %s: %s", path, strerror(saved));
			return -1;
		}
	} else if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL) {
		str_error(error_r, "create blob in %s: %s", dir, strerror(errno));
		return -1;
	}

	if (path_join(tmp, sizeof(tmp), "%s/.tmp.XXXXXX", dir) < 0) {
		str_error(error_r, "blob path too long");
		return -1;
	}
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		str_error(error_r, "create %s: %s", tmp, strerror(errno));
		return -1;
	}
	/* The content is immutable, so replacing a blob a concurrent writer already
	 * renamed into place with identical bytes is harmless. */
	if (blob_src_copy(src, fd) < 0 || rename(tmp, path) < 0) {
		saved = errno;
		close(fd);
		unlink(tmp);
		str_error(error_r, "write %s: %s", path, strerror(saved));
		return -1;
	}
	return fd;
}

/* Opens path when its content is exactly src's (fd >= 0), else -1. */
static int blob_open_if_equal(const char *path, const struct blob_src *src)
{
	char chunk[65536], want[65536];
	struct stat stbuf;
	uint64_t off = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	if (fstat(fd, &stbuf) < 0 || !S_ISREG(stbuf.st_mode) || (uint64_t)stbuf.st_size != src->size)
		goto differ;
	while (off < src->size) {
		size_t len = src->size - off < sizeof(chunk) ? (size_t)(src->size - off) : sizeof(chunk);
		ssize_t n = pread(fd, chunk, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || blob_src_read(src, want, (size_t)n, off) < 0 ||
		    memcmp(chunk, want, (size_t)n) != 0)
			goto differ;
		off += (uint64_t)n;
	}
	return fd;
differ:
	close(fd);
	return -1;
}

int blob_write_begin_src(const char *data_dir, const struct blob_src *src, const char *id,
                         struct blob_pending *p, char **error_r)
{
	char path[BLOB_PATH_MAX];
	struct stat stbuf;

	p->fd = -1;
	p->dir_sync = 0;
	p->data_synced = false;
	p->seg = NULL;
	p->seg_no = 0;
	p->seg_off = 0;
	if (id != NULL && blob_id_valid(id))
		memcpy(p->id, id, BLOB_ID_LEN + 1);
	else if (blob_src_hash(src, p->id) < 0) {
		str_error(error_r, "SHA-256 of the message failed");
		return -1;
	}
	if (blob_path(data_dir, p->id, path, sizeof(path)) < 0) {
		str_error(error_r, "blob path too long");
		return -1;
	}
	bool replace = false;
	if (stat(path, &stbuf) == 0) {
		/* Same content already stored, or a file a crash left before it was
		 * synced: reuse it only when its bytes are right. Another writer may
		 * have linked it but not synced it yet, so keep it open and sync it
		 * ourselves before anyone commits metadata pointing at it. */
		int fd = blob_open_if_equal(path, src);
		if (fd >= 0) {
			p->fd = fd;
			p->dir_sync = BLOB_SYNC_AB;
			return 1;
		}
		replace = true;
	}
	if (blob_mkdirs(data_dir, p->id, &p->dir_sync, error_r) < 0)
		return -1;
	p->fd = blob_create_file(path, src, replace, error_r);
	if (p->fd < 0)
		return -1;
	p->dir_sync |= BLOB_SYNC_AB;
	return 1;
}

int blob_write_begin_seg(struct blob_segs *segs, const struct blob_src *src, const char *id,
                         struct blob_pending *p, char **error_r)
{
	p->fd = -1;
	p->dir_sync = 0;
	p->data_synced = false;
	p->seg = NULL;
	p->seg_no = 0;
	p->seg_off = 0;
	if (id != NULL && blob_id_valid(id))
		memcpy(p->id, id, BLOB_ID_LEN + 1);
	else if (blob_src_hash(src, p->id) < 0)
		return str_error(error_r, "SHA-256 of the message failed");
	return blob_segs_append(segs, src, &p->seg, &p->seg_no, &p->seg_off, error_r);
}

int blob_write_begin(const char *data_dir, const void *data, size_t len,
                     struct blob_pending *p, char **error_r)
{
	struct blob_mem mem = {.data = data};
	struct blob_src src = {.size = len, .read = blob_mem_read, .ctx = &mem, .link_fd = -1};

	return blob_write_begin_src(data_dir, &src, NULL, p, error_r);
}

int blob_write_sync(const char *data_dir, struct blob_pending *p, bool do_fsync, char **error_r)
{
	int r = 1;

	if (p->seg != NULL) {
		if (do_fsync && blob_seg_sync(p->seg, error_r) < 0)
			r = -1;
		blob_seg_release(p->seg);
		p->seg = NULL;
	}
	if (p->fd >= 0) {
		if (do_fsync && fdatasync(p->fd) < 0) {
			str_error(error_r, "fsync blob %s: %s", p->id, strerror(errno));
			r = -1;
		}
		close(p->fd);
		p->fd = -1;
	}
	if (r > 0 && do_fsync && blob_sync_dirs(data_dir, p->id, p->dir_sync, error_r) < 0)
		r = -1;
	p->dir_sync = 0;
	return r;
}

int blob_pending_sync_data(struct blob_pending *p, char **error_r)
{
	if (p->fd >= 0 && !p->data_synced) {
		if (fdatasync(p->fd) < 0) {
			str_error(error_r, "fsync blob %s: %s", p->id, strerror(errno));
			return -1;
		}
	}
	p->data_synced = true;
	return 1;
}

void blob_write_sync_batch(const char *data_dir, struct blob_pending *const *ps, size_t n,
                           bool do_fsync, int *results, char **errors)
{
	unsigned char ab[256] = {0}; /* fan-out directories touched */
	bool blobs = false;
	char path[BLOB_PATH_MAX];

	/* Start the writeback of every file first, so that the data of the whole
	 * batch goes to the disk together and the first fdatasync's journal commit
	 * carries the others' metadata too: the later ones find little left to do. */
	for (size_t i = 0; do_fsync && i < n; i++) {
		if (ps[i]->fd >= 0 && !ps[i]->data_synced)
			(void)sync_file_range(ps[i]->fd, 0, 0, SYNC_FILE_RANGE_WRITE);
	}
	for (size_t i = 0; i < n; i++) {
		struct blob_pending *p = ps[i];
		results[i] = 1;
		errors[i] = NULL;
		if (p->seg != NULL) {
			/* one fdatasync per segment of the batch: the first blob of each
			 * segment syncs it, the others share that result */
			size_t j = 0;
			while (j < i && ps[j]->seg_no != p->seg_no)
				j++;
			if (j < i) {
				results[i] = results[j];
				if (results[j] < 0)
					errors[i] = str_dup(errors[j] != NULL ? errors[j]
				                                              : "segment fsync failed");
			} else if (do_fsync && blob_seg_sync(p->seg, &errors[i]) < 0) {
				results[i] = -1;
			}
		}
		if (p->fd >= 0) {
			if (do_fsync && !p->data_synced && fdatasync(p->fd) < 0) {
				str_error(&errors[i], "fsync blob %s: %s", p->id, strerror(errno));
				results[i] = -1;
			}
			close(p->fd);
			p->fd = -1;
		}
		if (results[i] > 0 && (p->dir_sync & BLOB_SYNC_AB) != 0) {
			unsigned hi = (unsigned)(p->id[0] <= '9' ? p->id[0] - '0' : p->id[0] - 'a' + 10);
			unsigned lo = (unsigned)(p->id[1] <= '9' ? p->id[1] - '0' : p->id[1] - 'a' + 10);
			ab[(hi << 4) | lo] = 1;
		}
		if (results[i] > 0 && (p->dir_sync & BLOB_SYNC_BLOBS) != 0)
			blobs = true;
	}
	if (!do_fsync)
		goto out;
	/* deepest first: the blobs' entries, then the entries of new directories */
	for (unsigned d = 0; d < 256; d++) {
		if (!ab[d])
			continue;
		if (path_join(path, sizeof(path), "%s/blobs/%02x", data_dir, d) < 0 ||
		    fsync_dir(path) < 0) {
			int saved = errno;
			for (size_t i = 0; i < n; i++) {
				if (results[i] > 0 && strtoul((char[3]){ps[i]->id[0], ps[i]->id[1], 0},
				                              NULL, 16) == d) {
					results[i] = -1;
					str_error(&errors[i], "fsync %s: %s", path, strerror(saved));
				}
			}
		}
	}
	if (blobs && (path_join(path, sizeof(path), "%s/blobs", data_dir) < 0 ||
	              fsync_dir(path) < 0)) {
		int saved = errno;
		for (size_t i = 0; i < n; i++) {
			if (results[i] > 0 && (ps[i]->dir_sync & BLOB_SYNC_BLOBS) != 0) {
				results[i] = -1;
				str_error(&errors[i], "fsync %s: %s", path, strerror(saved));
			}
		}
	}
out:
	for (size_t i = 0; i < n; i++) {
		ps[i]->dir_sync = 0;
		blob_seg_release(ps[i]->seg);
		ps[i]->seg = NULL;
	}
}

void blob_pending_abort(struct blob_pending *p)
{
	blob_seg_release(p->seg); /* the bytes stay as dead space in the segment */
	p->seg = NULL;
	if (p->fd >= 0)
		close(p->fd);
	p->fd = -1;
	p->dir_sync = 0;
}

int blob_write(const char *data_dir, const void *data, size_t len, bool do_fsync,
               char id_r[BLOB_ID_LEN + 1], char **error_r)
{
	struct blob_pending p;

	if (blob_write_begin(data_dir, data, len, &p, error_r) < 0)
		return -1;
	memcpy(id_r, p.id, BLOB_ID_LEN + 1);
	return blob_write_sync(data_dir, &p, do_fsync, error_r);
}

int blob_exists(const char *data_dir, const char *id, char **error_r)
{
	char path[BLOB_PATH_MAX];
	struct stat stbuf;

	if (blob_path(data_dir, id, path, sizeof(path)) < 0) {
		str_error(error_r, "invalid blob id");
		return -1;
	}
	if (stat(path, &stbuf) == 0)
		return 1;
	if (errno == ENOENT)
		return 0;
	str_error(error_r, "stat %s: %s", path, strerror(errno));
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
		str_error(error_r, "invalid blob id");
		return -1;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		str_error(error_r, "open %s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &stbuf) < 0 || stbuf.st_size < 0 || (uint64_t)stbuf.st_size >= SIZE_MAX) {
		saved = errno;
		close(fd);
		str_error(error_r, "stat %s: %s", path, strerror(saved));
		return -1;
	}
	size = (size_t)stbuf.st_size;
	data = malloc(size + 1);
	if (data == NULL) {
		close(fd);
		str_error(error_r, "out of memory reading %s", path);
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
			str_error(error_r, "read %s: %s", path, strerror(saved));
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
		str_error(error_r, "invalid blob id");
		return -1;
	}
	if (unlink(path) == 0)
		return 1;
	if (errno == ENOENT)
		return 0;
	str_error(error_r, "unlink %s: %s", path, strerror(errno));
	return -1;
}

int blob_open(const char *data_dir, const char *id, int *fd_r, uint64_t *size_r, char **error_r)
{
	char path[BLOB_PATH_MAX];
	struct stat stbuf;
	int fd, saved;

	if (blob_path(data_dir, id, path, sizeof(path)) < 0) {
		str_error(error_r, "invalid blob id");
		return -1;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		str_error(error_r, "open %s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &stbuf) < 0 || stbuf.st_size < 0) {
		saved = errno;
		close(fd);
		str_error(error_r, "stat %s: %s", path, strerror(saved));
		return -1;
	}
	*fd_r = fd;
	*size_r = (uint64_t)stbuf.st_size;
	return 1;
}
