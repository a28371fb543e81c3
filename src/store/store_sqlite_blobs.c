/* SQLite backend: where blobs are, reading them, and the sweep that removes
 * unreferenced blob files and dead segments (see "Blob lifetime" in
 * store_sqlite_int.h). */
#include "store/store_sqlite_int.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- locations ---- */

int sqlite_blob_locate(sqlite3 *db, const char *id, struct sqlite_blob_loc *loc, char **error_r)
{
	sqlite3_stmt *stmt;
	int rc;

	*loc = (struct sqlite_blob_loc){0};
	if (sqlite_stmt_cached(db, "SELECT coalesce(seg, 0), off, size FROM blobs WHERE id = ?1",
	                       &stmt, error_r) < 0)
		return -1;
	sqlite3_bind_text(stmt, 1, id, -1, SQLITE_STATIC);
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW) {
		int64_t seg = sqlite3_column_int64(stmt, 0), off = sqlite3_column_int64(stmt, 1),
		        size = sqlite3_column_int64(stmt, 2);
		if (seg < 0 || seg > UINT32_MAX || off < 0 || size < 0) {
			sqlite_stmt_release(stmt);
			return str_error(error_r, "blob %s: invalid location", id);
		}
		loc->seg = (uint32_t)seg;
		loc->off = (uint64_t)off;
		loc->size = (uint64_t)size;
	} else if (rc != SQLITE_DONE) {
		sqlite_db_fail(db, error_r, "database");
	}
	sqlite_stmt_release(stmt);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

int sqlite_blob_read_loc(struct store_backend *st, const char *id,
                         const struct sqlite_blob_loc *loc, char **data_r, size_t *len_r,
                         char **error_r)
{
	if (loc->seg == 0)
		return blob_read(st->data_dir, id, data_r, len_r, error_r);
	if (loc->size >= SIZE_MAX)
		return str_error(error_r, "blob %s too large", id);
	int rc =
	    blob_seg_read(st->data_dir, loc->seg, loc->off, (size_t)loc->size, data_r, error_r);
	if (rc > 0)
		*len_r = (size_t)loc->size;
	return rc;
}

/* The location of blob id on a reader connection; no row: the file of its own
 * (blobs written before segments, or by blob_write alone). */
static int blob_locate_reader(struct store_backend *st, const char *id, struct sqlite_blob_loc *loc,
                              char **error_r)
{
	sqlite3 *db;
	int rc;

	if (sqlite_reader_get(st, &db, error_r) < 0)
		return -1;
	rc = sqlite_blob_locate(db, id, loc, error_r);
	sqlite_reader_put(st, db);
	return rc < 0 ? -1 : 1;
}

int sqlite_blob_get(struct store_backend *st, const char *blob_id, char **data_r, size_t *len_r,
                    char **error_r)
{
	struct sqlite_blob_loc loc;

	if (!blob_id_valid(blob_id))
		return str_error(error_r, "invalid blob id");
	/* A compaction may move the blob between the lookup and the read: the
	 * second lookup finds it at its new place. */
	for (int attempt = 0; attempt < 2; attempt++) {
		if (blob_locate_reader(st, blob_id, &loc, error_r) < 0)
			return -1;
		int rc = sqlite_blob_read_loc(st, blob_id, &loc, data_r, len_r, error_r);
		if (rc != 0 || loc.seg == 0)
			return rc;
	}
	return 0;
}

int sqlite_blob_open(struct store_backend *st, const char *blob_id, struct store_blob_range *r,
                     char **error_r)
{
	struct sqlite_blob_loc loc;
	uint64_t size;
	int rc = 0;

	r->fd = -1;
	r->off = r->len = 0;
	if (blob_id == NULL || !blob_id_valid(blob_id))
		return str_error(error_r, "invalid blob id");
	for (int attempt = 0; attempt < 2; attempt++) {
		if (blob_locate_reader(st, blob_id, &loc, error_r) < 0)
			return -1;
		if (loc.seg == 0) {
			rc = blob_open(st->data_dir, blob_id, &r->fd, &size, error_r);
			if (rc == 1)
				r->len = size;
			return rc;
		}
		rc = blob_seg_open(st->data_dir, loc.seg, &r->fd, error_r);
		if (rc != 0) {
			r->off = loc.off;
			r->len = loc.size;
			return rc;
		}
		/* moved by a compaction meanwhile: look again */
	}
	return rc;
}

