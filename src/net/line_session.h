/* The line-session layer: everything a line protocol (SMTP, POP3, IMAP) needs
 * between the connection (net/server.h) and its command table.
 *
 * It owns the bufferevent callbacks of a connection and reads its input in one of
 * three modes:
 *   LINES  complete lines (CRLF or bare LF) of at most line_max octets, line end
 *          included; a longer line is discarded as it arrives and reported once
 *          it has ended (on_line_too_long);
 *   RAW    exactly n octets (line_session_want_raw: BDAT chunks, IMAP literals),
 *          then back to LINES;
 *   BODY   every buffered byte, chunk by chunk, until the protocol switches back
 *          (SMTP DATA: the protocol finds the end itself).
 * Replies written while one batch of input is processed go out together when the
 * loop writes the output (corked). Input is not processed while the session is
 * parked (a worker job runs) or while more than output_high octets of output are
 * unsent (counted on the socket, under TLS too); meanwhile input keeps buffering
 * up to input_high. Timeouts: idle (waiting for a command), command (a started
 * line must complete), data (between RAW/BODY reads), write (the peer stopped
 * reading: output pending without progress; the connection is closed, no reply
 * can get through) and an overall deadline the protocol arms (one message
 * transfer). A peer's EOF is a half-close: what it already sent is answered, then
 * the connection closes; a TLS peer that closes without close_notify (dirty) is
 * closed at once.
 *
 * Everything runs on the connection's loop. Callbacks into the protocol never
 * re-enter: a call made from inside one (unpark, want_*) takes effect when it
 * returns. */
#ifndef HERMOD_NET_LINE_SESSION_H
#define HERMOD_NET_LINE_SESSION_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct conn;
struct evbuffer;
struct line_session;

/* Longest line any protocol may ask for (line_max), line end included. */
#define LINE_SESSION_LINE_MAX 16384

enum line_session_mode {
	LINE_SESSION_LINES,
	LINE_SESSION_RAW,
	LINE_SESSION_BODY,
};

struct line_session_ops {
	/* A complete line without its line end, NUL-terminated at line[len]. The
	 * buffer is valid during the call only and is wiped afterwards, and so were
	 * the line's octets in the input buffer (AUTH and PASS lines hold secrets:
	 * a copy the protocol makes is its own to wipe). */
	void (*on_line)(void *ctx, char *line, size_t len);
	/* A line longer than the limit has ended (its bytes are gone). */
	void (*on_line_too_long)(void *ctx);
	/* Optional: a line longer than line_max is buffered (complete or not; a bare
	 * LF ending counts as CRLF); start holds its first len (<= 16) octets. Returns the limit
	 * that applies to it (at most LINE_SESSION_LINE_MAX), or 0 for line_max. SMTP: "AUTH mech
	 * initial-response" may be 12288 octets (RFC 4954 4). */
	size_t (*line_max_for)(void *ctx, const char *start, size_t len);
	/* RAW and BODY bytes: returns how many of them were used (the rest stays
	 * buffered), or -1 to stop processing (after a goodbye, say). */
	long (*on_data)(void *ctx, const char *data, size_t len);
	/* RAW: the n octets have been handed over; the mode is LINES again. */
	void (*on_raw_end)(void *ctx);
	/* The protocol state for log lines. */
	const char *(*state_name)(void *ctx);
	/* Optional: the connection is about to close after a timeout or a peer close
	 * (the protocol may release what it holds). */
	void (*on_close)(void *ctx);
	/* Optional: unsent output is down to the level given to
	 * line_session_notify_drain (a protocol streaming a long reply feeds the next
	 * part from here). Called from the loop, once per notify_drain. */
	void (*on_drain)(void *ctx);
	const char *timeout_reply;   /* e.g. "421 4.4.2 Timeout" (no CRLF) */
	const char *too_many_errors; /* e.g. "421 4.7.0 Too many errors" */
};

struct line_session_limits {
	size_t line_max;          /* LINES limit, line end included */
	unsigned idle_timeout;    /* seconds, waiting for a command */
	unsigned command_timeout; /* seconds, from the first byte of a line to its end */
	unsigned data_timeout;    /* seconds between RAW/BODY reads; also the write timeout */
	unsigned max_errors;      /* line_session_error() count before too_many_errors */
	size_t input_high;        /* most input buffered */
	size_t output_high;       /* stop processing input above this much unsent output */
	size_t output_low;        /* resume once unsent output is down to this */
};

/* Takes over c's bufferevent (callbacks, watermark, timers) and enables it.
 * NULL when out of memory. The session is freed with line_session_free from the
 * protocol's proto_ops.free. */
struct line_session *line_session_new(struct conn *c, const struct line_session_ops *ops, void *ctx,
                                      const struct line_session_limits *lim);
void line_session_free(struct line_session **lsp);

/* Replies: appended to the output (CRLF added by reply/error). No-ops once the
 * session is gone. error() also counts a client mistake towards max_errors
 * (checked before the next line is taken). */
