/* SQLite backend: the schema, its migrations and the writer's prepared statements. */
#include "store/store_sqlite_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <stddef.h>

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
    /* v5: where a blob's bytes are. seg NULL: the file blobs/ab/<id> (every blob
     * before v5, and large ones); else segment file blobs/seg/<seg>, at byte off
     * (blob_seg.h). */
    "ALTER TABLE blobs ADD COLUMN seg INTEGER;"
    "ALTER TABLE blobs ADD COLUMN off INTEGER NOT NULL DEFAULT 0;"
    "CREATE INDEX blobs_seg ON blobs(seg) WHERE seg IS NOT NULL;",
    /* v6: IMAP. mailboxes.noselect: a name kept (without messages) for its
     * inferiors after a DELETE (RFC 9051 6.3.4). Subscriptions are names of their
     * own (RFC 9051 6.3.7: kept whether or not the mailbox exists); they replace
     * mailboxes.subscribed, which is no longer read. uidvalidity_counter hands out
     * every UIDVALIDITY (max(last + 1, now)), so that a re-created name never gets
     * one it had (RFC 9051 2.3.1.1). blob_cache: what is derived once from a blob
     * (the MIME structure), removed with the blob by the sweep. */
    "ALTER TABLE mailboxes ADD COLUMN noselect INTEGER NOT NULL DEFAULT 0;"
    "CREATE TABLE subscriptions ("
    "  account INTEGER NOT NULL REFERENCES accounts(id),"
    "  name TEXT NOT NULL,"
    "  PRIMARY KEY (account, name)) WITHOUT ROWID;"
    "INSERT INTO subscriptions (account, name)"
    "  SELECT account, name FROM mailboxes WHERE subscribed <> 0;"
    "CREATE TABLE uidvalidity_counter ("
    "  id INTEGER PRIMARY KEY CHECK (id = 1),"
    "  last INTEGER NOT NULL);"
    "INSERT INTO uidvalidity_counter (id, last)"
    "  SELECT 1, coalesce(max(uidvalidity), 0) FROM mailboxes;"
    "CREATE TABLE blob_cache ("
    "  blob TEXT PRIMARY KEY,"
    "  data BLOB NOT NULL);",
    /* v7: each mailbox's counts (entries, without \Seen, with \Deleted, octets),
     * kept by triggers, so that STATUS and SELECT read one row however large the
     * mailbox (LIKE is ASCII case-insensitive, as IMAP system flags are). */
    "ALTER TABLE mailboxes ADD COLUMN n_messages INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE mailboxes ADD COLUMN n_unseen INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE mailboxes ADD COLUMN n_deleted INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE mailboxes ADD COLUMN n_size INTEGER NOT NULL DEFAULT 0;"
    "UPDATE mailboxes SET"
    "  n_messages = (SELECT count(*) FROM messages m WHERE m.mailbox = mailboxes.id),"
    "  n_unseen = (SELECT count(*) FROM messages m WHERE m.mailbox = mailboxes.id"
    "              AND (' ' || m.flags || ' ') NOT LIKE '% \\Seen %'),"
    "  n_deleted = (SELECT count(*) FROM messages m WHERE m.mailbox = mailboxes.id"
    "               AND (' ' || m.flags || ' ') LIKE '% \\Deleted %'),"
    "  n_size = (SELECT coalesce(sum(size), 0) FROM messages m"
    "            WHERE m.mailbox = mailboxes.id);"
    "CREATE TRIGGER messages_count_insert AFTER INSERT ON messages BEGIN"
    "  UPDATE mailboxes SET n_messages = n_messages + 1, n_size = n_size + NEW.size,"
    "    n_unseen = n_unseen + ((' ' || NEW.flags || ' ') NOT LIKE '% \\Seen %'),"
    "    n_deleted = n_deleted + ((' ' || NEW.flags || ' ') LIKE '% \\Deleted %')"
    "  WHERE id = NEW.mailbox;"
    "END;"
    "CREATE TRIGGER messages_count_delete AFTER DELETE ON messages BEGIN"
    "  UPDATE mailboxes SET n_messages = n_messages - 1, n_size = n_size - OLD.size,"
    "    n_unseen = n_unseen - ((' ' || OLD.flags || ' ') NOT LIKE '% \\Seen %'),"
    "    n_deleted = n_deleted - ((' ' || OLD.flags || ' ') LIKE '% \\Deleted %')"
    "  WHERE id = OLD.mailbox;"
    "END;"
    "CREATE TRIGGER messages_count_flags AFTER UPDATE OF flags ON messages"
    "  WHEN NEW.flags <> OLD.flags BEGIN"
    "  UPDATE mailboxes SET"
    "    n_unseen = n_unseen + ((' ' || NEW.flags || ' ') NOT LIKE '% \\Seen %')"
    "                        - ((' ' || OLD.flags || ' ') NOT LIKE '% \\Seen %'),"
    "    n_deleted = n_deleted + ((' ' || NEW.flags || ' ') LIKE '% \\Deleted %')"
    "                          - ((' ' || OLD.flags || ' ') LIKE '% \\Deleted %')"
    "  WHERE id = NEW.mailbox;"
    "END;",
    /* v8: the expunge log is pruned (sqlite_expunge_log_prune). expunged.time:
     * when the entry was removed (unix seconds; entries older than v8 count from
     * the migration). mailboxes.expunge_floor: the log holds every expunge with
     * a MODSEQ above it (0: complete since the mailbox began); a client whose
     * MODSEQ is older is told every UID without an entry instead (RFC 7162
     * 3.2.5.2, 3.2.6). */
    "ALTER TABLE expunged ADD COLUMN time INTEGER NOT NULL DEFAULT 0;"
    "UPDATE expunged SET time = CAST(strftime('%s', 'now') AS INTEGER);"
    "ALTER TABLE mailboxes ADD COLUMN expunge_floor INTEGER NOT NULL DEFAULT 0;",
    /* v9: the queue runner. queue.held: the administrator holds the entry (not
     * leased until released; store_queue_hold). Recipients keep the states of
     * v2 ('pending' until tried, then 'deferred' with last_reply; 'bounce' when
     * the administrator bounced them); delivered and bounced ones are removed,
     * and the entry with the last of them (store_queue_record). */
    "ALTER TABLE queue ADD COLUMN held INTEGER NOT NULL DEFAULT 0;",
    /* v10: queue.warned: the sender has been sent a delay warning for the entry
     * (once: store_queue_set_warned). */
    "ALTER TABLE queue ADD COLUMN warned INTEGER NOT NULL DEFAULT 0;",
    /* v11: queue.tls: what the sender asked of TLS (STORE_TLS_*: REQUIRETLS,
     * TLS-Required: No; RFC 8689). */
    "ALTER TABLE queue ADD COLUMN tls INTEGER NOT NULL DEFAULT 0;",
    /* v12: outbound TLS session counts per day and policy domain, for the
     * daily TLS reports (RFC 8460; store_tlsrpt_add). */
    "CREATE TABLE tlsrpt ("
    "  day TEXT NOT NULL, domain TEXT NOT NULL, policy_type TEXT NOT NULL,"
    "  policy TEXT NOT NULL, mx TEXT NOT NULL, result TEXT NOT NULL,"
    "  sending_ip TEXT NOT NULL, receiving_ip TEXT NOT NULL, count INTEGER NOT NULL,"
    "  PRIMARY KEY (day, domain, policy_type, policy, mx, result, sending_ip, receiving_ip)"
    ") WITHOUT ROWID;",
    /* v13: the MTA-STS policy cache (RFC 8461 5.1): per recipient domain the
     * policy file as fetched, the TXT record's id it was fetched under, when,
     * and until when it may be used (fetched + max_age). */
    "CREATE TABLE mta_sts ("
    "  domain TEXT PRIMARY KEY COLLATE NOCASE,"
    "  id TEXT NOT NULL,"
    "  policy TEXT NOT NULL,"
    "  fetched INTEGER NOT NULL,"
    "  expires INTEGER NOT NULL);",
};
#define STORE_SCHEMA_VERSION ((int)(sizeof(migrations) / sizeof(migrations[0])))

