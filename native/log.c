/*
 * JSON-lines diagnostics on the log fd. Each record is built in one buffer
 * and written with a single write(2) so lines never interleave.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "minidock-exec.h"

#define LINE_MAX_BYTES 16384

static int log_fd = -1;

void log_set_fd(int fd)
{
	log_fd = fd;
}

struct buf {
	char data[LINE_MAX_BYTES];
	size_t len;
};

static void put(struct buf *b, const char *s, size_t n)
{
	/* Keep room for the closing "}\n"; truncate rather than overflow. */
	if (b->len + n > sizeof(b->data) - 8)
		n = sizeof(b->data) - 8 - b->len;
	memcpy(b->data + b->len, s, n);
	b->len += n;
}

static void put_str(struct buf *b, const char *s)
{
	put(b, s, strlen(s));
}

static void put_json_string(struct buf *b, const char *s)
{
	char esc[8];

	put(b, "\"", 1);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			put(b, esc, 2);
		} else if (c < 0x20 || c == 0x7f) {
			snprintf(esc, sizeof(esc), "\\u%04x", c);
			put(b, esc, 6);
		} else {
			put(b, (const char *)&c, 1);
		}
	}
	put(b, "\"", 1);
}

static void emit(struct buf *b)
{
	size_t off = 0;

	put_str(b, "}\n");
	if (log_fd < 0)
		return;
	while (off < b->len) {
		ssize_t n = write(log_fd, b->data + off, b->len - off);

		if (n < 0 && errno == EINTR)
			continue;
		/* Nowhere left to report a broken log fd: stdout is the container's. */
		if (n <= 0)
			return;
		off += (size_t)n;
	}
}

static void vlog_line(const char *level, const char *step, const char *fmt, va_list ap)
{
	struct buf b = { .len = 0 };
	char msg[LINE_MAX_BYTES / 2];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	put_str(&b, "{\"level\":");
	put_json_string(&b, level);
	put_str(&b, ",\"msg\":");
	put_json_string(&b, msg);
	if (step) {
		put_str(&b, ",\"step\":");
		put_json_string(&b, step);
	}
	emit(&b);
}

void log_line(const char *level, const char *step, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog_line(level, step, fmt, ap);
	va_end(ap);
}

void log_record_int(const char *key, long value)
{
	struct buf b = { .len = 0 };
	char num[32];

	put_str(&b, "{");
	put_json_string(&b, key);
	snprintf(num, sizeof(num), ":%ld", value);
	put_str(&b, num);
	emit(&b);
}

void log_exec_errno(int err, const char *path)
{
	struct buf b = { .len = 0 };
	char num[32];

	snprintf(num, sizeof(num), "{\"exec_errno\":%d", err);
	put_str(&b, num);
	put_str(&b, ",\"path\":");
	put_json_string(&b, path);
	emit(&b);
}

void die(const char *step, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog_line("fatal", step, fmt, ap);
	va_end(ap);
	exit(EXIT_SETUP);
}
