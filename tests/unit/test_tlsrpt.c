/* SMTP TLS Reporting (src/delivery/tlsrpt.c): the _smtp._tls TXT record, the
 * JSON report, gzip, the file name. */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "delivery/tlsrpt.h"
#include "unit.h"

static int parse(const char *txt, struct tlsrpt_policy_record *rec, const char **error)
{
	return tlsrpt_record_parse(txt, strlen(txt), rec, error);
}

static void test_record_valid(void)
{
	static const struct {
		const char *txt;
		size_t n;
		const char *uri[TLSRPT_RUA_MAX];
		const char *addr[TLSRPT_RUA_MAX]; /* NULL: https */
	} cases[] = {
	    /* RFC 8460 3 examples */
	    {"v=TLSRPTv1;rua=mailto:reports@example.com",
	     1,
	     {"mailto:reports@example.com"},
	     {"reports@example.com"}},
	    {"v=TLSRPTv1; rua=https://reporting.example.com/v1/tlsrpt",
	     1,
	     {"https://reporting.example.com/v1/tlsrpt"},
	     {NULL}},
	    {"v=TLSRPTv1; rua=mailto:a@b.example,https://r.example/x",
	     2,
	     {"mailto:a@b.example", "https://r.example/x"},
	     {"a@b.example", NULL}},
	    /* *WSP around ',' and ';', a trailing ';' and spaces after it */
	    {"v=TLSRPTv1 ;\trua=mailto:a@b.example ,\t https://r.example ; ",
	     2,
	     {"mailto:a@b.example", "https://r.example"},
	     {"a@b.example", NULL}},
	    {"v=TLSRPTv1;rua=mailto:a@b.example;", 1, {"mailto:a@b.example"}, {"a@b.example"}},
	    /* extensions are checked and ignored, before or after rua */
	    {"v=TLSRPTv1; ext_1=abc:123; rua=mailto:a@b.example; x.y-z=%21\"#",
	     1,
	     {"mailto:a@b.example"},
	     {"a@b.example"}},
	    /* percent-decoding of the address; the query part ignored */
	    {"v=TLSRPTv1;rua=mailto:tls%2Drpt@b.example?subject=x%2Cy",
	     1,
	     {"mailto:tls%2Drpt@b.example?subject=x%2Cy"},
	     {"tls-rpt@b.example"}},
	    /* scheme case-insensitive (RFC 3986 3.1) */
	    {"v=TLSRPTv1;rua=MAILTO:a@b.example,HTTPS://r.example",
	     2,
	     {"MAILTO:a@b.example", "HTTPS://r.example"},
	     {"a@b.example", NULL}},
	    /* other schemes and unusable URIs are skipped */
	    {"v=TLSRPTv1;rua=ftp://x.example,mailto:nobody,mailto:a%2Cb@c.example,"
	     "https:/x,mailto:a@b.example",
	     1,
	     {"mailto:a@b.example"},
	     {"a@b.example"}},
	    /* at most TLSRPT_RUA_MAX kept */
	    {"v=TLSRPTv1;rua=mailto:a@x.example,mailto:b@x.example,mailto:c@x.example,"
	     "mailto:d@x.example,mailto:e@x.example",
	     4,
	     {"mailto:a@x.example", "mailto:b@x.example", "mailto:c@x.example",
	      "mailto:d@x.example"},
	     {"a@x.example", "b@x.example", "c@x.example", "d@x.example"}},
	    /* an extension named "v" is just an extension */
	    {"v=TLSRPTv1;v=TLSRPTv2;rua=https://r.example", 1, {"https://r.example"}, {NULL}},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct tlsrpt_policy_record rec;
		const char *error = "unset";
		int r = parse(cases[i].txt, &rec, &error);
		CHECK(r == 1);
		if (r != 1) {
			fprintf(stderr, "  case %zu: %s (%s)\n", i, cases[i].txt, error);
			continue;
		}
		CHECK(error == NULL);
		CHECK(rec.n == cases[i].n);
		for (size_t k = 0; k < rec.n && k < cases[i].n; k++) {
			CHECK_STR(rec.rua[k].uri, cases[i].uri[k]);
			if (cases[i].addr[k] == NULL) {
				CHECK(rec.rua[k].scheme == TLSRPT_HTTPS);
				CHECK_STR(rec.rua[k].addr, "");
			} else {
				CHECK(rec.rua[k].scheme == TLSRPT_MAILTO);
				CHECK_STR(rec.rua[k].addr, cases[i].addr[k]);
			}
		}
	}
}

