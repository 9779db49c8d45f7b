/* Helpers of the Docker executor (executors/docker.c), exported for tests. */
#ifndef EXECUTORS_DOCKER_H
#define EXECUTORS_DOCKER_H

#include <stddef.h>

#include "util/error.h"
#include "util/strbuf.h"

extern const struct executor executor_docker;

/* The socket named by DOCKER_HOST (NULL or "": /var/run/docker.sock;
 * "unix://PATH": PATH). Other schemes fail with EXIT_ENV. */
int docker_socket_path(const char *docker_host, struct strbuf *path,
		       struct error *err);

/* Split an image reference for a pull: "reg:5000/a/b:1" -> "reg:5000/a/b"
 * and "1"; "a/b@sha256:…" -> "a/b" and "sha256:…"; no tag: "latest".
 * Returns -1 (EXIT_USAGE) for an empty name or characters no reference
 * has. */
int docker_split_image(const char *image, struct strbuf *repo,
		       struct strbuf *tag, struct error *err);

/* The log stream of a container without a TTY: frames of an 8-byte header
 * (stream 0 stdin, 1 stdout, 2 stderr; 3 bytes 0; size, big-endian 32
 * bit) and a payload, cut anywhere by the transport. */
struct docker_demux {
	unsigned char hdr[8];
	size_t hdr_len;
	size_t left; /* payload bytes still to come in this frame */
	int stream;
};

typedef void docker_demux_fn(void *arg, int stream, const char *data,
			     size_t len);

/* Feed len bytes; fn gets each piece of payload with its stream. */
void docker_demux_feed(struct docker_demux *d, const char *data, size_t len,
		       docker_demux_fn *fn, void *arg);

#endif
