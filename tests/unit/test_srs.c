/* The Sender Rewriting Scheme (src/delivery/srs.c). */
#include <string.h>

#include "delivery/srs.h"
#include "unit.h"

static void test_round_trip(void)
{
	char fwd[SRS_ADDR_MAX + 1], back[SRS_ADDR_MAX + 1];
	int64_t now = 1700000000;
	const char *secret = "0123456789abcdef0123456789abcdef";

	CHECK(srs_forward(secret, "bob@other.test", "example.test", now, fwd, sizeof(fwd)) == 1);
	CHECK(strncmp(fwd, "SRS0=", 5) == 0);
	CHECK(strstr(fwd, "=other.test=bob@example.test") != NULL);
	CHECK(strlen(fwd) == strlen("SRS0=HHHH=TT=other.test=bob@example.test"));
	CHECK(srs_reverse(secret, fwd, now, back, sizeof(back)) == 1);
	CHECK_STR(back, "bob@other.test");
	/* later, within the age limit; in another case */
	CHECK(srs_reverse(secret, fwd, now + 20 * 86400, back, sizeof(back)) == 1);
	char upper[SRS_ADDR_MAX + 1];
	strcpy(upper, fwd);
	for (char *p = upper; *p; p++)
		if (*p >= 'a' && *p <= 'z')
			*p = (char)(*p - 'a' + 'A');
	CHECK(srs_reverse(secret, upper, now, back, sizeof(back)) == 1);
	CHECK_STR(back, "BOB@OTHER.TEST");
	/* too old */
	CHECK(srs_reverse(secret, fwd, now + 22 * 86400, back, sizeof(back)) == -1);
	/* another secret: forged */
	CHECK(srs_reverse("another-secret-xxxxxxxxxxxxxxxx", fwd, now, back, sizeof(back)) == -1);
	/* a tampered domain or local part */
	char t[SRS_ADDR_MAX + 1];
	strcpy(t, fwd);
	char *o = strstr(t, "other");
	o[0] = 'x';
	CHECK(srs_reverse(secret, t, now, back, sizeof(back)) == -1);
	/* a local part with '=' and '+' */
	CHECK(srs_forward(secret, "a=b+c@other.test", "example.test", now, fwd, sizeof(fwd)) == 1);
	CHECK(srs_reverse(secret, fwd, now, back, sizeof(back)) == 1);
	CHECK_STR(back, "a=b+c@other.test");
}

static void test_malformed(void)
{
	char out[300];
	const char *s = "0123456789abcdef";
	CHECK(srs_reverse(s, "bob@example.test", 0, out, sizeof(out)) == 0);
	CHECK(srs_reverse(s, "SRS0=", 0, out, sizeof(out)) == -1);
	CHECK(srs_reverse(s, "SRS0=abcd@example.test", 0, out, sizeof(out)) == -1);
	CHECK(srs_reverse(s, "SRS0=abc=AA=d=l@example.test", 0, out, sizeof(out)) == -1);
	CHECK(srs_reverse(s, "SRS0=abcd=A1=d=l@example.test", 0, out, sizeof(out)) == -1);
	CHECK(srs_reverse(s, "SRS0=abcd=AA==l@example.test", 0, out, sizeof(out)) == -1);
	CHECK(srs_reverse(s, "SRS0=abcd=AA=d=@example.test", 0, out, sizeof(out)) == -1);
	CHECK(srs_forward(s, "nodomain", "example.test", 0, out, sizeof(out)) == -1);
	CHECK(srs_forward(s, "@x.test", "example.test", 0, out, sizeof(out)) == -1);
	CHECK(srs_forward(s, "a@x=y.test", "example.test", 0, out, sizeof(out)) == -1);
	char big[400];
	memset(big, 'a', 300);
	strcpy(big + 300, "@other.test");
	CHECK(srs_forward(s, big, "example.test", 0, out, sizeof(out)) == -1);
}

int main(void)
{
	test_round_trip();
	test_malformed();
	return unit_finish("srs");
}