static void test_record_invalid(void)
{
	static const struct {
		const char *txt;
		int ret;
		const char *error;
	} cases[] = {
	    /* not TLSRPT records at all */
	    {"", 0, NULL},
	    {"v=spf1 -all", 0, NULL},
	    {"v=TLSRPTv1", 0, NULL},
	    {"v=TLSRPTv1 rua=mailto:a@b.example", 0, NULL},
	    {"v=TLSRPTv10;rua=mailto:a@b.example", 0, NULL},
	    {"v=tlsrptv1;rua=mailto:a@b.example", 0, NULL},
	    {" v=TLSRPTv1;rua=mailto:a@b.example", 0, NULL},
	    /* TLSRPT records, invalid */
	    {"v=TLSRPTv1;", -1, "no fields"},
	    {"v=TLSRPTv1; ", -1, "no fields"},
	    {"v=TLSRPTv1;ext=1", -1, "no rua field"},
	    {"v=TLSRPTv1;RUA=mailto:a@b.example", -1, "no rua field"},
	    {"v=TLSRPTv1;rua=mailto:a@b.example;rua=mailto:c@d.example", -1,
	     "more than one rua field"},
	    {"v=TLSRPTv1;;rua=mailto:a@b.example", -1, "bad field name"},
	    {"v=TLSRPTv1;rua =mailto:a@b.example", -1, "bad field name"},
	    {"v=TLSRPTv1;_x=1;rua=mailto:a@b.example", -1, "bad field name"},
	    {"v=TLSRPTv1;rua=mailto:a@b.example;abcdefghijabcdefghijabcdefghijabc=1", -1,
	     "bad field name"},
	    {"v=TLSRPTv1;rua=mailto:a@b.example;x", -1, "bad field name"},
	    {"v=TLSRPTv1;rua=mailto:a@b.example;x=", -1, "empty extension value"},
	    {"v=TLSRPTv1;rua=mailto:a@b.example;x=a b", -1, "bad character after a field"},
	    {"v=TLSRPTv1;rua=mailto:a@b.example;x=a=b", -1, "bad character after a field"},
	    {"v=TLSRPTv1;rua=mailto:a@b.example ", -1, "whitespace at the end"},
	    {"v=TLSRPTv1;rua=", -1, "empty rua URI"},
	    {"v=TLSRPTv1;rua=mailto:a@b.example,", -1, "empty rua URI"},
	    {"v=TLSRPTv1;rua=mailto:a@b.example,,mailto:c@d.example", -1, "empty rua URI"},
	    /* ',' '!' ';' must be percent-encoded in a URI (RFC 8460 3) */
	    {"v=TLSRPTv1;rua=mailto:a!b@c.example", -1, "invalid character in a rua URI"},
	    {"v=TLSRPTv1;rua=mailto:a@b.example!10m", -1, "invalid character in a rua URI"},
	    {"v=TLSRPTv1;rua=https://r.example/a b", -1, "bad character after a field"},
	    {"v=TLSRPTv1;rua=https://r.example/\"x\"", -1, "invalid character in a rua URI"},
	    {"v=TLSRPTv1;rua=mailto:a%4@b.example", -1, "bad percent-encoding in a rua URI"},
	    {"v=TLSRPTv1;rua=mailto:a@b.example%", -1, "bad percent-encoding in a rua URI"},
	    {"v=TLSRPTv1;rua=a@b.example", -1, "rua URI without a scheme"},
	    {"v=TLSRPTv1;rua=1http://x", -1, "rua URI without a scheme"},
	    /* valid, but nothing to send to */
	    {"v=TLSRPTv1;rua=ftp://x.example", -1, "no usable rua URI (mailto or https)"},
	    {"v=TLSRPTv1;rua=mailto:a@b.example%00", -1, "no usable rua URI (mailto or https)"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct tlsrpt_policy_record rec;
		const char *error = "unset";
		int r = parse(cases[i].txt, &rec, &error);
		CHECK(r == cases[i].ret);
		if (r != cases[i].ret)
			fprintf(stderr, "  case %zu: %s -> %d (%s)\n", i, cases[i].txt, r,
			        error ? error : "NULL");
		if (cases[i].error == NULL)
			CHECK(error == NULL);
		else
			CHECK_STR(error, cases[i].error);
	}

	/* a NUL inside, and a URI longer than TLSRPT_URI_MAX (skipped) */
	struct tlsrpt_policy_record rec;
	const char *error;
	static const char nul[] = "v=TLSRPTv1;rua=mailto:a@b.example\0x";
	CHECK(tlsrpt_record_parse(nul, sizeof(nul) - 1, &rec, &error) == -1);
	CHECK_STR(error, "invalid character in a rua URI");
	char big[2 * TLSRPT_URI_MAX];
	int n = snprintf(big, sizeof(big), "v=TLSRPTv1;rua=https://r.example/");
	memset(big + n, 'a', TLSRPT_URI_MAX);
	big[n + TLSRPT_URI_MAX] = '\0';
	CHECK(parse(big, &rec, &error) == -1);
	CHECK_STR(error, "no usable rua URI (mailto or https)");
	strcpy(big + n + TLSRPT_URI_MAX, ",mailto:a@b.example");
	CHECK(parse(big, &rec, &error) == 1);
	CHECK(rec.n == 1 && rec.rua[0].scheme == TLSRPT_MAILTO);
	/* exactly TLSRPT_URI_MAX octets fit */
	n = snprintf(big, sizeof(big), "v=TLSRPTv1;rua=");
	size_t pre = strlen("https://r.example/");
	memcpy(big + n, "https://r.example/", pre);
	memset(big + n + pre, 'b', TLSRPT_URI_MAX - pre);
	big[n + TLSRPT_URI_MAX] = '\0';
	CHECK(parse(big, &rec, &error) == 1);
	CHECK(rec.n == 1 && strlen(rec.rua[0].uri) == TLSRPT_URI_MAX);
}

static void test_select(void)
{
	struct tlsrpt_policy_record rec;
	const char *error = NULL;
	char a[] = "v=TLSRPTv1; rua=mailto:a@b.example";
	char b[] = "v=spf1 -all";
	char c[] = "v=TLSRPTv1; rua=https://r.example";
	char bad[] = "v=TLSRPTv1; rua=mailto:a!b@c.example";
	struct dns_txt one[] = {{b, strlen(b)}, {a, strlen(a)}};
	struct dns_txt two[] = {{a, strlen(a)}, {b, strlen(b)}, {c, strlen(c)}};
	struct dns_txt none[] = {{b, strlen(b)}};
	struct dns_txt invalid[] = {{bad, strlen(bad)}, {b, strlen(b)}};

	CHECK(tlsrpt_policy_select(one, 2, &rec, &error) == 1);
	CHECK(rec.n == 1);
	CHECK_STR(rec.rua[0].addr, "a@b.example");
	CHECK(tlsrpt_policy_select(two, 3, &rec, &error) == 0);
	CHECK_STR(error, "more than one TLSRPT record");
	CHECK(rec.n == 0);
	CHECK(tlsrpt_policy_select(none, 1, &rec, &error) == 0);
	CHECK_STR(error, "no TLSRPT record");
	CHECK(tlsrpt_policy_select(NULL, 0, &rec, &error) == 0);
	CHECK_STR(error, "no TLSRPT record");
	CHECK(tlsrpt_policy_select(invalid, 2, &rec, &error) == 0);
	CHECK_STR(error, "invalid character in a rua URI");
	CHECK(rec.n == 0);
}

/* The report of RFC 8460 4.8's example (two policies here, one without
 * failures), compact. */
static const char *const sts_lines[] = {"version: STSv1", "mode: testing",
                                        "mx: *.mail.company-y.example", "max_age: 86400"};
static const char *const sts_mx[] = {"*.mail.company-y.example"};
static const char *const tlsa_lines[] = {"_25._tcp.mx.b.example. IN TLSA 3 1 1 abcd"};

static const struct tlsrpt_failure failures[] = {
    {.result = TLSRPT_CERTIFICATE_EXPIRED,
     .sending_mta_ip = "2001:db8:abcd:0012::1",
     .receiving_mx_hostname = "mx1.mail.company-y.example",
     .failed_session_count = 100},
    {.result = TLSRPT_STARTTLS_NOT_SUPPORTED,
     .sending_mta_ip = "2001:db8:abcd:0013::1",
     .receiving_mx_hostname = "mx2.mail.company-y.example",
     .receiving_ip = "203.0.113.56",
     .failed_session_count = 200,
     .additional_information =
         "https://reports.company-x.example/report_info?id=5065427c-23d3#StarttlsNotSupported"},
    {.result = TLSRPT_VALIDATION_FAILURE,
     .sending_mta_ip = "198.51.100.62",
     .receiving_mx_hostname = "mx-backup.mail.company-y.example",
     .receiving_mx_helo = "mx-backup",
     .receiving_ip = "203.0.113.58",
     .failed_session_count = 3,
     .failure_reason_code = "X509_V_ERR_PROOF_OF_POSSESSION"},
};

static const struct tlsrpt_policy policies[] = {
    {.type = TLSRPT_POLICY_STS,
     .strings = sts_lines,
     .n_strings = 4,
     .domain = "company-y.example",
     .mx_hosts = sts_mx,
     .n_mx_hosts = 1,
     .successful = 5326,
     .failed = 303,
     .failures = failures,
     .n_failures = 3},
    {.type = TLSRPT_POLICY_TLSA,
     .strings = tlsa_lines,
     .n_strings = 1,
     .domain = "b.example",
     .successful = 18446744073709551615u},
    {.type = TLSRPT_POLICY_NONE, .domain = "c.example", .successful = 1, .failed = 0},
};

static const char expected_json[] =
    "{\"organization-name\":\"Company-X\","
    "\"date-range\":{\"start-datetime\":\"2016-04-01T00:00:00Z\","
    "\"end-datetime\":\"2016-04-01T23:59:59Z\"},"
    "\"contact-info\":\"sts-reporting@company-x.example\","
    "\"report-id\":\"5065427c-23d3-47ca-b6e0-946ea0e8c4be\","
    "\"policies\":["
    "{\"policy\":{\"policy-type\":\"sts\",\"policy-string\":[\"version: STSv1\",\"mode: "
    "testing\",\"mx: *.mail.company-y.example\",\"max_age: 86400\"],"
    "\"policy-domain\":\"company-y.example\",\"mx-host\":[\"*.mail.company-y.example\"]},"
    "\"summary\":{\"total-successful-session-count\":5326,\"total-failure-session-count\":303},"
    "\"failure-details\":["
    "{\"result-type\":\"certificate-expired\",\"sending-mta-ip\":\"2001:db8:abcd:0012::1\","
    "\"receiving-mx-hostname\":\"mx1.mail.company-y.example\",\"failed-session-count\":100},"
    "{\"result-type\":\"starttls-not-supported\",\"sending-mta-ip\":\"2001:db8:abcd:0013::1\","
    "\"receiving-mx-hostname\":\"mx2.mail.company-y.example\",\"receiving-ip\":\"203.0.113.56\","
    "\"failed-session-count\":200,\"additional-information\":\"https://reports.company-x."
    "example/report_info?id=5065427c-23d3#StarttlsNotSupported\"},"
    "{\"result-type\":\"validation-failure\",\"sending-mta-ip\":\"198.51.100.62\","
    "\"receiving-mx-hostname\":\"mx-backup.mail.company-y.example\","
    "\"receiving-mx-helo\":\"mx-backup\",\"receiving-ip\":\"203.0.113.58\","
    "\"failed-session-count\":3,\"failure-reason-code\":\"X509_V_ERR_PROOF_OF_POSSESSION\"}]},"
    "{\"policy\":{\"policy-type\":\"tlsa\",\"policy-string\":[\"_25._tcp.mx.b.example. IN TLSA "
    "3 1 1 abcd\"],\"policy-domain\":\"b.example\"},"
    "\"summary\":{\"total-successful-session-count\":18446744073709551615,"
    "\"total-failure-session-count\":0}},"
    "{\"policy\":{\"policy-type\":\"no-policy-found\",\"policy-domain\":\"c.example\"},"
    "\"summary\":{\"total-successful-session-count\":1,\"total-failure-session-count\":0}}"
    "]}";

static const struct tlsrpt_report report = {
    .organization_name = "Company-X",
    .start = 1459468800, /* 2016-04-01T00:00:00Z */
    .end = 1459555199,
    .contact_info = "sts-reporting@company-x.example",
    .report_id = "5065427c-23d3-47ca-b6e0-946ea0e8c4be",
    .policies = policies,
    .n_policies = 3,
};

static void test_json(void)
{
	struct buf b;

	buf_init(&b, 0);
	CHECK(tlsrpt_report_json(&report, &b) == 1);
	CHECK_STR(b.data, expected_json);
	CHECK(b.len == strlen(expected_json));
	buf_free(&b);

	/* a maximum just too small, then just enough */
	buf_init(&b, strlen(expected_json) - 1);
	CHECK(tlsrpt_report_json(&report, &b) == -1);
	buf_free(&b);
	buf_init(&b, strlen(expected_json));
	CHECK(tlsrpt_report_json(&report, &b) == 1);
	buf_free(&b);

	/* no policies; a required member missing; enums out of range */
	struct tlsrpt_report r = report;
	r.n_policies = 0;
	buf_init(&b, 0);
	CHECK(tlsrpt_report_json(&r, &b) == 1);
	CHECK_STR(b.data, "{\"organization-name\":\"Company-X\",\"date-range\":{\"start-datetime\":"
	                  "\"2016-04-01T00:00:00Z\",\"end-datetime\":\"2016-04-01T23:59:59Z\"},"
	                  "\"contact-info\":\"sts-reporting@company-x.example\",\"report-id\":"
	                  "\"5065427c-23d3-47ca-b6e0-946ea0e8c4be\",\"policies\":[]}");
	buf_reset(&b);
	r.report_id = NULL;
	CHECK(tlsrpt_report_json(&r, &b) == -1);
	buf_reset(&b);
	struct tlsrpt_policy p = {.type = 0, .domain = "x.example"};
	r = report;
	r.policies = &p;
	r.n_policies = 1;
	CHECK(tlsrpt_report_json(&r, &b) == -1);
	buf_reset(&b);
	p.type = TLSRPT_POLICY_NONE;
	struct tlsrpt_failure f = {.result = TLSRPT_STS_WEBPKI_INVALID + 1, .sending_mta_ip = "x"};
	p.failures = &f;
	p.n_failures = 1;
	CHECK(tlsrpt_report_json(&r, &b) == -1);
	buf_reset(&b);
	f.result = TLSRPT_STS_WEBPKI_INVALID;
	f.sending_mta_ip = NULL;
	CHECK(tlsrpt_report_json(&r, &b) == -1);
	buf_reset(&b);
	f.sending_mta_ip = "192.0.2.1";
	CHECK(tlsrpt_report_json(&r, &b) == 1);
	CHECK(strstr(b.data,
	             "\"failure-details\":[{\"result-type\":\"sts-webpki-invalid\","
	             "\"sending-mta-ip\":\"192.0.2.1\",\"failed-session-count\":0}]") != NULL);
	buf_free(&b);

	CHECK(tlsrpt_result_name(0) == NULL);
	CHECK_STR(tlsrpt_result_name(TLSRPT_DANE_REQUIRED), "dane-required");
	CHECK_STR(tlsrpt_result_name(TLSRPT_TLSA_INVALID), "tlsa-invalid");
	CHECK_STR(tlsrpt_result_name(TLSRPT_DNSSEC_INVALID), "dnssec-invalid");
	CHECK_STR(tlsrpt_result_name(TLSRPT_CERTIFICATE_HOST_MISMATCH),
	          "certificate-host-mismatch");
	CHECK_STR(tlsrpt_result_name(TLSRPT_CERTIFICATE_NOT_TRUSTED), "certificate-not-trusted");
	CHECK_STR(tlsrpt_result_name(TLSRPT_STS_POLICY_FETCH_ERROR), "sts-policy-fetch-error");
	CHECK_STR(tlsrpt_result_name(TLSRPT_STS_POLICY_INVALID), "sts-policy-invalid");
	CHECK(tlsrpt_result_name(TLSRPT_STS_WEBPKI_INVALID + 1) == NULL);
	CHECK(tlsrpt_policy_type_name(0) == NULL);
	CHECK(tlsrpt_policy_type_name(TLSRPT_POLICY_NONE + 1) == NULL);
}

static void test_json_strings(void)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
	    {"plain", "\"plain\""},
	    {"", "\"\""},
	    {"a\"b\\c/d", "\"a\\\"b\\\\c/d\""},
	    {"\b\f\n\r\t\x01\x1f\x7f", "\"\\b\\f\\n\\r\\t\\u0001\\u001f\x7f\""},
	    /* valid UTF-8 as is: é, €, U+10FFFF */
	    {"\xc3\xa9\xe2\x82\xac\xf4\x8f\xbf\xbf", "\"\xc3\xa9\xe2\x82\xac\xf4\x8f\xbf\xbf\""},
	    /* invalid: a lone continuation, overlong, a surrogate, past U+10FFFF,
	     * a truncated sequence */
	    {"a\x80"
	     "b",
	     "\"a\\ufffdb\""},
	    {"\xc0\xaf", "\"\\ufffd\\ufffd\""},
	    {"\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\""},
	    {"\xf4\x90\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\""},
	    {"x\xe2\x82", "\"x\\ufffd\\ufffd\""},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct tlsrpt_policy p = {.type = TLSRPT_POLICY_NONE, .domain = cases[i].in};
		struct tlsrpt_report r = report;
		struct buf b;
		char want[128];
		r.policies = &p;
		r.n_policies = 1;
		buf_init(&b, 0);
		CHECK(tlsrpt_report_json(&r, &b) == 1);
		snprintf(want, sizeof(want), "\"policy-domain\":%s}", cases[i].out);
		CHECK(b.data != NULL && strstr(b.data, want) != NULL);
		if (b.data == NULL || strstr(b.data, want) == NULL)
			fprintf(stderr, "  case %zu: want %s in %s\n", i, want, b.data);
		buf_free(&b);
	}
}

