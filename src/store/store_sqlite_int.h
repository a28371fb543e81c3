/* Private to the SQLite backend (store_sqlite*.c): its state and shared helpers.
 * The backend: SQLite (WAL) metadata plus content-addressed blobs: small ones
 * packed into segment files (blob_seg.c), larger ones files of their own (blob.c).
 *   store_sqlite.c           connections, open/close, the ops table
 *   store_sqlite_blobs.c     where a blob is, reading it, the sweep and compaction,
 *                            the blob cache
 *   store_sqlite_schema.c    migrations and the writer's prepared statements
 *   store_sqlite_accounts.c  domains, accounts, aliases, the primitive lookups
 *   store_sqlite_deliver.c   delivery with group commit
 *   store_sqlite_mail.c      messages, expunge
 *   store_sqlite_imap.c      IMAP: mailbox list/status, create/delete/rename,
 *                            subscriptions, changes, flags, copy/move, expunge of
 *                            \Deleted (APPEND is a delivery: store_sqlite_deliver.c)
 *   store_sqlite_queue.c     the outbound queue: list/show/delete, the queue
 *                            runner's leases and results, hold/flush/bounce
 *   store_sqlite_policy.c    the MTA-STS policy cache
 *
 * Connections and threads
 *   - One writer connection (st->wdb), used under st->wmu by admin writes and by the
 *     group-commit leader. Every write transaction is BEGIN IMMEDIATE, so a second
 *     process (the CLI while the server runs) waits on busy_timeout instead of
 *     failing half way.
 *   - A small pool of reader connections; WAL readers never block the writer.
 *
 * Group commit (store_deliver_async)
 *   Each caller writes its blob in its own thread: a small one is appended to the
 *   process's active segment (not synced yet), a large one becomes a file of its
 *   own, made durable there (fdatasync of the file, fsync of its directory:
 *   concurrent callers share the journal commits). It queues a request and
 *   returns. The committer thread takes the whole queue as one batch, makes its
 *   blobs durable (gc_sync_blobs: one fdatasync per segment the batch wrote to),
 *   commits the metadata in ONE transaction (one WAL fsync with
 *   synchronous=FULL), then calls each request's completion. Requests
 *   that arrive while a batch commits pile up and form the next batch. Each
 *   delivery runs inside its own SAVEPOINT: a delivery that fails (say a missing
 *   mailbox) is rolled back alone and gets -1, the others in the batch still commit.
 *   If the COMMIT itself fails, every delivery in the batch gets -1 and none of them
 *   is visible. All accounts of one delivery are in the same savepoint, so a message
 *   is never half-delivered.
 *
 * Blob lifetime
 *   blobs.refcount counts message entries and queue entries (one per queue entry,
 *   however many recipients it has); blobs.seg/off say where the bytes are (seg
 *   NULL: the file blobs/ab/<id>). A blob file is removed only by the sweep,
 *   which runs inside a write transaction (holding SQLite's write lock, so across
 *   processes too) and removes files of rows whose refcount dropped to 0. A delivery
 *   re-checks inside its write transaction that its blob file still exists and
 *   rewrites it if a sweep removed it between blob_write() and the commit. A
 *   delivery of content the store already has keeps the existing row's location
 *   (its own copy is dead space, or an orphan file for the sweep) unless that row
 *   is unreferenced, when the new copy's location replaces it. Segment space is
 *   reclaimed by the sweep (sqlite_seg_sweep): a segment nobody writes to (its
 *   lock is free), untouched for the sweep age and named by no row is removed; one
 *   whose live blobs fill less than half of it has them copied into the active
 *   segment, made durable, re-pointed in one transaction, and is removed. */
#ifndef HERMOD_STORE_STORE_SQLITE_INT_H
#define HERMOD_STORE_STORE_SQLITE_INT_H

#include "store/store.h"
#include "store/blob.h"
#include "store/blob_seg.h"
#include "store/store_msg.h"
#include "store/store_util.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <sqlite3.h>

