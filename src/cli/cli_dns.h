/* hermod dns lookup TYPE NAME: one lookup through the resolver the server uses
 * ([dns] of the config), for admins checking what hermod sees (docs/cli.md). */
#ifndef HERMOD_CLI_CLI_DNS_H
#define HERMOD_CLI_CLI_DNS_H

struct config;

/* Prints the records, then "; STATUS SECURITY ttl N" (see docs/cli.md). Returns
 * CLI_EXIT_OK for an answer (records, no data, no such name), CLI_EXIT_ERROR
 * when no answer came (DNS_TEMPFAIL, a bogus answer) or the resolver could not
 * start, CLI_EXIT_USAGE for an unknown type or an invalid name. */
int cli_dns_lookup(const struct config *cfg, const char *type, const char *name);

#endif
