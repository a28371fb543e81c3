/* The IMAP ENVELOPE of a message (RFC 9051 7.5.2) from its raw header
 * section. Pure: no I/O, no logging; bounded by the header section it is
 * given and the address-list limits (mail/addrlist.h). */
#ifndef HERMOD_MAIL_ENVELOPE_H
#define HERMOD_MAIL_ENVELOPE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"

/* Placeholders for the parts an address lacks ("user", "<>", garbage): a
 * NIL host would mark a group start (RFC 9051 7.5.2), so like Dovecot the
 * envelope shows these instead. */
#define MAIL_ENVELOPE_MISSING_MAILBOX "MISSING_MAILBOX"
#define MAIL_ENVELOPE_MISSING_DOMAIN "MISSING_DOMAIN"

/* The IMAP ENVELOPE (RFC 9051 7.5.2) of a message (or an embedded
 * message/rfc822) whose header section is header[0..len) as stored (raw:
 * encoded words are NOT decoded, RFC 9051 says the client does that):
 * "(date subject from sender reply-to to cc bcc in-reply-to message-id)"
 * appended to out. The first occurrence of each field is used (field names
 * case-insensitive, blanks before the colon tolerated, RFC 5322 4.5);
 * reading stops at the first empty line. Date, Subject, In-Reply-To and
 * Message-ID are the unfolded value without leading and trailing blanks
 * (NIL when absent, "" when empty); address fields as mail_addrlist_parse
 * reads them (NIL when absent or holding no address), groups as
 * (NIL NIL "name" NIL) ... (NIL NIL NIL NIL); sender and reply-to default
 * to from when absent or empty. utf8: 8-bit strings may go quoted
 * (IMAP4rev2 / UTF8=ACCEPT) when valid UTF-8, else as literals.
 * 1 ok, -1 out of memory (out may then hold part of the envelope). */
int mail_envelope_imap(const char *header, size_t len, bool utf8, struct buf *out);

#endif
