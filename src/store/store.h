/* The mail store interface. Functions are synchronous and thread-safe: they are
 * called from worker threads (never from an event loop) and from the CLI (except
 * the message writer, see below).
 *
 * store.c is the front: it validates what callers pass, applies the recipient
 * rules (aliases, plus-addresses, catch-alls, postmaster) on top of primitive
 * lookups, and dispatches everything else to a backend through struct store_ops
 * (end of this file). The embedded backend is SQLite (WAL) plus content-addressed
 * blob files (store_sqlite*.c, blob.c); a PostgreSQL backend implements the same
 * table. Blob ids are opaque outside the store: callers pass back what the store
 * listed and never build or parse them.
 *
 * Results: 1 ok / found, 0 not found (where documented), -1 error with *error_r
 * set to a malloc'd human-readable message (caller frees; error_r may be NULL).
 * Addresses are passed and stored lower-cased in the domain part; local parts are
 * compared case-insensitively for ASCII (RFC 5321 2.4 permits this for our own
 * mailboxes). */
#ifndef HERMOD_STORE_STORE_H
#define HERMOD_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct store;

struct store_options {
	const char *data_dir;
	bool fsync; /* false only for throw-away test instances */
	/* The server's host name ([server] hostname), for the primary domain of the
	 * postmaster rules (store_resolve_recipient). NULL: the oldest local domain. */
	const char *hostname;
	/* The backend ([store] backend): NULL or "sqlite". */
	const char *backend;
	/* Minimum age (seconds) of an unreferenced blob file before the sweep at
	 * store_open removes it; 0 = STORE_BLOB_SWEEP_AGE. */
	unsigned blob_sweep_age;
	/* Small blobs (up to STORE_SEGMENT_BLOB_MAX bytes) go into segment files of
	 * about segment_size bytes (0 = 64 MiB), larger ones into files of their own;
	 * segments_off stores every blob as a file (tests of the file layout). */
	uint64_t segment_size;
	bool segments_off;
	/* Seconds between runs of store_blob_sweep (with the age above) in a
	 * background thread of the store; 0: none (a CLI command, which sweeps once
	 * at open like every store_open). The server sets STORE_SWEEP_INTERVAL. */
	unsigned sweep_interval;
};
#define STORE_SWEEP_INTERVAL 3600
#define STORE_BLOB_SWEEP_AGE 3600
#define STORE_SEGMENT_BLOB_MAX (128u << 10)

/* Opens (creating and migrating as needed) the store under opts->data_dir. */
int store_open(const struct store_options *opts, struct store **store_r, char **error_r);
void store_close(struct store **store);

/* ---- domains, accounts, aliases (admin) ---- */
int store_domain_add(struct store *st, const char *domain, char **error_r); /* -1 if exists */
int store_domain_del(struct store *st, const char *domain, char **error_r); /* 0 if absent */
/* 1 local, 0 not ours, -1 error */
int store_domain_exists(struct store *st, const char *domain, char **error_r);
typedef void store_name_cb(void *ctx, const char *name);
int store_domain_list(struct store *st, store_name_cb *cb, void *ctx, char **error_r);

/* The account's domain must exist. pwhash is a crypt(3) string. Creates INBOX, Sent,
 * Drafts, Trash, Junk, Archive with their special-use attributes (RFC 6154). */
int store_account_add(struct store *st, const char *address, const char *pwhash, char **error_r);
int store_account_del(struct store *st, const char *address, char **error_r); /* 0 if absent */
/* Also clears the SCRAM credentials (derived from the old password): set them again
 * with store_account_set_scram. 0 if absent. */
int store_account_set_password(struct store *st, const char *address, const char *pwhash,
			       char **error_r);
/* 1 found (*pwhash_r malloc'd), 0 absent */
int store_account_get_password(struct store *st, const char *address, char **pwhash_r,
			       char **error_r);
int store_account_list(struct store *st, store_name_cb *cb, void *ctx, char **error_r);
/* SCRAM credentials (format of scram_credentials_make in auth/sasl.h) stored beside
 * the password hash; NULL clears them (e.g. a hash imported from elsewhere, for
 * which no SCRAM keys can be derived). 0 if the account is absent. */
int store_account_set_scram(struct store *st, const char *address, const char *scram,
			    char **error_r);
/* Credentials for authentication. address is matched case-insensitively like
 * recipients (but no aliases, plus-tags or catch-alls: a login is an account).
 * 1 found: *account_r (canonical address), *pwhash_r, *scram_r (NULL when none)
 * malloc'd; 0 absent. Any of the out pointers may be NULL. */
int store_account_get_credentials(struct store *st, const char *address, char **account_r,
				  char **pwhash_r, char **scram_r, char **error_r);
/* Whether account may use address as its sender (RFC 6409 submission): the account's
 * own address, its plus-addresses (user+tag@d), or an alias source whose targets
 * include the account (catch-all "@d" aliases do not count). 1 yes, 0 no. */
int store_account_owns_address(struct store *st, const char *account, const char *address,
			       char **error_r);

/* source is "user@domain" or "@domain" (catch-all); target is an address (local
 * account, or any address). The source's domain must be local. */
int store_alias_add(struct store *st, const char *source, const char *target, char **error_r);
/* target NULL: delete all targets of source. 0 if nothing matched. */
int store_alias_del(struct store *st, const char *source, const char *target, char **error_r);
typedef void store_alias_cb(void *ctx, const char *source, const char *target);
int store_alias_list(struct store *st, store_alias_cb *cb, void *ctx, char **error_r);

/* Resolves a recipient address to local accounts, in this order: exact account;
 * exact alias; plus-address "user+tag@d" retried as "user@d" (account, then alias);
 * catch-all "@d". Alias targets are followed (bounded depth 8) to accounts; targets
 * in local domains that are not accounts are ignored; targets in other domains
 * are not accounts (store_resolve_recipients_fwd returns them: forwarding).
 * Postmaster (RFC 5321 4.5.1: every domain accepts mail for its postmaster, and
 * the bare "postmaster" without a domain):
 *   - "postmaster" (no '@', any case) is resolved as postmaster@<primary domain>.
 *     The primary domain is store_options.hostname if that is a local domain, else
 *     its parent domain (hostname minus its first label) if local, else the oldest
 *     local domain. No local domain at all: 0.
 *   - postmaster@D for a local domain D always reaches someone: the accounts of an
 *     account or alias postmaster@D if it reaches any (the catch-all is not
 *     consulted: postmaster is for a person, not a catch-all mailbox), else the
 *     accounts an account or alias postmaster@<primary domain> reaches, else the
 *     oldest account of D, else the oldest account of all.
 * Returns 1 with *accounts_r a malloc'd NULL-terminated array of malloc'd canonical
 * account addresses (free with store_strv_free), 0 when nothing local matches,
 * -1 error. */
