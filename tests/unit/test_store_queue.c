/* Unit tests for the store's credentials, sender ownership and outbound queue
 * (schema v2), and the migration of a v1 database. */
#include "unit.h"

#include "store/blob.h"
#include "store/store.h"

#include <ftw.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char base_dir[] = "/tmp/hermod-test-store-queue.XXXXXX";

static int rm_cb(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	return remove(path);
}

static int nfiles;
static int count_cb(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	if (type == FTW_F)
		nfiles++;
	return 0;
}

static int count_blob_files(const char *data_dir)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/blobs", data_dir);
	nfiles = 0;
	nftw(path, count_cb, 16, FTW_PHYS);
	return nfiles;
}

static struct store *open_store(const char *data_dir)
{
	struct store_options opts = {.data_dir = data_dir, .fsync = false, .segments_off = true};
	struct store *st = NULL;
	char *error = NULL;

	if (store_open(&opts, &st, &error) != 1) {
		fprintf(stderr, "store_open %s: %s\n", data_dir, error ? error : "?");
		free(error);
		exit(1);
	}
	return st;
}

/* The first column of the first row of sql on data_dir's database, as an integer
 * (-1 on any failure). Read through a separate connection, as another process would. */
static long long db_int(const char *data_dir, const char *sql)
{
	char path[512];
	sqlite3 *db = NULL;
	sqlite3_stmt *stmt = NULL;
	long long v = -1;

	snprintf(path, sizeof(path), "%s/hermod.db", data_dir);
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, sql, -1, &stmt, NULL) == SQLITE_OK &&
	    sqlite3_step(stmt) == SQLITE_ROW)
		v = sqlite3_column_int64(stmt, 0);
	sqlite3_finalize(stmt);
	sqlite3_close(db);
	return v;
}

/* ---- credentials ---- */

/* "account|hash|scram" or "absent" / "ERR" */
static char creds_buf[512];
static const char *creds(struct store *st, const char *login)
{
	char *account = NULL, *hash = NULL, *scram = NULL, *error = NULL;
	int rc = store_account_get_credentials(st, login, &account, &hash, &scram, &error);

	if (rc < 0)
		snprintf(creds_buf, sizeof(creds_buf), "ERR");
	else if (rc == 0)
		snprintf(creds_buf, sizeof(creds_buf), "absent");
	else
		snprintf(creds_buf, sizeof(creds_buf), "%s|%s|%s", account ? account : "(null)",
		         hash ? hash : "(null)", scram ? scram : "(null)");
	if (rc == 0)
		CHECK(account == NULL && hash == NULL && scram == NULL);
	free(account);
	free(hash);
	free(scram);
	free(error);
	return creds_buf;
}

static void setup_accounts(struct store *st)
{
	CHECK(store_domain_add(st, "example.test", NULL) == 1);
	CHECK(store_domain_add(st, "other.test", NULL) == 1);
	CHECK(store_account_add(st, "Alice@example.test", "$y$hash-a", NULL) == 1);
	CHECK(store_account_add(st, "bob@example.test", "$y$hash-b", NULL) == 1);
	CHECK(store_account_add(st, "carol@other.test", "$y$hash-c", NULL) == 1);
}

static const char scram1[] = "SCRAM-SHA-256$4096:c2FsdHNhbHQ=$c3RvcmVk:c2VydmVy";
static const char scram2[] = "SCRAM-SHA-256$8192:b3RoZXI=$YWJj:ZGVm";

