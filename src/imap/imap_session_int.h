/* Internal to the IMAP session (imap_session.c and the imap_cmd_*.c files): the
 * session object, the selected mailbox's view, worker jobs and reply helpers. */
#ifndef HERMOD_IMAP_IMAP_SESSION_INT_H
#define HERMOD_IMAP_IMAP_SESSION_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "imap/imap_parse.h"
#include "imap/imap_uidmap.h"
#include "net/server.h"
#include "store/blob.h"
#include "store/store.h"

struct auth_exchange;
struct evbuffer;
struct event;
struct line_session;

/* Stop taking input while this much output is unsent; resume at IMAP_OUTPUT_LOW. */
#define IMAP_OUTPUT_HIGH (256u << 10)
#define IMAP_OUTPUT_LOW (64u << 10)
/* Most input buffered before it is processed (a literal is read as it comes). */
#define IMAP_INPUT_HIGH (256u << 10)
/* Ranges in one sequence set. */
#define IMAP_SEQSET_RANGES_MAX 4096
/* Messages in one MULTIAPPEND (RFC 3502). */
#define IMAP_APPEND_MAX 100
/* IDLE also looks for changes this often (changes made by another process, the
 * CLI, are not notified). */
#define IMAP_IDLE_POLL_SECONDS 30
/* Bytes of FETCH output rendered per worker step; the next step starts once
 * unsent output is down to IMAP_FETCH_LOW. */
#define IMAP_FETCH_STEP (256u << 10)
#define IMAP_FETCH_LOW (128u << 10)
/* Messages handled by one FETCH/SEARCH worker step. */
#define IMAP_FETCH_BATCH 256

enum imap_state {
	IMAP_STATE_NOT_AUTH, /* RFC 9051 3.1 */
	IMAP_STATE_AUTH,     /* 3.2 */
	IMAP_STATE_SELECTED, /* 3.3 */
	IMAP_STATE_LOGOUT,   /* 3.4: goodbye sent */
};

/* Enabled extensions (RFC 5161 ENABLE) and what implies them. */
#define IMAP_EN_REV2 0x01u
#define IMAP_EN_UTF8 0x02u
#define IMAP_EN_CONDSTORE 0x04u
#define IMAP_EN_QRESYNC 0x08u
/* What ENABLE may turn on (RFC 5161) and the capabilities advertised for it:
 * only what works completely. */
#define IMAP_EN_AVAILABLE (IMAP_EN_REV2 | IMAP_EN_UTF8 | IMAP_EN_CONDSTORE | IMAP_EN_QRESYNC)

/* A flag change this session has told its client itself (the FETCH responses of
 * STORE, the FLAGS of a FETCH that set \Seen) since the view's HIGHESTMODSEQ: the
 * next refresh finds the message changed at exactly that MODSEQ and does not
 * report it again. */
struct imap_view_told {
	uint32_t uid;
	uint64_t modseq;
};

/* The selected mailbox as this session knows it: only what RFC 9051 makes the
 * session remember, the sequence numbers (their UIDs) and the mailbox's
 * UIDVALIDITY, UIDNEXT and HIGHESTMODSEQ as last reported. Flags, MODSEQs, sizes,
 * dates and blob ids are read from the store by the command that needs them
 * (store_message_ranges, imap_entries_read). The view changes only when the
 * session reports the change (RFC 9051 7.5), so sequence numbers stay what the
 * client was told. */
struct imap_view {
	char *name; /* UTF-8, as the store names it */
	bool readonly;
	uint32_t uidvalidity, uidnext;
	uint64_t highestmodseq;
	struct imap_uidmap map;
	struct imap_view_told *told; /* NULL after each refresh */
	size_t ntold, captold;
};

/* One entry of a new or changed message found by a refresh. */
struct imap_change_msg {
	uint32_t uid;
	uint64_t modseq;
	char *flags; /* malloc'd */
};

/* What a worker found changed since the view's HIGHESTMODSEQ
 * (store_mailbox_changes), applied on the loop by imap_view_apply. */
struct imap_changes {
	bool have_info;
	bool noselect;
	uint32_t uidvalidity, uidnext;
	uint64_t highestmodseq;
	struct imap_change_msg *msgs; /* new or changed entries, ascending UID */
	size_t n, cap;
	uint64_t expunge_floor;
	uint32_t *vanished; /* runs of UIDs: [2k]..[2k + 1], k < nvanished, ascending */
	size_t nvanished, capvanished;
	bool oom;
};

/* Entries of the selected mailbox read for one command on a worker
 * (imap_entries_read). */
struct imap_entry {
	uint32_t uid, seq;
	uint64_t modseq, size;
	int64_t internal_date;
	char *flags; /* malloc'd */
	char blob_id[BLOB_ID_LEN + 1];
	bool marked; /* for the command's own use (FETCH: \Seen set by it) */
};
struct imap_entries {
	struct imap_entry *v;
	size_t n, cap;
	bool oom;
};

