/* SQLite backend: the outbound queue. */
#include "store/store_sqlite_int.h"

#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* ---- outbound queue ---- */

struct strbuf {
	char *s;
	size_t len, cap;
};

/* Appends s, after a space when space is set. 1 ok, -1 out of memory (b unchanged). */
static int strbuf_add_word(struct strbuf *b, bool space, const char *s, char **error_r)
{
	size_t sep = space ? 1 : 0, n = strlen(s);

	if (b->len + sep + n + 1 > b->cap) {
		size_t cap = b->cap == 0 ? 128 : b->cap;
		while (cap < b->len + sep + n + 1)
			cap *= 2;
		char *p = realloc(b->s, cap);
		if (p == NULL)
			return str_error(error_r, "out of memory");
		b->s = p;
		b->cap = cap;
	}
	if (sep > 0)
		b->s[b->len++] = ' ';
	memcpy(b->s + b->len, s, n + 1);
	b->len += n;
	return 1;
}

/* A queue entry read into memory; info's strings point into the copies here. */
struct queue_entry {
	struct store_queue_info info;
	char *sender, *account, *blob_id, *envid, *lease_owner;
	struct strbuf rcpts;
	struct store_queue_rcpt *r;
	size_t nr, cap;
};

static void queue_entry_clear(struct queue_entry *e)
{
	free(e->sender);
	free(e->account);
	free(e->blob_id);
	free(e->envid);
	free(e->lease_owner);
	free(e->rcpts.s);
	for (size_t i = 0; i < e->nr; i++) {
		free((char *)e->r[i].rcpt);
		free((char *)e->r[i].state);
		free((char *)e->r[i].orcpt);
		free((char *)e->r[i].last_reply);
	}
	free(e->r);
	memset(e, 0, sizeof(*e));
}

/* The columns queue_read reads: the entry, then one recipient (NULL without one).
 * Every query appends its WHERE and ORDER BY (rows of one entry together, the
 * recipients in the order queued) and may narrow the join. */
#define QUEUE_SELECT                                                                               \
	"SELECT q.id, q.sender, q.size, q.created, q.account, q.blob, q.body, q.smtputf8,"         \
	"  q.envid, q.ret, q.trace_len, q.lease_owner, q.lease_until, q.attempts,"                 \
	"  q.next_attempt, q.held, q.warned, q.tls, r.rcpt, r.state, r.notify, r.orcpt, r.last_reply"               \
	" FROM queue q LEFT JOIN queue_rcpts r ON r.queue_id = q.id"
enum {
	QC_ID,
	QC_SENDER,
	QC_SIZE,
	QC_CREATED,
	QC_ACCOUNT,
	QC_BLOB,
	QC_BODY,
	QC_SMTPUTF8,
	QC_ENVID,
	QC_RET,
	QC_TRACE_LEN,
	QC_LEASE_OWNER,
	QC_LEASE_UNTIL,
	QC_ATTEMPTS,
	QC_NEXT_ATTEMPT,
	QC_HELD,
	QC_WARNED,
	QC_TLS,
	QC_RCPT,
	QC_STATE,
	QC_NOTIFY,
	QC_ORCPT,
	QC_LAST_REPLY,
};

/* The entry's own columns of the current row. */
static int queue_entry_start(struct queue_entry *e, sqlite3_stmt *s, char **error_r)
{
	if (sqlite_column_dup(s, QC_SENDER, &e->sender, error_r) < 0 ||
	    sqlite_column_dup(s, QC_ACCOUNT, &e->account, error_r) < 0 ||
	    sqlite_column_dup(s, QC_BLOB, &e->blob_id, error_r) < 0 ||
	    sqlite_column_dup(s, QC_ENVID, &e->envid, error_r) < 0 ||
	    sqlite_column_dup(s, QC_LEASE_OWNER, &e->lease_owner, error_r) < 0)
		return -1;
	int64_t attempts = sqlite3_column_int64(s, QC_ATTEMPTS);
	e->info = (struct store_queue_info){
	    .id = sqlite3_column_int64(s, QC_ID),
	    .size = (uint64_t)sqlite3_column_int64(s, QC_SIZE),
	    .created = sqlite3_column_int64(s, QC_CREATED),
	    .body = sqlite3_column_int(s, QC_BODY),
	    .smtputf8 = sqlite3_column_int(s, QC_SMTPUTF8) != 0,
	    .tls = sqlite3_column_int(s, QC_TLS),
	    .ret = sqlite3_column_int(s, QC_RET),
	    .trace_len = (uint64_t)sqlite3_column_int64(s, QC_TRACE_LEN),
	    .lease_until = sqlite3_column_int64(s, QC_LEASE_UNTIL),
	    .attempts = attempts < 0          ? 0
	                : attempts > UINT_MAX ? UINT_MAX
	                                      : (unsigned)attempts,
	    .next_attempt = sqlite3_column_int64(s, QC_NEXT_ATTEMPT),
	    .held = sqlite3_column_int(s, QC_HELD) != 0,
	    .warned = sqlite3_column_int(s, QC_WARNED) != 0,
	};
	return 1;
}

