/*
** body.h — the bodies beyond JSON, in plain C (libcurl and stdio, no Lua):
** a multipart/form-data upload (libcurl's MIME API: parts from a path or
** from bytes, with filename and content type), the method (POST, GET,
** DELETE), and where a successful reply goes when it is not JSON (a "sink"):
** kept whole as bytes, written to a file, or handed to a Lua callback chunk
** by chunk (queued here, delivered by the loop).
**
** A part read from a path is opened again, and its size taken, when each
** attempt starts (aigc_body_attempt), never when the call is made: a file
** rewritten between the call and the send (a request waiting for a slot)
** goes as it is then, with its Content-Length. It is opened O_NONBLOCK and
** must be a regular file (a FIFO or a device could block the loop in
** open or read). A file that cannot be opened then, or that changes size
** while it is sent, fails the attempt (upload_bad): libcurl would send a
** body shorter than its Content-Length (the server waits out the timeout)
** or a corrupt one.
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

/* GET: a kind that posts, asked with no body (GET /responses/{id}?stream=true:
   the Responses kind's typed events, resumed). */
typedef enum aigc_method { AIGC_METHOD_DEFAULT = 0, AIGC_METHOD_DELETE, AIGC_METHOD_GET } aigc_method;

/* Why an upload's file failed an attempt (aigc_body_upload_error). */
typedef enum aigc_upload_why {
  AIGC_UPLOAD_ERRNO = 1,   /* it could not be opened or read: errno */
  AIGC_UPLOAD_NOT_FILE,    /* not a regular file (now) */
  AIGC_UPLOAD_CHANGED,     /* its size changed while it was sent */
  AIGC_UPLOAD_TOO_BIG      /* unsized, and more than AIGC_UNSIZED_MAX bytes */
} aigc_upload_why;

/* The most a file of no known size (below) sends: /files' own bound. */
#define AIGC_UNSIZED_MAX ((curl_off_t)512 * 1024 * 1024)

/* A part read from a path (form.c), one allocation with its strings. */
typedef struct aigc_upfile {
  struct aigc_upfile *next;
  struct aigc_body *body;   /* where a failure is told */
  curl_mimepart *part;      /* (owned by the body's mime) */
  const char *path;         /* what the caller gave */
  const char *field;        /* the caller's name for it: "params.image[2]" */
  int fd;                   /* open for this attempt, else -1 */
  curl_off_t size;          /* its size when this attempt began */
  int unsized;              /* ... stat said 0 but it reads bytes (a /proc or /sys
                               file, some FUSE ones): sent as read, to its end,
                               chunked, at most AIGC_UNSIZED_MAX bytes */
  curl_off_t pos;           /* bytes given to libcurl this pass */
} aigc_upfile;

typedef struct aigc_body {
  aigc_method method;
  int absolute;             /* the path is a whole URL (a download) */
  curl_mime *mime;          /* owned: the form, or NULL */
  int uploads_from_path;    /* (for logs) */
  aigc_upfile *files;       /* the parts read from paths, owned */
  const aigc_upfile *upload_bad;   /* the one that failed this attempt */
  aigc_upload_why upload_why;
  int upload_errno;         /* AIGC_UPLOAD_ERRNO: the error */
  curl_off_t upload_now;    /* AIGC_UPLOAD_CHANGED: its size then */
  const char *upload_kind;  /* AIGC_UPLOAD_NOT_FILE: what it is ("a FIFO") */
  aigc_sink_kind sink;
  char *path;               /* AIGC_SINK_FILE: where the reply goes */
  char *part_path;          /* ... and where it is written meanwhile */
  FILE *fp;                 /* the part file, open while an attempt writes */
  size_t written;           /* bytes sunk by this attempt */
  int sink_errno;           /* the file could not be opened/written: errno */
  unsigned part_mode;       /* the part file's mode, whatever the umask (0: 0666 less the umask) */
  int no_replace;           /* never over a file at path (res:save's overwrite = false): link(2) */
  int sink_replaced;        /* another download to the path replaced the part file */
  const char *sink_kind;    /* the path is no regular file: what it is ("a FIFO") */
  int sink_audio;           /* {path =, audio = true} or {sink = fn, audio = true}: a
                               2xx JSON or text reply is no audio (an error with a
                               200): kept in memory, the file and the path left
                               alone, the function given none of it */
  int sink_diverted;        /* ... this attempt's reply is such one (or events_text's) */
  int events_text;          /* {events = fn, sink = "bytes"}: a 2xx text/... reply (a
                               server that does not stream: a transcript as srt) is
                               no event stream but the result's body */
  int events_audio;         /* {events = fn, audio = true}: a 2xx audio/... reply (a
                               server that ignores speech's stream_format) is the
                               audio itself, handed to fn chunk by chunk */
  int events_raw;           /* ... this attempt's reply is such one */
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
/* 1 with what is wrong in msg when the function gave more than the part's
   size, or ended before it (libcurl would cut the part or the server wait),
   else 0. */
int aigc_body_feed_mismatch (const aigc_body *b, char *msg, size_t n);

/*
** Whether path may be uploaded: 0, or -1 with errno (ENOENT, EACCES...),
** or EINVAL with *kind set to what it is instead ("a directory", "a
** FIFO"...). stat(2) and access(2) only: nothing is opened, nothing blocks.
*/
int  aigc_body_check_file (const char *path, const char **kind);
/* Makes part read path (at each attempt, see above); field names it in
   errors. Returns the file, or NULL on ENOMEM (the part is left empty). */
aigc_upfile *aigc_body_add_file (aigc_body *b, curl_mimepart *part, const char *path,
                                 const char *field);
/* Writes why upload_bad failed the attempt into msg (n bytes). */
void aigc_body_upload_error (const aigc_body *b, char *msg, size_t n);

/* Sets the file sink's path (copies it). Returns -1 on ENOMEM. */
int  aigc_body_set_path (aigc_body *b, const char *path);
/* A new attempt: a partial file of an earlier one is removed; the files
   uploaded are opened again and sized. Returns 0, or -1 when one cannot
   be sent (upload_bad says which and why; nothing is sent then). */
int  aigc_body_attempt (aigc_body *b);
/* Writes n bytes of a 2xx reply to the file sink. Returns 0, or -1 (the
   reason in sink_errno). */
int  aigc_body_write_file (aigc_body *b, const char *p, size_t n);
/* The reply is complete: the part file becomes the file. Returns 0 or -1
   (sink_errno). An empty reply makes an empty file. */
int  aigc_body_commit (aigc_body *b);
/* Why the file sink failed (sink_errno's text, that another download
   to the same path replaced its part file, or that the path is a FIFO, a
   device, a folder...), written in buf (n bytes: AIGC_ERRBUF) or a constant. */
const char *aigc_body_sink_error (const aigc_body *b, char *buf, size_t n);
/* Whether a Content-Type (NULL: none) holds `word`, given in lower case,
   in any case ("event-stream", "json"). */
int  aigc_body_type_has (const char *ct, const char *word);
/* Whether a Content-Type (NULL: none) is JSON (application/json, *+json)
   or text/...: not the audio a sink_audio file waits for. */
int  aigc_body_not_audio_type (const char *ct);
/* Whether a Content-Type (NULL: none) says audio/... */
int  aigc_body_is_audio_type (const char *ct);
/* Frees everything; a partial file is removed. */
void aigc_body_free (aigc_body *b);

#endif
