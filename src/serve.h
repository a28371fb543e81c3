/* The protocol registry: which protocol serves each [listen] key, and
 * "hermod serve" / the [listen] part of "hermod check" built on it. net/ knows no
 * protocol; this table is the one place that wires them up. */
#ifndef HERMOD_SERVE_H
#define HERMOD_SERVE_H

struct config;
struct proto_ops;

/* The protocol of a [listen] key; NULL when no protocol implements it (yet). */
const struct proto_ops *serve_proto_for(const char *key);
/* Every [listen] key that is set must have a protocol. 1 ok; -1 with *error_r
 * (malloc'd) "FILE:LINE: [listen] KEY: ..." naming the first one that has none. */
int serve_check(const struct config *cfg, char **error_r);
/* "hermod serve": returns the exit status. */
int serve_main(const char *config_path);

#endif
