/* Fuzz target: a container's multiplexed log stream through
 * docker_demux_feed, cut into pieces of the sizes the input's first bytes
 * say (the transport cuts anywhere). Every payload byte comes out once,
 * in order, with its frame's stream. */
#include "executors/docker.h"
#include "tests/fuzz/fuzz.h"

struct demux_seen {
	const unsigned char *want; /* the stream itself */
	size_t pos, len;	   /* where the next header or payload is */
	size_t left;		   /* payload left in this frame */
	int stream;
};

/* Steps over the headers the demuxer should have consumed. */
static void demux_skip_headers(struct demux_seen *s)
{
	while (!s->left && s->len - s->pos >= 8) {
		const unsigned char *h = s->want + s->pos;

		s->stream = h[0];
		s->left = (size_t)h[4] << 24 | (size_t)h[5] << 16 |
			  (size_t)h[6] << 8 | h[7];
		s->pos += 8;
	}
}

static void demux_check(void *arg, int stream, const char *data, size_t len)
{
	struct demux_seen *s = arg;

	demux_skip_headers(s);
	if (!len || len > s->left || len > s->len - s->pos ||
	    stream != s->stream || memcmp(data, s->want + s->pos, len))
		abort();
	s->pos += len;
	s->left -= len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct docker_demux d = {{0}, 0, 0, 0};
	struct demux_seen s = {0};
	const uint8_t *cuts = data;
	size_t ncuts = size ? data[0] % 8 : 0, off = 0;

	if (size < 1 + ncuts)
		return 0;
	cuts = data + 1;
	data += 1 + ncuts;
	size -= 1 + ncuts;
	s.want = data;
	s.len = size;
	for (size_t i = 0; off < size; i++) {
		size_t n = ncuts ? (size_t)cuts[i % ncuts] + 1 : size - off;

		if (n > size - off)
			n = size - off;
		docker_demux_feed(&d, (const char *)data + off, n, demux_check,
				  &s);
		off += n;
	}
	demux_skip_headers(&s);
	if (s.pos < s.len && (s.left || s.len - s.pos >= 8))
		abort(); /* payload or a whole header was left unread */
	return 0;
}
