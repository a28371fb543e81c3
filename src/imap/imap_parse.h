/* The IMAP command parser (RFC 9051 section 9 client grammar, also what RFC 3501
 * IMAP4rev1 clients send): tag, command name and arguments as a flat, typed token
 * array (a preorder tree: a list or section token is followed by the tokens inside
 * it). Pure: no I/O, no logs, no replies; fuzzed by tests/fuzz/fuzz_imap_parse.c.
 *
 * Driving it (the IMAP session over net/line_session):
 *
 *   r = imap_parser_feed_line(p, line, len)      one line, CRLF removed
 *   while r == IMAP_PARSE_NEED_LITERAL:
 *       lit = imap_parser_literal(p)
 *       if lit->sync: send "+ ..." (the client waits for it)
 *       switch to RAW for lit->size octets; feed them (in any pieces) with
 *       imap_parser_feed_literal until it returns IMAP_PARSE_NEED_LINE, then the
 *       next line goes to imap_parser_feed_line again
 *   r == IMAP_PARSE_COMMAND: imap_parser_command(p) is valid until imap_parser_reset
 *   r == IMAP_PARSE_ERROR:   imap_parser_error(p) says what to answer (below)
 *   after COMMAND or ERROR:  imap_parser_reset(p) before the next command
 *
 * Only command lines go through the parser: AUTHENTICATE's client responses and
 * IDLE's "DONE" are lines of their own that the session reads itself.
 *
 * A literal of size 0 is complete at once: imap_parser_feed_literal(p, NULL, 0)
 * returns IMAP_PARSE_NEED_LINE.
 *
 * Literals (RFC 9051 4.3, RFC 7888 LITERAL+/LITERAL-, RFC 3516 literal8): "{n}"
 * (synchronizing: the client waits for "+"), "{n+}" (non-synchronizing: the octets
 * follow at once), "~{n}" and "~{n+}" (literal8, APPEND message data only). LITERAL-
 * has no syntax of its own: it is "{n+}" limited to 4096 octets (nonsync_max).
 * The message literals of APPEND (every top-level literal after the mailbox name;
 * MULTIAPPEND sends several; RFC 6855 "UTF8 (~{n})" too) go to the sink when one is given and
 * become IMAP_TOKEN_LITERAL_SINK tokens; every other literal is kept in memory, up to
 * literal_keep_max octets.
 *
 * Errors and what the session answers (kind: reply):
 *   the error's `tag` is NULL when no valid tag was read: answer "* BAD ..." then.
 *   `bye` true: answer "* BYE [code] text" and close the connection (octets of an
 *   unknown length may follow, the stream cannot be resynchronised).
 *   otherwise "<tag> <status> [<code>] <text>" with status "BAD" or "NO".
 * When the broken command had already announced a non-synchronizing literal, the
 * parser first asks for its octets (IMAP_PARSE_NEED_LITERAL with lit->discard
 * true: they are dropped) and the rest of the command, and reports the error once
 * the command has ended, so that the next line is a new command. */
#ifndef HERMOD_IMAP_IMAP_PARSE_H
#define HERMOD_IMAP_IMAP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* LITERAL- (RFC 7888 5): non-synchronizing literals up to this size only. */
#define IMAP_LITERAL_MINUS_MAX 4096
/* Part numbers kept for one BODY[1.2.3...] section. */
#define IMAP_SECTION_PARTS_MAX 32
/* Longest tag or command name kept. */
#define IMAP_TAG_MAX 64

/* Every limit on what a client controls. Defaults (imap_parse_limits_default) are
 * chosen like Dovecot's; the *_preauth values apply before authentication. */
struct imap_parse_limits {
	size_t line_max;                 /* one line, CRLF excluded (16382) */
	uint64_t literal_max;            /* one APPEND message literal: APPENDLIMIT (64 MiB) */
	size_t literal_keep_max;         /* a literal kept in memory (65536) */
	size_t command_max;              /* one command's lines and kept literals (1 MiB) */
	unsigned depth_max;              /* nested lists and sections (32) */
	unsigned args_max;               /* tokens in one command (4096) */
	uint64_t nonsync_max;            /* "{n+}" up to this size: UINT64_MAX for LITERAL+,
	                                    IMAP_LITERAL_MINUS_MAX for LITERAL- */
	size_t line_max_preauth;         /* 8192 */
	size_t literal_keep_max_preauth; /* 4096; no message literal before login */
	size_t command_max_preauth;      /* 16384 */
	unsigned depth_max_preauth;      /* 4 */
	unsigned args_max_preauth;       /* 128 (ID sends up to 30 pairs) */
};

void imap_parse_limits_default(struct imap_parse_limits *l);