static void test_credentials(struct store *st)
{
	char *error = NULL;

	/* no SCRAM credentials until set */
	CHECK_STR(creds(st, "alice@example.test"), "Alice@example.test|$y$hash-a|(null)");
	CHECK(store_account_set_scram(st, "ALICE@Example.TEST", scram1, NULL) == 1);
	CHECK_STR(creds(st, "alice@example.test"),
	          "Alice@example.test|$y$hash-a|SCRAM-SHA-256$4096:c2FsdHNhbHQ=$c3RvcmVk:c2VydmVy");
	/* case-insensitive: domain, and the local part (ASCII) */
	CHECK_STR(creds(st, "ALICE@EXAMPLE.TEST"),
	          "Alice@example.test|$y$hash-a|SCRAM-SHA-256$4096:c2FsdHNhbHQ=$c3RvcmVk:c2VydmVy");
	CHECK_STR(creds(st, "aLiCe@example.Test"),
	          "Alice@example.test|$y$hash-a|SCRAM-SHA-256$4096:c2FsdHNhbHQ=$c3RvcmVk:c2VydmVy");
	/* a login is an account: no plus-tags, aliases or catch-alls */
	CHECK(store_alias_add(st, "info@example.test", "alice@example.test", NULL) == 1);
	CHECK(store_alias_add(st, "@other.test", "carol@other.test", NULL) == 1);
	CHECK_STR(creds(st, "alice+tag@example.test"), "absent");
	CHECK_STR(creds(st, "info@example.test"), "absent");
	CHECK_STR(creds(st, "whoever@other.test"), "absent");
	CHECK_STR(creds(st, "alice@nowhere.test"), "absent");
	/* a login that is no address at all is "absent", not an error */
	CHECK_STR(creds(st, "alice"), "absent");
	CHECK_STR(creds(st, ""), "absent");
	CHECK_STR(creds(st, "al ice@example.test"), "absent");
	/* out pointers may be NULL */
	CHECK(store_account_get_credentials(st, "bob@example.test", NULL, NULL, NULL, NULL) == 1);
	char *account = NULL;
	CHECK(store_account_get_credentials(st, "BOB@example.test", &account, NULL, NULL, NULL) ==
	      1);
	CHECK_STR(account, "bob@example.test");
	free(account);

	/* replace, clear, absent account, bad values */
	CHECK(store_account_set_scram(st, "alice@example.test", scram2, NULL) == 1);
	CHECK_STR(creds(st, "alice@example.test"),
	          "Alice@example.test|$y$hash-a|SCRAM-SHA-256$8192:b3RoZXI=$YWJj:ZGVm");
	CHECK(store_account_set_scram(st, "alice@example.test", NULL, NULL) == 1);
	CHECK_STR(creds(st, "alice@example.test"), "Alice@example.test|$y$hash-a|(null)");
	CHECK(store_account_set_scram(st, "zed@example.test", scram1, NULL) == 0);
	CHECK(store_account_set_scram(st, "alice@example.test", "", &error) == -1);
	CHECK_STR(error, "invalid SCRAM credentials");
	free(error);
	error = NULL;
	CHECK(store_account_set_scram(st, "alice@example.test", "a\nb", NULL) == -1);
	CHECK(store_account_set_scram(st, "not-an-address", scram1, NULL) == -1);

	/* a new password clears SCRAM keys derived from the old one */
	CHECK(store_account_set_scram(st, "bob@example.test", scram1, NULL) == 1);
	CHECK(store_account_set_password(st, "bob@example.test", "$y$new-b", NULL) == 1);
	CHECK_STR(creds(st, "bob@example.test"), "bob@example.test|$y$new-b|(null)");
	CHECK(store_account_set_scram(st, "bob@example.test", scram2, NULL) == 1);
	CHECK_STR(creds(st, "bob@example.test"),
	          "bob@example.test|$y$new-b|SCRAM-SHA-256$8192:b3RoZXI=$YWJj:ZGVm");
}

/* ---- sender ownership ---- */

