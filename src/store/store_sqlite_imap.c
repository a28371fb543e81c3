/* SQLite backend: the IMAP part of store.h -- mailbox list and status, create,
 * delete, rename, subscriptions, changes since a MODSEQ, flags, copy/move,
 * expunge of \Deleted entries. Names arrive normalized
 * and validated by the front (store.c); watchers are notified there too.
 *
 * Invariants kept here (RFC 9051 2.3.1.1, RFC 7162 3.1.1):
 *   - a mailbox's uidnext only grows, so a UID is never reused within one
 *     UIDVALIDITY; a name that comes back (re-created, or a \Noselect name made
 *     selectable) gets a fresh UIDVALIDITY from uidvalidity_counter;
 *   - every change to a mailbox's entries takes highestmodseq + 1, given to
 *     every entry the change touched (one MODSEQ per call, never per entry);
 *   - every entry removed from a mailbox that stays goes to `expunged` with the
 *     MODSEQ of the removal (QRESYNC VANISHED, RFC 7162 3.2.10); pruning removes
 *     old entries and raises mailboxes.expunge_floor, above which the log
 *     stays complete;
 *   - the superiors of a mailbox exist (created with it, a DELETE with
 *     inferiors leaves a \Noselect name, a RENAME moves the inferiors along). */
#include "store/store_sqlite_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* ---- helpers ---- */

struct imap_mbox {
	int64_t id;
	uint32_t uidvalidity, uidnext;
	uint64_t modseq;
	uint64_t expunge_floor; /* the expunge log is complete above it */
	bool noselect;
	char special_use[16]; /* "" when none */
};

/* Steps a statement that returns no rows (or whose rows are not needed) to its
 * end. 1 ok, -1 error. */
static int imap_step_done(sqlite3 *db, sqlite3_stmt *stmt, char **error_r)
{
	int rc;

	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW)
		;
	return rc == SQLITE_DONE ? 1 : sqlite_db_fail(db, error_r, "database");
}

/* One cached statement with up to two int64 parameters and two text ones
 * (ints first, ?1.., then the texts), run to its end. 1 ok, -1 error. */
static int imap_exec(sqlite3 *db, const char *sql, int nints, int64_t a, int64_t b, const char *t1,
                     const char *t2, char **error_r)
{
	sqlite3_stmt *stmt;
	int ret, i = 1;

	if (sqlite_stmt_cached(db, sql, &stmt, error_r) < 0)
		return -1;
	if (nints > 0)
		sqlite3_bind_int64(stmt, i++, a);
	if (nints > 1)
		sqlite3_bind_int64(stmt, i++, b);
	if (t1 != NULL)
		sqlite3_bind_text(stmt, i++, t1, -1, SQLITE_STATIC);
	if (t2 != NULL)
		sqlite3_bind_text(stmt, i++, t2, -1, SQLITE_STATIC);
	ret = imap_step_done(db, stmt, error_r);
	sqlite_stmt_release(stmt);
	return ret;
}

/* The account's id: 1, or -1 (also when there is no such account). */
static int imap_account_id(sqlite3 *db, const char *account, int64_t *id_r, char **error_r)
{
	sqlite3_stmt *stmt;
	int rc;

	if (account == NULL)
		return str_error(error_r, "no account given");
	if (sqlite_stmt_cached(db, "SELECT id FROM accounts WHERE address = ?1", &stmt, error_r) <
	    0)
		return -1;
	sqlite3_bind_text(stmt, 1, account, -1, SQLITE_STATIC);
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW)
		*id_r = sqlite3_column_int64(stmt, 0);
	else if (rc == SQLITE_DONE)
		str_error(error_r, "no such account %s", account);
	else
		sqlite_db_fail(db, error_r, "database");
	sqlite_stmt_release(stmt);
	return rc == SQLITE_ROW ? 1 : -1;
}

