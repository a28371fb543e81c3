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

static void strbuf_add(struct strbuf *b, const char *s)
{
	size_t n = strlen(s);

	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap == 0 ? 128 : b->cap;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *p = realloc(b->s, cap);
		if (p == NULL)
			abort();
		b->s = p;
		b->cap = cap;
	}
	memcpy(b->s + b->len, s, n + 1);
	b->len += n;
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
	if (sqlite_db_prepare(db,
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
			sender = sqlite_column_dup(stmt, 1);
			cur.size = (uint64_t)sqlite3_column_int64(stmt, 2);
			cur.created = sqlite3_column_int64(stmt, 3);
			account = sqlite_column_dup(stmt, 4);
			blob_id = sqlite_column_dup(stmt, 5);
			have = true;
		}
		const char *rcpt = (const char *)sqlite3_column_text(stmt, 6);
		if (rcpt != NULL) {
			if (rcpts.len > 0)
				strbuf_add(&rcpts, " ");
			strbuf_add(&rcpts, rcpt);
		}
	}
	ret = 1;
out:
	sqlite3_finalize(stmt);
	sqlite_reader_put(st, db);
	free(sender);
	free(account);
	free(blob_id);
	free(rcpts.s);
	return ret;
}

int sqlite_queue_get(struct store_backend *st, int64_t id, char **data_r, size_t *len_r, char **error_r)
{
	char idbuf[32], *blob_id = NULL;
	int rc;

	snprintf(idbuf, sizeof(idbuf), "%lld", (long long)id);
	const char *params[] = {idbuf};
	rc = sqlite_rquery_text(st, "SELECT blob FROM queue WHERE id = CAST(?1 AS INTEGER)", params, 1,
	                 &blob_id, error_r);
	if (rc <= 0)
		return rc;
	/* As with messages: a blob removed by a racing delete makes this an error. */
	rc = blob_read(st->data_dir, blob_id, data_r, len_r, error_r);
	if (rc == 0)
		store_error_set(error_r, "blob %s of queue entry %lld is missing", blob_id,
		          (long long)id);
	free(blob_id);
	return rc == 1 ? 1 : -1;
}

