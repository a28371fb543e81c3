/* Unit tests for the message writer (store_msg_*), store_deliver from a writer with
 * header fix-ups, blob ranges, the queue envelope and the postmaster rules. */
#include "unit.h"

#include "store/blob.h"
#include "store/store.h"

#include <fcntl.h>
#include <ftw.h>
#include <time.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char data_dir[] = "/tmp/hermod-test-store-msg.XXXXXX";

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

/* Every regular file under data_dir (the database files included). */
static int count_files(const char *sub)
{
	char path[512];

	snprintf(path, sizeof(path), "%s%s", data_dir, sub);
	nfiles = 0;
	nftw(path, count_cb, 16, FTW_PHYS);
	return nfiles;
}

static struct store *open_store_host(const char *hostname)
{
	struct store_options opts = {.data_dir = data_dir, .fsync = true, .hostname = hostname,
	                             .segments_off = true};
	struct store *st = NULL;
	char *error = NULL;

	if (store_open(&opts, &st, &error) != 1) {
		fprintf(stderr, "store_open: %s\n", error ? error : "?");
		free(error);
		exit(1);
	}
	return st;
}

static void setup(struct store *st)
{
	CHECK(store_domain_add(st, "a.test", NULL) == 1);
	CHECK(store_domain_add(st, "b.test", NULL) == 1);
	CHECK(store_domain_add(st, "c.test", NULL) == 1);
	CHECK(store_account_add(st, "alice@a.test", "x", NULL) == 1);
	CHECK(store_account_add(st, "carol@a.test", "x", NULL) == 1);
	CHECK(store_account_add(st, "bob@b.test", "x", NULL) == 1);
	CHECK(store_account_add(st, "bert@b.test", "x", NULL) == 1);
}

struct one_msg {
	char blob_id[80];
	uint64_t size;
	int n;
};

static void one_msg_cb(void *ctx, const struct store_message_info *m)
{
	struct one_msg *o = ctx;
	snprintf(o->blob_id, sizeof(o->blob_id), "%s", m->blob_id);
	o->size = m->size;
	o->n++;
}

/* The last message of alice's INBOX: its bytes equal want[0..wlen), its blob id is
 * their SHA-256, and store_blob_open gives the same bytes. */
static void check_stored(struct store *st, const char *want, size_t wlen)
{
	struct one_msg o = {0};
	char id[BLOB_ID_LEN + 1], *data = NULL;
	size_t len = 0;

	CHECK(store_message_list(st, "alice@a.test", "INBOX", one_msg_cb, &o, NULL) == 1);
	CHECK(o.size == wlen);
	CHECK(blob_hash(want, wlen, id) == 1);
	CHECK_STR(o.blob_id, id);
	CHECK(store_blob_get(st, o.blob_id, &data, &len, NULL) == 1);
	CHECK(len == wlen && data != NULL && memcmp(data, want, wlen) == 0);
	free(data);

	struct store_blob_range r;
	CHECK(store_blob_open(st, o.blob_id, &r, NULL) == 1);
	CHECK(r.fd >= 0 && r.len == wlen);
	char *buf = malloc(wlen + 1);
	CHECK(pread(r.fd, buf, wlen, (off_t)r.off) == (ssize_t)wlen);
	CHECK(memcmp(buf, want, wlen) == 0);
	free(buf);
	store_blob_range_close(&r);
	CHECK(r.fd == -1);
	store_blob_range_close(&r); /* twice is fine */
}

/* pattern bytes: different at every offset within a period of 251 */
static char *make_pattern(size_t len, unsigned seed)
{
	char *p = malloc(len);
	for (size_t i = 0; i < len; i++)
		p[i] = (char)('a' + (i * 7 + seed) % 251 % 26);
	return p;
}

/* Writes data into a new writer in pieces of step bytes. */
static struct store_msg *write_msg(struct store *st, const char *data, size_t len, size_t step)
{
	struct store_msg *m = NULL;

