/* The daily TLS reports (tlsrpt_send.h). */
#include "delivery/tlsrpt_send.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "core/base64.h"
#include "core/buf.h"
#include "core/log.h"
#include "core/str.h"
#include "core/worker.h"
#include "delivery/https_client.h"
#include "delivery/tlsrpt.h"
#include "dns/dns.h"
#include "store/store.h"

/* A report larger than this (JSON) is not sent: a day of one domain would
 * need more distinct failures than anybody reads. */
#define REPORT_JSON_MAX (8u << 20)
/* RFC 8460 5.4: the POST of a report to an https: address */
#define POST_TIMEOUT 60              /* seconds, the whole exchange */
#define POST_RESPONSE_MAX (64u << 10) /* the response is read up to this, discarded */
#define POST_TYPE "application/tlsrpt+gzip"

enum { F_DAY, F_DOMAIN, F_TYPE, F_POLICY, F_MX, F_RESULT, F_SIP, F_RIP, NFIELDS };

struct row {
	char *f[NFIELDS];
	uint64_t count;
};

struct tlsrpt_send {
	struct tlsrpt_send_params p;
	char *hostname, *before;
	tlsrpt_send_done *done;
	void *ctx;
	struct tlsrpt_send_result res;
	bool cancelled;
	bool job_out;
	struct dns_query *q;
	struct row *rows;
	size_t nrows, cap;
	bool oom;
	size_t gfirst, gend; /* the current group: rows [gfirst, gend) */
	char *ca_file;
	SSL_CTX *ssl;              /* for the POSTs, made when first needed */
	struct group_job *posting; /* the group whose POSTs are out, on the loop */
};

struct group_job {
	struct tlsrpt_send *s;
	struct tlsrpt_policy_record rec;
	bool report; /* send the report (else only delete the counts) */
	bool keep;   /* keep the counts (DNS temporary failure) */
	bool delete_only; /* the second job of a group: the counts go */
	unsigned sent;
	int rc;
	char *error;
	/* https: addresses, posted on the loop after the job (RFC 8460 5.4) */
	struct buf gz;
	size_t next_rua; /* the next address to look at */
	bool post; /* there are https: addresses to post to */
	bool post_failed;
	struct https_request *req;
};

static void group_job_free(struct group_job *j)
{
	if (j == NULL)
		return;
	https_request_cancel(&j->req);
	buf_free(&j->gz);
	free(j->error);
	free(j);
}

static void send_free(struct tlsrpt_send *s)
{
	dns_cancel(&s->q);
	group_job_free(s->posting);
	s->posting = NULL;
	if (s->ssl != NULL)
		SSL_CTX_free(s->ssl);
	free(s->ca_file);
	for (size_t i = 0; i < s->nrows; i++)
		for (int k = 0; k < NFIELDS; k++)
			free(s->rows[i].f[k]);
	free(s->rows);
	free(s->hostname);
	free(s->before);
	free(s);
}

static void send_finish(struct tlsrpt_send *s)
{
	tlsrpt_send_done *done = s->done;
	void *ctx = s->ctx;
	struct tlsrpt_send_result res = s->res;
	send_free(s);
	done(ctx, &res);
}

/* ---- reading the counts ---- */

static void list_row(void *ctx, const struct store_tlsrpt_row *r)
{
	struct tlsrpt_send *s = ctx;
	if (s->oom || s->nrows >= TLSRPT_SEND_ROWS_MAX)
		return;
	if (s->nrows == s->cap) {
		size_t ncap = s->cap == 0 ? 64 : 2 * s->cap;
		struct row *nr = realloc(s->rows, ncap * sizeof(*nr));
		if (nr == NULL) {
			s->oom = true;
			return;
		}
		s->rows = nr;
		s->cap = ncap;
	}
	const char *v[NFIELDS] = {r->day, r->domain, r->policy_type, r->policy,
	                          r->mx,  r->result, r->sending_ip,  r->receiving_ip};
	struct row *row = &s->rows[s->nrows];
	memset(row, 0, sizeof(*row));
	for (int k = 0; k < NFIELDS; k++)
		if ((row->f[k] = strdup(v[k])) == NULL) {
			for (int j = 0; j < k; j++)
				free(row->f[j]);
			s->oom = true;
			return;
		}
	row->count = r->count;
	s->nrows++;
}