#define STORE_DB_NAME "hermod.db"
#define STORE_BUSY_TIMEOUT_MS 10000
#define STORE_READERS_IDLE_MAX 16
#define STORE_QUEUE_RCPTS_MAX 100000 /* sanity bound; the SMTP layer limits far lower */
#define STORE_ENVID_MAX 100          /* RFC 3461 4.4: at most 100 characters */
#define STORE_ORCPT_MAX 500          /* RFC 3461 4.2: at most 500 characters */

struct store_conn {
	sqlite3 *db;
	struct store_conn *next;
};

/* The bytes of a delivery as stored: the base message (memory or writer) with the
 * header fix-ups spliced in at insert_at. */
struct deliver_src {
	const char *data;
	struct store_msg *msg;
	uint64_t at;
	const char *ins;
	size_t ins_len;
};

/* The requests of one APPEND (all or nothing): they are queued one after the
 * other and commit in one savepoint, or all fail. */
struct store_gc_group {
	bool failed; /* a member failed before the commit (its blob) */
};

struct store_gc_req {
	struct store_delivery *d;
	struct store_gc_group *group; /* NULL: a delivery of its own */
	uint32_t *uidvalidity_r;      /* optional: the mailbox's, set at commit */
	int fail_code;                /* STORE_NOMAILBOX when the mailbox is gone */
	struct deliver_src ds;
	struct blob_src src;       /* reads ds */
	uint64_t len;              /* stored size */
	struct blob_pending *blob; /* written, synced by the committer */
	const char *blob_id;
	const char *flags;
	char *flags_owned;
	store_deliver_cb *cb;
	void *ctx;
	int64_t internal_date;
	/* normalized queue envelope (NULL when nothing is queued) */
	char *queue_sender;
	char **queue_rcpts;
	char **queue_orcpt; /* NULL, or one per queue rcpt (entries may be NULL) */
	int64_t created;
	uint32_t *uids_r;
	int result;
	char *error;
	struct store_gc_req *next;
};

struct store_backend {
	char *data_dir;
	bool fsync;

	pthread_mutex_t wmu; /* guards wdb and its statements */
	sqlite3 *wdb;
	sqlite3_stmt *st_mbox_bump;
	sqlite3_stmt *st_blob_ref;
	sqlite3_stmt *st_msg_insert;
	sqlite3_stmt *st_queue_insert;
	sqlite3_stmt *st_queue_rcpt;
	sqlite3_stmt *st_savepoint, *st_release; /* a delivery's savepoint in a batch */

	/* The blob cache's writer (store_blob_cache_put): synchronous=NORMAL, since
	 * what it writes need not be durable; opened on first use. */
	pthread_mutex_t cmu;
	sqlite3 *cdb;

	pthread_mutex_t rmu; /* guards the idle reader list */
	struct store_conn *idle;
	unsigned nidle;

	int data_fd; /* data_dir */
	struct blob_segs *segs; /* the segment writer; NULL: every blob is a file */

	/* the committer thread and its queue (store_sqlite_deliver.c) */
	pthread_mutex_t gc_mu;
	pthread_cond_t gc_cond; /* signalled when a request is queued or on stop */
	struct store_gc_req *gc_head, **gc_tail;
	pthread_t gc_thread;
	bool gc_started, gc_stop;
	/* told after a batch that queued something committed (store_set_queue_hook:
	 * set before deliveries start, read without a lock) */
	store_queue_hook *queue_hook;
	void *queue_hook_ctx;

	/* the periodic sweep (store_options.sweep_interval; store_sqlite_blobs.c) */
	unsigned sweep_interval, sweep_age;
	pthread_mutex_t sw_mu;
	pthread_cond_t sw_cond; /* CLOCK_MONOTONIC; signalled on stop */
	pthread_t sw_thread;
	bool sw_started, sw_stop;
};

/* A read snapshot (store_ops lookups): a reader connection inside BEGIN. */
struct store_lookup {
	struct store_backend *st;
	sqlite3 *db;
};

/* ---- helpers (store_sqlite.c) ---- */
int sqlite_db_fail(sqlite3 *db, char **error_r, const char *what);
int sqlite_db_exec(sqlite3 *db, const char *sql, char **error_r);
int sqlite_db_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **stmt_r, char **error_r);
void sqlite_db_rollback(sqlite3 *db);
/* Prepared statements kept on the connection: *stmt_r is a statement for sql that
 * stays prepared on db (found again by the next call with the same sql); give it
 * back with sqlite_stmt_release (reset, bindings cleared) before the next call for
 * the same sql on db. sqlite_stmt_release finalizes a statement that is not cached,
 * so it also ends those of sqlite_db_prepare. */