int store_resolve_recipient(struct store *st, const char *address, char ***accounts_r,
			    char **error_r);
/* store_resolve_recipient for n addresses in one snapshot and one call (pipelined
 * RCPTs: one worker job for the lot). results_r[i] and rcs_r[i] (caller-allocated,
 * n entries) receive what store_resolve_recipient would return for addresses[i]
 * (-1 with an invalid address is that address's own result). Returns 1, or -1
 * when the lookup itself failed (then every results_r[i] is NULL). */
int store_resolve_recipients(struct store *st, const char *const *addresses, size_t n,
			     char ***results_r, int *rcs_r, char **error_r);
/* store_resolve_recipients that also follows alias targets outside the local
 * domains (forwarding): remotes_r[i] (caller-allocated, n entries) receives the
 * NULL-terminated remote addresses addresses[i] forwards to (NULL: none;
 * domain lower-cased, deduplicated, at most STORE_RESOLVE_MAX). rcs_r[i] is 1
 * when addresses[i] reaches an account or forwards somewhere; results_r[i] may
 * then be NULL (it only forwards). */
int store_resolve_recipients_fwd(struct store *st, const char *const *addresses, size_t n,
                                 char ***results_r, char ***remotes_r, int *rcs_r,
                                 char **error_r);
void store_strv_free(char ***strv);

/* ---- message writer ----
 * A message being received, written as its bytes arrive. Unlike the rest of this
 * header these functions may be called on an event loop thread: they never sync,
 * never take the store's locks and never touch the database. The first
 * STORE_MSG_MEM_MAX bytes are kept in memory; past that the message moves to an
 * unnamed O_TMPFILE in data_dir (page cache, no sync), so a message of any size
 * costs at most STORE_MSG_MEM_MAX bytes of memory. The SHA-256 that names its blob
 * is computed as bytes are written. One thread at a time per message; a message
 * handed to store_deliver must not be written to any more. */
#define STORE_MSG_MEM_MAX (128u * 1024u)
struct store_msg;
/* 1 ok (*m_r set), -1 error. */
int store_msg_begin(struct store *st, struct store_msg **m_r, char **error_r);
/* Appends len bytes. 1 ok, -1 error (the message is then unusable: free it). */
int store_msg_write(struct store_msg *m, const void *data, size_t len, char **error_r);
/* Bytes written so far. */
uint64_t store_msg_size(const struct store_msg *m);
/* Reads back bytes already written (e.g. header checks on a worker thread):
 * returns the number of bytes copied to buf (< len only at the end of the
 * message; 0 at or past the end), -1 error. */
long store_msg_pread(struct store_msg *m, void *buf, size_t len, uint64_t off);
/* Releases the message; one that was not delivered is discarded. NULL ok. */
void store_msg_free(struct store_msg **m);

/* ---- delivery ---- */
/* NOTIFY bits of a queue recipient (RFC 3461 4.1); 0 = NOTIFY not given. */
#define STORE_NOTIFY_NEVER 0x1u
#define STORE_NOTIFY_SUCCESS 0x2u
#define STORE_NOTIFY_FAILURE 0x4u
#define STORE_NOTIFY_DELAY 0x8u
/* RET (RFC 3461 4.3) and BODY (RFC 6152, RFC 3030) of a queue entry */
#define STORE_RET_NONE 0
#define STORE_RET_FULL 1
#define STORE_RET_HDRS 2
#define STORE_BODY_7BIT 0
#define STORE_BODY_8BITMIME 1
#define STORE_BODY_BINARYMIME 2
/* What the sender asked of TLS on the way out (RFC 8689) */
#define STORE_TLS_DEFAULT 0      /* the destination's policy (MTA-STS, DANE) */
#define STORE_TLS_REQUIRE 1      /* REQUIRETLS: authenticated TLS at every hop */
#define STORE_TLS_NOT_REQUIRED 2 /* TLS-Required: No: policy failures ignored */

struct store_delivery {
	const char *const *accounts; /* canonical account addresses (deduplicated by caller) */
	size_t naccounts;            /* may be 0 when the message only goes to the queue */
	/* Outbound queue (submission to remote recipients): queued in the same
	 * transaction as the local entries, sharing the blob. */
	const char *queue_sender;           /* envelope sender ("" for <>) */
	const char *const *queue_rcpts;     /* remote recipient addresses */
	size_t nqueue_rcpts;
	const char *queue_account;          /* submitting account, for the log/queue list */
	/* The rest of the queue envelope (all optional, zero = not given). */
	const char *queue_envid;  /* ENVID (RFC 3461 4.4) as given, or NULL */
	int queue_ret;            /* STORE_RET_* */
	int queue_body;           /* STORE_BODY_* */
	bool queue_smtputf8;      /* SMTPUTF8 (RFC 6531) */
	int queue_tls;            /* STORE_TLS_* */
	const unsigned *queue_notify;     /* per queue rcpt: STORE_NOTIFY_* bits; may be NULL */
	const char *const *queue_orcpt;   /* per queue rcpt: ORCPT as given or NULL; may be NULL */
	const char *mailbox; /* NULL = INBOX */
	/* The message: either data/len, or msg (written with the message writer; it is
	 * made the blob without being loaded into memory, and stays the caller's to
	 * free after store_deliver returns). */
	const char *data;    /* the full message as stored (Return-Path/Received included) */
	size_t len;
	struct store_msg *msg;
	/* Header fix-ups: when insert_len > 0 the stored message is
	 * message[0..insert_at) + insert + message[insert_at..) (insert_at <= size). */
	uint64_t insert_at;
	const char *insert;
	size_t insert_len;
	/* Bytes at the start of the stored message that are local-only trace headers
	 * (our Return-Path:): kept with the queue entry, whose wire copy skips them. */
	size_t trace_len;
	int64_t internal_date; /* unix seconds; 0 = now */
	const char *flags;     /* NULL or space-separated system flags/keywords */
	/* OUT: the queue entry's id when something was queued, else 0. */
	int64_t queue_id;
};
/* Stores one blob, a message entry in each account's mailbox and the queue entry
 * (if any), in one metadata transaction, and returns only when all of it is
 * durable: the blob is synced before the metadata that names it is committed.
 * Concurrent calls are group-committed: each blob file (and its directory) is
 * synced by its caller, exactly those files, and the metadata of every delivery
 * queued meanwhile shares one transaction and one WAL fsync. Nothing is
 * half-delivered: on -1 no account got the message. *uids_r (optional,
 * caller-allocated array of naccounts) receives the UIDs. */
int store_deliver(struct store *st, struct store_delivery *d, uint32_t *uids_r,
		  char **error_r);
/* Completion of store_deliver_async: result 1 delivered (durable), -1 failed with
 * error malloc'd (the callee owns it: free it), NULL when result is 1. */