	CHECK(store_msg_begin(st, &m, NULL) == 1);
	for (size_t off = 0; off < len; off += step) {
		size_t n = len - off < step ? len - off : step;
		CHECK(store_msg_write(m, data + off, n, NULL) == 1);
	}
	CHECK(store_msg_size(m) == len);
	return m;
}

static void test_writer(struct store *st, size_t len, size_t step)
{
	char *data = make_pattern(len, (unsigned)len);
	struct store_msg *m = write_msg(st, data, len, step);
	const char *accts[] = {"alice@a.test"};

	/* read back: the start, across the memory threshold, past the end */
	char buf[300];
	if (len >= 10)
		CHECK(store_msg_pread(m, buf, 10, 0) == 10 && memcmp(buf, data, 10) == 0);
	if (len > STORE_MSG_MEM_MAX + 100) {
		CHECK(store_msg_pread(m, buf, 200, STORE_MSG_MEM_MAX - 100) == 200);
		CHECK(memcmp(buf, data + STORE_MSG_MEM_MAX - 100, 200) == 0);
	}
	if (len >= 5) {
		CHECK(store_msg_pread(m, buf, sizeof(buf), len - 5) == 5);
		CHECK(memcmp(buf, data + len - 5, 5) == 0);
	}
	CHECK(store_msg_pread(m, buf, sizeof(buf), len) == 0);

	struct store_delivery d = {.accounts = accts, .naccounts = 1, .msg = m};
	CHECK(store_deliver(st, &d, NULL, NULL) == 1);
	CHECK(d.queue_id == 0);
	store_msg_free(&m);
	CHECK(m == NULL);
	check_stored(st, data, len);

	/* the same content again (the blob exists: reused) */
	m = write_msg(st, data, len, step);
	d.msg = m;
	CHECK(store_deliver(st, &d, NULL, NULL) == 1);
	store_msg_free(&m);
	check_stored(st, data, len);
	free(data);
}

static void test_insert(struct store *st, size_t len)
{
	char *data = make_pattern(len, 3);
	static const char ins[] = "Date: Thu, 1 Jan 2026 00:00:00 +0000\r\n";
	size_t at = 40, ilen = sizeof(ins) - 1;
	struct store_msg *m = write_msg(st, data, len, 1000);
	const char *accts[] = {"alice@a.test"};
	struct store_delivery d = {.accounts = accts,
	                           .naccounts = 1,
	                           .msg = m,
	                           .insert_at = at,
	                           .insert = ins,
	                           .insert_len = ilen};

	CHECK(store_deliver(st, &d, NULL, NULL) == 1);
	store_msg_free(&m);
	char *want = malloc(len + ilen);
	memcpy(want, data, at);
	memcpy(want + at, ins, ilen);
	memcpy(want + at + ilen, data + at, len - at);
	check_stored(st, want, len + ilen);

	/* insert at the very end, from memory data */
	struct store_delivery d2 = {.accounts = accts,
	                            .naccounts = 1,
	                            .data = data,
	                            .len = len,
	                            .insert_at = len,
	                            .insert = ins,
	                            .insert_len = ilen};
	CHECK(store_deliver(st, &d2, NULL, NULL) == 1);
	memcpy(want, data, len);
	memcpy(want + len, ins, ilen);
	check_stored(st, want, len + ilen);

	/* insert_at past the end: refused, nothing stored */
	char *error = NULL;
	d2.insert_at = len + 1;
	CHECK(store_deliver(st, &d2, NULL, &error) == -1);
	CHECK_STR(error, "store_deliver: invalid insert");
	free(error);
	free(want);
	free(data);
}

static void test_abort(struct store *st)
{
	int before = count_files("");
	size_t len = 3 * STORE_MSG_MEM_MAX;
	char *data = make_pattern(len, 9);
	struct store_msg *m = write_msg(st, data, len, 65536);

	/* the spill file is unnamed: no new file appears, none is left behind */
	CHECK(count_files("") == before);
	store_msg_free(&m);
	CHECK(count_files("") == before);
	store_msg_free(&m); /* NULL ok */
	free(data);
}

struct qrow {
	int64_t id;
	int n;
	char buf[1024];
};