/* ---- the sweep ---- */

/* Removes blob rows (and files) no message refers to any more. Runs in its own write
 * transaction so that no delivery can take a new reference to a blob between the
 * check and the unlink (see "Blob lifetime"). Files are unlinked before the
 * COMMIT: if the COMMIT fails, a row with refcount 0 and no file is left, which
 * deliveries handle by rewriting the file. Rows of segment blobs just go: their
 * bytes are dead space until the segment sweep reclaims it. */
int sqlite_blob_sweep(struct store_backend *st, char **error_r)
{
	sqlite3_stmt *stmt = NULL;
	int rc, ret = -1;

	pthread_mutex_lock(&st->wmu);
	if (sqlite_db_exec(st->wdb, "BEGIN IMMEDIATE", error_r) < 0)
		goto out;
	if (sqlite_db_prepare(st->wdb, "SELECT id FROM blobs WHERE refcount <= 0 AND seg IS NULL",
	                      &stmt, error_r) < 0)
		goto rollback;
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		const char *id = (const char *)sqlite3_column_text(stmt, 0);
		if (id != NULL && blob_id_valid(id) && blob_unlink(st->data_dir, id, error_r) < 0)
			goto rollback;
	}
	if (rc != SQLITE_DONE) {
		sqlite_db_fail(st->wdb, error_r, "database");
		goto rollback;
	}
	if (sqlite_db_exec(st->wdb,
	                   "DELETE FROM blob_cache WHERE blob IN"
	                   " (SELECT id FROM blobs WHERE refcount <= 0)",
	                   error_r) < 0 ||
	    sqlite_db_exec(st->wdb, "DELETE FROM blobs WHERE refcount <= 0", error_r) < 0 ||
	    sqlite_db_exec(st->wdb, "COMMIT", error_r) < 0)
		goto rollback;
	ret = 1;
	goto out;
rollback:
	sqlite_db_rollback(st->wdb);
out:
	sqlite3_finalize(stmt);
	pthread_mutex_unlock(&st->wmu);
	return ret;
}

/* Orphan files of one fan-out directory, in one write transaction: a delivery
 * takes its reference (and re-checks that its file exists) inside the same write
 * lock, so a file is either named by a row when we look, or rewritten by the
 * delivery after we removed it. */
static int sweep_orphans_dir(struct store_backend *st, sqlite3_stmt *known, const char *dir,
                             time_t cutoff, uint64_t *removed, char **error_r)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int ret = -1;

	if (d == NULL) {
		if (errno == ENOENT)
			return 1;
		str_error(error_r, "opendir %s: %s", dir, strerror(errno));
		return -1;
	}
	if (sqlite_db_exec(st->wdb, "BEGIN IMMEDIATE", error_r) < 0)
		goto out;
	while ((e = readdir(d)) != NULL) {
		struct stat sb;
		bool tmp = strncmp(e->d_name, ".tmp.", 5) == 0; /* rename fallback leftovers */
		int rc;

		if (!tmp && !blob_id_valid(e->d_name))
			continue;
		if (fstatat(dirfd(d), e->d_name, &sb, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISREG(sb.st_mode) || sb.st_mtime > cutoff)
			continue;
		if (!tmp) {
			sqlite3_reset(known);
			sqlite3_bind_text(known, 1, e->d_name, -1, SQLITE_TRANSIENT);
			rc = sqlite3_step(known);
			if (rc == SQLITE_ROW)
				continue; /* referenced (or the refcount sweep's business) */
			if (rc != SQLITE_DONE) {
				sqlite_db_fail(st->wdb, error_r, "database");
				goto rollback;
			}
		}
		if (unlinkat(dirfd(d), e->d_name, 0) == 0)
			(*removed)++;
		else if (errno != ENOENT) {
			str_error(error_r, "unlink %s/%s: %s", dir, e->d_name, strerror(errno));
			goto rollback;
		}
	}
	sqlite3_reset(known);
	if (sqlite_db_exec(st->wdb, "COMMIT", error_r) < 0)
		goto rollback;
	ret = 1;
	goto out;
rollback:
	sqlite3_reset(known);
	sqlite_db_rollback(st->wdb);
out:
	closedir(d);
	return ret;
}