typedef void store_deliver_cb(void *ctx, int result, char *error);
/* store_deliver without waiting for the batch: the blob is written and synced in
 * the caller's thread (a worker), then the delivery is queued for the committer
 * thread, which makes it durable with
 * the others of its batch and calls cb(ctx, ...) -- from the committer thread, so
 * cb must only hand the result over (e.g. post it to an event loop) and never
 * block or call back into the store. d (and what it points to: accounts, data,
 * msg, ...) and uids_r must stay valid until cb runs; d->queue_id and uids_r are
 * set before it. Returns 1 queued (cb will be called exactly once), -1 refused at
 * once with *error_r set (cb is not called). store_deliver is this plus a wait. */
int store_deliver_async(struct store *st, struct store_delivery *d, uint32_t *uids_r,
			store_deliver_cb *cb, void *ctx, char **error_r);

/* ---- outbound queue (delivered by the queue runner; listed by the CLI) ----
 * An entry is one message with its envelope and the recipients still to be
 * delivered. A queue runner takes due entries with a lease (store_queue_lease),
 * tries them and records each recipient's result (store_queue_record): final
 * results remove the recipient, a deferral keeps it with its reply; the entry
 * goes when no recipient is left. The administrator holds, releases, flushes and
 * bounces entries (the CLI). */
struct store_queue_info {
	int64_t id;
	const char *sender;
	const char *rcpts;   /* space-separated (those of rcpt_info) */
	uint64_t size;
	int64_t created;     /* unix seconds */
	const char *account; /* submitting account or "" */
	const char *blob_id;
	/* The rest of the envelope */
	int body;              /* STORE_BODY_* */
	bool smtputf8;
	int tls;               /* STORE_TLS_* */
	const char *envid;     /* NULL when not given */
	int ret;               /* STORE_RET_* */
	uint64_t trace_len;    /* the wire copy starts at this offset of the blob */
	const char *lease_owner; /* NULL when not leased */
	int64_t lease_until;
	/* Delivery state: attempts made, when the next is due (unix seconds; 0 or
	 * anything <= now: due now), held by the administrator (not tried until
	 * released). */
	unsigned attempts;
	int64_t next_attempt;
	bool held;
	bool warned; /* a delay warning went to the sender (store_queue_set_warned) */
	size_t nrcpt_info;
	const struct store_queue_rcpt *rcpt_info; /* in the order queued */
};
/* Recipient states, as stored */
#define STORE_RCPT_STATE_PENDING "pending"   /* not tried yet */
#define STORE_RCPT_STATE_DEFERRED "deferred" /* tried, temporary failure (last_reply) */
#define STORE_RCPT_STATE_BOUNCE "bounce"     /* to be bounced (store_queue_bounce) */
struct store_queue_rcpt {
	const char *rcpt;
	const char *state;      /* STORE_RCPT_STATE_* */
	unsigned notify;        /* STORE_NOTIFY_* bits, 0 = not given */
	const char *orcpt;      /* NULL when not given */
	const char *last_reply; /* NULL when none */
};
/* Strings (and rcpt_info) passed to a store_queue_cb are valid during the call
 * only. */
typedef void store_queue_cb(void *ctx, const struct store_queue_info *q);
/* Every queue entry with all its recipients and its whole envelope, oldest
 * first, in one snapshot. */
int store_queue_list(struct store *st, store_queue_cb *cb, void *ctx, char **error_r);
/* Queue entry id with its whole envelope (store_queue_info, rcpt_info filled): 1
 * with cb called once, 0 if there is no such entry. */
int store_queue_show(struct store *st, int64_t id, store_queue_cb *cb, void *ctx,
		     char **error_r);
/* Removes queue entry id and its recipients; the entry's reference on its blob goes
 * with it (the file is swept when nothing else refers to it). Durable when it
 * returns. 1 removed, 0 no such entry, -1 error. */
int store_queue_delete(struct store *st, int64_t id, char **error_r);
/* The message of queue entry id: 1 with *data_r malloc'd and *len_r, 0 if there is no
 * such entry. */
int store_queue_get(struct store *st, int64_t id, char **data_r, size_t *len_r,
		    char **error_r);

/* Takes up to max entries that are due (next_attempt <= now), not held and not
 * leased (no lease, or lease_until <= now), oldest next_attempt first, and leases
 * them to owner until now + lease_secs, in one write transaction. After the
 * commit cb is called once per leased entry, in that order, with the entry as
 * store_queue_show gives it (lease_owner = owner) except that rcpt_info (and
 * rcpts) hold only the recipients in state pending, deferred or bounce. A lease
 * ends with store_queue_record, store_queue_release_leases or its expiry.
 * Returns the number of entries leased (0: none; max 0 leases nothing), -1 error.
 * owner: non-empty text without controls. */
int store_queue_lease(struct store *st, int64_t now, const char *owner, unsigned lease_secs,
		      size_t max, store_queue_cb *cb, void *ctx, char **error_r);
/* Clears every lease (at server start: one process owns the queue, so leases
 * left by a previous run are stale). 1 ok, -1 error. */
int store_queue_release_leases(struct store *st, char **error_r);

/* The result of one delivery attempt for one recipient. */
enum store_rcpt_result {
	STORE_RCPT_DELIVERED, /* final: the next server took it */
	STORE_RCPT_DEFERRED,  /* temporary failure: tried again at next_attempt */
	STORE_RCPT_BOUNCED,   /* final: the caller has made the DSN */
};
struct store_queue_result {
	const char *rcpt; /* as the lease gave it */
	enum store_rcpt_result result;
	/* the remote reply or the reason, one line (controls become spaces; at most
	 * STORE_QUEUE_REPLY_MAX octets are kept); NULL: none */
	const char *reply;
};
#define STORE_QUEUE_REPLY_MAX 1000
/* Records one attempt of entry id, in one write transaction: DELIVERED and BOUNCED
 * recipients are removed (they are final), DEFERRED ones get state deferred and
 * last_reply = reply; the entry's attempts grow by one, next_attempt becomes
 * next_attempt and its lease is cleared. A DEFERRED recipient in state bounce
 * (store_queue_bounce, before or during the attempt) stays so, with its reply:
 * the bounce is not lost, it is tried again at next_attempt. When no recipient
 * is left the entry is removed with its
 * reference on the blob (swept after the commit) and *removed_r (optional) set
 * to true, else false. Results naming a recipient not in the entry are ignored.
 * 1 ok, 0 no such entry, -1 error (also for a NULL rcpt or an unknown result). */
int store_queue_record(struct store *st, int64_t id, const struct store_queue_result *res,
		       size_t n, int64_t next_attempt, bool *removed_r, char **error_r);
/* hold: entry id is not leased until released; release (hold false) also makes
 * it due at once (next_attempt 0). A lease in progress is not broken. 1 ok, 0 no
 * such entry, -1 error. */
