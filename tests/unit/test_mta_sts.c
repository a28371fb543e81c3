/* MTA-STS, the pure part (src/delivery/mta_sts.c: TXT record, policy file, mx
 * patterns) and the policy cache of the store (schema v11). */
#include "unit.h"

#include "delivery/mta_sts.h"
#include "dns/dns.h"
#include "store/store.h"

#include <ftw.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- TXT ---- */

static void test_txt(void)
{
	static const struct {
		const char *txt;
		int rc;
		const char *id_or_error;
	} cases[] = {
	    {"v=STSv1; id=20160831085700Z;", 1, "20160831085700Z"},
	    {"v=STSv1; id=20160831085700Z", 1, "20160831085700Z"},
	    {"v=STSv1;id=abc", 1, "abc"},
	    {"v=STSv1 ; id=abc ; ", 1, "abc"},
	    {"v=STSv1;\tid=abc;\t", 1, "abc"},
	    {"v=STSv1; ext=foo; id=a1; x.y-z_w=1:2", 1, "a1"},
	    {"v=STSv1; id=01234567890123456789012345678901", 1, "01234567890123456789012345678901"},
	    /* not STS records: ignored */
	    {"v=spf1 -all", 0, ""},
	    {"v=STSv10; id=abc", 0, ""},
	    {"V=STSv1; id=abc", 0, ""},
	    {" v=STSv1; id=abc", 0, ""},
	    {"", 0, ""},
	    /* STS records, malformed */
	    {"v=STSv1", -1, "TXT record: no id"},
	    {"v=STSv1;", -1, "TXT record: no id"},
	    {"v=STSv1; ext=1", -1, "TXT record: no id"},
	    {"v=STSv1; id=", -1, "TXT record: bad id"},
	    {"v=STSv1; id=012345678901234567890123456789012", -1, "TXT record: bad id"},
	    {"v=STSv1; id=ab-c", -1, "TXT record: bad field"},
	    {"v=STSv1; id=abc; id=def", -1, "TXT record: several ids"},
	    {"v=STSv1 id=abc", -1, "TXT record: ';' expected"},
	    {"v=STSv1; id=abc;;", -1, "TXT record: bad field"},
	    {"v=STSv1; =x; id=abc", -1, "TXT record: bad field"},
	    {"v=STSv1; ext=; id=abc", -1, "TXT record: bad field"},
	    {"v=STSv1; ext=a=b; id=abc", -1, "TXT record: bad field"},
	    {"v=STSv1; id=abc; ext", -1, "TXT record: bad field"},
	};
	char id[MTA_STS_ID_MAX + 1];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *why = NULL;
		int rc = mta_sts_txt_parse(cases[i].txt, strlen(cases[i].txt), id, &why);
		if (rc != cases[i].rc)
			fprintf(stderr, "txt case %zu: %s -> %d\n", i, cases[i].txt, rc);
		CHECK(rc == cases[i].rc);
		if (rc == 1)
			CHECK_STR(id, cases[i].id_or_error);
		else if (rc < 0)
			CHECK_STR(why, cases[i].id_or_error);
		else
			CHECK_STR(id, "");
	}
	/* NUL inside the record */
	const char *why = NULL;
	CHECK(mta_sts_txt_parse("v=STSv1; id=ab\0c", 16, id, &why) == -1);
	/* one octet at a time: every prefix parses without reading past len */
	const char *full = "v=STSv1; ext=foo; id=a1;";
	for (size_t n = 0; n <= strlen(full); n++) {
		char *copy = malloc(n + 1);
		memcpy(copy, full, n);
		int rc = mta_sts_txt_parse(copy, n, id, &why);
		CHECK(rc >= -1 && rc <= 1);
		if (n >= strlen("v=STSv1; ext=foo; id=a1"))
			CHECK(rc == 1);
		free(copy);
	}
	/* too long */
	char big[MTA_STS_TXT_MAX + 20];
	memset(big, 'a', sizeof(big));
	memcpy(big, "v=STSv1; id=a; x=", 17);
	CHECK(mta_sts_txt_parse(big, sizeof(big), id, &why) == -1);
	CHECK_STR(why, "TXT record too long");
}