int sqlite_migrate(struct store_backend *st, char **error_r)
{
	sqlite3 *db = st->wdb;
	sqlite3_stmt *stmt;
	int version = 0;

	if (sqlite_db_exec(db, "BEGIN IMMEDIATE", error_r) < 0)
		return -1;
	if (sqlite_db_exec(db,
	                   "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)",
	                   error_r) < 0)
		goto fail;
	if (sqlite_db_prepare(db, "SELECT coalesce(max(version), 0) FROM schema_version", &stmt,
	                      error_r) < 0)
		goto fail;
	if (sqlite3_step(stmt) == SQLITE_ROW)
		version = sqlite3_column_int(stmt, 0);
	sqlite3_finalize(stmt);
	if (version > STORE_SCHEMA_VERSION) {
		str_error(
		    error_r, "database schema version %d is newer than this hermod supports (%d)",
		    version, STORE_SCHEMA_VERSION);
		goto fail;
	}
	for (; version < STORE_SCHEMA_VERSION; version++) {
		char sql[64];

		if (sqlite_db_exec(db, migrations[version], error_r) < 0)
			goto fail;
		snprintf(sql, sizeof(sql), "INSERT INTO schema_version VALUES (%d)", version + 1);
		if (sqlite_db_exec(db, sql, error_r) < 0)
			goto fail;
	}
	if (sqlite_db_exec(db, "COMMIT", error_r) < 0)
		goto fail;
	return 1;
fail:
	sqlite_db_rollback(db);
	return -1;
}