int store_queue_hold(struct store *st, int64_t id, bool hold, char **error_r);
/* Makes entry id due at once (next_attempt 0; a held entry stays held): 1, 0 no
 * such entry. id 0: every entry that is not held: 1. -1 error (also id < 0). */
int store_queue_flush(struct store *st, int64_t id, char **error_r);
/* Marks entry id as having had its delay warning (RFC 3464 "delayed" DSN), so that
 * the sender gets one only. 1 ok, 0 no such entry, -1 error. */
int store_queue_set_warned(struct store *st, int64_t id, char **error_r);
/* Every remaining recipient of entry id gets state bounce and last_reply "bounced
 * by the administrator"; the entry is released (held 0) and due at once: the
 * runner, leasing it, bounces those recipients with a DSN. 1 ok, 0 no such
 * entry, -1 error. */
int store_queue_bounce(struct store *st, int64_t id, char **error_r);
#define STORE_QUEUE_BOUNCE_REPLY "bounced by the administrator"
/* When store_queue_lease can next take an entry that is not held: the smallest
 * next_attempt, or lease_until for an entry leased until after its next_attempt
 * (an entry being tried does not make the queue look due). 1 with *when_r (<= now:
 * something is due), 0 no entry that is not held, -1 error. A read. */
int store_queue_next_due(struct store *st, int64_t *when_r, char **error_r);

/* Told when the queue has something new for a runner: after a transaction that
 * created at least one queue entry committed (once per group-commit batch, from
 * the committer thread, before the deliveries' completions run), and after
 * store_queue_flush, store_queue_hold (release) and store_queue_bounce committed
 * (from their caller's thread). fn must be cheap and thread-safe and never call
 * into the store (e.g. activate an event). Set it once, before deliveries start
 * (it is read without a lock); NULL: none. Changes made by another process (the
 * CLI) are not told: a runner also wakes at store_queue_next_due. */
typedef void store_queue_hook(void *ctx);
void store_set_queue_hook(struct store *st, store_queue_hook *fn, void *ctx);

/* ---- TLS reports (RFC 8460) ----
 * Outbound session counts per day and policy domain: the queue runner adds
 * them, and once a day reads the days that are over to make the reports
 * (docs/delivery.md). */
struct store_tlsrpt_row {
	const char *day;         /* "YYYY-MM-DD", UTC */
	const char *domain;      /* the policy domain (the recipient domain) */
	const char *policy_type; /* "sts", "tlsa" or "no-policy-found" */
	const char *policy;      /* the policy's strings, LF-separated, or "" */
	const char *mx;          /* the receiving MX host name, or "" */
	const char *result;      /* "" a successful session, else an RFC 8460 4.3 result-type */
	const char *sending_ip, *receiving_ip; /* "" when not known */
	uint64_t count;
};
/* Adds the counts of rows[0..n) (to a row with the same key when there is one).
 * 1 ok, -1 error. */
int store_tlsrpt_add(struct store *st, const struct store_tlsrpt_row *rows, size_t n,
                     char **error_r);
typedef void store_tlsrpt_cb(void *ctx, const struct store_tlsrpt_row *row);
/* Every row of a day before `before` ("YYYY-MM-DD"), ordered by day, domain,
 * policy: cb per row (valid during the call). The number of rows, -1 error. */
long store_tlsrpt_list(struct store *st, const char *before, store_tlsrpt_cb *cb, void *ctx,
                       char **error_r);
/* Removes the rows of one day and domain. 1 ok, -1 error. */
int store_tlsrpt_delete(struct store *st, const char *day, const char *domain, char **error_r);

/* ---- reading (admin CLI now, IMAP/POP3 later) ---- */
struct store_mailbox_info {
	const char *name;
	const char *special_use; /* "\Sent" etc. or NULL */
	uint32_t uidvalidity, uidnext;
	uint64_t highestmodseq;
	uint32_t messages, unseen;
	uint32_t deleted;  /* entries with \Deleted (STATUS DELETED) */
	uint64_t size;
	bool subscribed;
	bool noselect;     /* a \Noselect name kept for its inferiors */
	bool children;     /* has inferiors (LIST \HasChildren) */
	/* The expunge log holds every UID expunged with a MODSEQ above this (0:
	 * since the mailbox began); older entries were pruned
	 * (store_expunge_log_prune). */
	uint64_t expunge_floor;
};
typedef void store_mailbox_cb(void *ctx, const struct store_mailbox_info *mb);
/* 0 if the account does not exist */
int store_mailbox_list(struct store *st, const char *account, store_mailbox_cb *cb, void *ctx,
		       char **error_r);

struct store_message_info {
	uint32_t uid;
	uint64_t modseq;
	uint64_t size;
	int64_t internal_date;
	const char *flags;   /* space-separated, "" when none */
	const char *blob_id; /* hex sha256 */
};
typedef void store_message_cb(void *ctx, const struct store_message_info *m);
/* 0 if the account or mailbox does not exist */
int store_message_list(struct store *st, const char *account, const char *mailbox,
		       store_message_cb *cb, void *ctx, char **error_r);
/* 1 with *data_r malloc'd (message bytes) and *len_r; 0 if not found */
int store_message_get(struct store *st, const char *account, const char *mailbox, uint32_t uid,
		      char **data_r, size_t *len_r, char **error_r);
/* Reads a message's bytes by blob id (store_message_info.blob_id): one read of
 * where the blob is (segment or file), then its bytes. 1 with *data_r malloc'd
 * and *len_r, 0 if the blob is gone (the message was expunged and its blob swept
 * since the id was listed), -1 error (also for an invalid id). Blobs are
 * immutable, so the bytes are those of the message listed. Blocks on disk: call
 * it from a worker, never from an event loop. */
int store_blob_get(struct store *st, const char *blob_id, char **data_r, size_t *len_r,
		   char **error_r);
/* A blob's bytes without copying them: read them with pread(r->fd, ..., off) for
 * off in [r->off, r->off + r->len) (the fd may hold other bytes outside that
 * range). blob_id is opaque (as listed by the store). 1 ok, 0 gone (as for
 * store_blob_get), -1 error. Close with store_blob_range_close. */
struct store_blob_range {
	int fd;
	uint64_t off, len;
};
int store_blob_open(struct store *st, const char *blob_id, struct store_blob_range *r,
		    char **error_r);
/* Closes r->fd (if open) and sets it to -1. */
void store_blob_range_close(struct store_blob_range *r);

/* Removes blob files that nothing refers to: files of blobs whose last reference
 * went (expunge, account or queue entry removed), and files no metadata names at
 * all whose modification time is at least min_age seconds old (left by a crash or
 * a failed commit between writing a blob and committing the metadata that names
 * it; the age keeps the files of deliveries in flight, in this process or
 * another, out of reach). store_open runs it (with store_options.blob_sweep_age);
 * the server may run it periodically. Runs in short write transactions, one per
 * blob directory. *removed_r (optional) = number of files removed. 1 ok, -1 error
 * (files already removed stay removed; the next sweep continues). */
