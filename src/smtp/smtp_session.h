/* Inbound SMTP server sessions (RFC 5321) on [listen] smtp: MX service for local
 * domains with local delivery. Never relays for unauthenticated clients. */
#ifndef HERMOD_SMTP_SESSION_H
#define HERMOD_SMTP_SESSION_H

#include "net/server.h"

extern const struct proto_ops smtp_proto;        /* MX, [listen] smtp (25) */
extern const struct proto_ops submission_proto;  /* RFC 6409, [listen] submission (587) */
extern const struct proto_ops submissions_proto; /* RFC 8314, [listen] submissions (465) */

#endif
