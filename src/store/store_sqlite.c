/* The embedded store: SQLite (WAL) metadata plus content-addressed blob files.
 * For now this file implements store.h directly; the functions are written against
 * a private struct store so that a table of function pointers (store_pg.c next to
 * it) can be put in front of them without touching callers.
 *
 * Connections and threads
 *   - One writer connection (st->wdb), used under st->wmu by admin writes and by the
 *     group-commit leader. Every write transaction is BEGIN IMMEDIATE, so a second
 *     process (the CLI while the server runs) waits on busy_timeout instead of
 *     failing half way.
 *   - A small pool of reader connections; WAL readers never block the writer.
 *
 * Group commit (store_deliver)
 *   Each caller writes its blob file in its own thread, then queues a request.
 *   If no commit is running, the caller becomes the leader: it takes the whole queue,
 *   makes the batch's blobs durable with one syncfs() (see gc_sync_blobs), and commits the metadata in ONE transaction (one WAL fsync with
 *   synchronous=FULL), then
 *   marks every request done and wakes the waiters. Requests that arrive while that
 *   COMMIT runs pile up, and the first of them to wake leads the next batch. Each
 *   delivery runs inside its own SAVEPOINT: a delivery that fails (say a missing
 *   mailbox) is rolled back alone and gets -1, the others in the batch still commit.
 *   If the COMMIT itself fails, every delivery in the batch gets -1 and none of them
 *   is visible. All accounts of one delivery are in the same savepoint, so a message
 *   is never half-delivered.
 *
 * Blob lifetime
 *   blobs.refcount counts message entries and queue entries (one per queue entry,
 *   however many recipients it has). A blob file is removed only by the sweep,
 *   which runs inside a write transaction (holding SQLite's write lock, so across
 *   processes too) and removes files of rows whose refcount dropped to 0. A delivery
 *   re-checks inside its write transaction that its blob file still exists and
 *   rewrites it if a sweep removed it between blob_write() and the commit. */
#include "store/store.h"
#include "store/blob.h"
#include "store/store_msg.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <sqlite3.h>

#define STORE_DB_NAME "hermod.db"
#define STORE_BUSY_TIMEOUT_MS 10000
#define STORE_READERS_IDLE_MAX 16
#define STORE_ALIAS_DEPTH_MAX 8
#define STORE_RESOLVE_MAX 1000 /* accounts one recipient may expand to */
#define STORE_FLAGS_MAX 4096
#define STORE_QUEUE_RCPTS_MAX 100000 /* sanity bound; the SMTP layer limits far lower */
#define STORE_ENVID_MAX 100  /* RFC 3461 4.4: at most 100 characters */
#define STORE_ORCPT_MAX 500  /* RFC 3461 4.2: at most 500 characters */

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

struct store_gc_req {
	struct store_delivery *d;
	struct deliver_src ds;
	struct blob_src src; /* reads ds */
	uint64_t len;        /* stored size */
	struct blob_pending *blob; /* written, synced by the leader */
	const char *blob_id;
	const char *flags;
	int64_t internal_date;
	/* normalized queue envelope (NULL when nothing is queued) */
	char *queue_sender;
	char **queue_rcpts;
	char **queue_orcpt; /* NULL, or one per queue rcpt (entries may be NULL) */
	int64_t created;
	uint32_t *uids_r;
	int result;
	char *error;
	bool done;
	struct store_gc_req *next;
};

struct store {
	char *data_dir;
	char *hostname; /* NULL when not given */
	bool fsync;

	pthread_mutex_t wmu; /* guards wdb and its statements */
	sqlite3 *wdb;
	sqlite3_stmt *st_mbox_bump;
	sqlite3_stmt *st_blob_ref;
	sqlite3_stmt *st_msg_insert;
	sqlite3_stmt *st_queue_insert;
	sqlite3_stmt *st_queue_rcpt;

	pthread_mutex_t rmu; /* guards the idle reader list */
	struct store_conn *idle;
	unsigned nidle;

	int data_fd; /* data_dir, for syncfs() */

	pthread_mutex_t gc_mu;
	pthread_cond_t gc_cond;
	struct store_gc_req *gc_head, **gc_tail;
	bool gc_busy;
};

/* ---- helpers ---- */

static void set_error(char **error_r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void set_error(char **error_r, const char *fmt, ...)
{
	va_list ap;
	char *s;

	if (error_r == NULL)
		return;
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	*error_r = s;
}

static int db_fail(sqlite3 *db, char **error_r, const char *what)
{
	set_error(error_r, "%s: %s", what, sqlite3_errmsg(db));
	return -1;
}

static int db_exec(sqlite3 *db, const char *sql, char **error_r)
{
	char *msg = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		set_error(error_r, "database: %s", msg != NULL ? msg : sqlite3_errmsg(db));
		sqlite3_free(msg);
		return -1;
	}
	return 1;
}

static int db_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **stmt_r, char **error_r)
{
	if (sqlite3_prepare_v2(db, sql, -1, stmt_r, NULL) != SQLITE_OK) {
		*stmt_r = NULL;
		return db_fail(db, error_r, "database prepare");
	}
	return 1;
}

static void db_rollback(sqlite3 *db)
{
	/* Fails harmlessly when SQLite already rolled back (e.g. SQLITE_FULL). */
	sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
}

static char *xstrdup(const char *s)
{
	char *r = strdup(s);
	if (r == NULL)
		abort(); /* out of memory: nothing sensible left to do */
	return r;
}

static void ascii_lower(char *s)
{
	for (; *s != '\0'; s++) {
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
	}
}

static bool text_ok_ex(const char *s, bool allow_space)
{
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		if (c < ' ' || c == 0x7f || (c == ' ' && !allow_space))
			return false;
	}
	return true;
}

static bool text_ok(const char *s)
{
	return text_ok_ex(s, false);
}

static int domain_normalize(const char *domain, char **r, char **error_r)
{
	if (domain == NULL || *domain == '\0' || !text_ok(domain) || strchr(domain, '@') != NULL ||
	    strlen(domain) > 255) {
		set_error(error_r, "invalid domain");
		return -1;
	}
	*r = xstrdup(domain);
	ascii_lower(*r);
	return 1;
}

/* "local@domain" -> copy with the domain lower-cased. allow_empty_local accepts the
 * catch-all form "@domain"; allow_space a quoted local part such as "a b"@d (a
 * recipient can be anything RFC 5321 allows; our own accounts have no spaces).
 * *at_r (optional) = offset of '@' in the result. */
static int addr_normalize_ex(const char *address, bool allow_empty_local, bool allow_space,
                             char **r, size_t *at_r, char **error_r)
{
	const char *at;

	if (address == NULL || !text_ok_ex(address, allow_space) || strlen(address) > 320 ||
	    (at = strrchr(address, '@')) == NULL || at[1] == '\0' ||
	    (at == address && !allow_empty_local)) {
		set_error(error_r, "invalid address '%s'", address != NULL ? address : "");
		return -1;
	}
	*r = xstrdup(address);
	ascii_lower(*r + (at - address) + 1);
	if (at_r != NULL)
		*at_r = (size_t)(at - address);
	return 1;
}

static int addr_normalize(const char *address, bool allow_empty_local, char **r, size_t *at_r,
                          char **error_r)
{
	return addr_normalize_ex(address, allow_empty_local, false, r, at_r, error_r);
}

static const char *mailbox_normalize(const char *name)
{
	/* RFC 3501 5.1: INBOX is case-insensitive; other names are case-sensitive. */
	if (name == NULL || strcasecmp(name, "INBOX") == 0)
		return "INBOX";
	return name;
}

static int flags_normalize(const char *flags, char **r, char **error_r)
{
	size_t len = flags != NULL ? strlen(flags) : 0, o = 0;
	char *out;

	if (len > STORE_FLAGS_MAX) {
		set_error(error_r, "flags too long");
		return -1;
	}
	out = malloc(len + 1);
	if (out == NULL)
		abort();
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)flags[i];
		if (c == ' ' || c == '\t') {
			if (o > 0 && out[o - 1] != ' ')
				out[o++] = ' ';
			continue;
		}
		if (c < ' ' || c == 0x7f || c == '(' || c == ')') {
			free(out);
			set_error(error_r, "invalid flags");
			return -1;
		}
		out[o++] = (char)c;
	}
	if (o > 0 && out[o - 1] == ' ')
		o--;
	out[o] = '\0';
	*r = out;
	return 1;
}

static int store_blob_sweep(struct store *st, char **error_r);

/* ---- connections ---- */

static int conn_open(struct store *st, bool writer, sqlite3 **db_r, char **error_r)
{
	char path[4096];
	sqlite3 *db = NULL;
	int n;

	n = snprintf(path, sizeof(path), "%s/%s", st->data_dir, STORE_DB_NAME);
	if (n < 0 || (size_t)n >= sizeof(path)) {
		set_error(error_r, "data_dir path too long");
		return -1;
	}
	/* NOMUTEX: each connection is used by one thread at a time (pool / wmu). */
	if (sqlite3_open_v2(path, &db,
	                    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
	                    NULL) != SQLITE_OK) {
		set_error(error_r, "open %s: %s", path,
		          db != NULL ? sqlite3_errmsg(db) : "out of memory");
		sqlite3_close(db);
		return -1;
	}
	sqlite3_busy_timeout(db, STORE_BUSY_TIMEOUT_MS);
	if (db_exec(db, "PRAGMA foreign_keys=ON", error_r) < 0)
		goto fail;
	if (writer) {
		sqlite3_stmt *stmt;
		const char *mode;

		/* journal_mode is persistent in the file; setting it again is a no-op. */
		if (db_prepare(db, "PRAGMA journal_mode=WAL", &stmt, error_r) < 0)
			goto fail;
		if (sqlite3_step(stmt) != SQLITE_ROW) {
			sqlite3_finalize(stmt);
			db_fail(db, error_r, "set WAL mode");
			goto fail;
		}
		mode = (const char *)sqlite3_column_text(stmt, 0);
		if (mode == NULL || strcasecmp(mode, "wal") != 0) {
			set_error(error_r, "database %s: cannot enable WAL (mode %s)", path,
			          mode != NULL ? mode : "?");
			sqlite3_finalize(stmt);
			goto fail;
		}
		sqlite3_finalize(stmt);
	}
	/* With WAL, FULL fsyncs the WAL at every COMMIT: that is the durability point
	 * of a delivery. NORMAL would only sync at checkpoints. */
	if (db_exec(db, st->fsync ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=OFF", error_r) <
	    0)
		goto fail;
	*db_r = db;
	return 1;
fail:
	sqlite3_close(db);
	return -1;
}

static int reader_get(struct store *st, sqlite3 **db_r, char **error_r)
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
	return conn_open(st, false, db_r, error_r);
}

static void reader_put(struct store *st, sqlite3 *db)
{
	struct store_conn *c = NULL;

	pthread_mutex_lock(&st->rmu);
	if (st->nidle < STORE_READERS_IDLE_MAX && (c = malloc(sizeof(*c))) != NULL) {
		c->db = db;
		c->next = st->idle;
		st->idle = c;
		st->nidle++;
	}
	pthread_mutex_unlock(&st->rmu);
	if (c == NULL)
		sqlite3_close(db);
}

/* ---- schema ---- */