/* Where APPEND message literals go. begin is called once the literal's size is
 * known (index counts message literals of the command from 0), data with its
 * octets in pieces, end once all have come (ok false: the parser stopped early,
 * the sink must drop what it has). A callback returning -1 fails the command with
 * IMAP_PARSE_ERR_SINK (the remaining octets are read and dropped). */
struct imap_literal_sink {
	int (*begin)(void *ctx, unsigned index, uint64_t size, bool literal8);
	int (*data)(void *ctx, const char *data, size_t len);
	void (*end)(void *ctx, bool ok);
	void *ctx;
};

enum imap_parse_result {
	IMAP_PARSE_ERROR = -1,
	IMAP_PARSE_NEED_LINE = 0,    /* the literal is complete: feed the next line */
	IMAP_PARSE_NEED_LITERAL = 1, /* feed imap_parser_literal(p)->size octets */
	IMAP_PARSE_COMMAND = 2,      /* a complete command */
};

enum imap_token_type {
	IMAP_TOKEN_ATOM,         /* a bare word: see the IMAP_ATOM_* class flags */
	IMAP_TOKEN_QUOTED,       /* "..." with \" and \\ undone */
	IMAP_TOKEN_LITERAL,      /* a literal kept in memory */
	IMAP_TOKEN_LITERAL_SINK, /* an APPEND message literal given to the sink: len is
	                            its size, data is NULL */
	IMAP_TOKEN_LIST,         /* "(": the next `span` tokens are inside */
	IMAP_TOKEN_SECTION,      /* FETCH BODY[...]<...> and BINARY[...]: see section;
	                            the next `span` tokens are the HEADER.FIELDS names */
};

/* Classes of an IMAP_TOKEN_ATOM (a word may have several). A word that fits no
 * class is a syntax error, so every atom token has at least one. */
#define IMAP_ATOM_ATOM 0x001         /* 1*ATOM-CHAR */
#define IMAP_ATOM_ASTRING 0x002      /* 1*ASTRING-CHAR (atom chars and "]") */
#define IMAP_ATOM_LIST_MAILBOX 0x004 /* 1*list-char (also "%" and "*") */
#define IMAP_ATOM_FLAG 0x008         /* "\" atom (\Seen, \Deleted, ...) */
#define IMAP_ATOM_NUMBER 0x010       /* number64: digits, at most 2^63-1; value in num */
#define IMAP_ATOM_NUMBER32 0x020     /* number: digits, at most 4294967295 */
#define IMAP_ATOM_NZ 0x040           /* a number that is not 0 */
#define IMAP_ATOM_SEQSET 0x080       /* sequence-set syntax, or "$" (RFC 5182) */
#define IMAP_ATOM_NIL 0x100          /* "NIL" (any case); also a valid astring */
/* IMAP_TOKEN_LITERAL and _SINK: */
#define IMAP_LITERAL_8 0x200 /* literal8 "~{n}" */

/* "string" in the grammar: a quoted string or a literal kept in memory. */
#define IMAP_TOKEN_IS_STRING(t) ((t)->type == IMAP_TOKEN_QUOTED || (t)->type == IMAP_TOKEN_LITERAL)
/* "astring": 1*ASTRING-CHAR / string. */
#define IMAP_TOKEN_IS_ASTRING(t)                                                                   \
	(IMAP_TOKEN_IS_STRING(t) ||                                                                \
	 ((t)->type == IMAP_TOKEN_ATOM && ((t)->flags & IMAP_ATOM_ASTRING)))
/* "nstring": string / nil. */
#define IMAP_TOKEN_IS_NSTRING(t)                                                                   \
	(IMAP_TOKEN_IS_STRING(t) || ((t)->type == IMAP_TOKEN_ATOM && ((t)->flags & IMAP_ATOM_NIL)))

enum imap_section_text {
	IMAP_SECTION_NONE, /* BODY[] or BODY[1.2] */
	IMAP_SECTION_HEADER,
	IMAP_SECTION_HEADER_FIELDS,
	IMAP_SECTION_HEADER_FIELDS_NOT,
	IMAP_SECTION_TEXT,
	IMAP_SECTION_MIME, /* only after a part number */
};

/* One FETCH body section (RFC 9051 6.4.5, RFC 3516 BINARY). */
struct imap_section {
	char name[12];   /* "BODY", "BODY.PEEK", "BINARY", "BINARY.PEEK" or
	                    "BINARY.SIZE" (upper case) */
	unsigned nparts; /* section-part: parts[0].parts[1]... */
	uint32_t parts[IMAP_SECTION_PARTS_MAX];
	enum imap_section_text text;
	bool partial; /* "<offset.count>" given (not for BINARY.SIZE) */
	uint64_t partial_offset;
	uint64_t partial_count; /* not 0 */
};