static void queue_show_cb(void *ctx, const struct store_queue_info *q)
{
	struct qrow *r = ctx;
	size_t len;

	r->id = q->id;
	r->n++;
	snprintf(r->buf, sizeof(r->buf), "%s|%s|%s|%d|%d|%d|%s|%llu|%s|%zu", q->sender, q->account,
	         q->rcpts, q->body, q->smtputf8, q->ret, q->envid ? q->envid : "-",
	         (unsigned long long)q->trace_len, q->lease_owner ? q->lease_owner : "-",
	         q->nrcpt_info);
	for (size_t i = 0; i < q->nrcpt_info; i++) {
		len = strlen(r->buf);
		snprintf(r->buf + len, sizeof(r->buf) - len, "|%s:%s:%u:%s", q->rcpt_info[i].rcpt,
		         q->rcpt_info[i].state, q->rcpt_info[i].notify,
		         q->rcpt_info[i].orcpt ? q->rcpt_info[i].orcpt : "-");
	}
}

static void queue_cb(void *ctx, const struct store_queue_info *q)
{
	struct qrow *r = ctx;
	r->id = q->id;
	r->n++;
}

static void test_queue_envelope(struct store *st)
{
	static const char msg[] = "Return-Path: <alice@a.test>\r\nSubject: x\r\n\r\nhi\r\n";
	const char *rcpts[] = {"r1@remote.test", "r2@remote.test"};
	const unsigned notify[] = {STORE_NOTIFY_SUCCESS | STORE_NOTIFY_FAILURE, 0};
	const char *orcpt[] = {"rfc822;r1@remote.test", NULL};
	struct store_delivery d = {.queue_sender = "alice@a.test",
	                           .queue_rcpts = rcpts,
	                           .nqueue_rcpts = 2,
	                           .queue_account = "alice@a.test",
	                           .queue_envid = "ENV1",
	                           .queue_ret = STORE_RET_HDRS,
	                           .queue_body = STORE_BODY_8BITMIME,
	                           .queue_smtputf8 = true,
	                           .queue_notify = notify,
	                           .queue_orcpt = orcpt,
	                           .trace_len = 29,
	                           .data = msg,
	                           .len = sizeof(msg) - 1};
	struct qrow q = {0};
	char *error = NULL;

	CHECK(store_deliver(st, &d, NULL, NULL) == 1);
	CHECK(d.queue_id > 0);
	int64_t qid = d.queue_id;
	CHECK(store_queue_list(st, queue_cb, &q, NULL) == 1);
	CHECK(q.n == 1 && q.id == d.queue_id);

	/* bad envelope values are refused */
	const unsigned bad_notify[] = {STORE_NOTIFY_NEVER | STORE_NOTIFY_DELAY, 0};
	d.queue_notify = bad_notify;
	CHECK(store_deliver(st, &d, NULL, &error) == -1);
	CHECK(d.queue_id == 0);
	CHECK_STR(error, "store_deliver: invalid NOTIFY");
	free(error);
	error = NULL;
	d.queue_notify = notify;
	d.queue_envid = "";
	CHECK(store_deliver(st, &d, NULL, &error) == -1);
	CHECK_STR(error, "store_deliver: invalid ENVID");
	free(error);
	error = NULL;
	d.queue_envid = NULL;
	d.trace_len = sizeof(msg);
	CHECK(store_deliver(st, &d, NULL, &error) == -1);
	CHECK_STR(error, "store_deliver: trace_len past the message");
	free(error);
	memset(&q, 0, sizeof(q));
	CHECK(store_queue_list(st, queue_cb, &q, NULL) == 1);
	CHECK(q.n == 1);

	/* the whole envelope comes back */
	memset(&q, 0, sizeof(q));
	CHECK(store_queue_show(st, qid, queue_show_cb, &q, NULL) == 1);
	CHECK(q.n == 1 && q.id == qid);
	CHECK_STR(q.buf,
	          "alice@a.test|alice@a.test|r1@remote.test r2@remote.test|1|1|2|ENV1|29|-|2"
	          "|r1@remote.test:pending:6:rfc822;r1@remote.test|r2@remote.test:pending:0:-");
	CHECK(store_queue_show(st, qid + 1, queue_show_cb, &q, NULL) == 0);

	/* removing the entry drops its blob reference: the file is swept */
	int before = count_files("/blobs");
	CHECK(store_queue_delete(st, qid, NULL) == 1);
	CHECK(count_files("/blobs") == before - 1);
	CHECK(store_queue_delete(st, qid, NULL) == 0);
	memset(&q, 0, sizeof(q));
	CHECK(store_queue_list(st, queue_cb, &q, NULL) == 1);
	CHECK(q.n == 0);
}