/* migrations[i] takes the schema from version i to i + 1. Never edit a released
 * migration; append a new one. */
static const char *const migrations[] = {
    /* v1 */
    "CREATE TABLE domains ("
    "  name TEXT PRIMARY KEY COLLATE NOCASE,"
    "  created INTEGER NOT NULL);"
    "CREATE TABLE accounts ("
    "  id INTEGER PRIMARY KEY,"
    "  address TEXT NOT NULL UNIQUE COLLATE NOCASE,"
    "  domain TEXT NOT NULL COLLATE NOCASE REFERENCES domains(name),"
    "  pwhash TEXT NOT NULL,"
    "  quota INTEGER NOT NULL DEFAULT 0,"
    "  created INTEGER NOT NULL);"
    "CREATE INDEX accounts_domain ON accounts(domain);"
    "CREATE TABLE aliases ("
    "  source TEXT NOT NULL COLLATE NOCASE,"
    "  target TEXT NOT NULL COLLATE NOCASE,"
    "  domain TEXT NOT NULL COLLATE NOCASE REFERENCES domains(name),"
    "  created INTEGER NOT NULL,"
    "  PRIMARY KEY (source, target));"
    "CREATE INDEX aliases_domain ON aliases(domain);"
    "CREATE TABLE mailboxes ("
    "  id INTEGER PRIMARY KEY,"
    "  account INTEGER NOT NULL REFERENCES accounts(id),"
    "  name TEXT NOT NULL,"
    "  special_use TEXT,"
    "  uidvalidity INTEGER NOT NULL,"
    "  uidnext INTEGER NOT NULL DEFAULT 1,"
    "  highestmodseq INTEGER NOT NULL DEFAULT 1,"
    "  subscribed INTEGER NOT NULL DEFAULT 1,"
    "  UNIQUE (account, name));"
    "CREATE TABLE blobs ("
    "  id TEXT PRIMARY KEY,"
    "  size INTEGER NOT NULL,"
    "  refcount INTEGER NOT NULL);"
    "CREATE INDEX blobs_unreferenced ON blobs(refcount) WHERE refcount <= 0;"
    "CREATE TABLE messages ("
    "  mailbox INTEGER NOT NULL REFERENCES mailboxes(id),"
    "  uid INTEGER NOT NULL,"
    "  blob TEXT NOT NULL REFERENCES blobs(id),"
    "  size INTEGER NOT NULL,"
    "  internal_date INTEGER NOT NULL,"
    "  flags TEXT NOT NULL DEFAULT '',"
    "  modseq INTEGER NOT NULL,"
    "  PRIMARY KEY (mailbox, uid)) WITHOUT ROWID;"
    "CREATE INDEX messages_blob ON messages(blob);"
    "CREATE INDEX messages_modseq ON messages(mailbox, modseq);",
    /* v2: SCRAM credentials beside the password hash (NULL: none, e.g. an imported
     * crypt hash), and the outbound queue. A queue entry holds one reference on its
     * blob (blobs.refcount), however many recipients it has. queue_rcpts keeps its
     * rowid so that recipients list in the order they were given. AUTOINCREMENT: a
     * queue id is never reused, so log lines naming one stay unambiguous. */
    "ALTER TABLE accounts ADD COLUMN scram TEXT;"
    "CREATE TABLE queue ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  blob TEXT NOT NULL REFERENCES blobs(id),"
    "  sender TEXT NOT NULL,"
    "  account TEXT NOT NULL DEFAULT '',"
    "  size INTEGER NOT NULL,"
    "  created INTEGER NOT NULL,"
    "  next_attempt INTEGER NOT NULL,"
    "  attempts INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX queue_next_attempt ON queue(next_attempt);"
    "CREATE INDEX queue_blob ON queue(blob);"
    "CREATE TABLE queue_rcpts ("
    "  queue_id INTEGER NOT NULL REFERENCES queue(id) ON DELETE CASCADE,"
    "  rcpt TEXT NOT NULL,"
    "  state TEXT NOT NULL DEFAULT 'pending',"
    "  last_reply TEXT,"
    "  PRIMARY KEY (queue_id, rcpt));",
    /* v3: the expunge log. One row per removed message entry with the MODSEQ of the
     * change that removed it, so that an IMAP client resynchronising with QRESYNC
     * (RFC 7162 3.2.5.2) can be told which UIDs vanished since its MODSEQ. */
    "CREATE TABLE expunged ("
    "  mailbox INTEGER NOT NULL REFERENCES mailboxes(id),"
    "  uid INTEGER NOT NULL,"
    "  modseq INTEGER NOT NULL,"
    "  PRIMARY KEY (mailbox, uid)) WITHOUT ROWID;"
    "CREATE INDEX expunged_modseq ON expunged(mailbox, modseq);",
    /* v4: the queue keeps the whole envelope: BODY (STORE_BODY_*), SMTPUTF8, ENVID
     * and RET (STORE_RET_*) of the transaction, NOTIFY (STORE_NOTIFY_* bits, 0 = not
     * given) and ORCPT of each recipient (RFC 3461), the length of the local-only
     * trace headers at the start of the blob (trace_len: the wire copy starts
     * there), and a lease for queue runners (lease_owner holds the entry until
     * lease_until, unix seconds; NULL/0 = free). */
    "ALTER TABLE queue ADD COLUMN body INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE queue ADD COLUMN smtputf8 INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE queue ADD COLUMN envid TEXT;"
    "ALTER TABLE queue ADD COLUMN ret INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE queue ADD COLUMN trace_len INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE queue ADD COLUMN lease_owner TEXT;"
    "ALTER TABLE queue ADD COLUMN lease_until INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE queue_rcpts ADD COLUMN notify INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE queue_rcpts ADD COLUMN orcpt TEXT;",
};
#define STORE_SCHEMA_VERSION ((int)(sizeof(migrations) / sizeof(migrations[0])))

static int store_migrate(struct store *st, char **error_r)
{
	sqlite3 *db = st->wdb;
	sqlite3_stmt *stmt;
	int version = 0;

	if (db_exec(db, "BEGIN IMMEDIATE", error_r) < 0)
		return -1;
	if (db_exec(db, "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)",
	            error_r) < 0)
		goto fail;
	if (db_prepare(db, "SELECT coalesce(max(version), 0) FROM schema_version", &stmt, error_r) <
	    0)
		goto fail;
	if (sqlite3_step(stmt) == SQLITE_ROW)
		version = sqlite3_column_int(stmt, 0);
	sqlite3_finalize(stmt);
	if (version > STORE_SCHEMA_VERSION) {
		set_error(error_r,
		          "database schema version %d is newer than this hermod supports (%d)",
		          version, STORE_SCHEMA_VERSION);
		goto fail;
	}
	for (; version < STORE_SCHEMA_VERSION; version++) {
		char sql[64];

		if (db_exec(db, migrations[version], error_r) < 0)
			goto fail;
		snprintf(sql, sizeof(sql), "INSERT INTO schema_version VALUES (%d)", version + 1);
		if (db_exec(db, sql, error_r) < 0)
			goto fail;
	}
	if (db_exec(db, "COMMIT", error_r) < 0)
		goto fail;
	return 1;
fail:
	db_rollback(db);
	return -1;
}

static int store_prepare_writer(struct store *st, char **error_r)
{
	static const struct {
		size_t off;
		const char *sql;
	} stmts[] = {
	    {offsetof(struct store, st_mbox_bump),
	     "UPDATE mailboxes SET uidnext = uidnext + 1, highestmodseq = highestmodseq + 1"
	     " WHERE id = (SELECT m.id FROM mailboxes m JOIN accounts a ON a.id = m.account"
	     "             WHERE a.address = ?1 AND m.name = ?2)"
	     " RETURNING id, uidnext - 1, highestmodseq"},
	    {offsetof(struct store, st_blob_ref),
	     "INSERT INTO blobs (id, size, refcount) VALUES (?1, ?2, ?3)"
	     " ON CONFLICT (id) DO UPDATE SET refcount = refcount + excluded.refcount"},
	    {offsetof(struct store, st_msg_insert),
	     "INSERT INTO messages (mailbox, uid, blob, size, internal_date, flags, modseq)"
	     " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"},
	    {offsetof(struct store, st_queue_insert),
	     "INSERT INTO queue (blob, sender, account, size, created, next_attempt,"
	     "                   body, smtputf8, envid, ret, trace_len)"
	     " VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6, ?7, ?8, ?9, ?10)"},
	    /* The caller deduplicates; a repeated recipient is queued once. */
	    {offsetof(struct store, st_queue_rcpt),
	     "INSERT OR IGNORE INTO queue_rcpts (queue_id, rcpt, notify, orcpt)"
	     " VALUES (?1, ?2, ?3, ?4)"},
	};

	for (size_t i = 0; i < sizeof(stmts) / sizeof(stmts[0]); i++) {
		sqlite3_stmt **p = (sqlite3_stmt **)((char *)st + stmts[i].off);
		if (sqlite3_prepare_v3(st->wdb, stmts[i].sql, -1, SQLITE_PREPARE_PERSISTENT, p,
		                       NULL) != SQLITE_OK)
			return db_fail(st->wdb, error_r, "database prepare");
	}
	return 1;
}

int store_open(const struct store_options *opts, struct store **store_r, char **error_r)
{
	struct store *st;

	if (opts == NULL || opts->data_dir == NULL || opts->data_dir[0] == '\0') {
		set_error(error_r, "store: data_dir not set");
		return -1;
	}
	if (blob_dirs_init(opts->data_dir, error_r) < 0)
		return -1;
	st = calloc(1, sizeof(*st));
	if (st == NULL)
		abort();
	st->data_dir = xstrdup(opts->data_dir);
	if (opts->hostname != NULL && opts->hostname[0] != '\0') {
		st->hostname = xstrdup(opts->hostname);
		ascii_lower(st->hostname);
	}
	st->data_fd = open(opts->data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (st->data_fd < 0) {
		set_error(error_r, "open %s: %s", opts->data_dir, strerror(errno));
		free(st->data_dir);
		free(st->hostname);
		free(st);
		return -1;
	}

	st->fsync = opts->fsync;
	pthread_mutex_init(&st->wmu, NULL);
	pthread_mutex_init(&st->rmu, NULL);
	pthread_mutex_init(&st->gc_mu, NULL);
	pthread_cond_init(&st->gc_cond, NULL);
	st->gc_tail = &st->gc_head;

	if (conn_open(st, true, &st->wdb, error_r) < 0 || store_migrate(st, error_r) < 0 ||
	    store_prepare_writer(st, error_r) < 0) {
		store_close(&st);
		return -1;
	}
	/* Remove blobs left unreferenced by failed deliveries or an interrupted
	 * sweep. Failure here is not fatal: the next sweep retries. */
	char *sweep_error = NULL;
	(void)store_blob_sweep(st, &sweep_error);
	free(sweep_error);
	*store_r = st;
	return 1;
}

void store_close(struct store **stp)
{
	struct store *st = *stp;

	if (st == NULL)
		return;
	*stp = NULL;
	while (st->idle != NULL) {
		struct store_conn *c = st->idle;
		st->idle = c->next;
		sqlite3_close(c->db);
		free(c);
	}
	sqlite3_finalize(st->st_mbox_bump);
	sqlite3_finalize(st->st_blob_ref);
	sqlite3_finalize(st->st_msg_insert);
	sqlite3_finalize(st->st_queue_insert);
	sqlite3_finalize(st->st_queue_rcpt);
	sqlite3_close(st->wdb);
	pthread_mutex_destroy(&st->wmu);
	pthread_mutex_destroy(&st->rmu);
	pthread_mutex_destroy(&st->gc_mu);
	pthread_cond_destroy(&st->gc_cond);
	if (st->data_fd >= 0)
		close(st->data_fd);
	free(st->data_dir);
	free(st->hostname);
	free(st);
}

/* ---- generic one-statement helpers ---- */

/* Runs a write statement with text parameters in its own IMMEDIATE transaction.
 * Returns the number of changed rows (>= 0), or -1. On a constraint violation
 * *constraint_r (optional) is set and -1 returned without setting *error_r. */
static int wexec_text(struct store *st, const char *sql, const char *const *params, size_t nparams,
                      bool *constraint_r, char **error_r)
{
	sqlite3_stmt *stmt = NULL;
	int rc, changes = -1;

	pthread_mutex_lock(&st->wmu);
	if (db_prepare(st->wdb, sql, &stmt, error_r) < 0)
		goto out;
	for (size_t i = 0; i < nparams; i++)
		sqlite3_bind_text(stmt, (int)i + 1, params[i], -1, SQLITE_STATIC);
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_DONE) {
		changes = sqlite3_changes(st->wdb);
	} else if ((rc & 0xff) == SQLITE_CONSTRAINT && constraint_r != NULL) {
		*constraint_r = true;
	} else {
		db_fail(st->wdb, error_r, "database");
	}
out:
	sqlite3_finalize(stmt);
	pthread_mutex_unlock(&st->wmu);
	return changes;
}