static void test_txt_select(void)
{
	char a[] = "v=spf1 -all", b[] = "v=STSv1; id=one", c[] = "v=STSv1; id=two",
	     d[] = "v=STSv1; id=";
	struct dns_txt t[3];
	char id[MTA_STS_ID_MAX + 1];
	const char *why = NULL;

	t[0] = (struct dns_txt){a, strlen(a)};
	t[1] = (struct dns_txt){b, strlen(b)};
	CHECK(mta_sts_txt_select(t, 2, id, &why) == 1);
	CHECK_STR(id, "one");
	CHECK(mta_sts_txt_select(t, 1, id, &why) == 0);
	CHECK(mta_sts_txt_select(t, 0, id, &why) == 0);
	t[2] = (struct dns_txt){c, strlen(c)};
	CHECK(mta_sts_txt_select(t, 3, id, &why) == -1);
	CHECK_STR(why, "several STSv1 TXT records");
	CHECK_STR(id, "");
	t[1] = (struct dns_txt){d, strlen(d)};
	CHECK(mta_sts_txt_select(t, 2, id, &why) == -1);
	CHECK_STR(why, "TXT record: bad id");
}

/* ---- policy ---- */

static void test_policy_ok(void)
{
	struct mta_sts_policy pol;
	const char *why = NULL;
	const char *p = "version: STSv1\r\nmode: enforce\r\nmx: mail.Example.COM\r\n"
	                "mx: *.example.net\r\nmx: backupmx.example.com.\r\nmax_age: 604800\r\n";

	CHECK(mta_sts_policy_parse(p, strlen(p), &pol, &why) == 1);
	CHECK(pol.mode == MTA_STS_MODE_ENFORCE);
	CHECK(pol.max_age == 604800);
	CHECK(pol.nmx == 3);
	CHECK_STR(pol.mx[0], "mail.example.com");
	CHECK_STR(pol.mx[1], "*.example.net");
	CHECK_STR(pol.mx[2], "backupmx.example.com");
	CHECK_STR(pol.id, "");

	/* LF, no final line end, extra spaces, unknown keys, repeated fields
	 * (first counts), empty lines */
	p = "version:STSv1\nmode:   testing  \n\nfoo: bar baz\nmax_age: 0\nmode: enforce\n"
	    "x_y.z-1: \xc3\xa9t\xc3\xa9\nmx: a.b\nmax_age: 5";
	CHECK(mta_sts_policy_parse(p, strlen(p), &pol, &why) == 1);
	CHECK(pol.mode == MTA_STS_MODE_TESTING);
	CHECK(pol.max_age == 0);
	CHECK(pol.nmx == 1);

	/* mode none needs no mx */
	p = "version: STSv1\nmode: none\nmax_age: 31557600\n";
	CHECK(mta_sts_policy_parse(p, strlen(p), &pol, &why) == 1);
	CHECK(pol.mode == MTA_STS_MODE_NONE && pol.nmx == 0 && pol.max_age == 31557600);

	/* byte splits do not apply (the body is whole), but every prefix of a
	 * valid policy is parsed within bounds */
	p = "version: STSv1\r\nmode: enforce\r\nmx: m.example\r\nmax_age: 86400\r\n";
	for (size_t n = 0; n <= strlen(p); n++) {
		char *copy = malloc(n + 1);
		memcpy(copy, p, n);
		int rc = mta_sts_policy_parse(copy, n, &pol, &why);
		CHECK(rc == 1 || rc == -1);
		if (n >= strlen(p) - 2)
			CHECK(rc == 1);
		free(copy);
	}
}