struct imap_session;
struct imap_job;

/* A worker job of the session: run on a worker thread, then done on the loop
 * (only while the session can still reply). done writes untagged responses and
 * sets the tagged reply (imap_job_tagged); the changes gathered after run (when
 * refresh was set) are reported between the two. */
struct imap_job {
	struct imap_session *s;
	struct store *st;
	char *account;
	char tag[IMAP_TAG_MAX + 1];
	uint32_t uidvalidity; /* of the selected mailbox when the job was made, or 0 */
	void (*run)(struct imap_job *j);
	void (*done)(struct imap_job *j);
	void (*free)(struct imap_job *j); /* frees the command's own data; may be NULL */
	/* refresh: after run, collect the changes of mailbox since `since` */
	bool refresh;
	char *mailbox;
	uint64_t since;
	struct imap_changes ch;
	int ch_result;
	char *tagged; /* the tagged reply, no CRLF (malloc'd) */
	int result;
	char *error;
};

/* The watcher's link to the session: shared with the store's watcher callback
 * (another thread) and the posts it makes, counted. */
struct imap_watch_link {
	atomic_int refs;
	atomic_bool pending;
	struct imap_session *s; /* loop thread only; NULL once the session is freed */
	struct worker_inbox *inbox;
};

struct imap_fetch_run;
struct imap_search_run;

struct imap_session {
	struct conn *c;
	struct line_session *ls;
	struct imap_parser *parser;
	enum imap_state state;
	unsigned enabled; /* IMAP_EN_* */
	bool busy;        /* a worker job (or a streamed reply) is running */
	bool auth_busy;   /* the exchange's lookup or failure delay */
	bool stopping;
	bool sasl;            /* reading AUTHENTICATE responses */
	bool idling;          /* IDLE: waiting for DONE */
	bool idle_refreshing; /* an IDLE refresh job runs */
	bool idle_done;       /* DONE arrived while the refresh ran */
	bool literal_pending; /* reading a literal's octets */
	bool compressed;      /* COMPRESS=DEFLATE is on (RFC 4978) */
	bool allow_plaintext_on_loopback;
	uint64_t max_message_size;  /* APPENDLIMIT */
	char tag[IMAP_TAG_MAX + 1]; /* the command being run */
	char *account;
	struct auth_exchange *auth;
	bool auth_login;        /* the exchange is a LOGIN command */
	struct imap_view *view; /* SELECTED */
	/* APPEND message literals received by the parser's sink */
	struct store_msg *append_msgs[IMAP_APPEND_MAX];
	unsigned nappend;
	const char *sink_error; /* why the sink refused (tagged NO text) */
	/* change notification */
	struct store_watch *watch;
	struct imap_watch_link *link;
	struct event *ev_poll;
	atomic_bool dirty; /* set from the watcher thread */
	/* streamed FETCH and SEARCH */
	struct imap_fetch_run *fetch;
	/* SEARCHRES (RFC 5182): UIDs of the last SEARCH RETURN (SAVE) */
	uint32_t *saved;
	size_t nsaved;
};