/* Runs a query with text parameters on db; returns 1 if it yields a row (the first
 * column copied to *col0_r when non-NULL), 0 if none, -1 error. */
static int query_text(sqlite3 *db, const char *sql, const char *const *params, size_t nparams,
                      char **col0_r, char **error_r)
{
	sqlite3_stmt *stmt;
	int rc, ret;

	if (db_prepare(db, sql, &stmt, error_r) < 0)
		return -1;
	for (size_t i = 0; i < nparams; i++)
		sqlite3_bind_text(stmt, (int)i + 1, params[i], -1, SQLITE_STATIC);
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW) {
		if (col0_r != NULL) {
			const char *t = (const char *)sqlite3_column_text(stmt, 0);
			*col0_r = xstrdup(t != NULL ? t : "");
		}
		ret = 1;
	} else if (rc == SQLITE_DONE) {
		ret = 0;
	} else {
		ret = db_fail(db, error_r, "database");
	}
	sqlite3_finalize(stmt);
	return ret;
}

static int rquery_text(struct store *st, const char *sql, const char *const *params, size_t nparams,
                       char **col0_r, char **error_r)
{
	sqlite3 *db;
	int ret;

	if (reader_get(st, &db, error_r) < 0)
		return -1;
	ret = query_text(db, sql, params, nparams, col0_r, error_r);
	reader_put(st, db);
	return ret;
}

/* Lists rows of a query: each row's text columns go to cb (1 or 2 columns). */
static int rlist(struct store *st, const char *sql, store_name_cb *cb1, store_alias_cb *cb2,
                 void *ctx, char **error_r)
{
	sqlite3_stmt *stmt;
	sqlite3 *db;
	int rc, ret = 1;

	if (reader_get(st, &db, error_r) < 0)
		return -1;
	if (db_prepare(db, sql, &stmt, error_r) < 0) {
		reader_put(st, db);
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
		ret = db_fail(db, error_r, "database");
	sqlite3_finalize(stmt);
	reader_put(st, db);
	return ret;
}

/* ---- domains ---- */

int store_domain_add(struct store *st, const char *domain, char **error_r)
{
	char now[32], *dom;
	bool constraint = false;
	int n;

	if (domain_normalize(domain, &dom, error_r) < 0)
		return -1;
	snprintf(now, sizeof(now), "%lld", (long long)time(NULL));
	const char *params[] = {dom, now};
	n = wexec_text(st, "INSERT INTO domains (name, created) VALUES (?1, ?2)", params, 2,
	               &constraint, error_r);
	if (constraint)
		set_error(error_r, "domain %s already exists", dom);
	free(dom);
	return n < 0 ? -1 : 1;
}

int store_domain_del(struct store *st, const char *domain, char **error_r)
{
	sqlite3_stmt *stmt = NULL;
	char *dom;
	int ret = -1, rc;

	if (domain_normalize(domain, &dom, error_r) < 0)
		return -1;
	pthread_mutex_lock(&st->wmu);
	if (db_exec(st->wdb, "BEGIN IMMEDIATE", error_r) < 0)
		goto out;
	/* Refuse to orphan accounts (and their mail) or aliases: the admin deletes
	 * those explicitly first. */
	if (db_prepare(st->wdb,
	               "SELECT (SELECT count(*) FROM accounts WHERE domain = ?1),"
	               "       (SELECT count(*) FROM aliases WHERE domain = ?1)",
	               &stmt, error_r) < 0)
		goto rollback;
	sqlite3_bind_text(stmt, 1, dom, -1, SQLITE_STATIC);
	if (sqlite3_step(stmt) != SQLITE_ROW) {
		db_fail(st->wdb, error_r, "database");
		goto rollback;
	}
	if (sqlite3_column_int(stmt, 0) > 0 || sqlite3_column_int(stmt, 1) > 0) {
		set_error(error_r,
		          "domain %s still has %d account(s) and %d alias(es); delete them first",
		          dom, sqlite3_column_int(stmt, 0), sqlite3_column_int(stmt, 1));
		goto rollback;
	}
	sqlite3_finalize(stmt);
	if (db_prepare(st->wdb, "DELETE FROM domains WHERE name = ?1", &stmt, error_r) < 0)
		goto rollback;
	sqlite3_bind_text(stmt, 1, dom, -1, SQLITE_STATIC);
	rc = sqlite3_step(stmt);
	if (rc != SQLITE_DONE) {
		db_fail(st->wdb, error_r, "database");
		goto rollback;
	}
	ret = sqlite3_changes(st->wdb) > 0 ? 1 : 0;
	if (db_exec(st->wdb, "COMMIT", error_r) < 0) {
		ret = -1;
		goto rollback;
	}
	goto out;
rollback:
	db_rollback(st->wdb);
out:
	sqlite3_finalize(stmt);
	pthread_mutex_unlock(&st->wmu);
	free(dom);
	return ret;
}

int store_domain_exists(struct store *st, const char *domain, char **error_r)
{
	char *dom;
	int ret;

	if (domain_normalize(domain, &dom, error_r) < 0)
		return -1;
	const char *params[] = {dom};
	ret = rquery_text(st, "SELECT 1 FROM domains WHERE name = ?1", params, 1, NULL, error_r);
	free(dom);
	return ret;
}

int store_domain_list(struct store *st, store_name_cb *cb, void *ctx, char **error_r)
{
	return rlist(st, "SELECT name FROM domains ORDER BY name", cb, NULL, ctx, error_r) < 0 ? -1
	                                                                                       : 1;
}

/* ---- accounts ---- */

static const struct {
	const char *name, *special_use;
} default_mailboxes[] = {
    {"INBOX", NULL},      {"Sent", "\\Sent"}, {"Drafts", "\\Drafts"},
    {"Trash", "\\Trash"}, {"Junk", "\\Junk"}, {"Archive", "\\Archive"},
};

/* Inside the writer's transaction. */
static int account_create_mailboxes(struct store *st, int64_t account_id, char **error_r)
{
	sqlite3_stmt *stmt;
	int64_t uidvalidity = (int64_t)time(NULL);
	int ret = 1;

	/* UIDVALIDITY must never repeat for a mailbox name (RFC 9051 2.3.1.1); a
	 * deleted and re-created account in the same second would reuse time(), so
	 * stay above every value handed out so far. */
	if (db_prepare(st->wdb, "SELECT coalesce(max(uidvalidity), 0) + 1 FROM mailboxes", &stmt,
	               error_r) < 0)
		return -1;
	if (sqlite3_step(stmt) == SQLITE_ROW && sqlite3_column_int64(stmt, 0) > uidvalidity)
		uidvalidity = sqlite3_column_int64(stmt, 0);
	sqlite3_finalize(stmt);
	if (uidvalidity > (int64_t)UINT32_MAX) {
		set_error(error_r, "UIDVALIDITY space exhausted");
		return -1;
	}

	if (db_prepare(st->wdb,
	               "INSERT INTO mailboxes (account, name, special_use, uidvalidity)"
	               " VALUES (?1, ?2, ?3, ?4)",
	               &stmt, error_r) < 0)
		return -1;
	for (size_t i = 0; i < sizeof(default_mailboxes) / sizeof(default_mailboxes[0]); i++) {
		sqlite3_reset(stmt);
		sqlite3_bind_int64(stmt, 1, account_id);
		sqlite3_bind_text(stmt, 2, default_mailboxes[i].name, -1, SQLITE_STATIC);
		if (default_mailboxes[i].special_use != NULL)
			sqlite3_bind_text(stmt, 3, default_mailboxes[i].special_use, -1,
			                  SQLITE_STATIC);
		else
			sqlite3_bind_null(stmt, 3);
		sqlite3_bind_int64(stmt, 4, uidvalidity);
		if (sqlite3_step(stmt) != SQLITE_DONE) {
			ret = db_fail(st->wdb, error_r, "database");
			break;
		}
	}
	sqlite3_finalize(stmt);
	return ret;
}

int store_account_add(struct store *st, const char *address, const char *pwhash, char **error_r)
{
	sqlite3_stmt *stmt = NULL;
	char *addr;
	size_t at;
	int ret = -1, rc;

	if (addr_normalize(address, false, &addr, &at, error_r) < 0)
		return -1;
	if (pwhash == NULL)
		pwhash = "";
	pthread_mutex_lock(&st->wmu);
	if (db_exec(st->wdb, "BEGIN IMMEDIATE", error_r) < 0)
		goto out;
	const char *params[] = {addr + at + 1};
	rc = query_text(st->wdb, "SELECT 1 FROM domains WHERE name = ?1", params, 1, NULL, error_r);
	if (rc < 0)
		goto rollback;
	if (rc == 0) {
		set_error(error_r, "domain %s does not exist", addr + at + 1);
		goto rollback;
	}
	if (db_prepare(st->wdb,
	               "INSERT INTO accounts (address, domain, pwhash, created)"
	               " VALUES (?1, ?2, ?3, ?4)",
	               &stmt, error_r) < 0)
		goto rollback;
	sqlite3_bind_text(stmt, 1, addr, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 2, addr + at + 1, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 3, pwhash, -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 4, (int64_t)time(NULL));
	rc = sqlite3_step(stmt);
	if ((rc & 0xff) == SQLITE_CONSTRAINT) {
		set_error(error_r, "account %s already exists", addr);
		goto rollback;
	}
	if (rc != SQLITE_DONE) {
		db_fail(st->wdb, error_r, "database");
		goto rollback;
	}
	if (account_create_mailboxes(st, sqlite3_last_insert_rowid(st->wdb), error_r) < 0)
		goto rollback;
	if (db_exec(st->wdb, "COMMIT", error_r) < 0)
		goto rollback;
	ret = 1;
	goto out;
rollback:
	db_rollback(st->wdb);
out:
	sqlite3_finalize(stmt);
	pthread_mutex_unlock(&st->wmu);
	free(addr);
	return ret;
}

/* Removes blob rows (and files) no message refers to any more. Runs in its own write
 * transaction so that no delivery can take a new reference to a blob between the
 * check and the unlink (see "Blob lifetime" above). Files are unlinked before the
 * COMMIT: if the COMMIT fails, a row with refcount 0 and no file is left, which
 * deliveries handle by rewriting the file. */
static int store_blob_sweep(struct store *st, char **error_r)
{
	sqlite3_stmt *stmt = NULL;
	int rc, ret = -1;

	pthread_mutex_lock(&st->wmu);
	if (db_exec(st->wdb, "BEGIN IMMEDIATE", error_r) < 0)
		goto out;
	if (db_prepare(st->wdb, "SELECT id FROM blobs WHERE refcount <= 0", &stmt, error_r) < 0)
		goto rollback;
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		const char *id = (const char *)sqlite3_column_text(stmt, 0);
		if (id != NULL && blob_id_valid(id) && blob_unlink(st->data_dir, id, error_r) < 0)
			goto rollback;
	}
	if (rc != SQLITE_DONE) {
		db_fail(st->wdb, error_r, "database");
		goto rollback;
	}
	if (db_exec(st->wdb, "DELETE FROM blobs WHERE refcount <= 0", error_r) < 0 ||
	    db_exec(st->wdb, "COMMIT", error_r) < 0)
		goto rollback;
	ret = 1;
	goto out;
rollback:
	db_rollback(st->wdb);
out:
	sqlite3_finalize(stmt);
	pthread_mutex_unlock(&st->wmu);
	return ret;
}

