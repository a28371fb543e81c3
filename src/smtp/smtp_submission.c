/* Submission (RFC 6409) checks of a message before delivery, on a worker. The
 * session scanned the header section while the message was written to the
 * message writer (mail_header_scan, fed by smtp_tx_flush from the end of our
 * trace fields, bounded by SMTP_HEADER_MAX), so nothing is read back here: the
 * From: values the scan kept are checked against the authenticated user's
 * addresses, and Date: and Message-ID: are added when the scan saw none. */
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

/* Passes the addresses of every From: field the scan found to fc (RFC 5322
 * allows one; a second one must not slip a forged address past the check).
 * With check_owner, an empty or overlong address is not owned; without it only
 * mailboxes are counted. -1 when a field is malformed, else 0. */
static int smtp_from_walk(struct smtp_from_check *fc, const struct mail_header_scan *scan)
{
	size_t pos = 0;
	const char *v;
	size_t vl;
	while (fc->all_owned && mail_header_scan_next_from(scan, &pos, &v, &vl) > 0) {
		if (mail_header_addresses(v, vl, smtp_from_check_cb, fc) < 0)
			return -1;
	}
	return 0;
}

/* RFC 6409 8.1-8.3: an MSA may add a missing Date: and Message-ID:. They go right
 * after our trace fields, as j->insert (the store splices them in: the message is
 * not copied). */
static int smtp_submission_fix_headers(struct smtp_deliver_job *j)
{
	struct smtp_tx *tx = j->tx;
	bool need_date = !tx->header.have_date;
	bool need_id = !tx->header.have_message_id;
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
	/* The header section was scanned as the message was written (the session
	 * fed the scanner): the checks below need nothing else, and the message is
	 * not read back. */
	if (!tx->scan_header) {
		j->error = strdup("the header section was not scanned");
		return -1;
	}
	int hr = mail_header_scan_end(&tx->header);
	if (hr <= 0) {
		if (hr < 0) {
			j->error = strdup("out of memory");
			return -1;
		}
		return -4;
	}
	const struct mail_header_scan *scan = &tx->header;
	struct smtp_from_check fc = {.j = j, .check_owner = false, .all_owned = true};
	int malformed = smtp_from_walk(&fc, scan) < 0;
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
	if (!malformed && fc.mailboxes == 0)
		return -3;
	if (j->require_from_match) {
		fc.check_owner = true;
		if (smtp_from_walk(&fc, scan) < 0 || !fc.all_owned)
			return -2;
	}
	if (smtp_submission_fix_headers(j) < 0) {
		j->error = strdup("out of memory");
		return -1;
	}
	return 1;
}
