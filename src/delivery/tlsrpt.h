/* SMTP TLS Reporting (RFC 8460), the pure parts: the reporting policy a
 * domain publishes in DNS (TXT at _smtp._tls.DOMAIN), the JSON aggregate
 * report, and its gzip form. No I/O: the caller looks up the TXT records,
 * counts the sessions, and sends the result (mail or HTTPS POST). */
#ifndef HERMOD_DELIVERY_TLSRPT_H
#define HERMOD_DELIVERY_TLSRPT_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "core/buf.h"
#include "dns/dns.h"

/* --- the reporting policy (RFC 8460 3) --- */

/* rua URIs kept from one record (later ones are ignored: the RFC sets no
 * limit, and one place to send a report to is enough) */
#define TLSRPT_RUA_MAX 4
/* octets of one URI as written in the record; a longer one is skipped */
#define TLSRPT_URI_MAX 512

enum tlsrpt_scheme {
	TLSRPT_MAILTO = 1, /* mail the report to .addr (RFC 8460 5.3) */
	TLSRPT_HTTPS,      /* POST it to .uri (RFC 8460 5.4) */
};

struct tlsrpt_rua {
	enum tlsrpt_scheme scheme;
	/* the URI as in the record (scheme included), NUL-terminated */
	char uri[TLSRPT_URI_MAX + 1];
	/* mailto: the address (the URI's "to", percent-decoded: local@domain,
	 * no comma, no control characters); "" for https */
	char addr[TLSRPT_URI_MAX + 1];
};

struct tlsrpt_policy_record {
	size_t n; /* 1..TLSRPT_RUA_MAX when the parse succeeded */
	struct tlsrpt_rua rua[TLSRPT_RUA_MAX];
};

/* Parses one TXT record (its character-strings joined) against the ABNF of
 * RFC 8460 3, strictly: "v=TLSRPTv1" first, fields separated by *WSP ";"
 * *WSP, an optional ";" at the end, exactly one "rua=" field with URIs
 * separated by *WSP "," *WSP, extensions (name=value) checked and ignored.
 * URIs: RFC 3986 characters only, with ',', '!' and ';' percent-encoded
 * (RFC 8460 3); schemes other than mailto and https, and URIs longer than
 * TLSRPT_URI_MAX, are skipped; a mailto URI must name one address.
 * Returns 1 ok (rec_r filled), 0 when txt does not begin with "v=TLSRPTv1"
 * then a field delimiter (not a TLSRPT record), -1 when it does but is
 * invalid or gives no usable URI (*error_r, a static string, says why). txt
 * need not be NUL-terminated and may hold NULs (which are invalid). */
int tlsrpt_record_parse(const char *txt, size_t len, struct tlsrpt_policy_record *rec_r,
                        const char **error_r);

/* RFC 8460 3.1 on all TXT records of a _smtp._tls lookup: records that are
 * not TLSRPT records are discarded; exactly one must remain, and be valid.
 * Returns 1 ok (rec_r), 0 when the domain publishes no (usable) TLSRPT
 * policy (*error_r says why, a static string: "no TLSRPT record", "2 TLSRPT
 * records", or the parse error). */
int tlsrpt_policy_select(const struct dns_txt *txt, size_t n, struct tlsrpt_policy_record *rec_r,
                         const char **error_r);

/* --- the report (RFC 8460 4) --- */

enum tlsrpt_policy_type {
	TLSRPT_POLICY_TLSA = 1, /* "tlsa": DANE (RFC 7672) */
	TLSRPT_POLICY_STS,      /* "sts": MTA-STS (RFC 8461) */
	TLSRPT_POLICY_NONE,     /* "no-policy-found" */
};

/* result-type (RFC 8460 4.3) */
enum tlsrpt_result {
	/* 4.3.1 negotiation failures */
	TLSRPT_STARTTLS_NOT_SUPPORTED = 1,
	TLSRPT_CERTIFICATE_HOST_MISMATCH,
	TLSRPT_CERTIFICATE_EXPIRED,
	TLSRPT_CERTIFICATE_NOT_TRUSTED,
	TLSRPT_VALIDATION_FAILURE,
	/* 4.3.2 policy failures: DANE */
	TLSRPT_TLSA_INVALID,
	TLSRPT_DNSSEC_INVALID,
	TLSRPT_DANE_REQUIRED,
	/* 4.3.2 policy failures: MTA-STS */
	TLSRPT_STS_POLICY_FETCH_ERROR,
	TLSRPT_STS_POLICY_INVALID,
	TLSRPT_STS_WEBPKI_INVALID,
};

