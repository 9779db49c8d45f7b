/* Base64 encoding and decoding (util/base64.h). */
#include "util/base64.h"

static const char alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int value_of(unsigned char c)
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

static int is_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

int base64_decode(struct strbuf *out, const char *text, size_t len)
{
	unsigned long acc = 0;
	int bits = 0, nchars = 0, padding = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)text[i];
		int v;

		if (is_space(c))
			continue;
		if (c == '=') {
			padding++;
			continue;
		}
		v = value_of(c);
		if (v < 0 || padding)
			return -1; /* a stranger, or data after '=' */
		acc = (acc << 6) | (unsigned long)v;
		bits += 6;
		nchars++;
		if (bits >= 8) {
			bits -= 8;
			strbuf_addch(out, (int)((acc >> bits) & 0xff));
		}
	}
	/* one character alone in the last group holds no whole byte */
	if (nchars % 4 == 1 || padding > 2)
		return -1;
	if (padding && (nchars + padding) % 4)
		return -1;
	return 0;
}

void base64_encode(struct strbuf *out, const void *data, size_t len)
{
	const unsigned char *p = data;

	for (size_t i = 0; i < len; i += 3) {
		unsigned long v = (unsigned long)p[i] << 16;
		size_t left = len - i;

		if (left > 1)
			v |= (unsigned long)p[i + 1] << 8;
		if (left > 2)
			v |= p[i + 2];
		strbuf_addch(out, alphabet[(v >> 18) & 63]);
		strbuf_addch(out, alphabet[(v >> 12) & 63]);
		strbuf_addch(out, left > 1 ? alphabet[(v >> 6) & 63] : '=');
		strbuf_addch(out, left > 2 ? alphabet[v & 63] : '=');
	}
}