/* Mailbox name of account acct: 1 found (*mb), 0 none, -1 error. */
static int imap_mbox_find(sqlite3 *db, int64_t acct, const char *name, struct imap_mbox *mb,
                          char **error_r)
{
	sqlite3_stmt *stmt;
	int rc;

	memset(mb, 0, sizeof(*mb));
	if (sqlite_stmt_cached(db,
	                       "SELECT id, uidvalidity, uidnext, highestmodseq, noselect,"
	                       "  coalesce(special_use, ''), expunge_floor"
	                       " FROM mailboxes WHERE account = ?1 AND name = ?2",
	                       &stmt, error_r) < 0)
		return -1;
	sqlite3_bind_int64(stmt, 1, acct);
	sqlite3_bind_text(stmt, 2, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW) {
		const char *su = (const char *)sqlite3_column_text(stmt, 5);
		mb->id = sqlite3_column_int64(stmt, 0);
		mb->uidvalidity = (uint32_t)sqlite3_column_int64(stmt, 1);
		mb->uidnext = (uint32_t)sqlite3_column_int64(stmt, 2);
		mb->modseq = (uint64_t)sqlite3_column_int64(stmt, 3);
		mb->noselect = sqlite3_column_int(stmt, 4) != 0;
		mb->expunge_floor = (uint64_t)sqlite3_column_int64(stmt, 6);
		snprintf(mb->special_use, sizeof(mb->special_use), "%s", su != NULL ? su : "");
	} else if (rc != SQLITE_DONE) {
		sqlite_db_fail(db, error_r, "database");
	}
	sqlite_stmt_release(stmt);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

/* Whether name has inferiors: 1 yes, 0 no, -1 error. The names under "name/"
 * are exactly those in ("name/", "name0") in byte order ('0' follows '/'). */
static int imap_has_children(sqlite3 *db, int64_t acct, const char *name, char **error_r)
{
	sqlite3_stmt *stmt;
	int rc;

	if (sqlite_stmt_cached(db,
	                       "SELECT 1 FROM mailboxes WHERE account = ?1"
	                       " AND name > ?2 || '/' AND name < ?2 || '0' LIMIT 1",
	                       &stmt, error_r) < 0)
		return -1;
	sqlite3_bind_int64(stmt, 1, acct);
	sqlite3_bind_text(stmt, 2, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(stmt);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		sqlite_db_fail(db, error_r, "database");
	sqlite_stmt_release(stmt);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

int sqlite_uidvalidity_next(sqlite3 *db, uint32_t *uidvalidity_r, char **error_r)
{
	sqlite3_stmt *stmt;
	int64_t v = -1;

	/* The clock keeps values apart from stores made before this counter existed
	 * and from other stores; the counter keeps them apart from each other. */
	if (sqlite_stmt_cached(db,
	                       "UPDATE uidvalidity_counter SET last = max(last + 1, ?1)"
	                       " WHERE id = 1 RETURNING last",
	                       &stmt, error_r) < 0)
		return -1;
	sqlite3_bind_int64(stmt, 1, (int64_t)time(NULL));
	if (sqlite3_step(stmt) == SQLITE_ROW)
		v = sqlite3_column_int64(stmt, 0);
	if (v < 0 || imap_step_done(db, stmt, NULL) < 0) {
		sqlite_db_fail(db, error_r, "database");
		sqlite_stmt_release(stmt);
		return -1;
	}
	sqlite_stmt_release(stmt);
	if (v <= 0 || v > (int64_t)UINT32_MAX)
		return str_error(error_r, "UIDVALIDITY space exhausted");
	*uidvalidity_r = (uint32_t)v;
	return 1;
}

/* A growing array of UIDs. */
struct imap_uids {
	uint32_t *v;
	size_t n, cap;
};

static int imap_uids_add(struct imap_uids *u, uint32_t uid, char **error_r)
{
	if (u->n == u->cap) {
		size_t cap = u->cap == 0 ? 64 : u->cap * 2;
		uint32_t *v = realloc(u->v, cap * sizeof(*v));
		if (v == NULL)
			return str_error(error_r, "out of memory");
		u->v = v;
		u->cap = cap;
	}
	u->v[u->n++] = uid;
	return 1;
}

/* Removes the entries uids[0..n) of mailbox mbox inside the writer's transaction
 * (as store_message_expunge does): each gets the MODSEQ *modseq_io (0: taken
 * from the mailbox, highestmodseq + 1, on the first removal) in the expunge
 * log; unref: each blob loses a reference (a move hands it to the copy instead).
 * Removed UIDs are added to out (optional). The number removed, or -1. */
static long imap_entries_remove(struct store_backend *st, int64_t mbox, const uint32_t *uids,
                                size_t n, bool unref, uint64_t *modseq_io, struct imap_uids *out,
                                char **error_r)
{
	sqlite3 *db = st->wdb;
	sqlite3_stmt *del = NULL, *ref = NULL, *log = NULL;
	long removed = -1, k = 0;

	if (sqlite_stmt_cached(
	        db, "DELETE FROM messages WHERE mailbox = ?1 AND uid = ?2 RETURNING blob", &del,
	        error_r) < 0 ||
	    sqlite_stmt_cached(db, "UPDATE blobs SET refcount = refcount - 1 WHERE id = ?1", &ref,
	                       error_r) < 0 ||
	    sqlite_stmt_cached(db,
	                       "INSERT OR REPLACE INTO expunged (mailbox, uid, modseq, time)"
	                       " VALUES (?1, ?2, ?3, CAST(strftime('%s', 'now') AS INTEGER))",
	                       &log, error_r) < 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		sqlite3_bind_int64(del, 1, mbox);
		sqlite3_bind_int64(del, 2, uids[i]);
		int rc = sqlite3_step(del);
		if (rc == SQLITE_DONE) {
			sqlite3_reset(del);
			continue; /* not (or no longer) there */
		}
		if (rc != SQLITE_ROW) {
			sqlite_db_fail(db, error_r, "database");
			goto out;
		}
		if (unref) {
			sqlite3_bind_text(ref, 1, (const char *)sqlite3_column_text(del, 0), -1,
			                  SQLITE_TRANSIENT);
			rc = imap_step_done(db, ref, error_r);
			sqlite3_reset(ref);
			if (rc < 0)
				goto out;
		}
		if (imap_step_done(db, del, error_r) < 0)
			goto out;
		sqlite3_reset(del);
		if (*modseq_io == 0) {
			/* One MODSEQ for the whole change (RFC 7162 3.1.1). */
			sqlite3_stmt *bump;
			if (sqlite_stmt_cached(
			        db,
			        "UPDATE mailboxes SET highestmodseq = highestmodseq + 1"
			        " WHERE id = ?1 RETURNING highestmodseq",
			        &bump, error_r) < 0)
				goto out;
			sqlite3_bind_int64(bump, 1, mbox);
			if (sqlite3_step(bump) == SQLITE_ROW)
				*modseq_io = (uint64_t)sqlite3_column_int64(bump, 0);
			rc = *modseq_io != 0 ? imap_step_done(db, bump, error_r)
			                     : sqlite_db_fail(db, error_r, "database");
			sqlite_stmt_release(bump);
			if (rc < 0)
				goto out;
		}
		sqlite3_bind_int64(log, 1, mbox);
		sqlite3_bind_int64(log, 2, uids[i]);
		sqlite3_bind_int64(log, 3, (int64_t)*modseq_io);
		rc = imap_step_done(db, log, error_r);
		sqlite3_reset(log);
		if (rc < 0 || (out != NULL && imap_uids_add(out, uids[i], error_r) < 0))
			goto out;
		k++;
	}
	removed = k;
out:
	sqlite_stmt_release(del);
	sqlite_stmt_release(ref);
	sqlite_stmt_release(log);
	return removed;
}

/* Every UID of mailbox mbox, ascending, into out. 1 ok, -1 error. */
static int imap_all_uids(sqlite3 *db, int64_t mbox, struct imap_uids *out, char **error_r)
{
	sqlite3_stmt *stmt;
	int rc;

	if (sqlite_stmt_cached(db, "SELECT uid FROM messages WHERE mailbox = ?1 ORDER BY uid",
	                       &stmt, error_r) < 0)
		return -1;
	sqlite3_bind_int64(stmt, 1, mbox);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		if (imap_uids_add(out, (uint32_t)sqlite3_column_int64(stmt, 0), error_r) < 0) {
			sqlite_stmt_release(stmt);
			return -1;
		}
	}
	if (rc != SQLITE_DONE)
		sqlite_db_fail(db, error_r, "database");
	sqlite_stmt_release(stmt);
	return rc == SQLITE_DONE ? 1 : -1;
}

/* The writer's transaction around an IMAP change. */
static int imap_begin(struct store_backend *st, char **error_r)
{
	pthread_mutex_lock(&st->wmu);
	if (sqlite_db_exec(st->wdb, "BEGIN IMMEDIATE", error_r) < 0) {
		pthread_mutex_unlock(&st->wmu);
		return -1;
	}
	return 1;
}

/* Commits (ret > 0 and commit) or rolls back; returns ret, or -1 when the
 * COMMIT failed. Releases the writer. */
static int imap_end(struct store_backend *st, int ret, bool commit, char **error_r)
{
	if (commit) {
		if (sqlite_db_exec(st->wdb, "COMMIT", error_r) < 0) {
			sqlite_db_rollback(st->wdb);
			ret = -1;
		}
	} else {
		sqlite_db_rollback(st->wdb);
	}
	pthread_mutex_unlock(&st->wmu);
	return ret;
}

/* Drops blobs whose last reference went; a failure leaves them for the next
 * sweep. */
static void imap_sweep(struct store_backend *st)
{
	char *err = NULL;

	(void)sqlite_blob_sweep(st, &err);
	free(err);
}

/* ---- mailbox list and status ---- */

/* The columns of store_mailbox_info, per mailbox b (the counts are kept by
 * triggers: schema v7). */
#define IMAP_MBOX_INFO_SQL                                                                         \
	"SELECT b.name, b.special_use, b.uidvalidity, b.uidnext, b.highestmodseq,"                 \
	"  b.n_messages, b.n_unseen, b.n_deleted, b.n_size, b.noselect,"                           \
	"  EXISTS (SELECT 1 FROM subscriptions s WHERE s.account = b.account"                      \
	"          AND s.name = b.name),"                                                          \
	"  EXISTS (SELECT 1 FROM mailboxes c WHERE c.account = b.account"                          \
	"          AND c.name > b.name || '/' AND c.name < b.name || '0'),"                        \
	"  b.expunge_floor"                                                                        \
	" FROM mailboxes b"

static void imap_mbox_info_emit(sqlite3_stmt *stmt, store_mailbox_cb *cb, void *ctx)
{
	struct store_mailbox_info mb = {
	    .name = (const char *)sqlite3_column_text(stmt, 0),
	    .special_use = (const char *)sqlite3_column_text(stmt, 1),
	    .uidvalidity = (uint32_t)sqlite3_column_int64(stmt, 2),
	    .uidnext = (uint32_t)sqlite3_column_int64(stmt, 3),
	    .highestmodseq = (uint64_t)sqlite3_column_int64(stmt, 4),
	    .messages = (uint32_t)sqlite3_column_int64(stmt, 5),
	    .unseen = (uint32_t)sqlite3_column_int64(stmt, 6),
	    .deleted = (uint32_t)sqlite3_column_int64(stmt, 7),
	    .size = (uint64_t)sqlite3_column_int64(stmt, 8),
	    .noselect = sqlite3_column_int(stmt, 9) != 0,
	    .subscribed = sqlite3_column_int(stmt, 10) != 0,
	    .children = sqlite3_column_int(stmt, 11) != 0,
	    .expunge_floor = (uint64_t)sqlite3_column_int64(stmt, 12),
	};
	if (mb.name == NULL)
		mb.name = "";
	cb(ctx, &mb);
}

/* The status of mailbox name (acct's) on db to cb: 1, 0 no such mailbox, -1. */
static int imap_mbox_info(sqlite3 *db, int64_t acct, const char *name, store_mailbox_cb *cb,
                          void *ctx, char **error_r)
{
	sqlite3_stmt *stmt;
	int rc;

	if (sqlite_stmt_cached(db, IMAP_MBOX_INFO_SQL " WHERE b.account = ?1 AND b.name = ?2",
	                       &stmt, error_r) < 0)
		return -1;
	sqlite3_bind_int64(stmt, 1, acct);
	sqlite3_bind_text(stmt, 2, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW && cb != NULL)
		imap_mbox_info_emit(stmt, cb, ctx);
	else if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		sqlite_db_fail(db, error_r, "database");
	sqlite_stmt_release(stmt);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

/* A reader inside BEGIN (one snapshot), or -1. */
static int imap_read_begin(struct store_backend *st, sqlite3 **db_r, char **error_r)
{
	if (sqlite_reader_get(st, db_r, error_r) < 0)
		return -1;
	if (sqlite_db_exec(*db_r, "BEGIN", error_r) < 0) {
		sqlite_reader_put(st, *db_r);
		return -1;
	}
	return 1;
}

static void imap_read_end(struct store_backend *st, sqlite3 *db)
{
	sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	sqlite_reader_put(st, db);
}

int sqlite_mailbox_list(struct store_backend *st, const char *account, store_mailbox_cb *cb,
                        void *ctx, char **error_r)
{
	sqlite3_stmt *stmt = NULL;
	sqlite3 *db;
	int rc, ret = -1;

	if (imap_read_begin(st, &db, error_r) < 0)
		return -1;
	const char *params[] = {account};
	rc = sqlite_query_text(db, "SELECT id FROM accounts WHERE address = ?1", params, 1, NULL,
	                       error_r);
	if (rc <= 0) {
		ret = rc;
		goto out;
	}
	if (sqlite_stmt_cached(db,
	                       IMAP_MBOX_INFO_SQL
	                       " JOIN accounts a ON a.id = b.account WHERE a.address = ?1"
	                       " ORDER BY b.name <> 'INBOX', b.id",
	                       &stmt, error_r) < 0)
		goto out;
	sqlite3_bind_text(stmt, 1, account, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW)
		imap_mbox_info_emit(stmt, cb, ctx);
	if (rc != SQLITE_DONE) {
		sqlite_db_fail(db, error_r, "database");
		goto out;
	}
	ret = 1;
out:
	sqlite_stmt_release(stmt);
	imap_read_end(st, db);
	return ret;
}

int sqlite_mailbox_get(struct store_backend *st, const char *account, const char *name,
                       store_mailbox_cb *cb, void *ctx, char **error_r)
{
	sqlite3 *db;
	int64_t acct;
	int ret;

	if (imap_read_begin(st, &db, error_r) < 0)
		return -1;
	ret = imap_account_id(db, account, &acct, error_r);
	if (ret > 0)
		ret = imap_mbox_info(db, acct, name, cb, ctx, error_r);
	imap_read_end(st, db);
	return ret;
}

/* ---- changes since a MODSEQ ---- */

static void imap_message_emit(sqlite3_stmt *stmt, store_message_cb *cb, void *ctx)
{
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

/* The vanished part of store_mailbox_changes, on the snapshot db: the runs of
 * UIDs in the expunge log above since, or, when the log was pruned past since
 * (since < expunge_floor), the runs of UIDs below uidnext without an entry: every
 * UID the mailbox gave out and no longer has, a superset of those expunged since
 * (RFC 7162 3.2.5.2 and 3.2.6 let VANISHED (EARLIER) name UIDs the client does
 * not know; it ignores them). At most one run more than there are entries. */
static int imap_vanished_emit(sqlite3 *db, const struct imap_mbox *mb, uint64_t since,
                              void (*vanished)(void *ctx, uint32_t first, uint32_t last), void *ctx,
                              char **error_r)
{
	bool pruned = since < mb->expunge_floor;
	sqlite3_stmt *stmt;
	uint32_t first = 0, last = 0; /* the log run being built (first 0: none) */
	uint64_t next = 1;            /* pruned: the lowest UID not accounted for */
	int rc;

	if (sqlite_stmt_cached(db,
	                       pruned ? "SELECT uid FROM messages WHERE mailbox = ?1 ORDER BY uid"
	                              : "SELECT uid FROM expunged INDEXED BY expunged_modseq"
	                                " WHERE mailbox = ?1 AND modseq > ?2 ORDER BY uid",
	                       &stmt, error_r) < 0)
		return -1;
	sqlite3_bind_int64(stmt, 1, mb->id);
	if (!pruned)
		sqlite3_bind_int64(stmt, 2, (int64_t)since);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		uint32_t uid = (uint32_t)sqlite3_column_int64(stmt, 0);
		if (pruned) {
			if (uid > next)
				vanished(ctx, (uint32_t)next, uid - 1);
			next = (uint64_t)uid + 1;
		} else if (first != 0 && uid == last + 1) {
			last = uid;
		} else {
			if (first != 0)
				vanished(ctx, first, last);
			first = last = uid;
		}
	}
	if (rc != SQLITE_DONE)
		sqlite_db_fail(db, error_r, "database");
	sqlite_stmt_release(stmt);
	if (rc != SQLITE_DONE)
		return -1;
	if (pruned && next < mb->uidnext)
		vanished(ctx, (uint32_t)next, mb->uidnext - 1);
	if (first != 0)
		vanished(ctx, first, last);
	return 1;
}

int sqlite_mailbox_changes(struct store_backend *st, const char *account, const char *mailbox,
                           uint64_t since, const struct store_changes_ops *ops, void *ctx,
                           char **error_r)
{
	sqlite3_stmt *stmt = NULL;
	struct imap_mbox mb;
	sqlite3 *db;
	int64_t acct;
	int rc, ret;

	if (since > INT64_MAX)
		since = INT64_MAX;
	if (imap_read_begin(st, &db, error_r) < 0)
		return -1;
	ret = imap_account_id(db, account, &acct, error_r);
	if (ret > 0)
		ret = imap_mbox_find(db, acct, mailbox, &mb, error_r);
	if (ret > 0 && ops != NULL && ops->mailbox != NULL)
		ret = imap_mbox_info(db, acct, mailbox, ops->mailbox, ctx, error_r);
	if (ret <= 0)
		goto out;
	ret = -1;
	if (ops != NULL && ops->message != NULL) {
		/* since > 0: messages_modseq (mailbox, modseq) finds the changed ones
		 * and the sort by UID is over those alone (without statistics SQLite
		 * would walk the whole mailbox in UID order instead); since 0: all of
		 * them, in primary key order. */
		if (sqlite_stmt_cached(db,
		                       since > 0
		                           ? "SELECT uid, modseq, size, internal_date, flags, blob"
		                             " FROM messages INDEXED BY messages_modseq"
		                             " WHERE mailbox = ?1 AND modseq > ?2 ORDER BY uid"
		                           : "SELECT uid, modseq, size, internal_date, flags, blob"
		                             " FROM messages WHERE mailbox = ?1 AND modseq > ?2"
		                             " ORDER BY uid",
		                       &stmt, error_r) < 0)
			goto out;
		sqlite3_bind_int64(stmt, 1, mb.id);
		sqlite3_bind_int64(stmt, 2, (int64_t)since);
		while ((rc = sqlite3_step(stmt)) == SQLITE_ROW)
			imap_message_emit(stmt, ops->message, ctx);
		if (rc != SQLITE_DONE) {
			sqlite_db_fail(db, error_r, "database");
			goto out;
		}
		sqlite_stmt_release(stmt);
		stmt = NULL;
	}
	if (since > 0 && ops != NULL && ops->vanished != NULL &&
	    imap_vanished_emit(db, &mb, since, ops->vanished, ctx, error_r) < 0)
		goto out;
	ret = 1;
out:
	sqlite_stmt_release(stmt);
	imap_read_end(st, db);
	return ret;
}

/* ---- the entries of UID ranges ---- */

int sqlite_message_ranges(struct store_backend *st, const char *account, const char *mailbox,
                          uint32_t uidvalidity, const struct store_uid_range *ranges, size_t n,
                          store_message_cb *cb, void *ctx, char **error_r)
{
	sqlite3_stmt *stmt = NULL;
	struct imap_mbox mb;
	sqlite3 *db;
	int64_t acct;
	int rc, ret;

	if (imap_read_begin(st, &db, error_r) < 0)
		return -1;
	ret = imap_account_id(db, account, &acct, error_r);
	if (ret > 0)
		ret = imap_mbox_find(db, acct, mailbox, &mb, error_r);
	if (ret > 0 && (mb.noselect || (uidvalidity != 0 && mb.uidvalidity != uidvalidity)))
		ret = 0;
	if (ret <= 0 || n == 0)
		goto out;
	ret = -1;
	/* one statement, stepped once per range over the primary key */
	if (sqlite_stmt_cached(db,
	                       "SELECT uid, modseq, size, internal_date, flags, blob FROM messages"
	                       " WHERE mailbox = ?1 AND uid BETWEEN ?2 AND ?3 ORDER BY uid",
	                       &stmt, error_r) < 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		sqlite3_reset(stmt);
		sqlite3_bind_int64(stmt, 1, mb.id);
		sqlite3_bind_int64(stmt, 2, ranges[i].first);
		sqlite3_bind_int64(stmt, 3, ranges[i].last);
		while ((rc = sqlite3_step(stmt)) == SQLITE_ROW)
			if (cb != NULL)
				imap_message_emit(stmt, cb, ctx);
		if (rc != SQLITE_DONE) {
			sqlite_db_fail(db, error_r, "database");
			goto out;
		}
	}
	ret = 1;
out:
	sqlite_stmt_release(stmt);
	imap_read_end(st, db);
	return ret;
}

/* ---- flags ---- */

struct flag_tok {
	const char *p;
	size_t len;
};

static bool flag_eq(struct flag_tok a, struct flag_tok b)
{
	return a.len == b.len && strncasecmp(a.p, b.p, a.len) == 0;
}

static bool flag_in(struct flag_tok f, const struct flag_tok *set, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (flag_eq(f, set[i]))
			return true;
	}
	return false;
}

/* The system flags in their RFC 9051 2.3.2 spelling. */
static const char *const imap_system_flags[] = {"\\Answered", "\\Flagged", "\\Deleted", "\\Seen",
                                                "\\Draft"};

/* Splits a normalized flag list (single spaces) into *toks_r (malloc'd, pointing
 * into s), duplicates dropped, system flags in their canonical spelling; drop
 * (optional) is left out. 1 ok (*n_r), -1 out of memory. */
static int flags_split(const char *s, bool canon, const char *drop, struct flag_tok **toks_r,
                       size_t *n_r, char **error_r)
{
	size_t cap = 1, n = 0;
	struct flag_tok *t;

	for (const char *p = s; *p != '\0'; p++)
		cap += *p == ' ';
	t = malloc(cap * sizeof(*t));
	if (t == NULL)
		return str_error(error_r, "out of memory");
	for (const char *p = s; *p != '\0';) {
		const char *e = strchr(p, ' ');
		struct flag_tok f = {p, e != NULL ? (size_t)(e - p) : strlen(p)};
		p += f.len + (e != NULL);
		if (f.len == 0)
			continue;
		if (drop != NULL && flag_eq(f, (struct flag_tok){drop, strlen(drop)}))
			continue;
		for (size_t i = 0;
		     canon && i < sizeof(imap_system_flags) / sizeof(*imap_system_flags); i++) {
			struct flag_tok sys = {imap_system_flags[i], strlen(imap_system_flags[i])};
			if (flag_eq(f, sys))
				f = sys;
		}
		if (!flag_in(f, t, n))
			t[n++] = f;
	}
	*toks_r = t;
	*n_r = n;
	return 1;
}

/* The flag list cur with rem removed and add added (set: add replaces it), as a
 * malloc'd string in *out_r and whether that differs from cur as a set in
 * *changed_r. 1 ok, -1 error (out of memory, or too long). */
static int flags_edit(const char *cur, const struct flag_tok *add, size_t nadd,
                      const struct flag_tok *rem, size_t nrem, bool set, char **out_r,
                      bool *changed_r, char **error_r)
{
	struct flag_tok *c = NULL, *res = NULL;
	size_t nc = 0, nres = 0, len = 0;
	char *out;
	int ret = -1;

	*out_r = NULL;
	if (flags_split(cur, false, NULL, &c, &nc, error_r) < 0)
		return -1;
	res = malloc((nc + nadd + 1) * sizeof(*res));
	if (res == NULL) {
		str_error(error_r, "out of memory");
		goto out;
	}
	for (size_t i = 0; !set && i < nc; i++) {
		if (!flag_in(c[i], rem, nrem))
			res[nres++] = c[i];
	}
	for (size_t i = 0; i < nadd; i++) {
		if (!flag_in(add[i], res, nres))
			res[nres++] = add[i];
	}
	bool same = nres == nc;
	for (size_t i = 0; same && i < nres; i++)
		same = flag_in(res[i], c, nc);
	for (size_t i = 0; i < nres; i++)
		len += res[i].len + 1;
	if (len > STORE_FLAGS_MAX) {
		str_error(error_r, "too many flags");
		goto out;
	}
	out = malloc(len + 1);
	if (out == NULL) {
		str_error(error_r, "out of memory");
		goto out;
	}
	len = 0;
	for (size_t i = 0; i < nres; i++) {
		if (i > 0)
			out[len++] = ' ';
		memcpy(out + len, res[i].p, res[i].len);
		len += res[i].len;
	}
	out[len] = '\0';
	*out_r = out;
	*changed_r = !same;
	ret = 1;
out:
	free(c);
	free(res);
	return ret;
}

struct flags_change {
	struct store_message_info m;
	char *flags, *blob;
};

int sqlite_message_flags(struct store_backend *st, const char *account, const char *mailbox,
                         const uint32_t *uids, size_t n, enum store_flags_op op, const char *flags,
                         uint64_t unchangedsince, const struct store_flags_ops *ops, void *ctx,
                         char **error_r)
{
	char *norm = NULL;
	struct flag_tok *toks = NULL;
	size_t ntoks = 0, nchanged = 0, capchanged = 0;
	struct flags_change *changed = NULL;
	struct imap_uids modified = {0};
	sqlite3_stmt *sel = NULL, *upd = NULL;
	struct imap_mbox mb;
	int64_t acct;
	int ret = -1, rc;

	if (op != STORE_FLAGS_SET && op != STORE_FLAGS_ADD && op != STORE_FLAGS_REMOVE)
		return str_error(error_r, "store_message_flags: invalid operation");
	if (unchangedsince > INT64_MAX)
		unchangedsince = INT64_MAX;
	/* \Recent is the server's (RFC 3501 2.3.2); it is not stored: dropped. */
	if (store_flags_normalize(flags, &norm, error_r) < 0)
		return -1;
	if (flags_split(norm, true, "\\Recent", &toks, &ntoks, error_r) < 0) {
		free(norm);
		return -1;
	}
	if (imap_begin(st, error_r) < 0)
		goto done;
	sqlite3 *db = st->wdb;
	if (imap_account_id(db, account, &acct, error_r) < 0)
		goto rollback;
	rc = imap_mbox_find(db, acct, mailbox, &mb, error_r);
	if (rc <= 0 || mb.noselect) {
		ret = rc < 0 ? -1 : 0;
		goto rollback;
	}
	uint64_t modseq = mb.modseq + 1;
	if (sqlite_stmt_cached(db,
	                       "SELECT flags, modseq, size, internal_date, blob FROM messages"
	                       " WHERE mailbox = ?1 AND uid = ?2",
	                       &sel, error_r) < 0 ||
	    sqlite_stmt_cached(db,
	                       "UPDATE messages SET flags = ?3, modseq = ?4"
	                       " WHERE mailbox = ?1 AND uid = ?2",
	                       &upd, error_r) < 0)
		goto rollback;
	for (size_t i = 0; i < n; i++) {
		sqlite3_bind_int64(sel, 1, mb.id);
		sqlite3_bind_int64(sel, 2, uids[i]);
		rc = sqlite3_step(sel);
		if (rc == SQLITE_DONE) {
			sqlite3_reset(sel);
			continue; /* expunged meanwhile */
		}
		if (rc != SQLITE_ROW) {
			sqlite_db_fail(db, error_r, "database");
			goto rollback;
		}
		const char *cur = (const char *)sqlite3_column_text(sel, 0);
		uint64_t cur_modseq = (uint64_t)sqlite3_column_int64(sel, 1);
		/* RFC 7162 3.1.3: an entry changed since UNCHANGEDSINCE is not touched,
		 * whether or not the operation would change it. */
		if (unchangedsince > 0 && cur_modseq > unchangedsince) {
			sqlite3_reset(sel);
			if (imap_uids_add(&modified, uids[i], error_r) < 0)
				goto rollback;
			continue;
		}
		char *nf = NULL;
		bool ch = false;
		if (op == STORE_FLAGS_REMOVE)
			rc = flags_edit(cur != NULL ? cur : "", NULL, 0, toks, ntoks, false, &nf,
			                &ch, error_r);
		else
			rc = flags_edit(cur != NULL ? cur : "", toks, ntoks, NULL, 0,
			                op == STORE_FLAGS_SET, &nf, &ch, error_r);
		if (rc < 0) {
			sqlite3_reset(sel);
			goto rollback;
		}
		if (!ch) {
			free(nf);
			sqlite3_reset(sel);
			continue;
		}
		if (nchanged == capchanged) {
			size_t cap = capchanged == 0 ? 16 : capchanged * 2;
			struct flags_change *v = realloc(changed, cap * sizeof(*v));
			if (v == NULL) {
				free(nf);
				sqlite3_reset(sel);
				str_error(error_r, "out of memory");
				goto rollback;
			}
			changed = v;
			capchanged = cap;
		}
		struct flags_change *c = &changed[nchanged];
		*c = (struct flags_change){.flags = nf};
		c->m.uid = uids[i];
		c->m.modseq = modseq;
		c->m.size = (uint64_t)sqlite3_column_int64(sel, 2);
		c->m.internal_date = sqlite3_column_int64(sel, 3);
		if (sqlite_column_dup(sel, 4, &c->blob, error_r) < 0) {
			free(nf);
			sqlite3_reset(sel);
			goto rollback;
		}
		nchanged++;
		sqlite3_reset(sel);
		sqlite3_bind_int64(upd, 1, mb.id);
		sqlite3_bind_int64(upd, 2, uids[i]);
		sqlite3_bind_text(upd, 3, nf, -1, SQLITE_STATIC);
		sqlite3_bind_int64(upd, 4, (int64_t)modseq);
		rc = imap_step_done(db, upd, error_r);
		sqlite3_reset(upd);
		if (rc < 0)
			goto rollback;
	}
	if (nchanged > 0 && imap_exec(db, "UPDATE mailboxes SET highestmodseq = ?2 WHERE id = ?1",
	                              2, mb.id, (int64_t)modseq, NULL, NULL, error_r) < 0)
		goto rollback;
	sqlite_stmt_release(sel);
	sqlite_stmt_release(upd);
	sel = upd = NULL;
	ret = imap_end(st, 1, nchanged > 0, error_r);
	goto done;
rollback:
	sqlite_stmt_release(sel);
	sqlite_stmt_release(upd);
	ret = imap_end(st, ret, false, error_r);
done:
	/* Reported once committed: a caller never hears of a change that was
	 * rolled back. */
	for (size_t i = 0; i < nchanged; i++) {
		if (ret == 1 && ops != NULL && ops->changed != NULL) {
			changed[i].m.flags = changed[i].flags;
			changed[i].m.blob_id = changed[i].blob != NULL ? changed[i].blob : "";
			ops->changed(ctx, &changed[i].m);
		}
		free(changed[i].flags);
		free(changed[i].blob);
	}
	for (size_t i = 0; ret == 1 && ops != NULL && ops->modified != NULL && i < modified.n; i++)
		ops->modified(ctx, modified.v[i]);
	free(changed);
	free(modified.v);
	free(toks);
	free(norm);
	return ret;
}

/* ---- expunge of \Deleted entries ---- */

static int uid_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

int sqlite_mailbox_expunge_deleted(struct store_backend *st, const char *account,
                                   const char *mailbox, const uint32_t *only, size_t nonly,
                                   void (*expunged)(void *ctx, uint32_t uid), void *ctx,
                                   char **error_r)
{
	struct imap_uids del = {0}, removed = {0};
	uint32_t *sorted = NULL;
	sqlite3_stmt *stmt = NULL;
	struct imap_mbox mb;
	uint64_t modseq = 0;
	int64_t acct;
	int ret = -1, rc;

	if (only != NULL && nonly > 0) {
		sorted = malloc(nonly * sizeof(*sorted));
		if (sorted == NULL)
			return str_error(error_r, "out of memory");
		memcpy(sorted, only, nonly * sizeof(*sorted));
		qsort(sorted, nonly, sizeof(*sorted), uid_cmp);
	}
	if (imap_begin(st, error_r) < 0) {
		free(sorted);
		return -1;
	}
	sqlite3 *db = st->wdb;
	if (imap_account_id(db, account, &acct, error_r) < 0)
		goto rollback;
	rc = imap_mbox_find(db, acct, mailbox, &mb, error_r);
	if (rc <= 0 || mb.noselect || (only != NULL && nonly == 0)) {
		ret = rc < 0 ? -1 : 0;
		goto rollback;
	}
	if (only == NULL) {
		if (sqlite_stmt_cached(
		        db,
		        "SELECT uid FROM messages WHERE mailbox = ?1"
		        " AND (' ' || flags || ' ') LIKE '% \\Deleted %' ORDER BY uid",
		        &stmt, error_r) < 0)
			goto rollback;
		sqlite3_bind_int64(stmt, 1, mb.id);
		while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
			if (imap_uids_add(&del, (uint32_t)sqlite3_column_int64(stmt, 0), error_r) <
			    0)
				goto rollback;
		}
	} else {
		if (sqlite_stmt_cached(db,
		                       "SELECT 1 FROM messages WHERE mailbox = ?1 AND uid = ?2"
		                       " AND (' ' || flags || ' ') LIKE '% \\Deleted %'",
		                       &stmt, error_r) < 0)
			goto rollback;
		rc = SQLITE_DONE;
		for (size_t i = 0; i < nonly; i++) {
			if (i > 0 && sorted[i] == sorted[i - 1])
				continue;
			sqlite3_bind_int64(stmt, 1, mb.id);
			sqlite3_bind_int64(stmt, 2, sorted[i]);
			rc = sqlite3_step(stmt);
			sqlite3_reset(stmt);
			if (rc == SQLITE_ROW && imap_uids_add(&del, sorted[i], error_r) < 0)
				goto rollback;
			if (rc != SQLITE_ROW && rc != SQLITE_DONE)
				break;
			rc = SQLITE_DONE;
		}
	}
	if (rc != SQLITE_DONE) {
		sqlite_db_fail(db, error_r, "database");
		goto rollback;
	}
	sqlite_stmt_release(stmt);
	stmt = NULL;
	long k = imap_entries_remove(st, mb.id, del.v, del.n, true, &modseq, &removed, error_r);
	if (k < 0)
		goto rollback;
	ret = imap_end(st, k > INT32_MAX ? INT32_MAX : (int)k, k > 0, error_r);
	goto done;
rollback:
	sqlite_stmt_release(stmt);
	ret = imap_end(st, ret, false, error_r);
done:
	if (ret > 0) {
		imap_sweep(st);
		for (size_t i = 0; expunged != NULL && i < removed.n; i++)
			expunged(ctx, removed.v[i]);
	}
	free(del.v);
	free(removed.v);
	free(sorted);
	return ret;
}

/* ---- copy / move ---- */

int sqlite_message_copy(struct store_backend *st, const char *account, const char *from,
                        const char *to, const uint32_t *uids, size_t n, bool move,
                        struct store_copy_result *r, char **error_r)
{
	static const struct flag_tok junk = {"$Junk", 5}, notjunk = {"$NotJunk", 8};
	sqlite3_stmt *sel = NULL, *ins = NULL, *ref = NULL;
	struct imap_mbox src, dst;
	int64_t acct;
	int ret = -1, rc;

	memset(r, 0, sizeof(*r));
	if (n > 0) {
		r->src_uids = malloc(n * sizeof(*r->src_uids));
		r->dst_uids = malloc(n * sizeof(*r->dst_uids));
		if (r->src_uids == NULL || r->dst_uids == NULL) {
			store_copy_result_free(r);
			return str_error(error_r, "out of memory");
		}
	}
	if (imap_begin(st, error_r) < 0) {
		store_copy_result_free(r);
		return -1;
	}
	sqlite3 *db = st->wdb;
	if (imap_account_id(db, account, &acct, error_r) < 0)
		goto rollback;
	rc = imap_mbox_find(db, acct, from, &src, error_r);
	if (rc <= 0 || src.noselect) {
		ret = rc < 0 ? -1 : 0;
		goto rollback;
	}
	rc = imap_mbox_find(db, acct, to, &dst, error_r);
	if (rc < 0)
		goto rollback;
	if (rc == 0 || dst.noselect) {
		ret = STORE_NOMAILBOX;
		str_error(error_r, "no mailbox %s", to);
		goto rollback;
	}
	if (move && src.id == dst.id) {
		ret = STORE_CANNOT;
		str_error(error_r, "cannot move messages into the mailbox they are in");
		goto rollback;
	}
	/* Junk training: where a message is put says what the user thinks of it.
	 * Copies count too: a client without MOVE copies, then expunges. */
	bool into_junk = strcmp(dst.special_use, "\\Junk") == 0;
	bool out_of_junk = !into_junk && strcmp(src.special_use, "\\Junk") == 0 &&
	                   strcmp(dst.special_use, "\\Trash") != 0;
	uint64_t modseq = dst.modseq + 1;
	uint32_t uidnext = dst.uidnext;
	if (sqlite_stmt_cached(db,
	                       "SELECT blob, size, internal_date, flags FROM messages"
	                       " WHERE mailbox = ?1 AND uid = ?2",
	                       &sel, error_r) < 0 ||
	    sqlite_stmt_cached(db,
	                       "INSERT INTO messages (mailbox, uid, blob, size, internal_date,"
	                       " flags, modseq) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
	                       &ins, error_r) < 0 ||
	    sqlite_stmt_cached(db, "UPDATE blobs SET refcount = refcount + 1 WHERE id = ?1", &ref,
	                       error_r) < 0)
		goto rollback;
	for (size_t i = 0; i < n; i++) {
		sqlite3_bind_int64(sel, 1, src.id);
		sqlite3_bind_int64(sel, 2, uids[i]);
		rc = sqlite3_step(sel);
		if (rc == SQLITE_DONE) {
			sqlite3_reset(sel);
			continue;
		}
		if (rc != SQLITE_ROW) {
			sqlite_db_fail(db, error_r, "database");
			goto rollback;
		}
		if (uidnext == 0 || uidnext >= UINT32_MAX) {
			sqlite3_reset(sel);
			str_error(error_r, "mailbox %s has run out of UIDs", to);
			goto rollback;
		}
		const char *cur = (const char *)sqlite3_column_text(sel, 3);
		char *nf = NULL;
		bool ch;
		if (into_junk || out_of_junk)
			rc = flags_edit(cur != NULL ? cur : "", into_junk ? &junk : &notjunk, 1,
			                into_junk ? &notjunk : &junk, 1, false, &nf, &ch, error_r);
		else
			rc = (nf = str_dup(cur != NULL ? cur : "")) != NULL
			         ? 1
			         : str_error(error_r, "out of memory");
		if (rc < 0) {
			sqlite3_reset(sel);
			goto rollback;
		}
		sqlite3_bind_int64(ins, 1, dst.id);
		sqlite3_bind_int64(ins, 2, uidnext);
		sqlite3_bind_value(ins, 3, sqlite3_column_value(sel, 0));
		sqlite3_bind_int64(ins, 4, sqlite3_column_int64(sel, 1));
		sqlite3_bind_int64(ins, 5, sqlite3_column_int64(sel, 2));
		sqlite3_bind_text(ins, 6, nf, -1, free);
		sqlite3_bind_int64(ins, 7, (int64_t)modseq);
		rc = imap_step_done(db, ins, error_r);
		sqlite3_reset(ins);
		sqlite3_clear_bindings(ins);
		/* A move hands the source entry's reference to the copy. */
		if (rc > 0 && !move) {
			sqlite3_bind_value(ref, 1, sqlite3_column_value(sel, 0));
			rc = imap_step_done(db, ref, error_r);
			sqlite3_reset(ref);
		}
		sqlite3_reset(sel);
		if (rc < 0)
			goto rollback;
		r->src_uids[r->n] = uids[i];
		r->dst_uids[r->n] = uidnext++;
		r->n++;
	}
	sqlite_stmt_release(sel);
	sqlite_stmt_release(ins);
	sqlite_stmt_release(ref);
	sel = ins = ref = NULL;
	if (r->n > 0) {
		if (imap_exec(db, "UPDATE mailboxes SET uidnext = ?2 WHERE id = ?1", 2, dst.id,
		              uidnext, NULL, NULL, error_r) < 0 ||
		    imap_exec(db, "UPDATE mailboxes SET highestmodseq = ?2 WHERE id = ?1", 2,
		              dst.id, (int64_t)modseq, NULL, NULL, error_r) < 0)
			goto rollback;
		uint64_t src_modseq = 0;
		if (move && imap_entries_remove(st, src.id, r->src_uids, r->n, false, &src_modseq,
		                                NULL, error_r) < 0)
			goto rollback;
	}
	r->uidvalidity = dst.uidvalidity;
	ret = imap_end(st, 1, r->n > 0, error_r);
	if (ret < 0)
		store_copy_result_free(r);
	return ret;
rollback:
	sqlite_stmt_release(sel);
	sqlite_stmt_release(ins);
	sqlite_stmt_release(ref);
	store_copy_result_free(r);
	return imap_end(st, ret, false, error_r);
}

/* ---- create, delete, rename ---- */

static bool imap_special_use_ok(const char *su)
{
	static const char *const uses[] = {"\\Archive", "\\Drafts", "\\Junk",   "\\Sent",
	                                   "\\Trash",   "\\All",    "\\Flagged"};

	for (size_t i = 0; i < sizeof(uses) / sizeof(uses[0]); i++) {
		if (strcmp(su, uses[i]) == 0)
			return true;
	}
	return false;
}

static int imap_mbox_insert(sqlite3 *db, int64_t acct, const char *name, const char *special_use,
                            uint32_t uidvalidity, int64_t *id_r, char **error_r)
{
	sqlite3_stmt *stmt;
	int rc;

	if (sqlite_stmt_cached(db,
	                       "INSERT INTO mailboxes (account, name, special_use, uidvalidity)"
	                       " VALUES (?1, ?2, ?3, ?4)",
	                       &stmt, error_r) < 0)
		return -1;
	sqlite3_bind_int64(stmt, 1, acct);
	sqlite3_bind_text(stmt, 2, name, -1, SQLITE_STATIC);
	if (special_use != NULL)
		sqlite3_bind_text(stmt, 3, special_use, -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 4, uidvalidity);
	rc = imap_step_done(db, stmt, error_r);
	sqlite_stmt_release(stmt);
	if (rc > 0 && id_r != NULL)
		*id_r = sqlite3_last_insert_rowid(db);
	return rc;
}

/* Creates the superiors of name that do not exist (a, a/b for a/b/c) as
 * ordinary mailboxes, with uidvalidity. 1 ok, -1 error. */
static int imap_superiors_create(sqlite3 *db, int64_t acct, const char *name, uint32_t uidvalidity,
                                 char **error_r)
{
	size_t len = strlen(name);
	char *buf = malloc(len + 1);
	struct imap_mbox mb;
	int rc = 1;

	if (buf == NULL)
		return str_error(error_r, "out of memory");
	for (size_t i = 1; rc > 0 && i < len; i++) {
		if (name[i] != '/')
			continue;
		memcpy(buf, name, i);
		buf[i] = '\0';
		rc = imap_mbox_find(db, acct, store_mailbox_normalize(buf), &mb, error_r);
		if (rc == 0)
			rc = imap_mbox_insert(db, acct, store_mailbox_normalize(buf), NULL,
			                      uidvalidity, NULL, error_r);
	}
	free(buf);
	return rc < 0 ? -1 : 1;
}

int sqlite_mailbox_create(struct store_backend *st, const char *account, const char *name,
                          const char *special_use, char **error_r)
{
	struct imap_mbox mb;
	uint32_t uidvalidity;
	int64_t acct;
	int ret = -1, rc;

	if (special_use != NULL && !imap_special_use_ok(special_use)) {
		str_error(error_r, "unknown special-use attribute %s", special_use);
		return STORE_CANNOT;
	}
	if (imap_begin(st, error_r) < 0)
		return -1;
	sqlite3 *db = st->wdb;
	if (imap_account_id(db, account, &acct, error_r) < 0)
		goto rollback;
	rc = imap_mbox_find(db, acct, name, &mb, error_r);
	if (rc < 0)
		goto rollback;
	if (rc == 1 && !mb.noselect) {
		str_error(error_r, "mailbox %s exists", name);
		ret = STORE_EXISTS;
		goto rollback;
	}
	if (sqlite_uidvalidity_next(db, &uidvalidity, error_r) < 0)
		goto rollback;
	if (rc == 1) {
		/* A \Noselect name made selectable again: a new mailbox as far as
		 * clients can tell (new UIDVALIDITY, UIDs from 1, no expunge log). */
		sqlite3_stmt *stmt;
		if (sqlite_stmt_cached(db,
		                       "UPDATE mailboxes SET noselect = 0, uidvalidity = ?2,"
		                       " uidnext = 1, special_use = ?3, expunge_floor = 0"
		                       " WHERE id = ?1",
		                       &stmt, error_r) < 0)
			goto rollback;
		sqlite3_bind_int64(stmt, 1, mb.id);
		sqlite3_bind_int64(stmt, 2, uidvalidity);
		if (special_use != NULL)
			sqlite3_bind_text(stmt, 3, special_use, -1, SQLITE_STATIC);
		rc = imap_step_done(db, stmt, error_r);
		sqlite_stmt_release(stmt);
		if (rc < 0 || imap_exec(db, "DELETE FROM expunged WHERE mailbox = ?1", 1, mb.id, 0,
		                        NULL, NULL, error_r) < 0)
			goto rollback;
	} else if (imap_superiors_create(db, acct, name, uidvalidity, error_r) < 0 ||
	           imap_mbox_insert(db, acct, name, special_use, uidvalidity, NULL, error_r) < 0) {
		goto rollback;
	}
	return imap_end(st, 1, true, error_r);
rollback:
	return imap_end(st, ret, false, error_r);
}

/* Removes every entry of mailbox id and the mailbox itself (with its expunge
 * log), inside the writer's transaction. 1 ok, -1 error. */
static int imap_mbox_drop(sqlite3 *db, int64_t id, char **error_r)
{
	static const char *const steps[] = {
	    "UPDATE blobs SET refcount = refcount -"
	    "  (SELECT count(*) FROM messages m WHERE m.mailbox = ?1 AND m.blob = blobs.id)"
	    " WHERE id IN (SELECT blob FROM messages WHERE mailbox = ?1)",
	    "DELETE FROM messages WHERE mailbox = ?1",
	    "DELETE FROM expunged WHERE mailbox = ?1",
	    "DELETE FROM mailboxes WHERE id = ?1",
	};

	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		if (imap_exec(db, steps[i], 1, id, 0, NULL, NULL, error_r) < 0)
			return -1;
	}
	return 1;
}