struct list_job {
	struct tlsrpt_send *s;
	long rc;
	char *error;
};

static void list_run(void *arg)
{
	struct list_job *j = arg;
	j->rc = store_tlsrpt_list(j->s->p.st, j->s->before, list_row, j->s, &j->error);
}

static void next_group(struct tlsrpt_send *s);

static void list_done(void *arg)
{
	struct list_job *j = arg;
	struct tlsrpt_send *s = j->s;
	s->job_out = false;
	if (s->cancelled) {
		free(j->error);
		free(j);
		send_free(s);
		return;
	}
	if (j->rc < 0 || s->oom) {
		log_warn(NULL, "event=tlsrpt-failed error=\"%s\"",
		         j->rc < 0 && j->error != NULL ? j->error : "out of memory");
		s->res.failed++;
		free(j->error);
		free(j);
		send_finish(s);
		return;
	}
	free(j->error);
	free(j);
	s->gfirst = s->gend = 0;
	next_group(s);
}

/* ---- one report ---- */

static bool same_group(const struct row *a, const struct row *b)
{
	return strcmp(a->f[F_DAY], b->f[F_DAY]) == 0 && strcmp(a->f[F_DOMAIN], b->f[F_DOMAIN]) == 0;
}

static bool same_policy(const struct row *a, const struct row *b)
{
	return strcmp(a->f[F_TYPE], b->f[F_TYPE]) == 0 &&
	       strcmp(a->f[F_POLICY], b->f[F_POLICY]) == 0;
}

static enum tlsrpt_policy_type type_of(const char *name)
{
	if (strcmp(name, "tlsa") == 0)
		return TLSRPT_POLICY_TLSA;
	if (strcmp(name, "sts") == 0)
		return TLSRPT_POLICY_STS;
	return TLSRPT_POLICY_NONE;
}

static enum tlsrpt_result result_of(const char *name)
{
	for (int r = TLSRPT_STARTTLS_NOT_SUPPORTED; r <= TLSRPT_STS_WEBPKI_INVALID; r++) {
		const char *n = tlsrpt_result_name((enum tlsrpt_result)r);
		if (n != NULL && strcmp(n, name) == 0)
			return (enum tlsrpt_result)r;
	}
	return TLSRPT_VALIDATION_FAILURE;
}

/* Splits s at LF into a NULL-free array of pointers into a copy (*copy_r). */
static int split_lines(const char *s, char **copy_r, const char ***v_r, size_t *n_r)
{
	*copy_r = NULL;
	*v_r = NULL;
	*n_r = 0;
	if (s[0] == '\0')
		return 1;
	char *c = strdup(s);
	size_t n = 1;
	for (const char *p = s; *p != '\0'; p++)
		n += *p == '\n';
	const char **v = calloc(n, sizeof(*v));
	if (c == NULL || v == NULL) {
		free(c);
		free(v);
		return -1;
	}
	size_t i = 0;
	for (char *p = c, *nl; p != NULL; p = nl != NULL ? nl + 1 : NULL) {
		nl = strchr(p, '\n');
		if (nl != NULL)
			*nl = '\0';
		v[i++] = p;
	}
	*copy_r = c;
	*v_r = v;
	*n_r = i;
	return 1;
}

