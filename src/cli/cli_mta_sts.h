/* hermod mta-sts lookup DOMAIN: the MTA-STS policy the queue runner would
 * apply to DOMAIN now (delivery/mta_sts.h), through the config's resolver,
 * [delivery] tls_ca_file and mta_sts_port, and the store's policy cache (which
 * it updates like the runner). For admins and end-to-end tests (docs/cli.md). */
#ifndef HERMOD_CLI_CLI_MTA_STS_H
#define HERMOD_CLI_CLI_MTA_STS_H

struct config;
struct store;

/* Prints the policy ("mode", "id", "max_age", one "mx" line per pattern) and
 * "; REASON", or "; no policy: REASON". CLI_EXIT_OK when a policy applies
 * (mode none included), CLI_EXIT_ERROR when none does or the lookup could not
 * start (one "hermod: " line on stderr). domain is valid (checked by the
 * caller). */
int cli_mta_sts_lookup(const struct config *cfg, struct store *st, const char *domain);

#endif