static void test_policy_bad(void)
{
	static const struct {
		const char *body, *error;
	} cases[] = {
	    {"", "policy: no version"},
	    {"mode: enforce\nmx: a.b\nmax_age: 1\n", "policy: no version"},
	    {"version: STSv1\nmx: a.b\nmax_age: 1\n", "policy: no mode"},
	    {"version: STSv1\nmode: enforce\nmx: a.b\n", "policy: no max_age"},
	    {"version: STSv1\nmode: enforce\nmax_age: 1\n", "policy: no mx"},
	    {"version: STSv1\nmode: testing\nmax_age: 1\n", "policy: no mx"},
	    {"version: STSv2\nmode: enforce\nmx: a.b\nmax_age: 1\n", "policy: unsupported version"},
	    {"version: stsv1\nmode: enforce\nmx: a.b\nmax_age: 1\n", "policy: unsupported version"},
	    {"version: STSv1\nmode: Enforce\nmx: a.b\nmax_age: 1\n", "policy: bad mode"},
	    {"version: STSv1\nmode: enforcing\nmx: a.b\nmax_age: 1\n", "policy: bad mode"},
	    {"version: STSv1\nmode: enforce\nmx: a.b\nmax_age: 31557601\n", "policy: bad max_age"},
	    {"version: STSv1\nmode: enforce\nmx: a.b\nmax_age: 12345678901\n",
	     "policy: bad max_age"},
	    {"version: STSv1\nmode: enforce\nmx: a.b\nmax_age: -1\n", "policy: bad max_age"},
	    {"version: STSv1\nmode: enforce\nmx: a.b\nmax_age: 1d\n", "policy: bad max_age"},
	    {"version: STSv1\nmode: enforce\nmx: a.b\nmax_age:\n", "policy: bad max_age"},
	    {"version: STSv1\nmode: enforce\nmx: a..b\nmax_age: 1\n", "policy: bad mx pattern"},
	    {"version: STSv1\nmode: enforce\nmx: *.\nmax_age: 1\n", "policy: bad mx pattern"},
	    {"version: STSv1\nmode: enforce\nmx: a.*.b\nmax_age: 1\n", "policy: bad mx pattern"},
	    {"version: STSv1\nmode: enforce\nmx: **.b\nmax_age: 1\n", "policy: bad mx pattern"},
	    {"version: STSv1\nmode: enforce\nmx: -a.b\nmax_age: 1\n", "policy: bad mx pattern"},
	    {"version: STSv1\nmode: enforce\nmx: a-.b\nmax_age: 1\n", "policy: bad mx pattern"},
	    {"version: STSv1\nmode: enforce\nmx: a_b.c\nmax_age: 1\n", "policy: bad mx pattern"},
	    {"version: STSv1\nmode: enforce\nmx: a b\nmax_age: 1\n", "policy: bad mx pattern"},
	    {"version: STSv1\nmode: enforce\nmx:\nmax_age: 1\n", "policy: bad mx pattern"},
	    {"version: STSv1\nmode: enforce\nmx: a.b\rmax_age: 1\n", "policy: bare CR"},
	    {"version: STSv1\nmode: enforce\nmx a.b\nmax_age: 1\n", "policy: ':' expected"},
	    {"version: STSv1\n:x\nmode: enforce\nmx: a.b\nmax_age: 1\n", "policy: bad field name"},
	    {"version: STSv1\n foo: x\n", "policy: bad field name"},
	    {"version: STSv1\nfoo: \x01\n", "policy: control character"},
	    {"version: STSv1\nmode: enforce \xc3\xa9\n", "policy: bad mode"},
	};
	struct mta_sts_policy pol;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *why = NULL;
		int rc = mta_sts_policy_parse(cases[i].body, strlen(cases[i].body), &pol, &why);
		if (rc != -1 || why == NULL || strcmp(why, cases[i].error) != 0)
			fprintf(stderr, "policy case %zu: -> %d %s\n", i, rc, why ? why : "");
		CHECK(rc == -1);
		CHECK_STR(why, cases[i].error);
		CHECK(pol.nmx == 0);
	}
	/* NUL */
	const char *why = NULL;
	CHECK(mta_sts_policy_parse("version: STSv1\n\0", 16, &pol, &why) == -1);
	CHECK_STR(why, "policy: NUL");

	/* 64 mx lines fit, 65 do not */
	char *buf = malloc(8192);
	size_t n = (size_t)snprintf(buf, 8192, "version: STSv1\nmode: enforce\nmax_age: 1\n");
	for (int k = 0; k < MTA_STS_MX_MAX; k++)
		n += (size_t)snprintf(buf + n, 8192 - n, "mx: m%d.example\n", k);
	CHECK(mta_sts_policy_parse(buf, n, &pol, &why) == 1);
	CHECK(pol.nmx == MTA_STS_MX_MAX);
	CHECK_STR(pol.mx[63], "m63.example");
	n += (size_t)snprintf(buf + n, 8192 - n, "mx: one.more\n");
	CHECK(mta_sts_policy_parse(buf, n, &pol, &why) == -1);
	CHECK_STR(why, "policy: too many mx");
	free(buf);

	/* a pattern of 253 octets fits, 254 not; a label of 64 not */
	char pat[300];
	size_t k = 0;
	while (k < 253) {
		size_t len = 253 - k >= 62 ? 61 : 253 - k;
		memset(pat + k, 'a', len);
		k += len;
		if (k < 253)
			pat[k++] = '.';
	}
	pat[253] = '\0';
	char body[600];
	snprintf(body, sizeof(body), "version: STSv1\nmode: enforce\nmax_age: 1\nmx: %s\n", pat);
	CHECK(mta_sts_policy_parse(body, strlen(body), &pol, &why) == 1);
	CHECK(strlen(pol.mx[0]) == 253);
	snprintf(body, sizeof(body), "version: STSv1\nmode: enforce\nmax_age: 1\nmx: a%s\n", pat);
	CHECK(mta_sts_policy_parse(body, strlen(body), &pol, &why) == -1);
	memset(pat, 'b', 64);
	strcpy(pat + 64, ".example");
	snprintf(body, sizeof(body), "version: STSv1\nmode: enforce\nmax_age: 1\nmx: %s\n", pat);
	CHECK(mta_sts_policy_parse(body, strlen(body), &pol, &why) == -1);

	/* over 64 KiB */
	size_t bl = MTA_STS_BODY_MAX + 1;
	char *large = malloc(bl);
	memset(large, '\n', bl);
	CHECK(mta_sts_policy_parse(large, bl, &pol, &why) == -1);
	CHECK_STR(why, "policy: over 65536 octets");
	free(large);
}

