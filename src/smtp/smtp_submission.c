/* Submission (RFC 6409) checks of a message before delivery, on a worker: the
 * header section is read back from the message writer, bounded; its From:
 * fields are checked against the authenticated user's addresses; Date: and
 * Message-ID: are added when missing. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mail/header.h"
#include "smtp/smtp_session_int.h"

struct smtp_from_check {
	struct smtp_deliver_job *j;
	bool check_owner; /* [submission] require_from_match */
	bool all_owned;
	unsigned mailboxes; /* non-empty addresses seen in From: fields */
};

static void smtp_from_check_cb(void *ctx, const char *addr, size_t len)
{
	struct smtp_from_check *fc = ctx;
	if (!fc->check_owner) {
		fc->mailboxes += len > 0;
		return;
	}
	if (!fc->all_owned)
		return;
	char *a = strndup(addr, len);
	char *err = NULL;
	int r = a != NULL ? store_account_owns_address(fc->j->store, fc->j->account, a, &err) : -1;
	if (r <= 0)
		fc->all_owned = false;
	free(err);
	free(a);
}

/* RFC 5322 2.2 sets no limit on the header section; the submission checks read
 * at most this much of it (Postfix's header_size_limit is 100 KiB). */

/* Reads the header section of tx's message (after our trace fields, up to and
 * including the empty line that ends it) into *hdr_r (malloc'd, *len_r bytes).
 * 1 ok, 0 the section is longer than SMTP_HEADER_MAX, -1 error. Runs on a worker. */
static int smtp_tx_read_header(struct smtp_tx *tx, char **hdr_r, size_t *len_r, char **error_r)
{
	*hdr_r = NULL;
	*len_r = 0;
	uint64_t size = tx->m != NULL ? store_msg_size(tx->m) : 0;
	if (size < tx->trace_len) {
		*error_r = strdup("message shorter than its trace fields");
		return -1;
	}
	uint64_t rest = size - tx->trace_len;
	size_t want = rest < SMTP_HEADER_MAX ? (size_t)rest : SMTP_HEADER_MAX;
	char *h = malloc(want + 1);
	if (h == NULL) {
		*error_r = strdup("out of memory");
		return -1;
	}
	size_t got = 0;
	while (got < want) {
		long n = store_msg_pread(tx->m, h + got, want - got, tx->trace_len + got);
		if (n <= 0) {
			free(h);
			*error_r = strdup("reading the message back failed");
			return -1;
		}
		got += (size_t)n;
	}
	size_t hlen = mail_header_section_len(h, got);
	bool ends_blank = (got >= 2 && memcmp(h + got - 2, "\n\n", 2) == 0) ||
			  (got >= 3 && memcmp(h + got - 3, "\n\r\n", 3) == 0);
	if (hlen == got && got < rest && !ends_blank) {
		/* no empty line within the bound, and the message goes on */
		free(h);
		return 0;
	}
	*hdr_r = h;
	*len_r = hlen;
	return 1;
}

/* Passes the addresses of every From: field of the header section hdr to fc
 * (RFC 5322 allows one; a second one must not slip a forged address past the
 * check). With check_owner, an empty or overlong address is not owned; without
 * it only mailboxes are counted. -1 when a field is malformed, else 0. */
static int smtp_from_walk(struct smtp_from_check *fc, const char *hdr, size_t hlen)
{
	const char *p = hdr;
	const char *end = hdr + hlen;
	const char *v;
	size_t vl;
	while (fc->all_owned && mail_header_find(p, (size_t)(end - p), "From", &v, &vl) > 0) {
		if (mail_header_addresses(v, vl, smtp_from_check_cb, fc) < 0)
			return -1;
		p = v + vl; /* past this field's line end */
		if (p < end && *p == '\r')
			p++;
		if (p < end && *p == '\n')
			p++;
	}
	return 0;
}

/* RFC 6409 8.1-8.3: an MSA may add a missing Date: and Message-ID:. They go right
 * after our trace fields, as j->insert (the store splices them in: the message is
 * not copied). */
static int smtp_submission_fix_headers(struct smtp_deliver_job *j, const char *hdr,
				       size_t hlen)
{
	struct smtp_tx *tx = j->tx;
	const char *v;
	size_t vl;
	bool need_date = mail_header_find(hdr, hlen, "Date", &v, &vl) == 0;
	bool need_id = mail_header_find(hdr, hlen, "Message-ID", &v, &vl) == 0;
	int r = 1;
	if (need_id)
		r = buf_printf(&j->insert, "Message-ID: <%s@%s>\r\n", tx->id, j->hostname);
	if (r > 0 && need_date) {
		char date[64];
		time_t now = time(NULL);
		struct tm tm;
		gmtime_r(&now, &tm);
		strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
		r = buf_printf(&j->insert, "Date: %s\r\n", date);
	}
	return r < 0 ? -1 : 1;
}

int smtp_submission_check(struct smtp_deliver_job *j)
{
	struct smtp_tx *tx = j->tx;
	/* The header section, read back from the message writer (memory or page
	 * cache), bounded: the checks below need nothing else. */
	char *hdr;
	size_t hlen;
	int hr = smtp_tx_read_header(tx, &hdr, &hlen, &j->error);
	if (hr <= 0)
		return hr < 0 ? -1 : -4;
	struct smtp_from_check fc = {.j = j, .check_owner = false, .all_owned = true};
	int malformed = smtp_from_walk(&fc, hdr, hlen) < 0;
	/* RFC 5322 3.6: a message has one From: field with at least one mailbox.
	 * Without one (no field, "From: <>", an empty group "undisclosed:;") the
	 * message is refused, whatever require_from_match says: RFC 6409 8 lets
	 * an MSA add Date: and Message-ID:, not an author, and inventing one from
	 * the login would hide the client's bug and state an author the user
	 * never wrote. 550 as for the other From: refusal; 5.6.0 (RFC 3463:
	 * something about the content makes it undeliverable) since the fault is
	 * in the message, not in the user's rights. A malformed field is left to
	 * the ownership check (it may hide any address), and let through as
	 * before when ownership is not checked. */
	if (!malformed && fc.mailboxes == 0) {
		free(hdr);
		return -3;
	}
	if (j->require_from_match) {
		fc.check_owner = true;
		if (smtp_from_walk(&fc, hdr, hlen) < 0 || !fc.all_owned) {
			free(hdr);
			return -2;
		}
	}
	int fr = smtp_submission_fix_headers(j, hdr, hlen);
	free(hdr);
	if (fr < 0) {
		j->error = strdup("out of memory");
		return -1;
	}
	return 1;
}