int store_blob_sweep(struct store *st, unsigned min_age, uint64_t *removed_r, char **error_r);

/* Prunes the expunge log (QRESYNC, store_mailbox_changes): in every mailbox, the
 * entries older than max_age seconds go, and all but the newest max_rows; the
 * mailbox's expunge_floor rises to the highest MODSEQ removed (entries sharing
 * one MODSEQ go together, so the log stays complete above the floor). One short
 * write transaction per mailbox. store_open and the periodic sweep
 * (store_options.sweep_interval) run it with STORE_EXPUNGE_LOG_AGE and
 * STORE_EXPUNGE_LOG_ROWS. *removed_r (optional): entries removed. 1 ok, -1
 * error (what was pruned stays pruned). */
int store_expunge_log_prune(struct store *st, uint64_t max_age, uint64_t max_rows,
                            uint64_t *removed_r, char **error_r);
#define STORE_EXPUNGE_LOG_AGE (30u * 86400u)
#define STORE_EXPUNGE_LOG_ROWS 10000u

/* Removes the entries uids[0..n) of account's mailbox in one transaction (durable
 * when it returns): each blob loses one reference (files of blobs no longer
 * referenced are swept afterwards), the mailbox's HIGHESTMODSEQ goes up by one, and
 * every removed UID is recorded with that MODSEQ in the expunge log (for IMAP
 * QRESYNC VANISHED, RFC 7162 3.2.10). UIDs that are not (or no longer) in the
 * mailbox are skipped. Returns the number of entries removed (0 also when the
 * account or mailbox does not exist), -1 error (nothing removed). */
int store_message_expunge(struct store *st, const char *account, const char *mailbox,
			  const uint32_t *uids, size_t n, char **error_r);

/* ---- IMAP: mailboxes, flags, copies, changes ----
 * Mailbox names are UTF-8 with '/' as the hierarchy separator (no leading,
 * trailing or doubled '/'; no control characters; at most STORE_MAILBOX_NAME_MAX
 * octets, at most STORE_MAILBOX_DEPTH_MAX levels; valid UTF-8 without C1 controls);
 * "INBOX" is case-insensitive in every function taking a name (the front
 * normalizes it, and a first level "inbox/" to "INBOX/"). A name that breaks these rules
 * names no mailbox: 0 where a missing mailbox is 0, STORE_NOMAILBOX for a
 * destination (COPY, APPEND), STORE_CANNOT for a name to create, rename to or
 * subscribe. Functions that change something are durable when they return
 * and notify the account's watchers (below) after the change is committed.
 * Further results beside 1 / 0 / -1:
 *   STORE_EXISTS  (-2) the name is taken (IMAP ALREADYEXISTS)
 *   STORE_CANNOT  (-3) not permitted on this mailbox (e.g. DELETE INBOX; IMAP
 *                      CANNOT); *error_r says why
 *   STORE_NOMAILBOX (-4) a destination mailbox does not exist (IMAP TRYCREATE)
 *   STORE_OVERQUOTA (-5) the account's quota would be exceeded (no quota is
 *                      enforced yet: not returned for now)
 * An account that does not exist is -1 with an error. */
#define STORE_EXISTS (-2)
#define STORE_CANNOT (-3)
#define STORE_NOMAILBOX (-4)
#define STORE_OVERQUOTA (-5)
#define STORE_MAILBOX_NAME_MAX 1024
#define STORE_MAILBOX_DEPTH_MAX 32

/* Creates name with a fresh UIDVALIDITY (never one the account's mailbox of that
 * name had before: a re-created name gets a new one, RFC 9051 2.3.1.1), and any
 * missing superior names (a/b for a/b/c) as ordinary mailboxes. special_use: NULL
 * or one of "\Archive \Drafts \Junk \Sent \Trash \All \Flagged"
 * (RFC 6154 CREATE-SPECIAL-USE; another is STORE_CANNOT). 1 created, STORE_EXISTS
 * when name exists and is selectable (a \Noselect name is made selectable
 * again: 1, with a new UIDVALIDITY and UIDs from 1). New mailboxes are not
 * subscribed (the account's default ones are). */
int store_mailbox_create(struct store *st, const char *account, const char *name,
			 const char *special_use, char **error_r);
/* RFC 9051 6.3.4: a mailbox without inferiors is removed with its messages; one
 * with inferiors loses its messages and becomes \Noselect (1); deleting a
 * \Noselect name that has inferiors, or INBOX, is STORE_CANNOT (a \Noselect
 * name whose inferiors have gone since is removed: 1). The removed entries of a
 * mailbox that stays \Noselect go to the expunge log like store_message_expunge
 * (a mailbox removed altogether takes its log along). Subscriptions stay. 1
 * deleted, 0 no such mailbox. */
int store_mailbox_delete(struct store *st, const char *account, const char *name,
			 char **error_r);
/* RFC 9051 6.3.6: renames from and every from/... inferior (keeping their UIDs and
 * UIDVALIDITY); creates the superiors of to that are missing. from == INBOX moves
 * INBOX's messages to a new mailbox to (new UIDs, flags and dates kept) and leaves
 * INBOX empty, its inferiors not renamed. 1 renamed, 0 no such mailbox (from),
 * STORE_EXISTS (to exists), STORE_CANNOT (to is from or an inferior of from, or
 * an inferior's new name would break the name rules). */
int store_mailbox_rename(struct store *st, const char *account, const char *from,
			 const char *to, char **error_r);
/* Subscriptions (RFC 9051 6.3.7) are names, kept whether or not the mailbox exists
 * (a rename carries the subscriptions of the renamed names along). 1 ok (also when
 * nothing changed). The list is INBOX first, then by name (octet order).
 * Watchers are not told of subscription changes. */
int store_mailbox_subscribe(struct store *st, const char *account, const char *name, bool on,
			    char **error_r);
int store_subscription_list(struct store *st, const char *account, store_name_cb *cb, void *ctx,
			    char **error_r);
/* One mailbox's status, as store_mailbox_list reports it: 1 with cb called once
 * (a \Noselect name too, with info.noselect set), 0 no such mailbox. */
int store_mailbox_get(struct store *st, const char *account, const char *name,
		      store_mailbox_cb *cb, void *ctx, char **error_r);

/* What changed in a mailbox since modseq `since`, in one read snapshot:
 * mailbox(ctx, info) once first (as store_mailbox_get; NULL ok), then
 * message(ctx, m) for every entry with m->modseq > since in ascending UID order
 * (new entries and entries whose flags changed), then vanished(ctx, first, last)
 * for the UIDs expunged with a MODSEQ > since, as ascending runs first..last
 * (inclusive, disjoint, not adjacent). When the expunge log no longer reaches
 * back to since (since < info.expunge_floor: pruned), the runs are instead every
 * UID below uidnext that has no entry: a superset, which RFC 7162 3.2.5.2 and
 * 3.2.6 allow for VANISHED (EARLIER); at most entries + 1 runs. since 0: every
 * entry, and no vanished. A \Noselect name has no entries (mailbox is still
 * called). Any member of ops may be NULL. 1 ok, 0 no such mailbox. */