int store_account_del(struct store *st, const char *address, char **error_r)
{
	sqlite3_stmt *stmt = NULL;
	char *addr;
	int64_t id;
	int ret = -1, rc;

	if (addr_normalize(address, false, &addr, NULL, error_r) < 0)
		return -1;
	pthread_mutex_lock(&st->wmu);
	if (db_exec(st->wdb, "BEGIN IMMEDIATE", error_r) < 0)
		goto out;
	if (db_prepare(st->wdb, "SELECT id FROM accounts WHERE address = ?1", &stmt, error_r) < 0)
		goto rollback;
	sqlite3_bind_text(stmt, 1, addr, -1, SQLITE_STATIC);
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_DONE) {
		ret = 0;
		goto rollback;
	}
	if (rc != SQLITE_ROW) {
		db_fail(st->wdb, error_r, "database");
		goto rollback;
	}
	id = sqlite3_column_int64(stmt, 0);
	sqlite3_finalize(stmt);
	stmt = NULL;

	static const char *const steps[] = {
	    "UPDATE blobs SET refcount = refcount - (SELECT count(*) FROM messages m"
	    "   JOIN mailboxes b ON b.id = m.mailbox WHERE b.account = ?1 AND m.blob = blobs.id)"
	    " WHERE id IN (SELECT m.blob FROM messages m JOIN mailboxes b ON b.id = m.mailbox"
	    "              WHERE b.account = ?1)",
	    "DELETE FROM messages WHERE mailbox IN (SELECT id FROM mailboxes WHERE account = ?1)",
	    "DELETE FROM expunged WHERE mailbox IN (SELECT id FROM mailboxes WHERE account = ?1)",
	    "DELETE FROM mailboxes WHERE account = ?1",
	    "DELETE FROM accounts WHERE id = ?1",
	};
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		if (db_prepare(st->wdb, steps[i], &stmt, error_r) < 0)
			goto rollback;
		sqlite3_bind_int64(stmt, 1, id);
		if (sqlite3_step(stmt) != SQLITE_DONE) {
			db_fail(st->wdb, error_r, "database");
			goto rollback;
		}
		sqlite3_finalize(stmt);
		stmt = NULL;
	}
	if (db_exec(st->wdb, "COMMIT", error_r) < 0)
		goto rollback;
	ret = 1;
	goto out;
rollback:
	db_rollback(st->wdb);
out:
	sqlite3_finalize(stmt);
	pthread_mutex_unlock(&st->wmu);
	free(addr);
	if (ret == 1) {
		/* The account is gone either way; a failed sweep leaves unreferenced blobs
		 * for the next sweep, which is harmless. */
		char *err = NULL;
		(void)store_blob_sweep(st, &err);
		free(err);
	}
	return ret;
}

int store_account_set_password(struct store *st, const char *address, const char *pwhash,
                               char **error_r)
{
	char *addr;
	int n;

	if (addr_normalize(address, false, &addr, NULL, error_r) < 0)
		return -1;
	const char *params[] = {pwhash != NULL ? pwhash : "", addr};
	/* SCRAM keys derived from the old password must not outlive it: they are
	 * cleared here, in the same statement, and set again by the caller
	 * (store_account_set_scram) when it has keys for the new password. */
	n = wexec_text(st, "UPDATE accounts SET pwhash = ?1, scram = NULL WHERE address = ?2",
	               params, 2, NULL, error_r);
	free(addr);
	return n < 0 ? -1 : n > 0 ? 1 : 0;
}

int store_account_get_password(struct store *st, const char *address, char **pwhash_r,
                               char **error_r)
{
	char *addr;
	int ret;

	if (addr_normalize(address, false, &addr, NULL, error_r) < 0)
		return -1;
	const char *params[] = {addr};
	ret = rquery_text(st, "SELECT pwhash FROM accounts WHERE address = ?1", params, 1, pwhash_r,
	                  error_r);
	free(addr);
	return ret;
}

int store_account_set_scram(struct store *st, const char *address, const char *scram,
                            char **error_r)
{
	char *addr;
	int n;

	if (scram != NULL && (*scram == '\0' || !text_ok(scram) || strlen(scram) > 1024)) {
		set_error(error_r, "invalid SCRAM credentials");
		return -1;
	}
	if (addr_normalize(address, false, &addr, NULL, error_r) < 0)
		return -1;
	/* A NULL parameter binds SQL NULL. */
	const char *params[] = {scram, addr};
	n = wexec_text(st, "UPDATE accounts SET scram = ?1 WHERE address = ?2", params, 2, NULL,
	               error_r);
	free(addr);
	return n < 0 ? -1 : n > 0 ? 1 : 0;
}

static char *column_dup(sqlite3_stmt *stmt, int col)
{
	const char *t = (const char *)sqlite3_column_text(stmt, col);
	return t != NULL ? xstrdup(t) : NULL;
}

int store_account_get_credentials(struct store *st, const char *address, char **account_r,
                                  char **pwhash_r, char **scram_r, char **error_r)
{
	sqlite3_stmt *stmt = NULL;
	sqlite3 *db;
	char *addr;
	int rc, ret = -1;

	if (account_r != NULL)
		*account_r = NULL;
	if (pwhash_r != NULL)
		*pwhash_r = NULL;
	if (scram_r != NULL)
		*scram_r = NULL;
	/* A login name that cannot be an address names no account: "not found", not
	 * an error (which the protocol would answer with a temporary failure). */
	if (addr_normalize(address, false, &addr, NULL, NULL) < 0)
		return 0;
	if (reader_get(st, &db, error_r) < 0) {
		free(addr);
		return -1;
	}
	/* address is COLLATE NOCASE: ASCII case-insensitive in the local part too */
	if (db_prepare(db, "SELECT address, pwhash, scram FROM accounts WHERE address = ?1", &stmt,
	               error_r) < 0)
		goto out;
	sqlite3_bind_text(stmt, 1, addr, -1, SQLITE_STATIC);
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_DONE) {
		ret = 0;
	} else if (rc == SQLITE_ROW) {
		if (account_r != NULL)
			*account_r = column_dup(stmt, 0);
		if (pwhash_r != NULL) {
			*pwhash_r = column_dup(stmt, 1);
			if (*pwhash_r == NULL)
				*pwhash_r = xstrdup("");
		}
		if (scram_r != NULL)
			*scram_r = column_dup(stmt, 2);
		ret = 1;
	} else {
		db_fail(db, error_r, "database");
	}
out:
	sqlite3_finalize(stmt);
	reader_put(st, db);
	free(addr);
	return ret;
}

int store_account_list(struct store *st, store_name_cb *cb, void *ctx, char **error_r)
{
	return rlist(st, "SELECT address FROM accounts ORDER BY domain, address", cb, NULL, ctx,
	             error_r) < 0
	           ? -1
	           : 1;
}

/* ---- aliases ---- */

int store_alias_add(struct store *st, const char *source, const char *target, char **error_r)
{
	char *src = NULL, *dst = NULL, now[32];
	bool constraint = false;
	size_t at;
	int ret = -1, rc;

	if (addr_normalize(source, true, &src, &at, error_r) < 0 ||
	    addr_normalize(target, false, &dst, NULL, error_r) < 0)
		goto out;
	if (strcasecmp(src, dst) == 0) {
		set_error(error_r, "alias %s points to itself", src);
		goto out;
	}
	const char *dparams[] = {src + at + 1};
	rc = rquery_text(st, "SELECT 1 FROM domains WHERE name = ?1", dparams, 1, NULL, error_r);
	if (rc < 0)
		goto out;
	if (rc == 0) {
		set_error(error_r, "domain %s does not exist", src + at + 1);
		goto out;
	}
	snprintf(now, sizeof(now), "%lld", (long long)time(NULL));
	/* The domain is re-checked by the foreign key inside the INSERT. */
	const char *params[] = {src, dst, src + at + 1, now};
	rc = wexec_text(st,
	                "INSERT INTO aliases (source, target, domain, created)"
	                " VALUES (?1, ?2, ?3, ?4)",
	                params, 4, &constraint, error_r);
	if (constraint)
		set_error(error_r, "alias %s -> %s already exists (or domain %s is gone)", src, dst,
		          src + at + 1);
	if (rc >= 0)
		ret = 1;
out:
	free(src);
	free(dst);
	return ret;
}

int store_alias_del(struct store *st, const char *source, const char *target, char **error_r)
{
	char *src = NULL, *dst = NULL;
	int ret = -1, n;

	if (addr_normalize(source, true, &src, NULL, error_r) < 0)
		goto out;
	if (target != NULL) {
		if (addr_normalize(target, false, &dst, NULL, error_r) < 0)
			goto out;
		const char *params[] = {src, dst};
		n = wexec_text(st, "DELETE FROM aliases WHERE source = ?1 AND target = ?2", params,
		               2, NULL, error_r);
	} else {
		const char *params[] = {src};
		n = wexec_text(st, "DELETE FROM aliases WHERE source = ?1", params, 1, NULL,
		               error_r);
	}
	ret = n < 0 ? -1 : n > 0 ? 1 : 0;
out:
	free(src);
	free(dst);
	return ret;
}

int store_alias_list(struct store *st, store_alias_cb *cb, void *ctx, char **error_r)
{
	return rlist(st, "SELECT source, target FROM aliases ORDER BY domain, source, target", NULL,
	             cb, ctx, error_r) < 0
	           ? -1
	           : 1;
}