int sqlite_mailbox_delete(struct store_backend *st, const char *account, const char *name,
                          char **error_r)
{
	struct imap_uids all = {0};
	struct imap_mbox mb;
	uint64_t modseq = 0;
	int64_t acct;
	int ret = -1, rc;

	if (strcmp(name, "INBOX") == 0) {
		str_error(error_r, "INBOX cannot be deleted");
		return STORE_CANNOT;
	}
	if (imap_begin(st, error_r) < 0)
		return -1;
	sqlite3 *db = st->wdb;
	if (imap_account_id(db, account, &acct, error_r) < 0)
		goto rollback;
	rc = imap_mbox_find(db, acct, name, &mb, error_r);
	if (rc <= 0) {
		ret = rc;
		goto rollback;
	}
	rc = imap_has_children(db, acct, name, error_r);
	if (rc < 0)
		goto rollback;
	if (rc == 1 && mb.noselect) {
		/* RFC 9051 6.3.4: a \Noselect name with inferiors cannot be deleted */
		str_error(error_r, "mailbox %s has inferior mailboxes", name);
		ret = STORE_CANNOT;
		goto rollback;
	}
	if (rc == 1) {
		/* Its inferiors keep it as a \Noselect name: the entries go (logged,
		 * the mailbox stays) and so does its special use. */
		if (imap_all_uids(db, mb.id, &all, error_r) < 0 ||
		    imap_entries_remove(st, mb.id, all.v, all.n, true, &modseq, NULL, error_r) <
		        0 ||
		    imap_exec(db,
		              "UPDATE mailboxes SET noselect = 1, special_use = NULL WHERE id = ?1",
		              1, mb.id, 0, NULL, NULL, error_r) < 0)
			goto rollback;
	} else if (imap_mbox_drop(db, mb.id, error_r) < 0) {
		goto rollback;
	}
	free(all.v);
	ret = imap_end(st, 1, true, error_r);
	if (ret > 0)
		imap_sweep(st);
	return ret;
rollback:
	free(all.v);
	return imap_end(st, ret, false, error_r);
}

