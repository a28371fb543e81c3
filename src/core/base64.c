/* Strict base64, by hand: OpenSSL's EVP_DecodeBlock accepts whitespace and does not
 * report the padding length, so a table is simpler than validating around it. */
#include "core/base64.h"

#include <stdint.h>
#include <stdlib.h>

static const char base64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int base64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

size_t base64_encoded_len(size_t len)
{
	size_t groups = len / 3 + (len % 3 != 0);
	if (groups > SIZE_MAX / 4 - 1)
		return 0;
	return groups * 4;
}

size_t base64_encode_buf(const unsigned char *in, size_t len, char *out)
{
	size_t o = 0, i = 0;

	for (; len - i >= 3; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		out[o++] = base64_alphabet[v >> 18 & 63];
		out[o++] = base64_alphabet[v >> 12 & 63];
		out[o++] = base64_alphabet[v >> 6 & 63];
		out[o++] = base64_alphabet[v & 63];
	}
	if (len - i == 1) {
		uint32_t v = (uint32_t)in[i] << 16;
		out[o++] = base64_alphabet[v >> 18 & 63];
		out[o++] = base64_alphabet[v >> 12 & 63];
		out[o++] = '=';
		out[o++] = '=';
	} else if (len - i == 2) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
		out[o++] = base64_alphabet[v >> 18 & 63];
		out[o++] = base64_alphabet[v >> 12 & 63];
		out[o++] = base64_alphabet[v >> 6 & 63];
		out[o++] = '=';
	}
	out[o] = '\0';
	return o;
}

int base64_encode(const unsigned char *in, size_t len, char **out_r)
{
	size_t n = base64_encoded_len(len);
	if (n == 0 && len > 0)
		return -1;
	char *out = malloc(n + 1);
	if (out == NULL)
		return -1;
	base64_encode_buf(in, len, out);
	*out_r = out;
	return 1;
}

int base64_decode(const char *in, size_t len, unsigned char **out_r, size_t *outlen_r)
{
	const unsigned char *s = (const unsigned char *)in;
	size_t pad = 0;

	/* RFC 4648 3.2: padded encodings are a whole number of 4-character groups */
	if (len % 4 != 0)
		return -1;
	if (len > 0 && s[len - 1] == '=') {
		pad = 1;
		if (s[len - 2] == '=')
			pad = 2;
	}
	size_t outlen = len / 4 * 3 - pad;
	unsigned char *out = malloc(outlen + 1);
	if (out == NULL)
		return -1;

	size_t o = 0;
	for (size_t i = 0; i < len; i += 4) {
		size_t nsym = (i + 4 == len) ? 4 - pad : 4;
		uint32_t v = 0;
		for (size_t k = 0; k < 4; k++) {
			int d = 0;
			if (k < nsym) {
				d = base64_value(s[i + k]);
				if (d < 0)
					goto bad; /* includes '=' anywhere but the end */
			}
			v = v << 6 | (uint32_t)d;
		}
		/* RFC 4648 3.5: the pad bits of the last symbol must be zero */
		if ((nsym == 2 && (v & 0xffff) != 0) || (nsym == 3 && (v & 0xff) != 0))
			goto bad;
		out[o++] = (unsigned char)(v >> 16);
		if (nsym >= 3)
			out[o++] = (unsigned char)(v >> 8);
		if (nsym == 4)
			out[o++] = (unsigned char)v;
	}
	out[o] = '\0';
	*out_r = out;
	*outlen_r = o;
	return 1;
bad:
	free(out);
	return -1;
}