/* ---- resolving recipients ---- */

struct strv {
	char **v;
	size_t n, cap;
};

static void strv_add_unique(struct strv *sv, const char *s)
{
	for (size_t i = 0; i < sv->n; i++) {
		if (strcasecmp(sv->v[i], s) == 0)
			return;
	}
	if (sv->n + 2 > sv->cap) {
		size_t cap = sv->cap == 0 ? 4 : sv->cap * 2;
		char **v = realloc(sv->v, cap * sizeof(*v));
		if (v == NULL)
			abort();
		sv->v = v;
		sv->cap = cap;
	}
	sv->v[sv->n++] = xstrdup(s);
	sv->v[sv->n] = NULL;
}

/* 1 if address is an account (canonical form added to out), 0 if not, -1 error. */
static int resolve_account(sqlite3 *db, const char *address, struct strv *out, char **error_r)
{
	const char *params[] = {address};
	char *canon = NULL;
	int rc;

	rc = query_text(db, "SELECT address FROM accounts WHERE address = ?1", params, 1, &canon,
	                error_r);
	if (rc == 1) {
		if (out->n >= STORE_RESOLVE_MAX) {
			free(canon);
			set_error(error_r, "recipient expands to too many accounts");
			return -1;
		}
		strv_add_unique(out, canon);
		free(canon);
	}
	return rc;
}

static int resolve_rec(sqlite3 *db, const char *address, unsigned depth, bool catchall,
                       struct strv *out, char **error_r);

/* 1 if source has alias rows (each target followed), 0 if none, -1 error.
 * catchall: whether targets may fall through to their domain's catch-all. */
static int resolve_alias(sqlite3 *db, const char *source, unsigned depth, bool catchall,
                         struct strv *out, char **error_r)
{
	sqlite3_stmt *stmt;
	struct strv targets = {0};
	int rc, ret = 0;

	if (db_prepare(db, "SELECT target FROM aliases WHERE source = ?1 ORDER BY target", &stmt,
	               error_r) < 0)
		return -1;
	sqlite3_bind_text(stmt, 1, source, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		const char *t = (const char *)sqlite3_column_text(stmt, 0);
		if (t != NULL)
			strv_add_unique(&targets, t);
	}
	if (rc != SQLITE_DONE)
		ret = db_fail(db, error_r, "database");
	sqlite3_finalize(stmt);

	if (ret == 0 && targets.n > 0) {
		ret = 1;
		/* Targets that are neither accounts nor aliases are ignored (no
		 * forwarding yet); past the depth bound a loop just stops expanding. */
		for (size_t i = 0; i < targets.n && depth < STORE_ALIAS_DEPTH_MAX; i++) {
			if (resolve_rec(db, targets.v[i], depth + 1, catchall, out, error_r) < 0) {
				ret = -1;
				break;
			}
		}
	}
	store_strv_free(&targets.v);
	return ret;
}

static int resolve_rec(sqlite3 *db, const char *address, unsigned depth, bool catchall,
                       struct strv *out, char **error_r)
{
	char *addr, *base = NULL;
	size_t at;
	const char *plus;
	int rc;

	if (addr_normalize_ex(address, false, true, &addr, &at, error_r) < 0)
		return 0; /* a malformed alias target matches nothing */

	/* exact account, then exact alias */
	rc = resolve_account(db, addr, out, error_r);
	if (rc == 0)
		rc = resolve_alias(db, addr, depth, catchall, out, error_r);
	/* plus-addressing: "user+tag@d" is retried as "user@d" */
	if (rc == 0 && (plus = memchr(addr, '+', at)) != NULL && plus != addr) {
		size_t llen = (size_t)(plus - addr), dlen = strlen(addr + at);
		base = malloc(llen + dlen + 1);
		if (base == NULL)
			abort();
		memcpy(base, addr, llen);
		memcpy(base + llen, addr + at, dlen + 1);
		rc = resolve_account(db, base, out, error_r);
		if (rc == 0)
			rc = resolve_alias(db, base, depth, catchall, out, error_r);
	}
	/* catch-all "@d" */
	if (rc == 0 && catchall)
		rc = resolve_alias(db, addr + at, depth, catchall, out, error_r);
	free(base);
	free(addr);
	return rc;
}

/* ---- postmaster (RFC 5321 4.5.1) ---- */

static bool is_postmaster(const char *local, size_t len)
{
	return len == 10 && strncasecmp(local, "postmaster", 10) == 0;
}

/* The primary domain into *dom_r (malloc'd): hostname if local, else its parent
 * if local, else the oldest local domain. 1 ok, 0 no local domain, -1 error. */
static int primary_domain(struct store *st, sqlite3 *db, char **dom_r, char **error_r)
{
	const char *h = st->hostname;
	int rc;

	*dom_r = NULL;
	for (int i = 0; h != NULL && *h != '\0' && i < 2; i++) {
		const char *params[] = {h};
		rc = query_text(db, "SELECT name FROM domains WHERE name = ?1", params, 1, dom_r,
		                error_r);
		if (rc != 0)
			return rc;
		h = strchr(h, '.');
		if (h != NULL)
			h++;
	}
	return query_text(db, "SELECT name FROM domains ORDER BY created, rowid LIMIT 1", NULL, 0,
	                  dom_r, error_r);
}

/* Adds the oldest account (of domain, or of all when domain is NULL). 1 added,
 * 0 none, -1 error. */
static int oldest_account(sqlite3 *db, const char *domain, struct strv *out, char **error_r)
{
	const char *params[] = {domain};
	char *a = NULL;
	int rc;

	if (domain != NULL)
		rc = query_text(db,
		                "SELECT address FROM accounts WHERE domain = ?1"
		                " ORDER BY created, id LIMIT 1",
		                params, 1, &a, error_r);
	else
		rc = query_text(db, "SELECT address FROM accounts ORDER BY created, id LIMIT 1",
		                NULL, 0, &a, error_r);
	if (rc == 1)
		strv_add_unique(out, a);
	free(a);
	return rc;
}

/* postmaster@<domain> as an account or through its alias rows (no plus-address,
 * no catch-all). 1 if it reached an account, 0 if not, -1 error. */
static int postmaster_direct(sqlite3 *db, const char *domain, struct strv *out, char **error_r)
{
	char *addr = NULL;
	size_t before = out->n;
	int rc;

	if (asprintf(&addr, "postmaster@%s", domain) < 0) {
		set_error(error_r, "out of memory");
		return -1;
	}
	rc = resolve_account(db, addr, out, error_r);
	if (rc == 0)
		rc = resolve_alias(db, addr, 0, true, out, error_r);
	free(addr);
	if (rc < 0)
		return -1;
	return out->n > before ? 1 : 0;
}

/* postmaster@domain for a local domain: see store.h for the order. */
static int resolve_postmaster(struct store *st, sqlite3 *db, const char *domain,
                              struct strv *out, char **error_r)
{
	char *primary = NULL;
	int rc;

	rc = postmaster_direct(db, domain, out, error_r);
	if (rc != 0)
		return rc;
	rc = primary_domain(st, db, &primary, error_r);
	if (rc == 1 && strcasecmp(primary, domain) != 0)
		rc = postmaster_direct(db, primary, out, error_r);
	else if (rc == 1)
		rc = 0;
	free(primary);
	if (rc != 0)
		return rc;
	rc = oldest_account(db, domain, out, error_r);
	if (rc == 0)
		rc = oldest_account(db, NULL, out, error_r);
	return rc;
}

static int resolve_top(struct store *st, sqlite3 *db, const char *address, struct strv *out,
                       char **error_r)
{
	char *addr = NULL, *primary = NULL;
	size_t at;
	int rc;

	/* RFC 5321 4.5.1: "postmaster" without a domain is the primary domain's */
	if (strchr(address, '@') == NULL && is_postmaster(address, strlen(address))) {
		rc = primary_domain(st, db, &primary, error_r);
		if (rc == 1)
			rc = resolve_postmaster(st, db, primary, out, error_r);
		free(primary);
		return rc;
	}
	if (addr_normalize_ex(address, false, true, &addr, &at, error_r) < 0)
		return -1;
	if (is_postmaster(addr, at)) {
		const char *params[] = {addr + at + 1};
		rc = query_text(db, "SELECT 1 FROM domains WHERE name = ?1", params, 1, NULL,
		                error_r);
		if (rc == 1)
			rc = resolve_postmaster(st, db, addr + at + 1, out, error_r);
	} else {
		rc = resolve_rec(db, addr, 0, true, out, error_r);
	}
	free(addr);
	return rc;
}

int store_resolve_recipient(struct store *st, const char *address, char ***accounts_r,
                            char **error_r)
{
	struct strv out = {0};
	sqlite3 *db;
	int rc;

	*accounts_r = NULL;
	if (address == NULL) {
		set_error(error_r, "invalid address ''");
		return -1;
	}
	if (reader_get(st, &db, error_r) < 0)
		return -1;
	/* One read transaction: a consistent snapshot across all the lookups. */
	rc = db_exec(db, "BEGIN", error_r);
	if (rc > 0) {
		rc = resolve_top(st, db, address, &out, error_r);
		sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	}
	reader_put(st, db);
	if (rc < 0 || out.n == 0) {
		store_strv_free(&out.v);
		return rc < 0 ? -1 : 0;
	}
	*accounts_r = out.v;
	return 1;
}

/* Sender ownership (RFC 6409 submission). The rules mirror delivery: an address
 * that is an account belongs to that account alone (resolve never looks at alias
 * rows for it); an address with alias rows belongs to every account its targets
 * reach, with the same depth bound as resolve but never through a catch-all (a
 * catch-all receives mail for unknown names; it does not make every name in the
 * domain the catch-all owner's sender address); a plus-address "user+tag@d" without
 * alias rows of its own belongs to the account "user@d". */
int store_account_owns_address(struct store *st, const char *account, const char *address,
                               char **error_r)
{
	struct strv reached = {0};
	char *acct = NULL, *addr = NULL, *canon = NULL;
	const char *plus;
	sqlite3 *db;
	size_t at;
	int rc, ret = -1;

	if (addr_normalize(account, false, &acct, NULL, error_r) < 0)
		return -1;
	/* A sender that is not even an address is not owned (the caller's parser
	 * should have refused it already). */
	if (addr_normalize_ex(address, false, true, &addr, &at, NULL) < 0) {
		free(acct);
		return 0;
	}
	if (reader_get(st, &db, error_r) < 0) {
		free(acct);
		free(addr);
		return -1;
	}
	if (db_exec(db, "BEGIN", error_r) < 0)
		goto out;
	const char *aparams[] = {acct};
	rc = query_text(db, "SELECT address FROM accounts WHERE address = ?1", aparams, 1, &canon,
	                error_r);
	if (rc <= 0) {
		ret = rc; /* no such account owns nothing */
		goto out;
	}
	if (strcasecmp(addr, canon) == 0) {
		ret = 1;
		goto out;
	}
	const char *params[] = {addr};
	rc = query_text(db, "SELECT 1 FROM accounts WHERE address = ?1", params, 1, NULL, error_r);
	if (rc != 0) {
		ret = rc < 0 ? -1 : 0; /* another account's own address */
		goto out;
	}
	rc = resolve_alias(db, addr, 0, false, &reached, error_r);
	if (rc < 0)
		goto out;
	if (rc == 1) {
		ret = 0;
		for (size_t i = 0; i < reached.n; i++) {
			if (strcasecmp(reached.v[i], canon) == 0)
				ret = 1;
		}
		goto out;
	}
	ret = 0;
	plus = memchr(addr, '+', at);
	if (plus != NULL && plus != addr) {
		size_t llen = (size_t)(plus - addr);
		const char *cat = strrchr(canon, '@');
		/* canon's local part is addr's up to the '+', and the domains match */
		if (cat != NULL && (size_t)(cat - canon) == llen &&
		    strncasecmp(addr, canon, llen) == 0 && strcasecmp(addr + at, cat) == 0)
			ret = 1;
	}
out:
	sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	reader_put(st, db);
	store_strv_free(&reached.v);
	free(canon);
	free(acct);
	free(addr);
	return ret;
}