/* RENAME INBOX (RFC 9051 6.3.6): its entries move to the new mailbox to (new
 * UIDs in UID order, flags and dates kept) and INBOX stays, empty. */
static int imap_rename_inbox(struct store_backend *st, int64_t acct, const struct imap_mbox *inbox,
                             const char *to, char **error_r)
{
	sqlite3 *db = st->wdb;
	struct imap_uids all = {0};
	uint32_t uidvalidity;
	uint64_t modseq = 0;
	int64_t id;
	int ret = -1;

	if (sqlite_uidvalidity_next(db, &uidvalidity, error_r) < 0 ||
	    imap_superiors_create(db, acct, to, uidvalidity, error_r) < 0 ||
	    imap_mbox_insert(db, acct, to, NULL, uidvalidity, &id, error_r) < 0 ||
	    imap_all_uids(db, inbox->id, &all, error_r) < 0)
		goto out;
	if (all.n >= UINT32_MAX - 1) {
		str_error(error_r, "too many messages");
		goto out;
	}
	/* The new entries are numbered in INBOX's UID order: the k-th gets UID k. */
	if (imap_exec(
	        db,
	        "INSERT INTO messages (mailbox, uid, blob, size, internal_date, flags, modseq)"
	        " SELECT ?2, row_number() OVER (ORDER BY uid), blob, size, internal_date,"
	        "   flags, 1 FROM messages WHERE mailbox = ?1",
	        2, inbox->id, id, NULL, NULL, error_r) < 0 ||
	    imap_exec(db, "UPDATE mailboxes SET uidnext = ?2 WHERE id = ?1", 2, id,
	              (int64_t)all.n + 1, NULL, NULL, error_r) < 0 ||
	    imap_entries_remove(st, inbox->id, all.v, all.n, false, &modseq, NULL, error_r) < 0)
		goto out;
	ret = 1;
out:
	free(all.v);
	return ret;
}