/* The recipient of the current row, if any. */
static int queue_entry_add_rcpt(struct queue_entry *e, sqlite3_stmt *s, char **error_r)
{
	if (sqlite3_column_type(s, QC_RCPT) == SQLITE_NULL)
		return 1; /* an entry without (matching) recipients */
	if (e->nr == e->cap) {
		size_t ncap = e->cap == 0 ? 8 : e->cap * 2;
		struct store_queue_rcpt *p = realloc(e->r, ncap * sizeof(*p));
		if (p == NULL)
			return str_error(error_r, "out of memory");
		e->r = p;
		e->cap = ncap;
	}
	/* column texts stay valid until the statement steps again: copied */
	static const int cols[4] = {QC_RCPT, QC_STATE, QC_ORCPT, QC_LAST_REPLY};
	char *t[4] = {NULL};
	for (int k = 0; k < 4; k++) {
		if (sqlite_column_dup(s, cols[k], &t[k], error_r) < 0) {
			for (int j = 0; j < k; j++)
				free(t[j]);
			return -1;
		}
	}
	e->r[e->nr++] = (struct store_queue_rcpt){
	    .rcpt = t[0],
	    .state = t[1] != NULL ? t[1] : str_dup(""),
	    .notify = (unsigned)sqlite3_column_int(s, QC_NOTIFY),
	    .orcpt = t[2],
	    .last_reply = t[3],
	};
	if (e->r[e->nr - 1].state == NULL)
		return str_error(error_r, "out of memory");
	return strbuf_add_word(&e->rcpts, e->nr > 1, t[0], error_r);
}

/* Points e->info at e's copies. */
static void queue_entry_finish(struct queue_entry *e)
{
	e->info.sender = e->sender != NULL ? e->sender : "";
	e->info.account = e->account != NULL ? e->account : "";
	e->info.blob_id = e->blob_id != NULL ? e->blob_id : "";
	e->info.envid = e->envid;
	e->info.lease_owner = e->lease_owner;
	e->info.rcpts = e->rcpts.s != NULL ? e->rcpts.s : "";
	e->info.nrcpt_info = e->nr;
	e->info.rcpt_info = e->r;
}

/* Steps stmt (a QUEUE_SELECT query, bound) to its end and calls fn once per entry
 * read, with e complete; fn may take e's contents (then it zeroes *e), else they
 * are freed after it. Returns the number of entries, -1 error. */
static int queue_read(sqlite3 *db, sqlite3_stmt *stmt, void (*fn)(void *ctx, struct queue_entry *e),
                      void *ctx, char **error_r)
{
	struct queue_entry e = {0};
	bool have = false;
	int n = 0, rc;

	for (;;) {
		rc = sqlite3_step(stmt);
		if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
			sqlite_db_fail(db, error_r, "database");
			goto fail;
		}
		if (have && (rc == SQLITE_DONE || sqlite3_column_int64(stmt, QC_ID) != e.info.id)) {
			queue_entry_finish(&e);
			fn(ctx, &e);
			queue_entry_clear(&e);
			have = false;
			n++;
		}
		if (rc == SQLITE_DONE)
			return n;
		if (!have) {
			if (queue_entry_start(&e, stmt, error_r) < 0)
				goto fail;
			have = true;
		}
		if (queue_entry_add_rcpt(&e, stmt, error_r) < 0)
			goto fail;
	}