void store_strv_free(char ***strvp)
{
	char **v = *strvp;

	if (v == NULL)
		return;
	for (size_t i = 0; v[i] != NULL; i++)
		free(v[i]);
	free(v);
	*strvp = NULL;
}

/* ---- delivery with group commit ---- */

static void stmt_done(sqlite3_stmt *stmt)
{
	sqlite3_reset(stmt);
	sqlite3_clear_bindings(stmt);
}

static void queue_envelope_free(struct store_gc_req *req)
{
	free(req->queue_sender);
	req->queue_sender = NULL;
	store_strv_free(&req->queue_rcpts);
	if (req->queue_orcpt != NULL) {
		for (size_t i = 0; i < req->d->nqueue_rcpts; i++)
			free(req->queue_orcpt[i]);
		free(req->queue_orcpt);
		req->queue_orcpt = NULL;
	}
}

/* The queue entry of a delivery, inside its savepoint. */
static int gc_queue_one(struct store *st, struct store_gc_req *r, char **error_r)
{
	const struct store_delivery *d = r->d;
	int64_t queue_id;
	int rc;

	sqlite3_bind_text(st->st_queue_insert, 1, r->blob_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st->st_queue_insert, 2, r->queue_sender, -1, SQLITE_STATIC);
	sqlite3_bind_text(st->st_queue_insert, 3, d->queue_account != NULL ? d->queue_account : "",
	                  -1, SQLITE_STATIC);
	sqlite3_bind_int64(st->st_queue_insert, 4, (int64_t)r->len);
	sqlite3_bind_int64(st->st_queue_insert, 5, r->created);
	sqlite3_bind_int(st->st_queue_insert, 6, d->queue_body);
	sqlite3_bind_int(st->st_queue_insert, 7, d->queue_smtputf8 ? 1 : 0);
	if (d->queue_envid != NULL)
		sqlite3_bind_text(st->st_queue_insert, 8, d->queue_envid, -1, SQLITE_STATIC);
	sqlite3_bind_int(st->st_queue_insert, 9, d->queue_ret);
	sqlite3_bind_int64(st->st_queue_insert, 10, (int64_t)d->trace_len);
	rc = sqlite3_step(st->st_queue_insert);
	stmt_done(st->st_queue_insert);
	if (rc != SQLITE_DONE)
		return db_fail(st->wdb, error_r, "database");
	queue_id = sqlite3_last_insert_rowid(st->wdb);
	for (size_t i = 0; r->queue_rcpts[i] != NULL; i++) {
		sqlite3_bind_int64(st->st_queue_rcpt, 1, queue_id);
		sqlite3_bind_text(st->st_queue_rcpt, 2, r->queue_rcpts[i], -1, SQLITE_STATIC);
		sqlite3_bind_int(st->st_queue_rcpt, 3,
		                 d->queue_notify != NULL ? (int)d->queue_notify[i] : 0);
		if (r->queue_orcpt != NULL && r->queue_orcpt[i] != NULL)
			sqlite3_bind_text(st->st_queue_rcpt, 4, r->queue_orcpt[i], -1,
			                  SQLITE_STATIC);
		rc = sqlite3_step(st->st_queue_rcpt);
		stmt_done(st->st_queue_rcpt);
		if (rc != SQLITE_DONE)
			return db_fail(st->wdb, error_r, "database");
	}
	r->d->queue_id = queue_id;
	return 1;
}

/* One delivery inside the batch transaction (and its own savepoint). */
static int gc_deliver_one(struct store *st, struct store_gc_req *r, char **error_r)
{
	const struct store_delivery *d = r->d;
	const char *mailbox = mailbox_normalize(d->mailbox);
	int rc;

	/* A sweep (possibly in another process) may have removed an unreferenced
	 * file with this content after blob_write() reused it; we now hold the write
	 * lock, so check and rewrite if needed. */
	rc = blob_exists(st->data_dir, r->blob_id, error_r);
	if (rc < 0)
		return -1;
	if (rc == 0) {
		struct blob_pending again;
		if (blob_write_begin_src(st->data_dir, &r->src, r->blob_id, &again, error_r) < 0 ||
		    blob_write_sync(st->data_dir, &again, st->fsync, error_r) < 0)
			return -1;
	}

	sqlite3_bind_text(st->st_blob_ref, 1, r->blob_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st->st_blob_ref, 2, (int64_t)r->len);
	/* one reference per mailbox entry, and one for the queue entry */
	sqlite3_bind_int64(st->st_blob_ref, 3,
	                   (int64_t)d->naccounts + (r->queue_rcpts != NULL ? 1 : 0));
	rc = sqlite3_step(st->st_blob_ref);
	stmt_done(st->st_blob_ref);
	if (rc != SQLITE_DONE)
		return db_fail(st->wdb, error_r, "database");

	for (size_t i = 0; i < d->naccounts; i++) {
		int64_t mbox_id, uid, modseq;

		sqlite3_bind_text(st->st_mbox_bump, 1, d->accounts[i], -1, SQLITE_STATIC);
		sqlite3_bind_text(st->st_mbox_bump, 2, mailbox, -1, SQLITE_STATIC);
		rc = sqlite3_step(st->st_mbox_bump);
		if (rc != SQLITE_ROW) {
			if (rc == SQLITE_DONE)
				set_error(error_r, "mailbox %s of account %s does not exist",
				          mailbox, d->accounts[i]);
			else
				db_fail(st->wdb, error_r, "database");
			stmt_done(st->st_mbox_bump);
			return -1;
		}
		mbox_id = sqlite3_column_int64(st->st_mbox_bump, 0);
		uid = sqlite3_column_int64(st->st_mbox_bump, 1);
		modseq = sqlite3_column_int64(st->st_mbox_bump, 2);
		/* Step to completion so the UPDATE ... RETURNING is finished. */
		rc = sqlite3_step(st->st_mbox_bump);
		stmt_done(st->st_mbox_bump);
		if (rc != SQLITE_DONE)
			return db_fail(st->wdb, error_r, "database");
		if (uid <= 0 || uid >= (int64_t)UINT32_MAX) {
			set_error(error_r, "mailbox %s of account %s has run out of UIDs", mailbox,
			          d->accounts[i]);
			return -1;
		}

		sqlite3_bind_int64(st->st_msg_insert, 1, mbox_id);
		sqlite3_bind_int64(st->st_msg_insert, 2, uid);
		sqlite3_bind_text(st->st_msg_insert, 3, r->blob_id, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st->st_msg_insert, 4, (int64_t)r->len);
		sqlite3_bind_int64(st->st_msg_insert, 5, r->internal_date);
		sqlite3_bind_text(st->st_msg_insert, 6, r->flags, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st->st_msg_insert, 7, modseq);
		rc = sqlite3_step(st->st_msg_insert);
		stmt_done(st->st_msg_insert);
		if (rc != SQLITE_DONE)
			return db_fail(st->wdb, error_r, "database");
		if (r->uids_r != NULL)
			r->uids_r[i] = (uint32_t)uid;
	}
	if (r->queue_rcpts != NULL && gc_queue_one(st, r, error_r) < 0)
		return -1;
	return 1;
}

/* A failed delivery leaves its blob file behind (another delivery may share it, so
 * it cannot simply be unlinked). Make sure a blob row exists for it so that the
 * sweep removes the file if nothing references it. Best effort. */
static void gc_register_orphan(struct store *st, struct store_gc_req *r)
{
	sqlite3_bind_text(st->st_blob_ref, 1, r->blob_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st->st_blob_ref, 2, (int64_t)r->len);
	sqlite3_bind_int64(st->st_blob_ref, 3, 0);
	(void)sqlite3_step(st->st_blob_ref);
	stmt_done(st->st_blob_ref);
}

static void gc_fail_all(struct store_gc_req *batch, const char *error)
{
	for (struct store_gc_req *r = batch; r != NULL; r = r->next) {
		if (r->result < 0)
			continue; /* keeps its own, more precise error */
		r->result = -1;
		r->error = xstrdup(error);
	}
}

/* Makes the blobs of a batch durable before their metadata is committed: one
 * syncfs() of the file system holding data_dir flushes every file and directory
 * entry of the batch in one writeback pass and one journal commit, where a fsync
 * per file (and per directory) would pay that cost for each message. On failure
 * every request moves to *failed with result -1. */
static void gc_sync_blobs(struct store *st, struct store_gc_req **batch,
                          struct store_gc_req **failed)
{
	int err = 0;
	if (st->fsync && syncfs(st->data_fd) < 0)
		err = errno;
	for (struct store_gc_req *r = *batch; r != NULL; r = r->next)
		blob_write_sync(st->data_dir, r->blob, false, NULL); /* releases it */
	if (err == 0)
		return;
	for (struct store_gc_req *r = *batch; r != NULL; r = r->next) {
		r->result = -1;
		set_error(&r->error, "syncfs %s: %s", st->data_dir, strerror(err));
	}
	*failed = *batch;
	*batch = NULL;
}

/* Commits a batch of queued deliveries in one transaction. Sets each r->result. */
static void gc_commit_batch(struct store *st, struct store_gc_req *batch)
{
	char *error = NULL;

	for (struct store_gc_req *r = batch; r != NULL; r = r->next)
		r->result = 0;

	pthread_mutex_lock(&st->wmu);
	if (db_exec(st->wdb, "BEGIN IMMEDIATE", &error) < 0) {
		gc_fail_all(batch, error != NULL ? error : "database: BEGIN failed");
		goto out;
	}
	for (struct store_gc_req *r = batch; r != NULL; r = r->next) {
		char *err = NULL;

		if (db_exec(st->wdb, "SAVEPOINT delivery", &err) < 0) {
			r->result = -1;
			r->error = err;
			continue;
		}
		if (gc_deliver_one(st, r, &err) < 0) {
			r->result = -1;
			r->error = err != NULL ? err : xstrdup("delivery failed");
			if (db_exec(st->wdb, "ROLLBACK TO delivery; RELEASE delivery", NULL) < 0) {
				/* The transaction is unusable: fail what is left. */
				db_rollback(st->wdb);
				gc_fail_all(batch, "database: savepoint rollback failed");
				goto out;
			}
			gc_register_orphan(st, r);
			continue;
		}
		if (db_exec(st->wdb, "RELEASE delivery", &err) < 0) {
			db_rollback(st->wdb);
			gc_fail_all(batch, err != NULL ? err : "database: release failed");
			free(err);
			goto out;
		}
	}
	/* The one fsync of the batch happens here (synchronous=FULL). */
	if (db_exec(st->wdb, "COMMIT", &error) < 0) {
		db_rollback(st->wdb);
		gc_fail_all(batch, error != NULL ? error : "database: COMMIT failed");
		goto out;
	}
	for (struct store_gc_req *r = batch; r != NULL; r = r->next) {
		if (r->result == 0)
			r->result = 1;
	}
out:
	pthread_mutex_unlock(&st->wmu);
	free(error);
}