/* ---- segments ---- */

struct seg_list {
	struct blob_seg_info *v;
	size_t n, cap;
};

static int seg_list_add(void *ctx, const struct blob_seg_info *info)
{
	struct seg_list *l = ctx;

	if (l->n == l->cap) {
		size_t cap = l->cap != 0 ? l->cap * 2 : 16;
		struct blob_seg_info *v = realloc(l->v, cap * sizeof(*v));
		if (v == NULL)
			return -1;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = *info;
	return 1;
}

/* How many rows name segment no and how many bytes they hold. 1 ok, -1 error. */
static int seg_usage(struct store_backend *st, uint32_t no, int64_t *rows_r, int64_t *bytes_r,
                     char **error_r)
{
	sqlite3_stmt *stmt;
	int rc;

	pthread_mutex_lock(&st->wmu);
	if (sqlite_stmt_cached(st->wdb,
	                       "SELECT count(*), coalesce(sum(size), 0) FROM blobs WHERE seg = ?1",
	                       &stmt, error_r) < 0) {
		pthread_mutex_unlock(&st->wmu);
		return -1;
	}
	sqlite3_bind_int64(stmt, 1, no);
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW) {
		*rows_r = sqlite3_column_int64(stmt, 0);
		*bytes_r = sqlite3_column_int64(stmt, 1);
	} else {
		sqlite_db_fail(st->wdb, error_r, "database");
	}
	sqlite_stmt_release(stmt);
	pthread_mutex_unlock(&st->wmu);
	return rc == SQLITE_ROW ? 1 : -1;
}

/* One blob being moved out of a segment. */
struct seg_move {
	char id[BLOB_ID_LEN + 1];
	uint64_t off, size;
	struct blob_pending to;
};

struct seg_fd_src {
	int fd;
	uint64_t base;
};

static long seg_fd_read(void *ctx, void *buf, size_t len, uint64_t off)
{
	struct seg_fd_src *s = ctx;
	ssize_t n;

	do
		n = pread(s->fd, buf, len, (off_t)(s->base + off));
	while (n < 0 && errno == EINTR);
	return n > 0 ? (long)n : -1;
}

/* Blobs moved per transaction: the memory of a compaction is bounded by this,
 * however many (small) blobs the segment holds. */
#define SEG_COMPACT_BATCH 256

/* Lists up to max rows of segment no from offset *from on into mv, in offset
 * order, and moves *from past the last one read. Returns how many were listed
 * (rows unfit to move are passed over), -1 error; *more is false once the
 * segment has no rows left past *from. */
static ssize_t seg_compact_list(struct store_backend *st, uint32_t no, uint64_t *from,
                                struct seg_move *mv, size_t max, bool *more, char **error_r)
{
	sqlite3_stmt *stmt;
	size_t n = 0, seen = 0;
	int rc;

	*more = false;
	pthread_mutex_lock(&st->wmu);
	if (sqlite_stmt_cached(st->wdb,
	                       "SELECT id, off, size FROM blobs WHERE seg = ?1 AND off >= ?2"
	                       " ORDER BY off LIMIT ?3",
	                       &stmt, error_r) < 0) {
		pthread_mutex_unlock(&st->wmu);
		return -1;
	}
	sqlite3_bind_int64(stmt, 1, no);
	sqlite3_bind_int64(stmt, 2, (int64_t)*from);
	sqlite3_bind_int64(stmt, 3, (int64_t)max);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		const char *id = (const char *)sqlite3_column_text(stmt, 0);
		int64_t off = sqlite3_column_int64(stmt, 1), size = sqlite3_column_int64(stmt, 2);
		seen++;
		if (off >= 0)
			*from = (uint64_t)off + 1;
		if (id == NULL || !blob_id_valid(id) || off < 0 || size < 0)
			continue;
		memcpy(mv[n].id, id, BLOB_ID_LEN + 1);
		mv[n].off = (uint64_t)off;
		mv[n].size = (uint64_t)size;
		mv[n].to = (struct blob_pending){.fd = -1};
		n++;
	}
	sqlite_stmt_release(stmt);
	pthread_mutex_unlock(&st->wmu);
	if (rc != SQLITE_DONE)
		return str_error(error_r, "segment %u: listing its blobs failed", no);
	*more = seen == max;
	return (ssize_t)n;
}

