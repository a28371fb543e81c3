/* POP3 server sessions (RFC 1939 with RFC 2449 CAPA, RFC 2595 STLS, RFC 5034 AUTH,
 * RFC 3206 response codes) over each account's INBOX. Replies: docs/pop3.md. */
#ifndef HERMOD_POP3_SESSION_H
#define HERMOD_POP3_SESSION_H

#include "net/server.h"

extern const struct proto_ops pop3_proto;  /* [listen] pop3 (110), STLS */
extern const struct proto_ops pop3s_proto; /* [listen] pop3s (995), implicit TLS */

/* Frees the in-process maildrop lock / login-time table (after the loop has ended
 * and every session is freed). */
void pop3_session_cleanup(void);

#endif