fail:
	queue_entry_clear(&e);
	return -1;
}

struct queue_cb_ctx {
	store_queue_cb *cb;
	void *ctx;
};

static void queue_read_cb(void *ctx, struct queue_entry *e)
{
	struct queue_cb_ctx *c = ctx;
	c->cb(c->ctx, &e->info);
}

int sqlite_queue_list(struct store_backend *st, store_queue_cb *cb, void *ctx, char **error_r)
{
	struct queue_cb_ctx c = {cb, ctx};
	sqlite3_stmt *stmt = NULL;
	sqlite3 *db;
	int ret = -1;

	if (sqlite_reader_get(st, &db, error_r) < 0)
		return -1;
	/* One row per recipient, grouped in queue_read (not with group_concat, whose
	 * order SQLite does not promise) to list recipients in the order queued. */
	if (sqlite_stmt_cached(db, QUEUE_SELECT " ORDER BY q.created, q.id, r.rowid", &stmt,
	                       error_r) < 0)
		goto out;
	if (queue_read(db, stmt, queue_read_cb, &c, error_r) >= 0)
		ret = 1;
out:
	sqlite_stmt_release(stmt);
	sqlite_reader_put(st, db);
	return ret;
}

int sqlite_queue_get(struct store_backend *st, int64_t id, char **data_r, size_t *len_r,
                     char **error_r)
{
	char idbuf[32], *blob_id = NULL;
	int rc;

	snprintf(idbuf, sizeof(idbuf), "%lld", (long long)id);
	const char *params[] = {idbuf};
	rc = sqlite_rquery_text(st, "SELECT blob FROM queue WHERE id = CAST(?1 AS INTEGER)", params,
	                        1, &blob_id, error_r);
	if (rc <= 0)
		return rc;
	/* As with messages: a blob removed by a racing delete makes this an error. */
	rc = blob_id_valid(blob_id) ? sqlite_blob_get(st, blob_id, data_r, len_r, error_r)
	                            : str_error(error_r, "invalid blob id");
	if (rc == 0)
		str_error(error_r, "blob %s of queue entry %lld is missing", blob_id,
		          (long long)id);
	free(blob_id);
	return rc == 1 ? 1 : -1;
}

int sqlite_queue_show(struct store_backend *st, int64_t id, store_queue_cb *cb, void *ctx,
                      char **error_r)
{
	struct queue_cb_ctx c = {cb, ctx};
	sqlite3_stmt *stmt = NULL;
	sqlite3 *db;
	int rc = -1;

	if (sqlite_reader_get(st, &db, error_r) < 0)
		return -1;
	if (sqlite_stmt_cached(db, QUEUE_SELECT " WHERE q.id = ?1 ORDER BY r.rowid", &stmt,
	                       error_r) < 0)
		goto out;
	sqlite3_bind_int64(stmt, 1, id);
	rc = queue_read(db, stmt, queue_read_cb, &c, error_r);
out:
	sqlite_stmt_release(stmt);
	sqlite_reader_put(st, db);
	return rc < 0 ? -1 : rc > 0 ? 1 : 0;
}