int sqlite_stmt_cached(sqlite3 *db, const char *sql, sqlite3_stmt **stmt_r, char **error_r);
void sqlite_stmt_release(sqlite3_stmt *stmt);
/* Finalizes every statement of db (cached ones included) and closes it. */
void sqlite_conn_close(sqlite3 *db);
int sqlite_conn_open(struct store_backend *st, bool writer, sqlite3 **db_r, char **error_r);
int sqlite_reader_get(struct store_backend *st, sqlite3 **db_r, char **error_r);
void sqlite_reader_put(struct store_backend *st, sqlite3 *db);
/* Runs a write statement with text parameters in its own IMMEDIATE transaction.
 * Returns the number of changed rows (>= 0), or -1. On a constraint violation
 * *constraint_r (optional) is set and -1 returned without setting *error_r. */
int sqlite_wexec_text(struct store_backend *st, const char *sql, const char *const *params,
                      size_t nparams, bool *constraint_r, char **error_r);
/* Runs a query with text parameters on db; returns 1 if it yields a row (the first
 * column copied to *col0_r when non-NULL), 0 if none, -1 error. */
int sqlite_query_text(sqlite3 *db, const char *sql, const char *const *params, size_t nparams,
                      char **col0_r, char **error_r);
int sqlite_rquery_text(struct store_backend *st, const char *sql, const char *const *params,
                       size_t nparams, char **col0_r, char **error_r);
/* Lists rows of a query: each row's text columns go to cb (1 or 2 columns). */
int sqlite_rlist(struct store_backend *st, const char *sql, store_name_cb *cb1, store_alias_cb *cb2,
                 void *ctx, char **error_r);
/* A malloc'd copy of column col of the current row into *r (NULL for SQL NULL).
 * 1 ok, -1 out of memory (*r NULL). */
int sqlite_column_dup(sqlite3_stmt *stmt, int col, char **r, char **error_r);

/* ---- blobs (store_sqlite_blobs.c) ---- */
/* Where a blob's bytes are: segment seg at off (seg 0: the file of its own). */
struct sqlite_blob_loc {
	uint32_t seg;
	uint64_t off, size;
};
/* The location of blob id, read on db: 1 found, 0 no row, -1 error. */
int sqlite_blob_locate(sqlite3 *db, const char *id, struct sqlite_blob_loc *loc, char **error_r);
/* Reads a whole blob from loc (seg 0: its file, whatever loc->size says): 1 with
 * *data_r malloc'd and NUL-terminated, 0 gone, -1 error. */
int sqlite_blob_read_loc(struct store_backend *st, const char *id, const struct sqlite_blob_loc *loc,
                         char **data_r, size_t *len_r, char **error_r);
/* Removes files of blob rows whose refcount dropped to 0 (and those rows). */
int sqlite_blob_sweep(struct store_backend *st, char **error_r);
/* store_blob_sweep: the above, then files no row names, older than min_age, then
 * the segments (removed when dead, compacted when mostly dead). */
int sqlite_blob_sweep_all(struct store_backend *st, unsigned min_age, uint64_t *removed_r,
                          char **error_r);
/* The background sweep thread (when st->sweep_interval > 0) and its stop. */
int sqlite_sweeper_start(struct store_backend *st, char **error_r);
void sqlite_sweeper_stop(struct store_backend *st);
/* pthread_create with every signal blocked in the new thread (the server's
 * signals go to its main thread). 0 ok, else an errno value. */
int sqlite_thread_create(pthread_t *t, void *(*fn)(void *), void *arg);

/* ---- schema (store_sqlite_schema.c) ---- */
int sqlite_migrate(struct store_backend *st, char **error_r);
int sqlite_prepare_writer(struct store_backend *st, char **error_r);