/* The new names of from's inferiors must be valid names too. 1 ok, STORE_CANNOT,
 * -1 error. */
static int imap_rename_check(sqlite3 *db, int64_t acct, const char *from, const char *to,
                             char **error_r)
{
	sqlite3_stmt *stmt;
	size_t flen = strlen(from), tlen = strlen(to);
	unsigned tdepth = 1;
	int rc, ret = 1;

	for (const char *p = to; *p != '\0'; p++)
		tdepth += *p == '/';
	if (sqlite_stmt_cached(db,
	                       "SELECT name FROM mailboxes WHERE account = ?1"
	                       " AND name > ?2 || '/' AND name < ?2 || '0'",
	                       &stmt, error_r) < 0)
		return -1;
	sqlite3_bind_int64(stmt, 1, acct);
	sqlite3_bind_text(stmt, 2, from, -1, SQLITE_STATIC);
	while (ret == 1 && (rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(stmt, 0);
		size_t len = name != NULL ? strlen(name) : flen;
		unsigned depth = tdepth;
		for (const char *p = name != NULL ? name + flen : ""; *p != '\0'; p++)
			depth += *p == '/';
		if (len - flen + tlen > STORE_MAILBOX_NAME_MAX || depth > STORE_MAILBOX_DEPTH_MAX) {
			str_error(error_r, "the new name of %s would be too long or too deep",
			          name);
			ret = STORE_CANNOT;
		}
	}
	if (ret == 1 && rc != SQLITE_DONE)
		ret = sqlite_db_fail(db, error_r, "database");
	sqlite_stmt_release(stmt);
	return ret;
}

int sqlite_mailbox_rename(struct store_backend *st, const char *account, const char *from,
                          const char *to, char **error_r)
{
	struct imap_mbox mb, other;
	size_t flen = strlen(from);
	int64_t acct;
	int ret = -1, rc;

	if (imap_begin(st, error_r) < 0)
		return -1;
	sqlite3 *db = st->wdb;
	if (imap_account_id(db, account, &acct, error_r) < 0)
		goto rollback;
	rc = imap_mbox_find(db, acct, from, &mb, error_r);
	if (rc <= 0) {
		ret = rc;
		goto rollback;
	}
	if (strcmp(from, to) == 0 || (strncmp(to, from, flen) == 0 && to[flen] == '/')) {
		str_error(error_r, "cannot rename %s to itself or to one of its inferiors", from);
		ret = STORE_CANNOT;
		goto rollback;
	}
	rc = imap_mbox_find(db, acct, to, &other, error_r);
	if (rc != 0) {
		if (rc > 0) {
			str_error(error_r, "mailbox %s exists", to);
			ret = STORE_EXISTS;
		}
		goto rollback;
	}
	if (strcmp(from, "INBOX") == 0) {
		if (imap_rename_inbox(st, acct, &mb, to, error_r) < 0)
			goto rollback;
		return imap_end(st, 1, true, error_r);
	}
	rc = imap_rename_check(db, acct, from, to, error_r);
	if (rc != 1) {
		ret = rc;
		goto rollback;
	}
	uint32_t uidvalidity;
	if (sqlite_uidvalidity_next(db, &uidvalidity, error_r) < 0 ||
	    imap_superiors_create(db, acct, to, uidvalidity, error_r) < 0)
		goto rollback;
	/* from and every from/... keep their ids (and so UIDs, UIDVALIDITY,
	 * entries); the subscriptions of those names move with them. */
	sqlite3_stmt *stmt;
	static const char *const steps[] = {
	    "UPDATE mailboxes SET name = ?3 || substr(name, length(?2) + 1) WHERE account = ?1"
	    " AND (name = ?2 OR (name > ?2 || '/' AND name < ?2 || '0'))",
	    "UPDATE OR REPLACE subscriptions SET name = ?3 || substr(name, length(?2) + 1)"
	    " WHERE account = ?1 AND (name = ?2 OR (name > ?2 || '/' AND name < ?2 || '0'))",
	};
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		if (sqlite_stmt_cached(db, steps[i], &stmt, error_r) < 0)
			goto rollback;
		sqlite3_bind_int64(stmt, 1, acct);
		sqlite3_bind_text(stmt, 2, from, -1, SQLITE_STATIC);
		sqlite3_bind_text(stmt, 3, to, -1, SQLITE_STATIC);
		rc = sqlite3_step(stmt);
		sqlite_stmt_release(stmt);
		if ((rc & 0xff) == SQLITE_CONSTRAINT) {
			str_error(error_r, "a mailbox under %s exists", to);
			ret = STORE_EXISTS;
			goto rollback;
		}
		if (rc != SQLITE_DONE) {
			sqlite_db_fail(db, error_r, "database");
			goto rollback;
		}
	}
	return imap_end(st, 1, true, error_r);
rollback:
	return imap_end(st, ret, false, error_r);
}

