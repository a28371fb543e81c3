/* libFuzzer target: the DKIM signer fed any message, at once and in pieces of
 * the size given by the first input octet: both must give the same
 * DKIM-Signature field (Ed25519 signatures are deterministic), and every line
 * of it must be CRLF-ended and at most 78 octets (the key's names are short). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "policy/dkim_int.h"

static struct dkim_key key = {NULL, DKIM_ALG_ED25519_SHA256, "example.com", "fuzz"};

static int sign(const uint8_t *data, size_t size, size_t step, struct buf *out)
{
	struct dkim_key *keys[1] = {&key};
	struct dkim_signer *s = NULL;
	char *error = NULL;
	int ret;

	if (dkim_signer_new(keys, 1, 1700000000, &s, &error) < 0)
		abort();
	for (size_t i = 0; i < size; i += step) {
		if (dkim_signer_feed(s, data + i, size - i < step ? size - i : step) < 0)
			break;
	}
	ret = dkim_signer_finish(s, out, &error);
	free(error);
	dkim_signer_free(&s);
	return ret;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct buf a, b;
	size_t step;
	int ra, rb;

	if (key.pkey == NULL && (key.pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519")) == NULL)
		abort();
	if (size == 0)
		return 0;
	step = data[0] == 0 ? 1 : data[0];
	data++;
	size--;
	buf_init(&a, 0);
	buf_init(&b, 0);
	ra = sign(data, size, size > 0 ? size : 1, &a);
	rb = sign(data, size, step, &b);
	if (ra != rb || a.len != b.len || (a.len > 0 && memcmp(a.data, b.data, a.len) != 0))
		abort();
	for (size_t i = 0, col = 0; i < a.len; i++) {
		if (a.data[i] == '\n') {
			if (i == 0 || a.data[i - 1] != '\r' || col > 79)
				abort();
			col = 0;
		} else {
			col++;
		}
	}
	if (a.len > 0 && (a.len < 2 || memcmp(a.data + a.len - 2, "\r\n", 2) != 0))
		abort();
	buf_free(&a);
	buf_free(&b);
	return 0;
}