/* resolve to one space-joined string; "" when 0, "ERR" on -1 */
static char resolved[1024];
static const char *resolve(struct store *st, const char *addr)
{
	char **accts = NULL, *error = NULL;
	int rc = store_resolve_recipient(st, addr, &accts, &error);

	resolved[0] = '\0';
	if (rc < 0) {
		snprintf(resolved, sizeof(resolved), "ERR");
		free(error);
		return resolved;
	}
	for (size_t i = 0; rc == 1 && accts[i] != NULL; i++) {
		size_t len = strlen(resolved);
		snprintf(resolved + len, sizeof(resolved) - len, "%s%s", i ? " " : "", accts[i]);
	}
	store_strv_free(&accts);
	return resolved;
}

static void test_postmaster(void)
{
	/* hostname mx.b.test: b.test (its parent) is the primary domain */
	struct store *st = open_store_host("MX.B.test");

	/* the oldest account of the primary domain */
	CHECK_STR(resolve(st, "postmaster"), "bob@b.test");
	CHECK_STR(resolve(st, "PostMaster"), "bob@b.test");
	CHECK_STR(resolve(st, "postmaster@b.test"), "bob@b.test");
	/* no postmaster at the primary either: the domain's oldest account */
	CHECK_STR(resolve(st, "postmaster@a.test"), "alice@a.test");
	CHECK_STR(resolve(st, "Postmaster@A.TEST"), "alice@a.test");
	/* a domain without accounts: the oldest account of all */
	CHECK_STR(resolve(st, "postmaster@c.test"), "alice@a.test");
	/* not local, or not postmaster */
	CHECK_STR(resolve(st, "postmaster@remote.test"), "");
	CHECK_STR(resolve(st, "postmasterx"), "ERR");
	CHECK_STR(resolve(st, "nobody@c.test"), "");

	/* an alias at the primary reaches every domain that has none of its own */
	CHECK(store_alias_add(st, "postmaster@b.test", "carol@a.test", NULL) == 1);
	CHECK_STR(resolve(st, "postmaster"), "carol@a.test");
	CHECK_STR(resolve(st, "postmaster@a.test"), "carol@a.test");
	CHECK_STR(resolve(st, "postmaster@c.test"), "carol@a.test");
	/* a domain's own alias or account wins */
	CHECK(store_alias_add(st, "postmaster@c.test", "bert@b.test", NULL) == 1);
	CHECK_STR(resolve(st, "postmaster@c.test"), "bert@b.test");
	CHECK(store_account_add(st, "postmaster@a.test", "x", NULL) == 1);
	CHECK_STR(resolve(st, "postmaster@a.test"), "postmaster@a.test");
	CHECK_STR(resolve(st, "postmaster"), "carol@a.test");
	/* an alias that reaches no local account falls through to the rules */
	CHECK(store_alias_del(st, "postmaster@c.test", NULL, NULL) == 1);
	CHECK(store_alias_add(st, "postmaster@c.test", "someone@remote.test", NULL) == 1);
	CHECK_STR(resolve(st, "postmaster@c.test"), "carol@a.test");
	/* the catch-all is not consulted for postmaster, still for other names */
	CHECK(store_alias_add(st, "@b.test", "bert@b.test", NULL) == 1);
	CHECK(store_alias_del(st, "postmaster@b.test", NULL, NULL) == 1);
	CHECK_STR(resolve(st, "postmaster@b.test"), "bob@b.test");
	CHECK_STR(resolve(st, "whoever@b.test"), "bert@b.test");
	store_close(&st);

	/* hostname is itself a local domain: c.test is primary (its postmaster alias
	 * reaches no local account and it has no accounts: the oldest of all) */
	st = open_store_host("c.test");
	CHECK_STR(resolve(st, "postmaster"), "alice@a.test");
	CHECK(store_alias_add(st, "postmaster@c.test", "bert@b.test", NULL) == 1);
	CHECK_STR(resolve(st, "postmaster"), "bert@b.test");
	CHECK_STR(resolve(st, "postmaster@b.test"), "bert@b.test");
	store_close(&st);
	/* hostname and its parent not local: the oldest local domain (a.test) */
	st = open_store_host("mx.elsewhere.test");
	CHECK_STR(resolve(st, "postmaster"), "postmaster@a.test");
	store_close(&st);
	st = open_store_host(NULL);
	CHECK_STR(resolve(st, "postmaster"), "postmaster@a.test");
	store_close(&st);
}

