/* Inbound SMTP server sessions (RFC 5321) on [listen] smtp: MX service for local
 * domains with local delivery. Never relays for unauthenticated clients. */
#ifndef HERMOD_SMTP_SESSION_H
#define HERMOD_SMTP_SESSION_H

#include "net/server.h"

extern const struct proto_ops smtp_proto;

#endif
