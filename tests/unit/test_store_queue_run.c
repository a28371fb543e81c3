/* Unit tests for the queue runner's store API (schema v9): leases, per-recipient
 * results, hold/release/flush/bounce, next_due and the queue hook. */
#include "unit.h"

#include "store/blob.h"
#include "store/store.h"

#include <ftw.h>
#include <pthread.h>
#include <stdarg.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char base_dir[] = "/tmp/hermod-test-store-queue-run.XXXXXX";
static char data_dir[600];

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

static int count_blob_files(void)
{
	char path[700];

	snprintf(path, sizeof(path), "%s/blobs", data_dir);
	nfiles = 0;
	nftw(path, count_cb, 16, FTW_PHYS);
	return nfiles;
}

static struct store *open_store(void)
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

/* The first column of the first row of sql as an integer (-1 on any failure),
 * through a connection of its own, as another process would read it. */
static long long db_int(const char *sql)
{
	char path[700];
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

static char text_buf[2048];
/* The first column of the first row of sql as text ("(null)", "(none)" or "ERR"). */
static const char *db_text(const char *sql)
{
	char path[700];
	sqlite3 *db = NULL;
	sqlite3_stmt *stmt = NULL;

	snprintf(text_buf, sizeof(text_buf), "ERR");
	snprintf(path, sizeof(path), "%s/hermod.db", data_dir);
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, sql, -1, &stmt, NULL) == SQLITE_OK) {
		int rc = sqlite3_step(stmt);
		if (rc == SQLITE_ROW) {
			const char *t = (const char *)sqlite3_column_text(stmt, 0);
			snprintf(text_buf, sizeof(text_buf), "%s", t != NULL ? t : "(null)");
		} else if (rc == SQLITE_DONE) {
			snprintf(text_buf, sizeof(text_buf), "(none)");
		}
	}
	sqlite3_finalize(stmt);
	sqlite3_close(db);
	return text_buf;
}