/* Copies mv[0..n) (blobs of segment no, claimed: fd) into the active segment,
 * makes the copies durable and re-points their rows in one transaction. 1 ok, -1
 * error (the old rows stay as they were; copies already written are dead
 * space). Releases the copies' segment references either way. */
static int seg_compact_move(struct store_backend *st, uint32_t no, int fd, struct seg_move *mv,
                            size_t n, char **error_r)
{
	sqlite3_stmt *stmt = NULL;
	int rc = SQLITE_DONE, ret = -1;
	size_t i;

	/* copy, outside the write lock */
	for (i = 0; i < n; i++) {
		struct seg_fd_src fs = {.fd = fd, .base = mv[i].off};
		struct blob_src src = {
		    .size = mv[i].size, .read = seg_fd_read, .ctx = &fs, .link_fd = -1};
		if (blob_write_begin_seg(st->segs, &src, mv[i].id, &mv[i].to, error_r) < 0)
			goto out;
	}
	/* durable before any row points at the copies */
	for (i = 0; i < n; i++) {
		if (st->fsync && (i == 0 || mv[i].to.seg_no != mv[i - 1].to.seg_no) &&
		    blob_seg_sync(mv[i].to.seg, error_r) < 0)
			goto out;
	}

	pthread_mutex_lock(&st->wmu);
	if (sqlite_db_exec(st->wdb, "BEGIN IMMEDIATE", error_r) < 0 ||
	    sqlite_stmt_cached(
	        st->wdb,
	        "UPDATE blobs SET seg = ?1, off = ?2 WHERE id = ?3 AND seg = ?4 AND off = ?5",
	        &stmt, error_r) < 0) {
		sqlite_db_rollback(st->wdb);
		pthread_mutex_unlock(&st->wmu);
		goto out;
	}
	for (i = 0; i < n; i++) {
		sqlite3_bind_int64(stmt, 1, mv[i].to.seg_no);
		sqlite3_bind_int64(stmt, 2, (int64_t)mv[i].to.seg_off);
		sqlite3_bind_text(stmt, 3, mv[i].id, -1, SQLITE_STATIC);
		sqlite3_bind_int64(stmt, 4, no);
		sqlite3_bind_int64(stmt, 5, (int64_t)mv[i].off);
		rc = sqlite3_step(stmt);
		sqlite3_reset(stmt);
		if (rc != SQLITE_DONE)
			break;
	}
	if (rc != SQLITE_DONE || sqlite_db_exec(st->wdb, "COMMIT", error_r) < 0) {
		if (rc != SQLITE_DONE)
			sqlite_db_fail(st->wdb, error_r, "database");
		sqlite_db_rollback(st->wdb);
	} else {
		ret = 1;
	}
	sqlite_stmt_release(stmt);
	pthread_mutex_unlock(&st->wmu);
out:
	for (i = 0; i < n; i++)
		blob_pending_abort(&mv[i].to); /* releases the segment references */
	return ret;
}

/* Moves the blobs of segment no (claimed: fd) into the active segment,
 * SEG_COMPACT_BATCH at a time. 1 ok, -1 error (what moved stays moved). */
static int seg_compact(struct store_backend *st, uint32_t no, int fd, char **error_r)
{
	struct seg_move *mv = calloc(SEG_COMPACT_BATCH, sizeof(*mv));
	uint64_t from = 0;
	bool more = true;
	int ret = 1;

	if (mv == NULL)
		return str_error(error_r, "out of memory");
	while (ret > 0 && more) {
		ssize_t n = seg_compact_list(st, no, &from, mv, SEG_COMPACT_BATCH, &more, error_r);
		if (n < 0)
			ret = -1;
		else if (n > 0)
			ret = seg_compact_move(st, no, fd, mv, (size_t)n, error_r);
	}
	free(mv);
	return ret;
}

/* Removes segments that are dead (no row names them) and compacts those mostly
 * dead, among the segments nobody appends to and untouched since cutoff. */