/* The JSON of the rows [first, end) of one day and domain. */
static int report_json(const struct tlsrpt_send *s, size_t first, size_t end, time_t start,
                       const char *report_id, struct buf *out)
{
	size_t n = end - first;
	struct tlsrpt_policy *pol = calloc(n, sizeof(*pol));
	struct tlsrpt_failure *fail = calloc(n, sizeof(*fail));
	/* room for every row's MX host, and every MTA-STS policy's patterns */
	size_t mx_cap = n;
	for (size_t i = first; i < end; i++)
		if (type_of(s->rows[i].f[F_TYPE]) == TLSRPT_POLICY_STS)
			for (const char *q = s->rows[i].f[F_POLICY];
			     (q = strstr(q, "mx: ")) != NULL; q++)
				mx_cap++;
	const char **mx = calloc(mx_cap, sizeof(*mx));
	char **copies = calloc(n, sizeof(*copies));
	size_t npol = 0, nfail = 0, nmx = 0;
	char contact[300];
	int rc = -1;

	if (pol == NULL || fail == NULL || mx == NULL || copies == NULL)
		goto out;
	snprintf(contact, sizeof(contact), "postmaster@%s", s->hostname);
	/* policies in row order (rows are sorted by type and policy): a new one
	 * where the type or the policy changes */
	size_t pstart = first;
	for (size_t i = first; i <= end; i++) {
		if (i < end && (i == pstart || same_policy(&s->rows[pstart], &s->rows[i])))
			continue;
		/* rows [pstart, i) are one policy */
		struct tlsrpt_policy *p = &pol[npol];
		const struct row *r0 = &s->rows[pstart];
		p->type = type_of(r0->f[F_TYPE]);
		p->domain = r0->f[F_DOMAIN];
		const char **strv;
		size_t nstr;
		if (split_lines(r0->f[F_POLICY], &copies[npol], &strv, &nstr) < 0)
			goto out;
		p->strings = strv;
		p->n_strings = nstr;
		p->mx_hosts = &mx[nmx];
		p->failures = &fail[nfail];
		/* mx-host (RFC 8460 4.4): an MTA-STS policy's patterns, else the MX
		 * hosts the sessions went to */
		for (size_t k = 0; p->type == TLSRPT_POLICY_STS && k < nstr && nmx < mx_cap; k++)
			if (strncmp(strv[k], "mx: ", 4) == 0) {
				mx[nmx++] = strv[k] + 4;
				p->n_mx_hosts++;
			}
		for (size_t j = pstart; j < i; j++) {
			const struct row *r = &s->rows[j];
			if (r->f[F_MX][0] != '\0' && p->type != TLSRPT_POLICY_STS) {
				bool seen = false;
				for (size_t m = 0; m < p->n_mx_hosts; m++)
					seen |= strcmp(p->mx_hosts[m], r->f[F_MX]) == 0;
				if (!seen && nmx < mx_cap) {
					mx[nmx++] = r->f[F_MX];
					p->n_mx_hosts++;
				}
			}
			if (r->f[F_RESULT][0] == '\0') {
				p->successful += r->count;
				continue;
			}
			p->failed += r->count;
			fail[nfail++] = (struct tlsrpt_failure){
			    .result = result_of(r->f[F_RESULT]),
			    .sending_mta_ip = r->f[F_SIP],
			    .receiving_mx_hostname = r->f[F_MX][0] != '\0' ? r->f[F_MX] : NULL,
			    .receiving_ip = r->f[F_RIP][0] != '\0' ? r->f[F_RIP] : NULL,
			    .failed_session_count = r->count,
			};
			p->n_failures++;
		}
		npol++;
		pstart = i;
	}
	struct tlsrpt_report rep = {
	    .organization_name = s->hostname,
	    .start = start,
	    .end = start + 86400 - 1,
	    .contact_info = contact,
	    .report_id = report_id,
	    .policies = pol,
	    .n_policies = npol,
	};
	rc = tlsrpt_report_json(&rep, out);
out:
	for (size_t i = 0; i < npol; i++)
		free((void *)pol[i].strings);
	for (size_t i = 0; copies != NULL && i < n; i++)
		free(copies[i]);
	free(copies);
	free(pol);
	free(fail);
	free(mx);
	return rc;
}