/* ---- subscriptions ---- */

int sqlite_mailbox_subscribe(struct store_backend *st, const char *account, const char *name,
                             bool on, char **error_r)
{
	int64_t acct;
	int ret = -1;

	if (imap_begin(st, error_r) < 0)
		return -1;
	sqlite3 *db = st->wdb;
	if (imap_account_id(db, account, &acct, error_r) < 0 ||
	    imap_exec(db,
	              on ? "INSERT OR IGNORE INTO subscriptions (account, name) VALUES (?1, ?2)"
	                 : "DELETE FROM subscriptions WHERE account = ?1 AND name = ?2",
	              1, acct, 0, name, NULL, error_r) < 0)
		return imap_end(st, ret, false, error_r);
	return imap_end(st, 1, true, error_r);
}

int sqlite_subscription_list(struct store_backend *st, const char *account, store_name_cb *cb,
                             void *ctx, char **error_r)
{
	sqlite3_stmt *stmt = NULL;
	sqlite3 *db;
	int64_t acct;
	int rc, ret = -1;

	if (imap_read_begin(st, &db, error_r) < 0)
		return -1;
	if (imap_account_id(db, account, &acct, error_r) < 0 ||
	    sqlite_stmt_cached(db,
	                       "SELECT name FROM subscriptions WHERE account = ?1"
	                       " ORDER BY name <> 'INBOX', name",
	                       &stmt, error_r) < 0)
		goto out;
	sqlite3_bind_int64(stmt, 1, acct);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(stmt, 0);
		cb(ctx, name != NULL ? name : "");
	}
	ret = rc == SQLITE_DONE ? 1 : sqlite_db_fail(db, error_r, "database");