int sqlite_prepare_writer(struct store_backend *st, char **error_r)
{
	static const struct {
		size_t off;
		const char *sql;
	} stmts[] = {
	    {offsetof(struct store_backend, st_mbox_bump),
	     "UPDATE mailboxes SET uidnext = uidnext + 1, highestmodseq = highestmodseq + 1"
	     " WHERE id = (SELECT m.id FROM mailboxes m JOIN accounts a ON a.id = m.account"
	     "             WHERE a.address = ?1 AND m.name = ?2 AND m.noselect = 0)"
	     " RETURNING id, uidnext - 1, highestmodseq, uidvalidity"},
	    {offsetof(struct store_backend, st_blob_ref),
	     /* Content already stored keeps its place, unless nothing refers to it
	      * any more (the sweep may be about to remove it): then the new copy's
	      * place replaces it. */
	     "INSERT INTO blobs (id, size, refcount, seg, off) VALUES (?1, ?2, ?3, ?4, ?5)"
	     " ON CONFLICT (id) DO UPDATE SET refcount = refcount + excluded.refcount,"
	     "   seg = CASE WHEN refcount <= 0 THEN excluded.seg ELSE seg END,"
	     "   off = CASE WHEN refcount <= 0 THEN excluded.off ELSE off END"},
	    {offsetof(struct store_backend, st_msg_insert),
	     "INSERT INTO messages (mailbox, uid, blob, size, internal_date, flags, modseq)"
	     " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"},
	    {offsetof(struct store_backend, st_queue_insert),
	     "INSERT INTO queue (blob, sender, account, size, created, next_attempt,"
	     "                   body, smtputf8, envid, ret, trace_len, tls)"
	     " VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"},
	    /* The caller deduplicates; a repeated recipient is queued once. */
	    {offsetof(struct store_backend, st_queue_rcpt),
	     "INSERT OR IGNORE INTO queue_rcpts (queue_id, rcpt, notify, orcpt)"
	     " VALUES (?1, ?2, ?3, ?4)"},
	    {offsetof(struct store_backend, st_savepoint), "SAVEPOINT delivery"},
	    {offsetof(struct store_backend, st_release), "RELEASE delivery"},
	};

	for (size_t i = 0; i < sizeof(stmts) / sizeof(stmts[0]); i++) {
		sqlite3_stmt **p = (sqlite3_stmt **)((char *)st + stmts[i].off);
		if (sqlite3_prepare_v3(st->wdb, stmts[i].sql, -1, SQLITE_PREPARE_PERSISTENT, p,
		                       NULL) != SQLITE_OK)
			return sqlite_db_fail(st->wdb, error_r, "database prepare");
	}
	return 1;
}