/* The whole report message (RFC 8460 5.3). */
static int report_message(const struct tlsrpt_send *s, const char *day, const char *domain,
                          const char *to, const struct buf *gz, time_t start, const char *report_id,
                          struct buf *out)
{
	char fname[600], boundary[64], date[64], msgid[300];
	unsigned char rnd[12];
	if (tlsrpt_report_filename(s->hostname, domain, start, start + 86400 - 1, NULL, fname,
	                           sizeof(fname)) < 0)
		return -1;
	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		return -1;
	char hex[2 * sizeof(rnd) + 1];
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(hex + 2 * i, 3, "%02x", rnd[i]);
	snprintf(boundary, sizeof(boundary), "=_tlsrpt_%s", hex);
	snprintf(msgid, sizeof(msgid), "<tlsrpt.%s.%s@%s>", day, hex, s->hostname);
	time_t now = time(NULL);
	struct tm tm;
	if (gmtime_r(&now, &tm) == NULL ||
	    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm) == 0)
		return -1;
	char *b64 = NULL;
	if (base64_encode((const unsigned char *)gz->data, gz->len, &b64) < 0)
		return -1;
	int rc =
	    buf_printf(out,
	               "From: TLS reports <noreply-tlsrpt@%s>\r\n"
	               "To: <%s>\r\n"
	               "Subject: Report Domain: %s Submitter: %s Report-ID: <%s>\r\n"
	               "Date: %s\r\n"
	               "Message-ID: %s\r\n"
	               "TLS-Report-Domain: %s\r\n"
	               "TLS-Report-Submitter: %s\r\n"
	               "Auto-Submitted: auto-generated\r\n"
	               "MIME-Version: 1.0\r\n"
	               "Content-Type: multipart/report; report-type=\"tlsrpt\";\r\n"
	               "\tboundary=\"%s\"\r\n"
	               "\r\n"
	               "--%s\r\n"
	               "Content-Type: text/plain; charset=us-ascii\r\n"
	               "\r\n"
	               "This is the aggregate TLS report (RFC 8460) of %s for the mail it\r\n"
	               "sent to %s on %s (UTC).\r\n"
	               "\r\n"
	               "--%s\r\n"
	               "Content-Type: application/tlsrpt+gzip\r\n"
	               "Content-Transfer-Encoding: base64\r\n"
	               "Content-Disposition: attachment;\r\n"
	               "\tfilename=\"%s\"\r\n"
	               "\r\n",
	               s->hostname, to, domain, s->hostname, report_id, date, msgid, domain,
	               s->hostname, boundary, boundary, s->hostname, domain, day, boundary, fname);
	/* base64 in lines of 76 (RFC 2045 6.8) */
	size_t bl = strlen(b64);
	for (size_t i = 0; rc > 0 && i < bl; i += 76) {
		size_t n = bl - i < 76 ? bl - i : 76;
		if (buf_append(out, b64 + i, n) < 0 || buf_append(out, "\r\n", 2) < 0)
			rc = -1;
	}
	free(b64);
	if (rc > 0)
		rc = buf_printf(out, "\r\n--%s--\r\n", boundary);
	return rc;
}

/* Stores the report for one address: into the local accounts it reaches
 * (with Return-Path: <>), else into the outbound queue from <>. */
static int report_deliver(struct tlsrpt_send *s, const char *to, const struct buf *msg,
                          char **error_r)
{
	char **accounts = NULL;
	int local = store_resolve_recipient(s->p.st, to, &accounts, error_r);
	if (local < 0)
		return -1;
	static const char rp[] = "Return-Path: <>\r\n";
	struct buf whole;
	buf_init(&whole, 0);
	int rc = -1;
	struct store_delivery d = {0};
	const char *rcpt[1] = {to};
	if (local > 0) {
		if (buf_append(&whole, rp, sizeof(rp) - 1) < 0 ||
		    buf_append(&whole, msg->data, msg->len) < 0)
			goto out;
		size_t nacc = 0;
		while (accounts[nacc] != NULL)
			nacc++;
		d.accounts = (const char *const *)accounts;
		d.naccounts = nacc;
		d.data = whole.data;
		d.len = whole.len;
		d.trace_len = sizeof(rp) - 1;
	} else {
		d.queue_sender = "";
		d.queue_rcpts = rcpt;
		d.nqueue_rcpts = 1;
		d.data = msg->data;
		d.len = msg->len;
	}
	rc = store_deliver(s->p.st, &d, NULL, error_r);
out:
	buf_free(&whole);
	store_strv_free(&accounts);
	return rc;
}

