/* Reference for the header scanner tests (tests/unit/test_header.c and
 * tests/fuzz/fuzz_header.c): what the submission checks decided before the
 * scanner existed, i.e. the header section read back from the whole message
 * (at most max octets of it) and searched with mail_header_section_len and
 * mail_header_find. Both the reference and the scanner result are described
 * as one string, so a test compares them with one memcmp.
 *
 * One difference, on purpose: the read-back took an empty line at offset 0
 * ending exactly at max (max 1 or 2) for "no empty line within max". The
 * scanner does not; with the real bound (SMTP_HEADER_MAX, 256 KiB) such a
 * section cannot occur, so the tests use max >= 3. */
#ifndef HERMOD_TESTS_HEADER_REF_H
#define HERMOD_TESTS_HEADER_REF_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "core/buf.h"
#include "mail/header.h"

static void header_ref_value(struct buf *out, const char *v, size_t vl)
{
	(void)buf_printf(out, " from=%zu:", vl);
	(void)buf_append(out, v, vl);
}

/* The read-back and searches as the submission checks did them on the message
 * after the trace fields (msg, len) with the bound max. */
static void header_ref_describe(const char *msg, size_t len, size_t max, struct buf *out)
{
	size_t got = len < max ? len : max;
	const char *h = msg;
	size_t hlen = mail_header_section_len(h, got);
	bool ends_blank = (got >= 2 && memcmp(h + got - 2, "\n\n", 2) == 0) ||
			  (got >= 3 && memcmp(h + got - 3, "\n\r\n", 3) == 0);
	if (hlen == got && got < len && !ends_blank) {
		(void)buf_append_str(out, "too-large");
		return;
	}
	const char *v;
	size_t vl;
	bool date = mail_header_find(h, hlen, "Date", &v, &vl) == 1;
	bool id = mail_header_find(h, hlen, "Message-ID", &v, &vl) == 1;
	(void)buf_printf(out, "ok len=%zu date=%d id=%d", hlen, date, id);
	const char *p = h, *end = h + hlen;
	while (mail_header_find(p, (size_t)(end - p), "From", &v, &vl) > 0) {
		header_ref_value(out, v, vl);
		p = v + vl;
		if (p < end && *p == '\r')
			p++;
		if (p < end && *p == '\n')
			p++;
	}
}

/* The same description from a scan that mail_header_scan_end returned r for. */
static void header_ref_describe_scan(const struct mail_header_scan *scan, int r, struct buf *out)
{
	if (r == 0) {
		(void)buf_append_str(out, "too-large");
		return;
	}
	if (r < 0) {
		(void)buf_append_str(out, "out-of-memory");
		return;
	}
	(void)buf_printf(out, "ok len=%zu date=%d id=%d", scan->len, scan->have_date,
			 scan->have_message_id);
	size_t pos = 0;
	const char *v;
	size_t vl;
	unsigned n = 0;
	while (mail_header_scan_next_from(scan, &pos, &v, &vl) > 0) {
		header_ref_value(out, v, vl);
		n++;
	}
	if (n != scan->nfrom)
		(void)buf_printf(out, " nfrom=%u", scan->nfrom);
}

/* Scans msg fed in pieces: split[i] octets at a time, cycling (NULL or 0 =
 * one piece). */
static void header_ref_scan(const char *msg, size_t len, size_t max, const size_t *split,
			    size_t nsplit, struct buf *out)
{
	struct mail_header_scan scan;
	mail_header_scan_init(&scan, max);
	size_t off = 0, k = 0;
	while (off < len) {
		size_t n = len - off;
		if (split != NULL && nsplit > 0) {
			size_t want = split[k++ % nsplit];
			if (want > 0 && want < n)
				n = want;
		}
		(void)mail_header_scan_feed(&scan, msg + off, n);
		off += n;
	}
	int r = mail_header_scan_end(&scan);
	header_ref_describe_scan(&scan, r, out);
	mail_header_scan_free(&scan);
}

#endif
