/* Private to src/smtp: the SMTP session's state, shared by the files that
 * implement it (smtp_session.c: state, replies, commands, input, proto_ops;
 * smtp_rcpt.c: RCPT and its recipient lookups; smtp_deliver.c: the delivery
 * job; smtp_submission.c: the submission header checks). All of it runs on the
 * session's loop thread unless a comment says "worker" or "committer". */
#ifndef HERMOD_SMTP_SESSION_INT_H
#define HERMOD_SMTP_SESSION_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/worker.h"
#include "mail/header.h"
#include "net/server.h"
#include "smtp/smtp_parse.h"
#include "store/store.h"

struct line_session;
struct smtp_rcpt_lookup;

/* Stop taking input while this much output is unsent (a client that pipelines but
 * does not read its replies). */
#define SMTP_OUTPUT_HIGH 65536
/* ... and resume once it is down to this. */
#define SMTP_OUTPUT_LOW 16384
/* Most input buffered before it is processed. */
#define SMTP_INPUT_HIGH (256 * 1024)

enum smtp_state {
	SMTP_STATE_COMMAND, /* reading command lines */
	SMTP_STATE_DATA,    /* reading a DATA body */
	SMTP_STATE_BDAT,    /* reading a BDAT chunk */
	SMTP_STATE_CLOSED,  /* goodbye sent, output flushing */
	SMTP_STATE_AUTH,    /* reading SASL responses (RFC 4954) */
};

/* RFC 4954 4: a server must take AUTH responses of at least 12288 octets. */
#define SMTP_AUTH_LINE_MAX 12288

/* Copied from the config when the session starts, so SIGHUP can swap configs. */
struct smtp_limits {
	uint64_t max_message_size;
	unsigned max_recipients;
	unsigned max_errors;
	unsigned max_line_length;
	unsigned idle_timeout;
	unsigned command_timeout;
	unsigned data_timeout;
	unsigned message_timeout;
	bool allow_plaintext_on_loopback;
	bool require_from_match;
	unsigned rate_limit;
	char hostname[256];
	char srs_secret[256]; /* [delivery] srs_secret, "" none */
};

struct smtp_rcpt {
	struct smtp_rcpt *next;
	char *addr;
	char **accounts; /* NULL-terminated local accounts it resolved to (may be NULL) */
	char **forwards; /* NULL-terminated remote addresses it forwards to, or NULL */
	bool remote;     /* submission to another domain: goes to the outbound queue */
	unsigned notify; /* RFC 3461 NOTIFY as SMTP_NOTIFY_* bits, 0 = not given */
	char *orcpt;     /* RFC 3461 ORCPT as given, or NULL */
};

/* One mail transaction: created by MAIL, ended by RSET, delivery or an error. */
struct smtp_tx {
	char id[32];
	char *from; /* reverse-path address, "" for <> */
	bool smtputf8;
	bool requiretls; /* RFC 8689 REQUIRETLS given with MAIL */
	enum smtp_body_type body;
	char *envid; /* RFC 3461 ENVID as given (xtext), or NULL */
	int ret;     /* RFC 3461 RET as STORE_RET_* */
	struct smtp_rcpt *rcpts;
	struct smtp_rcpt **rcpt_tail;
	unsigned nrcpts;
	bool bdat_used;
	uint64_t bdat_total; /* octets of the BDAT chunks announced so far */
	struct smtp_body_reader reader;
	/* The message as stored (trace headers + body) goes to the store's message
	 * writer as it arrives (memory up to STORE_MSG_MEM_MAX, then a spill file),
	 * so a session holds no whole message. msg only stages the output of one
	 * body reader feed on its way there. */
	struct store_msg *m;
	struct buf msg;
	char tail[2];      /* the last two bytes written to m */
	bool write_failed; /* m could not be created or written: 451 at the end */
	size_t trace_len; /* bytes of the message that are our Return-Path: and Received: */
	size_t rp_len;    /* of which our Return-Path: line (local only: not relayed) */
	/* Submission only: the header section after our trace fields, scanned as it
	 * is written (the checks of smtp_submission.c; port 25 does not scan). */
	bool scan_header;
	struct mail_header_scan header;
	/* RCPTs pipelined behind the last looked-up one, resolved by its job:
	 * ahead[ahead_next..nahead) not used yet (see smtp_cmd_rcpt) */
	struct smtp_rcpt_lookup *ahead; /* smtp_rcpt.c */
	size_t nahead, ahead_next;
};