static void group_run(void *arg)
{
	struct group_job *j = arg;
	struct tlsrpt_send *s = j->s;
	const struct row *r0 = &s->rows[s->gfirst];
	j->rc = 1;
	if (j->keep)
		return;
	bool https = false;
	if (j->report && !j->delete_only) {
		time_t start = tlsrpt_day_start(r0->f[F_DAY]);
		if (start < 0) {
			j->rc = -1;
			j->error = strdup("bad day in the counts");
			return;
		}
		char report_id[400];
		snprintf(report_id, sizeof(report_id), "%sT00:00:00Z.%s@%s", r0->f[F_DAY],
		         r0->f[F_DOMAIN], s->hostname);
		struct buf json, msg;
		buf_init(&json, REPORT_JSON_MAX);
		buf_init(&msg, 0);
		if (report_json(s, s->gfirst, s->gend, start, report_id, &json) < 0 ||
		    tlsrpt_gzip(json.data, json.len, &j->gz) < 0) {
			j->rc = -1;
			j->error = strdup("cannot build the report (too large, or out of memory)");
		}
		for (size_t i = 0; j->rc > 0 && i < j->rec.n; i++) {
			const struct tlsrpt_rua *u = &j->rec.rua[i];
			if (u->scheme != TLSRPT_MAILTO) {
				https = true; /* posted on the loop (group_done) */
				continue;
			}
			buf_reset(&msg);
			if (report_message(s, r0->f[F_DAY], r0->f[F_DOMAIN], u->addr, &j->gz, start,
			                   report_id, &msg) < 0) {
				j->rc = -1;
				j->error = strdup("cannot build the report message");
				break;
			}
			if (report_deliver(s, u->addr, &msg, &j->error) < 0) {
				j->rc = -1;
				break;
			}
			j->sent++;
		}
		buf_free(&json);
		buf_free(&msg);
		j->post = https && j->rc > 0;
		if (j->rc < 0 || https)
			return; /* the counts stay until the POSTs are done */
		buf_free(&j->gz);
	}
	if (store_tlsrpt_delete(s->p.st, r0->f[F_DAY], r0->f[F_DOMAIN], &j->error) < 0)
		j->rc = -1;
}

static void group_submit_job(struct tlsrpt_send *s, struct group_job *j);
static void post_next(struct tlsrpt_send *s, struct group_job *j);

/* The group is over: counted, the next one. */
static void group_end(struct tlsrpt_send *s, struct group_job *j)
{
	const struct row *r0 = &s->rows[s->gfirst];
	if (j->rc < 0 || j->post_failed) {
		if (j->rc < 0)
			log_warn(NULL, "event=tlsrpt-failed day=%s domain=%s error=\"%s\"",
			         r0->f[F_DAY], r0->f[F_DOMAIN], j->error != NULL ? j->error : "?");
		s->res.failed++;
		s->res.reports += j->sent; /* those did go */
	} else if (j->report) {
		log_info(NULL, "event=tlsrpt-sent day=%s domain=%s reports=%u", r0->f[F_DAY],
		         r0->f[F_DOMAIN], j->sent);
		s->res.reports += j->sent;
	}
	group_job_free(j);
	next_group(s);
}

static void group_done(void *arg)
{
	struct group_job *j = arg;
	struct tlsrpt_send *s = j->s;
	s->job_out = false;
	if (s->cancelled) {
		group_job_free(j);
		send_free(s);
		return;
	}
	if (j->rc > 0 && j->post && !j->delete_only) {
		/* the report is built, the mailto: copies are out: the POSTs,
		 * one after the other, on this loop */
		s->posting = j;
		post_next(s, j);
		return;
	}
	group_end(s, j);
}