static void test_resolve_many(void)
{
	struct store *st = open_store_host("mx.b.test");
	const char *addrs[] = {"alice@a.test", "nobody@c.test", "not-an-address", "postmaster",
	                       "ALICE@A.TEST"};
	char **res[5];
	int rcs[5];

	CHECK(store_resolve_recipients(st, addrs, 5, res, rcs, NULL) == 1);
	CHECK(rcs[0] == 1 && res[0] != NULL && strcmp(res[0][0], "alice@a.test") == 0 &&
	      res[0][1] == NULL);
	CHECK(rcs[1] == 0 && res[1] == NULL);
	CHECK(rcs[2] == -1 && res[2] == NULL);
	CHECK(rcs[3] == 1 && res[3] != NULL);
	CHECK(rcs[4] == 1 && res[4] != NULL && strcmp(res[4][0], "alice@a.test") == 0);
	for (int i = 0; i < 5; i++)
		store_strv_free(&res[i]);
	store_close(&st);
}

/* alias targets outside the local domains: forwarding */
static void test_resolve_forwards(void)
{
	struct store *st = open_store_host("mx.b.test");
	CHECK(store_alias_add(st, "fwd@a.test", "Someone@Far.Test", NULL) == 1);
	CHECK(store_alias_add(st, "mix@a.test", "alice@a.test", NULL) == 1);
	CHECK(store_alias_add(st, "mix@a.test", "x@far.test", NULL) == 1);
	CHECK(store_alias_add(st, "mix@a.test", "fwd@a.test", NULL) == 1); /* nested */
	CHECK(store_alias_add(st, "dead@a.test", "ghost@a.test", NULL) == 1); /* local, no one */
	const char *addrs[] = {"fwd@a.test", "mix@a.test", "dead@a.test", "alice@a.test"};
	char **res[4], **fwd[4];
	int rcs[4];

	CHECK(store_resolve_recipients_fwd(st, addrs, 4, res, fwd, rcs, NULL) == 1);
	CHECK(rcs[0] == 1 && res[0] == NULL && fwd[0] != NULL &&
	      strcmp(fwd[0][0], "Someone@far.test") == 0 && fwd[0][1] == NULL);
	CHECK(rcs[1] == 1 && res[1] != NULL && strcmp(res[1][0], "alice@a.test") == 0);
	CHECK(fwd[1] != NULL && fwd[1][0] != NULL && fwd[1][1] != NULL && fwd[1][2] == NULL);
	/* both remote targets, once each, in target order (alice@, fwd@ -> Someone@,
	 * x@) */
	CHECK(fwd[1] != NULL && fwd[1][0] != NULL && fwd[1][1] != NULL &&
	      strcmp(fwd[1][0], "Someone@far.test") == 0 && strcmp(fwd[1][1], "x@far.test") == 0);
	CHECK(rcs[2] == 0 && res[2] == NULL && fwd[2] == NULL);
	CHECK(rcs[3] == 1 && fwd[3] == NULL);
	for (int i = 0; i < 4; i++) {
		store_strv_free(&res[i]);
		store_strv_free(&fwd[i]);
	}
	/* without asking for forwards, an alias that only forwards is nobody */
	CHECK(store_resolve_recipients(st, addrs, 1, res, rcs, NULL) == 1);
	CHECK(rcs[0] == 0 && res[0] == NULL);
	store_close(&st);
}