/* ---- mx patterns ---- */

static void test_match(void)
{
	static const struct {
		const char *pattern, *host;
		bool match;
	} cases[] = {
	    {"mail.example.com", "mail.example.com", true},
	    {"mail.example.com", "MAIL.Example.Com", true},
	    {"mail.example.com", "mail.example.com.", true},
	    {"mail.example.com", "mail.example.com..", false},
	    {"mail.example.com", "xmail.example.com", false},
	    {"mail.example.com", "example.com", false},
	    {"mail.example.com", "", false},
	    {"*.example.com", "mx1.example.com", true},
	    {"*.example.com", "MX1.EXAMPLE.COM.", true},
	    {"*.example.com", "example.com", false},
	    {"*.example.com", ".example.com", false},
	    {"*.example.com", "a.b.example.com", false},
	    {"*.example.com", "mx1.example.org", false},
	    {"*.example.com", "mx1xexample.com", false},
	    {"*.example.com", "*.example.com", true}, /* a label "*": the DNS allows it */
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		bool m = mta_sts_pattern_match(cases[i].pattern, cases[i].host);
		if (m != cases[i].match)
			fprintf(stderr, "match case %zu: %s %s\n", i, cases[i].pattern,
			        cases[i].host);
		CHECK(m == cases[i].match);
	}
	struct mta_sts_policy pol;
	const char *why;
	const char *p = "version: STSv1\nmode: enforce\nmx: mail.example.com\nmx: *.example.net\n"
	                "max_age: 1\n";
	CHECK(mta_sts_policy_parse(p, strlen(p), &pol, &why) == 1);
	CHECK(mta_sts_mx_match(&pol, "Mail.Example.Com."));
	CHECK(mta_sts_mx_match(&pol, "b.example.net"));
	CHECK(!mta_sts_mx_match(&pol, "a.b.example.net"));
	CHECK(!mta_sts_mx_match(&pol, "mail.example.org"));
	CHECK_STR(mta_sts_mode_name(MTA_STS_MODE_ENFORCE), "enforce");
	CHECK_STR(mta_sts_mode_name(MTA_STS_MODE_TESTING), "testing");
	CHECK_STR(mta_sts_mode_name(MTA_STS_MODE_NONE), "none");
}

