/* IMAP server sessions (RFC 9051 IMAP4rev2, RFC 3501 IMAP4rev1 clients) over
 * net/line_session, driving the command parser (imap/imap_parse.h). Capabilities,
 * replies, limits and states: docs/imap.md. */
#ifndef HERMOD_IMAP_IMAP_SESSION_H
#define HERMOD_IMAP_IMAP_SESSION_H

#include "net/server.h"

extern const struct proto_ops imap_proto;  /* [listen] imap (143), STARTTLS */
extern const struct proto_ops imaps_proto; /* [listen] imaps (993), implicit TLS */

#endif