/* "starttls-not-supported" etc.; NULL for a value out of range */
const char *tlsrpt_result_name(enum tlsrpt_result r);
/* "tlsa", "sts", "no-policy-found"; NULL for a value out of range */
const char *tlsrpt_policy_type_name(enum tlsrpt_policy_type t);

/* One failure-details entry. Strings are UTF-8 (invalid sequences come out
 * as U+FFFD); NULL leaves an optional member out. */
struct tlsrpt_failure {
	enum tlsrpt_result result;
	const char *sending_mta_ip;        /* required */
	const char *receiving_mx_hostname; /* optional */
	const char *receiving_mx_helo;     /* optional */
	const char *receiving_ip;          /* optional */
	uint64_t failed_session_count;
	const char *additional_information; /* optional (a URI) */
	const char *failure_reason_code;    /* optional */
};

/* One policies[] entry: the policy applied, its session counts, failures. */
struct tlsrpt_policy {
	enum tlsrpt_policy_type type;
	/* the policy as text: the TLSA records in presentation form, or the
	 * lines of the MTA-STS policy; left out when n_strings is 0 */
	const char *const *strings;
	size_t n_strings;
	const char *domain; /* policy-domain, required */
	/* mx-host: the MX patterns of an MTA-STS policy (or the MX hosts);
	 * left out when n_mx_hosts is 0 */
	const char *const *mx_hosts;
	size_t n_mx_hosts;
	uint64_t successful; /* total-successful-session-count */
	uint64_t failed;     /* total-failure-session-count */
	/* failure-details; left out when n_failures is 0 */
	const struct tlsrpt_failure *failures;
	size_t n_failures;
};

struct tlsrpt_report {
	const char *organization_name; /* required */
	time_t start, end;             /* date-range, UTC */
	const char *contact_info;      /* required */
	const char *report_id;         /* required */
	const struct tlsrpt_policy *policies;
	size_t n_policies;
};

/* Appends the report as JSON (RFC 8259, compact: no whitespace between
 * tokens, members in the order of RFC 8460 4.4) to out. Returns 1 ok, -1
 * when a required string is NULL, an enum is out of range, a date is not
 * representable, or out's maximum is reached (out then holds a partial
 * report: reset it). */
int tlsrpt_report_json(const struct tlsrpt_report *r, struct buf *out);

/* Appends data gzip-compressed (RFC 1952: mtime 0, so the output depends
 * on the input only) to out. Returns 1 ok, -1 on a zlib error or when out's
 * maximum is reached (out unchanged). */
int tlsrpt_gzip(const void *data, size_t len, struct buf *out);

/* The report's file name (RFC 8460 5.3):
 * "SENDER!POLICY-DOMAIN!BEGIN!END[!UNIQUE-ID].json.gz", BEGIN and END in
 * seconds since the epoch. sender and policy_domain are domain names
 * (letters, digits, '-', '.'), unique_id letters and digits, or NULL.
 * Returns 1 ok (out NUL-terminated), -1 when a name breaks those rules, a
 * time is negative, or the result does not fit outlen. */
/* --- days (reports cover one UTC day) --- */

#define TLSRPT_DAY_LEN 10 /* "YYYY-MM-DD" */
/* The UTC day of t as "YYYY-MM-DD" into out (at least TLSRPT_DAY_LEN + 1).
 * 1 ok, -1 when t cannot be represented. */
int tlsrpt_day(time_t t, char *out);
/* The first second (UTC) of day "YYYY-MM-DD"; -1 when day is not one. */
time_t tlsrpt_day_start(const char *day);

int tlsrpt_report_filename(const char *sender, const char *policy_domain, time_t begin, time_t end,
                           const char *unique_id, char *out, size_t outlen);

#endif