static void test_owns(struct store *st)
{
	/* aliases: info -> alice (from test_credentials), @other.test -> carol */
	CHECK(store_alias_add(st, "team@example.test", "bob@example.test", NULL) == 1);
	CHECK(store_alias_add(st, "team@example.test", "alice@example.test", NULL) == 1);
	CHECK(store_alias_add(st, "sales@example.test", "team@example.test", NULL) == 1);
	CHECK(store_alias_add(st, "press@example.test", "alice+press@example.test", NULL) == 1);
	CHECK(store_alias_add(st, "ext@example.test", "someone@remote.test", NULL) == 1);
	CHECK(store_alias_add(st, "gone@example.test", "nobody@other.test", NULL) == 1);
	CHECK(store_alias_add(st, "loop1@example.test", "loop2@example.test", NULL) == 1);
	CHECK(store_alias_add(st, "loop2@example.test", "loop1@example.test", NULL) == 1);
	CHECK(store_alias_add(st, "deep1@example.test", "deep2@example.test", NULL) == 1);
	CHECK(store_alias_add(st, "deep2@example.test", "deep3@example.test", NULL) == 1);
	CHECK(store_alias_add(st, "deep3@example.test", "carol@other.test", NULL) == 1);
	/* alias rows shadowed by an account (resolve never reads them) */
	CHECK(store_alias_add(st, "bob@example.test", "carol@other.test", NULL) == 1);
	/* an alias for a plus-address */
	CHECK(store_alias_add(st, "alice+bob@example.test", "bob@example.test", NULL) == 1);

	static const struct {
		const char *account, *address;
		int expect;
	} cases[] = {
	    /* own address, any case */
	    {"Alice@example.test", "Alice@example.test", 1},
	    {"alice@example.test", "ALICE@EXAMPLE.TEST", 1},
	    {"ALICE@EXAMPLE.TEST", "alice@example.test", 1},
	    /* plus-addresses */
	    {"alice@example.test", "alice+news@example.test", 1},
	    {"alice@example.test", "Alice+A+B@Example.Test", 1},
	    {"alice@example.test", "alice+@example.test", 1},
	    {"alice@example.test", "+alice@example.test", 0},
	    {"alice@example.test", "alicex+tag@example.test", 0},
	    {"alice@example.test", "alice+tag@other.test", 0},
	    {"bob@example.test", "alice+news@example.test", 0},
	    /* ... unless that plus-address has alias rows of its own */
	    {"bob@example.test", "alice+bob@example.test", 1},
	    {"alice@example.test", "alice+bob@example.test", 0},
	    /* aliases, several targets, chains, plus-address targets */
	    {"alice@example.test", "info@example.test", 1},
	    {"alice@example.test", "INFO@example.test", 1},
	    {"bob@example.test", "info@example.test", 0},
	    {"alice@example.test", "team@example.test", 1},
	    {"bob@example.test", "team@example.test", 1},
	    {"bob@example.test", "sales@example.test", 1},
	    {"alice@example.test", "sales@example.test", 1},
	    {"carol@other.test", "sales@example.test", 0},
	    {"alice@example.test", "press@example.test", 1},
	    {"carol@other.test", "deep1@example.test", 1},
	    /* plus-address of an alias: not listed as owned */
	    {"alice@example.test", "info+x@example.test", 0},
	    /* catch-all does not count, directly or at the end of a chain */
	    {"carol@other.test", "whoever@other.test", 0},
	    {"carol@other.test", "gone@example.test", 0},
	    {"carol@other.test", "nobody@other.test", 0},
	    /* other accounts, shadowed alias rows, non-local targets, loops */
	    {"alice@example.test", "bob@example.test", 0},
	    {"carol@other.test", "bob@example.test", 0},
	    {"alice@example.test", "ext@example.test", 0},
	    {"alice@example.test", "loop1@example.test", 0},
	    {"alice@example.test", "someone@remote.test", 0},
	    /* unknown account owns nothing; malformed senders are not owned */
	    {"zed@example.test", "zed@example.test", 0},
	    {"zed@example.test", "info@example.test", 0},
	    {"alice@example.test", "", 0},
	    {"alice@example.test", "alice", 0},
	    {"alice@example.test", "@example.test", 0},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *error = NULL;
		int rc = store_account_owns_address(st, cases[i].account, cases[i].address, &error);
		if (rc != cases[i].expect)
			fprintf(stderr, "owns(%s, %s) = %d (%s), want %d\n", cases[i].account,
			        cases[i].address, rc, error ? error : "", cases[i].expect);
		CHECK(rc == cases[i].expect);
		free(error);
	}
	char *error = NULL;
	CHECK(store_account_owns_address(st, "not-an-address", "alice@example.test", &error) == -1);
	CHECK(error != NULL);
	free(error);
}

/* ---- queue ---- */

struct qlist {
	char buf[4096];
	int n;
	int64_t ids[16];
	int64_t created[16];
};

static void queue_cb(void *ctx, const struct store_queue_info *q)
{
	struct qlist *ql = ctx;
	size_t len = strlen(ql->buf);

	if (ql->n < 16) {
		ql->ids[ql->n] = q->id;
		ql->created[ql->n] = q->created;
	}
	snprintf(ql->buf + len, sizeof(ql->buf) - len, "%s<%s> %llu [%s] %s %.8s",
	         ql->n++ ? "\n" : "", q->sender, (unsigned long long)q->size, q->rcpts, q->account,
	         q->blob_id);
}