struct smtp_session {
	struct conn *c;
	struct smtp_limits lim;
	enum smtp_state state;
	char *helo;
	bool esmtp;
	unsigned ntx;
	struct line_session *ls; /* input, replies, timeouts (net/line_session.h) */
	bool busy;           /* a worker job is running for this session */
	bool stopping;       /* server shutdown: end after the current transaction */
	bool msg_deadline;   /* [limits] message_timeout armed for the current message */
	bool submission;     /* RFC 6409 submission service: AUTH, relaying for users */
	char *auth_user;     /* authenticated account */
	struct auth_exchange *auth; /* the last AUTH exchange */
	bool auth_busy;      /* its lookup or failure delay is running */
	struct smtp_tx *tx;
	/* BDAT chunk in progress */
	uint64_t bdat_size;
	uint64_t bdat_remaining;
	bool bdat_last;
	const char *bdat_reply; /* error reply owed once the chunk is consumed */
};

/* RFC 5322 2.2 sets no limit on the header section; the submission checks scan
 * at most this much of it (Postfix's header_size_limit is 100 KiB). */
#define SMTP_HEADER_MAX (256 * 1024)
/* Received: fields at which a message is taken to be looping (RFC 5321 6.3). */
#define SMTP_HOPS_MAX 100

/* Delivery of a complete message (smtp_deliver.c, smtp_submission.c) */
struct smtp_deliver_job {
	struct smtp_session *s;
	struct store *store;
	struct smtp_tx *tx;
	const char **accounts;
	size_t naccounts;
	const char **queue_rcpts; /* submission: remote recipients */
	unsigned *queue_notify;   /* their NOTIFY bits (STORE_NOTIFY_*) */
	const char **queue_orcpt; /* their ORCPT or NULL */
	size_t nqueue;
	int64_t queue_id;         /* the queue entry made, or 0 */
	struct buf insert;        /* header fields the MSA adds (RFC 6409 8) */
	/* submission */
	bool submission;
	bool require_from_match;
	char *account;
	char hostname[256];
	char srs_secret[256];
	char *srs_domain;   /* a local domain forwarding went through: the SRS address's */
	char *queue_sender; /* the queue's envelope sender when rewritten (SRS), or NULL */
	int result; /* 1 ok, -1 store error, -2 From: not the user's, -3 no From: address,
		       -4 header section over SMTP_HEADER_MAX */
	char *error;
	/* The delivery handed to store_deliver_async: it and what it points to stay
	 * valid until the completion has run. */
	struct store_delivery d;
	/* The completion, allocated on the loop so that posting it cannot fail: the
	 * worker posts it when the job ends without a delivery, else the committer
	 * thread does when the batch is durable (or failed). */
	struct worker_inbox *inbox; /* the session's loop */
	struct worker_post *post;
};


/* ---- smtp_session.c ---- */
void smtp_session_set_state(struct smtp_session *s, enum smtp_state state);
void smtp_reply(struct smtp_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* A reply to a client mistake: counted towards max_errors. */
void smtp_reply_error(struct smtp_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Sends a final reply and ends the session once it is written. */
void smtp_session_goodbye(struct smtp_session *s, const char *reply);
void smtp_tx_free(struct smtp_tx **txp);
/* Ends the current transaction (RSET, delivery, error). */
void smtp_session_end_tx(struct smtp_session *s);
/* Parks the session while a worker job runs; unpark processes what was
 * pipelined meanwhile. */
void smtp_session_park(struct smtp_session *s);
void smtp_session_unpark(struct smtp_session *s);
/* True when the session can take no more replies (closed, or goodbye sent). */
bool smtp_session_gone(const struct smtp_session *s);
/* The extensions whose MAIL/RCPT parameters the session accepts (SMTP_EXT_*). */
unsigned smtp_session_ext(const struct smtp_session *s);

/* ---- smtp_rcpt.c ---- */
/* RCPT TO (inside a transaction): the lookup runs as a worker job, or uses the
 * result a job of an earlier pipelined RCPT got for it. */
void smtp_cmd_rcpt(struct smtp_session *s, const struct smtp_command *cmd);
/* Frees the results resolved ahead (smtp_tx_free calls it). */
void smtp_tx_ahead_free(struct smtp_tx *tx);

/* ---- smtp_deliver.c ---- */
/* The message of s->tx is complete: delivers it to every distinct account (and
 * queues it for the remote recipients of a submission); the reply follows when
 * it is durable. The transaction goes to the job. */
void smtp_session_deliver(struct smtp_session *s);

/* ---- smtp_submission.c (worker) ---- */
/* RFC 6409 submission checks of j->tx's message: one From: with a mailbox, the
 * user's own From: addresses when j->require_from_match, and the Date: and
 * Message-ID: fields to add (into j->insert). 1 ok, -1 error (j->error set),
 * -2 From: not the user's, -3 no From: address, -4 header section over
 * SMTP_HEADER_MAX. */
int smtp_submission_check(struct smtp_deliver_job *j);

#endif
