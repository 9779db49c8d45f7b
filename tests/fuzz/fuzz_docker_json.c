/* Fuzz target: the Docker API's JSON bodies through executors/json.c, with
 * the look-ups the executor makes (container wait and inspect, image
 * inspect, error bodies), and a pull's progress stream, one object a
 * line. */
#include "executors/json.h"
#include "tests/fuzz/fuzz.h"
#include "util/error.h"
#include "util/strbuf.h"

static void docker_json_body(const char *text, size_t len)
{
	static const char *const strs[] = {
		"Error.Message", "Id", "error",	  "errorDetail.message",
		"status",	 "id", "message", "",
	};
	struct error err = ERROR_INIT;
	struct strbuf out = STRBUF_INIT;
	struct json *j = NULL;
	long long n;

	if (json_parse(&j, text, len, &err)) {
		if (!err.msg.len)
			abort();
		error_release(&err);
		return;
	}
	json_get_int(j, "StatusCode", &n);
	json_get_bool(j, "State.OOMKilled");
	json_get(j, "progressDetail.current");
	for (size_t i = 0; i < sizeof(strs) / sizeof(*strs); i++)
		json_get_str(j, strs[i]);
	for (size_t i = 0; i < json_array_len(j); i++)
		json_get_str(json_array_at(j, i), "Id");
	json_dump(j, &out);
	json_free(j);
	strbuf_release(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data, *p = text, *end = text + size;
	struct strbuf msg = STRBUF_INIT;

	docker_json_body(text, size);
	json_error_message(text, size, &msg);
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));

		if (!nl)
			nl = end;
		if (nl != text + size || p != text)
			docker_json_body(p, (size_t)(nl - p));
		p = nl + 1;
	}
	strbuf_release(&msg);
	return 0;
}
