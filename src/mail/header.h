/* Header section of an RFC 5322 message: finding fields and reading the
 * addresses of an address-list field (From:, To:, ...), over the whole section
 * or incrementally as a message streams past (mail_header_scan). Lenient where
 * real mail is sloppy, but bounded: pure functions over bytes, fuzzed in
 * tests/fuzz. */
#ifndef HERMOD_MAIL_HEADER_H
#define HERMOD_MAIL_HEADER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

/* Length of the header section: up to and including the empty line that ends it,
 * or len when the message has no body. Lines may end in CRLF or LF. */
size_t mail_header_section_len(const char *msg, size_t len);

/* Finds the first field called name (case-insensitive) in the header section.
 * 1 found: *value_r and *value_len_r span the raw value after the colon, folding
 * included (not unfolded, leading blanks kept); 0 not found. */
int mail_header_find(const char *msg, size_t len, const char *name, const char **value_r,
		     size_t *value_len_r);

/* Calls cb for each addr-spec of an address-list value (RFC 5322 3.4): the part in
 * <...> of a name-addr, or a bare addr-spec; display names, comments, quoted
 * strings and group syntax are skipped. Addresses are passed without surrounding
 * blanks, at most 320 bytes each (longer ones are passed truncated to 0 length,
 * i.e. as ""). Returns the number of addresses, -1 when the value is malformed
 * (unbalanced quotes, brackets or comments). */
typedef void mail_header_addr_cb(void *ctx, const char *addr, size_t len);
int mail_header_addresses(const char *value, size_t len, mail_header_addr_cb *cb, void *ctx);

/* ---- incremental scan of a header section ----
 *
 * Fed a message from its first byte in pieces of any size, the scanner finds
 * the end of the header section (the first empty line, CRLF or bare LF, as
 * mail_header_section_len) and records what the RFC 6409 submission checks
 * need, with exactly the answers mail_header_section_len / mail_header_find
 * give on the whole section:
 *   - whether a Date: and a Message-ID: field are present;
 *   - the raw value of every From: field, in order: the bytes after the colon
 *     through the field's continuation lines, folding included (not unfolded),
 *     without the final line end, i.e. what mail_header_find returns for it;
 *   - the section length, and whether the empty line was seen.
 *
 * Memory: the struct itself, plus the From: values (each with a 4-byte
 * length). They lie inside the section, which is at most max octets, so
 * from.len < 2 * max (a From: field takes at least 5 octets of the section);
 * nothing else of the section is kept. No allocation until a From: field. */
struct mail_header_scan {
	size_t max; /* limit on the section length */
	size_t len; /* octets of the section seen so far */
	uint8_t state;
	uint8_t name;     /* the field name being matched (header.c) */
	uint8_t name_pos; /* octets of it matched */
	bool in_from;     /* a From: value is being collected */
	bool ended;       /* the empty line ending the section was seen */
	bool too_large;   /* the section is longer than max */
	bool failed;      /* out of memory */
	bool have_date;
	bool have_message_id;
	unsigned nreceived; /* Received: fields (RFC 5321 6.3 loop detection) */
	/* "TLS-Required: No" (RFC 8689 5): the value on the field's first line,
	 * blanks around it ignored, any case */
	bool tls_required_no;
	uint8_t tlsreq_len;
	char tlsreq[8];
	unsigned nfrom;    /* From: fields */
	size_t from_start; /* offset in from of the open value's length */
	struct buf from;   /* From: values, each a uint32_t length then the bytes */
};

/* Starts a scan of a section of at most max octets (a larger max than 1 GiB is
 * taken as 1 GiB). */
void mail_header_scan_init(struct mail_header_scan *scan, size_t max);
/* Feeds the next len octets of the message. 0 more is needed, 1 the section is
 * complete (later octets are ignored), -1 the section is over max or memory
 * ran out (later octets are ignored; mail_header_scan_end says which). */
int mail_header_scan_feed(struct mail_header_scan *scan, const void *data, size_t len);
/* The message has ended (a message without an empty line is all header).
 * 1 the section is complete within max, 0 it is longer than max, -1 out of
 * memory. Idempotent; feeding after it is a programmer error. */
int mail_header_scan_end(struct mail_header_scan *scan);
/* Iterates the From: values after mail_header_scan_end returned 1: *pos
 * starts at 0. 1 with *value_r / *len_r set (valid until the scan is freed or
 * re-initialised), 0 no more. */
int mail_header_scan_next_from(const struct mail_header_scan *scan, size_t *pos,
			       const char **value_r, size_t *len_r);
/* Frees the From: values; the scan may be initialised again. */
void mail_header_scan_free(struct mail_header_scan *scan);

#endif
