/* SQLite backend: messages, expunge (mailbox listing: store_sqlite_imap.c). */
#include "store/store_sqlite_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* ---- reading ---- */

/* Looks up a mailbox id on db. 1 found, 0 account or mailbox absent, -1 error. */
static int mailbox_lookup(sqlite3 *db, const char *account, const char *mailbox, int64_t *id_r,
                          char **error_r)
{
	sqlite3_stmt *stmt;
	int rc;

	if (sqlite_stmt_cached(db,
	                       "SELECT m.id FROM mailboxes m JOIN accounts a ON a.id = m.account"
	                       " WHERE a.address = ?1 AND m.name = ?2",
	                       &stmt, error_r) < 0)
		return -1;
	sqlite3_bind_text(stmt, 1, account, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 2, store_mailbox_normalize(mailbox), -1, SQLITE_STATIC);
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW)
		*id_r = sqlite3_column_int64(stmt, 0);
	else if (rc != SQLITE_DONE)
		sqlite_db_fail(db, error_r, "database");
	sqlite_stmt_release(stmt);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

int sqlite_message_list(struct store_backend *st, const char *account, const char *mailbox,
                        store_message_cb *cb, void *ctx, char **error_r)
{
	sqlite3_stmt *stmt = NULL;
	sqlite3 *db;
	int64_t mbox_id;
	int rc, ret = -1;

	if (sqlite_reader_get(st, &db, error_r) < 0)
		return -1;
	if (sqlite_db_exec(db, "BEGIN", error_r) < 0)
		goto out;
	rc = mailbox_lookup(db, account, mailbox, &mbox_id, error_r);
	if (rc <= 0) {
		ret = rc;
		goto out;
	}
	if (sqlite_stmt_cached(db,
	                       "SELECT uid, modseq, size, internal_date, flags, blob FROM messages"
	                       " WHERE mailbox = ?1 ORDER BY uid",
	                       &stmt, error_r) < 0)
		goto out;
	sqlite3_bind_int64(stmt, 1, mbox_id);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		struct store_message_info m = {
		    .uid = (uint32_t)sqlite3_column_int64(stmt, 0),
		    .modseq = (uint64_t)sqlite3_column_int64(stmt, 1),
		    .size = (uint64_t)sqlite3_column_int64(stmt, 2),
		    .internal_date = sqlite3_column_int64(stmt, 3),
		    .flags = (const char *)sqlite3_column_text(stmt, 4),
		    .blob_id = (const char *)sqlite3_column_text(stmt, 5),
		};
		if (m.flags == NULL)
			m.flags = "";
		if (m.blob_id == NULL)
			m.blob_id = "";
		cb(ctx, &m);
	}
	if (rc != SQLITE_DONE) {
		sqlite_db_fail(db, error_r, "database");
		goto out;
	}
	ret = 1;
out:
	sqlite_stmt_release(stmt);
	sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	sqlite_reader_put(st, db);
	return ret;
}

int sqlite_message_get(struct store_backend *st, const char *account, const char *mailbox,
                       uint32_t uid, char **data_r, size_t *len_r, char **error_r)
{
	sqlite3_stmt *stmt = NULL;
	char *blob_id = NULL;
	struct sqlite_blob_loc loc = {0};
	sqlite3 *db;
	int64_t mbox_id;
	int rc, ret = -1;

	for (int attempt = 0; attempt < 2; attempt++) {
		if (sqlite_reader_get(st, &db, error_r) < 0)
			return -1;
		rc = mailbox_lookup(db, account, mailbox, &mbox_id, error_r);
		if (rc <= 0) {
			ret = rc;
			goto out;
		}
		if (sqlite_stmt_cached(db,
		                       "SELECT blob FROM messages WHERE mailbox = ?1 AND uid = ?2",
		                       &stmt, error_r) < 0)
			goto out;
		sqlite3_bind_int64(stmt, 1, mbox_id);
		sqlite3_bind_int64(stmt, 2, uid);
		rc = sqlite3_step(stmt);
		if (rc == SQLITE_DONE) {
			ret = 0;
			goto out;
		}
		if (rc != SQLITE_ROW) {
			sqlite_db_fail(db, error_r, "database");
			goto out;
		}
		blob_id = str_dup((const char *)sqlite3_column_text(stmt, 0) != NULL
		                      ? (const char *)sqlite3_column_text(stmt, 0)
		                      : "");
		ret = blob_id != NULL ? 1 : str_error(error_r, "out of memory");
		if (ret == 1 && sqlite_blob_locate(db, blob_id, &loc, error_r) < 0)
			ret = -1;
	out:
		sqlite_stmt_release(stmt);
		stmt = NULL;
		sqlite_reader_put(st, db);
		if (ret != 1) {
			free(blob_id);
			return ret;
		}
		/* Blobs are immutable. Should the message be deleted (and its blob
		 * swept) right now, the read fails with an error, which is what a
		 * reader racing a delete may expect; a blob moved by a compaction
		 * meanwhile is found at its new place on the second lookup. */
		rc = sqlite_blob_read_loc(st, blob_id, &loc, data_r, len_r, error_r);
		if (rc != 0 || loc.seg == 0 || attempt == 1)
			break;
		free(blob_id);
		blob_id = NULL;
	}
	if (rc == 0)
		str_error(error_r, "blob %s of message %u is missing", blob_id, uid);
	free(blob_id);
	return rc == 1 ? 1 : -1;
}

