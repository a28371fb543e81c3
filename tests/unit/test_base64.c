/* Unit tests for strict base64 (src/core/base64.c). */
#include "unit.h"

#include "core/base64.h"

#include <stdlib.h>

/* RFC 4648 10 test vectors */
static const struct {
	const char *plain, *enc;
} vectors[] = {
    {"", ""},
    {"f", "Zg=="},
    {"fo", "Zm8="},
    {"foo", "Zm9v"},
    {"foob", "Zm9vYg=="},
    {"fooba", "Zm9vYmE="},
    {"foobar", "Zm9vYmFy"},
};

static void test_vectors(void)
{
	for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		char *enc = NULL;
		unsigned char *dec = NULL;
		size_t declen = 99;
		size_t plen = strlen(vectors[i].plain);

		CHECK(base64_encode((const unsigned char *)vectors[i].plain, plen, &enc) == 1);
		CHECK_STR(enc, vectors[i].enc);
		CHECK(base64_encoded_len(plen) == strlen(vectors[i].enc));
		CHECK(base64_decode(vectors[i].enc, strlen(vectors[i].enc), &dec, &declen) == 1);
		CHECK(declen == plen);
		CHECK(dec != NULL && memcmp(dec, vectors[i].plain, plen) == 0 && dec[plen] == '\0');
		free(enc);
		free(dec);
	}
}

static void test_binary(void)
{
	unsigned char all[256];
	for (size_t i = 0; i < sizeof(all); i++)
		all[i] = (unsigned char)(255 - i);
	for (size_t n = 0; n <= sizeof(all); n++) {
		char *enc = NULL;
		unsigned char *dec = NULL;
		size_t declen = 0;
		CHECK(base64_encode(all, n, &enc) == 1);
		CHECK(base64_decode(enc, strlen(enc), &dec, &declen) == 1);
		CHECK(declen == n && memcmp(dec, all, n) == 0);
		free(enc);
		free(dec);
	}
	char buf[16];
	CHECK(base64_encode_buf((const unsigned char *)"\xff\xfe\xfd", 3, buf) == 4);
	CHECK_STR(buf, "//79");
	CHECK(base64_encode_buf((const unsigned char *)"\xfb\xff", 2, buf) == 4);
	CHECK_STR(buf, "+/8=");
}

static void test_invalid(void)
{
	static const char *const bad[] = {
	    "Zg",                                  /* no padding */
	    "Zg=",                                 /* short padding */
	    "Zm9v\n",                              /* newline */
	    "Zm9 v",                               /* space */
	    " Zm9v",                               /* leading space */
	    "Zm9vYg==\r\n", "Zh==",                /* non-zero pad bits */
	    "Zm9=",                                /* non-zero pad bits (one '=') */
	    "Zm=v",                                /* '=' in the middle */
	    "Z===",                                /* too much padding */
	    "====",         "=Zm9",    "Zg==Zg==", /* padding before the end */
	    "Zm9v-_==",                            /* base64url alphabet */
	    "Zm9*",         "Zm9\x80", "A",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		unsigned char *dec = (unsigned char *)"untouched";
		size_t declen = 7;
		int r = base64_decode(bad[i], strlen(bad[i]), &dec, &declen);
		if (r != -1)
			fprintf(stderr, "accepted: \"%s\"\n", bad[i]);
		CHECK(r == -1);
		CHECK(declen == 7);
	}
	/* an embedded NUL counts as a bad character */
	unsigned char *dec = NULL;
	size_t declen = 0;
	CHECK(base64_decode("Zm\0v", 4, &dec, &declen) == -1);
	/* the length given is what is decoded, not up to a NUL */
	CHECK(base64_decode("Zm9vYmFy", 4, &dec, &declen) == 1);
	CHECK(declen == 3 && memcmp(dec, "foo", 3) == 0);
	free(dec);
}

int main(void)
{
	test_vectors();
	test_binary();
	test_invalid();
	return unit_finish("base64");
}
