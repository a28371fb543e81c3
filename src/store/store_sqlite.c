/* The SQLite backend: connections, open/close, the ops table.
 * See store_sqlite_int.h for the files of the backend and how it works. */
#include "store/store_sqlite_int.h"

static void sqlite_close(struct store_backend **stp);

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

int sqlite_db_fail(sqlite3 *db, char **error_r, const char *what)
{
	str_error(error_r, "%s: %s", what, sqlite3_errmsg(db));
	return -1;
}

int sqlite_db_exec(sqlite3 *db, const char *sql, char **error_r)
{
	char *msg = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		str_error(error_r, "database: %s", msg != NULL ? msg : sqlite3_errmsg(db));
		sqlite3_free(msg);
		return -1;
	}
	return 1;
}

int sqlite_db_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **stmt_r, char **error_r)
{
	if (sqlite3_prepare_v2(db, sql, -1, stmt_r, NULL) != SQLITE_OK) {
		*stmt_r = NULL;
		return sqlite_db_fail(db, error_r, "database prepare");
	}
	return 1;
}

void sqlite_db_rollback(sqlite3 *db)
{
	/* Fails harmlessly when SQLite already rolled back (e.g. SQLITE_FULL). */
	sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
}

/* ---- connections ---- */

int sqlite_conn_open(struct store_backend *st, bool writer, sqlite3 **db_r, char **error_r)
{
	char path[4096];
	sqlite3 *db = NULL;
	int n;

	n = snprintf(path, sizeof(path), "%s/%s", st->data_dir, STORE_DB_NAME);
	if (n < 0 || (size_t)n >= sizeof(path)) {
		str_error(error_r, "data_dir path too long");
		return -1;
	}
	/* NOMUTEX: each connection is used by one thread at a time (pool / wmu). */
	if (sqlite3_open_v2(path, &db,
	                    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
	                    NULL) != SQLITE_OK) {
		str_error(error_r, "open %s: %s", path,
		          db != NULL ? sqlite3_errmsg(db) : "out of memory");
		sqlite_conn_close(db);
		return -1;
	}
	sqlite3_busy_timeout(db, STORE_BUSY_TIMEOUT_MS);
	if (sqlite_db_exec(db, "PRAGMA foreign_keys=ON", error_r) < 0)
		goto fail;
	if (writer) {
		sqlite3_stmt *stmt;
		const char *mode;

		/* journal_mode is persistent in the file; setting it again is a no-op. */
		if (sqlite_db_prepare(db, "PRAGMA journal_mode=WAL", &stmt, error_r) < 0)
			goto fail;
		if (sqlite3_step(stmt) != SQLITE_ROW) {
			sqlite3_finalize(stmt);
			sqlite_db_fail(db, error_r, "set WAL mode");
			goto fail;
		}
		mode = (const char *)sqlite3_column_text(stmt, 0);
		if (mode == NULL || strcasecmp(mode, "wal") != 0) {
			str_error(error_r, "database %s: cannot enable WAL (mode %s)", path,
			          mode != NULL ? mode : "?");
			sqlite3_finalize(stmt);
			goto fail;
		}
		sqlite3_finalize(stmt);
	}
	/* With WAL, FULL fsyncs the WAL at every COMMIT: that is the durability point
	 * of a delivery. NORMAL would only sync at checkpoints. */
	if (sqlite_db_exec(db, st->fsync ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=OFF", error_r) <
	    0)
		goto fail;
	*db_r = db;
	return 1;
fail:
	sqlite_conn_close(db);
	return -1;
}

int sqlite_reader_get(struct store_backend *st, sqlite3 **db_r, char **error_r)
{
	struct store_conn *c;

	pthread_mutex_lock(&st->rmu);
	c = st->idle;
	if (c != NULL) {
		st->idle = c->next;
		st->nidle--;
	}
	pthread_mutex_unlock(&st->rmu);
	if (c != NULL) {
		*db_r = c->db;
		free(c);
		return 1;
	}
	return sqlite_conn_open(st, false, db_r, error_r);
}

void sqlite_reader_put(struct store_backend *st, sqlite3 *db)
{
	struct store_conn *c = NULL;

	/* A reader still in a transaction (its COMMIT failed, e.g. out of memory) would
	 * make the next BEGIN on it fail: closed (which rolls back), not kept. */
	if (!sqlite3_get_autocommit(db)) {
		sqlite_conn_close(db);
		return;
	}
	pthread_mutex_lock(&st->rmu);
	if (st->nidle < STORE_READERS_IDLE_MAX && (c = malloc(sizeof(*c))) != NULL) {
		c->db = db;
		c->next = st->idle;
		st->idle = c;
		st->nidle++;
	}
	pthread_mutex_unlock(&st->rmu);
	if (c == NULL)
		sqlite_conn_close(db);
}

static int sqlite_open(const struct store_options *opts, struct store_backend **store_r,
                       char **error_r)
{
	struct store_backend *st;

	*store_r = NULL;
	if (blob_dirs_init(opts->data_dir, error_r) < 0)
		return -1;
	st = calloc(1, sizeof(*st));
	if (st == NULL || (st->data_dir = strdup(opts->data_dir)) == NULL) {
		free(st);
		str_error(error_r, "store: out of memory");
		return -1;
	}
	st->data_fd = open(opts->data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (st->data_fd < 0) {
		str_error(error_r, "open %s: %s", opts->data_dir, strerror(errno));
		free(st->data_dir);
		free(st);
		return -1;
	}

	st->fsync = opts->fsync;
	pthread_mutex_init(&st->wmu, NULL);
	pthread_mutex_init(&st->rmu, NULL);
	pthread_mutex_init(&st->cmu, NULL);
	pthread_mutex_init(&st->gc_mu, NULL);
	pthread_cond_init(&st->gc_cond, NULL);
	st->gc_tail = &st->gc_head;
	st->sweep_interval = opts->sweep_interval;
	st->sweep_age = opts->blob_sweep_age != 0 ? opts->blob_sweep_age : STORE_BLOB_SWEEP_AGE;
	pthread_mutex_init(&st->sw_mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* the sweeper's timed waits */
	pthread_cond_init(&st->sw_cond, &ca);
	pthread_condattr_destroy(&ca);

	if ((!opts->segments_off &&
	     blob_segs_open(opts->data_dir, opts->segment_size, &st->segs, error_r) < 0) ||
	    sqlite_conn_open(st, true, &st->wdb, error_r) < 0 || sqlite_migrate(st, error_r) < 0 ||
	    sqlite_prepare_writer(st, error_r) < 0 || sqlite_committer_start(st, error_r) < 0) {
		sqlite_close(&st);
		return -1;
	}
	/* Remove blobs left unreferenced by failed deliveries, an interrupted sweep
	 * or a crash before a commit. Failure here is not fatal: the next sweep
	 * retries. */
	char *sweep_error = NULL;
	(void)sqlite_blob_sweep_all(st, st->sweep_age, NULL, &sweep_error);
	free(sweep_error);
	sweep_error = NULL;
	(void)sqlite_expunge_log_prune(st, STORE_EXPUNGE_LOG_AGE, STORE_EXPUNGE_LOG_ROWS, NULL,
	                               &sweep_error);
	free(sweep_error);
	if (sqlite_sweeper_start(st, error_r) < 0) {
		sqlite_close(&st);
		return -1;
	}
	*store_r = st;
	return 1;
}

static void sqlite_close(struct store_backend **stp)
{
	struct store_backend *st = *stp;

	if (st == NULL)
		return;
	*stp = NULL;
	sqlite_sweeper_stop(st);
	sqlite_committer_stop(st); /* completes what is queued first */
	blob_segs_close(&st->segs);
	while (st->idle != NULL) {
		struct store_conn *c = st->idle;
		st->idle = c->next;
		sqlite_conn_close(c->db);
		free(c);
	}
	sqlite3_finalize(st->st_mbox_bump);
	sqlite3_finalize(st->st_blob_ref);
	sqlite3_finalize(st->st_msg_insert);
	sqlite3_finalize(st->st_queue_insert);
	sqlite3_finalize(st->st_queue_rcpt);
	sqlite3_finalize(st->st_savepoint);
	sqlite3_finalize(st->st_release);
	sqlite_conn_close(st->cdb); /* before the writer: the last to close checkpoints */
	sqlite_conn_close(st->wdb);
	pthread_mutex_destroy(&st->wmu);
	pthread_mutex_destroy(&st->rmu);
	pthread_mutex_destroy(&st->cmu);
	pthread_mutex_destroy(&st->gc_mu);
	pthread_cond_destroy(&st->gc_cond);
	pthread_mutex_destroy(&st->sw_mu);
	pthread_cond_destroy(&st->sw_cond);
	if (st->data_fd >= 0)
		close(st->data_fd);
	free(st->data_dir);
	free(st);
}

/* ---- generic one-statement helpers ---- */

/* Runs a write statement with text parameters in its own IMMEDIATE transaction.
 * Returns the number of changed rows (>= 0), or -1. On a constraint violation
 * *constraint_r (optional) is set and -1 returned without setting *error_r. */
int sqlite_wexec_text(struct store_backend *st, const char *sql, const char *const *params, size_t nparams,
                      bool *constraint_r, char **error_r)
{
	sqlite3_stmt *stmt = NULL;
	int rc, changes = -1;

	pthread_mutex_lock(&st->wmu);
	if (sqlite_db_prepare(st->wdb, sql, &stmt, error_r) < 0)
		goto out;
	for (size_t i = 0; i < nparams; i++)
		sqlite3_bind_text(stmt, (int)i + 1, params[i], -1, SQLITE_STATIC);
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_DONE) {
		changes = sqlite3_changes(st->wdb);
	} else if ((rc & 0xff) == SQLITE_CONSTRAINT && constraint_r != NULL) {
		*constraint_r = true;
	} else {
		sqlite_db_fail(st->wdb, error_r, "database");
	}
out:
	sqlite3_finalize(stmt);
	pthread_mutex_unlock(&st->wmu);
	return changes;
}

/* Runs a query with text parameters on db; returns 1 if it yields a row (the first
 * column copied to *col0_r when non-NULL), 0 if none, -1 error. */
/* Statements kept on their connection (see store_sqlite_int.h). Cached ones carry
 * this prefix in their SQL text, which is how a lookup tells them from the
 * statements other code prepares and finalizes itself. */
#define SQLITE_CACHED_PREFIX "/*cached*/"

int sqlite_stmt_cached(sqlite3 *db, const char *sql, sqlite3_stmt **stmt_r, char **error_r)
{
	char buf[2048];
	int n = snprintf(buf, sizeof(buf), SQLITE_CACHED_PREFIX "%s", sql);

	if (n < 0 || (size_t)n >= sizeof(buf))
		return sqlite_db_prepare(db, sql, stmt_r, error_r);
	for (sqlite3_stmt *s = sqlite3_next_stmt(db, NULL); s != NULL; s = sqlite3_next_stmt(db, s)) {
		const char *t = sqlite3_sql(s);
		if (!sqlite3_stmt_busy(s) && t != NULL && strcmp(t, buf) == 0) {
			*stmt_r = s;
			return 1;
		}
	}
	if (sqlite3_prepare_v3(db, buf, -1, SQLITE_PREPARE_PERSISTENT, stmt_r, NULL) != SQLITE_OK) {
		*stmt_r = NULL;
		return sqlite_db_fail(db, error_r, "database prepare");
	}
	return 1;
}

void sqlite_stmt_release(sqlite3_stmt *stmt)
{
	const char *t = stmt != NULL ? sqlite3_sql(stmt) : NULL;

	if (t != NULL && strncmp(t, SQLITE_CACHED_PREFIX, strlen(SQLITE_CACHED_PREFIX)) == 0) {
		sqlite3_reset(stmt);
		sqlite3_clear_bindings(stmt);
	} else {
		sqlite3_finalize(stmt);
	}
}

void sqlite_conn_close(sqlite3 *db)
{
	sqlite3_stmt *s;

	if (db == NULL)
		return;
	while ((s = sqlite3_next_stmt(db, NULL)) != NULL)
		sqlite3_finalize(s);
	sqlite3_close(db);
}

int sqlite_query_text(sqlite3 *db, const char *sql, const char *const *params, size_t nparams,
                      char **col0_r, char **error_r)
{
	sqlite3_stmt *stmt;
	int rc, ret;

	/* Not re-entrant between prepare and release: a cached statement is never
	 * handed out twice at once. */
	if (sqlite_stmt_cached(db, sql, &stmt, error_r) < 0)
		return -1;
	for (size_t i = 0; i < nparams; i++)
		sqlite3_bind_text(stmt, (int)i + 1, params[i], -1, SQLITE_STATIC);
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW) {
		if (col0_r != NULL) {
			const char *t = (const char *)sqlite3_column_text(stmt, 0);
			*col0_r = str_dup(t != NULL ? t : "");
		}
		ret = col0_r != NULL && *col0_r == NULL ? str_error(error_r, "out of memory") : 1;
	} else if (rc == SQLITE_DONE) {
		ret = 0;
	} else {
		ret = sqlite_db_fail(db, error_r, "database");
	}
	sqlite_stmt_release(stmt);
	return ret;
}

int sqlite_rquery_text(struct store_backend *st, const char *sql, const char *const *params, size_t nparams,
                       char **col0_r, char **error_r)
{
	sqlite3 *db;
	int ret;

	if (sqlite_reader_get(st, &db, error_r) < 0)
		return -1;
	ret = sqlite_query_text(db, sql, params, nparams, col0_r, error_r);
	sqlite_reader_put(st, db);
	return ret;
}

/* Lists rows of a query: each row's text columns go to cb (1 or 2 columns). */
int sqlite_rlist(struct store_backend *st, const char *sql, store_name_cb *cb1, store_alias_cb *cb2,
                 void *ctx, char **error_r)
{
	sqlite3_stmt *stmt;
	sqlite3 *db;
	int rc, ret = 1;

	if (sqlite_reader_get(st, &db, error_r) < 0)
		return -1;
	if (sqlite_db_prepare(db, sql, &stmt, error_r) < 0) {
		sqlite_reader_put(st, db);
		return -1;
	}
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		const char *a = (const char *)sqlite3_column_text(stmt, 0);
		if (cb1 != NULL)
			cb1(ctx, a != NULL ? a : "");
		else {
			const char *b = (const char *)sqlite3_column_text(stmt, 1);
			cb2(ctx, a != NULL ? a : "", b != NULL ? b : "");
		}
	}
	if (rc != SQLITE_DONE)
		ret = sqlite_db_fail(db, error_r, "database");
	sqlite3_finalize(stmt);
	sqlite_reader_put(st, db);
	return ret;
}

