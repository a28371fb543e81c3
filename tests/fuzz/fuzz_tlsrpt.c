/* libFuzzer target: the TLSRPT policy record (src/delivery/tlsrpt.c), as a
 * domain publishes it in TXT at _smtp._tls. The input is the TXT data of one
 * or more records, separated by newlines, given both to the record parser
 * (the whole input as one record) and to the selection of RFC 8460 3.1. A
 * parsed record must hold 1..TLSRPT_RUA_MAX URIs of at most TLSRPT_URI_MAX
 * octets, taken from the input, without the characters RFC 8460 3 wants
 * percent-encoded; a mailto address must have a local part and a domain.
 * The input also goes through the report's JSON string escaping: the output
 * must hold no control characters and no invalid UTF-8. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "delivery/tlsrpt.h"

#define FUZZ_RECORDS_MAX 16

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_record(const struct tlsrpt_policy_record *rec, const char *in, size_t len)
{
	if (rec->n < 1 || rec->n > TLSRPT_RUA_MAX)
		abort();
	for (size_t k = 0; k < rec->n; k++) {
		const struct tlsrpt_rua *r = &rec->rua[k];
		size_t n = strnlen(r->uri, sizeof(r->uri));
		if (n == 0 || n > TLSRPT_URI_MAX || memmem(in, len, r->uri, n) == NULL ||
		    strpbrk(r->uri, ",!; \t") != NULL)
			abort();
		if (r->scheme == TLSRPT_MAILTO) {
			const char *at = strrchr(r->addr, '@');
			if (at == NULL || at == r->addr || at[1] == '\0' ||
			    strnlen(r->addr, sizeof(r->addr)) > n || strchr(r->addr, ',') != NULL)
				abort();
		} else if (r->scheme != TLSRPT_HTTPS || r->addr[0] != '\0') {
			abort();
		}
	}
}

/* Valid UTF-8 (RFC 3629) without octets below 0x20. */
static void check_json(const unsigned char *s, size_t len)
{
	for (size_t i = 0; i < len;) {
		unsigned char c = s[i];
		size_t n = c < 0x80                 ? 1
		           : c >= 0xc2 && c <= 0xdf ? 2
		           : c >= 0xe0 && c <= 0xef ? 3
		           : c >= 0xf0 && c <= 0xf4 ? 4
		                                    : 0;
		if (c < 0x20 || n == 0 || i + n > len)
			abort();
		uint32_t cp = n == 1 ? c : c & (0x7f >> n);
		for (size_t k = 1; k < n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				abort();
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
		if (cp < min[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			abort();
		i += n;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tlsrpt_policy_record rec;
	struct dns_txt txt[FUZZ_RECORDS_MAX];
	const char *error;
	size_t n = 0, start = 0;
	char *copy;

	if (size > 8192)
		return 0;
	/* exactly size octets, so that a read past the end is caught */
	copy = malloc(size > 0 ? size : 1);
	if (copy == NULL)
		return 0;
	memcpy(copy, data, size);
	int r = tlsrpt_record_parse(copy, size, &rec, &error);
	if (r == 1)
		check_record(&rec, copy, size);
	else if ((r == 0) != (error == NULL) || (r != 0 && r != -1))
		abort();

	for (size_t i = 0; i <= size && n < FUZZ_RECORDS_MAX; i++)
		if (i == size || copy[i] == '\n') {
			txt[n].data = copy + start;
			txt[n].len = i - start;
			n++;
			start = i + 1;
		}
	r = tlsrpt_policy_select(txt, n, &rec, &error);
	if (r == 1)
		check_record(&rec, copy, size);
	else if (r != 0 || error == NULL)
		abort();
	free(copy);

	/* the JSON string escaping, on the input as a NUL-terminated string */
	char *str = malloc(size + 1);
	if (str == NULL)
		return 0;
	memcpy(str, data, size);
	str[size] = '\0';
	struct tlsrpt_policy p = {.type = TLSRPT_POLICY_NONE, .domain = str};
	struct tlsrpt_report rep = {.organization_name = str,
	                            .contact_info = "c",
	                            .report_id = "i",
	                            .policies = &p,
	                            .n_policies = 1};
	struct buf b;
	buf_init(&b, 0);
	if (tlsrpt_report_json(&rep, &b) != 1)
		abort();
	check_json((const unsigned char *)b.data, b.len);
	buf_free(&b);
	free(str);
	return 0;
}
