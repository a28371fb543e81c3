/* POP3 parsing and framing that needs no session (RFC 1939, RFC 2449): the command
 * line parser, message numbers, the multi-line response writer (dot-stuffing) and
 * the TOP cut. Pure functions: no I/O, no logs, no replies; fuzzed by
 * tests/fuzz/fuzz_pop3.c. */
#ifndef HERMOD_POP3_PARSE_H
#define HERMOD_POP3_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* RFC 2449 4: a command line is at most 255 octets including the CRLF. */
#define POP3_LINE_MAX 255
/* RFC 5034 4 (as RFC 4954 4): SASL responses may be longer; 12288 octets like SMTP. */
#define POP3_AUTH_LINE_MAX 12288
/* Arguments kept apart in struct pop3_command (no POP3 command takes more). */
#define POP3_ARGS_MAX 2

enum pop3_verb {
	POP3_VERB_UNKNOWN,
	POP3_VERB_USER,
	POP3_VERB_PASS,
	POP3_VERB_AUTH,
	POP3_VERB_CAPA,
	POP3_VERB_STLS,
	POP3_VERB_QUIT,
	POP3_VERB_STAT,
	POP3_VERB_LIST,
	POP3_VERB_RETR,
	POP3_VERB_DELE,
	POP3_VERB_NOOP,
	POP3_VERB_RSET,
	POP3_VERB_TOP,
	POP3_VERB_UIDL,
};

/* A parsed command line. Pointers go into the line given to pop3_command_parse and
 * are valid as long as it is. */
struct pop3_command {
	enum pop3_verb verb;
	const char *args; /* everything after the keyword and one space ("" if none); PASS
	                     takes it whole (RFC 1939 7: a password may hold spaces) */
	size_t args_len;
	/* args split on runs of spaces: at most POP3_ARGS_MAX kept; argc may be
	 * POP3_ARGS_MAX + 1, meaning "more than POP3_ARGS_MAX" */
	unsigned argc;
	const char *argv[POP3_ARGS_MAX];
	size_t argl[POP3_ARGS_MAX];
};

/* Parses one command line (line terminator removed). Keywords are matched
 * case-insensitively (RFC 1939 3); an unknown keyword, or an empty line, gives
 * POP3_VERB_UNKNOWN with 1. Returns -1 when the line holds control characters
 * (anything below 0x20 but TAB, and DEL): "Syntax error". */
int pop3_command_parse(const char *line, size_t len, struct pop3_command *cmd);

/* A message number or line count: 1 to 10 decimal digits, no sign, at most
 * UINT32_MAX. 1 ok, -1 otherwise. */
int pop3_parse_number(const char *s, size_t len, uint32_t *r);
/* A count that may be larger than any message (TOP's line count, RFC 1939 7:
 * any non-negative number): digits only, saturating at UINT32_MAX. 1 ok, -1 bad. */
int pop3_parse_count(const char *s, size_t len, uint32_t *r);

/* Dot-stuffing writer for multi-line responses (RFC 1939 3): fed the message in any
 * split, it hands out the bytes to send: the input spans as they are (emit with
 * from_input true: data points into what was fed), with an extra "." before every
 * line that starts with '.' and, at the end, a CRLF if the data did not end with
 * one, then the terminating ".\r\n" (static strings: from_input false). */
typedef void pop3_emit_fn(void *ctx, const char *data, size_t len, bool from_input);

struct pop3_dotstuff {
	bool bol;     /* the next byte starts a line */
	char last[2]; /* the last two bytes fed (last[1] is the very last) */
	uint64_t total;
};

void pop3_dotstuff_init(struct pop3_dotstuff *d);
void pop3_dotstuff_feed(struct pop3_dotstuff *d, const char *data, size_t len, pop3_emit_fn *emit,
                        void *ctx);
void pop3_dotstuff_finish(struct pop3_dotstuff *d, pop3_emit_fn *emit, void *ctx);

/* The TOP cut over a message fed in any split: pop3_top_feed returns how many of
 * the len octets belong to the reply (all of them until the cut is reached) and
 * sets done once the header, its empty line and `lines` body lines have been
 * taken; nothing more is taken after that. The same cut as pop3_top_length. */
struct pop3_top {
	uint32_t lines_left; /* body lines still to take */
	bool body;           /* the header's empty line has been taken */
	bool done;
	bool cr_only;        /* the current line so far is exactly "\r" */
	uint64_t linelen;    /* octets of the current line so far (no LF) */
};

void pop3_top_init(struct pop3_top *t, uint32_t lines);
size_t pop3_top_feed(struct pop3_top *t, const char *data, size_t len);

/* One RETR or TOP reply body fed in chunks of any split: the TOP cut (when top)
 * followed by dot-stuffing. pop3_reply_feed returns the octets of data used (fewer
 * than len only once done: TOP has all it needs, the caller may stop reading);
 * pop3_reply_finish ends the reply (CRLF if needed, then ".\r\n"). */
struct pop3_reply_body {
	struct pop3_dotstuff d;
	struct pop3_top t;
	bool top;
	bool done;
};

void pop3_reply_body_init(struct pop3_reply_body *r, bool top, uint32_t lines);
size_t pop3_reply_body_feed(struct pop3_reply_body *r, const char *data, size_t len,
                            pop3_emit_fn *emit, void *ctx);
void pop3_reply_body_finish(struct pop3_reply_body *r, pop3_emit_fn *emit, void *ctx);

/* RFC 1939 7 TOP: the length of the prefix of msg holding the header, the empty
 * line after it and the first `lines` body lines. A message without an empty line
 * is all header; fewer body lines than asked give the whole message. Lines end in
 * LF (CRLF in stored messages). */
size_t pop3_top_length(const char *msg, size_t len, uint32_t lines);

#endif
