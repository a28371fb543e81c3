/* SQLite backend: delivery with group commit (see store_sqlite_int.h). */
#include "store/store_sqlite_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* ---- delivery with group commit ---- */

static void stmt_done(sqlite3_stmt *stmt)
{
	sqlite3_reset(stmt);
	sqlite3_clear_bindings(stmt);
}

/* Runs a prepared statement that returns no rows. 1 ok, -1 error. */
static int stmt_run(sqlite3 *db, sqlite3_stmt *stmt, char **error_r)
{
	int rc = sqlite3_step(stmt);

	sqlite3_reset(stmt);
	return rc == SQLITE_DONE ? 1 : sqlite_db_fail(db, error_r, "database");
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
static int gc_queue_one(struct store_backend *st, struct store_gc_req *r, char **error_r)
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
	sqlite3_bind_int(st->st_queue_insert, 11, d->queue_tls);
	rc = sqlite3_step(st->st_queue_insert);
	stmt_done(st->st_queue_insert);
	if (rc != SQLITE_DONE)
		return sqlite_db_fail(st->wdb, error_r, "database");
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
			return sqlite_db_fail(st->wdb, error_r, "database");
	}
	r->d->queue_id = queue_id;
	return 1;
}

/* One delivery inside the batch transaction (and its own savepoint). */
static int gc_deliver_one(struct store_backend *st, struct store_gc_req *r, char **error_r)
{
	const struct store_delivery *d = r->d;
	const char *mailbox = store_mailbox_normalize(d->mailbox);
	int rc;

	/* A sweep (possibly in another process) may have removed an unreferenced
	 * file with this content after blob_write() reused it; we now hold the write
	 * lock, so check and rewrite if needed. (A segment blob was appended, never
	 * reused: nothing to check.) */
	rc = r->blob->seg_no != 0 ? 1 : blob_exists(st->data_dir, r->blob_id, error_r);
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
	if (r->blob->seg_no != 0)
		sqlite3_bind_int64(st->st_blob_ref, 4, r->blob->seg_no);
	else
		sqlite3_bind_null(st->st_blob_ref, 4);
	sqlite3_bind_int64(st->st_blob_ref, 5, (int64_t)r->blob->seg_off);
	rc = sqlite3_step(st->st_blob_ref);
	stmt_done(st->st_blob_ref);
	if (rc != SQLITE_DONE)
		return sqlite_db_fail(st->wdb, error_r, "database");

	for (size_t i = 0; i < d->naccounts; i++) {
		int64_t mbox_id, uid, modseq;

		sqlite3_bind_text(st->st_mbox_bump, 1, d->accounts[i], -1, SQLITE_STATIC);
		sqlite3_bind_text(st->st_mbox_bump, 2, mailbox, -1, SQLITE_STATIC);
		rc = sqlite3_step(st->st_mbox_bump);
		if (rc != SQLITE_ROW) {
			if (rc == SQLITE_DONE) {
				str_error(error_r, "mailbox %s of account %s does not exist",
				          mailbox, d->accounts[i]);
				r->fail_code = STORE_NOMAILBOX;
			} else
				sqlite_db_fail(st->wdb, error_r, "database");
			stmt_done(st->st_mbox_bump);
			return -1;
		}
		mbox_id = sqlite3_column_int64(st->st_mbox_bump, 0);
		uid = sqlite3_column_int64(st->st_mbox_bump, 1);
		modseq = sqlite3_column_int64(st->st_mbox_bump, 2);
		if (r->uidvalidity_r != NULL)
			*r->uidvalidity_r = (uint32_t)sqlite3_column_int64(st->st_mbox_bump, 3);
		/* Step to completion so the UPDATE ... RETURNING is finished. */
		rc = sqlite3_step(st->st_mbox_bump);
		stmt_done(st->st_mbox_bump);
		if (rc != SQLITE_DONE)
			return sqlite_db_fail(st->wdb, error_r, "database");
		if (uid <= 0 || uid >= (int64_t)UINT32_MAX) {
			str_error(error_r, "mailbox %s of account %s has run out of UIDs",
			                mailbox, d->accounts[i]);
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
			return sqlite_db_fail(st->wdb, error_r, "database");
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
static void gc_register_orphan(struct store_backend *st, struct store_gc_req *r)
{
	if (r->blob->seg_no != 0)
		return; /* bytes in a segment: dead space, reclaimed with the segment */
	sqlite3_bind_null(st->st_blob_ref, 4);
	sqlite3_bind_int64(st->st_blob_ref, 5, 0);
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
		r->error = str_dup(error); /* NULL: gc_finish says "delivery failed" */
	}
}

/* Fails the requests r .. end (one savepoint: a delivery, or an APPEND) with a
 * copy of error (NULL: "delivery failed") and fail_code. */
static void gc_fail_group(struct store_gc_req *r, struct store_gc_req *end, const char *error,
                          int fail_code)
{
	for (; r != end; r = r->next) {
		r->result = -1;
		free(r->error);
		r->error = error != NULL ? str_dup(error) : NULL;
		r->fail_code = fail_code;
	}
}

/* Makes the blobs of a batch durable before their metadata is committed: one
 * fdatasync per segment the batch appended to, an fdatasync per new blob file
 * not synced yet and one fsync per directory the batch touched
 * (blob_write_sync_batch), so only this batch's files are flushed, not the whole
 * file system. Requests whose blob failed move to *failed with result -1. */
static void gc_sync_blobs(struct store_backend *st, struct store_gc_req **batch,
                          struct store_gc_req **failed)
{
	size_t n = 0, i = 0;

	for (struct store_gc_req *r = *batch; r != NULL; r = r->next)
		n++;
	struct blob_pending **ps = calloc(n, sizeof(*ps));
	int *results = calloc(n, sizeof(*results));
	char **errors = calloc(n, sizeof(*errors));
	if (ps == NULL || results == NULL || errors == NULL) {
		for (struct store_gc_req *r = *batch; r != NULL; r = r->next) {
			blob_pending_abort(r->blob);
			r->result = -1;
			str_error(&r->error, "out of memory");
		}
		*failed = *batch;
		*batch = NULL;
		goto out;
	}
	for (struct store_gc_req *r = *batch; r != NULL; r = r->next)
		ps[i++] = r->blob;
	blob_write_sync_batch(st->data_dir, ps, n, st->fsync, results, errors);
	struct store_gc_req **keep = batch, **fail = failed;
	struct store_gc_req *r = *batch;
	*batch = NULL;
	for (i = 0; r != NULL; i++) {
		struct store_gc_req *next = r->next;
		r->next = NULL;
		if (results[i] > 0) {
			*keep = r;
			keep = &r->next;
		} else {
			r->result = -1;
			r->error = errors[i];
			errors[i] = NULL;
			if (r->group != NULL)
				r->group->failed = true; /* the rest of its APPEND fails too */
			while (*fail != NULL)
				fail = &(*fail)->next;
			*fail = r;
			fail = &r->next;
		}
		r = next;
	}
out:
	for (i = 0; errors != NULL && i < n; i++)
		free(errors[i]);
	free(ps);
	free(results);
	free(errors);
}

/* Commits a batch of queued deliveries in one transaction. Sets each r->result. */
static void gc_commit_batch(struct store_backend *st, struct store_gc_req *batch)
{
	char *error = NULL;

	for (struct store_gc_req *r = batch; r != NULL; r = r->next)
		r->result = 0;

	pthread_mutex_lock(&st->wmu);
	if (sqlite_db_exec(st->wdb, "BEGIN IMMEDIATE", &error) < 0) {
		gc_fail_all(batch, error != NULL ? error : "database: BEGIN failed");
		goto out;
	}
	for (struct store_gc_req *r = batch, *end; r != NULL; r = end) {
		char *err = NULL;

		/* r .. end: one delivery, or every request of one APPEND still in the
		 * batch, in one savepoint */
		end = r->next;
		while (r->group != NULL && end != NULL && end->group == r->group)
			end = end->next;
		if (r->group != NULL && r->group->failed) {
			gc_fail_group(r, end, NULL, 0);
			continue;
		}
		if (stmt_run(st->wdb, st->st_savepoint, &err) < 0) {
			gc_fail_group(r, end, err, 0);
			free(err);
			continue;
		}
		struct store_gc_req *bad = NULL;
		for (struct store_gc_req *m = r; m != end && bad == NULL; m = m->next) {
			if (gc_deliver_one(st, m, &err) < 0)
				bad = m;
		}
		if (bad != NULL) {
			/* NULL err: gc_finish says "delivery failed" */
			gc_fail_group(r, end, err, bad->fail_code);
			free(err);
			if (sqlite_db_exec(st->wdb, "ROLLBACK TO delivery; RELEASE delivery",
			                   NULL) < 0) {
				/* The transaction is unusable: fail what is left. */
				sqlite_db_rollback(st->wdb);
				gc_fail_all(batch, "database: savepoint rollback failed");
				goto out;
			}
			for (struct store_gc_req *m = r; m != end; m = m->next)
				gc_register_orphan(st, m);
			continue;
		}
		if (stmt_run(st->wdb, st->st_release, &err) < 0) {
			sqlite_db_rollback(st->wdb);
			gc_fail_all(batch, err != NULL ? err : "database: release failed");
			free(err);
			goto out;
		}
	}
	/* The one fsync of the batch happens here (synchronous=FULL). */
	if (sqlite_db_exec(st->wdb, "COMMIT", &error) < 0) {
		sqlite_db_rollback(st->wdb);
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
		str_error(error_r, "store_deliver: too many queue recipients");
		return -1;
	}
	if (d->queue_account != NULL && !store_text_ok(d->queue_account)) {
		str_error(error_r, "store_deliver: invalid queue account");
		return -1;
	}
	if (d->queue_envid != NULL &&
	    (d->queue_envid[0] == '\0' || strlen(d->queue_envid) > STORE_ENVID_MAX ||
	     !store_text_ok(d->queue_envid))) {
		str_error(error_r, "store_deliver: invalid ENVID");
		return -1;
	}
	if (d->queue_ret < STORE_RET_NONE || d->queue_ret > STORE_RET_HDRS ||
	    d->queue_body < STORE_BODY_7BIT || d->queue_body > STORE_BODY_BINARYMIME) {
		str_error(error_r, "store_deliver: invalid RET or BODY");
		return -1;
	}
	for (size_t i = 0; d->queue_notify != NULL && i < d->nqueue_rcpts; i++) {
		unsigned n = d->queue_notify[i];
		/* RFC 3461 4.1: NEVER excludes the others */
		if ((n & ~0xfu) != 0 || ((n & STORE_NOTIFY_NEVER) && n != STORE_NOTIFY_NEVER)) {
			str_error(error_r, "store_deliver: invalid NOTIFY");
			return -1;
		}
	}
	if (*sender == '\0') {
		req->queue_sender = str_dup("");
		if (req->queue_sender == NULL)
			return str_error(error_r, "out of memory");
	} else if (store_addr_normalize_ex(sender, false, true, &req->queue_sender, NULL, error_r) <
	           0) {
		return -1;
	}
	req->queue_rcpts = calloc(d->nqueue_rcpts + 1, sizeof(*req->queue_rcpts));
	if (req->queue_rcpts == NULL) {
		queue_envelope_free(req);
		return str_error(error_r, "out of memory");
	}
	for (size_t i = 0; i < d->nqueue_rcpts; i++) {
		if (store_addr_normalize_ex(d->queue_rcpts[i], false, true, &req->queue_rcpts[i],
		                            NULL, error_r) < 0) {
			queue_envelope_free(req);
			return -1;
		}
	}
	if (d->queue_orcpt != NULL) {
		req->queue_orcpt = calloc(d->nqueue_rcpts, sizeof(*req->queue_orcpt));
		if (req->queue_orcpt == NULL) {
			queue_envelope_free(req);
			str_error(error_r, "out of memory");
			return -1;
		}
		for (size_t i = 0; i < d->nqueue_rcpts; i++) {
			const char *o = d->queue_orcpt[i];
			if (o == NULL)
				continue;
			if (*o == '\0' || strlen(o) > STORE_ORCPT_MAX || !store_text_ok(o)) {
				queue_envelope_free(req);
				str_error(error_r, "store_deliver: invalid ORCPT");
				return -1;
			}
			req->queue_orcpt[i] = str_dup(o);
			if (req->queue_orcpt[i] == NULL) {
				queue_envelope_free(req);
				return str_error(error_r, "out of memory");
			}
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
		size_t skip = (size_t)(off - ds->at),
		       n = ds->ins_len - skip < len ? ds->ins_len - skip : len;
		memcpy(buf, ds->ins + skip, n);
		return (long)n;
	}
	return deliver_base_read(ds, buf, len, off - ds->ins_len);
}

/* Sets up req's source of the stored bytes and writes the blob file (not synced). */
static int deliver_blob_begin(struct store_backend *st, struct store_delivery *d,
                              struct store_gc_req *req, struct blob_pending *blob, char **error_r)
{
	char id[BLOB_ID_LEN + 1];
	const char *known_id = NULL;
	uint64_t base_size;

	req->ds.data = d->data != NULL ? d->data : "";
	req->ds.msg = d->msg;
	base_size = d->msg != NULL ? store_msg_size(d->msg) : d->len;
	if (d->msg != NULL && (d->msg->failed || d->msg->delivered)) {
		str_error(error_r, "store_deliver: message not complete");
		return -1;
	}
	if (d->insert_len > 0) {
		if (d->insert == NULL || d->insert_at > base_size ||
		    d->insert_len > UINT64_MAX - base_size) {
			str_error(error_r, "store_deliver: invalid insert");
			return -1;
		}
		req->ds.at = d->insert_at;
		req->ds.ins = d->insert;
		req->ds.ins_len = d->insert_len;
	}
	req->len = base_size + d->insert_len;
	if (d->trace_len > req->len) {
		str_error(error_r, "store_deliver: trace_len past the message");
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
			str_error(error_r, "SHA-256 failed");
			return -1;
		}
		known_id = id;
		req->src.link_fd = d->msg->fd;
	}
	/* Small and in memory: appended to a segment (no inode, one fdatasync per
	 * batch). Spilled to a file already, or large: a file of its own, linked
	 * into place without a copy. */
	if (st->segs != NULL && req->src.size <= STORE_SEGMENT_BLOB_MAX &&
	    (d->msg == NULL || d->msg->fd < 0))
		return blob_write_begin_seg(st->segs, &req->src, known_id, blob, error_r);
	return blob_write_begin_src(st->data_dir, &req->src, known_id, blob, error_r);
}

/* Completes and frees a request (committer thread). */
static void gc_finish(struct store_gc_req *r)
{
	struct store_delivery *d = r->d;

	queue_envelope_free(r);
	free(r->flags_owned);
	if (d->msg != NULL)
		d->msg->delivered = r->result > 0;
	if (r->result <= 0)
		d->queue_id = 0;
	store_deliver_cb *cb = r->cb;
	void *ctx = r->ctx;
	/* An APPEND tells a vanished mailbox apart (STORE_NOMAILBOX); a delivery's
	 * completion is 1 or -1. */
	int result = r->result > 0                           ? 1
	             : r->group != NULL && r->fail_code != 0 ? r->fail_code
	                                                     : -1;
	char *error = r->error;
	if (result > 0) {
		free(error);
		error = NULL;
	} else if (error == NULL) {
		error = strdup("delivery failed");
	}
	free(r->blob);
	free(r);
	cb(ctx, result, error);
}

/* The committer thread: takes everything queued as one batch, makes its blobs
 * durable, commits its metadata in one transaction and calls the completions.
 * Requests that arrive meanwhile form the next batch. */
static void *gc_committer_main(void *arg)
{
	struct store_backend *st = arg;

	pthread_mutex_lock(&st->gc_mu);
	for (;;) {
		while (st->gc_head == NULL && !st->gc_stop)
			pthread_cond_wait(&st->gc_cond, &st->gc_mu);
		if (st->gc_head == NULL)
			break; /* stopping, and nothing left */
		struct store_gc_req *batch = st->gc_head;
		st->gc_head = NULL;
		st->gc_tail = &st->gc_head;
		pthread_mutex_unlock(&st->gc_mu);

		struct store_gc_req *failed = NULL;
		gc_sync_blobs(st, &batch, &failed);
		if (batch != NULL)
			gc_commit_batch(st, batch);
		/* the queue runner hears of new entries once a batch, before the
		 * submitters do (their completions below) */
		bool queued = false;
		for (struct store_gc_req *r = batch; r != NULL && !queued; r = r->next)
			queued = r->result > 0 && r->queue_rcpts != NULL;
		if (queued && st->queue_hook != NULL)
			st->queue_hook(st->queue_hook_ctx);
		for (struct store_gc_req *r = batch, *next; r != NULL; r = next) {
			next = r->next;
			gc_finish(r);
		}
		for (struct store_gc_req *r = failed, *next; r != NULL; r = next) {
			next = r->next;
			gc_finish(r);
		}
		pthread_mutex_lock(&st->gc_mu);
	}
	pthread_mutex_unlock(&st->gc_mu);
	return NULL;
}

int sqlite_committer_start(struct store_backend *st, char **error_r)
{
	int rc = sqlite_thread_create(&st->gc_thread, gc_committer_main, st);

	if (rc != 0) {
		str_error(error_r, "store: cannot start the committer thread: %s",
		                strerror(rc));
		return -1;
	}
	st->gc_started = true;
	return 1;
}

void sqlite_committer_stop(struct store_backend *st)
{
	if (!st->gc_started)
		return;
	pthread_mutex_lock(&st->gc_mu);
	st->gc_stop = true;
	pthread_cond_signal(&st->gc_cond);
	pthread_mutex_unlock(&st->gc_mu);
	pthread_join(st->gc_thread, NULL);
	st->gc_started = false;
}

/* Frees a prepared request that was never queued (its blob written, perhaps
 * synced: an orphan for the sweep, or dead space in a segment). */
static void gc_req_discard(struct store_gc_req *req)
{
	if (req == NULL)
		return;
	blob_pending_abort(req->blob);
	queue_envelope_free(req);
	free(req->flags_owned);
	free(req->blob);
	free(req);
}

/* Checks d, writes its blob (synced here when it is a file of its own) and
 * returns the request ready to be queued. 1 ok, -1 error. */
static int gc_req_prepare(struct store_backend *st, struct store_delivery *d, uint32_t *uids_r,
                          store_deliver_cb *cb, void *ctx, struct store_gc_req **req_r,
                          char **error_r)
{
	struct store_gc_req *req;
	char *flags = NULL;

	*req_r = NULL;
	if (d == NULL || (d->naccounts == 0 && d->nqueue_rcpts == 0) ||
	    (d->naccounts > 0 && d->accounts == NULL) ||
	    (d->nqueue_rcpts > 0 && d->queue_rcpts == NULL) || (d->data == NULL && d->len > 0)) {
		str_error(error_r, "store_deliver: no recipients");
		return -1;
	}
	d->queue_id = 0;
	req = calloc(1, sizeof(*req));
	if (req == NULL || (req->blob = calloc(1, sizeof(*req->blob))) == NULL) {
		free(req);
		str_error(error_r, "out of memory");
		return -1;
	}
	req->d = d;
	if ((d->nqueue_rcpts > 0 && queue_envelope_normalize(d, req, error_r) < 0) ||
	    store_flags_normalize(d->flags, &flags, error_r) < 0) {
		queue_envelope_free(req);
		free(req->blob);
		free(req);
		return -1;
	}
	/* Written here, in the caller's thread and in parallel with other
	 * deliveries; the committer makes it durable before committing metadata
	 * that points at it. */
	if (deliver_blob_begin(st, d, req, req->blob, error_r) < 0) {
		queue_envelope_free(req);
		free(flags);
		free(req->blob);
		free(req);
		return -1;
	}
	/* A blob file of its own is made durable here, in the caller's thread
	 * (fdatasync of the file, fsync of its directory): concurrent callers' syncs
	 * share the file system's journal commits. Measured with bench/store_bench.c
	 * (20 threads x 2000 x 4 KiB): the committer syncing each file of a batch in
	 * turn managed 315 deliveries/s, the committer syncing only the directories
	 * 513/s, this 903/s (syncfs of the whole file system: 933/s). A segment blob
	 * is left to the committer, which syncs each segment of its batch once
	 * (gc_sync_blobs), before it commits the metadata. */
	int sync_rc = 1;
	char *sync_err = NULL;
	if (st->fsync && req->blob->seg == NULL) /* segments: the committer, once a batch */
		blob_write_sync_batch(st->data_dir, &req->blob, 1, true, &sync_rc, &sync_err);
	if (sync_rc < 0) {
		str_error(error_r, "%s", sync_err != NULL ? sync_err : "fsync failed");
		free(sync_err);
		blob_pending_abort(req->blob);
		queue_envelope_free(req);
		free(flags);
		free(req->blob);
		free(req);
		return -1;
	}
	req->blob_id = req->blob->id;
	req->flags = req->flags_owned = flags;
	req->created = (int64_t)time(NULL);
	req->internal_date = d->internal_date != 0 ? d->internal_date : req->created;
	req->uids_r = uids_r;
	req->cb = cb;
	req->ctx = ctx;
	*req_r = req;
	return 1;
}

/* Queues the requests reqs[0..n) for the committer, one after the other. */
static void gc_enqueue(struct store_backend *st, struct store_gc_req **reqs, size_t n)
{
	pthread_mutex_lock(&st->gc_mu);
	for (size_t i = 0; i < n; i++) {
		*st->gc_tail = reqs[i];
		st->gc_tail = &reqs[i]->next;
	}
	pthread_cond_signal(&st->gc_cond);
	pthread_mutex_unlock(&st->gc_mu);
}

int sqlite_deliver_async(struct store_backend *st, struct store_delivery *d, uint32_t *uids_r,
                         store_deliver_cb *cb, void *ctx, char **error_r)
{
	struct store_gc_req *req;

	if (gc_req_prepare(st, d, uids_r, cb, ctx, &req, error_r) < 0)
		return -1;
	gc_enqueue(st, &req, 1);
	return 1;
}

/* ---- APPEND: deliveries to one mailbox that commit together ---- */

struct append_wait {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	size_t left;
	int result;
	char *error;
	uint32_t uidvalidity;
};

static void append_done(void *ctx, int result, char *error)
{
	struct append_wait *w = ctx;

	pthread_mutex_lock(&w->mu);
	if (result != 1 && w->result == 1) {
		w->result = result;
		w->error = error;
		error = NULL;
	}
	if (--w->left == 0)
		pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->mu);
	free(error);
}

/* Whether account's mailbox exists and is selectable (before any blob is
 * written): 1, STORE_NOMAILBOX, -1 (also for no such account). */
static int append_check(struct store_backend *st, const char *account, const char *mailbox,
                        char **error_r)
{
	const char *params[] = {account, mailbox};
	int rc;

	rc = sqlite_rquery_text(st, "SELECT id FROM accounts WHERE address = ?1", params, 1, NULL,
	                        error_r);
	if (rc == 0)
		str_error(error_r, "no such account %s", account);
	if (rc <= 0)
		return -1;
	rc = sqlite_rquery_text(st,
	                        "SELECT 1 FROM mailboxes m JOIN accounts a ON a.id = m.account"
	                        " WHERE a.address = ?1 AND m.name = ?2 AND m.noselect = 0",
	                        params, 2, NULL, error_r);
	if (rc == 0) {
		str_error(error_r, "no mailbox %s", mailbox);
		return STORE_NOMAILBOX;
	}
	return rc;
}

int sqlite_append(struct store_backend *st, const char *account, const char *mailbox,
                  const struct store_append_msg *msgs, size_t n, uint32_t *uidvalidity_r,
                  uint32_t *uids_r, char **error_r)
{
	struct append_wait w = {.mu = PTHREAD_MUTEX_INITIALIZER,
	                        .cond = PTHREAD_COND_INITIALIZER,
	                        .left = n,
	                        .result = 1};
	const char *accounts[1] = {account};
	struct store_gc_group group = {0};
	struct store_delivery *ds;
	struct store_gc_req **reqs;
	int rc;

	if (n == 0 || msgs == NULL || uids_r == NULL)
		return str_error(error_r, "store_append: no messages");
	for (size_t i = 0; i < n; i++) {
		if (msgs[i].msg == NULL)
			return str_error(error_r, "store_append: no message");
	}
	rc = append_check(st, account, mailbox, error_r);
	if (rc != 1)
		return rc;
	ds = calloc(n, sizeof(*ds));
	reqs = calloc(n, sizeof(*reqs));
	if (ds == NULL || reqs == NULL) {
		free(ds);
		free(reqs);
		return str_error(error_r, "out of memory");
	}
	/* Every blob written (and synced) first: a message that cannot be taken
	 * fails the whole APPEND before anything is queued (RFC 3502 6). */
	for (size_t i = 0; i < n; i++) {
		ds[i] = (struct store_delivery){
		    .accounts = accounts,
		    .naccounts = 1,
		    .mailbox = mailbox,
		    .msg = msgs[i].msg,
		    .flags = msgs[i].flags,
		    .internal_date = msgs[i].internal_date,
		};
		if (gc_req_prepare(st, &ds[i], &uids_r[i], append_done, &w, &reqs[i], error_r) < 0) {
			for (size_t k = 0; k < i; k++)
				gc_req_discard(reqs[k]);
			free(ds);
			free(reqs);
			return -1;
		}
		reqs[i]->group = &group;
		reqs[i]->uidvalidity_r = &w.uidvalidity;
	}
	gc_enqueue(st, reqs, n);
	pthread_mutex_lock(&w.mu);
	while (w.left > 0)
		pthread_cond_wait(&w.cond, &w.mu);
	pthread_mutex_unlock(&w.mu);
	pthread_mutex_destroy(&w.mu);
	pthread_cond_destroy(&w.cond);
	free(ds);
	free(reqs);
	if (w.result != 1) {
		if (error_r != NULL)
			*error_r = w.error;
		else
			free(w.error);
		return w.result;
	}
	if (uidvalidity_r != NULL)
		*uidvalidity_r = w.uidvalidity;
	return 1;
}
