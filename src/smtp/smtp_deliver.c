/* Delivery of a complete SMTP message: a worker job runs the submission checks
 * and store_deliver_async; the store's committer thread posts the completion
 * to the session's loop once the batch is durable (docs/architecture.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "delivery/srs.h"
#include "smtp/smtp_session_int.h"

/* STORE_BODY_* of a BODY= value */
static int smtp_store_body(enum smtp_body_type body)
{
	switch (body) {
	case SMTP_BODY_8BITMIME:
		return STORE_BODY_8BITMIME;
	case SMTP_BODY_BINARYMIME:
		return STORE_BODY_BINARYMIME;
	case SMTP_BODY_7BIT:
	default:
		return STORE_BODY_7BIT;
	}
}

/* STORE_NOTIFY_* bits of SMTP_NOTIFY_* ones (the same RFC 3461 words) */
static unsigned smtp_store_notify(unsigned n)
{
	return ((n & SMTP_NOTIFY_NEVER) ? STORE_NOTIFY_NEVER : 0) |
	       ((n & SMTP_NOTIFY_SUCCESS) ? STORE_NOTIFY_SUCCESS : 0) |
	       ((n & SMTP_NOTIFY_FAILURE) ? STORE_NOTIFY_FAILURE : 0) |
	       ((n & SMTP_NOTIFY_DELAY) ? STORE_NOTIFY_DELAY : 0);
}

/* Ends the job with result: its completion goes to the session's loop. Any
 * thread; j must not be touched afterwards. */
static void smtp_deliver_job_post(struct smtp_deliver_job *j, int result)
{
	j->result = result;
	worker_inbox_post(j->inbox, j->post);
}

/* store_deliver_async's completion, on the committer thread: hand it over. */
static void smtp_deliver_committed(void *ctx, int result, char *error)
{
	struct smtp_deliver_job *j = ctx;
	j->error = error;
	j->queue_id = j->d.queue_id;
	smtp_deliver_job_post(j, result > 0 ? 1 : -1);
}

/* Forwarded mail from another domain's sender leaves with an SRS sender of the
 * forwarding domain (docs/delivery.md), so that it passes SPF at the next hop
 * and its bounces find their way back. Mail from our own domains (and <>)
 * keeps its sender. 1 ok, -1 error (j->error). */
static int smtp_deliver_srs(struct smtp_deliver_job *j)
{
	const char *from = j->tx->from;
	const char *at = strrchr(from, '@');
	if (j->srs_domain == NULL || j->srs_secret[0] == '\0' || from[0] == '\0' || at == NULL)
		return 1;
	int local = store_domain_exists(j->store, at + 1, &j->error);
	if (local != 0)
		return local < 0 ? -1 : 1;
	char srs[SRS_ADDR_MAX + 1];
	if (srs_forward(j->srs_secret, from, j->srs_domain, time(NULL), srs, sizeof(srs)) < 0)
		return 1; /* too long for the scheme: keeps its sender */
	j->queue_sender = strdup(srs);
	if (j->queue_sender == NULL) {
		j->error = strdup("out of memory");
		return -1;
	}
	return 1;
}

/* The delivery job, on a worker: the submission header checks, then the blob
 * (store_deliver_async). Every path ends in exactly one smtp_deliver_job_post,
 * here or from the committer thread. */
