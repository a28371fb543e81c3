/* hermod configuration: one INI file parsed with libinih.
 * Every key, its type and default is documented in docs/config.md. */
#ifndef HERMOD_CORE_CONFIG_H
#define HERMOD_CORE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONFIG_DEFAULT_PATH "/etc/hermod/hermod.conf"
/* [listen] keys that exist (smtp, submission, submissions, imap, imaps, pop3,
 * pop3s, http) */
#define CONFIG_LISTEN_MAX 8

struct config {
	char *path; /* the file it was loaded from */

	/* [server] */
	char *hostname;  /* default: gethostname() */
	char *data_dir;  /* required */
	char *user;      /* NULL = keep the starting user */
	char *log_level; /* debug|info|warn|error, default info */
	unsigned threads; /* event loops; 0 (default) = one per online core */

	/* [listen]: "host:port" or "[v6]:port"; NULL when empty/absent = off */
	char *listen_smtp;
	char *listen_submission;
	char *listen_submissions;
	char *listen_imap;
	char *listen_imaps;
	char *listen_pop3;
	char *listen_pop3s;
	char *listen_http;
	/* The [listen] keys that are set, in table order: key name, address (points
	 * into the listen_* field above), the line it was set on, and the connection
	 * limit of that listener ([limits] max_connections_<key>). */
	struct config_listen {
		const char *key;
		const char *addr;
		int line;
		unsigned max_connections;
	} listen[CONFIG_LISTEN_MAX];
	unsigned nlisten;

	/* [tls] */
	char *tls_cert;
	char *tls_key;
	char *tls_sni_dir; /* DIR/<server name>/{fullchain,privkey}.pem, or NULL */

	/* [auth] password auth without TLS from 127.0.0.0/8 and ::1; default false */
	bool auth_allow_plaintext_on_loopback;
	unsigned auth_max_failures;   /* failures per IP in the window, default 10 */
	unsigned auth_account_max_failures; /* failures per account in the window, default 50 */
	unsigned auth_failure_window; /* seconds, default 15m */
	unsigned auth_lockout;        /* seconds refused after max_failures, default 15m */
	unsigned auth_max_delay;      /* seconds, cap of the growing delay, default 5 */
	unsigned auth_mechanisms;     /* SASL_MECH_BIT mask (auth/sasl.h), default
	                                 SASL_MECHS_DEFAULT: no SCRAM-SHA-256-PLUS */

	/* [submission] */
	bool submission_require_from_match; /* From: must be the sender's, default yes */
	unsigned submission_rate_limit;     /* recipients per user and hour, default 500; 0 = off */

	/* [limits] */
	uint64_t max_message_size;       /* bytes, default 50M */
	unsigned max_recipients;         /* per transaction, default 100 */
	unsigned max_connections;        /* global, default 1000 */
	unsigned max_connections_per_ip; /* default 20 */
	/* per listener, 0 = default: smtp max_connections minus a quarter (so the
	 * authenticated services keep room), the others max_connections */
	unsigned max_connections_smtp;
	unsigned max_connections_submission;
	unsigned max_connections_submissions;
	unsigned max_connections_pop3;
	unsigned max_connections_pop3s;
	unsigned max_connections_imap;
	unsigned max_connections_imaps;
	unsigned max_errors;             /* protocol errors before 421 + close, default 10 */
	unsigned max_line_length;  /* DATA text line incl. CRLF, default 1000; 0 = unlimited */
	bool strict_line_length;   /* enforce max_line_length on inbound text lines, default no */
	unsigned idle_timeout;     /* seconds waiting for a command, default 300 */
	unsigned command_timeout;  /* seconds for one command line to complete, default 60 */
	unsigned data_timeout;     /* seconds between DATA/BDAT reads, default 600 */
	unsigned message_timeout;  /* seconds for one whole DATA/BDAT transfer, default 1800 */
	unsigned shutdown_timeout; /* seconds SIGTERM waits for transactions, default 30 */

	/* [store] */
	char *store_backend;    /* "sqlite" (default) */
	bool store_fsync;       /* default true; false only for throw-away test instances */
	unsigned store_workers; /* worker threads for blocking work, default 16 */