struct store_changes_ops {
	store_mailbox_cb *mailbox;
	store_message_cb *message;
	void (*vanished)(void *ctx, uint32_t first, uint32_t last);
};
int store_mailbox_changes(struct store *st, const char *account, const char *mailbox,
			  uint64_t since, const struct store_changes_ops *ops, void *ctx,
			  char **error_r);

/* The entries of a set of UIDs, in one read snapshot (what an IMAP session reads
 * per command instead of keeping it: flags, MODSEQ, size, date, blob id). ranges[0..n)
 * are UID ranges, each first <= last, ascending and disjoint (first of one above
 * last of the one before; -1 otherwise). cb(ctx, m) is called for each entry
 * whose UID is in a range, in ascending UID order, before the call returns (m and
 * its strings live until cb returns); UIDs without an entry (expunged, or never
 * given) are skipped: the caller tells them by their absence. uidvalidity != 0:
 * the mailbox must have that UIDVALIDITY, else the result is 0 as for a missing
 * mailbox (the UIDs named messages of a mailbox deleted and re-created since,
 * RFC 9051 2.3.1.1). Each range costs one seek on (mailbox, uid) plus its entries,
 * whatever the mailbox's size. 1 ok (also n == 0), 0 no such mailbox (or a
 * \Noselect one, or another UIDVALIDITY), -1 error. */
struct store_uid_range {
	uint32_t first, last;
};
int store_message_ranges(struct store *st, const char *account, const char *mailbox,
			 uint32_t uidvalidity, const struct store_uid_range *ranges, size_t n,
			 store_message_cb *cb, void *ctx, char **error_r);

/* STORE (RFC 9051 6.4.6, RFC 7162 3.1.3): changes the flags of the entries
 * uids[0..n) (ascending; UIDs no longer there are skipped). flags: space-separated
 * system flags and keywords (normalized like store_delivery.flags; \Recent is
 * not storable and is dropped; flags are compared ASCII case-insensitively and
 * system flags stored in their RFC 9051 spelling, "\seen" as "\Seen"; -1 when
 * the result would pass STORE_FLAGS_MAX octets). op STORE_FLAGS_SET replaces,
 * ADD adds, REMOVE removes. Every
 * entry whose flags really change gets one new MODSEQ (the same for all entries
 * of the call, above the mailbox's HIGHESTMODSEQ, which becomes it) and is
 * reported by changed(ctx, m) with its new flags and modseq. unchangedsince > 0:
 * an entry whose modseq is above it is not changed and is reported by
 * modified(ctx, uid) instead (the MODIFIED response code), whether or not the
 * operation would change it (RFC 7162 3.1.3); 0 means no UNCHANGEDSINCE (the
 * caller answers UNCHANGEDSINCE 0 itself: every entry fails it). Entries whose
 * flags do not change keep their modseq and are not reported. Both callbacks
 * run after the commit (changed first, ascending UID; then modified), never for
 * a change that was rolled back; ops and its members may be NULL. 1 ok, 0 no
 * such mailbox (or a \Noselect one). */
enum store_flags_op {
	STORE_FLAGS_SET,
	STORE_FLAGS_ADD,
	STORE_FLAGS_REMOVE,
};
struct store_flags_ops {
	store_message_cb *changed;
	void (*modified)(void *ctx, uint32_t uid);
};
int store_message_flags(struct store *st, const char *account, const char *mailbox,
			const uint32_t *uids, size_t n, enum store_flags_op op, const char *flags,
			uint64_t unchangedsince, const struct store_flags_ops *ops, void *ctx,
			char **error_r);

/* COPY / MOVE (RFC 9051 6.4.7, RFC 6851): the entries uids[0..n) (ascending) of
 * from get new UIDs in to, in the same order, with their flags and internal dates;
 * the blobs are shared, not copied. move: they are also removed from from in the
 * same transaction (expunge log as store_message_expunge). Copying or moving
 * into the account's \Junk mailbox (special use \Junk) adds $Junk and removes
 * $NotJunk; out of it (except into \Trash) adds $NotJunk and removes $Junk
 * (copies count: a client without MOVE copies and expunges). The copies share
 * one new MODSEQ of to. COPY into from itself is allowed. UIDs no longer in from
 * are skipped. On return (1) r holds the destination's UIDVALIDITY and the pairs
 * actually copied (r->n, possibly 0; arrays malloc'd, free with
 * store_copy_result_free) for COPYUID (RFC 4315). 0 no such mailbox (from),
 * STORE_NOMAILBOX (to does not exist or is \Noselect), STORE_CANNOT (to == from
 * with move), STORE_OVERQUOTA; r is empty on every result but 1. */
struct store_copy_result {
	uint32_t uidvalidity;
	size_t n;
	uint32_t *src_uids, *dst_uids;
};
int store_message_copy(struct store *st, const char *account, const char *from, const char *to,
		       const uint32_t *uids, size_t n, bool move, struct store_copy_result *r,
		       char **error_r);
void store_copy_result_free(struct store_copy_result *r);

/* EXPUNGE / UID EXPUNGE (RFC 9051 6.4.3, RFC 4315 2.1): removes the entries that
 * have \Deleted now (only those among only[0..nonly) when only is not NULL),
 * as store_message_expunge does, and reports each removed UID, ascending, by
 * expunged(ctx, uid) (NULL ok) after the commit. only need not be sorted.
 * Returns the number removed (0 also for no such or a \Noselect mailbox), -1
 * error. */
int store_mailbox_expunge_deleted(struct store *st, const char *account, const char *mailbox,
				  const uint32_t *only, size_t nonly,
				  void (*expunged)(void *ctx, uint32_t uid), void *ctx,
				  char **error_r);

/* APPEND / MULTIAPPEND (RFC 9051 6.3.12, RFC 3502): n messages written with the
 * message writer into one mailbox, all or none, in one transaction through the
 * same group commit as deliveries, durable when it returns. flags and
 * internal_date of each as in store_delivery. On 1, *uidvalidity_r and
 * uids_r[0..n) (caller-allocated) hold APPENDUID's values (RFC 4315). 0 is not
 * returned: STORE_NOMAILBOX (mailbox does not exist or is \Noselect),
 * STORE_OVERQUOTA, -1 error (also for n == 0, a message already delivered or
 * appended, or invalid flags of any message: then none is stored). The
 * messages stay the caller's to free. */