int sqlite_column_dup(sqlite3_stmt *stmt, int col, char **r, char **error_r)
{
	const char *t = (const char *)sqlite3_column_text(stmt, col);

	*r = NULL;
	if (t == NULL)
		return 1;
	*r = str_dup(t);
	return *r != NULL ? 1 : str_error(error_r, "out of memory");
}

const struct store_ops store_sqlite_ops = {
    .name = "sqlite",
    .open = sqlite_open,
    .close = sqlite_close,
    .domain_add = sqlite_domain_add,
    .domain_del = sqlite_domain_del,
    .domain_exists = sqlite_domain_exists,
    .domain_list = sqlite_domain_list,
    .account_add = sqlite_account_add,
    .account_del = sqlite_account_del,
    .account_set_password = sqlite_account_set_password,
    .account_get_password = sqlite_account_get_password,
    .account_list = sqlite_account_list,
    .account_set_scram = sqlite_account_set_scram,
    .account_get_credentials = sqlite_account_get_credentials,
    .alias_add = sqlite_alias_add,
    .alias_del = sqlite_alias_del,
    .alias_list = sqlite_alias_list,
    .lookup_begin = sqlite_lookup_begin,
    .lookup_end = sqlite_lookup_end,
    .lookup_account = sqlite_lookup_account,
    .lookup_alias = sqlite_lookup_alias,
    .lookup_domain = sqlite_lookup_domain,
    .lookup_first_domain = sqlite_lookup_first_domain,
    .lookup_first_account = sqlite_lookup_first_account,
    .deliver_async = sqlite_deliver_async,
    .queue_list = sqlite_queue_list,
    .queue_get = sqlite_queue_get,
    .queue_show = sqlite_queue_show,
    .queue_delete = sqlite_queue_delete,
    .queue_lease = sqlite_queue_lease,
    .queue_release_leases = sqlite_queue_release_leases,
    .queue_record = sqlite_queue_record,
    .queue_hold = sqlite_queue_hold,
    .queue_flush = sqlite_queue_flush,
    .queue_set_warned = sqlite_queue_set_warned,
    .tlsrpt_add = sqlite_tlsrpt_add,
    .tlsrpt_list = sqlite_tlsrpt_list,
    .tlsrpt_delete = sqlite_tlsrpt_delete,
    .queue_bounce = sqlite_queue_bounce,
    .queue_next_due = sqlite_queue_next_due,
    .set_queue_hook = sqlite_set_queue_hook,
    .mailbox_list = sqlite_mailbox_list,
    .message_list = sqlite_message_list,
    .message_get = sqlite_message_get,
    .blob_get = sqlite_blob_get,
    .blob_open = sqlite_blob_open,
    .blob_sweep = sqlite_blob_sweep_all,
    .expunge_log_prune = sqlite_expunge_log_prune,
    .message_expunge = sqlite_message_expunge,
    .mailbox_create = sqlite_mailbox_create,
    .mailbox_delete = sqlite_mailbox_delete,
    .mailbox_rename = sqlite_mailbox_rename,
    .mailbox_subscribe = sqlite_mailbox_subscribe,
    .subscription_list = sqlite_subscription_list,
    .mailbox_get = sqlite_mailbox_get,
    .mailbox_changes = sqlite_mailbox_changes,
    .message_ranges = sqlite_message_ranges,
    .message_flags = sqlite_message_flags,
    .message_copy = sqlite_message_copy,
    .mailbox_expunge_deleted = sqlite_mailbox_expunge_deleted,
    .append = sqlite_append,
    .blob_cache_get = sqlite_blob_cache_get,
    .blob_cache_put = sqlite_blob_cache_put,
    .mta_sts_get = sqlite_mta_sts_get,
    .mta_sts_put = sqlite_mta_sts_put,
    .mta_sts_delete = sqlite_mta_sts_delete,
};