static void smtp_deliver_job_run(void *arg)
{
	struct smtp_deliver_job *j = arg;
	struct smtp_tx *tx = j->tx;
	if (j->submission) {
		int r = smtp_submission_check(j);
		if (r < 0) {
			smtp_deliver_job_post(j, r);
			return;
		}
	}
	if (smtp_deliver_srs(j) < 0) {
		smtp_deliver_job_post(j, -1);
		return;
	}
	j->d = (struct store_delivery){
		.accounts = j->accounts,
		.naccounts = j->naccounts,
		.mailbox = NULL,
		.msg = tx->m,
		.internal_date = (int64_t)time(NULL),
		.flags = NULL,
		.queue_sender = j->queue_sender != NULL ? j->queue_sender : tx->from,
		.queue_rcpts = j->queue_rcpts,
		.nqueue_rcpts = j->nqueue,
		.queue_account = j->account,
		/* the rest of the envelope, for the outbound queue (RFC 3461 DSN,
		 * RFC 6152 / 3030 BODY, RFC 6531 SMTPUTF8) */
		.queue_envid = tx->envid,
		.queue_ret = tx->ret,
		.queue_body = smtp_store_body(tx->body),
		.queue_smtputf8 = tx->smtputf8,
		/* RFC 8689: REQUIRETLS, else TLS-Required: No in the header */
		.queue_tls = tx->requiretls            ? STORE_TLS_REQUIRE
			     : tx->header.tls_required_no ? STORE_TLS_NOT_REQUIRED
							  : STORE_TLS_DEFAULT,
		.queue_notify = j->queue_notify,
		.queue_orcpt = j->queue_orcpt,
		/* our Return-Path: is for local mailboxes only (RFC 5321 4.4: the
		 * final delivery adds it); the queued copy goes out without it */
		.trace_len = tx->rp_len,
		.insert_at = tx->trace_len,
		.insert = j->insert.data,
		.insert_len = j->insert.len,
	};
	/* The blob is written and synced here; the committer thread commits it with
	 * the rest of its batch and posts the completion: this worker is free at once
	 * (j belongs to the committer now, do not touch it). */
	if (store_deliver_async(j->store, &j->d, NULL, smtp_deliver_committed, j, &j->error) < 0)
		smtp_deliver_job_post(j, -1);
}

static void smtp_deliver_job_done(void *arg)
{
	struct smtp_deliver_job *j = arg;
	struct smtp_session *s = j->s;
	struct smtp_tx *tx = j->tx;
	bool dead = smtp_session_gone(s);
	if (j->result > 0) {
		log_info(s->c->sid, "event=delivered id=%s size=%llu accounts=%zu queued=%zu%s",
			 tx->id, (unsigned long long)store_msg_size(tx->m), j->naccounts, j->nqueue,
			 dead ? " client=gone" : "");
		/* the queue id when there is a queue entry: what `hermod queue` lists */
		if (!dead && j->queue_id > 0 && s->submission)
			smtp_reply(s, "250 2.0.0 Ok: queued as %lld", (long long)j->queue_id);
		else if (!dead)
			smtp_reply(s, "250 2.0.0 Ok: %s as %s",
				   s->submission ? "queued" : "delivered", tx->id);
	} else if (j->result == -4) {
		log_info(s->c->sid, "event=rejected id=%s reason=header-too-large user=%s", tx->id,
			 j->account);
		if (!dead)
			smtp_reply_error(s, "552 5.3.4 Header section too large");
	} else if (j->result == -3) {
		log_info(s->c->sid, "event=rejected id=%s reason=no-from user=%s", tx->id,
			 j->account);
		if (!dead)
			smtp_reply_error(s, "550 5.6.0 Message has no From: address");
	} else if (j->result == -2) {
		log_info(s->c->sid, "event=rejected id=%s reason=from-not-owned user=%s", tx->id,
			 j->account);
		if (!dead)
			smtp_reply_error(s, "550 5.7.1 From: header not owned by authenticated user");
	} else {
		char esc[600];
		log_error(s->c->sid, "event=delivery-failed id=%s error=\"%s\"", tx->id,
			  log_escape_str(j->error, esc, sizeof(esc)));
		if (!dead)
			smtp_reply(s, "451 4.3.0 Temporary failure, try again later");
	}
	free(j->accounts);
	free(j->queue_rcpts);
	free(j->queue_notify);
	free(j->queue_orcpt);
	buf_free(&j->insert);
	free(j->account);
	free(j->srs_domain);
	free(j->queue_sender);
	free(j->error);
	free(j);
	/* s->tx was detached when the job started */
	smtp_tx_free(&tx);
	if (!dead) {
		smtp_session_set_state(s, SMTP_STATE_COMMAND);
		if (s->stopping)
			smtp_session_goodbye(s, "421 4.3.2 Shutting down");
		smtp_session_unpark(s);
	}
	conn_release(s->c); /* last: may free the connection at the next safe point */
}

/* The message is complete: deliver it to every distinct account (and queue it
 * for the remote recipients of a submission). */