struct store_append_msg {
	struct store_msg *msg;
	const char *flags;     /* NULL or space-separated */
	int64_t internal_date; /* unix seconds; 0 = now */
};
int store_append(struct store *st, const char *account, const char *mailbox,
		 const struct store_append_msg *msgs, size_t n, uint32_t *uidvalidity_r,
		 uint32_t *uids_r, char **error_r);

/* A per-blob cache slot for what is derived from a message once (the IMAP session
 * keeps the mime_tree_encode form of its MIME structure there). Blobs are
 * immutable, so the value stays right; it goes with the blob (removed by the
 * sweep when the blob's last reference went). get: 1 with *data_r malloc'd (one
 * octet past *len_r is NUL) and *len_r, 0 nothing cached (or the blob is gone),
 * -1 error (also for an invalid id). put: 1 ok (also
 * when the blob is gone meanwhile: nothing is stored); at most
 * STORE_BLOB_CACHE_MAX octets. put need not be durable (it can be derived again). */
#define STORE_BLOB_CACHE_MAX (1u << 20)
int store_blob_cache_get(struct store *st, const char *blob_id, char **data_r, size_t *len_r,
			 char **error_r);
int store_blob_cache_put(struct store *st, const char *blob_id, const void *data, size_t len,
			 char **error_r);

/* ---- MTA-STS policy cache (RFC 8461 5.1; delivery/mta_sts.h) ----
 * One row per recipient domain: the policy file as fetched (validated by the
 * caller), the id of the TXT record it was fetched under, when it was fetched
 * and until when it may be used (fetched + max_age), unix seconds. The domain
 * is the caller's, lower-case; at most STORE_MTA_STS_DOMAIN_MAX octets, id at
 * most STORE_MTA_STS_ID_MAX, policy at most STORE_MTA_STS_POLICY_MAX (-1
 * otherwise). get: 1 found (r's strings malloc'd: store_mta_sts_clear), also
 * when expired (the caller decides), 0 none. put: replaces the domain's row;
 * 1 ok. delete: 1 removed, 0 none. */
#define STORE_MTA_STS_DOMAIN_MAX 253
#define STORE_MTA_STS_ID_MAX 32
#define STORE_MTA_STS_POLICY_MAX (64u * 1024)
struct store_mta_sts {
	char *domain;
	char *id;
	char *policy;
	int64_t fetched, expires;
};
int store_mta_sts_get(struct store *st, const char *domain, struct store_mta_sts *r,
		      char **error_r);
int store_mta_sts_put(struct store *st, const struct store_mta_sts *p, char **error_r);
int store_mta_sts_delete(struct store *st, const char *domain, char **error_r);
void store_mta_sts_clear(struct store_mta_sts *r);

/* ---- change notification ----
 * A watcher of an account is told after every committed change to any of its
 * mailboxes made through this store (deliveries, APPEND, flags, copies, moves,
 * expunges, mailbox create/delete/rename), with the mailbox's name (NULL when
 * the mailbox list itself changed: create, delete, rename; a MOVE is told once
 * for each of its two mailboxes). Only changes that changed something are told
 * (a STORE that changed no entry, an expunge that removed none: nothing);
 * subscriptions are not. account is the watcher's own string; accounts match
 * ASCII case-insensitively. cb runs on the thread that
 * made the change (a worker or the committer): it must only hand the news over
 * (e.g. activate an event on its loop), never block or call into the store.
 * Changes made by another process (the CLI) are not reported: a watcher polls too.
 * store_watch_remove returns once no call of cb is running or will start; it may
 * be called from an event loop (it waits only for a call in progress; cb runs
 * under the lock it takes). Watchers left at store_close are freed. A delivery
 * tells each of its accounts' watchers before its completion (store_deliver_cb)
 * runs. store_watch_add: 1 ok, -1 (NULL account or cb, out of memory). The
 * process-local implementation is in the front;
 * a multi-node backend feeds it from its own notifications. */
typedef void store_watch_cb(void *ctx, const char *account, const char *mailbox);
struct store_watch;
int store_watch_add(struct store *st, const char *account, store_watch_cb *cb, void *ctx,
		    struct store_watch **w_r, char **error_r);
void store_watch_remove(struct store *st, struct store_watch **w);

/* ---- backends ----
 * A backend implements this table; store.c dispatches to it. Each backend defines
 * struct store_backend (its state) and struct store_lookup (a consistent read
 * snapshot) in its own files. Entries have the contract of the public function of
 * the same name, with the backend in place of the store. The front has already
 * checked the arguments that store.h documents as checked (NULL strings etc.). */
struct store_backend;
struct store_lookup;
struct store_ops {
	const char *name; /* the [store] backend value */
	int (*open)(const struct store_options *opts, struct store_backend **be_r,
		    char **error_r);
	void (*close)(struct store_backend **be);

	int (*domain_add)(struct store_backend *be, const char *domain, char **error_r);
	int (*domain_del)(struct store_backend *be, const char *domain, char **error_r);
	int (*domain_exists)(struct store_backend *be, const char *domain, char **error_r);
	int (*domain_list)(struct store_backend *be, store_name_cb *cb, void *ctx, char **error_r);
	int (*account_add)(struct store_backend *be, const char *address, const char *pwhash,
			   char **error_r);
	int (*account_del)(struct store_backend *be, const char *address, char **error_r);
	int (*account_set_password)(struct store_backend *be, const char *address,
				    const char *pwhash, char **error_r);
	int (*account_get_password)(struct store_backend *be, const char *address,
				    char **pwhash_r, char **error_r);
	int (*account_list)(struct store_backend *be, store_name_cb *cb, void *ctx,
			    char **error_r);
	int (*account_set_scram)(struct store_backend *be, const char *address, const char *scram,
				 char **error_r);
	int (*account_get_credentials)(struct store_backend *be, const char *address,
				       char **account_r, char **pwhash_r, char **scram_r,
				       char **error_r);
	int (*alias_add)(struct store_backend *be, const char *source, const char *target,
			 char **error_r);
	int (*alias_del)(struct store_backend *be, const char *source, const char *target,
			 char **error_r);
	int (*alias_list)(struct store_backend *be, store_alias_cb *cb, void *ctx,
			  char **error_r);

	/* Primitive lookups for the recipient rules, inside one read snapshot opened
	 * by lookup_begin and closed by lookup_end. Addresses and domains are
	 * normalized by the caller. Each returns 1 found, 0 not, -1 error. */
	int (*lookup_begin)(struct store_backend *be, struct store_lookup **lk_r, char **error_r);
	void (*lookup_end)(struct store_lookup **lk);
	/* an account with this address (COLLATE NOCASE): *canon_r its canonical form */
	int (*lookup_account)(struct store_lookup *lk, const char *address, char **canon_r,
			      char **error_r);
	/* alias rows of source ("user@d" or "@d"): *targets_r a NULL-terminated strv
	 * (store_strv_free) in a stable order; 0 when source has none */
	int (*lookup_alias)(struct store_lookup *lk, const char *source, char ***targets_r,
			    char **error_r);
	int (*lookup_domain)(struct store_lookup *lk, const char *domain, char **error_r);
	/* the oldest local domain */
	int (*lookup_first_domain)(struct store_lookup *lk, char **domain_r, char **error_r);
	/* the oldest account of domain (NULL: of all) */
	int (*lookup_first_account)(struct store_lookup *lk, const char *domain,
				    char **address_r, char **error_r);

