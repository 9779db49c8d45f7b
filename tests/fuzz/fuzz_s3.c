/* Fuzz target: what the S3 client (remote/s3*.c) parses from outside: an
 * error body's Code and Message, a ListObjectsV2 page, a CreateMultipart
 * answer's UploadId (a server), and the AWS INI files (the user's disk).
 * The input is given whole to each. */
#include "remote/s3int.h"
#include "tests/fuzz/fuzz.h"
#include "util/strbuf.h"

static void s3_fuzz_xml(const char *s, size_t len)
{
	static const char *const names[] = {"Code", "Message", "UploadId",
					    "Key"};
	struct strbuf out = STRBUF_INIT, esc = STRBUF_INIT;

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		int found = s3_xml_pick(s, len, names[i], &out);

		/* decoding only shrinks the text */
		if ((!found && out.len) || out.len > len)
			abort();
		/* what is escaped for a body and picked again comes back */
		strbuf_reset(&esc);
		strbuf_addstr(&esc, "<Code>");
		s3_xml_escape(&esc, out.buf);
		strbuf_addstr(&esc, "</Code>");
		if (!memchr(out.buf, '\0', out.len)) {
			struct strbuf back = STRBUF_INIT;

			if (!s3_xml_pick(esc.buf, esc.len, "Code", &back) ||
			    strcmp(back.buf, out.buf))
				abort();
			strbuf_release(&back);
		}
	}
	strbuf_release(&out);
	strbuf_release(&esc);
}

static void s3_fuzz_list(const char *s, size_t len)
{
	struct s3_page p;

	s3_page_init(&p);
	if (!s3_parse_list(s, len, &p)) {
		if (p.keys.nr != p.sizes.nr ||
		    (p.truncated && !p.next_token.len))
			abort();
		for (size_t i = 0; i < p.keys.nr; i++)
			if (!*p.keys.v[i] || !*p.sizes.v[i] ||
			    strspn(p.sizes.v[i], "0123456789") !=
				    strlen(p.sizes.v[i]))
				abort();
	}
	s3_page_release(&p);
}

static void s3_fuzz_ini(const char *s, size_t len)
{
	static const char *const q[][2] = {
		{"default", "aws_access_key_id"},
		{"default", "aws_secret_access_key"},
		{"profile dev", "region"},
		{"prod", "aws_session_token"},
	};
	struct strbuf out = STRBUF_INIT;

	for (size_t i = 0; i < sizeof(q) / sizeof(q[0]); i++)
		if ((!s3_ini_get(s, len, q[i][0], q[i][1], &out) && out.len) ||
		    out.len > len)
			abort();
	strbuf_release(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;

	s3_fuzz_xml(s, size);
	s3_fuzz_list(s, size);
	s3_fuzz_ini(s, size);
	return 0;
}