	/* [delivery] */
	unsigned remote_port; /* default 25 */
	char *smarthost;      /* host:port or NULL */
	char *smarthost_user; /* AUTH to the smarthost (over TLS only), or NULL */
	char *smarthost_password_file; /* its password: the file's first line */
	char *srs_secret; /* key of the SRS hashes of forwarded mail, or NULL: no rewriting */
	char *retry_schedule; /* comma-separated durations, default "5m,15m,30m,1h,2h,4h" */
	unsigned expiry;      /* seconds, default 5d */
	unsigned delay_warning; /* seconds before the sender is told of a delay, default 4h; 0 off */
	char *delivery_source_address;     /* IP literal to bind outbound connections to, or NULL */
	unsigned delivery_max_connections; /* outbound connections at once, default 100 */
	unsigned delivery_max_per_domain;  /* of them to one destination domain, default 10 */
	unsigned delivery_connect_timeout; /* seconds, default 30 */
	/* PEM CA bundle trusted when a peer's certificate must verify (MTA-STS
	 * MX hosts and policy hosts), or NULL: the system's (/etc/ssl/certs) */
	char *delivery_tls_ca_file;
	unsigned mta_sts_port; /* port of MTA-STS policy hosts (HTTPS), default 443; tests */
	bool tls_reports;      /* send daily TLS reports (RFC 8460), default yes */

	/* [dns] */
	char *resolver;         /* IP:port, "recursive", or NULL = /etc/resolv.conf */
	char *dns_trust_anchor; /* DS/DNSKEY file turning DNSSEC validation on, or NULL */

	/* [pop3] */
	unsigned pop3_expire;      /* days, advertised as CAPA EXPIRE; CONFIG_POP3_EXPIRE_NEVER
				      (default) for "never" */
	unsigned pop3_login_delay; /* seconds between two logins of one account, 0 = off (default) */

	/* [imap] */
	unsigned imap_idle_timeout; /* seconds an authenticated session may wait for a
	                               command (IDLE included), default 30m, at least 30m */
};

#define CONFIG_POP3_EXPIRE_NEVER (~0u)

/* Loads and validates path. Returns 1 ok (*cfg_r set), -1 on error with *error_r a
 * malloc'd "FILE:LINE: message" (LINE 0 when the error is not tied to a line, e.g.
 * a missing required key or an unreadable file: "FILE: message"). The first error
 * found is reported (*error_r is NULL only if memory ran out formatting it).
 * A relative data_dir is resolved against the directory holding the config file
 * (made absolute when that directory exists). */
int config_load(const char *path, struct config **cfg_r, char **error_r);
/* Same, parsing text[0..len) (may hold any bytes, need not be NUL-terminated);
 * name is used in error messages, as cfg->path and to resolve a relative data_dir. */
int config_load_string(const char *name, const char *text, size_t len, struct config **cfg_r,
                       char **error_r);
void config_free(struct config **cfg);

/* Value parsers shared with the CLI; return 1 ok, -1 bad syntax/overflow. */
/* "10", "10K", "50M", "1G" -> bytes (1024-based) */
int config_parse_size(const char *s, uint64_t *r);
/* "30", "30s", "5m", "2h", "5d" -> seconds */
int config_parse_duration(const char *s, unsigned *r);
/* yes/no true/false on/off 1/0 */
int config_parse_bool(const char *s, bool *r);

/* Parses a retry schedule "5m, 15m,1h": 1..max positive durations separated by commas
 * (blanks around commas allowed) into out[]. Returns 1 ok (*n_r set), -1 bad. */
#define CONFIG_RETRY_MAX 64
int config_parse_retry_schedule(const char *s, unsigned *out, size_t max, size_t *n_r);

/* Splits "host:port" / "[v6]:port" (port 1-65535; host a name or IPv4 literal, or an
 * IPv6 literal in brackets, returned without them). Returns 1 ok, -1 bad or out of
 * memory. host_r may be NULL (validate only); else *host_r is malloc'd on success and
 * NULL on failure. */
int config_parse_hostport(const char *s, char **host_r, unsigned *port_r);

/* Resolves the config path: explicit (non-NULL) wins, then $HERMOD_CONFIG, then default. */
const char *config_default_path(const char *explicit_path);

#endif