/* ---- expunge ---- */

int sqlite_message_expunge(struct store_backend *st, const char *account, const char *mailbox,
                           const uint32_t *uids, size_t n, char **error_r)
{
	sqlite3_stmt *del = NULL, *unref = NULL, *log = NULL, *bump = NULL;
	int64_t mbox_id, modseq = 0;
	int rc, ret = -1;
	size_t removed = 0;

	if (n == 0)
		return 0;
	pthread_mutex_lock(&st->wmu);
	if (sqlite_db_exec(st->wdb, "BEGIN IMMEDIATE", error_r) < 0)
		goto out;
	rc = mailbox_lookup(st->wdb, account, mailbox, &mbox_id, error_r);
	if (rc <= 0) {
		ret = rc;
		goto rollback;
	}
	/* One MODSEQ for the whole change (RFC 7162 3.1.1: a mailbox change gets a
	 * MODSEQ greater than every earlier one). Bumped first; rolled back with the
	 * rest when nothing was removed. */
	if (sqlite_db_prepare(st->wdb,
	                      "UPDATE mailboxes SET highestmodseq = highestmodseq + 1 WHERE id = ?1"
	                      " RETURNING highestmodseq",
	                      &bump, error_r) < 0)
		goto rollback;
	sqlite3_bind_int64(bump, 1, mbox_id);
	if (sqlite3_step(bump) != SQLITE_ROW) {
		sqlite_db_fail(st->wdb, error_r, "database");
		goto rollback;
	}
	modseq = sqlite3_column_int64(bump, 0);
	if (sqlite3_step(bump) != SQLITE_DONE) {
		sqlite_db_fail(st->wdb, error_r, "database");
		goto rollback;
	}
	if (sqlite_db_prepare(st->wdb,
	                      "DELETE FROM messages WHERE mailbox = ?1 AND uid = ?2 RETURNING blob",
	                      &del, error_r) < 0 ||
	    sqlite_db_prepare(st->wdb, "UPDATE blobs SET refcount = refcount - 1 WHERE id = ?1",
	                      &unref, error_r) < 0 ||
	    sqlite_db_prepare(st->wdb,
	                      "INSERT OR REPLACE INTO expunged (mailbox, uid, modseq, time)"
	                      " VALUES (?1, ?2, ?3, CAST(strftime('%s', 'now') AS INTEGER))",
	                      &log, error_r) < 0)
		goto rollback;
	for (size_t i = 0; i < n; i++) {
		sqlite3_reset(del);
		sqlite3_bind_int64(del, 1, mbox_id);
		sqlite3_bind_int64(del, 2, uids[i]);
		rc = sqlite3_step(del);
		if (rc == SQLITE_DONE)
			continue; /* already gone */
		if (rc != SQLITE_ROW) {
			sqlite_db_fail(st->wdb, error_r, "database");
			goto rollback;
		}
		char *blob = str_dup((const char *)sqlite3_column_text(del, 0) != NULL
		                         ? (const char *)sqlite3_column_text(del, 0)
		                         : "");
		if (blob == NULL) {
			str_error(error_r, "out of memory");
			goto rollback;
		}
		rc = sqlite3_step(del);
		if (rc != SQLITE_DONE) {
			free(blob);
			sqlite_db_fail(st->wdb, error_r, "database");
			goto rollback;
		}
		sqlite3_reset(unref);
		sqlite3_bind_text(unref, 1, blob, -1, SQLITE_TRANSIENT);
		free(blob);
		if (sqlite3_step(unref) != SQLITE_DONE) {
			sqlite_db_fail(st->wdb, error_r, "database");
			goto rollback;
		}
		sqlite3_reset(log);
		sqlite3_bind_int64(log, 1, mbox_id);
		sqlite3_bind_int64(log, 2, uids[i]);
		sqlite3_bind_int64(log, 3, modseq);
		if (sqlite3_step(log) != SQLITE_DONE) {
			sqlite_db_fail(st->wdb, error_r, "database");
			goto rollback;
		}
		removed++;
	}
	if (removed == 0) {
		ret = 0; /* nothing changed: keep HIGHESTMODSEQ as it was */
		goto rollback;
	}
	if (sqlite_db_exec(st->wdb, "COMMIT", error_r) < 0)
		goto rollback;
	ret = removed > INT32_MAX ? INT32_MAX : (int)removed;
	goto out;
rollback:
	sqlite_db_rollback(st->wdb);
out:
	sqlite3_finalize(del);
	sqlite3_finalize(unref);
	sqlite3_finalize(log);
	sqlite3_finalize(bump);
	pthread_mutex_unlock(&st->wmu);
	if (ret > 0) {
		/* The entries are gone either way; a failed sweep leaves unreferenced blobs
		 * for the next one. */
		char *err = NULL;
		(void)sqlite_blob_sweep(st, &err);
		free(err);
	}
	return ret;
}