struct imap_token {
	enum imap_token_type type;
	unsigned flags;   /* IMAP_ATOM_* or IMAP_LITERAL_8 */
	unsigned depth;   /* 0: a command argument; n: inside n lists/sections */
	unsigned span;    /* LIST and SECTION: tokens inside (all levels) */
	const char *data; /* the text, NUL-terminated (a literal8 may hold NULs
	                     before it); NULL for LIST and LITERAL_SINK; for SECTION
	                     the name as in section->name */
	size_t len;
	uint64_t num;                       /* IMAP_ATOM_NUMBER: the value */
	const struct imap_section *section; /* SECTION only */
	size_t off_;                        /* internal */
	size_t section_;                    /* internal */
};

/* The index of the token after args[i] and everything inside it (its next
 * sibling, or the end of the enclosing list). */
static inline unsigned imap_token_skip(const struct imap_token *args, unsigned i)
{
	return i + 1 +
	       (args[i].type == IMAP_TOKEN_LIST || args[i].type == IMAP_TOKEN_SECTION ? args[i].span
	                                                                              : 0);
}

/* A parsed command. Everything points into the parser and is valid until
 * imap_parser_reset or imap_parser_free, which wipe it (a LOGIN password is in
 * here). */
struct imap_command {
	const char *tag;
	const char *name;     /* upper case: "FETCH", ...; for UID commands "UID" */
	const char *uid_name; /* UID FETCH: "FETCH" (upper case), else NULL */
	const struct imap_token *args;
	unsigned nargs; /* all tokens (nested ones too) */
};

enum imap_parse_error_kind {
	IMAP_PARSE_ERR_NONE,
	IMAP_PARSE_ERR_EMPTY,           /* * BAD Empty command line */
	IMAP_PARSE_ERR_TAG,             /* * BAD Invalid tag */
	IMAP_PARSE_ERR_COMMAND,         /* <tag> BAD Missing or invalid command name */
	IMAP_PARSE_ERR_SYNTAX,          /* <tag> BAD <what is wrong> */
	IMAP_PARSE_ERR_LITERAL_NUL,     /* <tag> BAD NUL in a literal (use literal8) */
	IMAP_PARSE_ERR_LINE_TOO_LONG,   /* <tag> BAD [TOOBIG] Command line too long */
	IMAP_PARSE_ERR_LITERAL_TOO_BIG, /* <tag> BAD [TOOBIG] Literal too large */
	IMAP_PARSE_ERR_APPEND_TOO_BIG,  /* <tag> NO [TOOBIG] Message too large
	                                   (RFC 7889 4), or * BYE when non-synchronizing */
	IMAP_PARSE_ERR_NONSYNC_TOO_BIG, /* <tag> BAD [TOOBIG] LITERAL-: non-synchronizing
	                                   literal over 4096 octets (RFC 7888 4) */
	IMAP_PARSE_ERR_COMMAND_TOO_BIG, /* <tag> BAD [LIMIT] Command too large */
	IMAP_PARSE_ERR_TOO_DEEP,        /* <tag> BAD [LIMIT] Too deeply nested */
	IMAP_PARSE_ERR_TOO_MANY_ARGS,   /* <tag> BAD [LIMIT] Too many arguments */
	IMAP_PARSE_ERR_SINK,            /* <tag> NO: the sink refused (the session knows
	                                   why and words the reply) */
	IMAP_PARSE_ERR_ABUSE,           /* * BYE: a non-synchronizing literal too large
	                                   to read and drop, or a dropped line */
};

struct imap_parse_error {
	enum imap_parse_error_kind kind;
	const char *tag;    /* NULL: no valid tag (answer "* BAD") */
	const char *status; /* "BAD" or "NO" ("BYE" when bye) */
	const char *code;   /* response code without brackets ("TOOBIG", "LIMIT") or NULL */
	const char *text;   /* human-readable, no CRLF */
	bool bye;           /* answer "* BYE [code] text" and close */
};

struct imap_literal_info {
	uint64_t size;
	bool sync; /* the client waits for a "+" continuation */
	bool literal8;
	bool to_sink; /* an APPEND message literal going to the sink */
	bool discard; /* part of a failed command: read and dropped */
};

struct imap_parser;

/* limits NULL: the defaults. sink NULL: message literals are kept in memory like
 * any other (up to literal_keep_max). Returns NULL when out of memory. */
struct imap_parser *imap_parser_new(const struct imap_parse_limits *limits,
                                    const struct imap_literal_sink *sink);
void imap_parser_free(struct imap_parser **p);
/* Switches to the authenticated limits (false: back to the pre-authentication
 * ones, the initial state). Takes effect at the next command. */
