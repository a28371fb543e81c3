/* Segment files: small blobs packed into append-only files,
 * data_dir/blobs/seg/<number>, so that storing a small message costs a write into
 * an open file instead of creating an inode, and a batch of them one fdatasync.
 *
 * A process appends only to a segment it holds an exclusive flock(2) on (its
 * active segment), so two processes sharing a data_dir (the server and the CLI)
 * never write into the same file. Bytes appended are not durable until
 * blob_seg_sync; a crash before that leaves unreferenced bytes in the segment,
 * which are dead space, never read. Where a blob lives (segment number, offset,
 * size) is the caller's metadata: like blob.c this module knows nothing about the
 * database. Dead space is reclaimed by the store's sweep, which copies the live
 * blobs of a mostly dead segment into the active one and removes the old file
 * (store_sqlite_blobs.c). */
#ifndef HERMOD_STORE_BLOB_SEG_H
#define HERMOD_STORE_BLOB_SEG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "store/blob.h"

#define BLOB_SEG_SIZE_DEFAULT (64ull << 20) /* a segment is closed past this size */

struct blob_segs; /* a process's segment writer for one data_dir (thread-safe) */
struct blob_seg;  /* one open segment file, reference-counted */

/* A writer over data_dir/blobs/seg (created when first needed). seg_size: the
 * size past which a new segment is started (0 = BLOB_SEG_SIZE_DEFAULT). Opens no
 * file yet. 1 ok, -1 error. */
int blob_segs_open(const char *data_dir, uint64_t seg_size, struct blob_segs **segs_r,
                   char **error_r);
/* Closes the active segment (its lock goes once the last pending reference is
 * released) and frees segs. Pending references stay valid. */
void blob_segs_close(struct blob_segs **segs);

/* Appends the size bytes of src to the active segment, starting a new one when it
 * is full, and sets *seg_r to a reference on the segment written (for
 * blob_seg_sync, then blob_seg_release), *no_r and *off_r to where the bytes are.
 * Concurrent callers write in parallel (each into its own reserved range). Not
 * durable until blob_seg_sync. 1 ok, -1 error. */
int blob_segs_append(struct blob_segs *segs, const struct blob_src *src, struct blob_seg **seg_r,
                     uint32_t *no_r, uint64_t *off_r, char **error_r);
/* The number of the segment this process appends to now, 0 if none. */
uint32_t blob_segs_active(struct blob_segs *segs);

/* fdatasync of the segment: every byte appended to it before the call is durable
 * on return (the directory entry of a new segment was made durable when it was
 * created). 1 ok, -1 error. */
int blob_seg_sync(struct blob_seg *seg, char **error_r);
void blob_seg_release(struct blob_seg *seg);

/* Path of segment no into buf. 1 ok, -1 too long. */
int blob_seg_path(const char *data_dir, uint32_t no, char *buf, size_t bufsz);
/* Opens segment no for reading: 1 with *fd_r, 0 if it does not exist, -1 error. */
int blob_seg_open(const char *data_dir, uint32_t no, int *fd_r, char **error_r);
/* Reads len bytes at off of segment no into a malloc'd, NUL-terminated *data_r.
 * 1 ok, 0 the segment does not exist, -1 error (also a short segment). */
int blob_seg_read(const char *data_dir, uint32_t no, uint64_t off, size_t len, char **data_r,
                  char **error_r);

/* One segment file as the sweep sees it. */
struct blob_seg_info {
	uint32_t no;
	uint64_t size;
	time_t mtime;
};
/* Calls fn for every segment file (in no particular order); fn returns 1 to go on,
 * -1 to stop with that result. 1 ok, -1 error. */
int blob_seg_each(const char *data_dir, int (*fn)(void *ctx, const struct blob_seg_info *info),
                  void *ctx, char **error_r);
/* Takes segment no for removal: an exclusive lock that fails when any process
 * (this one included) appends to it. 1 with *fd_r (read-only, locked; close to
 * release), 0 busy or gone, -1 error. */
int blob_seg_claim(const char *data_dir, uint32_t no, int *fd_r, char **error_r);
/* Removes segment no (claimed by the caller). 1 removed, 0 absent, -1 error. */
int blob_seg_unlink(const char *data_dir, uint32_t no, char **error_r);

#endif