static const char qmsg[] = "From: alice@example.test\r\nSubject: out\r\n\r\nhi\r\n";
static const char qmsg2[] = "From: bob@example.test\r\nSubject: both\r\n\r\nyo\r\n";

static void test_queue(struct store *st, const char *data_dir)
{
	struct qlist ql = {0};
	char id[BLOB_ID_LEN + 1], id2[BLOB_ID_LEN + 1], sql[256], *error = NULL;
	int base_files = count_blob_files(data_dir);

	/* empty queue: no callbacks */
	CHECK(store_queue_list(st, queue_cb, &ql, NULL) == 1);
	CHECK(ql.n == 0);

	/* validation: somebody must receive it */
	struct store_delivery none = {.data = qmsg, .len = sizeof(qmsg) - 1};
	CHECK(store_deliver(st, &none, NULL, &error) == -1);
	CHECK_STR(error, "store_deliver: no recipients");
	free(error);
	error = NULL;
	const char *bad_rcpts[] = {"x@remote.test", "no-at-sign"};
	struct store_delivery bad = {.queue_sender = "alice@example.test",
	                             .queue_rcpts = bad_rcpts,
	                             .nqueue_rcpts = 2,
	                             .data = qmsg,
	                             .len = sizeof(qmsg) - 1};
	CHECK(store_deliver(st, &bad, NULL, &error) == -1);
	CHECK_STR(error, "invalid address 'no-at-sign'");
	free(error);
	error = NULL;
	CHECK(count_blob_files(data_dir) == base_files);

	/* queue only: no mailbox entries, one blob referenced once */
	const char *rcpts[] = {"Zed@Remote.TEST", "y@remote.test", "\"a b\"@far.test",
	                       "y@remote.test"};
	struct store_delivery d = {.queue_sender = "alice+x@Example.Test",
	                           .queue_rcpts = rcpts,
	                           .nqueue_rcpts = 4,
	                           .queue_account = "Alice@example.test",
	                           .data = qmsg,
	                           .len = sizeof(qmsg) - 1};
	CHECK(store_deliver(st, &d, NULL, NULL) == 1);
	CHECK(blob_hash(qmsg, sizeof(qmsg) - 1, id) == 1);
	snprintf(sql, sizeof(sql), "SELECT refcount FROM blobs WHERE id = '%s'", id);
	CHECK(db_int(data_dir, sql) == 1);
	CHECK(count_blob_files(data_dir) == base_files + 1);
	CHECK(db_int(data_dir, "SELECT count(*) FROM queue_rcpts WHERE state = 'pending'") == 3);
	CHECK(db_int(data_dir, "SELECT attempts FROM queue") == 0);
	CHECK(db_int(data_dir, "SELECT next_attempt = created FROM queue") == 1);

	/* local and queue recipients: one blob, the refcount covers both */
	const char *accts[] = {"alice@example.test", "carol@other.test"};
	const char *rcpts2[] = {"x@remote.test"};
	struct store_delivery d2 = {.accounts = accts,
	                            .naccounts = 2,
	                            .queue_sender = "",
	                            .queue_rcpts = rcpts2,
	                            .nqueue_rcpts = 1,
	                            .data = qmsg2,
	                            .len = sizeof(qmsg2) - 1};
	uint32_t uids[2] = {0, 0};
	CHECK(store_deliver(st, &d2, uids, NULL) == 1);
	CHECK(uids[0] == 1 && uids[1] == 1);
	CHECK(blob_hash(qmsg2, sizeof(qmsg2) - 1, id2) == 1);
	snprintf(sql, sizeof(sql), "SELECT refcount FROM blobs WHERE id = '%s'", id2);
	CHECK(db_int(data_dir, sql) == 3);
	CHECK(count_blob_files(data_dir) == base_files + 2);

	/* nothing half-delivered: a bad local account fails the queue entry too */
	const char *ghost[] = {"ghost@other.test"};
	struct store_delivery d3 = {.accounts = ghost,
	                            .naccounts = 1,
	                            .queue_sender = "bob@example.test",
	                            .queue_rcpts = rcpts2,
	                            .nqueue_rcpts = 1,
	                            .data = "lost\r\n",
	                            .len = 6};
	CHECK(store_deliver(st, &d3, uids, &error) == -1);
	CHECK_STR(error, "mailbox INBOX of account ghost@other.test does not exist");
	free(error);
	error = NULL;
	CHECK(db_int(data_dir, "SELECT count(*) FROM queue") == 2);

	/* the list: oldest first, recipients in the order given, domains lower-cased */
	memset(&ql, 0, sizeof(ql));
	CHECK(store_queue_list(st, queue_cb, &ql, NULL) == 1);
	CHECK(ql.n == 2);
	char want[1024];
	snprintf(want, sizeof(want),
	         "<alice+x@example.test> %zu [Zed@remote.test y@remote.test \"a b\"@far.test] "
	         "Alice@example.test %.8s\n"
	         "<> %zu [x@remote.test]  %.8s",
	         sizeof(qmsg) - 1, id, sizeof(qmsg2) - 1, id2);
	CHECK_STR(ql.buf, want);
	CHECK(ql.ids[0] < ql.ids[1]);
	CHECK(ql.created[0] > 1600000000 && ql.created[1] >= ql.created[0]);

	/* the message of a queue entry */
	char *data = NULL;
	size_t len = 0;
	CHECK(store_queue_get(st, ql.ids[0], &data, &len, NULL) == 1);
	CHECK(len == sizeof(qmsg) - 1 && data != NULL && memcmp(data, qmsg, len) == 0);
	free(data);
	data = NULL;
	CHECK(store_queue_get(st, ql.ids[1] + 100, &data, &len, NULL) == 0);
	CHECK(data == NULL);

	/* deleting the local recipients' accounts leaves the queue's reference: the
	 * blob survives the sweep */
	CHECK(store_account_del(st, "carol@other.test", NULL) == 1);
	CHECK(db_int(data_dir, sql) == 2);
	CHECK(store_account_add(st, "dave@other.test", "x", NULL) == 1);
	CHECK(store_account_del(st, "dave@other.test", NULL) == 1);
	CHECK(count_blob_files(data_dir) == base_files + 2);
	CHECK(store_queue_get(st, ql.ids[1], &data, &len, NULL) == 1);
	CHECK(len == sizeof(qmsg2) - 1);
	free(data);
}