static void test_postmaster_empty(void)
{
	char dir[] = "/tmp/hermod-test-store-pm.XXXXXX";
	struct store_options opts = {.data_dir = dir, .fsync = false, .hostname = "mx.x.test"};
	struct store *st = NULL;

	CHECK(mkdtemp(dir) != NULL);
	CHECK(store_open(&opts, &st, NULL) == 1);
	/* no local domain at all */
	CHECK_STR(resolve(st, "postmaster"), "");
	CHECK(store_domain_add(st, "x.test", NULL) == 1);
	/* a local domain without any account: nobody to reach */
	CHECK_STR(resolve(st, "postmaster"), "");
	CHECK_STR(resolve(st, "postmaster@x.test"), "");
	store_close(&st);
	nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

struct async_wait {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	int calls, result;
	char *error;
};

static void async_done(void *ctx, int result, char *error)
{
	struct async_wait *w = ctx;

	pthread_mutex_lock(&w->mu);
	w->calls++;
	w->result = result;
	w->error = error;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->mu);
}

static void test_async(struct store *st)
{
	static const char msg[] = "Subject: async\r\n\r\nx\r\n";
	const char *accts[] = {"bob@b.test"}, *rcpts[] = {"r@remote.test"};
	struct store_delivery d = {.accounts = accts,
	                           .naccounts = 1,
	                           .queue_sender = "bob@b.test",
	                           .queue_rcpts = rcpts,
	                           .nqueue_rcpts = 1,
	                           .data = msg,
	                           .len = sizeof(msg) - 1};
	struct async_wait w = {.mu = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
	uint32_t uid = 0;
	char *error = NULL;

	CHECK(store_deliver_async(st, &d, &uid, async_done, &w, NULL) == 1);
	pthread_mutex_lock(&w.mu);
	while (w.calls == 0)
		pthread_cond_wait(&w.cond, &w.mu);
	pthread_mutex_unlock(&w.mu);
	CHECK(w.calls == 1 && w.result == 1 && w.error == NULL);
	CHECK(uid == 1 && d.queue_id > 0);

	/* refused at once: -1, and no completion */
	struct store_delivery bad = {.data = msg, .len = sizeof(msg) - 1};
	CHECK(store_deliver_async(st, &bad, NULL, async_done, &w, &error) == -1);
	CHECK_STR(error, "store_deliver: no recipients");
	free(error);
	/* a delivery that fails in the batch: completion with an error */
	const char *nobody[] = {"nobody@b.test"};
	d.accounts = nobody;
	d.nqueue_rcpts = 0;
	CHECK(store_deliver_async(st, &d, &uid, async_done, &w, NULL) == 1);
	pthread_mutex_lock(&w.mu);
	while (w.calls == 1)
		pthread_cond_wait(&w.cond, &w.mu);
	pthread_mutex_unlock(&w.mu);
	CHECK(w.calls == 2 && w.result == -1);
	CHECK_STR(w.error, "mailbox INBOX of account nobody@b.test does not exist");
	free(w.error);
	CHECK(d.queue_id == 0);
}

/* Writes a blob-named file (content s) with its mtime age seconds ago; path_r set. */
static void make_file(const char *name, const char *s, int age, char *path_r, size_t size)
{
	struct timespec ts[2];

	snprintf(path_r, size, "%s/blobs/%.2s/%s", data_dir, name[0] == '.' ? "00" : name, name);
	FILE *f = fopen(path_r, "w");
	CHECK(f != NULL);
	if (f == NULL)
		return;
	fputs(s, f);
	fclose(f);
	clock_gettime(CLOCK_REALTIME, &ts[0]);
	ts[0].tv_sec -= age;
	ts[1] = ts[0];
	CHECK(utimensat(AT_FDCWD, path_r, ts, 0) == 0);
}

static void test_sweep(void)
{
	char old_id[BLOB_ID_LEN + 1], new_id[BLOB_ID_LEN + 1], kept_id[BLOB_ID_LEN + 1];
	char old_path[600], new_path[600], kept_path[600], tmp_path[600];
	static const char kept[] = "Subject: kept\r\n\r\nx\r\n";
	const char *accts[] = {"alice@a.test"};
	struct store *st = open_store_host(NULL);
	uint64_t removed = 99;

	/* a delivered (referenced) blob, made to look old */
	struct store_delivery d = {
	    .accounts = accts, .naccounts = 1, .data = kept, .len = sizeof(kept) - 1};
	CHECK(store_deliver(st, &d, NULL, NULL) == 1);
	CHECK(blob_hash(kept, sizeof(kept) - 1, kept_id) == 1);
	make_file(kept_id, kept, 7200, kept_path, sizeof(kept_path));
	/* orphans: one older than the safety age, one fresh (a delivery in flight) */
	CHECK(blob_hash("old orphan", 10, old_id) == 1);
	CHECK(blob_hash("new orphan", 10, new_id) == 1);
	make_file(old_id, "old orphan", 2 * STORE_BLOB_SWEEP_AGE, old_path, sizeof(old_path));
	make_file(new_id, "new orphan", 0, new_path, sizeof(new_path));
	make_file(".tmp.abcdef", "partial", 2 * STORE_BLOB_SWEEP_AGE, tmp_path, sizeof(tmp_path));
	store_close(&st);

	/* opening the store sweeps the old orphan only */
	st = open_store_host(NULL);
	CHECK(access(old_path, F_OK) != 0);
	CHECK(access(tmp_path, F_OK) != 0);
	CHECK(access(new_path, F_OK) == 0);
	CHECK(access(kept_path, F_OK) == 0);
	/* an explicit sweep with age 0 takes the fresh orphan too, never a referenced blob */
	CHECK(store_blob_sweep(st, 0, &removed, NULL) == 1);
	CHECK(removed == 1);
	CHECK(access(new_path, F_OK) != 0);
	CHECK(access(kept_path, F_OK) == 0);
	CHECK(store_blob_sweep(st, 0, &removed, NULL) == 1);
	CHECK(removed == 0);
	/* the referenced message still reads back */
	char *data = NULL;
	size_t len = 0;
	CHECK(store_blob_get(st, kept_id, &data, &len, NULL) == 1);
	CHECK(len == sizeof(kept) - 1);
	free(data);
	store_close(&st);
}

static void test_backend(void)
{
	struct store_options opts = {.data_dir = data_dir, .fsync = false, .backend = "pg"};
	struct store *st = NULL;
	char *error = NULL;

	CHECK(store_open(&opts, &st, &error) == -1);
	CHECK(st == NULL);
	CHECK_STR(error, "store: unknown backend 'pg'");
	free(error);
	opts.backend = "sqlite";
	CHECK(store_open(&opts, &st, NULL) == 1);
	store_close(&st);
}

int main(void)
{
	struct store *st;

	if (mkdtemp(data_dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	st = open_store_host("mx.b.test");
	setup(st);
	test_writer(st, 0, 1);
	test_writer(st, 100, 1);
	test_writer(st, STORE_MSG_MEM_MAX, 4096);         /* exactly the threshold */
	test_writer(st, STORE_MSG_MEM_MAX + 1, 4096);     /* one byte past it */
	test_writer(st, 5 * STORE_MSG_MEM_MAX + 17, 777); /* spilled, odd splits */
	test_insert(st, 200);
	test_insert(st, 3 * STORE_MSG_MEM_MAX);
	test_abort(st);
	test_queue_envelope(st);
	test_async(st);
	store_close(&st);
	test_postmaster();
	test_postmaster_empty();
	test_resolve_many();
	test_resolve_forwards();
	test_sweep();
	test_backend();

	nftw(data_dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	return unit_finish("store_msg");
}
