/* Base64 (RFC 4648, standard alphabet) for kubeconfig's -data fields and
 * the exec plugins' cluster info. */
#ifndef UTIL_BASE64_H
#define UTIL_BASE64_H

#include <stddef.h>

#include "util/strbuf.h"

/* Append the bytes that len bytes of base64 text decode to. Whitespace is
 * skipped and the '=' padding may be left out (as PEM files and YAML
 * block scalars wrap it). Returns 0, or -1 on any other character, on
 * data after the padding, or on a dangling last character (out then
 * holds a part; the caller discards it). */
int base64_decode(struct strbuf *out, const char *text, size_t len);

/* Append the base64 of len bytes, padded, on one line. */
void base64_encode(struct strbuf *out, const void *data, size_t len);

#endif