void line_session_reply(struct line_session *ls, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void line_session_vreply(struct line_session *ls, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
void line_session_error(struct line_session *ls, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void line_session_verror(struct line_session *ls, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
/* Counts an error without a reply. */
void line_session_count_error(struct line_session *ls);
/* The output buffer, for multi-line replies and references (NULL once gone). */
struct evbuffer *line_session_output(struct line_session *ls);
/* The input buffer, for a protocol that peeks at pipelined lines (POP3 batches
 * RETRs); only valid in LINES mode between callbacks (NULL once gone). */
struct evbuffer *line_session_input(struct line_session *ls);

/* Sends reply (no CRLF) as the last one, then flushes and closes. */
void line_session_goodbye(struct line_session *ls, const char *reply);
/* Flushes what is queued and closes, without a reply (a multi-line reply that
 * cannot be completed). */
void line_session_end(struct line_session *ls);
/* Asks for one ops->on_drain call once at most low octets of output are unsent
 * (at once, from the loop, if that is already so). No-op once the session is gone;
 * a new call replaces the level. Also starts the write timeout for output added
 * while parked. */
void line_session_notify_drain(struct line_session *ls, size_t low);
/* True once the session can take no more replies (goodbye sent, closing, closed). */
bool line_session_gone(const struct line_session *ls);

/* Async work: while parked no input is processed (it keeps buffering up to
 * input_high) and the input timeouts are off. unpark processes what was
 * pipelined meanwhile (at once, or when the current callback returns). */
void line_session_park(struct line_session *ls);
void line_session_unpark(struct line_session *ls);
bool line_session_parked(const struct line_session *ls);

/* Input modes (see above). want_raw(0) ends the chunk at once. */
void line_session_want_lines(struct line_session *ls);
void line_session_want_raw(struct line_session *ls, uint64_t n);
void line_session_want_body(struct line_session *ls);
enum line_session_mode line_session_mode(const struct line_session *ls);
/* The LINES limit from now on (<= LINE_SESSION_LINE_MAX). */
void line_session_set_line_max(struct line_session *ls, size_t line_max);
/* The idle timeout (seconds waiting for a command) from the next wait on; IMAP
 * lengthens it after login (RFC 9051 5.4: at least 30 minutes). */
void line_session_set_idle_timeout(struct line_session *ls, unsigned seconds);
/* True while the rest of an overlong line is being skipped. */
bool line_session_discarding(const struct line_session *ls);

/* An overall deadline (seconds from now; 0 disarms): when it passes the session
 * ends with timeout_reply, whatever the mode. */
void line_session_set_deadline(struct line_session *ls, unsigned seconds);

/* STARTTLS / STLS, after the "go ahead" reply has been queued: discards buffered
 * input (RFC 3207 4.2), switches the connection to TLS and installs everything on
 * the new bufferevent. 1 ok; -1 the set-up failed and the connection is closed
 * (the protocol must not reply; its session stays valid until proto_ops.free). */
int line_session_start_tls(struct line_session *ls);

/* COMPRESS=DEFLATE (RFC 4978), after the OK reply has been queued (it goes out
 * uncompressed): everything after it is compressed both ways (net/zfilter.h).
 * 1 ok; -1 not possible (out of memory, or already compressed): nothing
 * changed, the protocol answers NO. */
int line_session_start_compress(struct line_session *ls);

/* The peer has closed its sending side (replies still go out). */
bool line_session_peer_eof(const struct line_session *ls);

/* ---- framing ----
 * What the buffered input holds, apart from the connection, the loop and the
 * protocol callbacks: the session above drives it, and so does the fuzz target
 * (tests/fuzz/fuzz_line_session.c). in is the connection's input buffer (or any
 * evbuffer); nothing here re-enters the protocol except line_max_for. */
struct line_session_reader {
	enum line_session_mode mode;
	uint64_t raw_left; /* RAW: octets still to hand over */
	size_t line_max;   /* LINES limit, line end included (<= LINE_SESSION_LINE_MAX) */
	bool discarding;   /* skipping the rest of an overlong line */
	/* as line_session_ops.line_max_for (optional), called with ctx */
	size_t (*line_max_for)(void *ctx, const char *start, size_t len);
	void *ctx;
};

enum line_session_read {
	LINE_SESSION_READ_NONE,     /* no complete line buffered */
	LINE_SESSION_READ_LINE,     /* a line was taken */
	LINE_SESSION_READ_TOO_LONG, /* an overlong line has ended; its octets are gone */
};

/* Overwrites the first n octets of in (all of it when shorter) where they lie in
 * the buffer's chains, then drains them, so that no chain goes back to the
 * allocator holding them. in's chains must be writable (those filled by reads
 * are; not evbuffer_add_reference'd constant data). */
void line_session_drain_wiped(struct evbuffer *in, size_t n);

/* LINES: takes the next line off in. LINE: line (LINE_SESSION_LINE_MAX + 1
 * octets) holds it without its line end, NUL-terminated at line[*len_r], and
 * *len_r + 2 is at most the limit that applied to it (a bare LF counts as CRLF).
 * NONE: no complete line; when what is buffered is already over the limit it
 * has been dropped and r->discarding is set until the line ends (TOO_LONG).
 * Every octet taken off in (line, line end, overlong line) is wiped there first
 * (line_session_drain_wiped); line is the caller's to wipe. */
enum line_session_read line_session_reader_line(struct line_session_reader *r, struct evbuffer *in,
                                                char *line, size_t *len_r);
/* RAW/BODY: the next contiguous piece of in to hand over (at most r->raw_left
 * octets in RAW): its length, 0 when nothing is buffered or the RAW chunk is
 * complete; *data_r points into in until in changes. */
size_t line_session_reader_data(const struct line_session_reader *r, struct evbuffer *in,
                                const char **data_r);
/* n octets of a piece taken in mode (the mode before the protocol saw it: it may
 * switch inside on_data) were used: drains them and, for a RAW piece, counts them
 * off raw_left. */
void line_session_reader_used(struct line_session_reader *r, struct evbuffer *in,
                              enum line_session_mode mode, size_t n);

#endif