/* Checks and normalizes the queue envelope of d into req (domains lower-cased; local
 * parts kept as given: a remote server decides what they mean, RFC 5321 2.4). */
static int queue_envelope_normalize(const struct store_delivery *d, struct store_gc_req *req,
                                    char **error_r)
{
	const char *sender = d->queue_sender != NULL ? d->queue_sender : "";

	if (d->nqueue_rcpts > STORE_QUEUE_RCPTS_MAX) {
		set_error(error_r, "store_deliver: too many queue recipients");
		return -1;
	}
	if (d->queue_account != NULL && !text_ok(d->queue_account)) {
		set_error(error_r, "store_deliver: invalid queue account");
		return -1;
	}
	if (d->queue_envid != NULL &&
	    (d->queue_envid[0] == '\0' || strlen(d->queue_envid) > STORE_ENVID_MAX ||
	     !text_ok(d->queue_envid))) {
		set_error(error_r, "store_deliver: invalid ENVID");
		return -1;
	}
	if (d->queue_ret < STORE_RET_NONE || d->queue_ret > STORE_RET_HDRS ||
	    d->queue_body < STORE_BODY_7BIT || d->queue_body > STORE_BODY_BINARYMIME) {
		set_error(error_r, "store_deliver: invalid RET or BODY");
		return -1;
	}
	for (size_t i = 0; d->queue_notify != NULL && i < d->nqueue_rcpts; i++) {
		unsigned n = d->queue_notify[i];
		/* RFC 3461 4.1: NEVER excludes the others */
		if ((n & ~0xfu) != 0 || ((n & STORE_NOTIFY_NEVER) && n != STORE_NOTIFY_NEVER)) {
			set_error(error_r, "store_deliver: invalid NOTIFY");
			return -1;
		}
	}
	if (*sender == '\0')
		req->queue_sender = xstrdup("");
	else if (addr_normalize_ex(sender, false, true, &req->queue_sender, NULL, error_r) < 0)
		return -1;
	req->queue_rcpts = calloc(d->nqueue_rcpts + 1, sizeof(*req->queue_rcpts));
	if (req->queue_rcpts == NULL)
		abort();
	for (size_t i = 0; i < d->nqueue_rcpts; i++) {
		if (addr_normalize_ex(d->queue_rcpts[i], false, true, &req->queue_rcpts[i], NULL,
		                      error_r) < 0) {
			queue_envelope_free(req);
			return -1;
		}
	}
	if (d->queue_orcpt != NULL) {
		req->queue_orcpt = calloc(d->nqueue_rcpts, sizeof(*req->queue_orcpt));
		if (req->queue_orcpt == NULL) {
			queue_envelope_free(req);
			set_error(error_r, "out of memory");
			return -1;
		}
		for (size_t i = 0; i < d->nqueue_rcpts; i++) {
			const char *o = d->queue_orcpt[i];
			if (o == NULL)
				continue;
			if (*o == '\0' || strlen(o) > STORE_ORCPT_MAX || !text_ok(o)) {
				queue_envelope_free(req);
				set_error(error_r, "store_deliver: invalid ORCPT");
				return -1;
			}
			req->queue_orcpt[i] = xstrdup(o);
		}
	}
	return 1;
}

static long deliver_base_read(struct deliver_src *ds, void *buf, size_t len, uint64_t off)
{
	if (ds->msg != NULL)
		return store_msg_pread(ds->msg, buf, len, off);
	memcpy(buf, ds->data + off, len);
	return (long)len;
}

/* blob_src reader of the stored bytes: base[0..at) + ins + base[at..). */
static long deliver_src_read(void *ctx, void *buf, size_t len, uint64_t off)
{
	struct deliver_src *ds = ctx;

	if (off < ds->at) {
		size_t n = ds->at - off < len ? (size_t)(ds->at - off) : len;
		return deliver_base_read(ds, buf, n, off);
	}
	if (off - ds->at < ds->ins_len) {
		size_t skip = (size_t)(off - ds->at), n = ds->ins_len - skip < len ? ds->ins_len - skip : len;
		memcpy(buf, ds->ins + skip, n);
		return (long)n;
	}
	return deliver_base_read(ds, buf, len, off - ds->ins_len);
}

/* Sets up req's source of the stored bytes and writes the blob file (not synced). */
static int deliver_blob_begin(struct store *st, struct store_delivery *d, struct store_gc_req *req,
                              struct blob_pending *blob, char **error_r)
{
	char id[BLOB_ID_LEN + 1];
	const char *known_id = NULL;
	uint64_t base_size;

	req->ds.data = d->data != NULL ? d->data : "";
	req->ds.msg = d->msg;
	base_size = d->msg != NULL ? store_msg_size(d->msg) : d->len;
	if (d->msg != NULL && (d->msg->failed || d->msg->delivered)) {
		set_error(error_r, "store_deliver: message not complete");
		return -1;
	}
	if (d->insert_len > 0) {
		if (d->insert == NULL || d->insert_at > base_size ||
		    d->insert_len > UINT64_MAX - base_size) {
			set_error(error_r, "store_deliver: invalid insert");
			return -1;
		}
		req->ds.at = d->insert_at;
		req->ds.ins = d->insert;
		req->ds.ins_len = d->insert_len;
	}
	req->len = base_size + d->insert_len;
	if (d->trace_len > req->len) {
		set_error(error_r, "store_deliver: trace_len past the message");
		return -1;
	}
	req->src.size = req->len;
	req->src.read = deliver_src_read;
	req->src.ctx = &req->ds;
	req->src.link_fd = -1;
	if (d->msg != NULL && d->insert_len == 0) {
		/* The writer's running hash names the blob; its spill file becomes the
		 * blob file itself. */
		if (store_msg_digest(d->msg, id) < 0) {
			set_error(error_r, "SHA-256 failed");
			return -1;
		}
		known_id = id;
		req->src.link_fd = d->msg->fd;
	}
	return blob_write_begin_src(st->data_dir, &req->src, known_id, blob, error_r);
}

int store_msg_begin(struct store *st, struct store_msg **m_r, char **error_r)
{
	return store_msg_create(st->data_dir, m_r, error_r);
}

int store_deliver(struct store *st, struct store_delivery *d, uint32_t *uids_r,
                  char **error_r)
{
	struct store_gc_req req = {0};
	struct blob_pending blob;
	char *flags = NULL;

	if (d == NULL || (d->naccounts == 0 && d->nqueue_rcpts == 0) ||
	    (d->naccounts > 0 && d->accounts == NULL) ||
	    (d->nqueue_rcpts > 0 && d->queue_rcpts == NULL) || (d->data == NULL && d->len > 0)) {
		set_error(error_r, "store_deliver: no recipients");
		return -1;
	}
	d->queue_id = 0;
	req.d = d;
	if (d->nqueue_rcpts > 0 && queue_envelope_normalize(d, &req, error_r) < 0)
		return -1;
	if (flags_normalize(d->flags, &flags, error_r) < 0) {
		queue_envelope_free(&req);
		return -1;
	}
	/* Written here, in parallel with other deliveries; the leader makes it
	 * durable (file and directory entries fsync'd) before committing metadata
	 * that points at it. */
	if (deliver_blob_begin(st, d, &req, &blob, error_r) < 0) {
		queue_envelope_free(&req);
		free(flags);
		return -1;
	}

	req.blob = &blob;
	req.blob_id = blob.id;
	req.flags = flags;
	req.created = (int64_t)time(NULL);
	req.internal_date = d->internal_date != 0 ? d->internal_date : req.created;
	req.uids_r = uids_r;

	pthread_mutex_lock(&st->gc_mu);
	*st->gc_tail = &req;
	st->gc_tail = &req.next;
	while (!req.done) {
		if (st->gc_busy) {
			pthread_cond_wait(&st->gc_cond, &st->gc_mu);
			continue;
		}
		/* Become the leader: take everything queued, including our own. */
		struct store_gc_req *batch = st->gc_head;
		st->gc_head = NULL;
		st->gc_tail = &st->gc_head;
		st->gc_busy = true;
		pthread_mutex_unlock(&st->gc_mu);

		struct store_gc_req *failed = NULL;
		gc_sync_blobs(st, &batch, &failed);
		if (batch != NULL)
			gc_commit_batch(st, batch);

		pthread_mutex_lock(&st->gc_mu);
		/* Followers sleep on gc_mu, so the list stays valid until we unlock. */
		for (struct store_gc_req *r = batch; r != NULL; r = r->next)
			r->done = true;
		for (struct store_gc_req *r = failed; r != NULL; r = r->next)
			r->done = true;
		st->gc_busy = false;
		pthread_cond_broadcast(&st->gc_cond);
	}
	pthread_mutex_unlock(&st->gc_mu);

	queue_envelope_free(&req);
	free(flags);
	if (d->msg != NULL)
		d->msg->delivered = req.result > 0;
	if (req.result < 0) {
		if (error_r != NULL)
			*error_r = req.error;
		else
			free(req.error);
		return -1;
	}
	return 1;
}

/* ---- reading ---- */

/* Looks up a mailbox id on db. 1 found, 0 account or mailbox absent, -1 error. */
static int mailbox_lookup(sqlite3 *db, const char *account, const char *mailbox, int64_t *id_r,
                          char **error_r)
{
	sqlite3_stmt *stmt;
	int rc;

	if (db_prepare(db,
	               "SELECT m.id FROM mailboxes m JOIN accounts a ON a.id = m.account"
	               " WHERE a.address = ?1 AND m.name = ?2",
	               &stmt, error_r) < 0)
		return -1;
	sqlite3_bind_text(stmt, 1, account, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 2, mailbox_normalize(mailbox), -1, SQLITE_STATIC);
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW)
		*id_r = sqlite3_column_int64(stmt, 0);
	else if (rc != SQLITE_DONE)
		db_fail(db, error_r, "database");
	sqlite3_finalize(stmt);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

