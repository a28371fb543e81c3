/* MIME structure of a message (RFC 2045, RFC 2046, RFC 2231): a streaming,
 * bounded parser that builds the tree of parts with the byte offsets of every
 * part's header and body, body line counts and the parsed Content-* fields;
 * a compact binary form of the tree for caching; and the IMAP BODY /
 * BODYSTRUCTURE strings (RFC 9051 7.5.2, 9) written from the tree.
 *
 * Pure: no I/O, no logging. The parser never fails on bad mail (only on out
 * of memory): whatever the bytes, it produces the tree a lenient reader
 * would. The rules and limits are described in docs/mime.md. */
#ifndef HERMOD_MAIL_MIME_H
#define HERMOD_MAIL_MIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

#define MIME_NONE UINT32_MAX /* no part / absent string */

/* Limits on what a message controls. Past max_depth or max_parts the rest of
 * the message is an opaque body of the last open part (no more boundaries are
 * recognised); past max_header octets of one part's header section the rest
 * of that section is not parsed (the section still ends at its empty line);
 * parameters past max_params, or with a value longer than max_param_len, are
 * dropped; a boundary longer than max_boundary is not usable. The parser
 * takes max_depth as at most 1000 and max_params and max_boundary as at most
 * 4096; max_depth and max_parts 0 as 1. */
struct mime_limits {
	unsigned max_depth;   /* nesting of multipart and message parts (root = 1) */
	unsigned max_parts;   /* parts in the tree, the root included */
	size_t max_header;    /* octets of one part's header section that are parsed */
	unsigned max_params;  /* parameters kept per field */
	size_t max_param_len; /* octets of one decoded parameter value */
	size_t max_boundary;  /* octets of a boundary (RFC 2046 5.1.1 allows 70) */
};

/* The defaults: depth 100, 10000 parts, 64 KiB of header per part, 64
 * parameters of at most 4096 octets, boundaries of at most 200 octets. */
void mime_limits_default(struct mime_limits *limits);

/* A string in the tree's string pool: off == MIME_NONE means absent (NIL). */
struct mime_str {
	uint32_t off;
	uint32_t len;
};

/* A parameter: name lower-cased, value with RFC 2231 continuations joined and
 * %-encoding decoded (converted to UTF-8 where the charset is known). Names
 * of language lists (Content-Language) are in name with an absent value. */
struct mime_param {
	struct mime_str name;
	struct mime_str value;
};

/* part flags */
#define MIME_PART_MULTIPART 0x01    /* a multipart read for its parts */
#define MIME_PART_MESSAGE 0x02      /* has one child: the embedded message */
#define MIME_PART_HEADER_ENDED 0x04 /* the header ended with an empty line */
#define MIME_PART_HEADER_TRUNC 0x08 /* header longer than max_header: rest not parsed */
#define MIME_PART_DEFAULT_TYPE 0x10 /* no valid Content-Type: the default was taken */
#define MIME_PART_FLAGS_ALL 0x1f

/* One part. The parts of a tree are in pre-order (a parent before its
 * children; part 0 is the message). The header section is
 * [header_start, header_start + header_len) including the empty line that
 * ends it; the body follows at once: [header_start + header_len, + body_len).
 * In a multipart the line end before a boundary line belongs to the boundary
 * (RFC 2046 5.1.1), not to the part. The body of a multipart includes its
 * preamble, the parts and its epilogue; the body of a message part is its
 * child. body_lines is the number of LF octets in the body.
 * Type and subtype are always present (lower-cased), the other strings are
 * absent when their field is. encoding is lower-cased. Params of a field are
 * params[first .. first + count). */
struct mime_part {
	uint32_t parent, child, next; /* MIME_NONE when none */
	uint16_t depth;               /* root 0 */
	uint16_t flags;
	uint64_t header_start, header_len, body_len, body_lines;
	struct mime_str type, subtype, encoding, id, description, md5, disposition, location;
	uint32_t ct_param, ct_nparam;     /* Content-Type parameters */
	uint32_t disp_param, disp_nparam; /* Content-Disposition parameters */
	uint32_t lang, nlang;             /* Content-Language tags */
};

struct mime_tree {
	struct mime_part *parts;
	uint32_t nparts, parts_cap;
	struct mime_param *params;
	uint32_t nparams, params_cap;
	struct buf strings;
};