static int sqlite_seg_sweep(struct store_backend *st, time_t cutoff, uint64_t *removed,
                            char **error_r)
{
	struct seg_list l = {0};
	int ret = 1;

	if (blob_seg_each(st->data_dir, seg_list_add, &l, error_r) < 0) {
		free(l.v);
		return -1;
	}
	for (size_t i = 0; i < l.n && ret > 0; i++) {
		const struct blob_seg_info *info = &l.v[i];
		int64_t rows = 0, bytes = 0;
		int fd;

		if (info->mtime > cutoff)
			continue; /* may hold bytes of deliveries not committed yet */
		int rc = blob_seg_claim(st->data_dir, info->no, &fd, error_r);
		if (rc <= 0) {
			ret = rc < 0 ? -1 : 1;
			continue; /* busy: a writer's active segment */
		}
		if (seg_usage(st, info->no, &rows, &bytes, error_r) < 0) {
			ret = -1;
		} else if (rows > 0 && st->segs != NULL && (uint64_t)bytes < info->size / 2) {
			if (seg_compact(st, info->no, fd, error_r) < 0 ||
			    seg_usage(st, info->no, &rows, &bytes, error_r) < 0)
				ret = -1;
		}
		/* Nothing names it, and nobody can start writing to it: the claim is
		 * held until the file is gone. */
		if (ret > 0 && rows == 0) {
			rc = blob_seg_unlink(st->data_dir, info->no, error_r);
			if (rc < 0)
				ret = -1;
			else if (rc > 0)
				(*removed)++;
		}
		close(fd);
	}
	free(l.v);
	return ret;
}

int sqlite_blob_sweep_all(struct store_backend *st, unsigned min_age, uint64_t *removed_r,
                          char **error_r)
{
	sqlite3_stmt *known = NULL;
	uint64_t removed = 0;
	time_t cutoff = time(NULL) - (time_t)min_age;
	char dir[4096];
	int ret = -1;

	if (sqlite_blob_sweep(st, error_r) < 0)
		return -1;
	pthread_mutex_lock(&st->wmu);
	/* a file is named by a row only when the row says the blob is a file */
	if (sqlite_db_prepare(st->wdb, "SELECT 1 FROM blobs WHERE id = ?1 AND seg IS NULL", &known,
	                      error_r) < 0)
		goto out;
	for (unsigned i = 0; i < 256; i++) {
		int n = snprintf(dir, sizeof(dir), "%s/blobs/%02x", st->data_dir, i);
		if (n < 0 || (size_t)n >= sizeof(dir)) {
			str_error(error_r, "data_dir path too long");
			goto out;
		}
		if (sweep_orphans_dir(st, known, dir, cutoff, &removed, error_r) < 0)
			goto out;
	}
	ret = 1;
out:
	sqlite3_finalize(known);
	pthread_mutex_unlock(&st->wmu);
	if (ret > 0)
		ret = sqlite_seg_sweep(st, cutoff, &removed, error_r);
	if (removed_r != NULL)
		*removed_r = removed;
	return ret;
}

/* ---- the periodic sweep ---- */