static int gunzip(const struct buf *gz, struct buf *out)
{
	z_stream z;
	unsigned char chunk[4096];
	int rc;

	memset(&z, 0, sizeof(z));
	if (inflateInit2(&z, 15 + 16) != Z_OK)
		return -1;
	z.next_in = (unsigned char *)gz->data;
	z.avail_in = (uInt)gz->len;
	do {
		z.next_out = chunk;
		z.avail_out = sizeof(chunk);
		rc = inflate(&z, Z_NO_FLUSH);
		if (rc != Z_OK && rc != Z_STREAM_END) {
			inflateEnd(&z);
			return -1;
		}
		buf_append(out, chunk, sizeof(chunk) - z.avail_out);
	} while (rc != Z_STREAM_END);
	inflateEnd(&z);
	return z.avail_in == 0 ? 1 : -1;
}

static void test_gzip(void)
{
	struct buf json, gz, back;

	buf_init(&json, 0);
	buf_init(&gz, 0);
	buf_init(&back, 0);
	CHECK(tlsrpt_report_json(&report, &json) == 1);
	CHECK(tlsrpt_gzip(json.data, json.len, &gz) == 1);
	/* RFC 1952: magic, deflate, no flags, mtime 0 */
	CHECK(gz.len > 18 && memcmp(gz.data, "\x1f\x8b\x08\x00\x00\x00\x00\x00", 8) == 0);
	CHECK(gz.len < json.len);
	CHECK(gunzip(&gz, &back) == 1);
	CHECK(back.len == json.len && memcmp(back.data, json.data, json.len) == 0);
	size_t gz_len = gz.len;

	/* appends; the same input gives the same output */
	CHECK(tlsrpt_gzip(json.data, json.len, &gz) == 1);
	CHECK(gz.len == 2 * gz_len && memcmp(gz.data, gz.data + gz_len, gz_len) == 0);
	buf_free(&gz);

	/* empty input: a valid empty member */
	buf_init(&gz, 0);
	buf_reset(&back);
	CHECK(tlsrpt_gzip("", 0, &gz) == 1);
	CHECK(gunzip(&gz, &back) == 1);
	CHECK(back.len == 0);
	buf_free(&gz);

	/* the maximum: one octet short fails and leaves out as it was */
	buf_init(&gz, gz_len + 2);
	buf_append(&gz, "ab", 2);
	CHECK(tlsrpt_gzip(json.data, json.len, &gz) == 1);
	buf_free(&gz);
	buf_init(&gz, gz_len + 1);
	buf_append(&gz, "ab", 2);
	CHECK(tlsrpt_gzip(json.data, json.len, &gz) == -1);
	CHECK(gz.len == 2 && strcmp(gz.data, "ab") == 0);
	buf_free(&gz);

	/* more than one input piece and one output chunk: 3 MiB of noise */
	size_t big_len = 3u << 20;
	unsigned char *big = malloc(big_len);
	CHECK(big != NULL);
	if (big != NULL) {
		uint32_t x = 12345;
		for (size_t i = 0; i < big_len; i++) {
			x = x * 1103515245u + 12345u;
			big[i] = (unsigned char)(x >> 24);
		}
		buf_init(&gz, 0);
		buf_reset(&back);
		CHECK(tlsrpt_gzip(big, big_len, &gz) == 1);
		CHECK(gunzip(&gz, &back) == 1);
		CHECK(back.len == big_len && memcmp(back.data, big, big_len) == 0);
		buf_free(&gz);
		free(big);
	}
	buf_free(&json);
	buf_free(&back);
}