/* ---- the store's cache ---- */

static int rm_cb(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	return remove(path);
}

static void test_store(void)
{
	char dir[] = "/tmp/hermod-test-mta-sts.XXXXXX";
	struct store_options opts = {.data_dir = dir, .fsync = false};
	struct store *st = NULL;
	struct store_mta_sts r;
	char *error = NULL;

	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		exit(1);
	}
	CHECK(store_open(&opts, &st, &error) == 1);
	if (st == NULL) {
		fprintf(stderr, "store_open: %s\n", error ? error : "?");
		exit(1);
	}
	CHECK(store_mta_sts_get(st, "example.test", &r, &error) == 0);
	CHECK(r.domain == NULL && r.policy == NULL);
	struct store_mta_sts p = {.domain = "example.test",
	                          .id = "abc",
	                          .policy = "version: STSv1\n",
	                          .fetched = 100,
	                          .expires = 200};
	CHECK(store_mta_sts_put(st, &p, &error) == 1);
	CHECK(store_mta_sts_get(st, "Example.TEST", &r, &error) == 1);
	CHECK_STR(r.domain, "example.test");
	CHECK_STR(r.id, "abc");
	CHECK_STR(r.policy, "version: STSv1\n");
	CHECK(r.fetched == 100 && r.expires == 200);
	store_mta_sts_clear(&r);
	CHECK(r.domain == NULL);
	/* replaced */
	p.id = "def";
	p.expires = 300;
	CHECK(store_mta_sts_put(st, &p, &error) == 1);
	CHECK(store_mta_sts_get(st, "example.test", &r, &error) == 1);
	CHECK_STR(r.id, "def");
	CHECK(r.expires == 300);
	store_mta_sts_clear(&r);
	/* limits */
	p.id = "012345678901234567890123456789012";
	CHECK(store_mta_sts_put(st, &p, &error) == -1);
	CHECK_STR(error, "invalid MTA-STS cache entry");
	free(error);
	error = NULL;
	p.id = "";
	CHECK(store_mta_sts_put(st, &p, &error) == -1);
	free(error);
	error = NULL;
	CHECK(store_mta_sts_get(st, "", &r, &error) == -1);
	free(error);
	error = NULL;
	/* delete */
	CHECK(store_mta_sts_delete(st, "example.test", &error) == 1);
	CHECK(store_mta_sts_delete(st, "example.test", &error) == 0);
	CHECK(store_mta_sts_get(st, "example.test", &r, &error) == 0);
	store_close(&st);
	nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

int main(void)
{
	test_txt();
	test_txt_select();
	test_policy_ok();
	test_policy_bad();
	test_match();
	test_store();
	return unit_finish("mta_sts");
}
