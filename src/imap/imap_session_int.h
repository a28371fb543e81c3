/* Internal to the IMAP session (imap_session.c and the imap_cmd_*.c files): the
 * session object, the selected mailbox's view, worker jobs and reply helpers. */
#ifndef HERMOD_IMAP_IMAP_SESSION_INT_H
#define HERMOD_IMAP_IMAP_SESSION_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "imap/imap_parse.h"
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

/* One message of the session's view of the selected mailbox. */
struct imap_view_msg {
	uint32_t uid;
	uint64_t modseq;
	uint64_t size;
	int64_t internal_date;
	char *flags; /* space-separated, "" when none (malloc'd) */
	char blob_id[BLOB_ID_LEN + 1];
};

/* The selected mailbox as this session knows it: message sequence numbers are
 * indexes into msgs + 1. It changes only when the session reports the change
 * (RFC 9051 7.5), so sequence numbers stay what the client was told. */
struct imap_view {
	char *name; /* UTF-8, as the store names it */
	bool readonly;
	uint32_t uidvalidity, uidnext;
	uint64_t highestmodseq;
	struct imap_view_msg *msgs;
	uint32_t n, cap;
};

/* What a worker found changed since the view's HIGHESTMODSEQ
 * (store_mailbox_changes), applied on the loop by imap_view_apply. */
struct imap_changes {
	bool have_info;
	uint32_t uidvalidity, uidnext;
	uint64_t highestmodseq;
	struct imap_view_msg *msgs; /* new or changed entries, ascending UID */
	size_t n, cap;
	uint64_t expunge_floor;
	uint32_t *vanished; /* runs of UIDs: [2k]..[2k + 1], k < nvanished, ascending */
	size_t nvanished, capvanished;
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
/* The "NO" reply for an environment failure (a store error): logs it. */
void imap_job_tempfail(struct imap_job *j, const char *what);
void imap_session_unpark(struct imap_session *s);
void imap_session_park(struct imap_session *s);
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
/* Reports and applies ch to the view (loop). */
void imap_view_apply(struct imap_session *s, struct imap_changes *ch);
void imap_view_free(struct imap_view **v);
/* Index of uid in the view, -1 when absent. */
long imap_view_find(const struct imap_view *v, uint32_t uid);
/* Removes index i from the view and reports it (EXPUNGE, or collects it for
 * VANISHED when QRESYNC is on: vanished may be NULL). */
void imap_view_expunge_report(struct imap_session *s, uint32_t i);
void imap_write_flags(struct evbuffer *out, const char *flags);
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