static void test_filename(void)
{
	char out[128];

	/* RFC 8460 5.3's example */
	CHECK(tlsrpt_report_filename("mail.sender.example.com", "recipient.example.com", 1470013207,
	                             1470186007, "001", out, sizeof(out)) == 1);
	CHECK_STR(out, "mail.sender.example.com!recipient.example.com!1470013207!1470186007!001"
	               ".json.gz");
	CHECK(tlsrpt_report_filename("a.example", "b.example", 0, 86400, NULL, out, sizeof(out)) ==
	      1);
	CHECK_STR(out, "a.example!b.example!0!86400.json.gz");
	/* exactly fits, one short */
	size_t n = strlen("a.example!b.example!0!86400.json.gz");
	CHECK(tlsrpt_report_filename("a.example", "b.example", 0, 86400, NULL, out, n + 1) == 1);
	CHECK(tlsrpt_report_filename("a.example", "b.example", 0, 86400, NULL, out, n) == -1);
	CHECK(tlsrpt_report_filename("a!b.example", "b.example", 0, 1, NULL, out, sizeof(out)) ==
	      -1);
	CHECK(tlsrpt_report_filename("a.example", "../b", 0, 1, NULL, out, sizeof(out)) == -1);
	CHECK(tlsrpt_report_filename("", "b.example", 0, 1, NULL, out, sizeof(out)) == -1);
	CHECK(tlsrpt_report_filename("a.example", "b.example", 0, 1, "", out, sizeof(out)) == -1);
	CHECK(tlsrpt_report_filename("a.example", "b.example", 0, 1, "a-1", out, sizeof(out)) ==
	      -1);
	CHECK(tlsrpt_report_filename("a.example", "b.example", -1, 1, NULL, out, sizeof(out)) ==
	      -1);
}

/* UTC days: what the counts are keyed by and the reports cover. */
static void test_days(void)
{
	char d[TLSRPT_DAY_LEN + 1];
	CHECK(tlsrpt_day(0, d) == 1 && strcmp(d, "1970-01-01") == 0);
	CHECK(tlsrpt_day(1764719999, d) == 1 && strcmp(d, "2025-12-02") == 0);
	CHECK(tlsrpt_day_start("2025-12-02") == 1764633600);
	CHECK(tlsrpt_day_start("1970-01-01") == 0);
	static const char *const bad[] = {"",           "2025-12-2",  "2025-13-01",
	                                  "2025-00-10", "2025-12-32", "2025-12-02x",
	                                  "yesterday",  "2025/12/02", "+025-12-02"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK(tlsrpt_day_start(bad[i]) == -1);
}

int main(void)
{
	test_days();
	test_record_valid();
	test_record_invalid();
	test_select();
	test_json();
	test_json_strings();
	test_gzip();
	test_filename();
	return unit_finish("tlsrpt");
}