static void post_done(void *ctx, const struct https_response *res)
{
	struct group_job *j = ctx;
	struct tlsrpt_send *s = j->s;
	const struct row *r0 = &s->rows[s->gfirst];
	const struct tlsrpt_rua *u = &j->rec.rua[j->next_rua];
	j->req = NULL;
	/* RFC 8460 5.4: a 2xx answer is success; redirects are not followed */
	if (res->error == NULL && res->status >= 200 && res->status <= 299) {
		log_info(NULL, "event=tlsrpt-posted day=%s domain=%s uri=\"%s\" status=%d",
		         r0->f[F_DAY], r0->f[F_DOMAIN], u->uri, res->status);
		j->sent++;
	} else {
		char st[32];
		snprintf(st, sizeof(st), "HTTP status %d", res->status);
		log_warn(NULL, "event=tlsrpt-failed day=%s domain=%s uri=\"%s\" error=\"%s\"",
		         r0->f[F_DAY], r0->f[F_DOMAIN], u->uri,
		         res->error != NULL ? res->error : st);
		j->post_failed = true;
	}
	j->next_rua++;
	post_next(s, j);
}

/* Posts to the next https: address of j, or, when all are done, removes the
 * counts (all went) or keeps them (one failed). */
static void post_next(struct tlsrpt_send *s, struct group_job *j)
{
	const struct row *r0 = &s->rows[s->gfirst];
	for (; j->next_rua < j->rec.n; j->next_rua++) {
		const struct tlsrpt_rua *u = &j->rec.rua[j->next_rua];
		if (u->scheme != TLSRPT_HTTPS)
			continue;
		char host[HTTPS_HOST_MAX + 1], path[HTTPS_PATH_MAX + 1];
		unsigned port = 0;
		char *err = NULL;
		if (https_uri_parse(u->uri, host, &port, path) < 0) {
			err = strdup("not a usable https URI");
		} else if (s->ssl == NULL && (s->ssl = https_ssl_ctx_new(s->ca_file, &err)) == NULL) {
			/* err says why */
		} else {
			struct https_request_params hp = {
			    .base = s->p.base,
			    .dns = s->p.dns,
			    .ssl_ctx = s->ssl,
			    .host = host,
			    .port = port,
			    .path = path,
			    .method = "POST",
			    .content_type = POST_TYPE,
			    .body = j->gz.data,
			    .body_len = j->gz.len,
			    .timeout = POST_TIMEOUT,
			    .max_body = POST_RESPONSE_MAX,
			};
			if (https_request_start(&hp, post_done, j, &j->req, &err) > 0)
				return; /* post_done goes on */
		}
		log_warn(NULL, "event=tlsrpt-failed day=%s domain=%s uri=\"%s\" error=\"%s\"",
		         r0->f[F_DAY], r0->f[F_DOMAIN], u->uri, err != NULL ? err : "?");
		free(err);
		j->post_failed = true;
	}
	s->posting = NULL;
	buf_free(&j->gz);
	if (j->post_failed) {
		group_end(s, j); /* counted as failed: the counts stay for the next run */
		return;
	}
	j->delete_only = true;
	group_submit_job(s, j);
}

/* Hands j to the pool (group_run, then group_done); counted as failed when
 * it cannot. */
static void group_submit_job(struct tlsrpt_send *s, struct group_job *j)
{
	s->job_out = true;
	if (worker_pool_submit(s->p.pool, s->p.inbox, group_run, group_done, j) < 0) {
		s->job_out = false;
		j->rc = -1;
		free(j->error);
		j->error = strdup("out of memory");
		group_end(s, j);
	}
}

static void group_submit(struct tlsrpt_send *s, const struct tlsrpt_policy_record *rec, bool report,
                         bool keep)
{
	struct group_job *j = calloc(1, sizeof(*j));
	if (j == NULL) {
		s->res.failed++;
		next_group(s);
		return;
	}
	j->s = s;
	buf_init(&j->gz, 0);
	if (rec != NULL)
		j->rec = *rec;
	j->report = report;
	j->keep = keep;
	group_submit_job(s, j);
}