/* ---- the ops (one file per group, see above) ---- */
int sqlite_domain_add(struct store_backend *st, const char *domain, char **error_r);
int sqlite_domain_del(struct store_backend *st, const char *domain, char **error_r);
int sqlite_domain_exists(struct store_backend *st, const char *domain, char **error_r);
int sqlite_domain_list(struct store_backend *st, store_name_cb *cb, void *ctx, char **error_r);
int sqlite_account_add(struct store_backend *st, const char *address, const char *pwhash,
                       char **error_r);
int sqlite_account_del(struct store_backend *st, const char *address, char **error_r);
int sqlite_account_set_password(struct store_backend *st, const char *address, const char *pwhash,
                                char **error_r);
int sqlite_account_get_password(struct store_backend *st, const char *address, char **pwhash_r,
                                char **error_r);
int sqlite_account_list(struct store_backend *st, store_name_cb *cb, void *ctx, char **error_r);
int sqlite_account_set_scram(struct store_backend *st, const char *address, const char *scram,
                             char **error_r);
int sqlite_account_get_credentials(struct store_backend *st, const char *address, char **account_r,
                                   char **pwhash_r, char **scram_r, char **error_r);
int sqlite_alias_add(struct store_backend *st, const char *source, const char *target,
                     char **error_r);
int sqlite_alias_del(struct store_backend *st, const char *source, const char *target,
                     char **error_r);
int sqlite_alias_list(struct store_backend *st, store_alias_cb *cb, void *ctx, char **error_r);
int sqlite_lookup_begin(struct store_backend *st, struct store_lookup **lk_r, char **error_r);
void sqlite_lookup_end(struct store_lookup **lk);
int sqlite_lookup_account(struct store_lookup *lk, const char *address, char **canon_r,
                          char **error_r);
int sqlite_lookup_alias(struct store_lookup *lk, const char *source, char ***targets_r,
                        char **error_r);
int sqlite_lookup_domain(struct store_lookup *lk, const char *domain, char **error_r);
int sqlite_lookup_first_domain(struct store_lookup *lk, char **domain_r, char **error_r);
int sqlite_lookup_first_account(struct store_lookup *lk, const char *domain, char **address_r,
                                char **error_r);
int sqlite_deliver_async(struct store_backend *st, struct store_delivery *d, uint32_t *uids_r,
                         store_deliver_cb *cb, void *ctx, char **error_r);
int sqlite_committer_start(struct store_backend *st, char **error_r);
void sqlite_committer_stop(struct store_backend *st);
int sqlite_queue_list(struct store_backend *st, store_queue_cb *cb, void *ctx, char **error_r);
int sqlite_queue_get(struct store_backend *st, int64_t id, char **data_r, size_t *len_r,
                     char **error_r);
int sqlite_queue_show(struct store_backend *st, int64_t id, store_queue_cb *cb, void *ctx,
                      char **error_r);
int sqlite_queue_delete(struct store_backend *st, int64_t id, char **error_r);
int sqlite_queue_lease(struct store_backend *st, int64_t now, const char *owner,
                       unsigned lease_secs, size_t max, store_queue_cb *cb, void *ctx,
                       char **error_r);
int sqlite_queue_release_leases(struct store_backend *st, char **error_r);
int sqlite_queue_record(struct store_backend *st, int64_t id, const struct store_queue_result *res,
                        size_t n, int64_t next_attempt, bool *removed_r, char **error_r);
int sqlite_queue_hold(struct store_backend *st, int64_t id, bool hold, char **error_r);
int sqlite_queue_flush(struct store_backend *st, int64_t id, char **error_r);
int sqlite_queue_set_warned(struct store_backend *st, int64_t id, char **error_r);
/* store_sqlite_tlsrpt.c */
int sqlite_tlsrpt_add(struct store_backend *st, const struct store_tlsrpt_row *rows, size_t n,
                      char **error_r);
long sqlite_tlsrpt_list(struct store_backend *st, const char *before, store_tlsrpt_cb *cb,
                        void *ctx, char **error_r);
int sqlite_tlsrpt_delete(struct store_backend *st, const char *day, const char *domain,
                         char **error_r);
int sqlite_queue_bounce(struct store_backend *st, int64_t id, char **error_r);
int sqlite_queue_next_due(struct store_backend *st, int64_t *when_r, char **error_r);
void sqlite_set_queue_hook(struct store_backend *st, store_queue_hook *fn, void *ctx);
int sqlite_mailbox_list(struct store_backend *st, const char *account, store_mailbox_cb *cb,
                        void *ctx, char **error_r);