/* ---- migration from schema v1 ---- */

/* The v1 schema exactly as hermod 0.1 created it (a copy: the store's migration
 * table must never change, and this checks that v1 files upgrade in place). */
static const char v1_schema[] =
    "CREATE TABLE schema_version (version INTEGER NOT NULL);"
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
    "CREATE INDEX messages_modseq ON messages(mailbox, modseq);"
    "INSERT INTO schema_version VALUES (1);"
    /* some v1 data: a domain, an account with its INBOX holding one message
     * (its blob file is written by the test), an alias */
    "INSERT INTO domains VALUES ('old.test', 1700000000);"
    "INSERT INTO accounts (id, address, domain, pwhash, created)"
    "  VALUES (1, 'Old@old.test', 'old.test', '$6$salt$oldhash', 1700000000);"
    "INSERT INTO mailboxes (id, account, name, uidvalidity, uidnext, highestmodseq)"
    "  VALUES (1, 1, 'INBOX', 1700000000, 2, 2);"
    "INSERT INTO aliases VALUES ('postmaster@old.test', 'old@old.test', 'old.test', 1700000000);";

static const char v1_msg[] = "Subject: from v1\r\n\r\nold\r\n";

static void test_migrate_v1(void)
{
	char data_dir[600], path[700], sql[512], id[BLOB_ID_LEN + 1], *err = NULL;
	sqlite3 *db = NULL;

	snprintf(data_dir, sizeof(data_dir), "%s/v1", base_dir);
	CHECK(mkdir(data_dir, 0700) == 0);
	CHECK(blob_dirs_init(data_dir, NULL) == 1);
	CHECK(blob_write(data_dir, v1_msg, sizeof(v1_msg) - 1, false, id, NULL) == 1);
	snprintf(path, sizeof(path), "%s/hermod.db", data_dir);
	CHECK(sqlite3_open(path, &db) == SQLITE_OK);
	CHECK(sqlite3_exec(db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL) == SQLITE_OK);
	CHECK(sqlite3_exec(db, v1_schema, NULL, NULL, &err) == SQLITE_OK);
	if (err != NULL)
		fprintf(stderr, "v1 schema: %s\n", err);
	sqlite3_free(err);
	snprintf(sql, sizeof(sql),
	         "INSERT INTO blobs VALUES ('%s', %zu, 1);"
	         "INSERT INTO messages VALUES (1, 1, '%s', %zu, 1700000000, '\\Seen', 1);",
	         id, sizeof(v1_msg) - 1, id, sizeof(v1_msg) - 1);
	CHECK(sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK);
	sqlite3_close(db);

	struct store *st = open_store(data_dir);
	CHECK(db_int(data_dir, "SELECT max(version) FROM schema_version") >= 2);
	CHECK(db_int(data_dir, "SELECT count(*) FROM schema_version") >= 2);
	/* old data intact, the new column NULL */
	CHECK_STR(creds(st, "old@OLD.test"), "Old@old.test|$6$salt$oldhash|(null)");
	CHECK(store_account_owns_address(st, "old@old.test", "postmaster@old.test", NULL) == 1);
	char *data = NULL;
	size_t len = 0;
	CHECK(store_message_get(st, "old@old.test", "INBOX", 1, &data, &len, NULL) == 1);
	CHECK(len == sizeof(v1_msg) - 1 && data != NULL && memcmp(data, v1_msg, len) == 0);
	free(data);
	/* the new features work on the upgraded file */
	CHECK(store_account_set_scram(st, "old@old.test", scram1, NULL) == 1);
	const char *accts[] = {"Old@old.test"};
	const char *rcpts[] = {"far@remote.test"};
	struct store_delivery d = {.accounts = accts,
	                           .naccounts = 1,
	                           .queue_sender = "old@old.test",
	                           .queue_rcpts = rcpts,
	                           .nqueue_rcpts = 1,
	                           .data = v1_msg,
	                           .len = sizeof(v1_msg) - 1};
	uint32_t uid = 0;
	CHECK(store_deliver(st, &d, &uid, NULL) == 1);
	CHECK(uid == 2);
	/* the queue runner's columns (v9) */
	CHECK(db_int(data_dir, "SELECT count(*) FROM queue WHERE held = 0 AND attempts = 0") == 1);
	snprintf(sql, sizeof(sql), "SELECT refcount FROM blobs WHERE id = '%s'", id);
	CHECK(db_int(data_dir, sql) == 3);
	store_close(&st);

	/* reopening an up-to-date file migrates nothing */
	st = open_store(data_dir);
	CHECK(db_int(data_dir, "SELECT count(*) FROM schema_version") >= 2);
	CHECK_STR(creds(st, "old@old.test"),
	          "Old@old.test|$6$salt$oldhash|SCRAM-SHA-256$4096:c2FsdHNhbHQ=$c3RvcmVk:c2VydmVy");
	store_close(&st);

	/* a file from a newer hermod is refused, not damaged */
	CHECK(sqlite3_open(path, &db) == SQLITE_OK);
	CHECK(sqlite3_exec(db, "INSERT INTO schema_version VALUES (99)", NULL, NULL, NULL) ==
	      SQLITE_OK);
	sqlite3_close(db);
	struct store_options opts = {.data_dir = data_dir, .fsync = false};
	err = NULL;
	CHECK(store_open(&opts, &st, &err) == -1);
	CHECK(err != NULL && strstr(err, "newer") != NULL);
	free(err);
}

int main(void)
{
	char data_dir[600];
	struct store *st;

	if (mkdtemp(base_dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(data_dir, sizeof(data_dir), "%s/main", base_dir);
	if (mkdir(data_dir, 0700) != 0) {
		perror("mkdir");
		return 1;
	}
	st = open_store(data_dir);
	setup_accounts(st);
	test_credentials(st);
	test_owns(st);
	test_queue(st, data_dir);
	store_close(&st);
	test_migrate_v1();

	nftw(base_dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	return unit_finish("store_queue");
}