out:
	sqlite_stmt_release(stmt);
	imap_read_end(st, db);
	return ret;
}

/* ---- pruning the expunge log ---- */

/* The first column of the first row of a cached query with two int64
 * parameters, as *v_r (0 when there is no row or it is NULL). 1, -1. */
static int imap_query_int(sqlite3 *db, const char *sql, int64_t a, int64_t b, int64_t *v_r,
                          char **error_r)
{
	sqlite3_stmt *stmt;
	int rc;

	*v_r = 0;
	if (sqlite_stmt_cached(db, sql, &stmt, error_r) < 0)
		return -1;
	sqlite3_bind_int64(stmt, 1, a);
	sqlite3_bind_int64(stmt, 2, b);
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW)
		*v_r = sqlite3_column_int64(stmt, 0);
	else if (rc != SQLITE_DONE)
		sqlite_db_fail(db, error_r, "database");
	sqlite_stmt_release(stmt);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 1 : -1;
}

/* Prunes mailbox mbox's log in one write transaction: below the MODSEQ that
 * keeps at most max_rows entries and none older than cutoff. The number of
 * entries removed, or -1. */
static int64_t imap_expunge_log_prune_one(struct store_backend *st, int64_t mbox, int64_t max_rows,
                                          int64_t cutoff, char **error_r)
{
	int64_t by_rows, by_age, removed = 0;

	if (imap_begin(st, error_r) < 0)
		return -1;
	sqlite3 *db = st->wdb;
	/* the MODSEQ of the newest entry past the max_rows newest: removing every
	 * entry at or below it leaves at most max_rows */
	if (imap_query_int(db,
	                   "SELECT modseq FROM expunged INDEXED BY expunged_modseq"
	                   " WHERE mailbox = ?1 ORDER BY modseq DESC LIMIT 1 OFFSET ?2",
	                   mbox, max_rows, &by_rows, error_r) < 0 ||
	    imap_query_int(db, "SELECT max(modseq) FROM expunged WHERE mailbox = ?1 AND time < ?2",
	                   mbox, cutoff, &by_age, error_r) < 0)
		return imap_end(st, -1, false, error_r);
	int64_t floor = by_rows > by_age ? by_rows : by_age;
	if (floor > 0) {
		if (imap_exec(db, "DELETE FROM expunged WHERE mailbox = ?1 AND modseq <= ?2", 2,
		              mbox, floor, NULL, NULL, error_r) < 0)
			return imap_end(st, -1, false, error_r);
		removed = sqlite3_changes64(db);
		if (imap_exec(db,
		              "UPDATE mailboxes SET expunge_floor = max(expunge_floor, ?2)"
		              " WHERE id = ?1",
		              2, mbox, floor, NULL, NULL, error_r) < 0)
			return imap_end(st, -1, false, error_r);
	}
	return imap_end(st, 1, floor > 0, error_r) < 0 ? -1 : removed;
}

