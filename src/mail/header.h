/* Header section of an RFC 5322 message: finding fields and reading the
 * addresses of an address-list field (From:, To:, ...). Lenient where real mail
 * is sloppy, but bounded: pure functions over bytes, fuzzed in tests/fuzz. */
#ifndef HERMOD_MAIL_HEADER_H
#define HERMOD_MAIL_HEADER_H

#include <stddef.h>

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

#endif
