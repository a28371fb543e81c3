/* Base64 (RFC 4648 section 4, the standard alphabet with padding), as used by SASL
 * (RFC 4422 / RFC 4954 / RFC 5034 / RFC 9051) and SCRAM attributes (RFC 5802).
 *
 * Decoding is strict (RFC 4648 3.3, 3.5): only the 64 alphabet characters, padding
 * '=' only at the very end and only as needed to make the length a multiple of 4,
 * no whitespace or line breaks, and the unused bits of the last symbol must be zero
 * (so every byte string has exactly one accepted encoding). */
#ifndef HERMOD_CORE_BASE64_H
#define HERMOD_CORE_BASE64_H

#include <stddef.h>

/* Length of the encoding of len bytes (without the NUL), or 0 on overflow
 * (len > 0 only; the encoding of 0 bytes is empty). */
/* The value (0..63) of one base64 alphabet character (RFC 4648 4), -1 for any
 * other octet. */
int base64_value(unsigned char c);
size_t base64_encoded_len(size_t len);

/* Encodes in/len. Returns 1 with *out_r a malloc'd NUL-terminated string (the empty
 * string for len 0), -1 on overflow or out of memory. */
int base64_encode(const unsigned char *in, size_t len, char **out_r);

/* Encodes into out, which must have room for base64_encoded_len(len) + 1 bytes;
 * NUL-terminates. Returns the encoded length. */
size_t base64_encode_buf(const unsigned char *in, size_t len, char *out);

/* Decodes in/len. Returns 1 with *out_r malloc'd (len *outlen_r, followed by a NUL
 * that is not counted, so text can be used as a C string after checking it holds
 * no NUL), or -1 when the input is not valid base64 or memory ran out (*out_r and
 * *outlen_r untouched). An empty input decodes to an empty output. */
int base64_decode(const char *in, size_t len, unsigned char **out_r, size_t *outlen_r);

#endif