int sqlite_queue_delete(struct store_backend *st, int64_t id, char **error_r)
{
	sqlite3_stmt *del = NULL, *unref = NULL;
	int rc, ret = -1;

	pthread_mutex_lock(&st->wmu);
	if (sqlite_db_exec(st->wdb, "BEGIN IMMEDIATE", error_r) < 0)
		goto out;
	/* queue_rcpts go by ON DELETE CASCADE */
	if (sqlite_db_prepare(st->wdb, "DELETE FROM queue WHERE id = ?1 RETURNING blob", &del,
	                      error_r) < 0 ||
	    sqlite_db_prepare(st->wdb, "UPDATE blobs SET refcount = refcount - 1 WHERE id = ?1",
	                      &unref, error_r) < 0)
		goto rollback;
	sqlite3_bind_int64(del, 1, id);
	rc = sqlite3_step(del);
	if (rc == SQLITE_DONE) {
		ret = 0;
		goto rollback;
	}
	if (rc != SQLITE_ROW) {
		sqlite_db_fail(st->wdb, error_r, "database");
		goto rollback;
	}
	sqlite3_bind_text(unref, 1, (const char *)sqlite3_column_text(del, 0), -1,
	                  SQLITE_TRANSIENT);
	if (sqlite3_step(del) != SQLITE_DONE || sqlite3_step(unref) != SQLITE_DONE) {
		sqlite_db_fail(st->wdb, error_r, "database");
		goto rollback;
	}
	if (sqlite_db_exec(st->wdb, "COMMIT", error_r) < 0)
		goto rollback;
	ret = 1;
	goto out;
rollback:
	sqlite_db_rollback(st->wdb);
out:
	sqlite3_finalize(del);
	sqlite3_finalize(unref);
	pthread_mutex_unlock(&st->wmu);
	if (ret == 1) {
		char *err = NULL;
		(void)sqlite_blob_sweep(st, &err); /* a failure leaves it for the next sweep */
		free(err);
	}
	return ret;
}

/* ---- the queue runner's ---- */

/* Runs sql on the writer (inside the caller's transaction, under wmu) with the
 * integer parameters p[0..n) as ?1..?n. Returns the number of rows changed, -1
 * error. */
