/* Content-addressed, immutable blob files: data_dir/blobs/ab/<sha256 hex>.
 * A blob is written in its directory (O_TMPFILE, linked into place), fsync'd, and
 * the directory fsync'd, so once blob_write() returns 1 the bytes survive a crash. Blob files carry
 * no reference count: the store's metadata does (see store_sqlite.c). This module
 * knows nothing about the database. */
#ifndef HERMOD_STORE_BLOB_H
#define HERMOD_STORE_BLOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BLOB_ID_LEN 64 /* hex SHA-256 */

/* Creates data_dir, data_dir/blobs and its 256 fan-out directories if missing. 1 ok, -1 error. */
int blob_dirs_init(const char *data_dir, char **error_r);

/* Hex SHA-256 of data into id_r (BLOB_ID_LEN + 1 bytes, NUL-terminated). 1 ok, -1 error. */
int blob_hash(const void *data, size_t len, char id_r[BLOB_ID_LEN + 1]);

/* 1 if id is BLOB_ID_LEN lower-case hex digits, else 0. */
int blob_id_valid(const char *id);

/* Path of a blob into buf. 1 ok, -1 too long or invalid id. */
int blob_path(const char *data_dir, const char *id, char *buf, size_t bufsz);

/* Writes data as a blob (or reuses an existing one with the same content) and sets
 * id_r. With do_fsync, the file and its directory entries are durable on return.
 * 1 ok, -1 error with *error_r malloc'd (error_r may be NULL). */
int blob_write(const char *data_dir, const void *data, size_t len, bool do_fsync,
               char id_r[BLOB_ID_LEN + 1], char **error_r);

struct blob_seg;

/* A blob written but not yet durable (blob_write in two halves). It is either a
 * file of its own (fd) or bytes appended to a segment file (seg, see blob_seg.h:
 * seg_no and seg_off say where; blob_write_sync_batch syncs each segment once). */
struct blob_pending {
	char id[BLOB_ID_LEN + 1];
	int fd;            /* the new file, -1 when an existing blob was reused */
	unsigned dir_sync; /* directory fsyncs owed (private) */
	bool data_synced;  /* the file's data is durable (blob_pending_sync_data) */
	struct blob_seg *seg; /* a reference on the segment written, or NULL */
	uint32_t seg_no;      /* 0: not in a segment */
	uint64_t seg_off;
};
/* fdatasync of the file alone (the directory entries stay owed): lets the writer's
 * thread pay for its own data, concurrently with other writers. 1 ok, -1 error. */
int blob_pending_sync_data(struct blob_pending *p, char **error_r);
/* First half: writes the file into place (not synced) and sets p->id. 1 ok, -1 error.
 * On ok, exactly one of blob_write_sync / blob_pending_abort must follow. */
int blob_write_begin(const char *data_dir, const void *data, size_t len,
                     struct blob_pending *p, char **error_r);
/* A blob's bytes given piecewise: read(ctx, buf, len, off) copies up to len bytes
 * at off (off + len <= size) and returns how many (> 0), or -1. link_fd: an
 * unnamed O_TMPFILE on the blobs' file system holding exactly these bytes, which
 * is linked into place instead of copied; -1 if none. */
struct blob_src {
	uint64_t size;
	long (*read)(void *ctx, void *buf, size_t len, uint64_t off);
	void *ctx;
	int link_fd;
};
/* Reads exactly len bytes of src at off into buf. 1 ok, -1 error. */
int blob_src_read(const struct blob_src *src, void *buf, size_t len, uint64_t off);
/* Hex SHA-256 of src's bytes into id_r. 1 ok, -1 error. */
int blob_src_hash(const struct blob_src *src, char id_r[BLOB_ID_LEN + 1]);
/* blob_write_begin from a source. id: the hex SHA-256 of the bytes if known, else
 * NULL (computed by reading the source). */
int blob_write_begin_src(const char *data_dir, const struct blob_src *src, const char *id,
                         struct blob_pending *p, char **error_r);
struct blob_segs;
/* blob_write_begin_src into a segment file (blob_seg.h) instead of a file of its
 * own: for small blobs. Always appends (no reuse of an identical blob: the store's
 * metadata keeps one location per id, a duplicate is dead space). */
int blob_write_begin_seg(struct blob_segs *segs, const struct blob_src *src, const char *id,
                         struct blob_pending *p, char **error_r);
/* Second half: with do_fsync makes the file and its directory entries durable.
 * Releases p. 1 ok, -1 error. */
int blob_write_sync(const char *data_dir, struct blob_pending *p, bool do_fsync, char **error_r);
void blob_pending_abort(struct blob_pending *p);
/* blob_write_sync for a batch: fdatasync each file and each segment once, then
 * fsync each directory the batch touched once (not once per blob). results[i] = 1 ok, -1 with errors[i]
 * malloc'd. Releases every ps[i]. */
void blob_write_sync_batch(const char *data_dir, struct blob_pending *const *ps, size_t n,
                           bool do_fsync, int *results, char **errors);

/* 1 if the blob file exists, 0 if not, -1 error. */
int blob_exists(const char *data_dir, const char *id, char **error_r);

/* Reads a whole blob: 1 with *data_r malloc'd (NUL-terminated, NUL not counted in
 * *len_r), 0 if the file does not exist, -1 error. */
int blob_read(const char *data_dir, const char *id, char **data_r, size_t *len_r, char **error_r);

/* Opens a blob for reading: 1 with *fd_r and *size_r, 0 if the file does not exist,
 * -1 error. */
int blob_open(const char *data_dir, const char *id, int *fd_r, uint64_t *size_r, char **error_r);

/* Removes a blob file. 1 removed, 0 absent, -1 error. */
int blob_unlink(const char *data_dir, const char *id, char **error_r);

#endif
