/*
** body.c — forms, methods and sinks (body.h). Called from libcurl's write
** callback (transfer.c): no Lua here.
*/
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "body.h"

int aigc_body_set_path (aigc_body *b, const char *path) {
  size_t n = strlen(path);
  free(b->path);
  free(b->part_path);
  b->path = (char *)malloc(n + 1);
  b->part_path = (char *)malloc(n + 6);
  if (b->path == NULL || b->part_path == NULL) {
    free(b->path);
    free(b->part_path);
    b->path = b->part_path = NULL;
    return -1;
  }
  memcpy(b->path, path, n + 1);
  memcpy(b->part_path, path, n);
  memcpy(b->part_path + n, ".part", 6);
  b->sink = AIGC_SINK_FILE;
  return 0;
}

static void drop_part (aigc_body *b) {
  if (b->fp != NULL) {
    fclose(b->fp);
    b->fp = NULL;
    if (b->part_path != NULL)
      remove(b->part_path);
  }
}

void aigc_body_attempt (aigc_body *b) {
  drop_part(b);
  b->written = 0;
  b->sink_errno = 0;
}

static int open_part (aigc_body *b) {
  b->fp = fopen(b->part_path, "wb");
  if (b->fp == NULL) {
    b->sink_errno = errno ? errno : EIO;
    return -1;
  }
  return 0;
}

int aigc_body_write_file (aigc_body *b, const char *p, size_t n) {
  if (b->fp == NULL && open_part(b) != 0)
    return -1;
  if (n > 0 && fwrite(p, 1, n, b->fp) != n) {
    b->sink_errno = errno ? errno : EIO;
    return -1;
  }
  b->written += n;
  return 0;
}

int aigc_body_commit (aigc_body *b) {
  if (b->sink_errno != 0)
    return -1;
  if (b->fp == NULL && open_part(b) != 0)   /* an empty reply: an empty file */
    return -1;
  if (fclose(b->fp) != 0) {
    b->fp = NULL;
    b->sink_errno = errno ? errno : EIO;
    remove(b->part_path);
    return -1;
  }
  b->fp = NULL;
  if (rename(b->part_path, b->path) != 0) {
    b->sink_errno = errno ? errno : EIO;
    remove(b->part_path);
    return -1;
  }
  return 0;
}

size_t aigc_body_feed_read (char *buf, size_t size, size_t nitems, void *arg) {
  aigc_body *b = (aigc_body *)arg;
  size_t want = size * nitems, have = b->feed.len - b->feed_read;
  if (have == 0) {
    if (b->feed_eof)
      return 0;
    b->feed_wanted = 1;   /* the loop calls the function, then unpauses */
    if (b->wake != NULL)
      b->wake(b->wake_arg);
    return CURL_READFUNC_PAUSE;
  }
  if (want > have)
    want = have;
  memcpy(buf, b->feed.data + b->feed_read, want);
  b->feed_read += want;
  b->fed += want;
  if (b->feed_read == b->feed.len) {
    aigc_buf_clear(&b->feed);
    b->feed_read = 0;
  }
  return want;
}

int aigc_body_feed_seek (void *arg, curl_off_t offset, int origin) {
  const aigc_body *b = (const aigc_body *)arg;
  /* Only "from the start" before anything was read: what was given is gone. */
  return (offset == 0 && origin == SEEK_SET && b->fed == 0) ? CURL_SEEKFUNC_OK : CURL_SEEKFUNC_CANTSEEK;
}

int aigc_body_feed (aigc_body *b, const char *p, size_t len, int eof) {
  if (eof)
    b->feed_eof = 1;
  if (len == 0)
    return 0;
  if (aigc_buf_append(&b->feed, p, len) != 0)
    return -1;
  b->feed_total += len;
  return 0;
}

const char *aigc_body_feed_mismatch (const aigc_body *b) {
  if (b->feed_size < 0)
    return NULL;
  if (b->feed_total > (size_t)b->feed_size)
    return "gave more bytes than its size";
  if (b->feed_eof && b->feed_total < (size_t)b->feed_size)
    return "ended before its size";
  return NULL;
}

void aigc_body_free (aigc_body *b) {
  drop_part(b);
  aigc_buf_free(&b->feed);
  curl_mime_free(b->mime);
  b->mime = NULL;
  free(b->path);
  free(b->part_path);
  b->path = b->part_path = NULL;
}
