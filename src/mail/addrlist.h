/* RFC 5322 3.4 address lists (From:, To:, Cc:, ...) read into their parts
 * the way IMAP ENVELOPE shows them (RFC 9051 7.5.2): display name, source
 * route, mailbox (local part) and host of each mailbox, and the start and
 * end of each group.
 *
 * Lenient and bounded: whatever the octets, the parser returns the list a
 * tolerant reader would see (obsolete syntax of RFC 5322 4.4, comments,
 * quoted strings with quoted-pairs, routes, unterminated quotes, comments
 * and brackets, stray specials, raw 8-bit / UTF-8 octets as in RFC 6532);
 * it fails only when memory runs out. Encoded words (RFC 2047) are left as
 * they are. Pure: no I/O, no logging; no recursion. The reading rules are
 * in docs/mime.md. */
#ifndef HERMOD_MAIL_ADDRLIST_H
#define HERMOD_MAIL_ADDRLIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

#define MAIL_ADDR_NONE UINT32_MAX /* an absent string */

/* Limits on what a message controls. Items past max_items are dropped (and
 * truncated is set), but a group that was started is always ended; strings
 * are cut at max_string octets (at a UTF-8 character boundary). The parser
 * takes max_items below 2 as 2 and above 100000 as 100000, max_string 0 as
 * 1 and above 65536 as 65536. */
struct mail_addrlist_limits {
	unsigned max_items; /* mailboxes and group markers */
	size_t max_string;  /* octets of one name, route, mailbox or host */
};

/* The defaults: 1000 items, strings of at most 1024 octets. */
void mail_addrlist_limits_default(struct mail_addrlist_limits *limits);

/* A string in the list's pool: off == MAIL_ADDR_NONE means absent. */
struct mail_addr_str {
	uint32_t off;
	uint32_t len;
};

enum mail_addr_kind {
	MAIL_ADDR_MAILBOX,     /* a mailbox: name, route, mailbox, host */
	MAIL_ADDR_GROUP_START, /* "name:" -- the group's display name in name */
	MAIL_ADDR_GROUP_END,   /* ";" (or the end of the list in an open group) */
};

/* One item. For a mailbox: name is the display name (the phrase of a
 * name-addr with quoted strings unquoted and words separated by one space,
 * or else the last comment after the addr-spec), absent when there is none;
 * route is an obsolete source route "@a,@b" without its colon, absent when
 * none; mailbox is the local part with quotes and quoted-pairs removed and
 * the CFWS of obsolete syntax around dots dropped; host the domain (domain
 * literals as written, brackets included). mailbox and host are absent
 * when the address has none (e.g. "user" or "<>"). For a group start, name
 * is the group's display name (present, maybe empty); the other strings of
 * group markers are absent. */
struct mail_addr {
	enum mail_addr_kind kind;
	struct mail_addr_str name, route, mailbox, host;
};

struct mail_addrlist {
	struct mail_addr *items;
	unsigned n, cap;
	bool truncated; /* items or strings were cut at a limit */
	struct buf pool;
};

void mail_addrlist_init(struct mail_addrlist *list);
void mail_addrlist_free(struct mail_addrlist *list);
/* The octets of s (NUL-terminated, as the pool is); NULL when absent. The
 * pointer is valid until the list is parsed into again or freed. */
const char *mail_addrlist_str(const struct mail_addrlist *list, struct mail_addr_str s,
                              size_t *len_r);

/* Parses the field value v[0 .. len) (raw, folding included; CR and LF are
 * read as blanks) and appends its items to list (which may hold items of
 * earlier calls). limits may be NULL for the defaults. Elements with
 * nothing in them ("a@b, , c@d", a lone comment) give no item. 1 ok, -1
 * out of memory (list then holds what was parsed before, consistent). */
int mail_addrlist_parse(const char *v, size_t len, const struct mail_addrlist_limits *limits,
                        struct mail_addrlist *list);

#endif