/* Runs sql (a change) through a connection of its own. */
static void db_exec(const char *sql)
{
	char path[700];
	sqlite3 *db = NULL;

	snprintf(path, sizeof(path), "%s/hermod.db", data_dir);
	CHECK(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	CHECK(sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK);
	sqlite3_close(db);
}

static void db_execf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void db_execf(const char *fmt, ...)
{
	char sql[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(sql, sizeof(sql), fmt, ap);
	va_end(ap);
	db_exec(sql);
}

/* Queues msg for rcpts (NULL-terminated); returns the entry's id. */
static int64_t queue_msg(struct store *st, const char *msg, const char *const *rcpts)
{
	size_t n = 0;
	char *error = NULL;

	while (rcpts[n] != NULL)
		n++;
	struct store_delivery d = {.queue_sender = "alice@example.test",
	                           .queue_rcpts = rcpts,
	                           .nqueue_rcpts = n,
	                           .queue_account = "alice@example.test",
	                           .data = msg,
	                           .len = strlen(msg)};
	if (store_deliver(st, &d, NULL, &error) != 1) {
		fprintf(stderr, "store_deliver: %s\n", error ? error : "?");
		free(error);
	}
	CHECK(d.queue_id > 0);
	return d.queue_id;
}

/* What a store_queue_cb saw: one line per entry,
 * "ID owner=O until=U attempts=A next=N held=H: rcpt/state/reply ..." */
struct seen {
	char buf[4096];
	int n;
	int64_t ids[32];
};

static void seen_cb(void *ctx, const struct store_queue_info *q)
{
	struct seen *s = ctx;
	size_t o = strlen(s->buf);

	if (s->n < 32)
		s->ids[s->n] = q->id;
	o += (size_t)snprintf(s->buf + o, sizeof(s->buf) - o,
	                      "%s%lld owner=%s until=%lld attempts=%u next=%lld held=%d [%s]:",
	                      s->n++ > 0 ? "\n" : "", (long long)q->id,
	                      q->lease_owner ? q->lease_owner : "-", (long long)q->lease_until,
	                      q->attempts, (long long)q->next_attempt, q->held ? 1 : 0, q->rcpts);
	for (size_t i = 0; i < q->nrcpt_info && o < sizeof(s->buf); i++)
		o +=
		    (size_t)snprintf(s->buf + o, sizeof(s->buf) - o, " %s/%s/%s",
		                     q->rcpt_info[i].rcpt, q->rcpt_info[i].state,
		                     q->rcpt_info[i].last_reply ? q->rcpt_info[i].last_reply : "-");
}

static int lease(struct store *st, int64_t now, const char *owner, unsigned secs, size_t max,
                 struct seen *s)
{
	char *error = NULL;

	memset(s, 0, sizeof(*s));
	int rc = store_queue_lease(st, now, owner, secs, max, seen_cb, s, &error);
	if (rc < 0)
		fprintf(stderr, "store_queue_lease: %s\n", error ? error : "?");
	free(error);
	return rc;
}

static const char *show(struct store *st, int64_t id)
{
	static struct seen s;

	memset(&s, 0, sizeof(s));
	int rc = store_queue_show(st, id, seen_cb, &s, NULL);
	if (rc == 0)
		return "(none)";
	return rc == 1 ? s.buf : "ERR";
}

static char want[4096];
#define WANT(...) (snprintf(want, sizeof(want), __VA_ARGS__), want)

/* ---- leases ---- */

static void test_lease(struct store *st)
{
	const char *r2[] = {"x@remote.test", "y@remote.test", NULL};
	struct seen s;
	char *error = NULL;

	int64_t a = queue_msg(st, "Subject: a\r\n\r\na\r\n", r2);
	int64_t b = queue_msg(st, "Subject: b\r\n\r\nb\r\n", r2);
	int64_t c = queue_msg(st, "Subject: c\r\n\r\nc\r\n", r2);
	int64_t d = queue_msg(st, "Subject: d\r\n\r\nd\r\n", r2);
	db_execf("UPDATE queue SET next_attempt = 100 WHERE id = %lld", (long long)a);
	db_execf("UPDATE queue SET next_attempt = 50 WHERE id = %lld", (long long)b);
	db_execf("UPDATE queue SET next_attempt = 200 WHERE id = %lld", (long long)c);
	db_execf("UPDATE queue SET next_attempt = 10 WHERE id = %lld", (long long)d);
	/* a queued entry: not held, never tried, due at once */
	CHECK_STR(
	    show(st, d),
	    WANT("%lld owner=- until=0 attempts=0 next=10 held=0 [x@remote.test y@remote.test]:"
	         " x@remote.test/pending/- y@remote.test/pending/-",
	         (long long)d));
	CHECK(store_queue_hold(st, d, true, NULL) == 1);
	CHECK(db_int("SELECT held FROM queue WHERE id = (SELECT max(id) FROM queue)") == 1);

	/* at 150: due and not held: b (50) then a (100); c is not due, d is held */
	CHECK(lease(st, 150, "r1", 60, 10, &s) == 2);
	CHECK_STR(
	    s.buf,
	    WANT("%lld owner=r1 until=210 attempts=0 next=50 held=0 [x@remote.test y@remote.test]:"
	         " x@remote.test/pending/- y@remote.test/pending/-\n"
	         "%lld owner=r1 until=210 attempts=0 next=100 held=0 [x@remote.test y@remote.test]:"
	         " x@remote.test/pending/- y@remote.test/pending/-",
	         (long long)b, (long long)a));
	CHECK(db_int("SELECT count(*) FROM queue WHERE lease_owner = 'r1' AND lease_until = 210") ==
	      2);
	/* leased: not again before lease_until, by anybody */
	CHECK(lease(st, 150, "r1", 60, 10, &s) == 0);
	CHECK(s.n == 0);
	CHECK(lease(st, 200, "r2", 60, 10, &s) == 1); /* only c, due now */
	CHECK(s.n == 1 && s.ids[0] == c);
	CHECK(lease(st, 209, "r2", 60, 10, &s) == 0);
	/* the lease ran out at 210: taken again, max respected, oldest first */
	CHECK(lease(st, 210, "r2", 30, 1, &s) == 1);
	CHECK(s.n == 1 && s.ids[0] == b);
	CHECK_STR(
	    db_text(WANT("SELECT lease_owner || ' ' || lease_until FROM queue WHERE id = %lld",
	                 (long long)b)),
	    "r2 240");
	CHECK(lease(st, 210, "r2", 30, 10, &s) == 1);
	CHECK(s.n == 1 && s.ids[0] == a);
	/* max 0 leases nothing; a bad owner is refused */
	CHECK(store_queue_lease(st, 1000, "r3", 60, 0, seen_cb, &s, NULL) == 0);
	CHECK(store_queue_lease(st, 1000, NULL, 60, 1, seen_cb, &s, &error) == -1);
	CHECK(error != NULL);
	free(error);
	error = NULL;
	CHECK(store_queue_lease(st, 1000, "r 3", 60, 1, seen_cb, &s, NULL) == -1);
	CHECK(store_queue_lease(st, 1000, "", 60, 1, seen_cb, &s, NULL) == -1);
	CHECK(store_queue_lease(st, 1000, "r3", 60, 1, NULL, &s, NULL) == -1);

	/* release_leases clears them all: everything due and unheld comes back */
	CHECK(db_int("SELECT count(*) FROM queue WHERE lease_owner IS NOT NULL") == 3);
	CHECK(store_queue_release_leases(st, NULL) == 1);
	CHECK(db_int("SELECT count(*) FROM queue WHERE lease_owner IS NOT NULL"
	             " OR lease_until <> 0") == 0);
	CHECK(lease(st, 1000, "r3", 60, 10, &s) == 3);
	CHECK(s.n == 3 && s.ids[0] == b && s.ids[1] == a && s.ids[2] == c);
	CHECK(store_queue_release_leases(st, NULL) == 1);
	CHECK(store_queue_release_leases(st, NULL) == 1); /* nothing to clear: fine */

	/* the lease lists only recipients still to be tried or bounced */
	db_execf("UPDATE queue_rcpts SET state = 'elsewhere' WHERE queue_id = %lld"
	         " AND rcpt = 'x@remote.test'",
	         (long long)a);
	db_execf("UPDATE queue_rcpts SET state = 'deferred', last_reply = '421 busy'"
	         " WHERE queue_id = %lld AND rcpt = 'y@remote.test'",
	         (long long)a);
	db_execf("UPDATE queue_rcpts SET state = 'bounce' WHERE queue_id = %lld"
	         " AND rcpt = 'x@remote.test'",
	         (long long)b);
	CHECK(lease(st, 1000, "r4", 60, 2, &s) == 2);
	CHECK_STR(
	    s.buf,
	    WANT("%lld owner=r4 until=1060 attempts=0 next=50 held=0 [x@remote.test y@remote.test]:"
	         " x@remote.test/bounce/- y@remote.test/pending/-\n"
	         "%lld owner=r4 until=1060 attempts=0 next=100 held=0 [y@remote.test]:"
	         " y@remote.test/deferred/421 busy",
	         (long long)b, (long long)a));
	/* show still lists every recipient */
	CHECK_STR(
	    show(st, a),
	    WANT(
	        "%lld owner=r4 until=1060 attempts=0 next=100 held=0 [x@remote.test y@remote.test]:"
	        " x@remote.test/elsewhere/- y@remote.test/deferred/421 busy",
	        (long long)a));

	/* list fills the delivery state and the recipients too */
	memset(&s, 0, sizeof(s));
	CHECK(store_queue_list(st, seen_cb, &s, NULL) == 1);
	CHECK(s.n == 4);
	CHECK(strstr(s.buf, WANT("%lld owner=- until=0 attempts=0 next=10 held=1 [x@remote.test "
	                         "y@remote.test]: x@remote.test/pending/- y@remote.test/pending/-",
	                         (long long)d)) != NULL);
	CHECK(strstr(s.buf, " x@remote.test/elsewhere/- y@remote.test/deferred/421 busy") != NULL);

	CHECK(store_queue_delete(st, a, NULL) == 1);
	CHECK(store_queue_delete(st, b, NULL) == 1);
	CHECK(store_queue_delete(st, c, NULL) == 1);
	CHECK(store_queue_delete(st, d, NULL) == 1);
}

/* ---- results ---- */

static void test_record(struct store *st)
{
	const char *r4[] = {"x@remote.test", "y@remote.test", "z@remote.test", "w@remote.test",
	                    NULL};
	static const char msg[] = "Subject: record\r\n\r\nrecord me\r\n";
	char blob[BLOB_ID_LEN + 1], sql[256], *error = NULL;
	struct seen s;
	bool removed = true;
	int base_files = count_blob_files();

	int64_t e = queue_msg(st, msg, r4);
	CHECK(blob_hash(msg, sizeof(msg) - 1, blob) == 1);
	snprintf(sql, sizeof(sql), "SELECT refcount FROM blobs WHERE id = '%s'", blob);
	CHECK(db_int(sql) == 1);
	CHECK(count_blob_files() == base_files + 1);
	CHECK(lease(st, INT64_MAX / 2, "r1", 60, 10, &s) == 1);

	/* a mix: delivered and bounced go, deferred stays with its reply made one
	 * line; a recipient not in the entry is ignored */
	const struct store_queue_result res[] = {
	    {"x@remote.test", STORE_RCPT_DELIVERED, "250 ok"},
	    {"y@remote.test", STORE_RCPT_DEFERRED, "451 4.3.0 try\r\nlater\tplease"},
	    {"z@remote.test", STORE_RCPT_BOUNCED, "550 5.1.1 no such user"},
	    {"nobody@remote.test", STORE_RCPT_DELIVERED, NULL},
	};
	CHECK(store_queue_record(st, e, res, 4, 5000, &removed, NULL) == 1);
	CHECK(!removed);
	CHECK_STR(
	    show(st, e),
	    WANT("%lld owner=- until=0 attempts=1 next=5000 held=0 [y@remote.test w@remote.test]:"
	         " y@remote.test/deferred/451 4.3.0 try  later please w@remote.test/pending/-",
	         (long long)e));
	CHECK(db_int("SELECT count(*) FROM queue WHERE lease_owner IS NOT NULL") == 0);

	/* deferred again without a reply: last_reply cleared; a NULL removed_r is
	 * fine; no results still counts the attempt */
	const struct store_queue_result again[] = {{"y@remote.test", STORE_RCPT_DEFERRED, NULL}};
	CHECK(store_queue_record(st, e, again, 1, 6000, NULL, NULL) == 1);
	CHECK(store_queue_record(st, e, NULL, 0, 7000, &removed, NULL) == 1);
	CHECK(!removed);
	CHECK_STR(
	    show(st, e),
	    WANT("%lld owner=- until=0 attempts=3 next=7000 held=0 [y@remote.test w@remote.test]:"
	         " y@remote.test/deferred/- w@remote.test/pending/-",
	         (long long)e));

	/* replies: at most STORE_QUEUE_REPLY_MAX octets, cut at a character */
	char longr[STORE_QUEUE_REPLY_MAX + 100];
	memset(longr, 'a', sizeof(longr) - 1);
	longr[sizeof(longr) - 1] = '\0';
	const struct store_queue_result lr[] = {{"y@remote.test", STORE_RCPT_DEFERRED, longr}};
	CHECK(store_queue_record(st, e, lr, 1, 7000, NULL, NULL) == 1);
	CHECK(db_int("SELECT length(last_reply) FROM queue_rcpts WHERE rcpt = 'y@remote.test'") ==
	      STORE_QUEUE_REPLY_MAX);
	memcpy(longr + STORE_QUEUE_REPLY_MAX - 1, "\xc3\xa9", 2); /* é across the limit */
	CHECK(store_queue_record(st, e, lr, 1, 7000, NULL, NULL) == 1);
	CHECK(db_int("SELECT length(CAST(last_reply AS BLOB)) FROM queue_rcpts"
	             " WHERE rcpt = 'y@remote.test'") == STORE_QUEUE_REPLY_MAX - 1);

	/* invalid results fail and change nothing */
	const struct store_queue_result bad1[] = {{NULL, STORE_RCPT_DELIVERED, NULL}};
	CHECK(store_queue_record(st, e, bad1, 1, 1, &removed, &error) == -1);
	CHECK(error != NULL);
	free(error);
	error = NULL;
	const struct store_queue_result bad2[] = {
	    {"y@remote.test", (enum store_rcpt_result)7, NULL}};
	CHECK(store_queue_record(st, e, bad2, 1, 1, &removed, NULL) == -1);
	CHECK(store_queue_record(st, e, NULL, 1, 1, &removed, NULL) == -1);
	CHECK(db_int("SELECT attempts FROM queue") == 5);

	/* no such entry */
	removed = true;
	CHECK(store_queue_record(st, e + 1000, res, 4, 1, &removed, NULL) == 0);
	CHECK(!removed);
	CHECK(store_queue_record(st, 0, res, 4, 1, &removed, NULL) == 0);

	/* the last recipients final: the entry goes, its blob with it (swept) */
	const struct store_queue_result fin[] = {
	    {"w@remote.test", STORE_RCPT_BOUNCED, "550 gone"},
	    {"y@remote.test", STORE_RCPT_DELIVERED, "250 ok"},
	};
	CHECK(store_queue_record(st, e, fin, 2, 9000, &removed, NULL) == 1);
	CHECK(removed);
	CHECK_STR(show(st, e), "(none)");
	CHECK(db_int("SELECT count(*) FROM queue_rcpts") == 0);
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM blobs WHERE id = '%s'", blob);
	CHECK(db_int(sql) == 0);
	CHECK(count_blob_files() == base_files);
	CHECK(store_queue_record(st, e, fin, 2, 9000, &removed, NULL) == 0);

	/* a blob shared with a mailbox entry survives the queue entry */
	static const char msg2[] = "Subject: shared\r\n\r\nboth\r\n";
	const char *accts[] = {"bob@example.test"};
	const char *r1[] = {"v@remote.test"};
	struct store_delivery d = {.accounts = accts,
	                           .naccounts = 1,
	                           .queue_sender = "",
	                           .queue_rcpts = r1,
	                           .nqueue_rcpts = 1,
	                           .data = msg2,
	                           .len = sizeof(msg2) - 1};
	CHECK(store_deliver(st, &d, NULL, NULL) == 1);
	CHECK(blob_hash(msg2, sizeof(msg2) - 1, blob) == 1);
	snprintf(sql, sizeof(sql), "SELECT refcount FROM blobs WHERE id = '%s'", blob);
	CHECK(db_int(sql) == 2);
	const struct store_queue_result v[] = {{"v@remote.test", STORE_RCPT_DELIVERED, NULL}};
	CHECK(store_queue_record(st, d.queue_id, v, 1, 0, &removed, NULL) == 1);
	CHECK(removed);
	CHECK(db_int(sql) == 1);
	CHECK(count_blob_files() == base_files + 1);
}

/* ---- the administrator's ---- */

static void test_admin(struct store *st)
{
	const char *r2[] = {"x@remote.test", "y@remote.test", NULL};
	struct seen s;
	char *error = NULL;

	int64_t a = queue_msg(st, "Subject: a2\r\n\r\na\r\n", r2);
	int64_t b = queue_msg(st, "Subject: b2\r\n\r\nb\r\n", r2);
	db_execf("UPDATE queue SET next_attempt = 9000 WHERE id IN (%lld, %lld)", (long long)a,
	         (long long)b);

	/* hold: not leased however due; release: due at once */
	CHECK(store_queue_hold(st, a + 1000, true, NULL) == 0);
	CHECK(store_queue_hold(st, 0, true, NULL) == 0);
	CHECK(store_queue_hold(st, a, true, NULL) == 1);
	CHECK(store_queue_hold(st, a, true, NULL) == 1); /* already held: fine */
	CHECK(lease(st, 10000, "r1", 60, 10, &s) == 1);
	CHECK(s.ids[0] == b);
	CHECK(store_queue_release_leases(st, NULL) == 1);
	CHECK(store_queue_hold(st, a, false, NULL) == 1);
	CHECK_STR(
	    show(st, a),
	    WANT("%lld owner=- until=0 attempts=0 next=0 held=0 [x@remote.test y@remote.test]:"
	         " x@remote.test/pending/- y@remote.test/pending/-",
	         (long long)a));
	CHECK(store_queue_hold(st, a + 1000, false, NULL) == 0);

	/* flush one: due at once, a held entry stays held */
	db_execf("UPDATE queue SET next_attempt = 9000 WHERE id IN (%lld, %lld)", (long long)a,
	         (long long)b);
	CHECK(store_queue_flush(st, b, NULL) == 1);
	CHECK(db_int(WANT("SELECT next_attempt FROM queue WHERE id = %lld", (long long)b)) == 0);
	CHECK(db_int(WANT("SELECT next_attempt FROM queue WHERE id = %lld", (long long)a)) == 9000);
	CHECK(store_queue_flush(st, b + 1000, NULL) == 0);
	CHECK(store_queue_flush(st, -1, &error) == -1);
	CHECK(error != NULL);
	free(error);
	error = NULL;
	CHECK(store_queue_hold(st, a, true, NULL) == 1);
	CHECK(store_queue_flush(st, a, NULL) == 1);
	CHECK_STR(db_text(WANT("SELECT held || ' ' || next_attempt FROM queue WHERE id = %lld",
	                       (long long)a)),
	          "1 0");
	/* flush all: every entry not held */
	db_execf("UPDATE queue SET next_attempt = 9000 WHERE id IN (%lld, %lld)", (long long)a,
	         (long long)b);
	CHECK(store_queue_flush(st, 0, NULL) == 1);
	CHECK(db_int(WANT("SELECT next_attempt FROM queue WHERE id = %lld", (long long)b)) == 0);
	CHECK(db_int(WANT("SELECT next_attempt FROM queue WHERE id = %lld", (long long)a)) == 9000);
	CHECK(store_queue_delete(st, b, NULL) == 1);
	CHECK(store_queue_flush(st, 0, NULL) == 1);

	/* bounce: every remaining recipient, released and due at once */
	const struct store_queue_result res[] = {
	    {"x@remote.test", STORE_RCPT_DEFERRED, "421 later"}};
	CHECK(store_queue_record(st, a, res, 1, 9000, NULL, NULL) == 1);
	CHECK(store_queue_bounce(st, a + 1000, NULL) == 0);
	CHECK(store_queue_bounce(st, 0, NULL) == 0);
	CHECK(store_queue_bounce(st, a, NULL) == 1);
	CHECK_STR(
	    show(st, a),
	    WANT("%lld owner=- until=0 attempts=1 next=0 held=0 [x@remote.test y@remote.test]:"
	         " x@remote.test/bounce/bounced by the administrator"
	         " y@remote.test/bounce/bounced by the administrator",
	         (long long)a));
	/* the runner leases it with both to bounce */
	CHECK(lease(st, 1, "r1", 60, 10, &s) == 1);
	CHECK(strstr(s.buf, " x@remote.test/bounce/bounced by the administrator"
	                    " y@remote.test/bounce/bounced by the administrator") != NULL);
	/* a deferral (say the DSN could not be made) keeps the bounce for later */
	const struct store_queue_result def[] = {
	    {"x@remote.test", STORE_RCPT_DEFERRED, "451 cannot bounce now"},
	    {"y@remote.test", STORE_RCPT_BOUNCED, NULL},
	};
	bool removed = true;
	CHECK(store_queue_record(st, a, def, 2, 500, &removed, NULL) == 1);
	CHECK(!removed);
	CHECK_STR(show(st, a),
	          WANT("%lld owner=- until=0 attempts=2 next=500 held=0 [x@remote.test]:"
	               " x@remote.test/bounce/bounced by the administrator",
	               (long long)a));
	CHECK(store_queue_delete(st, a, NULL) == 1);
}

/* ---- next_due ---- */

static void test_next_due(struct store *st)
{
	const char *r1[] = {"x@remote.test", NULL};
	int64_t when = -1;
	struct seen s;

	CHECK(db_int("SELECT count(*) FROM queue") == 0);
	CHECK(store_queue_next_due(st, &when, NULL) == 0);
	int64_t a = queue_msg(st, "Subject: n1\r\n\r\na\r\n", r1);
	int64_t b = queue_msg(st, "Subject: n2\r\n\r\nb\r\n", r1);
	int64_t c = queue_msg(st, "Subject: n3\r\n\r\nc\r\n", r1);
	db_execf("UPDATE queue SET next_attempt = 300 WHERE id = %lld", (long long)a);
	db_execf("UPDATE queue SET next_attempt = 500 WHERE id = %lld", (long long)b);
	db_execf("UPDATE queue SET next_attempt = 100 WHERE id = %lld", (long long)c);
	CHECK(store_queue_next_due(st, &when, NULL) == 1);
	CHECK(when == 100);
	/* held entries do not count */
	CHECK(store_queue_hold(st, c, true, NULL) == 1);
	CHECK(store_queue_next_due(st, &when, NULL) == 1);
	CHECK(when == 300);
	/* an entry being tried counts from the end of its lease */
	CHECK(lease(st, 400, "r1", 60, 1, &s) == 1);
	CHECK(s.ids[0] == a);
	CHECK(store_queue_next_due(st, &when, NULL) == 1);
	CHECK(when == 460);
	CHECK(lease(st, 400, "r1", 600, 1, &s) == 0);
	CHECK(store_queue_release_leases(st, NULL) == 1);
	CHECK(lease(st, 600, "r1", 600, 10, &s) == 2); /* a and b, till 1200 */
	CHECK(store_queue_next_due(st, &when, NULL) == 1);
	CHECK(when == 1200);
	/* only held entries: nothing due */
	CHECK(store_queue_delete(st, a, NULL) == 1);
	CHECK(store_queue_delete(st, b, NULL) == 1);
	when = -1;
	CHECK(store_queue_next_due(st, &when, NULL) == 0);
	CHECK(store_queue_hold(st, c, false, NULL) == 1);
	CHECK(store_queue_next_due(st, &when, NULL) == 1);
	CHECK(when == 0);
	CHECK(store_queue_delete(st, c, NULL) == 1);
}

/* ---- the queue hook ---- */

static void warned_cb(void *ctx, const struct store_queue_info *q)
{
	*(int *)ctx = q->warned ? 1 : 0;
}

/* the delay warning flag: set once, seen by show and lease */
static void test_warned(struct store *st)
{
	const char *rc1[] = {"w@remote.test", NULL};
	int64_t id = queue_msg(st, "Subject: w\r\n\r\nw\r\n", rc1);
	int w = -1;
	CHECK(store_queue_show(st, id, warned_cb, &w, NULL) == 1 && w == 0);
	CHECK(store_queue_set_warned(st, id, NULL) == 1);
	w = -1;
	CHECK(store_queue_show(st, id, warned_cb, &w, NULL) == 1 && w == 1);
	CHECK(store_queue_set_warned(st, id, NULL) == 1); /* again: still 1 */
	CHECK(store_queue_set_warned(st, 999999, NULL) == 0);
	CHECK(store_queue_set_warned(st, 0, NULL) == 0);
	CHECK(db_int("SELECT warned FROM queue WHERE id = (SELECT max(id) FROM queue)") == 1);
	CHECK(store_queue_delete(st, id, NULL) == 1);
}

static pthread_mutex_t hook_mu = PTHREAD_MUTEX_INITIALIZER;
static int hook_calls;
static int hook_ctx_ok;

static void hook(void *ctx)
{
	pthread_mutex_lock(&hook_mu);
	hook_calls++;
	if (ctx == &hook_calls)
		hook_ctx_ok++;
	pthread_mutex_unlock(&hook_mu);
}

static int hooked(void)
{
	pthread_mutex_lock(&hook_mu);
	int n = hook_calls;
	pthread_mutex_unlock(&hook_mu);
	return n;
}

static void test_hook(struct store *st)
{
	const char *r1[] = {"x@remote.test", NULL};

	store_set_queue_hook(st, hook, &hook_calls);
	CHECK(hooked() == 0);
	/* told before store_deliver returns (the committer calls it before the
	 * completions) */
	int64_t a = queue_msg(st, "Subject: h1\r\n\r\na\r\n", r1);
	CHECK(hooked() == 1);
	/* a local delivery queues nothing: not told */
	const char *accts[] = {"bob@example.test"};
	static const char lmsg[] = "Subject: l\r\n\r\nl\r\n";
	struct store_delivery d = {
	    .accounts = accts, .naccounts = 1, .data = lmsg, .len = sizeof(lmsg) - 1};
	CHECK(store_deliver(st, &d, NULL, NULL) == 1);
	CHECK(hooked() == 1);
	/* a failed delivery (no such mailbox) is not told either */
	const char *ghost[] = {"ghost@example.test"};
	struct store_delivery g = {.accounts = ghost,
	                           .naccounts = 1,
	                           .queue_sender = "",
	                           .queue_rcpts = r1,
	                           .nqueue_rcpts = 1,
	                           .data = "x\r\n",
	                           .len = 3};
	CHECK(store_deliver(st, &g, NULL, NULL) == -1);
	CHECK(hooked() == 1);
	/* flush, release and bounce are told; hold and misses are not */
	CHECK(store_queue_flush(st, a, NULL) == 1);
	CHECK(hooked() == 2);
	CHECK(store_queue_flush(st, 0, NULL) == 1);
	CHECK(hooked() == 3);
	CHECK(store_queue_flush(st, a + 1000, NULL) == 0);
	CHECK(store_queue_hold(st, a, true, NULL) == 1);
	CHECK(hooked() == 3);
	CHECK(store_queue_hold(st, a, false, NULL) == 1);
	CHECK(hooked() == 4);
	CHECK(store_queue_bounce(st, a, NULL) == 1);
	CHECK(hooked() == 5);
	CHECK(store_queue_bounce(st, a + 1000, NULL) == 0);
	CHECK(hooked() == 5);
	CHECK(hook_ctx_ok == 5);
	/* unset: not told */
	store_set_queue_hook(st, NULL, NULL);
	queue_msg(st, "Subject: h2\r\n\r\nb\r\n", r1);
	CHECK(store_queue_flush(st, 0, NULL) == 1);
	CHECK(hooked() == 5);
}

int main(void)
{
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
	st = open_store();
	CHECK(store_domain_add(st, "example.test", NULL) == 1);
	CHECK(store_account_add(st, "alice@example.test", "x", NULL) == 1);
	CHECK(store_account_add(st, "bob@example.test", "x", NULL) == 1);
	CHECK(db_int("SELECT max(version) FROM schema_version") == 13);
	test_lease(st);
	test_record(st);
	test_admin(st);
	test_next_due(st);
	test_warned(st);
	test_hook(st);
	store_close(&st);

	nftw(base_dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	return unit_finish("store_queue_run");
}