static int queue_wrun(struct store_backend *st, const char *sql, const int64_t *p, size_t n,
                      char **error_r)
{
	sqlite3_stmt *stmt = NULL;
	int rc;

	if (sqlite_stmt_cached(st->wdb, sql, &stmt, error_r) < 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		sqlite3_bind_int64(stmt, (int)i + 1, p[i]);
	rc = sqlite3_step(stmt);
	sqlite_stmt_release(stmt);
	if (rc != SQLITE_DONE)
		return sqlite_db_fail(st->wdb, error_r, "database");
	return sqlite3_changes(st->wdb);
}

/* queue_wrun in a write transaction of its own. */
static int queue_wrun1(struct store_backend *st, const char *sql, const int64_t *p, size_t n,
                       char **error_r)
{
	int rc;

	pthread_mutex_lock(&st->wmu);
	if (sqlite_db_exec(st->wdb, "BEGIN IMMEDIATE", error_r) < 0) {
		pthread_mutex_unlock(&st->wmu);
		return -1;
	}
	rc = queue_wrun(st, sql, p, n, error_r);
	if (rc < 0 || sqlite_db_exec(st->wdb, "COMMIT", error_r) < 0) {
		sqlite_db_rollback(st->wdb);
		rc = -1;
	}
	pthread_mutex_unlock(&st->wmu);
	return rc;
}

/* The entries leased by one call, read inside its transaction. */
struct lease_set {
	struct queue_entry *e;
	size_t n, cap;
	bool oom;
};

static void lease_take(void *ctx, struct queue_entry *e)
{
	struct lease_set *ls = ctx;

	if (ls->n == ls->cap) {
		size_t ncap = ls->cap == 0 ? 16 : ls->cap * 2;
		struct queue_entry *p = realloc(ls->e, ncap * sizeof(*p));
		if (p == NULL) {
			ls->oom = true;
			return; /* e is freed by queue_read */
		}
		ls->e = p;
		ls->cap = ncap;
	}
	ls->e[ls->n++] = *e;
	memset(e, 0, sizeof(*e));
}

int sqlite_queue_lease(struct store_backend *st, int64_t now, const char *owner,
                       unsigned lease_secs, size_t max, store_queue_cb *cb, void *ctx,
                       char **error_r)
{
	sqlite3_stmt *pick = NULL, *read = NULL;
	struct lease_set ls = {0};
	int64_t *ids = NULL, until;
	size_t nids = 0, cap = 0;
	int rc, ret = -1;

	until = now > INT64_MAX - (int64_t)lease_secs ? INT64_MAX : now + (int64_t)lease_secs;
	if (max > INT_MAX)
		max = INT_MAX; /* the result is an int */
	pthread_mutex_lock(&st->wmu);
	if (sqlite_db_exec(st->wdb, "BEGIN IMMEDIATE", error_r) < 0)
		goto unlock;
	/* Due, not held, not leased (or the lease ran out: its owner is gone or
	 * slow); the ids first, since the rows change below. */
	if (sqlite_stmt_cached(st->wdb,
	                       "SELECT id FROM queue WHERE next_attempt <= ?1 AND held = 0"
	                       "  AND (lease_owner IS NULL OR lease_until <= ?1)"
	                       " ORDER BY next_attempt, id LIMIT ?2",
	                       &pick, error_r) < 0)
		goto rollback;
	sqlite3_bind_int64(pick, 1, now);
	sqlite3_bind_int64(pick, 2, (int64_t)max);
	while ((rc = sqlite3_step(pick)) == SQLITE_ROW) {
		if (nids == cap) {
			size_t ncap = cap == 0 ? 16 : cap * 2;
			int64_t *p = realloc(ids, ncap * sizeof(*p));
			if (p == NULL) {
				str_error(error_r, "out of memory");
				goto rollback;
			}
			ids = p;
			cap = ncap;
		}
		ids[nids++] = sqlite3_column_int64(pick, 0);
	}
	sqlite_stmt_release(pick);
	pick = NULL;
	if (rc != SQLITE_DONE) {
		sqlite_db_fail(st->wdb, error_r, "database");
		goto rollback;
	}
	for (size_t i = 0; i < nids; i++) {
		sqlite3_stmt *up = NULL;
		if (sqlite_stmt_cached(st->wdb,
		                       "UPDATE queue SET lease_owner = ?2, lease_until = ?3"
		                       " WHERE id = ?1",
		                       &up, error_r) < 0)
			goto rollback;
		sqlite3_bind_int64(up, 1, ids[i]);
		sqlite3_bind_text(up, 2, owner, -1, SQLITE_STATIC);
		sqlite3_bind_int64(up, 3, until);
		rc = sqlite3_step(up);
		sqlite_stmt_release(up);
		if (rc != SQLITE_DONE) {
			sqlite_db_fail(st->wdb, error_r, "database");
			goto rollback;
		}
		/* the recipients still to be tried (or bounced) */
		if (sqlite_stmt_cached(st->wdb,
		                       QUEUE_SELECT " AND r.state IN ('" STORE_RCPT_STATE_PENDING
		                                    "', '" STORE_RCPT_STATE_DEFERRED
		                                    "', '" STORE_RCPT_STATE_BOUNCE "')"
		                                    " WHERE q.id = ?1 ORDER BY r.rowid",
		                       &read, error_r) < 0)
			goto rollback;
		sqlite3_bind_int64(read, 1, ids[i]);
		rc = queue_read(st->wdb, read, lease_take, &ls, error_r);
		sqlite_stmt_release(read);
		read = NULL;
		if (rc < 0)
			goto rollback;
		if (ls.oom) {
			str_error(error_r, "out of memory");
			goto rollback;
		}
	}
	if (sqlite_db_exec(st->wdb, "COMMIT", error_r) < 0)
		goto rollback;
	ret = (int)ls.n;
	goto unlock;
rollback:
	sqlite_stmt_release(pick);
	sqlite_db_rollback(st->wdb);
unlock:
	pthread_mutex_unlock(&st->wmu);
	free(ids);
	/* after the commit and outside the lock: cb may take its time */
	for (size_t i = 0; i < ls.n; i++) {
		if (ret > 0)
			cb(ctx, &ls.e[i].info);
		queue_entry_clear(&ls.e[i]);
	}
	free(ls.e);
	return ret;
}

int sqlite_queue_release_leases(struct store_backend *st, char **error_r)
{
	return queue_wrun1(st,
	                   "UPDATE queue SET lease_owner = NULL, lease_until = 0"
	                   " WHERE lease_owner IS NOT NULL OR lease_until <> 0",
	                   NULL, 0, error_r) < 0
	           ? -1
	           : 1;
}

/* One recipient's result, inside record's transaction. 1 ok, -1 error. */
static int record_one(struct store_backend *st, int64_t id, const struct store_queue_result *r,
                      char **error_r)
{
	sqlite3_stmt *stmt = NULL;
	int rc;

	/* Final results leave the queue. A deferral keeps the row; one in state
	 * bounce stays so (the administrator's bounce is done at the next try). */
	if (sqlite_stmt_cached(st->wdb,
	                       r->result == STORE_RCPT_DEFERRED
	                           ? "UPDATE queue_rcpts SET state = '" STORE_RCPT_STATE_DEFERRED
	                             "', last_reply = ?3"
	                             " WHERE queue_id = ?1 AND rcpt = ?2"
	                             "   AND state <> '" STORE_RCPT_STATE_BOUNCE "'"
	                           : "DELETE FROM queue_rcpts WHERE queue_id = ?1 AND rcpt = ?2",
	                       &stmt, error_r) < 0)
		return -1;
	sqlite3_bind_int64(stmt, 1, id);
	sqlite3_bind_text(stmt, 2, r->rcpt, -1, SQLITE_STATIC);
	if (r->result == STORE_RCPT_DEFERRED && r->reply != NULL)
		sqlite3_bind_text(stmt, 3, r->reply, -1, SQLITE_STATIC);
	rc = sqlite3_step(stmt);
	sqlite_stmt_release(stmt);
	return rc == SQLITE_DONE ? 1 : sqlite_db_fail(st->wdb, error_r, "database");
}

int sqlite_queue_record(struct store_backend *st, int64_t id, const struct store_queue_result *res,
                        size_t n, int64_t next_attempt, bool *removed_r, char **error_r)
{
	sqlite3_stmt *left = NULL, *del = NULL, *unref = NULL;
	bool removed = false;
	int rc, ret = -1;

	pthread_mutex_lock(&st->wmu);
	if (sqlite_db_exec(st->wdb, "BEGIN IMMEDIATE", error_r) < 0)
		goto unlock;
	int64_t p[2] = {id, next_attempt};
	rc = queue_wrun(st,
	                "UPDATE queue SET attempts = attempts + 1, next_attempt = ?2,"
	                "  lease_owner = NULL, lease_until = 0 WHERE id = ?1",
	                p, 2, error_r);
	if (rc <= 0) {
		ret = rc;
		goto rollback;
	}
	for (size_t i = 0; i < n; i++) {
		if (record_one(st, id, &res[i], error_r) < 0)
			goto rollback;
	}
	if (sqlite_stmt_cached(st->wdb, "SELECT 1 FROM queue_rcpts WHERE queue_id = ?1 LIMIT 1",
	                       &left, error_r) < 0)
		goto rollback;
	sqlite3_bind_int64(left, 1, id);
	rc = sqlite3_step(left);
	sqlite_stmt_release(left);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		sqlite_db_fail(st->wdb, error_r, "database");
		goto rollback;
	}
	if (rc == SQLITE_DONE) {
		/* nobody left: the entry goes, with its reference on the blob */
		if (sqlite_stmt_cached(st->wdb, "DELETE FROM queue WHERE id = ?1 RETURNING blob",
		                       &del, error_r) < 0 ||
		    sqlite_stmt_cached(st->wdb,
		                       "UPDATE blobs SET refcount = refcount - 1 WHERE id = ?1",
		                       &unref, error_r) < 0)
			goto rollback;
		sqlite3_bind_int64(del, 1, id);
		if (sqlite3_step(del) != SQLITE_ROW) {
			sqlite_db_fail(st->wdb, error_r, "database");
			goto rollback;
		}
		sqlite3_bind_text(unref, 1, (const char *)sqlite3_column_text(del, 0), -1,
		                  SQLITE_TRANSIENT);
		if (sqlite3_step(del) != SQLITE_DONE || sqlite3_step(unref) != SQLITE_DONE) {
			sqlite_db_fail(st->wdb, error_r, "database");
			goto rollback;
		}
		removed = true;
	}
	if (sqlite_db_exec(st->wdb, "COMMIT", error_r) < 0)
		goto rollback;
	ret = 1;
	goto unlock;
rollback:
	removed = false;
	sqlite_db_rollback(st->wdb);
unlock:
	sqlite_stmt_release(del);
	sqlite_stmt_release(unref);
	pthread_mutex_unlock(&st->wmu);
	if (removed_r != NULL)
		*removed_r = removed;
	if (removed) {
		char *err = NULL;
		(void)sqlite_blob_sweep(st, &err); /* a failure leaves it for the next sweep */
		free(err);
	}
	return ret;
}

