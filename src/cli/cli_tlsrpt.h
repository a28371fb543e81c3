/* hermod tls-report list | send [BEFORE]: the TLS report counts the queue
 * runner keeps (RFC 8460; docs/delivery.md), and the daily reports made now
 * instead of at the runner's next hourly look (docs/cli.md). */
#ifndef HERMOD_CLI_CLI_TLSRPT_H
#define HERMOD_CLI_CLI_TLSRPT_H

struct config;
struct store;

/* Prints every stored count, one line each: DAY DOMAIN TYPE MX RESULT
 * SENDING-IP RECEIVING-IP COUNT ("-" for an empty field). CLI_EXIT_OK, or
 * CLI_EXIT_ERROR. */
int cli_tlsrpt_list(struct store *st);
/* Reports the days before `before` ("YYYY-MM-DD", checked by the caller) and
 * prints "reports N, no policy N, deferred N, failed N". CLI_EXIT_OK when
 * nothing failed. */
int cli_tlsrpt_send(const struct config *cfg, struct store *st, const char *before);

#endif