int sqlite_thread_create(pthread_t *t, void *(*fn)(void *), void *arg)
{
	sigset_t all, old;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	int rc = pthread_create(t, NULL, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return rc;
}

static void *sweeper_main(void *arg)
{
	struct store_backend *st = arg;
	struct timespec due;

	pthread_mutex_lock(&st->sw_mu);
	clock_gettime(CLOCK_MONOTONIC, &due);
	for (;;) {
		due.tv_sec += st->sweep_interval;
		while (!st->sw_stop &&
		       pthread_cond_timedwait(&st->sw_cond, &st->sw_mu, &due) != ETIMEDOUT)
			;
		if (st->sw_stop)
			break;
		pthread_mutex_unlock(&st->sw_mu);
		/* A failure is left for the next run (the sweep is idempotent). */
		char *error = NULL;
		(void)sqlite_blob_sweep_all(st, st->sweep_age, NULL, &error);
		free(error);
		error = NULL;
		(void)sqlite_expunge_log_prune(st, STORE_EXPUNGE_LOG_AGE, STORE_EXPUNGE_LOG_ROWS,
		                               NULL, &error);
		free(error);
		pthread_mutex_lock(&st->sw_mu);
	}
	pthread_mutex_unlock(&st->sw_mu);
	return NULL;
}

int sqlite_sweeper_start(struct store_backend *st, char **error_r)
{
	if (st->sweep_interval == 0)
		return 1;
	int rc = sqlite_thread_create(&st->sw_thread, sweeper_main, st);
	if (rc != 0)
		return str_error(error_r, "store: cannot start the sweep thread: %s", strerror(rc));
	st->sw_started = true;
	return 1;
}

void sqlite_sweeper_stop(struct store_backend *st)
{
	if (st->sw_started) {
		pthread_mutex_lock(&st->sw_mu);
		st->sw_stop = true;
		pthread_cond_signal(&st->sw_cond);
		pthread_mutex_unlock(&st->sw_mu);
		pthread_join(st->sw_thread, NULL);
		st->sw_started = false;
	}
}

/* ---- the blob cache ---- */

int sqlite_blob_cache_get(struct store_backend *st, const char *blob_id, char **data_r,
                          size_t *len_r, char **error_r)
{
	sqlite3_stmt *stmt;
	sqlite3 *db;
	int rc, ret = -1;

	*data_r = NULL;
	*len_r = 0;
	if (!blob_id_valid(blob_id))
		return str_error(error_r, "invalid blob id");
	if (sqlite_reader_get(st, &db, error_r) < 0)
		return -1;
	if (sqlite_stmt_cached(db,
	                       "SELECT c.data FROM blob_cache c JOIN blobs b ON b.id = c.blob"
	                       " WHERE c.blob = ?1 AND b.refcount > 0",
	                       &stmt, error_r) < 0)
		goto out;
	sqlite3_bind_text(stmt, 1, blob_id, -1, SQLITE_STATIC);
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW) {
		const void *p = sqlite3_column_blob(stmt, 0);
		size_t len = (size_t)sqlite3_column_bytes(stmt, 0);
		*data_r = malloc(len + 1);
		if (*data_r == NULL) {
			str_error(error_r, "out of memory");
		} else {
			if (len > 0)
				memcpy(*data_r, p, len);
			(*data_r)[len] = '\0';
			*len_r = len;
			ret = 1;
		}
	} else if (rc == SQLITE_DONE) {
		ret = 0;
	} else {
		sqlite_db_fail(db, error_r, "database");
	}
	sqlite_stmt_release(stmt);
out:
	sqlite_reader_put(st, db);
	return ret;
}

int sqlite_blob_cache_put(struct store_backend *st, const char *blob_id, const void *data,
                          size_t len, char **error_r)
{
	sqlite3_stmt *stmt;
	int ret = -1;

	if (!blob_id_valid(blob_id))
		return str_error(error_r, "invalid blob id");
	if (len > STORE_BLOB_CACHE_MAX || (data == NULL && len > 0))
		return str_error(error_r, "blob cache value too large");
	pthread_mutex_lock(&st->cmu);
	/* A connection of its own with synchronous=NORMAL: a cache write costs no
	 * WAL fsync (it can be derived again), and never changes how the writer's
	 * commits sync. WAL checkpoints stay synced with NORMAL. */
	if (st->cdb == NULL) {
		if (sqlite_conn_open(st, false, &st->cdb, error_r) < 0)
			goto out;
		if (st->fsync &&
		    sqlite_db_exec(st->cdb, "PRAGMA synchronous=NORMAL", error_r) < 0) {
			sqlite_conn_close(st->cdb);
			st->cdb = NULL;
			goto out;
		}
	}
	if (sqlite_stmt_cached(st->cdb,
	                       "INSERT OR REPLACE INTO blob_cache (blob, data) SELECT ?1, ?2"
	                       " WHERE EXISTS (SELECT 1 FROM blobs WHERE id = ?1 AND refcount > 0)",
	                       &stmt, error_r) < 0)
		goto out;
	sqlite3_bind_text(stmt, 1, blob_id, -1, SQLITE_STATIC);
	sqlite3_bind_blob(stmt, 2, len > 0 ? data : "", (int)len, SQLITE_STATIC);
	ret = sqlite3_step(stmt) == SQLITE_DONE ? 1 : sqlite_db_fail(st->cdb, error_r, "database");
	sqlite_stmt_release(stmt);
out:
	pthread_mutex_unlock(&st->cmu);
	return ret;
}