int sqlite_queue_hold(struct store_backend *st, int64_t id, bool hold, char **error_r)
{
	int64_t p[2] = {id, hold ? 1 : 0};
	int rc = queue_wrun1(st,
	                     "UPDATE queue SET held = ?2,"
	                     "  next_attempt = CASE WHEN ?2 = 0 THEN 0 ELSE next_attempt END"
	                     " WHERE id = ?1",
	                     p, 2, error_r);
	return rc < 0 ? -1 : rc > 0 ? 1 : 0;
}

int sqlite_queue_set_warned(struct store_backend *st, int64_t id, char **error_r)
{
	int64_t p[1] = {id};
	int rc = queue_wrun1(st, "UPDATE queue SET warned = 1 WHERE id = ?1", p, 1, error_r);
	return rc < 0 ? -1 : rc > 0 ? 1 : 0;
}

int sqlite_queue_flush(struct store_backend *st, int64_t id, char **error_r)
{
	int64_t p[1] = {id};
	int rc = id > 0 ? queue_wrun1(st, "UPDATE queue SET next_attempt = 0 WHERE id = ?1", p, 1,
	                              error_r)
	                : queue_wrun1(st,
	                              "UPDATE queue SET next_attempt = 0"
	                              " WHERE held = 0 AND next_attempt <> 0",
	                              NULL, 0, error_r);
	return rc < 0 ? -1 : rc > 0 || id == 0 ? 1 : 0;
}