void imap_parser_set_authenticated(struct imap_parser *p, bool authenticated);

/* Feeds one line, its CRLF removed (line need not be NUL-terminated; it is not
 * kept). Returns an enum imap_parse_result. */
int imap_parser_feed_line(struct imap_parser *p, const char *line, size_t len);
/* Feeds literal octets: takes at most what the literal still needs (*used_r) and
 * returns IMAP_PARSE_NEED_LITERAL (more wanted), IMAP_PARSE_NEED_LINE (complete).
 * Errors found in a literal are reported once the command has ended. */
int imap_parser_feed_literal(struct imap_parser *p, const char *data, size_t len, size_t *used_r);
/* The session's line layer dropped a line that was too long: the command it
 * belonged to is lost and a non-synchronizing literal may follow unseen, so this
 * is IMAP_PARSE_ERR_ABUSE (* BYE). Returns IMAP_PARSE_ERROR. */
int imap_parser_line_dropped(struct imap_parser *p);

/* Valid after NEED_LITERAL. */
const struct imap_literal_info *imap_parser_literal(const struct imap_parser *p);
/* Valid after COMMAND, until imap_parser_reset. */
const struct imap_command *imap_parser_command(const struct imap_parser *p);
/* Valid after ERROR, until imap_parser_reset. */
const struct imap_parse_error *imap_parser_error(const struct imap_parser *p);
/* Forgets (and wipes) the current command; ready for the next one. */
void imap_parser_reset(struct imap_parser *p);

/* ---- sequence sets (RFC 9051 9 sequence-set, RFC 5182 "$") ---- */

#define IMAP_SEQ_STAR UINT64_MAX /* "*": the largest number in use */

struct imap_seq_range {
	uint64_t lo, hi; /* as written: either order, either may be IMAP_SEQ_STAR */
};

struct imap_seqset {
	bool last_result; /* "$": the saved search result (RFC 5182) */
	bool resolved;    /* made by imap_seqset_resolve: sorted, disjoint, no "*" */
	unsigned n;
	struct imap_seq_range *ranges; /* malloc'd, n of them */
};

/* Parses and validates a sequence set: numbers 1..4294967295 (0 is invalid),
 * "a:b" in either order, "*", at most max_ranges comma-separated items. 1 ok
 * (free with imap_seqset_free), -1 with *error_r set (static text). */
int imap_seqset_parse(const char *s, size_t len, unsigned max_ranges, struct imap_seqset *set,
                      const char **error_r);
void imap_seqset_free(struct imap_seqset *set);
/* Whether n (1..max) is in the set, "*" meaning max. max 0 (empty mailbox):
 * nothing is. A "$" set contains nothing here (the session resolves it). */
bool imap_seqset_contains(const struct imap_seqset *set, uint64_t n, uint64_t max);
/* Whether every number written (other than "*") is at most max: RFC 9051 says a
 * message sequence number over the number of messages is an error (BAD). */
bool imap_seqset_in_range(const struct imap_seqset *set, uint64_t max);
/* Iterates the numbers of the set in 1..max in ascending order, each once:
 * start with *cursor = 0; returns 1 with *n_r set, 0 when done. O(ranges) each. */
int imap_seqset_next(const struct imap_seqset *set, uint64_t max, uint64_t *cursor, uint64_t *n_r);
/* The set against max as sorted, disjoint, non-adjacent ranges within 1..max
 * with "*" replaced (out->resolved): contains and next on it take O(log ranges)
 * instead of O(ranges), for sets of many ranges over large mailboxes. 1 ok (free
 * out with imap_seqset_free), -1 out of memory. A "$" set resolves to itself. */
int imap_seqset_resolve(const struct imap_seqset *set, uint64_t max, struct imap_seqset *out);

/* ---- mailbox names in modified UTF-7 (RFC 3501 5.1.3) ---- */

/* Decodes a modified UTF-7 mailbox name to UTF-8 into out (capacity out_size,
 * NUL-terminated). Strict: printable ASCII must be direct, "&" is "&-", no
 * adjacent or empty encoded runs, no stray bits, well-paired surrogates, no
 * control characters. Returns the UTF-8 length, or -1 with *error_r set (also
 * when out is too small; len + 1 octets are always enough). */
long imap_mutf7_decode(const char *in, size_t len, char *out, size_t out_size,
                       const char **error_r);
/* Encodes UTF-8 (strictly valid, no control characters) to modified UTF-7.
 * Returns the length or -1 with *error_r set (len * 5 / 2 + 1 octets of out are
 * always enough: "\xc3\xa4" becomes "&AOQ-"). */
long imap_mutf7_encode(const char *in, size_t len, char *out, size_t out_size,
                       const char **error_r);

#endif