int store_mailbox_list(struct store *st, const char *account, store_mailbox_cb *cb, void *ctx,
                       char **error_r)
{
	sqlite3_stmt *stmt = NULL;
	sqlite3 *db;
	int rc, ret = -1;

	if (reader_get(st, &db, error_r) < 0)
		return -1;
	if (db_exec(db, "BEGIN", error_r) < 0)
		goto out;
	const char *params[] = {account};
	rc = query_text(db, "SELECT id FROM accounts WHERE address = ?1", params, 1, NULL, error_r);
	if (rc <= 0) {
		ret = rc;
		goto out;
	}
	/* unseen: entries whose flag list lacks \Seen (flags are space-separated;
	 * LIKE is ASCII case-insensitive, as IMAP system flags are). */
	if (db_prepare(db,
	               "SELECT b.name, b.special_use, b.uidvalidity, b.uidnext, b.highestmodseq,"
	               "  count(m.uid),"
	               "  coalesce(sum(m.uid IS NOT NULL AND"
	               "               (' ' || m.flags || ' ') NOT LIKE '% \\Seen %'), 0),"
	               "  coalesce(sum(m.size), 0)"
	               " FROM mailboxes b JOIN accounts a ON a.id = b.account"
	               " LEFT JOIN messages m ON m.mailbox = b.id"
	               " WHERE a.address = ?1"
	               " GROUP BY b.id ORDER BY b.name <> 'INBOX', b.id",
	               &stmt, error_r) < 0)
		goto out;
	sqlite3_bind_text(stmt, 1, account, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		struct store_mailbox_info mb = {
		    .name = (const char *)sqlite3_column_text(stmt, 0),
		    .special_use = (const char *)sqlite3_column_text(stmt, 1),
		    .uidvalidity = (uint32_t)sqlite3_column_int64(stmt, 2),
		    .uidnext = (uint32_t)sqlite3_column_int64(stmt, 3),
		    .highestmodseq = (uint64_t)sqlite3_column_int64(stmt, 4),
		    .messages = (uint32_t)sqlite3_column_int64(stmt, 5),
		    .unseen = (uint32_t)sqlite3_column_int64(stmt, 6),
		    .size = (uint64_t)sqlite3_column_int64(stmt, 7),
		};
		if (mb.name == NULL)
			mb.name = "";
		cb(ctx, &mb);
	}
	if (rc != SQLITE_DONE) {
		db_fail(db, error_r, "database");
		goto out;
	}
	ret = 1;
out:
	sqlite3_finalize(stmt);
	sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	reader_put(st, db);
	return ret;
}

int store_message_list(struct store *st, const char *account, const char *mailbox,
                       store_message_cb *cb, void *ctx, char **error_r)
{
	sqlite3_stmt *stmt = NULL;
	sqlite3 *db;
	int64_t mbox_id;
	int rc, ret = -1;

	if (reader_get(st, &db, error_r) < 0)
		return -1;
	if (db_exec(db, "BEGIN", error_r) < 0)
		goto out;
	rc = mailbox_lookup(db, account, mailbox, &mbox_id, error_r);
	if (rc <= 0) {
		ret = rc;
		goto out;
	}
	if (db_prepare(db,
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
		db_fail(db, error_r, "database");
		goto out;
	}
	ret = 1;
out:
	sqlite3_finalize(stmt);
	sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	reader_put(st, db);
	return ret;
}

int store_message_get(struct store *st, const char *account, const char *mailbox, uint32_t uid,
                      char **data_r, size_t *len_r, char **error_r)
{
	sqlite3_stmt *stmt = NULL;
	char *blob_id = NULL;
	sqlite3 *db;
	int64_t mbox_id;
	int rc, ret = -1;

	if (reader_get(st, &db, error_r) < 0)
		return -1;
	rc = mailbox_lookup(db, account, mailbox, &mbox_id, error_r);
	if (rc <= 0) {
		ret = rc;
		goto out;
	}
	if (db_prepare(db, "SELECT blob FROM messages WHERE mailbox = ?1 AND uid = ?2", &stmt,
	               error_r) < 0)
		goto out;
	sqlite3_bind_int64(stmt, 1, mbox_id);
	sqlite3_bind_int64(stmt, 2, uid);
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_DONE) {
		ret = 0;
		goto out;
	}
	if (rc != SQLITE_ROW) {
		db_fail(db, error_r, "database");
		goto out;
	}
	blob_id = xstrdup((const char *)sqlite3_column_text(stmt, 0) != NULL
	                      ? (const char *)sqlite3_column_text(stmt, 0)
	                      : "");
	ret = 1;
out:
	sqlite3_finalize(stmt);
	reader_put(st, db);
	if (ret != 1) {
		free(blob_id);
		return ret;
	}
	/* Blobs are immutable. Should the message be deleted (and its blob swept)
	 * right now, the read fails with an error, which is what a reader racing a
	 * delete may expect. */
	rc = blob_read(st->data_dir, blob_id, data_r, len_r, error_r);
	if (rc == 0)
		set_error(error_r, "blob %s of message %u is missing", blob_id, uid);
	free(blob_id);
	return rc == 1 ? 1 : -1;
}

int store_blob_get(struct store *st, const char *blob_id, char **data_r, size_t *len_r,
                   char **error_r)
{
	if (!blob_id_valid(blob_id)) {
		set_error(error_r, "invalid blob id");
		return -1;
	}
	return blob_read(st->data_dir, blob_id, data_r, len_r, error_r);
}

int store_blob_open(struct store *st, const char *blob_id, struct store_blob_range *r,
                    char **error_r)
{
	uint64_t size;
	int rc;

	r->fd = -1;
	r->off = r->len = 0;
	if (blob_id == NULL || !blob_id_valid(blob_id)) {
		set_error(error_r, "invalid blob id");
		return -1;
	}
	rc = blob_open(st->data_dir, blob_id, &r->fd, &size, error_r);
	if (rc == 1)
		r->len = size;
	return rc;
}

void store_blob_range_close(struct store_blob_range *r)
{
	if (r->fd >= 0)
		close(r->fd);
	r->fd = -1;
}

/* ---- expunge ---- */

int store_message_expunge(struct store *st, const char *account, const char *mailbox,
                          const uint32_t *uids, size_t n, char **error_r)
{
	sqlite3_stmt *del = NULL, *unref = NULL, *log = NULL, *bump = NULL;
	int64_t mbox_id, modseq = 0;
	int rc, ret = -1;
	size_t removed = 0;

	if (n == 0)
		return 0;
	pthread_mutex_lock(&st->wmu);
	if (db_exec(st->wdb, "BEGIN IMMEDIATE", error_r) < 0)
		goto out;
	rc = mailbox_lookup(st->wdb, account, mailbox, &mbox_id, error_r);
	if (rc <= 0) {
		ret = rc;
		goto rollback;
	}
	/* One MODSEQ for the whole change (RFC 7162 3.1.1: a mailbox change gets a
	 * MODSEQ greater than every earlier one). Bumped first; rolled back with the
	 * rest when nothing was removed. */
	if (db_prepare(st->wdb,
	               "UPDATE mailboxes SET highestmodseq = highestmodseq + 1 WHERE id = ?1"
	               " RETURNING highestmodseq",
	               &bump, error_r) < 0)
		goto rollback;
	sqlite3_bind_int64(bump, 1, mbox_id);
	if (sqlite3_step(bump) != SQLITE_ROW) {
		db_fail(st->wdb, error_r, "database");
		goto rollback;
	}
	modseq = sqlite3_column_int64(bump, 0);
	if (sqlite3_step(bump) != SQLITE_DONE) {
		db_fail(st->wdb, error_r, "database");
		goto rollback;
	}
	if (db_prepare(st->wdb, "DELETE FROM messages WHERE mailbox = ?1 AND uid = ?2 RETURNING blob",
	               &del, error_r) < 0 ||
	    db_prepare(st->wdb, "UPDATE blobs SET refcount = refcount - 1 WHERE id = ?1", &unref,
	               error_r) < 0 ||
	    db_prepare(st->wdb,
	               "INSERT OR REPLACE INTO expunged (mailbox, uid, modseq) VALUES (?1, ?2, ?3)",
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
			db_fail(st->wdb, error_r, "database");
			goto rollback;
		}
		char *blob = xstrdup((const char *)sqlite3_column_text(del, 0) != NULL
		                         ? (const char *)sqlite3_column_text(del, 0)
		                         : "");
		rc = sqlite3_step(del);
		if (rc != SQLITE_DONE) {
			free(blob);
			db_fail(st->wdb, error_r, "database");
			goto rollback;
		}
		sqlite3_reset(unref);
		sqlite3_bind_text(unref, 1, blob, -1, SQLITE_TRANSIENT);
		free(blob);
		if (sqlite3_step(unref) != SQLITE_DONE) {
			db_fail(st->wdb, error_r, "database");
			goto rollback;
		}
		sqlite3_reset(log);
		sqlite3_bind_int64(log, 1, mbox_id);
		sqlite3_bind_int64(log, 2, uids[i]);
		sqlite3_bind_int64(log, 3, modseq);
		if (sqlite3_step(log) != SQLITE_DONE) {
			db_fail(st->wdb, error_r, "database");
			goto rollback;
		}
		removed++;
	}
	if (removed == 0) {
		ret = 0; /* nothing changed: keep HIGHESTMODSEQ as it was */
		goto rollback;
	}
	if (db_exec(st->wdb, "COMMIT", error_r) < 0)
		goto rollback;
	ret = removed > INT32_MAX ? INT32_MAX : (int)removed;
	goto out;
rollback:
	db_rollback(st->wdb);
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
		(void)store_blob_sweep(st, &err);
		free(err);
	}
	return ret;
}

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

int store_queue_list(struct store *st, store_queue_cb *cb, void *ctx, char **error_r)
{
	sqlite3_stmt *stmt = NULL;
	struct strbuf rcpts = {0};
	struct store_queue_info cur = {0};
	char *sender = NULL, *account = NULL, *blob_id = NULL;
	bool have = false;
	sqlite3 *db;
	int rc, ret = -1;

	if (reader_get(st, &db, error_r) < 0)
		return -1;
	/* One row per recipient, grouped here (not with group_concat, whose order
	 * SQLite does not promise) to list recipients in the order they were queued. */
	if (db_prepare(db,
	               "SELECT q.id, q.sender, q.size, q.created, q.account, q.blob, r.rcpt"
	               " FROM queue q LEFT JOIN queue_rcpts r ON r.queue_id = q.id"
	               " ORDER BY q.created, q.id, r.rowid",
	               &stmt, error_r) < 0)
		goto out;
	for (;;) {
		rc = sqlite3_step(stmt);
		if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
			db_fail(db, error_r, "database");
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
			sender = column_dup(stmt, 1);
			cur.size = (uint64_t)sqlite3_column_int64(stmt, 2);
			cur.created = sqlite3_column_int64(stmt, 3);
			account = column_dup(stmt, 4);
			blob_id = column_dup(stmt, 5);
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
	reader_put(st, db);
	free(sender);
	free(account);
	free(blob_id);
	free(rcpts.s);
	return ret;
}

int store_queue_get(struct store *st, int64_t id, char **data_r, size_t *len_r, char **error_r)
{
	char idbuf[32], *blob_id = NULL;
	int rc;

	snprintf(idbuf, sizeof(idbuf), "%lld", (long long)id);
	const char *params[] = {idbuf};
	rc = rquery_text(st, "SELECT blob FROM queue WHERE id = CAST(?1 AS INTEGER)", params, 1,
	                 &blob_id, error_r);
	if (rc <= 0)
		return rc;
	/* As with messages: a blob removed by a racing delete makes this an error. */
	rc = blob_read(st->data_dir, blob_id, data_r, len_r, error_r);
	if (rc == 0)
		set_error(error_r, "blob %s of queue entry %lld is missing", blob_id,
		          (long long)id);
	free(blob_id);
	return rc == 1 ? 1 : -1;
}