	int (*deliver_async)(struct store_backend *be, struct store_delivery *d, uint32_t *uids_r,
			     store_deliver_cb *cb, void *ctx, char **error_r);
	int (*queue_list)(struct store_backend *be, store_queue_cb *cb, void *ctx,
			  char **error_r);
	int (*queue_get)(struct store_backend *be, int64_t id, char **data_r, size_t *len_r,
			 char **error_r);
	int (*queue_show)(struct store_backend *be, int64_t id, store_queue_cb *cb, void *ctx,
			  char **error_r);
	int (*queue_delete)(struct store_backend *be, int64_t id, char **error_r);
	/* The queue runner's. The front checked owner and cb, each result's rcpt and
	 * result, and cleaned each reply to one line; it calls the queue hook after
	 * flush, hold (release) and bounce itself. set_queue_hook: the backend calls
	 * fn after committing new queue entries (deliveries). */
	int (*queue_lease)(struct store_backend *be, int64_t now, const char *owner,
			   unsigned lease_secs, size_t max, store_queue_cb *cb, void *ctx,
			   char **error_r);
	int (*queue_release_leases)(struct store_backend *be, char **error_r);
	int (*queue_record)(struct store_backend *be, int64_t id,
			    const struct store_queue_result *res, size_t n, int64_t next_attempt,
			    bool *removed_r, char **error_r);
	int (*queue_hold)(struct store_backend *be, int64_t id, bool hold, char **error_r);
	int (*queue_flush)(struct store_backend *be, int64_t id, char **error_r);
	int (*queue_set_warned)(struct store_backend *be, int64_t id, char **error_r);
	int (*queue_bounce)(struct store_backend *be, int64_t id, char **error_r);
	int (*queue_next_due)(struct store_backend *be, int64_t *when_r, char **error_r);
	void (*set_queue_hook)(struct store_backend *be, store_queue_hook *fn, void *ctx);
	int (*tlsrpt_add)(struct store_backend *be, const struct store_tlsrpt_row *rows, size_t n,
	                  char **error_r);
	long (*tlsrpt_list)(struct store_backend *be, const char *before, store_tlsrpt_cb *cb,
	                    void *ctx, char **error_r);
	int (*tlsrpt_delete)(struct store_backend *be, const char *day, const char *domain,
	                     char **error_r);
	int (*mailbox_list)(struct store_backend *be, const char *account, store_mailbox_cb *cb,
			    void *ctx, char **error_r);
	int (*message_list)(struct store_backend *be, const char *account, const char *mailbox,
			    store_message_cb *cb, void *ctx, char **error_r);
	int (*message_get)(struct store_backend *be, const char *account, const char *mailbox,
			   uint32_t uid, char **data_r, size_t *len_r, char **error_r);
	int (*blob_get)(struct store_backend *be, const char *blob_id, char **data_r,
			size_t *len_r, char **error_r);
	int (*blob_open)(struct store_backend *be, const char *blob_id,
			 struct store_blob_range *r, char **error_r);
	int (*blob_sweep)(struct store_backend *be, unsigned min_age, uint64_t *removed_r,
			  char **error_r);
	int (*expunge_log_prune)(struct store_backend *be, uint64_t max_age, uint64_t max_rows,
	                         uint64_t *removed_r, char **error_r);
	int (*message_expunge)(struct store_backend *be, const char *account,
			       const char *mailbox, const uint32_t *uids, size_t n,
			       char **error_r);
	/* IMAP (names normalized by the front; watchers notified by the front) */
	int (*mailbox_create)(struct store_backend *be, const char *account, const char *name,
			      const char *special_use, char **error_r);
	int (*mailbox_delete)(struct store_backend *be, const char *account, const char *name,
			      char **error_r);
	int (*mailbox_rename)(struct store_backend *be, const char *account, const char *from,
			      const char *to, char **error_r);
	int (*mailbox_subscribe)(struct store_backend *be, const char *account, const char *name,
				 bool on, char **error_r);
	int (*subscription_list)(struct store_backend *be, const char *account, store_name_cb *cb,
				 void *ctx, char **error_r);
	int (*mailbox_get)(struct store_backend *be, const char *account, const char *name,
			   store_mailbox_cb *cb, void *ctx, char **error_r);
	int (*mailbox_changes)(struct store_backend *be, const char *account, const char *mailbox,
			       uint64_t since, const struct store_changes_ops *ops, void *ctx,
			       char **error_r);
	int (*message_ranges)(struct store_backend *be, const char *account, const char *mailbox,
			      uint32_t uidvalidity, const struct store_uid_range *ranges, size_t n,
			      store_message_cb *cb, void *ctx, char **error_r);
	int (*message_flags)(struct store_backend *be, const char *account, const char *mailbox,
			     const uint32_t *uids, size_t n, enum store_flags_op op,
			     const char *flags, uint64_t unchangedsince,
			     const struct store_flags_ops *ops, void *ctx, char **error_r);
	int (*message_copy)(struct store_backend *be, const char *account, const char *from,
			    const char *to, const uint32_t *uids, size_t n, bool move,
			    struct store_copy_result *r, char **error_r);
	int (*mailbox_expunge_deleted)(struct store_backend *be, const char *account,
				       const char *mailbox, const uint32_t *only, size_t nonly,
				       void (*expunged)(void *ctx, uint32_t uid), void *ctx,
				       char **error_r);
	int (*append)(struct store_backend *be, const char *account, const char *mailbox,
		      const struct store_append_msg *msgs, size_t n, uint32_t *uidvalidity_r,
		      uint32_t *uids_r, char **error_r);
	int (*blob_cache_get)(struct store_backend *be, const char *blob_id, char **data_r,
			      size_t *len_r, char **error_r);
	int (*blob_cache_put)(struct store_backend *be, const char *blob_id, const void *data,
			      size_t len, char **error_r);
	int (*mta_sts_get)(struct store_backend *be, const char *domain, struct store_mta_sts *r,
			   char **error_r);
	int (*mta_sts_put)(struct store_backend *be, const struct store_mta_sts *p,
			   char **error_r);
	int (*mta_sts_delete)(struct store_backend *be, const char *domain, char **error_r);
};

/* The SQLite backend (store_sqlite.c). */
extern const struct store_ops store_sqlite_ops;

#endif