void mime_tree_init(struct mime_tree *tree);
void mime_tree_free(struct mime_tree *tree);
/* The octets of s (not NUL-terminated in general); NULL when absent. */
const char *mime_tree_str(const struct mime_tree *tree, struct mime_str s, size_t *len_r);
/* The value of the first parameter called name (lower-case) in
 * params[first .. first + count); NULL when there is none. */
const char *mime_tree_param(const struct mime_tree *tree, uint32_t first, uint32_t count,
                            const char *name, size_t *len_r);

/* The part named by an IMAP section part number (RFC 9051 6.4.5):
 * spec[0 .. len) is "1", "2.1.3", ... (numbers from 1, separated by dots,
 * without the .HEADER / .TEXT / .MIME suffix). A message that is not
 * multipart has one part, 1 (the message itself); the parts of a
 * message/rfc822 part are those of its embedded message. 1 found (*part_r
 * set), 0 no such part, -1 not a part number. For HEADER and TEXT of a
 * message/rfc822 part, use its child (the embedded message). */
int mime_tree_section(const struct mime_tree *tree, const char *spec, size_t len, uint32_t *part_r);

/* ---- the streaming parser ----
 * Fed a message from its first octet in pieces of any size; the tree does
 * not depend on how the message is split. Memory: the tree (bounded by the
 * limits), one header section of at most max_header octets, a stack of at
 * most max_depth entries; never a copy of a body. */
struct mime_parser;

/* NULL on out of memory. limits may be NULL for the defaults (copied). */
struct mime_parser *mime_parser_new(const struct mime_limits *limits);
/* 0 ok, -1 out of memory (the parser is then failed; later calls return -1). */
int mime_parser_feed(struct mime_parser *parser, const void *data, size_t len);
/* The message has ended: moves the finished tree into *tree_r (which the
 * caller frees with mime_tree_free). 1 ok, -1 out of memory (*tree_r is then
 * empty). After it the parser can only be freed. */
int mime_parser_finish(struct mime_parser *parser, struct mime_tree *tree_r);
void mime_parser_free(struct mime_parser **parser);
/* Octets of memory the parser holds now (its tree included), for tests and
 * accounting. */
size_t mime_parser_mem(const struct mime_parser *parser);

/* One call: the tree of msg[0 .. len). 1 ok, -1 out of memory. */
int mime_parse(const void *msg, size_t len, const struct mime_limits *limits,
               struct mime_tree *tree_r);

/* ---- cached form ----
 * A compact binary encoding (versioned; integers as varints). decode checks
 * everything it reads (structure, offsets nesting, string references) and
 * returns -1 for any input encode could not have produced. */
int mime_tree_encode(const struct mime_tree *tree, struct buf *out);          /* 1 ok, -1 OOM */
int mime_tree_decode(const void *data, size_t len, struct mime_tree *tree_r); /* 1, -1 */
/* 1 when both trees are the same (every field, every string). */
int mime_tree_equal(const struct mime_tree *a, const struct mime_tree *b);

/* ---- IMAP ----
 * Writes the BODY (extended false) or BODYSTRUCTURE (extended true) of the
 * part (0: the whole message) as RFC 9051 section 9 body. utf8: strings may
 * contain UTF-8 in quoted form (IMAP4rev2 or UTF8=ACCEPT); otherwise any
 * non-ASCII string is sent as a literal. The ENVELOPE of an embedded message
 * (body-type-msg) is written by envelope(ctx, tree, part, out) for the
 * message's part; when envelope is NULL it is an all-NIL envelope.
 * envelope returns 1 ok, -1 error. Returns 1 ok, -1 out of memory (or the
 * callback's error). */
#define MIME_IMAP_EXTENDED 0x1
#define MIME_IMAP_UTF8 0x2
typedef int mime_envelope_fn(void *ctx, const struct mime_tree *tree, uint32_t part,
                             struct buf *out);
int mime_tree_imap_body(const struct mime_tree *tree, uint32_t part, unsigned flags,
                        mime_envelope_fn *envelope, void *ctx, struct buf *out);
/* Appends s as an IMAP string: quoted when it can be, else a literal {n}
 * (NUL octets are left out). 1 ok, -1 out of memory. */
int mime_imap_append_string(struct buf *out, const char *s, size_t len, bool utf8);

#endif