int sqlite_queue_bounce(struct store_backend *st, int64_t id, char **error_r)
{
	int64_t p[1] = {id};
	int rc;

	pthread_mutex_lock(&st->wmu);
	if (sqlite_db_exec(st->wdb, "BEGIN IMMEDIATE", error_r) < 0) {
		pthread_mutex_unlock(&st->wmu);
		return -1;
	}
	rc = queue_wrun(st, "UPDATE queue SET held = 0, next_attempt = 0 WHERE id = ?1", p, 1,
	                error_r);
	if (rc > 0)
		rc =
		    queue_wrun(st,
		               "UPDATE queue_rcpts SET state = '" STORE_RCPT_STATE_BOUNCE
		               "', last_reply = '" STORE_QUEUE_BOUNCE_REPLY "' WHERE queue_id = ?1",
		               p, 1, error_r) < 0
		        ? -1
		        : 1;
	if (rc <= 0 || sqlite_db_exec(st->wdb, "COMMIT", error_r) < 0) {
		sqlite_db_rollback(st->wdb);
		rc = rc == 0 ? 0 : -1;
	}
	pthread_mutex_unlock(&st->wmu);
	return rc;
}

int sqlite_queue_next_due(struct store_backend *st, int64_t *when_r, char **error_r)
{
	sqlite3_stmt *stmt = NULL;
	sqlite3 *db;
	int rc, ret = -1;

	if (sqlite_reader_get(st, &db, error_r) < 0)
		return -1;
	/* An entry being tried (leased past its next_attempt) counts from the end of
	 * its lease: the runner's own leases must not make the queue look due. */
	if (sqlite_stmt_cached(db,
	                       "SELECT min(CASE WHEN lease_owner IS NOT NULL"
	                       "                 AND lease_until > next_attempt"
	                       "            THEN lease_until ELSE next_attempt END)"
	                       " FROM queue WHERE held = 0",
	                       &stmt, error_r) < 0)
		goto out;
	rc = sqlite3_step(stmt);
	if (rc != SQLITE_ROW) {
		sqlite_db_fail(db, error_r, "database");
		goto out;
	}
	ret = 0; /* min() of no rows: NULL */
	if (sqlite3_column_type(stmt, 0) != SQLITE_NULL) {
		*when_r = sqlite3_column_int64(stmt, 0);
		ret = 1;
	}
out:
	sqlite_stmt_release(stmt);
	sqlite_reader_put(st, db);
	return ret;
}

void sqlite_set_queue_hook(struct store_backend *st, store_queue_hook *fn, void *ctx)
{
	st->queue_hook = fn;
	st->queue_hook_ctx = ctx;
}