void smtp_session_deliver(struct smtp_session *s)
{
	struct smtp_tx *tx = s->tx;
	size_t n = 0, nremote = 0;
	for (struct smtp_rcpt *r = tx->rcpts; r != NULL; r = r->next) {
		nremote += r->remote;
		for (char **f = r->forwards; f != NULL && *f != NULL; f++)
			nremote++;
		for (char **a = r->accounts; a != NULL && *a != NULL; a++)
			n++;
	}
	struct smtp_deliver_job *j = calloc(1, sizeof(*j));
	const char **accounts = calloc(n + 1, sizeof(*accounts));
	const char **queue = calloc(nremote + 1, sizeof(*queue));
	unsigned *notify = calloc(nremote + 1, sizeof(*notify));
	const char **orcpt = calloc(nremote + 1, sizeof(*orcpt));
	char *account = s->auth_user != NULL ? strdup(s->auth_user) : NULL;
	if (j == NULL || accounts == NULL || queue == NULL || notify == NULL || orcpt == NULL ||
	    (s->auth_user != NULL && account == NULL)) {
		free(j);
		free(accounts);
		free(queue);
		free(notify);
		free(orcpt);
		free(account);
		smtp_reply(s, "451 4.3.0 Temporary failure, try again later");
		smtp_session_set_state(s, SMTP_STATE_COMMAND);
		smtp_session_end_tx(s);
		return;
	}
	/* one entry per account, however many recipients lead to it */
	for (struct smtp_rcpt *r = tx->rcpts; r != NULL; r = r->next) {
		if (r->remote) {
			notify[j->nqueue] = smtp_store_notify(r->notify);
			orcpt[j->nqueue] = r->orcpt;
			queue[j->nqueue++] = r->addr;
		}
		/* forwarding: the alias's remote targets go to the queue, once each */
		for (char **f = r->forwards; f != NULL && *f != NULL; f++) {
			size_t k;
			for (k = 0; k < j->nqueue; k++)
				if (strcmp(queue[k], *f) == 0)
					break;
			if (k < j->nqueue)
				continue;
			notify[j->nqueue] = smtp_store_notify(r->notify);
			orcpt[j->nqueue] = NULL;
			queue[j->nqueue++] = *f;
			if (j->srs_domain == NULL) {
				const char *at = strrchr(r->addr, '@');
				j->srs_domain = strdup(at != NULL ? at + 1 : s->lim.hostname);
			}
		}
		for (char **a = r->accounts; a != NULL && *a != NULL; a++) {
			size_t k;
			for (k = 0; k < j->naccounts; k++)
				if (strcmp(accounts[k], *a) == 0)
					break;
			if (k == j->naccounts)
				accounts[j->naccounts++] = *a;
		}
	}
	j->s = s;
	j->store = s->c->srv->store;
	j->tx = tx;
	j->accounts = accounts;
	j->queue_rcpts = queue;
	j->queue_notify = notify;
	j->queue_orcpt = orcpt;
	buf_init(&j->insert, 0);
	j->submission = s->submission;
	j->require_from_match = s->lim.require_from_match;
	j->account = account;
	snprintf(j->hostname, sizeof(j->hostname), "%s", s->lim.hostname);
	snprintf(j->srs_secret, sizeof(j->srs_secret), "%s", s->lim.srs_secret);
	j->inbox = s->c->loop->inbox;
	j->post = worker_post_new(smtp_deliver_job_done, j);
	s->tx = NULL; /* owned by the job now */
	/* The completion is posted (j->post), and the job has none of its own (one
	 * loop wake-up less per message): hold the connection until the post ran. */
	conn_hold(s->c);
	if (j->post == NULL || conn_submit_detached(s->c, smtp_deliver_job_run, j) < 0) {
		conn_release(s->c);
		worker_post_free(&j->post);
		s->tx = tx;
		free(accounts);
		free(queue);
		free(notify);
		free(orcpt);
		free(account);
		free(j);
		smtp_reply(s, "451 4.3.0 Temporary failure, try again later");
		smtp_session_set_state(s, SMTP_STATE_COMMAND);
		smtp_session_end_tx(s);
		return;
	}
	smtp_session_park(s);
}