int sqlite_message_list(struct store_backend *st, const char *account, const char *mailbox,
                        store_message_cb *cb, void *ctx, char **error_r);
int sqlite_message_get(struct store_backend *st, const char *account, const char *mailbox,
                       uint32_t uid, char **data_r, size_t *len_r, char **error_r);
int sqlite_blob_get(struct store_backend *st, const char *blob_id, char **data_r, size_t *len_r,
                    char **error_r);
int sqlite_blob_open(struct store_backend *st, const char *blob_id, struct store_blob_range *r,
                     char **error_r);
int sqlite_message_expunge(struct store_backend *st, const char *account, const char *mailbox,
                           const uint32_t *uids, size_t n, char **error_r);

/* ---- IMAP (store_sqlite_imap.c; append in store_sqlite_deliver.c) ---- */
/* The next UIDVALIDITY (inside a write transaction on db). 1 ok, -1 error. */
int sqlite_uidvalidity_next(sqlite3 *db, uint32_t *uidvalidity_r, char **error_r);
int sqlite_mailbox_create(struct store_backend *st, const char *account, const char *name,
                          const char *special_use, char **error_r);
int sqlite_mailbox_delete(struct store_backend *st, const char *account, const char *name,
                          char **error_r);
int sqlite_mailbox_rename(struct store_backend *st, const char *account, const char *from,
                          const char *to, char **error_r);
int sqlite_mailbox_subscribe(struct store_backend *st, const char *account, const char *name,
                             bool on, char **error_r);
int sqlite_subscription_list(struct store_backend *st, const char *account, store_name_cb *cb,
                             void *ctx, char **error_r);
int sqlite_mailbox_get(struct store_backend *st, const char *account, const char *name,
                       store_mailbox_cb *cb, void *ctx, char **error_r);
/* store_expunge_log_prune */
int sqlite_expunge_log_prune(struct store_backend *st, uint64_t max_age, uint64_t max_rows,
                             uint64_t *removed_r, char **error_r);
int sqlite_mailbox_changes(struct store_backend *st, const char *account, const char *mailbox,
                           uint64_t since, const struct store_changes_ops *ops, void *ctx,
                           char **error_r);
int sqlite_message_ranges(struct store_backend *st, const char *account, const char *mailbox,
                          uint32_t uidvalidity, const struct store_uid_range *ranges, size_t n,
                          store_message_cb *cb, void *ctx, char **error_r);
int sqlite_message_flags(struct store_backend *st, const char *account, const char *mailbox,
                         const uint32_t *uids, size_t n, enum store_flags_op op,
                         const char *flags, uint64_t unchangedsince,
                         const struct store_flags_ops *ops, void *ctx, char **error_r);
int sqlite_message_copy(struct store_backend *st, const char *account, const char *from,
                        const char *to, const uint32_t *uids, size_t n, bool move,
                        struct store_copy_result *r, char **error_r);
int sqlite_mailbox_expunge_deleted(struct store_backend *st, const char *account,
                                   const char *mailbox, const uint32_t *only, size_t nonly,
                                   void (*expunged)(void *ctx, uint32_t uid), void *ctx,
                                   char **error_r);
int sqlite_append(struct store_backend *st, const char *account, const char *mailbox,
                  const struct store_append_msg *msgs, size_t n, uint32_t *uidvalidity_r,
                  uint32_t *uids_r, char **error_r);
int sqlite_blob_cache_get(struct store_backend *st, const char *blob_id, char **data_r,
                          size_t *len_r, char **error_r);
int sqlite_blob_cache_put(struct store_backend *st, const char *blob_id, const void *data,
                          size_t len, char **error_r);
/* ---- the MTA-STS policy cache (store_sqlite_policy.c) ---- */
int sqlite_mta_sts_get(struct store_backend *st, const char *domain, struct store_mta_sts *r,
                       char **error_r);
int sqlite_mta_sts_put(struct store_backend *st, const struct store_mta_sts *p, char **error_r);
int sqlite_mta_sts_delete(struct store_backend *st, const char *domain, char **error_r);

#endif