int sqlite_expunge_log_prune(struct store_backend *st, uint64_t max_age, uint64_t max_rows,
                             uint64_t *removed_r, char **error_r)
{
	int64_t now = (int64_t)time(NULL);
	int64_t cutoff = max_age >= (uint64_t)now ? 0 : now - (int64_t)max_age;
	int64_t rows = max_rows > INT64_MAX ? INT64_MAX : (int64_t)max_rows;
	int64_t *ids = NULL;
	size_t n = 0, cap = 0;
	sqlite3_stmt *stmt = NULL;
	sqlite3 *db;
	int rc, ret = -1;

	if (removed_r != NULL)
		*removed_r = 0;
	/* The mailboxes to prune, found on a reader: the writer is taken per
	 * mailbox only, so deliveries and IMAP commands wait at most for one. */
	if (imap_read_begin(st, &db, error_r) < 0)
		return -1;
	if (sqlite_stmt_cached(db,
	                       "SELECT mailbox FROM expunged GROUP BY mailbox"
	                       " HAVING count(*) > ?1 OR min(time) < ?2",
	                       &stmt, error_r) < 0)
		goto out;
	sqlite3_bind_int64(stmt, 1, rows);
	sqlite3_bind_int64(stmt, 2, cutoff);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			int64_t *p = reallocarray(ids, ncap, sizeof(*p));
			if (p == NULL) {
				str_error(error_r, "out of memory");
				goto out;
			}
			ids = p;
			cap = ncap;
		}
		ids[n++] = sqlite3_column_int64(stmt, 0);
	}
	if (rc != SQLITE_DONE) {
		sqlite_db_fail(db, error_r, "database");
		goto out;
	}
	ret = 1;
out:
	sqlite_stmt_release(stmt);
	imap_read_end(st, db);
	for (size_t i = 0; ret > 0 && i < n; i++) {
		int64_t k = imap_expunge_log_prune_one(st, ids[i], rows, cutoff, error_r);
		if (k < 0)
			ret = -1;
		else if (removed_r != NULL)
			*removed_r += (uint64_t)k;
	}
	free(ids);
	return ret;
}