/* ---- imap_session.c ---- */
void imap_reply(struct imap_session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A tagged reply to a client mistake (counted towards max_errors). */
void imap_reply_bad(struct imap_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
struct evbuffer *imap_output(struct imap_session *s);
bool imap_session_gone(const struct imap_session *s);
void imap_session_set_state(struct imap_session *s, enum imap_state state);
/* Sets the tagged reply of j ("<tag> " is prepended). */
void imap_job_tagged(struct imap_job *j, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* A new job (zeroed, size bytes: the command's struct starting with struct
 * imap_job) for the session's account; NULL after replying NO when out of memory. */
void *imap_job_new(struct imap_session *s, size_t size);
/* Submits j and parks the session; on failure replies NO, frees j, returns -1. */
int imap_job_submit(struct imap_session *s, struct imap_job *j);
/* A job that also refreshes the selected mailbox's view after running. */
int imap_job_submit_refresh(struct imap_session *s, struct imap_job *j);
void imap_job_free(struct imap_job *j);
/* On a worker, before a change by UID: whether j->mailbox is still the mailbox the
 * session selected (same UIDVALIDITY). 1 yes, 0 it has gone (j->result set to 0),
 * -1 error (j->result and j->error set). */
int imap_job_check_view(struct imap_job *j);
/* The "NO" reply for an environment failure (a store error): logs it. */
void imap_job_tempfail(struct imap_job *j, const char *what);
void imap_session_unpark(struct imap_session *s);
void imap_session_park(struct imap_session *s);
/* Sends reply (an untagged BYE) and ends the session. */
void imap_session_goodbye(struct imap_session *s, const char *reply);
/* The session's capability list (without "CAPABILITY "). */
void imap_capabilities(struct imap_session *s, struct evbuffer *out);
bool imap_utf8(const struct imap_session *s);

/* ---- imap_cmd_mailbox.c ---- */
/* A mailbox name argument (astring) to the store's UTF-8 form in out
 * (STORE_MAILBOX_NAME_MAX + 1): modified UTF-7 decoded unless UTF8=ACCEPT, INBOX
 * normalized. 1 ok; -1 after replying BAD. */
int imap_arg_mailbox(struct imap_session *s, const struct imap_token *t, char *out);
/* Appends a mailbox name as an IMAP string (quoted, modified UTF-7 unless UTF8). */
void imap_write_mailbox(struct imap_session *s, struct evbuffer *out, const char *name);
void imap_write_string(struct evbuffer *out, const char *s, size_t len);
/* Collects the changes of the job's mailbox (worker). */
void imap_changes_collect(struct imap_job *j);
void imap_changes_free(struct imap_changes *ch);
/* Reports and applies ch to the view (loop). A mailbox that has gone (deleted,
 * renamed, or re-created with another UIDVALIDITY) ends the session
 * (imap_view_gone). */
void imap_view_apply(struct imap_session *s, struct imap_changes *ch);
/* The selected mailbox no longer exists as the session knows it (RFC 2180 3):
 * "* BYE" and the end of the session. */
void imap_view_gone(struct imap_session *s);
void imap_view_free(struct imap_view **v);
/* Sequence number of uid in the view, 0 when absent. */
uint32_t imap_view_seq(const struct imap_view *v, uint32_t uid);
/* Removes message seq from the view and reports it (EXPUNGE, or VANISHED when
 * QRESYNC is on). */
void imap_view_expunge_report(struct imap_session *s, uint32_t seq);
/* Notes a flag change the session has just reported itself (imap_view_told). */
void imap_view_told_add(struct imap_view *v, uint32_t uid, uint64_t modseq);
void imap_write_flags(struct evbuffer *out, const char *flags);
/* "* seq FETCH (FLAGS (flags)[ UID uid][ MODSEQ (modseq)])": uid / modseq 0 leave
 * them out. */
void imap_write_flags_fetch(struct evbuffer *out, uint32_t seq, const char *flags, uint32_t uid,
                            uint64_t modseq);
/* On a worker: the entries of uids[0..n) (ascending) of the selected mailbox
 * (uidvalidity checked), appended to e, seq from map (0 when map is NULL). UIDs
 * without an entry (expunged meanwhile) are missing from e. 1 ok, 0 the mailbox
 * has gone, -1 error (*error_r malloc'd). */
int imap_entries_read(struct store *st, const char *account, const char *mailbox,
                      uint32_t uidvalidity, const struct imap_uidmap *map, const uint32_t *uids,
                      size_t n, struct imap_entries *e, char **error_r);
void imap_entries_clear(struct imap_entries *e);
void imap_cmd_list(struct imap_session *s, const struct imap_command *cmd);
void imap_cmd_lsub(struct imap_session *s, const struct imap_command *cmd);
void imap_cmd_status(struct imap_session *s, const struct imap_command *cmd);
void imap_cmd_select(struct imap_session *s, const struct imap_command *cmd);
void imap_cmd_examine(struct imap_session *s, const struct imap_command *cmd);
void imap_cmd_create(struct imap_session *s, const struct imap_command *cmd);
void imap_cmd_delete(struct imap_session *s, const struct imap_command *cmd);
void imap_cmd_rename(struct imap_session *s, const struct imap_command *cmd);
void imap_cmd_subscribe(struct imap_session *s, const struct imap_command *cmd);
void imap_cmd_unsubscribe(struct imap_session *s, const struct imap_command *cmd);
void imap_cmd_close(struct imap_session *s, const struct imap_command *cmd);
void imap_cmd_unselect(struct imap_session *s, const struct imap_command *cmd);
void imap_cmd_noop(struct imap_session *s, const struct imap_command *cmd);

/* ---- imap_cmd_message.c ---- */
/* A sequence set argument as UIDs of the view (uid: UID command), ascending.
 * 1 ok (*uids_r malloc'd, may be empty), -1 after replying. */
int imap_arg_uids(struct imap_session *s, const struct imap_token *t, bool uid, uint32_t **uids_r,
                  size_t *n_r);
void imap_cmd_store(struct imap_session *s, const struct imap_command *cmd);
void imap_cmd_expunge(struct imap_session *s, const struct imap_command *cmd);
void imap_cmd_copy(struct imap_session *s, const struct imap_command *cmd);
void imap_cmd_move(struct imap_session *s, const struct imap_command *cmd);
void imap_cmd_append(struct imap_session *s, const struct imap_command *cmd);

/* ---- imap_cmd_fetch.c ---- */
void imap_cmd_fetch(struct imap_session *s, const struct imap_command *cmd);
void imap_fetch_run_free(struct imap_fetch_run **f);
/* The output drained: the next FETCH step. */
void imap_session_on_drain(struct imap_session *s);

/* ---- imap_cmd_search.c ---- */
void imap_cmd_search(struct imap_session *s, const struct imap_command *cmd);

#endif
