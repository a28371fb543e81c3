/* SQLite backend: the outbound queue. */
#include "store/store_sqlite_int.h"

#include <errno.h>
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

/* A text column, "" for NULL (valid until the statement steps again). */
static const char *queue_column_text(sqlite3_stmt *stmt, int col)
{
	const char *t = (const char *)sqlite3_column_text(stmt, col);
	return t != NULL ? t : "";
}

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

int sqlite_queue_list(struct store_backend *st, store_queue_cb *cb, void *ctx, char **error_r)
{
	sqlite3_stmt *stmt = NULL;
	struct strbuf rcpts = {0};
	struct store_queue_info cur = {0};
	char *sender = NULL, *account = NULL, *blob_id = NULL;
	bool have = false;
	sqlite3 *db;
	int rc, ret = -1;

	if (sqlite_reader_get(st, &db, error_r) < 0)
		return -1;
	/* One row per recipient, grouped here (not with group_concat, whose order
	 * SQLite does not promise) to list recipients in the order they were queued. */
	if (sqlite_stmt_cached(db,
	                       "SELECT q.id, q.sender, q.size, q.created, q.account, q.blob, r.rcpt"
	                       " FROM queue q LEFT JOIN queue_rcpts r ON r.queue_id = q.id"
	                       " ORDER BY q.created, q.id, r.rowid",
	                       &stmt, error_r) < 0)
		goto out;
	for (;;) {
		rc = sqlite3_step(stmt);
		if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
			sqlite_db_fail(db, error_r, "database");
			goto out;
		}
		if (have && (rc == SQLITE_DONE || sqlite3_column_int64(stmt, 0) != cur.id)) {
			cur.sender = sender != NULL ? sender : "";
			cur.account = account != NULL ? account : "";
			cur.blob_id = blob_id != NULL ? blob_id : "";
			cur.rcpts = rcpts.s != NULL ? rcpts.s : "";
			cb(ctx, &cur);
			free(sender);
			free(account);
			free(blob_id);
			sender = account = blob_id = NULL;
			rcpts.len = 0;
			if (rcpts.s != NULL)
				rcpts.s[0] = '\0';
			have = false;
		}
		if (rc == SQLITE_DONE)
			break;
		if (!have) {
			cur.id = sqlite3_column_int64(stmt, 0);
			cur.size = (uint64_t)sqlite3_column_int64(stmt, 2);
			cur.created = sqlite3_column_int64(stmt, 3);
			if (sqlite_column_dup(stmt, 1, &sender, error_r) < 0 ||
			    sqlite_column_dup(stmt, 4, &account, error_r) < 0 ||
			    sqlite_column_dup(stmt, 5, &blob_id, error_r) < 0)
				goto out;
			have = true;
		}
		const char *rcpt = (const char *)sqlite3_column_text(stmt, 6);
		if (rcpt != NULL && strbuf_add_word(&rcpts, rcpts.len > 0, rcpt, error_r) < 0)
			goto out;
	}
	ret = 1;
out:
	sqlite_stmt_release(stmt);
	sqlite_reader_put(st, db);
	free(sender);
	free(account);
	free(blob_id);
	free(rcpts.s);
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
	sqlite3_stmt *q = NULL, *r = NULL;
	struct store_queue_rcpt *rcpts = NULL;
	size_t n = 0, cap = 0;
	sqlite3 *db;
	int rc, ret = -1;

	if (sqlite_reader_get(st, &db, error_r) < 0)
		return -1;
	if (sqlite_db_exec(db, "BEGIN", error_r) < 0)
		goto out;
	if (sqlite_stmt_cached(db,
	                       "SELECT id, sender, size, created, account, blob, body, smtputf8,"
	                       "  envid, ret, trace_len, lease_owner, lease_until"
	                       " FROM queue WHERE id = ?1",
	                       &q, error_r) < 0 ||
	    sqlite_stmt_cached(db,
	                       "SELECT rcpt, state, notify, orcpt, last_reply FROM queue_rcpts"
	                       " WHERE queue_id = ?1 ORDER BY rowid",
	                       &r, error_r) < 0)
		goto out;
	sqlite3_bind_int64(q, 1, id);
	rc = sqlite3_step(q);
	if (rc == SQLITE_DONE) {
		ret = 0;
		goto out;
	}
	if (rc != SQLITE_ROW) {
		sqlite_db_fail(db, error_r, "database");
		goto out;
	}
	sqlite3_bind_int64(r, 1, id);
	while ((rc = sqlite3_step(r)) == SQLITE_ROW) {
		if (n == cap) {
			size_t ncap = cap == 0 ? 8 : cap * 2;
			struct store_queue_rcpt *p = realloc(rcpts, ncap * sizeof(*p));
			if (p == NULL) {
				str_error(error_r, "out of memory");
				goto out;
			}
			rcpts = p;
			cap = ncap;
		}
		/* column texts stay valid until the statement steps again: copied */
		static const int cols[4] = {0, 1, 3, 4}; /* rcpt, state, orcpt, last_reply */
		char *t4[4] = {NULL};
		for (int k = 0; k < 4; k++) {
			if (sqlite_column_dup(r, cols[k], &t4[k], error_r) < 0) {
				for (int j = 0; j < k; j++)
					free(t4[j]);
				goto out;
			}
		}
		rcpts[n++] = (struct store_queue_rcpt){
		    .rcpt = t4[0],
		    .state = t4[1],
		    .notify = (unsigned)sqlite3_column_int(r, 2),
		    .orcpt = t4[2],
		    .last_reply = t4[3],
		};
	}
	if (rc != SQLITE_DONE) {
		sqlite_db_fail(db, error_r, "database");
		goto out;
	}
	struct strbuf all = {0};
	for (size_t i = 0; i < n; i++) {
		if (strbuf_add_word(&all, i > 0, rcpts[i].rcpt != NULL ? rcpts[i].rcpt : "",
		                    error_r) < 0) {
			free(all.s);
			goto out;
		}
	}
	struct store_queue_info info = {
	    .id = sqlite3_column_int64(q, 0),
	    .sender = queue_column_text(q, 1),
	    .size = (uint64_t)sqlite3_column_int64(q, 2),
	    .created = sqlite3_column_int64(q, 3),
	    .account = queue_column_text(q, 4),
	    .blob_id = queue_column_text(q, 5),
	    .body = sqlite3_column_int(q, 6),
	    .smtputf8 = sqlite3_column_int(q, 7) != 0,
	    .envid = (const char *)sqlite3_column_text(q, 8),
	    .ret = sqlite3_column_int(q, 9),
	    .trace_len = (uint64_t)sqlite3_column_int64(q, 10),
	    .lease_owner = (const char *)sqlite3_column_text(q, 11),
	    .lease_until = sqlite3_column_int64(q, 12),
	    .rcpts = all.s != NULL ? all.s : "",
	    .nrcpt_info = n,
	    .rcpt_info = rcpts,
	};
	cb(ctx, &info);
	free(all.s);
	ret = 1;
out:
	for (size_t i = 0; i < n; i++) {
		free((char *)rcpts[i].rcpt);
		free((char *)rcpts[i].state);
		free((char *)rcpts[i].orcpt);
		free((char *)rcpts[i].last_reply);
	}
	free(rcpts);
	sqlite_stmt_release(q);
	sqlite_stmt_release(r);
	sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	sqlite_reader_put(st, db);
	return ret;
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
