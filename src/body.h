/*
** body.h — the bodies beyond JSON, in plain C (libcurl and stdio, no Lua):
** a multipart/form-data upload (libcurl's MIME API: parts from a path or
** from bytes, with filename and content type), the method (POST, GET,
** DELETE), and where a successful reply goes when it is not JSON (a "sink"):
** kept whole as bytes, written to a file, or handed to a Lua callback chunk
** by chunk (queued here, delivered by the loop).
**
** A file sink writes to "<path>.part" and renames it to <path> only when
** the reply is complete; a retry starts the file again; a failure or a
** cancel removes the partial file. Nothing of a sink's reply is held in
** memory except in the "bytes" sink.
*/
#ifndef AIGC_BODY_H
#define AIGC_BODY_H

#include <stdio.h>

#include <curl/curl.h>

#include "buf.h"

typedef enum aigc_sink_kind {
  AIGC_SINK_JSON = 0,  /* the usual: a JSON reply made into tables */
  AIGC_SINK_BYTES,     /* the reply's bytes as one Lua string */
  AIGC_SINK_FILE,      /* written to a file */
  AIGC_SINK_CHUNKS,    /* handed to a callback as it arrives */
  AIGC_SINK_EVENTS     /* an SSE stream of typed events (images, speech,
                          transcriptions), each decoded and handed to a
                          callback; the result is the last one */
} aigc_sink_kind;

typedef enum aigc_method { AIGC_METHOD_DEFAULT = 0, AIGC_METHOD_DELETE } aigc_method;

typedef struct aigc_body {
  aigc_method method;
  int absolute;             /* the path is a whole URL (a download) */
  curl_mime *mime;          /* owned: the form, or NULL */
  int uploads_from_path;    /* (for logs) */
  aigc_sink_kind sink;
  char *path;               /* AIGC_SINK_FILE: where the reply goes */
  char *part_path;          /* ... and where it is written meanwhile */
  FILE *fp;                 /* the part file, open while an attempt writes */
  size_t written;           /* bytes sunk by this attempt */
  int sink_errno;           /* the file could not be opened/written: errno */
  /* An upload part fed by a Lua function ({reader = true} in the form,
     opts.reader the function): libcurl reads `feed`; when it is empty the
     read pauses the transfer and `wake` tells the loop, which calls the
     function and resumes (request.c). Rewindable only while nothing was
     handed to libcurl (`fed` 0): after that the call is not retried. */
  int has_reader;
  curl_off_t feed_size;     /* the size the caller gave, or -1 (chunked) */
  size_t feed_total;        /* bytes the function gave (all attempts) */
  aigc_buf feed;
  size_t feed_read;         /* offset in feed */
  int feed_eof;             /* the function returned nil or "" */
  int feed_wanted;          /* libcurl waits for bytes */
  size_t fed;               /* bytes handed to libcurl (all attempts) */
  void (*wake) (void *);    /* set by the request: put it on the ready list */
  void *wake_arg;
} aigc_body;

/* libcurl's read and seek callbacks of a fed part (arg: the aigc_body). */
size_t aigc_body_feed_read (char *buf, size_t size, size_t nitems, void *arg);
int aigc_body_feed_seek (void *arg, curl_off_t offset, int origin);
/* Adds bytes the function gave (len 0 with eof: the end). -1: ENOMEM. */
int aigc_body_feed (aigc_body *b, const char *p, size_t len, int eof);
/* What is wrong when the function gave more than the part's size, or
   ended before it (libcurl would cut the part or the server wait), else NULL. */
const char *aigc_body_feed_mismatch (const aigc_body *b);

/* Sets the file sink's path (copies it). Returns -1 on ENOMEM. */
int  aigc_body_set_path (aigc_body *b, const char *path);
/* A new attempt: a partial file of an earlier one is removed. */
void aigc_body_attempt (aigc_body *b);
/* Writes n bytes of a 2xx reply to the file sink. Returns 0, or -1 (the
   reason in sink_errno). */
int  aigc_body_write_file (aigc_body *b, const char *p, size_t n);
/* The reply is complete: the part file becomes the file. Returns 0 or -1
   (sink_errno). An empty reply makes an empty file. */
int  aigc_body_commit (aigc_body *b);
/* Frees everything; a partial file is removed. */
void aigc_body_free (aigc_body *b);

#endif