/* The day before `before` by TLSRPT_SEND_KEEP_DAYS or more. */
static bool too_old(const char *day, const char *before)
{
	time_t a = tlsrpt_day_start(day), b = tlsrpt_day_start(before);
	return a < 0 || b < 0 || b - a >= (time_t)TLSRPT_SEND_KEEP_DAYS * 86400;
}

static void on_txt(void *ctx, const struct dns_answer *a)
{
	struct tlsrpt_send *s = ctx;
	s->q = NULL;
	const struct row *r0 = &s->rows[s->gfirst];
	struct tlsrpt_policy_record rec;
	const char *why = NULL;
	if (a->status == DNS_TEMPFAIL) {
		bool drop = too_old(r0->f[F_DAY], s->before);
		log_info(NULL, "event=tlsrpt-deferred day=%s domain=%s reason=\"%s\"%s",
		         r0->f[F_DAY], r0->f[F_DOMAIN],
		         a->why != NULL ? a->why : "DNS temporary failure",
		         drop ? " dropped=yes" : "");
		s->res.deferred += !drop;
		group_submit(s, NULL, false, !drop);
		return;
	}
	if (a->status == DNS_OK && tlsrpt_policy_select(a->txt, a->n, &rec, &why) > 0) {
		group_submit(s, &rec, true, false);
		return;
	}
	s->res.no_policy++;
	group_submit(s, NULL, false, false);
}

static void next_group(struct tlsrpt_send *s)
{
	s->gfirst = s->gend;
	if (s->gfirst >= s->nrows) {
		send_finish(s);
		return;
	}
	s->gend = s->gfirst + 1;
	while (s->gend < s->nrows && same_group(&s->rows[s->gfirst], &s->rows[s->gend]))
		s->gend++;
	char name[DNS_NAME_MAX + 16];
	snprintf(name, sizeof(name), "_smtp._tls.%s", s->rows[s->gfirst].f[F_DOMAIN]);
	char *err = NULL;
	if (dns_lookup(s->p.dns, name, DNS_TYPE_TXT, on_txt, s, &s->q, &err) < 0) {
		/* not a name: nobody to report to */
		free(err);
		s->res.no_policy++;
		group_submit(s, NULL, false, false);
	}
}

int tlsrpt_send_start(const struct tlsrpt_send_params *p, tlsrpt_send_done *done, void *ctx,
                      struct tlsrpt_send **s_r, char **error_r)
{
	struct tlsrpt_send *s = calloc(1, sizeof(*s));
	struct list_job *j = calloc(1, sizeof(*j));
	if (s == NULL || j == NULL || (s->hostname = strdup(p->hostname)) == NULL ||
	    (s->before = strdup(p->before)) == NULL) {
		if (s != NULL)
			send_free(s);
		free(j);
		*error_r = strdup("out of memory");
		return -1;
	}
	s->p = *p;
	s->p.hostname = s->hostname;
	s->p.before = s->before;
	if (p->ca_file != NULL && (s->ca_file = strdup(p->ca_file)) == NULL) {
		free(j);
		send_free(s);
		*error_r = strdup("out of memory");
		return -1;
	}
	s->p.ca_file = s->ca_file;
	s->done = done;
	s->ctx = ctx;
	j->s = s;
	s->job_out = true;
	if (worker_pool_submit(p->pool, p->inbox, list_run, list_done, j) < 0) {
		free(j);
		send_free(s);
		*error_r = strdup("out of memory");
		return -1;
	}
	if (s_r != NULL)
		*s_r = s;
	return 1;
}

void tlsrpt_send_cancel(struct tlsrpt_send **sp)
{
	struct tlsrpt_send *s = *sp;
	if (s == NULL)
		return;
	*sp = NULL;
	dns_cancel(&s->q);
	group_job_free(s->posting); /* its POST, if one is out */
	s->posting = NULL;
	if (s->job_out) {
		s->cancelled = true; /* freed by the job's completion */
		return;
	}
	send_free(s);
}
